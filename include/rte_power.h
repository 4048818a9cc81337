/* SPDX-License-Identifier: BSD-3-Clause
 * rte-power: compatibility header for sources written for DPDK 22.11/23.11,
 * which include <rte_power.h> for the cpufreq API and the guest channel
 * packets. In DPDK 24.11 this header became <rte_power_cpufreq.h>.
 */
#ifndef _RTE_POWER_H
#define _RTE_POWER_H

#include <rte_power_cpufreq.h>
#include <rte_power_guest_channel.h>

#endif /* _RTE_POWER_H */
