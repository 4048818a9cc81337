//! The library's one error type, [`PowerError`].
//!
//! The one error type of the library. The C layer maps it to DPDK's return
//! values in `capi::errors`; everything else keeps the detail (which lcore,
//! which CPU, which file, which OS error).

use std::io;
use std::path::PathBuf;

use crate::env::Env;

/// What went wrong, with the lcore/CPU/file involved and the OS error.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // the field names say it
pub enum PowerError {
    /// The lcore id is beyond what the library (or DPDK's EAL) supports.
    #[error("lcore {lcore} is out of range (supported: 0..{max})")]
    InvalidLcore { lcore: u32, max: u32 },
    /// DPDK's EAL in this process does not know the lcore (beyond its
    /// `RTE_MAX_LCORE`).
    #[error("lcore {lcore} is beyond DPDK EAL's RTE_MAX_LCORE")]
    NotEalLcore { lcore: u32 },
    /// The lcore was never initialised, or was exited.
    #[error("lcore {lcore} is not initialised")]
    NotInitialised { lcore: u32 },
    /// `init` on an lcore that is initialised (or being initialised).
    #[error("lcore {lcore} is already in use")]
    InUse { lcore: u32 },
    /// Every domain of the lcore table is in use by other cpufreq policies
    /// (more policies than the table has lcores: cannot happen through the
    /// lcore ids the table accepts, kept for the record).
    #[error("lcore {lcore}: no free frequency domain (table of {max})")]
    TooManyDomains { lcore: u32, max: usize },
    /// `set_env` while another env is selected.
    #[error("power env already set to {current}")]
    EnvAlreadySet { current: Env },
    /// An env value that is not one of DPDK's.
    #[error("invalid power env value {0}")]
    InvalidEnv(u32),
    /// The lcore maps to zero or several CPUs in DPDK's EAL.
    #[error("lcore {lcore} maps to {ncpus} CPUs; exactly one is required")]
    CpuMapping { lcore: u32, ncpus: u32 },
    /// The CPU's cpufreq driver is not the one the selected env serves.
    #[error("cpu {cpu}: scaling driver is {found:?}, env {env} needs another")]
    DriverMismatch { cpu: u32, env: Env, found: String },
    /// No env could be detected for the lcore.
    #[error("lcore {lcore} (cpu {cpu}): no supported power env found ({detail})")]
    NoEnv {
        lcore: u32,
        cpu: u32,
        detail: String,
    },
    /// Reading or writing a sysfs attribute failed.
    #[error("cpu {cpu}: cannot {op} {path}: {source}")]
    Sysfs {
        cpu: u32,
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A frequency write on the fast path was refused by the kernel.
    #[error("cpu {cpu}: writing {attr} failed: {source}")]
    Write {
        cpu: u32,
        attr: &'static str,
        #[source]
        source: io::Error,
    },
    /// A sysfs attribute holds something that is not what the kernel writes.
    #[error("cpu {cpu}: {path}: unexpected content {text:?}")]
    Parse {
        cpu: u32,
        path: PathBuf,
        text: String,
    },
    /// The frequency table cannot be built from what sysfs says.
    #[error("cpu {cpu}: {reason}")]
    Table { cpu: u32, reason: String },
    /// A frequency index outside the lcore's table.
    #[error("lcore {lcore}: frequency index {index} out of range (table has {len})")]
    IndexOutOfRange { lcore: u32, index: u32, len: u32 },
    /// Turbo requested on a CPU without turbo.
    #[error("lcore {lcore}: turbo is not available")]
    TurboUnavailable { lcore: u32 },
    /// The turbo index was requested while turbo is disabled (intel_pstate).
    #[error("lcore {lcore}: turbo is disabled")]
    TurboDisabled { lcore: u32 },
    /// The operation does not exist in this env (DPDK returns -ENOTSUP).
    #[error("lcore {lcore}: {what} is not supported in env {env}")]
    Unsupported {
        lcore: u32,
        env: Env,
        what: &'static str,
    },
    /// Bad argument from the caller (e.g. a PMD scaling limit).
    #[error("{0}")]
    InvalidArgument(String),
    /// The host answered a request with NACK, or not at all (confirmed mode).
    #[error("lcore {lcore}: host reply: {reply}")]
    GuestReply { lcore: u32, reply: &'static str },
    /// The guest channel of an lcore failed (KVM env).
    #[error("lcore {lcore}: channel {path}: {source}")]
    Channel {
        lcore: u32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The restore journal refused or failed (a CPU held by a live process,
    /// a stale state that could not be put back).
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
}

/// Result alias used across the crate.
pub type Result<T, E = PowerError> = std::result::Result<T, E>;

impl PowerError {
    /// The OS error number behind this error, if there is one.
    pub fn os_error(&self) -> Option<i32> {
        match self {
            Self::Sysfs { source, .. }
            | Self::Write { source, .. }
            | Self::Channel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
