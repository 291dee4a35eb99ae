/* SPDX-License-Identifier: MIT */
/*
 * UBLK_F_BATCH_IO (Linux 7.x) for one queue. Instead of a FETCH per tag and
 * a COMMIT_AND_FETCH per request:
 * - PREP_IO_CMDS hands the kernel every tag (and its buffer) once;
 * - one multishot FETCH_IO_CMDS per queue: each CQE carries the 2-byte tags
 *   of new requests in a buffer of our provided buffer ring (buffer id in
 *   cqe->flags); the buffer goes back into the ring once read;
 * - the requests that finish during a loop turn go back in one
 *   COMMIT_IO_CMDS, whose CQE says how many bytes of elements it took.
 * Facts checked on 7.3: docs/ublk-batch-io.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "batch.h"
#include "log.h"
#include "udata.h"

#define COMMIT_BUFS	4	/* commit buffers in flight: one a turn, freed by the next */
#define FETCH_BGID	0	/* buffer group of the fetch buffers (per ring) */
#define FETCH_BUF_TAGS	64	/* tags one fetch buffer holds */

struct commit_buf {
	void *elems;		/* depth elements */
	unsigned int nr;	/* elements sent */
	unsigned int op;	/* UBLK_IO_PREP_IO_CMDS or UBLK_IO_COMMIT_IO_CMDS */
	bool busy;		/* the kernel has it until its CQE */
};

struct uc_batch {
	/* fetch: a ring of nr_bufs buffers of buf_tags tags each */
	struct io_uring_buf_ring *br;
	size_t br_len;
	uint16_t *tags;
	unsigned int nr_bufs, buf_tags;
	bool fetch_armed;	/* the multishot FETCH is in the kernel */
	bool fetch_dead;	/* ended with ABORT or an error: not re-armed */
	/* commit: results gathered this turn, then sent in a free commit_buf */
	uint16_t flags;		/* UBLK_BATCH_F_HAS_BUF_ADDR on the copy path */
	uint8_t elem_bytes;	/* 8, or 16 with the buffer address */
	void *pending;		/* depth elements */
	unsigned int nr_pending;
	struct commit_buf cb[COMMIT_BUFS];
	/* counts for the exit log line */
	uint64_t nr_fetch_cqes, nr_tags, nr_commit_cmds, nr_commits, nr_left;
};

static unsigned int pow2_at_least(unsigned int v)
{
	unsigned int p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

static void *elem_at(const struct uc_batch *b, void *base, unsigned int i)
{
	return (char *)base + (size_t)i * b->elem_bytes;
}

/*
 * One element: the tag, its result, and where the tag's next request goes
 * (buffer index tag with AUTO_BUF_REG, else the tag's buffer address).
 */
static void elem_put(struct uc_ublk_queue *uq, void *dst, unsigned int tag, int result)
{
	struct uc_batch *b = uq->batch;
	struct ublk_elem_header h = { .tag = tag, .buf_index = tag, .result = result };

	memcpy(dst, &h, sizeof(h));
	if (b->flags & UBLK_BATCH_F_HAS_BUF_ADDR) {
		uint64_t addr = (uintptr_t)uq->q.ios[tag].buf;

		memcpy((char *)dst + sizeof(h), &addr, sizeof(addr));
	}
}

static void cmd_init(struct uc_ublk_queue *uq, struct io_uring_sqe *sqe, uint16_t flags,
		     unsigned int nr_elem, unsigned int elem_bytes)
{
	struct ublk_batch_io *c = (struct ublk_batch_io *)sqe->cmd;

	c->q_id = uq->id;
	c->flags = flags;
	c->nr_elem = nr_elem;
	c->elem_bytes = elem_bytes;
	uq->nr_cmds++;
}

/* Send commit buffer i holding nr elements as PREP_IO_CMDS or COMMIT_IO_CMDS. */
static void send_elems(struct uc_ublk_queue *uq, unsigned int i, unsigned int op,
		       unsigned int nr)
{
	struct uc_batch *b = uq->batch;
	struct io_uring_sqe *sqe;

	sqe = uc_ublk_cmd_sqe(uq, op == UBLK_IO_PREP_IO_CMDS ? UBLK_U_IO_PREP_IO_CMDS :
			      UBLK_U_IO_COMMIT_IO_CMDS, uc_udata_cmd(i, op));
	assert(sqe);	/* the ring has room for every tag's command: anything else is a bug */
	sqe->addr = (uintptr_t)b->cb[i].elems;
	sqe->len = nr * b->elem_bytes;
	cmd_init(uq, sqe, b->flags, nr, b->elem_bytes);
	b->cb[i].nr = nr;
	b->cb[i].op = op;
	b->cb[i].busy = true;
}

static int free_commit_buf(const struct uc_batch *b)
{
	for (int i = 0; i < COMMIT_BUFS; i++)
		if (!b->cb[i].busy)
			return i;
	return -1;
}

static void arm_fetch(struct uc_ublk_queue *uq)
{
	struct uc_batch *b = uq->batch;
	struct io_uring_sqe *sqe;

	sqe = uc_ublk_cmd_sqe(uq, UBLK_U_IO_FETCH_IO_CMDS, uc_udata_cmd(0, UBLK_IO_FETCH_IO_CMDS));
	assert(sqe);
	/* elem_bytes 2: the tags are __u16; nr_elem is not used by the fetch */
	cmd_init(uq, sqe, 0, uq->q.depth, sizeof(uint16_t));
	sqe->uring_cmd_flags = IORING_URING_CMD_MULTISHOT;
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = FETCH_BGID;
	b->fetch_armed = true;
}

static void recycle(struct uc_batch *b, unsigned int bid)
{
	io_uring_buf_ring_add(b->br, &b->tags[(size_t)bid * b->buf_tags],
			      b->buf_tags * sizeof(uint16_t), bid,
			      io_uring_buf_ring_mask(b->nr_bufs), 0);
	io_uring_buf_ring_advance(b->br, 1);
}

static int fetch_ring_setup(struct uc_ublk_queue *uq)
{
	struct uc_batch *b = uq->batch;
	struct io_uring_buf_reg reg = { 0 };
	int ret;

	b->buf_tags = uq->q.depth < FETCH_BUF_TAGS ? uq->q.depth : FETCH_BUF_TAGS;
	/*
	 * A tag is not handed out again before it is committed, and every CQE
	 * holds at least one: depth buffers never run out. (If the ring ever
	 * were empty, the fetch ends with -ENOBUFS and is armed again.)
	 */
	b->nr_bufs = pow2_at_least(uq->q.depth);
	b->tags = calloc((size_t)b->nr_bufs * b->buf_tags, sizeof(uint16_t));
	b->br_len = (size_t)b->nr_bufs * sizeof(struct io_uring_buf);
	b->br = mmap(NULL, b->br_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->br == MAP_FAILED)
		b->br = NULL;
	if (!b->tags || !b->br)
		return -ENOMEM;
	io_uring_buf_ring_init(b->br);
	reg.ring_addr = (uintptr_t)b->br;
	reg.ring_entries = b->nr_bufs;
	reg.bgid = FETCH_BGID;
	ret = io_uring_register_buf_ring(&uq->q.ring, &reg, 0);
	if (ret)
		return ret;
	for (unsigned int i = 0; i < b->nr_bufs; i++)
		recycle(b, i);
	return 0;
}

int uc_batch_setup(struct uc_ublk_queue *uq)
{
	unsigned int depth = uq->q.depth;
	struct uc_batch *b;
	int ret;

	b = uq->batch = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	/* the copy path names each tag's buffer in every element; zero copy registers at index tag */
	b->flags = uq->q.zero_copy ? 0 : UBLK_BATCH_F_HAS_BUF_ADDR;
	b->elem_bytes = sizeof(struct ublk_elem_header) + (uq->q.zero_copy ? 0 : sizeof(uint64_t));
	b->pending = calloc(depth, b->elem_bytes);
	if (!b->pending)
		return -ENOMEM;
	for (int i = 0; i < COMMIT_BUFS; i++)
		if (!(b->cb[i].elems = calloc(depth, b->elem_bytes)))
			return -ENOMEM;
	ret = fetch_ring_setup(uq);
	if (ret)
		return ret;
	for (unsigned int t = 0; t < depth; t++)
		elem_put(uq, elem_at(b, b->cb[0].elems, t), t, 0);
	send_elems(uq, 0, UBLK_IO_PREP_IO_CMDS, depth);
	/* queued after PREP on the same ring: the kernel issues them in order */
	arm_fetch(uq);
	return 0;
}

void uc_batch_free(struct uc_ublk_queue *uq)
{
	struct uc_batch *b = uq->batch;

	if (!b)
		return;
	if (b->nr_fetch_cqes || b->nr_commit_cmds)
		uc_info("queue %u: batch I/O: %" PRIu64 " requests in %" PRIu64 " fetch CQEs, %"
			PRIu64 " commits in %" PRIu64 " COMMIT_IO_CMDS", uq->id, b->nr_tags,
			b->nr_fetch_cqes, b->nr_commits, b->nr_commit_cmds);
	if (b->nr_left)
		uc_info("queue %u: %" PRIu64 " requests left to the next server", uq->id, b->nr_left);
	if (b->br)
		munmap(b->br, b->br_len);
	free(b->tags);
	free(b->pending);
	for (int i = 0; i < COMMIT_BUFS; i++)
		free(b->cb[i].elems);
	free(b);
	uq->batch = NULL;
}

const struct io_uring_buf_ring *uc_batch_fetch_ring(const struct uc_ublk_queue *uq,
						    unsigned int *entries)
{
	*entries = uq->batch->nr_bufs;
	return uq->batch->br;
}

void uc_batch_commit(struct uc_queue *q, struct uc_io *io, int res)
{
	struct uc_ublk_queue *uq = q->owner;
	struct uc_batch *b = uq->batch;

	/* a tag is pending at most once: depth slots are enough */
	assert(b->nr_pending < q->depth);
	elem_put(uq, elem_at(b, b->pending, b->nr_pending++), io->tag, res);
	b->nr_commits++;
}

static void fetch_cqe(struct uc_ublk_queue *uq, const struct io_uring_cqe *cqe)
{
	struct uc_batch *b = uq->batch;

	if (cqe->flags & IORING_CQE_F_BUFFER) {
		unsigned int bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
		const uint16_t *tags = &b->tags[(size_t)bid * b->buf_tags];
		unsigned int nr = cqe->res > 0 ? (unsigned int)cqe->res / sizeof(uint16_t) : 0;

		assert(bid < b->nr_bufs && nr <= b->buf_tags);
		b->nr_fetch_cqes++;
		b->nr_tags += nr;
		for (unsigned int i = 0; i < nr; i++) {
			/*
			 * Leaving (a hand-over): what the kernel passes now stays
			 * unstarted, and it re-issues that to the next server.
			 */
			if (uq->stopping)
				b->nr_left++;
			else if (tags[i] < uq->q.depth)
				uc_ublk_queue_request(uq, tags[i]);
			else
				uc_err("queue %u: fetch delivered tag %u of %u", uq->id, tags[i],
				       uq->q.depth);
		}
		recycle(b, bid);
	}
	if (cqe->flags & IORING_CQE_F_MORE)
		return;
	/* the multishot command ended: ABORT when the queue is torn down */
	uc_dbg("queue %u: FETCH_IO_CMDS ended: %d", uq->id, cqe->res);
	b->fetch_armed = false;
	uq->nr_cmds--;
	if (cqe->res == UBLK_IO_RES_ABORT) {
		b->fetch_dead = true;
	} else if (cqe->res < 0 && cqe->res != -ENOBUFS) {
		/* no more requests would reach this queue: stop the device rather than hang it */
		uc_err("queue %u: FETCH_IO_CMDS failed: %s", uq->id, strerror(-cqe->res));
		b->fetch_dead = true;
		atomic_store(&uq->dev->failed, 1);
	}
}

static void commit_cqe(struct uc_ublk_queue *uq, unsigned int i, const struct io_uring_cqe *cqe)
{
	struct uc_batch *b = uq->batch;
	struct commit_buf *c = &b->cb[i];
	unsigned int done = cqe->res > 0 ? (unsigned int)cqe->res / b->elem_bytes : 0;
	struct ublk_elem_header h;

	assert(i < COMMIT_BUFS && c->busy);
	c->busy = false;
	uq->nr_cmds--;
	if (c->op == UBLK_IO_PREP_IO_CMDS) {
		/* 0 on success; on an error the kernel undid the whole PREP */
		if (cqe->res) {
			uc_err("queue %u: PREP_IO_CMDS failed: %s", uq->id, strerror(-cqe->res));
			atomic_store(&uq->dev->failed, 1);
		}
		return;
	}
	if (done >= c->nr)
		return;
	/*
	 * The kernel stopped at element `done` (it no longer held that request
	 * for us, e.g. it aborted it) and took none after it: send those again.
	 */
	memcpy(&h, elem_at(b, c->elems, done), sizeof(h));
	if (uq->stopping || b->fetch_dead)
		uc_dbg("queue %u tag %u: commit not taken (%d)", uq->id, h.tag, cqe->res);
	else
		uc_err("queue %u tag %u: commit not taken: %s", uq->id, h.tag,
		       cqe->res < 0 ? strerror(-cqe->res) : "refused");
	for (unsigned int k = done + 1; k < c->nr; k++) {
		assert(b->nr_pending < uq->q.depth);
		memcpy(elem_at(b, b->pending, b->nr_pending++), elem_at(b, c->elems, k), b->elem_bytes);
	}
}

void uc_batch_cqe(struct uc_ublk_queue *uq, const struct io_uring_cqe *cqe)
{
	if (uc_udata_cmd_op(cqe->user_data) == UBLK_IO_FETCH_IO_CMDS)
		fetch_cqe(uq, cqe);
	else
		commit_cqe(uq, uc_udata_tag(cqe->user_data), cqe);
}

static void flush_commits(struct uc_ublk_queue *uq)
{
	struct uc_batch *b = uq->batch;
	int i;

	/* all buffers still with the kernel: their CQEs come at once, the next turn sends these */
	if (!b->nr_pending || (i = free_commit_buf(b)) < 0)
		return;
	memcpy(b->cb[i].elems, b->pending, (size_t)b->nr_pending * b->elem_bytes);
	send_elems(uq, i, UBLK_IO_COMMIT_IO_CMDS, b->nr_pending);
	b->nr_commit_cmds++;
	b->nr_pending = 0;
}

void uc_batch_flush(struct uc_ublk_queue *uq)
{
	struct uc_batch *b = uq->batch;

	flush_commits(uq);
	if (!b->fetch_armed && !b->fetch_dead)
		arm_fetch(uq);
}

static bool commits_in_flight(const struct uc_batch *b)
{
	for (int i = 0; i < COMMIT_BUFS; i++)
		if (b->cb[i].busy)
			return true;
	return false;
}

void uc_batch_finish(struct uc_ublk_queue *uq)
{
	struct uc_batch *b = uq->batch;
	struct io_uring *ring = &uq->q.ring;

	uq->stopping = true;	/* tags fetched from here on are left to the kernel */
	/* 200 x 10 ms: commit CQEs are posted when the kernel takes the command */
	for (int i = 0; i < 200 && (b->nr_pending || commits_in_flight(b)); i++) {
		struct __kernel_timespec ts = { .tv_nsec = 10 * 1000000L };
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;

		flush_commits(uq);
		io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
		io_uring_for_each_cqe(ring, head, cqe) {
			/* the queue is idle and leaving: only the ublk commands matter */
			if (!uc_udata_is_member(cqe->user_data) && !(cqe->user_data & UC_UDATA_EVENT))
				uc_batch_cqe(uq, cqe);
			n++;
		}
		io_uring_cq_advance(ring, n);
	}
	if (b->nr_pending || commits_in_flight(b))
		uc_warn("queue %u: the kernel did not take the last commits", uq->id);
}
