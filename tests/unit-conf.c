/* SPDX-License-Identifier: MIT */
/*
 * Host unit tests for the config parser and graph builder: uc_graph_load(),
 * uc_graph_open(), uc_graph_free(). No root, no ublk.
 *
 * Bad configs mark the line the error must point at with "#<" (a libconfig
 * comment); each must fail with -EINVAL, print exactly one "FILE:LINE: ..."
 * line and leave the filesystem as it was.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "disk.h"
#include "graph.h"
#include "testlib.h"

#define K	1024ULL
#define M	(1024ULL * K)
#define G	(1024ULL * M)
#define T	(1024ULL * G)

/* a fresh directory per case: TMP/NN-name */
static const char *case_dir(const char *name)
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

static bool exists(const char *path)
{
	struct stat st;

	return !lstat(path, &st);
}

static const char *join(const char *dir, const char *name)
{
	static char paths[4][PATH_MAX];
	static int next;
	char *p = paths[next++ % 4];

	if (snprintf(p, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX)
		exit(T_FAIL);
	return p;
}

/* a file of exactly size bytes (sparse) */
static void make_file(const char *path, uint64_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || ftruncate(fd, size) || close(fd)) {
		perror(path);
		exit(T_FAIL);
	}
}

/* names under dir, recursively, as one sorted-by-readdir string */
static void list_tree(const char *dir, char *out, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char sub[PATH_MAX];
		size_t l = strlen(out);

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(out + l, len - l, "%s/%s\n", dir, e->d_name);
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		if (e->d_type == DT_DIR)
			list_tree(sub, out, len);
	}
	closedir(d);
}

/* uc_graph_load() with fd 2 going to a file; its text lands in err */
static int load_capture(struct uc_graph *g, const char *path, char *err, size_t len)
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

	if (!m)
		return -1;
	int line = 1;

	for (; text < m; text++)
		line += *text == '\n';
	return line;
}

/*
 * Write text as DIR/name.conf in a fresh DIR (after setup(DIR) if given),
 * load it and check: -EINVAL, one "DIR/name.conf:LINE: " line mentioning
 * needle, and no new file or directory anywhere under DIR. absent: paths
 * relative to DIR that must not exist afterwards.
 */
static int expect_bad(const char *name, const char *text, const char *needle,
		      void (*setup)(const char *dir), const char *const *absent)
{
	char before[8192] = "", after[8192] = "", err[4096], want[PATH_MAX + 32];
	const char *dir = case_dir(name), *conf;
	struct uc_graph g;
	int ret, line = marked_line(text);

	if (setup)
		setup(dir);
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
	CHECK(strlen(err) > strlen(want) + 1, "%s: empty message: %s", name, err);
	CHECK(!needle || strstr(err, needle), "%s: message lacks \"%s\": %s", name, needle, err);
	CHECK(!strcmp(before, after), "%s: load changed the directory:\nbefore:\n%safter:\n%s",
	      name, before, after);
	for (; absent && *absent; absent++)
		CHECK(!exists(join(dir, *absent)), "%s: %s was created", name, *absent);
	return T_PASS;
}

/* load a good config from DIR/name.conf; g must be freed by the caller */
static int load_good(struct uc_graph *g, const char *dir, const char *text)
{
	char err[4096];
	const char *conf = t_write_file(dir, "good.conf", text);
	int ret = load_capture(g, conf, err, sizeof(err));

	if (ret) {
		fprintf(stderr, "uc_graph_load(%s) = %d:\n%s", conf, ret, err);
		uc_graph_free(g);
		return T_FAIL;
	}
	if (err[0]) {
		fprintf(stderr, "uc_graph_load(%s) succeeded but printed:\n%s", conf, err);
		uc_graph_free(g);
		return T_FAIL;
	}
	return T_PASS;
}

static const char *const ab[] = { "a.img", "b.img", "data", NULL };

#define BAD(fn, needle, text) \
static int test_##fn(void) { return expect_bad(#fn, text, needle, NULL, ab); }

/* a stripe of a.img and b.img with extra text in the named place */
#define STRIPE(stripe_extra, file_extra) \
	"volume = {\n" \
	"  type = \"stripe\";\n" stripe_extra \
	"  children = (\n" \
	"    { type = \"file\"; path = \"a.img\"; size = \"1M\";" file_extra " },\n" \
	"    { type = \"file\"; path = \"b.img\"; size = \"1M\"; }\n" \
	"  );\n" \
	"};\n"

/* syntax and structure */
BAD(syntax_error, NULL,
    "device = { queues = 2; };\n"
    "volume = { type = \"file\"; path = \"a.img\";\n"
    "  size = = \"1M\"; }; #<\n")
BAD(syntax_missing_semicolon_eof, NULL,
    "volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; }\n"
    "device = { queues = 2 } } #<\n")
BAD(unknown_top_key, "volumes",
    "device = { queues = 1; };\n"
    "volumes = 3; #<\n"
    "volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; };\n")
BAD(unknown_device_key, "queue",
    "device = {\n"
    "  depth = 64;\n"
    "  queue = 2; #<\n"
    "};\n"
    "volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; };\n")
BAD(device_not_group, "device",
    "device = 4; #<\n"
    "volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; };\n")
BAD(unknown_stripe_key, "chunks", STRIPE("  chunks = \"64K\"; #<\n", ""))
BAD(unknown_file_key, "sizes",
    "volume = {\n"
    "  type = \"stripe\";\n"
    "  children = (\n"
    "    { type = \"file\"; path = \"a.img\"; size = \"1M\"; },\n"
    "    { type = \"file\"; path = \"b.img\"; sizes = \"1M\"; } #<\n"
    "  );\n"
    "};\n")
BAD(unknown_concat_key, "chunk",
    "volume = {\n"
    "  type = \"concat\";\n"
    "  children = ( { type = \"file\"; path = \"a.img\"; size = \"1M\"; } );\n"
    "  chunk = \"64K\"; #<\n"
    "};\n")
BAD(missing_volume, "volume",
    "device = { queues = 2; }; #<\n"
    "# no volume here\n")
BAD(volume_not_group, "group",
    "volume = \"a.img\"; #<\n")
BAD(layer_without_type, "type",
    "device = { queues = 1; };\n"
    "volume = { #<\n"
    "  path = \"a.img\";\n"
    "  size = \"1M\";\n"
    "};\n")
BAD(child_without_type, "type",
    "volume = {\n"
    "  type = \"concat\";\n"
    "  children = (\n"
    "    { type = \"file\"; path = \"a.img\"; size = \"1M\"; },\n"
    "    { path = \"b.img\"; size = \"1M\"; } #<\n"
    "  );\n"
    "};\n")
BAD(unknown_layer_type, "raid5",
    "volume = {\n"
    "  type = \"raid5\"; #<\n"
    "  children = ( { type = \"file\"; path = \"a.img\"; size = \"1M\"; } );\n"
    "};\n")
BAD(empty_type, "type",
    "volume = { type = \"\"; path = \"a.img\"; size = \"1M\"; }; #<\n")
BAD(type_not_string, "type",
    "volume = {\n"
    "  type = 1; #<\n"
    "  path = \"a.img\"; size = \"1M\";\n"
    "};\n")
BAD(child_not_group, "group",
    "volume = {\n"
    "  type = \"concat\";\n"
    "  children = (\n"
    "    { type = \"file\"; path = \"a.img\"; size = \"1M\"; },\n"
    "    \"b.img\" ); #< libconfig gives scalars in lists the line after them\n"
    "};\n")
BAD(children_not_list, "children",
    "volume = {\n"
    "  type = \"concat\";\n"
    "  children = \"a.img\"; #<\n"
    "};\n")
BAD(stripe_one_child, "2",
    "device = { queues = 2; };\n"
    "volume = {\n"
    "  type = \"stripe\";\n"
    "  chunk = \"64K\";\n"
    "  children = ( #<\n"
    "    { type = \"file\"; path = \"a.img\"; size = \"1M\"; }\n"
    "  );\n"
    "};\n")
BAD(concat_zero_children, "children",
    "volume = {\n"
    "  type = \"concat\";\n"
    "  children = ( ); #<\n"
    "};\n")
BAD(concat_no_children, "children",
    "device = { depth = 32; };\n"
    "volume = { #<\n"
    "  type = \"concat\";\n"
    "};\n")
BAD(file_without_path, "path",
    "volume = { #<\n"
    "  type = \"file\";\n"
    "  size = \"1M\";\n"
    "};\n")

/* wrong types */
BAD(queues_string, "queues",
    "device = {\n"
    "  queues = \"2\"; #<\n"
    "};\n"
    "volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; };\n")
BAD(direct_int, "direct", STRIPE("", " direct = 1; #<\n"))
BAD(chunk_bool, "chunk", STRIPE("  chunk = true; #<\n", ""))
BAD(size_float, "size",
    "volume = { type = \"file\"; path = \"a.img\";\n"
    "  size = 1.5; #<\n"
    "};\n")
BAD(path_int, "path",
    "volume = { type = \"file\"; size = \"1M\";\n"
    "  path = 7; #<\n"
    "};\n")

/* sizes */
BAD(size_bad_suffix, "12Q",
    "volume = {\n"
    "  type = \"file\";\n"
    "  path = \"a.img\";\n"
    "  size = \"12Q\"; #<\n"
    "};\n")
BAD(size_negative_string, "-1",
    "volume = { type = \"file\"; path = \"a.img\";\n"
    "  size = \"-1\"; #<\n"
    "};\n")
BAD(size_negative_int, "negative",
    "volume = { type = \"file\"; path = \"a.img\";\n"
    "  size = -1; #<\n"
    "};\n")
BAD(size_fraction, "1.5G",
    "volume = { type = \"file\"; path = \"a.img\";\n"
    "  size = \"1.5G\"; #<\n"
    "};\n")
BAD(size_empty, "size",
    "volume = { type = \"file\"; path = \"a.img\";\n"
    "  size = \"\"; #<\n"
    "};\n")
BAD(size_overflow, "size",
    "volume = { type = \"file\"; path = \"a.img\";\n"
    "  size = \"99999999999T\"; #<\n"
    "};\n")
BAD(size_zero, "4K",
    "volume = { type = \"file\"; path = \"a.img\";\n"
    "  size = 0; #<\n"
    "};\n")
BAD(size_below_4k, "4K",
    "volume = { type = \"concat\"; children = (\n"
    "  { type = \"file\"; path = \"a.img\"; size = \"1M\"; },\n"
    "  { type = \"file\"; path = \"b.img\"; size = 4095; } #<\n"
    "); };\n")

/* stripe chunk */
BAD(chunk_not_pow2, "power of two", STRIPE("  chunk = \"48K\"; #<\n", ""))
BAD(chunk_too_small, "power of two", STRIPE("  chunk = \"2K\"; #<\n", ""))
BAD(chunk_too_big, "power of two", STRIPE("  chunk = \"2M\"; #<\n", ""))
BAD(stripe_child_below_chunk, "chunk",
    "volume = { #<\n"
    "  type = \"stripe\";\n"
    "  chunk = \"1M\";\n"
    "  children = (\n"
    "    { type = \"file\"; path = \"a.img\"; size = \"4M\"; },\n"
    "    { type = \"file\"; path = \"b.img\"; size = \"512K\"; }\n"
    "  );\n"
    "};\n")

/* device ranges */
#define DEV(line) \
	"device = {\n" \
	"  queues = 1;\n" \
	line \
	"};\n" \
	"volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; };\n"
BAD(depth_zero, "depth", DEV("  depth = 0; #<\n"))
BAD(depth_5000, "depth", DEV("  depth = 5000; #<\n"))
BAD(queues_zero, "queues", "device = { queues = 0; }; #<\n"
    "volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; };\n")
BAD(queues_65, "queues", "device = {\n queues = 65; #<\n};\n"
    "volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; };\n")
BAD(queues_huge_int64, "queues", "device = {\n queues = 4294967297L; #<\n};\n"
    "volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; };\n")
BAD(block_size_1024, "block_size", DEV("  block_size = 1024; #<\n"))
BAD(max_io_3k, "max_io", DEV("  max_io = \"3K\"; #<\n"))
BAD(recovery_unknown, "recovery", DEV("  recovery = \"sometimes\"; #<\n"))
BAD(recovery_not_string, "recovery", DEV("  recovery = true; #<\n"))
BAD(max_io_64m, "max_io", DEV("  max_io = \"64M\"; #<\n"))
BAD(max_io_unaligned, "max_io", DEV("  max_io = 6000; #<\n"))
BAD(id_negative, "id", DEV("  id = -2; #<\n"))
BAD(scheduler_unknown, "scheduler", DEV("  scheduler = \"deadline\"; #<\n"))
BAD(scheduler_not_string, "scheduler", DEV("  scheduler = 1; #<\n"))
BAD(spin_us_negative, "spin_us", DEV("  spin_us = -1; #<\n"))
BAD(spin_us_over_1000, "spin_us", DEV("  spin_us = 1001; #<\n"))
BAD(spin_us_not_int, "spin_us", DEV("  spin_us = \"200\"; #<\n"))

/* backing files */
BAD(duplicate_path, "twice",
    "volume = {\n"
    "  type = \"concat\";\n"
    "  children = (\n"
    "    { type = \"file\"; path = \"a.img\"; size = \"1M\"; },\n"
    "    { type = \"file\"; path = \"b.img\"; size = \"1M\"; },\n"
    "    { type = \"file\"; path = \"a.img\"; size = \"2M\"; } #<\n"
    "  );\n"
    "};\n")

static void setup_a_1m(const char *dir)
{
	make_file(join(dir, "a.img"), 1 * M);
}

static void setup_a_dir(const char *dir)
{
	if (mkdir(join(dir, "a.img"), 0755)) {
		perror("mkdir");
		exit(T_FAIL);
	}
}

static void setup_a_tiny(const char *dir)
{
	make_file(join(dir, "a.img"), 4095);
}

static void setup_sub(const char *dir)
{
	if (mkdir(join(dir, "sub"), 0755)) {
		perror("mkdir");
		exit(T_FAIL);
	}
	make_file(join(dir, "sub/a.img"), 1 * M);
}

static const char *const b_only[] = { "b.img", "data", NULL };

static int test_duplicate_same_file_two_spellings(void)
{
	return expect_bad("dup_spelling", "volume = {\n"
			  "  type = \"stripe\";\n"
			  "  children = (\n"
			  "    { type = \"file\"; path = \"a.img\"; },\n"
			  "    { type = \"file\"; path = \"b.img\"; size = \"1M\"; },\n"
			  "    { type = \"file\";\n"
			  "      path = \"./a.img\"; #<\n"
			  "    }\n"
			  "  );\n"
			  "};\n", "twice", setup_a_1m, b_only);
}

static int test_duplicate_same_file_via_subdir(void)
{
	return expect_bad("dup_subdir", "volume = {\n"
			  "  type = \"concat\";\n"
			  "  children = (\n"
			  "    { type = \"file\"; path = \"sub/a.img\"; },\n"
			  "    { type = \"file\"; path = \"b.img\"; size = \"1M\"; },\n"
			  "    { type = \"file\"; path = \"sub/../sub/a.img\"; } #<\n"
			  "  );\n"
			  "};\n", "twice", setup_sub, b_only);
}

static int test_duplicate_new_file_two_spellings(void)
{
	/* neither exists yet: both would be created as the same file */
	return expect_bad("dup_new", "volume = {\n"
			  "  type = \"concat\";\n"
			  "  children = (\n"
			  "    { type = \"file\"; path = \"a.img\"; size = \"1M\"; },\n"
			  "    { type = \"file\"; path = \"./a.img\"; size = \"1M\"; } #<\n"
			  "  );\n"
			  "};\n", "twice", NULL, ab);
}

/* data/ does not exist either: "data/.." is the config's directory once created */
BAD(duplicate_new_file_dotdot, "twice",
    "volume = {\n"
    "  type = \"concat\";\n"
    "  children = (\n"
    "    { type = \"file\"; path = \"a.img\"; size = \"1M\"; },\n"
    "    { type = \"file\"; path = \"data/../a.img\"; size = \"1M\"; } #<\n"
    "  );\n"
    "};\n")
BAD(missing_file_without_size, "does not exist",
    "volume = {\n"
    "  type = \"file\";\n"
    "  path = \"a.img\"; #<\n"
    "};\n")

static int test_existing_file_smaller_than_size(void)
{
	return expect_bad("smaller", "volume = {\n"
			  "  type = \"concat\";\n"
			  "  children = (\n"
			  "    { type = \"file\"; path = \"b.img\"; size = \"1M\"; },\n"
			  "    { type = \"file\"; size = \"2M\";\n"
			  "      path = \"a.img\"; #<\n"
			  "    }\n"
			  "  );\n"
			  "};\n", "smaller", setup_a_1m, b_only);
}

static int test_existing_file_below_4k(void)
{
	return expect_bad("tiny", "volume = {\n"
			  "  type = \"file\";\n"
			  "  path = \"a.img\"; #<\n"
			  "};\n", "4K", setup_a_tiny, b_only);
}

static int test_path_is_directory(void)
{
	return expect_bad("isdir", "volume = {\n"
			  "  type = \"concat\";\n"
			  "  children = (\n"
			  "    { type = \"file\"; path = \"b.img\"; size = \"1M\"; },\n"
			  "    { type = \"file\"; path = \"a.img\"; size = \"1M\"; } #<\n"
			  "  );\n"
			  "};\n", "regular file", setup_a_dir, b_only);
}

/* levels concats, the innermost holding one file: levels + 1 nodes deep */
static char *nested_concat(int levels, int mark_level)
{
	size_t len = 256 + levels * 160;
	char *s = malloc(len), *p = s;

	if (!s)
		exit(T_FAIL);
	p += sprintf(p, "volume =\n");
	for (int i = 1; i <= levels; i++)
		p += sprintf(p, "%*s{ type = \"concat\"; children = (%s\n", i, "",
			     i == mark_level ? " #<" : "");
	p += sprintf(p, "%*s{ type = \"file\"; path = \"a.img\"; size = \"1M\"; }%s\n", levels + 1, "",
		     levels + 1 == mark_level ? " #<" : "");
	for (int i = levels; i >= 1; i--)
		p += sprintf(p, "%*s) }%s\n", i, "", i == 1 ? ";" : "");
	return s;
}

static int test_nesting_too_deep(void)
{
	/* 17 concats: the 17th level is one too many */
	char *text = nested_concat(17, 17);
	int r = expect_bad("too_deep", text, "deeper", NULL, ab);

	free(text);
	return r;
}

static int test_nesting_at_limit(void)
{
	/* 15 concats and a file: 16 levels, allowed */
	char *text = nested_concat(15, 0);
	struct uc_graph g;
	int r = load_good(&g, case_dir("at_limit"), text);

	free(text);
	if (r)
		return r;
	CHECK(g.nr_nodes == 16, "nr_nodes %u", g.nr_nodes);
	CHECK(g.size == 1 * M, "size %llu", (unsigned long long)g.size);
	uc_graph_free(&g);
	return T_PASS;
}

/*
 * Per-tag arenas: a sub's slot number travels in 16 bits of the CQE's
 * user_data, and the arenas of one queue are capped. A mirror of two
 * compress volumes with 4K clusters and 32M requests (issue 17) needs about
 * 196K subs per request and GiBs of arenas per queue: refused at the layer
 * that fans out.
 */
BAD(subs_over_16_bits, "sub-requests",
    "device = { queues = 1; depth = 128; max_io = \"32M\"; block_size = 4096; };\n"
    "volume = { type = \"mirror\"; children = (\n"
    "  { type = \"compress\"; cluster = \"4K\"; size = \"1G\"; #<\n"
    "    children = ( { type = \"file\"; path = \"a.img\"; size = \"1G\"; } ); },\n"
    "  { type = \"compress\"; cluster = \"4K\"; size = \"1G\";\n"
    "    children = ( { type = \"file\"; path = \"b.img\"; size = \"1G\"; } ); } ); };\n")

/* few subs, but 8K iovecs a tag at depth 4096: over the per-queue cap, at max_io */
BAD(arenas_over_cap, "per queue",
    "device = { depth = 4096;\n"
    "  max_io = \"32M\"; #<\n"
    "};\n"
    "volume = { type = \"stripe\"; chunk = \"8K\"; children = (\n"
    "  { type = \"file\"; path = \"a.img\"; size = \"1M\"; }, { type = \"file\"; path = \"b.img\"; size = \"1M\"; },\n"
    "  { type = \"file\"; path = \"c.img\"; size = \"1M\"; }, { type = \"file\"; path = \"d.img\"; size = \"1M\"; },\n"
    "  { type = \"file\"; path = \"e.img\"; size = \"1M\"; }, { type = \"file\"; path = \"f.img\"; size = \"1M\"; },\n"
    "  { type = \"file\"; path = \"g.img\"; size = \"1M\"; }, { type = \"file\"; path = \"h.img\"; size = \"1M\"; } ); };\n")

/* without a max_io key the error points at the volume */
BAD(arenas_over_cap_default_max_io, "per queue",
    "device = { depth = 4096; };\n"
    "volume = { type = \"stripe\"; chunk = \"4K\"; children = ( #<\n"
    "  { type = \"compress\"; cluster = \"4K\"; size = \"16M\";\n"
    "    children = ( { type = \"file\"; path = \"a.img\"; size = \"64M\"; } ); },\n"
    "  { type = \"compress\"; cluster = \"4K\"; size = \"16M\";\n"
    "    children = ( { type = \"file\"; path = \"b.img\"; size = \"64M\"; } ); } ); };\n")

/* the arena sizes of a config that fits: what uc_queue_init will allocate */
static int test_arenas_fit(void)
{
	struct uc_graph g;

	/* 1.5M requests, 4K clusters: 386 sub-requests below each compress */
	if (load_good(&g, case_dir("arenas_fit"),
		      "device = { depth = 16; max_io = \"1536K\"; };\n"
		      "volume = { type = \"mirror\"; children = (\n"
		      "  { type = \"compress\"; cluster = \"4K\"; size = \"16M\";\n"
		      "    children = ( { type = \"file\"; path = \"a.img\"; size = \"16M\"; } ); },\n"
		      "  { type = \"compress\"; cluster = \"4K\"; size = \"16M\";\n"
		      "    children = ( { type = \"file\"; path = \"b.img\"; size = \"16M\"; } ); } ); };\n"))
		return T_FAIL;
	CHECK(g.nr_subs <= UC_MAX_SUBS, "nr_subs %u", g.nr_subs);
	CHECK(uc_graph_arena_bytes(&g) <= UC_MAX_ARENA_BYTES, "%llu bytes",
	      (unsigned long long)uc_graph_arena_bytes(&g));
	uc_graph_free(&g);
	return T_PASS;
}

/* good configs */

static int test_example_schema(void)
{
	const char *dir = case_dir("example");
	struct uc_graph g;
	char status[512];

	if (load_good(&g, dir,
		      "# RAID0 over four sparse files in data/ next to this file\n"
		      "device = {\n"
		      "  queues = 2;\n"
		      "  depth = 128;\n"
		      "  max_io = \"512K\";\n"
		      "  block_size = 4096;\n"
		      "  id = -1;\n"
		      "};\n"
		      "volume = {\n"
		      "  type = \"stripe\";\n"
		      "  chunk = \"64K\";\n"
		      "  children = (\n"
		      "    { type = \"file\"; path = \"data/stripe0.img\"; size = \"256M\"; },\n"
		      "    { type = \"file\"; path = \"data/stripe1.img\"; size = \"256M\"; direct = true; },\n"
		      "    { type = \"file\"; path = \"data/stripe2.img\"; size = \"256M\"; direct = false; },\n"
		      "    { type = \"file\"; path = \"data/stripe3.img\"; size = \"256M\"; }\n"
		      "  );\n"
		      "};\n"))
		return T_FAIL;
	CHECK(g.dev.queues == 2 && g.dev.depth == 128 && g.dev.max_io == 512 * K &&
	      g.dev.block_size == 4096 && g.dev.id == -1, "dev %u %u %u %u %d", g.dev.queues,
	      g.dev.depth, g.dev.max_io, g.dev.block_size, g.dev.id);
	CHECK(g.size == 1 * G, "size %llu", (unsigned long long)g.size);
	CHECK(g.nr_nodes == 5 && g.nr_leaves == 4, "nodes %u leaves %u", g.nr_nodes, g.nr_leaves);
	CHECK(g.root == g.nodes[0] && !strcmp(g.root->ops->name, "stripe"), "root");
	CHECK(g.root->nr_children == 4 && g.root->io_min == 64 * K && g.root->io_opt == 256 * K,
	      "stripe hints %u %u", g.root->io_min, g.root->io_opt);
	CHECK(g.root->can_discard, "discard");
	for (unsigned int i = 0; i < 4; i++) {
		struct uc_node *l = g.leaves[i];

		CHECK(l == g.root->children[i] && l == g.nodes[i + 1], "leaf order %u", i);
		CHECK(l->file_index == (int)i && l->fd == -1 && l->parent == g.root, "leaf %u", i);
		CHECK(l->size == 256 * M, "leaf %u size %llu", i, (unsigned long long)l->size);
		CHECK(l->conf_line == 13 + (int)i, "leaf %u line %d", i, l->conf_line);
	}
	g.leaves[2]->ops->status(g.leaves[2], status, sizeof(status));
	CHECK(strstr(status, "data/stripe2.img") && strstr(status, "buffered"), "status %s", status);
	g.leaves[1]->ops->status(g.leaves[1], status, sizeof(status));
	CHECK(!strstr(status, "buffered"), "status %s", status);
	CHECK(g.nr_subs >= 5 && g.nr_iovs >= 5, "arenas %u %u", g.nr_subs, g.nr_iovs);
	uc_graph_free(&g);
	CHECK(!exists(join(dir, "data")), "load created data/");
	return T_PASS;
}

static int test_repo_example_confs(void)
{
	/* the example configs in conf/ of the source tree: loaded only (their files live in conf/data) */
	static const char *const names[] = { "stripe.conf", "concat.conf" };
	static const uint64_t sizes[] = { 1 * G, 512 * M };
	const char *tdir = getenv("UC_TEST_CONF_DIR");	/* SRC/tests/conf, may not exist */
	char src[PATH_MAX];
	size_t l;
	int found = 0;

	snprintf(src, sizeof(src), "%s", tdir ? tdir : __FILE__);
	l = strlen(src);
	if (tdir && l > 11 && !strcmp(src + l - 11, "/tests/conf"))
		src[l - 11] = 0;
	else if (!tdir && l > 18 && !strcmp(src + l - 18, "/tests/unit-conf.c"))
		src[l - 18] = 0;
	else
		return T_SKIP;
	for (int i = 0; i < 2; i++) {
		char path[PATH_MAX + 32], err[4096];
		struct uc_graph g;
		int ret;

		snprintf(path, sizeof(path), "%s/conf/%s", src, names[i]);
		if (!exists(path))
			continue;
		found++;
		ret = load_capture(&g, path, err, sizeof(err));
		CHECK(!ret && !err[0], "%s: %d %s", path, ret, err);
		CHECK(g.size == sizes[i], "%s: size %llu", path, (unsigned long long)g.size);
		uc_graph_free(&g);
	}
	return found ? T_PASS : T_SKIP;
}

/* path's text contains needle */
static bool file_has(const char *path, const char *needle)
{
	char buf[16384];

	return strstr(t_slurp(path, buf, sizeof(buf)), needle);
}

/* every config in conf/ fits the per-queue arena cap with room (a quarter of it) */
static int test_repo_confs_fit_arenas(void)
{
	const char *tdir = getenv("UC_TEST_CONF_DIR");	/* SRC/tests/conf */
	char dir[PATH_MAX];
	struct dirent *e;
	int found = 0;
	DIR *d;

	size_t tl = tdir ? strlen(tdir) : 0;

	if (tl < 11 || strcmp(tdir + tl - 11, "/tests/conf"))
		return T_SKIP;
	snprintf(dir, sizeof(dir), "%.*s/conf", (int)(tl - 11), tdir);
	if (!(d = opendir(dir)))
		return T_SKIP;
	while ((e = readdir(d))) {
		char path[2 * PATH_MAX], err[4096];
		size_t l = strlen(e->d_name);
		struct uc_graph g;
		int ret;

		if (l < 6 || strcmp(e->d_name + l - 5, ".conf"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		/* loading connects an nbd leaf: those examples need their servers (unit-nbd, e2e nbd) */
		if (file_has(path, "\"nbd\"")) {
			fprintf(stderr, "  %s: not loaded (nbd legs need their servers)\n", e->d_name);
			continue;
		}
		ret = load_capture(&g, path, err, sizeof(err));
		if (!ret)
			fprintf(stderr, "  %s: %u subs, %u iovecs a tag, %llu K of arenas per queue\n",
				e->d_name, g.nr_subs, g.nr_iovs,
				(unsigned long long)uc_graph_arena_bytes(&g) >> 10);
		CHECK(!ret && !err[0], "%s: %d %s", path, ret, err);
		CHECK(uc_graph_arena_bytes(&g) <= UC_MAX_ARENA_BYTES / 4, "%s: %llu bytes", path,
		      (unsigned long long)uc_graph_arena_bytes(&g));
		uc_graph_free(&g);
		found++;
	}
	closedir(d);
	return found ? T_PASS : T_SKIP;
}

static int test_defaults(void)
{
	struct uc_graph g;

	if (load_good(&g, case_dir("defaults"),
		      "volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; };\n"))
		return T_FAIL;
	CHECK(g.dev.queues == 1, "queues %u", g.dev.queues);
	CHECK(g.dev.depth == 128, "depth %u", g.dev.depth);
	CHECK(g.dev.max_io == 512 * K, "max_io %u", g.dev.max_io);
	CHECK(g.dev.block_size == 512, "block_size %u", g.dev.block_size);
	CHECK(g.dev.id == -1, "id %d", g.dev.id);
	CHECK(g.dev.recovery == UC_RECOVERY_REISSUE, "recovery %d", g.dev.recovery);
	CHECK(!strcmp(g.dev.scheduler, "none"), "scheduler %s", g.dev.scheduler);
	CHECK(g.dev.spin_us == 0, "spin_us %u", g.dev.spin_us);
	CHECK(g.size == 1 * M && g.nr_nodes == 1 && g.nr_leaves == 1, "graph");
	/* file leaves default to O_DIRECT */
	{
		char status[512];

		g.root->ops->status(g.root, status, sizeof(status));
		CHECK(!strstr(status, "buffered"), "status %s", status);
	}
	uc_graph_free(&g);

	if (load_good(&g, case_dir("empty_device"),
		      "device = { };\n"
		      "volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; };\n"))
		return T_FAIL;
	CHECK(g.dev.queues == 1 && g.dev.depth == 128 && g.dev.max_io == 512 * K &&
	      g.dev.block_size == 512 && g.dev.id == -1, "defaults with an empty device group");
	uc_graph_free(&g);
	return T_PASS;
}

static int test_recovery_modes(void)
{
	static const char *const names[] = { "reissue", "requeue", "fail", "off" };
	char text[256];
	struct uc_graph g;

	for (unsigned int i = 0; i < 4; i++) {
		snprintf(text, sizeof(text), "device = { recovery = \"%s\"; };\n"
			 "volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; };\n", names[i]);
		if (load_good(&g, case_dir("recovery"), text))
			return T_FAIL;
		CHECK(g.dev.recovery == (enum uc_recovery)i, "%s: %d", names[i], g.dev.recovery);
		uc_graph_free(&g);
	}
	return T_PASS;
}

/* device.scheduler: each name the parser takes is kept as written */
static int test_scheduler_names(void)
{
	char text[256];
	struct uc_graph g;

	for (unsigned int i = 0; uc_schedulers[i]; i++) {
		snprintf(text, sizeof(text), "device = { scheduler = \"%s\"; };\n"
			 "volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; };\n",
			 uc_schedulers[i]);
		if (load_good(&g, case_dir("scheduler"), text))
			return T_FAIL;
		CHECK(!strcmp(g.dev.scheduler, uc_schedulers[i]), "%s: %s", uc_schedulers[i],
		      g.dev.scheduler);
		uc_graph_free(&g);
	}
	return T_PASS;
}

/* device.spin_us: 0 to 1000 as written */
static int test_spin_us(void)
{
	static const unsigned int vals[] = { 0, 1, 200, 1000 };
	char text[256];
	struct uc_graph g;

	for (unsigned int i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		snprintf(text, sizeof(text), "device = { spin_us = %u; };\n"
			 "volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; };\n", vals[i]);
		if (load_good(&g, case_dir("spin_us"), text))
			return T_FAIL;
		CHECK(g.dev.spin_us == vals[i], "%u: %u", vals[i], g.dev.spin_us);
		uc_graph_free(&g);
	}
	return T_PASS;
}

/* write PATH with TEXT, for a fake /sys/block */
static void put_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* disk.c on a fake sysfs: the bracketed scheduler is read, a new one written, errors returned */
static int test_scheduler_sysfs(void)
{
	const char *root = case_dir("sysfs");
	char path[PATH_MAX + 32], buf[32];

	snprintf(path, sizeof(path), "%s/ublkb7", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/ublkb7/queue", root);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/ublkb7/queue/scheduler", root);
	put_file(path, "none [mq-deadline] kyber \n");
	CHECK(uc_disk_scheduler(root, 7, buf, sizeof(buf)) == 0 && !strcmp(buf, "mq-deadline"),
	      "read %s", buf);
	put_file(path, "none\n");
	CHECK(uc_disk_scheduler(root, 7, buf, sizeof(buf)) == 0 && !strcmp(buf, "none"),
	      "no brackets: %s", buf);
	put_file(path, "");
	CHECK(uc_disk_scheduler(root, 7, buf, sizeof(buf)) == -EINVAL, "empty file");
	CHECK(uc_disk_set_scheduler(root, 7, "bfq") == 0, "set");
	CHECK(uc_disk_scheduler(root, 7, buf, sizeof(buf)) == 0 && !strcmp(buf, "bfq"),
	      "written %s", buf);
	CHECK(uc_disk_set_scheduler(root, 8, "none") == -ENOENT, "a disk that is not there");
	CHECK(uc_disk_scheduler(root, 8, buf, sizeof(buf)) == -ENOENT, "read of no disk");
	return T_PASS;
}

static int test_device_limits(void)
{
	struct uc_graph g;

	if (load_good(&g, case_dir("limits"),
		      "device = { queues = 64; depth = 4096; max_io = \"32M\"; block_size = 4096; id = 1048575; };\n"
		      "volume = { type = \"stripe\"; chunk = \"1M\"; children = (\n"
		      "  { type = \"file\"; path = \"a.img\"; size = \"64M\"; },\n"
		      "  { type = \"file\"; path = \"b.img\"; size = \"64M\"; } ); };\n"))
		return T_FAIL;
	CHECK(g.dev.queues == 64 && g.dev.depth == 4096 && g.dev.max_io == 32 * M &&
	      g.dev.block_size == 4096 && g.dev.id == 1048575, "dev");
	uc_graph_free(&g);

	if (load_good(&g, case_dir("limits_low"),
		      "device = { queues = 1; depth = 1; max_io = 4096; id = 0; };\n"
		      "volume = { type = \"stripe\"; chunk = 4096; children = (\n"
		      "  { type = \"file\"; path = \"a.img\"; size = 4096; },\n"
		      "  { type = \"file\"; path = \"b.img\"; size = 8192; } ); };\n"))
		return T_FAIL;
	CHECK(g.dev.depth == 1 && g.dev.max_io == 4096 && g.dev.id == 0, "dev");
	CHECK(g.size == 8192, "size %llu", (unsigned long long)g.size);
	uc_graph_free(&g);
	return T_PASS;
}

static int test_sizes(void)
{
	static const struct { const char *text; uint64_t bytes; } cases[] = {
		{ "\"64K\"", 64 * K },
		{ "\"64k\"", 64 * K },
		{ "\"64KB\"", 64 * K },
		{ "65536", 64 * K },
		{ "\"65536\"", 64 * K },
		{ "\"1M\"", 1 * M },
		{ "\"1G\"", 1 * G },
		{ "\"1T\"", 1 * T },
		{ "1099511627776L", 1 * T },
		{ "\"5000\"", 4096 },	/* whole 4K blocks only */
		{ "8191", 4096 },
	};
	const char *dir = case_dir("sizes");

	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		struct uc_graph g;

		snprintf(text, sizeof(text),
			 "volume = { type = \"file\"; path = \"f%u.img\"; size = %s; };\n", i,
			 cases[i].text);
		if (load_good(&g, dir, text))
			return T_FAIL;
		CHECK(g.root->size == cases[i].bytes, "size = %s: got %llu, want %llu", cases[i].text,
		      (unsigned long long)g.root->size, (unsigned long long)cases[i].bytes);
		CHECK(g.size == cases[i].bytes, "size = %s: device %llu", cases[i].text,
		      (unsigned long long)g.size);
		uc_graph_free(&g);
		CHECK(!exists(join(dir, "f0.img")), "load created a file");
	}
	return T_PASS;
}

static int test_parse_size(void)
{
	static const struct { const char *s; int ret; uint64_t v; } cases[] = {
		{ "0", 0, 0 }, { "4096", 0, 4096 }, { "64K", 0, 64 * K }, { "2m", 0, 2 * M },
		{ "3G", 0, 3 * G }, { "1T", 0, T }, { "16777215T", 0, 16777215 * T },
		{ "1MB", 0, M }, { "12Q", -EINVAL, 0 }, { "-1", -EINVAL, 0 }, { "1.5G", -EINVAL, 0 },
		{ "", -EINVAL, 0 }, { "K", -EINVAL, 0 }, { "16777216T", -EINVAL, 0 },
		{ "99999999999999999999", -EINVAL, 0 }, { "1 K", -EINVAL, 0 }, { "1KK", -EINVAL, 0 },
	};

	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 12345;
		int ret = uc_parse_size(cases[i].s, &v);

		CHECK(ret == cases[i].ret, "\"%s\": %d", cases[i].s, ret);
		CHECK(ret || v == cases[i].v, "\"%s\": %llu", cases[i].s, (unsigned long long)v);
	}
	return T_PASS;
}

static int test_stripe_size(void)
{
	struct uc_graph g;

	if (load_good(&g, case_dir("stripe_size"),
		      "volume = { type = \"stripe\"; chunk = \"64K\"; children = (\n"
		      "  { type = \"file\"; path = \"a.img\"; size = \"100M\"; },\n"
		      "  { type = \"file\"; path = \"b.img\"; size = 100667392; },\n"	/* 96M + 4K */
		      "  { type = \"file\"; path = \"c.img\"; size = \"128M\"; } ); };\n"))
		return T_FAIL;
	CHECK(g.root->children[1]->size == 96 * M + 4 * K, "child %llu",
	      (unsigned long long)g.root->children[1]->size);
	CHECK(g.root->size == 301989888ULL, "stripe size %llu, want 3 x 96M",
	      (unsigned long long)g.root->size);
	CHECK(g.size == 301989888ULL, "device size %llu", (unsigned long long)g.size);
	uc_graph_free(&g);

	/* default chunk 64K; smallest 1M + 60K rounds down to 1M */
	if (load_good(&g, case_dir("stripe_default_chunk"),
		      "volume = { type = \"stripe\"; children = (\n"
		      "  { type = \"file\"; path = \"a.img\"; size = 1110016; },\n"
		      "  { type = \"file\"; path = \"b.img\"; size = \"8M\"; } ); };\n"))
		return T_FAIL;
	CHECK(g.root->size == 2 * M, "size %llu", (unsigned long long)g.root->size);
	CHECK(g.root->io_min == 64 * K && g.root->io_opt == 128 * K, "hints");
	uc_graph_free(&g);
	return T_PASS;
}

static int test_concat_size(void)
{
	struct uc_graph g;

	if (load_good(&g, case_dir("concat_size"),
		      "volume = { type = \"concat\"; children = (\n"
		      "  { type = \"file\"; path = \"a.img\"; size = \"128M\"; },\n"
		      "  { type = \"file\"; path = \"b.img\"; size = \"64M\"; },\n"
		      "  { type = \"file\"; path = \"c.img\"; size = 12288; },\n"
		      "  { type = \"file\"; path = \"d.img\"; size = \"320M\"; } ); };\n"))
		return T_FAIL;
	CHECK(g.root->size == 512 * M + 12 * K, "size %llu", (unsigned long long)g.root->size);
	CHECK(g.size == 512 * M + 12 * K, "device size");
	CHECK(g.nr_leaves == 4, "leaves");
	uc_graph_free(&g);

	/* one child is enough for concat; block_size 4096 keeps whole blocks */
	if (load_good(&g, case_dir("concat_one"),
		      "device = { block_size = 4096; };\n"
		      "volume = { type = \"concat\"; children = (\n"
		      "  { type = \"file\"; path = \"a.img\"; size = 10000; } ); };\n"))
		return T_FAIL;
	CHECK(g.size == 8192, "size %llu", (unsigned long long)g.size);
	uc_graph_free(&g);
	return T_PASS;
}

static int test_nested_sizes(void)
{
	struct uc_graph g;

	/* stripe of concats: 1M+3M = 4M and 2M+(2M+4K) = 4M+4K -> 2 x 4M */
	if (load_good(&g, case_dir("stripe_of_concats"),
		      "volume = { type = \"stripe\"; chunk = \"128K\"; children = (\n"
		      "  { type = \"concat\"; children = (\n"
		      "    { type = \"file\"; path = \"a.img\"; size = \"1M\"; },\n"
		      "    { type = \"file\"; path = \"b.img\"; size = \"3M\"; } ); },\n"
		      "  { type = \"concat\"; children = (\n"
		      "    { type = \"file\"; path = \"c.img\"; size = \"2M\"; },\n"
		      "    { type = \"file\"; path = \"d.img\"; size = 2101248; } ); } ); };\n"))
		return T_FAIL;
	CHECK(g.root->children[0]->size == 4 * M, "concat 0 %llu",
	      (unsigned long long)g.root->children[0]->size);
	CHECK(g.root->children[1]->size == 4 * M + 4 * K, "concat 1 %llu",
	      (unsigned long long)g.root->children[1]->size);
	CHECK(g.root->size == 8 * M, "stripe %llu", (unsigned long long)g.root->size);
	CHECK(g.nr_nodes == 7 && g.nr_leaves == 4, "counts %u %u", g.nr_nodes, g.nr_leaves);
	/* pre-order */
	CHECK(g.nodes[1] == g.root->children[0] && g.nodes[2] == g.root->children[0]->children[0] &&
	      g.nodes[4] == g.root->children[1], "pre-order");
	for (unsigned int i = 0; i < g.nr_nodes; i++)
		CHECK(g.nodes[i]->index == i, "index %u", i);
	uc_graph_free(&g);

	/* concat of stripes: 2 x 1M + 3 x 512K */
	if (load_good(&g, case_dir("concat_of_stripes"),
		      "volume = { type = \"concat\"; children = (\n"
		      "  { type = \"stripe\"; children = (\n"
		      "    { type = \"file\"; path = \"a.img\"; size = \"1M\"; },\n"
		      "    { type = \"file\"; path = \"b.img\"; size = \"3M\"; } ); },\n"
		      "  { type = \"stripe\"; chunk = \"512K\"; children = (\n"
		      "    { type = \"file\"; path = \"c.img\"; size = \"1M\"; },\n"
		      "    { type = \"file\"; path = \"d.img\"; size = \"1M\"; },\n"
		      "    { type = \"file\"; path = \"e.img\"; size = \"700K\"; } ); } ); };\n"))
		return T_FAIL;
	CHECK(g.root->size == 2 * M + 3 * 512 * K, "size %llu", (unsigned long long)g.root->size);
	CHECK(g.root->io_min == 512 * K, "io_min %u", g.root->io_min);
	uc_graph_free(&g);
	return T_PASS;
}

/* back to the directory the test started in (fd cwd), on every exit path */
static void restore_cwd(int cwd)
{
	if (fchdir(cwd))
		perror("fchdir");
	close(cwd);
}

static int test_relative_paths(void)
{
	const char *top = case_dir("relative");
	char cfgdir[PATH_MAX], elsewhere[PATH_MAX], status[512], want[PATH_MAX];
	struct uc_graph g;
	struct stat st;
	int cwd = open(".", O_RDONLY | O_DIRECTORY);

	CHECK(cwd >= 0, "open .");
	snprintf(cfgdir, sizeof(cfgdir), "%s/cfg", top);
	snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", top);
	CHECK(!mkdir(cfgdir, 0755) && !mkdir(elsewhere, 0755), "mkdir");
	t_write_file(cfgdir, "r.conf",
		     "volume = { type = \"concat\"; children = (\n"
		     "  { type = \"file\"; path = \"data/r.img\"; size = \"1M\"; },\n"
		     "  { type = \"file\"; path = \"s.img\"; size = \"1M\"; } ); };\n");
	CHECK(!chdir(elsewhere), "chdir");

	/* a relative config path from another directory */
	{
		char err[4096];
		int ret = load_capture(&g, "../cfg/r.conf", err, sizeof(err));

		if (ret) {
			restore_cwd(cwd);
			CHECK(0, "load: %d %s", ret, err);
		}
	}
	g.leaves[0]->ops->status(g.leaves[0], status, sizeof(status));
	if (strncmp(status, "../cfg/data/r.img", 17)) {
		uc_graph_free(&g);
		restore_cwd(cwd);
		CHECK(0, "status %s, want ../cfg/data/r.img", status);
	}
	uc_graph_free(&g);

	/* the config in the current directory */
	CHECK(!chdir(cfgdir), "chdir");
	{
		char err[4096];
		int ret = load_capture(&g, "r.conf", err, sizeof(err));

		if (!ret)
			g.leaves[1]->ops->status(g.leaves[1], status, sizeof(status));
		uc_graph_free(&g);
		if (ret || strncmp(status, "s.img", 5)) {
			restore_cwd(cwd);
			CHECK(0, "load r.conf in its directory: %d %s; status %s", ret, err, status);
		}
	}

	/* absolute config path, cwd elsewhere: open creates the files next to the config */
	CHECK(!chdir(elsewhere), "chdir");
	if (snprintf(want, sizeof(want), "%s/r.conf", cfgdir) >= (int)sizeof(want))
		return T_FAIL;
	{
		char err[4096];
		int ret = load_capture(&g, want, err, sizeof(err));

		if (!ret)
			ret = uc_graph_open(&g);
		uc_graph_free(&g);
		restore_cwd(cwd);
		CHECK(!ret, "load/open %s: %d %s", want, ret, err);
	}
	CHECK(!stat(join(cfgdir, "data/r.img"), &st) && st.st_size == (off_t)M, "data/r.img");
	CHECK(!stat(join(cfgdir, "s.img"), &st) && st.st_size == (off_t)M, "s.img");
	CHECK(!exists(join(elsewhere, "data")) && !exists(join(elsewhere, "s.img")),
	      "files created in the current directory");
	return T_PASS;
}

static int test_open_creates_sparse(void)
{
	const char *dir = case_dir("sparse");
	struct uc_graph g;
	struct stat st;
	int ret;

	make_file(join(dir, "old.img"), 3 * M);
	if (load_good(&g, dir,
		      "volume = { type = \"stripe\"; children = (\n"
		      "  { type = \"file\"; path = \"data/x/a.img\"; size = \"1G\"; },\n"
		      "  { type = \"file\"; path = \"b.img\"; size = \"64M\"; direct = false; },\n"
		      "  { type = \"file\"; path = \"old.img\"; size = \"2M\"; } ); };\n"))
		return T_FAIL;
	CHECK(g.root->size == 6 * M, "size %llu", (unsigned long long)g.root->size);
	CHECK(!exists(join(dir, "data")) && !exists(join(dir, "b.img")), "load created files");
	ret = uc_graph_open(&g);
	if (ret) {
		uc_graph_free(&g);
		CHECK(0, "uc_graph_open: %d", ret);
	}
	for (unsigned int i = 0; i < g.nr_leaves; i++)
		CHECK(g.leaves[i]->fd >= 0, "leaf %u fd", i);
	CHECK(g.opened, "opened");
	uc_graph_free(&g);
	CHECK(!stat(join(dir, "data/x/a.img"), &st), "a.img missing");
	CHECK(S_ISREG(st.st_mode) && st.st_size == (off_t)G, "a.img size %lld",
	      (long long)st.st_size);
	CHECK(st.st_blocks < 2048, "a.img not sparse: %lld blocks", (long long)st.st_blocks);
	CHECK(!stat(join(dir, "b.img"), &st) && st.st_size == (off_t)(64 * M) &&
	      st.st_blocks < 2048, "b.img");
	/* existing files are used as they are, not resized */
	CHECK(!stat(join(dir, "old.img"), &st) && st.st_size == (off_t)(3 * M), "old.img");

	/* a second run finds them all existing and keeps them */
	if (load_good(&g, dir,
		      "volume = { type = \"stripe\"; children = (\n"
		      "  { type = \"file\"; path = \"data/x/a.img\"; size = \"1G\"; },\n"
		      "  { type = \"file\"; path = \"b.img\"; size = \"64M\"; direct = false; },\n"
		      "  { type = \"file\"; path = \"old.img\"; size = \"2M\"; } ); };\n"))
		return T_FAIL;
	ret = uc_graph_open(&g);
	uc_graph_free(&g);
	CHECK(!ret, "second open %d", ret);
	CHECK(exists(join(dir, "data/x/a.img")) && exists(join(dir, "b.img")), "kept");
	return T_PASS;
}

static int test_open_failure_cleans_up(void)
{
	const char *dir = case_dir("open_fail");
	struct uc_graph g;
	char err[4096];
	int ret, saved, fd;

	make_file(join(dir, "old.img"), 1 * M);
	if (load_good(&g, dir,
		      "volume = { type = \"concat\"; children = (\n"
		      "  { type = \"file\"; path = \"old.img\"; },\n"
		      "  { type = \"file\"; path = \"new.img\"; size = \"1M\"; },\n"
		      "  { type = \"file\"; path = \"/proc/nonexistent/x.img\"; size = \"1M\"; },\n"
		      "  { type = \"file\"; path = \"later.img\"; size = \"1M\"; } ); };\n"))
		return T_FAIL;
	/* the open error is logged: keep it out of the test output */
	snprintf(err, sizeof(err), "%s/open_fail.log", dir);
	fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0, "log");
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	ret = uc_graph_open(&g);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	close(fd);
	CHECK(ret < 0, "uc_graph_open succeeded");
	CHECK(!g.opened, "opened after failure");
	uc_graph_free(&g);
	CHECK(!exists(join(dir, "new.img")), "new.img left behind");
	CHECK(!exists(join(dir, "later.img")), "later.img created");
	CHECK(exists(join(dir, "old.img")), "an existing file was removed");
	CHECK(!exists("/proc/nonexistent"), "/proc/nonexistent");
	return T_PASS;
}

static int test_load_twice_no_leak_state(void)
{
	/* a failed load followed by a good one on the same struct */
	const char *dir = case_dir("reuse");
	struct uc_graph g;
	char err[4096];
	const char *bad = t_write_file(dir, "bad.conf", "volume = { type = \"nope\"; };\n");

	CHECK(load_capture(&g, bad, err, sizeof(err)) == -EINVAL, "bad");
	uc_graph_free(&g);
	uc_graph_free(&g);	/* freeing twice is harmless: free zeroes g */
	if (load_good(&g, dir, "volume = { type = \"file\"; path = \"a.img\"; size = \"1M\"; };\n"))
		return T_FAIL;
	CHECK(g.size == M, "size");
	uc_graph_free(&g);
	return T_PASS;
}

/*
 * The key tables ublk-compose.conf(5) is checked against (tests/man-drift.sh) are the ones the
 * parser uses: every key of uc_device_keys and of each layer's ops.keys gets past the unknown-key
 * check (whatever else its value makes of the config), and a key outside them does not.
 */
static int try_key(const char *dir, const char *text, char *err, size_t len)
{
	struct uc_graph g;
	int ret = load_capture(&g, t_write_file(dir, "k.conf", text), err, len);

	uc_graph_free(&g);
	return ret;
}

static int test_key_tables(void)
{
	const char *dir = case_dir("key_tables");
	const char *leaf = "{ type = \"file\"; path = \"a.img\"; size = \"1M\"; }";
	char text[1024], err[4096];
	unsigned int layers = 0;

	for (const char *const *k = uc_device_keys; *k; k++) {
		snprintf(text, sizeof(text), "device = { %s = true; };\nvolume = %s;\n", *k, leaf);
		try_key(dir, text, err, sizeof(err));
		CHECK(!strstr(err, "unknown key"), "device key %s: %s", *k, err);
	}
	snprintf(text, sizeof(text), "device = { zz_bogus = true; };\nvolume = %s;\n", leaf);
	CHECK(try_key(dir, text, err, sizeof(err)) && strstr(err, "unknown key 'zz_bogus'"),
	      "device zz_bogus: %s", err);
	for (unsigned int i = 0; uc_layer_at(i); i++) {
		const struct uc_layer_ops *ops = uc_layer_at(i);
		bool parent = false;

		CHECK(ops->keys, "layer %s has no keys table", ops->name);
		for (const char *const *k = ops->keys; *k; k++)
			parent |= !strcmp(*k, "children");
		bool remote = false;	/* a leaf named by a uri (nbd), not a path */

		for (const char *const *k = ops->keys; *k; k++)
			remote |= !strcmp(*k, "uri");
		for (const char *const *k = ops->keys; ; k++) {
			const char *key = *k ? *k : "zz_bogus";

			if (*k && (!strcmp(key, "type") || !strcmp(key, "children")))
				continue;
			snprintf(text, sizeof(text), "volume = { type = \"%s\"; %s = true;%s%s%s };\n",
				 ops->name, key, parent ? " children = ( " : "", parent ? leaf : "",
				 parent ? " );" : remote ? " uri = \"nbd+unix:///?socket=/nonexistent\";" :
				 " path = \"b.img\"; size = \"1M\";");
			if ((!strcmp(ops->name, "file") && (!strcmp(key, "path") || !strcmp(key, "size"))) ||
			    (remote && !strcmp(key, "uri")))
				snprintf(text, sizeof(text), "volume = { type = \"%s\"; %s = true; };\n",
					 ops->name, key);
			try_key(dir, text, err, sizeof(err));
			if (!*k) {
				CHECK(strstr(err, "unknown key 'zz_bogus' in"), "%s zz_bogus: %s", ops->name, err);
				break;
			}
			CHECK(!strstr(err, "unknown key"), "%s key %s: %s", ops->name, key, err);
		}
		layers++;
	}
	CHECK(layers >= 6, "only %u layers", layers);
	return T_PASS;
}

static const struct t_case cases[] = {
#define C(fn) { #fn, test_##fn }
	C(syntax_error), C(syntax_missing_semicolon_eof), C(unknown_top_key),
	C(unknown_device_key), C(device_not_group), C(unknown_stripe_key), C(unknown_file_key),
	C(unknown_concat_key), C(missing_volume), C(volume_not_group), C(layer_without_type),
	C(child_without_type), C(unknown_layer_type), C(empty_type), C(type_not_string),
	C(child_not_group), C(children_not_list), C(stripe_one_child), C(concat_zero_children),
	C(concat_no_children), C(file_without_path),
	C(queues_string), C(direct_int), C(chunk_bool), C(size_float), C(path_int),
	C(size_bad_suffix), C(size_negative_string), C(size_negative_int), C(size_fraction),
	C(size_empty), C(size_overflow), C(size_zero), C(size_below_4k),
	C(chunk_not_pow2), C(chunk_too_small), C(chunk_too_big), C(stripe_child_below_chunk),
	C(depth_zero), C(depth_5000), C(queues_zero), C(queues_65), C(queues_huge_int64),
	C(block_size_1024), C(max_io_3k), C(recovery_unknown), C(recovery_not_string),
	C(recovery_modes), C(max_io_64m), C(max_io_unaligned), C(id_negative),
	C(duplicate_path), C(duplicate_same_file_two_spellings), C(duplicate_same_file_via_subdir),
	C(duplicate_new_file_two_spellings), C(duplicate_new_file_dotdot),
	C(missing_file_without_size), C(existing_file_smaller_than_size), C(existing_file_below_4k),
	C(path_is_directory), C(nesting_too_deep), C(nesting_at_limit),
	C(subs_over_16_bits), C(arenas_over_cap), C(arenas_over_cap_default_max_io),
	C(arenas_fit), C(repo_confs_fit_arenas),
	C(example_schema), C(repo_example_confs), C(defaults), C(device_limits), C(sizes),
	C(parse_size), C(stripe_size), C(concat_size), C(nested_sizes), C(relative_paths),
	C(open_creates_sparse), C(open_failure_cleans_up), C(load_twice_no_leak_state),
	C(key_tables), C(scheduler_unknown), C(scheduler_not_string), C(scheduler_names),
	C(scheduler_sysfs), C(spin_us_negative), C(spin_us_over_1000), C(spin_us_not_int),
	C(spin_us),
#undef C
};

int main(void)
{
	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
