//! PMD power management: queue enable/disable and the Rx callback policy.
//!
//! PMD power management (DPDK's `rte_power_pmd_mgmt.h`): the per-queue
//! enable/disable that hooks an Rx callback into DPDK's ethdev to sleep
//! (MONITOR), pause (PAUSE) or lower the lcore's frequency (SCALE) when a
//! polling loop keeps finding its queues empty. The tunables it reads
//! ([`crate::PmdConfig`]) belong to the power context, which the
//! intel_pstate driver also reads them from at init.
//!
//! The library does not link DPDK: the ethdev/EAL functions are found in the
//! process at run time ([`crate::dpdk_sym`]) and reach this module through
//! the [`EthDev`] trait ([`DpdkEth`], in `ethdev.rs`), which tests implement
//! with a fake device. Rules, as DPDK's
//! `rte_power_pmd_mgmt.c`:
//!
//! - enable/disable need the queue, and every queue already managed on the
//!   lcore, to be stopped (`-EBUSY`); a driver that cannot report a queue's
//!   state counts as stopped;
//! - all queues of an lcore share one mode (`-EINVAL` otherwise); a queue is
//!   added once (`-EEXIST`); disabling an unknown queue is `-ENOENT`;
//! - MONITOR needs the CPU's monitor intrinsics (several queues: the
//!   multi-monitor one) and the driver's monitor address (`-ENOTSUP`);
//! - SCALE initialises the lcore with `rte_power_init` on its first queue
//!   (`-EINVAL` if that fails, e.g. the app initialised it already) and puts
//!   it back to its highest frequency and exits it with its last queue.
//!
//! Differences from DPDK (documented in `docs/api-coverage.md`): SCALE also
//! works in the KVM guest env (requests go to the host); the SCALE callback
//! asks for max/min only when the state changes, not on every poll; a
//! failed `rte_eth_add_rx_callback` is reported and rolled back; queue
//! entries and ethdev's callback records are never freed (a late poll on a
//! queue that was not stopped cannot touch freed memory).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::env::Env;
use crate::error::Result;
use crate::lcore::MAX_LCORE;
use crate::log::Level;
use crate::Power;

mod ethdev;
pub use ethdev::{
    DpdkEth, MissingSymbols, MAX_MONITORED, MONITOR_COND_SIZE, QUEUE_STATE_STOPPED,
    RXQ_INFO_QUEUE_STATE_OFFSET,
};

/// DPDK's `RTE_MAX_QUEUES_PER_PORT` (default build).
pub const MAX_QUEUES_PER_PORT: u16 = 1024;

/// DPDK's `enum rte_power_pmd_mgmt_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum PmdMode {
    /// Sleep on the Rx ring's monitor address (UMWAIT).
    Monitor = 1,
    /// Pause (TPAUSE, or a calibrated spin) after enough empty polls.
    Pause = 2,
    /// Lowest frequency after enough empty polls, highest on traffic.
    Scale = 3,
}

impl PmdMode {
    /// From DPDK's value.
    pub fn from_raw(v: u32) -> Option<PmdMode> {
        [Self::Monitor, Self::Pause, Self::Scale]
            .into_iter()
            .find(|m| *m as u32 == v)
    }
}

/// Why enable/disable refused. The C API returns DPDK's negative errno
/// for each ([`crate::capi::errors::pmd_errno`]).
#[derive(Debug, thiserror::Error)]
pub enum PmdError {
    /// Bad port, queue, lcore or mode, or a queue whose info cannot be read.
    #[error("{0}")]
    Invalid(String),
    /// A queue of the call is not stopped.
    #[error("port {port} queue {queue} is not stopped")]
    Busy {
        /// Port id.
        port: u16,
        /// Queue id.
        queue: u16,
    },
    /// The queue is managed already.
    #[error("lcore {lcore}: port {port} queue {queue} is already managed")]
    Exists {
        /// Lcore id.
        lcore: u32,
        /// Port id.
        port: u16,
        /// Queue id.
        queue: u16,
    },
    /// The queue is not managed on this lcore.
    #[error("lcore {lcore}: port {port} queue {queue} is not managed")]
    NotFound {
        /// Lcore id.
        lcore: u32,
        /// Port id.
        port: u16,
        /// Queue id.
        queue: u16,
    },
    /// Missing ethdev, CPU or driver support.
    #[error("{0}")]
    NotSupported(String),
}

/// The CPU's power intrinsics as DPDK's EAL reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Intrinsics {
    /// `rte_power_monitor` works (WAITPKG).
    pub monitor: bool,
    /// `rte_power_pause` works (WAITPKG).
    pub pause: bool,
    /// `rte_power_monitor_multi` works (WAITPKG + RTM).
    pub monitor_multi: bool,
}

/// An Rx callback registration, as ethdev returned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackId(pub usize);

/// What PMD management needs from DPDK's ethdev and EAL.
pub trait EthDev: Send + Sync {
    /// `rte_eth_dev_is_valid_port`.
    fn port_valid(&self, port: u16) -> bool;
    /// `Ok(true)` stopped, `Ok(false)` started, `Err(negative errno)` from
    /// `rte_eth_rx_queue_info_get`.
    fn rx_queue_stopped(&self, port: u16, queue: u16) -> Result<bool, i32>;
    /// `rte_cpu_get_intrinsics_support`.
    fn intrinsics(&self) -> Intrinsics;
    /// Does the driver give monitor addresses (`rte_eth_get_monitor_addr`)?
    fn monitor_supported(&self, port: u16, queue: u16) -> bool;
    /// Registers `entry`'s Rx callback (`rte_eth_add_rx_callback`); the
    /// entry stays alive for the rest of the process.
    fn add_rx_callback(&self, entry: &Arc<QueueEntry>) -> Result<CallbackId, i32>;
    /// `rte_eth_remove_rx_callback`.
    fn remove_rx_callback(&self, port: u16, queue: u16, id: CallbackId) -> Result<(), i32>;
    /// Sleeps until one of `queues` gets a packet (`rte_power_monitor`, or
    /// `rte_power_monitor_multi` when `multi`).
    fn monitor(&self, queues: &[(u16, u16)], multi: bool);
    /// Pauses about `us` microseconds.
    fn pause(&self, us: u32);
}

const SCALED_UNKNOWN: u8 = 0;
const SCALED_MAX: u8 = 1;
const SCALED_MIN: u8 = 2;

/// Per-lcore counters the Rx callbacks share. Written by the lcore's own
/// polling thread only (and by enable/disable while its queues are
/// stopped): relaxed loads and stores, no read-modify-write.
#[derive(Debug, Default)]
struct LcoreHot {
    n_queues: AtomicU64,
    ready_to_sleep: AtomicU64,
    sleep_target: AtomicU64,
    scaled: AtomicU8,
    /// The lcore's queues, for the multi-queue monitor.
    queues: Mutex<Vec<(u16, u16)>>,
}

/// One managed Rx queue: the argument of its Rx callback.
pub struct QueueEntry {
    lcore: u32,
    port: u16,
    queue: u16,
    mode: PmdMode,
    multi_monitor: bool,
    empty_polls: AtomicU64,
    n_sleeps: AtomicU64,
    hot: Arc<LcoreHot>,
    power: &'static Power,
    eth: Arc<dyn EthDev>,
}

impl std::fmt::Debug for QueueEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueEntry")
            .field("lcore", &self.lcore)
            .field("port", &self.port)
            .field("queue", &self.queue)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn bump(a: &AtomicU64) -> u64 {
    let v = a.load(Relaxed).wrapping_add(1);
    a.store(v, Relaxed);
    v
}

impl QueueEntry {
    /// The lcore that polls the queue.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Port id.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Queue id.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The mode.
    pub fn mode(&self) -> PmdMode {
        self.mode
    }

    /// Empty polls in a row.
    pub fn empty_polls(&self) -> u64 {
        self.empty_polls.load(Relaxed)
    }

    /// A poll with packets: this queue is no longer ready to sleep.
    fn reset(&self) {
        let was_ready = self.n_sleeps.load(Relaxed) == self.hot.sleep_target.load(Relaxed);
        self.empty_polls.store(0, Relaxed);
        self.n_sleeps.store(0, Relaxed);
        if was_ready {
            let r = self.hot.ready_to_sleep.load(Relaxed);
            self.hot.ready_to_sleep.store(r.wrapping_sub(1), Relaxed);
        }
    }

    /// An empty poll: may this queue sleep (past `emptypoll_max`)?
    fn queue_can_sleep(&self) -> bool {
        if bump(&self.empty_polls) <= u64::from(self.power.pmd().emptypoll_max()) {
            return false;
        }
        let target = self.hot.sleep_target.load(Relaxed);
        if self.n_sleeps.load(Relaxed) == target {
            return true;
        }
        self.n_sleeps.store(target, Relaxed);
        bump(&self.hot.ready_to_sleep);
        true
    }

    /// Are all queues of the lcore ready to sleep? Starts a new round if so.
    fn lcore_can_sleep(&self) -> bool {
        let h = &self.hot;
        if h.ready_to_sleep.load(Relaxed) != h.n_queues.load(Relaxed) {
            return false;
        }
        h.ready_to_sleep.store(0, Relaxed);
        bump(&h.sleep_target);
        true
    }

    fn scale(&self, want: u8) {
        if self.hot.scaled.load(Relaxed) == want {
            return;
        }
        self.hot.scaled.store(want, Relaxed);
        let r = self.power.lcore(self.lcore).and_then(|l| {
            if want == SCALED_MAX {
                l.max()
            } else {
                l.min()
            }
        });
        if let Err(e) = r {
            crate::log!(Level::Debug, "PMD power management: {e}");
        }
    }

    /// What the Rx callback does after a poll that returned `nb_rx` packets.
    pub fn on_poll(&self, nb_rx: u16) {
        if self.mode == PmdMode::Monitor && !self.multi_monitor {
            // one queue per lcore: no lcore-wide bookkeeping
            if nb_rx != 0 {
                self.empty_polls.store(0, Relaxed);
            } else if bump(&self.empty_polls) > u64::from(self.power.pmd().emptypoll_max()) {
                self.eth.monitor(&[(self.port, self.queue)], false);
            }
            return;
        }
        if nb_rx != 0 {
            self.reset();
            if self.mode == PmdMode::Scale {
                self.scale(SCALED_MAX);
            }
            return;
        }
        if !self.queue_can_sleep() || !self.lcore_can_sleep() {
            return;
        }
        match self.mode {
            PmdMode::Scale => self.scale(SCALED_MIN),
            PmdMode::Pause => self.eth.pause(self.power.pmd().pause_duration()),
            PmdMode::Monitor => {
                let queues = self
                    .hot
                    .queues
                    .lock()
                    .map(|q| q.clone())
                    .unwrap_or_default();
                self.eth.monitor(&queues, true);
            }
        }
    }
}

#[derive(Debug)]
struct Managed {
    entry: Arc<QueueEntry>,
    cb: CallbackId,
}

#[derive(Debug)]
struct LcoreCtl {
    mode: PmdMode,
    hot: Arc<LcoreHot>,
    queues: Vec<Managed>,
}

#[derive(Debug, Default)]
struct State {
    lcores: BTreeMap<u32, LcoreCtl>,
    /// Entries of disabled queues: kept, a late poll may still use them.
    retired: Vec<Arc<QueueEntry>>,
}

/// Queue enable/disable for one [`Power`] and one ethdev.
pub struct PmdMgmt {
    power: &'static Power,
    eth: std::result::Result<Arc<dyn EthDev>, MissingSymbols>,
    state: Mutex<State>,
}

impl std::fmt::Debug for PmdMgmt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PmdMgmt")
            .field("ethdev", &self.eth.as_ref().map(|_| "found"))
            .finish_non_exhaustive()
    }
}

impl PmdMgmt {
    /// Management over `eth` (tests: a fake device).
    pub fn new(power: &'static Power, eth: Arc<dyn EthDev>) -> PmdMgmt {
        PmdMgmt {
            power,
            eth: Ok(eth),
            state: Mutex::new(State::default()),
        }
    }

    /// Management without an ethdev: every call is `-ENOTSUP`; `missing`
    /// names the functions that were not found.
    pub fn without_ethdev(power: &'static Power, missing: MissingSymbols) -> PmdMgmt {
        PmdMgmt {
            power,
            eth: Err(missing),
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn eth(&self) -> std::result::Result<&Arc<dyn EthDev>, PmdError> {
        self.eth.as_ref().map_err(|missing| {
            PmdError::NotSupported(format!(
                "PMD power management needs DPDK's ethdev in the process; not found: {missing}"
            ))
        })
    }

    fn check_ids(&self, lcore: u32, port: u16, queue: u16) -> std::result::Result<(), PmdError> {
        let eth = self.eth()?;
        if !eth.port_valid(port) {
            return Err(PmdError::Invalid(format!("invalid port {port}")));
        }
        if queue >= MAX_QUEUES_PER_PORT || lcore >= MAX_LCORE {
            return Err(PmdError::Invalid(format!(
                "lcore {lcore} / queue {queue} out of range"
            )));
        }
        Ok(())
    }

    /// DPDK's "is the queue stopped" with its error mapping.
    fn stopped(&self, port: u16, queue: u16) -> std::result::Result<(), PmdError> {
        match self.eth()?.rx_queue_stopped(port, queue) {
            Ok(true) => Ok(()),
            Err(e) if e == -libc::ENOTSUP => Ok(()),
            Ok(false) => Err(PmdError::Busy { port, queue }),
            Err(e) => Err(PmdError::Invalid(format!(
                "port {port} queue {queue}: queue info: error {e}"
            ))),
        }
    }

    fn all_stopped(&self, ctl: Option<&LcoreCtl>) -> std::result::Result<(), PmdError> {
        for m in ctl.map(|c| c.queues.as_slice()).unwrap_or_default() {
            self.stopped(m.entry.port, m.entry.queue)?;
        }
        Ok(())
    }

    /// SCALE on an lcore's first queue: a cpufreq (or KVM guest) env must be
    /// there, and the lcore must initialise.
    fn start_scaling(&self, lcore: u32) -> std::result::Result<(), PmdError> {
        if !Env::ALL
            .into_iter()
            .any(|e| self.power.check_env_supported(e))
        {
            return Err(PmdError::NotSupported(
                "SCALE mode needs a cpufreq driver (or a KVM guest channel)".into(),
            ));
        }
        self.power
            .init(lcore)
            .map(|_| ())
            .map_err(|e| PmdError::Invalid(format!("SCALE mode: rte_power_init: {e}")))
    }

    /// `rte_power_ethdev_pmgmt_queue_enable`.
    pub fn enable(
        &self,
        lcore: u32,
        port: u16,
        queue: u16,
        mode: PmdMode,
    ) -> std::result::Result<(), PmdError> {
        self.enable_raw(lcore, port, queue, mode as u32)
    }

    /// [`enable`](Self::enable) with DPDK's numeric mode, checked where
    /// DPDK checks it (after the port, queue and lcore checks).
    pub fn enable_raw(
        &self,
        lcore: u32,
        port: u16,
        queue: u16,
        raw_mode: u32,
    ) -> std::result::Result<(), PmdError> {
        self.check_ids(lcore, port, queue)?;
        let eth = Arc::clone(self.eth()?);
        let mut st = self.lock();
        self.stopped(port, queue)?;
        self.all_stopped(st.lcores.get(&lcore))?;
        let existing = st.lcores.get(&lcore);
        if let Some(ctl) = existing {
            if ctl.mode as u32 != raw_mode {
                return Err(PmdError::Invalid(format!(
                    "lcore {lcore} manages its queues in {:?} mode, not mode {raw_mode}",
                    ctl.mode
                )));
            }
        }
        let mode = PmdMode::from_raw(raw_mode).ok_or_else(|| {
            PmdError::Invalid(format!("invalid PMD power management mode {raw_mode}"))
        })?;
        let n_before = existing.map_or(0, |c| c.queues.len());
        let intr = eth.intrinsics();
        let mut started_scaling = false;
        match mode {
            PmdMode::Monitor => {
                if !intr.monitor {
                    return Err(PmdError::NotSupported(
                        "MONITOR mode: the CPU has no monitor intrinsics (WAITPKG)".into(),
                    ));
                }
                if n_before > 0 && !intr.monitor_multi {
                    return Err(PmdError::NotSupported(
                        "MONITOR mode: several queues on one lcore need the multi-monitor intrinsics".into(),
                    ));
                }
                if !eth.monitor_supported(port, queue) {
                    return Err(PmdError::NotSupported(format!(
                        "MONITOR mode: port {port} has no monitor address (rte_eth_get_monitor_addr)"
                    )));
                }
            }
            PmdMode::Scale if n_before == 0 => {
                self.start_scaling(lcore)?;
                started_scaling = true;
            }
            PmdMode::Scale | PmdMode::Pause => {}
        }
        if existing.is_some_and(|c| {
            c.queues
                .iter()
                .any(|m| (m.entry.port, m.entry.queue) == (port, queue))
        }) {
            return Err(PmdError::Exists { lcore, port, queue });
        }
        let hot = existing.map_or_else(
            || {
                Arc::new(LcoreHot {
                    sleep_target: AtomicU64::new(1),
                    scaled: AtomicU8::new(SCALED_UNKNOWN),
                    ..LcoreHot::default()
                })
            },
            |c| Arc::clone(&c.hot),
        );
        let entry = Arc::new(QueueEntry {
            lcore,
            port,
            queue,
            mode,
            multi_monitor: mode == PmdMode::Monitor && intr.monitor_multi,
            empty_polls: AtomicU64::new(0),
            n_sleeps: AtomicU64::new(0),
            hot: Arc::clone(&hot),
            power: self.power,
            eth: Arc::clone(&eth),
        });
        // count the queue before its callback can run
        hot.n_queues.store(n_before as u64 + 1, Relaxed);
        if let Ok(mut q) = hot.queues.lock() {
            q.push((port, queue));
        }
        let cb = match eth.add_rx_callback(&entry) {
            Ok(cb) => cb,
            Err(e) => {
                hot.n_queues.store(n_before as u64, Relaxed);
                if let Ok(mut q) = hot.queues.lock() {
                    q.retain(|x| *x != (port, queue));
                }
                if started_scaling {
                    let _ = self.power.exit(lcore);
                }
                st.retired.push(entry);
                return Err(PmdError::Invalid(format!(
                    "port {port} queue {queue}: rte_eth_add_rx_callback failed ({e})"
                )));
            }
        };
        st.lcores
            .entry(lcore)
            .or_insert_with(|| LcoreCtl {
                mode,
                hot,
                queues: Vec::new(),
            })
            .queues
            .push(Managed { entry, cb });
        crate::log!(
            Level::Info,
            "lcore {lcore}: port {port} queue {queue} power-managed ({mode:?})"
        );
        Ok(())
    }

    /// `rte_power_ethdev_pmgmt_queue_disable`.
    pub fn disable(&self, lcore: u32, port: u16, queue: u16) -> std::result::Result<(), PmdError> {
        self.check_ids(lcore, port, queue)?;
        let eth = Arc::clone(self.eth()?);
        let mut st = self.lock();
        self.stopped(port, queue)?;
        self.all_stopped(st.lcores.get(&lcore))?;
        let Some(ctl) = st.lcores.get_mut(&lcore) else {
            return Err(PmdError::Invalid(format!(
                "lcore {lcore} has no power-managed queue"
            )));
        };
        let Some(pos) = ctl
            .queues
            .iter()
            .position(|m| (m.entry.port, m.entry.queue) == (port, queue))
        else {
            return Err(PmdError::NotFound { lcore, port, queue });
        };
        let m = ctl.queues.remove(pos);
        if let Err(e) = eth.remove_rx_callback(port, queue, m.cb) {
            crate::log!(
                Level::Warn,
                "port {port} queue {queue}: rte_eth_remove_rx_callback: {e}"
            );
        }
        ctl.hot.n_queues.store(ctl.queues.len() as u64, Relaxed);
        if let Ok(mut q) = ctl.hot.queues.lock() {
            q.retain(|x| *x != (port, queue));
        }
        let mode = ctl.mode;
        let last = ctl.queues.is_empty();
        if last {
            st.lcores.remove(&lcore);
        }
        st.retired.push(m.entry);
        drop(st);
        if last && mode == PmdMode::Scale {
            let max = self.power.lcore(lcore).and_then(|l| l.max());
            for e in [max.err(), self.power.exit(lcore).err()]
                .into_iter()
                .flatten()
            {
                crate::log!(Level::Warn, "lcore {lcore}: leaving SCALE mode: {e}");
            }
        }
        Ok(())
    }

    /// The mode and queues managed on `lcore`.
    pub fn queues(&self, lcore: u32) -> Option<(PmdMode, Vec<(u16, u16)>)> {
        self.lock().lcores.get(&lcore).map(|c| {
            (
                c.mode,
                c.queues
                    .iter()
                    .map(|m| (m.entry.port, m.entry.queue))
                    .collect(),
            )
        })
    }
}
