//! The event loop: one thread owns every VM, channel and host CPU and
//! blocks in `epoll_wait` (no timeout, no polling interval). Sources:
//!
//! * the request eventfd: commands from the CLI, the control socket and the
//!   pinning refresher arrive on an mpsc channel, then the eventfd is kicked;
//! * a signalfd (SIGINT/SIGTERM) when the process asked for it;
//! * inotify on the socket directory: a socket that (re)appears is
//!   connected at once;
//! * a timerfd, armed only while a channel waits to retry a refused connect;
//! * a second timerfd for the ondemand governor ([`crate::governor`]),
//!   armed only while some CPU is in ondemand;
//! * one UNIX stream per guest channel (the monitor is QEMU's client).
//!
//! Guest bytes are framed per channel (partial packets are kept, every
//! complete packet is handled), replies go through a per-channel outbound
//! queue, and a hang-up only puts the channel back to waiting.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rte_power::sysfs::SysfsRoot;
use rte_power::wire::{
    self, CapsListPacket, ChannelPacket, Command, CoreType, FreqListPacket, PacketHeader, Response,
    VmName, PACKET_SIZE,
};

use crate::cpuset::CpuSet;
use crate::governor::{self, GovSample, GovTraceFn, Governor, Governors};
use crate::host::{FreqOp, Host};
use crate::hv::VmInfo;
use crate::log::{Level, LogSink, RateLimit};
use crate::ondemand::{self, Decision};
use crate::sys::{self, Epoll, EventFd, Inotify, SignalFd, TimerFd};

/// Called after every applied CPU_POWER request (benchmarks, tests).
pub type TraceFn = Box<dyn FnMut(&ChannelPacket) + Send>;

/// How the monitor is set up.
pub struct MonitorConfig {
    /// Where QEMU's channel sockets are (`<dir>/<vm>.<N>`).
    pub socket_dir: PathBuf,
    /// Mode for the socket directory if the monitor creates it.
    pub dir_mode: u32,
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
    /// Handle SIGINT/SIGTERM (the caller must have blocked them).
    pub signals: bool,
    /// Pending reply bytes per channel before replies are dropped whole.
    pub max_out_bytes: usize,
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
}

impl MonitorConfig {
    /// Defaults for a socket directory and sysfs root.
    pub fn new(socket_dir: impl Into<PathBuf>, sysfs: SysfsRoot) -> Self {
        Self {
            socket_dir: socket_dir.into(),
            dir_mode: 0o700,
            sysfs,
            host_cpus: 0,
            log: crate::log::stderr_sink(),
            log_burst: 10,
            log_window: Duration::from_secs(10),
            signals: false,
            max_out_bytes: 1024 * 1024,
            retry_min: Duration::from_millis(20),
            retry_max: Duration::from_secs(2),
            refresh_hint: None,
            trace: None,
            proc_stat: rte_power::stats::procstat::path_from_env(),
            gov_trace: None,
        }
    }
}

/// Which channels a command names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChanList {
    /// Every channel (for `add_channels`: every `<vm>.<N>` socket present).
    All,
    /// These numbers.
    List(CpuSet),
}

/// Commands the event loop executes.
#[derive(Debug, Clone)]
pub enum MonCmd {
    /// Register a VM (looked up by the caller).
    AddVm(VmInfo),
    /// Fresh hypervisor data for a registered VM (ignored otherwise).
    UpdateVm(VmInfo),
    /// The hypervisor no longer knows the VM.
    VmGone(String),
    /// Forget a VM (`force`: close its channels first).
    RmVm {
        /// VM name.
        name: String,
        /// Close channels instead of refusing.
        force: bool,
    },
    /// Connect channels.
    AddChannels {
        /// VM name.
        vm: String,
        /// Which.
        list: ChanList,
    },
    /// Enable/disable channels.
    SetChannelStatus {
        /// VM name.
        vm: String,
        /// Which.
        list: ChanList,
        /// New status.
        enabled: bool,
    },
    /// Describe one VM.
    ShowVm(String),
    /// One line per VM.
    ListVms,
    /// One line per channel.
    ShowChannels,
    /// Frequencies of host CPUs (`mask`: print as the mask command does).
    ShowCpuFreq {
        /// CPUs.
        cpus: CpuSet,
        /// Output form of `show_cpu_freq_mask`.
        mask: bool,
    },
    /// Scale host CPUs directly (operator).
    SetCpuFreq {
        /// CPUs.
        cpus: CpuSet,
        /// What to do.
        op: FreqOp,
    },
    /// Set the governor of a host CPU.
    SetGovernor {
        /// CPU.
        cpu: u32,
        /// Governor.
        governor: Governor,
    },
    /// Set ondemand's sampling period of a host CPU.
    SetSamplingRate {
        /// CPU.
        cpu: u32,
        /// Period, µs.
        us: u32,
    },
    /// Set ondemand's up_threshold of a host CPU.
    SetUpThreshold {
        /// CPU.
        cpu: u32,
        /// Percent.
        pct: u32,
    },
    /// Governor and tunables of one CPU, or of every configured/managed one.
    ShowGovernor(Option<u32>),
    /// P-state statistics of a host CPU (as `rte-pm get-cpufreq-states`).
    ShowFreqStates(u32),
    /// C-state statistics of a host CPU (as `rte-pm get-cpuidle-states`).
    ShowIdleStates(u32),
    /// Allow/forbid frequency and capability queries from a VM.
    SetQuery {
        /// VM name.
        vm: String,
        /// Allowed?
        allow: bool,
    },
    /// Names of registered VMs (completion).
    VmNames,
    /// Counters (benchmarks).
    Stats,
    /// Restore the host CPUs and stop.
    Quit,
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

struct Request {
    cmd: MonCmd,
    reply: mpsc::Sender<Outcome>,
}

/// A cloneable way to send commands to the loop.
#[derive(Clone)]
pub struct MonitorHandle {
    tx: mpsc::Sender<Request>,
    wake: Arc<EventFd>,
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
        if self.tx.send(Request { cmd, reply }).is_err() || self.wake.signal().is_err() {
            return Outcome::err("the monitor has stopped");
        }
        rx.recv()
            .unwrap_or_else(|_| Outcome::err("the monitor has stopped"))
    }
}

const T_WAKE: u64 = 1;
const T_SIGNAL: u64 = 2;
const T_INOTIFY: u64 = 3;
const T_TIMER: u64 = 4;
const T_CHANNEL: u64 = 5;
const T_GOV: u64 = 6;

fn chan_token(idx: usize, gen: u32) -> u64 {
    (T_CHANNEL << 56) | (u64::from(gen & 0x00ff_ffff) << 32) | (idx as u64 & 0xffff_ffff)
}

/// Connection state of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    /// Connected to QEMU's socket.
    Connected,
    /// Waiting for the socket (absent, refused, or after a hang-up).
    Waiting,
}

#[derive(Debug, Default, Clone, Copy)]
struct ChanStats {
    packets: u64,
    accepted: u64,
    refused: u64,
    replies_dropped: u64,
    connects: u64,
}

struct Channel {
    vm: usize,
    num: u32,
    path: PathBuf,
    stream: Option<UnixStream>,
    link: Link,
    why: String,
    enabled: bool,
    gen: u32,
    partial: Vec<u8>,
    out: Vec<u8>,
    out_off: usize,
    want_out: bool,
    backoff: Duration,
    stats: ChanStats,
    limiter: RateLimit,
}

struct Vm {
    info: VmInfo,
    allow_query: bool,
    policy: Option<ChannelPacket>,
    channels: BTreeMap<u32, usize>,
    accepted: u64,
    refused: u64,
    wire_name: Option<VmName>,
}

/// The state owned by the loop thread.
pub struct Monitor {
    cfg: MonitorConfig,
    epoll: Epoll,
    wake: Arc<EventFd>,
    rx: mpsc::Receiver<Request>,
    signal: Option<SignalFd>,
    inotify: Option<Inotify>,
    timer: TimerFd,
    timer_at: Option<Instant>,
    retries: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    host: Host,
    host_cpus: u32,
    govs: Governors,
    gov_timer: TimerFd,
    gov_timer_at: Option<Instant>,
    gov_limiter: RateLimit,
    vms: Vec<Option<Vm>>,
    vm_index: HashMap<String, usize>,
    channels: Vec<Option<Channel>>,
    gens: Vec<u32>,
    free: Vec<usize>,
    scratch: Box<[u8]>,
    /// `command` of the packet being handled (sizes refusal replies).
    cur_cmd: u32,
    stop: bool,
}

/// Bytes read from one channel per wake-up before others get their turn.
const READ_BUDGET: usize = 256 * 1024;
/// Bytes per read(2); replies are flushed after each.
const READ_CHUNK: usize = 64 * 1024;

impl Monitor {
    /// Sets up the loop (socket directory, epoll and its sources) and starts
    /// its thread. Returns the command handle and the thread, which ends
    /// after `Quit` or a signal with every host CPU restored.
    pub fn spawn(
        cfg: MonitorConfig,
    ) -> io::Result<(MonitorHandle, std::thread::JoinHandle<io::Result<()>>)> {
        let (handle, mut mon) = Self::new(cfg)?;
        let t = std::thread::Builder::new()
            .name("vmpm-monitor".into())
            .spawn(move || mon.run())?;
        Ok((handle, t))
    }

    /// The loop without its thread (call [`Monitor::run`]).
    pub fn new(cfg: MonitorConfig) -> io::Result<(MonitorHandle, Monitor)> {
        prepare_dir(&cfg.socket_dir, cfg.dir_mode, &cfg.log)?;
        let epoll = Epoll::new()?;
        let wake = Arc::new(EventFd::new()?);
        epoll.add(wake.as_raw_fd(), sys::IN, T_WAKE << 56)?;
        let signal = if cfg.signals {
            let s = SignalFd::new(&[libc::SIGINT, libc::SIGTERM])?;
            epoll.add(s.as_raw_fd(), sys::IN, T_SIGNAL << 56)?;
            Some(s)
        } else {
            None
        };
        let inotify = Inotify::watch(&cfg.socket_dir)?;
        epoll.add(inotify.as_raw_fd(), sys::IN, T_INOTIFY << 56)?;
        let timer = TimerFd::new()?;
        epoll.add(timer.as_raw_fd(), sys::IN, T_TIMER << 56)?;
        let gov_timer = TimerFd::new()?;
        epoll.add(gov_timer.as_raw_fd(), sys::IN, T_GOV << 56)?;
        let govs = Governors::new(cfg.proc_stat.clone());
        let host = Host::new(cfg.sysfs.clone());
        let host_cpus = if cfg.host_cpus > 0 {
            cfg.host_cpus
        } else {
            count_cpus(cfg.sysfs.dir())
        };
        let (tx, rx) = mpsc::channel();
        let handle = MonitorHandle {
            tx,
            wake: Arc::clone(&wake),
        };
        let mon = Monitor {
            cfg,
            epoll,
            wake,
            rx,
            signal,
            inotify: Some(inotify),
            timer,
            timer_at: None,
            retries: BinaryHeap::new(),
            host,
            host_cpus,
            govs,
            gov_timer,
            gov_timer_at: None,
            gov_limiter: RateLimit::new(),
            vms: Vec::new(),
            vm_index: HashMap::new(),
            channels: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
            cur_cmd: 0,
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
        let r = self.run_loop();
        self.shutdown();
        r
    }

    fn run_loop(&mut self) -> io::Result<()> {
        let mut events = sys::events(1024);
        while !self.stop {
            let n = self.epoll.wait(&mut events, None)?;
            for ev in &events[..n] {
                let (bits, token) = (ev.events, ev.u64);
                match token >> 56 {
                    T_WAKE => self.on_wake(),
                    T_SIGNAL => self.on_signal(),
                    T_INOTIFY => self.on_inotify(),
                    T_TIMER => self.on_timer(),
                    T_GOV => self.on_gov_timer(),
                    T_CHANNEL => {
                        let idx = (token & 0xffff_ffff) as usize;
                        let gen = ((token >> 32) & 0x00ff_ffff) as u32;
                        self.on_channel(idx, gen, bits);
                    }
                    other => self.log(Level::Debug, &format!("spurious epoll token kind {other}")),
                }
                if self.stop {
                    break;
                }
            }
        }
        Ok(())
    }

    fn shutdown(&mut self) {
        for idx in 0..self.channels.len() {
            if self.channels[idx].is_some() {
                self.close_stream(idx);
            }
        }
        // the governors are engine state only: stop sampling, forget them;
        // rte_power's exit below gives the kernel its own governor back
        self.govs.clear();
        let _ = self.gov_timer.set(None);
        self.gov_timer_at = None;
        for e in self.host.restore_all() {
            self.log(Level::Error, &e);
        }
        // answer whoever is still waiting
        while let Ok(r) = self.rx.try_recv() {
            let _ = r.reply.send(Outcome::err("the monitor has stopped"));
        }
    }

    fn on_wake(&mut self) {
        self.wake.drain();
        while let Ok(req) = self.rx.try_recv() {
            let quit = matches!(req.cmd, MonCmd::Quit);
            let out = self.command(req.cmd);
            let _ = req.reply.send(out);
            if quit {
                self.stop = true;
                return;
            }
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

    fn on_inotify(&mut self) {
        let names = self
            .inotify
            .as_ref()
            .map(Inotify::read_names)
            .unwrap_or_default();
        for name in names {
            if let Some(idx) = self.channel_by_file(&name) {
                let waiting = self.channels[idx]
                    .as_ref()
                    .is_some_and(|c| c.link == Link::Waiting);
                if waiting {
                    self.try_connect(idx);
                }
            }
        }
    }

    fn on_timer(&mut self) {
        self.timer.drain();
        self.timer_at = None;
        let now = Instant::now();
        while let Some(Reverse((at, idx, gen))) = self.retries.peek().copied() {
            if at > now {
                break;
            }
            self.retries.pop();
            let due = self
                .channels
                .get(idx)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.gen == gen && c.link == Link::Waiting);
            if due {
                self.try_connect(idx);
            }
        }
        self.arm_timer();
    }

    fn arm_timer(&mut self) {
        let next = self.retries.peek().map(|Reverse((at, _, _))| *at);
        if next == self.timer_at {
            return;
        }
        let after = next.map(|at| at.saturating_duration_since(Instant::now()));
        if self.timer.set(after).is_ok() {
            self.timer_at = next;
        }
    }

    fn schedule_retry(&mut self, idx: usize) {
        let Some(ch) = self.channels.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let at = Instant::now() + ch.backoff;
        ch.backoff = (ch.backoff * 2).min(self.cfg.retry_max);
        let gen = ch.gen;
        self.retries.push(Reverse((at, idx, gen)));
        if self.timer_at.is_none_or(|t| at < t) {
            self.timer_at = None;
            self.arm_timer();
        }
    }

    fn channel_by_file(&self, file: &str) -> Option<usize> {
        let (vm, num) = file.rsplit_once('.')?;
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let num: u32 = num.parse().ok()?;
        let v = self.vms.get(*self.vm_index.get(vm)?)?.as_ref()?;
        v.channels.get(&num).copied()
    }

    // ----- channel I/O -------------------------------------------------

    fn try_connect(&mut self, idx: usize) {
        let Some(ch) = self.channels.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        match sys::unix_connect(&ch.path) {
            Ok(stream) => {
                let token = chan_token(idx, ch.gen);
                if let Err(e) = self
                    .epoll
                    .add(stream.as_raw_fd(), sys::IN | sys::RDHUP, token)
                {
                    ch.why = format!("epoll: {e}");
                    return;
                }
                ch.stream = Some(stream);
                ch.link = Link::Connected;
                ch.why.clear();
                ch.partial.clear();
                ch.out.clear();
                ch.out_off = 0;
                ch.want_out = false;
                ch.stats.connects += 1;
                let (vm, num, path) = (ch.vm, ch.num, ch.path.display().to_string());
                let msg = format!(
                    "VM '{}' channel {num}: connected to {path}",
                    self.vm_name(vm)
                );
                self.log(Level::Info, &msg);
            }
            Err(e) => {
                let missing = e.kind() == io::ErrorKind::NotFound;
                ch.why = if missing {
                    "socket not present".to_string()
                } else {
                    e.to_string()
                };
                // a missing socket is reported by inotify when it appears
                if !missing {
                    self.schedule_retry(idx);
                }
            }
        }
    }

    fn vm_name(&self, vm: usize) -> &str {
        self.vms
            .get(vm)
            .and_then(Option::as_ref)
            .map_or("?", |v| v.info.name.as_str())
    }

    /// Drops the connection (the channel stays registered).
    fn close_stream(&mut self, idx: usize) {
        let Some(ch) = self.channels.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        if let Some(s) = ch.stream.take() {
            let _ = self.epoll.delete(s.as_raw_fd());
        }
        ch.link = Link::Waiting;
        ch.partial.clear();
        ch.out.clear();
        ch.out_off = 0;
        ch.want_out = false;
        // a new generation: events still queued for the old stream are stale
        ch.gen = ch.gen.wrapping_add(1) & 0x00ff_ffff;
        self.gens[idx] = ch.gen;
    }

    fn hang_up(&mut self, idx: usize, why: &str) {
        self.close_stream(idx);
        let (vm, num) = match self.channels.get_mut(idx).and_then(Option::as_mut) {
            Some(ch) => {
                ch.why = why.to_string();
                (ch.vm, ch.num)
            }
            None => return,
        };
        let name = self.vm_name(vm).to_string();
        self.log(
            Level::Info,
            &format!("VM '{name}' channel {num}: {why}; will re-attach when the socket is back"),
        );
        if let Some(tx) = &self.cfg.refresh_hint {
            let _ = tx.send(name);
        }
        self.schedule_retry(idx);
    }

    fn on_channel(&mut self, idx: usize, gen: u32, bits: u32) {
        let live = self
            .channels
            .get(idx)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.gen == gen && c.stream.is_some());
        if !live {
            return;
        }
        if bits & (sys::IN | sys::RDHUP | sys::HUP | sys::ERR) != 0 {
            match self.read_channel(idx) {
                ReadEnd::More => {}
                ReadEnd::Eof => return self.hang_up(idx, "QEMU closed the connection"),
                ReadEnd::Error(e) => return self.hang_up(idx, &format!("read error: {e}")),
            }
        }
        if bits & sys::OUT != 0
            || self.channels[idx]
                .as_ref()
                .is_some_and(|c| c.out.len() > c.out_off)
        {
            self.flush(idx);
        }
    }

    /// Reads up to the budget and handles every complete packet.
    fn read_channel(&mut self, idx: usize) -> ReadEnd {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut total = 0;
        let end = loop {
            let Some(stream) = self.channels[idx].as_mut().and_then(|c| c.stream.as_mut()) else {
                break ReadEnd::More;
            };
            let n = match stream.read(&mut scratch[..]) {
                Ok(0) => break ReadEnd::Eof,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break ReadEnd::More,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break ReadEnd::Error(e),
            };
            self.consume(idx, &scratch[..n]);
            if self.channels[idx]
                .as_ref()
                .is_some_and(|c| c.out.len() > c.out_off)
            {
                self.flush(idx);
            }
            total += n;
            if total >= READ_BUDGET
                || self.channels[idx]
                    .as_ref()
                    .is_none_or(|c| c.stream.is_none())
            {
                break ReadEnd::More;
            }
        };
        self.scratch = scratch;
        end
    }

    /// Frames `data` (after any partial packet kept from before).
    fn consume(&mut self, idx: usize, mut data: &[u8]) {
        let mut partial = match self.channels[idx].as_mut() {
            Some(c) => std::mem::take(&mut c.partial),
            None => return,
        };
        if !partial.is_empty() {
            let need = PACKET_SIZE - partial.len();
            let take = need.min(data.len());
            partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if partial.len() == PACKET_SIZE {
                self.handle(idx, &partial);
                partial.clear();
            }
        }
        let mut chunks = data.chunks_exact(PACKET_SIZE);
        for pkt in &mut chunks {
            self.handle(idx, pkt);
        }
        partial.extend_from_slice(chunks.remainder());
        if let Some(c) = self.channels[idx].as_mut() {
            c.partial = partial;
        }
    }

    fn flush(&mut self, idx: usize) {
        let Some(ch) = self.channels.get_mut(idx).and_then(Option::as_mut) else {
            return;
        };
        let Some(stream) = ch.stream.as_mut() else {
            return;
        };
        let mut failed = None;
        while ch.out_off < ch.out.len() {
            match stream.write(&ch.out[ch.out_off..]) {
                Ok(0) => break,
                Ok(n) => ch.out_off += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            return self.hang_up(idx, &format!("write error: {e}"));
        }
        let pending = ch.out_off < ch.out.len();
        if !pending {
            ch.out.clear();
            ch.out_off = 0;
        }
        if pending != ch.want_out {
            ch.want_out = pending;
            let ev = sys::IN | sys::RDHUP | if pending { sys::OUT } else { 0 };
            let fd = stream.as_raw_fd();
            let _ = self.epoll.modify(fd, ev, chan_token(idx, ch.gen));
        }
    }

    // ----- requests ----------------------------------------------------

    fn enqueue(&mut self, idx: usize, bytes: &[u8]) {
        let max = self.cfg.max_out_bytes;
        let Some(ch) = self.channels[idx].as_mut() else {
            return;
        };
        if ch.out.len() - ch.out_off + bytes.len() > max {
            // whole replies only: a guest that never reads loses replies,
            // never the framing of the ones it gets
            ch.stats.replies_dropped += 1;
            return;
        }
        if ch.out_off > 0 && ch.out_off == ch.out.len() {
            ch.out.clear();
            ch.out_off = 0;
        }
        ch.out.extend_from_slice(bytes);
    }

    /// Logs a guest-triggered event, rate-limited per channel.
    fn guest_log(&mut self, idx: usize, level: Level, msg: &str) {
        let (burst, window) = (self.cfg.log_burst, self.cfg.log_window);
        let Some(ch) = self.channels[idx].as_mut() else {
            return;
        };
        let (ok, suppressed) = ch.limiter.check(Instant::now(), burst, window);
        let (vm, num) = (ch.vm, ch.num);
        if suppressed > 0 {
            let m = format!(
                "VM '{}' channel {num}: {suppressed} similar messages suppressed",
                self.vm_name(vm)
            );
            self.log(Level::Warn, &m);
        }
        if ok {
            let m = format!("VM '{}' channel {num}: {msg}", self.vm_name(vm));
            self.log(level, &m);
        }
    }

    fn refuse(&mut self, idx: usize, what: &str, why: &str, reply: Option<ChannelPacket>) {
        if let Some(ch) = self.channels[idx].as_mut() {
            ch.stats.refused += 1;
            let vm = ch.vm;
            if let Some(v) = self.vms[vm].as_mut() {
                v.refused += 1;
            }
        }
        self.guest_log(idx, Level::Warn, &format!("refused {what}: {why}"));
        let Some(p) = reply else { return };
        // a refused query gets a NACK of the size the guest reads for that
        // query (88 or 184 bytes) so its stream stays framed; DPDK's host
        // sent nothing and the guest timed out
        match self.cur_cmd {
            wire::QUERY_FREQ | wire::QUERY_FREQ_LIST => {
                let mut r = FreqListPacket::new();
                r.command = wire::CMD_NACK;
                r.resource_id = p.resource_id;
                r.unit = p.unit;
                r.vm_name = p.vm_name.to_wire();
                self.enqueue(idx, &r.encode());
            }
            wire::QUERY_CAPS | wire::QUERY_CAPS_LIST => {
                let mut r = CapsListPacket::new();
                r.command = wire::CMD_NACK;
                r.resource_id = p.resource_id;
                r.unit = p.unit;
                r.vm_name = p.vm_name.to_wire();
                self.enqueue(idx, &r.encode());
            }
            _ => self.enqueue(idx, &p.encode()),
        }
    }

    fn accepted(&mut self, idx: usize) {
        if let Some(ch) = self.channels[idx].as_mut() {
            ch.stats.accepted += 1;
            let vm = ch.vm;
            if let Some(v) = self.vms[vm].as_mut() {
                v.accepted += 1;
            }
        }
    }

    /// One complete 464-byte packet from channel `idx`.
    fn handle(&mut self, idx: usize, bytes: &[u8]) {
        let Some(ch) = self.channels[idx].as_mut() else {
            return;
        };
        ch.stats.packets += 1;
        ch.backoff = self.cfg.retry_min;
        let (vm_idx, enabled) = (ch.vm, ch.enabled);
        let hdr = match PacketHeader::decode_lenient(bytes) {
            Ok(h) => h,
            Err(_) => return,
        };
        self.cur_cmd = hdr.command;
        let what = command_name(hdr.command, hdr.resource_id);
        let pkt = match ChannelPacket::decode(bytes) {
            Ok(p) => p,
            Err(e) => {
                match hdr.command_kind() {
                    // DPDK's guests send CONNECT with uninitialised bytes
                    Ok(Command::Connect) => {}
                    // DPDK never answers a removal
                    Ok(Command::PktPolicyRemove) => {
                        self.refuse(idx, &what, &format!("malformed packet: {e}"), None)
                    }
                    _ => self.refuse(
                        idx,
                        &what,
                        &format!("malformed packet: {e}"),
                        Some(hdr.nack()),
                    ),
                }
                return;
            }
        };
        let Ok(cmd) = pkt.command_kind() else {
            return self.refuse(
                idx,
                &what,
                "unknown command",
                Some(pkt.reply(Response::Nack)),
            );
        };
        if cmd == Command::Connect {
            return;
        }
        let silent = cmd == Command::PktPolicyRemove;
        let nack = (!silent).then(|| pkt.reply(Response::Nack));
        if !enabled {
            return self.refuse(idx, &what, "channel disabled", nack);
        }
        let Some(vm) = self.vms[vm_idx].as_ref() else {
            return;
        };
        if !pkt.vm_name.is_empty() && pkt.vm_name.as_str() != vm.info.name {
            let why = format!("vm_name '{}' is not this channel's VM", pkt.vm_name);
            return self.refuse(idx, &what, &why, nack);
        }
        if pkt.core_kind() == CoreType::Physical {
            return self.refuse(
                idx,
                &what,
                "core_type PHYSICAL is not accepted from a guest",
                nack,
            );
        }
        let nvcpus = vm.info.vcpus.len();
        match cmd {
            Command::CpuPower => {
                let pins = match self.pins_of(vm_idx, pkt.resource_id) {
                    Ok(p) => p,
                    Err(why) => return self.refuse(idx, &what, &why, nack),
                };
                let op = match pkt.unit_kind() {
                    Ok(u) => FreqOp::from_unit(u),
                    Err(e) => return self.refuse(idx, &what, &e.to_string(), nack),
                };
                // only userspace CPUs take guest requests; a vCPU on several
                // CPUs is refused as a whole (nothing is written)
                if let Some((cpu, g)) = pins
                    .iter()
                    .map(|c| (c, self.govs.governor(c)))
                    .find(|(_, g)| *g != Governor::Userspace)
                {
                    let why = format!(
                        "CPU {cpu} is under the {g} governor; guest requests are served only under userspace"
                    );
                    return self.refuse(idx, &what, &why, nack);
                }
                match self.host.apply_all(&pins, op) {
                    Ok(()) => {
                        if let Some(t) = self.cfg.trace.as_mut() {
                            t(&pkt);
                        }
                        self.accepted(idx);
                        self.enqueue(idx, &pkt.reply(Response::Ack).encode());
                    }
                    Err(e) => {
                        let why = format!("{} on CPU(s) {pins} failed: {e}", op.name());
                        self.refuse(idx, &what, &why, nack);
                    }
                }
            }
            Command::PktPolicy => {
                if let Some(v) = pkt.vcpus().iter().find(|v| usize::from(**v) >= nvcpus) {
                    let why = format!("policy names vCPU {v}, VM has {nvcpus}");
                    return self.refuse(idx, &what, &why, nack);
                }
                if let Some(v) = self.vms[vm_idx].as_mut() {
                    v.policy = Some(pkt);
                }
                self.accepted(idx);
                self.guest_log(
                    idx,
                    Level::Info,
                    "policy stored (the policy engine is not part of this monitor)",
                );
                self.enqueue(idx, &pkt.reply(Response::Ack).encode());
            }
            Command::PktPolicyRemove => {
                let had = self.vms[vm_idx]
                    .as_mut()
                    .and_then(|v| v.policy.take())
                    .is_some();
                self.accepted(idx);
                let msg = if had {
                    "policy removed"
                } else {
                    "no policy to remove"
                };
                self.guest_log(idx, Level::Info, msg);
            }
            Command::QueryFreqList
            | Command::QueryFreq
            | Command::QueryCapsList
            | Command::QueryCaps => {
                self.query(idx, vm_idx, cmd, &pkt, &what);
            }
            Command::Connect => {}
        }
    }

    /// The pin set of `vcpu` of a VM, or why the guest may not use it.
    fn pins_of(&self, vm_idx: usize, vcpu: u64) -> Result<CpuSet, String> {
        let vm = self.vms[vm_idx].as_ref().ok_or("VM removed")?;
        let n = vm.info.vcpus.len();
        let pins = usize::try_from(vcpu)
            .ok()
            .and_then(|v| vm.info.vcpus.get(v))
            .ok_or_else(|| format!("vCPU {vcpu} out of range (VM has {n})"))?;
        if pins.is_empty() {
            return Err(format!("vCPU {vcpu} has no host CPU"));
        }
        if self.host_cpus > 1 && pins.len() >= self.host_cpus as usize {
            return Err(format!(
                "vCPU {vcpu} is not pinned (may run on every host CPU)"
            ));
        }
        Ok(pins.clone())
    }

    fn query(&mut self, idx: usize, vm_idx: usize, cmd: Command, pkt: &ChannelPacket, what: &str) {
        let nack = Some(pkt.reply(Response::Nack));
        let Some(vm) = self.vms[vm_idx].as_ref() else {
            return;
        };
        if !vm.allow_query {
            return self.refuse(
                idx,
                what,
                "queries are not enabled for this VM (set_query)",
                nack,
            );
        }
        let nvcpus = vm.info.vcpus.len();
        let n = nvcpus.min(wire::MAX_VCPU_PER_VM);
        let single = matches!(cmd, Command::QueryFreq | Command::QueryCaps);
        let wanted: Vec<usize> = if single {
            match usize::try_from(pkt.resource_id).ok().filter(|v| *v < n) {
                Some(v) => vec![v],
                None => {
                    let why = format!(
                        "vCPU {} out of range (VM has {nvcpus}, replies carry at most {})",
                        pkt.resource_id,
                        wire::MAX_VCPU_PER_VM
                    );
                    return self.refuse(idx, what, &why, nack);
                }
            }
        } else {
            (0..n).collect()
        };
        let name = vm
            .wire_name
            .map(|n| n.to_wire())
            .unwrap_or([0; wire::VM_MAX_NAME_SZ]);
        let mut pins = Vec::with_capacity(wanted.len());
        for &v in &wanted {
            match self.pins_of(vm_idx, v as u64) {
                Ok(p) => pins.push((v, p)),
                Err(why) => return self.refuse(idx, what, &why, nack),
            }
        }
        let num_vcpu = u8::try_from(n).unwrap_or(u8::MAX);
        if matches!(cmd, Command::QueryFreq | Command::QueryFreqList) {
            let mut r = FreqListPacket::new();
            r.resource_id = pkt.resource_id;
            r.unit = pkt.unit;
            r.vm_name = name;
            r.num_vcpu = num_vcpu;
            for (v, p) in &pins {
                let cpu = p.as_slice()[0];
                match self.host.frequency(cpu) {
                    Ok(f) => r.freq_list[*v] = f,
                    Err(e) => {
                        return self.refuse(idx, what, &format!("cpu {cpu}: {e}"), nack);
                    }
                }
            }
            self.accepted(idx);
            self.enqueue(idx, &r.encode());
        } else {
            let mut r = CapsListPacket::new();
            r.resource_id = pkt.resource_id;
            r.unit = pkt.unit;
            r.vm_name = name;
            r.num_vcpu = num_vcpu;
            for (v, p) in &pins {
                let cpu = p.as_slice()[0];
                match self.host.capabilities(cpu) {
                    Ok(c) => {
                        r.turbo[*v] = u64::from(c.turbo);
                        r.priority[*v] = u64::from(c.priority);
                    }
                    Err(e) => {
                        return self.refuse(idx, what, &format!("cpu {cpu}: {e}"), nack);
                    }
                }
            }
            self.accepted(idx);
            self.enqueue(idx, &r.encode());
        }
    }

    // ----- commands ----------------------------------------------------

    fn vm_idx(&self, name: &str) -> Result<usize, Outcome> {
        self.vm_index
            .get(name)
            .copied()
            .ok_or_else(|| Outcome::err(format!("VM '{name}' not found (add it with add_vm)")))
    }

    fn command(&mut self, cmd: MonCmd) -> Outcome {
        let r = match cmd {
            MonCmd::AddVm(info) => self.add_vm(info),
            MonCmd::UpdateVm(info) => Ok(self.update_vm(info)),
            MonCmd::VmGone(name) => Ok(self.vm_gone(&name)),
            MonCmd::RmVm { name, force } => self.rm_vm(&name, force),
            MonCmd::AddChannels { vm, list } => self.add_channels(&vm, &list),
            MonCmd::SetChannelStatus { vm, list, enabled } => {
                self.set_channel_status(&vm, &list, enabled)
            }
            MonCmd::ShowVm(name) => self.show_vm(&name),
            MonCmd::ListVms => Ok(self.list_vms()),
            MonCmd::ShowChannels => Ok(self.show_channels()),
            MonCmd::ShowCpuFreq { cpus, mask } => Ok(self.show_cpu_freq(&cpus, mask)),
            MonCmd::SetCpuFreq { cpus, op } => Ok(self.set_cpu_freq(&cpus, op)),
            MonCmd::SetQuery { vm, allow } => self.set_query(&vm, allow),
            MonCmd::SetGovernor { cpu, governor } => self.set_governor(cpu, governor),
            MonCmd::SetSamplingRate { cpu, us } => self.set_sampling_rate(cpu, us),
            MonCmd::SetUpThreshold { cpu, pct } => self.set_up_threshold(cpu, pct),
            MonCmd::ShowGovernor(cpu) => self.show_governor(cpu),
            MonCmd::ShowFreqStates(cpu) => self.show_freq_states(cpu),
            MonCmd::ShowIdleStates(cpu) => self.show_idle_states(cpu),
            MonCmd::VmNames => Ok(Outcome::ok(
                self.vms
                    .iter()
                    .flatten()
                    .map(|v| v.info.name.clone())
                    .collect::<Vec<_>>()
                    .join("\n"),
            )),
            MonCmd::Stats => Ok(self.stats()),
            MonCmd::Quit => Ok(Outcome::ok("restoring host CPUs and stopping")),
        };
        r.unwrap_or_else(|e| e)
    }

    fn add_vm(&mut self, info: VmInfo) -> Result<Outcome, Outcome> {
        if self.vm_index.contains_key(&info.name) {
            return Err(Outcome::err(format!(
                "Unable to add VM: VM '{}' already exists",
                info.name
            )));
        }
        let name = info.name.clone();
        let wire_name = VmName::new(&name).ok();
        let mut text = format!(
            "Added VM '{name}' ({}, {} vCPUs)",
            if info.active { "ACTIVE" } else { "INACTIVE" },
            info.vcpus.len()
        );
        if wire_name.is_none() {
            text.push_str(&format!(
                "\nnote: the name is longer than {} bytes; guests must send an empty vm_name",
                wire::VM_MAX_NAME_SZ - 1
            ));
        }
        let vm = Vm {
            info,
            allow_query: false,
            policy: None,
            channels: BTreeMap::new(),
            accepted: 0,
            refused: 0,
            wire_name,
        };
        let idx = match self.vms.iter().position(Option::is_none) {
            Some(i) => {
                self.vms[i] = Some(vm);
                i
            }
            None => {
                self.vms.push(Some(vm));
                self.vms.len() - 1
            }
        };
        self.vm_index.insert(name, idx);
        Ok(Outcome::ok(text))
    }

    fn update_vm(&mut self, info: VmInfo) -> Outcome {
        let Some(&idx) = self.vm_index.get(&info.name) else {
            return Outcome::ok("");
        };
        let Some(vm) = self.vms[idx].as_mut() else {
            return Outcome::ok("");
        };
        if vm.info == info {
            return Outcome::ok("unchanged");
        }
        let started = info.active && !vm.info.active;
        let msg = format!(
            "VM '{}': hypervisor data changed ({} -> {}, {} vCPUs)",
            info.name,
            if vm.info.active { "active" } else { "inactive" },
            if info.active { "active" } else { "inactive" },
            info.vcpus.len()
        );
        vm.info = info;
        let waiting: Vec<usize> = if started {
            vm.channels.values().copied().collect()
        } else {
            Vec::new()
        };
        self.log(Level::Info, &msg);
        for c in waiting {
            if self.channels[c]
                .as_ref()
                .is_some_and(|ch| ch.link == Link::Waiting)
            {
                self.try_connect(c);
            }
        }
        Outcome::ok("updated")
    }

    fn vm_gone(&mut self, name: &str) -> Outcome {
        if let Some(vm) = self.vm_index.get(name).and_then(|&i| self.vms[i].as_mut()) {
            if vm.info.active {
                vm.info.active = false;
                self.log(
                    Level::Warn,
                    &format!("VM '{name}' is no longer known to the hypervisor"),
                );
            }
        }
        Outcome::ok("")
    }

    fn rm_vm(&mut self, name: &str, force: bool) -> Result<Outcome, Outcome> {
        let idx = self.vm_idx(name)?;
        let chans: Vec<usize> = self.vms[idx]
            .as_ref()
            .map(|v| v.channels.values().copied().collect())
            .unwrap_or_default();
        if !chans.is_empty() && !force {
            return Err(Outcome::err(format!(
                "Unable to remove VM '{name}', there are {} channels still active (use rm_vm {name} --force)",
                chans.len()
            )));
        }
        for c in chans {
            self.remove_channel(c);
        }
        self.vms[idx] = None;
        self.vm_index.remove(name);
        Ok(Outcome::ok(format!("Removed VM '{name}'")))
    }

    fn remove_channel(&mut self, idx: usize) {
        self.close_stream(idx);
        if let Some(ch) = self.channels[idx].take() {
            if let Some(v) = self.vms[ch.vm].as_mut() {
                v.channels.remove(&ch.num);
            }
            self.free.push(idx);
        }
    }

    fn add_channels(&mut self, vm: &str, list: &ChanList) -> Result<Outcome, Outcome> {
        let vidx = self.vm_idx(vm)?;
        let nums: Vec<u32> = match list {
            ChanList::List(s) => s.iter().collect(),
            ChanList::All => {
                let mut found = Vec::new();
                let dir = std::fs::read_dir(&self.cfg.socket_dir).map_err(|e| {
                    Outcome::err(format!(
                        "cannot read {}: {e}",
                        self.cfg.socket_dir.display()
                    ))
                })?;
                let prefix = format!("{vm}.");
                for entry in dir.flatten() {
                    let f = entry.file_name();
                    let Some(f) = f.to_str() else { continue };
                    let Some(n) = f.strip_prefix(&prefix) else {
                        continue;
                    };
                    if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                        if let Ok(n) = n.parse::<u32>() {
                            found.push(n);
                        }
                    }
                }
                found.sort_unstable();
                if found.is_empty() {
                    return Err(Outcome::err(format!(
                        "No channel sockets for VM '{vm}' in {} (expected {vm}.<N>)",
                        self.cfg.socket_dir.display()
                    )));
                }
                found
            }
        };
        let mut lines = Vec::new();
        let mut added = 0;
        for num in nums {
            let exists = self.vms[vidx]
                .as_ref()
                .is_some_and(|v| v.channels.contains_key(&num));
            if exists {
                lines.push(format!(
                    "[{num}]: channel already exists, skipping '{vm}.{num}'"
                ));
                continue;
            }
            let path = self.cfg.socket_dir.join(format!("{vm}.{num}"));
            let idx = match self.free.pop() {
                Some(i) => i,
                None => {
                    self.channels.push(None);
                    self.gens.push(0);
                    self.channels.len() - 1
                }
            };
            self.channels[idx] = Some(Channel {
                vm: vidx,
                num,
                path: path.clone(),
                stream: None,
                link: Link::Waiting,
                why: String::new(),
                enabled: true,
                gen: self.gens[idx],
                partial: Vec::with_capacity(PACKET_SIZE),
                out: Vec::new(),
                out_off: 0,
                want_out: false,
                backoff: self.cfg.retry_min,
                stats: ChanStats::default(),
                limiter: RateLimit::new(),
            });
            if let Some(v) = self.vms[vidx].as_mut() {
                v.channels.insert(num, idx);
            }
            self.try_connect(idx);
            added += 1;
            let ch = self.channels[idx].as_ref();
            match ch.map(|c| (c.link, c.why.clone())) {
                Some((Link::Connected, _)) => {
                    lines.push(format!("[{num}]: connected {}", path.display()))
                }
                Some((_, why)) => lines.push(format!(
                    "[{num}]: waiting for {} ({why}); attaches when QEMU creates it",
                    path.display()
                )),
                None => {}
            }
        }
        lines.push(format!("Added {added} channels for VM '{vm}'"));
        Ok(Outcome::ok(lines.join("\n")))
    }

    fn set_channel_status(
        &mut self,
        vm: &str,
        list: &ChanList,
        enabled: bool,
    ) -> Result<Outcome, Outcome> {
        let vidx = self.vm_idx(vm)?;
        let chans = self.vms[vidx]
            .as_ref()
            .map(|v| v.channels.clone())
            .unwrap_or_default();
        let targets: Vec<usize> = match list {
            ChanList::All => chans.values().copied().collect(),
            ChanList::List(s) => {
                let missing: Vec<String> = s
                    .iter()
                    .filter(|n| !chans.contains_key(n))
                    .map(|n| n.to_string())
                    .collect();
                if !missing.is_empty() {
                    return Err(Outcome::err(format!(
                        "VM '{vm}' has no channel {} (nothing changed)",
                        missing.join(", ")
                    )));
                }
                s.iter().filter_map(|n| chans.get(&n).copied()).collect()
            }
        };
        for &c in &targets {
            if let Some(ch) = self.channels[c].as_mut() {
                ch.enabled = enabled;
            }
        }
        Ok(Outcome::ok(format!(
            "Updated status of {} channels for VM '{vm}'",
            targets.len()
        )))
    }

    fn set_query(&mut self, vm: &str, allow: bool) -> Result<Outcome, Outcome> {
        let idx = self.vm_idx(vm)?;
        if let Some(v) = self.vms[idx].as_mut() {
            v.allow_query = allow;
        }
        Ok(Outcome::ok(format!(
            "Queries {} for VM '{vm}'",
            if allow { "enabled" } else { "disabled" }
        )))
    }

    fn chan_status(ch: &Channel) -> &'static str {
        match (ch.link, ch.enabled) {
            (Link::Connected, true) => "CONNECTED",
            (Link::Connected, false) => "DISABLED",
            (Link::Waiting, true) => "DISCONNECTED",
            (Link::Waiting, false) => "DISCONNECTED, DISABLED",
        }
    }

    fn show_vm(&self, name: &str) -> Result<Outcome, Outcome> {
        let idx = self.vm_idx(name)?;
        let Some(vm) = self.vms[idx].as_ref() else {
            return Err(Outcome::err(format!("VM '{name}' not found")));
        };
        let mut o = Vec::new();
        o.push(format!(
            "VM: '{name}', status = {}",
            if vm.info.active { "ACTIVE" } else { "INACTIVE" }
        ));
        o.push(format!(
            "Query: {}",
            if vm.allow_query {
                "enabled"
            } else {
                "disabled"
            }
        ));
        o.push(format!("Policy: {}", policy_summary(vm.policy.as_ref())));
        o.push(format!("Channels {}", vm.channels.len()));
        for (num, &c) in &vm.channels {
            if let Some(ch) = self.channels[c].as_ref() {
                let why = if ch.link == Link::Waiting && !ch.why.is_empty() {
                    format!(" ({})", ch.why)
                } else {
                    String::new()
                };
                o.push(format!(
                    "  [{num}]: {}, status = {}{why}",
                    ch.path.display(),
                    Self::chan_status(ch)
                ));
            }
        }
        o.push(format!("Virtual CPU(s): {}", vm.info.vcpus.len()));
        for (i, p) in vm.info.vcpus.iter().enumerate() {
            let note = if self.host_cpus > 1 && p.len() >= self.host_cpus as usize {
                " (not pinned: requests refused)"
            } else {
                ""
            };
            o.push(format!(
                "  [{i}]: Physical CPU(s) {p}, mask {}{note}",
                p.to_mask()
            ));
        }
        o.push(format!(
            "Requests: {} accepted, {} refused",
            vm.accepted, vm.refused
        ));
        o.extend(self.smt_warnings(idx));
        Ok(Outcome::ok(o.join("\n")))
    }

    /// Warnings for pCPUs of the VM whose SMT siblings it does not own.
    fn smt_warnings(&self, idx: usize) -> Vec<String> {
        let Some(vm) = self.vms[idx].as_ref() else {
            return Vec::new();
        };
        let owned = CpuSet::from_iter_u32(vm.info.vcpus.iter().flat_map(|s| s.iter()));
        if self.host_cpus > 1 && owned.len() >= self.host_cpus as usize {
            return vec!["warning: the VM has unpinned vCPUs; they are refused".into()];
        }
        let mut out = Vec::new();
        for cpu in owned.iter() {
            let foreign: Vec<u32> = self
                .host
                .siblings(cpu)
                .iter()
                .filter(|s| !owned.contains(*s))
                .collect();
            if foreign.is_empty() {
                continue;
            }
            let users: Vec<String> = self
                .vms
                .iter()
                .flatten()
                .filter(|o| o.info.name != vm.info.name)
                .filter(|o| {
                    o.info
                        .vcpus
                        .iter()
                        .any(|s| foreign.iter().any(|f| s.contains(*f)))
                })
                .map(|o| format!("'{}'", o.info.name))
                .collect();
            let by = if users.is_empty() {
                String::new()
            } else {
                format!(", used by VM {}", users.join(", "))
            };
            let list = CpuSet::from_iter_u32(foreign);
            out.push(format!(
                "warning: pCPU {cpu} shares its SMT core with CPU {list}, which this VM does not own{by}; its frequency may follow the sibling"
            ));
        }
        out
    }

    fn list_vms(&self) -> Outcome {
        let mut names: Vec<&Vm> = self.vms.iter().flatten().collect();
        names.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        if names.is_empty() {
            return Outcome::ok("no VMs (add one with add_vm <name>)");
        }
        let lines: Vec<String> = names
            .iter()
            .map(|v| {
                let connected = v
                    .channels
                    .values()
                    .filter(|&&c| {
                        self.channels[c]
                            .as_ref()
                            .is_some_and(|ch| ch.link == Link::Connected)
                    })
                    .count();
                format!(
                    "{}: {}, {} vCPUs, channels {}/{} connected, query {}, policy {}",
                    v.info.name,
                    if v.info.active { "ACTIVE" } else { "INACTIVE" },
                    v.info.vcpus.len(),
                    connected,
                    v.channels.len(),
                    if v.allow_query { "enabled" } else { "disabled" },
                    if v.policy.is_some() { "set" } else { "none" }
                )
            })
            .collect();
        Outcome::ok(lines.join("\n"))
    }

    fn show_channels(&self) -> Outcome {
        let mut lines = Vec::new();
        for ch in self.channels.iter().flatten() {
            lines.push(format!(
                "{}.{}: {}, status = {}, packets {}, accepted {}, refused {}, replies dropped {}, connects {}",
                self.vm_name(ch.vm),
                ch.num,
                ch.path.display(),
                Self::chan_status(ch),
                ch.stats.packets,
                ch.stats.accepted,
                ch.stats.refused,
                ch.stats.replies_dropped,
                ch.stats.connects
            ));
        }
        lines.sort();
        if lines.is_empty() {
            return Outcome::ok("no channels");
        }
        Outcome::ok(lines.join("\n"))
    }

    fn show_cpu_freq(&self, cpus: &CpuSet, mask: bool) -> Outcome {
        let mut lines = Vec::new();
        let mut ok = true;
        for cpu in cpus.iter() {
            match self.host.frequency(cpu) {
                Ok(f) if mask => lines.push(format!("Core {cpu}: {f}")),
                Ok(f) => lines.push(format!("Core {cpu} frequency: {f}")),
                Err(e) => {
                    ok = false;
                    lines.push(format!("Unable to get frequency for core {cpu}: {e}"));
                }
            }
        }
        Outcome {
            ok,
            text: lines.join("\n"),
        }
    }

    fn set_cpu_freq(&mut self, cpus: &CpuSet, op: FreqOp) -> Outcome {
        let mut lines = Vec::new();
        let mut ok = true;
        for cpu in cpus.iter() {
            match self.operator_apply(cpu, op) {
                Ok(c) => lines.push(format!(
                    "Core {cpu}: {} ({})",
                    op.name(),
                    match c {
                        rte_power::Changed::No => "unchanged",
                        _ => "changed",
                    }
                )),
                Err(e) => {
                    ok = false;
                    lines.push(format!("Error scaling core({cpu}) '{}': {e}", op.name()));
                }
            }
        }
        Outcome {
            ok,
            text: lines.join("\n"),
        }
    }

    fn stats(&self) -> Outcome {
        let (mut p, mut a, mut r, mut d) = (0u64, 0u64, 0u64, 0u64);
        let mut connected = 0;
        for ch in self.channels.iter().flatten() {
            p += ch.stats.packets;
            a += ch.stats.accepted;
            r += ch.stats.refused;
            d += ch.stats.replies_dropped;
            connected += usize::from(ch.link == Link::Connected);
        }
        Outcome::ok(format!(
            "packets {p} accepted {a} refused {r} replies_dropped {d} connected {connected} managed_cpus {} ondemand_cpus {} gov_timer {}",
            self.host.managed().len(),
            self.govs
                .configured()
                .iter()
                .filter(|&&c| self.govs.governor(c) == Governor::Ondemand)
                .count(),
            if self.gov_timer_at.is_some() {
                "armed"
            } else {
                "disarmed"
            }
        ))
    }
}

// ----- governors -------------------------------------------------------

/// The line a refused operator scaling shows.
fn not_userspace(cpu: u32, g: Governor) -> String {
    format!("core {cpu} is under the {g} governor (set_scaling_governor {cpu} userspace first)")
}

impl Monitor {
    /// An operator `set_cpu_freq`: scaling verbs only under userspace;
    /// turbo verbs in every governor, after which a pinned governor pins
    /// again (turbo changes what "max" means).
    fn operator_apply(&mut self, cpu: u32, op: FreqOp) -> Result<rte_power::Changed, String> {
        let g = self.govs.governor(cpu);
        let turbo = matches!(op, FreqOp::EnableTurbo | FreqOp::DisableTurbo);
        if g != Governor::Userspace && !turbo {
            return Err(not_userspace(cpu, g));
        }
        let c = self.host.apply(cpu, op).map_err(|e| e.to_string())?;
        let pin = match g {
            Governor::Performance => Some(FreqOp::Max),
            Governor::Powersave => Some(FreqOp::Min),
            _ => None,
        };
        if let Some(pin) = pin {
            let again = self.host.apply(cpu, pin).map_err(|e| e.to_string())?;
            if again != rte_power::Changed::No {
                return Ok(again);
            }
        }
        Ok(c)
    }

    fn cpu_exists(&self, cpu: u32) -> Result<(), Outcome> {
        if self.host.exists(cpu) {
            Ok(())
        } else {
            Err(Outcome::err(format!("core {cpu} does not exist")))
        }
    }

    fn set_governor(&mut self, cpu: u32, g: Governor) -> Result<Outcome, Outcome> {
        self.cpu_exists(cpu)?;
        let fail = |e: &dyn std::fmt::Display| {
            Outcome::err(format!(
                "Unable to set governor of core {cpu} to {g}: {e} (governor unchanged)"
            ))
        };
        let limits = governor::RateLimits::read(self.host.sysfs(), cpu);
        let mut first = None;
        if g == Governor::Ondemand {
            if let Some(why) = limits.ondemand_refusal() {
                return Err(fail(&why));
            }
            // the first interval starts now; a CPU the load file does not
            // list cannot be governed by load
            let now = self.govs.sample().map_err(|e| fail(&e))?;
            let c = now.get(&cpu).copied().ok_or_else(|| {
                fail(&format!(
                    "{} has no line for cpu{cpu}",
                    self.govs.proc_stat().display()
                ))
            })?;
            first = Some(c);
        }
        // bring the CPU under management (kernel governor userspace) and pin
        let pin = match g {
            Governor::Performance => Some(FreqOp::Max),
            Governor::Powersave => Some(FreqOp::Min),
            _ => None,
        };
        match pin {
            Some(op) => self.host.apply(cpu, op).map(|_| ()),
            None => self.host.lcore(cpu).map(|_| ()),
        }
        .map_err(|e| fail(&e))?;
        let old = self.govs.governor(cpu);
        let st = self.govs.entry(self.host.sysfs(), cpu);
        st.governor = g;
        st.limits = limits;
        if g == Governor::Ondemand {
            st.prev = first;
            st.due = Some(Instant::now() + st.period());
            if old != Governor::Ondemand {
                st.stats = governor::OndemandStats::default();
            }
        } else {
            st.prev = None;
            st.due = None;
        }
        self.arm_gov_timer();
        let khz = self
            .host
            .frequency(cpu)
            .map_or_else(|e| format!("unknown ({e})"), |f| format!("{f} kHz"));
        self.log(
            Level::Info,
            &format!("core {cpu}: governor {old} -> {g}, frequency {khz}"),
        );
        Ok(Outcome::ok(format!(
            "Core {cpu}: governor {g}{} (frequency {khz})",
            if old == g { " (unchanged)" } else { "" }
        )))
    }

    fn set_sampling_rate(&mut self, cpu: u32, us: u32) -> Result<Outcome, Outcome> {
        self.cpu_exists(cpu)?;
        let limits = governor::RateLimits::read(self.host.sysfs(), cpu);
        let us = governor::check_sampling_rate(cpu, us, &limits)
            .map_err(|e| Outcome::err(e.to_string()))?;
        let st = self.govs.entry(self.host.sysfs(), cpu);
        st.limits = limits;
        st.sampling_rate_us = us;
        let ondemand = st.governor == Governor::Ondemand;
        if ondemand {
            // the new period counts from now
            st.due = Some(Instant::now() + st.period());
            self.arm_gov_timer();
        }
        Ok(Outcome::ok(format!(
            "Core {cpu}: sampling_rate {us} us{}",
            if ondemand {
                ""
            } else {
                " (used when the governor is ondemand)"
            }
        )))
    }

    fn set_up_threshold(&mut self, cpu: u32, pct: u32) -> Result<Outcome, Outcome> {
        self.cpu_exists(cpu)?;
        let pct = governor::check_up_threshold(pct).map_err(|e| Outcome::err(e.to_string()))?;
        let st = self.govs.entry(self.host.sysfs(), cpu);
        st.up_threshold = pct;
        let ondemand = st.governor == Governor::Ondemand;
        Ok(Outcome::ok(format!(
            "Core {cpu}: up_threshold {pct} %{}",
            if ondemand {
                ""
            } else {
                " (used when the governor is ondemand)"
            }
        )))
    }

    fn governor_text(&self, cpu: u32) -> String {
        let label = |s: &str| format!("{s:<21}: ");
        let st = self.govs.view(self.host.sysfs(), cpu);
        let managed = self.host.is_managed(cpu);
        let mut o = Vec::new();
        o.push(format!("{}{cpu}", label("cpu id")));
        o.push(format!(
            "{}{}",
            label("current_governor"),
            match st.governor {
                Governor::Userspace => "userspace (guest and operator requests decide)",
                Governor::Performance => "performance (pinned to the highest allowed frequency)",
                Governor::Powersave => "powersave (pinned to the lowest frequency)",
                Governor::Ondemand => "ondemand (load from /proc/stat, Xen's algorithm)",
            }
        ));
        o.push(format!(
            "{}{}",
            label("managed"),
            if managed {
                "yes (kernel governor userspace, restored at exit)"
            } else {
                "no (comes under management at its first request or set command)"
            }
        ));
        o.push(format!(
            "{}{}",
            label("  ondemand tunables"),
            if st.governor == Governor::Ondemand {
                "in use"
            } else {
                "kept for ondemand"
            }
        ));
        o.push(format!(
            "{}max [{}] min [{}] cur [{}] us",
            label("    sampling_rate"),
            st.limits.max_us,
            st.limits.min_us,
            st.sampling_rate_us
        ));
        o.push(format!(
            "{}{} %",
            label("    up_threshold"),
            st.up_threshold
        ));
        if st.governor == Governor::Ondemand {
            o.push(format!(
                "{}{} samples, {} frequency changes, last load {}",
                label("    engine"),
                st.stats.samples,
                st.stats.changes,
                st.stats
                    .last_load
                    .map_or("none yet".to_string(), |l| format!("{l} %"))
            ));
        }
        o.push(format!(
            "{}{}",
            label("current frequency"),
            self.host
                .frequency(cpu)
                .map_or_else(|e| format!("unknown ({e})"), |f| format!("{f} kHz"))
        ));
        o.join("\n")
    }

    fn show_governor(&self, cpu: Option<u32>) -> Result<Outcome, Outcome> {
        if let Some(cpu) = cpu {
            self.cpu_exists(cpu)?;
            return Ok(Outcome::ok(self.governor_text(cpu)));
        }
        let mut cpus = self.host.managed();
        cpus.extend(self.govs.configured());
        cpus.sort_unstable();
        cpus.dedup();
        if cpus.is_empty() {
            return Ok(Outcome::ok(
                "no host CPU under management yet: every CPU is userspace \
                 (show_governor <core> shows one)",
            ));
        }
        let parts: Vec<String> = cpus.iter().map(|&c| self.governor_text(c)).collect();
        Ok(Outcome::ok(parts.join("\n\n")))
    }

    fn show_freq_states(&mut self, cpu: u32) -> Result<Outcome, Outcome> {
        self.cpu_exists(cpu)?;
        let root = self.host.sysfs().clone();
        // what `rte-pm get-cpufreq-states <cpu>` prints ...
        let report = rte_power::stats::kernel_report(&root, cpu).map_err(|e| {
            Outcome::err(format!("[CPU{cpu}] failed to get P-state statistics: {e}"))
        })?;
        let mut text = rte_power::pm_tool::render_pstates(&[report]);
        // ... then, for a CPU the monitor drives, the library's own counters
        if self.host.is_managed(cpu) {
            let st = self.host.lcore(cpu).and_then(|l| l.stats());
            match st {
                Ok(st) => {
                    let r = rte_power::stats::library_report(cpu, root.scaling_driver(cpu), &st);
                    text.push_str(&rte_power::pm_tool::render_pstates(&[r]));
                }
                Err(e) => text.push_str(&format!("library statistics unavailable: {e}\n")),
            }
        }
        Ok(Outcome::ok(text.trim_end().to_string()))
    }

    fn show_idle_states(&self, cpu: u32) -> Result<Outcome, Outcome> {
        self.cpu_exists(cpu)?;
        let ctx = rte_power::pm_tool::Ctx::new(self.host.sysfs().dir(), self.govs.proc_stat());
        let report = rte_power::pm_tool::idle_report(&ctx, cpu).map_err(|e| {
            Outcome::err(format!("[CPU{cpu}] failed to get C-state statistics: {e}"))
        })?;
        let driver = rte_power::idle::driver(&ctx.root);
        let text = rte_power::pm_tool::render_cstates(&driver, &[report]);
        Ok(Outcome::ok(text.trim_end().to_string()))
    }

    fn arm_gov_timer(&mut self) {
        let next = self.govs.next_due();
        if next == self.gov_timer_at {
            return;
        }
        let after = next.map(|at| at.saturating_duration_since(Instant::now()));
        if self.gov_timer.set(after).is_ok() {
            self.gov_timer_at = next;
        }
    }

    /// Logs an engine failure, rate-limited (the engine runs every few ms).
    fn gov_log(&mut self, msg: &str) {
        let (burst, window) = (self.cfg.log_burst, self.cfg.log_window);
        let (ok, suppressed) = self.gov_limiter.check(Instant::now(), burst, window);
        if suppressed > 0 {
            self.log(
                Level::Warn,
                &format!("ondemand: {suppressed} similar messages suppressed"),
            );
        }
        if ok {
            self.log(Level::Error, msg);
        }
    }

    fn on_gov_timer(&mut self) {
        self.gov_timer.drain();
        self.gov_timer_at = None;
        let now = Instant::now();
        let due = self.govs.due(now);
        if !due.is_empty() {
            // one read of the load file for every CPU due
            match self.govs.sample() {
                Ok(counters) => {
                    for &cpu in &due {
                        self.ondemand_sample(cpu, counters.get(&cpu).copied());
                    }
                }
                Err(e) => self.gov_log(&format!("ondemand: cannot read the load: {e}")),
            }
            // the next period starts now (a late wake-up does not bunch up)
            for cpu in due {
                if let Some(st) = self.govs.get_mut(cpu) {
                    st.due = Some(now + st.period());
                }
            }
        }
        self.arm_gov_timer();
    }

    /// One ondemand sample of `cpu` with its current counters.
    fn ondemand_sample(&mut self, cpu: u32, counters: Option<rte_power::stats::procstat::CpuTime>) {
        let Some(now) = counters else {
            return self.gov_log(&format!(
                "ondemand: core {cpu}: no cpu{cpu} line in {} (offline?)",
                self.govs.proc_stat().display()
            ));
        };
        let Some(st) = self.govs.get_mut(cpu) else {
            return;
        };
        let load = st.prev.and_then(|p| ondemand::load_pct(&p, &now));
        st.prev = Some(now);
        st.stats.samples += 1;
        if load.is_some() {
            st.stats.last_load = load;
        }
        let up = st.up_threshold;
        let state = self
            .host
            .lcore(cpu)
            .and_then(|l| Ok((l.freqs()?, l.index()?)));
        let (table, cur) = match state {
            Ok(t) => t,
            Err(e) => return self.gov_log(&format!("ondemand: core {cpu}: {e}")),
        };
        let before = table.get(cur as usize).copied().unwrap_or(0);
        let decision = load.map_or(Decision::Keep, |l| ondemand::decide(l, &table, cur, up));
        let applied = match decision {
            Decision::Max => self.host.apply(cpu, FreqOp::Max),
            Decision::Down(i) => self.host.lcore(cpu).and_then(|l| l.set_index(i)),
            Decision::Keep => Ok(rte_power::Changed::No),
        };
        match applied {
            Ok(rte_power::Changed::No) => {}
            Ok(_) => {
                if let Some(st) = self.govs.get_mut(cpu) {
                    st.stats.changes += 1;
                }
            }
            Err(e) => self.gov_log(&format!("ondemand: core {cpu}: {decision:?} failed: {e}")),
        }
        let after = self.host.frequency(cpu).unwrap_or(0);
        if before != after {
            self.log(
                Level::Debug,
                &format!(
                    "ondemand: core {cpu}: load {}% -> {before} kHz to {after} kHz",
                    load.unwrap_or(0)
                ),
            );
        }
        if let Some(t) = self.cfg.gov_trace.as_mut() {
            t(&GovSample {
                cpu,
                counters: now,
                load,
                decision,
                before_khz: before,
                after_khz: after,
            });
        }
    }
}

enum ReadEnd {
    More,
    Eof,
    Error(io::Error),
}

/// Creates the socket directory (mode `mode`) if missing; refuses a
/// symlink or non-directory; warns about a world-writable one.
fn prepare_dir(dir: &Path, mode: u32, log: &LogSink) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "socket directory {} is a symlink; refusing it",
                dir.display()
            ),
        )),
        Ok(m) if !m.is_dir() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket directory {} is not a directory", dir.display()),
        )),
        Ok(m) => {
            if m.mode() & 0o002 != 0 {
                log(
                    Level::Warn,
                    &format!(
                        "socket directory {} is world-writable (mode {:o}); anyone could plant channel sockets",
                        dir.display(),
                        m.permissions().mode() & 0o7777
                    ),
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(mode)
                .create(dir)?;
            // the umask may have removed bits the operator asked for
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        }
        Err(e) => Err(e),
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

fn command_name(command: u32, resource_id: u64) -> String {
    match Command::try_from(command) {
        Ok(Command::CpuPower) => format!("CPU_POWER(vCPU {resource_id})"),
        Ok(Command::Connect) => "CONNECT".into(),
        Ok(Command::PktPolicy) => "PKT_POLICY".into(),
        Ok(Command::PktPolicyRemove) => "PKT_POLICY_REMOVE".into(),
        Ok(Command::QueryFreqList) => "QUERY_FREQ_LIST".into(),
        Ok(Command::QueryFreq) => format!("QUERY_FREQ(vCPU {resource_id})"),
        Ok(Command::QueryCapsList) => "QUERY_CAPS_LIST".into(),
        Ok(Command::QueryCaps) => format!("QUERY_CAPS(vCPU {resource_id})"),
        Err(_) => format!("command {command}"),
    }
}

fn policy_summary(p: Option<&ChannelPacket>) -> String {
    let Some(p) = p else {
        return "none".into();
    };
    let kind = match p.policy_kind() {
        Ok(wire::PolicyKind::Traffic) => "TRAFFIC",
        Ok(wire::PolicyKind::Time) => "TIME",
        Ok(wire::PolicyKind::Workload) => "WORKLOAD",
        Ok(wire::PolicyKind::BranchRatio) => "BRANCH_RATIO",
        Err(_) => "?",
    };
    let wl = match p.workload_level() {
        Ok(wire::WorkloadLevel::High) => "HIGH",
        Ok(wire::WorkloadLevel::Medium) => "MEDIUM",
        Ok(wire::WorkloadLevel::Low) => "LOW",
        Err(_) => "?",
    };
    let vcpus: Vec<String> = p.vcpus().iter().map(u8::to_string).collect();
    format!(
        "{kind}, workload {wl}, vCPUs [{}] (stored; not applied: the policy engine is a later issue)",
        vcpus.join(",")
    )
}
