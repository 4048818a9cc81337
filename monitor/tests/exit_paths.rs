//! Every way the real `vm_power_mgr` process ends puts the host back
//! (DESIGN §4, docs/monitor.md "Exit paths"): each stop signal, a dead
//! stderr while guests are refused, SIGKILL followed by a restart (the
//! restore journal), and a library init on a CPU the monitor holds.
//!
//! Each test runs the binary on a generated host it keeps across runs
//! (`--sysfs`, `--uri test:///...`, `--socket-dir`), with the journal in a
//! temporary directory (`RTE_POWER_JOURNAL_DIR`), and compares every
//! cpufreq file the monitor may change with the state before the first run.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::T;
use rte_power::journal::{Journal, JournalError};
use rte_power::wire::{ChannelPacket, Step, CMD_ACK, CMD_NACK, PACKET_SIZE};
use rte_power::{Config, Power, PowerError};
use testkit::qemu::Qemu;
use testkit::sim_host::SimHost;

/// The host CPUs of [`SimHost`].
const CPUS: u32 = 8;

struct Host {
    sim: SimHost,
    journal: PathBuf,
    ctl: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Host {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sim = SimHost::create(&tmp.path().join("sim")).expect("sim host");
        Self {
            sim,
            journal: tmp.path().join("journal"),
            ctl: tmp.path().join("ctl.sock"),
            _tmp: tmp,
        }
    }

    /// Governor, limits and (under userspace) setspeed of every CPU, first
    /// lines as the kernel shows them.
    fn snapshot(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        for cpu in 0..CPUS {
            let read = |attr: &str| {
                let p = self.sim.sysfs.join(format!("cpu{cpu}/cpufreq/{attr}"));
                std::fs::read_to_string(p)
                    .map(|s| s.lines().next().unwrap_or("").trim().to_string())
                    .unwrap_or_default()
            };
            let gov = read("scaling_governor");
            let mut attrs = vec!["scaling_governor", "scaling_min_freq", "scaling_max_freq"];
            if gov == "userspace" {
                attrs.push("scaling_setspeed");
            }
            for a in attrs {
                v.push((format!("cpu{cpu}/{a}"), read(a)));
            }
        }
        v
    }

    fn governor(&self, cpu: u32) -> String {
        let p = self
            .sim
            .sysfs
            .join(format!("cpu{cpu}/cpufreq/scaling_governor"));
        std::fs::read_to_string(p)
            .expect("governor")
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }

    fn records(&self) -> usize {
        std::fs::read_dir(&self.journal).map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "rec"))
                .count()
        })
    }

    /// Starts the daemon running `exec` at start; waits for its control
    /// socket (bound before the startup commands run).
    fn start(&self, exec: &[&str], stderr: Stdio) -> Child {
        let _ = std::fs::remove_file(&self.ctl);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vm_power_mgr"));
        cmd.arg("--daemon")
            .arg("--uri")
            .arg(self.sim.uri())
            .arg("--socket-dir")
            .arg(&self.sim.sockets)
            .arg("--sysfs")
            .arg(&self.sim.sysfs)
            .arg("--ctl-socket")
            .arg(&self.ctl)
            .args(["--refresh-ms", "0"])
            .env("RTE_POWER_JOURNAL_DIR", &self.journal)
            .env("RTE_POWER_PROC_STAT", &self.sim.proc_stat)
            .env_remove("RTE_POWER_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for e in exec {
            cmd.args(["-e", e]);
        }
        let child = cmd.spawn().expect("vm_power_mgr");
        wait_for(|| self.ctl.exists(), "the control socket");
        child
    }
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + T;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn kill(child: &Child, sig: libc::c_int) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child, not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// The commands that change CPUs 2 and 5 at start (a CPU of a VM and one
/// of none).
const CHANGE: &[&str] = &["set_cpu_freq 2 min", "set_cpu_freq 5 min"];

fn changed(h: &Host) -> bool {
    h.governor(2) == "userspace" && h.governor(5) == "userspace" && h.records() == 2
}

#[test]
fn each_stop_signal_restores_the_host() {
    let h = Host::new();
    let before = h.snapshot();
    for (name, sig) in [
        ("SIGINT", libc::SIGINT),
        ("SIGTERM", libc::SIGTERM),
        ("SIGHUP", libc::SIGHUP),
        ("SIGQUIT", libc::SIGQUIT),
    ] {
        let mut child = h.start(CHANGE, Stdio::null());
        wait_for(|| changed(&h), "CPUs 2 and 5 changed");
        assert_ne!(h.snapshot(), before, "{name}: the run changed the host");
        kill(&child, sig);
        let status = child.wait().expect("wait");
        assert!(status.success(), "{name}: {status:?}");
        assert_eq!(h.snapshot(), before, "{name}: the host as before");
        assert_eq!(h.records(), 0, "{name}: journal records removed");
    }
}

#[test]
fn ctl_quit_and_a_failed_start_restore_the_host() {
    let h = Host::new();
    let before = h.snapshot();
    let mut child = h.start(CHANGE, Stdio::null());
    wait_for(|| changed(&h), "CPUs 2 and 5 changed");
    let out = ctl(&h, &["quit"]);
    assert!(out.status.success(), "{out:?}");
    assert!(child.wait().expect("wait").success());
    assert_eq!(h.snapshot(), before, "ctl quit");
    assert_eq!(h.records(), 0);
    // a startup command that fails after others changed CPUs: the monitor
    // stops, restoring them, and says which command failed
    let out = Command::new(env!("CARGO_BIN_EXE_vm_power_mgr"))
        .args(["--daemon", "--uri"])
        .arg(h.sim.uri())
        .arg("--socket-dir")
        .arg(&h.sim.sockets)
        .arg("--sysfs")
        .arg(&h.sim.sysfs)
        .arg("--ctl-socket")
        .arg(h.ctl.with_extension("failed"))
        .args(["-e", "set_cpu_freq 2 min", "-e", "set_cpu_freq 99 min"])
        .env("RTE_POWER_JOURNAL_DIR", &h.journal)
        .stdin(Stdio::null())
        .output()
        .expect("vm_power_mgr");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`set_cpu_freq 99 min` failed"), "{err}");
    assert_eq!(h.snapshot(), before, "failed start");
    assert_eq!(h.records(), 0);
}

#[test]
fn a_dead_stderr_with_refused_guests_neither_kills_nor_leaves_changes() {
    let h = Host::new();
    let before = h.snapshot();
    std::fs::create_dir_all(&h.sim.sockets).expect("socket dir");
    let mut q = Qemu::bind(&h.sim.sockets, "vm-a", 0).expect("bind");
    let mut child = h.start(
        &["add_vm vm-a", "add_channels vm-a 0", "set_cpu_freq 5 min"],
        Stdio::piped(),
    );
    // stderr becomes a pipe nobody reads from: every log line is EPIPE
    drop(child.stderr.take());
    let mut g = q.accept(T).expect("the monitor attaches");
    for _ in 0..50 {
        let mut p = ChannelPacket::cpu_power(0, Step::Down);
        p.core_type = true; // PHYSICAL from a guest: refused, logged
        g.send_bytes(&p.encode()).expect("send");
        let r = g.recv_raw(PACKET_SIZE, T).expect("a reply");
        assert_eq!(u32::from_le_bytes([r[12], r[13], r[14], r[15]]), CMD_NACK);
    }
    // an accepted request changes pCPU 0 (vm-a's vCPU 0)
    g.send(&ChannelPacket::cpu_power(0, Step::Min))
        .expect("send");
    let r = g.recv_raw(PACKET_SIZE, T).expect("a reply");
    assert_eq!(u32::from_le_bytes([r[12], r[13], r[14], r[15]]), CMD_ACK);
    assert_eq!(h.governor(0), "userspace");
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "still running"
    );
    kill(&child, libc::SIGTERM);
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    assert_eq!(h.snapshot(), before);
    assert_eq!(h.records(), 0);
}

#[test]
fn sigkill_then_restart_then_stop_leaves_the_host_as_before() {
    let h = Host::new();
    let before = h.snapshot();
    let mut child = h.start(CHANGE, Stdio::null());
    wait_for(|| changed(&h), "CPUs 2 and 5 changed");
    kill(&child, libc::SIGKILL);
    let _ = child.wait();
    assert_ne!(h.snapshot(), before, "nothing ran at SIGKILL");
    assert_eq!(h.records(), 2, "the records stay");
    // the restart puts the dead run's state back before serving, even for
    // CPUs it never touches again
    let child = h.start(&[], Stdio::piped());
    assert_eq!(h.snapshot(), before, "restored at start");
    assert_eq!(h.records(), 0);
    // and a CPU taken again is saved with its real original state
    let out = ctl(&h, &["set_cpu_freq", "2", "min"]);
    assert!(out.status.success(), "{out:?}");
    kill(&child, libc::SIGTERM);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cpu 2") && err.contains("restored the state left by process"),
        "{err}"
    );
    assert_eq!(h.snapshot(), before);
    assert_eq!(h.records(), 0);
}

fn ctl(h: &Host, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vm_power_mgr"))
        .args(["ctl", "--socket"])
        .arg(&h.ctl)
        .args(args)
        .output()
        .expect("ctl")
}

fn library(h: &Host) -> Power {
    Power::new(Config {
        journal: Journal::at(&h.journal),
        ..Config::with_sysfs(&h.sim.sysfs)
    })
}

#[test]
fn the_monitor_and_a_library_user_never_share_a_cpu() {
    let h = Host::new();
    let before = h.snapshot();
    let mut child = h.start(CHANGE, Stdio::null());
    wait_for(|| changed(&h), "CPUs 2 and 5 changed");
    // a library init on a CPU the running monitor holds is refused,
    // naming the CPU and the monitor's pid, and changes nothing
    let held = h.snapshot();
    let app = library(&h);
    match app.init(2) {
        Err(PowerError::Journal(JournalError::Held { what, pid, .. })) => {
            assert_eq!(pid, child.id());
            assert!(what.starts_with("cpu 2 "), "{what}");
        }
        r => panic!("init of the monitor's CPU: {r:?}"),
    }
    assert_eq!(h.snapshot(), held);
    // and the other way: the monitor cannot take a CPU the app holds
    app.init(3).expect("a free CPU").min().expect("min");
    let out = ctl(&h, &["set_cpu_freq", "3", "max"]);
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(
        msg.contains(&format!("held by live process {}", std::process::id())),
        "{msg}"
    );
    app.exit(3).expect("exit");
    kill(&child, libc::SIGTERM);
    assert!(child.wait().expect("wait").success());
    assert_eq!(h.snapshot(), before);
    assert_eq!(h.records(), 0);
}

/// The master side of the monitor's terminal: what the monitor prints is
/// drained on a thread (so that it never blocks on a full pty); dropping
/// the last descriptor is the terminal going away.
struct Terminal {
    master: std::os::fd::OwnedFd,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Terminal {
    fn type_bytes(&self, b: &[u8]) {
        use std::os::fd::AsRawFd;
        // SAFETY: writes from a live slice to a descriptor we own.
        let n = unsafe { libc::write(self.master.as_raw_fd(), b.as_ptr().cast(), b.len()) };
        assert_eq!(n, b.len() as isize);
    }

    /// Stops the drain and closes the master: the kernel hangs up the
    /// session whose controlling terminal it was.
    fn close(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
    }
}

/// The interactive monitor on a terminal of its own (a pty it takes as
/// its controlling terminal, as a login shell's child would).
fn start_on_terminal(h: &Host) -> (Child, Terminal) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors; no name, termios or size.
    let r = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty returned two new descriptors that we now own.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let _ = std::fs::remove_file(&h.ctl);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vm_power_mgr"));
    cmd.arg("--uri")
        .arg(h.sim.uri())
        .arg("--socket-dir")
        .arg(&h.sim.sockets)
        .arg("--sysfs")
        .arg(&h.sim.sysfs)
        .arg("--ctl-socket")
        .arg(&h.ctl)
        .args(["--refresh-ms", "0", "-q"])
        .args(["-e", CHANGE[0], "-e", CHANGE[1]])
        .env("RTE_POWER_JOURNAL_DIR", &h.journal)
        .env("TERM", "dumb")
        .stdin(slave.try_clone().expect("dup"))
        .stdout(slave.try_clone().expect("dup"))
        .stderr(slave.try_clone().expect("dup"));
    let master_fd = master.as_raw_fd();
    // SAFETY: only async-signal-safe calls between fork and exec: a new
    // session, the pty (fd 0) as its controlling terminal, and the
    // master's descriptor closed in the child.
    unsafe {
        cmd.pre_exec(move || {
            libc::close(master_fd);
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("vm_power_mgr on a pty");
    drop(slave);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut pfd = libc::pollfd {
                    fd: master_fd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one pollfd on the stack; reads into a local
                // buffer from a descriptor the Terminal keeps open until
                // this thread is joined.
                unsafe {
                    if libc::poll(&mut pfd, 1, 20) > 0
                        && libc::read(master_fd, buf.as_mut_ptr().cast(), buf.len()) <= 0
                    {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        })
    };
    let term = Terminal {
        master,
        stop,
        reader: Some(reader),
    };
    wait_for(
        || h.ctl.exists() && changed(h),
        "the interactive monitor changed CPUs 2 and 5",
    );
    (child, term)
}

/// Waits at most [`T`] for the child; kills it on timeout.
fn wait_bounded(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + T;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: the monitor did not stop");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_terminal_going_away_or_ctrl_d_restores_the_host() {
    let h = Host::new();
    let before = h.snapshot();
    // Ctrl-D at the prompt: quit
    let (mut child, term) = start_on_terminal(&h);
    term.type_bytes(b"\x04");
    let status = wait_bounded(&mut child, "Ctrl-D");
    assert!(status.success(), "Ctrl-D: {status:?}");
    assert_eq!(h.snapshot(), before, "Ctrl-D");
    assert_eq!(h.records(), 0);
    term.close();
    // the terminal closed: SIGHUP to the session
    let (mut child, term) = start_on_terminal(&h);
    term.close();
    let status = wait_bounded(&mut child, "hang-up");
    assert!(status.success(), "hang-up: {status:?}");
    assert_eq!(h.snapshot(), before, "hang-up");
    assert_eq!(h.records(), 0);
}
