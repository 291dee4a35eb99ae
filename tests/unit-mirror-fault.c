/* SPDX-License-Identifier: MIT */
/*
 * The mirror under failures, through tests/harness.c: fault nodes under its
 * legs (the source failing during a rebuild, read errors on the resync
 * source), a leg without discard, a full submission queue, a pause while a
 * resync window waits, reads across unsynced chunks after an unclean stop,
 * and what poll costs when there is nothing to do. Data is checked against
 * the harness's model of the volume.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "graph.h"
#include "harness.h"
#include "io.h"
#include "log.h"
#include "mirror.h"
#include "testlib.h"

extern const struct uc_layer_ops file_layer_ops;	/* test leaves wrap it */

/* ---- helpers ---- */

/* Stop like a queue thread: no new background work, drain, then close (deactivate: clean). */
static void stop(struct harness *h)
{
	h->q.stopping = true;
	while (!uc_queue_idle(&h->q))
		if (uc_queue_turn(&h->q))
			break;
	harness_close(h);
}

/* A loop turn that does not wait: reap what is there, poll. */
static void turn_nowait(struct harness *h)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	io_uring_submit(&h->q.ring);
	io_uring_for_each_cqe(&h->q.ring, head, cqe) {
		uc_queue_cqe(&h->q, cqe);
		n++;
	}
	io_uring_cq_advance(&h->q.ring, n);
	uc_queue_poll(&h->q);
}

/* Run the queue (background work too) until node's status starts with want. */
static int wait_status(struct harness *h, struct uc_node *n, const char *want, int secs)
{
	time_t end = time(NULL) + secs;

	while (strncmp(status(n), want, strlen(want))) {
		if (time(NULL) > end) {
			fprintf(stderr, "%s: status '%s', waited for '%s'\n", n->name, status(n), want);
			return -1;
		}
		if (!uc_queue_idle(&h->q)) {
			if (harness_turn(h))
				return -1;
		} else {
			turn_nowait(h);
			usleep(1000);
		}
	}
	return 0;
}

/*
 * Random writes and reads (checked against the model), reaped. Not
 * harness_drain()/run_mix(): a mirror's queue is idle only once its bitmap
 * bits have cleared, 2-4 s after the last write.
 */
static int mix(struct harness *h, unsigned int nr)
{
	h->failures = 0;
	h->lax = false;
	for (unsigned int i = 0; i < nr; i++) {
		uint64_t len = 4 * K * (1 + t_rand() % 32), off;

		off = 4 * K * (t_rand() % ((h->g.size - len) / (4 * K) + 1));
		issue(h, t_rand() % 2 ? UC_OP_WRITE : UC_OP_READ, 0, off, len);
	}
	return harness_reap(h, 0) ? -1 : h->failures;
}

/* The whole volume read back against the model, max_io at a time. */
static int verify(struct harness *h)
{
	h->failures = 0;
	h->lax = false;
	for (uint64_t off = 0; off < h->g.size; off += h->g.dev.max_io)
		issue(h, UC_OP_READ, 0, off,
		      h->g.size - off < h->g.dev.max_io ? h->g.size - off : h->g.dev.max_io);
	return harness_reap(h, 0) ? -1 : h->failures;
}

static const char *path_in(const char *name)
{
	static char p[4][512];
	static int next;
	char *s = p[next++ % 4];

	snprintf(s, 512, "%s/%s", t_tmpdir(), name);
	return s;
}

/* The data offset of a leg file (its superblock), or 0. */
static uint64_t data_offset(const char *leg)
{
	uint8_t b[4096];
	struct mirror_sb sb;
	int fd = open(path_in(leg), O_RDONLY);
	bool ok = fd >= 0 && pread(fd, b, sizeof(b), 0) == sizeof(b) && !mirror_sb_decode(&sb, b);

	if (fd >= 0)
		close(fd);
	return ok ? sb.data_offset : 0;
}

/* Data areas of two leg files: 0 equal, 1 differ, -1 unreadable. */
static int legs_differ(const char *a, const char *b, uint64_t size)
{
	static uint8_t ba[1 << 20], bb[1 << 20];
	uint64_t off_a = data_offset(a), off_b = data_offset(b);
	int fa = open(path_in(a), O_RDONLY), fb = open(path_in(b), O_RDONLY), diff = -1;

	if (fa < 0 || fb < 0 || !off_a || off_a != off_b)
		goto out;
	diff = 0;
	for (uint64_t off = 0; off < size && !diff; off += sizeof(ba)) {
		size_t n = size - off < sizeof(ba) ? size - off : sizeof(ba);

		if (pread(fa, ba, n, off_a + off) != (ssize_t)n || pread(fb, bb, n, off_a + off) != (ssize_t)n)
			diff = -1;
		else if (memcmp(ba, bb, n))
			diff = 1;
	}
out:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return diff;
}

/* Bytes of a leg's data area (what the next start reads), into the model. */
static int model_from(struct harness *h, const char *leg)
{
	int fd = open(path_in(leg), O_RDONLY);
	ssize_t r = fd >= 0 ? pread(fd, h->model, h->g.size, data_offset(leg)) : -1;

	if (fd >= 0)
		close(fd);
	return r == (ssize_t)h->g.size ? 0 : -1;
}

static int json_u64(struct uc_node *n, const char *key, uint64_t *v)
{
	char js[8192], k[64];
	const char *p;

	n->ops->json(n, js, sizeof(js));
	snprintf(k, sizeof(k), "\"%s\": ", key);
	p = strstr(js, k);
	if (!p)
		return -1;
	*v = strtoull(p + strlen(k), NULL, 10);
	return 0;
}

#define FAULT_LEG(name, file) \
	"   { type = \"fault\"; name = \"" name "\"; children = (\n" \
	"     { type = \"file\"; path = \"" file "\"; size = \"16M\"; } ); }"

/* a mirror of two fault nodes over files: 15M, 1M bitmap chunks, 256K windows */
#define MIRROR_FF(extra, a, b) \
	"device = { max_io = \"256K\"; };\n" \
	"volume = { type = \"mirror\"; name = \"m\"; bitmap_chunk = \"1M\"; " extra "\n" \
	"  children = (\n" FAULT_LEG("fa", a) ",\n" FAULT_LEG("fb", b) " ); };\n"

/* ---- 18.1: the last in-sync leg fails while the other one is rebuilding ---- */

/*
 * The in-sync leg starts failing during a rebuild of the other: the mirror
 * has failed (md: no In_sync device left). Writes fail instead of being
 * acknowledged onto the half-built leg, reads fail, status says failed; the
 * next start assembles again from the leg that was in sync, with every
 * acknowledged write.
 */
static int test_last_in_sync_fails(void)
{
	const char *cf = conf("lis.conf", MIRROR_FF("resync_rate = \"4K\";", "lis-a.img", "lis-b.img"));
	struct harness h;
	struct uc_node *m, *fa;
	uint8_t *model;
	uint64_t size;

	CHECK(!harness_open(&h, cf), "open");
	size = h.g.size;
	CHECK(!mix(&h, 400), "mix");
	model = malloc(size);
	CHECK(model, "alloc");
	memcpy(model, h.model, size);
	stop(&h);
	/* leg b replaced by an empty file while stopped: rebuilt in full, slowly (4K/s) */
	unlink(path_in("lis-b.img"));
	CHECK(!harness_open(&h, cf), "open with a new leg b");
	memcpy(h.model, model, size);
	m = uc_graph_find(&h.g, "m");
	fa = uc_graph_find(&h.g, "fa");
	CHECK(!strncmp(status(m), "resyncing", 9), "no rebuild: %s", status(m));
	/* reads come from leg a meanwhile; this write makes the bit of its region durable */
	CHECK(one(&h, UC_OP_READ, 0, 64 * K) == 64 * K, "read during the rebuild");
	CHECK(one(&h, UC_OP_WRITE, 0, 64 * K) == 64 * K, "write during the rebuild");
	memcpy(model, h.model, size);
	{
		char r[256];
		int ret = ctl(m, "fail", "fa", r, sizeof(r));

		CHECK(ret == -EBUSY, "fail of the last in-sync leg: %d %s", ret, r);
	}
	CTL_OK(fa, "errors", "all", NULL);
	/* a region whose bitmap bit is set already: the write goes to the legs at once */
	CHECK(one(&h, UC_OP_WRITE, 0, 64 * K) == -EIO,
	      "a write was acknowledged with only the rebuilding leg taking it (%s)", status(m));
	CHECK(!strncmp(status(m), "failed", 6), "status with no in-sync leg: %s", status(m));
	CHECK(one(&h, UC_OP_READ, 64 * K, 64 * K) == -EIO, "read of a failed mirror");
	CHECK(one(&h, UC_OP_WRITE, 1 * M, 4 * K) == -EIO, "second write of a failed mirror");
	CHECK(one(&h, UC_OP_FLUSH, 0, 0) == -EIO, "flush of a failed mirror");
	stop(&h);
	/* leg a works again (a new process: fault settings start at none) */
	CHECK(!harness_open(&h, cf), "the next start refused the legs");
	memcpy(h.model, model, size);
	m = uc_graph_find(&h.g, "m");
	CHECK(!strncmp(status(m), "resyncing", 9), "after restart: %s", status(m));
	CHECK(!verify(&h), "an acknowledged write is missing after the restart");
	stop(&h);
	free(model);
	return T_PASS;
}

/* ---- 18.2: read errors on the resync source ---- */

/*
 * Unclean stop with two dirty regions; at the restart leg a (the resync
 * source) cannot read the first one. The window is read from leg b (in sync
 * too) instead and written over a; the resync goes on to the second region.
 */
static int test_resync_source_read_error(void)
{
	const char *cf = conf("rse.conf", MIRROR_FF("resync_rate = \"0\";", "rse-a.img", "rse-b.img"));
	struct harness h;
	struct uc_node *m, *fa;
	uint8_t junk[4096];
	uint64_t done = 0, total = 1, size;
	pid_t pid;
	int st, fd;

	pid = fork();
	if (!pid) {
		if (harness_open(&h, cf))
			_exit(1);
		/* writes in [1M, 2M) and [5M, 6M) only: two dirty chunks, then kill -9 */
		for (int i = 0; i < 200; i++)
			issue(&h, UC_OP_WRITE, 0, (i % 2 ? 5 * M : 1 * M) + 4 * K * (t_rand() % 250),
			      4 * K * (1 + t_rand() % 6));
		/* not to idle: the bits would clear after 2 s */
		if (harness_reap(&h, 0) || h.failures)
			_exit(1);
		_exit(0);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st), "child run");
	/* a torn write in the second region: leg b differs there */
	memset(junk, 0x5a, sizeof(junk));
	fd = open(path_in("rse-b.img"), O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, junk, sizeof(junk), data_offset("rse-b.img") + 5 * M + 8 * K) == 4096,
	      "corrupt leg b");
	close(fd);
	CHECK(!harness_open(&h, cf), "reopen");
	size = h.g.size;
	m = uc_graph_find(&h.g, "m");
	fa = uc_graph_find(&h.g, "fa");
	CHECK(!strncmp(status(m), "resyncing", 9), "no resync: %s", status(m));
	/* before the first turn: the resync's first window is unreadable on the source */
	CTL_OK(fa, "errors", "read", NULL);
	CTL_OK(fa, "ranges", "2M+64K", NULL);	/* leg offsets: the data starts at 1M */
	CHECK(!wait_status(&h, m, "clean", 60), "resync did not finish");
	CHECK(!json_u64(m, "resync_done", &done) && !json_u64(m, "resync_total", &total) &&
	      done == total, "resync stopped early: %llu of %llu", (unsigned long long)done,
	      (unsigned long long)total);
	CTL_OK(fa, "errors", "none", NULL);
	stop(&h);
	CHECK(legs_differ("rse-a.img", "rse-b.img", size) == 0, "legs differ after the resync");
	return T_PASS;
}

/*
 * A rebuild whose only source cannot read 4K of it: the window is retried
 * 4K at a time, the unreadable 4K is skipped and recorded (md's bad-block
 * log) and the rebuild finishes. Reads of that 4K fail rather than return
 * what the new leg held; the record survives a restart; a write heals it.
 */
static int test_rebuild_unreadable_block(void)
{
	const char *cf = conf("rub.conf", MIRROR_FF("resync_rate = \"0\";", "rub-a.img", "rub-b.img"));
	struct harness h;
	struct uc_node *m, *fa;
	uint8_t *model;
	uint64_t size, done = 0, total = 1;
	char js[8192];

	CHECK(!harness_open(&h, cf), "open");
	size = h.g.size;
	CHECK(!mix(&h, 300), "mix");
	CHECK(one(&h, UC_OP_WRITE, 2 * M - 64 * K, 128 * K) == 128 * K, "write around 2M");
	model = malloc(size);
	CHECK(model, "alloc");
	memcpy(model, h.model, size);
	stop(&h);
	unlink(path_in("rub-b.img"));
	CHECK(!harness_open(&h, cf), "open with a new leg b");
	memcpy(h.model, model, size);
	m = uc_graph_find(&h.g, "m");
	fa = uc_graph_find(&h.g, "fa");
	CTL_OK(fa, "errors", "read", NULL);
	CTL_OK(fa, "ranges", "3M+4K", NULL);	/* leg offsets: the data starts at 1M */
	CHECK(!wait_status(&h, m, "clean", 60), "the rebuild did not finish");
	CHECK(!json_u64(m, "resync_done", &done) && !json_u64(m, "resync_total", &total) &&
	      done == total, "rebuild stopped early: %llu of %llu", (unsigned long long)done,
	      (unsigned long long)total);
	m->ops->json(m, js, sizeof(js));
	CHECK(strstr(js, "\"bad_ranges\": [{\"offset\": 2097152, \"length\": 4096, \"legs\": [1]}]"),
	      "no bad range recorded: %s", js);
	CHECK(strstr(status(m), "bad=4K"), "status: %s", status(m));
	/* the rest is there, on both legs */
	CHECK(one(&h, UC_OP_READ, 2 * M - 64 * K, 64 * K) == 64 * K, "read before the bad 4K");
	CHECK(one(&h, UC_OP_READ, 2 * M + 4 * K, 64 * K) == 64 * K, "read after the bad 4K");
	CHECK(one(&h, UC_OP_READ, 2 * M, 4 * K) == -EIO, "the unreadable 4K was read from the new leg");
	CHECK(one(&h, UC_OP_READ, 2 * M - 4 * K, 12 * K) == -EIO, "a read across it");
	CTL_OK(fa, "errors", "none", NULL);
	stop(&h);
	CHECK(legs_differ("rub-a.img", "rub-b.img", size) == 1, "the bad 4K was copied after all");
	{
		/* the legs agree everywhere but there */
		int fd = open(path_in("rub-b.img"), O_RDWR), fa_fd = open(path_in("rub-a.img"), O_RDONLY);
		uint8_t b[4096];
		uint64_t off = data_offset("rub-a.img") + 2 * M;

		CHECK(fd >= 0 && fa_fd >= 0 && pread(fa_fd, b, 4096, off) == 4096 &&
		      pwrite(fd, b, 4096, off) == 4096, "patch");
		close(fd);
		close(fa_fd);
		CHECK(legs_differ("rub-a.img", "rub-b.img", size) == 0, "legs differ elsewhere");
		/* back as it was: leg b holds what it held (zeroes) */
		memset(b, 0, sizeof(b));
		fd = open(path_in("rub-b.img"), O_RDWR);
		CHECK(fd >= 0 && pwrite(fd, b, 4096, off) == 4096, "unpatch");
		close(fd);
	}
	/* the record is on disk: after a restart leg b still does not serve that 4K */
	CHECK(!harness_open(&h, cf), "reopen");
	memcpy(h.model, model, size);
	m = uc_graph_find(&h.g, "m");
	fa = uc_graph_find(&h.g, "fa");
	CHECK(!strncmp(status(m), "clean", 5) && strstr(status(m), "bad=4K"), "after restart: %s",
	      status(m));
	for (int i = 0; i < 4; i++)
		CHECK(one(&h, UC_OP_READ, 2 * M, 4 * K) == 4 * K, "leg a reads it again: %d", i);
	CTL_OK(fa, "errors", "read", NULL);
	CTL_OK(fa, "ranges", "3M+4K", NULL);
	CHECK(one(&h, UC_OP_READ, 2 * M, 4 * K) == -EIO, "leg b served the 4K it never got");
	/* a write makes it whole on both legs: the record goes */
	CTL_OK(fa, "errors", "none", NULL);
	CHECK(one(&h, UC_OP_WRITE, 2 * M, 4 * K) == 4 * K, "write over the bad 4K");
	CHECK(!strstr(status(m), "bad="), "record still there after a write: %s", status(m));
	CTL_OK(fa, "errors", "read", NULL);
	CHECK(one(&h, UC_OP_READ, 2 * M, 4 * K) == 4 * K, "leg b does not serve it after the write");
	CTL_OK(fa, "errors", "none", NULL);
	CHECK(!verify(&h), "verify");
	stop(&h);
	CHECK(legs_differ("rub-a.img", "rub-b.img", size) == 0, "legs differ at the end");
	free(model);
	return T_PASS;
}

/*
 * More unreadable blocks than the table holds: a file leaf whose reads fail
 * on every other 4K block of a range (65 separate blocks). The rebuild
 * records 64 and stops there; the leg stays rebuilding (degraded), the
 * records survive a stop. Readable again at the next start, the rebuild
 * runs again (a stopped one keeps no position), copies those blocks and the
 * records go.
 */
static struct uc_layer_ops holey_ops;
static uint64_t holey_lo, holey_hi;	/* leaf offsets; even 4K blocks in it fail reads */

static int holey_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	if (s->op == UC_OP_READ && s->off < holey_hi && holey_lo < s->off + s->len)
		for (uint64_t b = s->off / 4096; b * 4096 < s->off + s->len; b++)
			if (b * 4096 >= holey_lo && b * 4096 < holey_hi && !((b * 4096 - holey_lo) / 4096 % 2))
				return -EIO;
	return file_layer_ops.submit(n, q, s);
}

static int test_bad_table_full(void)
{
	const char *cf = conf("btf.conf",
		"device = { max_io = \"256K\"; };\n"
		"volume = { type = \"mirror\"; name = \"m\"; bitmap_chunk = \"1M\"; children = (\n"
		"  { type = \"holey\"; path = \"btf-a.img\"; size = \"16M\"; },\n"
		"  { type = \"file\"; path = \"btf-b.img\"; size = \"16M\"; } ); };\n");
	struct harness h;
	struct uc_node *m;
	uint8_t *model;
	uint64_t size;

	CHECK(!harness_open(&h, cf), "open");
	size = h.g.size;
	CHECK(!mix(&h, 300), "mix");
	model = malloc(size);
	CHECK(model, "alloc");
	memcpy(model, h.model, size);
	stop(&h);
	unlink(path_in("btf-b.img"));
	holey_lo = 3 * M;	/* mirror 2M: 130 blocks, 65 of them unreadable */
	holey_hi = 3 * M + 130 * 4 * K;
	CHECK(!harness_open(&h, cf), "open with a new leg b");
	memcpy(h.model, model, size);
	m = h.g.root;
	CHECK(!wait_status(&h, m, "degraded", 60), "the rebuild did not stop");
	printf("  bad_table_full: %s\n", status(m));
	CHECK(strstr(status(m), "bad=256K") && strstr(status(m), "[1 rebuilding (full)"),
	      "after 64 records: %s", status(m));
	CHECK(one(&h, UC_OP_READ, 2 * M + 4 * K, 4 * K) == 4 * K, "a readable block");
	CHECK(one(&h, UC_OP_READ, 2 * M, 4 * K) == -EIO, "an unreadable block");
	CHECK(one(&h, UC_OP_READ, 8 * M, 64 * K) == 64 * K, "beyond the stop");
	stop(&h);
	holey_hi = 0;	/* readable again */
	CHECK(!harness_open(&h, cf), "reopen");
	memcpy(h.model, model, size);
	m = h.g.root;
	CHECK(strstr(status(m), "bad=256K"), "records lost at the stop: %s", status(m));
	CHECK(!wait_status(&h, m, "clean", 60), "the rebuild did not finish");
	CHECK(!strstr(status(m), "bad="), "records left after the copy: %s", status(m));
	CHECK(!verify(&h), "verify");
	stop(&h);
	CHECK(legs_differ("btf-a.img", "btf-b.img", size) == 0, "legs differ");
	free(model);
	return T_PASS;
}

/* ---- 18.3: a full submission queue ---- */

/*
 * The ring takes no more SQEs: one leg gets the last free one, the other
 * none (io_uring_submit cannot make room: here because the ring fd given to
 * io_uring_enter is made invalid for a moment, standing in for the kernel
 * refusing the submission). The leg without an SQE must wait and go on,
 * not be marked faulty.
 */
static int test_full_sq_defers(void)
{
	const char *cf = conf("fsq.conf",
		"device = { max_io = \"256K\"; };\n"
		"volume = { type = \"mirror\"; name = \"m\"; bitmap_chunk = \"1M\"; children = (\n"
		"  { type = \"file\"; path = \"fsq-a.img\"; size = \"16M\"; },\n"
		"  { type = \"file\"; path = \"fsq-b.img\"; size = \"16M\"; } ); };\n");
	struct harness h;
	struct io_uring_sqe *sqe;
	struct uc_node *m;
	unsigned int filled = 0;
	int fd, res;

	CHECK(!harness_open(&h, cf), "open");
	m = h.g.root;
	/* the bitmap bit of the region is durable: the next write goes to the legs at once */
	CHECK(one(&h, UC_OP_WRITE, 0, 64 * K) == 64 * K, "first write");
	/* fill the SQ but for one entry with NOPs that post nothing */
	while (io_uring_sq_space_left(&h.q.ring) > 1 && (sqe = io_uring_get_sqe(&h.q.ring))) {
		io_uring_prep_nop(sqe);
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		filled++;
	}
	fd = h.q.ring.enter_ring_fd;
	h.q.ring.enter_ring_fd = -1;
	h.lax = true;
	issue(&h, UC_OP_WRITE, 0, 0, 64 * K);
	h.q.ring.enter_ring_fd = fd;
	CHECK(!harness_reap(&h, 0), "reap");
	res = h.results[0];
	printf("  full_sq: %u NOPs queued, write -> %d, %s\n", filled, res, status(m));
	CHECK(res == 64 * K, "the write failed: %d", res);
	CHECK(!strncmp(status(m), "clean", 5), "a leg was failed for a full SQ: %s", status(m));
	CHECK(!verify(&h), "verify");
	stop(&h);
	CHECK(legs_differ("fsq-a.img", "fsq-b.img", 15 * M) == 0, "legs differ");
	return T_PASS;
}

/* ---- 17.1: a read across into an unsynced chunk ---- */

/*
 * After an unclean stop, chunk 3 is dirty and leg b differs there; chunk 2
 * is clean. Reads that start in chunk 2 and cross into chunk 3 must come
 * from the resync source like every read of an unsynced region: with
 * round-robin, every other one went to leg b.
 */
static int test_read_across_unsynced(void)
{
	const char *cf = conf("rau.conf", MIRROR_FF("read_policy = \"round-robin\"; resync_rate = \"4K\";",
						    "rau-a.img", "rau-b.img"));
	struct harness h;
	uint8_t junk[4096];
	pid_t pid;
	int st, fd;

	pid = fork();
	if (!pid) {
		if (harness_open(&h, cf))
			_exit(1);
		/* chunks 1 and 3 dirty; the resync (4K/s) copies the first 512K of chunk 1 only */
		for (int i = 0; i < 100; i++)
			issue(&h, UC_OP_WRITE, 0, (i % 2 ? 3 * M : 1 * M) + 4 * K * (t_rand() % 250),
			      4 * K * (1 + t_rand() % 6));
		/* not to idle: the bits would clear after 2 s */
		if (harness_reap(&h, 0) || h.failures)
			_exit(1);
		_exit(0);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st), "child run");
	memset(junk, 0x5a, sizeof(junk));
	fd = open(path_in("rau-b.img"), O_WRONLY);
	CHECK(fd >= 0 && pwrite(fd, junk, sizeof(junk), data_offset("rau-b.img") + 3 * M + 4 * K) == 4096,
	      "corrupt leg b");
	close(fd);
	CHECK(!harness_open(&h, cf), "reopen");
	CHECK(!model_from(&h, "rau-a.img"), "model");
	CHECK(!strncmp(status(h.g.root), "resyncing", 9), "no resync: %s", status(h.g.root));
	for (int i = 0; i < 4; i++)
		CHECK(one(&h, UC_OP_READ, 3 * M - 8 * K, 16 * K) == 16 * K,
		      "read %d across into the unsynced chunk returned leg b's data", i);
	stop(&h);
	return T_PASS;
}

/* ---- 17.2: discard and write-zeroes errors ---- */

static struct uc_layer_ops nodiscard_ops;

/* a file leaf on a device without discard or write-zeroes (a disk without TRIM) */
static int nodiscard_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	if (s->op == UC_OP_DISCARD || s->op == UC_OP_WRITE_ZEROES)
		return -EOPNOTSUPP;
	return file_layer_ops.submit(n, q, s);
}

/*
 * A leg that cannot discard is not kicked by fstrim (md ignores discard
 * errors), nor by a discard that fails with an I/O error; a write-zeroes it
 * cannot do fails with EOPNOTSUPP (the kernel then writes zeroes) and
 * blames no leg. A real write error still fails the leg.
 */
static int test_discard_errors(void)
{
	const char *cf = conf("dis.conf",
		"device = { max_io = \"256K\"; };\n"
		"volume = { type = \"mirror\"; name = \"m\"; bitmap_chunk = \"1M\"; children = (\n"
		FAULT_LEG("fa", "dis-a.img") ",\n"
		"  { type = \"nodiscard\"; path = \"dis-b.img\"; size = \"16M\"; } ); };\n");
	struct harness h;
	struct uc_node *m, *fa;
	int res;

	CHECK(!harness_open(&h, cf), "open");
	m = h.g.root;
	fa = uc_graph_find(&h.g, "fa");
	CHECK(!mix(&h, 300), "mix");
	res = one(&h, UC_OP_DISCARD, 1 * M, 256 * K);
	CHECK(res == 0, "discard with a leg that has none: %d", res);
	CHECK(!strncmp(status(m), "clean", 5), "fstrim kicked the leg without discard: %s", status(m));
	res = one(&h, UC_OP_WRITE_ZEROES, 2 * M, 64 * K);
	CHECK(res == -EOPNOTSUPP, "write-zeroes with a leg that has none: %d", res);
	CHECK(!strncmp(status(m), "clean", 5), "write-zeroes kicked the leg: %s", status(m));
	/* an I/O error on a discard: ignored too */
	CTL_OK(fa, "errors", "write", NULL);
	CTL_OK(fa, "ranges", "5M+1M", NULL);	/* leg offsets: mirror 4M+1M */
	res = one(&h, UC_OP_DISCARD, 4 * M, 64 * K);
	CHECK(res == 0, "discard failing on one leg: %d", res);
	CHECK(!strncmp(status(m), "clean", 5), "a failed discard kicked the leg: %s", status(m));
	/* the discarded ranges hold either leg's bytes: rewrite them for the model */
	CTL_OK(fa, "errors", "none", NULL);
	CHECK(one(&h, UC_OP_WRITE, 1 * M, 256 * K) == 256 * K, "rewrite");
	CHECK(one(&h, UC_OP_WRITE, 2 * M, 64 * K) == 64 * K, "rewrite");
	CHECK(one(&h, UC_OP_WRITE, 4 * M, 64 * K) == 64 * K, "rewrite");
	CHECK(!verify(&h), "verify");
	/* a write error is a write error */
	CTL_OK(fa, "errors", "write", NULL);
	CHECK(one(&h, UC_OP_WRITE, 4 * M, 4 * K) == 4 * K, "write with one leg failing");
	CHECK(!strncmp(status(m), "degraded", 8) && strstr(status(m), "[0 faulty"),
	      "a failed write did not fail the leg: %s", status(m));
	CTL_OK(fa, "errors", "none", NULL);
	CHECK(!verify(&h), "verify degraded");
	stop(&h);
	return T_PASS;
}

/* ---- 17.3: pausing (add) while a resync window waits for writes ---- */

struct pause_call {
	struct uc_graph *g;
	int ret;
	atomic_bool done;
};

static void *pause_thread(void *arg)
{
	struct pause_call *c = arg;

	c->ret = uc_graph_pause(c->g, 3000);
	atomic_store(&c->done, true);
	return NULL;
}

/*
 * A rebuild locks its next window, which waits for a write in flight there;
 * a second write to the window parks. Then the queues pause (as `add`
 * does): the window must not stay locked while no window may start, or the
 * parked write never finishes and the pause times out.
 */
static int test_pause_during_resync(void)
{
	const char *cf = conf("pdr.conf", MIRROR_FF("resync_rate = \"0\";", "pdr-a.img", "pdr-b.img"));
	struct pause_call p = { 0 };
	struct harness h;
	struct uc_node *m;
	struct mirror *mm;
	pthread_t t;
	uint64_t lo, hi;

	CHECK(!harness_open(&h, cf), "open");
	stop(&h);
	unlink(path_in("pdr-b.img"));
	CHECK(!harness_open(&h, cf), "open with a new leg b");
	CHECK(!model_from(&h, "pdr-a.img"), "model");
	m = h.g.root;
	mm = m->priv;
	issue(&h, UC_OP_WRITE, 0, 0, 4 * K);	/* waits for its bitmap bit */
	uc_queue_poll(&h.q);			/* the rebuild locks [0, 256K) behind it */
	lo = atomic_load(&mm->win_lo);
	hi = atomic_load(&mm->win_hi);
	CHECK(lo == 0 && hi == 256 * K && !mm->bg_inflight, "window %llu-%llu, in flight %d",
	      (unsigned long long)lo, (unsigned long long)hi, mm->bg_inflight);
	issue(&h, UC_OP_WRITE, 0, 8 * K, 4 * K);	/* parks on the window */
	p.g = &h.g;
	CHECK(!pthread_create(&t, NULL, pause_thread, &p), "pthread_create");
	while (atomic_load(&h.g.pause_gen) == h.q.pause_gen)
		usleep(100);
	while (!atomic_load(&p.done)) {
		if (!uc_queue_idle(&h.q))
			harness_turn(&h);
		else
			turn_nowait(&h);
	}
	pthread_join(t, NULL);
	printf("  pause_during_resync: pause -> %d, %u busy\n", p.ret, h.q.nr_busy);
	CHECK(!p.ret, "the pause timed out: a locked window held a write");
	CHECK(h.q.paused && !h.q.nr_busy && h.inflight == 0, "paused %d, %u busy, %u in flight",
	      h.q.paused, h.q.nr_busy, h.inflight);
	uc_graph_resume(&h.g);
	CHECK(!mix(&h, 200), "mix after the pause");
	CHECK(!wait_status(&h, m, "clean", 60), "the rebuild did not finish");
	stop(&h);
	CHECK(legs_differ("pdr-a.img", "pdr-b.img", 15 * M) == 0, "legs differ");
	return T_PASS;
}

/* ---- poll with nothing to do ---- */

struct poll_call {
	struct uc_node *n;
	struct uc_queue *q;
	atomic_bool done;
};

static void *poll_thread(void *arg)
{
	struct poll_call *c = arg;

	c->n->ops->poll(c->n, c->q);
	atomic_store(&c->done, true);
	return NULL;
}

/*
 * An idle mirror's poll runs every loop turn of every queue: it must not
 * take the mirror's lock (another queue or the admin thread may hold it) nor
 * scan the whole bitmap. 128G legs with 64K bitmap chunks: 2M bits.
 */
static int test_idle_poll(void)
{
	const char *cf = conf("ip.conf",
		"device = { max_io = \"256K\"; };\n"
		"volume = { type = \"mirror\"; name = \"m\"; bitmap_chunk = \"64K\"; children = (\n"
		"  { type = \"file\"; path = \"ip-a.img\"; size = \"128G\"; },\n"
		"  { type = \"file\"; path = \"ip-b.img\"; size = \"128G\"; } ); };\n");
	struct poll_call c = { 0 };
	struct uc_graph g;
	struct uc_queue q;
	struct mirror *m;
	struct timespec t0, t1;
	pthread_t t;
	double ms;
	int waited = 0;

	CHECK(!uc_graph_load(&g, cf) && !uc_graph_open(&g), "open");
	CHECK(!uc_queue_init(&q, &g, 0, DEPTH, 0, 0), "queue");
	m = g.root->priv;
	for (int i = 0; i < 10; i++)
		uc_queue_poll(&q);	/* settle: the first superblock write is done */
	CHECK(uc_queue_idle(&q) || q.timer_armed, "not idle");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 1000; i++)
		g.root->ops->poll(g.root, &q);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("  idle_poll: 1000 polls of a mirror with %llu bitmap bits: %.2f ms\n",
	       (unsigned long long)m->nbits, ms);
	/* a scan of 2M bits takes about 1 ms; the idle path, microseconds */
	CHECK(ms < 100, "an idle poll scans the bitmap: %.3f ms each", ms / 1000);
	/* with the mirror's lock held elsewhere, an idle poll still returns */
	pthread_mutex_lock(&m->lock);
	c.n = g.root;
	c.q = &q;
	CHECK(!pthread_create(&t, NULL, poll_thread, &c), "pthread_create");
	while (!atomic_load(&c.done) && waited < 2000) {
		usleep(1000);
		waited++;
	}
	pthread_mutex_unlock(&m->lock);
	pthread_join(t, NULL);
	CHECK(waited < 2000, "an idle poll waited for the mirror's lock");
	uc_queue_exit(&q);
	uc_graph_free(&g);
	unlink(path_in("ip-a.img"));
	unlink(path_in("ip-b.img"));
	return T_PASS;
}

/*
 * Degraded, a mirror's bitmap bits can never clear (the missing leg will
 * need every region written meanwhile): queue 0 must not wake every 1 ms to
 * look at them. Once legs are failed and the fact is on disk, an idle queue
 * arms no timer and is idle; the bits stay set; a write still goes through.
 */
static int test_degraded_no_timer(void)
{
	const char *cf = conf("dnt.conf", MIRROR_FF("", "dnt-a.img", "dnt-b.img"));
	struct harness h;
	struct mirror *m;
	uint64_t seq;
	int armed = 0;

	CHECK(!harness_open(&h, cf), "open");
	m = h.g.root->priv;
	CHECK(!mix(&h, 40), "mix");
	CHECK(atomic_load(&m->nr_bits), "no bitmap bit set by the writes");
	pthread_mutex_lock(&m->lock);
	mirror_leg_fail(h.g.root, m, 1, "failed by the test");
	seq = m->legs[1].faulty_seq;
	pthread_mutex_unlock(&m->lock);
	for (int i = 0; i < 2000 && atomic_load(&m->meta_done) < seq; i++)
		CHECK(!harness_turn(&h), "turn");
	CHECK(atomic_load(&m->meta_done) >= seq, "the faulty leg never went to disk");
	CHECK(!strncmp(status(h.g.root), "degraded", 8), "status %s", status(h.g.root));
	/*
	 * 3 s: past the 2 s after which an idle mirror's bits would clear. The
	 * loop sleeps as the daemon's does (up to 10 ms for a CQE): a scan due
	 * from before the leg failed may fire once; none is armed after it, and
	 * never the 1 ms timer.
	 */
	for (int i = 0; i < 300; i++) {
		struct __kernel_timespec ts = { .tv_nsec = 10000000 };
		struct io_uring_cqe *cqe;

		io_uring_submit_and_wait_timeout(&h.q.ring, &cqe, 1, &ts, NULL);
		CHECK(!uc_queue_turn(&h.q), "turn");
		armed += h.q.timer_armed && h.q.timer_short;
	}
	CHECK(!armed, "a degraded idle mirror armed the 1 ms poll timer in %d of 300 turns", armed);
	CHECK(!h.q.timer_armed, "a degraded idle mirror still has a poll timer armed after 3 s");
	CHECK(uc_queue_idle(&h.q), "the queue is not idle");
	CHECK(atomic_load(&m->nr_bits), "bits cleared while a leg is missing");
	CHECK(!mix(&h, 20), "mix while degraded");
	CHECK(!verify(&h), "verify");
	stop(&h);
	return T_PASS;
}

/*
 * In sync, written bits clear 2 s after the last write to their region.
 * Until then queue 0 must sleep (a poll due when the scan is, not the 1 ms
 * timer, issue 17): a few turns, not thousands; then the bits clear and the
 * clearing reaches the disk.
 */
static int test_clean_bits_no_busy_timer(void)
{
	const char *cf = conf("cbt.conf", MIRROR_FF("", "cbt-a.img", "cbt-b.img"));
	struct timespec t0, t1;
	struct harness h;
	struct mirror *m;
	int turns = 0, short_turns = 0;
	double secs = 0;

	CHECK(!harness_open(&h, cf), "open");
	m = h.g.root->priv;
	CHECK(!mix(&h, 40), "mix");
	CHECK(atomic_load(&m->nr_bits), "no bitmap bit set by the writes");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (secs < 8 && (atomic_load(&m->nr_bits) || atomic_load(&m->meta_done) < m->meta_seq)) {
		/* as the daemon's loop: sleep until a CQE (the poll timer's, when due) */
		CHECK(h.q.timer_armed || !atomic_load(&m->nr_bits), "bits set and no poll due");
		CHECK(io_uring_submit_and_wait(&h.q.ring, 1) >= 0, "wait");
		CHECK(!uc_queue_turn(&h.q), "turn");
		turns++;
		short_turns += h.q.timer_armed && h.q.timer_short;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	}
	printf("  bits clear after %.2f s, %d turns (%d with the 1 ms timer)\n", secs, turns,
	       short_turns);
	CHECK(!atomic_load(&m->nr_bits), "bits still set after %.1f s", secs);
	CHECK(atomic_load(&m->meta_done) >= m->meta_seq, "the cleared bitmap never reached the disk");
	CHECK(turns < 100 && short_turns <= 5, "%d turns, %d with the 1 ms timer, in %.1f s", turns,
	      short_turns, secs);
	CHECK(!mix(&h, 20), "mix after");
	CHECK(!verify(&h), "verify");
	stop(&h);
	return T_PASS;
}

/*
 * Queue 0 clears the bitmap; asleep with no bit set it has no scan due. The
 * first bit set by a write on another queue must wake it (a kick on its
 * eventfd), or the bit would stay set until something else woke queue 0.
 */
static int test_first_bit_kicks_queue0(void)
{
	const char *cf = conf("fbk.conf", MIRROR_FF("", "fbk-a.img", "fbk-b.img"));
	struct io_uring_cqe *cqe;
	struct __kernel_timespec ts = { .tv_sec = 2 };
	struct timespec t0, t1;
	struct uc_queue q2;
	struct harness h;
	struct mirror *m;
	double secs = 0;
	int ret;

	CHECK(!harness_open(&h, cf), "open");
	m = h.g.root->priv;
	CHECK(!uc_queue_init(&q2, &h.g, 1, DEPTH, 0, 0), "second queue");
	/* queue 0 settles: its metadata written, no bit, no poll due */
	for (int i = 0; i < 50 && (m->meta_inflight || atomic_load(&m->meta_done) < m->meta_seq); i++) {
		io_uring_submit(&h.q.ring);
		if (!io_uring_wait_cqe_timeout(&h.q.ring, &cqe, &ts))
			CHECK(!uc_queue_turn(&h.q), "turn");
	}
	CHECK(!m->meta_inflight && atomic_load(&m->meta_done) == m->meta_seq, "metadata never written");
	CHECK(!uc_queue_turn(&h.q), "turn");
	CHECK(!atomic_load(&m->nr_bits) && !h.q.timer_armed, "queue 0 not idle: %llu bits, timer %d",
	      (unsigned long long)atomic_load(&m->nr_bits), h.q.timer_armed);
	CHECK(one_on(&h, &q2, UC_OP_WRITE, 64 * K, 8 * K) == 8 * K, "write on queue 1");
	CHECK(atomic_load(&m->nr_bits) == 1, "the write set %llu bits",
	      (unsigned long long)atomic_load(&m->nr_bits));
	ret = io_uring_wait_cqe_timeout(&h.q.ring, &cqe, &ts);
	CHECK(!ret, "queue 0 was not woken by the first bit (%s)", strerror(-ret));
	/* woken, it schedules the scan that clears the bit */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (secs < 8 && (atomic_load(&m->nr_bits) || atomic_load(&m->meta_done) < m->meta_seq)) {
		CHECK(!uc_queue_turn(&h.q), "turn");
		CHECK(h.q.timer_armed || !atomic_load(&m->nr_bits), "a bit set and no scan due");
		io_uring_submit(&h.q.ring);
		ts.tv_sec = 4;
		io_uring_wait_cqe_timeout(&h.q.ring, &cqe, &ts);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	}
	CHECK(!atomic_load(&m->nr_bits), "the bit still set after %.1f s", secs);
	while (!uc_queue_idle(&q2))
		CHECK(!uc_queue_turn(&q2), "queue 1 turn");
	uc_queue_exit(&q2);
	CHECK(!verify(&h), "verify");
	stop(&h);
	return T_PASS;
}

/*
 * A write to a region whose bitmap bit is not set waits for the metadata
 * write that sets it: parked on the mirror's wait (uc_park), woken by that
 * write's completion, not polled for by the 1 ms timer (issue 17).
 */
static int test_bit_wait_no_busy_timer(void)
{
	const char *cf = conf("bwt.conf", MIRROR_FF("", "bwt-a.img", "bwt-b.img"));
	struct harness h;
	struct mirror *m;
	int turns = 0, short_turns = 0, writes = 0;

	CHECK(!harness_open(&h, cf), "open");
	m = h.g.root->priv;
	for (uint64_t c = 0; c < m->nbits && c < 16; c++, writes++) {
		uint64_t seq = m->meta_seq;

		issue(&h, UC_OP_WRITE, 0, (c << m->chunk_shift) + 8 * K, 4 * K);
		while (h.inflight) {
			CHECK(!harness_turn(&h), "turn");
			turns++;
			short_turns += h.q.timer_armed && h.q.timer_short;
		}
		CHECK(m->meta_seq > seq, "write %d set no bit", writes);
	}
	printf("  %d writes to new regions: %d turns, %d with the 1 ms timer armed\n", writes, turns,
	       short_turns);
	CHECK(writes >= 4 && !h.failures, "%d writes, %d failures", writes, h.failures);
	CHECK(!short_turns, "%d of %d turns had the 1 ms timer armed", short_turns, turns);
	CHECK(!verify(&h), "verify");
	stop(&h);
	return T_PASS;
}

int main(void)
{
	static const struct t_case cases[] = {
		{ "last_in_sync_fails", test_last_in_sync_fails },
		{ "resync_source_read_error", test_resync_source_read_error },
		{ "rebuild_unreadable_block", test_rebuild_unreadable_block },
		{ "bad_table_full", test_bad_table_full },
		{ "full_sq_defers", test_full_sq_defers },
		{ "read_across_unsynced", test_read_across_unsynced },
		{ "discard_errors", test_discard_errors },
		{ "pause_during_resync", test_pause_during_resync },
		{ "idle_poll", test_idle_poll },
		{ "degraded_no_timer", test_degraded_no_timer },
		{ "clean_bits_no_busy_timer", test_clean_bits_no_busy_timer },
		{ "bit_wait_no_busy_timer", test_bit_wait_no_busy_timer },
		{ "first_bit_kicks_queue0", test_first_bit_kicks_queue0 },
	};

	nodiscard_ops = file_layer_ops;
	nodiscard_ops.name = "nodiscard";
	nodiscard_ops.submit = nodiscard_submit;
	uc_layer_add(&nodiscard_ops);
	holey_ops = file_layer_ops;
	holey_ops.name = "holey";
	holey_ops.submit = holey_submit;
	uc_layer_add(&holey_ops);
	if (getenv("UC_TEST_VERBOSE"))
		uc_verbose = atoi(getenv("UC_TEST_VERBOSE"));
	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
