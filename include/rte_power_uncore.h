/* SPDX-License-Identifier: BSD-3-Clause
 * rte-power: uncore (mesh/LLC) frequency management, DPDK's
 * <rte_power_uncore.h>.
 *
 * The DPDK 24.11+ shape: every call is a real function (in DPDK 23.11 most
 * of them were function-pointer variables; sources written for 22.11 or
 * 23.11 call them with the same syntax and compile unchanged). Needs no
 * DPDK header.
 *
 * A (package, die) is one uncore domain of the kernel's
 * intel-uncore-frequency driver (sysfs intel_uncore_frequency/, both the
 * package_PP_die_DD and the uncoreNN layouts). Its frequency table is
 * descending in 100 MHz steps (index 0 = highest); setting an index pins
 * the domain (min = max = that frequency); rte_power_uncore_exit() puts the
 * limits found at init back.
 */
#ifndef RTE_POWER_UNCORE_H
#define RTE_POWER_UNCORE_H

#include <stdint.h>
/* DPDK 23.11's version included the cpufreq API (<rte_power.h>) */
#include <rte_power_cpufreq.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Uncore driver selection (values are DPDK's). */
enum rte_uncore_power_mgmt_env {
	RTE_UNCORE_PM_ENV_NOT_SET = 0,
	RTE_UNCORE_PM_ENV_AUTO_DETECT = 1,  /**< selects Intel uncore */
	RTE_UNCORE_PM_ENV_INTEL_UNCORE = 2, /**< intel-uncore-frequency */
	RTE_UNCORE_PM_ENV_AMD_HSMP = 3      /**< not provided: set_env fails */
};

/** Selects the uncore env: 0, or -1 (one is set already, AMD HSMP, or an
 * invalid value). AUTO_DETECT selects INTEL_UNCORE. */
int rte_power_set_uncore_env(enum rte_uncore_power_mgmt_env env);

/** Forgets the uncore env; initialised dies stay initialised. */
void rte_power_unset_uncore_env(void);

/** The selected uncore env, RTE_UNCORE_PM_ENV_NOT_SET if none. */
enum rte_uncore_power_mgmt_env rte_power_get_uncore_env(void);

/** Initialises a die: reads and saves its limits, builds its table and
 * selects the Intel env if none is set. 0, or -1 (no such die, no driver).
 * Initialising an initialised die succeeds and keeps the saved limits. */
int rte_power_uncore_init(unsigned int pkg, unsigned int die);

/** Restores the limits saved at init: 0, or -1 (die not initialised, or a
 * write failed; the die is released in both cases). */
int rte_power_uncore_exit(unsigned int pkg, unsigned int die);

/** The die's current index: the last one set (at init: the index the die
 * was pinned to, else 0); (uint32_t)-1 for a die that is not initialised. */
uint32_t rte_power_get_uncore_freq(unsigned int pkg, unsigned int die);

/** Pins the die to the frequency at @p index: 0 (also when nothing
 * changed, as DPDK), or -1 (not initialised, index out of range, the
 * kernel refused the value). */
int rte_power_set_uncore_freq(unsigned int pkg, unsigned int die, uint32_t index);

/** Pins the die to its highest frequency: 0 or -1. */
int rte_power_uncore_freq_max(unsigned int pkg, unsigned int die);

/** Pins the die to its lowest frequency: 0 or -1. */
int rte_power_uncore_freq_min(unsigned int pkg, unsigned int die);

/** Copies the die's table (kHz, descending) into @p freqs: the number of
 * entries; 0 if @p freqs is NULL or @p num is too small; -1 for a die that
 * is not initialised. */
int rte_power_uncore_freqs(unsigned int pkg, unsigned int die, uint32_t *freqs, uint32_t num);

/** Entries in the die's table, -1 for a die that is not initialised. */
int rte_power_uncore_get_num_freqs(unsigned int pkg, unsigned int die);

/** Packages with uncore control: ids 0..n-1 all exist (0 without the
 * driver). Counted from directory names and ids, not directory order. */
unsigned int rte_power_uncore_get_num_pkgs(void);

/** Dies of @p pkg: ids 0..n-1 all exist (0 for an unknown package). */
unsigned int rte_power_uncore_get_num_dies(unsigned int pkg);

#ifdef __cplusplus
}
#endif

#endif /* RTE_POWER_UNCORE_H */
