#!/bin/bash
# The Debian packages (scripts/build-deb.sh) on this host: built from the
# release build, checked by lintian, installed with `apt-get install
# ./...deb` beside Debian's librte-power23 and libdpdk-dev (no file owned
# twice), then DPDK 22.11's l3fwd-power built against Debian's DPDK,
# unchanged, finds OUR librte_power.so.23 through the host's own loader
# cache (no LD_LIBRARY_PATH): the loader's trace and a scale-busy run on a
# generated sysfs tree (scripts/l3fwd-power.sh). The -dev package builds
# a C program with pkg-config; the monitor's packaged unit runs /usr/bin
# programs, in its sandbox (step 72's checks on the installed unit).
# Removing the packages brings DPDK's librte_power.so.23 back. The
# packages are removed whatever happens (trap): the host is left as found.
# Root, on Debian 12 (scripts/deps.d/pkg.txt, l3fwd.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
die() { echo "55-deb: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (apt-get install)"

PKGS=(librte-power-rs0 librte-power-rs-dev rte-power-tools vm-power-mgr
      librte-power-rs0-dbgsym rte-power-tools-dbgsym vm-power-mgr-dbgsym)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
CONF=/etc/ld.so.conf.d/00-rte-power-deb-$MA.conf
OURS=/usr/lib/$MA/rte-power/librte_power.so.23
DPDKS=/usr/lib/$MA/librte_power.so.23
OURS_FILE=$OURS.0 DPDKS_FILE=$DPDKS.0
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# known PACKAGE: installed, or removed with its configuration left
known() {
  local st
  st=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "${st##* }" != not-installed ]
}
for p in "${PKGS[@]}"; do
  ! known "$p" || die "$p is installed already: this test installs and removes it (remove it first)"
done
[ ! -e "$CONF" ] || die "$CONF exists already"
[ -e "$DPDKS" ] || die "no $DPDKS (Debian's librte-power23: scripts/deps.d/l3fwd.txt)"

pass=0 fail=0
check() { # check DESCRIPTION COMMAND...: PASS/FAIL line
  local what=$1; shift
  if "$@"; then echo "PASS $what"; pass=$((pass + 1)); else echo "FAIL $what"; fail=$((fail + 1)); fi
}

# 1. build: the release build (kept from earlier steps), the packages,
# l3fwd-power against Debian's DPDK
start=$SECONDS
make -s build CARGOFLAGS="--locked -q" > /dev/null
bash scripts/build-deb.sh
bash scripts/dpdk-programs.sh build l3fwd-power > /dev/null
BIN=$REPO/target/dpdk-programs/binary/l3fwd-power/build/l3fwd-power-shared
[ -x "$BIN" ] || die "no $BIN"
echo "built in $((SECONDS - start)) s"
DEBS=()
for p in "${PKGS[@]}"; do DEBS+=("$REPO/target/deb/${p}_"*.deb); done

# 2. lintian: no error or warning left (each override explained in
# deploy/deb/*.lintian-overrides)
check "lintian: no errors or warnings (overrides: $(cat deploy/deb/*.lintian-overrides | grep -vc '^#'))" \
  lintian --fail-on error,warning "${DEBS[@]}"

# which librte_power.so.23 the loader gives the unchanged binary
# (the loader's own trace: LD_TRACE_LOADED_OBJECTS, as ldd; main never runs)
# (the loader's own trace: LD_TRACE_LOADED_OBJECTS, as ldd; main never
# runs), as the file it resolves to (/lib is /usr/lib on Debian 12)
loads() {
  local f
  f=$(LD_TRACE_LOADED_OBJECTS=1 "$BIN" | sed -n 's/^[[:space:]]*librte_power\.so\.23 => \([^ ]*\) .*/\1/p')
  [ -z "$f" ] || readlink -f "$f"
}

cleanup() {
  local p left=()
  for p in "${PKGS[@]}"; do known "$p" && left+=("$p"); done
  if [ ${#left[@]} -gt 0 ]; then
    echo "removing ${left[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 purge -y -q "${left[@]}" > /dev/null || true
  fi
}
trap cleanup EXIT
check "before: the binary loads Debian's $DPDKS" [ "$(loads)" = "$DPDKS_FILE" ]

# 3. install, beside Debian's DPDK
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q \
  --no-install-recommends "${DEBS[@]}" > "$REPO/target/deb/apt-install.log" 2>&1 ||
  { cat "$REPO/target/deb/apt-install.log"; die "apt-get install failed"; }
for p in "${PKGS[@]}"; do installed "$p" || die "$p not installed"; done
echo "installed: ${PKGS[*]}"
dpdk_kept() { installed librte-power23 && installed libdpdk-dev; }
check "Debian's librte-power23 and libdpdk-dev stay installed" dpdk_kept
# every file is owned by one package only (dpkg -S lists all owners)
owned_once() {
  local p f n bad=0
  for p in "${PKGS[@]}"; do
    while read -r f; do
      [ -d "$f" ] && [ ! -L "$f" ] && continue
      n=$(dpkg -S "$f" 2>/dev/null | wc -l)
      [ "$n" = 1 ] || { echo "  $f: $(dpkg -S "$f" 2>&1 | paste -sd' ')"; bad=1; }
    done < <(dpkg -L "$p")
  done
  for f in /usr/lib/$MA/librte_power.so /usr/lib/$MA/librte_power.a "$DPDKS" /usr/include/dpdk/rte_power.h; do
    dpkg -S "$f" | grep -qE '^(libdpdk-dev|librte-power23)(:[a-z0-9]+)?: ' ||
      { echo "  $f: $(dpkg -S "$f" 2>&1)"; bad=1; }
  done
  return $bad
}
check "dpkg -S: each of our files has one owner; Debian's librte_power files are still DPDK's" owned_once
check "$CONF names /usr/lib/$MA/rte-power" grep -qx "/usr/lib/$MA/rte-power" "$CONF"
check "loader cache: librte_power.so.23 => $OURS first" \
  bash -c "ldconfig -p | grep -m1 'librte_power.so.23 ' | grep -q '=> $OURS\$'"
echo "  the binary loads: $(loads)"
check "the unchanged binary loads our $OURS (no LD_LIBRARY_PATH)" [ "$(loads)" = "$OURS_FILE" ]
# and works on it: scale-busy on a generated tree, checked as in step 90
check "l3fwd-power scale-busy on our library through the host's loader" \
  env L3FWD_WAY=binary L3FWD_BIN="$BIN" L3FWD_STAGE=/usr L3FWD_LOADER=system \
  bash scripts/l3fwd-power.sh run-scenarios scale-busy

# the -dev package: a C program built with pkg-config alone
dev_build() {
  local dir out
  dir=$(mktemp -d)
  printf '#include <rte_power.h>\nint main(void) { return rte_power_check_env_supported(PM_ENV_ACPI_CPUFREQ) < 0; }\n' > "$dir/t.c"
  # shellcheck disable=SC2046
  cc -o "$dir/t" "$dir/t.c" $(pkg-config --cflags --libs rte_power) &&
    out=$(ldd "$dir/t" | sed -n 's/^[[:space:]]*librte_power_rs\.so\.0 => \([^ ]*\) .*/\1/p') &&
    echo "  pkg-config: $(pkg-config --cflags --libs rte_power); librte_power_rs.so.0 => $out" &&
    [ -n "$out" ] && [ "$(readlink -f "$out")" = "/usr/lib/$MA/librte_power_rs.so.0.0" ]
  local rc=$?
  rm -rf "$dir"
  return $rc
}
check "-dev: cc \$(pkg-config --cflags --libs rte_power) links librte_power_rs.so.0" dev_build
unit_paths() {
  local unit=/lib/systemd/system/vm_power_mgr.service bins
  bins=$(grep -E '^Exec[A-Za-z]*=' "$unit" | sed 's/^[^=]*=//; s/ .*//')
  echo "  unit programs: $(echo "$bins" | sort -u | paste -sd' ')"
  ! grep -q /usr/local "$unit" && [ -n "$bins" ] &&
    while read -r b; do [ -x "$b" ] && [ "${b%/*}" = /usr/bin ] || return 1; done <<<"$bins" &&
    /usr/bin/vm_power_mgr --help > /dev/null && /usr/bin/rte-pm --help > /dev/null
}
check "vm_power_mgr.service runs the packaged /usr/bin programs" unit_paths
# the packaged unit's lines, run in its own sandbox as step 72 runs the
# source's (exposure score, refusals, a guest request, restore at stop)
check "the packaged unit in its sandbox (step 72 on the installed unit and programs)" \
  env UNIT_SANDBOX_UNIT=/lib/systemd/system/vm_power_mgr.service bash scripts/test.d/72-unit-sandbox.sh
check "dbgsym: gdb's build-id path holds our library's debug info" bash -c \
  "id=\$(readelf -n $OURS.0 | awk '/Build ID:/ { print \$3 }'); [ -s /usr/lib/debug/.build-id/\${id:0:2}/\${id:2}.debug ]"

# 4. remove: DPDK's comes back
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 remove -y -q "${PKGS[@]}" > /dev/null
check "removed: $CONF is gone" [ ! -e "$CONF" ]
echo "  the binary loads: $(loads)"
check "removed: the binary loads Debian's $DPDKS again" [ "$(loads)" = "$DPDKS_FILE" ]
cleanup
check "purged: no file of ours left, no package state" bash -c "[ ! -e /usr/lib/$MA/rte-power ] &&
  [ ! -e /usr/include/rte-power ] && [ ! -e /usr/bin/vm_power_mgr ] &&
  ! dpkg-query -W ${PKGS[*]} 2>/dev/null | grep -q ."

echo "deb: $pass passed, $fail failed ($((SECONDS - start)) s)"
[ $fail = 0 ]
