/* SPDX-License-Identifier: BSD-3-Clause
 * A DPDK 24.11-style application source: <rte_power_cpufreq.h> for the
 * cpufreq functions (rte_power_set_freq is uint32_t there: results are
 * stored in an int), <rte_power_pmd_mgmt.h> for the tunables and the
 * per-lcore scaling limits, <rte_power_guest_channel.h> for the packets.
 * Runs on an intel_pstate tree (RTE_POWER_SYSFS_CPU_DIR) with at least 3
 * CPUs: lcore 1 gets PMD scaling limits before its init, lcore 2 none.
 */
#include <rte_power_cpufreq.h>
#include <rte_power_pmd_mgmt.h>
#include <rte_power_guest_channel.h>

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "check.h"

static unsigned long attr(unsigned int cpu, const char *name)
{
	return cpufreq_ul(cpu, name);
}

/* intel_pstate pins a frequency as scaling_min_freq = scaling_max_freq. */
static void check_pinned(unsigned int cpu, unsigned long khz, int line)
{
	unsigned long lo = attr(cpu, "scaling_min_freq");
	unsigned long hi = attr(cpu, "scaling_max_freq");

	if (lo != khz || hi != khz) {
		fprintf(stderr, "line %d: cpu%u min/max %lu/%lu, want %lu\n",
			line, cpu, lo, hi, khz);
		check_failures++;
	}
}
#define CHECK_PINNED(cpu, khz) check_pinned((cpu), (khz), __LINE__)

static void packets(void)
{
	struct rte_power_channel_packet pkt;
	struct rte_power_channel_packet_freq_list fl;
	struct rte_power_channel_packet_caps_list cl;

	CHECK_EQ(sizeof(struct rte_power_channel_packet), 464);
	CHECK_EQ(sizeof(struct rte_power_channel_packet_freq_list), 88);
	CHECK_EQ(sizeof(struct rte_power_channel_packet_caps_list), 184);
	CHECK_EQ(offsetof(struct rte_power_channel_packet, vm_name), 16);
	CHECK_EQ(offsetof(struct rte_power_channel_packet, timer_policy), 156);
	CHECK_EQ(offsetof(struct rte_power_channel_packet, core_type), 444);
	CHECK_EQ(offsetof(struct rte_power_channel_packet_freq_list, freq_list), 48);
	CHECK_EQ(offsetof(struct rte_power_channel_packet_caps_list, priority), 112);
	CHECK_EQ(sizeof(struct rte_power_core_capabilities), 8);

	memset(&pkt, 0, sizeof(pkt));
	pkt.command = RTE_POWER_QUERY_FREQ;
	pkt.resource_id = 1;
	pkt.workload = RTE_POWER_WL_MEDIUM;
	pkt.policy_to_use = RTE_POWER_POLICY_WORKLOAD;
	/* a host has no guest channels */
	CHECK_EQ(rte_power_guest_channel_send_msg(&pkt, 1), -1);
	CHECK_EQ(rte_power_guest_channel_receive_msg(&fl, sizeof(fl), 1), -1);
	CHECK_EQ(rte_power_guest_channel_receive_msg(&cl, sizeof(cl), 1), -1);
}

static void tunables(void)
{
	CHECK_EQ(RTE_POWER_MGMT_TYPE_MONITOR, 1);
	CHECK_EQ(RTE_POWER_MGMT_TYPE_PAUSE, 2);
	CHECK_EQ(RTE_POWER_MGMT_TYPE_SCALE, 3);

	CHECK_EQ(rte_power_pmd_mgmt_get_emptypoll_max(), 512);
	rte_power_pmd_mgmt_set_emptypoll_max(64);
	CHECK_EQ(rte_power_pmd_mgmt_get_emptypoll_max(), 64);
	CHECK_EQ(rte_power_pmd_mgmt_get_pause_duration(), 1);
	CHECK_EQ(rte_power_pmd_mgmt_set_pause_duration(0), -EINVAL);
	CHECK_EQ(rte_power_pmd_mgmt_get_pause_duration(), 1);
	CHECK_EQ(rte_power_pmd_mgmt_set_pause_duration(20), 0);
	CHECK_EQ(rte_power_pmd_mgmt_get_pause_duration(), 20);

	/* lcore 1: 1.0 .. 2.0 GHz (kHz), set before its init */
	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_min(1), 0);
	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_max(1), 0);
	CHECK_EQ(rte_power_pmd_mgmt_set_scaling_freq_max(1, 2000000), 0);
	CHECK_EQ(rte_power_pmd_mgmt_set_scaling_freq_min(1, 2500000), -EINVAL);
	CHECK_EQ(rte_power_pmd_mgmt_set_scaling_freq_min(1, 1000000), 0);
	CHECK_EQ(rte_power_pmd_mgmt_set_scaling_freq_max(1, 900000), -EINVAL);
	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_min(1), 1000000);
	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_max(1), 2000000);
	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_max(2), 0);
	CHECK_EQ(rte_power_pmd_mgmt_set_scaling_freq_min(RTE_POWER_MAX_LCORE, 1),
		 -EINVAL);
	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_max(RTE_POWER_MAX_LCORE),
		 -EINVAL);
}

int main(void)
{
	uint32_t f1[RTE_POWER_MAX_FREQS], f2[RTE_POWER_MAX_FREQS];
	struct rte_power_core_capabilities caps;
	unsigned long info_max, info_min, lim_lo, lim_hi;
	uint32_t n1, n2, i;
	int ret;

	info_max = attr(2, "cpuinfo_max_freq");
	info_min = attr(2, "cpuinfo_min_freq");
	lim_lo = attr(2, "scaling_min_freq");
	lim_hi = attr(2, "scaling_max_freq");
	REQUIRE(info_max > 0 && info_min > 0, "no intel_pstate tree for cpu2 at %s",
		sysfs_cpu_dir());

	packets();
	tunables();

	/* no set_env: init detects intel_pstate */
	CHECK_EQ(rte_power_check_env_supported(PM_ENV_PSTATE_CPUFREQ), 1);
	CHECK_EQ(rte_power_check_env_supported(PM_ENV_ACPI_CPUFREQ), 0);
	REQUIRE(rte_power_init(1) == 0, "init(1)");
	CHECK_EQ(rte_power_get_env(), PM_ENV_PSTATE_CPUFREQ);
	CHECK_EQ(rte_power_set_env(PM_ENV_ACPI_CPUFREQ), -1); /* one env */
	REQUIRE(rte_power_init(2) == 0, "init(2)");

	/* lcore 1: the PMD limits bound the table, which leaves no turbo */
	n1 = rte_power_freqs(1, f1, RTE_POWER_MAX_FREQS);
	CHECK_EQ(n1, 11);
	if (n1 == 11) {
		for (i = 0; i < n1; i++)
			CHECK_EQ(f1[i], 2000000 - i * 100000);
	}
	CHECK_EQ(rte_power_get_capabilities(1, &caps), 0);
	CHECK_EQ(caps.capabilities, 0);
	CHECK_EQ(rte_power_get_freq(1), 0);
	CHECK_PINNED(1, 2000000);

	/* lcore 2: turbo marker (max non-turbo + 1 kHz) in front, then 100 MHz
	 * steps down to cpuinfo_min_freq; turbo is off after the first init */
	n2 = rte_power_freqs(2, f2, RTE_POWER_MAX_FREQS);
	REQUIRE(n2 >= 3, "lcore 2 table of %u entries", n2);
	CHECK_EQ(f2[0], f2[1] + 1);
	CHECK_EQ(f2[n2 - 1], info_min);
	CHECK_EQ(rte_power_get_capabilities(2, &caps), 0);
	CHECK_EQ(caps.turbo, 1);
	CHECK_EQ(rte_power_turbo_status(2), 0);
	CHECK_EQ(rte_power_get_freq(2), 1);
	CHECK_PINNED(2, f2[1]);

	/* set_freq returns uint32_t in 24.11: -1 survives in an int */
	ret = (int)rte_power_set_freq(2, 0);
	CHECK(ret < 0, "set_freq(2, 0) with turbo off = %d", ret);
	CHECK_EQ(rte_power_freq_enable_turbo(2), 0);
	CHECK_EQ(rte_power_turbo_status(2), 1);
	ret = (int)rte_power_set_freq(2, 0);
	CHECK_EQ(ret, 1);
	CHECK_PINNED(2, info_max); /* the marker entry means "the CPU's max" */
	ret = (int)rte_power_set_freq(2, n2);
	CHECK_EQ(ret, -1);
	CHECK_EQ(rte_power_freq_min(2), 1);
	CHECK_PINNED(2, f2[n2 - 1]);
	CHECK_EQ(rte_power_freq_up(2), 1);
	CHECK_PINNED(2, f2[n2 - 2]);
	CHECK_EQ(rte_power_freq_down(2), 1);
	CHECK_PINNED(2, f2[n2 - 1]);
	CHECK_EQ(rte_power_freq_down(2), 0);
	CHECK_EQ(rte_power_freq_up(2), 1);
	CHECK_EQ(rte_power_freq_disable_turbo(2), 0);
	CHECK_EQ(rte_power_freq_max(2), 1);
	CHECK_PINNED(2, f2[1]);
	CHECK_PINNED(1, 2000000); /* lcore 1 untouched */

	/* exit gives back the original limits */
	CHECK_EQ(rte_power_exit(1), 0);
	CHECK_EQ(rte_power_exit(2), 0);
	CHECK_EQ(attr(2, "scaling_min_freq"), lim_lo);
	CHECK_EQ(attr(2, "scaling_max_freq"), lim_hi);
	CHECK_EQ(rte_power_get_freq(2), (uint32_t)RTE_POWER_INVALID_FREQ_INDEX);
	rte_power_unset_env();

	/* the limits outlive the lcore's session */
	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_max(1), 2000000);
	CHECK_EQ(rte_power_pmd_mgmt_set_scaling_freq_max(1, 0), 0);
	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_max(1), 0);
	return check_done("api_2411");
}
