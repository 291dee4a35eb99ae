/* SPDX-License-Identifier: MIT */
/*
 * The compress layer's CPU work: compressing clusters and pages, checking
 * and decoding what was read, on worker threads (or on the queue thread
 * with workers = 0).
 */
#include <errno.h>
#include <string.h>
#include "compress_int.h"
#include "crc32c.h"
#include "log.h"

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

/* Compress j->in into comp (or settle for raw): j->neu gets all but its place. */
static void job_compress(struct cz *cz, ZSTD_CCtx *cctx, struct job *j)
{
	unsigned int kind = CZ_ZSTD;
	bool raw = !cctx || looks_random(j->in, cz->cluster);
	size_t clen = raw ? 0 : ZSTD_compress2(cctx, j->comp, comp_cap(cz), j->in, cz->cluster);
	uint8_t *data = j->comp;

	/* it must save a whole block, or it is stored raw */
	if (raw && cctx)
		atomic_fetch_add(&cz->zstd_skipped, 1);
	if (raw || ZSTD_isError(clen) || clen > cz->cluster - CZ_BLOCK) {
		kind = CZ_RAW;
		clen = cz->cluster;
		data = j->in;
	} else {
		memset(j->comp + clen, 0, (CZ_BLOCK - clen % CZ_BLOCK) % CZ_BLOCK);
	}
	j->neu = (struct cz_entry){ cz_loc(0, (clen + CZ_BLOCK - 1) / CZ_BLOCK, kind), clen,
				    uc_crc32c(0, data, clen) };
}

/* The base copy was read into plain (raw) or comp: check it, decode it. Returns 0 or -errno. */
static int job_decode(struct cz *cz, ZSTD_DCtx *dctx, struct job *j)
{
	const struct cz_entry *e = &j->old;
	const uint8_t *data = cz_kind(e) == CZ_RAW ? j->out : j->comp;

	if (uc_crc32c(0, data, e->clen) != e->crc)
		return -EBADMSG;
	if (cz_kind(e) == CZ_ZSTD) {
		size_t r;

		if (!dctx)
			return -ENOMEM;
		r = ZSTD_decompressDCtx(dctx, j->out, cz->cluster, j->comp, e->clen);
		if (ZSTD_isError(r) || r != cz->cluster)
			return -EBADMSG;
	}
	return 0;
}

/*
 * A compressed page is kept only if it saves this much: smaller savings
 * are not worth a decompression on every read.
 */
#define PAGE_KEEP	(CZ_PAGE - CZ_PAGE / 16)

/*
 * Each page [pfirst, plast] of j->in on its own: zero, zstd (its bytes
 * appended to comp) or raw (it stays where it is). pg[p].e gets all but its place.
 */
static void job_pages(struct cz *cz, ZSTD_CCtx *cctx, struct job *j)
{
	size_t pos = 0;

	for (unsigned int p = j->pfirst; p <= j->plast; p++) {
		const uint8_t *src = j->in + (size_t)p * CZ_PAGE;
		struct jpage *g = &j->pg[p];
		size_t clen = 0;

		if (all_zero(src, CZ_PAGE)) {
			g->e = (struct cz_entry){ cz_loc(0, 0, CZ_ZERO), 0, 0 };
			continue;
		}
		if (cctx)
			clen = ZSTD_compress2(cctx, j->comp + pos, comp_cap(cz) - pos, src, CZ_PAGE);
		if (cctx && !ZSTD_isError(clen) && clen <= PAGE_KEEP) {
			g->e = (struct cz_entry){ cz_loc(0, 0, CZ_ZSTD), clen,
						  uc_crc32c(0, j->comp + pos, clen) };
			g->src = pos;
			pos += clen;
		} else {
			g->e = (struct cz_entry){ cz_loc(0, 0, CZ_RAW), CZ_PAGE, uc_crc32c(0, src, CZ_PAGE) };
			g->src = (uint32_t)p * CZ_PAGE;
		}
	}
}

/*
 * The range rblk+rnblk was read into comp: check and decode every page
 * still to load whose fragment lies in it. Returns 0, or -EBADMSG if one
 * failed its checksum (it stays to load: the range is read again from
 * another copy).
 */
static int job_frags(struct cz *cz, ZSTD_DCtx *dctx, struct job *j)
{
	int ret = 0;

	(void)cz;
	for (unsigned int p = j->pfirst; p <= j->plast; p++) {
		struct jpage *g = &j->pg[p];
		const uint8_t *data;
		uint8_t *dst = j->out + (size_t)p * CZ_PAGE;

		if (g->loaded || !cz_has_data(&g->e) || cz_pblk(&g->e) < j->rblk ||
		    cz_pblk(&g->e) + cz_fblocks(&g->e) > j->rblk + j->rnblk)
			continue;
		data = j->comp + (cz_pblk(&g->e) - j->rblk) * CZ_BLOCK + cz_boff(&g->e);
		if (uc_crc32c(0, data, g->e.clen) != g->e.crc) {
			ret = -EBADMSG;
			continue;
		}
		if (cz_kind(&g->e) == CZ_RAW) {
			memcpy(dst, data, CZ_PAGE);
		} else {
			size_t r = dctx ? ZSTD_decompressDCtx(dctx, dst, CZ_PAGE, data, g->e.clen) : 0;

			if (ZSTD_isError(r) || r != CZ_PAGE) {
				ret = -EBADMSG;
				continue;
			}
		}
		g->loaded = true;
	}
	return ret;
}

static void do_work(struct cz *cz, ZSTD_CCtx *cctx, ZSTD_DCtx *dctx, struct job *j)
{
	switch (j->work) {
	case W_COMPRESS:
		job_compress(cz, cctx, j);
		break;
	case W_DECODE:
		j->wres = job_decode(cz, dctx, j);
		break;
	case W_PAGES:
		job_pages(cz, cctx, j);
		break;
	case W_FRAGS:
		j->wres = job_frags(cz, dctx, j);
		break;
	}
}

/*
 * Job j's CPU work (W_*): handed to the workers, whose result comes back
 * through the queue's poll, or done here at once. Either way the job goes
 * on in cz_work_done().
 */
void cz_work(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j, int work)
{
	struct czq *z = czq_of(cz, q);

	j->work = work;
	if (!cz->wstarted || q->id == UC_SYNC_QUEUE_ID) {
		do_work(cz, z->cctx, z->dctx, j);
		cz_work_done(n, cz, q, j);
		return;
	}
	j->qid = q->id;
	j->wnext = NULL;
	pthread_mutex_lock(&cz->wlock);
	if (cz->wtail)
		cz->wtail->wnext = j;
	else
		cz->whead = j;
	cz->wtail = j;
	pthread_mutex_unlock(&cz->wlock);
	z->wnew++;	/* the workers are woken once, at the end of the loop turn (cz_work_kick) */
}

/* Wake the workers for the work this queue handed them in this turn. */
void cz_work_kick(struct cz *cz, struct czq *z)
{
	if (!z->wnew)
		return;
	pthread_mutex_lock(&cz->wlock);
	if (z->wnew > 1)
		pthread_cond_broadcast(&cz->wcond);
	else
		pthread_cond_signal(&cz->wcond);
	pthread_mutex_unlock(&cz->wlock);
	z->wnew = 0;
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
		bool kick;

		while (!cz->whead && !cz->wstop)
			pthread_cond_wait(&cz->wcond, &cz->wlock);
		if (!cz->whead)
			break;
		j = cz->whead;
		cz->whead = j->wnext;
		if (!cz->whead)
			cz->wtail = NULL;
		pthread_mutex_unlock(&cz->wlock);
		/* without a context (out of memory) clusters and pages are stored raw */
		do_work(cz, cctx, dctx, j);
		z = cz->q[j->qid];
		pthread_mutex_lock(&z->dlock);
		kick = !z->done;	/* else a kick is on its way and the queue takes this one too */
		j->wnext = z->done;
		z->done = j;
		pthread_mutex_unlock(&z->dlock);
		if (kick)
			uc_graph_kick_queue(cz->g, j->qid);
		pthread_mutex_lock(&cz->wlock);
	}
	pthread_mutex_unlock(&cz->wlock);
	ZSTD_freeCCtx(cctx);
	ZSTD_freeDCtx(dctx);
	return NULL;
}

void cz_workers_stop(struct cz *cz)
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

void cz_workers_start(struct uc_node *n, struct cz *cz)
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

/* Jobs the workers handed back to this queue go on (oldest first). */
void cz_resume_done(struct uc_node *n, struct cz *cz, struct czq *z, struct uc_queue *q)
{
	struct job *j, *rev = NULL;

	if (!z->done)
		return;
	pthread_mutex_lock(&z->dlock);
	j = z->done;
	z->done = NULL;
	pthread_mutex_unlock(&z->dlock);
	while (j) {
		struct job *next = j->wnext;

		j->wnext = rev;
		rev = j;
		j = next;
	}
	while (rev) {
		struct job *next = rev->wnext;

		cz_work_done(n, cz, q, rev);
		rev = next;
	}
}
