/* SPDX-License-Identifier: BSD-3-Clause
 * rte-power: PMD power management tunables (DPDK's rte_power_pmd_mgmt.h).
 */
#ifndef _RTE_POWER_PMD_MGMT_H
#define _RTE_POWER_PMD_MGMT_H

#include <rte_power_cpufreq.h>

#ifdef __cplusplus
extern "C" {
#endif

/** PMD power management mode (values are DPDK's). */
enum rte_power_pmd_mgmt_type {
	RTE_POWER_MGMT_TYPE_MONITOR = 1, /**< wait on the Rx ring address */
	RTE_POWER_MGMT_TYPE_PAUSE = 2,   /**< pause between empty polls */
	RTE_POWER_MGMT_TYPE_SCALE = 3,   /**< scale the lcore's frequency */
};

/** Empty polls before an lcore sleeps or scales down (default 512). */
void rte_power_pmd_mgmt_set_emptypoll_max(unsigned int max);
unsigned int rte_power_pmd_mgmt_get_emptypoll_max(void);

/** Pause duration in microseconds (default 1): 0, or -EINVAL for 0. */
int rte_power_pmd_mgmt_set_pause_duration(unsigned int duration);
unsigned int rte_power_pmd_mgmt_get_pause_duration(void);

/** Per-lcore scaling limits in kHz, read by the intel_pstate driver when the
 * lcore is initialised. set: 0, or -EINVAL (invalid lcore, min above max,
 * max below min); max 0 means unset. get: the value (max: 0 when unset), or
 * -EINVAL for an invalid lcore. */
int rte_power_pmd_mgmt_set_scaling_freq_min(unsigned int lcore, unsigned int min);
int rte_power_pmd_mgmt_set_scaling_freq_max(unsigned int lcore, unsigned int max);
int rte_power_pmd_mgmt_get_scaling_freq_min(unsigned int lcore);
int rte_power_pmd_mgmt_get_scaling_freq_max(unsigned int lcore);

#ifdef __cplusplus
}
#endif

#endif /* _RTE_POWER_PMD_MGMT_H */
