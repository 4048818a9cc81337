/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * kvm_vm_autotest: the steps of DPDK's power_kvm_vm_autotest, written anew
 * for rte-power, with the exact values our library returns. Run by
 * tests/guest_c_api.rs with RTE_POWER_VIRTIO_PORTS_DIR pointing at a
 * directory whose virtio.serial.port.poweragent.0 is a pty the test plays
 * the host on (it checks every byte and answers each request with ACK);
 * there is no port for lcore 1.
 *
 * Exit status 0 and "kvm_vm_autotest: PASS" when every step holds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <rte_power.h>

#define OUT_OF_RANGE (RTE_POWER_MAX_LCORE + 1)

static int failures;

#define EXPECT(expr, want)                                                    \
	do {                                                                  \
		long got_ = (long)(expr);                                     \
		long want_ = (long)(want);                                    \
		if (got_ != want_) {                                          \
			printf("FAIL %s:%d: %s = %ld, expected %ld\n",        \
			       __FILE__, __LINE__, #expr, got_, want_);       \
			failures++;                                           \
		}                                                             \
	} while (0)

/* Waits (in 10 ms steps, at most ~2 s) for one 464-byte reply on lcore 0. */
static int receive(struct rte_power_channel_packet *p)
{
	for (int i = 0; i < 200; i++)
		if (rte_power_guest_channel_receive_msg(p, sizeof(*p), 0) == 0)
			return 0;
	return -1;
}

int main(void)
{
	static const unsigned int units[] = {
		RTE_POWER_ENABLE_TURBO, RTE_POWER_DISABLE_TURBO, RTE_POWER_SCALE_UP,
		RTE_POWER_SCALE_DOWN, RTE_POWER_SCALE_MIN, RTE_POWER_SCALE_MAX,
	};
	struct rte_power_core_capabilities caps;
	struct rte_power_channel_packet reply;

	/* 1. the KVM env is selected explicitly */
	EXPECT(rte_power_set_env(PM_ENV_KVM_VM), 0);
	EXPECT(rte_power_get_env(), PM_ENV_KVM_VM);

	/* 2. an lcore beyond the table */
	EXPECT(rte_power_init(OUT_OF_RANGE), -1);

	/* 3. lcore 0 connects to the host (DPDK's test skips if this fails;
	 *    here the port exists, so it must work) */
	EXPECT(rte_power_init(0), 0);

	/* 4. a second init of the same lcore fails */
	EXPECT(rte_power_init(0), -1);

	/* 5. out of range and not connected: no request is sent */
	EXPECT(rte_power_freq_up(OUT_OF_RANGE), -1);
	EXPECT(rte_power_freq_down(OUT_OF_RANGE), -1);
	EXPECT(rte_power_freq_min(OUT_OF_RANGE), -1);
	EXPECT(rte_power_freq_max(OUT_OF_RANGE), -1);
	EXPECT(rte_power_freq_up(1), -1);
	EXPECT(rte_power_freq_down(1), -1);
	EXPECT(rte_power_freq_min(1), -1);
	EXPECT(rte_power_freq_max(1), -1);

	/* 6. turbo requests are sent */
	EXPECT(rte_power_freq_enable_turbo(0), 1);
	EXPECT(rte_power_freq_disable_turbo(0), 1);

	/* 7. each scaling request is sent: 1 */
	EXPECT(rte_power_freq_up(0), 1);
	EXPECT(rte_power_freq_down(0), 1);
	EXPECT(rte_power_freq_min(0), 1);
	EXPECT(rte_power_freq_max(0), 1);

	/* 8. what the KVM env does not have: -ENOTSUP (the uint32_t results
	 *    read back as int, as DPDK's test stores them) */
	EXPECT((int)rte_power_freqs(0, NULL, 0), -ENOTSUP);
	EXPECT((int)rte_power_get_freq(0), -ENOTSUP);
	EXPECT((int)rte_power_set_freq(0, 0), -ENOTSUP);
	EXPECT(rte_power_turbo_status(0), -ENOTSUP);
	EXPECT(rte_power_get_capabilities(0, &caps), -ENOTSUP);

	/* the host's answers wait in the port until the application reads
	 * them: one ACK per request, in order, each echoing its request */
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		memset(&reply, 0xff, sizeof(reply));
		EXPECT(receive(&reply), 0);
		EXPECT(reply.command, RTE_POWER_CMD_ACK);
		EXPECT(reply.unit, units[i]);
		EXPECT(reply.resource_id, 0);
	}
	EXPECT(rte_power_guest_channel_receive_msg(&reply, sizeof(reply), 0), -1);
	EXPECT(rte_power_guest_channel_receive_msg(NULL, sizeof(reply), 0), -1);
	EXPECT(rte_power_guest_channel_receive_msg(&reply, sizeof(reply), 1), -1);
	EXPECT(rte_power_guest_channel_send_msg(NULL, 0), -1);
	EXPECT(rte_power_guest_channel_send_msg(&reply, 1), -1);

	/* 9. exit closes the port; requests on lcore 0 fail afterwards */
	EXPECT(rte_power_exit(0), 0);
	EXPECT(rte_power_freq_up(0), -1);
	EXPECT(rte_power_freq_down(0), -1);
	EXPECT(rte_power_freq_min(0), -1);
	EXPECT(rte_power_freq_max(0), -1);

	/* 10. */
	rte_power_unset_env();
	EXPECT(rte_power_get_env(), PM_ENV_NOT_SET);

	if (failures) {
		printf("kvm_vm_autotest: FAILED (%d)\n", failures);
		return 1;
	}
	printf("kvm_vm_autotest: PASS\n");
	return 0;
}
