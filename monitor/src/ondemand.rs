//! The `ondemand` decision as Xen's hypervisor governor makes it, as a pure function.
//!
//! The `ondemand` decision, as Xen's hypervisor governor makes it
//! (`xen/drivers/cpufreq/cpufreq_ondemand.c`, described in the project's
//! peer notes): every `sampling_rate` the load of the past interval is
//! computed, then
//!
//! * `load_freq = load * avgfreq`;
//! * if `load_freq > up_threshold * cur`: jump to the policy maximum;
//! * else if `load_freq < (up_threshold - 10) * cur`: go to
//!   `load_freq / (up_threshold - 10)`, rounded up to the lowest table
//!   entry at or above it (Xen's `CPUFREQ_RELATION_L`);
//! * else (inside the band): no change.
//!
//! Xen measures `avgfreq` with APERF/MPERF and falls back to the current
//! frequency when no measurement is available; the monitor has no such
//! counters for the CPUs it drives, so `avgfreq` is the programmed frequency
//! and the rule reduces to `load > up_threshold` (max) and
//! `load < up_threshold - 10` (step to `load * cur / (up_threshold - 10)`).
//!
//! Everything here is pure: [`decide`] takes the numbers and returns the
//! decision; the event loop samples `/proc/stat` and applies it.

use rte_pm::stats::procstat::CpuTime;

/// Xen's default `up_threshold`, percent.
pub const DEFAULT_UP_THRESHOLD: u32 = 80;
/// Smallest `up_threshold` Xen accepts.
pub const MIN_UP_THRESHOLD: u32 = 11;
/// Largest `up_threshold` Xen accepts.
pub const MAX_UP_THRESHOLD: u32 = 100;
/// Width of the no-change band below `up_threshold`, percent.
pub const DOWN_DIFFERENTIAL: u32 = 10;

/// What the governor does after one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Load above `up_threshold`: the highest allowed frequency.
    Max,
    /// Load below `up_threshold - 10`: this table index (lower frequency
    /// than the current one).
    Down(u32),
    /// Inside the band, already at the target, or no time passed.
    Keep,
}

/// Busy share of an interval in whole percent, as Xen computes it
/// (`100 * (wall - idle) / wall`); `None` when no time passed (Xen skips
/// such a sample).
pub fn load_pct(prev: &CpuTime, now: &CpuTime) -> Option<u32> {
    let d = prev.delta(now);
    let wall = d.total();
    if wall == 0 {
        return None;
    }
    u32::try_from(d.busy.saturating_mul(100) / wall).ok()
}

/// The index Xen's `CPUFREQ_RELATION_L` picks in a descending table: the
/// lowest frequency at or above `target_khz`, never above `cur_index`'s
/// entry; the lowest entry when `target_khz` is below the whole table.
pub fn relation_l(table: &[u32], cur_index: u32, target_khz: u64) -> u32 {
    let mut pick = cur_index;
    for (i, &f) in table.iter().enumerate().skip(cur_index as usize) {
        if u64::from(f) >= target_khz {
            pick = i as u32;
        } else {
            break;
        }
    }
    pick
}

/// One ondemand decision.
///
/// `table` is the CPU's frequency table in kHz, descending (index 0 =
/// highest); `cur_index` the current entry; `load` the busy percentage
/// of the past interval; `up_threshold` in 11..=100.
pub fn decide(load: u32, table: &[u32], cur_index: u32, up_threshold: u32) -> Decision {
    let Some(&cur) = table.get(cur_index as usize) else {
        return Decision::Keep;
    };
    let up = u64::from(up_threshold.clamp(MIN_UP_THRESHOLD, MAX_UP_THRESHOLD));
    let cur = u64::from(cur);
    // avgfreq = the programmed frequency (see the module text)
    let load_freq = u64::from(load) * cur;
    if load_freq > up * cur {
        return Decision::Max;
    }
    let low = up - u64::from(DOWN_DIFFERENTIAL);
    if load_freq < low * cur {
        let target = load_freq / low;
        let idx = relation_l(table, cur_index, target);
        if idx != cur_index {
            return Decision::Down(idx);
        }
    }
    Decision::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated acpi-cpufreq table: turbo entry, 2.6 .. 1.2 GHz.
    fn table() -> Vec<u32> {
        let mut t = vec![2_601_000];
        t.extend((0..15).map(|i| 2_600_000 - i * 100_000));
        t
    }

    fn idx(t: &[u32], khz: u32) -> u32 {
        t.iter().position(|&f| f == khz).expect("in table") as u32
    }

    #[test]
    fn load_from_counters() {
        let a = CpuTime { busy: 10, idle: 90 };
        assert_eq!(
            load_pct(
                &a,
                &CpuTime {
                    busy: 40,
                    idle: 160
                }
            ),
            Some(30)
        );
        assert_eq!(load_pct(&a, &a), None, "no time passed: skipped");
        assert_eq!(load_pct(&a, &CpuTime { busy: 13, idle: 90 }), Some(100));
        // counters restarted (CPU offline and back): saturates, no panic
        assert_eq!(load_pct(&a, &CpuTime { busy: 0, idle: 0 }), None);
    }

    #[test]
    fn relation_l_rounds_up_within_the_table() {
        let t = table();
        let c = idx(&t, 2_600_000);
        assert_eq!(t[relation_l(&t, c, 1_300_000) as usize], 1_300_000);
        assert_eq!(t[relation_l(&t, c, 1_250_001) as usize], 1_300_000);
        assert_eq!(t[relation_l(&t, c, 0) as usize], 1_200_000);
        assert_eq!(relation_l(&t, c, 9_000_000), c, "never above the current");
    }

    /// A scripted load series: each step is (load, expected decision,
    /// frequency afterwards), applied to a simulated CPU.
    #[test]
    fn scripted_load_series() {
        let t = table();
        let up = DEFAULT_UP_THRESHOLD;
        let max_idx = 0u32; // turbo allowed in this script
        let mut cur = idx(&t, 2_000_000);
        let script: &[(u32, &str, u32)] = &[
            // above the threshold: jump to max
            (95, "max", 2_601_000),
            // inside the band [70, 80]: nothing moves
            (80, "keep", 2_601_000),
            (75, "keep", 2_601_000),
            (70, "keep", 2_601_000),
            // below 70: lowest entry covering load * cur / 70
            // 35 * 2601000 / 70 = 1300500 -> 1400000
            (35, "down", 1_400_000),
            // 50 * 1400000 / 70 = 1000000 -> below the table: 1200000
            (50, "down", 1_200_000),
            // already at the bottom
            (0, "keep", 1_200_000),
            // inside the band at the bottom
            (79, "keep", 1_200_000),
            // 81 > 80: max again
            (81, "max", 2_601_000),
            // 69 * 2601000 / 70 = 2563842 -> 2600000 (one step, proportional)
            (69, "down", 2_600_000),
            // 60 * 2600000 / 70 = 2228571 -> 2300000
            (60, "down", 2_300_000),
            // 100 % at a threshold of 80: max
            (100, "max", 2_601_000),
        ];
        for (n, &(load, want, khz)) in script.iter().enumerate() {
            let d = decide(load, &t, cur, up);
            let got = match d {
                Decision::Max => {
                    if cur == max_idx {
                        "keep"
                    } else {
                        cur = max_idx;
                        "max"
                    }
                }
                Decision::Down(i) => {
                    assert!(i > cur, "step {n}: down means a lower frequency");
                    cur = i;
                    "down"
                }
                Decision::Keep => "keep",
            };
            assert_eq!(
                (got, t[cur as usize]),
                (want, khz),
                "step {n}: load {load}%"
            );
        }
    }

    #[test]
    fn threshold_moves_the_band() {
        let t = table();
        let c = idx(&t, 2_000_000);
        // up_threshold 95: 90 is inside [85, 95]
        assert_eq!(decide(90, &t, c, 95), Decision::Keep);
        assert_eq!(decide(96, &t, c, 95), Decision::Max);
        // 42 * 2000000 / 85 = 988235 -> bottom
        assert_eq!(decide(42, &t, c, 95), Decision::Down(idx(&t, 1_200_000)));
        // up_threshold 11 (smallest): band [1, 11]; load 0 steps down
        assert_eq!(decide(5, &t, c, 11), Decision::Keep);
        assert_eq!(decide(12, &t, c, 11), Decision::Max);
        assert_eq!(decide(0, &t, c, 11), Decision::Down(idx(&t, 1_200_000)));
        // an index outside the table decides nothing
        assert_eq!(decide(99, &t, 99, 80), Decision::Keep);
    }
}
