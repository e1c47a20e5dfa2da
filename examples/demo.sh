#!/bin/bash
# berth demo: the seeds' points, live.
#  000  an image is a userspace, not a kernel: uname -r is the host's, /etc/os-release the image's
#  002  a base image is just a rootfs tarball (FROM scratch + ADD rootfs.tar /)
#  001  scratch runs static binaries only; a dynamic one lacks its interpreter and libc.so.6
#  004  multi-stage builds and distroless: small, shell-less, and still debuggable
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/bin:$PATH:/usr/local/go/bin
export BERTH_ROOT=${BERTH_ROOT:-/var/lib/berth-demo}
work=$(mktemp -d /tmp/berth-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. berth's own OCI runtime runs a busybox bundle (seed 000)"
mkdir -p "$work/bundle/rootfs"
go run ./internal/fixture/cmd/mkrootfs busybox "$work/bundle/rootfs"
(cd "$work/bundle" && berth runtime spec)
jq '.process.args=["/bin/sh","-c","echo \"kernel (host): $(uname -r)\"; cat /etc/os-release 2>/dev/null || echo \"/etc/os-release: none (busybox has no distro)\""] | .process.terminal=false' \
  "$work/bundle/config.json" > "$work/bundle/c.json" && mv "$work/bundle/c.json" "$work/bundle/config.json"
berth runtime --root "$work/rt" run --bundle "$work/bundle" demo-$$
echo "host kernel: $(uname -r)"

if [ -x examples/demo-images.sh ]; then
  bash examples/demo-images.sh "$work"
fi
