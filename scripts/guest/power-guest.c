/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * power-guest: a DPDK-style application inside the e2e test VM, linked
 * statically against librte_power.a. It initialises lcores 0 and 1 in the
 * KVM env (the ports are found through /sys/class/virtio-ports: the VM
 * has no udev, so no /dev/virtio-ports links), asks for up, down, min,
 * max, enable and disable turbo on each, and prints every return value.
 * Without confirmed mode it then reads the host's six answers per lcore
 * with rte_power_guest_channel_receive_msg and prints them; with
 * RTE_POWER_GUEST_CONFIRM_MS set the library reads them itself and the
 * return values tell ACK (1) from NACK (-1).
 *
 * "power-guest wait L" initialises lcore L alone, for the port whose host
 * connects late or never: it prints init's return, whether the wait stayed
 * within RTE_POWER_GUEST_CONNECT_TIMEOUT_MS, and whether it spent the wait
 * sleeping (a virtio port without a host reports POLLHUP, never POLLOUT:
 * a wait built on poll alone would spin); on success one freq_up.
 *
 * "power-guest forge L OTHER_VM OTHER_PCPU NVCPUS" (for the port served by
 * the real vm_power_mgr, scripts/guest/monitor-e2e.py) sends, with
 * rte_power_guest_channel_send_msg on lcore L, SCALE_MIN requests: one for
 * vCPU L naming another VM (the host ignores the name: the request is this
 * VM's), and three a host must refuse: one for a host CPU (core_type
 * PHYSICAL) of another VM, one for vCPU 2^32 + L (L once truncated to 32
 * bits) and one for vCPU NVCPUS (out of range); it prints each answer.
 *
 * Every line starts with "GUEST " for scripts/guest/host.py to check.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_power.h>

struct op {
	const char *name;
	int (*fn)(unsigned int lcore_id);
};

static double seconds(clockid_t clock)
{
	struct timespec t;
	clock_gettime(clock, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int wait_for_host(unsigned int l)
{
	const char *tmo = getenv("RTE_POWER_GUEST_CONNECT_TIMEOUT_MS");
	double limit = tmo ? atof(tmo) / 1000 : 2.0;
	double t0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
	int r = rte_power_set_env(PM_ENV_KVM_VM);
	r = r ? r : rte_power_init(l);
	double took = seconds(CLOCK_MONOTONIC) - t0;
	double cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
	printf("GUEST wait lcore=%u ret=%d\n", l, r);
	printf("GUEST-INFO wait lcore=%u took %.3f s, cpu %.3f s\n", l, took, cpu);
	printf("GUEST wait lcore=%u %s\n", l,
	       took <= limit + 0.5 && (r == 0 || took >= limit) ? "within-timeout" : "timeout-broken");
	printf("GUEST wait lcore=%u cpu=%s\n", l, cpu < 0.05 + took / 10 ? "low" : "busy");
	if (r == 0) {
		printf("GUEST wait lcore=%u up ret=%d\n", l, rte_power_freq_up(l));
		rte_power_exit(l);
	}
	return 0;
}

static int forge(unsigned int l, const char *other_vm, unsigned long long other_pcpu,
		 unsigned long long nvcpus)
{
	struct {
		const char *name;
		unsigned long long resource;
		const char *vm;
		int physical;
	} cases[] = {
		/* the monitor ignores a foreign vm_name: this is vCPU l's request */
		{"other-vm-name", l, other_vm, 0},
		{"physical-cpu", other_pcpu, "", 1},
		{"vcpu-2^32+lcore", (1ULL << 32) + l, "", 0},
		{"vcpu-out-of-range", nvcpus, "", 0},
	};
	int r = rte_power_set_env(PM_ENV_KVM_VM);
	r = r ? r : rte_power_init(l);
	printf("GUEST forge init lcore=%u ret=%d\n", l, r);
	if (r != 0)
		return 1;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct rte_power_channel_packet pkt, ans;
		memset(&pkt, 0, sizeof(pkt));
		pkt.resource_id = cases[i].resource;
		pkt.unit = RTE_POWER_SCALE_MIN;
		pkt.command = RTE_POWER_CPU_POWER;
		snprintf(pkt.vm_name, sizeof(pkt.vm_name), "%s", cases[i].vm);
		pkt.core_type = cases[i].physical ? RTE_POWER_CORE_TYPE_PHYSICAL
						  : RTE_POWER_CORE_TYPE_VIRTUAL;
		int sent = rte_power_guest_channel_send_msg(&pkt, l);
		int got = -1;
		for (int t = 0; sent == 0 && t < 500 && got != 0; t++)
			got = rte_power_guest_channel_receive_msg(&ans, sizeof(ans), l);
		printf("GUEST forge lcore=%u %s sent=%d %s resource=%llu\n", l, cases[i].name, sent,
		       got != 0 ? "none" :
		       ans.command == RTE_POWER_CMD_ACK ? "ACK" :
		       ans.command == RTE_POWER_CMD_NACK ? "NACK" : "OTHER",
		       got != 0 ? 0ULL : (unsigned long long)ans.resource_id);
	}
	printf("GUEST forge exit lcore=%u ret=%d\n", l, rte_power_exit(l));
	return 0;
}

int main(int argc, char **argv)
{
	static const struct op ops[] = {
		{"up", rte_power_freq_up},
		{"down", rte_power_freq_down},
		{"min", rte_power_freq_min},
		{"max", rte_power_freq_max},
		{"enable_turbo", rte_power_freq_enable_turbo},
		{"disable_turbo", rte_power_freq_disable_turbo},
	};
	const size_t nops = sizeof(ops) / sizeof(ops[0]);
	const char *confirm = getenv("RTE_POWER_GUEST_CONFIRM_MS");
	int confirmed = confirm != NULL && atoi(confirm) > 0;
	int failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && strcmp(argv[1], "wait") == 0)
		return wait_for_host((unsigned int)atoi(argv[2]));
	if (argc == 6 && strcmp(argv[1], "forge") == 0)
		return forge((unsigned int)atoi(argv[2]), argv[3], strtoull(argv[4], NULL, 10),
			     strtoull(argv[5], NULL, 10));
	printf("GUEST mode %s\n", confirmed ? "confirmed" : "plain");
	printf("GUEST set_env ret=%d\n", rte_power_set_env(PM_ENV_KVM_VM));
	for (unsigned int l = 0; l < 2; l++) {
		int r = rte_power_init(l);
		printf("GUEST init lcore=%u ret=%d\n", l, r);
		failed |= r != 0;
	}
	for (unsigned int l = 0; l < 2; l++)
		for (size_t i = 0; i < nops; i++)
			printf("GUEST op lcore=%u %s ret=%d\n", l, ops[i].name, ops[i].fn(l));
	if (!confirmed) {
		for (unsigned int l = 0; l < 2; l++) {
			for (size_t i = 0; i < nops; i++) {
				struct rte_power_channel_packet pkt;
				int got = -1;
				/* 10 ms per call; the host answers within a few */
				for (int t = 0; t < 500 && got != 0; t++)
					got = rte_power_guest_channel_receive_msg(&pkt, sizeof(pkt), l);
				if (got != 0) {
					printf("GUEST reply lcore=%u #%zu none\n", l, i);
					failed = 1;
					continue;
				}
				printf("GUEST reply lcore=%u resource=%llu unit=%u %s\n", l,
				       (unsigned long long)pkt.resource_id, pkt.unit,
				       pkt.command == RTE_POWER_CMD_ACK ? "ACK" :
				       pkt.command == RTE_POWER_CMD_NACK ? "NACK" : "OTHER");
			}
		}
	}
	for (unsigned int l = 0; l < 2; l++)
		printf("GUEST exit lcore=%u ret=%d\n", l, rte_power_exit(l));
	return failed;
}
