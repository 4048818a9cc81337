//! One lcore's slot, the table of slots, install and uninstall.
//!
//! One lcore's slot and the table of them: the atomics the fast path
//! reads, init's install and exit's uninstall, the claim that owns a slot
//! while it changes, and the frequency write itself.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::*};
use std::sync::Mutex;

use super::*;
use crate::host::{Control, Programming, Restore, TurboModel};
use crate::sysfs::{pwrite_all, raw_fd, Rendered, SysfsRoot};

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

/// What init opened and what exit must undo; only touched by the slot owner.
#[derive(Debug)]
struct Owned {
    cpu: u32,
    _files: Held,
    restore: Restore,
}

/// One lcore's state. See the module comment for the concurrency rules.
pub(crate) struct Slot {
    pub(super) state: AtomicU32,
    pub(super) backend: AtomicU32,
    pub(super) env: AtomicU32,
    pub(super) cpu: AtomicU32,
    pub(super) cur: AtomicU32,
    pub(super) len: AtomicU32,
    pub(super) nominal: AtomicU32,
    pub(super) flags: AtomicU32,
    pub(super) fds: [AtomicI32; 2],
    /// Guest: confirmed-mode timeout in ms (0 = off) and requests sent.
    pub(super) confirm_ms: AtomicU32,
    pub(super) sends: AtomicU32,
    pub(super) freqs: [AtomicU32; MAX_FREQS],
    pub(super) text: [[AtomicU64; 2]; MAX_FREQS],
    /// P-state statistics kept by the library: ns spent at each index
    /// (closed intervals), the start of the current interval, transitions.
    pub(super) residency: [AtomicU64; MAX_FREQS],
    /// In [`crate::clock::ticks`] (the TSC on x86_64): cheaper than a clock read.
    pub(super) since: AtomicU64,
    pub(super) started: AtomicU64,
    /// CLOCK_MONOTONIC at the start of the session, to convert ticks to ns.
    pub(super) started_ns: AtomicU64,
    pub(super) transitions: AtomicU64,
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

    /// Closes the previous session's retired descriptors (slot owned).
    pub(super) fn close_retired(&self) {
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
    pub(super) fn flags(&self) -> u32 {
        self.flags.load(Relaxed)
    }

    /// Highest index allowed without turbo, or 0 with turbo enabled.
    #[inline]
    pub(super) fn max_index(&self) -> u32 {
        let f = self.flags();
        if f & F_TURBO_AVAILABLE != 0 && f & F_TURBO_ENABLED == 0 {
            self.nominal.load(Relaxed)
        } else {
            0
        }
    }

    #[inline]
    pub(super) fn rendered(&self, idx: u32) -> Rendered {
        let t = &self.text[idx as usize % MAX_FREQS];
        Rendered::from_words([t[0].load(Relaxed), t[1].load(Relaxed)])
    }

    #[inline]
    pub(super) fn write(&self, which: usize, attr: &'static str, idx: u32) -> Result<()> {
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
    pub(super) fn program(&self, lcore: u32, idx: u32, cur: u32) -> Result<()> {
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
