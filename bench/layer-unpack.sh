#!/bin/bash
# Unpack of a layer tarball: berth's layer.Apply vs GNU tar -x, plain and
# gzip, interleaved run by run so that machine load hits both alike.
# Prints median and p90 wall ms and berth's ratio to tar.
#   bash bench/layer-unpack.sh [RUNS] [LAYER.tar]
# Default layer: the debootstrapped Debian rootfs of the test fixtures
# (made once by internal/fixture, cached in /var/cache/berth-test).
# Measured 2026-12-01 on the shared 2-core CI machine (7 runs, medians;
# Debian bookworm minbase, 164 MB, 6679 entries):
#   ext4  (/var/tmp): tar 5491 ms, berth 4053 ms (0.74x); gzip: tar 6464, berth 6068 (0.94x)
#   tmpfs (/dev/shm): tar  208 ms, berth  232 ms (1.12x); gzip: tar 2106, berth 1536 (0.73x)
# (ext4 times are dominated by writeback on a loaded disk; run with
# BENCH_DIR=/dev/shm to see the CPU cost alone.)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
RUNS=${1:-7}
LAYER=${2:-${BERTH_TEST_CACHE:-/var/cache/berth-test}/debian-bookworm-minbase.tar}
# BENCH_DIR picks the file system unpacked to (e.g. /dev/shm for tmpfs).
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/berth-unpack.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [ ! -f "$LAYER" ]; then
  # The benchmark's own fixture lookup debootstraps it when missing.
  go test -run '^$' -bench '^BenchmarkApplyDebian$' -benchtime 1x ./layer >/dev/null
fi
go test -c -o "$work/layer.test" ./layer
gzip -1 -c "$LAYER" >"$work/layer.tar.gz"
echo "layer: $LAYER ($(du -m "$LAYER" | cut -f1) MB, $(tar -tf "$LAYER" | wc -l) entries; gzip $(du -m "$work/layer.tar.gz" | cut -f1) MB)"

now() { date +%s%N; }
# run NAME CMD...: one timed run into a fresh $work/dst, ms appended to $work/NAME
run() {
  local name=$1; shift
  rm -rf "$work/dst"; mkdir "$work/dst"; sync
  local t0; t0=$(now)
  "$@" >/dev/null
  echo $(( ($(now) - t0) / 1000000 )) >>"$work/$name"
}
berth() { BERTH_LAYER_TAR=$1 BERTH_LAYER_TGZ=$1 BERTH_LAYER_DST=$work/dst "$work/layer.test" -test.run '^$' -test.bench "^$2\$" -test.benchtime 1x; }
for ((i = 0; i < RUNS; i++)); do
  run tar      tar --numeric-owner --xattrs --xattrs-include='*' -xpf "$LAYER" -C "$work/dst"
  run berth    berth "$LAYER" BenchmarkApplyDebian
  run tar-gz   tar --numeric-owner --xattrs --xattrs-include='*' -xzpf "$work/layer.tar.gz" -C "$work/dst"
  run berth-gz berth "$work/layer.tar.gz" BenchmarkApplyDebianGzip
done
stat() { sort -n "$work/$1" | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; p=a[int(NR*0.9+0.999)]; printf "%d %d", m, p}'; }
printf "%-10s %10s %8s %8s\n" what median_ms p90_ms ratio
for pair in "tar berth" "tar-gz berth-gz"; do
  set -- $pair
  read -r tm tp <<<"$(stat "$1")"
  read -r bm bp <<<"$(stat "$2")"
  printf "%-10s %10d %8d %8s\n" "$1" "$tm" "$tp" ""
  printf "%-10s %10d %8d %8s\n" "$2" "$bm" "$bp" "$(awk -v b="$bm" -v t="$tm" 'BEGIN{printf "%.2fx", b/t}')"
done
