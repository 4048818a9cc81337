//! Hostile-guest benchmark: the `vm_power_mgr` binary in its own process
//! against a native load generator (this program, and copies of it for
//! the flood and the echo peer), on stand-in QEMU sockets, a generated
//! acpi-cpufreq tree on tmpfs and the libvirt test driver.
//!
//! ```text
//! cargo bench -p vm-power-mgr --bench hostile -- [--old BIN] [--seconds S]
//!     [--only rss,latency,throughput,instructions,metrics] [--cells 1x1,8x8] [--favour]
//!     [--keep-callgrind DIR] [--rounds N] [--pin]
//! scripts/bench-hostile.sh      builds main's (or OLD_REV's) monitor as BIN
//! ```
//!
//! * `--favour`: the monitor and the quiet VM's prober at nice -10 (every
//!   monitor, every cell).
//! * `--pin`: the latency cells on 2 CPUs without the three busy processes
//!   competing: every monitor thread on CPU 0, the flood generator and the
//!   prober on CPU 1, the prober (only it) SCHED_FIFO 10 so that the flood
//!   generator does not delay the probe on their shared CPU. The same for
//!   the alone and the flood cell, and for both monitors. Needs root.
//! * `--rounds N`: each throughput cell N times, new and old alternately;
//!   the medians (requests/s, the monitor's CPU time per request) and the
//!   median of the per-round ratios are printed.
//! * `--keep-callgrind DIR`: the instructions cells leave callgrind's
//!   output there (`callgrind_annotate` per function).
//!
//! Prints, for this tree's monitor and (with `--old`) another build run
//! in the same conditions, cell by cell alternately:
//! * RSS of the monitor before and after 10 s of a slow-reader attack (one
//!   VM, 8 channels, each flooded while its guest reads 100 bytes per ms);
//! * a quiet VM's request latency (1 request per ms, write -> reply),
//!   p50/p99, alone and while another VM floods 8 channels with 64
//!   requests in flight each (the flood runs in its own process, niced);
//! * closed-loop throughput (32 requests in flight per channel) at 1, 64
//!   and 4,096 channels, with the monitor's CPU use, and the same load on
//!   an ideal echo peer (no sysfs, no checks) as the generator's ceiling;
//! * `--only metrics`: the same closed loop (default 8 VMs x 8 channels)
//!   on this tree's monitor without `--metrics` and with it, scraped once
//!   a second, alternating, `--rounds N` runs each (default 2).
//!
//! Not a test: it prints figures and fails only if a run cannot be set up.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rte_power::wire::{ChannelPacket, Step, CMD_ACK, PACKET_SIZE};
use testkit::libvirt_node::{node_xml, Domain};
use testkit::qemu::Qemu;
use testkit::sysfs::{FakeSysfs, Flavour};
use vm_power_monitor::sys::{self, Epoll};

const HOST_CPUS: u32 = 8;

/// `--favour`: the monitor and the quiet VM's prober run at nice -10, so
/// that other work on a shared machine disturbs the latency cells less
/// (the same for every monitor measured).
static FAVOUR: AtomicBool = AtomicBool::new(false);

/// `--pin`: the latency cells isolate the monitor on 2 CPUs: the monitor
/// (every thread) on CPU 0, the flood generator and the quiet VM's prober
/// on CPU 1, the prober (only it) SCHED_FIFO so that the flood generator
/// sharing its CPU does not delay it. Alone and under the flood, new and
/// old monitor alike.
static PIN: AtomicBool = AtomicBool::new(false);

/// The CPU of the monitor under `--pin`; the generators get the other.
const MONITOR_CPU: &str = "0";
const GENERATOR_CPU: usize = 1;

/// Under `--pin`: this thread (the prober) on the generators' CPU, at
/// SCHED_FIFO priority 10 (root only; a failure is reported, the run goes
/// on unisolated).
fn pin_prober() {
    if !PIN.load(Ordering::Relaxed) {
        return;
    }
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes in it;
    // sched_setaffinity and sched_setscheduler read the structs passed
    // for the calling thread (pid 0) only.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(GENERATOR_CPU, &mut set);
        let a = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        let param = libc::sched_param { sched_priority: 10 };
        let f = libc::sched_setscheduler(0, libc::SCHED_FIFO, &param);
        a == 0 && f == 0
    };
    if !ok {
        eprintln!(
            "  (--pin: prober not pinned/SCHED_FIFO: {})",
            std::io::Error::last_os_error()
        );
    }
}

/// This thread's nice value to -10 (root only; ignored otherwise).
fn favour_this_thread() {
    if FAVOUR.load(Ordering::Relaxed) {
        // SAFETY: setpriority(2) on the calling thread (who = 0), no memory.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -10) };
    }
}
/// `--keep-callgrind DIR`: the instructions cells copy callgrind's
/// output files there (for `callgrind_annotate`).
static KEEP: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

type R<T> = Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A generated host: sysfs, node.xml with `vms` (name, channels), sockets.
struct Host {
    dir: tempfile::TempDir,
    vms: Vec<(String, u32)>,
    /// More options for the monitor (`--metrics`).
    extra: Vec<String>,
}

impl Host {
    fn new(vms: &[(&str, u32)]) -> R<Self> {
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .map_err(err)?;
        FakeSysfs::new(Flavour::Acpi, HOST_CPUS)
            .create(&dir.path().join("cpu"))
            .map_err(err)?;
        std::fs::create_dir(dir.path().join("sockets")).map_err(err)?;
        let domains: Vec<Domain> = vms
            .iter()
            .enumerate()
            .map(|(v, (name, n))| Domain {
                name: (*name).to_string(),
                pins: (0..*n)
                    .map(|i| (v as u32 * 2 + i % 2) % HOST_CPUS)
                    .collect(),
            })
            .collect();
        let xml = node_xml(HOST_CPUS, &domains);
        std::fs::write(dir.path().join("node.xml"), xml).map_err(err)?;
        Ok(Self {
            dir,
            vms: vms.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
            extra: Vec::new(),
        })
    }

    fn sockets(&self) -> PathBuf {
        self.dir.path().join("sockets")
    }

    /// Binds QEMU's sockets of the VMs in `which`.
    fn bind(&self, which: &[&str]) -> R<Vec<(u32, Qemu)>> {
        let mut q = Vec::new();
        for (name, n) in self.vms.iter().filter(|(v, _)| which.contains(&v.as_str())) {
            for i in 0..*n {
                q.push((i, Qemu::bind(&self.sockets(), name, i).map_err(err)?));
            }
        }
        Ok(q)
    }

    /// Starts a monitor binary managing every VM, each channel attached
    /// (under `nice -n -10` with `--favour`).
    fn monitor(&self, bin: &Path) -> R<Child> {
        self.monitor_pinned(bin, false)
    }

    /// The same; with `pin` (and `--pin`) on CPU 0 (taskset: every thread).
    fn monitor_pinned(&self, bin: &Path, pin: bool) -> R<Child> {
        let mut words: Vec<String> = Vec::new();
        if pin && PIN.load(Ordering::Relaxed) {
            words.extend(["taskset".into(), "-c".into(), MONITOR_CPU.into()]);
        }
        if FAVOUR.load(Ordering::Relaxed) {
            words.extend(["nice".into(), "-n".into(), "-10".into()]);
        }
        words.push(bin.display().to_string());
        let program = PathBuf::from(words.remove(0));
        self.monitor_args(&program, &mut words)
    }

    /// The same, through `program` with `pre` before the monitor's
    /// arguments (valgrind).
    fn monitor_args(&self, program: &Path, pre: &mut Vec<String>) -> R<Child> {
        let d = self.dir.path();
        // the monitor itself: the program, or the last word before its
        // own arguments (under nice or valgrind)
        let bin = pre.last().map_or(program.to_path_buf(), PathBuf::from);
        let mut c = Command::new(program);
        c.args(pre.drain(..));
        c.args(["--daemon", "-q", "--refresh-ms", "0", "--uri"])
            .arg(format!("test://{}", d.join("node.xml").display()))
            .arg("--socket-dir")
            .arg(self.sockets())
            .arg("--sysfs")
            .arg(d.join("cpu"))
            .arg("--ctl-socket")
            .arg(d.join("ctl.sock"))
            .args(&self.extra);
        for (name, n) in &self.vms {
            c.args(["-e", &format!("add_vm {name}")]);
            c.args(["-e", &format!("add_channels {name} 0-{}", n - 1)]);
        }
        if has_exclusivity(&bin) {
            // many VMs on 8 CPUs share pCPUs on purpose: let them scale
            c.args(["-e", &format!("set_shared 0-{} allow", HOST_CPUS - 1)]);
        }
        c.stdout(Stdio::null()).spawn().map_err(err)
    }
}

/// Does this monitor NACK VMs sharing a pCPU unless `set_shared` allows
/// (a build with `--qemu-user`, the same change)? An older build compared
/// against has no such rule and no such command.
fn has_exclusivity(bin: &Path) -> bool {
    Command::new(bin)
        .arg("--help")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--qemu-user"))
}

/// Accepts the monitor on every socket; each stream with its vCPU.
fn accept_all(q: &mut [(u32, Qemu)]) -> R<Vec<(u64, UnixStream)>> {
    q.iter_mut()
        .map(|(i, q)| {
            let g = q.accept(Duration::from_secs(60)).map_err(err)?;
            Ok((u64::from(*i), g.into_stream()))
        })
        .collect()
}

fn stop(mut c: Child) {
    if let Ok(pid) = i32::try_from(c.id()) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let _ = c.wait();
}

fn proc_field(pid: u32, file: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default()
}

fn rss_kib(pid: u32) -> u64 {
    proc_field(pid, "status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = proc_field(pid, "stat");
    let f: Vec<&str> = s
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let g = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    g(14) + g(15)
}

fn request(vcpu: u64, k: u64, tag: u64) -> [u8; PACKET_SIZE] {
    let unit = if k % 2 == 0 { Step::Down } else { Step::Up };
    let mut p = ChannelPacket::cpu_power(vcpu, unit);
    p.vfid[0] = tag;
    p.encode()
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

/// RSS before and after `secs` of 8 slow readers (KiB).
fn slow_reader(bin: &Path, secs: f64) -> R<(u64, u64)> {
    let host = Host::new(&[("vm0", 8)])?;
    let mut q = host.bind(&["vm0"])?;
    let mon = host.monitor(bin)?;
    let streams = accept_all(&mut q)?;
    let stop_flag = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for (vcpu, s) in streams {
        let mut r = s.try_clone().map_err(err)?;
        let (s1, s2) = (Arc::clone(&stop_flag), Arc::clone(&stop_flag));
        threads.push(std::thread::spawn(move || {
            let mut s = s;
            let _ = s.set_write_timeout(Some(Duration::from_millis(100)));
            let batch: Vec<u8> = (0..64).flat_map(|k| request(vcpu, k, 0)).collect();
            while !s1.load(Ordering::Relaxed) {
                if let Err(e) = s.write_all(&batch) {
                    if e.kind() != std::io::ErrorKind::WouldBlock {
                        break;
                    }
                }
            }
        }));
        threads.push(std::thread::spawn(move || {
            let _ = r.set_read_timeout(Some(Duration::from_millis(50)));
            let mut b = [0u8; 100];
            while !s2.load(Ordering::Relaxed) {
                let _ = r.read(&mut b);
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(1));
    let before = rss_kib(mon.id());
    std::thread::sleep(Duration::from_secs_f64(secs));
    let after = rss_kib(mon.id());
    stop_flag.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    stop(mon);
    Ok((before, after))
}

/// The quiet VM's latencies (ns), 1 request per ms for `secs`.
fn probe(s: &mut UnixStream, secs: f64) -> R<Vec<u64>> {
    favour_this_thread();
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(err)?;
    let mut lat = Vec::new();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut next = Instant::now();
    let mut r = [0u8; PACKET_SIZE];
    let mut k = 0;
    while Instant::now() < end {
        let t0 = Instant::now();
        s.write_all(&request(0, k, k)).map_err(err)?;
        s.read_exact(&mut r).map_err(err)?;
        lat.push(t0.elapsed().as_nanos() as u64);
        k += 1;
        next += Duration::from_millis(1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(lat)
}

/// [`probe`] in a thread of its own (`--pin` changes its CPU and
/// scheduling class, not the bench's).
fn probe_thread(s: &mut UnixStream, secs: f64) -> R<Vec<u64>> {
    std::thread::scope(|sc| {
        sc.spawn(|| {
            pin_prober();
            probe(s, secs)
        })
        .join()
        .map_err(|_| "prober panicked".to_string())?
    })
}

/// Quiet VM p50/p99 (µs) alone and under a flood from another process.
fn latency(bin: &Path, secs: f64) -> R<[(f64, f64); 2]> {
    let host = Host::new(&[("flood", 8), ("quiet", 1)])?;
    let exe = std::env::current_exe().map_err(err)?;
    let mut flood = if PIN.load(Ordering::Relaxed) {
        let mut c = Command::new("taskset");
        c.args(["-c", &GENERATOR_CPU.to_string(), "nice", "-n", "10"]);
        c
    } else {
        let mut c = Command::new("nice");
        c.args(["-n", "10"]);
        c
    };
    let mut flood = flood
        .arg(&exe)
        .arg("--flood-child")
        .arg(host.sockets())
        .args(["flood", "8", "64"])
        .arg(format!("{secs}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(err)?;
    let mut out = BufReader::new(flood.stdout.take().ok_or("flood stdout")?);
    let mut line = String::new();
    out.read_line(&mut line).map_err(err)?; // "bound"
    let mut q = host.bind(&["quiet"])?;
    let mon = host.monitor_pinned(bin, true)?;
    let mut quiet = accept_all(&mut q)?;
    line.clear();
    out.read_line(&mut line).map_err(err)?; // "attached"
    let (_, s) = quiet.first_mut().ok_or("no quiet channel")?;
    let mut alone = probe_thread(s, secs)?;
    flood
        .stdin
        .as_mut()
        .ok_or("flood stdin")?
        .write_all(b"go\n")
        .map_err(err)?;
    std::thread::sleep(Duration::from_millis(200));
    let mut loaded = probe_thread(s, secs - 0.5)?;
    line.clear();
    out.read_line(&mut line).map_err(err)?;
    let _ = flood.wait();
    stop(mon);
    eprintln!("  (flood process: {})", line.trim());
    Ok([
        (pct(&mut alone, 0.5), pct(&mut alone, 0.99)),
        (pct(&mut loaded, 0.5), pct(&mut loaded, 0.99)),
    ])
}

/// Child: binds `<dir>/<vm>.<0..n>`, waits for the monitor, then on "go"
/// keeps `window` requests in flight per channel for `secs`.
fn flood_child(args: &[String]) -> R<()> {
    let [dir, vm, n, window, secs] = args else {
        return Err("--flood-child DIR VM N WINDOW SECONDS".into());
    };
    let n: u32 = n.parse().map_err(err)?;
    let window: u32 = window.parse().map_err(err)?;
    let secs: f64 = secs.parse().map_err(err)?;
    let mut q: Vec<(u32, Qemu)> = (0..n)
        .map(|i| Qemu::bind(Path::new(dir), vm, i).map(|q| (i, q)))
        .collect::<Result<_, _>>()
        .map_err(err)?;
    println!("bound");
    let streams = accept_all(&mut q)?;
    println!("attached");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).map_err(err)?;
    let (n, _, _) = closed_loop(streams, window, Duration::from_secs_f64(secs), None)?;
    println!("{n} requests answered");
    Ok(())
}

/// Keeps `window` requests in flight on every stream for `dur`; returns
/// the replies counted after a 0.3 s warm-up, the seconds measured and
/// the CPU seconds `pid` (a process, e.g. the monitor) used in them.
fn closed_loop(
    streams: Vec<(u64, UnixStream)>,
    window: u32,
    dur: Duration,
    pid: Option<u32>,
) -> R<(u64, f64, f64)> {
    run_loop(streams, window, Limit::Time(dur), pid)
}

/// How long a closed loop runs.
#[derive(Clone, Copy)]
enum Limit {
    /// This long after a 0.3 s warm-up.
    Time(Duration),
    /// Until this many replies (no warm-up).
    Replies(u64),
}

fn run_loop(
    mut streams: Vec<(u64, UnixStream)>,
    window: u32,
    limit: Limit,
    pid: Option<u32>,
) -> R<(u64, f64, f64)> {
    let ep = Epoll::new().map_err(err)?;
    for (i, (_, s)) in streams.iter().enumerate() {
        ep.add(s.as_raw_fd(), sys::IN, i as u64).map_err(err)?;
    }
    let mut seq = vec![0u64; streams.len()];
    let mut partial = vec![0usize; streams.len()];
    let mut out = Vec::with_capacity(PACKET_SIZE * window as usize);
    let mut send = |vcpu: u64, k: u64, s: &mut UnixStream, seq: &mut u64| -> R<()> {
        out.clear();
        for _ in 0..k {
            out.extend_from_slice(&request(vcpu, *seq, 0));
            *seq += 1;
        }
        s.write_all(&out).map_err(err)
    };
    for (i, (v, s)) in streams.iter_mut().enumerate() {
        send(*v, u64::from(window), s, &mut seq[i])?;
    }
    let mut events = sys::events(4096);
    let mut buf = vec![0u8; 64 * 1024];
    let t0 = Instant::now();
    let (warm, total, count) = match limit {
        Limit::Time(d) => (
            Duration::from_millis(300),
            Duration::from_millis(300) + d,
            u64::MAX,
        ),
        Limit::Replies(n) => (Duration::ZERO, Duration::from_secs(3600), n),
    };
    let (mut replies, mut counted) = (0u64, None);
    let mut cpu0 = 0;
    while t0.elapsed() < total && replies < count {
        if counted.is_none() && t0.elapsed() >= warm {
            counted = Some((replies, Instant::now()));
            cpu0 = pid.map_or(0, cpu_ticks);
        }
        let n = ep
            .wait(&mut events, Some(Duration::from_millis(100)))
            .map_err(err)?;
        for ev in &events[..n] {
            let i = ev.u64 as usize;
            let (v, s) = &mut streams[i];
            let mut got = 0;
            loop {
                match recv_nowait(s, &mut buf) {
                    Ok(0) => return Err(format!("channel {i} closed")),
                    Ok(m) => {
                        // replies are 464 bytes; only their number matters
                        let bytes = partial[i] + m;
                        got += (bytes / PACKET_SIZE) as u64;
                        partial[i] = bytes % PACKET_SIZE;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(err(e)),
                }
            }
            replies += got;
            if got > 0 {
                send(*v, got, s, &mut seq[i])?;
            }
        }
    }
    let (r0, s0) = counted.ok_or("too short")?;
    let secs = s0.elapsed().as_secs_f64();
    let mut cpu = 0.0;
    if let Some(p) = pid {
        // SAFETY: sysconf has no memory arguments.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        cpu = cpu_ticks(p).saturating_sub(cpu0) as f64 / hz;
        eprintln!("  (monitor CPU {:.0} %)", cpu / secs * 100.0);
    }
    Ok((replies - r0, secs, cpu))
}

/// recv(2) with MSG_DONTWAIT on a blocking stream.
fn recv_nowait(s: &UnixStream, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is writable for `buf.len()` bytes during the call.
    let n = unsafe {
        libc::recv(
            s.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

/// Child: the ideal peer: connects to every socket in the directory and
/// answers every 464 bytes with an ACK echo, nothing else.
fn echo_child(args: &[String]) -> R<()> {
    let [dir] = args else {
        return Err("--echo-child DIR".into());
    };
    let mut streams = Vec::new();
    for e in std::fs::read_dir(dir).map_err(err)?.flatten() {
        let s = sys::unix_connect(&e.path()).map_err(err)?;
        s.set_nonblocking(true).map_err(err)?;
        streams.push((s, Vec::<u8>::new()));
    }
    let ep = Epoll::new().map_err(err)?;
    for (i, (s, _)) in streams.iter().enumerate() {
        ep.add(s.as_raw_fd(), sys::IN | sys::RDHUP, i as u64)
            .map_err(err)?;
    }
    let mut events = sys::events(4096);
    let mut buf = vec![0u8; 64 * 1024];
    let mut open = streams.len();
    while open > 0 {
        let n = ep.wait(&mut events, None).map_err(err)?;
        for ev in &events[..n] {
            let (s, pend) = &mut streams[ev.u64 as usize];
            match s.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Ok(0) | Err(_) => {
                    let _ = ep.delete(s.as_raw_fd());
                    open -= 1;
                }
                Ok(m) => {
                    pend.extend_from_slice(&buf[..m]);
                    let whole = pend.len() / PACKET_SIZE * PACKET_SIZE;
                    for p in pend[..whole].chunks_exact_mut(PACKET_SIZE) {
                        p[12..16].copy_from_slice(&CMD_ACK.to_le_bytes());
                    }
                    s.set_nonblocking(false).map_err(err)?;
                    s.write_all(&pend[..whole]).map_err(err)?;
                    s.set_nonblocking(true).map_err(err)?;
                    pend.drain(..whole);
                }
            }
        }
    }
    Ok(())
}

/// Instructions the monitor executes per request (callgrind counts
/// instructions, not time: the same on a busy machine and a quiet one).
/// Two runs of `n` and `4 n` replies; the difference in instructions over
/// the difference in packets the monitor handled (its `show_channels`)
/// leaves start-up and shutdown out.
fn instructions(bin: &Path, vms: u32, chans: u32, n: u64) -> R<f64> {
    let (mut ir, mut packets) = (Vec::new(), Vec::new());
    for count in [n, 4 * n] {
        let names: Vec<String> = (0..vms).map(|v| format!("vm{v}")).collect();
        let spec: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), chans)).collect();
        let host = Host::new(&spec)?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut q = host.bind(&refs)?;
        let out = host.dir.path().join("callgrind.out");
        let mut args = vec![
            "--tool=callgrind".to_string(),
            "-q".to_string(),
            format!("--callgrind-out-file={}", out.display()),
            bin.display().to_string(),
        ];
        let mon = host.monitor_args(Path::new("valgrind"), &mut args)?;
        let streams = accept_all(&mut q)?;
        run_loop(streams, 32, Limit::Replies(count), None)?;
        // what the monitor handled (requests still in flight included)
        std::thread::sleep(Duration::from_millis(500));
        let show = Command::new(bin)
            .args(["ctl", "--socket"])
            .arg(host.dir.path().join("ctl.sock"))
            .arg("show_channels")
            .output()
            .map_err(err)?;
        let handled: u64 = String::from_utf8_lossy(&show.stdout)
            .lines()
            .filter_map(|l| l.split(", packets ").nth(1))
            .filter_map(|r| r.split(',').next()?.parse::<u64>().ok())
            .sum();
        stop(mon);
        packets.push(handled);
        let text = std::fs::read_to_string(&out).map_err(err)?;
        let total = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("summary: ")
                    .or_else(|| l.strip_prefix("totals: "))
            })
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or("no callgrind total")?;
        ir.push(total);
        if let Some(dir) = KEEP.get() {
            let name = bin.display().to_string().replace('/', "_");
            let to = dir.join(format!("callgrind.{vms}x{chans}.{count}.{name}"));
            std::fs::copy(&out, to).map_err(err)?;
        }
    }
    let handled = packets[1].saturating_sub(packets[0]).max(1);
    Ok((ir[1] as f64 - ir[0] as f64) / handled as f64)
}

/// Requests/s of a closed loop on `vms` x `chans`, on `bin` or the echo
/// peer, and the peer's CPU time per request (µs).
fn throughput(bin: Option<&Path>, vms: u32, chans: u32, secs: f64) -> R<(f64, f64)> {
    let names: Vec<String> = (0..vms).map(|v| format!("vm{v}")).collect();
    let spec: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), chans)).collect();
    let host = Host::new(&spec)?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut q = host.bind(&refs)?;
    let peer = match bin {
        Some(b) => host.monitor(b)?,
        None => Command::new(std::env::current_exe().map_err(err)?)
            .arg("--echo-child")
            .arg(host.sockets())
            .spawn()
            .map_err(err)?,
    };
    let streams = accept_all(&mut q)?;
    let pid = peer.id();
    let (n, s, cpu) = closed_loop(streams, 32, Duration::from_secs_f64(secs), Some(pid))?;
    stop(peer);
    Ok((n as f64 / s, cpu * 1e6 / n.max(1) as f64))
}

/// The median (NaN for none).
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Requests/s of a closed loop on `vms` x `chans` with `--metrics` on a
/// UNIX socket scraped once a second for the whole run (`scrape`), or
/// without `--metrics`; and the scrapes answered.
fn throughput_metrics(bin: &Path, vms: u32, chans: u32, secs: f64, scrape: bool) -> R<(f64, u32)> {
    let names: Vec<String> = (0..vms).map(|v| format!("vm{v}")).collect();
    let spec: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), chans)).collect();
    let mut host = Host::new(&spec)?;
    let sock = host.dir.path().join("metrics.sock");
    if scrape {
        host.extra = vec!["--metrics".into(), format!("unix:{}", sock.display())];
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut q = host.bind(&refs)?;
    let mon = host.monitor(bin)?;
    let streams = accept_all(&mut q)?;
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    let scraper = std::thread::spawn(move || {
        let mut ok = 0;
        while scrape && !flag.load(Ordering::Relaxed) {
            let t = Instant::now();
            if let Ok(mut s) = UnixStream::connect(&sock) {
                let mut body = String::new();
                let sent = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").is_ok();
                if sent && s.read_to_string(&mut body).is_ok() && body.starts_with("HTTP/1.1 200") {
                    ok += 1;
                }
            }
            std::thread::sleep(Duration::from_secs(1).saturating_sub(t.elapsed()));
        }
        ok
    });
    let r = closed_loop(streams, 32, Duration::from_secs_f64(secs), Some(mon.id()));
    done.store(true, Ordering::Relaxed);
    let scrapes = scraper.join().unwrap_or(0);
    stop(mon);
    let (n, s, _) = r?;
    Ok((n as f64 / s, scrapes))
}

/// `--cells 1x1,8x8` (default: 1x1, 8x8, 64x64).
fn cells(arg: &Option<String>) -> Vec<(u32, u32)> {
    let parsed: Vec<(u32, u32)> = arg
        .as_deref()
        .unwrap_or("1x1,8x8,64x64")
        .split(',')
        .filter_map(|c| c.split_once('x'))
        .filter_map(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .filter(|(a, b)| *a > 0 && *b > 0)
        .collect();
    parsed
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let child = match args.first().map(String::as_str) {
        Some("--flood-child") => Some(flood_child(&args[1..])),
        Some("--echo-child") => Some(echo_child(&args[1..])),
        _ => None,
    };
    if let Some(r) = child {
        if let Err(e) = r {
            eprintln!("child: {e}");
            std::process::exit(1);
        }
        return;
    }
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    // `cargo test` runs benches without --bench: a smoke run of one cell
    let full = args.iter().any(|a| a == "--bench");
    let secs: f64 = get("--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 3.0 } else { 0.3 });
    let only = get("--only").unwrap_or_else(|| {
        if full {
            "rss,latency,throughput".into()
        } else {
            "smoke".into()
        }
    });
    let rounds: usize = get("--rounds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut bins = vec![("new", PathBuf::from(env!("CARGO_BIN_EXE_vm_power_mgr")))];
    if let Some(old) = get("--old") {
        bins.push(("old", PathBuf::from(old)));
    }
    if let Some(d) = get("--keep-callgrind") {
        let _ = KEEP.set(PathBuf::from(d));
    }
    let _ = sys::raise_nofile_limit();
    FAVOUR.store(args.iter().any(|a| a == "--favour"), Ordering::Relaxed);
    PIN.store(args.iter().any(|a| a == "--pin"), Ordering::Relaxed);
    println!("vm_power_mgr hostile-guest benchmark ({secs} s per cell; load generator in its own process)");
    let mut failed = false;
    let mut report = |what: &str, r: R<String>| match r {
        Ok(s) => println!("| {what} | {s} |"),
        Err(e) => {
            failed = true;
            println!("| {what} | failed: {e} |");
        }
    };
    if only.contains("rss") {
        println!("\n| monitor | RSS before -> after 10 s of 8 slow readers (KiB) |\n|---|---|");
        for (name, bin) in &bins {
            report(
                name,
                slow_reader(bin, 10.0)
                    .map(|(a, b)| format!("{a} -> {b} ({:+} KiB)", b as i64 - a as i64)),
            );
        }
    }
    if only.contains("latency") {
        println!("\n| monitor | quiet VM alone p50 / p99 µs | under a flood of 8 ch x 64 p50 / p99 µs | p99 ratio |\n|---|---|---|---|");
        // `--rounds N`: N times, the monitors alternately; medians after
        let mut got: Vec<Vec<[f64; 4]>> = vec![Vec::new(); bins.len()];
        for round in 0..rounds {
            for (i, (name, bin)) in bins.iter().enumerate() {
                let r = latency(bin, secs.max(2.0));
                if let Ok([a, f]) = &r {
                    got[i].push([a.0, a.1, f.0, f.1]);
                }
                let tag = if rounds > 1 {
                    format!("{name} (round {})", round + 1)
                } else {
                    name.to_string()
                };
                report(
                    &tag,
                    r.map(|[a, f]| {
                        format!(
                            "{:.1} / {:.1} | {:.1} / {:.1} | {:.2}",
                            a.0,
                            a.1,
                            f.0,
                            f.1,
                            f.1 / a.1
                        )
                    }),
                );
            }
        }
        if rounds > 1 {
            for (i, (name, _)) in bins.iter().enumerate() {
                let col = |k: usize| median(&mut got[i].iter().map(|v| v[k]).collect::<Vec<_>>());
                let mut ratios: Vec<f64> = got[i].iter().map(|v| v[3] / v[1]).collect();
                println!(
                    "| {name}, median of rounds | {:.1} / {:.1} | {:.1} / {:.1} | {:.2} (median of the rounds' ratios) |",
                    col(0),
                    col(1),
                    col(2),
                    col(3),
                    median(&mut ratios)
                );
            }
        }
    }
    if only.contains("throughput") {
        println!("\n| channels (VMs x ch), 32 in flight | peer | requests/s |\n|---|---|---|");
        for (vms, chans) in cells(&get("--cells")) {
            let cell = format!("{} ({vms}x{chans})", vms * chans);
            report(
                &format!("{cell} | echo peer"),
                throughput(None, vms, chans, secs).map(|(r, _)| format!("{r:.0}")),
            );
            // `--rounds N`: new and old alternately N times (the machine's
            // load drifts; the median of each and of the ratios is printed)
            let mut got: Vec<Vec<f64>> = vec![Vec::new(); bins.len()];
            let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); bins.len()];
            let mut ratios = Vec::new();
            for round in 0..rounds {
                let tag = if rounds > 1 {
                    format!(" (round {})", round + 1)
                } else {
                    String::new()
                };
                let mut this = Vec::new();
                for (i, (name, bin)) in bins.iter().enumerate() {
                    let r = throughput(Some(bin), vms, chans, secs);
                    if let Ok((v, c)) = &r {
                        got[i].push(*v);
                        cpu[i].push(*c);
                        this.push(*v);
                    }
                    report(
                        &format!("{cell} | {name}{tag}"),
                        r.map(|(r, c)| format!("{r:.0} ({c:.2} µs CPU per request)")),
                    );
                }
                if let [new, old] = this[..] {
                    ratios.push(new / old);
                    println!("| {cell} | new/old{tag} | {:.2} |", new / old);
                }
            }
            if rounds > 1 {
                for (i, (name, _)) in bins.iter().enumerate() {
                    println!(
                        "| {cell} | {name}, median | {:.0} ({:.2} µs CPU per request) |",
                        median(&mut got[i]),
                        median(&mut cpu[i])
                    );
                }
                if !ratios.is_empty() {
                    println!(
                        "| {cell} | new/old, median of rounds | {:.2} |",
                        median(&mut ratios)
                    );
                }
            }
        }
    }
    if only.contains("instructions") {
        println!("\n| channels (VMs x ch), 32 in flight | monitor | instructions per request (callgrind) |\n|---|---|---|");
        for (vms, chans) in cells(&get("--cells")) {
            let cell = format!("{} ({vms}x{chans})", vms * chans);
            let mut got = Vec::new();
            for (name, bin) in &bins {
                let r = instructions(bin, vms, chans, 25_000);
                if let Ok(v) = &r {
                    got.push(*v);
                }
                report(&format!("{cell} | {name}"), r.map(|r| format!("{r:.0}")));
            }
            if let [new, old] = got[..] {
                println!("| {cell} | new/old | {:.3} |", new / old);
            }
        }
    }
    if only.contains("metrics") {
        // this tree's monitor only; off and on alternate, `--rounds` each
        let rounds: usize = get("--rounds").and_then(|r| r.parse().ok()).unwrap_or(2);
        println!("\n| channels (VMs x ch), 32 in flight | --metrics | requests/s (runs) | scrapes |\n|---|---|---|---|");
        let (_, bin) = &bins[0];
        for (vms, chans) in cells(&get("--cells").or(Some("8x8".into()))) {
            let cell = format!("{} ({vms}x{chans})", vms * chans);
            let mut got = [Vec::new(), Vec::new()];
            let mut scrapes = 0;
            for round in 0..2 * rounds {
                let on = round % 2 == 1;
                match throughput_metrics(bin, vms, chans, secs, on) {
                    Ok((r, n)) => {
                        got[usize::from(on)].push(r);
                        scrapes += n;
                    }
                    Err(e) => report(&format!("{cell} | {on}"), Err(e)),
                }
            }
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            for (on, v) in got.iter().enumerate() {
                let runs: Vec<String> = v.iter().map(|r| format!("{r:.0}")).collect();
                let n = if on == 1 {
                    scrapes.to_string()
                } else {
                    "-".into()
                };
                let what = if on == 1 {
                    "on, scraped every 1 s"
                } else {
                    "off"
                };
                println!(
                    "| {cell} | {what} | {:.0} ({}) | {n} |",
                    mean(v),
                    runs.join(", ")
                );
            }
            println!(
                "| {cell} | on/off | {:.3} | |",
                mean(&got[1]) / mean(&got[0])
            );
        }
    }
    if only == "smoke" {
        let (_, bin) = &bins[0];
        report(
            "1 (1x1) | new",
            throughput(Some(bin), 1, 1, secs).map(|(r, _)| format!("{r:.0}")),
        );
    }
    if failed {
        std::process::exit(1);
    }
}
