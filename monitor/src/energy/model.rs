//! The energy model as pure functions: counter steps, per-CPU weights, package and VM shares.
//!
//! Per package and interval, the package's energy ΔE is split between its
//! CPUs in proportion to a weight, busy time × average frequency; a VM
//! gets the energy of the CPUs its vCPUs are pinned to (a CPU that k
//! active managed VMs may run on is split 1/k). Energy of an interval in
//! which no CPU of the package was busy is "unattributed". The model's
//! assumptions and error are in docs/monitor.md §2.8.

use std::collections::BTreeMap;

/// Above this a package's counter step is not believed (a reset, or more
/// than one wrap): no package draws 2 kW.
pub const MAX_PACKAGE_WATTS: f64 = 2000.0;

/// What a counter did between two reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CounterStep {
    /// It went forward by this many µJ.
    Forward(u64),
    /// It wrapped once at its range: this many µJ in all.
    Wrapped(u64),
    /// It went back or jumped by more than [`MAX_PACKAGE_WATTS`] allows
    /// (reset, reloaded driver, more than one wrap): the interval's energy
    /// is unknown and the new value is the next baseline.
    Reset,
}

impl CounterStep {
    /// The energy of the step in joules (`None` for a reset).
    pub fn joules(self) -> Option<f64> {
        match self {
            Self::Forward(uj) | Self::Wrapped(uj) => Some(uj as f64 / 1e6),
            Self::Reset => None,
        }
    }
}

/// The step of an `energy_uj` counter from `prev` to `now` over `secs`
/// seconds; it counts from 0 to `range_uj` (`max_energy_range_uj`) and
/// wraps to 0 (at most once per interval: see [`wrap_period_s`]).
pub fn counter_step(prev: u64, now: u64, range_uj: u64, secs: f64) -> CounterStep {
    let ceiling = MAX_PACKAGE_WATTS * secs.max(0.0) * 1e6;
    let step = if now >= prev {
        CounterStep::Forward(now - prev)
    } else if range_uj > 0 && prev <= range_uj && now <= range_uj {
        CounterStep::Wrapped(range_uj - prev + now)
    } else {
        return CounterStep::Reset;
    };
    match step {
        CounterStep::Forward(uj) | CounterStep::Wrapped(uj) if uj as f64 > ceiling => {
            CounterStep::Reset
        }
        s => s,
    }
}

/// Seconds the counter takes to wrap at `watts` (the longest interval the
/// model can sample without losing a wrap).
pub fn wrap_period_s(range_uj: u64, watts: f64) -> f64 {
    if watts <= 0.0 {
        return f64::INFINITY;
    }
    range_uj as f64 / 1e6 / watts
}

/// A CPU's weight in an interval: busy ticks × average frequency (kHz;
/// 1.0 when unknown: busy time alone).
pub fn cpu_weight(busy_ticks: u64, avg_khz: Option<f64>) -> f64 {
    busy_ticks as f64 * avg_khz.filter(|f| *f > 0.0).unwrap_or(1.0)
}

/// The average frequency over an interval from two reads of
/// `cpufreq/stats/time_in_state` (kHz -> ticks): Σ f·Δt / Σ Δt; `None`
/// when no time passed in any state (or the tables differ).
pub fn avg_khz(prev: &[(u32, u64)], now: &[(u32, u64)]) -> Option<f64> {
    if prev.len() != now.len() {
        return None;
    }
    let (mut num, mut den) = (0.0, 0.0);
    for ((fp, tp), (f, t)) in prev.iter().zip(now) {
        if fp != f {
            return None;
        }
        let dt = t.saturating_sub(*tp) as f64;
        num += f64::from(*f) * dt;
        den += dt;
    }
    (den > 0.0).then(|| num / den)
}

/// A package's energy split by weight: (per-CPU joules, unattributed
/// joules). With Σ weights = 0 it all is unattributed.
pub fn split_package(joules: f64, weights: &[(u32, f64)]) -> (Vec<(u32, f64)>, f64) {
    let total: f64 = weights.iter().map(|(_, w)| w.max(0.0)).sum();
    if total <= 0.0 {
        return (Vec::new(), joules);
    }
    let per = weights
        .iter()
        .filter(|(_, w)| *w > 0.0)
        .map(|&(c, w)| (c, joules * w / total))
        .collect();
    (per, 0.0)
}

/// Each VM's energy from per-CPU energy: Σ over its CPUs of the CPU's
/// energy / k, k the number of the given VMs that own the CPU. `vms` are
/// the owned CPU lists of the VMs that count (active ones), in order.
pub fn vm_shares(cpu_joules: &BTreeMap<u32, f64>, vms: &[&[u32]]) -> Vec<f64> {
    // users per CPU, dense (CPU ids are small): no map lookups per pCPU
    let top = vms
        .iter()
        .flat_map(|c| c.iter())
        .max()
        .map_or(0, |m| *m as usize + 1);
    let mut users = vec![0u32; top];
    for cpus in vms {
        for c in *cpus {
            users[*c as usize] += 1;
        }
    }
    vms.iter()
        .map(|cpus| {
            cpus.iter()
                .filter_map(|c| {
                    let j = cpu_joules.get(c)?;
                    Some(j / f64::from(users[*c as usize].max(1)))
                })
                // from +0.0: an empty float sum is -0.0 ("-0.00 W")
                .fold(0.0, |a, b| a + b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn counters_step_forward_wrap_once_and_reset() {
        let range = 262_143_328_850;
        assert_eq!(
            counter_step(1_000, 5_001_000, range, 1.0),
            CounterStep::Forward(5_000_000)
        );
        assert_eq!(counter_step(7, 7, range, 1.0), CounterStep::Forward(0));
        // 3 J before the range, 2 J after it
        assert_eq!(
            counter_step(range - 3_000_000, 2_000_000, range, 1.0),
            CounterStep::Wrapped(5_000_000)
        );
        assert_eq!(
            CounterStep::Wrapped(5_000_000).joules(),
            Some(5.0),
            "joules"
        );
        // backwards by less than a plausible wrap: a reset (the wrapped
        // step would be ~262 kJ in 1 s)
        assert_eq!(
            counter_step(50_000_000, 10_000_000, range, 1.0),
            CounterStep::Reset
        );
        assert_eq!(CounterStep::Reset.joules(), None);
        // a value beyond the range, or no range known: a reset
        assert_eq!(counter_step(range + 5, 1, range, 1.0), CounterStep::Reset);
        assert_eq!(counter_step(10, 1, 0, 1.0), CounterStep::Reset);
        // forward, but more than 2 kW: not believed
        assert_eq!(
            counter_step(0, 2_500_000_000, range, 1.0),
            CounterStep::Reset
        );
        assert_eq!(
            counter_step(0, 2_500_000_000, range, 2.0),
            CounterStep::Forward(2_500_000_000)
        );
        // a 32-bit range wraps within seconds at high power
        let small = 1u64 << 32;
        assert_eq!(
            counter_step(small - 1_000_000, 299_000_000, small, 1.0),
            CounterStep::Wrapped(300_000_000)
        );
    }

    #[test]
    fn wrap_periods() {
        assert!(close(wrap_period_s(1 << 32, 300.0), 4294.967296 / 300.0));
        assert!(close(wrap_period_s(262_143_328_850, 2000.0), 131.071664425));
        assert!(wrap_period_s(1, 0.0).is_infinite());
    }

    #[test]
    fn average_frequency_from_time_in_state() {
        let prev = [(2_000_000, 100), (1_000_000, 50)];
        let now = [(2_000_000, 130), (1_000_000, 60)];
        // 30 ticks at 2 GHz, 10 at 1 GHz
        assert!(close(avg_khz(&prev, &now).expect("avg"), 1_750_000.0));
        assert_eq!(avg_khz(&prev, &prev), None, "no time passed");
        assert_eq!(avg_khz(&prev, &now[..1]), None, "tables differ");
        assert!(close(cpu_weight(10, Some(2.0)), 20.0));
        assert!(close(cpu_weight(10, None), 10.0), "busy time alone");
    }

    #[test]
    fn package_energy_is_split_by_weight_or_left_unattributed() {
        let (per, un) = split_package(10.0, &[(0, 1.0), (1, 3.0), (2, 0.0)]);
        assert_eq!(per.len(), 2, "a CPU with weight 0 gets nothing");
        assert!(close(per[0].1, 2.5) && close(per[1].1, 7.5), "{per:?}");
        assert!(close(un, 0.0));
        let (per, un) = split_package(4.0, &[(0, 0.0), (1, 0.0)]);
        assert!(per.is_empty());
        assert!(close(un, 4.0), "an idle package: all unattributed");
        let (per, un) = split_package(4.0, &[]);
        assert!(per.is_empty() && close(un, 4.0));
    }

    #[test]
    fn vms_share_their_cpus_split_one_over_k() {
        let cpu: BTreeMap<u32, f64> = [(0, 6.0), (1, 4.0), (2, 2.0), (3, 1.0)].into();
        // a: CPUs 0 and 1; b: CPU 1 and 2; c: CPU 1
        let shares = vm_shares(&cpu, &[&[0, 1], &[1, 2], &[1]]);
        assert!(close(shares[0], 6.0 + 4.0 / 3.0), "{shares:?}");
        assert!(close(shares[1], 4.0 / 3.0 + 2.0), "{shares:?}");
        assert!(close(shares[2], 4.0 / 3.0), "{shares:?}");
        // CPU 3 belongs to no VM: nobody gets it
        let sum: f64 = shares.iter().sum();
        assert!(close(sum, 12.0));
        let none = vm_shares(&cpu, &[&[9]]);
        assert_eq!(none, [0.0], "a CPU with no energy");
        assert!(none[0].is_sign_positive(), "+0.0, printed 0.00");
        assert!(vm_shares(&cpu, &[]).is_empty());
    }
}
