//! Per-VM request bookkeeping for the metrics: requests by command and outcome, refusals by reason, write latency.
//!
//! Everything is a fixed array of plain counters in the VM's record,
//! bumped by the loop thread as it handles a packet: no allocation, no
//! lock, no formatting on the hot path. The label of each slot is a
//! `&'static str` of [`COMMANDS`] / [`REASONS`]; the metrics thread gets a
//! copy of the arrays in its snapshot and encodes them.
//!
//! Latency: the loop reads `CLOCK_MONOTONIC` once per `read(2)` batch of
//! a channel (the arrival of every packet that batch completes) and once
//! more when a request's sysfs write returns; the difference goes to the
//! VM's [`Histogram`].

use std::time::Instant;

use rte_power::wire::{self, PACKET_SIZE};

use super::registry::VmId;
use super::requests::RequestError;
use super::Monitor;

/// The request labels: CPU_POWER by its unit, the other commands by name
/// (as DPDK's wire names them, snake_case); `other` is an unknown command
/// or a CPU_POWER with a unit no sender writes. CONNECT is no request.
pub const COMMANDS: [&str; 13] = [
    "scale_up",
    "scale_down",
    "scale_max",
    "scale_min",
    "enable_turbo",
    "disable_turbo",
    "policy",
    "policy_remove",
    "query_freq_list",
    "query_freq",
    "query_caps_list",
    "query_caps",
    "other",
];

/// Index of `other` in [`COMMANDS`].
const OTHER: usize = COMMANDS.len() - 1;

/// The request of a 464-byte frame as an index into [`COMMANDS`] (two
/// loads from the raw bytes, nothing decoded).
pub fn command_of(bytes: &[u8; PACKET_SIZE]) -> usize {
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    match word(12) {
        wire::CPU_POWER => match word(8) {
            u @ wire::SCALE_UP..=wire::DISABLE_TURBO => (u - wire::SCALE_UP) as usize,
            _ => OTHER,
        },
        wire::PKT_POLICY => 6,
        wire::PKT_POLICY_REMOVE => 7,
        wire::QUERY_FREQ_LIST => 8,
        wire::QUERY_FREQ => 9,
        wire::QUERY_CAPS_LIST => 10,
        wire::QUERY_CAPS => 11,
        _ => OTHER,
    }
}

/// The refusal labels, one per refusal rule of `requests` (a
/// [`RequestError`] variant; bytes out of frame are no refusal but a
/// channel reset, counted as such).
pub const REASONS: [&str; 19] = [
    "malformed",
    "unknown_command",
    "channel_disabled",
    "physical_core",
    "vcpu_out_of_range",
    "no_host_cpu",
    "not_pinned",
    "bad_unit",
    "not_userspace",
    "scale_failed",
    "policy_vcpu",
    "policy_holds",
    "bad_policy",
    "policy_refused",
    "queries_disabled",
    "query_vcpu_out_of_range",
    "host_read",
    "shared_cpu",
    "rate_limit",
];

impl RequestError {
    /// Index of this refusal's label in [`REASONS`] (`None`: bytes out of
    /// frame, which are not counted as a refusal).
    pub fn reason(&self) -> Option<usize> {
        Some(match self {
            RequestError::Malformed(_) => 0,
            RequestError::UnknownCommand => 1,
            RequestError::ChannelDisabled => 2,
            RequestError::PhysicalCore => 3,
            RequestError::VcpuOutOfRange { .. } => 4,
            RequestError::NoHostCpu(_) => 5,
            RequestError::NotPinned(_) => 6,
            RequestError::BadUnit(_) => 7,
            RequestError::NotUserspace { .. } => 8,
            RequestError::ScaleFailed { .. } => 9,
            RequestError::PolicyVcpu { .. } => 10,
            RequestError::PolicyHolds { .. } => 11,
            RequestError::BadPolicy(_) => 12,
            RequestError::PolicyRefused(_) => 13,
            RequestError::QueriesDisabled => 14,
            RequestError::QueryVcpuOutOfRange { .. } => 15,
            RequestError::HostRead { .. } => 16,
            RequestError::SharedCpu(_) => 17,
            RequestError::RateLimited(_) => 18,
            RequestError::Unframed { .. } => return None,
        })
    }
}

/// Upper bounds of the latency buckets, nanoseconds (5 µs .. 100 ms; a
/// last, implicit bucket takes the rest).
pub const BUCKETS_NS: [u64; 14] = [
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
];

/// A fixed-bucket latency histogram (per-bucket, not cumulative, counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Observations per bucket of [`BUCKETS_NS`], then above the last.
    pub counts: [u64; BUCKETS_NS.len() + 1],
    /// Sum of the observations, nanoseconds.
    pub sum_ns: u64,
}

impl Histogram {
    /// Counts one observation.
    pub fn observe(&mut self, ns: u64) {
        let i = BUCKETS_NS.partition_point(|&b| b < ns);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// `(upper bound in seconds, observations in that bucket)`, `+Inf`
    /// last (the encoder accumulates them).
    pub fn buckets(&self) -> [(f64, u64); BUCKETS_NS.len() + 1] {
        let mut out = [(f64::INFINITY, 0); BUCKETS_NS.len() + 1];
        for (i, (o, &c)) in out.iter_mut().zip(&self.counts).enumerate() {
            *o = (
                BUCKETS_NS.get(i).map_or(f64::INFINITY, |&b| b as f64 / 1e9),
                c,
            );
        }
        out
    }
}

/// What the metrics count about one VM's requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Per [`COMMANDS`] entry: `[accepted, refused]`.
    pub by_command: [[u64; 2]; COMMANDS.len()],
    /// Per [`REASONS`] entry.
    pub refusals: [u64; REASONS.len()],
    /// Arrival (the read that completed the packet) to the sysfs write
    /// returning, for every request that wrote (CPU_POWER accepted).
    pub write_latency: Histogram,
}

impl Tally {
    /// An accepted request of command `cmd` (a [`command_of`] index).
    pub fn accepted(&mut self, cmd: usize) {
        if let Some(c) = self.by_command.get_mut(cmd) {
            c[0] += 1;
        }
    }

    /// A refused request of command `cmd`, for `why`.
    pub fn refused(&mut self, cmd: usize, why: &RequestError) {
        if let Some(c) = self.by_command.get_mut(cmd) {
            c[1] += 1;
        }
        if let Some(r) = why.reason().and_then(|r| self.refusals.get_mut(r)) {
            *r += 1;
        }
    }

    /// A sysfs write for a packet that arrived at `arrival` has returned.
    pub fn wrote(&mut self, arrival: Instant) {
        let ns = u64::try_from(arrival.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.write_latency.observe(ns);
    }
}

impl Monitor {
    /// A refused request of command `cmd` on `vm`, for `why`.
    pub(super) fn tally_refused(&mut self, vm: VmId, cmd: usize, why: &RequestError) {
        if let Some(v) = self.reg.get_mut(vm) {
            v.tally.refused(cmd, why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rte_power::wire::{ChannelPacket, Step};

    #[test]
    fn commands_are_read_from_the_raw_frame() {
        let steps = [
            (Step::Up, "scale_up"),
            (Step::Down, "scale_down"),
            (Step::Max, "scale_max"),
            (Step::Min, "scale_min"),
            (Step::EnableTurbo, "enable_turbo"),
            (Step::DisableTurbo, "disable_turbo"),
        ];
        for (s, name) in steps {
            let b = ChannelPacket::cpu_power(0, s).encode();
            assert_eq!(COMMANDS[command_of(&b)], name);
        }
        let mut p = ChannelPacket::ZEROED;
        for (c, name) in [
            (wire::PKT_POLICY, "policy"),
            (wire::PKT_POLICY_REMOVE, "policy_remove"),
            (wire::QUERY_FREQ_LIST, "query_freq_list"),
            (wire::QUERY_FREQ, "query_freq"),
            (wire::QUERY_CAPS_LIST, "query_caps_list"),
            (wire::QUERY_CAPS, "query_caps"),
            (99, "other"),
        ] {
            p.command = c;
            assert_eq!(COMMANDS[command_of(&p.encode())], name);
        }
        p.command = wire::CPU_POWER;
        p.unit = 7;
        assert_eq!(COMMANDS[command_of(&p.encode())], "other");
    }

    #[test]
    fn labels_are_snake_case_and_distinct() {
        for set in [&COMMANDS[..], &REASONS[..]] {
            for (i, l) in set.iter().enumerate() {
                assert!(
                    l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{l}"
                );
                assert!(!set[..i].contains(l), "{l} twice");
            }
        }
    }

    #[test]
    fn the_histogram_buckets_by_upper_bound_and_accumulates() {
        let mut h = Histogram::default();
        for ns in [
            0,
            5_000,
            5_001,
            99_999_999,
            100_000_000,
            100_000_001,
            u64::MAX,
        ] {
            h.observe(ns);
        }
        assert_eq!(h.count(), 7);
        let b = h.buckets();
        let c: Vec<(f64, u64)> = b
            .iter()
            .scan(0, |acc, &(le, n)| {
                *acc += n;
                Some((le, *acc))
            })
            .collect();
        assert_eq!(c[0], (5e-6, 2), "0 and exactly 5 µs");
        assert_eq!(c[1], (1e-5, 3));
        assert_eq!(c[BUCKETS_NS.len() - 1], (0.1, 5), "up to exactly 100 ms");
        assert_eq!(c[BUCKETS_NS.len()], (f64::INFINITY, 7));
        assert!(c.windows(2).all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0));
        assert_eq!(h.sum_ns, u64::MAX, "saturates");
    }
}
