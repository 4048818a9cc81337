/* SPDX-License-Identifier: BSD-3-Clause
 * A DPDK 22.11-style application source: includes <rte_power.h> only, keeps
 * the operations in the 22.11 pointer typedefs, uses the guest-channel
 * structs that 22.11's rte_power.h pulls in, and drives lcores 0 and 1 of an
 * acpi-cpufreq tree (RTE_POWER_SYSFS_CPU_DIR). Builds as C11 and as C++17
 * with warnings as errors and links against rte-power alone.
 *
 * Not compatible, by design (the library follows the 24.11 ABI):
 * `rte_power_set_freq_t p = rte_power_set_freq;` (24.11 declares the
 * function uint32_t, the typedef int) and `rte_power_freq_up == NULL`
 * tests (the operations are functions, never NULL).
 */
#include <rte_power.h>

#include <stdint.h>

#include "check.h"

#ifndef RTE_MAX_LCORE_FREQS
#define RTE_MAX_LCORE_FREQS 64 /* rte_config.h in a DPDK build */
#endif

/* The way a 22.11 application keeps its scaling actions in a table. */
struct scale_action {
	const char *name;
	rte_power_freq_change_t fn;
};

static const struct scale_action actions[] = {
	{ "up", rte_power_freq_up },
	{ "down", rte_power_freq_down },
	{ "max", rte_power_freq_max },
	{ "min", rte_power_freq_min },
};

enum { ACT_UP, ACT_DOWN, ACT_MAX, ACT_MIN };

/* The table the tree advertises, parsed like an application would. */
static uint32_t kernel_table(unsigned int cpu, uint32_t *out, uint32_t cap)
{
	char buf[1024], *p, *end;
	uint32_t n = 0;

	if (read_cpufreq(cpu, "scaling_available_frequencies", buf,
			 sizeof(buf)) != 0)
		return 0;
	for (p = buf; n < cap; p = end) {
		unsigned long v = strtoul(p, &end, 10);

		if (end == p)
			break;
		out[n++] = (uint32_t)v;
	}
	return n;
}

static unsigned long setspeed(unsigned int cpu)
{
	return cpufreq_ul(cpu, "scaling_setspeed");
}

int main(void)
{
	rte_power_freqs_t get_table = rte_power_freqs;
	rte_power_get_freq_t get_index = rte_power_get_freq;
	rte_power_freq_change_t turbo_status = rte_power_turbo_status;
	rte_power_freq_change_t enable_turbo = rte_power_freq_enable_turbo;
	rte_power_freq_change_t disable_turbo = rte_power_freq_disable_turbo;
	rte_power_get_capabilities_t get_caps = rte_power_get_capabilities;
	uint32_t freqs[RTE_MAX_LCORE_FREQS], expect[RTE_MAX_LCORE_FREQS];
	struct rte_power_core_capabilities caps;
	struct rte_power_channel_packet pkt;
	char gov0[64], gov1[64], buf[64];
	uint32_t n, i;
	int ret;

	REQUIRE(read_cpufreq(0, "scaling_governor", gov0, sizeof(gov0)) == 0,
		"no cpufreq tree at %s", sysfs_cpu_dir());
	REQUIRE(read_cpufreq(1, "scaling_governor", gov1, sizeof(gov1)) == 0,
		"tree has no cpu1");

	/* env */
	CHECK_EQ(rte_power_check_env_supported(PM_ENV_ACPI_CPUFREQ), 1);
	CHECK_EQ(rte_power_check_env_supported(PM_ENV_PSTATE_CPUFREQ), 0);
	REQUIRE(rte_power_set_env(PM_ENV_ACPI_CPUFREQ) == 0, "set_env(acpi)");
	CHECK_EQ(rte_power_get_env(), PM_ENV_ACPI_CPUFREQ);
	REQUIRE(rte_power_init(0) == 0, "init(0)");
	REQUIRE(rte_power_init(1) == 0, "init(1)");
	CHECK(read_cpufreq(0, "scaling_governor", buf, sizeof(buf)) == 0 &&
		      strcmp(buf, "userspace") == 0,
	      "cpu0 governor %s, want userspace", buf);

	/* the table is the kernel's, in the kernel's (descending) order */
	n = get_table(0, freqs, RTE_MAX_LCORE_FREQS);
	CHECK_EQ(n, kernel_table(0, expect, RTE_MAX_LCORE_FREQS));
	REQUIRE(n >= 4, "table of %u entries", n);
	for (i = 0; i < n; i++)
		CHECK(freqs[i] == expect[i], "freqs[%u] = %u, kernel lists %u",
		      i, freqs[i], expect[i]);

	/* init went to the top (turbo is on after init on acpi) */
	CHECK_EQ(get_index(0), 0);
	CHECK_EQ(setspeed(0), freqs[0]);
	CHECK_EQ(turbo_status(0), 1);

	/* set_freq: 1 changed, 0 unchanged, negative out of range */
	ret = rte_power_set_freq(0, 3);
	CHECK_EQ(ret, 1);
	CHECK_EQ(get_index(0), 3);
	CHECK_EQ(setspeed(0), freqs[3]);
	ret = rte_power_set_freq(0, 3);
	CHECK_EQ(ret, 0);
	ret = rte_power_set_freq(0, n);
	CHECK(ret < 0, "set_freq(0, %u) = %d", n, ret);

	/* the action table */
	CHECK_EQ(actions[ACT_MIN].fn(0), 1);
	CHECK_EQ(setspeed(0), freqs[n - 1]);
	CHECK_EQ(actions[ACT_MIN].fn(0), 0);
	CHECK_EQ(actions[ACT_DOWN].fn(0), 0);
	CHECK_EQ(actions[ACT_UP].fn(0), 1);
	CHECK_EQ(get_index(0), n - 2);
	CHECK_EQ(actions[ACT_DOWN].fn(0), 1);
	CHECK_EQ(actions[ACT_MAX].fn(0), 1);
	CHECK_EQ(get_index(0), 0);
	CHECK_EQ(actions[ACT_UP].fn(0), 0);
	for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		CHECK(actions[i].fn(RTE_POWER_MAX_LCORE) < 0,
		      "%s(%u) did not fail", actions[i].name,
		      RTE_POWER_MAX_LCORE);

	/* turbo: off leaves the turbo entry and keeps freq_up below it */
	CHECK_EQ(disable_turbo(0), 0);
	CHECK_EQ(turbo_status(0), 0);
	CHECK_EQ(get_index(0), 1);
	CHECK_EQ(setspeed(0), freqs[1]);
	CHECK_EQ(actions[ACT_UP].fn(0), 0);
	CHECK_EQ(actions[ACT_MAX].fn(0), 0);
	CHECK_EQ(enable_turbo(0), 0);
	CHECK_EQ(turbo_status(0), 1);
	CHECK_EQ(get_index(0), 0);

	memset(&caps, 0, sizeof(caps));
	CHECK_EQ(get_caps(0, &caps), 0);
	CHECK_EQ(caps.turbo, 1);
	CHECK_EQ(caps.priority, 0);

	/* lcore 1 is programmed on its own CPU only */
	CHECK_EQ(actions[ACT_MIN].fn(1), 1);
	CHECK_EQ(setspeed(1), freqs[n - 1]);
	CHECK_EQ(setspeed(0), freqs[0]);

	/* 22.11's rte_power.h also gives the guest channel packets; on a host
	 * the lcores have no channel */
	memset(&pkt, 0, sizeof(pkt));
	CHECK_EQ(sizeof(pkt), 464);
	pkt.command = RTE_POWER_CPU_POWER;
	pkt.unit = RTE_POWER_SCALE_UP;
	pkt.resource_id = 0;
	strncpy(pkt.vm_name, "api_2211", sizeof(pkt.vm_name) - 1);
	CHECK_EQ(rte_power_guest_channel_send_msg(&pkt, 0), -1);

	/* exit restores the governors */
	CHECK_EQ(rte_power_exit(0), 0);
	CHECK_EQ(rte_power_exit(1), 0);
	CHECK(read_cpufreq(0, "scaling_governor", buf, sizeof(buf)) == 0 &&
		      strcmp(buf, gov0) == 0,
	      "cpu0 governor %s after exit, want %s", buf, gov0);
	CHECK(read_cpufreq(1, "scaling_governor", buf, sizeof(buf)) == 0 &&
		      strcmp(buf, gov1) == 0,
	      "cpu1 governor %s after exit, want %s", buf, gov1);
	rte_power_unset_env();
	CHECK_EQ(rte_power_get_env(), PM_ENV_NOT_SET);
	return check_done("api_2211");
}
