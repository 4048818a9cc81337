//! Cost of a `/metrics` scrape with many channels (wall time, monitor CPU, size).
//!
//! `cargo bench -p vm-power-mgr --bench metrics` attaches 64 VMs x 64
//! channels (4,096) on stand-in QEMU sockets, serves `--metrics` on a UNIX
//! socket and scrapes it `--scrapes N` times (default 20) back to back.
//! Printed: body size and series, scrape wall time (p50, max), and the
//! process CPU time per scrape (loop snapshot + sysfs reads + encoding,
//! all threads; the guests are idle), hence the share of one core that a
//! scrape every second costs. Without `--bench` (as `cargo test` runs it):
//! 1 VM x 8 channels, 3 scrapes. `--cells 8x8,64x64` picks other sizes.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rte_power::sysfs::SysfsRoot;
use testkit::qemu::Qemu;
use testkit::sysfs::{FakeSysfs, Flavour};
use vm_power_monitor::libvirt::Libvirt;
use vm_power_monitor::metrics::expo::process_cpu_seconds;
use vm_power_monitor::metrics::{MetricsAddr, MetricsServer};
use vm_power_monitor::sys;
use vm_power_monitor::{Controller, Hypervisor, Monitor, MonitorConfig};

const HOST_CPUS: u32 = 8;

fn node_xml(vms: u32, vcpus: u32) -> String {
    testkit::libvirt_node::spread(HOST_CPUS, vms, vcpus)
}

struct Figures {
    bytes: usize,
    series: usize,
    p50_ms: f64,
    max_ms: f64,
    cpu_ms: f64,
}

fn scrape(sock: &std::path::Path) -> Result<String, String> {
    let mut s = UnixStream::connect(sock).map_err(|e| e.to_string())?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut r = String::new();
    s.read_to_string(&mut r).map_err(|e| e.to_string())?;
    if !r.starts_with("HTTP/1.1 200") {
        return Err(r.lines().next().unwrap_or("").to_string());
    }
    Ok(r)
}

fn run(vms: u32, chans: u32, scrapes: usize) -> Result<Figures, String> {
    let shm = std::path::Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .map_err(|e| e.to_string())?;
    let sysfs = tmp.path().join("cpu");
    let mut fake = FakeSysfs::new(Flavour::Acpi, HOST_CPUS);
    fake.cpufreq_stats = true;
    fake.create(&sysfs).map_err(|e| e.to_string())?;
    let socks = tmp.path().join("sockets");
    std::fs::create_dir(&socks).map_err(|e| e.to_string())?;
    let node = tmp.path().join("node.xml");
    std::fs::write(&node, node_xml(vms, chans)).map_err(|e| e.to_string())?;
    let mut hv = Libvirt::open(&format!("test://{}", node.display())).map_err(|e| e.to_string())?;
    let mut cfg = MonitorConfig::new(&socks, SysfsRoot::new(&sysfs));
    cfg.host_cpus = hv.host_cpus().map_err(|e| e.to_string())?;
    cfg.log = Arc::new(|_, _| {});
    let (handle, mut mon) = Monitor::new(cfg).map_err(|e| e.to_string())?;
    let loop_thread = std::thread::spawn(move || mon.run());
    let hv: Box<dyn Hypervisor> = Box::new(hv);
    let ctl = Controller::new(handle, Arc::new(Mutex::new(hv)));
    let mut qemus = Vec::new();
    for v in 0..vms {
        for n in 0..chans {
            qemus.push(Qemu::bind(&socks, &format!("vm{v}"), n).map_err(|e| e.to_string())?);
        }
    }
    for v in 0..vms {
        for line in [
            format!("add_vm vm{v}"),
            format!("add_channels vm{v} 0-{}", chans - 1),
        ] {
            let o = ctl.execute(&line);
            if !o.ok {
                return Err(o.text);
            }
        }
    }
    let mut guests = Vec::new();
    for q in &mut qemus {
        guests.push(
            q.accept(Duration::from_secs(10))
                .map_err(|e| e.to_string())?,
        );
    }
    let msock = tmp.path().join("metrics.sock");
    MetricsServer::bind(&MetricsAddr::Unix(msock.clone()))
        .map_err(|e| e.to_string())?
        .spawn(ctl.clone(), SysfsRoot::new(&sysfs))
        .map_err(|e| e.to_string())?;
    let first = scrape(&msock)?;
    let body = first.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let series = body.lines().filter(|l| !l.starts_with('#')).count();
    let mut walls = Vec::with_capacity(scrapes);
    let cpu0 = process_cpu_seconds();
    for _ in 0..scrapes {
        let t = Instant::now();
        scrape(&msock)?;
        walls.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let cpu_ms = (process_cpu_seconds() - cpu0) * 1e3 / scrapes as f64;
    walls.sort_by(f64::total_cmp);
    let _ = ctl.execute("quit");
    let _ = loop_thread.join();
    Ok(Figures {
        bytes: body.len(),
        series,
        p50_ms: walls[walls.len() / 2],
        max_ms: walls[walls.len() - 1],
        cpu_ms,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let scrapes: usize = get("--scrapes")
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 20 } else { 3 });
    let cells: Vec<(u32, u32)> = get("--cells")
        .map(|s| {
            s.split(',')
                .filter_map(|c| c.split_once('x'))
                .filter_map(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .collect()
        })
        .unwrap_or_else(|| if full { vec![(64, 64)] } else { vec![(1, 8)] });
    let limit = sys::raise_nofile_limit().unwrap_or(1024);
    println!("vm_power_mgr metrics scrape benchmark: {scrapes} scrapes per cell");
    println!(
        "| channels | VMs x ch | body bytes | series | scrape p50 ms | max ms | CPU ms/scrape | core % at 1 scrape/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut failed = false;
    for (vms, chans) in cells {
        let n = u64::from(vms * chans);
        if n * 3 + 64 > limit {
            println!("| {n} | {vms}x{chans} | skipped: open-files limit {limit} |");
            continue;
        }
        match run(vms, chans, scrapes) {
            Ok(f) => println!(
                "| {n} | {vms}x{chans} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                f.bytes,
                f.series,
                f.p50_ms,
                f.max_ms,
                f.cpu_ms,
                f.cpu_ms / 10.0
            ),
            Err(e) => {
                failed = true;
                println!("| {n} | {vms}x{chans} | failed: {e} |");
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
