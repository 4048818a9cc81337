#!/usr/bin/env python3
"""Stand-in for the host side of the KVM guest channels.

standin-host.py PORTS_DIR NPORTS LOG

Creates NPORTS pseudo-terminals in raw mode, links each slave as
PORTS_DIR/virtio.serial.port.poweragent.<n> (the guest library opens them
as its virtio-serial ports), prints "ready" on stdout, then reads the
464-byte channel packets arriving on the masters and writes one line per
packet to LOG: "port=<n> command=<c> unit=<u> resource=<r>". Stops on
SIGTERM/SIGINT or when stdin is closed.
"""
import os
import pty
import select
import signal
import struct
import sys
import tty

PACKET = 464
PREFIX = "virtio.serial.port.poweragent."


def main():
    ports_dir, nports, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(ports_dir, exist_ok=True)
    masters = {}
    keep = []
    for n in range(nports):
        master, slave = pty.openpty()
        tty.setraw(slave)  # bytes must pass unchanged (no CR/LF mapping)
        keep.append(slave)
        link = os.path.join(ports_dir, PREFIX + str(n))
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(os.ttyname(slave), link)
        masters[master] = (n, bytearray())
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    print("ready", flush=True)
    with open(log_path, "w", buffering=1) as log:
        fds = list(masters) + [sys.stdin.fileno()]
        while not stop:
            try:
                ready, _, _ = select.select(fds, [], [], 0.5)
            except InterruptedError:
                continue
            for fd in ready:
                if fd == sys.stdin.fileno():
                    if not os.read(fd, 4096):
                        stop.append(1)
                    continue
                n, buf = masters[fd]
                try:
                    buf += os.read(fd, 65536)
                except OSError:
                    continue
                while len(buf) >= PACKET:
                    pkt = bytes(buf[:PACKET])
                    del buf[:PACKET]
                    resource, unit, command = struct.unpack_from("<QII", pkt)
                    log.write(f"port={n} command={command} unit={unit} resource={resource}\n")


if __name__ == "__main__":
    main()
