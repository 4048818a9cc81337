/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A DPDK 22.11 program as any is built: Debian's <rte_power.h> (the eleven
 * operations are function-pointer variables) and Debian's -lrte_power. Run
 * with LD_LIBRARY_PATH at rte-power's librte_power.so.23 on a generated
 * sysfs tree (RTE_POWER_SYSFS_CPU_DIR), no EAL: the pointers are set before
 * set_env (ours are never NULL), calls through them reach our library, and
 * the host is restored at exit. scripts/test.d/35-dpdk-abi.sh runs it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* as the DPDK examples that use the experimental API are built */
#define ALLOW_EXPERIMENTAL_API
#include <rte_power.h>
#include <rte_power_intel_uncore.h>

static int failed;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (cond) {                                                    \
			printf("ok   " __VA_ARGS__);                               \
		} else {                                                       \
			printf("FAIL " __VA_ARGS__);                               \
			failed = 1;                                            \
		}                                                              \
		printf("\n");                                                  \
	} while (0)

static void read_attr(const char *tree, unsigned int cpu, const char *name, char *out, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/cpu%u/cpufreq/%s", tree, cpu, name);
	out[0] = '\0';
	f = fopen(path, "r");
	if (f != NULL) {
		if (fgets(out, (int)n, f) == NULL)
			out[0] = '\0';
		fclose(f);
	}
	out[strcspn(out, "\n")] = '\0';
}

int main(void)
{
	const char *tree = getenv("RTE_POWER_SYSFS_CPU_DIR");
	uint32_t freqs[RTE_MAX_LCORE_FREQS];
	char gov[64], speed[64];
	uint32_t n;

	if (tree == NULL) {
		fprintf(stderr, "set RTE_POWER_SYSFS_CPU_DIR\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	CHECK(rte_power_freq_up != NULL && rte_power_get_freq != NULL,
	      "the pointer variables are set before rte_power_set_env");
	CHECK(rte_power_freq_up(0) < 0, "a call before init fails cleanly (DPDK: NULL call)");
	CHECK(rte_power_set_env(PM_ENV_ACPI_CPUFREQ) == 0, "rte_power_set_env(ACPI)");
	CHECK(rte_power_init(1) == 0, "rte_power_init(1)");
	read_attr(tree, 1, "scaling_governor", gov, sizeof(gov));
	CHECK(strcmp(gov, "userspace") == 0, "cpu1 governor %s", gov);
	n = rte_power_freqs(1, freqs, RTE_MAX_LCORE_FREQS);
	CHECK(n == 16, "rte_power_freqs through the variable: %u entries", n);
	CHECK(rte_power_get_freq(1) == 0, "at index 0 (turbo) after init");
	CHECK(rte_power_freq_down(1) == 1, "freq_down changes");
	read_attr(tree, 1, "scaling_setspeed", speed, sizeof(speed));
	CHECK(n > 1 && strtoul(speed, NULL, 10) == freqs[1], "scaling_setspeed %s = table[1]", speed);
	CHECK(rte_power_set_freq(1, n - 1) == 1 && rte_power_get_freq(1) == n - 1, "set_freq to the minimum");
	CHECK(rte_power_freq_min(1) == 0, "freq_min: nothing to change");
	CHECK(rte_power_freq_max(1) == 1, "freq_max");
	CHECK(rte_power_turbo_status(1) == 1, "turbo on");
	CHECK(rte_power_freq_disable_turbo(1) == 0 && rte_power_turbo_status(1) == 0, "turbo off");
	struct rte_power_core_capabilities caps = {0};
	CHECK(rte_power_get_capabilities(1, &caps) == 0 && caps.turbo == 1, "capabilities: turbo");
	CHECK(rte_power_freq_enable_turbo(1) == 0, "turbo on again");
	CHECK(rte_power_get_env() == PM_ENV_ACPI_CPUFREQ, "get_env");
	CHECK(rte_power_exit(1) == 0, "rte_power_exit(1)");
	read_attr(tree, 1, "scaling_governor", gov, sizeof(gov));
	CHECK(strcmp(gov, "schedutil") == 0, "cpu1 governor back to %s", gov);
	CHECK(rte_power_get_freq(1) == ~0u, "get_freq after exit: invalid index, no crash");
	rte_power_unset_env();
	CHECK(rte_power_freq_up != NULL, "unset_env keeps the pointers (ours fail cleanly)");
	CHECK(rte_power_uncore_get_num_pkgs() == 0, "22.11 uncore functions are functions");
	return failed;
}
