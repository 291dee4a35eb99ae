/* SPDX-License-Identifier: MIT */
/*
 * mirror: the request path. Writes count themselves in flight, wait for a
 * locked resync window and for their bitmap bits to be durable, then go to
 * every live leg; reads go to one in-sync leg and are retried on another,
 * the failing range queued for a rewrite. Metadata writes (one in flight,
 * a full snapshot each) and the subs parked for them are run from poll.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include "crc32c.h"
#include "events.h"
#include "log.h"
#include "mirror.h"

/*
 * ---- metadata snapshot (lock held): the bitmap at buf, then the superblock
 * of leg i at meta_sb(m, buf, i); leg i gets its superblock + the bitmap ----
 */
void mirror_meta_snapshot(struct mirror *m, uint8_t *buf, uint32_t legs, bool clean)
{
	struct mirror_sb *sb = &m->sb;
	uint8_t *bitmap = buf;

	sb->events++;
	if (m->clearing)
		sb->events_cleared = sb->events;
	m->clearing = false;
	sb->nr_legs = m->nr;
	sb->flags = clean ? MIRROR_SB_CLEAN : 0;
	sb->resync_pos = m->rs_active ? m->rs_pos : UINT64_MAX;
	sb->nr_bad = m->nr_bad;
	memcpy(sb->bad, m->bad, sizeof(sb->bad));
	for (unsigned int i = 0; i < m->nr; i++) {
		memcpy(sb->legs[i].uuid, m->legs[i].uuid, 16);
		sb->legs[i].state = leg_state(m, i);
		sb->legs[i].errors = atomic_load(&m->legs[i].errors);
	}
	memset(bitmap, 0, m->bitmap_bytes);
	for (uint64_t c = 0; c < m->nbits; c++)
		if (atomic_load(&m->bits[c]))
			bitmap[c / 8] |= 1 << (c % 8);
	sb->bitmap_crc = uc_crc32c(0, bitmap, m->bitmap_bytes);
	for (unsigned int i = 0; i < m->nr; i++) {
		if (!(legs & (1U << i)))
			continue;
		sb->leg_index = i;
		memcpy(sb->leg_uuid, m->legs[i].uuid, 16);
		mirror_sb_encode(sb, meta_sb(m, buf, i));
	}
}

/*
 * ---- parking: writes waiting for metadata or a window ----
 * On the engine's waits (uc_park): the queue that parked sleeps until a
 * waker says the condition may hold (meta_done moved, the mirror failed,
 * the window was released), then resumes them (mirror_resume). A parker
 * looks again after it is published, so a change just before is not lost.
 */
static bool window_hits(struct mirror *m, const struct uc_sub *s)
{
	uint64_t lo = atomic_load(&m->win_lo), hi = atomic_load(&m->win_hi);

	return lo < hi && s->off < hi && lo < s->off + s->len;
}

/* The metadata write that records s's failed legs faulty */
static uint64_t faulty_seq(struct mirror *m, const struct uc_sub *s)
{
	uint64_t need = 0;

	pthread_mutex_lock(&m->lock);
	for (unsigned int i = 0; i < m->nr; i++)
		if ((FAILED(s) & (1U << i)) && m->legs[i].faulty_seq > need)
			need = m->legs[i].faulty_seq;
	pthread_mutex_unlock(&m->lock);
	return need;
}

/* s waits for meta_done >= seq (PH_WAIT_BIT, PH_WAIT_FAULTY) or the window (PH_WAIT_WINDOW) */
static void park(struct mirror *m, struct uc_queue *q, struct uc_sub *s, enum phase ph,
		 uint64_t seq)
{
	struct uc_wait *w = ph == PH_WAIT_WINDOW ? &m->window_wait : &m->meta_wait;

	s->state = (s->state & ~0xffU) | ph;
	uc_park(q, w, s);
	if (atomic_load(&m->failed) ||
	    (ph == PH_WAIT_WINDOW ? !window_hits(m, s) : atomic_load(&m->meta_done) >= seq))
		uc_wake(w);
}

/*
 * Send s to leg i: [off, off + len) moved past the metadata, the same
 * iovecs (a leg takes as many as the mirror: mirror_child_max_iov).
 */
static void leg_submit(struct mirror *m, struct uc_queue *q, struct uc_sub *s, unsigned int i)
{
	struct uc_sub *cs = uc_child_prep(q, s, i, s->off + (s->len ? m->data_off : 0), s->len);

	memcpy(cs->iov, s->iov, s->nr_iov * sizeof(*s->iov));
	cs->nr_iov = s->nr_iov;
	cs->copy = 0;	/* a leg is one copy: its own layers choose freely */
	uc_child_issue(q, cs);
}

static void unit_range(const struct uc_sub *s, uint64_t *u0, uint64_t *u1)
{
	*u0 = s->off >> UNIT_SHIFT;
	*u1 = (s->off + s->len - 1) >> UNIT_SHIFT;
}

static void inflight_add(struct mirror *m, const struct uc_sub *s, int v)
{
	uint64_t u0, u1;

	if (!s->len)
		return;
	unit_range(s, &u0, &u1);
	for (uint64_t u = u0; u <= u1; u++)
		atomic_fetch_add(&m->inflight[u], v);
}

static uint64_t bits_needed_seq(struct mirror *m, const struct uc_sub *s)
{
	uint64_t need = 0;
	bool first = false;

	for (unsigned int c = chunk_of(m, s->off); s->len && c <= chunk_of(m, s->off + s->len - 1); c++) {
		uint64_t seq;

		if (!atomic_load(&m->touched[c]))
			atomic_store(&m->touched[c], 1);
		if (!atomic_load(&m->bits[c])) {
			pthread_mutex_lock(&m->lock);
			if (!atomic_load(&m->bits[c])) {
				atomic_store(&m->bit_seq[c], ++m->meta_seq);
				atomic_store(&m->bits[c], 1);
				first |= !atomic_fetch_add(&m->nr_bits, 1);
			}
			pthread_mutex_unlock(&m->lock);
		}
		seq = atomic_load(&m->bit_seq[c]);
		if (seq > need)
			need = seq;
	}
	/* queue 0 clears bits; asleep with none set, it schedules no scan: wake it (rare: 0 -> 1) */
	if (first)
		uc_graph_kick_queue(s->node->graph, 0);
	return need;
}

static void issue_writes(struct mirror *m, struct uc_queue *q, struct uc_sub *s)
{
	uint32_t legs = live_legs(m);

	s->state = PH_WRITE;
	s->mask = legs;
	for (unsigned int i = 0; i < m->nr; i++)
		if (legs & (1U << i))
			leg_submit(m, q, s, i);
}

/*
 * Writes: count in flight, back off from a locked window, make the bitmap
 * bits durable, then fan out. Called from submit and when a parked write
 * is resumed; parks s (taking a reference) when it has to wait.
 */
static void write_admit(struct mirror *m, struct uc_queue *q, struct uc_sub *s)
{
	uint64_t need;

	if (atomic_load(&m->failed)) {
		uc_sub_error(s, -EIO);
		return;
	}
	if (s->op == UC_OP_FLUSH) {
		issue_writes(m, q, s);
		return;
	}
	inflight_add(m, s, 1);
	if (window_hits(m, s)) {
		inflight_add(m, s, -1);
		park(m, q, s, PH_WAIT_WINDOW, 0);
		return;
	}
	need = bits_needed_seq(m, s);
	if (atomic_load(&m->meta_done) < need) {
		park(m, q, s, PH_WAIT_BIT, need);
		return;
	}
	issue_writes(m, q, s);
}

/* ---- reads ---- */

/* Some chunk of [off, off + len) is still to be copied by the resync. */
static bool range_unsynced(struct mirror *m, uint64_t off, uint64_t len)
{
	for (unsigned int c = chunk_of(m, off); c <= chunk_of(m, off + len - 1); c++)
		if (atomic_load(&m->need[c]))
			return true;
	return false;
}

/*
 * md's read_balance() for legs that do not seek (nonrot): a read that goes
 * on where the last read sent to a leg ended stays on that leg, until the
 * run is longer than the leg's io_opt (SEQ_RUN if it has none) and another
 * leg is idle; any other read goes to the leg with the fewest reads in
 * flight. Counted per queue: no state shared with other queue threads.
 */
static int balance(const struct mirror *m, const struct mirror_q *mq, const struct uc_node *n,
		   uint64_t off, uint32_t skip)
{
	unsigned int best_pending = UINT32_MAX;
	int best = -1, seq = -1;

	for (unsigned int i = 0; i < m->nr; i++) {
		unsigned int p = mq->pending[i];

		if ((skip & (1U << i)) || leg_state(m, i) != LEG_IN_SYNC)
			continue;
		if (mq->seq_next[i] == off) {
			uint64_t run = n->children[i]->io_opt ? n->children[i]->io_opt : SEQ_RUN;

			if (off - mq->seq_start[i] < run)
				return i;
			/* a long run: another leg if one is idle, else this one */
			p++;
			seq = i;
		}
		if (p < best_pending) {
			best = i;
			best_pending = p;
		}
	}
	return seq >= 0 && best_pending ? seq : best;
}

/* The read policy's choice among the in-sync legs not in skip, or -1. */
static int choose(const struct mirror *m, struct mirror_q *mq, const struct uc_sub *s, uint32_t skip)
{
	if (m->round_robin) {
		for (unsigned int k = 0; k < m->nr; k++) {
			unsigned int i = (mq->rr + k) % m->nr;

			if (!(skip & (1U << i)) && leg_state(m, i) == LEG_IN_SYNC) {
				mq->rr = i + 1;
				return i;
			}
		}
		return -1;
	}
	return balance(m, mq, s->node, s->off, skip);
}

/*
 * The leg to serve read s: in sync, not tried yet, and holding the range
 * (a leg with a bad range over it never serves it). Returns -1 if none.
 */
static int pick_read_leg(struct mirror *m, struct uc_queue *q, const struct uc_sub *s)
{
	uint32_t bad = s->len ? mirror_bad_legs(m, s->off, s->len) : 0, skip = TRIED(s) | bad;
	struct mirror_q *mq = &m->qs[q->id];
	unsigned int src;

	/* a caller that checks the data asks for each copy in turn: the k-th in-sync leg */
	if (s->copy) {
		for (unsigned int i = 0, k = 0; i < m->nr; i++)
			if (leg_state(m, i) == LEG_IN_SYNC && !(bad & (1U << i)) && ++k == s->copy)
				return TRIED(s) & (1U << i) ? -1 : (int)i;
		return -1;
	}

	/*
	 * A region a resync has still to copy reads from its source, for
	 * every chunk the read touches (md sends every read of unsynced
	 * sectors to one disk), also if the resync stopped.
	 */
	if (atomic_load(&m->nr_need) && s->len) {
		src = atomic_load(&m->rs_source);
		if (!(skip & (1U << src)) && leg_state(m, src) == LEG_IN_SYNC &&
		    range_unsynced(m, s->off, s->len))
			return src;
	}
	/* write-mostly legs serve only what no other leg can */
	if (m->write_mostly) {
		int leg = choose(m, mq, s, skip | m->write_mostly);

		return leg >= 0 ? leg : choose(m, mq, s, skip);
	}
	return choose(m, mq, s, skip);
}

static void issue_read(struct mirror *m, struct uc_queue *q, struct uc_sub *s, unsigned int leg)
{
	struct mirror_q *mq = &m->qs[q->id];

	s->state = PH_READ | leg << 8;
	s->mask |= 1U << leg;
	mq->pending[leg]++;
	if (mq->seq_next[leg] != s->off)
		mq->seq_start[leg] = s->off;
	mq->seq_next[leg] = s->off + s->len;
	leg_submit(m, q, s, leg);
}

/* ---- leg failure ---- */

void mirror_leg_fail(struct uc_node *n, struct mirror *m, unsigned int i, const char *why)
{
	uint32_t st = leg_state(m, i);

	/* lock held */
	if (st == LEG_FAULTY || st == LEG_MISSING)
		return;
	atomic_store(&m->legs[i].state, LEG_FAULTY);
	m->legs[i].faulty_seq = ++m->meta_seq;
	uc_err("%s: leg %u (%s) marked faulty: %s", n->name, i, n->children[i]->name, why);
	/* its layers say it cannot be reached (a lost connection): it comes back with them */
	if (!m->legs[i].lost && subtree_health(n->children[i]) != UC_HEALTH_CLEAN) {
		m->legs[i].lost = true;
		atomic_fetch_add(&m->nr_lost, 1);
		uc_info("%s: leg %u (%s) is unreachable: re-added when it is back", n->name, i,
			n->children[i]->name);
	}
	/*
	 * As md: with no In_sync leg left the array has failed, even if
	 * others are being rebuilt: they hold part of the data only.
	 */
	if (!in_sync_legs(m) && !atomic_load(&m->failed)) {
		atomic_store(&m->failed, true);
		uc_err("%s: no in-sync leg left: the mirror has failed", n->name);
		uc_wake(&m->meta_wait);	/* the parked writes fail */
		uc_wake(&m->window_wait);
	}
	/* unsynced regions read from the resync source: a new one at once */
	if (i == atomic_load(&m->rs_source) && in_sync_legs(m)) {
		unsigned int src = __builtin_ctz(in_sync_legs(m));

		atomic_store(&m->rs_source, src);
		m->rs_targets &= ~(1U << src);
	}
	/* last: the feed judges the health when it sees the event (Degraded, Failed) */
	uc_event(n->children[i], UC_EV_LEG_FAILED, "leg %u of %s marked faulty: %s", i, n->name, why);
}

static void repair_queue(struct mirror *m, uint64_t off, uint64_t len, unsigned int src,
			 unsigned int dst)
{
	pthread_mutex_lock(&m->lock);
	if (m->rq_tail - m->rq_head < REPAIRS)
		m->repairs[m->rq_tail++ % REPAIRS] = (struct repair){ off, len, src, dst };
	else
		atomic_fetch_add(&m->repair_dropped, 1);
	pthread_mutex_unlock(&m->lock);
}

/* ---- the layer's I/O ---- */

int mirror_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	struct mirror *m = n->priv;
	int leg;

	switch (s->op) {
	case UC_OP_READ:
		if (atomic_load(&m->failed))
			return -EIO;
		s->mask = 0;
		leg = pick_read_leg(m, q, s);
		if (leg < 0)
			return s->copy ? -ENODATA : -EIO;
		issue_read(m, q, s, leg);
		return 0;
	case UC_OP_WRITE:
	case UC_OP_FLUSH:
	case UC_OP_DISCARD:
	case UC_OP_WRITE_ZEROES:
		write_admit(m, q, s);
		return 0;
	case UC_OP_META:
		s->state = PH_META;
		s->mask = m->meta_legs;
		for (unsigned int i = 0; i < m->nr; i++) {
			struct uc_sub *cs;

			if (!(m->meta_legs & (1U << i)))
				continue;
			cs = uc_child_prep(q, s, i, 0, m->slot);
			cs->op = UC_OP_WRITE;
			cs->flags = UC_F_FUA;
			cs->iov[0] = (struct iovec){ meta_sb(m, s->io->buf, i), MIRROR_SB_SIZE };
			cs->iov[1] = (struct iovec){ s->io->buf, m->bitmap_bytes };
			cs->nr_iov = 2;
			uc_child_issue(q, cs);
		}
		return 0;
	case UC_OP_SCRUB:
	case UC_OP_RESYNC:
		mirror_bg_submit(m, q, s);
		return 0;
	}
	return -EOPNOTSUPP;
}

void mirror_child_end(struct uc_node *n, struct uc_queue *q, struct uc_sub *s,
			     struct uc_sub *cs)
{
	struct mirror *m = n->priv;

	if (PHASE(s) == PH_READ)
		m->qs[q->id].pending[cs->child]--;
	if (cs->result < 0 && cs->op == UC_OP_DISCARD) {
		/*
		 * md ignores discard errors: the leg keeps bytes the others
		 * dropped, which a discard allows. fstrim must not fail a leg
		 * that has no discard.
		 */
		if (!(atomic_fetch_or(&m->legs[cs->child].noted, NOTED_DISCARD) & NOTED_DISCARD))
			uc_warn("%s: leg %u (%s) failed a discard (%s): discard errors are ignored",
				n->name, cs->child, n->children[cs->child]->name, strerror(-cs->result));
		return;
	}
	if (cs->op == UC_OP_WRITE_ZEROES && (cs->result == -EOPNOTSUPP || cs->result == -EINVAL)) {
		/* the leg cannot do it (the file layer tried both ways): not an I/O error */
		if (!(atomic_fetch_or(&m->legs[cs->child].noted, NOTED_WRITE_ZEROES) & NOTED_WRITE_ZEROES))
			uc_warn("%s: leg %u (%s) cannot write zeroes (%s): such requests fail with EOPNOTSUPP and the kernel writes the zeroes instead",
				n->name, cs->child, n->children[cs->child]->name, strerror(-cs->result));
		s->scratch |= 1U << cs->child;
		return;
	}
	if (cs->result < 0) {
		s->mask |= 1U << (16 + cs->child);
		atomic_fetch_add(&m->legs[cs->child].errors, 1);
		uc_dbg("%s: %s on leg %u at %" PRIu64 "+%" PRIu64 ": %s", n->name,
		       cs->op == UC_OP_READ ? "read" : "write", cs->child, cs->off, cs->len,
		       strerror(-cs->result));
	}
}


int mirror_end(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	struct mirror *m = n->priv;
	uint32_t failed = FAILED(s), tried = TRIED(s);
	int leg;

	switch (PHASE(s)) {
	case PH_WRITE:
		if (s->op != UC_OP_FLUSH)
			inflight_add(m, s, -1);
		/*
		 * A leg that cannot write zeroes: the request fails as
		 * unsupported, no leg is blamed; the kernel's blkdev_issue_zeroout
		 * then writes zero pages (over every leg).
		 */
		if (s->scratch)
			uc_sub_error(s, -EOPNOTSUPP);
		/* a leg failed it, another took it: the failed ones are faulty (none if no leg took it) */
		if (failed && (tried & ~failed)) {
			pthread_mutex_lock(&m->lock);
			for (unsigned int i = 0; i < m->nr; i++)
				if (failed & (1U << i))
					mirror_leg_fail(n, m, i, s->op == UC_OP_FLUSH ? "flush failed" :
							"write failed");
			pthread_mutex_unlock(&m->lock);
		}
		/* acknowledged only if an in-sync leg holds it: a rebuilding leg cannot serve it back */
		if (atomic_load(&m->failed) || !(tried & ~failed & in_sync_legs(m))) {
			uc_sub_error(s, -EIO);
			return 0;
		}
		/* the legs that wrote it hold that range now: bad ranges there drop them */
		if (atomic_load(&m->nr_bad) && !s->result &&
		    (s->op == UC_OP_WRITE || s->op == UC_OP_WRITE_ZEROES)) {
			pthread_mutex_lock(&m->lock);
			mirror_bad_clear(m, tried & ~failed, s->off, s->len);
			pthread_mutex_unlock(&m->lock);
		}
		if (!failed)
			return 0;
		/* succeed only once the failed legs are recorded faulty on the others */
		park(m, q, s, PH_WAIT_FAULTY, faulty_seq(m, s));
		return UC_RESUBMITTED;
	case PH_READ:
		if (!(failed & (1U << LEG_OF(s)))) {
			for (unsigned int i = 0; i < m->nr; i++) {
				if (!(failed & (1U << i)))
					continue;
				/* md's read-error correction: rewrite from the leg that worked */
				atomic_fetch_add(&m->corrected, 1);
				repair_queue(m, s->off, s->len, LEG_OF(s), i);
				if (atomic_fetch_add(&m->legs[i].read_errors, 1) + 1 >= READ_ERRORS_MAX) {
					pthread_mutex_lock(&m->lock);
					mirror_leg_fail(n, m, i, "too many read errors");
					pthread_mutex_unlock(&m->lock);
				}
			}
			return 0;
		}
		leg = pick_read_leg(m, q, s);
		if (leg < 0) {
			uc_sub_error(s, -EIO);
			return 0;
		}
		uc_sub_get(s);
		issue_read(m, q, s, leg);
		uc_sub_put(q, s);
		return UC_RESUBMITTED;
	case PH_RS_READ:
	case PH_RS_WRITE:
	case PH_SC_READ:
	case PH_SC_WRITE:
		return mirror_bg_end(n, m, q, s);
	default:
		return 0;
	}
}

/* ---- metadata writes ---- */

static void meta_done(struct uc_queue *q, struct uc_io *io, int res)
{
	struct uc_node *n = io->arg;
	struct mirror *m = n->priv;
	uint32_t failed = FAILED(&io->subs[0]) & m->meta_legs;

	(void)q;
	(void)res;
	pthread_mutex_lock(&m->lock);
	m->meta_inflight = false;
	for (unsigned int i = 0; i < m->nr; i++)
		if (failed & (1U << i))
			mirror_leg_fail(n, m, i, "metadata write failed");
	/* durable only on a leg the next start can assemble from */
	if (m->meta_legs & ~failed & in_sync_legs(m))
		atomic_store(&m->meta_done, m->meta_issued);
	pthread_mutex_unlock(&m->lock);
	uc_wake(&m->meta_wait);
}

static bool meta_poll(struct uc_node *n, struct mirror *m, struct uc_queue *q)
{
	struct uc_io *io;
	bool pending;

	/* every loop turn of every queue: nothing to write, no lock */
	if (atomic_load(&m->meta_seq) <= atomic_load(&m->meta_done) || atomic_load(&m->failed))
		return false;
	pthread_mutex_lock(&m->lock);
	pending = m->meta_seq > atomic_load(&m->meta_done) && !atomic_load(&m->failed);
	/*
	 * One write in flight: its completion polls the queue that issued it,
	 * which writes what came meanwhile; parked writes are woken by it
	 * (meta_wait). Only a lack of internal requests asks to poll again.
	 */
	if (!pending || m->meta_inflight || !(io = uc_internal_get(q))) {
		pthread_mutex_unlock(&m->lock);
		return pending && !m->meta_inflight;
	}
	m->meta_inflight = true;
	m->meta_issued = m->meta_seq;
	m->meta_legs = live_legs(m);
	mirror_meta_snapshot(m, io->buf, m->meta_legs, false);
	pthread_mutex_unlock(&m->lock);
	uc_internal_start(q, io, n, UC_OP_META, 0, 0, 0, meta_done, n);
	return false;
}

/* ---- poll: resume parked subs, metadata, background ---- */

/* A parked write's wait is over (uc_wait): go on, fail, or park again. The engine drops the parking reference. */
void mirror_resume(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	struct mirror *m = n->priv;
	uint64_t need;

	switch (PHASE(s)) {
	case PH_WAIT_WINDOW:
		write_admit(m, q, s);
		break;
	case PH_WAIT_BIT:
		if (atomic_load(&m->failed)) {
			inflight_add(m, s, -1);
			uc_sub_error(s, -EIO);
		} else if (atomic_load(&m->meta_done) < (need = bits_needed_seq(m, s))) {
			park(m, q, s, PH_WAIT_BIT, need);
		} else {
			issue_writes(m, q, s);
		}
		break;
	case PH_WAIT_FAULTY:
		need = faulty_seq(m, s);
		if (atomic_load(&m->failed)) {
			uc_sub_error(s, -EIO);
			s->state = PH_DONE;
		} else if (atomic_load(&m->meta_done) < need) {
			park(m, q, s, PH_WAIT_FAULTY, need);
		} else {
			s->state = PH_DONE;
		}
		break;
	}
}

bool mirror_poll(struct uc_node *n, struct uc_queue *q)
{
	struct mirror *m = n->priv;
	bool again;

	if (!m->active)
		return false;
	again = meta_poll(n, m, q);
	if (q->id == 0)
		again |= mirror_bg_poll(n, m, q);	/* which starts nothing while pausing or stopping */
	return again;
}
