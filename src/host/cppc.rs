//! The cppc_cpufreq driver.
//!
//! cppc_cpufreq: frequencies derived from ACPI CPPC performance levels
//! (`acpi_cppc/nominal_perf`, in units of 10 MHz when small) in 100 MHz
//! steps; `scaling_max_freq` is the turbo bucket when highest > nominal.

use super::support::{current_index, stepped_table, GovernorSwitch, Setspeed};
use super::{Control, CpufreqDriver, ProbeCtx, Programming, Restore, TurboModel};
use crate::env::Env;
use crate::error::{PowerError, Result};

const STEP_KHZ: u32 = 100_000;
/// CPPC perf values below this are in units of 10 MHz.
const UNIT_KHZ: u32 = 10_000;

/// The cppc_cpufreq driver.
pub(crate) struct Cppc;

impl CpufreqDriver for Cppc {
    fn env(&self) -> Env {
        Env::CppcCpufreq
    }

    fn probe(&self, ctx: &ProbeCtx<'_>) -> Result<Programming> {
        let (root, cpu) = (ctx.root, ctx.cpu);
        let gov = GovernorSwitch::to(root, cpu, "userspace")?;
        let smax = root.read_u32(cpu, &root.cpufreq(cpu, "scaling_max_freq"))?;
        let smin = root.read_u32(cpu, &root.cpufreq(cpu, "scaling_min_freq"))?;
        let nominal_perf = root.read_u32(cpu, &root.cpu_attr(cpu, "acpi_cppc/nominal_perf"))?;
        // turbo detection failures only mean "no turbo", as in DPDK
        let highest = root
            .read_u32(cpu, &root.cpu_attr(cpu, "acpi_cppc/highest_perf"))
            .ok();
        let info_max = root
            .read_u32(cpu, &root.cpufreq(cpu, "cpuinfo_max_freq"))
            .ok();
        let turbo = match (highest, info_max) {
            (Some(h), Some(m)) => {
                h > nominal_perf && (m == h || u64::from(m) == u64::from(h) * u64::from(UNIT_KHZ))
            }
            _ => false,
        };
        if smax < smin {
            return Err(PowerError::Table {
                cpu,
                reason: format!("scaling_max_freq {smax} kHz is below scaling_min_freq {smin} kHz"),
            });
        }
        let nominal = if nominal_perf < UNIT_KHZ {
            nominal_perf * UNIT_KHZ
        } else {
            nominal_perf
        };
        let table = stepped_table(cpu, turbo.then_some(smax), nominal, smin, STEP_KHZ)?;

        let setspeed = Setspeed::open(root, cpu, &gov)?;
        let current = current_index(cpu, &table, setspeed.cur, STEP_KHZ, "the table")?;
        Ok(Programming {
            writes: table.clone(),
            table,
            current: Some(current),
            control: Control::Setspeed(setspeed.file),
            turbo: TurboModel::bucket(turbo),
            priority: false,
            restore: Restore {
                setspeed: setspeed.restore,
                limits: None,
                governor: gov.keep(),
            },
        })
    }
}
