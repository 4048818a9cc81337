//! Serving a connected channel: read, frame, decide (`requests`), carry out, reply, flush.

use std::os::fd::AsRawFd;
use std::time::Instant;

use rte_power::wire::{ChannelPacket, PACKET_SIZE};
use rte_power::{Capabilities, PowerError};

use super::channel::ReadEnd;
use super::connect::channel_events;
use super::event_loop::Source;
use super::registry::{ChanId, VmId};
use super::requests::{
    self, Action, Handled, HostFacts, Reply, RequestError, RequestName, Verdict, VmView,
};
use super::Monitor;
use crate::governor::{Governor, Governors};
use crate::host::Host;
use crate::log::Level;
use crate::sys;

/// Bytes read from one channel per wake-up before others get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// Bytes per read(2); replies are flushed after each.
pub(super) const READ_CHUNK: usize = 64 * 1024;

/// The host as the request handling sees it.
struct LoopFacts<'a> {
    host: &'a mut Host,
    govs: &'a Governors,
}

impl HostFacts for LoopFacts<'_> {
    fn governor(&self, cpu: u32) -> Governor {
        self.govs.governor(cpu)
    }

    fn frequency(&mut self, cpu: u32) -> Result<u32, PowerError> {
        self.host.frequency(cpu)
    }

    fn capabilities(&mut self, cpu: u32) -> Result<Capabilities, PowerError> {
        self.host.capabilities(cpu)
    }
}

impl Monitor {
    /// An event on a channel's stream.
    pub(super) fn on_channel(&mut self, id: ChanId, gen: u32, bits: u32) {
        let live = self.chans.is_current(id, gen)
            && self.chans.get(id).is_some_and(|c| c.stream.is_some());
        if !live {
            return;
        }
        if bits & (sys::IN | sys::RDHUP | sys::HUP | sys::ERR) != 0 {
            match self.read_channel(id) {
                ReadEnd::Data(_) | ReadEnd::Drained => {}
                ReadEnd::Eof => return self.hang_up(id, "QEMU closed the connection"),
                ReadEnd::Failed(e) => return self.hang_up(id, &format!("read error: {e}")),
            }
        }
        let pending = self.chans.get(id).is_some_and(|c| c.out.pending() > 0);
        if bits & sys::OUT != 0 || pending {
            self.flush(id);
        }
    }

    /// Reads up to the budget and handles every complete packet.
    fn read_channel(&mut self, id: ChanId) -> ReadEnd {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut total = 0;
        let end = loop {
            let Some(ch) = self.chans.get_mut(id) else {
                break ReadEnd::Drained;
            };
            let n = match ch.read(&mut scratch) {
                ReadEnd::Data(n) => n,
                end => break end,
            };
            self.consume(id, &scratch[..n]);
            if self.chans.get(id).is_some_and(|c| c.out.pending() > 0) {
                self.flush(id);
            }
            total += n;
            if total >= READ_BUDGET || self.chans.get(id).is_none_or(|c| c.stream.is_none()) {
                break ReadEnd::Drained;
            }
        };
        self.scratch = scratch;
        end
    }

    /// Frames `data` (after any partial packet kept from before) and
    /// handles each complete packet.
    fn consume(&mut self, id: ChanId, data: &[u8]) {
        let Some(ch) = self.chans.get_mut(id) else {
            return;
        };
        let mut inbound = std::mem::take(&mut ch.inbound);
        inbound.feed(data, |pkt| self.handle(id, pkt));
        if let Some(ch) = self.chans.get_mut(id) {
            ch.inbound = inbound;
        }
    }

    /// One complete packet from channel `id`.
    fn handle(&mut self, id: ChanId, bytes: &[u8; PACKET_SIZE]) {
        let Some(ch) = self.chans.get_mut(id) else {
            return;
        };
        ch.stats.packets += 1;
        ch.backoff = self.cfg.retry_min;
        let (vm_id, enabled) = (ch.vm, ch.enabled);
        let Some(vm) = self.reg.get(vm_id) else {
            return;
        };
        let view = VmView {
            name: &vm.info.name,
            wire_name: vm.wire_name,
            vcpus: &vm.info.vcpus,
            host_cpus: self.host_cpus,
            allow_query: vm.allow_query,
            has_policy: vm.policy.is_some(),
            channel_enabled: enabled,
        };
        let mut facts = LoopFacts {
            host: &mut self.host,
            govs: &self.gov.govs,
        };
        let Handled {
            what,
            packet,
            verdict,
        } = requests::handle(&view, &mut facts, bytes);
        match verdict {
            Verdict::Ignored => {}
            Verdict::Refused { error, reply } => self.refused(id, vm_id, what, &error, reply),
            Verdict::Accepted {
                action,
                reply,
                note,
            } => {
                if let Some(action) = action {
                    if let Err(error) = self.act(vm_id, action, packet.as_ref()) {
                        let nack = requests::failure_nack(what, packet.as_ref());
                        return self.refused(id, vm_id, what, &error, nack);
                    }
                }
                self.count(id, vm_id, true);
                if let Some(note) = note {
                    self.guest_log(id, Level::Info, &note.to_string());
                }
                if let Some(reply) = reply {
                    self.enqueue(id, reply.as_bytes());
                }
            }
        }
    }

    /// Carries out an accepted request's change.
    fn act(
        &mut self,
        vm: VmId,
        action: Action,
        packet: Option<&ChannelPacket>,
    ) -> Result<(), RequestError> {
        match action {
            Action::Scale { cpus, op } => {
                self.host
                    .apply_all(&cpus, op)
                    .map_err(|error| RequestError::ScaleFailed { op, cpus, error })?;
                if let (Some(t), Some(p)) = (self.cfg.trace.as_mut(), packet) {
                    t(p);
                }
            }
            Action::StorePolicy(p) => {
                if let Some(v) = self.reg.get_mut(vm) {
                    v.policy = Some(*p);
                }
            }
            Action::RemovePolicy => {
                if let Some(v) = self.reg.get_mut(vm) {
                    v.policy = None;
                }
            }
        }
        Ok(())
    }

    /// Counts a request as accepted or refused, on the channel and its VM.
    fn count(&mut self, id: ChanId, vm: VmId, accepted: bool) {
        if let Some(ch) = self.chans.get_mut(id) {
            let s = &mut ch.stats;
            *if accepted {
                &mut s.accepted
            } else {
                &mut s.refused
            } += 1;
        }
        if let Some(v) = self.reg.get_mut(vm) {
            *if accepted {
                &mut v.accepted
            } else {
                &mut v.refused
            } += 1;
        }
    }

    /// A refusal: counted, logged (rate-limited), answered if `reply`.
    fn refused(
        &mut self,
        id: ChanId,
        vm: VmId,
        what: RequestName,
        why: &RequestError,
        reply: Option<Reply>,
    ) {
        self.count(id, vm, false);
        self.guest_log(id, Level::Warn, &format!("refused {what}: {why}"));
        if let Some(r) = reply {
            self.enqueue(id, r.as_bytes());
        }
    }

    /// Queues a reply. When the queue is at its cap, what the peer takes
    /// is written first; a reply that still does not fit is dropped whole,
    /// and counted (the guest does not read its replies).
    fn enqueue(&mut self, id: ChanId, bytes: &[u8]) {
        let cap = self.cfg.max_out_bytes;
        let Some(ch) = self.chans.get_mut(id) else {
            return;
        };
        if ch.out.push(bytes, cap) {
            return;
        }
        self.flush(id);
        if let Some(ch) = self.chans.get_mut(id) {
            if ch.stream.is_none() || !ch.out.push(bytes, cap) {
                ch.stats.replies_dropped += 1;
            }
        }
    }

    /// Writes what the peer takes; registers for EPOLLOUT while replies
    /// remain; a write error is a hang-up.
    fn flush(&mut self, id: ChanId) {
        let gen = self.chans.gen(id);
        let Some(ch) = self.chans.get_mut(id) else {
            return;
        };
        let pending = match ch.flush() {
            Ok(p) => p,
            Err(e) => return self.hang_up(id, &format!("write error: {e}")),
        };
        if pending != ch.want_out {
            ch.want_out = pending;
            if let Some(fd) = ch.stream.as_ref().map(AsRawFd::as_raw_fd) {
                let token = Source::Channel { id, gen }.into();
                let _ = self.epoll.modify(fd, channel_events(pending), token);
            }
        }
    }

    /// Logs a guest-triggered event, rate-limited per channel.
    fn guest_log(&mut self, id: ChanId, level: Level, msg: &str) {
        let (burst, window) = (self.cfg.log_burst, self.cfg.log_window);
        let Some(ch) = self.chans.get_mut(id) else {
            return;
        };
        let (ok, suppressed) = ch.limiter.check(Instant::now(), burst, window);
        let (vm, num) = (ch.vm, ch.num);
        let name = self.reg.name(vm);
        if suppressed > 0 {
            let m = format!("VM '{name}' channel {num}: {suppressed} similar messages suppressed");
            self.log(Level::Warn, &m);
        }
        if ok {
            self.log(level, &format!("VM '{name}' channel {num}: {msg}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::path::PathBuf;
    use std::time::Duration;

    use rte_power::wire::{Response, Step, CMD_NACK};

    use super::super::channel::Channel;
    use super::super::test_monitor;
    use super::*;
    use crate::hv::VmInfo;
    use rte_power::cpulist::CpuSet;

    /// A loop with VM `vm-a` (vCPU 0 on pCPU 0, which the empty sysfs
    /// does not have) and one channel connected to the returned guest end.
    fn setup() -> (tempfile::TempDir, Monitor, ChanId, UnixStream) {
        let (tmp, mut mon) = test_monitor(8);
        let vm = mon
            .reg
            .add(VmInfo {
                name: "vm-a".into(),
                active: true,
                vcpus: vec![CpuSet::single(0)],
            })
            .expect("add");
        let (ours, guest) = UnixStream::pair().expect("pair");
        ours.set_nonblocking(true).expect("nonblocking");
        guest
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let id = mon
            .chans
            .insert(Channel::new(vm, 0, PathBuf::from("vm-a.0"), Duration::ZERO));
        mon.chans.get_mut(id).expect("chan").attach(ours);
        mon.reg.get_mut(vm).expect("vm").channels.insert(0, id);
        (tmp, mon, id, guest)
    }

    fn nack_of(guest: &mut UnixStream, sent: &ChannelPacket) {
        let mut r = [0u8; PACKET_SIZE];
        guest.read_exact(&mut r).expect("reply");
        assert_eq!(&r[12..16], &CMD_NACK.to_le_bytes());
        assert_eq!(r, sent.reply(Response::Nack).encode());
    }

    #[test]
    fn refusals_and_host_failures_are_counted_logged_and_nacked() {
        let (_tmp, mut mon, id, mut guest) = setup();
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let l2 = std::sync::Arc::clone(&logs);
        mon.cfg.log =
            std::sync::Arc::new(move |_, m: &str| l2.lock().expect("logs").push(m.to_string()));
        let gen = mon.chans.gen(id);
        // out of range, split over two reads; then a host failure
        let bad = ChannelPacket::cpu_power(5, Step::Up);
        let fail = ChannelPacket::cpu_power(0, Step::Up);
        let mut bytes = bad.encode().to_vec();
        bytes.extend_from_slice(&fail.encode());
        guest.write_all(&bytes[..300]).expect("send");
        mon.on_channel(id, gen, sys::IN);
        guest.write_all(&bytes[300..]).expect("send");
        mon.on_channel(id, gen, sys::IN);
        nack_of(&mut guest, &bad);
        nack_of(&mut guest, &fail);
        let ch = mon.chans.get(id).expect("chan");
        assert_eq!(
            (ch.stats.packets, ch.stats.refused, ch.stats.accepted),
            (2, 2, 0)
        );
        let vm = mon.reg.get(ch.vm).expect("vm");
        assert_eq!((vm.accepted, vm.refused), (0, 2));
        let logs = logs.lock().expect("logs");
        assert_eq!(
            logs.as_slice(),
            [
                "VM 'vm-a' channel 0: refused CPU_POWER(vCPU 5): vCPU 5 out of range (VM has 1)",
                "VM 'vm-a' channel 0: refused CPU_POWER(vCPU 0): up on CPU(s) 0 failed: cpu 0 does not exist",
            ]
        );
    }

    #[test]
    fn a_stale_generation_is_ignored_and_a_hang_up_detaches() {
        let (_tmp, mut mon, id, guest) = setup();
        let gen = mon.chans.gen(id);
        mon.on_channel(id, gen.wrapping_add(1), sys::IN);
        assert!(mon.chans.get(id).is_some_and(|c| c.stream.is_some()));
        drop(guest);
        mon.on_channel(id, gen, sys::IN | sys::RDHUP);
        let ch = mon.chans.get(id).expect("chan");
        assert!(ch.stream.is_none());
        assert_eq!(ch.why, "QEMU closed the connection");
        assert!(!mon.chans.is_current(id, gen), "new generation");
    }

    #[test]
    fn policies_are_stored_and_removed_on_the_channels_vm() {
        let (_tmp, mut mon, id, mut guest) = setup();
        let gen = mon.chans.gen(id);
        let mut p = ChannelPacket::ZEROED;
        p.command = rte_power::wire::PKT_POLICY;
        p.num_vcpu = 1;
        guest.write_all(&p.encode()).expect("send");
        mon.on_channel(id, gen, sys::IN);
        let mut r = [0u8; PACKET_SIZE];
        guest.read_exact(&mut r).expect("ACK");
        assert_eq!(r, p.reply(Response::Ack).encode());
        let vm = mon.chans.get(id).expect("chan").vm;
        assert_eq!(mon.reg.get(vm).and_then(|v| v.policy), Some(p));
        let mut rm = ChannelPacket::ZEROED;
        rm.command = rte_power::wire::PKT_POLICY_REMOVE;
        guest.write_all(&rm.encode()).expect("send");
        mon.on_channel(id, gen, sys::IN);
        assert_eq!(mon.reg.get(vm).and_then(|v| v.policy), None);
        assert_eq!(mon.reg.get(vm).map(|v| v.accepted), Some(2));
    }
}
