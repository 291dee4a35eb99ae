/* SPDX-License-Identifier: MIT */
/* Parking subs on a named condition, waking only the queues that wait. See wait.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include "wait.h"

int uc_wait_init(struct uc_wait *w, struct uc_node *n, const char *name,
		 void (*resume)(struct uc_node *n, struct uc_queue *q, struct uc_sub *s))
{
	size_t bytes = (UC_MAX_QUEUES + 1) * sizeof(*w->slots);

	memset(w, 0, sizeof(*w));
	w->slots = aligned_alloc(UC_CACHELINE, bytes);
	if (!w->slots)
		return -ENOMEM;
	memset(w->slots, 0, bytes);
	for (unsigned int i = 0; i <= UC_MAX_QUEUES; i++)
		w->slots[i].wait = w;
	w->name = name;
	w->node = n;
	w->resume = resume;
	return 0;
}

void uc_wait_free(struct uc_wait *w)
{
	free(w->slots);
	w->slots = NULL;
}

/* q has something waiting on sl from now: listed, and its bit published. */
static void slot_want(struct uc_queue *q, struct uc_wait *w, struct uc_wait_slot *sl)
{
	if (!sl->listed) {
		/*
		 * A woken left from subs already resumed (a uc_wake() that
		 * saw this queue's bit just before it went) would stand for
		 * a wake-up these waiters never had, and make the next waker
		 * skip its kick: nobody waits here yet, so it is stale.
		 */
		atomic_store_explicit(&sl->woken, false, memory_order_relaxed);
		sl->next = q->waiting;
		q->waiting = sl;
		sl->listed = true;
	}
	/* published before the caller re-checks or drops the lock the waker takes */
	if (!sl->nr && !sl->watched)
		atomic_fetch_or(&w->waiters[q->id / 64], 1ULL << (q->id % 64));
}

void uc_park(struct uc_queue *q, struct uc_wait *w, struct uc_sub *s)
{
	struct uc_wait_slot *sl = &w->slots[q->id];

	uc_sub_get(s);
	slot_want(q, w, sl);
	s->next = NULL;
	if (sl->tail)
		sl->tail->next = s;
	else
		sl->head = s;
	sl->tail = s;
	sl->nr++;
}

void uc_wait_watch(struct uc_queue *q, struct uc_wait *w)
{
	struct uc_wait_slot *sl = &w->slots[q->id];

	slot_want(q, w, sl);
	sl->watched = true;
}

void uc_wake(struct uc_wait *w)
{
	const struct uc_queue *self = uc_queue_current();
	struct uc_graph *g = w->node->graph;

	for (unsigned int word = 0; word < 2; word++) {
		uint64_t bits = atomic_load(&w->waiters[word]);

		while (bits) {
			unsigned int id = word * 64 + __builtin_ctzll(bits);
			struct uc_wait_slot *sl = &w->slots[id];

			bits &= bits - 1;
			if (atomic_exchange(&sl->woken, true))
				continue;	/* woken already and not looked yet: it will */
			if (self && self->g == g && self->id == id)
				continue;	/* this thread polls that queue before it waits */
			atomic_fetch_add_explicit(&w->kicks, 1, memory_order_relaxed);
			uc_graph_kick_queue(g, id);
		}
	}
}

/* Take the woken slots of q off its list; returns them, linked by run_next. */
static struct uc_wait_slot *take_woken(struct uc_queue *q)
{
	struct uc_wait_slot *run = NULL, **pp = &q->waiting, *sl;

	while ((sl = *pp)) {
		if (!atomic_load_explicit(&sl->woken, memory_order_relaxed) ||
		    !atomic_exchange(&sl->woken, false)) {
			pp = &sl->next;
			continue;
		}
		*pp = sl->next;
		sl->listed = false;
		sl->run_next = run;
		run = sl;
	}
	return run;
}

bool uc_wait_woken(const struct uc_queue *q)
{
	for (const struct uc_wait_slot *sl = q->waiting; sl; sl = sl->next)
		if (atomic_load_explicit(&sl->woken, memory_order_relaxed))
			return true;
	return false;
}

void uc_wait_run(struct uc_queue *q)
{
	/* a resume may wake another wait of this queue: a few rounds, then the kick fd */
	for (int round = 0; q->waiting && round < 8; round++) {
		struct uc_wait_slot *run = take_woken(q), *sl;

		if (!run)
			return;
		while ((sl = run)) {
			struct uc_wait *w = sl->wait;
			struct uc_sub *s = sl->head;

			run = sl->run_next;
			sl->head = sl->tail = NULL;
			sl->nr = 0;
			sl->watched = false;	/* the poll hooks run after this */
			atomic_fetch_and(&w->waiters[q->id / 64], ~(1ULL << (q->id % 64)));
			while (s) {
				struct uc_sub *next = s->next;

				w->resume(w->node, q, s);
				uc_sub_put(q, s);	/* the parking reference */
				s = next;
			}
		}
	}
	if (uc_wait_woken(q) && q->kick_fd >= 0)
		eventfd_write(q->kick_fd, 1);	/* do not sleep on a pending wake-up */
}
