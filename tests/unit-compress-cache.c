/* SPDX-License-Identifier: MIT */
/*
 * The compress layer's read cache (decoded clusters kept per queue): reads
 * that come back to a cluster are served from it, and no change of the
 * cluster leaves it serving old data: page writes and discards, zeroes,
 * whole and read-modify-write stores, on the same queue or another one,
 * folds, a generation counter that wraps around; random mixes of small
 * reads and writes over few clusters, with and without workers.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "compress_int.h"
#include "harness.h"
#include "testlib.h"

static const char *cache_conf(const char *name, const char *extra)
{
	static char text[1024];
	char img[512];

	snprintf(img, sizeof(img), "%s/%s.img", t_tmpdir(), name);
	unlink(img);
	snprintf(text, sizeof(text),
		 "device = { queues = 2; max_io = \"128K\"; };\n"
		 "volume = { type = \"compress\"; name = \"cz\"; size = \"4M\"; cluster = \"64K\"; %s\n"
		 "  children = ( { type = \"file\"; path = \"%s\"; size = \"8M\"; } ); };\n", extra, img);
	return conf(name, text);
}

static uint64_t hits(struct harness *h)
{
	struct cz *cz = h->g.root->priv;
	uint64_t n = 0;

	for (unsigned int i = 0; i <= UC_MAX_QUEUES; i++)
		if (cz->q[i])
			n += atomic_load(&cz->q[i]->cache_hits);
	return n;
}

static void fold_done(struct uc_queue *q, struct uc_io *io, int res)
{
	(void)q;
	*(int *)io->arg = res;
}

/* Cluster c stored whole again (what the layer does when space runs low). */
static int fold(struct harness *h, uint64_t c)
{
	struct uc_io *io = uc_internal_get(&h->q);
	int res = INT32_MIN;

	if (!io)
		return -EBUSY;
	uc_internal_start(&h->q, io, h->g.root, UC_OP_FOLD, 0, c * 64 * K, 64 * K, fold_done, &res);
	while (res == INT32_MIN)
		if (harness_turn(h))
			return -EPIPE;
	return res;
}

#define PG(c, p)	((c) * 64 * K + (p) * 4 * K)

/* Pages of cluster c one after the other: the first decodes it, the rest are hits. */
static int read_all(struct harness *h, uint64_t c, uint64_t *before)
{
	*before = hits(h);
	for (unsigned int p = 0; p < 16; p++)
		CHECK(one(h, UC_OP_READ, PG(c, p), 4 * K) == 4 * K, "cluster %llu page %u",
		      (unsigned long long)c, p);
	return T_PASS;
}

static int test_invalidate(void)
{
	struct harness h;
	struct uc_queue q2;
	uint64_t b;

	CHECK(!harness_open(&h, cache_conf("inval", "")), "open");
	CHECK(!uc_queue_init(&q2, &h.g, 1, DEPTH, 0, 0), "second queue");
	h.compressible = true;
	for (uint64_t c = 0; c < 8; c++)
		do
			CHECK(one(&h, UC_OP_WRITE, c * 64 * K, 64 * K) == 64 * K, "cluster %llu",
			      (unsigned long long)c);
		while (!h.model[c * 64 * K]);	/* not an all-zero cluster: those are not cached */
	CHECK(!read_all(&h, 2, &b) && hits(&h) == b + 15, "15 hits of 16 reads, got %llu",
	      (unsigned long long)(hits(&h) - b));
	/* a page written alone: the next read decodes the cluster again, and sees it */
	CHECK(one(&h, UC_OP_WRITE, PG(2, 3), 4 * K) == 4 * K, "page write");
	CHECK(!read_all(&h, 2, &b) && hits(&h) == b + 15, "after a page write: %llu hits",
	      (unsigned long long)(hits(&h) - b));
	/* written through the other queue, read through this one */
	CHECK(one_on(&h, &q2, UC_OP_WRITE, PG(2, 5), 8 * K) == 8 * K, "page write, queue 1");
	CHECK(!read_all(&h, 2, &b), "after a page write on the other queue");
	/* read through the other queue: its own cache, filled once */
	b = hits(&h);
	for (unsigned int p = 0; p < 16; p++)
		CHECK(one_on(&h, &q2, UC_OP_READ, PG(2, p), 4 * K) == 4 * K, "queue 1 page %u", p);
	CHECK(hits(&h) == b + 15, "queue 1: %llu hits", (unsigned long long)(hits(&h) - b));
	CHECK(one(&h, UC_OP_WRITE, PG(2, 6), 4 * K) == 4 * K, "page write, queue 0");
	CHECK(one_on(&h, &q2, UC_OP_READ, PG(2, 6), 4 * K) == 4 * K, "queue 1 sees queue 0's write");
	/* discards and zeroes of pages, a write that is not whole pages (read-modify-write) */
	CHECK(one(&h, UC_OP_DISCARD, PG(2, 7), 4 * K) == 0, "page discard");
	CHECK(!read_all(&h, 2, &b), "after a page discard");
	CHECK(one(&h, UC_OP_WRITE_ZEROES, PG(2, 8), 8 * K) == 0, "write zeroes");
	CHECK(!read_all(&h, 2, &b), "after write zeroes");
	CHECK(one(&h, UC_OP_WRITE, PG(2, 9) + 512, 1024) == 1024, "a write inside a page");
	CHECK(!read_all(&h, 2, &b), "after a read-modify-write");
	do	/* compressible data is all zero now and then: a cluster of zeroes is not cached */
		CHECK(one_on(&h, &q2, UC_OP_WRITE, PG(2, 0), 64 * K) == 64 * K, "whole cluster, queue 1");
	while (!h.model[PG(2, 0)]);
	CHECK(!read_all(&h, 2, &b), "after a whole write on the other queue");
	/* whole reads are served from the cache too, and see whole writes */
	b = hits(&h);
	CHECK(one(&h, UC_OP_READ, PG(2, 0), 64 * K) == 64 * K && hits(&h) == b + 1, "whole read, a hit: %llu",
	      (unsigned long long)(hits(&h) - b));
	CHECK(one(&h, UC_OP_WRITE, PG(2, 0), 64 * K) == 64 * K, "whole cluster");
	CHECK(one(&h, UC_OP_READ, PG(2, 0), 64 * K) == 64 * K, "whole read after a whole write");
	CHECK(!read_all(&h, 2, &b), "after a whole write");
	CHECK(one(&h, UC_OP_DISCARD, PG(2, 0), 64 * K) == 0, "whole discard");
	CHECK(!read_all(&h, 2, &b), "after a whole discard");
	/* a fold stores the same data again: the cache lets it go all the same */
	CHECK(one(&h, UC_OP_WRITE, PG(4, 2), 4 * K) == 4 * K, "page write");
	CHECK(!read_all(&h, 4, &b) && hits(&h) == b + 15, "a cluster with a page alone is cached");
	CHECK(fold(&h, 4) == 0, "fold");
	CHECK(!((struct cz *)h.g.root->priv)->ovn[4], "the fold left pages alone");
	CHECK(!read_all(&h, 4, &b) && hits(&h) == b + 15, "after a fold: %llu hits",
	      (unsigned long long)(hits(&h) - b));
	uc_queue_exit(&q2);
	harness_close(&h);
	return T_PASS;
}

/*
 * A cluster's generation wraps around: a slot filled 2^32 changes ago must
 * not match again (the epoch moves on). The changes are made by hand here:
 * the generation is set to just before the wrap, a page write changes the
 * data and wraps it, and it is set back to what the slot holds.
 */
static int test_wrap(void)
{
	struct harness h;
	struct cz *cz;
	uint32_t g;
	uint64_t b;

	CHECK(!harness_open(&h, cache_conf("wrap", "")), "open");
	cz = h.g.root->priv;
	h.compressible = true;
	do
		CHECK(one(&h, UC_OP_WRITE, PG(1, 0), 64 * K) == 64 * K, "cluster");
	while (!h.model[PG(1, 0)]);
	CHECK(!read_all(&h, 1, &b) && hits(&h) == b + 15, "cached");
	g = atomic_load(&cz->gen[1]);
	atomic_store(&cz->gen[1], UINT32_MAX);
	CHECK(one(&h, UC_OP_WRITE, PG(1, 3), 4 * K) == 4 * K, "page write");
	CHECK(atomic_load(&cz->gen[1]) == 0, "gen %u", atomic_load(&cz->gen[1]));
	atomic_store(&cz->gen[1], g);
	CHECK(one(&h, UC_OP_READ, PG(1, 3), 4 * K) == 4 * K, "the page written after the wrap");
	harness_close(&h);
	return T_PASS;
}

/*
 * Random small reads and writes (whole pages and not), discards and
 * flushes over 8 clusters, many at once: every read checked against the
 * model. Then the same through both queues in turn.
 */
static int cache_mix(const char *name, const char *extra)
{
	struct harness h;
	struct uc_queue q2;
	uint64_t b;
	int fails;

	CHECK(!harness_open(&h, cache_conf(name, extra)), "open");
	CHECK(!uc_queue_init(&q2, &h.g, 1, DEPTH, 0, 0), "second queue");
	h.compressible = true;
	for (uint64_t c = 0; c < 8; c++)
		CHECK(one(&h, UC_OP_WRITE, c * 64 * K, 64 * K) == 64 * K, "cluster %llu",
		      (unsigned long long)c);
	b = hits(&h);
	for (int round = 0; round < 4; round++) {
		h.lax = false;
		for (int i = 0; i < 1500; i++) {
			uint64_t len = 4 * K * (1 + t_rand() % 4), off = 4 * K * (t_rand() % (128 - 4));
			unsigned int pick = t_rand() % 100;

			if (round % 2 && pick < 20)
				len = 512 * (1 + t_rand() % 16), off = 512 * (t_rand() % (1024 - 16));
			if (pick < 25)
				issue(&h, UC_OP_WRITE, 0, off, len);
			else if (pick < 92)
				issue(&h, UC_OP_READ, 0, off, len);
			else if (pick < 97)
				issue(&h, UC_OP_DISCARD, 0, off & ~4095ULL, 4 * K);
			else
				issue(&h, UC_OP_FLUSH, 0, 0, 0);
		}
		CHECK(!harness_drain(&h) && !h.failures, "round %d: %d failures", round, h.failures);
		/* the other queue, in turn with this one */
		for (int i = 0; i < 300; i++) {
			uint64_t off = 4 * K * (t_rand() % 128);
			int r;

			if (t_rand() % 3 == 0)
				r = one_on(&h, &q2, UC_OP_WRITE, off, 4 * K);
			else
				r = one_on(&h, &q2, UC_OP_READ, off, 4 * K);
			CHECK(r == 4 * K, "queue 1 at %llu: %d", (unsigned long long)off, r);
			off = 4 * K * (t_rand() % 128);
			if (t_rand() % 3 == 0)
				r = one(&h, UC_OP_WRITE, off, 4 * K);
			else
				r = one(&h, UC_OP_READ, off, 4 * K);
			CHECK(r == 4 * K, "queue 0 at %llu: %d", (unsigned long long)off, r);
		}
	}
	fails = 0;
	for (uint64_t off = 0; off < 8 * 64 * K; off += 4 * K)
		fails += one(&h, UC_OP_READ, off, 4 * K) != 4 * K;
	CHECK(!fails, "%d pages read back wrong", fails);
	printf("  %s: %llu requests, %llu cache hits\n", name, (unsigned long long)h.nr_reqs,
	       (unsigned long long)(hits(&h) - b));
	CHECK(hits(&h) - b > 1000, "the cache was hardly used: the test tests nothing");
	uc_queue_exit(&q2);
	harness_close(&h);
	return T_PASS;
}

/*
 * cache = SIZE: the slots each queue keeps (direct mapped by cluster). 8
 * clusters read twice, page 0 then page 1 of each: with 4 slots ("256K")
 * cluster c + 4 has taken c's slot by then, every second read misses; with
 * 8 ("512K") every one hits. Over 1G is a config error.
 */
static int cache_pass(const char *name, const char *extra, uint64_t want_bytes, uint64_t *out)
{
	struct harness h;
	uint64_t b = 0;

	CHECK(!harness_open(&h, cache_conf(name, extra)), "open");
	CHECK((uint64_t)((struct cz *)h.g.root->priv)->nr_cache * 64 * K == want_bytes,
	      "%s: %u slots", extra, ((struct cz *)h.g.root->priv)->nr_cache);
	h.compressible = true;
	for (uint64_t c = 0; c < 8; c++)
		do
			CHECK(one(&h, UC_OP_WRITE, c * 64 * K, 64 * K) == 64 * K, "cluster %llu",
			      (unsigned long long)c);
		while (!h.model[c * 64 * K]);
	for (unsigned int p = 0; p < 2; p++) {
		if (p == 1)
			b = hits(&h);
		for (uint64_t c = 0; c < 8; c++)
			CHECK(one(&h, UC_OP_READ, PG(c, p), 4 * K) == 4 * K, "read %llu/%u",
			      (unsigned long long)c, p);
	}
	*out = hits(&h) - b;
	harness_close(&h);
	return T_PASS;
}

static int test_cache_size(void)
{
	struct harness h;
	uint64_t small, big;

	CHECK(cache_pass("c256", "cache = \"256K\";", 256 * K, &small) == T_PASS, "256K");
	CHECK(cache_pass("c512", "cache = \"512K\";", 512 * K, &big) == T_PASS, "512K");
	CHECK(small == 0 && big == 8, "second reads of 8 clusters: %llu hits with 4 slots, %llu with 8",
	      (unsigned long long)small, (unsigned long long)big);
	fprintf(stderr, "  (a config error is expected next)\n");
	CHECK(harness_open(&h, cache_conf("c2g", "cache = \"2G\";")), "a 2G cache was accepted");
	uc_graph_free(&h.g);
	return T_PASS;
}

static int test_mix(void)
{
	return cache_mix("mix", "");
}

static int test_mix_inline(void)
{
	return cache_mix("mix0", "workers = 0;");
}

int main(void)
{
	static const struct t_case cases[] = {
		{ "invalidate", test_invalidate },
		{ "wrap", test_wrap },
		{ "cache_size", test_cache_size },
		{ "mix", test_mix },
		{ "mix_inline", test_mix_inline },
	};
	struct io_uring ring;

	if (io_uring_queue_init(2, &ring, 0)) {
		fprintf(stderr, "no io_uring here\n");
		return T_SKIP;
	}
	io_uring_queue_exit(&ring);
	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
