/* SPDX-License-Identifier: MIT */
/*
 * mirror: RAID1 over N children (legs), with md-style on-leg metadata.
 *
 *   { type = "mirror"; read_policy = "least-pending"; bitmap_chunk = "64M";
 *     resync_rate = "200M"; assume_clean = false; children = ( {...}, {...} ); }
 *   read_policy:  "least-pending" (default) or "round-robin"
 *   bitmap_chunk: bytes per write-intent bit, power of two >= 64K (default 64M)
 *   resync_rate:  bytes/s cap for background resync (default 200M; 0: no cap)
 *   assume_clean: legs that hold data but no superblock are taken as identical
 * Each leg starts with a superblock and the write-intent bitmap (see
 * mirror_meta.h, docs/mirror-format.md); data follows at data_offset.
 *
 * Writes go to every live leg once the bitmap bit of their region is durable;
 * a leg that fails a write is marked faulty (durably) and the request still
 * succeeds if another leg took it. Reads go to one in-sync leg; a failed read
 * is retried on another and the range is rewritten on the failing leg in the
 * background. Resync (unclean shutdown, a stale or new leg) runs on queue 0,
 * one window at a time: writes that overlap the window wait, and the window
 * waits for writes already in flight there.
 *
 * Shared state (all queues): leg states, the bitmap and metadata sequence
 * numbers, under m->lock or in atomics for the hot path.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include "crc32c.h"
#include "graph.h"
#include "io.h"
#include "log.h"
#include "mirror_meta.h"

#define UC_OP_META	(UC_OP_PRIVATE + 0)	/* internal: write superblock + bitmap to legs */
#define UC_OP_RESYNC	(UC_OP_PRIVATE + 1)	/* internal: copy a window from one leg to others */
#define UC_OP_SCRUB	(UC_OP_PRIVATE + 2)	/* internal: read a window from every leg, compare */
#define SCRUB_MAX	1024	/* mismatching ranges one scrub reports */
#define UNIT_SHIFT	20	/* write-in-flight counters per MiB */
#define READ_ERRORS_MAX	20	/* md's max_corrected_read_errors */
#define CLEAR_IDLE_NS	2000000000ULL	/* bitmap bits clear after 2 s without writes */
#define CKPT_NS		2000000000ULL	/* resync position saved every 2 s */
#define REPAIRS		64

enum phase {
	PH_NONE, PH_WRITE, PH_WAIT_WINDOW, PH_WAIT_BIT, PH_WAIT_FAULTY, PH_DONE, PH_READ,
	PH_RS_READ, PH_RS_WRITE, PH_META, PH_SC_READ, PH_SC_WRITE,
};

/* s->mask: low 16 bits legs issued/tried, high 16 bits legs that failed */
#define TRIED(s)	((s)->mask & 0xffff)
#define FAILED(s)	((s)->mask >> 16)
/* s->state: phase in the low byte, a leg number above */
#define PHASE(s)	((s)->state & 0xff)
#define LEG_OF(s)	((s)->state >> 8)

struct leg {
	_Atomic uint32_t state;	/* enum mirror_leg_state */
	uint8_t uuid[16];
	_Atomic uint64_t errors;
	_Atomic uint32_t read_errors;
	_Atomic int pending;	/* reads in flight: least-pending policy */
	uint64_t faulty_seq;	/* metadata sequence that records it faulty (lock) */
};

struct mismatch {
	uint64_t off, len;
	uint32_t legs;		/* legs that differ from the good copy */
	unsigned int good;
};

struct repair {
	uint64_t off, len;
	unsigned int src, dst;
};

struct mirror {
	/* config */
	unsigned int nr;
	bool round_robin, assume_clean;
	unsigned int chunk_shift;
	uint64_t resync_rate;
	uint64_t data_off, bitmap_bytes, nbits, slot, window;
	uint64_t ibuf;		/* bytes of an internal tag's buffer (n->internal_buf) */
	uint64_t scrub_win;	/* scrub window: every copy of it fits in ibuf */
	/* array state */
	pthread_mutex_t lock;
	struct mirror_sb sb;	/* array-wide fields of the superblock */
	struct leg legs[MIRROR_MAX_LEGS];
	_Atomic uint8_t *bits;	/* write-intent, one byte per chunk */
	_Atomic uint64_t *bit_seq;	/* metadata sequence that makes the bit durable */
	_Atomic uint8_t *touched;	/* written since the last clearing scan */
	_Atomic uint8_t *need;	/* chunks resync still has to copy */
	_Atomic uint32_t *inflight;	/* writes in flight per unit */
	uint64_t nunits;
	_Atomic bool failed;	/* no leg left: everything fails */
	bool active;		/* activated: metadata is ours to write */
	/* metadata writes: one in flight at a time, each a full snapshot */
	uint64_t meta_seq, meta_issued;
	_Atomic uint64_t meta_done;
	bool meta_inflight, clearing;
	uint32_t meta_legs;
	/* background work on queue 0: resync windows and read repairs */
	_Atomic uint64_t win_lo, win_hi;	/* locked window, empty when equal */
	bool bg_inflight, bg_draining, bg_is_repair, bg_is_scrub;
	unsigned int bg_src;
	uint32_t bg_targets;
	_Atomic bool rs_active;
	uint32_t rs_targets;
	_Atomic unsigned int rs_source;
	uint64_t rs_pos, rs_total, rs_done, rs_t0, rs_bytes, rs_last_ckpt;
	struct repair repairs[REPAIRS];
	unsigned int rq_head, rq_tail;
	uint64_t last_scan;
	/* scrub: started by the admin thread, run by queue 0 like resync */
	_Atomic bool scrub_active;
	bool scrub_repair, scrub_aborted;
	uint64_t scrub_pos, scrub_bad, scrub_fixed, scrub_unreadable;
	struct mismatch *scrub;
	unsigned int nr_scrub;
	uint32_t scrub_legs;
	_Atomic uint64_t corrected, repair_dropped;
	/* per queue (only that queue's thread touches its slot) */
	struct uc_sub *parked[UC_MAX_QUEUES + 1];
	unsigned int rr[UC_MAX_QUEUES + 1];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static uint32_t leg_state(const struct mirror *m, unsigned int i)
{
	return atomic_load(&m->legs[i].state);
}

static bool leg_live(const struct mirror *m, unsigned int i)
{
	uint32_t st = leg_state(m, i);

	return st != LEG_FAULTY && st != LEG_MISSING;
}

static uint32_t live_legs(const struct mirror *m)
{
	uint32_t mask = 0;

	for (unsigned int i = 0; i < m->nr; i++)
		if (leg_live(m, i))
			mask |= 1U << i;
	return mask;
}

/* ---- config ---- */

/* the keys parse accepts (ops.keys; ublk-compose.conf(5) documents each) */
static const char *const mirror_keys[] = { "type", "children", "read_policy", "bitmap_chunk",
					   "resync_rate", "assume_clean", NULL };

static int mirror_parse(struct uc_node *n, const config_setting_t *cfg)
{
	uint64_t chunk = 64ULL << 20, smallest = UINT64_MAX;
	const char *policy = "least-pending";
	struct mirror *m;
	int ret;

	if (uc_conf_check_keys(cfg, mirror_keys, "mirror"))
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	n->priv = m;
	m->resync_rate = 200ULL << 20;
	if ((ret = uc_conf_string(cfg, "read_policy", &policy)) < 0 ||
	    (ret = uc_conf_size(cfg, "bitmap_chunk", &chunk)) < 0 ||
	    (ret = uc_conf_size(cfg, "resync_rate", &m->resync_rate)) < 0 ||
	    (ret = uc_conf_bool(cfg, "assume_clean", &m->assume_clean)) < 0)
		return ret;
	if (strcmp(policy, "least-pending") && strcmp(policy, "round-robin"))
		return uc_conf_err(config_setting_get_member(cfg, "read_policy"),
				   "read_policy must be \"least-pending\" or \"round-robin\"");
	m->round_robin = !strcmp(policy, "round-robin");
	if (chunk < (64 << 10) || (chunk & (chunk - 1)))
		return uc_conf_err(config_setting_get_member(cfg, "bitmap_chunk"),
				   "mirror bitmap_chunk must be a power of two of at least 64K");
	m->chunk_shift = __builtin_ctzll(chunk);
	if ((ret = uc_node_parse_children(n, cfg, 2)))
		return ret;
	if (n->nr_children > MIRROR_MAX_LEGS)
		return uc_conf_err(cfg, "a mirror has at most %d legs", MIRROR_MAX_LEGS);
	m->nr = n->nr_children;
	n->can_discard = true;
	for (unsigned int i = 0; i < n->nr_children; i++) {
		if (n->children[i]->size < smallest)
			smallest = n->children[i]->size;
		n->can_discard &= n->children[i]->can_discard;
	}
	/* the bitmap covers the smallest leg; the data area is what is left after it */
	m->nbits = (smallest + chunk - 1) >> m->chunk_shift;
	m->bitmap_bytes = mirror_bitmap_bytes(m->nbits);
	if (m->bitmap_bytes > (1 << 20))
		return uc_conf_err(config_setting_get_member(cfg, "bitmap_chunk"),
				   "mirror bitmap_chunk too small for %" PRIu64 " bytes: the bitmap would exceed 1M",
				   smallest);
	m->data_off = (MIRROR_SB_SIZE + m->bitmap_bytes + (1 << 20) - 1) & ~((1ULL << 20) - 1);
	if (smallest < m->data_off + (1 << 20)) {
		char b[32];

		return uc_conf_err(cfg, "mirror leg of %s is too small (metadata takes %s)",
				   uc_size_str(smallest, b, sizeof(b)), uc_size_str(m->data_off, b + 16, 16));
	}
	n->size = (smallest - m->data_off) & ~4095ULL;
	m->nbits = (n->size + chunk - 1) >> m->chunk_shift;
	m->slot = MIRROR_SB_SIZE + m->bitmap_bytes;
	m->nunits = (n->size >> UNIT_SHIFT) + 1;
	n->io_min = n->children[0]->io_min;
	n->io_opt = n->children[0]->io_opt;
	/* resync/scrub window: what one internal request moves per leg */
	m->window = n->graph->dev.max_io < (1U << UNIT_SHIFT) ? n->graph->dev.max_io : 1U << UNIT_SHIFT;
	m->window = 1ULL << (63 - __builtin_clzll(m->window));
	/* one metadata write and one background request per queue */
	n->internal_ios = 2;
	/* metadata: the bitmap once, then a superblock per leg (room for `add`) */
	n->internal_buf = m->bitmap_bytes + MIRROR_MAX_LEGS * MIRROR_SB_SIZE;
	if (n->internal_buf < m->window * (m->nr + 1))
		n->internal_buf = m->window * (m->nr + 1);	/* scrub: every copy + the good one */
	m->ibuf = n->internal_buf;
	n->child_subs = 2;	/* scrub: a read and a repair write per leg */
	return 0;
}

/* Legs get the iovecs of the mirror's requests, and a metadata write takes two. */
static unsigned int mirror_child_max_iov(const struct uc_node *n, unsigned int max_iov,
					 uint32_t max_io)
{
	(void)n;
	(void)max_io;
	return max_iov < 2 ? 2 : max_iov;
}

static void mirror_free(struct mirror *m)
{
	free(m->bits);
	free(m->bit_seq);
	free(m->touched);
	free(m->need);
	free(m->inflight);
	free(m->scrub);
	free(m);
}

static void mirror_close(struct uc_node *n)
{
	struct mirror *m = n->priv;

	if (m) {
		if (m->bits)
			pthread_mutex_destroy(&m->lock);
		mirror_free(m);
	}
	n->priv = NULL;
}

static unsigned int chunk_of(const struct mirror *m, uint64_t off)
{
	return off >> m->chunk_shift;
}

/*
 * ---- metadata snapshot (lock held): the bitmap at buf, then the superblock
 * of leg i at meta_sb(m, buf, i); leg i gets its superblock + the bitmap ----
 */

static uint8_t *meta_sb(const struct mirror *m, uint8_t *buf, unsigned int i)
{
	return buf + m->bitmap_bytes + (size_t)i * MIRROR_SB_SIZE;
}

static void meta_snapshot(struct mirror *m, uint8_t *buf, uint32_t legs, bool clean)
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

/* ---- parking: subs waiting for metadata or a window, resumed by poll ---- */

static void park(struct mirror *m, struct uc_queue *q, struct uc_sub *s, enum phase ph)
{
	s->state = (s->state & ~0xffU) | ph;
	uc_sub_get(s);
	s->next = m->parked[q->id];
	m->parked[q->id] = s;
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

	for (unsigned int c = chunk_of(m, s->off); s->len && c <= chunk_of(m, s->off + s->len - 1); c++) {
		uint64_t seq;

		if (!atomic_load(&m->touched[c]))
			atomic_store(&m->touched[c], 1);
		if (!atomic_load(&m->bits[c])) {
			pthread_mutex_lock(&m->lock);
			if (!atomic_load(&m->bits[c])) {
				atomic_store(&m->bit_seq[c], ++m->meta_seq);
				atomic_store(&m->bits[c], 1);
			}
			pthread_mutex_unlock(&m->lock);
		}
		seq = atomic_load(&m->bit_seq[c]);
		if (seq > need)
			need = seq;
	}
	return need;
}

static void issue_writes(struct mirror *m, struct uc_queue *q, struct uc_sub *s)
{
	uint32_t legs = live_legs(m);

	s->state = PH_WRITE;
	s->mask = legs;
	for (unsigned int i = 0; i < m->nr; i++)
		if (legs & (1U << i))
			uc_child_submit(q, s, i, s->off + (s->len ? m->data_off : 0), s->len, s->iov,
					s->nr_iov);
}

/*
 * Writes: count in flight, back off from a locked window, make the bitmap
 * bits durable, then fan out. Called from submit and when a parked write
 * is resumed; parks s (taking a reference) when it has to wait.
 */
static void write_admit(struct mirror *m, struct uc_queue *q, struct uc_sub *s)
{
	uint64_t lo, hi;

	if (atomic_load(&m->failed)) {
		uc_sub_error(s, -EIO);
		return;
	}
	if (s->op == UC_OP_FLUSH) {
		issue_writes(m, q, s);
		return;
	}
	inflight_add(m, s, 1);
	lo = atomic_load(&m->win_lo);
	hi = atomic_load(&m->win_hi);
	if (lo < hi && s->off < hi && lo < s->off + s->len) {
		inflight_add(m, s, -1);
		park(m, q, s, PH_WAIT_WINDOW);
		return;
	}
	if (atomic_load(&m->meta_done) < bits_needed_seq(m, s)) {
		park(m, q, s, PH_WAIT_BIT);
		return;
	}
	issue_writes(m, q, s);
}

/* ---- reads ---- */

static int pick_read_leg(struct mirror *m, struct uc_queue *q, const struct uc_sub *s)
{
	int best = -1, best_pending = 0;

	/* a caller that checks the data asks for each copy in turn: the k-th in-sync leg */
	if (s->copy) {
		for (unsigned int i = 0, k = 0; i < m->nr; i++)
			if (leg_state(m, i) == LEG_IN_SYNC && ++k == s->copy)
				return TRIED(s) & (1U << i) ? -1 : (int)i;
		return -1;
	}

	/* a region an unclean shutdown left unsynced reads from the resync source */
	if (m->rs_active && s->len && !(TRIED(s) & (1U << m->rs_source)) &&
	    leg_state(m, m->rs_source) == LEG_IN_SYNC &&
	    atomic_load(&m->need[chunk_of(m, s->off)]))
		return m->rs_source;
	for (unsigned int k = 0; k < m->nr; k++) {
		unsigned int i = m->round_robin ? (m->rr[q->id] + k) % m->nr : k;
		int p;

		if ((TRIED(s) & (1U << i)) || leg_state(m, i) != LEG_IN_SYNC)
			continue;
		if (m->round_robin) {
			m->rr[q->id] = i + 1;
			return i;
		}
		p = atomic_load(&m->legs[i].pending);
		if (best < 0 || p < best_pending) {
			best = i;
			best_pending = p;
		}
	}
	return best;
}

static void issue_read(struct mirror *m, struct uc_queue *q, struct uc_sub *s, unsigned int leg)
{

	uint8_t copy = s->copy;

	s->state = PH_READ | leg << 8;
	s->mask |= 1U << leg;
	atomic_fetch_add(&m->legs[leg].pending, 1);
	s->copy = 0;	/* the leg itself is one copy: its layers choose freely */
	uc_child_submit(q, s, leg, s->off + m->data_off, s->len, s->iov, s->nr_iov);
	s->copy = copy;
}

/* ---- leg failure ---- */

static void leg_fail(struct uc_node *n, struct mirror *m, unsigned int i, const char *why)
{
	uint32_t st = leg_state(m, i);

	/* lock held */
	if (st == LEG_FAULTY || st == LEG_MISSING)
		return;
	atomic_store(&m->legs[i].state, LEG_FAULTY);
	m->legs[i].faulty_seq = ++m->meta_seq;
	uc_err("%s: leg %u (%s) marked faulty: %s", n->name, i, n->children[i]->name, why);
	if (!live_legs(m)) {
		atomic_store(&m->failed, true);
		uc_err("%s: no leg left: the mirror has failed", n->name);
	}
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

static int mirror_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
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
		return 0;
	case UC_OP_RESYNC:
		s->iov[0] = (struct iovec){ s->io->buf, s->len };
		s->nr_iov = 1;
		s->state = PH_RS_READ | m->bg_src << 8;
		s->mask = 1U << m->bg_src;
		{
			struct uc_sub *cs = uc_child_prep(q, s, m->bg_src, s->off + m->data_off, s->len);

			cs->op = UC_OP_READ;
			cs->iov[0] = s->iov[0];
			cs->nr_iov = 1;
			uc_child_issue(q, cs);
		}
		return 0;
	}
	return -EOPNOTSUPP;
}

static void mirror_child_end(struct uc_node *n, struct uc_queue *q, struct uc_sub *s,
			     struct uc_sub *cs)
{
	struct mirror *m = n->priv;

	(void)q;
	if (PHASE(s) == PH_READ)
		atomic_fetch_sub(&m->legs[cs->child].pending, 1);
	if (cs->result < 0) {
		s->mask |= 1U << (16 + cs->child);
		atomic_fetch_add(&m->legs[cs->child].errors, 1);
		uc_dbg("%s: %s on leg %u at %" PRIu64 "+%" PRIu64 ": %s", n->name,
		       cs->op == UC_OP_READ ? "read" : "write", cs->child, cs->off, cs->len,
		       strerror(-cs->result));
	}
}

/* Children of RESYNC: writes of the window just read to every target leg. */
static void resync_write(struct mirror *m, struct uc_queue *q, struct uc_sub *s)
{
	s->state = PH_RS_WRITE;
	for (unsigned int i = 0; i < m->nr; i++) {
		struct uc_sub *cs;

		if (!(m->bg_targets & (1U << i)) || !leg_live(m, i))
			continue;
		s->mask |= 1U << i;
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

static int mirror_end(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	struct mirror *m = n->priv;
	uint32_t failed = FAILED(s), tried = TRIED(s);
	int leg;

	switch (PHASE(s)) {
	case PH_WRITE:
		if (s->op != UC_OP_FLUSH)
			inflight_add(m, s, -1);
		if (!failed)
			return 0;
		if (!(tried & ~failed)) {
			/* no leg took it: the request fails, no leg is blamed for it */
			uc_sub_error(s, -EIO);
			return 0;
		}
		pthread_mutex_lock(&m->lock);
		for (unsigned int i = 0; i < m->nr; i++)
			if (failed & (1U << i))
				leg_fail(n, m, i, s->op == UC_OP_FLUSH ? "flush failed" : "write failed");
		pthread_mutex_unlock(&m->lock);
		/* succeed only once the failed legs are recorded faulty on the others */
		park(m, q, s, PH_WAIT_FAULTY);
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
					leg_fail(n, m, i, "too many read errors");
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
		if (failed & (1U << LEG_OF(s))) {
			/* the source failed: another in-sync leg that is not a target */
			for (leg = 0; leg < (int)m->nr; leg++)
				if (!(tried & (1U << leg)) && !(m->bg_targets & (1U << leg)) &&
				    leg_state(m, leg) == LEG_IN_SYNC)
					break;
			if (leg == (int)m->nr) {
				uc_sub_error(s, -EIO);
				return 0;
			}
			s->state = PH_RS_READ | leg << 8;
			s->mask |= 1U << leg;
			uc_sub_get(s);
			{
				struct uc_sub *cs = uc_child_prep(q, s, leg, s->off + m->data_off, s->len);

				cs->op = UC_OP_READ;
				cs->iov[0] = s->iov[0];
				cs->nr_iov = 1;
				uc_child_issue(q, cs);
			}
			uc_sub_put(q, s);
			return UC_RESUBMITTED;
		}
		s->mask &= 0xffff;	/* only the writes' failures count from here */
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
		if (failed) {
			pthread_mutex_lock(&m->lock);
			for (unsigned int i = 0; i < m->nr; i++)
				if (failed & (1U << i))
					leg_fail(n, m, i, "resync write failed");
			pthread_mutex_unlock(&m->lock);
		}
		return 0;
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
			leg_fail(n, m, i, "metadata write failed");
	if (m->meta_legs & ~failed)
		atomic_store(&m->meta_done, m->meta_issued);
	pthread_mutex_unlock(&m->lock);
}

static bool meta_poll(struct uc_node *n, struct mirror *m, struct uc_queue *q)
{
	struct uc_io *io;
	bool pending;

	pthread_mutex_lock(&m->lock);
	pending = m->meta_seq > atomic_load(&m->meta_done) && !atomic_load(&m->failed);
	if (!pending || m->meta_inflight || !(io = uc_internal_get(q))) {
		pthread_mutex_unlock(&m->lock);
		return pending;
	}
	m->meta_inflight = true;
	m->meta_issued = m->meta_seq;
	m->meta_legs = live_legs(m);
	meta_snapshot(m, io->buf, m->meta_legs, false);
	pthread_mutex_unlock(&m->lock);
	uc_internal_start(q, io, n, UC_OP_META, 0, 0, 0, meta_done, n);
	return true;
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
		uc_err("%s: resync stopped at %" PRIu64 ": no leg could be read (%s)", n->name, lo,
		       strerror(-res));
		m->rs_active = false;
	} else {
		m->rs_pos = hi;
		m->rs_done += hi - lo;
		m->rs_bytes += hi - lo;
		if (!(hi & ((1ULL << m->chunk_shift) - 1)) || hi >= n->size)
			atomic_store(&m->need[chunk_of(m, lo)], 0);
		if (now_ns() - m->rs_last_ckpt > CKPT_NS) {
			m->rs_last_ckpt = now_ns();
			m->meta_seq++;	/* the superblock records rs_pos */
		}
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
		m->scrub_legs = 0;
		for (unsigned int i = 0; i < m->nr; i++)
			if (leg_state(m, i) == LEG_IN_SYNC)
				m->scrub_legs |= 1U << i;
		*lo = m->scrub_pos;
		*hi = m->scrub_pos + m->scrub_win > n->size ? n->size : m->scrub_pos + m->scrub_win;
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
 * Returns true while bits are set: the queue wakes to scan again.
 */
static bool bits_clear_idle(struct mirror *m)
{
	uint64_t now = now_ns();
	bool cleared = false, any = false;

	for (uint64_t c = 0; c < m->nbits && !any; c++)
		any = atomic_load(&m->bits[c]);
	if (!any || now - m->last_scan < CLEAR_IDLE_NS)
		return any;
	m->last_scan = now;
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
		if (busy)
			atomic_store(&m->bits[c], 1);	/* never written cleared: still durable */
		else
			cleared = true;
	}
	if (cleared) {
		m->clearing = true;
		m->meta_seq++;
	}
out:
	pthread_mutex_unlock(&m->lock);
	return true;
}

static bool bg_poll(struct uc_node *n, struct mirror *m, struct uc_queue *q)
{
	struct uc_io *io;
	uint64_t lo, hi;

	if (m->bg_inflight)
		return false;	/* its CQEs wake this queue */
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
			return bits_clear_idle(m) || m->rs_active || m->rq_head != m->rq_tail ||
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

/* ---- poll: resume parked subs, metadata, background ---- */

static void resume(struct uc_node *n, struct mirror *m, struct uc_queue *q, struct uc_sub *s)
{
	uint64_t need = 0;

	switch (PHASE(s)) {
	case PH_WAIT_WINDOW:
		write_admit(m, q, s);
		break;
	case PH_WAIT_BIT:
		if (atomic_load(&m->failed)) {
			inflight_add(m, s, -1);
			uc_sub_error(s, -EIO);
		} else if (atomic_load(&m->meta_done) < bits_needed_seq(m, s)) {
			park(m, q, s, PH_WAIT_BIT);
		} else {
			issue_writes(m, q, s);
		}
		break;
	case PH_WAIT_FAULTY:
		pthread_mutex_lock(&m->lock);
		for (unsigned int i = 0; i < m->nr; i++)
			if ((FAILED(s) & (1U << i)) && m->legs[i].faulty_seq > need)
				need = m->legs[i].faulty_seq;
		pthread_mutex_unlock(&m->lock);
		if (atomic_load(&m->failed)) {
			uc_sub_error(s, -EIO);
			s->state = PH_DONE;
		} else if (atomic_load(&m->meta_done) < need) {
			park(m, q, s, PH_WAIT_FAULTY);
		} else {
			s->state = PH_DONE;
		}
		break;
	}
	(void)n;
	uc_sub_put(q, s);	/* the parking reference */
}

static bool mirror_poll(struct uc_node *n, struct uc_queue *q)
{
	struct mirror *m = n->priv;
	struct uc_sub *s = m->parked[q->id];
	bool again;

	if (!m->active)
		return false;
	m->parked[q->id] = NULL;
	while (s) {
		struct uc_sub *next = s->next;

		resume(n, m, q, s);
		s = next;
	}
	again = meta_poll(n, m, q);
	if (q->id == 0 && uc_queue_may_start_work(q))
		again |= bg_poll(n, m, q);
	return again || m->parked[q->id];
}

/* ---- assembly ---- */

static bool subtree_created(const struct uc_node *n)
{
	if (!n->nr_children)
		return n->created;
	for (unsigned int i = 0; i < n->nr_children; i++)
		if (!subtree_created(n->children[i]))
			return false;
	return true;
}

static void new_uuid(uint8_t u[16])
{
	if (getrandom(u, 16, 0) != 16)
		for (int i = 0; i < 16; i++)
			u[i] = rand();
	u[6] = (u[6] & 0x0f) | 0x40;	/* version 4 */
	u[8] = (u[8] & 0x3f) | 0x80;
}

static int meta_write_sync(struct uc_node *n, struct mirror *m, bool clean)
{
	uint8_t *buf = aligned_alloc(4096, m->bitmap_bytes + MIRROR_MAX_LEGS * MIRROR_SB_SIZE);
	uint8_t *leg_buf = aligned_alloc(4096, m->slot);
	uint32_t legs;
	int ok = 0;

	if (!buf || !leg_buf) {
		free(buf);
		free(leg_buf);
		return -ENOMEM;
	}
	pthread_mutex_lock(&m->lock);
	legs = live_legs(m);
	meta_snapshot(m, buf, legs, clean);
	m->meta_issued = m->meta_seq;
	pthread_mutex_unlock(&m->lock);
	for (unsigned int i = 0; i < m->nr; i++) {
		int r;

		if (!(legs & (1U << i)))
			continue;
		memcpy(leg_buf, meta_sb(m, buf, i), MIRROR_SB_SIZE);
		memcpy(leg_buf + MIRROR_SB_SIZE, buf, m->bitmap_bytes);
		r = uc_graph_sync_io(n->graph, n->children[i], UC_OP_WRITE, 0, leg_buf, m->slot);
		if (!r)
			r = uc_graph_sync_io(n->graph, n->children[i], UC_OP_FLUSH, 0, NULL, 0);
		if (r) {
			uc_err("%s: cannot write the superblock of leg %u (%s): %s", n->name, i,
			       n->children[i]->name, strerror(-r));
			pthread_mutex_lock(&m->lock);
			leg_fail(n, m, i, "superblock write failed");
			pthread_mutex_unlock(&m->lock);
		} else {
			ok++;
		}
	}
	free(buf);
	free(leg_buf);
	atomic_store(&m->meta_done, m->meta_issued);
	return ok ? 0 : -EIO;
}

static int mirror_activate(struct uc_node *n)
{
	struct mirror *m = n->priv;
	struct mirror_sb sbs[MIRROR_MAX_LEGS], *fresh = NULL;
	int rc[MIRROR_MAX_LEGS], fresh_leg = -1, nr_sb = 0;
	uint8_t *buf;
	bool unclean = false, created = true, full_all = false;
	char u1[37], u2[37];
	int ret = 0;

	m->bits = calloc(m->nbits, sizeof(*m->bits));
	m->bit_seq = calloc(m->nbits, sizeof(*m->bit_seq));
	m->touched = calloc(m->nbits, sizeof(*m->touched));
	m->need = calloc(m->nbits, sizeof(*m->need));
	m->inflight = calloc(m->nunits, sizeof(*m->inflight));
	buf = aligned_alloc(4096, m->slot);
	if (!m->bits || !m->bit_seq || !m->touched || !m->need || !m->inflight || !buf) {
		free(buf);
		return -ENOMEM;
	}
	pthread_mutex_init(&m->lock, NULL);

	for (unsigned int i = 0; i < m->nr; i++) {
		int r = uc_graph_sync_io(n->graph, n->children[i], UC_OP_READ, 0, buf, MIRROR_SB_SIZE);

		rc[i] = r ? r : mirror_sb_decode(&sbs[i], buf);
		if (r) {
			uc_err("%s: cannot read leg %u (%s): %s", n->name, i, n->children[i]->name,
			       strerror(-r));
			ret = r;
			goto out;
		}
		if (rc[i] == -EBADMSG || rc[i] == -EPROTO) {
			uc_err("%s: leg %u (%s): %s superblock; refusing to assemble (see `ublk-compose examine`)",
			       n->name, i, n->children[i]->name,
			       rc[i] == -EBADMSG ? "corrupted" : "unknown version of the");
			ret = -EINVAL;
			goto out;
		}
		created &= subtree_created(n->children[i]);
		if (rc[i])
			continue;
		nr_sb++;
		if (!fresh || sbs[i].events > fresh->events) {
			fresh = &sbs[i];
			fresh_leg = i;
		}
	}
	for (unsigned int i = 0; i < m->nr; i++) {
		if (rc[i] || !memcmp(sbs[i].array_uuid, fresh->array_uuid, 16))
			continue;
		mirror_uuid_str(sbs[i].array_uuid, u1);
		mirror_uuid_str(fresh->array_uuid, u2);
		uc_err("%s: leg %u (%s) belongs to another array (%s, not %s); refusing to assemble",
		       n->name, i, n->children[i]->name, u1, u2);
		ret = -EINVAL;
		goto out;
	}

	if (!fresh) {
		/* a new array */
		new_uuid(m->sb.array_uuid);
		m->sb.version = MIRROR_VERSION;
		m->sb.layout = MIRROR_LAYOUT;
		m->sb.data_offset = m->data_off;
		m->sb.data_size = n->size;
		m->sb.bitmap_chunk = 1ULL << m->chunk_shift;
		m->sb.bitmap_bits = m->nbits;
		for (unsigned int i = 0; i < m->nr; i++)
			new_uuid(m->legs[i].uuid);
		if (!created && !m->assume_clean) {
			uc_info("%s: new array over legs that hold data: full resync from leg 0", n->name);
			unclean = full_all = true;
		}
	} else {
		if (fresh->data_offset != m->data_off || fresh->bitmap_chunk != 1ULL << m->chunk_shift ||
		    fresh->data_size != n->size) {
			uc_err("%s: the legs were made with a different layout (data offset %" PRIu64
			       ", size %" PRIu64 ", bitmap chunk %" PRIu64 "); this config gives %" PRIu64
			       ", %" PRIu64 ", %" PRIu64 ": use the same leg sizes and bitmap_chunk",
			       n->name, fresh->data_offset, fresh->data_size, fresh->bitmap_chunk,
			       m->data_off, n->size, (uint64_t)1 << m->chunk_shift);
			ret = -EINVAL;
			goto out;
		}
		m->sb = *fresh;
		unclean = !(fresh->flags & MIRROR_SB_CLEAN);
		/* the bitmap of the freshest leg */
		if ((ret = uc_graph_sync_io(n->graph, n->children[fresh_leg], UC_OP_READ, 0, buf, m->slot)))
			goto out;
		if (uc_crc32c(0, buf + MIRROR_SB_SIZE, m->bitmap_bytes) != fresh->bitmap_crc) {
			uc_warn("%s: bitmap checksum mismatch on leg %d: full resync", n->name, fresh_leg);
			full_all = unclean = true;
		}
		for (uint64_t c = 0; c < m->nbits; c++)
			if (buf[MIRROR_SB_SIZE + c / 8] & (1 << (c % 8)))
				atomic_store(&m->bits[c], 1);
		/* match config children to the array's legs by leg UUID (any order) */
		for (unsigned int i = 0; i < m->nr; i++) {
			int slot = -1;

			if (rc[i]) {
				/* no superblock: a new leg, rebuilt in full */
				new_uuid(m->legs[i].uuid);
				atomic_store(&m->legs[i].state, LEG_REBUILDING_FULL);
				uc_info("%s: leg %u (%s) is new: full rebuild", n->name, i,
					n->children[i]->name);
				continue;
			}
			for (unsigned int k = 0; k < fresh->nr_legs; k++)
				if (!memcmp(fresh->legs[k].uuid, sbs[i].leg_uuid, 16))
					slot = k;
			for (unsigned int j = 0; j < i; j++)
				if (!memcmp(m->legs[j].uuid, sbs[i].leg_uuid, 16))
					slot = -2;
			if (slot == -2) {
				uc_err("%s: legs %u and %u are the same leg (a copy?); refusing to assemble",
				       n->name, i, i - 1);
				ret = -EINVAL;
				goto out;
			}
			if (slot < 0) {
				mirror_uuid_str(sbs[i].leg_uuid, u1);
				uc_err("%s: leg %u (%s, leg %s) was removed from this array; refusing to assemble",
				       n->name, i, n->children[i]->name, u1);
				ret = -EINVAL;
				goto out;
			}
			memcpy(m->legs[i].uuid, sbs[i].leg_uuid, 16);
			atomic_store(&m->legs[i].errors, fresh->legs[slot].errors);
			if (sbs[i].events == fresh->events) {
				uint32_t st = fresh->legs[slot].state;

				if (st == LEG_FAULTY || st == LEG_MISSING)
					st = LEG_REBUILDING;	/* back in the config: re-add it */
				atomic_store(&m->legs[i].state, st);
			} else if (sbs[i].events >= fresh->events_cleared &&
				   fresh->legs[slot].state != LEG_REBUILDING_FULL) {
				atomic_store(&m->legs[i].state, LEG_REBUILDING);	/* bitmap-guided */
			} else {
				atomic_store(&m->legs[i].state, LEG_REBUILDING_FULL);
			}
			if (leg_state(m, i) != LEG_IN_SYNC)
				uc_info("%s: leg %u (%s) is %s (events %" PRIu64 " of %" PRIu64 ")",
					n->name, i, n->children[i]->name,
					mirror_leg_state_name(leg_state(m, i)), sbs[i].events,
					fresh->events);
		}
	}
	m->sb.nr_legs = m->nr;

	/* what resync must do: regions dirty at an unclean stop, stale and new legs */
	for (m->rs_source = 0; m->rs_source < m->nr; m->rs_source++)
		if (leg_state(m, m->rs_source) == LEG_IN_SYNC)
			break;
	if (m->rs_source == m->nr) {
		uc_err("%s: no leg is in sync; refusing to assemble", n->name);
		ret = -EIO;
		goto out;
	}
	for (unsigned int i = 0; i < m->nr; i++) {
		uint32_t st = leg_state(m, i);
		/* a full rebuild that was under way resumes where it stopped */
		uint64_t from = fresh && !rc[i] && fresh->resync_pos != UINT64_MAX ? fresh->resync_pos : 0;

		if (i == m->rs_source)
			continue;
		if ((st == LEG_IN_SYNC && unclean) || st == LEG_REBUILDING || st == LEG_REBUILDING_FULL)
			m->rs_targets |= 1U << i;
		for (uint64_t c = 0; c < m->nbits; c++) {
			bool bit = atomic_load(&m->bits[c]);
			bool by_bits = (st == LEG_IN_SYNC && unclean && (bit || full_all)) ||
				       (st == LEG_REBUILDING && (bit || full_all));

			/* 2: the bit must stay set on disk until it is copied (a crash redoes it) */
			if (by_bits || (st == LEG_REBUILDING_FULL && bit))
				atomic_store(&m->need[c], 2);
			/*
			 * 1: a full rebuild; resync_pos is its record, so what it copied stays
			 * copied after a restart (writes there went to the leg too)
			 */
			else if (st == LEG_REBUILDING_FULL && (c + 1) << m->chunk_shift > from)
				atomic_store(&m->need[c], 1);
		}
	}
	for (uint64_t c = 0; c < m->nbits; c++)
		if (atomic_load(&m->need[c])) {
			m->rs_total += 1ULL << m->chunk_shift;
			if (atomic_load(&m->need[c]) == 2)
				atomic_store(&m->bits[c], 1);
		}
	m->rs_active = m->rs_targets && m->rs_total;
	m->rs_pos = 0;
	m->rs_t0 = m->rs_last_ckpt = now_ns();
	if (m->rs_active) {
		char b[32];

		uc_info("%s: resync of %s from leg %u to legs 0x%x%s", n->name,
			uc_size_str(m->rs_total, b, sizeof(b)), m->rs_source, m->rs_targets,
			unclean ? " (not shut down cleanly)" : "");
	}
	m->last_scan = now_ns();
	m->meta_seq++;
	ret = meta_write_sync(n, m, false);
	if (ret)
		uc_err("%s: no leg took the superblock", n->name);
	(void)nr_sb;
out:
	free(buf);
	if (!ret)
		m->active = true;
	return ret;
}

static void mirror_deactivate(struct uc_node *n)
{
	struct mirror *m = n->priv;

	bool clean = true;

	if (!m || !m->active || atomic_load(&m->failed))
		return;
	m->active = false;	/* poll() leaves the metadata to us from here */
	/* an unclean stop's resync is not finished: the next start must redo it */
	for (unsigned int i = 0; m->rs_active && i < m->nr; i++)
		if ((m->rs_targets & (1U << i)) && leg_state(m, i) == LEG_IN_SYNC)
			clean = false;
	m->meta_seq++;
	if (!meta_write_sync(n, m, clean))
		uc_dbg("%s: stopped %s", n->name, clean ? "clean" : "with resync pending");
}

static int mirror_examine(const char *path, FILE *out)
{
	uint8_t *b = aligned_alloc(4096, MIRROR_SB_SIZE);
	struct mirror_sb sb;
	int fd = open(path, O_RDONLY), ret;

	if (fd < 0 || !b) {
		ret = fd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	if (pread(fd, b, MIRROR_SB_SIZE, 0) != MIRROR_SB_SIZE) {
		ret = -EIO;
		goto out;
	}
	ret = mirror_sb_decode(&sb, b);
	if (ret == -EBADMSG)
		fprintf(out, "%s: mirror superblock with a bad checksum or inconsistent fields\n", path);
	else if (ret == -EPROTO)
		fprintf(out, "%s: mirror superblock of an unknown version\n", path);
	else if (!ret)
		mirror_sb_print(&sb, out);
	if (ret == -EBADMSG || ret == -EPROTO)
		ret = -EINVAL;
out:
	if (fd >= 0)
		close(fd);
	free(b);
	return ret;
}

static int mirror_health(const struct uc_node *n)
{
	struct mirror *m = n->priv;

	if (atomic_load(&m->failed))
		return UC_HEALTH_FAILED;
	if (live_legs(m) != (1U << m->nr) - 1)
		return UC_HEALTH_DEGRADED;
	if (m->rs_active)
		return UC_HEALTH_RESYNCING;
	/* a leg still to rebuild with no resync running (it stopped: no leg could be read) */
	for (unsigned int i = 0; i < m->nr; i++)
		if (leg_state(m, i) != LEG_IN_SYNC)
			return UC_HEALTH_DEGRADED;
	return UC_HEALTH_CLEAN;
}

/* resync progress (lock held): percent done and seconds left (-1: unknown) */
static void resync_progress(const struct mirror *m, double *pct, long *eta)
{
	double secs = (now_ns() - m->rs_t0) / 1e9;

	*pct = m->rs_total ? 100.0 * m->rs_done / m->rs_total : 0;
	*eta = m->rs_done && secs > 0.5 ? (long)((m->rs_total - m->rs_done) / (m->rs_done / secs)) : -1;
}

static int mirror_status(const struct uc_node *n, char *buf, size_t len)
{
	static const char *const names[] = { "clean", "resyncing", "degraded", "failed" };
	struct mirror *m = n->priv;
	int off, h;

	if (!m->active)
		return snprintf(buf, len, "legs=%u bitmap_chunk=%llu", m->nr,
				1ULL << m->chunk_shift);
	h = mirror_health(n);
	off = snprintf(buf, len, "%s", names[h]);
	pthread_mutex_lock(&m->lock);
	if (m->rs_active) {
		double pct;
		long eta;

		resync_progress(m, &pct, &eta);
		char bar[21];

		for (int i = 0; i < 20; i++)
			bar[i] = i < (int)(pct / 5) ? '=' : i == (int)(pct / 5) ? '>' : '.';
		bar[20] = 0;
		off += snprintf(buf + off, len - off, "%s [%s] %.1f%%", h == UC_HEALTH_DEGRADED ?
				", resyncing" : "", bar, pct);
		if (eta >= 0)
			off += snprintf(buf + off, len - off, " (ETA %ldm%02lds)", eta / 60, eta % 60);
	}
	pthread_mutex_unlock(&m->lock);
	for (unsigned int i = 0; i < m->nr && off < (int)len; i++)
		off += snprintf(buf + off, len - off, " [%u %s errors=%llu]", i,
				mirror_leg_state_name(leg_state(m, i)),
				(unsigned long long)atomic_load(&m->legs[i].errors));
	return off;
}

static int mirror_json(const struct uc_node *n, char *buf, size_t len)
{
	struct mirror *m = n->priv;
	char uuid[37];
	double pct = 0;
	long eta = -1;
	int off;

	pthread_mutex_lock(&m->lock);
	if (m->rs_active)
		resync_progress(m, &pct, &eta);
	mirror_uuid_str(m->sb.array_uuid, uuid);
	off = snprintf(buf, len, "\"uuid\": \"%s\", \"events\": %llu, \"bitmap_chunk\": %llu, "
		       "\"resyncing\": %s, \"resync_percent\": %.1f, \"resync_eta_s\": %ld, "
		       "\"resync_done\": %llu, \"resync_total\": %llu, \"read_errors_corrected\": %llu, "
		       "\"legs\": [", uuid, (unsigned long long)m->sb.events,
		       1ULL << m->chunk_shift, m->rs_active ? "true" : "false", pct, eta,
		       (unsigned long long)m->rs_done, (unsigned long long)m->rs_total,
		       (unsigned long long)atomic_load(&m->corrected));
	pthread_mutex_unlock(&m->lock);
	for (unsigned int i = 0; i < m->nr && off < (int)len; i++) {
		mirror_uuid_str(m->legs[i].uuid, uuid);
		off += snprintf(buf + off, len - off,
				"%s{\"index\": %u, \"node\": \"%s\", \"state\": \"%s\", \"errors\": %llu, \"uuid\": \"%s\"}",
				i ? ", " : "", i, n->children[i]->name,
				mirror_leg_state_name(leg_state(m, i)),
				(unsigned long long)atomic_load(&m->legs[i].errors), uuid);
	}
	if (off < (int)len)
		off += snprintf(buf + off, len - off, "]");
	return off;
}

/* Wait (admin thread) until the metadata holds sequence seq. */
static int meta_wait(struct uc_node *n, struct mirror *m, uint64_t seq, int timeout_ms)
{
	for (int t = 0; atomic_load(&m->meta_done) < seq; t += 5) {
		if (atomic_load(&m->failed) || t >= timeout_ms)
			return -ETIMEDOUT;
		uc_graph_kick(n->graph);
		usleep(5000);
	}
	return 0;
}

static int child_index(const struct uc_node *n, const char *name)
{
	for (unsigned int i = 0; i < n->nr_children; i++)
		if (!strcmp(n->children[i]->name, name))
			return i;
	return -1;
}

static int mirror_fail_leg(struct uc_node *n, struct mirror *m, int i, char *reply, size_t len)
{
	uint64_t seq;

	pthread_mutex_lock(&m->lock);
	if (!leg_live(m, i)) {
		pthread_mutex_unlock(&m->lock);
		snprintf(reply, len, "%s is already %s", n->children[i]->name,
			 mirror_leg_state_name(leg_state(m, i)));
		return -EALREADY;
	}
	if (live_legs(m) == 1U << i) {
		pthread_mutex_unlock(&m->lock);
		snprintf(reply, len, "%s is the last live leg of %s: not failing it",
			 n->children[i]->name, n->name);
		return -EBUSY;
	}
	leg_fail(n, m, i, "failed by the administrator");
	seq = m->legs[i].faulty_seq;
	pthread_mutex_unlock(&m->lock);
	if (meta_wait(n, m, seq, 30000)) {
		snprintf(reply, len, "%s marked faulty, but the metadata write did not finish",
			 n->children[i]->name);
		return -EIO;
	}
	snprintf(reply, len, "%s marked faulty", n->children[i]->name);
	return 0;
}

/*
 * Leg i is new and empty: a new identity, rebuilt in full from the in-sync
 * legs (a resync under way starts over, for its targets too). Lock held.
 */
static void rebuild_full(struct uc_node *n, struct mirror *m, unsigned int i)
{
	new_uuid(m->legs[i].uuid);
	atomic_store(&m->legs[i].errors, 0);
	atomic_store(&m->legs[i].read_errors, 0);
	atomic_store(&m->legs[i].state, LEG_REBUILDING_FULL);
	m->rs_targets |= 1U << i;
	m->rs_total = 0;
	for (uint64_t k = 0; k < m->nbits; k++) {
		atomic_store(&m->need[k], 1);
		m->rs_total += 1ULL << m->chunk_shift;
	}
	if (m->rs_total > n->size)
		m->rs_total = n->size;
	m->rs_pos = 0;
	m->rs_done = 0;
	m->rs_bytes = 0;
	m->rs_t0 = m->rs_last_ckpt = now_ns();
	if (leg_state(m, m->rs_source) != LEG_IN_SYNC || (m->rs_targets & (1U << m->rs_source)))
		for (m->rs_source = 0; m->rs_source < m->nr; m->rs_source++)
			if (leg_state(m, m->rs_source) == LEG_IN_SYNC)
				break;
	m->rs_active = true;
	m->meta_seq++;
}

static int mirror_replace_leg(struct uc_node *n, struct mirror *m, int i, const char *path,
			      char *reply, size_t len)
{
	struct uc_node *c = n->children[i];
	uint64_t seq;
	int ret;

	if (!c->ops->ctl || strcmp(c->ops->name, "file")) {
		snprintf(reply, len, "only a file leg can be replaced (%s is a %s)", c->name, c->ops->name);
		return -EOPNOTSUPP;
	}
	if ((ret = c->ops->ctl(c, "check-path", path, reply, len)))
		return ret;
	/* the old leg gets no more I/O once it is faulty, durably */
	pthread_mutex_lock(&m->lock);
	if (leg_live(m, i) && live_legs(m) == 1U << i) {
		pthread_mutex_unlock(&m->lock);
		snprintf(reply, len, "%s is the only live leg: nothing to rebuild it from", c->name);
		return -EBUSY;
	}
	leg_fail(n, m, i, "being replaced");
	seq = m->meta_seq;
	pthread_mutex_unlock(&m->lock);
	if (meta_wait(n, m, seq, 30000)) {
		snprintf(reply, len, "metadata write did not finish; %s left faulty", c->name);
		return -EIO;
	}
	if ((ret = c->ops->ctl(c, "path", path, reply, len)))
		return ret;
	if (uc_graph_files_changed(n->graph, 30000)) {
		snprintf(reply, len, "queues did not take the new file in time");
		return -ETIMEDOUT;
	}
	c->ops->ctl(c, "path-commit", NULL, reply, len);
	pthread_mutex_lock(&m->lock);
	rebuild_full(n, m, i);
	pthread_mutex_unlock(&m->lock);
	uc_graph_kick(n->graph);
	uc_info("%s: %s replaced by %s: rebuilding", n->name, c->name, path);
	snprintf(reply, len, "%s replaced by %s: rebuilding", c->name, path);
	return 0;
}

/* The config group of a new file leg like model, at path, appended to n's children. */
static config_setting_t *leg_conf(struct uc_node *n, const struct uc_node *model, const char *path)
{
	config_setting_t *list, *grp, *t, *p, *sz;
	bool ok;

	pthread_mutex_lock(&n->graph->conf_lock);
	list = config_setting_get_member(n->cfg, "children");
	grp = list ? config_setting_add(list, NULL, CONFIG_TYPE_GROUP) : NULL;
	t = grp ? config_setting_add(grp, "type", CONFIG_TYPE_STRING) : NULL;
	p = t ? config_setting_add(grp, "path", CONFIG_TYPE_STRING) : NULL;
	sz = p ? config_setting_add(grp, "size", CONFIG_TYPE_INT64) : NULL;
	ok = sz && config_setting_set_string(t, "file") && config_setting_set_string(p, path) &&
	     config_setting_set_int64(sz, model->size);
	if (!ok && grp)
		config_setting_remove_elem(list, config_setting_index(grp));
	pthread_mutex_unlock(&n->graph->conf_lock);
	return ok ? grp : NULL;
}

/*
 * `add MIRROR PATH`: a new file leg, rebuilt in full online. The tree
 * changes while every queue is paused (new requests wait a moment).
 */
static int mirror_add_leg(struct uc_node *n, struct mirror *m, const char *path, char *reply,
			  size_t len)
{
	struct uc_graph *g = n->graph;
	struct uc_node *model = NULL, *c;
	config_setting_t *grp;
	unsigned int i = m->nr;
	uint64_t seq = 0;
	int ret;

	if (m->nr >= MIRROR_MAX_LEGS) {
		snprintf(reply, len, "%s has %u legs, the most a mirror can have", n->name, m->nr);
		return -ENOSPC;
	}
	for (unsigned int k = 0; k < m->nr && !model; k++)
		if (!strcmp(n->children[k]->ops->name, "file") && n->children[k]->ops->ctl)
			model = n->children[k];
	if (!model) {
		snprintf(reply, len, "%s has no file leg to model a new one on", n->name);
		return -EOPNOTSUPP;
	}
	/* in this volume already, locked elsewhere, too small: refused before anything changes */
	if ((ret = model->ops->ctl(model, "check-path", path, reply, len)))
		return ret;
	if (!(grp = leg_conf(n, model, path))) {
		snprintf(reply, len, "cannot add %s to the config", path);
		return -ENOMEM;
	}
	if ((ret = uc_graph_new_child(n, grp, &c))) {
		pthread_mutex_lock(&g->conf_lock);
		config_setting_remove_elem(config_setting_parent(grp), config_setting_index(grp));
		pthread_mutex_unlock(&g->conf_lock);
		snprintf(reply, len, "cannot open %s as a leg: %s", path, strerror(-ret));
		return ret;
	}
	if ((ret = uc_graph_pause(g, 30000))) {
		uc_graph_drop_child(c);
		snprintf(reply, len, "the queues did not pause within 30 s; nothing changed");
		return ret;
	}
	ret = uc_graph_attach_child(c);
	if (!ret) {
		pthread_mutex_lock(&m->lock);
		m->nr++;
		m->sb.nr_legs = m->nr;
		rebuild_full(n, m, i);
		seq = m->meta_seq;
		pthread_mutex_unlock(&m->lock);
	} else {
		uc_graph_drop_child(c);
	}
	uc_graph_resume(g);
	if (ret) {
		snprintf(reply, len, "cannot grow the queues for a new leg: %s", strerror(-ret));
		return ret;
	}
	uc_info("%s: %s added as leg %u (%s): rebuilding", n->name, path, i, c->name);
	if (meta_wait(n, m, seq, 30000)) {
		snprintf(reply, len, "%s added as %s, but its superblock is not written yet", path,
			 c->name);
		return -EIO;
	}
	snprintf(reply, len, "%s added as %s: rebuilding", path, c->name);
	return 0;
}

/*
 * Admin thread: run a scrub to the end (queue 0 does the I/O) and report.
 * Returns 0 clean, 1 mismatches found, -errno.
 */
static int mirror_scrub(struct uc_node *n, struct mirror *m, bool repair, bool json, char *reply,
			size_t len)
{
	uint64_t t0 = now_ns();
	int off = 0;

	pthread_mutex_lock(&m->lock);
	if (m->scrub_active || m->rs_active) {
		pthread_mutex_unlock(&m->lock);
		off = snprintf(reply, len, json ? "{\"node\": \"%s\", \"error\": \"%s\"}" : "%s: %s\n",
			       n->name, m->rs_active ? "resync in progress" : "a scrub is running");
		return -EBUSY;
	}
	if (!m->scrub && !(m->scrub = calloc(SCRUB_MAX, sizeof(*m->scrub)))) {
		pthread_mutex_unlock(&m->lock);
		return -ENOMEM;
	}
	m->nr_scrub = 0;
	m->scrub_pos = m->scrub_bad = m->scrub_fixed = m->scrub_unreadable = 0;
	m->scrub_repair = repair;
	m->scrub_aborted = false;
	/* every copy and the good one in one internal buffer: legs may have been added */
	for (m->scrub_win = m->window; m->scrub_win > 4096 && m->scrub_win * (m->nr + 1) > m->ibuf;)
		m->scrub_win >>= 1;
	m->scrub_active = true;
	pthread_mutex_unlock(&m->lock);
	uc_info("%s: scrub%s started", n->name, repair ? " (repair)" : "");
	while (m->scrub_active) {
		if (!m->active || atomic_load(&m->failed)) {
			m->scrub_active = false;
			m->scrub_aborted = true;
			break;
		}
		uc_graph_kick(n->graph);
		usleep(20000);
	}
	pthread_mutex_lock(&m->lock);
	if (json) {
		off = snprintf(reply, len, "{\"node\": \"%s\", \"bytes\": %llu, \"complete\": %s, "
			       "\"mismatched_bytes\": %llu, \"unreadable_bytes\": %llu, \"repair\": %s, "
			       "\"rewritten_bytes\": %llu, \"seconds\": %.1f, \"mismatches\": [",
			       n->name, (unsigned long long)m->scrub_pos, m->scrub_aborted ? "false" : "true",
			       (unsigned long long)m->scrub_bad, (unsigned long long)m->scrub_unreadable,
			       repair ? "true" : "false", (unsigned long long)m->scrub_fixed,
			       (now_ns() - t0) / 1e9);
		for (unsigned int i = 0; i < m->nr_scrub && off < (int)len; i++) {
			const struct mismatch *x = &m->scrub[i];

			off += snprintf(reply + off, len - off, "%s{\"offset\": %llu, \"length\": %llu, \"good\": %u, \"legs\": [",
					i ? ", " : "", (unsigned long long)x->off,
					(unsigned long long)x->len, x->good);
			for (unsigned int k = 0, first = 1; k < m->nr && off < (int)len; k++)
				if (x->legs & (1U << k)) {
					off += snprintf(reply + off, len - off, "%s%u", first ? "" : ", ", k);
					first = 0;
				}
			if (off < (int)len)
				off += snprintf(reply + off, len - off, "]}");
		}
		if (off < (int)len)
			snprintf(reply + off, len - off, "]}");
	} else {
		char b[32];

		off = snprintf(reply, len, "%s: scrub%s of %s %s: %llu bytes differ%s\n", n->name,
			       repair ? " --repair" : "", uc_size_str(m->scrub_pos, b, sizeof(b)),
			       m->scrub_aborted ? "ABORTED" : "done",
			       (unsigned long long)m->scrub_bad,
			       m->nr_scrub == SCRUB_MAX ? " (first ranges listed)" : "");
		for (unsigned int i = 0; i < m->nr_scrub && off < (int)len; i++) {
			const struct mismatch *x = &m->scrub[i];

			off += snprintf(reply + off, len - off, "  mismatch offset %llu length %llu: leg",
					(unsigned long long)x->off, (unsigned long long)x->len);
			for (unsigned int k = 0; k < m->nr && off < (int)len; k++)
				if (x->legs & (1U << k))
					off += snprintf(reply + off, len - off, " %u (%s)", k,
							n->children[k]->name);
			if (off < (int)len)
				off += snprintf(reply + off, len - off, " differ%s from leg %u%s\n",
						__builtin_popcount(x->legs) > 1 ? "" : "s", x->good,
						repair ? ": rewritten from it" : "");
		}
		if (m->scrub_unreadable && off < (int)len)
			off += snprintf(reply + off, len - off, "  %llu bytes could not be read from some leg\n",
					(unsigned long long)m->scrub_unreadable);
	}
	pthread_mutex_unlock(&m->lock);
	uc_info("%s: scrub done: %llu bytes differ", n->name, (unsigned long long)m->scrub_bad);
	if (m->scrub_aborted)
		return -EINTR;
	return m->scrub_bad ? 1 : 0;
}

/* Admin: "fail" LEG, "replace" "LEG PATH" (LEG: a child's name), "add" PATH, "scrub[-repair]". */
static int mirror_ctl(struct uc_node *n, const char *key, const char *value, char *reply,
		      size_t len)
{
	struct mirror *m = n->priv;
	char leg[256];
	const char *path = NULL;
	int i;

	if (!m->active) {
		snprintf(reply, len, "%s is not running", n->name);
		return -EAGAIN;
	}
	if (!strcmp(key, "scrub") || !strcmp(key, "scrub-repair"))
		return mirror_scrub(n, m, !strcmp(key, "scrub-repair"), value && !strcmp(value, "json"),
				    reply, len);
	if (!strcmp(key, "add") && value && value[0] == '/')
		return mirror_add_leg(n, m, value, reply, len);
	if (!value || (strcmp(key, "fail") && strcmp(key, "replace"))) {
		snprintf(reply, len, "mirror: fail LEG | replace LEG PATH | add PATH | scrub | scrub-repair");
		return -EINVAL;
	}
	snprintf(leg, sizeof(leg), "%s", value);
	if (!strcmp(key, "replace")) {
		char *sp = strchr(leg, ' ');

		if (!sp) {
			snprintf(reply, len, "replace needs a leg and a path");
			return -EINVAL;
		}
		*sp = 0;
		path = sp + 1;
	}
	i = child_index(n, leg);
	if (i < 0) {
		snprintf(reply, len, "%s is not a leg of %s", leg, n->name);
		return -ENOENT;
	}
	return path ? mirror_replace_leg(n, m, i, path, reply, len) :
		      mirror_fail_leg(n, m, i, reply, len);
}

const struct uc_layer_ops mirror_layer_ops = {
	.name = "mirror",
	.keys = mirror_keys,
	.help = "read_policy=<least-pending|round-robin> bitmap_chunk=<size, default 64M> "
		"resync_rate=<bytes/s, default 200M> assume_clean=<bool> children=(>= 2 layers)",
	.parse = mirror_parse,
	.close = mirror_close,
	.child_max_iov = mirror_child_max_iov,
	.submit = mirror_submit,
	.end = mirror_end,
	.child_end = mirror_child_end,
	.activate = mirror_activate,
	.deactivate = mirror_deactivate,
	.poll = mirror_poll,
	.status = mirror_status,
	.health = mirror_health,
	.json = mirror_json,
	.ctl = mirror_ctl,
	.examine = mirror_examine,
	.zero_copy = true,
};
