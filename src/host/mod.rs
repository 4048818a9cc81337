//! Host cpufreq drivers behind one small interface.
//!
//! A driver only *probes*: it reads what the kernel offers, switches the
//! governor it needs, builds the frequency table (descending, index 0 =
//! highest) and says how a frequency is programmed ([`Control`]). Policy
//! (up/down/min/max, turbo rules, "no write when nothing changes") lives once
//! for all drivers in [`crate::lcore`]. Every host change is recorded in a
//! [`Restore`] so that `exit`, or a failed `init`, puts it back. The probe
//! steps several drivers share (governor switch, setspeed, table and index
//! lookup, rounding) are written once, in `support.rs`.

use std::fs::File;

use crate::env::Env;
use crate::error::Result;
use crate::log::Level;
use crate::sysfs::SysfsRoot;

pub(crate) mod acpi;
pub(crate) mod amd_pstate;
pub(crate) mod cppc;
pub(crate) mod pstate;
mod support;

/// DPDK's per-lcore table capacity (`RTE_MAX_LCORE_FREQS`).
pub const MAX_FREQS: usize = 64;

/// How the fast path programs a frequency: exactly one of two shapes.
#[derive(Debug)]
pub(crate) enum Control {
    /// Write the frequency to `scaling_setspeed` (userspace governor).
    Setspeed(File),
    /// Pin `scaling_min_freq` and `scaling_max_freq` to the same value.
    MinMax { min: File, max: File },
}

/// The turbo rules of a driver (DPDK's, per driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TurboModel {
    /// The table has a turbo region `[0, nominal_index)`.
    pub available: bool,
    /// Turbo state right after init: `Some(x)`, or `None` to keep the state
    /// the lcore had in its previous session (intel_pstate never sets it).
    pub at_init: Option<bool>,
    /// First index that is not turbo (1 with a one-entry turbo bucket; amd-pstate
    /// computes it; 0 without turbo).
    pub nominal_index: u32,
    /// `enable_turbo` also moves to the (turbo) maximum.
    pub enable_selects_max: bool,
    /// Index 0 may only be set while turbo is enabled (intel_pstate).
    pub index0_needs_enable: bool,
}

impl TurboModel {
    /// acpi-cpufreq / cppc: one turbo bucket at index 0, enabled at every init.
    pub fn bucket(available: bool) -> Self {
        Self {
            available,
            at_init: Some(available),
            nominal_index: u32::from(available),
            enable_selects_max: true,
            index0_needs_enable: false,
        }
    }
}

/// What `exit` (or a failed init) writes back, in this order: setspeed,
/// limits, then the governor.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Restore {
    /// Original `scaling_setspeed`, when the original governor was userspace
    /// (the only case in which it means something after we leave).
    pub setspeed: Option<u32>,
    /// Original `(scaling_min_freq, scaling_max_freq)`.
    pub limits: Option<(u32, u32)>,
    /// Original governor, when we changed it.
    pub governor: Option<String>,
}

impl Restore {
    /// Puts everything back; tries every step and reports the first failure.
    pub fn apply(&self, root: &SysfsRoot, cpu: u32) -> Result<()> {
        let mut first_err = None;
        let mut keep = |r: Result<()>| {
            if let Err(e) = r {
                crate::log!(Level::Error, "restore: {e}");
                first_err.get_or_insert(e);
            }
        };
        if let Some(v) = self.setspeed {
            keep(root.write_str(cpu, &root.cpufreq(cpu, "scaling_setspeed"), &v.to_string()));
        }
        if let Some((min, max)) = self.limits {
            keep(restore_limits(root, cpu, min, max));
        }
        if let Some(g) = &self.governor {
            keep(root.set_governor(cpu, g));
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Writes min/max limits in the order the kernel accepts from a pinned state.
fn restore_limits(root: &SysfsRoot, cpu: u32, min: u32, max: u32) -> Result<()> {
    let min_p = root.cpufreq(cpu, "scaling_min_freq");
    let max_p = root.cpufreq(cpu, "scaling_max_freq");
    let pinned = root.read_u32(cpu, &min_p).unwrap_or(min);
    if min <= pinned {
        root.write_str(cpu, &min_p, &min.to_string())?;
        root.write_str(cpu, &max_p, &max.to_string())
    } else {
        root.write_str(cpu, &max_p, &max.to_string())?;
        root.write_str(cpu, &min_p, &min.to_string())
    }
}

/// What a successful probe hands to the lcore table.
#[derive(Debug)]
pub(crate) struct Programming {
    /// Frequencies in kHz, descending; index 0 = highest.
    pub table: Vec<u32>,
    /// The value written for each index (intel_pstate writes the CPU's
    /// maximum for its synthetic turbo entry).
    pub writes: Vec<u32>,
    /// The index the CPU is at now, if known.
    pub current: Option<u32>,
    pub control: Control,
    pub turbo: TurboModel,
    /// SST-BF high-priority core (intel_pstate).
    pub priority: bool,
    pub restore: Restore,
}

/// Inputs of a probe.
pub(crate) struct ProbeCtx<'a> {
    pub root: &'a SysfsRoot,
    pub cpu: u32,
    /// The CPU's `scaling_driver`.
    pub scaling_driver: &'a str,
    /// PMD-management scaling limits of the lcore in kHz: `(min, max)`,
    /// 0 = unset (intel_pstate reads them at init).
    pub pmd_limits: (u32, u32),
}

/// The ops table every host driver fills in.
pub(crate) trait CpufreqDriver: Sync {
    /// The env this driver serves.
    fn env(&self) -> Env;
    /// Reads the CPU, switches its governor, builds the table. Must leave the
    /// CPU as it found it when it fails.
    fn probe(&self, ctx: &ProbeCtx<'_>) -> Result<Programming>;
}

/// The host driver of an env (`None` for the KVM guest env).
pub(crate) fn driver_for(env: Env) -> Option<&'static dyn CpufreqDriver> {
    match env {
        Env::AcpiCpufreq => Some(&acpi::Acpi),
        Env::PstateCpufreq => Some(&pstate::Pstate),
        Env::CppcCpufreq => Some(&cppc::Cppc),
        Env::AmdPstateCpufreq => Some(&amd_pstate::AmdPstate),
        Env::KvmVm => None,
    }
}
