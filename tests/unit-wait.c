/* SPDX-License-Identifier: MIT */
/*
 * The engine's primitives for layers (wait.h, io.h): subs parked on a named
 * condition and woken from any thread (only the queues that wait are
 * signalled, no timer runs meanwhile), per-queue state on cache lines of
 * its own, typed per-sub private data. A test-only layer, "gate", parks
 * every request whose ticket is not below its gate; opening the gate wakes
 * them.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"
#include "testlib.h"
#include "udata.h"
#include "wait.h"

/* ---- the gate layer: pass-through over one child ---- */

struct gate {
	pthread_mutex_t lock;		/* the condition: wakers change it under this */
	uint64_t open_below;		/* tickets below this pass */
	_Atomic bool open_in_poll;	/* the gate's poll opens it (once) */
	_Atomic uint64_t tickets;
	struct uc_wait opened;
};

struct gate_sub {			/* UC_SUB_PRIV */
	uint64_t ticket;
	uint32_t resumes;
	uint8_t parked;
};

struct gate_q {				/* UC_QSTATE: this queue's thread only */
	uint64_t passed, parked, resumed;
};

static void gate_resume(struct uc_node *n, struct uc_queue *q, struct uc_sub *s);

static int gate_parse(struct uc_node *n, const config_setting_t *cfg)
{
	static const char *const keys[] = { "type", "children", NULL };
	struct gate *g = calloc(1, sizeof(*g));
	int ret;

	if (!g)
		return -ENOMEM;
	n->priv = g;
	pthread_mutex_init(&g->lock, NULL);
	g->open_below = UINT64_MAX;
	if (uc_conf_check_keys(cfg, keys, "gate") || (ret = uc_node_parse_children(n, cfg, 1)))
		return -EINVAL;
	n->size = n->children[0]->size;
	n->can_discard = n->children[0]->can_discard;
	n->sub_priv_size = sizeof(struct gate_sub);
	n->qstate_size = sizeof(struct gate_q);
	return uc_wait_init(&g->opened, n, "gate open", gate_resume);
}

static void gate_close(struct uc_node *n)
{
	struct gate *g = n->priv;

	if (!g)
		return;
	uc_wait_free(&g->opened);
	free(g);
	n->priv = NULL;
}

static void pass(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	UC_QSTATE(n, q, struct gate_q)->passed++;
	uc_child_submit(q, s, 0, s->off, s->len, s->iov, s->nr_iov);
}

/* Pass s, or park it until the gate opens past its ticket (lock held by the caller). */
static bool gate_try(struct uc_node *n, struct gate *g, struct uc_queue *q, struct uc_sub *s)
{
	struct gate_sub *gs = UC_SUB_PRIV(s, struct gate_sub);

	if (gs->ticket < g->open_below)
		return true;
	gs->parked = 1;
	UC_QSTATE(n, q, struct gate_q)->parked++;
	uc_park(q, &g->opened, s);
	return false;
}

static int gate_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	struct gate *g = n->priv;
	struct gate_sub *gs = UC_SUB_PRIV(s, struct gate_sub);
	bool go;

	if (gs->parked || gs->ticket || gs->resumes)
		return -EPROTO;	/* private data must start zeroed */
	gs->ticket = atomic_fetch_add(&g->tickets, 1);
	pthread_mutex_lock(&g->lock);
	go = gate_try(n, g, q, s);
	pthread_mutex_unlock(&g->lock);
	if (go)
		pass(n, q, s);
	return 0;
}

static void gate_resume(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	struct gate *g = n->priv;
	struct gate_sub *gs = UC_SUB_PRIV(s, struct gate_sub);
	bool go;

	gs->parked = 0;
	gs->resumes++;
	UC_QSTATE(n, q, struct gate_q)->resumed++;
	pthread_mutex_lock(&g->lock);
	go = gate_try(n, g, q, s);
	pthread_mutex_unlock(&g->lock);
	if (go)
		pass(n, q, s);
}

/* Tickets below t pass from now on: the waker's side (any thread). */
static void gate_open(struct gate *g, uint64_t t)
{
	pthread_mutex_lock(&g->lock);
	g->open_below = t;
	pthread_mutex_unlock(&g->lock);
	uc_wake(&g->opened);
}

/* A poll that changes the condition: the waker is the queue's own thread, inside its poll. */
static bool gate_poll(struct uc_node *n, struct uc_queue *q)
{
	struct gate *g = n->priv;

	(void)q;
	if (atomic_exchange(&g->open_in_poll, false))
		gate_open(g, UINT64_MAX);
	return false;
}

static const struct uc_layer_ops gate_ops = {
	.name = "gate", .parse = gate_parse, .close = gate_close, .submit = gate_submit,
	.poll = gate_poll,
};

#define GATE_CONF \
	"device = { max_io = \"64K\"; };\n" \
	"volume = { type = \"gate\"; children = ( { type = \"file\"; path = \"gate.img\"; size = \"4M\"; } ); };\n"

/* ---- a second queue on a thread of its own, counting the kicks it gets ---- */

struct side_queue {
	struct uc_graph *g;
	struct uc_queue q;
	_Atomic int state;	/* 0 starting, 1 serving, 2 stop, -1 failed */
	_Atomic unsigned int kicks;
	pthread_t thread;
};

static void side_commit(struct uc_queue *q, struct uc_io *io, int res)
{
	(void)q, (void)io, (void)res;
}

static void *side_thread(void *arg)
{
	struct side_queue *sq = arg;

	if (uc_queue_init(&sq->q, sq->g, 1, 4, 0, 0)) {
		atomic_store(&sq->state, -1);
		return NULL;
	}
	sq->q.commit = side_commit;
	atomic_store(&sq->state, 1);
	while (atomic_load(&sq->state) == 1) {
		struct __kernel_timespec ts = { .tv_nsec = 20 * 1000000L };
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;

		uc_queue_poll(&sq->q);
		io_uring_submit_and_wait_timeout(&sq->q.ring, &cqe, 1, &ts, NULL);
		io_uring_for_each_cqe(&sq->q.ring, head, cqe) {
			if (cqe->user_data == UC_UDATA_KICK)
				atomic_fetch_add(&sq->kicks, 1);
			uc_queue_cqe(&sq->q, cqe);
			n++;
		}
		io_uring_cq_advance(&sq->q.ring, n);
	}
	uc_queue_exit(&sq->q);
	return NULL;
}

struct opener {
	struct gate *g;
	uint64_t below;
	unsigned int delay_us;
};

static void *opener_thread(void *arg)
{
	struct opener *o = arg;

	usleep(o->delay_us);
	gate_open(o->g, o->below);
	return NULL;
}

/* Start a write of 4K at tag t (no model: the gate test only counts completions). */
static void start_write(struct harness *h, unsigned int t, uint64_t off)
{
	h->reqs[t] = (struct uc_req){ .op = UC_OP_WRITE, .off = off, .len = 4096 };
	h->done[t] = false;
	h->inflight++;
	harness_fill(h, h->q.ios[t].buf, 4096);
	memcpy(h->model + off, h->q.ios[t].buf, 4096);
	uc_queue_start(&h->q, t, &h->reqs[t]);
}

/*
 * Subs parked on queue 0 are woken from another thread: only queue 0 gets a
 * kick (queue 1 has nobody waiting), no poll timer runs while they wait, and
 * each sub's private data and the queue's state say what happened.
 */
static int test_wake_only_waiting_queues(void)
{
	struct side_queue sq = { 0 };
	struct opener o;
	struct harness h;
	struct gate *g;
	struct gate_q *gq;
	pthread_t t;

	if (harness_open(&h, conf("gate.conf", GATE_CONF)))
		return T_FAIL;
	g = h.g.root->priv;
	sq.g = &h.g;
	CHECK(!pthread_create(&sq.thread, NULL, side_thread, &sq), "pthread_create");
	while (!atomic_load(&sq.state))
		usleep(1000);
	CHECK(atomic_load(&sq.state) == 1, "side queue");
	gate_open(g, 0);	/* closed for every ticket */
	for (unsigned int i = 0; i < 8; i++)
		start_write(&h, i, i * 4096ULL);
	uc_queue_poll(&h.q);	/* what a loop turn does before it waits */
	CHECK(uc_wait_parked(&g->opened, &h.q) == 8, "%u parked, want 8",
	      uc_wait_parked(&g->opened, &h.q));
	CHECK(!h.q.timer_armed, "a poll timer runs while subs are parked");
	CHECK(atomic_load(&g->opened.waiters[0]) == 1, "waiters %#llx, want queue 0 only",
	      (unsigned long long)atomic_load(&g->opened.waiters[0]));
	/* opened from another thread while this one sleeps in io_uring_enter */
	o = (struct opener){ .g = g, .below = UINT64_MAX, .delay_us = 50000 };
	CHECK(!pthread_create(&t, NULL, opener_thread, &o), "pthread_create");
	alarm(20);	/* a lost wake-up hangs the next call */
	CHECK(!harness_reap(&h, 0), "reap");
	alarm(0);
	pthread_join(t, NULL);
	CHECK(!h.failures, "%d failures", h.failures);
	gq = UC_QSTATE(h.g.root, &h.q, struct gate_q);
	CHECK(gq->parked == 8 && gq->resumed == 8 && gq->passed == 8,
	      "parked %llu resumed %llu passed %llu", (unsigned long long)gq->parked,
	      (unsigned long long)gq->resumed, (unsigned long long)gq->passed);
	CHECK(atomic_load(&g->opened.kicks) == 1, "%llu kicks, want 1 (queue 0)",
	      (unsigned long long)atomic_load(&g->opened.kicks));
	CHECK(!atomic_load(&g->opened.waiters[0]) && !atomic_load(&g->opened.waiters[1]),
	      "waiters left");
	CHECK(!atomic_load(&sq.kicks), "queue 1 was kicked %u times with nobody waiting there",
	      atomic_load(&sq.kicks));
	/* the per-queue slots sit on separate cache lines */
	CHECK((char *)UC_QSTATE(h.g.root, &sq.q, struct gate_q) - (char *)gq >= UC_CACHELINE &&
	      !((uintptr_t)gq % UC_CACHELINE), "per-queue state shares a cache line");

	/* woken by the queue's own thread: no eventfd, resumed at its next poll */
	gate_open(g, atomic_load(&g->tickets));
	for (unsigned int i = 0; i < 4; i++)
		start_write(&h, i, i * 4096ULL);
	CHECK(uc_wait_parked(&g->opened, &h.q) == 4, "%u parked", uc_wait_parked(&g->opened, &h.q));
	gate_open(g, UINT64_MAX);
	CHECK(!harness_reap(&h, 0), "reap");
	CHECK(atomic_load(&g->opened.kicks) == 1, "a wake-up from the queue's own thread sent a kick");
	atomic_store(&sq.state, 2);
	pthread_join(sq.thread, NULL);
	CHECK(one(&h, UC_OP_READ, 0, 64 * K) == 64 * K, "data through the gate");
	harness_close(&h);
	return T_PASS;
}

/*
 * A poll hook that wakes a wait of its own queue (a state change found in
 * poll: a window released, an epoch ended without I/O): the subs parked
 * there resume in that same poll. The wake-up sends no eventfd (it is the
 * queue's own thread) and the engine had already resumed the woken waits
 * for this poll, so they stayed parked and the queue slept with nothing in
 * flight to wake it.
 */
static int test_wake_from_own_poll(void)
{
	struct harness h;
	struct gate *g;

	if (harness_open(&h, conf("gate3.conf", GATE_CONF)))
		return T_FAIL;
	g = h.g.root->priv;
	gate_open(g, 0);
	for (unsigned int i = 0; i < 4; i++)
		start_write(&h, i, i * 4096ULL);
	uc_queue_poll(&h.q);
	CHECK(uc_wait_parked(&g->opened, &h.q) == 4, "%u parked", uc_wait_parked(&g->opened, &h.q));
	atomic_store(&g->open_in_poll, true);
	uc_queue_poll(&h.q);	/* the gate's poll opens it */
	CHECK(!uc_wait_parked(&g->opened, &h.q), "%u subs still parked after the poll that woke them",
	      uc_wait_parked(&g->opened, &h.q));
	CHECK(!atomic_load(&g->opened.kicks), "a kick to the queue's own thread");
	alarm(20);
	CHECK(!harness_reap(&h, 0), "reap");
	alarm(0);
	CHECK(!h.failures, "%d failures", h.failures);
	harness_close(&h);
	return T_PASS;
}

struct stepper {
	struct gate *g;
	_Atomic bool stop;
	uint64_t opens;
};

/* Opens the gate a little further, again and again, from another thread. */
static void *stepper_thread(void *arg)
{
	struct stepper *st = arg;

	while (!atomic_load(&st->stop)) {
		gate_open(st->g, atomic_load(&st->g->tickets) - 1);	/* the newest waits */
		st->opens++;
		usleep(t_rand() % 50);
	}
	return NULL;
}

/*
 * Parks and wake-ups race: a thread opens the gate step by step while
 * requests keep parking and resuming. Every request completes (a lost
 * wake-up would leave one parked with nothing to wake it: the alarm fires).
 */
static int test_no_lost_wakeups(void)
{
	struct stepper st = { 0 };
	struct harness h;
	pthread_t t;
	uint64_t resumed;

	if (harness_open(&h, conf("gate2.conf", GATE_CONF)))
		return T_FAIL;
	st.g = h.g.root->priv;
	gate_open(st.g, 0);
	CHECK(!pthread_create(&t, NULL, stepper_thread, &st), "pthread_create");
	alarm(60);
	for (unsigned int i = 0; i < 20000; i++) {
		int tag = -1;

		while (tag < 0) {
			for (unsigned int k = 0; k < DEPTH && tag < 0; k++)
				if (h.done[k])
					tag = k;
			if (tag < 0 && harness_reap(&h, h.inflight - 1))
				break;
		}
		CHECK(tag >= 0, "no tag");
		start_write(&h, tag, (uint64_t)(t_rand() % 1024) * 4096);
	}
	gate_open(st.g, UINT64_MAX);
	CHECK(!harness_reap(&h, 0), "reap");
	alarm(0);
	atomic_store(&st.stop, true);
	pthread_join(t, NULL);
	resumed = UC_QSTATE(h.g.root, &h.q, struct gate_q)->resumed;
	printf("  20000 requests, %llu resumes, %llu gate steps, %llu kicks\n",
	       (unsigned long long)resumed, (unsigned long long)st.opens,
	       (unsigned long long)atomic_load(&st.g->opened.kicks));
	CHECK(!h.failures, "%d failures", h.failures);
	CHECK(resumed > 1000, "only %llu resumes: the race was not exercised",
	      (unsigned long long)resumed);
	harness_close(&h);
	return T_PASS;
}

/* ---- uc_queue_poll_in(): a layer that wants its poll called at a time ---- */

struct ticker {
	uint64_t poll_in;	/* ns to ask for at each poll, 0: none */
	bool again;		/* poll returns this (true: the 1 ms timer) */
	unsigned int polls;
};

static int ticker_parse(struct uc_node *n, const config_setting_t *cfg)
{
	n->priv = calloc(1, sizeof(struct ticker));
	if (!n->priv || uc_node_parse_children(n, cfg, 1))
		return -EINVAL;
	n->size = n->children[0]->size;
	return 0;
}

static void ticker_close(struct uc_node *n)
{
	free(n->priv);
	n->priv = NULL;
}

static int ticker_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	(void)n;
	uc_child_submit(q, s, 0, s->off, s->len, s->iov, s->nr_iov);
	return 0;
}

static bool ticker_poll(struct uc_node *n, struct uc_queue *q)
{
	struct ticker *t = n->priv;

	t->polls++;
	if (t->poll_in)
		uc_queue_poll_in(q, t->poll_in);
	return t->again;
}

static const struct uc_layer_ops ticker_ops = {
	.name = "ticker", .parse = ticker_parse, .close = ticker_close, .submit = ticker_submit,
	.poll = ticker_poll,
};

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Wait (at most limit s) for the queue's poll timer; returns the seconds it took, or -1. */
static double wait_timer(struct uc_queue *q, double limit)
{
	double t0 = mono();

	while (q->timer_armed && mono() - t0 < limit) {
		struct __kernel_timespec ts = { .tv_nsec = 100 * 1000000L };
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;

		io_uring_submit_and_wait_timeout(&q->ring, &cqe, 1, &ts, NULL);
		io_uring_for_each_cqe(&q->ring, head, cqe) {
			uc_queue_cqe(q, cqe);
			n++;
		}
		io_uring_cq_advance(&q->ring, n);
	}
	return q->timer_armed ? -1 : mono() - t0;
}

/*
 * A poll that asks to run again in 200 ms sleeps that long (no 1 ms ticks
 * meanwhile) and the queue counts as idle; a poll that wants 1 ms while such
 * a timer is armed moves it earlier.
 */
static int test_poll_in(void)
{
	struct harness h;
	struct ticker *t;
	double took;

	if (harness_open(&h, conf("ticker.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"ticker\"; children = ( { type = \"file\"; path = \"tick.img\"; size = \"1M\"; } ); };\n")))
		return T_FAIL;
	t = h.g.root->priv;
	t->poll_in = 200 * 1000000ULL;
	uc_queue_poll(&h.q);
	CHECK(h.q.timer_armed && uc_queue_idle(&h.q), "armed %d, idle %d", h.q.timer_armed,
	      uc_queue_idle(&h.q));
	took = wait_timer(&h.q, 5);
	CHECK(took >= 0.15 && took < 2, "the timer fired after %.3f s, want 0.2", took);

	/* armed for 10 s; a poll that wants 1 ms brings it forward */
	t->poll_in = 10 * 1000000000ULL;
	CHECK(!harness_drain(&h), "drain");
	while (h.q.timer_armed)
		wait_timer(&h.q, 5);
	uc_queue_poll(&h.q);
	CHECK(h.q.timer_armed && h.q.timer_due > 0, "armed");
	t->again = true;
	uc_queue_poll(&h.q);
	CHECK(!uc_queue_idle(&h.q), "a 1 ms poll timer counts as pending");
	took = wait_timer(&h.q, 5);
	CHECK(took >= 0 && took < 1, "the 10 s timer was not moved earlier: %.3f s", took);
	t->again = false;
	t->poll_in = 0;
	CHECK(one(&h, UC_OP_WRITE, 0, 64 * K) == 64 * K, "write through");
	harness_close(&h);
	return T_PASS;
}

/* Fill q's SQ with NOPs that post nothing, leaving room for `left` SQEs. */
static unsigned int fill_sq(struct uc_queue *q, unsigned int left)
{
	struct io_uring_sqe *sqe;
	unsigned int nr = 0;

	while (io_uring_sq_space_left(&q->ring) > left && (sqe = io_uring_get_sqe(&q->ring))) {
		io_uring_prep_nop(sqe);
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		nr++;
	}
	return nr;
}

/*
 * A file I/O that finds the SQ full waits in the leaf's per-queue list and
 * poll issues it again. While other member I/O is in flight its completion
 * brings the queue back, so poll asks for no timer (it returned true, a
 * 1 ms timer on every turn, until the ring had room); only with nothing in
 * flight does it keep the 1 ms retry. The I/O goes through either way, in
 * order, with the right data.
 */
static int test_file_full_sq(void)
{
	struct harness h;
	struct uc_node *leaf;
	int fd;

	if (harness_open(&h, conf("fsq.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"stripe\"; chunk = \"4K\"; children = (\n"
		"  { type = \"file\"; name = \"a\"; path = \"fsq-a.img\"; size = \"1M\"; },\n"
		"  { type = \"file\"; name = \"b\"; path = \"fsq-b.img\"; size = \"1M\"; } ); };\n")))
		return T_FAIL;
	leaf = uc_graph_find(&h.g, "b");
	CHECK(leaf, "leaf b");

	/* room for one SQE and no submission: leg a takes it, leg b waits */
	fill_sq(&h.q, 1);
	fd = h.q.ring.enter_ring_fd;
	h.q.ring.enter_ring_fd = -1;
	issue(&h, UC_OP_WRITE, 0, 0, 8 * K);
	CHECK(h.q.nr_member == 1, "%u member SQEs, want leg a's", h.q.nr_member);
	CHECK(!leaf->ops->poll(leaf, &h.q), "leg b waits with leg a's write in flight: "
	      "poll asked for the 1 ms timer");
	h.q.ring.enter_ring_fd = fd;
	CHECK(!harness_drain(&h), "drain");
	CHECK(h.results[0] == 8 * K, "the write: %d", h.results[0]);

	/* nothing else in flight: the retry timer is all that brings the queue back */
	fill_sq(&h.q, 0);
	h.q.ring.enter_ring_fd = -1;
	issue(&h, UC_OP_WRITE, 0, 4 * K, 4 * K);
	CHECK(h.q.nr_member == 0, "%u member SQEs", h.q.nr_member);
	CHECK(leaf->ops->poll(leaf, &h.q), "leg b waits with nothing in flight and no timer");
	h.q.ring.enter_ring_fd = fd;
	CHECK(!harness_drain(&h), "drain");
	CHECK(h.results[0] == 4 * K, "the write: %d", h.results[0]);
	CHECK(one(&h, UC_OP_READ, 0, 64 * K) == 64 * K, "read back");
	harness_close(&h);
	return T_PASS;
}

/*
 * The kick read is what uc_wake() reaches another queue through. When its
 * CQE comes while the SQ is full and cannot be submitted, the read is armed
 * again at the next poll; it was dropped for good, so every later wake-up
 * of that queue was lost (its parked subs waited for an unrelated CQE).
 */
static int test_kick_rearmed(void)
{
	struct harness h;
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { .tv_sec = 2 };
	int fd, ret;

	if (harness_open(&h, conf("kick.conf",
		"volume = { type = \"file\"; path = \"kick.img\"; size = \"1M\"; };\n")))
		return T_FAIL;
	CHECK(!harness_drain(&h) && io_uring_submit(&h.q.ring) >= 0, "drain");
	eventfd_write(h.q.kick_fd, 1);
	ret = io_uring_wait_cqe_timeout(&h.q.ring, &cqe, &ts);
	CHECK(!ret && cqe->user_data == UC_UDATA_KICK, "the first kick: %d %llx", ret,
	      ret ? 0ULL : (unsigned long long)cqe->user_data);
	/* its CQE is handled with the SQ full and io_uring_enter failing */
	fill_sq(&h.q, 0);
	fd = h.q.ring.enter_ring_fd;
	h.q.ring.enter_ring_fd = -1;
	CHECK(uc_queue_cqe(&h.q, cqe), "kick CQE");
	io_uring_cqe_seen(&h.q.ring, cqe);
	h.q.ring.enter_ring_fd = fd;
	CHECK(io_uring_submit(&h.q.ring) >= 0, "submit the NOPs");
	uc_queue_poll(&h.q);
	io_uring_submit(&h.q.ring);
	eventfd_write(h.q.kick_fd, 1);
	ret = io_uring_wait_cqe_timeout(&h.q.ring, &cqe, &ts);
	CHECK(!ret && cqe->user_data == UC_UDATA_KICK, "the second kick was not seen: %d", ret);
	CHECK(uc_queue_cqe(&h.q, cqe), "kick CQE");
	io_uring_cqe_seen(&h.q.ring, cqe);
	CHECK(one(&h, UC_OP_WRITE, 0, 4 * K) == 4 * K, "write");
	harness_close(&h);
	return T_PASS;
}

static void no_resume(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	(void)n, (void)q, (void)s;
	abort();	/* nothing is parked in test_watch */
}

struct waker {
	struct uc_wait *w;
};

static void *waker_thread(void *arg)
{
	uc_wake(((struct waker *)arg)->w);
	return NULL;
}

/* Wake w from another thread, and wait (2 s at most) for q's kick CQE. Returns 0 if it came. */
static int wake_elsewhere(struct uc_queue *q, struct uc_wait *w)
{
	struct __kernel_timespec ts = { .tv_sec = 2 };
	struct waker wk = { w };
	struct io_uring_cqe *cqe;
	pthread_t t;
	int ret;

	io_uring_submit(&q->ring);
	if (pthread_create(&t, NULL, waker_thread, &wk))
		return -1;
	pthread_join(t, NULL);
	ret = io_uring_wait_cqe_timeout(&q->ring, &cqe, &ts);
	if (ret)
		return ret;
	ret = cqe->user_data == UC_UDATA_KICK ? 0 : -EPROTO;
	uc_queue_cqe(q, cqe);
	io_uring_cqe_seen(&q->ring, cqe);
	return ret;
}

/*
 * uc_wait_watch(): what waits is not a sub (a layer's own job). The queue
 * is kicked by the next uc_wake() from another thread and its poll hooks
 * run; after that it is no longer watching, and a wake-up reaches nobody.
 */
static int test_watch(void)
{
	struct harness h;
	struct ticker *t;
	struct uc_wait w;
	unsigned int polls;

	if (harness_open(&h, conf("watch.conf",
		"volume = { type = \"ticker\"; children = ( { type = \"file\"; path = \"watch.img\"; size = \"1M\"; } ); };\n")))
		return T_FAIL;
	t = h.g.root->priv;
	CHECK(!uc_wait_init(&w, h.g.root, "test watch", no_resume), "init");
	CHECK(!harness_drain(&h), "drain");
	uc_wait_watch(&h.q, &w);
	uc_wait_watch(&h.q, &w);	/* twice is once */
	CHECK(atomic_load(&w.waiters[0]) == 1, "waiters %#llx", (unsigned long long)atomic_load(&w.waiters[0]));
	CHECK(!wake_elsewhere(&h.q, &w), "the watching queue got no kick");
	polls = t->polls;
	uc_queue_poll(&h.q);
	CHECK(t->polls > polls, "the poll hooks did not run");
	CHECK(!atomic_load(&w.waiters[0]) && !uc_wait_woken(&h.q) && !h.q.waiting,
	      "still watching after the poll");
	CHECK(atomic_load(&w.kicks) == 1, "%llu kicks", (unsigned long long)atomic_load(&w.kicks));
	CHECK(wake_elsewhere(&h.q, &w) == -ETIME, "a queue that no longer watches was kicked");
	CHECK(atomic_load(&w.kicks) == 1, "%llu kicks", (unsigned long long)atomic_load(&w.kicks));
	uc_wait_free(&w);
	harness_close(&h);
	return T_PASS;
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "unit-wait: a parked request was never woken (alarm)\n";

	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(1);
}

int main(void)
{
	static const struct t_case cases[] = {
		{ "wake_only_waiting_queues", test_wake_only_waiting_queues },
		{ "no_lost_wakeups", test_no_lost_wakeups },
		{ "wake_from_own_poll", test_wake_from_own_poll },
		{ "poll_in", test_poll_in },
		{ "file_full_sq", test_file_full_sq },
		{ "kick_rearmed", test_kick_rearmed },
		{ "watch", test_watch },
	};
	struct io_uring ring;

	if (io_uring_queue_init(2, &ring, 0)) {
		fprintf(stderr, "no io_uring here\n");
		return T_SKIP;
	}
	io_uring_queue_exit(&ring);
	signal(SIGALRM, on_alarm);
	uc_layer_add(&gate_ops);
	uc_layer_add(&ticker_ops);
	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
