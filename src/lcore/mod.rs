//! The cpufreq core: the lcore handle, its state and the fast path.
//!
//! The per-lcore table: the IDLE/ONGOING/USED state machine and the
//! frequency fast path, once for all drivers.
//!
//! A host lcore's frequency state belongs to its frequency domain (one
//! cpufreq policy, `domain.rs`), which every lcore on that policy shares:
//! the first init fills it, the last exit restores the host. Every field a
//! frequency call reads is an atomic, written during init (the slot ONGOING,
//! the domain filled before any lcore is attached to it) and published by
//! the release store of USED. The fast path therefore takes no lock,
//! allocates nothing (values were rendered at init) and makes one `pwrite`
//! per sysfs file it must change, none when nothing changes. A call that
//! races with `exit` of the same lcore (a caller bug, as in DPDK) cannot
//! cause undefined behaviour, nor reach a file opened since: the last exit
//! of a domain moves its descriptors to /dev/null and keeps their numbers
//! until the domain's next init.
//!
//! The C API's table is a static array (in `capi`): a C call reaches its
//! slot with one load of the state word, which also says host or guest.

use std::sync::atomic::Ordering::*;

use crate::env::Env;
use crate::error::{PowerError, Result};
use crate::guest;
use crate::host::MAX_FREQS;
use crate::wire::Step;

mod domain;
mod slot;
mod stats;

pub(crate) use domain::{Domain, Domains, MAX_DOMAINS};
pub(crate) use slot::{slot_in, Claim, Slot, Slots, Table};
pub use stats::{time_stats_bookkeeping, PstateStats};

/// lcore ids the library supports: `0..MAX_LCORE` (DPDK's default is 128).
pub const MAX_LCORE: u32 = 1024;

const IDLE: u32 = 0;
const ONGOING: u32 = 1;
const USED: u32 = 2;
/// USED by the KVM guest env: the one state load of every call also tells
/// host from guest.
const USED_GUEST: u32 = 3;

/// How a domain programs a frequency.
const BACKEND_NONE: u32 = 0;
const BACKEND_SETSPEED: u32 = 1;
const BACKEND_MINMAX: u32 = 2;

const F_TURBO_AVAILABLE: u32 = 1 << 0;
const F_TURBO_ENABLED: u32 = 1 << 1;
const F_PRIORITY: u32 = 1 << 2;
const F_ENABLE_SELECTS_MAX: u32 = 1 << 3;
const F_INDEX0_NEEDS_ENABLE: u32 = 1 << 4;

/// `cur` before the first write: forces init's first write.
const UNKNOWN_INDEX: u32 = u32::MAX;
const FD_SETSPEED: usize = 0;
const FD_MIN: usize = 0;
const FD_MAX: usize = 1;

/// What a step will do: small and `Copy`, so that deciding it needs no
/// stack frame (the no-change call of a polling lcore is the hot path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing to change: no write.
    Stay,
    /// Program index `idx`, the domain's index word being `cur`; `step`
    /// decides again if another lcore of the domain changes it meanwhile
    /// (`None`: `idx` is absolute).
    Go {
        idx: u32,
        cur: u64,
        step: Option<Step>,
    },
    /// KVM guest: send this step to the host.
    Send(Step),
    /// Allow (`true`) or forbid turbo.
    Turbo(bool),
    /// The lcore is not initialised.
    NotInitialised,
}

/// Did a call change the frequency? (The C API returns DPDK's 1 changed,
/// 0 unchanged.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// A new frequency was programmed.
    Yes,
    /// Already there (or at the end of the table): nothing written.
    No,
    /// KVM guest: the request was sent to the host (DPDK returns 1).
    Sent,
}

/// DPDK's `struct rte_power_core_capabilities` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Turbo can be enabled.
    pub turbo: bool,
    /// SST-BF high-priority (high base frequency) core.
    pub priority: bool,
}

impl Capabilities {
    /// The 64-bit word of the C struct (bit 0 turbo, bit 1 priority).
    pub fn bits(self) -> u64 {
        u64::from(self.turbo) | u64::from(self.priority) << 1
    }
}

/// An initialised lcore. Cheap to copy; every call re-checks that the lcore
/// is still initialised.
#[derive(Clone, Copy)]
pub struct Lcore<'a> {
    slot: &'a Slot,
    domains: &'a Domains,
    id: u32,
}

impl std::fmt::Debug for Lcore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lcore")
            .field("id", &self.id)
            .field("cpu", &self.cpu())
            .finish()
    }
}

impl<'a> Lcore<'a> {
    /// A handle on `slot` if it is initialised.
    #[inline]
    pub(crate) fn new(slot: &'a Slot, domains: &'a Domains, id: u32) -> Result<Self> {
        let l = Self { slot, domains, id };
        l.check()?;
        Ok(l)
    }

    /// A handle on `slot` whatever its state: every operation checks it
    /// (the C entry points use this so that a call checks once).
    #[inline]
    pub(crate) fn unchecked(slot: &'a Slot, domains: &'a Domains, id: u32) -> Self {
        Self { slot, domains, id }
    }

    /// The lcore's frequency domain (meaningful for a host lcore that is
    /// initialised; a stale one otherwise, which every caller checks first).
    #[inline]
    fn dom(&self) -> &'a Domain {
        &self.domains[self.slot.dom.load(Relaxed) as usize % MAX_DOMAINS]
    }

    /// Is the lcore initialised, and is it a KVM guest lcore? One load.
    #[inline]
    fn used(&self) -> Result<bool> {
        match self.slot.state.load(Acquire) {
            USED => Ok(false),
            USED_GUEST => Ok(true),
            _ => Err(PowerError::NotInitialised { lcore: self.id }),
        }
    }

    #[inline]
    fn check(&self) -> Result<()> {
        self.used().map(|_| ())
    }

    /// The lcore id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The CPU this lcore drives.
    pub fn cpu(&self) -> u32 {
        self.slot.cpu.load(Relaxed)
    }

    /// The CPU whose cpufreq files the lcore's frequency domain uses: the
    /// CPU of the first lcore initialised on that policy.
    pub fn domain_cpu(&self) -> Result<u32> {
        self.host_only("the frequency domain")?;
        Ok(self.dom().cpu.load(Relaxed))
    }

    /// The env the lcore was initialised in.
    pub fn env(&self) -> Option<Env> {
        Env::from_raw(self.slot.env.load(Relaxed))
    }

    /// Is this a KVM guest lcore (requests go to the host)?
    #[inline]
    pub fn is_guest(&self) -> bool {
        self.slot.state.load(Acquire) == USED_GUEST
    }

    #[inline]
    fn host_only(&self, what: &'static str) -> Result<()> {
        if self.used()? {
            return Err(PowerError::Unsupported {
                lcore: self.id,
                env: Env::KvmVm,
                what,
            });
        }
        Ok(())
    }

    /// KVM guest: sends one request to the host (one `writev`); host replies
    /// are drained every [`guest::DRAIN_EVERY`] requests, or awaited in
    /// confirmed mode. Out of line and by value, to keep the host paths
    /// of the callers small.
    #[inline(never)]
    fn request(self, step: Step) -> Result<Changed> {
        let s = self.slot;
        let fd = s.port.load(Relaxed);
        let confirm = s.confirm_ms.load(Relaxed);
        let n = s.sends.load(Relaxed).wrapping_add(1);
        s.sends.store(n, Relaxed);
        if confirm > 0 || n % guest::DRAIN_EVERY == 0 {
            guest::drain(fd);
        }
        guest::send_request(fd, self.id, step).map_err(|source| PowerError::Channel {
            lcore: self.id,
            path: std::path::PathBuf::from(format!("{}{}", guest::PORT_PREFIX, self.id)),
            source,
        })?;
        if confirm > 0 {
            guest::await_reply(
                fd,
                self.id,
                std::time::Duration::from_millis(u64::from(confirm)),
            )?;
        }
        Ok(Changed::Sent)
    }

    /// KVM guest: the port descriptor, or `Unsupported` on a host lcore.
    #[inline]
    fn port(&self, what: &'static str) -> Result<std::os::fd::RawFd> {
        if !self.used()? {
            return Err(PowerError::Unsupported {
                lcore: self.id,
                env: self.env().unwrap_or(Env::KvmVm),
                what,
            });
        }
        Ok(self.slot.port.load(Relaxed))
    }

    fn channel_err(&self, source: std::io::Error) -> PowerError {
        PowerError::Channel {
            lcore: self.id,
            path: std::path::PathBuf::from(format!("{}{}", guest::PORT_PREFIX, self.id)),
            source,
        }
    }

    /// KVM guest: sends the application's own 464-byte packet on the lcore's
    /// port (`rte_power_guest_channel_send_msg`). A full port fails at once
    /// with EAGAIN in [`PowerError::os_error`], as DPDK's does.
    pub fn send_msg(&self, pkt: &[u8; crate::wire::PACKET_SIZE]) -> Result<()> {
        let fd = self.port("the guest channel")?;
        guest::write_packet(fd, pkt).map_err(|e| self.channel_err(e))
    }

    /// KVM guest: reads exactly `buf.len()` bytes of host reply, waiting at
    /// most `timeout` (`rte_power_guest_channel_receive_msg` waits 10 ms).
    /// `Ok(false)`: nothing (or not all of it) arrived in time, or no host
    /// is connected to the port.
    pub fn receive_msg(&self, buf: &mut [u8], timeout: std::time::Duration) -> Result<bool> {
        let fd = self.port("the guest channel")?;
        guest::read_exact_timeout(fd, buf, timeout).map_err(|e| self.channel_err(e))
    }

    /// KVM guest: drops whatever the host has sent and nobody read (late or
    /// stale replies), so that the next reply read belongs to the next
    /// request. Never blocks.
    pub fn discard_replies(&self) -> Result<()> {
        let fd = self.port("the guest channel")?;
        guest::drain(fd);
        Ok(())
    }

    /// Number of entries in the frequency table.
    pub fn num_freqs(&self) -> Result<u32> {
        self.host_only("the frequency table")?;
        Ok(self.dom().len.load(Relaxed))
    }

    /// Copies the table (kHz, descending) into `out`; returns how many were
    /// copied, 0 when `out` is too small (DPDK's rule).
    pub fn freqs_into(&self, out: &mut [u32]) -> Result<usize> {
        self.host_only("the frequency table")?;
        let d = self.dom();
        let n = d.len.load(Relaxed) as usize;
        if out.len() < n {
            return Ok(0);
        }
        for (o, f) in out.iter_mut().zip(&d.freqs[..n]) {
            *o = f.load(Relaxed);
        }
        Ok(n)
    }

    /// The frequency table (kHz, descending; index 0 = highest).
    pub fn freqs(&self) -> Result<Vec<u32>> {
        let mut v = vec![0; MAX_FREQS];
        let n = self.freqs_into(&mut v)?;
        v.truncate(n);
        Ok(v)
    }

    /// The current index in the table: the domain's, whichever lcore of
    /// the domain set it.
    #[inline]
    pub fn index(&self) -> Result<u32> {
        self.host_only("get_freq")?;
        Ok(self.dom().index())
    }

    /// The current frequency in kHz (from the table, not read back).
    pub fn frequency(&self) -> Result<u32> {
        let i = self.index()?;
        Ok(self.dom().freqs[i as usize % MAX_FREQS].load(Relaxed))
    }

    /// Moves to `idx`. The no-change test is inlined into every caller; the
    /// change itself is out of line, so that the no-change path needs no
    /// stack frame of its own (it is the hot path of a polling PMD).
    #[inline]
    fn go(&self, idx: u32) -> Result<Changed> {
        let cur = self.dom().cur.load(Relaxed);
        if idx == domain::index_of(cur) {
            return Ok(Changed::No);
        }
        self.change(idx, cur, None)
    }

    /// Programs `idx`, the domain's index word having been `cur`.
    #[inline(never)]
    fn change(self, idx: u32, cur: u64, step: Option<Step>) -> Result<Changed> {
        self.dom().change(self.id, idx, cur, step)
    }

    /// Sets the frequency by table index.
    #[inline]
    pub fn set_index(&self, idx: u32) -> Result<Changed> {
        self.host_only("set_freq")?;
        let len = self.dom().len.load(Relaxed);
        if idx >= len {
            return Err(PowerError::IndexOutOfRange {
                lcore: self.id,
                index: idx,
                len,
            });
        }
        self.go(idx)
    }

    /// What a frequency step would do, decided from the slot alone (one
    /// state load, no write, nothing built): the policy of up/down/max/min,
    /// once for every driver. [`Lcore::run`] carries a plan out.
    #[inline]
    pub(crate) fn plan(&self, step: Step) -> Plan {
        match self.slot.state.load(Acquire) {
            USED => {}
            USED_GUEST => return Plan::Send(step),
            _ => return Plan::NotInitialised,
        }
        match step {
            Step::EnableTurbo => return Plan::Turbo(true),
            Step::DisableTurbo => return Plan::Turbo(false),
            _ => {}
        }
        let d = self.dom();
        let cur = d.cur.load(Relaxed);
        match d.target(step, domain::index_of(cur)) {
            None => Plan::Stay,
            Some(idx) => Plan::Go {
                idx,
                cur,
                step: Some(step),
            },
        }
    }

    /// Carries out a [`plan`](Self::plan).
    #[inline]
    pub(crate) fn run(self, plan: Plan) -> Result<Changed> {
        match plan {
            Plan::Stay => Ok(Changed::No),
            Plan::Go { idx, cur, step } => self.change(idx, cur, step),
            Plan::Send(step) => self.request(step),
            Plan::Turbo(on) => self.set_turbo(on),
            Plan::NotInitialised => Err(PowerError::NotInitialised { lcore: self.id }),
        }
    }

    /// Carries out one DPDK step: the one entry point for every
    /// [`Step`], which [`up`](Self::up) ... [`disable_turbo`](Self::disable_turbo)
    /// name. In a KVM guest every step is sent to the host (`Sent`).
    #[inline]
    pub fn apply(&self, step: Step) -> Result<Changed> {
        self.run(self.plan(step))
    }

    /// One step up (lower index); stops below the turbo region when turbo is off.
    #[inline]
    pub fn up(&self) -> Result<Changed> {
        self.apply(Step::Up)
    }

    /// One step down (higher index).
    #[inline]
    pub fn down(&self) -> Result<Changed> {
        self.apply(Step::Down)
    }

    /// The highest frequency allowed (turbo when enabled).
    #[inline]
    pub fn max(&self) -> Result<Changed> {
        self.apply(Step::Max)
    }

    /// The lowest frequency.
    #[inline]
    pub fn min(&self) -> Result<Changed> {
        self.apply(Step::Min)
    }

    /// Is turbo enabled (on the lcore's domain)?
    pub fn turbo_enabled(&self) -> Result<bool> {
        self.host_only("turbo_status")?;
        Ok(self.dom().flags() & F_TURBO_ENABLED != 0)
    }

    /// Allows the turbo region (and, except on intel_pstate, moves to it).
    /// Returns whether the frequency changed, or `Sent` in a KVM guest.
    pub fn enable_turbo(&self) -> Result<Changed> {
        self.apply(Step::EnableTurbo)
    }

    /// Forbids the turbo region, leaving it if the lcore is in it.
    /// Returns whether the frequency changed, or `Sent` in a KVM guest.
    pub fn disable_turbo(&self) -> Result<Changed> {
        self.apply(Step::DisableTurbo)
    }

    /// A host lcore's turbo switch (see [`enable_turbo`](Self::enable_turbo)).
    fn set_turbo(&self, on: bool) -> Result<Changed> {
        let s = self.dom();
        if !on {
            s.flags.fetch_and(!F_TURBO_ENABLED, Relaxed);
            if s.flags() & F_TURBO_AVAILABLE != 0 && s.index() <= s.nominal.load(Relaxed) {
                return self.max();
            }
            return Ok(Changed::No);
        }
        if s.flags() & F_TURBO_AVAILABLE == 0 {
            s.flags.fetch_and(!F_TURBO_ENABLED, Relaxed);
            return Err(PowerError::TurboUnavailable { lcore: self.id });
        }
        s.flags.fetch_or(F_TURBO_ENABLED, Relaxed);
        if s.flags() & F_ENABLE_SELECTS_MAX != 0 {
            return self.max();
        }
        Ok(Changed::No)
    }

    /// Turbo and SST-BF capabilities.
    pub fn capabilities(&self) -> Result<Capabilities> {
        self.host_only("get_capabilities")?;
        let f = self.dom().flags();
        Ok(Capabilities {
            turbo: f & F_TURBO_AVAILABLE != 0,
            priority: f & F_PRIORITY != 0,
        })
    }
}
