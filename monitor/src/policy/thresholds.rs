//! Per-core BRANCH_RATIO thresholds, as DPDK 20.08+ takes them (`--core-branch-ratio`).

use std::collections::BTreeMap;

/// Per-core thresholds (`--core-branch-ratio <list>[:<ratio>]`, as DPDK
/// 20.08+: repeatable, 0 < ratio <= 100, percent, default 0.1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BranchThresholds {
    per_cpu: BTreeMap<u32, f64>,
}

/// A bad `--core-branch-ratio`.
#[derive(Debug, thiserror::Error)]
pub enum ThresholdError {
    /// The CPU list does not parse.
    #[error("--core-branch-ratio '{arg}': bad CPU list: {error}")]
    List {
        /// The argument.
        arg: String,
        /// Why.
        error: rte_power::cpulist::CpuListError,
    },
    /// The ratio is not in (0, 100].
    #[error("--core-branch-ratio '{0}': the ratio must be a number in (0, 100]")]
    Ratio(String),
}

impl BranchThresholds {
    /// Adds one `--core-branch-ratio` argument.
    pub fn add(&mut self, arg: &str) -> Result<(), ThresholdError> {
        let (list, ratio) = match arg.split_once(':') {
            Some((l, r)) => {
                let r: f64 = r
                    .trim()
                    .parse()
                    .map_err(|_| ThresholdError::Ratio(arg.into()))?;
                if !(r > 0.0 && r <= 100.0) {
                    return Err(ThresholdError::Ratio(arg.into()));
                }
                (l, r)
            }
            None => (arg, super::decide::DEFAULT_BRANCH_RATIO),
        };
        let cpus =
            rte_power::cpulist::CpuSet::parse_list(list).map_err(|error| ThresholdError::List {
                arg: arg.into(),
                error,
            })?;
        for c in cpus.iter() {
            self.per_cpu.insert(c, ratio);
        }
        Ok(())
    }

    /// The threshold of `cpu`, percent.
    pub fn of(&self, cpu: u32) -> f64 {
        self.per_cpu
            .get(&cpu)
            .copied()
            .unwrap_or(super::decide::DEFAULT_BRANCH_RATIO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_as_dpdk_takes_them() {
        let mut t = BranchThresholds::default();
        t.add("1,3-4:0.5").expect("list:ratio");
        t.add("6").expect("list alone");
        assert_eq!(t.of(1), 0.5);
        assert_eq!(t.of(4), 0.5);
        assert_eq!(t.of(6), 0.1);
        assert_eq!(t.of(2), 0.1, "default");
        for bad in ["1:0", "1:101", "1:x", "x:1", "1:-1"] {
            assert!(t.add(bad).is_err(), "{bad}");
        }
    }
}
