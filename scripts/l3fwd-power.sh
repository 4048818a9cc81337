#!/bin/bash
# l3fwd-power.sh [build|run|all] [SCENARIO...]
#
# DPDK 22.11's own examples/l3fwd-power (Debian package dpdk-doc), unchanged,
# built two ways by scripts/dpdk-programs.sh with its own Makefile:
# relinked (rte-power's include/ first, our library in place of DPDK's
# -lrte_power) and binary (against Debian's DPDK, then run with our
# librte_power.so.23 in place), then run with a virtual NIC on simulated
# hosts, every scenario both ways. Needs root (private mount namespaces), 2
# CPUs, and the packages of scripts/deps.d/l3fwd.txt and dpdk-programs.txt.
#
#   build   build both ways (+ the header checks) and check with
#           readelf/ldd/nm that the binaries reach our library
#   run     run the scenarios (all, or those named), both ways; each
#           prints PASS/FAIL
#   all     build, then run (default)
#   run-scenarios   one way, as scripts/dpdk-programs.sh calls it
#           (L3FWD_WAY, L3FWD_BIN, L3FWD_LIB_PATH, L3FWD_STAGE);
#           L3FWD_LOADER=system: no LD_LIBRARY_PATH, the host's loader
#           cache finds the library (the Debian package's test, step 55)
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
#   guest-scale    KVM guest layout (no cpufreq): lcore 1's virtio-serial
#                  port is a pty that socat bridges to the channel socket
#                  of OUR vm_power_mgr (libvirt test driver, generated host
#                  tree): --pmd-mgmt scale sends CONNECT, SCALE_MIN when
#                  idle (the host CPU of vCPU 1 goes to its minimum),
#                  SCALE_MAX at exit (back to the maximum); the host is
#                  restored when the monitor stops
# After every host scenario all writable sysfs values must be what they
# were; every scenario checks that the process mapped our library, not
# Debian's. The binary way's first scenario finds our library through
# `make dpdk-override` (an ld.so.conf.d entry; the loader cache it makes
# is bind-mounted over /etc/ld.so.cache in the scenario's private mount
# namespace, so the host's loader is never touched), the others through
# LD_LIBRARY_PATH.
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
STAGE=${L3FWD_STAGE:-$REPO/target/dpdk-programs/stage/usr}
WAY=${L3FWD_WAY:-relinked}
BIN=${L3FWD_BIN:-$REPO/target/dpdk-programs/$WAY/l3fwd-power/build/l3fwd-power-shared}
LIB_PATH=${L3FWD_LIB_PATH:-$STAGE/lib}
# shellcheck source=scripts/dpdk/common.sh
. "$HERE/dpdk/common.sh"

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
  # l3fwd-power itself, both ways, with its own Makefile
  L3FWD_SRC= bash "$HERE/dpdk-programs.sh" build l3fwd-power

  local cflags dpdk_libs
  cflags="-O2 -g -I$REPO/include $(pkg-config --cflags libdpdk) -DALLOW_EXPERIMENTAL_API"
  # DPDK's link line without its librte_power
  dpdk_libs=$(pkg-config --libs libdpdk | tr ' ' '\n' | grep -vx -- '-lrte_power' | tr '\n' ' ')
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
  local bin=$REPO/target/dpdk-programs/relinked/l3fwd-power/build/l3fwd-power-shared
  needed=$(readelf -d "$bin" | awk '/NEEDED/ { gsub(/[][]/, "", $NF); print $NF }')
  if grep -qx 'librte_power_rs.so.0' <<<"$needed" && ! grep -q '^librte_power.so' <<<"$needed"; then
    echo "readelf: relinked: NEEDED librte_power_rs.so.0 (rte-power), not DPDK's librte_power.so.23"
  else
    echo "readelf: unexpected NEEDED list:"; echo "$needed"; fail=1
  fi
  # every power symbol the app needs is defined by our library
  undef=$(nm -D --undefined-only "$bin" | awk '{ print $NF }' | sed 's/@.*//' \
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
# over /sys/devices/system/cpu, our library found through LIB_PATH (or,
# with LD_CACHE set, through that loader cache over /etc/ld.so.cache); sets
# PID (the process itself: unshare and bash exec it).
start() {
  local tree=$1 log=$2; shift 2
  local env=(LD_LIBRARY_PATH="$LIB_PATH")
  [ -n "${LD_CACHE:-}" ] && env=()
  [ "${L3FWD_LOADER:-}" = system ] && env=()
  # shellcheck disable=SC2016
  env ${env[@]+"${env[@]}"} unshare -m -- bash -c 'mount --make-rprivate / &&
    mount --bind "$0" /sys/devices/system/cpu &&
    { [ -z "$1" ] || mount --bind "$1" /etc/ld.so.cache; } && shift && exec "$@"' \
    "$tree" "${LD_CACHE:-}" "$BIN" -l 0-1 --no-huge --no-pci --no-shconf --file-prefix="l3fwd-rs-$$" -m 256 \
    --log-level=lib.eal:warning "$@" >"$log" 2>&1 &
  PID=$!
}

# loaded LOG: waits for the app's first log line of our library, then
# checks that the process maps our library, not Debian's
loaded() {
  local log=$1 end=$((SECONDS + 10))
  until grep -q 'rte_power: INFO:' "$log" 2>/dev/null; do
    kill -0 "$PID" 2>/dev/null && [ $SECONDS -lt $end ] || break
    sleep 0.05
  done
  ours_loaded "$PID" || return 1
  if [ "$WAY" = binary ]; then
    grep -q 'rte-power .* serving the DPDK 22.11 binary ABI (librte_power.so.23)' "$log" ||
      { echo "  no 'serving the DPDK 22.11 binary ABI' line"; return 1; }
  fi
}

# override_cache DIR: `make dpdk-override` writes its ld.so.conf.d entry
# into DIR/conf.d; ldconfig makes a loader cache from it and the host's
# entries (ours first, as in /etc/ld.so.conf.d) into DIR/ld.so.cache
override_cache() {
  local dir=$1
  mkdir -p "$dir/conf.d"
  (cd "$REPO" && make -s dpdk-override PREFIX="${STAGE%/usr}/usr" LDCONFDIR="$dir/conf.d" LDCONFIG= >/dev/null)
  printf 'include %s/conf.d/*.conf\ninclude /etc/ld.so.conf.d/*.conf\n' "$dir" > "$dir/ld.so.conf"
  ldconfig -f "$dir/ld.so.conf" -C "$dir/ld.so.cache"
  LD_CACHE=$dir/ld.so.cache
  echo "  dpdk-override: $(grep -v '^#' "$dir/conf.d"/*.conf) first in the loader cache" \
    "($(ldconfig -C "$dir/ld.so.cache" -p | grep -m1 'librte_power.so.23 ' | sed 's/.*=> //'))"
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
  local name="$WAY $1" ok=$2 log=$3
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
  LD_CACHE=""
  [ "$WAY" = binary ] && [ "$name" = legacy-busy ] && override_cache "$WORK/$name/override"
  RTE_POWER_LOG=info start "$tree" "$log" --vdev="$vdev" "${APP[@]}" "$@"
  loaded "$log" || ok=0
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
  LD_CACHE=""
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
  local name=guest-scale dir=$WORK/guest-scale ok=1 vm=l3fwd-vm
  mkdir -p "$dir"
  # the guest: no cpufreq; the host: 4 CPUs, vCPU 0 on pCPU 2, vCPU 1 on 3
  "$SHARED/dpdk-ref/mkfakesys.sh" "$dir/sys" 2 none >/dev/null
  "$SHARED/dpdk-ref/mkfakesys.sh" "$dir/host" 4 acpi-cpufreq >/dev/null
  node_xml "$dir/node.xml" "$vm" 4 2 3
  local before table min max
  before=$(state "$dir/host")
  read -r -a table < "$dir/host/cpu3/cpufreq/scaling_available_frequencies"
  max=${table[0]} min=${table[${#table[@]} - 1]}
  start_monitor "$dir" "$vm" 1 || { result "$name" 0 "$dir/monitor.log"; return; }
  bridge "$dir" "$vm" 1 || ok=0
  LD_CACHE=""
  RTE_POWER_LOG=info RTE_POWER_VIRTIO_PORTS_DIR=$dir/ports RTE_POWER_VIRTIO_CLASS_DIR=$dir/none \
    start "$dir/sys" "$dir/log" --vdev=net_ring0 "${APP[@]}" --pmd-mgmt scale
  loaded "$dir/log" || ok=0
  # idle: SCALE_MIN for vCPU 1, the monitor moves pCPU 3 to its minimum
  if wait_for "$dir/host/cpu3/cpufreq/scaling_setspeed" "$min" 15; then
    echo "  host pCPU 3 (vCPU 1): governor $(val "$dir/host/cpu3/cpufreq/scaling_governor"), setspeed $(val "$dir/host/cpu3/cpufreq/scaling_setspeed") kHz (SCALE_MIN while idle)"
  else
    ok=0; echo "  host pCPU 3 not at its minimum: $(val "$dir/host/cpu3/cpufreq/scaling_setspeed")"
  fi
  stop
  [ "$RC" = 0 ] || { ok=0; echo "  exit status $RC"; }
  # disabling the queue at exit asks for the maximum again
  local end=$((SECONDS + 5))
  until [ "$(val "$dir/host/cpu3/cpufreq/scaling_setspeed")" = "$max" ] || [ $SECONDS -ge $end ]; do sleep 0.05; done
  if [ "$(val "$dir/host/cpu3/cpufreq/scaling_setspeed")" = "$max" ]; then
    echo "  host pCPU 3: setspeed $max kHz after the app's exit (SCALE_MAX)"
  else
    ok=0; echo "  host pCPU 3 not back at its maximum: $(val "$dir/host/cpu3/cpufreq/scaling_setspeed")"
  fi
  echo "  monitor: $("${CTL[@]}" show_channels 2>&1 | grep "$vm.1" || echo 'no channel line')"
  [ "$(val "$dir/host/cpu2/cpufreq/scaling_governor")" = schedutil ] || { ok=0; echo "  pCPU 2 changed"; }
  unbridge
  stop_monitor
  [ "$MON_RC" = 0 ] || { ok=0; echo "  monitor exit status $MON_RC"; }
  if [ "$(state "$dir/host")" = "$before" ]; then
    echo "  host restored at the monitor's SIGTERM"
  else
    ok=0; echo "  host not restored"
  fi
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

prepare() {
  [ "$(id -u)" = 0 ] || die "run needs root (unshare -m, mount --bind)"
  [ -x "$SHARED/dpdk-ref/mkfakesys.sh" ] || die "no ../shared/dpdk-ref/mkfakesys.sh"
  [ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (EAL lcores 0 and 1)"
  command -v socat >/dev/null || die "socat is needed (scripts/deps.d/dpdk-programs.txt)"
  (cd "$REPO" && cargo build --release --locked -q)
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/l3fwd-power.XXXXXX")
  # shellcheck disable=SC2064
  [ "${L3FWD_KEEP:-0}" = 1 ] && echo "work: $WORK" || trap "rm -rf '$WORK'" EXIT
}

# scenarios SCENARIO...: every scenario (all by default) with the current
# WAY, BIN and LIB_PATH
scenarios() {
  [ -x "$BIN" ] || die "no $BIN: run '$0 build' first"
  local list=("$@") s
  [ ${#list[@]} -gt 0 ] || list=("${ALL[@]}")
  for s in "${list[@]}"; do
    mkdir -p "$WORK/$WAY"
    echo "== $WAY $s"
    WORK=$WORK/$WAY run_one "$s"
  done
}

run_scenarios() {
  prepare
  scenarios "$@"
  echo
  echo "l3fwd-power ($WAY): ${#PASSED[@]} passed, ${#FAILED[@]} failed${FAILED:+ (${FAILED[*]})}"
  [ ${#FAILED[@]} -eq 0 ]
}

run() {
  prepare
  WAY=relinked

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

  local way
  for way in relinked binary; do
    WAY=$way
    BIN=$REPO/target/dpdk-programs/$way/l3fwd-power/build/l3fwd-power-shared
    LIB_PATH=$STAGE/lib
    [ "$way" = binary ] && LIB_PATH=$STAGE/lib/rte-power
    scenarios "$@"
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
  run-scenarios) run_scenarios "$@" ;;
  all) build; run "$@" ;;
  -h|--help) usage ;;
  *) usage ;;
esac
