#!/bin/bash
# bench/build: berth build vs podman build vs buildah bud on the corpus's
# ten-step and multi-stage Dockerfiles, uncached (--no-cache) and fully
# cached, interleaved run by run, medians and berth's ratios.
#
#   sudo bash bench/build/run.sh            # N=7 runs per cell
#   N=15 bash bench/build/run.sh
#   BENCH_NETWORK=1 bash bench/build/run.sh # also seed 004 (apt over the network)
#
# Every tool gets a private store in a temp dir: podman/buildah use
# overlay (their fast path) with runc (crun refuses this host's hybrid
# cgroups) and host networking, like berth's RUN default.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/local/go/bin
N=${N:-7}
BERTH=${BERTH_BIN:-$PWD/bin/berth}
[ "$(id -u)" = 0 ] || { echo "bench/build: run as root" >&2; exit 1; }
[ -x "$BERTH" ] || go build -o "$BERTH" ./cmd/berth
for t in podman buildah; do command -v $t >/dev/null || { echo "bench/build: $t missing (scripts/deps.sh)" >&2; exit 1; }; done

T=$(mktemp -d /tmp/bench-build.XXXXXX)
cleanup() {
  podman --root $T/podman --runroot $T/podman-run --tmpdir $T/podman-tmp --storage-driver overlay rmi -af >/dev/null 2>&1 || true
  buildah --root $T/podman --runroot $T/podman-run --storage-driver overlay rm -a >/dev/null 2>&1 || true
  umount -R $T/podman/overlay 2>/dev/null || true
  grep -o "$T[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
export BERTH_ROOT=$T/berth
P=(--root $T/podman --runroot $T/podman-run --storage-driver overlay)

# Same busybox base in every store.
go run ./internal/fixture/cmd/mkrootfs busybox-tar $T/busybox.tar
"$BERTH" import $T/busybox.tar docker.io/library/busybox:latest --change 'CMD ["/bin/sh"]' >/dev/null 2>&1
skopeo --insecure-policy copy -q oci:$BERTH_ROOT/oci:docker.io/library/busybox:latest \
  "containers-storage:[overlay@$T/podman+$T/podman-run]docker.io/library/busybox:latest" >/dev/null

declare -A CTX
CTX[ten-steps]=$PWD/examples/build/ten-steps
CTX[multi-stage]=$PWD/build/testdata/compat-instructions
WORKLOADS=(ten-steps multi-stage)
if [ "${BENCH_NETWORK:-0}" = 1 ]; then
  "$BERTH" import "$(go run ./internal/fixture/cmd/mkrootfs debian-tar 2>/dev/null || echo /var/cache/berth-test/debian-bookworm-minbase.tar)" docker.io/library/debian:bookworm >/dev/null 2>&1
  skopeo --insecure-policy copy -q oci:$BERTH_ROOT/oci:docker.io/library/debian:bookworm \
    "containers-storage:[overlay@$T/podman+$T/podman-run]docker.io/library/debian:bookworm" >/dev/null
  CTX[seed004]=$PWD/examples/build/seed004-static
  WORKLOADS+=(seed004)
fi

# ms CMD...: wall milliseconds of CMD; a failure is retried once, then fatal.
ms() {
  local t0 t1 try
  for try in 1 2; do
    t0=$(date +%s%N)
    if "$@" >$T/last.log 2>&1; then t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); return 0; fi
    echo "FAILED (try $try): $*" >&2; tail -5 $T/last.log >&2
  done
  return 1
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }

run_tool() { # tool mode workload
  local ctx=${CTX[$3]} nc=""
  [ "$2" = uncached ] && nc=--no-cache
  case $1 in
    berth)   ms "$BERTH" build $nc -q -t bench-$3 "$ctx" ;;
    podman)  ms podman "${P[@]}" --tmpdir $T/podman-tmp build $nc --pull=never --network=host --runtime runc --cgroup-manager cgroupfs --layers -q -t bench-$3 "$ctx" ;;
    buildah) ms buildah "${P[@]}" bud $nc --pull=never --network=host --runtime runc --layers -q -t bench-b-$3 "$ctx" ;;
  esac
}

TOOLS=(berth podman buildah)
declare -A R
for w in "${WORKLOADS[@]}"; do
  for tool in "${TOOLS[@]}"; do run_tool $tool cached $w >/dev/null; done # warm caches and page cache
  for mode in uncached cached; do
    for i in $(seq $N); do
      # rotate the order each round so no tool always goes first
      for k in 0 1 2; do
        tool=${TOOLS[$(( (i + k) % 3 ))]}
        R[$w,$mode,$tool]+="$(run_tool $tool $mode $w) "
      done
    done
  done
done

printf '\nberth build benchmark: %d interleaved runs per cell, median wall ms (host: %s, %s cores)\n\n' "$N" "$(uname -r)" "$(nproc)"
printf '| workload | mode | berth | podman build | buildah bud | berth/podman | berth/buildah |\n|---|---|---|---|---|---|---|\n'
for w in "${WORKLOADS[@]}"; do
  for mode in uncached cached; do
    b=$(tr ' ' '\n' <<<"${R[$w,$mode,berth]}" | grep . | median)
    p=$(tr ' ' '\n' <<<"${R[$w,$mode,podman]}" | grep . | median)
    h=$(tr ' ' '\n' <<<"${R[$w,$mode,buildah]}" | grep . | median)
    printf '| %s | %s | %d | %d | %d | %.2f | %.2f |\n' $w $mode $b $p $h "$(awk "BEGIN{print $b/$p}")" "$(awk "BEGIN{print $b/$h}")"
  done
done
