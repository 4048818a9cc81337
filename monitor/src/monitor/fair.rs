//! Fair service across VMs: round-robin turns with a per-VM budget per wake-up, and rate limits.
//!
//! Each wake-up of the loop collects the channels epoll reports readable,
//! grouped by VM, then serves the VMs in turns: a turn reads at most
//! `quantum` packets from one channel of one VM; VMs take turns in order
//! (a VM's channels in turn too) until each has used its `budget` for this
//! wake-up or has nothing left. A VM whose budget runs out keeps its
//! unread bytes in the kernel: epoll is level-triggered, so its channels
//! are reported again at the next wake-up, after every other VM's turn.
//! So a VM flooding many channels delays a quiet VM by at most one turn
//! of each other VM, never by its backlog.

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

/// What a VM has this wake-up.
#[derive(Debug, Default)]
struct VmTurns {
    /// Readable channels not served yet, in order.
    ready: VecDeque<(ChanId, u32)>,
    /// Packets left in this wake-up's budget.
    left: usize,
    /// The wake-up `left` belongs to.
    wake: u64,
    /// In `order` (waiting for a turn)?
    queued: bool,
}

/// The turns of one wake-up.
#[derive(Debug)]
pub(crate) struct Fair {
    budget: usize,
    quantum: usize,
    wake: u64,
    vms: Vec<VmTurns>,
    order: VecDeque<usize>,
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

    /// A new wake-up: every VM's budget is whole again (lazily).
    pub fn begin(&mut self) {
        self.wake = self.wake.wrapping_add(1);
        for i in self.order.drain(..) {
            if let Some(v) = self.vms.get_mut(i) {
                v.ready.clear();
                v.queued = false;
            }
        }
    }

    /// Channel `chan` (generation `gen`) of `vm` is readable.
    pub fn ready(&mut self, vm: VmId, chan: ChanId, gen: u32) {
        if self.vms.len() <= vm.0 {
            self.vms.resize_with(vm.0 + 1, VmTurns::default);
        }
        let Some(v) = self.vms.get_mut(vm.0) else {
            return;
        };
        if v.wake != self.wake {
            v.wake = self.wake;
            v.left = self.budget;
            v.ready.clear();
        }
        if v.left == 0 {
            return;
        }
        v.ready.push_back((chan, gen));
        if !v.queued {
            v.queued = true;
            self.order.push_back(vm.0);
        }
    }

    /// The next turn, VMs in round-robin order.
    pub fn next(&mut self) -> Option<Turn> {
        while let Some(i) = self.order.pop_front() {
            let Some(v) = self.vms.get_mut(i) else {
                continue;
            };
            v.queued = false;
            let Some((chan, gen)) = v.ready.pop_front() else {
                continue;
            };
            return Some(Turn {
                vm: VmId(i),
                chan,
                gen,
                max: self.quantum.min(v.left).max(1),
            });
        }
        None
    }

    /// A turn is over: `served` packets handled, `more` if the channel may
    /// still hold some. Returns true when the VM's budget ran out with work
    /// left (it waits for the next wake-up).
    pub fn done(&mut self, turn: Turn, served: usize, more: bool) -> bool {
        let Some(v) = self.vms.get_mut(turn.vm.0) else {
            return false;
        };
        v.left = v.left.saturating_sub(served.max(1));
        if more {
            v.ready.push_back((turn.chan, turn.gen));
        }
        if v.ready.is_empty() {
            return false;
        }
        if v.left == 0 {
            v.ready.clear();
            return true;
        }
        if !v.queued {
            v.queued = true;
            self.order.push_back(turn.vm.0);
        }
        false
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
        f.begin();
        // VM 0 floods 8 channels with 64 packets each; VM 1 has one packet
        let mut backlog: Vec<_> = (0..8).map(|c| (0, c, 64)).collect();
        backlog.push((1, 100, 1));
        for &(v, c, _) in &backlog {
            f.ready(VmId(v), ChanId(c), 0);
        }
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
        for wake in 1..=3 {
            f.begin();
            for &(v, c, n) in &backlog.clone() {
                if n > 0 {
                    f.ready(VmId(v), ChanId(c), 0);
                }
            }
            let order = serve(&mut f, &mut backlog);
            // turns alternate between the two VMs
            let vms: Vec<usize> = order.iter().map(|(v, _)| *v).collect();
            assert!(vms.windows(2).take(4).all(|w| w[0] != w[1]), "{vms:?}");
            for (v, n) in order {
                total[v] += n;
            }
            assert_eq!(total[0], (10 * wake).min(25));
            assert_eq!(total[2], (10 * wake).min(25));
        }
    }

    #[test]
    fn a_channel_reported_twice_or_empty_costs_at_least_one() {
        let mut f = Fair::new(3, 3);
        f.begin();
        for _ in 0..5 {
            f.ready(VmId(0), ChanId(1), 7);
        }
        let mut turns = 0;
        while let Some(t) = f.next() {
            assert_eq!((t.chan, t.gen), (ChanId(1), 7));
            turns += 1;
            f.done(t, 0, false);
        }
        assert_eq!(turns, 3, "an empty read still spends budget");
        assert_eq!(f.next(), None);
        f.begin();
        assert_eq!(f.next(), None, "a new wake-up starts empty");
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
