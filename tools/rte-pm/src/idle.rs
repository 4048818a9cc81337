//! cpuidle readers: idle states, driver, governor, C-state limits.
//!
//! cpuidle: the kernel's idle states per CPU (`cpuN/cpuidle/stateK/*`), the
//! global driver and governor, and C-state limits through `stateK/disable`.
//!
//! Units as the kernel gives them: `latency` and `residency` in µs (exit
//! latency and target residency), `time` in µs, `usage` a count. State 0 is
//! POLL on x86; deeper states have larger K.

use std::fs;
use std::io;
use std::path::PathBuf;

use rte_power::sysfs::SysfsRoot;
use rte_power::{PowerError, Result};

/// One idle state of one CPU.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IdleState {
    /// K in `stateK`.
    pub index: u32,
    /// `name` (`POLL`, `C1`, `C6`, ...).
    pub name: String,
    /// `desc`.
    pub desc: String,
    /// Exit latency, µs.
    pub latency_us: u64,
    /// Target residency, µs.
    pub residency_us: u64,
    /// Times entered.
    pub usage: u64,
    /// Time spent in it, µs.
    pub time_us: u64,
    /// `disable`: turned off for this CPU by user space.
    pub disabled: bool,
    /// Entries whose idle turned out too short for the state (`above`).
    pub above: Option<u64>,
    /// Entries whose idle turned out long enough for a deeper state (`below`).
    pub below: Option<u64>,
    /// Entry requests rejected (`rejected`).
    pub rejected: Option<u64>,
}

/// The global cpuidle driver and governor.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IdleDriver {
    /// `cpuidle/current_driver`.
    pub driver: Option<String>,
    /// `cpuidle/current_governor_ro` (or `current_governor`).
    pub governor: Option<String>,
}

/// `cpuN/cpuidle/stateK/<f>`.
pub fn state_path(root: &SysfsRoot, cpu: u32, k: u32, f: &str) -> PathBuf {
    root.cpu_attr(cpu, &format!("cpuidle/state{k}/{f}"))
}

/// The driver and governor (`None`s when the machine has no cpuidle).
pub fn driver(root: &SysfsRoot) -> IdleDriver {
    let read = |rel: &str| {
        fs::read_to_string(root.global(rel))
            .ok()
            .map(|s| s.trim().to_string())
    };
    IdleDriver {
        driver: read("cpuidle/current_driver"),
        governor: read("cpuidle/current_governor_ro").or_else(|| read("cpuidle/current_governor")),
    }
}

fn read_u64(root: &SysfsRoot, cpu: u32, k: u32, f: &str) -> Result<u64> {
    let path = state_path(root, cpu, k, f);
    let s = root.read_str(cpu, &path)?;
    s.parse()
        .map_err(|_| PowerError::Parse { cpu, path, text: s })
}

fn read_u64_opt(root: &SysfsRoot, cpu: u32, k: u32, f: &str) -> Result<Option<u64>> {
    match read_u64(root, cpu, k, f) {
        Err(PowerError::Sysfs { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok(None)
        }
        r => r.map(Some),
    }
}

/// Number of idle states of a CPU (0 without cpuidle).
pub fn count(root: &SysfsRoot, cpu: u32) -> u32 {
    (0..)
        .take_while(|&k| state_path(root, cpu, k, "name").exists())
        .count() as u32
}

/// One state.
pub fn state(root: &SysfsRoot, cpu: u32, k: u32) -> Result<IdleState> {
    Ok(IdleState {
        index: k,
        name: root.read_str(cpu, &state_path(root, cpu, k, "name"))?,
        desc: root
            .read_str(cpu, &state_path(root, cpu, k, "desc"))
            .unwrap_or_default(),
        latency_us: read_u64(root, cpu, k, "latency")?,
        residency_us: read_u64(root, cpu, k, "residency")?,
        usage: read_u64(root, cpu, k, "usage")?,
        time_us: read_u64(root, cpu, k, "time")?,
        disabled: read_u64(root, cpu, k, "disable")? != 0,
        above: read_u64_opt(root, cpu, k, "above")?,
        below: read_u64_opt(root, cpu, k, "below")?,
        rejected: read_u64_opt(root, cpu, k, "rejected")?,
    })
}

/// Every idle state of a CPU (empty without cpuidle).
pub fn states(root: &SysfsRoot, cpu: u32) -> Result<Vec<IdleState>> {
    (0..count(root, cpu)).map(|k| state(root, cpu, k)).collect()
}

/// Writes `stateK/disable` (needs CAP_SYS_ADMIN on a real kernel: EPERM).
pub fn set_disabled(root: &SysfsRoot, cpu: u32, k: u32, disabled: bool) -> Result<()> {
    root.write_str(
        cpu,
        &state_path(root, cpu, k, "disable"),
        if disabled { "1" } else { "0" },
    )
}

/// A limit on the idle states a CPU may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CstateLimit {
    /// Every state allowed.
    Unlimited,
    /// States up to and including `stateK` allowed, deeper ones disabled.
    MaxIndex(u32),
    /// Only states whose exit latency is at most this many µs allowed.
    MaxLatencyUs(u64),
}

impl CstateLimit {
    /// Whether `s` must be disabled under this limit.
    pub fn disables(&self, s: &IdleState) -> bool {
        match *self {
            CstateLimit::Unlimited => false,
            CstateLimit::MaxIndex(k) => s.index > k,
            CstateLimit::MaxLatencyUs(l) => s.latency_us > l,
        }
    }
}

/// The deepest state a CPU may enter: `None` if every state is allowed,
/// else `Some(K)` of the deepest enabled state (`Some(u32::MAX)` when every
/// state is disabled).
pub fn deepest_allowed(states: &[IdleState]) -> Option<u32> {
    if states.iter().all(|s| !s.disabled) {
        return None;
    }
    Some(
        states
            .iter()
            .rev()
            .find(|s| !s.disabled)
            .map_or(u32::MAX, |s| s.index),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::sysfs::{FakeSysfs, Flavour};

    #[test]
    fn reads_generated_states_and_limits() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut fake = FakeSysfs::new(Flavour::Acpi, 2);
        fake.idle_states = 4;
        fake.create(d.path()).expect("tree");
        let root = SysfsRoot::new(d.path());
        assert_eq!(
            driver(&root),
            IdleDriver {
                driver: Some("intel_idle".into()),
                governor: Some("menu".into())
            }
        );
        let st = states(&root, 1).expect("states");
        assert_eq!(st.len(), 4);
        let (usage, time) = FakeSysfs::idle_counters(1, 3);
        assert_eq!(
            (
                st[3].name.as_str(),
                st[3].latency_us,
                st[3].usage,
                st[3].time_us
            ),
            ("C6", 133, usage, time)
        );
        assert_eq!(st[0].name, "POLL");
        assert!(st[3].above.is_some() && st[3].rejected == Some(3));
        assert_eq!(deepest_allowed(&st), None);
        set_disabled(&root, 1, 3, true).expect("disable");
        set_disabled(&root, 1, 2, true).expect("disable");
        let st = states(&root, 1).expect("states");
        assert!(st[3].disabled && st[2].disabled && !st[1].disabled);
        assert_eq!(deepest_allowed(&st), Some(1));
        assert!(CstateLimit::MaxLatencyUs(10).disables(&st[3]));
        assert!(!CstateLimit::MaxLatencyUs(10).disables(&st[2]));
        assert!(CstateLimit::MaxIndex(1).disables(&st[2]));
        assert!(!CstateLimit::Unlimited.disables(&st[3]));
        // no cpuidle at all
        let d2 = tempfile::tempdir().expect("tempdir");
        FakeSysfs::new(Flavour::Acpi, 1)
            .create(d2.path())
            .expect("tree");
        let root2 = SysfsRoot::new(d2.path());
        assert!(states(&root2, 0).expect("none").is_empty());
        assert_eq!(driver(&root2), IdleDriver::default());
    }
}
