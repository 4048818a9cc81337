/* SPDX-License-Identifier: BSD-3-Clause
 * Tiny check helpers shared by the C test programs of c-tests/.
 *
 * Every program is a standalone C11 (and C++17) program: it prints "PASS"
 * and exits 0, or prints one line per failed check on stderr and exits 1.
 * CHECK() records a failure and goes on, so one run shows every mismatch;
 * REQUIRE() stops the program (for checks later steps depend on).
 */
#ifndef RTE_POWER_CTESTS_CHECK_H
#define RTE_POWER_CTESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;

/* Records one failure: "file:line: FAILED what: message". */
#define CHECK_FAIL(what, ...)                                                \
	do {                                                                 \
		fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__,   \
			what);                                               \
		fprintf(stderr, __VA_ARGS__);                                \
		fputc('\n', stderr);                                         \
		check_failures++;                                            \
	} while (0)

/* Each macro evaluates its arguments exactly once. */
#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (!(cond))                                                 \
			CHECK_FAIL(#cond, __VA_ARGS__);                      \
	} while (0)

#define REQUIRE(cond, ...)                                                   \
	do {                                                                 \
		if (!(cond)) {                                               \
			CHECK_FAIL(#cond, __VA_ARGS__);                      \
			fprintf(stderr, "stopping after %d failure(s)\n",   \
				check_failures);                             \
			exit(1);                                             \
		}                                                            \
	} while (0)

/* Integer equality with both values in the message. */
#define CHECK_EQ(got, want)                                                  \
	do {                                                                 \
		long long got_ = (long long)(got);                           \
		long long want_ = (long long)(want);                         \
		if (got_ != want_)                                           \
			CHECK_FAIL(#got " == " #want, "got %lld, want %lld", \
				   got_, want_);                             \
	} while (0)

/* Ends main(): PASS and 0, or a summary and 1. */
static inline int check_done(const char *name)
{
	if (check_failures != 0) {
		fprintf(stderr, "%s: %d check(s) failed\n", name,
			check_failures);
		return 1;
	}
	printf("PASS\n");
	return 0;
}

/* First line of a text file, without the newline and trailing blanks, into
 * buf; 0, or -1 if the file cannot be read. */
static inline int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return -1;
	if (fgets(buf, (int)len, f) == NULL) {
		fclose(f);
		return -1;
	}
	fclose(f);
	n = strcspn(buf, "\n");
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	return 0;
}

/* The sysfs tree the library uses: RTE_POWER_SYSFS_CPU_DIR or the real one. */
static inline const char *sysfs_cpu_dir(void)
{
	const char *d = getenv("RTE_POWER_SYSFS_CPU_DIR");

	return (d != NULL && d[0] != '\0') ? d : "/sys/devices/system/cpu";
}

/* cpuN/cpufreq/ATTR of the tree into buf (see read_line). */
static inline int read_cpufreq(unsigned int cpu, const char *attr, char *buf,
			       size_t len)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/cpu%u/cpufreq/%s", sysfs_cpu_dir(),
		 cpu, attr);
	return read_line(path, buf, len);
}

/* cpuN/cpufreq/ATTR as a number; 0 if unreadable. */
static inline unsigned long cpufreq_ul(unsigned int cpu, const char *attr)
{
	char buf[256];

	if (read_cpufreq(cpu, attr, buf, sizeof(buf)) != 0)
		return 0;
	return strtoul(buf, NULL, 10);
}

#endif /* RTE_POWER_CTESTS_CHECK_H */
