/* SPDX-License-Identifier: MIT */
/*
 * The queue engine without ublk: synthetic requests go through real graphs
 * (file, stripe, concat, nested) on a real io_uring over temp files, against
 * an in-memory model of the volume. A test-only leaf ("shorty") makes every
 * read/write SQE transfer a random prefix only, so the core's resubmission of
 * short transfers is exercised for real; another ("broken") fails its I/O.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "graph.h"
#include "io.h"
#include "stripe.h"
#include "testlib.h"
#include "udata.h"

#define DEPTH 16

/* ---- test-only leaves ---- */

struct shorty {
	char path[512];
	uint64_t cap;		/* most bytes one SQE moves */
	bool broken;		/* every SQE fails with -EBADF */
};

static int shorty_parse(struct uc_node *n, const config_setting_t *cfg)
{
	static const char *const keys[] = { "type", "path", "size", "cap", NULL };
	struct shorty *s = calloc(1, sizeof(*s));
	const char *path;

	if (!s)
		return -ENOMEM;
	n->priv = s;
	s->cap = 3000;
	s->broken = !strcmp(n->ops->name, "broken");
	if (uc_conf_check_keys(cfg, keys, "shorty") || uc_conf_string(cfg, "path", &path) != 1 ||
	    uc_conf_size(cfg, "size", &n->size) != 1 || uc_conf_size(cfg, "cap", &s->cap) < 0)
		return -EINVAL;
	snprintf(s->path, sizeof(s->path), "%s/%s", n->graph->conf_dir, path);
	n->can_discard = true;
	return uc_graph_add_leaf(n->graph, n);
}

static int shorty_open(struct uc_node *n)
{
	struct shorty *s = n->priv;

	n->fd = open(s->path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (n->fd < 0 || ftruncate(n->fd, n->size))
		return -errno;
	return 0;
}

static void shorty_close(struct uc_node *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	free(n->priv);
	n->priv = NULL;
}

static int shorty_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	const struct shorty *sh = n->priv;
	struct io_uring_sqe *sqe = uc_sub_sqe(q, s);
	uint64_t len;

	if (!sqe)
		return -EBUSY;
	if (sh->broken) {
		io_uring_prep_read(sqe, 1000, NULL, 0, 0);	/* no such fixed file */
		sqe->flags |= IOSQE_FIXED_FILE;
		return 0;
	}
	switch (s->op) {
	case UC_OP_READ:
	case UC_OP_WRITE:
		/* only part of the first iovec: a genuine short transfer */
		len = 1 + t_rand() % sh->cap;
		if (len > s->iov[0].iov_len)
			len = s->iov[0].iov_len;
		if (s->op == UC_OP_READ)
			io_uring_prep_read(sqe, n->file_index, s->iov[0].iov_base, len, s->off);
		else
			io_uring_prep_write(sqe, n->file_index, s->iov[0].iov_base, len, s->off);
		break;
	case UC_OP_FLUSH:
		io_uring_prep_fsync(sqe, n->file_index, IORING_FSYNC_DATASYNC);
		break;
	default:
		io_uring_prep_fallocate(sqe, n->file_index, 0x02 | 0x01 /* PUNCH_HOLE|KEEP_SIZE */,
					s->off, s->len);
	}
	sqe->flags |= IOSQE_FIXED_FILE;
	return 0;
}

static const struct uc_layer_ops shorty_ops = {
	.name = "shorty", .parse = shorty_parse, .open = shorty_open,
	.close = shorty_close, .submit = shorty_submit,
};
static const struct uc_layer_ops broken_ops = {
	.name = "broken", .parse = shorty_parse, .open = shorty_open,
	.close = shorty_close, .submit = shorty_submit,
};

/* ---- harness ---- */

struct harness {
	struct uc_graph g;
	struct uc_queue q;
	uint8_t *model;		/* what the volume must hold */
	struct uc_req reqs[DEPTH];
	uint8_t *wdata[DEPTH];	/* for writes: what was written (reads compare with model) */
	int results[DEPTH];
	bool done[DEPTH];
	unsigned int inflight;
	int failures;
	uint64_t nr_reqs, nr_short_seen;
};

static void on_commit(struct uc_queue *q, struct uc_io *io, int res)
{
	struct harness *h = q->owner;
	const struct uc_req *r = &h->reqs[io->tag];
	int want = (r->op == UC_OP_READ || r->op == UC_OP_WRITE) ? (int)r->len : 0;

	h->results[io->tag] = res;
	h->done[io->tag] = true;
	h->inflight--;
	if (res != want && want >= 0) {
		fprintf(stderr, "tag %u op %u off %llu len %llu: result %d, want %d\n", io->tag,
			r->op, (unsigned long long)r->off, (unsigned long long)r->len, res, want);
		h->failures++;
		return;
	}
	if (r->op == UC_OP_READ && memcmp(io->buf, h->model + r->off, r->len)) {
		fprintf(stderr, "tag %u: read %llu+%llu returned wrong data\n", io->tag,
			(unsigned long long)r->off, (unsigned long long)r->len);
		h->failures++;
	}
}

static int harness_open(struct harness *h, const char *conf)
{
	memset(h, 0, sizeof(*h));
	if (uc_graph_load(&h->g, conf) || uc_graph_open(&h->g))
		return -1;
	if (uc_queue_init(&h->q, &h->g, 0, DEPTH, 0, 0))
		return -1;
	h->q.owner = h;
	h->q.commit = on_commit;
	h->model = calloc(1, h->g.size);
	return h->model ? 0 : -1;
}

static void harness_close(struct harness *h)
{
	uc_queue_exit(&h->q);
	uc_graph_free(&h->g);
	free(h->model);
}

/* Reap until at most `left` requests are in flight. Returns -1 on a stray CQE. */
static int harness_reap(struct harness *h, unsigned int left)
{
	while (h->inflight > left) {
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;

		if (uc_queue_enter(&h->q) < 0)
			return -1;
		io_uring_for_each_cqe(&h->q.ring, head, cqe) {
			if (!uc_queue_cqe(&h->q, cqe))
				return -1;
			n++;
		}
		io_uring_cq_advance(&h->q.ring, n);
		uc_queue_poll(&h->q);
	}
	return 0;
}

static bool overlaps_inflight(struct harness *h, uint64_t off, uint64_t len)
{
	for (unsigned int t = 0; t < DEPTH; t++) {
		const struct uc_req *r = &h->reqs[t];

		if (!h->done[t] && r->op != UC_OP_FLUSH && off < r->off + r->len && r->off < off + len)
			return true;
	}
	return false;
}

static int free_tag(struct harness *h)
{
	for (unsigned int t = 0; t < DEPTH; t++)
		if (h->done[t])
			return t;
	return -1;
}

/* Issue one request on a free tag, updating the model for writes. */
static void issue(struct harness *h, uint8_t op, uint8_t flags, uint64_t off, uint64_t len)
{
	int t;

	while ((t = free_tag(h)) < 0 || overlaps_inflight(h, off, len))
		if (harness_reap(h, h->inflight - 1))
			break;
	if (t < 0)
		t = free_tag(h);
	h->reqs[t] = (struct uc_req){ .op = op, .flags = flags, .off = off, .len = len };
	h->done[t] = false;
	h->inflight++;
	h->nr_reqs++;
	if (op == UC_OP_WRITE) {
		uint8_t *buf = h->q.ios[t].buf;

		for (uint64_t i = 0; i < len; i += 8) {
			uint64_t v = t_rand();

			memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
		}
		memcpy(h->model + off, buf, len);
	} else if (op == UC_OP_DISCARD || op == UC_OP_WRITE_ZEROES) {
		memset(h->model + off, 0, len);
	} else if (op == UC_OP_READ) {
		memset(h->q.ios[t].buf, 0xa5, len);
	}
	uc_queue_start(&h->q, t, &h->reqs[t]);
}

/* A random mix of every op, then a full read-back. Returns failures. */
static int run_mix(struct harness *h, unsigned int nr, bool discards)
{
	uint64_t max_io = h->g.dev.max_io, size = h->g.size;

	for (unsigned int t = 0; t < DEPTH; t++)
		h->done[t] = true;
	for (unsigned int i = 0; i < nr; i++) {
		unsigned int pick = t_rand() % 100;
		uint64_t len = 512 * (1 + t_rand() % (max_io / 512)), off;

		if (t_rand() % 4 == 0)
			len = 512 * (1 + t_rand() % 16);
		if (len > size)
			len = size;
		off = 512 * (t_rand() % ((size - len) / 512 + 1));
		if (pick < 45)
			issue(h, UC_OP_WRITE, t_rand() % 8 ? 0 : UC_F_FUA, off, len);
		else if (pick < 90 || !discards)
			issue(h, UC_OP_READ, 0, off, len);
		else if (pick < 97)
			/* whole 4K blocks, as the kernel sends them (granularity) */
			issue(h, pick < 94 ? UC_OP_DISCARD : UC_OP_WRITE_ZEROES,
			      t_rand() % 2 ? UC_F_NOUNMAP : 0, off & ~4095ULL,
			      ((off + len + 4095) & ~4095ULL) > size ? size - (off & ~4095ULL) :
			      ((off + len + 4095) & ~4095ULL) - (off & ~4095ULL));
		else
			issue(h, UC_OP_FLUSH, 0, 0, 0);
	}
	for (uint64_t off = 0; off < size; off += max_io)
		issue(h, UC_OP_READ, 0, off, size - off < max_io ? size - off : max_io);
	if (harness_reap(h, 0))
		h->failures++;
	if (h->q.nr_busy || h->q.nr_member) {
		fprintf(stderr, "engine not idle: %u busy, %u member I/Os\n", h->q.nr_busy,
			h->q.nr_member);
		h->failures++;
	}
	return h->failures;
}

static const char *conf(const char *name, const char *text)
{
	return t_write_file(t_tmpdir(), name, text);
}

static int mix_test(const char *name, const char *text, bool expect_short)
{
	struct harness h;
	int fails;

	if (harness_open(&h, conf(name, text)))
		return T_FAIL;
	fails = run_mix(&h, 3000, true);
	printf("  %s: %llu requests, %llu short transfers resubmitted, %d failures\n", name,
	       (unsigned long long)h.nr_reqs, (unsigned long long)h.q.nr_short, fails);
	if (expect_short && h.q.nr_short < 1000)
		fails++;
	harness_close(&h);
	return fails ? T_FAIL : T_PASS;
}

static int test_file(void)
{
	return mix_test("file.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"file\"; path = \"f.img\"; size = \"4M\"; };\n", false);
}

static int test_stripe(void)
{
	return mix_test("stripe.conf",
		"device = { max_io = \"128K\"; };\n"
		"volume = { type = \"stripe\"; chunk = \"4K\"; children = (\n"
		" { type = \"file\"; path = \"s0.img\"; size = \"2M\"; },\n"
		" { type = \"file\"; path = \"s1.img\"; size = \"2M\"; },\n"
		" { type = \"file\"; path = \"s2.img\"; size = \"3M\"; } ); };\n", false);
}

static int test_concat(void)
{
	return mix_test("concat.conf",
		"device = { max_io = \"256K\"; };\n"
		"volume = { type = \"concat\"; children = (\n"
		" { type = \"file\"; path = \"c0.img\"; size = \"64K\"; },\n"
		" { type = \"file\"; path = \"c1.img\"; size = \"1M\"; },\n"
		" { type = \"file\"; path = \"c2.img\"; size = \"12K\"; },\n"
		" { type = \"file\"; path = \"c3.img\"; size = \"2M\"; } ); };\n", false);
}

static int test_nested(void)
{
	return mix_test("nested.conf",
		"device = { max_io = \"512K\"; };\n"
		"volume = { type = \"stripe\"; chunk = \"8K\"; children = (\n"
		" { type = \"concat\"; children = (\n"
		"   { type = \"file\"; path = \"n0.img\"; size = \"1M\"; },\n"
		"   { type = \"stripe\"; chunk = \"4K\"; children = (\n"
		"     { type = \"file\"; path = \"n1.img\"; size = \"1M\"; },\n"
		"     { type = \"file\"; path = \"n2.img\"; size = \"1M\"; } ); } ); },\n"
		" { type = \"file\"; path = \"n3.img\"; size = \"3M\"; } ); };\n", false);
}

/* Short transfers on every member I/O: data and results stay exact. */
static int test_short_transfers(void)
{
	return mix_test("short.conf",
		"device = { max_io = \"256K\"; };\n"
		"volume = { type = \"stripe\"; chunk = \"4K\"; children = (\n"
		" { type = \"shorty\"; path = \"h0.img\"; size = \"1M\"; cap = 5000; },\n"
		" { type = \"shorty\"; path = \"h1.img\"; size = \"1M\"; cap = 700; } ); };\n", true);
}

/* Same under a concat: the remainder crosses iovecs gathered by two layers. */
static int test_short_nested(void)
{
	return mix_test("short2.conf",
		"device = { max_io = \"128K\"; };\n"
		"volume = { type = \"concat\"; children = (\n"
		" { type = \"shorty\"; path = \"h2.img\"; size = \"64K\"; cap = 4096; },\n"
		" { type = \"stripe\"; chunk = \"4K\"; children = (\n"
		"   { type = \"shorty\"; path = \"h3.img\"; size = \"1M\"; cap = 9000; },\n"
		"   { type = \"file\"; path = \"h4.img\"; size = \"1M\"; } ); } ); };\n", true);
}

/* The stripe really puts chunk k on child k % N: check the files themselves. */
static int test_stripe_layout(void)
{
	struct harness h;
	int fails, fd[3];
	char path[600];

	if (harness_open(&h, conf("layout.conf",
		"device = { max_io = \"128K\"; };\n"
		"volume = { type = \"stripe\"; chunk = \"16K\"; children = (\n"
		" { type = \"file\"; path = \"l0.img\"; size = \"1M\"; direct = false; },\n"
		" { type = \"file\"; path = \"l1.img\"; size = \"1M\"; direct = false; },\n"
		" { type = \"file\"; path = \"l2.img\"; size = \"1M\"; direct = false; } ); };\n")))
		return T_FAIL;
	fails = run_mix(&h, 500, false);
	for (int c = 0; c < 3; c++) {
		snprintf(path, sizeof(path), "%s/l%d.img", t_tmpdir(), c);
		fd[c] = open(path, O_RDONLY);
		CHECK(fd[c] >= 0, "%s", path);
	}
	for (uint64_t off = 0; off < h.g.size && !fails; off += 4096) {
		uint64_t k = off >> 14;
		uint8_t buf[4096];

		CHECK(pread(fd[k % 3], buf, 4096, (k / 3 << 14) + (off & 16383)) == 4096, "pread");
		CHECK(!memcmp(buf, h.model + off, 4096), "volume offset %llu is not where md raid0 puts it",
		      (unsigned long long)off);
	}
	for (int c = 0; c < 3; c++)
		close(fd[c]);
	harness_close(&h);
	return fails ? T_FAIL : T_PASS;
}

/* A failing leg: the request gets the leg's -errno, the others still finish. */
static int test_member_error(void)
{
	struct harness h;
	int t = 0;

	if (harness_open(&h, conf("broken.conf",
		"device = { max_io = \"128K\"; };\n"
		"volume = { type = \"stripe\"; chunk = \"4K\"; children = (\n"
		" { type = \"file\"; path = \"b0.img\"; size = \"1M\"; },\n"
		" { type = \"broken\"; path = \"b1.img\"; size = \"1M\"; } ); };\n")))
		return T_FAIL;
	for (unsigned int i = 0; i < DEPTH; i++)
		h.done[i] = true;
	h.reqs[t] = (struct uc_req){ .op = UC_OP_WRITE, .off = 0, .len = 64 << 10 };
	h.done[t] = false;
	h.inflight = 1;
	uc_queue_start(&h.q, t, &h.reqs[t]);
	CHECK(!harness_reap(&h, 0), "reap");
	CHECK(h.results[t] == -EBADF, "result %d, want -EBADF", h.results[t]);
	/* only the good leg's part: a read confined to child 0 works */
	h.reqs[t] = (struct uc_req){ .op = UC_OP_READ, .off = 0, .len = 4096 };
	h.done[t] = false;
	h.inflight = 1;
	h.failures = 0;
	memcpy(h.model, h.q.ios[t].buf, 4096);	/* chunk 0 was written by the good leg */
	uc_queue_start(&h.q, t, &h.reqs[t]);
	CHECK(!harness_reap(&h, 0) && h.results[t] == 4096, "read from good leg: %d", h.results[t]);
	CHECK(!h.q.nr_busy && !h.q.nr_member, "engine not idle");
	harness_close(&h);
	return T_PASS;
}

/* Requests the volume cannot serve end with the kernel's conventions. */
static int test_bad_requests(void)
{
	static const struct { struct uc_req r; int want; } cases[] = {
		{ { .op = 4 /* WRITE_SAME */, .off = 0, .len = 4096 }, -EOPNOTSUPP },
		{ { .op = 77, .off = 0, .len = 4096 }, -EOPNOTSUPP },
		{ { .op = UC_OP_READ, .off = (4 << 20) - 512, .len = 1024 }, -EIO },
		{ { .op = UC_OP_WRITE, .off = 0, .len = 128 << 10 }, -EIO },	/* > max_io */
		{ { .op = UC_OP_FLUSH }, 0 },
	};
	struct harness h;

	if (harness_open(&h, conf("bad.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"file\"; path = \"bad.img\"; size = \"4M\"; };\n")))
		return T_FAIL;
	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		h.reqs[0] = cases[i].r;
		h.done[0] = false;
		h.inflight = 1;
		uc_queue_start(&h.q, 0, &h.reqs[0]);
		CHECK(!harness_reap(&h, 0), "reap");
		CHECK(h.results[0] == cases[i].want, "case %u: result %d, want %d", i, h.results[0],
		      cases[i].want);
	}
	harness_close(&h);
	return T_PASS;
}

/* ---- a leaf's fd swapped at runtime (a mirror's replace) ---- */

struct files_change {
	struct uc_graph *g;
	int ret;
	_Atomic bool done;
};

static void *files_change_thread(void *arg)
{
	struct files_change *fc = arg;

	fc->ret = uc_graph_files_changed(fc->g, 5000);
	atomic_store(&fc->done, true);
	return NULL;
}

/* uc_graph_files_changed() on another thread while this one turns the queue. */
static int files_changed_while_serving(struct harness *h)
{
	struct files_change fc = { .g = &h->g };
	pthread_t t;

	if (pthread_create(&t, NULL, files_change_thread, &fc))
		return -ENOMEM;
	while (!atomic_load(&fc.done)) {
		if (uc_queue_turn(&h->q))
			break;
		usleep(1000);
	}
	pthread_join(t, NULL);
	return fc.ret;
}

/*
 * The queues could not register the new fd: the admin must hear it, not see
 * success while the queue goes on writing the old file (issue 17, item 8).
 * A later change with a good fd goes through.
 */
static int test_files_update_failure(void)
{
	struct harness h;
	int fd, bad, ret;

	if (harness_open(&h, conf("files.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"file\"; path = \"files.img\"; size = \"1M\"; };\n")))
		return T_FAIL;
	fd = h.g.leaves[0]->fd;
	bad = dup(fd);
	close(bad);
	h.g.leaves[0]->fd = bad;	/* no such file: registering it fails with -EBADF */
	ret = files_changed_while_serving(&h);
	h.g.leaves[0]->fd = fd;
	CHECK(ret < 0, "a queue failed to register the new file, yet files_changed returned %d", ret);
	ret = files_changed_while_serving(&h);
	CHECK(!ret, "a good fd after a failed one: %d", ret);
	CHECK(run_mix(&h, 200, true) == 0, "I/O after the swap");
	harness_close(&h);
	return T_PASS;
}

/* ---- watched fds (uc_watch_*) ---- */

struct watch_seen {
	struct uc_watch w;
	int calls, events;
};

static void watch_ready(struct uc_queue *q, struct uc_watch *w, int events)
{
	struct watch_seen *ws = w->arg;

	(void)q;
	ws->calls++;
	ws->events = events;
}

/* Submit what is queued and handle CQEs for up to ms (or until one arrived). */
static int watch_turn(struct uc_queue *q, int ms)
{
	struct __kernel_timespec ts = { .tv_nsec = (long long)ms * 1000000 };
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;
	int ret = io_uring_submit_and_wait_timeout(&q->ring, &cqe, 1, &ts, NULL);

	if (ret < 0 && ret != -ETIME && ret != -EINTR)
		return ret;
	io_uring_for_each_cqe(&q->ring, head, cqe) {
		if (!uc_queue_cqe(q, cqe))
			return -EBADMSG;
		n++;
	}
	io_uring_cq_advance(&q->ring, n);
	return 0;
}

/*
 * POLLIN fires once per arm and again while data waits (level-triggered),
 * POLLOUT on a writable pipe at once; a removed watch gets no callback, not
 * even through a slot that another watch took meanwhile; uc_queue_exit
 * drops what is left.
 */
static int test_watch(void)
{
	struct harness h;
	struct watch_seen a = { 0 }, b = { 0 };
	int p[2];
	char c = 'x';

	if (harness_open(&h, conf("watch.conf",
		"volume = { type = \"file\"; path = \"watch.img\"; size = \"1M\"; };\n")))
		return T_FAIL;
	CHECK(!pipe(p), "pipe");
	a.w = (struct uc_watch){ .fd = p[0], .ready = watch_ready, .arg = &a };
	CHECK(!uc_watch_add(&h.q, &a.w) && a.w.q == &h.q, "add");
	CHECK(!uc_watch_arm(&a.w, POLLIN), "arm");
	CHECK(!watch_turn(&h.q, 50) && a.calls == 0, "fired with nothing to read: %d", a.calls);
	CHECK(write(p[1], &c, 1) == 1, "write");
	CHECK(!watch_turn(&h.q, 1000) && a.calls == 1 && (a.events & POLLIN), "calls %d events %#x",
	      a.calls, a.events);
	CHECK(!watch_turn(&h.q, 50) && a.calls == 1, "fired again without being armed");
	/* the byte is still there: arming again fires at once */
	CHECK(!uc_watch_arm(&a.w, POLLIN) && !watch_turn(&h.q, 1000) && a.calls == 2, "level");
	CHECK(read(p[0], &c, 1) == 1, "read");
	/* armed for both: the pipe's read end is never writable, its write end always */
	b.w = (struct uc_watch){ .fd = p[1], .ready = watch_ready, .arg = &b };
	CHECK(!uc_watch_add(&h.q, &b.w) && !uc_watch_arm(&b.w, POLLOUT), "b");
	CHECK(!watch_turn(&h.q, 1000) && b.calls == 1 && (b.events & POLLOUT), "pollout");
	/* a removed watch's pending poll: its slot goes to a new watch, which must not see it */
	CHECK(!uc_watch_arm(&a.w, POLLIN), "arm");
	uc_watch_del(&a.w);
	CHECK(!a.w.q, "still on a queue");
	b.calls = 0;
	uc_watch_del(&b.w);
	b.w.fd = p[0];
	CHECK(!uc_watch_add(&h.q, &b.w) && b.w.slot == 0, "slot %u", b.w.slot);
	CHECK(write(p[1], &c, 1) == 1, "write");
	CHECK(!watch_turn(&h.q, 100) && !watch_turn(&h.q, 100), "turn");
	CHECK(a.calls == 2 && b.calls == 0, "removed watch delivered: a %d b %d", a.calls, b.calls);
	CHECK(!uc_watch_arm(&b.w, POLLIN) && !watch_turn(&h.q, 1000) && b.calls == 1, "new watch");
	CHECK(!uc_watch_arm(&b.w, POLLIN), "arm");
	harness_close(&h);
	CHECK(!b.w.q && !b.w.armed, "exit left the watch on the queue");
	close(p[0]);
	close(p[1]);
	return T_PASS;
}

int main(void)
{
	static const struct t_case cases[] = {
		{ "file", test_file },
		{ "stripe", test_stripe },
		{ "concat", test_concat },
		{ "nested", test_nested },
		{ "short_transfers", test_short_transfers },
		{ "short_nested", test_short_nested },
		{ "stripe_layout", test_stripe_layout },
		{ "member_error", test_member_error },
		{ "bad_requests", test_bad_requests },
		{ "files_update_failure", test_files_update_failure },
		{ "watch", test_watch },
	};
	struct io_uring ring;

	if (io_uring_queue_init(2, &ring, 0)) {
		fprintf(stderr, "no io_uring here\n");
		return T_SKIP;
	}
	io_uring_queue_exit(&ring);
	uc_layer_add(&shorty_ops);
	uc_layer_add(&broken_ops);
	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
