//! Throughput and latency of the monitor on stand-in QEMU sockets.
//!
//! `cargo bench -p vm-power-mgr --bench channels` runs the full matrix
//! (1, 64 and 4,096 channels; paced at 1 request/ms per channel (at most
//! 64k/s), then closed loops with 1 and 32 outstanding requests per
//! channel; 3 s per cell). Window `0` in `--windows` means paced. Without `--bench` (as `cargo test` runs it) it
//! does a 0.2 s smoke run. Options: `--seconds S`, `--cells 1x1,8x8`,
//! `--windows 1,32`, `--pin` (monitor loop on CPU 0, load generator on
//! CPU 1; by default the scheduler places both threads, which gives far
//! better figures on a machine shared with other work).
//!
//! The load generator is one thread with epoll over every guest stream. Each request carries its send
//! time (ns) in `vfid[0]`; the monitor's trace hook, called right after
//! the sysfs write of the request, records "stand-in write -> sysfs write";
//! the load generator records "stand-in write -> ACK read". Requests
//! alternate SCALE_DOWN/SCALE_UP per channel. The fake sysfs lives on
//! tmpfs (/dev/shm) when there is one.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rte_power::sysfs::SysfsRoot;
use rte_power::wire::{reply_kind, ChannelPacket, Response, Step, PACKET_SIZE};
use testkit::qemu::Qemu;
use testkit::sysfs::{FakeSysfs, Flavour};
use vm_power_monitor::libvirt::Libvirt;
use vm_power_monitor::sys::{self, Epoll};
use vm_power_monitor::{Controller, Hypervisor, Monitor, MonitorConfig};

const HOST_CPUS: u32 = 8;

struct Cell {
    vms: u32,
    chans: u32,
    /// Outstanding requests per channel; 0 = paced (open loop) at `rate`.
    window: u32,
    /// Paced mode: requests per second over all channels.
    rate: f64,
}

struct Result_ {
    reqs_per_s: f64,
    sysfs_p50: f64,
    sysfs_p99: f64,
    ack_p50: f64,
    ack_p99: f64,
    cpu_pct: f64,
    nacks: u64,
}

fn node_xml(vms: u32, vcpus: u32) -> String {
    testkit::libvirt_node::spread(HOST_CPUS, vms, vcpus)
}

static PIN: AtomicBool = AtomicBool::new(false);

fn pin_to(cpu: usize) {
    if !PIN.load(Ordering::Relaxed) {
        return;
    }
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it;
    // sched_setaffinity(0) affects only the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::gettid() }
}

/// utime + stime of a thread of this process, in clock ticks.
fn thread_ticks(tid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields after ')' start at #3 (state); utime = #14, stime = #15
    let g = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    g(14) + g(15)
}

fn pct(v: &mut [u64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i] as f64 / 1000.0
}

fn run_cell(c: &Cell, seconds: f64) -> Result<Result_, String> {
    let shm = std::path::Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .map_err(|e| e.to_string())?;
    let sysfs = tmp.path().join("cpu");
    FakeSysfs::new(Flavour::Acpi, HOST_CPUS)
        .create(&sysfs)
        .map_err(|e| e.to_string())?;
    let socks = tmp.path().join("sockets");
    std::fs::create_dir(&socks).map_err(|e| e.to_string())?;
    let node = tmp.path().join("node.xml");
    std::fs::write(&node, node_xml(c.vms, c.chans)).map_err(|e| e.to_string())?;
    let mut hv = Libvirt::open(&format!("test://{}", node.display())).map_err(|e| e.to_string())?;

    let epoch = Instant::now();
    let measuring = Arc::new(AtomicBool::new(false));
    let lat: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::with_capacity(8 << 20)));
    let mut cfg = MonitorConfig::new(&socks, SysfsRoot::new(&sysfs));
    cfg.host_cpus = hv.host_cpus().map_err(|e| e.to_string())?;
    cfg.log = Arc::new(|_, _| {});
    {
        let (m, l) = (Arc::clone(&measuring), Arc::clone(&lat));
        cfg.trace = Some(Box::new(move |p: &ChannelPacket| {
            if m.load(Ordering::Relaxed) {
                let now = epoch.elapsed().as_nanos() as u64;
                if let Ok(mut v) = l.lock() {
                    v.push(now.saturating_sub(p.vfid[0]));
                }
            }
        }));
    }
    let (handle, mut mon) = Monitor::new(cfg).map_err(|e| e.to_string())?;
    let tid = Arc::new(AtomicI32::new(0));
    let t2 = Arc::clone(&tid);
    let loop_thread = std::thread::spawn(move || {
        pin_to(0);
        t2.store(gettid(), Ordering::Release);
        mon.run()
    });
    let hv: Box<dyn Hypervisor> = Box::new(hv);
    let ctl = Controller::new(handle, Arc::new(Mutex::new(hv)));

    // QEMU's sockets, then the monitor attaches to all of them
    let mut qemus = Vec::new();
    for v in 0..c.vms {
        for n in 0..c.chans {
            qemus.push((
                v,
                n,
                Qemu::bind(&socks, &format!("vm{v}"), n).map_err(|e| e.to_string())?,
            ));
        }
    }
    for v in 0..c.vms {
        let o = ctl.execute(&format!("add_vm vm{v}"));
        if !o.ok {
            return Err(o.text);
        }
        let o = ctl.execute(&format!("add_channels vm{v} 0-{}", c.chans - 1));
        if !o.ok || o.text.contains("waiting") {
            return Err(o.text);
        }
    }
    // several VMs on 8 CPUs share pCPUs on purpose: let their guests scale
    let o = ctl.execute(&format!("set_shared 0-{} allow", HOST_CPUS - 1));
    if !o.ok {
        return Err(o.text);
    }
    let mut streams: Vec<UnixStream> = Vec::new();
    let mut vcpu_of = Vec::new();
    for (_, n, q) in &mut qemus {
        let g = q
            .accept(Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        // blocking writes (the monitor never blocks, so this is plain
        // back-pressure); reads use MSG_DONTWAIT
        let s = g.into_stream();
        streams.push(s);
        vcpu_of.push(u64::from(*n));
    }

    // load generator on CPU 1
    pin_to(1);
    let ep = Epoll::new().map_err(|e| e.to_string())?;
    for (i, s) in streams.iter().enumerate() {
        ep.add(s.as_raw_fd(), sys::IN, i as u64)
            .map_err(|e| e.to_string())?;
    }
    let nch = streams.len();
    let mut seq = vec![0u64; nch];
    let mut partial: Vec<Vec<u8>> = vec![Vec::new(); nch];
    let mut out = Vec::with_capacity(PACKET_SIZE * 64);
    let templates = [
        ChannelPacket::cpu_power(0, Step::Down).encode(),
        ChannelPacket::cpu_power(0, Step::Up).encode(),
    ];
    let mut send = |i: usize, k: u32, s: &mut UnixStream, seq: &mut u64| -> std::io::Result<()> {
        out.clear();
        let now = epoch.elapsed().as_nanos() as u64;
        for _ in 0..k {
            let mut b = templates[(*seq % 2) as usize];
            b[0..8].copy_from_slice(&vcpu_of[i].to_le_bytes());
            b[48..56].copy_from_slice(&now.to_le_bytes());
            out.extend_from_slice(&b);
            *seq += 1;
        }
        s.write_all(&out)
    };
    let paced = c.window == 0;
    // paced: every channel sends once per period, staggered evenly
    let period = Duration::from_secs_f64(nch as f64 / c.rate.max(1.0));
    // channels take turns in order, one every period/nch: O(1) per send
    let step = period.div_f64(nch as f64);
    let mut next_i = 0usize;
    let mut next_at = Instant::now();
    if paced {
        // nothing to prime: sends start at once
    } else {
        for (i, s) in streams.iter_mut().enumerate() {
            send(i, c.window, s, &mut seq[i]).map_err(|e| e.to_string())?;
        }
    }
    let warm = Duration::from_millis(300);
    let dur = Duration::from_secs_f64(seconds);
    let t0 = Instant::now();
    let mut events = sys::events(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut acks = 0u64;
    let mut nacks = 0u64;
    let mut ack_lat: Vec<u64> = Vec::with_capacity(8 << 20);
    let mut started: Option<(Instant, u64, u64)> = None;
    let mut end: Option<(Instant, u64, u64)> = None;
    let tid = tid.load(Ordering::Acquire);
    while end.is_none() {
        let now = Instant::now();
        if started.is_none() && now - t0 >= warm {
            measuring.store(true, Ordering::Relaxed);
            started = Some((now, acks, thread_ticks(tid)));
        }
        if let Some((s0, _, _)) = started {
            if now - s0 >= dur {
                measuring.store(false, Ordering::Relaxed);
                end = Some((now, acks, thread_ticks(tid)));
                break;
            }
        }
        if paced {
            while next_at <= now {
                let i = next_i;
                send(i, 1, &mut streams[i], &mut seq[i]).map_err(|e| e.to_string())?;
                next_i = (next_i + 1) % nch;
                next_at += step;
            }
        }
        let wait = if paced {
            Duration::ZERO
        } else {
            Duration::from_millis(100)
        };
        let n = ep
            .wait(&mut events, Some(wait))
            .map_err(|e| e.to_string())?;
        let n = if paced && n == 0 {
            // nothing to read: wait for a reply or the next send, whichever
            // comes first (no spinning)
            let left = next_at.saturating_duration_since(Instant::now());
            ep.wait_precise(&mut events, left.min(Duration::from_millis(1)))
                .map_err(|e| e.to_string())?
        } else {
            n
        };
        for ev in &events[..n] {
            let i = ev.u64 as usize;
            let s = &mut streams[i];
            let mut got = 0u32;
            loop {
                match recv_nowait(s, &mut buf) {
                    Ok(0) => return Err(format!("channel {i} closed by the monitor")),
                    Ok(m) => {
                        // replies are whole 464-byte packets, possibly split
                        // across reads
                        let mut data: &[u8] = &buf[..m];
                        let mut joined;
                        if !partial[i].is_empty() {
                            joined = std::mem::take(&mut partial[i]);
                            joined.extend_from_slice(data);
                            data = &joined;
                        }
                        let mut chunks = data.chunks_exact(PACKET_SIZE);
                        for r in &mut chunks {
                            if reply_kind(r) == Ok(Response::Ack) {
                                acks += 1;
                            } else {
                                nacks += 1;
                            }
                            if started.is_some() {
                                let tag =
                                    u64::from_le_bytes(r[48..56].try_into().unwrap_or([0; 8]));
                                let now = epoch.elapsed().as_nanos() as u64;
                                ack_lat.push(now.saturating_sub(tag));
                            }
                            got += 1;
                        }
                        partial[i] = chunks.remainder().to_vec();
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e.to_string()),
                }
            }
            if got > 0 && !paced {
                send(i, got, s, &mut seq[i]).map_err(|e| e.to_string())?;
            }
        }
    }
    let (s0, a0, c0) = started.ok_or("never started")?;
    let (s1, a1, c1) = end.ok_or("never ended")?;
    let secs = (s1 - s0).as_secs_f64();
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu_pct = (c1 - c0) as f64 / hz / secs * 100.0;
    pin_to_all();
    let o = ctl.execute("quit");
    if !o.ok {
        return Err(o.text);
    }
    let _ = loop_thread.join();
    let mut sys_lat = std::mem::take(&mut *lat.lock().map_err(|e| e.to_string())?);
    Ok(Result_ {
        reqs_per_s: (a1 - a0) as f64 / secs,
        sysfs_p50: pct(&mut sys_lat, 0.50),
        sysfs_p99: pct(&mut sys_lat, 0.99),
        ack_p50: pct(&mut ack_lat, 0.50),
        ack_p99: pct(&mut ack_lat, 0.99),
        cpu_pct,
        nacks,
    })
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

fn pin_to_all() {
    // SAFETY: as in pin_to; every CPU allowed again.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in 0..libc::CPU_SETSIZE as usize {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    PIN.store(args.iter().any(|a| a == "--pin"), Ordering::Relaxed);
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seconds: f64 = get("--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 3.0 } else { 0.2 });
    let cells: Vec<(u32, u32)> = get("--cells")
        .map(|s| {
            s.split(',')
                .filter_map(|c| c.split_once('x'))
                .filter_map(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .collect()
        })
        .unwrap_or_else(|| {
            if full {
                vec![(1, 1), (8, 8), (64, 64)]
            } else {
                vec![(1, 1), (8, 8)]
            }
        });
    let windows: Vec<u32> = get("--windows")
        .map(|s| s.split(',').filter_map(|w| w.parse().ok()).collect())
        .unwrap_or_else(|| if full { vec![0, 1, 32] } else { vec![0, 8] });
    let limit = sys::raise_nofile_limit().unwrap_or(1024);
    println!(
        "vm_power_mgr channel benchmark: {seconds} s per cell, {}",
        if PIN.load(Ordering::Relaxed) {
            "monitor loop on CPU 0, load generator on CPU 1"
        } else {
            "threads placed by the scheduler"
        }
    );
    println!(
        "| channels | VMs x ch | window | requests/s | write->sysfs p50 µs | p99 µs | write->ACK p50 µs | p99 µs | monitor CPU % | NACKs |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut failed = false;
    for (vms, chans) in cells {
        let n = u64::from(vms * chans);
        if n * 3 + 64 > limit {
            println!("| {n} | {vms}x{chans} | - | skipped: open-files limit {limit} |");
            continue;
        }
        for &window in &windows {
            // paced: 1 request per ms per channel (DPDK's per-channel
            // ceiling), at most 64k/s in total
            let rate = (n as f64 * 1000.0).min(64_000.0);
            let cell = Cell {
                vms,
                chans,
                window,
                rate,
            };
            let label = if window == 0 {
                format!("paced {rate:.0}/s")
            } else {
                window.to_string()
            };
            match run_cell(&cell, seconds) {
                Ok(r) => println!(
                    "| {n} | {vms}x{chans} | {label} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {} |",
                    r.reqs_per_s, r.sysfs_p50, r.sysfs_p99, r.ack_p50, r.ack_p99, r.cpu_pct, r.nacks
                ),
                Err(e) => {
                    failed = true;
                    println!("| {n} | {vms}x{chans} | {label} | failed: {e} |");
                }
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
