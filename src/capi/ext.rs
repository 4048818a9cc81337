//! The exports of `rte_power_ext.h`, rte-power's own extensions.

use std::ffi::{c_int, c_uint};

use super::boundary::ffi_guard;
use super::errors::{self, quiet};
use super::global;
use crate::host::MAX_FREQS;

/// `struct rte_power_ext_pstate_stats`.
#[repr(C)]
pub struct rte_power_ext_pstate_stats {
    /// Entries in the table.
    pub num: u32,
    /// Current index.
    pub current: u32,
    /// Frequency changes since init.
    pub transitions: u64,
    /// Nanoseconds since init.
    pub elapsed_ns: u64,
    /// The table (kHz, descending).
    pub freqs_khz: [u32; MAX_FREQS],
    /// Nanoseconds at each index.
    pub residency_ns: [u64; MAX_FREQS],
}

/// Fills `stats`: 0, -1, or -ENOTSUP in the KVM guest env.
///
/// # Safety
/// `stats` is NULL or valid for writing one `struct rte_power_ext_pstate_stats`.
#[no_mangle]
pub unsafe extern "C" fn rte_power_ext_get_pstate_stats(
    lcore_id: c_uint,
    stats: *mut rte_power_ext_pstate_stats,
) -> c_int {
    ffi_guard(|| {
        let st = match global::power().host_op(lcore_id, "P-state statistics", |l| l.stats()) {
            Ok(st) => st,
            Err(e) => return quiet(&e),
        };
        if stats.is_null() {
            return errors::FAILED;
        }
        let mut out = rte_power_ext_pstate_stats {
            num: st.freqs_khz.len() as u32,
            current: st.current,
            transitions: st.transitions,
            elapsed_ns: st.elapsed_ns,
            freqs_khz: [0; MAX_FREQS],
            residency_ns: [0; MAX_FREQS],
        };
        for (o, f) in out.freqs_khz.iter_mut().zip(&st.freqs_khz) {
            *o = *f;
        }
        for (o, r) in out.residency_ns.iter_mut().zip(&st.residency_ns) {
            *o = *r;
        }
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { stats.write(out) };
        errors::OK
    })
}
