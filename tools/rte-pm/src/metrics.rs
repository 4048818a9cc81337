//! The per-CPU Prometheus families (`rte-pm metrics`, the monitor's `--metrics`).
//!
//! Read from the kernel's cpufreq sysfs, one sample per CPU, and encoded
//! in the Prometheus text exposition format with `prometheus-client`:
//!
//! - `rte_power_cpu_frequency_hertz{cpu}`: `scaling_cur_freq` in hertz;
//! - `rte_power_cpu_governor_info{cpu,governor,driver}`: always 1;
//! - `rte_power_cpu_pstate_transitions_total{cpu}` and
//!   `rte_power_cpu_pstate_residency_seconds_total{cpu,frequency}` where
//!   the kernel keeps `cpufreq/stats`.
//!
//! A CPU whose files cannot be read is left out of the family that needs
//! them (and counted in `rte_power_cpu_read_errors`).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use rte_power::sysfs::SysfsRoot;

/// Label pairs of one series.
pub type Labels = Vec<(String, String)>;

/// What one CPU's files said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSample {
    /// The CPU.
    pub cpu: u32,
    /// `scaling_cur_freq`, kHz.
    pub freq_khz: Option<u64>,
    /// `scaling_governor`.
    pub governor: Option<String>,
    /// `scaling_driver`.
    pub driver: Option<String>,
    /// `stats/total_trans`.
    pub transitions: Option<u64>,
    /// `stats/time_in_state`: (kHz, 10 ms units).
    pub residency: Vec<(u64, u64)>,
}

/// Reads `cpu`'s cpufreq files (missing ones stay `None`).
pub fn sample(sysfs: &SysfsRoot, cpu: u32) -> CpuSample {
    let read = |attr: &str| {
        std::fs::read_to_string(sysfs.cpufreq(cpu, attr))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let residency = read("stats/time_in_state")
        .map(|s| {
            s.lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    Some((w.next()?.parse().ok()?, w.next()?.parse().ok()?))
                })
                .collect()
        })
        .unwrap_or_default();
    CpuSample {
        cpu,
        freq_khz: read("scaling_cur_freq").and_then(|s| s.parse().ok()),
        governor: read("scaling_governor"),
        driver: read("scaling_driver"),
        transitions: read("stats/total_trans").and_then(|s| s.parse().ok()),
        residency,
    }
}

/// Samples every CPU in `cpus`.
pub fn sample_all(sysfs: &SysfsRoot, cpus: impl IntoIterator<Item = u32>) -> Vec<CpuSample> {
    cpus.into_iter().map(|c| sample(sysfs, c)).collect()
}

fn cpu_label(cpu: u32) -> Labels {
    vec![("cpu".into(), cpu.to_string())]
}

/// Registers the per-CPU families of `samples` in `reg`.
pub fn register_cpu_families(reg: &mut Registry, samples: &[CpuSample]) {
    let freq = Family::<Labels, Gauge>::default();
    let trans = Family::<Labels, Counter>::default();
    let resid = Family::<Labels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
    let errors = Gauge::<i64>::default();
    let gov = Family::<Labels, Gauge>::default();
    for s in samples {
        match s.freq_khz {
            Some(k) => {
                freq.get_or_create(&cpu_label(s.cpu))
                    .set(i64::try_from(k.saturating_mul(1000)).unwrap_or(i64::MAX));
            }
            None => {
                errors.inc();
            }
        }
        if let Some(g) = &s.governor {
            let labels: Labels = vec![
                ("cpu".into(), s.cpu.to_string()),
                ("governor".into(), g.clone()),
                ("driver".into(), s.driver.clone().unwrap_or_default()),
            ];
            gov.get_or_create(&labels).set(1);
        }
        if let Some(t) = s.transitions {
            trans.get_or_create(&cpu_label(s.cpu)).inc_by(t);
        }
        for &(khz, ticks) in &s.residency {
            let labels: Labels = vec![
                ("cpu".into(), s.cpu.to_string()),
                ("frequency".into(), (khz * 1000).to_string()),
            ];
            resid.get_or_create(&labels).inc_by(ticks as f64 / 100.0);
        }
    }
    reg.register(
        "rte_power_cpu_frequency_hertz",
        "Current frequency of a CPU (scaling_cur_freq)",
        freq,
    );
    reg.register(
        "rte_power_cpu_governor_info",
        "The kernel's cpufreq governor and driver of a CPU (always 1)",
        gov,
    );
    reg.register(
        "rte_power_cpu_pstate_transitions",
        "P-state transitions of a CPU (cpufreq/stats/total_trans)",
        trans,
    );
    reg.register(
        "rte_power_cpu_pstate_residency_seconds",
        "Time a CPU spent at each frequency (cpufreq/stats/time_in_state)",
        resid,
    );
    reg.register(
        "rte_power_cpu_read_errors",
        "CPUs whose scaling_cur_freq could not be read in this scrape",
        errors,
    );
}

/// Encodes `reg` as Prometheus text (ends with `# EOF`).
pub fn exposition(reg: &Registry) -> String {
    let mut out = String::new();
    // writing into a String cannot fail
    let _ = encode(&mut out, reg);
    out
}

/// OpenMetrics text as the classic text format 0.0.4 (node_exporter's
/// textfile collector): a counter's `# HELP`/`# TYPE` name its `_total`
/// series, and there is no `# EOF`.
pub fn to_text_format(openmetrics: &str) -> String {
    let mut counters = Vec::new();
    for l in openmetrics.lines() {
        if let Some(name) = l
            .strip_prefix("# TYPE ")
            .and_then(|r| r.strip_suffix(" counter"))
        {
            counters.push(name.to_string());
        }
    }
    let mut out = String::with_capacity(openmetrics.len());
    for l in openmetrics.lines() {
        if l == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = l.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .iter()
                .any(|c| c == name)
                .then(|| format!("{p}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(l));
        out.push('\n');
    }
    out
}

/// `rte-pm metrics`: the per-CPU families of `cpus`, classic text format.
pub fn render(sysfs: &SysfsRoot, cpus: impl IntoIterator<Item = u32>) -> String {
    let mut reg = Registry::default();
    register_cpu_families(&mut reg, &sample_all(sysfs, cpus));
    to_text_format(&exposition(&reg))
}
