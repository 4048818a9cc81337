//! The acpi-cpufreq driver.
//!
//! acpi-cpufreq: the kernel lists the P-states in
//! `scaling_available_frequencies`; the userspace governor takes a frequency
//! in `scaling_setspeed`. A turbo P-state shows as max non-turbo + 1000 kHz.

use super::support::{current_index, GovernorSwitch, Setspeed};
use super::{Control, CpufreqDriver, ProbeCtx, Programming, Restore, TurboModel, MAX_FREQS};
use crate::env::Env;
use crate::error::{PowerError, Result};

/// The acpi-cpufreq driver.
pub(crate) struct Acpi;

/// Parses `scaling_available_frequencies` (kept in file order, which is
/// descending on every kernel).
pub(crate) fn parse_available(cpu: u32, path: &std::path::Path, text: &str) -> Result<Vec<u32>> {
    let table = text
        .split_whitespace()
        .map(|t| t.parse::<u32>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| PowerError::Parse {
            cpu,
            path: path.to_owned(),
            text: text.to_owned(),
        })?;
    if table.is_empty() {
        return Err(PowerError::Table {
            cpu,
            reason: "scaling_available_frequencies is empty".into(),
        });
    }
    if table.len() >= MAX_FREQS {
        return Err(PowerError::Table {
            cpu,
            reason: format!(
                "{} available frequencies (limit {})",
                table.len(),
                MAX_FREQS - 1
            ),
        });
    }
    Ok(table)
}

impl CpufreqDriver for Acpi {
    fn env(&self) -> Env {
        Env::AcpiCpufreq
    }

    fn probe(&self, ctx: &ProbeCtx<'_>) -> Result<Programming> {
        let (root, cpu) = (ctx.root, ctx.cpu);
        let gov = GovernorSwitch::to(root, cpu, "userspace")?;
        let avail = root.cpufreq(cpu, "scaling_available_frequencies");
        let table = parse_available(cpu, &avail, &root.read_str(cpu, &avail)?)?;
        let turbo = table.len() >= 2 && table[0].checked_sub(1000) == Some(table[1]);

        let setspeed = Setspeed::open(root, cpu, &gov)?;
        let current = current_index(
            cpu,
            &table,
            setspeed.cur,
            1,
            "scaling_available_frequencies",
        )?;
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
