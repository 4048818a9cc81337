//! Per-VM energy from RAPL: configuration, the loop's side of the sampler, per-VM and per-package totals.
//!
//! - [`rapl`]: the powercap reader (package zones, counters, ranges, CPUs);
//! - [`model`]: the model as pure functions (counter steps and wraps,
//!   weights, package split, 1/k VM shares);
//! - [`sampler`]: the thread that reads counters, `/proc/stat` and
//!   frequencies each interval;
//! - [`report`]: the `show_vm` line, the JSON fields, the metrics families.
//!
//! The loop owns an [`EnergyLoop`]: it starts the sampler, takes its
//! messages on each wake-up and keeps per-package totals; each VM's
//! [`VmEnergy`] lives with the VM (from `add_vm` to its removal).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::log::{Level, LogSink};
use crate::sys::EventFd;

pub mod model;
pub mod rapl;
pub mod report;
pub mod sampler;

use sampler::{Interval, Msg, Ready};

/// Default sampling interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// How energy is sampled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnergyConfig {
    /// Sampling interval (zero: off).
    pub interval: Duration,
    /// The powercap root.
    pub powercap: PathBuf,
}

impl Default for EnergyConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_INTERVAL,
            powercap: PathBuf::from(rapl::DEFAULT_POWERCAP),
        }
    }
}

/// One VM's energy since it was added.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VmEnergy {
    /// Joules since added.
    pub joules: f64,
    /// Joules in the last interval.
    pub last_joules: f64,
    /// Length of the last interval (0: none yet).
    pub last_secs: f64,
    /// Intervals sampled since added.
    pub intervals: u64,
    /// The last interval's energy is unknown: a package holding one of
    /// its pCPUs lost the interval to a counter reset.
    pub last_unknown: bool,
}

impl VmEnergy {
    /// Adds an interval's share.
    pub fn add(&mut self, joules: f64, secs: f64) {
        self.joules += joules;
        self.last_joules = joules;
        self.last_secs = secs;
        self.intervals += 1;
        self.last_unknown = false;
    }

    /// Counts an interval whose share is unknown (no joules added, no
    /// watts until the next interval).
    pub fn add_unknown(&mut self, secs: f64) {
        self.last_joules = 0.0;
        self.last_secs = secs;
        self.intervals += 1;
        self.last_unknown = true;
    }

    /// Watts over the last interval (`None`: none yet, or unknown).
    pub fn watts(&self) -> Option<f64> {
        (self.last_secs > 0.0 && !self.last_unknown).then(|| self.last_joules / self.last_secs)
    }
}

/// One package's totals since sampling started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PackageTotals {
    /// Package energy.
    pub joules: f64,
    /// Of which unattributed (no CPU of it busy).
    pub unattributed: f64,
    /// Watts over the last interval (`None`: unknown, e.g. after a reset).
    pub watts: Option<f64>,
    /// Counter wraps seen.
    pub wraps: u64,
    /// Intervals lost to a counter going back or jumping.
    pub resets: u64,
}

/// Where sampling stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// `--energy-interval-ms 0`.
    Off,
    /// Started, nothing heard yet.
    Starting,
    /// Sampling.
    Sampling,
    /// Not available: why.
    Unavailable(String),
}

/// The loop's side of energy.
pub struct EnergyLoop {
    cfg: EnergyConfig,
    rx: Option<mpsc::Receiver<Msg>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Where sampling stands.
    pub status: Status,
    /// What the sampler found.
    pub ready: Option<Ready>,
    /// Per package.
    pub packages: BTreeMap<u32, PackageTotals>,
    /// Length of the last interval.
    pub last_secs: Option<f64>,
}

impl EnergyLoop {
    /// Not started.
    pub fn new(cfg: EnergyConfig) -> Self {
        let status = if cfg.interval.is_zero() {
            Status::Off
        } else {
            Status::Starting
        };
        Self {
            cfg,
            rx: None,
            stop: None,
            thread: None,
            status,
            ready: None,
            packages: BTreeMap::new(),
            last_secs: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EnergyConfig {
        &self.cfg
    }

    /// Starts the sampler thread (unless off or started).
    pub fn start(
        &mut self,
        cpu_sysfs: PathBuf,
        proc_stat: PathBuf,
        host_cpus: u32,
        log: LogSink,
        wake: Arc<EventFd>,
    ) {
        if self.status == Status::Off || self.rx.is_some() {
            return;
        }
        let (tx, rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel();
        let spawn = sampler::Spawn {
            interval: self.cfg.interval,
            powercap: self.cfg.powercap.clone(),
            cpu_sysfs,
            proc_stat,
            host_cpus,
            log: Arc::clone(&log),
        };
        match sampler::spawn(spawn, tx, wake, stop_rx) {
            Ok(t) => {
                self.rx = Some(rx);
                self.stop = Some(stop_tx);
                self.thread = Some(t);
            }
            Err(e) => {
                let why = format!("cannot start the energy sampler thread: {e}");
                log(Level::Error, &why);
                self.status = Status::Unavailable(why);
            }
        }
    }

    /// Stops the sampler and waits for it (it wakes at once).
    pub fn stop(&mut self) {
        self.stop = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.rx = None;
    }

    /// Takes the sampler's messages: status changes are kept, package
    /// totals added; the intervals are returned for the VMs' shares.
    pub fn take(&mut self) -> Vec<Interval> {
        let mut out = Vec::new();
        let msgs: Vec<Msg> = match &self.rx {
            Some(rx) => rx.try_iter().collect(),
            None => return out,
        };
        for m in msgs {
            match m {
                Msg::Ready(r) => {
                    self.ready = Some(r);
                    self.status = Status::Sampling;
                }
                Msg::Unavailable(why) => self.status = Status::Unavailable(why),
                Msg::Interval(iv) => {
                    if self.ready.is_some() {
                        self.status = Status::Sampling;
                    }
                    self.add(&iv);
                    out.push(iv);
                }
            }
        }
        out
    }

    fn add(&mut self, iv: &Interval) {
        self.last_secs = Some(iv.secs);
        for p in &iv.packages {
            let t = self.packages.entry(p.id).or_default();
            t.wraps += u64::from(p.wraps);
            match p.joules {
                Some(j) => {
                    t.joules += j;
                    t.unattributed += p.unattributed;
                    t.watts = (iv.secs > 0.0).then(|| j / iv.secs);
                }
                None => {
                    t.resets += 1;
                    t.watts = None;
                }
            }
        }
    }

    /// Is energy being attributed?
    pub fn sampling(&self) -> bool {
        self.status == Status::Sampling
    }

    /// The packages holding any of `cpus`.
    pub fn packages_of(&self, cpus: &[u32]) -> Vec<u32> {
        self.ready.as_ref().map_or_else(Vec::new, |r| {
            r.packages
                .iter()
                .filter(|(_, pc)| pc.iter().any(|c| cpus.contains(c)))
                .map(|(id, _)| *id)
                .collect()
        })
    }
}

impl Drop for EnergyLoop {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sampler::{FreqSource, PackageStep};

    #[test]
    fn package_totals_add_up_and_resets_are_counted() {
        let mut e = EnergyLoop::new(EnergyConfig::default());
        assert_eq!(e.status, Status::Starting);
        e.ready = Some(Ready {
            packages: vec![(0, vec![0, 1]), (1, vec![2])],
            others: Vec::new(),
            source: FreqSource::None,
            wrap_s: 100.0,
        });
        let iv = |j: Option<f64>, un: f64| Interval {
            secs: 2.0,
            packages: vec![PackageStep {
                id: 0,
                joules: j,
                unattributed: un,
                wraps: 1,
            }],
            cpu_joules: BTreeMap::new(),
            unknown_cpus: Vec::new(),
        };
        e.add(&iv(Some(10.0), 4.0));
        e.add(&iv(Some(6.0), 0.0));
        let t = e.packages[&0];
        assert_eq!((t.joules, t.unattributed, t.watts), (16.0, 4.0, Some(3.0)));
        e.add(&iv(None, 0.0));
        let t = e.packages[&0];
        assert_eq!((t.joules, t.resets, t.wraps, t.watts), (16.0, 1, 3, None));
        assert_eq!(e.packages_of(&[2, 9]), [1]);
        assert_eq!(e.packages_of(&[0, 2]), [0, 1]);
        let mut v = VmEnergy::default();
        assert_eq!(v.watts(), None);
        v.add(3.0, 1.5);
        v.add(1.5, 0.5);
        assert_eq!((v.joules, v.watts()), (4.5, Some(3.0)));
        v.add_unknown(0.5);
        assert_eq!((v.joules, v.watts(), v.intervals), (4.5, None, 3));
        v.add(1.0, 0.5);
        assert_eq!((v.joules, v.watts()), (5.5, Some(2.0)));
        let off = EnergyLoop::new(EnergyConfig {
            interval: Duration::ZERO,
            ..EnergyConfig::default()
        });
        assert_eq!(off.status, Status::Off);
    }
}
