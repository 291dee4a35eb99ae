/* SPDX-License-Identifier: MIT */
/*
 * The compress layer's cluster jobs: a request's work on one cluster, on
 * the queue thread. A job loads what it needs (the base copy, then its
 * pages' fragments, range by range), and then a read copies out, a base
 * write merges and stores the whole cluster again, and a page write
 * (compress_page.c) stores its pages on their own.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include "compress_int.h"
#include "events.h"
#include "log.h"

void cz_park_job(struct czq *z, struct job *j, int phase)
{
	j->phase = phase;
	j->next = z->parked;
	z->parked = j;
}

/* A base writer lets the cluster go. */
void cz_job_unlock(struct cz *cz, struct job *j)
{
	if (j->locked)
		atomic_store(&cz->busy[j->cluster], 0);
	j->locked = false;
}

void cz_job_done(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	struct czq *z = czq_of(cz, q);
	struct uc_sub *s = j->s;

	cz_read_unpin(cz, j);
	if (j->filling)
		j->slot->state = C_EMPTY;	/* the load failed */
	j->filling = false;
	j->slot = NULL;
	uc_sub_error(s, j->err);
	j->phase = P_FREE;
	j->s = NULL;
	j->next = z->free;
	z->free = j;
	/* a request waiting for a job gets this one (s's reference keeps it until then) */
	cz_resume_waiting(n, cz, z, q);
	uc_sub_put(q, s);
}

/* The job ends with err (the cluster is let go). */
void cz_job_fail(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j, int err)
{
	j->err = err;
	cz_job_unlock(cz, j);
	cz_job_done(n, cz, q, j);
}

/* ---- child I/O ---- */

static void job_io_done(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j,
			int err, unsigned int copy);

/*
 * A read that found the request's child subs spent (very large requests over
 * many fragments, or many re-reads) goes through an internal request of the
 * queue: the default copy only.
 */
static void internal_read_done(struct uc_queue *q, struct uc_io *io, int res)
{
	struct job *j = io->arg;
	struct uc_node *n = j->s->node;

	if (!res)
		memcpy(j->phase == P_LOAD_FRAGS || cz_kind(&j->old) != CZ_RAW ? j->comp : j->out,
		       io->buf, io->len);
	job_io_done(n, n->priv, q, j, res, 0);
}

/*
 * An I/O of j on the child: nblk blocks at data area block pblk, from or
 * into buf. Returns false if it must wait for an internal request (P_IOWAIT).
 */
static bool job_io(struct uc_queue *q, struct job *j, int op, uint64_t pblk, unsigned int nblk,
		   void *buf, struct cz *cz)
{
	struct uc_sub *s = j->s, *cs;
	uint64_t off = blk_off(cz->sb.data_off + pblk), len = (uint64_t)nblk * CZ_BLOCK;

	if (s->mask >= cz->child_subs) {
		struct uc_io *io = uc_internal_get(q);

		assert(op == UC_OP_READ);	/* writes are counted in child_subs */
		if (!io)
			return false;
		uc_internal_start(q, io, s->node->children[0], op, 0, off, len, internal_read_done, j);
		return true;
	}
	s->mask++;
	cs = uc_child_prep(q, s, 0, off, len);
	cs->op = op;
	cs->flags = 0;
	cs->copy = op == UC_OP_READ && j->attempt > 1 ? j->attempt - 1 : 0;
	cs->iov[0] = (struct iovec){ buf, len };
	cs->nr_iov = 1;
	cs->pctx = j;
	uc_child_issue(q, cs);
	return true;
}

/* Read what the job's phase says (the base copy, or the range), trying the next copy. */
static void job_read(struct uc_queue *q, struct cz *cz, struct job *j)
{
	bool base = j->phase == P_LOAD_BASE;
	void *buf = base && cz_kind(&j->old) == CZ_RAW ? j->out : j->comp;	/* raw lands in place */

	j->attempt++;
	if (!job_io(q, j, UC_OP_READ, base ? cz_pblk(&j->old) : j->rblk,
		    base ? cz_nblk(&j->old) : j->rnblk, buf, cz)) {
		j->attempt--;
		j->resume = j->phase;
		cz_park_job(czq_of(cz, q), j, P_IOWAIT);
	}
}

/* ---- loading: the base copy, then the fragments, into plain ---- */

static void load_done(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j);

/*
 * What the job loads, as the map holds it now: the base copy and the
 * fragments of pages [pfirst, plast]. Lock held. What it reads is pinned.
 */
static void load_sample(struct cz *cz, struct job *j)
{
	j->old = cz->map[j->cluster];
	for (unsigned int p = j->pfirst; p <= j->plast; p++) {
		const struct cz_ov *o = cz->ovn[j->cluster] ?
					cz_ov_find(cz, j->cluster * cz->ppc + p) : NULL;

		j->pg[p] = (struct jpage){ .e = o ? o->e : (struct cz_entry){ cz_loc(0, 0, CZ_NONE), 0, 0 },
					   .stamp = o ? o->stamp : 0 };
	}
	cz_read_pin(cz, j);
}

/* Does any page the job loads come from the base copy? */
static bool needs_base(const struct job *j)
{
	if (!cz_has_data(&j->old))
		return false;
	for (unsigned int p = j->pfirst; p <= j->plast; p++)
		if (cz_kind(&j->pg[p].e) == CZ_NONE)
			return true;
	return false;
}

/*
 * The next range of fragments to read: the lowest unloaded one, and every
 * other unloaded one that starts within the range as it grows (they were
 * packed together), as far as comp holds. False: nothing left to read.
 */
static bool next_range(const struct cz *cz, struct job *j)
{
	uint64_t lo = UINT64_MAX, hi = 0, max = comp_cap(cz) / CZ_BLOCK;
	bool grew = true;

	for (unsigned int p = j->pfirst; p <= j->plast; p++) {
		const struct cz_entry *e = &j->pg[p].e;

		if (!j->pg[p].loaded && cz_has_data(e) && cz_pblk(e) < lo) {
			lo = cz_pblk(e);
			hi = lo + cz_fblocks(e);
		}
	}
	if (lo == UINT64_MAX)
		return false;
	while (grew) {
		grew = false;
		for (unsigned int p = j->pfirst; p <= j->plast; p++) {
			const struct cz_entry *e = &j->pg[p].e;
			uint64_t b = cz_pblk(e), end = b + cz_fblocks(e);

			if (j->pg[p].loaded || !cz_has_data(e) || b < lo || b > hi || end <= hi ||
			    end - lo > max)
				continue;
			hi = end;
			grew = true;
		}
	}
	j->rblk = lo;
	j->rnblk = hi - lo;
	return true;
}

/* Go on loading: pages the base does not hold are zero, then the fragments, range by range. */
static void load_frags(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	if (j->phase != P_LOAD_FRAGS) {
		/* the base is loaded: what it does not hold, and zero fragments, read as zeroes */
		for (unsigned int p = j->pfirst; p <= j->plast; p++) {
			struct jpage *g = &j->pg[p];

			if (cz_kind(&g->e) == CZ_ZERO ||
			    (cz_kind(&g->e) == CZ_NONE && !cz_has_data(&j->old)))
				memset(j->out + (size_t)p * CZ_PAGE, 0, CZ_PAGE);
			g->loaded = !cz_has_data(&g->e);
		}
	}
	j->attempt = 0;
	j->crc_failed = false;
	if (!next_range(cz, j)) {
		load_done(n, cz, q, j);
		return;
	}
	j->phase = P_LOAD_FRAGS;
	job_read(q, cz, j);
}

/* Load pages [pfirst, plast] of the cluster as sampled. */
static void load_start(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	j->attempt = 0;
	j->crc_failed = false;
	if (needs_base(j)) {
		j->phase = P_LOAD_BASE;
		job_read(q, cz, j);
		return;
	}
	j->phase = P_LOCK;	/* anything but P_LOAD_FRAGS: the zeroes are filled in first */
	load_frags(n, cz, q, j);
}

/* The base copy's read came back with err (0, -EBADMSG: the checksum, -errno). */
static void base_read_done(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j,
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
			job_read(q, cz, j);	/* the next copy below */
			return;
		}
		err = -EIO;
	}
	if (err == -ENODATA)
		err = -EIO;	/* no copy left that passes its checksum */
	if (err) {
		cz_job_fail(n, cz, q, j, err);
		return;
	}
	if (j->crc_failed) {
		/* a good copy after a bad one: write it over the extent (all copies below) */
		atomic_fetch_add(&cz->repaired, 1);
		uc_info("%s: cluster %" PRIu64 ": rewrote the extent from copy %u", n->name, j->cluster,
			j->copy);
		j->crc_failed = false;
		j->phase = P_REPAIR;
		job_io(q, j, UC_OP_WRITE, cz_pblk(&j->old), cz_nblk(&j->old),
		       cz_kind(&j->old) == CZ_RAW ? j->out : j->comp, cz);
		return;
	}
	load_frags(n, cz, q, j);
}

/*
 * A range of fragments came back (err: 0 or -EBADMSG from the checks, or
 * the read's -errno). A fragment is not rewritten from a good copy: the
 * blocks around it hold other fragments, which were not checked.
 */
static void frags_read_done(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j,
			    int err)
{
	if (err == -EBADMSG) {
		atomic_fetch_add(&cz->csum_errors, 1);
		uc_event_count(n, UC_EV_CHECKSUM_ERROR, atomic_load(&cz->csum_errors),
			       "cluster %" PRIu64 " fragment, copy %u", j->cluster, j->copy);
		uc_warn("%s: cluster %" PRIu64 ": checksum mismatch in a page fragment "
			"(blocks %" PRIu64 "+%u, copy %u)", n->name, j->cluster, j->rblk, j->rnblk,
			j->copy);
		if (j->attempt < ATTEMPTS) {
			job_read(q, cz, j);	/* the next copy below */
			return;
		}
		err = -EIO;
	}
	if (err == -ENODATA)
		err = -EIO;
	if (err) {
		cz_job_fail(n, cz, q, j, err);
		return;
	}
	load_frags(n, cz, q, j);
}

/* The request's memory for [off, off+len) of its data, if it is in one piece; else NULL. */
static uint8_t *req_span(const struct uc_sub *s, uint64_t off, uint64_t len)
{
	for (unsigned int i = 0; i < s->nr_iov; i++) {
		if (off < s->iov[i].iov_len)
			return off + len <= s->iov[i].iov_len ? (uint8_t *)s->iov[i].iov_base + off : NULL;
		off -= s->iov[i].iov_len;
	}
	return NULL;
}

/* ---- base writes: the whole cluster stored again ---- */

static void job_map(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j);

/* j->neu is the new copy: find it a place and write it there. */
void cz_job_place(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	unsigned int nblk = cz_nblk(&j->neu), kind = cz_kind(&j->neu);
	uint64_t pblk;

	pthread_mutex_lock(&cz->lock);
	pblk = cz_alloc(cz, nblk, j->op == J_FOLD);
	cz->space_short = pblk == UINT64_MAX;
	uc_event_space(n, cz->space.used * CZ_BLOCK, cz->sb.data_blocks * CZ_BLOCK);
	pthread_mutex_unlock(&cz->lock);
	/* free space in pieces too small for the copy: the cluster's pages go alone */
	if (pblk == UINT64_MAX && cz_pages_convert(n, cz, q, j))
		return;
	pthread_mutex_lock(&cz->lock);
	if (pblk == UINT64_MAX && j->op != J_FOLD &&
	    cz_space_hope(cz, &j->space_waits, &j->wcommit, &j->wfolds)) {
		/* freed space comes back once a commit makes the frees durable, or a fold is done */
		pthread_mutex_unlock(&cz->lock);
		cz_park_job(czq_of(cz, q), j, P_SPACE);
		return;
	}
	pthread_mutex_unlock(&cz->lock);
	if (pblk == UINT64_MAX) {
		cz_job_fail(n, cz, q, j, -ENOSPC);
		return;
	}
	j->neu.loc = cz_loc(pblk, nblk, kind);
	j->phase = P_WRITE;
	job_io(q, j, UC_OP_WRITE, pblk, nblk, kind == CZ_RAW ? j->in : j->comp, cz);
}

/* The cluster's new content is in j->in: store it (or map it as zero). */
static void job_store(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	if (all_zero(j->in, cz->cluster)) {
		bool nothing;

		pthread_mutex_lock(&cz->lock);
		nothing = !cz_has_data(&cz->map[j->cluster]) && !cz->ovn[j->cluster];
		pthread_mutex_unlock(&cz->lock);
		j->neu = (struct cz_entry){ 0 };
		if (nothing)
			cz_job_fail(n, cz, q, j, 0);	/* zeroes over zeroes: nothing changes */
		else
			job_map(n, cz, q, j);
		return;
	}
	cz_work(n, cz, q, j, W_COMPRESS);
}

/* Merge the request's part into plain (zeroes for WRITE_ZEROES/DISCARD) and store. */
static void job_merge(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	if (j->op == J_FOLD)
		;	/* nothing to merge: the cluster as it reads */
	else if (j->op == J_WRITE)
		uc_iov_copy(j->s->iov, j->s->nr_iov, j->req_off, j->plain + j->in_off, j->in_len,
			    false);
	else
		memset(j->plain + j->in_off, 0, j->in_len);
	job_store(n, cz, q, j);
}

static void load_done(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	cz_read_unpin(cz, j);
	if (j->op == J_READ) {
		if (j->filling)
			j->slot->state = C_VALID;
		j->filling = false;
		j->slot = NULL;
		if (j->out != j->mem)	/* else it is there already */
			uc_iov_copy(j->s->iov, j->s->nr_iov, j->req_off, j->out + j->in_off, j->in_len,
				    true);
		cz_job_done(n, cz, q, j);
	} else {
		job_merge(n, cz, q, j);
	}
}

/*
 * j holds the cluster: what the map holds now decides what comes next. Its
 * stamp bound S: fragments stored from now on stay on top of what it writes.
 */
static void job_locked(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	bool full = j->in_len == cz->cluster && j->op != J_FOLD;

	pthread_mutex_lock(&cz->lock);
	if (j->op == J_FOLD && !cz->ovn[j->cluster]) {
		pthread_mutex_unlock(&cz->lock);
		cz_job_fail(n, cz, q, j, 0);	/* another fold was first: nothing to do */
		return;
	}
	j->S = cz->appended;
	j->pfirst = 0;
	j->plast = cz->ppc - 1;
	if (full)
		j->old = cz->map[j->cluster];
	else
		load_sample(cz, j);
	pthread_mutex_unlock(&cz->lock);
	if (full && j->op != J_WRITE) {
		j->neu = (struct cz_entry){ 0 };	/* a whole cluster unmapped */
		job_map(n, cz, q, j);
	} else if (full) {
		uint8_t *mem = req_span(j->s, j->req_off, j->in_len);

		/* compressed straight from the request (page aligned: a raw copy is written from there) */
		if (mem && !((uintptr_t)mem % CZ_BLOCK)) {
			j->in = mem;
			job_store(n, cz, q, j);
		} else {
			job_merge(n, cz, q, j);
		}
	} else {
		load_start(n, cz, q, j);
	}
}

static void job_lock(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	uint8_t free_flag = 0;

	if (!atomic_compare_exchange_strong(&cz->busy[j->cluster], &free_flag, 1)) {
		/*
		 * A fold does not wait: the writer holding the cluster may itself
		 * wait for space that folds bring back. It folds another one.
		 */
		if (j->op == J_FOLD)
			cz_job_fail(n, cz, q, j, 0);
		else
			cz_park_job(czq_of(cz, q), j, P_LOCK);
		return;
	}
	j->locked = true;
	job_locked(n, cz, q, j);
}

/*
 * Map changes that free up to `frees` extents are blocked: a checkpoint
 * when the ring runs out, a commit when the frees not yet durable fill
 * their list (else the journal writer frees memory). Lock held.
 */
void cz_map_blocked(struct cz *cz, unsigned int frees)
{
	if (cz->kstate == K_NONE && cz->jused + 4 >= cz->sb.journal_blocks)
		cz->kstate = K_WAIT;
	else if (cz->frees[0].n + frees > FREES_MAX)
		cz_commit_needed(cz);
}

/* After map changes: a checkpoint before the ring runs out. Lock held. */
void cz_map_changed(struct cz *cz)
{
	if (cz->kstate == K_NONE && cz->jused * 4 >= cz->sb.journal_blocks * 3)
		cz->kstate = K_WAIT;
}

/*
 * The new copy is written (or the cluster becomes zero): the map and journal
 * change, fragments older than the job go, the cluster is free for the next
 * writer, and the request part is done once the journal block holding the
 * change is written (P_JWAIT).
 */
static void job_map(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	struct cz_jent e = { .cluster = j->cluster, .type = CZ_J_BASE_CLEAR, .e = j->neu, .s = j->S };

	pthread_mutex_lock(&cz->lock);
	if (cz_dead(cz)) {
		pthread_mutex_unlock(&cz->lock);
		cz_job_fail(n, cz, q, j, -EIO);
		return;
	}
	if (!cz_journal_room(cz, 1, 1 + 2 * cz->ppc)) {
		cz_map_blocked(cz, 1 + 2 * cz->ppc);
		pthread_mutex_unlock(&cz->lock);
		cz_park_job(czq_of(cz, q), j, P_MAP);
		return;
	}
	j->jent = cz_journal_add(cz, &e);
	cz_set_base(cz, j->cluster, &j->neu, true, j->S, j->jent, true);
	cz_map_changed(cz);
	pthread_mutex_unlock(&cz->lock);
	cz_job_unlock(cz, j);
	cz_park_job(czq_of(cz, q), j, P_JWAIT);
}

/* ---- starting and resuming ---- */

/* ---- reads, and the read cache ---- */

static struct cslot *cache_slot(struct czq *z, uint64_t c)
{
	return &z->cache[c & (z->nr_cache - 1)];
}

/* Does slot hold cluster c as the map holds it now? (gen first: see cz_cluster_changed) */
static bool slot_current(struct cz *cz, const struct cslot *slot, uint64_t c)
{
	return slot->cluster == c &&
	       slot->gen == atomic_load_explicit(&cz->gen[c], memory_order_acquire) &&
	       slot->epoch == atomic_load_explicit(&cz->cache_epoch, memory_order_acquire);
}

/*
 * A read: from the cache if its slot holds the cluster as it is now (or
 * after the read loading it there, P_CWAIT). Else it loads what it needs:
 * a whole cluster straight into the request's memory, or the whole cluster
 * into its slot (the reads that come back to it find it there), or, when
 * the slot is being filled with another cluster, its pages alone.
 */
static void read_start(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	struct czq *z = czq_of(cz, q);
	struct cslot *slot = cache_slot(z, j->cluster);
	uint8_t *mem = j->in_len == cz->cluster ? req_span(j->s, j->req_off, j->in_len) : NULL;
	bool fill;

	if (slot->state != C_EMPTY && slot_current(cz, slot, j->cluster)) {
		if (slot->state == C_FILLING) {
			j->slot = slot;
			cz_park_job(z, j, P_CWAIT);
			return;
		}
		uc_iov_copy(j->s->iov, j->s->nr_iov, j->req_off, slot->data + j->in_off, j->in_len, true);
		atomic_fetch_add_explicit(&z->cache_hits, 1, memory_order_relaxed);
		cz_job_done(n, cz, q, j);
		return;
	}
	j->slot = NULL;
	j->out = j->plain;
	j->mem = NULL;
	/* a whole cluster loads straight into the request (page aligned: raw extents are read there) */
	if (mem && !((uintptr_t)mem % CZ_BLOCK))
		j->out = j->mem = mem;
	fill = !j->mem && slot->state != C_FILLING;
	j->pfirst = fill ? 0 : j->in_off / CZ_PAGE;
	j->plast = fill ? cz->ppc - 1 : (j->in_off + j->in_len - 1) / CZ_PAGE;
	pthread_mutex_lock(&cz->lock);
	load_sample(cz, j);
	/* a cluster holding nothing but zeroes is not worth a slot */
	if (fill && (cz_has_data(&j->old) || cz->ovn[j->cluster] > cz->ovz[j->cluster])) {
		*slot = (struct cslot){ .cluster = j->cluster, .state = C_FILLING, .data = slot->data,
					.gen = atomic_load_explicit(&cz->gen[j->cluster], memory_order_relaxed),
					.epoch = atomic_load_explicit(&cz->cache_epoch, memory_order_relaxed) };
		j->slot = slot;
		j->filling = true;
		j->out = slot->data;
	} else if (fill) {
		j->pfirst = j->in_off / CZ_PAGE;
		j->plast = (j->in_off + j->in_len - 1) / CZ_PAGE;
	}
	pthread_mutex_unlock(&cz->lock);
	load_start(n, cz, q, j);
}

/* A read waiting for a slot being filled: goes on once it is filled (or the fill failed). */
static void read_resume(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	if (j->slot->state == C_FILLING && j->slot->cluster == j->cluster)
		cz_park_job(czq_of(cz, q), j, P_CWAIT);
	else
		read_start(n, cz, q, j);
}

static void job_start(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	if (j->op == J_READ)
		read_start(n, cz, q, j);
	else if (j->mode == M_PAGES)
		cz_pages_start(n, cz, q, j);
	else
		job_lock(n, cz, q, j);
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
				   .req_off = start - s->off, .plain = j->plain, .out = j->plain,
				   .in = j->plain, .comp = j->comp, .pg = j->pg,
				   .op = s->op == UC_OP_READ ? J_READ : s->op == UC_OP_WRITE ? J_WRITE :
					 s->op == UC_OP_FOLD ? J_FOLD : J_ZERO };
		if ((j->op == J_WRITE || j->op == J_ZERO) && cz_pages_fit(cz, j))
			j->mode = M_PAGES;
		uc_sub_get(s);	/* the job's reference */
		job_start(n, cz, q, j);
	}
}

/* A child I/O of a job finished (or its internal read): its next step. */
static void job_io_done(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j,
			int err, unsigned int copy)
{
	switch (j->phase) {
	case P_LOAD_BASE:
	case P_LOAD_FRAGS:
		j->copy = copy;
		if (err) {
			cz_work_done_err(n, cz, q, j, err);
			return;
		}
		cz_work(n, cz, q, j, j->phase == P_LOAD_BASE ? W_DECODE : W_FRAGS);
		return;
	case P_REPAIR:
		/* the read succeeded: a failed rewrite is only noted */
		if (err)
			uc_warn("%s: cluster %" PRIu64 ": rewriting the extent failed: %s", n->name,
				j->cluster, strerror(-err));
		load_frags(n, cz, q, j);
		return;
	case P_WRITE:
		if (err) {
			/* never mapped: the blocks go back at once */
			pthread_mutex_lock(&cz->lock);
			cz_space_release(&cz->space, cz_pblk(&j->neu), cz_nblk(&j->neu));
			pthread_mutex_unlock(&cz->lock);
			cz_job_fail(n, cz, q, j, err);
		} else {
			job_map(n, cz, q, j);
		}
		return;
	}
}

void compress_child_end(struct uc_node *n, struct uc_queue *q, struct uc_sub *s,
			struct uc_sub *cs)
{
	struct cz *cz = n->priv;
	struct czq *z = czq_of(cz, q);

	(void)s;
	/* a pack's write goes as a child of one of its jobs' requests */
	if ((uintptr_t)cs->pctx >= (uintptr_t)z->packs &&
	    (uintptr_t)cs->pctx < (uintptr_t)(z->packs + PACKS))
		cz_pack_written(n, cz, q, cs->pctx, cs->result);
	else
		job_io_done(n, cz, q, cs->pctx, cs->result, cs->copy);
}

/* A read's error before any check: as if the checks failed with it. */
void cz_work_done_err(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j, int err)
{
	if (j->phase == P_LOAD_BASE)
		base_read_done(n, cz, q, j, err);
	else
		frags_read_done(n, cz, q, j, err);
}

/* Job j's CPU work is done (cz_work): what comes next. */
void cz_work_done(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	switch (j->work) {
	case W_COMPRESS:
		cz_job_place(n, cz, q, j);
		break;
	case W_DECODE:
		base_read_done(n, cz, q, j, j->wres);
		break;
	case W_FRAGS:
		frags_read_done(n, cz, q, j, j->wres);
		break;
	case W_PAGES:
		cz_pages_compressed(n, cz, q, j);
		break;
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
				cz_job_done(n, cz, q, j);
			else
				cz_park_job(z, j, P_JWAIT);
		} else if (cz_dead(cz) && j->phase != P_LOCK && j->phase != P_PMAP &&
			   j->phase != P_PACKWAIT) {
			/* a job waiting for the cluster does not hold it: it finds out in job_map */
			cz_job_fail(n, cz, q, j, -EIO);
		} else if (j->phase == P_IOWAIT) {
			j->phase = j->resume;
			job_read(q, cz, j);
		} else if (j->phase == P_LOCK) {
			job_lock(n, cz, q, j);
		} else if (j->phase == P_CWAIT) {
			read_resume(n, cz, q, j);
		} else if (j->phase == P_MAP) {
			job_map(n, cz, q, j);
		} else if (j->phase == P_PMAP || j->phase == P_PACKWAIT) {
			cz_pages_resume(n, cz, q, j);
		} else if (cz_space_waited(cz, j->wcommit, j->wfolds)) {
			cz_job_place(n, cz, q, j);	/* P_SPACE: space may have come back */
		} else {
			cz_park_job(z, j, P_SPACE);
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
