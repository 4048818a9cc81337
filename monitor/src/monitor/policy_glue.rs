//! The policy engine on the loop: its timerfd, the host it acts through, install/remove and VM lifecycle.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rte_power::cpulist::CpuSet;
use rte_power::wire::Step;
use rte_power::{Changed, PowerError};

use super::registry::Registry;
use super::requests::is_unpinned;
use super::Monitor;
use crate::governor::{Governor, Governors};
use crate::host::Host;
use crate::log::{Level, RateLimit};
use crate::policy::branch::{BranchCounters, PerfCounters};
use crate::policy::clock::{Clock, FileClock, LocalClock};
use crate::policy::decide::Target;
use crate::policy::spec::Spec;
use crate::policy::thresholds::BranchThresholds;
use crate::policy::traffic::{DirStats, NetlinkStats, VfStats};
use crate::policy::{Engine, InstallError, PolicyHost};
use crate::sys::TimerFd;

/// How the policy engine is set up.
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// Time between two ticks.
    pub tick: Duration,
    /// TEST ONLY: read the hour (and monotonic seconds) from this file.
    pub clock_file: Option<PathBuf>,
    /// TEST ONLY: read VF packet counts from this tree instead of rtnetlink.
    pub vf_stats_dir: Option<PathBuf>,
    /// Per-core BRANCH_RATIO thresholds.
    pub thresholds: BranchThresholds,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            tick: crate::policy::DEFAULT_TICK,
            clock_file: None,
            vf_stats_dir: None,
            thresholds: BranchThresholds::default(),
        }
    }
}

/// The engine, its timer and the rate limit of its error lines.
pub(super) struct PolicyLoop {
    pub(super) engine: Engine,
    timer: TimerFd,
    tick: Duration,
    armed: bool,
    limiter: RateLimit,
    /// Per pCPU, active VMs that may run there (rebuilt each tick).
    users: Vec<u16>,
    /// Scratch of `count_users`.
    seen: Vec<u32>,
}

impl PolicyLoop {
    pub(super) fn new(cfg: &PolicyConfig, timer: TimerFd) -> Self {
        let clock: Box<dyn Clock> = match &cfg.clock_file {
            Some(f) => Box::new(FileClock::new(f)),
            None => Box::new(LocalClock::new()),
        };
        let stats: Box<dyn VfStats> = match &cfg.vf_stats_dir {
            Some(d) => Box::new(DirStats::new(d)),
            None => Box::new(NetlinkStats::new()),
        };
        let branch: Box<dyn BranchCounters> = Box::new(PerfCounters::new());
        Self::with_engine(
            Engine::new(clock, stats, branch, cfg.thresholds.clone()),
            cfg.tick,
            timer,
        )
    }

    pub(super) fn with_engine(engine: Engine, tick: Duration, timer: TimerFd) -> Self {
        Self {
            engine,
            timer,
            tick: tick.max(Duration::from_millis(1)),
            armed: false,
            limiter: RateLimit::new(),
            users: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// Arms the timer for `after` while a policy exists, disarms otherwise.
    fn arm(&mut self, after: Duration) {
        let want = !self.engine.is_empty();
        if want {
            self.armed = self.timer.set(Some(after)).is_ok();
        } else if self.armed {
            let _ = self.timer.set(None);
            self.armed = false;
        }
    }

    /// Is the timer armed (tests)?
    #[cfg(test)]
    pub(super) fn armed(&self) -> bool {
        self.armed
    }

    /// Shutdown: stop ticking (counters close with the engine).
    pub(super) fn stop(&mut self) {
        let names: Vec<String> = self.engine.iter().map(|(n, _)| n.clone()).collect();
        for n in names {
            self.engine.remove(&n);
        }
        self.arm(Duration::ZERO);
    }
}

/// The host a policy acts through: the loop's registry, governors and CPUs.
struct LoopHost<'a> {
    reg: &'a Registry,
    govs: &'a Governors,
    host: &'a mut Host,
    host_cpus: u32,
    users: &'a [u16],
    shared: &'a super::exclusivity::Shared,
}

impl PolicyHost for LoopHost<'_> {
    fn vcpus(&self, vm: &str) -> Option<&[CpuSet]> {
        let v = self.reg.get(self.reg.id(vm)?)?;
        Some(&v.info.vcpus)
    }

    fn may_scale(&self, vm: &str, cpu: u32) -> bool {
        // the same rule as guest requests: a pCPU whose cpufreq policy spans
        // another VM's CPU is contested (unless allowed by set_shared) ...
        let contested = self
            .reg
            .id(vm)
            .is_some_and(|id| self.shared.contested_of(id).binary_search(&cpu).is_ok());
        // ... and a pCPU another active VM may run on is never the policy's
        !contested && may_scale(self.users, cpu)
    }

    fn pinned(&self, pins: &CpuSet) -> bool {
        !pins.is_empty() && !is_unpinned(pins, self.host_cpus)
    }

    fn governor(&self, cpu: u32) -> Governor {
        self.govs.governor(cpu)
    }

    fn apply(&mut self, cpu: u32, target: Target) -> Result<Changed, PowerError> {
        match target {
            Target::Max => self.host.apply(cpu, Step::Max),
            Target::Min => self.host.apply(cpu, Step::Min),
            Target::Mid | Target::Low => {
                let l = self.host.lcore(cpu)?;
                let n = l.num_freqs()?;
                match target.index(n) {
                    Some(i) => l.set_index(i),
                    None => Ok(Changed::No),
                }
            }
        }
    }
}

/// A policy may scale a pCPU only when no other active VM may run on it
/// (its own VM is one user); `LoopHost::may_scale` adds the exclusivity
/// rule (a cpufreq policy spanning another VM's CPU, `set_shared`).
pub(super) fn may_scale(users: &[u16], cpu: u32) -> bool {
    users.get(cpu as usize).copied().unwrap_or(0) <= 1
}

/// Counts, per pCPU, the active VMs with a vCPU that may run there
/// (`seen` remembers the last VM counted on each pCPU, so a VM with two
/// vCPUs on one pCPU counts once; nothing is allocated once grown).
fn count_users(reg: &Registry, users: &mut Vec<u16>, seen: &mut Vec<u32>) {
    users.iter_mut().for_each(|u| *u = 0);
    seen.iter_mut().for_each(|s| *s = 0);
    for (n, vm) in reg.iter().filter(|v| v.info.active).enumerate() {
        let mark = u32::try_from(n + 1).unwrap_or(u32::MAX);
        for cpu in vm.info.vcpus.iter().flat_map(CpuSet::iter) {
            let i = cpu as usize;
            if users.len() <= i {
                users.resize(i + 1, 0);
                seen.resize(i + 1, 0);
            }
            if seen[i] != mark {
                seen[i] = mark;
                users[i] = users[i].saturating_add(1);
            }
        }
    }
}

impl Monitor {
    /// The policy timerfd: one tick, its errors logged (rate-limited),
    /// then the next tick armed while a policy exists.
    pub(super) fn on_policy_timer(&mut self) {
        self.policy.timer.drain();
        self.policy_tick();
        let tick = self.policy.tick;
        self.policy.arm(tick);
    }

    /// One engine tick over the loop's host.
    pub(super) fn policy_tick(&mut self) {
        let p = &mut self.policy;
        count_users(&self.reg, &mut p.users, &mut p.seen);
        let mut host = LoopHost {
            reg: &self.reg,
            govs: &self.gov.govs,
            host: &mut self.host,
            host_cpus: self.host_cpus,
            users: &p.users,
            shared: &self.shared,
        };
        p.engine.tick(&mut host);
        if p.engine.errors.is_empty() {
            return;
        }
        let (ok, suppressed) =
            p.limiter
                .check(Instant::now(), self.cfg.log_burst, self.cfg.log_window);
        if suppressed > 0 {
            self.log(
                Level::Warn,
                &format!("policy engine: {suppressed} error lines suppressed"),
            );
        }
        if ok {
            let lines = std::mem::take(&mut self.policy.engine.errors);
            for l in lines {
                self.log(Level::Warn, &l);
            }
        }
    }

    /// Installs a guest's policy (replacing its previous one) and ticks at
    /// once.
    pub(super) fn install_policy(&mut self, vm: &str, spec: Spec) -> Result<(), InstallError> {
        let p = &mut self.policy;
        count_users(&self.reg, &mut p.users, &mut p.seen);
        let host = LoopHost {
            reg: &self.reg,
            govs: &self.gov.govs,
            host: &mut self.host,
            host_cpus: self.host_cpus,
            users: &p.users,
            shared: &self.shared,
        };
        p.engine.install(&host, vm, spec)?;
        p.arm(Duration::ZERO);
        Ok(())
    }

    /// Drops the policy of `vm` (removal, VM stopped or removed); `why`
    /// is logged when there was one.
    pub(super) fn drop_policy(&mut self, vm: &str, why: Option<&str>) -> bool {
        let had = self.policy.engine.remove(vm);
        if had {
            if let Some(why) = why {
                self.log(
                    Level::Info,
                    &format!("VM '{vm}': policy dropped ({why}); its guest requests decide again"),
                );
            }
            self.policy.arm(Duration::ZERO);
        }
        had
    }
}

impl Monitor {
    /// `show_vm <vm> --json` (schema in docs/monitor.md).
    pub(super) fn show_vm_json(&self, name: &str) -> Result<String, super::commands::CommandError> {
        use crate::policy::report::{json_str, policy_json};
        let id = self.vm_id(name)?;
        let Some(vm) = self.reg.get(id) else {
            return Err(super::commands::CommandError::VmNotFound(name.to_string()));
        };
        let vcpus: Vec<String> = vm
            .info
            .vcpus
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let cpus: Vec<String> = p.iter().map(|c| c.to_string()).collect();
                format!(
                    "{{\"vcpu\":{i},\"pcpus\":[{}],\"pinned\":{}}}",
                    cpus.join(","),
                    !p.is_empty() && !is_unpinned(p, self.host_cpus)
                )
            })
            .collect();
        let policy = self
            .policy
            .engine
            .get(name)
            .map_or("null".to_string(), |p| {
                policy_json(&self.policy.engine, name, p)
            });
        let energy = self
            .energy_json(id)
            .and_then(|e| serde_json::to_string(&e).ok())
            .unwrap_or_else(|| "null".into());
        Ok(format!(
            "{{\"vm\":{},\"active\":{},\"query\":{},\"channels\":{},\"vcpus\":[{}],\"requests\":{{\"accepted\":{},\"refused\":{}}},\"policy\":{policy},\"energy\":{energy}}}",
            json_str(name),
            vm.info.active,
            vm.allow_query,
            vm.channels.len(),
            vcpus.join(","),
            vm.accepted,
            vm.refused
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hv::VmInfo;

    fn vm(name: &str, active: bool, pins: &[&[u32]]) -> VmInfo {
        VmInfo {
            name: name.into(),
            active,
            vcpus: pins
                .iter()
                .map(|p| CpuSet::from_iter_u32(p.iter().copied()))
                .collect(),
        }
    }

    #[test]
    fn a_pcpu_is_scaled_only_when_one_active_vm_may_run_there() {
        let mut reg = Registry::new();
        reg.add(vm("a", true, &[&[1], &[1, 2]])).expect("a");
        reg.add(vm("b", true, &[&[2], &[3]])).expect("b");
        reg.add(vm("off", false, &[&[1, 3]])).expect("off");
        let (mut users, mut seen) = (Vec::new(), Vec::new());
        count_users(&reg, &mut users, &mut seen);
        assert_eq!(users, [0, 1, 2, 1], "a's two vCPUs on pCPU 1 count once");
        assert!(may_scale(&users, 1));
        assert!(!may_scale(&users, 2), "a and b");
        assert!(may_scale(&users, 3), "the inactive VM does not count");
        assert!(may_scale(&users, 99), "no VM there");
        // a second count starts again
        count_users(&Registry::new(), &mut users, &mut seen);
        assert!(users.iter().all(|u| *u == 0));
    }
}
