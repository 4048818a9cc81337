/* SPDX-License-Identifier: BSD-3-Clause
 * rte-power: DPDK 22.11's empty-poll API (<rte_power_empty_poll.h>, removed
 * from DPDK in 23.11), for 22.11 applications that relink against
 * rte-power.
 *
 * Worker lcores count their empty and non-empty Rx polls; the application
 * arms a DPDK timer (every 10 ms, on the main lcore) with
 * rte_empty_poll_detection, which trains per-frequency baselines (TRAINING,
 * 2 s per level after 1 s of warm-up) and then moves each worker between
 * the MED and HGH frequency indexes of freq_tlb (MED_NORMAL/HGH_BUSY).
 *
 * struct ep_params embeds DPDK's struct rte_timer, so this header includes
 * DPDK's <rte_timer.h>: it is meant for DPDK applications, with DPDK's
 * include directory after rte-power's. Structure layouts are DPDK 22.11's
 * (x86_64: struct ep_params is 426240 bytes, 64-byte aligned).
 */
#ifndef _RTE_EMPTY_POLL_H
#define _RTE_EMPTY_POLL_H

#include <stdint.h>
#include <stdbool.h>

#include <rte_timer.h>
#include <rte_power.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(RTE_MAX_LCORE_FREQS) && RTE_MAX_LCORE_FREQS != 64
#error "rte-power's empty-poll structures are built for RTE_MAX_LCORE_FREQS == 64"
#endif

#define NUM_FREQS  64          /* RTE_MAX_LCORE_FREQS */
#define BINS_AV 4              /* intervals in the moving average */
#define DROP (NUM_DIRECTIONS * NUM_DEVICES) /* as DPDK: not usable */
#define NUM_PRIORITIES          2
#define NUM_NODES         256  /* worker slots: lcores 0..255 */

/** Frequency levels; their table indexes come from freq_tlb. */
enum freq_val {
	LOW,
	MED,
	HGH,
	NUM_FREQ = NUM_FREQS
};

/** Per-worker state. */
enum queue_state {
	TRAINING,   /* learning the baselines */
	MED_NORMAL, /* MED frequency */
	HGH_BUSY,   /* HGH frequency */
	LOW_PURGE   /* not implemented (as in DPDK) */
};

struct freq_threshold {
	uint64_t base_edpi;         /* empty dequeues per interval, trained */
	bool trained;
	uint32_t threshold_percent;
	uint32_t cur_train_iter;
};

/* One worker slot; the library updates it, the application may read it. */
struct priority_worker {
	uint64_t empty_dequeues;
	uint64_t num_dequeue_pkts;
	enum queue_state queue_state;
	uint64_t empty_dequeues_prev;
	struct freq_threshold thresh[NUM_FREQ];
	enum freq_val cur_freq;
	uint64_t edpi_av[BINS_AV];
	uint32_t ec;
	uint32_t lcore_id;
	uint32_t iter_counter;
	uint32_t threshold_ctr;
	uint32_t display_ctr;
	uint8_t dev_id;
} __attribute__((aligned(64)));

struct stats_data {
	struct priority_worker wrk_stats[NUM_NODES];
	bool start_rx;
};

/* Allocated by rte_power_empty_poll_stat_init, freed by
 * rte_power_empty_poll_stat_free. The application sets interval_ticks and
 * arms timer0. */
struct ep_params {
	uint64_t interval_ticks;
	uint32_t max_train_iter;
	struct rte_timer timer0;
	struct stats_data wrk_data;
};

/* Initial state: TRAINING, or MED_NORMAL/HGH_BUSY with given baselines. */
struct ep_policy {
	uint64_t med_base_edpi;
	uint64_t hgh_base_edpi;
	enum queue_state state;
};

/** Allocates the state into *eptr and applies @p policy to every enabled
 * lcore except the main one. @p freq_tlb: 3 table indexes (LOW, MED, HGH),
 * NULL for {14, 9, 1}; each must be inside every enabled lcore's frequency
 * table (the lcores must be initialised with rte_power_init). 0 or -1. */
int rte_power_empty_poll_stat_init(struct ep_params **eptr, uint8_t *freq_tlb,
		struct ep_policy *policy);

/** Frees the state (after the workers stopped counting). */
void rte_power_empty_poll_stat_free(void);

/** Counts an empty poll of @p lcore_id: 0, or -1 (lcore >= 256, no state). */
int rte_power_empty_poll_stat_update(unsigned int lcore_id);

/** Counts @p nb_pkt received packets of @p lcore_id: 0 or -1. */
int rte_power_poll_stat_update(unsigned int lcore_id, uint8_t nb_pkt);

/** Empty polls counted for @p lcore_id, (uint64_t)-1 on error. */
uint64_t rte_power_empty_poll_stat_fetch(unsigned int lcore_id);

/** Packets counted for @p lcore_id, (uint64_t)-1 on error. */
uint64_t rte_power_poll_stat_fetch(unsigned int lcore_id);

/** Timer callback: one detection interval for every worker. */
void rte_empty_poll_detection(struct rte_timer *tim, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* _RTE_EMPTY_POLL_H */
