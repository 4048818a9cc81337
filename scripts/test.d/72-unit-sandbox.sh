#!/bin/bash
# The hardened systemd unit (monitor/dist/vm_power_mgr.service): its
# exposure score, then its ExecStartPre/ExecStart/ExecStop lines run inside
# the unit's own sandbox (scripts/unit-sandbox.sh: where systemd is not the
# init system, the same settings through unshare, mount, setpriv and a
# seccomp filter) on a generated CPU tree bound over /sys/devices/system/cpu,
# a private /run and the libvirt test driver. A guest request must scale a
# CPU, `ctl quit` must restore it, and the sandbox must refuse what the unit
# forbids. Nothing on the real host is touched.
# UNIT_SANDBOX_UNIT=PATH checks another copy of the unit whose programs are
# installed where it names them (step 55: the vm-power-mgr package's, with
# /usr/bin paths); by default the release binaries stand in /usr/local/bin.
set -euo pipefail
cd "$(dirname "$0")/../.."
unit=${UNIT_SANDBOX_UNIT:-monitor/dist/vm_power_mgr.service}
fail() { echo "FAIL: $*"; exit 1; }

score=$(systemd-analyze security --offline=true "$unit" 2>/dev/null |
  sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "systemd-analyze gave no exposure score for $unit"
awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }' || fail "exposure $score above 3.0"
echo "ok: $unit exposure $score (goal <= 3.0)"

cargo build --locked --release -p vm-power-mgr -p rte-pm -p testkit \
  --bin vm_power_mgr --bin rte-pm --example seccomp_exec --example qemu_guest --example make_tree
rel=$PWD/target/release
export SECCOMP_EXEC=$rel/examples/seccomp_exec
t=$(mktemp -d)
mon=
cleanup() { [ -n "$mon" ] && kill "$mon" 2>/dev/null; wait 2>/dev/null; rm -rf "$t"; }
trap cleanup EXIT
mkdir -p "$t/bin" "$t/run"
cp "$rel/vm_power_mgr" "$rel/rte-pm" "$t/bin/"       # as `make install` puts them
cp testkit/data/node.xml "$t/run/test-node.xml"        # /run/test-node.xml inside
"$rel/examples/make_tree" acpi "$t/cpu" 8 >/dev/null
bin_bind=(--bind "$t/bin:/usr/local/bin")
[ -z "${UNIT_SANDBOX_UNIT:-}" ] || bin_bind=()
sandbox=(bash scripts/unit-sandbox.sh --bind "$t/cpu:/sys/devices/system/cpu"
  --bind "$t/run:/run" ${bin_bind[@]+"${bin_bind[@]}"} "$unit" --)

snapshot() { # what the host's state is: setspeed only counts under userspace
  local d f
  for d in "$t"/cpu/cpu*/cpufreq; do
    for f in scaling_governor scaling_min_freq scaling_max_freq; do
      printf '%s %s\n' "${d#"$t"/}/$f" "$(cat "$d/$f")"
    done
    [ "$(cat "$d/scaling_governor")" = userspace ] && echo "${d#"$t"/} setspeed $(cat "$d/scaling_setspeed")"
  done
  return 0
}
before=$(snapshot)

# the unit's command lines, continuation lines joined
cmdline() {
  sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$unit" | sed -n "s/^$1=//p" | tr -s ' '
}
pre=$(cmdline ExecStartPre); start=$(cmdline ExecStart); stop=$(cmdline ExecStop)
[ -n "$pre" ] && [ -n "$start" ] && [ -n "$stop" ] || fail "unit lacks ExecStartPre/ExecStart/ExecStop"

# what the unit forbids, refused inside the sandbox
probe() { # probe <description> <command that must fail>
  if "${sandbox[@]}" bash -c "$2" 2>/dev/null; then fail "sandbox allowed: $1"; fi
  echo "ok: sandbox refuses $1"
}
probe "writing /etc (ProtectSystem=strict)" 'echo x > /etc/rte-power-probe'
probe "writing /sys outside the CPU tree (ProtectKernelTunables)" 'echo 1 > /sys/kernel/mm/ksm/run'
probe "an AF_INET socket (RestrictAddressFamilies)" 'exec 3<>/dev/tcp/127.0.0.1/9'
probe "CAP_SYS_ADMIN (CapabilityBoundingSet)" '[ $(( 0x$(sed -n "s/^CapEff:\t//p" /proc/self/status) & (1 << 21) )) -ne 0 ]'
probe "changing uid (bounding set, SystemCallFilter=~@setuid)" 'exec setpriv --reuid=65534 true'
"${sandbox[@]}" bash -c 'echo ok > /sys/devices/system/cpu/cpu0/cpufreq/scaling_setspeed' ||
  fail "the sandbox does not let the monitor write the CPU tree"
"$rel/examples/make_tree" acpi "$t/cpu" 8 >/dev/null   # undo the probe's write
before=$(snapshot)

"${sandbox[@]}" bash -c "$pre && exec $start --uri test:///run/test-node.xml \
  -e 'add_vm vm-a' -e 'add_channels vm-a 0'" 2>"$t/monitor.err" &
mon=$!
reply=$("$rel/examples/qemu_guest" "$t/run/powermonitor" vm-a 0 0 max 20) ||
  { cat "$t/monitor.err"; fail "no reply from the sandboxed monitor"; }
[ "$reply" = Ack ] || { cat "$t/monitor.err"; fail "max for vm-a vCPU 0: $reply, want Ack"; }
cpu0=$t/cpu/cpu0/cpufreq
[ "$(cat "$cpu0/scaling_setspeed")" = "$(cat "$cpu0/scaling_max_freq")" ] ||
  fail "cpu0 not at max after the guest's request: setspeed $(cat "$cpu0/scaling_setspeed")"
echo "ok: the sandboxed monitor scaled vm-a's pCPU 0 on the guest's request"
hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$mon/status")
max=$(sed -n 's/^MemoryMax=\([0-9]*\)M$/\1/p' "$unit")
[ -n "$hwm" ] && [ -n "$max" ] && [ "$hwm" -lt $((max * 1024)) ] ||
  fail "peak RSS ${hwm:-?} kB against MemoryMax=${max:-?}M"
echo "ok: peak RSS $hwm kB (MemoryMax=${max}M)"
"${sandbox[@]}" bash -c "exec $stop" || { cat "$t/monitor.err"; fail "ExecStop failed"; }
rc=0; wait "$mon" || rc=$?
mon=
[ "$rc" = 0 ] || { cat "$t/monitor.err"; fail "monitor exited $rc after ExecStop"; }
after=$(snapshot)
[ "$before" = "$after" ] || { diff <(echo "$before") <(echo "$after"); fail "CPU tree changed after stop"; }
echo "ok: ExecStop restored every CPU; the unit's lines run in its sandbox"
