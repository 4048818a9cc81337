#!/bin/bash
# DPDK 22.11's l3fwd-power, unchanged, built with its own Makefile both
# relinked against rte-power and against Debian's DPDK (then run on our
# librte_power.so.23, the first scenario through `make dpdk-override`), each
# run on simulated hosts and in a KVM guest layout against our
# vm_power_mgr (scripts/l3fwd-power.sh; root).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/l3fwd-power.sh all
