#!/usr/bin/env python3
"""The real monitor in the real-guest test (scripts/guest-e2e.sh).

In the same QEMU boot as scripts/guest/host.py (which serves ports 0-3),
ports 4, 5 and 6 of the guest are served by our vm_power_mgr in daemon
mode: a generated acpi-cpufreq tree with 8 CPUs (make_tree), the libvirt
test driver with scripts/guest/e2e-node.xml (VM e2e-vm: vCPU 4 on pCPU 4,
vCPU 5 on pCPUs 5-6, 6 vCPUs in all; VM e2e-other: vCPU 0 on pCPU 7) and
QEMU's sockets <sock-dir>/e2e-vm.<N>. The guest runs the plan below (after
host.py's part), the host then checks what the guest printed, the monitor
(vm_power_mgr ctl), the sysfs tree and the restore at SIGTERM.

  monitor-e2e.py monitor-args        -e commands for the daemon, one a line
  monitor-e2e.py ports               the ports the monitor serves
  monitor-e2e.py init                shell lines for the guest's /init
  monitor-e2e.py snapshot TREE OUT   record the tree (values) before the run
  monitor-e2e.py wait-ready LOG PID [--timeout S]
                                     wait for the daemon's "running" line
  monitor-e2e.py check-console LOG TREE
  monitor-e2e.py check-running TREE SNAPSHOT MONITOR_LOG -- CTL...
                                     after the guest powered off, monitor up
  monitor-e2e.py check-stopped TREE SNAPSHOT
                                     after SIGTERM: governors restored
Exit status 0 on success.
"""
import json
import os
import re
import subprocess
import sys
import time

VM, OTHER_VM = "e2e-vm", "e2e-other"
NVCPUS = 6                          # e2e-vm's vCPUs in e2e-node.xml
PORTS = [4, 5, 6]                   # 6 is beyond NVCPUS: every request refused
PINS = {4: [4], 5: [5, 6]}          # vCPU -> pCPUs (e2e-node.xml)
OTHER_PCPU = 7                      # e2e-other's only CPU
UNTOUCHED = [0, 1, 2, 3, 7]         # nothing may be written there
NCPUS = 8
# (vCPU, request, table index it must reach): each request is followed by
# a query of the vCPU's frequency through the monitor; -1 is the last entry.
# The tree's table starts with the turbo entry (max + 1000 kHz); turbo is
# on at start, so max is table[0].
STEPS = [
    (4, "max", 0), (4, "down", 1), (4, "min", -1), (4, "up", -2),
    (4, "max", 0), (4, "disable_turbo", 1), (4, "enable_turbo", 0), (4, "down", 1),
    (5, "min", -1), (5, "up", -2), (5, "up", -3),
]
# power-guest forge: SCALE_MIN requests on port 4 and the monitor's answer.
# A vm_name naming the other VM is ignored (DESIGN §4): the request is
# e2e-vm's own vCPU 4, ACKed, and moves it to the minimum; the rest are
# refused.
FORGED = [("other-vm-name", 4, "ACK"), ("physical-cpu", OTHER_PCPU, "NACK"),
          ("vcpu-2^32+lcore", (1 << 32) + 4, "NACK"), ("vcpu-out-of-range", NVCPUS, "NACK")]
FINAL = {4: -1, 5: -3}              # vCPU -> final table index
# the requests whose vm_name the monitor ignored: the forged one and the
# CLI's query with --vm-name e2e-other
NAMES_IGNORED = 2
# what the monitor's log must say about the refusals (channel, reason)
REFUSALS = [
    (6, "refused CPU_POWER(vCPU 6): vCPU 6 out of range (VM has 6)"),
    (4, "core_type PHYSICAL is not accepted from a guest"),
    (4, "vCPU 4294967300 out of range (VM has 6)"),
    (4, "refused CPU_POWER(vCPU 6): vCPU 6 out of range (VM has 6)"),
]
ENV = "RTE_POWER_GUEST_CONNECT_TIMEOUT_MS=20000"
CLI = f"{ENV} /bin/guest_vm_power_mgr --timeout 5000"


def ops_commands():
    cmds = []
    for vcpu, op, _ in STEPS:
        cmds += [f"set_cpu_freq {vcpu} {op}", f"query_cpu_freq {vcpu}"]
    return "; ".join(cmds)


def guest_init():
    """The guest's part, run by /init after host.py's part."""
    final = "; ".join(f"query_cpu_freq {v}" for v in sorted(FINAL))
    uptime = "$(cut -d' ' -f1 /proc/uptime)s"
    return "\n".join([
        "echo GUEST monitor part",
        f'echo "GUEST-INFO monitor part from uptime {uptime}"',
        f'{CLI} --vm-name {VM} -e -c "{ops_commands()}"; echo "GUEST monitor ops rc=$?"',
        f'{CLI} -c "set_cpu_freq 6 up"; echo "GUEST monitor out-of-range rc=$?"',
        f"{ENV} /bin/power-guest forge 4 {OTHER_VM} {OTHER_PCPU} {NVCPUS}; "
        'echo "GUEST power-guest forge rc=$?"',
        f'{CLI} --vm-name {OTHER_VM} -c "query_cpu_freq 4"; echo "GUEST monitor other-name rc=$?"',
        f'{CLI} --vm-name {VM} -c "{final}"; echo "GUEST monitor after rc=$?"',
        f'echo "GUEST-INFO monitor part until uptime {uptime}"',
    ])


def monitor_commands():
    return [f"add_vm {VM}", f"add_vm {OTHER_VM}", f"set_query {VM} enable",
            f"add_channels {VM} {PORTS[0]}-{PORTS[-1]}"]


def table_of(tree, cpu=4):
    with open(os.path.join(tree, f"cpu{cpu}/cpufreq/scaling_available_frequencies")) as f:
        return [int(x) for x in f.read().split()]


def read(tree, cpu, name):
    with open(os.path.join(tree, f"cpu{cpu}/cpufreq/{name}")) as f:
        return f.read().strip()


def files_of(tree, cpu):
    """Every file of cpuN/cpufreq: name -> (content, mtime_ns)."""
    out = {}
    base = os.path.join(tree, f"cpu{cpu}/cpufreq")
    for dirpath, _, names in os.walk(base):
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, errors="replace") as f:
                out[os.path.relpath(p, base)] = (f.read(), os.stat(p).st_mtime_ns)
    return out


def snapshot(tree, out):
    with open(out, "w") as f:
        json.dump({str(c): files_of(tree, c) for c in range(NCPUS)}, f)
    return True


def wait_ready(log, pid, timeout):
    """The daemon logs "running; control socket ..." once its -e commands
    are done; fail at once if it exits first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(log, errors="replace") as f:
                if "running; control socket" in f.read():
                    return True
        except FileNotFoundError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print("monitor: FAILED: vm_power_mgr exited before it was ready")
            return False
        time.sleep(0.02)
    print(f"monitor: FAILED: vm_power_mgr not ready after {timeout} s")
    return False


def expected_console(table):
    f = lambda i: table[i]
    lines = ["GUEST monitor part"]
    for vcpu, op, idx in STEPS:
        lines += [f"lcore {vcpu} {op}: ACK", f"vcpu {vcpu}: {f(idx)} kHz"]
    lines += ["GUEST monitor ops rc=0",
              "lcore 6 up: NACK", "GUEST monitor out-of-range rc=1",
              "GUEST forge init lcore=4 ret=0"]
    lines += [f"GUEST forge lcore=4 {name} sent=0 {reply} resource={res}"
              for name, res, reply in FORGED]
    lines += ["GUEST forge exit lcore=4 ret=0", "GUEST power-guest forge rc=0",
              f"vcpu 4: {f(FINAL[4])} kHz", "GUEST monitor other-name rc=0"]
    lines += [f"vcpu {v}: {f(i)} kHz" for v, i in sorted(FINAL.items())]
    lines += ["GUEST monitor after rc=0"]
    return lines


def check_console(log, tree):
    with open(log, errors="replace") as f:
        lines = [l.rstrip("\r\n").replace("\r", "") for l in f]
    want = expected_console(table_of(tree))
    i = 0
    for w in want:
        while i < len(lines) and lines[i] != w:
            i += 1
        if i == len(lines):
            print(f"monitor: FAILED: missing (in order) from the guest console: {w!r}")
            return False
        i += 1
    print(f"monitor: the guest reported all {len(want)} expected lines "
          f"({len(STEPS)} requests, each checked by a query through the monitor)")
    return True


def ctl(cmd, words):
    r = subprocess.run(cmd + words.split(), capture_output=True, text=True, timeout=30)
    return r.returncode, (r.stdout + r.stderr).strip()


def expected_channels():
    """(packets, accepted, refused) per channel; every program that opens a
    port sends a CONNECT probe first (counted as a packet, nothing else)."""
    n4 = sum(1 for v, _, _ in STEPS if v == 4)
    n5 = sum(1 for v, _, _ in STEPS if v == 5)
    # port 4: ops run (probe, n4 requests + n4 queries), forge (probe + 4),
    # other-name query (probe + 1), final queries (probe + 1)
    acked = sum(1 for _, _, reply in FORGED if reply == "ACK")
    p4 = (1 + 2 * n4) + (1 + len(FORGED)) + 2 + 2
    a4 = 2 * n4 + acked + 1 + 1
    r4 = len(FORGED) - acked
    # port 5: ops run and final queries; port 6: one refused request
    return {4: (p4, a4, r4), 5: (1 + 2 * n5 + 2, 2 * n5 + 1, 0), 6: (2, 0, 1)}


def check_running(tree, snap_file, mlog, cmd):
    ok = True

    def fail(msg):
        nonlocal ok
        ok = False
        print(f"monitor: FAILED: {msg}")

    with open(snap_file) as f:
        snap = json.load(f)
    table = table_of(tree)
    # 1. the monitor's own view
    for vcpu, idx in FINAL.items():
        for cpu in PINS[vcpu]:
            rc, out = ctl(cmd, f"show_cpu_freq {cpu}")
            want = f"Core {cpu} frequency: {table[idx]}"
            if rc != 0 or out != want:
                fail(f"ctl show_cpu_freq {cpu}: rc={rc} {out!r}, want {want!r}")
            else:
                print(f"monitor: ctl show_cpu_freq {cpu}: {out}")
    rc, out = ctl(cmd, "show_channels")
    chans = {}
    counts = re.compile(rf"^{re.escape(VM)}\.(\d+): .*, packets (\d+), accepted (\d+), "
                        r"refused (\d+), replies dropped \d+, connects (\d+), resets 0,")
    for line in out.splitlines():
        m = counts.match(line)
        if m:
            chans[int(m[1])] = tuple(int(x) for x in m.groups()[1:])
    for ch, (p, a, r) in expected_channels().items():
        got = chans.get(ch)
        if got != (p, a, r, 1):
            fail(f"channel {ch}: (packets, accepted, refused, connects) = {got}, "
                 f"want {(p, a, r, 1)}")
    if ok:
        print(f"monitor: ctl show_channels: packets/accepted/refused as planned on {VM}.4-6")
    rc, out = ctl(cmd, f"show_vm {VM}")
    want = f"vm_name ignored in {NAMES_IGNORED} request(s) (last: '{OTHER_VM}')"
    if rc != 0 or want not in out:
        fail(f"ctl show_vm {VM}: rc={rc}, no {want!r} in {out!r}")
    else:
        print(f"monitor: ctl show_vm: {want}")
    # 2. the sysfs tree: the pinned CPUs hold exactly the final frequencies,
    # through scaling_setspeed (acpi-cpufreq, userspace governor); the
    # limits are untouched
    for vcpu, idx in FINAL.items():
        for cpu in PINS[vcpu]:
            got = {n: read(tree, cpu, n) for n in
                   ("scaling_setspeed", "scaling_governor", "scaling_min_freq", "scaling_max_freq")}
            want = {"scaling_setspeed": str(table[idx]), "scaling_governor": "userspace",
                    "scaling_min_freq": snap[str(cpu)]["scaling_min_freq"][0].strip(),
                    "scaling_max_freq": snap[str(cpu)]["scaling_max_freq"][0].strip()}
            if got != want:
                fail(f"cpu{cpu}: {got}, want {want}")
            else:
                print(f"monitor: sysfs cpu{cpu}: setspeed {got['scaling_setspeed']} "
                      f"(table[{idx}]), governor userspace, limits unchanged")
    # 3. nothing written for the refused requests nor anywhere else: the
    # other VM's CPU and the CPUs of the host.py ports are byte for byte
    # as before, not even rewritten (mtime)
    for cpu in UNTOUCHED:
        now = files_of(tree, cpu)
        if now != {k: tuple(v) for k, v in snap[str(cpu)].items()}:
            changed = sorted(k for k in set(now) | set(snap[str(cpu)])
                             if now.get(k) != tuple(snap[str(cpu)].get(k, ())))
            fail(f"cpu{cpu} was written: {changed}")
    if ok:
        print(f"monitor: sysfs cpu{','.join(map(str, UNTOUCHED))} (incl. {OTHER_VM}'s "
              f"cpu{OTHER_PCPU}): not written (contents and mtimes)")
    # 4. every refusal logged with VM, channel and reason
    with open(mlog, errors="replace") as f:
        log = f.read().splitlines()
    for ch, reason in REFUSALS:
        if not any(f"VM '{VM}' channel {ch}: " in l and reason in l for l in log):
            fail(f"no log line for channel {ch}: {reason!r}")
    if ok:
        print(f"monitor: {len(REFUSALS)} refusals logged with VM, channel and reason")
    return ok


def check_stopped(tree, snap_file):
    with open(snap_file) as f:
        snap = json.load(f)
    ok = True
    for cpu in range(NCPUS):
        before = snap[str(cpu)]["scaling_governor"][0].strip()
        now = read(tree, cpu, "scaling_governor")
        if now != before:
            print(f"monitor: FAILED: cpu{cpu} governor {now!r} after SIGTERM, was {before!r}")
            ok = False
    if ok:
        print(f"monitor: after SIGTERM every governor is back ("
              f"{read(tree, 4, 'scaling_governor')} on cpu4-6)")
    return ok


def main():
    a = sys.argv[1:]
    if not a:
        print(__doc__)
        return 2
    cmd, args = a[0], a[1:]
    if cmd == "monitor-args":
        for c in monitor_commands():
            print("-e")
            print(c)
        return 0
    if cmd == "ports":
        print(" ".join(map(str, PORTS)))
        return 0
    if cmd == "init":
        print(guest_init())
        return 0
    if cmd == "snapshot":
        return 0 if snapshot(*args) else 1
    if cmd == "wait-ready":
        timeout = float(args[3]) if len(args) > 3 and args[2] == "--timeout" else 20.0
        return 0 if wait_ready(args[0], int(args[1]), timeout) else 1
    if cmd == "check-console":
        return 0 if check_console(*args) else 1
    if cmd == "check-running":
        sep = args.index("--")
        return 0 if check_running(*args[:sep], args[sep + 1:]) else 1
    if cmd == "check-stopped":
        return 0 if check_stopped(*args) else 1
    print(f"monitor-e2e.py: unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
