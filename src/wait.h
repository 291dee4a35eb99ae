/* SPDX-License-Identifier: MIT */
/*
 * Parking subs on a named condition. A layer that cannot go on with a sub
 * yet (a FLUSH waiting for a write-back, a write waiting for room in a
 * cache) parks it with uc_park(q, w, s); whoever makes the condition true,
 * on any thread, calls uc_wake(w). Only the queues with subs parked on w
 * are woken: a queue that is the caller's own thread is not signalled at
 * all (it resumes them before it waits: uc_queue_poll() looks again after
 * the poll hooks, which may be the wakers), the others through their kick
 * eventfd,
 * at most once until they have looked. The woken queue calls w->resume for
 * each sub it had parked there, from uc_queue_poll(); resume goes on with
 * the sub, fails it, or parks it again. The parking reference is dropped
 * by the engine after resume returns. No timer is involved.
 *
 * No lost wake-up: uc_park() publishes the waiter before it returns and
 * uc_wake() looks for waiters after the condition changed. So a layer parks
 * under the lock the waker holds while it changes the condition (and the
 * waker calls uc_wake() after that change), or it checks the condition
 * again after uc_park() and calls uc_wake() itself if it now holds. resume
 * must cope with a wake-up that finds the condition still false.
 */
#ifndef UC_WAIT_H
#define UC_WAIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "io.h"

#define UC_CACHELINE	64

struct uc_wait;

/* One queue's side of a wait, on its own cache line; the list is that queue thread's only. */
struct uc_wait_slot {
	struct uc_sub *head, *tail;	/* parked here, linked by s->next */
	struct uc_wait_slot *next;	/* the queue's list of slots with parked subs */
	struct uc_wait_slot *run_next;	/* woken, being resumed (uc_wait_run) */
	struct uc_wait *wait;
	unsigned int nr;		/* subs parked here */
	bool watched;			/* uc_wait_watch(): the queue polls after the next wake-up */
	bool listed;			/* on the queue's list */
	_Atomic bool woken;		/* uc_wake() since the queue last looked */
} __attribute__((aligned(UC_CACHELINE)));

struct uc_wait {
	const char *name;		/* what the subs wait for (status, tests) */
	struct uc_node *node;
	void (*resume)(struct uc_node *n, struct uc_queue *q, struct uc_sub *s);
	_Atomic uint64_t waiters[2];	/* queue ids with subs parked here: bit id % 64 of word id / 64 */
	_Atomic uint64_t kicks;		/* eventfd wake-ups sent to other queues (tests, stats) */
	struct uc_wait_slot *slots;	/* UC_MAX_QUEUES + 1 of them */
};

/* Set up w for node n (parse or activate). Returns 0 or -ENOMEM. */
int uc_wait_init(struct uc_wait *w, struct uc_node *n, const char *name,
		 void (*resume)(struct uc_node *n, struct uc_queue *q, struct uc_sub *s));
/* Free what uc_wait_init() allocated (nothing may be parked). Safe on a zeroed w. */
void uc_wait_free(struct uc_wait *w);
/* Park s of queue q on w: it holds a reference until resume has run. Queue thread only. */
void uc_park(struct uc_queue *q, struct uc_wait *w, struct uc_sub *s);
/*
 * What waits is not a sub (a layer's own job, a background step): q's poll
 * hooks run soon after the next uc_wake(w), once, as for a parked sub, with
 * nothing to resume. The same rule against lost wake-ups applies (watch under
 * the waker's lock, or check again after). Queue thread only.
 */
void uc_wait_watch(struct uc_queue *q, struct uc_wait *w);
/* The condition of w may hold now: the queues with subs parked on it resume them. Any thread. */
void uc_wake(struct uc_wait *w);
/* Subs parked on w by queue q (its thread, or while q is quiet). */
static inline unsigned int uc_wait_parked(const struct uc_wait *w, const struct uc_queue *q)
{
	return w->slots ? w->slots[q->id].nr : 0;
}

/*
 * The engine, once per poll of q: resume the subs of every woken wait
 * (io.c, uc_queue_poll()).
 */
void uc_wait_run(struct uc_queue *q);
/* A wait with subs parked by q was woken since q last looked (q's thread). */
bool uc_wait_woken(const struct uc_queue *q);

#endif
