#!/bin/bash
# scripts/check-abi.sh [--build-dir=DIR] [--debian=FILE]
#
# Checks the DPDK binary ABIs built by scripts/build-abi.sh:
#   - every library exports exactly its list, abi/dpdkN.syms and
#     abi/kvm_vmN.syms: name, kind (function or data object), size of the
#     data objects, version node; it defines exactly those version nodes;
#   - librte_power.so.23 against Debian's own librte_power.so.23
#     (librte-power23, DPDK 22.11; --debian=FILE for another copy): the
#     same normalised `objdump -T` (names, kinds, data sizes, versions),
#     no difference allowed;
#   - none needs a DPDK library (librte_power_kvm_vm.so.N needs only our
#     librte_power.so.N), and each SONAME is DPDK's.
# Function sizes are not compared: they are each implementation's code.
# Exit status 1 on any difference.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/target/release
DEBIAN=/lib/x86_64-linux-gnu/librte_power.so.23
for arg in "$@"; do
  case $arg in
    --build-dir=*) BUILD=${arg#*=} ;;
    --debian=*) DEBIAN=${arg#*=} ;;
    *) echo "check-abi: unknown argument $arg" >&2; exit 2 ;;
  esac
done
OUT=$BUILD/dpdk-abi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail=0

# exports LIB: "NODE KIND NAME [SIZE]" per defined dynamic symbol, sorted;
# the version nodes' own ABS symbols are left out (see nodes)
exports() {
  objdump -T "$1" | awk '
    function hex(s,   i, n) {
      n = 0
      for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
      return n
    }
    $3 == "DF" || $3 == "DO" {
      if ($4 == "*UND*" || $4 == "*ABS*") next
      kind = ($3 == "DF") ? "func" : "data"
      size = hex(tolower($5))
      if (kind == "func") print $6, kind, $7
      else print $6, kind, $7, size
    }' | sort
}

# nodes LIB: the version nodes the library defines (base name left out)
nodes() {
  readelf -V "$1" | awk '
    /^Version definition section/ { d = 1; next }
    /^Version needs section/ { d = 0 }
    d && /Flags: BASE/ { next }
    d && /Name:/ { for (i = 1; i <= NF; i++) if ($i == "Name:") print $(i + 1) }' | sort -u
}

listed() { sed 's/#.*//' "$1" | awk 'NF >= 3' | sort; }

check_lib() { # check_lib LIB LIST [NEEDED-PATTERN]
  local lib=$1 list=$2 want_needed=${3:-} name
  name=$(basename "$lib")
  if [ ! -f "$lib" ]; then
    echo "FAIL $name: missing (run scripts/build-abi.sh)"; fail=1; return
  fi
  exports "$lib" > "$TMP/got"
  listed "$list" > "$TMP/want"
  if diff -u "$TMP/want" "$TMP/got" > "$TMP/diff"; then
    echo "ok   $name: $(wc -l < "$TMP/got") symbols as in $(basename "$list")" \
      "($(awk '$2 == "data"' "$TMP/got" | wc -l) data objects; nodes $(nodes "$lib" | paste -sd, -))"
  else
    echo "FAIL $name: exports differ from $(basename "$list") (- listed, + built):"
    sed -n '3,$p' "$TMP/diff" | grep '^[-+]' | sed 's/^/  /'; fail=1
  fi
  if [ "$(nodes "$lib")" != "$(awk '{ print $1 }' "$TMP/want" | sort -u)" ]; then
    echo "FAIL $name: version nodes $(nodes "$lib" | paste -sd, -), want $(awk '{ print $1 }' "$TMP/want" | sort -u | paste -sd, -)"
    fail=1
  fi
  local soname needed
  soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
  [ "$soname" = "${name%.0}" ] || { echo "FAIL $name: SONAME $soname"; fail=1; }
  needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p' | grep '^librte_' || true)
  if [ "$needed" != "$want_needed" ]; then
    echo "FAIL $name: needs DPDK libraries '$needed' (want '${want_needed}')"; fail=1
  fi
}

for abi in 23 24 25 26; do
  check_lib "$OUT/librte_power.so.$abi.0" "$ROOT/abi/dpdk$abi.syms"
  if [ "$abi" -ge 25 ]; then
    check_lib "$OUT/librte_power_kvm_vm.so.$abi.0" "$ROOT/abi/kvm_vm$abi.syms" "librte_power.so.$abi"
  fi
done

# 22.11: against Debian's librte-power23 itself
if [ -f "$DEBIAN" ]; then
  exports "$DEBIAN" > "$TMP/debian"
  exports "$OUT/librte_power.so.23.0" > "$TMP/ours" 2>/dev/null || true
  if diff -u "$TMP/debian" "$TMP/ours" > "$TMP/d23"; then
    echo "ok   librte_power.so.23 = $DEBIAN: $(wc -l < "$TMP/ours") symbols, same names, kinds, data sizes and versions (objdump -T)"
  else
    echo "FAIL librte_power.so.23 differs from $DEBIAN (- Debian, + ours):"
    sed -n '3,$p' "$TMP/d23" | grep '^[-+]' | sed 's/^/  /'; fail=1
  fi
  if [ "$(nodes "$DEBIAN")" != "$(nodes "$OUT/librte_power.so.23.0")" ]; then
    echo "FAIL librte_power.so.23: version nodes differ from Debian's ($(nodes "$DEBIAN" | paste -sd, -))"; fail=1
  fi
else
  echo "FAIL no $DEBIAN (apt-get install librte-power23, or --debian=FILE)"; fail=1
fi
exit $fail
