/* SPDX-License-Identifier: BSD-3-Clause
 *
 * busyloop: one lcore polls a simulated receive queue and scales its CPU
 * frequency with the load, the way a power-aware packet loop does without
 * any help from the kernel governor:
 *
 *   - the load follows a repeating pattern of phases ("LOAD%:MS,..."): in a
 *     phase at L% every poll returns about L% of a full burst of packets;
 *   - every period (default 20 ms) the loop looks at how full its polls
 *     were: mostly full bursts means the queue is backing up, so it calls
 *     rte_power_freq_up(); mostly empty polls mean the core is idling, so it
 *     calls rte_power_freq_down(); anything in between keeps the frequency;
 *   - after many empty polls in a row it naps briefly instead of spinning.
 *
 * It prints every frequency change (table index and kHz from
 * rte_power_freqs()), then a summary: changes, and the time spent at each
 * frequency. rte_power_exit() at the end gives the CPU its governor back.
 *
 * Build against an installed rte-power (see Makefile in this directory):
 *   cc -std=c11 -Wall -Wextra -Werror busyloop.c -o busyloop \
 *      $(pkg-config --cflags --libs rte_power)
 * Try it on a generated sysfs tree (no root, no real cpufreq needed):
 *   RTE_POWER_SYSFS_CPU_DIR=/tmp/fake-cpu ./busyloop -t 3
 */
#define _POSIX_C_SOURCE 200809L

#include <rte_power_cpufreq.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BURST 32          /* packets in a full poll */
#define MAX_PHASES 32
#define IDLE_POLLS_BEFORE_NAP 300
#define NAP_NS 100000L    /* 0.1 ms */
#define BUSY_SHARE 0.75   /* queue fill at or above: step up */
#define IDLE_SHARE 0.25   /* queue fill at or below: step down */

struct phase {
	unsigned int load; /* percent of a full burst per poll */
	unsigned int ms;
};

struct options {
	unsigned int lcore;
	double seconds;
	unsigned int period_ms;
	struct phase phases[MAX_PHASES];
	unsigned int nphases;
	int turbo;
	int wait_before_exit;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *env_name(enum power_management_env env)
{
	switch (env) {
	case PM_ENV_ACPI_CPUFREQ: return "acpi";
	case PM_ENV_KVM_VM: return "kvm-vm";
	case PM_ENV_PSTATE_CPUFREQ: return "intel-pstate";
	case PM_ENV_CPPC_CPUFREQ: return "cppc";
	case PM_ENV_AMD_PSTATE_CPUFREQ: return "amd-pstate";
	case PM_ENV_NOT_SET: break;
	}
	return "not set";
}

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [-l LCORE] [-t SECONDS] [-p PERIOD_MS] [-s PATTERN] [-T] [-w]\n"
		"  -l LCORE     lcore to drive (default 0)\n"
		"  -t SECONDS   how long to run (default 3)\n"
		"  -p MS        decision period (default 20)\n"
		"  -s PATTERN   load phases LOAD%%:MS,... repeated\n"
		"               (default 0:300,100:500,50:200,0:500)\n"
		"  -T           enable turbo first (if the core has it)\n"
		"  -w           before rte_power_exit, wait for a line on stdin\n"
		"The sysfs tree is RTE_POWER_SYSFS_CPU_DIR (default the real one).\n",
		prog);
}

static int parse_uint(const char *s, unsigned long max, unsigned int *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > max || *s == '-')
		return -1;
	*out = (unsigned int)v;
	return 0;
}

static int parse_pattern(const char *s, struct options *o)
{
	char buf[512];
	char *save = NULL;
	char *tok;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	o->nphases = 0;
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		struct phase *p;

		if (colon == NULL || o->nphases == MAX_PHASES)
			return -1;
		*colon = '\0';
		p = &o->phases[o->nphases];
		if (parse_uint(tok, 100, &p->load) < 0 ||
		    parse_uint(colon + 1, 3600000, &p->ms) < 0 || p->ms == 0)
			return -1;
		o->nphases++;
	}
	return o->nphases > 0 ? 0 : -1;
}

static int parse_args(int argc, char **argv, struct options *o)
{
	int c;
	char *end;

	*o = (struct options){ .lcore = 0, .seconds = 3.0, .period_ms = 20 };
	if (parse_pattern("0:300,100:500,50:200,0:500", o) < 0)
		return -1;
	while ((c = getopt(argc, argv, "l:t:p:s:Twh")) != -1) {
		switch (c) {
		case 'l':
			if (parse_uint(optarg, RTE_POWER_MAX_LCORE - 1, &o->lcore) < 0)
				return -1;
			break;
		case 't':
			errno = 0;
			o->seconds = strtod(optarg, &end);
			if (errno != 0 || *end != '\0' || !(o->seconds > 0.0))
				return -1;
			break;
		case 'p':
			if (parse_uint(optarg, 60000, &o->period_ms) < 0 || o->period_ms == 0)
				return -1;
			break;
		case 's':
			if (parse_pattern(optarg, o) < 0)
				return -1;
			break;
		case 'T':
			o->turbo = 1;
			break;
		case 'w':
			o->wait_before_exit = 1;
			break;
		case 'h':
			usage(stdout, argv[0]);
			exit(0);
		default:
			return -1;
		}
	}
	return optind == argc ? 0 : -1;
}

/* The load of the phase that covers time t (seconds since the start). */
static unsigned int load_at(const struct options *o, double t)
{
	double cycle = 0.0, pos;
	unsigned int i;

	for (i = 0; i < o->nphases; i++)
		cycle += o->phases[i].ms / 1000.0;
	pos = t - cycle * (double)(long long)(t / cycle);
	for (i = 0; i < o->nphases; i++) {
		pos -= o->phases[i].ms / 1000.0;
		if (pos < 0.0)
			return o->phases[i].load;
	}
	return o->phases[o->nphases - 1].load;
}

/* Simulated receive: about load% of a full burst, spread evenly over polls. */
static unsigned int rx_burst(unsigned int load, unsigned int *carry)
{
	unsigned int n;

	*carry += load * BURST;
	n = *carry / 100;
	*carry %= 100;
	return n;
}

/* "Processes" the packets: a little real work per packet. */
static uint64_t process(unsigned int n, uint64_t acc)
{
	unsigned int i, k;

	for (i = 0; i < n; i++)
		for (k = 0; k < 64; k++)
			acc = acc * 6364136223846793005ULL + 1442695040888963407ULL;
	return acc;
}

int main(int argc, char **argv)
{
	struct options o;
	uint32_t freqs[RTE_POWER_MAX_FREQS];
	double at_freq[RTE_POWER_MAX_FREQS] = { 0 };
	struct rte_power_core_capabilities caps;
	uint32_t n, idx, i;
	unsigned int ups = 0, downs = 0, held = 0, carry = 0;
	unsigned long polls = 0, pkts = 0, period_polls = 0, period_pkts = 0;
	unsigned long idle_run = 0;
	int errors = 0, rc;
	double start, t, last, period_end, total;
	volatile uint64_t sink = 0;
	uint64_t acc = 1;

	if (parse_args(argc, argv, &o) < 0) {
		usage(stderr, argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* end the run, not the process, so that rte_power_exit() still runs */
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
#ifdef SIGPIPE
	signal(SIGPIPE, SIG_IGN);
#endif

	if (rte_power_init(o.lcore) != 0) {
		fprintf(stderr, "busyloop: rte_power_init(%u) failed (no usable cpufreq driver? "
			"set RTE_POWER_SYSFS_CPU_DIR for a generated tree)\n", o.lcore);
		return 1;
	}
	n = rte_power_freqs(o.lcore, freqs, RTE_POWER_MAX_FREQS);
	idx = rte_power_get_freq(o.lcore);
	if (n == 0 || idx >= n) {
		fprintf(stderr, "busyloop: lcore %u: no frequency table (n=%u, index=%u)\n",
			o.lcore, n, idx);
		rte_power_exit(o.lcore);
		return 1;
	}
	if (rte_power_get_capabilities(o.lcore, &caps) != 0)
		caps.capabilities = 0;
	printf("busyloop: lcore %u, env %s, %u frequencies %u..%u kHz, "
	       "turbo %s, priority core %s\n",
	       o.lcore, env_name(rte_power_get_env()), n, freqs[0], freqs[n - 1],
	       caps.turbo ? "available" : "no", caps.priority ? "yes" : "no");
	if (o.turbo && caps.turbo) {
		if (rte_power_freq_enable_turbo(o.lcore) < 0) {
			fprintf(stderr, "busyloop: enabling turbo failed\n");
			errors++;
		}
		idx = rte_power_get_freq(o.lcore);
	}
	printf("busyloop: start at index %u (%u kHz), turbo %s; %.1f s, period %u ms, pattern",
	       idx, freqs[idx], rte_power_turbo_status(o.lcore) == 1 ? "on" : "off",
	       o.seconds, o.period_ms);
	for (i = 0; i < o.nphases; i++)
		printf("%s%u%%:%ums", i ? "," : " ", o.phases[i].load, o.phases[i].ms);
	printf("\n");

	start = now_s();
	last = start;
	period_end = o.period_ms / 1000.0;
	for (;;) {
		unsigned int got;

		t = now_s() - start;
		if (t >= o.seconds || stop)
			break;
		got = rx_burst(load_at(&o, t), &carry);
		polls++;
		period_polls++;
		pkts += got;
		period_pkts += got;
		acc = process(got, acc);
		if (got == 0 && ++idle_run >= IDLE_POLLS_BEFORE_NAP) {
			struct timespec nap = { 0, NAP_NS };

			nanosleep(&nap, NULL);
		} else if (got != 0) {
			idle_run = 0;
		}
		if (t < period_end)
			continue;

		/* one decision per period, from how full the polls were */
		double fill = (double)period_pkts / ((double)period_polls * BURST);
		const char *dir = NULL;

		if (fill >= BUSY_SHARE) {
			rc = rte_power_freq_up(o.lcore);
			dir = "up";
		} else if (fill <= IDLE_SHARE) {
			rc = rte_power_freq_down(o.lcore);
			dir = "down";
		} else {
			rc = 0;
		}
		if (rc < 0) {
			fprintf(stderr, "busyloop: rte_power_freq_%s(%u) failed: %d\n",
				dir, o.lcore, rc);
			errors++;
		} else if (rc == 1) {
			uint32_t next = rte_power_get_freq(o.lcore);
			double now = now_s();

			if (next >= n) {
				fprintf(stderr, "busyloop: bad index %u after a change\n", next);
				errors++;
				break;
			}
			at_freq[idx] += now - last;
			last = now;
			printf("%8.3f s  %-4s  index %2u -> %2u  %8u kHz  (queue fill %3.0f%%)\n",
			       now - start, dir, idx, next, freqs[next], fill * 100.0);
			idx = next;
			if (dir[0] == 'u')
				ups++;
			else
				downs++;
		} else {
			held++;
		}
		period_polls = 0;
		period_pkts = 0;
		while (period_end <= t)
			period_end += o.period_ms / 1000.0;
	}
	t = now_s();
	at_freq[idx] += t - last;
	total = t - start;
	sink = acc;
	(void)sink;

	printf("summary: %.3f s, %lu polls, %lu packets, %u up, %u down, "
	       "%u periods without a change, %d errors\n",
	       total, polls, pkts, ups, downs, held, errors);
	printf("time at each frequency:\n");
	for (i = 0; i < n; i++)
		if (at_freq[i] > 0.0)
			printf("  index %2u  %8u kHz  %7.3f s  %5.1f%%\n", i, freqs[i],
			       at_freq[i], 100.0 * at_freq[i] / total);

	if (o.wait_before_exit) {
		char line[16];

		printf("busyloop: holding lcore %u at index %u (%u kHz); "
		       "press Enter to exit\n", o.lcore, idx, freqs[idx]);
		if (fgets(line, sizeof(line), stdin) == NULL && ferror(stdin))
			errors++;
	}
	if (rte_power_exit(o.lcore) != 0) {
		fprintf(stderr, "busyloop: rte_power_exit(%u) failed\n", o.lcore);
		return 1;
	}
	printf("busyloop: lcore %u released, governor restored\n", o.lcore);
	return errors ? 1 : 0;
}
