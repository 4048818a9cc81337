/* SPDX-License-Identifier: BSD-3-Clause
 * rte-power: compile-time check that our headers give the empty-poll
 * structures DPDK 22.11's layout next to DPDK's own <rte_timer.h>, and that
 * the 22.11 header set (rte_power.h, rte_power_intel_uncore.h,
 * rte_power_pmd_mgmt.h, rte_power_empty_poll.h) can be included together,
 * and that DPDK's structures have the layout src/dpdk_sym.rs assumes.
 * Built by scripts/l3fwd-power.sh with include/ before DPDK's headers.
 */
#include <stddef.h>
#include <rte_power.h>
#include <rte_power_intel_uncore.h>
#include <rte_power_pmd_mgmt.h>
#include <rte_power_empty_poll.h>
/* DPDK's own: the structures the library exchanges with ethdev/EAL */
#include <rte_ethdev.h>
#include <rte_power_intrinsics.h>
#include <rte_cpuflags.h>

#ifndef RTE_POWER_RS
#error "not rte-power's headers: include/ must come first"
#endif

_Static_assert(sizeof(struct freq_threshold) == 24, "freq_threshold");
_Static_assert(sizeof(struct priority_worker) == 1664, "priority_worker");
_Static_assert(_Alignof(struct priority_worker) == 64, "priority_worker align");
_Static_assert(offsetof(struct priority_worker, thresh) == 32, "thresh");
_Static_assert(offsetof(struct priority_worker, cur_freq) == 1568, "cur_freq");
_Static_assert(offsetof(struct priority_worker, lcore_id) == 1612, "lcore_id");
_Static_assert(offsetof(struct priority_worker, dev_id) == 1628, "dev_id");
_Static_assert(sizeof(struct stats_data) == 426048, "stats_data");
_Static_assert(offsetof(struct stats_data, start_rx) == 425984, "start_rx");
_Static_assert(sizeof(struct rte_timer) == 120, "rte_timer");
_Static_assert(sizeof(struct ep_params) == 426240, "ep_params");
_Static_assert(offsetof(struct ep_params, timer0) == 16, "timer0");
_Static_assert(offsetof(struct ep_params, wrk_data) == 192, "wrk_data");
_Static_assert(sizeof(struct ep_policy) == 24, "ep_policy");
_Static_assert(offsetof(struct ep_policy, state) == 16, "ep_policy.state");
/* the ABI assumptions of src/dpdk_sym.rs */
_Static_assert(offsetof(struct rte_eth_rxq_info, queue_state) == 89, "RXQ_INFO_QUEUE_STATE_OFFSET");
_Static_assert(sizeof(struct rte_eth_rxq_info) <= 1024, "RxqInfoBuf");
_Static_assert(_Alignof(struct rte_eth_rxq_info) <= 64, "RxqInfoBuf align");
_Static_assert(RTE_ETH_QUEUE_STATE_STOPPED == 0, "QUEUE_STATE_STOPPED");
_Static_assert(sizeof(struct rte_power_monitor_cond) == 56, "MONITOR_COND_SIZE");
_Static_assert(_Alignof(struct rte_power_monitor_cond) == 8, "MonitorCond align");
_Static_assert(sizeof(struct rte_cpu_intrinsics) == 4, "intrinsics word");
_Static_assert(RTE_MAX_QUEUES_PER_PORT == 1024, "MAX_QUEUES_PER_PORT");
_Static_assert(RTE_POWER_MGMT_TYPE_MONITOR == 1 && RTE_POWER_MGMT_TYPE_SCALE == 3, "pmd modes");
_Static_assert(RTE_UNCORE_PM_ENV_AMD_HSMP == 3, "uncore envs");
_Static_assert(LOW == 0 && HGH == 2 && NUM_FREQ == 64 && LOW_PURGE == 3, "empty-poll enums");

int main(void)
{
	return 0;
}
