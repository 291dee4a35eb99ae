/* SPDX-License-Identifier: MIT */
/*
 * The fault layer: config validation, injected errors (op, range, after),
 * the delay timer, runtime ctl, and data correctness through it, alone and
 * nested in stripes. Driven like unit-engine.c: synthetic requests on a real
 * io_uring over temp files, against an in-memory model of the volume.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "fault.h"
#include "graph.h"
#include "io.h"
#include "harness.h"
#include "testlib.h"

#define K	1024ULL
#define M	(1024 * K)

#define FAULT(extra) \
	"device = { max_io = \"64K\"; };\n" \
	"volume = {\n" \
	"  type = \"fault\";\n" \
	extra \
	"  children = ( { type = \"file\"; path = \"a.img\"; size = \"4M\"; } );\n" \
	"};\n"

static int test_config_errors(void)
{
	static const struct { const char *name, *needle, *text; } cases[] = {
		{ "errors_value", "errors must be \"none\", \"read\", \"write\" or \"all\"",
		  FAULT("  errors = \"sometimes\"; #<\n") },
		{ "errors_case", "'Read'", FAULT("  errors = \"Read\"; #<\n") },
		{ "errors_type", "errors must be a string", FAULT("  errors = 1; #<\n") },
		{ "range_no_plus", "bad range '1M'", FAULT("  ranges = ( \"1M\" ); #<\n") },
		{ "range_bad_size", "bad range '0+1Q'", FAULT("  ranges = ( \"0+1Q\" ); #<\n") },
		{ "range_bad_offset", "bad range", FAULT("  ranges = ( \"x+1M\" ); #<\n") },
		{ "range_empty", "range '1M+0' is empty", FAULT("  ranges = ( \"1M+0\" ); #<\n") },
		{ "range_beyond", "range '3M+2M' ends beyond the child's 4M",
		  FAULT("  ranges = ( \"0+1M\", \"3M+2M\" ); #<\n") },
		{ "range_offset_beyond", "beyond", FAULT("  ranges = ( \"5M+4K\" ); #<\n") },
		{ "range_overflow", "beyond",
		  FAULT("  ranges = ( \"1+18446744073709551615\" ); #<\n") },
		{ "range_multiline", "bad range '64K-4K'",
		  FAULT("  ranges = ( #<\n    \"0+4K\",\n    \"64K-4K\"\n  );\n") },
		{ "ranges_empty_list", "ranges is empty", FAULT("  ranges = ( ); #<\n") },
		{ "ranges_too_many", "at most 16 ranges",
		  FAULT("  ranges = ( \"0+1\", \"1+1\", \"2+1\", \"3+1\", \"4+1\", \"5+1\", \"6+1\", #<\n"
			"    \"7+1\", \"8+1\", \"9+1\", \"10+1\", \"11+1\", \"12+1\", \"13+1\", \"14+1\",\n"
			"    \"15+1\", \"16+1\" );\n") },
		{ "range_not_string", "strings", FAULT("  ranges = ( 4096 ); #<\n") },
		{ "ranges_int", "ranges must be a list", FAULT("  ranges = 5; #<\n") },
		{ "ranges_string_beyond", "range '9M+1K' ends beyond",
		  FAULT("  ranges = \"0+1M,9M+1K\"; #<\n") },
		{ "ranges_string_too_many", "at most 16",
		  FAULT("  ranges = \"0+1,1+1,2+1,3+1,4+1,5+1,6+1,7+1,8+1,9+1,10+1,11+1,12+1,13+1,14+1,15+1,16+1\"; #<\n") },
		{ "after_negative", "after must be 0 or more", FAULT("  after = -1; #<\n") },
		{ "after_string", "after must be an integer", FAULT("  after = \"10\"; #<\n") },
		{ "delay_11s", "delay '11s' is over 10s", FAULT("  delay = \"11s\"; #<\n") },
		{ "delay_10001ms", "over 10s", FAULT("  delay = \"10001ms\"; #<\n") },
		{ "delay_huge", "over 10s", FAULT("  delay = \"99999999999999999us\"; #<\n") },
		{ "delay_overflow", "bad delay", FAULT("  delay = \"99999999999999999999999s\"; #<\n") },
		{ "delay_no_unit", "bad delay '5'", FAULT("  delay = \"5\"; #<\n") },
		{ "delay_space", "bad delay", FAULT("  delay = \"5 ms\"; #<\n") },
		{ "delay_unit", "bad delay", FAULT("  delay = \"5min\"; #<\n") },
		{ "delay_negative", "bad delay", FAULT("  delay = \"-1ms\"; #<\n") },
		{ "delay_int", "delay must be a string", FAULT("  delay = 5; #<\n") },
		{ "unflushed_max_small", "fault: unflushed_max must be from 2 x max_io to 16G",
		  FAULT("  lose_unflushed = true; unflushed_max = \"64K\"; #<\n") },
		{ "unflushed_max_huge", "unflushed_max must be",
		  FAULT("  unflushed_max = \"17G\"; #<\n") },
		{ "lose_unflushed_type", "lose_unflushed must be true or false",
		  FAULT("  lose_unflushed = \"yes\"; #<\n") },
		{ "unknown_key", "unknown key 'eror'", FAULT("  eror = \"read\"; #<\n") },
		{ "two_children", "fault: needs exactly one child, has 2",
		  "volume = {\n"
		  "  type = \"fault\";\n"
		  "  children = ( #<\n"
		  "    { type = \"file\"; path = \"a.img\"; size = \"1M\"; },\n"
		  "    { type = \"file\"; path = \"b.img\"; size = \"1M\"; }\n"
		  "  );\n"
		  "};\n" },
		{ "no_children", "children",
		  "volume = { #<\n"
		  "  type = \"fault\";\n"
		  "  errors = \"read\";\n"
		  "};\n" },
		{ "zero_children", "children",
		  "volume = {\n"
		  "  type = \"fault\";\n"
		  "  children = ( ); #<\n"
		  "};\n" },
		{ "bad_child", "unknown key 'sizes'",
		  "volume = {\n"
		  "  type = \"fault\";\n"
		  "  children = (\n"
		  "    { type = \"file\"; path = \"a.img\"; sizes = \"1M\"; } #<\n"
		  "  );\n"
		  "};\n" },
		{ "nested_in_stripe", "errors must be",
		  "volume = {\n"
		  "  type = \"stripe\";\n"
		  "  children = (\n"
		  "    { type = \"file\"; path = \"a.img\"; size = \"1M\"; },\n"
		  "    { type = \"fault\";\n"
		  "      errors = \"often\"; #<\n"
		  "      children = ( { type = \"file\"; path = \"b.img\"; size = \"1M\"; } ); }\n"
		  "  );\n"
		  "};\n" },
	};
	int fails = 0;

	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		fails += expect_bad(cases[i].name, cases[i].text, cases[i].needle) != T_PASS;
	return fails ? T_FAIL : T_PASS;
}

/* Good configs: the child's geometry, settings as status shows them. */
static int test_config_good(void)
{
	static const struct { const char *name, *text, *status; } cases[] = {
		{ "defaults", FAULT(""),
		  "errors=none ranges=all after=0 delay=0 injected=0 passed=0" },
		{ "all_keys",
		  FAULT("  errors = \"write\"; ranges = ( \"0+1M\", \"64K+4K\", \"4092K+4K\" );\n"
			"  after = 3; delay = \"5ms\"; lose_unflushed = false;\n"),
		  NULL },
		{ "all_keys2",
		  FAULT("  errors = \"write\"; ranges = ( \"0+1M\", \"65536+4096\", \" 1000 + 24 \" );\n"
			"  after = 3; delay = \"5ms\";\n"),
		  "errors=write ranges=0+1M,64K+4K,1000+24 after=3 delay=5ms injected=0 passed=0" },
		{ "string_ranges",
		  FAULT("  errors = \"all\"; ranges = \"1M+1M,4095+1\"; delay = \"10s\";\n"),
		  "errors=all ranges=1M+1M,4095+1 after=0 delay=10s injected=0 passed=0" },
		{ "ranges_all", FAULT("  errors = \"read\"; ranges = \"all\"; delay = \"200us\";\n"),
		  "errors=read ranges=all after=0 delay=200us injected=0 passed=0" },
		{ "sixteen_ranges",
		  FAULT("  errors = \"read\"; ranges = \"0+1,1+1,2+1,3+1,4+1,5+1,6+1,7+1,8+1,9+1,10+1,11+1,12+1,13+1,14+1,4194303+1\";\n"),
		  "errors=read ranges=0+1,1+1,2+1,3+1,4+1,5+1,6+1,7+1,8+1,9+1,10+1,11+1,12+1,13+1,14+1,4194303+1 after=0 delay=0 injected=0 passed=0" },
		{ "delay_units", FAULT("  delay = \"1500us\";\n"),
		  "errors=none ranges=all after=0 delay=1500us injected=0 passed=0" },
		{ "delay_ns", FAULT("  delay = \"7ns\"; after = 12345678901L;\n"),
		  "errors=none ranges=all after=12345678901 delay=7ns injected=0 passed=0" },
		{ "whole_device", FAULT("  errors = \"read\"; ranges = ( \"0+4M\" ); delay = \"0ms\";\n"),
		  "errors=read ranges=0+4M after=0 delay=0 injected=0 passed=0" },
	};
	struct uc_graph g;
	char st[512];

	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (load_good(&g, cases[i].name, cases[i].text))
			return T_FAIL;
		CHECK(g.root->size == 4 * M && g.size == 4 * M, "%s: size %llu", cases[i].name,
		      (unsigned long long)g.root->size);
		CHECK(g.root->can_discard == g.root->children[0]->can_discard, "%s: can_discard",
		      cases[i].name);
		CHECK(g.zero_copy, "%s: fault must keep zero copy", cases[i].name);
		CHECK(!g.nr_internal || g.nr_internal == 4, "%s: internal tags %u", cases[i].name,
		      g.nr_internal);
		g.root->ops->status(g.root, st, sizeof(st));
		CHECK(!cases[i].status || !strcmp(st, cases[i].status), "%s: status \"%s\", want \"%s\"",
		      cases[i].name, st, cases[i].status);
		uc_graph_free(&g);
	}

	/* lose_unflushed must see the data: the copy path */
	if (load_good(&g, "lose_unflushed", FAULT("  lose_unflushed = true; unflushed_max = \"128K\";\n")))
		return T_FAIL;
	CHECK(!g.zero_copy, "lose_unflushed keeps zero copy");
	uc_graph_free(&g);

	/* hints and size come from the child, whatever it is */
	if (load_good(&g, "over_stripe",
		"volume = { type = \"fault\"; children = (\n"
		"  { type = \"stripe\"; chunk = \"16K\"; children = (\n"
		"    { type = \"file\"; path = \"a.img\"; size = \"1M\"; },\n"
		"    { type = \"file\"; path = \"b.img\"; size = \"1M\"; } ); } ); };\n"))
		return T_FAIL;
	CHECK(g.root->size == 2 * M, "size %llu", (unsigned long long)g.root->size);
	CHECK(g.root->io_min == 16 * K && g.root->io_opt == 32 * K, "io_min %u io_opt %u",
	      g.root->io_min, g.root->io_opt);
	CHECK(g.root->can_discard == g.root->children[0]->can_discard, "can_discard");
	uc_graph_free(&g);
	return T_PASS;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static const char *const op_names[] = { "read", "write", "flush", "discard", "?", "zeroes" };

struct step {
	uint8_t op;
	uint64_t off, len;
	int want;		/* 0: success (len bytes for READ/WRITE), else -errno */
};

static int run_steps(struct harness *h, const char *what, const struct step *st, unsigned int nr)
{
	for (unsigned int i = 0; i < nr; i++) {
		int res = one(h, st[i].op, st[i].off, st[i].len);
		int want = st[i].want ? st[i].want :
			   (st[i].op == UC_OP_READ || st[i].op == UC_OP_WRITE) ? (int)st[i].len : 0;

		CHECK(res == want, "%s: step %u: %s %llu+%llu: result %d, want %d", what, i,
		      op_names[st[i].op], (unsigned long long)st[i].off,
		      (unsigned long long)st[i].len, res, want);
	}
	return T_PASS;
}

/* ---- runtime behaviour ---- */

/* errors=read: reads overlapping a range fail whole, everything else passes. */
static int test_errors_read(void)
{
	static const struct step st[] = {
		{ UC_OP_READ, 0, 64 * K, 0 },
		{ UC_OP_READ, 60 * K, 4 * K, 0 },		/* ends where the range starts */
		{ UC_OP_READ, 60 * K, 4 * K + 512, -EIO },
		{ UC_OP_READ, 64 * K, 512, -EIO },
		{ UC_OP_READ, 68 * K - 512, 512, -EIO },
		{ UC_OP_READ, 68 * K, 4 * K, 0 },		/* starts where it ends */
		{ UC_OP_READ, 32 * K, 64 * K, -EIO },		/* covers it */
		{ UC_OP_READ, 1 * M - 512, 512, 0 },
		{ UC_OP_READ, 1 * M, 512, -EIO },		/* a one-sector range */
		{ UC_OP_READ, 1 * M - 4 * K, 8 * K, -EIO },
		{ UC_OP_READ, 1 * M + 512, 4 * K, 0 },
		{ UC_OP_WRITE, 64 * K, 4 * K, 0 },		/* writes pass, in range too */
		{ UC_OP_WRITE, 1 * M - 4 * K, 8 * K, 0 },
		{ UC_OP_WRITE_ZEROES, 64 * K, 4 * K, 0 },
		{ UC_OP_WRITE, 64 * K, 4 * K, 0 },
		{ UC_OP_DISCARD, 1 * M, 4 * K, 0 },
		{ UC_OP_FLUSH, 0, 0, 0 },
		{ UC_OP_READ, 4 * M - 64 * K, 64 * K, 0 },
	};
	struct harness h;
	struct uc_node *f;

	if (harness_open(&h, conf("read.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"fault\"; errors = \"read\"; ranges = ( \"64K+4K\", \"1M+512\" );\n"
		"  children = ( { type = \"file\"; path = \"read.img\"; size = \"4M\"; } ); };\n")))
		return T_FAIL;
	f = h.g.root;
	for (uint64_t off = 0; off < h.g.size; off += 64 * K)
		CHECK(one(&h, UC_OP_WRITE, off, 64 * K) == 64 * K, "fill write at %llu",
		      (unsigned long long)off);
	if (run_steps(&h, "errors=read", st, sizeof(st) / sizeof(st[0])))
		return T_FAIL;
	CHECK(!strcmp(status(f), "errors=read ranges=64K+4K,1M+512 after=0 delay=0 injected=6 passed=76"),
	      "status: %s", status(f));
	/* the writes in the ranges did land: turn errors off and read them */
	CTL_OK(f, "errors", "none", "errors=none");
	CHECK(one(&h, UC_OP_READ, 0, 64 * K) == 64 * K, "read 0+64K");
	CHECK(one(&h, UC_OP_READ, 64 * K, 64 * K) == 64 * K, "read 64K+64K");
	CHECK(one(&h, UC_OP_READ, 1 * M - 4 * K, 64 * K) == 64 * K, "read 1M-4K+64K");
	CHECK(!h.q.nr_busy && !h.q.nr_member, "engine not idle");
	harness_close(&h);
	return T_PASS;
}

/* errors=write: WRITE, WRITE_ZEROES and DISCARD fail and change nothing. */
static int test_errors_write(void)
{
	static const struct step st[] = {
		{ UC_OP_WRITE, 0, 64 * K, 0 },
		{ UC_OP_WRITE, 1 * M - 4 * K, 4 * K, 0 },
		{ UC_OP_WRITE, 1 * M - 4 * K, 8 * K, -EIO },
		{ UC_OP_WRITE, 2 * M - 512, 512, -EIO },
		{ UC_OP_WRITE, 2 * M, 64 * K, 0 },
		{ UC_OP_WRITE_ZEROES, 1 * M, 4 * K, -EIO },
		{ UC_OP_DISCARD, 1 * M + 64 * K, 4 * K, -EIO },
		{ UC_OP_DISCARD, 2 * M, 4 * K, 0 },
		{ UC_OP_READ, 1 * M - 4 * K, 64 * K, 0 },	/* reads pass: old data there */
		{ UC_OP_FLUSH, 0, 0, 0 },
	};
	struct harness h;
	struct uc_node *f;

	if (harness_open(&h, conf("write.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"fault\"; name = \"w\"; errors = \"write\"; ranges = ( \"1M+1M\" );\n"
		"  children = ( { type = \"file\"; path = \"write.img\"; size = \"4M\"; } ); };\n")))
		return T_FAIL;
	f = uc_graph_find(&h.g, "w");
	CHECK(f == h.g.root, "node by name");
	if (run_steps(&h, "errors=write", st, sizeof(st) / sizeof(st[0])))
		return T_FAIL;
	/* the whole device, then the data outside the old range is still right */
	CTL_OK(f, "ranges", "all", "ranges=all");
	CHECK(one(&h, UC_OP_WRITE, 3 * M, 4 * K) == -EIO, "write anywhere fails");
	CHECK(one(&h, UC_OP_FLUSH, 0, 0) == 0, "flush passes");
	CTL_OK(f, "errors", "none", NULL);
	for (uint64_t off = 0; off < h.g.size; off += 64 * K)
		CHECK(one(&h, UC_OP_READ, off, 64 * K) == 64 * K, "read back at %llu",
		      (unsigned long long)off);
	harness_close(&h);
	return T_PASS;
}

/* errors=all: every op; a FLUSH (no range) only while the whole device is faulty. */
static int test_errors_all(void)
{
	static const struct step all[] = {
		{ UC_OP_READ, 0, 4 * K, -EIO },
		{ UC_OP_WRITE, 0, 4 * K, -EIO },
		{ UC_OP_FLUSH, 0, 0, -EIO },
		{ UC_OP_DISCARD, 0, 4 * K, -EIO },
		{ UC_OP_WRITE_ZEROES, 1 * M, 4 * K, -EIO },
	};
	static const struct step ranged[] = {
		{ UC_OP_READ, 0, 4 * K, -EIO },
		{ UC_OP_WRITE, 4 * K, 4 * K, 0 },
		{ UC_OP_READ, 4 * K, 4 * K, 0 },
		{ UC_OP_FLUSH, 0, 0, 0 },
		{ UC_OP_WRITE, 3 * M, 8 * K, -EIO },
		{ UC_OP_DISCARD, 3 * M, 4 * K, -EIO },
		{ UC_OP_DISCARD, 3 * M + 4 * K, 4 * K, 0 },
	};
	struct harness h;

	if (harness_open(&h, conf("all.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"fault\"; errors = \"all\";\n"
		"  children = ( { type = \"file\"; path = \"all.img\"; size = \"4M\"; } ); };\n")))
		return T_FAIL;
	if (run_steps(&h, "errors=all", all, sizeof(all) / sizeof(all[0])))
		return T_FAIL;
	CTL_OK(h.g.root, "ranges", "0+4K,3M+4K", NULL);
	if (run_steps(&h, "errors=all ranges=0+4K,3M+4K", ranged, sizeof(ranged) / sizeof(ranged[0])))
		return T_FAIL;
	CHECK(strstr(status(h.g.root), "injected=8 passed=4"), "status: %s",
	      status(h.g.root));
	harness_close(&h);
	return T_PASS;
}

/* after=N: the first N requests (any op) pass, then errors start. */
static int test_after(void)
{
	static const struct step first[] = {
		{ UC_OP_WRITE, 0, 4 * K, 0 },
		{ UC_OP_READ, 0, 4 * K, 0 },
		{ UC_OP_FLUSH, 0, 0, 0 },
		{ UC_OP_DISCARD, 8 * K, 4 * K, 0 },
		{ UC_OP_READ, 1 * M, 4 * K, 0 },
		{ UC_OP_READ, 0, 4 * K, -EIO },
		{ UC_OP_WRITE, 0, 4 * K, -EIO },
		{ UC_OP_FLUSH, 0, 0, -EIO },
	};
	static const struct step two[] = {
		{ UC_OP_READ, 0, 4 * K, 0 },
		{ UC_OP_WRITE, 4 * K, 4 * K, 0 },
		{ UC_OP_READ, 4 * K, 4 * K, -EIO },
	};
	struct harness h;
	struct uc_node *f;

	if (harness_open(&h, conf("after.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"fault\"; errors = \"all\"; after = 5;\n"
		"  children = ( { type = \"file\"; path = \"after.img\"; size = \"4M\"; } ); };\n")))
		return T_FAIL;
	f = h.g.root;
	if (run_steps(&h, "after=5", first, sizeof(first) / sizeof(first[0])))
		return T_FAIL;
	/* reset: counters to 0, and the count for after starts again */
	CTL_OK(f, "reset", NULL, "reset: injected=3 passed=5");
	CHECK(strstr(status(f), "after=5 delay=0 injected=0 passed=0"), "status: %s", status(f));
	if (run_steps(&h, "after=5 again", first, sizeof(first) / sizeof(first[0])))
		return T_FAIL;
	/* a new after also counts from now */
	CTL_OK(f, "after", "2", "after=2");
	if (run_steps(&h, "after=2", two, sizeof(two) / sizeof(two[0])))
		return T_FAIL;
	CTL_OK(f, "after", NULL, "after=2");
	CTL_OK(f, "after", "0", "after=0");
	CHECK(one(&h, UC_OP_READ, 0, 4 * K) == -EIO, "after=0");
	CHECK(strstr(status(f), "injected=5 passed=7"), "status: %s", status(f));
	harness_close(&h);
	return T_PASS;
}

/* delay: every request, failing ones too, takes at least that long. */
static int test_delay(void)
{
	struct harness h;
	struct uc_node *f;
	uint64_t t0, dt;

	if (harness_open(&h, conf("delay.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"fault\"; delay = \"20ms\";\n"
		"  children = ( { type = \"file\"; path = \"delay.img\"; size = \"4M\"; } ); };\n")))
		return T_FAIL;
	f = h.g.root;
	t0 = now_ns();
	CHECK(one(&h, UC_OP_WRITE, 0, 64 * K) == 64 * K, "write");
	dt = now_ns() - t0;
	CHECK(dt >= 20000000, "write took %llu ns, want >= 20 ms", (unsigned long long)dt);
	t0 = now_ns();
	CHECK(one(&h, UC_OP_READ, 0, 64 * K) == 64 * K, "read");
	dt = now_ns() - t0;
	CHECK(dt >= 20000000, "read took %llu ns", (unsigned long long)dt);
	t0 = now_ns();
	CHECK(one(&h, UC_OP_FLUSH, 0, 0) == 0, "flush");
	dt = now_ns() - t0;
	CHECK(dt >= 20000000, "flush took %llu ns", (unsigned long long)dt);

	/* an injected error comes after the delay too */
	CTL_OK(f, "errors", "read", NULL);
	t0 = now_ns();
	CHECK(one(&h, UC_OP_READ, 0, 4 * K) == -EIO, "read fails");
	dt = now_ns() - t0;
	CHECK(dt >= 20000000, "failed read took %llu ns", (unsigned long long)dt);
	CTL_OK(f, "errors", "none", NULL);

	/* a full queue of delayed requests: each waits, data stays right */
	CTL_OK(f, "delay", "30ms", "delay=30ms");
	t0 = now_ns();
	h.lax = false;
	for (unsigned int i = 0; i < DEPTH; i++)
		issue(&h, i % 2 ? UC_OP_READ : UC_OP_WRITE, 0, i * 64 * K, 64 * K);
	CHECK(!harness_drain(&h) && !h.failures, "queue of delayed requests");
	dt = now_ns() - t0;
	CHECK(dt >= 30000000, "%d requests took %llu ns, want >= 30 ms", DEPTH,
	      (unsigned long long)dt);

	CTL_OK(f, "delay", "0", "delay=0");
	CHECK(one(&h, UC_OP_READ, 0, 64 * K) == 64 * K, "read without delay");
	CHECK(!h.q.nr_busy && !h.q.nr_member, "engine not idle");
	harness_close(&h);
	return T_PASS;
}

/* ctl: settings change at runtime; bad values change nothing. */
static int test_ctl(void)
{
	static const struct { const char *key, *value; int err; } bad[] = {
		{ "errors", "sometimes", -EINVAL },
		{ "errors", "", -EINVAL },
		{ "ranges", "1M", -EINVAL },
		{ "ranges", "", -EINVAL },
		{ "ranges", "0+1M,", -EINVAL },
		{ "ranges", "0+1M,,4M+1", -EINVAL },
		{ "ranges", "0+8M", -EINVAL },
		{ "ranges", "4M+1", -EINVAL },
		{ "ranges", "1M+0", -EINVAL },
		{ "ranges", "0+1,1+1,2+1,3+1,4+1,5+1,6+1,7+1,8+1,9+1,10+1,11+1,12+1,13+1,14+1,15+1,16+1",
		  -EINVAL },
		{ "ranges", "0+1M,all", -EINVAL },
		{ "after", "-1", -EINVAL },
		{ "after", "ten", -EINVAL },
		{ "after", "10x", -EINVAL },
		{ "after", "", -EINVAL },
		{ "after", "99999999999999999999999", -EINVAL },
		{ "delay", "11s", -EINVAL },
		{ "delay", "5", -EINVAL },
		{ "delay", "", -EINVAL },
		{ "delay", "1h", -EINVAL },
		{ "reset", "now", -EINVAL },
		{ "lose_unflushed", "true", -EINVAL },
		{ "crash", "on", -EINVAL },	/* needs lose_unflushed on */
		{ "crash", "yes", -EINVAL },
		{ "colour", "red", -EINVAL },
	};
	struct harness h;
	struct uc_node *f;
	char before[512], reply[256];

	if (harness_open(&h, conf("ctl.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"fault\";\n"
		"  children = ( { type = \"file\"; path = \"ctl.img\"; size = \"4M\"; } ); };\n")))
		return T_FAIL;
	f = h.g.root;
	CHECK(f->ops->ctl, "fault has a ctl op");
	CHECK(one(&h, UC_OP_WRITE, 0, 64 * K) == 64 * K, "write");

	CTL_OK(f, "errors", " write ", "errors=write");	/* as the admin command line gives it */
	CHECK(one(&h, UC_OP_WRITE, 0, 4 * K) == -EIO, "write fails after ctl errors=write");
	CHECK(one(&h, UC_OP_READ, 0, 4 * K) == 4 * K, "read passes");
	CTL_OK(f, "ranges", " 1M+1M , 3M+4K", "ranges=1M+1M,3M+4K");
	CHECK(one(&h, UC_OP_WRITE, 0, 4 * K) == 4 * K, "write outside the ranges");
	CHECK(one(&h, UC_OP_WRITE, 3 * M + 2 * K, 4 * K) == -EIO, "write in 3M+4K");
	CTL_OK(f, "errors", "read", "errors=read");
	CHECK(one(&h, UC_OP_WRITE, 3 * M + 2 * K, 4 * K) == 4 * K, "write now passes");
	CHECK(one(&h, UC_OP_READ, 1 * M, 512) == -EIO, "read in 1M+1M");
	CTL_OK(f, "errors", NULL, "errors=read");
	CTL_OK(f, "ranges", NULL, "ranges=1M+1M,3M+4K");
	CTL_OK(f, "delay", NULL, "delay=0");
	CTL_OK(f, "delay", "1500us", "delay=1500us");
	CTL_OK(f, "delay", "2000us", "delay=2ms");
	CTL_OK(f, "delay", "10s", "delay=10s");
	CTL_OK(f, "delay", "0ms", "delay=0");
	CTL_OK(f, "after", "0", "after=0");

	snprintf(before, sizeof(before), "%s", status(f));
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret;

		reply[0] = 0;
		ret = ctl(f, bad[i].key, bad[i].value, reply, sizeof(reply));
		CHECK(ret == bad[i].err, "ctl %s '%s' = %d, want %d (%s)", bad[i].key, bad[i].value,
		      ret, bad[i].err, reply);
		CHECK(reply[0] && !strchr(reply, '\n'), "ctl %s '%s': reply not one line: \"%s\"",
		      bad[i].key, bad[i].value, reply);
		CHECK(!strcmp(before, status(f)), "ctl %s '%s' changed settings: %s -> %s",
		      bad[i].key, bad[i].value, before, status(f));
	}
	CTL_OK(f, "lose_unflushed", NULL, "lose_unflushed=off crash=off unflushed=0");
	CHECK(ctl(f, "errors", "bogus", reply, sizeof(reply)) == -EINVAL && strstr(reply, "bogus"),
	      "reply names the value: %s", reply);
	/* a short reply buffer still gets a terminated line */
	CHECK(!ctl(f, "ranges", NULL, reply, 8) && strlen(reply) == 7, "short reply: %s", reply);

	CTL_OK(f, "ranges", "all", "ranges=all");
	CTL_OK(f, "errors", "none", NULL);
	CHECK(one(&h, UC_OP_READ, 0, 64 * K) == 64 * K, "read back");
	CHECK(one(&h, UC_OP_READ, 3 * M, 64 * K) == 64 * K, "read back");
	harness_close(&h);
	return T_PASS;
}

/* errors=none: data goes through untouched, with and without a delay. */
static int test_mix(void)
{
	struct harness h;
	int fails;

	if (harness_open(&h, conf("mix.conf",
		"device = { max_io = \"128K\"; };\n"
		"volume = { type = \"fault\"; errors = \"none\";\n"
		"  children = ( { type = \"file\"; path = \"mix.img\"; size = \"4M\"; } ); };\n")))
		return T_FAIL;
	fails = run_mix(&h, 3000, true);
	CTL_OK(h.g.root, "delay", "100us", NULL);
	fails += run_mix(&h, 1500, true);
	printf("  mix: %llu requests, %d failures; %s\n", (unsigned long long)h.nr_reqs, fails,
	       status(h.g.root));
	CHECK(!fails, "failures");
	CHECK(strstr(status(h.g.root), "injected=0"), "%s", status(h.g.root));
	harness_close(&h);
	return T_PASS;
}

struct hammer {
	struct uc_node *f;
	atomic_bool stop;
	unsigned long rounds;
	int err;
};

/* the admin thread: settings that never fail a request, changed nonstop */
static void *hammer_fn(void *arg)
{
	static const char *const ranges[] = { "0+1M", "all", "4K+4K,1M+1M,3M+512", "2M+2M" };
	static const char *const delays[] = { "0", "50us", "0", "10us" };
	struct hammer *hm = arg;
	char reply[256], st[512];

	while (!atomic_load(&hm->stop)) {
		unsigned long i = hm->rounds++;

		hm->err |= hm->f->ops->ctl(hm->f, "ranges", ranges[i % 4], reply, sizeof(reply));
		hm->err |= hm->f->ops->ctl(hm->f, "delay", delays[i % 4], reply, sizeof(reply));
		hm->err |= hm->f->ops->ctl(hm->f, "after", i % 2 ? "3" : "0", reply, sizeof(reply));
		if (i % 16 == 0)
			hm->err |= hm->f->ops->ctl(hm->f, "reset", NULL, reply, sizeof(reply));
		hm->f->ops->status(hm->f, st, sizeof(st));
		if (!strstr(st, "errors=none"))
			hm->err |= 1;
		usleep(100);
	}
	return NULL;
}

/* ctl on another thread while the queue serves: no request notices. */
static int test_ctl_concurrent(void)
{
	struct harness h;
	struct hammer hm = { 0 };
	pthread_t th;
	int fails;

	if (harness_open(&h, conf("hammer.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"fault\";\n"
		"  children = ( { type = \"file\"; path = \"hammer.img\"; size = \"4M\"; } ); };\n")))
		return T_FAIL;
	hm.f = h.g.root;
	CHECK(!pthread_create(&th, NULL, hammer_fn, &hm), "pthread_create");
	fails = run_mix(&h, 3000, true);
	atomic_store(&hm.stop, true);
	pthread_join(th, NULL);
	printf("  ctl_concurrent: %lu ctl rounds during %llu requests, %d failures\n", hm.rounds,
	       (unsigned long long)h.nr_reqs, fails);
	CHECK(!fails && !hm.err, "failures %d, ctl errors %d", fails, hm.err);
	harness_close(&h);
	return T_PASS;
}

/*
 * fault over a stripe whose legs are a fault over a file and a fault over a
 * stripe: the mix with delays on every level, then one leg's errors only
 * hit the volume ranges that map onto it.
 */
static int test_nested(void)
{
	static const struct step st[] = {
		{ UC_OP_READ, 0, 4 * K, -EIO },		/* chunk 0: leg 0, offset 0 */
		{ UC_OP_READ, 4 * K, 4 * K, 0 },	/* chunk 1: leg 1 */
		{ UC_OP_READ, 8 * K, 4 * K, 0 },	/* chunk 2: leg 0, offset 4K */
		{ UC_OP_READ, 2 * K, 4 * K, -EIO },	/* straddles: the whole request fails */
		{ UC_OP_READ, 0, 64 * K, -EIO },
		{ UC_OP_WRITE, 0, 64 * K, 0 },		/* errors=read: writes pass */
		{ UC_OP_READ, 4 * K, 60 * K, 0 },
		{ UC_OP_READ, 1 * M, 64 * K, -EIO },	/* leg 0 offset 512K */
		{ UC_OP_READ, 1 * M + 4 * K, 4 * K, 0 },
	};
	struct harness h;
	struct uc_node *f0, *f1;
	int fails;

	if (harness_open(&h, conf("nested.conf",
		"device = { max_io = \"128K\"; };\n"
		"volume = { type = \"fault\"; name = \"top\"; delay = \"50us\"; children = (\n"
		" { type = \"stripe\"; chunk = \"4K\"; children = (\n"
		"   { type = \"fault\"; name = \"f0\"; delay = \"1ms\"; children = (\n"
		"     { type = \"file\"; path = \"n0.img\"; size = \"2M\"; } ); },\n"
		"   { type = \"fault\"; name = \"f1\"; children = (\n"
		"     { type = \"stripe\"; chunk = \"8K\"; children = (\n"
		"       { type = \"file\"; path = \"n1.img\"; size = \"1M\"; },\n"
		"       { type = \"fault\"; name = \"f2\"; delay = \"20us\"; children = (\n"
		"         { type = \"file\"; path = \"n2.img\"; size = \"1M\"; } ); } ); } ); } ); } ); };\n")))
		return T_FAIL;
	f0 = uc_graph_find(&h.g, "f0");
	f1 = uc_graph_find(&h.g, "f1");
	CHECK(f0 && f1 && h.g.size == 4 * M, "graph");
	fails = run_mix(&h, 2000, true);
	printf("  nested: %llu requests, %d failures\n", (unsigned long long)h.nr_reqs, fails);
	CHECK(!fails, "mix through nested faults");

	CTL_OK(f0, "errors", "read", NULL);
	CTL_OK(f0, "ranges", "0+4K,512K+4K", NULL);
	CTL_OK(f0, "reset", NULL, NULL);
	if (run_steps(&h, "nested", st, sizeof(st) / sizeof(st[0])))
		return T_FAIL;
	CHECK(strstr(status(f0), "injected=4"), "f0: %s", status(f0));
	CHECK(strstr(status(f1), "injected=0"), "f1: %s", status(f1));
	/* a failing leg fails the volume request, the other leg still finishes */
	CTL_OK(f0, "errors", "write", NULL);
	CHECK(one(&h, UC_OP_WRITE, 0, 128 * K) == -EIO, "striped write over a failing leg");
	CTL_OK(f0, "errors", "none", NULL);
	CHECK(one(&h, UC_OP_READ, 8 * K, 4 * K) == 4 * K, "leg 0 kept its data");
	/* leg 1's half of that write landed: make the model whole again */
	CHECK(one(&h, UC_OP_WRITE, 0, 128 * K) == 128 * K, "rewrite");
	h.lax = false;
	fails = run_mix(&h, 500, true);
	CHECK(!fails, "mix after the errors");
	harness_close(&h);
	return T_PASS;
}


/* ---- lose_unflushed ---- */

#include "wcache.h"

#define WB_RUN_TEST	(256U << 10)

/* wcache against a model: writes, removes, snapshots written back in pieces, drops. */
static int test_wcache(void)
{
	enum { SIZE = 1 << 20, NS = SIZE / WC_SECTOR };
	uint8_t *disk = calloc(1, SIZE), *model = calloc(1, SIZE), *durable = calloc(1, SIZE);
	uint8_t *in_cur = calloc(1, NS), *in_fl = calloc(1, NS), *wrote = calloc(1, NS);
	uint8_t *buf = malloc(SIZE), *run = malloc(64 * K);
	struct wcache c;
	bool flushing = false;
	unsigned long nr_runs = 0, nr_full = 0;

	CHECK(disk && model && durable && in_cur && in_fl && wrote && buf && run, "alloc");
	CHECK(!wcache_init(&c, 256 * K), "init");
	for (unsigned int i = 0; i < 20000; i++) {
		unsigned int pick = t_rand() % 100;
		uint64_t len = WC_SECTOR * (1 + t_rand() % 40), off;

		off = WC_SECTOR * (t_rand() % ((SIZE - len) / WC_SECTOR + 1));
		if (pick < 50) {
			struct iovec iov[3];
			uint64_t a = len / 3 / WC_SECTOR * WC_SECTOR, b = len / 2 / WC_SECTOR * WC_SECTOR;

			fill(buf, len);
			/* the data in up to three pieces, as a request's iovecs come */
			iov[0] = (struct iovec){ buf, a };
			iov[1] = (struct iovec){ buf + a, b };
			iov[2] = (struct iovec){ buf + a + b, len - a - b };
			if (wcache_write(&c, off, len, iov, 3) == -ENOSPC) {
				/* full: what a flush epoch does */
				nr_full++;
				if (!flushing) {
					wcache_snapshot(&c);
					memcpy(in_fl, in_cur, NS);
					memset(in_cur, 0, NS);
				}
				goto write_back;
			}
			memcpy(model + off, buf, len);
			memset(in_cur + off / WC_SECTOR, 1, len / WC_SECTOR);
		} else if (pick < 60 && !flushing) {
			/* a discard: out of the cache, zeroes on the child */
			wcache_remove(&c, off, len);
			memset(model + off, 0, len);
			memset(disk + off, 0, len);
			memset(durable + off, 0, len);
			memset(in_cur + off / WC_SECTOR, 0, len / WC_SECTOR);
		} else if (pick < 70 && !flushing) {
			wcache_snapshot(&c);
			flushing = true;
			for (unsigned int k = 0; k < NS; k++)
				in_fl[k] = in_cur[k];
			memset(in_cur, 0, NS);
			memset(wrote, 0, NS);
		} else if (pick < 80 && flushing) {
			uint64_t roff, rlen = wcache_next_run(&c, &roff, run, 64 * K);

			if (rlen) {
				CHECK(!(roff % WC_SECTOR) && !(rlen % WC_SECTOR) && roff + rlen <= SIZE &&
				      rlen <= 64 * K, "run %llu+%llu", (unsigned long long)roff,
				      (unsigned long long)rlen);
				memcpy(disk + roff, run, rlen);
				for (uint64_t k = roff / WC_SECTOR; k < (roff + rlen) / WC_SECTOR; k++) {
					CHECK(in_fl[k] && !wrote[k]++, "sector %llu written back %s",
					      (unsigned long long)k, in_fl[k] ? "twice" : "but not cached");
				}
				nr_runs++;
				continue;
			}
write_back:
			while ((rlen = wcache_next_run(&c, &roff, run, 64 * K))) {
				memcpy(disk + roff, run, rlen);
				nr_runs++;
			}
			/* a snapshot stays retired until the next one ends (reads may need it) */
			wcache_free_retired(&c);
			wcache_end_flush(&c);
			memset(in_fl, 0, NS);
			flushing = false;
			memcpy(durable, disk, SIZE);
			if (pick < 50) {
				i--;	/* retry the write that did not fit */
				continue;
			}
		} else if (pick < 81) {
			wcache_free_retired(&c);	/* its last reader is done */
		} else if (pick < 82 && !flushing) {
			/* power cut: the child holds what the last flush left */
			wcache_drop(&c);
			CHECK(!memcmp(disk, durable, SIZE), "after a drop the disk is not the flushed state");
			memcpy(model, disk, SIZE);
			memset(in_cur, 0, NS);
		} else {
			/* a read: the child's data with the cache laid over it */
			struct iovec iov[2] = { { buf, len / 2 / WC_SECTOR * WC_SECTOR } };

			iov[1] = (struct iovec){ buf + iov[0].iov_len, len - iov[0].iov_len };
			memcpy(buf, disk + off, len);
			wcache_overlay(&c, off, len, iov, 2);
			CHECK(!memcmp(buf, model + off, len), "read %llu+%llu differs from the model",
			      (unsigned long long)off, (unsigned long long)len);
		}
		{
			uint64_t held = 0;

			for (unsigned int k = 0; k < NS; k++)
				held += in_cur[k] + in_fl[k];
			CHECK(wcache_bytes(&c) == held * WC_SECTOR, "bytes %llu, want %llu",
			      (unsigned long long)wcache_bytes(&c), (unsigned long long)held * WC_SECTOR);
		}
	}
	printf("  wcache: %lu write-back runs, %lu times full\n", nr_runs, nr_full);
	CHECK(nr_full > 10 && nr_runs > 100, "the mix did not exercise the cache");
	wcache_free(&c);
	free(disk); free(model); free(durable); free(in_cur); free(in_fl); free(wrote); free(buf); free(run);
	return T_PASS;
}

/*
 * A flush epoch costs what the cache holds, not what it could hold: a
 * snapshot, its write-back and the retired map's release walk the blocks
 * in the map. They scanned every hash bucket, so a FLUSH after one 4K write
 * on a 256M cache visited 65536 buckets twice, under the cache lock, on a
 * queue thread (16G, the largest unflushed_max: 4M of them).
 */
static int test_wcache_epoch_cost(void)
{
	enum { EPOCHS = 20000 };
	uint64_t sizes[] = { 1 << 20, 256 << 20 }, off, len;
	double ms[2];
	uint8_t *buf = malloc(WB_RUN_TEST);
	struct timespec t0, t1;

	CHECK(buf, "alloc");
	memset(buf, 0x6b, WB_RUN_TEST);
	for (int k = 0; k < 2; k++) {
		struct wcache c;
		struct iovec iov = { buf, 4096 };

		CHECK(!wcache_init(&c, sizes[k]), "init %llu", (unsigned long long)sizes[k]);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (unsigned int i = 0; i < EPOCHS; i++) {
			/* one block written, then what a FLUSH does with it */
			CHECK(!wcache_write(&c, (uint64_t)(i * 7919 % 256) * 4096, 4096, &iov, 1), "write");
			CHECK(wcache_snapshot(&c) == 1, "snapshot");
			CHECK((len = wcache_next_run(&c, &off, buf, WB_RUN_TEST)) == 4096, "run %llu",
			      (unsigned long long)len);
			CHECK(!wcache_next_run(&c, &off, buf, WB_RUN_TEST), "a second run");
			wcache_free_retired(&c);
			wcache_end_flush(&c);
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms[k] = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
		wcache_drop(&c);
		CHECK(c.nr_free == c.nr_slots, "blocks lost: %u of %u free", c.nr_free, c.nr_slots);
		wcache_free(&c);
	}
	printf("  %d one-block epochs: %.1f ms with a 1M cache, %.1f ms with 256M\n", EPOCHS,
	       ms[0], ms[1]);
	/* ~1 us an epoch either way; the bucket scans took seconds at 256M */
	CHECK(ms[1] < 400, "one-block epochs on a 256M cache took %.0f ms", ms[1]);
	free(buf);
	return T_PASS;
}

struct ctl_thread {
	struct uc_node *n;
	const char *key, *value;
	char reply[256];
	int ret;
	atomic_bool done;
};

static void *ctl_thread_fn(void *arg)
{
	struct ctl_thread *c = arg;

	c->ret = c->n->ops->ctl(c->n, c->key, c->value, c->reply, sizeof(c->reply));
	atomic_store(&c->done, true);
	return NULL;
}

/* Data through the cache: a small one (early write-backs), then switched off under I/O. */
static int test_lose_unflushed_mix(void)
{
	struct ctl_thread ct = { .key = "lose_unflushed", .value = "off" };
	struct harness h;
	pthread_t th;
	int fails;

	if (harness_open(&h, conf("lose.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"fault\"; name = \"pc\"; lose_unflushed = true; unflushed_max = \"256K\";\n"
		"  children = ( { type = \"file\"; path = \"lose.img\"; size = \"4M\"; } ); };\n")))
		return T_FAIL;
	fails = run_mix(&h, 4000, true);
	printf("  lose_unflushed mix: %llu requests, %d failures; %s\n",
	       (unsigned long long)h.nr_reqs, fails, status(h.g.root));
	CHECK(!fails, "mix through the cache");
	CTL_OK(h.g.root, "delay", "50us", NULL);
	fails = run_mix(&h, 1000, true);
	CHECK(!fails, "mix through the cache with a delay");
	CTL_OK(h.g.root, "delay", "0", NULL);
	/* off from the admin thread while requests keep coming */
	CHECK(one(&h, UC_OP_WRITE, 0, 64 * K) == 64 * K, "write");
	ct.n = h.g.root;
	CHECK(!pthread_create(&th, NULL, ctl_thread_fn, &ct), "pthread_create");
	while (!atomic_load(&ct.done))
		fails += run_mix(&h, 50, true);
	pthread_join(th, NULL);
	CHECK(!ct.ret && !strcmp(ct.reply, "lose_unflushed=off"), "off: %d %s", ct.ret, ct.reply);
	CHECK(!fails, "mix while switching off");
	CHECK(!strstr(status(h.g.root), "lose_unflushed"), "%s", status(h.g.root));
	fails = run_mix(&h, 1000, true);
	CHECK(!fails, "mix after switching off");
	CTL_OK(h.g.root, "lose_unflushed", "on", "lose_unflushed=on");
	fails = run_mix(&h, 1000, true);
	CHECK(!fails, "mix after switching on again");
	harness_close(&h);
	return T_PASS;
}

static int file_equals(const char *path, const uint8_t *want, uint64_t size, bool quiet)
{
	uint8_t *got = malloc(size);
	int fd = open(path, O_RDONLY), ok;

	ok = got && fd >= 0 && pread(fd, got, size, 0) == (ssize_t)size;
	if (ok)
		for (uint64_t i = 0; i < size; i += 4096)
			if (memcmp(got + i, want + i, 4096)) {
				if (!quiet)
					fprintf(stderr, "%s: block at %llu differs\n", path,
						(unsigned long long)i);
				ok = 0;
				break;
			}
	if (fd >= 0)
		close(fd);
	free(got);
	return ok;
}

/*
 * Power cut: flushed and FUA writes survive, discards went through, the
 * rest is lost, then every request fails. A clean stop writes the cache back.
 */
static int test_lose_unflushed_crash(void)
{
	const char *img = conf("crash.img", "");
	uint8_t *durable = malloc(4 * M);
	char reply[256];
	struct harness h;

	CHECK(durable, "alloc");
	unlink(img);
	if (harness_open(&h, conf("crash.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"fault\"; lose_unflushed = true;\n"
		"  children = ( { type = \"file\"; path = \"crash.img\"; size = \"4M\"; } ); };\n")))
		return T_FAIL;
	for (uint64_t off = 0; off < 4 * M; off += 64 * K)
		CHECK(one(&h, UC_OP_WRITE, off, 64 * K) == 64 * K, "write A");
	CHECK(one(&h, UC_OP_FLUSH, 0, 0) == 0, "flush");
	CHECK(file_equals(img, h.model, 4 * M, false), "after a flush the file holds A");
	for (uint64_t off = 0; off < 1 * M; off += 64 * K)
		CHECK(one(&h, UC_OP_WRITE, off, 64 * K) == 64 * K, "write B");
	/* FUA: the cache is written back before it completes (B with it) */
	h.reqs[0] = (struct uc_req){ .op = UC_OP_WRITE, .flags = UC_F_FUA, .off = 2 * M + 64 * K,
				     .len = 64 * K };
	h.done[0] = false;
	h.inflight = 1;
	h.lax = true;
	fill(h.q.ios[0].buf, 64 * K);
	memcpy(h.model + 2 * M + 64 * K, h.q.ios[0].buf, 64 * K);
	uc_queue_start(&h.q, 0, &h.reqs[0]);
	CHECK(!harness_drain(&h) && h.results[0] == 64 * K, "FUA write: %d", h.results[0]);
	CHECK(file_equals(img, h.model, 4 * M, false), "after a FUA write the file holds B and C");
	CHECK(one(&h, UC_OP_DISCARD, 1 * M, 256 * K) == 0, "discard");
	memcpy(durable, h.model, 4 * M);
	CHECK(one(&h, UC_OP_WRITE, 3 * M, 64 * K) == 64 * K, "write D");
	CHECK(one(&h, UC_OP_WRITE, 0, 4 * K) == 4 * K, "write E");
	for (uint64_t off = 0; off < 4 * M; off += 64 * K)
		CHECK(one(&h, UC_OP_READ, off, 64 * K) == 64 * K, "read back through the cache at %llu",
		      (unsigned long long)off);
	CHECK(strstr(status(h.g.root), "lose_unflushed unflushed=69632"), "%s", status(h.g.root));
	CHECK(!ctl(h.g.root, "crash", "on", reply, sizeof(reply)) &&
	      !strcmp(reply, "crash=on: 69632 bytes of unflushed writes lost; every request fails"),
	      "crash: %s", reply);
	CHECK(strstr(status(h.g.root), "CRASHED"), "%s", status(h.g.root));
	CHECK(one(&h, UC_OP_READ, 0, 4 * K) == -EIO, "read after the crash");
	CHECK(one(&h, UC_OP_WRITE, 0, 4 * K) == -EIO, "write after the crash");
	CHECK(one(&h, UC_OP_FLUSH, 0, 0) == -EIO, "flush after the crash");
	harness_close(&h);
	CHECK(file_equals(img, durable, 4 * M, false), "after the crash the file is not the flushed state");

	/* powered on again: the child's data; a clean stop keeps what is cached */
	if (harness_open(&h, conf("crash2.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"fault\"; lose_unflushed = true; name = \"pc\";\n"
		"  children = ( { type = \"file\"; path = \"crash.img\"; size = \"4M\"; } ); };\n")))
		return T_FAIL;
	memcpy(h.model, durable, 4 * M);
	CHECK(one(&h, UC_OP_READ, 3 * M, 64 * K) == 64 * K, "D is gone");
	CHECK(one(&h, UC_OP_WRITE, 3 * M, 64 * K) == 64 * K, "write F");
	CHECK(!file_equals(img, h.model, 4 * M, true), "F reached the file before any flush");
	memcpy(durable, h.model, 4 * M);
	harness_close(&h);
	CHECK(file_equals(img, durable, 4 * M, false), "a clean stop did not write the cache back");
	free(durable);
	return T_PASS;
}

/*
 * Flush epochs are 64-bit counters: a FLUSH parked for epoch 2^32 waits for
 * epoch 2^32, not for (uint32_t)2^32 = 0, which every epoch has passed
 * (issue 17, item 6: it completed before anything was written back). The
 * counters start just below 2^32 here; the FLUSH must complete with the
 * data in the file.
 */
static struct {
	void (*commit)(struct uc_queue *q, struct uc_io *io, int res);
	const char *img;
	int flushes, durable;
	bool was_durable[8];	/* by completion order */
} at_flush;

/* The harness's commit, after looking at the file the moment a FLUSH completes. */
static void flush_commit(struct uc_queue *q, struct uc_io *io, int res)
{
	struct harness *h = q->owner;

	if (h->reqs[io->tag].op == UC_OP_FLUSH) {
		bool durable = file_equals(at_flush.img, h->model, 64 * K, true);

		if (at_flush.flushes < 8)
			at_flush.was_durable[at_flush.flushes] = durable;
		at_flush.flushes++;
		at_flush.durable += durable;
	}
	at_flush.commit(q, io, res);
}

static int test_flush_epoch_past_32_bits(void)
{
	const char *img = conf("epoch.img", "");
	struct harness h;
	struct fault *f;
	char want[32];

	unlink(img);
	if (harness_open(&h, conf("epoch.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"fault\"; lose_unflushed = true;\n"
		"  children = ( { type = \"file\"; path = \"epoch.img\"; size = \"1M\"; } ); };\n")))
		return T_FAIL;
	f = h.g.root->priv;
	pthread_mutex_lock(&f->cache_lock);
	f->epoch_started = UINT32_MAX;	/* as after 2^32 - 1 flushes */
	atomic_store(&f->epochs_done, UINT32_MAX);
	pthread_mutex_unlock(&f->cache_lock);
	at_flush.commit = h.q.commit;
	at_flush.img = img;
	h.q.commit = flush_commit;	/* the file is checked the moment the FLUSH completes */
	for (int round = 0; round < 2; round++) {
		CHECK(one(&h, UC_OP_WRITE, 0, 64 * K) == 64 * K, "write");
		CHECK(!file_equals(img, h.model, 64 * K, true), "the write reached the file unflushed");
		at_flush.flushes = at_flush.durable = 0;
		CHECK(one(&h, UC_OP_FLUSH, 0, 0) == 0, "flush");
		CHECK(at_flush.flushes == 1 && at_flush.durable == 1,
		      "round %d: the FLUSH completed before epoch %llu wrote the data back", round,
		      (unsigned long long)UINT32_MAX + 1 + round);
		snprintf(want, sizeof(want), "flush_epochs=%llu", (unsigned long long)UINT32_MAX + 1 + round);
		CHECK(strstr(status(h.g.root), want), "%s, want %s", status(h.g.root), want);
	}
	harness_close(&h);
	return T_PASS;
}

/*
 * The same while an epoch runs: a FLUSH then waits for the next epoch,
 * 2^32, and is woken first when 2^32 - 1 ends. With the epoch it waits for
 * cut to 32 bits (0) it completed at that wake-up, before the write it
 * follows was written back. (With waits woken only when an epoch ends, the
 * test above no longer sees the cut: its FLUSH is first woken by its own
 * epoch's end.)
 */
static int test_flush_epoch_past_32_bits_running(void)
{
	const char *img = conf("epoch2.img", "");
	struct harness h;
	struct fault *f;

	unlink(img);
	if (harness_open(&h, conf("epoch2.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"fault\"; lose_unflushed = true;\n"
		"  children = ( { type = \"file\"; path = \"epoch2.img\"; size = \"1M\"; } ); };\n")))
		return T_FAIL;
	f = h.g.root->priv;
	pthread_mutex_lock(&f->cache_lock);
	f->epoch_started = UINT32_MAX - 1;
	atomic_store(&f->epochs_done, UINT32_MAX - 1);
	pthread_mutex_unlock(&f->cache_lock);
	at_flush.commit = h.q.commit;
	at_flush.img = img;
	h.q.commit = flush_commit;
	at_flush.flushes = at_flush.durable = 0;
	CHECK(one(&h, UC_OP_WRITE, 0, 64 * K) == 64 * K, "write a");
	/* no turn in between: epoch 2^32 - 1 (write a) still runs when write b and its FLUSH come */
	issue(&h, UC_OP_FLUSH, 0, 0, 0);
	issue(&h, UC_OP_WRITE, 0, 0, 64 * K);
	issue(&h, UC_OP_FLUSH, 0, 0, 0);
	CHECK(!harness_reap(&h, 0), "reap");
	CHECK(!h.failures, "%d failures", h.failures);
	CHECK(at_flush.flushes == 2, "%d flushes", at_flush.flushes);
	CHECK(at_flush.was_durable[1], "the second FLUSH completed before epoch 2^32 wrote write b back");
	CHECK(atomic_load(&f->epochs_done) == (uint64_t)UINT32_MAX + 1, "epochs done %llu",
	      (unsigned long long)atomic_load(&f->epochs_done));
	harness_close(&h);
	return T_PASS;
}

/*
 * A FLUSH waits for its epoch on a wait, not on the queue's 1 ms poll
 * timer: no turn of the queue arms one, and it completes all the same.
 */
static int test_flush_waits_without_timer(void)
{
	struct harness h;
	unsigned int turns = 0, timed = 0;

	if (harness_open(&h, conf("notimer.conf",
		"device = { max_io = \"64K\"; };\n"
		"volume = { type = \"fault\"; lose_unflushed = true;\n"
		"  children = ( { type = \"file\"; path = \"notimer.img\"; size = \"1M\"; } ); };\n")))
		return T_FAIL;
	for (int round = 0; round < 20; round++) {
		CHECK(one(&h, UC_OP_WRITE, round * 4 * K, 64 * K) == 64 * K, "write");
		h.reqs[0] = (struct uc_req){ .op = UC_OP_FLUSH };
		h.done[0] = false;
		h.inflight = 1;
		uc_queue_start(&h.q, 0, &h.reqs[0]);
		while (!h.done[0]) {
			CHECK(!harness_turn(&h), "turn");
			turns++;
			timed += h.q.timer_armed;
		}
		CHECK(h.results[0] == 0, "flush: %d", h.results[0]);
		CHECK(!harness_drain(&h), "drain");
	}
	CHECK(!timed, "%u of %u turns had the poll timer armed", timed, turns);
	harness_close(&h);
	return T_PASS;
}

int main(void)
{
	static const struct t_case cases[] = {
		{ "config_errors", test_config_errors },
		{ "config_good", test_config_good },
		{ "errors_read", test_errors_read },
		{ "errors_write", test_errors_write },
		{ "errors_all", test_errors_all },
		{ "after", test_after },
		{ "delay", test_delay },
		{ "ctl", test_ctl },
		{ "mix", test_mix },
		{ "ctl_concurrent", test_ctl_concurrent },
		{ "nested", test_nested },
		{ "wcache", test_wcache },
		{ "wcache_epoch_cost", test_wcache_epoch_cost },
		{ "lose_unflushed_mix", test_lose_unflushed_mix },
		{ "lose_unflushed_crash", test_lose_unflushed_crash },
		{ "flush_epoch_past_32_bits", test_flush_epoch_past_32_bits },
		{ "flush_epoch_past_32_bits_running", test_flush_epoch_past_32_bits_running },
		{ "flush_waits_without_timer", test_flush_waits_without_timer },
	};
	struct io_uring ring;

	if (io_uring_queue_init(2, &ring, 0)) {
		fprintf(stderr, "no io_uring here\n");
		return T_SKIP;
	}
	io_uring_queue_exit(&ring);
	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
