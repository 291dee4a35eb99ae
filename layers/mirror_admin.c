/* SPDX-License-Identifier: MIT */
/*
 * mirror: admin commands, on the admin thread while the queues serve:
 * fail a leg, replace a file leg, add a leg (the queues pause while the
 * tree grows), run a scrub to the end and report it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "events.h"
#include "log.h"
#include "mirror.h"

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
		/* out because it was unreachable: now it stays out when it comes back */
		leg_keep_out(m, i);
		pthread_mutex_unlock(&m->lock);
		snprintf(reply, len, "%s is already %s", n->children[i]->name,
			 mirror_leg_state_name(leg_state(m, i)));
		return -EALREADY;
	}
	if (in_sync_legs(m) == 1U << i) {
		pthread_mutex_unlock(&m->lock);
		snprintf(reply, len, "%s is the last in-sync leg of %s: not failing it",
			 n->children[i]->name, n->name);
		return -EBUSY;
	}
	mirror_leg_fail(n, m, i, "failed by the administrator");
	leg_keep_out(m, i);
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
	mirror_new_uuid(m->legs[i].uuid);
	atomic_store(&m->legs[i].errors, 0);
	atomic_store(&m->legs[i].read_errors, 0);
	atomic_store(&m->legs[i].state, LEG_REBUILDING_FULL);
	m->rs_targets |= 1U << i;
	m->rs_total = 0;
	for (uint64_t k = 0; k < m->nbits; k++) {
		atomic_store(&m->need[k], 1);
		m->rs_total += 1ULL << m->chunk_shift;
	}
	atomic_store(&m->nr_need, m->nbits);
	m->rs_narrow_hi = 0;
	mirror_bad_clear(m, 1U << i, 0, n->size);	/* a new leg: its old records mean nothing */
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
	uc_event(n, UC_EV_REBUILD_STARTED, "full rebuild from leg %u to legs 0x%x", m->rs_source,
		 m->rs_targets);
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
	if (in_sync_legs(m) == 1U << i) {
		pthread_mutex_unlock(&m->lock);
		snprintf(reply, len, "%s is the only in-sync leg: nothing to rebuild it from", c->name);
		return -EBUSY;
	}
	mirror_leg_fail(n, m, i, "being replaced");
	leg_keep_out(m, i);
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
	uc_event_count(n, UC_EV_SCRUB_FINISHED, m->scrub_bad, "%llu bytes differ%s",
		       (unsigned long long)m->scrub_bad, m->scrub_aborted ? " (interrupted)" : "");
	if (m->scrub_aborted)
		return -EINTR;
	return m->scrub_bad ? 1 : 0;
}

/* Admin: "fail" LEG, "replace" "LEG PATH" (LEG: a child's name), "add" PATH, "scrub[-repair]". */
int mirror_ctl(struct uc_node *n, const char *key, const char *value, char *reply,
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
