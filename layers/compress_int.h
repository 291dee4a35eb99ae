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
#define INTERNAL_IOS	4

enum job_op { J_READ, J_WRITE, J_ZERO };
enum phase {
	P_FREE, P_LOCK, P_RMW_READ, P_READ, P_WRITE, P_REPAIR, P_MAP, P_SPACE, P_JWAIT,
};

struct job {
	struct uc_sub *s;	/* the request it serves (holds a reference) */
	uint64_t cluster;
	uint32_t in_off, in_len;	/* the part of the cluster the request covers */
	uint64_t req_off;	/* where that part is in the request's data */
	uint8_t op;		/* enum job_op */
	uint8_t phase;
	uint8_t attempt;	/* reads of the extent so far */
	bool crc_failed;	/* an earlier copy failed its checksum: rewrite the good one */
	uint8_t work;		/* with a worker: W_COMPRESS, W_DECODE */
	int wres;		/* what the worker found */
	unsigned int qid;	/* the queue it belongs to */
	uint8_t copy;		/* the copy its last read came from */
	bool waited_space;	/* it waited for a commit to free space once */
	int err;
	struct cz_entry old, neu;
	uint64_t jent;		/* P_JWAIT: done once this many journal entries are written */
	uint8_t *plain;		/* the cluster */
	uint8_t *comp;		/* stored bytes */
	struct job *next;
	struct job *wnext;	/* the workers' queue, then the done list */
};

enum { W_COMPRESS = 1, W_DECODE };
#define WORKERS_MAX	8

struct czq {			/* per queue: only its thread touches it */
	struct job *jobs;
	uint8_t *mem;
	unsigned int nr_jobs;
	struct job *free;
	struct job *parked;	/* jobs waiting: cluster busy, map blocked, space */
	struct uc_sub *waiting;	/* requests waiting for a free job */
	struct uc_sub *flushing;	/* FLUSH / FUA requests waiting for a commit */
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	pthread_mutex_t dlock;
	struct job *done;	/* jobs the workers are done with */
};

struct cz_free {
	uint64_t pblk, cluster;
	uint64_t entry;		/* the journal entry that freed it: reusable once it is durable */
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

enum { C_IDLE, C_START, C_WAITW, C_FLUSH };
enum { K_NONE, K_WAIT, K_MAP, K_FLUSH, K_SB };

struct cz {
	/* config */
	int level;
	uint32_t cluster;
	unsigned int cluster_shift;
	uint64_t logical, nclusters;
	unsigned int jobs_per_queue;
	/* state */
	pthread_mutex_t lock;
	struct cz_sb sb;
	uint64_t uuid_lo;
	struct cz_entry *map;
	_Atomic uint8_t *busy;		/* a write holds the cluster */
	_Atomic uint16_t *readers;	/* reads using its extent */
	struct cz_space space;
	struct free_list frees[2];	/* freed, until durable; waiting for readers */
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
	/* commits */
	int cstate;
	uint64_t commit_started, commit_want, commit_target;
	_Atomic uint64_t commit_done;
	/* checkpoints */
	int kstate;
	uint64_t kpos;			/* next map block to write */
	unsigned int kinflight;
	uint8_t *ksb;			/* superblock being written */
	/* stats */
	_Atomic uint64_t nr_kind[3];	/* clusters zero / raw / zstd */
	_Atomic uint64_t csum_errors, repaired, commits, checkpoints;
	_Atomic uint64_t zstd_skipped;	/* clusters the probe stored raw untried */
	struct czq *q[UC_MAX_QUEUES + 1];
	/* workers: compression off the queue threads */
	unsigned int nr_workers;
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

/* compress_journal.c */
bool cz_journal_room(struct cz *cz);
uint64_t cz_journal_add(struct cz *cz, uint64_t cluster, const struct cz_entry *e);
void cz_free_later(struct cz *cz, const struct cz_entry *e, uint64_t cluster, uint64_t entry);
void cz_release_ready(struct cz *cz);
uint64_t cz_commit_needed(struct cz *cz);
void cz_journal_poll(struct uc_node *n, struct cz *cz, struct uc_queue *q);
bool cz_commit_poll(struct uc_node *n, struct cz *cz, struct uc_queue *q);
void cz_ckpt_finish(struct uc_node *n, struct cz *cz);
void cz_ckpt_encode(struct cz *cz, uint8_t *buf, uint64_t from, unsigned int nr);
uint64_t cz_ckpt_area_off(const struct cz *cz, unsigned int area);
void cz_ckpt_sb(const struct cz *cz, uint8_t *block, bool clean);
bool cz_ckpt_poll(struct uc_node *n, struct cz *cz, struct uc_queue *q);

/* compress_job.c */
void cz_job_place(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j);
void cz_launch(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct uc_sub *s);
void cz_job_read_done(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j,
		      int err);
void compress_child_end(struct uc_node *n, struct uc_queue *q, struct uc_sub *s,
			struct uc_sub *cs);
void cz_resume_jobs(struct uc_node *n, struct cz *cz, struct czq *z, struct uc_queue *q);
void cz_resume_waiting(struct uc_node *n, struct cz *cz, struct czq *z, struct uc_queue *q);

/* compress_work.c */
void cz_job_compress(struct cz *cz, ZSTD_CCtx *cctx, struct job *j);
bool cz_use_workers(const struct cz *cz, const struct uc_queue *q);
void cz_offload(struct cz *cz, struct uc_queue *q, struct job *j, int work);
int cz_job_decode(struct cz *cz, ZSTD_DCtx *dctx, struct job *j);
void cz_workers_stop(struct cz *cz);
void cz_workers_start(struct uc_node *n, struct cz *cz);
void cz_resume_done(struct uc_node *n, struct cz *cz, struct czq *z, struct uc_queue *q);

/* compress_open.c */
int compress_activate(struct uc_node *n);
void compress_deactivate(struct uc_node *n);

#endif
