#!/bin/bash
# DPDK 22.11's l3fwd-power, unchanged, relinked against rte-power and run on
# simulated hosts and a KVM guest layout (scripts/l3fwd-power.sh; root).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/l3fwd-power.sh all
