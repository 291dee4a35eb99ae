/* SPDX-License-Identifier: MIT */
/*
 * fault's lose_unflushed: a volatile write cache (wcache.h) in front of the
 * child. Writes land in it; a FLUSH (or a FUA write, or a full cache) starts
 * a flush epoch that writes a snapshot back and flushes the child; `ctl
 * crash on` drops what no epoch has made durable. See fault.c for the keys.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fault.h"
#include "log.h"

/* ---- lose_unflushed: the cache (cache_lock held unless said) ---- */

/* No lock needed: poll looks here first. */
static bool epoch_running(struct fault *f)
{
	return atomic_load(&f->epoch_started) > atomic_load(&f->epochs_done);
}

static void epoch_start(struct fault *f)
{
	wcache_snapshot(&f->cache);
	atomic_fetch_add(&f->epoch_started, 1);
	f->child_flush = false;
}

/* The epoch that makes everything cached so far durable; starts one if none runs. */
static uint64_t epoch_needed(struct fault *f)
{
	uint64_t started;

	if (!epoch_running(f)) {
		epoch_start(f);
		return atomic_load(&f->epoch_started);
	}
	started = atomic_load(&f->epoch_started);
	if (f->epoch_want < started + 1)
		f->epoch_want = started + 1;
	return started + 1;
}

/* s waits on f->epoch (cache_lock held: every waker changes the state under it). */
static void park(struct fault *f, struct uc_queue *q, struct uc_sub *s, unsigned int why,
		 uint64_t epoch)
{
	struct fault_sub *fs = UC_SUB_PRIV(s, struct fault_sub);

	fs->parked = why;
	fs->epoch = epoch;
	uc_park(q, &f->epoch, s);
}

/* A write into the cache; parks it when the cache is full or for FUA. */
static void cache_write(struct uc_node *n, struct fault *f, struct uc_queue *q, struct uc_sub *s)
{
	if (wcache_write(&f->cache, s->off, s->len, s->iov, s->nr_iov) == -ENOSPC) {
		/* a full cache is written back early, as a disk destages its cache */
		if (!f->full_logged)
			uc_info("%s: %llu bytes unflushed (unflushed_max): writing back early", n->name,
				(unsigned long long)wcache_bytes(&f->cache));
		f->full_logged = true;
		park(f, q, s, FS_WAIT_ROOM, epoch_needed(f));
	} else if (s->flags & UC_F_FUA) {
		park(f, q, s, FS_WAIT_FLUSH, epoch_needed(f));
	}
}

/* Writes direct to the child (discard, write-zeroes, writes while draining). */
static bool direct_ready(struct fault *f, struct uc_sub *s)
{
	if (epoch_running(f))
		return false;	/* the snapshot's write-back could land on top */
	if (s->len)
		wcache_remove(&f->cache, s->off, s->len);
	return true;
}

int fault_cache_submit(struct uc_node *n, struct fault *f, struct uc_queue *q, struct uc_sub *s)
{
	bool direct = false;

	if (s->io->zero_copy)
		return -EIO;	/* cannot happen: needs_data keeps the copy path */
	pthread_mutex_lock(&f->cache_lock);
	if (s->op == UC_OP_READ) {
		struct fault_sub *fs = UC_SUB_PRIV(s, struct fault_sub);

		fs->flags |= FS_CACHED;
		fs->read_parity = atomic_load(&f->epochs_done) & 1;
		f->reads[fs->read_parity]++;
		pthread_mutex_unlock(&f->cache_lock);
		fault_child_pass(q, s);
		return 0;
	}
	if (fault_cache_dead(f)) {
		pthread_mutex_unlock(&f->cache_lock);
		return -EIO;
	}
	switch (s->op) {
	case UC_OP_WRITE:
		if (!atomic_load(&f->draining)) {
			cache_write(n, f, q, s);
			break;
		}
		/* fall through */
	case UC_OP_DISCARD:
	case UC_OP_WRITE_ZEROES:
		direct = direct_ready(f, s);
		if (!direct)
			park(f, q, s, FS_WAIT_DIRECT, 0);
		break;
	case UC_OP_FLUSH:
		park(f, q, s, FS_WAIT_FLUSH, epoch_needed(f));
		break;
	default:
		pthread_mutex_unlock(&f->cache_lock);
		return -EOPNOTSUPP;
	}
	pthread_mutex_unlock(&f->cache_lock);
	if (direct)
		fault_child_pass(q, s);
	return 0;
}

/* The epoch's child FLUSH is done: retire its snapshot, complete who waited, go on. */
static void epoch_finish(struct fault *f)
{
	wcache_end_flush(&f->cache);
	f->retired_parity = atomic_load(&f->epochs_done) & 1;
	if (!f->reads[f->retired_parity])
		wcache_free_retired(&f->cache);
	f->end_pending = false;
	atomic_store(&f->epochs_done, atomic_load(&f->epoch_started));
	if (f->epoch_want > atomic_load(&f->epoch_started) && !fault_cache_dead(f))
		epoch_start(f);
}

/* A read through the cache came back from the child: lay the cached sectors over it. */
int fault_cache_read_end(struct fault *f, struct uc_sub *s)
{
	struct fault_sub *fs = UC_SUB_PRIV(s, struct fault_sub);
	bool freed = false;

	pthread_mutex_lock(&f->cache_lock);
	if (fault_cache_dead(f))
		uc_sub_error(s, -EIO);
	else if (!s->result)
		wcache_overlay(&f->cache, s->off, s->len, s->iov, s->nr_iov);
	if (!--f->reads[fs->read_parity] && fs->read_parity == f->retired_parity) {
		/* the last read that could need the retired snapshot: room, maybe the epoch's end */
		wcache_free_retired(&f->cache);
		if (f->end_pending)
			epoch_finish(f);
		freed = true;
	}
	pthread_mutex_unlock(&f->cache_lock);
	if (freed)
		uc_wake(&f->epoch);
	return 0;
}

static void wb_done(struct uc_queue *q, struct uc_io *io, int res)
{
	struct uc_node *n = io->arg;
	struct fault *f = n->priv;

	(void)q;
	pthread_mutex_lock(&f->cache_lock);
	f->wb_inflight--;
	if (res < 0 && !atomic_exchange(&f->broken, true))
		uc_err("%s: writing the cache back failed: %s; every request fails from now on",
		       n->name, strerror(-res));
	pthread_mutex_unlock(&f->cache_lock);
	if (res < 0)
		uc_wake(&f->epoch);	/* the parked fail now */
}

static void epoch_done(struct uc_queue *q, struct uc_io *io, int res)
{
	struct uc_node *n = io->arg;
	struct fault *f = n->priv;

	(void)q;
	pthread_mutex_lock(&f->cache_lock);
	if (res < 0 && !atomic_exchange(&f->broken, true))
		uc_err("%s: flushing the child failed: %s; every request fails from now on", n->name,
		       strerror(-res));
	if (f->cache.nr_used[WC_RETIRED])
		f->end_pending = true;	/* the last read of the previous snapshot ends it */
	else
		epoch_finish(f);
	pthread_mutex_unlock(&f->cache_lock);
	uc_wake(&f->epoch);	/* FLUSHes parked on any queue */
}

/* Issue what the running epoch still needs from this queue. */
static void epoch_poll(struct uc_node *n, struct fault *f, struct uc_queue *q)
{
	struct uc_io *io;
	uint64_t off, len;

	pthread_mutex_lock(&f->cache_lock);
	while (epoch_running(f) && !f->child_flush && !f->end_pending && (io = uc_internal_get(q))) {
		if (atomic_load(&f->crashed)) {
			/* the snapshot is gone with the power: end the epoch without I/O */
			if (f->wb_inflight)
				break;
			atomic_store(&f->epochs_done, atomic_load(&f->epoch_started));
			f->epoch_want = 0;
			f->end_pending = false;
			pthread_mutex_unlock(&f->cache_lock);
			uc_wake(&f->epoch);
			return;
		}
		len = wcache_next_run(&f->cache, &off, io->buf, WB_RUN);
		if (!len && f->wb_inflight)
			break;	/* the child FLUSH waits for the last write-back */
		if (len)
			f->wb_inflight++;
		else
			f->child_flush = true;
		pthread_mutex_unlock(&f->cache_lock);
		if (len)
			uc_internal_start(q, io, n->children[0], UC_OP_WRITE, 0, off, len, wb_done, n);
		else
			uc_internal_start(q, io, n->children[0], UC_OP_FLUSH, 0, 0, 0, epoch_done, n);
		pthread_mutex_lock(&f->cache_lock);
	}
	pthread_mutex_unlock(&f->cache_lock);
}

void fault_resume(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	struct fault *f = n->priv;
	struct fault_sub *fs = UC_SUB_PRIV(s, struct fault_sub);
	unsigned int why = fs->parked;
	bool direct = false;

	fs->parked = 0;
	pthread_mutex_lock(&f->cache_lock);
	if (fault_cache_dead(f)) {
		uc_sub_error(s, -EIO);
	} else if (why == FS_WAIT_FLUSH) {
		if (atomic_load(&f->epochs_done) < fs->epoch)
			park(f, q, s, why, fs->epoch);
	} else if (why == FS_WAIT_ROOM && !atomic_load(&f->draining)) {
		cache_write(n, f, q, s);
	} else if (!(direct = direct_ready(f, s))) {
		park(f, q, s, why, 0);
	}
	pthread_mutex_unlock(&f->cache_lock);
	if (direct)
		fault_child_pass(q, s);
}

/*
 * Parked subs come back through f->epoch when an epoch ends; what is left
 * here is to drive a running epoch's write-back. Nothing to do: no lock, and
 * no timer (the write-back's completions and wake-ups bring the queue back).
 */
bool fault_poll(struct uc_node *n, struct uc_queue *q)
{
	struct fault *f = n->priv;

	if (epoch_running(f))
		epoch_poll(n, f, q);
	return false;
}

/* Allocate the cache (open or ctl; not on a queue thread). Returns 0 or -ENOMEM. */
static int cache_alloc(struct fault *f)
{
	if (f->cache.slots)
		return 0;
	return wcache_init(&f->cache, f->cache_size);
}

int fault_activate(struct uc_node *n)
{
	struct fault *f = n->priv;
	int ret = atomic_load(&f->lose) ? cache_alloc(f) : 0;

	if (ret)
		uc_err("%s: cannot allocate %llu bytes for lose_unflushed", n->name,
		       (unsigned long long)f->cache_size);
	return ret;
}

/*
 * Write everything cached to the child, synchronously (a clean stop, or ctl
 * lose_unflushed off with the queues' help). Returns 0 or -errno.
 */
static int cache_write_back_sync(struct uc_node *n, struct fault *f)
{
	uint8_t *buf = aligned_alloc(4096, WB_RUN);
	uint64_t off, len;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	pthread_mutex_lock(&f->cache_lock);
	/* an epoch the queues left unfinished first, then the rest */
	for (int pass = 0; !ret && pass < 2; pass++) {
		if (!f->cache.nr_used[WC_FLUSHING])
			wcache_snapshot(&f->cache);
		while (!ret && (len = wcache_next_run(&f->cache, &off, buf, WB_RUN)))
			ret = uc_graph_sync_io(n->graph, n->children[0], UC_OP_WRITE, off, buf, len);
		wcache_free_retired(&f->cache);
		wcache_end_flush(&f->cache);
	}
	wcache_free_retired(&f->cache);
	if (!ret)
		ret = uc_graph_sync_io(n->graph, n->children[0], UC_OP_FLUSH, 0, NULL, 0);
	pthread_mutex_unlock(&f->cache_lock);
	free(buf);
	return ret;
}

/* A clean stop: the queues are gone, what is cached goes to the child (a disk's cache too). */
void fault_deactivate(struct uc_node *n)
{
	struct fault *f = n->priv;
	int ret;

	if (!f->cache.slots || fault_cache_dead(f) || !wcache_bytes(&f->cache))
		return;
	ret = cache_write_back_sync(n, f);
	if (ret)
		uc_err("%s: writing the cache back at stop failed: %s", n->name, strerror(-ret));
}

/* ---- lose_unflushed from the admin thread (f->lock held) ---- */

int fault_cache_crash(struct uc_node *n, struct fault *f, bool on, char *reply, size_t len)
{
	uint64_t lost;

	if (!on) {
		if (!atomic_exchange(&f->crashed, false)) {
			snprintf(reply, len, "crash=off (it was not on)");
			return 0;
		}
		snprintf(reply, len, "crash=off: the child's data is served again");
		return 0;
	}
	if (!atomic_load(&f->lose)) {
		snprintf(reply, len, "fault: crash needs lose_unflushed on");
		return -EINVAL;
	}
	pthread_mutex_lock(&f->cache_lock);
	lost = wcache_bytes(&f->cache);
	wcache_drop(&f->cache);
	atomic_store(&f->crashed, true);
	f->epoch_want = 0;
	pthread_mutex_unlock(&f->cache_lock);
	uc_wake(&f->epoch);	/* parked requests fail now */
	uc_info("%s: power cut: %llu bytes of unflushed writes lost", n->name,
		(unsigned long long)lost);
	snprintf(reply, len, "crash=on: %llu bytes of unflushed writes lost; every request fails",
		 (unsigned long long)lost);
	return 0;
}

int fault_cache_on(struct uc_node *n, struct fault *f, char *reply, size_t len)
{
	if (atomic_load(&f->lose)) {
		snprintf(reply, len, "lose_unflushed=on");
		return 0;
	}
	if (n->graph->running_zero_copy || atomic_load(&f->draining)) {
		snprintf(reply, len, atomic_load(&f->draining) ?
			 "fault: lose_unflushed is being switched off" :
			 "fault: lose_unflushed needs the copy path: this device runs zero copy "
			 "(set it in the config, or device.zero_copy = false)");
		return -EBUSY;
	}
	if (cache_alloc(f)) {
		snprintf(reply, len, "fault: cannot allocate %llu bytes (unflushed_max)",
			 (unsigned long long)f->cache_size);
		return -ENOMEM;
	}
	atomic_store(&f->lose, true);
	snprintf(reply, len, "lose_unflushed=on");
	return 0;
}

/* Writes go direct from now; flush epochs empty the cache; then reads go direct too. */
int fault_cache_off(struct uc_node *n, struct fault *f, char *reply, size_t len)
{
	uint64_t want;
	int waited = 0;

	if (!atomic_load(&f->lose)) {
		snprintf(reply, len, "lose_unflushed=off");
		return 0;
	}
	atomic_store(&f->draining, true);
	atomic_store(&f->lose, false);
	for (;;) {
		pthread_mutex_lock(&f->cache_lock);
		if (fault_cache_dead(f) || !wcache_bytes(&f->cache)) {
			if (fault_cache_dead(f))
				wcache_drop(&f->cache);
			atomic_store(&f->draining, false);
			pthread_mutex_unlock(&f->cache_lock);
			break;
		}
		want = epoch_needed(f);
		pthread_mutex_unlock(&f->cache_lock);
		while (atomic_load(&f->epochs_done) < want && waited < 60000) {
			uc_graph_kick(n->graph);
			usleep(5000);
			waited += 5;
		}
		if (waited >= 60000) {
			snprintf(reply, len, "fault: the cache was not written back within 60 s; "
				 "writes go direct, it is still being emptied");
			return -ETIMEDOUT;
		}
	}
	snprintf(reply, len, "lose_unflushed=off");
	return 0;
}
