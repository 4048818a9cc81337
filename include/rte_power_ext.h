/* SPDX-License-Identifier: BSD-3-Clause
 * rte-power extensions: NOT part of DPDK's API. Functions and types here
 * carry the rte_power_ext_ prefix and exist only in rte-power; test for
 * RTE_POWER_RS before using them in code that must also build with DPDK.
 */
#ifndef RTE_POWER_EXT_H
#define RTE_POWER_EXT_H

#include <stdint.h>
#include <rte_power_cpufreq.h>

#ifdef __cplusplus
extern "C" {
#endif

/** P-state statistics the library keeps for an initialised lcore since its
 * init: time at each frequency-table index and the number of changes. */
struct rte_power_ext_pstate_stats {
	uint32_t num;                                /**< entries in the table */
	uint32_t current;                            /**< current index */
	uint64_t transitions;                        /**< frequency changes */
	uint64_t elapsed_ns;                         /**< time since init */
	uint32_t freqs_khz[RTE_POWER_MAX_FREQS];     /**< the table, descending */
	uint64_t residency_ns[RTE_POWER_MAX_FREQS];  /**< time at each index */
};

/** Fills @p stats for @p lcore_id: 0; -1 (NULL @p stats, lcore not
 * initialised); -ENOTSUP in the KVM guest env (the host keeps them). */
int rte_power_ext_get_pstate_stats(unsigned int lcore_id,
		struct rte_power_ext_pstate_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* RTE_POWER_EXT_H */
