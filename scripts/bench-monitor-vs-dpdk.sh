#!/bin/bash
# The load of ../shared/dpdk-vmpm (loadgen.py playing QEMU, as used there
# to measure DPDK 22.11's own vm_power_mgr) against our vm_power_mgr: same
# cells, same windows, same pinning (vCPU i on CPU i % 2), same fake
# acpi-cpufreq tree (../shared/dpdk-ref/mkfakesys.sh), loadgen on CPU 0,
# the monitor on CPU 1. Prints one table row per cell; DPDK's figures are
# in ../shared/dpdk-vmpm/README.md. Not part of the test suite (~1 min).
#
#   scripts/bench-monitor-vs-dpdk.sh                 # 1x1 1x8 8x8 8x127, W 1 and 64, 5 s
#   CELLS="8x8" WINDOWS="1" SECS=3 scripts/bench-monitor-vs-dpdk.sh
#   scripts/bench-monitor-vs-dpdk.sh --hostile       # loadgen's hostile cases
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=$(cd "$ROOT/../shared" && pwd)
LOADGEN=$SHARED/dpdk-vmpm/loadgen.py
MKFAKESYS=$SHARED/dpdk-ref/mkfakesys.sh
CELLS=${CELLS:-"1x1 1x8 8x8 8x127"}
WINDOWS=${WINDOWS:-"1 64"}
SECS=${SECS:-5}
HOSTILE=0
[ "${1:-}" = "--hostile" ] && HOSTILE=1
cd "$ROOT"
cargo build --locked --release -p vm-power-mgr >&2
BIN=$ROOT/target/release/vm_power_mgr

node_xml() { # FILE NVM NVCPU [CPU-OF-VM0 CPU-OF-VM1 ...]; default vCPU i on CPU i%2
  python3 - "$@" <<'PY'
import sys
path, nvm, nvcpu = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
per_vm = sys.argv[4:]          # given: every vCPU of VM v on per_vm[v]
doms = []
for v in range(nvm):
    cpu = lambda i: per_vm[v % len(per_vm)] if per_vm else str(i % 2)
    pin = "".join(f"<vcpupin vcpu='{i}' cpuset='{cpu(i)}'/>" for i in range(nvcpu))
    doms.append(f"<domain type='test'><name>vm{v}</name><memory unit='MiB'>64</memory>"
                f"<vcpu placement='static'>{nvcpu}</vcpu><cputune>{pin}</cputune>"
                f"<os><type arch='x86_64'>hvm</type></os></domain>")
open(path, "w").write("<node><cpu><mhz>2400</mhz><model>x86_64</model><active>8</active>"
    "<nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>2</threads></cpu>"
    "<memory>16777216</memory>" + "".join(doms) + "</node>")
PY
}

start_monitor() { # WORKDIR NVM [extra args...]
  local W=$1 nvm=$2; shift 2
  local args=()
  for k in $(seq 0 $((nvm - 1))); do args+=(-e "add_vm vm$k" -e "add_channels vm$k all"); done
  # VMs share pCPUs here on purpose (DPDK's monitor has no such rule)
  args+=(-e "set_shared 0-7 allow")
  taskset -c 1 "$BIN" --daemon -q --refresh-ms 0 --uri "test://$W/node.xml" --socket-dir "$W/sock" \
    --sysfs "$W/sys" --ctl-socket "$W/ctl" "${args[@]}" "$@" 2>"$W/monitor.log" &
  echo $! > "$W/pid"
}

wait_file() { for _ in $(seq 1 600); do [ -e "$1" ] && return 0; sleep 0.05; done; echo "no $1" >&2; return 1; }

if [ $HOSTILE = 1 ]; then
  W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
  mkdir "$W/sock"; bash "$MKFAKESYS" "$W/sys" 8 acpi-cpufreq >/dev/null
  node_xml "$W/node.xml" 2 4 0 1          # vm0 on CPU 0, vm1 on CPU 1
  python3 "$LOADGEN" --dir "$W/sock" --vms 2 --channels-per-vm 4 --hostile safe --nvcpu 4 \
    --sysfs "$W/sys" --monitor-log "$W/monitor.log" --ready-file "$W/ready" \
    --monitor-pid-file "$W/pid" --done-file "$W/done" &
  LG=$!
  wait_file "$W/ready"
  start_monitor "$W" 2 -e "set_query vm0 enable" -v
  wait $LG || true
  "$BIN" ctl --socket "$W/ctl" quit >/dev/null || true
  wait "$(cat "$W/pid")" || true
  exit 0
fi

echo "| channels (VMs x ch) | window | requests/s | p50 µs | p99 µs | max µs | NACK | lost | monitor CPU % |"
echo "|---|---|---|---|---|---|---|---|---|"
for cell in $CELLS; do
  nvm=${cell%x*}; nch=${cell#*x}
  for w in $WINDOWS; do
    W=$(mktemp -d)
    mkdir "$W/sock"; bash "$MKFAKESYS" "$W/sys" 8 acpi-cpufreq >/dev/null
    node_xml "$W/node.xml" "$nvm" "$nch"
    taskset -c 0 python3 "$LOADGEN" --dir "$W/sock" --vms "$nvm" --channels-per-vm "$nch" \
      --window "$w" --seconds "$SECS" --ready-file "$W/ready" --monitor-pid-file "$W/pid" \
      --json "$W/out.json" > "$W/loadgen.txt" 2>&1 &
    LG=$!
    wait_file "$W/ready"
    start_monitor "$W" "$nvm"
    wait $LG || { cat "$W/loadgen.txt" >&2; }
    "$BIN" ctl --socket "$W/ctl" quit >/dev/null || true
    wait "$(cat "$W/pid")" || true
    python3 - "$W/out.json" "$nvm" "$nch" "$w" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); l = r["lat_us"]
cpu = r.get("monitor_cpu") or {}
pc = cpu.get("cpu_pct") if isinstance(cpu, dict) else cpu
n = int(sys.argv[2]) * int(sys.argv[3])
print(f"| {n} ({sys.argv[2]}x{sys.argv[3]}) | {sys.argv[4]} | {r['req_per_s']:.0f} | {l['p50']} | {l['p99']} | {l['max']} | {r['nacks']} | {r['lost']} | {pc} |")
PY
    rm -rf "$W"
  done
done
