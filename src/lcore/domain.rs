//! One cpufreq frequency domain: the state every lcore on it shares.
//!
//! A frequency domain is one cpufreq policy: the CPUs that the kernel
//! scales together (`related_cpus`, or the `cpuN/cpufreq -> policyM`
//! link). Several lcores may sit on one domain (two lcores on one CPU, or
//! lcores on sibling CPUs of one policy), as DPDK allows. The domain holds
//! what they share: the table, the open files the fast path writes, the
//! current index, the turbo switch, the statistics, and what exit must put
//! back. The first lcore's init probes the CPU and fills the domain; later
//! lcores attach to it without writing anything; the last exit restores.
//!
//! The current index is one atomic word, `(generation << 32) | index`. A
//! change writes the file and then moves the word with a compare-exchange
//! from the value it planned from: when another lcore of the domain changed
//! it meanwhile, the file may hold either value, so the change is decided
//! again from the new word and written again until the record and the last
//! write agree. Uncontended, that is one `pwrite` and one CAS; no lock.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::*};
use std::sync::Mutex;

use super::*;
use crate::host::{Control, Programming, Restore, TurboModel};
use crate::sysfs::{pwrite_all, raw_fd, Rendered, SysfsRoot};

/// Domains a table has room for: no more than lcores can be attached.
pub(crate) const MAX_DOMAINS: usize = MAX_LCORE as usize;

/// Points `fd` at /dev/null (the number stays taken): a write through it
/// has no effect, a read sees end of file. If /dev/null cannot be opened
/// the descriptor keeps its file, which is still better than a number that
/// may name any file opened later.
pub(super) fn retire(fd: &OwnedFd) {
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

/// What the first init opened and the last exit must undo; only touched
/// under the table's domain lock.
#[derive(Debug)]
struct Owned {
    cpu: u32,
    files: Control,
    restore: Restore,
}

impl Owned {
    fn into_fds(self) -> (Vec<OwnedFd>, Restore, u32) {
        let fds = match self.files {
            Control::Setspeed(f) => vec![f.into()],
            Control::MinMax { min, max } => vec![min.into(), max.into()],
        };
        (fds, self.restore, self.cpu)
    }
}

/// The index word: `(generation << 32) | index`.
#[inline]
pub(super) const fn word(generation: u64, idx: u32) -> u64 {
    (generation << 32) | idx as u64
}

/// The index of an index word.
#[inline]
pub(super) const fn index_of(word: u64) -> u32 {
    word as u32
}

/// One frequency domain's shared state. See the module comment.
pub(crate) struct Domain {
    pub(super) backend: AtomicU32,
    /// The CPU whose `cpufreq/` files the domain uses (the first lcore's).
    pub(super) cpu: AtomicU32,
    /// `(generation << 32) | current index`.
    pub(super) cur: AtomicU64,
    pub(super) len: AtomicU32,
    pub(super) nominal: AtomicU32,
    pub(super) flags: AtomicU32,
    pub(super) fds: [AtomicI32; 2],
    pub(super) freqs: [AtomicU32; MAX_FREQS],
    pub(super) text: [[AtomicU64; 2]; MAX_FREQS],
    /// P-state statistics kept by the library: ticks spent at each index
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
    /// a call racing the last exit cannot reach a file opened since (see
    /// `uninstall`); closed at the next install.
    retired: Mutex<Option<Box<[OwnedFd]>>>,
}

impl Domain {
    /// An unused domain. All zero, so that a static table is `.bss`.
    pub(crate) const fn new() -> Self {
        Self {
            backend: AtomicU32::new(BACKEND_NONE),
            cpu: AtomicU32::new(0),
            cur: AtomicU64::new(0),
            len: AtomicU32::new(0),
            nominal: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            fds: [AtomicI32::new(0), AtomicI32::new(0)],
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

    /// Installs the first lcore's probe and programs the start frequency
    /// (domain lock held, no lcore attached yet).
    pub fn install(&self, lcore: u32, cpu: u32, p: Programming) -> Result<()> {
        drop(
            self.retired
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
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
        self.cpu.store(cpu, Relaxed);
        let generation = (self.cur.load(Relaxed) >> 32).wrapping_add(1);
        let start_word = word(generation, current.unwrap_or(UNKNOWN_INDEX));
        self.cur.store(start_word, Relaxed);
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
            files: control,
            restore,
        }));
        // First write: the starting frequency is always programmed, even when
        // the index read at init says it is there already (for min/max
        // pinning drivers the limits are not pinned until written).
        let start = self.max_index();
        self.program(lcore, start, index_of(start_word))?;
        self.cur.store(word(generation, start), Relaxed);
        self.reset_stats();
        Ok(())
    }

    /// Closes the files and puts back what the first init changed (domain
    /// lock held, the last lcore detached).
    pub fn uninstall(&self, root: &SysfsRoot) -> Result<()> {
        self.backend.store(BACKEND_NONE, Relaxed);
        let owned = self.owned.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(owned) = owned else {
            return Ok(());
        };
        // A call that loaded a descriptor just before this exit may still
        // use it: the number must not come to name a file opened since (the
        // restore below opens some). So the files are swapped for /dev/null
        // (before the restore writes) and the numbers kept until next time.
        let (fds, restore, cpu) = owned.into_fds();
        fds.iter().for_each(retire);
        *self.retired.lock().unwrap_or_else(|e| e.into_inner()) = Some(fds.into_boxed_slice());
        restore.apply(root, cpu)
    }

    /// The CPU whose `cpufreq/` files the domain uses.
    pub(crate) fn cpu(&self) -> u32 {
        self.cpu.load(Relaxed)
    }

    #[inline]
    pub(super) fn flags(&self) -> u32 {
        self.flags.load(Relaxed)
    }

    /// The current index.
    #[inline]
    pub(super) fn index(&self) -> u32 {
        index_of(self.cur.load(Relaxed))
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

    /// Where `step` goes from index `cur`: `None` when it stays (the policy
    /// of up/down/max/min, once for every driver).
    #[inline]
    pub(super) fn target(&self, step: Step, cur: u32) -> Option<u32> {
        let len = self.len.load(Relaxed);
        let target = match step {
            // stops at the top, and below the turbo region when turbo is off
            Step::Up if cur == 0 || cur >= len || cur <= self.max_index() => return None,
            Step::Up => cur - 1,
            Step::Down if cur.saturating_add(1) >= len => return None,
            Step::Down => cur + 1,
            Step::Max => self.max_index(),
            Step::Min => len.saturating_sub(1),
            Step::EnableTurbo | Step::DisableTurbo => return None,
        };
        (target != cur).then_some(target)
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

    /// Programs `idx`, the domain's word having been `seen`, and records it.
    /// `step` says how to decide again if another lcore of the domain
    /// changed it meanwhile (`None`: `idx` is absolute). Returns whether the
    /// recorded index moved.
    pub(super) fn change(
        &self,
        lcore: u32,
        mut idx: u32,
        mut seen: u64,
        step: Option<Step>,
    ) -> Result<Changed> {
        loop {
            if idx == 0 {
                let f = self.flags();
                let need = F_TURBO_AVAILABLE | F_INDEX0_NEEDS_ENABLE;
                if f & need == need && f & F_TURBO_ENABLED == 0 {
                    return Err(PowerError::TurboDisabled { lcore });
                }
            }
            let from = index_of(seen);
            self.program(lcore, idx, from)?;
            let next = word((seen >> 32).wrapping_add(1), idx);
            match self.cur.compare_exchange(seen, next, Relaxed, Relaxed) {
                Ok(_) if idx == from => return Ok(Changed::No),
                Ok(_) => {
                    self.account(from);
                    return Ok(Changed::Yes);
                }
                // Another lcore of the domain changed it while we wrote: the
                // file holds its value or ours. Decide again from its record
                // and write again, so that the record is the last write.
                Err(now) => {
                    seen = now;
                    let cur = index_of(now);
                    idx = match step {
                        Some(s) => self.target(s, cur).unwrap_or(cur),
                        None => idx,
                    };
                }
            }
        }
    }
}

/// A whole domain table.
pub(crate) type Domains = [Domain; MAX_DOMAINS];

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

    /// A setspeed domain on a plain file with a four-entry table, at index 0.
    fn setspeed_domain(dir: &std::path::Path) -> (Domain, std::path::PathBuf) {
        let path = dir.join("scaling_setspeed");
        std::fs::write(&path, "4000\n").expect("write");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        let table = vec![4000, 3000, 2000, 1000];
        let d = Domain::new();
        d.install(
            0,
            0,
            Programming {
                writes: table.clone(),
                table,
                current: Some(0),
                control: Control::Setspeed(file),
                turbo: TurboModel::bucket(false),
                priority: false,
                restore: Restore::default(),
            },
        )
        .expect("install");
        (d, path)
    }

    fn file(path: &std::path::Path) -> String {
        std::fs::read_to_string(path)
            .expect("read")
            .trim()
            .to_string()
    }

    #[test]
    fn a_change_raced_by_another_lcore_is_decided_again_and_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (d, path) = setspeed_domain(dir.path());
        // lcore 0 plans a step down from index 1 ...
        assert_eq!(
            d.change(0, 1, d.cur.load(Relaxed), None).expect("to 1"),
            Changed::Yes
        );
        let planned = d.cur.load(Relaxed);
        // ... lcore 1 moves the domain to 3 meanwhile ...
        assert_eq!(d.change(1, 3, planned, None).expect("to 3"), Changed::Yes);
        assert_eq!(file(&path), "1000");
        // ... lcore 0's write of index 2 lands after it: its CAS fails, the
        // step is decided again from 3 (down: stays) and 3 is written again
        let r = d.change(0, 2, planned, Some(Step::Down)).expect("raced");
        assert_eq!(r, Changed::No, "the domain did not move for lcore 0");
        assert_eq!(d.index(), 3);
        assert_eq!(file(&path), "1000", "the file is what the domain records");
        // an up step raced the same way goes one up from the new index
        let stale = d.cur.load(Relaxed);
        assert_eq!(d.change(1, 0, stale, None).expect("to 0"), Changed::Yes);
        let r = d.change(0, 2, stale, Some(Step::Up)).expect("raced up");
        assert_eq!(r, Changed::No, "at the top: stays");
        assert_eq!((d.index(), file(&path).as_str()), (0, "4000"));
        // an absolute index raced is written again and kept
        let stale = d.cur.load(Relaxed);
        d.change(1, 1, stale, None).expect("to 1");
        assert_eq!(d.change(0, 2, stale, None).expect("abs"), Changed::Yes);
        assert_eq!((d.index(), file(&path).as_str()), (2, "2000"));
    }

    #[test]
    fn the_index_word_keeps_generation_and_index_apart() {
        let w = word(7, 3);
        assert_eq!(index_of(w), 3);
        assert_eq!(w >> 32, 7);
        assert_eq!(index_of(word(1, UNKNOWN_INDEX)), UNKNOWN_INDEX);
    }
}
