//! Governors in the host monitor: ondemand (Xen's algorithm on a generated
//! `/proc/stat`), performance/powersave pinning, guest requests refused
//! outside userspace, the commands through the control socket, and the
//! P-/C-state reports shared with `rte-pm`.

mod common;

use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use common::{Env, T};
use rte_pm::stats::procstat::{self, CpuTime};
use rte_power::wire::{ChannelPacket, Response, Step, CMD_NACK};
use testkit::sim_host::HOST_CPUS;
use testkit::sysfs::{write_proc_stat, ProcStatCpu};
use vm_power_monitor::ctl::{self, CtlServer};
use vm_power_monitor::governor::GovSample;
use vm_power_monitor::ondemand::{self, Decision};

/// Lowest table entry at or above `khz` (Xen's RELATION_L).
fn covering(t: &[u32], khz: u64) -> u32 {
    *t.iter()
        .rev()
        .find(|&&f| u64::from(f) >= khz)
        .expect("an entry covers it")
}

/// Cumulative `/proc/stat` counters of every host CPU, advanced per step.
struct Load {
    path: std::path::PathBuf,
    cpus: Vec<ProcStatCpu>,
}

impl Load {
    fn new(path: &std::path::Path) -> Self {
        let idle = ProcStatCpu {
            idle: 1000,
            ..Default::default()
        };
        let l = Self {
            path: path.to_path_buf(),
            cpus: vec![idle; HOST_CPUS as usize],
        };
        write_proc_stat(&l.path, &l.cpus).expect("write");
        l
    }

    /// `busy` + `idle` ticks more on `cpu`; returns its new counters as
    /// the parser sees them.
    fn advance(&mut self, cpu: u32, busy: u64, idle: u64) -> CpuTime {
        let c = &mut self.cpus[cpu as usize];
        c.user += busy;
        c.idle += idle;
        let now = CpuTime {
            busy: c.user,
            idle: c.idle,
        };
        write_proc_stat(&self.path, &self.cpus).expect("write");
        now
    }
}

/// The pure decision on a load series read back from generated
/// `/proc/stat` files: jump to max above the threshold, proportional step
/// down below the band, nothing inside it.
#[test]
fn decision_function_on_generated_proc_stat_series() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut load = Load::new(&dir.path().join("stat"));
    let mut t = vec![2_601_000u32];
    t.extend((0..15).map(|i| 2_600_000 - i * 100_000));
    let up = 80;
    let mut cur = t.iter().position(|&f| f == 2_000_000).expect("2 GHz") as u32;
    let mut prev = procstat::read_at(&load.path).expect("read")[&3];
    // (busy ticks, idle ticks, expected frequency afterwards)
    let series: &[(u64, u64, u32)] = &[
        (19, 1, 2_601_000), // 95 %: above 80, max
        (15, 5, 2_601_000), // 75 %: inside [70, 80]
        (7, 13, 1_400_000), // 35 %: 35 * 2601000 / 70 = 1300500 -> 1.4 GHz
        (16, 4, 1_400_000), // 80 %: not above 80, not below 70
        (0, 20, 1_200_000), // 0 %: below the table, its lowest entry
        (14, 6, 1_200_000), // 70 %: inside the band
        (17, 3, 2_601_000), // 85 %: max
        (13, 7, 2_500_000), // 65 %: 65 * 2601000 / 70 = 2415214 -> 2.5 GHz
        (0, 0, 2_500_000),  // no time passed: skipped
        (12, 8, 2_200_000), // 60 %: 60 * 2500000 / 70 = 2142857 -> 2.2 GHz
        (20, 0, 2_601_000), // 100 %: max
    ];
    for (n, &(busy, idle, khz)) in series.iter().enumerate() {
        load.advance(3, busy, idle);
        let now = procstat::read_at(&load.path).expect("read")[&3];
        let l = ondemand::load_pct(&prev, &now);
        prev = now;
        let before = t[cur as usize];
        match l.map_or(Decision::Keep, |l| ondemand::decide(l, &t, cur, up)) {
            Decision::Max => cur = 0,
            Decision::Down(i) => {
                assert!(i > cur, "step {n}: down is a lower frequency");
                cur = i
            }
            Decision::Keep => {}
        }
        let after = t[cur as usize];
        // Xen's rule, computed independently of the engine
        let rule = match l {
            None => before,
            Some(l) if l > up => t[0],
            Some(l) if l < up - 10 => covering(&t, u64::from(l) * u64::from(before) / 70),
            Some(_) => before,
        };
        assert_eq!(
            (after, rule),
            (khz, khz),
            "step {n}: load {l:?} at {before} kHz"
        );
    }
}

/// The loop's counters line (governor timer state included).
fn stats(env: &Env) -> String {
    let o = env.ctl.monitor().call(vm_power_monitor::MonCmd::Stats);
    assert!(o.ok);
    o.text
}

/// A monitor whose ondemand samples arrive on a channel.
fn env_with_trace() -> (Env, mpsc::Receiver<GovSample>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let env = Env::with(move |cfg| {
        cfg.gov_trace = Some(Box::new(move |s: &GovSample| {
            let _ = tx.lock().expect("tx").send(s.clone());
        }));
    });
    (env, rx)
}

/// Waits for the first sample of `cpu` that saw `counters`.
#[track_caller]
fn sample_seeing(rx: &mpsc::Receiver<GovSample>, cpu: u32, counters: CpuTime) -> GovSample {
    let deadline = std::time::Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let s = rx
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("no sample of cpu {cpu} saw {counters:?}: {e}"));
        if s.cpu == cpu && s.counters == counters {
            return s;
        }
        assert!(
            s.cpu != cpu || s.load.is_none(),
            "a sample with load before the new counters were seen: {s:?}"
        );
    }
}

#[test]
fn ondemand_through_the_monitor() {
    let (env, rx) = env_with_trace();
    let mut load = Load::new(&env.sim.proc_stat);
    let t = env.table(1);
    assert!(env.ok("show_governor 1").contains("userspace"));
    assert!(env
        .ok("set_sampling_rate 1 10000")
        .contains("sampling_rate 10000 us (used when the governor is ondemand)"));
    env.ok("set_up_threshold 1 80");
    let st = stats(&env);
    assert!(st.contains("ondemand_cpus 0 gov_timer disarmed"), "{st}");
    let out = env.ok("set_scaling_governor 1 ondemand");
    assert!(out.contains("Core 1: governor ondemand"), "{out}");
    assert!(stats(&env).contains("ondemand_cpus 1 gov_timer armed"));
    assert_eq!(env.attr(1, "scaling_governor"), "userspace", "managed");
    let start = env.setspeed(1);

    // (busy, idle, decision, frequency afterwards)
    let mut expect_khz = start;
    let script: &[(u64, u64, &str)] = &[
        (19, 1, "max"),  // 95 %
        (15, 5, "keep"), // 75 %: band [70, 80]
        (16, 4, "keep"), // 80 %: not above
        (7, 13, "down"), // 35 %
        (14, 6, "keep"), // 70 %: band
        (0, 20, "down"), // 0 %
        (17, 3, "max"),  // 85 %
        (13, 7, "down"), // 65 %
    ];
    for (n, &(busy, idle, what)) in script.iter().enumerate() {
        let counters = load.advance(1, busy, idle);
        let s = sample_seeing(&rx, 1, counters);
        let pct = (100 * busy / (busy + idle)) as u32;
        assert_eq!(s.load, Some(pct), "step {n}");
        assert_eq!(s.before_khz, expect_khz, "step {n}");
        expect_khz = match what {
            "max" => t[0],
            "down" => covering(&t, u64::from(pct) * u64::from(expect_khz) / 70),
            _ => expect_khz,
        };
        let kind = match s.decision {
            Decision::Max => "max",
            Decision::Down(_) => "down",
            Decision::Keep => "keep",
        };
        assert_eq!(kind, what, "step {n}: {s:?}");
        assert_eq!(s.after_khz, expect_khz, "step {n}: {s:?}");
        assert_eq!(env.setspeed(1), expect_khz, "step {n}: sysfs");
    }
    assert_eq!(expect_khz, 2_500_000, "65 % of 2601000 / 70 -> 2.5 GHz");
    // other CPUs were never sampled nor touched
    assert_eq!(env.attr(2, "scaling_governor"), "schedutil");

    // a higher threshold moves the band: 85 % is now inside [80, 90]
    env.ok("set_up_threshold 1 90");
    let s = sample_seeing(&rx, 1, load.advance(1, 17, 3));
    assert_eq!((s.decision, s.after_khz), (Decision::Keep, 2_500_000));

    let show = env.ok("show_governor 1");
    assert!(show.contains("current_governor     : ondemand"), "{show}");
    assert!(
        show.contains("sampling_rate    : max [10000000] min [10000] cur [10000] us"),
        "{show}"
    );
    assert!(show.contains("up_threshold     : 90 %"), "{show}");
    assert!(show.contains("last load 85 %"), "{show}");
    assert!(
        show.contains("current frequency    : 2500000 kHz"),
        "{show}"
    );
    // all configured/managed CPUs
    assert!(env.ok("show_governor").contains("cpu id               : 1"));

    // operator scaling is refused outside userspace
    let e = env.err("set_cpu_freq 1 up");
    assert!(
        e.contains(
            "core 1 is under the ondemand governor (set_scaling_governor 1 userspace first)"
        ),
        "{e}"
    );

    // back to userspace: the timer is disarmed, no more samples
    env.ok("set_scaling_governor 1 userspace");
    assert!(stats(&env).contains("ondemand_cpus 0 gov_timer disarmed"));
    while rx.try_recv().is_ok() {}
    load.advance(1, 20, 0);
    assert!(
        rx.recv_timeout(Duration::from_millis(60)).is_err(),
        "no sampling once no CPU is in ondemand"
    );
    assert_eq!(env.setspeed(1), 2_500_000, "userspace keeps the frequency");
    env.ok("set_cpu_freq 1 up");
    assert_eq!(env.setspeed(1), 2_600_000);
}

#[test]
fn ondemand_refusals() {
    let env = Env::new();
    // unknown transition latency (CPUFREQ_ETERNAL)
    let p = env
        .sim
        .sysfs
        .join("cpufreq/policy6/cpuinfo_transition_latency");
    let _ = std::fs::remove_file(&p);
    std::fs::write(&p, "4294967295\n").expect("latency");
    let e = env.err("set_scaling_governor 6 ondemand");
    assert!(
        e.contains("Unable to set governor of core 6 to ondemand"),
        "{e}"
    );
    assert!(e.contains("transition latency unknown"), "{e}");
    assert!(e.contains("(governor unchanged)"), "{e}");
    assert!(env.ok("show_governor 6").contains("userspace"));
    assert_eq!(env.attr(6, "scaling_governor"), "schedutil", "nothing done");
    // the load file has no line for the CPU
    let two = [ProcStatCpu {
        idle: 5,
        ..Default::default()
    }; 2];
    write_proc_stat(&env.sim.proc_stat, &two).expect("write");
    let e = env.err("set_scaling_governor 5 ondemand");
    assert!(e.contains("has no line for cpu5"), "{e}");
    // no file at all
    std::fs::remove_file(&env.sim.proc_stat).expect("rm");
    let e = env.err("set_scaling_governor 0 ondemand");
    assert!(e.contains("proc-stat"), "{e}");
    assert!(stats(&env).contains("gov_timer disarmed"));
}

#[test]
fn performance_and_powersave_pin_max_and_min() {
    let mut env = Env::new();
    let t = env.table(2);
    let out = env.ok("set_scaling_governor 2 performance");
    assert!(out.contains("Core 2: governor performance"), "{out}");
    assert_eq!(env.attr(2, "scaling_governor"), "userspace");
    assert_eq!(env.setspeed(2), t[0], "max = the turbo entry (turbo on)");
    // turbo off: max is the highest non-turbo entry, pinned again
    env.ok("set_cpu_freq 2 disable_turbo");
    assert_eq!(env.setspeed(2), t[1]);
    let e = env.err("set_cpu_freq 2 min");
    assert!(e.contains("under the performance governor"), "{e}");
    assert_eq!(env.setspeed(2), t[1]);

    env.ok("set_scaling_governor 2 powersave");
    assert_eq!(env.setspeed(2), *t.last().expect("min"));
    // enabling turbo moves an acpi CPU to max; powersave pins it back
    env.ok("set_cpu_freq 2 enable_turbo");
    assert_eq!(env.setspeed(2), *t.last().expect("min"));
    assert!(env
        .ok("set_scaling_governor 2 powersave")
        .contains("(unchanged)"));
    assert!(env.ok("show_governor 2").contains("powersave (pinned"));

    // userspace: the operator decides again
    env.ok("set_scaling_governor 2 userspace");
    env.ok("set_cpu_freq 2 up");
    assert_eq!(env.setspeed(2), t[t.len() - 2]);

    // at quit, governors are engine state: the kernel's own comes back
    env.ok("set_scaling_governor 3 performance");
    env.quit();
    for c in [2, 3] {
        assert_eq!(env.attr(c, "scaling_governor"), "schedutil");
        assert_eq!(env.attr(c, "scaling_max_freq"), t[0].to_string());
        assert_eq!(env.attr(c, "scaling_min_freq"), "1200000");
    }
}

#[test]
fn guest_requests_nacked_unless_userspace() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    let (_q0, mut g0) = env.attach("vm-a", 0);
    let t = env.table(0);
    env.ok("set_scaling_governor 0 powersave");
    let low = *t.last().expect("min");
    assert_eq!(env.setspeed(0), low);
    let before = env.snapshot(&[0]);
    let p = ChannelPacket::cpu_power(0, Step::Up);
    g0.send(&p).expect("send");
    let r = g0.recv_reply(T).expect("reply");
    assert_eq!(r.command, CMD_NACK, "{r:?}");
    assert_eq!(r, p.reply(Response::Nack));
    assert_eq!(env.snapshot(&[0]), before, "nothing written");
    env.assert_log(
        "VM 'vm-a' channel 0: refused CPU_POWER(vCPU 0): CPU 0 is under the powersave governor; \
         guest requests are served only under userspace",
    );
    // turbo requests too
    let p = ChannelPacket::cpu_power(0, Step::EnableTurbo);
    g0.send(&p).expect("send");
    assert_eq!(g0.recv_reply(T).expect("reply").command, CMD_NACK);

    // back to userspace: ACK and the step is taken from the pinned minimum
    env.ok("set_scaling_governor 0 userspace");
    let p = ChannelPacket::cpu_power(0, Step::Up);
    g0.send(&p).expect("send");
    assert_eq!(g0.recv_reply(T).expect("reply"), p.reply(Response::Ack));
    assert_eq!(env.setspeed(0), t[t.len() - 2]);

    // vCPU 2 runs on pCPUs 2-3: one CPU under performance refuses the
    // whole request, and the other CPU is not written either
    let (_q2, mut g2) = env.attach("vm-a", 2);
    env.ok("set_scaling_governor 3 performance");
    let before = env.snapshot(&[2, 3]);
    let p = ChannelPacket::cpu_power(2, Step::Down);
    g2.send(&p).expect("send");
    assert_eq!(g2.recv_reply(T).expect("reply").command, CMD_NACK);
    assert_eq!(env.snapshot(&[2, 3]), before, "nothing written on 2 or 3");
    env.assert_log("refused CPU_POWER(vCPU 2): CPU 3 is under the performance governor");
    env.ok("set_scaling_governor 3 userspace");
    g2.send(&p).expect("send");
    assert_eq!(g2.recv_reply(T).expect("reply"), p.reply(Response::Ack));
    let show = env.ok("show_vm vm-a");
    assert!(show.contains("Requests: 2 accepted, 3 refused"), "{show}");
}

#[test]
fn invalid_governors_and_tunables_are_refused() {
    let env = Env::new();
    let e = env.err("set_scaling_governor 0 schedutil");
    assert_eq!(
        e,
        "unknown governor 'schedutil': expected ondemand, performance, powersave or userspace"
    );
    assert!(env
        .err("set_scaling_governor 0 Performance")
        .contains("unknown governor"));
    assert!(env
        .err("set_scaling_governor 0")
        .contains("usage: set_scaling_governor <core> ondemand|performance|powersave|userspace"));
    assert!(env
        .err("set_scaling_governor x performance")
        .contains("bad core 'x'"));
    assert_eq!(
        env.err("set_scaling_governor 99 performance"),
        "core 99 does not exist"
    );
    assert_eq!(
        env.err("set_up_threshold 0 10"),
        "up_threshold 10 % out of range: allowed 11..100 %"
    );
    assert!(env.err("set_up_threshold 0 101").contains("out of range"));
    assert!(env
        .err("set_up_threshold 0 -5")
        .contains("bad up_threshold (%) '-5'"));
    assert_eq!(
        env.err("set_sampling_rate 0 9999"),
        "sampling_rate 9999 us out of range for core 0: allowed 10000..10000000 us (default 20000 us)"
    );
    assert!(env
        .err("set_sampling_rate 0 10000001")
        .contains("out of range"));
    assert!(env
        .err("set_sampling_rate 0 1ms")
        .contains("bad sampling_rate"));
    assert!(env
        .err("show_governor 0 1")
        .contains("usage: show_governor [<core>]"));
    // nothing was configured by the refused commands
    let show = env.ok("show_governor 0");
    assert!(show.contains("cur [20000] us") && show.contains("up_threshold     : 80 %"));
    assert!(show.contains("managed              : no"), "{show}");
    assert!(env
        .ok("show_governor")
        .contains("no host CPU under management"));
    assert_eq!(env.attr(0, "scaling_governor"), "schedutil");
    // completion offers the governors
    let c = vm_power_monitor::cli::candidates(&env.ctl, &["set_scaling_governor", "0"], 2);
    assert_eq!(c, ["ondemand", "performance", "powersave", "userspace"]);
}

#[test]
fn governor_commands_through_the_control_socket() {
    let mut env = Env::new();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("ctl.sock");
    let server = CtlServer::bind(&path).expect("bind");
    let th = server.spawn(env.ctl.clone()).expect("serve");
    let call = |line: &str| ctl::call(&path, line).expect("call");
    let t = env.table(4);
    let o = call("set_scaling_governor 4 performance");
    assert!(o.ok, "{}", o.text);
    assert_eq!(env.setspeed(4), t[0]);
    let o = call("show_governor 4");
    assert!(o.ok && o.text.contains("current_governor     : performance"));
    let o = call("set_sampling_rate 4 40000");
    assert!(o.ok, "{}", o.text);
    let o = call("set_up_threshold 4 95");
    assert!(o.ok, "{}", o.text);
    let o = call("show_governor 4");
    assert!(o.text.contains("cur [40000] us") && o.text.contains(": 95 %"));
    let o = call("set_scaling_governor 4 turbo");
    assert!(!o.ok && o.text.starts_with("unknown governor 'turbo'"));
    let o = call("set_up_threshold 4 5");
    assert!(!o.ok && o.text.contains("out of range"));
    let o = call("set_scaling_governor 4 powersave");
    assert!(o.ok);
    assert_eq!(env.setspeed(4), *t.last().expect("min"));
    let o = call("show_cpuidle_states 4");
    assert!(
        o.ok && o.text.contains("total C-states       : 4"),
        "{}",
        o.text
    );
    let o = call("quit");
    assert!(o.ok);
    th.join().expect("server ends");
    env.join();
    assert_eq!(env.attr(4, "scaling_governor"), "schedutil");
}

fn rte_pm(env: &Env, args: &[&str]) -> String {
    let ctx = rte_pm::Ctx::new(&env.sim.sysfs, &env.sim.proc_stat);
    let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let rc = rte_pm::run(&ctx, &argv, &mut out, &mut err);
    assert_eq!(rc, 0, "{}", String::from_utf8_lossy(&err));
    String::from_utf8(out).expect("utf8").trim_end().to_string()
}

#[test]
fn state_reports_match_rte_pm() {
    let env = Env::new();
    // a CPU the monitor does not drive: exactly rte-pm's report
    let want = rte_pm(&env, &["get-cpufreq-states", "5"]);
    assert!(want.contains("statistics source    : kernel"), "{want}");
    assert_eq!(env.ok("show_cpu_freq_states 5"), want);
    let want = rte_pm(&env, &["get-cpuidle-states", "5"]);
    assert!(want.contains("C3 (C6)"), "{want}");
    assert_eq!(env.ok("show_cpuidle_states 5"), want);

    // a managed CPU: rte-pm's report, then the library's own counters
    env.ok("set_cpu_freq 5 min");
    let want = rte_pm(&env, &["get-cpufreq-states", "5"]);
    let got = env.ok("show_cpu_freq_states 5");
    assert!(got.starts_with(&want), "{got}\n--- vs ---\n{want}");
    let lib = &got[want.len()..];
    assert!(
        lib.contains("statistics source    : rte_power library"),
        "{lib}"
    );
    assert!(lib.contains("total transitions    : 1"), "{lib}");
    assert!(lib.contains("*P15"), "current = the minimum: {lib}");
    assert_eq!(
        env.ok("show_cpuidle_states 5"),
        rte_pm(&env, &["get-cpuidle-states", "5"])
    );
    assert_eq!(env.err("show_cpu_freq_states 42"), "core 42 does not exist");
    assert!(env
        .err("show_cpuidle_states")
        .contains("usage: show_cpuidle_states <core>"));
    // and the tool is in the help
    let help = env.ok("help");
    for c in [
        "set_scaling_governor",
        "set_sampling_rate",
        "set_up_threshold",
        "show_governor",
        "show_cpu_freq_states",
        "show_cpuidle_states",
    ] {
        assert!(help.contains(c), "{c}");
    }
}

/// The daemon binary: `ctl` governor commands and their exit status; the
/// kernel governor back after SIGTERM.
#[test]
fn daemon_ctl_governors_and_restore() {
    let mut d = common::Daemon::start("set_scaling_governor 3 ondemand");
    let out = d.ctl(&["show_governor", "3"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("current_governor     : ondemand"), "{text}");
    let out = d.ctl(&["set_scaling_governor", "3", "performance"]);
    assert!(out.status.success());
    assert_eq!(d.attr(3, "scaling_setspeed"), "2601000");
    let out = d.ctl(&["set_scaling_governor", "3", "fast"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown governor 'fast'"));
    assert!(d.terminate().success());
    assert_eq!(d.attr(3, "scaling_governor"), "schedutil");
}
