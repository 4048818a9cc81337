//! The PMD management exports of `rte_power_pmd_mgmt.h`.
//!
//! `rte_power_pmd_mgmt.h`: queue enable/disable (DPDK's ethdev found in
//! the process at run time) and the tunables.

use std::ffi::{c_int, c_uint};

use super::boundary::ffi_guard;
use super::errors;
use super::global;

/// `enum rte_power_pmd_mgmt_type` as it crosses the ABI.
pub type rte_power_pmd_mgmt_type = c_uint;

/// Starts power-managing an Rx queue polled by `lcore_id`: 0, or -EINVAL,
/// -EBUSY (a queue is not stopped), -EEXIST, -ENOTSUP (no ethdev in the
/// process, no CPU/driver support).
#[no_mangle]
pub extern "C" fn rte_power_ethdev_pmgmt_queue_enable(
    lcore_id: c_uint,
    port_id: u16,
    queue_id: u16,
    mode: rte_power_pmd_mgmt_type,
) -> c_int {
    ffi_guard(|| {
        global::pmd_mgmt()
            .enable_raw(lcore_id, port_id, queue_id, mode)
            .map_or_else(
                |e| errors::pmd_mgmt("rte_power_ethdev_pmgmt_queue_enable", &e),
                |()| errors::OK,
            )
    })
}

/// Stops power-managing an Rx queue: 0, or -EINVAL, -EBUSY, -ENOENT (not
/// managed on this lcore), -ENOTSUP (no ethdev in the process).
#[no_mangle]
pub extern "C" fn rte_power_ethdev_pmgmt_queue_disable(
    lcore_id: c_uint,
    port_id: u16,
    queue_id: u16,
) -> c_int {
    ffi_guard(|| {
        global::pmd_mgmt()
            .disable(lcore_id, port_id, queue_id)
            .map_or_else(
                |e| errors::pmd_mgmt("rte_power_ethdev_pmgmt_queue_disable", &e),
                |()| errors::OK,
            )
    })
}

/// Sets how many empty polls an lcore makes before sleeping or scaling down.
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_set_emptypoll_max(max: c_uint) {
    ffi_guard(|| global::power().pmd().set_emptypoll_max(max))
}

/// The empty-poll threshold (default 512).
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_get_emptypoll_max() -> c_uint {
    ffi_guard(|| global::power().pmd().emptypoll_max())
}

/// Sets the pause duration in microseconds: 0, or -EINVAL for 0.
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_set_pause_duration(duration: c_uint) -> c_int {
    ffi_guard(|| {
        global::power()
            .pmd()
            .set_pause_duration(duration)
            .map_or_else(|e| errors::pmd_tunable(&e), |()| errors::OK)
    })
}

/// The pause duration in microseconds (default 1).
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_get_pause_duration() -> c_uint {
    ffi_guard(|| global::power().pmd().pause_duration())
}

/// Sets an lcore's minimum scaling frequency (kHz): 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_set_scaling_freq_min(lcore: c_uint, min: c_uint) -> c_int {
    ffi_guard(|| {
        global::power()
            .pmd()
            .set_scaling_min(lcore, min)
            .map_or_else(|e| errors::pmd_tunable(&e), |()| errors::OK)
    })
}

/// Sets an lcore's maximum scaling frequency (kHz, 0 = unset): 0 or -EINVAL.
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_set_scaling_freq_max(lcore: c_uint, max: c_uint) -> c_int {
    ffi_guard(|| {
        global::power()
            .pmd()
            .set_scaling_max(lcore, max)
            .map_or_else(|e| errors::pmd_tunable(&e), |()| errors::OK)
    })
}

/// An lcore's minimum scaling frequency (kHz), or -EINVAL.
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_get_scaling_freq_min(lcore: c_uint) -> c_int {
    ffi_guard(|| {
        global::power()
            .pmd()
            .scaling_min(lcore)
            .map_or_else(|e| errors::pmd_tunable(&e), |v| v as c_int)
    })
}

/// An lcore's maximum scaling frequency (kHz, 0 = unset), or -EINVAL.
#[no_mangle]
pub extern "C" fn rte_power_pmd_mgmt_get_scaling_freq_max(lcore: c_uint) -> c_int {
    ffi_guard(|| {
        global::power()
            .pmd()
            .scaling_max(lcore)
            .map_or_else(|e| errors::pmd_tunable(&e), |v| v as c_int)
    })
}
