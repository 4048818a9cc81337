//! The PM QoS exports of `rte_power_qos.h`.
//!
//! `rte_power_qos.h`: the PM QoS resume latency API of DPDK 24.11.

use std::ffi::c_int;

use super::boundary::ffi_guard;
use super::errors;
use super::global;

/// Sets the resume latency of the lcore's CPU: `latency` 0 strict,
/// `RTE_POWER_QOS_RESUME_LATENCY_NO_CONSTRAINT` none, else µs. Returns 0,
/// -EINVAL (invalid lcore, negative latency) or -1.
#[no_mangle]
pub extern "C" fn rte_power_qos_set_cpu_resume_latency(lcore_id: u16, latency: c_int) -> c_int {
    ffi_guard(|| {
        global::power()
            .set_cpu_resume_latency(u32::from(lcore_id), latency)
            .map_or_else(
                |e| errors::qos("rte_power_qos_set_cpu_resume_latency", &e),
                |()| errors::OK,
            )
    })
}

/// The resume latency of the lcore's CPU (0 strict, INT32_MAX none, else
/// µs), -EINVAL for an invalid lcore, -1 if it cannot be read.
#[no_mangle]
pub extern "C" fn rte_power_qos_get_cpu_resume_latency(lcore_id: u16) -> c_int {
    ffi_guard(|| {
        global::power()
            .cpu_resume_latency(u32::from(lcore_id))
            .unwrap_or_else(|e| errors::qos("rte_power_qos_get_cpu_resume_latency", &e))
    })
}
