//! The monitor's Prometheus families, built from a loop snapshot and sysfs.
//!
//! Names: `rte_power_cpu_*` are the per-CPU families `rte-pm metrics`
//! prints too (read from sysfs by the metrics thread, never by the loop);
//! `vm_power_mgr_*` are the monitor's own, from one [`Snapshot`] the loop
//! answers per scrape; `process_cpu_seconds_total` is the standard one.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rte_pm::metrics::{register_cpu_families, sample_all, Labels};
use rte_power::sysfs::SysfsRoot;

use crate::monitor::json::Snapshot;

type FCounter = Counter<f64, AtomicU64>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// CPU time of this process (user + system), seconds.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes only into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The whole exposition of one scrape.
pub fn render(snap: &Snapshot, sysfs: &SysfsRoot) -> String {
    let mut reg = Registry::default();
    let cpus = sample_all(sysfs, 0..snap.host_cpus);
    register_cpu_families(&mut reg, &cpus);
    register_monitor(&mut reg, snap);
    let vms: Vec<(&str, Option<f64>, Option<f64>)> = snap
        .vms
        .iter()
        .map(|v| (v.name.as_str(), v.energy_joules, v.power_watts))
        .collect();
    crate::energy::report::register(&mut reg, &vms, &snap.energy);
    rte_pm::metrics::exposition(&reg)
}

/// Registers the `vm_power_mgr_*` families and the process CPU time.
pub fn register_monitor(reg: &mut Registry, snap: &Snapshot) {
    let owner = Family::<Labels, Gauge>::default();
    let decisions = Family::<Labels, Counter>::default();
    for c in &snap.cpus {
        let cpu = c.cpu.to_string();
        let vms = c.vms.join(",");
        owner
            .get_or_create(&labels(&[("cpu", &cpu), ("owner", &c.owner), ("vm", &vms)]))
            .set(1);
        let kept = c
            .decisions
            .saturating_sub(c.decisions_changed + c.decisions_skipped);
        for (result, n) in [
            ("changed", c.decisions_changed),
            ("skipped", c.decisions_skipped),
            ("kept", kept),
        ] {
            if c.decisions > 0 {
                decisions
                    .get_or_create(&labels(&[("cpu", &cpu), ("result", result)]))
                    .inc_by(n);
            }
        }
    }
    reg.register(
        "vm_power_mgr_cpu_owner_info",
        "Who decides a host CPU's frequency: vm, policy, operator or none (always 1)",
        owner,
    );
    reg.register(
        "vm_power_mgr_policy_decisions",
        "Guest-policy decisions per host CPU, by result",
        decisions,
    );

    let packets = Family::<Labels, Counter>::default();
    let requests = Family::<Labels, Counter>::default();
    let dropped = Family::<Labels, Counter>::default();
    let connects = Family::<Labels, Counter>::default();
    let resets = Family::<Labels, Counter>::default();
    let queued = Family::<Labels, Gauge>::default();
    let connected = Family::<Labels, Gauge>::default();
    for ch in &snap.channels {
        let num = ch.channel.to_string();
        let l = labels(&[("vm", &ch.vm), ("channel", &num)]);
        packets.get_or_create(&l).inc_by(ch.packets);
        for (outcome, n) in [("accepted", ch.accepted), ("refused", ch.refused)] {
            requests
                .get_or_create(&labels(&[
                    ("vm", &ch.vm),
                    ("channel", &num),
                    ("outcome", outcome),
                ]))
                .inc_by(n);
        }
        dropped.get_or_create(&l).inc_by(ch.replies_dropped);
        connects.get_or_create(&l).inc_by(ch.connects);
        resets.get_or_create(&l).inc_by(ch.resets);
        queued
            .get_or_create(&l)
            .set(i64::try_from(ch.queued_bytes).unwrap_or(i64::MAX));
        connected
            .get_or_create(&l)
            .set(i64::from(ch.status == "CONNECTED"));
    }
    reg.register(
        "vm_power_mgr_channel_packets",
        "Complete packets received on a guest channel",
        packets,
    );
    reg.register(
        "vm_power_mgr_channel_requests",
        "Guest requests on a channel, by outcome",
        requests,
    );
    reg.register(
        "vm_power_mgr_channel_replies_dropped",
        "Replies dropped because the guest did not read them",
        dropped,
    );
    reg.register(
        "vm_power_mgr_channel_connects",
        "Successful connects to a channel socket",
        connects,
    );
    reg.register(
        "vm_power_mgr_channel_resets",
        "Channel resets because the stream was out of frame",
        resets,
    );
    reg.register(
        "vm_power_mgr_channel_queued_bytes",
        "Reply bytes queued for a channel",
        queued,
    );
    reg.register(
        "vm_power_mgr_channel_connected",
        "1 while the channel is connected",
        connected,
    );

    let refusals = Family::<Labels, Counter>::default();
    for v in &snap.vms {
        refusals
            .get_or_create(&labels(&[("vm", &v.name), ("reason", "rate_limit")]))
            .inc_by(v.rate_limited);
        refusals
            .get_or_create(&labels(&[("vm", &v.name), ("reason", "other")]))
            .inc_by(v.refused.saturating_sub(v.rate_limited));
    }
    reg.register(
        "vm_power_mgr_vm_refusals",
        "Refused guest requests of a VM, by reason",
        refusals,
    );

    let wakeups = Counter::<u64>::default();
    wakeups.inc_by(snap.stats.wakeups);
    reg.register(
        "vm_power_mgr_loop_wakeups",
        "Returns of the event loop from epoll_wait",
        wakeups,
    );
    let ticks = Counter::<u64>::default();
    ticks.inc_by(snap.stats.policy_ticks);
    reg.register(
        "vm_power_mgr_policy_ticks",
        "Ticks of the guest-policy engine",
        ticks,
    );
    let managed = Gauge::<i64>::default();
    managed.set(i64::try_from(snap.stats.managed_cpus.len()).unwrap_or(i64::MAX));
    reg.register(
        "vm_power_mgr_managed_cpus",
        "Host CPUs under management (restored at exit)",
        managed,
    );
    let cpu_s = FCounter::default();
    cpu_s.inc_by(process_cpu_seconds());
    reg.register(
        "process_cpu_seconds",
        "User and system CPU time of the monitor, seconds",
        cpu_s,
    );
}
