//! The PMD-management tunables of a power context.
//!
//! The PMD-management tunables the power context holds: empty polls
//! before sleeping, the pause duration, per-lcore scaling limits.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use crate::error::{PowerError, Result};
use crate::lcore::MAX_LCORE;

/// The PMD-management tunables (`rte_power_pmd_mgmt_set_*`); one set per
/// [`crate::Power`]. Queue management reads them on every poll; the
/// intel_pstate driver reads an lcore's scaling limits when it initialises.
#[derive(Debug)]
pub struct PmdConfig {
    emptypoll_max: AtomicU32,
    pause_duration: AtomicU32,
    scale_min: Box<[AtomicU32]>,
    /// `u32::MAX` = unset.
    scale_max: Box<[AtomicU32]>,
}

impl Default for PmdConfig {
    fn default() -> Self {
        Self {
            emptypoll_max: AtomicU32::new(Self::DEFAULT_EMPTYPOLL_MAX),
            pause_duration: AtomicU32::new(Self::DEFAULT_PAUSE_DURATION_US),
            scale_min: (0..MAX_LCORE).map(|_| AtomicU32::new(0)).collect(),
            scale_max: (0..MAX_LCORE).map(|_| AtomicU32::new(u32::MAX)).collect(),
        }
    }
}

fn idx(lcore: u32) -> Result<usize> {
    if lcore < MAX_LCORE {
        Ok(lcore as usize)
    } else {
        Err(PowerError::InvalidLcore {
            lcore,
            max: MAX_LCORE,
        })
    }
}

impl PmdConfig {
    /// DPDK's default number of empty polls before sleeping.
    pub const DEFAULT_EMPTYPOLL_MAX: u32 = 512;
    /// DPDK's default pause duration in microseconds.
    pub const DEFAULT_PAUSE_DURATION_US: u32 = 1;

    /// Empty polls before an lcore sleeps or scales down.
    pub fn emptypoll_max(&self) -> u32 {
        self.emptypoll_max.load(Relaxed)
    }

    /// Sets [`emptypoll_max`](Self::emptypoll_max) (any value, as DPDK).
    pub fn set_emptypoll_max(&self, v: u32) {
        self.emptypoll_max.store(v, Relaxed)
    }

    /// Pause duration in microseconds.
    pub fn pause_duration(&self) -> u32 {
        self.pause_duration.load(Relaxed)
    }

    /// Sets the pause duration; 0 is refused.
    pub fn set_pause_duration(&self, us: u32) -> Result<()> {
        if us == 0 {
            return Err(PowerError::InvalidArgument(
                "pause duration must be at least 1 us".into(),
            ));
        }
        self.pause_duration.store(us, Relaxed);
        Ok(())
    }

    /// Minimum scaling frequency of an lcore in kHz (0 = unset).
    pub fn scaling_min(&self, lcore: u32) -> Result<u32> {
        Ok(self.scale_min[idx(lcore)?].load(Relaxed))
    }

    /// Maximum scaling frequency of an lcore in kHz (0 = unset).
    pub fn scaling_max(&self, lcore: u32) -> Result<u32> {
        let v = self.scale_max[idx(lcore)?].load(Relaxed);
        Ok(if v == u32::MAX { 0 } else { v })
    }

    /// Sets the minimum; refused above the lcore's maximum.
    pub fn set_scaling_min(&self, lcore: u32, khz: u32) -> Result<()> {
        let i = idx(lcore)?;
        let max = self.scale_max[i].load(Relaxed);
        if khz > max {
            return Err(PowerError::InvalidArgument(format!(
                "lcore {lcore}: scaling min {khz} kHz is above its max {max} kHz"
            )));
        }
        self.scale_min[i].store(khz, Relaxed);
        Ok(())
    }

    /// Sets the maximum (0 = unset); refused below the lcore's minimum.
    pub fn set_scaling_max(&self, lcore: u32, khz: u32) -> Result<()> {
        let i = idx(lcore)?;
        let v = if khz == 0 { u32::MAX } else { khz };
        let min = self.scale_min[i].load(Relaxed);
        if v < min {
            return Err(PowerError::InvalidArgument(format!(
                "lcore {lcore}: scaling max {khz} kHz is below its min {min} kHz"
            )));
        }
        self.scale_max[i].store(v, Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_dpdk_rules() {
        let c = PmdConfig::default();
        assert_eq!(c.emptypoll_max(), 512);
        assert_eq!(c.pause_duration(), 1);
        assert!(c.set_pause_duration(0).is_err());
        assert_eq!(c.scaling_min(3).expect("min"), 0);
        assert_eq!(c.scaling_max(3).expect("max"), 0);
        c.set_scaling_max(3, 2_000_000).expect("set max");
        assert!(c.set_scaling_min(3, 2_100_000).is_err());
        c.set_scaling_min(3, 1_000_000).expect("set min");
        assert!(c.set_scaling_max(3, 900_000).is_err());
        c.set_scaling_max(3, 0).expect("unset max");
        assert_eq!(c.scaling_max(3).expect("max"), 0);
        assert!(c.scaling_min(MAX_LCORE).is_err());
        assert!(c.set_scaling_max(MAX_LCORE, 1).is_err());
    }
}
