//! The loop's side of a metrics scrape: one plain snapshot, handed to the metrics thread as a struct.
//!
//! No JSON, no per-channel string: a channel names its VM by index into
//! [`Scrape::vms`] (sorted by name; channels by VM, then number), so that
//! the loop's share of a scrape is a few counter copies per channel.

use std::sync::mpsc;

use super::channel::Link;
use super::json::CpuOwner;
use super::tally::Tally;
use super::{Monitor, Outcome};

/// One VM's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct VmSample {
    /// Its libvirt name.
    pub name: String,
    /// Requests by command and outcome, refusals by reason, latency.
    pub tally: Tally,
    /// Its share of package energy since added, joules (`None`: energy
    /// not sampled).
    pub energy_joules: Option<f64>,
    /// Its share of package power over the last interval, watts.
    pub power_watts: Option<f64>,
}

/// One channel's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChanSample {
    /// Its VM: an index into [`Scrape::vms`].
    pub vm: usize,
    /// Its number.
    pub channel: u32,
    /// Complete packets received.
    pub packets: u64,
    /// Requests accepted.
    pub accepted: u64,
    /// Requests refused.
    pub refused: u64,
    /// Replies dropped.
    pub replies_dropped: u64,
    /// Successful connects.
    pub connects: u64,
    /// Resets (stream out of frame).
    pub resets: u64,
    /// Reply bytes queued.
    pub queued_bytes: u64,
    /// Connected and enabled (`CONNECTED` in `show_channels`).
    pub connected: bool,
}

/// Everything the metrics endpoint serves that only the loop knows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    /// Host CPUs the hypervisor numbers.
    pub host_cpus: u32,
    /// Returns from `epoll_wait`.
    pub wakeups: u64,
    /// Policy engine ticks.
    pub policy_ticks: u64,
    /// Host CPUs under management.
    pub managed_cpus: usize,
    /// Every VM, by name.
    pub vms: Vec<VmSample>,
    /// Every channel, by VM and number.
    pub channels: Vec<ChanSample>,
    /// Every host CPU.
    pub cpus: Vec<CpuOwner>,
    /// Per-VM energy's state and package totals.
    pub energy: crate::energy::report::EnergyJson,
}

impl Monitor {
    /// Takes the snapshot and sends it to `to` (the metrics thread).
    pub(super) fn scrape(&self, to: &mpsc::Sender<Box<Scrape>>) -> Outcome {
        let (ids, slots) = self.reg.iter_ids();
        let mut order: Vec<_> = ids.collect();
        order.sort_unstable_by(|a, b| a.1.info.name.cmp(&b.1.info.name));
        // VM slot -> index in the sorted list
        let mut index = vec![usize::MAX; slots];
        let mut vms = Vec::with_capacity(order.len());
        for (i, (id, v)) in order.into_iter().enumerate() {
            if let Some(x) = index.get_mut(id.0) {
                *x = i;
            }
            vms.push(VmSample {
                name: v.info.name.clone(),
                tally: v.tally,
                energy_joules: self.energy.sampling().then_some(v.energy.joules),
                power_watts: v.energy.watts().filter(|_| self.energy.sampling()),
            });
        }
        let mut channels: Vec<ChanSample> = self
            .chans
            .iter()
            .filter_map(|ch| {
                Some(ChanSample {
                    vm: *index.get(ch.vm.0).filter(|&&i| i != usize::MAX)?,
                    channel: ch.num,
                    packets: ch.stats.packets,
                    accepted: ch.stats.accepted,
                    refused: ch.stats.refused,
                    replies_dropped: ch.stats.replies_dropped,
                    connects: ch.stats.connects,
                    resets: ch.stats.desyncs,
                    queued_bytes: ch.out.allocated() as u64,
                    connected: ch.link == Link::Connected && ch.enabled,
                })
            })
            .collect();
        channels.sort_unstable_by_key(|c| (c.vm, c.channel));
        let snap = Scrape {
            host_cpus: self.host_cpus,
            wakeups: self.wakeups,
            policy_ticks: self.policy.engine.ticks,
            managed_cpus: self.host.managed().len(),
            vms,
            channels,
            cpus: self.cpu_owners(),
            energy: crate::energy::report::snapshot(&self.energy),
        };
        match to.send(Box::new(snap)) {
            Ok(()) => Outcome::ok(""),
            Err(_) => Outcome::err("the metrics thread is gone"),
        }
    }
}
