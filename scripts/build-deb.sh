#!/bin/bash
# scripts/build-deb.sh [--build-dir=DIR] [--out=DIR]
#
# Debian packages of rte-power from the release build (`make`: cargo build
# --release and scripts/build-abi.sh), with dpkg-deb alone (no debian/
# source package: the files come from scripts/install.sh, as `make
# install` lays them out, and the control data is written here):
#
#   librte-power-rs0      librte_power_rs.so.0 in the multiarch directory,
#                         and LIBDIR/rte-power/: the DPDK binary ABIs
#                         librte_power.so.23-.26, librte_power_kvm_vm.so.25-.26.
#                         postinst writes /etc/ld.so.conf.d/00-rte-power-deb-<triplet>.conf
#                         (that directory first for every program, as
#                         `make dpdk-override`), postrm removes it, and
#                         libc's ldconfig trigger rebuilds the cache after
#                         each: DPDK programs load ours, then Debian's again
#   librte-power-rs-dev   /usr/include/rte-power/*.h, rte_power.pc,
#                         LIBDIR/librte_power_rs.so, and in LIBDIR/rte-power/dev/
#                         librte_power.so (-> the .so.0) and librte_power.a:
#                         nothing in a path of Debian's libdpdk-dev (its own
#                         librte_power.so/.a and /usr/include/dpdk/rte_power*.h)
#   rte-power-tools       rte-pm, guest_vm_power_mgr
#   vm-power-mgr          the monitor and monitor/dist/vm_power_mgr.service
#                         with /usr/bin paths (generated from it)
#   *-dbgsym              the debug info of each, by build ID
#                         (/usr/lib/debug/.build-id/), as Debian's dh_strip
#
# Everything is stripped as dh_strip does; dependencies come from
# dpkg-shlibdeps. Output: DIR/../deb/*.deb (default target/deb). Needs
# dpkg-dev and binutils (scripts/deps.d/pkg.txt); lintian overrides and
# maintainer scripts are in deploy/deb/.
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/target/release
OUT=
for arg in "$@"; do
  case $arg in
    --build-dir=*) BUILD=${arg#*=} ;;
    --out=*) OUT=${arg#*=} ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "build-deb: unknown argument $arg" >&2; exit 2 ;;
  esac
done
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
: "${OUT:=$BUILD/../deb}"
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac

die() { echo "build-deb: $*" >&2; exit 1; }
for tool in dpkg-deb dpkg-shlibdeps dpkg-architecture objcopy strip readelf; do
  command -v "$tool" > /dev/null || die "$tool is needed (dpkg-dev, binutils: scripts/deps.d/pkg.txt)"
done
for f in vm_power_mgr rte-pm guest_vm_power_mgr dpdk-abi/.built; do
  [ -e "$BUILD/$f" ] || die "$BUILD/$f is missing: run 'make' first"
done

VERSION=$(sed -n 's/^version *= *"\(.*\)".*/\1/p' "$ROOT/Cargo.toml" | head -n 1)
[ -n "$VERSION" ] || die "no version in Cargo.toml"
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
LIBDIR=/usr/lib/$MA
PRIV=$LIBDIR/rte-power
DEVDIR=$PRIV/dev
# one per architecture: the package is Multi-Arch: same
CONF=00-rte-power-deb-$MA.conf
MAINTAINER="rte-power developers <rte-power@example.org>"
DEB=$ROOT/deploy/deb
# reproducible: file times and the changelog date from the last commit
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

WORK=$OUT/work
rm -rf "$WORK"
# the packages' roots are WORK/src/debian/PACKAGE, where dpkg-shlibdeps
# expects them
SRC=$WORK/src
mkdir -p "$SRC/debian" "$OUT"
rm -f "$OUT"/*.deb
STAGE=$WORK/stage

# 1. everything, as `make install` lays it out, unstripped (stripped below)
bash "$ROOT/scripts/install.sh" install --prefix=/usr --libdir="$LIBDIR" \
  --includedir=/usr/include/rte-power --dpdklibdir="$PRIV" --destdir="$STAGE" \
  --build-dir="$BUILD" --ldconfig= --strip=0 > /dev/null
# the -dev files go to a directory of their own: Debian's libdpdk-dev owns
# LIBDIR/librte_power.so and .a, and the loader's directory PRIV must not
# hold the link (ldconfig would make an unowned SONAME link beside it)
mkdir -p "$STAGE$DEVDIR"
mv "$STAGE$LIBDIR/librte_power.a" "$STAGE$DEVDIR/"
rm "$STAGE$LIBDIR/librte_power.so"
ln -s ../../librte_power_rs.so.0 "$STAGE$DEVDIR/librte_power.so"
# and -lrte_power_rs, the library's own name, as Debian's -dev packages have
ln -s librte_power_rs.so.0 "$STAGE$LIBDIR/librte_power_rs.so"
sed -i "s|^libdir=.*|libdir=\${exec_prefix}/lib/$MA/rte-power/dev|" "$STAGE$LIBDIR/pkgconfig/rte_power.pc"
grep -qx "libdir=\${exec_prefix}/lib/$MA/rte-power/dev" "$STAGE$LIBDIR/pkgconfig/rte_power.pc" ||
  die "rte_power.pc: libdir not rewritten"

# pkg DIR: the root of one binary package
pkg() { printf '%s\n' "$SRC/debian/$1"; }

# put PACKAGE SRC DEST MODE: one file from SRC into PACKAGE at DEST
put() {
  install -D -m "$4" "$2" "$(pkg "$1")$3"
}

# move PACKAGE PATH...: staged paths (files or links) into PACKAGE
move() {
  local p=$1 f; shift
  for f in "$@"; do
    mkdir -p "$(dirname "$(pkg "$p")$f")"
    mv "$STAGE$f" "$(pkg "$p")$f"
  done
}

LIB=librte-power-rs0 DEV=librte-power-rs-dev TOOLS=rte-power-tools MON=vm-power-mgr
move "$LIB" "$LIBDIR/librte_power_rs.so.0.0" "$LIBDIR/librte_power_rs.so.0"
(cd "$STAGE" && find ".$PRIV" -name 'librte_power*.so.[0-9]*') | sed 's/^\.//' | sort | while read -r f; do
  move "$LIB" "$f"
done
move "$DEV" "$DEVDIR" /usr/include/rte-power "$LIBDIR/librte_power_rs.so" \
  "$LIBDIR/pkgconfig/rte_power.pc"
leftover=$(cd "$STAGE" && find . ! -type d)
[ -z "$leftover" ] || die "staged files in no package: $leftover"

put "$TOOLS" "$BUILD/rte-pm" /usr/bin/rte-pm 0755
put "$TOOLS" "$BUILD/guest_vm_power_mgr" /usr/bin/guest_vm_power_mgr 0755
put "$MON" "$BUILD/vm_power_mgr" /usr/bin/vm_power_mgr 0755
# the hardened unit, its paths those of the package
unit=$(pkg "$MON")/lib/systemd/system/vm_power_mgr.service
mkdir -p "$(dirname "$unit")"
sed -e 's|/usr/local/bin/|/usr/bin/|g' \
    -e 's|file:///usr/share/doc/rte-power/|file:///usr/share/doc/vm-power-mgr/|' \
    -e 's|^# Install: cp vm_power_mgr.service /etc/systemd/system/ && systemctl daemon-reload|# Installed by the vm-power-mgr package; change it with `systemctl edit vm_power_mgr`|' \
    "$ROOT/monitor/dist/vm_power_mgr.service" > "$unit"
chmod 0644 "$unit"
! grep -n '/usr/local' "$unit" || die "the packaged unit still names /usr/local"
grep -q '^ExecStart=/usr/bin/vm_power_mgr ' "$unit" || die "the packaged unit has no /usr/bin ExecStart"
put "$MON" "$ROOT/docs/monitor.md" /usr/share/doc/vm-power-mgr/monitor.md 0644
put "$TOOLS" "$ROOT/docs/rte-pm.md" /usr/share/doc/rte-power-tools/rte-pm.md 0644

# 2. strip as dh_strip: debug info by build ID into PACKAGE-dbgsym
declare -A BUILD_IDS=()
strip_pkg() {
  local p=$1 root f kind id dbg
  root=$(pkg "$p")
  while read -r f; do
    case $(readelf -h "$f" 2>/dev/null | awk '/Type:/ { print $2 }') in
      DYN) kind=lib ;;
      EXEC) kind=exe ;;
      *) continue ;;
    esac
    # PIE executables are DYN too: a file in bin/ is a program
    case $f in */bin/*) kind=exe ;; esac
    id=$(readelf -n "$f" | awk '/Build ID:/ { print $3 }')
    [ -n "$id" ] || die "$f has no build ID"
    dbg=$(pkg "$p-dbgsym")/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug
    mkdir -p "$(dirname "$dbg")"
    objcopy --only-keep-debug --compress-debug-sections "$f" "$dbg"
    chmod 0644 "$dbg"
    if [ $kind = lib ]; then
      strip --remove-section=.comment --remove-section=.note --strip-unneeded "$f"
    else
      strip --remove-section=.comment --remove-section=.note "$f"
    fi
    objcopy --add-gnu-debuglink="$dbg" "$f"
    [ $kind = exe ] || chmod 0644 "$f"
    BUILD_IDS[$p]="${BUILD_IDS[$p]:+${BUILD_IDS[$p]} }$id"
  done < <(find "$root" -type f \( -name '*.so.*' -o -path '*/bin/*' \) | sort)
  # the archive: no debug info, deterministic
  find "$root" -type f -name '*.a' -exec strip --strip-debug --remove-section=.comment \
    --remove-section=.note --enable-deterministic-archives {} \;
}
for p in "$LIB" "$DEV" "$TOOLS" "$MON"; do strip_pkg "$p"; done

# 3. dependencies of the ELF files, from dpkg-shlibdeps (it wants a
# debian/control: a minimal one; our own library through a local shlibs)
SHL=$SRC
printf 'Source: rte-power\n\nPackage: rte-power\nArchitecture: any\n' > "$SHL/debian/control"
# our own libraries: librte_power_kvm_vm.so.N needs librte_power.so.N of
# the same package (-x drops that self-dependency)
{ printf 'librte_power_rs 0 %s (>= %s)\n' "$LIB" "$VERSION"
  for n in 23 24 25 26; do printf 'librte_power %s %s (>= %s)\n' "$n" "$LIB" "$VERSION"; done
} > "$SHL/debian/shlibs.local"
shlibdeps() {
  local files
  mapfile -t files < <(cd "$SHL" && find "debian/$1" -type f \( -name '*.so.*' -o -path '*/bin/*' \) | sort)
  [ ${#files[@]} -gt 0 ] || return 0
  (cd "$SHL" && dpkg-shlibdeps -O -x"$1" -l"debian/$LIB$LIBDIR" -l"debian/$LIB$PRIV" "${files[@]}") |
    sed -n 's/^shlibs:Depends=//p'
}
# (a package root is a directory with DEBIAN/ in it)
for p in "$LIB" "$TOOLS" "$MON"; do mkdir -p "$(pkg "$p")/DEBIAN"; done
LIB_DEPS=$(shlibdeps "$LIB") TOOLS_DEPS=$(shlibdeps "$TOOLS") MON_DEPS=$(shlibdeps "$MON")
[ -n "$LIB_DEPS" ] && [ -n "$TOOLS_DEPS" ] && [ -n "$MON_DEPS" ] || die "dpkg-shlibdeps found no dependencies"

# 4. documentation every package carries, maintainer scripts, control
changelog() {
  local date
  date=$(date -R -u -d "@$SOURCE_DATE_EPOCH")
  printf '%s (%s) unstable; urgency=medium\n\n  * Built from the rte-power source tree by scripts/build-deb.sh.\n\n -- %s  %s\n' \
    "rte-power" "$VERSION" "$MAINTAINER" "$date" | gzip -9n
}

script() { # script PACKAGE NAME TEMPLATE
  sed -e "s|@CONF@|$CONF|g" -e "s|@DIR@|$PRIV|g" "$DEB/$3" > "$(pkg "$1")/DEBIAN/$2"
  chmod 0755 "$(pkg "$1")/DEBIAN/$2"
}

control() { # control PACKAGE SECTION DEPENDS DESCRIPTION [EXTRA FIELD LINES]
  local p=$1 root size
  root=$(pkg "$p")
  mkdir -p "$root/DEBIAN" "$root/usr/share/doc/$p"
  install -m 0644 "$DEB/copyright" "$root/usr/share/doc/$p/copyright"
  changelog > "$root/usr/share/doc/$p/changelog.gz"
  if [ -f "$DEB/$p.lintian-overrides" ]; then
    install -D -m 0644 "$DEB/$p.lintian-overrides" "$root/usr/share/lintian/overrides/$p"
  fi
  size=$(du -k -s --apparent-size "$root" | cut -f1)
  {
    printf 'Package: %s\nSource: rte-power\nVersion: %s\nArchitecture: %s\n' "$p" "$VERSION" "$ARCH"
    printf 'Maintainer: %s\nInstalled-Size: %s\n' "$MAINTAINER" "$size"
    [ -z "$3" ] || printf 'Depends: %s\n' "$3"
    printf 'Section: %s\nPriority: optional\n' "$2"
    [ $# -lt 5 ] || printf '%s\n' "$5"
    printf 'Description: %s\n' "$4"
  } > "$root/DEBIAN/control"
}

md5sums() {
  local root
  root=$(pkg "$1")
  (cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort |
    xargs -r md5sum) > "$root/DEBIAN/md5sums"
  chmod 0644 "$root/DEBIAN/md5sums"
}

dbgsym() { # dbgsym PACKAGE: the -dbgsym package of PACKAGE
  local p=$1 d=$1-dbgsym root
  root=$(pkg "$d")
  [ -d "$root" ] || return 0
  mkdir -p "$root/DEBIAN" "$root/usr/share/doc"
  ln -s "$p" "$root/usr/share/doc/$d"
  size=$(du -k -s --apparent-size "$root" | cut -f1)
  {
    printf 'Package: %s\nSource: rte-power\nVersion: %s\nAuto-Built-Package: debug-symbols\n' "$d" "$VERSION"
    printf 'Architecture: %s\nMaintainer: %s\nInstalled-Size: %s\n' "$ARCH" "$MAINTAINER" "$size"
    printf 'Depends: %s (= %s)\nSection: debug\nPriority: optional\n' "$p" "$VERSION"
    printf 'Description: debug symbols for %s\nBuild-Ids: %s\n' "$p" "${BUILD_IDS[$p]}"
  } > "$root/DEBIAN/control"
}

control "$LIB" libs "$LIB_DEPS" "DPDK librte_power drop-in in Rust (shared libraries)
 rte-power implements DPDK's power management API (librte_power) in Rust,
 needing no DPDK: CPU frequency control through the kernel's cpufreq,
 Intel uncore limits, PMD power management and the KVM guest channel.
 .
 This package holds librte_power_rs.so.0 and the DPDK binary ABIs
 (librte_power.so.23 to .26, librte_power_kvm_vm.so.25 and .26) in a
 private directory that it puts first on the dynamic loader's path:
 while it is installed, DPDK programs built against Debian's DPDK load
 rte-power's librte_power instead of DPDK's; removing it brings DPDK's
 back." "Multi-Arch: same"
printf 'librte_power_rs 0 %s (>= %s)\n' "$LIB" "$VERSION" > "$(pkg "$LIB")/DEBIAN/shlibs"
chmod 0644 "$(pkg "$LIB")/DEBIAN/shlibs"
printf 'activate-noawait ldconfig\n' > "$(pkg "$LIB")/DEBIAN/triggers"
chmod 0644 "$(pkg "$LIB")/DEBIAN/triggers"
script "$LIB" postinst lib.postinst
script "$LIB" postrm lib.postrm

control "$DEV" libdevel "$LIB (= $VERSION)" "DPDK librte_power drop-in in Rust (development files)
 rte-power implements DPDK's power management API (librte_power) in Rust,
 needing no DPDK.
 .
 This package holds the C headers (/usr/include/rte-power), the static
 library, the link for -lrte_power and rte_power.pc: build with
 'pkg-config --cflags --libs rte_power'. Its files do not clash with
 Debian's libdpdk-dev." "Multi-Arch: same"

control "$TOOLS" utils "$TOOLS_DEPS" "CPU power tools of rte-power: rte-pm and guest_vm_power_mgr
 rte-pm shows and sets host CPU P-states and C-states (cpufreq, cpufreq
 statistics, cpuidle) in the manner of xenpm, and restores CPUs left
 changed by a DPDK process that died. guest_vm_power_mgr is the guest side
 of DPDK's VM power management: it sends frequency requests to the host
 over virtio-serial."

control "$MON" admin "$MON_DEPS, $TOOLS (= $VERSION)" "host monitor of DPDK VM power management (vm_power_mgr)
 vm_power_mgr serves the frequency requests of DPDK guests over
 virtio-serial channels, maps their vCPUs to host CPUs through libvirt and
 sets those CPUs' frequencies, restoring them when it stops.
 .
 It comes with a hardened systemd unit, vm_power_mgr.service, which is not
 enabled: name the VMs and channels first (systemctl edit vm_power_mgr)."
script "$MON" postinst monitor.postinst
script "$MON" prerm monitor.prerm
script "$MON" postrm monitor.postrm

for p in "$LIB" "$TOOLS" "$MON"; do dbgsym "$p"; done

# 5. the archives
for root in "$SRC"/debian/*/; do
  root=${root%/}
  p=$(basename "$root")
  md5sums "$p"
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --root-owner-group -Zxz --build "$root" "$OUT/${p}_${VERSION}_$ARCH.deb" > /dev/null
  echo "built $(basename "$OUT")/${p}_${VERSION}_$ARCH.deb ($(du -k "$OUT/${p}_${VERSION}_$ARCH.deb" | cut -f1) KiB)"
done
