//! PM QoS: the per-CPU resume latency constraint.
//!
//! PM QoS: the per-CPU resume latency constraint
//! (`cpuN/power/pm_qos_resume_latency_us`), with DPDK 24.11's semantics.
//!
//! The file says `n/a` for "no latency allowed" (the CPU should not enter
//! idle states with any exit latency) and `0` for "no constraint"; DPDK's
//! API turns that around into numbers an application can compare: 0
//! ([`STRICT_LATENCY`]) is strict, `i32::MAX` ([`NO_CONSTRAINT`]) is no
//! constraint, anything else is a limit in µs.

use crate::error::{PowerError, Result};
use crate::lcore::MAX_LCORE;
use crate::sysfs::SysfsRoot;
use crate::Power;

/// `RTE_POWER_QOS_STRICT_LATENCY_VALUE`: no exit latency allowed.
pub const STRICT_LATENCY: i32 = 0;
/// `RTE_POWER_QOS_RESUME_LATENCY_NO_CONSTRAINT`.
pub const NO_CONSTRAINT: i32 = i32::MAX;

const ATTR: &str = "power/pm_qos_resume_latency_us";

/// What the kernel file must hold for an API latency (`latency >= 0`).
pub fn to_file(latency: i32) -> String {
    match latency {
        STRICT_LATENCY => "n/a".to_string(),
        NO_CONSTRAINT => "0".to_string(),
        v => v.to_string(),
    }
}

/// The API latency for the file's text, `None` if it is not the kernel's.
pub fn from_file(text: &str) -> Option<i32> {
    match text.trim() {
        "n/a" => Some(STRICT_LATENCY),
        t => match t.parse::<u64>().ok()? {
            0 => Some(NO_CONSTRAINT),
            v => Some(i32::try_from(v).unwrap_or(NO_CONSTRAINT)),
        },
    }
}

/// Writes the constraint of a CPU (`latency >= 0`, API semantics).
pub fn set_cpu(root: &SysfsRoot, cpu: u32, latency: i32) -> Result<()> {
    if latency < 0 {
        return Err(PowerError::InvalidArgument(format!(
            "resume latency {latency} is negative"
        )));
    }
    root.write_str(cpu, &root.cpu_attr(cpu, ATTR), &to_file(latency))
}

/// Reads the constraint of a CPU (API semantics).
pub fn get_cpu(root: &SysfsRoot, cpu: u32) -> Result<i32> {
    let path = root.cpu_attr(cpu, ATTR);
    let text = root.read_str(cpu, &path)?;
    from_file(&text).ok_or(PowerError::Parse { cpu, path, text })
}

impl Power {
    fn qos_cpu(&self, lcore: u32) -> Result<u32> {
        if lcore >= MAX_LCORE {
            return Err(PowerError::InvalidLcore {
                lcore,
                max: MAX_LCORE,
            });
        }
        self.config().cpu_map.cpu_of(lcore)
    }

    /// Sets the resume latency constraint of an lcore's CPU: 0 strict,
    /// [`NO_CONSTRAINT`] none, else µs. The lcore need not be initialised.
    pub fn set_cpu_resume_latency(&self, lcore: u32, latency: i32) -> Result<()> {
        if lcore < MAX_LCORE && latency < 0 {
            // DPDK's order: the lcore, then the value, then the CPU mapping
            return set_cpu(&self.config().sysfs, 0, latency);
        }
        let cpu = self.qos_cpu(lcore)?;
        set_cpu(&self.config().sysfs, cpu, latency)
    }

    /// The resume latency constraint of an lcore's CPU (API semantics).
    pub fn cpu_resume_latency(&self, lcore: u32) -> Result<i32> {
        let cpu = self.qos_cpu(lcore)?;
        get_cpu(&self.config().sysfs, cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_encoding_round_trips() {
        assert_eq!(to_file(0), "n/a");
        assert_eq!(to_file(i32::MAX), "0");
        assert_eq!(to_file(25), "25");
        assert_eq!(from_file("n/a\n"), Some(0));
        assert_eq!(from_file("0\n"), Some(i32::MAX));
        assert_eq!(from_file("25"), Some(25));
        assert_eq!(from_file("4294967295"), Some(i32::MAX));
        assert_eq!(from_file("x"), None);
        for v in [0, 1, 25, 1000, i32::MAX] {
            assert_eq!(from_file(&to_file(v)), Some(v));
        }
    }
}
