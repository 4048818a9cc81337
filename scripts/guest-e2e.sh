#!/bin/bash
# guest-e2e.sh: the KVM guest env in a real VM.
#
# Boots Debian's kernel under qemu (TCG, no libvirt) with two virtio-serial
# ports named virtio.serial.port.poweragent.0/1, each backed by a host unix
# socket that qemu listens on, as ../shared/virt-lab/guest-roundtrip.sh
# does (and two more: one whose host connects late, one never). The
# initramfs holds busybox and two static programs of ours:
#   power-guest          scripts/guest/power-guest.c linked with librte_power.a
#   guest_vm_power_mgr   built with +crt-static
# The VM has no udev, so no /dev/virtio-ports links: the library must find
# its ports through /sys/class/virtio-ports. On the host,
# scripts/guest/host.py plays the power monitor: it checks every packet
# byte for byte and answers ACK/NACK/lists by a fixed plan; the guest prints
# what it got on the serial console, which host.py checks afterwards.
#
# In the same boot, three more ports (4-6) are served by our real monitor,
# vm_power_mgr, in daemon mode on a generated acpi-cpufreq tree and the
# libvirt test driver (scripts/guest/e2e-node.xml); the guest then scales
# its vCPUs 4 and 5 through it and tries requests it must refuse, and
# scripts/guest/monitor-e2e.py checks the guest's answers, the monitor
# (vm_power_mgr ctl), the tree, and the restore at SIGTERM.
#
#   scripts/guest-e2e.sh [--keep]      (root not needed; qemu-system-x86,
#                                       busybox-static, cpio, gcc, python3,
#                                       libvirt-dev for vm_power_mgr)
# Everything it builds or fetches stays under target/: the kernel is
# fetched once with 'apt-get download' (no install) into
# target/guest-e2e/kernel, the static CLI is built in target/guest-static.
# Exit status 0 when the host saw exactly the planned packets, the guest
# reported the planned answers and powered off, and the monitor part
# passed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/scripts/guest
CACHE=$ROOT/target/guest-e2e
KEEP=0
for a in "$@"; do
  case "$a" in
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "guest-e2e: unknown argument $a" >&2; exit 2 ;;
  esac
done

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
T0=$(now)
need() { command -v "$1" >/dev/null || { echo "guest-e2e: missing $1 (apt-get install $2)" >&2; exit 1; }; }
need qemu-system-x86_64 qemu-system-x86
need cpio cpio
need gcc gcc
need python3 python3
BUSYBOX=/bin/busybox
if ! [ -x "$BUSYBOX" ] || ldd "$BUSYBOX" 2>/dev/null | grep -q '=>'; then
  echo "guest-e2e: need a static $BUSYBOX (apt-get install busybox-static)" >&2; exit 1
fi
mkdir -p "$CACHE"

# ---- our binaries -------------------------------------------------------------
T=$(now)
cd "$ROOT"
# the library and vm_power_mgr: both default members, as the other steps
# build them (the same package set keeps the features, so no rebuild)
cargo build --quiet --release
# a separate target dir: +crt-static must not leak into the normal build
# (cargo notes that the cdylib crate type cannot be static: expected, dropped).
# The host's tree generator is built there too: with its dev-dependencies
# in the normal target dir it would change the features of the library
# and vm_power_mgr and make every other step rebuild them.
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$ROOT/target/guest-static" \
  CARGO_PROFILE_RELEASE_DEBUG=0 \
  cargo build --quiet --release --target x86_64-unknown-linux-gnu -p guest-cli -p testkit \
  --bin guest_vm_power_mgr --example make_tree 2> >(grep -v -e 'dropping unsupported crate type' -e '^$' >&2)
CLI_BIN=$ROOT/target/guest-static/x86_64-unknown-linux-gnu/release/guest_vm_power_mgr
MAKE_TREE=$ROOT/target/guest-static/x86_64-unknown-linux-gnu/release/examples/make_tree
BIN_DIR=$CACHE/bin
mkdir -p "$BIN_DIR"
# static glibc warns about getaddrinfo/getpwuid_r in std; neither is used
gcc -static -s -O2 -std=c11 -Wall -Wextra -Werror -I "$ROOT/include" \
  "$HERE/power-guest.c" "$ROOT/target/release/librte_power.a" -lpthread -ldl -lm -lrt -lutil \
  -o "$BIN_DIR/power-guest" 2> "$BIN_DIR/ld.log" || { cat "$BIN_DIR/ld.log" >&2; exit 1; }
strip -o "$BIN_DIR/guest_vm_power_mgr" "$CLI_BIN"
for b in power-guest guest_vm_power_mgr; do
  if ldd "$BIN_DIR/$b" 2>/dev/null | grep -q '=>'; then echo "guest-e2e: $b is not static" >&2; exit 1; fi
done
echo "== binaries built in $(since "$T") s"

# ---- kernel (fetched once, never installed) -------------------------------------
KROOT=$CACHE/kernel
if ! ls "$KROOT"/boot/vmlinuz-* >/dev/null 2>&1; then
  T=$(now)
  KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
  if [ -z "$KPKG" ]; then
    apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
  fi
  [ -n "$KPKG" ] || { echo "guest-e2e: no apt package for linux-image-amd64" >&2; exit 1; }
  rm -rf "$KROOT.tmp"; mkdir -p "$KROOT.tmp"
  (cd "$KROOT.tmp" && apt-get download -q -o APT::Sandbox::User=root "$KPKG" >/dev/null)
  dpkg-deb --fsys-tarfile "$KROOT.tmp/${KPKG}"_*.deb | tar -x -C "$KROOT.tmp" --wildcards \
    './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/virtio/*' \
    './lib/modules/*/kernel/drivers/char/virtio_console.ko*' './lib/modules/*/modules.builtin'
  rm -f "$KROOT.tmp"/*.deb
  rm -rf "$KROOT"; mv "$KROOT.tmp" "$KROOT"
  echo "== kernel $KPKG fetched in $(since "$T") s"
fi
KVER=$(ls "$KROOT/lib/modules" | head -n1)
KERNEL=$KROOT/boot/vmlinuz-$KVER
MODDIR=$KROOT/lib/modules/$KVER

NPORTS=$(python3 "$HERE/host.py" nports)
MON_PY=$HERE/monitor-e2e.py
read -r -a MON_PORTS <<< "$(python3 "$MON_PY" ports)"
ALL_PORTS=$((NPORTS + ${#MON_PORTS[@]}))
# ---- initramfs -------------------------------------------------------------------
WORK=$(mktemp -d "$CACHE/run.XXXXXX")
QPID=""
MPID=""
cleanup() {
  if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then kill "$QPID" 2>/dev/null || true; fi
  if [ -n "$MPID" ] && kill -0 "$MPID" 2>/dev/null; then kill "$MPID" 2>/dev/null || true; fi
  if [ "$KEEP" = 0 ]; then rm -rf "$WORK"; else echo "== kept $WORK"; fi
}
trap cleanup EXIT
R=$WORK/root
mkdir -p "$R"/{bin,dev,proc,sys,lib/modules,tmp}
cp "$BUSYBOX" "$R/bin/busybox"
cp "$BIN_DIR/power-guest" "$BIN_DIR/guest_vm_power_mgr" "$R/bin/"
python3 "$MON_PY" init > "$R/monitor-part.sh"
# load order: virtio needs virtio_ring; virtio_pci needs the two before it
MODS="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_console"
for m in $MODS; do
  f=$(find "$MODDIR/kernel" -name "$m.ko*" | head -n1)
  if [ -z "$f" ]; then
    grep -q "/$m.ko" "$MODDIR/modules.builtin" 2>/dev/null || echo "guest-e2e: warning: no module $m" >&2
    continue
  fi
  case "$f" in
    *.ko.xz) xz -dc "$f" > "$R/lib/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" > "$R/lib/modules/$m.ko" ;;
    *) cp "$f" "$R/lib/modules/$m.ko" ;;
  esac
done
CLI_ARGS=$(python3 "$HERE/host.py" cli-args)
CLI_COMMANDS=$(python3 "$HERE/host.py" cli-commands)
cat > "$R/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $MODS; do [ -f /lib/modules/\$m.ko ] && insmod /lib/modules/\$m.ko; done
# the ports show up asynchronously once virtio_console is loaded
for i in \$(seq 200); do
  [ \$(cat /sys/class/virtio-ports/*/name 2>/dev/null | grep -c poweragent) -ge $ALL_PORTS ] && break
  sleep 0.02
done
for p in /sys/class/virtio-ports/*; do echo "GUEST port \$(basename \$p) = \$(cat \$p/name)"; done
[ -e /dev/virtio-ports ] && echo "GUEST has /dev/virtio-ports" || echo "GUEST no /dev/virtio-ports"
echo "GUEST userspace at uptime \$(cut -d' ' -f1 /proc/uptime)s"
/bin/power-guest; echo "GUEST power-guest rc=\$?"
RTE_POWER_GUEST_CONFIRM_MS=5000 /bin/power-guest; echo "GUEST power-guest rc=\$?"
/bin/guest_vm_power_mgr $CLI_ARGS -c "$CLI_COMMANDS"; echo "GUEST guest_vm_power_mgr rc=\$?"
RTE_POWER_GUEST_CONNECT_TIMEOUT_MS=20000 /bin/power-guest wait 3
RTE_POWER_GUEST_CONNECT_TIMEOUT_MS=500 /bin/power-guest wait 2
# ports $(echo "${MON_PORTS[@]}"): the real monitor (scripts/guest/monitor-e2e.py)
sh /monitor-part.sh
echo "GUEST done at uptime \$(cut -d' ' -f1 /proc/uptime)s"
poweroff -f
EOF
chmod +x "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1 > "$WORK/initrd.gz")

# ---- the real monitor, for ports 4-6 -----------------------------------------------
# started first, as on a real host: it creates the socket directory that QEMU
# binds in, and attaches to each socket when QEMU creates it (inotify)
T=$(now)
MON=$WORK/mon
mkdir -p "$MON"
"$MAKE_TREE" acpi "$MON/sys" 8
python3 "$MON_PY" snapshot "$MON/sys" "$MON/before.json"
mapfile -t MON_ARGS < <(python3 "$MON_PY" monitor-args)
VMPM=$ROOT/target/release/vm_power_mgr
CTL=("$VMPM" ctl --socket "$MON/ctl.sock")
"$VMPM" --daemon --uri "test://$HERE/e2e-node.xml" --socket-dir "$MON/sock" --sysfs "$MON/sys" \
  --ctl-socket "$MON/ctl.sock" --refresh-ms 0 "${MON_ARGS[@]}" 2> "$MON/monitor.log" &
MPID=$!
python3 "$MON_PY" wait-ready "$MON/monitor.log" "$MPID" --timeout 20 ||
  { sed 's/^/   | /' "$MON/monitor.log"; exit 1; }
echo "== vm_power_mgr ready in $(since "$T") s (daemon, test driver, generated acpi tree)"

# ---- boot ------------------------------------------------------------------------
SOCK=$WORK/sock
mkdir -p "$SOCK"
ARGS=(-name rte-power-e2e -accel tcg,thread=multi -smp 1 -m 256 -nodefaults -display none -no-reboot
      -kernel "$KERNEL" -initrd "$WORK/initrd.gz"
      -append "console=ttyS0 panic=-1 quiet loglevel=3"
      -serial "file:$WORK/console.log" -monitor none
      -device virtio-serial-pci,id=vs0)
for ((i = 0; i < NPORTS; i++)); do
  ARGS+=(-chardev "socket,id=c$i,path=$SOCK/vm.$i,server=on,wait=off"
         -device "virtserialport,bus=vs0.0,chardev=c$i,name=virtio.serial.port.poweragent.$i")
done
for i in "${MON_PORTS[@]}"; do
  ARGS+=(-chardev "socket,id=c$i,path=$MON/sock/e2e-vm.$i,server=on,wait=off"
         -device "virtserialport,bus=vs0.0,chardev=c$i,name=virtio.serial.port.poweragent.$i")
done
QT0=$(now)
qemu-system-x86_64 "${ARGS[@]}" > "$WORK/qemu.log" 2>&1 &
QPID=$!
echo "== qemu started (kernel $KVER, TCG), host side:"
HOST_RC=0
python3 "$HERE/host.py" serve "$SOCK" --t0 "$QT0" --timeout 150 2>&1 | sed "s/^/   /" || HOST_RC=$?
for _ in $(seq 100); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
OFF=1
if kill -0 "$QPID" 2>/dev/null; then OFF=0; kill "$QPID"; fi
wait "$QPID" 2>/dev/null || true
QPID=""
BOOT=$(since "$QT0")
echo "== guest console:"
tr -d '\r' < "$WORK/console.log" | sed 's/^/   | /'
[ -s "$WORK/qemu.log" ] && { echo "== qemu:"; sed 's/^/   | /' "$WORK/qemu.log"; }
CHECK_RC=0
python3 "$HERE/host.py" check "$WORK/console.log" || CHECK_RC=$?
grep -q "GUEST no /dev/virtio-ports" "$WORK/console.log" || { echo "guest-e2e: the guest had /dev/virtio-ports links"; CHECK_RC=1; }

# ---- the monitor part: the guest's answers, then the host's side ----------------
echo "== vm_power_mgr (ports ${MON_PORTS[*]}):"
MON_RC=0
python3 "$MON_PY" check-console "$WORK/console.log" "$MON/sys" || MON_RC=1
python3 "$MON_PY" check-running "$MON/sys" "$MON/before.json" "$MON/monitor.log" -- "${CTL[@]}" ||
  MON_RC=1
kill -TERM "$MPID"
for _ in $(seq 200); do kill -0 "$MPID" 2>/dev/null || break; sleep 0.05; done
kill -0 "$MPID" 2>/dev/null && { echo "monitor: FAILED: still running 10 s after SIGTERM"; kill -KILL "$MPID"; }
STOP_RC=0
wait "$MPID" || STOP_RC=$?
MPID=""
[ "$STOP_RC" = 0 ] || { echo "monitor: FAILED: vm_power_mgr exited with $STOP_RC on SIGTERM"; MON_RC=1; }
python3 "$MON_PY" check-stopped "$MON/sys" "$MON/before.json" || MON_RC=1
if [ "$MON_RC" != 0 ]; then echo "== vm_power_mgr log:"; sed 's/^/   | /' "$MON/monitor.log"; fi
echo "== boot to power-off: $BOOT s; whole run $(since "$T0") s; host rc=$HOST_RC, check rc=$CHECK_RC, monitor rc=$MON_RC, powered off: $OFF"
[ "$HOST_RC" = 0 ] && [ "$CHECK_RC" = 0 ] && [ "$MON_RC" = 0 ] && [ "$OFF" = 1 ]
