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
 * Every line starts with "GUEST " for scripts/guest/host.py to check.
 */
#include <stdio.h>
#include <stdlib.h>

#include <rte_power.h>

struct op {
	const char *name;
	int (*fn)(unsigned int lcore_id);
};

int main(void)
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
