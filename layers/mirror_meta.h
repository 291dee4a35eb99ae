/* SPDX-License-Identifier: MIT */
/*
 * The mirror's on-leg metadata: a 4 KiB superblock at byte 0 of every leg,
 * then the write-intent bitmap, then (at data_offset) the data. Pure
 * encode/decode so the unit tests and `examine` use the same code. The
 * format is described in docs/mirror-format.md.
 */
#ifndef UC_MIRROR_META_H
#define UC_MIRROR_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MIRROR_MAGIC		"UCMIRROR"
#define MIRROR_VERSION		1
#define MIRROR_VERSION_BAD	2	/* 1 + a table of bad ranges: written while it is not empty */
#define MIRROR_LAYOUT		1	/* data at data_offset, same offsets on every leg */
#define MIRROR_SB_SIZE		4096
#define MIRROR_MAX_LEGS		16
#define MIRROR_SB_CLEAN		(1U << 0)	/* shut down with every write finished */
#define MIRROR_BAD_MAX		64	/* bad ranges the superblock holds */

enum mirror_leg_state {
	LEG_IN_SYNC = 0,	/* holds every completed write */
	LEG_FAULTY = 1,		/* failed: not read, not written */
	LEG_REBUILDING = 2,	/* gets writes; resync copies the regions it missed (bitmap) */
	LEG_REBUILDING_FULL = 3,	/* gets writes; resync copies everything */
	LEG_MISSING = 4,	/* listed in the array, not in this config */
};

struct mirror_leg_info {
	uint8_t uuid[16];
	uint32_t state;		/* enum mirror_leg_state */
	uint64_t errors;	/* I/O errors seen on this leg */
};

/*
 * A range some legs do not hold (md's bad-block log): a resync could read it
 * from no in-sync leg, so the legs it was copying to never got it. Reads of
 * it skip those legs; a write to a leg takes the leg out of the record there.
 */
struct mirror_bad {
	uint64_t off;		/* bytes, in the mirror's address space */
	uint64_t len;		/* bytes, > 0 */
	uint32_t legs;		/* slots in legs[] whose copy of the range is not the data */
};

struct mirror_sb {
	uint32_t version;	/* decode: as read; encode writes 1, or 2 if nr_bad */
	uint32_t layout;
	uint8_t array_uuid[16];
	uint8_t leg_uuid[16];	/* the leg this copy was written to */
	uint32_t leg_index;	/* its slot in legs[] */
	uint32_t nr_legs;
	uint64_t events;	/* generation: +1 on every metadata write */
	uint64_t events_cleared;	/* generation when bitmap bits were last cleared */
	uint64_t data_offset;	/* bytes */
	uint64_t data_size;	/* bytes of data on each leg */
	uint64_t bitmap_chunk;	/* bytes per bit */
	uint64_t bitmap_bits;
	uint64_t resync_pos;	/* bytes: resync done below this (UINT64_MAX: none running) */
	uint32_t flags;		/* MIRROR_SB_* */
	uint32_t bitmap_crc;	/* crc32c of the bitmap bytes that follow */
	struct mirror_leg_info legs[MIRROR_MAX_LEGS];
	uint32_t nr_bad;	/* version 2: entries of bad[], sorted, not overlapping */
	struct mirror_bad bad[MIRROR_BAD_MAX];
};

/* Bytes the bitmap takes on disk (rounded to 4 KiB). */
uint64_t mirror_bitmap_bytes(uint64_t bits);
/* Encode sb into a MIRROR_SB_SIZE block (little-endian, checksummed). */
void mirror_sb_encode(const struct mirror_sb *sb, void *block);
/*
 * Decode a block. Returns 0, -ENOENT if it holds no superblock (no magic),
 * -EBADMSG on a checksum mismatch or inconsistent fields, -EPROTO on an
 * unknown version/layout.
 */
int mirror_sb_decode(struct mirror_sb *sb, const void *block);
const char *mirror_leg_state_name(uint32_t state);
/* "1b4e28ba-2fa1-11d2-883f-0016d3cca427" into out (37 bytes). */
void mirror_uuid_str(const uint8_t uuid[16], char *out);
/* Print a superblock like `mdadm --examine`. */
void mirror_sb_print(const struct mirror_sb *sb, FILE *out);

#endif
