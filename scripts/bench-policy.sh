#!/bin/bash
# The policy engine benchmark (monitor/benches/policy.rs): tick cost with
# 4,096 pCPUs under policy, and 1,024 on a generated tree with the real
# host driver. Prints figures.
#   scripts/bench-policy.sh [--ticks N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked -p vm-power-mgr --bench policy -- "$@"
