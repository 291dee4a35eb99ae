/* SPDX-License-Identifier: MIT */
/* The layer test harness. See harness.h. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "harness.h"
#include "testlib.h"

static void on_commit(struct uc_queue *q, struct uc_io *io, int res)
{
	struct harness *h = q->owner;
	const struct uc_req *r = &h->reqs[io->tag];
	int want = (r->op == UC_OP_READ || r->op == UC_OP_WRITE) ? (int)r->len : 0;

	h->results[io->tag] = res;
	h->done[io->tag] = true;
	h->inflight--;
	if (h->lax)
		return;
	if (res != want) {
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

const char *conf(const char *name, const char *text)
{
	return t_write_file(t_tmpdir(), name, text);
}

int harness_open(struct harness *h, const char *conf)
{
	memset(h, 0, sizeof(*h));
	if (uc_graph_load(&h->g, conf) || uc_graph_open(&h->g))
		return -1;
	if (uc_queue_init(&h->q, &h->g, 0, DEPTH, 0, 0))
		return -1;
	h->q.owner = h;
	h->q.commit = on_commit;
	for (unsigned int t = 0; t < DEPTH; t++)
		h->done[t] = true;
	h->model = calloc(1, h->g.size);
	return h->model ? 0 : -1;
}

void harness_close(struct harness *h)
{
	uc_queue_exit(&h->q);
	uc_graph_free(&h->g);
	free(h->model);
}

/* One loop turn of the queue (see uc_queue_turn). Returns -1 on an error or a stray CQE. */
int harness_turn(struct harness *h)
{
	return uc_queue_turn(&h->q) ? -1 : 0;
}

/* Reap until at most `left` requests are in flight. */
int harness_reap(struct harness *h, unsigned int left)
{
	while (h->inflight > left)
		if (harness_turn(h))
			return -1;
	return 0;
}

/* Everything done, and nothing left on the ring (timers included). */
int harness_drain(struct harness *h)
{
	if (harness_reap(h, 0))
		return -1;
	while (!uc_queue_idle(&h->q))
		if (harness_turn(h))
			return -1;
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

void harness_fill(struct harness *h, uint8_t *buf, uint64_t len)
{
	if (h->data) {
		memcpy(buf, h->data, len);
		return;
	}
	if (!h->compressible) {
		fill(buf, len);
		return;
	}
	/* about 2:1: each 512 bytes half random, half zero; now and then all zero */
	if (t_rand() % 8 == 0) {
		memset(buf, 0, len);
		return;
	}
	for (uint64_t i = 0; i < len; i += 512) {
		uint64_t n = len - i < 512 ? len - i : 512;

		fill(buf + i, n / 2);
		memset(buf + i + n / 2, 0, n - n / 2);
	}
}

void fill(uint8_t *buf, uint64_t len)
{
	for (uint64_t i = 0; i < len; i += 8) {
		uint64_t v = t_rand();

		memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
	}
}

/* Issue one request on a free tag, updating the model for writes. */
void issue(struct harness *h, uint8_t op, uint8_t flags, uint64_t off, uint64_t len)
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
		harness_fill(h, h->q.ios[t].buf, len);
		memcpy(h->model + off, h->q.ios[t].buf, len);
	} else if (op == UC_OP_DISCARD || op == UC_OP_WRITE_ZEROES) {
		memset(h->model + off, 0, len);
	} else if (op == UC_OP_READ) {
		memset(h->q.ios[t].buf, 0xa5, len);
	}
	uc_queue_start(&h->q, t, &h->reqs[t]);
}

/* A random mix of every op, then a full read-back. Returns failures. */
int run_mix(struct harness *h, unsigned int nr, bool discards)
{
	uint64_t max_io = h->g.dev.max_io, size = h->g.size, a = h->align ? h->align : 512;

	h->lax = false;
	for (unsigned int i = 0; i < nr; i++) {
		unsigned int pick = t_rand() % 100;
		uint64_t len = a * (1 + t_rand() % (max_io / a)), off;

		if (t_rand() % 4 == 0)
			len = a * (1 + t_rand() % 16);
		if (len > size)
			len = size;
		off = a * (t_rand() % ((size - len) / a + 1));
		if (pick < 45)
			issue(h, UC_OP_WRITE, t_rand() % 8 ? 0 : UC_F_FUA, off, len);
		else if (pick < 90 || !discards)
			issue(h, UC_OP_READ, 0, off, len);
		else if (pick < 97)
			issue(h, pick < 94 ? UC_OP_DISCARD : UC_OP_WRITE_ZEROES,
			      t_rand() % 2 ? UC_F_NOUNMAP : 0, off & ~4095ULL,
			      ((off + len + 4095) & ~4095ULL) > size ? size - (off & ~4095ULL) :
			      ((off + len + 4095) & ~4095ULL) - (off & ~4095ULL));
		else
			issue(h, UC_OP_FLUSH, 0, 0, 0);
	}
	for (uint64_t off = 0; off < size; off += max_io)
		issue(h, UC_OP_READ, 0, off, size - off < max_io ? size - off : max_io);
	if (harness_drain(h))
		h->failures++;
	if (h->q.nr_busy || h->q.nr_member) {
		fprintf(stderr, "engine not idle: %u busy, %u member I/Os\n", h->q.nr_busy,
			h->q.nr_member);
		h->failures++;
	}
	return h->failures;
}


/*
 * One request alone on tag 0, drained. Returns the result (bytes, 0 or
 * -errno) or BAD_DATA; the model follows successful writes only.
 */
int one(struct harness *h, uint8_t op, uint64_t off, uint64_t len)
{
	uint8_t *buf = h->q.ios[0].buf;

	h->lax = true;
	h->reqs[0] = (struct uc_req){ .op = op, .off = off, .len = len };
	h->done[0] = false;
	h->inflight = 1;
	if (op == UC_OP_WRITE)
		harness_fill(h, buf, len);
	else if (op == UC_OP_READ)
		memset(buf, 0xa5, len);
	uc_queue_start(&h->q, 0, &h->reqs[0]);
	/* its completion, not the layers' background work (a mirror's bitmap) */
	if (harness_reap(h, 0))
		return -EPIPE;
	if (h->results[0] < 0)
		return h->results[0];
	if (op == UC_OP_WRITE)
		memcpy(h->model + off, buf, len);
	else if (op == UC_OP_DISCARD || op == UC_OP_WRITE_ZEROES)
		memset(h->model + off, 0, len);
	else if (op == UC_OP_READ && memcmp(buf, h->model + off, len))
		return BAD_DATA;
	return h->results[0];
}

static void one_on_commit(struct uc_queue *q, struct uc_io *io, int res)
{
	(void)io;
	*(int *)q->owner = res;
}

int one_on(struct harness *h, struct uc_queue *q, uint8_t op, uint64_t off, uint64_t len)
{
	struct uc_req r = { .op = op, .off = off, .len = len };
	int res = INT32_MIN;

	q->owner = &res;
	q->commit = one_on_commit;
	if (op == UC_OP_WRITE)
		harness_fill(h, q->ios[0].buf, len);
	uc_queue_start(q, 0, &r);
	while (res == INT32_MIN)
		if (uc_queue_turn(q))
			return -EPIPE;
	if (res >= 0 && op == UC_OP_WRITE)
		memcpy(h->model + off, q->ios[0].buf, len);
	else if (res >= 0 && op != UC_OP_READ)
		memset(h->model + off, 0, len);
	else if (res >= 0 && memcmp(q->ios[0].buf, h->model + off, len))
		return BAD_DATA;
	return res;
}

int ctl(struct uc_node *n, const char *key, const char *value, char *reply, size_t len)
{
	return n->ops->ctl(n, key, value, reply, len);
}

const char *status(struct uc_node *n)
{
	static char buf[512];

	n->ops->status(n, buf, sizeof(buf));
	return buf;
}


/* ---- config checks ---- */


const char *case_dir(const char *name)
{
	static char dir[PATH_MAX];
	static int seq;

	snprintf(dir, sizeof(dir), "%s/%02d-%s", t_tmpdir(), seq++, name);
	if (mkdir(dir, 0755)) {
		perror(dir);
		exit(T_FAIL);
	}
	return dir;
}

static void list_tree(const char *dir, char *out, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		size_t l = strlen(out);

		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			snprintf(out + l, len - l, "%s\n", e->d_name);
	}
	closedir(d);
}

/* uc_graph_load() with fd 2 going to a file; its text lands in err */
int load_capture(struct uc_graph *g, const char *path, char *err, size_t len)
{
	char tmpl[PATH_MAX];
	int fd, saved, ret;
	ssize_t n;

	snprintf(tmpl, sizeof(tmpl), "%s/stderr-XXXXXX", t_tmpdir());
	fd = mkstemp(tmpl);
	if (fd < 0) {
		perror("mkstemp");
		exit(T_FAIL);
	}
	unlink(tmpl);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	ret = uc_graph_load(g, path);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, err, len - 1, 0);
	err[n > 0 ? n : 0] = 0;
	close(fd);
	return ret;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* the 1-based line of text holding "#<" */
static int marked_line(const char *text)
{
	const char *m = strstr(text, "#<");
	int line = 1;

	if (!m)
		return -1;
	for (; text < m; text++)
		line += *text == '\n';
	return line;
}

/* -EINVAL, one "FILE:LINE: ...needle..." line at the #< line, nothing created */
int expect_bad(const char *name, const char *text, const char *needle)
{
	char before[4096] = "", after[4096] = "", err[4096], want[PATH_MAX + 32];
	const char *dir = case_dir(name), *conf;
	struct uc_graph g;
	int ret, line = marked_line(text);

	conf = t_write_file(dir, "bad.conf", text);
	list_tree(dir, before, sizeof(before));
	ret = load_capture(&g, conf, err, sizeof(err));
	uc_graph_free(&g);
	list_tree(dir, after, sizeof(after));

	CHECK(line > 0, "%s: no #< marker in the config", name);
	CHECK(ret == -EINVAL, "%s: uc_graph_load returned %d, want -EINVAL; stderr: %s", name, ret, err);
	CHECK(count_lines(err) == 1 && err[strlen(err) - 1] == '\n',
	      "%s: want exactly one line on stderr, got:\n%s", name, err);
	snprintf(want, sizeof(want), "%s:%d: ", conf, line);
	CHECK(!strncmp(err, want, strlen(want)), "%s: want \"%s...\", got: %s", name, want, err);
	CHECK(strstr(err, needle), "%s: message lacks \"%s\": %s", name, needle, err);
	CHECK(!strcmp(before, after), "%s: load changed the directory:\nbefore:\n%safter:\n%s",
	      name, before, after);
	return T_PASS;
}

int load_good(struct uc_graph *g, const char *name, const char *text)
{
	char err[4096];
	const char *conf = t_write_file(case_dir(name), "good.conf", text);
	int ret = load_capture(g, conf, err, sizeof(err));

	CHECK(!ret && !err[0], "%s: uc_graph_load = %d: %s", name, ret, err);
	return T_PASS;
}

