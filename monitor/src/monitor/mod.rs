//! The monitor: its config, the command handle, and the state the loop thread owns.
//!
//! One thread owns every VM, channel and host CPU and blocks in
//! `epoll_wait` (no timeout, no polling interval). Sources, each under a
//! tagged token (`event_loop`): the command eventfd (the CLI, the control
//! socket and the pinning refresher send [`MonCmd`]s on an mpsc channel,
//! then kick it: `commands`); a signalfd for the stop signals when asked;
//! inotify on the socket directory and its parent (`dirwatch`), a retry
//! timerfd armed only while a channel waits after a refused connect and a
//! slow one (1 s) while any channel waits (`connect`; the trust checks of
//! the directory and its sockets are `sockdir`); the ondemand
//! timerfd, armed only while some CPU is in ondemand (`gov_glue`); the
//! policy timerfd, armed only while a guest policy exists
//! (`policy_glue`, engine in [`crate::policy`]); one
//! UNIX stream per guest channel ([`channel`], served by `serve`, whose
//! packets [`requests`] decides on). VMs are plain data in `registry`;
//! pCPUs shared between VMs are `exclusivity`; text reports are in
//! `reports`. The energy sampler ([`crate::energy`]) runs on a thread of
//! its own and hands each interval over through the command eventfd
//! (`energy_glue`).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rte_power::sysfs::SysfsRoot;
use rte_power::wire::ChannelPacket;

use crate::governor::GovTraceFn;
use crate::host::Host;
use crate::log::{Level, LogSink};
use crate::sys::{self, Epoll, EventFd, SignalFd, TimerFd};
use crate::trust::Trusted;

pub mod channel;
mod commands;
mod connect;
mod dirwatch;
mod energy_glue;
mod event_loop;
mod exclusivity;
mod fair;
mod gov_glue;
pub mod json;
mod policy_glue;
pub(crate) mod registry;
mod reports;
pub mod requests;
pub mod scrape;
mod serve;
pub(crate) mod sockdir;
pub mod tally;

pub use commands::{ChanList, MonCmd};
pub use json::JsonQuery;
pub use policy_glue::PolicyConfig;

use channel::Channels;
use connect::Retries;
use dirwatch::DirWatch;
use event_loop::Source;
use fair::Fair;
use gov_glue::GovLoop;
use policy_glue::PolicyLoop;
use registry::Registry;
use sockdir::SockDirError;

/// Default cap of a channel's reply queue: 141 full replies.
pub const DEFAULT_OUT_CAP: usize = 64 * 1024;

/// Default packets per VM per wake-up.
pub const DEFAULT_VM_BUDGET: usize = 64;
/// Default packets per turn.
pub const DEFAULT_VM_QUANTUM: usize = 32;

/// Called after every applied CPU_POWER request (benchmarks, tests).
pub type TraceFn = Box<dyn FnMut(&ChannelPacket) + Send>;

/// How the monitor is set up.
pub struct MonitorConfig {
    /// Where QEMU's channel sockets are (`<dir>/<vm>.<N>`).
    pub socket_dir: PathBuf,
    /// Mode for the socket directory if the monitor creates it (never
    /// group- or world-writable: those bits are dropped).
    pub dir_mode: u32,
    /// Who may own the socket directory and its sockets and listen on
    /// them (root, this process, the QEMU user).
    pub trusted: Trusted,
    /// The host's `/sys/devices/system/cpu`.
    pub sysfs: SysfsRoot,
    /// Host CPUs as the hypervisor numbers them (0: count `cpuN` in sysfs).
    pub host_cpus: u32,
    /// Log destination.
    pub log: LogSink,
    /// Guest-triggered log lines allowed per channel and window.
    pub log_burst: u32,
    /// The rate-limit window.
    pub log_window: Duration,
    /// Handle SIGINT, SIGTERM, SIGHUP and SIGQUIT ([`sys::STOP_SIGNALS`]; the
    /// caller must have blocked them).
    pub signals: bool,
    /// Reply bytes a channel may hold allocated (a hard cap: its queue
    /// never grows beyond it); a reply that does not fit once the peer has
    /// taken what it takes is dropped whole and counted.
    pub max_out_bytes: usize,
    /// Packets a VM may have handled per wake-up of the loop, over all its
    /// channels (fair service, see `fair`).
    pub vm_budget: usize,
    /// Packets per turn of a VM (turns go round-robin between VMs).
    pub vm_quantum: usize,
    /// First retry delay after a refused connect or a hang-up.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Told which VM to re-read from the hypervisor (refresher thread).
    pub refresh_hint: Option<mpsc::Sender<String>>,
    /// Hook after each applied CPU_POWER request.
    pub trace: Option<TraceFn>,
    /// Where the ondemand governor reads CPU load (default
    /// `$RTE_POWER_PROC_STAT` or `/proc/stat`).
    pub proc_stat: PathBuf,
    /// Hook after each ondemand sample.
    pub gov_trace: Option<GovTraceFn>,
    /// The policy engine's tick, clock and sources.
    pub policy: PolicyConfig,
    /// Per-VM energy: sampling interval (zero: off) and powercap root.
    pub energy: crate::energy::EnergyConfig,
}

impl MonitorConfig {
    /// Defaults for a socket directory and sysfs root.
    pub fn new(socket_dir: impl Into<PathBuf>, sysfs: SysfsRoot) -> Self {
        Self {
            socket_dir: socket_dir.into(),
            dir_mode: 0o750,
            trusted: Trusted::root_only(),
            sysfs,
            host_cpus: 0,
            log: crate::log::stderr_sink(),
            log_burst: 10,
            log_window: Duration::from_secs(10),
            signals: false,
            max_out_bytes: DEFAULT_OUT_CAP,
            vm_budget: DEFAULT_VM_BUDGET,
            vm_quantum: DEFAULT_VM_QUANTUM,
            retry_min: Duration::from_millis(20),
            retry_max: Duration::from_secs(2),
            refresh_hint: None,
            trace: None,
            proc_stat: rte_pm::stats::procstat::path_from_env(),
            gov_trace: None,
            policy: PolicyConfig::default(),
            energy: crate::energy::EnergyConfig::default(),
        }
    }
}

/// Why the monitor could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The socket directory is missing and cannot be created, or is not
    /// one the monitor may serve.
    #[error(transparent)]
    Dir(#[from] SockDirError),
    /// A system call failed (creating the directory, epoll and its fds).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Result of a command: success and the text to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Did the command succeed?
    pub ok: bool,
    /// What to print.
    pub text: String,
}

impl Outcome {
    /// Success.
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            ok: true,
            text: text.into(),
        }
    }

    /// Failure.
    pub fn err(text: impl Into<String>) -> Self {
        Self {
            ok: false,
            text: text.into(),
        }
    }
}

/// What a caller of [`MonitorHandle::call`] gets once the loop is gone.
const STOPPED: &str = "the monitor has stopped";

/// A command for the loop and where its outcome goes.
struct CmdRequest {
    cmd: MonCmd,
    reply: mpsc::Sender<Outcome>,
}

/// A cloneable way to send commands to the loop.
#[derive(Clone)]
pub struct MonitorHandle {
    tx: mpsc::Sender<CmdRequest>,
    wake: Arc<EventFd>,
    stopped: Arc<AtomicBool>,
}

impl std::fmt::Debug for MonitorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MonitorHandle")
    }
}

impl MonitorHandle {
    /// Runs `cmd` on the loop and waits for its outcome.
    pub fn call(&self, cmd: MonCmd) -> Outcome {
        let (reply, rx) = mpsc::channel();
        if self.tx.send(CmdRequest { cmd, reply }).is_err() || self.wake.signal().is_err() {
            return Outcome::err(STOPPED);
        }
        rx.recv().unwrap_or_else(|_| Outcome::err(STOPPED))
    }

    /// Has the loop stopped (after `Quit`, a signal or an error)? Every
    /// later [`MonitorHandle::call`] fails.
    pub fn has_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

/// The state owned by the loop thread.
pub struct Monitor {
    cfg: MonitorConfig,
    epoll: Epoll,
    wake: Arc<EventFd>,
    stopped: Arc<AtomicBool>,
    rx: mpsc::Receiver<CmdRequest>,
    signal: Option<SignalFd>,
    inotify: Option<DirWatch>,
    /// The socket directory (`O_PATH`), while it is there and trusted.
    dir: Option<OwnedFd>,
    /// Why it is not (shown for every waiting channel).
    dir_why: String,
    /// Slow retry of every waiting channel, armed while one waits.
    slow: TimerFd,
    slow_armed: bool,
    retries: Retries,
    host: Host,
    host_cpus: u32,
    gov: GovLoop,
    policy: PolicyLoop,
    reg: Registry,
    /// Per-VM energy: the sampler thread's messages, package totals.
    energy: crate::energy::EnergyLoop,
    chans: Channels,
    /// This wake-up's turns.
    fair: Fair,
    /// pCPUs shared between VMs and the operator's allow list.
    shared: exclusivity::Shared,
    /// Read buffer shared by every channel.
    scratch: Box<[u8]>,
    /// Returns from `epoll_wait` (`stats --json`, metrics).
    wakeups: u64,
    /// When the read being framed returned (`CLOCK_MONOTONIC`, once per
    /// read batch): the arrival of the packets it completes (`tally`).
    arrival: std::time::Instant,
    stop: bool,
}

impl Monitor {
    /// Sets up the loop (socket directory, epoll and its sources) and starts
    /// its thread. Returns the command handle and the thread, which ends
    /// after `Quit` or a signal with every host CPU restored.
    pub fn spawn(
        cfg: MonitorConfig,
    ) -> Result<(MonitorHandle, std::thread::JoinHandle<io::Result<()>>), MonitorError> {
        let (handle, mut mon) = Self::new(cfg)?;
        let t = std::thread::Builder::new()
            .name("vmpm-monitor".into())
            .spawn(move || mon.run())?;
        Ok((handle, t))
    }

    /// The loop without its thread (call [`Monitor::run`]).
    pub fn new(cfg: MonitorConfig) -> Result<(MonitorHandle, Monitor), MonitorError> {
        let dir = sockdir::prepare(&cfg.socket_dir, cfg.dir_mode, &cfg.trusted)?;
        let epoll = Epoll::new()?;
        let wake = Arc::new(EventFd::new()?);
        epoll.add(wake.as_raw_fd(), sys::IN, Source::Wake.into())?;
        let signal = if cfg.signals {
            let s = SignalFd::new(&sys::STOP_SIGNALS)?;
            epoll.add(s.as_raw_fd(), sys::IN, Source::Signal.into())?;
            Some(s)
        } else {
            None
        };
        let inotify = DirWatch::new(&cfg.socket_dir)?;
        epoll.add(inotify.as_raw_fd(), sys::IN, Source::Inotify.into())?;
        let slow = TimerFd::new()?;
        epoll.add(slow.as_raw_fd(), sys::IN, Source::SlowTimer.into())?;
        let timer = TimerFd::new()?;
        epoll.add(timer.as_raw_fd(), sys::IN, Source::RetryTimer.into())?;
        let gov_timer = TimerFd::new()?;
        epoll.add(gov_timer.as_raw_fd(), sys::IN, Source::GovTimer.into())?;
        let gov = GovLoop::new(cfg.proc_stat.clone(), gov_timer);
        let policy_timer = TimerFd::new()?;
        epoll.add(
            policy_timer.as_raw_fd(),
            sys::IN,
            Source::PolicyTimer.into(),
        )?;
        let policy = PolicyLoop::new(&cfg.policy, policy_timer);
        let host = Host::new(cfg.sysfs.clone());
        let host_cpus = if cfg.host_cpus > 0 {
            cfg.host_cpus
        } else {
            count_cpus(cfg.sysfs.dir())
        };
        let fair = Fair::new(cfg.vm_budget, cfg.vm_quantum);
        let energy = crate::energy::EnergyLoop::new(cfg.energy.clone());
        let (tx, rx) = mpsc::channel();
        let stopped = Arc::new(AtomicBool::new(false));
        let handle = MonitorHandle {
            tx,
            wake: Arc::clone(&wake),
            stopped: Arc::clone(&stopped),
        };
        let mon = Monitor {
            cfg,
            epoll,
            wake,
            stopped,
            rx,
            signal,
            inotify: Some(inotify),
            dir: Some(dir),
            dir_why: String::new(),
            slow,
            slow_armed: false,
            retries: Retries::new(timer),
            host,
            host_cpus,
            gov,
            policy,
            reg: Registry::new(),
            energy,
            chans: Channels::new(),
            fair,
            shared: exclusivity::Shared::default(),
            scratch: vec![0u8; serve::READ_CHUNK].into_boxed_slice(),
            wakeups: 0,
            arrival: std::time::Instant::now(),
            stop: false,
        };
        Ok((handle, mon))
    }

    /// Power context and touched CPUs, for a panic hook.
    pub fn restore_handle(&self) -> (Arc<rte_power::Power>, crate::host::Touched) {
        self.host.restore_handle()
    }

    fn log(&self, level: Level, msg: &str) {
        (self.cfg.log)(level, msg);
    }

    /// Runs until `Quit` or a signal; restores the host CPUs on every way
    /// out.
    pub fn run(&mut self) -> io::Result<()> {
        self.start_energy();
        let r = self.run_loop();
        self.shutdown();
        r
    }

    fn shutdown(&mut self) {
        self.stopped.store(true, Ordering::Release);
        for id in self.chans.ids() {
            self.close_stream(id);
        }
        // the governors are engine state only: stop sampling, forget them;
        // rte_power's exit below gives the kernel its own governor back
        self.gov.stop();
        self.policy.stop();
        self.energy.stop();
        for e in self.host.restore_all() {
            self.log(Level::Error, &e.to_string());
        }
        // answer whoever is still waiting
        while let Ok(r) = self.rx.try_recv() {
            let _ = r.reply.send(Outcome::err(STOPPED));
        }
    }

    fn on_signal(&mut self) {
        if let Some(sig) = self.signal.as_ref().and_then(SignalFd::read) {
            self.log(
                Level::Info,
                &format!("signal {sig}: restoring host CPUs and stopping"),
            );
            self.stop = true;
        }
    }
}

/// Number of `cpuN` directories under a sysfs root.
fn count_cpus(dir: &Path) -> u32 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("cpu"))
                        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
                .count()
        })
        .ok()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

/// A loop on empty temporary directories (no thread), for unit tests of
/// the loop-side modules.
#[cfg(test)]
pub(super) fn test_monitor(host_cpus: u32) -> (tempfile::TempDir, Monitor) {
    let tmp = tempfile::tempdir().expect("tmp");
    let sysfs = tmp.path().join("sys");
    std::fs::create_dir(&sysfs).expect("sysfs");
    let mut cfg = MonitorConfig::new(tmp.path().join("sockets"), SysfsRoot::new(&sysfs));
    cfg.host_cpus = host_cpus;
    cfg.log = Arc::new(|_, _| {});
    let (_, mon) = Monitor::new(cfg).expect("monitor");
    (tmp, mon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_are_counted_from_cpu_n_directories() {
        let tmp = tempfile::tempdir().expect("tmp");
        for d in ["cpu0", "cpu1", "cpu12", "cpufreq", "cpuidle", "cpu"] {
            std::fs::create_dir(tmp.path().join(d)).expect("dir");
        }
        assert_eq!(count_cpus(tmp.path()), 3);
        assert_eq!(count_cpus(&tmp.path().join("missing")), 0);
    }
}
