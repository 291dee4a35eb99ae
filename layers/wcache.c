/* SPDX-License-Identifier: MIT */
/* The fault layer's volatile write cache. See wcache.h. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "layer.h"
#include "wcache.h"

#define SECTORS		(WC_BLOCK / WC_SECTOR)	/* 8: one bit each in a uint8_t mask */

/* Sectors [s0, s1) of a block. */
static uint8_t sector_mask(unsigned int s0, unsigned int s1)
{
	return ((1U << s1) - 1) & ~((1U << s0) - 1);
}

static uint32_t bucket(const struct wcache *c, uint64_t blk)
{
	return (uint32_t)((blk * 0x9E3779B97F4A7C15ULL) >> 32) & c->bucket_mask;
}

static int32_t find(const struct wcache *c, int m, uint64_t blk)
{
	for (int32_t i = c->map[m][bucket(c, blk)]; i >= 0; i = c->slots[i].next)
		if (c->slots[i].blk == blk)
			return i;
	return -1;
}

static void list_add(struct wcache *c, int m, int32_t i)
{
	struct wc_slot *s = &c->slots[i];

	s->lprev = -1;
	s->lnext = c->list[m];
	if (s->lnext >= 0)
		c->slots[s->lnext].lprev = i;
	c->list[m] = i;
}

static void list_del(struct wcache *c, int m, int32_t i)
{
	struct wc_slot *s = &c->slots[i];

	if (s->lprev >= 0)
		c->slots[s->lprev].lnext = s->lnext;
	else
		c->list[m] = s->lnext;
	if (s->lnext >= 0)
		c->slots[s->lnext].lprev = s->lprev;
}

static int32_t insert(struct wcache *c, int m, uint64_t blk)
{
	int32_t i = c->free_head, *head = &c->map[m][bucket(c, blk)];

	assert(i >= 0);
	c->free_head = c->slots[i].next;
	c->nr_free--;
	c->slots[i] = (struct wc_slot){ .blk = blk, .next = *head };
	*head = i;
	list_add(c, m, i);
	c->nr_used[m]++;
	return i;
}

static void release(struct wcache *c, int32_t i)
{
	c->slots[i].next = c->free_head;
	c->free_head = i;
	c->nr_free++;
}

static void unlink_slot(struct wcache *c, int m, int32_t idx)
{
	int32_t *p = &c->map[m][bucket(c, c->slots[idx].blk)];

	while (*p != idx)
		p = &c->slots[*p].next;
	*p = c->slots[idx].next;
	list_del(c, m, idx);
	c->nr_used[m]--;
	release(c, idx);
}

/* Maps m1 and m2 trade places (their buckets, lists and counts). */
static void swap_maps(struct wcache *c, int m1, int m2)
{
	int32_t *map = c->map[m1], list = c->list[m1];
	uint32_t used = c->nr_used[m1];
	uint64_t bytes = c->bytes[m1];

	c->map[m1] = c->map[m2];
	c->list[m1] = c->list[m2];
	c->nr_used[m1] = c->nr_used[m2];
	c->bytes[m1] = c->bytes[m2];
	c->map[m2] = map;
	c->list[m2] = list;
	c->nr_used[m2] = used;
	c->bytes[m2] = bytes;
}

int wcache_init(struct wcache *c, uint64_t bytes)
{
	uint32_t nr = bytes / WC_BLOCK < 16 ? 16 : bytes / WC_BLOCK, nb = 1;

	memset(c, 0, sizeof(*c));
	while (nb < nr)
		nb <<= 1;
	c->slots = calloc(nr, sizeof(*c->slots));
	c->data = aligned_alloc(WC_BLOCK, (size_t)nr * WC_BLOCK);
	for (int m = 0; m < WC_MAPS; m++)
		c->map[m] = malloc(nb * sizeof(int32_t));
	if (!c->slots || !c->data || !c->map[0] || !c->map[1] || !c->map[2]) {
		wcache_free(c);
		return -ENOMEM;
	}
	c->nr_slots = nr;
	c->bucket_mask = nb - 1;
	for (int m = 0; m < WC_MAPS; m++)
		memset(c->map[m], 0xff, nb * sizeof(int32_t));
	c->free_head = -1;
	for (uint32_t i = nr; i--;)
		release(c, i);
	for (int m = 0; m < WC_MAPS; m++)
		c->list[m] = -1;
	c->wb_head = -1;
	return 0;
}

void wcache_free(struct wcache *c)
{
	free(c->slots);
	free(c->data);
	for (int m = 0; m < WC_MAPS; m++)
		free(c->map[m]);
	memset(c, 0, sizeof(*c));
}

int wcache_write(struct wcache *c, uint64_t off, uint64_t len, const struct iovec *iov,
		 unsigned int nr_iov)
{
	uint64_t first = off / WC_BLOCK, last = (off + len - 1) / WC_BLOCK, need = 0;

	assert(!(off % WC_SECTOR) && !(len % WC_SECTOR) && len);
	for (uint64_t b = first; b <= last; b++)
		need += find(c, WC_CUR, b) < 0;
	if (need > c->nr_free)
		return -ENOSPC;
	for (uint64_t pos = off; pos < off + len;) {
		uint64_t blk = pos / WC_BLOCK, in = pos % WC_BLOCK;
		uint64_t n = WC_BLOCK - in < off + len - pos ? WC_BLOCK - in : off + len - pos;
		int32_t i = find(c, WC_CUR, blk);
		uint8_t bits = sector_mask(in / WC_SECTOR, (in + n) / WC_SECTOR);

		if (i < 0)
			i = insert(c, WC_CUR, blk);
		uc_iov_copy(iov, nr_iov, pos - off, c->data + (size_t)i * WC_BLOCK + in, n, false);
		c->bytes[WC_CUR] += (uint64_t)__builtin_popcount(bits & ~c->slots[i].valid) * WC_SECTOR;
		c->slots[i].valid |= bits;
		pos += n;
	}
	return 0;
}

void wcache_overlay(const struct wcache *c, uint64_t off, uint64_t len, const struct iovec *iov,
		    unsigned int nr_iov)
{
	static const int order[] = { WC_RETIRED, WC_FLUSHING, WC_CUR };	/* the newest last */

	if (!c->nr_used[WC_CUR] && !c->nr_used[WC_FLUSHING] && !c->nr_used[WC_RETIRED])
		return;
	for (uint64_t pos = off; pos < off + len;) {
		uint64_t blk = pos / WC_BLOCK, in = pos % WC_BLOCK;
		uint64_t n = WC_BLOCK - in < off + len - pos ? WC_BLOCK - in : off + len - pos;

		for (int k = 0; k < WC_MAPS; k++) {
			int32_t i = c->nr_used[order[k]] ? find(c, order[k], blk) : -1;

			if (i < 0)
				continue;
			for (unsigned int s = in / WC_SECTOR; s < (in + n) / WC_SECTOR; s++)
				if (c->slots[i].valid & (1U << s))
					uc_iov_copy(iov, nr_iov, blk * WC_BLOCK + s * WC_SECTOR - off,
						 c->data + (size_t)i * WC_BLOCK + s * WC_SECTOR,
						 WC_SECTOR, true);
		}
		pos += n;
	}
}

static void remove_map(struct wcache *c, int m, uint64_t off, uint64_t len)
{
	for (uint64_t pos = off; pos < off + len && c->nr_used[m];) {
		uint64_t blk = pos / WC_BLOCK, in = pos % WC_BLOCK;
		uint64_t n = WC_BLOCK - in < off + len - pos ? WC_BLOCK - in : off + len - pos;
		int32_t i = find(c, m, blk);
		uint8_t bits;

		pos += n;
		if (i < 0)
			continue;
		bits = sector_mask(in / WC_SECTOR, (in + n) / WC_SECTOR) & c->slots[i].valid;
		c->bytes[m] -= (uint64_t)__builtin_popcount(bits) * WC_SECTOR;
		c->slots[i].valid &= ~bits;
		if (!c->slots[i].valid)
			unlink_slot(c, m, i);
	}
}

void wcache_remove(struct wcache *c, uint64_t off, uint64_t len)
{
	assert(!c->nr_used[WC_FLUSHING]);
	remove_map(c, WC_CUR, off, len);
	remove_map(c, WC_RETIRED, off, len);
}

uint32_t wcache_snapshot(struct wcache *c)
{
	assert(!c->nr_used[WC_FLUSHING]);
	swap_maps(c, WC_CUR, WC_FLUSHING);
	for (int32_t i = c->list[WC_FLUSHING]; i >= 0; i = c->slots[i].lnext)
		c->slots[i].wb = c->slots[i].valid;
	c->wb_head = c->list[WC_FLUSHING];
	return c->nr_used[WC_FLUSHING];
}

/* Take the leading run of sectors still to write back from slot i, from sector s0. */
static uint64_t take_run(struct wcache *c, int32_t i, unsigned int s0, uint8_t *buf,
			 unsigned int *end)
{
	struct wc_slot *s = &c->slots[i];
	unsigned int s1 = s0;

	while (s1 < SECTORS && (s->wb & (1U << s1)))
		s1++;
	memcpy(buf, c->data + (size_t)i * WC_BLOCK + s0 * WC_SECTOR, (s1 - s0) * WC_SECTOR);
	s->wb &= ~sector_mask(s0, s1);
	*end = s1;
	return (uint64_t)(s1 - s0) * WC_SECTOR;
}

uint64_t wcache_next_run(struct wcache *c, uint64_t *off, void *buf, uint64_t max)
{
	uint64_t len, blk;
	unsigned int end;
	int32_t i;

	/* blocks before wb_head are written back; a run may have taken some after it */
	while (c->wb_head >= 0 && !c->slots[c->wb_head].wb)
		c->wb_head = c->slots[c->wb_head].lnext;
	if (c->wb_head < 0)
		return 0;
	i = c->wb_head;
	blk = c->slots[i].blk;
	*off = blk * WC_BLOCK + (uint64_t)__builtin_ctz(c->slots[i].wb) * WC_SECTOR;
	len = take_run(c, i, __builtin_ctz(c->slots[i].wb), buf, &end);
	/* a run that reaches the end of its block goes on into the next one */
	while (end == SECTORS && len + WC_BLOCK <= max) {
		i = find(c, WC_FLUSHING, ++blk);
		if (i < 0 || !(c->slots[i].wb & 1))
			break;
		len += take_run(c, i, 0, (uint8_t *)buf + len, &end);
	}
	return len;
}

/* Every block of map m goes back to the free list: its buckets are the ones they were in. */
static void drop_map(struct wcache *c, int m)
{
	for (int32_t i = c->list[m], next; i >= 0; i = next) {
		next = c->slots[i].lnext;
		c->map[m][bucket(c, c->slots[i].blk)] = -1;
		release(c, i);
	}
	c->list[m] = -1;
	c->nr_used[m] = 0;
	c->bytes[m] = 0;
}

void wcache_end_flush(struct wcache *c)
{
	assert(!c->nr_used[WC_RETIRED]);
	swap_maps(c, WC_FLUSHING, WC_RETIRED);
	c->wb_head = -1;
}

void wcache_free_retired(struct wcache *c)
{
	drop_map(c, WC_RETIRED);
}

void wcache_drop(struct wcache *c)
{
	for (int m = 0; m < WC_MAPS; m++)
		drop_map(c, m);
	c->wb_head = -1;
}
