#!/bin/bash
# Differential check against DPDK's own librte_power (Debian 22.11) on fake
# sysfs trees served through FUSE: every difference must be one of the
# documented deviations listed in tests/dpdk-ref/expected/ (see
# docs/deviations.md). Needs root, libdpdk-dev and /dev/fuse; without FUSE
# the traces cannot be compared exactly (plain files keep residue), so this
# step fails rather than silently testing less.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ ! -c /dev/fuse ]; then
  echo "40-dpdk-diff: /dev/fuse is missing (load the fuse module or give the container /dev/fuse)" >&2
  exit 1
fi
bash scripts/dpdk-diff.sh
