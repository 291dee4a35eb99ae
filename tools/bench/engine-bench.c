/* SPDX-License-Identifier: MIT */
/*
 * engine-bench: the queue engine without ublk. Synthetic requests (4k random
 * reads by default) go through the graph of a config (e.g. a stripe x4 over
 * files on /dev/shm) on one io_uring at a fixed queue depth, for a fixed time;
 * prints the CPU time (getrusage user+sys of the process) per completed I/O
 * and the throughput. The driving loop is the one of tests/harness.c: enter,
 * hand every CQE to the engine (member I/O, timers, worker kicks), poll the
 * layers, restart the tags that finished.
 *
 * usage: engine-bench CONF [SECONDS (5) | Nios] [DEPTH (32)] [BS (4096)]
 *                     [MODE randread|randwrite|read|write (randread)]
 *                     [DATA random|half|file:PATH (random)] [FSYNC (0)]
 * "Nios" (e.g. 200000ios) runs exactly N requests instead of a time: with
 * valgrind --tool=callgrind --toggle-collect=measured_run the instruction
 * count of N requests, repeatable on a busy machine (tools/bench/engine-ir.sh).
 * DATA is what writes carry: random bytes, or half of every 4K random and half
 * zero (zstd makes about 2:1 of it), or a real file's bytes (byte x of the
 * volume gets byte x of the file, repeated if it is shorter; it is read
 * into memory first). Read modes and randwrite first fill the
 * whole volume with that data (1M sequential writes, not timed), so that
 * reads of a compress volume decompress real extents and random writes land
 * in stored clusters, as on a volume in use. FSYNC N > 0: every N-th request
 * is a FLUSH instead (fio's --fsync=N); ios counts them too.
 * output: one JSON object on stdout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "graph.h"
#include "io.h"
#include "udata.h"

struct bench {
	struct uc_graph g;
	struct uc_queue q;
	unsigned int *done_tags;	/* tags finished since the last restart */
	unsigned int nr_done;
	unsigned int *restart;		/* the tags being restarted: done_tags fills again meanwhile */
	uint64_t ios, errors;
	uint64_t rng;
	uint64_t nr_blocks;
	uint64_t next_off;	/* sequential modes */
	unsigned int bs;
	unsigned int fsync_every;	/* every N-th request a FLUSH (0: none) */
	uint64_t nr_started;
	uint8_t op;
	bool seq;
	double end;
	uint8_t *src;		/* DATA file:PATH: its bytes */
	uint64_t src_len;	/* a multiple of bs and of max_io */
};

static uint64_t rnd(struct bench *b)
{
	/* xorshift64* */
	b->rng ^= b->rng >> 12;
	b->rng ^= b->rng << 25;
	b->rng ^= b->rng >> 27;
	return b->rng * 0x2545F4914F6CDD1DULL;
}

static void on_commit(struct uc_queue *q, struct uc_io *io, int res)
{
	struct bench *b = q->owner;

	if (res != (int)(io->len ? b->bs : 0))
		b->errors++;
	b->ios++;
	b->done_tags[b->nr_done++] = io->tag;
}

static void start(struct bench *b, unsigned int tag)
{
	struct uc_req r = { .op = b->op, .len = b->bs };

	if (b->fsync_every && !(++b->nr_started % b->fsync_every)) {
		r = (struct uc_req){ .op = UC_OP_FLUSH };
		uc_queue_start(&b->q, tag, &r);
		return;
	}
	if (b->seq) {
		if (b->next_off + b->bs > b->g.size)
			b->next_off = 0;
		r.off = b->next_off;
		b->next_off += b->bs;
	} else {
		r.off = (rnd(b) % b->nr_blocks) * b->bs;
	}
	if (b->src && r.op == UC_OP_WRITE)
		memcpy(b->q.ios[tag].buf, b->src + r.off % b->src_len, r.len);
	uc_queue_start(&b->q, tag, &r);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/* Random bytes, or (half) every 4K half random and half zero. */
static void fill(uint8_t *p, size_t len, bool half, struct bench *b)
{
	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = half && (i & 4095) >= 2048 ? 0 : rnd(b);

		memcpy(p + i, &v, 8);
	}
}

/* DATA file:PATH: the file's bytes, as many whole max_io pieces as it holds. Returns 0 or -1. */
static int load_src(struct bench *b, const char *path)
{
	FILE *f = fopen(path, "rb");
	uint64_t cap = b->g.size, unit = b->g.dev.max_io;

	b->src = f ? malloc(cap) : NULL;
	if (b->src)
		b->src_len = fread(b->src, 1, cap, f) / unit * unit;
	if (f)
		fclose(f);
	if (!b->src_len) {
		fprintf(stderr, "engine-bench: %s: not %llu bytes to read\n", path,
			(unsigned long long)unit);
		return -1;
	}
	return 0;
}

/* One loop turn of the engine, as the test harness drives it. */
static int turn(struct bench *b)
{
	int ret = uc_queue_turn(&b->q);

	if (ret)
		fprintf(stderr, "engine-bench: %s\n",
			ret == -EBADMSG ? "a CQE the engine does not own" : strerror(-ret));
	return ret ? -1 : 0;
}

/* Keep depth requests in flight until `count` are done (0: until b->end), then drain. */
static int run(struct bench *b, unsigned int depth, uint64_t count)
{
	uint64_t started = 0;

	for (unsigned int t = 0; t < depth && (!count || started < count); t++, started++)
		start(b, t);
	for (;;) {
		bool stop;

		if (turn(b))
			return -1;
		stop = count ? started >= count : now() >= b->end;	/* vDSO: a few ns */
		if (!stop) {
			unsigned int n = b->nr_done;

			/* a request may complete inside start() (a write cache): it lands in done_tags */
			memcpy(b->restart, b->done_tags, n * sizeof(*b->restart));
			b->nr_done = 0;
			for (unsigned int i = 0; i < n && (!count || started < count); i++, started++)
				start(b, b->restart[i]);
			continue;
		}
		b->nr_done = 0;
		while (b->q.nr_busy) {	/* drain: keep reaping until everything is back */
			if (turn(b))
				return -1;
			b->nr_done = 0;
		}
		return 0;
	}
}

/* The measured part, a function of its own: callgrind --toggle-collect=measured_run counts it alone. */
__attribute__((noinline, noclone)) int measured_run(struct bench *b, unsigned int depth, uint64_t count)
{
	return run(b, depth, count);
}

int main(int argc, char **argv)
{
	static struct bench b;
	double secs = argc > 2 ? atof(argv[2]) : 5;
	uint64_t count = argc > 2 && strstr(argv[2], "ios") ? strtoull(argv[2], NULL, 10) : 0;
	unsigned int depth = argc > 3 ? (unsigned int)atoi(argv[3]) : 32;
	const char *mode = argc > 5 ? argv[5] : "randread";
	bool half = argc > 6 && !strcmp(argv[6], "half");
	const char *data = argc > 6 ? argv[6] : "random";
	double t0, c0, t1, c1;
	int ret;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CONF [SECONDS] [DEPTH] [BS] [MODE] [DATA] [FSYNC]\n", argv[0]);
		return 2;
	}
	b.op = strstr(mode, "write") ? UC_OP_WRITE : UC_OP_READ;
	b.seq = strncmp(mode, "rand", 4) != 0;
	if (strcmp(mode, "randread") && strcmp(mode, "randwrite") && strcmp(mode, "read") &&
	    strcmp(mode, "write")) {
		fprintf(stderr, "engine-bench: unknown mode %s\n", mode);
		return 2;
	}
	b.bs = argc > 4 ? (unsigned int)atoi(argv[4]) : 4096;
	/* a fixed count is for instruction counts: the same offsets every run */
	b.rng = 0x9E3779B97F4A7C15ULL ^ (count ? 0 : (uint64_t)time(NULL));
	if (uc_graph_load(&b.g, argv[1]))
		return 2;
	ret = uc_graph_open(&b.g);
	if (ret) {
		fprintf(stderr, "engine-bench: open: %s\n", strerror(-ret));
		return 1;
	}
	ret = uc_queue_init(&b.q, &b.g, 0, depth, 0, 0);
	if (ret) {
		fprintf(stderr, "engine-bench: queue init: %s\n", strerror(-ret));
		return 1;
	}
	b.q.owner = &b;
	b.q.commit = on_commit;
	b.nr_blocks = b.g.size / b.bs;
	if (!strncmp(data, "file:", 5) && load_src(&b, data + 5))
		return 1;
	b.done_tags = calloc(depth, sizeof(*b.done_tags));
	b.restart = calloc(depth, sizeof(*b.restart));

	for (unsigned int t = 0; t < depth; t++)
		fill(b.q.ios[t].buf, b.g.dev.max_io, half, &b);
	if (b.op == UC_OP_READ || !strcmp(mode, "randwrite")) {
		/* fill the volume: reads then hit real (compressed) extents, writes replace them */
		uint8_t op = b.op;
		unsigned int bs = b.bs;
		bool seq = b.seq;

		b.op = UC_OP_WRITE;
		b.bs = b.g.dev.max_io < (1u << 20) ? b.g.dev.max_io : 1u << 20;
		b.seq = true;
		b.next_off = 0;
		if (run(&b, depth, b.g.size / b.bs))
			return 1;
		b.op = op;
		b.bs = bs;
		b.seq = seq;
		b.next_off = 0;
		for (unsigned int t = 0; t < depth; t++)
			fill(b.q.ios[t].buf, b.g.dev.max_io, half, &b);	/* reads overwrote them */
	}
	b.ios = b.errors = 0;
	b.fsync_every = argc > 7 ? (unsigned int)atoi(argv[7]) : 0;
	t0 = now();
	c0 = cpu();
	b.end = t0 + secs;
	if (measured_run(&b, depth, count))
		return 1;
	t1 = now();
	c1 = cpu();
	printf("{\"ios\": %llu, \"errors\": %llu, \"seconds\": %.4f, \"cpu_seconds\": %.4f, "
	       "\"iops\": %.1f, \"mb_per_s\": %.1f, \"cpu_us_per_io\": %.4f, \"depth\": %u, "
	       "\"bs\": %u, \"mode\": \"%s\", \"data\": \"%s\", \"fsync\": %u, \"size\": %llu}\n",
	       (unsigned long long)b.ios, (unsigned long long)b.errors, t1 - t0, c1 - c0,
	       b.ios / (t1 - t0), b.ios * (double)b.bs / (t1 - t0) / 1e6,
	       (c1 - c0) * 1e6 / (b.ios ? b.ios : 1), depth, b.bs, mode, data,
	       b.fsync_every, (unsigned long long)b.g.size);
	uc_queue_exit(&b.q);
	uc_graph_free(&b.g);
	return b.errors ? 1 : 0;
}
