/* SPDX-License-Identifier: MIT */
/*
 * The compress layer without ublk: its format (superblock, map, journal
 * blocks), the space allocator against a model, bad configs, then volumes
 * over temp files on a real io_uring: random mixes against a model,
 * reopening, power cuts (the fault layer's lose_unflushed under it, in a
 * child process) with the journal replayed, ENOSPC and space coming back
 * after a discard, a corrupted extent (EIO, or the mirror's other copy),
 * and checkpoints as the journal fills.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>
#include "compress_meta.h"
#include "crc32c.h"
#include "events.h"
#include "harness.h"
#include "log.h"
#include "mirror_meta.h"
#include "testlib.h"

/* The path of name in the scratch directory (static storage, 4 at a time). */
static const char *tpath(const char *name)
{
	static char p[4][512];
	static int k;

	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", t_tmpdir(), name);
	return p[k];
}

static bool all_zero_buf(const uint8_t *p, size_t len)
{
	return !p[0] && !memcmp(p, p + 1, len - 1);
}

/* ---- format ---- */

static int test_format(void)
{
	struct cz_sb a, b;
	uint8_t blk[CZ_BLOCK];
	struct cz_entry e[CZ_MAP_PER_BLOCK], f[CZ_MAP_PER_BLOCK];
	struct cz_jent j[CZ_J_PER_BLOCK], k[CZ_J_PER_BLOCK];

	memset(&a, 0, sizeof(a));
	CHECK(!cz_layout(&a, 64 * M, 1024 * M, 64 * K), "layout");
	/* 64M child: pages alone up to one per block (16384), 130 blocks of records each area */
	CHECK(a.map_blocks == (16384 + 254) / 255 && a.page_blocks == 130 &&
	      a.journal_blocks == 4 * 65 + 16384 / 64 &&
	      a.pages_off == 2 + 2 * a.map_blocks && a.journal_off == a.pages_off + 2 * a.page_blocks &&
	      a.data_off == a.journal_off + a.journal_blocks, "layout %llu %llu %llu %llu",
	      (unsigned long long)a.map_blocks, (unsigned long long)a.page_blocks,
	      (unsigned long long)a.journal_blocks, (unsigned long long)a.data_off);
	CHECK(cz_page_capacity(&a) == 130 * CZ_PG_PER_BLOCK, "page capacity");
	/* a 32G child: the table stops at 1M pages (the first rule's quarter would be 2M) */
	CHECK(!cz_layout(&b, 32768 * M, 65536 * M, 64 * K) && b.page_blocks == (1048576 + 126) / 127,
	      "capacity bound: %llu", (unsigned long long)b.page_blocks);
	CHECK(!cz_layout_old(&b, 32768 * M, 65536 * M, 64 * K) && b.page_blocks == (2097152 + 126) / 127,
	      "first rule, 32G: %llu", (unsigned long long)b.page_blocks);
	/*
	 * A volume made by the first rule (a quarter of the child's blocks: 33
	 * blocks here) keeps its layout: its superblock is read as it is, and
	 * one that matches no rule is refused.
	 */
	CHECK(!cz_layout_old(&b, 64 * M, 1024 * M, 64 * K) && b.page_blocks == 33 &&
	      b.journal_blocks == 4 * 65 + 4096 / 64 && b.data_off < a.data_off, "first rule layout");
	b.version = CZ_VERSION;
	b.gen = 3;
	b.ckpt_pages = 4000;
	cz_sb_encode(&b, blk);
	{
		struct cz_sb c;

		CHECK(!cz_sb_decode(&c, blk) && !memcmp(&b, &c, sizeof(b)), "a first-rule superblock");
		b.page_blocks = 34;	/* neither rule */
		b.journal_off += 2;
		b.data_off += 2;
		b.data_blocks -= 2;
		cz_sb_encode(&b, blk);
		CHECK(cz_sb_decode(&c, blk) == -EBADMSG, "a layout of no rule");
	}
	CHECK(cz_layout(&b, 512 * K, 1024 * M, 64 * K) == -ENOSPC, "a child too small for the map");
	a.version = CZ_VERSION;
	a.gen = 7;
	a.ckpt_area = 1;
	a.ckpt_id = 3;
	a.ckpt_seq = 99;
	a.journal_head = 17;
	a.level = -3;
	a.uuid[5] = 0x42;
	cz_sb_encode(&a, blk);
	CHECK(!cz_sb_decode(&b, blk) && !memcmp(&a, &b, sizeof(a)), "superblock round trip");
	blk[200] ^= 1;
	CHECK(cz_sb_decode(&b, blk) == -EBADMSG, "a flipped bit");
	a.journal_head = a.journal_blocks;
	cz_sb_encode(&a, blk);
	CHECK(cz_sb_decode(&b, blk) == -EBADMSG, "a journal head outside the ring");
	memset(blk, 0, sizeof(blk));
	CHECK(cz_sb_decode(&b, blk) == -ENOENT, "zeroes");

	for (unsigned int i = 0; i < CZ_MAP_PER_BLOCK; i++)
		e[i] = (struct cz_entry){ cz_loc(t_rand() & ((1ULL << 40) - 1), 1 + i % 16, i % 3),
					  (uint32_t)t_rand(), (uint32_t)t_rand() };
	cz_map_encode(blk, e, CZ_MAP_PER_BLOCK, 5, 9);
	CHECK(!cz_map_decode(blk, f, CZ_MAP_PER_BLOCK, 5, 9) && !memcmp(e, f, sizeof(e)), "map block");
	CHECK(cz_kind(&f[5]) == 2 && cz_nblk(&f[5]) == 6, "entry fields");
	CHECK(cz_map_decode(blk, f, CZ_MAP_PER_BLOCK, 4, 9) == -EBADMSG, "another checkpoint's block");
	CHECK(cz_map_decode(blk, f, CZ_MAP_PER_BLOCK, 5, 8) == -EBADMSG, "block at another index");
	blk[100] ^= 4;
	CHECK(cz_map_decode(blk, f, CZ_MAP_PER_BLOCK, 5, 9) == -EBADMSG, "a flipped bit");

	memset(j, 0, sizeof(j));
	for (unsigned int i = 0; i < CZ_J_PER_BLOCK; i++) {
		j[i].cluster = t_rand() & ((1ULL << 48) - 1);
		j[i].type = 1 + i % 3;
		j[i].page = t_rand();
		j[i].e = e[i];
		j[i].s = t_rand();
	}
	{
		struct cz_jhdr hw = { .seq = 1234, .first = 987654321, .durable = 987654000,
				      .n = CZ_J_PER_BLOCK }, hr;
		bool same = true;

		cz_journal_encode(blk, 0xabcdef, &hw, j);
		CHECK(cz_journal_decode(blk, 1234, 0xabcdef, &hr, k) == CZ_J_PER_BLOCK &&
		      hr.first == hw.first && hr.durable == hw.durable, "journal block");
		for (unsigned int i = 0; i < CZ_J_PER_BLOCK; i++)
			same &= j[i].cluster == k[i].cluster && j[i].type == k[i].type &&
				j[i].page == k[i].page && !memcmp(&j[i].e, &k[i].e, sizeof(j[i].e)) &&
				j[i].s == k[i].s;
		CHECK(same, "journal entries round trip");
		CHECK(cz_journal_decode(blk, 1235, 0xabcdef, &hr, k) < 0, "journal block of another seq");
		CHECK(cz_journal_decode(blk, 1234, 0xabcdee, &hr, k) < 0, "journal block of another volume");
		blk[4000] ^= 1;
		CHECK(cz_journal_decode(blk, 1234, 0xabcdef, &hr, k) < 0, "torn journal block");
	}
	{
		/* page records: a full block, a partial one; page numbers from 0 */
		struct cz_prec r[CZ_PG_PER_BLOCK], x[CZ_PG_PER_BLOCK];

		for (unsigned int i = 0; i < CZ_PG_PER_BLOCK; i++)
			r[i] = (struct cz_prec){ i ? t_rand() >> 20 : 0, e[i], t_rand() };
		for (unsigned int n = CZ_PG_PER_BLOCK; n; n = n == CZ_PG_PER_BLOCK ? 5 : 0) {
			bool same = true;

			cz_pages_encode(blk, r, n, 8, 3);
			CHECK(cz_pages_decode(blk, x, 8, 3) == (int)n, "page records: %u", n);
			for (unsigned int i = 0; i < n; i++)
				same &= x[i].page == r[i].page && x[i].stamp == r[i].stamp &&
					!memcmp(&x[i].e, &r[i].e, sizeof(r[i].e));
			CHECK(same, "page records round trip (%u)", n);
			CHECK(cz_pages_decode(blk, x, 7, 3) == -EBADMSG, "another checkpoint's page block");
			CHECK(cz_pages_decode(blk, x, 8, 4) == -EBADMSG, "page block at another index");
		}
		blk[64] ^= 2;
		CHECK(cz_pages_decode(blk, x, 8, 3) == -EBADMSG, "a flipped bit in a page block");
	}
	{
		/* a fragment's fields and the blocks it touches */
		struct cz_entry fr = { cz_loc(77, 3000, CZ_ZSTD), 2000, 0 };

		CHECK(cz_pblk(&fr) == 77 && cz_boff(&fr) == 3000 && cz_kind(&fr) == CZ_ZSTD &&
		      cz_fblocks(&fr) == 2, "fragment fields");
		fr.clen = 1096;
		CHECK(cz_fblocks(&fr) == 1, "a fragment up to the end of its block");
	}
	return T_PASS;
}

/* The allocator against a model: no block handed out twice, counts right, runs found. */
static int test_space(void)
{
	enum { NB = 5000 };
	static uint8_t owner[NB];
	struct { uint64_t b; unsigned int n; } ext[4000];
	unsigned int nr = 0, fails = 0;
	struct cz_space sp;
	uint64_t used = 0;

	CHECK(!cz_space_init(&sp, NB), "init");
	memset(owner, 0, sizeof(owner));
	for (int i = 0; i < 200000; i++) {
		if (t_rand() % 100 < 55 && nr < 4000) {
			unsigned int n = 1 + t_rand() % 16;
			uint64_t b = cz_space_alloc(&sp, n);

			if (b == UINT64_MAX) {
				/* only when no run of n free blocks exists */
				for (uint64_t s = 0, run = 0; s < NB; s++) {
					run = owner[s] ? 0 : run + 1;
					CHECK(run < n, "alloc of %u failed with a free run at %llu", n,
					      (unsigned long long)(s + 1 - n));
				}
				fails++;
				continue;
			}
			CHECK(b + n <= NB, "extent past the end");
			for (unsigned int k = 0; k < n; k++)
				CHECK(!owner[b + k]++, "block %llu handed out twice", (unsigned long long)(b + k));
			ext[nr].b = b;
			ext[nr++].n = n;
			used += n;
		} else if (nr) {
			unsigned int x = t_rand() % nr;

			cz_space_release(&sp, ext[x].b, ext[x].n);
			for (unsigned int k = 0; k < ext[x].n; k++)
				owner[ext[x].b + k] = 0;
			used -= ext[x].n;
			ext[x] = ext[--nr];
		}
		CHECK(sp.used == used, "used %llu, want %llu", (unsigned long long)sp.used,
		      (unsigned long long)used);
	}
	CHECK(fails > 100, "the allocator never ran out (%u)", fails);
	CHECK(cz_space_take(&sp, ext[0].b, 1) == -EEXIST, "take of a used block");
	CHECK(cz_space_take(&sp, NB - 1, 2) == -ERANGE, "take past the end");
	cz_space_free_all(&sp);
	return T_PASS;
}

/* ---- config ---- */

#define CZ(extra) \
	"device = { max_io = \"64K\"; };\n" \
	"volume = {\n" \
	"  type = \"compress\";\n" \
	extra \
	"  children = ( { type = \"file\"; path = \"a.img\"; size = \"8M\"; } );\n" \
	"};\n"

static int test_config(void)
{
	static const struct { const char *name, *needle, *text; } cases[] = {
		{ "no_size", "compress needs a size", "device = { max_io = \"64K\"; };\nvolume = { #<\n"
		  "  type = \"compress\";\n  children = ( { type = \"file\"; path = \"a.img\"; size = \"8M\"; } );\n};\n" },
		{ "cluster_pow2", "cluster must be a power of two from 4K to 1M",
		  CZ("  size = \"64M\"; cluster = \"48K\"; #<\n") },
		{ "cluster_big", "power of two", CZ("  size = \"64M\"; cluster = \"2M\"; #<\n") },
		{ "algorithm", "algorithm must be \"zstd\"", CZ("  size = \"64M\"; algorithm = \"lz4\"; #<\n") },
		{ "level", "level must be", CZ("  size = \"64M\"; level = 99; #<\n") },
		{ "level0", "level must be", CZ("  size = \"64M\"; level = 0; #<\n") },
		{ "size_small", "size must be at least one cluster", CZ("  size = \"4K\"; #<\n") },
		{ "unknown", "unknown key 'ratio'", CZ("  size = \"64M\"; ratio = 2; #<\n") },
		{ "fold_idle_int", "fold_idle must be a string", CZ("  size = \"64M\"; fold_idle = 10; #<\n") },
		{ "fold_idle_unit", "bad fold_idle '10m'", CZ("  size = \"64M\"; fold_idle = \"10m\"; #<\n") },
		{ "child_small", "too small for the metadata",
		  "volume = { type = \"compress\"; size = \"1T\";\n"
		  "  children = ( #<\n    { type = \"file\"; path = \"a.img\"; size = \"1M\"; } ); };\n" },
		{ "two_children", "needs exactly one child",
		  "volume = { type = \"compress\"; size = \"64M\"; children = ( #<\n"
		  "  { type = \"file\"; path = \"a.img\"; size = \"8M\"; },\n"
		  "  { type = \"file\"; path = \"b.img\"; size = \"8M\"; } ); };\n" },
	};
	struct uc_graph g;
	int fails = 0;

	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		fails += expect_bad(cases[i].name, cases[i].text, cases[i].needle) != T_PASS;
	CHECK(!fails, "%d bad configs were not refused right", fails);
	if (load_good(&g, "good", CZ("  size = \"1G\"; level = -5; cluster = \"16K\";\n")))
		return T_FAIL;
	CHECK(g.size == 1024 * M && !g.zero_copy && g.root->io_opt == 16 * K, "size %llu zc %d",
	      (unsigned long long)g.size, g.zero_copy);
	uc_graph_free(&g);
	return T_PASS;
}

/* ---- volumes ---- */

static const char *cz_conf(const char *name, const char *extra, const char *child)
{
	static char text[2048];

	snprintf(text, sizeof(text),
		 "device = { max_io = \"128K\"; };\n"
		 "volume = { type = \"compress\"; name = \"cz\"; %s\n"
		 "  children = ( %s ); };\n", extra, child);
	return conf(name, text);
}

static const char *file_child(const char *img, const char *size)
{
	static char c[512];

	snprintf(c, sizeof(c), "{ type = \"file\"; name = \"f\"; path = \"%s\"; size = \"%s\"; }", img,
		 size);
	return c;
}

static const char *json(struct uc_node *n)
{
	static char buf[2048];

	n->ops->json(n, buf, sizeof(buf));
	return buf;
}

static uint64_t json_u64(struct uc_node *n, const char *key)
{
	const char *j = json(n), *p = strstr(j, key);

	return p ? strtoull(strchr(p, ':') + 1, NULL, 10) : UINT64_MAX;
}

/* Mixes of every op with compressible data, reopened, with FUA, flushes and discards. */
static int test_mix_reopen(void)
{
	struct harness h;
	uint8_t *saved;
	uint64_t size;
	int fails;

	unlink(conf("mix.img", ""));
	CHECK(!harness_open(&h, cz_conf("mix.conf", "size = \"16M\"; cluster = \"16K\";",
					 file_child("mix.img", "24M"))), "open");
	h.compressible = true;
	size = h.g.size;
	fails = run_mix(&h, 4000, true);
	printf("  mix: %llu requests, %d failures; %s\n", (unsigned long long)h.nr_reqs, fails,
	       status(h.g.root));
	CHECK(!fails, "mix");
	{
		/* half-zero data: 16K clusters shrink to about 8K and take 3 blocks, 1.33:1 */
		double ratio = strtod(strstr(json(h.g.root), "\"ratio\": ") + 9, NULL);

		CHECK(ratio > 1.25 && ratio < 2.6, "ratio %.2f of half-zero data", ratio);
	}
	saved = malloc(size);
	memcpy(saved, h.model, size);
	harness_close(&h);
	/* a clean stop: everything back, nothing to replay; now compressing on the queue thread */
	CHECK(!harness_open(&h, cz_conf("mix.conf", "size = \"16M\"; cluster = \"16K\"; workers = 0;",
					 file_child("mix.img", "24M"))), "reopen");
	CHECK(json_u64(h.g.root, "\"workers\"") == 0, "%s", json(h.g.root));
	memcpy(h.model, saved, size);
	for (uint64_t off = 0; off < size; off += 128 * K)
		CHECK(one(&h, UC_OP_READ, off, 128 * K) == 128 * K, "read back at %llu after reopening",
		      (unsigned long long)off);
	h.compressible = false;	/* stored raw: the child holds it all */
	fails = run_mix(&h, 2000, true);
	CHECK(!fails, "mix of random data");
	CHECK(strstr(status(h.g.root), "csum_errors=0"), "%s", status(h.g.root));
	harness_close(&h);
	free(saved);
	return T_PASS;
}

/*
 * Power cuts: the fault layer under compress keeps what was not flushed in
 * memory and drops it. In a child process: random writes with flushes now
 * and then, the power cut at a random moment, _exit. Then the volume
 * reopens (journal replayed) and every 4K page holds either what it held
 * at the last completed flush or something written after it, never
 * anything else. The fault layer's cache is small, so it is written back
 * early now and then: a cut loses some unflushed writes and not others.
 * Rounds go on on the same volume.
 */
#define PC_SIZE	(8 * M)
#define PC_CL	(16 * K)
#define PC_NPG	(PC_SIZE / 4096)
#define PC_VER	64

struct pc_state {		/* shared with the child through a file */
	uint32_t nr[PC_NPG];	/* acceptable versions of each page */
	uint32_t ver[PC_NPG][PC_VER];	/* their crc32c */
	uint32_t cur[PC_NPG];	/* the crc32c of what the page holds now */
	uint64_t writes, flushes;
};

static uint32_t page_crc(const uint8_t *buf)
{
	return uc_crc32c(0, buf, 4096);
}

static int powercut_round(const char *cfg, struct pc_state *st, unsigned int round)
{
	struct harness h;
	char reply[256];
	unsigned int nr = 200 + t_rand() % 600;

	if (harness_open(&h, cfg))
		return -1;
	h.compressible = round % 2;
	/* what the volume holds now, as the model */
	for (uint64_t off = 0; off < PC_SIZE; off += 128 * K) {
		h.reqs[0] = (struct uc_req){ .op = UC_OP_READ, .off = off, .len = 128 * K };
		h.done[0] = false;
		h.inflight = 1;
		h.lax = true;
		uc_queue_start(&h.q, 0, &h.reqs[0]);
		if (harness_drain(&h) || h.results[0] != 128 * K)
			return -1;
		memcpy(h.model + off, h.q.ios[0].buf, 128 * K);
	}
	for (unsigned int c = 0; c < PC_NPG; c++) {
		st->nr[c] = 1;
		st->ver[c][0] = st->cur[c] = page_crc(h.model + c * 4096);
	}
	h.lax = false;
	for (unsigned int i = 0; i < nr; i++) {
		uint64_t len = 4096 * (1 + t_rand() % 16), off = 4096 * (t_rand() % ((PC_SIZE - len) / 4096));
		unsigned int pick = t_rand() % 100;

		if (pick < 85) {
			if (pick < 80) {
				issue(&h, UC_OP_WRITE, t_rand() % 16 ? 0 : UC_F_FUA, off, len);
			} else {
				off &= ~(PC_CL - 1);
				len = PC_CL;
				issue(&h, UC_OP_DISCARD, 0, off, len);
			}
			if (harness_reap(&h, 0) || h.failures)
				return -1;
			st->writes++;
			/* the pages it touched may also come back as they are now */
			for (unsigned int c = off / 4096; c <= (off + len - 1) / 4096; c++) {
				uint32_t crc = st->cur[c] = page_crc(h.model + c * 4096);
				bool have = false;

				for (unsigned int k = 0; k < st->nr[c]; k++)
					have |= st->ver[c][k] == crc;
				if (!have && st->nr[c] < PC_VER)
					st->ver[c][st->nr[c]++] = crc;
			}
		} else {
			issue(&h, UC_OP_FLUSH, 0, 0, 0);
			if (harness_reap(&h, 0) || h.failures)
				return -1;
			/* durable: the only acceptable version of a page is its last one */
			for (unsigned int c = 0; c < PC_NPG; c++) {
				st->ver[c][0] = st->cur[c];
				st->nr[c] = 1;
			}
			st->flushes++;
		}
	}
	if (h.inflight)
		return -1;
	if (getenv("UC_TEST_VERBOSE"))
		fprintf(stderr, "round %u: disk %s\n", round, status(uc_graph_find(&h.g, "disk")));
	if (ctl(uc_graph_find(&h.g, "disk"), "crash", "on", reply, sizeof(reply)))
		return -1;
	if (getenv("UC_TEST_VERBOSE"))
		fprintf(stderr, "round %u: %s; %s\n", round, reply, json(h.g.root));
	_exit(0);	/* the power is gone: no stop, no checkpoint */
}

static int test_powercut(void)
{
	const char *state = conf("pc.state", "");
	const char *cut = cz_conf("pc-cut.conf", "size = \"8M\"; cluster = \"16K\";",
		"{ type = \"fault\"; name = \"disk\"; lose_unflushed = true; unflushed_max = \"512K\";\n"
		"    children = ( { type = \"file\"; path = \"pc.img\"; size = \"12M\"; } ); }");
	const char *plain = cz_conf("pc.conf", "size = \"8M\"; cluster = \"16K\";",
				    file_child("pc.img", "12M"));
	uint64_t replays = 0, lost = 0;
	struct pc_state *st;
	int fd;

	unlink(conf("pc.img", ""));
	fd = open(state, O_RDWR | O_TRUNC);
	CHECK(fd >= 0 && !ftruncate(fd, sizeof(*st)), "state file");
	st = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(st != MAP_FAILED, "mmap");
	for (unsigned int round = 0; round < 24; round++) {
		struct harness h;
		pid_t pid;
		int wst, bad = 0;

		/* the child draws from the random stream, not the parent: move on, or rounds repeat */
		for (unsigned int k = 0; k < 1 + round % 7; k++)
			(void)t_rand();
		pid = fork();
		CHECK(pid >= 0, "fork");
		if (!pid)
			_exit(powercut_round(cut, st, round) ? 2 : 0);
		CHECK(waitpid(pid, &wst, 0) == pid && WIFEXITED(wst) && !WEXITSTATUS(wst),
		      "round %u: the writer failed (exit %d)", round, WEXITSTATUS(wst));
		/* powered on again, without the fault layer: the journal replays */
		CHECK(!harness_open(&h, plain), "round %u: reopen after the power cut", round);
		replays += json_u64(h.g.root, "\"commits\"") == 0;
		for (uint64_t off = 0; off < PC_SIZE; off += PC_CL) {
			h.reqs[0] = (struct uc_req){ .op = UC_OP_READ, .off = off, .len = PC_CL };
			h.done[0] = false;
			h.inflight = 1;
			h.lax = true;
			uc_queue_start(&h.q, 0, &h.reqs[0]);
			CHECK(!harness_drain(&h) && h.results[0] == (int)PC_CL,
			      "round %u: read of cluster %llu: %d", round, (unsigned long long)(off / PC_CL),
			      h.results[0]);
			for (unsigned int c = off / 4096; c < (off + PC_CL) / 4096; c++) {
				uint32_t crc = page_crc(h.q.ios[0].buf + (c - off / 4096) * 4096);
				bool ok = false;

				for (unsigned int k = 0; k < st->nr[c]; k++)
					ok |= st->ver[c][k] == crc;
				lost += ok && crc != st->cur[c];	/* an unflushed write that is gone */
				if (!ok && bad++ < 5)
					fprintf(stderr, "round %u: page %u holds data it never held "
						"(of %u acceptable versions)\n", round, c, st->nr[c]);
			}
		}
		CHECK(!bad, "round %u: %d pages hold wrong data after the power cut", round, bad);
		harness_close(&h);
	}
	printf("  powercut: 24 rounds, %llu writes, %llu flushes, %llu pages lost their unflushed writes\n",
	       (unsigned long long)st->writes, (unsigned long long)st->flushes, (unsigned long long)lost);
	CHECK(lost > 0, "no power cut lost anything: the test tests nothing");
	munmap(st, sizeof(*st));
	close(fd);
	return T_PASS;
}

/*
 * A daemon killed (not a power cut): the child's page cache keeps what was
 * written, and so every write that completed survives, flushed or not
 * (recovery would have lost nothing). A child process writes, then _exits.
 */
static int test_kill(void)
{
	const char *cfg = cz_conf("kill.conf", "size = \"8M\"; cluster = \"16K\";",
				  file_child("kill.img", "12M"));
	const char *state = conf("kill.state", "");
	uint8_t *model;
	int fd;

	unlink(tpath("kill.img"));
	fd = open(state, O_RDWR | O_TRUNC);
	CHECK(fd >= 0 && !ftruncate(fd, PC_SIZE), "state file");
	model = mmap(NULL, PC_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(model != MAP_FAILED, "mmap");
	for (int round = 0; round < 6; round++) {
		struct harness h;
		pid_t pid;
		int wst;

		for (int k = 0; k < 1 + round; k++)	/* each round a different writer */
			(void)t_rand();
		pid = fork();

		CHECK(pid >= 0, "fork");
		if (!pid) {
			if (harness_open(&h, cfg))
				_exit(2);
			memcpy(h.model, model, PC_SIZE);
			h.compressible = round % 2;
			for (int i = 0; i < 300; i++) {
				uint64_t len = 4096 * (1 + t_rand() % 24);

				issue(&h, t_rand() % 8 ? UC_OP_WRITE : UC_OP_DISCARD, 0,
				      4096 * (t_rand() % ((PC_SIZE - len) / 4096)), len);
				if (t_rand() % 50 == 0)
					issue(&h, UC_OP_FLUSH, 0, 0, 0);
			}
			if (harness_reap(&h, 0) || h.failures)
				_exit(3);
			memcpy(model, h.model, PC_SIZE);
			_exit(0);	/* killed: no stop, no checkpoint */
		}
		CHECK(waitpid(pid, &wst, 0) == pid && WIFEXITED(wst) && !WEXITSTATUS(wst),
		      "round %d: the writer failed (%d)", round, WEXITSTATUS(wst));
		CHECK(!harness_open(&h, cfg), "round %d: reopen", round);
		memcpy(h.model, model, PC_SIZE);
		for (uint64_t off = 0; off < PC_SIZE; off += 128 * K)
			CHECK(one(&h, UC_OP_READ, off, 128 * K) == 128 * K,
			      "round %d: a completed write was lost near %llu", round, (unsigned long long)off);
		harness_close(&h);
	}
	munmap(model, PC_SIZE);
	close(fd);
	return T_PASS;
}

/*
 * Replay past the durable mark: a journal entry whose data never reached
 * the disk (here: its extent smashed after the writer died) is left out,
 * and the cluster reads as it was at the last flush, not as EIO.
 */
static int test_replay_lost_data(void)
{
	const char *cfg = cz_conf("lost.conf", "size = \"8M\"; cluster = \"16K\";",
				  file_child("lost.img", "12M"));
	const char *img = tpath("lost.img");
	uint8_t *v1 = malloc(PC_CL), blk[CZ_BLOCK];
	struct cz_jent ents[CZ_J_PER_BLOCK];
	struct cz_jhdr jh;
	struct cz_sb sb[2], *cur;
	struct cz_entry last = { 0 };
	struct harness h;
	uint64_t uuid_lo;
	pid_t pid;
	int wst, fd, found = 0;

	unlink(img);
	fd = open(conf("lost.v1", ""), O_RDWR | O_TRUNC);
	CHECK(fd >= 0 && !ftruncate(fd, PC_CL), "v1 file");
	pid = fork();
	if (!pid) {
		uint8_t *m = mmap(NULL, PC_CL, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

		if (m == MAP_FAILED || harness_open(&h, cfg) ||
		    one(&h, UC_OP_WRITE, 3 * PC_CL, PC_CL) != (int)PC_CL || one(&h, UC_OP_FLUSH, 0, 0))
			_exit(2);
		memcpy(m, h.model + 3 * PC_CL, PC_CL);	/* durable */
		if (one(&h, UC_OP_WRITE, 3 * PC_CL, PC_CL) != (int)PC_CL)	/* written, not flushed */
			_exit(3);
		_exit(0);
	}
	CHECK(pid > 0 && waitpid(pid, &wst, 0) == pid && WIFEXITED(wst) && !WEXITSTATUS(wst),
	      "writer: %d", WEXITSTATUS(wst));
	CHECK(pread(fd, v1, PC_CL, 0) == (ssize_t)PC_CL, "v1");
	close(fd);
	/* the journal after the checkpoint: the last entry for cluster 3 is the unflushed write */
	fd = open(img, O_RDWR);
	{
		int r0, r1;

		CHECK(fd >= 0 && pread(fd, blk, CZ_BLOCK, 0) == CZ_BLOCK, "read sb");
		r0 = cz_sb_decode(&sb[0], blk);
		CHECK(pread(fd, blk, CZ_BLOCK, CZ_BLOCK) == CZ_BLOCK, "read sb copy 1");
		r1 = cz_sb_decode(&sb[1], blk);
		CHECK(!r0 || !r1, "no superblock");
		cur = !r0 && (r1 || sb[0].gen > sb[1].gen) ? &sb[0] : &sb[1];
	}
	memcpy(&uuid_lo, cur->uuid, 8);
	for (uint64_t k = 0; k < 16; k++) {
		uint64_t slot = (cur->journal_head + k) % cur->journal_blocks;

		if (pread(fd, blk, CZ_BLOCK, (cur->journal_off + slot) * CZ_BLOCK) != CZ_BLOCK ||
		    cz_journal_decode(blk, cur->ckpt_seq + 1 + k, uuid_lo, &jh, ents) < 0)
			break;
		for (unsigned int i = 0; i < jh.n; i++)
			if (ents[i].cluster == 3) {
				last = ents[i].e;
				found++;
			}
	}
	CHECK(found >= 2 && cz_kind(&last) != CZ_ZERO, "journal entries for cluster 3: %d", found);
	memset(blk, 0x77, sizeof(blk));
	CHECK(pwrite(fd, blk, CZ_BLOCK, (cur->data_off + cz_pblk(&last)) * CZ_BLOCK) == CZ_BLOCK,
	      "smash the unflushed copy");
	close(fd);
	CHECK(!harness_open(&h, cfg), "reopen");
	memcpy(h.model + 3 * PC_CL, v1, PC_CL);
	CHECK(one(&h, UC_OP_READ, 3 * PC_CL, PC_CL) == (int)PC_CL,
	      "cluster 3 after the replay is not its flushed content");
	CHECK(json_u64(h.g.root, "\"checksum_errors\"") == 0, "%s", json(h.g.root));
	harness_close(&h);
	free(v1);
	return T_PASS;
}

/* A small child under a big volume: ENOSPC, data before it intact, space back after a discard. */
static int test_enospc(void)
{
	struct uc_event_rec ev[64];
	struct harness h;
	uint64_t off, full_at, seq;
	unsigned int nr, lows = 0;
	int ret = 0;

	unlink(conf("nospc.img", ""));
	CHECK(!harness_open(&h, cz_conf("nospc.conf", "size = \"64M\"; cluster = \"64K\";",
					 file_child("nospc.img", "4M"))), "open");
	uc_event_set_space_warn(90);
	uc_events_since(UINT64_MAX - 1, ev, 0, &seq);
	for (off = 0; off < h.g.size; off += 128 * K) {
		ret = one(&h, UC_OP_WRITE, off, 128 * K);	/* random: stored raw */
		if (ret != 128 * K)
			break;
	}
	full_at = off;
	/* on its way: SpaceLow once the child was fuller than 90% (device.space_warn) */
	nr = uc_events_since(seq, ev, 64, &seq);
	for (unsigned int i = 0; i < nr; i++)
		lows += ev[i].type == UC_EV_SPACE_LOW && !strcmp(ev[i].node, h.g.root->name);
	CHECK(lows == 1, "%u SpaceLow events for %s, want 1", lows, h.g.root->name);
	printf("  enospc: full after %llu bytes: %d; %s\n", (unsigned long long)full_at, ret,
	       status(h.g.root));
	CHECK(ret == -ENOSPC, "write past the space: %d, want -ENOSPC", ret);
	CHECK(full_at >= 2 * M && full_at < 4 * M, "the space ran out after %llu bytes",
	      (unsigned long long)full_at);
	/* what was written before is intact (the failed write's own range is undefined) */
	for (uint64_t o = 0; o < full_at; o += 128 * K)
		CHECK(one(&h, UC_OP_READ, o, 128 * K) == 128 * K, "read back at %llu",
		      (unsigned long long)o);
	/* a discard (not flushed) and the same writes fit again */
	CHECK(one(&h, UC_OP_DISCARD, 0, 1 * M) == 0, "discard");
	for (uint64_t o = full_at; o < full_at + 1 * M - 128 * K; o += 128 * K)
		CHECK(one(&h, UC_OP_WRITE, o, 128 * K) == 128 * K, "write after the discard at %llu",
		      (unsigned long long)o);
	CHECK(one(&h, UC_OP_READ, 0, 128 * K) == 128 * K, "the discarded range reads zero");
	harness_close(&h);
	return T_PASS;
}

/* The extent of cluster c in the image (byte offset in the child), from its checkpoint. */
static int64_t extent_of(const char *img, uint64_t base, uint64_t c, struct cz_entry *e)
{
	uint8_t b[2 * CZ_BLOCK];
	struct cz_sb s[2], *sb;
	struct cz_entry ents[CZ_MAP_PER_BLOCK];
	int fd = open(img, O_RDONLY), r0, r1;
	int64_t ret = -1;

	if (fd < 0 || pread(fd, b, sizeof(b), base) != (ssize_t)sizeof(b))
		goto out;
	r0 = cz_sb_decode(&s[0], b);
	r1 = cz_sb_decode(&s[1], b + CZ_BLOCK);
	if (r0 && r1)
		goto out;
	sb = !r0 && (r1 || s[0].gen > s[1].gen) ? &s[0] : &s[1];
	if (pread(fd, b, CZ_BLOCK, base + (sb->map_off + sb->ckpt_area * sb->map_blocks +
					   c / CZ_MAP_PER_BLOCK) * CZ_BLOCK) != CZ_BLOCK ||
	    cz_map_decode(b, ents, CZ_MAP_PER_BLOCK, sb->ckpt_id, c / CZ_MAP_PER_BLOCK))
		goto out;
	*e = ents[c % CZ_MAP_PER_BLOCK];
	ret = base + (sb->data_off + cz_pblk(e)) * CZ_BLOCK;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int corrupt(const char *img, int64_t at)
{
	int fd = open(img, O_RDWR);
	uint8_t x;
	int ok = fd >= 0 && pread(fd, &x, 1, at + 100) == 1;

	x ^= 0x5a;
	ok = ok && pwrite(fd, &x, 1, at + 100) == 1;
	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* A corrupted extent reads as EIO and is counted; its neighbours read fine. */
static int test_corrupt(void)
{
	const char *cfg = cz_conf("bad.conf", "size = \"8M\"; cluster = \"16K\";",
				  file_child("bad.img", "8M"));
	struct uc_event_rec ev;
	struct cz_entry e;
	uint64_t seq;
	struct harness h;
	uint8_t *saved;
	int64_t at;

	unlink(conf("bad.img", ""));
	CHECK(!harness_open(&h, cfg), "open");
	h.compressible = true;
	for (uint64_t off = 0; off < 1 * M; off += 128 * K)
		CHECK(one(&h, UC_OP_WRITE, off, 128 * K) == 128 * K, "write");
	{
		/* compressible, but not all zero (the 2:1 data has zero clusters) */
		static uint8_t buf[PC_CL];

		do
			harness_fill(&h, buf, PC_CL);
		while (all_zero_buf(buf, PC_CL));
		h.data = buf;
		CHECK(one(&h, UC_OP_WRITE, 5 * PC_CL, PC_CL) == (int)PC_CL, "write cluster 5");
		h.data = NULL;
	}
	saved = malloc(1 * M);
	memcpy(saved, h.model, 1 * M);
	harness_close(&h);
	at = extent_of(tpath("bad.img"), 0, 5, &e);
	CHECK(at > 0 && cz_kind(&e) != CZ_ZERO, "cluster 5's extent");
	CHECK(!corrupt(tpath("bad.img"), at), "corrupt");
	CHECK(!harness_open(&h, cfg), "reopen");
	memcpy(h.model, saved, 1 * M);
	uc_events_since(UINT64_MAX - 1, &ev, 0, &seq);
	CHECK(one(&h, UC_OP_READ, 5 * PC_CL + 4096, 4096) == -EIO, "a read of the corrupted cluster");
	/* `ublk-compose monitor` hears of it */
	CHECK(uc_events_since(seq, &ev, 1, &seq) == 1 && ev.type == UC_EV_CHECKSUM_ERROR &&
	      !strcmp(ev.node, h.g.root->name) && ev.count >= 1 && strstr(ev.detail, "cluster 5 "),
	      "no ChecksumError event: type %d node '%s' detail '%s'", ev.type, ev.node, ev.detail);
	CHECK(one(&h, UC_OP_READ, 4 * PC_CL, PC_CL) == (int)PC_CL, "its neighbour");
	CHECK(one(&h, UC_OP_READ, 6 * PC_CL, 2 * PC_CL) == 2 * (int)PC_CL, "its other neighbours");
	CHECK(json_u64(h.g.root, "\"checksum_errors\"") >= 1, "%s", json(h.g.root));
	/* rewriting the cluster heals it */
	CHECK(one(&h, UC_OP_WRITE, 5 * PC_CL, PC_CL) == (int)PC_CL, "rewrite");
	CHECK(one(&h, UC_OP_READ, 5 * PC_CL, PC_CL) == (int)PC_CL, "read after the rewrite");
	harness_close(&h);
	free(saved);
	return T_PASS;
}

/* Under compress, a mirror: one leg's extent corrupted; the other copy serves and is rewritten. */
static int test_corrupt_mirror(void)
{
	char legs[512];
	const char *cfg;
	struct cz_entry e;
	struct harness h;
	struct mirror_sb msb;
	uint8_t *saved, blk[4096], b0[16384], b1[16384];
	int64_t at;
	int fd;

	snprintf(legs, sizeof(legs),
		 "{ type = \"mirror\"; name = \"m\"; bitmap_chunk = \"1M\"; children = (\n"
		 "    { type = \"file\"; path = \"ma.img\"; size = \"12M\"; },\n"
		 "    { type = \"file\"; path = \"mb.img\"; size = \"12M\"; } ); }");
	cfg = cz_conf("cm.conf", "size = \"16M\"; cluster = \"16K\";", legs);
	unlink(conf("ma.img", ""));
	unlink(conf("mb.img", ""));
	CHECK(!harness_open(&h, cfg), "open");
	h.compressible = true;
	for (uint64_t off = 0; off < 1 * M; off += 128 * K)
		CHECK(one(&h, UC_OP_WRITE, off, 128 * K) == 128 * K, "write");
	{
		/* compressible, but not all zero (the 2:1 data has zero clusters) */
		static uint8_t buf[PC_CL];

		do
			harness_fill(&h, buf, PC_CL);
		while (all_zero_buf(buf, PC_CL));
		h.data = buf;
		CHECK(one(&h, UC_OP_WRITE, 9 * PC_CL, PC_CL) == (int)PC_CL, "write cluster 9");
		h.data = NULL;
	}
	saved = malloc(1 * M);
	memcpy(saved, h.model, 1 * M);
	harness_close(&h);
	/* the compress volume starts at the mirror's data offset on each leg */
	fd = open(tpath("ma.img"), O_RDONLY);
	CHECK(fd >= 0 && pread(fd, blk, 4096, 0) == 4096 && !mirror_sb_decode(&msb, blk), "leg sb");
	close(fd);
	at = extent_of(tpath("ma.img"), msb.data_offset, 9, &e);
	CHECK(at > 0 && cz_kind(&e) != CZ_ZERO, "cluster 9's extent");
	printf("  corrupt_mirror: cluster 9 at leg byte %lld, %u blocks, kind %u\n", (long long)at,
	       cz_nblk(&e), cz_kind(&e));
	CHECK(!corrupt(tpath("ma.img"), at), "corrupt leg a");
	CHECK(!harness_open(&h, cfg), "reopen");
	memcpy(h.model, saved, 1 * M);
	/* alone, the read goes to leg 0 (least pending, then the lowest): bad, then leg 1 */
	CHECK(one(&h, UC_OP_READ, 9 * PC_CL + 4096, 4096) == 4096, "the read of the bad cluster");
	CHECK(json_u64(h.g.root, "\"checksum_errors\"") >= 1 && json_u64(h.g.root, "\"repaired\"") == 1,
	      "%s", json(h.g.root));
	for (uint64_t off = 0; off < 1 * M; off += 128 * K)
		CHECK(one(&h, UC_OP_READ, off, 128 * K) == 128 * K, "read at %llu", (unsigned long long)off);
	printf("  corrupt_mirror: %s\n", status(h.g.root));
	harness_close(&h);
	/* the mirror's copies agree again where they differed, if the bad copy was read */
	fd = open(tpath("ma.img"), O_RDONLY);
	CHECK(fd >= 0 && pread(fd, b0, cz_nblk(&e) * 4096, at) == cz_nblk(&e) * 4096, "read leg a");
	close(fd);
	fd = open(tpath("mb.img"), O_RDONLY);
	CHECK(fd >= 0 && pread(fd, b1, cz_nblk(&e) * 4096, at) == cz_nblk(&e) * 4096, "read leg b");
	close(fd);
	CHECK(!memcmp(b0, b1, cz_nblk(&e) * 4096), "the bad copy was not rewritten");
	CHECK(!harness_open(&h, cfg), "reopen after the repair");
	memcpy(h.model, saved, 1 * M);
	CHECK(one(&h, UC_OP_READ, 9 * PC_CL, PC_CL) == PC_CL && json_u64(h.g.root, "\"checksum_errors\"") == 0,
	      "after the repair: %s", json(h.g.root));
	harness_close(&h);
	free(saved);
	return T_PASS;
}

/* Many small flushes: the journal fills, checkpoints keep it bounded; the data survives. */
static int test_checkpoints(void)
{
	const char *cfg = cz_conf("ck.conf", "size = \"8M\"; cluster = \"4K\";",
				  file_child("ck.img", "12M"));
	struct harness h;
	uint8_t *saved;
	uint64_t ck;

	unlink(conf("ck.img", ""));
	CHECK(!harness_open(&h, cfg), "open");
	h.compressible = true;
	for (int i = 0; i < 1500; i++) {
		uint64_t off = 4096 * (t_rand() % (8 * M / 4096 - 8));

		CHECK(one(&h, UC_OP_WRITE, off, 4096 * (1 + t_rand() % 8)) > 0, "write");
		CHECK(one(&h, UC_OP_FLUSH, 0, 0) == 0, "flush");
	}
	ck = json_u64(h.g.root, "\"checkpoints\"");
	printf("  checkpoints: %llu; %s\n", (unsigned long long)ck, json(h.g.root));
	CHECK(ck >= 3 && json_u64(h.g.root, "\"journal_blocks_used\"") < 256, "no checkpoints (%llu)",
	      (unsigned long long)ck);
	saved = malloc(8 * M);
	memcpy(saved, h.model, 8 * M);
	harness_close(&h);
	CHECK(!harness_open(&h, cfg), "reopen");
	memcpy(h.model, saved, 8 * M);
	for (uint64_t off = 0; off < 8 * M; off += 128 * K)
		CHECK(one(&h, UC_OP_READ, off, 128 * K) == 128 * K, "read back");
	harness_close(&h);
	free(saved);
	return T_PASS;
}

/*
 * Checkpoints under concurrent mixes with FUA writes and flushes: a commit
 * that waits for journal blocks while a checkpoint waits for that commit
 * must not stall (both ways: worker threads and the queue thread). Bounded
 * by an alarm: a stall fails the test at once instead of at ctest's timeout.
 */
static int test_checkpoints_mix(void)
{
	for (int w = 0; w < 2; w++) {
		struct harness h;
		uint64_t ck = 0;
		int fails = 0;

		unlink(conf("ckm.img", ""));
		CHECK(!harness_open(&h, cz_conf("ckm.conf", w ? "size = \"4M\"; cluster = \"4K\"; workers = 2;" :
							     "size = \"4M\"; cluster = \"4K\"; workers = 0;",
						 file_child("ckm.img", "8M"))), "open");
		h.compressible = true;
		alarm(120);
		for (int round = 0; round < 4 && !fails; round++)
			fails = run_mix(&h, 3000, true);
		alarm(0);
		ck = json_u64(h.g.root, "\"checkpoints\"");
		printf("  workers=%d: %llu requests, %d failures, %llu checkpoints\n", w ? 2 : 0,
		       (unsigned long long)h.nr_reqs, fails, (unsigned long long)ck);
		CHECK(!fails, "mix");
		CHECK(ck >= 2, "only %llu checkpoints", (unsigned long long)ck);
		harness_close(&h);
	}
	return T_PASS;
}

/* Opening refuses what it must not touch. */
static int test_refusals(void)
{
	struct uc_graph g;
	int fd;
	char buf[4096];

	/* an existing file with data and no superblock is not formatted */
	fd = open(conf("data.img", ""), O_RDWR);
	memset(buf, 'x', sizeof(buf));
	CHECK(fd >= 0 && !ftruncate(fd, 8 * M) && pwrite(fd, buf, sizeof(buf), 0) == 4096, "file");
	close(fd);
	CHECK(!uc_graph_load(&g, cz_conf("data.conf", "size = \"8M\";", file_child("data.img", "8M"))),
	      "load");
	CHECK(uc_graph_open(&g) == -EINVAL, "a file with data was formatted");
	uc_graph_free(&g);
	fd = open(tpath("data.img"), O_RDONLY);
	CHECK(fd >= 0 && pread(fd, buf, 4096, 0) == 4096 && buf[0] == 'x', "the refusal wrote the file");
	close(fd);
	/* another cluster size than the volume was made with */
	unlink(conf("cl.img", ""));
	CHECK(!uc_graph_load(&g, cz_conf("cl.conf", "size = \"8M\"; cluster = \"16K\";",
					 file_child("cl.img", "8M"))) && !uc_graph_open(&g), "make");
	uc_graph_free(&g);
	CHECK(!uc_graph_load(&g, cz_conf("cl2.conf", "size = \"8M\"; cluster = \"32K\";",
					 file_child("cl.img", "8M"))), "load");
	CHECK(uc_graph_open(&g) == -EINVAL, "another cluster size was accepted");
	uc_graph_free(&g);
	return T_PASS;
}

/*
 * Clusters that look random are stored raw without trying zstd: the probe
 * must not take compressible data for random (a copy of a block inside the
 * cluster, text, half-zero data, an odd-length repeat) and must take random
 * bytes for random. Each case is one 64K cluster; the counters say how it
 * was stored and whether zstd was tried, and everything reads back.
 */
static int test_probe(void)
{
	enum { CL = 64 * K };
	struct harness h;
	static uint8_t buf[CL];
	uint64_t raw, zstd, skipped, off = 0;

	unlink(conf("probe.img", ""));
	CHECK(!harness_open(&h, cz_conf("probe.conf", "size = \"4M\"; workers = 0;",
					 file_child("probe.img", "8M"))), "open");
#define PROBE_CASE(what, want_zstd, want_skip) do { \
	raw = json_u64(h.g.root, "\"clusters_raw\""); \
	zstd = json_u64(h.g.root, "\"clusters_compressed\""); \
	skipped = json_u64(h.g.root, "\"zstd_skipped\""); \
	h.data = buf; \
	CHECK(one(&h, UC_OP_WRITE, off, CL) == CL, "write %s", what); \
	h.data = NULL; \
	CHECK(json_u64(h.g.root, "\"clusters_compressed\"") == zstd + (want_zstd) && \
	      json_u64(h.g.root, "\"clusters_raw\"") == raw + !(want_zstd), \
	      "%s: stored %s, want %s (%s)", what, \
	      json_u64(h.g.root, "\"clusters_raw\"") > raw ? "raw" : "compressed", \
	      (want_zstd) ? "compressed" : "raw", json(h.g.root)); \
	CHECK(json_u64(h.g.root, "\"zstd_skipped\"") == skipped + (want_skip), \
	      "%s: zstd was %s, want %s", what, \
	      json_u64(h.g.root, "\"zstd_skipped\"") > skipped ? "skipped" : "tried", \
	      (want_skip) ? "skipped (the probe saw random bytes)" : "tried"); \
	off += CL; \
	} while (0)

	fill(buf, CL);
	PROBE_CASE("random bytes", false, true);
	fill(buf, 4 * K);	/* one random 4K block, 16 times */
	for (unsigned int i = 1; i < 16; i++)
		memcpy(buf + i * 4 * K, buf, 4 * K);
	PROBE_CASE("a 4K block repeated", true, false);
	fill(buf, 1001);	/* a repeat at an odd distance: the histogram is lumpy */
	for (unsigned int i = 1001; i < CL; i++)
		buf[i] = buf[i - 1001];
	PROBE_CASE("1001 bytes repeated", true, false);
	fill(buf, CL);		/* random, then zeroes: a file's tail */
	memset(buf + CL / 2, 0, CL / 2);
	PROBE_CASE("half random, half zero", true, false);
	for (unsigned int i = 0; i < CL; i++)	/* text: a small alphabet */
		buf[i] = "etaoin shrdlu\n"[t_rand() % 14];
	PROBE_CASE("text", true, false);
	fill(buf, CL);		/* random but with one byte in eight zero: zstd saves ~1 block */
	for (unsigned int i = 0; i < CL; i += 8)
		buf[i] = 0;
	{
		/* whatever is decided, it must be what zstd itself does with a block to spare */
		static uint8_t comp[2 * CL];
		size_t c = ZSTD_compress(comp, sizeof(comp), buf, CL, 1);

		PROBE_CASE("random with every 8th byte zero", !ZSTD_isError(c) && c <= CL - 4 * K,
			   false);
	}
	h.compressible = true;	/* the harness's 2:1 data (not the all-zero kind) */
	do
		harness_fill(&h, buf, CL);
	while (!buf[0] && !memcmp(buf, buf + 1, CL - 1));
	PROBE_CASE("the harness's 2:1 data", true, false);
#undef PROBE_CASE
	for (uint64_t o = 0; o < off; o += CL)
		CHECK(one(&h, UC_OP_READ, o, CL) == CL, "read back at %llu", (unsigned long long)o);
	harness_close(&h);
	return T_PASS;
}


/* ---- pages stored alone (format 2) ---- */

/* The journal entries after the current checkpoint of the image (at most max). Returns the count. */
static int journal_entries(const char *img, struct cz_jent *out, int max, struct cz_sb *sbp)
{
	uint8_t blk[CZ_BLOCK];
	struct cz_jent ents[CZ_J_PER_BLOCK];
	struct cz_sb sb[2], *cur;
	struct cz_jhdr jh;
	uint64_t uuid_lo;
	int fd = open(img, O_RDONLY), n = 0, r0, r1;

	if (fd < 0 || pread(fd, blk, CZ_BLOCK, 0) != CZ_BLOCK)
		return -1;
	r0 = cz_sb_decode(&sb[0], blk);
	if (pread(fd, blk, CZ_BLOCK, CZ_BLOCK) != CZ_BLOCK)
		return -1;
	r1 = cz_sb_decode(&sb[1], blk);
	if (r0 && r1)
		return -1;
	cur = !r0 && (r1 || sb[0].gen > sb[1].gen) ? &sb[0] : &sb[1];
	*sbp = *cur;
	memcpy(&uuid_lo, cur->uuid, 8);
	for (uint64_t k = 0; k < cur->journal_blocks; k++) {
		uint64_t slot = (cur->journal_head + k) % cur->journal_blocks;

		if (pread(fd, blk, CZ_BLOCK, (cur->journal_off + slot) * CZ_BLOCK) != CZ_BLOCK ||
		    cz_journal_decode(blk, cur->ckpt_seq + 1 + k, uuid_lo, &jh, ents) < 0)
			break;
		for (unsigned int i = 0; i < jh.n && n < max; i++)
			out[n++] = ents[i];
	}
	close(fd);
	return n;
}

/*
 * Writes of whole pages into stored clusters are stored alone: they read
 * back, survive a clean stop and a kill, a whole-cluster write replaces
 * them, and discarding every page of a cluster gives its space back.
 */
static int test_pages(void)
{
	const char *cfg = cz_conf("pg.conf", "size = \"4M\"; cluster = \"64K\";",
				  file_child("pg.img", "8M"));
	struct harness h;
	uint8_t *saved;
	uint64_t ph0, ph1;

	unlink(tpath("pg.img"));
	CHECK(!harness_open(&h, cfg), "open");
	h.compressible = true;
	for (uint64_t off = 0; off < 4 * M; off += 128 * K)
		CHECK(one(&h, UC_OP_WRITE, off, 128 * K) == 128 * K, "fill");
	for (int i = 0; i < 200; i++) {
		uint64_t len = 4096 * (1 + t_rand() % 3);

		CHECK(one(&h, UC_OP_WRITE, 4096 * (t_rand() % ((4 * M - len) / 4096 + 1)), len) > 0,
		      "a page write");
	}
	CHECK(json_u64(h.g.root, "\"page_writes\"") >= 200 && json_u64(h.g.root, "\"pages_alone\"") > 100,
	      "page writes did not store pages alone: %s", json(h.g.root));
	for (uint64_t off = 0; off < 4 * M; off += 128 * K)
		CHECK(one(&h, UC_OP_READ, off, 128 * K) == 128 * K, "read back at %llu",
		      (unsigned long long)off);
	/* reads of single pages, some alone, some from the base copy */
	for (int i = 0; i < 200; i++)
		CHECK(one(&h, UC_OP_READ, 4096 * (t_rand() % (4 * M / 4096)), 4096) == 4096, "page read");
	saved = malloc(4 * M);
	memcpy(saved, h.model, 4 * M);
	harness_close(&h);
	CHECK(!harness_open(&h, cfg), "reopen");
	memcpy(h.model, saved, 4 * M);
	CHECK(json_u64(h.g.root, "\"pages_alone\"") > 100, "pages alone after reopening: %s",
	      json(h.g.root));
	for (uint64_t off = 0; off < 4 * M; off += 128 * K)
		CHECK(one(&h, UC_OP_READ, off, 128 * K) == 128 * K, "read back after reopening");
	/* a whole-cluster write replaces the cluster's fragments */
	for (uint64_t off = 0; off < 1 * M; off += 128 * K)
		CHECK(one(&h, UC_OP_WRITE, off, 128 * K) == 128 * K, "rewrite the first 1M whole");
	{
		uint64_t alone = 0;

		for (uint64_t pg = 0; pg < 1 * M / 4096; pg++) {
			char r[512];

			ctl(h.g.root, "locate", (snprintf(r, sizeof(r), "%llu", (unsigned long long)pg * 4096), r),
			    r, sizeof(r));
			alone += strstr(r, "stored alone") != NULL;
		}
		CHECK(!alone, "%llu pages of the first 1M still stored alone after whole writes",
		      (unsigned long long)alone);
	}
	/* discarding every page of clusters one page at a time: they become zero, the space comes back */
	ph0 = json_u64(h.g.root, "\"physical_bytes\"");
	for (uint64_t off = 2 * M; off < 4 * M; off += 4096)
		CHECK(one(&h, UC_OP_DISCARD, off, 4096) == 0, "discard a page");
	CHECK(one(&h, UC_OP_FLUSH, 0, 0) == 0, "flush");
	for (uint64_t off = 0; off < 4 * M; off += 128 * K)
		CHECK(one(&h, UC_OP_READ, off, 128 * K) == 128 * K, "read back after the discards");
	ph1 = json_u64(h.g.root, "\"physical_bytes\"");
	printf("  pages: physical %llu -> %llu after discarding half the volume page by page; %s\n",
	       (unsigned long long)ph0, (unsigned long long)ph1, status(h.g.root));
	CHECK(ph1 < ph0 * 6 / 10, "discarded pages gave back too little: %llu -> %llu",
	      (unsigned long long)ph0, (unsigned long long)ph1);
	CHECK(json_u64(h.g.root, "\"clusters_zero\"") >= 32, "%s", json(h.g.root));
	memcpy(saved, h.model, 4 * M);
	harness_close(&h);
	CHECK(!harness_open(&h, cfg), "reopen after the discards");
	memcpy(h.model, saved, 4 * M);
	for (uint64_t off = 0; off < 4 * M; off += 128 * K)
		CHECK(one(&h, UC_OP_READ, off, 128 * K) == 128 * K, "read back after reopening");
	harness_close(&h);
	free(saved);
	return T_PASS;
}

/*
 * Mixes of whole-page writes (stored alone, concurrently with whole-cluster
 * and read-modify-write stores of the same clusters, discards, flushes) on
 * a volume that runs short of space: folds bring it back, nothing fails
 * with ENOSPC, everything reads back; again after a reopen.
 */
static int test_pages_mix(void)
{
	const char *cfg = cz_conf("pgm.conf", "size = \"6M\"; cluster = \"16K\";",
				  file_child("pgm.img", "10M"));
	struct harness h;
	uint8_t *saved;
	int fails;

	unlink(tpath("pgm.img"));
	CHECK(!harness_open(&h, cfg), "open");
	h.align = 4096;
	fails = run_mix(&h, 3000, true);	/* random data: a volume's worth in base copies and fragments */
	h.compressible = true;
	fails += run_mix(&h, 3000, true);
	h.align = 0;
	fails += run_mix(&h, 1000, true);	/* unaligned ones too: read-modify-write over fragments */
	printf("  pages_mix: %llu requests, %d failures; %s\n", (unsigned long long)h.nr_reqs, fails,
	       status(h.g.root));
	CHECK(!fails, "mix");
	CHECK(json_u64(h.g.root, "\"page_writes\"") > 1000, "%s", json(h.g.root));
	saved = malloc(h.g.size);
	memcpy(saved, h.model, h.g.size);
	harness_close(&h);
	CHECK(!harness_open(&h, cfg), "reopen");
	memcpy(h.model, saved, h.g.size);
	for (uint64_t off = 0; off < h.g.size; off += 128 * K)
		CHECK(one(&h, UC_OP_READ, off, 128 * K) == 128 * K, "read back after reopening");
	harness_close(&h);
	free(saved);
	return T_PASS;
}

/*
 * A child that fits the metadata of layout rule 1 but not the larger one
 * of rule 2 (a thin volume of 4K clusters, 1G over about 25M): it is
 * accepted, and a new volume on it is made by rule 1 (its page capacity
 * says so), reopens, and holds data.
 */
static int test_layout_fallback(void)
{
	struct cz_sb a, b;
	uint64_t child = 0, cap;
	char size[32];
	const char *cfg;
	struct harness h;

	/* the largest such child: rule 1 leaves it the most data blocks */
	for (uint64_t c = 16 * M; c < 64 * M; c += 4096)
		if (cz_layout(&a, c, 1024 * M, 4096) && !cz_layout_old(&b, c, 1024 * M, 4096))
			child = c;
	CHECK(child && !cz_layout_old(&b, child, 1024 * M, 4096), "no child size that only rule 1 fits");
	cap = cz_page_capacity(&b);
	snprintf(size, sizeof(size), "%llu", (unsigned long long)child);
	cfg = cz_conf("fb.conf", "size = \"1G\"; cluster = \"4K\";", file_child("fb.img", size));
	unlink(tpath("fb.img"));
	for (int round = 0; round < 2; round++) {
		CHECK(!harness_open(&h, cfg), "open (round %d)", round);
		CHECK(json_u64(h.g.root, "\"page_capacity\"") == cap - cap / 16, "not rule 1: %s",
		      json(h.g.root));
		{
			int w = one(&h, UC_OP_WRITE, 0, 16 * K), r = one(&h, UC_OP_READ, 0, 16 * K);

			CHECK(w == 16 * K && r == 16 * K, "write %d, read %d (round %d): %s", w, r, round,
			      status(h.g.root));
		}
		harness_close(&h);
	}
	return T_PASS;
}

/*
 * fold_idle: pages stored alone hold their cluster's space twice until a
 * fold. While requests keep coming (every 50 ms, fold_idle 300ms) nothing
 * is folded; once none came for fold_idle, clusters with pages alone are
 * folded (no space pressure at all here); requests that come meanwhile
 * stop further idle folds at once (those under way finish); once idle
 * again every one is folded, the space comes back and everything reads
 * back.
 */
static int test_idle_folds(void)
{
	const char *cfg = cz_conf("idle.conf", "size = \"4M\"; cluster = \"16K\"; fold_idle = \"300ms\"; cache = \"64K\";",
				  file_child("idle.img", "16M"));
	struct harness h;
	uint64_t phys, alone;
	struct timespec t0, t;
	bool interrupted = false;

	unlink(tpath("idle.img"));
	CHECK(!harness_open(&h, cfg), "open");
	h.compressible = true;
	for (uint64_t off = 0; off < h.g.size; off += 128 * K)
		CHECK(one(&h, UC_OP_WRITE, off, 128 * K) == 128 * K, "fill");
	for (uint64_t c = 0; c < 256; c++)	/* a page in every cluster: folding takes many turns */
		CHECK(one(&h, UC_OP_WRITE, c * 16 * K + 4096, 4096) == 4096, "page write");
	alone = json_u64(h.g.root, "\"pages_alone\"");
	phys = json_u64(h.g.root, "\"physical_bytes\"");
	/* some pages of the compressible data are zero: stored alone as "zero", holding no space */
	CHECK(alone >= 128 && alone != UINT64_MAX && json_u64(h.g.root, "\"page_writes\"") == 256,
	      "pages alone: %s", json(h.g.root));
	for (int i = 0; i < 20; i++) {	/* 1 s of reads, 50 ms apart */
		CHECK(one(&h, UC_OP_READ, (uint64_t)(i % 64) * 16 * K, 4096) == 4096, "read");
		usleep(50000);
	}
	CHECK(json_u64(h.g.root, "\"idle_folds\"") == 0 && json_u64(h.g.root, "\"pages_alone\"") == alone,
	      "folded while busy: %s", json(h.g.root));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {	/* the queue sleeps until fold_idle is over, then folds */
		CHECK(!uc_queue_idle(&h.q) || h.q.timer_armed, "nothing will wake the queue: %s",
		      json(h.g.root));
		CHECK(!harness_turn(&h), "turn");
		clock_gettime(CLOCK_MONOTONIC, &t);
		CHECK(t.tv_sec - t0.tv_sec < 10, "not folded 10 s after the last request: %s", json(h.g.root));
		if (!interrupted && json_u64(h.g.root, "\"idle_folds\"")) {
			/*
			 * 200 ms of reads back to back, each missing the small
			 * cache (the queue turns, folds under way finish): at
			 * most those (2) and one more poll's may start
			 */
			uint64_t k0 = json_u64(h.g.root, "\"idle_folds\"");
			struct timespec r0, r;

			interrupted = true;
			clock_gettime(CLOCK_MONOTONIC, &r0);
			for (uint64_t i = 1;; i++) {
				CHECK(one(&h, UC_OP_READ, (i * 37 % 256) * 16 * K, 4096) == 4096, "read");
				clock_gettime(CLOCK_MONOTONIC, &r);
				if ((r.tv_sec - r0.tv_sec) * 1000000000 + r.tv_nsec - r0.tv_nsec > 200000000)
					break;
			}
			CHECK(json_u64(h.g.root, "\"idle_folds\"") <= k0 + 4 &&
			      json_u64(h.g.root, "\"pages_alone\""),
			      "idle folds went on under requests (%llu before them): %s",
			      (unsigned long long)k0, json(h.g.root));
		}
	} while (json_u64(h.g.root, "\"pages_alone\"") || json_u64(h.g.root, "\"physical_bytes\"") >= phys);
	printf("  idle_folds: %s; physical %llu -> %llu\n", status(h.g.root), (unsigned long long)phys,
	       (unsigned long long)json_u64(h.g.root, "\"physical_bytes\""));
	CHECK(interrupted && json_u64(h.g.root, "\"idle_folds\"") >= alone &&
	      json_u64(h.g.root, "\"physical_bytes\"") < phys, "%s", json(h.g.root));
	for (uint64_t off = 0; off < h.g.size; off += 128 * K)
		CHECK(one(&h, UC_OP_READ, off, 128 * K) == 128 * K, "read back");
	harness_close(&h);
	CHECK(!harness_open(&h, cfg), "reopen");
	CHECK(json_u64(h.g.root, "\"pages_alone\"") == 0, "%s", json(h.g.root));
	harness_close(&h);
	return T_PASS;
}

/*
 * Random page writes of random data, three times the volume, on a child
 * that holds the volume once and a half: without folds the base copies and
 * the fragments would not fit. No write may fail.
 */
static int test_reclaim(void)
{
	const char *cfg = cz_conf("rc.conf", "size = \"4M\"; cluster = \"16K\";",
				  file_child("rc.img", "7M"));
	struct harness h;

	unlink(tpath("rc.img"));
	CHECK(!harness_open(&h, cfg), "open");
	for (uint64_t off = 0; off < h.g.size; off += 128 * K)
		CHECK(one(&h, UC_OP_WRITE, off, 128 * K) == 128 * K, "fill");
	for (int i = 0; i < 3 * 1024; i++) {
		uint64_t len = 4096 * (1 + t_rand() % 2);

		issue(&h, UC_OP_WRITE, 0, 4096 * (t_rand() % ((h.g.size - len) / 4096)), len);
		CHECK(!h.failures, "write %d failed (%s)", i, status(h.g.root));
	}
	CHECK(!harness_reap(&h, 0) && !h.failures, "writes failed: %s", status(h.g.root));
	for (uint64_t off = 0; off < h.g.size; off += 128 * K)
		CHECK(one(&h, UC_OP_READ, off, 128 * K) == 128 * K, "read back");
	printf("  reclaim: %s, %llu folds\n", status(h.g.root),
	       (unsigned long long)json_u64(h.g.root, "\"folds\""));
	CHECK(json_u64(h.g.root, "\"folds\"") > 0, "no folds: %s", json(h.g.root));
	harness_close(&h);
	return T_PASS;
}

/*
 * Replay of page writes that were not flushed: one whose fragment never
 * reached the disk (smashed here after the writer died) is left out and
 * its page reads as at the flush. Here every page of the cluster was
 * written alone, so the base copy was dropped by a journal entry after
 * them: replay must keep the base, which still holds that page.
 */
static int test_replay_lost_page(void)
{
	const char *cfg = cz_conf("lp.conf", "size = \"4M\"; cluster = \"16K\";",
				  file_child("lp.img", "6M"));
	const char *img = tpath("lp.img");
	uint8_t *v1;
	struct cz_jent *ents = calloc(4096, sizeof(*ents));
	struct cz_entry frag = { 0 };
	struct harness h;
	struct cz_sb sb;
	int wst, fd, n, drops = 0;
	pid_t pid;

	unlink(img);
	fd = open(conf("lp.v1", ""), O_RDWR | O_TRUNC);
	CHECK(fd >= 0 && !ftruncate(fd, PC_CL), "v1 file");
	pid = fork();
	if (!pid) {
		uint8_t *m = mmap(NULL, PC_CL, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

		if (m == MAP_FAILED || harness_open(&h, cfg))
			_exit(2);
		h.compressible = true;
		do {
			if (one(&h, UC_OP_WRITE, 5 * PC_CL, PC_CL) != (int)PC_CL)
				_exit(3);
		} while (all_zero_buf(h.model + 5 * PC_CL, PC_CL));
		if (one(&h, UC_OP_FLUSH, 0, 0))
			_exit(4);
		memcpy(m, h.model + 5 * PC_CL, PC_CL);	/* durable */
		h.compressible = false;
		for (uint64_t pg = 0; pg < PC_CL / 4096; pg++)	/* written, not flushed */
			if (one(&h, UC_OP_WRITE, 5 * PC_CL + pg * 4096, 4096) != 4096)
				_exit(5);
		_exit(0);
	}
	CHECK(pid > 0 && waitpid(pid, &wst, 0) == pid && WIFEXITED(wst) && !WEXITSTATUS(wst),
	      "writer: %d", WEXITSTATUS(wst));
	v1 = malloc(PC_CL);
	CHECK(pread(fd, v1, PC_CL, 0) == (ssize_t)PC_CL, "v1");
	close(fd);
	n = journal_entries(img, ents, 4096, &sb);
	for (int i = 0; i < n; i++) {
		if (ents[i].cluster == 5 && ents[i].type == CZ_J_PAGE && ents[i].page == 2)
			frag = ents[i].e;
		drops += ents[i].cluster == 5 && ents[i].type == CZ_J_BASE;
	}
	CHECK(cz_has_data(&frag) && drops == 1, "journal: page 2's fragment %u, base dropped %d times",
	      cz_kind(&frag), drops);
	fd = open(img, O_RDWR);
	CHECK(fd >= 0 && pwrite(fd, "lost", 4, (sb.data_off + cz_pblk(&frag)) * CZ_BLOCK +
			       cz_boff(&frag)) == 4, "smash page 2's fragment");
	close(fd);
	CHECK(!harness_open(&h, cfg), "reopen");
	{
		/* pages 0, 1, 3 as written alone (the model cannot know them): page 2 as flushed */
		uint8_t *buf = malloc(PC_CL);

		h.reqs[0] = (struct uc_req){ .op = UC_OP_READ, .off = 5 * PC_CL, .len = PC_CL };
		h.done[0] = false;
		h.inflight = 1;
		h.lax = true;
		uc_queue_start(&h.q, 0, &h.reqs[0]);
		CHECK(!harness_drain(&h) && h.results[0] == (int)PC_CL, "read cluster 5: %d", h.results[0]);
		memcpy(buf, h.q.ios[0].buf, PC_CL);
		CHECK(!memcmp(buf + 2 * 4096, v1 + 2 * 4096, 4096),
		      "page 2 after the replay is not its flushed content (the base was dropped?)");
		CHECK(memcmp(buf, v1, 4096) && memcmp(buf + 3 * 4096, v1 + 3 * 4096, 4096),
		      "the other pages' unflushed writes were left out");
		free(buf);
	}
	CHECK(json_u64(h.g.root, "\"checksum_errors\"") == 0, "%s", json(h.g.root));
	harness_close(&h);
	free(v1);
	free(ents);
	return T_PASS;
}

/*
 * A volume of format 1 (tests/data/compress-v1.img.zst, made by the code
 * before format 2) is refused at open with a line that says so, and left
 * as it was; `examine` says which format it is.
 */
static int test_format1(void)
{
	const char *img = tpath("v1.img"), *errf = tpath("v1.err");
	const char *cfg = cz_conf("v1.conf", "size = \"4M\"; cluster = \"16K\";",
				  file_child("v1.img", "4M"));
	char path[512], line[512] = "";
	uint8_t *z, *a = malloc(4 * M), *b = malloc(4 * M);
	struct uc_graph g;
	FILE *f;
	size_t zn;
	int fd, saved, ret;

	if (getenv("UC_TEST_DATA_DIR"))
		snprintf(path, sizeof(path), "%s/compress-v1.img.zst", getenv("UC_TEST_DATA_DIR"));
	else	/* next to this file */
		snprintf(path, sizeof(path), "%.*sdata/compress-v1.img.zst",
			 (int)(strrchr(__FILE__, '/') ? strrchr(__FILE__, '/') - __FILE__ + 1 : 0), __FILE__);
	f = fopen(path, "rb");
	CHECK(f, "%s: %s (UC_TEST_DATA_DIR)", path, strerror(errno));
	z = malloc(64 * K);
	zn = fread(z, 1, 64 * K, f);
	fclose(f);
	CHECK(ZSTD_decompress(a, 4 * M, z, zn) == 4 * M, "decompress the fixture");
	fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && pwrite(fd, a, 4 * M, 0) == (ssize_t)(4 * M), "write the image");
	close(fd);
	CHECK(!uc_graph_load(&g, cfg), "load");
	fflush(stderr);
	saved = dup(2);
	fd = open(errf, O_RDWR | O_CREAT | O_TRUNC, 0600);
	dup2(fd, 2);
	ret = uc_graph_open(&g);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	CHECK(pread(fd, line, sizeof(line) - 1, 0) > 0, "no message");
	close(fd);
	uc_graph_free(&g);
	printf("  format1: %s", line);
	CHECK(ret == -EINVAL && strstr(line, "format 1") && strstr(line, "refusing to open") &&
	      !strchr(line, '\n')[1], "open of a format 1 volume: %d, \"%s\"", ret, line);
	fd = open(img, O_RDONLY);
	CHECK(fd >= 0 && pread(fd, b, 4 * M, 0) == (ssize_t)(4 * M) && !memcmp(a, b, 4 * M),
	      "the refusal changed the image");
	close(fd);
	{
		const struct uc_layer_ops *ops = uc_layer_find("compress");
		char *out = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&out, &len);

		CHECK(ops->examine(img, m) == -EINVAL, "examine");
		fclose(m);
		CHECK(strstr(out, "format 1; this version reads format 2"), "examine: %s", out);
		free(out);
	}
	free(z);
	free(a);
	free(b);
	return T_PASS;
}

int main(void)
{
	static const struct t_case cases[] = {
		{ "format", test_format },
		{ "space", test_space },
		{ "config", test_config },
		{ "mix_reopen", test_mix_reopen },
		{ "probe", test_probe },
		{ "pages", test_pages },
		{ "pages_mix", test_pages_mix },
		{ "reclaim", test_reclaim },
		{ "idle_folds", test_idle_folds },
		{ "layout_fallback", test_layout_fallback },
		{ "replay_lost_page", test_replay_lost_page },
		{ "format1", test_format1 },
		{ "enospc", test_enospc },
		{ "corrupt", test_corrupt },
		{ "corrupt_mirror", test_corrupt_mirror },
		{ "checkpoints", test_checkpoints },
		{ "checkpoints_mix", test_checkpoints_mix },
		{ "refusals", test_refusals },
		{ "kill", test_kill },
		{ "replay_lost_data", test_replay_lost_data },
		{ "powercut", test_powercut },
	};
	struct io_uring ring;

	if (getenv("UC_TEST_VERBOSE"))
		uc_verbose = atoi(getenv("UC_TEST_VERBOSE"));
	if (io_uring_queue_init(2, &ring, 0)) {
		fprintf(stderr, "no io_uring here\n");
		return T_SKIP;
	}
	io_uring_queue_exit(&ring);
	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
