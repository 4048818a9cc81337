//! # rte_power
//!
//! A drop-in replacement for DPDK's power management library
//! (`librte_power`): the same C API (see `include/`) over a safe Rust core,
//! host cpufreq drivers (acpi-cpufreq, intel_pstate/intel_cpufreq,
//! cppc_cpufreq, amd-pstate/amd-pstate-epp) and a lock-free per-lcore fast
//! path.
//!
//! The Rust API: a [`Power`] context (the C API uses
//! [`capi::global::power`]), [`Env`] selection, and [`Lcore`] handles for
//! the frequency operations.
//!
//! ```
//! use testkit::sysfs::{FakeSysfs, Flavour};
//! use rte_power::{Changed, Config, Env, Power};
//!
//! // a generated acpi-cpufreq tree instead of /sys/devices/system/cpu
//! let dir = tempfile::tempdir()?;
//! FakeSysfs::new(Flavour::Acpi, 2).create(dir.path())?;
//! let power = Power::new(Config::with_sysfs(dir.path()));
//!
//! let lcore = power.init(1)?;                  // detects acpi-cpufreq
//! assert_eq!(power.env(), Some(Env::AcpiCpufreq));
//! let table = lcore.freqs()?;                  // kHz, index 0 = highest
//! assert_eq!(lcore.down()?, Changed::Yes);     // one P-state lower
//! assert_eq!(lcore.frequency()?, table[1]);
//! assert_eq!(lcore.max()?, Changed::Yes);      // back to the top
//! assert_eq!(lcore.max()?, Changed::No);       // nothing to do: no write
//! power.exit(1)?;                              // governor restored
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod capi;
mod clock;
pub mod cpulist;
pub mod cpumap;
pub mod dpdk_sym;
pub mod empty_poll;
pub mod env;
pub mod error;
pub mod guest;
mod host;
pub mod journal;
pub mod lcore;
#[doc(hidden)]
pub mod log;
pub mod pmd_mgmt;
mod power;
pub mod qos;
pub mod sysfs;
pub mod uncore;
pub mod wire;

pub use cpumap::CpuMap;
pub use env::Env;
pub use error::{PowerError, Result};
pub use guest::{DEFAULT_PORTS_DIR, PORTS_DIR_ENV, PORT_PREFIX};
pub use host::MAX_FREQS;
pub use lcore::{Capabilities, Changed, Lcore, PstateStats, MAX_LCORE};
pub use power::{Config, PmdConfig, Power};
