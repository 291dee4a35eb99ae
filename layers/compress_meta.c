/* SPDX-License-Identifier: MIT */
/* The compress layer's format and space allocator. See compress_meta.h. */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "compress_meta.h"
#include "crc32c.h"
#include "le.h"

/* superblock offsets */
enum {
	S_MAGIC = 0, S_VERSION = 8, S_FLAGS = 12, S_UUID = 16, S_GEN = 32, S_CLUSTER = 40,
	S_LEVEL = 44, S_LOGICAL = 48, S_CHILD = 56, S_MAP_OFF = 64, S_MAP_BLOCKS = 72,
	S_J_OFF = 80, S_J_BLOCKS = 88, S_DATA_OFF = 96, S_DATA_BLOCKS = 104, S_CKPT_AREA = 112,
	S_CKPT_ID = 120, S_CKPT_SEQ = 128, S_J_HEAD = 136, S_PAGES_OFF = 144, S_PAGE_BLOCKS = 152,
	S_CKPT_PAGES = 160, S_CRC = CZ_BLOCK - 4,
};

/* map block trailer, journal block header */
enum { M_ID = 4080, M_INDEX = 4088, M_CRC = 4092 };
enum {
	J_MAGIC = 0, J_CRC = 4, J_SEQ = 8, J_UUID = 16, J_NR = 24, J_FIRST = 32, J_DURABLE = 40,
	J_ENTRIES = 48, J_ENT = 32,
};
/* a page record: page number, fragment, stamp */
enum { P_REC = 32 };

/*
 * Pages that may have fragments at once, by layout rule (the superblock
 * does not name the rule: a volume's layout is checked against each).
 * Rule 2 (volumes made since 2026-12): every page, but no more than one
 * per block of the child and no more than 1M (the table in memory costs 32
 * bytes a page, 43-85 MB at 1M), at least 4096: folds start when space runs
 * low, not long before because the table filled (the quarter of rule 1 made
 * steady 4K random writes fold-bound with most of the child free).
 * Rule 1 (the first volumes of format 2): a quarter of the child's blocks.
 */
enum { CAP_MIN = 4096, CAP_MAX = 1 << 20 };

static uint64_t page_cap(uint64_t nclusters, uint32_t cluster, uint64_t blocks, int rule)
{
	uint64_t pages = nclusters * (cluster / CZ_PAGE), cap;

	if (rule == 1)
		cap = blocks / 4;
	else
		cap = blocks < CAP_MAX ? blocks : CAP_MAX;
	if (cap < CAP_MIN)
		cap = CAP_MIN;
	return pages < cap ? pages : cap;
}

static int layout_rule(struct cz_sb *sb, uint64_t child_size, uint64_t logical, uint32_t cluster,
		       int rule)
{
	uint64_t nclusters = (logical + cluster - 1) / cluster, blocks = child_size / CZ_BLOCK;
	uint64_t cap = page_cap(nclusters, cluster, blocks, rule);

	sb->cluster = cluster;
	sb->logical = logical;
	sb->child_size = blocks * CZ_BLOCK;
	sb->map_off = 2;
	sb->map_blocks = (nclusters + CZ_MAP_PER_BLOCK - 1) / CZ_MAP_PER_BLOCK;
	sb->page_blocks = (cap + CZ_PG_PER_BLOCK - 1) / CZ_PG_PER_BLOCK;
	if (!sb->page_blocks)
		sb->page_blocks = 1;
	/*
	 * A checkpoint when the ring is 3/4 full: its size grows with what a
	 * checkpoint writes (the map and, at most, the page records)
	 */
	sb->journal_blocks = sb->map_blocks * 4 + cap / 64;
	if (sb->journal_blocks < 256)
		sb->journal_blocks = 256;
	if (sb->journal_blocks > 16384)
		sb->journal_blocks = 16384;
	sb->pages_off = sb->map_off + 2 * sb->map_blocks;
	sb->journal_off = sb->pages_off + 2 * sb->page_blocks;
	sb->data_off = sb->journal_off + sb->journal_blocks;
	if (blocks < sb->data_off + 2 * (cluster / CZ_BLOCK) || blocks - sb->data_off >= (1ULL << 40))
		return -ENOSPC;
	sb->data_blocks = blocks - sb->data_off;
	return 0;
}

int cz_layout(struct cz_sb *sb, uint64_t child_size, uint64_t logical, uint32_t cluster)
{
	return layout_rule(sb, child_size, logical, cluster, CZ_LAYOUT_RULE);
}

int cz_layout_old(struct cz_sb *sb, uint64_t child_size, uint64_t logical, uint32_t cluster)
{
	return layout_rule(sb, child_size, logical, cluster, 1);
}

/* Does x's layout (not its checkpoint fields) match want's? */
static bool layout_is(const struct cz_sb *x, const struct cz_sb *want)
{
	return want->map_off == x->map_off && want->map_blocks == x->map_blocks &&
	       want->pages_off == x->pages_off && want->page_blocks == x->page_blocks &&
	       want->journal_off == x->journal_off && want->journal_blocks == x->journal_blocks &&
	       want->data_off == x->data_off && want->data_blocks == x->data_blocks;
}

uint64_t cz_nclusters(const struct cz_sb *sb)
{
	return (sb->logical + sb->cluster - 1) / sb->cluster;
}

uint64_t cz_page_capacity(const struct cz_sb *sb)
{
	return sb->page_blocks * CZ_PG_PER_BLOCK;
}

void cz_sb_encode(const struct cz_sb *sb, void *block)
{
	uint8_t *b = block;

	memset(b, 0, CZ_BLOCK);
	memcpy(b + S_MAGIC, CZ_MAGIC, 8);
	uc_put32(b, S_VERSION, sb->version);
	uc_put32(b, S_FLAGS, sb->flags);
	memcpy(b + S_UUID, sb->uuid, 16);
	uc_put64(b, S_GEN, sb->gen);
	uc_put32(b, S_CLUSTER, sb->cluster);
	uc_put32(b, S_LEVEL, (uint32_t)sb->level);
	uc_put64(b, S_LOGICAL, sb->logical);
	uc_put64(b, S_CHILD, sb->child_size);
	uc_put64(b, S_MAP_OFF, sb->map_off);
	uc_put64(b, S_MAP_BLOCKS, sb->map_blocks);
	uc_put64(b, S_J_OFF, sb->journal_off);
	uc_put64(b, S_J_BLOCKS, sb->journal_blocks);
	uc_put64(b, S_DATA_OFF, sb->data_off);
	uc_put64(b, S_DATA_BLOCKS, sb->data_blocks);
	uc_put32(b, S_CKPT_AREA, sb->ckpt_area);
	uc_put64(b, S_CKPT_ID, sb->ckpt_id);
	uc_put64(b, S_CKPT_SEQ, sb->ckpt_seq);
	uc_put64(b, S_J_HEAD, sb->journal_head);
	uc_put64(b, S_PAGES_OFF, sb->pages_off);
	uc_put64(b, S_PAGE_BLOCKS, sb->page_blocks);
	uc_put64(b, S_CKPT_PAGES, sb->ckpt_pages);
	uc_put32(b, S_CRC, uc_crc32c(0, b, S_CRC));
}

int cz_sb_decode(struct cz_sb *sb, const void *block)
{
	const uint8_t *b = block;
	struct cz_sb x;

	memset(&x, 0, sizeof(x));	/* padding too: callers may compare whole structs */
	if (memcmp(b + S_MAGIC, CZ_MAGIC, 8))
		return -ENOENT;
	if (uc_get32(b, S_CRC) != uc_crc32c(0, b, S_CRC))
		return -EBADMSG;
	x.version = uc_get32(b, S_VERSION);
	if (x.version != CZ_VERSION) {
		sb->version = x.version;	/* the caller says which format it found */
		return -EPROTO;
	}
	x.flags = uc_get32(b, S_FLAGS);
	memcpy(x.uuid, b + S_UUID, 16);
	x.gen = uc_get64(b, S_GEN);
	x.cluster = uc_get32(b, S_CLUSTER);
	x.level = (int32_t)uc_get32(b, S_LEVEL);
	x.logical = uc_get64(b, S_LOGICAL);
	x.child_size = uc_get64(b, S_CHILD);
	x.map_off = uc_get64(b, S_MAP_OFF);
	x.map_blocks = uc_get64(b, S_MAP_BLOCKS);
	x.journal_off = uc_get64(b, S_J_OFF);
	x.journal_blocks = uc_get64(b, S_J_BLOCKS);
	x.data_off = uc_get64(b, S_DATA_OFF);
	x.data_blocks = uc_get64(b, S_DATA_BLOCKS);
	x.ckpt_area = uc_get32(b, S_CKPT_AREA);
	x.ckpt_id = uc_get64(b, S_CKPT_ID);
	x.ckpt_seq = uc_get64(b, S_CKPT_SEQ);
	x.journal_head = uc_get64(b, S_J_HEAD);
	x.pages_off = uc_get64(b, S_PAGES_OFF);
	x.page_blocks = uc_get64(b, S_PAGE_BLOCKS);
	x.ckpt_pages = uc_get64(b, S_CKPT_PAGES);
	/* the layout must be one that a layout rule gives, or nothing below can be trusted */
	{
		struct cz_sb want;
		bool known = false;

		if (x.cluster < 4096 || (x.cluster & (x.cluster - 1)) || x.cluster > (1U << 20))
			return -EBADMSG;
		for (int rule = CZ_LAYOUT_RULE; rule >= 1 && !known; rule--)
			known = !layout_rule(&want, x.child_size, x.logical, x.cluster, rule) &&
				layout_is(&x, &want);
		if (!known || x.ckpt_pages > cz_page_capacity(&x) || x.ckpt_area > 1 ||
		    x.journal_head >= x.journal_blocks)
			return -EBADMSG;
	}
	*sb = x;
	return 0;
}

void cz_sb_print(const struct cz_sb *sb, FILE *out)
{
	static const char hex[] = "0123456789abcdef";
	char u[37];
	int k = 0;

	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			u[k++] = '-';
		u[k++] = hex[sb->uuid[i] >> 4];
		u[k++] = hex[sb->uuid[i] & 15];
	}
	u[k] = 0;
	fprintf(out,
		"          Magic : " CZ_MAGIC "\n"
		"        Version : %u\n"
		"           UUID : %s\n"
		"     Generation : %" PRIu64 "\n"
		"   Logical size : %" PRIu64 " bytes\n"
		"   Cluster size : %u bytes\n"
		"     zstd level : %d\n"
		"     Child size : %" PRIu64 " bytes\n"
		"            Map : 2 x %" PRIu64 " blocks at block %" PRIu64 "\n"
		"          Pages : 2 x %" PRIu64 " blocks at block %" PRIu64 " (%" PRIu64 " pages)\n"
		"        Journal : %" PRIu64 " blocks at block %" PRIu64 "\n"
		"           Data : %" PRIu64 " blocks at block %" PRIu64 "\n"
		"     Checkpoint : area %c, id %" PRIu64 ", %" PRIu64 " pages stored alone, journal after seq %"
		PRIu64 " at slot %" PRIu64 "\n"
		"          State : %s\n",
		sb->version, u, sb->gen, sb->logical, sb->cluster, sb->level, sb->child_size,
		sb->map_blocks, sb->map_off, sb->page_blocks, sb->pages_off, cz_page_capacity(sb),
		sb->journal_blocks, sb->journal_off, sb->data_blocks, sb->data_off,
		sb->ckpt_area ? 'B' : 'A', sb->ckpt_id, sb->ckpt_pages, sb->ckpt_seq, sb->journal_head,
		sb->flags & CZ_SB_CLEAN ? "clean" : "active (journal to replay)");
}

static void entry_put(uint8_t *b, const struct cz_entry *e)
{
	uc_put64(b, 0, e->loc);
	uc_put32(b, 8, e->clen);
	uc_put32(b, 12, e->crc);
}

static void entry_get(const uint8_t *b, struct cz_entry *e)
{
	e->loc = uc_get64(b, 0);
	e->clen = uc_get32(b, 8);
	e->crc = uc_get32(b, 12);
}

void cz_map_encode(void *block, const struct cz_entry *e, unsigned int n, uint64_t ckpt_id,
		   uint32_t index)
{
	uint8_t *b = block;

	memset(b, 0, CZ_BLOCK);
	for (unsigned int i = 0; i < n && i < CZ_MAP_PER_BLOCK; i++)
		entry_put(b + i * 16, &e[i]);
	uc_put64(b, M_ID, ckpt_id);
	uc_put32(b, M_INDEX, index);
	uc_put32(b, M_CRC, uc_crc32c(0, b, M_CRC));
}

int cz_map_decode(const void *block, struct cz_entry *e, unsigned int n, uint64_t ckpt_id,
		  uint32_t index)
{
	const uint8_t *b = block;

	if (uc_get32(b, M_CRC) != uc_crc32c(0, b, M_CRC) || uc_get64(b, M_ID) != ckpt_id ||
	    uc_get32(b, M_INDEX) != index)
		return -EBADMSG;
	for (unsigned int i = 0; i < n && i < CZ_MAP_PER_BLOCK; i++)
		entry_get(b + i * 16, &e[i]);
	return 0;
}

void cz_pages_encode(void *block, const struct cz_prec *r, unsigned int n, uint64_t ckpt_id,
		     uint32_t index)
{
	uint8_t *b = block;

	memset(b, 0, CZ_BLOCK);
	for (unsigned int i = 0; i < n && i < CZ_PG_PER_BLOCK; i++) {
		/* page numbers are stored + 1: an all-zero record is an unused one */
		uc_put64(b, i * P_REC, r[i].page + 1);
		entry_put(b + i * P_REC + 8, &r[i].e);
		uc_put64(b, i * P_REC + 24, r[i].stamp);
	}
	uc_put64(b, M_ID, ckpt_id);
	uc_put32(b, M_INDEX, index);
	uc_put32(b, M_CRC, uc_crc32c(0, b, M_CRC));
}

int cz_pages_decode(const void *block, struct cz_prec *r, uint64_t ckpt_id, uint32_t index)
{
	const uint8_t *b = block;
	int n = 0;

	if (uc_get32(b, M_CRC) != uc_crc32c(0, b, M_CRC) || uc_get64(b, M_ID) != ckpt_id ||
	    uc_get32(b, M_INDEX) != index)
		return -EBADMSG;
	for (unsigned int i = 0; i < CZ_PG_PER_BLOCK && uc_get64(b, i * P_REC); i++, n++) {
		r[i].page = uc_get64(b, i * P_REC) - 1;
		entry_get(b + i * P_REC + 8, &r[i].e);
		r[i].stamp = uc_get64(b, i * P_REC + 24);
	}
	return n;
}

void cz_journal_encode(void *block, uint64_t uuid_lo, const struct cz_jhdr *h,
		       const struct cz_jent *j)
{
	uint8_t *b = block;

	memset(b, 0, CZ_BLOCK);
	uc_put32(b, J_MAGIC, CZ_JMAGIC);
	uc_put64(b, J_SEQ, h->seq);
	uc_put64(b, J_UUID, uuid_lo);
	uc_put32(b, J_NR, h->n);
	uc_put64(b, J_FIRST, h->first);
	uc_put64(b, J_DURABLE, h->durable);
	for (unsigned int i = 0; i < h->n; i++) {
		uint8_t *p = b + J_ENTRIES + i * J_ENT;

		/* cluster (48 bits) | page << 48 | type << 56, then the entry, then s */
		uc_put64(p, 0, j[i].cluster | (uint64_t)j[i].page << 48 | (uint64_t)j[i].type << 56);
		entry_put(p + 8, &j[i].e);
		uc_put64(p, 24, j[i].s);
	}
	uc_put32(b, J_CRC, uc_crc32c(0, b, CZ_BLOCK));
}

int cz_journal_decode(const void *block, uint64_t seq, uint64_t uuid_lo, struct cz_jhdr *h,
		      struct cz_jent *j)
{
	uint8_t b[CZ_BLOCK];
	uint32_t n, crc;

	memcpy(b, block, CZ_BLOCK);
	crc = uc_get32(b, J_CRC);
	uc_put32(b, J_CRC, 0);
	n = uc_get32(b, J_NR);
	if (uc_get32(b, J_MAGIC) != CZ_JMAGIC || crc != uc_crc32c(0, b, CZ_BLOCK) ||
	    uc_get64(b, J_SEQ) != seq || uc_get64(b, J_UUID) != uuid_lo || n > CZ_J_PER_BLOCK)
		return -1;
	h->seq = seq;
	h->n = n;
	h->first = uc_get64(b, J_FIRST);
	h->durable = uc_get64(b, J_DURABLE);
	for (unsigned int i = 0; i < n; i++) {
		const uint8_t *p = b + J_ENTRIES + i * J_ENT;
		uint64_t key = uc_get64(p, 0);

		j[i].cluster = key & ((1ULL << 48) - 1);
		j[i].page = key >> 48 & 0xff;
		j[i].type = key >> 56;
		entry_get(p + 8, &j[i].e);
		j[i].s = uc_get64(p, 24);
	}
	return n;
}

/* ---- space ---- */

int cz_space_init(struct cz_space *sp, uint64_t nr_blocks)
{
	sp->bits = calloc((nr_blocks + 63) / 64 + 1, sizeof(uint64_t));
	sp->nr_blocks = nr_blocks;
	sp->used = sp->cursor = 0;
	sp->no_run = 0;
	return sp->bits ? 0 : -ENOMEM;
}

void cz_space_free_all(struct cz_space *sp)
{
	free(sp->bits);
	sp->bits = NULL;
}

static bool is_used(const struct cz_space *sp, uint64_t b)
{
	return sp->bits[b / 64] >> (b % 64) & 1;
}

static void set_range(struct cz_space *sp, uint64_t b, unsigned int n, bool used)
{
	for (uint64_t i = b; i < b + n; i++) {
		if (used)
			sp->bits[i / 64] |= 1ULL << (i % 64);
		else
			sp->bits[i / 64] &= ~(1ULL << (i % 64));
	}
	sp->used += used ? n : -(uint64_t)n;
}

/* The first free run of n blocks in [from, to), or UINT64_MAX. Whole words at once where it can. */
static uint64_t find_run(const struct cz_space *sp, uint64_t from, uint64_t to, unsigned int n)
{
	uint64_t run = 0, b = from;

	while (b < to) {
		if (!(b % 64) && b + 64 <= to) {
			uint64_t w = sp->bits[b / 64];

			if (w == ~0ULL) {
				run = 0;
				b += 64;
				continue;
			}
			if (!w) {
				if (run + 64 >= n)
					return b - run;
				run += 64;
				b += 64;
				continue;
			}
		}
		if (is_used(sp, b))
			run = 0;
		else if (++run == n)
			return b + 1 - n;
		b++;
	}
	return UINT64_MAX;
}

uint64_t cz_space_alloc(struct cz_space *sp, unsigned int n)
{
	uint64_t b;

	if (!n || sp->nr_blocks - sp->used < n || (sp->no_run && n >= sp->no_run))
		return UINT64_MAX;
	b = find_run(sp, sp->cursor, sp->nr_blocks, n);
	if (b == UINT64_MAX)
		b = find_run(sp, 0, sp->cursor + n - 1 < sp->nr_blocks ? sp->cursor + n - 1 : sp->nr_blocks, n);
	if (b == UINT64_MAX) {
		/* taking blocks makes no run longer: until one is released, it fails at once */
		sp->no_run = n;
		return b;
	}
	set_range(sp, b, n, true);
	sp->cursor = b + n < sp->nr_blocks ? b + n : 0;
	return b;
}

/* The first free block in [from, to), or UINT64_MAX. */
static uint64_t find_free(const struct cz_space *sp, uint64_t from, uint64_t to)
{
	for (uint64_t b = from; b < to; b++) {
		if (!(b % 64) && sp->bits[b / 64] == ~0ULL) {
			b += 63;
			continue;
		}
		if (!is_used(sp, b))
			return b;
	}
	return UINT64_MAX;
}

uint64_t cz_space_alloc_upto(struct cz_space *sp, unsigned int max, unsigned int *got)
{
	uint64_t b = find_free(sp, sp->cursor, sp->nr_blocks);
	unsigned int n = 1;

	if (b == UINT64_MAX)
		b = find_free(sp, 0, sp->cursor);
	if (b == UINT64_MAX || !max)
		return UINT64_MAX;
	while (n < max && b + n < sp->nr_blocks && !is_used(sp, b + n))
		n++;
	set_range(sp, b, n, true);
	sp->cursor = b + n < sp->nr_blocks ? b + n : 0;
	*got = n;
	return b;
}

int cz_space_take(struct cz_space *sp, uint64_t b, unsigned int n)
{
	if (b + n > sp->nr_blocks || b + n < b)
		return -ERANGE;
	for (uint64_t i = b; i < b + n; i++)
		if (is_used(sp, i))
			return -EEXIST;
	set_range(sp, b, n, true);
	return 0;
}

void cz_space_release(struct cz_space *sp, uint64_t b, unsigned int n)
{
	set_range(sp, b, n, false);
	sp->no_run = 0;
}

bool cz_space_used(const struct cz_space *sp, uint64_t b)
{
	return b < sp->nr_blocks && is_used(sp, b);
}
