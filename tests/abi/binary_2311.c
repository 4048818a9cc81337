/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A DPDK 23.11 program: the declarations of 23.11's rte_power.h and
 * rte_power_uncore.h (cpufreq and uncore operations as function-pointer
 * variables), linked against rte-power's librte_power.so.24 (versions
 * DPDK_24/EXPERIMENTAL), run on a generated tree with an uncore die.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* from DPDK 23.11's headers */
enum power_management_env { PM_ENV_NOT_SET, PM_ENV_ACPI_CPUFREQ, PM_ENV_KVM_VM,
	PM_ENV_PSTATE_CPUFREQ, PM_ENV_CPPC_CPUFREQ, PM_ENV_AMD_PSTATE_CPUFREQ };
int rte_power_set_env(enum power_management_env env);
int rte_power_init(unsigned int lcore_id);
int rte_power_exit(unsigned int lcore_id);
typedef uint32_t (*rte_power_get_freq_t)(unsigned int lcore_id);
extern rte_power_get_freq_t rte_power_get_freq;
typedef int (*rte_power_freq_change_t)(unsigned int lcore_id);
extern rte_power_freq_change_t rte_power_freq_down;
extern rte_power_freq_change_t rte_power_freq_min;
enum rte_uncore_power_mgmt_env { RTE_UNCORE_PM_ENV_NOT_SET, RTE_UNCORE_PM_ENV_AUTO_DETECT,
	RTE_UNCORE_PM_ENV_INTEL_UNCORE, RTE_UNCORE_PM_ENV_AMD_HSMP };
int rte_power_set_uncore_env(enum rte_uncore_power_mgmt_env env);
int rte_power_uncore_init(unsigned int pkg, unsigned int die);
int rte_power_uncore_exit(unsigned int pkg, unsigned int die);
typedef unsigned int (*rte_power_uncore_get_num_pkgs_t)(void);
extern rte_power_uncore_get_num_pkgs_t rte_power_uncore_get_num_pkgs;
typedef int (*rte_power_uncore_get_num_freqs_t)(unsigned int pkg, unsigned int die);
extern rte_power_uncore_get_num_freqs_t rte_power_uncore_get_num_freqs;
typedef int (*rte_power_uncore_freq_change_t)(unsigned int pkg, unsigned int die);
extern rte_power_uncore_freq_change_t rte_power_uncore_freq_min;
typedef int (*rte_power_uncore_freqs_t)(unsigned int pkg, unsigned int die, uint32_t *freqs,
					uint32_t num);
extern rte_power_uncore_freqs_t rte_power_uncore_freqs;

static int failed;
#define CHECK(cond, what)                                                      \
	do {                                                                   \
		int ok_ = (cond); /* evaluated once: it has effects */         \
		printf("%s %s\n", ok_ ? "ok  " : "FAIL", what);               \
		failed |= !ok_;                                                \
	} while (0)

int main(void)
{
	uint32_t f[64];

	setvbuf(stdout, NULL, _IOLBF, 0);
	CHECK(rte_power_freq_down != NULL && rte_power_uncore_get_num_pkgs != NULL,
	      "cpufreq and uncore pointer variables set before any env");
	CHECK(rte_power_set_env(PM_ENV_PSTATE_CPUFREQ) == 0, "set_env(PSTATE)");
	CHECK(rte_power_init(0) == 0, "init(0)");
	CHECK(rte_power_freq_min(0) == 1 && rte_power_get_freq(0) > 0, "freq_min through the variable");
	CHECK(rte_power_exit(0) == 0, "exit(0)");
	CHECK(rte_power_uncore_get_num_pkgs() == 1, "one uncore package");
	CHECK(rte_power_set_uncore_env(RTE_UNCORE_PM_ENV_INTEL_UNCORE) == 0, "set_uncore_env");
	CHECK(rte_power_uncore_init(0, 0) == 0, "uncore_init(0, 0)");
	int n = rte_power_uncore_get_num_freqs(0, 0);
	CHECK(n > 1 && rte_power_uncore_freqs(0, 0, f, 64) == n, "uncore table through the variable");
	CHECK(rte_power_uncore_freq_min(0, 0) == 0, "uncore freq_min (0 on success, as DPDK)");
	CHECK(rte_power_uncore_exit(0, 0) == 0, "uncore_exit");
	return failed;
}
