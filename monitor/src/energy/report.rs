//! Energy in the reports: the `show_vm` line, the JSON fields (`show_vm`, `list_vms`, the metrics snapshot) and the Prometheus families.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rte_pm::metrics::Labels;
use serde::{Deserialize, Serialize};

use super::{EnergyLoop, Status, VmEnergy};

type FCounter = Counter<f64, AtomicU64>;
type FGauge = Gauge<f64, AtomicU64>;

/// A VM's energy in `show_vm --json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VmEnergyJson {
    /// Is energy attributed (RAPL read, sampling on)?
    pub available: bool,
    /// Joules since the VM was added (`null`: not available).
    pub joules: Option<f64>,
    /// Watts over the last interval (`null`: none yet or not available).
    pub watts: Option<f64>,
    /// Length of the last interval, seconds.
    pub interval_s: Option<f64>,
    /// Intervals sampled since the VM was added.
    pub intervals: u64,
    /// Packages holding its pCPUs.
    pub packages: Vec<u32>,
    /// The model (`busy x frequency from ...`).
    pub model: String,
    /// Why it is not available.
    pub why: Option<String>,
}

/// A package in the metrics snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct PackageJson {
    /// `physical_package_id`.
    pub package: u32,
    /// Package energy since sampling started.
    pub joules: f64,
    /// Of which unattributed.
    pub unattributed_joules: f64,
    /// Watts over the last interval.
    pub watts: Option<f64>,
    /// Counter wraps seen.
    pub wraps: u64,
    /// Intervals lost to a counter reset.
    pub resets: u64,
}

/// Energy in the metrics snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct EnergyJson {
    /// Sampling and attributing.
    pub available: bool,
    /// Why not.
    pub why: Option<String>,
    /// Per package.
    pub packages: Vec<PackageJson>,
}

/// Why energy is not shown, or `None` while sampling.
pub fn unavailable(e: &EnergyLoop) -> Option<String> {
    match &e.status {
        Status::Sampling => None,
        Status::Off => Some("sampling off: --energy-interval-ms 0".into()),
        Status::Starting => Some("sampling has not started yet".into()),
        Status::Unavailable(why) => Some(why.clone()),
    }
}

fn model(e: &EnergyLoop) -> String {
    e.ready
        .as_ref()
        .map_or_else(String::new, |r| r.source.model().to_string())
}

fn list(v: &[u32]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// The `show_vm` line of a VM owning `cpus`.
pub fn vm_line(e: &EnergyLoop, v: &VmEnergy, cpus: &[u32]) -> String {
    if let Some(why) = unavailable(e) {
        return format!("Energy: not available ({why})");
    }
    let pk = list(&e.packages_of(cpus));
    let last = match v.watts() {
        Some(w) => format!("{w:.2} W over the last {:.1} s", v.last_secs),
        None if v.last_unknown => format!(
            "power unknown over the last {:.1} s (a package counter went back or jumped)",
            v.last_secs
        ),
        None => "no interval yet".into(),
    };
    format!(
        "Energy: {:.3} J since added, {last} (packages {pk}; model {})",
        v.joules,
        model(e)
    )
}

/// The `energy` object of `show_vm --json`.
pub fn vm_json(e: &EnergyLoop, v: &VmEnergy, cpus: &[u32]) -> VmEnergyJson {
    let why = unavailable(e);
    let on = why.is_none();
    VmEnergyJson {
        available: on,
        joules: on.then_some(v.joules),
        watts: v.watts().filter(|_| on),
        interval_s: (on && v.last_secs > 0.0).then_some(v.last_secs),
        intervals: v.intervals,
        packages: e.packages_of(cpus),
        model: model(e),
        why,
    }
}

/// The snapshot's energy part.
pub fn snapshot(e: &EnergyLoop) -> EnergyJson {
    EnergyJson {
        available: e.sampling(),
        why: unavailable(e),
        packages: e
            .packages
            .iter()
            .map(|(&package, t)| PackageJson {
                package,
                joules: t.joules,
                unattributed_joules: t.unattributed,
                watts: t.watts,
                wraps: t.wraps,
                resets: t.resets,
            })
            .collect(),
    }
}

fn labels(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

/// The energy families: per VM `(name, joules, watts)` (joules `None`:
/// not available) and the snapshot's packages.
pub fn register(reg: &mut Registry, vms: &[(&str, Option<f64>, Option<f64>)], e: &EnergyJson) {
    let avail = Gauge::<i64>::default();
    avail.set(i64::from(e.available));
    reg.register(
        "vm_power_mgr_energy_available",
        "1 while per-VM energy is sampled from RAPL, 0 when not available or off",
        avail,
    );
    if !e.available {
        return;
    }
    let joules = Family::<Labels, FCounter>::default();
    let watts = Family::<Labels, FGauge>::default();
    for (name, j, w) in vms {
        if let Some(j) = j {
            joules.get_or_create(&labels("vm", name)).inc_by(*j);
        }
        if let Some(w) = w {
            watts.get_or_create(&labels("vm", name)).set(*w);
        }
    }
    reg.register(
        "vm_power_mgr_vm_energy_joules",
        "A VM's share of its packages' RAPL energy since it was added (model busy x frequency, docs/monitor.md)",
        joules,
    );
    reg.register(
        "vm_power_mgr_vm_power_watts",
        "A VM's share of package power over the last energy interval",
        watts,
    );
    let pkg = Family::<Labels, FCounter>::default();
    let unattributed = Family::<Labels, FCounter>::default();
    let wraps = Family::<Labels, Counter>::default();
    let resets = Family::<Labels, Counter>::default();
    for p in &e.packages {
        let l = labels("package", &p.package.to_string());
        pkg.get_or_create(&l).inc_by(p.joules);
        unattributed.get_or_create(&l).inc_by(p.unattributed_joules);
        wraps.get_or_create(&l).inc_by(p.wraps);
        resets.get_or_create(&l).inc_by(p.resets);
    }
    reg.register(
        "vm_power_mgr_energy_counter_wraps",
        "Wraps of a package's RAPL counters seen by the sampler",
        wraps,
    );
    reg.register(
        "vm_power_mgr_energy_counter_resets",
        "Intervals whose package energy was lost to a counter going back or jumping",
        resets,
    );
    reg.register(
        "rte_power_package_energy_joules",
        "RAPL package energy since the monitor started sampling",
        pkg,
    );
    reg.register(
        "vm_power_mgr_energy_unattributed_joules",
        "Package energy of intervals in which no CPU of the package was busy (idle, uncore)",
        unattributed,
    );
}

#[cfg(test)]
mod tests {
    use super::super::sampler::{FreqSource, Ready};
    use super::super::EnergyConfig;
    use super::*;

    fn sampling() -> EnergyLoop {
        let mut e = EnergyLoop::new(EnergyConfig::default());
        e.ready = Some(Ready {
            packages: vec![(0, vec![0, 1]), (1, vec![2, 3])],
            others: Vec::new(),
            source: FreqSource::TimeInState,
            wrap_s: 100.0,
        });
        e.status = Status::Sampling;
        e
    }

    #[test]
    fn the_show_vm_line() {
        let e = sampling();
        let mut v = VmEnergy::default();
        assert_eq!(
            vm_line(&e, &v, &[1]),
            "Energy: 0.000 J since added, no interval yet (packages 0; model busy x frequency from cpufreq time_in_state)"
        );
        v.add(12.345, 1.0);
        v.last_joules = 4.56;
        assert_eq!(
            vm_line(&e, &v, &[1, 2]),
            "Energy: 12.345 J since added, 4.56 W over the last 1.0 s (packages 0,1; model busy x frequency from cpufreq time_in_state)"
        );
        let j = vm_json(&e, &v, &[3]);
        assert_eq!(
            (j.joules, j.watts, j.packages),
            (Some(12.345), Some(4.56), vec![1])
        );
        let mut lost = v;
        lost.add_unknown(1.5);
        assert_eq!(
            vm_line(&e, &lost, &[1]),
            "Energy: 12.345 J since added, power unknown over the last 1.5 s (a package counter went back or jumped) (packages 0; model busy x frequency from cpufreq time_in_state)"
        );
        let j = vm_json(&e, &lost, &[1]);
        assert_eq!(
            (j.joules, j.watts, j.interval_s),
            (Some(12.345), None, Some(1.5))
        );
        let mut off = sampling();
        off.status = Status::Unavailable("no RAPL package zone under /x".into());
        assert_eq!(
            vm_line(&off, &v, &[1]),
            "Energy: not available (no RAPL package zone under /x)"
        );
        let j = vm_json(&off, &v, &[1]);
        assert!(!j.available && j.joules.is_none() && j.watts.is_none());
    }
}
