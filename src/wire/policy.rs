//! The policy fields of a PKT_POLICY request.
//!
//! The policy parts of a PKT_POLICY request: traffic thresholds, the timer
//! profile's hour lists, the workload level and the policy kind.

use super::{
    WireError, HOURS_PER_DAY, POLICY_BRANCH_RATIO, POLICY_TIME, POLICY_TRAFFIC, POLICY_WORKLOAD,
    WL_HIGH, WL_LOW, WL_MEDIUM,
};

/// `struct rte_power_traffic_policy`: packet-rate thresholds (packets/s)
/// of a TRAFFIC policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TrafficPolicy {
    /// Carried but never used by DPDK's host.
    pub min_packet_thresh: u32,
    /// At or above: middle frequency.
    pub avg_max_packet_thresh: u32,
    /// At or above: maximum frequency.
    pub max_max_packet_thresh: u32,
}

/// `struct rte_power_timer_profile`: hour lists of a TIME policy.  Each entry
/// is an hour 0..=23; unused slots hold 0 (DPDK has no other marker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TimerProfile {
    /// Hours at which the cores go to maximum.
    pub busy_hours: [i32; HOURS_PER_DAY],
    /// Hours at which the cores go to minimum.
    pub quiet_hours: [i32; HOURS_PER_DAY],
    /// Hours at which the traffic profile applies.
    pub hours_to_use_traffic_profile: [i32; HOURS_PER_DAY],
}

impl TimerProfile {
    /// All-zero profile, as in every non-policy packet.
    pub const ZERO: TimerProfile = TimerProfile {
        busy_hours: [0; HOURS_PER_DAY],
        quiet_hours: [0; HOURS_PER_DAY],
        hours_to_use_traffic_profile: [0; HOURS_PER_DAY],
    };
}

wire_enum! {
    /// `enum rte_power_workload_level` (used by WORKLOAD policies).
    WorkloadLevel, UnknownWorkload {
        /// Maximum frequency.
        High = WL_HIGH,
        /// Middle of the frequency table.
        Medium = WL_MEDIUM,
        /// Minimum frequency.
        Low = WL_LOW,
    }
}

wire_enum! {
    /// `enum rte_power_policy` (`policy_to_use`).
    PolicyKind, UnknownPolicy {
        /// Follow VF packet rates.
        Traffic = POLICY_TRAFFIC,
        /// Follow the timer profile's hour lists.
        Time = POLICY_TIME,
        /// Fixed [`WorkloadLevel`].
        Workload = POLICY_WORKLOAD,
        /// Out-of-band branch-ratio monitoring.
        BranchRatio = POLICY_BRANCH_RATIO,
    }
}
