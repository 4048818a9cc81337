/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Stands in for DPDK 24.11+'s own driver libraries (librte_power_acpi.so.25,
 * librte_power_intel_uncore.so.25, ...) as EAL loads them from its plugin
 * directory: constructors register a cpufreq and an uncore ops struct with
 * whatever librte_power.so.N is loaded (the layouts of power_cpufreq.h and
 * power_uncore_ops.h, measured 152 and 128 bytes), one of them incomplete,
 * and the driver code calls the INTERNAL helpers it links against. Built
 * against rte-power's librte_power.so.N, so every reference carries DPDK's
 * version node (INTERNAL).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct rte_power_cpufreq_ops {
	void *next[2];
	char name[24];
	void *cb[14];
};
struct rte_power_uncore_ops {
	void *next[2];
	char name[24];
	void (*cb)(void);
	void *ops[10];
};
_Static_assert(sizeof(struct rte_power_cpufreq_ops) == 152, "24.11 layout");
_Static_assert(sizeof(struct rte_power_uncore_ops) == 128, "24.11 layout");

int rte_power_register_cpufreq_ops(struct rte_power_cpufreq_ops *ops);
int rte_power_register_uncore_ops(struct rte_power_uncore_ops *ops);
int cpufreq_check_scaling_driver(const char *driver);
int power_get_lcore_mapped_cpu_id(uint32_t lcore_id, uint32_t *cpu_id);
extern int rte_power_logtype;

static int dummy(void) { return 0; }
static int called;
static void uncore_cb(void) { called = 1; }

#define F ((void *)(uintptr_t)dummy)
static struct rte_power_cpufreq_ops acpi_ops = {
	.name = "acpi", .cb = {F, F, F, F, F, F, F, F, F, F, F, F, F, F}};
static struct rte_power_cpufreq_ops broken_ops = {.name = "broken", .cb = {F}};
static struct rte_power_uncore_ops uncore_ops = {
	.name = "intel-uncore", .cb = uncore_cb, .ops = {F, F, F, F, F, F, F, F, F, F}};

int fake_driver_results[3] = {-9, -9, -9};

__attribute__((constructor)) static void register_drivers(void)
{
	fake_driver_results[0] = rte_power_register_cpufreq_ops(&acpi_ops);
	fake_driver_results[1] = rte_power_register_cpufreq_ops(&broken_ops);
	fake_driver_results[2] = rte_power_register_uncore_ops(&uncore_ops);
}

/* what a driver's probe calls */
int fake_driver_probe(const char *driver, uint32_t lcore, uint32_t *cpu)
{
	(void)rte_power_logtype;
	if (power_get_lcore_mapped_cpu_id(lcore, cpu) != 0)
		return -1;
	return cpufreq_check_scaling_driver(driver) + 10 * called;
}
