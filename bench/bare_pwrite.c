/*
 * bare_pwrite: the floor for a changing frequency call, i.e. what a
 * library could not beat: the same sysfs writes as freq_up/freq_down make,
 * with nothing around them.
 *
 *   bare_pwrite setspeed ITERS HIGH LOW    one file (acpi, cppc): scaling_setspeed
 *   bare_pwrite minmax   ITERS HIGH LOW    two files (intel_pstate): scaling_min_freq
 *                                          and scaling_max_freq, max first when
 *                                          raising, min first when lowering
 *
 * Opens cpu0's files O_RDWR under /sys/devices/system/cpu (bench.sh
 * bind-mounts a fake tree there, as run.sh --bench does), pins itself to
 * CPU 0 (EAL pins lcore 0 there), renders "HIGH\n" and "LOW\n" once, then
 * times ITERS up/down pairs with CLOCK_MONOTONIC, like trace.c's bench:
 * each "call" is one pwrite at offset 0 per file. Prints the same line
 * shape as trace --bench: "... pairs=N: X ns/call".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CPUFREQ "/sys/devices/system/cpu/cpu0/cpufreq/"

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int open_rw(const char *attr)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), CPUFREQ "%s", attr);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "bare_pwrite: open %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return fd;
}

static void put(int fd, const char *buf, size_t len)
{
	if (pwrite(fd, buf, len, 0) != (ssize_t)len) {
		fprintf(stderr, "bare_pwrite: pwrite: %s\n", strerror(errno));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	char hi[16], lo[16];
	size_t hl, ll;
	long iters, i;
	int minmax, fd, fmin, fmax;
	double t0, t1;
	cpu_set_t set;

	if (argc != 5 || (strcmp(argv[1], "setspeed") && strcmp(argv[1], "minmax"))) {
		fprintf(stderr, "usage: bare_pwrite setspeed|minmax ITERS HIGH LOW\n");
		return 2;
	}
	minmax = !strcmp(argv[1], "minmax");
	iters = atol(argv[2]);
	hl = (size_t)snprintf(hi, sizeof(hi), "%lu\n", strtoul(argv[3], NULL, 10));
	ll = (size_t)snprintf(lo, sizeof(lo), "%lu\n", strtoul(argv[4], NULL, 10));
	if (iters <= 0) {
		fprintf(stderr, "bare_pwrite: ITERS must be positive\n");
		return 2;
	}
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		perror("bare_pwrite: sched_setaffinity (not pinned)");

	if (!minmax) {
		fd = open_rw("scaling_setspeed");
		put(fd, lo, ll);
		t0 = now_ns();
		for (i = 0; i < iters; i++) {
			put(fd, hi, hl);        /* freq_up */
			put(fd, lo, ll);        /* freq_down */
		}
		t1 = now_ns();
	} else {
		fmin = open_rw("scaling_min_freq");
		fmax = open_rw("scaling_max_freq");
		put(fmin, lo, ll);
		put(fmax, lo, ll);
		t0 = now_ns();
		for (i = 0; i < iters; i++) {
			put(fmax, hi, hl);      /* freq_up: raising, max first */
			put(fmin, hi, hl);
			put(fmin, lo, ll);      /* freq_down: lowering, min first */
			put(fmax, lo, ll);
		}
		t1 = now_ns();
	}
	printf("bare %s freq_up+freq_down pairs=%ld: %.1f ns/call (%.1f ns/pair)\n",
	       argv[1], iters, (t1 - t0) / (2.0 * iters), (t1 - t0) / iters);
	return 0;
}
