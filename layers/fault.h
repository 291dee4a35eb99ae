/* SPDX-License-Identifier: MIT */
/*
 * The fault layer's state, shared by fault.c (error injection, delay, the
 * config and ctl) and fault_cache.c (lose_unflushed, the power-cut emulator).
 */
#ifndef UC_FAULT_H
#define UC_FAULT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include "io.h"
#include "wait.h"
#include "wcache.h"

#define FAULT_MAX_RANGES	16
#define NSEC			UINT64_C(1000000000)

/* Each sub's private data (UC_SUB_PRIV). */
struct fault_sub {
	uint8_t flags;		/* FS_* */
	uint8_t parked;		/* why it waits (lose_unflushed): FS_WAIT_* */
	uint8_t read_parity;	/* a read through the cache: epochs_done & 1 when it started */
	uint64_t epoch;		/* FS_WAIT_FLUSH: the flush epoch it waits for (64 bits, like the counters) */
};
#define FS_DECIDED		1U	/* counted; a resubmission must not count again */
#define FS_FAIL			2U	/* ends with -EIO (after the delay) */
#define FS_CACHED		4U	/* a read through the cache: overlay it at the end */
#define FS_WAIT_FLUSH		1U	/* FLUSH or FUA write: until its epoch is done */
#define FS_WAIT_ROOM		2U	/* a write the full cache cannot take yet */
#define FS_WAIT_DIRECT		3U	/* to the child once no flush epoch runs */

/* Each queue's state (UC_QSTATE): only its thread writes it. */
struct fault_q {
	/*
	 * What the queue's delay SQEs point at: the kernel reads it at the
	 * next io_uring_enter, so it must outlive the prep.
	 */
	struct __kernel_timespec ts;
};

#define WB_IOS			4	/* write-back requests in flight per queue */
#define WB_RUN			(256U << 10)	/* bytes: longest write-back request */

struct fault {
	pthread_mutex_t lock;		/* serializes ctl; range writers hold it */
	_Atomic uint32_t errors;	/* OPBIT()s of the ops that fail */
	_Atomic uint64_t after;
	_Atomic uint64_t delay_ns;
	_Atomic uint32_t seq;		/* ranges seqlock: odd while being rewritten */
	_Atomic uint32_t nr_ranges;	/* 0: the whole device */
	struct {
		_Atomic uint64_t off, len;
	} ranges[FAULT_MAX_RANGES];
	_Atomic uint64_t seen;		/* requests since start/reset/after: for after */
	_Atomic uint64_t injected, passed;

	/*
	 * lose_unflushed. A flush epoch snapshots the cache, writes the
	 * snapshot to the child (from any queue's poll, on internal tags),
	 * flushes the child, then completes every FLUSH that waited for it.
	 * All of it under cache_lock, which is never held across an I/O start.
	 */
	_Atomic bool lose;		/* writes go to the cache */
	_Atomic bool crashed;		/* power cut: every request fails */
	_Atomic bool broken;		/* the child failed a write-back: every request fails */
	_Atomic bool draining;		/* switching lose off: writes go direct (ST_WAIT_DIRECT) */
	_Atomic uint64_t epoch_started;	/* written under cache_lock, read by poll without it */
	_Atomic uint64_t epochs_done;	/* read by reads racing a flush */
	pthread_mutex_t cache_lock;
	struct wcache cache;
	uint64_t cache_size;		/* bytes (unflushed_max) */
	uint64_t epoch_want;		/* the epoch a parked sub needs next */
	unsigned int wb_inflight;	/* write-back requests in flight */
	bool child_flush;		/* the epoch's child FLUSH is issued */
	/*
	 * Reads in flight by the parity of epochs_done when they started. A
	 * flushed snapshot stays (retired) until the reads that may have got
	 * the child's data from before its write-back are done; the next
	 * epoch ends only after that (end_pending).
	 */
	unsigned int reads[2];
	unsigned int retired_parity;
	bool end_pending;
	bool full_logged;
	uint64_t lost_bytes;		/* dropped by the last crash */
	struct uc_wait epoch;		/* subs waiting for an epoch (or the cache to die) */
};

/* fault_cache.c: lose_unflushed (f->cache_lock is taken inside) */
static inline bool fault_cache_dead(struct fault *f)
{
	return atomic_load(&f->crashed) || atomic_load(&f->broken);
}

/* A request while the cache is on (or draining). Returns 0 or -errno. */
int fault_cache_submit(struct uc_node *n, struct fault *f, struct uc_queue *q, struct uc_sub *s);
/* s goes to the child as it is. */
static inline void fault_child_pass(struct uc_queue *q, struct uc_sub *s)
{
	uc_child_submit(q, s, 0, s->off, s->len, s->iov, s->nr_iov);
}

/* A read through the cache (FS_CACHED) came back from the child. Returns 0. */
int fault_cache_read_end(struct fault *f, struct uc_sub *s);
/* f->epoch's resume: a sub parked by this layer goes on, fails or parks again. */
void fault_resume(struct uc_node *n, struct uc_queue *q, struct uc_sub *s);
bool fault_poll(struct uc_node *n, struct uc_queue *q);
int fault_activate(struct uc_node *n);
void fault_deactivate(struct uc_node *n);
/* ctl, with f->lock held: crash on|off, lose_unflushed on|off */
int fault_cache_crash(struct uc_node *n, struct fault *f, bool on, char *reply, size_t len);
int fault_cache_on(struct uc_node *n, struct fault *f, char *reply, size_t len);
int fault_cache_off(struct uc_node *n, struct fault *f, char *reply, size_t len);

#endif
