#!/bin/bash
# Installs (or removes) the built libraries, their headers and rte_power.pc.
# Normally run by the top-level Makefile (`make install`, `make uninstall`,
# `make dpdk-override`, `make dpdk-restore`); it never builds anything, so
# `sudo make install` after `make` needs no Rust toolchain in root's PATH.
#
#   scripts/install.sh native-libs [options]   record rustc's native-static-libs
#   scripts/install.sh install [options]       libraries, headers, .pc
#   scripts/install.sh uninstall [options]     removes all of it (and the
#                                              override, if set)
#   scripts/install.sh dpdk-override [options] every DPDK program on the
#                                              host loads ours: an
#                                              ld.so.conf.d entry for the
#                                              DPDK ABI directory, ldconfig
#   scripts/install.sh dpdk-restore [options]  the way back: the entry
#                                              removed, ldconfig
#
# Options (defaults in brackets):
#   --prefix=DIR        [/usr/local]       written into rte_power.pc
#   --libdir=DIR        [PREFIX/lib]       e.g. PREFIX/lib/x86_64-linux-gnu
#   --includedir=DIR    [PREFIX/include]
#   --pkgconfigdir=DIR  [LIBDIR/pkgconfig]
#   --destdir=DIR       []                 staging root, prepended to every
#                                          path written but never to the
#                                          paths inside rte_power.pc
#   --build-dir=DIR     [target/release]   where cargo put the libraries
#   --abi-minor=N       [0]                librte_power_rs.so.0.N
#   --dpdklibdir=DIR    [LIBDIR/rte-power] the DPDK binary ABIs
#   --ldconfdir=DIR     [/etc/ld.so.conf.d] where dpdk-override puts its
#                                          entry (never under PREFIX)
#   --ldconfig=CMD      [ldconfig]         run after installing into a
#                                          directory the dynamic loader
#                                          searches, and after
#                                          dpdk-override/-restore (root,
#                                          no DESTDIR only); --ldconfig=
#                                          turns it off
#   --strip=0           [1]                install unstripped libraries
#
# Layout under PREFIX (LIBDIR = PREFIX/lib):
#   lib/librte_power_rs.so.0.0 (the file), lib/librte_power_rs.so.0 -> it
#   (the SONAME), lib/librte_power.so -> librte_power_rs.so.0 (for
#   -lrte_power), lib/librte_power.a, include/*.h, lib/pkgconfig/rte_power.pc;
#   lib/rte-power/: the DPDK binary ABIs, each file with its SONAME link:
#   librte_power.so.23.0 (22.11), .24.0 (23.11), .25.0 (24.11), .26.0
#   (25.11), librte_power_kvm_vm.so.25.0 and .26.0. Point a single DPDK
#   program at them with LD_LIBRARY_PATH=LIBDIR/rte-power, or every one
#   with dpdk-override.
# Shared libraries are installed stripped, as distributions ship them,
# their debug info in DIR/.debug/NAME.debug next to each (found by gdb
# through the GNU debuglink); the archive without debug info.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NSL_FILE=rte_power.native-static-libs

die() { echo "install.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 native-libs|install|uninstall [--prefix=DIR ...]"
action=$1; shift
prefix=/usr/local libdir= includedir= pkgconfigdir= destdir= abi_minor=0
build_dir=$ROOT/target/release ldconfig=ldconfig dpdklibdir= ldconfdir=/etc/ld.so.conf.d
strip=1
for arg in "$@"; do
  case $arg in
    --prefix=*) prefix=${arg#*=} ;;
    --libdir=*) libdir=${arg#*=} ;;
    --includedir=*) includedir=${arg#*=} ;;
    --pkgconfigdir=*) pkgconfigdir=${arg#*=} ;;
    --destdir=*) destdir=${arg#*=} ;;
    --build-dir=*) build_dir=${arg#*=} ;;
    --abi-minor=*) abi_minor=${arg#*=} ;;
    --ldconfig=*) ldconfig=${arg#*=} ;;
    --dpdklibdir=*) dpdklibdir=${arg#*=} ;;
    --ldconfdir=*) ldconfdir=${arg#*=} ;;
    --strip=*) strip=${arg#*=} ;;
    *) die "unknown option: $arg" ;;
  esac
done
prefix=${prefix%/}
: "${libdir:=$prefix/lib}" "${includedir:=$prefix/include}"
: "${pkgconfigdir:=$libdir/pkgconfig}" "${dpdklibdir:=$libdir/rte-power}"
for d in "$prefix" "$libdir" "$includedir" "$pkgconfigdir" "$dpdklibdir" "$ldconfdir"; do
  case $d in /*) ;; *) die "paths must be absolute: '$d'" ;; esac
done
case $build_dir in /*) ;; *) build_dir=$PWD/$build_dir ;; esac

# rustc's list of the native libraries that librte_power.a needs, one line
# as rustc prints it, duplicates dropped (the last occurrence kept, which is
# safe for a static link order).
native_libs() {
  local out list
  # a target dir of its own: building the library as a staticlib alone in
  # the main one would make the next `cargo build` rebuild and relink all
  out=$("${CARGO:-cargo}" rustc --release --color never ${CARGOFLAGS:-} \
        --target-dir "$build_dir/../native-libs" \
        --manifest-path "$ROOT/Cargo.toml" --lib --crate-type staticlib \
        -- --print native-static-libs 2>&1) || { printf '%s\n' "$out" >&2; die "cargo rustc failed"; }
  list=$(printf '%s\n' "$out" | sed -n 's/^note: native-static-libs: *//p' | tail -n 1)
  [ -n "$list" ] || { printf '%s\n' "$out" >&2; die "rustc printed no native-static-libs"; }
  # shellcheck disable=SC2086 # split the flags on purpose
  printf '%s\n' $list | tac | awk '!seen[$0]++' | tac | paste -sd ' '
}

soname_of() {
  readelf -d "$1" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p'
}

# Replaces a leading $prefix by ${prefix} (or ${exec_prefix}) so that the .pc
# stays relocatable (pkg-config --define-prefix).
relative_to_prefix() {
  local path=$1 var=$2
  case $path in
    "$prefix") printf '%s\n' "\${$var}" ;;
    "$prefix"/*) printf '%s\n' "\${$var}${path#"$prefix"}" ;;
    *) printf '%s\n' "$path" ;;
  esac
}

# ABI libraries built by scripts/build-abi.sh: file names (SONAME.0)
ABI_FILES=(librte_power.so.23.0 librte_power.so.24.0 librte_power.so.25.0 librte_power.so.26.0
           librte_power_kvm_vm.so.25.0 librte_power_kvm_vm.so.26.0)
OVERRIDE_CONF=00-rte-power-dpdk.conf

# install_lib SRC DIR NAME: a shared library, stripped with its debug info
# in DIR/.debug/NAME.debug and a GNU debuglink to it (--strip=0: as built)
install_lib() {
  local src=$1 dir=$2 name=$3 tmp
  install -d "$dir"
  if [ "$strip" = 0 ]; then
    install -m 0755 "$src" "$dir/$name"
    return
  fi
  install -d "$dir/.debug"
  tmp=$dir/.$name.tmp.$$
  install -m 0644 "$src" "$tmp"
  objcopy --only-keep-debug --compress-debug-sections "$tmp" "$dir/.debug/$name.debug"
  chmod 0644 "$dir/.debug/$name.debug"
  # as Debian's dh_strip does for shared libraries; the debuglink is
  # looked up by name in DIR/.debug/ (and the global debug directory)
  strip --remove-section=.comment --remove-section=.note --strip-unneeded "$tmp"
  (cd "$dir/.debug" && objcopy --add-gnu-debuglink="$name.debug" "$tmp")
  chmod 0755 "$tmp"
  mv -f "$tmp" "$dir/$name"
}

# searched DIR: is DIR one of the directories the dynamic loader caches?
searched() {
  [ -n "$ldconfig" ] && "$ldconfig" -N -X -v 2>/dev/null | sed -n 's/^\(\/[^:]*\):.*/\1/p' | grep -qxF -- "$1"
}

do_install() {
  local so=$build_dir/librte_power.so a=$build_dir/librte_power.a nsl=$build_dir/$NSL_FILE
  local abi=$build_dir/dpdk-abi
  for f in "$so" "$a" "$nsl" "${ABI_FILES[@]/#/$abi/}"; do
    [ -e "$f" ] || die "$f is missing: run 'make' first"
  done
  for tool in readelf objcopy strip; do
    command -v "$tool" > /dev/null || die "$tool (binutils) is needed"
  done
  local soname real version libs_private
  soname=$(soname_of "$so")
  case $soname in librte_power_rs.so.[0-9]*) ;; *) die "$so: unexpected SONAME '$soname'" ;; esac
  real=$soname.$abi_minor
  version=$(sed -n 's/^version *= *"\(.*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1)
  [ -n "$version" ] || die "no version in Cargo.toml"
  libs_private=$(cat "$nsl")
  [ -n "$libs_private" ] || die "$nsl is empty"

  local L=$destdir$libdir I=$destdir$includedir P=$destdir$pkgconfigdir D=$destdir$dpdklibdir
  install -d "$L" "$I" "$P" "$D"
  install_lib "$so" "$L" "$real"
  ln -sfn "$real" "$L/$soname"
  ln -sfn "$soname" "$L/librte_power.so"
  install -m 0644 "$a" "$L/.librte_power.a.tmp.$$"
  [ "$strip" = 0 ] || strip --strip-debug "$L/.librte_power.a.tmp.$$"
  mv -f "$L/.librte_power.a.tmp.$$" "$L/librte_power.a"
  install -m 0644 "$ROOT"/include/*.h "$I/"
  local f
  for f in "${ABI_FILES[@]}"; do
    install_lib "$abi/$f" "$D" "$f"
    ln -sfn "$f" "$D/${f%.0}"
  done

  local line pc_libdir pc_includedir tmp=$P/.rte_power.pc.$$
  pc_libdir=$(relative_to_prefix "$libdir" exec_prefix)
  pc_includedir=$(relative_to_prefix "$includedir" prefix)
  while IFS= read -r line; do
    case $line in '#'*) continue ;; esac
    line=${line//@PREFIX@/"$prefix"}
    line=${line//@LIBDIR@/"$pc_libdir"}
    line=${line//@INCLUDEDIR@/"$pc_includedir"}
    line=${line//@VERSION@/"$version"}
    line=${line//@LIBS_PRIVATE@/"$libs_private"}
    printf '%s\n' "$line"
  done < "$ROOT/pkgconfig/rte_power.pc.in" > "$tmp"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$P/rte_power.pc"

  echo "installed rte_power $version ($soname) into ${destdir}${prefix}"
  echo "  DPDK binary ABIs (librte_power.so.23-.26) in ${destdir}${dpdklibdir}:"
  echo "  LD_LIBRARY_PATH=$dpdklibdir for one DPDK program, 'make dpdk-override' for all"
  # refresh the loader cache when the library went straight into one of
  # the directories it caches (not for staging, not as a user)
  if [ -z "$destdir" ] && [ -n "$ldconfig" ] && [ "$(id -u)" = 0 ] &&
     { searched "$libdir" || searched "$dpdklibdir"; }; then
    echo "running $ldconfig"
    "$ldconfig"
  fi
}

# dpdk-override: the DPDK ABI directory goes first on the loader's path for
# every program (an ld.so.conf.d entry sorted before the system's), so DPDK
# programs built against a distribution's DPDK load our librte_power.so.N
do_override() {
  local f
  for f in "${ABI_FILES[@]}"; do
    [ -e "$destdir$dpdklibdir/$f" ] || die "$destdir$dpdklibdir/$f is missing: run 'make install' first"
  done
  install -d "$destdir$ldconfdir"
  printf '# rte-power: DPDK programs load rte-power'"'"'s librte_power (make dpdk-restore undoes it)\n%s\n' \
    "$dpdklibdir" > "$destdir$ldconfdir/.$OVERRIDE_CONF.$$"
  chmod 0644 "$destdir$ldconfdir/.$OVERRIDE_CONF.$$"
  mv -f "$destdir$ldconfdir/.$OVERRIDE_CONF.$$" "$destdir$ldconfdir/$OVERRIDE_CONF"
  echo "wrote $destdir$ldconfdir/$OVERRIDE_CONF ($dpdklibdir)"
  run_ldconfig
}

do_restore() {
  if [ -e "$destdir$ldconfdir/$OVERRIDE_CONF" ]; then
    rm -f "$destdir$ldconfdir/$OVERRIDE_CONF"
    echo "removed $destdir$ldconfdir/$OVERRIDE_CONF"
  fi
  run_ldconfig
}

run_ldconfig() {
  if [ -z "$destdir" ] && [ -n "$ldconfig" ]; then
    [ "$(id -u)" = 0 ] || die "ldconfig needs root (or run '$ldconfig' yourself)"
    echo "running $ldconfig"
    "$ldconfig"
  fi
}

do_uninstall() {
  local L=$destdir$libdir I=$destdir$includedir P=$destdir$pkgconfigdir D=$destdir$dpdklibdir h f
  if [ -e "$destdir$ldconfdir/$OVERRIDE_CONF" ] &&
     grep -qxF -- "$dpdklibdir" "$destdir$ldconfdir/$OVERRIDE_CONF"; then
    rm -f "$destdir$ldconfdir/$OVERRIDE_CONF"
    echo "removed $destdir$ldconfdir/$OVERRIDE_CONF"
  fi
  rm -f "$L"/librte_power.so "$L"/librte_power_rs.so.[0-9]* "$L"/librte_power.a \
        "$L"/.debug/librte_power_rs.so.[0-9]*.debug "$P"/rte_power.pc
  for f in "${ABI_FILES[@]}"; do
    rm -f "$D/$f" "$D/${f%.0}" "$D/.debug/$f.debug"
  done
  for h in "$ROOT"/include/*.h; do
    rm -f "$I/$(basename "$h")"
  done
  rmdir "$P" "$L/.debug" "$D/.debug" "$D" 2>/dev/null || true
  echo "removed rte_power from ${destdir}${prefix}"
  if [ -z "$destdir" ] && [ -n "$ldconfig" ] && [ "$(id -u)" = 0 ] &&
     { searched "$libdir" || searched "$dpdklibdir"; }; then
    "$ldconfig"
  fi
}

case $action in
  native-libs)
    # The list depends on the toolchain and the dependencies, not on our
    # code: rustc is asked again only when they change.
    key=$({ "${RUSTC:-rustc}" -vV; cat "$ROOT/Cargo.lock" "$ROOT/Cargo.toml"; } | cksum)
    if [ -s "$build_dir/$NSL_FILE" ] && [ "$(cat "$build_dir/$NSL_FILE.key" 2>/dev/null)" = "$key" ]; then
      exit 0
    fi
    list=$(native_libs)
    printf '%s\n' "$list" > "$build_dir/$NSL_FILE.tmp.$$"
    mv -f "$build_dir/$NSL_FILE.tmp.$$" "$build_dir/$NSL_FILE"
    printf '%s\n' "$key" > "$build_dir/$NSL_FILE.key"
    ;;
  install) do_install ;;
  uninstall) do_uninstall ;;
  dpdk-override) do_override ;;
  dpdk-restore) do_restore ;;
  *) die "unknown action '$action' (native-libs, install, uninstall, dpdk-override, dpdk-restore)" ;;
esac
