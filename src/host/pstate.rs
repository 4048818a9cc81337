//! The intel_pstate and intel_cpufreq driver.
//!
//! intel_pstate (active) and intel_cpufreq (its passive mode): no frequency
//! list from the kernel, so the table is synthetic, in 100 MHz bus steps
//! between `cpuinfo_min_freq` and the highest non-turbo frequency; a
//! frequency is programmed by pinning `scaling_min_freq = scaling_max_freq`
//! under the performance governor. The turbo entry (max non-turbo + 1 kHz) is
//! a marker: selecting it writes the CPU's maximum.

use super::support::{index_of, stepped_table, GovernorSwitch};
use super::{Control, CpufreqDriver, ProbeCtx, Programming, Restore, TurboModel};
use crate::env::Env;
use crate::error::{PowerError, Result};

const BUS_KHZ: u32 = 100_000;

/// The intel_pstate / intel_cpufreq driver.
pub(crate) struct Pstate;

/// What the CPU's P-state range looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PstateLimits {
    /// Highest non-turbo frequency (kHz) and whether `base_frequency` made it
    /// an SST-BF high-priority core.
    pub base_max: u32,
    pub priority: bool,
}

/// DPDK's estimate of the highest non-turbo frequency from `turbo_pct`,
/// overridden by `base_frequency` on SST-BF high-priority cores.
pub(crate) fn base_limits(
    info_max: u32,
    info_min: u32,
    base_freq: Option<u32>,
    turbo_pct: u32,
) -> PstateLimits {
    let max_ratio = info_max / BUS_KHZ;
    let min_ratio = info_min / BUS_KHZ;
    let non_turbo_ratio =
        min_ratio + 100u32.saturating_sub(turbo_pct) * max_ratio.saturating_sub(min_ratio) / 100;
    let base_ratio = base_freq.unwrap_or(0) / BUS_KHZ;
    // a base_frequency above cpuinfo_max_freq is a known firmware/kernel bug
    let priority = base_ratio <= max_ratio && base_ratio > non_turbo_ratio;
    let ratio = if priority {
        base_ratio
    } else {
        non_turbo_ratio
    };
    PstateLimits {
        base_max: ratio * BUS_KHZ,
        priority,
    }
}

impl CpufreqDriver for Pstate {
    fn env(&self) -> Env {
        Env::PstateCpufreq
    }

    fn probe(&self, ctx: &ProbeCtx<'_>) -> Result<Programming> {
        let (root, cpu) = (ctx.root, ctx.cpu);
        let min_p = root.cpufreq(cpu, "scaling_min_freq");
        let max_p = root.cpufreq(cpu, "scaling_max_freq");
        let limits = (root.read_u32(cpu, &min_p)?, root.read_u32(cpu, &max_p)?);
        let gov = GovernorSwitch::to(root, cpu, "performance")?;
        let info_max = root.read_u32(cpu, &root.cpufreq(cpu, "cpuinfo_max_freq"))?;
        let info_min = root.read_u32(cpu, &root.cpufreq(cpu, "cpuinfo_min_freq"))?;
        let base = root.read_u32_opt(cpu, &root.cpufreq(cpu, "base_frequency"))?;
        let turbo_pct = root.read_u32(cpu, &root.global("intel_pstate/turbo_pct"))?;
        if turbo_pct > 100 {
            return Err(PowerError::Table {
                cpu,
                reason: format!("intel_pstate/turbo_pct is {turbo_pct}"),
            });
        }
        let PstateLimits { base_max, priority } = base_limits(info_max, info_min, base, turbo_pct);

        let (pmd_min, pmd_max) = ctx.pmd_limits;
        let sys_min = info_min.max(pmd_min);
        let sys_max = if pmd_max > 0 {
            info_max.min(pmd_max)
        } else {
            info_max
        };
        if sys_max < sys_min {
            return Err(PowerError::Table {
                cpu,
                reason: format!(
                    "scaling limits leave no range: max {sys_max} kHz < min {sys_min} kHz"
                ),
            });
        }
        let turbo = base_max < sys_max;
        let top = base_max.min(sys_max);
        let table = stepped_table(cpu, turbo.then_some(top + 1), top, sys_min, BUS_KHZ)?;
        let mut writes = table.clone();
        if turbo {
            writes[0] = sys_max;
        }
        let min = root.open_rw(cpu, &min_p)?;
        let max = root.open_rw(cpu, &max_p)?;
        let cur = root.read_u32(cpu, &root.cpufreq(cpu, "scaling_cur_freq"))?;
        let current = index_of(&table, cur, BUS_KHZ);
        Ok(Programming {
            table,
            writes,
            current,
            control: Control::MinMax { min, max },
            turbo: TurboModel {
                available: turbo,
                at_init: None,
                nominal_index: u32::from(turbo),
                enable_selects_max: false,
                index0_needs_enable: true,
            },
            priority,
            restore: Restore {
                setspeed: None,
                limits: Some(limits),
                governor: gov.keep(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_frequency_estimate() {
        // 3.5 GHz turbo, 0.8 GHz min, turbo_pct 43 -> 2.3 GHz non-turbo
        let l = base_limits(3_500_000, 800_000, Some(2_300_000), 43);
        assert_eq!(
            l,
            PstateLimits {
                base_max: 2_300_000,
                priority: false
            }
        );
        // SST-BF: base above the estimate
        let l = base_limits(3_500_000, 800_000, Some(2_700_000), 43);
        assert_eq!(
            l,
            PstateLimits {
                base_max: 2_700_000,
                priority: true
            }
        );
        // kernel bug: base above max is ignored
        let l = base_limits(3_500_000, 800_000, Some(3_600_000), 43);
        assert!(!l.priority);
        assert_eq!(
            base_limits(3_500_000, 800_000, None, 43).base_max,
            2_300_000
        );
    }
}
