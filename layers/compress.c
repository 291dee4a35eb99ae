/* SPDX-License-Identifier: MIT */
/*
 * compress: a thin-provisioned, persistent zstd volume over one child.
 *
 *   { type = "compress"; algorithm = "zstd"; level = 1; cluster = "64K";
 *     size = "10G"; children = ( {...} ); }
 *   level:   zstd level (default 1; negative levels are faster)
 *   cluster: unit of compression, a power of two from 4K to 1M (default 64K)
 *   size:    logical bytes exposed (required; may exceed the child: thin)
 *   workers: threads that compress and decompress (default: one per CPU, at
 *            most 4; 0: the queue threads do it)
 *
 * Each cluster is compressed on its own and stored in a run of 4K blocks in
 * the child's data area; all-zero clusters take no space, and a cluster that
 * does not shrink by a block is stored raw. A rewritten cluster always goes
 * to free space: the map changes only once the new copy is written, and the
 * old blocks are reused only once that change is durable and no read still
 * uses them. Every stored extent has a crc32c; a mismatch is retried on the
 * other copies of a mirror below (and the good one rewritten), else -EIO.
 *
 * Durability (docs/compress-format.md): a write completes once its data
 * and the journal block holding its map change are written to the child
 * (so a daemon killed and recovered loses nothing). A FLUSH (and a FUA
 * write) seals the journal, waits for it to be written, flushes the child
 * and only then completes; later journal blocks record how far that made
 * things durable. Replay trusts entries below that mark and checks the
 * rest against the extent checksums (data that never reached the disk is
 * skipped, and the cluster keeps its older copy, which is never reused
 * before the change freeing it is durable). When the journal ring fills, a
 * checkpoint writes the whole map to the other of two areas, flushes, and
 * points the superblock at it.
 *
 * Work happens per cluster in "jobs" (struct job): a per-queue pool of
 * cluster buffers; a request takes jobs for its clusters as they come free.
 * Writes to one cluster (from any queue) are serialized by its busy flag.
 * Shared state (map, space, journal, commits) is under cz->lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <zstd.h>
#include "compress_meta.h"
#include "crc32c.h"
#include "graph.h"
#include "io.h"
#include "log.h"

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

static bool cz_dead(struct cz *cz)
{
	return atomic_load(&cz->broken);
}

static void cz_break(struct uc_node *n, struct cz *cz, const char *what, int err)
{
	if (!atomic_exchange(&cz->broken, true))
		uc_err("%s: %s failed: %s; every request fails from now on", n->name, what,
		       strerror(-err));
}

/* ---- config ---- */

/* the keys parse accepts (ops.keys; ublk-compose.conf(5) documents each) */
static const char *const compress_keys[] = { "type", "name", "algorithm", "level", "cluster", "size",
					     "workers", "children", NULL };

static int compress_parse(struct uc_node *n, const config_setting_t *cfg)
{
	const char *alg = "zstd";
	uint64_t cluster = 64 << 10, size = 0;
	long long level = 1, workers = -1;
	struct cz_sb lay;
	struct cz *cz;
	int ret;

	if (uc_conf_check_keys(cfg, compress_keys, "compress"))
		return -EINVAL;
	if ((ret = uc_conf_string(cfg, "algorithm", &alg)) < 0 ||
	    (ret = uc_conf_int(cfg, "level", &level)) < 0 ||
	    (ret = uc_conf_size(cfg, "cluster", &cluster)) < 0 ||
	    (ret = uc_conf_int(cfg, "workers", &workers)) < 0)
		return ret;
	if (workers != -1 && (workers < 0 || workers > WORKERS_MAX))
		return uc_conf_err(config_setting_get_member(cfg, "workers"),
				   "compress: workers must be 0 to %d", WORKERS_MAX);
	if (strcmp(alg, "zstd"))
		return uc_conf_err(config_setting_get_member(cfg, "algorithm"),
				   "compress: algorithm must be \"zstd\"");
	if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel() || !level)
		return uc_conf_err(config_setting_get_member(cfg, "level"),
				   "compress: level must be %d to -1 or 1 to %d", ZSTD_minCLevel(),
				   ZSTD_maxCLevel());
	if (cluster < 4096 || cluster > (1 << 20) || (cluster & (cluster - 1)))
		return uc_conf_err(config_setting_get_member(cfg, "cluster"),
				   "compress: cluster must be a power of two from 4K to 1M");
	if ((ret = uc_conf_size(cfg, "size", &size)) < 0)
		return ret;
	if (!ret)
		return uc_conf_err(cfg, "compress needs a size (the logical bytes it exposes)");
	size &= ~(cluster - 1);
	if (!size || size >= (1ULL << 60) / cluster * cluster)
		return uc_conf_err(config_setting_get_member(cfg, "size"),
				   "compress: size must be at least one cluster");
	if ((ret = uc_node_parse_children(n, cfg, 1)))
		return ret;
	if (n->nr_children != 1)
		return uc_conf_err(config_setting_get_member(cfg, "children"),
				   "compress: needs exactly one child, has %u", n->nr_children);
	if (cz_layout(&lay, n->children[0]->size, size, cluster)) {
		char b1[32], b2[32];

		return uc_conf_err(config_setting_get_member(cfg, "children"),
				   "compress: the child (%s) is too small for the metadata of %s",
				   uc_size_str(n->children[0]->size, b1, sizeof(b1)),
				   uc_size_str(size, b2, sizeof(b2)));
	}
	cz = calloc(1, sizeof(*cz));
	if (!cz)
		return -ENOMEM;
	n->priv = cz;
	cz->level = level;
	cz->cluster = cluster;
	cz->cluster_shift = __builtin_ctzll(cluster);
	cz->logical = size;
	cz->nclusters = size >> cz->cluster_shift;
	if (workers < 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		workers = cpus < 1 ? 1 : cpus > 4 ? 4 : cpus;
	}
	cz->nr_workers = workers;
	cz->g = n->graph;
	/* as many cluster buffers as fit in 32M, 8 to 64 */
	cz->jobs_per_queue = (32U << 20) / (2 * cluster + 4096);
	if (cz->jobs_per_queue > 64)
		cz->jobs_per_queue = 64;
	if (cz->jobs_per_queue < 8)
		cz->jobs_per_queue = 8;
	n->size = size;
	n->can_discard = true;
	n->io_min = cluster < 65536 ? cluster : 65536;
	n->io_opt = cluster;
	n->needs_data = true;
	n->internal_ios = INTERNAL_IOS;
	n->internal_buf = CKPT_RUN;
	/* each cluster of a request: a write and its read attempts and repair */
	n->child_subs = (n->graph->dev.max_io / cluster + 2) * (ATTEMPTS + 2);
	return 0;
}

/* Stored extents go down as one buffer. */
static unsigned int compress_child_max_iov(const struct uc_node *n, unsigned int max_iov,
					   uint32_t max_io)
{
	(void)n;
	(void)max_iov;
	(void)max_io;
	return 1;
}

static void workers_stop(struct cz *cz);

static void czq_free(struct czq *z)
{
	if (!z)
		return;
	ZSTD_freeCCtx(z->cctx);
	ZSTD_freeDCtx(z->dctx);
	free(z->jobs);
	free(z->mem);
	free(z);
}

static void compress_close(struct uc_node *n)
{
	struct cz *cz = n->priv;

	if (!cz)
		return;
	workers_stop(cz);
	for (unsigned int i = 0; i <= UC_MAX_QUEUES; i++)
		czq_free(cz->q[i]);
	if (cz->map)
		pthread_mutex_destroy(&cz->lock);
	free(cz->map);
	free((void *)cz->busy);
	free((void *)cz->readers);
	for (int i = 0; i < 2; i++)
		free(cz->frees[i].e);
	free(cz->jb);
	free(cz->ksb);
	cz_space_free_all(&cz->space);
	free(cz);
	n->priv = NULL;
}

static size_t comp_cap(const struct cz *cz)
{
	return (ZSTD_compressBound(cz->cluster) + CZ_BLOCK - 1) & ~(size_t)(CZ_BLOCK - 1);
}

static struct czq *czq_new(struct cz *cz)
{
	struct czq *z = calloc(1, sizeof(*z));
	size_t per = cz->cluster + comp_cap(cz);

	if (!z)
		return NULL;
	z->nr_jobs = cz->jobs_per_queue;
	z->jobs = calloc(z->nr_jobs, sizeof(*z->jobs));
	z->mem = aligned_alloc(CZ_BLOCK, per * z->nr_jobs);
	z->cctx = ZSTD_createCCtx();
	z->dctx = ZSTD_createDCtx();
	if (!z->jobs || !z->mem || !z->cctx || !z->dctx) {
		czq_free(z);
		return NULL;
	}
	ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, cz->level);
	pthread_mutex_init(&z->dlock, NULL);
	for (unsigned int i = 0; i < z->nr_jobs; i++) {
		struct job *j = &z->jobs[i];

		j->plain = z->mem + i * per;
		j->comp = j->plain + cz->cluster;
		j->next = z->free;
		z->free = j;
	}
	return z;
}

/* ---- journal and frees (lock held) ---- */

static uint64_t blk_off(uint64_t blk)
{
	return blk * CZ_BLOCK;
}

static struct jblock *jblock(struct cz *cz, unsigned int i)
{
	return &cz->jb[(cz->jb_head + i) % JBUF];
}

static struct jblock *jopen(struct cz *cz)
{
	struct jblock *b = cz->jb_n ? jblock(cz, cz->jb_n - 1) : NULL;

	return b && !b->sealed ? b : NULL;
}

/* Blocks sealed and written leave memory. */
static void jretire(struct cz *cz)
{
	while (cz->jb_n && jblock(cz, 0)->sealed && jblock(cz, 0)->written == jblock(cz, 0)->n) {
		cz->jb_head = (cz->jb_head + 1) % JBUF;
		cz->jb_n--;
	}
}

static void jseal(struct cz *cz)
{
	struct jblock *b = jopen(cz);

	if (b)
		b->sealed = true;
	jretire(cz);
}

/*
 * Room for one more map change? Else the caller parks: the journal writer
 * frees memory, a checkpoint frees the ring, a commit frees the free list.
 */
static bool journal_room(struct cz *cz)
{
	struct jblock *b = jopen(cz);

	if (cz->kstate != K_NONE || cz->frees[0].n >= FREES_MAX)
		return false;
	if (b && b->n == CZ_J_PER_BLOCK)
		jseal(cz);
	if (jopen(cz))
		return true;
	/* a new block needs room in memory and a slot in the ring */
	return cz->jb_n < JBUF && cz->jused + 1 < cz->sb.journal_blocks;
}

/* Append a map change (journal_room() said yes). Returns its entry number + 1. */
static uint64_t journal_add(struct cz *cz, uint64_t cluster, const struct cz_entry *e)
{
	struct jblock *b = jopen(cz);

	if (!b) {
		b = jblock(cz, cz->jb_n++);
		*b = (struct jblock){ .seq = cz->jseq++, .slot = cz->jslot, .first = cz->appended };
		cz->jslot = (cz->jslot + 1) % cz->sb.journal_blocks;
		cz->jused++;
	}
	b->e[b->n++] = (struct cz_jent){ cluster, *e };
	return ++cz->appended;
}

static void free_later(struct cz *cz, const struct cz_entry *e, uint64_t cluster, uint64_t entry)
{
	struct free_list *f = &cz->frees[0];

	if (cz_kind(e) == CZ_ZERO)
		return;
	f->e[f->n++] = (struct cz_free){ cz_pblk(e), cluster, entry, cz_nblk(e) };
}

/* Durable frees go back to the allocator once no read uses their cluster's old extent. */
static void release_ready(struct cz *cz)
{
	struct free_list *r = &cz->frees[1];
	unsigned int k = 0;

	for (unsigned int i = 0; i < r->n; i++) {
		if (atomic_load(&cz->readers[r->e[i].cluster]))
			r->e[k++] = r->e[i];
		else
			cz_space_release(&cz->space, r->e[i].pblk, r->e[i].nblk);
	}
	r->n = k;
}

/* Frees whose entry is durable move to the ready list (room permitting: the rest waits). */
static void make_ready(struct cz *cz)
{
	struct free_list *f = &cz->frees[0], *r = &cz->frees[1];
	uint64_t durable = atomic_load(&cz->durable);
	unsigned int k = 0;

	release_ready(cz);
	for (unsigned int i = 0; i < f->n; i++)
		if (f->e[i].entry <= durable && r->n < FREES_MAX)
			r->e[r->n++] = f->e[i];
		else
			f->e[k++] = f->e[i];
	f->n = k;
	release_ready(cz);
}

/*
 * The commit that makes every map change so far durable: its id, starting
 * one if none runs. commit_done >= the id means done (at once if nothing
 * is pending).
 */
static uint64_t commit_needed(struct cz *cz)
{
	if (atomic_load(&cz->durable) >= cz->appended && cz->cstate == C_IDLE)
		return atomic_load(&cz->commit_done);
	if (cz->cstate == C_IDLE && cz->kstate == K_NONE) {
		cz->cstate = C_START;
		return ++cz->commit_started;
	}
	if (cz->commit_want < cz->commit_started + 1)
		cz->commit_want = cz->commit_started + 1;
	return cz->commit_started + 1;
}

/* ---- jobs ---- */

static struct czq *czq_of(struct cz *cz, struct uc_queue *q)
{
	return cz->q[q->id];
}

static void park_job(struct czq *z, struct job *j, int phase)
{
	j->phase = phase;
	j->next = z->parked;
	z->parked = j;
}

static void launch(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct uc_sub *s);
static void resume_waiting(struct uc_node *n, struct cz *cz, struct czq *z, struct uc_queue *q);

#define S_NEXT(s)	((s)->state & 0xffffff)	/* next cluster of s to start (relative) */
#define S_WAITING	(1U << 31)	/* on the waiting list for a job */
#define S_FUA_DONE	(1U << 30)	/* a FUA write has waited for its commit */

static void job_done(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	struct czq *z = czq_of(cz, q);
	struct uc_sub *s = j->s;

	uc_sub_error(s, j->err);
	j->phase = P_FREE;
	j->s = NULL;
	j->next = z->free;
	z->free = j;
	/* a request waiting for a job gets this one (s's reference keeps it until then) */
	resume_waiting(n, cz, z, q);
	uc_sub_put(q, s);
}

/* An I/O of j's extent or cluster on the child (data area block pblk, nblk blocks). */
static void job_io(struct uc_queue *q, struct job *j, int op, uint64_t pblk, unsigned int nblk,
		   void *buf, struct cz *cz)
{
	struct uc_sub *cs = uc_child_prep(q, j->s, 0, blk_off(cz->sb.data_off + pblk),
					  (uint64_t)nblk * CZ_BLOCK);

	cs->op = op;
	cs->flags = 0;
	cs->copy = op == UC_OP_READ && j->attempt > 1 ? j->attempt - 1 : 0;
	cs->iov[0] = (struct iovec){ buf, (uint64_t)nblk * CZ_BLOCK };
	cs->nr_iov = 1;
	cs->pctx = j;
	uc_child_issue(q, cs);
}

static void job_read_extent(struct uc_queue *q, struct cz *cz, struct job *j, int phase)
{
	j->phase = phase;
	j->attempt++;
	/* raw clusters land in plain at once */
	job_io(q, j, UC_OP_READ, cz_pblk(&j->old), cz_nblk(&j->old),
	       cz_kind(&j->old) == CZ_RAW ? j->plain : j->comp, cz);
}

static bool all_zero(const uint8_t *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	return true;
}

static void job_map(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j);

/*
 * Does the cluster look like random bytes (already compressed or encrypted
 * data)? Then zstd would only find that it does not shrink, at the cost of
 * compressing it (most of a random write's CPU time). A sample of 16 bytes
 * every cluster/256 bytes (4K in all) must have a flat byte histogram
 * (chi-square below twice what uniform bytes give, i.e. a byte entropy
 * within a few hundredths of a bit of 8, where zstd cannot save a block) and
 * no repeated 16-byte pieces (copies within the cluster, which LZ matching
 * would find). A miss only costs space: the cluster is stored raw, as zstd
 * would have done with real random data. Small clusters are always tried.
 */
#define PROBE_PIECES	256
#define PROBE_BYTES	16
static bool looks_random(const uint8_t *p, size_t len)
{
	uint32_t count[4][256] = { { 0 } };	/* four, so that increments do not wait on each other */
	uint64_t seen[2 * PROBE_PIECES] = { 0 };	/* open addressing on the pieces' first words */
	const size_t step = len / PROBE_PIECES, n = PROBE_PIECES * PROBE_BYTES;
	uint64_t sq = 0;

	if (len < (16U << 10))
		return false;
	for (size_t i = 0; i < PROBE_PIECES; i++) {
		const uint8_t *q = p + i * step;
		uint64_t w[2], h;

		for (size_t k = 0; k < PROBE_BYTES; k += 4) {
			count[0][q[k]]++;
			count[1][q[k + 1]]++;
			count[2][q[k + 2]]++;
			count[3][q[k + 3]]++;
		}
		memcpy(w, q, sizeof(w));
		h = (w[0] ^ (w[1] * 0x9E3779B97F4A7C15ULL)) | 1;	/* 0 marks a free slot */
		for (size_t s = (h * 0x2545F4914F6CDD1DULL) >> 55;; s = (s + 1) & (2 * PROBE_PIECES - 1)) {
			if (!seen[s]) {
				seen[s] = h;
				break;
			}
			if (seen[s] == h)
				return false;	/* a repeat: let zstd look */
		}
	}
	for (size_t b = 0; b < 256; b++) {
		uint64_t c = count[0][b] + count[1][b] + count[2][b] + count[3][b];

		sq += c * c;
	}
	/* chi-square = 256 * sum(c^2) / n - n; uniform bytes give about 255 */
	return 256 * sq / n - n < 2 * 255;
}

/* Compress plain into comp (or settle for raw): j->neu gets all but its place. */
static void job_compress(struct cz *cz, ZSTD_CCtx *cctx, struct job *j)
{
	unsigned int kind = CZ_ZSTD;
	bool raw = looks_random(j->plain, cz->cluster);
	size_t clen = raw ? 0 : ZSTD_compress2(cctx, j->comp, comp_cap(cz), j->plain, cz->cluster);
	uint8_t *data = j->comp;

	/* it must save a whole block, or it is stored raw */
	if (raw)
		atomic_fetch_add(&cz->zstd_skipped, 1);
	if (raw || ZSTD_isError(clen) || clen > cz->cluster - CZ_BLOCK) {
		kind = CZ_RAW;
		clen = cz->cluster;
		data = j->plain;
	} else {
		memset(j->comp + clen, 0, (CZ_BLOCK - clen % CZ_BLOCK) % CZ_BLOCK);
	}
	j->neu = (struct cz_entry){ cz_loc(0, (clen + CZ_BLOCK - 1) / CZ_BLOCK, kind), clen,
				    uc_crc32c(0, data, clen) };
}

static bool use_workers(const struct cz *cz, const struct uc_queue *q)
{
	return cz->wstarted && q->id != UC_SYNC_QUEUE_ID;
}

/* Hand j's CPU work to the workers; poll() goes on with it when it comes back. */
static void offload(struct cz *cz, struct uc_queue *q, struct job *j, int work)
{
	j->work = work;
	j->qid = q->id;
	j->wnext = NULL;
	pthread_mutex_lock(&cz->wlock);
	if (cz->wtail)
		cz->wtail->wnext = j;
	else
		cz->whead = j;
	cz->wtail = j;
	pthread_cond_signal(&cz->wcond);
	pthread_mutex_unlock(&cz->wlock);
}

/* j->neu is the new copy: find it a place and write it there. */
static void job_place(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	unsigned int nblk = cz_nblk(&j->neu), kind = cz_kind(&j->neu);
	uint64_t pblk;

	pthread_mutex_lock(&cz->lock);
	pblk = cz_space_alloc(&cz->space, nblk);
	if (pblk == UINT64_MAX && !j->waited_space && (cz->frees[0].n || cz->frees[1].n)) {
		/* freed space comes back once a commit makes the frees durable */
		j->waited_space = true;
		j->s->scratch = commit_needed(cz);
		pthread_mutex_unlock(&cz->lock);
		park_job(czq_of(cz, q), j, P_SPACE);
		return;
	}
	pthread_mutex_unlock(&cz->lock);
	if (pblk == UINT64_MAX) {
		j->err = -ENOSPC;
		atomic_store(&cz->busy[j->cluster], 0);
		job_done(n, cz, q, j);
		return;
	}
	j->neu.loc = cz_loc(pblk, nblk, kind);
	j->phase = P_WRITE;
	job_io(q, j, UC_OP_WRITE, pblk, nblk, kind == CZ_RAW ? j->plain : j->comp, cz);
}

/* The cluster's new content is in plain: store it (or map it as zero). */
static void job_store(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	if (all_zero(j->plain, cz->cluster)) {
		j->neu = (struct cz_entry){ 0 };
		if (cz_kind(&j->old) == CZ_ZERO) {
			/* zeroes over zeroes: nothing changes */
			atomic_store(&cz->busy[j->cluster], 0);
			job_done(n, cz, q, j);
		} else {
			job_map(n, cz, q, j);
		}
		return;
	}
	if (use_workers(cz, q)) {
		offload(cz, q, j, W_COMPRESS);
		return;
	}
	job_compress(cz, czq_of(cz, q)->cctx, j);
	job_place(n, cz, q, j);
}

/* Merge the request's part into plain (zeroes for WRITE_ZEROES/DISCARD) and store. */
static void job_merge(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	if (j->op == J_WRITE)
		uc_iov_copy(j->s->iov, j->s->nr_iov, j->req_off, j->plain + j->in_off, j->in_len,
			    false);
	else
		memset(j->plain + j->in_off, 0, j->in_len);
	job_store(n, cz, q, j);
}

/* j holds the cluster: its current entry decides what comes next. */
static void job_locked(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	bool full = j->in_len == cz->cluster;

	pthread_mutex_lock(&cz->lock);
	j->old = cz->map[j->cluster];
	pthread_mutex_unlock(&cz->lock);
	if (full && j->op != J_WRITE) {
		j->neu = (struct cz_entry){ 0 };	/* a whole cluster unmapped */
		job_map(n, cz, q, j);
	} else if (full || cz_kind(&j->old) == CZ_ZERO) {
		if (!full)
			memset(j->plain, 0, cz->cluster);
		job_merge(n, cz, q, j);
	} else {
		atomic_fetch_add(&cz->readers[j->cluster], 1);	/* pins the old extent */
		job_read_extent(q, cz, j, P_RMW_READ);
	}
}

static void job_lock(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	uint8_t free_flag = 0;

	if (!atomic_compare_exchange_strong(&cz->busy[j->cluster], &free_flag, 1)) {
		park_job(czq_of(cz, q), j, P_LOCK);
		return;
	}
	job_locked(n, cz, q, j);
}

/*
 * The new copy is written (or the cluster becomes zero): the map and journal
 * change, the cluster is free for the next writer, and the request part is
 * done once the journal block holding the change is written (P_JWAIT).
 */
static void job_map(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	struct czq *z = czq_of(cz, q);
	unsigned int ok, nk;

	pthread_mutex_lock(&cz->lock);
	if (cz_dead(cz)) {
		pthread_mutex_unlock(&cz->lock);
		j->err = -EIO;
	} else if (!journal_room(cz)) {
		/* the ring is full: a checkpoint; too many frees: a commit; memory: the writer */
		if (cz->kstate == K_NONE && cz->jused + 2 >= cz->sb.journal_blocks)
			cz->kstate = K_WAIT;
		else if (cz->frees[0].n >= FREES_MAX)
			commit_needed(cz);
		pthread_mutex_unlock(&cz->lock);
		park_job(z, j, P_MAP);
		return;
	} else {
		ok = cz_kind(&cz->map[j->cluster]);
		nk = cz_kind(&j->neu);
		free_later(cz, &cz->map[j->cluster], j->cluster, cz->appended + 1);
		cz->map[j->cluster] = j->neu;
		j->jent = journal_add(cz, j->cluster, &j->neu);
		if (cz->kstate == K_NONE && cz->jused * 4 >= cz->sb.journal_blocks * 3)
			cz->kstate = K_WAIT;	/* a checkpoint before the ring runs out */
		pthread_mutex_unlock(&cz->lock);
		atomic_fetch_sub(&cz->nr_kind[ok], 1);
		atomic_fetch_add(&cz->nr_kind[nk], 1);
		atomic_store(&cz->busy[j->cluster], 0);
		park_job(z, j, P_JWAIT);
		return;
	}
	atomic_store(&cz->busy[j->cluster], 0);
	job_done(n, cz, q, j);
}

/* A read of the extent came back into plain or comp: check it, decode it. Returns 0 or -errno. */
static int job_decode(struct cz *cz, ZSTD_DCtx *dctx, struct job *j)
{
	const struct cz_entry *e = &j->old;
	const uint8_t *data = cz_kind(e) == CZ_RAW ? j->plain : j->comp;

	if (uc_crc32c(0, data, e->clen) != e->crc)
		return -EBADMSG;
	if (cz_kind(e) == CZ_ZSTD) {
		size_t r = ZSTD_decompressDCtx(dctx, j->plain, cz->cluster, j->comp, e->clen);

		if (ZSTD_isError(r) || r != cz->cluster)
			return -EBADMSG;
	}
	return 0;
}

static void job_start(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	if (j->op != J_READ) {
		job_lock(n, cz, q, j);
		return;
	}
	pthread_mutex_lock(&cz->lock);
	j->old = cz->map[j->cluster];
	if (cz_kind(&j->old) != CZ_ZERO)
		atomic_fetch_add(&cz->readers[j->cluster], 1);
	pthread_mutex_unlock(&cz->lock);
	if (cz_kind(&j->old) == CZ_ZERO) {
		memset(j->plain, 0, j->in_len);
		uc_iov_copy(j->s->iov, j->s->nr_iov, j->req_off, j->plain, j->in_len, true);
		job_done(n, cz, q, j);
		return;
	}
	job_read_extent(q, cz, j, P_READ);
}

/* Jobs for s's clusters while free ones last; else s waits for one. */
static void launch(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct uc_sub *s)
{
	struct czq *z = czq_of(cz, q);
	uint64_t first = s->off >> cz->cluster_shift;
	uint64_t last = (s->off + s->len - 1) >> cz->cluster_shift;

	while (first + S_NEXT(s) <= last) {
		uint64_t c = first + S_NEXT(s), lo = c << cz->cluster_shift;
		uint64_t start = s->off > lo ? s->off : lo;
		uint64_t end = s->off + s->len < lo + cz->cluster ? s->off + s->len : lo + cz->cluster;
		struct job *j = z->free;

		if (!j) {
			if (!(s->state & S_WAITING)) {
				s->state |= S_WAITING;
				uc_sub_get(s);
				s->next = z->waiting;
				z->waiting = s;
			}
			return;
		}
		z->free = j->next;
		s->state++;
		*j = (struct job){ .s = s, .cluster = c, .in_off = start - lo, .in_len = end - start,
				   .req_off = start - s->off, .plain = j->plain, .comp = j->comp,
				   .op = s->op == UC_OP_READ ? J_READ : s->op == UC_OP_WRITE ? J_WRITE : J_ZERO };
		uc_sub_get(s);	/* the job's reference */
		job_start(n, cz, q, j);
	}
}

/* ---- the layer's I/O ---- */

static void park_flush(struct czq *z, struct uc_sub *s, uint64_t commit)
{
	s->scratch = commit;
	uc_sub_get(s);
	s->next = z->flushing;
	z->flushing = s;
}

static int compress_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	struct cz *cz = n->priv;
	struct czq *z = czq_of(cz, q);

	if (cz_dead(cz))
		return -EIO;
	if (!z)
		return -EIO;	/* a queue this volume was not set up for */
	switch (s->op) {
	case UC_OP_READ:
	case UC_OP_WRITE:
	case UC_OP_DISCARD:
	case UC_OP_WRITE_ZEROES:
		s->state = 0;
		launch(n, cz, q, s);
		return 0;
	case UC_OP_FLUSH: {
		uint64_t want;

		pthread_mutex_lock(&cz->lock);
		want = commit_needed(cz);
		/* nothing changed since the last commit: nothing to make durable */
		if (want > atomic_load(&cz->commit_done))
			park_flush(z, s, want);
		pthread_mutex_unlock(&cz->lock);
		return 0;
	}
	}
	return -EOPNOTSUPP;
}

/* A FUA write is done only once its map changes are durable. */
static int compress_end(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	struct cz *cz = n->priv;

	if (s->op != UC_OP_WRITE || !(s->flags & UC_F_FUA) || (s->state & S_FUA_DONE) || s->result)
		return 0;
	s->state |= S_FUA_DONE;
	pthread_mutex_lock(&cz->lock);
	park_flush(czq_of(cz, q), s, commit_needed(cz));
	pthread_mutex_unlock(&cz->lock);
	return UC_RESUBMITTED;
}

/* A read of the extent is over (read, checked, decoded): the job goes on. */
static void job_read_finish(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j,
			    int err)
{
	atomic_fetch_sub(&cz->readers[j->cluster], 1);
	if (err) {
		j->err = err;
		if (j->phase == P_RMW_READ)
			atomic_store(&cz->busy[j->cluster], 0);
		job_done(n, cz, q, j);
	} else if (j->phase == P_READ) {
		uc_iov_copy(j->s->iov, j->s->nr_iov, j->req_off, j->plain + j->in_off, j->in_len, true);
		job_done(n, cz, q, j);
	} else {
		job_merge(n, cz, q, j);
	}
}

/* The read of the extent came back with err (0, -EBADMSG: the checksum, -errno). */
static void job_read_done(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j,
			  int err)
{
	if (err == -EBADMSG) {
		atomic_fetch_add(&cz->csum_errors, 1);
		uc_warn("%s: cluster %" PRIu64 ": checksum mismatch in the stored extent "
			"(block %" PRIu64 "+%u, copy %u)", n->name, j->cluster, cz_pblk(&j->old),
			cz_nblk(&j->old), j->copy);
		j->crc_failed = true;
		if (j->attempt < ATTEMPTS) {
			job_read_extent(q, cz, j, j->phase);	/* the next copy below */
			return;
		}
		err = -EIO;
	}
	if (err == -ENODATA)
		err = -EIO;	/* no copy left that passes its checksum */
	if (!err && j->crc_failed) {
		/* a good copy after a bad one: write it over the extent (all copies below) */
		atomic_fetch_add(&cz->repaired, 1);
		uc_info("%s: cluster %" PRIu64 ": rewrote the extent from copy %u", n->name, j->cluster,
			j->copy);
		j->crc_failed = false;
		j->err = j->phase == P_READ ? 1 : 2;	/* where to go on: read / merge */
		j->phase = P_REPAIR;
		job_io(q, j, UC_OP_WRITE, cz_pblk(&j->old), cz_nblk(&j->old),
		       cz_kind(&j->old) == CZ_RAW ? j->plain : j->comp, cz);
		return;
	}
	job_read_finish(n, cz, q, j, err);
}

/* A child I/O of a job finished: its next step. */
static void compress_child_end(struct uc_node *n, struct uc_queue *q, struct uc_sub *s,
			       struct uc_sub *cs)
{
	struct cz *cz = n->priv;
	struct job *j = cs->pctx;
	int err = cs->result;

	(void)s;
	switch (j->phase) {
	case P_READ:
	case P_RMW_READ:
		j->copy = cs->copy;
		if (!err && use_workers(cz, q)) {
			offload(cz, q, j, W_DECODE);
			return;
		}
		if (!err)
			err = job_decode(cz, czq_of(cz, q)->dctx, j);
		job_read_done(n, cz, q, j, err);
		return;
	case P_REPAIR:
		/* the read succeeded: a failed rewrite is only noted */
		if (cs->result)
			uc_warn("%s: cluster %" PRIu64 ": rewriting the extent failed: %s", n->name,
				j->cluster, strerror(-cs->result));
		j->phase = j->err == 1 ? P_READ : P_RMW_READ;
		j->err = 0;
		job_read_finish(n, cz, q, j, 0);
		return;
	case P_WRITE:
		if (err) {
			/* never mapped: the blocks go back at once */
			pthread_mutex_lock(&cz->lock);
			cz_space_release(&cz->space, cz_pblk(&j->neu), cz_nblk(&j->neu));
			pthread_mutex_unlock(&cz->lock);
			j->err = err;
			atomic_store(&cz->busy[j->cluster], 0);
			job_done(n, cz, q, j);
		} else {
			job_map(n, cz, q, j);
		}
		return;
	}
}

/* ---- workers: compression and decompression off the queue threads ---- */

static void *worker_main(void *arg)
{
	struct cz *cz = arg;
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	ZSTD_DCtx *dctx = ZSTD_createDCtx();

	if (cctx)
		ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, cz->level);
	pthread_mutex_lock(&cz->wlock);
	for (;;) {
		struct job *j;
		struct czq *z;

		while (!cz->whead && !cz->wstop)
			pthread_cond_wait(&cz->wcond, &cz->wlock);
		if (!cz->whead)
			break;
		j = cz->whead;
		cz->whead = j->wnext;
		if (!cz->whead)
			cz->wtail = NULL;
		pthread_mutex_unlock(&cz->wlock);
		if (j->work == W_COMPRESS && cctx)
			job_compress(cz, cctx, j);
		else if (j->work == W_COMPRESS)
			j->neu = (struct cz_entry){ cz_loc(0, cz->cluster / CZ_BLOCK, CZ_RAW), cz->cluster,
						    uc_crc32c(0, j->plain, cz->cluster) };
		else
			j->wres = dctx ? job_decode(cz, dctx, j) : -ENOMEM;
		z = cz->q[j->qid];
		pthread_mutex_lock(&z->dlock);
		j->wnext = z->done;
		z->done = j;
		pthread_mutex_unlock(&z->dlock);
		uc_graph_kick_queue(cz->g, j->qid);
		pthread_mutex_lock(&cz->wlock);
	}
	pthread_mutex_unlock(&cz->wlock);
	ZSTD_freeCCtx(cctx);
	ZSTD_freeDCtx(dctx);
	return NULL;
}

static void workers_stop(struct cz *cz)
{
	if (!cz->wstarted)
		return;
	pthread_mutex_lock(&cz->wlock);
	cz->wstop = true;
	pthread_cond_broadcast(&cz->wcond);
	pthread_mutex_unlock(&cz->wlock);
	for (unsigned int i = 0; i < cz->nr_workers; i++)
		pthread_join(cz->workers[i], NULL);
	cz->wstarted = false;
}

static void workers_start(struct uc_node *n, struct cz *cz)
{
	unsigned int i;

	pthread_mutex_init(&cz->wlock, NULL);
	pthread_cond_init(&cz->wcond, NULL);
	for (i = 0; i < cz->nr_workers; i++)
		if (pthread_create(&cz->workers[i], NULL, worker_main, cz))
			break;
	if (i < cz->nr_workers)
		uc_warn("%s: %u of %u compression threads started", n->name, i, cz->nr_workers);
	cz->nr_workers = i;
	cz->wstarted = i > 0;
}

/* Jobs the workers handed back to this queue go on. */
static void resume_done(struct uc_node *n, struct cz *cz, struct czq *z, struct uc_queue *q)
{
	struct job *j;

	if (!z->done)
		return;
	pthread_mutex_lock(&z->dlock);
	j = z->done;
	z->done = NULL;
	pthread_mutex_unlock(&z->dlock);
	while (j) {
		struct job *next = j->wnext;

		if (j->work == W_COMPRESS)
			job_place(n, cz, q, j);
		else
			job_read_done(n, cz, q, j, j->wres);
		j = next;
	}
}

/* ---- commits and checkpoints: background I/O from any queue's poll ---- */

static void journal_written(struct uc_queue *q, struct uc_io *io, int res)
{
	struct uc_node *n = io->arg;
	struct cz *cz = n->priv;
	uint64_t upto = 0;

	(void)q;
	pthread_mutex_lock(&cz->lock);
	if (res < 0)
		cz_break(n, cz, "a journal write", res);
	for (unsigned int i = 0; i < cz->jb_n; i++) {
		struct jblock *b = jblock(cz, i);

		if (!b->inflight)
			continue;
		b->written = b->inflight;
		b->inflight = 0;
		upto = b->first + b->written;
	}
	if (upto > atomic_load(&cz->jwritten))
		atomic_store(&cz->jwritten, upto);
	cz->jw_inflight = false;
	jretire(cz);
	pthread_mutex_unlock(&cz->lock);
	uc_graph_kick(n->graph);	/* writes waiting on other queues */
}

/*
 * The journal writer: one write at a time, from the first block with
 * entries not written through the last, as far as the ring runs on.
 */
static void journal_poll(struct uc_node *n, struct cz *cz, struct uc_queue *q)
{
	struct uc_io *io;
	unsigned int i0, k = 0;
	uint64_t slot;

	/*
	 * A checkpoint writing the map takes everything appended with it. One
	 * that waits (K_WAIT) waits for a commit, which may wait for these very
	 * blocks (a second write: the ring wrapped, or no internal I/O was free
	 * before): they go on, or the two wait for each other.
	 */
	if (cz->jw_inflight || (cz->kstate != K_NONE && cz->kstate != K_WAIT) ||
	    atomic_load(&cz->jwritten) >= cz->appended ||
	    !(io = uc_internal_get(q)))
		return;
	for (i0 = 0; i0 < cz->jb_n && jblock(cz, i0)->written == jblock(cz, i0)->n; i0++)
		;
	slot = jblock(cz, i0)->slot;
	for (unsigned int i = i0; i < cz->jb_n && k < CKPT_RUN / CZ_BLOCK; i++, k++) {
		struct jblock *b = jblock(cz, i);
		struct cz_jhdr h = { .seq = b->seq, .first = b->first, .n = b->n,
				     .durable = atomic_load(&cz->durable) };

		if (b->slot != slot + k)
			break;	/* the ring wraps: the rest in the next write */
		cz_journal_encode((uint8_t *)io->buf + (size_t)k * CZ_BLOCK, cz->uuid_lo, &h, b->e);
		b->inflight = b->n;
	}
	cz->jw_inflight = true;
	pthread_mutex_unlock(&cz->lock);
	uc_internal_start(q, io, n->children[0], UC_OP_WRITE, 0, blk_off(cz->sb.journal_off + slot),
			  (uint64_t)k * CZ_BLOCK, journal_written, n);
	pthread_mutex_lock(&cz->lock);
}

/* The commit's target is durable: its frees can go, the FLUSHes waiting for it end. */
static void commit_finish(struct cz *cz)
{
	if (cz->commit_target > atomic_load(&cz->durable))
		atomic_store(&cz->durable, cz->commit_target);
	make_ready(cz);
	atomic_store(&cz->commit_done, cz->commit_started);
	atomic_fetch_add(&cz->commits, 1);
	cz->cstate = C_IDLE;
	if (cz->commit_want > cz->commit_started && cz->kstate == K_NONE) {
		cz->cstate = C_START;
		cz->commit_started++;
	}
}

static void commit_flushed(struct uc_queue *q, struct uc_io *io, int res)
{
	struct uc_node *n = io->arg;
	struct cz *cz = n->priv;

	(void)q;
	pthread_mutex_lock(&cz->lock);
	if (res < 0)
		cz_break(n, cz, "flushing the child", res);
	commit_finish(cz);
	pthread_mutex_unlock(&cz->lock);
	uc_graph_kick(n->graph);
}

/*
 * A commit: seal the journal (a durable block is never rewritten), wait
 * until it is written, flush the child.
 */
static bool commit_poll(struct uc_node *n, struct cz *cz, struct uc_queue *q)
{
	struct uc_io *io;

	if (cz->cstate == C_START) {
		jseal(cz);
		cz->commit_target = cz->appended;
		cz->cstate = C_WAITW;
	}
	if (cz->cstate == C_WAITW && atomic_load(&cz->jwritten) >= cz->commit_target &&
	    (io = uc_internal_get(q))) {
		cz->cstate = C_FLUSH;
		pthread_mutex_unlock(&cz->lock);
		uc_internal_start(q, io, n->children[0], UC_OP_FLUSH, 0, 0, 0, commit_flushed, n);
		pthread_mutex_lock(&cz->lock);
	}
	return cz->cstate != C_IDLE;
}

static void ckpt_written(struct uc_queue *q, struct uc_io *io, int res)
{
	struct uc_node *n = io->arg;
	struct cz *cz = n->priv;

	(void)q;
	pthread_mutex_lock(&cz->lock);
	if (res < 0)
		cz_break(n, cz, "a checkpoint write", res);
	cz->kinflight--;
	pthread_mutex_unlock(&cz->lock);
}

static void ckpt_flushed(struct uc_queue *q, struct uc_io *io, int res)
{
	ckpt_written(q, io, res);
}

/* The checkpoint is on disk: the journal starts over, every change so far is durable. */
static void ckpt_finish(struct uc_node *n, struct cz *cz)
{
	cz->sb.gen++;
	cz->sb.ckpt_area ^= 1;
	cz->sb.ckpt_id++;
	cz->sb.ckpt_seq = cz->jseq - 1;
	cz->sb.journal_head = cz->jslot;
	cz->jb_n = 0;
	cz->jused = 0;
	atomic_store(&cz->jwritten, cz->appended);
	atomic_store(&cz->durable, cz->appended);
	make_ready(cz);
	if (cz->commit_want > cz->commit_started)
		cz->commit_started = cz->commit_want;
	atomic_store(&cz->commit_done, cz->commit_started);
	atomic_fetch_add(&cz->checkpoints, 1);
	cz->kstate = K_NONE;
	uc_dbg("%s: checkpoint %" PRIu64 " in area %c", n->name, cz->sb.ckpt_id,
	       cz->sb.ckpt_area ? 'B' : 'A');
}

/* Map blocks [from, from+nr) of the next checkpoint into buf. */
static void ckpt_encode(struct cz *cz, uint8_t *buf, uint64_t from, unsigned int nr)
{
	for (unsigned int i = 0; i < nr; i++) {
		uint64_t first = (from + i) * CZ_MAP_PER_BLOCK;
		unsigned int cnt = cz->nclusters - first < CZ_MAP_PER_BLOCK ?
				   cz->nclusters - first : CZ_MAP_PER_BLOCK;

		cz_map_encode(buf + (size_t)i * CZ_BLOCK, &cz->map[first], cnt, cz->sb.ckpt_id + 1,
			      from + i);
	}
}

static uint64_t ckpt_area_off(const struct cz *cz, unsigned int area)
{
	return cz->sb.map_off + area * cz->sb.map_blocks;
}

/* The superblock that the checkpoint being written makes current. */
static void ckpt_sb(const struct cz *cz, uint8_t *block, bool clean)
{
	struct cz_sb sb = cz->sb;

	sb.gen++;
	sb.ckpt_area ^= 1;
	sb.ckpt_id++;
	sb.ckpt_seq = cz->jseq - 1;
	sb.journal_head = cz->jslot;
	sb.flags = clean ? CZ_SB_CLEAN : 0;
	sb.level = cz->level;
	cz_sb_encode(&sb, block);
}

static bool ckpt_poll(struct uc_node *n, struct cz *cz, struct uc_queue *q)
{
	struct uc_io *io;

	switch (cz->kstate) {
	case K_WAIT:
		/* map changes wait; a commit and a journal write under way finish first */
		if (cz->cstate != C_IDLE || cz->jw_inflight)
			return true;
		cz->kpos = 0;
		cz->kstate = K_MAP;
		/* fall through */
	case K_MAP:
		while (cz->kpos < cz->sb.map_blocks && (io = uc_internal_get(q))) {
			unsigned int nr = CKPT_RUN / CZ_BLOCK;
			uint64_t from = cz->kpos;

			if (nr > cz->sb.map_blocks - from)
				nr = cz->sb.map_blocks - from;
			ckpt_encode(cz, io->buf, from, nr);
			cz->kpos += nr;
			cz->kinflight++;
			pthread_mutex_unlock(&cz->lock);
			uc_internal_start(q, io, n->children[0], UC_OP_WRITE, 0,
					  blk_off(ckpt_area_off(cz, cz->sb.ckpt_area ^ 1) + from),
					  (uint64_t)nr * CZ_BLOCK, ckpt_written, n);
			pthread_mutex_lock(&cz->lock);
		}
		if (cz->kpos < cz->sb.map_blocks || cz->kinflight || !(io = uc_internal_get(q)))
			return true;
		cz->kstate = K_FLUSH;
		cz->kinflight++;
		pthread_mutex_unlock(&cz->lock);
		uc_internal_start(q, io, n->children[0], UC_OP_FLUSH, 0, 0, 0, ckpt_flushed, n);
		pthread_mutex_lock(&cz->lock);
		return true;
	case K_FLUSH:
		if (cz->kinflight || !(io = uc_internal_get(q)))
			return true;
		cz->kstate = K_SB;
		cz->kinflight++;
		/* superblock copy gen % 2 of the new generation */
		ckpt_sb(cz, io->buf, false);
		pthread_mutex_unlock(&cz->lock);
		uc_internal_start(q, io, n->children[0], UC_OP_WRITE, UC_F_FUA,
				  blk_off((cz->sb.gen + 1) % 2), CZ_BLOCK, ckpt_written, n);
		pthread_mutex_lock(&cz->lock);
		return true;
	case K_SB:
		if (cz->kinflight)
			return true;
		if (!cz_dead(cz))
			ckpt_finish(n, cz);
		else
			cz->kstate = K_NONE;
		uc_graph_kick(n->graph);
		return true;
	}
	return false;
}

/* ---- poll: parked jobs and requests, background metadata ---- */

static void resume_flushes(struct cz *cz, struct czq *z, struct uc_queue *q)
{
	struct uc_sub *s = z->flushing;

	z->flushing = NULL;
	while (s) {
		struct uc_sub *next = s->next;

		if (cz_dead(cz)) {
			uc_sub_error(s, -EIO);
			uc_sub_put(q, s);
		} else if (atomic_load(&cz->commit_done) >= s->scratch) {
			uc_sub_put(q, s);
		} else {
			s->next = z->flushing;
			z->flushing = s;
		}
		s = next;
	}
}

static void resume_jobs(struct uc_node *n, struct cz *cz, struct czq *z, struct uc_queue *q)
{
	struct job *j = z->parked;

	z->parked = NULL;
	while (j) {
		struct job *next = j->next;

		if (j->phase == P_JWAIT) {
			/* the cluster is no longer held: only the journal write is awaited */
			if (cz_dead(cz))
				j->err = -EIO;
			if (cz_dead(cz) || atomic_load(&cz->jwritten) >= j->jent)
				job_done(n, cz, q, j);
			else
				park_job(z, j, P_JWAIT);
		} else if (cz_dead(cz) && j->phase != P_LOCK) {
			j->err = -EIO;
			atomic_store(&cz->busy[j->cluster], 0);
			job_done(n, cz, q, j);
		} else if (j->phase == P_LOCK) {
			job_lock(n, cz, q, j);
		} else if (j->phase == P_MAP) {
			job_map(n, cz, q, j);
		} else if (atomic_load(&cz->commit_done) >= j->s->scratch) {
			job_place(n, cz, q, j);	/* P_SPACE: a commit released what it could */
		} else {
			park_job(z, j, P_SPACE);
		}
		j = next;
	}
}

static void resume_waiting(struct uc_node *n, struct cz *cz, struct czq *z, struct uc_queue *q)
{
	while (z->waiting && z->free) {
		struct uc_sub *s = z->waiting;

		z->waiting = s->next;
		s->state &= ~S_WAITING;
		launch(n, cz, q, s);
		uc_sub_put(q, s);	/* the waiting list's reference */
	}
}

static bool compress_poll(struct uc_node *n, struct uc_queue *q)
{
	struct cz *cz = n->priv;
	struct czq *z = czq_of(cz, q);
	bool again;

	if (!z || !cz->active)
		return false;
	resume_done(n, cz, z, q);
	resume_jobs(n, cz, z, q);
	resume_waiting(n, cz, z, q);
	pthread_mutex_lock(&cz->lock);
	if (cz->frees[1].n)
		release_ready(cz);
	/* changes pile up without a FLUSH: commit them anyway, it bounds what replay must check */
	if (cz->cstate == C_IDLE && cz->kstate == K_NONE &&
	    cz->appended - atomic_load(&cz->durable) >= COMMIT_EVERY)
		commit_needed(cz);
	if (!cz_dead(cz))
		journal_poll(n, cz, q);
	again = !cz_dead(cz) && (commit_poll(n, cz, q) | ckpt_poll(n, cz, q) ||
				 atomic_load(&cz->jwritten) < cz->appended);
	pthread_mutex_unlock(&cz->lock);
	resume_flushes(cz, z, q);
	return again || z->parked || z->waiting || z->flushing;
}

/* ---- open: format, or load the checkpoint and replay the journal ---- */

static bool subtree_created(const struct uc_node *n)
{
	if (!n->nr_children)
		return n->created;
	for (unsigned int i = 0; i < n->nr_children; i++)
		if (!subtree_created(n->children[i]))
			return false;
	return true;
}

static int sync_rw(struct uc_node *n, int op, uint64_t blk, void *buf, uint64_t nblk)
{
	return uc_graph_sync_io(n->graph, n->children[0], op, blk_off(blk), buf, nblk * CZ_BLOCK);
}

/* A checkpoint now, synchronously (open, clean stop). Returns 0 or -errno. */
static int ckpt_sync(struct uc_node *n, struct cz *cz, bool clean)
{
	uint64_t nr = cz->sb.map_blocks;
	uint8_t *buf = aligned_alloc(CZ_BLOCK, CKPT_RUN);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t from = 0; !ret && from < nr; from += CKPT_RUN / CZ_BLOCK) {
		unsigned int k = nr - from < CKPT_RUN / CZ_BLOCK ? nr - from : CKPT_RUN / CZ_BLOCK;

		ckpt_encode(cz, buf, from, k);
		ret = sync_rw(n, UC_OP_WRITE, ckpt_area_off(cz, cz->sb.ckpt_area ^ 1) + from, buf, k);
	}
	if (!ret)
		ret = sync_rw(n, UC_OP_FLUSH, 0, NULL, 0);
	if (!ret) {
		ckpt_sb(cz, buf, clean);
		ret = sync_rw(n, UC_OP_WRITE, (cz->sb.gen + 1) % 2, buf, 1);
	}
	if (!ret)
		ret = sync_rw(n, UC_OP_FLUSH, 0, NULL, 0);
	if (!ret) {
		ckpt_finish(n, cz);
		cz->sb.flags = clean ? CZ_SB_CLEAN : 0;
	}
	free(buf);
	return ret;
}

static void new_uuid(uint8_t u[16])
{
	if (getrandom(u, 16, 0) != 16)
		for (int i = 0; i < 16; i++)
			u[i] = rand();
	u[6] = (u[6] & 0x0f) | 0x40;
	u[8] = (u[8] & 0x3f) | 0x80;
}

/* The superblock on the child: the valid copy with the higher generation. */
static int read_sb(struct uc_node *n, struct cz_sb *sb, bool *blank)
{
	uint8_t *buf = aligned_alloc(CZ_BLOCK, 2 * CZ_BLOCK);
	struct cz_sb s[2];
	int r[2], ret;

	if (!buf)
		return -ENOMEM;
	ret = sync_rw(n, UC_OP_READ, 0, buf, 2);
	if (!ret) {
		r[0] = cz_sb_decode(&s[0], buf);
		r[1] = cz_sb_decode(&s[1], buf + CZ_BLOCK);
		*blank = all_zero(buf, 2 * CZ_BLOCK);
		if (!r[0] && (r[1] || s[0].gen > s[1].gen))
			*sb = s[0];
		else if (!r[1])
			*sb = s[1];
		else
			ret = r[0] == -ENOENT && r[1] == -ENOENT ? -ENOENT : r[0] == -ENOENT ? r[1] : r[0];
	}
	free(buf);
	return ret;
}

static int load_map(struct uc_node *n, struct cz *cz)
{
	uint8_t *buf = aligned_alloc(CZ_BLOCK, CKPT_RUN);
	uint64_t nr = cz->sb.map_blocks;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t from = 0; !ret && from < nr; from += CKPT_RUN / CZ_BLOCK) {
		unsigned int k = nr - from < CKPT_RUN / CZ_BLOCK ? nr - from : CKPT_RUN / CZ_BLOCK;

		ret = sync_rw(n, UC_OP_READ, ckpt_area_off(cz, cz->sb.ckpt_area) + from, buf, k);
		for (unsigned int i = 0; !ret && i < k; i++) {
			uint64_t first = (from + i) * CZ_MAP_PER_BLOCK;
			unsigned int cnt = cz->nclusters - first < CZ_MAP_PER_BLOCK ?
					   cz->nclusters - first : CZ_MAP_PER_BLOCK;

			if (cz_map_decode(buf + (size_t)i * CZ_BLOCK, &cz->map[first], cnt,
					  cz->sb.ckpt_id, from + i)) {
				uc_err("%s: map block %" PRIu64 " of checkpoint %" PRIu64
				       " is corrupted; refusing to open (see `ublk-compose examine`)",
				       n->name, from + i, cz->sb.ckpt_id);
				ret = -EINVAL;
			}
		}
	}
	free(buf);
	return ret;
}

/*
 * The journal after the checkpoint, as far as it goes: blocks of this
 * volume with the sequence numbers in a row. Calls fn for each (pass 1
 * finds the highest durable mark, pass 2 applies). Returns the block count
 * or -errno; *seq, *slot: where the next block would go.
 */
static int64_t journal_walk(struct uc_node *n, struct cz *cz, uint8_t *buf, struct cz_jent *j,
			    int (*fn)(struct uc_node *, struct cz *, const struct cz_jhdr *,
				      const struct cz_jent *, void *),
			    void *arg, uint64_t *seq, uint64_t *slot)
{
	struct cz_jhdr h;
	int64_t nr = 0;
	int ret;

	*seq = cz->sb.ckpt_seq + 1;
	*slot = cz->sb.journal_head;
	while ((uint64_t)nr < cz->sb.journal_blocks) {
		if ((ret = sync_rw(n, UC_OP_READ, cz->sb.journal_off + *slot, buf, 1)))
			return ret;
		if (cz_journal_decode(buf, *seq, cz->uuid_lo, &h, j) < 0)
			break;	/* the end of the journal */
		if ((ret = fn(n, cz, &h, j, arg)))
			return ret;
		nr++;
		(*seq)++;
		*slot = (*slot + 1) % cz->sb.journal_blocks;
	}
	return nr;
}

static int find_durable(struct uc_node *n, struct cz *cz, const struct cz_jhdr *h,
			const struct cz_jent *j, void *arg)
{
	uint64_t *d = arg;

	(void)n;
	(void)cz;
	(void)j;
	if (h->durable > *d)
		*d = h->durable;
	return 0;
}

struct replay {
	uint64_t durable, applied, skipped;
	uint8_t *data;		/* an extent read back to check it */
};

/* Entries below the durable mark apply; later ones only if their data made it. */
static int apply_block(struct uc_node *n, struct cz *cz, const struct cz_jhdr *h,
		       const struct cz_jent *j, void *arg)
{
	struct replay *r = arg;

	for (unsigned int i = 0; i < h->n; i++) {
		const struct cz_entry *e = &j[i].e;
		int ret;

		if (j[i].cluster >= cz->nclusters || cz_kind(e) > CZ_ZSTD ||
		    (cz_kind(e) != CZ_ZERO && (!cz_nblk(e) || cz_nblk(e) > cz->cluster / CZ_BLOCK ||
					       cz_pblk(e) + cz_nblk(e) > cz->sb.data_blocks))) {
			uc_err("%s: journal block %" PRIu64 " holds an impossible entry (cluster %" PRIu64
			       "); refusing to open", n->name, h->seq, j[i].cluster);
			return -EINVAL;
		}
		if (h->first + i >= r->durable && cz_kind(e) != CZ_ZERO) {
			if ((ret = sync_rw(n, UC_OP_READ, cz->sb.data_off + cz_pblk(e), r->data, cz_nblk(e))))
				return ret;
			if (e->clen > (uint64_t)cz_nblk(e) * CZ_BLOCK ||
			    uc_crc32c(0, r->data, e->clen) != e->crc) {
				r->skipped++;	/* written to the journal, but its data did not make it */
				continue;
			}
		}
		cz->map[j[i].cluster] = *e;
		r->applied++;
	}
	return 0;
}

/* Apply the journal after the checkpoint. Returns blocks replayed, or -errno. */
static int64_t replay(struct uc_node *n, struct cz *cz, struct replay *r)
{
	uint8_t *buf = aligned_alloc(CZ_BLOCK, CZ_BLOCK);
	struct cz_jent *j = malloc(CZ_J_PER_BLOCK * sizeof(*j));
	uint64_t seq, slot;
	int64_t ret;

	r->data = aligned_alloc(CZ_BLOCK, cz->cluster);
	if (!buf || !j || !r->data) {
		ret = -ENOMEM;
		goto out;
	}
	ret = journal_walk(n, cz, buf, j, find_durable, &r->durable, &seq, &slot);
	if (ret > 0)
		ret = journal_walk(n, cz, buf, j, apply_block, r, &seq, &slot);
	cz->jseq = seq;
	cz->jslot = slot;
out:
	free(buf);
	free(j);
	free(r->data);
	return ret;
}

/* Every mapped extent takes its blocks; two clusters sharing one is corruption. */
static int build_space(struct uc_node *n, struct cz *cz)
{
	for (uint64_t c = 0; c < cz->nclusters; c++) {
		const struct cz_entry *e = &cz->map[c];
		unsigned int k = cz_kind(e), nb = cz_nblk(e);

		if (k == CZ_ZERO)
			continue;
		if (k > CZ_ZSTD || !nb || nb > cz->cluster / CZ_BLOCK || e->clen > (uint64_t)nb * CZ_BLOCK ||
		    (k == CZ_RAW && e->clen != cz->cluster) ||
		    cz_space_take(&cz->space, cz_pblk(e), nb)) {
			uc_err("%s: cluster %" PRIu64 " has a bad or shared extent (block %" PRIu64
			       "+%u); refusing to open", n->name, c, cz_pblk(e), nb);
			return -EINVAL;
		}
		atomic_fetch_add(&cz->nr_kind[k], 1);
	}
	atomic_store(&cz->nr_kind[CZ_ZERO], cz->nclusters - atomic_load(&cz->nr_kind[CZ_RAW]) -
		     atomic_load(&cz->nr_kind[CZ_ZSTD]));
	return 0;
}

static int cz_alloc(struct cz *cz, const struct uc_graph *g)
{
	cz->map = calloc(cz->nclusters, sizeof(*cz->map));
	cz->busy = calloc(cz->nclusters, sizeof(*cz->busy));
	cz->readers = calloc(cz->nclusters, sizeof(*cz->readers));
	cz->jb = calloc(JBUF, sizeof(*cz->jb));
	for (int i = 0; i < 2; i++)
		cz->frees[i].e = calloc(FREES_MAX, sizeof(struct cz_free));
	if (!cz->map || !cz->busy || !cz->readers || !cz->jb || !cz->frees[0].e || !cz->frees[1].e)
		return -ENOMEM;
	/* per queue: the device's queues and the one activate uses */
	for (unsigned int i = 0; i <= UC_MAX_QUEUES; i++)
		if ((i < g->dev.queues || i == UC_SYNC_QUEUE_ID) && !(cz->q[i] = czq_new(cz)))
			return -ENOMEM;
	pthread_mutex_init(&cz->lock, NULL);
	return 0;
}

static int compress_activate(struct uc_node *n)
{
	struct cz *cz = n->priv;
	struct replay r = { 0 };
	int64_t replayed = 0;
	bool blank = false;
	char b1[32], b2[32];
	int ret;

	if ((ret = cz_alloc(cz, n->graph))) {
		uc_err("%s: out of memory for the map of %" PRIu64 " clusters", n->name, cz->nclusters);
		return ret;
	}
	ret = read_sb(n, &cz->sb, &blank);
	if (ret == -ENOENT && (blank || subtree_created(n->children[0]))) {
		/* a new volume: an empty map in area B is written as the first checkpoint */
		cz_layout(&cz->sb, n->children[0]->size, cz->logical, cz->cluster);
		cz->sb.version = CZ_VERSION;
		new_uuid(cz->sb.uuid);
		cz->sb.ckpt_area = 0;
		cz->sb.gen = 0;
		memcpy(&cz->uuid_lo, cz->sb.uuid, 8);
		cz->jseq = 1;
		cz->jslot = 0;
		uc_info("%s: new volume: %s in clusters of %s over %s", n->name,
			uc_size_str(cz->logical, b1, sizeof(b1)), uc_size_str(cz->cluster, b2, sizeof(b2)),
			uc_size_str(cz->sb.child_size, b1 + 16, 16));
	} else if (ret == -ENOENT) {
		uc_err("%s: the child holds data but no compress superblock; refusing to format it "
		       "(zero its first 8K to start a new volume)", n->name);
		return -EINVAL;
	} else if (ret) {
		uc_err("%s: %s; refusing to open (see `ublk-compose examine`)", n->name,
		       ret == -EBADMSG ? "corrupted superblock" :
		       ret == -EPROTO ? "superblock of an unknown version" : strerror(-ret));
		return ret == -EBADMSG || ret == -EPROTO ? -EINVAL : ret;
	} else {
		if (cz->sb.cluster != cz->cluster || cz->sb.logical != cz->logical) {
			uc_err("%s: the volume was made with cluster %s and size %s; this config gives "
			       "%s and %s", n->name, uc_size_str(cz->sb.cluster, b1, 16),
			       uc_size_str(cz->sb.logical, b1 + 16, 16), uc_size_str(cz->cluster, b2, 16),
			       uc_size_str(cz->logical, b2 + 16, 16));
			return -EINVAL;
		}
		if (cz->sb.child_size > n->children[0]->size) {
			uc_err("%s: the child is smaller than the volume was made on (%s < %s)", n->name,
			       uc_size_str(n->children[0]->size, b1, 16),
			       uc_size_str(cz->sb.child_size, b2, 16));
			return -EINVAL;
		}
		memcpy(&cz->uuid_lo, cz->sb.uuid, 8);
		if ((ret = load_map(n, cz)))
			return ret;
		replayed = replay(n, cz, &r);
		if (replayed < 0)
			return replayed;
	}
	if ((ret = cz_space_init(&cz->space, cz->sb.data_blocks)) || (ret = build_space(n, cz)))
		return ret;
	if (replayed || (!(cz->sb.flags & CZ_SB_CLEAN) && cz->sb.gen))
		uc_info("%s: %s stop: %" PRId64 " journal blocks replayed (%" PRIu64 " map changes, "
			"%" PRIu64 " whose data never reached the disk left out)", n->name,
			cz->sb.flags & CZ_SB_CLEAN ? "clean" : "unclean", replayed, r.applied, r.skipped);
	/* a checkpoint now: the journal starts empty, and the superblock says "in use" */
	if ((ret = ckpt_sync(n, cz, false))) {
		uc_err("%s: cannot write the metadata: %s", n->name, strerror(-ret));
		return ret;
	}
	if (cz->nr_workers)
		workers_start(n, cz);
	uc_dbg("%s: %u worker threads, crc32c by %s", n->name, cz->nr_workers, uc_crc32c_impl());
	cz->active = true;
	return 0;
}

/* A clean stop: a checkpoint marked clean (the queues are gone). */
static void compress_deactivate(struct uc_node *n)
{
	struct cz *cz = n->priv;
	int ret;

	if (!cz || !cz->active)
		return;
	workers_stop(cz);
	if (cz_dead(cz))
		return;
	cz->active = false;
	if ((ret = ckpt_sync(n, cz, true)))
		uc_err("%s: the final checkpoint failed: %s (the journal has it)", n->name,
		       strerror(-ret));
}

/* ---- admin ---- */

static void stats(const struct cz *cz, uint64_t *logical, uint64_t *physical)
{
	*logical = (atomic_load(&cz->nr_kind[CZ_RAW]) + atomic_load(&cz->nr_kind[CZ_ZSTD])) *
		   (uint64_t)cz->cluster;
	*physical = cz->space.used * CZ_BLOCK;
}

static int compress_status(const struct uc_node *n, char *buf, size_t len)
{
	struct cz *cz = n->priv;
	uint64_t lg, ph, used;
	char b1[32], b2[32], b3[32];

	if (!cz->active)
		return snprintf(buf, len, "zstd level %d cluster=%s", cz->level,
				uc_size_str(cz->cluster, b1, sizeof(b1)));
	pthread_mutex_lock(&cz->lock);
	stats(cz, &lg, &ph);
	used = cz->jused;
	pthread_mutex_unlock(&cz->lock);
	return snprintf(buf, len, "%s%s stored in %s (%.2f:1) of %s; clusters zero=%" PRIu64
			" raw=%" PRIu64 " zstd=%" PRIu64 "; csum_errors=%" PRIu64
			" repaired=%" PRIu64 "; journal %" PRIu64 "/%" PRIu64 " blocks",
			cz_dead(cz) ? "FAILED " : "", uc_size_str(lg, b1, sizeof(b1)),
			uc_size_str(ph, b2, sizeof(b2)), ph ? (double)lg / ph : 1.0,
			uc_size_str(cz->sb.data_blocks * CZ_BLOCK, b3, sizeof(b3)),
			(uint64_t)atomic_load(&cz->nr_kind[CZ_ZERO]),
			(uint64_t)atomic_load(&cz->nr_kind[CZ_RAW]),
			(uint64_t)atomic_load(&cz->nr_kind[CZ_ZSTD]),
			(uint64_t)atomic_load(&cz->csum_errors), (uint64_t)atomic_load(&cz->repaired),
			used, cz->sb.journal_blocks);
}

static int compress_json(const struct uc_node *n, char *buf, size_t len)
{
	struct cz *cz = n->priv;
	uint64_t lg, ph, used;

	pthread_mutex_lock(&cz->lock);
	stats(cz, &lg, &ph);
	used = cz->jused;
	pthread_mutex_unlock(&cz->lock);
	return snprintf(buf, len, "\"algorithm\": \"zstd\", \"level\": %d, \"cluster\": %u, "
			"\"logical_bytes\": %" PRIu64 ", \"physical_bytes\": %" PRIu64 ", "
			"\"ratio\": %.3f, \"data_bytes\": %" PRIu64 ", \"clusters_zero\": %" PRIu64
			", \"clusters_raw\": %" PRIu64 ", \"clusters_compressed\": %" PRIu64
			", \"checksum_errors\": %" PRIu64 ", \"repaired\": %" PRIu64
			", \"journal_blocks_used\": %" PRIu64 ", \"journal_blocks\": %" PRIu64
			", \"commits\": %" PRIu64 ", \"checkpoints\": %" PRIu64
			", \"zstd_skipped\": %" PRIu64 ", \"workers\": %u",
			cz->level, cz->cluster, lg, ph, ph ? (double)lg / ph : 1.0,
			cz->sb.data_blocks * CZ_BLOCK, (uint64_t)atomic_load(&cz->nr_kind[CZ_ZERO]),
			(uint64_t)atomic_load(&cz->nr_kind[CZ_RAW]),
			(uint64_t)atomic_load(&cz->nr_kind[CZ_ZSTD]),
			(uint64_t)atomic_load(&cz->csum_errors), (uint64_t)atomic_load(&cz->repaired),
			used, cz->sb.journal_blocks, (uint64_t)atomic_load(&cz->commits),
			(uint64_t)atomic_load(&cz->checkpoints),
			(uint64_t)atomic_load(&cz->zstd_skipped), cz->nr_workers);
}

static int compress_health(const struct uc_node *n)
{
	return cz_dead(n->priv) ? UC_HEALTH_FAILED : UC_HEALTH_CLEAN;
}

static int compress_examine(const char *path, FILE *out)
{
	uint8_t *b = aligned_alloc(CZ_BLOCK, 2 * CZ_BLOCK);
	struct cz_sb s[2];
	int fd = open(path, O_RDONLY), r[2], ret = -ENOENT;

	if (fd < 0 || !b || pread(fd, b, 2 * CZ_BLOCK, 0) != 2 * CZ_BLOCK) {
		ret = fd < 0 ? -errno : -EIO;
		goto out;
	}
	r[0] = cz_sb_decode(&s[0], b);
	r[1] = cz_sb_decode(&s[1], b + CZ_BLOCK);
	if (!r[0] || !r[1]) {
		cz_sb_print(!r[0] && (r[1] || s[0].gen > s[1].gen) ? &s[0] : &s[1], out);
		ret = 0;
	} else if (r[0] != -ENOENT || r[1] != -ENOENT) {
		fprintf(out, "%s: compress superblock with a bad checksum or layout\n", path);
		ret = -EINVAL;
	}
out:
	if (fd >= 0)
		close(fd);
	free(b);
	return ret;
}

/* `ctl ID NODE locate OFFSET`: where the cluster holding byte OFFSET is stored on the child. */
static int compress_ctl(struct uc_node *n, const char *key, const char *value, char *reply,
			size_t len)
{
	static const char *const kinds[] = { "zero", "raw", "zstd" };
	struct cz *cz = n->priv;
	struct cz_entry e;
	uint64_t off, c;
	char *end;

	if (strcmp(key, "locate") || !value) {
		snprintf(reply, len, "compress: keys: locate OFFSET");
		return -EINVAL;
	}
	value += strspn(value, " ");
	errno = 0;
	off = strtoull(value, &end, 0);
	if (errno || end == value || (*end && *end != ' ' && *end != '\n') || off >= cz->logical) {
		snprintf(reply, len, "compress: locate needs a byte offset below %" PRIu64, cz->logical);
		return -EINVAL;
	}
	c = off >> cz->cluster_shift;
	pthread_mutex_lock(&cz->lock);
	e = cz->map[c];
	pthread_mutex_unlock(&cz->lock);
	if (cz_kind(&e) == CZ_ZERO)
		snprintf(reply, len, "cluster %" PRIu64 " (bytes %" PRIu64 "+%u): zero, not stored", c,
			 c << cz->cluster_shift, cz->cluster);
	else
		snprintf(reply, len, "cluster %" PRIu64 " (bytes %" PRIu64 "+%u): %s, %u bytes at child "
			 "byte %" PRIu64 " (%u blocks), crc32c %08x", c, c << cz->cluster_shift,
			 cz->cluster, kinds[cz_kind(&e)], e.clen,
			 blk_off(cz->sb.data_off + cz_pblk(&e)), cz_nblk(&e), e.crc);
	return 0;
}

const struct uc_layer_ops compress_layer_ops = {
	.name = "compress",
	.keys = compress_keys,
	.help = "algorithm=\"zstd\" level=<zstd level, default 1> cluster=<4K-1M, default 64K> "
		"size=<logical bytes> workers=<threads, default 1 per CPU up to 4> children=(1 layer)",
	.parse = compress_parse,
	.close = compress_close,
	.child_max_iov = compress_child_max_iov,
	.submit = compress_submit,
	.end = compress_end,
	.child_end = compress_child_end,
	.activate = compress_activate,
	.deactivate = compress_deactivate,
	.poll = compress_poll,
	.status = compress_status,
	.json = compress_json,
	.health = compress_health,
	.examine = compress_examine,
	.ctl = compress_ctl,
};
