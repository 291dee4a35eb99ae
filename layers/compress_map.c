/* SPDX-License-Identifier: MIT */
/*
 * The compress layer's map in memory: each cluster's base copy, the pages
 * stored on their own (a table by page number), the fragment counts of the
 * data blocks, and the map changes, applied the same way by the running
 * layer and by the journal replay at open (docs/compress-format.md).
 * Everything here runs with cz->lock held (or before the queues start).
 */
#include <errno.h>
#include <stdlib.h>
#include "compress_int.h"

static uint64_t ov_hash(uint64_t key)
{
	return (key * 0x9E3779B97F4A7C15ULL) >> 17;
}

/* Table for capacity pages, at most 3/4 full. Returns 0 or -ENOMEM. */
int cz_ov_init(struct cz *cz, uint64_t capacity)
{
	uint64_t slots = 16;

	while (slots < capacity + capacity / 3 + 1)
		slots <<= 1;
	cz->ov = calloc(slots, sizeof(*cz->ov));
	cz->ov_mask = slots - 1;
	cz->ov_count = 0;
	return cz->ov ? 0 : -ENOMEM;
}

/* The page's slot, or NULL if it has no fragment. */
struct cz_ov *cz_ov_find(const struct cz *cz, uint64_t page)
{
	uint64_t key = page + 1;

	for (uint64_t i = ov_hash(key) & cz->ov_mask;; i = (i + 1) & cz->ov_mask) {
		if (cz->ov[i].key == key)
			return &cz->ov[i];
		if (!cz->ov[i].key)
			return NULL;
	}
}

/* A new slot for a page that has none (the caller checked the capacity). */
static struct cz_ov *ov_insert(struct cz *cz, uint64_t page)
{
	uint64_t key = page + 1, i;

	for (i = ov_hash(key) & cz->ov_mask; cz->ov[i].key; i = (i + 1) & cz->ov_mask)
		;
	cz->ov[i].key = key;
	cz->ov_count++;
	return &cz->ov[i];
}

/* Empty slot o; later slots of its probe run move back so lookups still find them. */
static void ov_remove(struct cz *cz, struct cz_ov *o)
{
	uint64_t hole = o - cz->ov;

	for (uint64_t i = (hole + 1) & cz->ov_mask; cz->ov[i].key; i = (i + 1) & cz->ov_mask) {
		uint64_t home = ov_hash(cz->ov[i].key) & cz->ov_mask;

		/* it may fill the hole if its home is not in (hole, i] (cyclically) */
		if (((i - home) & cz->ov_mask) >= ((i - hole) & cz->ov_mask)) {
			cz->ov[hole] = cz->ov[i];
			hole = i;
		}
	}
	cz->ov[hole].key = 0;
	cz->ov_count--;
}

/*
 * Cluster c's map changed: what the read caches hold of it is out of date.
 * A wrap of its gen first moves the epoch on (a cache that loads the new
 * gen, acquire, then sees the new epoch too).
 */
void cz_cluster_changed(struct cz *cz, uint64_t c)
{
	uint32_t g = atomic_load_explicit(&cz->gen[c], memory_order_relaxed);

	if (g == UINT32_MAX)
		atomic_fetch_add_explicit(&cz->cache_epoch, 1, memory_order_release);
	atomic_store_explicit(&cz->gen[c], g + 1, memory_order_release);
}

/* Pages of cluster c that hold data (for the stats). */
static uint64_t stored_of(const struct cz *cz, uint64_t c)
{
	uint64_t base = cz_has_data(&cz->map[c]) ? cz->ppc - cz->ovn[c] : 0;

	return base + cz->ovn[c] - cz->ovz[c];
}

/* A fragment's blocks: one fragment more, or less (the last one out frees the block). */
static void frag_ref(struct cz *cz, const struct cz_entry *e)
{
	for (unsigned int i = 0; i < cz_fblocks(e); i++)
		cz->refs[cz_pblk(e) + i]++;
}

void cz_block_unref(struct cz *cz, uint64_t b, uint64_t entry)
{
	if (!--cz->refs[b])
		cz_free_later(cz, b, 1, entry);
}

static void frag_unref(struct cz *cz, const struct cz_entry *e, uint64_t entry)
{
	for (unsigned int i = 0; i < cz_fblocks(e); i++)
		cz_block_unref(cz, cz_pblk(e) + i, entry);
}

/* Page o of cluster c loses its fragment. */
static void ov_drop(struct cz *cz, uint64_t c, struct cz_ov *o, uint64_t entry, bool live)
{
	if (cz_kind(&o->e) == CZ_ZERO)
		cz->ovz[c]--;
	else if (live) {
		frag_unref(cz, &o->e, entry);
		atomic_fetch_sub(&cz->alone_pages, 1);
	}
	cz->ovn[c]--;
	ov_remove(cz, o);
}

/*
 * Cluster c's base copy becomes e; with clear, its pages' fragments
 * stamped up to s go (the new base holds them, or replaced them). live:
 * the running layer (the old blocks are freed once entry is durable, the
 * stats follow); else the replay, which counts blocks afterwards.
 */
void cz_set_base(struct cz *cz, uint64_t c, const struct cz_entry *e, bool clear, uint64_t s,
		 uint64_t entry, bool live)
{
	const struct cz_entry *old = &cz->map[c];
	uint64_t before = live ? stored_of(cz, c) : 0;

	if (live) {
		atomic_fetch_sub(&cz->nr_kind[cz_kind(old)], 1);
		atomic_fetch_add(&cz->nr_kind[cz_kind(e)], 1);
		if (cz_has_data(old))
			cz_free_later(cz, cz_pblk(old), cz_nblk(old), entry);
	}
	cz->map[c] = *e;
	cz_cluster_changed(cz, c);
	for (unsigned int p = 0; clear && cz->ovn[c] && p < cz->ppc; p++) {
		struct cz_ov *o = cz_ov_find(cz, c * cz->ppc + p);

		if (o && o->stamp <= s)
			ov_drop(cz, c, o, entry, live);
	}
	if (live)
		atomic_fetch_add(&cz->stored_pages, stored_of(cz, c) - before);
}

/*
 * Page p of cluster c gets fragment e (kind zero: it reads zeroes),
 * stamped. Returns 0, or -ENOSPC if the table is full (the caller made
 * sure it is not, at run time).
 */
int cz_set_page(struct cz *cz, uint64_t c, unsigned int p, const struct cz_entry *e,
		uint64_t stamp, uint64_t entry, bool live)
{
	uint64_t before = live ? stored_of(cz, c) : 0;
	struct cz_ov *o = cz_ov_find(cz, c * cz->ppc + p);

	if (o) {
		if (cz_kind(&o->e) == CZ_ZERO)
			cz->ovz[c]--;
		else if (live) {
			frag_unref(cz, &o->e, entry);
			atomic_fetch_sub(&cz->alone_pages, 1);
		}
	} else {
		if (cz->ov_count >= cz_page_capacity(&cz->sb))
			return -ENOSPC;
		o = ov_insert(cz, c * cz->ppc + p);
		cz->ovn[c]++;
	}
	o->e = *e;
	o->stamp = stamp;
	cz_cluster_changed(cz, c);
	if (cz_kind(e) == CZ_ZERO)
		cz->ovz[c]++;
	else if (live) {
		frag_ref(cz, e);
		atomic_fetch_add(&cz->alone_pages, 1);
	}
	if (live)
		atomic_fetch_add(&cz->stored_pages, stored_of(cz, c) - before);
	return 0;
}
