//! Guest requests through the real monitor: stand-in QEMU sockets, the
//! libvirt test driver, a generated sysfs tree. Every reply, every refusal,
//! framing, hang-up and re-attach.

mod common;

use std::time::Duration;

use common::{Env, T};
use rte_power::wire::{
    ChannelPacket, Response, Step, VmName, CMD_NACK, PACKET_SIZE, POLICY_TIME, QUERY_CAPS,
    QUERY_CAPS_LIST, QUERY_FREQ, QUERY_FREQ_LIST,
};
use testkit::qemu::{Guest, Qemu};

const QUIET: Duration = Duration::from_millis(150);

fn req(vcpu: u64, unit: Step) -> ChannelPacket {
    ChannelPacket::cpu_power(vcpu, unit)
}

fn query(cmd: u32, vcpu: u64) -> ChannelPacket {
    let mut p = ChannelPacket::ZEROED;
    p.command = cmd;
    p.resource_id = vcpu;
    p
}

#[track_caller]
fn expect_ack(g: &mut Guest, sent: &ChannelPacket) {
    let r = g.recv_reply(T).expect("reply");
    assert_eq!(r, sent.reply(Response::Ack), "expected the ACK echo");
}

/// A refused query: NACK in the size of the reply the guest waits for.
#[track_caller]
fn expect_query_nack(g: &mut Guest, cmd: u32) {
    let size = if cmd == QUERY_FREQ || cmd == QUERY_FREQ_LIST {
        88
    } else {
        184
    };
    let r = g.recv_raw(size, T).expect("reply");
    assert_eq!(
        &r[12..16],
        &CMD_NACK.to_le_bytes(),
        "expected a {size}-byte NACK"
    );
    assert!(r[48..].iter().all(|b| *b == 0), "body zero");
    assert!(
        g.silent_for(Duration::from_millis(20)),
        "nothing more than {size} bytes"
    );
}

#[track_caller]
fn expect_nack(g: &mut Guest) -> ChannelPacket {
    let r = g.recv_reply(T).expect("reply");
    assert_eq!(r.command, CMD_NACK, "expected NACK, got {r:?}");
    r
}

#[test]
fn cpu_power_scales_the_pinned_pcpu_and_acks() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    let (_q, mut g) = env.attach("vm-a", 1);
    let t = env.table(1);
    let min = *t.last().expect("table");

    let p = req(1, Step::Min);
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
    assert_eq!(env.setspeed(1), min);
    assert_eq!(env.attr(1, "scaling_governor"), "userspace");

    let p = req(1, Step::Up);
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
    let one_up = t[t.len() - 2];
    assert_eq!(env.setspeed(1), one_up);
    assert_eq!(
        env.ok("show_cpu_freq 1"),
        format!("Core 1 frequency: {one_up}")
    );

    let p = req(1, Step::Down);
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
    assert_eq!(env.setspeed(1), min);
    // already at the bottom: unchanged is still ACK (DPDK 20.02+)
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);

    let p = req(1, Step::Max);
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
    let max = env.setspeed(1);
    assert!(max >= t[1], "max {max}");
    let p = req(1, Step::EnableTurbo);
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
    let p = req(1, Step::Max);
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
    assert_eq!(env.setspeed(1), t[0], "turbo entry");
    let p = req(1, Step::DisableTurbo);
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
    assert_eq!(env.setspeed(1), t[1], "left the turbo entry");
    // the other CPUs of the VM were never touched
    assert_eq!(env.attr(0, "scaling_governor"), "schedutil");
    assert!(env
        .ok("show_vm vm-a")
        .contains("Requests: 8 accepted, 0 refused"));
}

#[test]
fn a_vcpu_pinned_to_two_pcpus_scales_both() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    let (_q, mut g) = env.attach("vm-a", 2);
    let p = req(2, Step::Min);
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
    let min = *env.table(2).last().expect("table");
    assert_eq!(env.setspeed(2), min);
    assert_eq!(env.setspeed(3), min);
    assert_eq!(env.attr(4, "scaling_governor"), "schedutil");
}

#[test]
fn a_foreign_vm_name_is_ignored_and_the_request_is_the_channels_vm() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    let (_q, mut g) = env.attach("vm-a", 0);
    let before = env.snapshot(&[1, 2, 3, 4, 5, 6, 7]);
    // a vm_name that is not the channel's VM is ignored, never refused:
    // the request is vm-a's, answered with vm-a's name, counted, logged
    // at debug level (once per name, sanitised)
    for _ in 0..2 {
        let mut p = req(0, Step::Down);
        p.vm_name = VmName::new("vm-b").expect("name");
        g.send(&p).expect("send");
        let mut own = p;
        own.vm_name = VmName::new("vm-a").expect("name");
        expect_ack(&mut g, &own);
    }
    env.assert_log("Debug: VM 'vm-a' channel 0: vm_name 'vm-b' in a request ignored");
    let once = env
        .logs
        .lock()
        .expect("logs")
        .iter()
        .filter(|l| l.contains("vm_name 'vm-b'"))
        .count();
    assert_eq!(once, 1, "one line per name, not per request");
    let show = env.ok("show_vm vm-a");
    assert!(
        show.contains("vm_name ignored in 2 request(s) (last: 'vm-b')"),
        "{show}"
    );

    assert_ne!(
        env.attr(0, "scaling_governor"),
        "schedutil",
        "vm-a's vCPU 0 scaled"
    );
    assert_eq!(env.snapshot(&[1, 2, 3, 4, 5, 6, 7]), before, "nothing else");
    assert!(env
        .ok("show_vm vm-a")
        .contains("Requests: 2 accepted, 0 refused"));
}

#[test]
fn refusals_are_nacked_logged_and_write_nothing() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    env.ok("add_vm vm-free");
    let (_q, mut g) = env.attach("vm-a", 0);
    let before = env.snapshot(&[0, 1, 2, 3, 4, 5, 6, 7]);

    // vCPU index out of range (vm-a has 3), also huge values
    for vcpu in [3u64, 200, u64::from(u32::MAX), u64::MAX] {
        let p = req(vcpu, Step::Down);
        g.send(&p).expect("send");
        assert_eq!(expect_nack(&mut g), p.reply(Response::Nack));
    }
    env.assert_log(
        "VM 'vm-a' channel 0: refused CPU_POWER(vCPU 3): vCPU 3 out of range (VM has 3)",
    );

    // core_type PHYSICAL
    let mut p = req(0, Step::Down);
    p.core_type = true;
    g.send(&p).expect("send");
    expect_nack(&mut g);
    env.assert_log("core_type PHYSICAL is not accepted from a guest");

    // unknown command and unknown unit: header echoed, body zero
    let mut raw = req(0, Step::Down).encode();
    raw[12..16].copy_from_slice(&99u32.to_le_bytes());
    raw[445] = 0x5a; // padding garbage that must not be reflected
    g.send_bytes(&raw).expect("send");
    let r = g.recv_raw(PACKET_SIZE, T).expect("reply");
    assert_eq!(&r[12..16], &CMD_NACK.to_le_bytes());
    assert!(r[48..].iter().all(|b| *b == 0), "body must be zero");
    env.assert_log("refused command 99: malformed packet");
    let mut raw = req(0, Step::Down).encode();
    raw[8..12].copy_from_slice(&77u32.to_le_bytes());
    g.send_bytes(&raw).expect("send");
    expect_nack(&mut g);
    env.assert_log("unknown scale unit 77");

    // nothing reached any CPU, and the channel still works
    assert_eq!(env.snapshot(&[0, 1, 2, 3, 4, 5, 6, 7]), before);
    assert!(env.ok("show_vm vm-a").contains("0 accepted, 7 refused"));
    let p = req(0, Step::Down);
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);

    // an unpinned vCPU could run anywhere: refused
    let (_q2, mut g2) = env.attach("vm-free", 0);
    let p = req(0, Step::Down);
    g2.send(&p).expect("send");
    expect_nack(&mut g2);
    env.assert_log("vCPU 0 is not pinned");
    assert!(env
        .ok("show_vm vm-free")
        .contains("not pinned: requests refused"));
}

#[test]
fn two_vms_cannot_reach_each_others_cpus() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    env.ok("add_vm vm-b");
    env.ok("set_query vm-a enable");
    let (_qa, mut a) = env.attach("vm-a", 0);
    let (_qb, mut b) = env.attach("vm-b", 0);
    let a_cpus = [0, 1, 2, 3];
    let before = env.snapshot(&a_cpus);

    // vm-b aims at vm-a's CPUs every way DPDK's sample allowed
    for vcpu in [3u64, 4, 127, 200, 0x7fff_ffff, 0xffff_ffff, 1 << 32] {
        let p = req(vcpu, Step::Min);
        b.send(&p).expect("send");
        if vcpu == 1 << 32 {
            // not truncated to vCPU 0
            expect_nack(&mut b);
        } else {
            expect_nack(&mut b);
        }
    }
    for cpu in 0..4u64 {
        let mut p = req(cpu, Step::Min);
        p.core_type = true;
        b.send(&p).expect("send");
        expect_nack(&mut b);
    }
    for cmd in [QUERY_FREQ_LIST, QUERY_CAPS_LIST] {
        let mut p = query(cmd, 0);
        p.vm_name = VmName::new("vm-a").expect("name");
        b.send(&p).expect("send");
        expect_query_nack(&mut b, cmd);
    }
    // naming vm-a changes nothing: the request is vm-b's own vCPU 0
    let mut p = req(0, Step::Min);
    p.vm_name = VmName::new("vm-a").expect("name");
    b.send(&p).expect("send");
    let mut own = p;
    own.vm_name = VmName::new("vm-b").expect("name");
    expect_ack(&mut b, &own);
    assert_eq!(env.attr(4, "scaling_governor"), "userspace");
    assert_eq!(env.snapshot(&a_cpus), before, "vm-a's CPUs were written");

    // vm-b's own vCPU 0 is CPU 4; vm-a's vCPU 0 is CPU 0
    let p = req(0, Step::Min);
    b.send(&p).expect("send");
    expect_ack(&mut b, &p);
    assert_eq!(env.attr(4, "scaling_governor"), "userspace");
    assert_eq!(env.snapshot(&a_cpus), before);
    a.send(&p).expect("send");
    expect_ack(&mut a, &p);
    assert_eq!(env.attr(0, "scaling_governor"), "userspace");
    assert_eq!(env.attr(5, "scaling_governor"), "schedutil");
}

#[test]
fn queries_need_permission_and_carry_no_stale_bytes() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    let (_q, mut g) = env.attach("vm-a", 0);
    for cmd in [QUERY_FREQ_LIST, QUERY_FREQ, QUERY_CAPS_LIST, QUERY_CAPS] {
        g.send(&query(cmd, 0)).expect("send");
        expect_query_nack(&mut g, cmd);
    }
    env.assert_log("queries are not enabled for this VM (set_query)");
    env.ok("set_query vm-a enable");
    assert!(env.ok("show_vm vm-a").contains("Query: enabled"));

    let p = req(1, Step::Min);
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
    let min = *env.table(1).last().expect("table");

    let mut q = query(QUERY_FREQ_LIST, 0);
    q.vm_name = VmName::new("vm-a").expect("name"); // its own name is fine
    g.send(&q).expect("send");
    let raw = g.recv_raw(88, T).expect("88 bytes");
    let f = rte_power::wire::FreqListPacket::decode(&raw).expect("freq list");
    assert_eq!(f.num_vcpu, 3);
    assert_eq!(f.name().map(|n| n.to_string()).as_deref(), Some("vm-a"));
    assert_eq!(f.freq_list[1], min);
    assert_eq!(f.freq_list[0], env.setspeed(0));
    assert_eq!(&f.freq_list[3..], &[0; 5], "unused slots are zero");
    assert!(raw[81..].iter().all(|b| *b == 0), "padding is zero");

    g.send(&query(QUERY_FREQ, 1)).expect("send");
    let f = g.recv_freq(T).expect("freq");
    assert_eq!(f.freq_list, [0, min, 0, 0, 0, 0, 0, 0]);
    assert_eq!(f.resource_id, 1);
    g.send(&query(QUERY_FREQ, 3)).expect("send");
    expect_query_nack(&mut g, QUERY_FREQ);

    g.send(&query(QUERY_CAPS_LIST, 0)).expect("send");
    let raw = g.recv_raw(184, T).expect("184 bytes");
    let c = rte_power::wire::CapsListPacket::decode(&raw).expect("caps");
    assert_eq!(c.num_vcpu, 3);
    assert_eq!(&c.turbo[..3], &[1, 1, 1], "acpi tree has a turbo entry");
    assert_eq!(&c.turbo[3..], &[0; 5]);
    assert_eq!(c.priority, [0; 8]);
    assert!(raw[177..].iter().all(|b| *b == 0));
    g.send(&query(QUERY_CAPS, 2)).expect("send");
    let c = g.recv_caps(T).expect("caps");
    assert_eq!(c.turbo, [0, 0, 1, 0, 0, 0, 0, 0]);

    env.ok("set_query vm-a disable");
    g.send(&query(QUERY_FREQ_LIST, 0)).expect("send");
    expect_query_nack(&mut g, QUERY_FREQ_LIST);
}

#[test]
fn connect_probe_is_silent_even_with_garbage() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    let (_q, mut g) = env.attach("vm-a", 0);
    g.send(&ChannelPacket::connect()).expect("send");
    // DPDK's guests leave the rest of the probe uninitialised
    let mut raw = ChannelPacket::connect().encode();
    for (i, b) in raw.iter_mut().enumerate().skip(16) {
        *b = (i * 7) as u8 | 0x80;
    }
    g.send_bytes(&raw).expect("send");
    assert!(g.silent_for(QUIET), "CONNECT must not be answered");
    let p = req(0, Step::Down);
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
}

#[test]
fn policies_are_kept_per_vm_and_removed() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    let (_q, mut g) = env.attach("vm-a", 0);
    let mut p = ChannelPacket::ZEROED;
    p.command = rte_power::wire::PKT_POLICY;
    p.policy_to_use = POLICY_TIME;
    p.workload = rte_power::wire::WL_LOW;
    p.num_vcpu = 2;
    p.vcpu_to_control[..2].copy_from_slice(&[0, 2]);
    p.timer_policy.busy_hours[0] = 9;
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
    let show = env.ok("show_vm vm-a");
    assert!(
        show.contains("Policy: TIME, vCPUs [0,2], busy hours [9], quiet hours []"),
        "{show}"
    );
    assert!(env
        .ok("list_vms")
        .contains("vm-a: ACTIVE, 3 vCPUs, channels 1/1 connected, query disabled, policy TIME"));

    // a policy naming another VM's vCPUs is refused; one naming another
    // VM is this VM's policy all the same
    let mut bad = p;
    bad.vcpu_to_control[1] = 5;
    g.send(&bad).expect("send");
    expect_nack(&mut g);
    let mut other = p;
    other.vm_name = VmName::new("vm-b").expect("name");
    other.vcpu_to_control[1] = 1;
    g.send(&other).expect("send");
    expect_ack(&mut g, &p_with(&other, "vm-a"));
    assert!(env.ok("show_vm vm-a").contains("vCPUs [0,1]"));

    let mut rm = ChannelPacket::ZEROED;
    rm.command = rte_power::wire::PKT_POLICY_REMOVE;
    g.send(&rm).expect("send");
    assert!(g.silent_for(QUIET), "REMOVE is never answered");
    assert!(env.ok("show_vm vm-a").contains("Policy: none"));
}

#[test]
fn partial_packets_one_byte_at_a_time() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    let (_q, mut g) = env.attach("vm-a", 0);
    let p1 = req(0, Step::Min);
    let p2 = req(1, Step::Min);
    let mut bytes = p1.encode().to_vec();
    bytes.extend_from_slice(&p2.encode());
    for (i, b) in bytes.iter().enumerate() {
        g.send_bytes(&[*b]).expect("byte");
        if i % 97 == 0 {
            // let the monitor see the stream in many small reads
            std::thread::yield_now();
        }
    }
    expect_ack(&mut g, &p1);
    expect_ack(&mut g, &p2);
    assert!(env
        .ok("show_channels")
        .contains("packets 2, accepted 2, refused 0"));
}

#[test]
fn a_thousand_packets_in_one_write() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    let (_q, mut g) = env.attach("vm-a", 0);
    let mut sent = Vec::new();
    let mut bytes = Vec::new();
    for i in 0..1000u64 {
        let mut p = req(i % 3, if i % 2 == 0 { Step::Down } else { Step::Up });
        p.vfid[0] = i; // a tag the echo must carry back
        bytes.extend_from_slice(&p.encode());
        sent.push(p);
    }
    let mut w = g.stream().try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        w.write_all(&bytes).expect("one write")
    });
    for p in &sent {
        expect_ack(&mut g, p);
    }
    writer.join().expect("writer");
    assert!(env.ok("show_vm vm-a").contains("1000 accepted, 0 refused"));
}

#[test]
fn disabled_channels_are_read_and_nacked() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    let (_q0, mut g0) = env.attach("vm-a", 0);
    let (_q1, mut g1) = env.attach("vm-a", 1);
    assert_eq!(
        env.ok("set_channel_status vm-a 0 disabled"),
        "Updated status of 1 channels for VM 'vm-a'"
    );
    assert!(env.ok("show_vm vm-a").contains("vm-a.0, status = DISABLED"));
    let before = env.snapshot(&[0]);
    let p = req(0, Step::Min);
    g0.send(&p).expect("send");
    assert_eq!(expect_nack(&mut g0), p.reply(Response::Nack));
    env.assert_log("VM 'vm-a' channel 0: refused CPU_POWER(vCPU 0): channel disabled");
    assert_eq!(env.snapshot(&[0]), before);
    // the other channel is unaffected
    g1.send(&p).expect("send");
    expect_ack(&mut g1, &p);
    env.ok("set_channel_status vm-a all enabled");
    g0.send(&p).expect("send");
    expect_ack(&mut g0, &p);
    assert!(env
        .err("set_channel_status vm-a 7 disabled")
        .contains("no channel 7"));
    assert!(env
        .err("set_channel_status vm-a 0 sideways")
        .contains("bad status"));
}

#[test]
fn hang_up_then_reattach_when_the_socket_returns() {
    let env = Env::new();
    env.ok("add_vm vm-b");
    let (q, mut g) = env.attach("vm-b", 0);
    let p = req(0, Step::Min);
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
    // half a packet, then the VM stops: the partial packet is dropped
    g.send_bytes(&req(0, Step::Max).encode()[..100])
        .expect("half");
    drop(g);
    q.shut_down();
    let deadline = std::time::Instant::now() + T;
    while !env.ok("show_vm vm-b").contains("status = DISCONNECTED") {
        assert!(std::time::Instant::now() < deadline, "no hang-up seen");
        std::thread::sleep(Duration::from_millis(5));
    }
    env.assert_log("VM 'vm-b' channel 0: QEMU closed the connection");

    // the VM starts again: QEMU binds the socket; the guest already wrote
    let mut q = Qemu::bind(&env.sim.sockets, "vm-b", 0).expect("rebind");
    let early = req(0, Step::Up);
    q.write_early(&early.encode());
    let mut g = q.accept(T).expect("monitor re-attaches");
    expect_ack(&mut g, &early);
    let min = *env.table(4).last().expect("table");
    assert_eq!(env.setspeed(4), env.table(4)[env.table(4).len() - 2]);
    assert_ne!(env.setspeed(4), min);
    assert!(env
        .ok("show_vm vm-b")
        .contains("vm-b.0, status = CONNECTED"));
    assert!(env.ok("show_channels").contains("connects 2"));
}

#[test]
fn a_socket_that_appears_later_is_attached() {
    let env = Env::new();
    env.ok("add_vm vm-d");
    let out = env.ok("add_channels vm-d 0");
    assert!(out.contains("[0]: waiting for"), "{out}");
    assert!(env
        .ok("show_vm vm-d")
        .contains("status = DISCONNECTED (socket not present)"));
    let mut q = Qemu::bind(&env.sim.sockets, "vm-d", 0).expect("bind");
    let mut g = q.accept(T).expect("attached through inotify");
    let p = req(0, Step::Min);
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
    assert_eq!(env.attr(7, "scaling_governor"), "userspace");
}

#[test]
fn quit_restores_every_touched_cpu() {
    let mut env = Env::new();
    env.ok("add_vm vm-a");
    let (_q, mut g) = env.attach("vm-a", 0);
    let orig = env.snapshot(&[0, 2, 3]);
    for v in [0, 2] {
        let p = req(v, Step::Min);
        g.send(&p).expect("send");
        expect_ack(&mut g, &p);
    }
    env.ok("set_cpu_freq 6 min");
    assert_eq!(env.attr(6, "scaling_governor"), "userspace");
    env.quit();
    for c in [0, 2, 3, 6] {
        assert_eq!(env.attr(c, "scaling_governor"), "schedutil", "cpu{c}");
    }
    // governor and limits are restored; setspeed only matters (and is only
    // put back) when the original governor was userspace
    let strip = |v: Vec<(String, Vec<u8>, std::time::SystemTime)>| {
        v.into_iter()
            .filter(|(n, _, _)| !n.ends_with("setspeed"))
            .map(|(n, b, _)| (n, b))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(env.snapshot(&[0, 2, 3])), strip(orig));
    assert!(g.closed_within(T), "channels closed at shutdown");
}

#[test]
fn request_follows_live_repinning() {
    let env = Env::new();
    env.ok("add_vm vm-b");
    let (_q, mut g) = env.attach("vm-b", 1);
    let out = env.ok("set_pcpu vm-b 1 3");
    assert!(
        out.contains("Pinned vCPU(1) of VM 'vm-b' to pCPU(s) 3 (mask 0x8), live only"),
        "{out}"
    );
    assert!(env
        .ok("show_vm vm-b")
        .contains("[1]: Physical CPU(s) 3, mask 0x8"));
    let p = req(1, Step::Min);
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
    assert_eq!(env.attr(3, "scaling_governor"), "userspace");
    assert_eq!(env.attr(5, "scaling_governor"), "schedutil");
    let out = env.ok("set_pcpu_mask vm-b 1 0x60");
    assert!(out.contains("pCPU(s) 5-6 (mask 0x60)"), "{out}");
    g.send(&p).expect("send");
    expect_ack(&mut g, &p);
    assert_eq!(env.attr(5, "scaling_governor"), "userspace");
    assert_eq!(env.attr(6, "scaling_governor"), "userspace");
}

/// `p` as the monitor answers it on a channel of `vm`.
fn p_with(p: &ChannelPacket, vm: &str) -> ChannelPacket {
    let mut own = *p;
    own.vm_name = VmName::new(vm).expect("name");
    own
}
