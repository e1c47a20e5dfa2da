#!/bin/bash
# The demo: seed 000's point, an image is a userspace and the kernel is the host's.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "demo: to be written"
