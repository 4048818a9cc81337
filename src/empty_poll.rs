//! The empty-poll detector of DPDK 22.11's empty-poll API.
//!
//! DPDK 22.11's empty-poll API (`rte_power_empty_poll.h`, removed in
//! 23.11): workers count their empty and non-empty polls, a timer on the
//! main lcore (every 10 ms, [`INTERVALS_PER_SECOND`]) turns the counts into
//! "empty dequeues per interval" (edpi) and moves each worker between a
//! medium and a high frequency.
//!
//! The state lives where DPDK keeps it, in the application-visible
//! `struct ep_params` (the `#[repr(C)]` mirrors below have the layout
//! measured against the 22.11 headers), so an application reading it sees
//! what DPDK would show.
//!
//! State machine per worker lcore, as DPDK's:
//! - `TRAINING`: 1 s of warm-up, then for LOW, MED and HGH in turn: set the
//!   level's frequency, sum the edpi over `max_train_iter` (200) intervals,
//!   and keep the mean plus 0.05 % as the level's base edpi; then MED_NORMAL.
//! - `MED_NORMAL` / `HGH_BUSY`: busy percentage = 100 − mean edpi of the last
//!   4 intervals / base edpi × 100. Above 70 % for more than 100 intervals in
//!   a row → HGH_BUSY (frequency index `freq_tlb[HGH]`); below 30 % for more
//!   than 100 intervals → MED_NORMAL (`freq_tlb[MED]`). An interval with more
//!   empty polls than the base is ignored.
//! - `LOW_PURGE`: nothing (DPDK never implemented it).
//!
//! Differences from DPDK: only the worker lcores set up at init (enabled,
//! not the main lcore) are driven — DPDK also runs the training on every
//! unused slot, whose zeroed `lcore_id` makes it change lcore 0's
//! frequency; every index of `freq_tlb` must be inside each lcore's table
//! (DPDK checks LOW only, and off by one); the counters are -1 instead of a
//! crash before init or after free; a policy state outside the enum is
//! refused.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::{addr_of, addr_of_mut, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::*};
use std::sync::{Mutex, MutexGuard};

use crate::log::Level;
use crate::Power;

/// DPDK's `NUM_FREQS` (= `RTE_MAX_LCORE_FREQS`).
pub const NUM_FREQS: usize = 64;
/// DPDK's `BINS_AV`: intervals in the moving average.
pub const BINS_AV: usize = 4;
/// DPDK's `NUM_NODES`: worker slots (lcores 0..255).
pub const NUM_NODES: usize = 256;
/// Detection intervals per second (the app's timer period is 10 ms).
pub const INTERVALS_PER_SECOND: u32 = 100;
/// Training intervals per frequency level (2 s).
pub const TRAIN_ITERATIONS: u32 = 2 * INTERVALS_PER_SECOND;
/// MED → HGH above this busy percentage.
pub const MED_TO_HIGH_PERCENT: u32 = 70;
/// HGH → MED below this busy percentage.
pub const HIGH_TO_MED_PERCENT: u32 = 30;
/// DPDK's default `freq_tlb`: table indexes of LOW, MED, HGH.
pub const DEFAULT_FREQ_TLB: [u8; 3] = [14, 9, 1];

/// `enum freq_val`.
pub const LOW: u32 = 0;
/// `enum freq_val`.
pub const MED: u32 = 1;
/// `enum freq_val`.
pub const HGH: u32 = 2;

/// `enum queue_state`.
pub const TRAINING: u32 = 0;
/// `enum queue_state`.
pub const MED_NORMAL: u32 = 1;
/// `enum queue_state`.
pub const HGH_BUSY: u32 = 2;
/// `enum queue_state`.
pub const LOW_PURGE: u32 = 3;

/// `struct freq_threshold` (24 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct FreqThreshold {
    /// Trained empty dequeues per interval at this level.
    pub base_edpi: u64,
    /// C `bool` (kept as a byte: the application owns the memory).
    pub trained: u8,
    /// Threshold percentage of this level.
    pub threshold_percent: u32,
    /// Training intervals done.
    pub cur_train_iter: u32,
}

/// `struct priority_worker` (1664 bytes, cache-line aligned).
#[repr(C, align(64))]
#[derive(Debug)]
#[allow(missing_docs)] // DPDK's field names
pub struct PriorityWorker {
    pub empty_dequeues: u64,
    pub num_dequeue_pkts: u64,
    pub queue_state: u32,
    pub empty_dequeues_prev: u64,
    pub thresh: [FreqThreshold; NUM_FREQS],
    pub cur_freq: u32,
    pub edpi_av: [u64; BINS_AV],
    pub ec: u32,
    pub lcore_id: u32,
    pub iter_counter: u32,
    pub threshold_ctr: u32,
    pub display_ctr: u32,
    pub dev_id: u8,
}

/// `struct stats_data`.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct StatsData {
    pub wrk_stats: [PriorityWorker; NUM_NODES],
    pub start_rx: u8,
}

/// `struct ep_params` (426240 bytes): allocated by stat_init, freed by
/// stat_free; `timer0` is DPDK's `struct rte_timer` (120 bytes), which the
/// application arms.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct EpParams {
    pub interval_ticks: u64,
    pub max_train_iter: u32,
    pub timer0: [u64; 15],
    pub wrk_data: StatsData,
}

/// `struct ep_policy`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(missing_docs)]
pub struct EpPolicy {
    pub med_base_edpi: u64,
    pub hgh_base_edpi: u64,
    pub state: u32,
}

// the layouts measured against DPDK 22.11.11's headers (x86_64)
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<FreqThreshold>() == 24);
    assert!(offset_of!(FreqThreshold, trained) == 8);
    assert!(offset_of!(FreqThreshold, threshold_percent) == 12);
    assert!(offset_of!(FreqThreshold, cur_train_iter) == 16);
    assert!(size_of::<PriorityWorker>() == 1664 && align_of::<PriorityWorker>() == 64);
    assert!(offset_of!(PriorityWorker, queue_state) == 16);
    assert!(offset_of!(PriorityWorker, empty_dequeues_prev) == 24);
    assert!(offset_of!(PriorityWorker, thresh) == 32);
    assert!(offset_of!(PriorityWorker, cur_freq) == 1568);
    assert!(offset_of!(PriorityWorker, edpi_av) == 1576);
    assert!(offset_of!(PriorityWorker, ec) == 1608);
    assert!(offset_of!(PriorityWorker, lcore_id) == 1612);
    assert!(offset_of!(PriorityWorker, iter_counter) == 1616);
    assert!(offset_of!(PriorityWorker, threshold_ctr) == 1620);
    assert!(offset_of!(PriorityWorker, display_ctr) == 1624);
    assert!(offset_of!(PriorityWorker, dev_id) == 1628);
    assert!(size_of::<StatsData>() == 426048);
    assert!(offset_of!(StatsData, start_rx) == 425984);
    assert!(size_of::<EpParams>() == 426240 && align_of::<EpParams>() == 64);
    assert!(offset_of!(EpParams, max_train_iter) == 8);
    assert!(offset_of!(EpParams, timer0) == 16);
    assert!(offset_of!(EpParams, wrk_data) == 192);
    assert!(size_of::<EpPolicy>() == 24 && offset_of!(EpPolicy, state) == 16);
};

/// Errors of stat_init.
#[derive(Debug, thiserror::Error)]
pub enum EpError {
    /// `freq_tlb` points outside an lcore's table.
    #[error("lcore {lcore}: empty-poll frequency index {index} is outside its table of {len}")]
    Index {
        /// Lcore id.
        lcore: u32,
        /// The index.
        index: u32,
        /// Table length.
        len: u32,
    },
    /// An lcore has no frequency table (not initialised).
    #[error("lcore {lcore}: {source}")]
    Lcore {
        /// Lcore id.
        lcore: u32,
        /// Why.
        #[source]
        source: crate::PowerError,
    },
    /// A policy state that is not one of `enum queue_state`.
    #[error("empty-poll policy state {0} is not a queue state")]
    Policy(u32),
    /// The allocation failed.
    #[error("cannot allocate struct ep_params")]
    NoMemory,
}

/// Which lcores exist: EAL's view in a DPDK process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LcoreView {
    /// Enabled lcores below [`NUM_NODES`].
    pub enabled: Vec<u32>,
    /// The main lcore (runs the timer, is not a worker).
    pub main: Option<u32>,
}

impl LcoreView {
    /// EAL's lcores when the process has EAL; otherwise the lcores that are
    /// initialised in `power`, without a main lcore.
    pub fn detect(power: &Power) -> LcoreView {
        let d = crate::dpdk_sym::Dpdk::get();
        if d.lcore_is_enabled.is_some() {
            return LcoreView {
                enabled: (0..NUM_NODES as u32)
                    .filter(|l| d.lcore_enabled(*l) == Some(true))
                    .collect(),
                main: d.main_lcore(),
            };
        }
        LcoreView {
            enabled: (0..NUM_NODES as u32)
                .filter(|l| power.lcore(*l).is_ok())
                .collect(),
            main: None,
        }
    }
}

/// The `ep_params` allocation (zeroed, as DPDK's `rte_zmalloc`).
#[derive(Debug)]
struct Params(NonNull<EpParams>);

// SAFETY: the pointer is only dereferenced through the field accessors
// below, which use atomics for the fields workers write concurrently.
unsafe impl Send for Params {}

impl Params {
    fn alloc() -> Option<Params> {
        // SAFETY: EpParams has a non-zero size.
        let p = unsafe { alloc_zeroed(Layout::new::<EpParams>()) };
        NonNull::new(p.cast()).map(Params)
    }
}

impl Drop for Params {
    fn drop(&mut self) {
        // SAFETY: allocated in `alloc` with this layout, freed once.
        unsafe { dealloc(self.0.as_ptr().cast(), Layout::new::<EpParams>()) }
    }
}

/// One worker slot of an `ep_params`. Workers touch only the two counters
/// (atomically); everything else is written by the detection alone.
#[derive(Clone, Copy)]
struct Slot(*mut PriorityWorker);

macro_rules! field {
    ($get:ident, $set:ident, $f:ident, $t:ty) => {
        fn $get(self) -> $t {
            // SAFETY: the slot points into a live ep_params (see `Slot`).
            unsafe { addr_of!((*self.0).$f).read() }
        }
        fn $set(self, v: $t) {
            // SAFETY: as above; only the detection writes this field.
            unsafe { addr_of_mut!((*self.0).$f).write(v) }
        }
    };
}

impl Slot {
    fn of(p: NonNull<EpParams>, lcore: usize) -> Slot {
        // SAFETY: lcore < NUM_NODES (callers check); in bounds of the array.
        Slot(unsafe { addr_of_mut!((*p.as_ptr()).wrk_data.wrk_stats[lcore]) })
    }

    fn counter(&self, pkts: bool) -> &AtomicU64 {
        // SAFETY: the field is an aligned u64 inside a live ep_params;
        // every access by this library to it is atomic.
        unsafe {
            if pkts {
                AtomicU64::from_ptr(addr_of_mut!((*self.0).num_dequeue_pkts))
            } else {
                AtomicU64::from_ptr(addr_of_mut!((*self.0).empty_dequeues))
            }
        }
    }

    field!(state, set_state_raw, queue_state, u32);
    field!(prev, set_prev, empty_dequeues_prev, u64);
    field!(cur_freq, set_cur_freq, cur_freq, u32);
    field!(ec, set_ec, ec, u32);
    field!(lcore_id, set_lcore_id, lcore_id, u32);
    field!(iter_counter, set_iter_counter, iter_counter, u32);
    field!(threshold_ctr, set_threshold_ctr, threshold_ctr, u32);

    fn thresh(self, level: u32) -> Option<*mut FreqThreshold> {
        ((level as usize) < NUM_FREQS).then(|| {
            // SAFETY: in bounds (checked), live ep_params.
            unsafe { addr_of_mut!((*self.0).thresh[level as usize]) }
        })
    }

    fn get_thresh(self, level: u32) -> FreqThreshold {
        // SAFETY: a valid pointer from `thresh`.
        self.thresh(level)
            .map(|t| unsafe { t.read() })
            .unwrap_or_default()
    }

    fn update_thresh(self, level: u32, f: impl FnOnce(&mut FreqThreshold)) {
        if let Some(t) = self.thresh(level) {
            // SAFETY: valid pointer; only the detection touches thresholds.
            let mut v = unsafe { t.read() };
            f(&mut v);
            // SAFETY: as above.
            unsafe { t.write(v) };
        }
    }

    fn clear_average(self) {
        // SAFETY: live ep_params; only the detection touches these.
        unsafe { addr_of_mut!((*self.0).edpi_av).write([0; BINS_AV]) };
        self.set_ec(0);
    }

    fn push_average(self, v: u64) -> u64 {
        let ec = self.ec();
        self.set_ec(ec.wrapping_add(1));
        // SAFETY: as in clear_average.
        let av = unsafe { &mut *addr_of_mut!((*self.0).edpi_av) };
        av[ec as usize % BINS_AV] = v;
        av.iter().sum::<u64>() / BINS_AV as u64
    }
}

#[derive(Debug)]
struct Session {
    params: Params,
    freq_index: [u32; 3],
    workers: Vec<u32>,
}

/// The empty-poll detector of one [`Power`].
#[derive(Debug)]
pub struct EmptyPoll {
    power: &'static Power,
    hot: AtomicPtr<EpParams>,
    session: Mutex<Option<Session>>,
}

impl EmptyPoll {
    /// A detector that changes frequencies through `power`.
    pub fn new(power: &'static Power) -> EmptyPoll {
        EmptyPoll {
            power,
            hot: AtomicPtr::new(std::ptr::null_mut()),
            session: Mutex::new(None),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Session>> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `rte_power_empty_poll_stat_init`: allocates `ep_params`, checks the
    /// frequency indexes against every enabled lcore's table and applies
    /// `policy` to the workers. The pointer stays valid until
    /// [`stat_free`](Self::stat_free). A second init starts a new session
    /// (the previous `ep_params` is not freed, as in DPDK).
    pub fn stat_init(
        &self,
        freq_tlb: Option<[u8; 3]>,
        policy: &EpPolicy,
        lcores: &LcoreView,
    ) -> Result<NonNull<EpParams>, EpError> {
        if policy.state > LOW_PURGE {
            return Err(EpError::Policy(policy.state));
        }
        let freq_index = freq_tlb.unwrap_or(DEFAULT_FREQ_TLB).map(u32::from);
        let workers: Vec<u32> = lcores
            .enabled
            .iter()
            .copied()
            .filter(|l| (*l as usize) < NUM_NODES)
            .collect();
        for &l in &workers {
            let len = self
                .power
                .lcore(l)
                .and_then(|h| h.num_freqs())
                .map_err(|source| EpError::Lcore { lcore: l, source })?;
            if let Some(&index) = freq_index.iter().find(|i| **i >= len) {
                return Err(EpError::Index {
                    lcore: l,
                    index,
                    len,
                });
            }
        }
        let workers: Vec<u32> = workers
            .into_iter()
            .filter(|l| Some(*l) != lcores.main)
            .collect();
        let params = Params::alloc().ok_or(EpError::NoMemory)?;
        let p = params.0;
        // SAFETY: freshly allocated, not shared yet.
        unsafe { addr_of_mut!((*p.as_ptr()).max_train_iter).write(TRAIN_ITERATIONS) };
        let session = Session {
            params,
            freq_index,
            workers,
        };
        for &l in &session.workers {
            let s = Slot::of(p, l as usize);
            s.set_lcore_id(l);
            if policy.state != TRAINING {
                self.enter(&session, s, policy.state);
                s.update_thresh(MED, |t| {
                    t.base_edpi = policy.med_base_edpi;
                    t.trained = 1;
                });
                s.update_thresh(HGH, |t| {
                    t.base_edpi = policy.hgh_base_edpi;
                    t.trained = 1;
                });
            }
        }
        crate::log!(
            Level::Info,
            "empty poll: workers {:?}, frequency indexes {:?}",
            session.workers,
            session.freq_index
        );
        let mut g = self.lock();
        if let Some(old) = g.take() {
            crate::log!(
                Level::Warn,
                "empty poll: initialised twice; the first ep_params is kept allocated"
            );
            std::mem::forget(old.params);
        }
        *g = Some(session);
        self.hot.store(p.as_ptr(), Release);
        Ok(p)
    }

    /// `rte_power_empty_poll_stat_free`: frees `ep_params`. The workers must
    /// have stopped counting (as in DPDK).
    pub fn stat_free(&self) {
        let mut g = self.lock();
        self.hot.store(std::ptr::null_mut(), Release);
        *g = None;
    }

    fn slot(&self, lcore: u32) -> Option<Slot> {
        let p = NonNull::new(self.hot.load(Acquire))?;
        ((lcore as usize) < NUM_NODES).then(|| Slot::of(p, lcore as usize))
    }

    /// One empty poll on `lcore` (`rte_power_empty_poll_stat_update`).
    #[inline]
    pub fn count_empty(&self, lcore: u32) -> Option<()> {
        let c = self.slot(lcore)?;
        let c = c.counter(false);
        c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
        Some(())
    }

    /// `nb` packets received on `lcore` (`rte_power_poll_stat_update`).
    #[inline]
    pub fn count_packets(&self, lcore: u32, nb: u8) -> Option<()> {
        let c = self.slot(lcore)?;
        let c = c.counter(true);
        c.store(c.load(Relaxed).wrapping_add(u64::from(nb)), Relaxed);
        Some(())
    }

    /// Empty polls counted on `lcore`.
    pub fn empty_count(&self, lcore: u32) -> Option<u64> {
        Some(self.slot(lcore)?.counter(false).load(Relaxed))
    }

    /// Packets counted on `lcore`.
    pub fn packet_count(&self, lcore: u32) -> Option<u64> {
        Some(self.slot(lcore)?.counter(true).load(Relaxed))
    }

    /// (queue state, current level) of a worker.
    pub fn worker_state(&self, lcore: u32) -> Option<(u32, u32)> {
        let s = self.slot(lcore)?;
        Some((s.state(), s.cur_freq()))
    }

    /// A worker's threshold data for `level`.
    pub fn threshold(&self, lcore: u32, level: u32) -> Option<FreqThreshold> {
        Some(self.slot(lcore)?.get_thresh(level))
    }

    fn set_level(&self, session: &Session, s: Slot, level: u32) {
        let Some(&index) = session.freq_index.get(level as usize) else {
            return;
        };
        let lcore = s.lcore_id();
        if let Err(e) = self.power.lcore(lcore).and_then(|l| l.set_index(index)) {
            crate::log!(Level::Debug, "empty poll: lcore {lcore}: {e}");
        }
    }

    /// DPDK's state entry actions.
    fn enter(&self, session: &Session, s: Slot, state: u32) {
        if s.state() == state {
            return;
        }
        match state {
            TRAINING => {
                s.set_iter_counter(0);
                s.set_cur_freq(LOW);
            }
            MED_NORMAL | HGH_BUSY => {
                let level = if state == MED_NORMAL { MED } else { HGH };
                s.clear_average();
                s.set_cur_freq(level);
                s.set_iter_counter(0);
                s.set_threshold_ctr(0);
                s.set_state_raw(state);
                self.set_level(session, s, level);
                if state == MED_NORMAL {
                    s.update_thresh(MED, |t| t.threshold_percent = MED_TO_HIGH_PERCENT);
                    s.update_thresh(HGH, |t| t.threshold_percent = HIGH_TO_MED_PERCENT);
                }
                return;
            }
            LOW_PURGE => s.set_iter_counter(0),
            _ => return,
        }
        s.set_state_raw(state);
    }

    fn train_level(&self, session: &Session, s: Slot, level: u32, max_iter: u32) {
        let t = s.get_thresh(level);
        if s.cur_freq() != level || t.trained != 0 {
            return;
        }
        let empty = s.counter(false).load(Relaxed);
        if t.cur_train_iter == 0 {
            self.set_level(session, s, level);
            s.set_prev(empty);
            s.update_thresh(level, |t| t.cur_train_iter = 1);
        } else if t.cur_train_iter <= max_iter {
            let delta = empty.wrapping_sub(s.prev());
            s.set_prev(empty);
            s.update_thresh(level, |t| {
                t.base_edpi = t.base_edpi.wrapping_add(delta);
                t.cur_train_iter += 1;
            });
        } else {
            s.update_thresh(level, |t| {
                t.base_edpi /= u64::from(max_iter.max(1));
                // +0.05 %: no false "busy" on an idle system
                t.base_edpi += t.base_edpi / 2000;
                t.trained = 1;
            });
            s.set_cur_freq(level + 1);
        }
    }

    fn training(&self, session: &Session, s: Slot, max_iter: u32) {
        if s.iter_counter() < INTERVALS_PER_SECOND {
            s.set_iter_counter(s.iter_counter() + 1);
            return;
        }
        for level in [LOW, MED, HGH] {
            self.train_level(session, s, level, max_iter);
        }
        if [LOW, MED, HGH]
            .iter()
            .all(|l| s.get_thresh(*l).trained != 0)
        {
            self.enter(session, s, MED_NORMAL);
            crate::log!(
                Level::Info,
                "empty poll: lcore {} trained (base edpi LOW {} MED {} HGH {})",
                s.lcore_id(),
                s.get_thresh(LOW).base_edpi,
                s.get_thresh(MED).base_edpi,
                s.get_thresh(HGH).base_edpi
            );
        }
    }

    /// Busy percentage of the last intervals, `None` when this interval does
    /// not count (more empty polls than the base).
    fn busy_percent(s: Slot) -> Option<u32> {
        let empty = s.counter(false).load(Relaxed);
        let cur = empty.wrapping_sub(s.prev());
        s.set_prev(empty);
        let base = s.get_thresh(s.cur_freq()).base_edpi;
        if base < cur {
            return None;
        }
        let avg = s.push_average(cur);
        // in f32 as DPDK computes it
        let idle = ((avg as f32 / base as f32) * 100.0) as u32;
        let busy = 100u32.wrapping_sub(idle);
        (busy <= 100).then_some(busy)
    }

    fn normal(&self, session: &Session, s: Slot) {
        let level = s.cur_freq();
        if s.get_thresh(level).base_edpi == 0 {
            return;
        }
        let Some(busy) = Self::busy_percent(s) else {
            return;
        };
        let limit = s.get_thresh(level).threshold_percent;
        let (over, next) = match level {
            MED => (busy > limit, HGH_BUSY),
            HGH => (busy < limit, MED_NORMAL),
            _ => return,
        };
        if !over {
            s.set_threshold_ctr(0);
        } else if s.threshold_ctr() < INTERVALS_PER_SECOND {
            s.set_threshold_ctr(s.threshold_ctr() + 1);
        } else {
            self.enter(session, s, next);
            crate::log!(
                Level::Info,
                "empty poll: lcore {} -> {}",
                s.lcore_id(),
                if next == HGH_BUSY { "HGH" } else { "MED" }
            );
        }
    }

    /// One detection interval (`rte_empty_poll_detection`, the app's 10 ms
    /// timer callback on the main lcore).
    pub fn detect(&self) {
        let g = self.lock();
        let Some(session) = g.as_ref() else {
            return;
        };
        let p = session.params.0;
        // SAFETY: live ep_params; the app may have changed it, so read it.
        let max_iter = unsafe { addr_of!((*p.as_ptr()).max_train_iter).read() };
        for &l in &session.workers {
            let s = Slot::of(p, l as usize);
            match s.state() {
                TRAINING => self.training(session, s, max_iter),
                MED_NORMAL | HGH_BUSY => self.normal(session, s),
                _ => {}
            }
        }
    }
}
