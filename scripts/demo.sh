#!/bin/bash
# The main job on a simulated host (nothing on the real host is touched):
# 1. the host monitor: vm_power_mgr --simulate --demo runs on a generated
#    sysfs tree and the libvirt test driver with demo VMs; scripted guests
#    send requests over the channel sockets and show_cpu_freq shows the
#    host CPUs moving (and refusals for foreign CPUs);
# 2. the library: a C program built purely with `pkg-config --cflags --libs
#    rte_power` against a staging install (an lcore busy loop that scales
#    its frequency with simulated load) on a generated tree;
# 3. the Rust API example.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
FLAVOUR=${1:-acpi}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rte-power-demo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

echo "== building"
cargo build -q --release --workspace
echo "== the host monitor on a simulated host: guests' requests move host CPUs"
target/release/vm_power_mgr --simulate --demo -q --sim-dir "$WORK/monitor"

echo "== installing the library into a staging prefix"
make -s >/dev/null
make -s install PREFIX="$WORK/prefix" LDCONFIG=true >/dev/null
export PKG_CONFIG_PATH="$WORK/prefix/lib/pkgconfig"
cc -std=c11 -O2 -Wall -Wextra -Werror examples-c/busyloop.c -o "$WORK/busyloop" \
  $(pkg-config --cflags --libs rte_power) -Wl,-rpath,"$WORK/prefix/lib"
echo "   $(pkg-config --modversion rte_power): $(pkg-config --cflags --libs rte_power)"

echo "== a simulated $FLAVOUR host with 4 CPUs"
cargo run -q --release -p testkit --example make_tree -- "$FLAVOUR" "$WORK/sys" 4
export RTE_POWER_SYSFS_CPU_DIR="$WORK/sys"
echo "   cpu0: driver $(cat "$WORK/sys/cpu0/cpufreq/scaling_driver"), governor $(cat "$WORK/sys/cpu0/cpufreq/scaling_governor")"

echo "== busyloop (C, lcore 0): idle, busy, half busy, idle"
"$WORK/busyloop" -t 2 -p 50 -s 0:500,100:700,50:300,0:500
echo "   cpu0 after exit: governor $(cat "$WORK/sys/cpu0/cpufreq/scaling_governor")"

echo "== the Rust API on its own generated tree"
cargo run -q --release --example scale_with_load -- "$FLAVOUR"
