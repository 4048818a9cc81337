#!/bin/bash
# DPDK 22.11's own programs, unchanged, on rte-power, each built with its
# own Makefile both relinked (our include/ and library) and against
# Debian's DPDK (run on our librte_power.so.23): DPDK's host monitor
# vm_power_mgr (3 lcores on 2 CPUs: load, hostile cases, restore at quit),
# its guest_cli through our vm_power_mgr (socat as QEMU), distributor
# (power for its workers on shared frequency domains). l3fwd-power runs
# in step 90 the same two ways. See scripts/dpdk-programs.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/dpdk-programs.sh all vm_power_mgr guest_cli distributor
