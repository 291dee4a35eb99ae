/* SPDX-License-Identifier: MIT */
/*
 * The compress layer's page writes: a write (or discard) of whole 4K
 * pages that covers only part of a cluster stores each page on its own
 * instead of rewriting the cluster. Each page is compressed alone; the
 * fragments of the jobs of a queue are packed byte by byte into a pack,
 * written to fresh blocks with one child write, and then each job maps its
 * pages (one journal entry each) and is done once that entry is written.
 * Nothing is read first, and writes to one cluster need not wait for each
 * other: the map keeps whichever page write was mapped last.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>
#include "compress_int.h"
#include "events.h"
#include "log.h"

static unsigned int job_pages(const struct job *j)
{
	return j->plast - j->pfirst + 1;
}

/* ---- space: what page writes hold twice comes back by folds ---- */

/* nblk free blocks in a row, keeping the folds' reserve for folds. Lock held. */
uint64_t cz_alloc(struct cz *cz, unsigned int nblk, bool fold)
{
	if (!fold && cz->space.nr_blocks - cz->space.used < nblk + cz->space_reserve)
		return UINT64_MAX;
	return cz_space_alloc(&cz->space, nblk);
}

/* Up to max free blocks in a row (at least one), keeping the folds' reserve for folds. Lock held. */
uint64_t cz_alloc_upto(struct cz *cz, unsigned int max, unsigned int *got, bool fold)
{
	uint64_t avail = cz->space.nr_blocks - cz->space.used, keep = fold ? 0 : cz->space_reserve;

	if (avail <= keep)
		return UINT64_MAX;
	if (max > avail - keep)
		max = avail - keep;
	return cz_space_alloc_upto(&cz->space, max, got);
}

/* Is free space low: page writes stop, folds start. Lock held. */
bool cz_space_low(const struct cz *cz)
{
	return cz->space.nr_blocks - cz->space.used <=
	       cz->space.nr_blocks / 16 + cz->space_reserve + cz->pack_cap / CZ_BLOCK;
}

/*
 * No room: is waiting worth it? Yes while frees are on their way (a commit
 * makes them reusable), a fold runs, or pages stored alone could be folded
 * (no page writes start while space is low, so those run out); then
 * *wcommit and *wfolds say what to wait for (cz_space_waited). No (or
 * after SPACE_WAITS, a bound that is not meant to be reached): ENOSPC.
 * Lock held.
 */
bool cz_space_hope(struct cz *cz, uint16_t *waits, uint64_t *wcommit, uint64_t *wfolds)
{
	if (*waits >= SPACE_WAITS ||
	    (!cz->frees[0].n && !cz->frees[1].n && !cz->folds && !cz->ov_count))
		return false;
	(*waits)++;
	*wcommit = cz_commit_needed(cz);
	*wfolds = atomic_load(&cz->folds_done);
	return true;
}

/* The commit is done, and a fold finished if one was running. */
bool cz_space_waited(struct cz *cz, uint64_t wcommit, uint64_t wfolds)
{
	return atomic_load(&cz->commit_done) >= wcommit &&
	       (!cz->folds || atomic_load(&cz->folds_done) != wfolds);
}

static void fold_done(struct uc_queue *q, struct uc_io *io, int res)
{
	struct uc_node *n = io->arg;
	struct cz *cz = n->priv;

	(void)q;
	if (res < 0 && res != -ENOSPC)
		uc_warn("%s: folding a cluster failed: %s", n->name, strerror(-res));
	pthread_mutex_lock(&cz->lock);
	/* no room even for a fold: no more folds until blocks come back */
	if (res == -ENOSPC)
		cz->fold_stall = cz->space.nr_blocks - cz->space.used;
	else if (!res)
		cz->fold_stall = 0;
	cz->folds--;
	pthread_mutex_unlock(&cz->lock);
	atomic_fetch_add(&cz->folds_done, 1);
	uc_graph_kick(n->graph);	/* writes waiting for space, on any queue */
}

/*
 * The cluster with the most pages stored alone (that no base write holds)
 * among the next 1024 from the cursor; or UINT64_MAX.
 */
static uint64_t fold_victim(struct cz *cz)
{
	uint64_t best = UINT64_MAX;

	for (unsigned int i = 0; i < 1024 && i < cz->nclusters; i++) {
		uint64_t c = cz->fold_cursor;

		cz->fold_cursor = (c + 1) % cz->nclusters;
		if (cz->ovn[c] && !atomic_load(&cz->busy[c]) &&
		    (best == UINT64_MAX || cz->ovn[c] > cz->ovn[best]))
			best = c;
	}
	return best;
}

/*
 * Should folds run: space is low or in pieces, or the page table fills;
 * and no fold found itself without space since the last blocks came back.
 * Lock held.
 */
static bool fold_wanted(const struct cz *cz)
{
	return cz->ov_count && cz->space.nr_blocks - cz->space.used > cz->fold_stall &&
	       (cz_space_low(cz) || cz->space_short ||
		cz->ov_count + cz->ov_reserved > cz->ov_cap - cz->ov_cap / 8);
}

/*
 * Has no request come for idle_ns (every queue's count unchanged)? Then
 * folds give back what pages stored alone hold twice, so that the space is
 * there before the next burst needs it. A poll that sees the count move
 * only notes it (no clock: busy turns pay nothing more); the first poll
 * after it stops (a completion brings one) starts the clock and has q
 * poll again when the volume would be idle long enough. Lock held.
 */
static bool fold_idle(struct cz *cz, struct uc_queue *q)
{
	uint64_t reqs = 0, now;
	struct timespec ts;

	/* nothing held twice, no free waiting for a commit or readers: nothing to wake for */
	if (!cz->idle_ns || (!cz->ov_count && !cz->frees[0].n && !cz->frees[1].n))
		return false;
	for (unsigned int i = 0; i < cz->g->dev.queues; i++)
		reqs += atomic_load_explicit(&cz->q[i]->reqs, memory_order_relaxed);
	if (reqs != cz->idle_reqs) {
		cz->idle_reqs = reqs;
		cz->idle_at = 0;
		return false;
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (!cz->idle_at)
		cz->idle_at = now;
	if (now - cz->idle_at < cz->idle_ns) {
		uc_queue_poll_in(q, cz->idle_ns - (now - cz->idle_at));
		return false;
	}
	return true;
}

/*
 * When space is low (or the page table fills), or the volume is idle,
 * clusters with pages stored alone are stored whole again (their old base
 * copy and fragment blocks come back, their table entries go), a few at a
 * time, as internal requests of the layer to itself.
 */
void cz_fold_poll(struct uc_node *n, struct cz *cz, struct uc_queue *q)
{
	struct uc_io *io;
	uint64_t c;
	bool idle;

	if (!uc_queue_may_start_work(q) || cz_dead(cz))
		return;
	pthread_mutex_lock(&cz->lock);
	idle = fold_idle(cz, q);
	while (cz->folds < FOLDS && (io = uc_internal_get(q)) &&
	       ((idle && cz->ov_count && cz->space.nr_blocks - cz->space.used > cz->fold_stall) ||
		fold_wanted(cz))) {
		if ((c = fold_victim(cz)) == UINT64_MAX) {
			/* none among the next 1024 clusters: look further at the next turn */
			if (idle && cz->ov_count)
				uc_queue_poll_in(q, 1000000);
			break;
		}
		cz->folds++;
		if (idle && !fold_wanted(cz))
			atomic_fetch_add(&cz->idle_folds, 1);
		pthread_mutex_unlock(&cz->lock);
		uc_internal_start(q, io, n, UC_OP_FOLD, 0, c << cz->cluster_shift, cz->cluster,
				  fold_done, n);
		pthread_mutex_lock(&cz->lock);
	}
	/*
	 * Idle and the folds done: commit, for the blocks they freed (and any
	 * other frees) are reusable, and no longer counted, only once durable.
	 */
	if (idle && !cz->folds && cz->frees[0].n && cz->cstate == C_IDLE && cz->kstate == K_NONE)
		cz_commit_needed(cz);
	/* durable frees go back at a later poll (cz_release_ready): make sure there is one */
	if (idle && cz->frees[1].n)
		uc_queue_poll_in(q, 1000000);
	pthread_mutex_unlock(&cz->lock);
}

/*
 * Can j store its pages alone? Whole pages of part of a cluster, space to
 * spare (near the end a cluster is stored whole again, which gives back
 * what its base and fragments hold twice), and room in the page table,
 * which is reserved for j here.
 */
bool cz_pages_fit(struct cz *cz, struct job *j)
{
	unsigned int k = j->in_len / CZ_PAGE;
	bool ok;

	if (j->in_len == cz->cluster || j->in_off % CZ_PAGE || j->in_len % CZ_PAGE)
		return false;
	pthread_mutex_lock(&cz->lock);
	ok = !cz_space_low(cz) && cz->ov_count + cz->ov_reserved + k <= cz->ov_cap;
	if (ok)
		cz->ov_reserved += k;
	pthread_mutex_unlock(&cz->lock);
	return ok;
}

/* The hold's blocks are let go: those no fragment uses are free once that is durable. Lock held. */
static void hold_release(struct cz *cz, struct czq *z, uint32_t h)
{
	struct hold *d = &z->holds[h];

	for (unsigned int i = 0; i < d->nblk; i++)
		cz_block_unref(cz, d->pblk + i, cz->appended);
	d->next_free = z->free_hold;
	z->free_hold = h;
}

/* j no longer keeps the blocks of its fragments held (its pages were placed in order). Lock held. */
static void holds_leave(struct cz *cz, struct czq *z, struct job *j)
{
	uint32_t last = UINT32_MAX;

	for (unsigned int pg = j->pfirst; pg < j->pcur; pg++) {
		uint32_t h = j->pg[pg].hold;

		if (!cz_has_data(&j->pg[pg].e) || h == last)
			continue;
		last = h;
		if (!--z->holds[h].unmapped)
			hold_release(cz, z, h);
	}
	j->pcur = j->pfirst;
}

/* A page job ends with err: its reservation and its holds go. */
static void pages_fail(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j, int err)
{
	pthread_mutex_lock(&cz->lock);
	cz->ov_reserved -= job_pages(j);
	holds_leave(cz, czq_of(cz, q), j);
	pthread_mutex_unlock(&cz->lock);
	cz_job_fail(n, cz, q, j, err);
}

/*
 * If every page of cluster c is stored alone, its base copy holds nothing
 * anyone reads: it goes. If they are all zero, the cluster becomes zero
 * (unless a base write holds it: its copy began before them). Lock held;
 * the caller's journal room covers one more entry.
 */
static void base_unused(struct cz *cz, uint64_t c)
{
	struct cz_jent e = { .cluster = c, .e = { 0 } };
	uint64_t entry;

	if (cz->ovn[c] < cz->ppc)
		return;
	if (cz->ovz[c] == cz->ppc && !atomic_load(&cz->busy[c])) {
		e.type = CZ_J_BASE_CLEAR;
		e.s = cz->appended;
		entry = cz_journal_add(cz, &e);
		cz_set_base(cz, c, &e.e, true, e.s, entry, true);
	} else if (cz_has_data(&cz->map[c])) {
		e.type = CZ_J_BASE;
		entry = cz_journal_add(cz, &e);
		cz_set_base(cz, c, &e.e, false, 0, entry, true);
	}
}

/* j's pages are written (or zero): they go into the map and the journal. */
static void pages_map(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	unsigned int k = job_pages(j), frees;

	pthread_mutex_lock(&cz->lock);
	if (cz_dead(cz)) {
		pthread_mutex_unlock(&cz->lock);
		pages_fail(n, cz, q, j, -EIO);
		return;
	}
	/* frees: each page's old fragment (two blocks), the base, the blocks of its holds */
	frees = 2 * k + 2 + k * cz->pack_cap / CZ_BLOCK;
	if (!cz_journal_room(cz, k + 1, frees)) {
		cz_map_blocked(cz, frees);
		pthread_mutex_unlock(&cz->lock);
		cz_park_job(czq_of(cz, q), j, P_PMAP);
		return;
	}
	for (unsigned int pg = j->pfirst; pg <= j->plast; pg++) {
		struct cz_jent e = { .cluster = j->cluster, .type = CZ_J_PAGE, .page = pg,
				     .e = j->pg[pg].e };
		const struct cz_ov *o;
		uint64_t entry;
		int ret;

		/* a base write's pages: a page stored alone since it began stays on top */
		if (j->conv && (o = cz_ov_find(cz, j->cluster * cz->ppc + pg)) && o->stamp > j->S)
			continue;
		entry = cz_journal_add(cz, &e);
		ret = cz_set_page(cz, j->cluster, pg, &e.e, entry, entry, true);
		assert(!ret);	/* room was reserved in cz_pages_fit() or cz_pages_convert() */
		(void)ret;
	}
	cz->ov_reserved -= k;
	base_unused(cz, j->cluster);
	holds_leave(cz, czq_of(cz, q), j);
	cz_map_changed(cz);
	j->jent = cz->appended;
	pthread_mutex_unlock(&cz->lock);
	cz_job_unlock(cz, j);
	atomic_fetch_add(&cz->page_writes, 1);
	cz_park_job(czq_of(cz, q), j, P_JWAIT);
}

/* j waits for no pack any more: it maps its pages, or fails with what went wrong. */
static void pages_packed(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	if (j->err)
		pages_fail(n, cz, q, j, j->err);
	else
		pages_map(n, cz, q, j);
}

/* ---- packs ---- */

/*
 * A pack for j's next fragment: a free buffer, a hold, and a run of blocks
 * (as long as it can be, up to pack_cap; one block will do). NULL: j is
 * parked (every buffer is being written, or no space yet), or has failed
 * with ENOSPC.
 */
static struct pack *pack_open(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	struct czq *z = czq_of(cz, q);
	struct pack *p = NULL;
	unsigned int got = 0;
	uint64_t pblk;
	uint32_t h;

	for (unsigned int i = 0; i < PACKS && !p; i++)
		if (!z->packs[i].used)
			p = &z->packs[i];
	if (!p) {
		j->spacewait = false;
		cz_park_job(z, j, P_PACKWAIT);	/* every pack is being written */
		return NULL;
	}
	pthread_mutex_lock(&cz->lock);
	pblk = cz_alloc_upto(cz, cz->pack_cap / CZ_BLOCK, &got, j->op == J_FOLD);
	uc_event_space(n, cz->space.used * CZ_BLOCK, cz->sb.data_blocks * CZ_BLOCK);
	if (pblk == UINT64_MAX) {
		/* a fold never waits for space: writers waiting for space wait for it */
		bool hope = j->op != J_FOLD &&
			    cz_space_hope(cz, &j->space_waits, &j->wcommit, &j->wfolds);

		pthread_mutex_unlock(&cz->lock);
		if (hope) {
			j->spacewait = true;
			cz_park_job(z, j, P_PACKWAIT);
		} else {
			j->err = -ENOSPC;
			j->phase = P_PACK;
			if (!j->npacks)
				pages_fail(n, cz, q, j, -ENOSPC);
		}
		return NULL;
	}
	for (unsigned int i = 0; i < got; i++)
		cz->refs[pblk + i] = 1;	/* the hold, until its jobs have mapped */
	pthread_mutex_unlock(&cz->lock);
	/* a job has fragments in at most one hold per page: there is always a free one */
	h = z->free_hold;
	assert(h != UINT32_MAX);
	z->free_hold = z->holds[h].next_free;
	z->holds[h] = (struct hold){ .pblk = pblk, .nblk = got };
	*p = (struct pack){ .buf = p->buf, .cap = got * CZ_BLOCK, .pblk = pblk, .hold = h, .used = true };
	z->open = p;
	return p;
}

/*
 * Write the pack: the blocks it fills (the rest of its run goes back), as
 * a child I/O of one of its jobs' requests (which all wait for it).
 */
static void pack_flush(struct cz *cz, struct uc_queue *q, struct pack *p)
{
	struct czq *z = czq_of(cz, q);
	struct hold *d = &z->holds[p->hold];
	struct uc_sub *s = p->jobs[0]->s, *cs;
	unsigned int nblk = (p->fill + CZ_BLOCK - 1) / CZ_BLOCK;

	if (z->open == p)
		z->open = NULL;
	if (nblk < d->nblk) {
		pthread_mutex_lock(&cz->lock);
		for (unsigned int i = nblk; i < d->nblk; i++)
			cz->refs[p->pblk + i] = 0;
		cz_space_release(&cz->space, p->pblk + nblk, d->nblk - nblk);
		pthread_mutex_unlock(&cz->lock);
		d->nblk = nblk;
	}
	memset(p->buf + p->fill, 0, (size_t)nblk * CZ_BLOCK - p->fill);
	s->mask++;	/* one of the child subs counted for its cluster's write */
	cs = uc_child_prep(q, s, 0, blk_off(cz->sb.data_off + p->pblk), (uint64_t)nblk * CZ_BLOCK);
	cs->op = UC_OP_WRITE;
	cs->flags = 0;
	cs->copy = 0;
	cs->iov[0] = (struct iovec){ p->buf, (uint64_t)nblk * CZ_BLOCK };
	cs->nr_iov = 1;
	cs->pctx = p;
	uc_child_issue(q, cs);
}

/*
 * The pack's write is over: its buffer is free; its jobs map their pages
 * once all their packs are written.
 */
void cz_pack_written(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct pack *p, int err)
{
	unsigned int nr = p->nr_jobs;

	if (err)
		uc_warn("%s: writing %u blocks of page fragments failed: %s", n->name,
			czq_of(cz, q)->holds[p->hold].nblk, strerror(-err));
	else
		atomic_fetch_add(&cz->packs_written, 1);
	p->used = false;
	for (unsigned int i = 0; i < nr; i++) {
		struct job *j = p->jobs[i];

		if (err && !j->err)
			j->err = err;
		if (!--j->npacks && j->phase == P_PACK)
			pages_packed(n, cz, q, j);
	}
}

/*
 * j's pages are compressed (W_PAGES): their bytes go into packs, from page
 * pcur on; each fragment's place is known as it goes in (its pack's run).
 */
static void pack_add(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	struct czq *z = czq_of(cz, q);

	for (; j->pcur <= j->plast; j->pcur++) {
		struct jpage *g = &j->pg[j->pcur];
		const uint8_t *src = (cz_kind(&g->e) == CZ_RAW ? j->in : j->comp) + g->src;
		struct pack *p = z->open;

		if (!cz_has_data(&g->e))
			continue;
		if (p && p->fill + g->e.clen > p->cap) {
			pack_flush(cz, q, p);
			p = NULL;
		}
		if (!p && !(p = pack_open(n, cz, q, j)))
			return;
		memcpy(p->buf + p->fill, src, g->e.clen);
		g->e.loc = cz_loc(p->pblk + p->fill / CZ_BLOCK, p->fill % CZ_BLOCK, cz_kind(&g->e));
		g->hold = p->hold;
		p->fill += g->e.clen;
		if (!p->nr_jobs || p->jobs[p->nr_jobs - 1] != j) {
			/* its first fragment here (a job's fragments go in one after the other) */
			p->jobs[p->nr_jobs++] = j;
			j->npacks++;
			z->holds[p->hold].unmapped++;
		}
	}
	j->phase = P_PACK;
	if (!j->npacks)
		pages_map(n, cz, q, j);	/* all zero: nothing to write */
	else if (z->open && z->open->fill >= PACK_BYTES)
		pack_flush(cz, q, z->open);
}

/* ---- the page job ---- */

/*
 * A base write (or fold) found no run of free blocks for its copy: when
 * the free blocks would hold it, and the page table has room, its pages
 * are stored alone instead (packs take single blocks), and the base copy
 * goes once every page has its own fragment. Returns false if not.
 */
bool cz_pages_convert(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	bool ok;

	if (j->op == J_FOLD)
		return false;	/* it would store the same pages alone again */
	pthread_mutex_lock(&cz->lock);
	ok = cz->space.nr_blocks - cz->space.used >= cz_nblk(&j->neu) + cz->space_reserve + 2 &&
	     cz->ov_count + cz->ov_reserved + cz->ppc <= cz->ov_cap;
	if (ok)
		cz->ov_reserved += cz->ppc;
	pthread_mutex_unlock(&cz->lock);
	if (!ok)
		return false;
	j->conv = true;
	j->mode = M_PAGES;
	j->pfirst = j->pcur = 0;
	j->plast = cz->ppc - 1;
	j->npacks = 0;
	czq_of(cz, q)->compressing++;
	cz_work(n, cz, q, j, W_PAGES);
	return true;
}

/* Start j (M_PAGES, room reserved): zeroes map at once; data is compressed page by page. */
void cz_pages_start(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	j->pfirst = j->in_off / CZ_PAGE;
	j->plast = (j->in_off + j->in_len) / CZ_PAGE - 1;
	if (j->op == J_ZERO) {
		for (unsigned int pg = j->pfirst; pg <= j->plast; pg++)
			j->pg[pg].e = (struct cz_entry){ cz_loc(0, 0, CZ_ZERO), 0, 0 };
		pages_map(n, cz, q, j);
		return;
	}
	uc_iov_copy(j->s->iov, j->s->nr_iov, j->req_off, j->plain + j->in_off, j->in_len, false);
	j->pcur = j->pfirst;
	czq_of(cz, q)->compressing++;
	cz_work(n, cz, q, j, W_PAGES);
}

void cz_pages_compressed(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	czq_of(cz, q)->compressing--;
	pack_add(n, cz, q, j);
}

/* A parked page job tries again (P_PMAP: journal room; P_PACKWAIT: a pack, or space). */
void cz_pages_resume(struct uc_node *n, struct cz *cz, struct uc_queue *q, struct job *j)
{
	if (j->phase == P_PMAP) {
		pages_map(n, cz, q, j);
	} else if (cz_dead(cz)) {
		j->err = -EIO;
		j->phase = P_PACK;
		if (!j->npacks)
			pages_packed(n, cz, q, j);
	} else if (j->spacewait && !cz_space_waited(cz, j->wcommit, j->wfolds)) {
		cz_park_job(czq_of(cz, q), j, P_PACKWAIT);
	} else {
		pack_add(n, cz, q, j);
	}
}

/*
 * Once per loop turn, after the workers' results went in: the open pack is
 * written when no page of this queue is still being compressed (else it
 * waits for them, and packs fuller).
 */
void cz_pages_poll(struct cz *cz, struct czq *z, struct uc_queue *q)
{
	if (z->open && !z->compressing)
		pack_flush(cz, q, z->open);
}
