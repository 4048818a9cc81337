/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * librte_power_kvm_vm.so.25 / .so.26: what DPDK 24.11 moved out of
 * librte_power into drivers/power/kvm_vm, for programs built against it.
 *
 * The KVM guest env itself (ports, requests) lives in our librte_power:
 * its rte_power_init opens the lcore's port. The two guest channel
 * functions a program may call directly forward to it. Our librte_power
 * exports exactly DPDK's symbols, so the functions are reached the way
 * DPDK's own drivers reach the framework: this library registers a
 * cpufreq "driver" from its constructor, under a name no DPDK driver
 * uses, and our rte_power_register_cpufreq_ops fills in the two entry
 * points (abi/compat.c). Next to DPDK's own librte_power the registration
 * is refused (NULL callbacks) and both functions fail with -1.
 */
#include <stddef.h>

struct rte_power_channel_packet;

struct kvm_bridge {
	void *next[2];
	char name[24];
	int (*send)(struct rte_power_channel_packet *pkt, unsigned int lcore_id);
	int (*receive)(void *pkt, size_t pkt_len, unsigned int lcore_id);
	/* room up to the size of DPDK's struct rte_power_cpufreq_ops (152
	 * bytes), which DPDK's own framework reads when it checks callbacks */
	void *unused[12];
};

int rte_power_register_cpufreq_ops(struct kvm_bridge *ops);

static struct kvm_bridge bridge = {.name = "rte-power-kvm-vm"};

__attribute__((constructor)) static void attach(void)
{
	(void)rte_power_register_cpufreq_ops(&bridge);
}

int rte_power_guest_channel_send_msg(struct rte_power_channel_packet *pkt, unsigned int lcore_id)
{
	if (bridge.send == NULL)
		return -1;
	return bridge.send(pkt, lcore_id);
}

int rte_power_guest_channel_receive_msg(void *pkt, size_t pkt_len, unsigned int lcore_id)
{
	if (bridge.receive == NULL)
		return -1;
	return bridge.receive(pkt, pkt_len, lcore_id);
}
