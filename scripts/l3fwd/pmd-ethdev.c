/* SPDX-License-Identifier: BSD-3-Clause
 * rte-power: PMD power management through DPDK's real ethdev. A DPDK
 * program (EAL + a virtual NIC given on the command line) that calls
 * rte_power_ethdev_pmgmt_queue_enable/_disable of rte-power, which finds
 * ethdev's functions in this process with dlsym. Prints one line per call
 * and exits non-zero when a result is not DPDK's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_power_pmd_mgmt.h>

static int failures;

static void check(const char *what, int got, int want)
{
	printf("%-4s %-40s %d\n", got == want ? "ok" : "FAIL", what, got);
	if (got != want)
		failures++;
}

int main(int argc, char **argv)
{
	struct rte_eth_conf conf = {0};
	struct rte_mempool *mp;
	enum rte_power_pmd_mgmt_type pause = RTE_POWER_MGMT_TYPE_PAUSE;

	if (rte_eal_init(argc, argv) < 0 || rte_eth_dev_count_avail() < 1)
		return 2;
	mp = rte_pktmbuf_pool_create("mp", 1024, 32, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
	if (mp == NULL || rte_eth_dev_configure(0, 1, 1, &conf) != 0 ||
			rte_eth_rx_queue_setup(0, 0, 128, 0, NULL, mp) != 0 ||
			rte_eth_tx_queue_setup(0, 0, 128, 0, NULL) != 0)
		return 3;

	check("enable lcore 1, port 0 queue 0", rte_power_ethdev_pmgmt_queue_enable(1, 0, 0, pause), 0);
	check("enable the same queue again", rte_power_ethdev_pmgmt_queue_enable(1, 0, 0, pause), -EEXIST);
	check("enable in another mode", rte_power_ethdev_pmgmt_queue_enable(1, 0, 0,
			RTE_POWER_MGMT_TYPE_SCALE), -EINVAL);
	check("enable queue 5 (1 configured)", rte_power_ethdev_pmgmt_queue_enable(1, 0, 5, pause), -EINVAL);
	check("enable port 9 (none)", rte_power_ethdev_pmgmt_queue_enable(1, 9, 0, pause), -EINVAL);
	check("enable mode 7", rte_power_ethdev_pmgmt_queue_enable(2, 0, 0, 7), -EINVAL);
	check("enable monitor (virtual NIC)", rte_power_ethdev_pmgmt_queue_enable(2, 0, 0,
			RTE_POWER_MGMT_TYPE_MONITOR), -ENOTSUP);
	check("disable on lcore 2 (nothing managed)", rte_power_ethdev_pmgmt_queue_disable(2, 0, 0), -EINVAL);
	check("disable lcore 1, port 0 queue 0", rte_power_ethdev_pmgmt_queue_disable(1, 0, 0), 0);
	check("disable it again", rte_power_ethdev_pmgmt_queue_disable(1, 0, 0), -EINVAL);

	rte_eth_dev_close(0);
	rte_eal_cleanup();
	printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
