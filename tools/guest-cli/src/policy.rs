//! The policy `send_policy` builds from its options.
//!
//! The policy a guest sends with `send_policy`: every field comes from an
//! option or is zero. Unlike DPDK's guest CLI there are no built-in
//! defaults (VM name, vCPUs, hours, thresholds) that an option would only
//! partly overwrite: each option replaces its whole field.

use std::fmt;

use super::CliError;
use rte_power::wire::{
    ChannelPacket, PolicyKind, TrafficPolicy, VmName, WorkloadLevel, HOURS_PER_DAY,
    MAX_VCPU_PER_VM, MAX_VFS, PKT_POLICY, PKT_POLICY_REMOVE,
};

/// What `send_policy` sends (and queries name as their VM).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// `vm_name`: the VM the host files the policy under (DPDK's host keys
    /// policies and queries by it).
    pub vm_name: Option<VmName>,
    /// `vcpu_to_control` / `num_vcpu`.
    pub vcpus: Vec<u8>,
    /// `timer_policy.busy_hours`.
    pub busy_hours: Vec<u8>,
    /// `timer_policy.quiet_hours`.
    pub quiet_hours: Vec<u8>,
    /// `timer_policy.hours_to_use_traffic_profile`.
    pub traffic_hours: Vec<u8>,
    /// `workload` (zero = HIGH when not given).
    pub workload: Option<WorkloadLevel>,
    /// `policy_to_use` (zero = TRAFFIC when not given).
    pub kind: Option<PolicyKind>,
    /// `traffic_policy` thresholds, packets per second.
    pub traffic: TrafficPolicy,
    /// MAC addresses of the VFs to watch (`vfid`, `nb_mac_to_monitor`).
    pub macs: Vec<[u8; 6]>,
}

/// Policy options, as `--name value` or `--name=value` (shared by the
/// command line and `send_policy`).
pub const POLICY_OPTIONS: &[(&str, &str)] = &[
    ("--vm-name, -n NAME", "vm_name of policies and queries"),
    (
        "--vcpu-list LIST",
        "vCPUs the policy controls, e.g. 0-1,3 (at most 8)",
    ),
    ("--busy-hours, -b LIST", "hours 0-23 at maximum frequency"),
    ("--quiet-hours, -q LIST", "hours 0-23 at minimum frequency"),
    (
        "--traffic-hours LIST",
        "hours 0-23 that follow the traffic thresholds",
    ),
    ("--policy KIND", "traffic | time | workload | branch_ratio"),
    ("--workload LEVEL", "high | medium | low (WORKLOAD policy)"),
    (
        "--min-packet-thresh N",
        "packets/s (carried, unused by hosts)",
    ),
    (
        "--avg-packet-thresh N",
        "packets/s at or above which: middle frequency",
    ),
    (
        "--max-packet-thresh N",
        "packets/s at or above which: maximum frequency",
    ),
    (
        "--mac LIST",
        "MAC addresses of the VFs to watch, comma separated (at most 10)",
    ),
];

impl Policy {
    /// Applies one policy option; `Ok(false)` if `name` is not one.
    pub fn set(&mut self, name: &str, value: &str) -> Result<bool, CliError> {
        match name {
            "-n" | "--vm-name" => {
                self.vm_name = if value.is_empty() {
                    None
                } else {
                    Some(
                        VmName::new(value)
                            .map_err(|e| CliError::usage(format!("--vm-name: {e}")))?,
                    )
                }
            }
            "--vcpu-list" => {
                self.vcpus = parse_list(value, 255, MAX_VCPU_PER_VM, "--vcpu-list")?;
            }
            "-b" | "--busy-hours" => self.busy_hours = hours(value, "--busy-hours")?,
            "-q" | "--quiet-hours" => self.quiet_hours = hours(value, "--quiet-hours")?,
            "--traffic-hours" => self.traffic_hours = hours(value, "--traffic-hours")?,
            "--policy" => self.kind = Some(parse_kind(value)?),
            "--workload" => self.workload = Some(parse_workload(value)?),
            "--min-packet-thresh" => self.traffic.min_packet_thresh = number(name, value)?,
            "--avg-packet-thresh" => self.traffic.avg_max_packet_thresh = number(name, value)?,
            "--max-packet-thresh" => self.traffic.max_max_packet_thresh = number(name, value)?,
            "--mac" => {
                let macs = if value.is_empty() {
                    Vec::new()
                } else {
                    value
                        .split(',')
                        .map(|m| parse_mac(m.trim()))
                        .collect::<Result<Vec<_>, _>>()?
                };
                if macs.len() > MAX_VFS {
                    return Err(CliError::usage(format!(
                        "--mac: at most {MAX_VFS} addresses"
                    )));
                }
                self.macs = macs;
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The PKT_POLICY packet: the fields above, everything else zero
    /// (`core_type` virtual: the numbers are this VM's vCPUs).
    pub fn packet(&self) -> ChannelPacket {
        let mut p = self.named(PKT_POLICY);
        for (slot, v) in p.vcpu_to_control.iter_mut().zip(&self.vcpus) {
            *slot = *v;
        }
        p.num_vcpu = self.vcpus.len() as u8;
        fill_hours(&mut p.timer_policy.busy_hours, &self.busy_hours);
        fill_hours(&mut p.timer_policy.quiet_hours, &self.quiet_hours);
        fill_hours(
            &mut p.timer_policy.hours_to_use_traffic_profile,
            &self.traffic_hours,
        );
        p.workload = self.workload.map_or(0, WorkloadLevel::as_u32);
        p.policy_to_use = self.kind.map_or(0, PolicyKind::as_u32);
        p.traffic_policy = self.traffic;
        for (slot, mac) in p.vfid.iter_mut().zip(&self.macs) {
            let mut b = [0u8; 8];
            b[..6].copy_from_slice(mac);
            *slot = u64::from_le_bytes(b);
        }
        p.nb_mac_to_monitor = self.macs.len() as i32;
        p
    }

    /// PKT_POLICY_REMOVE: only the VM name matters to the host.
    pub fn remove_packet(&self) -> ChannelPacket {
        self.named(PKT_POLICY_REMOVE)
    }

    /// A zero packet with `command` and this policy's VM name.
    pub fn named(&self, command: u32) -> ChannelPacket {
        let mut p = ChannelPacket::ZEROED;
        p.command = command;
        p.vm_name = self.vm_name.unwrap_or(VmName::EMPTY);
        p
    }
}

fn fill_hours(slots: &mut [i32; HOURS_PER_DAY], hours: &[u8]) {
    for (slot, h) in slots.iter_mut().zip(hours) {
        *slot = i32::from(*h);
    }
}

fn number(name: &str, value: &str) -> Result<u32, CliError> {
    value
        .parse()
        .map_err(|_| CliError::usage(format!("{name}: {value:?} is not a number")))
}

fn hours(value: &str, what: &str) -> Result<Vec<u8>, CliError> {
    parse_list(value, 23, HOURS_PER_DAY, what)
}

/// Parses `1,3-5,8` into values `<= max`, at most `count` of them, without
/// duplicates, in the order given. An empty string is an empty list.
pub fn parse_list(value: &str, max: u32, count: usize, what: &str) -> Result<Vec<u8>, CliError> {
    let bad = |why: String| CliError::usage(format!("{what}: {why}"));
    let mut out: Vec<u8> = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let num = |s: &str| {
            s.parse::<u32>()
                .ok()
                .filter(|v| *v <= max)
                .ok_or_else(|| bad(format!("{s:?} is not a number 0-{max}")))
        };
        let (a, b) = (num(a)?, num(b)?);
        if a > b {
            return Err(bad(format!("range {part:?} runs backwards")));
        }
        for v in a..=b {
            let v = v as u8; // v <= max <= 255
            if out.contains(&v) {
                return Err(bad(format!("{v} is listed twice")));
            }
            out.push(v);
        }
    }
    if out.len() > count {
        return Err(bad(format!("{} values, at most {count} fit", out.len())));
    }
    Ok(out)
}

fn parse_kind(v: &str) -> Result<PolicyKind, CliError> {
    Ok(match v.to_ascii_lowercase().as_str() {
        "traffic" => PolicyKind::Traffic,
        "time" => PolicyKind::Time,
        "workload" => PolicyKind::Workload,
        "branch_ratio" | "branch-ratio" => PolicyKind::BranchRatio,
        _ => {
            return Err(CliError::usage(format!(
                "--policy: {v:?} is none of traffic, time, workload, branch_ratio"
            )))
        }
    })
}

fn parse_workload(v: &str) -> Result<WorkloadLevel, CliError> {
    Ok(match v.to_ascii_lowercase().as_str() {
        "high" => WorkloadLevel::High,
        "medium" => WorkloadLevel::Medium,
        "low" => WorkloadLevel::Low,
        _ => {
            return Err(CliError::usage(format!(
                "--workload: {v:?} is none of high, medium, low"
            )))
        }
    })
}

/// `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(s: &str) -> Result<[u8; 6], CliError> {
    let bad = || CliError::usage(format!("--mac: {s:?} is not a MAC address"));
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.is_empty() || p.len() > 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

fn list(v: &[u8]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.vm_name.as_ref().map_or("(none)", VmName::as_str);
        writeln!(f, "vm name:        {name}")?;
        writeln!(
            f,
            "policy:         {:?}",
            self.kind.unwrap_or(PolicyKind::Traffic)
        )?;
        writeln!(f, "vcpus:          {}", list(&self.vcpus))?;
        writeln!(f, "busy hours:     {}", list(&self.busy_hours))?;
        writeln!(f, "quiet hours:    {}", list(&self.quiet_hours))?;
        writeln!(f, "traffic hours:  {}", list(&self.traffic_hours))?;
        writeln!(
            f,
            "workload:       {:?}",
            self.workload.unwrap_or(WorkloadLevel::High)
        )?;
        let t = &self.traffic;
        writeln!(
            f,
            "thresholds:     min {} avg {} max {} packets/s",
            t.min_packet_thresh, t.avg_max_packet_thresh, t.max_max_packet_thresh
        )?;
        let macs: Vec<String> = self
            .macs
            .iter()
            .map(|m| {
                m.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .collect();
        write!(
            f,
            "macs:           {}",
            if macs.is_empty() {
                "-".into()
            } else {
                macs.join(",")
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rte_power::wire::layout;

    #[test]
    fn lists_parse_and_reject() {
        assert_eq!(
            parse_list("0-2,5", 23, 24, "x").expect("ok"),
            vec![0, 1, 2, 5]
        );
        assert_eq!(parse_list("", 23, 24, "x").expect("ok"), Vec::<u8>::new());
        assert_eq!(parse_list(" 7 ", 23, 24, "x").expect("ok"), vec![7]);
        for bad in ["24", "-1", "3-1", "1,1", "a", "1-", "0-8"] {
            assert!(parse_list(bad, 23, 8, "x").is_err(), "{bad}");
        }
    }

    #[test]
    fn macs_parse() {
        assert_eq!(
            parse_mac("00:1b:21:aa:bb:0c").expect("mac"),
            [0, 0x1b, 0x21, 0xaa, 0xbb, 0x0c]
        );
        assert_eq!(
            parse_mac("0-1b-21-aa-bb-c").expect("mac"),
            [0, 0x1b, 0x21, 0xaa, 0xbb, 0x0c]
        );
        for bad in [
            "00:1b:21:aa:bb",
            "00:1b:21:aa:bb:0c:00",
            "zz:1b:21:aa:bb:0c",
            "001:1b:21:aa:bb:0c",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_empty_policy_is_zero_but_the_command() {
        let b = Policy::default().packet().encode();
        assert!(b
            .iter()
            .enumerate()
            .all(|(i, v)| *v == 0 || i == layout::COMMAND));
        assert_eq!(b[layout::COMMAND], 3);
    }

    #[test]
    fn options_replace_whole_fields() {
        let mut p = Policy::default();
        for (k, v) in [
            ("--vm-name", "vm1"),
            ("--vcpu-list", "0-1,3"),
            ("-b", "8,9,10"),
            ("-q", "1-2"),
            ("--traffic-hours", "12"),
            ("--policy", "TIME"),
            ("--workload", "medium"),
            ("--min-packet-thresh", "1"),
            ("--avg-packet-thresh", "2"),
            ("--max-packet-thresh", "3"),
            ("--mac", "02:00:00:00:00:01,02:00:00:00:00:02"),
        ] {
            assert!(p.set(k, v).expect(k), "{k}");
        }
        assert!(!p.set("--nonsense", "1").expect("not an option"));
        assert!(p.set("-b", "7").expect("busy"));
        let pkt = p.packet();
        assert_eq!(pkt.vm_name.as_str(), "vm1");
        assert_eq!(pkt.vcpus(), &[0, 1, 3]);
        // --busy-hours=7 leaves no residue of the earlier list
        assert_eq!(&pkt.timer_policy.busy_hours[..3], &[7, 0, 0]);
        assert_eq!(&pkt.timer_policy.quiet_hours[..3], &[1, 2, 0]);
        assert_eq!(pkt.timer_policy.hours_to_use_traffic_profile[0], 12);
        assert_eq!(pkt.policy_to_use, 1);
        assert_eq!(pkt.workload, 1);
        assert_eq!(pkt.traffic_policy.max_max_packet_thresh, 3);
        assert_eq!(pkt.nb_mac_to_monitor, 2);
        assert_eq!(pkt.vfid[1].to_le_bytes(), [2, 0, 0, 0, 0, 2, 0, 0]);
        // the codec accepts what we build
        assert_eq!(ChannelPacket::decode(&pkt.encode()).expect("valid"), pkt);
        for (k, v) in [
            ("--vm-name", "x".repeat(32).as_str()),
            ("--vcpu-list", "0-8"),
            ("--policy", "fast"),
            ("--workload", "max"),
            ("--avg-packet-thresh", "-1"),
            ("--mac", "1,2,3"),
        ] {
            assert!(p.set(k, v).is_err(), "{k} {v}");
        }
    }
}
