#!/bin/bash
# scripts/build-abi.sh [--build-dir=DIR] [ABI...]
#
# The DPDK binary ABIs of rte-power, from the same librte_power.a that
# `cargo build --release` made (Rust staticlibs are position-independent on
# x86_64): for each ABI N in 23 (DPDK 22.11), 24 (23.11), 25 (24.11) and
# 26 (25.11), default all,
#
#   DIR/dpdk-abi/librte_power.so.N.0 (+ the SONAME link librte_power.so.N)
#   DIR/dpdk-abi/librte_power_kvm_vm.so.N.0 (+ link), for N >= 25
#
# each exporting exactly the symbols of abi/dpdkN.syms (and
# abi/kvm_vmN.syms): names, kinds, sizes, version nodes. How:
#   1. a copy of the archive in which every name the ABI needs for a
#      variable (abi/dpdkN.syms "data"), and rte_power_set_env/init (and in
#      23.11 the uncore env/init), are renamed NAME__rs (objcopy);
#   2. abi/compat.c compiled with -DRTE_POWER_ABI=N: the variables,
#      statically initialised to those functions, the wrappers, and for
#      24.11+ the INTERNAL symbols DPDK's own driver libraries call;
#   3. a version script made from abi/dpdkN.syms (local: everything else);
#   4. gcc -shared, pulling from the archive only what the list names.
# Why not a cargo feature per ABI: one cdylib cannot carry both shapes of
# rte_power_freq_up, and features of one package unify across a workspace
# build, so "the same crate with ABI features" would need separate builds
# of the whole crate per ABI; renaming in a copy of the one archive links
# the four ABIs from one compilation in seconds.
#
# Run by `make` (after cargo build) and by scripts/test.d/35-dpdk-abi.sh;
# scripts/check-abi.sh checks the result.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/target/release
ABIS=()
for arg in "$@"; do
  case $arg in
    --build-dir=*) BUILD=${arg#*=} ;;
    23|24|25|26) ABIS+=("$arg") ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "build-abi: unknown argument $arg" >&2; exit 2 ;;
  esac
done
[ ${#ABIS[@]} -gt 0 ] || ABIS=(23 24 25 26)
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac

die() { echo "build-abi: $*" >&2; exit 1; }
ARCHIVE=$BUILD/librte_power.a
[ -f "$ARCHIVE" ] || die "$ARCHIVE is missing: run 'cargo build --release' first"
for tool in objcopy "${CC:-cc}" awk; do
  command -v "$tool" >/dev/null || die "$tool is needed (binutils, gcc)"
done
NSL=$BUILD/rte_power.native-static-libs
[ -s "$NSL" ] || bash "$ROOT/scripts/install.sh" native-libs --build-dir="$BUILD"
NATIVE=$(cat "$NSL")
VERSION=$(sed -n 's/^version *= *"\(.*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1)
OUT=$BUILD/dpdk-abi
WORK=$OUT/work
mkdir -p "$WORK"

# syms FILE: the symbol lines (NODE KIND NAME [SIZE]) without comments
syms() { sed 's/#.*//' "$1" | awk 'NF >= 3'; }

# version_script FILE: one node per version, in the order of the list;
# the first (the stable node) hides everything else, as DPDK's maps do
version_script() {
  syms "$1" | awk '
    !($1 in seen) { seen[$1] = 1; order[++n] = $1 }
    { names[$1] = names[$1] "\t" $3 ";\n" }
    END {
      for (i = 1; i <= n; i++) {
        printf "%s {\n\tglobal:\n%s", order[i], names[order[i]]
        if (i == 1) printf "\n\tlocal: *;\n"
        printf "};\n\n"
      }
    }'
}

# up_to_date ABI: its libraries are newer than everything they are made of
up_to_date() {
  local abi=$1 f out=$OUT/librte_power.so.$1.0
  [ -f "$out" ] || return 1
  [ "$abi" -lt 25 ] || [ -f "$OUT/librte_power_kvm_vm.so.$abi.0" ] || return 1
  for f in "$ARCHIVE" "$ROOT"/abi/* "$0"; do
    [ "$f" -ot "$out" ] || return 1
  done
}

build_abi() {
  local abi=$1 list=$ROOT/abi/dpdk$1.syms w=$WORK/$1
  [ -f "$list" ] || die "no $list"
  if up_to_date "$abi"; then
    echo "up to date: $OUT/librte_power.so.$abi.0"
    return
  fi
  mkdir -p "$w"
  # 1. renamed copy of the archive
  local renamed=(rte_power_set_env rte_power_init)
  [ "$abi" = 24 ] && renamed+=(rte_power_set_uncore_env rte_power_uncore_init)
  mapfile -t -O ${#renamed[@]} renamed < <(syms "$list" | awk '$2 == "data" && $3 ~ /^rte_power_/ { print $3 }')
  local args=() n
  for n in "${renamed[@]}"; do args+=(--redefine-sym "$n=${n}__rs"); done
  objcopy "${args[@]}" "$ARCHIVE" "$w/librte_power.a"
  # 2. the shim
  "${CC:-cc}" -std=gnu11 -O2 -g -fPIC -Wall -Wextra -Werror -ffile-prefix-map="$ROOT"=. \
    -DRTE_POWER_ABI="$abi" -DRTE_POWER_RS_VERSION="\"$VERSION\"" \
    -c "$ROOT/abi/compat.c" -o "$w/compat.o"
  # 3. the version script
  version_script "$list" > "$w/version.map"
  # 4. link: every function of the list pulled from the archive
  local undef=()
  for n in $(syms "$list" | awk '$2 == "func" { print $3 }'); do undef+=("-Wl,-u,$n"); done
  local so=librte_power.so.$abi
  # shellcheck disable=SC2086  # NATIVE is a list of -l flags
  "${CC:-cc}" -shared -o "$OUT/$so.0.tmp" -Wl,-soname,"$so" \
    -Wl,--version-script="$w/version.map" -Wl,-z,defs -Wl,--gc-sections -Wl,-z,relro -Wl,-z,now \
    "$w/compat.o" "${undef[@]}" "$w/librte_power.a" $NATIVE
  mv -f "$OUT/$so.0.tmp" "$OUT/$so.0"
  ln -sfn "$so.0" "$OUT/$so"
  # the KVM guest driver library of 24.11+
  if [ "$abi" -ge 25 ]; then
    local kso=librte_power_kvm_vm.so.$abi
    version_script "$ROOT/abi/kvm_vm$abi.syms" > "$w/kvm_vm.map"
    "${CC:-cc}" -std=gnu11 -O2 -g -fPIC -Wall -Wextra -Werror -ffile-prefix-map="$ROOT"=. -shared \
      -o "$OUT/$kso.0.tmp" -Wl,-soname,"$kso" -Wl,--version-script="$w/kvm_vm.map" -Wl,-z,defs -Wl,-z,relro -Wl,-z,now \
      "$ROOT/abi/kvm_vm.c" "$OUT/$so.0"
    mv -f "$OUT/$kso.0.tmp" "$OUT/$kso.0"
    ln -sfn "$kso.0" "$OUT/$kso"
  fi
  echo "built $OUT/$so.0$([ "$abi" -ge 25 ] && echo " and librte_power_kvm_vm.so.$abi.0")"
}

for abi in "${ABIS[@]}"; do build_abi "$abi"; done
# the Makefile's mark that the build is complete
[ ${#ABIS[@]} -lt 4 ] || touch "$OUT/.built"
