/* SPDX-License-Identifier: MIT */
/*
 * The compress layer's cluster jobs: a request's work on one cluster
 * (read, read-modify-write, store, map change), on the queue thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include "compress_int.h"
#include "events.h"
#include "log.h"

static void park_job(struct czq *z, struct job *j, int phase)
{
	j->phase = phase;
	j->next = z->parked;
	z->parked = j;
}

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
	cz_resume_waiting(n, cz, z, q);
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

static void job_map(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j);

/* j->neu is the new copy: find it a place and write it there. */
void cz_job_place(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	unsigned int nblk = cz_nblk(&j->neu), kind = cz_kind(&j->neu);
	uint64_t pblk;

	pthread_mutex_lock(&cz->lock);
	pblk = cz_space_alloc(&cz->space, nblk);
	uc_event_space(n, cz->space.used * CZ_BLOCK, cz->sb.data_blocks * CZ_BLOCK);
	if (pblk == UINT64_MAX && !j->waited_space && (cz->frees[0].n || cz->frees[1].n)) {
		/* freed space comes back once a commit makes the frees durable */
		j->waited_space = true;
		j->s->scratch = cz_commit_needed(cz);
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
	if (cz_use_workers(cz, q)) {
		cz_offload(cz, q, j, W_COMPRESS);
		return;
	}
	cz_job_compress(cz, czq_of(cz, q)->cctx, j);
	cz_job_place(n, cz, q, j);
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
	} else if (!cz_journal_room(cz)) {
		/* the ring is full: a checkpoint; too many frees: a commit; memory: the writer */
		if (cz->kstate == K_NONE && cz->jused + 2 >= cz->sb.journal_blocks)
			cz->kstate = K_WAIT;
		else if (cz->frees[0].n >= FREES_MAX)
			cz_commit_needed(cz);
		pthread_mutex_unlock(&cz->lock);
		park_job(z, j, P_MAP);
		return;
	} else {
		ok = cz_kind(&cz->map[j->cluster]);
		nk = cz_kind(&j->neu);
		cz_free_later(cz, &cz->map[j->cluster], j->cluster, cz->appended + 1);
		cz->map[j->cluster] = j->neu;
		j->jent = cz_journal_add(cz, j->cluster, &j->neu);
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
void cz_launch(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct uc_sub *s)
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
void cz_job_read_done(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j,
		      int err)
{
	if (err == -EBADMSG) {
		atomic_fetch_add(&cz->csum_errors, 1);
		uc_event_count(n, UC_EV_CHECKSUM_ERROR, atomic_load(&cz->csum_errors),
			       "cluster %" PRIu64 " copy %u", j->cluster, j->copy);
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
void compress_child_end(struct uc_node *n, struct uc_queue *q, struct uc_sub *s,
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
		if (!err && cz_use_workers(cz, q)) {
			cz_offload(cz, q, j, W_DECODE);
			return;
		}
		if (!err)
			err = cz_job_decode(cz, czq_of(cz, q)->dctx, j);
		cz_job_read_done(n, cz, q, j, err);
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

void cz_resume_jobs(struct uc_node *n, struct cz *cz, struct czq *z, struct uc_queue *q)
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
			cz_job_place(n, cz, q, j);	/* P_SPACE: a commit released what it could */
		} else {
			park_job(z, j, P_SPACE);
		}
		j = next;
	}
}

void cz_resume_waiting(struct uc_node *n, struct cz *cz, struct czq *z, struct uc_queue *q)
{
	while (z->waiting && z->free) {
		struct uc_sub *s = z->waiting;

		z->waiting = s->next;
		s->state &= ~S_WAITING;
		cz_launch(n, cz, q, s);
		uc_sub_put(q, s);	/* the waiting list's reference */
	}
}
