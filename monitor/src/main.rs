//! `vm_power_mgr`: the host VM power monitor.
//!
//! ```text
//! vm_power_mgr [options]               interactive CLI (vmpower> prompt)
//! vm_power_mgr --daemon [options]      no CLI, control socket (systemd)
//! vm_power_mgr --simulate [--demo]     generated sysfs + libvirt test driver
//! vm_power_mgr ctl [--socket P] [--json] CMD..  run a command on a running monitor
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rte_power::log::Level;
use rte_power::sysfs::SysfsRoot;
use testkit::sim_host::{guest_session, GuestOp, SimHost};
use vm_power_monitor::ctl::{self, CtlServer, DEFAULT_CTL_SOCKET};
use vm_power_monitor::libvirt::{Libvirt, DEFAULT_URI};
use vm_power_monitor::{cli, sys, Controller, Hypervisor, Monitor, MonitorConfig};

const USAGE: &str = "\
usage: vm_power_mgr [options]            interactive CLI (vmpower> prompt)
       vm_power_mgr --daemon [options]   no CLI; serve the control socket
       vm_power_mgr --simulate [--demo] [--sim-dir DIR] [options]
       vm_power_mgr ctl [--socket PATH] [--json] <command...>
                       (--json: show_vm and show_policies answer in JSON)

options:
  --uri URI            libvirt URI (default qemu:///system)
  --socket-dir DIR     channel sockets <DIR>/<vm>.<N> (default /tmp/powermonitor;
                       created mode 0700 if missing)
  --sysfs DIR          host CPU sysfs (default $RTE_POWER_SYSFS_CPU_DIR or
                       /sys/devices/system/cpu)
  --ctl-socket PATH    control socket (daemon default /run/vm_power_mgr.sock;
                       interactive: only when given)
  --refresh-ms N       re-read vCPU pinning of managed VMs every N ms (default
                       2000, 0 = only on channel hang-up and `refresh`)
  -e, --exec CMD       run a CLI command at start (repeatable; failure exits)
  --policy-tick-ms N   interval of the guest policy engine (default 100)
  -b, --core-branch-ratio LIST[:RATIO]
                       BRANCH_RATIO threshold of these CPUs, percent of
                       branches mispredicted, 0 < RATIO <= 100 (default 0.1;
                       repeatable)
  --daemon             run without the CLI until SIGTERM/SIGINT or `ctl quit`
  --simulate           generated 8-CPU acpi-cpufreq tree, libvirt test driver
                       with demo VMs, private socket dir (runs anywhere)
  --demo               with --simulate: scripted guests, print, quit
  --sim-dir DIR        where --simulate creates its files
  -v, --verbose        log info messages (default: warnings; daemon: info)
  -q, --quiet          log errors only
  -h, --help           this text";

#[derive(Debug, Default)]
struct Opts {
    uri: Option<String>,
    socket_dir: Option<PathBuf>,
    sysfs: Option<PathBuf>,
    ctl_socket: Option<PathBuf>,
    refresh_ms: u64,
    exec: Vec<String>,
    daemon: bool,
    simulate: bool,
    demo: bool,
    sim_dir: Option<PathBuf>,
    level: Option<Level>,
    policy: vm_power_monitor::monitor::PolicyConfig,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        refresh_ms: 2000,
        ..Opts::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--uri" => o.uri = Some(val(a)?),
            "--socket-dir" => o.socket_dir = Some(val(a)?.into()),
            "--sysfs" => o.sysfs = Some(val(a)?.into()),
            "--ctl-socket" => o.ctl_socket = Some(val(a)?.into()),
            "--refresh-ms" => {
                let v = val(a)?;
                o.refresh_ms = v.parse().map_err(|_| format!("bad --refresh-ms '{v}'"))?;
            }
            "-e" | "--exec" => o.exec.push(val(a)?),
            "--policy-tick-ms" => {
                let v = val(a)?;
                let ms: u64 = v
                    .parse()
                    .ok()
                    .filter(|m| *m > 0)
                    .ok_or_else(|| format!("bad --policy-tick-ms '{v}'"))?;
                o.policy.tick = Duration::from_millis(ms);
            }
            "-b" | "--core-branch-ratio" => {
                let v = val(a)?;
                o.policy.thresholds.add(&v).map_err(|e| e.to_string())?;
            }
            // TEST ONLY (undocumented in --help): the hour comes from a
            // file, VF packet counts from a generated tree
            "--policy-clock" => o.policy.clock_file = Some(val(a)?.into()),
            "--policy-vf-stats" => o.policy.vf_stats_dir = Some(val(a)?.into()),
            "--daemon" => o.daemon = true,
            "--simulate" => o.simulate = true,
            "--demo" => o.demo = true,
            "--sim-dir" => o.sim_dir = Some(val(a)?.into()),
            "-v" | "--verbose" => o.level = Some(Level::Info),
            "-q" | "--quiet" => o.level = Some(Level::Error),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    if o.demo && !o.simulate {
        return Err("--demo needs --simulate".into());
    }
    Ok(o)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("ctl") {
        return ctl_main(&args[1..]);
    }
    let opts = match parse(&args) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("vm_power_mgr: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vm_power_mgr: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ctl_main(args: &[String]) -> ExitCode {
    let (path, words) = match args {
        [flag, p, rest @ ..] if flag == "--socket" => (PathBuf::from(p), rest),
        rest => (PathBuf::from(DEFAULT_CTL_SOCKET), rest),
    };
    let (json, words) = match words {
        [flag, rest @ ..] if flag == "--json" => (true, rest),
        rest => (false, rest),
    };
    if words.is_empty() {
        eprintln!("usage: vm_power_mgr ctl [--socket PATH] <command...>");
        return ExitCode::from(2);
    }
    let mut line = words.join(" ");
    if json {
        line.push_str(" --json");
    }
    match ctl::call(&path, &line) {
        Ok(out) if out.ok => {
            if !out.text.is_empty() {
                println!("{}", out.text);
            }
            ExitCode::SUCCESS
        }
        Ok(out) => {
            eprintln!("{}", out.text);
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("vm_power_mgr ctl: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(mut o: Opts) -> Result<ExitCode, String> {
    let level = o.level.or(if o.daemon { Some(Level::Info) } else { None });
    if let Some(l) = level {
        rte_power::log::set_max_level(Some(l));
    }
    let _term = sys::TermGuard::save();

    let sim = if o.simulate {
        let dir = o.sim_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("vm_power_mgr-sim-{}", std::process::id()))
        });
        let sim = SimHost::create(&dir)
            .map_err(|e| format!("simulated host in {}: {e}", dir.display()))?;
        o.uri.get_or_insert_with(|| sim.uri());
        o.socket_dir.get_or_insert_with(|| sim.sockets.clone());
        o.sysfs.get_or_insert_with(|| sim.sysfs.clone());
        Some(sim)
    } else {
        None
    };

    // before any thread exists (libvirt may start some): every thread
    // inherits the mask, so only the loop's signalfd sees SIGINT/SIGTERM
    sys::block_signals(&[libc::SIGINT, libc::SIGTERM]).map_err(|e| format!("signals: {e}"))?;
    let uri = o.uri.clone().unwrap_or_else(|| DEFAULT_URI.to_string());
    let mut hv = Libvirt::open(&uri).map_err(|e| e.to_string())?;
    let host_cpus = hv.host_cpus().map_err(|e| e.to_string())?;
    let socket_dir = o
        .socket_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/tmp/powermonitor"));
    let sysfs = o
        .sysfs
        .clone()
        .map_or_else(SysfsRoot::from_env, SysfsRoot::new);
    let mut cfg = MonitorConfig::new(&socket_dir, sysfs);
    cfg.host_cpus = host_cpus;
    cfg.policy = o.policy.clone();
    if let Some(sim) = &sim {
        if std::env::var_os(rte_pm::stats::procstat::PROC_STAT_ENV).is_none() {
            cfg.proc_stat = sim.proc_stat.clone();
        }
    }
    cfg.signals = true;
    let _ = sys::raise_nofile_limit();

    // the refresher gets its hint sender once the controller exists
    let (hint_tx, hint_rx) = std::sync::mpsc::channel::<String>();
    cfg.refresh_hint = Some(hint_tx);
    let (handle, mut mon) =
        Monitor::new(cfg).map_err(|e| format!("socket dir {}: {e}", socket_dir.display()))?;
    let (power, touched) = mon.restore_handle();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("vm_power_mgr: {info}; restoring host CPUs");
        vm_power_monitor::host::restore_touched(&power, &touched);
    }));
    let loop_thread = std::thread::Builder::new()
        .name("vmpm-monitor".into())
        .spawn(move || mon.run())
        .map_err(|e| e.to_string())?;
    let hv: Box<dyn Hypervisor> = Box::new(hv);
    let ctl = Controller::new(handle, Arc::new(Mutex::new(hv)));
    spawn_refresh(&ctl, o.refresh_ms, hint_rx);

    let ctl_path = o
        .ctl_socket
        .clone()
        .or_else(|| (o.daemon && !o.simulate).then(|| PathBuf::from(DEFAULT_CTL_SOCKET)));
    if let Some(p) = &ctl_path {
        let server =
            CtlServer::bind(p).map_err(|e| format!("control socket {}: {e}", p.display()))?;
        server.spawn(ctl.clone()).map_err(|e| e.to_string())?;
    }

    let stop = |ctl: &Controller, t: std::thread::JoinHandle<std::io::Result<()>>| {
        let _ = ctl.execute("quit");
        let _ = t.join();
    };
    let mut startup = Vec::new();
    if let Some(sim) = &sim {
        startup.extend(
            [
                "add_vm vm-a",
                "add_vm vm-b",
                "add_vm vm-d",
                "set_query vm-a enable",
                "add_channels vm-a 0-2",
                "add_channels vm-b 0-2",
                "add_channels vm-d 0",
            ]
            .map(String::from),
        );
        if !o.demo && !o.daemon {
            println!(
                "simulated host in {}:\n  sysfs {}\n  /proc/stat {}\n  libvirt {}\n  sockets {}\n\
                 demo VMs vm-a (vCPUs 0,1,2 on pCPUs 0,1,2-3), vm-b (4,5,6), vm-d (7), vm-c (off), vm-free (unpinned)\n\
                 guest side, from another terminal:\n  \
                 cargo run -p vm-power-mgr --example sim_guest -- {} vm-a 0 down down query_freq\n\
                 then: show_cpu_freq 0",
                sim.base.display(),
                sim.sysfs.display(),
                sim.proc_stat.display(),
                sim.uri(),
                sim.sockets.display(),
                sim.sockets.display()
            );
        }
    }
    startup.extend(o.exec.iter().cloned());
    for cmd in &startup {
        let out = ctl.execute(cmd);
        if !out.ok {
            stop(&ctl, loop_thread);
            return Err(format!("`{cmd}` failed: {}", out.text));
        }
        if !o.demo && !o.daemon && !out.text.is_empty() {
            println!("{}", out.text);
        }
    }

    if let Some(sim) = &sim {
        if o.demo {
            let r = demo(&ctl, sim);
            stop(&ctl, loop_thread);
            println!("after quit: cpu0 governor {}", governor(sim, 0));
            return r.map(|_| ExitCode::SUCCESS);
        }
    }

    if !o.daemon {
        let ui = ctl.clone();
        std::thread::Builder::new()
            .name("vmpm-cli".into())
            .spawn(move || {
                cli::run(&ui);
            })
            .map_err(|e| e.to_string())?;
    } else if let Some(p) = &ctl_path {
        vm_power_monitor::log::stderr_sink()(
            Level::Info,
            &format!("running; control socket {}", p.display()),
        );
    }
    let r = loop_thread.join();
    drop(ctl);
    if let Some(p) = &ctl_path {
        // the control thread may still sit in accept(): remove its socket
        let _ = std::fs::remove_file(p);
    }
    match r {
        Ok(Ok(())) => Ok(ExitCode::SUCCESS),
        Ok(Err(e)) => Err(format!("event loop: {e}")),
        Err(_) => Err("event loop panicked".into()),
    }
}

fn spawn_refresh(ctl: &Controller, every_ms: u64, hints: std::sync::mpsc::Receiver<String>) {
    let every = if every_ms == 0 {
        Duration::from_secs(365 * 24 * 3600)
    } else {
        Duration::from_millis(every_ms)
    };
    match ctl.spawn_refresher(every) {
        Ok((tx, _t)) => {
            // forward the loop's hang-up hints to the refresher
            let _ = std::thread::Builder::new()
                .name("vmpm-hints".into())
                .spawn(move || {
                    for name in hints {
                        if tx.send(name).is_err() {
                            return;
                        }
                    }
                });
        }
        Err(e) => eprintln!("vm_power_mgr: no pinning refresher: {e}"),
    }
}

fn governor(sim: &SimHost, cpu: u32) -> String {
    std::fs::read_to_string(sim.sysfs.join(format!("cpu{cpu}/cpufreq/scaling_governor")))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The scripted tour of `--simulate --demo`.
fn demo(ctl: &Controller, sim: &SimHost) -> Result<(), String> {
    use rte_power::wire::Step;
    let say = |cmd: &str| {
        let out = ctl.execute(cmd);
        println!("vmpower> {cmd}\n{}", out.text);
    };
    let guest = |vm: &str, chan: u32, ops: &[GuestOp]| -> Result<(), String> {
        let lines = guest_session(
            &sim.sockets,
            vm,
            chan,
            u64::from(chan),
            ops,
            Duration::from_secs(10),
        )
        .map_err(|e| format!("guest {vm}.{chan}: {e}"))?;
        for l in lines {
            println!("guest> {l}");
        }
        Ok(())
    };
    println!("simulated host in {}", sim.base.display());
    say("show_vm vm-a");
    say("show_cpu_freq 0");
    guest("vm-a", 0, &[GuestOp::Power(Step::Down)])?;
    say("show_cpu_freq 0");
    guest(
        "vm-a",
        0,
        &[GuestOp::Power(Step::Down), GuestOp::Power(Step::Down)],
    )?;
    say("show_cpu_freq 0");
    guest("vm-a", 2, &[GuestOp::Power(Step::Min)])?;
    say("show_cpu_freq_mask 0xc");
    guest("vm-a", 1, &[GuestOp::QueryFreq, GuestOp::QueryCaps])?;
    println!("(vm-b's vCPU 3 does not exist: refused, nothing written)");
    guest("vm-b", 2, &[GuestOp::Power(Step::Min)])?;
    let lines = guest_session(
        &sim.sockets,
        "vm-b",
        1,
        3,
        &[GuestOp::Power(Step::Min)],
        Duration::from_secs(10),
    )
    .map_err(|e| format!("guest vm-b.1: {e}"))?;
    for l in lines {
        println!("guest> {l}");
    }
    say("show_vm vm-b");
    say("show_channels");
    Ok(())
}
