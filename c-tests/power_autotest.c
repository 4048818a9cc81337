/* SPDX-License-Identifier: BSD-3-Clause
 * Our C version of DPDK's power_autotest step list (no hardware needed):
 * env selection only. set_env does not look at the machine, so every env
 * must be selectable on any host, also one without cpufreq.
 */
#include <rte_power_cpufreq.h>

#include "check.h"

int main(void)
{
	static const enum power_management_env envs[] = {
		PM_ENV_ACPI_CPUFREQ, PM_ENV_KVM_VM, PM_ENV_PSTATE_CPUFREQ,
		PM_ENV_AMD_PSTATE_CPUFREQ, PM_ENV_CPPC_CPUFREQ,
	};
	size_t i;

	/* NOT_SET is not an env one can select */
	CHECK(rte_power_set_env(PM_ENV_NOT_SET) != 0,
	      "set_env(PM_ENV_NOT_SET) succeeded");
	CHECK_EQ(rte_power_get_env(), PM_ENV_NOT_SET);
	rte_power_unset_env();

	for (i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
		CHECK(rte_power_set_env(envs[i]) == 0,
		      "set_env(%d) failed", (int)envs[i]);
		CHECK(rte_power_get_env() == envs[i],
		      "get_env() = %d after set_env(%d)",
		      (int)rte_power_get_env(), (int)envs[i]);
		rte_power_unset_env();
		CHECK(rte_power_get_env() == PM_ENV_NOT_SET,
		      "get_env() = %d after unset_env", (int)rte_power_get_env());
	}
	return check_done("power_autotest");
}
