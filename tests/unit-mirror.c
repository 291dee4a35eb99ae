/* SPDX-License-Identifier: MIT */
/*
 * The mirror layer without ublk: superblock encode/decode, then real mirrors
 * over temp files on a real io_uring against an in-memory model: random
 * mixes, legs compared byte for byte, an unclean stop (a child process that
 * exits without stopping) with one leg corrupted behind our back, a leg that
 * starts failing writes, read errors, assembly refusals and a swapped leg
 * order. A test-only leaf ("flaky") fails writes or reads on command.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "graph.h"
#include "io.h"
#include "log.h"
#include "crc32c.h"
#include "mirror_meta.h"
#include "testlib.h"

#define DEPTH 16

/* ---- flaky: a file leaf that fails on command ---- */

struct flaky {
	char path[512];
	int id;
};

static struct {
	bool fail_writes;
	uint64_t fail_read_lo, fail_read_hi;	/* leaf offsets */
	unsigned int reads_failed;
	unsigned int reads;
} flaky_ctl[8];

#define READ_BY_BLOCKS	512
/* id + 1 of the flaky leaf that served the last read of each 64K of leaf space */
static int read_by[READ_BY_BLOCKS];

static int flaky_parse(struct uc_node *n, const config_setting_t *cfg)
{
	static const char *const keys[] = { "type", "path", "size", "id", NULL };
	struct flaky *f = calloc(1, sizeof(*f));
	const char *path;
	long long id = 0;

	if (!f)
		return -ENOMEM;
	n->priv = f;
	if (uc_conf_check_keys(cfg, keys, "flaky") || uc_conf_string(cfg, "path", &path) != 1 ||
	    uc_conf_size(cfg, "size", &n->size) != 1 || uc_conf_int(cfg, "id", &id) < 0)
		return -EINVAL;
	f->id = id;
	snprintf(f->path, sizeof(f->path), "%s/%s", n->graph->conf_dir, path);
	n->can_discard = true;
	return uc_graph_add_leaf(n->graph, n);
}

static int flaky_open(struct uc_node *n)
{
	struct flaky *f = n->priv;

	n->created = access(f->path, F_OK) != 0;
	n->fd = open(f->path, O_RDWR | O_CREAT, 0600);
	if (n->fd < 0 || (n->created && ftruncate(n->fd, n->size)))
		return -errno;
	return 0;
}

static void flaky_close(struct uc_node *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	free(n->priv);
	n->priv = NULL;
}

static int flaky_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	const struct flaky *f = n->priv;
	struct io_uring_sqe *sqe = uc_sub_sqe(q, s);
	bool fail = false;

	if (!sqe)
		return -EBUSY;
	if (s->op == UC_OP_WRITE || s->op == UC_OP_DISCARD || s->op == UC_OP_WRITE_ZEROES)
		fail = flaky_ctl[f->id].fail_writes;
	if (s->op == UC_OP_READ && s->off < flaky_ctl[f->id].fail_read_hi &&
	    flaky_ctl[f->id].fail_read_lo < s->off + s->len) {
		fail = true;
		flaky_ctl[f->id].reads_failed++;
	}
	if (s->op == UC_OP_READ) {
		flaky_ctl[f->id].reads++;
		if (s->off / (64 << 10) < READ_BY_BLOCKS)
			read_by[s->off / (64 << 10)] = f->id + 1;
	}
	if (fail) {
		io_uring_prep_read(sqe, 1000, NULL, 0, 0);	/* no such fixed file: -EBADF */
		sqe->flags |= IOSQE_FIXED_FILE;
		return 0;
	}
	switch (s->op) {
	case UC_OP_READ:
		io_uring_prep_readv(sqe, n->file_index, s->iov, s->nr_iov, s->off);
		break;
	case UC_OP_WRITE:
		io_uring_prep_writev(sqe, n->file_index, s->iov, s->nr_iov, s->off);
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

static const struct uc_layer_ops flaky_ops = {
	.name = "flaky", .parse = flaky_parse, .open = flaky_open,
	.close = flaky_close, .submit = flaky_submit,
};

/* ---- harness ---- */

struct harness {
	struct uc_graph g;
	struct uc_queue q;
	uint8_t *model;
	struct uc_req reqs[DEPTH];
	bool done[DEPTH];
	unsigned int inflight;
	int failures;
};

static void on_commit(struct uc_queue *q, struct uc_io *io, int res)
{
	struct harness *h = q->owner;
	const struct uc_req *r = &h->reqs[io->tag];
	int want = (r->op == UC_OP_READ || r->op == UC_OP_WRITE) ? (int)r->len : 0;

	h->done[io->tag] = true;
	h->inflight--;
	if (res != want) {
		fprintf(stderr, "tag %u op %u off %llu len %llu: result %d, want %d\n", io->tag,
			r->op, (unsigned long long)r->off, (unsigned long long)r->len, res, want);
		h->failures++;
	} else if (r->op == UC_OP_READ && memcmp(io->buf, h->model + r->off, r->len)) {
		fprintf(stderr, "read %llu+%llu returned wrong data\n", (unsigned long long)r->off,
			(unsigned long long)r->len);
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
	for (unsigned int t = 0; t < DEPTH; t++)
		h->done[t] = true;
	return h->model ? 0 : -1;
}

/* One loop turn of a queue thread. */
static int turn(struct harness *h)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	/* requests started since the last turn may have parked: poll before waiting */
	uc_queue_poll(&h->q);
	if (uc_queue_enter(&h->q) < 0)
		return -1;
	io_uring_for_each_cqe(&h->q.ring, head, cqe) {
		if (!uc_queue_cqe(&h->q, cqe))
			return -1;
		n++;
	}
	io_uring_cq_advance(&h->q.ring, n);
	uc_queue_poll(&h->q);
	return 0;
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

static int reap(struct harness *h, unsigned int left)
{
	while (h->inflight > left)
		if (turn(h))
			return -1;
	return 0;
}

/* Stop like a queue thread does: no new background work, drain. */
static void harness_close(struct harness *h, bool clean)
{
	h->q.stopping = true;
	uc_queue_poll(&h->q);
	while (!uc_queue_idle(&h->q))
		turn(h);
	uc_queue_exit(&h->q);
	if (!clean)
		_exit(0);	/* like kill -9: no deactivate, no close */
	uc_graph_free(&h->g);
	free(h->model);
}

static const char *status_of(struct harness *h, const char *name)
{
	static char line[512];
	struct uc_node *n = uc_graph_find(&h->g, name);

	line[0] = 0;
	if (n && n->ops->status)
		n->ops->status(n, line, sizeof(line));
	return line;
}

/* Run the queue (background resync) until the node's status starts with want. */
static int wait_status(struct harness *h, const char *name, const char *want, int secs)
{
	time_t end = time(NULL) + secs;

	while (strncmp(status_of(h, name), want, strlen(want))) {
		if (time(NULL) > end) {
			fprintf(stderr, "%s: status '%s', waited for '%s'\n", name, status_of(h, name),
				want);
			return -1;
		}
		uc_queue_poll(&h->q);
		if (!uc_queue_idle(&h->q) && turn(h))
			return -1;
	}
	return 0;
}

static int free_tag(struct harness *h)
{
	for (unsigned int t = 0; t < DEPTH; t++)
		if (h->done[t])
			return t;
	return -1;
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

static void issue(struct harness *h, uint8_t op, uint64_t off, uint64_t len)
{
	int t;

	while ((t = free_tag(h)) < 0 || overlaps_inflight(h, off, len))
		if (reap(h, h->inflight - 1))
			break;
	h->reqs[t] = (struct uc_req){ .op = op, .off = off, .len = len };
	h->done[t] = false;
	h->inflight++;
	if (op == UC_OP_WRITE) {
		uint8_t *buf = h->q.ios[t].buf;

		for (uint64_t i = 0; i < len; i += 8) {
			uint64_t v = t_rand();

			memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
		}
		memcpy(h->model + off, buf, len);
	} else if (op == UC_OP_DISCARD || op == UC_OP_WRITE_ZEROES) {
		memset(h->model + off, 0, len);
	}
	uc_queue_start(&h->q, t, &h->reqs[t]);
}

/* Random reads and writes (some discards, flushes) in [lo, hi). */
static int mix(struct harness *h, unsigned int nr, uint64_t lo, uint64_t hi)
{
	for (unsigned int i = 0; i < nr; i++) {
		unsigned int pick = t_rand() % 100;
		uint64_t len = 4096 * (1 + t_rand() % 32), off;

		if (len > hi - lo)
			len = hi - lo;
		off = lo + 4096 * (t_rand() % ((hi - lo - len) / 4096 + 1));
		if (pick < 50)
			issue(h, UC_OP_WRITE, off, len);
		else if (pick < 92)
			issue(h, UC_OP_READ, off, len);
		else if (pick < 97)
			issue(h, UC_OP_DISCARD, off, len);
		else
			issue(h, UC_OP_FLUSH, 0, 0);
	}
	return reap(h, 0) ? -1 : h->failures;
}

/* Read the whole device back against the model. */
static int verify(struct harness *h)
{
	for (uint64_t off = 0; off < h->g.size; off += 256 << 10)
		issue(h, UC_OP_READ, off, h->g.size - off < (256 << 10) ? h->g.size - off : 256 << 10);
	return reap(h, 0) ? -1 : h->failures;
}

static const char *conf(const char *name, const char *text)
{
	return t_write_file(t_tmpdir(), name, text);
}

static const char *leg(int i)
{
	static char p[4][512];

	snprintf(p[i], sizeof(p[i]), "%s/leg%d.img", t_tmpdir(), i);
	return p[i];
}

/* Data areas of two leg files equal? (data_offset from the superblock) */
static int legs_equal(int a, int b, uint64_t size)
{
	int fa = open(leg(a), O_RDONLY), fb = open(leg(b), O_RDONLY);
	static uint8_t ba[1 << 20], bb[1 << 20];
	struct mirror_sb sb;
	int diff = -1;

	if (fa < 0 || fb < 0 || pread(fa, ba, 4096, 0) != 4096 || mirror_sb_decode(&sb, ba))
		goto out;
	diff = 0;
	for (uint64_t off = 0; off < size && !diff; off += sizeof(ba)) {
		size_t n = size - off < sizeof(ba) ? size - off : sizeof(ba);

		if (pread(fa, ba, n, sb.data_offset + off) != (ssize_t)n ||
		    pread(fb, bb, n, sb.data_offset + off) != (ssize_t)n)
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

static int read_sb(int i, struct mirror_sb *sb)
{
	uint8_t b[4096];
	int fd = open(leg(i), O_RDONLY);
	int r = fd >= 0 && pread(fd, b, 4096, 0) == 4096 ? mirror_sb_decode(sb, b) : -EIO;

	if (fd >= 0)
		close(fd);
	return r;
}

static void wipe(void)
{
	for (int i = 0; i < 4; i++)
		unlink(leg(i));
	memset(flaky_ctl, 0, sizeof(flaky_ctl));
}

#define MIRROR2 \
	"device = { max_io = \"256K\"; };\n" \
	"volume = { type = \"mirror\"; name = \"m\"; bitmap_chunk = \"1M\"; resync_rate = \"0\";\n" \
	"  children = ( { type = \"flaky\"; id = 0; path = \"leg0.img\"; size = \"16M\"; },\n" \
	"               { type = \"flaky\"; id = 1; path = \"leg1.img\"; size = \"16M\"; } ); };\n"

/* ---- tests ---- */


/* CRC-32C bit by bit: the reference for both implementations. */
static uint32_t crc_bitwise(const uint8_t *p, size_t len)
{
	uint32_t c = ~0U;

	for (size_t k = 0; k < len; k++) {
		c ^= p[k];
		for (int b = 0; b < 8; b++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78 : c >> 1;
	}
	return ~c;
}

/* p[0, len) whole and in two steps (split there) gives the bitwise CRC. */
static bool crc_ok(const uint8_t *p, size_t len, size_t split)
{
	uint32_t want = crc_bitwise(p, len);

	return uc_crc32c(0, p, len) == want &&
	       uc_crc32c(uc_crc32c(0, p, split), p + split, len - split) == want;
}

static int test_sb_roundtrip(void)
{
	struct mirror_sb a = { .version = MIRROR_VERSION, .layout = MIRROR_LAYOUT, .nr_legs = 3,
			       .leg_index = 1, .events = 42, .data_offset = 1 << 20,
			       .data_size = 64 << 20, .bitmap_chunk = 1 << 20, .bitmap_bits = 64,
			       .resync_pos = UINT64_MAX, .flags = MIRROR_SB_CLEAN }, b;
	uint8_t block[4096];

	a.array_uuid[3] = 7;
	a.legs[2].state = LEG_REBUILDING;
	a.legs[2].errors = 5;
	mirror_sb_encode(&a, block);
	CHECK(!mirror_sb_decode(&b, block), "decode");
	CHECK(!memcmp(&a, &b, sizeof(a)), "round trip differs");
	block[100] ^= 1;
	CHECK(mirror_sb_decode(&b, block) == -EBADMSG, "a flipped bit is not caught");
	memset(block, 0, sizeof(block));
	CHECK(mirror_sb_decode(&b, block) == -ENOENT, "zeroes are not 'no superblock'");
	/* bad ranges: version 2 while there are any, and checked like the rest */
	a.nr_bad = 2;
	a.bad[0].off = 4096, a.bad[0].len = 4096, a.bad[0].legs = 1U << 2;
	a.bad[1].off = 1 << 20, a.bad[1].len = 8192, a.bad[1].legs = 3;
	mirror_sb_encode(&a, block);
	CHECK(!mirror_sb_decode(&b, block) && b.version == MIRROR_VERSION_BAD && b.nr_bad == 2,
	      "version 2: %u, %u ranges", b.version, b.nr_bad);
	for (unsigned int i = 0; i < 2; i++)
		CHECK(b.bad[i].off == a.bad[i].off && b.bad[i].len == a.bad[i].len &&
		      b.bad[i].legs == a.bad[i].legs, "bad range %u differs", i);
	a.bad[1].off = 6144;	/* overlaps the first */
	mirror_sb_encode(&a, block);
	CHECK(mirror_sb_decode(&b, block) == -EBADMSG, "overlapping bad ranges accepted");
	a.bad[1].off = 1 << 20;
	a.bad[0].legs = 1U << 3;	/* leg 3 of 3 */
	mirror_sb_encode(&a, block);
	CHECK(mirror_sb_decode(&b, block) == -EBADMSG, "a bad range of a leg past nr_legs accepted");
	a.nr_bad = 0;
	mirror_sb_encode(&a, block);
	CHECK(!mirror_sb_decode(&b, block) && b.version == MIRROR_VERSION && !b.nr_bad,
	      "no bad ranges: version %u", b.version);
	/* both implementations, whichever this machine picked */
	for (unsigned int impl = 0; impl < 2; impl++) {
		const char *picked = uc_crc32c_impl(), *name = impl ? "sse4.2" : "table";
		/* long ones: the three-stream path (3 x 4K and 3 x 256 pieces) and its joins */
		static const unsigned int lens[] = { 767, 768, 769, 800, 12287, 12288, 12289, 13056,
						     24576 + 768 + 5, 65536, 65536 + 3, 100000 };
		enum { MAXLEN = 100000 + 8 };
		static uint8_t buf[MAXLEN];

		if (uc_crc32c_use(name)) {
			printf("  crc32c: no %s path here\n", name);
			continue;
		}
		CHECK(uc_crc32c(0, "123456789", 9) == 0xe3069283, "crc32c check value");
		for (unsigned int i = 0; i < MAXLEN; i++)
			buf[i] = (uint8_t)(i * 2654435761U >> 13);
		/* every short length and alignment, then the long ones */
		for (unsigned int off = 0; off < 9; off++)
			for (unsigned int len = 0; off + len <= 300; len += 13)
				CHECK(crc_ok(buf + off, len, len / 2), "%s: crc32c of %u+%u", name, off, len);
		for (unsigned int l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
			for (unsigned int off = 0; off < 8; off += 3)
				CHECK(crc_ok(buf + off, lens[l], lens[l] / 3), "%s: crc32c of %u+%u", name,
				      off, lens[l]);
		printf("  crc32c: %s checked (picked: %s)\n", name, picked);
		CHECK(!uc_crc32c_use(picked), "back to %s", picked);
	}
	return T_PASS;
}

static int test_mix_and_legs_identical(void)
{
	struct harness h;
	struct mirror_sb sb0, sb1;
	uint64_t size;

	wipe();
	CHECK(!harness_open(&h, conf("m2.conf", MIRROR2)), "open");
	size = h.g.size;
	CHECK(size == (15 << 20), "usable size %llu", (unsigned long long)size);
	CHECK(!mix(&h, 4000, 0, size), "mix");
	CHECK(!verify(&h), "verify");
	CHECK(!strncmp(status_of(&h, "m"), "clean", 5), "status %s", status_of(&h, "m"));
	harness_close(&h, true);
	CHECK(legs_equal(0, 1, size) == 0, "legs differ after a clean run");
	CHECK(!read_sb(0, &sb0) && !read_sb(1, &sb1), "superblocks");
	CHECK(sb0.flags & MIRROR_SB_CLEAN, "not marked clean");
	CHECK(!memcmp(sb0.array_uuid, sb1.array_uuid, 16), "array uuids differ");
	CHECK(sb0.events == sb1.events, "events differ");
	CHECK(sb0.leg_index == 0 && sb1.leg_index == 1, "leg index");
	/* reopen: same array, data still there */
	CHECK(!harness_open(&h, conf("m2.conf", MIRROR2)), "reopen");
	{
		int fd = open(leg(0), O_RDONLY);

		CHECK(pread(fd, h.model, size, sb0.data_offset) == (ssize_t)size, "model");
		close(fd);
	}
	CHECK(!verify(&h), "verify after reopen");
	harness_close(&h, true);
	return T_PASS;
}

/* kill -9 during writes: only dirty regions resync; a leg corrupted there heals. */
static int test_unclean_resync(void)
{
	struct harness h;
	struct mirror_sb sb;
	uint8_t junk[4096];
	pid_t pid;
	int st, fd;

	wipe();
	pid = fork();
	if (!pid) {
		if (harness_open(&h, conf("m2.conf", MIRROR2)))
			_exit(1);
		/* writes only in the first 3 MiB: three dirty bitmap chunks */
		if (mix(&h, 2000, 0, 3 << 20))
			_exit(1);
		harness_close(&h, false);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && !WEXITSTATUS(st), "child run");
	CHECK(!read_sb(0, &sb), "sb");
	CHECK(!(sb.flags & MIRROR_SB_CLEAN), "an unclean stop left the clean flag");
	/* make the legs differ inside a dirty region, as a torn mirror write would */
	memset(junk, 0x5a, sizeof(junk));
	fd = open(leg(1), O_WRONLY);
	CHECK(pwrite(fd, junk, sizeof(junk), sb.data_offset + (1 << 20) + 8192) == 4096, "corrupt");
	close(fd);
	CHECK(legs_equal(0, 1, sb.data_size) == 1, "corruption did not land");
	CHECK(!harness_open(&h, conf("m2.conf", MIRROR2)), "reopen");
	CHECK(!strncmp(status_of(&h, "m"), "resyncing", 9), "no resync: %s", status_of(&h, "m"));
	CHECK(!wait_status(&h, "m", "clean", 60), "resync did not finish");
	harness_close(&h, true);
	CHECK(legs_equal(0, 1, sb.data_size) == 0, "legs differ after resync");
	return T_PASS;
}

static int test_write_failure_degrades(void)
{
	struct harness h;
	uint64_t size;

	wipe();
	CHECK(!harness_open(&h, conf("m2.conf", MIRROR2)), "open");
	size = h.g.size;
	CHECK(!mix(&h, 500, 0, size), "mix");
	flaky_ctl[1].fail_writes = true;
	CHECK(!mix(&h, 1000, 0, size), "writes failed with one leg failing");
	CHECK(!strncmp(status_of(&h, "m"), "degraded", 8), "status %s", status_of(&h, "m"));
	CHECK(strstr(status_of(&h, "m"), "[1 faulty"), "leg 1 not faulty: %s", status_of(&h, "m"));
	CHECK(!verify(&h), "verify degraded");
	harness_close(&h, true);
	{
		struct mirror_sb sb;

		CHECK(!read_sb(0, &sb) && sb.legs[1].state == LEG_FAULTY, "faulty not recorded");
	}
	/* the leg works again: it comes back and is rebuilt from the bitmap */
	flaky_ctl[1].fail_writes = false;
	CHECK(!harness_open(&h, conf("m2.conf", MIRROR2)), "reopen");
	{
		int fd = open(leg(0), O_RDONLY);
		struct mirror_sb sb;

		CHECK(!read_sb(0, &sb), "sb");
		CHECK(pread(fd, h.model, size, sb.data_offset) == (ssize_t)size, "model");
		close(fd);
	}
	CHECK(!wait_status(&h, "m", "clean", 60), "rebuild did not finish");
	CHECK(!verify(&h), "verify after rebuild");
	harness_close(&h, true);
	CHECK(legs_equal(0, 1, size) == 0, "legs differ after rebuild");
	return T_PASS;
}

static int test_read_errors_repaired(void)
{
	struct harness h;
	uint64_t size;

	wipe();
	CHECK(!harness_open(&h, conf("m2.conf", MIRROR2)), "open");
	size = h.g.size;
	CHECK(!mix(&h, 500, 0, size), "mix");
	/* leg 0 serves reads first (least pending); make part of it unreadable */
	flaky_ctl[0].fail_read_lo = (1 << 20) + (2 << 20);
	flaky_ctl[0].fail_read_hi = (1 << 20) + (2 << 20) + 65536;
	CHECK(!verify(&h), "reads failed");
	CHECK(flaky_ctl[0].reads_failed > 0, "no read hit the bad range");
	flaky_ctl[0].fail_read_hi = 0;
	CHECK(strstr(status_of(&h, "m"), "[0 in-sync errors="), "leg 0 state: %s", status_of(&h, "m"));
	CHECK(!strstr(status_of(&h, "m"), "[0 in-sync errors=0]"), "errors not counted: %s",
	      status_of(&h, "m"));
	harness_close(&h, true);
	CHECK(legs_equal(0, 1, size) == 0, "legs differ");
	return T_PASS;
}

/*
 * Read balancing, md's read_balance() for legs that do not seek: a
 * sequential stream stays on one leg (4 in flight: not spread over both),
 * and once its run is long (4M here: the legs have no io_opt) moves on to
 * an idle leg; random reads go to the leg with the fewest in flight.
 */
static int test_read_balance(void)
{
	struct harness h;
	struct mirror_sb sb;
	unsigned int first, legs_seen = 0, reads0, reads1;

	wipe();
	CHECK(!harness_open(&h, conf("m2.conf", MIRROR2)), "open");
	CHECK(!read_sb(0, &sb), "superblock");
	first = sb.data_offset / (64 << 10);
	memset(read_by, 0, sizeof(read_by));
	for (uint64_t off = 0; off < (12 << 20); off += 64 << 10) {
		CHECK(!reap(&h, 3), "reap");
		issue(&h, UC_OP_READ, off, 64 << 10);
	}
	CHECK(!reap(&h, 0), "sequential reads");
	for (unsigned int b = first; b < first + 192; b++) {
		CHECK(read_by[b], "64K block %u of the stream read by no leg", b - first);
		CHECK(b % 16 == first % 16 || read_by[b] == read_by[b - 1],
		      "sequential reads of one 1M split over the legs at +%uK", (b - first) * 64);
		legs_seen |= 1U << (read_by[b] - 1);
	}
	CHECK(legs_seen == 3, "a long sequential run never moved on to the idle leg");
	flaky_ctl[0].reads = flaky_ctl[1].reads = 0;
	for (int i = 0; i < 400; i++)
		issue(&h, UC_OP_READ, 4096 * (t_rand() % ((12 << 20) / 4096)), 4096);
	CHECK(!reap(&h, 0), "random reads");
	reads0 = flaky_ctl[0].reads;
	reads1 = flaky_ctl[1].reads;
	CHECK(reads0 + reads1 == 400 && reads0 >= 100 && reads1 >= 100,
	      "random reads: leg 0 served %u, leg 1 %u", reads0, reads1);
	harness_close(&h, true);
	return T_PASS;
}

/*
 * write_mostly (mdadm --write-mostly): leg a serves no read while leg b
 * can, neither random nor sequential ones; it serves what b cannot (a
 * range b fails to read, everything once b is faulty) and gets every write.
 */
#define MIRROR2_WM(wm) \
	"device = { max_io = \"256K\"; };\n" \
	"volume = { type = \"mirror\"; name = \"m\"; bitmap_chunk = \"1M\"; resync_rate = \"0\";\n" \
	"  write_mostly = " wm ";\n" \
	"  children = ( { type = \"flaky\"; name = \"a\"; id = 0; path = \"leg0.img\"; size = \"16M\"; },\n" \
	"               { type = \"flaky\"; name = \"b\"; id = 1; path = \"leg1.img\"; size = \"16M\"; } ); };\n"

static int test_write_mostly(void)
{
	struct harness h;
	unsigned int reads0;

	wipe();
	fprintf(stderr, "  (two config errors are expected next)\n");
	CHECK(harness_open(&h, conf("wm-bad.conf", MIRROR2_WM("[ \"c\" ]"))), "an unknown leg was accepted");
	uc_graph_free(&h.g);
	CHECK(harness_open(&h, conf("wm-bad.conf", MIRROR2_WM("\"a\""))), "a string was accepted");
	uc_graph_free(&h.g);
	CHECK(!harness_open(&h, conf("wm.conf", MIRROR2_WM("[ \"a\" ]"))), "open");
	CHECK(strstr(status_of(&h, "m"), "[0 in-sync errors=0 write-mostly] [1 in-sync errors=0]"),
	      "status: %s", status_of(&h, "m"));
	CHECK(!mix(&h, 500, 0, h.g.size), "mix");
	flaky_ctl[0].reads = flaky_ctl[1].reads = 0;
	for (int i = 0; i < 400; i++)
		issue(&h, UC_OP_READ, 4096 * (t_rand() % ((12 << 20) / 4096)), 4096);
	for (uint64_t off = 0; off < (12 << 20); off += 64 << 10) {
		CHECK(!reap(&h, 3), "reap");
		issue(&h, UC_OP_READ, off, 64 << 10);
	}
	CHECK(!reap(&h, 0), "reads");
	CHECK(flaky_ctl[0].reads == 0 && flaky_ctl[1].reads == 400 + 192,
	      "write-mostly leg a served %u reads, b %u", flaky_ctl[0].reads, flaky_ctl[1].reads);
	/* what b cannot read comes from a (and b is repaired) */
	flaky_ctl[1].fail_read_lo = 2 << 20;
	flaky_ctl[1].fail_read_hi = (2 << 20) + 65536;
	CHECK(!verify(&h), "reads failed with b's range bad");
	CHECK(flaky_ctl[1].reads_failed > 0 && flaky_ctl[0].reads > 0,
	      "a never served b's bad range (%u failed on b, a served %u)", flaky_ctl[1].reads_failed,
	      flaky_ctl[0].reads);
	flaky_ctl[1].fail_read_hi = 0;
	/* b faulty: a serves everything */
	flaky_ctl[1].fail_writes = true;
	CHECK(!mix(&h, 300, 0, h.g.size), "writes failed with b failing");
	flaky_ctl[1].fail_writes = false;
	CHECK(strstr(status_of(&h, "m"), "[1 faulty"), "b not faulty: %s", status_of(&h, "m"));
	reads0 = flaky_ctl[0].reads;
	CHECK(!verify(&h), "verify with b faulty");
	CHECK(flaky_ctl[0].reads > reads0, "a served no read with b faulty");
	harness_close(&h, true);
	return T_PASS;
}

static int test_assembly(void)
{
	struct harness h;
	uint8_t b[4096];
	int fd;

	wipe();
	CHECK(!harness_open(&h, conf("m2.conf", MIRROR2)), "open");
	CHECK(!mix(&h, 300, 0, h.g.size), "mix");
	harness_close(&h, true);
	/* swapped order: legs are matched by UUID */
	CHECK(!harness_open(&h, conf("m2swap.conf",
		"device = { max_io = \"256K\"; };\n"
		"volume = { type = \"mirror\"; name = \"m\"; bitmap_chunk = \"1M\";\n"
		"  children = ( { type = \"flaky\"; id = 1; path = \"leg1.img\"; size = \"16M\"; },\n"
		"               { type = \"flaky\"; id = 0; path = \"leg0.img\"; size = \"16M\"; } ); };\n")),
	      "swapped order refused");
	CHECK(!strncmp(status_of(&h, "m"), "clean", 5), "swapped: %s", status_of(&h, "m"));
	harness_close(&h, true);
	/* a leg of another array */
	rename(leg(1), leg(3));
	unlink(leg(0));
	CHECK(!harness_open(&h, conf("m2.conf", MIRROR2)), "second array");
	harness_close(&h, true);
	rename(leg(3), leg(1));
	fprintf(stderr, "  (an error about another array is expected next)\n");
	CHECK(harness_open(&h, conf("m2.conf", MIRROR2)), "a foreign leg was accepted");
	uc_graph_free(&h.g);
	/* a corrupted superblock */
	unlink(leg(1));
	fd = open(leg(0), O_RDWR);
	CHECK(pread(fd, b, 4096, 0) == 4096, "read sb");
	b[200] ^= 0xff;
	CHECK(pwrite(fd, b, 4096, 0) == 4096, "write sb");
	close(fd);
	fprintf(stderr, "  (an error about a corrupted superblock is expected next)\n");
	CHECK(harness_open(&h, conf("m2.conf", MIRROR2)), "a corrupted superblock was accepted");
	uc_graph_free(&h.g);
	return T_PASS;
}

static int test_raid10(void)
{
	struct harness h;

	wipe();
	CHECK(!harness_open(&h, conf("r10.conf",
		"device = { max_io = \"256K\"; };\n"
		"volume = { type = \"stripe\"; chunk = \"64K\"; children = (\n"
		" { type = \"mirror\"; bitmap_chunk = \"1M\"; children = (\n"
		"   { type = \"flaky\"; id = 0; path = \"leg0.img\"; size = \"8M\"; },\n"
		"   { type = \"flaky\"; id = 1; path = \"leg1.img\"; size = \"8M\"; } ); },\n"
		" { type = \"mirror\"; bitmap_chunk = \"1M\"; children = (\n"
		"   { type = \"flaky\"; id = 2; path = \"leg2.img\"; size = \"8M\"; },\n"
		"   { type = \"flaky\"; id = 3; path = \"leg3.img\"; size = \"8M\"; } ); } ); };\n")),
	      "open raid10");
	CHECK(!mix(&h, 3000, 0, h.g.size), "mix");
	flaky_ctl[2].fail_writes = true;
	CHECK(!mix(&h, 1000, 0, h.g.size), "mix with a failing leg");
	CHECK(!verify(&h), "verify");
	CHECK(!strncmp(status_of(&h, "volume.children[1]"), "degraded", 8), "%s",
	      status_of(&h, "volume.children[1]"));
	harness_close(&h, true);
	CHECK(legs_equal(0, 1, 7 << 20) == 0, "mirror 0 legs differ");
	return T_PASS;
}

/* ---- admin commands (ctl) on another thread while the queue runs ---- */

struct ctl_call {
	struct uc_node *n;
	const char *key, *value;
	char reply[65536];
	int ret;
	volatile bool done;
};

static void *ctl_thread(void *arg)
{
	struct ctl_call *c = arg;

	c->ret = c->n->ops->ctl(c->n, c->key, c->value, c->reply, sizeof(c->reply));
	c->done = true;
	return NULL;
}

/* Run ctl as the admin thread would, driving the queue meanwhile. */
static int ctl(struct harness *h, const char *node, const char *key, const char *value,
	       struct ctl_call *c)
{
	pthread_t t;
	time_t end = time(NULL) + 120;

	memset(c, 0, sizeof(*c));
	c->n = uc_graph_find(&h->g, node);
	c->key = key;
	c->value = value;
	if (!c->n || pthread_create(&t, NULL, ctl_thread, c))
		return -1;
	while (!c->done && time(NULL) < end) {
		uc_queue_poll(&h->q);
		if (!uc_queue_idle(&h->q))
			turn(h);
		else
			usleep(1000);	/* the kick eventfd read is not counted as busy */
		if (!uc_queue_idle(&h->q) || h->q.kick_fd >= 0)
			turn_nowait(h);
	}
	pthread_join(t, NULL);
	printf("  ctl %s %s %s -> %d: %s\n", node, key, value ? value : "", c->ret, c->reply);
	return 0;
}

static int test_scrub(void)
{
	struct harness h;
	struct ctl_call c;
	struct mirror_sb sb;
	uint8_t junk[4096];
	int fd;

	wipe();
	CHECK(!harness_open(&h, conf("m3.conf",
		"device = { max_io = \"256K\"; };\n"
		"volume = { type = \"mirror\"; name = \"m\"; bitmap_chunk = \"1M\";\n"
		"  children = ( { type = \"flaky\"; id = 0; path = \"leg0.img\"; size = \"16M\"; },\n"
		"               { type = \"flaky\"; id = 1; path = \"leg1.img\"; size = \"16M\"; },\n"
		"               { type = \"flaky\"; id = 2; path = \"leg2.img\"; size = \"16M\"; } ); };\n")),
	      "open");
	CHECK(!mix(&h, 800, 0, h.g.size), "mix");
	CHECK(!ctl(&h, "m", "scrub", "text", &c) && c.ret == 0, "scrub of a clean mirror: %d", c.ret);
	/* corrupt 4 KiB of leg 1 behind the mirror's back: the other two outvote it */
	CHECK(!read_sb(1, &sb), "sb");
	memset(junk, 0xa5, sizeof(junk));
	fd = open(leg(1), O_WRONLY);
	CHECK(pwrite(fd, junk, 4096, sb.data_offset + 5 * 4096 + (3 << 20)) == 4096, "corrupt");
	close(fd);
	CHECK(!ctl(&h, "m", "scrub", "json", &c) && c.ret == 1, "scrub found nothing: %d", c.ret);
	CHECK(strstr(c.reply, "\"mismatches\": [{\"offset\": 3166208, \"length\": 4096, \"good\": 0, \"legs\": [1]}]"),
	      "report: %s", c.reply);
	CHECK(!ctl(&h, "m", "scrub-repair", "text", &c) && c.ret == 1, "repair: %d", c.ret);
	CHECK(strstr(c.reply, "mismatch offset 3166208 length 4096: leg 1"), "text report: %s", c.reply);
	CHECK(!ctl(&h, "m", "scrub", "text", &c) && c.ret == 0, "still differs after repair: %s", c.reply);
	CHECK(!verify(&h), "verify");
	harness_close(&h, true);
	CHECK(legs_equal(0, 1, sb.data_size) == 0, "legs differ");
	return T_PASS;
}

static int test_fail_and_replace(void)
{
	struct harness h;
	struct ctl_call c;
	char path[600];
	uint64_t size;

	wipe();
	CHECK(!harness_open(&h, conf("m2.conf", MIRROR2)), "open");
	size = h.g.size;
	CHECK(!mix(&h, 800, 0, size), "mix");
	/* bad input changes nothing */
	CHECK(!ctl(&h, "m", "fail", "nosuchleg", &c) && c.ret == -ENOENT, "unknown leg: %d", c.ret);
	snprintf(path, sizeof(path), "m.children[1] %s", leg(0));
	CHECK(!ctl(&h, "m", "replace", path, &c) && c.ret != 0, "replace with a leg in use");
	CHECK(!strncmp(status_of(&h, "m"), "clean", 5), "bad input changed the state: %s",
	      status_of(&h, "m"));
	/* fail leg 0: reads come from leg 1 */
	CHECK(!ctl(&h, "m", "fail", "m.children[0]", &c) && c.ret == 0, "fail");
	CHECK(!strncmp(status_of(&h, "m"), "degraded", 8), "%s", status_of(&h, "m"));
	CHECK(!ctl(&h, "m", "fail", "m.children[1]", &c) && c.ret == -EBUSY, "failed the last leg");
	CHECK(!mix(&h, 400, 0, size), "degraded mix");
	CHECK(!verify(&h), "verify degraded");
	harness_close(&h, true);
	return T_PASS;
}

static int test_replace(void)
{
	struct harness h;
	struct ctl_call c;
	char arg[600];
	uint64_t size;

	wipe();
	CHECK(!harness_open(&h, conf("m2f.conf",
		"device = { max_io = \"256K\"; };\n"
		"volume = { type = \"mirror\"; name = \"m\"; bitmap_chunk = \"1M\";\n"
		"  children = ( { type = \"file\"; name = \"a\"; path = \"leg0.img\"; size = \"16M\"; },\n"
		"               { type = \"file\"; name = \"b\"; path = \"leg1.img\"; size = \"16M\"; } ); };\n")),
	      "open");
	size = h.g.size;
	CHECK(!mix(&h, 800, 0, size), "mix");
	/* a file too small, a file in use: refused, nothing changes */
	snprintf(arg, sizeof(arg), "%s/small.img", t_tmpdir());
	{
		int fd = open(arg, O_CREAT | O_WRONLY, 0600);

		CHECK(fd >= 0 && !ftruncate(fd, 1 << 20), "small file");
		close(fd);
	}
	snprintf(arg, sizeof(arg), "b %s/small.img", t_tmpdir());
	CHECK(!ctl(&h, "m", "replace", arg, &c) && c.ret == -ENOSPC, "too small accepted: %d", c.ret);
	snprintf(arg, sizeof(arg), "b %s", leg(0));
	CHECK(!ctl(&h, "m", "replace", arg, &c) && c.ret == -EBUSY, "leg in use accepted: %d", c.ret);
	CHECK(!strncmp(status_of(&h, "m"), "clean", 5), "refusals changed state: %s", status_of(&h, "m"));
	/* replace b with a new file while writes go on: rebuilt online */
	snprintf(arg, sizeof(arg), "b %s", leg(2));
	CHECK(!ctl(&h, "m", "replace", arg, &c) && c.ret == 0, "replace: %d", c.ret);
	CHECK(!mix(&h, 400, 0, size), "mix during rebuild");
	CHECK(!wait_status(&h, "m", "clean", 60), "rebuild did not finish");
	CHECK(!verify(&h), "verify");
	harness_close(&h, true);
	CHECK(legs_equal(0, 2, size) == 0, "new leg differs");
	return T_PASS;
}


/* A full rebuild stopped halfway (a clean stop) goes on from its checkpoint, not from 0. */
static int test_rebuild_resumes(void)
{
	static const char *cfg_text =
		"device = { max_io = \"256K\"; };\n"
		"volume = { type = \"mirror\"; name = \"m\"; bitmap_chunk = \"1M\"; resync_rate = \"3M\";\n"
		"  children = ( { type = \"file\"; path = \"leg0.img\"; size = \"16M\"; },\n"
		"               { type = \"file\"; path = \"leg1.img\"; size = \"16M\"; } ); };\n";
	struct harness h;
	char js[4096];
	const char *p;
	uint64_t total, size;
	uint8_t *saved;

	wipe();
	CHECK(!harness_open(&h, conf("rr.conf", cfg_text)), "open");
	size = h.g.size;
	CHECK(!mix(&h, 300, 0, size), "mix");
	saved = malloc(size);
	memcpy(saved, h.model, size);
	harness_close(&h, true);
	unlink(leg(1));	/* a new, empty leg 1: rebuilt in full at the next start */
	CHECK(!harness_open(&h, conf("rr.conf", cfg_text)), "open with a new leg");
	memcpy(h.model, saved, size);
	CHECK(!wait_status(&h, "m", "resyncing [=====", 60), "the rebuild did not get past 25%%");
	/* let a checkpoint of the position land (every 2 s) */
	for (time_t end = time(NULL) + 3; time(NULL) < end;)
		if (!uc_queue_idle(&h.q))
			turn(&h);
		else
			usleep(1000);
	harness_close(&h, true);
	CHECK(!harness_open(&h, conf("rr.conf", cfg_text)), "reopen");
	memcpy(h.model, saved, size);
	h.g.root->ops->json(h.g.root, js, sizeof(js));
	p = strstr(js, "\"resync_total\": ");
	total = p ? strtoull(p + 16, NULL, 10) : 0;
	printf("  rebuild_resumes: %llu of %llu bytes left after the restart\n", (unsigned long long)total,
	       (unsigned long long)size);
	CHECK(total && total <= size * 3 / 4, "the rebuild started over: %llu of %llu to copy",
	      (unsigned long long)total, (unsigned long long)size);
	CHECK(!wait_status(&h, "m", "clean", 60), "the rebuild did not finish");
	CHECK(!verify(&h), "verify");
	harness_close(&h, true);
	CHECK(legs_equal(0, 1, size) == 0, "the legs differ after the resumed rebuild");
	free(saved);
	return T_PASS;
}

struct add_call {
	struct uc_node *n;
	char value[600], reply[1024];
	int ret;
	atomic_bool done;
};

static void *add_thread(void *arg)
{
	struct add_call *c = arg;

	c->ret = c->n->ops->ctl(c->n, "add", c->value, c->reply, sizeof(c->reply));
	atomic_store(&c->done, true);
	return NULL;
}

static void *pause_thread(void *arg)
{
	struct add_call *c = arg;

	c->ret = uc_graph_pause(c->n->graph, 10000);
	atomic_store(&c->done, true);
	return NULL;
}

/* The barrier add uses: requests that come while a pause drains are held, then run. */
static int check_pause(struct harness *h)
{
	struct add_call p = { .n = h->g.root };
	unsigned int before;
	pthread_t t;

	for (int i = 0; i < 4; i++)
		issue(h, UC_OP_WRITE, i * 65536, 65536);
	before = h->inflight;
	CHECK(!pthread_create(&t, NULL, pause_thread, &p), "pthread_create");
	while (atomic_load(&h->g.pause_gen) == h->q.pause_gen)
		usleep(100);
	uc_queue_poll(&h->q);
	CHECK(h->q.pausing && !h->q.paused, "the queue did not start pausing");
	issue(h, UC_OP_WRITE, 1 << 20, 4096);
	issue(h, UC_OP_READ, 2 << 20, 8192);
	CHECK(h->q.nr_held == 2 && h->inflight == before + 2, "held %u", h->q.nr_held);
	while (!atomic_load(&p.done))
		if (!uc_queue_idle(&h->q))
			turn(h);
		else
			turn_nowait(h);
	pthread_join(t, NULL);
	CHECK(!p.ret && h->q.paused && h->q.nr_held == 2 && !h->q.nr_busy, "paused: %d, %u held, %u busy",
	      p.ret, h->q.nr_held, h->q.nr_busy);
	CHECK(h->inflight == 2, "the writes in flight did not drain: %u", h->inflight);
	uc_graph_resume(&h->g);
	CHECK(!reap(h, 0) && !h->q.nr_held && !h->q.pausing, "held requests did not run");
	return h->failures ? T_FAIL : T_PASS;
}

/*
 * add: refusals first, then a third leg while requests keep coming (the
 * queue pauses and grows under them), rebuilt in full; the saved config
 * reassembles the three legs without a resync.
 */
static int test_add(void)
{
	struct add_call a = { 0 };
	struct harness h;
	struct ctl_call c;
	struct mirror_sb sb;
	char arg[600], saved[600];
	unsigned int turns = 0;
	pthread_t t;
	uint64_t size;

	uint8_t *model;

	wipe();
	CHECK(!harness_open(&h, conf("add.conf",
		"device = { max_io = \"256K\"; };\n"
		"volume = { type = \"mirror\"; name = \"m\"; bitmap_chunk = \"1M\";\n"
		"  children = ( { type = \"file\"; name = \"a\"; path = \"leg0.img\"; size = \"16M\"; },\n"
		"               { type = \"file\"; name = \"b\"; path = \"leg1.img\"; size = \"16M\"; } ); };\n")),
	      "open");
	size = h.g.size;
	model = malloc(size);
	CHECK(model, "alloc");
	CHECK(!mix(&h, 600, 0, size), "mix");
	snprintf(arg, sizeof(arg), "%s/small.img", t_tmpdir());
	unlink(arg);
	{
		int fd = open(arg, O_CREAT | O_WRONLY, 0600);

		CHECK(fd >= 0 && !ftruncate(fd, 1 << 20), "small file");
		close(fd);
	}
	CHECK(!ctl(&h, "m", "add", arg, &c) && c.ret == -ENOSPC, "too small accepted: %d", c.ret);
	CHECK(!ctl(&h, "m", "add", leg(1), &c) && c.ret == -EBUSY, "a leg in use accepted: %d", c.ret);
	CHECK(!ctl(&h, "m", "add", "leg2.img", &c) && c.ret == -EINVAL, "a relative path accepted");
	CHECK(h.g.root->nr_children == 2 && !strncmp(status_of(&h, "m"), "clean", 5),
	      "refusals changed the mirror: %s", status_of(&h, "m"));
	CHECK(check_pause(&h) == T_PASS, "pause");

	/* the add runs on the admin thread while this one keeps issuing requests */
	a.n = h.g.root;
	snprintf(a.value, sizeof(a.value), "%s", leg(2));
	CHECK(!pthread_create(&t, NULL, add_thread, &a), "pthread_create");
	while (!atomic_load(&a.done)) {
		CHECK(!mix(&h, 8, 0, size), "mix during add");
		turn_nowait(&h);
		turns++;
	}
	pthread_join(t, NULL);
	printf("  add -> %d: %s (%u mixes meanwhile, %u held)\n", a.ret, a.reply, turns, h.q.nr_held);
	CHECK(a.ret == 0 && strstr(a.reply, "added as m.children[2]: rebuilding"), "add: %d %s",
	      a.ret, a.reply);
	CHECK(h.g.root->nr_children == 3 && !h.q.pausing, "tree after add");
	CHECK(!mix(&h, 400, 0, size), "mix during the rebuild");
	CHECK(!wait_status(&h, "m", "clean", 60), "rebuild did not finish");
	CHECK(strstr(status_of(&h, "m"), "[2 in-sync errors=0]"), "%s", status_of(&h, "m"));
	CHECK(!verify(&h), "verify");
	snprintf(saved, sizeof(saved), "%s/add-saved.conf", t_tmpdir());
	CHECK(!uc_graph_save(&h.g, saved), "save");
	memcpy(model, h.model, size);
	harness_close(&h, true);
	CHECK(legs_equal(0, 2, size) == 0 && legs_equal(1, 2, size) == 0, "the new leg differs");
	CHECK(!read_sb(2, &sb) && sb.nr_legs == 3 && sb.leg_index == 2 && (sb.flags & MIRROR_SB_CLEAN),
	      "superblock of the new leg: legs %u index %u flags %#x", sb.nr_legs, sb.leg_index, sb.flags);

	/* the saved config (absolute paths) brings all three back, clean */
	CHECK(!harness_open(&h, saved), "open the saved config");
	memcpy(h.model, model, size);
	free(model);
	CHECK(h.g.root->nr_children == 3 && !strncmp(status_of(&h, "m"), "clean", 5),
	      "saved config: %s", status_of(&h, "m"));
	CHECK(!mix(&h, 300, 0, size), "mix after reopening");
	harness_close(&h, true);
	CHECK(legs_equal(0, 2, size) == 0, "legs differ after reopening");
	return T_PASS;
}

int main(void)
{
	static const struct t_case cases[] = {
		{ "sb_roundtrip", test_sb_roundtrip },
		{ "mix_and_legs_identical", test_mix_and_legs_identical },
		{ "unclean_resync", test_unclean_resync },
		{ "write_failure_degrades", test_write_failure_degrades },
		{ "read_errors_repaired", test_read_errors_repaired },
		{ "read_balance", test_read_balance },
		{ "write_mostly", test_write_mostly },
		{ "assembly", test_assembly },
		{ "raid10", test_raid10 },
		{ "scrub", test_scrub },
		{ "fail_and_replace", test_fail_and_replace },
		{ "replace", test_replace },
		{ "add", test_add },
		{ "rebuild_resumes", test_rebuild_resumes },
	};

	uc_layer_add(&flaky_ops);
	if (getenv("UC_TEST_VERBOSE"))
		uc_verbose = atoi(getenv("UC_TEST_VERBOSE"));
	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
