//! Fair service across VMs: round-robin turns with a per-VM budget per wake-up, and rate limits.
//!
//! Channels are registered edge-triggered: epoll reports a channel when
//! bytes arrive, and the channel stays in its VM's queue here until a read
//! comes back short (its socket is then empty; the next bytes are a new
//! edge). Each wake-up of the loop serves the VMs with queued channels in
//! turns: a turn reads at most `quantum` packets from one channel of one
//! VM; VMs take turns in order (a VM's channels in turn too) until each
//! has used its `budget` for this wake-up or has nothing queued. A VM
//! whose budget runs out keeps its queue and goes after every other VM
//! at the next wake-up, which does not block while anything is queued.
//! So a VM flooding many channels delays a quiet VM by at most one budget,
//! never by its backlog, and a channel is read only when it has bytes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::registry::{ChanId, VmId};

/// One turn: read at most `max` packets from this channel of this VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Turn {
    /// The VM.
    pub vm: VmId,
    /// Its channel.
    pub chan: ChanId,
    /// The channel's generation when it was reported.
    pub gen: u32,
    /// Packets this turn may handle (at least 1).
    pub max: usize,
}

/// A VM's queue of channels with bytes to read.
#[derive(Debug, Default)]
struct VmTurns {
    /// Channels to read, in order.
    ready: VecDeque<(ChanId, u32)>,
    /// Packets left in the budget of wake-up `wake`.
    left: usize,
    /// The wake-up `left` belongs to.
    wake: u64,
    /// In `order` or `later`?
    listed: bool,
}

/// Every VM's queue and the order of their turns.
#[derive(Debug)]
pub(crate) struct Fair {
    budget: usize,
    quantum: usize,
    wake: u64,
    vms: Vec<VmTurns>,
    /// VMs with queued channels and budget, in turn order.
    order: VecDeque<usize>,
    /// VMs with queued channels whose budget ran out this wake-up.
    later: Vec<usize>,
    /// By channel slot: the generation + 1 it is queued under, 0 if not.
    queued: Vec<u64>,
}

impl Fair {
    /// `budget` packets per VM per wake-up, in turns of `quantum` (both at
    /// least 1).
    pub fn new(budget: usize, quantum: usize) -> Self {
        let budget = budget.max(1);
        Self {
            budget,
            quantum: quantum.clamp(1, budget),
            wake: 0,
            vms: Vec::new(),
            order: VecDeque::new(),
            later: Vec::new(),
            queued: Vec::new(),
        }
    }

    /// Packets per VM per wake-up.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Packets per turn.
    pub fn quantum(&self) -> usize {
        self.quantum
    }

    /// Is any channel queued (then the loop must not block)?
    pub fn has_work(&self) -> bool {
        !self.order.is_empty() || !self.later.is_empty()
    }

    /// A new wake-up: every budget is whole again (lazily); VMs that ran
    /// out last time go after the others, those reported by this
    /// wake-up's events included (call it after [`Fair::ready`]).
    pub fn begin(&mut self) {
        self.wake = self.wake.wrapping_add(1);
        self.order.extend(self.later.drain(..));
    }

    /// Channel `chan` (generation `gen`) of `vm` has bytes (or news) to
    /// read. A channel already queued is not queued twice.
    pub fn ready(&mut self, vm: VmId, chan: ChanId, gen: u32) {
        let mark = u64::from(gen) + 1;
        if self.queued.len() <= chan.0 {
            self.queued.resize(chan.0 + 1, 0);
        }
        if self.vms.len() <= vm.0 {
            self.vms.resize_with(vm.0 + 1, VmTurns::default);
        }
        let (Some(q), Some(v)) = (self.queued.get_mut(chan.0), self.vms.get_mut(vm.0)) else {
            return;
        };
        if *q == mark {
            return;
        }
        *q = mark;
        v.ready.push_back((chan, gen));
        if !v.listed {
            v.listed = true;
            self.order.push_back(vm.0);
        }
    }

    /// The next turn of this wake-up, VMs in round-robin order.
    pub fn next(&mut self) -> Option<Turn> {
        while let Some(i) = self.order.pop_front() {
            let Some(v) = self.vms.get_mut(i) else {
                continue;
            };
            if v.wake != self.wake {
                v.wake = self.wake;
                v.left = self.budget;
            }
            let Some(&(chan, gen)) = v.ready.front() else {
                v.listed = false;
                continue;
            };
            if v.left == 0 {
                self.later.push(i);
                continue;
            }
            v.ready.pop_front();
            v.listed = false;
            if let Some(q) = self.queued.get_mut(chan.0) {
                *q = 0;
            }
            return Some(Turn {
                vm: VmId(i),
                chan,
                gen,
                max: self.quantum.min(v.left),
            });
        }
        None
    }

    /// A turn is over: `served` packets handled, `more` if the channel may
    /// still hold some (it stays queued). Returns true when this turn
    /// spent the VM's budget with channels still queued.
    pub fn done(&mut self, turn: Turn, served: usize, more: bool) -> bool {
        if more {
            self.ready(turn.vm, turn.chan, turn.gen);
        }
        let Some(v) = self.vms.get_mut(turn.vm.0) else {
            return false;
        };
        v.left = v.left.saturating_sub(served.max(1));
        if v.ready.is_empty() {
            return false;
        }
        if !v.listed {
            v.listed = true;
            if v.left > 0 {
                self.order.push_back(turn.vm.0);
            } else {
                self.later.push(turn.vm.0);
            }
        }
        v.left == 0
    }
}

/// A VM's request-rate limit (`set_rate_limit`): a bucket of one second's
/// worth of requests that refills at the rate (GCRA: one timestamp, no
/// timer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReqRate {
    per_s: u32,
    interval: Duration,
    tau: Duration,
    tat: Option<Instant>,
}

impl ReqRate {
    /// `per_s` requests per second (at least 1), bursts up to `per_s`.
    pub fn new(per_s: u32) -> Self {
        let per_s = per_s.max(1);
        let interval = Duration::from_secs(1) / per_s;
        Self {
            per_s,
            interval,
            tau: Duration::from_secs(1).saturating_sub(interval),
            tat: None,
        }
    }

    /// The limit, requests/s.
    pub fn per_s(&self) -> u32 {
        self.per_s
    }

    /// Takes one request at `now`; false when over the limit (the request
    /// is refused and takes nothing).
    pub fn admit(&mut self, now: Instant) -> bool {
        let tat = self.tat.map_or(now, |t| t.max(now));
        if tat.saturating_duration_since(now) > self.tau {
            return false;
        }
        self.tat = Some(tat + self.interval);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves every turn; `backlog[(vm, chan)]` packets wait on each
    /// channel. Returns the order of (vm, packets) turns.
    fn serve(f: &mut Fair, backlog: &mut [(usize, usize, usize)]) -> Vec<(usize, usize)> {
        let mut got = Vec::new();
        while let Some(t) = f.next() {
            let b = backlog
                .iter_mut()
                .find(|(v, c, _)| *v == t.vm.0 && *c == t.chan.0)
                .expect("a reported channel");
            let n = b.2.min(t.max);
            b.2 -= n;
            got.push((t.vm.0, n));
            f.done(t, n, b.2 > 0);
        }
        got
    }

    #[test]
    fn a_quiet_vm_gets_its_turn_after_one_turn_of_the_flood() {
        let mut f = Fair::new(64, 16);
        // VM 0 floods 8 channels with 64 packets each; VM 1 has one packet
        let mut backlog: Vec<_> = (0..8).map(|c| (0, c, 64)).collect();
        backlog.push((1, 100, 1));
        for &(v, c, _) in &backlog {
            f.ready(VmId(v), ChanId(c), 0);
        }
        f.begin();
        let order = serve(&mut f, &mut backlog);
        assert_eq!(order[0], (0, 16));
        assert_eq!(order[1], (1, 1), "the quiet VM is second: {order:?}");
        // the flood got exactly its budget, spread over its channels
        let flood: usize = order.iter().filter(|(v, _)| *v == 0).map(|(_, n)| n).sum();
        assert_eq!(flood, 64);
        let left: Vec<usize> = backlog.iter().take(8).map(|b| b.2).collect();
        assert_eq!(left, [48, 48, 48, 48, 64, 64, 64, 64]);
    }

    #[test]
    fn budgets_are_per_vm_and_renewed_each_wake_up() {
        let mut f = Fair::new(10, 4);
        let mut backlog = vec![(0, 0, 25), (2, 5, 25)];
        let mut total = [0usize; 3];
        // reported once (edge-triggered): they stay queued until drained
        for &(v, c, _) in &backlog {
            f.ready(VmId(v), ChanId(c), 0);
        }
        for wake in 1..=3 {
            f.begin();
            let order = serve(&mut f, &mut backlog);
            // turns alternate between the two VMs
            let vms: Vec<usize> = order.iter().map(|(v, _)| *v).collect();
            assert!(vms.windows(2).take(4).all(|w| w[0] != w[1]), "{vms:?}");
            for (v, n) in order {
                total[v] += n;
            }
            assert_eq!(total[0], (10 * wake).min(25));
            assert_eq!(total[2], (10 * wake).min(25));
            assert_eq!(f.has_work(), wake < 3, "queued until drained");
        }
    }

    #[test]
    fn a_vm_over_budget_goes_after_the_others_next_time() {
        let mut f = Fair::new(4, 4);
        f.ready(VmId(0), ChanId(0), 0);
        f.begin();
        let t = f.next().expect("turn");
        assert!(f.done(t, 4, true), "budget spent with bytes left");
        assert_eq!(f.next(), None, "nothing more this wake-up");
        // a quiet VM arrives: it is served before the flood's next turn
        f.ready(VmId(1), ChanId(1), 0);
        f.begin();
        assert_eq!(f.next().map(|t| t.vm), Some(VmId(1)));
    }

    #[test]
    fn a_channel_reported_twice_is_queued_once() {
        let mut f = Fair::new(3, 3);
        f.begin();
        for _ in 0..5 {
            f.ready(VmId(0), ChanId(1), 7);
        }
        let t = f.next().expect("one turn: queued once");
        assert_eq!((t.chan, t.gen), (ChanId(1), 7));
        f.done(t, 0, false);
        assert_eq!(f.next(), None);
        assert!(!f.has_work());
        // another generation of the slot is another stream
        f.ready(VmId(0), ChanId(1), 8);
        f.ready(VmId(0), ChanId(1), 7);
        let mut n = 0;
        while let Some(t) = f.next() {
            n += 1;
            f.done(t, 0, false);
        }
        assert_eq!(n, 2);
        f.begin();
        assert_eq!(f.next(), None, "a new wake-up has nothing queued");
    }

    #[test]
    fn rate_limit_allows_a_second_of_burst_then_the_rate() {
        let mut r = ReqRate::new(100);
        let t0 = Instant::now();
        let ok = (0..150).filter(|_| r.admit(t0)).count();
        assert_eq!(ok, 100, "one second's worth at once");
        assert!(!r.admit(t0 + Duration::from_millis(5)));
        assert!(r.admit(t0 + Duration::from_millis(11)), "refilled");
        // offered 1000/s: the refilled burst goes first, then 100/s
        let mut ok = [0usize; 3];
        for ms in 0..3000u64 {
            let t = t0 + Duration::from_millis(1000 + ms);
            ok[(ms / 1000) as usize] += usize::from(r.admit(t));
        }
        assert!((195..=201).contains(&ok[0]), "{ok:?}");
        assert!(
            (99..=101).contains(&ok[1]) && (99..=101).contains(&ok[2]),
            "{ok:?}"
        );
        assert_eq!(ReqRate::new(0).per_s(), 1);
    }
}
