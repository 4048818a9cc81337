//! A simulated host (CPU tree, cpufreq stats, cpuidle, /proc/stat) for trying rte-pm.
//!
//! Generates a simulated host for trying `rte-pm` (and the library) without
//! touching the real machine: a sysfs CPU tree with cpufreq/stats, cpuidle
//! states, SMT topology and governor tunables, plus a `/proc/stat`.
//!
//! ```text
//! cargo run -p testkit --example fake_host -- /tmp/host [acpi|pstate|cppc|amd|amd-epp] [ncpus]
//! RTE_POWER_SYSFS_CPU_DIR=/tmp/host/cpu RTE_POWER_PROC_STAT=/tmp/host/stat \
//!     target/debug/rte-pm get-cpufreq-para 0
//! ```

use std::path::PathBuf;

use testkit::sysfs::{write_proc_stat, FakeSysfs, Flavour, ProcStatCpu};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .ok_or("usage: fake_host DIR [flavour] [ncpus]")?,
    );
    let flavour = match args.next() {
        Some(f) => Flavour::parse(&f).ok_or_else(|| format!("unknown flavour {f:?}"))?,
        None => Flavour::Acpi,
    };
    let ncpus: u32 = args.next().map_or(Ok(4), |n| n.parse())?;
    let mut fake = FakeSysfs::new(flavour, ncpus);
    fake.cpufreq_stats = true;
    fake.idle_states = 4;
    fake.threads_per_core = 2;
    fake.governor_tunables = true;
    fake.governor = Some("ondemand".into()).filter(|_| flavour == Flavour::Acpi);
    fake.create(&dir.join("cpu"))?;
    let cpus: Vec<ProcStatCpu> = (0..ncpus)
        .map(|c| ProcStatCpu {
            user: 1000 + u64::from(c) * 10,
            system: 200,
            idle: 8000,
            ..Default::default()
        })
        .collect();
    write_proc_stat(&dir.join("stat"), &cpus)?;
    println!(
        "RTE_POWER_SYSFS_CPU_DIR={} RTE_POWER_PROC_STAT={}",
        dir.join("cpu").display(),
        dir.join("stat").display()
    );
    Ok(())
}
