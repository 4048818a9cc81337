/* SPDX-License-Identifier: BSD-3-Clause
 * Our C version of DPDK's power_cpufreq_autotest followed by
 * power_caps_autotest: lcore 2 on the machine's (or a mounted fake)
 * /sys/devices/system/cpu, checked against the CPU's reported frequency.
 *
 * Usage: power_cpufreq_autotest [ENV [CAPS]]
 *   ENV   the env rte_power_init() must detect (number, e.g. 1 for acpi);
 *         without it any host cpufreq env is accepted, as DPDK does
 *   CAPS  the capabilities word power_caps_autotest must see (e.g. 0x1)
 * Environment: POWER_TEST_STRICT_CUR=1 makes an unreadable current
 * frequency a failure (DPDK lets the frequency checks pass then).
 *
 * The library must use its real default paths here: the runner mounts a
 * fake tree over /sys/devices/system/cpu in a private mount namespace.
 * Exit status: 0 PASS, 1 failure, 77 skipped (lcore 2 cannot be used).
 */
#define _POSIX_C_SOURCE 200809L
#include <rte_power_cpufreq.h>

#include <errno.h>
#include <stdint.h>
#include <time.h>

#include "check.h"

#define LCORE 2u
#define CPU 2u                          /* identity map: no EAL here */
#define BAD_LCORE RTE_POWER_MAX_LCORE   /* first id the library refuses */
#define TABLE_CAP RTE_POWER_MAX_FREQS

static uint32_t table[TABLE_CAP];
static uint32_t nfreqs;
static enum power_management_env env;

static void cleanup(void)
{
	rte_power_exit(LCORE);
	rte_power_unset_env();
}

static int fail_now(void)
{
	cleanup();
	return 1;
}

static int skipped(const char *why)
{
	printf("SKIPPED: %s\n", why);
	rte_power_unset_env();
	return 77;
}

/* The CPU's current frequency in kHz: cpuinfo_cur_freq (what the hardware
 * reports), else scaling_cur_freq; 0 when neither can be read. */
static unsigned long current_khz(void)
{
	static const char *const names[] = { "cpuinfo_cur_freq",
					     "scaling_cur_freq" };
	char path[256], buf[64];
	size_t i;

	for (i = 0; i < 2; i++) {
		snprintf(path, sizeof(path),
			 "/sys/devices/system/cpu/cpu%u/cpufreq/%s", CPU,
			 names[i]);
		if (read_line(path, buf, sizeof(buf)) == 0)
			return strtoul(buf, NULL, 10);
	}
	return 0;
}

/* Whether `cur` is what table[idx] should read as. intel_pstate and cppc
 * report the real frequency, which is compared in 100 MHz buckets; amd-pstate
 * may be 50 MHz off. `at_least`: a turbo index, where the CPU may run at
 * anything from the table value up. */
static int freq_matches(unsigned long cur, uint32_t idx, int at_least)
{
	unsigned long want = table[idx];

	if (env == PM_ENV_PSTATE_CPUFREQ || env == PM_ENV_CPPC_CPUFREQ)
		cur = (cur + 50000) / 100000 * 100000;
	if (at_least)
		return cur >= want;
	if (env == PM_ENV_AMD_PSTATE_CPUFREQ)
		return (cur > want ? cur - want : want - cur) <= 50000;
	return cur == want;
}

/* Polls the CPU's frequency for up to a second (the hardware needs time to
 * settle; a sysfs emulation answers at once) until it matches table[idx]. */
static int cpu_runs_at(uint32_t idx, int at_least, int line)
{
	const struct timespec tick = { 0, 10 * 1000 * 1000 };
	unsigned long cur = 0;
	int tries;

	if (idx >= nfreqs) {
		fprintf(stderr, "line %d: index %u out of the table\n", line,
			idx);
		check_failures++;
		return 0;
	}
	for (tries = 0; tries < 100; tries++) {
		cur = current_khz();
		if (cur == 0) {
			const char *strict = getenv("POWER_TEST_STRICT_CUR");

			if (strict != NULL && strcmp(strict, "1") == 0)
				break;
			return 1; /* nothing to compare with: DPDK passes */
		}
		if (freq_matches(cur, idx, at_least))
			return 1;
		nanosleep(&tick, NULL);
	}
	fprintf(stderr, "line %d: cpu%u runs at %lu kHz, want %s%u kHz (index %u)\n",
		line, CPU, cur, at_least ? ">= " : "", (unsigned)table[idx], idx);
	check_failures++;
	return 0;
}
#define RUNS_AT(idx) cpu_runs_at((idx), 0, __LINE__)
#define RUNS_AT_LEAST(idx) cpu_runs_at((idx), 1, __LINE__)

static int cpufreq_autotest(int want_env)
{
	uint32_t idx;
	int ret;

	/* init auto-detects the env, exit releases the lcore */
	if (rte_power_init(LCORE) != 0)
		return skipped("rte_power_init(2) failed: no usable cpufreq for cpu2");
	env = rte_power_get_env();
	REQUIRE(env == PM_ENV_ACPI_CPUFREQ || env == PM_ENV_PSTATE_CPUFREQ ||
		env == PM_ENV_CPPC_CPUFREQ || env == PM_ENV_AMD_PSTATE_CPUFREQ,
		"detected env %d is not a host cpufreq env", (int)env);
	if (want_env > 0)
		REQUIRE((int)env == want_env, "detected env %d, want %d",
			(int)env, want_env);
	REQUIRE(rte_power_exit(LCORE) >= 0, "exit(2) after the first init");

	/* the env stays selected: an invalid lcore now reaches the driver */
	CHECK(rte_power_init(BAD_LCORE) != 0, "init(%u) succeeded", BAD_LCORE);
	if (rte_power_init(LCORE) != 0)
		return skipped("second rte_power_init(2) failed");
	CHECK(rte_power_init(LCORE) != 0, "init(2) twice succeeded");

	/* the frequency table */
	CHECK_EQ(rte_power_freqs(BAD_LCORE, table, TABLE_CAP), 0);
	CHECK_EQ(rte_power_freqs(LCORE, NULL, TABLE_CAP), 0);
	CHECK_EQ(rte_power_freqs(LCORE, table, 0), 0);
	nfreqs = rte_power_freqs(LCORE, table, TABLE_CAP);
	REQUIRE(nfreqs >= 1 && nfreqs <= TABLE_CAP, "freqs() = %u", nfreqs);
	for (idx = 1; idx < nfreqs; idx++)
		CHECK(table[idx] < table[idx - 1],
		      "table not descending at %u: %u after %u", idx,
		      table[idx], table[idx - 1]);
	if (nfreqs < 2) {
		/* nothing to move between */
		cleanup();
		return check_failures ? 1 : 0;
	}

	/* get_freq: the index the CPU is at */
	CHECK(rte_power_get_freq(BAD_LCORE) >= TABLE_CAP,
	      "get_freq(%u) = %u", BAD_LCORE, rte_power_get_freq(BAD_LCORE));
	idx = rte_power_get_freq(LCORE);
	REQUIRE(idx < TABLE_CAP, "get_freq(2) = %u", idx);
	RUNS_AT(idx);

	/* set_freq (uint32_t in the 24.11 prototype: kept in an int) */
	ret = (int)rte_power_set_freq(BAD_LCORE, 0);
	CHECK(ret < 0, "set_freq(%u, 0) = %d", BAD_LCORE, ret);
	ret = (int)rte_power_set_freq(LCORE, TABLE_CAP);
	CHECK(ret < 0, "set_freq(2, %u) = %d", TABLE_CAP, ret);
	ret = (int)rte_power_set_freq(LCORE, nfreqs);
	CHECK(ret < 0, "set_freq(2, %u) = %d (one past the table)", nfreqs, ret);
	ret = (int)rte_power_set_freq(LCORE, nfreqs - 1);
	CHECK(ret >= 0, "set_freq(2, %u) = %d", nfreqs - 1, ret);
	RUNS_AT(nfreqs - 1);
	if (check_failures)
		return fail_now();

	/* freq_down (turbo on first, so freq_max is the very top) */
	rte_power_freq_enable_turbo(LCORE);
	CHECK(rte_power_freq_down(BAD_LCORE) < 0, "freq_down(%u)", BAD_LCORE);
	CHECK(rte_power_freq_min(LCORE) >= 0, "freq_min(2)");
	ret = rte_power_freq_down(LCORE);
	CHECK(ret >= 0, "freq_down(2) at the bottom = %d", ret);
	RUNS_AT(nfreqs - 1);
	CHECK(rte_power_freq_max(LCORE) >= 0, "freq_max(2)");
	CHECK(rte_power_freq_down(LCORE) >= 0, "freq_down(2) from the top");
	RUNS_AT(1);
	if (check_failures)
		return fail_now();

	/* freq_up */
	CHECK(rte_power_freq_up(BAD_LCORE) < 0, "freq_up(%u)", BAD_LCORE);
	CHECK(rte_power_freq_min(LCORE) >= 0, "freq_min(2)");
	CHECK(rte_power_freq_up(LCORE) >= 0, "freq_up(2) from the bottom");
	RUNS_AT(nfreqs - 2);
	CHECK(rte_power_freq_max(LCORE) >= 0, "freq_max(2)");
	CHECK(rte_power_freq_up(LCORE) >= 0, "freq_up(2) at the top");
	RUNS_AT_LEAST(0);
	if (check_failures)
		return fail_now();

	/* freq_max, freq_min */
	CHECK(rte_power_freq_max(BAD_LCORE) < 0, "freq_max(%u)", BAD_LCORE);
	CHECK(rte_power_freq_max(LCORE) >= 0, "freq_max(2)");
	RUNS_AT_LEAST(0);
	CHECK(rte_power_freq_min(BAD_LCORE) < 0, "freq_min(%u)", BAD_LCORE);
	CHECK(rte_power_freq_min(LCORE) >= 0, "freq_min(2)");
	RUNS_AT(nfreqs - 1);
	if (check_failures)
		return fail_now();

	/* turbo, where the lcore has it enabled now */
	if (rte_power_turbo_status(LCORE) != 0) {
		CHECK(rte_power_freq_enable_turbo(BAD_LCORE) < 0,
		      "enable_turbo(%u)", BAD_LCORE);
		CHECK(rte_power_freq_enable_turbo(LCORE) >= 0, "enable_turbo(2)");
		CHECK(rte_power_freq_max(LCORE) >= 0, "freq_max(2), turbo on");
		RUNS_AT_LEAST(0);
		CHECK(rte_power_freq_disable_turbo(BAD_LCORE) < 0,
		      "disable_turbo(%u)", BAD_LCORE);
		CHECK(rte_power_freq_disable_turbo(LCORE) >= 0,
		      "disable_turbo(2)");
		CHECK(rte_power_freq_max(LCORE) >= 0, "freq_max(2), turbo off");
		RUNS_AT(1);
		if (check_failures)
			return fail_now();
	}

	/* exit: once only, never for an invalid lcore */
	CHECK(rte_power_exit(LCORE) >= 0, "exit(2)");
	CHECK(rte_power_exit(LCORE) != 0, "exit(2) twice succeeded");
	CHECK(rte_power_exit(BAD_LCORE) != 0, "exit(%u) succeeded", BAD_LCORE);
	rte_power_unset_env();
	return check_failures ? 1 : 0;
}

/* power_caps_autotest: leaves the lcore initialised, as DPDK's does. */
static int caps_autotest(long want_caps)
{
	struct rte_power_core_capabilities caps;

	if (rte_power_init(LCORE) != 0)
		return skipped("rte_power_init(2) failed (caps)");
	memset(&caps, 0xa5, sizeof(caps));
	REQUIRE(rte_power_get_capabilities(LCORE, &caps) == 0,
		"get_capabilities(2)");
	printf("lcore 2 capabilities 0x%llx (turbo %u, priority %u)\n",
	       (unsigned long long)caps.capabilities, (unsigned)caps.turbo,
	       (unsigned)caps.priority);
	CHECK((caps.capabilities & ~(uint64_t)3) == 0,
	      "undefined capability bits in 0x%llx",
	      (unsigned long long)caps.capabilities);
	if (want_caps >= 0)
		CHECK_EQ(caps.capabilities, want_caps);
	rte_power_unset_env();
	return check_failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	int want_env = argc > 1 ? atoi(argv[1]) : 0;
	long want_caps = argc > 2 ? strtol(argv[2], NULL, 0) : -1;
	int ret;

	ret = cpufreq_autotest(want_env);
	if (ret == 77)
		return 77;
	if (ret == 0)
		ret = caps_autotest(want_caps);
	if (ret == 77)
		return 77;
	return check_done("power_cpufreq_autotest + power_caps_autotest");
}
