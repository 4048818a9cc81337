//! The engine: installed policies per VM, one decision per controlled pCPU per tick.
//!
//! The engine never touches a host CPU itself: what it reads of the VMs
//! and does to the CPUs goes through [`PolicyHost`], which the monitor's
//! loop implements over its registry, governors and host (tests fake it).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rte_power::cpulist::CpuSet;
use rte_power::{Changed, PowerError};

use super::branch::{BranchCount, BranchCounters, BranchError};
use super::clock::{Clock, Now};
use super::decide::{self, Decision, HourSlot, Target};
use super::spec::{Kind, Mac, Spec, SpecError};
use super::thresholds::BranchThresholds;
use super::traffic::VfStats;
use crate::governor::Governor;

/// Why a policy is refused (its NACK's reason).
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The packet is not a policy the engine keeps.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A VF the policy names is not among the host's VFs.
    #[error("VF {0} not found in the host's VF statistics")]
    VfNotFound(Mac),
    /// The VF statistics cannot be read at all.
    #[error("VF statistics unavailable: {0}")]
    Stats(String),
    /// No branch counters for a pCPU of the policy.
    #[error("BRANCH_RATIO refused: {0}")]
    Branch(#[from] BranchError),
}

/// What the engine needs of the monitor.
pub trait PolicyHost {
    /// Per vCPU, the pCPUs the VM may run on; `None` if the VM is unknown.
    fn vcpus(&self, vm: &str) -> Option<&[CpuSet]>;
    /// May a policy of `vm` scale `cpu`? (Today: no other VM pins it.)
    fn may_scale(&self, vm: &str, cpu: u32) -> bool;
    /// Is the pCPU a real pinning (not "every host CPU")?
    fn pinned(&self, pins: &CpuSet) -> bool;
    /// The monitor governor of `cpu` (policies act only under userspace).
    fn governor(&self, cpu: u32) -> Governor;
    /// Moves `cpu` to `target`.
    fn apply(&mut self, cpu: u32, target: Target) -> Result<Changed, PowerError>;
}

/// Why a policy decided what it did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Why {
    /// Not evaluated yet.
    Pending,
    /// WORKLOAD level.
    Level(rte_power::wire::WorkloadLevel),
    /// TIME: the hour and its list (with the rate when a traffic hour).
    Hour {
        /// The local hour.
        hour: u8,
        /// Its list.
        slot: HourSlot,
        /// Packets/s when the slot is traffic.
        pps: Option<u64>,
    },
    /// TRAFFIC: packets/s over the VFs.
    Rate(u64),
    /// TRAFFIC: first sample, no rate yet.
    Measuring,
    /// TIME: a traffic hour, but the policy names no VF.
    NoVf,
    /// TRAFFIC: a VF vanished from the statistics.
    VfGone(Mac),
    /// TRAFFIC: statistics unreadable.
    StatsFailed,
    /// BRANCH_RATIO: misses per 100 branches against the threshold.
    Ratio {
        /// Ratio, percent.
        pct: f64,
        /// Threshold, percent.
        threshold: f64,
    },
    /// BRANCH_RATIO: the counters of the pCPU failed.
    CounterFailed,
    /// The clock failed.
    ClockFailed,
}

/// What happened to a pCPU at the last tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not evaluated yet.
    Pending,
    /// Left to guest requests.
    Left,
    /// Set (changed or already there).
    Applied(Changed),
    /// Another VM pins the pCPU.
    Shared,
    /// An operator governor holds the pCPU.
    Governor(Governor),
    /// The vCPU is not pinned.
    NotPinned,
    /// The host refused.
    Failed,
}

/// One pCPU a policy controls.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The vCPU it belongs to.
    pub vcpu: u8,
    /// The pCPU.
    pub cpu: u32,
    /// The decision.
    pub decision: Decision,
    /// Why (BRANCH_RATIO: per pCPU; others: the policy's).
    pub why: Why,
    /// What the tick did.
    pub outcome: Outcome,
    prev: Option<BranchCount>,
}

/// A policy in force.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The policy.
    pub spec: Spec,
    /// The policy-level decision (BRANCH_RATIO: see the slots).
    pub decision: Decision,
    /// Why.
    pub why: Why,
    /// The pCPUs it controls now.
    pub slots: Vec<Slot>,
    /// vCPUs whose guest requests are refused now.
    pub held: BTreeSet<u8>,
    /// The pins the slots were built from.
    pins: Vec<CpuSet>,
    /// Last packet sample (sum over the VFs, time).
    prev_rx: Option<(u64, Duration)>,
    /// Last traffic decision (kept when no time passed).
    last_pps: Option<u64>,
}

/// Decisions counted for one pCPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuCount {
    /// Decisions taken.
    pub decisions: u64,
    /// Of which changed the frequency.
    pub changes: u64,
    /// Of which were skipped (shared, governor, failure).
    pub skipped: u64,
}

/// Every installed policy and the sources they read.
pub struct Engine {
    policies: BTreeMap<String, Installed>,
    counts: Vec<CpuCount>,
    clock: Box<dyn Clock>,
    stats: Box<dyn VfStats>,
    branch: Box<dyn BranchCounters>,
    thresholds: BranchThresholds,
    /// Ticks run.
    pub ticks: u64,
    /// Last clock reading.
    pub last_now: Option<Now>,
    /// Errors of the last tick (the loop logs them, rate-limited).
    pub errors: Vec<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("policies", &self.policies.len())
            .field("ticks", &self.ticks)
            .finish()
    }
}

impl Engine {
    /// An engine on these sources.
    pub fn new(
        clock: Box<dyn Clock>,
        stats: Box<dyn VfStats>,
        branch: Box<dyn BranchCounters>,
        thresholds: BranchThresholds,
    ) -> Self {
        Self {
            policies: BTreeMap::new(),
            counts: Vec::new(),
            clock,
            stats,
            branch,
            thresholds,
            ticks: 0,
            last_now: None,
            errors: Vec::new(),
        }
    }

    /// Any policy in force (the timer runs only then)?
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The policy of a VM.
    pub fn get(&self, vm: &str) -> Option<&Installed> {
        self.policies.get(vm)
    }

    /// Every policy, by VM name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Installed)> {
        self.policies.iter()
    }

    /// Decisions counted for `cpu`.
    pub fn count(&self, cpu: u32) -> CpuCount {
        self.counts.get(cpu as usize).copied().unwrap_or_default()
    }

    /// The branch threshold of `cpu`, percent.
    pub fn threshold(&self, cpu: u32) -> f64 {
        self.thresholds.of(cpu)
    }

    /// Is guest vCPU `vcpu` of `vm` held by its policy now? Returns the
    /// policy's name and decision.
    pub fn holder(&self, vm: &str, vcpu: u64) -> Option<(&'static str, Decision, Why)> {
        let p = self.policies.get(vm)?;
        let v = u8::try_from(vcpu).ok()?;
        if !p.held.contains(&v) {
            return None;
        }
        let s = p.slots.iter().find(|s| s.vcpu == v)?;
        Some((p.spec.kind.name(), s.decision, s.why))
    }

    /// Checks and installs `spec` for `vm`, replacing its policy. TRAFFIC
    /// needs every VF in the host's statistics; BRANCH_RATIO needs the
    /// branch counters of every pCPU of its vCPUs.
    pub fn install(
        &mut self,
        host: &dyn PolicyHost,
        vm: &str,
        spec: Spec,
    ) -> Result<(), InstallError> {
        if !spec.macs.is_empty() {
            self.stats
                .refresh()
                .map_err(|e| InstallError::Stats(e.to_string()))?;
            if let Some(m) = spec
                .macs
                .iter()
                .find(|m| self.stats.rx_packets(m).is_none())
            {
                return Err(InstallError::VfNotFound(*m));
            }
        }
        if spec.kind == Kind::BranchRatio {
            let pins = host.vcpus(vm).unwrap_or_default();
            let cpus: Vec<u32> = spec
                .vcpus
                .iter()
                .filter_map(|&v| pins.get(usize::from(v)))
                .filter(|s| host.pinned(s))
                .flat_map(CpuSet::iter)
                .collect();
            let before = self.branch.open_cpus();
            for &c in &cpus {
                if let Err(e) = self.branch.open(c) {
                    for c in self.branch.open_cpus() {
                        if !before.contains(&c) {
                            self.branch.close(c);
                        }
                    }
                    return Err(e.into());
                }
            }
        }
        let mut p = Installed {
            spec,
            decision: Decision::Leave,
            why: Why::Pending,
            slots: Vec::new(),
            held: BTreeSet::new(),
            pins: host.vcpus(vm).unwrap_or_default().to_vec(),
            prev_rx: None,
            last_pps: None,
        };
        rebuild(&mut p, host);
        self.policies.insert(vm.to_string(), p);
        self.sync_branch();
        Ok(())
    }

    /// Drops the policy of `vm` (its guest has the vCPUs again); `true`
    /// if there was one.
    pub fn remove(&mut self, vm: &str) -> bool {
        let had = self.policies.remove(vm).is_some();
        if had {
            self.sync_branch();
        }
        had
    }

    /// Opens the branch counters every BRANCH_RATIO slot needs, closes the
    /// others.
    fn sync_branch(&mut self) {
        let want: BTreeSet<u32> = self
            .policies
            .values()
            .filter(|p| p.spec.kind == Kind::BranchRatio)
            .flat_map(|p| p.slots.iter().map(|s| s.cpu))
            .collect();
        for c in self.branch.open_cpus() {
            if !want.contains(&c) {
                self.branch.close(c);
            }
        }
    }

    /// One tick: reads the clock and the sources once, decides for every
    /// controlled pCPU and applies.
    pub fn tick(&mut self, host: &mut dyn PolicyHost) {
        self.ticks += 1;
        self.errors.clear();
        let now = match self.clock.now() {
            Ok(n) => Some(n),
            Err(e) => {
                self.errors.push(format!("policy clock: {e}"));
                None
            }
        };
        self.last_now = now;
        let needs_stats = self.policies.values().any(|p| !p.spec.macs.is_empty());
        let stats_ok = if needs_stats {
            match self.stats.refresh() {
                Ok(()) => true,
                Err(e) => {
                    self.errors.push(format!("policy VF statistics: {e}"));
                    false
                }
            }
        } else {
            true
        };
        let mut repinned = false;
        for (vm, p) in &mut self.policies {
            let Some(pins) = host.vcpus(vm) else {
                continue;
            };
            if p.pins.as_slice() != pins {
                repinned = true;
                p.pins = pins.to_vec();
                rebuild(p, host);
            }
            let (decision, why) = match now {
                None => (Decision::Leave, Why::ClockFailed),
                Some(now) => policy_decision(p, now, self.stats.as_ref(), stats_ok),
            };
            p.decision = decision;
            p.why = why;
            p.held.clear();
            for s in &mut p.slots {
                if s.outcome == Outcome::NotPinned {
                    continue;
                }
                if p.spec.kind == Kind::BranchRatio {
                    let (d, w) = branch_decision(
                        s,
                        self.branch.as_mut(),
                        self.thresholds.of(s.cpu),
                        &mut self.errors,
                    );
                    s.decision = d;
                    s.why = w;
                } else {
                    s.decision = decision;
                    s.why = why;
                }
                s.outcome = match act(host, vm, s.cpu, s.decision) {
                    Ok(o) => o,
                    Err(e) => {
                        self.errors
                            .push(format!("policy of VM '{vm}': cpu {}: {e}", s.cpu));
                        Outcome::Failed
                    }
                };
                let c = count_mut(&mut self.counts, s.cpu);
                c.decisions += 1;
                match s.outcome {
                    Outcome::Applied(Changed::No) | Outcome::Left | Outcome::Pending => {}
                    Outcome::Applied(_) => c.changes += 1,
                    _ => c.skipped += 1,
                }
                if matches!(s.outcome, Outcome::Applied(_)) {
                    p.held.insert(s.vcpu);
                }
            }
        }
        if repinned {
            self.sync_branch();
        }
    }
}

/// The slot entry of `cpu`, growing the table.
fn count_mut(counts: &mut Vec<CpuCount>, cpu: u32) -> &mut CpuCount {
    let i = cpu as usize;
    if counts.len() <= i {
        counts.resize(i + 1, CpuCount::default());
    }
    &mut counts[i]
}

/// Rebuilds the slots after the VM's pins changed (the policy follows
/// its vCPUs to their new pCPUs).
fn rebuild(p: &mut Installed, host: &dyn PolicyHost) {
    let old = std::mem::take(&mut p.slots);
    for &v in &p.spec.vcpus {
        let Some(set) = p.pins.get(usize::from(v)) else {
            continue;
        };
        let pinned = host.pinned(set);
        for cpu in set.iter() {
            let prev = old
                .iter()
                .find(|s| s.cpu == cpu && s.vcpu == v)
                .and_then(|s| s.prev);
            p.slots.push(Slot {
                vcpu: v,
                cpu,
                decision: Decision::Leave,
                why: Why::Pending,
                outcome: if pinned {
                    Outcome::Pending
                } else {
                    Outcome::NotPinned
                },
                prev,
            });
        }
    }
}

/// The policy-level decision (BRANCH_RATIO decides per slot).
fn policy_decision(p: &mut Installed, now: Now, stats: &dyn VfStats, ok: bool) -> (Decision, Why) {
    match p.spec.kind {
        Kind::Workload(l) => (Decision::Set(decide::workload(l)), Why::Level(l)),
        Kind::BranchRatio => (Decision::Leave, Why::Pending),
        Kind::Traffic => traffic_decision(p, now, stats, ok),
        Kind::Time => {
            let s = &p.spec;
            let slot = decide::hour_slot(s.busy, s.quiet, s.traffic_hours, now.hour);
            let why = |pps| Why::Hour {
                hour: now.hour,
                slot,
                pps,
            };
            match slot {
                HourSlot::Busy => (Decision::Set(Target::Max), why(None)),
                HourSlot::Quiet => (Decision::Set(Target::Min), why(None)),
                HourSlot::Other => {
                    p.prev_rx = None;
                    (Decision::Leave, why(None))
                }
                HourSlot::Traffic => match traffic_decision(p, now, stats, ok) {
                    (d, Why::Rate(r)) => (d, why(Some(r))),
                    other => other,
                },
            }
        }
    }
}

/// Packets/s of the policy's VFs since the last sample, against its
/// thresholds.
fn traffic_decision(p: &mut Installed, now: Now, stats: &dyn VfStats, ok: bool) -> (Decision, Why) {
    if p.spec.macs.is_empty() {
        return (Decision::Leave, Why::NoVf);
    }
    if !ok {
        return (Decision::Leave, Why::StatsFailed);
    }
    let mut sum = 0u64;
    for m in &p.spec.macs {
        match stats.rx_packets(m) {
            Some(n) => sum = sum.wrapping_add(n),
            None => {
                p.prev_rx = None;
                return (Decision::Leave, Why::VfGone(*m));
            }
        }
    }
    let pps = match p.prev_rx {
        // no time has passed: keep the older sample and the last rate
        Some((_, t)) if now.mono <= t => p.last_pps,
        // a counter that went back (VF reset): start again
        Some((n, t)) if sum >= n => {
            let dt = (now.mono - t).as_secs_f64();
            p.prev_rx = Some((sum, now.mono));
            Some(((sum - n) as f64 / dt) as u64)
        }
        _ => {
            p.prev_rx = Some((sum, now.mono));
            None
        }
    };
    p.last_pps = pps;
    match pps {
        Some(r) => (
            Decision::Set(decide::traffic(r, &p.spec.traffic)),
            Why::Rate(r),
        ),
        None => (Decision::Leave, Why::Measuring),
    }
}

/// BRANCH_RATIO for one pCPU: the ratio since its last sample.
fn branch_decision(
    s: &mut Slot,
    counters: &mut dyn BranchCounters,
    threshold: f64,
    errors: &mut Vec<String>,
) -> (Decision, Why) {
    let cur = match counters.open(s.cpu).and_then(|()| counters.read(s.cpu)) {
        Ok(c) => c,
        Err(e) => {
            errors.push(format!("BRANCH_RATIO: {e}"));
            s.prev = None;
            return (Decision::Leave, Why::CounterFailed);
        }
    };
    let Some(prev) = s.prev.replace(cur) else {
        return (Decision::Leave, Why::Pending);
    };
    let branches = cur.branches.saturating_sub(prev.branches);
    let misses = cur.misses.saturating_sub(prev.misses);
    let pct = decide::branch_ratio(branches, misses);
    (
        Decision::Set(decide::branch(pct, threshold)),
        Why::Ratio { pct, threshold },
    )
}

/// Carries a decision out on one pCPU.
fn act(host: &mut dyn PolicyHost, vm: &str, cpu: u32, d: Decision) -> Result<Outcome, PowerError> {
    let Decision::Set(t) = d else {
        return Ok(Outcome::Left);
    };
    if !host.may_scale(vm, cpu) {
        return Ok(Outcome::Shared);
    }
    let g = host.governor(cpu);
    if g != Governor::Userspace {
        return Ok(Outcome::Governor(g));
    }
    host.apply(cpu, t).map(Outcome::Applied)
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
