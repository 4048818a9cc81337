//! A running monitor on a simulated host (generated sysfs, libvirt test
//! driver, private socket directory) with log capture, for the tests.

#![allow(dead_code)]

pub mod expo;

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use testkit::qemu::{Guest, Qemu};
use testkit::sim_host::SimHost;
use vm_power_monitor::libvirt::Libvirt;
use vm_power_monitor::log::{Level, LogSink};
use vm_power_monitor::{Controller, Hypervisor, Monitor, MonitorConfig, Outcome};

pub const T: Duration = Duration::from_secs(5);

pub struct Env {
    pub sim: SimHost,
    pub ctl: Controller,
    pub hv: vm_power_monitor::controller::SharedHv,
    pub logs: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    _tmp: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(tune: impl FnOnce(&mut MonitorConfig)) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sim = SimHost::create(tmp.path()).expect("sim host");
        let mut hv = Libvirt::open(&sim.uri()).expect("test driver");
        let logs: Arc<Mutex<Vec<String>>> = Arc::default();
        let l2 = Arc::clone(&logs);
        let sink: LogSink = Arc::new(move |lvl: Level, msg: &str| {
            l2.lock().expect("logs").push(format!("{lvl:?}: {msg}"));
        });
        let mut cfg =
            MonitorConfig::new(&sim.sockets, rte_power::sysfs::SysfsRoot::new(&sim.sysfs));
        cfg.host_cpus = hv.host_cpus().expect("cpus");
        cfg.log = sink;
        cfg.log_burst = 10_000;
        cfg.proc_stat = sim.proc_stat.clone();
        tune(&mut cfg);
        let (handle, thread) = Monitor::spawn(cfg).expect("monitor");
        let hv: Box<dyn Hypervisor> = Box::new(hv);
        let hv = Arc::new(Mutex::new(hv));
        let ctl = Controller::new(handle, Arc::clone(&hv));
        Self {
            sim,
            ctl,
            hv,
            logs,
            thread: Some(thread),
            _tmp: tmp,
        }
    }

    pub fn run(&self, line: &str) -> Outcome {
        self.ctl.execute(line)
    }

    #[track_caller]
    pub fn ok(&self, line: &str) -> String {
        let o = self.run(line);
        assert!(o.ok, "`{line}` failed: {}", o.text);
        o.text
    }

    #[track_caller]
    pub fn err(&self, line: &str) -> String {
        let o = self.run(line);
        assert!(!o.ok, "`{line}` should fail, said: {}", o.text);
        o.text
    }

    /// Binds QEMU's socket for `<vm>.<num>`, adds the channel, accepts.
    pub fn attach(&self, vm: &str, num: u32) -> (Qemu, Guest) {
        let mut q = Qemu::bind(&self.sim.sockets, vm, num).expect("bind");
        let out = self.ok(&format!("add_channels {vm} {num}"));
        assert!(out.contains(&format!("[{num}]: connected")), "{out}");
        let g = q.accept(T).expect("monitor connects");
        (q, g)
    }

    /// First line of a cpufreq attribute of the generated tree.
    pub fn attr(&self, cpu: u32, name: &str) -> String {
        let p = self.sim.sysfs.join(format!("cpu{cpu}/cpufreq/{name}"));
        let s = std::fs::read_to_string(p).expect("attr");
        s.lines().next().unwrap_or("").trim().to_string()
    }

    /// The acpi table of the generated tree (kHz; index 0 = turbo entry).
    pub fn table(&self, cpu: u32) -> Vec<u32> {
        self.attr(cpu, "scaling_available_frequencies")
            .split_whitespace()
            .map(|s| s.parse().expect("kHz"))
            .collect()
    }

    pub fn setspeed(&self, cpu: u32) -> u32 {
        self.attr(cpu, "scaling_setspeed").parse().expect("kHz")
    }

    /// Everything the monitor could write for `cpus`, byte for byte.
    pub fn snapshot(&self, cpus: &[u32]) -> Vec<(String, Vec<u8>, std::time::SystemTime)> {
        let mut v = Vec::new();
        for &c in cpus {
            for f in [
                "scaling_setspeed",
                "scaling_governor",
                "scaling_min_freq",
                "scaling_max_freq",
            ] {
                let p = self.sim.sysfs.join(format!("cpu{c}/cpufreq/{f}"));
                let m = std::fs::metadata(&p)
                    .and_then(|m| m.modified())
                    .expect("mtime");
                v.push((format!("cpu{c}/{f}"), std::fs::read(&p).expect("read"), m));
            }
        }
        v
    }

    pub fn log_has(&self, needle: &str) -> bool {
        self.logs
            .lock()
            .expect("logs")
            .iter()
            .any(|l| l.contains(needle))
    }

    #[track_caller]
    pub fn assert_log(&self, needle: &str) {
        assert!(
            self.log_has(needle),
            "no log line contains {needle:?}; log:\n{}",
            self.logs.lock().expect("logs").join("\n")
        );
    }

    /// Waits for the loop thread after something else stopped it (a
    /// `quit` through the control socket).
    pub fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            t.join().expect("join").expect("loop result");
        }
    }

    /// Stops the monitor (restoring host CPUs) and waits for its thread.
    pub fn quit(&mut self) {
        if let Some(t) = self.thread.take() {
            let o = self.ctl.execute("quit");
            assert!(o.ok, "quit: {}", o.text);
            t.join().expect("join").expect("loop result");
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = self.ctl.execute("quit");
            let _ = t.join();
        }
    }
}

/// The `vm_power_mgr` binary running `--simulate --daemon` with a control
/// socket, for the tests of the real process (ctl exit codes, SIGTERM).
pub struct Daemon {
    pub child: std::process::Child,
    pub sim_dir: std::path::PathBuf,
    pub sock: std::path::PathBuf,
    _tmp: tempfile::TempDir,
}

impl Daemon {
    /// Starts the daemon running `exec` at start, and waits for its socket.
    pub fn start(exec: &str) -> Self {
        Self::start_with(exec, &[])
    }

    /// [`Daemon::start`] with more options (`{tmp}` in one stands for the
    /// daemon's temporary directory).
    pub fn start_with(exec: &str, extra: &[&str]) -> Self {
        Self::start_env(exec, extra, &[])
    }

    /// [`Daemon::start_with`] with environment variables (`{tmp}` in a
    /// value stands for the daemon's temporary directory).
    pub fn start_env(exec: &str, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().expect("tmp");
        let sim_dir = tmp.path().join("sim");
        let sock = tmp.path().join("ctl.sock");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_vm_power_mgr"))
            .args(["--simulate", "--daemon", "-q", "--sim-dir"])
            .arg(&sim_dir)
            .arg("--ctl-socket")
            .arg(&sock)
            .args(["-e", exec])
            .args(
                extra
                    .iter()
                    .map(|a| a.replace("{tmp}", &tmp.path().to_string_lossy())),
            )
            .env_remove("RTE_POWER_PROC_STAT")
            .envs(
                env.iter()
                    .map(|(k, v)| (*k, v.replace("{tmp}", &tmp.path().to_string_lossy()))),
            )
            .spawn()
            .expect("daemon");
        let deadline = std::time::Instant::now() + T;
        // the file exists from bind(2) on; connect succeeds once it listens
        while std::os::unix::net::UnixStream::connect(&sock).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "control socket never appeared"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            child,
            sim_dir,
            sock,
            _tmp: tmp,
        }
    }

    /// `vm_power_mgr ctl --socket SOCK <args>`.
    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_vm_power_mgr"))
            .args(["ctl", "--socket"])
            .arg(&self.sock)
            .args(args)
            .output()
            .expect("ctl")
    }

    /// A cpufreq attribute of the simulated host, trimmed.
    pub fn attr(&self, cpu: u32, name: &str) -> String {
        let p = self
            .sim_dir
            .join(format!("sys-devices-system-cpu/cpu{cpu}/cpufreq/{name}"));
        std::fs::read_to_string(p)
            .expect("read attr")
            .trim()
            .to_string()
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on our own, not yet reaped child; no memory involved.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        self.child.wait().expect("wait")
    }
}

/// A daemon still running when its test ends (passed or not) is stopped
/// with SIGTERM and reaped, so no test leaves a monitor behind.
impl Drop for Daemon {
    fn drop(&mut self) {
        if let (Ok(None), Ok(pid)) = (self.child.try_wait(), i32::try_from(self.child.id())) {
            // SAFETY: kill(2) on our own child, not yet reaped (try_wait
            // says it is still running); no memory involved.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let _ = self.child.wait();
        }
    }
}
