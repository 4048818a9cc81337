//! The sampler thread: reads package counters, `/proc/stat` and CPU frequencies each interval and hands per-CPU energy to the loop.
//!
//! It runs on a thread of its own, not on the loop: one sample at 4,096
//! CPUs reads `/proc/stat` (some 400 KB) and a frequency file per cpufreq
//! policy, milliseconds of work that would delay every guest request
//! queued behind it. The loop gets one [`Msg`] per interval (through an
//! mpsc channel and its wake-up eventfd) and only adds each VM's share,
//! O(pCPUs of the managed VMs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rte_pm::stats::procstat::{self, CpuTime};

use super::model::{self, CounterStep};
use super::rapl::{self, Rapl, RaplError};
use crate::log::{Level, LogSink};
use crate::sys::EventFd;

/// Where the frequency of a CPU comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreqSource {
    /// `cpufreq/stats/time_in_state` deltas: the average over the interval.
    TimeInState,
    /// `cpufreq/scaling_cur_freq` read at the end of the interval.
    CurFreq,
    /// No cpufreq: busy time alone.
    None,
}

impl FreqSource {
    /// How `show_vm` names the model.
    pub fn model(self) -> &'static str {
        match self {
            Self::TimeInState => "busy x frequency from cpufreq time_in_state",
            Self::CurFreq => "busy x frequency from scaling_cur_freq samples",
            Self::None => "busy time only (no cpufreq)",
        }
    }
}

/// Why a sample failed.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// A package counter.
    #[error(transparent)]
    Rapl(#[from] RaplError),
    /// The `/proc/stat`.
    #[error("{0}")]
    ProcStat(#[source] rte_power::PowerError),
}

/// What the sampler found at start.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    /// Packages and their CPUs.
    pub packages: Vec<(u32, Vec<u32>)>,
    /// Zones listed, not read (`intel-rapl:0:0 core`, `psys`, ...).
    pub others: Vec<String>,
    /// Where frequencies come from.
    pub source: FreqSource,
    /// Shortest wrap period of the counters, seconds, at
    /// [`model::MAX_PACKAGE_WATTS`].
    pub wrap_s: f64,
}

/// One package in one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageStep {
    /// The package.
    pub id: u32,
    /// Its energy (`None`: a counter went back or jumped: unknown).
    pub joules: Option<f64>,
    /// Of which unattributed (no CPU of it busy).
    pub unattributed: f64,
    /// Counters that wrapped in the interval.
    pub wraps: u32,
}

/// One interval's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// Its length.
    pub secs: f64,
    /// Per package.
    pub packages: Vec<PackageStep>,
    /// Energy attributed to each CPU that was busy.
    pub cpu_joules: BTreeMap<u32, f64>,
    /// The CPUs of the packages whose energy is unknown (a counter went
    /// back or jumped), sorted.
    pub unknown_cpus: Vec<u32>,
}

/// What the sampler tells the loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// Sampling starts.
    Ready(Ready),
    /// An interval's energy.
    Interval(Interval),
    /// No energy: why.
    Unavailable(String),
}

/// One read of everything.
#[derive(Debug, Clone)]
pub struct Reading {
    /// When.
    pub at: Instant,
    /// Per package, per counter.
    pub counters: Vec<Vec<u64>>,
    /// `/proc/stat`.
    pub busy: BTreeMap<u32, CpuTime>,
    /// Per CPU: time_in_state table or current kHz.
    pub freq: BTreeMap<u32, Freq>,
}

/// A CPU's frequency reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freq {
    /// `(kHz, ticks)` rows.
    Table(Vec<(u32, u64)>),
    /// kHz now.
    Now(u32),
}

/// The sampler's state.
#[derive(Debug)]
pub struct Sampler {
    rapl: Rapl,
    proc_stat: PathBuf,
    /// Per CPU, the file its frequency comes from.
    freq_files: BTreeMap<u32, PathBuf>,
    source: FreqSource,
}

fn parse_tis(text: &str) -> Option<Vec<(u32, u64)>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
        })
        .collect()
}

impl Sampler {
    /// Finds the packages, their CPUs and the frequency files.
    pub fn new(
        powercap: &Path,
        cpu_sysfs: &Path,
        proc_stat: &Path,
        host_cpus: u32,
    ) -> Result<Self, RaplError> {
        let rapl = rapl::discover(powercap, cpu_sysfs, host_cpus)?;
        let cpus: Vec<u32> = rapl.packages.iter().flat_map(|p| p.cpus.clone()).collect();
        let tis = |c: u32| cpu_sysfs.join(format!("cpu{c}/cpufreq/stats/time_in_state"));
        let cur = |c: u32| cpu_sysfs.join(format!("cpu{c}/cpufreq/scaling_cur_freq"));
        let source = match cpus.first() {
            Some(&c) if tis(c).exists() => FreqSource::TimeInState,
            Some(&c) if cur(c).exists() => FreqSource::CurFreq,
            _ => FreqSource::None,
        };
        let freq_files = match source {
            FreqSource::TimeInState => cpus.iter().map(|&c| (c, tis(c))).collect(),
            FreqSource::CurFreq => cpus.iter().map(|&c| (c, cur(c))).collect(),
            FreqSource::None => BTreeMap::new(),
        };
        Ok(Self {
            rapl,
            proc_stat: proc_stat.to_owned(),
            freq_files,
            source,
        })
    }

    /// What was found.
    pub fn ready(&self) -> Ready {
        let range = self
            .rapl
            .packages
            .iter()
            .flat_map(|p| p.counters.iter().map(|c| c.range_uj))
            .filter(|r| *r > 0)
            .min()
            .unwrap_or(0);
        Ready {
            packages: self
                .rapl
                .packages
                .iter()
                .map(|p| (p.id, p.cpus.clone()))
                .collect(),
            others: self
                .rapl
                .others
                .iter()
                .map(|(z, n)| format!("{z} {n}"))
                .collect(),
            source: self.source,
            wrap_s: model::wrap_period_s(range, model::MAX_PACKAGE_WATTS),
        }
    }

    /// Reads every counter, `/proc/stat` and the frequencies of the CPUs
    /// busy since `prev` (an idle CPU weighs 0 whatever its frequency: its
    /// last table moves over from `prev`, so that the average of a CPU
    /// idle for a while covers the time since its last read).
    pub fn read(&self, prev: Option<&mut Reading>) -> Result<Reading, SampleError> {
        let at = Instant::now();
        let mut counters = Vec::with_capacity(self.rapl.packages.len());
        for p in &self.rapl.packages {
            let mut v = Vec::with_capacity(p.counters.len());
            for c in &p.counters {
                v.push(rapl::read_u64(&c.energy)?);
            }
            counters.push(v);
        }
        let busy = procstat::read_at(&self.proc_stat).map_err(SampleError::ProcStat)?;
        let mut freq = BTreeMap::new();
        let mut prev = prev;
        for (&cpu, f) in &self.freq_files {
            if let Some(p) = prev.as_deref_mut() {
                let idle = matches!(
                    (p.busy.get(&cpu), busy.get(&cpu)),
                    (Some(a), Some(b)) if a.delta(b).busy == 0
                );
                if idle {
                    if let Some(old) = p.freq.remove(&cpu) {
                        freq.insert(cpu, old);
                    }
                    continue;
                }
            }
            // a CPU without the file (offline) weighs by busy time alone
            let Ok(t) = std::fs::read_to_string(f) else {
                continue;
            };
            let v = match self.source {
                FreqSource::TimeInState => parse_tis(&t).map(Freq::Table),
                _ => t.trim().parse().ok().map(Freq::Now),
            };
            if let Some(v) = v {
                freq.insert(cpu, v);
            }
        }
        Ok(Reading {
            at,
            counters,
            busy,
            freq,
        })
    }

    /// The interval from `prev` to `now`.
    pub fn interval(&self, prev: &Reading, now: &Reading) -> Interval {
        let secs = now.at.saturating_duration_since(prev.at).as_secs_f64();
        let mut out = Interval {
            secs,
            packages: Vec::with_capacity(self.rapl.packages.len()),
            cpu_joules: BTreeMap::new(),
            unknown_cpus: Vec::new(),
        };
        for (i, p) in self.rapl.packages.iter().enumerate() {
            let (mut joules, mut wraps) = (Some(0.0), 0);
            for (j, c) in p.counters.iter().enumerate() {
                let (Some(a), Some(b)) = (
                    prev.counters.get(i).and_then(|v| v.get(j)),
                    now.counters.get(i).and_then(|v| v.get(j)),
                ) else {
                    joules = None;
                    continue;
                };
                let step = model::counter_step(*a, *b, c.range_uj, secs);
                wraps += u32::from(matches!(step, CounterStep::Wrapped(_)));
                joules = joules.zip(step.joules()).map(|(x, y)| x + y);
            }
            let weights: Vec<(u32, f64)> = p
                .cpus
                .iter()
                .map(|&c| {
                    let busy = match (prev.busy.get(&c), now.busy.get(&c)) {
                        (Some(a), Some(b)) => a.delta(b).busy,
                        _ => 0,
                    };
                    let khz = match (prev.freq.get(&c), now.freq.get(&c)) {
                        (Some(Freq::Table(a)), Some(Freq::Table(b))) => model::avg_khz(a, b),
                        (_, Some(Freq::Now(k))) => Some(f64::from(*k)),
                        _ => None,
                    };
                    (c, model::cpu_weight(busy, khz))
                })
                .collect();
            let mut unattributed = 0.0;
            match joules {
                Some(e) => {
                    let (per, un) = model::split_package(e, &weights);
                    unattributed = un;
                    out.cpu_joules.extend(per);
                }
                None => out.unknown_cpus.extend(&p.cpus),
            }
            out.packages.push(PackageStep {
                id: p.id,
                joules,
                unattributed,
                wraps,
            });
        }
        out.unknown_cpus.sort_unstable();
        out
    }
}

/// How the thread is set up.
pub struct Spawn {
    /// The sampling interval.
    pub interval: Duration,
    /// The powercap root.
    pub powercap: PathBuf,
    /// `/sys/devices/system/cpu`.
    pub cpu_sysfs: PathBuf,
    /// `/proc/stat`.
    pub proc_stat: PathBuf,
    /// CPUs to look at.
    pub host_cpus: u32,
    /// Where warnings go.
    pub log: LogSink,
}

/// Starts the thread; it ends when `stop` is dropped or the loop's
/// receiver is gone.
pub fn spawn(
    s: Spawn,
    tx: mpsc::Sender<Msg>,
    wake: Arc<EventFd>,
    stop: mpsc::Receiver<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("vmpm-energy".into())
        .spawn(move || run(&s, &tx, &wake, &stop))
}

fn send(tx: &mpsc::Sender<Msg>, wake: &EventFd, m: Msg) -> bool {
    tx.send(m).is_ok() && wake.signal().is_ok()
}

fn run(s: &Spawn, tx: &mpsc::Sender<Msg>, wake: &EventFd, stop: &mpsc::Receiver<()>) {
    let sampler = match Sampler::new(&s.powercap, &s.cpu_sysfs, &s.proc_stat, s.host_cpus) {
        Ok(x) => x,
        Err(e) => {
            (s.log)(Level::Info, &format!("per-VM energy not available: {e}"));
            send(tx, wake, Msg::Unavailable(e.to_string()));
            return;
        }
    };
    let ready = sampler.ready();
    if s.interval.as_secs_f64() >= ready.wrap_s {
        (s.log)(
            Level::Warn,
            &format!(
                "energy interval {:?} is not shorter than the counters' shortest wrap period ({:.1} s at {} W): wraps may be lost",
                s.interval,
                ready.wrap_s,
                model::MAX_PACKAGE_WATTS
            ),
        );
    }
    if !send(tx, wake, Msg::Ready(ready)) {
        return;
    }
    let mut prev: Option<Reading> = None;
    let mut next = Instant::now();
    loop {
        match sampler.read(prev.as_mut()) {
            Ok(r) => {
                if let Some(p) = &prev {
                    if !send(tx, wake, Msg::Interval(sampler.interval(p, &r))) {
                        return;
                    }
                }
                prev = Some(r);
            }
            Err(e) => {
                prev = None;
                if !send(tx, wake, Msg::Unavailable(e.to_string())) {
                    return;
                }
            }
        }
        next += s.interval;
        let now = Instant::now();
        if next < now {
            // late (suspended, overloaded): start again from now
            next = now + s.interval;
        }
        match stop.recv_timeout(next - now) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::powercap::{set_energy, FakePowercap};
    use testkit::sysfs::{write_proc_stat, ProcStatCpu};
    use testkit::{FakeSysfs, Flavour};

    struct Host {
        _d: tempfile::TempDir,
        pc: PathBuf,
        cpus: PathBuf,
        stat: PathBuf,
    }

    fn host(flavour: Flavour, range: u64) -> Host {
        let d = tempfile::tempdir().expect("tmp");
        let (pc, cpus, stat) = (
            d.path().join("pc"),
            d.path().join("cpu"),
            d.path().join("stat"),
        );
        let mut f = FakeSysfs::new(flavour, 4);
        f.cores_per_socket = 2;
        f.create(&cpus).expect("cpus");
        let mut p = FakePowercap::new(2);
        p.range_uj = range;
        p.start_uj = range - 1_000_000;
        p.create(&pc).expect("pc");
        write_proc_stat(&stat, &[ProcStatCpu::default(); 4]).expect("stat");
        Host {
            _d: d,
            pc,
            cpus,
            stat,
        }
    }

    /// Two acpi-cpufreq CPUs with `cpufreq/stats`, one package, no
    /// `/proc/stat` yet.
    fn stats_host() -> Host {
        let d = tempfile::tempdir().expect("tmp");
        let (pc, cpus, stat) = (
            d.path().join("pc"),
            d.path().join("cpu"),
            d.path().join("stat"),
        );
        let mut f = FakeSysfs::new(Flavour::Acpi, 2);
        f.cpufreq_stats = true;
        f.create(&cpus).expect("cpus");
        FakePowercap::new(1).create(&pc).expect("pc");
        Host {
            _d: d,
            pc,
            cpus,
            stat,
        }
    }

    fn busy(ticks: &[u64]) -> Vec<ProcStatCpu> {
        ticks
            .iter()
            .map(|&t| ProcStatCpu {
                user: t,
                idle: 1000,
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn an_interval_splits_each_package_by_busy_time_and_wraps() {
        let h = host(Flavour::Cppc, 1 << 32);
        let s = Sampler::new(&h.pc, &h.cpus, &h.stat, 4).expect("sampler");
        let ready = s.ready();
        assert_eq!(ready.packages, [(0, vec![0, 1]), (1, vec![2, 3])]);
        assert_eq!(ready.source, FreqSource::CurFreq);
        assert!((ready.wrap_s - 4294.967296 / 2000.0).abs() < 1e-9);
        let mut a = s.read(None).expect("read");
        // package 0 wraps: 1 J before the range + 3 J after; package 1
        // wraps too: 1 J + 1 J
        set_energy(&h.pc, "intel-rapl:0", 3_000_000).expect("set");
        set_energy(&h.pc, "intel-rapl:1", 1_000_000).expect("set");
        write_proc_stat(&h.stat, &busy(&[30, 10, 0, 0])).expect("stat");
        let b = s.read(Some(&mut a)).expect("read");
        a.at = b.at - Duration::from_secs(1);
        let iv = s.interval(&a, &b);
        assert!((iv.secs - 1.0).abs() < 1e-9);
        assert_eq!(iv.packages[0].joules, Some(4.0));
        assert_eq!(iv.packages[0].wraps, 1);
        assert_eq!(iv.packages[0].unattributed, 0.0);
        // same frequency everywhere: 3:1 by busy time
        assert!((iv.cpu_joules[&0] - 3.0).abs() < 1e-9, "{iv:?}");
        assert!((iv.cpu_joules[&1] - 1.0).abs() < 1e-9, "{iv:?}");
        // package 1: nothing busy -> unattributed
        assert_eq!(iv.packages[1].joules, Some(2.0));
        assert_eq!(iv.packages[1].unattributed, 2.0);
        assert!(!iv.cpu_joules.contains_key(&2));
    }

    #[test]
    fn frequency_weighs_in_and_a_reset_is_unknown() {
        let h = host(Flavour::Cppc, testkit::powercap::INTEL_RANGE_UJ);
        let s = Sampler::new(&h.pc, &h.cpus, &h.stat, 4).expect("sampler");
        set_energy(&h.pc, "intel-rapl:1", 50_000_000).expect("set");
        let mut a = s.read(None).expect("read");
        // CPU 1 runs at twice CPU 0's frequency, equal busy time
        let f = |c: u32, k: u32| {
            std::fs::write(
                h.cpus.join(format!("cpu{c}/cpufreq/scaling_cur_freq")),
                format!("{k}\n"),
            )
            .expect("freq")
        };
        f(0, 1_000_000);
        f(1, 2_000_000);
        let start = testkit::powercap::INTEL_RANGE_UJ - 1_000_000;
        set_energy(&h.pc, "intel-rapl:0", start + 6_000_000).expect("set");
        // package 1's counter goes back (driver reloaded)
        set_energy(&h.pc, "intel-rapl:1", 5).expect("set");
        write_proc_stat(&h.stat, &busy(&[10, 10, 10, 0])).expect("stat");
        let b = s.read(Some(&mut a)).expect("read");
        a.at = b.at - Duration::from_secs(2);
        let iv = s.interval(&a, &b);
        assert!((iv.cpu_joules[&0] - 2.0).abs() < 1e-9, "{iv:?}");
        assert!((iv.cpu_joules[&1] - 4.0).abs() < 1e-9, "{iv:?}");
        assert_eq!(iv.packages[1].joules, None, "reset: unknown");
        assert!(!iv.cpu_joules.contains_key(&2), "no energy known for it");
        assert_eq!(iv.unknown_cpus, [2, 3], "package 1's CPUs");
    }

    #[test]
    fn an_idle_cpu_keeps_its_table_until_it_is_busy_again() {
        let h = stats_host();
        let (cpus, pc, stat) = (&h.cpus, &h.pc, &h.stat);
        write_proc_stat(stat, &busy(&[0, 0])).expect("stat");
        let s = Sampler::new(pc, cpus, stat, 2).expect("sampler");
        let tis = cpus.join("cpu1/cpufreq/stats/time_in_state");
        let table = |t: &str| {
            let rows: Vec<(u32, u64)> = t
                .lines()
                .map(|l| {
                    let (a, b) = l.split_once(' ').expect("row");
                    (a.parse().expect("khz"), b.trim().parse().expect("ticks"))
                })
                .collect();
            rows
        };
        let rewrite = |khz: u32, add: u64| {
            let rows = table(&std::fs::read_to_string(&tis).expect("read"));
            let out: String = rows
                .iter()
                .map(|(f, t)| format!("{f} {}\n", if *f == khz { t + add } else { *t }))
                .collect();
            std::fs::write(&tis, out).expect("write");
        };
        let first = s.read(None).expect("read");
        let mut a = first.clone();
        // CPU 1 idle, 100 ticks at 2.6 GHz: its file is not read, its table
        // moves over
        rewrite(2_600_000, 100);
        let mut b = s.read(Some(&mut a)).expect("read");
        assert_eq!(b.freq.get(&1), first.freq.get(&1), "carried, not re-read");
        // then busy, 100 ticks at 1.2 GHz: the average covers both
        rewrite(1_200_000, 100);
        write_proc_stat(stat, &busy(&[0, 10])).expect("stat");
        energy_step(pc, 1_000_000);
        let c = s.read(Some(&mut b)).expect("read");
        let (Some(Freq::Table(p)), Some(Freq::Table(n))) = (b.freq.get(&1), c.freq.get(&1)) else {
            panic!("tables: {b:?} {c:?}");
        };
        assert_eq!(model::avg_khz(p, n), Some(1_900_000.0));
        // 1 J in the microseconds between two reads would be a reset (over
        // the 2,000 W a package can draw): one second, as the other tests
        b.at = c.at - Duration::from_secs(1);
        let iv = s.interval(&b, &c);
        assert!((iv.cpu_joules[&1] - 1.0).abs() < 1e-9, "{iv:?}");
    }

    fn energy_step(pc: &Path, uj: u64) {
        let now = testkit::powercap::energy(pc, "intel-rapl:0").expect("read");
        set_energy(pc, "intel-rapl:0", now + uj).expect("set");
    }

    #[test]
    fn time_in_state_is_preferred_and_missing_files_are_errors() {
        let h = stats_host();
        let (cpus, pc, stat) = (&h.cpus, &h.pc, &h.stat);
        write_proc_stat(stat, &[ProcStatCpu::default(); 2]).expect("stat");
        let s = Sampler::new(pc, cpus, stat, 2).expect("sampler");
        assert_eq!(s.ready().source, FreqSource::TimeInState);
        let r = s.read(None).expect("read");
        assert!(matches!(r.freq.get(&0), Some(Freq::Table(t)) if !t.is_empty()));
        std::fs::remove_file(stat).expect("rm");
        let e = s.read(None).expect_err("no /proc/stat");
        assert!(e.to_string().contains("stat"), "{e}");
        std::fs::remove_dir_all(pc.join("intel-rapl:0")).expect("rm zone");
        let e = s.read(None).expect_err("zone gone");
        assert!(e.to_string().contains("intel-rapl:0/energy_uj"), "{e}");
        assert!(Sampler::new(pc, cpus, stat, 2).is_err(), "missing zone");
    }
}
