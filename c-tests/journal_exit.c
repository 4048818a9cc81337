/* SPDX-License-Identifier: BSD-3-Clause
 * How a process that uses the library ends, for the restore-journal tests:
 * it initialises the lcores given, moves each to its lowest frequency,
 * then ends one way or another.
 *
 * Usage: journal_exit MODE LCORE...
 *   kill    ends with SIGKILL: nothing runs, the journal records stay
 *   return  returns from main without rte_power_exit: the library's exit
 *           hook restores the lcores
 *   exit    calls exit(0) without rte_power_exit (same hook)
 *   clean   calls rte_power_exit for each lcore, then returns
 *   uncore  inits uncore die 0 of package 0 (LCORE ignored), sets its
 *           minimum, returns from main without rte_power_uncore_exit:
 *           the exit hook restores the die
 *   fork    forks a child that calls exit(0) (its exit hooks run in the
 *           child), waits for it, then ends with SIGKILL: the child must
 *           neither restore the parent's CPUs nor remove its records
 * Exit status: 0, or 3 when an init failed (prints "init N: -1"), 1 for
 * any other failed check. Needs no DPDK header.
 */
#define _POSIX_C_SOURCE 200809L
#include <rte_power_cpufreq.h>
#include <rte_power_uncore.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

int main(int argc, char **argv)
{
	REQUIRE(argc >= 3, "usage: journal_exit kill|fork|uncore|return|exit|clean LCORE...");
	const char *mode = argv[1];
	int inited = 0;
	if (strcmp(mode, "uncore") == 0) {
		REQUIRE(rte_power_uncore_init(0, 0) == 0, "uncore init");
		CHECK(rte_power_uncore_freq_min(0, 0) >= 0, "uncore min");
		printf(check_failures ? "FAILED\n" : "PASS\n");
		return check_failures ? 1 : 0;
	}
	for (int i = 2; i < argc; i++) {
		unsigned int lcore = (unsigned int)strtoul(argv[i], NULL, 10);
		int r = rte_power_init(lcore);
		if (r != 0) {
			printf("init %u: %d\n", lcore, r);
			fflush(stdout);
			continue;
		}
		inited++;
		CHECK(rte_power_freq_min(lcore) >= 0, "freq_min(%u)", lcore);
	}
	if (inited < argc - 2)
		return 3;
	fflush(stdout);
	if (strcmp(mode, "kill") == 0) {
		raise(SIGKILL);
	} else if (strcmp(mode, "fork") == 0) {
		pid_t child = fork();
		REQUIRE(child >= 0, "fork");
		if (child == 0)
			exit(0);
		int status = 0;
		REQUIRE(waitpid(child, &status, 0) == child, "waitpid");
		raise(SIGKILL);
	} else if (strcmp(mode, "exit") == 0) {
		exit(check_failures ? 1 : 0);
	} else if (strcmp(mode, "clean") == 0) {
		for (int i = 2; i < argc; i++) {
			unsigned int lcore = (unsigned int)strtoul(argv[i], NULL, 10);
			CHECK(rte_power_exit(lcore) == 0, "exit(%u)", lcore);
		}
	} else {
		REQUIRE(strcmp(mode, "return") == 0, "unknown mode %s", mode);
	}
	printf(check_failures ? "FAILED\n" : "PASS\n");
	return check_failures ? 1 : 0;
}
