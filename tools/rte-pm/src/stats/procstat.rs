//! `/proc/stat` readers: per-CPU time by state.
//!
//! `/proc/stat`: per-CPU time (USER_HZ ticks) by state. The path can be
//! overridden with `RTE_POWER_PROC_STAT` (tests use generated files).

use std::collections::BTreeMap;
use std::path::PathBuf;

use rte_power::{PowerError, Result};

/// The real file.
pub const DEFAULT_PROC_STAT: &str = "/proc/stat";
/// Environment variable that overrides [`DEFAULT_PROC_STAT`].
pub const PROC_STAT_ENV: &str = "RTE_POWER_PROC_STAT";

/// The `/proc/stat` to read.
pub fn path_from_env() -> PathBuf {
    match std::env::var_os(PROC_STAT_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_PROC_STAT),
    }
}

/// One CPU's counters, USER_HZ ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CpuTime {
    /// user + nice + system + irq + softirq + steal (guest time is inside user).
    pub busy: u64,
    /// idle + iowait.
    pub idle: u64,
}

impl CpuTime {
    /// busy + idle.
    pub fn total(&self) -> u64 {
        self.busy + self.idle
    }

    /// Counters from `self` to `later`, saturating (a CPU that went offline
    /// and came back restarts its counters).
    pub fn delta(&self, later: &CpuTime) -> CpuTime {
        CpuTime {
            busy: later.busy.saturating_sub(self.busy),
            idle: later.idle.saturating_sub(self.idle),
        }
    }

    /// Busy share of the time, percent (0 when no time passed).
    pub fn load_pct(&self) -> f64 {
        if self.total() == 0 {
            0.0
        } else {
            100.0 * self.busy as f64 / self.total() as f64
        }
    }
}

/// Parses the `cpuN` lines of `/proc/stat`.
pub fn parse(text: &str) -> Option<BTreeMap<u32, CpuTime>> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let Some(cpu) = it
            .next()
            .and_then(|n| n.strip_prefix("cpu"))
            .filter(|n| !n.is_empty())
        else {
            continue;
        };
        let cpu: u32 = cpu.parse().ok()?;
        let v: Vec<u64> = it.map(|x| x.parse().ok()).collect::<Option<_>>()?;
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        if v.len() < 4 {
            return None;
        }
        out.insert(
            cpu,
            CpuTime {
                busy: at(0) + at(1) + at(2) + at(5) + at(6) + at(7),
                idle: at(3) + at(4),
            },
        );
    }
    Some(out)
}

/// Reads and parses the file at [`path_from_env`].
pub fn read() -> Result<BTreeMap<u32, CpuTime>> {
    read_at(&path_from_env())
}

/// Reads and parses a `/proc/stat`-shaped file.
pub fn read_at(path: &std::path::Path) -> Result<BTreeMap<u32, CpuTime>> {
    let text = std::fs::read_to_string(path).map_err(|source| PowerError::Sysfs {
        cpu: 0,
        op: "read",
        path: path.to_owned(),
        source,
    })?;
    parse(&text).ok_or_else(|| PowerError::Parse {
        cpu: 0,
        path: path.to_owned(),
        text: text.lines().next().unwrap_or("").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::sysfs::{write_proc_stat, ProcStatCpu};

    #[test]
    fn parses_generated_and_real_shapes() {
        let m = parse("cpu  1 2 3 4 5 6 7 8 0 0\ncpu0 10 1 5 100 4 1 1 2 0 0\nintr 5 6\n")
            .expect("parse");
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[&0],
            CpuTime {
                busy: 20,
                idle: 104
            }
        );
        assert!(parse("cpu0 x\n").is_none());
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("stat");
        let c = ProcStatCpu {
            user: 30,
            idle: 70,
            ..Default::default()
        };
        write_proc_stat(&p, &[c, c]).expect("write");
        let m = read_at(&p).expect("read");
        assert_eq!(m.len(), 2);
        assert_eq!(m[&1].load_pct(), 30.0);
        let later = CpuTime { busy: 40, idle: 80 };
        assert_eq!(m[&1].delta(&later), CpuTime { busy: 10, idle: 10 });
        // the real file parses too
        if let Ok(real) = read_at(std::path::Path::new(DEFAULT_PROC_STAT)) {
            assert!(!real.is_empty());
        }
    }
}
