//! The empty-poll exports of `rte_power_empty_poll.h` (DPDK 22.11).
//!
//! `rte_power_empty_poll.h`: DPDK 22.11's empty-poll API (removed from DPDK
//! in 23.11; kept here so 22.11 applications relink unchanged).

use std::ffi::{c_int, c_uint, c_void};

use super::boundary::{ffi_guard, ffi_guard_or};
use super::errors;
use super::global;
use crate::empty_poll::{EpParams, EpPolicy, LcoreView};

/// `struct ep_params` as the C header names it.
pub type ep_params = EpParams;
/// `struct ep_policy` as the C header names it.
pub type ep_policy = EpPolicy;

/// DPDK's `struct rte_timer`: never looked into here.
#[repr(C)]
pub struct rte_timer {
    _opaque: [u8; 0],
}

/// Allocates the empty-poll state, stores it in `*eptr` and applies
/// `policy` to the worker lcores: 0, or -1 (NULL argument, a `freq_tlb`
/// index outside an lcore's table, an lcore not initialised).
///
/// # Safety
/// `eptr` and `policy` are NULL or valid; `freq_tlb` is NULL or points to
/// 3 bytes (the LOW, MED and HGH table indexes).
#[no_mangle]
pub unsafe extern "C" fn rte_power_empty_poll_stat_init(
    eptr: *mut *mut ep_params,
    freq_tlb: *mut u8,
    policy: *mut ep_policy,
) -> c_int {
    ffi_guard(|| {
        if eptr.is_null() || policy.is_null() {
            return errors::empty_poll_null("rte_power_empty_poll_stat_init");
        }
        // SAFETY: non-NULL; the caller passes 3 readable bytes.
        let tlb = (!freq_tlb.is_null())
            .then(|| unsafe { [*freq_tlb, *freq_tlb.add(1), *freq_tlb.add(2)] });
        // SAFETY: non-NULL and valid for reads (caller).
        let policy = unsafe { *policy };
        let ep = global::empty_poll();
        let view = LcoreView::detect(global::power());
        match ep.stat_init(tlb, &policy, &view) {
            Ok(p) => {
                // SAFETY: non-NULL and valid for writes (caller).
                unsafe { *eptr = p.as_ptr() };
                errors::OK
            }
            Err(e) => errors::empty_poll("rte_power_empty_poll_stat_init", &e),
        }
    })
}

/// Frees the empty-poll state (workers must have stopped).
#[no_mangle]
pub extern "C" fn rte_power_empty_poll_stat_free() {
    ffi_guard(|| global::empty_poll().stat_free())
}

/// Counts one empty poll of `lcore_id`: 0, or -1 (lcore ≥ 256, no state).
#[no_mangle]
pub extern "C" fn rte_power_empty_poll_stat_update(lcore_id: c_uint) -> c_int {
    ffi_guard(|| errors::empty_poll_update(global::empty_poll().count_empty(lcore_id)))
}

/// Counts `nb_pkt` received packets of `lcore_id`: 0 or -1.
#[no_mangle]
pub extern "C" fn rte_power_poll_stat_update(lcore_id: c_uint, nb_pkt: u8) -> c_int {
    ffi_guard(|| errors::empty_poll_update(global::empty_poll().count_packets(lcore_id, nb_pkt)))
}

/// Empty polls counted for `lcore_id`; `(uint64_t)-1` on error.
#[no_mangle]
pub extern "C" fn rte_power_empty_poll_stat_fetch(lcore_id: c_uint) -> u64 {
    ffi_guard_or(errors::EMPTY_POLL_NO_COUNT, || {
        global::empty_poll()
            .empty_count(lcore_id)
            .unwrap_or(errors::EMPTY_POLL_NO_COUNT)
    })
}

/// Packets counted for `lcore_id`; `(uint64_t)-1` on error.
#[no_mangle]
pub extern "C" fn rte_power_poll_stat_fetch(lcore_id: c_uint) -> u64 {
    ffi_guard_or(errors::EMPTY_POLL_NO_COUNT, || {
        global::empty_poll()
            .packet_count(lcore_id)
            .unwrap_or(errors::EMPTY_POLL_NO_COUNT)
    })
}

/// The detection step: the application arms an `rte_timer` (every 10 ms,
/// on the main lcore) with this callback and the `ep_params` as argument.
#[no_mangle]
pub extern "C" fn rte_empty_poll_detection(_tim: *mut rte_timer, _arg: *mut c_void) {
    ffi_guard(|| global::empty_poll().detect())
}
