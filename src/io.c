/* SPDX-License-Identifier: MIT */
/* The queue engine: arenas, the sub lifecycle, member CQEs. See io.h and layer.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "io.h"
#include "io_int.h"
#include "log.h"
#include "udata.h"
#include "wait.h"

/* The queue the calling thread drives: uc_wake() signals no eventfd for it. */
static _Thread_local struct uc_queue *current_queue;

struct uc_queue *uc_queue_current(void)
{
	return current_queue;
}

int uc_iov_slice(struct iovec *dst, unsigned int nr_dst, unsigned int max,
		 const struct iovec *src, unsigned int nr_src, uint64_t skip, uint64_t len)
{
	unsigned int i = 0;

	while (i < nr_src && skip >= src[i].iov_len)
		skip -= src[i++].iov_len;
	for (; len && i < nr_src; i++, skip = 0) {
		char *base = (char *)src[i].iov_base + skip;
		size_t n = src[i].iov_len - skip;

		if (n > len)
			n = len;
		/* merge with the previous entry when the memory is contiguous */
		if (nr_dst && (char *)dst[nr_dst - 1].iov_base + dst[nr_dst - 1].iov_len == base) {
			dst[nr_dst - 1].iov_len += n;
		} else {
			if (nr_dst == max)
				return -E2BIG;
			dst[nr_dst++] = (struct iovec){ base, n };
		}
		len -= n;
	}
	return len ? -E2BIG : (int)nr_dst;
}

void uc_iov_copy(const struct iovec *iov, unsigned int nr_iov, uint64_t skip, void *buf,
		 uint64_t len, bool to_iov)
{
	unsigned int i = 0;

	while (i < nr_iov && skip >= iov[i].iov_len)
		skip -= iov[i++].iov_len;
	for (; len; i++, skip = 0) {
		char *p;
		uint64_t n;

		assert(i < nr_iov);
		p = (char *)iov[i].iov_base + skip;
		n = iov[i].iov_len - skip < len ? iov[i].iov_len - skip : len;
		if (to_iov)
			memcpy(p, buf, n);
		else
			memcpy(buf, p, n);
		buf = (char *)buf + n;
		len -= n;
	}
}

/* Drop the first bytes of s's data after a short transfer. */
static void sub_advance(struct uc_sub *s, uint64_t bytes)
{
	s->off += bytes;
	s->len -= bytes;
	while (s->nr_iov && bytes >= s->iov->iov_len) {
		bytes -= s->iov->iov_len;
		s->iov++;
		s->nr_iov--;
	}
	if (bytes) {
		s->iov->iov_base = (char *)s->iov->iov_base + bytes;
		s->iov->iov_len -= bytes;
	}
}

static struct uc_sub *sub_alloc(struct uc_queue *q, struct uc_io *io, struct uc_node *n)
{
	struct uc_sub *s;

	(void)q;
	/* arenas are sized from the graph: running out is a bug in a layer's max_subs */
	assert(io->nr_subs < q->g->nr_subs);
	assert(io->nr_iovs + n->max_iov <= q->g->nr_iovs);
	s = &io->subs[io->nr_subs];
	*s = (struct uc_sub){ .node = n, .io = io, .idx = io->nr_subs++, .pending = 1,
			      .iov = &io->iovs[io->nr_iovs] };
	io->nr_iovs += n->max_iov;
	if (n->sub_priv_size) {
		s->priv = io->privs + (size_t)s->idx * io->priv_stride;
		/* slots are 16-aligned multiples of 16: the usual small case is two stores */
		if (n->sub_priv_size <= 16)
			__builtin_memset(s->priv, 0, 16);
		else
			memset(s->priv, 0, n->sub_priv_size);
	}
	return s;
}

static void root_end(struct uc_queue *q, struct uc_sub *s)
{
	struct uc_io *io = s->io;
	int res = s->result;

	io->busy = false;
	q->nr_busy--;
	if (io->internal) {
		io->done(q, io, res);
		return;
	}
	if (!res && uc_op_moves_data(s->op))
		res = io->len;	/* s->len shrinks when a leaf root resubmits a short transfer */
	q->commit(q, io, res);
}

void uc_sub_put(struct uc_queue *q, struct uc_sub *s)
{
	while (s && !--s->pending) {
		struct uc_sub *parent = s->parent;
		struct uc_node *n = s->node;

		if (n->ops->end && n->ops->end(n, q, s) == UC_RESUBMITTED)
			return;	/* the layer holds a new reference */
		if (s->io->zero_copy && n->ops->user_copy && s->op == UC_OP_READ && !s->result)
			uc_sub_error(s, uc_user_copy_out(q, s));
		if (!parent) {
			root_end(q, s);
			return;
		}
		if (parent->node->ops->child_end)
			parent->node->ops->child_end(parent->node, q, parent, s);
		else
			uc_sub_error(parent, s->result);
		s = parent;
	}
}

static void sub_issue(struct uc_queue *q, struct uc_sub *s)
{
	int ret = s->node->ops->submit(s->node, q, s);

	uc_sub_error(s, ret);
	uc_sub_put(q, s);	/* the submit bias */
}

struct uc_sub *uc_child_prep(struct uc_queue *q, struct uc_sub *s, unsigned int i,
			     uint64_t off, uint64_t len)
{
	struct uc_node *c = s->node->children[i];
	struct uc_sub *cs = sub_alloc(q, s->io, c);

	assert(off + len <= c->size);
	cs->parent = s;
	cs->child = i;
	cs->op = s->op;
	cs->flags = s->flags;
	cs->copy = s->copy;
	cs->off = off;
	cs->len = len;
	uc_sub_get(s);
	return cs;
}

/* A child's first issue: a user_copy leaf of a zero-copy request gets its data in memory. */
static void child_issue(struct uc_queue *q, struct uc_sub *cs)
{
	if (cs->io->zero_copy && cs->node->ops->user_copy && uc_op_moves_data(cs->op)) {
		int ret = uc_user_copy_in(q, cs);

		if (ret) {
			uc_sub_error(cs, ret);
			uc_sub_put(q, cs);	/* the submit bias: it ends unsent */
			return;
		}
	}
	sub_issue(q, cs);
}

void uc_child_issue(struct uc_queue *q, struct uc_sub *cs)
{
	child_issue(q, cs);
}

void uc_child_submit(struct uc_queue *q, struct uc_sub *s, unsigned int i, uint64_t off,
		     uint64_t len, const struct iovec *iov, unsigned int nr_iov)
{
	struct uc_sub *cs = uc_child_prep(q, s, i, off, len);

	if (nr_iov) {
		int n = uc_iov_slice(cs->iov, 0, cs->node->max_iov, iov, nr_iov, 0, len);

		assert(n > 0);
		cs->nr_iov = n;
	}
	child_issue(q, cs);
}

struct io_uring_sqe *uc_sub_sqe(struct uc_queue *q, struct uc_sub *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);

	if (!sqe) {
		/* SQ full: rare (the ring is sized for a full queue), so pay an enter */
		io_uring_submit(&q->ring);
		sqe = io_uring_get_sqe(&q->ring);
		if (!sqe)
			return NULL;
	}
	io_uring_sqe_set_data64(sqe, uc_udata_member(s->io->tag, s->idx));
	uc_sub_get(s);
	q->nr_member++;
	return sqe;
}

void uc_queue_start(struct uc_queue *q, unsigned int tag, const struct uc_req *r)
{
	struct uc_io *io = &q->ios[tag];
	struct uc_graph *g = q->g;
	struct uc_sub *s;
	int err = 0;

	if (q->pausing) {
		/* the graph is about to change: this one starts once it has */
		assert(!io->held);
		io->held_req = *r;
		io->held = true;
		q->nr_held++;
		return;
	}
	assert(!io->busy && !io->internal);
	io->busy = true;
	q->nr_busy++;
	io->nr_subs = io->nr_iovs = 0;
	io->zero_copy = q->zero_copy;
	s = sub_alloc(q, io, g->root);
	s->op = r->op;
	s->flags = r->flags;
	s->off = r->off;
	s->len = r->len;
	io->len = r->len;
	switch (r->op) {
	case UC_OP_READ:
	case UC_OP_WRITE:
		if (!r->len || r->len > g->dev.max_io)
			err = -EIO;
		/* zero copy: iovecs hold offsets into the request's registered buffer */
		s->iov[0] = (struct iovec){ q->zero_copy ? NULL : io->buf, r->len };
		s->nr_iov = 1;
		break;
	case UC_OP_DISCARD:
	case UC_OP_WRITE_ZEROES:
		if (!g->root->can_discard)
			err = -EOPNOTSUPP;
		break;
	case UC_OP_FLUSH:
		s->off = s->len = 0;
		break;
	default:
		err = -EOPNOTSUPP;
	}
	if (!err && s->off + s->len > g->size)
		err = -EIO;
	if (err) {
		uc_sub_error(s, err);
		uc_sub_put(q, s);
		return;
	}
	sub_issue(q, s);
}

struct uc_io *uc_internal_get(struct uc_queue *q)
{
	for (unsigned int i = q->depth; i < q->depth + q->nr_internal; i++)
		if (!q->ios[i].busy)
			return &q->ios[i];
	return NULL;
}

void uc_internal_start(struct uc_queue *q, struct uc_io *io, struct uc_node *node, int op,
		       unsigned int flags, uint64_t off, uint64_t len,
		       void (*done)(struct uc_queue *, struct uc_io *, int), void *arg)
{
	struct uc_sub *s;

	assert(io->internal && !io->busy);
	io->busy = true;
	q->nr_busy++;
	io->nr_subs = io->nr_iovs = 0;
	io->done = done;
	io->arg = arg;
	io->len = len;
	s = sub_alloc(q, io, node);
	s->op = op;
	s->flags = flags;
	s->off = off;
	s->len = len;
	if (uc_op_moves_data(op)) {
		s->iov[0] = (struct iovec){ io->buf, len };
		s->nr_iov = 1;
	}
	sub_issue(q, s);
}

static void sub_resubmit(struct uc_queue *q, struct uc_sub *s)
{
	uc_sub_get(s);
	sub_issue(q, s);
}

void uc_queue_member_cqe(struct uc_queue *q, const struct io_uring_cqe *cqe)
{
	unsigned int tag = uc_udata_tag(cqe->user_data);
	struct uc_io *io = &q->ios[tag];
	struct uc_sub *s = &io->subs[uc_udata_sub(cqe->user_data)];
	struct uc_node *n = s->node;
	int res = cqe->res;

	q->nr_member--;
	if (res == -EAGAIN || res == -EINTR) {
		sub_resubmit(q, s);
	} else if (uc_op_moves_data(s->op) && res >= 0 && (uint64_t)res < s->len) {
		/* short transfer: go on with the remainder, never fail or commit short */
		if (res == 0) {
			uc_sub_error(s, -EIO);	/* no progress: end of the backing file */
		} else {
			sub_advance(s, res);
			q->nr_short++;
			sub_resubmit(q, s);
		}
	} else {
		if (n->ops->complete)
			res = n->ops->complete(n, q, s, res);
		if (res == UC_RESUBMITTED)
			;	/* the layer queued s again and holds a new reference */
		else
			uc_sub_error(s, res);
	}
	uc_sub_put(q, s);	/* this CQE's reference */
}

static struct io_uring_sqe *get_sqe(struct uc_queue *q)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);

	if (!sqe) {
		io_uring_submit(&q->ring);
		sqe = io_uring_get_sqe(&q->ring);
	}
	return sqe;
}

/*
 * A read of the kick eventfd stays queued until another thread writes it.
 * Without one, uc_wake() and uc_graph_kick() cannot reach this queue: if the
 * SQ is full and will not submit, the next poll tries again.
 */
static void arm_kick(struct uc_queue *q)
{
	struct io_uring_sqe *sqe;

	if (q->kick_fd < 0 || !(sqe = get_sqe(q)))
		return;
	io_uring_prep_read(sqe, q->kick_fd, &q->kick_buf, sizeof(q->kick_buf), 0);
	io_uring_sqe_set_data64(sqe, UC_UDATA_KICK);
	q->kick_armed = true;
}

bool uc_queue_cqe(struct uc_queue *q, const struct io_uring_cqe *cqe)
{
	if (uc_udata_is_member(cqe->user_data)) {
		uc_queue_member_cqe(q, cqe);
		return true;
	}
	if (cqe->user_data == UC_UDATA_TIMER) {
		q->timer_armed = q->timer_short = false;
		return true;
	}
	if (cqe->user_data == UC_UDATA_TIMER_UPDATE)
		return true;	/* -ENOENT if the timer had fired: its own CQE says so */
	if (cqe->user_data == UC_UDATA_KICK) {
		q->kick_armed = false;
		arm_kick(q);
		return true;
	}
	if (uc_udata_is_watch(cqe->user_data)) {
		uc_watch_cqe(q, cqe);
		return true;
	}
	return cqe->user_data == UC_UDATA_IGNORE;
}

/* io's share of q's arenas, sized for q->g as it is now. */
static void arenas_assign(struct uc_queue *q, struct uc_io *io)
{
	const struct uc_graph *g = q->g;

	io->subs = &q->sub_arena[(size_t)io->tag * g->nr_subs];
	io->iovs = &q->iov_arena[(size_t)io->tag * g->nr_iovs];
	io->privs = &q->priv_arena[(size_t)io->tag * g->nr_subs * g->sub_priv];
	io->priv_stride = g->sub_priv;
}

int uc_queue_resize(struct uc_queue *q)
{
	struct uc_graph *g = q->g;
	unsigned int nr_ios = q->depth + q->nr_internal;
	struct uc_sub *subs = calloc((size_t)nr_ios * g->nr_subs, sizeof(*subs));
	struct iovec *iovs = calloc((size_t)nr_ios * g->nr_iovs, sizeof(*iovs));
	unsigned char *privs = calloc((size_t)nr_ios * g->nr_subs, g->sub_priv ? g->sub_priv : 1);
	struct uc_node **pollers = calloc(g->nr_nodes, sizeof(*pollers));

	if (!subs || !iovs || !privs || !pollers) {
		free(subs);
		free(iovs);
		free(privs);
		free(pollers);
		return -ENOMEM;
	}
	free(q->sub_arena);
	free(q->iov_arena);
	free(q->priv_arena);
	free(q->pollers);
	q->sub_arena = subs;
	q->iov_arena = iovs;
	q->priv_arena = privs;
	q->pollers = pollers;
	for (unsigned int i = 0; i < nr_ios; i++)
		arenas_assign(q, &q->ios[i]);
	q->nr_pollers = 0;
	for (unsigned int i = 0; i < g->nr_nodes; i++)
		if (g->nodes[i]->ops->poll)
			q->pollers[q->nr_pollers++] = g->nodes[i];
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void uc_queue_poll_in(struct uc_queue *q, uint64_t ns)
{
	uint64_t due = now_ns() + ns;

	if (!q->poll_due || due < q->poll_due)
		q->poll_due = due;
}

/* The poll timer fires at due (absolute, CLOCK_MONOTONIC): armed, or moved earlier. */
static void arm_timer(struct uc_queue *q, uint64_t due, bool is_short)
{
	struct io_uring_sqe *sqe;

	/* an armed timer due no later (1 ms slack) serves */
	if (q->timer_armed && q->timer_due <= due + 1000000) {
		q->timer_short |= is_short;
		return;
	}
	if (!(sqe = get_sqe(q)))
		return;
	if (!q->timer_armed) {
		q->tick = (struct __kernel_timespec){ .tv_sec = due / 1000000000,
						      .tv_nsec = due % 1000000000 };
		io_uring_prep_timeout(sqe, &q->tick, 0, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(sqe, UC_UDATA_TIMER);
		q->timer_armed = true;
	} else {
		q->tick_update = (struct __kernel_timespec){ .tv_sec = due / 1000000000,
							     .tv_nsec = due % 1000000000 };
		io_uring_prep_timeout_update(sqe, &q->tick_update, UC_UDATA_TIMER, IORING_TIMEOUT_ABS);
		io_uring_sqe_set_data64(sqe, UC_UDATA_TIMER_UPDATE);
	}
	q->timer_due = due;
	q->timer_short |= is_short;
}

void uc_queue_poll(struct uc_queue *q)
{
	bool again = false;

	if (!q->kick_armed)
		arm_kick(q);
	if (uc_queue_pause_poll(q))
		return;
	if (q->files_gen != atomic_load(&q->g->files_gen))
		uc_queue_files_update(q);
	q->poll_due = 0;
	for (int round = 0;; round++) {
		if (q->waiting)
			uc_wait_run(q);
		for (unsigned int i = 0; i < q->nr_pollers; i++)
			again |= q->pollers[i]->ops->poll(q->pollers[i], q);
		/*
		 * A poll may have woken a wait of this queue: no eventfd comes
		 * for that (uc_wake() from the queue's own thread), so resume
		 * now, and poll again after, as the resumed may have started
		 * work a poll drives. A few rounds, then the kick fd.
		 */
		if (!q->waiting || !uc_wait_woken(q))
			break;
		if (round == 3) {
			if (q->kick_fd >= 0)
				eventfd_write(q->kick_fd, 1);
			break;
		}
	}
	if (again)
		arm_timer(q, now_ns() + 1000000, true);
	else if (q->poll_due)
		arm_timer(q, q->poll_due, false);
}

int uc_queue_turn(struct uc_queue *q)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;
	int ret;

	uc_queue_poll(q);	/* requests started since the last turn may have parked */
	/* nothing pending (a request failed at once): waiting would never end */
	ret = uc_queue_idle(q) ? io_uring_submit(&q->ring) : uc_queue_enter(q);
	if (ret < 0 && ret != -EINTR && ret != -EAGAIN)
		return ret;
	io_uring_for_each_cqe(&q->ring, head, cqe) {
		if (!uc_queue_cqe(q, cqe)) {
			io_uring_cq_advance(&q->ring, n);
			return -EBADMSG;
		}
		n++;
	}
	io_uring_cq_advance(&q->ring, n);
	uc_queue_poll(q);
	return 0;
}

static unsigned int roundup_pow2(unsigned int v)
{
	unsigned int p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

static int ring_setup(struct uc_queue *q, unsigned int entries, unsigned int flags)
{
	static const unsigned int tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int ret = -EINVAL;

	for (unsigned int i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p = { .flags = flags | tries[i] | IORING_SETUP_CQSIZE,
					     .cq_entries = entries * 2 };

		ret = io_uring_queue_init_params(entries, &q->ring, &p);
		if (!ret) {
			q->ring_flags = p.flags;
			return 0;
		}
		if (ret != -EINVAL)
			break;
	}
	return ret;
}

int uc_queue_init(struct uc_queue *q, struct uc_graph *g, unsigned int id, unsigned int depth,
		  unsigned int setup_flags, unsigned int extra_sqes)
{
	unsigned int nr_ios = depth + g->nr_internal;
	unsigned int entries = roundup_pow2(nr_ios * (g->nr_leaves + extra_sqes) + 1);
	size_t ibuf = g->internal_buf > g->dev.max_io ? g->internal_buf : g->dev.max_io;
	int ret;

	memset(q, 0, sizeof(*q));
	q->kick_fd = q->user_copy_fd = -1;
	ibuf = (ibuf + 4095) & ~(size_t)4095;
	q->g = g;
	q->id = id;
	q->depth = depth;
	if (entries > 4096)
		entries = 4096;	/* uc_sub_sqe() submits early if a burst needs more */
	ret = ring_setup(q, entries, setup_flags);
	if (ret)
		return ret;
	q->nr_internal = g->nr_internal;
	q->ios = calloc(nr_ios, sizeof(*q->ios));
	q->sub_arena = calloc((size_t)nr_ios * g->nr_subs, sizeof(*q->sub_arena));
	q->iov_arena = calloc((size_t)nr_ios * g->nr_iovs, sizeof(*q->iov_arena));
	q->priv_arena = calloc((size_t)nr_ios * g->nr_subs, g->sub_priv ? g->sub_priv : 1);
	q->bufs_len = (size_t)depth * g->dev.max_io + (size_t)g->nr_internal * ibuf;
	q->pollers = calloc(g->nr_nodes, sizeof(*q->pollers));
	q->bufs = mmap(NULL, q->bufs_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->bufs == MAP_FAILED)
		q->bufs = NULL;
	if (!q->ios || !q->sub_arena || !q->iov_arena || !q->priv_arena || !q->bufs || !q->pollers) {
		uc_queue_exit(q);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < nr_ios; i++) {
		struct uc_io *io = &q->ios[i];

		io->tag = i;
		arenas_assign(q, io);
		io->internal = i >= depth;
		io->buf = (char *)q->bufs + (io->internal ?
			(size_t)depth * g->dev.max_io + (i - depth) * ibuf : (size_t)i * g->dev.max_io);
	}
	for (unsigned int i = 0; i < g->nr_nodes; i++)
		if (g->nodes[i]->ops->poll)
			q->pollers[q->nr_pollers++] = g->nodes[i];
	/* registered below with the fds of this generation */
	q->files_gen = atomic_load(&g->files_gen);
	atomic_store(&g->files_seen[id], q->files_gen);
	q->pause_gen = atomic_load(&g->pause_gen);
	ret = uc_queue_register_files(q);
	if (ret) {
		uc_queue_exit(q);
		return ret;
	}
	q->kick_fd = eventfd(0, EFD_CLOEXEC);
	if (q->kick_fd < 0) {
		ret = -errno;
		uc_queue_exit(q);
		return ret;
	}
	arm_kick(q);
	pthread_mutex_lock(&g->queues_lock);
	g->kick_fd[id] = q->kick_fd;
	g->queues[id] = q;
	pthread_mutex_unlock(&g->queues_lock);
	q->outer = current_queue;	/* a sync queue made on a queue's thread */
	current_queue = q;
	return 0;
}

void uc_queue_exit(struct uc_queue *q)
{
	if (current_queue == q)
		current_queue = q->outer;
	if (q->g && q->kick_fd >= 0) {
		pthread_mutex_lock(&q->g->queues_lock);
		if (q->g->kick_fd[q->id] == q->kick_fd)
			q->g->kick_fd[q->id] = -1;
		if (q->g->queues[q->id] == q)
			q->g->queues[q->id] = NULL;
		pthread_mutex_unlock(&q->g->queues_lock);
		close(q->kick_fd);
	}
	q->kick_fd = -1;
	uc_watch_drop_all(q);	/* their layers add them to the next queue */
	/* the ring lets go of its files asynchronously: drop them now, so their locks go too */
	if (q->ring.ring_fd > 0 && q->nr_files)
		io_uring_unregister_files(&q->ring);
	q->nr_files = 0;
	if (q->ring.ring_fd > 0)
		io_uring_queue_exit(&q->ring);
	q->ring.ring_fd = -1;
	if (q->bufs)
		munmap(q->bufs, q->bufs_len);
	free(q->ios);
	free(q->pollers);
	q->pollers = NULL;
	free(q->sub_arena);
	free(q->iov_arena);
	free(q->priv_arena);
	q->priv_arena = NULL;
	q->bufs = NULL;
	q->ios = NULL;
	q->sub_arena = NULL;
	q->iov_arena = NULL;
}
