/* SPDX-License-Identifier: MIT */
/*
 * File descriptors watched on a queue's ring (see struct uc_watch in io.h):
 * one-shot IORING_OP_POLL_ADDs whose CQEs name the watch by slot and
 * generation, so a CQE of a watch removed meanwhile is dropped, never
 * delivered to whatever took its slot.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include "io.h"
#include "udata.h"

static const unsigned int dir_events[2] = { POLLIN, POLLOUT };

int uc_watch_add(struct uc_queue *q, struct uc_watch *w)
{
	unsigned int slot = 0;

	assert(!w->q && w->fd >= 0 && w->ready);
	while (slot < q->nr_watches && q->watches[slot])
		slot++;
	if (slot == q->nr_watches) {
		struct uc_watch **t;

		if (slot > 0xffff)
			return -ENOSPC;
		t = realloc(q->watches, (slot + 1) * sizeof(*t));
		if (!t)
			return -ENOMEM;
		q->watches = t;
		q->nr_watches++;
	}
	q->watches[slot] = w;
	w->q = q;
	w->slot = slot;
	w->gen = ++q->watch_gen;
	w->armed = 0;
	return 0;
}

static struct io_uring_sqe *watch_sqe(struct uc_queue *q)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);

	if (!sqe) {
		io_uring_submit(&q->ring);
		sqe = io_uring_get_sqe(&q->ring);
	}
	return sqe;
}

int uc_watch_arm(struct uc_watch *w, unsigned int events)
{
	struct uc_queue *q = w->q;

	assert(q);
	for (unsigned int dir = 0; dir < 2; dir++) {
		struct io_uring_sqe *sqe;

		if (!(events & dir_events[dir]) || (w->armed & dir_events[dir]))
			continue;
		if (!(sqe = watch_sqe(q)))
			return -EBUSY;
		io_uring_prep_poll_add(sqe, w->fd, dir_events[dir]);
		io_uring_sqe_set_data64(sqe, uc_udata_watch(w->slot, w->gen, dir));
		w->armed |= dir_events[dir];
	}
	return 0;
}

void uc_watch_del(struct uc_watch *w)
{
	struct uc_queue *q = w->q;

	if (!q)
		return;
	for (unsigned int dir = 0; dir < 2; dir++) {
		struct io_uring_sqe *sqe;

		if (!(w->armed & dir_events[dir]) || !(sqe = watch_sqe(q)))
			continue;	/* without an SQE the poll stays until it fires: its CQE is dropped */
		io_uring_prep_poll_remove(sqe, uc_udata_watch(w->slot, w->gen, dir));
		io_uring_sqe_set_data64(sqe, UC_UDATA_IGNORE);
	}
	q->watches[w->slot] = NULL;
	w->q = NULL;
	w->armed = 0;
}

void uc_watch_cqe(struct uc_queue *q, const struct io_uring_cqe *cqe)
{
	unsigned int slot = (cqe->user_data >> 16) & 0xffff;
	unsigned int gen = (cqe->user_data >> 32) & 0xffff;
	unsigned int dir = cqe->user_data & 1;
	struct uc_watch *w = slot < q->nr_watches ? q->watches[slot] : NULL;

	if (!w || w->gen != gen)
		return;	/* removed since: its cancelled poll */
	w->armed &= ~dir_events[dir];
	w->ready(q, w, cqe->res);
}

void uc_watch_drop_all(struct uc_queue *q)
{
	for (unsigned int i = 0; i < q->nr_watches; i++)
		if (q->watches[i]) {
			q->watches[i]->q = NULL;
			q->watches[i]->armed = 0;
		}
	free(q->watches);
	q->watches = NULL;
	q->nr_watches = 0;
}
