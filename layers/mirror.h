/* SPDX-License-Identifier: MIT */
/*
 * The mirror layer's internals, shared by its files:
 *   mirror.c         config, assembly (activate/deactivate), status, the ops table
 *   mirror_io.c      reads, write admission and bitmap bits, leg failure,
 *                    metadata writes, parking and poll
 *   mirror_resync.c  background windows on queue 0: resync, scrub, read repairs,
 *                    bitmap clearing
 *   mirror_admin.c   fail, replace, add, scrub (admin thread)
 * The on-leg format is mirror_meta.h.
 */
#ifndef UC_MIRROR_H
#define UC_MIRROR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include "graph.h"
#include "io.h"
#include "wait.h"
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
#define SEQ_RUN		(4ULL << 20)	/* a sequential run may move to an idle leg after this (io_opt if the leg has one) */

enum phase {
	PH_NONE, PH_WRITE, PH_WAIT_WINDOW, PH_WAIT_BIT, PH_WAIT_FAULTY, PH_DONE, PH_READ,
	PH_RS_READ, PH_RS_WRITE, PH_META, PH_SC_READ, PH_SC_WRITE,
};

/* s->mask: low 16 bits legs issued/tried, high 16 bits legs that failed */
#define TRIED(s)	((s)->mask & 0xffff)
#define FAILED(s)	((s)->mask >> 16)
/* s->scratch of a WRITE_ZEROES: legs that cannot write zeroes (-EOPNOTSUPP) */
/* s->state: phase in the low byte, a leg number above */
#define PHASE(s)	((s)->state & 0xff)
#define LEG_OF(s)	((s)->state >> 8)

struct leg {
	_Atomic uint32_t state;	/* enum mirror_leg_state */
	uint8_t uuid[16];
	_Atomic uint64_t errors;
	_Atomic uint32_t read_errors;
	uint64_t faulty_seq;	/* metadata sequence that records it faulty (lock) */
	_Atomic uint32_t noted;	/* NOTED_*: logged once per run */
	/*
	 * Failed while its own layers said it was unreachable (an nbd leg's
	 * connection down): re-added when they say it is back (lock).
	 */
	bool lost;
};

#define NOTED_DISCARD		(1U << 0)	/* a discard failed (ignored) */
#define NOTED_WRITE_ZEROES	(1U << 1)	/* cannot write zeroes */

struct mismatch {
	uint64_t off, len;
	uint32_t legs;		/* legs that differ from the good copy */
	unsigned int good;
};

struct repair {
	uint64_t off, len;
	unsigned int src, dst;
};

/*
 * Per queue: only that queue's thread touches its slot, which has cache
 * lines of its own (nothing here is shared between queue threads).
 */
struct mirror_q {
	unsigned int rr;	/* round-robin: the leg to try first */
	unsigned int pending[MIRROR_MAX_LEGS];	/* reads this queue has in flight per leg */
	uint64_t seq_next[MIRROR_MAX_LEGS];	/* where the last read sent to the leg ended */
	uint64_t seq_start[MIRROR_MAX_LEGS];	/* where its run of sequential reads began */
} __attribute__((aligned(64)));

struct mirror {
	/* config */
	unsigned int nr;
	bool round_robin, assume_clean;
	uint32_t write_mostly;	/* legs that serve reads only when no other leg can */
	unsigned int chunk_shift;
	uint64_t resync_rate;
	uint64_t data_off, bitmap_bytes, nbits, slot, window;
	uint64_t ibuf;		/* bytes of an internal tag's buffer (n->internal_buf) */
	uint64_t scrub_win;	/* scrub window: every copy of it fits in ibuf */
	/* array state */
	pthread_mutex_t lock;
	/* parked writes (uc_park): woken when meta_done moves or the mirror fails; when the window is released */
	struct uc_wait meta_wait, window_wait;
	struct mirror_sb sb;	/* array-wide fields of the superblock */
	struct leg legs[MIRROR_MAX_LEGS];
	_Atomic uint8_t *bits;	/* write-intent, one byte per chunk */
	_Atomic uint64_t nr_bits;	/* bits set (changes under lock): no scan when 0 */
	_Atomic uint64_t *bit_seq;	/* metadata sequence that makes the bit durable */
	_Atomic uint8_t *touched;	/* written since the last clearing scan */
	_Atomic uint8_t *need;	/* chunks resync still has to copy */
	_Atomic uint64_t nr_need;	/* chunks with need set: reads of them go to rs_source */
	_Atomic uint32_t *inflight;	/* writes in flight per unit */
	uint64_t nunits;
	_Atomic bool failed;	/* no in-sync leg left: everything fails */
	_Atomic unsigned int nr_lost;	/* faulty legs with lost set (changes under lock) */
	bool active;		/* activated: metadata is ours to write */
	/* metadata writes: one in flight at a time, each a full snapshot */
	_Atomic uint64_t meta_seq;	/* changes under lock; poll reads it without */
	uint64_t meta_issued;
	_Atomic uint64_t meta_done;
	bool meta_inflight, clearing;
	uint32_t meta_legs;
	/* background work on queue 0: resync windows and read repairs */
	_Atomic uint64_t win_lo, win_hi;	/* locked window, empty when equal */
	bool bg_inflight, bg_draining, bg_is_repair, bg_is_scrub;
	bool bg_held;		/* a picked window let go while the queue pauses */
	uint64_t held_lo, held_hi;
	unsigned int bg_src;
	uint32_t bg_targets;
	_Atomic bool rs_active;
	uint32_t rs_targets;
	_Atomic unsigned int rs_source;
	uint64_t rs_pos, rs_total, rs_done, rs_t0, rs_bytes, rs_last_ckpt;
	uint64_t rs_narrow_hi;	/* a window no leg could read: 4K at a time up to here */
	/* ranges some legs do not hold (mirror_bad.c), sorted, under lock */
	struct mirror_bad bad[MIRROR_BAD_MAX];
	_Atomic unsigned int nr_bad;
	struct repair repairs[REPAIRS];
	_Atomic unsigned int rq_head, rq_tail;	/* change under lock; poll reads them without */
	uint64_t last_scan;
	/* scrub: started by the admin thread, run by queue 0 like resync */
	_Atomic bool scrub_active;
	bool scrub_repair, scrub_aborted;
	uint64_t scrub_pos, scrub_bad, scrub_fixed, scrub_unreadable;
	struct mismatch *scrub;
	unsigned int nr_scrub;
	uint32_t scrub_legs;
	_Atomic uint64_t corrected, repair_dropped;
	struct mirror_q qs[UC_MAX_QUEUES + 1];
};

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static inline uint32_t leg_state(const struct mirror *m, unsigned int i)
{
	return atomic_load(&m->legs[i].state);
}

static inline bool leg_live(const struct mirror *m, unsigned int i)
{
	uint32_t st = leg_state(m, i);

	return st != LEG_FAULTY && st != LEG_MISSING;
}

static inline uint32_t live_legs(const struct mirror *m)
{
	uint32_t mask = 0;

	for (unsigned int i = 0; i < m->nr; i++)
		if (leg_live(m, i))
			mask |= 1U << i;
	return mask;
}

/* Legs that hold every completed write and can serve reads. */
static inline uint32_t in_sync_legs(const struct mirror *m)
{
	uint32_t mask = 0;

	for (unsigned int i = 0; i < m->nr; i++)
		if (leg_state(m, i) == LEG_IN_SYNC)
			mask |= 1U << i;
	return mask;
}

/* The worst health in the subtree of n, as `status` shows it (enum uc_health). */
static inline int subtree_health(const struct uc_node *n)
{
	int h = n->ops->health ? n->ops->health(n) : UC_HEALTH_CLEAN;

	for (unsigned int i = 0; i < n->nr_children; i++) {
		int c = subtree_health(n->children[i]);

		if (c > h)
			h = c;
	}
	return h;
}

/* Leg i stays out until an administrator brings it back (lock held). */
static inline void leg_keep_out(struct mirror *m, unsigned int i)
{
	if (m->legs[i].lost)
		atomic_fetch_sub(&m->nr_lost, 1);
	m->legs[i].lost = false;
}

static inline unsigned int chunk_of(const struct mirror *m, uint64_t off)
{
	return off >> m->chunk_shift;
}

/* In a metadata snapshot: where leg i's superblock is (after the bitmap). */
static inline uint8_t *meta_sb(const struct mirror *m, uint8_t *buf, unsigned int i)
{
	return buf + m->bitmap_bytes + (size_t)i * MIRROR_SB_SIZE;
}

/* mirror_io.c */
int mirror_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s);
void mirror_child_end(struct uc_node *n, struct uc_queue *q, struct uc_sub *s, struct uc_sub *cs);
int mirror_end(struct uc_node *n, struct uc_queue *q, struct uc_sub *s);
bool mirror_poll(struct uc_node *n, struct uc_queue *q);
void mirror_resume(struct uc_node *n, struct uc_queue *q, struct uc_sub *s);
/* Mark leg i faulty (lock held); the mirror fails when no in-sync leg is left. */
void mirror_leg_fail(struct uc_node *n, struct mirror *m, unsigned int i, const char *why);
/* Metadata snapshot (lock held): the bitmap at buf, then leg i's superblock at meta_sb(). */
void mirror_meta_snapshot(struct mirror *m, uint8_t *buf, uint32_t legs, bool clean);

/* mirror_resync.c */
/* Start a SCRUB or RESYNC internal request. */
void mirror_bg_submit(struct mirror *m, struct uc_queue *q, struct uc_sub *s);
/* end() of a SCRUB or RESYNC request, by phase. */
int mirror_bg_end(struct uc_node *n, struct mirror *m, struct uc_queue *q, struct uc_sub *s);
/* Queue 0: the next background window. Returns true to be polled again soon. */
bool mirror_bg_poll(struct uc_node *n, struct mirror *m, struct uc_queue *q);
/* Re-add lost legs whose layers say they are back, with a resync from the bitmap. */
void mirror_rejoin(struct uc_node *n, struct mirror *m);

/* mirror.c */
void mirror_new_uuid(uint8_t u[16]);

/* mirror_bad.c */
/* Legs with a bad range over [off, off + len): they must not serve it. No lock if none. */
uint32_t mirror_bad_legs(struct mirror *m, uint64_t off, uint64_t len);
uint32_t mirror_bad_legs_locked(const struct mirror *m, uint64_t off, uint64_t len);
/* Record [off, off + len) as not held by legs (lock held). Returns 0 or -ENOSPC (table full). */
int mirror_bad_add(struct mirror *m, uint64_t off, uint64_t len, uint32_t legs);
/* Legs now hold the data of [off, off + len): records there drop them (lock held). */
void mirror_bad_clear(struct mirror *m, uint32_t legs, uint64_t off, uint64_t len);
/* Bytes recorded bad (lock held). */
uint64_t mirror_bad_bytes(const struct mirror *m);

/* mirror_admin.c */
int mirror_ctl(struct uc_node *n, const char *key, const char *value, char *reply, size_t len);

#endif
