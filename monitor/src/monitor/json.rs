//! The loop's JSON reports (`ctl --json`).
//!
//! Each report is a serde type, so that its JSON Schema (`docs/schemas/`)
//! and its readers follow one definition. (The metrics endpoint takes its
//! snapshot as a struct, `scrape`, not as JSON.)

use serde::{Deserialize, Serialize};

use super::channel::Link;
use super::{Monitor, Outcome};
use rte_power::cpulist::CpuSet;

/// A report the loop renders as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonQuery {
    /// `list_vms`.
    ListVms,
    /// `show_channels`.
    ShowChannels,
    /// `show_cpu_freq` / `show_cpu_freq_mask`.
    CpuFreq(CpuSet),
    /// `stats`: the loop's counters.
    Stats,
}

/// One VM of `list_vms`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VmLine {
    /// Its libvirt name.
    pub name: String,
    /// Running (libvirt's view when last looked up).
    pub active: bool,
    /// vCPUs.
    pub vcpus: usize,
    /// Channels registered.
    pub channels: usize,
    /// Of which connected.
    pub connected: usize,
    /// Frequency/capability queries allowed.
    pub query: bool,
    /// The guest policy in force (`null`: none).
    pub policy: Option<String>,
    /// Requests accepted on any of its channels.
    pub accepted: u64,
    /// Requests refused on any of its channels.
    pub refused: u64,
    /// Of which refused for the rate limit.
    pub rate_limited: u64,
    /// Host CPUs its vCPUs may run on.
    pub pcpus: Vec<u32>,
    /// Its share of package energy since added, joules (`null`: energy
    /// not available).
    #[serde(default)]
    pub energy_joules: Option<f64>,
    /// Its share of package power over the last interval, watts.
    #[serde(default)]
    pub power_watts: Option<f64>,
}

/// One channel of `show_channels`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChannelLine {
    /// Its VM.
    pub vm: String,
    /// Its number (`<dir>/<vm>.<N>`).
    pub channel: u32,
    /// Its socket.
    pub path: String,
    /// `connected`, `waiting`, `disabled`, ...
    pub status: String,
    /// Why it waits (empty when it does not).
    pub why: String,
    /// Complete packets received.
    pub packets: u64,
    /// Requests accepted.
    pub accepted: u64,
    /// Requests refused.
    pub refused: u64,
    /// Replies dropped because the guest did not read.
    pub replies_dropped: u64,
    /// Successful connects.
    pub connects: u64,
    /// Resets because the stream was out of frame.
    pub resets: u64,
    /// Reply bytes queued.
    pub queued_bytes: u64,
    /// The cap of the reply queue.
    pub queue_cap_bytes: u64,
}

/// One CPU of `show_cpu_freq`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CpuFreq {
    /// The CPU.
    pub cpu: u32,
    /// Its frequency in kHz (`null` when it could not be read).
    pub khz: Option<u32>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// The loop's counters (`stats`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    /// Packets received on every channel.
    pub packets: u64,
    /// Requests accepted.
    pub accepted: u64,
    /// Requests refused.
    pub refused: u64,
    /// Replies dropped.
    pub replies_dropped: u64,
    /// Channels connected now.
    pub connected: u64,
    /// Host CPUs under management (changed and restored at exit).
    pub managed_cpus: Vec<u32>,
    /// Host CPUs under the ondemand governor.
    pub ondemand_cpus: u64,
    /// Returns from `epoll_wait`.
    pub wakeups: u64,
    /// Guest policies in force.
    pub policies: u64,
    /// Policy engine ticks.
    pub policy_ticks: u64,
}

/// Who decides a host CPU's frequency now.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CpuOwner {
    /// The CPU.
    pub cpu: u32,
    /// `vm` (a managed VM's vCPU may run there), `policy` (that VM has a
    /// guest policy), `operator` (managed, no VM) or `none`.
    pub owner: String,
    /// The VMs whose vCPUs may run there.
    pub vms: Vec<String>,
    /// Policy decisions taken for it: (taken, changed, skipped).
    pub decisions: u64,
    /// Of which changed the frequency.
    pub decisions_changed: u64,
    /// Of which were skipped.
    pub decisions_skipped: u64,
}

fn json_outcome<T: Serialize>(v: &T) -> Outcome {
    match serde_json::to_string(v) {
        Ok(s) => Outcome::ok(s),
        Err(e) => Outcome::err(format!("cannot encode the report as JSON: {e}")),
    }
}

impl Monitor {
    /// A JSON report.
    pub(super) fn json(&self, q: &JsonQuery) -> Outcome {
        match q {
            JsonQuery::ListVms => json_outcome(&self.vm_lines()),
            JsonQuery::ShowChannels => json_outcome(&self.channel_lines()),
            JsonQuery::CpuFreq(cpus) => {
                let list: Vec<CpuFreq> = cpus
                    .iter()
                    .map(|cpu| match self.host.frequency(cpu) {
                        Ok(f) => CpuFreq {
                            cpu,
                            khz: Some(f),
                            error: None,
                        },
                        Err(e) => CpuFreq {
                            cpu,
                            khz: None,
                            error: Some(e.to_string()),
                        },
                    })
                    .collect();
                let ok = list.iter().all(|c| c.error.is_none());
                let mut out = json_outcome(&list);
                out.ok &= ok;
                out
            }
            JsonQuery::Stats => json_outcome(&self.stats_json()),
        }
    }

    fn vm_lines(&self) -> Vec<VmLine> {
        let mut vms: Vec<VmLine> = self
            .reg
            .iter()
            .map(|v| VmLine {
                name: v.info.name.clone(),
                active: v.info.active,
                vcpus: v.info.vcpus.len(),
                channels: v.channels.len(),
                connected: v
                    .channels
                    .values()
                    .filter(|&&c| {
                        self.chans
                            .get(c)
                            .is_some_and(|ch| ch.link == Link::Connected)
                    })
                    .count(),
                query: v.allow_query,
                policy: self
                    .policy
                    .engine
                    .get(&v.info.name)
                    .map(|p| p.spec.kind.name().to_string()),
                accepted: v.accepted,
                refused: v.refused,
                rate_limited: v.rate_limited,
                pcpus: v.owned_cpus().iter().collect(),
                energy_joules: self.energy.sampling().then_some(v.energy.joules),
                power_watts: v.energy.watts().filter(|_| self.energy.sampling()),
            })
            .collect();
        vms.sort_by(|a, b| a.name.cmp(&b.name));
        vms
    }

    fn channel_lines(&self) -> Vec<ChannelLine> {
        let mut list: Vec<ChannelLine> = self
            .chans
            .iter()
            .map(|ch| ChannelLine {
                vm: self.reg.name(ch.vm).to_string(),
                channel: ch.num,
                path: ch.path.display().to_string(),
                status: ch.status().to_string(),
                why: if ch.link == Link::Waiting {
                    ch.why.clone()
                } else {
                    String::new()
                },
                packets: ch.stats.packets,
                accepted: ch.stats.accepted,
                refused: ch.stats.refused,
                replies_dropped: ch.stats.replies_dropped,
                connects: ch.stats.connects,
                resets: ch.stats.desyncs,
                queued_bytes: ch.out.allocated() as u64,
                queue_cap_bytes: self.cfg.max_out_bytes as u64,
            })
            .collect();
        list.sort_by(|a, b| (&a.vm, a.channel).cmp(&(&b.vm, b.channel)));
        list
    }

    fn stats_json(&self) -> Stats {
        let mut s = Stats {
            managed_cpus: self.host.managed(),
            ondemand_cpus: self.gov.ondemand_cpus() as u64,
            wakeups: self.wakeups,
            policies: self.policy.engine.iter().count() as u64,
            policy_ticks: self.policy.engine.ticks,
            ..Stats::default()
        };
        for ch in self.chans.iter() {
            s.packets += ch.stats.packets;
            s.accepted += ch.stats.accepted;
            s.refused += ch.stats.refused;
            s.replies_dropped += ch.stats.replies_dropped;
            s.connected += u64::from(ch.link == Link::Connected);
        }
        s
    }

    pub(super) fn cpu_owners(&self) -> Vec<CpuOwner> {
        let managed = self.host.managed();
        let owners: Vec<(&str, CpuSet, bool)> = self
            .reg
            .iter()
            .map(|v| {
                let name = v.info.name.as_str();
                (name, v.owned_cpus(), self.policy.engine.get(name).is_some())
            })
            .collect();
        (0..self.host_cpus)
            .map(|cpu| {
                let mut vms = Vec::new();
                let mut policy = false;
                for (name, owned, has_policy) in &owners {
                    if owned.contains(cpu) {
                        vms.push((*name).to_string());
                        policy |= has_policy;
                    }
                }
                vms.sort();
                let owner = if policy {
                    "policy"
                } else if !vms.is_empty() {
                    "vm"
                } else if managed.contains(&cpu) {
                    "operator"
                } else {
                    "none"
                };
                let c = self.policy.engine.count(cpu);
                CpuOwner {
                    cpu,
                    owner: owner.into(),
                    vms,
                    decisions: c.decisions,
                    decisions_changed: c.changes,
                    decisions_skipped: c.skipped,
                }
            })
            .collect()
    }
}
