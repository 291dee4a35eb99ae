/* SPDX-License-Identifier: MIT */
/*
 * Synchronous I/O for a layer's activate() (superblocks, bitmaps, maps read
 * before the device starts): a private depth-1 queue on the calling thread.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "io.h"
#include "io_int.h"

static void sync_done(struct uc_queue *q, struct uc_io *io, int res)
{
	(void)q;
	*(int *)io->arg = res;
}

int uc_graph_sync_io(struct uc_graph *g, struct uc_node *n, int op, uint64_t off, void *buf,
		     uint64_t len)
{
	struct uc_queue *q = g->sync_q;
	int ret;

	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return -ENOMEM;
		if (!g->nr_internal)
			g->nr_internal = 1;
		/* depth 1 ublk tag is never used; id past every real queue */
		if ((ret = uc_queue_init(q, g, UC_SYNC_QUEUE_ID, 1, 0, 0))) {
			free(q);
			return ret;
		}
		g->sync_q = q;
	}
	while (len) {
		struct uc_io *io = uc_internal_get(q);
		uint64_t max = g->internal_buf > g->dev.max_io ? g->internal_buf : g->dev.max_io;
		uint64_t chunk = len < max ? len : max;
		int res = 1;

		assert(io);
		if (op == UC_OP_WRITE)
			memcpy(io->buf, buf, chunk);
		uc_internal_start(q, io, n, op, 0, off, uc_op_moves_data(op) ? chunk : 0, sync_done, &res);
		while (res == 1 || !uc_queue_idle(q)) {
			struct io_uring_cqe *cqe;
			unsigned int head, nr = 0;

			uc_queue_poll(q);	/* the request may have parked (a nested mirror) */
			ret = uc_queue_enter(q);
			if (ret < 0 && ret != -EINTR && ret != -EAGAIN)
				return ret;
			io_uring_for_each_cqe(&q->ring, head, cqe) {
				uc_queue_cqe(q, cqe);
				nr++;
			}
			io_uring_cq_advance(&q->ring, nr);
			uc_queue_poll(q);
		}
		if (res < 0)
			return res;
		if (op == UC_OP_READ)
			memcpy(buf, io->buf, chunk);
		if (!uc_op_moves_data(op))
			break;
		buf = (char *)buf + chunk;
		off += chunk;
		len -= chunk;
	}
	return 0;
}

void uc_graph_sync_done(struct uc_graph *g)
{
	if (g->sync_q) {
		uc_queue_exit(g->sync_q);
		free(g->sync_q);
		g->sync_q = NULL;
	}
}
