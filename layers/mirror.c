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
 *
 * The layer's files: see mirror.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include "crc32c.h"
#include "events.h"
#include "log.h"
#include "mirror.h"

/* ---- config ---- */

/* the keys parse accepts (ops.keys; ublk-compose.conf(5) documents each) */
static const char *const mirror_keys[] = { "type", "children", "read_policy", "bitmap_chunk",
					   "resync_rate", "assume_clean", "write_mostly", NULL };

/*
 * write_mostly = [ "leg name", ... ]: legs that serve reads only when no
 * other leg can (mdadm --write-mostly), e.g. a leg over the network.
 * A leg is named by its `name` or its path (volume.children[1]).
 */
static int parse_write_mostly(struct uc_node *n, struct mirror *m, const config_setting_t *cfg)
{
	const config_setting_t *list = config_setting_get_member(cfg, "write_mostly");

	if (!list)
		return 0;
	if (!config_setting_is_array(list) && !config_setting_is_list(list))
		return uc_conf_err(list, "write_mostly must be a list of leg names [ \"b\", ... ]");
	for (int k = 0; k < config_setting_length(list); k++) {
		const config_setting_t *e = config_setting_get_elem(list, k);
		const char *name = config_setting_get_string(e);
		unsigned int i;

		if (!name)
			return uc_conf_err(e, "write_mostly must be a list of leg names [ \"b\", ... ]");
		for (i = 0; i < n->nr_children; i++)
			if (!strcmp(n->children[i]->name, name))
				break;
		if (i == n->nr_children)
			return uc_conf_err(e, "write_mostly: '%s' is not a leg of this mirror", name);
		m->write_mostly |= 1U << i;
	}
	return 0;
}

static int mirror_parse(struct uc_node *n, const config_setting_t *cfg)
{
	uint64_t chunk = 64ULL << 20, smallest = UINT64_MAX;
	const char *policy = "least-pending";
	struct mirror *m;
	int ret;

	if (uc_conf_check_keys(cfg, mirror_keys, "mirror"))
		return -EINVAL;
	/* per-queue slots are cache aligned */
	m = aligned_alloc(_Alignof(struct mirror), sizeof(*m));
	if (!m)
		return -ENOMEM;
	memset(m, 0, sizeof(*m));
	n->priv = m;
	for (unsigned int k = 0; k <= UC_MAX_QUEUES; k++)
		for (unsigned int i = 0; i < MIRROR_MAX_LEGS; i++)
			m->qs[k].seq_next[i] = UINT64_MAX;	/* no read yet: none continues one */
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
	if ((ret = parse_write_mostly(n, m, cfg)))
		return ret;
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
	uc_wait_free(&m->meta_wait);
	uc_wait_free(&m->window_wait);
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

void mirror_new_uuid(uint8_t u[16])
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
	uint32_t legs, took = 0;

	if (!buf || !leg_buf) {
		free(buf);
		free(leg_buf);
		return -ENOMEM;
	}
	pthread_mutex_lock(&m->lock);
	legs = live_legs(m);
	mirror_meta_snapshot(m, buf, legs, clean);
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
			mirror_leg_fail(n, m, i, "superblock write failed");
			pthread_mutex_unlock(&m->lock);
		} else {
			took |= 1U << i;
		}
	}
	free(buf);
	free(leg_buf);
	atomic_store(&m->meta_done, m->meta_issued);
	uc_wake(&m->meta_wait);
	/* an in-sync leg must hold it: the next start assembles from such a leg */
	return took & in_sync_legs(m) && !atomic_load(&m->failed) ? 0 : -EIO;
}

static int mirror_activate(struct uc_node *n)
{
	struct mirror *m = n->priv;
	struct mirror_sb sbs[MIRROR_MAX_LEGS], *fresh = NULL;
	int rc[MIRROR_MAX_LEGS], fresh_leg = -1, nr_sb = 0, leg_of_slot[MIRROR_MAX_LEGS];
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
	if (uc_wait_init(&m->meta_wait, n, "mirror metadata", mirror_resume) ||
	    uc_wait_init(&m->window_wait, n, "mirror resync window", mirror_resume)) {
		free(buf);
		return -ENOMEM;
	}
	for (unsigned int k = 0; k < MIRROR_MAX_LEGS; k++)
		leg_of_slot[k] = -1;

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
		mirror_new_uuid(m->sb.array_uuid);
		m->sb.version = MIRROR_VERSION;
		m->sb.layout = MIRROR_LAYOUT;
		m->sb.data_offset = m->data_off;
		m->sb.data_size = n->size;
		m->sb.bitmap_chunk = 1ULL << m->chunk_shift;
		m->sb.bitmap_bits = m->nbits;
		for (unsigned int i = 0; i < m->nr; i++)
			mirror_new_uuid(m->legs[i].uuid);
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
				mirror_new_uuid(m->legs[i].uuid);
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
			leg_of_slot[slot] = i;
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
	/* bad ranges, renumbered to config order; a leg new to the array holds none */
	for (unsigned int k = 0; fresh && k < fresh->nr_bad; k++) {
		uint32_t legs = 0;

		for (unsigned int s = 0; s < fresh->nr_legs; s++)
			if ((fresh->bad[k].legs & (1U << s)) && leg_of_slot[s] >= 0)
				legs |= 1U << leg_of_slot[s];
		if (legs)
			m->bad[m->nr_bad++] = (struct mirror_bad){ fresh->bad[k].off, fresh->bad[k].len, legs };
	}
	if (m->nr_bad)
		uc_warn("%s: %u ranges (%" PRIu64 " bytes) that some legs do not hold (see `ublk-compose status`)",
			n->name, m->nr_bad, mirror_bad_bytes(m));

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
	for (uint64_t c = 0; c < m->nbits; c++) {
		if (atomic_load(&m->need[c])) {
			m->rs_total += 1ULL << m->chunk_shift;
			atomic_fetch_add(&m->nr_need, 1);
			if (atomic_load(&m->need[c]) == 2)
				atomic_store(&m->bits[c], 1);
		}
		if (atomic_load(&m->bits[c]))
			atomic_fetch_add(&m->nr_bits, 1);
	}
	m->rs_active = m->rs_targets && m->rs_total;
	m->rs_pos = 0;
	m->rs_t0 = m->rs_last_ckpt = now_ns();
	if (m->rs_active) {
		char b[32];

		uc_info("%s: resync of %s from leg %u to legs 0x%x%s", n->name,
			uc_size_str(m->rs_total, b, sizeof(b)), m->rs_source, m->rs_targets,
			unclean ? " (not shut down cleanly)" : "");
		uc_event(n, UC_EV_REBUILD_STARTED, "%s from leg %u to legs 0x%x%s", b, m->rs_source,
			 m->rs_targets, unclean ? " (not shut down cleanly)" : "");
	}
	m->last_scan = now_ns();
	m->meta_seq++;
	ret = meta_write_sync(n, m, false);
	if (ret)
		uc_err("%s: no in-sync leg took the superblock", n->name);
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
	/* an unclean stop's resync is not finished (or stopped): the next start must redo it */
	if (atomic_load(&m->nr_need) && (m->rs_targets & in_sync_legs(m)))
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
	/* a resync that stopped (the table of bad ranges was full) left regions unsynced */
	if (atomic_load(&m->nr_need))
		return UC_HEALTH_DEGRADED;
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
	if (m->nr_bad && off < (int)len) {
		char b[32];

		off += snprintf(buf + off, len - off, " bad=%s",
				uc_size_str(mirror_bad_bytes(m), b, sizeof(b)));
	}
	pthread_mutex_unlock(&m->lock);
	for (unsigned int i = 0; i < m->nr && off < (int)len; i++)
		off += snprintf(buf + off, len - off, " [%u %s errors=%llu%s]", i,
				mirror_leg_state_name(leg_state(m, i)),
				(unsigned long long)atomic_load(&m->legs[i].errors),
				m->write_mostly & (1U << i) ? " write-mostly" : "");
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
		       "\"bad_bytes\": %llu, \"bad_ranges\": [", uuid, (unsigned long long)m->sb.events,
		       1ULL << m->chunk_shift, m->rs_active ? "true" : "false", pct, eta,
		       (unsigned long long)m->rs_done, (unsigned long long)m->rs_total,
		       (unsigned long long)atomic_load(&m->corrected),
		       (unsigned long long)mirror_bad_bytes(m));
	/* ranges some legs do not hold (the first 16: status lines are 4K) */
	for (unsigned int i = 0; i < m->nr_bad && i < 16 && off < (int)len; i++) {
		off += snprintf(buf + off, len - off, "%s{\"offset\": %llu, \"length\": %llu, \"legs\": [",
				i ? ", " : "", (unsigned long long)m->bad[i].off,
				(unsigned long long)m->bad[i].len);
		for (unsigned int k = 0, first = 1; k < m->nr && off < (int)len; k++)
			if (m->bad[i].legs & (1U << k)) {
				off += snprintf(buf + off, len - off, "%s%u", first ? "" : ", ", k);
				first = 0;
			}
		if (off < (int)len)
			off += snprintf(buf + off, len - off, "]}");
	}
	pthread_mutex_unlock(&m->lock);
	if (off < (int)len)
		off += snprintf(buf + off, len - off, "], \"legs\": [");
	for (unsigned int i = 0; i < m->nr && off < (int)len; i++) {
		mirror_uuid_str(m->legs[i].uuid, uuid);
		off += snprintf(buf + off, len - off,
				"%s{\"index\": %u, \"node\": \"%s\", \"state\": \"%s\", \"errors\": %llu, \"uuid\": \"%s\", \"write_mostly\": %s}",
				i ? ", " : "", i, n->children[i]->name,
				mirror_leg_state_name(leg_state(m, i)),
				(unsigned long long)atomic_load(&m->legs[i].errors), uuid,
				m->write_mostly & (1U << i) ? "true" : "false");
	}
	if (off < (int)len)
		off += snprintf(buf + off, len - off, "]");
	return off;
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
