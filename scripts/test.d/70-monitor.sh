#!/bin/bash
# Host monitor (vm_power_mgr, workspace member monitor/): libvirt stays out
# of the C library, the monitor's tests (libvirt test driver + stand-in
# QEMU sockets), the simulated end-to-end demo, short benchmark runs
# (channels; the policy engine's tick).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --locked --release
so=target/release/librte_power.so
if ldd "$so" | grep -i libvirt; then
  echo "FAIL: $so must not link libvirt"; exit 1
fi
# ldd's whole output first: `ldd | grep -q` fails under pipefail when grep
# stops reading early (ldd gets SIGPIPE)
deps=$(ldd target/release/vm_power_mgr)
grep -q libvirt.so <<<"$deps" || {
  echo "FAIL: vm_power_mgr should use libvirt"; exit 1; }
echo "ok: librte_power.so free of libvirt (the .a: scripts/check-layers.sh); vm_power_mgr links it"
cargo test --locked -p vm-power-mgr
sim=$(mktemp -d)
trap 'rm -rf "$sim"' EXIT
target/release/vm_power_mgr --simulate --demo -q --sim-dir "$sim/demo" | tee "$sim/demo.txt"
grep -q "after quit: cpu0 governor schedutil" "$sim/demo.txt"
grep -q "vm-a: Energy: 9.600 J since added" "$sim/demo.txt"
cargo bench --locked -p vm-power-mgr --bench channels -- --seconds 0.5 --cells 1x1,8x8 --windows 0,32
# the policy engine's tick cost (figures only)
cargo bench --locked -p vm-power-mgr --bench policy -- --ticks 20
# the /metrics scrape cost (figures only; the 4,096-channel run is
# `cargo bench -p vm-power-mgr --bench metrics -- --bench`)
cargo bench --locked -p vm-power-mgr --bench metrics -- --cells 8x8 --scrapes 5
# the per-VM energy sampler's cost (figures only; the 4,096-CPU run is
# `cargo bench -p vm-power-mgr --bench energy`, docs/monitor.md §2.8)
cargo bench --locked -p vm-power-mgr --bench energy -- --cpus 256 --samples 5
