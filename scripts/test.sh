#!/bin/bash
# Runs every test: unit, integration (as root: namespaces, cgroups, mounts),
# fuzz seed corpora, and the interop tests against Debian's peers.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin
export BERTH_BIN=$PWD/bin/berth
# Packages run one at a time: many tests start containers, registries and
# containerd, and the machine has two cores.
go test -p 1 -count=1 -timeout 60m ./... 2>&1 | tee /tmp/berth-test.log
