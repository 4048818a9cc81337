//! Host cpufreq drivers behind one small interface.
//!
//! A driver only *probes*: it reads what the kernel offers, switches the
//! governor it needs, builds the frequency table (descending, index 0 =
//! highest) and says how a frequency is programmed ([`Control`]). Policy
//! (up/down/min/max, turbo rules, "no write when nothing changes") lives once
//! for all drivers in [`crate::lcore`]. Every host change is recorded in a
//! [`Restore`] so that `exit`, or a failed `init`, puts it back.

use std::fs::File;

use crate::env::Env;
use crate::error::{PowerError, Result};
use crate::log::Level;
use crate::sysfs::SysfsRoot;

pub(crate) mod acpi;
pub(crate) mod amd_pstate;
pub(crate) mod cppc;
pub(crate) mod pstate;

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

/// A governor switch that is undone when dropped, unless kept.
pub(crate) struct GovernorSwitch<'a> {
    root: &'a SysfsRoot,
    cpu: u32,
    original: String,
    changed: bool,
}

impl<'a> GovernorSwitch<'a> {
    /// Switches `cpu` to `name` (no write if it is already that governor).
    pub fn to(root: &'a SysfsRoot, cpu: u32, name: &str) -> Result<Self> {
        let original = root.governor(cpu)?;
        let changed = original != name;
        if changed {
            root.set_governor(cpu, name)?;
        }
        Ok(Self {
            root,
            cpu,
            original,
            changed,
        })
    }

    /// The governor found before the switch.
    pub fn original(&self) -> &str {
        &self.original
    }

    /// Keeps the switch; returns the governor to restore at exit, if any.
    pub fn keep(mut self) -> Option<String> {
        let changed = std::mem::replace(&mut self.changed, false);
        changed.then(|| std::mem::take(&mut self.original))
    }
}

impl Drop for GovernorSwitch<'_> {
    fn drop(&mut self) {
        if self.changed {
            if let Err(e) = self.root.set_governor(self.cpu, &self.original) {
                crate::log!(
                    Level::Error,
                    "cannot restore governor after failed init: {e}"
                );
            }
        }
    }
}

/// Opens `scaling_setspeed` for the fast path and reads the frequency the
/// userspace governor holds now (kHz).
pub(crate) fn open_setspeed(root: &SysfsRoot, cpu: u32) -> Result<(File, u32)> {
    let path = root.cpufreq(cpu, "scaling_setspeed");
    let file = root.open_rw(cpu, &path)?;
    let cur = root.read_u32(cpu, &path)?;
    Ok((file, cur))
}

/// `v` rounded to the nearest multiple of `step`.
pub(crate) fn round_to(v: u32, step: u32) -> u32 {
    ((u64::from(v) + u64::from(step / 2)) / u64::from(step) * u64::from(step))
        .min(u64::from(u32::MAX)) as u32
}

/// Index of `v` in `table`.
pub(crate) fn index_of(table: &[u32], v: u32) -> Option<u32> {
    table.iter().position(|&f| f == v).map(|i| i as u32)
}

/// A descending table in `step` kHz steps from `top` down to `bottom`, with an
/// optional turbo entry in front; refuses tables DPDK refuses (≥ 64 entries).
pub(crate) fn stepped_table(
    cpu: u32,
    turbo: Option<u32>,
    top: u32,
    bottom: u32,
    step: u32,
) -> Result<Vec<u32>> {
    let span = top.checked_sub(bottom).ok_or_else(|| PowerError::Table {
        cpu,
        reason: format!("highest non-turbo frequency {top} kHz is below the lowest {bottom} kHz"),
    })?;
    let n = span as usize / step as usize + 1 + usize::from(turbo.is_some());
    if n >= MAX_FREQS {
        return Err(PowerError::Table {
            cpu,
            reason: format!("{n} frequencies (limit {})", MAX_FREQS - 1),
        });
    }
    let mut t = Vec::with_capacity(n);
    t.extend(turbo);
    let mut f = top;
    while t.len() < n {
        t.push(f);
        f = f.saturating_sub(step);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_and_tables() {
        assert_eq!(round_to(1_849_999, 100_000), 1_800_000);
        assert_eq!(round_to(1_850_000, 100_000), 1_900_000);
        assert_eq!(round_to(2_449_600, 1000), 2_450_000);
        let t = stepped_table(0, Some(2_300_001), 2_300_000, 800_000, 100_000).expect("table");
        assert_eq!(t.len(), 17);
        assert_eq!(t[0], 2_300_001);
        assert_eq!(t[1], 2_300_000);
        assert_eq!(*t.last().expect("last"), 800_000);
        assert!(stepped_table(0, None, 800_000, 900_000, 100_000).is_err());
        // 63 entries is the most DPDK accepts
        assert_eq!(
            stepped_table(0, None, 6_200_000, 0, 100_000)
                .expect("63")
                .len(),
            63
        );
        assert!(stepped_table(0, None, 6_300_000, 0, 100_000).is_err());
    }
}
