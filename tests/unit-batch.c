/* SPDX-License-Identifier: MIT */
/*
 * UBLK_F_BATCH_IO's bookkeeping (src/batch.c) without a kernel that has
 * it: a queue on a real io_uring whose ublk commands are read back from
 * the SQ ring (never submitted), and CQEs made up the way 7.3 posts them
 * (docs/ublk-batch-io.md): fetch CQEs whose tags the fake kernel wrote
 * into the next buffer of the provided buffer ring, as the kernel takes
 * them (-ENOBUFS when the ring is empty), commit CQEs that took all, some
 * or none of the elements. Requests go through a graph of one test leaf ("instant")
 * that completes every request at once, so each delivered tag is
 * committed in the same turn.
 */
#include <errno.h>
#include <string.h>
#include "batch.h"
#include "graph.h"
#include "io.h"
#include "log.h"
#include "testlib.h"
#include "udata.h"

#define DEPTH 16

static int instant_parse(struct uc_node *n, const config_setting_t *cfg)
{
	static const char *const keys[] = { "type", "size", NULL };

	if (uc_conf_check_keys(cfg, keys, "instant") || uc_conf_size(cfg, "size", &n->size) != 1)
		return -EINVAL;
	return 0;
}

static int instant_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	(void)n;
	(void)q;
	(void)s;
	return 0;
}

static const char *const instant_keys[] = { "type", "size", NULL };
static const struct uc_layer_ops instant_ops = {
	.name = "instant", .keys = instant_keys, .parse = instant_parse,
	.submit = instant_submit, .zero_copy = true,
};

struct fixture {
	struct uc_graph g;
	struct uc_dev dev;
	struct uc_ublk_queue uq;
	struct ublksrv_io_desc descs[DEPTH];
	uint16_t khead;		/* the kernel's head in the fetch buffer ring */
};

/* A queued SQE of the SQE128 ring, copied out. */
struct sqe128 {
	struct io_uring_sqe sqe;
	unsigned char cmd_tail[64];
};

/* Copy the SQEs queued since the last call and drop them unsubmitted. */
static unsigned int take_sqes(struct fixture *f, struct sqe128 *out, unsigned int max)
{
	struct io_uring_sq *sq = &f->uq.q.ring.sq;
	unsigned int n = 0;

	for (unsigned int i = sq->sqe_head; i != sq->sqe_tail; i++, n++)
		if (n < max)
			memcpy(&out[n], &sq->sqes[(i & sq->ring_mask) << 1], sizeof(out[n]));
	sq->sqe_tail = sq->sqe_head;
	return n;
}

static const struct ublk_batch_io *batch_cmd(const struct sqe128 *s)
{
	return (const struct ublk_batch_io *)s->sqe.cmd;
}

static void teardown(struct fixture *f)
{
	uc_queue_exit(&f->uq.q);
	uc_batch_free(&f->uq);
	uc_graph_free(&f->g);
}

/* Batch mode on a queue of DEPTH tags; PREP and FETCH are queued (and taken by the caller). */
static int setup(struct fixture *f, bool zero_copy)
{
	const char *conf = t_write_file(t_tmpdir(), "b.conf",
		"device = { depth = 16; block_size = 4096; };\n"
		"volume = { type = \"instant\"; size = \"1M\"; };\n");
	struct sqe128 drop[4];

	memset(f, 0, sizeof(*f));
	if (uc_graph_load(&f->g, conf) || uc_graph_open(&f->g))
		return -1;
	f->dev.g = &f->g;
	f->dev.char_fd = -1;
	f->dev.batch = true;
	f->dev.zero_copy = zero_copy;
	f->uq.dev = &f->dev;
	f->uq.descs = f->descs;
	if (uc_queue_init(&f->uq.q, &f->g, 0, DEPTH, IORING_SETUP_SQE128, 1))
		return -1;
	f->uq.q.owner = &f->uq;
	f->uq.q.commit = uc_batch_commit;
	f->uq.q.zero_copy = zero_copy;
	take_sqes(f, drop, 4);	/* the engine's own (its kick read) */
	for (unsigned int t = 0; t < DEPTH; t++)
		f->descs[t] = (struct ublksrv_io_desc){ .op_flags = UBLK_IO_OP_READ, .nr_sectors = 8,
							.start_sector = t * 8 };
	return uc_batch_setup(&f->uq);
}

/* Buffers of the fetch ring the kernel may take: added by the daemon, not yet used. */
static unsigned int ring_avail(const struct fixture *f)
{
	unsigned int entries;
	const struct io_uring_buf_ring *br = uc_batch_fetch_ring(&f->uq, &entries);

	return (uint16_t)(io_uring_smp_load_acquire(&br->tail) - f->khead);
}

/*
 * The kernel hands tags over (more: the fetch goes on): it takes the buffer
 * at its head of the ring, writes the tags at that buffer's address and
 * names its bid in the CQE; an empty ring ends the fetch with -ENOBUFS.
 * Returns the bid, -ENOBUFS, or -1 (the buffer is too small: a bug).
 */
static int deliver(struct fixture *f, const uint16_t *tags, unsigned int nr, bool more)
{
	unsigned int entries;
	const struct io_uring_buf_ring *br = uc_batch_fetch_ring(&f->uq, &entries);
	const struct io_uring_buf *buf;
	struct io_uring_cqe cqe = { .user_data = uc_udata_cmd(0, UBLK_IO_FETCH_IO_CMDS) };
	uint16_t bid;

	if (!ring_avail(f)) {
		cqe.res = -ENOBUFS;
		uc_batch_cqe(&f->uq, &cqe);
		return -ENOBUFS;
	}
	buf = &br->bufs[f->khead++ & (entries - 1)];
	if (buf->len < nr * sizeof(*tags)) {
		fprintf(stderr, "fetch buffer %u holds %u bytes, %u tags delivered\n", buf->bid,
			buf->len, nr);
		return -1;
	}
	/* the entry is the daemon's again once the CQE is posted: read it before */
	bid = buf->bid;
	memcpy((void *)(uintptr_t)buf->addr, tags, nr * sizeof(*tags));
	cqe.res = nr * sizeof(*tags);
	cqe.flags = IORING_CQE_F_BUFFER | (more ? IORING_CQE_F_MORE : 0) |
		    (unsigned int)bid << IORING_CQE_BUFFER_SHIFT;
	uc_batch_cqe(&f->uq, &cqe);
	return bid;
}

static void cqe_for(struct fixture *f, const struct sqe128 *s, int res, unsigned int flags)
{
	struct io_uring_cqe cqe = { .user_data = s->sqe.user_data, .res = res, .flags = flags };

	uc_batch_cqe(&f->uq, &cqe);
}

/* The elements of a PREP/COMMIT SQE (they live in the daemon's buffers until the CQE). */
static const unsigned char *elems(const struct sqe128 *s)
{
	return (const unsigned char *)(uintptr_t)s->sqe.addr;
}

static struct ublk_elem_header elem(const struct sqe128 *s, unsigned int i)
{
	struct ublk_elem_header h;

	memcpy(&h, elems(s) + i * batch_cmd(s)->elem_bytes, sizeof(h));
	return h;
}

/* PREP names every tag once (with its buffer on the copy path), then the multishot FETCH. */
static int test_prep_and_fetch(bool zero_copy)
{
	struct fixture f;
	struct sqe128 s[4];
	unsigned int n, eb = zero_copy ? 8 : 16;

	CHECK(!setup(&f, zero_copy), "setup");
	n = take_sqes(&f, s, 4);
	CHECK(n == 2, "%u SQEs queued, want PREP and FETCH", n);
	CHECK(s[0].sqe.opcode == IORING_OP_URING_CMD && s[0].sqe.cmd_op == UBLK_U_IO_PREP_IO_CMDS,
	      "first SQE op %u cmd_op %#x", s[0].sqe.opcode, s[0].sqe.cmd_op);
	CHECK(batch_cmd(&s[0])->nr_elem == DEPTH && batch_cmd(&s[0])->elem_bytes == eb &&
	      s[0].sqe.len == DEPTH * eb, "PREP: %u elements of %u bytes, len %u",
	      batch_cmd(&s[0])->nr_elem, batch_cmd(&s[0])->elem_bytes, s[0].sqe.len);
	CHECK(batch_cmd(&s[0])->flags == (zero_copy ? 0 : UBLK_BATCH_F_HAS_BUF_ADDR),
	      "PREP flags %#x", batch_cmd(&s[0])->flags);
	for (unsigned int t = 0; t < DEPTH; t++) {
		struct ublk_elem_header h = elem(&s[0], t);
		uint64_t addr;

		CHECK(h.tag == t && h.buf_index == t && h.result == 0, "PREP element %u: tag %u index %u",
		      t, h.tag, h.buf_index);
		if (!zero_copy) {
			memcpy(&addr, elems(&s[0]) + t * eb + 8, 8);
			CHECK(addr == (uintptr_t)f.uq.q.ios[t].buf, "PREP element %u: buffer %#llx", t,
			      (unsigned long long)addr);
		}
	}
	CHECK(s[1].sqe.cmd_op == UBLK_U_IO_FETCH_IO_CMDS, "second SQE cmd_op %#x", s[1].sqe.cmd_op);
	CHECK(s[1].sqe.uring_cmd_flags == IORING_URING_CMD_MULTISHOT &&
	      (s[1].sqe.flags & IOSQE_BUFFER_SELECT) && s[1].sqe.buf_group == 0 &&
	      batch_cmd(&s[1])->elem_bytes == 2 && batch_cmd(&s[1])->flags == 0,
	      "FETCH: uring_cmd_flags %#x flags %#x group %u elem_bytes %u", s[1].sqe.uring_cmd_flags,
	      s[1].sqe.flags, s[1].sqe.buf_group, batch_cmd(&s[1])->elem_bytes);
	cqe_for(&f, &s[0], 0, 0);
	CHECK(f.uq.nr_cmds == 1, "%u commands held after PREP's CQE, want the fetch", f.uq.nr_cmds);
	teardown(&f);
	return T_PASS;
}

static int test_prep_copy(void) { return test_prep_and_fetch(false); }
static int test_prep_zero_copy(void) { return test_prep_and_fetch(true); }

/* Tags of one turn come back in one COMMIT with their results; nothing without requests. */
static int test_commit_per_turn(void)
{
	static const uint16_t t1[] = { 3, 5, 7 }, t2[] = { 0, 15 };
	struct fixture f;
	struct sqe128 s[4];
	unsigned int n;

	CHECK(!setup(&f, false), "setup");
	take_sqes(&f, s, 4);
	cqe_for(&f, &s[0], 0, 0);
	uc_batch_flush(&f.uq);
	CHECK(take_sqes(&f, s, 4) == 0, "a flush without requests queued a command");
	CHECK(deliver(&f, t1, 3, true) >= 0, "delivery");
	CHECK(deliver(&f, t2, 2, true) >= 0, "delivery");
	uc_batch_flush(&f.uq);
	n = take_sqes(&f, s, 4);
	CHECK(n == 1 && s[0].sqe.cmd_op == UBLK_U_IO_COMMIT_IO_CMDS, "%u SQEs, cmd_op %#x", n,
	      s[0].sqe.cmd_op);
	CHECK(batch_cmd(&s[0])->nr_elem == 5 && s[0].sqe.len == 5 * 16, "COMMIT of %u elements",
	      batch_cmd(&s[0])->nr_elem);
	for (unsigned int i = 0; i < 5; i++) {
		struct ublk_elem_header h = elem(&s[0], i);

		CHECK(h.tag == (i < 3 ? t1[i] : t2[i - 3]) && h.result == 4096,
		      "element %u: tag %u result %d", i, h.tag, h.result);
	}
	cqe_for(&f, &s[0], 5 * 16, 0);
	CHECK(f.uq.nr_cmds == 1, "%u commands held after the COMMIT's CQE", f.uq.nr_cmds);
	teardown(&f);
	return T_PASS;
}

/*
 * A COMMIT the kernel took only in part: the element it stopped at is
 * dropped (it no longer holds that request for us), the ones after it go
 * out again with the next turn's commits.
 */
static int test_partial_commit(void)
{
	static const uint16_t t1[] = { 1, 2, 3, 4 }, t2[] = { 9 };
	struct fixture f;
	struct sqe128 s[4];
	unsigned int n;

	CHECK(!setup(&f, true), "setup");
	take_sqes(&f, s, 4);
	cqe_for(&f, &s[0], 0, 0);
	CHECK(deliver(&f, t1, 4, true) >= 0, "delivery");
	uc_batch_flush(&f.uq);
	CHECK(take_sqes(&f, s, 4) == 1, "no COMMIT");
	CHECK(deliver(&f, t2, 1, true) >= 0, "delivery");
	cqe_for(&f, &s[0], 8, 0);	/* took tag 1, stopped at tag 2 */
	uc_batch_flush(&f.uq);
	n = take_sqes(&f, s, 4);
	CHECK(n == 1 && batch_cmd(&s[0])->nr_elem == 3, "%u SQEs, %u elements", n,
	      n ? batch_cmd(&s[0])->nr_elem : 0);
	CHECK(elem(&s[0], 0).tag == 9 && elem(&s[0], 1).tag == 3 && elem(&s[0], 2).tag == 4,
	      "resent tags %u %u %u, want 9 3 4", elem(&s[0], 0).tag, elem(&s[0], 1).tag,
	      elem(&s[0], 2).tag);
	/* an error CQE: none taken, the first dropped, the rest resent */
	cqe_for(&f, &s[0], -EINVAL, 0);
	uc_batch_flush(&f.uq);
	n = take_sqes(&f, s, 4);
	CHECK(n == 1 && batch_cmd(&s[0])->nr_elem == 2 && elem(&s[0], 0).tag == 3,
	      "after -EINVAL: %u SQEs", n);
	cqe_for(&f, &s[0], 16, 0);
	uc_batch_flush(&f.uq);
	CHECK(take_sqes(&f, s, 4) == 0, "a commit left over");
	teardown(&f);
	return T_PASS;
}

/* Every commit buffer with the kernel: the commits wait for a CQE, none is lost. */
static int test_commit_buffers_busy(void)
{
	struct fixture f;
	struct sqe128 s[8], keep[8];
	unsigned int n, k = 0;

	CHECK(!setup(&f, true), "setup");
	take_sqes(&f, s, 4);
	cqe_for(&f, &s[0], 0, 0);
	for (uint16_t t = 0; t < 6; t++) {
		CHECK(deliver(&f, &t, 1, true) >= 0, "delivery");
		uc_batch_flush(&f.uq);
		n = take_sqes(&f, s, 8);
		if (n)
			keep[k++] = s[0];
	}
	CHECK(k == 4, "%u COMMITs in flight, want the 4 buffers", k);
	cqe_for(&f, &keep[1], 8, 0);
	uc_batch_flush(&f.uq);
	n = take_sqes(&f, s, 8);
	CHECK(n == 1 && batch_cmd(&s[0])->nr_elem == 2 && elem(&s[0], 0).tag == 4 &&
	      elem(&s[0], 1).tag == 5, "after a CQE: %u SQEs", n);
	teardown(&f);
	return T_PASS;
}

/*
 * The fetch's provided buffer ring: full at start (distinct buffers, each
 * big enough for the tags a CQE may carry here), and each buffer goes back
 * (same bid, same address) as soon as its tags are read, so the kernel
 * never finds the ring empty: four rounds of the ring, one tag a CQE, then
 * every tag in one CQE, and the tags committed are the ones the kernel
 * wrote.
 */
static int test_fetch_ring(void)
{
	struct fixture f;
	struct sqe128 s[4];
	const struct io_uring_buf_ring *br;
	unsigned int entries, n;
	uint64_t addr[64] = { 0 };
	uint16_t all[DEPTH];

	CHECK(!setup(&f, true), "setup");
	take_sqes(&f, s, 4);
	cqe_for(&f, &s[0], 0, 0);
	br = uc_batch_fetch_ring(&f.uq, &entries);
	CHECK(entries >= DEPTH && entries <= 64 && !(entries & (entries - 1)),
	      "%u entries in the fetch ring", entries);
	CHECK(ring_avail(&f) == entries, "%u of %u buffers in the ring at start", ring_avail(&f),
	      entries);
	for (unsigned int i = 0; i < entries; i++) {
		const struct io_uring_buf *b = &br->bufs[i];

		CHECK(b->bid < entries && !addr[b->bid] && b->len >= DEPTH * 2,
		      "entry %u: bid %u len %u (bid seen before: %d)", i, b->bid, b->len,
		      b->bid < entries && addr[b->bid]);
		addr[b->bid] = b->addr;
		for (unsigned int k = 0; k < i; k++)
			CHECK(b->addr >= br->bufs[k].addr + br->bufs[k].len ||
			      br->bufs[k].addr >= b->addr + b->len, "buffers %u and %u overlap", i, k);
	}
	for (unsigned int i = 0; i < 4 * entries; i++) {
		uint16_t tag = (i * 7) % DEPTH;
		const struct io_uring_buf *back;
		int bid = deliver(&f, &tag, 1, true);

		CHECK(bid >= 0, "CQE %u: the kernel found the ring empty (%d)", i, bid);
		CHECK(ring_avail(&f) == entries, "CQE %u: %u of %u buffers in the ring", i,
		      ring_avail(&f), entries);
		back = &br->bufs[(uint16_t)(br->tail - 1) & (entries - 1)];
		CHECK(back->bid == bid && back->addr == addr[bid] && back->len >= DEPTH * 2,
		      "CQE %u used bid %d, bid %u (len %u) went back", i, bid, back->bid, back->len);
		uc_batch_flush(&f.uq);
		n = take_sqes(&f, s, 4);
		CHECK(n == 1 && batch_cmd(&s[0])->nr_elem == 1 && elem(&s[0], 0).tag == tag,
		      "CQE %u: %u SQEs, committed tag %u, want %u", i, n, n ? elem(&s[0], 0).tag : 0,
		      tag);
		cqe_for(&f, &s[0], 8, 0);
	}
	for (uint16_t t = 0; t < DEPTH; t++)
		all[t] = DEPTH - 1 - t;
	CHECK(deliver(&f, all, DEPTH, true) >= 0, "every tag in one CQE");
	uc_batch_flush(&f.uq);
	n = take_sqes(&f, s, 4);
	CHECK(n == 1 && batch_cmd(&s[0])->nr_elem == DEPTH, "%u SQEs for %u tags", n, DEPTH);
	for (unsigned int i = 0; i < DEPTH; i++)
		CHECK(elem(&s[0], i).tag == all[i], "element %u: tag %u, want %u", i,
		      elem(&s[0], i).tag, all[i]);
	CHECK(ring_avail(&f) == entries, "%u of %u buffers in the ring", ring_avail(&f), entries);
	teardown(&f);
	return T_PASS;
}

/* The fetch ends: -ENOBUFS or a last CQE is armed again, ABORT is not, an error stops the daemon. */
static int test_fetch_end(void)
{
	static const uint16_t t1[] = { 6 };
	struct fixture f;
	struct sqe128 s[4];
	unsigned int n;

	CHECK(!setup(&f, true), "setup");
	take_sqes(&f, s, 4);
	cqe_for(&f, &s[0], 0, 0);
	cqe_for(&f, &s[1], -ENOBUFS, 0);
	CHECK(f.uq.nr_cmds == 0, "fetch still counted after -ENOBUFS");
	uc_batch_flush(&f.uq);
	n = take_sqes(&f, s, 4);
	CHECK(n == 1 && s[0].sqe.cmd_op == UBLK_U_IO_FETCH_IO_CMDS, "not armed again after -ENOBUFS");
	CHECK(deliver(&f, t1, 1, false) >= 0, "delivery");	/* tags in its last CQE */
	uc_batch_flush(&f.uq);
	n = take_sqes(&f, s, 4);
	CHECK(n == 2 && s[0].sqe.cmd_op == UBLK_U_IO_COMMIT_IO_CMDS &&
	      s[1].sqe.cmd_op == UBLK_U_IO_FETCH_IO_CMDS, "last CQE: %u SQEs", n);
	cqe_for(&f, &s[1], UBLK_IO_RES_ABORT, 0);
	uc_batch_flush(&f.uq);
	CHECK(take_sqes(&f, s, 4) == 0, "armed again after ABORT");
	CHECK(!atomic_load(&f.dev.failed), "ABORT failed the daemon");
	teardown(&f);

	CHECK(!setup(&f, true), "setup");
	take_sqes(&f, s, 4);
	cqe_for(&f, &s[1], -EINVAL, 0);
	CHECK(atomic_load(&f.dev.failed), "a failed fetch left the daemon serving nothing");
	uc_batch_flush(&f.uq);
	n = take_sqes(&f, s, 4);
	CHECK(n == 0, "armed again after an error");
	teardown(&f);
	return T_PASS;
}

/* Leaving: tags the kernel hands over now are not started (it re-issues them to the next server). */
static int test_stopping(void)
{
	static const uint16_t t1[] = { 2, 8 };
	struct fixture f;
	struct sqe128 s[4];

	CHECK(!setup(&f, true), "setup");
	take_sqes(&f, s, 4);
	cqe_for(&f, &s[0], 0, 0);
	f.uq.stopping = true;
	CHECK(deliver(&f, t1, 2, true) >= 0, "delivery");
	CHECK(!f.uq.q.nr_busy && !f.uq.q.ios[2].busy, "a request started while leaving");
	uc_batch_flush(&f.uq);
	CHECK(take_sqes(&f, s, 4) == 0, "a commit for requests never started");
	teardown(&f);
	return T_PASS;
}

/* device.batch: default true, false with recovery = "requeue" unless set; a bool only. */
static int test_conf(void)
{
	static const struct { const char *dev; int want; } cases[] = {
		{ "", 1 },
		{ "batch = false;", 0 },
		{ "recovery = \"requeue\";", 0 },
		{ "recovery = \"requeue\"; batch = true;", 1 },
		{ "recovery = \"fail\";", 1 },
		{ "batch = 1;", -1 },
	};

	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		struct uc_graph g;
		int ret;

		snprintf(text, sizeof(text), "device = { %s };\nvolume = { type = \"instant\"; size = \"1M\"; };\n",
			 cases[i].dev);
		ret = uc_graph_load(&g, t_write_file(t_tmpdir(), "c.conf", text));
		if (cases[i].want < 0)
			CHECK(ret == -EINVAL, "\"%s\" loaded (%d)", cases[i].dev, ret);
		else
			CHECK(!ret && g.dev.batch == cases[i].want, "\"%s\": ret %d batch %d", cases[i].dev,
			      ret, g.dev.batch);
		uc_graph_free(&g);
	}
	return T_PASS;
}

int main(void)
{
	static const struct t_case cases[] = {
		{ "prep_copy", test_prep_copy },
		{ "prep_zero_copy", test_prep_zero_copy },
		{ "commit_per_turn", test_commit_per_turn },
		{ "partial_commit", test_partial_commit },
		{ "commit_buffers_busy", test_commit_buffers_busy },
		{ "fetch_ring", test_fetch_ring },
		{ "fetch_end", test_fetch_end },
		{ "stopping", test_stopping },
		{ "conf", test_conf },
	};
	struct io_uring ring;
	struct io_uring_buf_reg reg = { 0 };
	void *br;

	/* provided buffer rings: Linux 5.19 */
	if (io_uring_queue_init(2, &ring, 0)) {
		fprintf(stderr, "no io_uring here\n");
		return T_SKIP;
	}
	br = aligned_alloc(4096, 4096);
	reg.ring_addr = (uintptr_t)br;
	reg.ring_entries = 1;
	if (io_uring_register_buf_ring(&ring, &reg, 0)) {
		fprintf(stderr, "no provided buffer rings here\n");
		io_uring_queue_exit(&ring);
		free(br);
		return T_SKIP;
	}
	io_uring_queue_exit(&ring);
	free(br);
	uc_layer_add(&instant_ops);
	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
