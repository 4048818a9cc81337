//! Serving a connected channel: a VM's turn reads, frames, decides (`requests`), acts, replies.

use std::ops::ControlFlow;
use std::os::fd::AsRawFd;
use std::time::Instant;

use rte_power::wire::{ChannelPacket, PACKET_SIZE};
use rte_power::{Capabilities, PowerError};

use super::channel::{ReadEnd, GOOD_STREAK};
use super::connect::channel_events;
use super::event_loop::Source;
use super::fair::Turn;
use super::registry::{ChanId, VmId};
use super::requests::{
    self, Action, ForeignName, Handled, HostFacts, Reply, RequestError, RequestName, Verdict,
    VmView,
};
use super::{tally, Monitor};
use crate::governor::{Governor, Governors};
use crate::host::Host;
use crate::log::Level;
use crate::policy::spec::Spec;
use crate::sys;

/// Bytes per read(2) at most (the shared read buffer).
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
    /// An event on a channel's stream: writable channels are flushed now;
    /// readable ones (or hung up: the read tells) wait for their VM's turn.
    pub(super) fn on_channel(&mut self, id: ChanId, gen: u32, bits: u32) {
        if !self.chans.is_current(id, gen) {
            return;
        }
        let Some(ch) = self.chans.get_mut(id) else {
            return;
        };
        if ch.stream.is_none() {
            return;
        }
        let vm = ch.vm;
        if bits & (sys::RDHUP | sys::HUP | sys::ERR) != 0 {
            ch.hup = true;
        }
        if bits & sys::OUT != 0 {
            self.flush(id);
        }
        if bits & (sys::IN | sys::RDHUP | sys::HUP | sys::ERR) != 0 {
            self.fair.ready(vm, id, gen);
        }
    }

    /// Every turn of this wake-up, VMs round-robin (see `fair`).
    pub(super) fn serve_turns(&mut self) {
        while let Some(turn) = self.fair.next() {
            let (served, more) = self.serve_turn(turn);
            if self.fair.done(turn, served, more) {
                if let Some(v) = self.reg.get_mut(turn.vm) {
                    v.deferred += 1;
                }
            }
            if self.stop {
                return;
            }
        }
    }

    /// One turn: one read of at most `turn.max` packets' worth, each
    /// complete packet handled, replies flushed. Returns the packets
    /// handled and whether the channel may hold more.
    fn serve_turn(&mut self, turn: Turn) -> (usize, bool) {
        let id = turn.chan;
        if !self.chans.is_current(id, turn.gen) {
            return (0, false);
        }
        let Some(ch) = self.chans.get_mut(id) else {
            return (0, false);
        };
        // one byte beyond the turn's packets: a read that fills exactly
        // the packets waiting comes back short, so the channel is known to
        // be empty without another read (the byte stays in the framer;
        // it completes no packet of this turn)
        let want = (turn.max * PACKET_SIZE + 1)
            .saturating_sub(ch.inbound.pending())
            .clamp(1, self.scratch.len());
        let mut scratch = std::mem::take(&mut self.scratch);
        let (served, more) = match ch.read(&mut scratch[..want]) {
            ReadEnd::Data(n) => {
                self.arrival = Instant::now();
                (self.consume(id, &scratch[..n]), n == want)
            }
            ReadEnd::Drained => (0, false),
            ReadEnd::Eof => {
                self.hang_up(id, "QEMU closed the connection");
                (0, false)
            }
            ReadEnd::Failed(e) => {
                self.hang_up(id, &format!("read error: {e}"));
                (0, false)
            }
        };
        self.scratch = scratch;
        if self.chans.get(id).is_some_and(|c| c.out.pending() > 0) {
            self.flush(id);
        }
        // a short read emptied the socket, unless the peer hung up: then
        // read on until EOF
        match self.chans.get(id) {
            Some(c) if c.stream.is_some() => (served, more || c.hup),
            _ => (served, false),
        }
    }

    /// Frames `data` (after any partial packet kept from before) and
    /// handles each complete packet; stops when the channel is reset or
    /// gone. Returns the packets handled.
    fn consume(&mut self, id: ChanId, data: &[u8]) -> usize {
        let Some(ch) = self.chans.get_mut(id) else {
            return 0;
        };
        let mut inbound = std::mem::take(&mut ch.inbound);
        let mut n = 0;
        let flow = inbound.feed(data, |pkt| {
            n += 1;
            self.handle(id, pkt)
        });
        if let Some(ch) = self.chans.get_mut(id) {
            // a reset channel starts its next stream empty
            if flow.is_continue() && ch.stream.is_some() {
                ch.inbound = inbound;
            }
        }
        n
    }

    /// One complete packet from channel `id`; breaks when the channel was
    /// reset or is gone.
    fn handle(&mut self, id: ChanId, bytes: &[u8; PACKET_SIZE]) -> ControlFlow<()> {
        let Some(ch) = self.chans.get_mut(id) else {
            return ControlFlow::Break(());
        };
        if ch.stream.is_none() {
            return ControlFlow::Break(());
        }
        ch.stats.packets += 1;
        let (vm_id, enabled) = (ch.vm, ch.enabled);
        let cmd = tally::command_of(bytes);
        let Some(vm) = self.reg.get_mut(vm_id) else {
            return ControlFlow::Break(());
        };
        // no policy (the common case): no lookup at all
        let policy = if self.policy.engine.is_empty() {
            None
        } else {
            self.policy.engine.get(&vm.info.name)
        };
        let mut view = VmView {
            name: &vm.info.name,
            wire_name: vm.wire_name,
            vcpus: &vm.info.vcpus,
            host_cpus: self.host_cpus,
            allow_query: vm.allow_query,
            has_policy: policy.is_some(),
            policy,
            channel_enabled: enabled,
            over_rate: false,
            rate_limit: 0,
            contested: self.shared.contested_of(vm_id),
        };
        // only requests take a token: a CONNECT or bytes out of frame
        // must not make the VM's next request over the rate
        if let Some(r) = vm.rate.as_mut() {
            if requests::counts_against_rate(&view, bytes) {
                view.over_rate = !r.admit(Instant::now());
                view.rate_limit = r.per_s();
            }
        }
        let mut facts = LoopFacts {
            host: &mut self.host,
            govs: &self.gov.govs,
        };
        // the verdict is used where it is (its reply and packet are
        // 464 bytes each: moving them out cost more than the request's
        // checks)
        let mut h = Handled::new();
        requests::handle_into(&view, &mut facts, bytes, &mut h);
        let what = h.what;
        if let Some(name) = h.foreign_name {
            self.name_ignored(id, vm_id, name);
        }
        if !matches!(h.verdict, Verdict::Unframed(_)) {
            self.in_frame(id);
        }
        match h.verdict {
            Verdict::Ignored => {}
            Verdict::Unframed(ref error) => {
                self.out_of_frame(id, vm_id, error);
                return ControlFlow::Break(());
            }
            Verdict::Refused {
                ref error,
                ref reply,
            } => {
                if matches!(error, RequestError::SharedCpu(_)) {
                    self.shared.count_refusal(vm_id);
                }
                if matches!(error, RequestError::RateLimited(_)) {
                    if let Some(v) = self.reg.get_mut(vm_id) {
                        v.rate_limited += 1;
                    }
                }
                self.tally_refused(vm_id, cmd, error);
                self.refused(id, vm_id, what, error, reply.as_ref())
            }
            Verdict::Accepted {
                ref mut action,
                ref reply,
                note,
            } => {
                if let Some(action) = action.take() {
                    if let Err(error) = self.act(vm_id, action, h.packet.as_ref()) {
                        let nack = requests::failure_nack(what, h.packet.as_ref());
                        self.tally_refused(vm_id, cmd, &error);
                        self.refused(id, vm_id, what, &error, nack.as_ref());
                        return self.still_connected(id);
                    }
                }
                self.count(id, vm_id, true);
                if let Some(v) = self.reg.get_mut(vm_id) {
                    v.tally.accepted(cmd);
                }
                if let Some(note) = note {
                    self.guest_log(id, Level::Info, &note.to_string());
                }
                if let Some(reply) = reply {
                    self.enqueue(id, reply.as_bytes());
                }
            }
        }
        self.still_connected(id)
    }

    /// Go on framing this channel's bytes?
    fn still_connected(&self, id: ChanId) -> ControlFlow<()> {
        if self.chans.get(id).is_some_and(|c| c.stream.is_some()) {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    }

    /// A packet in frame: after a streak of them, on a connection at least
    /// the longest retry delay old, the connection is healthy and a later
    /// hang-up or reset retries quickly again. (Without the age, a guest
    /// sending 64 CONNECTs before each frame out of frame had its channel
    /// reset and re-attached, and logged, some 50 times a second.)
    fn in_frame(&mut self, id: ChanId) {
        let (retry_min, healthy_after) = (self.cfg.retry_min, self.cfg.retry_max);
        if let Some(ch) = self.chans.get_mut(id) {
            ch.good = ch.good.saturating_add(1);
            if ch.good >= GOOD_STREAK
                && ch.backoff > retry_min
                && ch.since.elapsed() >= healthy_after
            {
                ch.backoff = retry_min;
            }
        }
    }

    /// The stream is out of frame: count it, log it once per window for
    /// the VM, reset the channel (close now, re-attach after its retry
    /// delay, which doubles while resets repeat).
    fn out_of_frame(&mut self, id: ChanId, vm: VmId, error: &RequestError) {
        let (window, now) = (self.cfg.log_window, Instant::now());
        let Some(ch) = self.chans.get_mut(id) else {
            return;
        };
        ch.stats.desyncs += 1;
        let (num, resets) = (ch.num, ch.stats.desyncs);
        let mut line = None;
        if let Some(v) = self.reg.get_mut(vm) {
            v.desyncs += 1;
            let (ok, suppressed) = v.desync_limit.check(now, 1, window);
            if ok {
                let more = if suppressed > 0 {
                    format!(" ({suppressed} more resets of this VM's channels since the last line)")
                } else {
                    String::new()
                };
                line = Some(format!(
                    "VM '{}' channel {num}: {error}; channel reset ({resets} so far){more}",
                    v.info.name
                ));
            }
        }
        if let Some(l) = line {
            self.log(Level::Warn, &l);
        }
        self.reset_channel(id, "reset: stream out of frame");
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
                if let Some(v) = self.reg.get_mut(vm) {
                    v.tally.wrote(self.arrival);
                }
                if let (Some(t), Some(p)) = (self.cfg.trace.as_mut(), packet) {
                    t(p);
                }
            }
            Action::StorePolicy(p) => {
                let spec = Spec::from_packet(&p).map_err(RequestError::BadPolicy)?;
                let name = self.reg.name(vm).to_string();
                self.install_policy(&name, spec)
                    .map_err(RequestError::PolicyRefused)?;
            }
            Action::RemovePolicy => {
                let name = self.reg.name(vm).to_string();
                self.drop_policy(&name, None);
            }
        }
        Ok(())
    }

    /// A request whose `vm_name` was ignored (`requests::check_vm_name`):
    /// counted on the VM; logged at debug level when the name is not the
    /// one last ignored, so that a guest repeating one name (DPDK's
    /// guest_cli sends `ubuntu2`) gives one line, not one per request.
    fn name_ignored(&mut self, id: ChanId, vm: VmId, name: ForeignName) {
        let Some(v) = self.reg.get_mut(vm) else {
            return;
        };
        v.names_ignored += 1;
        if v.last_ignored_name.replace(name) != Some(name) {
            let msg = format!(
                "vm_name '{name}' in a request ignored: requests on this channel are this VM's"
            );
            self.guest_log(id, Level::Debug, &msg);
        }
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
        reply: Option<&Reply>,
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

    /// Logs a guest-triggered event, rate-limited per VM (all its
    /// channels share one budget of lines).
    fn guest_log(&mut self, id: ChanId, level: Level, msg: &str) {
        let (burst, window) = (self.cfg.log_burst, self.cfg.log_window);
        let Some(ch) = self.chans.get(id) else {
            return;
        };
        let (vm, num) = (ch.vm, ch.num);
        let Some(v) = self.reg.get_mut(vm) else {
            return;
        };
        let (ok, suppressed) = v.log_limit.check(Instant::now(), burst, window);
        let name = v.info.name.clone();
        if suppressed > 0 {
            let m = format!("VM '{name}': {suppressed} similar messages suppressed");
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

    /// One wake-up of the loop with this event on the channel.
    fn wake(mon: &mut Monitor, id: ChanId, gen: u32, bits: u32) {
        mon.on_channel(id, gen, bits);
        mon.fair.begin();
        mon.serve_turns();
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
        wake(&mut mon, id, gen, sys::IN);
        guest.write_all(&bytes[300..]).expect("send");
        wake(&mut mon, id, gen, sys::IN);
        nack_of(&mut guest, &bad);
        nack_of(&mut guest, &fail);
        let ch = mon.chans.get(id).expect("chan");
        assert_eq!(
            (ch.stats.packets, ch.stats.refused, ch.stats.accepted),
            (2, 2, 0)
        );
        let vm = mon.reg.get(ch.vm).expect("vm");
        assert_eq!((vm.accepted, vm.refused), (0, 2));
        // the metrics: both scale_up, refused for their own rules; no
        // write returned, so no latency
        let reason = |r| tally::REASONS.iter().position(|x| *x == r).expect(r);
        assert_eq!(vm.tally.by_command[0], [0, 2], "scale_up");
        assert_eq!(vm.tally.refusals[reason("vcpu_out_of_range")], 1);
        assert_eq!(vm.tally.refusals[reason("scale_failed")], 1);
        assert_eq!(vm.tally.refusals.iter().sum::<u64>(), 2);
        assert_eq!(vm.tally.write_latency.count(), 0);
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
        wake(&mut mon, id, gen.wrapping_add(1), sys::IN);
        assert!(mon.chans.get(id).is_some_and(|c| c.stream.is_some()));
        drop(guest);
        wake(&mut mon, id, gen, sys::IN | sys::RDHUP);
        let ch = mon.chans.get(id).expect("chan");
        assert!(ch.stream.is_none());
        assert_eq!(ch.why, "QEMU closed the connection");
        assert!(!mon.chans.is_current(id, gen), "new generation");
    }

    #[test]
    fn in_frame_packets_on_a_young_connection_do_not_shorten_the_reset_delay() {
        // a channel reset before (its delay grew to 1 s); the guest sends
        // 64 CONNECTs, then a frame out of frame: the delay keeps doubling
        let (_tmp, mut mon, id, mut guest) = setup();
        mon.cfg.retry_max = Duration::from_secs(3600);
        mon.chans.get_mut(id).expect("chan").backoff = Duration::from_secs(1);
        let gen = mon.chans.gen(id);
        let mut bytes = Vec::new();
        for _ in 0..GOOD_STREAK {
            bytes.extend_from_slice(&ChannelPacket::connect().encode());
        }
        bytes.extend_from_slice(&[0u8; PACKET_SIZE]);
        guest.write_all(&bytes).expect("send");
        for _ in 0..10 {
            wake(&mut mon, id, gen, sys::IN);
        }
        let ch = mon.chans.get(id).expect("chan");
        assert!(ch.stream.is_none(), "reset");
        assert_eq!(ch.stats.desyncs, 1);
        assert_eq!(ch.backoff, Duration::from_secs(2), "doubled, not restarted");
    }

    #[test]
    fn policies_are_stored_and_removed_on_the_channels_vm() {
        let (_tmp, mut mon, id, mut guest) = setup();
        let gen = mon.chans.gen(id);
        let mut p = ChannelPacket::ZEROED;
        p.command = rte_power::wire::PKT_POLICY;
        p.policy_to_use = rte_power::wire::POLICY_WORKLOAD;
        p.num_vcpu = 1;
        guest.write_all(&p.encode()).expect("send");
        wake(&mut mon, id, gen, sys::IN);
        let mut r = [0u8; PACKET_SIZE];
        guest.read_exact(&mut r).expect("ACK");
        assert_eq!(r, p.reply(Response::Ack).encode());
        let vm = mon.chans.get(id).expect("chan").vm;
        let spec = mon.policy.engine.get("vm-a").map(|i| i.spec.packet);
        assert_eq!(spec, Some(p));
        assert!(mon.policy.armed(), "the engine ticks while a policy exists");
        let mut rm = ChannelPacket::ZEROED;
        rm.command = rte_power::wire::PKT_POLICY_REMOVE;
        guest.write_all(&rm.encode()).expect("send");
        wake(&mut mon, id, gen, sys::IN);
        assert!(mon.policy.engine.get("vm-a").is_none());
        assert!(!mon.policy.armed(), "no policy: no timer");
        assert_eq!(mon.reg.get(vm).map(|v| v.accepted), Some(2));
    }
}
