/* SPDX-License-Identifier: MIT */
/*
 * The compress layer's CPU work: compressing and checking/decoding
 * clusters, on worker threads (or the queue thread with workers = 0).
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

/* Compress plain into comp (or settle for raw): j->neu gets all but its place. */
void cz_job_compress(struct cz *cz, ZSTD_CCtx *cctx, struct job *j)
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

bool cz_use_workers(const struct cz *cz, const struct uc_queue *q)
{
	return cz->wstarted && q->id != UC_SYNC_QUEUE_ID;
}

/* Hand j's CPU work to the workers; poll() goes on with it when it comes back. */
void cz_offload(struct cz *cz, struct uc_queue *q, struct job *j, int work)
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

/* A read of the extent came back into plain or comp: check it, decode it. Returns 0 or -errno. */
int cz_job_decode(struct cz *cz, ZSTD_DCtx *dctx, struct job *j)
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
			cz_job_compress(cz, cctx, j);
		else if (j->work == W_COMPRESS)
			j->neu = (struct cz_entry){ cz_loc(0, cz->cluster / CZ_BLOCK, CZ_RAW), cz->cluster,
						    uc_crc32c(0, j->plain, cz->cluster) };
		else
			j->wres = dctx ? cz_job_decode(cz, dctx, j) : -ENOMEM;
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

/* Jobs the workers handed back to this queue go on. */
void cz_resume_done(struct uc_node *n, struct cz *cz, struct czq *z, struct uc_queue *q)
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
			cz_job_place(n, cz, q, j);
		else
			cz_job_read_done(n, cz, q, j, j->wres);
		j = next;
	}
}
