//! The probe steps host drivers share.
//!
//! The probe steps drivers share: the governor switch that undoes itself,
//! `scaling_setspeed` with its restore value, rounding, index lookup and
//! stepped tables.

use std::fs::File;

use super::MAX_FREQS;
use crate::error::{PowerError, Result};
use crate::log::Level;
use crate::sysfs::SysfsRoot;

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

/// `scaling_setspeed` of a CPU under the userspace governor: the file the
/// fast path writes, the frequency held at probe time, and what exit must
/// write back.
pub(crate) struct Setspeed {
    /// Open for the fast path.
    pub file: File,
    /// The frequency the governor held (kHz).
    pub cur: u32,
    /// [`super::Restore::setspeed`]: `cur` when the governor found at probe time
    /// was userspace already (the only case in which the value means
    /// something after we leave), else `None`.
    pub restore: Option<u32>,
}

impl Setspeed {
    /// Opens `scaling_setspeed` and reads the frequency held now; `gov` is
    /// the switch to the userspace governor made by the probe.
    pub fn open(root: &SysfsRoot, cpu: u32, gov: &GovernorSwitch<'_>) -> Result<Self> {
        let path = root.cpufreq(cpu, "scaling_setspeed");
        let file = root.open_rw(cpu, &path)?;
        let cur = root.read_u32(cpu, &path)?;
        let restore = (gov.original() == "userspace").then_some(cur);
        Ok(Self { file, cur, restore })
    }
}

/// `v` rounded to the nearest multiple of `step` (1: `v` itself).
pub(crate) fn round_to(v: u32, step: u32) -> u32 {
    let step = u64::from(step.max(1));
    ((u64::from(v) + step / 2) / step * step).min(u64::from(u32::MAX)) as u32
}

/// Index of `khz`, rounded to a multiple of `step`, in `table`.
pub(crate) fn index_of(table: &[u32], khz: u32, step: u32) -> Option<u32> {
    let v = round_to(khz, step);
    table.iter().position(|&f| f == v).map(|i| i as u32)
}

/// [`index_of`], or a table error for a CPU whose current frequency is not
/// in `table` (`what` names where the table came from).
pub(crate) fn current_index(
    cpu: u32,
    table: &[u32],
    khz: u32,
    step: u32,
    what: &str,
) -> Result<u32> {
    index_of(table, khz, step).ok_or_else(|| {
        let rounded = round_to(khz, step);
        let reason = if rounded == khz {
            format!("current frequency {khz} kHz is not in {what}")
        } else {
            format!("current frequency {khz} kHz (rounded {rounded}) is not in {what}")
        };
        PowerError::Table { cpu, reason }
    })
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
    fn rounding_and_lookup() {
        assert_eq!(round_to(1_849_999, 100_000), 1_800_000);
        assert_eq!(round_to(1_849_999, 1), 1_849_999);
        assert_eq!(round_to(u32::MAX, 1000), 4_294_967_000);
        assert_eq!(round_to(u32::MAX, 1 << 31), u32::MAX, "clamped");
        let t = [2_000_000, 1_900_000, 1_800_000];
        assert_eq!(index_of(&t, 1_900_000, 1), Some(1));
        assert_eq!(index_of(&t, 1_850_001, 100_000), Some(1));
        assert_eq!(index_of(&t, 1_850_001, 1), None);
        assert_eq!(
            current_index(0, &t, 1_800_400, 1000, "the table").ok(),
            Some(2)
        );
        let e = current_index(3, &t, 1_850_001, 1, "scaling_available_frequencies");
        assert!(e.is_err_and(|e| e.to_string()
            == "cpu 3: current frequency 1850001 kHz is not in scaling_available_frequencies"),);
        let e = current_index(3, &t, 1_749_000, 100_000, "the table");
        assert!(e.is_err_and(|e| e.to_string()
            == "cpu 3: current frequency 1749000 kHz (rounded 1700000) is not in the table"));
    }

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
