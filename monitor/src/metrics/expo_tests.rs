//! The Collector's exposition against the `Family`-built one it replaced, line for line.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rte_pm::metrics::Labels;

use super::*;
use crate::monitor::json::CpuOwner;
use crate::monitor::scrape::{ChanSample, VmSample};
use crate::monitor::tally::Tally;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// The families as the monitor built them before the Collector (one
/// `Family` per name, a `String` pair per label), for the same snapshot.
fn with_families(s: &Scrape) -> String {
    let mut reg = Registry::default();
    let owner = Family::<Labels, Gauge>::default();
    let decisions = Family::<Labels, Counter>::default();
    for c in &s.cpus {
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
    let f: Vec<(&str, &str, Family<Labels, Counter>)> = vec![
        (
            "vm_power_mgr_channel_packets",
            "Complete packets received on a guest channel",
            Family::default(),
        ),
        (
            "vm_power_mgr_channel_replies_dropped",
            "Replies dropped because the guest did not read them",
            Family::default(),
        ),
        (
            "vm_power_mgr_channel_connects",
            "Successful connects to a channel socket",
            Family::default(),
        ),
        (
            "vm_power_mgr_channel_resets",
            "Channel resets because the stream was out of frame",
            Family::default(),
        ),
    ];
    let requests = Family::<Labels, Counter>::default();
    let queued = Family::<Labels, Gauge>::default();
    let connected = Family::<Labels, Gauge>::default();
    for ch in &s.channels {
        let vm = s.vms[ch.vm].name.as_str();
        let num = ch.channel.to_string();
        let l = labels(&[("vm", vm), ("channel", &num)]);
        for ((_, _, fam), v) in
            f.iter()
                .zip([ch.packets, ch.replies_dropped, ch.connects, ch.resets])
        {
            fam.get_or_create(&l).inc_by(v);
        }
        for (outcome, n) in [("accepted", ch.accepted), ("refused", ch.refused)] {
            requests
                .get_or_create(&labels(&[
                    ("vm", vm),
                    ("channel", &num),
                    ("outcome", outcome),
                ]))
                .inc_by(n);
        }
        queued
            .get_or_create(&l)
            .set(i64::try_from(ch.queued_bytes).unwrap_or(i64::MAX));
        connected.get_or_create(&l).set(i64::from(ch.connected));
    }
    for (name, help, fam) in f {
        reg.register(name, help, fam);
    }
    reg.register(
        "vm_power_mgr_channel_requests",
        "Guest requests on a channel, by outcome",
        requests,
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
    let wakeups = Counter::<u64>::default();
    wakeups.inc_by(s.wakeups);
    reg.register(
        "vm_power_mgr_loop_wakeups",
        "Returns of the event loop from epoll_wait",
        wakeups,
    );
    let ticks = Counter::<u64>::default();
    ticks.inc_by(s.policy_ticks);
    reg.register(
        "vm_power_mgr_policy_ticks",
        "Ticks of the guest-policy engine",
        ticks,
    );
    let managed = Gauge::<i64>::default();
    managed.set(s.managed_cpus as i64);
    reg.register(
        "vm_power_mgr_managed_cpus",
        "Host CPUs under management (restored at exit)",
        managed,
    );
    rte_pm::metrics::exposition(&reg)
}

fn snapshot() -> Scrape {
    let vms: Vec<VmSample> = ["vm-a", "vm \"b\"\\", "vm-c"]
        .iter()
        .map(|n| VmSample {
            name: (*n).into(),
            tally: Tally::default(),
            energy_joules: None,
            power_watts: None,
        })
        .collect();
    let mut channels = Vec::new();
    for vm in 0..vms.len() {
        for channel in [0, 3, 17] {
            let k = (vm * 100 + channel as usize) as u64;
            channels.push(ChanSample {
                vm,
                channel,
                packets: k * 7,
                accepted: k * 5,
                refused: k * 2,
                replies_dropped: k,
                connects: 1,
                resets: k % 3,
                queued_bytes: k * 464,
                connected: channel != 3,
            });
        }
    }
    let cpus = (0..4)
        .map(|cpu| CpuOwner {
            cpu,
            owner: ["vm", "policy", "operator", "none"][cpu as usize].into(),
            vms: if cpu < 2 {
                vec!["vm-a".into(), "vm-c".into()]
            } else {
                vec![]
            },
            decisions: u64::from(cpu == 1) * 10,
            decisions_changed: 4,
            decisions_skipped: 1,
        })
        .collect();
    Scrape {
        host_cpus: 4,
        wakeups: 1234,
        policy_ticks: 56,
        managed_cpus: 3,
        vms,
        channels,
        cpus,
        energy: Default::default(),
    }
}

/// Lines of the families both write: comments and samples, sorted (a
/// `Family` writes its series in hash-map order).
fn common_lines(text: &str, names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| {
            let l = l
                .strip_prefix("# HELP ")
                .or_else(|| l.strip_prefix("# TYPE "))
                .unwrap_or(l);
            names.iter().any(|n| {
                l.strip_prefix(n)
                    .is_some_and(|r| r.starts_with([' ', '{', '_']))
            })
        })
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn the_collector_writes_what_the_families_wrote() {
    let s = snapshot();
    let old = with_families(&s);
    let mut reg = Registry::default();
    reg.register_collector(Box::new(Families {
        scrape: Box::new(s),
        journal: JournalCounts::default(),
        cpu_seconds: 1.5,
    }));
    let new = rte_pm::metrics::exposition(&reg);
    let names: Vec<&str> = old
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(names.len(), 12, "{old}");
    let (a, b) = (common_lines(&old, &names), common_lines(&new, &names));
    assert!(a.len() > 100, "{old}");
    assert_eq!(a, b);
    // the new families are there too
    for n in [
        "vm_power_mgr_vm_requests",
        "vm_power_mgr_vm_refusals",
        "vm_power_mgr_vm_write_latency_seconds",
        "vm_power_mgr_journal_records",
        "process_cpu_seconds",
    ] {
        assert!(new.contains(&format!("# TYPE {n} ")), "{n}");
    }
}

#[test]
fn an_empty_snapshot_leaves_out_the_families_without_series() {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(Families {
        scrape: Box::default(),
        journal: JournalCounts::default(),
        cpu_seconds: 0.0,
    }));
    let text = rte_pm::metrics::exposition(&reg);
    assert!(!text.contains("vm_power_mgr_channel_"), "{text}");
    assert!(!text.contains("vm_power_mgr_vm_"), "{text}");
    assert!(
        text.contains("vm_power_mgr_loop_wakeups_total 0\n"),
        "{text}"
    );
}
