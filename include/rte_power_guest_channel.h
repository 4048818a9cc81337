/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * rte-power: guest <-> host power channel packets.
 *
 * ABI-compatible with DPDK's header of the same name: identical constant
 * values, struct and field names, field types, sizes and offsets.  Packets
 * travel as raw structs in host byte order over one virtio-serial port per
 * guest lcore; the receiver frames them only by the size it expects:
 *
 *   struct rte_power_channel_packet            464 bytes  requests, ACK/NACK
 *   struct rte_power_channel_packet_freq_list   88 bytes  FREQ_LIST reply
 *   struct rte_power_channel_packet_caps_list  184 bytes  CAPS_LIST reply
 *
 * (sizes for 64-bit targets; on i386 uint64_t is 4-aligned inside structs
 * and the sizes become 460 / 84 / 180, so 32-bit and 64-bit peers cannot
 * talk to each other).
 *
 * The include guard is the one DPDK uses, so including both headers is
 * harmless: whichever comes first wins and the other is skipped.
 */
#ifndef RTE_POWER_GUEST_CHANNEL_H
#define RTE_POWER_GUEST_CHANNEL_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Array bounds inside the packets. */
#define RTE_POWER_MAX_VFS 10          /* MAC addresses in a traffic policy */
#define RTE_POWER_VM_MAX_NAME_SZ 32   /* vm_name, NUL terminator included */
#define RTE_POWER_MAX_VCPU_PER_VM 8   /* vCPU slots per packet */
#define RTE_POWER_HOURS_PER_DAY 24    /* slots per timer-profile hour list */

/* Request values of `command` (guest to host). */
#define RTE_POWER_CPU_POWER 1          /* scale core `resource_id` by `unit` */
#define RTE_POWER_CPU_POWER_CONNECT 2  /* probe sent when a port is opened */
#define RTE_POWER_PKT_POLICY 3         /* create/replace policy `vm_name` */
#define RTE_POWER_PKT_POLICY_REMOVE 4  /* disable policy `vm_name` */

/* Values of `core_type`: how core numbers in a packet are meant. */
#define RTE_POWER_CORE_TYPE_VIRTUAL 0  /* vCPU numbers of the sending VM */
#define RTE_POWER_CORE_TYPE_PHYSICAL 1 /* host CPU numbers */

/* Values of `unit` for RTE_POWER_CPU_POWER. */
#define RTE_POWER_SCALE_UP 1
#define RTE_POWER_SCALE_DOWN 2
#define RTE_POWER_SCALE_MAX 3
#define RTE_POWER_SCALE_MIN 4
#define RTE_POWER_ENABLE_TURBO 5
#define RTE_POWER_DISABLE_TURBO 6

/* Query values of `command` (guest to host). */
#define RTE_POWER_QUERY_FREQ_LIST 7    /* all vCPUs of `vm_name` */
#define RTE_POWER_QUERY_FREQ 8         /* vCPU `resource_id` */
#define RTE_POWER_QUERY_CAPS_LIST 9    /* all vCPUs of `vm_name` */
#define RTE_POWER_QUERY_CAPS 10        /* vCPU `resource_id` */

/* Reply values of `command` (host to guest; the numbers overlap with the
 * requests, only the direction tells them apart). */
#define RTE_POWER_CMD_ACK 1            /* 464-byte echo: done */
#define RTE_POWER_CMD_NACK 2           /* 464-byte echo: refused/failed */
#define RTE_POWER_FREQ_LIST 3          /* struct ..._freq_list */
#define RTE_POWER_CAPS_LIST 4          /* struct ..._caps_list */

/* Packet-rate thresholds (packets per second) of a traffic policy. */
struct rte_power_traffic_policy {
	uint32_t min_packet_thresh;
	uint32_t avg_max_packet_thresh;
	uint32_t max_max_packet_thresh;
};

/* Hour lists (values 0..23; unused slots are 0) of a time policy. */
struct rte_power_timer_profile {
	int busy_hours[RTE_POWER_HOURS_PER_DAY];
	int quiet_hours[RTE_POWER_HOURS_PER_DAY];
	int hours_to_use_traffic_profile[RTE_POWER_HOURS_PER_DAY];
};

/* Frequency level requested by a workload policy. */
enum rte_power_workload_level {
	RTE_POWER_WL_HIGH = 0,
	RTE_POWER_WL_MEDIUM = 1,
	RTE_POWER_WL_LOW = 2
};

/* Which rule a policy follows (`policy_to_use`). */
enum rte_power_policy {
	RTE_POWER_POLICY_TRAFFIC = 0,
	RTE_POWER_POLICY_TIME = 1,
	RTE_POWER_POLICY_WORKLOAD = 2,
	RTE_POWER_POLICY_BRANCH_RATIO = 3
};

/* Turbo flag carried in policies (not acted upon by hosts). */
struct rte_power_turbo_status {
	bool tbEnabled;
};

/* Request or ACK/NACK packet (464 bytes on 64-bit targets). */
struct rte_power_channel_packet {
	uint64_t resource_id;        /* core for CPU_POWER and single queries */
	uint32_t unit;               /* RTE_POWER_SCALE_* etc. */
	uint32_t command;            /* request or reply code */
	char vm_name[RTE_POWER_VM_MAX_NAME_SZ]; /* NUL-terminated */
	uint64_t vfid[RTE_POWER_MAX_VFS];       /* MACs to monitor */
	int nb_mac_to_monitor;       /* used entries of vfid */
	struct rte_power_traffic_policy traffic_policy;
	uint8_t vcpu_to_control[RTE_POWER_MAX_VCPU_PER_VM];
	uint8_t num_vcpu;            /* used entries of vcpu_to_control */
	struct rte_power_timer_profile timer_policy;
	bool core_type;              /* RTE_POWER_CORE_TYPE_* */
	enum rte_power_workload_level workload;
	enum rte_power_policy policy_to_use;
	struct rte_power_turbo_status t_boost_status;
};

/* Reply to RTE_POWER_QUERY_FREQ(_LIST) (88 bytes on 64-bit targets). */
struct rte_power_channel_packet_freq_list {
	uint64_t resource_id;
	uint32_t unit;
	uint32_t command;            /* RTE_POWER_FREQ_LIST */
	char vm_name[RTE_POWER_VM_MAX_NAME_SZ];
	uint32_t freq_list[RTE_POWER_MAX_VCPU_PER_VM]; /* kHz per vCPU */
	uint8_t num_vcpu;
};

/* Reply to RTE_POWER_QUERY_CAPS(_LIST) (184 bytes on 64-bit targets). */
struct rte_power_channel_packet_caps_list {
	uint64_t resource_id;
	uint32_t unit;
	uint32_t command;            /* RTE_POWER_CAPS_LIST */
	char vm_name[RTE_POWER_VM_MAX_NAME_SZ];
	uint64_t turbo[RTE_POWER_MAX_VCPU_PER_VM];    /* 1: turbo available */
	uint64_t priority[RTE_POWER_MAX_VCPU_PER_VM]; /* 1: high-priority core */
	uint8_t num_vcpu;
};

/*
 * Layout checks.  Only on targets with 64-bit pointers, where uint64_t is
 * 8-aligned in structs (x86_64, aarch64, ppc64, riscv64, ...): that is the
 * layout DPDK's hosts expect.  C11 or later, or C++11 or later.
 */
#if defined(__SIZEOF_POINTER__) && __SIZEOF_POINTER__ == 8
#if defined(__cplusplus) && __cplusplus >= 201103L
#define RTE_POWER_GC_STATIC_ASSERT_(cond, msg) static_assert(cond, msg)
#elif !defined(__cplusplus) && defined(__STDC_VERSION__) && \
	__STDC_VERSION__ >= 201112L
#define RTE_POWER_GC_STATIC_ASSERT_(cond, msg) _Static_assert(cond, msg)
#endif
#ifdef RTE_POWER_GC_STATIC_ASSERT_
RTE_POWER_GC_STATIC_ASSERT_(sizeof(struct rte_power_channel_packet) == 464,
	"rte_power_channel_packet must be 464 bytes");
RTE_POWER_GC_STATIC_ASSERT_(
	sizeof(struct rte_power_channel_packet_freq_list) == 88,
	"rte_power_channel_packet_freq_list must be 88 bytes");
RTE_POWER_GC_STATIC_ASSERT_(
	sizeof(struct rte_power_channel_packet_caps_list) == 184,
	"rte_power_channel_packet_caps_list must be 184 bytes");
RTE_POWER_GC_STATIC_ASSERT_(
	offsetof(struct rte_power_channel_packet, timer_policy) == 156,
	"timer_policy must be at offset 156");
RTE_POWER_GC_STATIC_ASSERT_(
	offsetof(struct rte_power_channel_packet, core_type) == 444,
	"core_type must be at offset 444");
RTE_POWER_GC_STATIC_ASSERT_(
	offsetof(struct rte_power_channel_packet, t_boost_status) == 456,
	"t_boost_status must be at offset 456");
#undef RTE_POWER_GC_STATIC_ASSERT_
#endif
#endif

/**
 * Send a packet to the host on the channel of lcore_id.
 *
 * Always writes sizeof(struct rte_power_channel_packet) = 464 bytes from
 * pkt, whatever the caller's packet type; partial writes are continued and
 * EINTR is retried.  The port is non-blocking: nothing waits for room or
 * for a reply.
 *
 * @param pkt
 *   Packet to send.
 * @param lcore_id
 *   lcore whose channel (opened by rte_power_init() in the KVM guest env)
 *   is used.
 * @return
 *   0 when the whole packet was written;
 *   -1 when lcore_id is out of range or its channel is not connected;
 *   a POSITIVE errno value when write() fails (e.g. EAGAIN when the port
 *   is full), as DPDK does.
 */
int rte_power_guest_channel_send_msg(struct rte_power_channel_packet *pkt,
		unsigned int lcore_id);

/**
 * Receive one reply from the host on the channel of lcore_id.
 *
 * Waits at most 10 ms for data, then reads exactly pkt_len bytes (the
 * caller picks the struct: 464 for ACK/NACK, 88 for a frequency list, 184
 * for a capability list).
 *
 * @param pkt
 *   Buffer of at least pkt_len bytes.
 * @param pkt_len
 *   Number of bytes to read; must not be 0.
 * @param lcore_id
 *   lcore whose channel is read.
 * @return
 *   0 when pkt_len bytes were read;
 *   -1 otherwise (pkt NULL or pkt_len 0, lcore out of range, channel not
 *   connected, no data within the timeout, read error or end of file).
 */
int rte_power_guest_channel_receive_msg(void *pkt, size_t pkt_len,
		unsigned int lcore_id);

#ifdef __cplusplus
}
#endif

#endif /* RTE_POWER_GUEST_CHANNEL_H */
