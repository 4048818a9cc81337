//! # rte_power
//!
//! A drop-in replacement for DPDK's power management library
//! (`librte_power`): the same C API (see `include/`) over a safe Rust core,
//! host cpufreq drivers (acpi-cpufreq, intel_pstate/intel_cpufreq,
//! cppc_cpufreq, amd-pstate/amd-pstate-epp) and a lock-free per-lcore fast
//! path.
//!
//! The Rust API: a [`Power`] context (the C API uses [`Power::global`]),
//! [`Env`] selection, and [`Lcore`] handles for the frequency operations.
//!
//! ```no_run
//! use rte_power::{Changed, Config, Power};
//!
//! // a generated tree instead of /sys/devices/system/cpu
//! let power = Power::new(Config::with_sysfs("/tmp/fake-sys"));
//! let lcore = power.init(0)?;
//! let table = lcore.freqs()?;                 // kHz, index 0 = highest
//! assert_eq!(lcore.down()?, Changed::Yes);    // one P-state lower
//! println!("{} kHz of {:?}", lcore.frequency()?, table);
//! power.exit(0)?;
//! # Ok::<(), rte_power::PowerError>(())
//! ```

#![warn(missing_docs)]

pub mod capi;
pub mod cpumap;
pub mod env;
pub mod error;
pub mod guest;
pub mod guest_cli;
mod host;
pub mod lcore;
#[doc(hidden)]
pub mod log;
pub mod pmd_mgmt;
mod power;
pub mod simulate;
pub mod sysfs;
pub mod wire;

pub use cpumap::CpuMap;
pub use env::Env;
pub use error::{PowerError, Result};
pub use host::MAX_FREQS;
pub use lcore::{Capabilities, Changed, Lcore, MAX_LCORE};
pub use power::{Config, Power, DEFAULT_PORTS_DIR, PORTS_DIR_ENV, PORT_PREFIX};
