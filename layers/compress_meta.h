/* SPDX-License-Identifier: MIT */
/*
 * The compress layer's on-child format, pure encode/decode and the space
 * allocator, so tests/unit-compress.c checks them without I/O. The format
 * is described in docs/compress-format.md. All blocks are 4 KiB; every
 * number is little-endian; every metadata block carries a crc32c.
 *
 *   block 0, 1     superblock (two copies; the valid one with the higher gen wins)
 *   map_off        checkpoint map area A, then area B (map_blocks each): the clusters' base copies
 *   pages_off      checkpoint page area A, then B (page_blocks each): pages stored on their own
 *   journal_off    journal ring (journal_blocks): map changes since the checkpoint
 *   data_off       data blocks (data_blocks): base copies (runs of blocks) and page fragments
 *
 * A cluster has a base copy (one zstd frame or raw bytes of the whole
 * cluster, or nothing: zero), and any of its 4K pages may be stored on its
 * own instead, as a fragment: the page compressed alone, packed with other
 * fragments into shared blocks. A page's fragment wins over the base.
 */
#ifndef UC_COMPRESS_META_H
#define UC_COMPRESS_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CZ_BLOCK		4096
#define CZ_PAGE			4096	/* the unit a page write stores on its own */
#define CZ_MAGIC		"UCZSTD01"
#define CZ_JMAGIC		0x324a4355	/* "UCJ2" */
#define CZ_VERSION		2
#define CZ_SB_CLEAN		(1U << 0)	/* stopped cleanly: the checkpoint holds everything */
#define CZ_MAP_PER_BLOCK	255	/* 16-byte entries + a 16-byte trailer */
#define CZ_PG_PER_BLOCK		127	/* 32-byte page records + a 32-byte trailer */
#define CZ_J_PER_BLOCK		126	/* 32-byte entries after a 48-byte header */

/* CZ_NONE: in memory only, a page without a fragment of its own. */
enum cz_kind { CZ_ZERO = 0, CZ_RAW = 1, CZ_ZSTD = 2, CZ_NONE = 15 };

/*
 * Where something is stored; 16 bytes on disk. A base copy: pblk (40 bits,
 * in the data area) | nblk << 40 (12) | kind << 52 (4). A page fragment:
 * pblk | byte offset in that block << 40 (12) | kind << 52; it runs on into
 * the next block if offset + clen passes its end.
 */
struct cz_entry {
	uint64_t loc;
	uint32_t clen;		/* bytes stored (the cluster or page size when raw) */
	uint32_t crc;		/* crc32c of those bytes */
};

static inline uint64_t cz_pblk(const struct cz_entry *e) { return e->loc & ((1ULL << 40) - 1); }
static inline unsigned int cz_nblk(const struct cz_entry *e) { return (e->loc >> 40) & 0xfff; }
static inline unsigned int cz_boff(const struct cz_entry *e) { return (e->loc >> 40) & 0xfff; }
static inline unsigned int cz_kind(const struct cz_entry *e) { return (e->loc >> 52) & 0xf; }
static inline uint64_t cz_loc(uint64_t pblk, unsigned int nblk_or_boff, unsigned int kind)
{
	return pblk | (uint64_t)nblk_or_boff << 40 | (uint64_t)kind << 52;
}
/* Blocks a fragment's bytes touch. */
static inline unsigned int cz_fblocks(const struct cz_entry *e)
{
	return (cz_boff(e) + e->clen + CZ_BLOCK - 1) / CZ_BLOCK;
}
static inline bool cz_has_data(const struct cz_entry *e)
{
	return cz_kind(e) == CZ_RAW || cz_kind(e) == CZ_ZSTD;
}

struct cz_sb {
	uint32_t version;
	uint32_t flags;		/* CZ_SB_* */
	uint8_t uuid[16];
	uint64_t gen;		/* +1 on every superblock write; copy gen % 2 is written */
	uint32_t cluster;	/* bytes */
	int32_t level;		/* zstd level it was last run with (informational) */
	uint64_t logical;	/* bytes exposed */
	uint64_t child_size;	/* bytes of the child the layout covers */
	uint64_t map_off, map_blocks;	/* blocks: area A at map_off, B right after */
	uint64_t pages_off, page_blocks;	/* blocks: page area A, B right after */
	uint64_t journal_off, journal_blocks;
	uint64_t data_off, data_blocks;
	uint32_t ckpt_area;	/* 0 (A) or 1 (B): the latest complete checkpoint */
	uint64_t ckpt_id;	/* its map and page blocks carry this */
	uint64_t ckpt_seq;	/* journal blocks with seq > this are replayed */
	uint64_t journal_head;	/* ring slot of the block with seq ckpt_seq + 1 */
	uint64_t ckpt_pages;	/* page records in the checkpoint */
};

/*
 * The layout for a child of child_size bytes, by the current rule (a new
 * volume). Returns 0 or -ENOSPC (too small). cz_layout_old: by the first
 * rule of format 2 (page capacity a quarter of the child's blocks), which
 * volumes made by it keep; a superblock must match one of the rules.
 */
#define CZ_LAYOUT_RULE	2
int cz_layout(struct cz_sb *sb, uint64_t child_size, uint64_t logical, uint32_t cluster);
int cz_layout_old(struct cz_sb *sb, uint64_t child_size, uint64_t logical, uint32_t cluster);
uint64_t cz_nclusters(const struct cz_sb *sb);
/* Pages that may be stored on their own at once (what the page areas hold). */
uint64_t cz_page_capacity(const struct cz_sb *sb);
void cz_sb_encode(const struct cz_sb *sb, void *block);
/*
 * Returns 0, -ENOENT (no magic), -EBADMSG (checksum, layout), or -EPROTO
 * (another format version; sb->version says which).
 */
int cz_sb_decode(struct cz_sb *sb, const void *block);
void cz_sb_print(const struct cz_sb *sb, FILE *out);

/* Map block i of checkpoint ckpt_id from entries[i * CZ_MAP_PER_BLOCK ...] (n of them). */
void cz_map_encode(void *block, const struct cz_entry *e, unsigned int n, uint64_t ckpt_id,
		   uint32_t index);
/* Returns 0 or -EBADMSG (checksum, another checkpoint, another index). */
int cz_map_decode(const void *block, struct cz_entry *e, unsigned int n, uint64_t ckpt_id,
		  uint32_t index);

/* A page stored on its own: its number in the volume, its fragment, its stamp. */
struct cz_prec {
	uint64_t page;
	struct cz_entry e;
	uint64_t stamp;		/* the journal entry that stored it (see compress_int.h) */
};
/* Page block index of checkpoint ckpt_id: n records (n <= CZ_PG_PER_BLOCK). */
void cz_pages_encode(void *block, const struct cz_prec *r, unsigned int n, uint64_t ckpt_id,
		     uint32_t index);
/* Returns the record count, or -EBADMSG (checksum, another checkpoint, another index). */
int cz_pages_decode(const void *block, struct cz_prec *r, uint64_t ckpt_id, uint32_t index);

/*
 * Journal entries. CZ_J_BASE_CLEAR: the cluster's base copy becomes e, and
 * its pages' fragments with a stamp <= s are dropped (they are in the new
 * base, or the write replaced them). CZ_J_BASE: the base becomes e (zero:
 * every page has a fragment), the fragments stay. CZ_J_PAGE: page `page` of
 * the cluster gets fragment e (kind zero: it reads zeroes).
 */
enum cz_jtype { CZ_J_BASE_CLEAR = 1, CZ_J_BASE = 2, CZ_J_PAGE = 3 };

struct cz_jent {
	uint64_t cluster;
	uint8_t type;		/* enum cz_jtype */
	uint8_t page;		/* CZ_J_PAGE: the page in the cluster */
	struct cz_entry e;
	uint64_t s;		/* CZ_J_BASE_CLEAR: fragments stamped up to this are dropped */
};

/*
 * A journal block: header + n entries (n <= CZ_J_PER_BLOCK). uuid_lo ties it
 * to the volume. Entries are numbered since the volume was opened: first is
 * the number of the block's first one; every entry numbered below durable
 * was on stable storage (the child flushed) when the block was written.
 */
struct cz_jhdr {
	uint64_t seq, first, durable;
	unsigned int n;
};
void cz_journal_encode(void *block, uint64_t uuid_lo, const struct cz_jhdr *h,
		       const struct cz_jent *j);
/* Returns the entry count (h filled in), or -1 if it is not journal block seq of this volume. */
int cz_journal_decode(const void *block, uint64_t seq, uint64_t uuid_lo, struct cz_jhdr *h,
		      struct cz_jent *j);

/*
 * Free space of the data area: a bit per block, 1 = used, with a next-fit
 * cursor. Extents are runs of blocks.
 */
struct cz_space {
	uint64_t *bits;
	uint64_t nr_blocks, used, cursor;
	unsigned int no_run;	/* no free run this long since the last release (0: unknown) */
};

int cz_space_init(struct cz_space *sp, uint64_t nr_blocks);
void cz_space_free_all(struct cz_space *sp);
/* n free blocks in a row: marked used, first one returned; UINT64_MAX if there is no such run. */
uint64_t cz_space_alloc(struct cz_space *sp, unsigned int n);
/* The next free run (next fit), as much of it as is free up to max blocks: *got of them. */
uint64_t cz_space_alloc_upto(struct cz_space *sp, unsigned int max, unsigned int *got);
/* Mark [b, b+n) used (an extent found in the map at open). Returns -EEXIST if one already was. */
int cz_space_take(struct cz_space *sp, uint64_t b, unsigned int n);
void cz_space_release(struct cz_space *sp, uint64_t b, unsigned int n);
/* Is block b used? */
bool cz_space_used(const struct cz_space *sp, uint64_t b);

#endif
