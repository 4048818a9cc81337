#!/bin/bash
# Installs (or removes) the built library, its headers and rte_power.pc.
# Normally run by the top-level Makefile (`make install`, `make uninstall`);
# it never builds anything, so `sudo make install` after `make` needs no
# Rust toolchain in root's PATH.
#
#   scripts/install.sh native-libs [options]   record rustc's native-static-libs
#   scripts/install.sh install [options]
#   scripts/install.sh uninstall [options]
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
#   --abi-minor=N       [0]                librte_power.so.MAJOR.N
#   --ldconfig=CMD      [ldconfig]         run after installing into a
#                                          directory the dynamic loader
#                                          searches (root, no DESTDIR only);
#                                          --ldconfig= turns it off
#
# Layout under PREFIX: lib/librte_power.so.25.0 (the file),
# lib/librte_power.so.25 -> librte_power.so.25.0 (the SONAME),
# lib/librte_power.so -> librte_power.so.25 (for -lrte_power),
# lib/librte_power.a, include/*.h, lib/pkgconfig/rte_power.pc.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true

ROOT=$(cd "$(dirname "$0")/.." && pwd)
NSL_FILE=rte_power.native-static-libs

die() { echo "install.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: $0 native-libs|install|uninstall [--prefix=DIR ...]"
action=$1; shift
prefix=/usr/local libdir= includedir= pkgconfigdir= destdir= abi_minor=0
build_dir=$ROOT/target/release ldconfig=ldconfig
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
    *) die "unknown option: $arg" ;;
  esac
done
prefix=${prefix%/}
: "${libdir:=$prefix/lib}" "${includedir:=$prefix/include}"
: "${pkgconfigdir:=$libdir/pkgconfig}"
for d in "$prefix" "$libdir" "$includedir" "$pkgconfigdir"; do
  case $d in /*) ;; *) die "paths must be absolute: '$d'" ;; esac
done
case $build_dir in /*) ;; *) build_dir=$PWD/$build_dir ;; esac

# rustc's list of the native libraries that librte_power.a needs, one line
# as rustc prints it, duplicates dropped (the last occurrence kept, which is
# safe for a static link order).
native_libs() {
  local out list
  out=$("${CARGO:-cargo}" rustc --release --color never ${CARGOFLAGS:-} \
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

do_install() {
  local so=$build_dir/librte_power.so a=$build_dir/librte_power.a nsl=$build_dir/$NSL_FILE
  for f in "$so" "$a" "$nsl"; do
    [ -e "$f" ] || die "$f is missing: run 'make' first"
  done
  command -v readelf > /dev/null || die "readelf (binutils) is needed"
  local soname real version libs_private
  soname=$(soname_of "$so")
  case $soname in librte_power.so.[0-9]*) ;; *) die "$so: unexpected SONAME '$soname'" ;; esac
  real=$soname.$abi_minor
  version=$(sed -n 's/^version *= *"\(.*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1)
  [ -n "$version" ] || die "no version in Cargo.toml"
  libs_private=$(cat "$nsl")
  [ -n "$libs_private" ] || die "$nsl is empty"

  local L=$destdir$libdir I=$destdir$includedir P=$destdir$pkgconfigdir
  install -d "$L" "$I" "$P"
  install -m 0755 "$so" "$L/$real"
  ln -sfn "$real" "$L/$soname"
  ln -sfn "$soname" "$L/librte_power.so"
  install -m 0644 "$a" "$L/librte_power.a"
  install -m 0644 "$ROOT"/include/*.h "$I/"

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
  # refresh the loader cache when the library went straight into one of
  # the directories it caches (not for staging, not as a user)
  if [ -z "$destdir" ] && [ -n "$ldconfig" ] && [ "$(id -u)" = 0 ]; then
    local searched
    searched=$("$ldconfig" -N -X -v 2>/dev/null | sed -n 's/^\(\/[^:]*\):.*/\1/p' || true)
    if grep -qxF -- "$libdir" <<< "$searched"; then
      echo "running $ldconfig"
      "$ldconfig"
    fi
  fi
}

do_uninstall() {
  local L=$destdir$libdir I=$destdir$includedir P=$destdir$pkgconfigdir h
  rm -f "$L"/librte_power.so "$L"/librte_power.so.[0-9]* "$L"/librte_power.a \
        "$P"/rte_power.pc
  for h in "$ROOT"/include/*.h; do
    rm -f "$I/$(basename "$h")"
  done
  rmdir "$P" 2>/dev/null || true
  echo "removed rte_power from ${destdir}${prefix}"
}

case $action in
  native-libs)
    list=$(native_libs)
    printf '%s\n' "$list" > "$build_dir/$NSL_FILE.tmp.$$"
    mv -f "$build_dir/$NSL_FILE.tmp.$$" "$build_dir/$NSL_FILE"
    ;;
  install) do_install ;;
  uninstall) do_uninstall ;;
  *) die "unknown action '$action' (native-libs, install, uninstall)" ;;
esac
