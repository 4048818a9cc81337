//! Power envs: DPDK's `enum power_management_env` and its drivers.
//!
//! Power management environments: DPDK's `enum power_management_env`, and
//! which kernel cpufreq drivers each env serves.

use std::fmt;

/// A power env (DPDK's `enum power_management_env` without `PM_ENV_NOT_SET`,
/// which is `Option::<Env>::None` on the Rust side). Values are DPDK's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Env {
    /// acpi-cpufreq: userspace governor, `scaling_setspeed`.
    AcpiCpufreq = 1,
    /// KVM guest: requests forwarded to the host over virtio-serial.
    KvmVm = 2,
    /// intel_pstate (active) and intel_cpufreq (passive): min = max pinning.
    PstateCpufreq = 3,
    /// cppc_cpufreq: userspace governor, `scaling_setspeed`.
    CppcCpufreq = 4,
    /// amd-pstate (setspeed) and amd-pstate-epp (min = max pinning).
    AmdPstateCpufreq = 5,
}

/// DPDK's `PM_ENV_NOT_SET`.
pub const ENV_NOT_SET: u32 = 0;

impl Env {
    /// Every env, in DPDK's numbering order.
    pub const ALL: [Env; 5] = [
        Env::AcpiCpufreq,
        Env::KvmVm,
        Env::PstateCpufreq,
        Env::CppcCpufreq,
        Env::AmdPstateCpufreq,
    ];

    /// From DPDK's numeric value; `None` for `PM_ENV_NOT_SET` and unknown values.
    pub fn from_raw(v: u32) -> Option<Env> {
        Self::ALL.into_iter().find(|e| *e as u32 == v)
    }

    /// DPDK's numeric value.
    pub fn raw(self) -> u32 {
        self as u32
    }

    /// Short name, as DPDK 24.11 names its drivers.
    pub fn name(self) -> &'static str {
        match self {
            Env::AcpiCpufreq => "acpi",
            Env::KvmVm => "kvm-vm",
            Env::PstateCpufreq => "intel-pstate",
            Env::CppcCpufreq => "cppc",
            Env::AmdPstateCpufreq => "amd-pstate",
        }
    }

    /// The env that serves a kernel `scaling_driver` name, if any. Newer
    /// kernel drivers map onto the existing env of their family.
    pub fn for_scaling_driver(driver: &str) -> Option<Env> {
        match driver {
            "acpi-cpufreq" => Some(Env::AcpiCpufreq),
            "intel_pstate" | "intel_cpufreq" => Some(Env::PstateCpufreq),
            "cppc_cpufreq" | "cppc-cpufreq" => Some(Env::CppcCpufreq),
            "amd-pstate" | "amd-pstate-epp" => Some(Env::AmdPstateCpufreq),
            _ => None,
        }
    }

    /// Parses `acpi`, `kvm`, `pstate`, `cppc`, `amd` and DPDK's spellings.
    pub fn parse(s: &str) -> Option<Env> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "acpi" | "acpi-cpufreq" => Some(Env::AcpiCpufreq),
            "kvm" | "kvm-vm" => Some(Env::KvmVm),
            "pstate" | "intel-pstate" | "pstate-cpufreq" => Some(Env::PstateCpufreq),
            "cppc" | "cppc-cpufreq" => Some(Env::CppcCpufreq),
            "amd" | "amd-pstate" | "amd-pstate-cpufreq" => Some(Env::AmdPstateCpufreq),
            _ => None,
        }
    }
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_dpdks() {
        assert_eq!(Env::AcpiCpufreq.raw(), 1);
        assert_eq!(Env::KvmVm.raw(), 2);
        assert_eq!(Env::PstateCpufreq.raw(), 3);
        assert_eq!(Env::CppcCpufreq.raw(), 4);
        assert_eq!(Env::AmdPstateCpufreq.raw(), 5);
        assert_eq!(Env::from_raw(ENV_NOT_SET), None);
        assert_eq!(Env::from_raw(6), None);
        for e in Env::ALL {
            assert_eq!(Env::from_raw(e.raw()), Some(e));
            assert_eq!(Env::parse(e.name()), Some(e));
        }
    }

    #[test]
    fn kernel_drivers_map_to_families() {
        assert_eq!(
            Env::for_scaling_driver("intel_cpufreq"),
            Some(Env::PstateCpufreq)
        );
        assert_eq!(
            Env::for_scaling_driver("amd-pstate-epp"),
            Some(Env::AmdPstateCpufreq)
        );
        assert_eq!(
            Env::for_scaling_driver("cppc_cpufreq"),
            Some(Env::CppcCpufreq)
        );
        assert_eq!(Env::for_scaling_driver("speedstep"), None);
    }
}
