//! The per-lcore table: the IDLE/ONGOING/USED state machine and the
//! frequency fast path, once for all drivers.
//!
//! Every field a frequency call reads is an atomic, written only by the
//! thread that owns the slot during init (state ONGOING) and published by the
//! release store of USED. The fast path therefore takes no lock, allocates
//! nothing (values were rendered at init) and makes one `pwrite` per sysfs
//! file it must change, none when nothing changes. A call that races with
//! `exit` of the same lcore (a caller bug, as in DPDK) cannot cause undefined
//! behaviour, nor reach a file opened since: exit moves the descriptors to
//! /dev/null and keeps their numbers until the next init.
//!
//! The C API's table is a static array (in `capi`): a C call reaches its
//! slot with one load of the state word, which also says host or guest.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::*};
use std::sync::Mutex;

use crate::env::Env;
use crate::error::{PowerError, Result};
use crate::guest;
use crate::host::{Control, Programming, Restore, TurboModel, MAX_FREQS};
use crate::sysfs::{pwrite_all, raw_fd, Rendered, SysfsRoot};
use crate::wire::Step;

/// lcore ids the library supports: `0..MAX_LCORE` (DPDK's default is 128).
pub const MAX_LCORE: u32 = 1024;

const IDLE: u32 = 0;
const ONGOING: u32 = 1;
const USED: u32 = 2;
/// USED by the KVM guest env: the one state load of every call also tells
/// host from guest.
const USED_GUEST: u32 = 3;

/// How a slot programs a frequency.
const BACKEND_NONE: u32 = 0;
const BACKEND_SETSPEED: u32 = 1;
const BACKEND_MINMAX: u32 = 2;
/// KVM guest: requests sent over the lcore's virtio-serial port.
const BACKEND_GUEST: u32 = 3;

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
const FD_PORT: usize = 0;

/// What a step will do: small and `Copy`, so that deciding it needs no
/// stack frame (the no-change call of a polling lcore is the hot path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Nothing to change: no write.
    Stay,
    /// Program index `idx`, the lcore being at `cur`.
    Go { idx: u32, cur: u32 },
    /// KVM guest: send this step to the host.
    Send(Step),
    /// Allow (`true`) or forbid turbo.
    Turbo(bool),
    /// The lcore is not initialised.
    NotInitialised,
}

/// Did a call change the frequency? (DPDK: 1 changed, 0 unchanged.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    /// A new frequency was programmed.
    Yes,
    /// Already there (or at the end of the table): nothing written.
    No,
    /// KVM guest: the request was sent to the host (DPDK returns 1).
    Sent,
}

impl Changed {
    /// DPDK's return value: 1 or 0.
    pub fn to_c(self) -> i32 {
        match self {
            Changed::Yes | Changed::Sent => 1,
            Changed::No => 0,
        }
    }
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

/// The files an lcore holds open.
#[derive(Debug)]
enum Held {
    // kept open until exit: the fast path writes through their descriptors
    Host(Control),
    Port(std::fs::File),
}

impl Held {
    fn into_fds(self) -> Vec<OwnedFd> {
        match self {
            Held::Host(Control::Setspeed(f)) | Held::Port(f) => vec![f.into()],
            Held::Host(Control::MinMax { min, max }) => vec![min.into(), max.into()],
        }
    }
}

/// Points `fd` at /dev/null (the number stays taken): a write through it
/// has no effect, a read sees end of file. If /dev/null cannot be opened
/// the descriptor keeps its file, which is still better than a number that
/// may name any file opened later.
fn retire(fd: &OwnedFd) {
    // SAFETY: open(2) with a NUL-terminated constant path.
    let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if null >= 0 {
        // SAFETY: both descriptors are open and ours; dup3 atomically
        // replaces the file behind `fd`, then the extra one is closed.
        unsafe {
            libc::dup3(null, fd.as_raw_fd(), libc::O_CLOEXEC);
            libc::close(null);
        }
    }
}

/// The library's own P-state statistics for one lcore session.
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

/// Times the statistics bookkeeping of `iters` changes on a scratch slot:
/// the library's own code, for the `stats_cost` benchmark.
#[doc(hidden)]
pub fn time_stats_bookkeeping(iters: u32) -> std::time::Duration {
    let s = Slot::new();
    s.reset_stats();
    let t = std::time::Instant::now();
    for i in 0..iters {
        s.account(std::hint::black_box(i % 16));
    }
    std::hint::black_box(s.transitions.load(Relaxed));
    t.elapsed()
}

/// What init opened and what exit must undo; only touched by the slot owner.
#[derive(Debug)]
struct Owned {
    cpu: u32,
    _files: Held,
    restore: Restore,
}

/// One lcore's state. See the module comment for the concurrency rules.
pub(crate) struct Slot {
    state: AtomicU32,
    backend: AtomicU32,
    env: AtomicU32,
    cpu: AtomicU32,
    cur: AtomicU32,
    len: AtomicU32,
    nominal: AtomicU32,
    flags: AtomicU32,
    fds: [AtomicI32; 2],
    /// Guest: confirmed-mode timeout in ms (0 = off) and requests sent.
    confirm_ms: AtomicU32,
    sends: AtomicU32,
    freqs: [AtomicU32; MAX_FREQS],
    text: [[AtomicU64; 2]; MAX_FREQS],
    /// P-state statistics kept by the library: ns spent at each index
    /// (closed intervals), the start of the current interval, transitions.
    residency: [AtomicU64; MAX_FREQS],
    /// In [`crate::clock::ticks`] (the TSC on x86_64): cheaper than a clock read.
    since: AtomicU64,
    started: AtomicU64,
    /// CLOCK_MONOTONIC at the start of the session, to convert ticks to ns.
    started_ns: AtomicU64,
    transitions: AtomicU64,
    owned: Mutex<Option<Box<Owned>>>,
    /// Descriptors of the last session, now on /dev/null: reserved so that
    /// a call racing its exit cannot reach a file opened since (see
    /// `uninstall`); closed at the next install.
    retired: Mutex<Option<Box<[OwnedFd]>>>,
}

impl Slot {
    /// An IDLE slot. All zero, so that a static table is `.bss`: the
    /// descriptors and indexes mean something only once `install` set them.
    pub(crate) const fn new() -> Self {
        Self {
            state: AtomicU32::new(IDLE),
            backend: AtomicU32::new(BACKEND_NONE),
            env: AtomicU32::new(0),
            cpu: AtomicU32::new(0),
            cur: AtomicU32::new(0),
            len: AtomicU32::new(0),
            nominal: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            fds: [AtomicI32::new(0), AtomicI32::new(0)],
            confirm_ms: AtomicU32::new(0),
            sends: AtomicU32::new(0),
            freqs: [const { AtomicU32::new(0) }; MAX_FREQS],
            text: [const { [AtomicU64::new(0), AtomicU64::new(0)] }; MAX_FREQS],
            residency: [const { AtomicU64::new(0) }; MAX_FREQS],
            since: AtomicU64::new(0),
            started: AtomicU64::new(0),
            started_ns: AtomicU64::new(0),
            transitions: AtomicU64::new(0),
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

/// The slots of one [`crate::Power`]: a static array (the C API's, in
/// `capi`), or a context's own.
pub(crate) enum Table {
    Static(&'static Slots),
    Owned(Box<Slots>),
}

impl Table {
    /// A table of its own, built on the heap (it is about 2 MB).
    pub fn new() -> Self {
        let slots: Box<[Slot]> = (0..MAX_LCORE).map(|_| Slot::new()).collect();
        Self::Owned(
            slots
                .try_into()
                .unwrap_or_else(|_| unreachable!("exactly MAX_LCORE slots")),
        )
    }

    /// The slot of `lcore`, or `InvalidLcore`.
    #[inline]
    pub fn slot(&self, lcore: u32) -> Result<&Slot> {
        match self {
            Table::Static(slots) => slot_in(slots, lcore),
            Table::Owned(slots) => slot_in(slots, lcore),
        }
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

    /// USED (host or guest) -> ONGOING, or `NotInitialised`.
    pub fn for_exit(slot: &'a Slot, lcore: u32) -> Result<Self> {
        let claimed = [USED, USED_GUEST].into_iter().any(|used| {
            slot.state
                .compare_exchange(used, ONGOING, Acquire, Relaxed)
                .is_ok()
        });
        if !claimed {
            return Err(PowerError::NotInitialised { lcore });
        }
        Ok(Self { slot, done: false })
    }

    /// Publishes the slot: every store made before becomes visible to the
    /// fast path's acquire load of the state.
    pub fn finish_used(mut self) {
        self.done = true;
        let used = if self.slot.backend.load(Relaxed) == BACKEND_GUEST {
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
    /// Installs a probe's result (slot owned through a [`Claim`]).
    pub fn install(&self, lcore: u32, env: Env, cpu: u32, p: Programming) -> Result<()> {
        self.close_retired();
        let Programming {
            table,
            writes,
            current,
            control,
            turbo,
            priority,
            restore,
        } = p;
        debug_assert_eq!(table.len(), writes.len());
        let n = table.len().min(MAX_FREQS);
        for i in 0..n {
            self.freqs[i].store(table[i], Relaxed);
            let w = Rendered::new(writes[i]).to_words();
            self.text[i][0].store(w[0], Relaxed);
            self.text[i][1].store(w[1], Relaxed);
        }
        self.len.store(n as u32, Relaxed);
        self.env.store(env.raw(), Relaxed);
        self.cpu.store(cpu, Relaxed);
        self.cur.store(current.unwrap_or(UNKNOWN_INDEX), Relaxed);
        let TurboModel {
            available,
            at_init,
            nominal_index,
            enable_selects_max,
            index0_needs_enable,
        } = turbo;
        let previously = self.flags.load(Relaxed) & F_TURBO_ENABLED != 0;
        let enabled = available && at_init.unwrap_or(previously);
        let mut flags = 0;
        for (on, bit) in [
            (available, F_TURBO_AVAILABLE),
            (enabled, F_TURBO_ENABLED),
            (priority, F_PRIORITY),
            (enable_selects_max, F_ENABLE_SELECTS_MAX),
            (index0_needs_enable, F_INDEX0_NEEDS_ENABLE),
        ] {
            if on {
                flags |= bit;
            }
        }
        self.flags.store(flags, Relaxed);
        self.nominal
            .store(nominal_index.min(n.saturating_sub(1) as u32), Relaxed);
        let backend = match &control {
            Control::Setspeed(f) => {
                self.fds[FD_SETSPEED].store(raw_fd(f), Relaxed);
                BACKEND_SETSPEED
            }
            Control::MinMax { min, max } => {
                self.fds[FD_MIN].store(raw_fd(min), Relaxed);
                self.fds[FD_MAX].store(raw_fd(max), Relaxed);
                BACKEND_MINMAX
            }
        };
        self.backend.store(backend, Relaxed);
        *self.owned.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(Owned {
            cpu,
            _files: Held::Host(control),
            restore,
        }));
        // First write: the starting frequency is always programmed, even when
        // the index read at init says it is there already (for min/max
        // pinning drivers the limits are not pinned until written).
        let start = self.max_index();
        let cur = self.cur.load(Relaxed);
        self.program(lcore, start, cur)?;
        self.cur.store(start, Relaxed);
        self.reset_stats();
        Ok(())
    }

    /// Starts the statistics of a new session at the current index.
    fn reset_stats(&self) {
        for r in &self.residency {
            r.store(0, Relaxed);
        }
        self.transitions.store(0, Relaxed);
        let now = crate::clock::ticks();
        self.started.store(now, Relaxed);
        self.started_ns.store(crate::clock::monotonic_ns(), Relaxed);
        self.since.store(now, Relaxed);
    }

    /// Books the time spent at `from` and counts a transition. Only the
    /// lcore's own thread changes its frequency, so plain load/store pairs
    /// suffice (no read-modify-write on the fast path).
    #[inline]
    fn account(&self, from: u32) {
        let now = crate::clock::ticks();
        let since = self.since.load(Relaxed);
        self.since.store(now, Relaxed);
        if let Some(r) = self.residency.get(from as usize) {
            r.store(r.load(Relaxed) + now.saturating_sub(since), Relaxed);
        }
        self.transitions
            .store(self.transitions.load(Relaxed) + 1, Relaxed);
    }

    /// Installs a connected guest port (slot owned through a [`Claim`]).
    pub fn install_guest(
        &self,
        lcore: u32,
        port: std::fs::File,
        confirm: Option<std::time::Duration>,
    ) {
        self.close_retired();
        self.len.store(0, Relaxed);
        self.flags.store(0, Relaxed);
        self.env.store(Env::KvmVm.raw(), Relaxed);
        self.cpu.store(lcore, Relaxed);
        self.cur.store(UNKNOWN_INDEX, Relaxed);
        self.sends.store(0, Relaxed);
        let ms = confirm.map_or(0, |d| {
            u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1)
        });
        self.confirm_ms.store(ms, Relaxed);
        self.fds[FD_PORT].store(raw_fd(&port), Relaxed);
        self.backend.store(BACKEND_GUEST, Relaxed);
        *self.owned.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(Owned {
            cpu: lcore,
            _files: Held::Port(port),
            restore: Restore::default(),
        }));
    }

    /// The guest port of an initialised KVM lcore.
    pub fn guest_port(&self, lcore: u32) -> Result<std::os::fd::RawFd> {
        if self.state.load(Acquire) == USED_GUEST {
            Ok(self.fds[FD_PORT].load(Relaxed))
        } else {
            Err(PowerError::NotInitialised { lcore })
        }
    }

    /// Closes the previous session's retired descriptors (slot owned).
    fn close_retired(&self) {
        drop(
            self.retired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
    }

    /// Closes the files and puts back what init changed (slot owned).
    pub fn uninstall(&self, root: &SysfsRoot) -> Result<()> {
        self.backend.store(BACKEND_NONE, Relaxed);
        for fd in &self.fds {
            fd.store(-1, Relaxed);
        }
        let owned = self.owned.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(owned) = owned else {
            return Ok(());
        };
        let Owned {
            cpu,
            _files,
            restore,
        } = *owned;
        if let Held::Port(port) = &_files {
            // leave nothing of ours queued for the next user of the port
            guest::drain(raw_fd(port));
        }
        // A call that loaded a descriptor just before this exit may still
        // use it: the number must not come to name a file opened since (the
        // restore below opens some). So the files are swapped for /dev/null
        // (before the restore writes) and the numbers kept until next time.
        let fds = _files.into_fds();
        fds.iter().for_each(retire);
        *self.retired.lock().unwrap_or_else(|e| e.into_inner()) = Some(fds.into_boxed_slice());
        restore.apply(root, cpu)
    }

    #[inline]
    fn flags(&self) -> u32 {
        self.flags.load(Relaxed)
    }

    /// Highest index allowed without turbo, or 0 with turbo enabled.
    #[inline]
    fn max_index(&self) -> u32 {
        let f = self.flags();
        if f & F_TURBO_AVAILABLE != 0 && f & F_TURBO_ENABLED == 0 {
            self.nominal.load(Relaxed)
        } else {
            0
        }
    }

    #[inline]
    fn rendered(&self, idx: u32) -> Rendered {
        let t = &self.text[idx as usize % MAX_FREQS];
        Rendered::from_words([t[0].load(Relaxed), t[1].load(Relaxed)])
    }

    #[inline]
    fn write(&self, which: usize, attr: &'static str, idx: u32) -> Result<()> {
        let fd = self.fds[which].load(Relaxed);
        pwrite_all(fd, self.rendered(idx).bytes()).map_err(|source| PowerError::Write {
            cpu: self.cpu.load(Relaxed),
            attr,
            source,
        })
    }

    /// Writes the frequency of `idx`; `cur` tells the direction (min/max
    /// pinning writes min first when lowering, max first when raising, and
    /// undoes the first write if the second fails).
    fn program(&self, lcore: u32, idx: u32, cur: u32) -> Result<()> {
        match self.backend.load(Relaxed) {
            BACKEND_SETSPEED => self.write(FD_SETSPEED, "scaling_setspeed", idx),
            BACKEND_MINMAX => {
                let lowering = cur != UNKNOWN_INDEX && idx > cur;
                let (first, second) = if lowering {
                    ((FD_MIN, "scaling_min_freq"), (FD_MAX, "scaling_max_freq"))
                } else {
                    ((FD_MAX, "scaling_max_freq"), (FD_MIN, "scaling_min_freq"))
                };
                self.write(first.0, first.1, idx)?;
                self.write(second.0, second.1, idx).inspect_err(|_| {
                    if cur != UNKNOWN_INDEX {
                        let _ = self.write(first.0, first.1, cur);
                    }
                })
            }
            _ => Err(PowerError::NotInitialised { lcore }),
        }
    }
}

/// An initialised lcore. Cheap to copy; every call re-checks that the lcore
/// is still initialised.
#[derive(Clone, Copy)]
pub struct Lcore<'a> {
    slot: &'a Slot,
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
    pub(crate) fn new(slot: &'a Slot, id: u32) -> Result<Self> {
        let l = Self { slot, id };
        l.check()?;
        Ok(l)
    }

    /// A handle on `slot` whatever its state: every operation checks it
    /// (the C entry points use this so that a call checks once).
    #[inline]
    pub(crate) fn unchecked(slot: &'a Slot, id: u32) -> Self {
        Self { slot, id }
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
        let fd = s.fds[FD_PORT].load(Relaxed);
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
        Ok(self.slot.fds[FD_PORT].load(Relaxed))
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
        Ok(self.slot.len.load(Relaxed))
    }

    /// Copies the table (kHz, descending) into `out`; returns how many were
    /// copied, 0 when `out` is too small (DPDK's rule).
    pub fn freqs_into(&self, out: &mut [u32]) -> Result<usize> {
        self.host_only("the frequency table")?;
        let n = self.slot.len.load(Relaxed) as usize;
        if out.len() < n {
            return Ok(0);
        }
        for (o, f) in out.iter_mut().zip(&self.slot.freqs[..n]) {
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

    /// The current index in the table.
    #[inline]
    pub fn index(&self) -> Result<u32> {
        self.host_only("get_freq")?;
        Ok(self.slot.cur.load(Relaxed))
    }

    /// The current frequency in kHz (from the table, not read back).
    pub fn frequency(&self) -> Result<u32> {
        let i = self.index()?;
        Ok(self.slot.freqs[i as usize % MAX_FREQS].load(Relaxed))
    }

    /// Moves to `idx`. The no-change test is inlined into every caller; the
    /// change itself is out of line, so that the no-change path needs no
    /// stack frame of its own (it is the hot path of a polling PMD).
    #[inline]
    fn go(&self, idx: u32) -> Result<Changed> {
        let cur = self.slot.cur.load(Relaxed);
        if idx == cur {
            return Ok(Changed::No);
        }
        self.change(idx, cur)
    }

    /// Programs `idx` (not the current index `cur`).
    #[inline(never)]
    fn change(self, idx: u32, cur: u32) -> Result<Changed> {
        let s = self.slot;
        if idx == 0 {
            let f = s.flags();
            let need = F_TURBO_AVAILABLE | F_INDEX0_NEEDS_ENABLE;
            if f & need == need && f & F_TURBO_ENABLED == 0 {
                return Err(PowerError::TurboDisabled { lcore: self.id });
            }
        }
        s.program(self.id, idx, cur)?;
        s.cur.store(idx, Relaxed);
        s.account(cur);
        Ok(Changed::Yes)
    }

    /// Sets the frequency by table index.
    #[inline]
    pub fn set_index(&self, idx: u32) -> Result<Changed> {
        self.host_only("set_freq")?;
        let len = self.slot.len.load(Relaxed);
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
        let s = self.slot;
        match s.state.load(Acquire) {
            USED => {}
            USED_GUEST => return Plan::Send(step),
            _ => return Plan::NotInitialised,
        }
        let cur = s.cur.load(Relaxed);
        let len = s.len.load(Relaxed);
        let target = match step {
            // stops at the top, and below the turbo region when turbo is off
            Step::Up if cur == 0 || cur >= len || cur <= s.max_index() => return Plan::Stay,
            Step::Up => cur - 1,
            Step::Down if cur.saturating_add(1) >= len => return Plan::Stay,
            Step::Down => cur + 1,
            Step::Max => s.max_index(),
            Step::Min => len.saturating_sub(1),
            Step::EnableTurbo => return Plan::Turbo(true),
            Step::DisableTurbo => return Plan::Turbo(false),
        };
        if target == cur {
            Plan::Stay
        } else {
            Plan::Go { idx: target, cur }
        }
    }

    /// Carries out a [`plan`](Self::plan).
    #[inline]
    pub(crate) fn run(self, plan: Plan) -> Result<Changed> {
        match plan {
            Plan::Stay => Ok(Changed::No),
            Plan::Go { idx, cur } => self.change(idx, cur),
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

    /// Is turbo enabled?
    pub fn turbo_enabled(&self) -> Result<bool> {
        self.host_only("turbo_status")?;
        Ok(self.slot.flags() & F_TURBO_ENABLED != 0)
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
        let s = self.slot;
        if !on {
            s.flags.fetch_and(!F_TURBO_ENABLED, Relaxed);
            if s.flags() & F_TURBO_AVAILABLE != 0 && s.cur.load(Relaxed) <= s.nominal.load(Relaxed)
            {
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

    /// P-state statistics of this session, kept by the library on every
    /// change: time at each table index and the number of transitions.
    pub fn stats(&self) -> Result<PstateStats> {
        self.host_only("P-state statistics")?;
        let s = self.slot;
        let n = s.len.load(Relaxed) as usize;
        let cur = s.cur.load(Relaxed) as usize;
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

    /// Turbo and SST-BF capabilities.
    pub fn capabilities(&self) -> Result<Capabilities> {
        self.host_only("get_capabilities")?;
        let f = self.slot.flags();
        Ok(Capabilities {
            turbo: f & F_TURBO_AVAILABLE != 0,
            priority: f & F_PRIORITY != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn a_retired_descriptor_no_longer_reaches_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("scaling_setspeed");
        std::fs::write(&path, "1000\n").expect("write");
        let f: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open")
            .into();
        let raw = f.as_raw_fd();
        retire(&f);
        // the number is still taken, and a stale write lands in /dev/null
        pwrite_all(raw, b"2000\n").expect("write to /dev/null succeeds");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "1000\n");
        let mut file = std::fs::File::from(f);
        let mut s = String::new();
        file.rewind().expect("rewind");
        file.read_to_string(&mut s).expect("read");
        assert_eq!(s, "", "reads see end of file");
        file.write_all(b"x").expect("write");
    }
}
