//! The ethdev adapter: [`EthDev`] over DPDK in the process.
//!
//! The ethdev adapter: [`EthDev`] over DPDK's ethdev and EAL functions
//! found in the process ([`crate::dpdk_sym`]), and the Rx callback that
//! DPDK calls after every burst on a managed queue.
//!
//! # ABI assumptions
//!
//! - `struct rte_eth_rxq_info` is filled by `rte_eth_rx_queue_info_get`;
//!   we pass a 1 KiB, 64-byte aligned buffer (the struct is 128 bytes in
//!   22.11) and read only `queue_state`, at offset 89 as measured against
//!   the 22.11 headers. For an EAL whose `rte_version()` is not 22.11 the
//!   offset is not trusted: the queue-state check is skipped (logged once),
//!   as DPDK itself does for drivers that cannot report it.
//! - `struct rte_power_monitor_cond` (56 bytes, align 8 in 22.11) is only
//!   filled by `rte_eth_get_monitor_addr` and handed back to
//!   `rte_power_monitor`/`rte_power_monitor_multi`; we never look inside.
//!   The multi-queue call needs an array, so the 56-byte stride is assumed.
//! - `struct rte_cpu_intrinsics` is a 32-bit word of bit-fields: bit 0
//!   `power_monitor`, bit 1 `power_pause`, bit 2 `power_monitor_multi`.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::{CallbackId, EthDev, Intrinsics, QueueEntry};
use crate::dpdk_sym::{Dpdk, RxCallbackFn};
use crate::log::Level;

/// Size of `struct rte_power_monitor_cond` (22.11, x86_64).
pub const MONITOR_COND_SIZE: usize = 56;
/// Offset of `queue_state` in `struct rte_eth_rxq_info` (22.11, x86_64).
pub const RXQ_INFO_QUEUE_STATE_OFFSET: usize = 89;
/// DPDK's `RTE_ETH_QUEUE_STATE_STOPPED`.
pub const QUEUE_STATE_STOPPED: u8 = 0;
/// Most queues one lcore can monitor at once here.
pub const MAX_MONITORED: usize = 32;

/// The ethdev/EAL side of PMD power management in a DPDK process.
pub struct DpdkEth {
    valid_port: unsafe extern "C" fn(u16) -> c_int,
    add_cb: unsafe extern "C" fn(u16, u16, RxCallbackFn, *mut c_void) -> *const c_void,
    remove_cb: unsafe extern "C" fn(u16, u16, *const c_void) -> c_int,
    queue_info: unsafe extern "C" fn(u16, u16, *mut c_void) -> c_int,
    monitor_addr: Option<unsafe extern "C" fn(u16, u16, *mut c_void) -> c_int>,
    monitor: Option<unsafe extern "C" fn(*const c_void, u64) -> c_int>,
    monitor_multi: Option<unsafe extern "C" fn(*const c_void, u32, u64) -> c_int>,
    pause: Option<unsafe extern "C" fn(u64) -> c_int>,
    intrinsics: Option<unsafe extern "C" fn(*mut u32)>,
    /// Whether `queue_state` can be read (the EAL is 22.11).
    queue_state_known: bool,
    tsc_per_us: u64,
    pause_per_us: OnceLock<u64>,
}

impl std::fmt::Debug for DpdkEth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpdkEth")
            .field("queue_state_known", &self.queue_state_known)
            .field("tsc_per_us", &self.tsc_per_us)
            .finish_non_exhaustive()
    }
}

/// Buffer for `struct rte_eth_rxq_info` (128 bytes in 22.11; room for growth).
#[repr(C, align(64))]
struct RxqInfoBuf([u8; 1024]);

/// One `struct rte_power_monitor_cond`, opaque.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct MonitorCond([u8; MONITOR_COND_SIZE]);

/// The DPDK functions PMD power management needs that the process lacks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join(", "))]
pub struct MissingSymbols(pub Vec<&'static str>);

impl DpdkEth {
    /// The process's ethdev, or the names of the functions that are missing.
    pub fn resolve() -> Result<DpdkEth, MissingSymbols> {
        let d = Dpdk::get();
        let (Some(valid_port), Some(add_cb), Some(remove_cb), Some(queue_info)) = (
            d.eth_dev_is_valid_port,
            d.eth_add_rx_callback,
            d.eth_remove_rx_callback,
            d.eth_rx_queue_info_get,
        ) else {
            let want = [
                "rte_eth_dev_is_valid_port",
                "rte_eth_add_rx_callback",
                "rte_eth_remove_rx_callback",
                "rte_eth_rx_queue_info_get",
            ];
            let missing = d.missing();
            let names = want.into_iter().filter(|n| missing.contains(n)).collect();
            return Err(MissingSymbols(names));
        };
        let version = d.version();
        let queue_state_known = version == Some((22, 11));
        if !queue_state_known {
            crate::log!(
                Level::Info,
                "PMD power management: EAL {:?} is not 22.11; queue states are not checked",
                d.version_string()
            );
        }
        // SAFETY: rte_get_tsc_hz only reads EAL's calibrated value.
        let hz = d.get_tsc_hz.map_or(0, |f| unsafe { f() });
        Ok(DpdkEth {
            valid_port,
            add_cb,
            remove_cb,
            queue_info,
            monitor_addr: d.eth_get_monitor_addr,
            monitor: d.power_monitor,
            monitor_multi: d.power_monitor_multi,
            pause: d.power_pause,
            intrinsics: d.cpu_get_intrinsics_support,
            queue_state_known,
            tsc_per_us: hz / 1_000_000,
            pause_per_us: OnceLock::new(),
        })
    }

    /// `spin_loop()` calls per microsecond, measured once.
    fn pauses_per_us(&self) -> u64 {
        *self.pause_per_us.get_or_init(|| {
            const N: u32 = 10_000;
            let t = Instant::now();
            for _ in 0..N {
                std::hint::spin_loop();
            }
            let ns = t.elapsed().as_nanos().max(1) as u64;
            (u64::from(N) * 1000 / ns).max(1)
        })
    }
}

/// The Rx callback DPDK calls after every `rte_eth_rx_burst` on a managed
/// queue: counts, and sleeps/pauses/scales as the queue's mode says.
unsafe extern "C" fn rx_callback(
    _port: u16,
    _queue: u16,
    _pkts: *mut *mut c_void,
    nb_rx: u16,
    _max_pkts: u16,
    arg: *mut c_void,
) -> u16 {
    // SAFETY: `arg` is the `QueueEntry` registered with this callback; the
    // library keeps every registered entry alive for the rest of the process.
    let entry = unsafe { &*(arg as *const QueueEntry) };
    // nothing may unwind into DPDK
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| entry.on_poll(nb_rx)));
    nb_rx
}

static WARNED_MULTI: AtomicBool = AtomicBool::new(false);

impl EthDev for DpdkEth {
    fn port_valid(&self, port: u16) -> bool {
        // SAFETY: rte_eth_dev_is_valid_port accepts any port id.
        unsafe { (self.valid_port)(port) != 0 }
    }

    fn rx_queue_stopped(&self, port: u16, queue: u16) -> Result<bool, i32> {
        let mut buf = RxqInfoBuf([0xa5; 1024]);
        // SAFETY: `buf` is larger than and as aligned as struct
        // rte_eth_rxq_info of any DPDK version; the call writes at most
        // sizeof(struct rte_eth_rxq_info) bytes into it.
        let r = unsafe { (self.queue_info)(port, queue, buf.0.as_mut_ptr().cast()) };
        if r < 0 {
            return Err(r);
        }
        if !self.queue_state_known {
            return Ok(true);
        }
        Ok(buf.0[RXQ_INFO_QUEUE_STATE_OFFSET] == QUEUE_STATE_STOPPED)
    }

    fn intrinsics(&self) -> Intrinsics {
        let mut word = 0u32;
        if let Some(f) = self.intrinsics {
            // SAFETY: the struct is one 32-bit word of bit-fields.
            unsafe { f(&mut word) };
        }
        Intrinsics {
            monitor: word & 1 != 0 && self.monitor.is_some(),
            pause: word & 2 != 0 && self.pause.is_some(),
            monitor_multi: word & 4 != 0 && self.monitor_multi.is_some(),
        }
    }

    fn monitor_supported(&self, port: u16, queue: u16) -> bool {
        let Some(f) = self.monitor_addr else {
            return false;
        };
        let mut pmc = MonitorCond([0; MONITOR_COND_SIZE]);
        // SAFETY: `pmc` has the size and alignment of the C struct.
        unsafe { f(port, queue, pmc.0.as_mut_ptr().cast()) != -libc::ENOTSUP }
    }

    fn add_rx_callback(&self, entry: &Arc<QueueEntry>) -> Result<CallbackId, i32> {
        let arg = Arc::as_ptr(entry) as *mut c_void;
        // SAFETY: `rx_callback` has the rte_rx_callback_fn signature; `arg`
        // stays valid for the life of the process (the caller keeps the
        // entry forever).
        let cb = unsafe { (self.add_cb)(entry.port(), entry.queue(), rx_callback, arg) };
        if cb.is_null() {
            // rte_errno is thread-local in EAL; its usual value here
            return Err(-libc::EINVAL);
        }
        Ok(CallbackId(cb as usize))
    }

    fn remove_rx_callback(&self, port: u16, queue: u16, id: CallbackId) -> Result<(), i32> {
        // SAFETY: `id` is the pointer rte_eth_add_rx_callback returned for
        // this port and queue. The record is not freed: a poll still running
        // on another lcore may be reading it (a few dozen bytes per disable).
        let r = unsafe { (self.remove_cb)(port, queue, id.0 as *const c_void) };
        if r < 0 {
            Err(r)
        } else {
            Ok(())
        }
    }

    fn monitor(&self, queues: &[(u16, u16)], multi: bool) {
        let Some(addr) = self.monitor_addr else {
            return;
        };
        if !multi {
            let (Some(wait), Some(&(port, queue))) = (self.monitor, queues.first()) else {
                return;
            };
            let mut pmc = MonitorCond([0; MONITOR_COND_SIZE]);
            // SAFETY: `pmc` has the C struct's size and alignment; it is
            // filled by ethdev and handed back unchanged.
            unsafe {
                if addr(port, queue, pmc.0.as_mut_ptr().cast()) == 0 {
                    wait(pmc.0.as_ptr().cast(), u64::MAX);
                }
            }
            return;
        }
        let Some(wait) = self.monitor_multi else {
            return;
        };
        if queues.len() > MAX_MONITORED {
            if !WARNED_MULTI.swap(true, Relaxed) {
                crate::log!(
                    Level::Warn,
                    "PMD power management: more than {MAX_MONITORED} queues on one lcore; not sleeping"
                );
            }
            return;
        }
        let mut pmc = [MonitorCond([0; MONITOR_COND_SIZE]); MAX_MONITORED];
        for (slot, &(port, queue)) in pmc.iter_mut().zip(queues) {
            // SAFETY: as above, one C struct per slot.
            if unsafe { addr(port, queue, slot.0.as_mut_ptr().cast()) } < 0 {
                return;
            }
        }
        // SAFETY: `pmc` is an array of `queues.len()` filled C structs with
        // the C stride (MonitorCond is exactly MONITOR_COND_SIZE bytes).
        unsafe { wait(pmc.as_ptr().cast(), queues.len() as u32, u64::MAX) };
    }

    fn pause(&self, us: u32) {
        if let (Some(p), true) = (self.pause, self.intrinsics().pause && self.tsc_per_us > 0) {
            let deadline = crate::clock::ticks().saturating_add(self.tsc_per_us * u64::from(us));
            // SAFETY: rte_power_pause takes any TSC deadline.
            unsafe { p(deadline) };
            return;
        }
        for _ in 0..self.pauses_per_us() * u64::from(us) {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_ethdev_in_a_test_binary() {
        let e = DpdkEth::resolve().expect_err("no ethdev here");
        assert!(e.0.contains(&"rte_eth_add_rx_callback"), "{e}");
    }

    #[test]
    fn monitor_cond_has_the_c_stride() {
        assert_eq!(std::mem::size_of::<MonitorCond>(), MONITOR_COND_SIZE);
        assert_eq!(
            std::mem::size_of::<[MonitorCond; 2]>(),
            2 * MONITOR_COND_SIZE
        );
        assert_eq!(std::mem::align_of::<RxqInfoBuf>(), 64);
    }
}
