//! Branch counters of host CPUs: `perf_event_open` hardware events per CPU, or a stand-in.
//!
//! Thresholds per core are in [`super::thresholds`].
//!
//! Two counting events per pCPU (`PERF_TYPE_HARDWARE`:
//! `PERF_COUNT_HW_BRANCH_INSTRUCTIONS` and `PERF_COUNT_HW_BRANCH_MISSES`,
//! `pid = -1`, every task on that CPU), read with `read(2)`. The kernel
//! shares the PMU with perf and the NMI watchdog; no MSR is written.

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Why branch counters are not available.
#[derive(Debug, thiserror::Error)]
pub enum BranchError {
    /// `perf_event_open` refused (no PMU in a VM or container, paranoid
    /// setting, no such CPU).
    #[error(
        "cpu {cpu}: perf_event_open({event}) failed: {error} (no hardware PMU here, or perf_event_paranoid forbids CPU-wide counters)"
    )]
    Open {
        /// The pCPU.
        cpu: u32,
        /// The event.
        event: &'static str,
        /// The OS error.
        error: io::Error,
    },
    /// Reading a counter failed.
    #[error("cpu {cpu}: reading the branch counters failed: {error}")]
    Read {
        /// The pCPU.
        cpu: u32,
        /// The OS error.
        error: io::Error,
    },
    /// The pCPU has no open counters.
    #[error("cpu {0}: branch counters not open")]
    NotOpen(u32),
}

/// Cumulative counts of a pCPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BranchCount {
    /// Branch instructions retired.
    pub branches: u64,
    /// Of which mispredicted.
    pub misses: u64,
}

/// Per-CPU branch counters.
pub trait BranchCounters: Send {
    /// Starts counting on `cpu` (idempotent).
    fn open(&mut self, cpu: u32) -> Result<(), BranchError>;
    /// Current cumulative counts.
    fn read(&mut self, cpu: u32) -> Result<BranchCount, BranchError>;
    /// Stops counting on `cpu`.
    fn close(&mut self, cpu: u32);
    /// CPUs being counted.
    fn open_cpus(&self) -> Vec<u32>;
}

const PERF_TYPE_HARDWARE: u32 = 0;
const PERF_COUNT_HW_BRANCH_INSTRUCTIONS: u64 = 4;
const PERF_COUNT_HW_BRANCH_MISSES: u64 = 5;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
/// `PERF_ATTR_SIZE_VER0`: the first 64 bytes of `struct perf_event_attr`.
const ATTR_SIZE: usize = 64;

/// Opens one counting event on every task of `cpu`.
fn perf_open(cpu: u32, config: u64) -> io::Result<OwnedFd> {
    // struct perf_event_attr, version 0: type, size, config, then zeroes
    // (counting, enabled, no sampling)
    let mut attr = [0u64; ATTR_SIZE / 8];
    attr[0] = u64::from(PERF_TYPE_HARDWARE) | ((ATTR_SIZE as u64) << 32);
    attr[1] = config;
    let cpu = libc::c_int::try_from(cpu).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `attr` is a valid perf_event_attr of the size it declares
    // (the layout of the first two words is the same on every Linux ABI
    // this builds for: little-endian u32 type then u32 size).
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1 as libc::pid_t,
            cpu,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor the kernel gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

fn read_counter(fd: &OwnedFd) -> io::Result<u64> {
    let mut v = 0u64;
    // SAFETY: reads exactly 8 bytes into `v`.
    let n = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    if n != 8 {
        return Err(if n < 0 {
            io::Error::last_os_error()
        } else {
            io::Error::from(io::ErrorKind::UnexpectedEof)
        });
    }
    Ok(v)
}

/// The kernel's perf events.
#[derive(Debug, Default)]
pub struct PerfCounters {
    open: BTreeMap<u32, (OwnedFd, OwnedFd)>,
}

impl PerfCounters {
    /// No CPU counted yet.
    pub fn new() -> Self {
        Self::default()
    }
}

impl BranchCounters for PerfCounters {
    fn open(&mut self, cpu: u32) -> Result<(), BranchError> {
        if self.open.contains_key(&cpu) {
            return Ok(());
        }
        let fail = |event| move |error| BranchError::Open { cpu, event, error };
        let b = perf_open(cpu, PERF_COUNT_HW_BRANCH_INSTRUCTIONS)
            .map_err(fail("branch-instructions"))?;
        let m = perf_open(cpu, PERF_COUNT_HW_BRANCH_MISSES).map_err(fail("branch-misses"))?;
        self.open.insert(cpu, (b, m));
        Ok(())
    }

    fn read(&mut self, cpu: u32) -> Result<BranchCount, BranchError> {
        let (b, m) = self.open.get(&cpu).ok_or(BranchError::NotOpen(cpu))?;
        let err = |error| BranchError::Read { cpu, error };
        Ok(BranchCount {
            branches: read_counter(b).map_err(err)?,
            misses: read_counter(m).map_err(err)?,
        })
    }

    fn close(&mut self, cpu: u32) {
        self.open.remove(&cpu);
    }

    fn open_cpus(&self) -> Vec<u32> {
        self.open.keys().copied().collect()
    }
}

/// A stand-in: counts set by hand (tests, benchmarks); `refuse` makes
/// every open fail as a PMU-less host does.
#[derive(Debug, Default)]
pub struct FakeCounters {
    /// Counts per CPU (an open CPU without an entry reads zero).
    pub counts: BTreeMap<u32, BranchCount>,
    /// Open fails with ENOENT.
    pub refuse: bool,
    open: std::collections::BTreeSet<u32>,
}

impl BranchCounters for FakeCounters {
    fn open(&mut self, cpu: u32) -> Result<(), BranchError> {
        if self.refuse {
            return Err(BranchError::Open {
                cpu,
                event: "branch-instructions",
                error: io::Error::from_raw_os_error(libc::ENOENT),
            });
        }
        self.open.insert(cpu);
        Ok(())
    }

    fn read(&mut self, cpu: u32) -> Result<BranchCount, BranchError> {
        if !self.open.contains(&cpu) {
            return Err(BranchError::NotOpen(cpu));
        }
        Ok(self.counts.get(&cpu).copied().unwrap_or_default())
    }

    fn close(&mut self, cpu: u32) {
        self.open.remove(&cpu);
    }

    fn open_cpus(&self) -> Vec<u32> {
        self.open.iter().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_counters_open_or_say_why_not() {
        let mut p = PerfCounters::new();
        match p.open(0) {
            Ok(()) => {
                let a = p.read(0).expect("read");
                let b = p.read(0).expect("read");
                assert!(b.branches >= a.branches);
                assert_eq!(p.open_cpus(), [0]);
                p.close(0);
                assert!(matches!(p.read(0), Err(BranchError::NotOpen(0))));
            }
            Err(e) => assert!(e.to_string().contains("perf_event_open"), "{e}"),
        }
        assert!(p.open(u32::MAX).is_err(), "no such CPU");
    }
}
