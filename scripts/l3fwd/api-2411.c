/* SPDX-License-Identifier: BSD-3-Clause
 * rte-power: a program written against the DPDK 24.11+ API shape (real
 * functions, <rte_power_cpufreq.h>, <rte_power_uncore.h> with the uncore
 * env calls, uint32_t rte_power_set_freq), built with include/ before
 * DPDK's headers and linked against rte-power alone. Run on a generated
 * tree (RTE_POWER_SYSFS_CPU_DIR) by scripts/l3fwd-power.sh: it prints one
 * line per call and exits non-zero when a result is not what 24.11
 * documents.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <rte_lcore.h>
#include <rte_power_cpufreq.h>
#include <rte_power_pmd_mgmt.h>
#include <rte_power_uncore.h>

static int failures;

#define CHECK(expr, cond) do { \
	long long v_ = (long long)(expr); \
	int ok_ = (cond); \
	printf("%-4s %s = %lld\n", ok_ ? "ok" : "FAIL", #expr, v_); \
	if (!ok_) \
		failures++; \
} while (0)

int main(void)
{
	uint32_t freqs[RTE_POWER_MAX_FREQS];
	uint32_t ufreqs[64];
	struct rte_power_core_capabilities caps;
	int n, r;
	uint32_t idx;

	/* cpufreq: the 24.11 real functions */
	CHECK(rte_power_set_env(PM_ENV_ACPI_CPUFREQ), v_ == 0);
	CHECK(rte_power_init(1), v_ == 0);
	n = (int)rte_power_freqs(1, freqs, RTE_POWER_MAX_FREQS);
	CHECK(n, v_ == 16);
	r = (int)rte_power_set_freq(1, 5);   /* uint32_t since 24.11 */
	CHECK(r, v_ == 1);
	CHECK(rte_power_get_freq(1), v_ == 5);
	CHECK(rte_power_freq_min(1), v_ == 1);
	CHECK(rte_power_get_capabilities(1, &caps), v_ == 0);
	CHECK(caps.turbo, v_ == 1);
	CHECK(rte_power_exit(1), v_ == 0);
	rte_power_unset_env();

	/* PMD management tunables */
	CHECK(rte_power_pmd_mgmt_set_pause_duration(0), v_ == -EINVAL);
	CHECK(rte_power_pmd_mgmt_set_scaling_freq_max(1, 2000000), v_ == 0);
	CHECK(rte_power_pmd_mgmt_get_scaling_freq_max(1), v_ == 2000000);
	/* no DPDK ethdev in this process */
	CHECK(rte_power_ethdev_pmgmt_queue_enable(1, 0, 0, RTE_POWER_MGMT_TYPE_SCALE),
			v_ == -ENOTSUP);

	/* uncore: the 23.11+ env calls and the 24.11 real functions */
	CHECK(rte_power_get_uncore_env(), v_ == RTE_UNCORE_PM_ENV_NOT_SET);
	CHECK(rte_power_set_uncore_env(RTE_UNCORE_PM_ENV_AUTO_DETECT), v_ == 0);
	CHECK(rte_power_get_uncore_env(), v_ == RTE_UNCORE_PM_ENV_INTEL_UNCORE);
	CHECK(rte_power_uncore_get_num_pkgs(), v_ == 1);
	CHECK(rte_power_uncore_get_num_dies(0), v_ == 2);
	CHECK(rte_power_uncore_init(0, 1), v_ == 0);
	n = rte_power_uncore_freqs(0, 1, ufreqs, 64);
	CHECK(n, v_ == rte_power_uncore_get_num_freqs(0, 1) && v_ > 1);
	CHECK(ufreqs[0], v_ > ufreqs[n - 1]);
	CHECK(rte_power_set_uncore_freq(0, 1, 2), v_ == 0);
	idx = rte_power_get_uncore_freq(0, 1);
	CHECK(idx, v_ == 2);
	CHECK(rte_power_uncore_freq_min(0, 1), v_ == 0);
	CHECK(rte_power_uncore_exit(0, 1), v_ == 0);
	CHECK(rte_power_uncore_exit(0, 1), v_ < 0);
	rte_power_unset_uncore_env();

	/* DPDK's own lcore header is usable next to ours */
	CHECK(RTE_MAX_LCORE, v_ > 0);

	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
