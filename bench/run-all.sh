#!/bin/bash
# Runs every benchmark under bench/ (each dir has run.sh or a Go main),
# berth side by side with its Debian peers, and prints their tables.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/bin:$PATH:/usr/local/go/bin
for d in bench/*/; do
  name=$(basename "$d")
  echo "### $name"
  if [ -x "$d/run.sh" ]; then
    bash "$d/run.sh"
  elif [ -f "$d/main.go" ]; then
    go run "./$d"
  fi
  echo
done
