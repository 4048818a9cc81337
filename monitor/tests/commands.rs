//! Every CLI command, its messages and its refusals; the control socket;
//! the daemon binary under SIGTERM; the pinning refresher.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Env, T};
use vm_power_monitor::ctl::{self, CtlServer};
use vm_power_monitor::CpuSet;

#[test]
fn vm_commands() {
    let env = Env::new();
    assert!(env
        .err("add_vm nope")
        .contains("Unable to add VM 'nope': VM 'nope' not found"));
    assert_eq!(env.ok("add_vm vm-c"), "Added VM 'vm-c' (INACTIVE, 4 vCPUs)");
    assert!(env.err("add_vm vm-c").contains("VM 'vm-c' already exists"));
    let show = env.ok("show_vm vm-c");
    assert!(show.starts_with("VM: 'vm-c', status = INACTIVE"), "{show}");
    assert!(
        show.contains("  [0]: Physical CPU(s) 0-1, mask 0x3"),
        "{show}"
    );
    assert!(show.contains("Query: disabled"));
    assert!(env.err("show_vm nope").contains("VM 'nope' not found"));
    env.ok("add_vm vm-a");
    let list = env.ok("list_vms");
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.contains("vm-c: INACTIVE, 4 vCPUs, channels 0/0 connected"));

    // rm_vm refuses while channels exist, unless --force
    env.ok("add_channels vm-a 0,2");
    assert!(env
        .err("rm_vm vm-a")
        .contains("Unable to remove VM 'vm-a', there are 2 channels still active"));
    assert_eq!(env.ok("rm_vm vm-a --force"), "Removed VM 'vm-a'");
    assert!(env.err("show_vm vm-a").contains("not found"));
    assert_eq!(env.ok("rm_vm vm-c"), "Removed VM 'vm-c'");
    assert_eq!(env.ok("list_vms"), "no VMs (add one with add_vm <name>)");
    assert_eq!(env.ok("show_channels"), "no channels");
}

#[test]
fn channel_commands() {
    let env = Env::new();
    assert!(env
        .err("add_channels vm-a 0")
        .contains("VM 'vm-a' not found"));
    env.ok("add_vm vm-a");
    assert!(env
        .err("add_channels vm-a all")
        .contains("No channel sockets for VM 'vm-a'"));
    let q: Vec<_> = [0, 2, 5]
        .iter()
        .map(|n| testkit::qemu::Qemu::bind(&env.sim.sockets, "vm-a", *n).expect("bind"))
        .collect();
    // another VM's socket and odd names are not picked up by `all`
    let _other = testkit::qemu::Qemu::bind(&env.sim.sockets, "vm-ab", 1).expect("bind");
    std::fs::write(env.sim.sockets.join("vm-a.x1"), "").expect("file");
    let out = env.ok("add_channels vm-a all");
    assert!(out.ends_with("Added 3 channels for VM 'vm-a'"), "{out}");
    for n in [0, 2, 5] {
        assert!(out.contains(&format!("[{n}]: connected")), "{out}");
    }
    let out = env.ok("add_channels vm-a 2,7");
    assert!(
        out.contains("[2]: channel already exists, skipping 'vm-a.2'"),
        "{out}"
    );
    assert!(out.contains("[7]: waiting for"), "{out}");
    assert!(out.ends_with("Added 1 channels for VM 'vm-a'"), "{out}");
    assert!(env
        .err("add_channels vm-a 3-1")
        .contains("bad channel list"));
    assert!(env.err("add_channels vm-a x").contains("bad channel list"));
    let show = env.ok("show_vm vm-a");
    assert!(show.contains("Channels 4"), "{show}");
    assert!(show.contains("vm-a.5, status = CONNECTED"), "{show}");
    assert!(
        show.contains("vm-a.7, status = DISCONNECTED (socket not present)"),
        "{show}"
    );
    assert_eq!(
        env.ok("set_channel_status vm-a 0,5 disabled"),
        "Updated status of 2 channels for VM 'vm-a'"
    );
    let chans = env.ok("show_channels");
    assert!(
        chans.contains("vm-a.0: ") && chans.contains("status = DISABLED"),
        "{chans}"
    );
    assert_eq!(
        env.ok("set_channel_status vm-a all enabled"),
        "Updated status of 4 channels for VM 'vm-a'"
    );
    assert!(!env.ok("show_channels").contains("DISABLED"));
    drop(q);
}

#[test]
fn host_cpu_commands() {
    let env = Env::new();
    let cur: u32 = env.attr(3, "scaling_cur_freq").parse().expect("kHz");
    // not managed yet: the kernel's current value, nothing initialised
    assert_eq!(
        env.ok("show_cpu_freq 3"),
        format!("Core 3 frequency: {cur}")
    );
    assert_eq!(env.attr(3, "scaling_governor"), "schedutil");
    assert!(env
        .ok("set_cpu_freq 3 min")
        .contains("Core 3: min (changed)"));
    assert_eq!(env.ok("show_cpu_freq 3"), "Core 3 frequency: 1200000");
    assert!(env
        .ok("set_cpu_freq 3 down")
        .contains("Core 3: down (unchanged)"));
    assert!(env.ok("set_cpu_freq 3 up").contains("(changed)"));
    assert_eq!(env.setspeed(3), 1_300_000);
    env.ok("set_cpu_freq 3 max");
    env.ok("set_cpu_freq 3 enable_turbo");
    env.ok("set_cpu_freq 3 disable_turbo");

    let out = env.ok("set_cpu_freq_mask 0x30 min");
    assert_eq!(out, "Core 4: min (changed)\nCore 5: min (changed)");
    assert_eq!(
        env.ok("show_cpu_freq_mask 0x30"),
        "Core 4: 1200000\nCore 5: 1200000"
    );
    // CPUs that do not exist, bad numbers, bad verbs
    assert!(env
        .err("show_cpu_freq 99")
        .contains("Unable to get frequency for core 99: cpu 99 does not exist"));
    assert!(env
        .err("set_cpu_freq 99 up")
        .contains("Error scaling core(99) 'up': cpu 99 does not exist"));
    let mixed = env.run("set_cpu_freq_mask 0x300 max");
    assert!(!mixed.ok && mixed.text.contains("core(8)") && mixed.text.contains("core(9)"));
    assert!(env.err("show_cpu_freq -1").contains("bad core '-1'"));
    assert!(env.err("show_cpu_freq 1x").contains("bad core"));
    assert!(env.err("set_cpu_freq 1 fast").contains("bad verb 'fast'"));
    assert!(env.err("show_cpu_freq_mask zz").contains("bad mask"));
    assert!(env.err("show_cpu_freq_mask 0x0").contains("selects no CPU"));
    assert!(env
        .err("show_cpu_freq")
        .contains("usage: show_cpu_freq <core>"));
}

#[test]
fn pinning_and_query_commands() {
    let env = Env::new();
    env.ok("add_vm vm-b");
    assert!(env.err("set_query vm-x enable").contains("not found"));
    assert!(env.err("set_query vm-b maybe").contains("bad value"));
    assert_eq!(
        env.ok("set_query vm-b enable"),
        "Queries enabled for VM 'vm-b'"
    );
    assert!(env.ok("show_vm vm-b").contains("Query: enabled"));
    assert!(env
        .err("set_pcpu vm-b 0 9")
        .contains("CPU 9 does not exist (host has 8)"));
    assert!(env
        .err("set_pcpu vm-b 7 1")
        .contains("Unable to pin vCPU(7)"));
    assert!(env.err("set_pcpu vm-b x 1").contains("bad vCPU 'x'"));
    assert!(env.err("set_pcpu nope 0 1").contains("not found"));
    // the test driver has no persistent config: --config is refused there
    assert!(env
        .err("set_pcpu vm-b 0 1 --config")
        .contains("Unable to pin"));
    env.ok("set_pcpu vm-b 0 1");
    assert!(env
        .ok("show_vm vm-b")
        .contains("[0]: Physical CPU(s) 1, mask 0x2"));
    env.ok("set_pcpu_mask vm-b 0 0x3");
    assert!(env
        .ok("show_vm vm-b")
        .contains("[0]: Physical CPU(s) 0-1, mask 0x3"));
    assert!(env
        .err("set_pcpu_mask vm-b 0 0x100")
        .contains("CPU 8 does not exist"));
    // a shut-off VM cannot be pinned live
    assert!(env
        .err("set_pcpu vm-c 0 1")
        .contains("VM 'vm-c' is not active"));
    assert!(env.ok("refresh vm-b").contains("VM 'vm-b': unchanged"));
}

#[test]
fn smt_warning_names_the_other_vm() {
    let env = Env::new();
    env.ok("add_vm vm-b");
    env.ok("add_vm vm-d");
    let b = env.ok("show_vm vm-b");
    assert!(
        b.contains("warning: pCPU 6 shares its SMT core with CPU 7, which this VM does not own, used by VM 'vm-d'"),
        "{b}"
    );
    assert!(!b.contains("pCPU 4 shares"), "4 and 5 are both vm-b's");
    let a = {
        env.ok("add_vm vm-a");
        env.ok("show_vm vm-a")
    };
    assert!(!a.contains("warning"), "vm-a owns cores 0-1 entirely: {a}");
    assert!(env
        .ok("show_vm vm-d")
        .contains("pCPU 7 shares its SMT core with CPU 6"));
}

#[test]
fn help_and_unknown_commands() {
    let env = Env::new();
    let help = env.ok("help");
    for c in vm_power_monitor::controller::COMMANDS {
        assert!(help.contains(c.name), "{} missing from help", c.name);
    }
    assert!(env
        .err("frobnicate")
        .contains("unknown command 'frobnicate' (try help)"));
    assert!(env.err("add_vm").contains("usage: add_vm <vm>"));
    assert!(env.err("rm_vm a b").contains("usage: rm_vm"));
    assert_eq!(env.ok(""), "");
    assert_eq!(env.ok("# a comment"), "");
}

#[test]
fn tab_completion_candidates() {
    let env = Env::new();
    env.ok("add_vm vm-a");
    let c = |words: &[&str], i| vm_power_monitor::cli::candidates(&env.ctl, words, i);
    assert!(c(&[], 0).contains(&"set_channel_status".to_string()));
    assert_eq!(c(&["show_vm"], 1), vec!["vm-a".to_string()]);
    assert_eq!(
        c(&["set_channel_status", "vm-a", "all"], 3),
        vec!["enabled", "disabled"]
    );
    assert!(c(&["set_cpu_freq", "1"], 2).contains(&"enable_turbo".to_string()));
}

#[test]
fn control_socket_runs_commands_and_reports_failure() {
    let env = Env::new();
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("ctl.sock");
    let server = CtlServer::bind(&path).expect("bind");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // a second monitor cannot take the same socket
    let t = server.spawn(env.ctl.clone()).expect("serve");
    assert!(CtlServer::bind(&path).is_err());
    let out = ctl::call(&path, "add_vm vm-a").expect("call");
    assert!(out.ok, "{}", out.text);
    let out = ctl::call(&path, "show_vm vm-a").expect("call");
    assert!(out.ok && out.text.contains("Virtual CPU(s): 3"));
    let out = ctl::call(&path, "show_vm nope").expect("call");
    assert!(!out.ok && out.text.contains("not found"));
    let out = ctl::call(&path, "quit").expect("call");
    assert!(out.ok);
    t.join().expect("server ends after quit");
    assert!(!path.exists(), "socket removed");
}

#[test]
fn refresher_follows_external_repinning() {
    let env = Env::new();
    env.ok("add_vm vm-b");
    let (_tx, _t) = env
        .ctl
        .spawn_refresher(Duration::from_millis(20))
        .expect("refresher");
    // someone else re-pins behind the monitor's back (as `virsh vcpupin`
    // would; the test driver's state lives in this connection)
    env.hv
        .lock()
        .expect("hv")
        .pin("vm-b", 2, &CpuSet::single(7), false)
        .expect("pin");
    assert!(env.ok("show_vm vm-b").contains("[2]: Physical CPU(s) 6"));
    let deadline = Instant::now() + T;
    loop {
        let show = env.ok("show_vm vm-b");
        if show.contains("[2]: Physical CPU(s) 7") {
            break;
        }
        assert!(Instant::now() < deadline, "{show}");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(CpuSet::parse_list("7").expect("set").to_mask(), "0x80");
}

#[test]
fn daemon_binary_ctl_and_sigterm_restore() {
    let mut d = common::Daemon::start("set_cpu_freq 2 min");
    let out = d.ctl(&["show_cpu_freq", "2"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Core 2 frequency: 1200000"
    );
    let out = d.ctl(&["show_vm", "vm-a"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("VM: 'vm-a', status = ACTIVE"));
    let out = d.ctl(&["show_vm", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
    assert_eq!(d.attr(2, "scaling_governor"), "userspace");

    // SIGTERM: governors back, clean exit
    let status = d.terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(d.attr(2, "scaling_governor"), "schedutil");
    // nobody listening any more, socket file gone
    assert!(!d.sock.exists(), "control socket removed at exit");
    let out = d.ctl(&["list_vms"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn simulate_demo_shows_the_host_cpu_moving() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_vm_power_mgr"))
        .args(["--simulate", "--demo", "-q", "--sim-dir"])
        .arg(dir.path())
        .output()
        .expect("demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let freqs: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Core 0 frequency:"))
        .collect();
    assert_eq!(freqs.len(), 3, "{text}");
    assert_ne!(
        freqs[1], freqs[2],
        "the guest's requests moved CPU 0: {text}"
    );
    assert!(
        text.contains("guest> vm-b vCPU 3: ScaleMin -> NACK"),
        "{text}"
    );
    assert!(
        text.contains("after quit: cpu0 governor schedutil"),
        "{text}"
    );
    // the energy step: 12 J, busy ticks 80 on vm-a's pCPUs, 20 on vm-b's
    assert!(
        text.contains("vm-a: Energy: 9.600 J since added, "),
        "{text}"
    );
    assert!(
        text.contains("vm-b: Energy: 2.400 J since added, "),
        "{text}"
    );
    assert!(
        text.contains("vm-d: Energy: 0.000 J since added, 0.00 W"),
        "{text}"
    );
}
