//! The process-wide singletons of the C API.
//!
//! The process-wide instances the C API works on: the static lcore table,
//! the power context, PMD management, empty poll and uncore. Only the C
//! layer holds singletons; the core takes its context as an argument.

use std::ffi::c_uint;
use std::sync::{Arc, OnceLock};

use crate::empty_poll::EmptyPoll;
use crate::error::Result;
use crate::lcore::{slot_in, Domain, Domains, Lcore, Slot, Slots, MAX_DOMAINS, MAX_LCORE};
use crate::pmd_mgmt::{DpdkEth, PmdMgmt};
use crate::sysfs::SysfsRoot;
use crate::uncore::Uncore;
use crate::{Config, Power};

/// The lcore table of the C API's context: a plain static array (`.bss`),
/// so that a C call reaches its slot with no pointer chasing and without
/// building the context.
static SLOTS: Slots = [const { Slot::new() }; MAX_LCORE as usize];
/// The frequency domains the lcores of [`SLOTS`] attach to.
static DOMAINS: Domains = [const { Domain::new() }; MAX_DOMAINS];

static POWER: OnceLock<Power> = OnceLock::new();
static PMD_MGMT: OnceLock<PmdMgmt> = OnceLock::new();
static EMPTY_POLL: OnceLock<EmptyPoll> = OnceLock::new();
static UNCORE: OnceLock<Uncore> = OnceLock::new();
/// The process that armed the exit hook.
static HOOK_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The C API's power context ([`Config::from_env`], the static lcore
/// table), made at the first use.
#[inline]
pub fn power() -> &'static Power {
    POWER.get_or_init(|| {
        arm_exit_hook();
        Power::with_static_table(Config::from_env(), &SLOTS, &DOMAINS)
    })
}

/// Registers [`restore_at_exit`] once. `atexit` from a shared object is
/// bound to that object: the hook runs at process exit, or when the
/// library is unloaded (`dlclose`) if that comes first, never after.
fn arm_exit_hook() {
    static ARMED: std::sync::Once = std::sync::Once::new();
    ARMED.call_once(|| {
        HOOK_PID.store(std::process::id(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: registers a plain `extern "C" fn()` that never unwinds.
        if unsafe { libc::atexit(restore_at_exit) } != 0 {
            crate::log!(
                crate::log::Level::Warn,
                "cannot register the exit hook: lcores not exited by the application stay changed"
            );
        }
    });
}

/// At process exit (return from `main`, `exit()`, `rte_exit()`): every
/// host lcore and uncore die the application left initialised is exited,
/// so its CPU is restored and its journal record removed. Threads still
/// running reach /dev/null (see `Domain::uninstall`).
///
/// Only in the process that armed it: a `fork()`ed child that calls
/// `exit()` shares the parent's lcore table but not its CPUs, and must not
/// restore them (nor remove the parent's journal records) under a parent
/// that still runs.
extern "C" fn restore_at_exit() {
    if HOOK_PID.load(std::sync::atomic::Ordering::Relaxed) != std::process::id() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        if let Some(p) = POWER.get() {
            for l in 0..MAX_LCORE {
                if p.lcore(l).is_ok_and(|lc| !lc.is_guest()) {
                    crate::log!(
                        crate::log::Level::Warn,
                        "lcore {l} still initialised at process exit: restoring its CPU"
                    );
                    let _ = p.exit(l);
                }
            }
        }
        if let Some(u) = UNCORE.get() {
            let _ = u.exit_all();
        }
    });
}

/// A handle on an lcore of the C API's context whose state the operation
/// checks: the C entry points' fast path (one load of the slot's state).
#[inline]
pub(crate) fn lcore(lcore: c_uint) -> Result<Lcore<'static>> {
    Ok(Lcore::unchecked(slot_in(&SLOTS, lcore)?, &DOMAINS, lcore))
}

/// [`lcore`] without an error value: `None` beyond the table.
#[inline]
pub(crate) fn lcore_opt(lcore: c_uint) -> Option<Lcore<'static>> {
    SLOTS
        .get(lcore as usize)
        .map(|slot| Lcore::unchecked(slot, &DOMAINS, lcore))
}

/// PMD management of the C API: DPDK's ethdev found in the process, on
/// [`power`].
pub fn pmd_mgmt() -> &'static PmdMgmt {
    PMD_MGMT.get_or_init(|| match DpdkEth::resolve() {
        Ok(eth) => PmdMgmt::new(power(), Arc::new(eth)),
        Err(missing) => PmdMgmt::without_ethdev(power(), missing),
    })
}

/// The empty-poll detector of the C API, on [`power`].
pub fn empty_poll() -> &'static EmptyPoll {
    EMPTY_POLL.get_or_init(|| EmptyPoll::new(power()))
}

/// The uncore of the C API (`RTE_POWER_SYSFS_CPU_DIR` or the real tree).
pub fn uncore() -> &'static Uncore {
    UNCORE.get_or_init(|| {
        // an application may use the uncore API alone: its dies are
        // restored at exit too
        arm_exit_hook();
        Uncore::new(&SysfsRoot::from_env())
    })
}
