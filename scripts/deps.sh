#!/bin/bash
# Installs every Debian package berth's build, demo, tests and benchmarks use.
# Idempotent: a machine that has them all does no apt work at all.
set -euo pipefail
PKGS=(busybox-static runc crun containerd docker-registry apache2-utils
      podman buildah skopeo debootstrap iproute2 nftables jq curl
      qemu-user-static binfmt-support uidmap fuse-overlayfs libc6-dev gcc hyperfine musl-tools umoci
      docker.io)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # docker.io's postinst would start a host dockerd (docker0, iptables
  # FORWARD policy DROP) that breaks berth's bridges: tests start their own.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Go toolchain: the machine ships one at /usr/local/go.
command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "deps: no Go toolchain found" >&2; exit 1; }
