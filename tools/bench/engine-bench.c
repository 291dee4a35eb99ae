/* SPDX-License-Identifier: MIT */
/*
 * engine-bench: the queue engine without ublk. Synthetic 4k random reads go
 * through the graph of a config (e.g. a stripe x4 over files on /dev/shm) on
 * one io_uring at a fixed queue depth, for a fixed time; prints the CPU time
 * (getrusage user+sys of the process) per completed I/O.
 * The driving loop is the one of tests/unit-engine.c (harness_reap): enter,
 * hand every member CQE to the engine, restart the tags that finished.
 *
 * usage: engine-bench CONF [SECONDS (5)] [DEPTH (32)] [BS (4096)]
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
	uint64_t ios, errors;
	uint64_t rng;
	uint64_t nr_blocks;
	unsigned int bs;
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

	if (res != (int)b->bs)
		b->errors++;
	b->ios++;
	b->done_tags[b->nr_done++] = io->tag;
}

static void start(struct bench *b, unsigned int tag)
{
	struct uc_req r = { .op = UC_OP_READ, .off = (rnd(b) % b->nr_blocks) * b->bs, .len = b->bs };

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

int main(int argc, char **argv)
{
	static struct bench b;
	double secs = argc > 2 ? atof(argv[2]) : 5;
	unsigned int depth = argc > 3 ? (unsigned int)atoi(argv[3]) : 32;
	double t0, c0, t1, c1, end;
	int ret;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CONF [SECONDS] [DEPTH] [BS]\n", argv[0]);
		return 2;
	}
	b.bs = argc > 4 ? (unsigned int)atoi(argv[4]) : 4096;
	b.rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)time(NULL);
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
	b.done_tags = calloc(depth, sizeof(*b.done_tags));

	t0 = now();
	c0 = cpu();
	end = t0 + secs;
	for (unsigned int t = 0; t < depth; t++)
		start(&b, t);
	for (;;) {
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;
		bool stop;

		if (uc_queue_enter(&b.q) < 0) {
			fprintf(stderr, "engine-bench: io_uring_enter failed\n");
			return 1;
		}
		io_uring_for_each_cqe(&b.q.ring, head, cqe) {
			if (!uc_udata_is_member(cqe->user_data)) {
				fprintf(stderr, "engine-bench: stray CQE\n");
				return 1;
			}
			uc_queue_member_cqe(&b.q, cqe);
			n++;
		}
		io_uring_cq_advance(&b.q.ring, n);
		stop = now() >= end;	/* vDSO: a few ns per loop turn */
		if (!stop) {
			for (unsigned int i = 0; i < b.nr_done; i++)
				start(&b, b.done_tags[i]);
			b.nr_done = 0;
		} else {
			b.nr_done = 0;
			if (!b.q.nr_busy)
				break;
			/* drain: keep reaping until everything is back */
			while (b.q.nr_busy) {
				if (uc_queue_enter(&b.q) < 0)
					return 1;
				n = 0;
				io_uring_for_each_cqe(&b.q.ring, head, cqe) {
					uc_queue_member_cqe(&b.q, cqe);
					n++;
				}
				io_uring_cq_advance(&b.q.ring, n);
			}
			break;
		}
	}
	t1 = now();
	c1 = cpu();
	printf("{\"ios\": %llu, \"errors\": %llu, \"seconds\": %.4f, \"cpu_seconds\": %.4f, "
	       "\"iops\": %.1f, \"cpu_us_per_io\": %.4f, \"depth\": %u, \"bs\": %u, \"size\": %llu}\n",
	       (unsigned long long)b.ios, (unsigned long long)b.errors, t1 - t0, c1 - c0,
	       b.ios / (t1 - t0), (c1 - c0) * 1e6 / (b.ios ? b.ios : 1), depth, b.bs,
	       (unsigned long long)b.g.size);
	uc_queue_exit(&b.q);
	uc_graph_free(&b.g);
	return b.errors ? 1 : 0;
}
