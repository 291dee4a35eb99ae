/* SPDX-License-Identifier: MIT */
/*
 * A test harness for layers: a graph from a config, one queue on a real
 * io_uring driven by hand, synthetic requests against an in-memory model
 * of the volume (reads are checked against it). Used by unit-fault.c and
 * unit-compress.c.
 */
#ifndef UC_TEST_HARNESS_H
#define UC_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "graph.h"
#include "io.h"

#define DEPTH	16
#define K	1024ULL
#define M	(1024 * K)
#define BAD_DATA	(-1000)	/* one(): a read succeeded with the wrong bytes */

struct harness {
	struct uc_graph g;
	struct uc_queue q;
	uint8_t *model;		/* what the volume must hold */
	struct uc_req reqs[DEPTH];
	int results[DEPTH];
	bool done[DEPTH];
	unsigned int inflight;
	int failures;
	bool lax;		/* one(): the caller checks results */
	bool compressible;	/* writes carry data that compresses about 2:1 */
	const uint8_t *data;	/* if set: what writes carry (their length of it) */
	unsigned int align;	/* run_mix: offsets and lengths in multiples of this (0: 512) */
	uint64_t nr_reqs;
};

/* A config file in the test's scratch directory; returns its path. */
const char *conf(const char *name, const char *text);
/* Load and open conf, one queue of DEPTH tags. Returns 0 or -1. */
int harness_open(struct harness *h, const char *conf);
void harness_close(struct harness *h);
/* One loop turn: poll, submit and wait, CQEs. Returns -1 on a stray CQE. */
int harness_turn(struct harness *h);
/* Reap until at most left requests are in flight. */
int harness_reap(struct harness *h, unsigned int left);
/* Everything done and nothing on the ring. */
int harness_drain(struct harness *h);
void fill(uint8_t *buf, uint64_t len);
/* Data for a write: h->data, or random, or about 2:1 compressible (h->compressible). */
void harness_fill(struct harness *h, uint8_t *buf, uint64_t len);
/* Start a request on a free tag (waiting for overlapping ones); writes update the model. */
void issue(struct harness *h, uint8_t op, uint8_t flags, uint64_t off, uint64_t len);
/* A random mix of every op, then a full read-back. Returns failures. */
int run_mix(struct harness *h, unsigned int nr, bool discards);
/* One request alone, drained: bytes, 0, -errno or BAD_DATA. */
int one(struct harness *h, uint8_t op, uint64_t off, uint64_t len);
/*
 * The same on another queue of h's graph (uc_queue_init with id 1...),
 * driven on this thread until the request completes; h's model is kept.
 */
int one_on(struct harness *h, struct uc_queue *q, uint8_t op, uint64_t off, uint64_t len);
/* The node's ctl op, and its status line (static storage). */
int ctl(struct uc_node *n, const char *key, const char *value, char *reply, size_t len);
const char *status(struct uc_node *n);

/* A fresh scratch directory for one case (static storage). */
const char *case_dir(const char *name);
/* uc_graph_load() with its stderr captured in err. */
int load_capture(struct uc_graph *g, const char *path, char *err, size_t len);
/*
 * The config text must fail to load with -EINVAL and exactly one line
 * "FILE:LINE: ...needle..." at the line marked "#<", creating nothing.
 */
int expect_bad(const char *name, const char *text, const char *needle);
/* The config text loads without a word on stderr. */
int load_good(struct uc_graph *g, const char *name, const char *text);

/* ctl that must work; the reply must be want (if given) */
#define CTL_OK(n, key, value, want) do { \
	const char *v_ = (value), *w_ = (want); char r_[256]; \
	int ret_ = ctl(n, key, v_, r_, sizeof(r_)); \
	CHECK(!ret_, "ctl %s %s = %d: %s", key, v_ ? v_ : "(get)", ret_, r_); \
	CHECK(!w_ || !strcmp(r_, w_), "ctl %s: reply \"%s\", want \"%s\"", key, r_, w_); \
	} while (0)


#endif
