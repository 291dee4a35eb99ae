/* SPDX-License-Identifier: MIT */
/*
 * A volatile write cache in memory, for the fault layer's lose_unflushed
 * (a power-cut emulator): writes land here, a FLUSH moves a snapshot of them
 * to the child, a "crash" drops whatever was not moved. Pure data structure,
 * no I/O and no locking (the fault layer holds its lock around every call),
 * so tests/unit-fault.c checks it against a model.
 *
 * Data is kept per 4 KiB block with a mask of the 512-byte sectors held.
 * Three maps: the current one takes writes; a snapshot turns it into the
 * flushing one, whose blocks are handed out as write-back runs until the
 * flush ends; then it is retired: kept until reads that may have fetched the
 * child's data from before the write-back are done. Reads overlay retired,
 * flushing, then current (the newest last) on what the child gave.
 */
#ifndef UC_WCACHE_H
#define UC_WCACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define WC_BLOCK	4096
#define WC_SECTOR	512

enum { WC_CUR, WC_FLUSHING, WC_RETIRED, WC_MAPS };

struct wc_slot {
	uint64_t blk;		/* block number (byte offset / WC_BLOCK) */
	int32_t next;		/* bucket chain, -1 ends it; free list when unused */
	int32_t lnext, lprev;	/* the list of its map's blocks (-1 ends it) */
	uint8_t valid;		/* sectors held */
	uint8_t wb;		/* flushing map: sectors still to write back */
};

/*
 * Every map keeps a list of its blocks besides its hash buckets, so that a
 * snapshot, a write-back pass and dropping a map cost what the map holds,
 * not the bucket count (which grows with unflushed_max, up to 4M buckets).
 */
struct wcache {
	struct wc_slot *slots;
	uint8_t *data;		/* WC_BLOCK bytes per slot */
	uint32_t nr_slots, nr_free;
	int32_t free_head;
	uint32_t bucket_mask;	/* buckets - 1 (a power of two) */
	int32_t *map[WC_MAPS];	/* bucket heads of each map */
	int32_t list[WC_MAPS];	/* first block of each map's list, -1: empty */
	uint32_t nr_used[WC_MAPS];	/* slots in each map */
	uint64_t bytes[WC_MAPS];	/* sectors held in each map, in bytes */
	int32_t wb_head;	/* flushing map: where write-back goes on in its list, -1: done */
};

/* Room for bytes of cached data (at least 16 blocks). Returns 0 or -ENOMEM. */
int wcache_init(struct wcache *c, uint64_t bytes);
void wcache_free(struct wcache *c);
/*
 * Store len bytes at byte offset off (both multiples of WC_SECTOR) from iov
 * in the current map. Returns 0, or -ENOSPC with nothing stored when the
 * free blocks do not suffice.
 */
int wcache_write(struct wcache *c, uint64_t off, uint64_t len, const struct iovec *iov,
		 unsigned int nr_iov);
/* Copy every cached sector of [off, off+len) into iov (which holds that range). */
void wcache_overlay(const struct wcache *c, uint64_t off, uint64_t len, const struct iovec *iov,
		    unsigned int nr_iov);
/*
 * Forget the sectors in [off, off+len) (sector aligned): the child gets
 * newer data directly. The flushing map must be empty.
 */
void wcache_remove(struct wcache *c, uint64_t off, uint64_t len);
/* The current map becomes the flushing one (which must be empty). Returns its block count. */
uint32_t wcache_snapshot(struct wcache *c);
/*
 * The next write-back run of the flushing map: contiguous sectors, at most
 * max bytes (>= WC_BLOCK), copied to buf. Returns its length (0: none left)
 * with *off set.
 */
uint64_t wcache_next_run(struct wcache *c, uint64_t *off, void *buf, uint64_t max);
/* The flush is done: the flushing map is retired (the retired map must be empty). */
void wcache_end_flush(struct wcache *c);
/* Free the retired map's blocks. */
void wcache_free_retired(struct wcache *c);
/* Power cut: every map is dropped. */
void wcache_drop(struct wcache *c);
/* Bytes not yet on the child (current and flushing maps). */
static inline uint64_t wcache_bytes(const struct wcache *c)
{
	return c->bytes[WC_CUR] + c->bytes[WC_FLUSHING];
}

#endif
