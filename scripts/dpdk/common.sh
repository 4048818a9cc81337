# Shell helpers shared by scripts/dpdk-programs.sh and scripts/l3fwd-power.sh
# (sourced): our vm_power_mgr as the host of a simulated guest, socat as
# QEMU, proof that a process loaded our library, sysfs snapshots.
# Callers set REPO (the repository), STAGE (the staging install of
# rte-power) and SHARED (../shared beside the repository).

# ours_loaded PID: the process maps our library (from the staging install),
# not Debian's
ours_loaded() {
  local maps
  maps=$(awk '/librte_power/ { print $NF }' "/proc/$1/maps" 2>/dev/null | sort -u)
  if grep -q "^$STAGE/" <<<"$maps" && ! grep -q '^/\(usr/\)\?lib/x86_64-linux-gnu/librte_power' <<<"$maps"; then
    echo "  loaded: $(grep "^$STAGE/" <<<"$maps" | sed "s|^$REPO/||" | paste -sd' ' -)"
    return 0
  fi
  echo "  not ours: maps show '${maps:-nothing}'"
  return 1
}

val() { head -n1 "$1" 2>/dev/null || true; }

# First line of every writable attribute: what a run may change and must
# restore. scaling_setspeed shows "<unsupported>" unless the governor is
# userspace, as the kernel shows it (its value means nothing then).
state() {
  (cd "$1" && find . -type f -perm -u+w | sort | while read -r f; do
    v=$(head -n1 "$f")
    if [ "$(basename "$f")" = scaling_setspeed ] &&
       [ "$(head -n1 "$(dirname "$f")/scaling_governor")" != userspace ]; then
      v="<unsupported>"
    fi
    printf '%s=%s\n' "$f" "$v"; done)
}

# node_xml FILE VM N CPU...: a libvirt test-driver node with one VM whose
# vCPU i is pinned to the i-th CPU given
node_xml() {
  local file=$1 vm=$2 n=$3; shift 3
  local pins="" i=0 c
  for c in "$@"; do pins+="<vcpupin vcpu='$i' cpuset='$c'/>"; i=$((i + 1)); done
  cat > "$file" <<EOF
<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>$n</active><nodes>1</nodes><sockets>1</sockets><cores>$n</cores><threads>1</threads></cpu>
  <memory>16777216</memory>
  <domain type='test'>
    <name>$vm</name><memory unit='MiB'>512</memory>
    <vcpu placement='static'>$#</vcpu><cputune>$pins</cputune>
    <os><type arch='x86_64'>hvm</type></os>
  </domain>
</node>
EOF
}

# start_monitor DIR VM CHANNELS EXEC...: our vm_power_mgr as a daemon on
# DIR/host (generated acpi-cpufreq tree, 4 CPUs), the test driver
# (DIR/node.xml), socket dir DIR/sock; sets MON_PID, CTL. MON_EXTRA (an
# array, optional) adds monitor options.
start_monitor() {
  local dir=$1; shift
  local vm=$1 chans=$2; shift 2
  local args=(-e "add_vm $vm" -e "add_channels $vm $chans") e
  for e in "$@"; do args+=(-e "$e"); done
  mkdir -p "$dir/sock"
  chmod 0700 "$dir/sock"
  CTL=("$REPO/target/release/vm_power_mgr" ctl --socket "$dir/ctl.sock")
  RTE_POWER_LOG=info "$REPO/target/release/vm_power_mgr" --daemon --uri "test://$dir/node.xml" \
    --socket-dir "$dir/sock" --sysfs "$dir/host" --ctl-socket "$dir/ctl.sock" --refresh-ms 0 \
    ${MON_EXTRA[@]+"${MON_EXTRA[@]}"} "${args[@]}" 2> "$dir/monitor.log" &
  MON_PID=$!
  local end=$((SECONDS + 20))
  until grep -q "running; control socket" "$dir/monitor.log" 2>/dev/null; do
    kill -0 "$MON_PID" 2>/dev/null && [ $SECONDS -lt $end ] || { cat "$dir/monitor.log" >&2; return 1; }
    sleep 0.05
  done
}

stop_monitor() {
  kill -TERM "$MON_PID" 2>/dev/null || true
  MON_RC=0; wait "$MON_PID" || MON_RC=$?
}

# bridge DIR VM LCORE...: socat as QEMU for each lcore: the guest's port
# DIR/ports/virtio.serial.port.poweragent.N (a pty) bridged to the
# channel socket DIR/sock/VM.N the monitor connects to; sets BRIDGES
bridge() {
  local dir=$1 vm=$2; shift 2
  local l
  BRIDGES=()
  mkdir -p "$dir/ports"
  for l in "$@"; do
    socat -d "PTY,link=$dir/ports/virtio.serial.port.poweragent.$l,rawer" \
      "UNIX-LISTEN:$dir/sock/$vm.$l" 2>> "$dir/socat.log" &
    BRIDGES+=($!)
  done
  local end=$((SECONDS + 10))
  for l in "$@"; do
    until [ -S "$dir/sock/$vm.$l" ] && [ -e "$dir/ports/virtio.serial.port.poweragent.$l" ]; do
      [ $SECONDS -lt $end ] || { echo "  socat bridge for lcore $l not up"; return 1; }
      sleep 0.05
    done
  done
}

unbridge() { local b; for b in "${BRIDGES[@]}"; do kill "$b" 2>/dev/null || true; wait "$b" 2>/dev/null || true; done; }

