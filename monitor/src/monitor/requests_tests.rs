//! Unit tests of the request rules on plain bytes: no socket, no sysfs.

use std::collections::HashMap;

use rte_power::wire::{
    ChannelPacket, Step, CAPS_LIST_SIZE, CMD_ACK, CMD_NACK, CPU_POWER, FREQ_LIST_SIZE, POLICY_TIME,
    QUERY_CAPS, QUERY_CAPS_LIST, QUERY_FREQ, QUERY_FREQ_LIST, WL_LOW,
};

use super::*;

#[path = "requests_tests_names.rs"]
mod names;

/// A host whose facts are tables; a CPU missing from a table fails.
#[derive(Default)]
struct FakeHost {
    governors: HashMap<u32, Governor>,
    freq: HashMap<u32, u32>,
    caps: HashMap<u32, Capabilities>,
    /// Every CPU a fact was read for.
    asked: Vec<u32>,
}

impl FakeHost {
    fn new() -> Self {
        let mut h = Self::default();
        for cpu in 0..16 {
            h.freq.insert(cpu, 1_000_000 + cpu * 100_000);
            h.caps.insert(
                cpu,
                Capabilities {
                    turbo: cpu % 2 == 0,
                    priority: cpu == 3,
                },
            );
        }
        h
    }
}

fn missing(cpu: u32) -> PowerError {
    PowerError::InvalidArgument(format!("cpu {cpu} does not exist"))
}

impl HostFacts for FakeHost {
    fn governor(&self, cpu: u32) -> Governor {
        self.governors.get(&cpu).copied().unwrap_or_default()
    }
    fn frequency(&mut self, cpu: u32) -> Result<u32, PowerError> {
        self.asked.push(cpu);
        self.freq.get(&cpu).copied().ok_or_else(|| missing(cpu))
    }
    fn capabilities(&mut self, cpu: u32) -> Result<Capabilities, PowerError> {
        self.asked.push(cpu);
        self.caps.get(&cpu).copied().ok_or_else(|| missing(cpu))
    }
}

/// vm-a as in the tests' node.xml: vCPU 0 on pCPU 0, 1 on 1, 2 on 2-3, on
/// an 8-CPU host.
fn pins() -> Vec<CpuSet> {
    vec![
        CpuSet::single(0),
        CpuSet::single(1),
        CpuSet::from_iter_u32([2, 3]),
    ]
}

fn view(vcpus: &[CpuSet]) -> VmView<'_> {
    VmView {
        name: "vm-a",
        wire_name: VmName::new("vm-a").ok(),
        vcpus,
        host_cpus: 8,
        allow_query: false,
        has_policy: false,
        policy: None,
        channel_enabled: true,
        over_rate: false,
        rate_limit: 0,
        contested: &[],
    }
}

fn run(vm: &VmView<'_>, host: &mut FakeHost, p: &ChannelPacket) -> Handled {
    handle(vm, host, &p.encode())
}

fn req(vcpu: u64, unit: Step) -> ChannelPacket {
    ChannelPacket::cpu_power(vcpu, unit)
}

fn query(cmd: u32, vcpu: u64) -> ChannelPacket {
    let mut p = ChannelPacket::ZEROED;
    p.command = cmd;
    p.resource_id = vcpu;
    p
}

fn policy_pkt(vcpus: &[u8]) -> ChannelPacket {
    let mut p = ChannelPacket::ZEROED;
    p.command = wire::PKT_POLICY;
    p.policy_to_use = POLICY_TIME;
    p.workload = WL_LOW;
    p.num_vcpu = u8::try_from(vcpus.len()).expect("count");
    p.vcpu_to_control[..vcpus.len()].copy_from_slice(vcpus);
    p.timer_policy.busy_hours[0] = 9;
    p
}

/// The refusal and its reply bytes, or a panic naming what came instead.
#[track_caller]
fn refused(h: Handled) -> (RequestError, Option<Vec<u8>>) {
    match h.verdict {
        Verdict::Refused { error, reply } => (error, reply.map(|r| r.as_bytes().to_vec())),
        other => panic!("{} should be refused, got {other:?}", h.what),
    }
}

/// The acceptance: action, reply bytes, note.
#[track_caller]
fn accepted(h: Handled) -> (Option<Action>, Option<Vec<u8>>, Option<Note>) {
    match h.verdict {
        Verdict::Accepted {
            action,
            reply,
            note,
        } => (action, reply.map(|r| r.as_bytes().to_vec()), note),
        other => panic!("{} should be accepted, got {other:?}", h.what),
    }
}

/// A refusal answered with the 464-byte NACK echo of `p`.
#[track_caller]
fn nacked(h: Handled, p: &ChannelPacket) -> RequestError {
    let (e, reply) = refused(h);
    assert_eq!(
        reply.as_deref(),
        Some(&p.reply(Response::Nack).encode()[..]),
        "NACK echo"
    );
    e
}

/// A refused query: NACK in the size of its reply, header echoed, body zero.
#[track_caller]
fn query_nacked(h: Handled, p: &ChannelPacket) -> RequestError {
    let size = match p.command {
        QUERY_FREQ | QUERY_FREQ_LIST => FREQ_LIST_SIZE,
        _ => CAPS_LIST_SIZE,
    };
    let (e, reply) = refused(h);
    let r = reply.expect("a query is always answered");
    assert_eq!(r.len(), size);
    assert_eq!(&r[0..8], &p.resource_id.to_le_bytes());
    assert_eq!(&r[8..12], &p.unit.to_le_bytes());
    assert_eq!(&r[12..16], &CMD_NACK.to_le_bytes());
    assert_eq!(&r[16..48], &p.vm_name.to_wire());
    assert!(r[48..].iter().all(|b| *b == 0), "body zero");
    e
}

#[test]
fn cpu_power_every_unit_scales_the_vcpus_pins_and_acks() {
    let pins = pins();
    let vm = view(&pins);
    let mut host = FakeHost::new();
    for unit in Step::ALL.iter().copied() {
        for vcpu in 0..3u64 {
            let p = req(vcpu, unit);
            let (action, reply, note) = accepted(run(&vm, &mut host, &p));
            assert_eq!(
                action,
                Some(Action::Scale {
                    cpus: pins[vcpu as usize].clone(),
                    op: unit,
                })
            );
            assert_eq!(reply.as_deref(), Some(&p.reply(Response::Ack).encode()[..]));
            assert_eq!(note, None);
        }
    }
    assert!(host.asked.is_empty(), "CPU_POWER reads no host fact");
}

#[test]
fn an_echo_from_the_bytes_is_the_encoded_reply() {
    // replies carry no uninitialised byte: the ACK made from the request's
    // bytes is exactly the encoded echo, whatever the guest put in the
    // padding and after the name's NUL
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut checked = 0;
    for i in 0..2_000u32 {
        let mut b = req(u64::from(i % 3), Step::Up).encode();
        for byte in b.iter_mut() {
            if next() % 4 == 0 {
                *byte = next() as u8;
            }
        }
        // a name with garbage after its NUL, valid fields where the
        // random bytes would fail decoding most of the time
        b[8..16].copy_from_slice(&req(0, Step::Up).encode()[8..16]);
        b[16..20].copy_from_slice(b"vm-a");
        b[20] = 0;
        b[152] = (next() % 9) as u8;
        for h in 0..72 {
            let at = wire::layout::BUSY_HOURS + 4 * h;
            b[at..at + 4].copy_from_slice(&((next() % 24) as i32).to_le_bytes());
        }
        b[128..132].copy_from_slice(&((next() % 11) as i32).to_le_bytes());
        b[444] = (next() % 2) as u8;
        b[456] = (next() % 2) as u8;
        b[448..452].copy_from_slice(&0u32.to_le_bytes());
        b[452..456].copy_from_slice(&0u32.to_le_bytes());
        let Ok(p) = ChannelPacket::decode(&b) else {
            continue;
        };
        for r in [Response::Ack, Response::Nack] {
            let want = p.reply(r).encode();
            assert_eq!(Reply::echo_bytes(&b, &p, r).as_bytes(), &want[..], "{i}");
            assert_eq!(Reply::echo(&p, r).as_bytes(), &want[..], "{i}");
        }
        checked += 1;
    }
    assert!(checked > 1_000, "{checked} packets decoded");
}

#[test]
fn cpu_power_ack_echoes_the_request_with_command_ack() {
    let pins = pins();
    let mut p = req(2, Step::Down);
    p.vfid[0] = 0xdead_beef; // a tag a load generator puts there
    let (_, reply, _) = accepted(run(&view(&pins), &mut FakeHost::new(), &p));
    let reply = reply.expect("ACK");
    let back = ChannelPacket::decode_reply(&reply).expect("valid reply");
    assert_eq!(back.command, CMD_ACK);
    assert_eq!(back.vfid[0], 0xdead_beef);
    assert_eq!(back.resource_id, 2);
}

#[test]
fn cpu_power_vcpu_out_of_range_is_refused_never_truncated() {
    let pins = pins();
    let vm = view(&pins);
    for vcpu in [
        3u64,
        8,
        200,
        u64::from(u32::MAX),
        1 << 32,
        (1 << 32) + 1,
        u64::MAX,
    ] {
        let p = req(vcpu, Step::Min);
        let e = nacked(run(&vm, &mut FakeHost::new(), &p), &p);
        assert!(
            matches!(e, RequestError::VcpuOutOfRange { vcpu: v, count: 3 } if v == vcpu),
            "{e}"
        );
    }
    let p = req(3, Step::Min);
    let (e, _) = refused(run(&vm, &mut FakeHost::new(), &p));
    assert_eq!(e.to_string(), "vCPU 3 out of range (VM has 3)");
}

#[test]
fn cpu_power_on_an_unpinned_vcpu_or_one_without_cpu_is_refused() {
    let pins = vec![
        CpuSet::from_iter_u32(0..8),
        CpuSet::new(),
        CpuSet::from_iter_u32(0..7),
    ];
    let vm = view(&pins);
    let p = req(0, Step::Down);
    let e = nacked(run(&vm, &mut FakeHost::new(), &p), &p);
    assert_eq!(
        e.to_string(),
        "vCPU 0 is not pinned (may run on every host CPU)"
    );
    let p = req(1, Step::Down);
    let e = nacked(run(&vm, &mut FakeHost::new(), &p), &p);
    assert_eq!(e.to_string(), "vCPU 1 has no host CPU");
    // seven of eight CPUs counts as pinned (today's rule)
    let (action, _, _) = accepted(run(&vm, &mut FakeHost::new(), &req(2, Step::Down)));
    assert!(matches!(action, Some(Action::Scale { cpus, .. }) if cpus.len() == 7));
    // a one-CPU host has nothing else to run on
    let one = vec![CpuSet::single(0)];
    let mut vm1 = view(&one);
    vm1.host_cpus = 1;
    accepted(run(&vm1, &mut FakeHost::new(), &req(0, Step::Down)));
}

#[test]
fn no_resource_id_reaches_a_cpu_outside_the_vms_pins() {
    let pins = pins();
    let vm = view(&pins);
    let own = CpuSet::from_iter_u32(pins.iter().flat_map(CpuSet::iter));
    let ids = (0..300u64).chain([1 << 32, 1 << 33, u64::MAX - 1, u64::MAX]);
    for id in ids {
        for physical in [false, true] {
            for unit in Step::ALL.iter().copied() {
                let mut p = req(id, unit);
                p.core_type = physical;
                if let Verdict::Accepted {
                    action: Some(Action::Scale { cpus, .. }),
                    ..
                } = run(&vm, &mut FakeHost::new(), &p).verdict
                {
                    assert!(!physical, "PHYSICAL accepted for {id}");
                    assert!(cpus.iter().all(|c| own.contains(c)), "{id}: {cpus}");
                    assert!(id < 3);
                }
            }
        }
    }
}

#[test]
fn core_type_physical_is_refused_for_every_command() {
    let pins = pins();
    let mut vm = view(&pins);
    vm.allow_query = true;
    let mut p = req(0, Step::Max);
    p.core_type = true;
    let e = nacked(run(&vm, &mut FakeHost::new(), &p), &p);
    assert_eq!(
        e.to_string(),
        "core_type PHYSICAL is not accepted from a guest"
    );
    for cmd in [QUERY_FREQ, QUERY_FREQ_LIST, QUERY_CAPS, QUERY_CAPS_LIST] {
        let mut q = query(cmd, 0);
        q.core_type = true;
        let e = query_nacked(run(&vm, &mut FakeHost::new(), &q), &q);
        assert!(matches!(e, RequestError::PhysicalCore));
    }
    let mut pol = policy_pkt(&[0]);
    pol.core_type = true;
    assert!(matches!(
        nacked(run(&vm, &mut FakeHost::new(), &pol), &pol),
        RequestError::PhysicalCore
    ));
    let mut rm = query(wire::PKT_POLICY_REMOVE, 0);
    rm.core_type = true;
    let (e, reply) = refused(run(&vm, &mut FakeHost::new(), &rm));
    assert!(matches!(e, RequestError::PhysicalCore));
    assert_eq!(reply, None, "a removal is never answered");
}

#[test]
fn cpu_power_outside_userspace_is_refused_naming_cpu_and_governor() {
    let pins = pins();
    let vm = view(&pins);
    let mut host = FakeHost::new();
    host.governors.insert(3, Governor::Powersave);
    // vCPU 2 is on pCPUs 2 and 3: refused as a whole
    let p = req(2, Step::Up);
    let e = nacked(run(&vm, &mut host, &p), &p);
    assert_eq!(
        e.to_string(),
        "CPU 3 is under the powersave governor; guest requests are served only under userspace"
    );
    for g in [Governor::Performance, Governor::Ondemand] {
        host.governors.insert(0, g);
        let p = req(0, Step::Up);
        let e = nacked(run(&vm, &mut host, &p), &p);
        assert!(matches!(e, RequestError::NotUserspace { cpu: 0, governor } if governor == g));
    }
    host.governors.insert(0, Governor::Userspace);
    accepted(run(&vm, &mut host, &req(0, Step::Up)));
    accepted(run(&vm, &mut host, &req(1, Step::Up)));
}

#[test]
fn a_shared_pcpu_is_nacked_until_allowed_and_nothing_is_scaled() {
    let pins = pins();
    let mut vm = view(&pins);
    // pCPU 2 is another VM's too: vCPU 2 (pCPUs 2-3) is refused whole
    vm.contested = &[2];
    let mut host = FakeHost::new();
    for unit in [
        Step::Up,
        Step::Down,
        Step::Min,
        Step::Max,
        Step::EnableTurbo,
    ] {
        let p = req(2, unit);
        let e = nacked(run(&vm, &mut host, &p), &p);
        assert!(matches!(e, RequestError::SharedCpu(2)), "{e}");
        assert_eq!(
            e.to_string(),
            "pCPU 2 is shared with another managed VM (pinned there or in one cpufreq policy); the operator may allow it with set_shared 2 allow"
        );
    }
    // vCPUs on pCPUs of their own are not touched by the rule
    let (action, _, _) = accepted(run(&vm, &mut host, &req(0, Step::Up)));
    assert_eq!(
        action,
        Some(Action::Scale {
            cpus: CpuSet::single(0),
            op: Step::Up
        })
    );
    // the rule comes after the vCPU and unit checks (their errors first)
    let p = req(9, Step::Up);
    assert!(matches!(
        nacked(run(&vm, &mut host, &p), &p),
        RequestError::VcpuOutOfRange { .. }
    ));
    // allowed: the loop's contested set no longer holds it
    vm.contested = &[];
    let (action, _, _) = accepted(run(&vm, &mut host, &req(2, Step::Min)));
    assert_eq!(
        action,
        Some(Action::Scale {
            cpus: CpuSet::from_iter_u32([2, 3]),
            op: Step::Min
        })
    );
}

#[test]
fn connect_is_ignored_even_with_garbage_or_on_a_disabled_channel() {
    let pins = pins();
    let mut vm = view(&pins);
    let h = run(&vm, &mut FakeHost::new(), &ChannelPacket::connect());
    assert!(matches!(h.verdict, Verdict::Ignored));
    let mut raw = ChannelPacket::connect().encode();
    for (i, b) in raw.iter_mut().enumerate().skip(16) {
        *b = (i * 7) as u8 | 0x80;
    }
    assert!(ChannelPacket::decode(&raw).is_err(), "garbage body");
    let h = handle(&vm, &mut FakeHost::new(), &raw);
    assert!(matches!(h.verdict, Verdict::Ignored));
    assert_eq!(h.what.to_string(), "CONNECT");
    vm.channel_enabled = false;
    let h = run(&vm, &mut FakeHost::new(), &ChannelPacket::connect());
    assert!(matches!(h.verdict, Verdict::Ignored));
}

#[test]
fn queries_without_set_query_are_nacked_in_their_reply_size() {
    let pins = pins();
    let vm = view(&pins);
    let mut host = FakeHost::new();
    for cmd in [QUERY_FREQ_LIST, QUERY_FREQ, QUERY_CAPS_LIST, QUERY_CAPS] {
        let q = query(cmd, 1);
        let e = query_nacked(run(&vm, &mut host, &q), &q);
        assert_eq!(
            e.to_string(),
            "queries are not enabled for this VM (set_query)"
        );
    }
    assert!(host.asked.is_empty(), "nothing read for a refused query");
}

#[test]
fn frequency_queries_answer_about_the_asking_vm_only() {
    let pins = pins();
    let mut vm = view(&pins);
    vm.allow_query = true;
    let mut host = FakeHost::new();
    let mut q = query(QUERY_FREQ_LIST, 5);
    q.unit = 42;
    let (action, reply, _) = accepted(run(&vm, &mut host, &q));
    assert_eq!(action, None);
    let raw = reply.expect("list");
    assert_eq!(raw.len(), FREQ_LIST_SIZE);
    let f = FreqListPacket::decode(&raw).expect("freq list");
    assert_eq!(f.num_vcpu, 3);
    assert_eq!(f.name().map(|n| n.to_string()).as_deref(), Some("vm-a"));
    assert_eq!((f.resource_id, f.unit), (5, 42), "echoed");
    // vCPU 2 is on pCPUs 2-3: its first pCPU answers
    assert_eq!(&f.freq_list[..3], &[1_000_000, 1_100_000, 1_200_000]);
    assert_eq!(&f.freq_list[3..], &[0; 5], "unused slots zero");
    assert!(raw[81..].iter().all(|b| *b == 0), "padding zero");
    assert_eq!(host.asked, [0, 1, 2]);

    let (_, reply, _) = accepted(run(&vm, &mut host, &query(QUERY_FREQ, 1)));
    let f = FreqListPacket::decode(&reply.expect("one")).expect("freq");
    assert_eq!(f.freq_list, [0, 1_100_000, 0, 0, 0, 0, 0, 0]);
    assert_eq!(f.resource_id, 1);
}

#[test]
fn capability_queries_fill_turbo_and_priority() {
    let pins = pins();
    let mut vm = view(&pins);
    vm.allow_query = true;
    let mut host = FakeHost::new();
    host.caps.insert(
        1,
        Capabilities {
            turbo: true,
            priority: true,
        },
    );
    let (_, reply, _) = accepted(run(&vm, &mut host, &query(QUERY_CAPS_LIST, 0)));
    let raw = reply.expect("caps");
    assert_eq!(raw.len(), CAPS_LIST_SIZE);
    let c = CapsListPacket::decode(&raw).expect("caps");
    assert_eq!(c.num_vcpu, 3);
    assert_eq!(c.turbo, [1, 1, 1, 0, 0, 0, 0, 0]);
    assert_eq!(c.priority, [0, 1, 0, 0, 0, 0, 0, 0]);
    assert!(raw[177..].iter().all(|b| *b == 0), "padding zero");
    let (_, reply, _) = accepted(run(&vm, &mut host, &query(QUERY_CAPS, 2)));
    let c = CapsListPacket::decode(&reply.expect("one")).expect("caps");
    assert_eq!(c.turbo, [0, 0, 1, 0, 0, 0, 0, 0]);
}

#[test]
fn a_single_query_for_a_vcpu_out_of_range_is_refused() {
    let pins = pins();
    let mut vm = view(&pins);
    vm.allow_query = true;
    for cmd in [QUERY_FREQ, QUERY_CAPS] {
        for vcpu in [3u64, 8, 1 << 32, u64::MAX] {
            let q = query(cmd, vcpu);
            let e = query_nacked(run(&vm, &mut FakeHost::new(), &q), &q);
            assert!(matches!(
                e,
                RequestError::QueryVcpuOutOfRange { count: 3, .. }
            ));
        }
    }
    // ten vCPUs: the reply has eight slots, vCPU 8 cannot be answered
    let ten: Vec<CpuSet> = (0..10).map(CpuSet::single).collect();
    let mut vm = view(&ten);
    vm.allow_query = true;
    let q = query(QUERY_FREQ, 8);
    let e = query_nacked(run(&vm, &mut FakeHost::new(), &q), &q);
    assert_eq!(
        e.to_string(),
        "vCPU 8 out of range (VM has 10, replies carry at most 8)"
    );
    let (_, reply, _) = accepted(run(&vm, &mut FakeHost::new(), &query(QUERY_FREQ_LIST, 0)));
    let f = FreqListPacket::decode(&reply.expect("list")).expect("freq");
    assert_eq!(f.num_vcpu, 8, "at most 8 entries");
    assert!(f.freq_list.iter().all(|k| *k > 0));
}

#[test]
fn a_list_query_with_an_unpinned_vcpu_or_a_failing_cpu_is_refused() {
    let unpinned = vec![CpuSet::single(0), CpuSet::from_iter_u32(0..8)];
    let mut vm = view(&unpinned);
    vm.allow_query = true;
    let mut host = FakeHost::new();
    let q = query(QUERY_CAPS_LIST, 0);
    let e = query_nacked(run(&vm, &mut host, &q), &q);
    assert!(matches!(e, RequestError::NotPinned(1)));
    assert!(host.asked.is_empty(), "every vCPU checked before any read");

    let pins = pins();
    let mut vm = view(&pins);
    vm.allow_query = true;
    host.freq.remove(&1);
    let q = query(QUERY_FREQ_LIST, 0);
    let e = query_nacked(run(&vm, &mut host, &q), &q);
    assert_eq!(e.to_string(), "cpu 1: cpu 1 does not exist");
}

#[test]
fn a_vm_whose_name_does_not_fit_gets_a_zero_name_in_replies() {
    let pins = pins();
    let mut vm = view(&pins);
    let long = "v".repeat(40);
    vm.name = &long;
    vm.wire_name = None;
    vm.allow_query = true;
    let (_, reply, _) = accepted(run(&vm, &mut FakeHost::new(), &query(QUERY_FREQ_LIST, 0)));
    let raw = reply.expect("list");
    assert!(raw[16..48].iter().all(|b| *b == 0));
}

#[test]
fn a_valid_policy_is_stored_and_acked() {
    let pins = pins();
    let vm = view(&pins);
    let p = policy_pkt(&[0, 2]);
    let (action, reply, note) = accepted(run(&vm, &mut FakeHost::new(), &p));
    assert_eq!(action, Some(Action::StorePolicy(Box::new(p))));
    assert_eq!(reply.as_deref(), Some(&p.reply(Response::Ack).encode()[..]));
    assert_eq!(note, Some(Note::PolicyStored));
    assert_eq!(
        note.map(|n| n.to_string()).as_deref(),
        Some("policy installed")
    );
}

#[test]
fn policies_the_engine_cannot_keep_are_refused_with_the_reason() {
    let pins = pins();
    let vm = view(&pins);
    let p = policy_pkt(&[]);
    let e = nacked(run(&vm, &mut FakeHost::new(), &p), &p);
    assert_eq!(
        e.to_string(),
        "policy refused: policy names no vCPU (num_vcpu 0)"
    );
    let mut p = policy_pkt(&[0]);
    p.policy_to_use = wire::POLICY_TRAFFIC;
    let e = nacked(run(&vm, &mut FakeHost::new(), &p), &p);
    assert_eq!(
        e.to_string(),
        "policy refused: TRAFFIC policy needs at least one VF MAC (nb_mac_to_monitor 0 or all-zero MACs)"
    );
    // hours, counts and enum values are the decoder's: malformed
    let mut raw = policy_pkt(&[0]).encode();
    raw[wire::layout::BUSY_HOURS..wire::layout::BUSY_HOURS + 4]
        .copy_from_slice(&24i32.to_le_bytes());
    let h = handle(&vm, &mut FakeHost::new(), &raw);
    assert!(
        matches!(
            h.verdict,
            Verdict::Refused {
                error: RequestError::Malformed(_),
                reply: Some(_)
            }
        ),
        "{:?}",
        h.verdict
    );
}

#[test]
fn a_policy_naming_a_vcpu_the_vm_lacks_is_refused() {
    let pins = pins();
    let vm = view(&pins);
    let p = policy_pkt(&[0, 3]);
    let e = nacked(run(&vm, &mut FakeHost::new(), &p), &p);
    assert_eq!(e.to_string(), "policy names vCPU 3, VM has 3");
    let p = policy_pkt(&[255]);
    assert!(matches!(
        nacked(run(&vm, &mut FakeHost::new(), &p), &p),
        RequestError::PolicyVcpu { vcpu: 255, .. }
    ));
}

/// A malformed request: refused, 464-byte NACK with the header only.
#[track_caller]
fn malformed_nack(vm: &VmView<'_>, raw: &[u8; PACKET_SIZE], why: &str) {
    let h = handle(vm, &mut FakeHost::new(), raw);
    assert!(h.packet.is_none());
    let (e, reply) = refused(h);
    assert!(matches!(e, RequestError::Malformed(_)));
    let msg = e.to_string();
    assert!(
        msg.starts_with("malformed packet: ") && msg.contains(why),
        "{msg}"
    );
    let r = reply.expect("NACK");
    assert_eq!(r.len(), PACKET_SIZE);
    assert_eq!(&r[..12], &raw[..12], "resource_id and unit echoed");
    assert_eq!(&r[12..16], &CMD_NACK.to_le_bytes());
    assert!(r[48..].iter().all(|b| *b == 0), "body zero");
}

#[test]
fn invalid_policies_are_refused_as_malformed() {
    let pins = pins();
    let vm = view(&pins);
    let base = policy_pkt(&[0]);
    // hours out of range: 24 and -1 in each list
    for (off, field) in [
        (156, "busy_hours"),
        (252 + 4 * 23, "quiet_hours[23]"),
        (348 + 8, "hours_to_use_traffic_profile[2]"),
    ] {
        for h in [24i32, -1] {
            let mut raw = base.encode();
            raw[off..off + 4].copy_from_slice(&h.to_le_bytes());
            malformed_nack(&vm, &raw, field);
        }
    }
    let mut raw = base.encode();
    raw[152] = 9; // num_vcpu above 8
    malformed_nack(&vm, &raw, "num_vcpu: 9 exceeds 8");
    let mut raw = base.encode();
    raw[448..452].copy_from_slice(&3u32.to_le_bytes());
    malformed_nack(&vm, &raw, "unknown workload level 3");
    let mut raw = base.encode();
    raw[452..456].copy_from_slice(&4u32.to_le_bytes());
    malformed_nack(&vm, &raw, "unknown policy 4");
    let mut raw = base.encode();
    raw[128..132].copy_from_slice(&11i32.to_le_bytes());
    malformed_nack(&vm, &raw, "nb_mac_to_monitor");
    let mut raw = base.encode();
    raw[444] = 7; // core_type neither 0 nor 1
    malformed_nack(&vm, &raw, "core_type");
}

#[test]
fn policy_remove_is_never_answered() {
    let pins = pins();
    let mut vm = view(&pins);
    let rm = query(wire::PKT_POLICY_REMOVE, 0);
    let (action, reply, note) = accepted(run(&vm, &mut FakeHost::new(), &rm));
    assert_eq!(action, Some(Action::RemovePolicy));
    assert_eq!(reply, None);
    assert_eq!(note, Some(Note::NoPolicyToRemove));
    vm.has_policy = true;
    let h = run(&vm, &mut FakeHost::new(), &rm);
    assert_eq!(h.failure_nack(), None);
    let (_, _, note) = accepted(h);
    assert_eq!(
        note.map(|n| n.to_string()).as_deref(),
        Some("policy removed")
    );
    // refused (malformed, disabled channel): still silent
    let mut raw = rm.encode();
    raw[152] = 200;
    let (e, reply) = refused(handle(&vm, &mut FakeHost::new(), &raw));
    assert!(matches!(e, RequestError::Malformed(_)));
    assert_eq!(reply, None);
    vm.channel_enabled = false;
    let (e, reply) = refused(run(&vm, &mut FakeHost::new(), &rm));
    assert!(matches!(e, RequestError::ChannelDisabled));
    assert_eq!(reply, None);
}

#[test]
fn unknown_commands_and_units_are_nacked_without_reflecting_garbage() {
    let pins = pins();
    let vm = view(&pins);
    let mut raw = req(0, Step::Down).encode();
    raw[12..16].copy_from_slice(&99u32.to_le_bytes());
    raw[445] = 0x5a; // padding: the frame is still a request's
    malformed_nack(&vm, &raw, "unknown request command 99");
    let h = handle(&vm, &mut FakeHost::new(), &raw);
    assert_eq!(h.what.to_string(), "command 99");
    for c in [5u32, 6, 11, u32::MAX] {
        let mut raw = req(0, Step::Down).encode();
        raw[12..16].copy_from_slice(&c.to_le_bytes());
        malformed_nack(&vm, &raw, "unknown request command");
    }
    let mut raw = req(0, Step::Down).encode();
    raw[8..12].copy_from_slice(&77u32.to_le_bytes());
    malformed_nack(&vm, &raw, "unit: unknown scale unit 77");
    // an invalid name is not echoed: it is ignored, the reply names the
    // channel's VM
    let mut raw = req(0, Step::Down).encode();
    raw[16..48].fill(b'x');
    raw[8..12].copy_from_slice(&77u32.to_le_bytes());
    let (_, reply) = refused(handle(&vm, &mut FakeHost::new(), &raw));
    assert_eq!(
        &reply.expect("NACK")[16..48],
        &VmName::new("vm-a").expect("name").to_wire()
    );
    // a malformed query is NACKed in its reply's size
    let mut raw = query(QUERY_CAPS, 0).encode();
    raw[456] = 2;
    let (_, reply) = refused(handle(&vm, &mut FakeHost::new(), &raw));
    assert_eq!(reply.expect("NACK").len(), CAPS_LIST_SIZE);
}

#[test]
fn a_disabled_channel_refuses_everything_but_connect() {
    let pins = pins();
    let mut vm = view(&pins);
    vm.channel_enabled = false;
    vm.allow_query = true;
    let p = req(0, Step::Min);
    let e = nacked(run(&vm, &mut FakeHost::new(), &p), &p);
    assert_eq!(e.to_string(), "channel disabled");
    let q = query(QUERY_FREQ, 0);
    query_nacked(run(&vm, &mut FakeHost::new(), &q), &q);
    let pol = policy_pkt(&[0]);
    nacked(run(&vm, &mut FakeHost::new(), &pol), &pol);
}

#[test]
fn replies_carry_no_byte_the_host_did_not_decode() {
    let pins = pins();
    let vm = view(&pins);
    // garbage in every padding byte of a valid request
    let p = req(1, Step::Up);
    let mut raw = p.encode();
    for pad in (153..156).chain(445..448).chain(457..464) {
        raw[pad] = 0xa5;
    }
    let h = handle(&vm, &mut FakeHost::new(), &raw);
    assert_eq!(h.packet, Some(p), "padding is not part of the request");
    let (_, reply, _) = accepted(h);
    assert_eq!(reply.as_deref(), Some(&p.reply(Response::Ack).encode()[..]));
    // the same for a refusal
    let mut raw = req(7, Step::Up).encode();
    raw[463] = 0xff;
    let (_, reply) = refused(handle(&vm, &mut FakeHost::new(), &raw));
    let r = reply.expect("NACK");
    assert_eq!(r[463], 0);
    assert_eq!(r, req(7, Step::Up).reply(Response::Nack).encode());
}

#[test]
fn failure_nack_is_the_requests_nack() {
    let pins = pins();
    let vm = view(&pins);
    let p = req(0, Step::Up);
    let h = run(&vm, &mut FakeHost::new(), &p);
    assert_eq!(
        h.failure_nack().map(|r| r.as_bytes().to_vec()),
        Some(p.reply(Response::Nack).encode().to_vec())
    );
    let e = RequestError::ScaleFailed {
        op: Step::Up,
        cpus: CpuSet::from_iter_u32([2, 3]),
        error: missing(3),
    };
    assert_eq!(
        e.to_string(),
        "up on CPU(s) 2-3 failed: cpu 3 does not exist"
    );
}

#[test]
fn request_names_for_log_lines() {
    let n = |command, resource_id| {
        RequestName {
            command,
            resource_id,
        }
        .to_string()
    };
    assert_eq!(n(CPU_POWER, 3), "CPU_POWER(vCPU 3)");
    assert_eq!(n(wire::CPU_POWER_CONNECT, 0), "CONNECT");
    assert_eq!(n(wire::PKT_POLICY, 0), "PKT_POLICY");
    assert_eq!(n(wire::PKT_POLICY_REMOVE, 0), "PKT_POLICY_REMOVE");
    assert_eq!(n(QUERY_FREQ_LIST, 0), "QUERY_FREQ_LIST");
    assert_eq!(n(QUERY_FREQ, 1), "QUERY_FREQ(vCPU 1)");
    assert_eq!(n(QUERY_CAPS_LIST, 0), "QUERY_CAPS_LIST");
    assert_eq!(n(QUERY_CAPS, 2), "QUERY_CAPS(vCPU 2)");
    assert_eq!(n(42, 0), "command 42");
}

fn unframed_of(h: Handled) -> RequestError {
    match h.verdict {
        Verdict::Unframed(e) => e,
        v => panic!("expected out of frame, got {v:?}"),
    }
}

#[test]
fn a_16_byte_peer_is_out_of_frame_even_where_its_frames_decode() {
    // DPDK up to 17.08 sends 16 bytes (resource_id, unit, command): 29 of
    // them fill a frame, whose core_type byte is a CPU_POWER's command (1)
    let pins = pins();
    let vm = view(&pins);
    let mut host = FakeHost::new();
    for (vcpu, unit) in [
        (0u64, Step::Up),
        (1, Step::Down),
        (3, Step::Max),
        (300, Step::Min),
    ] {
        let mut frame = [0u8; PACKET_SIZE];
        for p in frame.chunks_exact_mut(16) {
            p.copy_from_slice(&req(vcpu, unit).encode()[..16]);
        }
        if vcpu == 0 && unit == Step::Up {
            // what the gap was: it decodes, and was NACKed as PHYSICAL
            let p = ChannelPacket::decode(&frame).expect("decodes");
            assert_eq!(p.core_kind(), CoreType::Physical);
        }
        let e = unframed_of(handle(&vm, &mut host, &frame));
        assert!(
            e.to_string()
                .contains("29 packets of DPDK's 16-byte generation"),
            "{e}"
        );
        assert_eq!(unframed(&frame), Some(Unframed::SixteenByte));
        assert!(
            !counts_against_rate(&vm, &frame),
            "out of frame takes no token"
        );
    }
    // a 464-byte request is not one, whatever its name
    let mut p = req(0, Step::Up);
    p.vm_name = VmName::new("ubuntu2-with-a-long-name").expect("name");
    assert!(unframed(&p.encode()).is_none());
    assert!(matches!(
        handle(&vm, &mut host, &p.encode()).verdict,
        Verdict::Accepted { .. }
    ));
}

#[test]
fn bytes_that_cannot_be_a_packet_are_out_of_frame_not_refused() {
    let pins = pins();
    let vm = view(&pins);
    let mut host = FakeHost::new();
    // command 0: a zeroed frame, or the middle of another struct
    let e = unframed_of(handle(&vm, &mut host, &[0u8; PACKET_SIZE]));
    assert_eq!(
        e.to_string(),
        "stream out of frame: command 0 and no DPDK generation sends command 0"
    );
    // an unknown command whose body is no request's either
    let mut raw = req(0, Step::Down).encode();
    raw[12..16].copy_from_slice(&99u32.to_le_bytes());
    raw[200] = 0x5a; // busy_hours[11] = 90
    let e = unframed_of(handle(&vm, &mut host, &raw));
    assert!(e.to_string().contains("a body that is no request's"), "{e}");
    // a 456-byte peer (a DPDK generation without t_boost_status): the
    // second frame starts 8 bytes into its second packet
    let mut stream = Vec::new();
    for v in 0..3u64 {
        stream.extend_from_slice(&req(v % 2, Step::Up).encode()[..456]);
    }
    let frame = |k: usize| -> [u8; PACKET_SIZE] {
        stream[k * PACKET_SIZE..(k + 1) * PACKET_SIZE]
            .try_into()
            .expect("frame")
    };
    assert!(matches!(
        handle(&vm, &mut host, &frame(0)).verdict,
        Verdict::Accepted { .. }
    ));
    unframed_of(handle(&vm, &mut host, &frame(1)));
    // CPU_POWER with unit 0: what a stream 4 bytes early reads as
    let mut raw = req(0, Step::Up).encode();
    raw[8..12].copy_from_slice(&0u32.to_le_bytes());
    let e = unframed_of(handle(&vm, &mut host, &raw));
    assert!(
        e.to_string().ends_with("sends CPU_POWER with unit 0"),
        "{e}"
    );
    // known commands with bad bodies, and unknown commands with good
    // bodies, stay in frame: refused with a NACK
    let mut raw = policy_pkt(&[0]).encode();
    raw[156..160].copy_from_slice(&24i32.to_le_bytes());
    assert!(unframed(&raw).is_none());
    let mut raw = req(0, Step::Down).encode();
    raw[12..16].copy_from_slice(&42u32.to_le_bytes());
    assert!(unframed(&raw).is_none());
    // DPDK's CONNECT with stack garbage is never out of frame
    let mut raw = [0xa5u8; PACKET_SIZE];
    raw[12..16].copy_from_slice(&wire::CPU_POWER_CONNECT.to_le_bytes());
    assert!(unframed(&raw).is_none());
    assert!(matches!(
        handle(&vm, &mut host, &raw).verdict,
        Verdict::Ignored
    ));
    assert!(host.asked.is_empty(), "no host fact was read");
}

#[test]
fn over_the_rate_limit_every_request_is_nacked_before_decoding() {
    let pins = pins();
    let mut vm = view(&pins);
    vm.over_rate = true;
    vm.rate_limit = 100;
    let p = req(0, Step::Up);
    let (e, reply) = refused(run(&vm, &mut FakeHost::new(), &p));
    assert_eq!(e.to_string(), "over the VM's rate limit of 100 requests/s");
    let nack = reply.expect("NACK");
    assert_eq!(nack, p.header().nack().encode(), "header echoed, body zero");
    // malformed requests too; queries in their reply's size
    let mut raw = policy_pkt(&[0]).encode();
    raw[152] = 200;
    let (e, _) = refused(handle(&vm, &mut FakeHost::new(), &raw));
    assert!(matches!(e, RequestError::RateLimited(100)));
    let (_, reply) = refused(run(&vm, &mut FakeHost::new(), &query(QUERY_FREQ, 0)));
    assert_eq!(reply.expect("NACK").len(), FREQ_LIST_SIZE);
    // CONNECT stays ignored, bytes out of frame stay out of frame
    let h = run(&vm, &mut FakeHost::new(), &ChannelPacket::connect());
    assert!(matches!(h.verdict, Verdict::Ignored));
    unframed_of(handle(&vm, &mut FakeHost::new(), &[0u8; PACKET_SIZE]));
}
