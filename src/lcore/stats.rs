//! The library's own P-state statistics, per frequency domain.
//!
//! The library's own P-state statistics: time at each table index and
//! transitions, booked on every change with two time stamps and relaxed
//! atomics, converted to ns when read.

use std::sync::atomic::Ordering::*;

use super::domain::Domain;
use super::*;

/// The library's own P-state statistics for one domain session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PstateStats {
    /// The frequency table (kHz), index 0 = highest.
    pub freqs_khz: Vec<u32>,
    /// Nanoseconds spent at each index since init (the current one included).
    pub residency_ns: Vec<u64>,
    /// Frequency changes since init.
    pub transitions: u64,
    /// Current index.
    pub current: u32,
    /// Nanoseconds since init.
    pub elapsed_ns: u64,
}

/// Times the statistics bookkeeping of `iters` changes on a scratch domain:
/// the library's own code, for the `stats_cost` benchmark.
#[doc(hidden)]
pub fn time_stats_bookkeeping(iters: u32) -> std::time::Duration {
    let s = Domain::new();
    s.reset_stats();
    let t = std::time::Instant::now();
    for i in 0..iters {
        s.account(std::hint::black_box(i % 16));
    }
    std::hint::black_box(s.transitions.load(Relaxed));
    t.elapsed()
}

impl Domain {
    /// Starts the statistics of a new session at the current index.
    pub(super) fn reset_stats(&self) {
        for r in &self.residency {
            r.store(0, Relaxed);
        }
        self.transitions.store(0, Relaxed);
        let now = crate::clock::ticks();
        self.started.store(now, Relaxed);
        self.started_ns.store(crate::clock::monotonic_ns(), Relaxed);
        self.since.store(now, Relaxed);
    }

    /// Books the time spent at `from` and counts a transition. Plain
    /// load/store pairs (no read-modify-write on the fast path): when two
    /// lcores of one domain change it at the same instant, one of the two
    /// bookings may be lost, which statistics can afford.
    #[inline]
    pub(super) fn account(&self, from: u32) {
        let now = crate::clock::ticks();
        let since = self.since.load(Relaxed);
        self.since.store(now, Relaxed);
        if let Some(r) = self.residency.get(from as usize) {
            r.store(r.load(Relaxed) + now.saturating_sub(since), Relaxed);
        }
        self.transitions
            .store(self.transitions.load(Relaxed) + 1, Relaxed);
    }
}

impl Lcore<'_> {
    /// P-state statistics of the lcore's frequency domain since its first
    /// init, kept by the library on every change: time at each table index
    /// and the number of transitions.
    pub fn stats(&self) -> Result<PstateStats> {
        self.host_only("P-state statistics")?;
        let s = self.dom();
        let n = s.len.load(Relaxed) as usize;
        let cur = s.index() as usize;
        let (now, now_ns) = (crate::clock::ticks(), crate::clock::monotonic_ns());
        let since = s.since.load(Relaxed);
        // ticks -> ns with this session's own measured rate
        let elapsed_ns = now_ns.saturating_sub(s.started_ns.load(Relaxed));
        let elapsed_ticks = now.saturating_sub(s.started.load(Relaxed)).max(1);
        let to_ns = |ticks: u64| {
            (u128::from(ticks) * u128::from(elapsed_ns) / u128::from(elapsed_ticks)) as u64
        };
        let residency_ns = (0..n)
            .map(|i| {
                let closed = s.residency[i].load(Relaxed);
                to_ns(if i == cur {
                    closed + now.saturating_sub(since)
                } else {
                    closed
                })
            })
            .collect();
        Ok(PstateStats {
            freqs_khz: self.freqs()?,
            residency_ns,
            transitions: s.transitions.load(Relaxed),
            current: cur as u32,
            elapsed_ns,
        })
    }
}
