#!/bin/bash
# The C ABI: header checks (C11/C++ compilers, cbindgen against src/capi,
# exported symbols) and the C programs of c-tests/, each built against
# librte_power.so and librte_power.a (and as C++17) and run. The cpufreq
# autotest mounts DPDK-ref's sysfsemu over /sys/devices/system/cpu in a
# private mount namespace: needs root (CI runs as root), /dev/fuse and
# ../shared/dpdk-ref beside the repository. `journal` runs C programs that
# end without rte_power_exit (return, exit, SIGKILL) against the journal.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then
  echo "30-c-api: needs root (unshare -m, mount)" >&2
  exit 1
fi
cargo test --locked --release --test c_api --test header_check --test journal
