//! rte-pm on generated hosts, every subcommand.
//!
//! `rte-pm` on generated hosts: every subcommand in both output modes,
//! every write path with its read-back, refusals, BIOS-disabled turbo,
//! C-state limits, the start window (timeout and SIGINT) and exit codes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rte_pm::stats::ticks_to_ms;
use rte_pm::{run, Ctx};
use serde_json::Value;
use testkit::sysfs::{write_proc_stat, FakeSysfs, Flavour, ProcStatCpu};
use testkit::tree::Rejecting;

struct Host {
    dir: tempfile::TempDir,
    ctx: Ctx,
    fake: FakeSysfs,
}

impl Host {
    fn new(flavour: Flavour, ncpus: u32, tweak: impl FnOnce(&mut FakeSysfs)) -> Self {
        let mut fake = FakeSysfs::new(flavour, ncpus);
        fake.idle_states = 4;
        fake.cpufreq_stats = true;
        fake.governor_tunables = true;
        tweak(&mut fake);
        let dir = tempfile::tempdir().expect("tempdir");
        fake.create(&dir.path().join("cpu")).expect("tree");
        let stat = dir.path().join("stat");
        write_proc_stat(&stat, &vec![ProcStatCpu::default(); ncpus as usize]).expect("stat");
        let ctx = Ctx::new(dir.path().join("cpu"), stat);
        Self { dir, ctx, fake }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join("cpu").join(rel)
    }

    fn read(&self, rel: &str) -> String {
        let s = std::fs::read_to_string(self.path(rel)).expect("read");
        s.lines().next().unwrap_or("").trim().to_string()
    }

    fn write(&self, rel: &str, v: &str) {
        std::fs::write(self.path(rel), format!("{v}\n")).expect("write");
    }

    /// Runs in this process: (status, stdout, stderr).
    fn run(&self, line: &str) -> (i32, String, String) {
        let argv: Vec<String> = line.split_whitespace().map(String::from).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&self.ctx, &argv, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).expect("utf8"),
            String::from_utf8(err).expect("utf8"),
        )
    }

    fn json(&self, line: &str) -> (i32, Value) {
        let (code, out, err) = self.run(&format!("{line} --json"));
        let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{line}: {e}\n{out}\n{err}"));
        (code, v)
    }

    /// The binary, with this host's paths.
    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rte-pm"));
        c.env("RTE_POWER_SYSFS_CPU_DIR", self.dir.path().join("cpu"))
            .env("RTE_POWER_PROC_STAT", self.dir.path().join("stat"))
            .env("RTE_POWER_LOG", "off");
        c
    }
}

/// Replaces a file with a link to /dev/null: writes succeed, nothing
/// sticks, it reads back empty. It stands for an attribute whose value the
/// kernel silently replaced (clamped) -- the case read-back exists for.
fn swallow(path: &Path) {
    std::fs::remove_file(path).expect("remove");
    std::os::unix::fs::symlink("/dev/null", path).expect("symlink");
}

#[test]
fn cpufreq_states_from_kernel_stats() {
    let h = Host::new(Flavour::Acpi, 2, |_| {});
    let table = h.fake.acpi_table();
    let (code, out, err) = h.run("get-cpufreq-states 1");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("cpu id               : 1\n"), "{out}");
    assert!(out.contains(&format!("total P-states       : {}\n", table.len())));
    assert!(out.contains(&format!("usable P-states      : {}\n", table.len())));
    assert!(out.contains("current frequency    : 2000 MHz\n"), "{out}");
    // the current P-state carries the star, and only it
    let cur = table
        .iter()
        .position(|&f| f == 2_000_000)
        .expect("in table");
    assert!(out.contains(&format!("*P{cur} ")), "{out}");
    assert_eq!(out.matches('*').count(), 1);
    let p3 = FakeSysfs::stats_ticks(1, 3);
    assert!(
        out.contains(&format!("residency  [{:20} ms]", ticks_to_ms(p3))),
        "{out}"
    );

    let (code, v) = h.json("get-cpufreq-states");
    assert_eq!(code, 0);
    let cpus = v["cpus"].as_array().expect("cpus");
    assert_eq!(cpus.len(), 2);
    let c1 = &cpus[1];
    assert_eq!(c1["source"], "kernel");
    assert_eq!(c1["current_index"], cur);
    let states = c1["states"].as_array().expect("states");
    assert_eq!(states.len(), table.len());
    for (i, s) in states.iter().enumerate() {
        assert_eq!(s["freq_khz"], table[i]);
        assert_eq!(s["residency_ms"], ticks_to_ms(FakeSysfs::stats_ticks(1, i)));
        let into: u64 = (0..table.len()).map(|k| FakeSysfs::stats_trans(k, i)).sum();
        assert_eq!(s["transitions"], into);
    }
    // a narrower policy leaves fewer usable P-states
    h.write("cpu0/cpufreq/scaling_max_freq", "2000000");
    let (_, v) = h.json("get-cpufreq-states 0");
    let usable = table.iter().filter(|&&f| f <= 2_000_000).count();
    assert_eq!(v["cpus"][0]["usable"], usable);
}

#[test]
fn cpufreq_states_from_the_library() {
    // a process that manages lcores renders the library's own statistics
    // in the same layout (the host monitor does this for its CPUs)
    let h = Host::new(Flavour::Pstate, 2, |f| f.cpufreq_stats = false);
    let power = rte_power::Power::new(rte_power::Config::with_sysfs(h.path("")));
    let l = power.init(1).expect("init");
    l.set_index(3).expect("set");
    l.set_index(5).expect("set");
    let st = l.stats().expect("stats");
    let r = rte_pm::stats::library_report(l.cpu(), Some("intel_pstate".into()), &st);
    assert_eq!(r.source, rte_pm::stats::PstateSource::Library);
    assert_eq!((r.current_index, r.total_transitions), (Some(5), Some(2)));
    let text = rte_pm::render_pstates(&[r]);
    assert!(text.contains("cpu id               : 1\n"), "{text}");
    assert!(text.contains("statistics source    : rte_power library (since lcore init)"));
    assert!(text.contains("total transitions    : 2\n"));
    assert!(text.contains("*P5 "), "{text}");
    assert_eq!(text.matches("residency  [").count(), st.freqs_khz.len());
    power.exit(1).expect("exit");
}

#[test]
fn cpufreq_states_without_kernel_stats() {
    let h = Host::new(Flavour::Pstate, 1, |_| {});
    let (code, out, _) = h.run("get-cpufreq-states");
    assert_eq!(code, 0);
    assert!(out.contains("statistics source    : none"), "{out}");
    assert!(out.contains("try 'rte-pm start'"), "{out}");
    let (_, v) = h.json("get-cpufreq-states 0");
    assert_eq!(v["cpus"][0]["source"], "none");
    assert_eq!(v["cpus"][0]["current_khz"], 1_800_000);
    // a CPU without cpufreq is a failed CPU
    let g = Host::new(Flavour::None, 1, |_| {});
    let (code, _, err) = g.run("get-cpufreq-states");
    assert_eq!(code, 1);
    assert!(
        err.contains("[CPU0] failed to get P-state statistics (2 - "),
        "{err}"
    );
}

#[test]
fn cpufreq_para() {
    let h = Host::new(Flavour::Acpi, 2, |f| f.governor = Some("ondemand".into()));
    let (code, out, _) = h.run("get-cpufreq-para 0");
    assert_eq!(code, 0);
    for want in [
        "affected_cpus        : 0\n",
        "cpuinfo frequency    : max [2601000 kHz] min [1200000 kHz] cur [unknown]\n",
        "scaling_driver       : acpi-cpufreq\n",
        "current_governor     : ondemand\n",
        "  ondemand specific  :",
        "    sampling_rate    : 10000 us\n",
        "    up_threshold     : 80 %\n",
        "*2000000",
        "scaling frequency    : max [2601000 kHz] min [1200000 kHz] cur [2000000 kHz]\n",
        "turbo mode           : enabled (cpufreq/boost)\n",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    let (_, v) = h.json("get-cpufreq-para");
    let c = &v["cpus"][1];
    assert_eq!(c["scaling_driver"], "acpi-cpufreq");
    assert_eq!(c["governor"], "ondemand");
    assert_eq!(c["governor_tunables"]["up_threshold"], "80");
    assert_eq!(c["governor_tunables_dir"], "cpufreq/ondemand");
    assert_eq!(c["available_frequencies_khz"][0], 2_601_000);
    assert_eq!(c["scaling"]["max_khz"], 2_601_000);
    assert_eq!(c["turbo"]["state"], "enabled");
    assert_eq!(c["available_governors"].as_array().expect("govs").len(), 6);

    // intel_pstate: the inverted knob
    let p = Host::new(Flavour::Pstate, 1, |f| f.turbo = false);
    let (_, v) = p.json("get-cpufreq-para");
    assert_eq!(v["cpus"][0]["turbo"]["state"], "disabled");
    assert_eq!(v["cpus"][0]["turbo"]["knob"], "intel_pstate/no_turbo");
}

#[test]
fn governor_writes_and_refusals() {
    let h = Host::new(Flavour::Acpi, 2, |_| {});
    let (code, out, err) = h.run("set-scaling-governor 1 ondemand");
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(
        out.contains("CPU1: cpu1/cpufreq/scaling_governor = ondemand"),
        "{out}"
    );
    assert_eq!(h.read("cpu1/cpufreq/scaling_governor"), "ondemand");
    assert_eq!(h.read("cpu0/cpufreq/scaling_governor"), "schedutil");

    // a name the CPU does not list is refused before any write
    let (code, _, err) = h.run("set-scaling-governor performanc");
    assert_eq!(code, 1);
    assert!(
        err.contains("[CPU0] failed to set scaling governor: governor \"performanc\" is not available on CPU0 (available: conservative ondemand userspace powersave performance schedutil)"),
        "{err}"
    );
    assert_eq!(h.read("cpu0/cpufreq/scaling_governor"), "schedutil");
    let (code, v) = h.json("set-scaling-governor 0 bogus");
    assert_eq!(code, 1);
    assert_eq!(v["ok"], false);
    assert_eq!(v["results"][0]["status"], "refused");

    // all CPUs, JSON, read back
    let (code, v) = h.json("set-scaling-governor all userspace");
    assert_eq!(code, 0);
    assert_eq!(v["ok"], true);
    for r in v["results"].as_array().expect("results") {
        assert_eq!(r["status"], "ok");
        assert_eq!(r["read_back"], "userspace");
    }
    // the kernel refuses the write (EPERM): reported with errno
    let rej = Rejecting::install(&h.path("cpu1/cpufreq/scaling_governor"));
    rej.reject();
    let (code, _, err) = h.run("set-scaling-governor 1 performance");
    assert_eq!(code, 1);
    assert!(
        err.contains("[CPU1] failed to set scaling governor (1 - Operation not permitted"),
        "{err}"
    );
}

#[test]
fn frequency_writes_with_read_back() {
    let h = Host::new(Flavour::Acpi, 2, |_| {});
    // setspeed needs the userspace governor
    let (code, _, err) = h.run("set-scaling-speed 0 1500MHz");
    assert_eq!(code, 1);
    assert!(err.contains("needs 'userspace'"), "{err}");
    assert_eq!(h.read("cpu0/cpufreq/scaling_setspeed"), "2000000");
    h.run("set-scaling-governor 0 userspace");
    let (code, v) = h.json("set-scaling-speed 0 1500MHz");
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["results"][0]["read_back"], "1500000");
    assert_eq!(v["results"][0]["unit"], "kHz");
    assert_eq!(h.read("cpu0/cpufreq/scaling_setspeed"), "1500000");

    let (code, out, _) = h.run("set-scaling-maxfreq 2.2GHz");
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("CPU1: cpu1/cpufreq/scaling_max_freq = 2200000 kHz"));
    assert_eq!(h.read("cpu1/cpufreq/scaling_max_freq"), "2200000");
    let (code, v) = h.json("set-scaling-minfreq 1 1400000");
    assert_eq!((code, v["ok"].clone()), (0, Value::Bool(true)));
    assert_eq!(h.read("cpu1/cpufreq/scaling_min_freq"), "1400000");
    assert_eq!(h.read("cpu0/cpufreq/scaling_min_freq"), "1200000");

    // a value that does not stick is a mismatch and a failure
    swallow(&h.path("cpu1/cpufreq/scaling_max_freq"));
    let (code, out, err) = h.run("set-scaling-maxfreq 5000000");
    assert_eq!(code, 1);
    assert!(out.contains("CPU0: cpu0/cpufreq/scaling_max_freq = 5000000 kHz"));
    assert!(
        err.contains("[CPU1] set scaling max frequency: wrote 5000000 kHz to cpu1/cpufreq/scaling_max_freq, it reads back"),
        "{err}"
    );
    let (code, v) = h.json("set-scaling-maxfreq 1 5000000");
    assert_eq!(code, 1);
    assert_eq!(v["results"][0]["status"], "mismatch");
    // a refused write
    let rej = Rejecting::install(&h.path("cpu0/cpufreq/scaling_min_freq"));
    rej.reject();
    let (code, v) = h.json("set-scaling-minfreq 0 1300000");
    assert_eq!(code, 1);
    assert_eq!(v["results"][0]["status"], "failed");
    assert_eq!(v["results"][0]["errno"], libc::EPERM);
    // bad values are usage errors
    assert_eq!(h.run("set-scaling-maxfreq fast").0, 2);
}

#[test]
fn governor_tunables() {
    let h = Host::new(Flavour::Acpi, 2, |f| f.governor = Some("ondemand".into()));
    let (code, out, _) = h.run("set-sampling-rate 20000");
    assert_eq!(code, 0);
    assert!(
        out.contains("CPU0: cpufreq/ondemand/sampling_rate = 20000 us"),
        "{out}"
    );
    assert!(
        out.contains("CPU1: cpufreq/ondemand/sampling_rate = 20000 us"),
        "{out}"
    );
    assert_eq!(h.read("cpufreq/ondemand/sampling_rate"), "20000");
    let (code, v) = h.json("set-up-threshold 1 95");
    assert_eq!(code, 0);
    assert_eq!(v["results"][0]["unit"], "%");
    assert_eq!(h.read("cpufreq/ondemand/up_threshold"), "95");
    // per-policy tunables win over the global ones
    std::fs::create_dir_all(h.path("cpufreq/policy1/ondemand")).expect("mkdir");
    h.write("cpufreq/policy1/ondemand/up_threshold", "80");
    let (code, _, _) = h.run("set-up-threshold 1 70");
    assert_eq!(code, 0);
    assert_eq!(h.read("cpufreq/policy1/ondemand/up_threshold"), "70");
    assert_eq!(h.read("cpufreq/ondemand/up_threshold"), "95");
    // the conservative governor has them too; performance has none
    h.run("set-scaling-governor 0 conservative");
    assert_eq!(h.run("set-sampling-rate 0 30000").0, 0);
    assert_eq!(h.read("cpufreq/conservative/sampling_rate"), "30000");
    h.run("set-scaling-governor 0 performance");
    let (code, _, err) = h.run("set-up-threshold 0 90");
    assert_eq!(code, 1);
    assert!(
        err.contains("governor \"performance\" has no up_threshold"),
        "{err}"
    );
    // read back after the write
    h.write("cpufreq/policy1/ondemand/sampling_rate", "10000");
    swallow(&h.path("cpufreq/policy1/ondemand/sampling_rate"));
    let (code, v) = h.json("set-sampling-rate 1 40000");
    assert_eq!(code, 1);
    assert_eq!(v["results"][0]["status"], "mismatch");
}

#[test]
fn turbo_knobs_per_driver() {
    // acpi-cpufreq: the global cpufreq/boost, written once
    let h = Host::new(Flavour::Acpi, 2, |_| {});
    let (code, out, _) = h.run("disable-turbo-mode");
    assert_eq!(code, 0);
    assert_eq!(h.read("cpufreq/boost"), "0");
    assert!(out.contains("CPU1: cpufreq/boost = 0"), "{out}");
    let (code, v) = h.json("enable-turbo-mode 0");
    assert_eq!(code, 0);
    assert_eq!(v["results"][0]["file"], "cpufreq/boost");
    assert_eq!(h.read("cpufreq/boost"), "1");
    let (code, v) = h.json("disable-turbo-mode");
    assert_eq!(
        (code, v["command"].clone()),
        (0, "disable-turbo-mode".into())
    );
    assert_eq!(v["results"].as_array().expect("results").len(), 2);
    assert_eq!(v["results"][1]["read_back"], "0");
    assert_eq!(h.read("cpufreq/boost"), "0");

    // intel_pstate: no_turbo, inverted
    let p = Host::new(Flavour::Pstate, 2, |_| {});
    assert_eq!(p.run("disable-turbo-mode").0, 0);
    assert_eq!(p.read("intel_pstate/no_turbo"), "1");
    assert_eq!(p.run("enable-turbo-mode").0, 0);
    assert_eq!(p.read("intel_pstate/no_turbo"), "0");

    // BIOS disabled turbo: the kernel answers EPERM to no_turbo=0
    let b = Host::new(Flavour::Pstate, 2, |f| f.turbo = false);
    let rej = Rejecting::install(&b.path("intel_pstate/no_turbo"));
    rej.reject();
    let (code, _, err) = b.run("enable-turbo-mode");
    assert_eq!(code, 1);
    assert!(
        err.contains("[CPU0] failed to enable turbo mode: turbo disabled by BIOS/firmware (intel_pstate/no_turbo refuses 0: EPERM)"),
        "{err}"
    );
    assert!(err.contains("[CPU1] failed to enable turbo mode: turbo disabled by BIOS"));
    let (_, v) = b.json("enable-turbo-mode 1");
    assert_eq!(v["results"][0]["errno"], libc::EPERM);
    assert!(v["results"][0]["error"]
        .as_str()
        .expect("error")
        .contains("BIOS/firmware"));
    assert_eq!(b.read("intel_pstate/no_turbo"), "1");

    // amd-pstate with per-policy boost files: per CPU
    let a = Host::new(Flavour::AmdPstate, 2, |f| f.policy_boost = true);
    assert_eq!(a.run("disable-turbo-mode 1").0, 0);
    assert_eq!(a.read("cpufreq/policy1/boost"), "0");
    assert_eq!(a.read("cpufreq/policy0/boost"), "1");
    let (_, v) = a.json("get-cpufreq-para 1");
    assert_eq!(v["cpus"][0]["turbo"]["state"], "disabled");
    assert_eq!(v["cpus"][0]["turbo"]["knob"], "cpu1/cpufreq/boost");

    // cppc without any boost file: not supported, a failure
    let c = Host::new(Flavour::Cppc, 1, |_| {});
    let (code, v) = c.json("enable-turbo-mode");
    assert_eq!(code, 1);
    assert_eq!(v["results"][0]["errno"], libc::EOPNOTSUPP);
}

#[test]
fn cpuidle_states_and_limits() {
    let h = Host::new(Flavour::Acpi, 2, |_| {});
    let (code, out, _) = h.run("get-cpuidle-states 1");
    assert_eq!(code, 0);
    assert!(out.contains("cpuidle driver       : intel_idle\n"), "{out}");
    assert!(out.contains("All C-states allowed\n"));
    assert!(out.contains("total C-states       : 4\n"));
    let (usage, time) = FakeSysfs::idle_counters(1, 3);
    assert!(
        out.contains(&format!("C3 (C6)              : transition [{usage:20}]")),
        "{out}"
    );
    assert!(out.contains(&format!("residency  [{:20} ms]", time / 1000)));
    let idle_ms: u64 = (0..4)
        .map(|k| FakeSysfs::idle_counters(1, k).1)
        .sum::<u64>()
        / 1000;
    assert!(out.contains(&format!("idle time(ms)        : {idle_ms}\n")));
    let (_, v) = h.json("get-cpuidle-states");
    assert_eq!(v["driver"], "intel_idle");
    let s3 = &v["cpus"][1]["states"][3];
    assert_eq!(
        (s3["name"].clone(), s3["latency_us"].clone()),
        ("C6".into(), 133.into())
    );
    assert_eq!(s3["usage"], usage);
    assert_eq!(s3["time_us"], time);
    assert!(s3["above"].is_u64() && s3["below"].is_u64() && s3["rejected"].is_u64());

    // limit to state 1 on every CPU
    let (code, out, _) = h.run("set-max-cstate 1");
    assert_eq!(code, 0);
    assert!(out.starts_with("max C-state set to C1\n"), "{out}");
    for c in 0..2 {
        for (k, want) in [(0, "0"), (1, "0"), (2, "1"), (3, "1")] {
            assert_eq!(h.read(&format!("cpu{c}/cpuidle/state{k}/disable")), want);
        }
    }
    let (_, out, _) = h.run("get-cpuidle-states 0");
    assert!(
        out.contains("max C-state          : C1 (C1) and shallower"),
        "{out}"
    );
    assert!(out.contains("DISABLED"));
    // by exit latency: C1E (10 us) allowed, C6 (133 us) not
    let (code, v) = h.json("set-max-cstate --latency-us 10");
    assert_eq!(code, 0);
    assert_eq!(v["cpus"][0]["allowed_states"], serde_json::json!([0, 1, 2]));
    assert_eq!(v["cpus"][0]["changed"], 1);
    assert_eq!(h.read("cpu1/cpuidle/state2/disable"), "0");
    assert_eq!(h.read("cpu1/cpuidle/state3/disable"), "1");
    // one CPU back to unlimited
    assert_eq!(h.run("set-max-cstate 0 unlimited").0, 0);
    assert_eq!(h.read("cpu0/cpuidle/state3/disable"), "0");
    assert_eq!(h.read("cpu1/cpuidle/state3/disable"), "1");
    // a refused disable write (no CAP_SYS_ADMIN: EPERM) fails that CPU
    let rej = Rejecting::install(&h.path("cpu1/cpuidle/state3/disable"));
    rej.reject();
    let (code, v) = h.json("set-max-cstate unlimited");
    assert_eq!(code, 1);
    assert_eq!(v["ok"], false);
    let failed: Vec<&Value> = v["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter(|r| r["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["cpu"], 1);
    // a disable file that keeps nothing fails that CPU, naming the file
    swallow(&h.path("cpu0/cpuidle/state2/disable"));
    let (code, _, err) = h.run("set-max-cstate 0 1");
    assert_eq!(code, 1);
    assert!(
        err.contains("[CPU0] failed to set max C-state")
            && err.contains("cpu0/cpuidle/state2/disable"),
        "{err}"
    );
    // no cpuidle at all
    let n = Host::new(Flavour::Acpi, 1, |f| f.idle_states = 0);
    assert_eq!(n.run("set-max-cstate 1").0, 1);
    let (code, out, _) = n.run("get-cpuidle-states");
    assert_eq!(code, 0);
    assert!(out.contains("total C-states       : 0"));
}

#[test]
fn topology() {
    let h = Host::new(Flavour::Acpi, 8, |f| {
        f.threads_per_core = 2;
        f.cores_per_socket = 2;
    });
    let (code, out, _) = h.run("get-cpu-topology");
    assert_eq!(code, 0);
    assert!(
        out.starts_with("CPU\tcore\tsocket\tnode\tsiblings\n"),
        "{out}"
    );
    assert!(out.contains("CPU5\t 0\t 1\t 1\t 4-5\n"), "{out}");
    assert_eq!(out.lines().count(), 9);
    let (_, v) = h.json("get-cpu-topology 6");
    assert_eq!(
        v["cpus"][0],
        serde_json::json!({"cpu": 6, "core": 1, "socket": 1, "node": 1, "siblings": [6, 7]})
    );
}

#[test]
fn usage_errors_and_exit_codes() {
    let h = Host::new(Flavour::Acpi, 2, |_| {});
    let status = |args: &[&str]| h.command().args(args).output().expect("run rte-pm");
    let o = status(&["get-cpu-topology"]);
    assert_eq!(o.status.code(), Some(0));
    let o = status(&["set-scaling"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("Ambiguous options: set-scaling-governor"));
    let o = status(&["get-cpuidle-states", "7"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("CPU7 does not exist"));
    let o = status(&["set-scaling-governor", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    let o = status(&["help"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("get-cpufreq-states"));
    let o = status(&[]);
    assert_eq!(o.status.code(), Some(2));
    // prefixes work as in xenpm
    let o = status(&["get-cpufreq-p", "0", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["command"], "get-cpufreq-para");
}

/// Waits until the child says the window is open (its first stderr line).
fn wait_started(child: &mut std::process::Child) -> BufReader<std::process::ChildStderr> {
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("read stderr");
    assert!(line.starts_with("Start sampling"), "{line}");
    err
}

#[test]
fn start_window_ends_on_sigint() {
    let h = Host::new(Flavour::Acpi, 2, |_| {});
    let mut child = h
        .command()
        .args(["start", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let _err = wait_started(&mut child);
    // during the window: CPU1 spends 300 ms in C6 over 150 entries and
    // 25 ticks at P0 and 75 at the lowest P-state; /proc/stat says 30% busy
    let (usage, time) = FakeSysfs::idle_counters(1, 3);
    h.write("cpu1/cpuidle/state3/usage", &(usage + 150).to_string());
    h.write("cpu1/cpuidle/state3/time", &(time + 300_000).to_string());
    let table = h.fake.acpi_table();
    let last = table.len() - 1;
    let tis: String = table
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let extra = match i {
                0 => 25,
                i if i == last => 75,
                _ => 0,
            };
            format!("{f} {}\n", FakeSysfs::stats_ticks(1, i) + extra)
        })
        .collect();
    std::fs::write(h.path("cpufreq/policy1/stats/time_in_state"), tis).expect("tis");
    let busy = ProcStatCpu {
        user: 30,
        idle: 70,
        ..Default::default()
    };
    write_proc_stat(&h.dir.path().join("stat"), &[busy, busy]).expect("stat");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["elapsed_ms"].as_f64().expect("elapsed") > 0.0);
    let c1 = &v["cpus"][1];
    let c6 = &c1["cstates"][3];
    assert_eq!(c6["name"], "C6");
    assert_eq!(c6["residency_ms"], 300.0);
    assert_eq!(c6["transitions"], 150);
    assert_eq!(c6["avg_residency_ms"], 2.0);
    assert_eq!(c1["cstates"][1]["transitions"], 0);
    assert_eq!(c1["active_source"], "proc_stat");
    assert!((c1["active_pct"].as_f64().expect("pct") - 30.0).abs() < 1e-9);
    assert_eq!(c1["pstates_source"], "kernel");
    let p0 = &c1["pstates"][0];
    assert_eq!(
        (p0["index"].clone(), p0["freq_khz"].clone()),
        (0.into(), table[0].into())
    );
    assert_eq!(p0["residency_ms"], ticks_to_ms(25) as f64);
    let low = &c1["pstates"][last];
    assert_eq!(low["residency_ms"], ticks_to_ms(75) as f64);
    let avg = (u64::from(table[0]) * 25 + u64::from(table[last]) * 75) as f64 / 100.0;
    assert_eq!(c1["avg_freq_khz"], avg.round() as u64);
    // CPU0 did nothing in the window
    assert_eq!(v["cpus"][0]["cstates"][3]["residency_ms"], 0.0);
}

#[test]
fn start_window_ends_after_the_time_and_samples_without_stats() {
    let h = Host::new(Flavour::Pstate, 1, |_| {});
    let t = std::time::Instant::now();
    let out = h
        .command()
        .args(["start", "0.3", "--interval-ms", "20"])
        .output()
        .expect("run");
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    let ms: f64 = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("Elapsed time (ms): "))
        .and_then(|v| v.parse().ok())
        .expect("elapsed line");
    assert!((300.0..3000.0).contains(&ms), "{ms}");
    assert!(took.as_millis() >= 300);
    assert!(
        text.contains("CPU0:\tResidency(ms)\t\tAvg Res(ms)"),
        "{text}"
    );
    assert!(text.contains("  [1800 MHz]"), "{text}");
    assert!(text.contains("Avg freq        1800000 kHz"), "{text}");
    assert!(
        text.contains("P-states sampled from scaling_cur_freq"),
        "{text}"
    );
    // in process, JSON: the whole window is booked to the sampled frequency
    let (code, v) = h.json("start 0 0.2 --interval-ms 10");
    assert_eq!(code, 0);
    let c = &v["cpus"][0];
    assert_eq!(c["pstates_source"], "sampled");
    assert_eq!(c["pstates"][0]["freq_khz"], 1_800_000);
    assert!(c["pstates"][0]["pct"].as_f64().expect("pct") > 90.0, "{c}");
    assert_eq!(c["avg_freq_khz"], 1_800_000);
}
