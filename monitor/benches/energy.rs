//! Energy sampler benchmark: one sample (package counters, `/proc/stat`, time_in_state) and the loop's VM shares at 4,096 CPUs.
//!
//! ```text
//! cargo bench -p vm-power-mgr --bench energy -- [--samples N] [--cpus N]
//! ```
//!
//! A generated acpi-cpufreq tree with `cpufreq/stats` (2 packages), a
//! powercap tree and a `/proc/stat` on the temporary directory; the
//! sampler's `read` + `interval` (its thread's work per interval) and
//! `model::vm_shares` for 64 VMs x 64 pCPUs (the loop's work per
//! interval). Not a test: it prints figures.

use std::collections::BTreeMap;
use std::time::Instant;

use testkit::powercap::FakePowercap;
use testkit::sysfs::{write_proc_stat, FakeSysfs, Flavour, ProcStatCpu};
use vm_power_monitor::energy::model;
use vm_power_monitor::energy::sampler::Sampler;

fn arg(name: &str, default: u32) -> u32 {
    let a: Vec<String> = std::env::args().collect();
    a.iter()
        .position(|x| x == name)
        .and_then(|i| a.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn cpu_seconds() -> f64 {
    vm_power_monitor::metrics::expo::process_cpu_seconds()
}

fn main() {
    let samples = arg("--samples", 20);
    let ncpus = arg("--cpus", 4096);
    let d = tempfile::tempdir().expect("tmp");
    let (cpus, pc, stat) = (
        d.path().join("cpu"),
        d.path().join("pc"),
        d.path().join("stat"),
    );
    let t = Instant::now();
    let mut f = FakeSysfs::new(Flavour::Acpi, ncpus);
    f.cpufreq_stats = true;
    f.cores_per_socket = ncpus / 2;
    f.create(&cpus).expect("cpus");
    FakePowercap::new(2).create(&pc).expect("powercap");
    let rows: Vec<ProcStatCpu> = (0..ncpus)
        .map(|c| ProcStatCpu {
            user: u64::from(c) * 1000 + 12345,
            system: 5000,
            idle: 9_000_000,
            iowait: 12,
            ..Default::default()
        })
        .collect();
    write_proc_stat(&stat, &rows).expect("stat");
    println!(
        "tree of {ncpus} CPUs generated in {:.1} s ({} bytes of /proc/stat)",
        t.elapsed().as_secs_f64(),
        std::fs::metadata(&stat).map(|m| m.len()).unwrap_or(0)
    );
    let s = Sampler::new(&pc, &cpus, &stat, ncpus).expect("sampler");
    // every CPU busy in every interval (the worst case: every frequency
    // file read), then one CPU in eight
    for every in [1u32, 8] {
        let mut rows = rows.clone();
        let mut prev = s.read(None).expect("read");
        let (mut wall, mut cpu) = (Vec::new(), 0.0);
        for i in 0..samples {
            for (c, r) in rows.iter_mut().enumerate() {
                if c as u32 % every == 0 {
                    r.user += 50 + u64::from(i);
                }
            }
            write_proc_stat(&stat, &rows).expect("stat");
            let (t, c0) = (Instant::now(), cpu_seconds());
            let r = s.read(Some(&mut prev)).expect("read");
            let iv = s.interval(&prev, &r);
            std::hint::black_box(&iv);
            cpu += cpu_seconds() - c0;
            wall.push(t.elapsed().as_secs_f64() * 1e3);
            prev = r;
        }
        let cpu_ms = cpu * 1e3 / f64::from(samples);
        wall.sort_by(f64::total_cmp);
        println!(
            "sampler thread, one sample, 1 CPU in {every} busy: p50 {:.2} ms, max {:.2} ms wall, {:.2} ms CPU ({:.2} % of a core at the default 1 s interval)",
            wall[wall.len() / 2],
            wall[wall.len() - 1],
            cpu_ms,
            cpu_ms / 10.0
        );
    }
    let mut times = Vec::new();
    // the loop's side: 64 VMs x 64 pCPUs, every CPU with energy
    let cpu_j: BTreeMap<u32, f64> = (0..ncpus).map(|c| (c, 0.01)).collect();
    let owned: Vec<Vec<u32>> = (0..64u32)
        .map(|v| (0..64).map(|i| (v * 64 + i) % ncpus).collect())
        .collect();
    let lists: Vec<&[u32]> = owned.iter().map(Vec::as_slice).collect();
    for _ in 0..10 {
        let t = Instant::now();
        std::hint::black_box(model::vm_shares(&cpu_j, &lists));
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "loop, VM shares of 64 VMs x 64 pCPUs: p50 {:.0} us",
        times[times.len() / 2]
    );
}
