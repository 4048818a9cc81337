//! The library's clocks: the TSC and CLOCK_MONOTONIC.
//!
//! Cheap time stamps: the one TSC read and the one CLOCK_MONOTONIC read of
//! the library.

/// A cheap monotonic tick count: the TSC on x86_64 (constant-rate on every
/// CPU our drivers serve; DPDK's `rte_rdtsc()`), CLOCK_MONOTONIC in ns
/// elsewhere. Ticks are converted to time by whoever knows the rate (the
/// lcore statistics measure it, PMD management asks EAL).
#[inline]
pub(crate) fn ticks() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions on x86_64.
        #[allow(unused_unsafe)]
        unsafe {
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        monotonic_ns()
    }
}

/// CLOCK_MONOTONIC in ns (vDSO: no system call).
#[inline]
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_clocks_move_forward() {
        let (t0, n0) = (ticks(), monotonic_ns());
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(ticks() > t0);
        assert!(monotonic_ns() >= n0 + 2_000_000);
    }
}
