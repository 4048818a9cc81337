//! `vm_power_mgr`: the host VM power monitor.
//!
//! ```text
//! vm_power_mgr [options]               interactive CLI (vmpower> prompt)
//! vm_power_mgr --daemon [options]      no CLI, control socket (systemd)
//! vm_power_mgr --simulate [--demo]     generated sysfs + libvirt test driver
//! vm_power_mgr ctl [--socket P] [--json] CMD..  run a command on a running monitor
//! ```

use rte_power::{errln, outln};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rte_power::log::Level;
use rte_power::sysfs::SysfsRoot;
use testkit::sim_host::{guest_session, GuestOp, SimHost};
use vm_power_monitor::ctl::{self, CtlAccess, CtlServer, DEFAULT_CTL_SOCKET};
use vm_power_monitor::ctl_json;
use vm_power_monitor::libvirt::{Libvirt, DEFAULT_URI};
use vm_power_monitor::libvirt_events;
use vm_power_monitor::trust::{default_qemu_user, lookup_group, lookup_user, Trusted};
use vm_power_monitor::{cli, sys, Controller, Hypervisor, Monitor, MonitorConfig};

const USAGE: &str = "\
usage: vm_power_mgr [options]            interactive CLI (vmpower> prompt)
       vm_power_mgr --daemon [options]   no CLI; serve the control socket
       vm_power_mgr --simulate [--demo] [--sim-dir DIR] [options]
       vm_power_mgr ctl [--socket PATH] [--json] <command...>
                       (--json: every command answers in JSON, docs/schemas/ctl)

options:
  --uri URI            libvirt URI (default qemu:///system)
  --socket-dir DIR     channel sockets <DIR>/<vm>.<N> (default /tmp/powermonitor,
                       recommended /run/powermonitor; created 0750
                       root:<QEMU user's group> if missing; must be owned by
                       root or the QEMU user and not group/world-writable)
  --qemu-user NAME     the user QEMU runs as, trusted for the socket directory,
                       its sockets and their listeners (default libvirt-qemu,
                       else qemu, else none; `none`: root only)
  --ctl-group NAME     members of this group may use the control socket too
                       (default: root only)
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
  --energy-interval-ms N
                       sample RAPL package energy and /proc/stat every N ms
                       for per-VM energy (default 1000, 0 = off)
  --powercap DIR       powercap root (default /sys/class/powercap)
  --metrics ADDR       serve Prometheus metrics on HOST:PORT (PORT alone:
                       loopback) or unix:PATH, GET /metrics only
  --daemon             run without the CLI until SIGTERM/SIGINT or `ctl quit`
  --simulate           generated 8-CPU acpi-cpufreq tree, libvirt test driver
                       with demo VMs, private socket dir (runs anywhere)
  --demo               with --simulate: scripted guests, print, quit
  --sim-dir DIR        where --simulate creates its files
  -v, --verbose        log info messages (default: warnings; daemon: info)
  -q, --quiet          log errors only
  -h, --help           this text";

/// What stopped the monitor from starting or running.
#[derive(Debug, thiserror::Error)]
enum MainError {
    #[error("{option} needs a value")]
    MissingValue { option: String },
    #[error("bad {option} '{value}'")]
    BadValue { option: String, value: String },
    #[error("unknown option '{0}'")]
    UnknownOption(String),
    #[error("--demo needs --simulate")]
    DemoNeedsSimulate,
    #[error("simulated host in {dir}: {source}")]
    SimHost {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signals: {0}")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    Libvirt(#[from] vm_power_monitor::hv::HvError),
    #[error("socket dir {dir}: {source}")]
    SocketDir {
        dir: PathBuf,
        #[source]
        source: vm_power_monitor::MonitorError,
    },
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("control socket {path}: {source}")]
    CtlSocket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Metrics(#[from] vm_power_monitor::metrics::MetricsError),
    #[error("--core-branch-ratio: {0}")]
    BranchRatio(#[from] vm_power_monitor::policy::thresholds::ThresholdError),
    #[error("{option}: {source}")]
    Identity {
        option: &'static str,
        #[source]
        source: vm_power_monitor::trust::TrustError,
    },
    #[error("`{cmd}` failed: {reply}")]
    Startup { cmd: String, reply: String },
    #[error("event loop: {0}")]
    EventLoop(#[source] std::io::Error),
    #[error("event loop panicked")]
    EventLoopPanicked,
    #[error("guest {vm}.{chan}: {source}")]
    Guest {
        vm: String,
        chan: u32,
        #[source]
        source: std::io::Error,
    },
}

/// What the command line asks for.
enum Parsed {
    Run(Box<Opts>),
    Help,
}

#[derive(Debug, Default)]
struct Opts {
    uri: Option<String>,
    socket_dir: Option<PathBuf>,
    sysfs: Option<PathBuf>,
    ctl_socket: Option<PathBuf>,
    qemu_user: Option<String>,
    ctl_group: Option<String>,
    refresh_ms: u64,
    exec: Vec<String>,
    daemon: bool,
    simulate: bool,
    demo: bool,
    sim_dir: Option<PathBuf>,
    level: Option<Level>,
    metrics: Option<vm_power_monitor::metrics::MetricsAddr>,
    energy_ms: Option<u64>,
    powercap: Option<PathBuf>,
    policy: vm_power_monitor::monitor::PolicyConfig,
}

fn parse(args: &[String]) -> Result<Parsed, MainError> {
    let mut o = Opts {
        refresh_ms: 2000,
        ..Opts::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| {
            it.next().cloned().ok_or_else(|| MainError::MissingValue {
                option: name.to_owned(),
            })
        };
        match a.as_str() {
            "--uri" => o.uri = Some(val(a)?),
            "--socket-dir" => o.socket_dir = Some(val(a)?.into()),
            "--sysfs" => o.sysfs = Some(val(a)?.into()),
            "--ctl-socket" => o.ctl_socket = Some(val(a)?.into()),
            "--qemu-user" => o.qemu_user = Some(val(a)?),
            "--ctl-group" => o.ctl_group = Some(val(a)?),
            "--refresh-ms" => {
                let v = val(a)?;
                o.refresh_ms = v.parse().map_err(|_| MainError::BadValue {
                    option: a.clone(),
                    value: v.clone(),
                })?;
            }
            "-e" | "--exec" => o.exec.push(val(a)?),
            "--policy-tick-ms" => {
                let v = val(a)?;
                let ms: u64 =
                    v.parse()
                        .ok()
                        .filter(|m| *m > 0)
                        .ok_or_else(|| MainError::BadValue {
                            option: a.clone(),
                            value: v.clone(),
                        })?;
                o.policy.tick = Duration::from_millis(ms);
            }
            "-b" | "--core-branch-ratio" => {
                let v = val(a)?;
                o.policy.thresholds.add(&v)?;
            }
            // TEST ONLY (undocumented in --help): the hour comes from a
            // file, VF packet counts from a generated tree
            "--policy-clock" => o.policy.clock_file = Some(val(a)?.into()),
            "--policy-vf-stats" => o.policy.vf_stats_dir = Some(val(a)?.into()),
            "--energy-interval-ms" => {
                let v = val(a)?;
                o.energy_ms = Some(v.parse().map_err(|_| MainError::BadValue {
                    option: a.clone(),
                    value: v.clone(),
                })?);
            }
            "--powercap" => o.powercap = Some(val(a)?.into()),
            "--metrics" => {
                o.metrics = Some(vm_power_monitor::metrics::MetricsAddr::parse(&val(a)?)?);
            }
            "--daemon" => o.daemon = true,
            "--simulate" => o.simulate = true,
            "--demo" => o.demo = true,
            "--sim-dir" => o.sim_dir = Some(val(a)?.into()),
            "-v" | "--verbose" => o.level = Some(Level::Info),
            "-q" | "--quiet" => o.level = Some(Level::Error),
            "-h" | "--help" => return Ok(Parsed::Help),
            other => return Err(MainError::UnknownOption(other.to_owned())),
        }
    }
    if o.demo && !o.simulate {
        return Err(MainError::DemoNeedsSimulate);
    }
    Ok(Parsed::Run(Box::new(o)))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("ctl") {
        return ctl_main(&args[1..]);
    }
    let opts = match parse(&args) {
        Ok(Parsed::Run(o)) => *o,
        Ok(Parsed::Help) => {
            outln!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            errln!("vm_power_mgr: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(opts) {
        Ok(code) => code,
        Err(e) => {
            errln!("vm_power_mgr: {e}");
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
        errln!("usage: vm_power_mgr ctl [--socket PATH] [--json] <command...>");
        return ExitCode::from(2);
    }
    let mut line = words.join(" ");
    if json {
        line.push_str(" --json");
    }
    match ctl::call(&path, &line) {
        // JSON answers, failures included, go to stdout: one document
        Ok(out) if json => {
            outln!("{}", out.text);
            if out.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) if json => {
            let cmd = words.first().map_or("", String::as_str);
            outln!(
                "{}",
                ctl_json::error_doc(cmd, &format!("vm_power_mgr ctl: {e}"))
            );
            ExitCode::from(2)
        }
        Ok(out) if out.ok => {
            if !out.text.is_empty() {
                outln!("{}", out.text);
            }
            ExitCode::SUCCESS
        }
        Ok(out) => {
            errln!("{}", out.text);
            ExitCode::FAILURE
        }
        Err(e) => {
            errln!("vm_power_mgr ctl: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(mut o: Opts) -> Result<ExitCode, MainError> {
    let level = o.level.or(if o.daemon { Some(Level::Info) } else { None });
    if let Some(l) = level {
        rte_power::log::set_max_level(Some(l));
    }
    let _term = sys::TermGuard::save();
    sys::ignore_sigpipe();

    let sim = if o.simulate {
        let dir = o.sim_dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("vm_power_mgr-sim-{}", std::process::id()))
        });
        let sim = SimHost::create(&dir).map_err(|source| MainError::SimHost { dir, source })?;
        o.uri.get_or_insert_with(|| sim.uri());
        o.socket_dir.get_or_insert_with(|| sim.sockets.clone());
        o.sysfs.get_or_insert_with(|| sim.sysfs.clone());
        Some(sim)
    } else {
        None
    };

    // before any thread exists (libvirt may start some): every thread
    // inherits the mask, so only the loop's signalfd sees the stop signals
    // (SIGINT, SIGTERM, SIGHUP, SIGQUIT), whichever thread they hit
    sys::block_signals(&sys::STOP_SIGNALS).map_err(MainError::Signals)?;
    let uri = o.uri.clone().unwrap_or_else(|| DEFAULT_URI.to_string());
    // before the connection opens: remote connections dispatch events
    // only when the event loop implementation was there at open time
    let events = libvirt_events::register_event_impl();
    let mut hv = Libvirt::open(&uri)?;
    let host_cpus = hv.host_cpus()?;
    let socket_dir = o
        .socket_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/tmp/powermonitor"));
    let sysfs = o
        .sysfs
        .clone()
        .map_or_else(SysfsRoot::from_env, SysfsRoot::new);
    restore_stale(&sysfs);
    let metrics_sysfs = sysfs.clone();
    let mut cfg = MonitorConfig::new(&socket_dir, sysfs);
    cfg.host_cpus = host_cpus;
    cfg.trusted = trusted(o.qemu_user.as_deref())?;
    cfg.policy = o.policy.clone();
    if let Some(ms) = o.energy_ms {
        cfg.energy.interval = Duration::from_millis(ms);
    }
    if let Some(p) = o
        .powercap
        .clone()
        .or_else(|| sim.as_ref().map(|s| s.powercap.clone()))
    {
        cfg.energy.powercap = p;
    }
    if let Some(sim) = &sim {
        if std::env::var_os(rte_pm::stats::procstat::PROC_STAT_ENV).is_none() {
            cfg.proc_stat = sim.proc_stat.clone();
        }
    }
    cfg.signals = true;
    let _ = sys::raise_nofile_limit();

    // the refresher gets its hint sender once the controller exists
    let (hint_tx, hint_rx) = std::sync::mpsc::channel::<String>();
    watch_events(&mut hv, events, &hint_tx, o.refresh_ms);
    cfg.refresh_hint = Some(hint_tx);
    let (handle, mut mon) = Monitor::new(cfg).map_err(|source| MainError::SocketDir {
        dir: socket_dir.clone(),
        source,
    })?;
    let (power, touched) = mon.restore_handle();
    let ctl_path = o
        .ctl_socket
        .clone()
        .or_else(|| (o.daemon && !o.simulate).then(|| PathBuf::from(DEFAULT_CTL_SOCKET)));
    let hook_ctl = ctl_path.clone();
    std::panic::set_hook(Box::new(move |info| {
        // restore first: printing may fail or block (a dead stderr). On a
        // thread of its own, waited for a bounded time: the panicking
        // thread may hold a lock the restore needs
        let (p, t) = (Arc::clone(&power), Arc::clone(&touched));
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("vmpm-restore".into())
            .spawn(move || {
                vm_power_monitor::host::restore_touched(&p, &t);
                let _ = tx.send(());
            });
        if spawned.is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
        errln!("vm_power_mgr: {info}; host CPUs restored");
        if let Some(p) = &hook_ctl {
            let _ = std::fs::remove_file(p);
        }
        // a panic in any thread ends the monitor: its CPUs are no longer
        // managed, and serving on would scale them again
        std::process::exit(101);
    }));
    let loop_thread = std::thread::Builder::new()
        .name("vmpm-monitor".into())
        .spawn(move || mon.run())
        .map_err(|source| MainError::Thread {
            what: "event loop",
            source,
        })?;
    let hv: Box<dyn Hypervisor> = Box::new(hv);
    let ctl = Controller::new(handle, Arc::new(Mutex::new(hv)));
    spawn_refresh(&ctl, o.refresh_ms, hint_rx);

    let stop = |ctl: &Controller, t: std::thread::JoinHandle<std::io::Result<()>>| {
        let _ = ctl.execute("quit");
        let _ = t.join();
    };
    if let Some(p) = &ctl_path {
        // a failed start stops the loop, which restores whatever it changed
        let served = ctl_access(o.ctl_group.as_deref())
            .and_then(|access| {
                CtlServer::bind_with(p, access).map_err(|source| MainError::CtlSocket {
                    path: p.clone(),
                    source,
                })
            })
            .and_then(|server| {
                server
                    .spawn(ctl.clone())
                    .map_err(|source| MainError::Thread {
                        what: "control socket",
                        source,
                    })
            });
        if let Err(e) = served {
            stop(&ctl, loop_thread);
            return Err(e);
        }
    }
    if let Some(addr) = &o.metrics {
        let served = vm_power_monitor::metrics::MetricsServer::bind(addr)
            .map_err(MainError::from)
            .and_then(|server| {
                if let Some(a) = server.local_addr() {
                    vm_power_monitor::log::stderr_sink()(
                        Level::Info,
                        &format!("metrics on http://{a}/metrics"),
                    );
                }
                server
                    .spawn(ctl.clone(), metrics_sysfs)
                    .map_err(|source| MainError::Thread {
                        what: "metrics",
                        source,
                    })
            });
        if let Err(e) = served {
            stop(&ctl, loop_thread);
            return Err(e);
        }
    }
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
            outln!(
                "simulated host in {}:\n  sysfs {}\n  /proc/stat {}\n  powercap {}\n  libvirt {}\n  sockets {}\n\
                 demo VMs vm-a (vCPUs 0,1,2 on pCPUs 0,1,2-3), vm-b (4,5,6), vm-d (7), vm-c (off), vm-free (unpinned)\n\
                 guest side, from another terminal:\n  \
                 cargo run -p vm-power-mgr --example sim_guest -- {} vm-a 0 down down query_freq\n\
                 then: show_cpu_freq 0",
                sim.base.display(),
                sim.sysfs.display(),
                sim.proc_stat.display(),
                sim.powercap.display(),
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
            return Err(MainError::Startup {
                cmd: cmd.clone(),
                reply: out.text,
            });
        }
        if !o.demo && !o.daemon && !out.text.is_empty() {
            outln!("{}", out.text);
        }
    }

    if let Some(sim) = &sim {
        if o.demo {
            let r = demo(&ctl, sim);
            stop(&ctl, loop_thread);
            outln!("after quit: cpu0 governor {}", governor(sim, 0));
            return r.map(|_| ExitCode::SUCCESS);
        }
    }

    if !o.daemon {
        let ui = ctl.clone();
        let cli = std::thread::Builder::new()
            .name("vmpm-cli".into())
            .spawn(move || {
                cli::run(&ui);
            });
        if let Err(source) = cli {
            stop(&ctl, loop_thread);
            return Err(MainError::Thread {
                what: "CLI",
                source,
            });
        }
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
        Ok(Err(e)) => Err(MainError::EventLoop(e)),
        Err(_) => Err(MainError::EventLoopPanicked),
    }
}

/// Puts back what a killed predecessor (monitor or DPDK app) left changed
/// in the host tree, from the restore journal, before serving anything.
fn restore_stale(sysfs: &SysfsRoot) {
    let log = vm_power_monitor::log::stderr_sink();
    let journal = rte_power::journal::Journal::from_env();
    for (rec, r) in journal.restore_stale_under(sysfs.dir()) {
        match r {
            Ok(_) => log(
                Level::Warn,
                &format!(
                    "{}: restored the state left by process {} (restore journal)",
                    rec.what(),
                    rec.pid
                ),
            ),
            Err(e) => log(Level::Error, &format!("{}: {e}", rec.what())),
        }
    }
}

/// Subscribes to libvirt's domain events: the names of changed VMs go to
/// the refresher along with the loop's hang-up hints. Without events the
/// periodic refresh is all there is (said once).
fn watch_events(
    hv: &mut Libvirt,
    events: Result<(), vm_power_monitor::HvError>,
    hints: &std::sync::mpsc::Sender<String>,
    refresh_ms: u64,
) {
    let log = vm_power_monitor::log::stderr_sink();
    let r = events
        .and_then(|()| {
            libvirt_events::spawn_event_loop()
                .map_err(|e| vm_power_monitor::HvError::Other(e.to_string()))
        })
        .and_then(|_| libvirt_events::watch(hv, hints));
    match r {
        Ok(w) => log(
            Level::Info,
            &format!(
                "libvirt domain events: lifecycle and vCPU re-pin (tunable) subscribed; keepalive {}",
                if w.keepalive { "on" } else { "not available (local driver)" }
            ),
        ),
        Err(e) => log(
            Level::Warn,
            &format!("no libvirt domain events ({e}); vCPU pinning is re-read every {refresh_ms} ms"),
        ),
    }
}

/// `--ctl-group`: who besides root and the monitor's uid may use the
/// control socket.
fn ctl_access(group: Option<&str>) -> Result<CtlAccess, MainError> {
    let group = group
        .map(lookup_group)
        .transpose()
        .map_err(|source| MainError::Identity {
            option: "--ctl-group",
            source,
        })?;
    Ok(CtlAccess { group })
}

/// `--qemu-user`: a name, `none`, or the host's libvirt QEMU user.
fn trusted(qemu_user: Option<&str>) -> Result<Trusted, MainError> {
    let qemu = match qemu_user {
        Some("none") => None,
        Some(name) => Some(lookup_user(name).map_err(|source| MainError::Identity {
            option: "--qemu-user",
            source,
        })?),
        None => default_qemu_user(),
    };
    Ok(Trusted::with_qemu(qemu))
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
        Err(e) => errln!("vm_power_mgr: no pinning refresher: {e}"),
    }
}

fn governor(sim: &SimHost, cpu: u32) -> String {
    std::fs::read_to_string(sim.sysfs.join(format!("cpu{cpu}/cpufreq/scaling_governor")))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The scripted tour of `--simulate --demo`.
fn demo(ctl: &Controller, sim: &SimHost) -> Result<(), MainError> {
    use rte_power::wire::Step;
    let say = |cmd: &str| {
        let out = ctl.execute(cmd);
        outln!("vmpower> {cmd}\n{}", out.text);
    };
    let guest_err = |vm: &str, chan: u32| {
        let vm = vm.to_owned();
        move |source| MainError::Guest { vm, chan, source }
    };
    let guest = |vm: &str, chan: u32, ops: &[GuestOp]| -> Result<(), MainError> {
        let lines = guest_session(
            &sim.sockets,
            vm,
            chan,
            u64::from(chan),
            ops,
            Duration::from_secs(10),
        )
        .map_err(guest_err(vm, chan))?;
        for l in lines {
            outln!("guest> {l}");
        }
        Ok(())
    };
    outln!("simulated host in {}", sim.base.display());
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
    outln!("(vm-b's vCPU 3 does not exist: refused, nothing written)");
    guest("vm-b", 2, &[GuestOp::Power(Step::Min)])?;
    let lines = guest_session(
        &sim.sockets,
        "vm-b",
        1,
        3,
        &[GuestOp::Power(Step::Min)],
        Duration::from_secs(10),
    )
    .map_err(guest_err("vm-b", 1))?;
    for l in lines {
        outln!("guest> {l}");
    }
    say("show_vm vm-b");
    say("show_channels");
    demo_energy(ctl, sim)
}

/// The demo's energy step: the simulated package draws 12 J while pCPUs
/// 0-2 (vm-a) and 4 (vm-b) are busy; then each VM's share.
fn demo_energy(ctl: &Controller, sim: &SimHost) -> Result<(), MainError> {
    use testkit::powercap::{energy, set_energy};
    use testkit::sysfs::{write_proc_stat, ProcStatCpu};
    let io = |source| MainError::SimHost {
        dir: sim.base.clone(),
        source,
    };
    let line = |vm: &str| {
        let text = ctl.execute(&format!("show_vm {vm}")).text;
        text.lines()
            .find(|l| l.starts_with("Energy:"))
            .unwrap_or("")
            .to_string()
    };
    // after the sampler's first interval, so that the step lands in one
    let start = std::time::Instant::now();
    let waiting = |l: &str| l.contains("not started") || l.contains("no interval yet");
    while waiting(&line("vm-a")) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if line("vm-a").contains("not available") {
        outln!("{}", line("vm-a"));
        return Ok(());
    }
    outln!("(the simulated package draws 12 J while pCPUs 0-2 (vm-a) and 4 (vm-b) are busy, 100 ticks in all)");
    let busy = |user| ProcStatCpu {
        user,
        idle: 1000,
        ..Default::default()
    };
    let mut cpus = [busy(0); testkit::sim_host::HOST_CPUS as usize];
    for (c, t) in [(0, 50), (1, 20), (2, 10), (4, 20)] {
        cpus[c] = busy(t);
    }
    write_proc_stat(&sim.proc_stat, &cpus).map_err(io)?;
    let now = energy(&sim.powercap, "intel-rapl:0").map_err(io)?;
    set_energy(&sim.powercap, "intel-rapl:0", now + 12_000_000).map_err(io)?;
    while line("vm-a").starts_with("Energy: 0.000 J") && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for vm in ["vm-a", "vm-b", "vm-d"] {
        outln!("{vm}: {}", line(vm));
    }
    Ok(())
}
