//! Guest policies through the real monitor loop: an injected clock file,
//! a generated VF statistics tree, the generated sysfs tree and the
//! libvirt test driver. Each policy type acts on the VM's pinned pCPUs;
//! the interplay with guest requests, removal, VM stop and removal,
//! re-pinning and operator governors.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Env, T};
use rte_power::wire::{self, ChannelPacket, Response, Step, CMD_NACK};
use testkit::qemu::Guest;
use vm_power_monitor::policy::branch::{BranchCounters, PerfCounters};
use vm_power_monitor::{MonCmd, VmInfo};

const VF: &str = "e0:e0:e0:e0:f0:f0";

struct Rig {
    env: Env,
    clock: PathBuf,
    vfs: PathBuf,
    _tmp: tempfile::TempDir,
}

fn rig() -> Rig {
    rig_with(|_| {})
}

fn rig_with(tune: impl FnOnce(&mut vm_power_monitor::MonitorConfig)) -> Rig {
    rig_on(tune, |_| {}, &["vm-a", "vm-b"])
}

/// A rig whose host tree `prep` adjusts before the VMs `vms` are added.
fn rig_on(
    tune: impl FnOnce(&mut vm_power_monitor::MonitorConfig),
    prep: impl FnOnce(&Env),
    vms: &[&str],
) -> Rig {
    let tmp = tempfile::tempdir().expect("tmp");
    let clock = tmp.path().join("clock");
    let vfs = tmp.path().join("vfs");
    std::fs::create_dir(&vfs).expect("vfs");
    replace(&clock, "12 0");
    let (c2, v2) = (clock.clone(), vfs.clone());
    let env = Env::with(move |cfg| {
        cfg.policy.clock_file = Some(c2);
        cfg.policy.vf_stats_dir = Some(v2);
        cfg.policy.tick = Duration::from_millis(5);
        tune(cfg);
    });
    prep(&env);
    for vm in vms {
        env.ok(&format!("add_vm {vm}"));
    }
    Rig {
        env,
        clock,
        vfs,
        _tmp: tmp,
    }
}

impl Rig {
    /// The engine reads these files at any moment: replace them whole.
    fn set_clock(&self, hour: u8, secs: u64) {
        replace(&self.clock, &format!("{hour} {secs}"));
    }

    fn set_vf(&self, mac: &str, packets: u64) {
        replace(&self.vfs.join(mac), &packets.to_string());
    }

    /// Ticks run so far.
    fn ticks(&self) -> u64 {
        let j = self.env.ok("show_policies --json");
        let t = j.strip_prefix("{\"ticks\":").expect("ticks first");
        t[..t.find(',').expect("comma")].parse().expect("number")
    }

    /// Waits until two more ticks ran (one full tick after whatever the
    /// test changed), then returns `show_policies --json`.
    fn settle(&self) -> String {
        let start = self.ticks();
        let deadline = Instant::now() + T;
        while self.ticks() < start + 2 {
            assert!(Instant::now() < deadline, "the engine does not tick");
            std::thread::sleep(Duration::from_millis(2));
        }
        self.env.ok("show_policies --json")
    }

    fn speed(&self, cpu: u32) -> u32 {
        self.env.setspeed(cpu)
    }
}

fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn policy(kind: u32, vcpus: &[u8]) -> ChannelPacket {
    let mut p = ChannelPacket::ZEROED;
    p.command = wire::PKT_POLICY;
    p.policy_to_use = kind;
    p.num_vcpu = vcpus.len() as u8;
    p.vcpu_to_control[..vcpus.len()].copy_from_slice(vcpus);
    p
}

fn workload(level: u32, vcpus: &[u8]) -> ChannelPacket {
    let mut p = policy(wire::POLICY_WORKLOAD, vcpus);
    p.workload = level;
    p
}

fn remove() -> ChannelPacket {
    let mut p = ChannelPacket::ZEROED;
    p.command = wire::PKT_POLICY_REMOVE;
    p
}

#[track_caller]
fn ack(g: &mut Guest, p: &ChannelPacket) {
    g.send(p).expect("send");
    let r = g.recv_reply(T).expect("reply");
    assert_eq!(r, p.reply(Response::Ack), "expected ACK");
}

#[track_caller]
fn nack(g: &mut Guest, p: &ChannelPacket) {
    g.send(p).expect("send");
    let r = g.recv_reply(T).expect("reply");
    assert_eq!(r.command, CMD_NACK, "expected NACK");
}

/// max, middle and min of the generated table as the engine reaches them:
/// the operator's own `set_cpu_freq max/min` on a CPU no policy controls.
fn reference(env: &Env) -> (u32, u32, u32) {
    env.ok("set_cpu_freq 7 max");
    let max = env.setspeed(7);
    env.ok("set_cpu_freq 7 min");
    let min = env.setspeed(7);
    let t = env.table(7);
    (max, t[t.len() / 2], min)
}

#[test]
fn workload_sets_high_middle_low_on_the_vcpus_pcpus_only() {
    let r = rig();
    let (max, mid, min) = reference(&r.env);
    let (_q, mut g) = r.env.attach("vm-a", 0);
    let untouched = r.env.snapshot(&[0]);
    for (level, want) in [
        (wire::WL_HIGH, max),
        (wire::WL_MEDIUM, mid),
        (wire::WL_LOW, min),
    ] {
        ack(&mut g, &workload(level, &[1]));
        let j = r.settle();
        assert_eq!(r.speed(1), want, "level {level}: {j}");
        assert!(j.contains("\"policy\":\"WORKLOAD\""), "{j}");
    }
    // vCPU 0's pCPU 0 was never touched by the policy
    assert_eq!(r.env.snapshot(&[0]), untouched);
    let show = r.env.ok("show_vm vm-a");
    assert!(
        show.contains("Policy: WORKLOAD, vCPUs [1], workload LOW"),
        "{show}"
    );
    assert!(show.contains("  decision: min (workload LOW)"), "{show}");
    assert!(
        show.contains("  vCPU 1 -> pCPU 1: min (workload LOW), applied"),
        "{show}"
    );
    let vm = r.env.ok("show_vm vm-a --json");
    assert!(vm.starts_with("{\"vm\":\"vm-a\",\"active\":true,"), "{vm}");
    assert!(
        vm.contains("\"policy\":{\"vm\":\"vm-a\",\"policy\":\"WORKLOAD\""),
        "{vm}"
    );
    assert!(r.env.ok("list_vms").contains("policy WORKLOAD"));
}

#[test]
fn time_acts_at_the_injected_hours_and_hour_0_is_not_busy() {
    let r = rig();
    let (max, _, min) = reference(&r.env);
    let (_q, mut g) = r.env.attach("vm-a", 0);
    // guest_cli's defaults: busy 3,4,5 quiet 11,12,13 (no traffic hours here)
    let mut p = policy(wire::POLICY_TIME, &[0, 1]);
    p.timer_policy.busy_hours[..3].copy_from_slice(&[3, 4, 5]);
    p.timer_policy.quiet_hours[..4].copy_from_slice(&[11, 12, 13, 23]);
    r.set_clock(2, 0);
    ack(&mut g, &p);
    for (hour, want) in [
        (2, None),
        (3, Some(max)),
        (5, Some(max)),
        (6, None),
        (10, None),
        (11, Some(min)),
        (13, Some(min)),
        (14, None),
        (22, None),
        (23, Some(min)),
        (0, None),
        (1, None),
    ] {
        r.set_clock(hour, 0);
        let j = r.settle();
        assert!(j.contains(&format!("\"hour\":{hour},")), "{j}");
        match want {
            Some(f) => {
                assert_eq!(r.speed(0), f, "hour {hour}: {j}");
                assert_eq!(r.speed(1), f, "hour {hour}");
                // the policy holds the vCPU: the guest is refused, with why
                nack(&mut g, &ChannelPacket::cpu_power(1, Step::Up));
            }
            None => {
                assert!(j.contains("\"decision\":\"leave\""), "hour {hour}: {j}");
                // guest requests decide
                ack(&mut g, &ChannelPacket::cpu_power(1, Step::Max));
                assert_eq!(r.speed(1), max);
                ack(&mut g, &ChannelPacket::cpu_power(1, Step::Min));
                assert_eq!(r.speed(1), min, "hour {hour}: the guest's request stands");
            }
        }
    }
    r.env
        .assert_log("refused CPU_POWER(vCPU 1): vCPU 1 is held by the VM's TIME policy");
    let show = r.env.ok("show_vm vm-a");
    assert!(
        show.contains("hour 1: in no list, guest requests decide"),
        "{show}"
    );
}

#[test]
fn traffic_follows_the_generated_vf_counters_at_each_threshold() {
    let r = rig();
    let (max, mid, min) = reference(&r.env);
    let (_q, mut g) = r.env.attach("vm-a", 0);
    let mut p = policy(wire::POLICY_TRAFFIC, &[1]);
    p.nb_mac_to_monitor = 1;
    p.vfid[0] = u64::from_le_bytes([0xe0, 0xe0, 0xe0, 0xe0, 0xf0, 0xf0, 0, 0]);
    p.traffic_policy.min_packet_thresh = 100;
    p.traffic_policy.avg_max_packet_thresh = 1_000;
    p.traffic_policy.max_max_packet_thresh = 10_000;
    // not among the host's VFs yet: NACK with the reason
    nack(&mut g, &p);
    r.env
        .assert_log("refused PKT_POLICY: policy refused: VF e0:e0:e0:e0:f0:f0 not found");
    r.set_vf(VF, 0);
    r.set_clock(9, 0);
    ack(&mut g, &p);
    r.settle();
    let low = {
        let t = r.env.table(1);
        t[(t.len() * 3 / 4).min(t.len() - 1)]
    };
    let mut total = 0;
    for (i, (pps, want)) in [
        (50u64, min),
        (100, low),
        (1_000, mid),
        (9_999, mid),
        (10_000, max),
        (0, min),
    ]
    .into_iter()
    .enumerate()
    {
        // one second of traffic per step; the clock's seconds move with it
        total += pps;
        r.set_vf(VF, total);
        r.set_clock(9, i as u64 + 1);
        let j = r.settle();
        assert!(j.contains(&format!("\"packets_per_s\":{pps}")), "{j}");
        assert_eq!(r.speed(1), want, "{pps} packets/s: {j}");
    }
}

#[test]
fn branch_ratio_is_refused_without_a_pmu_and_installed_with_one() {
    let r = rig();
    let (_q, mut g) = r.env.attach("vm-a", 0);
    let p = policy(wire::POLICY_BRANCH_RATIO, &[1]);
    let pmu = PerfCounters::new().open(1).is_ok();
    if pmu {
        ack(&mut g, &p);
        let j = r.settle();
        assert!(j.contains("\"policy\":\"BRANCH_RATIO\""), "{j}");
    } else {
        nack(&mut g, &p);
        r.env
            .assert_log("policy refused: BRANCH_RATIO refused: cpu 1: perf_event_open");
        assert_eq!(r.env.ok("show_policies"), "No policy in force");
    }
}

#[test]
fn removal_vm_stop_and_vm_removal_hand_the_cpus_back() {
    let r = rig();
    let (_q, mut g) = r.env.attach("vm-a", 0);
    let down = ChannelPacket::cpu_power(1, Step::Down);
    ack(&mut g, &workload(wire::WL_HIGH, &[1]));
    r.settle();
    nack(&mut g, &down);
    // PKT_POLICY_REMOVE: no answer, the guest decides again
    g.send(&remove()).expect("send");
    ack(&mut g, &down);
    assert_eq!(r.env.ok("show_policies"), "No policy in force");

    // the VM stops: its policy goes
    ack(&mut g, &workload(wire::WL_HIGH, &[1]));
    r.settle();
    let mut info: VmInfo = r.env.hv.lock().expect("hv").lookup("vm-a").expect("vm");
    info.active = false;
    r.env.ctl.monitor().call(MonCmd::UpdateVm(info.clone()));
    r.env
        .assert_log("VM 'vm-a': policy dropped (the VM stopped)");
    assert_eq!(r.env.ok("show_policies"), "No policy in force");
    info.active = true;
    r.env.ctl.monitor().call(MonCmd::UpdateVm(info));

    // the VM is removed: so is its policy
    ack(&mut g, &workload(wire::WL_HIGH, &[1]));
    r.settle();
    r.env.ok("rm_vm vm-a --force");
    r.env
        .assert_log("VM 'vm-a': policy dropped (the VM was removed)");
    assert_eq!(r.env.ok("show_policies"), "No policy in force");
}

#[test]
fn a_repinned_vcpu_takes_its_policy_along_and_shared_pcpus_are_left_alone() {
    let r = rig();
    let (max, _, min) = reference(&r.env);
    let (_q, mut g) = r.env.attach("vm-a", 0);
    r.env.ok("set_cpu_freq 2 max");
    ack(&mut g, &workload(wire::WL_LOW, &[1]));
    r.settle();
    assert_eq!(r.speed(1), min);
    r.env.ok("set_pcpu vm-a 1 2");
    let j = r.settle();
    assert!(j.contains("\"vcpu\":1,\"pcpu\":2,"), "{j}");
    assert_eq!(r.speed(2), min, "the policy moved to pCPU 2");
    // pCPU 5 is vm-b's too: shared, skipped, counted
    r.env.ok("set_cpu_freq 5 max");
    r.env.ok("set_pcpu vm-a 1 5");
    let j = r.settle();
    assert!(j.contains("\"pcpu\":5,\"decision\":\"min\""), "{j}");
    assert!(j.contains("\"outcome\":\"shared\""), "{j}");
    assert_eq!(r.speed(5), max, "another VM's pCPU is not scaled");
}

#[test]
fn operator_governors_take_the_cpu_from_policy_and_guest() {
    let r = rig();
    let (max, _, min) = reference(&r.env);
    let (_q, mut g) = r.env.attach("vm-a", 0);
    ack(&mut g, &workload(wire::WL_LOW, &[1]));
    r.settle();
    assert_eq!(r.speed(1), min);
    r.env.ok("set_scaling_governor 1 performance");
    let j = r.settle();
    assert!(j.contains("\"outcome\":\"governor\""), "{j}");
    assert_eq!(r.speed(1), max, "performance holds the CPU at max");
    // and the guest is refused for the governor, not the policy
    nack(&mut g, &ChannelPacket::cpu_power(1, Step::Down));
    r.env.assert_log("CPU 1 is under the performance governor");
    r.env.ok("set_scaling_governor 1 userspace");
    r.settle();
    assert_eq!(r.speed(1), min, "back under userspace: the policy again");
}

#[test]
fn bad_policies_are_nacked_with_a_logged_reason_rate_limited() {
    let r = rig_with(|cfg| {
        cfg.log_burst = 3;
        cfg.log_window = Duration::from_secs(600);
    });
    let (_q, mut g) = r.env.attach("vm-a", 0);
    let good = workload(wire::WL_HIGH, &[0]);
    let mut bad = Vec::new();
    let mut p = good;
    p.timer_policy.busy_hours[3] = 24;
    bad.push((p, "busy_hours"));
    let mut p = good;
    p.num_vcpu = 9;
    bad.push((p, "num_vcpu"));
    let mut p = good;
    p.workload = 7;
    bad.push((p, "workload"));
    let mut p = good;
    p.policy_to_use = 9;
    bad.push((p, "policy_to_use"));
    bad.push((
        workload(wire::WL_HIGH, &[0, 5]),
        "policy names vCPU 5, VM has 3",
    ));
    for (p, _) in &bad {
        nack(&mut g, p);
    }
    for _ in 0..10 {
        nack(&mut g, &bad[0].0);
    }
    let logs = r.env.logs.lock().expect("logs").clone();
    let lines: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("refused PKT_POLICY"))
        .collect();
    assert_eq!(lines.len(), 3, "rate-limited to the burst: {logs:#?}");
    for (line, (_, why)) in lines.iter().zip(&bad) {
        assert!(line.contains(why), "{line} should name {why}");
    }
    assert_eq!(r.env.ok("show_policies"), "No policy in force");
    let show = r.env.ok("show_vm vm-a");
    assert!(show.contains("Requests: 0 accepted, 15 refused"), "{show}");
}

#[test]
fn the_ctl_json_of_show_policies_through_the_binary() {
    let mut d = common::Daemon::start("show_policies");
    let out = d.ctl(&["--json", "show_policies"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(
        text.starts_with("{\"ticks\":0,\"hour\":null,\"policies\":[]}"),
        "{text}"
    );
    let out = d.ctl(&["--json", "show_vm", "vm-a"]);
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.contains("\"policy\":null"), "{text}");
    // every command answers JSON now (schemas: tests/ctl_json.rs)
    let out = d.ctl(&["--json", "list_vms"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert!(text.starts_with("[{\"name\":\"vm-a\""), "{text}");
    assert!(d.terminate().success());
}

#[test]
fn policy_options_are_checked_before_anything_starts() {
    for (args, want) in [
        (
            &["--core-branch-ratio", "1-3:0"][..],
            "--core-branch-ratio '1-3:0': the ratio must be a number in (0, 100]",
        ),
        (&["-b", "1:101"], "the ratio must be a number in (0, 100]"),
        (&["-b", "x"], "--core-branch-ratio 'x': bad CPU list"),
        (&["--policy-tick-ms", "0"], "bad --policy-tick-ms '0'"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vm_power_mgr"))
            .args(args)
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn a_policy_leaves_a_pcpu_whose_cpufreq_policy_spans_another_vm() {
    // CPUs 6 and 7 one cpufreq policy: vm-b's vCPU 2 is on 6, vm-d's
    // vCPU 0 on 7; scaling 6 would move vm-d's CPU (guest requests on it
    // are NACKed; a guest policy must not do it either)
    let r = rig_on(
        |_| {},
        |env| {
            for cpu in [6, 7] {
                let d = env.sim.sysfs.join(format!("cpu{cpu}/cpufreq"));
                std::fs::write(d.join("related_cpus"), "6 7\n").expect("related_cpus");
                std::fs::write(d.join("affected_cpus"), "6 7\n").expect("affected_cpus");
            }
        },
        &["vm-b", "vm-d"],
    );
    let (_q, mut b) = r.env.attach("vm-b", 0);
    let before = r.env.snapshot(&[6, 7]);
    for level in [wire::WL_HIGH, wire::WL_LOW] {
        ack(&mut b, &workload(level, &[2]));
        let j = r.settle();
        assert_eq!(r.env.snapshot(&[6, 7]), before, "level {level}: {j}");
        assert!(j.contains("shared"), "{j}");
    }
    // the operator allows it: the policy acts
    r.env.ok("set_shared 6 allow");
    ack(&mut b, &workload(wire::WL_HIGH, &[2]));
    let j = r.settle();
    assert_ne!(r.env.snapshot(&[6]), before[..1], "{j}");
}
