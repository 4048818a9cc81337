/* SPDX-License-Identifier: BSD-3-Clause
 * DPDK 22.11's empty-poll API (<rte_power_empty_poll.h>) in a process
 * without EAL, with the documented return values of the header and the
 * semantics of src/empty_poll.rs:
 *
 *   stat_init: -1 for NULL eptr/policy, a freq_tlb index outside an
 *   lcore's table (any of the three), a policy state outside enum
 *   queue_state; else 0 and *eptr set. Without EAL the workers are the
 *   lcores initialised with rte_power_init.
 *   stat_update / poll_stat_update: 0, or -1 for lcore >= 256 or no state;
 *   the fetches: the counts, (uint64_t)-1 then. The counts live in the
 *   application-visible struct ep_params.
 *   rte_empty_poll_detection: the timer callback (an rte_timer_cb_t): 100
 *   warm-up intervals, then training starts at the LOW level; a policy
 *   starting in MED_NORMAL moves to HGH_BUSY after more than 100 busy
 *   intervals and back after more than 100 idle ones; each level sets
 *   freq_tlb's index on the workers (read back with rte_power_get_freq).
 *
 * The header includes DPDK's <rte_timer.h> (struct ep_params embeds a
 * struct rte_timer): built with DPDK's cflags after our include dir, linked
 * against rte-power alone (only DPDK's structure definitions are used).
 * Runs on an acpi-cpufreq tree (RTE_POWER_SYSFS_CPU_DIR) with 4 CPUs,
 * whose tables have 16 entries.
 */
#include <rte_power_empty_poll.h>

#include <limits.h>
#include <stdint.h>

#include "check.h"

#define W1 1u /* worker lcores: initialised, so the workers without EAL */
#define W2 2u
#define IDLE_LCORE 3u /* never initialised: not a worker */
#define NFREQS 16u
#define WARMUP 100  /* intervals before training */
#define PATIENCE 100 /* intervals over a threshold before a change */

static uint8_t tlb[3] = { 14, 9, 1 }; /* LOW, MED, HGH: DPDK's default */

static struct priority_worker *slot(struct ep_params *ep, unsigned int l)
{
	return &ep->wrk_data.wrk_stats[l];
}

/* Before init, after free: no state. */
static void no_state(void)
{
	CHECK_EQ(rte_power_empty_poll_stat_update(W1), -1);
	CHECK_EQ(rte_power_poll_stat_update(W1, 1), -1);
	CHECK_EQ(rte_power_empty_poll_stat_fetch(W1), UINT64_MAX);
	CHECK_EQ(rte_power_poll_stat_fetch(W1), UINT64_MAX);
	CHECK_EQ(rte_power_empty_poll_stat_update(0), -1);
	CHECK_EQ(rte_power_empty_poll_stat_fetch(0), UINT64_MAX);
	rte_empty_poll_detection(NULL, NULL); /* nothing to detect */
	rte_power_empty_poll_stat_free();     /* nothing to free */
}

static void refused_inits(void)
{
	struct ep_params *ep = NULL;
	struct ep_policy policy;
	uint8_t low_out[3] = { NFREQS, 9, 1 };
	uint8_t hgh_out[3] = { 14, 9, NFREQS };
	uint8_t last_ok[3] = { NFREQS - 1, 9, 1 };

	memset(&policy, 0, sizeof(policy));
	policy.state = TRAINING;
	CHECK_EQ(rte_power_empty_poll_stat_init(NULL, tlb, &policy), -1);
	CHECK_EQ(rte_power_empty_poll_stat_init(NULL, NULL, NULL), -1);
	CHECK_EQ(rte_power_empty_poll_stat_init(&ep, tlb, NULL), -1);
	CHECK(ep == NULL, "eptr written by a failed init");
	/* every index must be inside the workers' tables (DPDK: LOW only) */
	CHECK_EQ(rte_power_empty_poll_stat_init(&ep, low_out, &policy), -1);
	CHECK_EQ(rte_power_empty_poll_stat_init(&ep, hgh_out, &policy), -1);
	CHECK(ep == NULL, "eptr written by a failed init");
	policy.state = (enum queue_state)(LOW_PURGE + 1);
	CHECK_EQ(rte_power_empty_poll_stat_init(&ep, tlb, &policy), -1);
	CHECK(ep == NULL, "eptr written by a failed init");
	no_state();

	/* the last index of the table is inside it */
	policy.state = TRAINING;
	CHECK_EQ(rte_power_empty_poll_stat_init(&ep, last_ok, &policy), 0);
	CHECK(ep != NULL, "eptr not set");
	rte_power_empty_poll_stat_free();
	no_state();
}

static void counters(struct ep_params *ep)
{
	static const unsigned int bad[] = { NUM_NODES, NUM_NODES + 1, UINT_MAX };
	size_t i;
	int k;

	for (k = 0; k < 3; k++)
		CHECK_EQ(rte_power_empty_poll_stat_update(W1), 0);
	CHECK_EQ(rte_power_empty_poll_stat_fetch(W1), 3);
	CHECK_EQ(slot(ep, W1)->empty_dequeues, 3);
	CHECK_EQ(rte_power_poll_stat_update(W1, 5), 0);
	CHECK_EQ(rte_power_poll_stat_update(W1, 5), 0);
	CHECK_EQ(rte_power_poll_stat_update(W1, UINT8_MAX), 0);
	CHECK_EQ(rte_power_poll_stat_fetch(W1), 10 + UINT8_MAX);
	CHECK_EQ(slot(ep, W1)->num_dequeue_pkts, 10 + UINT8_MAX);
	CHECK_EQ(rte_power_empty_poll_stat_fetch(W2), 0);
	CHECK_EQ(rte_power_poll_stat_fetch(W2), 0);

	/* every slot below 256 counts, workers or not */
	CHECK_EQ(rte_power_empty_poll_stat_update(NUM_NODES - 1), 0);
	CHECK_EQ(rte_power_poll_stat_update(NUM_NODES - 1, 7), 0);
	CHECK_EQ(rte_power_empty_poll_stat_fetch(NUM_NODES - 1), 1);
	CHECK_EQ(rte_power_poll_stat_fetch(NUM_NODES - 1), 7);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_EQ(rte_power_empty_poll_stat_update(bad[i]), -1);
		CHECK_EQ(rte_power_poll_stat_update(bad[i], 1), -1);
		CHECK_EQ(rte_power_empty_poll_stat_fetch(bad[i]), UINT64_MAX);
		CHECK_EQ(rte_power_poll_stat_fetch(bad[i]), UINT64_MAX);
	}
	CHECK_EQ(rte_power_empty_poll_stat_fetch(W1), 3);
	CHECK_EQ(rte_power_poll_stat_fetch(W1), 10 + UINT8_MAX);
}

/* TRAINING: 100 warm-up intervals change nothing, the next sets LOW. */
static void training(void)
{
	struct ep_params *ep = NULL;
	struct ep_policy policy;
	rte_timer_cb_t cb = rte_empty_poll_detection; /* fits DPDK's timer */
	uint32_t before = rte_power_get_freq(W1);
	int i;

	memset(&policy, 0, sizeof(policy));
	policy.state = TRAINING;
	REQUIRE(rte_power_empty_poll_stat_init(&ep, tlb, &policy) == 0,
		"stat_init(TRAINING)");
	REQUIRE(ep != NULL, "eptr not set");
	CHECK_EQ((uintptr_t)ep % 64, 0);
	CHECK_EQ(sizeof(*ep), 426240); /* DPDK 22.11's layout (x86_64) */
	CHECK_EQ(ep->max_train_iter, 200);
	CHECK_EQ(slot(ep, W1)->lcore_id, W1);
	CHECK_EQ(slot(ep, W2)->lcore_id, W2);
	CHECK_EQ(slot(ep, W1)->queue_state, TRAINING);
	CHECK_EQ(slot(ep, W1)->cur_freq, LOW);
	CHECK_EQ(slot(ep, IDLE_LCORE)->lcore_id, 0);

	counters(ep);

	REQUIRE(before != tlb[LOW], "lcore %u starts at the LOW index", W1);
	for (i = 0; i < WARMUP; i++)
		rte_empty_poll_detection(NULL, ep);
	CHECK_EQ(slot(ep, W1)->iter_counter, WARMUP);
	CHECK_EQ(slot(ep, W2)->iter_counter, WARMUP);
	CHECK_EQ(slot(ep, IDLE_LCORE)->iter_counter, 0); /* not a worker */
	CHECK_EQ(rte_power_get_freq(W1), before);
	CHECK_EQ(slot(ep, W1)->thresh[LOW].cur_train_iter, 0);

	cb(&ep->timer0, ep); /* as rte_timer_manage() calls it */
	CHECK_EQ(rte_power_get_freq(W1), tlb[LOW]);
	CHECK_EQ(rte_power_get_freq(W2), tlb[LOW]);
	CHECK_EQ(slot(ep, W1)->thresh[LOW].cur_train_iter, 1);
	CHECK_EQ(slot(ep, W1)->queue_state, TRAINING);

	rte_power_empty_poll_stat_free();
	no_state();
}

/* A policy with trained baselines: MED at once, HGH when busy, MED when
 * idle again, each after more than PATIENCE intervals. */
static void trained_policy(void)
{
	struct ep_params *ep = NULL;
	struct ep_policy policy;
	int i, k;

	memset(&policy, 0, sizeof(policy));
	policy.med_base_edpi = 1000;
	policy.hgh_base_edpi = 800;
	policy.state = MED_NORMAL;
	REQUIRE(rte_power_empty_poll_stat_init(&ep, tlb, &policy) == 0,
		"stat_init(MED_NORMAL)");
	REQUIRE(ep != NULL, "eptr not set");
	CHECK_EQ(slot(ep, W1)->queue_state, MED_NORMAL);
	CHECK_EQ(slot(ep, W1)->cur_freq, MED);
	CHECK_EQ(slot(ep, W1)->thresh[MED].base_edpi, 1000);
	CHECK(slot(ep, W1)->thresh[MED].trained, "MED not trained");
	CHECK_EQ(slot(ep, W1)->thresh[HGH].base_edpi, 800);
	CHECK_EQ(rte_power_get_freq(W1), tlb[MED]);
	CHECK_EQ(rte_power_get_freq(W2), tlb[MED]);
	/* a fresh ep_params: the counts start again */
	CHECK_EQ(rte_power_empty_poll_stat_fetch(W1), 0);

	/* no empty polls at all: 100 % busy */
	for (i = 0; i < PATIENCE; i++)
		rte_empty_poll_detection(NULL, ep);
	CHECK_EQ(slot(ep, W1)->queue_state, MED_NORMAL);
	CHECK_EQ(rte_power_get_freq(W1), tlb[MED]);
	rte_empty_poll_detection(NULL, ep);
	CHECK_EQ(slot(ep, W1)->queue_state, HGH_BUSY);
	CHECK_EQ(slot(ep, W1)->cur_freq, HGH);
	CHECK_EQ(rte_power_get_freq(W1), tlb[HGH]);
	CHECK_EQ(rte_power_get_freq(W2), tlb[HGH]);

	/* lcore 1 nearly idle (700 of 800 empty polls per interval): back to
	 * MED after the average settles and PATIENCE more intervals; lcore 2
	 * stays busy */
	for (i = 0; i < PATIENCE; i++) {
		for (k = 0; k < 700; k++)
			rte_power_empty_poll_stat_update(W1);
		rte_empty_poll_detection(NULL, ep);
	}
	CHECK_EQ(slot(ep, W1)->queue_state, HGH_BUSY);
	for (i = 0; i < 10 && slot(ep, W1)->queue_state == HGH_BUSY; i++) {
		for (k = 0; k < 700; k++)
			rte_power_empty_poll_stat_update(W1);
		rte_empty_poll_detection(NULL, ep);
	}
	CHECK_EQ(slot(ep, W1)->queue_state, MED_NORMAL);
	CHECK_EQ(rte_power_get_freq(W1), tlb[MED]);
	CHECK_EQ(slot(ep, W2)->queue_state, HGH_BUSY);
	CHECK_EQ(rte_power_get_freq(W2), tlb[HGH]);
	CHECK_EQ(rte_power_empty_poll_stat_fetch(W1),
		 (uint64_t)700 * (uint64_t)(PATIENCE + i));

	rte_power_empty_poll_stat_free();
	no_state();
	rte_power_empty_poll_stat_free(); /* twice: harmless */
}

int main(void)
{
	uint32_t buf[RTE_POWER_MAX_FREQS];

	no_state();
	REQUIRE(rte_power_init(W1) == 0, "rte_power_init(%u)", W1);
	REQUIRE(rte_power_init(W2) == 0, "rte_power_init(%u)", W2);
	REQUIRE(rte_power_freqs(W1, buf, RTE_POWER_MAX_FREQS) == NFREQS,
		"lcore %u: %u frequencies", W1,
		rte_power_freqs(W1, buf, RTE_POWER_MAX_FREQS));
	refused_inits();
	training();
	trained_policy();
	CHECK_EQ(rte_power_exit(W1), 0);
	CHECK_EQ(rte_power_exit(W2), 0);
	rte_power_unset_env();
	return check_done("empty_poll_api");
}
