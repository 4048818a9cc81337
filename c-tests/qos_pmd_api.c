/* SPDX-License-Identifier: BSD-3-Clause
 * PM QoS (<rte_power_qos.h>) and PMD queue management
 * (<rte_power_pmd_mgmt.h>) in a process without DPDK, with the documented
 * return values of the headers:
 *
 *   rte_power_qos_set/get_cpu_resume_latency: the API's 0 (strict) is
 *   "n/a" in cpuN/power/pm_qos_resume_latency_us, INT32_MAX (no
 *   constraint) is "0", other values are µs; -EINVAL for an invalid lcore
 *   or a negative latency (also on an lcore without a CPU: the value is
 *   checked first); -1 when the file cannot be read or written. The file
 *   is read back after every change.
 *
 *   rte_power_ethdev_pmgmt_queue_enable/disable: no DPDK ethdev in this
 *   process, so -ENOTSUP for every call. The port check is DPDK's first
 *   argument check and needs ethdev itself (rte_eth_dev_is_valid_port), so
 *   invalid lcores, queues and modes are -ENOTSUP too; a refused SCALE
 *   enable leaves the lcore alone.
 *
 * Runs on an acpi-cpufreq tree (RTE_POWER_SYSFS_CPU_DIR) with 4 CPUs; no
 * EAL, so lcore N is CPU N. Needs no DPDK header.
 */
#include <rte_power_qos.h>
#include <rte_power_pmd_mgmt.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>

#include "check.h"

#define NCPUS 4u
#define LCORE 2u
#define NOCPU_LCORE 7u /* a valid lcore id; its CPU is not in the tree */

/* cpuN/power/pm_qos_resume_latency_us into buf (see read_line). */
static int read_qos(unsigned int cpu, char *buf, size_t len)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/cpu%u/power/pm_qos_resume_latency_us",
		 sysfs_cpu_dir(), cpu);
	return read_line(path, buf, len);
}

/* The file of CPU holds WANT (reported with the caller's line). */
#define CHECK_QOS_FILE(cpu, want) check_qos_file(__LINE__, cpu, want)
static void check_qos_file(int line, unsigned int cpu, const char *want)
{
	char got[64];

	if (read_qos(cpu, got, sizeof(got)) != 0)
		CHECK_FAIL("resume latency file", "line %d: cpu%u: unreadable",
			   line, cpu);
	else if (strcmp(got, want) != 0)
		CHECK_FAIL("resume latency file",
			   "line %d: cpu%u holds \"%s\", want \"%s\"", line,
			   cpu, got, want);
}

static void qos(void)
{
	static const uint16_t bad_lcores[] = { RTE_POWER_MAX_LCORE,
					       RTE_POWER_MAX_LCORE + 1,
					       UINT16_MAX };
	unsigned int cpu;
	size_t i;

	/* the generated tree starts without constraints ("0") */
	for (cpu = 0; cpu < NCPUS; cpu++) {
		CHECK_QOS_FILE(cpu, "0");
		CHECK_EQ(rte_power_qos_get_cpu_resume_latency((uint16_t)cpu),
			 RTE_POWER_QOS_RESUME_LATENCY_NO_CONSTRAINT);
	}

	/* strict: "n/a" in the file */
	CHECK_EQ(rte_power_qos_set_cpu_resume_latency(LCORE,
			RTE_POWER_QOS_STRICT_LATENCY_VALUE), 0);
	CHECK_QOS_FILE(LCORE, "n/a");
	CHECK_EQ(rte_power_qos_get_cpu_resume_latency(LCORE),
		 RTE_POWER_QOS_STRICT_LATENCY_VALUE);

	/* a limit in µs */
	CHECK_EQ(rte_power_qos_set_cpu_resume_latency(LCORE, 25), 0);
	CHECK_QOS_FILE(LCORE, "25");
	CHECK_EQ(rte_power_qos_get_cpu_resume_latency(LCORE), 25);
	CHECK_EQ(rte_power_qos_set_cpu_resume_latency(LCORE, 1), 0);
	CHECK_QOS_FILE(LCORE, "1");
	CHECK_EQ(rte_power_qos_get_cpu_resume_latency(LCORE), 1);

	/* negative: -EINVAL, the file keeps its value */
	CHECK_EQ(rte_power_qos_set_cpu_resume_latency(LCORE, -1), -EINVAL);
	CHECK_EQ(rte_power_qos_set_cpu_resume_latency(LCORE, INT_MIN), -EINVAL);
	CHECK_QOS_FILE(LCORE, "1");
	CHECK_EQ(rte_power_qos_get_cpu_resume_latency(LCORE), 1);

	/* no constraint: "0" in the file */
	CHECK_EQ(rte_power_qos_set_cpu_resume_latency(LCORE,
			RTE_POWER_QOS_RESUME_LATENCY_NO_CONSTRAINT), 0);
	CHECK_QOS_FILE(LCORE, "0");
	CHECK_EQ(rte_power_qos_get_cpu_resume_latency(LCORE),
		 RTE_POWER_QOS_RESUME_LATENCY_NO_CONSTRAINT);

	/* each lcore has its own file */
	CHECK_EQ(rte_power_qos_set_cpu_resume_latency(0, 0), 0);
	CHECK_EQ(rte_power_qos_set_cpu_resume_latency(NCPUS - 1, 300), 0);
	CHECK_QOS_FILE(0, "n/a");
	CHECK_QOS_FILE(1, "0");
	CHECK_QOS_FILE(LCORE, "0");
	CHECK_QOS_FILE(NCPUS - 1, "300");
	CHECK_EQ(rte_power_qos_get_cpu_resume_latency(0), 0);
	CHECK_EQ(rte_power_qos_get_cpu_resume_latency(NCPUS - 1), 300);

	/* invalid lcores: -EINVAL whatever the value */
	for (i = 0; i < sizeof(bad_lcores) / sizeof(bad_lcores[0]); i++) {
		uint16_t l = bad_lcores[i];

		CHECK_EQ(rte_power_qos_set_cpu_resume_latency(l, 0), -EINVAL);
		CHECK_EQ(rte_power_qos_set_cpu_resume_latency(l, 10), -EINVAL);
		CHECK_EQ(rte_power_qos_set_cpu_resume_latency(l, -1), -EINVAL);
		CHECK_EQ(rte_power_qos_get_cpu_resume_latency(l), -EINVAL);
	}

	/* a valid lcore whose CPU has no file: -1; a negative value is
	 * refused before the file is looked for */
	CHECK_EQ(rte_power_qos_set_cpu_resume_latency(NOCPU_LCORE, 10), -1);
	CHECK_EQ(rte_power_qos_get_cpu_resume_latency(NOCPU_LCORE), -1);
	CHECK_EQ(rte_power_qos_set_cpu_resume_latency(NOCPU_LCORE, -5), -EINVAL);

	/* leave the tree as found */
	CHECK_EQ(rte_power_qos_set_cpu_resume_latency(0,
			RTE_POWER_QOS_RESUME_LATENCY_NO_CONSTRAINT), 0);
	CHECK_EQ(rte_power_qos_set_cpu_resume_latency(NCPUS - 1,
			RTE_POWER_QOS_RESUME_LATENCY_NO_CONSTRAINT), 0);
	for (cpu = 0; cpu < NCPUS; cpu++)
		CHECK_QOS_FILE(cpu, "0");
}

static void pmd_without_ethdev(void)
{
	static const enum rte_power_pmd_mgmt_type modes[] = {
		RTE_POWER_MGMT_TYPE_MONITOR, RTE_POWER_MGMT_TYPE_PAUSE,
		RTE_POWER_MGMT_TYPE_SCALE, (enum rte_power_pmd_mgmt_type)0,
		(enum rte_power_pmd_mgmt_type)4,
	};
	static const unsigned int lcores[] = { 0, LCORE, RTE_POWER_MAX_LCORE,
					       UINT_MAX };
	static const uint16_t queues[] = { 0, 1023, 1024, UINT16_MAX };
	char gov[64];
	size_t m, l, q;

	for (l = 0; l < sizeof(lcores) / sizeof(lcores[0]); l++)
		for (q = 0; q < sizeof(queues) / sizeof(queues[0]); q++) {
			for (m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
				CHECK_EQ(rte_power_ethdev_pmgmt_queue_enable(
						 lcores[l], 0, queues[q],
						 modes[m]), -ENOTSUP);
			CHECK_EQ(rte_power_ethdev_pmgmt_queue_enable(
					 lcores[l], UINT16_MAX, queues[q],
					 RTE_POWER_MGMT_TYPE_PAUSE), -ENOTSUP);
			CHECK_EQ(rte_power_ethdev_pmgmt_queue_disable(
					 lcores[l], 0, queues[q]), -ENOTSUP);
			CHECK_EQ(rte_power_ethdev_pmgmt_queue_disable(
					 lcores[l], UINT16_MAX, queues[q]), -ENOTSUP);
		}

	/* the refused SCALE enables did not initialise the lcore: its
	 * governor is the tree's, and the application can still init it */
	CHECK_EQ(read_cpufreq(LCORE, "scaling_governor", gov, sizeof(gov)), 0);
	CHECK(strcmp(gov, "schedutil") == 0, "cpu%u governor %s", LCORE, gov);
	CHECK_EQ(rte_power_get_env(), PM_ENV_NOT_SET);
	CHECK_EQ(rte_power_init(LCORE), 0);
	CHECK_EQ(rte_power_exit(LCORE), 0);
	CHECK_EQ(read_cpufreq(LCORE, "scaling_governor", gov, sizeof(gov)), 0);
	CHECK(strcmp(gov, "schedutil") == 0, "cpu%u governor %s after exit",
	      LCORE, gov);
	rte_power_unset_env();

	/* the tunables are independent of ethdev */
	CHECK_EQ(rte_power_pmd_mgmt_get_emptypoll_max(), 512);
	CHECK_EQ(rte_power_pmd_mgmt_get_pause_duration(), 1);
}

int main(void)
{
	qos();
	pmd_without_ethdev();
	return check_done("qos_pmd_api");
}
