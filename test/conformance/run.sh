#!/usr/bin/env bash
# OCI conformance for berth: build the validation programs of
# github.com/opencontainers/runtime-tools v0.9.0 and run every one of them
# against berth's runtime and runc, side by side, on this machine.
#
#   test/conformance/run.sh [RUNTIME...]   (default: bin/berth-runtime runc)
#
# See README.md in this directory for what is counted and why.
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WORK=${CONFORMANCE_WORK:-/var/tmp/berth-conformance}
TIMEOUT=${CONFORMANCE_TIMEOUT:-120}
ONLY=${CONFORMANCE_TESTS:-}
VERSION=v0.9.0
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

say() { printf 'conformance: %s\n' "$*" >&2; }
fail() { say "$*"; exit 2; }

[ "$(id -u)" = 0 ] || fail "run as root: the programs create containers, mounts and cgroups"
for t in go tar timeout flock awk; do command -v "$t" >/dev/null || fail "$t not found"; done

if [ $# -eq 0 ]; then
  [ -x "$REPO/bin/berth-runtime" ] || make -C "$REPO" build >&2 || fail "make build failed"
  set -- "$REPO/bin/berth-runtime" runc
fi

mkdir -p "$WORK" || fail "cannot create $WORK"
exec 8>"$WORK/lock"
# The programs use fixed cgroup paths and the runtimes' default state roots.
flock -n 8 || fail "another run holds $WORK/lock"

# --- the suite ----------------------------------------------------------------
# runtime-tools v0.9.0 predates Go modules: give it a go.mod pinning what its
# Godeps named, at the nearest versions the module proxy serves.
BIN=$WORK/bin
KEY="2|$VERSION|$(go env GOVERSION)"
build_suite() {
  local dir src=$WORK/src
  dir=$(GOFLAGS=-mod=mod go mod download -json "github.com/opencontainers/runtime-tools@$VERSION" |
    awk -F'"' '$2 == "Dir" { print $4 }') || return 1
  [ -d "$dir" ] || { say "go mod download gave no directory"; return 1; }
  rm -rf "$src" "$BIN" && cp -r "$dir" "$src" && chmod -R u+w "$src" || return 1
  cat >"$src/go.mod" <<'MOD'
module github.com/opencontainers/runtime-tools

go 1.21

require (
	github.com/blang/semver v3.5.0+incompatible
	github.com/hashicorp/errwrap v1.0.0
	github.com/hashicorp/go-multierror v1.0.0
	github.com/mndrix/tap-go v0.0.0-20171203230836-629fa407e90b
	github.com/mrunalp/fileutils v0.5.0
	github.com/opencontainers/runtime-spec v1.0.2
	github.com/opencontainers/selinux v1.6.0
	github.com/satori/go.uuid v1.2.0
	github.com/sirupsen/logrus v1.4.2
	github.com/syndtr/gocapability v0.0.0-20200815063812-42c35b437635
	github.com/urfave/cli v1.19.1
	github.com/xeipuuv/gojsonschema v1.2.0
	golang.org/x/sys v0.50.0
)
MOD
  (
    cd "$src" || exit 1
    export GOFLAGS=-mod=mod GOTOOLCHAIN=local
    go build -o "$BIN/" ./validation/... || exit 1
    # runtimetest checks, inside the container, that the soft RLIMIT_NOFILE
    # is what config.json asked for; but Go programs raise their own soft
    # limit at start-up (package syscall's init), so a stock build would
    # fail that check under every runtime. Build it with that init made a
    # no-op through -overlay (the std file is not modified).
    local rl ov
    rl=$(go env GOROOT)/src/syscall/rlimit.go ov=$WORK/overlay
    mkdir -p "$ov"
    awk '{ print } /^func init\(\) \{$/ { print "\treturn // disabled for runtimetest by berth conformance/run.sh" }' \
      "$rl" >"$ov/rlimit.go"
    grep -q 'disabled for runtimetest' "$ov/rlimit.go" || { echo "no init in $rl" >&2; exit 1; }
    printf '{"Replace":{"%s":"%s"}}' "$rl" "$ov/rlimit.go" >"$ov/overlay.json"
    CGO_ENABLED=0 go build -overlay "$ov/overlay.json" -o "$BIN/runtimetest" ./cmd/runtimetest
  ) || return 1
  echo "$KEY" >"$BIN/.key"
}
if [ "$(cat "$BIN/.key" 2>/dev/null)" != "$KEY" ]; then
  say "building runtime-tools $VERSION validation programs (about a minute)"
  build_suite || fail "building the suite failed"
fi

# --- the bundle's rootfs: static busybox, as upstream's rootfs-amd64.tar.gz --
RUN=$WORK/run                     # cwd of the programs: they read ./rootfs-ARCH.tar.gz, ./runtimetest
ARCH=$(go env GOARCH)
mkdir -p "$RUN"
if [ ! -s "$RUN/rootfs-$ARCH.tar.gz" ]; then
  bb=/bin/busybox
  file -L "$bb" 2>/dev/null | grep -q 'statically linked' ||
    ldd "$bb" 2>&1 | grep -q 'not a dynamic' || fail "$bb missing or not static: apt-get install busybox-static"
  r=$(mktemp -d "$WORK/rootfs.XXXXXX")
  mkdir -p "$r"/{bin,dev,etc,proc,sys,tmp}
  # "./" of the tarball is the bundle directory itself (root.path is "."):
  # without 0755 a non-root container process cannot even reach /.
  chmod 755 "$r" "$r"/{bin,dev,etc,proc,sys} && chmod 1777 "$r/tmp"
  cp "$bb" "$r/bin/busybox"
  for a in $("$bb" --list); do [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"; done
  cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$r/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
tty:x:5:
users:x:100:
nogroup:x:65534:
EOF
  tar --numeric-owner --owner=0 --group=0 -C "$r" -czf "$RUN/rootfs-$ARCH.tar.gz" . || fail "tar rootfs"
  rm -rf "$r"
fi
cp -f "$BIN/runtimetest" "$RUN/runtimetest"

if [ -n "$ONLY" ]; then read -ra TESTS <<<"$ONLY"
else mapfile -t TESTS < <(ls "$BIN" | grep -vx runtimetest | sort); fi

# --- helpers --------------------------------------------------------------------
# Each runtime is called through a shim that logs the id of every container
# created, so leftovers of a program can be deleted before the next one.
shim_for() { # $1 runtime path, $2 shim path
  {
    echo '#!/bin/sh'
    cat <<'EOF'
case " $* " in *" create "* | *" run "*)
  for id; do :; done # the id is the last argument
  echo "$id" >>"${CONFORMANCE_IDS:-/dev/null}" ;;
esac
EOF
    printf 'exec %q "$@"\n' "$1"
  } >"$2"
  chmod +x "$2"
}
cleanup_ids() { # $1 runtime, $2 id file
  local id
  [ -s "$2" ] || return 0
  sort -u "$2" | while read -r id; do
    timeout 10 "$1" state "$id" >/dev/null 2>&1 || continue
    timeout 10 "$1" kill "$id" KILL >/dev/null 2>&1
    timeout 10 "$1" delete --force "$id" >/dev/null 2>&1 ||
      say "left behind: container $id of $1"
  done
}
unmount_below() {
  awk -v p="$1" '$5 == p || index($5, p "/") == 1 { print $5 }' /proc/self/mountinfo |
    sort -r | xargs -r -n1 umount -l 2>/dev/null
}
# The cgroup tests use /cgrouptest and (relative) <our cgroup>/testdir/...
cleanup_cgroups() {
  local m rel d
  for m in $(awk '$9 == "cgroup" || $9 == "cgroup2" { print $5 }' /proc/self/mountinfo); do
    for rel in "" $(awk -F: '{ print $3 }' /proc/self/cgroup | sort -u); do
      for d in testdir/cgrouptest/container testdir/cgrouptest testdir cgrouptest; do
        [ -d "$m$rel/$d" ] && rmdir "$m$rel/$d" 2>/dev/null
      done
    done
  done
  return 0
}

# Reads a TAP file, prints: ok notok skip planned
tap_count() {
  awk 'BEGIN { p = -1 }
    /^ok/     { if (/# *SKIP/) s++; else o++ }
    /^not ok/ { if (!/# *TODO/) f++ }
    /^1\.\.[0-9]+/ { p = substr($0, 4) + 0 }
    END { print o + 0, f + 0, s + 0, p }' "$1"
}

# run_one RUNTIME_PATH NAME TEST -> writes $RES/NAME/TEST.{tap,err,res}
run_one() {
  local rt=$1 name=$2 t=$3 out=$RES/$2 tmp=$WORK/tmp/$2-$3 ids rc ok notok skip plan why
  mkdir -p "$out" "$tmp"
  ids=$WORK/ids-$name-$t; : >"$ids"
  (cd "$RUN" && exec env TMPDIR="$tmp" RUNTIME="$WORK/shim-$name" CONFORMANCE_IDS="$ids" \
    timeout -k 5 "$TIMEOUT" "$BIN/$t") </dev/null >"$out/$t.tap" 2>"$out/$t.err"
  rc=$?
  cleanup_ids "$rt" "$ids"; rm -f "$ids"
  unmount_below "$tmp"; rm -rf --one-file-system "$tmp"
  cleanup_cgroups
  read -r ok notok skip plan < <(tap_count "$out/$t.tap")
  why=""
  if [ $rc = 124 ] || [ $rc = 137 ]; then why="timed out after ${TIMEOUT}s"
  elif [ $rc != 0 ]; then why="exit status $rc"
  elif [ $((ok + notok + skip)) = 0 ]; then
    # The hook programs and some *_fail ones print no TAP line: they pass by
    # exiting 0 without a YAML error block.
    if grep -q '^  ---' "$out/$t.tap"; then why="error reported"; else ok=1; fi
  elif [ "$plan" -ge 0 ] && [ $((ok + notok + skip)) -lt "$plan" ]; then
    why="only $((ok + notok + skip)) of $plan results"
  fi
  # A crash counts as a failure even when every line printed was ok.
  [ -n "$why" ] && [ "$notok" = 0 ] && notok=1
  local status=pass
  [ "$notok" -gt 0 ] && status=FAIL
  [ "$status" = pass ] && [ "$ok" = 0 ] && status=skip
  printf '%s\t%s\t%s\t%s\t%s\n' "$status" "$ok" "$notok" "$skip" "$why" >"$out/$t.res"
}

# The failure lines of one result, with their YAML diagnostics, shortened.
failure_text() { # $1 tap, $2 err, $3 why
  awk '/^not ok/ { show = 1; n = 0; print; next }
       /^(ok|not ok|1\.\.)/ { show = 0 }
       show && n < 12 { print; n++ }' "$1" | cut -c1-300
  [ -n "$3" ] && echo "($3)"
  if [ -s "$2" ]; then echo "stderr:"; tail -n 5 "$2" | cut -c1-300; fi
}

# --- run -----------------------------------------------------------------------
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RES=$WORK/results/$STAMP
mkdir -p "$RES" "$WORK/tmp"
NAMES=() PATHS=()
for r in "$@"; do
  p=$(command -v "$r") || fail "runtime $r not found"
  n=$(basename "$r")
  # keep the link name: berth speaks runc's CLI only when called berth-runtime
  case $p in /*) ;; *) p=$PWD/$p ;; esac
  NAMES+=("$n") PATHS+=("$p")
  shim_for "$p" "$WORK/shim-$n"
done
trap 'cleanup_cgroups' EXIT
say "runtime-tools $VERSION: ${#TESTS[@]} programs x ${NAMES[*]}, timeout ${TIMEOUT}s each; results in $RES"

printf '%-36s' test
for n in "${NAMES[@]}"; do printf ' %-16s' "$n"; done
echo
for t in "${TESTS[@]}"; do
  printf '%-36s' "$t"
  for i in "${!NAMES[@]}"; do
    run_one "${PATHS[$i]}" "${NAMES[$i]}" "$t"
    IFS=$'\t' read -r st ok notok skip why <"$RES/${NAMES[$i]}/$t.res"
    printf ' %-16s' "$st $ok/$((ok + notok))"
  done
  echo
done

echo
echo "## score (programs passed / run; assertions passed / total)"
for n in "${NAMES[@]}"; do
  cat "$RES/$n"/*.res | awk -F'\t' -v n="$n" -v T="${#TESTS[@]}" '
    { if ($1 == "pass") p++; else if ($1 == "skip") s++; o += $2; f += $3 }
    END { printf "%-16s %d/%d programs pass (%d skipped), %d/%d assertions\n", n, p, T, s, o, o + f }'
done

# The first runtime is the one under test, compared with each other one.
ref=${NAMES[0]}
for n in "${NAMES[@]:1}"; do
  echo
  echo "## $n passes, $ref fails"
  found=0
  for t in "${TESTS[@]}"; do
    IFS=$'\t' read -r a _ _ _ why <"$RES/$ref/$t.res"
    IFS=$'\t' read -r b _ _ _ _ <"$RES/$n/$t.res"
    [ "$a" = FAIL ] && [ "$b" != FAIL ] || continue
    found=1
    echo "### $t"
    failure_text "$RES/$ref/$t.tap" "$RES/$ref/$t.err" "$why" | sed 's/^/    /'
  done
  [ $found = 1 ] || echo "(none)"
  echo
  echo "## both fail"
  for t in "${TESTS[@]}"; do
    IFS=$'\t' read -r a _ _ _ _ <"$RES/$ref/$t.res"
    IFS=$'\t' read -r b _ _ _ _ <"$RES/$n/$t.res"
    [ "$a" = FAIL ] && [ "$b" = FAIL ] && printf '%s ' "$t"
  done
  echo
done
