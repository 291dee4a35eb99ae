/* SPDX-License-Identifier: MIT */
/* Mirror superblock encode/decode and checksums. See mirror_meta.h. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include "crc32c.h"
#include "le.h"
#include "mirror_meta.h"

/* on-disk offsets (little-endian) */
enum {
	O_MAGIC = 0, O_VERSION = 8, O_LAYOUT = 12, O_ARRAY_UUID = 16, O_LEG_UUID = 32,
	O_LEG_INDEX = 48, O_NR_LEGS = 52, O_EVENTS = 56, O_EVENTS_CLEARED = 64,
	O_DATA_OFFSET = 72, O_DATA_SIZE = 80, O_BITMAP_CHUNK = 88, O_BITMAP_BITS = 96,
	O_RESYNC_POS = 104, O_FLAGS = 112, O_BITMAP_CRC = 116,
	O_LEGS = 256, LEG_SIZE = 32,	/* uuid[16] state:le32 pad:le32 errors:le64 */
	O_NR_BAD = 1024, O_BAD = 1032, BAD_SIZE = 24,	/* version 2: off:le64 len:le64 legs:le32 pad:le32 */
	O_CRC = MIRROR_SB_SIZE - 4,
};

uint64_t mirror_bitmap_bytes(uint64_t bits)
{
	return ((bits + 7) / 8 + 4095) & ~4095ULL;
}

void mirror_sb_encode(const struct mirror_sb *sb, void *block)
{
	uint8_t *b = block;

	memset(b, 0, MIRROR_SB_SIZE);
	memcpy(b + O_MAGIC, MIRROR_MAGIC, 8);
	/* the table only when it holds something: version 1 readers can read every other leg */
	uc_put32(b, O_VERSION, sb->nr_bad ? MIRROR_VERSION_BAD : MIRROR_VERSION);
	uc_put32(b, O_LAYOUT, sb->layout);
	memcpy(b + O_ARRAY_UUID, sb->array_uuid, 16);
	memcpy(b + O_LEG_UUID, sb->leg_uuid, 16);
	uc_put32(b, O_LEG_INDEX, sb->leg_index);
	uc_put32(b, O_NR_LEGS, sb->nr_legs);
	uc_put64(b, O_EVENTS, sb->events);
	uc_put64(b, O_EVENTS_CLEARED, sb->events_cleared);
	uc_put64(b, O_DATA_OFFSET, sb->data_offset);
	uc_put64(b, O_DATA_SIZE, sb->data_size);
	uc_put64(b, O_BITMAP_CHUNK, sb->bitmap_chunk);
	uc_put64(b, O_BITMAP_BITS, sb->bitmap_bits);
	uc_put64(b, O_RESYNC_POS, sb->resync_pos);
	uc_put32(b, O_FLAGS, sb->flags);
	uc_put32(b, O_BITMAP_CRC, sb->bitmap_crc);
	for (unsigned int i = 0; i < sb->nr_legs && i < MIRROR_MAX_LEGS; i++) {
		size_t o = O_LEGS + i * LEG_SIZE;

		memcpy(b + o, sb->legs[i].uuid, 16);
		uc_put32(b, o + 16, sb->legs[i].state);
		uc_put64(b, o + 24, sb->legs[i].errors);
	}
	if (sb->nr_bad) {
		uc_put32(b, O_NR_BAD, sb->nr_bad);
		for (unsigned int i = 0; i < sb->nr_bad && i < MIRROR_BAD_MAX; i++) {
			size_t o = O_BAD + i * BAD_SIZE;

			uc_put64(b, o, sb->bad[i].off);
			uc_put64(b, o + 8, sb->bad[i].len);
			uc_put32(b, o + 16, sb->bad[i].legs);
		}
	}
	uc_put32(b, O_CRC, uc_crc32c(0, b, O_CRC));
}

int mirror_sb_decode(struct mirror_sb *sb, const void *block)
{
	const uint8_t *b = block;

	memset(sb, 0, sizeof(*sb));
	if (memcmp(b + O_MAGIC, MIRROR_MAGIC, 8))
		return -ENOENT;
	if (uc_get32(b, O_CRC) != uc_crc32c(0, b, O_CRC))
		return -EBADMSG;
	sb->version = uc_get32(b, O_VERSION);
	sb->layout = uc_get32(b, O_LAYOUT);
	if ((sb->version != MIRROR_VERSION && sb->version != MIRROR_VERSION_BAD) ||
	    sb->layout != MIRROR_LAYOUT)
		return -EPROTO;
	memcpy(sb->array_uuid, b + O_ARRAY_UUID, 16);
	memcpy(sb->leg_uuid, b + O_LEG_UUID, 16);
	sb->leg_index = uc_get32(b, O_LEG_INDEX);
	sb->nr_legs = uc_get32(b, O_NR_LEGS);
	sb->events = uc_get64(b, O_EVENTS);
	sb->events_cleared = uc_get64(b, O_EVENTS_CLEARED);
	sb->data_offset = uc_get64(b, O_DATA_OFFSET);
	sb->data_size = uc_get64(b, O_DATA_SIZE);
	sb->bitmap_chunk = uc_get64(b, O_BITMAP_CHUNK);
	sb->bitmap_bits = uc_get64(b, O_BITMAP_BITS);
	sb->resync_pos = uc_get64(b, O_RESYNC_POS);
	sb->flags = uc_get32(b, O_FLAGS);
	sb->bitmap_crc = uc_get32(b, O_BITMAP_CRC);
	if (sb->nr_legs < 1 || sb->nr_legs > MIRROR_MAX_LEGS || sb->leg_index >= sb->nr_legs ||
	    !sb->bitmap_chunk || (sb->bitmap_chunk & (sb->bitmap_chunk - 1)) ||
	    sb->data_offset < MIRROR_SB_SIZE + mirror_bitmap_bytes(sb->bitmap_bits) ||
	    sb->bitmap_bits != (sb->data_size + sb->bitmap_chunk - 1) / sb->bitmap_chunk)
		return -EBADMSG;	/* checksummed but inconsistent: written by a bug */
	for (unsigned int i = 0; i < sb->nr_legs; i++) {
		size_t o = O_LEGS + i * LEG_SIZE;

		memcpy(sb->legs[i].uuid, b + o, 16);
		sb->legs[i].state = uc_get32(b, o + 16);
		sb->legs[i].errors = uc_get64(b, o + 24);
		if (sb->legs[i].state > LEG_MISSING)
			return -EBADMSG;
	}
	if (sb->version == MIRROR_VERSION_BAD) {
		sb->nr_bad = uc_get32(b, O_NR_BAD);
		if (!sb->nr_bad || sb->nr_bad > MIRROR_BAD_MAX)
			return -EBADMSG;
		for (unsigned int i = 0; i < sb->nr_bad; i++) {
			size_t o = O_BAD + i * BAD_SIZE;
			struct mirror_bad *r = &sb->bad[i];

			r->off = uc_get64(b, o);
			r->len = uc_get64(b, o + 8);
			r->legs = uc_get32(b, o + 16);
			if (!r->len || r->len > sb->data_size || r->off > sb->data_size - r->len ||
			    !r->legs || (r->legs >> sb->nr_legs) ||
			    (i && r->off < sb->bad[i - 1].off + sb->bad[i - 1].len))
				return -EBADMSG;
		}
	}
	return 0;
}

const char *mirror_leg_state_name(uint32_t state)
{
	static const char *const names[] = { "in-sync", "faulty", "rebuilding", "rebuilding (full)",
					     "missing" };

	return state <= LEG_MISSING ? names[state] : "?";
}

void mirror_uuid_str(const uint8_t u[16], char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*out++ = '-';
		*out++ = hex[u[i] >> 4];
		*out++ = hex[u[i] & 15];
	}
	*out = 0;
}

void mirror_sb_print(const struct mirror_sb *sb, FILE *out)
{
	char a[37], l[37];

	mirror_uuid_str(sb->array_uuid, a);
	mirror_uuid_str(sb->leg_uuid, l);
	fprintf(out, "          Magic : %s\n        Version : %u (layout %u)\n", MIRROR_MAGIC,
		sb->version, sb->layout);
	fprintf(out, "     Array UUID : %s\n       Leg UUID : %s\n      Leg index : %u of %u\n",
		a, l, sb->leg_index, sb->nr_legs);
	fprintf(out, "         Events : %" PRIu64 "\n Events cleared : %" PRIu64 "\n", sb->events,
		sb->events_cleared);
	fprintf(out, "    Data offset : %" PRIu64 " bytes\n      Data size : %" PRIu64 " bytes\n",
		sb->data_offset, sb->data_size);
	fprintf(out, "   Bitmap chunk : %" PRIu64 " bytes (%" PRIu64 " bits)\n", sb->bitmap_chunk,
		sb->bitmap_bits);
	fprintf(out, "          State : %s\n", sb->flags & MIRROR_SB_CLEAN ? "clean" : "active (not clean)");
	if (sb->resync_pos != UINT64_MAX)
		fprintf(out, "  Resync offset : %" PRIu64 " bytes\n", sb->resync_pos);
	fprintf(out, "\n    Leg  State               Errors  UUID\n");
	for (unsigned int i = 0; i < sb->nr_legs; i++) {
		mirror_uuid_str(sb->legs[i].uuid, l);
		fprintf(out, "  %c %3u  %-18s %7" PRIu64 "  %s\n", i == sb->leg_index ? '*' : ' ', i,
			mirror_leg_state_name(sb->legs[i].state), sb->legs[i].errors, l);
	}
	if (sb->nr_bad)
		fprintf(out, "\n    Bad ranges (not held by the legs listed):\n");
	for (unsigned int i = 0; i < sb->nr_bad; i++) {
		fprintf(out, "      offset %" PRIu64 " length %" PRIu64 ": leg", sb->bad[i].off,
			sb->bad[i].len);
		for (unsigned int k = 0; k < MIRROR_MAX_LEGS; k++)
			if (sb->bad[i].legs & (1U << k))
				fprintf(out, " %u", k);
		fprintf(out, "\n");
	}
}
