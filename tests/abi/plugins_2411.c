/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A DPDK 24.11/25.11 program on rte-power's librte_power.so.N: the
 * function API, the guest channel from librte_power_kvm_vm.so.N, and
 * DPDK's own driver libraries loaded next to ours as EAL loads plugins
 * (fake_dpdk_driver.c): nothing crashes, registrations are accepted and
 * ignored, our drivers keep serving. The KVM guest: a pty stands in for
 * the lcore's virtio-serial port (RTE_POWER_VIRTIO_PORTS_DIR), and a
 * packet sent through librte_power_kvm_vm reaches it.
 * Usage: plugins_2411 FAKE_DRIVER.so PORTS_DIR
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* from DPDK 24.11's rte_power_cpufreq.h and rte_power_guest_channel.h */
enum power_management_env { PM_ENV_NOT_SET, PM_ENV_ACPI_CPUFREQ, PM_ENV_KVM_VM,
	PM_ENV_PSTATE_CPUFREQ, PM_ENV_CPPC_CPUFREQ, PM_ENV_AMD_PSTATE_CPUFREQ };
int rte_power_set_env(enum power_management_env env);
void rte_power_unset_env(void);
int rte_power_init(unsigned int lcore_id);
int rte_power_exit(unsigned int lcore_id);
int rte_power_freq_min(unsigned int lcore_id);
uint32_t rte_power_get_freq(unsigned int lcore_id);
int rte_power_qos_get_cpu_resume_latency(uint16_t lcore_id);
int rte_power_guest_channel_send_msg(void *pkt, unsigned int lcore_id);
int rte_power_guest_channel_receive_msg(void *pkt, size_t pkt_len, unsigned int lcore_id);

static int failed;
#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		int ok_ = (cond); /* evaluated once: it has effects */         \
		printf("%s ", ok_ ? "ok  " : "FAIL");                         \
		printf(__VA_ARGS__);                                           \
		printf("\n");                                                  \
		failed |= !ok_;                                                \
	} while (0)

int main(int argc, char **argv)
{
	unsigned char pkt[464], got[464];
	char port[4096];
	uint32_t cpu = 99;

	if (argc != 3) {
		fprintf(stderr, "usage: %s FAKE_DRIVER.so PORTS_DIR\n", argv[0]);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* 1. DPDK's drivers arrive as plugins */
	void *drv = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
	CHECK(drv != NULL, "DPDK-style driver library loaded next to ours (%s)", drv ? "" : dlerror());
	if (drv == NULL)
		return 1;
	int *res = dlsym(drv, "fake_driver_results");
	int (*probe)(const char *, uint32_t, uint32_t *) = (int (*)(const char *, uint32_t, uint32_t *))(uintptr_t)dlsym(drv, "fake_driver_probe");
	CHECK(res[0] == 0 && res[1] == -1 && res[2] == 0,
	      "registrations: complete cpufreq ops %d, incomplete %d (refused as DPDK does), uncore %d",
	      res[0], res[1], res[2]);
	CHECK(probe("acpi-cpufreq", 1, &cpu) == 1 && cpu == 1,
	      "INTERNAL helpers: scaling driver matches, lcore 1 -> cpu %u, uncore cb not called", cpu);
	/* 2. our drivers serve the env, not the registered ones */
	CHECK(rte_power_set_env(PM_ENV_ACPI_CPUFREQ) == 0 && rte_power_init(1) == 0, "init(1) on acpi");
	CHECK(rte_power_freq_min(1) == 1 && rte_power_get_freq(1) == 15, "freq_min: index 15");
	CHECK(rte_power_exit(1) == 0, "exit(1)");
	rte_power_unset_env();
	CHECK(rte_power_qos_get_cpu_resume_latency(1) >= -1, "PM QoS (24.11) present");
	/* 3. the KVM guest through librte_power_kvm_vm */
	CHECK(rte_power_guest_channel_send_msg(pkt, 0) == -1, "send_msg before init: -1");
	int master = posix_openpt(O_RDWR | O_NOCTTY);
	if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0)
		return 1;
	{
		/* raw mode: the pty must not translate the binary packets */
		struct termios t;
		int s = open(ptsname(master), O_RDWR | O_NOCTTY);
		if (s < 0 || tcgetattr(s, &t) != 0)
			return 1;
		cfmakeraw(&t);
		if (tcsetattr(s, TCSANOW, &t) != 0)
			return 1;
		close(s);
	}
	snprintf(port, sizeof(port), "%s/virtio.serial.port.poweragent.0", argv[2]);
	unlink(port);
	if (symlink(ptsname(master), port) != 0)
		return 1;
	CHECK(rte_power_set_env(PM_ENV_KVM_VM) == 0 && rte_power_init(0) == 0, "KVM env: init(0) on the pty port");
	memset(pkt, 0, sizeof(pkt));
	pkt[0] = 7;            /* resource_id */
	pkt[8] = 1;            /* unit */
	pkt[12] = 1;           /* command CPU_POWER */
	memcpy(pkt + 16, "guest-abi-test", 15);
	CHECK(rte_power_guest_channel_send_msg(pkt, 0) == 0, "send_msg through librte_power_kvm_vm");
	/* the host side: CONNECT first, then our packet */
	size_t have = 0;
	int seen = 0;
	while (!seen) {
		struct pollfd p = {.fd = master, .events = POLLIN};
		if (poll(&p, 1, 2000) <= 0)
			break;
		ssize_t r = read(master, got + have, sizeof(got) - have);
		if (r <= 0)
			break;
		have += (size_t)r;
		if (have == sizeof(got)) {
			seen = memcmp(got, pkt, sizeof(pkt)) == 0;
			have = 0;
		}
	}
	CHECK(seen, "the host read our 464-byte packet from the port");
	CHECK(rte_power_guest_channel_receive_msg(got, 88, 0) <= 0, "receive_msg: nothing to read, no crash");
	CHECK(rte_power_exit(0) == 0, "exit(0)");
	unlink(port);
	return failed;
}
