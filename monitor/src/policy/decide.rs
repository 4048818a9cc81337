//! The decisions as pure functions: hour, level, packet rate or branch ratio in, target out.

use std::fmt;

use rte_power::wire::{TrafficPolicy, WorkloadLevel};

use super::spec::Hours;

/// Where a policy puts a pCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The highest frequency (DPDK's `max`, respecting turbo off).
    Max,
    /// The middle of the frequency table (index `n / 2`, as DPDK).
    Mid,
    /// Three quarters down the table (index `3n / 4`): TRAFFIC between
    /// the min and avg thresholds.
    Low,
    /// The lowest frequency.
    Min,
}

impl Target {
    /// The frequency-table index for a table of `n` entries (index 0 is
    /// the highest), for the table-position targets.
    pub fn index(self, n: u32) -> Option<u32> {
        match self {
            Target::Max | Target::Min => None,
            Target::Mid => Some(n / 2),
            Target::Low => Some((n.saturating_mul(3) / 4).min(n.saturating_sub(1))),
        }
    }

    /// `max`, `middle`, `low`, `min`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Max => "max",
            Target::Mid => "middle",
            Target::Low => "low",
            Target::Min => "min",
        }
    }
}

/// A policy's decision for a pCPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The policy holds the pCPU at this target; guest requests for its
    /// vCPU are refused meanwhile.
    Set(Target),
    /// The policy leaves the pCPU to guest requests.
    Leave,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Set(t) => f.write_str(t.name()),
            Decision::Leave => f.write_str("leave to guest"),
        }
    }
}

/// Which list of a TIME policy the hour is in (busy wins over quiet,
/// quiet over traffic, whatever the slot order; DPDK lets the earliest
/// slot win).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HourSlot {
    /// A busy hour: max.
    Busy,
    /// A quiet hour: min.
    Quiet,
    /// A traffic-profile hour: the TRAFFIC decision.
    Traffic,
    /// None of them: guest requests decide.
    Other,
}

impl HourSlot {
    /// `busy`, `quiet`, `traffic`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            HourSlot::Busy => "busy",
            HourSlot::Quiet => "quiet",
            HourSlot::Traffic => "traffic",
            HourSlot::Other => "other",
        }
    }
}

/// The list `hour` is in.
pub fn hour_slot(busy: Hours, quiet: Hours, traffic: Hours, hour: u8) -> HourSlot {
    if busy.contains(hour) {
        HourSlot::Busy
    } else if quiet.contains(hour) {
        HourSlot::Quiet
    } else if traffic.contains(hour) {
        HourSlot::Traffic
    } else {
        HourSlot::Other
    }
}

/// WORKLOAD: HIGH max, MEDIUM middle, LOW min.
pub fn workload(level: WorkloadLevel) -> Target {
    match level {
        WorkloadLevel::High => Target::Max,
        WorkloadLevel::Medium => Target::Mid,
        WorkloadLevel::Low => Target::Min,
    }
}

/// TRAFFIC, packets/s over all the policy's VFs: at or above max max ->
/// max; at or above avg max -> middle; at or above min -> low; below min
/// -> min. (DPDK never reads the min threshold and goes to min below avg.)
pub fn traffic(pps: u64, t: &TrafficPolicy) -> Target {
    if pps >= u64::from(t.max_max_packet_thresh) {
        Target::Max
    } else if pps >= u64::from(t.avg_max_packet_thresh) {
        Target::Mid
    } else if pps >= u64::from(t.min_packet_thresh) {
        Target::Low
    } else {
        Target::Min
    }
}

/// Fewer branches than this in an interval: the pCPU is idle, its ratio
/// counts as 0 (as DPDK 20.08+).
pub const IDLE_BRANCHES: u64 = 10_000;

/// The default per-core threshold, percent (DPDK's 0.1).
pub const DEFAULT_BRANCH_RATIO: f64 = 0.1;

/// Branch misses per 100 branches over an interval; 0 when idle.
pub fn branch_ratio(branches: u64, misses: u64) -> f64 {
    if branches < IDLE_BRANCHES {
        return 0.0;
    }
    misses as f64 * 100.0 / branches as f64
}

/// BRANCH_RATIO: above the pCPU's threshold -> max, at or below -> min.
pub fn branch(ratio_pct: f64, threshold_pct: f64) -> Target {
    if ratio_pct > threshold_pct {
        Target::Max
    } else {
        Target::Min
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_levels() {
        assert_eq!(workload(WorkloadLevel::High), Target::Max);
        assert_eq!(workload(WorkloadLevel::Medium), Target::Mid);
        assert_eq!(workload(WorkloadLevel::Low), Target::Min);
        assert_eq!(Target::Mid.index(15), Some(7), "DPDK's num_freqs/2");
        assert_eq!(Target::Low.index(16), Some(12));
        assert_eq!(Target::Low.index(1), Some(0));
        assert_eq!(Target::Max.index(16), None);
    }

    #[test]
    fn every_hour_boundary_of_guest_cli_defaults() {
        // guest_cli: busy {3,4,5}, quiet {11,12,13}, traffic {8,10}
        let (b, q, t) = (
            Hours::of(&[3, 4, 5]),
            Hours::of(&[11, 12, 13]),
            Hours::of(&[8, 10]),
        );
        let want = |h: u8| match h {
            3..=5 => HourSlot::Busy,
            11..=13 => HourSlot::Quiet,
            8 | 10 => HourSlot::Traffic,
            _ => HourSlot::Other,
        };
        for h in 0..24 {
            assert_eq!(hour_slot(b, q, t, h), want(h), "hour {h}");
        }
        // hour 0 is not busy although DPDK's padding says 0 (its bug)
        assert_eq!(hour_slot(b, q, t, 0), HourSlot::Other);
        assert_eq!(hour_slot(b, q, t, 23), HourSlot::Other);
    }

    #[test]
    fn hours_0_and_23_when_listed_and_precedence() {
        let b = Hours::of(&[0, 23]);
        let q = Hours::of(&[23, 22]);
        let t = Hours::of(&[22, 1]);
        assert_eq!(hour_slot(b, q, t, 0), HourSlot::Busy);
        assert_eq!(hour_slot(b, q, t, 23), HourSlot::Busy, "busy over quiet");
        assert_eq!(
            hour_slot(b, q, t, 22),
            HourSlot::Quiet,
            "quiet over traffic"
        );
        assert_eq!(hour_slot(b, q, t, 1), HourSlot::Traffic);
        assert_eq!(hour_slot(b, q, t, 2), HourSlot::Other);
    }

    #[test]
    fn traffic_at_each_threshold() {
        let t = TrafficPolicy {
            min_packet_thresh: 100,
            avg_max_packet_thresh: 1_000,
            max_max_packet_thresh: 10_000,
        };
        let cases = [
            (0, Target::Min),
            (99, Target::Min),
            (100, Target::Low),
            (999, Target::Low),
            (1_000, Target::Mid),
            (9_999, Target::Mid),
            (10_000, Target::Max),
            (u64::MAX, Target::Max),
        ];
        for (pps, want) in cases {
            assert_eq!(traffic(pps, &t), want, "{pps} packets/s");
        }
    }

    #[test]
    fn branch_ratio_above_and_below_the_threshold_and_idle() {
        assert_eq!(branch_ratio(IDLE_BRANCHES - 1, IDLE_BRANCHES - 1), 0.0);
        assert_eq!(branch_ratio(100_000, 100), 0.1);
        assert_eq!(branch(0.1, 0.1), Target::Min, "at the threshold: down");
        assert_eq!(branch(branch_ratio(100_000, 101), 0.1), Target::Max);
        assert_eq!(branch(branch_ratio(100_000, 99), 0.1), Target::Min);
        assert_eq!(branch(0.0, 0.0), Target::Min, "idle never goes up");
    }
}
