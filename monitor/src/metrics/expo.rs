//! The monitor's Prometheus families, encoded straight from a loop snapshot and sysfs.
//!
//! Names: `rte_power_cpu_*` are the per-CPU families `rte-pm metrics`
//! prints too (read from sysfs by the metrics thread, never by the loop);
//! `vm_power_mgr_*` are the monitor's own, from one [`Scrape`] the loop
//! answers per scrape; `process_cpu_seconds_total` is the standard one.
//!
//! The monitor's families are one `prometheus-client` [`Collector`] that
//! walks the snapshot and hands each series to the crate's encoder with
//! borrowed label values: no `Family`, no hash map, no label `String` per
//! series (the encoder still writes the text; at 4,096 channels building
//! `Family`s cost most of a scrape). A family without series is left out,
//! as the crate's `Registry` leaves out an empty `Family`.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use rte_pm::metrics::{register_cpu_families, sample_all};
use rte_power::sysfs::SysfsRoot;

use super::journal::JournalCache;
use crate::monitor::scrape::Scrape;
use crate::monitor::tally::{COMMANDS, REASONS};

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

/// Record kinds of the restore journal, as labelled.
pub const JOURNAL_KINDS: [&str; 3] = ["cpufreq", "uncore", "invalid"];
/// Owners of a journal record, as labelled (`unknown`: an invalid record).
pub const JOURNAL_OWNERS: [&str; 4] = ["self", "live", "dead", "unknown"];

/// The restore journal's records by kind and owner, as one scrape saw them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalCounts {
    /// Per [`JOURNAL_KINDS`], per [`JOURNAL_OWNERS`].
    pub records: [[u64; JOURNAL_OWNERS.len()]; JOURNAL_KINDS.len()],
    /// The directory could not be read (or is not trusted).
    pub unreadable: bool,
}

/// The monitor's families of one scrape.
#[derive(Debug)]
pub struct Families {
    /// The loop's snapshot.
    pub scrape: Box<Scrape>,
    /// The restore journal.
    pub journal: JournalCounts,
    /// [`process_cpu_seconds`] at the scrape.
    pub cpu_seconds: f64,
}

/// Size of the last exposition (the next one's buffer starts this big).
static LAST_LEN: AtomicUsize = AtomicUsize::new(64 * 1024);

/// The whole exposition of one scrape.
pub fn render(scrape: Box<Scrape>, sysfs: &SysfsRoot, journal: &mut JournalCache) -> String {
    let mut reg = Registry::default();
    let cpus = sample_all(sysfs, 0..scrape.host_cpus);
    register_cpu_families(&mut reg, &cpus);
    let vms: Vec<(&str, Option<f64>, Option<f64>)> = scrape
        .vms
        .iter()
        .map(|v| (v.name.as_str(), v.energy_joules, v.power_watts))
        .collect();
    crate::energy::report::register(&mut reg, &vms, &scrape.energy);
    reg.register_collector(Box::new(Families {
        scrape,
        journal: journal.counts(),
        cpu_seconds: process_cpu_seconds(),
    }));
    let last = LAST_LEN.load(Ordering::Relaxed);
    let mut out = String::with_capacity(last + last / 8);
    // writing into a String cannot fail
    let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
    LAST_LEN.store(out.len(), Ordering::Relaxed);
    out
}

/// Writes one family of `kind` whose series `series` yields (nothing
/// when it yields none); `one` encodes a value into a series' encoder.
fn family<S, V, I>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    series: I,
    one: impl Fn(&mut prometheus_client::encoding::MetricEncoder, &V) -> fmt::Result,
) -> fmt::Result
where
    S: EncodeLabelSet,
    I: IntoIterator<Item = (S, V)>,
{
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    // `Registry::register` ends every help text with a period
    let mut m = enc.encode_descriptor(name, &format!("{help}."), None, kind)?;
    for (labels, v) in series {
        one(&mut m.encode_family(&labels)?, &v)?;
    }
    Ok(())
}

fn counter<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (S, u64)>,
) -> fmt::Result {
    family(enc, name, help, MetricType::Counter, series, |m, v| {
        m.encode_counter::<NoLabelSet, _, u64>(v, None)
    })
}

fn gauge<S: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (S, i64)>,
) -> fmt::Result {
    family(enc, name, help, MetricType::Gauge, series, |m, v| {
        m.encode_gauge(v)
    })
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A series without labels.
const NONE: [(&str, &str); 0] = [];

impl Collector for Families {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let s = &*self.scrape;
        let e = &mut enc;
        let owners: Vec<String> = s.cpus.iter().map(|c| c.vms.join(",")).collect();
        gauge(
            e,
            "vm_power_mgr_cpu_owner_info",
            "Who decides a host CPU's frequency: vm, policy, operator or none (always 1)",
            s.cpus.iter().zip(&owners).map(|(c, vms)| {
                (
                    (
                        [("cpu", c.cpu)],
                        [("owner", c.owner.as_str()), ("vm", vms.as_str())],
                    ),
                    1,
                )
            }),
        )?;
        counter(
            e,
            "vm_power_mgr_policy_decisions",
            "Guest-policy decisions per host CPU, by result",
            s.cpus.iter().filter(|c| c.decisions > 0).flat_map(|c| {
                let kept = c
                    .decisions
                    .saturating_sub(c.decisions_changed + c.decisions_skipped);
                [
                    ("changed", c.decisions_changed),
                    ("skipped", c.decisions_skipped),
                    ("kept", kept),
                ]
                .map(|(r, n)| (([("cpu", c.cpu)], [("result", r)]), n))
            }),
        )?;

        let name = |vm: usize| s.vms.get(vm).map_or("", |v| v.name.as_str());
        let per_chan = |f: fn(&crate::monitor::scrape::ChanSample) -> u64| {
            s.channels
                .iter()
                .map(move |c| (([("vm", name(c.vm))], [("channel", c.channel)]), f(c)))
        };
        counter(
            e,
            "vm_power_mgr_channel_packets",
            "Complete packets received on a guest channel",
            per_chan(|c| c.packets),
        )?;
        counter(
            e,
            "vm_power_mgr_channel_requests",
            "Guest requests on a channel, by outcome",
            s.channels.iter().flat_map(|c| {
                [("accepted", c.accepted), ("refused", c.refused)].map(|(o, n)| {
                    (
                        (
                            [("vm", name(c.vm))],
                            ([("channel", c.channel)], [("outcome", o)]),
                        ),
                        n,
                    )
                })
            }),
        )?;
        counter(
            e,
            "vm_power_mgr_channel_replies_dropped",
            "Replies dropped because the guest did not read them",
            per_chan(|c| c.replies_dropped),
        )?;
        counter(
            e,
            "vm_power_mgr_channel_connects",
            "Successful connects to a channel socket",
            per_chan(|c| c.connects),
        )?;
        counter(
            e,
            "vm_power_mgr_channel_resets",
            "Channel resets because the stream was out of frame",
            per_chan(|c| c.resets),
        )?;
        gauge(
            e,
            "vm_power_mgr_channel_queued_bytes",
            "Reply bytes queued for a channel",
            per_chan(|c| c.queued_bytes).map(|(l, v)| (l, clamp(v))),
        )?;
        gauge(
            e,
            "vm_power_mgr_channel_connected",
            "1 while the channel is connected",
            per_chan(|c| u64::from(c.connected)).map(|(l, v)| (l, clamp(v))),
        )?;

        counter(
            e,
            "vm_power_mgr_vm_refusals",
            "Refused guest requests of a VM, by reason (one per refusal rule)",
            s.vms.iter().flat_map(|v| {
                REASONS
                    .iter()
                    .zip(v.tally.refusals)
                    .map(|(r, n)| ([("vm", v.name.as_str()), ("reason", r)], n))
            }),
        )?;
        counter(
            e,
            "vm_power_mgr_vm_requests",
            "Guest requests of a VM, by command (CPU_POWER by unit) and outcome",
            s.vms.iter().flat_map(|v| {
                COMMANDS
                    .iter()
                    .zip(v.tally.by_command)
                    .flat_map(move |(cmd, [ok, refused])| {
                        [("accepted", ok), ("refused", refused)].map(|(o, n)| {
                            (
                                [("vm", v.name.as_str()), ("command", cmd), ("outcome", o)],
                                n,
                            )
                        })
                    })
            }),
        )?;
        family(
            e,
            "vm_power_mgr_vm_write_latency_seconds",
            "Guest request arrival (the read that completed it) to its sysfs write returning",
            MetricType::Histogram,
            s.vms
                .iter()
                .map(|v| ([("vm", v.name.as_str())], &v.tally.write_latency)),
            |m, h| {
                m.encode_histogram::<NoLabelSet>(
                    h.sum_ns as f64 / 1e9,
                    h.count(),
                    &h.buckets(),
                    None,
                )
            },
        )?;

        counter(
            e,
            "vm_power_mgr_loop_wakeups",
            "Returns of the event loop from epoll_wait",
            [(NONE, s.wakeups)],
        )?;
        counter(
            e,
            "vm_power_mgr_policy_ticks",
            "Ticks of the guest-policy engine",
            [(NONE, s.policy_ticks)],
        )?;
        gauge(
            e,
            "vm_power_mgr_managed_cpus",
            "Host CPUs under management (restored at exit)",
            [(NONE, clamp(s.managed_cpus as u64))],
        )?;
        let j = &self.journal;
        gauge(
            e,
            "vm_power_mgr_journal_records",
            "Records in the restore journal directory, by kind and owner (self: this monitor)",
            JOURNAL_KINDS.iter().enumerate().flat_map(|(k, kind)| {
                JOURNAL_OWNERS
                    .iter()
                    .enumerate()
                    // an invalid record has no owner; a valid one always has
                    .filter(move |(o, _)| (k == 2) == (*o == 3))
                    .map(move |(o, owner)| {
                        ([("kind", *kind), ("owner", *owner)], clamp(j.records[k][o]))
                    })
            }),
        )?;
        gauge(
            e,
            "vm_power_mgr_journal_unreadable",
            "1 when the restore journal directory could not be read (or is not trusted)",
            [(NONE, i64::from(j.unreadable))],
        )?;
        family(
            e,
            "process_cpu_seconds",
            "User and system CPU time of the monitor, seconds",
            MetricType::Counter,
            [(NONE, self.cpu_seconds)],
            |m, v| m.encode_counter::<NoLabelSet, _, u64>(v, None),
        )
    }
}

#[cfg(test)]
#[path = "expo_tests.rs"]
mod tests;
