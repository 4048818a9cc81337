//! Per-CPU governors of the monitor's host CPUs (userspace, performance, powersave, ondemand).
//!
//! Governors for the host CPUs the monitor manages, as Xen runs them in the
//! hypervisor: `userspace` (guest and operator requests decide; the
//! default), `performance` / `powersave` (pinned to the highest / lowest
//! allowed frequency through `rte_power`) and `ondemand` (Xen's algorithm,
//! [`crate::ondemand`], run by the event loop on a timerfd that is armed
//! only while some CPU is in ondemand).
//!
//! These are the monitor's own governors, not the kernel's: a managed CPU
//! always has the kernel's `userspace` governor (set by `rte_power` at
//! init, restored at exit); here only engine state is kept, so nothing has
//! to be undone at shutdown beyond what `rte_power`'s exit restores.
//!
//! Tunables are per CPU (Xen keeps one set for all ondemand CPUs): they may
//! be set in any governor and take effect in ondemand. Ranges follow Xen:
//! `up_threshold` 11..=100 %, `sampling_rate` from half to 500 times the
//! default, which is `cpuinfo_transition_latency` (ns) x 1000 in µs units
//! (latency in µs x 1000), at least 20 ms. ondemand refuses a CPU whose
//! transition latency is above 10 ms or unknown (`CPUFREQ_ETERNAL`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rte_pm::stats::procstat::{self, CpuTime};
use rte_power::sysfs::SysfsRoot;
use rte_power::PowerError;

use crate::ondemand::{DEFAULT_UP_THRESHOLD, MAX_UP_THRESHOLD, MIN_UP_THRESHOLD};

/// Why a governor or tunable value is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GovernorError {
    /// Not one of the four names.
    #[error("unknown governor '{0}': expected ondemand, performance, powersave or userspace")]
    Unknown(String),
    /// ondemand on a CPU whose transition latency is `CPUFREQ_ETERNAL`.
    #[error(
        "transition latency unknown (cpuinfo_transition_latency = 4294967295, CPUFREQ_ETERNAL)"
    )]
    LatencyUnknown,
    /// ondemand on a CPU slower than 10 ms to change frequency.
    #[error(
        "transition latency {0} ns is above ondemand's limit of {MAX_TRANSITION_LATENCY_NS} ns"
    )]
    LatencyTooHigh(u64),
    /// `up_threshold` outside 11..=100.
    #[error("up_threshold {0} % out of range: allowed {MIN_UP_THRESHOLD}..{MAX_UP_THRESHOLD} %")]
    UpThreshold(u32),
    /// `sampling_rate` outside the CPU's range.
    #[error(
        "sampling_rate {value} us out of range for core {cpu}: allowed {}..{} us (default {} us)",
        .limits.min_us, .limits.max_us, .limits.default_us
    )]
    SamplingRate {
        /// The CPU.
        cpu: u32,
        /// The value asked for.
        value: u32,
        /// The CPU's range.
        limits: RateLimits,
    },
}

/// A monitor governor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Governor {
    /// Guest and operator requests decide.
    #[default]
    Userspace,
    /// Pinned to the highest allowed frequency.
    Performance,
    /// Pinned to the lowest frequency.
    Powersave,
    /// Xen's load-driven algorithm.
    Ondemand,
}

impl Governor {
    /// Every governor, in help order.
    pub const ALL: [Governor; 4] = [
        Governor::Ondemand,
        Governor::Performance,
        Governor::Powersave,
        Governor::Userspace,
    ];

    /// The name used by the CLI (and by Xen).
    pub fn name(self) -> &'static str {
        match self {
            Governor::Userspace => "userspace",
            Governor::Performance => "performance",
            Governor::Powersave => "powersave",
            Governor::Ondemand => "ondemand",
        }
    }

    /// Parses a governor name (exact, lower case).
    pub fn parse(s: &str) -> Result<Self, GovernorError> {
        Governor::ALL
            .iter()
            .copied()
            .find(|g| g.name() == s)
            .ok_or_else(|| GovernorError::Unknown(s.to_string()))
    }
}

impl std::fmt::Display for Governor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Xen's floor for the default sampling rate, µs.
pub const MIN_DEFAULT_SAMPLING_US: u32 = 20_000;
/// ondemand refuses CPUs slower than this to change frequency, ns.
pub const MAX_TRANSITION_LATENCY_NS: u64 = 10_000_000;
/// The kernel's "unknown" transition latency (`CPUFREQ_ETERNAL`).
pub const CPUFREQ_ETERNAL: u64 = 4_294_967_295;

/// The sampling-rate range of one CPU, µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `cpuinfo_transition_latency` in ns, if the file exists.
    pub latency_ns: Option<u64>,
    /// Default sampling rate.
    pub default_us: u32,
    /// Smallest settable (default / 2).
    pub min_us: u32,
    /// Largest settable (default x 500).
    pub max_us: u32,
}

impl RateLimits {
    /// Xen's rule: default = latency (µs, at least 1) x 1000, at least
    /// 20 ms; range default/2 ..= default x 500.
    pub fn from_latency(latency_ns: Option<u64>) -> Self {
        let lat_us = latency_ns
            .filter(|&l| l != CPUFREQ_ETERNAL)
            .map_or(1, |l| (l / 1000).max(1));
        let default = lat_us
            .saturating_mul(1000)
            .max(u64::from(MIN_DEFAULT_SAMPLING_US));
        let default_us = u32::try_from(default).unwrap_or(u32::MAX);
        Self {
            latency_ns,
            default_us,
            min_us: default_us / 2,
            max_us: default_us.saturating_mul(500),
        }
    }

    /// Reads the CPU's `cpuinfo_transition_latency`.
    pub fn read(sysfs: &SysfsRoot, cpu: u32) -> Self {
        let p = sysfs.cpufreq(cpu, "cpuinfo_transition_latency");
        let lat = std::fs::read_to_string(p)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        Self::from_latency(lat)
    }

    /// Why ondemand may not run on this CPU, if it may not.
    pub fn ondemand_refusal(&self) -> Option<GovernorError> {
        match self.latency_ns {
            Some(CPUFREQ_ETERNAL) => Some(GovernorError::LatencyUnknown),
            Some(l) if l > MAX_TRANSITION_LATENCY_NS => Some(GovernorError::LatencyTooHigh(l)),
            _ => None,
        }
    }
}

/// Counters of the ondemand engine for one CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OndemandStats {
    /// Samples taken.
    pub samples: u64,
    /// Samples that changed the frequency.
    pub changes: u64,
    /// Load of the last sample with elapsed time, percent.
    pub last_load: Option<u32>,
}

/// The governor state of one CPU.
#[derive(Debug, Clone)]
pub struct CpuGov {
    /// Current governor.
    pub governor: Governor,
    /// `sampling_rate`, µs.
    pub sampling_rate_us: u32,
    /// `up_threshold`, percent.
    pub up_threshold: u32,
    /// The CPU's sampling-rate range.
    pub limits: RateLimits,
    /// The previous `/proc/stat` sample (ondemand).
    pub prev: Option<CpuTime>,
    /// When the next sample is due (ondemand).
    pub due: Option<Instant>,
    /// Engine counters (reset when ondemand starts).
    pub stats: OndemandStats,
}

impl CpuGov {
    fn new(limits: RateLimits) -> Self {
        Self {
            governor: Governor::Userspace,
            sampling_rate_us: limits.default_us,
            up_threshold: DEFAULT_UP_THRESHOLD,
            limits,
            prev: None,
            due: None,
            stats: OndemandStats::default(),
        }
    }

    /// The sampling period.
    pub fn period(&self) -> Duration {
        Duration::from_micros(u64::from(self.sampling_rate_us))
    }
}

/// What one ondemand sample saw and did (tests, tracing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GovSample {
    /// The CPU.
    pub cpu: u32,
    /// Its `/proc/stat` counters at this sample.
    pub counters: CpuTime,
    /// Load of the interval, percent (`None`: no time passed, skipped).
    pub load: Option<u32>,
    /// The decision.
    pub decision: crate::ondemand::Decision,
    /// Frequency before, kHz.
    pub before_khz: u32,
    /// Frequency after, kHz.
    pub after_khz: u32,
}

/// Called after every ondemand sample (tests, tracing).
pub type GovTraceFn = Box<dyn FnMut(&GovSample) + Send>;

/// The governors of every CPU that has left the defaults, plus where the
/// load comes from.
#[derive(Debug)]
pub struct Governors {
    cpus: BTreeMap<u32, CpuGov>,
    proc_stat: PathBuf,
}

impl Governors {
    /// No CPU configured yet; load read from `proc_stat`.
    pub fn new(proc_stat: PathBuf) -> Self {
        Self {
            cpus: BTreeMap::new(),
            proc_stat,
        }
    }

    /// The `/proc/stat` the engine reads.
    pub fn proc_stat(&self) -> &Path {
        &self.proc_stat
    }

    /// Reads the per-CPU counters.
    pub fn sample(&self) -> Result<BTreeMap<u32, CpuTime>, PowerError> {
        procstat::read_at(&self.proc_stat)
    }

    /// The governor of `cpu` (userspace when never set).
    #[inline]
    pub fn governor(&self, cpu: u32) -> Governor {
        self.cpus
            .get(&cpu)
            .map_or(Governor::Userspace, |g| g.governor)
    }

    /// The state of `cpu`, if it was ever configured.
    pub fn get(&self, cpu: u32) -> Option<&CpuGov> {
        self.cpus.get(&cpu)
    }

    /// The state of `cpu`, created with its defaults on first use.
    pub fn entry(&mut self, sysfs: &SysfsRoot, cpu: u32) -> &mut CpuGov {
        self.cpus
            .entry(cpu)
            .or_insert_with(|| CpuGov::new(RateLimits::read(sysfs, cpu)))
    }

    /// The state `cpu` would have (for display), without creating it.
    pub fn view(&self, sysfs: &SysfsRoot, cpu: u32) -> CpuGov {
        self.cpus
            .get(&cpu)
            .cloned()
            .unwrap_or_else(|| CpuGov::new(RateLimits::read(sysfs, cpu)))
    }

    /// CPUs with state, ascending.
    pub fn configured(&self) -> Vec<u32> {
        self.cpus.keys().copied().collect()
    }

    /// Mutable access to one CPU's state.
    pub fn get_mut(&mut self, cpu: u32) -> Option<&mut CpuGov> {
        self.cpus.get_mut(&cpu)
    }

    /// CPUs whose ondemand sample is due at `now`.
    pub fn due(&self, now: Instant) -> Vec<u32> {
        self.cpus
            .iter()
            .filter(|(_, g)| g.governor == Governor::Ondemand && g.due.is_some_and(|d| d <= now))
            .map(|(c, _)| *c)
            .collect()
    }

    /// The earliest due sample of any ondemand CPU (`None`: the timer
    /// stays disarmed).
    pub fn next_due(&self) -> Option<Instant> {
        self.cpus
            .values()
            .filter(|g| g.governor == Governor::Ondemand)
            .filter_map(|g| g.due)
            .min()
    }

    /// Forgets everything (shutdown).
    pub fn clear(&mut self) {
        self.cpus.clear();
    }
}

/// Parses and checks an `up_threshold` value.
pub fn check_up_threshold(v: u32) -> Result<u32, GovernorError> {
    if (MIN_UP_THRESHOLD..=MAX_UP_THRESHOLD).contains(&v) {
        Ok(v)
    } else {
        Err(GovernorError::UpThreshold(v))
    }
}

/// Checks a `sampling_rate` value against a CPU's range.
pub fn check_sampling_rate(cpu: u32, v: u32, l: &RateLimits) -> Result<u32, GovernorError> {
    if (l.min_us..=l.max_us).contains(&v) {
        Ok(v)
    } else {
        Err(GovernorError::SamplingRate {
            cpu,
            value: v,
            limits: *l,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_are_refused() {
        for g in Governor::ALL {
            assert_eq!(Governor::parse(g.name()), Ok(g));
        }
        let e = Governor::parse("schedutil")
            .expect_err("not ours")
            .to_string();
        assert!(e.contains("unknown governor 'schedutil'"), "{e}");
        assert!(Governor::parse("Ondemand").is_err());
        assert!(Governor::parse("").is_err());
    }

    #[test]
    fn sampling_rate_ranges_follow_xen() {
        // 10 us transition latency: 10 ms, floored at 20 ms
        let l = RateLimits::from_latency(Some(10_000));
        assert_eq!(
            (l.default_us, l.min_us, l.max_us),
            (20_000, 10_000, 10_000_000)
        );
        assert_eq!(l.ondemand_refusal(), None);
        // 100 us: 100 ms
        let l = RateLimits::from_latency(Some(100_000));
        assert_eq!((l.default_us, l.min_us), (100_000, 50_000));
        // intel_pstate reports 0, a missing file nothing: the floor
        assert_eq!(RateLimits::from_latency(Some(0)).default_us, 20_000);
        assert_eq!(RateLimits::from_latency(None).default_us, 20_000);
        // unknown and too slow: refused
        assert!(RateLimits::from_latency(Some(CPUFREQ_ETERNAL))
            .ondemand_refusal()
            .expect("eternal")
            .to_string()
            .contains("unknown"));
        assert!(RateLimits::from_latency(Some(20_000_000))
            .ondemand_refusal()
            .is_some());
        let l = RateLimits::from_latency(Some(10_000));
        assert!(check_sampling_rate(3, 9_999, &l)
            .expect_err("low")
            .to_string()
            .contains("allowed 10000..10000000 us"));
        assert!(check_sampling_rate(3, 10_000_001, &l).is_err());
        assert_eq!(check_sampling_rate(3, 10_000, &l), Ok(10_000));
        assert_eq!(
            check_up_threshold(10).map_err(|e| e.to_string()),
            Err("up_threshold 10 % out of range: allowed 11..100 %".to_string())
        );
        assert!(check_up_threshold(101).is_err());
        assert_eq!(check_up_threshold(11), Ok(11));
        assert_eq!(check_up_threshold(100), Ok(100));
    }
}
