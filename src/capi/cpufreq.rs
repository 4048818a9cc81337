//! The cpufreq exports of `rte_power_cpufreq.h` and `rte_power.h`.
//!
//! `rte_power_cpufreq.h` (and `rte_power.h`): DPDK 24.11's function API.

use std::ffi::{c_int, c_uint};

use super::boundary::{ffi_guard, ffi_guard_or};
use super::errors::{self, quiet, report};
use super::global;
use crate::env::{Env, ENV_NOT_SET};
use crate::error::PowerError;
use crate::lcore::{Changed, Lcore, Plan};
use crate::wire::Step;

/// `enum power_management_env` as it crosses the ABI (an `int`-sized enum).
pub type power_management_env = c_uint;

/// DPDK's `RTE_POWER_INVALID_FREQ_INDEX`.
pub const RTE_POWER_INVALID_FREQ_INDEX: u32 = !0;

/// `struct rte_power_core_capabilities`: bit 0 turbo, bit 1 priority.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct rte_power_core_capabilities {
    /// The whole word (the C header overlays the bit-fields).
    pub capabilities: u64,
}

#[inline]
fn with_lcore<T>(
    lcore_id: c_uint,
    f: impl FnOnce(Lcore<'_>) -> Result<T, PowerError>,
) -> Result<T, PowerError> {
    global::lcore(lcore_id).and_then(f)
}

/// [`crate::Power::host_op`] on the static table, without touching the context
/// unless the call fails.
#[inline]
fn host_op<T>(
    lcore_id: c_uint,
    what: &'static str,
    f: impl FnOnce(Lcore<'_>) -> Result<T, PowerError>,
) -> Result<T, PowerError> {
    with_lcore(lcore_id, f).map_err(|e| global::power().as_guest_error(e, lcore_id, what))
}

/// A step's result as DPDK returns it (1 changed, 0 unchanged, error).
#[inline]
fn changed(r: Result<Changed, PowerError>) -> c_int {
    r.map_or_else(|e| quiet(&e), errors::changed)
}

/// 1 if the machine supports `env`, else 0 (also for invalid values, as DPDK 24.11).
#[no_mangle]
pub extern "C" fn rte_power_check_env_supported(env: power_management_env) -> c_int {
    ffi_guard(|| {
        errors::env_supported(Env::from_raw(env).map(|e| global::power().check_env_supported(e)))
    })
}

/// Selects an env: 0, or -1 if one is set already or `env` is invalid.
#[no_mangle]
pub extern "C" fn rte_power_set_env(env: power_management_env) -> c_int {
    ffi_guard(|| match Env::from_raw(env) {
        Some(e) => global::power()
            .set_env(e)
            .map_or_else(|e| report("rte_power_set_env", &e), |()| errors::OK),
        None => report("rte_power_set_env", &PowerError::InvalidEnv(env)),
    })
}

/// Forgets the selected env.
#[no_mangle]
pub extern "C" fn rte_power_unset_env() {
    ffi_guard(|| global::power().unset_env())
}

/// The selected env, `PM_ENV_NOT_SET` (0) if none.
#[no_mangle]
pub extern "C" fn rte_power_get_env() -> power_management_env {
    ffi_guard_or(ENV_NOT_SET, || {
        global::power().env().map_or(ENV_NOT_SET, Env::raw)
    })
}

/// Initialises an lcore (auto-detecting the env if none is set): 0 or -1.
#[no_mangle]
pub extern "C" fn rte_power_init(lcore_id: c_uint) -> c_int {
    ffi_guard(|| {
        global::power()
            .init(lcore_id)
            .map_or_else(|e| report("rte_power_init", &e), |_| errors::OK)
    })
}

/// Exits an lcore, restoring what init changed: 0 or -1.
#[no_mangle]
pub extern "C" fn rte_power_exit(lcore_id: c_uint) -> c_int {
    ffi_guard(|| {
        global::power()
            .exit(lcore_id)
            .map_or_else(|e| report("rte_power_exit", &e), |()| errors::OK)
    })
}

/// Copies the frequency table into `freqs`; returns the count, 0 if `freqs`
/// is NULL, `num` is too small or the lcore is not initialised
/// (`(uint32_t)-ENOTSUP` in the KVM guest env).
///
/// # Safety
/// `freqs` is NULL or valid for writing `num` `uint32_t`s.
#[no_mangle]
pub unsafe extern "C" fn rte_power_freqs(lcore_id: c_uint, freqs: *mut u32, num: u32) -> u32 {
    // a count: 0, never UINT_MAX, if anything went wrong
    ffi_guard_or(errors::PANIC_COUNT, || {
        let r = host_op(lcore_id, "the frequency table", |l| {
            // the lcore is checked first: the KVM env answers -ENOTSUP
            // even for a NULL buffer, as DPDK's does
            let n = l.num_freqs()?;
            if freqs.is_null() || num < n {
                return Ok(errors::NOTHING_COPIED);
            }
            // SAFETY: non-NULL, and the caller guarantees room for `num`
            // values, at least the `n` written, for the duration of this
            // call (only what is written is borrowed, as DPDK writes only
            // the table's entries).
            let out = unsafe { std::slice::from_raw_parts_mut(freqs, n as usize) };
            l.freqs_into(out)
        });
        r.map_or_else(|e| errors::freqs(&e), |n| n as u32)
    })
}

/// The current frequency index, `RTE_POWER_INVALID_FREQ_INDEX` on error
/// (`(uint32_t)-ENOTSUP` in the KVM guest env).
#[no_mangle]
pub extern "C" fn rte_power_get_freq(lcore_id: c_uint) -> u32 {
    ffi_guard(|| {
        host_op(lcore_id, "get_freq", |l| l.index()).unwrap_or_else(|e| errors::freq_index(&e))
    })
}

/// Sets the frequency by index: 1 changed, 0 unchanged, -1 error (as a
/// `uint32_t`, DPDK 24.11's prototype).
#[no_mangle]
pub extern "C" fn rte_power_set_freq(lcore_id: c_uint, index: u32) -> u32 {
    ffi_guard(|| errors::set_freq(host_op(lcore_id, "set_freq", |l| l.set_index(index))))
}

/// A relative step: the plan is decided inline; anything but "nothing to
/// change" (a write, a guest request, an error) is carried out out of line,
/// so that the no-change call needs no stack frame. Deciding cannot panic
/// (a bounds-checked `get`, atomic loads, compares), so only the out-of-line
/// part runs inside the panic boundary.
#[inline(always)]
fn step(lcore_id: c_uint, step: Step) -> c_int {
    match global::lcore_opt(lcore_id) {
        Some(l) => match l.plan(step) {
            Plan::Stay => errors::changed(Changed::No),
            // decided again out of line: passing the plan would need memory
            _ => run_step(l, step),
        },
        None => invalid_lcore(lcore_id),
    }
}

#[inline(never)]
fn run_step(l: Lcore<'static>, step: Step) -> c_int {
    ffi_guard(|| changed(l.run(l.plan(step))))
}

#[cold]
#[inline(never)]
fn invalid_lcore(lcore_id: c_uint) -> c_int {
    ffi_guard(|| changed(global::lcore(lcore_id).and_then(|l| l.max())))
}

/// One frequency step up: 1 changed, 0 unchanged, -1 error.
#[no_mangle]
pub extern "C" fn rte_power_freq_up(lcore_id: c_uint) -> c_int {
    step(lcore_id, Step::Up)
}

/// One frequency step down: 1 changed, 0 unchanged, -1 error.
#[no_mangle]
pub extern "C" fn rte_power_freq_down(lcore_id: c_uint) -> c_int {
    step(lcore_id, Step::Down)
}

/// The highest allowed frequency: 1 changed, 0 unchanged, -1 error.
#[no_mangle]
pub extern "C" fn rte_power_freq_max(lcore_id: c_uint) -> c_int {
    step(lcore_id, Step::Max)
}

/// The lowest frequency: 1 changed, 0 unchanged, -1 error.
#[no_mangle]
pub extern "C" fn rte_power_freq_min(lcore_id: c_uint) -> c_int {
    step(lcore_id, Step::Min)
}

/// 1 turbo enabled, 0 disabled, negative on error.
#[no_mangle]
pub extern "C" fn rte_power_turbo_status(lcore_id: c_uint) -> c_int {
    ffi_guard(|| {
        host_op(lcore_id, "turbo_status", |l| l.turbo_enabled())
            .map_or_else(|e| quiet(&e), c_int::from)
    })
}

/// Enables turbo: 0, or negative on error (no turbo on this CPU).
#[no_mangle]
pub extern "C" fn rte_power_freq_enable_turbo(lcore_id: c_uint) -> c_int {
    ffi_guard(|| {
        with_lcore(lcore_id, |l| l.enable_turbo()).map_or_else(|e| quiet(&e), errors::turbo)
    })
}

/// Disables turbo: 0, or negative on error.
#[no_mangle]
pub extern "C" fn rte_power_freq_disable_turbo(lcore_id: c_uint) -> c_int {
    ffi_guard(|| {
        with_lcore(lcore_id, |l| l.disable_turbo()).map_or_else(|e| quiet(&e), errors::turbo)
    })
}

/// Fills `caps`: 0, or negative (NULL `caps`, lcore not initialised).
///
/// # Safety
/// `caps` is NULL or valid for writing one `struct rte_power_core_capabilities`.
#[no_mangle]
pub unsafe extern "C" fn rte_power_get_capabilities(
    lcore_id: c_uint,
    caps: *mut rte_power_core_capabilities,
) -> c_int {
    ffi_guard(|| {
        // the lcore is checked first: the KVM env answers -ENOTSUP even for
        // a NULL `caps`, as DPDK's does
        match host_op(lcore_id, "get_capabilities", |l| l.capabilities()) {
            Ok(_) if caps.is_null() => errors::FAILED,
            Ok(c) => {
                // SAFETY: non-NULL, and the caller guarantees it is writable.
                unsafe {
                    caps.write(rte_power_core_capabilities {
                        capabilities: c.bits(),
                    })
                };
                errors::OK
            }
            Err(e) => quiet(&e),
        }
    })
}
