/* SPDX-License-Identifier: BSD-3-Clause
 * The library follows EAL's lcore -> CPU map when the process has EAL.
 *
 * This program stands in for EAL: it defines and exports (link with
 * -rdynamic) DPDK's rte_lcore_to_cpu_id() and rte_lcore_cpuset(), which the
 * library looks up with dlsym(RTLD_DEFAULT) on first use. The map:
 *   lcore 0 -> CPU 1, lcore 1 -> CPUs {0,1} (not usable: the library, like
 *   DPDK 22.11.7+, needs exactly one CPU), lcores 2, 3 -> CPU 2, 3,
 *   lcores >= EAL_MAX_LCORE -> outside EAL (rte_lcore_to_cpu_id -1).
 * Runs on an acpi-cpufreq tree (RTE_POWER_SYSFS_CPU_DIR) with 4 CPUs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* cpu_set_t (g++ defines it already) */
#endif
#include <rte_power_cpufreq.h>

#include <sched.h>

#include "check.h"

#define EAL_MAX_LCORE 4

static int to_cpu_calls, cpuset_calls, cpuset_out_of_range;

#ifdef __cplusplus
extern "C" {
#endif
/* the prototypes of DPDK's rte_lcore.h (rte_cpuset_t is cpu_set_t) */
int rte_lcore_to_cpu_id(int lcore_id);
cpu_set_t rte_lcore_cpuset(unsigned int lcore_id);
#ifdef __cplusplus
}
#endif

int rte_lcore_to_cpu_id(int lcore_id)
{
	to_cpu_calls++;
	if (lcore_id < 0 || lcore_id >= EAL_MAX_LCORE)
		return -1;
	return lcore_id == 0 ? 1 : lcore_id == 1 ? 0 : lcore_id;
}

cpu_set_t rte_lcore_cpuset(unsigned int lcore_id)
{
	cpu_set_t set;

	cpuset_calls++;
	CPU_ZERO(&set);
	switch (lcore_id) {
	case 0:
		CPU_SET(1, &set);
		break;
	case 1:
		CPU_SET(0, &set);
		CPU_SET(1, &set);
		break;
	case 2:
	case 3:
		CPU_SET(lcore_id, &set);
		break;
	default:
		/* DPDK indexes its lcore table without a check: a caller must
		 * have asked rte_lcore_to_cpu_id() first */
		cpuset_out_of_range++;
		break;
	}
	return set;
}

static int governor_is(unsigned int cpu, const char *want)
{
	char buf[64];

	return read_cpufreq(cpu, "scaling_governor", buf, sizeof(buf)) == 0 &&
	       strcmp(buf, want) == 0;
}

int main(void)
{
	uint32_t freqs[RTE_POWER_MAX_FREQS];
	char gov[64];
	unsigned long set0;
	uint32_t n;

	REQUIRE(read_cpufreq(0, "scaling_governor", gov, sizeof(gov)) == 0,
		"no cpufreq tree at %s", sysfs_cpu_dir());
	REQUIRE(strcmp(gov, "userspace") != 0, "tree starts in userspace");
	set0 = cpufreq_ul(0, "scaling_setspeed");

	/* lcore 0 drives CPU 1, and only CPU 1 */
	REQUIRE(rte_power_init(0) == 0, "init(0)");
	CHECK(to_cpu_calls > 0 && cpuset_calls > 0,
	      "the library did not ask EAL (%d/%d calls)", to_cpu_calls,
	      cpuset_calls);
	CHECK_EQ(rte_power_get_env(), PM_ENV_ACPI_CPUFREQ);
	CHECK(governor_is(1, "userspace"), "cpu1 not switched to userspace");
	CHECK(governor_is(0, gov), "cpu0's governor changed");
	n = rte_power_freqs(0, freqs, RTE_POWER_MAX_FREQS);
	REQUIRE(n >= 2, "freqs(0) = %u", n);
	CHECK_EQ(rte_power_freq_min(0), 1);
	CHECK_EQ(cpufreq_ul(1, "scaling_setspeed"), freqs[n - 1]);
	CHECK_EQ(cpufreq_ul(0, "scaling_setspeed"), set0);

	/* lcore 1 spans two CPUs: refused, nothing touched */
	CHECK_EQ(rte_power_init(1), -1);
	CHECK(governor_is(0, gov), "cpu0's governor changed by init(1)");
	CHECK_EQ(rte_power_freq_up(1), -1);

	/* lcore 5 is no EAL lcore */
	CHECK_EQ(rte_power_init(5), -1);
	CHECK_EQ(cpuset_out_of_range, 0);

	/* lcore 2 -> CPU 2 */
	CHECK_EQ(rte_power_init(2), 0);
	CHECK(governor_is(2, "userspace"), "cpu2 not switched to userspace");
	CHECK_EQ(rte_power_exit(2), 0);

	/* exit of lcore 0 restores CPU 1 */
	CHECK_EQ(rte_power_exit(0), 0);
	CHECK(governor_is(1, gov), "cpu1's governor not restored");
	CHECK(governor_is(0, gov), "cpu0's governor changed by exit(0)");
	CHECK_EQ(cpufreq_ul(0, "scaling_setspeed"), set0);
	rte_power_unset_env();
	return check_done("eal_lcore_map");
}
