//! The uncore exports of `rte_power_uncore.h`.
//!
//! `rte_power_uncore.h` (and 22.11's `rte_power_intel_uncore.h`): DPDK
//! 24.11's uncore API, every call a real function.

use std::ffi::{c_int, c_uint};

use super::boundary::{ffi_guard, ffi_guard_or};
use super::errors;
use super::global;
use crate::uncore::{UncoreEnv, UncoreError, UNCORE_ENV_NOT_SET};

/// `enum rte_uncore_power_mgmt_env` as it crosses the ABI.
pub type rte_uncore_power_mgmt_env = c_uint;

/// Selects the uncore env: 0, or -1 (already set, AMD HSMP, invalid value).
#[no_mangle]
pub extern "C" fn rte_power_set_uncore_env(env: rte_uncore_power_mgmt_env) -> c_int {
    ffi_guard(|| match UncoreEnv::from_raw(env) {
        Some(e) => global::uncore().set_env(e).map_or_else(
            |e| errors::uncore("rte_power_set_uncore_env", &e),
            |()| errors::OK,
        ),
        None => errors::uncore(
            "rte_power_set_uncore_env",
            &UncoreError::EnvUnsupported(env),
        ),
    })
}

/// Forgets the uncore env.
#[no_mangle]
pub extern "C" fn rte_power_unset_uncore_env() {
    ffi_guard(|| global::uncore().unset_env())
}

/// The uncore env, `RTE_UNCORE_PM_ENV_NOT_SET` (0) if none.
#[no_mangle]
pub extern "C" fn rte_power_get_uncore_env() -> rte_uncore_power_mgmt_env {
    ffi_guard(|| {
        global::uncore()
            .env()
            .map_or(UNCORE_ENV_NOT_SET, |e| e as u32)
    })
}

/// Initialises a (package, die): 0 or -1.
#[no_mangle]
pub extern "C" fn rte_power_uncore_init(pkg: c_uint, die: c_uint) -> c_int {
    ffi_guard(|| {
        global::uncore().init(pkg, die).map_or_else(
            |e| errors::uncore("rte_power_uncore_init", &e),
            |()| errors::OK,
        )
    })
}

/// Restores the die's original limits: 0 or -1.
#[no_mangle]
pub extern "C" fn rte_power_uncore_exit(pkg: c_uint, die: c_uint) -> c_int {
    ffi_guard(|| {
        global::uncore().exit(pkg, die).map_or_else(
            |e| errors::uncore("rte_power_uncore_exit", &e),
            |()| errors::OK,
        )
    })
}

/// The die's current index, `(uint32_t)-1` on error.
#[no_mangle]
pub extern "C" fn rte_power_get_uncore_freq(pkg: c_uint, die: c_uint) -> u32 {
    ffi_guard(|| {
        global::uncore()
            .index(pkg, die)
            .unwrap_or_else(|e| errors::uncore_index("rte_power_get_uncore_freq", &e))
    })
}

/// Pins the die to the frequency at `index`: 0 (DPDK never returns 1 here)
/// or -1.
#[no_mangle]
pub extern "C" fn rte_power_set_uncore_freq(pkg: c_uint, die: c_uint, index: u32) -> c_int {
    ffi_guard(|| {
        global::uncore().set_index(pkg, die, index).map_or_else(
            |e| errors::uncore("rte_power_set_uncore_freq", &e),
            |()| errors::OK,
        )
    })
}

/// Pins the die to its highest frequency: 0 or -1.
#[no_mangle]
pub extern "C" fn rte_power_uncore_freq_max(pkg: c_uint, die: c_uint) -> c_int {
    ffi_guard(|| {
        global::uncore().max(pkg, die).map_or_else(
            |e| errors::uncore("rte_power_uncore_freq_max", &e),
            |()| errors::OK,
        )
    })
}

/// Pins the die to its lowest frequency: 0 or -1.
#[no_mangle]
pub extern "C" fn rte_power_uncore_freq_min(pkg: c_uint, die: c_uint) -> c_int {
    ffi_guard(|| {
        global::uncore().min(pkg, die).map_or_else(
            |e| errors::uncore("rte_power_uncore_freq_min", &e),
            |()| errors::OK,
        )
    })
}

/// Copies the die's table into `freqs`: the count; 0 when `freqs` is NULL
/// or `num` is too small; -1 for a die that is not initialised.
///
/// # Safety
/// `freqs` is NULL or valid for writing `num` `uint32_t`s.
#[no_mangle]
pub unsafe extern "C" fn rte_power_uncore_freqs(
    pkg: c_uint,
    die: c_uint,
    freqs: *mut u32,
    num: u32,
) -> c_int {
    ffi_guard(|| match global::uncore().freqs(pkg, die) {
        Err(e) => errors::uncore("rte_power_uncore_freqs", &e),
        Ok(t) if freqs.is_null() || (num as usize) < t.len() => errors::NOTHING_COPIED as c_int,
        Ok(t) => {
            // SAFETY: non-NULL, and the caller guarantees room for `num`
            // values, which is at least `t.len()`.
            let out = unsafe { std::slice::from_raw_parts_mut(freqs, t.len()) };
            out.copy_from_slice(&t);
            t.len() as c_int
        }
    })
}

/// Entries in the die's table, -1 for a die that is not initialised.
#[no_mangle]
pub extern "C" fn rte_power_uncore_get_num_freqs(pkg: c_uint, die: c_uint) -> c_int {
    ffi_guard(|| {
        global::uncore().num_freqs(pkg, die).map_or_else(
            |e| errors::uncore("rte_power_uncore_get_num_freqs", &e),
            |n| n as c_int,
        )
    })
}

/// Number of packages with uncore control (0 without the driver).
#[no_mangle]
pub extern "C" fn rte_power_uncore_get_num_pkgs() -> c_uint {
    count(|| global::uncore().num_pkgs())
}

/// Number of dies of `pkg` (0 for an unknown package).
#[no_mangle]
pub extern "C" fn rte_power_uncore_get_num_dies(pkg: c_uint) -> c_uint {
    count(|| global::uncore().num_dies(pkg))
}

/// A count that is 0, not `UINT_MAX`, if the core panicked (callers loop
/// up to it).
fn count(f: impl FnOnce() -> u32) -> c_uint {
    ffi_guard_or(errors::PANIC_COUNT, f)
}
