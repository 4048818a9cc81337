/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * bench-kvm: rte_power_freq_up() in the KVM guest env against a bare
 * write() of the same 464 bytes to the same descriptor, for whichever
 * librte_power it is linked with (DPDK's 22.11 with its function-pointer
 * API, or ours with real functions: the call syntax is the same). Run by
 * scripts/bench-guest.sh inside a private mount namespace where
 * /dev/virtio-ports/virtio.serial.port.poweragent.0 is a FIFO (DPDK's
 * path cannot be changed). The FIFO is emptied between timed bursts; the
 * median burst per call is printed.
 *
 *   bench-kvm NAME [REQUESTS]
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_power.h>

#define PORT "/dev/virtio-ports/virtio.serial.port.poweragent.0"
#define BURST 1000

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* the library's descriptor for PORT: not `mine` */
static int library_fd(int mine)
{
	char link[PATH_MAX], path[64];
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int found = -1;
	while (d && (e = readdir(d))) {
		int fd = atoi(e->d_name);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0 || fd == mine)
			continue;
		link[n] = 0;
		if (strcmp(link, PORT) == 0)
			found = fd;
	}
	if (d)
		closedir(d);
	return found;
}

static void empty(int rd)
{
	static char buf[1 << 16];
	while (read(rd, buf, sizeof(buf)) > 0)
		;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "?";
	long total = argc > 2 ? atol(argv[2]) : 200000;
	long rounds = total / BURST;
	static const unsigned char pkt[464] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1};
	double *lib = calloc((size_t)rounds, sizeof(double));
	double *bare = calloc((size_t)rounds, sizeof(double));
	long failed = 0;

	int rd = open(PORT, O_RDONLY | O_NONBLOCK);
	if (rd < 0 || !lib || !bare) {
		perror("bench-kvm: " PORT);
		return 1;
	}
	fcntl(rd, F_SETPIPE_SZ, 1 << 20);
	if (rte_power_set_env(PM_ENV_KVM_VM) != 0 || rte_power_init(0) != 0) {
		fprintf(stderr, "bench-kvm: %s: init failed\n", name);
		return 1;
	}
	int fd = library_fd(rd);
	if (fd < 0) {
		fprintf(stderr, "bench-kvm: the library's descriptor not found\n");
		return 1;
	}
	for (long r = 0; r < rounds; r++) {
		for (int k = 0; k < 2; k++) {
			int which = (int)((r + k) % 2);
			empty(rd);
			double t = now_ns();
			for (int i = 0; i < BURST; i++) {
				if (which == 0) {
					if (rte_power_freq_up(0) != 1)
						failed++;
				} else if (write(fd, pkt, sizeof(pkt)) != (ssize_t)sizeof(pkt)) {
					failed++;
				}
			}
			(which == 0 ? lib : bare)[r] = (now_ns() - t) / BURST;
		}
	}
	empty(rd);
	qsort(lib, (size_t)rounds, sizeof(double), cmp);
	qsort(bare, (size_t)rounds, sizeof(double), cmp);
	printf("bench-kvm %-6s: rte_power_freq_up %7.1f ns, bare write() %7.1f ns, ratio %.3f "
	       "(%ld requests each, FIFO, %ld failed)\n",
	       name, lib[rounds / 2], bare[rounds / 2], lib[rounds / 2] / bare[rounds / 2],
	       rounds * BURST, failed);
	rte_power_exit(0);
	return failed != 0;
}
