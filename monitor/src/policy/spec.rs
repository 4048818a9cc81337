//! A guest PKT_POLICY as the engine keeps it: hour lists as sets, VFs as MACs, checked.

use std::fmt;

use rte_power::wire::{ChannelPacket, PolicyKind, TrafficPolicy, WireError, WorkloadLevel};

/// A set of hours of the day (bit `h` = hour `h`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Hours(u32);

impl Hours {
    /// No hour.
    pub const NONE: Hours = Hours(0);

    /// The hours of one of DPDK's 24-slot lists. The format has no end
    /// marker: unused slots hold 0, so a 0 is taken for hour 0 only when a
    /// non-zero hour follows it somewhere in the list (trailing zeros are
    /// padding). DPDK compares every slot, so at hour 0 the padding of any
    /// list shorter than 24 matches: its bug, not copied here.
    pub fn from_wire(list: &[i32]) -> Hours {
        let end = list.iter().rposition(|&h| h != 0).map_or(0, |i| i + 1);
        let mut bits = 0u32;
        for &h in &list[..end] {
            if (0..24).contains(&h) {
                bits |= 1 << h;
            }
        }
        Hours(bits)
    }

    /// These hours (test helper and operator tools).
    pub fn of(hours: &[u8]) -> Hours {
        Hours(
            hours
                .iter()
                .filter(|&&h| h < 24)
                .fold(0, |b, &h| b | (1 << h)),
        )
    }

    /// Is `hour` in the set?
    pub fn contains(self, hour: u8) -> bool {
        hour < 24 && self.0 & (1 << hour) != 0
    }

    /// No hour at all?
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The hours, ascending.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0u8..24).filter(move |&h| self.contains(h))
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for h in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{h}")?;
        }
        Ok(())
    }
}

/// A VF's MAC address (the first 6 bytes of a `vfid[]` slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// The MAC in a `vfid[]` slot (little-endian u64, first 6 bytes).
    pub fn from_vfid(v: u64) -> Mac {
        let b = v.to_le_bytes();
        Mac([b[0], b[1], b[2], b[3], b[4], b[5]])
    }

    /// Parses `aa:bb:cc:dd:ee:ff`.
    pub fn parse(s: &str) -> Option<Mac> {
        let mut m = [0u8; 6];
        let mut parts = s.trim().split(':');
        for b in &mut m {
            let p = parts.next()?;
            if p.len() != 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(Mac(m))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// What a policy follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Packet rates of the VM's VFs.
    Traffic,
    /// The hour of the day.
    Time,
    /// A fixed level.
    Workload(WorkloadLevel),
    /// Branch misses / branches of each pCPU.
    BranchRatio,
}

impl Kind {
    /// DPDK's name of the policy.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Traffic => "TRAFFIC",
            Kind::Time => "TIME",
            Kind::Workload(_) => "WORKLOAD",
            Kind::BranchRatio => "BRANCH_RATIO",
        }
    }
}

/// The name of a workload level.
pub fn level_name(l: WorkloadLevel) -> &'static str {
    match l {
        WorkloadLevel::High => "HIGH",
        WorkloadLevel::Medium => "MEDIUM",
        WorkloadLevel::Low => "LOW",
    }
}

/// Why a policy cannot be kept (the NACK's reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// `num_vcpu` 0.
    #[error("policy names no vCPU (num_vcpu 0)")]
    NoVcpu,
    /// `core_type` PHYSICAL.
    #[error("core_type PHYSICAL is not accepted from a guest")]
    Physical,
    /// `policy_to_use` or `workload` out of range.
    #[error("{0}")]
    Wire(WireError),
    /// A TRAFFIC policy without a MAC.
    #[error("{0} policy needs at least one VF MAC (nb_mac_to_monitor 0 or all-zero MACs)")]
    NoVf(&'static str),
    /// Thresholds not in order.
    #[error("traffic thresholds must be min <= avg max <= max max (got {min}, {avg}, {max})")]
    Thresholds {
        /// `min_packet_thresh`.
        min: u32,
        /// `avg_max_packet_thresh`.
        avg: u32,
        /// `max_max_packet_thresh`.
        max: u32,
    },
}

/// A checked policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// What it follows.
    pub kind: Kind,
    /// The vCPUs it controls (distinct, as sent).
    pub vcpus: Vec<u8>,
    /// The VFs whose packets count (TRAFFIC, TIME with traffic hours);
    /// an all-zero MAC is no VF (guest_cli sends it when it has no port).
    /// A TIME policy with traffic hours but no VF leaves those hours to
    /// the guest.
    pub macs: Vec<Mac>,
    /// Packet-rate thresholds, packets/s.
    pub traffic: TrafficPolicy,
    /// TIME: hours at maximum.
    pub busy: Hours,
    /// TIME: hours at minimum.
    pub quiet: Hours,
    /// TIME: hours that follow the traffic thresholds.
    pub traffic_hours: Hours,
    /// The packet as received (echoed in reports).
    pub packet: ChannelPacket,
}

impl Spec {
    /// Checks a decoded PKT_POLICY (counts, hours and enum values were
    /// checked by the decoder; vCPU ownership by the request handling).
    pub fn from_packet(p: &ChannelPacket) -> Result<Spec, SpecError> {
        if p.core_type {
            return Err(SpecError::Physical);
        }
        let kind = match p.policy_kind().map_err(SpecError::Wire)? {
            PolicyKind::Traffic => Kind::Traffic,
            PolicyKind::Time => Kind::Time,
            PolicyKind::Workload => Kind::Workload(p.workload_level().map_err(SpecError::Wire)?),
            PolicyKind::BranchRatio => Kind::BranchRatio,
        };
        let mut vcpus: Vec<u8> = Vec::new();
        for &v in p.vcpus() {
            if !vcpus.contains(&v) {
                vcpus.push(v);
            }
        }
        if vcpus.is_empty() {
            return Err(SpecError::NoVcpu);
        }
        let t = &p.timer_policy;
        let (busy, quiet, traffic_hours) = if kind == Kind::Time {
            (
                Hours::from_wire(&t.busy_hours),
                Hours::from_wire(&t.quiet_hours),
                Hours::from_wire(&t.hours_to_use_traffic_profile),
            )
        } else {
            (Hours::NONE, Hours::NONE, Hours::NONE)
        };
        let uses_traffic = kind == Kind::Traffic || !traffic_hours.is_empty();
        let n = usize::try_from(p.nb_mac_to_monitor).unwrap_or(0);
        let mut macs: Vec<Mac> = Vec::new();
        if uses_traffic {
            for &v in p.vfid.iter().take(n) {
                let m = Mac::from_vfid(v);
                if m != Mac([0; 6]) && !macs.contains(&m) {
                    macs.push(m);
                }
            }
            if macs.is_empty() && kind == Kind::Traffic {
                return Err(SpecError::NoVf(kind.name()));
            }
            let tp = p.traffic_policy;
            if tp.min_packet_thresh > tp.avg_max_packet_thresh
                || tp.avg_max_packet_thresh > tp.max_max_packet_thresh
            {
                return Err(SpecError::Thresholds {
                    min: tp.min_packet_thresh,
                    avg: tp.avg_max_packet_thresh,
                    max: tp.max_max_packet_thresh,
                });
            }
        }
        Ok(Spec {
            kind,
            vcpus,
            macs,
            traffic: p.traffic_policy,
            busy,
            quiet,
            traffic_hours,
            packet: *p,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rte_power::wire;

    fn time(busy: &[i32], quiet: &[i32]) -> ChannelPacket {
        let mut p = ChannelPacket::ZEROED;
        p.command = wire::PKT_POLICY;
        p.policy_to_use = wire::POLICY_TIME;
        p.num_vcpu = 1;
        p.timer_policy.busy_hours[..busy.len()].copy_from_slice(busy);
        p.timer_policy.quiet_hours[..quiet.len()].copy_from_slice(quiet);
        p
    }

    #[test]
    fn trailing_zeros_are_padding_and_a_zero_before_an_hour_is_hour_0() {
        assert_eq!(Hours::from_wire(&[3, 4, 5, 0, 0]), Hours::of(&[3, 4, 5]));
        assert_eq!(Hours::from_wire(&[0, 5, 0]), Hours::of(&[0, 5]));
        assert_eq!(Hours::from_wire(&[0; 24]), Hours::NONE);
        let all: Vec<i32> = (0..24).collect();
        assert_eq!(Hours::from_wire(&all).iter().count(), 24);
        assert_eq!(Hours::of(&[23, 0, 7]).to_string(), "0,7,23");
        assert!(!Hours::of(&[1]).contains(24));
    }

    #[test]
    fn guest_cli_defaults_give_its_three_busy_and_quiet_hours() {
        let s = Spec::from_packet(&time(&[3, 4, 5], &[11, 12, 13])).expect("spec");
        assert_eq!(s.kind, Kind::Time);
        assert_eq!(s.busy.to_string(), "3,4,5");
        assert_eq!(s.quiet.to_string(), "11,12,13");
        assert!(s.traffic_hours.is_empty());
        assert!(s.macs.is_empty(), "no traffic hours: MACs not needed");
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let mut p = time(&[1], &[]);
        p.num_vcpu = 0;
        assert_eq!(Spec::from_packet(&p), Err(SpecError::NoVcpu));
        let mut p = time(&[1], &[]);
        p.core_type = true;
        assert_eq!(Spec::from_packet(&p), Err(SpecError::Physical));
        let mut p = time(&[1], &[]);
        p.timer_policy.hours_to_use_traffic_profile[0] = 8;
        p.nb_mac_to_monitor = 1;
        let s = Spec::from_packet(&p).expect("TIME: no VF is allowed");
        assert!(s.macs.is_empty(), "an all-zero MAC is no VF");
        let mut t = p;
        t.policy_to_use = wire::POLICY_TRAFFIC;
        assert_eq!(Spec::from_packet(&t), Err(SpecError::NoVf("TRAFFIC")));
        p.vfid[0] = 0x0605_0403_0201;
        p.traffic_policy = TrafficPolicy {
            min_packet_thresh: 5,
            avg_max_packet_thresh: 3,
            max_max_packet_thresh: 9,
        };
        let e = Spec::from_packet(&p).expect_err("order");
        assert_eq!(
            e.to_string(),
            "traffic thresholds must be min <= avg max <= max max (got 5, 3, 9)"
        );
        p.traffic_policy.avg_max_packet_thresh = 7;
        let s = Spec::from_packet(&p).expect("ok");
        assert_eq!(s.macs, [Mac([1, 2, 3, 4, 5, 6])]);
        assert_eq!(s.macs[0].to_string(), "01:02:03:04:05:06");
        assert_eq!(Mac::parse("01:02:03:04:05:06"), Some(s.macs[0]));
        assert_eq!(Mac::parse("01:02:03:04:05"), None);
        assert_eq!(Mac::parse("01:02:03:04:05:06:07"), None);
    }

    #[test]
    fn vcpus_are_deduplicated() {
        let mut p = ChannelPacket::ZEROED;
        p.policy_to_use = wire::POLICY_WORKLOAD;
        p.workload = wire::WL_MEDIUM;
        p.num_vcpu = 3;
        p.vcpu_to_control[..3].copy_from_slice(&[1, 0, 1]);
        let s = Spec::from_packet(&p).expect("spec");
        assert_eq!(s.vcpus, [1, 0]);
        assert_eq!(s.kind, Kind::Workload(WorkloadLevel::Medium));
    }
}
