//! Policy engine benchmark: the cost of one tick with thousands of pCPUs under policy.
//!
//! ```text
//! cargo bench -p vm-power-mgr --bench policy -- [--ticks N]
//! scripts/bench-policy.sh
//! ```
//!
//! Two set-ups, each with VMs of 8 vCPUs pinned one pCPU each and a mix
//! of the four policy kinds (a quarter each: TIME busy at every hour,
//! WORKLOAD MEDIUM, TRAFFIC on an in-memory VF whose counter grows, and
//! BRANCH_RATIO on stand-in counters):
//! * 4,096 pCPUs with an in-memory actuator (the engine's own cost:
//!   decisions, bookkeeping, the sources), and
//! * 1,024 pCPUs (rte_power's lcore limit) on a generated acpi-cpufreq
//!   tree with the monitor's real `Host`, in steady state (every pCPU
//!   already where its policy puts it: what a tick costs hour after hour).
//!
//! Prints the tick time, the cost per pCPU and the CPU share of one core at
//! the default 100 ms tick. Not a test: it prints figures.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rte_power::cpulist::CpuSet;
use rte_power::sysfs::SysfsRoot;
use rte_power::wire::{self, ChannelPacket, Step};
use rte_power::{Changed, PowerError};
use testkit::sysfs::{FakeSysfs, Flavour};
use vm_power_monitor::governor::Governor;
use vm_power_monitor::host::Host;
use vm_power_monitor::policy::branch::{BranchCount, BranchCounters, BranchError};
use vm_power_monitor::policy::clock::{Clock, ClockError, Now};
use vm_power_monitor::policy::decide::Target;
use vm_power_monitor::policy::spec::{Mac, Spec};
use vm_power_monitor::policy::thresholds::BranchThresholds;
use vm_power_monitor::policy::traffic::{TrafficError, VfStats};
use vm_power_monitor::policy::{Engine, PolicyHost};

const TICK: Duration = Duration::from_millis(100);

/// A clock whose seconds advance by one tick per reading.
struct Stepping(Now);

impl Clock for Stepping {
    fn now(&mut self) -> Result<Now, ClockError> {
        self.0.mono += TICK;
        Ok(self.0)
    }
}

/// Every VF's counter grows by 5,000 packets per refresh (50,000/s).
#[derive(Default)]
struct Growing {
    n: u64,
}

impl VfStats for Growing {
    fn refresh(&mut self) -> Result<(), TrafficError> {
        self.n += 5_000;
        Ok(())
    }
    fn rx_packets(&self, _: &Mac) -> Option<u64> {
        Some(self.n)
    }
}

/// Branch counters that grow by 1,000,000 branches and 500 misses per read.
#[derive(Default)]
struct Counting {
    open: BTreeMap<u32, BranchCount>,
}

impl BranchCounters for Counting {
    fn open(&mut self, cpu: u32) -> Result<(), BranchError> {
        self.open.entry(cpu).or_default();
        Ok(())
    }
    fn read(&mut self, cpu: u32) -> Result<BranchCount, BranchError> {
        let c = self.open.get_mut(&cpu).ok_or(BranchError::NotOpen(cpu))?;
        c.branches += 1_000_000;
        c.misses += 500;
        Ok(*c)
    }
    fn close(&mut self, cpu: u32) {
        self.open.remove(&cpu);
    }
    fn open_cpus(&self) -> Vec<u32> {
        self.open.keys().copied().collect()
    }
}

/// VMs by name; pCPU states in memory or through the real host.
struct BenchHost {
    vms: BTreeMap<String, Vec<CpuSet>>,
    at: Vec<Option<Target>>,
    host: Option<Host>,
}

impl PolicyHost for BenchHost {
    fn vcpus(&self, vm: &str) -> Option<&[CpuSet]> {
        self.vms.get(vm).map(Vec::as_slice)
    }
    fn may_scale(&self, _: &str, _: u32) -> bool {
        true
    }
    fn pinned(&self, p: &CpuSet) -> bool {
        p.len() == 1
    }
    fn governor(&self, _: u32) -> Governor {
        Governor::Userspace
    }
    fn apply(&mut self, cpu: u32, t: Target) -> Result<Changed, PowerError> {
        if let Some(h) = self.host.as_mut() {
            return match t {
                Target::Max => h.apply(cpu, Step::Max),
                Target::Min => h.apply(cpu, Step::Min),
                Target::Mid | Target::Low => {
                    let l = h.lcore(cpu)?;
                    let n = l.num_freqs()?;
                    l.set_index(t.index(n).unwrap_or(0))
                }
            };
        }
        let slot = &mut self.at[cpu as usize];
        Ok(if *slot == Some(t) {
            Changed::No
        } else {
            *slot = Some(t);
            Changed::Yes
        })
    }
}

fn packet(i: usize, vcpus: u8) -> ChannelPacket {
    let mut p = ChannelPacket::ZEROED;
    p.command = wire::PKT_POLICY;
    p.num_vcpu = vcpus;
    for v in 0..vcpus {
        p.vcpu_to_control[usize::from(v)] = v;
    }
    match i % 4 {
        0 => {
            p.policy_to_use = wire::POLICY_TIME;
            for h in 0..24 {
                p.timer_policy.busy_hours[h] = h as i32;
            }
        }
        1 => {
            p.policy_to_use = wire::POLICY_WORKLOAD;
            p.workload = wire::WL_MEDIUM;
        }
        2 => {
            p.policy_to_use = wire::POLICY_TRAFFIC;
            p.nb_mac_to_monitor = 1;
            p.vfid[0] = 0x00f0_e0e0_e0e0 + i as u64;
            p.traffic_policy.min_packet_thresh = 1_000;
            p.traffic_policy.avg_max_packet_thresh = 10_000;
            p.traffic_policy.max_max_packet_thresh = 100_000;
        }
        _ => p.policy_to_use = wire::POLICY_BRANCH_RATIO,
    }
    p
}

/// Installs one policy per VM of 8 vCPUs over `cpus` pCPUs, warms up,
/// then times `ticks` ticks.
fn run(label: &str, cpus: u32, host: Option<Host>, ticks: u32) {
    let vms = (cpus / 8) as usize;
    let mut bh = BenchHost {
        vms: BTreeMap::new(),
        at: vec![None; cpus as usize],
        host,
    };
    for i in 0..vms {
        let pins = (0..8).map(|v| CpuSet::single((i * 8 + v) as u32)).collect();
        bh.vms.insert(format!("vm-{i}"), pins);
    }
    let mut engine = Engine::new(
        Box::new(Stepping(Now {
            hour: 12,
            mono: Duration::ZERO,
        })),
        Box::new(Growing::default()),
        Box::new(Counting::default()),
        BranchThresholds::default(),
    );
    for i in 0..vms {
        let spec = Spec::from_packet(&packet(i, 8)).expect("spec");
        engine
            .install(&bh, &format!("vm-{i}"), spec)
            .expect("install");
    }
    // warm-up: first samples, first writes
    for _ in 0..3 {
        engine.tick(&mut bh);
    }
    let t0 = Instant::now();
    for _ in 0..ticks {
        engine.tick(&mut bh);
    }
    let per_tick = t0.elapsed() / ticks;
    let per_cpu_ns = per_tick.as_nanos() as f64 / f64::from(cpus);
    let share = per_tick.as_secs_f64() / TICK.as_secs_f64() * 100.0;
    println!(
        "{label}: {cpus} pCPUs in {vms} VMs, {ticks} ticks: {:.1} us per tick, {per_cpu_ns:.0} ns per pCPU per tick, {share:.3} % of one core at a {} ms tick",
        per_tick.as_secs_f64() * 1e6,
        TICK.as_millis()
    );
    assert!(engine.errors.is_empty(), "{:?}", engine.errors);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let ticks = args
        .iter()
        .position(|a| a == "--ticks")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(200u32);
    run("engine, in-memory actuator", 4096, None, ticks);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("cpu");
    FakeSysfs::new(Flavour::Acpi, 1024)
        .create(&dir)
        .expect("sysfs tree");
    let host = Host::new(SysfsRoot::new(&dir));
    run(
        "engine + real Host, acpi tree, steady state",
        1024,
        Some(host),
        ticks,
    );
}
