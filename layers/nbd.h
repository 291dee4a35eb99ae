/* SPDX-License-Identifier: MIT */
/*
 * The nbd layer's internals, shared by its files:
 *   nbd.c       config, the connections made at start, status, the ops table
 *   nbd_conn.c  requests as NBD commands, the connection driven from the
 *               queue's ring (uc_watch), timeouts, reconnecting
 */
#ifndef UC_NBD_H
#define UC_NBD_H

#include <libnbd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "graph.h"
#include "io.h"

#define NBD_EPOCHS		8	/* timeout buckets (a power of two) */
#define NBD_EPOCHS_PER_TIMEOUT	4	/* a request is late after this many epochs */
#define NBD_BACKOFF_MIN_MS	100	/* first reconnect attempt after a loss */
#define NBD_BACKOFF_MAX_MS	5000	/* attempts at least this often */
#define NBD_ZERO_MAX		(1ULL << 30)	/* bytes per WRITE_ZEROES command */
/*
 * A request in several pieces (a stripe leg's share) smaller than this on
 * average is copied into a bounce buffer and sent as one command: a command
 * costs the client about 5 us of CPU (libnbd, syscalls), a 4K copy 0.2 us.
 * Larger pieces go in place, one command each (tools/bench/nbd-iov.c).
 */
#define NBD_BOUNCE_BELOW	(64 << 10)
#define NBD_BOUNCE_BUFS		8	/* per connection, max_io bytes each */
#define NBD_REPLIES_PER_EVENT	32	/* replies one POLLIN may take before the loop goes on */

enum nbd_conn_state { CONN_UP, CONN_DOWN, CONN_CONNECTING };

/*
 * One NBD connection, served by one queue thread (q->id picks its group of
 * nl->nr_conns; the activate-time queue uses group 0 before queue 0 runs).
 */
struct nbd_conn {
	struct nbd_leaf *nl;
	unsigned int idx;		/* in nl->conns */
	struct nbd_handle *h;		/* NULL while down */
	struct uc_watch sock;		/* the connection's socket on the queue's ring */
	struct uc_watch timer;		/* timer_fd: timeout ticks while up, backoff while down */
	int timer_fd;
	bool closing;			/* nbd_close() runs: the commands it drops failed */
	struct uc_sub *done;		/* subs whose commands all ended, ended outside libnbd */
	struct uc_sub **done_tail;
	uint32_t epochs[NBD_EPOCHS];	/* subs in flight by the epoch they were issued in */
	char *bounce;			/* NBD_BOUNCE_BUFS buffers of max_io (NULL: pieces in place) */
	uint32_t bounce_free;		/* bit i: buffer i is free */
	unsigned int backoff_ms;
	unsigned int attempts;		/* reconnect attempts since the loss */
	uint64_t down_ns;		/* when it was lost */
	char why[160];			/* what a notify that failed said, for the log */
	/* written by the serving thread only; status reads them */
	_Atomic int state;		/* enum nbd_conn_state */
	_Atomic uint64_t inflight, requests, lat_ns, lat_max_ns, reconnects, timeouts, bounced;
	_Atomic int last_err;		/* errno of the last loss (ETIMEDOUT: a request timed out) */
};

struct nbd_leaf {
	struct uc_node *node;
	char *uri;			/* as configured */
	char *shown;			/* for status and messages: no password */
	char *connect_uri;		/* for reconnects: a host name resolved at start (not TLS) */
	unsigned int nr_queues;		/* device queues */
	unsigned int nr_conns;		/* connections per queue */
	uint64_t timeout_ns;		/* per request, and per connect attempt */
	uint64_t epoch_ns;		/* timeout / NBD_EPOCHS_PER_TIMEOUT */
	uint64_t export_size;		/* bytes, at start */
	uint64_t max_cmd;		/* bytes of data per command (the export's maximum block size) */
	bool can_flush, can_fua, can_zero, multi_conn, tls;
	struct nbd_conn *conns;		/* nr_queues * nr_conns */
	_Atomic unsigned int nr_down;	/* connections not up: the leg is degraded */
	unsigned int rr[UC_MAX_QUEUES + 1];	/* per queue: next connection of its group */
};

static inline uint64_t nbd_leaf_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* A counter only the serving thread writes: no locked instruction. */
static inline void nbd_leaf_stat_add(_Atomic uint64_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
			      memory_order_relaxed);
}

/* nbd.c */
/* A handle set up as every connection of the layer is (not connected), named for c. */
struct nbd_handle *nbd_leaf_handle(const struct nbd_conn *c);
/*
 * The export on h (connected) can serve leaf n: big enough, writable, the
 * flags n was set up with. Returns 0, or -EINVAL with why in err.
 */
int nbd_leaf_check(const struct uc_node *n, struct nbd_handle *h, char *err, size_t len);

/* nbd_conn.c */
int nbd_leaf_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s);
bool nbd_leaf_poll(struct uc_node *n, struct uc_queue *q);
/*
 * Set up c's timer and, if its subs may come in pieces (bounce), its bounce
 * buffers (at open, main thread). Returns 0 or -errno.
 */
int nbd_leaf_conn_init(struct nbd_conn *c, bool bounce);
/* Close c (graph teardown: no queue serves it any more). */
void nbd_leaf_conn_free(struct nbd_conn *c);

#endif
