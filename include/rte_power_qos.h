/* SPDX-License-Identifier: BSD-3-Clause
 * PM QoS: the resume latency constraint of an lcore's CPU (DPDK 24.11 API;
 * experimental there). Needs no DPDK header.
 */
#ifndef RTE_POWER_QOS_H
#define RTE_POWER_QOS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Strict latency: the CPU must not enter idle states with exit latency. */
#define RTE_POWER_QOS_STRICT_LATENCY_VALUE 0

/** No resume latency constraint. */
#define RTE_POWER_QOS_RESUME_LATENCY_NO_CONSTRAINT INT32_MAX

/**
 * Sets the resume latency constraint (µs) of the CPU of @p lcore_id in
 * cpuN/power/pm_qos_resume_latency_us. RTE_POWER_QOS_STRICT_LATENCY_VALUE
 * allows no exit latency, RTE_POWER_QOS_RESUME_LATENCY_NO_CONSTRAINT
 * removes the constraint.
 *
 * @return 0 on success; -EINVAL for an invalid lcore or a negative
 *         @p latency; -1 if the file cannot be written.
 */
int rte_power_qos_set_cpu_resume_latency(uint16_t lcore_id, int latency);

/**
 * The resume latency constraint of the CPU of @p lcore_id.
 *
 * @return the latency in µs: RTE_POWER_QOS_STRICT_LATENCY_VALUE (strict),
 *         RTE_POWER_QOS_RESUME_LATENCY_NO_CONSTRAINT (none) or a limit;
 *         -EINVAL for an invalid lcore; -1 if the file cannot be read.
 */
int rte_power_qos_get_cpu_resume_latency(uint16_t lcore_id);

#ifdef __cplusplus
}
#endif

#endif /* RTE_POWER_QOS_H */
