//! The amd-pstate and amd-pstate-epp driver.
//!
//! amd-pstate (passive: userspace governor + `scaling_setspeed`) and
//! amd-pstate-epp (active: no userspace governor, so min = max pinning under
//! the performance governor). The table is 64 evenly spaced values between
//! the limits, rounded to 1 MHz; the turbo region is every index above
//! `acpi_cppc/nominal_freq`.

use super::support::{index_of, round_to, GovernorSwitch, Setspeed};
use super::{Control, CpufreqDriver, ProbeCtx, Programming, Restore, TurboModel, MAX_FREQS};

/// amd-pstate rounds its table, and the current frequency, to 1 MHz.
const ROUND_KHZ: u32 = 1000;
use crate::env::Env;
use crate::error::{PowerError, Result};

/// The amd-pstate / amd-pstate-epp driver.
pub(crate) struct AmdPstate;

/// DPDK's amd-pstate table: `MAX_FREQS` steps from `max` down to `min`,
/// each rounded to 1000 kHz, consecutive duplicates dropped. The step is
/// computed in 64 bits (DPDK's 32-bit arithmetic overflows above ~4.2 GHz of span).
pub(crate) fn build_table(max: u32, min: u32) -> Vec<u32> {
    if max == min {
        return vec![max];
    }
    let span = u64::from(max - min);
    let step = ((span << 10) / (MAX_FREQS as u64 - 1)) >> 10;
    let mut t: Vec<u32> = Vec::with_capacity(MAX_FREQS);
    for i in 0..MAX_FREQS as u64 {
        let v = u64::from(max).saturating_sub(i * step);
        let v = round_to(u32::try_from(v).unwrap_or(u32::MAX), ROUND_KHZ);
        if t.last() != Some(&v) {
            t.push(v);
        }
    }
    t
}

impl CpufreqDriver for AmdPstate {
    fn env(&self) -> Env {
        Env::AmdPstateCpufreq
    }

    fn probe(&self, ctx: &ProbeCtx<'_>) -> Result<Programming> {
        let (root, cpu) = (ctx.root, ctx.cpu);
        let epp = ctx.scaling_driver == "amd-pstate-epp";
        let min_p = root.cpufreq(cpu, "scaling_min_freq");
        let max_p = root.cpufreq(cpu, "scaling_max_freq");
        let limits = (root.read_u32(cpu, &min_p)?, root.read_u32(cpu, &max_p)?);
        let gov = GovernorSwitch::to(root, cpu, if epp { "performance" } else { "userspace" })?;
        let highest = root.read_u32(cpu, &root.cpu_attr(cpu, "acpi_cppc/highest_perf"))?;
        let nominal_perf = root.read_u32(cpu, &root.cpu_attr(cpu, "acpi_cppc/nominal_perf"))?;
        let nominal_mhz = root.read_u32(cpu, &root.cpu_attr(cpu, "acpi_cppc/nominal_freq"))?;
        // epp: the hardware range (scaling limits may be narrowed by someone else)
        let (max, min) = if epp {
            (
                root.read_u32(cpu, &root.cpufreq(cpu, "cpuinfo_max_freq"))?,
                root.read_u32(cpu, &root.cpufreq(cpu, "cpuinfo_min_freq"))?,
            )
        } else {
            (limits.1, limits.0)
        };
        if max < min {
            return Err(PowerError::Table {
                cpu,
                reason: format!("maximum {max} kHz is below minimum {min} kHz"),
            });
        }
        let table = build_table(max, min);
        let nominal_khz = nominal_mhz.saturating_mul(1000);
        let nominal_index = table.iter().position(|&f| f <= nominal_khz).unwrap_or(0) as u32;
        let turbo = highest > nominal_perf;

        let (control, current, restore_setspeed, restore_limits) = if epp {
            let min_f = root.open_rw(cpu, &min_p)?;
            let max_f = root.open_rw(cpu, &max_p)?;
            (
                Control::MinMax {
                    min: min_f,
                    max: max_f,
                },
                None,
                None,
                Some(limits),
            )
        } else {
            let setspeed = Setspeed::open(root, cpu, &gov)?;
            // Unlike DPDK (init fails), an unknown current frequency only
            // means that init's first write cannot be skipped.
            let current = index_of(&table, setspeed.cur, ROUND_KHZ);
            (
                Control::Setspeed(setspeed.file),
                current,
                setspeed.restore,
                None,
            )
        };
        Ok(Programming {
            writes: table.clone(),
            table,
            current,
            control,
            turbo: TurboModel {
                available: turbo,
                at_init: Some(turbo),
                nominal_index: if turbo { nominal_index } else { 0 },
                enable_selects_max: true,
                index0_needs_enable: false,
            },
            priority: false,
            restore: Restore {
                setspeed: restore_setspeed,
                limits: restore_limits,
                governor: gov.keep(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_64_rounded_descending_values() {
        let t = build_table(3_852_000, 400_000);
        assert_eq!(t.len(), 64);
        assert_eq!(t[0], 3_852_000);
        assert!(t.windows(2).all(|w| w[0] > w[1]));
        assert!(t.iter().all(|f| f % 1000 == 0));
        assert!(*t.last().expect("last") >= 400_000 && *t.last().expect("last") < 460_000);
        assert_eq!(build_table(2_000_000, 2_000_000), vec![2_000_000]);
        // a tiny span: duplicates collapse
        let t = build_table(1_010_000, 1_000_000);
        assert!(t.len() < 64 && t.windows(2).all(|w| w[0] > w[1]));
        // wide span that overflows DPDK's 32-bit arithmetic
        let t = build_table(5_000_000, 400_000);
        assert_eq!(t.len(), 64);
        assert!(t.windows(2).all(|w| w[0] > w[1]));
    }
}
