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
 *
 * Files: compress.c (config, requests, poll, admin), compress_job.c
 * (cluster jobs), compress_work.c (zstd, checksums, workers),
 * compress_journal.c (journal, commits, checkpoints), compress_open.c
 * (format, replay, stop), compress_meta.c (on-disk encoding, allocator);
 * compress_int.h holds what they share.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>
#include "compress_int.h"
#include "graph.h"
#include "io.h"
#include "log.h"

void cz_break(struct uc_node *n, struct cz *cz, const char *what, int err)
{
	if (!atomic_exchange(&cz->broken, true))
		uc_err("%s: %s failed: %s; every request fails from now on", n->name, what,
		       strerror(-err));
}

/* ---- config ---- */

/* the keys parse accepts (ops.keys; ublk-compose.conf(5) documents each) */
static const char *const compress_keys[] = { "type", "name", "algorithm", "level", "cluster", "size",
					     "workers", "cache", "fold_idle", "children", NULL };

static int compress_parse(struct uc_node *n, const config_setting_t *cfg)
{
	const char *alg = "zstd";
	uint64_t cluster = 64 << 10, size = 0, cache = CACHE_BYTES, idle_ns = FOLD_IDLE_NS;
	long long level = 1, workers = -1;
	unsigned int pages;
	struct cz_sb lay;
	struct cz *cz;
	int ret;

	if (uc_conf_check_keys(cfg, compress_keys, "compress"))
		return -EINVAL;
	if ((ret = uc_conf_string(cfg, "algorithm", &alg)) < 0 ||
	    (ret = uc_conf_int(cfg, "level", &level)) < 0 ||
	    (ret = uc_conf_size(cfg, "cluster", &cluster)) < 0 ||
	    (ret = uc_conf_int(cfg, "workers", &workers)) < 0 ||
	    (ret = uc_conf_size(cfg, "cache", &cache)) < 0 ||
	    (ret = uc_conf_duration(cfg, "fold_idle", "compress", &idle_ns)) < 0)
		return ret;
	if (cache > (1ULL << 30))
		return uc_conf_err(config_setting_get_member(cfg, "cache"),
				   "compress: cache must be at most 1G (per queue)");
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
	/* a volume made by the first layout rule may have a child that only it fits */
	if (cz_layout(&lay, n->children[0]->size, size, cluster) &&
	    cz_layout_old(&lay, n->children[0]->size, size, cluster)) {
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
	cz->ppc = cluster / CZ_PAGE;
	cz->logical = size;
	cz->nclusters = size >> cz->cluster_shift;
	if (workers < 0) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		workers = cpus < 1 ? 1 : cpus > 4 ? 4 : cpus;
	}
	cz->nr_workers = workers;
	cz->idle_ns = idle_ns;
	/* decoded clusters per queue: a power of two, at least 4 */
	cz->nr_cache = 4;
	while ((uint64_t)cz->nr_cache * 2 * cluster <= cache)
		cz->nr_cache *= 2;
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
	/* a checkpoint's run, or a read of any extent or range (past the child subs) */
	n->internal_buf = comp_cap(cz) > CKPT_RUN ? comp_cap(cz) : CKPT_RUN;
	/*
	 * Each cluster of a request: a write (or its pack's) and the base
	 * copy's read attempts and repair; each page: a read of its fragment;
	 * some re-reads of fragments. Reads past that use internal requests.
	 */
	pages = n->graph->dev.max_io / CZ_PAGE;
	n->child_subs = (n->graph->dev.max_io / cluster + 2) * (ATTEMPTS + 2) +
			(pages < 256 ? pages : 256) + RETRY_SUBS;
	cz->child_subs = n->child_subs;
	cz->space_reserve = FOLDS * cz->ppc;
	cz->pack_cap = n->graph->dev.max_io < cluster ? n->graph->dev.max_io : cluster;
	if (cz->pack_cap < PACK_BYTES)
		cz->pack_cap = PACK_BYTES;
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

static void czq_free(struct czq *z)
{
	if (!z)
		return;
	ZSTD_freeCCtx(z->cctx);
	ZSTD_freeDCtx(z->dctx);
	for (unsigned int i = 0; i < PACKS; i++)
		free(z->packs[i].buf);
	free(z->holds);
	free(z->cache);
	free(z->cache_mem);
	free(z->jobs);
	free(z->pages);
	free(z->mem);
	free(z);
}

static void compress_close(struct uc_node *n)
{
	struct cz *cz = n->priv;

	if (!cz)
		return;
	cz_workers_stop(cz);
	for (unsigned int i = 0; i <= UC_MAX_QUEUES; i++)
		czq_free(cz->q[i]);
	if (cz->map)
		pthread_mutex_destroy(&cz->lock);
	free(cz->map);
	free((void *)cz->busy);
	free(cz->ov);
	free(cz->ovn);
	free(cz->ovz);
	free(cz->gen);
	free(cz->refs);
	for (int i = 0; i < 2; i++)
		free(cz->frees[i].e);
	free(cz->jb);
	cz_space_free_all(&cz->space);
	free(cz);
	n->priv = NULL;
}

struct czq *czq_new(struct cz *cz)
{
	size_t zlen = (sizeof(struct czq) + 63) & ~(size_t)63;
	struct czq *z = aligned_alloc(64, zlen);	/* no cache line shared with another queue's */
	size_t per = cz->cluster + comp_cap(cz);
	bool nomem = false;

	if (!z)
		return NULL;
	memset(z, 0, zlen);
	z->nr_jobs = cz->jobs_per_queue;
	z->jobs = calloc(z->nr_jobs, sizeof(*z->jobs));
	z->pages = calloc((size_t)z->nr_jobs * cz->ppc, sizeof(*z->pages));
	z->holds = calloc((size_t)z->nr_jobs * cz->ppc, sizeof(*z->holds));
	/* decoded clusters kept for the reads that come back to them (both powers of two) */
	z->nr_cache = cz->nr_cache;
	z->cache = calloc(z->nr_cache, sizeof(*z->cache));
	z->cache_mem = aligned_alloc(CZ_BLOCK, (size_t)z->nr_cache * cz->cluster);
	for (unsigned int i = 0; z->cache && z->cache_mem && i < z->nr_cache; i++)
		z->cache[i].data = z->cache_mem + (size_t)i * cz->cluster;
	z->mem = aligned_alloc(CZ_BLOCK, per * z->nr_jobs);
	z->cctx = ZSTD_createCCtx();
	z->dctx = ZSTD_createDCtx();
	for (unsigned int i = 0; i < PACKS; i++)
		if (!(z->packs[i].buf = aligned_alloc(CZ_BLOCK, cz->pack_cap)))
			nomem = true;
	if (nomem || !z->jobs || !z->pages || !z->holds || !z->cache || !z->cache_mem || !z->mem ||
	    !z->cctx || !z->dctx) {
		czq_free(z);
		return NULL;
	}
	z->free_hold = UINT32_MAX;
	for (uint32_t i = z->nr_jobs * cz->ppc; i--;) {
		z->holds[i].next_free = z->free_hold;
		z->free_hold = i;
	}
	ZSTD_CCtx_setParameter(z->cctx, ZSTD_c_compressionLevel, cz->level);
	pthread_mutex_init(&z->dlock, NULL);
	for (unsigned int i = 0; i < z->nr_jobs; i++) {
		struct job *j = &z->jobs[i];

		j->plain = z->mem + i * per;
		j->comp = j->plain + cz->cluster;
		j->pg = z->pages + (size_t)i * cz->ppc;
		j->next = z->free;
		z->free = j;
	}
	return z;
}

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
	/* owner-written, read by whichever queue looks for idleness */
	if (s->op != UC_OP_FOLD)
		atomic_store_explicit(&z->reqs, atomic_load_explicit(&z->reqs, memory_order_relaxed) + 1,
				      memory_order_relaxed);
	switch (s->op) {
	case UC_OP_READ:
	case UC_OP_WRITE:
	case UC_OP_DISCARD:
	case UC_OP_WRITE_ZEROES:
	case UC_OP_FOLD:
		s->state = 0;
		cz_launch(n, cz, q, s);
		return 0;
	case UC_OP_FLUSH: {
		uint64_t want;

		pthread_mutex_lock(&cz->lock);
		want = cz_commit_needed(cz);
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
	park_flush(czq_of(cz, q), s, cz_commit_needed(cz));
	pthread_mutex_unlock(&cz->lock);
	return UC_RESUBMITTED;
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

static bool compress_poll(struct uc_node *n, struct uc_queue *q)
{
	struct cz *cz = n->priv;
	struct czq *z = czq_of(cz, q);
	bool again;

	if (!z || !cz->active)
		return false;
	cz_resume_done(n, cz, z, q);
	cz_resume_jobs(n, cz, z, q);
	cz_resume_waiting(n, cz, z, q);
	cz_pages_poll(cz, z, q);
	cz_fold_poll(n, cz, q);
	pthread_mutex_lock(&cz->lock);
	if (cz->frees[1].n)
		cz_release_ready(cz);
	/* changes pile up without a FLUSH: commit them anyway, it bounds what replay must check */
	if (cz->cstate == C_IDLE && cz->kstate == K_NONE &&
	    cz->appended - atomic_load(&cz->durable) >= COMMIT_EVERY)
		cz_commit_needed(cz);
	if (!cz_dead(cz))
		cz_journal_poll(n, cz, q);
	again = !cz_dead(cz) && (cz_commit_poll(n, cz, q) | cz_ckpt_poll(n, cz, q) ||
				 atomic_load(&cz->jwritten) < cz->appended);
	pthread_mutex_unlock(&cz->lock);
	resume_flushes(cz, z, q);
	cz_work_kick(cz, z);
	return again || z->open || z->parked || z->waiting || z->flushing;
}

/* ---- admin ---- */

static void stats(const struct cz *cz, uint64_t *logical, uint64_t *physical)
{
	*logical = atomic_load(&cz->stored_pages) * CZ_PAGE;
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
			" raw=%" PRIu64 " zstd=%" PRIu64 ", pages alone=%" PRIu64 "; csum_errors=%" PRIu64
			" repaired=%" PRIu64 "; journal %" PRIu64 "/%" PRIu64 " blocks",
			cz_dead(cz) ? "FAILED " : "", uc_size_str(lg, b1, sizeof(b1)),
			uc_size_str(ph, b2, sizeof(b2)), ph ? (double)lg / ph : 1.0,
			uc_size_str(cz->sb.data_blocks * CZ_BLOCK, b3, sizeof(b3)),
			(uint64_t)atomic_load(&cz->nr_kind[CZ_ZERO]),
			(uint64_t)atomic_load(&cz->nr_kind[CZ_RAW]),
			(uint64_t)atomic_load(&cz->nr_kind[CZ_ZSTD]),
			(uint64_t)atomic_load(&cz->alone_pages),
			(uint64_t)atomic_load(&cz->csum_errors), (uint64_t)atomic_load(&cz->repaired),
			used, cz->sb.journal_blocks);
}

static int compress_json(const struct uc_node *n, char *buf, size_t len)
{
	struct cz *cz = n->priv;
	uint64_t lg, ph, used, hits = 0;

	for (unsigned int i = 0; i <= UC_MAX_QUEUES; i++)
		if (cz->q[i])
			hits += atomic_load_explicit(&cz->q[i]->cache_hits, memory_order_relaxed);

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
			", \"zstd_skipped\": %" PRIu64 ", \"workers\": %u, \"pages_alone\": %" PRIu64
			", \"page_capacity\": %" PRIu64 ", \"page_writes\": %" PRIu64
			", \"packs_written\": %" PRIu64 ", \"folds\": %" PRIu64 ", \"cache_hits\": %" PRIu64
			", \"cache_bytes\": %" PRIu64 ", \"idle_folds\": %" PRIu64
			", \"fold_idle_ms\": %" PRIu64,
			cz->level, cz->cluster, lg, ph, ph ? (double)lg / ph : 1.0,
			cz->sb.data_blocks * CZ_BLOCK, (uint64_t)atomic_load(&cz->nr_kind[CZ_ZERO]),
			(uint64_t)atomic_load(&cz->nr_kind[CZ_RAW]),
			(uint64_t)atomic_load(&cz->nr_kind[CZ_ZSTD]),
			(uint64_t)atomic_load(&cz->csum_errors), (uint64_t)atomic_load(&cz->repaired),
			used, cz->sb.journal_blocks, (uint64_t)atomic_load(&cz->commits),
			(uint64_t)atomic_load(&cz->checkpoints),
			(uint64_t)atomic_load(&cz->zstd_skipped), cz->nr_workers,
			(uint64_t)atomic_load(&cz->alone_pages), cz->ov_cap,
			(uint64_t)atomic_load(&cz->page_writes), (uint64_t)atomic_load(&cz->packs_written),
			(uint64_t)atomic_load(&cz->folds_done), hits, (uint64_t)cz->nr_cache * cz->cluster,
			(uint64_t)atomic_load(&cz->idle_folds), cz->idle_ns / 1000000);
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
	} else if (r[0] == -EPROTO || r[1] == -EPROTO) {
		fprintf(out, "%s: compress volume of format %u; this version reads format %u\n", path,
			r[0] == -EPROTO ? s[0].version : s[1].version, CZ_VERSION);
		ret = -EINVAL;
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
	struct cz_entry e, pe = { cz_loc(0, 0, CZ_NONE), 0, 0 };
	const struct cz_ov *o;
	uint64_t off, c;
	char *end;
	int k;

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
	if ((o = cz_ov_find(cz, off / CZ_PAGE)))
		pe = o->e;
	pthread_mutex_unlock(&cz->lock);
	if (cz_kind(&e) == CZ_ZERO)
		k = snprintf(reply, len, "cluster %" PRIu64 " (bytes %" PRIu64 "+%u): zero, not stored", c,
			     c << cz->cluster_shift, cz->cluster);
	else
		k = snprintf(reply, len, "cluster %" PRIu64 " (bytes %" PRIu64 "+%u): %s, %u bytes at child "
			     "byte %" PRIu64 " (%u blocks), crc32c %08x", c, c << cz->cluster_shift,
			     cz->cluster, kinds[cz_kind(&e)], e.clen,
			     blk_off(cz->sb.data_off + cz_pblk(&e)), cz_nblk(&e), e.crc);
	if (k < 0 || (size_t)k >= len || cz_kind(&pe) == CZ_NONE)
		return 0;
	if (cz_kind(&pe) == CZ_ZERO)
		snprintf(reply + k, len - k, "; page %" PRIu64 " stored alone: zero", off / CZ_PAGE);
	else
		snprintf(reply + k, len - k, "; page %" PRIu64 " stored alone: %s, %u bytes at child "
			 "byte %" PRIu64 ", crc32c %08x", off / CZ_PAGE, kinds[cz_kind(&pe)], pe.clen,
			 blk_off(cz->sb.data_off + cz_pblk(&pe)) + cz_boff(&pe), pe.crc);
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
