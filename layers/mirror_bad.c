/* SPDX-License-Identifier: MIT */
/*
 * mirror: bad ranges, md's bad-block log for a mirror. When a resync can read
 * a range from no in-sync leg, the legs it copies to never get that range:
 * it is recorded as not held by them and the resync goes on. Reads skip legs
 * with a record over the range (no leg left: the read fails, it never
 * returns what such a leg holds); a write a leg completes takes the leg out
 * of the records there. The table is m->bad[], sorted and not overlapping,
 * under m->lock, and goes to disk in the superblock (version 2).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "mirror.h"

uint32_t mirror_bad_legs_locked(const struct mirror *m, uint64_t off, uint64_t len)
{
	uint32_t legs = 0;

	for (unsigned int i = 0; i < m->nr_bad; i++)
		if (m->bad[i].off < off + len && off < m->bad[i].off + m->bad[i].len)
			legs |= m->bad[i].legs;
	return legs;
}

uint32_t mirror_bad_legs(struct mirror *m, uint64_t off, uint64_t len)
{
	uint32_t legs;

	if (!atomic_load(&m->nr_bad))
		return 0;	/* the common case: no lock */
	pthread_mutex_lock(&m->lock);
	legs = mirror_bad_legs_locked(m, off, len);
	pthread_mutex_unlock(&m->lock);
	return legs;
}

/* The legs recorded over byte x (lock held). */
static uint32_t legs_at(const struct mirror *m, uint64_t x)
{
	for (unsigned int i = 0; i < m->nr_bad; i++)
		if (m->bad[i].off <= x && x < m->bad[i].off + m->bad[i].len)
			return m->bad[i].legs;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Over [off, off + len): legs = (legs | set) & ~clear. The table is rebuilt
 * from the pieces between all boundaries, equal neighbours merged. Returns
 * 1 if it changed, 0 if not, -ENOSPC if it would not fit (unchanged).
 */
static int bad_apply(struct mirror *m, uint64_t off, uint64_t len, uint32_t set, uint32_t clear)
{
	uint64_t pts[2 * MIRROR_BAD_MAX + 2];
	struct mirror_bad out[MIRROR_BAD_MAX];
	unsigned int nr_pts = 0, nr = 0;

	for (unsigned int i = 0; i < m->nr_bad; i++) {
		pts[nr_pts++] = m->bad[i].off;
		pts[nr_pts++] = m->bad[i].off + m->bad[i].len;
	}
	pts[nr_pts++] = off;
	pts[nr_pts++] = off + len;
	qsort(pts, nr_pts, sizeof(pts[0]), cmp_u64);
	for (unsigned int k = 0; k + 1 < nr_pts; k++) {
		uint64_t a = pts[k], b = pts[k + 1];
		uint32_t legs;

		if (a == b)
			continue;
		legs = legs_at(m, a);
		if (a >= off && b <= off + len)
			legs = (legs | set) & ~clear;
		if (!legs)
			continue;
		if (nr && out[nr - 1].off + out[nr - 1].len == a && out[nr - 1].legs == legs) {
			out[nr - 1].len += b - a;
			continue;
		}
		if (nr == MIRROR_BAD_MAX)
			return -ENOSPC;
		out[nr++] = (struct mirror_bad){ a, b - a, legs };
	}
	if (nr == m->nr_bad) {
		unsigned int i = 0;

		while (i < nr && out[i].off == m->bad[i].off && out[i].len == m->bad[i].len &&
		       out[i].legs == m->bad[i].legs)
			i++;
		if (i == nr)
			return 0;
	}
	memcpy(m->bad, out, nr * sizeof(out[0]));
	atomic_store(&m->nr_bad, nr);
	return 1;
}

int mirror_bad_add(struct mirror *m, uint64_t off, uint64_t len, uint32_t legs)
{
	int ret = bad_apply(m, off, len, legs, 0);

	if (ret > 0)
		m->meta_seq++;
	return ret < 0 ? ret : 0;
}

void mirror_bad_clear(struct mirror *m, uint32_t legs, uint64_t off, uint64_t len)
{
	if (atomic_load(&m->nr_bad) && bad_apply(m, off, len, 0, legs) > 0)
		m->meta_seq++;	/* conservative until written: a crash keeps the record */
}

uint64_t mirror_bad_bytes(const struct mirror *m)
{
	uint64_t sum = 0;

	for (unsigned int i = 0; i < m->nr_bad; i++)
		sum += m->bad[i].len;
	return sum;
}
