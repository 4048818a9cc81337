#!/bin/bash
# bench-guest.sh: cost of a KVM-env request (rte_power_freq_up in a guest)
# against a bare write() of the same 464 bytes to the same descriptor.
#
#   scripts/bench-guest.sh [REQUESTS]      (default 200000 per side)
#
# 1. benches/guest_send.rs (cargo bench): our library on a pty and on a
#    FIFO, each emptied between timed bursts; also a bare writev() of a
#    header and a zero tail, for reference.
# 2. Where the machine allows (root, unshare, Debian's libdpdk-dev): the
#    same C program (scripts/guest/bench-kvm.c) linked once with DPDK's
#    librte_power (22.11) and once with ours, in one run, on a FIFO at
#    DPDK's fixed path /dev/virtio-ports/virtio.serial.port.poweragent.0
#    inside a private mount namespace (a private /dev, as
#    ../shared/dpdk-ref/run.sh does for its kvm trace). DPDK's init sleeps
#    1 s. Nothing outside the namespace is changed.
# On a FIFO our library's drain of host replies (a read every 16 requests)
# reads back its own requests, as the FIFO is both directions; on a real
# port it reads only replies, or nothing. DPDK never reads.
# Build output stays in target/. Figures vary with machine load: run it
# on a quiet machine; the medians of many bursts are printed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${1:-200000}
cd "$ROOT"
cargo build --quiet --release --lib
echo "== our library (benches/guest_send.rs)"
cargo bench --quiet --bench guest_send 2>/dev/null | grep '^guest_send'

if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null || ! pkg-config --exists libdpdk 2>/dev/null; then
  echo "== DPDK comparison skipped (needs root, unshare and libdpdk-dev)"
  exit 0
fi
OUT=$ROOT/target/bench-guest
mkdir -p "$OUT"
CFLAGS="-O2 -std=gnu11 -Wall -Wextra -Werror"
# shellcheck disable=SC2086,SC2046
gcc $CFLAGS $(pkg-config --cflags libdpdk) scripts/guest/bench-kvm.c -o "$OUT/bench-dpdk" \
  -Wl,--no-as-needed -lrte_power -lrte_eal
# shellcheck disable=SC2086
gcc $CFLAGS -I "$ROOT/include" scripts/guest/bench-kvm.c -o "$OUT/bench-ours" \
  -L "$ROOT/target/release" -lrte_power -Wl,-rpath,"$ROOT/target/release"
WORK=$(mktemp -d "$OUT/ns.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
echo "== DPDK's librte_power ($(pkg-config --modversion libdpdk)) and ours, same program, same FIFO path"
export WORK OUT N
# shellcheck disable=SC2016
unshare -m bash -c '
  set -euo pipefail
  mount --make-rprivate /
  # a private /dev: a tmpfs with every original entry bound back
  mkdir -p "$WORK/olddev"
  mount --rbind /dev "$WORK/olddev"
  mount -t tmpfs -o mode=0755 bench-dev /dev
  for e in "$WORK"/olddev/* "$WORK"/olddev/.[!.]*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    n=/dev/$(basename "$e")
    if [ -L "$e" ]; then cp -P "$e" "$n"
    elif [ -d "$e" ]; then mkdir -p "$n"; mount --rbind "$e" "$n"
    else touch "$n"; mount --bind "$e" "$n"; fi
  done
  mkdir -p /dev/virtio-ports
  for lib in dpdk ours; do
    rm -f /dev/virtio-ports/virtio.serial.port.poweragent.0
    mkfifo /dev/virtio-ports/virtio.serial.port.poweragent.0
    RTE_POWER_LOG=off "$OUT/bench-$lib" "$lib" "$N" 2>/dev/null
  done
' 2>&1 | sed 's/^/   /'
