/* SPDX-License-Identifier: BSD-3-Clause
 * Calls every function the headers declare, with the arguments callers get
 * wrong: NULL buffers, short buffers, uninitialised and out-of-range lcores,
 * invalid env values, unconnected guest channels; checks the documented
 * return values (the comments in include/):
 *   frequency changes 1 changed / 0 unchanged / -1 error;
 *   rte_power_freqs 0 and rte_power_get_freq RTE_POWER_INVALID_FREQ_INDEX
 *   for invalid or uninitialised lcores; check_env_supported 0 for invalid
 *   env values; in the KVM guest env (uint32_t)-ENOTSUP for the table calls.
 *
 * Runs on an acpi-cpufreq tree (RTE_POWER_SYSFS_CPU_DIR) with a ports folder
 * (RTE_POWER_VIRTIO_PORTS_DIR) in which the runner made a FIFO standing in
 * for lcore KVM_LCORE's virtio-serial port and nothing else.
 * The other areas (uncore, PM QoS, PMD queue management without ethdev,
 * empty poll) have their own programs; tests/c_api.rs checks that every
 * declared function is called by one of the programs of c-tests/.
 */
#include <rte_power_cpufreq.h>
#include <rte_power_guest_channel.h>
#include <rte_power_pmd_mgmt.h>
#include <rte_power_ext.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>

#include "check.h"

#define BAD_LCORE RTE_POWER_MAX_LCORE
#define FREE_LCORE 1u  /* valid, never initialised */
#define HOST_LCORE 0u
#define KVM_LCORE 4u   /* has a (FIFO) port */
#define NOPORT_LCORE 3u
#define INVALID_INDEX ((uint32_t)RTE_POWER_INVALID_FREQ_INDEX)
#define PATTERN 0xa5a5a5a5u

static const unsigned int bad_lcores[] = { FREE_LCORE, BAD_LCORE,
					   BAD_LCORE + 1, UINT_MAX };

/* Every lcore call on an lcore that cannot be used fails, writes nothing. */
static void unusable(unsigned int l)
{
	uint32_t buf[RTE_POWER_MAX_FREQS];
	struct rte_power_core_capabilities caps;
	struct rte_power_channel_packet pkt;

	memset(buf, 0xa5, sizeof(buf));
	CHECK_EQ(rte_power_freqs(l, buf, RTE_POWER_MAX_FREQS), 0);
	CHECK_EQ(buf[0], PATTERN);
	CHECK_EQ(rte_power_freqs(l, NULL, 0), 0);
	CHECK_EQ(rte_power_get_freq(l), INVALID_INDEX);
	CHECK_EQ((int)rte_power_set_freq(l, 0), -1);
	CHECK_EQ(rte_power_freq_up(l), -1);
	CHECK_EQ(rte_power_freq_down(l), -1);
	CHECK_EQ(rte_power_freq_max(l), -1);
	CHECK_EQ(rte_power_freq_min(l), -1);
	CHECK(rte_power_turbo_status(l) < 0, "turbo_status(%u)", l);
	CHECK(rte_power_freq_enable_turbo(l) < 0, "enable_turbo(%u)", l);
	CHECK(rte_power_freq_disable_turbo(l) < 0, "disable_turbo(%u)", l);
	memset(&caps, 0xa5, sizeof(caps));
	CHECK(rte_power_get_capabilities(l, &caps) < 0, "get_caps(%u)", l);
	CHECK_EQ(caps.capabilities, 0xa5a5a5a5a5a5a5a5ull);
	CHECK(rte_power_get_capabilities(l, NULL) < 0, "get_caps(%u, NULL)", l);
	CHECK_EQ(rte_power_ext_get_pstate_stats(l, NULL), -1);
	CHECK_EQ(rte_power_exit(l), -1);
	memset(&pkt, 0, sizeof(pkt));
	CHECK_EQ(rte_power_guest_channel_send_msg(&pkt, l), -1);
	CHECK_EQ(rte_power_guest_channel_receive_msg(&pkt, sizeof(pkt), l), -1);
}

static void env_calls(void)
{
	CHECK_EQ(rte_power_get_env(), PM_ENV_NOT_SET);
	CHECK_EQ(rte_power_check_env_supported(PM_ENV_NOT_SET), 0);
	CHECK_EQ(rte_power_check_env_supported((enum power_management_env)6), 0);
	CHECK_EQ(rte_power_check_env_supported((enum power_management_env)7), 0);
	CHECK_EQ(rte_power_check_env_supported(PM_ENV_ACPI_CPUFREQ), 1);
	CHECK_EQ(rte_power_check_env_supported(PM_ENV_PSTATE_CPUFREQ), 0);
	CHECK_EQ(rte_power_check_env_supported(PM_ENV_CPPC_CPUFREQ), 0);
	CHECK_EQ(rte_power_check_env_supported(PM_ENV_AMD_PSTATE_CPUFREQ), 0);
	CHECK_EQ(rte_power_check_env_supported(PM_ENV_KVM_VM), 1); /* the FIFO */
	CHECK_EQ(rte_power_set_env(PM_ENV_NOT_SET), -1);
	CHECK_EQ(rte_power_set_env((enum power_management_env)6), -1);
	CHECK_EQ(rte_power_get_env(), PM_ENV_NOT_SET);
	rte_power_unset_env(); /* harmless without an env */
	CHECK_EQ(rte_power_get_env(), PM_ENV_NOT_SET);
}

static void host_lcore(void)
{
	uint32_t buf[RTE_POWER_MAX_FREQS];
	struct rte_power_core_capabilities caps;
	struct rte_power_channel_packet pkt;
	uint32_t n;

	CHECK_EQ(rte_power_set_env(PM_ENV_ACPI_CPUFREQ), 0);
	CHECK_EQ(rte_power_set_env(PM_ENV_ACPI_CPUFREQ), -1);
	CHECK_EQ(rte_power_set_env(PM_ENV_PSTATE_CPUFREQ), -1);
	CHECK_EQ(rte_power_get_env(), PM_ENV_ACPI_CPUFREQ);
	CHECK_EQ(rte_power_init(BAD_LCORE), -1);
	CHECK_EQ(rte_power_init(UINT_MAX), -1);
	REQUIRE(rte_power_init(HOST_LCORE) == 0, "init(%u)", HOST_LCORE);
	CHECK_EQ(rte_power_init(HOST_LCORE), -1);

	/* the table: NULL, too short, exact, roomy */
	n = rte_power_freqs(HOST_LCORE, buf, RTE_POWER_MAX_FREQS);
	REQUIRE(n >= 3 && n < RTE_POWER_MAX_FREQS, "freqs() = %u", n);
	CHECK_EQ(rte_power_freqs(HOST_LCORE, NULL, RTE_POWER_MAX_FREQS), 0);
	CHECK_EQ(rte_power_freqs(HOST_LCORE, buf, 0), 0);
	memset(buf, 0xa5, sizeof(buf));
	CHECK_EQ(rte_power_freqs(HOST_LCORE, buf, n - 1), 0);
	CHECK_EQ(buf[0], PATTERN);
	CHECK_EQ(rte_power_freqs(HOST_LCORE, buf, n), n);
	CHECK_EQ(buf[n], PATTERN);

	/* indexes */
	CHECK(rte_power_get_freq(HOST_LCORE) < n, "get_freq(%u) = %u",
	      HOST_LCORE, rte_power_get_freq(HOST_LCORE));
	CHECK_EQ((int)rte_power_set_freq(HOST_LCORE, n), -1);
	CHECK_EQ((int)rte_power_set_freq(HOST_LCORE, RTE_POWER_MAX_FREQS), -1);
	CHECK_EQ((int)rte_power_set_freq(HOST_LCORE, UINT32_MAX), -1);
	CHECK_EQ((int)rte_power_set_freq(HOST_LCORE, n - 1), 1);
	CHECK_EQ((int)rte_power_set_freq(HOST_LCORE, n - 1), 0);
	CHECK_EQ(rte_power_get_freq(HOST_LCORE), n - 1);

	/* steps at both ends */
	CHECK_EQ(rte_power_freq_down(HOST_LCORE), 0);
	CHECK_EQ(rte_power_freq_min(HOST_LCORE), 0);
	CHECK_EQ(rte_power_freq_up(HOST_LCORE), 1);
	CHECK_EQ(rte_power_freq_down(HOST_LCORE), 1);
	CHECK_EQ(rte_power_freq_max(HOST_LCORE), 1);
	CHECK_EQ(rte_power_freq_max(HOST_LCORE), 0);
	CHECK_EQ(rte_power_freq_up(HOST_LCORE), 0);
	CHECK_EQ(rte_power_freq_min(HOST_LCORE), 1);

	/* turbo (the acpi tree has the max + 1 MHz entry) */
	CHECK_EQ(rte_power_turbo_status(HOST_LCORE), 1);
	CHECK_EQ(rte_power_freq_disable_turbo(HOST_LCORE), 0);
	CHECK_EQ(rte_power_turbo_status(HOST_LCORE), 0);
	CHECK_EQ(rte_power_freq_enable_turbo(HOST_LCORE), 0);
	CHECK_EQ(rte_power_turbo_status(HOST_LCORE), 1);

	CHECK(rte_power_get_capabilities(HOST_LCORE, NULL) < 0,
	      "get_caps(%u, NULL)", HOST_LCORE);
	memset(&caps, 0xa5, sizeof(caps));
	CHECK_EQ(rte_power_get_capabilities(HOST_LCORE, &caps), 0);
	CHECK_EQ(caps.capabilities, 1);

	/* rte-power's own statistics (extension API) */
	{
		struct rte_power_ext_pstate_stats st;
		uint64_t sum = 0;
		uint32_t i;

		CHECK_EQ(rte_power_ext_get_pstate_stats(HOST_LCORE, NULL), -1);
		memset(&st, 0xa5, sizeof(st));
		CHECK_EQ(rte_power_ext_get_pstate_stats(HOST_LCORE, &st), 0);
		CHECK_EQ(st.num, rte_power_freqs(HOST_LCORE, buf, RTE_POWER_MAX_FREQS));
		CHECK_EQ(st.current, rte_power_get_freq(HOST_LCORE));
		CHECK(st.transitions > 0, "transitions counted (%llu)",
		      (unsigned long long)st.transitions);
		CHECK_EQ(st.freqs_khz[0], buf[0]);
		for (i = 0; i < st.num; i++)
			sum += st.residency_ns[i];
		CHECK(sum <= st.elapsed_ns + 1000000, "residency %llu <= elapsed %llu",
		      (unsigned long long)sum, (unsigned long long)st.elapsed_ns);
		CHECK_EQ(st.residency_ns[st.num], 0);
	}

	/* a host lcore has no guest channel */
	memset(&pkt, 0, sizeof(pkt));
	CHECK_EQ(rte_power_guest_channel_send_msg(NULL, HOST_LCORE), -1);
	CHECK_EQ(rte_power_guest_channel_send_msg(&pkt, HOST_LCORE), -1);
	CHECK_EQ(rte_power_guest_channel_receive_msg(NULL, sizeof(pkt),
						      HOST_LCORE), -1);
	CHECK_EQ(rte_power_guest_channel_receive_msg(&pkt, 0, HOST_LCORE), -1);
	CHECK_EQ(rte_power_guest_channel_receive_msg(&pkt, sizeof(pkt),
						      HOST_LCORE), -1);

	/* exit once; afterwards the lcore is unusable again */
	CHECK_EQ(rte_power_exit(HOST_LCORE), 0);
	unusable(HOST_LCORE);
	rte_power_unset_env();
	CHECK_EQ(rte_power_get_env(), PM_ENV_NOT_SET);
}

static void pmd_mgmt(void)
{
	CHECK_EQ(rte_power_pmd_mgmt_get_emptypoll_max(), 512);
	rte_power_pmd_mgmt_set_emptypoll_max(0); /* no validation, as DPDK */
	CHECK_EQ(rte_power_pmd_mgmt_get_emptypoll_max(), 0);
	rte_power_pmd_mgmt_set_emptypoll_max(UINT_MAX);
	CHECK_EQ(rte_power_pmd_mgmt_get_emptypoll_max(), UINT_MAX);
	rte_power_pmd_mgmt_set_emptypoll_max(512);

	CHECK_EQ(rte_power_pmd_mgmt_get_pause_duration(), 1);
	CHECK_EQ(rte_power_pmd_mgmt_set_pause_duration(0), -EINVAL);
	CHECK_EQ(rte_power_pmd_mgmt_set_pause_duration(UINT_MAX), 0);
	CHECK_EQ(rte_power_pmd_mgmt_get_pause_duration(), UINT_MAX);
	CHECK_EQ(rte_power_pmd_mgmt_set_pause_duration(1), 0);

	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_min(0), 0);
	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_max(0), 0);
	CHECK_EQ(rte_power_pmd_mgmt_set_scaling_freq_min(0, 1500000), 0);
	CHECK_EQ(rte_power_pmd_mgmt_set_scaling_freq_max(0, 1400000), -EINVAL);
	CHECK_EQ(rte_power_pmd_mgmt_set_scaling_freq_max(0, 1500000), 0);
	CHECK_EQ(rte_power_pmd_mgmt_set_scaling_freq_min(0, 1500001), -EINVAL);
	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_min(0), 1500000);
	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_max(0), 1500000);
	CHECK_EQ(rte_power_pmd_mgmt_set_scaling_freq_max(0, 0), 0); /* unset */
	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_max(0), 0);
	CHECK_EQ(rte_power_pmd_mgmt_set_scaling_freq_min(0, 0), 0);
	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_min(0), 0);
	CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_min(RTE_POWER_MAX_LCORE - 1), 0);
	{
		size_t i;

		for (i = 1; i < sizeof(bad_lcores) / sizeof(bad_lcores[0]); i++) {
			unsigned int l = bad_lcores[i];

			CHECK_EQ(rte_power_pmd_mgmt_set_scaling_freq_min(l, 1), -EINVAL);
			CHECK_EQ(rte_power_pmd_mgmt_set_scaling_freq_max(l, 1), -EINVAL);
			CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_min(l), -EINVAL);
			CHECK_EQ(rte_power_pmd_mgmt_get_scaling_freq_max(l), -EINVAL);
		}
	}
}

/* The KVM guest env: the table calls are not available (-ENOTSUP through
 * uint32_t, as DPDK), scaling requests are sent (1), the guest channel
 * carries the application's packets. */
static void kvm_guest(void)
{
	uint32_t buf[RTE_POWER_MAX_FREQS];
	struct rte_power_core_capabilities caps;
	struct rte_power_channel_packet pkt;
	int i, ret;

	CHECK_EQ(rte_power_set_env(PM_ENV_KVM_VM), 0);
	CHECK_EQ(rte_power_init(NOPORT_LCORE), -1);
	REQUIRE(rte_power_init(KVM_LCORE) == 0, "init(%u) in the KVM env",
		KVM_LCORE);
	CHECK_EQ(rte_power_init(KVM_LCORE), -1);

	CHECK_EQ((int)rte_power_freqs(KVM_LCORE, buf, RTE_POWER_MAX_FREQS),
		 -ENOTSUP);
	CHECK_EQ((int)rte_power_freqs(KVM_LCORE, NULL, 0), -ENOTSUP);
	CHECK_EQ((int)rte_power_get_freq(KVM_LCORE), -ENOTSUP);
	CHECK_EQ((int)rte_power_set_freq(KVM_LCORE, 0), -ENOTSUP);
	CHECK_EQ((int)rte_power_freqs(NOPORT_LCORE, buf, RTE_POWER_MAX_FREQS),
		 -ENOTSUP);
	CHECK(rte_power_turbo_status(KVM_LCORE) < 0, "turbo_status in KVM");
	CHECK(rte_power_get_capabilities(KVM_LCORE, &caps) < 0,
	      "get_caps in KVM");
	{
		struct rte_power_ext_pstate_stats st;

		CHECK_EQ(rte_power_ext_get_pstate_stats(KVM_LCORE, &st), -ENOTSUP);
	}

	CHECK_EQ(rte_power_freq_up(KVM_LCORE), 1);
	CHECK_EQ(rte_power_freq_down(KVM_LCORE), 1);
	CHECK_EQ(rte_power_freq_max(KVM_LCORE), 1);
	CHECK_EQ(rte_power_freq_min(KVM_LCORE), 1);
	CHECK(rte_power_freq_enable_turbo(KVM_LCORE) >= 0, "enable_turbo in KVM");
	CHECK(rte_power_freq_disable_turbo(KVM_LCORE) >= 0, "disable_turbo in KVM");
	CHECK_EQ(rte_power_freq_up(NOPORT_LCORE), -1);
	CHECK_EQ(rte_power_freq_max(BAD_LCORE), -1);

	/* the port is a FIFO: what is sent can be read back, 464 bytes each */
	memset(&pkt, 0, sizeof(pkt));
	pkt.command = RTE_POWER_QUERY_FREQ;
	pkt.resource_id = KVM_LCORE;
	CHECK_EQ(rte_power_guest_channel_send_msg(&pkt, KVM_LCORE), 0);
	CHECK_EQ(rte_power_guest_channel_send_msg(NULL, KVM_LCORE), -1);
	CHECK_EQ(rte_power_guest_channel_send_msg(&pkt, NOPORT_LCORE), -1);
	CHECK_EQ(rte_power_guest_channel_receive_msg(&pkt, sizeof(pkt),
						      KVM_LCORE), 0);
	CHECK_EQ(rte_power_guest_channel_receive_msg(NULL, sizeof(pkt),
						      KVM_LCORE), -1);
	CHECK_EQ(rte_power_guest_channel_receive_msg(&pkt, 0, KVM_LCORE), -1);
	/* drain, then the 10 ms timeout answers -1 */
	for (i = 0; i < 100; i++)
		if (rte_power_guest_channel_receive_msg(&pkt, sizeof(pkt),
							KVM_LCORE) != 0)
			break;
	CHECK(i < 100, "port never ran dry");
	CHECK_EQ(rte_power_guest_channel_receive_msg(&pkt, sizeof(pkt),
						      KVM_LCORE), -1);
	/* a full port: write() fails, send_msg answers the positive errno */
	memset(&pkt, 0, sizeof(pkt));
	for (i = 0, ret = 0; i < 10000 && ret == 0; i++)
		ret = rte_power_guest_channel_send_msg(&pkt, KVM_LCORE);
	CHECK_EQ(ret, EAGAIN);

	CHECK_EQ(rte_power_exit(KVM_LCORE), 0);
	CHECK_EQ(rte_power_freq_up(KVM_LCORE), -1);
	CHECK_EQ(rte_power_guest_channel_send_msg(&pkt, KVM_LCORE), -1);
	rte_power_unset_env();
}

int main(void)
{
	size_t i;

	env_calls();
	for (i = 0; i < sizeof(bad_lcores) / sizeof(bad_lcores[0]); i++)
		unusable(bad_lcores[i]);
	host_lcore();
	pmd_mgmt();
	kvm_guest();
	/* after all sessions: nothing left initialised */
	for (i = 0; i < sizeof(bad_lcores) / sizeof(bad_lcores[0]); i++)
		unusable(bad_lcores[i]);
	return check_done("every_export");
}
