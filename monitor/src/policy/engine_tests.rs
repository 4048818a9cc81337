//! Engine tests on a fake host: every policy type's decisions and the interplay rules.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rte_power::cpulist::CpuSet;
use rte_power::wire::{self, ChannelPacket};
use rte_power::{Changed, PowerError};

use super::*;
use crate::policy::branch::{BranchCount, FakeCounters};
use crate::policy::clock::{Clock, ClockError, Now};
use crate::policy::spec::{Mac, Spec};
use crate::policy::traffic::{TrafficError, VfStats};

/// A clock the test moves.
#[derive(Clone, Default)]
struct SharedClock(Arc<Mutex<Now>>);

impl SharedClock {
    fn set(&self, hour: u8, secs: u64) {
        *self.0.lock().expect("clock") = Now {
            hour,
            mono: Duration::from_secs(secs),
        };
    }
}

impl Clock for SharedClock {
    fn now(&mut self) -> Result<Now, ClockError> {
        Ok(*self.0.lock().expect("clock"))
    }
}

/// Generated VF counters.
#[derive(Clone, Default)]
struct SharedStats(Arc<Mutex<BTreeMap<Mac, u64>>>);

impl VfStats for SharedStats {
    fn refresh(&mut self) -> Result<(), TrafficError> {
        Ok(())
    }
    fn rx_packets(&self, mac: &Mac) -> Option<u64> {
        self.0.lock().expect("stats").get(mac).copied()
    }
}

/// Branch counters the test sets.
#[derive(Clone, Default)]
struct SharedCounters(Arc<Mutex<FakeCounters>>);

impl BranchCounters for SharedCounters {
    fn open(&mut self, cpu: u32) -> Result<(), BranchError> {
        self.0.lock().expect("c").open(cpu)
    }
    fn read(&mut self, cpu: u32) -> Result<BranchCount, BranchError> {
        self.0.lock().expect("c").read(cpu)
    }
    fn close(&mut self, cpu: u32) {
        self.0.lock().expect("c").close(cpu)
    }
    fn open_cpus(&self) -> Vec<u32> {
        self.0.lock().expect("c").open_cpus()
    }
}

/// VMs with pins, governors, and a log of what was applied.
#[derive(Default)]
struct FakeHost {
    vms: BTreeMap<String, Vec<CpuSet>>,
    govs: BTreeMap<u32, Governor>,
    at: BTreeMap<u32, Target>,
    fail: Option<u32>,
}

impl PolicyHost for FakeHost {
    fn vcpus(&self, vm: &str) -> Option<&[CpuSet]> {
        self.vms.get(vm).map(Vec::as_slice)
    }
    fn may_scale(&self, vm: &str, cpu: u32) -> bool {
        !self
            .vms
            .iter()
            .any(|(n, p)| n != vm && p.iter().any(|s| s.contains(cpu)))
    }
    fn pinned(&self, pins: &CpuSet) -> bool {
        pins.len() < 8
    }
    fn governor(&self, cpu: u32) -> Governor {
        self.govs.get(&cpu).copied().unwrap_or(Governor::Userspace)
    }
    fn apply(&mut self, cpu: u32, t: Target) -> Result<Changed, PowerError> {
        if self.fail == Some(cpu) {
            return Err(PowerError::InvalidArgument("refused".into()));
        }
        Ok(match self.at.insert(cpu, t) {
            Some(old) if old == t => Changed::No,
            _ => Changed::Yes,
        })
    }
}

struct Rig {
    engine: Engine,
    host: FakeHost,
    clock: SharedClock,
    stats: SharedStats,
    counters: SharedCounters,
}

const VF: Mac = Mac([0xe0, 0xe0, 0xe0, 0xe0, 0xf0, 0xf0]);

fn rig() -> Rig {
    let clock = SharedClock::default();
    let stats = SharedStats::default();
    let counters = SharedCounters::default();
    let engine = Engine::new(
        Box::new(clock.clone()),
        Box::new(stats.clone()),
        Box::new(counters.clone()),
        BranchThresholds::default(),
    );
    let mut host = FakeHost::default();
    // vm-a: vCPU 0 on pCPU 1, vCPU 1 on pCPU 2; vm-b: vCPU 0 on pCPU 3
    host.vms
        .insert("vm-a".into(), vec![CpuSet::single(1), CpuSet::single(2)]);
    host.vms.insert("vm-b".into(), vec![CpuSet::single(3)]);
    Rig {
        engine,
        host,
        clock,
        stats,
        counters,
    }
}

fn packet(kind: u32, vcpus: &[u8]) -> ChannelPacket {
    let mut p = ChannelPacket::ZEROED;
    p.command = wire::PKT_POLICY;
    p.policy_to_use = kind;
    p.num_vcpu = vcpus.len() as u8;
    p.vcpu_to_control[..vcpus.len()].copy_from_slice(vcpus);
    p
}

fn spec(p: &ChannelPacket) -> Spec {
    Spec::from_packet(p).expect("spec")
}

impl Rig {
    fn install(&mut self, vm: &str, p: &ChannelPacket) -> Result<(), InstallError> {
        self.engine.install(&self.host, vm, spec(p))
    }
    fn tick(&mut self) {
        self.engine.tick(&mut self.host);
    }
    fn at(&self, cpu: u32) -> Option<Target> {
        self.host.at.get(&cpu).copied()
    }
}

#[test]
fn workload_sets_each_level_on_the_policy_vcpus_only() {
    for (level, want) in [
        (wire::WL_HIGH, Target::Max),
        (wire::WL_MEDIUM, Target::Mid),
        (wire::WL_LOW, Target::Min),
    ] {
        let mut r = rig();
        let mut p = packet(wire::POLICY_WORKLOAD, &[1]);
        p.workload = level;
        r.install("vm-a", &p).expect("install");
        r.tick();
        assert_eq!(r.at(2), Some(want), "level {level}");
        assert_eq!(r.at(1), None, "vCPU 0 is not in the policy");
        assert_eq!(r.at(3), None, "another VM's pCPU");
        assert!(r.engine.holder("vm-a", 1).is_some());
        assert!(r.engine.holder("vm-a", 0).is_none());
        let c = r.engine.count(2);
        assert_eq!((c.decisions, c.changes), (1, 1));
        r.tick();
        assert_eq!(r.engine.count(2).decisions, 2, "one decision per tick");
        assert_eq!(r.engine.count(2).changes, 1, "no change the second time");
    }
}

fn time_packet() -> ChannelPacket {
    // guest_cli's defaults plus hours 0 and 23 in quiet, busy around them
    let mut p = packet(wire::POLICY_TIME, &[0]);
    p.timer_policy.busy_hours[..3].copy_from_slice(&[3, 4, 5]);
    p.timer_policy.quiet_hours[..4].copy_from_slice(&[11, 12, 0, 23]);
    p
}

#[test]
fn time_decides_at_every_boundary_including_hours_0_and_23() {
    let mut r = rig();
    r.install("vm-a", &time_packet()).expect("install");
    for hour in 0..24u8 {
        r.host.at.clear();
        r.clock.set(hour, u64::from(hour));
        r.tick();
        let want = match hour {
            3..=5 => Some(Target::Max),
            0 | 11 | 12 | 23 => Some(Target::Min),
            _ => None,
        };
        assert_eq!(r.at(1), want, "hour {hour}");
        assert_eq!(
            r.engine.holder("vm-a", 0).is_some(),
            want.is_some(),
            "guest requests refused only while the policy holds (hour {hour})"
        );
    }
}

#[test]
fn time_without_hour_0_leaves_hour_0_to_the_guest() {
    // DPDK's padding zeros would send this policy to max at hour 0
    let mut r = rig();
    let mut p = packet(wire::POLICY_TIME, &[0]);
    p.timer_policy.busy_hours[..3].copy_from_slice(&[3, 4, 5]);
    r.install("vm-a", &p).expect("install");
    r.clock.set(0, 0);
    r.tick();
    assert_eq!(r.at(1), None);
    assert_eq!(r.engine.get("vm-a").expect("p").decision, Decision::Leave);
    r.clock.set(23, 1);
    r.tick();
    assert_eq!(r.at(1), None);
    r.clock.set(3, 2);
    r.tick();
    assert_eq!(r.at(1), Some(Target::Max));
}

fn traffic_packet(kind: u32) -> ChannelPacket {
    let mut p = packet(kind, &[0, 1]);
    p.nb_mac_to_monitor = 1;
    p.vfid[0] = u64::from_le_bytes([0xe0, 0xe0, 0xe0, 0xe0, 0xf0, 0xf0, 0, 0]);
    p.traffic_policy.min_packet_thresh = 100;
    p.traffic_policy.avg_max_packet_thresh = 1_000;
    p.traffic_policy.max_max_packet_thresh = 10_000;
    p
}

#[test]
fn traffic_follows_the_generated_rate_at_each_threshold() {
    let mut r = rig();
    r.stats.0.lock().expect("s").insert(VF, 0);
    r.install("vm-a", &traffic_packet(wire::POLICY_TRAFFIC))
        .expect("install");
    r.clock.set(9, 100);
    r.tick();
    assert_eq!(r.at(1), None, "first sample: no rate yet");
    assert_eq!(r.engine.get("vm-a").expect("p").why, Why::Measuring);
    let mut total = 0u64;
    for (i, (pps, want)) in [
        (99, Target::Min),
        (100, Target::Low),
        (999, Target::Low),
        (1_000, Target::Mid),
        (9_999, Target::Mid),
        (10_000, Target::Max),
        (0, Target::Min),
    ]
    .into_iter()
    .enumerate()
    {
        // 2 s per tick
        total += 2 * pps;
        r.stats.0.lock().expect("s").insert(VF, total);
        r.clock.set(9, 102 + 2 * i as u64);
        r.tick();
        assert_eq!(r.at(1), Some(want), "{pps} packets/s");
        assert_eq!(r.at(2), Some(want), "{pps} packets/s, second vCPU");
        assert_eq!(r.engine.get("vm-a").expect("p").why, Why::Rate(pps));
    }
    // the VF vanishes: the policy lets go
    r.stats.0.lock().expect("s").clear();
    r.clock.set(9, 200);
    r.tick();
    let p = r.engine.get("vm-a").expect("p");
    assert_eq!((p.decision, p.why), (Decision::Leave, Why::VfGone(VF)));
    assert!(r.engine.holder("vm-a", 0).is_none());
}

#[test]
fn a_vf_the_host_does_not_have_refuses_the_policy() {
    let mut r = rig();
    let e = r
        .install("vm-a", &traffic_packet(wire::POLICY_TRAFFIC))
        .expect_err("no VF");
    assert_eq!(
        e.to_string(),
        "VF e0:e0:e0:e0:f0:f0 not found in the host's VF statistics"
    );
    assert!(r.engine.is_empty());
    // TIME with traffic hours needs the VF it names too
    let mut p = traffic_packet(wire::POLICY_TIME);
    p.timer_policy.hours_to_use_traffic_profile[0] = 8;
    assert!(matches!(
        r.install("vm-a", &p),
        Err(InstallError::VfNotFound(_))
    ));
}

#[test]
fn time_traffic_hours_without_a_vf_leave_the_cpu_to_the_guest() {
    // guest_cli without a port sends nb_mac_to_monitor 1 and MAC 0
    let mut r = rig();
    let mut p = traffic_packet(wire::POLICY_TIME);
    p.vfid[0] = 0;
    p.timer_policy.busy_hours[0] = 3;
    p.timer_policy.hours_to_use_traffic_profile[..2].copy_from_slice(&[8, 10]);
    r.install("vm-a", &p).expect("install");
    r.clock.set(8, 1);
    r.tick();
    let pol = r.engine.get("vm-a").expect("p");
    assert_eq!((pol.decision, pol.why), (Decision::Leave, Why::NoVf));
    r.clock.set(3, 2);
    r.tick();
    assert_eq!(r.at(1), Some(Target::Max));
}

#[test]
fn time_traffic_hours_use_the_traffic_decision() {
    let mut r = rig();
    r.stats.0.lock().expect("s").insert(VF, 0);
    let mut p = traffic_packet(wire::POLICY_TIME);
    p.timer_policy.hours_to_use_traffic_profile[..2].copy_from_slice(&[8, 10]);
    r.install("vm-a", &p).expect("install");
    r.clock.set(8, 10);
    r.tick();
    r.stats.0.lock().expect("s").insert(VF, 20_000);
    r.clock.set(8, 11);
    r.tick();
    assert_eq!(r.at(1), Some(Target::Max));
    assert!(matches!(
        r.engine.get("vm-a").expect("p").why,
        Why::Hour {
            hour: 8,
            slot: HourSlot::Traffic,
            pps: Some(20_000)
        }
    ));
    r.clock.set(9, 12);
    r.tick();
    assert_eq!(r.engine.get("vm-a").expect("p").decision, Decision::Leave);
}

#[test]
fn branch_ratio_scales_each_pcpu_by_its_own_counters() {
    let mut r = rig();
    r.install("vm-a", &packet(wire::POLICY_BRANCH_RATIO, &[0, 1]))
        .expect("install");
    assert_eq!(r.counters.open_cpus(), [1, 2]);
    r.tick();
    assert_eq!(r.at(1), None, "first sample");
    {
        let mut c = r.counters.0.lock().expect("c");
        c.counts.insert(
            1,
            BranchCount {
                branches: 100_000,
                misses: 500,
            },
        );
        c.counts.insert(
            2,
            BranchCount {
                branches: 100_000,
                misses: 50,
            },
        );
    }
    r.tick();
    assert_eq!(r.at(1), Some(Target::Max), "0.5% > 0.1%");
    assert_eq!(r.at(2), Some(Target::Min), "0.05% <= 0.1%");
    // idle (fewer than IDLE_BRANCHES new branches) counts as 0: down
    r.counters.0.lock().expect("c").counts.insert(
        1,
        BranchCount {
            branches: 100_500,
            misses: 600,
        },
    );
    r.tick();
    assert_eq!(r.at(1), Some(Target::Min));
    assert!(r.engine.remove("vm-a"));
    assert!(r.counters.open_cpus().is_empty(), "counters closed");
}

#[test]
fn branch_ratio_without_a_pmu_is_refused() {
    let mut r = rig();
    r.counters.0.lock().expect("c").refuse = true;
    let e = r
        .install("vm-a", &packet(wire::POLICY_BRANCH_RATIO, &[0]))
        .expect_err("no PMU");
    assert!(e
        .to_string()
        .starts_with("BRANCH_RATIO refused: cpu 1: perf_event_open"));
    assert!(r.engine.is_empty());
}

#[test]
fn shared_pcpus_governors_and_failures_are_skipped_and_counted() {
    let mut r = rig();
    // vm-b's vCPU 0 also on pCPU 2 now
    r.host
        .vms
        .insert("vm-b".into(), vec![CpuSet::from_iter_u32([2, 3])]);
    r.host.govs.insert(1, Governor::Performance);
    let mut p = packet(wire::POLICY_WORKLOAD, &[0, 1]);
    p.workload = wire::WL_HIGH;
    r.install("vm-a", &p).expect("install");
    r.tick();
    assert_eq!(r.at(1), None, "operator governor wins");
    assert_eq!(r.at(2), None, "shared with vm-b");
    let pol = r.engine.get("vm-a").expect("p");
    assert_eq!(
        pol.slots[0].outcome,
        Outcome::Governor(Governor::Performance)
    );
    assert_eq!(pol.slots[1].outcome, Outcome::Shared);
    assert!(
        pol.held.is_empty(),
        "guest requests not refused by the policy"
    );
    assert_eq!(r.engine.count(1).skipped, 1);
    // governor back to userspace: the policy takes the CPU
    r.host.govs.clear();
    r.host.fail = Some(2);
    r.host.vms.insert("vm-b".into(), vec![CpuSet::single(3)]);
    r.tick();
    assert_eq!(r.at(1), Some(Target::Max));
    assert_eq!(
        r.engine.get("vm-a").expect("p").slots[1].outcome,
        Outcome::Failed
    );
    assert_eq!(r.engine.errors.len(), 1, "{:?}", r.engine.errors);
}

#[test]
fn the_policy_follows_a_repinned_vcpu_and_ignores_unpinned_ones() {
    let mut r = rig();
    let mut p = packet(wire::POLICY_WORKLOAD, &[0]);
    p.workload = wire::WL_LOW;
    r.install("vm-a", &p).expect("install");
    r.tick();
    assert_eq!(r.at(1), Some(Target::Min));
    r.host
        .vms
        .insert("vm-a".into(), vec![CpuSet::single(5), CpuSet::single(2)]);
    r.tick();
    assert_eq!(r.at(5), Some(Target::Min), "moved with vCPU 0");
    let slots = &r.engine.get("vm-a").expect("p").slots;
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].cpu, 5);
    r.host
        .vms
        .insert("vm-a".into(), vec![CpuSet::from_iter_u32(0..8)]);
    r.host.at.clear();
    r.tick();
    assert!(r.host.at.is_empty(), "unpinned: never scaled");
}

#[test]
fn removal_hands_the_vcpus_back() {
    let mut r = rig();
    let mut p = packet(wire::POLICY_WORKLOAD, &[0]);
    p.workload = wire::WL_HIGH;
    r.install("vm-a", &p).expect("install");
    r.tick();
    assert!(r.engine.holder("vm-a", 0).is_some());
    assert!(r.engine.remove("vm-a"));
    assert!(!r.engine.remove("vm-a"));
    assert!(r.engine.holder("vm-a", 0).is_none());
    assert!(r.engine.is_empty());
    r.host.at.clear();
    r.tick();
    assert!(r.host.at.is_empty());
}
