#!/bin/bash
# The build-system recipes of the README (examples-c/recipes/): meson,
# CMake and plain make, each building DPDK's unchanged l3fwd-power against
# an installed rte-power, checked (our headers first, our library only)
# and run once (scripts/build-recipes.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/build-recipes.sh
