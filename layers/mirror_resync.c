/* SPDX-License-Identifier: MIT */
/*
 * mirror: background work, on queue 0, one window at a time: read repairs
 * first, then a scrub or the resync. A window is locked (writes that overlap
 * it park) and waits for the writes already in flight there before its
 * internal request starts. Also here: clearing bitmap bits of idle regions.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include "events.h"
#include "log.h"
#include "mirror.h"

/*
 * A leg to read RESYNC window s from: in sync, not tried yet, and holding
 * the range (no bad record over it); the one bg_pick chose if it can. A
 * repair does not read from the leg it repairs; a resync may read from an
 * in-sync target (after an unclean stop any in-sync leg's copy will do).
 * Returns -1 if no leg is left.
 */
static int rs_read_source(struct mirror *m, const struct uc_sub *s)
{
	uint32_t ok = in_sync_legs(m) & ~TRIED(s) & ~mirror_bad_legs(m, s->off, s->len);

	if (m->bg_is_repair)
		ok &= ~m->bg_targets;
	if (ok & (1U << m->bg_src))
		return m->bg_src;
	return ok ? __builtin_ctz(ok) : -1;
}

static void rs_read(struct mirror *m, struct uc_queue *q, struct uc_sub *s, unsigned int leg)
{
	struct uc_sub *cs;

	s->state = PH_RS_READ | leg << 8;
	s->mask |= 1U << leg;
	cs = uc_child_prep(q, s, leg, s->off + m->data_off, s->len);
	cs->op = UC_OP_READ;
	cs->iov[0] = s->iov[0];
	cs->nr_iov = 1;
	uc_child_issue(q, cs);
}

/*
 * Children of RESYNC: the window just read goes to every live target and,
 * as md's fix_sync_read_error does, over every in-sync leg that failed to
 * read it; not back to the leg it came from. s->scratch: the legs written.
 */
static void resync_write(struct mirror *m, struct uc_queue *q, struct uc_sub *s)
{
	uint32_t to = (m->bg_targets | (FAILED(s) & in_sync_legs(m))) & ~(1U << LEG_OF(s));

	s->state = PH_RS_WRITE;
	s->mask &= 0xffff;	/* only the writes' failures count from here */
	s->scratch = 0;
	for (unsigned int i = 0; i < m->nr; i++) {
		struct uc_sub *cs;

		if (!(to & (1U << i)) || !leg_live(m, i))
			continue;
		s->mask |= 1U << i;
		s->scratch |= 1U << i;
		cs = uc_child_prep(q, s, i, s->off + m->data_off, s->len);
		cs->op = UC_OP_WRITE;
		cs->iov[0] = s->iov[0];
		cs->nr_iov = 1;
		uc_child_issue(q, cs);
	}
}

static void scrub_record(struct mirror *m, uint64_t off, uint64_t len, uint32_t legs,
			 unsigned int good)
{
	struct mismatch *last = m->nr_scrub ? &m->scrub[m->nr_scrub - 1] : NULL;

	m->scrub_bad += len;
	if (last && last->off + last->len == off && last->legs == legs && last->good == good)
		last->len += len;
	else if (m->nr_scrub < SCRUB_MAX)
		m->scrub[m->nr_scrub++] = (struct mismatch){ off, len, legs, good };
}

/*
 * Every copy of the window is in; compare them 4K by 4K. The good copy of a
 * block is the one most legs agree on (ties: the lowest in-sync leg). With
 * --repair the good blocks are gathered after the copies and written over
 * each leg that differed anywhere in the window.
 */
static void scrub_compare(struct uc_node *n, struct mirror *m, struct uc_queue *q, struct uc_sub *s)
{
	uint8_t *buf = s->io->buf, *good_buf = buf + m->nr * m->scrub_win;
	uint32_t legs = TRIED(s) & ~FAILED(s), rewrite = FAILED(s) & TRIED(s);

	pthread_mutex_lock(&m->lock);
	m->scrub_unreadable += FAILED(s) ? s->len : 0;
	for (uint64_t b = 0; b < s->len; b += 4096) {
		uint64_t bl = s->len - b < 4096 ? s->len - b : 4096;
		unsigned int good = m->nr, best = 0;
		uint32_t differ = 0;

		for (unsigned int i = 0; i < m->nr; i++) {
			unsigned int agree = 0;

			if (!(legs & (1U << i)))
				continue;
			for (unsigned int k = 0; k < m->nr; k++)
				if ((legs & (1U << k)) &&
				    !memcmp(buf + i * m->scrub_win + b, buf + k * m->scrub_win + b, bl))
					agree++;
			if (good == m->nr || agree > best) {
				good = i;
				best = agree;
			}
		}
		if (good == m->nr)
			break;	/* no copy readable: nothing to compare or repair */
		for (unsigned int i = 0; i < m->nr; i++)
			if ((legs & (1U << i)) &&
			    memcmp(buf + i * m->scrub_win + b, buf + good * m->scrub_win + b, bl))
				differ |= 1U << i;
		if (differ)
			scrub_record(m, s->off + b, bl, differ, good);
		rewrite |= differ;
		memcpy(good_buf + b, buf + good * m->scrub_win + b, bl);
	}
	if (!m->scrub_repair || !rewrite || !legs) {
		pthread_mutex_unlock(&m->lock);
		s->state = PH_DONE;
		return;
	}
	m->scrub_fixed += s->len * __builtin_popcount(rewrite);
	pthread_mutex_unlock(&m->lock);
	s->state = PH_SC_WRITE;
	s->mask &= 0xffff;
	for (unsigned int i = 0; i < m->nr; i++) {
		struct uc_sub *cs;

		if (!(rewrite & (1U << i)) || !leg_live(m, i))
			continue;
		cs = uc_child_prep(q, s, i, s->off + m->data_off, s->len);
		cs->op = UC_OP_WRITE;
		cs->iov[0] = (struct iovec){ good_buf, s->len };
		cs->nr_iov = 1;
		uc_child_issue(q, cs);
	}
	(void)n;
}

void mirror_bg_submit(struct mirror *m, struct uc_queue *q, struct uc_sub *s)
{
	int leg;

	switch (s->op) {
	case UC_OP_SCRUB:
		s->state = PH_SC_READ;
		s->mask = m->scrub_legs;
		for (unsigned int i = 0; i < m->nr; i++) {
			struct uc_sub *cs;

			if (!(m->scrub_legs & (1U << i)))
				continue;
			cs = uc_child_prep(q, s, i, s->off + m->data_off, s->len);
			cs->op = UC_OP_READ;
			cs->iov[0] = (struct iovec){ (char *)s->io->buf + i * m->scrub_win, s->len };
			cs->nr_iov = 1;
			uc_child_issue(q, cs);
		}
		break;
	case UC_OP_RESYNC:
		s->iov[0] = (struct iovec){ s->io->buf, s->len };
		s->nr_iov = 1;
		s->mask = 0;
		leg = rs_read_source(m, s);
		if (leg < 0)
			uc_sub_error(s, -EIO);	/* every in-sync leg has the range recorded bad */
		else
			rs_read(m, q, s, leg);
		break;
	}
}

int mirror_bg_end(struct uc_node *n, struct mirror *m, struct uc_queue *q, struct uc_sub *s)
{
	uint32_t failed = FAILED(s);
	int leg;

	switch (PHASE(s)) {
	case PH_RS_READ:
		if (failed & (1U << LEG_OF(s))) {
			/* the source could not read it: the next in-sync leg that can */
			leg = rs_read_source(m, s);
			if (leg < 0) {
				uc_sub_error(s, -EIO);	/* bg_done goes on 4K at a time */
				return 0;
			}
			uc_sub_get(s);
			rs_read(m, q, s, leg);
			uc_sub_put(q, s);
			return UC_RESUBMITTED;
		}
		uc_sub_get(s);
		resync_write(m, q, s);
		uc_sub_put(q, s);
		return UC_RESUBMITTED;
	case PH_SC_READ:
		uc_sub_get(s);
		scrub_compare(n, m, q, s);
		uc_sub_put(q, s);
		return UC_RESUBMITTED;
	case PH_SC_WRITE:
	case PH_RS_WRITE:
		if (failed || (PHASE(s) == PH_RS_WRITE && atomic_load(&m->nr_bad))) {
			pthread_mutex_lock(&m->lock);
			for (unsigned int i = 0; i < m->nr; i++)
				if (failed & (1U << i))
					mirror_leg_fail(n, m, i, "resync write failed");
			/* the legs written hold the data now: bad ranges there drop them */
			if (PHASE(s) == PH_RS_WRITE)
				mirror_bad_clear(m, (uint32_t)s->scratch & ~failed, s->off, s->len);
			pthread_mutex_unlock(&m->lock);
		}
		return 0;
	default:
		return 0;
	}
}

/* ---- background: read repairs and resync windows, on queue 0 ---- */

static void resync_finish(struct uc_node *n, struct mirror *m)
{
	double secs = (now_ns() - m->rs_t0) / 1e9;
	char b[32];

	/* lock held */
	for (unsigned int i = 0; i < m->nr; i++) {
		uint32_t st = leg_state(m, i);

		if ((m->rs_targets & (1U << i)) && (st == LEG_REBUILDING || st == LEG_REBUILDING_FULL))
			atomic_store(&m->legs[i].state, LEG_IN_SYNC);
	}
	m->rs_active = false;
	m->meta_seq++;
	uc_info("%s: resync finished: %s copied in %.1f s", n->name,
		uc_size_str(m->rs_done, b, sizeof(b)), secs);
	uc_event(n, UC_EV_REBUILD_FINISHED, "%s copied in %.1f s", b, secs);
}

/* Window [lo, hi) is copied (or given up on): move on (lock held). */
static void resync_advance(struct uc_node *n, struct mirror *m, uint64_t lo, uint64_t hi)
{
	m->rs_pos = hi;
	m->rs_done += hi - lo;
	m->rs_bytes += hi - lo;
	if ((!(hi & ((1ULL << m->chunk_shift) - 1)) || hi >= n->size) &&
	    atomic_exchange(&m->need[chunk_of(m, lo)], 0))
		atomic_fetch_sub(&m->nr_need, 1);
	if (now_ns() - m->rs_last_ckpt > CKPT_NS) {
		m->rs_last_ckpt = now_ns();
		m->meta_seq++;	/* the superblock records rs_pos */
	}
}

/*
 * No in-sync leg could read window [lo, hi) (lock held). As md's resync:
 * retry it 4K at a time, and a 4K block no leg can read is skipped and
 * recorded as not held by the legs it was to be copied to, so that they
 * never serve it. Only a full table stops the resync (md stops when its
 * bad-block log is full).
 */
static void resync_unreadable(struct uc_node *n, struct mirror *m, uint64_t lo, uint64_t hi)
{
	uint32_t legs = m->bg_targets & live_legs(m);

	if (hi - lo > 4096 && m->rs_narrow_hi < hi) {
		m->rs_narrow_hi = hi;
		uc_warn("%s: resync: no in-sync leg could read %" PRIu64 "+%" PRIu64
			": going on 4K at a time", n->name, lo, hi - lo);
		return;
	}
	if (legs && mirror_bad_add(m, lo, hi - lo, legs)) {
		uc_err("%s: resync stopped at %" PRIu64 ": no leg could read it and the table of bad ranges is full (%d)",
		       n->name, lo, MIRROR_BAD_MAX);
		m->rs_active = false;
		return;
	}
	uc_err("%s: %" PRIu64 "+%" PRIu64 " could be read from no in-sync leg: lost; recorded bad on legs 0x%x, the resync goes on",
	       n->name, lo, hi - lo, legs);
	resync_advance(n, m, lo, hi);
}

static void bg_done(struct uc_queue *q, struct uc_io *io, int res)
{
	struct uc_node *n = io->arg;
	struct mirror *m = n->priv;
	uint64_t lo = atomic_load(&m->win_lo), hi = atomic_load(&m->win_hi);

	(void)q;
	pthread_mutex_lock(&m->lock);
	atomic_store(&m->win_lo, 0);
	atomic_store(&m->win_hi, 0);
	uc_wake(&m->window_wait);	/* writes parked on the window go on */
	m->bg_inflight = false;
	if (m->bg_is_scrub) {
		m->scrub_pos = hi;
		if (hi >= n->size)
			m->scrub_active = false;
	} else if (m->bg_is_repair) {
		if (res)
			uc_warn("%s: rewriting %" PRIu64 "+%" PRIu64 " on leg %u failed", n->name, lo,
				hi - lo, __builtin_ctz(m->bg_targets));
		else
			uc_info("%s: rewrote %" PRIu64 "+%" PRIu64 " on leg %u after a read error",
				n->name, lo, hi - lo, __builtin_ctz(m->bg_targets));
	} else if (res) {
		resync_unreadable(n, m, lo, hi);
	} else {
		resync_advance(n, m, lo, hi);
	}
	pthread_mutex_unlock(&m->lock);
}

/* Next window to copy (lock held). Returns false when there is none now. */
static bool bg_pick(struct uc_node *n, struct mirror *m, uint64_t *lo, uint64_t *hi)
{
	if (m->rq_head != m->rq_tail) {
		struct repair *r = &m->repairs[m->rq_head++ % REPAIRS];

		if (!leg_live(m, r->dst) || leg_state(m, r->src) != LEG_IN_SYNC)
			return false;
		m->bg_is_repair = true;
		m->bg_src = r->src;
		m->bg_targets = 1U << r->dst;
		*lo = r->off;
		*hi = r->off + r->len;
		return true;
	}
	m->bg_is_scrub = false;
	if (!m->rs_active && m->scrub_active) {
		m->bg_is_repair = false;
		m->bg_is_scrub = true;
		*lo = m->scrub_pos;
		*hi = m->scrub_pos + m->scrub_win > n->size ? n->size : m->scrub_pos + m->scrub_win;
		/* a leg with a bad range in the window is no copy of it: not compared, not rewritten */
		m->scrub_legs = in_sync_legs(m) & ~mirror_bad_legs_locked(m, *lo, *hi - *lo);
		return true;
	}
	if (!m->rs_active)
		return false;
	while (m->rs_pos < n->size && !atomic_load(&m->need[chunk_of(m, m->rs_pos)]))
		m->rs_pos = ((uint64_t)chunk_of(m, m->rs_pos) + 1) << m->chunk_shift;
	if (m->rs_pos >= n->size) {
		resync_finish(n, m);
		return false;
	}
	if (m->resync_rate && m->rs_bytes > m->resync_rate * ((now_ns() - m->rs_t0) / 1e9) + m->window)
		return false;	/* over the rate: wait */
	if (leg_state(m, m->rs_source) != LEG_IN_SYNC) {
		unsigned int i;

		for (i = 0; i < m->nr && leg_state(m, i) != LEG_IN_SYNC; i++)
			;
		if (i == m->nr) {
			m->rs_active = false;
			uc_err("%s: resync stopped: no in-sync leg", n->name);
			return false;
		}
		m->rs_source = i;
		m->rs_targets &= ~(1U << i);
	}
	m->bg_is_repair = false;
	m->bg_src = m->rs_source;
	m->bg_targets = m->rs_targets;
	*lo = m->rs_pos;
	if (m->rs_pos < m->rs_narrow_hi)
		*hi = m->rs_pos + 4096;	/* after a window no leg could read */
	else
		*hi = (m->rs_pos + m->window) & ~(m->window - 1);
	if (*hi > ((uint64_t)chunk_of(m, *lo) + 1) << m->chunk_shift)
		*hi = ((uint64_t)chunk_of(m, *lo) + 1) << m->chunk_shift;
	if (*hi > n->size)
		*hi = n->size;
	return true;
}

static bool window_drained(struct mirror *m)
{
	uint64_t lo = atomic_load(&m->win_lo), hi = atomic_load(&m->win_hi);

	for (uint64_t u = lo >> UNIT_SHIFT; u <= (hi - 1) >> UNIT_SHIFT; u++)
		if (atomic_load(&m->inflight[u]))
			return false;
	return true;
}

/*
 * Clear bits of regions idle since the last scan, when every leg is in sync.
 * While bits are set that a later scan may clear, the queue's polls run
 * again when that scan is due (uc_queue_poll_in: the queue sleeps until
 * then, no 1 ms timer). Returns true when bits were cleared: the metadata
 * write that makes it durable starts at the next poll. With a leg missing
 * or left unsynced (no resync running) no bit may clear: nothing to wake for
 * until a replace or an add starts a rebuild, which kicks the queues.
 */
static bool bits_clear_idle(struct mirror *m, struct uc_queue *q)
{
	uint64_t now;
	bool cleared = false;

	if (!atomic_load(&m->nr_bits) ||
	    (!atomic_load(&m->rs_active) && in_sync_legs(m) != (1U << m->nr) - 1))
		return false;
	now = now_ns();
	if (now - m->last_scan < CLEAR_IDLE_NS) {
		uc_queue_poll_in(q, CLEAR_IDLE_NS - (now - m->last_scan));
		return false;
	}
	m->last_scan = now;
	uc_queue_poll_in(q, CLEAR_IDLE_NS);
	pthread_mutex_lock(&m->lock);
	if (live_legs(m) != (1U << m->nr) - 1)
		goto out;	/* a faulty leg will need every bit written meanwhile */
	/* legs being rebuilt get every write: a region the resync is done with agrees on all legs */
	for (unsigned int i = 0; i < m->nr; i++)
		if (leg_state(m, i) != LEG_IN_SYNC && !(m->rs_active && (m->rs_targets & (1U << i))))
			goto out;
	for (uint64_t c = 0; c < m->nbits; c++) {
		uint64_t u0 = (c << m->chunk_shift) >> UNIT_SHIFT;
		uint64_t u1 = (((c + 1) << m->chunk_shift) - 1) >> UNIT_SHIFT;
		bool busy = false;

		if (atomic_exchange(&m->touched[c], 0) || !atomic_load(&m->bits[c]) ||
		    atomic_load(&m->need[c]))
			continue;
		atomic_store(&m->bits[c], 0);
		/* a writer counts itself in flight before it looks at the bit */
		for (uint64_t u = u0; u <= u1 && u < m->nunits && !busy; u++)
			busy = atomic_load(&m->inflight[u]);
		if (busy) {
			atomic_store(&m->bits[c], 1);	/* never written cleared: still durable */
		} else {
			cleared = true;
			atomic_fetch_sub(&m->nr_bits, 1);
		}
	}
	if (cleared) {
		m->clearing = true;
		m->meta_seq++;
	}
out:
	pthread_mutex_unlock(&m->lock);
	return cleared;
}

/*
 * Leg i was lost (an unreachable leg, failed while its layers said so) and
 * they say it is back: it gets writes again, and the resync copies it what
 * the bitmap says was written while it was out (bits are not cleared while a
 * leg is out), as for a faulty leg back at start. Lock held.
 */
static void rejoin_leg(struct uc_node *n, struct mirror *m, unsigned int i)
{
	uint64_t more = 0;
	char b[32];

	leg_keep_out(m, i);
	for (uint64_t c = 0; c < m->nbits; c++)
		if (atomic_load(&m->bits[c]) && !atomic_load(&m->need[c])) {
			/* 2: the bit stays set on disk until the chunk is copied */
			atomic_store(&m->need[c], 2);
			atomic_fetch_add(&m->nr_need, 1);
			more += 1ULL << m->chunk_shift;
		}
	if (!atomic_load(&m->nr_need) && !m->rs_active) {
		/* nothing was written while it was out */
		atomic_store(&m->legs[i].state, LEG_IN_SYNC);
		m->meta_seq++;
		uc_info("%s: leg %u (%s) is back: in sync (nothing written meanwhile)", n->name, i,
			n->children[i]->name);
		return;
	}
	atomic_store(&m->legs[i].state, LEG_REBUILDING);
	m->rs_targets |= 1U << i;
	if (!m->rs_active) {
		m->rs_total = 0;
		m->rs_done = 0;
		m->rs_bytes = 0;
		m->rs_t0 = m->rs_last_ckpt = now_ns();
		m->rs_source = __builtin_ctz(in_sync_legs(m));
	}
	/* from the start: a resync under way has passed chunks this leg needs too */
	m->rs_total += more;
	if (m->rs_total > n->size)
		m->rs_total = n->size;
	m->rs_pos = 0;
	m->rs_narrow_hi = 0;
	m->rs_active = true;
	m->meta_seq++;
	uc_info("%s: leg %u (%s) is back: re-added", n->name, i, n->children[i]->name);
	uc_info("%s: resync of %s from leg %u to legs 0x%x (from the bitmap: written while it was out)",
		n->name, uc_size_str(more, b, sizeof(b)), m->rs_source, m->rs_targets);
}

void mirror_rejoin(struct uc_node *n, struct mirror *m)
{
	pthread_mutex_lock(&m->lock);
	for (unsigned int i = 0; i < m->nr; i++)
		/* once it is recorded faulty, and there is a leg to copy from */
		if (m->legs[i].lost && leg_state(m, i) == LEG_FAULTY && !atomic_load(&m->failed) &&
		    in_sync_legs(m) && atomic_load(&m->meta_done) >= m->legs[i].faulty_seq &&
		    subtree_health(n->children[i]) == UC_HEALTH_CLEAN)
			rejoin_leg(n, m, i);
	pthread_mutex_unlock(&m->lock);
}

bool mirror_bg_poll(struct uc_node *n, struct mirror *m, struct uc_queue *q)
{
	struct uc_io *io;
	uint64_t lo, hi;

	if (m->bg_inflight)
		return false;	/* its CQEs wake this queue */
	if (!uc_queue_may_start_work(q)) {
		/*
		 * Pausing (`add`) or stopping: a window picked but not started
		 * must not stay locked, or the writes parked on it never end and
		 * the pause cannot drain. It is locked again afterwards.
		 */
		if (m->bg_draining) {
			m->held_lo = atomic_load(&m->win_lo);
			m->held_hi = atomic_load(&m->win_hi);
			atomic_store(&m->win_lo, 0);
			atomic_store(&m->win_hi, 0);
			uc_wake(&m->window_wait);
			m->bg_draining = false;
			m->bg_held = true;
		}
		return false;
	}
	/* a leaf that comes back kicks the queues (nbd): this is when the leg can rejoin */
	if (atomic_load(&m->nr_lost))
		mirror_rejoin(n, m);
	/*
	 * Every loop turn of queue 0: with no window, resync, scrub or repair
	 * there is nothing to pick (no lock), at most bits to clear.
	 */
	if (!m->bg_draining && !m->bg_held && !atomic_load(&m->rs_active) &&
	    !atomic_load(&m->scrub_active) && atomic_load(&m->rq_head) == atomic_load(&m->rq_tail))
		return bits_clear_idle(m, q);
	if (m->bg_held) {
		atomic_store(&m->win_lo, m->held_lo);
		atomic_store(&m->win_hi, m->held_hi);
		m->bg_held = false;
		m->bg_draining = true;
	}
	if (!m->bg_draining) {
		bool got;

		pthread_mutex_lock(&m->lock);
		got = !atomic_load(&m->failed) && bg_pick(n, m, &lo, &hi);
		if (got) {
			atomic_store(&m->win_lo, lo);
			atomic_store(&m->win_hi, hi);
			m->bg_draining = true;
		}
		pthread_mutex_unlock(&m->lock);
		if (!got)
			return bits_clear_idle(m, q) || m->rs_active || m->rq_head != m->rq_tail ||
			       m->scrub_active;
	}
	/* writes that were in flight in the window before it was locked finish first */
	if (!window_drained(m) || !(io = uc_internal_get(q)))
		return true;
	m->bg_draining = false;
	m->bg_inflight = true;
	lo = atomic_load(&m->win_lo);
	hi = atomic_load(&m->win_hi);
	uc_internal_start(q, io, n, m->bg_is_scrub ? UC_OP_SCRUB : UC_OP_RESYNC, 0, lo, hi - lo,
			  bg_done, n);
	return true;
}
