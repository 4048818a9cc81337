//! One lcore's slot, the table of slots and domains, attach and detach.
//!
//! One lcore's slot and the table of them: the state word the fast path
//! loads first, the lcore's domain (host) or port (guest), and the claim
//! that owns a slot while it changes. The frequency state itself lives in
//! the lcore's domain (`domain.rs`).

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering::*};
use std::sync::Mutex;

use super::domain::{retire, Domain, Domains, MAX_DOMAINS};
use super::*;
use crate::sysfs::raw_fd;

/// What a guest init opened and exit must undo; only touched by the slot owner.
#[derive(Debug)]
struct Owned {
    port: std::fs::File,
}

/// One lcore's state. See the module comment for the concurrency rules. A
/// host lcore's frequency state is its domain's (`dom`), shared with the
/// other lcores of the same cpufreq policy; a guest lcore has its own port.
pub(crate) struct Slot {
    pub(super) state: AtomicU32,
    pub(super) env: AtomicU32,
    pub(super) cpu: AtomicU32,
    /// Host: index of the lcore's domain in the table's domains.
    pub(super) dom: AtomicU32,
    /// Guest: the port, the confirmed-mode timeout in ms (0 = off) and the
    /// requests sent.
    pub(super) port: AtomicI32,
    pub(super) confirm_ms: AtomicU32,
    pub(super) sends: AtomicU32,
    owned: Mutex<Option<Box<Owned>>>,
    /// The port of the last guest session, now on /dev/null: reserved so
    /// that a call racing its exit cannot reach a file opened since; closed
    /// at the next install.
    retired: Mutex<Option<OwnedFd>>,
}

impl Slot {
    /// An IDLE slot. All zero, so that a static table is `.bss`.
    pub(crate) const fn new() -> Self {
        Self {
            state: AtomicU32::new(IDLE),
            env: AtomicU32::new(0),
            cpu: AtomicU32::new(0),
            dom: AtomicU32::new(0),
            port: AtomicI32::new(-1),
            confirm_ms: AtomicU32::new(0),
            sends: AtomicU32::new(0),
            owned: Mutex::new(None),
            retired: Mutex::new(None),
        }
    }
}

/// A whole lcore table: one slot per supported lcore id.
pub(crate) type Slots = [Slot; MAX_LCORE as usize];

/// The slot of `lcore`, or `InvalidLcore`. The error is built only on
/// failure: an eagerly built `PowerError` costs every fast-path call a call
/// to its drop glue.
#[inline]
pub(crate) fn slot_in(slots: &Slots, lcore: u32) -> Result<&Slot> {
    match slots.get(lcore as usize) {
        Some(slot) => Ok(slot),
        None => Err(PowerError::InvalidLcore {
            lcore,
            max: MAX_LCORE,
        }),
    }
}

/// The slots and domains of one [`crate::Power`]: static arrays (the C
/// API's, in `capi`), or a context's own.
pub(crate) enum Table {
    Static(&'static Slots, &'static Domains),
    Owned(Box<Slots>, Box<Domains>),
}

impl Table {
    /// A table of its own, built on the heap (the domains are about 2 MB).
    pub fn new() -> Self {
        let slots: Box<[Slot]> = (0..MAX_LCORE).map(|_| Slot::new()).collect();
        let domains: Box<[Domain]> = (0..MAX_DOMAINS).map(|_| Domain::new()).collect();
        Self::Owned(
            slots
                .try_into()
                .unwrap_or_else(|_| unreachable!("exactly MAX_LCORE slots")),
            domains
                .try_into()
                .unwrap_or_else(|_| unreachable!("exactly MAX_DOMAINS domains")),
        )
    }

    /// The slot of `lcore`, or `InvalidLcore`.
    #[inline]
    pub fn slot(&self, lcore: u32) -> Result<&Slot> {
        slot_in(self.slots(), lcore)
    }

    #[inline]
    pub fn slots(&self) -> &Slots {
        match self {
            Table::Static(slots, _) => slots,
            Table::Owned(slots, _) => slots,
        }
    }

    /// The domains.
    #[inline]
    pub fn domains(&self) -> &Domains {
        match self {
            Table::Static(_, d) => d,
            Table::Owned(_, d) => d,
        }
    }

    /// Domain number `idx` (`idx < MAX_DOMAINS`).
    #[inline]
    pub fn domain(&self, idx: u32) -> &Domain {
        &self.domains()[idx as usize % MAX_DOMAINS]
    }
}

/// Exclusive ownership of a slot during init or exit; returns it to IDLE
/// unless `finish` publishes it as USED.
pub(crate) struct Claim<'a> {
    slot: &'a Slot,
    done: bool,
}

impl<'a> Claim<'a> {
    /// IDLE -> ONGOING, or `InUse`.
    pub fn for_init(slot: &'a Slot, lcore: u32) -> Result<Self> {
        slot.state
            .compare_exchange(IDLE, ONGOING, Acquire, Relaxed)
            .map_err(|_| PowerError::InUse { lcore })?;
        Ok(Self { slot, done: false })
    }

    /// USED (host or guest) -> ONGOING, or `NotInitialised`. Also says
    /// whether the lcore was a guest lcore.
    pub fn for_exit(slot: &'a Slot, lcore: u32) -> Result<(Self, bool)> {
        for (used, guest) in [(USED, false), (USED_GUEST, true)] {
            if slot
                .state
                .compare_exchange(used, ONGOING, Acquire, Relaxed)
                .is_ok()
            {
                return Ok((Self { slot, done: false }, guest));
            }
        }
        Err(PowerError::NotInitialised { lcore })
    }

    /// Publishes the slot: every store made before becomes visible to the
    /// fast path's acquire load of the state.
    pub fn finish_used(mut self) {
        self.done = true;
        let used = if self.slot.env.load(Relaxed) == Env::KvmVm.raw() {
            USED_GUEST
        } else {
            USED
        };
        self.slot.state.store(used, Release);
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.slot.state.store(IDLE, Release);
        }
    }
}

impl Slot {
    /// Attaches a host lcore to domain number `dom` (slot owned through a
    /// [`Claim`]).
    pub fn attach(&self, env: Env, cpu: u32, dom: u32) {
        self.close_retired();
        self.env.store(env.raw(), Relaxed);
        self.cpu.store(cpu, Relaxed);
        self.dom.store(dom, Relaxed);
        self.port.store(-1, Relaxed);
    }

    /// The domain number of a host lcore (slot owned through a [`Claim`]).
    pub fn domain_index(&self) -> u32 {
        self.dom.load(Relaxed)
    }

    /// Installs a connected guest port (slot owned through a [`Claim`]).
    pub fn install_guest(
        &self,
        lcore: u32,
        port: std::fs::File,
        confirm: Option<std::time::Duration>,
    ) {
        self.close_retired();
        self.env.store(Env::KvmVm.raw(), Relaxed);
        self.cpu.store(lcore, Relaxed);
        self.sends.store(0, Relaxed);
        let ms = confirm.map_or(0, |d| {
            u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
        });
        self.confirm_ms.store(ms, Relaxed);
        self.port.store(raw_fd(&port), Relaxed);
        *self.owned.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(Owned { port }));
    }

    /// Closes the previous session's retired port (slot owned).
    fn close_retired(&self) {
        drop(
            self.retired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
    }

    /// Closes a guest lcore's port (slot owned).
    pub fn uninstall_guest(&self) {
        self.port.store(-1, Relaxed);
        let owned = self.owned.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(owned) = owned else {
            return;
        };
        // leave nothing of ours queued for the next user of the port
        guest::drain(raw_fd(&owned.port));
        // a call that loaded the descriptor just before this exit may still
        // use it: the number stays reserved, on /dev/null, until next time
        let fd = OwnedFd::from(owned.port);
        retire(&fd);
        *self.retired.lock().unwrap_or_else(|e| e.into_inner()) = Some(fd);
    }
}
