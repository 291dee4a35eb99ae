/* SPDX-License-Identifier: MIT */
/*
 * The nbd layer's connections at work, each on its queue's ring:
 *
 * - A sub becomes NBD commands on the connection (libnbd's aio calls): one
 *   per iovec, in place (libnbd takes one buffer per command; the iovecs of
 *   a stripe's leg are separate pieces of the request's buffer, each
 *   contiguous on the leg), split at the export's maximum block size.
 * - The socket is a uc_watch: POLLIN while libnbd waits for data, POLLOUT
 *   while a send would block; ready() hands the event to libnbd
 *   (nbd_aio_notify_read/write), which runs its state machine and calls
 *   our completion callbacks. Those run with the handle locked: they only
 *   note the result, and the subs end afterwards (reap), outside libnbd.
 *   libnbd reads at most one reply per notify, and a notify on an empty
 *   socket leaves the handle stuck (1.14: REPLY.START, waiting for nothing),
 *   hence one-shot polls, level-triggered (armed again while replies wait,
 *   a poll fires at once), and after each notify a poll(2) that does not
 *   wait to see whether another reply is there to take in the same turn
 *   (measured on the host, 4K reads at QD32: 15-35% more IOPS, 12% less
 *   CPU per I/O than one reply per loop turn).
 * - A timerfd, also a uc_watch: while up, a tick every timeout/4 looks for
 *   requests older than the timeout (subs counted per issue epoch); while
 *   down, the reconnect backoff; while connecting, the deadline.
 * - A lost connection (EOF, a reset, a timeout) is closed: libnbd frees
 *   every command it still holds (cmd_free sees closing and fails its sub
 *   with EIO), new requests fail with EIO, and a new connection is made
 *   after 100 ms, 200 ms, ... up to every 5 s.
 *
 * s->state of an nbd sub: commands in flight (low 16 bits), ST_FLUSH_AFTER,
 * its bounce buffer + 1 (bits 17..21), the issue epoch (bits 24..26);
 * s->mask: the connection; s->scratch: when it was submitted (ns).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include "nbd.h"
#include "events.h"
#include "log.h"

#define CMDS(s)		((s)->state & 0xffff)
#define ST_FLUSH_AFTER	(1U << 16)	/* a FUA write on an export without FUA: flush when written */
#define BOUNCE_SHIFT	17
#define EPOCH_SHIFT	24
#define EPOCH_OF(s)	(((s)->state >> EPOCH_SHIFT) & (NBD_EPOCHS - 1))

/* nbd_close() at teardown: the subs of commands it frees are gone with their queue */
static _Thread_local bool tearing_down;

/* s's bounce buffer, -1 if its pieces go in place */
static int bounce_of(const struct uc_sub *s)
{
	return (int)((s->state >> BOUNCE_SHIFT) & 31) - 1;
}

static struct nbd_conn *conn_of(const struct uc_sub *s)
{
	return &((struct nbd_leaf *)s->node->priv)->conns[s->mask];
}

/* The export's error for the kernel: out of space and unsupported keep their meaning. */
static int leaf_errno(int e)
{
	if (e == ENOSPC || e == EDQUOT)
		return -ENOSPC;
	if (e == ENOTSUP || e == EOPNOTSUPP)
		return -EOPNOTSUPP;
	return -EIO;
}

static void done_push(struct nbd_conn *c, struct uc_sub *s)
{
	s->next = NULL;
	*c->done_tail = s;
	c->done_tail = &s->next;
}

/* One command of s ended (or a bias was dropped). */
static void cmd_end(struct nbd_conn *c, struct uc_sub *s)
{
	assert(CMDS(s));
	s->state--;
	if (!CMDS(s))
		done_push(c, s);
}

/* libnbd: the server answered (or the connection died); the handle is locked. */
static int cmd_done(void *arg, int *error)
{
	struct uc_sub *s = arg;

	if (*error)
		uc_sub_error(s, leaf_errno(*error));
	return 1;	/* retire it: no nbd_aio_command_completed */
}

/*
 * libnbd: the command is gone. Always reached once: after cmd_done, when
 * the aio call failed, or when nbd_close() dropped it unanswered.
 */
static void cmd_free(void *arg)
{
	struct uc_sub *s = arg;
	struct nbd_conn *c;

	if (tearing_down)
		return;
	c = conn_of(s);
	if (c->closing)
		uc_sub_error(s, -EIO);
	cmd_end(c, s);
}

/* One command for s. Returns 0 or -EIO (the aio call failed; cmd_free ran). */
static int cmd(struct nbd_conn *c, struct uc_sub *s, unsigned int op, void *buf, uint64_t len,
	       uint64_t off, uint32_t flags)
{
	nbd_completion_callback cb = { .callback = cmd_done, .user_data = s, .free = cmd_free };
	int64_t r;

	s->state++;
	switch (op) {
	case UC_OP_READ:
		r = nbd_aio_pread(c->h, buf, len, off, cb, 0);
		break;
	case UC_OP_WRITE:
		r = nbd_aio_pwrite(c->h, buf, len, off, cb, flags);
		break;
	case UC_OP_FLUSH:
		r = nbd_aio_flush(c->h, cb, 0);
		break;
	default:
		r = nbd_aio_zero(c->h, len, off, cb, flags);
		break;
	}
	if (r == -1) {
		uc_dbg("%s: nbd command failed: %s", c->nl->node->name, nbd_get_error());
		return -EIO;
	}
	return 0;
}

/*
 * Poll what libnbd waits for: POLLIN while it reads, POLLOUT while a send
 * would block. Returns that direction; 0 means the handle is dead or closed
 * (it died in an aio call: a send that failed), which nbd_leaf_poll acts on.
 */
static unsigned int conn_arm(struct nbd_conn *c)
{
	unsigned int dir, ev = 0;

	if (!c->h)
		return 0;
	dir = nbd_aio_get_direction(c->h);
	if (!c->sock.q)
		return dir;
	if (dir & LIBNBD_AIO_DIRECTION_READ)
		ev |= POLLIN;
	if (dir & LIBNBD_AIO_DIRECTION_WRITE)
		ev |= POLLOUT;
	uc_watch_arm(&c->sock, ev);	/* -EBUSY: armed again by nbd_leaf_poll */
	return dir;
}

static char *bounce_buf(const struct nbd_conn *c, const struct uc_sub *s)
{
	return c->bounce + (size_t)bounce_of(s) * c->nl->node->graph->dev.max_io;
}

/* s's pieces go through a bounce buffer as one command (a write's data copied in). */
static void bounce_take(struct nbd_conn *c, struct uc_sub *s, unsigned int op)
{
	unsigned int b = __builtin_ctz(c->bounce_free);

	c->bounce_free &= ~(1U << b);
	s->state |= (b + 1) << BOUNCE_SHIFT;
	if (op == UC_OP_WRITE)
		uc_iov_copy(s->iov, s->nr_iov, 0, bounce_buf(c, s), s->len, false);
	nbd_leaf_stat_add(&c->bounced, 1);
}

/* s's data is in: a read's goes out to its pieces; the buffer is free again. */
static void bounce_give(struct nbd_conn *c, struct uc_sub *s)
{
	int b = bounce_of(s);

	if (b < 0)
		return;
	if (s->op == UC_OP_READ && !s->result)
		uc_iov_copy(s->iov, s->nr_iov, 0, bounce_buf(c, s), s->len, true);
	c->bounce_free |= 1U << b;
	s->state &= ~(31U << BOUNCE_SHIFT);
}

/*
 * Send s (op: its own, or the FLUSH after a FUA write) as commands on c.
 * Returns 0 or -errno if not all could be sent (those sent still end).
 */
static int sub_issue(struct nbd_conn *c, struct uc_sub *s, unsigned int op)
{
	struct nbd_leaf *nl = c->nl;
	unsigned int epoch = (nbd_leaf_now_ns() / nl->epoch_ns) & (NBD_EPOCHS - 1);
	uint32_t flags = 0;
	uint64_t off = s->off;
	int ret = 0;

	assert(!CMDS(s));	/* iovecs in memory: the copy path, or user copy (layer.h) */
	s->state = (s->state & ST_FLUSH_AFTER) | epoch << EPOCH_SHIFT | 1;	/* 1: a bias */
	if ((op == UC_OP_READ || op == UC_OP_WRITE) && s->nr_iov > 1 &&
	    s->len / s->nr_iov < NBD_BOUNCE_BELOW && c->bounce_free)
		bounce_take(c, s, op);
	c->epochs[epoch]++;
	nbd_leaf_stat_add(&c->inflight, 1);
	if ((s->flags & UC_F_FUA) && op != UC_OP_READ && op != UC_OP_FLUSH) {
		if (nl->can_fua)
			flags |= LIBNBD_CMD_FLAG_FUA;
		else if (nl->can_flush)
			s->state |= ST_FLUSH_AFTER;
	}
	switch (op) {
	case UC_OP_READ:
	case UC_OP_WRITE:
		for (unsigned int i = 0; i < s->nr_iov && !ret; i++) {
			char *p = s->iov[i].iov_base;
			uint64_t left = s->iov[i].iov_len;

			if (bounce_of(s) >= 0) {
				p = bounce_buf(c, s);
				left = i ? 0 : s->len;
			}
			while (left && !ret) {
				uint64_t len = left < nl->max_cmd ? left : nl->max_cmd;

				ret = cmd(c, s, op, p, len, off, flags);
				p += len;
				off += len;
				left -= len;
			}
		}
		break;
	case UC_OP_FLUSH:
		ret = cmd(c, s, op, NULL, 0, 0, 0);
		break;
	case UC_OP_DISCARD:
	case UC_OP_WRITE_ZEROES:
		/*
		 * DISCARD too: a zeroing that may deallocate, so the range reads
		 * back zeroes as from a file leaf (NBD's TRIM leaves it undefined,
		 * and a mirror's copies would then differ).
		 */
		if (op == UC_OP_WRITE_ZEROES && (s->flags & UC_F_NOUNMAP))
			flags |= LIBNBD_CMD_FLAG_NO_HOLE;
		for (uint64_t left = s->len; left && !ret;) {
			uint64_t len = left < NBD_ZERO_MAX ? left : NBD_ZERO_MAX;

			ret = cmd(c, s, op, NULL, len, off, flags);
			off += len;
			left -= len;
		}
		break;
	default:
		ret = -EOPNOTSUPP;
	}
	cmd_end(c, s);	/* the bias */
	conn_arm(c);
	return ret;
}

/* s's commands all ended: the FLUSH after a FUA write, or the end. */
static void sub_finish(struct uc_queue *q, struct nbd_conn *c, struct uc_sub *s)
{
	uint64_t lat;

	c->epochs[EPOCH_OF(s)]--;
	nbd_leaf_stat_add(&c->inflight, -1);
	bounce_give(c, s);
	if (s->state & ST_FLUSH_AFTER) {
		s->state &= ~ST_FLUSH_AFTER;
		if (!s->result && atomic_load(&c->state) != CONN_UP)
			uc_sub_error(s, -EIO);
		if (!s->result) {
			uc_sub_error(s, sub_issue(c, s, UC_OP_FLUSH));
			return;	/* ends through reap again */
		}
	}
	lat = nbd_leaf_now_ns() - s->scratch;
	nbd_leaf_stat_add(&c->requests, 1);
	nbd_leaf_stat_add(&c->lat_ns, lat);
	if (lat > atomic_load_explicit(&c->lat_max_ns, memory_order_relaxed))
		atomic_store_explicit(&c->lat_max_ns, lat, memory_order_relaxed);
	uc_sub_put(q, s);
}

/* End the subs whose commands ended, outside libnbd (their parents may send more). */
static void conn_reap(struct uc_queue *q, struct nbd_conn *c)
{
	struct uc_sub *s;

	while ((s = c->done)) {
		c->done = s->next;
		if (!c->done)
			c->done_tail = &c->done;
		s->next = NULL;
		sub_finish(q, c, s);
	}
}

static void timer_set(struct nbd_conn *c, uint64_t ns, bool periodic)
{
	struct itimerspec its = {
		.it_value = { .tv_sec = ns / 1000000000ULL, .tv_nsec = ns % 1000000000ULL },
	};

	if (periodic)
		its.it_interval = its.it_value;
	timerfd_settime(c->timer_fd, 0, &its, NULL);
}

/* Close c's handle: libnbd frees what it still holds, and those subs fail (EIO). */
static void conn_close(struct nbd_conn *c)
{
	if (!c->h)
		return;
	uc_watch_del(&c->sock);
	c->closing = true;
	nbd_close(c->h);
	c->closing = false;
	c->h = NULL;
}

/* The connection (or an attempt to make it) is gone: try again after the backoff. */
static void conn_lost(struct uc_queue *q, struct nbd_conn *c, int err, const char *why)
{
	struct nbd_leaf *nl = c->nl;
	int was = atomic_load(&c->state);

	conn_close(c);
	atomic_store(&c->state, CONN_DOWN);
	atomic_store(&c->last_err, err);
	if (was == CONN_UP) {
		/* one event per outage of the leaf, not per connection */
		if (!atomic_fetch_add(&nl->nr_down, 1))
			uc_event(nl->node, UC_EV_CONNECTION_LOST, "%s: %s", nl->shown, why);
		c->down_ns = nbd_leaf_now_ns();
		c->attempts = 0;
		c->backoff_ms = NBD_BACKOFF_MIN_MS;
		uc_warn("%s: connection %u to %s lost (%s): its requests fail, reconnecting",
			nl->node->name, c->idx + 1, nl->shown, why);
	} else {
		c->backoff_ms = c->backoff_ms * 2 > NBD_BACKOFF_MAX_MS ? NBD_BACKOFF_MAX_MS :
			c->backoff_ms * 2;
		uc_dbg("%s: reconnect %u to %s failed: %s", nl->node->name, c->attempts, nl->shown,
		       why);
	}
	timer_set(c, c->backoff_ms * 1000000ULL, false);
	conn_reap(q, c);
}

/* A reconnect finished its handshake: the export must still fit the leaf. */
static void conn_ready(struct uc_queue *q, struct nbd_conn *c)
{
	struct nbd_leaf *nl = c->nl;
	char err[256];

	if (nbd_leaf_check(nl->node, c->h, err, sizeof(err))) {
		conn_lost(q, c, EIO, err);
		return;
	}
	atomic_store(&c->state, CONN_UP);
	nbd_leaf_stat_add(&c->reconnects, 1);
	timer_set(c, nl->epoch_ns, true);
	uc_warn("%s: connection %u to %s is back (down %.1f s, %u attempts)", nl->node->name,
		c->idx + 1, nl->shown, (nbd_leaf_now_ns() - c->down_ns) / 1e9, c->attempts);
	if (atomic_fetch_sub(&nl->nr_down, 1) == 1)
		uc_event(nl->node, UC_EV_RECONNECTED, "%s: back after %.1f s", nl->shown,
			 (nbd_leaf_now_ns() - c->down_ns) / 1e9);
	/* the layers above look at the leg's health in their poll: a mirror re-adds it */
	if (!atomic_load(&nl->nr_down))
		uc_graph_kick(nl->node->graph);
}

static void sock_ready(struct uc_queue *q, struct uc_watch *w, int events);

/* Put c's socket on the queue's ring (again, if libnbd moved to another address). */
static void sock_attach(struct uc_queue *q, struct nbd_conn *c)
{
	int fd = c->h ? nbd_aio_get_fd(c->h) : -1;

	/* no socket: the handle died (conn_after closes it), or it has none yet */
	if (fd < 0 || (c->sock.q == q && c->sock.fd == fd))
		return;
	uc_watch_del(&c->sock);
	c->sock = (struct uc_watch){ .fd = fd, .ready = sock_ready, .arg = c };
	if (uc_watch_add(q, &c->sock))
		return;	/* tried again by nbd_leaf_poll */
	conn_arm(c);
}

/* After libnbd ran: lost, just connected, or what to poll for next. */
static void conn_after(struct uc_queue *q, struct nbd_conn *c)
{
	if (nbd_aio_is_dead(c->h) || nbd_aio_is_closed(c->h)) {
		char why[sizeof(c->why)];

		/* a notify's error, else it died sending a request (an aio call hides that) */
		snprintf(why, sizeof(why), "%s", nbd_aio_is_closed(c->h) ? "closed by the server" :
			 c->why[0] ? c->why : "a send failed");
		c->why[0] = 0;
		conn_lost(q, c, ECONNRESET, why);
		return;
	}
	if (atomic_load(&c->state) == CONN_CONNECTING && nbd_aio_is_ready(c->h))
		conn_ready(q, c);
	if (c->h) {
		sock_attach(q, c);
		conn_arm(c);
	}
	conn_reap(q, c);
}

static void sock_ready(struct uc_queue *q, struct uc_watch *w, int events)
{
	struct nbd_conn *c = w->arg;
	unsigned int dir;

	if (events < 0 || (events & (POLLERR | POLLHUP)))
		events |= POLLIN | POLLOUT;	/* let libnbd find out what happened */
	dir = nbd_aio_get_direction(c->h);
	/* only what libnbd waits for: a notify in another state is refused or, worse, reads */
	if ((events & POLLOUT) && (dir & LIBNBD_AIO_DIRECTION_WRITE) &&
	    nbd_aio_notify_write(c->h) == -1)
		snprintf(c->why, sizeof(c->why), "%s", nbd_get_error());
	dir = nbd_aio_get_direction(c->h);
	/*
	 * libnbd reads one reply per notify: while the socket holds more
	 * (a poll(2) that does not wait says so), take them now rather than
	 * one per loop turn. Never on an empty socket (see the top).
	 */
	for (unsigned int k = 0; (events & POLLIN) && k < NBD_REPLIES_PER_EVENT; k++) {
		struct pollfd p = { .fd = c->sock.fd, .events = POLLIN };

		dir = nbd_aio_get_direction(c->h);
		if (!(dir & LIBNBD_AIO_DIRECTION_READ) || nbd_aio_is_dead(c->h))
			break;
		if (nbd_aio_notify_read(c->h) == -1) {
			snprintf(c->why, sizeof(c->why), "%s", nbd_get_error());
			break;
		}
		if (poll(&p, 1, 0) != 1)
			break;
	}
	conn_after(q, c);
}

/* A reconnect attempt: asynchronous from here on (the host name was resolved at start). */
static void conn_start(struct uc_queue *q, struct nbd_conn *c)
{
	struct nbd_leaf *nl = c->nl;

	c->attempts++;
	c->h = nbd_leaf_handle(c);
	if (!c->h) {
		conn_lost(q, c, ENOMEM, "no memory");
		return;
	}
	atomic_store(&c->state, CONN_CONNECTING);
	timer_set(c, nl->timeout_ns, false);
	if (nbd_aio_connect_uri(c->h, nl->connect_uri) == -1) {
		const char *e = nbd_get_error();
		char why[256];

		snprintf(why, sizeof(why), "%s", e ? e : "cannot connect");
		conn_lost(q, c, nbd_get_errno() > 0 ? nbd_get_errno() : EIO, why);
		return;
	}
	conn_after(q, c);
}

/* Requests issued in these epochs are older than the timeout. */
static bool conn_late(const struct nbd_conn *c)
{
	uint64_t e = nbd_leaf_now_ns() / c->nl->epoch_ns;

	for (unsigned int k = NBD_EPOCHS_PER_TIMEOUT + 1; k < NBD_EPOCHS; k++)
		if (c->epochs[(e - k) & (NBD_EPOCHS - 1)])
			return true;
	return false;
}

static void timer_ready(struct uc_queue *q, struct uc_watch *w, int events)
{
	struct nbd_conn *c = w->arg;
	uint64_t ticks;
	char why[96];

	(void)events;
	if (read(c->timer_fd, &ticks, sizeof(ticks)) < 0)
		ticks = 0;	/* EAGAIN: already read */
	uc_watch_arm(&c->timer, POLLIN);
	switch (atomic_load(&c->state)) {
	case CONN_UP:
		if (!conn_late(c))
			break;
		nbd_leaf_stat_add(&c->timeouts, 1);
		snprintf(why, sizeof(why), "a request got no answer in %" PRIu64 " ms",
			 c->nl->timeout_ns / 1000000);
		conn_lost(q, c, ETIMEDOUT, why);
		break;
	case CONN_DOWN:
		if (ticks)
			conn_start(q, c);
		break;
	case CONN_CONNECTING:
		if (ticks)
			conn_lost(q, c, ETIMEDOUT, "no answer to the handshake");
		break;
	}
}

/*
 * Serve c from q: its timer and socket on q's ring. A connection moves
 * once, from the activate-time queue (gone, its watches dropped) to queue 0.
 */
static void conn_attach(struct uc_queue *q, struct nbd_conn *c)
{
	if (c->timer.q != q) {
		uc_watch_del(&c->timer);
		c->timer = (struct uc_watch){ .fd = c->timer_fd, .ready = timer_ready, .arg = c };
		if (uc_watch_add(q, &c->timer))
			return;
		uc_watch_arm(&c->timer, POLLIN);
	}
	if (c->sock.q != q)
		uc_watch_del(&c->sock);
	if (c->h)
		sock_attach(q, c);
}

/* The group of connections queue q serves (the activate-time queue: queue 0's). */
static unsigned int group_of(const struct nbd_leaf *nl, const struct uc_queue *q)
{
	unsigned int g = q->id == UC_SYNC_QUEUE_ID ? 0 : q->id;

	return g < nl->nr_queues ? g : UINT32_MAX;
}

int nbd_leaf_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	struct nbd_leaf *nl = n->priv;
	unsigned int g = group_of(nl, q);
	struct nbd_conn *c = NULL;

	if (s->copy > 1)
		return -ENODATA;	/* there is one copy */
	if (g == UINT32_MAX)
		return -EIO;	/* a queue the device does not have */
	for (unsigned int k = 0; k < nl->nr_conns && !c; k++) {
		struct nbd_conn *t = &nl->conns[g * nl->nr_conns + (nl->rr[q->id] + k) % nl->nr_conns];

		conn_attach(q, t);
		if (atomic_load(&t->state) == CONN_UP)
			c = t;
	}
	nl->rr[q->id]++;
	if (!c)
		return -EIO;	/* no connection: fails at once, so a mirror goes on without the leg */
	if (s->op == UC_OP_FLUSH && !nl->can_flush)
		return 0;	/* the export has no write cache */
	s->mask = c->idx;
	s->state = 0;
	s->scratch = nbd_leaf_now_ns();
	uc_sub_get(s);	/* dropped by sub_finish */
	return sub_issue(c, s, s->op);
}

bool nbd_leaf_poll(struct uc_node *n, struct uc_queue *q)
{
	struct nbd_leaf *nl = n->priv;
	unsigned int g = group_of(nl, q);

	if (g == UINT32_MAX)
		return false;
	for (unsigned int k = 0; k < nl->nr_conns; k++) {
		struct nbd_conn *c = &nl->conns[g * nl->nr_conns + k];

		conn_attach(q, c);
		/* nothing to wait for: the handle died in an aio call (a send failed) */
		if (c->h && !conn_arm(c))
			conn_after(q, c);
		conn_reap(q, c);
	}
	return false;
}

int nbd_leaf_conn_init(struct nbd_conn *c, bool bounce)
{
	if (c->timer_fd >= 0)
		return 0;
	c->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (c->timer_fd < 0)
		return -errno;
	if (bounce) {
		/* untouched pages cost nothing: only the buffers used take memory */
		c->bounce = mmap(NULL, (size_t)NBD_BOUNCE_BUFS * c->nl->node->graph->dev.max_io,
				 PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (c->bounce == MAP_FAILED) {
			c->bounce = NULL;
			return -ENOMEM;
		}
		c->bounce_free = (1U << NBD_BOUNCE_BUFS) - 1;
	}
	timer_set(c, c->nl->epoch_ns, true);	/* up: timeout ticks */
	return 0;
}

void nbd_leaf_conn_free(struct nbd_conn *c)
{
	uc_watch_del(&c->sock);
	uc_watch_del(&c->timer);
	if (c->h) {
		tearing_down = true;
		nbd_close(c->h);
		tearing_down = false;
		c->h = NULL;
	}
	if (c->timer_fd >= 0)
		close(c->timer_fd);
	c->timer_fd = -1;
	if (c->bounce)
		munmap(c->bounce, (size_t)NBD_BOUNCE_BUFS * c->nl->node->graph->dev.max_io);
	c->bounce = NULL;
}
