/* SPDX-License-Identifier: MIT */
/*
 * User copy (src/user_copy.c) without ublk: a zero-copy queue whose leaves
 * need the data in memory ("memleg", a test leaf with user_copy set). The
 * ublk char device is played by a memfd: the test puts a write's data at
 * the request's user-copy position and finds a read's data there, as the
 * kernel's pread/pwrite of /dev/ublkcN would. Also which graphs plan zero
 * copy with user copy (src/graph.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "graph.h"
#include "io.h"
#include "testlib.h"
#include "ublk_uapi.h"

#define DEPTH	8
#define LEG	(1 << 20)

/* ---- a leaf that keeps its bytes in memory and needs them in user memory ---- */

struct memleg {
	uint8_t *data;
	unsigned int outside;	/* iovecs that did not point into the tag's buffer */
};

static int memleg_parse(struct uc_node *n, const config_setting_t *cfg)
{
	static const char *const keys[] = { "type", "size", NULL };
	struct memleg *m = calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	n->priv = m;
	if (uc_conf_check_keys(cfg, keys, "memleg") || uc_conf_size(cfg, "size", &n->size) != 1)
		return -EINVAL;
	m->data = calloc(1, n->size);
	return m->data ? 0 : -ENOMEM;
}

static void memleg_close(struct uc_node *n)
{
	struct memleg *m = n->priv;

	if (m)
		free(m->data);
	free(m);
	n->priv = NULL;
}

static int memleg_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	struct memleg *m = n->priv;
	uint64_t off = s->off;

	(void)q;
	if (s->op != UC_OP_READ && s->op != UC_OP_WRITE)
		return 0;
	for (unsigned int i = 0; i < s->nr_iov; i++) {
		char *p = s->iov[i].iov_base, *buf = s->io->buf;

		if (p < buf || p + s->iov[i].iov_len > buf + q->g->dev.max_io) {
			m->outside++;
			return -EFAULT;
		}
		if (s->op == UC_OP_READ)
			memcpy(p, m->data + off, s->iov[i].iov_len);
		else
			memcpy(m->data + off, p, s->iov[i].iov_len);
		off += s->iov[i].iov_len;
	}
	return 0;
}

static const struct uc_layer_ops memleg_ops = {
	.name = "memleg", .parse = memleg_parse, .close = memleg_close,
	.submit = memleg_submit, .user_copy = true,
};

/* ---- driving one request ---- */

static int result;

static void on_commit(struct uc_queue *q, struct uc_io *io, int res)
{
	(void)q;
	(void)io;
	result = res;
}

static int run(struct uc_queue *q, unsigned int tag, uint8_t op, uint64_t off, uint64_t len)
{
	struct uc_req r = { .op = op, .off = off, .len = len };

	result = INT32_MIN;
	uc_queue_start(q, tag, &r);
	while (result == INT32_MIN)
		if (uc_queue_turn(q))
			return -EPIPE;
	return result;
}

static uint64_t pos(unsigned int qid, unsigned int tag)
{
	return UBLKSRV_IO_BUF_OFFSET + ((uint64_t)qid << UBLK_QID_OFF) + ((uint64_t)tag << UBLK_TAG_OFF);
}

static const char *conf(const char *name, const char *text)
{
	return t_write_file(t_tmpdir(), name, text);
}

/* ---- cases ---- */

static int test_plan(void)
{
	static const struct { const char *text; bool zero_copy, user_copy; } plans[] = {
		/* user_copy leaves alone: nothing would use the kernel's pages */
		{ "volume = { type = \"stripe\"; children = ( { type = \"memleg\"; size = \"1M\"; },"
		  " { type = \"memleg\"; size = \"1M\"; } ); };\n", false, false },
		/* beside a file leg: zero copy, that leg through user copy */
		{ "volume = { type = \"mirror\"; children = ( { type = \"file\"; path = \"p.img\";"
		  " size = \"4M\"; }, { type = \"memleg\"; size = \"4M\"; } ); };\n", true, true },
		{ "volume = { type = \"stripe\"; children = ( { type = \"file\"; path = \"p.img\";"
		  " size = \"1M\"; }, { type = \"file\"; path = \"q.img\"; size = \"1M\"; } ); };\n",
		  true, false },
		/* the config turns it off */
		{ "device = { zero_copy = false; };\n"
		  "volume = { type = \"stripe\"; children = ( { type = \"file\"; path = \"p.img\";"
		  " size = \"1M\"; }, { type = \"memleg\"; size = \"1M\"; } ); };\n", false, false },
	};

	for (unsigned int i = 0; i < sizeof(plans) / sizeof(plans[0]); i++) {
		struct uc_graph g;

		memset(&g, 0, sizeof(g));
		CHECK(!uc_graph_load(&g, conf("plan.conf", plans[i].text)), "plan %u: load", i);
		CHECK(g.zero_copy == plans[i].zero_copy && g.user_copy == plans[i].user_copy,
		      "plan %u: zero_copy %d user_copy %d, want %d %d", i, g.zero_copy, g.user_copy,
		      plans[i].zero_copy, plans[i].user_copy);
		uc_graph_free(&g);
	}
	return T_PASS;
}

static int test_data(void)
{
	const uint64_t off = 12 << 10, len = 100 << 10;	/* 4K chunks: pieces on both legs */
	struct uc_graph g;
	struct uc_queue q;
	uint8_t *want = malloc(len), *got = malloc(len);
	int fd = memfd_create("ublkc", 0), ret;
	const unsigned int tag = 5;

	CHECK(want && got && fd >= 0, "setup");
	memset(&g, 0, sizeof(g));
	CHECK(!uc_graph_load(&g, conf("data.conf",
		"device = { max_io = \"128K\"; };\n"
		"volume = { type = \"stripe\"; chunk = \"4K\"; children = (\n"
		" { type = \"memleg\"; size = \"1M\"; }, { type = \"memleg\"; size = \"1M\"; } ); };\n")) &&
	      !uc_graph_open(&g), "graph");
	CHECK(!uc_queue_init(&q, &g, 0, DEPTH, 0, 0), "queue");
	q.commit = on_commit;
	/* what dev.c sets up for a zero-copy device with user copy */
	q.zero_copy = true;
	q.user_copy_fd = fd;

	/* a write: the data is in the "request pages" only, at the tag's position */
	for (uint64_t i = 0; i < len; i++)
		want[i] = (uint8_t)t_rand();
	CHECK(pwrite(fd, want, len, pos(0, tag)) == (ssize_t)len, "stage the write");
	ret = run(&q, tag, UC_OP_WRITE, off, len);
	CHECK(ret == (int)len, "write: %d", ret);
	/* a read back on the copy path (data into io->buf) */
	q.zero_copy = false;
	ret = run(&q, 1, UC_OP_READ, off, len);
	CHECK(ret == (int)len && !memcmp(q.ios[1].buf, want, len),
	      "copy-path read back: %d (the write's pieces did not reach the legs)", ret);

	/* a zero-copy read: the data must land in the request's pages */
	q.zero_copy = true;
	CHECK(!ftruncate(fd, 0), "clear");
	ret = run(&q, tag, UC_OP_READ, off, len);
	CHECK(ret == (int)len, "read: %d", ret);
	CHECK(pread(fd, got, len, pos(0, tag)) == (ssize_t)len && !memcmp(got, want, len),
	      "the read's data is not in the request's pages");

	/* another queue: its id is part of the position */
	struct uc_queue q1;

	CHECK(!uc_queue_init(&q1, &g, 1, DEPTH, 0, 0), "queue 1");
	q1.commit = on_commit;
	q1.zero_copy = true;
	q1.user_copy_fd = fd;
	for (uint64_t i = 0; i < len; i++)
		want[i] = (uint8_t)t_rand();
	CHECK(pwrite(fd, want, len, pos(1, 2)) == (ssize_t)len, "stage the write on queue 1");
	ret = run(&q1, 2, UC_OP_WRITE, off, len);
	CHECK(ret == (int)len, "queue 1 write: %d", ret);
	CHECK(!ftruncate(fd, 0), "clear");
	ret = run(&q, tag, UC_OP_READ, off, len);
	CHECK(ret == (int)len && pread(fd, got, len, pos(0, tag)) == (ssize_t)len &&
	      !memcmp(got, want, len), "queue 1's write, read on queue 0: %d", ret);
	q1.user_copy_fd = -1;
	uc_queue_exit(&q1);

	/* no char device: the piece fails, the request fails, nothing pretends */
	q.user_copy_fd = -1;
	ret = run(&q, tag, UC_OP_WRITE, off, len);
	CHECK(ret == -EIO, "write without a char device: %d", ret);
	/* a copy that fails (a closed fd): -EIO too */
	q.user_copy_fd = fd;
	close(fd);
	ret = run(&q, tag, UC_OP_READ, off, len);
	CHECK(ret == -EIO, "read with a dead char device: %d", ret);
	for (unsigned int i = 0; i < g.nr_nodes; i++)
		if (g.nodes[i]->ops == &memleg_ops)
			CHECK(!((struct memleg *)g.nodes[i]->priv)->outside,
			      "a leg got iovecs outside the tag's buffer");
	q.user_copy_fd = -1;
	uc_queue_exit(&q);
	uc_graph_free(&g);
	free(want);
	free(got);
	return T_PASS;
}

int main(void)
{
	static const struct t_case cases[] = {
		{ "plan", test_plan },
		{ "data", test_data },
	};

	uc_layer_add(&memleg_ops);
	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
