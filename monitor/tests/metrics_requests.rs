//! `--metrics` per VM on the real daemon (`--simulate`): requests by command and outcome, refusals by reason, the write-latency histogram, the restore-journal records.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::expo::{parse, scrape_unix};
use common::{Daemon, T};
use rte_power::wire::{self, ChannelPacket, Response, Step};
use testkit::qemu::{Guest, Qemu};
use vm_power_monitor::monitor::tally::{BUCKETS_NS, COMMANDS, REASONS};

/// Sends `p` and checks that the 464-byte answer is `want`.
fn answered(g: &mut Guest, p: &ChannelPacket, want: Response) {
    g.send(p).expect("send");
    let r = g.recv_reply(T).expect("reply");
    assert_eq!(r.response_kind().expect("kind"), want, "{p:?}");
}

/// Record files (`*.rec`) in the journal directory whose `pid` line is `pid`
/// (`None`: every record file).
fn records(dir: &Path, pid: Option<u32>) -> usize {
    std::fs::read_dir(dir)
        .expect("journal dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rec"))
        .filter(|p| {
            pid.is_none_or(|pid| {
                std::fs::read_to_string(p)
                    .is_ok_and(|t| t.lines().any(|l| l == format!("pid {pid}")))
            })
        })
        .count()
}

#[test]
fn requests_refusals_latency_and_journal_records_are_counted_per_vm() {
    let d = &Daemon::start_env(
        "set_query vm-a disable",
        &["--metrics", "unix:{tmp}/metrics.sock"],
        &[("RTE_POWER_JOURNAL_DIR", "{tmp}/journal")],
    );
    let sock = d.sim_dir.with_file_name("metrics.sock");
    let journal = d.sim_dir.with_file_name("journal");
    let mut q = Qemu::bind(&d.sim_dir.join("powermonitor"), "vm-a", 0).expect("bind");
    let mut g = q.accept(T).expect("monitor connects");

    // accepted: 3 down, 2 up, 1 policy, 1 policy removal, 1 min; six of
    // them write sysfs
    for step in [Step::Down, Step::Up, Step::Down, Step::Up, Step::Down] {
        answered(&mut g, &ChannelPacket::cpu_power(1, step), Response::Ack);
    }
    let mut policy = ChannelPacket::ZEROED;
    policy.command = wire::PKT_POLICY;
    policy.policy_to_use = wire::POLICY_WORKLOAD;
    policy.num_vcpu = 1;
    answered(&mut g, &policy, Response::Ack);
    let mut remove = ChannelPacket::ZEROED;
    remove.command = wire::PKT_POLICY_REMOVE;
    g.send(&remove).expect("send"); // never answered
    answered(
        &mut g,
        &ChannelPacket::cpu_power(1, Step::Min),
        Response::Ack,
    );
    // refused, each for another rule
    answered(
        &mut g,
        &ChannelPacket::cpu_power(9, Step::Max),
        Response::Nack,
    );
    let mut physical = ChannelPacket::cpu_power(1, Step::Max);
    physical.core_type = true;
    answered(&mut g, &physical, Response::Nack);
    let mut unknown = ChannelPacket::cpu_power(1, Step::Max);
    unknown.command = 99;
    answered(&mut g, &unknown, Response::Nack);
    let mut query = ChannelPacket::ZEROED;
    query.command = wire::QUERY_FREQ;
    g.send(&query).expect("send");
    let nack = g.recv_raw(88, T).expect("88-byte NACK");
    assert_eq!(nack[12..16], wire::CMD_NACK.to_le_bytes());

    // a record of a dead owner and one that is no record, beside the
    // monitor's own
    let own = records(&journal, None);
    assert!(own >= 1, "the monitor journals the CPUs it manages");
    let mine = std::fs::read_dir(&journal)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "rec"))
        .expect("a record");
    let text = std::fs::read_to_string(&mine).expect("record");
    let dead: String = text
        .lines()
        .map(|l| {
            if l.starts_with("pid ") {
                "pid 4194000".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(journal.join("cpufreq-dead.rec"), dead + "\n").expect("dead record");
    std::fs::write(journal.join("cpufreq-junk.rec"), "not a record\n").expect("junk");

    let (status, body) = scrape_unix(&sock, "GET", "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let m = parse(&body);
    let get = |series: &str| {
        *m.get(series)
            .unwrap_or_else(|| panic!("no {series} in\n{body}"))
    };

    // every command x outcome is there, the ones sent with their counts
    let mut want: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for (c, o, n) in [
        ("scale_down", "accepted", 3.0),
        ("scale_up", "accepted", 2.0),
        ("scale_min", "accepted", 1.0),
        ("policy", "accepted", 1.0),
        ("policy_remove", "accepted", 1.0),
        ("scale_max", "refused", 2.0),
        ("other", "refused", 1.0),
        ("query_freq", "refused", 1.0),
    ] {
        want.insert((c, o), n);
    }
    for c in COMMANDS {
        for o in ["accepted", "refused"] {
            let s = format!(
                "vm_power_mgr_vm_requests_total{{vm=\"vm-a\",command=\"{c}\",outcome=\"{o}\"}}"
            );
            assert_eq!(get(&s), want.get(&(c, o)).copied().unwrap_or(0.0), "{s}");
        }
    }
    // every refusal rule is there, the ones broken with their counts
    for r in REASONS {
        let n = match r {
            "vcpu_out_of_range" | "physical_core" | "malformed" | "queries_disabled" => 1.0,
            _ => 0.0,
        };
        let s = format!("vm_power_mgr_vm_refusals_total{{vm=\"vm-a\",reason=\"{r}\"}}");
        assert_eq!(get(&s), n, "{s}");
    }
    // the channel's own counters agree
    let ch = "vm=\"vm-a\",channel=\"0\"";
    assert_eq!(
        get(&format!(
            "vm_power_mgr_channel_requests_total{{{ch},outcome=\"refused\"}}"
        )),
        4.0
    );

    // the histogram: one observation per request that wrote sysfs,
    // cumulative buckets, +Inf equal to the count
    let h = "vm_power_mgr_vm_write_latency_seconds";
    let count = get(&format!("{h}_count{{vm=\"vm-a\"}}"));
    assert_eq!(count, 6.0);
    assert!(get(&format!("{h}_sum{{vm=\"vm-a\"}}")) > 0.0);
    // the crate writes `le` first
    let prefix = format!("{h}_bucket{{le=\"");
    let mut buckets: Vec<(f64, f64)> = m
        .iter()
        .filter_map(|(k, v)| {
            let le = k.strip_prefix(&prefix)?.strip_suffix("\",vm=\"vm-a\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le")
            };
            Some((le, *v))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bounds: Vec<f64> = buckets.iter().map(|b| b.0).collect();
    let want_bounds: Vec<f64> = BUCKETS_NS
        .iter()
        .map(|ns| *ns as f64 / 1e9)
        .chain([f64::INFINITY])
        .collect();
    assert_eq!(bounds, want_bounds, "5 µs .. 100 ms, +Inf");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "cumulative: {buckets:?}"
    );
    assert_eq!(buckets.last().map(|b| b.1), Some(count), "+Inf bucket");

    // the journal: the monitor's records, the dead one, the invalid one
    let pid = d.child.id();
    let jr = |kind: &str, owner: &str| {
        get(&format!(
            "vm_power_mgr_journal_records{{kind=\"{kind}\",owner=\"{owner}\"}}"
        ))
    };
    assert_eq!(jr("cpufreq", "self"), records(&journal, Some(pid)) as f64);
    assert_eq!(jr("cpufreq", "self"), own as f64);
    assert_eq!(jr("cpufreq", "dead"), 1.0);
    assert_eq!(jr("cpufreq", "live"), 0.0);
    assert_eq!(jr("uncore", "self"), 0.0);
    assert_eq!(jr("invalid", "unknown"), 1.0);
    assert_eq!(get("vm_power_mgr_journal_unreadable"), 0.0);
    assert_eq!(
        get("vm_power_mgr_managed_cpus"),
        own as f64,
        "one record per managed CPU"
    );
}
