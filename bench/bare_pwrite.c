/*
 * bare_pwrite: the floor for a changing frequency call, i.e. what a
 * library could not beat: the same sysfs writes as freq_up/freq_down make,
 * with nothing around them.
 *
 *   bare_pwrite [--no-eal] setspeed ITERS HIGH LOW
 *        one file (acpi, cppc): scaling_setspeed
 *   bare_pwrite [--no-eal] minmax ITERS HIGH LOW
 *        two files (intel_pstate): scaling_min_freq and scaling_max_freq,
 *        max first when raising, min first when lowering
 *
 * Opens cpu0's files O_RDWR under /sys/devices/system/cpu (bench.sh
 * bind-mounts a fake tree there, as run.sh --bench does), renders "HIGH\n"
 * and "LOW\n" once, then times ITERS up/down pairs with CLOCK_MONOTONIC,
 * like trace.c's bench: each "call" is one pwrite64 system call at offset 0
 * per file. Prints the same line shape as trace --bench:
 * "... pairs=N: X ns/call".
 *
 * By default the process first runs rte_eal_init() with trace.c's EAL
 * arguments, so that the loop runs in the same kind of process as the
 * library under test (EAL's threads, lcore 0 pinned to CPU 0): system calls
 * measurably cost more in an EAL process than in a bare single-threaded
 * one. --no-eal skips that (the process pins itself to CPU 0 and starts
 * one idle thread instead). The write is the bare system call, not glibc's
 * pwrite, which in a multi-threaded process also updates the thread's
 * cancellation state.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>

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
	if (syscall(SYS_pwrite64, fd, buf, len, (off_t)0) != (long)len) {
		fprintf(stderr, "bare_pwrite: pwrite: %s\n", strerror(errno));
		exit(1);
	}
}

static void *idle(void *arg)
{
	pause();
	return arg;
}

static void no_eal_setup(void)
{
	cpu_set_t set;
	pthread_t th;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		perror("bare_pwrite: sched_setaffinity (not pinned)");
	if (pthread_create(&th, NULL, idle, NULL) != 0) {
		fprintf(stderr, "bare_pwrite: pthread_create failed\n");
		exit(1);
	}
}

static void eal_setup(const char *prog)
{
	/* trace.c's default EAL arguments */
	char *args[] = { (char *)prog, "--no-huge", "--no-pci", "--no-shconf",
		"-m", "32", "--no-telemetry", "--lcores=0@0,1@1,2@(0-1)",
		"--log-level=lib.eal:error", NULL };
	int n = (int)(sizeof(args) / sizeof(args[0])) - 1;

	if (rte_eal_init(n, args) < 0) {
		fprintf(stderr, "bare_pwrite: rte_eal_init failed\n");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	char hi[16], lo[16];
	size_t hl, ll;
	long iters, i;
	int minmax, fd, fmin, fmax, eal = 1, a = 1;
	double t0, t1;

	if (argc > 1 && !strcmp(argv[1], "--no-eal")) {
		eal = 0;
		a = 2;
	}
	if (argc - a != 4 || (strcmp(argv[a], "setspeed") && strcmp(argv[a], "minmax"))) {
		fprintf(stderr, "usage: bare_pwrite [--no-eal] setspeed|minmax ITERS HIGH LOW\n");
		return 2;
	}
	minmax = !strcmp(argv[a], "minmax");
	iters = atol(argv[a + 1]);
	hl = (size_t)snprintf(hi, sizeof(hi), "%lu\n", strtoul(argv[a + 2], NULL, 10));
	ll = (size_t)snprintf(lo, sizeof(lo), "%lu\n", strtoul(argv[a + 3], NULL, 10));
	if (iters <= 0) {
		fprintf(stderr, "bare_pwrite: ITERS must be positive\n");
		return 2;
	}
	if (eal)
		eal_setup(argv[0]);
	else
		no_eal_setup();

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
	printf("bare%s %s freq_up+freq_down pairs=%ld: %.1f ns/call (%.1f ns/pair)\n",
	       eal ? "" : " (no EAL)", argv[a], iters, (t1 - t0) / (2.0 * iters),
	       (t1 - t0) / iters);
	if (eal)
		rte_eal_cleanup();
	return 0;
}
