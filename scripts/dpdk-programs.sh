#!/bin/bash
# dpdk-programs.sh [build|run|all] [PROGRAM...]
#
# DPDK 22.11's own programs (Debian's dpdk-doc sources, unchanged) on
# rte-power, each built two ways with the example's own Makefile:
#   relinked  PKGCONF is a pkg-config that puts rte_power ahead of libdpdk:
#             our include/ comes first and -lrte_power finds our library
#             (NEEDED librte_power_rs.so.0); run with LD_LIBRARY_PATH at a
#             staging install of rte-power (`make install`)
#   binary    the Makefile as is, against Debian's DPDK (NEEDED
#             librte_power.so.23); run with our librte_power.so.23 in
#             place: LD_LIBRARY_PATH at the staging install's DPDK ABI
#             directory, and for l3fwd-power's first scenario `make
#             dpdk-override` in a private mount namespace (the
#             system-wide way, tried without touching the host)
# Every run must show that ours was loaded: the running process maps our
# library and not Debian's (/proc/PID/maps), and our own log lines.
#
# Programs (default all):
#   l3fwd-power   scripts/l3fwd-power.sh run, both ways: legacy, pmd-mgmt
#                 scale and pause, empty poll, and the KVM guest mode
#                 against our vm_power_mgr
#   vm_power_mgr  DPDK's host monitor through ../shared/dpdk-vmpm/run.sh
#                 --bin (3 lcores on 2 CPUs): a load run and the hostile
#                 "safe" session; both CPUs restored at quit
#   guest_cli     DPDK's guest CLI through our vm_power_mgr, socat standing
#                 in for QEMU (each lcore's port a pty bridged to the
#                 channel socket): set_cpu_freq with every verb,
#                 query_cpu_freq, query_cpu_caps, send_policy now; the host
#                 CPU checked after each; then the TIME policy send_policy
#                 installed acted on at injected hours (the monitor's
#                 test-only --policy-clock): busy 3 -> max, quiet 11 ->
#                 min and guest requests refused, hour 0 -> the guest's
#   distributor   starts on 5 lcores over 2 CPUs (shared frequency
#                 domains), initialises power for its workers, picks the
#                 SST-BF priority core by capabilities; host restored,
#                 its restore journal (own directory) empty after it ends
# Needs root, 2 CPUs and scripts/deps.d/dpdk-programs.txt. Builds go to
# target/dpdk-programs/ (kept: a second run only relinks what changed).
# DPDK_PROGRAMS_KEEP=1 keeps the work directory.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED=$REPO/../shared
EXAMPLES=${DPDK_EXAMPLES:-/usr/share/dpdk/examples}
OUT=$REPO/target/dpdk-programs
STAGE=$OUT/stage/usr
WAYS=(relinked binary)
ALL=(l3fwd-power vm_power_mgr guest_cli distributor)

die() { echo "dpdk-programs: $*" >&2; exit 1; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }

# where each example's sources are and what its Makefile builds
src_of() {
  case $1 in
    l3fwd-power) echo l3fwd-power ;;
    vm_power_mgr) echo vm_power_manager ;;
    guest_cli) echo vm_power_manager/guest_cli ;;
    distributor) echo distributor ;;
    *) die "unknown program $1" ;;
  esac
}
app_of() {
  case $1 in
    guest_cli) echo guest_vm_power_mgr ;;
    distributor) echo distributor_app ;;
    *) echo "$1" ;;
  esac
}
# bin_of WAY PROGRAM: the built binary
bin_of() { echo "$OUT/$1/$(src_of "$2")/build/$(app_of "$2")-shared"; }
# lib_path_of WAY: LD_LIBRARY_PATH for that way
lib_path_of() {
  case $1 in
    relinked) echo "$STAGE/lib" ;;
    binary) echo "$STAGE/lib/rte-power" ;;
  esac
}

# ------------------------------------------------------------------ build
stage() {
  (cd "$REPO" && make -s >/dev/null && make -s install PREFIX="$STAGE" LDCONFIG= >/dev/null)
  [ -e "$STAGE/lib/librte_power.so" ] && [ -e "$STAGE/lib/rte-power/librte_power.so.23" ] ||
    die "staging install incomplete"
}

# the pkg-config of the relinked way: rte_power ahead of libdpdk
relink_pkgconf() {
  local w=$OUT/relink-pkg-config
  cat > "$w" <<EOF
#!/bin/sh
# pkg-config for a DPDK example's Makefile (PKGCONF=...): every query of
# libdpdk also asks for rte_power first (its .pc from the staging install),
# so our include/ comes first and -lrte_power resolves to our library.
PKG_CONFIG_PATH=$STAGE/lib/pkgconfig\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH
case " \$* " in *" --path "*) exec pkg-config "\$@" ;; esac
n=\$#
for a in "\$@"; do
  if [ "\$a" = libdpdk ]; then set -- "\$@" rte_power libdpdk; else set -- "\$@" "\$a"; fi
done
shift "\$n"
exec pkg-config "\$@"
EOF
  chmod +x "$w"
  echo "$w"
}

# unchanged: the dpdk-doc package's own checksums of every file we build
verify_sources() {
  local sum=/var/lib/dpkg/info/dpdk-doc.md5sums rel
  [ -z "${DPDK_EXAMPLES:-}" ] && [ -f "$sum" ] || return 0
  for p in "${PROGRAMS[@]}"; do
    rel=usr/share/dpdk/examples/$(src_of "$p")/
    (cd / && grep -E "  ${rel}[^/]+$" "$sum" | md5sum -c --quiet) ||
      die "the $p sources differ from the dpdk-doc package"
  done
  echo "sources: $EXAMPLES (dpdk-doc $(dpkg-query -W -f='${Version}' dpdk-doc), checksums verified)"
}

build_one() { # build_one WAY PROGRAM
  local way=$1 p=$2 src dir pkgconf=pkg-config
  src=$(src_of "$p")
  dir=$OUT/$way/$src
  mkdir -p "$dir"
  # a copy of the example (its Makefile builds next to its sources);
  # vm_power_manager's copy also holds guest_cli
  cp -a "$EXAMPLES/$src/." "$dir/"
  [ "$way" = relinked ] && pkgconf=$(relink_pkgconf)
  make -s -C "$dir" PKGCONF="$pkgconf" shared > "$dir/make.log" 2>&1 ||
    { cat "$dir/make.log" >&2; die "$way $p: make failed"; }
  check_link "$way" "$p"
}

# the binary needs our library (relinked) or DPDK's SONAME (binary), and
# resolves it to ours
check_link() {
  local way=$1 p=$2 bin needed resolved want
  bin=$(bin_of "$way" "$p")
  needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(librte_power[^]]*\)\].*/\1/p' | paste -sd' ' -)
  case $way in
    relinked) want=librte_power_rs.so.0 ;;
    binary) want=librte_power.so.23 ;;
  esac
  [ "$needed" = "$want" ] || die "$way $p: NEEDED '$needed', want '$want'"
  resolved=$(LD_LIBRARY_PATH=$(lib_path_of "$way") ldd "$bin" | awk '/librte_power/ { print $3 }')
  case $resolved in
    "$STAGE"/*) ;;
    *) die "$way $p: $want resolves to '$resolved', not the staging install" ;;
  esac
  printf '%-9s %-13s NEEDED %-21s -> %s\n' "$way" "$p" "$want" "${resolved#"$REPO"/}"
}

build() {
  [ -d "$EXAMPLES" ] || die "no $EXAMPLES (apt-get install dpdk-doc)"
  pkg-config --exists libdpdk || die "no libdpdk.pc (apt-get install libdpdk-dev)"
  verify_sources
  stage
  for way in "${WAYS[@]}"; do
    for p in "${PROGRAMS[@]}"; do build_one "$way" "$p"; done
  done
}

# ------------------------------------------------------------------ helpers
# shellcheck source=scripts/dpdk/common.sh
. "$HERE/dpdk/common.sh"
WORK=""
PASSED=()
FAILED=()

result() { # result NAME OK LOG
  if [ "$2" = 1 ]; then
    echo "PASS $1"; PASSED+=("$1")
  else
    echo "FAIL $1${3:+ (log: $3)}"; FAILED+=("$1")
    [ -n "${3:-}" ] && [ -f "$3" ] && tail -n 25 "$3" | sed 's/^/  | /'
  fi
}

# ------------------------------------------------------------------ l3fwd-power
run_l3fwd() {
  local way
  for way in "${WAYS[@]}"; do
    echo "== l3fwd-power, $way"
    if L3FWD_WAY=$way L3FWD_BIN=$(bin_of "$way" l3fwd-power) L3FWD_LIB_PATH=$(lib_path_of "$way") \
       L3FWD_STAGE=$STAGE bash "$HERE/l3fwd-power.sh" run-scenarios; then
      PASSED+=("l3fwd-power $way")
    else
      FAILED+=("l3fwd-power $way")
    fi
  done
}

# ------------------------------------------------------------------ vm_power_mgr
run_vmpm() {
  local way=$1 dir=$WORK/vmpm-$way ok=1 bin
  bin=$(bin_of "$way" vm_power_mgr)
  mkdir -p "$dir"
  echo "== vm_power_mgr (DPDK's host monitor), $way"
  # run.sh builds its LD_PRELOAD shim (and DPDK's own binaries) once
  bash "$SHARED/dpdk-vmpm/build.sh" --no-deps > "$dir/build.log" 2>&1 ||
    { cat "$dir/build.log"; result "vm_power_mgr $way" 0; return; }
  local common=(--bin "$bin" --no-perf --keep --ncpus 8)
  ( export LD_LIBRARY_PATH; LD_LIBRARY_PATH=$(lib_path_of "$way")
    export RTE_POWER_LOG=info VMPM_WORK=$dir/load
    mkdir -p "$VMPM_WORK"
    bash "$SHARED/dpdk-vmpm/run.sh" "${common[@]}" --runs 1x1 --windows 1 --seconds 1 --idle 0
    export VMPM_WORK=$dir/hostile
    mkdir -p "$VMPM_WORK"
    bash "$SHARED/dpdk-vmpm/run.sh" "${common[@]}" --hostile --cases safe
  ) > "$dir/run.out" 2> "$dir/run.err" || ok=0
  local r kind
  for kind in load hostile; do
    r=$(find "$dir/$kind" -maxdepth 1 -name 'run.*' -type d | head -n1)
    if [ -z "$r" ]; then echo "  $kind: no run directory"; ok=0; continue; fi
    # it started: 3 lcores on 2 CPUs, every power init accepted
    if grep -q "Unable to initialize power manager" "$r/monitor.log"; then
      echo "  $kind: $(grep -m1 'Unable to initialize' "$r/monitor.log")"; ok=0
    fi
    local inits
    inits=$(grep -c 'rte_power: INFO: lcore [0-9]*: initialised on cpu' "$r/monitor.log" || true)
    echo "  $kind: $inits lcores initialised by rte-power ($(grep -o 'sharing the frequency domain of cpu [0-9]* with lcore(s) [0-9, ]*' "$r/monitor.log" | head -1))"
    [ "$inits" = 3 ] || ok=0
    if [ "$way" = binary ]; then
      grep -q 'rte-power .* serving the DPDK 22.11 binary ABI (librte_power.so.23)' "$r/monitor.log" ||
        { echo "  $kind: no 'serving the DPDK 22.11 binary ABI' line"; ok=0; }
    fi
    # restored at quit: both CPUs' governors as before (DPDK's own library
    # leaves CPU 1, shared by lcores 1 and 2, at userspace)
    local c gov
    for c in 0 1; do
      gov=$(val "$r/sys/cpu$c/cpufreq/scaling_governor")
      [ "$gov" = schedutil ] || { echo "  $kind: cpu$c governor $gov after quit"; ok=0; }
    done
    echo "  $kind: after quit cpu0 $(val "$r/sys/cpu0/cpufreq/scaling_governor"), cpu1 $(val "$r/sys/cpu1/cpufreq/scaling_governor")"
  done
  # the load was served, every request answered
  local line
  line=$(grep -E '^\| 1 \(1x1\)' "$dir/run.out" || true)
  echo "  load: ${line:-no result row}"
  [ -n "$line" ] || ok=0
  grep -q 'monitor stopped by: quit, exit status 0' "$dir/run.out" ||
    { echo "  the monitor did not end on quit:"; { grep 'monitor stopped by' "$dir/run.out" || true; } | sed 's/^/  /'; ok=0; }
  # the hostile cases: every case answered as loadgen expects of a sane
  # monitor, nothing died
  local hr
  hr=$(find "$dir/hostile" -maxdepth 1 -name 'run.*' -type d | head -n1)
  if [ -n "$hr" ] && [ -f "$hr/result.json" ]; then
    python3 - "$hr/result.json" <<'EOF' || ok=0
import json, sys
r = json.load(open(sys.argv[1]))
cases = [c for c in r.get("cases", []) if "reply" in c]
dead = [c["case"] for c in cases if c.get("monitor_alive") is False or c.get("monitor_answers_probe") is False]
print(f"  hostile: {len(cases)} cases run, monitor alive and answering after each: {not dead}")
for c in cases:
    print(f"    {c['case']:<20} reply {c['reply']}; sysfs {'; '.join(c['sysfs_changed']) or 'unchanged'}")
sys.exit(1 if dead or len(cases) < 20 else 0)
EOF
  else
    echo "  hostile: no result"; ok=0
  fi
  result "vm_power_mgr $way" $ok "$dir/run.err"
}

# ------------------------------------------------------------------ guest_cli
run_guest_cli() {
  local way=$1 dir=$WORK/guest-cli-$way ok=1 bin vm=guestvm
  bin=$(bin_of "$way" guest_cli)
  mkdir -p "$dir"
  echo "== guest_cli (DPDK's guest CLI) through our vm_power_mgr, $way"
  # the host: 4 CPUs; the guest's vCPU 0 on pCPU 2, vCPU 1 on pCPU 3
  "$SHARED/dpdk-ref/mkfakesys.sh" "$dir/host" 4 acpi-cpufreq > /dev/null
  node_xml "$dir/node.xml" "$vm" 4 2 3
  state "$dir/host" > "$dir/before"
  # the policy engine's hour comes from a file (test-only option)
  echo "7 0" > "$dir/clock"
  MON_EXTRA=(--policy-clock "$dir/clock" --policy-tick-ms 10)
  start_monitor "$dir" "$vm" 0-1 "set_query $vm enable" || { result "guest_cli $way" 0 "$dir/monitor.log"; return; }
  MON_EXTRA=()
  bridge "$dir" "$vm" 0 1 || ok=0
  # the guest: EAL lcores 0 and 1, each with its port (KVM env)
  mkfifo "$dir/cli"
  RTE_POWER_LOG=info RTE_POWER_VIRTIO_PORTS_DIR=$dir/ports RTE_POWER_VIRTIO_CLASS_DIR=$dir/none \
    LD_LIBRARY_PATH=$(lib_path_of "$way") \
    "$bin" -l 0-1 --no-huge --no-pci -m 64 --no-shconf --no-telemetry --file-prefix "gcli-$$-$way" \
    --log-level=lib.eal:warning < "$dir/cli" > "$dir/guest.out" 2> "$dir/guest.err" &
  local gpid=$!
  exec {feed}> "$dir/cli"
  local end=$((SECONDS + 20))
  until grep -q "vmpower(guest)>" "$dir/guest.out" 2>/dev/null; do
    kill -0 "$gpid" 2>/dev/null && [ $SECONDS -lt $end ] || { ok=0; break; }
    sleep 0.05
  done
  ours_loaded "$gpid" "$way" || ok=0
  local table
  read -r -a table < "$dir/host/cpu2/cpufreq/scaling_available_frequencies"
  local n=${#table[@]} last=$(( ${#table[@]} - 1 ))
  # cmd: the command; want: the line guest_cli must print; idx: the table
  # index pCPU 2 must then be at (- : unchanged)
  # vCPU 1 (pCPU 3) first: brought under management at its maximum, so
  # that the queries of all vCPUs below find both pCPUs managed (bringing
  # one under management costs more than guest_cli's 10 ms reply timeout
  # on a loaded 2-CPU machine)
  local steps=(
    "set_cpu_freq 1 max|ACK received for message sent to host.|-"
    "set_cpu_freq 0 down|ACK received for message sent to host.|1"
    "set_cpu_freq 0 up|ACK received for message sent to host.|0"
    "set_cpu_freq 0 min|ACK received for message sent to host.|$last"
    "set_cpu_freq 0 max|ACK received for message sent to host.|0"
    "set_cpu_freq 0 disable_turbo|ACK received for message sent to host.|1"
    "set_cpu_freq 0 enable_turbo|ACK received for message sent to host.|0"
    "set_cpu_freq 0 down|ACK received for message sent to host.|1"
    "query_cpu_freq 0|Frequency of [0] vcore is ${table[1]}.|-"
    "query_cpu_freq all|Frequency of [1] vcore is ${table[0]}.|-"
    "query_cpu_caps 0|Capabilities of [0] vcore are: turbo possibility: 1, is priority core: 0.|-"
    "query_cpu_caps all|Capabilities of [1] vcore are: turbo possibility: 1, is priority core: 0.|-"
    "send_policy now|ACK for sent policy received.|-"
  )
  local s cmd want idx got before_lines
  for s in "${steps[@]}"; do
    IFS='|' read -r cmd want idx <<<"$s"
    before_lines=$(wc -l < "$dir/guest.out")
    printf '%s\n' "$cmd" >&"$feed"
    end=$((SECONDS + 5))
    until tail -n +"$((before_lines + 1))" "$dir/guest.out" | grep -qF -- "$want"; do
      [ $SECONDS -lt $end ] || break
      sleep 0.05
    done
    if tail -n +"$((before_lines + 1))" "$dir/guest.out" | grep -qF -- "$want"; then
      got="$want"
    else
      got="(no '$want')"; ok=0
    fi
    if [ "$idx" != - ]; then
      local speed
      speed=$(val "$dir/host/cpu2/cpufreq/scaling_setspeed")
      if [ "$speed" = "${table[$idx]}" ]; then
        got+="  host cpu2 ${speed} kHz (table[$idx])"
      else
        got+="  host cpu2 ${speed} kHz, want ${table[$idx]} (table[$idx])"; ok=0
      fi
    fi
    printf '  %-30s %s\n' "$cmd" "$got"
  done
  # vCPU 1 was only asked for its maximum: pCPU 3 stayed there
  [ "$(val "$dir/host/cpu3/cpufreq/scaling_setspeed")" = "${table[0]}" ] ||
    { echo "  pCPU 3 at $(val "$dir/host/cpu3/cpufreq/scaling_setspeed"), not ${table[0]}"; ok=0; }
  # the monitor answered vm_name "ubuntu2" as this VM's and counted it
  local show
  show=$("${CTL[@]}" show_vm "$vm" 2>&1 || true)
  if grep -q "vm_name ignored in .* (last: 'ubuntu2')" <<<"$show"; then
    echo "  monitor: $(grep -o "vm_name ignored in [0-9]* request(s) (last: 'ubuntu2')" <<<"$show")"
  else
    echo "  monitor: no ignored vm_name counted:"; sed 's/^/    /' <<<"$show"; ok=0
  fi
  policy_at_hours "$dir" "$feed" "${table[0]}" "${table[$last]}" "$vm" || ok=0
  printf 'quit\n' >&"$feed"
  exec {feed}>&-
  end=$((SECONDS + 10))
  while kill -0 "$gpid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.05; done
  kill -KILL "$gpid" 2>/dev/null || true
  wait "$gpid" || true
  grep -q 'rte_power: INFO: lcore 1: connected to the host (kvm-vm)' "$dir/guest.err" ||
    { echo "  no rte_power log line from the guest"; ok=0; }
  [ "$way" = relinked ] || grep -q 'serving the DPDK 22.11 binary ABI' "$dir/guest.err" ||
    { echo "  no 'serving the DPDK 22.11 binary ABI' line"; ok=0; }
  unbridge
  stop_monitor
  [ "$MON_RC" = 0 ] || { echo "  monitor exit status $MON_RC"; ok=0; }
  state "$dir/host" > "$dir/after"
  if diff -q "$dir/before" "$dir/after" > /dev/null; then
    echo "  host restored at the monitor's SIGTERM: $(wc -l < "$dir/before") writable attributes as before"
  else
    echo "  host not restored:"; { diff "$dir/before" "$dir/after" || true; } | sed 's/^/    /'; ok=0
  fi
  result "guest_cli $way" $ok "$dir/guest.err"
}

# policy_at_hours DIR FEED MAX MIN VM: the TIME policy guest_cli's
# `send_policy now` installed (busy 3,4,5, quiet 11,12,13, traffic 8,10
# without a VF) acted on at injected hours, on both pCPUs (2, 3)
policy_at_hours() {
  local dir=$1 feed=$2 max=$3 min=$4 vm=$5 ok=1 hour want c speed end show
  for hour in 11 3 0; do
    echo "$hour 0" > "$dir/clock.new" && mv "$dir/clock.new" "$dir/clock"
    case $hour in 3) want=$max ;; 11) want=$min ;; *) want=- ;; esac
    end=$((SECONDS + 10))
    until "${CTL[@]}" show_policies --json 2>/dev/null | grep -q "\"hour\":$hour,"; do
      [ $SECONDS -lt $end ] || { echo "  policy: the engine never saw hour $hour"; ok=0; break; }
      sleep 0.05
    done
    # one more tick after the hour was seen
    sleep 0.05
    show=$("${CTL[@]}" show_vm "$vm" 2>&1 || true)
    if [ "$want" = - ]; then
      grep -q "decision: leave to guest (hour $hour: in no list" <<<"$show" ||
        { echo "  policy: hour $hour not left to the guest:"; sed 's/^/    /' <<<"$show"; ok=0; }
      # the guest decides: its request is served
      printf 'set_cpu_freq 0 min\n' >&"$feed"
      end=$((SECONDS + 5))
      until [ "$(val "$dir/host/cpu2/cpufreq/scaling_setspeed")" = "$min" ] || [ $SECONDS -ge $end ]; do sleep 0.05; done
      speed=$(val "$dir/host/cpu2/cpufreq/scaling_setspeed")
      [ "$speed" = "$min" ] || { echo "  policy: hour $hour, the guest's min not served (cpu2 $speed)"; ok=0; }
      echo "  policy at hour $hour: left to the guest, its set_cpu_freq 0 min served (cpu2 $speed kHz)"
      continue
    fi
    for c in 2 3; do
      speed=$(val "$dir/host/cpu$c/cpufreq/scaling_setspeed")
      [ "$speed" = "$want" ] || { echo "  policy: hour $hour, cpu$c at $speed, want $want"; ok=0; }
    done
    echo "  policy at hour $hour: cpu2 and cpu3 at $want kHz ($(grep -o "decision: [a-z]* (hour $hour: [a-z]* hour)" <<<"$show" || echo '?'))"
    if [ "$hour" = 11 ]; then
      # the policy holds the vCPU: the guest's request is refused
      printf 'set_cpu_freq 0 max\n' >&"$feed"
      end=$((SECONDS + 5))
      until grep -q "refused CPU_POWER(vCPU 0): vCPU 0 is held by the VM's TIME policy" "$dir/monitor.log" || [ $SECONDS -ge $end ]; do sleep 0.05; done
      grep -q "refused CPU_POWER(vCPU 0): vCPU 0 is held by the VM's TIME policy" "$dir/monitor.log" ||
        { echo "  policy: the guest's request at a quiet hour was not refused"; ok=0; }
      [ "$(val "$dir/host/cpu2/cpufreq/scaling_setspeed")" = "$min" ] || { echo "  policy: cpu2 left min"; ok=0; }
    fi
  done
  [ $ok = 1 ]
}

# ------------------------------------------------------------------ distributor
run_distributor() {
  local way=$1 dir=$WORK/distributor-$way ok=1 bin
  bin=$(bin_of "$way" distributor)
  mkdir -p "$dir"
  echo "== distributor, $way"
  # intel_pstate with SST-BF: CPU 1 is a priority core
  PRIO_CPUS=1 "$SHARED/dpdk-ref/mkfakesys.sh" "$dir/sys" 2 intel_pstate > /dev/null
  state "$dir/sys" > "$dir/before"
  # 5 lcores on 2 CPUs: workers 1-4 on CPUs 1, 0, 1, 1; the restore
  # journal of this run in its own directory
  # shellcheck disable=SC2016
  RTE_POWER_LOG=info RTE_POWER_JOURNAL_DIR=$dir/journal LD_LIBRARY_PATH=$(lib_path_of "$way") \
    unshare -m -- bash -c 'mount --make-rprivate / && mount --bind "$0" /sys/devices/system/cpu && exec "$@"' \
    "$dir/sys" "$bin" --lcores=0@0,1@1,2@0,3@1,4@1 --no-huge --no-pci --no-shconf --no-telemetry \
    --file-prefix "dist-$$-$way" -m 1024 --vdev=net_null0 --log-level=lib.eal:warning -- -p 1 \
    > "$dir/out" 2> "$dir/err" &
  local pid=$! end=$((SECONDS + 20))
  until grep -q "Distributor on" "$dir/out" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ] || { ok=0; break; }
    sleep 0.05
  done
  sleep 1
  local dpid
  dpid=$(pgrep -P "$pid" -f "$bin" || echo "$pid")
  ours_loaded "$dpid" "$way" || ok=0
  local inits records
  records=$(find "$dir/journal" -name '*.rec' 2>/dev/null | wc -l)
  echo "  $records restore-journal records while running (one per CPU)"
  [ "$records" = 2 ] || ok=0
  inits=$(grep -c 'rte_power: INFO: lcore [1-4]: initialised on cpu' "$dir/err" || true)
  echo "  $inits worker lcores initialised ($(grep -c 'sharing the frequency domain' "$dir/err" || true) of them joining a shared domain)"
  [ "$inits" = 4 ] || ok=0
  grep -q "Library initialization failed" "$dir/err" && { echo "  $(grep -m1 'initialization failed' "$dir/err")"; ok=0; }
  echo "  $(grep -m1 'Distributor on' "$dir/out" || echo 'no distributor core')"
  grep -q "Distributor on priority core 1" "$dir/out" || ok=0
  echo "  cpu1 while running: governor $(val "$dir/sys/cpu1/cpufreq/scaling_governor")"
  [ "$(val "$dir/sys/cpu1/cpufreq/scaling_governor")" = performance ] || ok=0
  [ "$way" = relinked ] || grep -q 'serving the DPDK 22.11 binary ABI' "$dir/err" ||
    { echo "  no 'serving the DPDK 22.11 binary ABI' line"; ok=0; }
  # SIGINT: the sample's own way out; its threads exit power first. Its
  # shutdown can hang: the distributor thread tells the workers to quit,
  # then flushes and waits for packets they no longer return (on this
  # 2-CPU machine DPDK's own library hangs there too, one run in three).
  # After 8 s it is killed; the restore has happened by then
  kill -INT "$dpid" 2>/dev/null || true
  end=$((SECONDS + 8))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    echo "  (the sample did not end within 8 s of SIGINT: killed)"
  fi
  { wait "$pid"; } 2>/dev/null || true
  records=$(find "$dir/journal" -name '*.rec' 2>/dev/null | wc -l)
  echo "  $records restore-journal records after it ended"
  [ "$records" = 0 ] || ok=0
  state "$dir/sys" > "$dir/after"
  if diff -q "$dir/before" "$dir/after" > /dev/null; then
    echo "  restored at exit: $(wc -l < "$dir/before") writable attributes as before"
  else
    echo "  not restored:"; { diff "$dir/before" "$dir/after" || true; } | sed 's/^/    /'; ok=0
  fi
  result "distributor $way" $ok "$dir/err"
}

run() {
  [ "$(id -u)" = 0 ] || die "run needs root (unshare -m, mount --bind)"
  [ "$(nproc)" -ge 2 ] || die "needs 2 CPUs"
  command -v socat >/dev/null || die "socat is needed (scripts/deps.d/dpdk-programs.txt)"
  (cd "$REPO" && cargo build --release --locked -q)
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/dpdk-programs.XXXXXX")
  # shellcheck disable=SC2064
  [ "${DPDK_PROGRAMS_KEEP:-0}" = 1 ] && echo "work: $WORK" || trap "rm -rf '$WORK'" EXIT
  local p way t
  for p in "${PROGRAMS[@]}"; do
    t=$SECONDS
    case $p in
      l3fwd-power) run_l3fwd ;;
      vm_power_mgr) for way in "${WAYS[@]}"; do run_vmpm "$way"; done ;;
      guest_cli) for way in "${WAYS[@]}"; do run_guest_cli "$way"; done ;;
      distributor) for way in "${WAYS[@]}"; do run_distributor "$way"; done ;;
    esac
    echo "-- $p: $((SECONDS - t)) s"
  done
  echo
  echo "dpdk-programs: ${#PASSED[@]} passed, ${#FAILED[@]} failed${FAILED:+ (${FAILED[*]})}"
  [ ${#FAILED[@]} -eq 0 ]
}

cmd=${1:-all}
[ $# -gt 0 ] && shift
PROGRAMS=("$@")
[ ${#PROGRAMS[@]} -gt 0 ] || PROGRAMS=("${ALL[@]}")
for p in "${PROGRAMS[@]}"; do src_of "$p" > /dev/null; done
case "$cmd" in
  build) build ;;
  run) run ;;
  all) build; run ;;
  -h|--help) usage ;;
  *) usage ;;
esac
