//! `rte_power_pmd_mgmt.h`: the tunables (the queue enable/disable calls
//! need DPDK's ethdev and come with the PMD-management work).

use std::ffi::{c_int, c_uint};

use super::boundary::ffi_guard;
use crate::error::PowerError;
use crate::Power;

fn einval(e: &PowerError) -> c_int {
    crate::log!(crate::log::Level::Error, "{e}");
    -libc::EINVAL
}

/// Sets how many empty polls an lcore makes before sleeping or scaling down.
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_set_emptypoll_max(max: c_uint) {
    ffi_guard(|| Power::global().pmd().set_emptypoll_max(max))
}

/// The empty-poll threshold (default 512).
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_get_emptypoll_max() -> c_uint {
    ffi_guard(|| Power::global().pmd().emptypoll_max())
}

/// Sets the pause duration in microseconds: 0, or -EINVAL for 0.
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_set_pause_duration(duration: c_uint) -> c_int {
    ffi_guard(|| {
        Power::global()
            .pmd()
            .set_pause_duration(duration)
            .map_or_else(|e| einval(&e), |()| 0)
    })
}

/// The pause duration in microseconds (default 1).
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_get_pause_duration() -> c_uint {
    ffi_guard(|| Power::global().pmd().pause_duration())
}

/// Sets an lcore's minimum scaling frequency (kHz): 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_set_scaling_freq_min(lcore: c_uint, min: c_uint) -> c_int {
    ffi_guard(|| {
        Power::global()
            .pmd()
            .set_scaling_min(lcore, min)
            .map_or_else(|e| einval(&e), |()| 0)
    })
}

/// Sets an lcore's maximum scaling frequency (kHz, 0 = unset): 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_set_scaling_freq_max(lcore: c_uint, max: c_uint) -> c_int {
    ffi_guard(|| {
        Power::global()
            .pmd()
            .set_scaling_max(lcore, max)
            .map_or_else(|e| einval(&e), |()| 0)
    })
}

/// An lcore's minimum scaling frequency (kHz), or -EINVAL.
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_get_scaling_freq_min(lcore: c_uint) -> c_int {
    ffi_guard(|| {
        Power::global()
            .pmd()
            .scaling_min(lcore)
            .map_or_else(|e| einval(&e), |v| v as c_int)
    })
}

/// An lcore's maximum scaling frequency (kHz, 0 = unset), or -EINVAL.
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_get_scaling_freq_max(lcore: c_uint) -> c_int {
    ffi_guard(|| {
        Power::global()
            .pmd()
            .scaling_max(lcore)
            .map_or_else(|e| einval(&e), |v| v as c_int)
    })
}
