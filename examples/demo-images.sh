#!/bin/bash
# Demo part 2: images. Run by examples/demo.sh with its work dir as $1.
set -euo pipefail
work=$1
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "2. a base image is a rootfs tarball (seed 002): import busybox and a debootstrapped Debian"
go run ./internal/fixture/cmd/mkrootfs busybox-tar "$work/busybox.tar"
berth import -q "$work/busybox.tar" busybox:latest --change 'CMD ["/bin/sh"]'
debian_tar=$(go run ./internal/fixture/cmd/mkrootfs debian-tar)
berth import -q "$debian_tar" debian:bookworm --change 'CMD ["/bin/bash"]'
berth images

step "3. same kernel, different userspace (seed 000)"
for img in busybox debian:bookworm; do
  echo "--- $img"
  berth run --rm "$img" sh -c 'echo "uname -r: $(uname -r)"; if [ -f /etc/os-release ]; then grep PRETTY_NAME /etc/os-release; else echo "/etc/os-release: none"; fi'
done
echo "--- host: uname -r: $(uname -r)"

step "4. FROM scratch + ADD rootfs.tar / is a base image (seed 002)"
mkdir -p "$work/seed002" && cp examples/build/seed002-rootfs/Dockerfile "$work/seed002/" && cp "$work/busybox.tar" "$work/seed002/rootfs.tar"
berth build -q -t mybase:1 "$work/seed002"
berth run --rm mybase:1 sh -c 'echo "hello from a base image made of a tarball: $(ls /bin | wc -l) files in /bin"'

step "4b. berth build: ten steps with RUN in berth's runtime, then again from the cache"
berth build --progress plain -t ten:1 examples/build/ten-steps
echo "--- rebuild, nothing changed:"
berth build --progress plain -t ten:1 examples/build/ten-steps
berth run --rm ten:1

step "5. scratch runs static binaries only (seed 001)"
mkdir -p "$work/scratch"
printf '#include <stdio.h>\nint main(void){puts("hello from a C program");return 0;}\n' > "$work/scratch/hello.c"
gcc -O2 -o "$work/scratch/hello-dynamic" "$work/scratch/hello.c"
gcc -O2 -static -o "$work/scratch/hello-static" "$work/scratch/hello.c"
printf 'FROM scratch\nARG BIN\nCOPY ${BIN} /hello\nENTRYPOINT ["/hello"]\n' > "$work/scratch/Dockerfile"
berth build -q -t hello:dynamic --build-arg BIN=hello-dynamic "$work/scratch" >/dev/null
berth build -q -t hello:static --build-arg BIN=hello-static "$work/scratch" >/dev/null
echo "--- static binary in scratch:"; berth run --rm hello:static
echo "--- dynamic binary in scratch:"; berth run --rm hello:dynamic || echo "(exit $?)"
printf 'FROM debian:bookworm\nCOPY hello-dynamic /usr/local/bin/hello\nCMD ["hello"]\n' > "$work/scratch/Dockerfile.debian"
berth build -q -t hello:debian -f "$work/scratch/Dockerfile.debian" "$work/scratch" >/dev/null
echo "--- the same dynamic binary on Debian:"; berth run --rm hello:debian

step "6. multi-stage to distroless-style, and slim (seed 004)"
berth slim hello:debian -t hello:slim --probe ''
echo "--- the slim image runs, and has no shell:"
berth run --rm hello:slim
berth run --rm --entrypoint /bin/sh hello:slim -c true 2>&1 || echo "(no /bin/sh: exit $?)"

step "7. a shell for a shell-less container (berth debug)"
berth rm -f demo-sleeper >/dev/null 2>&1 || true
berth run -d --name demo-sleeper mybase:1 sleep 300 >/dev/null
berth debug demo-sleeper -- sh -c 'echo "toolbox ps sees the target: $(ps -o pid,args | grep "[s]leep 300")"; echo "target files at /target: $(wc -l < /target/etc/passwd) users in /target/etc/passwd"'
berth rm -f demo-sleeper >/dev/null

step "8. which base image? berth doctor --compare"
berth doctor debian:bookworm --compare busybox hello:debian hello:slim hello:static hello:dynamic
