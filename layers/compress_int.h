/* SPDX-License-Identifier: MIT */
/*
 * The compress layer's internal state and the calls its files share
 * (compress.c describes the layer). Not for other layers.
 */
#ifndef UC_COMPRESS_INT_H
#define UC_COMPRESS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <zstd.h>
#include "compress_meta.h"
#include "graph.h"
#include "io.h"

#define ATTEMPTS	4	/* reads of an extent: the default copy, then copies 1..3 */
#define JBUF		64	/* journal blocks in memory until sealed and written */
#define COMMIT_EVERY	1024	/* map changes not yet durable that start a commit of their own */
#define FREES_MAX	65536	/* extents waiting to be reused, per list */
#define CKPT_RUN	(256U << 10)	/* bytes: one internal request of a checkpoint */
#define INTERNAL_IOS	6	/* journal, commit and checkpoint writes, folds; reads past the child subs */
#define FOLDS		2	/* folds under way at once (each an internal request) */
#define SPACE_WAITS	1024	/* a write out of space waits for this many commits or folds at most */
#define UC_OP_FOLD	UC_OP_PRIVATE	/* an internal request to itself: store the cluster whole */
#define PACKS		4	/* packs of fragments per queue: one filling, the rest being written */
#define PACK_BYTES	(128U << 10)	/* a pack is written when it holds this much (or at the turn's end) */
#define RETRY_SUBS	(8 * ATTEMPTS)	/* child subs a request may spend on re-reading fragments */
#define CACHE_BYTES	(4U << 20)	/* default cache: per queue, decoded clusters kept for reads (at least 4) */
#define FOLD_IDLE_NS	(10ULL * 1000000000)	/* default fold_idle: no request for this long, fold */

/* J_FOLD: store the cluster whole again, its pages stored alone in it (space comes back) */
enum job_op { J_READ, J_WRITE, J_ZERO, J_FOLD };
/*
 * How a job stores: M_BASE writes the whole cluster again (a full write,
 * or a read-modify-write); M_PAGES stores each page it covers on its own,
 * as a fragment packed with others (writes and zeroes of whole pages).
 */
enum job_mode { M_BASE, M_PAGES };
enum phase {
	P_FREE, P_LOCK, P_LOAD_BASE, P_LOAD_FRAGS, P_WRITE, P_REPAIR, P_MAP, P_SPACE, P_JWAIT,
	P_PACK, P_PACKWAIT, P_PMAP, P_IOWAIT, P_CWAIT,
};

/* A page of the job's cluster. */
struct jpage {
	struct cz_entry e;	/* loading: its fragment, or kind CZ_NONE (the base holds it); storing: the new one */
	uint64_t stamp;		/* loading: the fragment's stamp */
	uint32_t src;		/* storing: its bytes, at comp + src (zstd) or in + src (raw) */
	uint32_t hold;		/* storing: the hold on the blocks its fragment went to */
	bool loaded;		/* loading: it is in plain */
};

struct pack;
struct cslot;

struct job {
	struct uc_sub *s;	/* the request it serves (holds a reference) */
	uint64_t cluster;
	uint32_t in_off, in_len;	/* the part of the cluster the request covers */
	uint64_t req_off;	/* where that part is in the request's data */
	uint8_t op;		/* enum job_op */
	uint8_t mode;		/* enum job_mode */
	uint8_t phase;
	uint8_t attempt;	/* reads of the extent or range so far */
	bool crc_failed;	/* an earlier copy failed its checksum: rewrite the good one */
	bool pinned;		/* holds a read grace slot (rslot): what it reads is not reused */
	bool locked;		/* holds the cluster (busy): a base write */
	bool conv;		/* a base write that found no run of blocks: its pages go alone */
	uint8_t rslot;
	uint8_t work;		/* with a worker: W_* */
	uint8_t resume;		/* P_IOWAIT: the phase whose read waits */
	int wres;		/* what the worker found */
	unsigned int qid;	/* the queue it belongs to */
	uint8_t copy;		/* the copy its last read came from */
	uint16_t space_waits;	/* times it waited for space to come back */
	uint64_t wcommit, wfolds;	/* P_SPACE: the commit and fold count it waits for */
	int err;
	struct cz_entry old, neu;	/* the base copy: as found, as written */
	uint64_t S;		/* M_BASE: fragments stamped up to this were there when it began */
	uint64_t jent;		/* P_JWAIT: done once this many journal entries are written */
	unsigned int pfirst, plast;	/* pages [pfirst, plast] it loads or stores alone */
	struct jpage *pg;	/* one per page of the cluster */
	uint64_t rblk;		/* P_LOAD_FRAGS: the range being read (data area blocks) */
	unsigned int rnblk;
	uint16_t npacks;	/* M_PAGES: packs of its fragments not written yet */
	bool spacewait;		/* P_PACKWAIT: for space (else for a free pack) */
	unsigned int pcur;	/* the next page to put in a pack */
	uint8_t *plain;		/* the cluster */
	uint8_t *out;		/* where loading puts the cluster: plain, a cache slot, or mem */
	uint8_t *mem;		/* a whole-cluster read's own memory (NULL: none) */
	uint8_t *in;		/* what a base write stores: plain, or a whole-cluster write's own memory */
	struct cslot *slot;	/* reads: the cache slot it loads the cluster into, or waits for (P_CWAIT) */
	bool filling;		/* it loads slot */
	uint8_t *comp;		/* stored bytes */
	struct job *next;
	struct job *wnext;	/* the workers' queue, then the done list */
};

enum { W_COMPRESS = 1, W_DECODE, W_PAGES, W_FRAGS };
#define WORKERS_MAX	8

#define JOBS_MAX	64	/* jobs per queue at most */

/*
 * Fragments of page writes, packed into a run of blocks taken when the
 * pack opens, written with one child write; its buffer is free again once
 * written. The run's blocks are held (refs) until every job with
 * fragments in it has mapped its pages or failed: a hold.
 */
struct hold {
	uint64_t pblk;
	unsigned int nblk;
	unsigned int unmapped;	/* jobs with fragments there that have not mapped yet */
	uint32_t next_free;
};

struct pack {
	uint8_t *buf;		/* cz->pack_cap bytes */
	uint32_t fill, cap;	/* bytes: taken, and what its run holds */
	uint64_t pblk;		/* its run (data area) */
	uint32_t hold;		/* the hold on its run */
	struct job *jobs[JOBS_MAX];	/* with fragments in it */
	unsigned int nr_jobs;
	bool used;
};

/*
 * A decoded cluster kept for the reads that come back to it (small files,
 * metadata), in the per-queue cache (slot: cluster % its size). It holds
 * the cluster as the map was at (gen, epoch); any map change of the
 * cluster moves its gen on, so a slot whose gen and epoch are not the
 * cluster's current ones is never used again.
 */
struct cslot {
	uint64_t cluster;
	uint64_t epoch;
	uint32_t gen;
	uint8_t state;		/* C_EMPTY, C_FILLING (a read loads it), C_VALID */
	uint8_t *data;		/* cz->cluster bytes */
};
enum { C_EMPTY, C_FILLING, C_VALID };

struct czq {			/* per queue: only its thread touches it (cache lines of its own) */
	struct job *jobs;
	uint8_t *mem;
	struct jpage *pages;
	unsigned int nr_jobs;
	struct job *free;
	struct job *parked;	/* jobs waiting: cluster busy, map blocked, space */
	struct uc_sub *waiting;	/* requests waiting for a free job */
	struct uc_sub *flushing;	/* FLUSH / FUA requests waiting for a commit */
	struct pack packs[PACKS];
	struct pack *open;	/* the pack taking fragments */
	struct hold *holds;	/* a job's fragments are in at most as many runs as it has pages */
	uint32_t free_hold;	/* the free list (UINT32_MAX: empty) */
	unsigned int compressing;	/* page jobs with the workers */
	unsigned int wnew;	/* jobs handed to the workers in this loop turn */
	struct cslot *cache;	/* nr_cache slots, a power of two */
	unsigned int nr_cache;
	uint8_t *cache_mem;
	_Atomic uint64_t cache_hits;	/* reads served from the cache (status reads it) */
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	pthread_mutex_t dlock;
	struct job *done;	/* jobs the workers are done with */
	_Atomic uint64_t reqs;	/* requests from above it took (idle folds watch them) */
};

struct cz_free {
	uint64_t pblk;
	uint64_t entry;		/* the journal entry that freed it: reusable once it is durable */
	uint64_t rgen;		/* ready: the read grace generation it waits for */
	uint32_t nblk;
};

/* A journal block in memory, from its first entry until it is sealed and written. */
struct jblock {
	uint64_t seq, slot, first;
	unsigned int n, written, inflight;	/* entries; written; in the write under way */
	bool sealed;		/* takes no more entries */
	struct cz_jent e[CZ_J_PER_BLOCK];
};

struct free_list {
	struct cz_free *e;
	unsigned int n;
};

/*
 * Pages stored on their own: an open-addressing table (linear probing)
 * from page number + 1 (0: a free slot) to the fragment and its stamp,
 * the journal entry number (+1) that stored it. A write of the cluster's
 * base drops the fragments stamped up to what it saw when it began;
 * fragments stored while it ran stay on top.
 */
struct cz_ov {
	uint64_t key;
	struct cz_entry e;
	uint64_t stamp;
};

enum { C_IDLE, C_START, C_WAITW, C_FLUSH };
enum { K_NONE, K_WAIT, K_MAP, K_FLUSH, K_SB };

struct cz {
	/* config */
	int level;
	uint32_t cluster;
	unsigned int cluster_shift;
	unsigned int ppc;		/* pages per cluster */
	uint64_t logical, nclusters;
	unsigned int jobs_per_queue;
	unsigned int child_subs;	/* child subs a request may use (n->child_subs) */
	uint32_t pack_cap;		/* bytes of a pack */
	uint64_t space_reserve;		/* blocks only folds may take (they give more back) */
	/* state */
	pthread_mutex_t lock;
	struct cz_sb sb;
	uint64_t uuid_lo;
	struct cz_entry *map;		/* the clusters' base copies */
	_Atomic uint8_t *busy;		/* a base write holds the cluster */
	struct cz_ov *ov;		/* pages stored alone */
	uint64_t ov_mask, ov_count;	/* table size - 1; pages in it */
	uint64_t ov_cap, ov_reserved;	/* pages it may hold at run time; promised to jobs under way */
	uint16_t *ovn, *ovz;		/* per cluster: its pages stored alone; those zero */
	/*
	 * Per cluster: +1 on every map change (the read caches' check); when
	 * one wraps around, the epoch moves on and every cached cluster goes.
	 */
	_Atomic uint32_t *gen;
	_Atomic uint64_t cache_epoch;
	uint16_t *refs;			/* per data block: fragments in it (+1 while its pack is mapped) */
	struct cz_space space;
	struct free_list frees[2];	/* freed, until durable; waiting for readers */
	/*
	 * Read grace: a read takes rgen's slot while it uses blocks; a free
	 * becomes reusable once the reads of its generation are gone.
	 */
	uint64_t rgen;
	_Atomic uint32_t rcount[2];
	bool active;
	_Atomic bool broken;		/* a metadata write failed: every request fails */
	/* journal: blocks in memory (a ring of JBUF from jb_head), entry numbers */
	struct jblock *jb;
	unsigned int jb_head, jb_n;
	uint64_t jseq;			/* seq of the next new block */
	uint64_t jslot;			/* its ring slot */
	uint64_t jused;			/* ring blocks in use since the checkpoint */
	uint64_t appended;		/* entries: all below are appended */
	_Atomic uint64_t jwritten;	/* ... written to the child */
	_Atomic uint64_t durable;	/* entries below this are on stable storage */
	bool jw_inflight;		/* one journal write at a time, in order */
	/* folds: clusters stored whole again when space runs low */
	unsigned int folds;		/* under way */
	bool space_short;		/* a cluster found no run of free blocks: fold, low or not */
	uint64_t fold_stall;		/* a fold found no space with this many blocks free: wait for more */
	_Atomic uint64_t folds_done;
	uint64_t fold_cursor;
	/* idle folds: no request for idle_ns (fold_idle; 0: never) gives the space back */
	uint64_t idle_ns;
	uint64_t idle_reqs, idle_at;	/* the requests seen last; since when none came (0: not timed yet) */
	_Atomic uint64_t idle_folds;
	/* commits */
	int cstate;
	uint64_t commit_started, commit_want, commit_target;
	_Atomic uint64_t commit_done;
	/* checkpoints */
	int kstate;
	uint64_t kpos;			/* next block of the checkpoint to write */
	uint64_t kpages;		/* page blocks it writes */
	uint64_t kslot;			/* the next ov slot to encode */
	unsigned int kinflight;
	/* stats */
	_Atomic uint64_t nr_kind[3];	/* clusters zero / raw / zstd (their base copies) */
	_Atomic uint64_t stored_pages;	/* pages holding data (not zero) */
	_Atomic uint64_t alone_pages;	/* pages stored alone holding data */
	_Atomic uint64_t csum_errors, repaired, commits, checkpoints;
	_Atomic uint64_t zstd_skipped;	/* clusters the probe stored raw untried */
	_Atomic uint64_t packs_written, page_writes;
	struct czq *q[UC_MAX_QUEUES + 1];
	/* workers: compression off the queue threads */
	unsigned int nr_workers;
	unsigned int nr_cache;	/* decoded clusters each queue keeps (cache key) */
	pthread_t workers[WORKERS_MAX];
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	struct job *whead, *wtail;
	bool wstop, wstarted;
	struct uc_graph *g;
};

#define S_NEXT(s)	((s)->state & 0xffffff)	/* next cluster of s to start (relative) */
#define S_WAITING	(1U << 31)	/* on the waiting list for a job */
#define S_FUA_DONE	(1U << 30)	/* a FUA write has waited for its commit */

static inline bool cz_dead(struct cz *cz)
{
	return atomic_load(&cz->broken);
}

static inline uint64_t blk_off(uint64_t blk)
{
	return blk * CZ_BLOCK;
}

static inline size_t comp_cap(const struct cz *cz)
{
	return (ZSTD_compressBound(cz->cluster) + CZ_BLOCK - 1) & ~(size_t)(CZ_BLOCK - 1);
}

static inline struct czq *czq_of(struct cz *cz, struct uc_queue *q)
{
	return cz->q[q->id];
}

static inline bool all_zero(const uint8_t *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* compress.c */
void cz_break(struct uc_node *n, struct cz *cz, const char *what, int err);
struct czq *czq_new(struct cz *cz);

/* compress_map.c (lock held) */
void cz_cluster_changed(struct cz *cz, uint64_t c);
int cz_ov_init(struct cz *cz, uint64_t capacity);
struct cz_ov *cz_ov_find(const struct cz *cz, uint64_t page);
void cz_block_unref(struct cz *cz, uint64_t b, uint64_t entry);
void cz_set_base(struct cz *cz, uint64_t c, const struct cz_entry *e, bool clear, uint64_t s,
		 uint64_t entry, bool live);
int cz_set_page(struct cz *cz, uint64_t c, unsigned int p, const struct cz_entry *e,
		uint64_t stamp, uint64_t entry, bool live);

/* compress_journal.c */
bool cz_journal_room(struct cz *cz, unsigned int n, unsigned int frees);
uint64_t cz_journal_add(struct cz *cz, const struct cz_jent *e);
void cz_free_later(struct cz *cz, uint64_t pblk, unsigned int nblk, uint64_t entry);
void cz_release_ready(struct cz *cz);
void cz_read_pin(struct cz *cz, struct job *j);
void cz_read_unpin(struct cz *cz, struct job *j);
uint64_t cz_commit_needed(struct cz *cz);
void cz_journal_poll(struct uc_node *n, struct cz *cz, struct uc_queue *q);
bool cz_commit_poll(struct uc_node *n, struct cz *cz, struct uc_queue *q);
void cz_ckpt_finish(struct uc_node *n, struct cz *cz);
void cz_ckpt_begin(struct cz *cz);
unsigned int cz_ckpt_next(struct cz *cz, uint8_t *buf, uint64_t *dst);
void cz_ckpt_sb(const struct cz *cz, uint8_t *block, bool clean);
bool cz_ckpt_poll(struct uc_node *n, struct cz *cz, struct uc_queue *q);

/* compress_job.c */
void cz_park_job(struct czq *z, struct job *j, int phase);
void cz_job_done(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j);
void cz_job_fail(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j, int err);
void cz_job_place(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j);
void cz_map_blocked(struct cz *cz, unsigned int frees);
void cz_map_changed(struct cz *cz);
void cz_launch(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct uc_sub *s);
void compress_child_end(struct uc_node *n, struct uc_queue *q, struct uc_sub *s,
			struct uc_sub *cs);
void cz_work_done(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j);
void cz_work_done_err(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j, int err);
void cz_resume_jobs(struct uc_node *n, struct cz *cz, struct czq *z, struct uc_queue *q);
void cz_resume_waiting(struct uc_node *n, struct cz *cz, struct czq *z, struct uc_queue *q);

/* compress_page.c */
uint64_t cz_alloc(struct cz *cz, unsigned int nblk, bool fold);
uint64_t cz_alloc_upto(struct cz *cz, unsigned int max, unsigned int *got, bool fold);
bool cz_space_low(const struct cz *cz);
bool cz_space_hope(struct cz *cz, uint16_t *waits, uint64_t *wcommit, uint64_t *wfolds);
bool cz_space_waited(struct cz *cz, uint64_t wcommit, uint64_t wfolds);
void cz_fold_poll(struct uc_node *n, struct cz *cz, struct uc_queue *q);
bool cz_pages_fit(struct cz *cz, struct job *j);
bool cz_pages_convert(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j);
void cz_job_unlock(struct cz *cz, struct job *j);
void cz_pages_start(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j);
void cz_pages_compressed(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j);
void cz_pages_resume(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j);
void cz_pack_written(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct pack *p, int err);
void cz_pages_poll(struct cz *cz, struct czq *z, struct uc_queue *q);

/* compress_work.c */
void cz_work(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j, int work);
void cz_work_kick(struct cz *cz, struct czq *z);
void cz_workers_stop(struct cz *cz);
void cz_workers_start(struct uc_node *n, struct cz *cz);
void cz_resume_done(struct uc_node *n, struct cz *cz, struct czq *z, struct uc_queue *q);

/* compress_open.c */
int compress_activate(struct uc_node *n);
void compress_deactivate(struct uc_node *n);

#endif
