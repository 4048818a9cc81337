/* SPDX-License-Identifier: BSD-3-Clause
 * The uncore API (<rte_power_uncore.h>) end to end on a generated
 * intel_uncore_frequency tree, with the documented return values of
 * include/rte_power_uncore.h: env selection, package/die counts, init,
 * the frequency table, get/set by index, max/min (0 on success, never 1),
 * exit putting back the limits found at init, and -1 / (uint32_t)-1 for
 * dies that do not exist or are not initialised. Every limit the library
 * is expected to write is read back from the files.
 *
 * Usage: uncore_api LAYOUT, the tree below RTE_POWER_SYSFS_CPU_DIR:
 *   package_die  intel_uncore_frequency/package_PP_die_DD/, 2 packages x 2 dies
 *   instances    uncoreNN/ only (TPMI), 2 packages x 2 power domains x 2
 *                fabric clusters: a die is a domain, every cluster written
 *   both         both kinds: the package_PP_die_DD/ ones are the controls,
 *                the uncoreNN/ ones must stay untouched
 *   none         no intel_uncore_frequency/ at all
 * Every domain starts with initial and current limits 0.8 .. 2.4 GHz, so
 * its table has 17 entries. Needs no DPDK header.
 */
#define _POSIX_C_SOURCE 200809L
#include <rte_power_uncore.h>

#include <dirent.h>
#include <limits.h>
#include <stdint.h>

#include "check.h"

#define NPKGS 2u
#define NDIES 2u
#define TOP_KHZ 2400000u
#define BOTTOM_KHZ 800000u
#define STEP_KHZ 100000u
#define NFREQS 17u /* (TOP - BOTTOM) / STEP + 1 */
#define TABLE_CAP 64u /* DPDK's RTE_MAX_UNCORE_FREQS */
#define PATTERN 0xa5a5a5a5u
#define MAX_CTLS 8
#define PATH_LEN 4096

enum layout { PACKAGE_DIE, INSTANCES, BOTH, NONE };

static enum layout layout;

struct ctls {
	int n;
	char dir[MAX_CTLS][PATH_LEN];
};

static const char *uncore_dir(void)
{
	static char d[PATH_LEN];

	snprintf(d, sizeof(d), "%s/intel_uncore_frequency", sysfs_cpu_dir());
	return d;
}

/* A number from DIR/ATTR; -1 if unreadable. */
static long attr_read(const char *dir, const char *attr)
{
	char path[PATH_LEN + 64], buf[64];

	snprintf(path, sizeof(path), "%s/%s", dir, attr);
	if (read_line(path, buf, sizeof(buf)) != 0)
		return -1;
	return strtol(buf, NULL, 10);
}

/* Writes VALUE into DIR/ATTR as the kernel's files take it; 0 or -1. */
static int attr_write(const char *dir, const char *attr, unsigned long value)
{
	char path[PATH_LEN + 64];
	FILE *f;
	int ret;

	snprintf(path, sizeof(path), "%s/%s", dir, attr);
	f = fopen(path, "w");
	if (f == NULL)
		return -1;
	ret = fprintf(f, "%lu\n", value) > 0 ? 0 : -1;
	if (fclose(f) != 0)
		ret = -1;
	return ret;
}

/* The uncoreNN/ directories of (PKG, DOMAIN), by their id files. */
static void instance_dirs(unsigned int pkg, unsigned int domain,
			  struct ctls *c)
{
	DIR *d = opendir(uncore_dir());
	struct dirent *e;

	c->n = 0;
	REQUIRE(d != NULL, "cannot list %s", uncore_dir());
	while ((e = readdir(d)) != NULL) {
		char dir[PATH_LEN];

		if (strncmp(e->d_name, "uncore", 6) != 0)
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", uncore_dir(), e->d_name);
		if (attr_read(dir, "package_id") != (long)pkg ||
		    attr_read(dir, "domain_id") != (long)domain)
			continue;
		REQUIRE(c->n < MAX_CTLS, "too many uncore instances");
		memcpy(c->dir[c->n++], dir, sizeof(dir));
	}
	closedir(d);
}

/* The directories the library must write for (PKG, DIE). */
static void control_dirs(unsigned int pkg, unsigned int die, struct ctls *c)
{
	if (layout == INSTANCES) {
		instance_dirs(pkg, die, c);
		REQUIRE(c->n == 2, "package %u domain %u: %d clusters, want 2",
			pkg, die, c->n);
		return;
	}
	c->n = 1;
	snprintf(c->dir[0], PATH_LEN, "%s/package_%02u_die_%02u", uncore_dir(),
		 pkg, die);
}

/* Every control directory of (PKG, DIE) has these limits (reported with
 * the caller's line). */
#define CHECK_LIMITS(pkg, die, min, max) check_limits(__LINE__, pkg, die, min, max)
static void check_limits(int line, unsigned int pkg, unsigned int die,
			 long min, long max)
{
	struct ctls c;
	int i;

	control_dirs(pkg, die, &c);
	for (i = 0; i < c.n; i++) {
		long got_min = attr_read(c.dir[i], "min_freq_khz");
		long got_max = attr_read(c.dir[i], "max_freq_khz");

		if (got_min != min || got_max != max)
			CHECK_FAIL("limits", "line %d: package %u die %u: %s: "
				   "min %ld max %ld, want %ld %ld", line, pkg, die,
				   c.dir[i], got_min, got_max, min, max);
	}
}

/* Every call on a die that cannot be used fails and writes nothing. */
static void unusable(unsigned int pkg, unsigned int die)
{
	uint32_t buf[TABLE_CAP];

	memset(buf, 0xa5, sizeof(buf));
	CHECK_EQ(rte_power_get_uncore_freq(pkg, die), UINT32_MAX);
	CHECK_EQ(rte_power_set_uncore_freq(pkg, die, 0), -1);
	CHECK_EQ(rte_power_set_uncore_freq(pkg, die, UINT32_MAX), -1);
	CHECK_EQ(rte_power_uncore_freq_max(pkg, die), -1);
	CHECK_EQ(rte_power_uncore_freq_min(pkg, die), -1);
	CHECK_EQ(rte_power_uncore_freqs(pkg, die, buf, TABLE_CAP), -1);
	CHECK_EQ(buf[0], PATTERN);
	CHECK_EQ(rte_power_uncore_freqs(pkg, die, NULL, 0), -1);
	CHECK_EQ(rte_power_uncore_get_num_freqs(pkg, die), -1);
	CHECK_EQ(rte_power_uncore_exit(pkg, die), -1);
}

/* (package, die) pairs that do not exist in any of the trees. */
static const unsigned int bad_domains[][2] = {
	{ NPKGS, 0 }, { 0, NDIES }, { NPKGS - 1, NDIES }, { UINT_MAX, 0 },
	{ 0, UINT_MAX }, { UINT_MAX, UINT_MAX },
};
#define N_BAD (sizeof(bad_domains) / sizeof(bad_domains[0]))

static void env_selection(void)
{
	CHECK_EQ(rte_power_get_uncore_env(), RTE_UNCORE_PM_ENV_NOT_SET);
	/* not provided, not selectable, invalid */
	CHECK_EQ(rte_power_set_uncore_env(RTE_UNCORE_PM_ENV_AMD_HSMP), -1);
	CHECK_EQ(rte_power_set_uncore_env(RTE_UNCORE_PM_ENV_NOT_SET), -1);
	CHECK_EQ(rte_power_set_uncore_env((enum rte_uncore_power_mgmt_env)4), -1);
	CHECK_EQ(rte_power_get_uncore_env(), RTE_UNCORE_PM_ENV_NOT_SET);

	/* auto-detection picks Intel; a second selection is refused */
	CHECK_EQ(rte_power_set_uncore_env(RTE_UNCORE_PM_ENV_AUTO_DETECT), 0);
	CHECK_EQ(rte_power_get_uncore_env(), RTE_UNCORE_PM_ENV_INTEL_UNCORE);
	CHECK_EQ(rte_power_set_uncore_env(RTE_UNCORE_PM_ENV_AUTO_DETECT), -1);
	CHECK_EQ(rte_power_set_uncore_env(RTE_UNCORE_PM_ENV_INTEL_UNCORE), -1);
	CHECK_EQ(rte_power_set_uncore_env(RTE_UNCORE_PM_ENV_AMD_HSMP), -1);
	CHECK_EQ(rte_power_get_uncore_env(), RTE_UNCORE_PM_ENV_INTEL_UNCORE);
	rte_power_unset_uncore_env();
	CHECK_EQ(rte_power_get_uncore_env(), RTE_UNCORE_PM_ENV_NOT_SET);
	rte_power_unset_uncore_env(); /* harmless without an env */
	CHECK_EQ(rte_power_get_uncore_env(), RTE_UNCORE_PM_ENV_NOT_SET);

	CHECK_EQ(rte_power_set_uncore_env(RTE_UNCORE_PM_ENV_INTEL_UNCORE), 0);
	CHECK_EQ(rte_power_get_uncore_env(), RTE_UNCORE_PM_ENV_INTEL_UNCORE);
	CHECK_EQ(rte_power_set_uncore_env(RTE_UNCORE_PM_ENV_AUTO_DETECT), -1);
	rte_power_unset_uncore_env();
	CHECK_EQ(rte_power_get_uncore_env(), RTE_UNCORE_PM_ENV_NOT_SET);
}

static void no_driver(void)
{
	size_t i;

	CHECK_EQ(rte_power_uncore_get_num_pkgs(), 0);
	CHECK_EQ(rte_power_uncore_get_num_dies(0), 0);
	CHECK_EQ(rte_power_uncore_init(0, 0), -1);
	/* a failed init selects no env */
	CHECK_EQ(rte_power_get_uncore_env(), RTE_UNCORE_PM_ENV_NOT_SET);
	unusable(0, 0);
	for (i = 0; i < N_BAD; i++)
		CHECK_EQ(rte_power_uncore_init(bad_domains[i][0],
					       bad_domains[i][1]), -1);
}

static void counts(void)
{
	unsigned int p;

	CHECK_EQ(rte_power_uncore_get_num_pkgs(), NPKGS);
	for (p = 0; p < NPKGS; p++)
		CHECK_EQ(rte_power_uncore_get_num_dies(p), NDIES);
	CHECK_EQ(rte_power_uncore_get_num_dies(NPKGS), 0);
	CHECK_EQ(rte_power_uncore_get_num_dies(UINT_MAX), 0);
}

static void invalid_domains(void)
{
	size_t i;
	unsigned int p, d;

	for (i = 0; i < N_BAD; i++) {
		p = bad_domains[i][0];
		d = bad_domains[i][1];
		CHECK_EQ(rte_power_uncore_init(p, d), -1);
		unusable(p, d);
	}
	/* existing dies before init */
	for (p = 0; p < NPKGS; p++)
		for (d = 0; d < NDIES; d++)
			unusable(p, d);
}

/* Package 0 die 0: the whole life of a die. */
static void die_lifecycle(void)
{
	uint32_t buf[TABLE_CAP];
	uint32_t i;
	int n;

	/* init selects the Intel env when none is set */
	CHECK_EQ(rte_power_get_uncore_env(), RTE_UNCORE_PM_ENV_NOT_SET);
	REQUIRE(rte_power_uncore_init(0, 0) == 0, "init(0, 0)");
	CHECK_EQ(rte_power_get_uncore_env(), RTE_UNCORE_PM_ENV_INTEL_UNCORE);
	CHECK_LIMITS(0, 0, BOTTOM_KHZ, TOP_KHZ); /* init writes nothing */

	/* the table: NULL, too short, exact, roomy */
	n = rte_power_uncore_get_num_freqs(0, 0);
	REQUIRE(n == (int)NFREQS, "num_freqs(0, 0) = %d", n);
	CHECK_EQ(rte_power_uncore_freqs(0, 0, NULL, TABLE_CAP), 0);
	CHECK_EQ(rte_power_uncore_freqs(0, 0, buf, 0), 0);
	memset(buf, 0xa5, sizeof(buf));
	CHECK_EQ(rte_power_uncore_freqs(0, 0, buf, NFREQS - 1), 0);
	CHECK_EQ(buf[0], PATTERN);
	CHECK_EQ(rte_power_uncore_freqs(0, 0, buf, NFREQS), NFREQS);
	CHECK_EQ(buf[NFREQS], PATTERN);
	for (i = 0; i < NFREQS; i++)
		CHECK_EQ(buf[i], TOP_KHZ - i * STEP_KHZ);
	CHECK_EQ(buf[NFREQS - 1], BOTTOM_KHZ);
	memset(buf, 0xa5, sizeof(buf));
	CHECK_EQ(rte_power_uncore_freqs(0, 0, buf, TABLE_CAP), NFREQS);
	CHECK_EQ(buf[0], TOP_KHZ);
	CHECK_EQ(buf[NFREQS], PATTERN);

	/* the die was pinned to nothing lower than its top: index 0 */
	CHECK_EQ(rte_power_get_uncore_freq(0, 0), 0);

	/* by index: min = max = the entry; 0 also when nothing changes */
	CHECK_EQ(rte_power_set_uncore_freq(0, 0, NFREQS - 1), 0);
	CHECK_LIMITS(0, 0, BOTTOM_KHZ, BOTTOM_KHZ);
	CHECK_EQ(rte_power_get_uncore_freq(0, 0), NFREQS - 1);
	CHECK_EQ(rte_power_set_uncore_freq(0, 0, NFREQS - 1), 0);
	CHECK_EQ(rte_power_set_uncore_freq(0, 0, 5), 0);
	CHECK_LIMITS(0, 0, TOP_KHZ - 5 * STEP_KHZ, TOP_KHZ - 5 * STEP_KHZ);
	CHECK_EQ(rte_power_get_uncore_freq(0, 0), 5);

	/* out of range: -1, nothing written, index kept */
	CHECK_EQ(rte_power_set_uncore_freq(0, 0, NFREQS), -1);
	CHECK_EQ(rte_power_set_uncore_freq(0, 0, TABLE_CAP), -1);
	CHECK_EQ(rte_power_set_uncore_freq(0, 0, UINT32_MAX), -1);
	CHECK_EQ(rte_power_get_uncore_freq(0, 0), 5);
	CHECK_LIMITS(0, 0, TOP_KHZ - 5 * STEP_KHZ, TOP_KHZ - 5 * STEP_KHZ);

	/* max and min: 0, never 1, also when already there */
	CHECK_EQ(rte_power_uncore_freq_max(0, 0), 0);
	CHECK_LIMITS(0, 0, TOP_KHZ, TOP_KHZ);
	CHECK_EQ(rte_power_get_uncore_freq(0, 0), 0);
	CHECK_EQ(rte_power_uncore_freq_max(0, 0), 0);
	CHECK_EQ(rte_power_uncore_freq_min(0, 0), 0);
	CHECK_LIMITS(0, 0, BOTTOM_KHZ, BOTTOM_KHZ);
	CHECK_EQ(rte_power_get_uncore_freq(0, 0), NFREQS - 1);
	CHECK_EQ(rte_power_uncore_freq_min(0, 0), 0);
	CHECK_EQ(rte_power_set_uncore_freq(0, 0, 3), 0);

	/* a second init succeeds and keeps the state and the saved limits */
	CHECK_EQ(rte_power_uncore_init(0, 0), 0);
	CHECK_EQ(rte_power_get_uncore_freq(0, 0), 3);
	CHECK_LIMITS(0, 0, TOP_KHZ - 3 * STEP_KHZ, TOP_KHZ - 3 * STEP_KHZ);

	/* the other dies saw none of it */
	CHECK_LIMITS(0, 1, BOTTOM_KHZ, TOP_KHZ);
	CHECK_LIMITS(1, 0, BOTTOM_KHZ, TOP_KHZ);

	/* exit puts back what init found; then the die is unusable again */
	CHECK_EQ(rte_power_uncore_exit(0, 0), 0);
	CHECK_LIMITS(0, 0, BOTTOM_KHZ, TOP_KHZ);
	unusable(0, 0);
	CHECK_LIMITS(0, 0, BOTTOM_KHZ, TOP_KHZ);
	/* the env stays selected after exit */
	CHECK_EQ(rte_power_get_uncore_env(), RTE_UNCORE_PM_ENV_INTEL_UNCORE);
}

/* Package 0 die 1, limited to 1.0 .. 2.0 GHz before init: the table comes
 * from the initial limits, the index from the current max, and exit puts
 * the 1.0 .. 2.0 GHz back. */
static void restores_found_limits(void)
{
	struct ctls c;
	int i;

	control_dirs(0, 1, &c);
	for (i = 0; i < c.n; i++) {
		REQUIRE(attr_write(c.dir[i], "min_freq_khz", 1000000) == 0,
			"write %s/min_freq_khz", c.dir[i]);
		REQUIRE(attr_write(c.dir[i], "max_freq_khz", 2000000) == 0,
			"write %s/max_freq_khz", c.dir[i]);
	}
	REQUIRE(rte_power_uncore_init(0, 1) == 0, "init(0, 1)");
	CHECK_EQ(rte_power_uncore_get_num_freqs(0, 1), NFREQS);
	CHECK_EQ(rte_power_get_uncore_freq(0, 1), (TOP_KHZ - 2000000) / STEP_KHZ);
	CHECK_LIMITS(0, 1, 1000000, 2000000);

	CHECK_EQ(rte_power_uncore_freq_min(0, 1), 0);
	CHECK_LIMITS(0, 1, BOTTOM_KHZ, BOTTOM_KHZ);
	CHECK_EQ(rte_power_uncore_freq_max(0, 1), 0);
	CHECK_LIMITS(0, 1, TOP_KHZ, TOP_KHZ);
	CHECK_EQ(rte_power_set_uncore_freq(0, 1, 10), 0);
	CHECK_LIMITS(0, 1, TOP_KHZ - 10 * STEP_KHZ, TOP_KHZ - 10 * STEP_KHZ);

	CHECK_EQ(rte_power_uncore_exit(0, 1), 0);
	CHECK_LIMITS(0, 1, 1000000, 2000000);
	CHECK_EQ(rte_power_uncore_exit(0, 1), -1);
	unusable(0, 1);
}

/* The last package and die: reachable, and independent of the others. */
static void last_die(void)
{
	const unsigned int p = NPKGS - 1, d = NDIES - 1;

	REQUIRE(rte_power_uncore_init(p, d) == 0, "init(%u, %u)", p, d);
	CHECK_EQ(rte_power_set_uncore_freq(p, d, NFREQS - 2), 0);
	CHECK_LIMITS(p, d, BOTTOM_KHZ + STEP_KHZ, BOTTOM_KHZ + STEP_KHZ);
	CHECK_LIMITS(p, 0, BOTTOM_KHZ, TOP_KHZ);
	CHECK_LIMITS(0, d, 1000000, 2000000); /* as restores_found_limits left it */
	CHECK_EQ(rte_power_get_uncore_freq(p, d), NFREQS - 2);
	CHECK_EQ(rte_power_get_uncore_freq(0, 0), UINT32_MAX);

	/* with package_PP_die_DD/ present, uncoreNN/ is not a control */
	if (layout == BOTH) {
		unsigned int pp, dd;
		struct ctls c;
		int i;

		for (pp = 0; pp < NPKGS; pp++)
			for (dd = 0; dd < NDIES; dd++) {
				instance_dirs(pp, dd, &c);
				CHECK(c.n == 1, "package %u domain %u: %d instances",
				      pp, dd, c.n);
				for (i = 0; i < c.n; i++) {
					CHECK_EQ(attr_read(c.dir[i], "min_freq_khz"), BOTTOM_KHZ);
					CHECK_EQ(attr_read(c.dir[i], "max_freq_khz"), TOP_KHZ);
				}
			}
	}

	CHECK_EQ(rte_power_uncore_exit(p, d), 0);
	CHECK_LIMITS(p, d, BOTTOM_KHZ, TOP_KHZ);
	unusable(p, d);
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "package_die", "instances", "both",
					     "none" };
	size_t i;

	REQUIRE(argc == 2, "usage: uncore_api package_die|instances|both|none");
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(argv[1], names[i]) == 0)
			break;
	REQUIRE(i < sizeof(names) / sizeof(names[0]), "unknown layout %s",
		argv[1]);
	layout = (enum layout)i;

	env_selection();
	if (layout == NONE) {
		no_driver();
		return check_done("uncore_api");
	}
	counts();
	invalid_domains();
	die_lifecycle();
	restores_found_limits();
	last_die();
	invalid_domains(); /* nothing left initialised */
	rte_power_unset_uncore_env();
	return check_done("uncore_api");
}
