//! Governors on the loop: ondemand timer and samples, governor commands, operator scaling.

use std::path::PathBuf;
use std::time::Instant;

use rte_pm::stats::procstat::CpuTime;
use rte_power::{Changed, PowerError};

use super::Monitor;
use crate::governor::{
    self, GovSample, Governor, GovernorError, Governors, OndemandStats, RateLimits,
};
use crate::log::{Level, RateLimit};
use crate::ondemand::{self, Decision};
use crate::sys::TimerFd;
use rte_power::wire::Step;

/// Why a governor command failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum GovError {
    /// No `cpuN` directory.
    #[error("core {0} does not exist")]
    NoSuchCpu(u32),
    /// `set_scaling_governor` refused; nothing changed.
    #[error("Unable to set governor of core {cpu} to {governor}: {why} (governor unchanged)")]
    SetGovernor {
        /// The CPU.
        cpu: u32,
        /// The governor asked for.
        governor: Governor,
        /// Why not.
        why: GovRefusal,
    },
    /// A tunable out of range.
    #[error(transparent)]
    Tunable(#[from] GovernorError),
    /// Operator scaling outside userspace.
    #[error(
        "core {cpu} is under the {governor} governor (set_scaling_governor {cpu} userspace first)"
    )]
    NotUserspace {
        /// The CPU.
        cpu: u32,
        /// Its governor.
        governor: Governor,
    },
    /// The host refused the change.
    #[error(transparent)]
    Host(#[from] PowerError),
}

/// Why a CPU cannot take a governor.
#[derive(Debug, thiserror::Error)]
pub(super) enum GovRefusal {
    /// The CPU's transition latency rules ondemand out.
    #[error(transparent)]
    Latency(GovernorError),
    /// The load file cannot be read.
    #[error(transparent)]
    Load(PowerError),
    /// The load file does not list the CPU.
    #[error("{} has no line for cpu{cpu}", .path.display())]
    NoLoadLine {
        /// The load file.
        path: PathBuf,
        /// The CPU.
        cpu: u32,
    },
    /// The CPU could not be brought under management or pinned.
    #[error(transparent)]
    Host(PowerError),
}

/// Governor state of the loop: per-CPU governors, the ondemand timer
/// (armed only while some CPU is in ondemand) and the rate limit of the
/// engine's error lines.
pub(super) struct GovLoop {
    pub(super) govs: Governors,
    timer: TimerFd,
    pub(super) armed_at: Option<Instant>,
    limiter: RateLimit,
}

impl GovLoop {
    pub(super) fn new(proc_stat: PathBuf, timer: TimerFd) -> Self {
        Self {
            govs: Governors::new(proc_stat),
            timer,
            armed_at: None,
            limiter: RateLimit::new(),
        }
    }

    /// Arms the timer for the earliest due sample (disarms when none).
    fn arm(&mut self) {
        let next = self.govs.next_due();
        if next == self.armed_at {
            return;
        }
        let after = next.map(|at| at.saturating_duration_since(Instant::now()));
        if self.timer.set(after).is_ok() {
            self.armed_at = next;
        }
    }

    /// Shutdown: stop sampling and forget every CPU's state.
    pub(super) fn stop(&mut self) {
        self.govs.clear();
        let _ = self.timer.set(None);
        self.armed_at = None;
    }

    /// CPUs in ondemand (`stats`).
    pub(super) fn ondemand_cpus(&self) -> usize {
        self.govs
            .configured()
            .iter()
            .filter(|&&c| self.govs.governor(c) == Governor::Ondemand)
            .count()
    }
}

/// What `performance` and `powersave` pin a CPU to.
fn pin_of(g: Governor) -> Option<Step> {
    match g {
        Governor::Performance => Some(Step::Max),
        Governor::Powersave => Some(Step::Min),
        Governor::Userspace | Governor::Ondemand => None,
    }
}

impl Monitor {
    pub(super) fn cpu_exists(&self, cpu: u32) -> Result<(), GovError> {
        if self.host.exists(cpu) {
            Ok(())
        } else {
            Err(GovError::NoSuchCpu(cpu))
        }
    }

    /// An operator `set_cpu_freq`: scaling verbs only under userspace;
    /// turbo verbs in every governor, after which a pinned governor pins
    /// again (turbo changes what "max" means).
    pub(super) fn operator_apply(&mut self, cpu: u32, op: Step) -> Result<Changed, GovError> {
        let governor = self.gov.govs.governor(cpu);
        let turbo = matches!(op, Step::EnableTurbo | Step::DisableTurbo);
        if governor != Governor::Userspace && !turbo {
            return Err(GovError::NotUserspace { cpu, governor });
        }
        let c = self.host.apply(cpu, op)?;
        if let Some(pin) = pin_of(governor) {
            let again = self.host.apply(cpu, pin)?;
            if again != Changed::No {
                return Ok(again);
            }
        }
        Ok(c)
    }

    pub(super) fn set_governor(&mut self, cpu: u32, g: Governor) -> Result<String, GovError> {
        self.cpu_exists(cpu)?;
        let fail = |why| GovError::SetGovernor {
            cpu,
            governor: g,
            why,
        };
        let limits = RateLimits::read(self.host.sysfs(), cpu);
        let mut first = None;
        if g == Governor::Ondemand {
            if let Some(why) = limits.ondemand_refusal() {
                return Err(fail(GovRefusal::Latency(why)));
            }
            // the first interval starts now; a CPU the load file does not
            // list cannot be governed by load
            let now = self
                .gov
                .govs
                .sample()
                .map_err(|e| fail(GovRefusal::Load(e)))?;
            let c = now.get(&cpu).copied().ok_or_else(|| {
                fail(GovRefusal::NoLoadLine {
                    path: self.gov.govs.proc_stat().to_owned(),
                    cpu,
                })
            })?;
            first = Some(c);
        }
        // bring the CPU under management (kernel governor userspace) and pin
        match pin_of(g) {
            Some(op) => self.host.apply(cpu, op).map(|_| ()),
            None => self.host.lcore(cpu).map(|_| ()),
        }
        .map_err(|e| fail(GovRefusal::Host(e)))?;
        let old = self.gov.govs.governor(cpu);
        let st = self.gov.govs.entry(self.host.sysfs(), cpu);
        st.governor = g;
        st.limits = limits;
        if g == Governor::Ondemand {
            st.prev = first;
            st.due = Some(Instant::now() + st.period());
            if old != Governor::Ondemand {
                st.stats = OndemandStats::default();
            }
        } else {
            st.prev = None;
            st.due = None;
        }
        self.gov.arm();
        let khz = self
            .host
            .frequency(cpu)
            .map_or_else(|e| format!("unknown ({e})"), |f| format!("{f} kHz"));
        self.log(
            Level::Info,
            &format!("core {cpu}: governor {old} -> {g}, frequency {khz}"),
        );
        Ok(format!(
            "Core {cpu}: governor {g}{} (frequency {khz})",
            if old == g { " (unchanged)" } else { "" }
        ))
    }

    pub(super) fn set_sampling_rate(&mut self, cpu: u32, us: u32) -> Result<String, GovError> {
        self.cpu_exists(cpu)?;
        let limits = RateLimits::read(self.host.sysfs(), cpu);
        let us = governor::check_sampling_rate(cpu, us, &limits)?;
        let st = self.gov.govs.entry(self.host.sysfs(), cpu);
        st.limits = limits;
        st.sampling_rate_us = us;
        let ondemand = st.governor == Governor::Ondemand;
        if ondemand {
            // the new period counts from now
            st.due = Some(Instant::now() + st.period());
            self.gov.arm();
        }
        Ok(format!(
            "Core {cpu}: sampling_rate {us} us{}",
            if ondemand {
                ""
            } else {
                " (used when the governor is ondemand)"
            }
        ))
    }

    pub(super) fn set_up_threshold(&mut self, cpu: u32, pct: u32) -> Result<String, GovError> {
        self.cpu_exists(cpu)?;
        let pct = governor::check_up_threshold(pct)?;
        let st = self.gov.govs.entry(self.host.sysfs(), cpu);
        st.up_threshold = pct;
        let ondemand = st.governor == Governor::Ondemand;
        Ok(format!(
            "Core {cpu}: up_threshold {pct} %{}",
            if ondemand {
                ""
            } else {
                " (used when the governor is ondemand)"
            }
        ))
    }

    /// Logs an engine failure, rate-limited (the engine runs every few ms).
    fn gov_log(&mut self, msg: &str) {
        let (burst, window) = (self.cfg.log_burst, self.cfg.log_window);
        let (ok, suppressed) = self.gov.limiter.check(Instant::now(), burst, window);
        if suppressed > 0 {
            self.log(
                Level::Warn,
                &format!("ondemand: {suppressed} similar messages suppressed"),
            );
        }
        if ok {
            self.log(Level::Error, msg);
        }
    }

    pub(super) fn on_gov_timer(&mut self) {
        self.gov.timer.drain();
        self.gov.armed_at = None;
        let now = Instant::now();
        let due = self.gov.govs.due(now);
        if !due.is_empty() {
            // one read of the load file for every CPU due
            match self.gov.govs.sample() {
                Ok(counters) => {
                    for &cpu in &due {
                        self.ondemand_sample(cpu, counters.get(&cpu).copied());
                    }
                }
                Err(e) => self.gov_log(&format!("ondemand: cannot read the load: {e}")),
            }
            // the next period starts now (a late wake-up does not bunch up)
            for cpu in due {
                if let Some(st) = self.gov.govs.get_mut(cpu) {
                    st.due = Some(now + st.period());
                }
            }
        }
        self.gov.arm();
    }

    /// One ondemand sample of `cpu` with its current counters.
    fn ondemand_sample(&mut self, cpu: u32, counters: Option<CpuTime>) {
        let Some(now) = counters else {
            return self.gov_log(&format!(
                "ondemand: core {cpu}: no cpu{cpu} line in {} (offline?)",
                self.gov.govs.proc_stat().display()
            ));
        };
        let Some(st) = self.gov.govs.get_mut(cpu) else {
            return;
        };
        let load = st.prev.and_then(|p| ondemand::load_pct(&p, &now));
        st.prev = Some(now);
        st.stats.samples += 1;
        if load.is_some() {
            st.stats.last_load = load;
        }
        let up = st.up_threshold;
        let state = self
            .host
            .lcore(cpu)
            .and_then(|l| Ok((l.freqs()?, l.index()?)));
        let (table, cur) = match state {
            Ok(t) => t,
            Err(e) => return self.gov_log(&format!("ondemand: core {cpu}: {e}")),
        };
        let before = table.get(cur as usize).copied().unwrap_or(0);
        let decision = load.map_or(Decision::Keep, |l| ondemand::decide(l, &table, cur, up));
        let applied = match decision {
            Decision::Max => self.host.apply(cpu, Step::Max),
            Decision::Down(i) => self.host.lcore(cpu).and_then(|l| l.set_index(i)),
            Decision::Keep => Ok(Changed::No),
        };
        match applied {
            Ok(Changed::No) => {}
            Ok(_) => {
                if let Some(st) = self.gov.govs.get_mut(cpu) {
                    st.stats.changes += 1;
                }
            }
            Err(e) => self.gov_log(&format!("ondemand: core {cpu}: {decision:?} failed: {e}")),
        }
        let after = self.host.frequency(cpu).unwrap_or(0);
        if before != after {
            self.log(
                Level::Debug,
                &format!(
                    "ondemand: core {cpu}: load {}% -> {before} kHz to {after} kHz",
                    load.unwrap_or(0)
                ),
            );
        }
        if let Some(t) = self.cfg.gov_trace.as_mut() {
            t(&GovSample {
                cpu,
                counters: now,
                load,
                decision,
                before_khz: before,
                after_khz: after,
            });
        }
    }
}
