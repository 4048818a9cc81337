/* SPDX-License-Identifier: BSD-3-Clause
 * rte-power: compatibility header for sources written for DPDK 22.11,
 * which include <rte_power_intel_uncore.h> for the uncore API (and get the
 * cpufreq API through it). DPDK 23.11 renamed it <rte_power_uncore.h>.
 */
#ifndef RTE_POWER_INTEL_UNCORE_H
#define RTE_POWER_INTEL_UNCORE_H

#include <rte_power.h>
#include <rte_power_uncore.h>

#endif /* RTE_POWER_INTEL_UNCORE_H */
