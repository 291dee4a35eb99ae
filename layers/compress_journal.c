/* SPDX-License-Identifier: MIT */
/*
 * The compress layer's journal of map changes, its commits (FLUSH) and
 * checkpoints, run from the queues' poll. See docs/compress-format.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include "compress_int.h"
#include "log.h"

/* ---- journal and frees (lock held) ---- */

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
 * Room for n more map changes that free at most frees extents? Else the
 * caller parks: the journal writer frees memory, a checkpoint frees the
 * ring, a commit frees the free list.
 */
bool cz_journal_room(struct cz *cz, unsigned int n, unsigned int frees)
{
	struct jblock *b = jopen(cz);
	uint64_t blocks, have = 0;

	if (cz->kstate != K_NONE || cz->frees[0].n + frees > FREES_MAX)
		return false;
	if (b && b->n == CZ_J_PER_BLOCK)
		jseal(cz);
	if ((b = jopen(cz)))
		have = CZ_J_PER_BLOCK - b->n;
	/* new blocks need room in memory and slots in the ring */
	blocks = JBUF - cz->jb_n;
	if (blocks > cz->sb.journal_blocks - 1 - cz->jused)
		blocks = cz->sb.journal_blocks - 1 - cz->jused;
	return have + blocks * CZ_J_PER_BLOCK >= n;
}

/* Append a map change (cz_journal_room() said yes). Returns its entry number + 1. */
uint64_t cz_journal_add(struct cz *cz, const struct cz_jent *e)
{
	struct jblock *b = jopen(cz);

	if (b && b->n == CZ_J_PER_BLOCK) {
		b->sealed = true;
		b = NULL;
	}
	if (!b) {
		b = jblock(cz, cz->jb_n++);
		*b = (struct jblock){ .seq = cz->jseq++, .slot = cz->jslot, .first = cz->appended };
		cz->jslot = (cz->jslot + 1) % cz->sb.journal_blocks;
		cz->jused++;
	}
	b->e[b->n++] = *e;
	return ++cz->appended;
}

/* Blocks [pblk, pblk+nblk) are no longer used once the change numbered entry (+1) is durable. */
void cz_free_later(struct cz *cz, uint64_t pblk, unsigned int nblk, uint64_t entry)
{
	struct free_list *f = &cz->frees[0];

	assert(f->n < FREES_MAX);
	f->e[f->n++] = (struct cz_free){ .pblk = pblk, .entry = entry, .nblk = nblk };
}

/* Durable frees go back to the allocator once no read that could still use them runs. */
void cz_release_ready(struct cz *cz)
{
	struct free_list *r = &cz->frees[1];
	unsigned int k = 0;
	bool newer = false;

	if (!r->n || atomic_load(&cz->rcount[(cz->rgen - 1) & 1]))
		return;
	/* every read that began before generation rgen is over */
	for (unsigned int i = 0; i < r->n; i++) {
		if (r->e[i].rgen < cz->rgen) {
			cz_space_release(&cz->space, r->e[i].pblk, r->e[i].nblk);
		} else {
			r->e[k++] = r->e[i];
			newer = true;
		}
	}
	r->n = k;
	/* reads from now on count apart: the rest waits only for those before */
	if (newer)
		cz->rgen++;
}

/* A read takes the current grace slot: blocks freed from now on wait for it. */
void cz_read_pin(struct cz *cz, struct job *j)
{
	j->rslot = cz->rgen & 1;
	j->pinned = true;
	atomic_fetch_add(&cz->rcount[j->rslot], 1);
}

void cz_read_unpin(struct cz *cz, struct job *j)
{
	if (j->pinned)
		atomic_fetch_sub(&cz->rcount[j->rslot], 1);
	j->pinned = false;
}

/* Frees whose entry is durable move to the ready list (room permitting: the rest waits). */
static void make_ready(struct cz *cz)
{
	struct free_list *f = &cz->frees[0], *r = &cz->frees[1];
	uint64_t durable = atomic_load(&cz->durable);
	unsigned int k = 0;

	cz_release_ready(cz);
	for (unsigned int i = 0; i < f->n; i++) {
		if (f->e[i].entry <= durable && r->n < FREES_MAX) {
			r->e[r->n] = f->e[i];
			r->e[r->n++].rgen = cz->rgen;
		} else {
			f->e[k++] = f->e[i];
		}
	}
	f->n = k;
	cz_release_ready(cz);
}

/*
 * The commit that makes every map change so far durable: its id, starting
 * one if none runs. commit_done >= the id means done (at once if nothing
 * is pending).
 */
uint64_t cz_commit_needed(struct cz *cz)
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
void cz_journal_poll(struct uc_node *n, struct cz *cz, struct uc_queue *q)
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
bool cz_commit_poll(struct uc_node *n, struct cz *cz, struct uc_queue *q)
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
void cz_ckpt_finish(struct uc_node *n, struct cz *cz)
{
	cz->sb.gen++;
	cz->sb.ckpt_area ^= 1;
	cz->sb.ckpt_id++;
	cz->sb.ckpt_seq = cz->jseq - 1;
	cz->sb.journal_head = cz->jslot;
	cz->sb.ckpt_pages = cz->ov_count;
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

/* A checkpoint starts: the map blocks, then the page records as they are now. */
void cz_ckpt_begin(struct cz *cz)
{
	cz->kpos = 0;
	cz->kslot = 0;
	cz->kpages = (cz->ov_count + CZ_PG_PER_BLOCK - 1) / CZ_PG_PER_BLOCK;
}

static void ckpt_encode_pages(struct cz *cz, uint8_t *block, uint32_t index)
{
	struct cz_prec r[CZ_PG_PER_BLOCK];
	unsigned int n = 0;

	for (; n < CZ_PG_PER_BLOCK && cz->kslot <= cz->ov_mask; cz->kslot++) {
		const struct cz_ov *o = &cz->ov[cz->kslot];

		if (o->key)
			r[n++] = (struct cz_prec){ o->key - 1, o->e, o->stamp };
	}
	cz_pages_encode(block, r, n, cz->sb.ckpt_id + 1, index);
}

/*
 * The checkpoint's next run of blocks, encoded into buf (CKPT_RUN bytes), in
 * order: its place on the child in *dst. Returns its block count, 0 when
 * everything is written.
 */
unsigned int cz_ckpt_next(struct cz *cz, uint8_t *buf, uint64_t *dst)
{
	unsigned int area = cz->sb.ckpt_area ^ 1, nr = CKPT_RUN / CZ_BLOCK;
	uint64_t from = cz->kpos, m = cz->sb.map_blocks;

	if (from < m) {
		if (nr > m - from)
			nr = m - from;
		for (unsigned int i = 0; i < nr; i++) {
			uint64_t first = (from + i) * CZ_MAP_PER_BLOCK;
			unsigned int cnt = cz->nclusters - first < CZ_MAP_PER_BLOCK ?
					   cz->nclusters - first : CZ_MAP_PER_BLOCK;

			cz_map_encode(buf + (size_t)i * CZ_BLOCK, &cz->map[first], cnt,
				      cz->sb.ckpt_id + 1, from + i);
		}
		*dst = cz->sb.map_off + area * m + from;
	} else {
		if (nr > m + cz->kpages - from)
			nr = m + cz->kpages - from;
		for (unsigned int i = 0; i < nr; i++)
			ckpt_encode_pages(cz, buf + (size_t)i * CZ_BLOCK, from - m + i);
		*dst = cz->sb.pages_off + area * cz->sb.page_blocks + from - m;
	}
	cz->kpos += nr;
	return nr;
}

/* The superblock that the checkpoint being written makes current. */
void cz_ckpt_sb(const struct cz *cz, uint8_t *block, bool clean)
{
	struct cz_sb sb = cz->sb;

	sb.gen++;
	sb.ckpt_area ^= 1;
	sb.ckpt_id++;
	sb.ckpt_seq = cz->jseq - 1;
	sb.journal_head = cz->jslot;
	sb.ckpt_pages = cz->ov_count;
	sb.flags = clean ? CZ_SB_CLEAN : 0;
	sb.level = cz->level;
	cz_sb_encode(&sb, block);
}

bool cz_ckpt_poll(struct uc_node *n, struct cz *cz, struct uc_queue *q)
{
	struct uc_io *io;

	switch (cz->kstate) {
	case K_WAIT:
		/* map changes wait; a commit and a journal write under way finish first */
		if (cz->cstate != C_IDLE || cz->jw_inflight)
			return true;
		cz_ckpt_begin(cz);
		cz->kstate = K_MAP;
		/* fall through */
	case K_MAP:
		while (cz->kpos < cz->sb.map_blocks + cz->kpages && (io = uc_internal_get(q))) {
			uint64_t dst;
			unsigned int nr = cz_ckpt_next(cz, io->buf, &dst);

			cz->kinflight++;
			pthread_mutex_unlock(&cz->lock);
			uc_internal_start(q, io, n->children[0], UC_OP_WRITE, 0, blk_off(dst),
					  (uint64_t)nr * CZ_BLOCK, ckpt_written, n);
			pthread_mutex_lock(&cz->lock);
		}
		if (cz->kpos < cz->sb.map_blocks + cz->kpages || cz->kinflight ||
		    !(io = uc_internal_get(q)))
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
		cz_ckpt_sb(cz, io->buf, false);
		pthread_mutex_unlock(&cz->lock);
		uc_internal_start(q, io, n->children[0], UC_OP_WRITE, UC_F_FUA,
				  blk_off((cz->sb.gen + 1) % 2), CZ_BLOCK, ckpt_written, n);
		pthread_mutex_lock(&cz->lock);
		return true;
	case K_SB:
		if (cz->kinflight)
			return true;
		if (!cz_dead(cz))
			cz_ckpt_finish(n, cz);
		else
			cz->kstate = K_NONE;
		uc_graph_kick(n->graph);
		return true;
	}
	return false;
}
