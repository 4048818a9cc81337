#!/bin/bash
# l3fwd-power.sh [build|run|all] [SCENARIO...]
#
# DPDK 22.11's own examples/l3fwd-power (Debian package dpdk-doc), built
# unchanged with rte-power's include/ first and target/release/librte_power.so
# in place of DPDK's -lrte_power, then run with a virtual NIC on simulated
# hosts. Needs root (private mount namespaces), 2 CPUs, and the packages of
# scripts/deps.d/l3fwd.txt.
#
#   build   build target/l3fwd-power/l3fwd-power (+ the header checks) and
#           check with readelf/ldd/nm that DPDK's librte_power is not used
#   run     run the scenarios (all, or those named); each prints PASS/FAIL
#   all     build, then run (default)
#
# Before the scenarios: api-2411 (a DPDK 24.11-style source on a generated
# tree) and pmd-ethdev (enable/disable return values through DPDK's ethdev).
# Scenarios (host = generated acpi-cpufreq tree with Intel uncore, bind-mounted
# over /sys/devices/system/cpu in a private mount namespace):
#   legacy-busy    --legacy -U, net_null (always traffic): frequency up to the
#                  top, uncore pinned to its maximum
#   legacy-idle    --legacy, net_ring (no traffic): frequency down
#   scale-busy     --pmd-mgmt scale, net_null: SCALE callback -> max
#   scale-idle     --pmd-mgmt scale, net_ring: SCALE callback -> min
#   pause          --pmd-mgmt pause, net_ring: PAUSE callback runs, host untouched
#   monitor        --pmd-mgmt monitor: refused with -ENOTSUP (no monitor
#                  address on a virtual NIC), the app exits cleanly
#   empty-poll     --empty-poll 0,...: 22.11 empty-poll API, MED then HGH
#   guest-scale    KVM guest layout (no cpufreq, ports = ptys of a stand-in
#                  host): --pmd-mgmt scale sends CONNECT, SCALE_MIN, SCALE_MAX
# After every host scenario all writable sysfs values must be what they were.
#
# Environment: L3FWD_SRC (default /usr/share/dpdk/examples/l3fwd-power),
# L3FWD_KEEP=1 keeps the work directory and logs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SHARED=$REPO/../shared
SRC=${L3FWD_SRC:-/usr/share/dpdk/examples/l3fwd-power}
OUT=$REPO/target/l3fwd-power
LIBDIR=$REPO/target/release
LIB=$LIBDIR/librte_power.so
BIN=$OUT/l3fwd-power

die() { echo "l3fwd-power: $*" >&2; exit 1; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 2; }

# ------------------------------------------------------------------ build
build() {
  [ -f "$SRC/main.c" ] || die "no $SRC/main.c (apt-get install dpdk-doc)"
  pkg-config --exists libdpdk || die "no libdpdk.pc (apt-get install libdpdk-dev)"
  # unchanged: the package's own checksums
  if [ -z "${L3FWD_SRC:-}" ] && [ -f /var/lib/dpkg/info/dpdk-doc.md5sums ]; then
    (cd / && grep -E 'examples/l3fwd-power/(main|perf_core)\.[ch]$' /var/lib/dpkg/info/dpdk-doc.md5sums \
      | md5sum -c --quiet) || die "the l3fwd-power sources differ from the dpdk-doc package"
    echo "sources: $SRC (dpdk-doc $(dpkg-query -W -f='${Version}' dpdk-doc), checksums verified)"
  fi
  (cd "$REPO" && cargo build --release --locked -q)
  [ -f "$LIB" ] || die "no $LIB"
  mkdir -p "$OUT"

  local cflags dpdk_libs
  # rte-power's headers first, DPDK's after them; the example's own flags
  cflags="-O2 -g -I$REPO/include $(pkg-config --cflags libdpdk) -DALLOW_EXPERIMENTAL_API"
  # DPDK's link line without its librte_power
  dpdk_libs=$(pkg-config --libs libdpdk | tr ' ' '\n' | grep -vx -- '-lrte_power' | tr '\n' ' ')
  # shellcheck disable=SC2086
  cc $cflags "$SRC/main.c" "$SRC/perf_core.c" -o "$BIN" \
    "$LIB" -Wl,-rpath,"$LIBDIR" $dpdk_libs -lm
  echo "built: $BIN"

  # the header checks: 22.11 header set + layouts, and a 24.11-style source
  # shellcheck disable=SC2086
  cc -std=gnu11 -Wall -Wextra -Werror $cflags -c "$HERE/l3fwd/layout.c" -o "$OUT/layout.o"
  # shellcheck disable=SC2086
  cc -std=gnu11 -Wall -Wextra -Werror -I"$REPO/include" $(pkg-config --cflags libdpdk) \
    "$HERE/l3fwd/api-2411.c" -o "$OUT/api-2411" "$LIB" -Wl,-rpath,"$LIBDIR"
  # shellcheck disable=SC2086
  cc -std=gnu11 -Wall -Wextra -Werror $cflags "$HERE/l3fwd/pmd-ethdev.c" -o "$OUT/pmd-ethdev" \
    "$LIB" -Wl,-rpath,"$LIBDIR" $dpdk_libs
  echo "headers: layout.c, api-2411.c and pmd-ethdev.c compile with include/ before DPDK's headers"

  check_link
}

check_link() {
  local fail=0 needed undef ours missing
  needed=$(readelf -d "$BIN" | awk '/NEEDED/ { gsub(/[][]/, "", $NF); print $NF }')
  if grep -qx 'librte_power_rs.so.0' <<<"$needed" && ! grep -q '^librte_power.so' <<<"$needed"; then
    echo "readelf: NEEDED librte_power_rs.so.0 (rte-power), not DPDK's librte_power.so.23"
  else
    echo "readelf: unexpected NEEDED list:"; echo "$needed"; fail=1
  fi
  local resolved
  resolved=$(ldd "$BIN" | awk '/librte_power/ { print $1 " => " $3 }')
  if [ "$resolved" = "librte_power_rs.so.0 => $LIBDIR/librte_power_rs.so.0" ]; then
    echo "ldd: $resolved"
  else
    echo "ldd: unexpected librte_power resolution: ${resolved:-none}"; fail=1
  fi
  # every power symbol the app needs is defined by our library
  undef=$(nm -D --undefined-only "$BIN" | awk '{ print $NF }' | sed 's/@.*//' \
    | grep -E '^(rte_power_|rte_empty_poll)' | sort -u)
  ours=$(nm -D --defined-only "$LIB" | awk '{ print $NF }' | sort -u)
  missing=$(comm -23 <(echo "$undef") <(echo "$ours"))
  if [ -n "$undef" ] && [ -z "$missing" ]; then
    echo "nm: the app needs $(wc -l <<<"$undef") rte_power symbols, all defined by rte-power:"
    echo "$undef" | tr '\n' ' ' | fold -s -w 100 | sed 's/^/  /'; echo
  else
    echo "nm: not defined by rte-power: $missing"; fail=1
  fi
  # and our library depends on no DPDK library and no DPDK symbol
  if readelf -d "$LIB" | grep NEEDED | grep -q librte_; then
    echo "readelf: $LIB needs a DPDK library"; fail=1
  elif nm -D --undefined-only "$LIB" | awk '{ print $NF }' | grep -q '^rte_'; then
    echo "nm: $LIB has undefined rte_ symbols"; fail=1
  else
    echo "readelf/nm: $(basename "$LIB") needs no DPDK library and no rte_ symbol (dlsym at run time)"
  fi
  [ $fail = 0 ] || die "link checks failed"
}

# ------------------------------------------------------------------ run
WORK=""
FAILED=()
PASSED=()

# A host tree: acpi-cpufreq on 2 CPUs (mkfakesys.sh of ../shared/dpdk-ref)
# plus one uncore die whose limits are narrower than its initial ones.
make_host_tree() {
  local dir=$1 flavour=${2:-acpi-cpufreq}
  rm -rf "$dir"
  "$SHARED/dpdk-ref/mkfakesys.sh" "$dir" 2 "$flavour" >/dev/null
  local u=$dir/intel_uncore_frequency/package_00_die_00
  mkdir -p "$u"
  printf '2400000\n' > "$u/initial_max_freq_khz"
  printf '800000\n' > "$u/initial_min_freq_khz"
  printf '2000000\n' > "$u/max_freq_khz"
  printf '1200000\n' > "$u/min_freq_khz"
  printf '1600000\n' > "$u/current_freq_khz"
  chmod 0444 "$u"/initial_* "$u/current_freq_khz"
}

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

val() { head -n1 "$1" 2>/dev/null || true; }

# wait_for FILE VALUE SECONDS: polls until the first line of FILE is VALUE
wait_for() {
  local end=$((SECONDS + $3))
  while [ $SECONDS -lt $end ]; do
    [ "$(val "$1")" = "$2" ] && return 0
    kill -0 "$PID" 2>/dev/null || return 1
    sleep 0.05
  done
  [ "$(val "$1")" = "$2" ]
}

# start TREE LOG ARGS...: l3fwd-power in a private mount namespace with TREE
# over /sys/devices/system/cpu; sets PID.
start() {
  local tree=$1 log=$2; shift 2
  # shellcheck disable=SC2016
  unshare -m -- bash -c 'mount --make-rprivate / && mount --bind "$0" /sys/devices/system/cpu && exec "$@"' \
    "$tree" "$BIN" -l 0-1 --no-huge --no-pci --no-shconf --file-prefix="l3fwd-rs-$$" -m 256 \
    --log-level=lib.eal:warning "$@" >"$log" 2>&1 &
  PID=$!
}

# stop: SIGINT (the app's own way out), wait at most 15 s; sets RC
stop() {
  kill -INT "$PID" 2>/dev/null || true
  local end=$((SECONDS + 15))
  while kill -0 "$PID" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.05; done
  if kill -0 "$PID" 2>/dev/null; then
    kill -KILL "$PID" 2>/dev/null || true
    echo "  (killed: did not exit after SIGINT)"
  fi
  RC=0; wait "$PID" || RC=$?
}

result() {
  local name=$1 ok=$2 log=$3
  if [ "$ok" = 1 ]; then
    echo "PASS $name"; PASSED+=("$name")
  else
    echo "FAIL $name (log: $log)"; FAILED+=("$name")
    tail -n 25 "$log" | sed 's/^/  | /'
  fi
}

APP=(-- -p 0x1 --config="(0,0,1)" --parse-ptype)

# host_scenario NAME VDEV CHECK ARGS...: CHECK is a function run while the
# app runs (it may wait for values); then SIGINT, exit 0, host restored.
host_scenario() {
  local name=$1 vdev=$2 check=$3; shift 3
  local tree=$WORK/$name/sys log=$WORK/$name/log ok=1
  mkdir -p "$WORK/$name"
  make_host_tree "$tree"
  state "$tree" > "$WORK/$name/before"
  RTE_POWER_LOG=info start "$tree" "$log" --vdev="$vdev" "${APP[@]}" "$@"
  if ! "$check" "$tree"; then ok=0; echo "  check failed while running"; fi
  stop
  if [ "$RC" != 0 ]; then ok=0; echo "  exit status $RC"; fi
  state "$tree" > "$WORK/$name/after"
  if ! diff -u "$WORK/$name/before" "$WORK/$name/after" > "$WORK/$name/diff"; then
    ok=0; echo "  not restored:"; sed 's/^/  /' "$WORK/$name/diff"
  else
    echo "  restored: $(wc -l < "$WORK/$name/before") writable attributes as before"
  fi
  result "$name" $ok "$log"
}

CPU1=cpu1/cpufreq
UNC=intel_uncore_frequency/package_00_die_00

check_legacy_busy() {
  wait_for "$1/$CPU1/scaling_setspeed" 2601000 10 || return 1
  echo "  cpu1: governor $(val "$1/$CPU1/scaling_governor"), setspeed 2000000 -> $(val "$1/$CPU1/scaling_setspeed") kHz"
  [ "$(val "$1/$CPU1/scaling_governor")" = userspace ] || return 1
  echo "  uncore: min $(val "$1/$UNC/min_freq_khz") max $(val "$1/$UNC/max_freq_khz") kHz (-U)"
  [ "$(val "$1/$UNC/min_freq_khz")" = 2400000 ] && [ "$(val "$1/$UNC/max_freq_khz")" = 2400000 ]
}

check_legacy_idle() {
  wait_for "$1/$CPU1/scaling_setspeed" 1200000 15 || return 1
  echo "  cpu1: setspeed 2000000 -> $(val "$1/$CPU1/scaling_setspeed") kHz (no traffic)"
}

check_scale_busy() {
  wait_for "$1/$CPU1/scaling_setspeed" 2601000 10 || return 1
  echo "  cpu1: governor $(val "$1/$CPU1/scaling_governor"), setspeed -> $(val "$1/$CPU1/scaling_setspeed") kHz (SCALE, traffic)"
  # lcore 0 polls nothing: pmd-mgmt never initialised it
  [ "$(val "$1/cpu0/cpufreq/scaling_governor")" = schedutil ]
}

check_scale_idle() {
  wait_for "$1/$CPU1/scaling_setspeed" 1200000 10 || return 1
  echo "  cpu1: governor $(val "$1/$CPU1/scaling_governor"), setspeed -> $(val "$1/$CPU1/scaling_setspeed") kHz (SCALE, idle)"
}

check_log_line() { # waits for a line in the scenario log
  local log=$1 pat=$2 end=$((SECONDS + 10))
  while [ $SECONDS -lt $end ]; do
    grep -q -- "$pat" "$log" && return 0
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  grep -q -- "$pat" "$log"
}

check_pause() {
  check_log_line "$(dirname "$1")/log" 'port 0 queue 0 power-managed (Pause)' || return 1
  echo "  $(grep -o 'lcore 1: port 0 queue 0 power-managed (Pause)' "$(dirname "$1")/log")"
  # let the PAUSE callback run a while; the host must not change
  sleep 1
  kill -0 "$PID" 2>/dev/null && [ "$(val "$1/$CPU1/scaling_governor")" = schedutil ]
}

check_empty_poll() {
  # stat_init puts the worker at MED (index 9), traffic moves it to HGH (1)
  wait_for "$1/$CPU1/scaling_setspeed" 1800000 10 || return 1
  echo "  cpu1: MED_NORMAL at $(val "$1/$CPU1/scaling_setspeed") kHz"
  wait_for "$1/$CPU1/scaling_setspeed" 2600000 10 || return 1
  echo "  cpu1: HGH_BUSY at $(val "$1/$CPU1/scaling_setspeed") kHz after ~1 s of busy intervals"
}

scenario_monitor() {
  local name=monitor tree=$WORK/monitor/sys log=$WORK/monitor/log ok=1
  mkdir -p "$WORK/$name"
  make_host_tree "$tree"
  state "$tree" > "$WORK/$name/before"
  RTE_POWER_LOG=info start "$tree" "$log" --vdev=net_null0 "${APP[@]}" --pmd-mgmt monitor
  local end=$((SECONDS + 20))
  while kill -0 "$PID" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.05; done
  stop
  if [ "$RC" = 0 ]; then ok=0; echo "  expected the app to refuse"; fi
  if grep -q 'rte_power_ethdev_pmgmt_queue_enable: err=-95' "$log"; then
    echo "  $(grep -o 'rte_power: ERR: rte_power_ethdev_pmgmt_queue_enable: .*' "$log" | head -1)"
    echo "  app: $(grep -o 'rte_power_ethdev_pmgmt_queue_enable: err=-95.*' "$log" | head -1)"
  else
    ok=0; echo "  no -ENOTSUP from queue_enable"
  fi
  state "$tree" > "$WORK/$name/after"
  diff -q "$WORK/$name/before" "$WORK/$name/after" >/dev/null || { ok=0; echo "  host changed"; }
  result "$name" $ok "$log"
}

scenario_guest_scale() {
  local name=guest-scale dir=$WORK/guest-scale ok=1
  mkdir -p "$dir"
  rm -rf "$dir/sys"
  "$SHARED/dpdk-ref/mkfakesys.sh" "$dir/sys" 2 none >/dev/null
  # the stand-in host: ptys as the lcores' virtio-serial ports
  mkfifo "$dir/host.in"
  python3 "$HERE/l3fwd/standin-host.py" "$dir/ports" 2 "$dir/packets" < "$dir/host.in" > "$dir/host.out" &
  local host=$!
  exec {keep}>"$dir/host.in"   # the host stops when this closes
  local end=$((SECONDS + 10))
  until grep -q ready "$dir/host.out" 2>/dev/null; do
    [ $SECONDS -lt $end ] && kill -0 $host 2>/dev/null || { ok=0; break; }
    sleep 0.05
  done
  RTE_POWER_LOG=info RTE_POWER_VIRTIO_PORTS_DIR=$dir/ports RTE_POWER_VIRTIO_CLASS_DIR=$dir/none \
    start "$dir/sys" "$dir/log" --vdev=net_ring0 "${APP[@]}" --pmd-mgmt scale
  # CONNECT (command 2) on port 1, then SCALE_MIN (command 1, unit 4) once idle
  end=$((SECONDS + 15))
  until grep -q 'port=1 command=1 unit=4 resource=1' "$dir/packets" 2>/dev/null; do
    [ $SECONDS -lt $end ] && kill -0 "$PID" 2>/dev/null || break
    sleep 0.05
  done
  stop
  [ "$RC" = 0 ] || { ok=0; echo "  exit status $RC"; }
  # disabling the last SCALE queue asks for the maximum again (unit 3)
  end=$((SECONDS + 5))
  until grep -q 'port=1 command=1 unit=3 resource=1' "$dir/packets" 2>/dev/null; do
    [ $SECONDS -lt $end ] || break
    sleep 0.05
  done
  exec {keep}>&-
  wait $host || true
  local got
  got=$(uniq "$dir/packets" | tr '\n' ';')
  echo "  stand-in host received: $got"
  case "$got" in
    "port=1 command=2 unit=0 resource=0;port=1 command=1 unit=4 resource=1;"*"port=1 command=1 unit=3 resource=1;") ;;
    *) ok=0; echo "  expected CONNECT, SCALE_MIN ..., SCALE_MAX on port 1" ;;
  esac
  result "$name" $ok "$dir/log"
}

run_one() {
  case "$1" in
    legacy-busy) host_scenario legacy-busy net_null0 check_legacy_busy --legacy -U ;;
    legacy-idle) host_scenario legacy-idle net_ring0 check_legacy_idle --legacy ;;
    scale-busy) host_scenario scale-busy net_null0 check_scale_busy --pmd-mgmt scale ;;
    scale-idle) host_scenario scale-idle net_ring0 check_scale_idle --pmd-mgmt scale ;;
    pause) host_scenario pause net_ring0 check_pause --pmd-mgmt pause ;;
    monitor) scenario_monitor ;;
    empty-poll) host_scenario empty-poll net_null0 check_empty_poll --empty-poll 0,1000,1000 ;;
    guest-scale) scenario_guest_scale ;;
    *) die "unknown scenario $1" ;;
  esac
}

ALL=(legacy-busy legacy-idle scale-busy scale-idle pause monitor empty-poll guest-scale)

run() {
  [ "$(id -u)" = 0 ] || die "run needs root (unshare -m, mount --bind)"
  [ -x "$BIN" ] || die "no $BIN: run '$0 build' first"
  [ -x "$SHARED/dpdk-ref/mkfakesys.sh" ] || die "no ../shared/dpdk-ref/mkfakesys.sh"
  [ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (EAL lcores 0 and 1)"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/l3fwd-power.XXXXXX")
  # shellcheck disable=SC2064
  [ "${L3FWD_KEEP:-0}" = 1 ] && echo "work: $WORK" || trap "rm -rf '$WORK'" EXIT
  local list=("$@")
  [ ${#list[@]} -gt 0 ] || list=("${ALL[@]}")

  # the 24.11-style program on a generated tree (no namespace needed)
  make_host_tree "$WORK/api/sys"
  mkdir -p "$WORK/api/sys/intel_uncore_frequency/package_00_die_01"
  cp -a "$WORK/api/sys/$UNC/." "$WORK/api/sys/intel_uncore_frequency/package_00_die_01/"
  if RTE_POWER_LOG=off RTE_POWER_SYSFS_CPU_DIR=$WORK/api/sys "$OUT/api-2411" > "$WORK/api/out" 2>&1; then
    echo "PASS api-2411 ($(grep -c '^ok' "$WORK/api/out") checks)"; PASSED+=(api-2411)
  else
    echo "FAIL api-2411"; FAILED+=(api-2411); grep -v '^ok' "$WORK/api/out" | sed 's/^/  | /'
  fi

  # PMD management argument checks through DPDK's real ethdev
  if "$OUT/pmd-ethdev" -l 0-1 --no-huge --no-pci --no-shconf --file-prefix="l3fwd-rs-$$" -m 128 \
      --log-level=lib.eal:error --vdev=net_null0 > "$WORK/pmd-ethdev.out" 2>&1; then
    echo "PASS pmd-ethdev ($(grep -c '^ok' "$WORK/pmd-ethdev.out") checks through DPDK's ethdev)"; PASSED+=(pmd-ethdev)
  else
    echo "FAIL pmd-ethdev"; FAILED+=(pmd-ethdev); grep -v '^ok' "$WORK/pmd-ethdev.out" | sed 's/^/  | /'
  fi

  for s in "${list[@]}"; do
    echo "== $s"
    run_one "$s"
  done
  echo
  echo "l3fwd-power: ${#PASSED[@]} passed, ${#FAILED[@]} failed${FAILED:+ (${FAILED[*]})}"
  [ ${#FAILED[@]} -eq 0 ]
}

cmd=${1:-all}
[ $# -gt 0 ] && shift
case "$cmd" in
  build) build ;;
  run) run "$@" ;;
  all) build; run "$@" ;;
  -h|--help) usage ;;
  *) usage ;;
esac
