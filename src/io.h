/* SPDX-License-Identifier: MIT */
/*
 * The queue engine: per-tag state, a request's way through the graph and the
 * member I/O completions, on one io_uring. It knows nothing of ublk: the
 * owner feeds requests with uc_queue_start() and gets each one back exactly
 * once through q->commit. src/queue.c drives it from ublk, the unit tests
 * from synthetic descriptors.
 */
#ifndef UC_IO_H
#define UC_IO_H

#include <liburing.h>
#include "graph.h"

struct uc_wait_slot;

/* Vectored I/O on a registered buffer (Linux 6.15); liburing 2.3 predates them. */
#define UC_IORING_OP_READV_FIXED	60
#define UC_IORING_OP_WRITEV_FIXED	61

struct uc_watch;

struct uc_req {
	uint8_t op;		/* enum uc_op, or anything else: -EOPNOTSUPP */
	uint8_t flags;		/* UC_F_* */
	uint64_t off;		/* bytes */
	uint64_t len;		/* bytes */
};

struct uc_io {			/* one per tag, preallocated */
	struct uc_sub *subs;	/* arena: graph->nr_subs slots */
	struct iovec *iovs;	/* arena: graph->nr_iovs entries */
	unsigned char *privs;	/* arena: the subs' private data, priv_stride bytes each */
	unsigned int priv_stride;
	unsigned int nr_subs;	/* slots in use by the current request */
	unsigned int nr_iovs;
	void *buf;		/* max_io bytes, page aligned */
	uint32_t len;		/* bytes of the current request */
	uint16_t tag;
	bool busy;		/* a request is in the graph */
	bool zero_copy;		/* iov_base values are offsets in the kernel's pages */
	bool internal;		/* a layer's own request: done() instead of commit */
	bool held;		/* arrived while the queue was paused: held_req waits */
	struct uc_req held_req;
	void (*done)(struct uc_queue *q, struct uc_io *io, int res);
	void *arg;		/* for done() */
};

struct uc_queue {
	struct io_uring ring;
	struct uc_graph *g;
	unsigned int id;
	unsigned int depth;
	struct uc_io *ios;
	struct uc_sub *sub_arena;
	struct iovec *iov_arena;
	unsigned char *priv_arena;
	void *bufs;
	size_t bufs_len;
	unsigned int nr_internal;	/* internal tags, after the depth ublk tags */
	unsigned int nr_busy;	/* requests in the graph (internal ones too) */
	unsigned int nr_member;	/* member SQEs in flight */
	uint64_t nr_short;	/* short transfers resubmitted (stats, tests) */
	unsigned int ring_flags;	/* setup flags the kernel accepted */
	bool zero_copy;		/* data stays in the kernel's request pages (buffer index = tag) */
	int user_copy_fd;	/* zero copy: the ublk char device for user_copy leaves, else -1 */
	bool stopping;		/* the owner is draining: layers start no new background work */
	bool pausing;		/* uc_graph_pause(): new requests are held, the rest drains */
	bool paused;		/* drained and acknowledged: nothing here touches the graph */
	uint64_t pause_gen;	/* the pause being served */
	unsigned int nr_held;	/* requests held while pausing */
	unsigned int nr_files;	/* leaves registered as fixed files */
	bool timer_armed;	/* the poll timer is in flight */
	bool timer_short;	/* ... because a poll asked to run again soon (1 ms) */
	uint64_t timer_due;	/* its deadline, CLOCK_MONOTONIC ns */
	uint64_t poll_due;	/* earliest uc_queue_poll_in() deadline of this poll, 0: none */
	int kick_fd;		/* eventfd other threads write to wake the ring (uc_graph_kick) */
	bool kick_armed;	/* a read of it is queued or in flight */
	uint64_t kick_buf;
	uint64_t files_gen;	/* graph->files_gen the registered files match */
	struct __kernel_timespec tick, tick_update;
	struct uc_node **pollers;	/* nodes with a poll() op */
	unsigned int nr_pollers;
	struct uc_wait_slot *waiting;	/* waits with subs parked here (wait.h) */
	struct uc_queue *outer;		/* uc_queue_current() of this thread before this queue */
	struct uc_watch **watches;	/* fds layers watch on this ring (uc_watch_add), by slot */
	unsigned int nr_watches;
	uint16_t watch_gen;	/* tells a slot's current watch from a removed one's late CQEs */
	/* a request finished: res is bytes (READ/WRITE), 0, or -errno */
	void (*commit)(struct uc_queue *q, struct uc_io *io, int res);
	void *owner;
};

/*
 * Set up q for graph g (opened): ring with setup_flags plus whichever of
 * SINGLE_ISSUER/DEFER_TASKRUN/COOP_TASKRUN the kernel takes, leaves registered
 * as fixed files, per-tag arenas and buffers. Must run on the thread that
 * will drive the ring. extra_sqes: SQ room the owner needs per tag.
 * Returns 0 or -errno.
 */
int uc_queue_init(struct uc_queue *q, struct uc_graph *g, unsigned int id, unsigned int depth,
		  unsigned int setup_flags, unsigned int extra_sqes);
void uc_queue_exit(struct uc_queue *q);
/*
 * Size q's arenas for q->g as it is now (uc_graph_attach_child, on the
 * admin thread while q is paused). Returns 0 or -ENOMEM (q unchanged).
 */
int uc_queue_resize(struct uc_queue *q);
/* Send a request for tag into the graph; q->commit runs when it is done. */
void uc_queue_start(struct uc_queue *q, unsigned int tag, const struct uc_req *r);
/* Handle one CQE whose user_data is a member I/O. */
void uc_queue_member_cqe(struct uc_queue *q, const struct io_uring_cqe *cqe);
/*
 * Handle a CQE of the engine (member I/O or its timer). Returns false for
 * CQEs that belong to the owner (ublk commands, its own events).
 */
bool uc_queue_cqe(struct uc_queue *q, const struct io_uring_cqe *cqe);
/*
 * Once per loop turn, after reaping and starting requests, before waiting:
 * layers' poll(); arms the timer they ask for.
 */
void uc_queue_poll(struct uc_queue *q);
/* Submit what is queued and wait for at least one CQE. Returns io_uring_submit_and_wait's. */
static inline int uc_queue_enter(struct uc_queue *q)
{
	return io_uring_submit_and_wait(&q->ring, 1);
}
/*
 * One loop turn of a queue whose ring carries nothing but the engine's own
 * CQEs (the unit-test harness, the engine benchmark; the ublk queue thread
 * has its commands too and runs its own loop): poll, submit, wait if
 * anything is pending, every CQE to the engine, poll. Returns 0, -errno of
 * io_uring_enter, or -EBADMSG for a CQE the engine does not own.
 */
int uc_queue_turn(struct uc_queue *q);
/* Layers may start background work (resync, scrub): not while stopping or pausing. */
static inline bool uc_queue_may_start_work(const struct uc_queue *q)
{
	return !q->stopping && !q->pausing;
}
/*
 * True when nothing is in flight: no request, no member I/O, no 1 ms poll
 * timer (a timer only for uc_queue_poll_in() does not count: nothing waits
 * for it, and exiting the ring cancels it).
 */
static inline bool uc_queue_idle(const struct uc_queue *q)
{
	return !q->nr_busy && !q->nr_member && !(q->timer_armed && q->timer_short);
}
/*
 * From a layer's poll(): call the polls of q again within ns even if nothing
 * happens (time-based work: a scan every few seconds, a rate limit). Unlike
 * poll() returning true (1 ms, again and again), the queue sleeps until then.
 */
void uc_queue_poll_in(struct uc_queue *q, uint64_t ns);

/* The queue this thread drives (uc_queue_init() ran here and it is not exited), or NULL. */
struct uc_queue *uc_queue_current(void);

/* n's per-queue state for q (node->qstate_size bytes, its own cache lines). */
static inline void *uc_qstate(const struct uc_node *n, const struct uc_queue *q, size_t size)
{
	assert(n->qstate && size <= n->qstate_size && q->id <= UC_MAX_QUEUES);
	return (char *)n->qstate + (size_t)q->id * n->qstate_stride;
}
#define UC_QSTATE(n, q, type)	((type *)uc_qstate((n), (q), sizeof(type)))

/* s's private data (s->node->sub_priv_size bytes, zeroed when s was made). */
static inline void *uc_sub_priv(const struct uc_sub *s, size_t size)
{
	assert(size <= s->node->sub_priv_size);
	(void)size;
	return s->priv;
}
#define UC_SUB_PRIV(s, type)	((type *)uc_sub_priv((s), sizeof(type)))

/*
 * Watching a file descriptor on the queue's ring: for layers whose leaves
 * talk to something other than a file (a network connection, a timerfd),
 * a core feature any layer may use. The queue polls the fd with one-shot
 * IORING_OP_POLL_ADDs and calls ready() on the queue thread, from its CQE
 * loop, with the events that fired; the layer then does its non-blocking
 * reads and writes. No thread and no blocking call per connection.
 *
 * One-shot, so level-triggered: arming again while data waits fires at
 * once. (A multishot poll fires on new data only: a consumer that does
 * not always read until EAGAIN, like libnbd's one reply per notify, would
 * wait forever on data already there.)
 *
 * The layer owns struct uc_watch and sets fd, ready and arg; the rest is
 * the engine's. Nothing here allocates per I/O.
 */
struct uc_watch {
	int fd;
	/* events: the POLLIN/POLLOUT/POLLERR/POLLHUP bits that fired, or the poll's -errno */
	void (*ready)(struct uc_queue *q, struct uc_watch *w, int events);
	void *arg;
	struct uc_queue *q;	/* the queue it is added to, NULL if none */
	unsigned int slot;	/* in q->watches */
	uint16_t gen;
	uint8_t armed;		/* POLLIN/POLLOUT polls in flight */
};
/*
 * Tie w to q (w->fd, w->ready set; w not on a queue). May allocate: call it
 * once per queue and fd, not per I/O. Returns 0 or -ENOMEM.
 */
int uc_watch_add(struct uc_queue *q, struct uc_watch *w);
/*
 * Poll for events (POLLIN and/or POLLOUT): each one not already armed gets
 * a one-shot poll; ready() runs once when it fires. Returns 0, or -EBUSY
 * if the ring had no room (try again from poll()).
 */
int uc_watch_arm(struct uc_watch *w, unsigned int events);
/*
 * Take w off its queue: its polls are cancelled and ready() is not called
 * again, so the fd may be closed and w freed. No-op if w is on no queue.
 * uc_queue_exit() does this for every watch left on the queue.
 */
void uc_watch_del(struct uc_watch *w);
/* A watch CQE (uc_queue_cqe() calls it). */
void uc_watch_cqe(struct uc_queue *q, const struct io_uring_cqe *cqe);
/* Drop every watch of q (uc_queue_exit()). */
void uc_watch_drop_all(struct uc_queue *q);

/*
 * User copy (src/user_copy.c): a user_copy leaf's READ/WRITE sub of a
 * zero-copy request. in: its iovecs become pointers into the tag's buffer
 * and, for a write, the request's data is copied there; out: a read's data
 * goes back to the request's pages. Both through q->user_copy_fd, a copy
 * between memory and the request's pages (nothing waits on a device).
 * Return 0 or -EIO.
 */
int uc_user_copy_in(struct uc_queue *q, struct uc_sub *s);
int uc_user_copy_out(struct uc_queue *q, struct uc_sub *s);

/*
 * Internal requests: a layer's own I/O (metadata, resync) through the
 * subtree at any node, on the queue's internal tags. uc_internal_get returns
 * a free one (its buf holds max(max_io, graph->internal_buf) bytes) or NULL;
 * uc_internal_start sends op [off, off+len) to node, data in io->buf;
 * done(q, io, res) runs when it ends (res: 0 or -errno) and frees the tag.
 */
struct uc_io *uc_internal_get(struct uc_queue *q);
void uc_internal_start(struct uc_queue *q, struct uc_io *io, struct uc_node *node, int op,
		       unsigned int flags, uint64_t off, uint64_t len,
		       void (*done)(struct uc_queue *, struct uc_io *, int), void *arg);

#endif
