#!/usr/bin/env python3
"""Host side of the real-guest test (scripts/guest-e2e.sh).

  host.py serve SOCK_DIR [--t0 EPOCH] [--timeout S]
      Connects to qemu's sockets SOCK_DIR/vm.0 and vm.1 (the role the host
      power monitor plays), reads every 464-byte packet the guest sends,
      checks it byte for byte against the plan below, answers it as planned
      (ACK, NACK, a frequency list, a capability list, or nothing), and then
      reads on until qemu closes the sockets: any extra byte is a failure.
  host.py check CONSOLE_LOG
      Checks that the guest printed what it must have got from the plan:
      the expected lines, in order, in the serial console log.

The plan is what /init in the guest runs (see scripts/guest-e2e.sh):
  1. power-guest (C, static, librte_power.a): init lcores 0 and 1, then
     up, down, min, max, enable_turbo, disable_turbo on each; reads the
     answers with rte_power_guest_channel_receive_msg
  2. the same with RTE_POWER_GUEST_CONFIRM_MS: the returns show ACK/NACK
  3. guest_vm_power_mgr -c '...' (Rust, static): CPU requests, queries,
     a policy and its removal
  4. power-guest wait 3: init of lcore 3, whose socket the host connects to
     only LATE_S after the CLI is done: init must wait for it, asleep
  5. power-guest wait 2: lcore 2's socket is never connected: init must
     give up after its timeout, asleep as well
Exit status 0 on success.
"""
import argparse
import os
import select
import socket
import struct
import sys
import time

PACKET = 464
CONNECT, CPU_POWER, PKT_POLICY, PKT_POLICY_REMOVE = 2, 1, 3, 4
QUERY_FREQ_LIST, QUERY_CAPS = 7, 10
ACK, NACK, FREQ_LIST, CAPS_LIST = 1, 2, 3, 4
UNITS = [("up", 1), ("down", 2), ("min", 4), ("max", 3), ("enable_turbo", 5), ("disable_turbo", 6)]
# the requests the host refuses
NACKED = {(0, "disable_turbo"), (1, "min")}
VM = b"e2e-vm"
FREQS = [2000000, 1000000]
TURBO, PRIO = [1, 0], [0, 1]
LATE_S = 1.0      # lcore 3's host connects this long after the CLI is done
NPORTS = 4        # lcore 2: never connected


def packet(command, resource=0, unit=0, name=b""):
    p = bytearray(PACKET)
    struct.pack_into("<QII", p, 0, resource, unit, command)
    p[16:16 + len(name)] = name
    return bytes(p)


def answer(p, command):
    return p[:12] + struct.pack("<I", command) + p[16:]


def freq_list(freqs):
    p = bytearray(88)
    struct.pack_into("<I", p, 12, FREQ_LIST)
    for i, f in enumerate(freqs):
        struct.pack_into("<I", p, 48 + 4 * i, f)
    p[80] = len(freqs)
    return bytes(p)


def caps_list(turbo, prio):
    p = bytearray(184)
    struct.pack_into("<I", p, 12, CAPS_LIST)
    for i, (t, q) in enumerate(zip(turbo, prio)):
        struct.pack_into("<Q", p, 48 + 8 * i, t)
        struct.pack_into("<Q", p, 112 + 8 * i, q)
    p[176] = len(turbo)
    return bytes(p)


def policy():
    """guest_vm_power_mgr's packet for the options in CLI_ARGS."""
    p = bytearray(packet(PKT_POLICY, name=VM))
    p[48:54] = bytes([2, 0, 0, 0, 0, 1])          # vfid[0] = --mac
    struct.pack_into("<i", p, 128, 1)            # nb_mac_to_monitor
    struct.pack_into("<III", p, 132, 0, 1000, 2000)
    p[144:146] = bytes([0, 1])                   # vcpu_to_control
    p[152] = 2                                   # num_vcpu
    struct.pack_into("<ii", p, 156, 8, 9)        # busy_hours
    struct.pack_into("<i", p, 252, 1)            # quiet_hours
    struct.pack_into("<I", p, 448, 2)            # workload LOW
    struct.pack_into("<I", p, 452, 1)            # policy TIME
    return bytes(p)


CLI_ARGS = ("--vm-name e2e-vm --vcpu-list 0-1 --busy-hours 8-9 --quiet-hours 1 --policy time "
            "--workload low --avg-packet-thresh 1000 --max-packet-thresh 2000 --mac 02:00:00:00:00:01")
CLI_COMMANDS = ("set_cpu_freq 0 up; set_cpu_freq 1 max; query_cpu_freq all; query_cpu_caps 1; "
                "send_policy now; remove_policy")


def plan(lcore):
    """(what, bytes the guest must send, bytes the host answers or None)."""
    if lcore == 3:
        req = packet(CPU_POWER, 3, 1)
        return [("late: CONNECT probe", packet(CONNECT), None), ("late: up", req, answer(req, ACK))]
    steps = []
    for phase in ("plain", "confirmed"):
        steps.append((f"{phase}: CONNECT probe", packet(CONNECT), None))
        for name, unit in UNITS:
            req = packet(CPU_POWER, lcore, unit)
            steps.append((f"{phase}: {name}", req, answer(req, NACK if (lcore, name) in NACKED else ACK)))
    steps.append(("cli: CONNECT probe", packet(CONNECT), None))
    if lcore == 0:
        req = packet(CPU_POWER, 0, 1)
        steps.append(("cli: set_cpu_freq 0 up", req, answer(req, ACK)))
        steps.append(("cli: query_cpu_freq all", packet(QUERY_FREQ_LIST, name=VM), freq_list(FREQS)))
        steps.append(("cli: send_policy", policy(), answer(policy(), ACK)))
        steps.append(("cli: remove_policy", packet(PKT_POLICY_REMOVE, name=VM), None))
    else:
        req = packet(CPU_POWER, 1, 3)
        steps.append(("cli: set_cpu_freq 1 max", req, answer(req, NACK)))
        steps.append(("cli: query_cpu_caps 1", packet(QUERY_CAPS, 1, name=VM), caps_list(TURBO, PRIO)))
    return steps


def expected_console():
    """What the guest prints, in order, given the plan's answers."""
    lines = []
    for phase in ("plain", "confirmed"):
        lines += [f"GUEST mode {phase}", "GUEST set_env ret=0",
                  "GUEST init lcore=0 ret=0", "GUEST init lcore=1 ret=0"]
        for l in (0, 1):
            for name, _ in UNITS:
                ret = -1 if phase == "confirmed" and (l, name) in NACKED else 1
                lines.append(f"GUEST op lcore={l} {name} ret={ret}")
        if phase == "plain":
            for l in (0, 1):
                for name, unit in UNITS:
                    r = "NACK" if (l, name) in NACKED else "ACK"
                    lines.append(f"GUEST reply lcore={l} resource={l} unit={unit} {r}")
        lines += ["GUEST exit lcore=0 ret=0", "GUEST exit lcore=1 ret=0", "GUEST power-guest rc=0"]
    lines += ["lcore 0 up: ACK", "lcore 1 max: NACK",
              f"vcpu 0: {FREQS[0]} kHz", f"vcpu 1: {FREQS[1]} kHz",
              "vcpu 1: turbo no, priority core yes",
              "policy sent on lcore 0: ACK",
              'policy removal for "e2e-vm" sent on lcore 0',
              "GUEST guest_vm_power_mgr rc=1",     # the NACK fails the run
              "GUEST wait lcore=3 ret=0", "GUEST wait lcore=3 within-timeout",
              "GUEST wait lcore=3 cpu=low", "GUEST wait lcore=3 up ret=1",
              "GUEST wait lcore=2 ret=-1", "GUEST wait lcore=2 within-timeout",
              "GUEST wait lcore=2 cpu=low"]
    return lines


def hexdiff(got, want):
    out = [f"@{i}: got {a:#04x} want {b:#04x}" for i, (a, b) in enumerate(zip(got, want)) if a != b]
    return ", ".join(out[:12]) + (" ..." if len(out) > 12 else "")


def connect(path, deadline):
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            if time.time() > deadline:
                raise TimeoutError(f"cannot connect to {path}")
            time.sleep(0.02)


def serve(a):
    deadline = a.t0 + a.timeout
    ports = {}

    def attach(l):
        s = connect(os.path.join(a.sock_dir, f"vm.{l}"), deadline)
        ports[s] = {"lcore": l, "buf": b"", "plan": plan(l), "eof": False}
        print(f"host: +{time.time() - a.t0:5.2f}s connected to lcore {l}'s socket", flush=True)

    attach(0)
    attach(1)
    late_at = None  # when to connect lcore 3
    ok = True
    while not all(p["eof"] for p in ports.values()):
        left = deadline - time.time()
        if left <= 0:
            print("host: FAILED: timeout; still expected: " +
                  "; ".join(f"lcore {p['lcore']}: {p['plan'][0][0]}" for p in ports.values() if p["plan"]))
            return False
        if late_at is not None and time.time() >= late_at:
            late_at = None
            attach(3)
        wait = min(left, 1.0) if late_at is None else max(0.0, min(left, late_at - time.time()))
        ready, _, _ = select.select([s for s, p in ports.items() if not p["eof"]], [], [], wait)
        for s in ready:
            p = ports[s]
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                # qemu exited with an answer of ours still unread (the
                # guest had closed the port): the same end as EOF
                chunk = b""
            if not chunk:
                p["eof"] = True
                continue
            p["buf"] += chunk
            while len(p["buf"]) >= PACKET:
                got, p["buf"] = p["buf"][:PACKET], p["buf"][PACKET:]
                if not p["plan"]:
                    print(f"host: FAILED: lcore {p['lcore']}: unexpected extra packet {got[:16].hex()}")
                    ok = False
                    continue
                what, want, reply = p["plan"].pop(0)
                if got != want:
                    print(f"host: FAILED: lcore {p['lcore']}: {what}: {hexdiff(got, want)}")
                    ok = False
                else:
                    kind = "no answer" if reply is None else (
                        {ACK: "ACK", NACK: "NACK", FREQ_LIST: "freq list", CAPS_LIST: "caps list"}
                        [struct.unpack_from("<I", reply, 12)[0]])
                    print(f"host: +{time.time() - a.t0:5.2f}s lcore {p['lcore']}: {what}: exact bytes, "
                          f"answered {kind}", flush=True)
                if reply is not None:
                    s.sendall(reply)
                if p["lcore"] == 0 and not p["plan"]:
                    late_at = time.time() + LATE_S
    for p in ports.values():
        if p["plan"]:
            print(f"host: FAILED: lcore {p['lcore']}: qemu closed before: {p['plan'][0][0]}")
            ok = False
        if p["buf"]:
            print(f"host: FAILED: lcore {p['lcore']}: {len(p['buf'])} stray bytes")
            ok = False
    if all(p["lcore"] != 3 for p in ports.values()):
        print("host: FAILED: never got to connect lcore 3")
        ok = False
    print("host: all packets as planned" if ok else "host: FAILED", flush=True)
    return ok


def check(a):
    with open(a.console, errors="replace") as f:
        lines = [l.rstrip("\r\n").replace("\r", "") for l in f]
    i = 0
    for want in expected_console():
        while i < len(lines) and lines[i] != want:
            i += 1
        if i == len(lines):
            print(f"check: FAILED: missing (in order) from the guest console: {want!r}")
            return False
        i += 1
    print(f"check: the guest reported all {len(expected_console())} expected lines")
    return True


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("sock_dir")
    s.add_argument("--t0", type=float, default=time.time())
    s.add_argument("--timeout", type=float, default=180)
    c = sub.add_parser("check")
    c.add_argument("console")
    sub.add_parser("cli-args")
    sub.add_parser("cli-commands")
    sub.add_parser("nports")
    a = ap.parse_args()
    if a.cmd == "cli-args":
        print(CLI_ARGS)
        return 0
    if a.cmd == "cli-commands":
        print(CLI_COMMANDS)
        return 0
    if a.cmd == "nports":
        print(NPORTS)
        return 0
    return 0 if (serve(a) if a.cmd == "serve" else check(a)) else 1


if __name__ == "__main__":
    sys.exit(main())
