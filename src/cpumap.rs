//! The lcore -> CPU mapping (identity, or DPDK EAL's).
//!
//! lcore -> CPU mapping. Identity by default; when the process contains
//! DPDK's EAL, its `rte_lcore_cpuset()` is followed (found at run time in
//! [`crate::dpdk_sym`], so the library never links DPDK), and an lcore
//! mapped to other than exactly one CPU is refused, as DPDK 22.11.7+ does.

use std::ffi::{c_int, c_uint};

use crate::dpdk_sym::Dpdk;
use crate::error::{PowerError, Result};

type LcoreToCpuId = unsafe extern "C" fn(c_int) -> c_int;
type LcoreCpuset = unsafe extern "C" fn(c_uint) -> libc::cpu_set_t;

/// How lcore ids become CPU ids.
#[derive(Clone, Copy)]
pub enum CpuMap {
    /// lcore N is CPU N.
    Identity,
    /// lcore N is CPU `cpus[N]` (Rust users without EAL, tests); lcores
    /// beyond the list are refused. Several lcores may share a CPU.
    Fixed(&'static [u32]),
    /// Follow DPDK's EAL found in the process.
    Eal {
        /// `rte_lcore_to_cpu_id`: -1 beyond EAL's `RTE_MAX_LCORE`.
        to_cpu_id: LcoreToCpuId,
        /// `rte_lcore_cpuset`.
        cpuset: LcoreCpuset,
    },
}

impl std::fmt::Debug for CpuMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CpuMap::Identity => "Identity",
            CpuMap::Fixed(_) => "Fixed",
            CpuMap::Eal { .. } => "Eal",
        })
    }
}

impl CpuMap {
    /// EAL's mapping if the process has EAL, else identity.
    pub fn detect() -> CpuMap {
        let d = Dpdk::get();
        match (d.lcore_to_cpu_id, d.lcore_cpuset) {
            (Some(to_cpu_id), Some(cpuset)) => CpuMap::Eal { to_cpu_id, cpuset },
            _ => CpuMap::Identity,
        }
    }

    /// The CPU of `lcore` (already checked against the library's own range).
    pub fn cpu_of(&self, lcore: u32) -> Result<u32> {
        match *self {
            CpuMap::Identity => Ok(lcore),
            CpuMap::Fixed(cpus) => {
                cpus.get(lcore as usize)
                    .copied()
                    .ok_or(PowerError::InvalidLcore {
                        lcore,
                        max: cpus.len() as u32,
                    })
            }
            CpuMap::Eal { to_cpu_id, cpuset } => {
                let id = c_int::try_from(lcore)
                    .map_err(|_| PowerError::InvalidLcore { lcore, max: 0 })?;
                // SAFETY: rte_lcore_to_cpu_id bounds-checks its argument and
                // returns -1 beyond EAL's RTE_MAX_LCORE; it only reads EAL's
                // lcore table.
                if unsafe { to_cpu_id(id) } < 0 {
                    return Err(PowerError::NotEalLcore { lcore });
                }
                // SAFETY: the lcore is below EAL's RTE_MAX_LCORE (checked just
                // above), which is what rte_lcore_cpuset requires.
                let set = unsafe { cpuset(lcore) };
                single_cpu(&set).ok_or_else(|| PowerError::CpuMapping {
                    lcore,
                    ncpus: count(&set),
                })
            }
        }
    }
}

fn count(set: &libc::cpu_set_t) -> u32 {
    // SAFETY: CPU_COUNT only reads the set.
    unsafe { libc::CPU_COUNT(set) as u32 }
}

fn single_cpu(set: &libc::cpu_set_t) -> Option<u32> {
    if count(set) != 1 {
        return None;
    }
    (0..libc::CPU_SETSIZE as usize).find_map(|c| {
        // SAFETY: CPU_ISSET only reads the set; c < CPU_SETSIZE.
        unsafe { libc::CPU_ISSET(c, set) }.then_some(c as u32)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_without_eal() {
        // the test binary contains no DPDK
        assert!(matches!(CpuMap::detect(), CpuMap::Identity));
        assert_eq!(CpuMap::Identity.cpu_of(5).expect("cpu"), 5);
    }

    #[test]
    fn a_fixed_map_may_put_lcores_on_one_cpu() {
        let m = CpuMap::Fixed(&[0, 1, 1]);
        assert_eq!(m.cpu_of(1).expect("cpu"), 1);
        assert_eq!(m.cpu_of(2).expect("cpu"), 1);
        assert!(matches!(
            m.cpu_of(3),
            Err(PowerError::InvalidLcore { lcore: 3, max: 3 })
        ));
    }

    #[test]
    fn single_cpu_sets() {
        // SAFETY: a zeroed cpu_set_t is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        assert_eq!(single_cpu(&set), None);
        // SAFETY: CPU_SET writes one bit of a set we own; 7 < CPU_SETSIZE.
        unsafe { libc::CPU_SET(7, &mut set) };
        assert_eq!(single_cpu(&set), Some(7));
        // SAFETY: as above.
        unsafe { libc::CPU_SET(9, &mut set) };
        assert_eq!(single_cpu(&set), None);
        assert_eq!(count(&set), 2);
    }
}
