//! A guest channel as the loop serves it: a byte stream in, cut into reads
//! of fuzzer-chosen sizes, framed (`Framer`), each packet decided on
//! (`requests::handle`) for a fuzzer-chosen VM and host, actions applied to
//! a model host, replies queued (`OutQueue`, capped) and read back by a
//! guest that takes a fuzzer-chosen number of bytes per read.
//!
//! Invariants checked on every packet and every reply:
//! * a scale action names only host CPUs the requesting vCPU is pinned
//!   to, never an unpinned vCPU, never a CPU not under userspace, never
//!   for `core_type` PHYSICAL;
//! * query replies carry in slot i only vCPU i's own pCPU's value (pins
//!   checked against this harness's model, not the monitor's lookup);
//! * every reply byte is derived from decoded fields: a 464-byte reply
//!   decodes and re-encodes to itself; list replies likewise, or are a
//!   NACK whose body is zero; an ACK echoes the request exactly;
//! * memory is bounded: the framer holds less than one packet, the reply
//!   queue's storage never exceeds its cap;
//! * a frame out of frame stops the stream (the channel is reset) and
//!   nothing after it is handled.

#![no_main]

use std::ops::ControlFlow;

use libfuzzer_sys::fuzz_target;
use rte_power::wire::{
    CapsListPacket, ChannelPacket, FreqListPacket, VmName, CAPS_LIST_SIZE, CMD_ACK, CMD_NACK,
    FREQ_LIST_SIZE, PACKET_SIZE,
};
use rte_power::{Capabilities, PowerError};
use vm_power_monitor::governor::Governor;
use vm_power_monitor::monitor::channel::{Framer, OutQueue};
use vm_power_monitor::monitor::requests::{self, Action, HostFacts, Verdict, VmView};
use vm_power_monitor::CpuSet;

const HOST_CPUS: u32 = 8;
/// A frequency that names its CPU.
const BASE_KHZ: u32 = 1_000_000;

struct Host {
    not_userspace: u8,
    failing: u8,
}

impl HostFacts for Host {
    fn governor(&self, cpu: u32) -> Governor {
        if self.not_userspace & (1 << cpu) != 0 {
            Governor::Performance
        } else {
            Governor::Userspace
        }
    }
    fn frequency(&mut self, cpu: u32) -> Result<u32, PowerError> {
        assert!(cpu < HOST_CPUS, "asked for CPU {cpu}");
        if self.failing & (1 << cpu) != 0 {
            return Err(PowerError::InvalidArgument(format!("cpu {cpu}")));
        }
        Ok(BASE_KHZ + cpu)
    }
    fn capabilities(&mut self, cpu: u32) -> Result<Capabilities, PowerError> {
        assert!(cpu < HOST_CPUS, "asked for CPU {cpu}");
        Ok(Capabilities {
            turbo: cpu % 2 == 0,
            priority: cpu == 3,
        })
    }
}

/// Checks one reply's bytes; returns its command.
fn check_reply(r: &[u8], req: Option<&ChannelPacket>, pins: &[CpuSet]) -> u32 {
    let command = u32::from_le_bytes([r[12], r[13], r[14], r[15]]);
    match r.len() {
        PACKET_SIZE => {
            let p = ChannelPacket::decode_reply(r).expect("a 464-byte reply decodes");
            assert_eq!(&p.encode()[..], r, "reply bytes not all from fields");
            if command == CMD_ACK {
                let q = req.expect("an ACK answers a decoded request");
                assert_eq!(p, q.reply(rte_power::wire::Response::Ack));
            }
        }
        FREQ_LIST_SIZE | CAPS_LIST_SIZE if command == CMD_NACK => {
            assert!(r[48..].iter().all(|b| *b == 0), "a list NACK has no body");
            assert!(VmName::from_wire(&r[16..48].try_into().expect("name")).is_ok());
        }
        FREQ_LIST_SIZE => {
            let f = FreqListPacket::decode(r).expect("frequency list");
            assert_eq!(&f.encode()[..], r);
            // slot i holds vCPU i's own pCPU's value (a pinned vCPU's)
            for (i, khz) in f.freq_list.iter().enumerate() {
                if *khz != 0 {
                    assert!(i < usize::from(f.num_vcpu));
                    let own = pins.get(i).expect("slot of a vCPU");
                    assert!(own.len() < HOST_CPUS as usize, "unpinned vCPU {i}");
                    assert!(own.contains(khz - BASE_KHZ), "foreign CPU's value");
                }
            }
        }
        CAPS_LIST_SIZE => {
            let c = CapsListPacket::decode(r).expect("capability list");
            assert_eq!(&c.encode()[..], r);
        }
        n => panic!("a reply of {n} bytes"),
    }
    command
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 6 {
        return;
    }
    let (cfg, stream) = data.split_at(6);
    let nvcpu = usize::from(cfg[0] % 12);
    let flags = cfg[1];
    let host = &mut Host {
        not_userspace: cfg[2],
        failing: cfg[3] & 0x0f,
    };
    let read_size = usize::from(cfg[4]) * 4 + 1;
    let take_size = usize::from(cfg[5]) * 8;
    // vCPU i on a fuzzer-chosen set of CPUs: from the stream's own bytes
    // would couple them; a fixed pattern per count keeps it simple and
    // covers single, several, empty and unpinned (every CPU)
    let pins: Vec<CpuSet> = (0..nvcpu)
        .map(|i| match (i + usize::from(flags >> 4)) % 5 {
            0 => CpuSet::single(i as u32 % HOST_CPUS),
            1 => CpuSet::from_iter_u32([i as u32 % HOST_CPUS, (i as u32 + 1) % HOST_CPUS]),
            2 => CpuSet::from_iter_u32(0..HOST_CPUS),
            3 => CpuSet::from_iter_u32([]),
            _ => CpuSet::single(7 - i as u32 % HOST_CPUS),
        })
        .collect();
    let vm = VmView {
        name: "vm-a",
        wire_name: VmName::new("vm-a").ok(),
        vcpus: &pins,
        host_cpus: HOST_CPUS,
        allow_query: flags & 1 != 0,
        has_policy: flags & 2 != 0,
        policy: None,
        channel_enabled: flags & 4 != 0,
        over_rate: flags & 8 != 0,
        rate_limit: 100,
        contested: if flags & 0x80 != 0 { &[2] } else { &[] },
    };
    let cap = 4 * PACKET_SIZE + 100;
    let mut framer = Framer::new();
    let mut out = OutQueue::new();
    let mut guest = Vec::new();
    let mut sent = Vec::new();
    let mut handled = 0usize;
    let mut reset = false;
    for chunk in stream.chunks(read_size) {
        let flow = framer.feed(chunk, |bytes| {
            handled += 1;
            let h = requests::handle(&vm, host, bytes);
            let (reply, action) = match h.verdict {
                Verdict::Unframed(_) => {
                    assert!(requests::unframed(bytes).is_some());
                    return ControlFlow::Break(());
                }
                Verdict::Ignored => (None, None),
                Verdict::Refused { reply, .. } => (reply, None),
                Verdict::Accepted { action, reply, .. } => (reply, action),
            };
            if let Some(Action::Scale { cpus, .. }) = &action {
                // checked against this harness's own model of the VM, not
                // the monitor's functions (a wrong vCPU -> pCPU lookup
                // would pass a check made with that same lookup)
                let p = h.packet.as_ref().expect("scaling needs a decoded packet");
                let own = usize::try_from(p.resource_id)
                    .ok()
                    .and_then(|v| pins.get(v))
                    .expect("scaling names one of the VM's vCPUs");
                assert!(cpus.iter().all(|c| own.contains(c)), "foreign CPU {cpus}");
                assert!(
                    !cpus.is_empty() && cpus.len() < HOST_CPUS as usize,
                    "unpinned"
                );
                assert!(!p.core_type, "core_type PHYSICAL");
                assert!(cpus.iter().all(|c| host.governor(c) == Governor::Userspace));
                assert!(!vm.over_rate && vm.channel_enabled);
            }
            if let Some(r) = reply {
                check_reply(r.as_bytes(), h.packet.as_ref(), &pins);
                if out.push(r.as_bytes(), cap) {
                    sent.extend_from_slice(r.as_bytes());
                }
            }
            assert!(out.allocated() <= cap);
            ControlFlow::Continue(())
        });
        assert!(framer.pending() < PACKET_SIZE);
        // the guest reads some of its replies
        let mut w = Take(take_size, &mut guest);
        out.write_to(&mut w).expect("a Vec never fails");
        if flow.is_break() {
            reset = true;
            break;
        }
    }
    assert!(handled <= stream.len() / PACKET_SIZE + 1);
    if reset {
        assert!(handled >= 1);
    }
    // what the guest read is whole replies in order, however it read
    let mut w = Take(usize::MAX, &mut guest);
    out.write_to(&mut w).expect("drain");
    assert_eq!(out.pending(), 0);
    assert!(guest == sent, "replies read back whole and in order");
});

/// A reader that takes at most `.0` bytes per read.
struct Take<'a>(usize, &'a mut Vec<u8>);

impl std::io::Write for Take<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = b.len().min(self.0);
        self.1.extend_from_slice(&b[..n]);
        self.0 -= n;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
