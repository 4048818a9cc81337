/* SPDX-License-Identifier: BSD-3-Clause
 * rte-power: PMD power management (DPDK's rte_power_pmd_mgmt.h).
 *
 * Power-manages the Rx queues a DPDK lcore polls: after emptypoll_max
 * empty polls in a row on all its queues, the lcore sleeps on the Rx ring
 * (MONITOR), pauses (PAUSE) or drops to its lowest frequency (SCALE, back
 * to the highest on the next packet). The library finds DPDK's ethdev and
 * EAL in the process at run time; it does not link them.
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

/** Starts power-managing Rx queue @p queue_id of @p port_id, polled by
 * @p lcore_id. The queue and every queue already managed on the lcore must
 * be stopped; all queues of an lcore use one mode. SCALE initialises the
 * lcore (rte_power_init) with its first queue. Not thread-safe.
 * Returns 0, or -EINVAL (bad port/queue/lcore/mode, another mode on this
 * lcore, SCALE could not initialise the lcore), -EBUSY (a queue is not
 * stopped), -EEXIST (already managed), -ENOTSUP (no DPDK ethdev in the
 * process, no monitor support in the CPU or the driver, no cpufreq). */
int rte_power_ethdev_pmgmt_queue_enable(unsigned int lcore_id, uint16_t port_id,
		uint16_t queue_id, enum rte_power_pmd_mgmt_type mode);

/** Stops power-managing a queue (queues stopped, as for enable). The last
 * SCALE queue of an lcore puts it to its highest frequency and exits it.
 * Returns 0, or -EINVAL, -EBUSY, -ENOENT (not managed on this lcore),
 * -ENOTSUP (no DPDK ethdev in the process). */
int rte_power_ethdev_pmgmt_queue_disable(unsigned int lcore_id,
		uint16_t port_id, uint16_t queue_id);

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
