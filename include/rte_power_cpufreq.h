/* SPDX-License-Identifier: BSD-3-Clause
 * rte-power: DPDK-compatible CPU frequency management (librte_power).
 *
 * The DPDK 24.11+ API: every operation is a real function. Sources written
 * for DPDK 22.11/23.11 (where the operations were function pointers) call
 * them with the same syntax and compile unchanged through <rte_power.h>.
 * This header needs no DPDK header.
 *
 * Return conventions (DPDK's): frequency changes return 1 when the
 * frequency changed, 0 when nothing changed, negative on error.
 */
#ifndef RTE_POWER_CPUFREQ_H
#define RTE_POWER_CPUFREQ_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define RTE_POWER_EXTENSION __extension__
#else
#define RTE_POWER_EXTENSION
#endif

/** This is rte-power, not DPDK's own library (for feature tests). */
#define RTE_POWER_RS 1
/** Highest lcore id + 1 that this library supports. */
#define RTE_POWER_MAX_LCORE 1024
/** Most entries in an lcore's frequency table (DPDK's RTE_MAX_LCORE_FREQS). */
#define RTE_POWER_MAX_FREQS 64

#ifndef RTE_POWER_INVALID_FREQ_INDEX
/** rte_power_get_freq() result for an invalid or uninitialised lcore
 * (DPDK's value, ~0, typed so that comparing it with the uint32_t result
 * does not warn). */
#define RTE_POWER_INVALID_FREQ_INDEX ((uint32_t)~0u)
#endif

/** Power management environment (values are DPDK's). */
enum power_management_env {
	PM_ENV_NOT_SET = 0,
	PM_ENV_ACPI_CPUFREQ = 1,       /**< acpi-cpufreq */
	PM_ENV_KVM_VM = 2,             /**< KVM guest, requests sent to the host */
	PM_ENV_PSTATE_CPUFREQ = 3,     /**< intel_pstate, intel_cpufreq */
	PM_ENV_CPPC_CPUFREQ = 4,       /**< cppc_cpufreq */
	PM_ENV_AMD_PSTATE_CPUFREQ = 5  /**< amd-pstate, amd-pstate-epp */
};

/** Per-core capabilities: 8 bytes, turbo = bit 0, priority = bit 1. */
struct rte_power_core_capabilities {
	RTE_POWER_EXTENSION union {
		uint64_t capabilities;
		RTE_POWER_EXTENSION struct {
			uint64_t turbo:1;    /**< Turbo can be enabled. */
			uint64_t priority:1; /**< SST-BF high-frequency core. */
		};
	};
};

/* Types of the operations, as DPDK declares them (for code that keeps
 * pointers to the operations). */
typedef uint32_t (*rte_power_freqs_t)(unsigned int lcore_id, uint32_t *freqs, uint32_t num);
typedef uint32_t (*rte_power_get_freq_t)(unsigned int lcore_id);
typedef int (*rte_power_set_freq_t)(unsigned int lcore_id, uint32_t index);
typedef int (*rte_power_freq_change_t)(unsigned int lcore_id);
typedef int (*rte_power_get_capabilities_t)(unsigned int lcore_id,
		struct rte_power_core_capabilities *caps);

/** 1 if the machine supports @p env, 0 if not (also for invalid values). */
int rte_power_check_env_supported(enum power_management_env env);

/** Selects an env without checking the hardware: 0, or -1 if an env is set
 * already or @p env is invalid. */
int rte_power_set_env(enum power_management_env env);

/** Forgets the selected env; initialised lcores stay initialised. */
void rte_power_unset_env(void);

/** The selected env, PM_ENV_NOT_SET if none. */
enum power_management_env rte_power_get_env(void);

/** Initialises @p lcore_id: with the selected env, or detects it from the
 * CPU's cpufreq driver (and selects it). 0, or -1; a failed init leaves the
 * host as it was. */
int rte_power_init(unsigned int lcore_id);

/** Releases @p lcore_id and restores its governor, limits and setspeed:
 * 0, or -1 (e.g. not initialised). */
int rte_power_exit(unsigned int lcore_id);

/** Copies the frequency table (kHz, descending: index 0 is the highest) into
 * @p freqs. Returns the number of entries; 0 if @p freqs is NULL, @p num is
 * smaller than the table, or the lcore is not initialised. */
uint32_t rte_power_freqs(unsigned int lcore_id, uint32_t *freqs, uint32_t num);

/** The current frequency index; RTE_POWER_INVALID_FREQ_INDEX on error. */
uint32_t rte_power_get_freq(unsigned int lcore_id);

/** Sets the frequency index: 1 changed, 0 unchanged, (uint32_t)-1 on error
 * (DPDK 24.11 declares the result uint32_t: store it in an int). */
uint32_t rte_power_set_freq(unsigned int lcore_id, uint32_t index);

/** One step up: 1 changed, 0 unchanged (already at the top), -1 error. */
int rte_power_freq_up(unsigned int lcore_id);

/** One step down: 1 changed, 0 unchanged (already at the bottom), -1 error. */
int rte_power_freq_down(unsigned int lcore_id);

/** Highest allowed frequency (turbo if enabled): 1, 0 or -1. */
int rte_power_freq_max(unsigned int lcore_id);

/** Lowest frequency: 1, 0 or -1. */
int rte_power_freq_min(unsigned int lcore_id);

/** 1 turbo enabled, 0 disabled, negative on error. */
int rte_power_turbo_status(unsigned int lcore_id);

/** Enables turbo: 0, or negative (no turbo on this core, error). */
int rte_power_freq_enable_turbo(unsigned int lcore_id);

/** Disables turbo (leaving the turbo range): 0, or negative on error. */
int rte_power_freq_disable_turbo(unsigned int lcore_id);

/** Fills @p caps: 0, or negative (NULL @p caps, lcore not initialised). */
int rte_power_get_capabilities(unsigned int lcore_id,
		struct rte_power_core_capabilities *caps);

#ifdef __cplusplus
}
#endif

#endif /* RTE_POWER_CPUFREQ_H */
