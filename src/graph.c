/* SPDX-License-Identifier: MIT */
/* Builds the layer tree from the config, sizes the per-tag arenas. */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "disk.h"
#include "events.h"
#include "graph.h"
#include "io.h"
#include "log.h"
#include "wait.h"

const char *const uc_recovery_names[] = { "reissue", "requeue", "fail", "off", NULL };

#define UC_MAX_DEPTH	16	/* nesting limit: keeps recursion bounded */
#define UC_MAX_IOV	1024	/* IOV_MAX: what one readv/writev accepts */

static int node_depth(const struct uc_node *n)
{
	int d = 0;

	for (; n; n = n->parent)
		d++;
	return d;
}

/* name = "..." or the node's path from the root: volume.children[1].children[0] */
static int node_name(struct uc_graph *g, struct uc_node *parent, const config_setting_t *cfg,
		     struct uc_node *n)
{
	const char *name = NULL;
	int ret = uc_conf_string(cfg, "name", &name);

	if (ret < 0)
		return ret;
	if (ret) {
		if (!*name || strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != strlen(name))
			return uc_conf_err(config_setting_get_member(cfg, "name"),
					   "name must be letters, digits, '_', '-', '.'");
		for (unsigned int i = 0; i + 1 < g->nr_nodes; i++)
			if (!strcmp(g->nodes[i]->name, name))
				return uc_conf_err(config_setting_get_member(cfg, "name"),
						   "name '%s' is used twice", name);
		n->name = strdup(name);
	} else if (!parent) {
		n->name = strdup("volume");
	} else if (asprintf(&n->name, "%s.children[%u]", parent->name, parent->nr_children) < 0) {
		n->name = NULL;
	}
	return n->name ? 0 : -ENOMEM;
}

struct uc_node *uc_graph_find(const struct uc_graph *g, const char *name)
{
	for (unsigned int i = 0; i < g->nr_nodes; i++)
		if (g->nodes[i]->name && !strcmp(g->nodes[i]->name, name))
			return g->nodes[i];
	return NULL;
}

static int node_parse(struct uc_graph *g, struct uc_node *parent, const config_setting_t *cfg,
		      struct uc_node **out)
{
	const struct uc_layer_ops *ops;
	struct uc_node *n, **nodes;
	const char *type = NULL;
	int ret;

	if (!config_setting_is_group(cfg))
		return uc_conf_err(cfg, "a layer must be a group { type = \"...\"; ... }");
	ret = uc_conf_string(cfg, "type", &type);
	if (ret < 0)
		return ret;
	if (!ret)
		return uc_conf_err(cfg, "layer has no type");
	ops = uc_layer_find(type);
	if (!ops)
		return uc_conf_err(config_setting_get_member(cfg, "type"),
				   "unknown layer type '%s'", type);
	if (parent && node_depth(parent) >= UC_MAX_DEPTH)
		return uc_conf_err(cfg, "layers nested deeper than %d", UC_MAX_DEPTH);

	n = calloc(1, sizeof(*n));
	nodes = realloc(g->nodes, (g->nr_nodes + 1) * sizeof(*nodes));
	if (!n || !nodes) {
		free(n);
		if (nodes)
			g->nodes = nodes;
		return -ENOMEM;
	}
	g->nodes = nodes;
	n->ops = ops;
	n->graph = g;
	n->parent = parent;
	n->index = g->nr_nodes;
	n->file_index = -1;
	n->fd = -1;
	n->max_subs = 1;
	n->child_subs = 1;
	n->conf_file = config_setting_source_file(cfg);
	n->conf_line = config_setting_source_line(cfg);
	n->cfg = (config_setting_t *)cfg;
	g->nodes[g->nr_nodes++] = n;	/* owned by g from here, freed on error too */
	*out = n;
	if ((ret = node_name(g, parent, cfg, n)))
		return ret;
	ret = ops->parse(n, cfg);
	if (!ret && n->qstate_size) {
		/* one slot per queue id, each on cache lines of its own */
		n->qstate_stride = (n->qstate_size + UC_CACHELINE - 1) / UC_CACHELINE * UC_CACHELINE;
		n->qstate = aligned_alloc(UC_CACHELINE, n->qstate_stride * (UC_MAX_QUEUES + 1));
		if (!n->qstate)
			return -ENOMEM;
		memset(n->qstate, 0, n->qstate_stride * (UC_MAX_QUEUES + 1));
	}
	return ret;
}

int uc_node_parse_children(struct uc_node *n, const config_setting_t *cfg, unsigned int min)
{
	const config_setting_t *list = config_setting_get_member(cfg, "children");
	unsigned int nr;

	if (!list)
		return uc_conf_err(cfg, "%s needs children = ( ... )", n->ops->name);
	if (!config_setting_is_list(list) && !config_setting_is_array(list))
		return uc_conf_err(list, "children must be a list ( {...}, {...} )");
	nr = config_setting_length(list);
	if (nr < min)
		return uc_conf_err(list, "%s needs at least %u children, has %u",
				   n->ops->name, min, nr);
	n->children = calloc(nr, sizeof(*n->children));
	if (!n->children)
		return -ENOMEM;
	for (unsigned int i = 0; i < nr; i++) {
		int ret = node_parse(n->graph, n, config_setting_get_elem(list, i), &n->children[i]);

		if (ret)
			return ret;
		n->nr_children++;
	}
	return 0;
}

int uc_graph_add_leaf(struct uc_graph *g, struct uc_node *n)
{
	struct uc_node **l = realloc(g->leaves, (g->nr_leaves + 1) * sizeof(*l));

	if (!l)
		return -ENOMEM;
	g->leaves = l;
	n->file_index = g->nr_leaves;
	g->leaves[g->nr_leaves++] = n;
	return 0;
}

const char *const uc_device_keys[] = { "queues", "depth", "max_io", "block_size", "id",
				       "recovery", "zero_copy", "name", "space_warn", "batch",
				       "scheduler", "spin_us", NULL };
const char *const uc_top_keys[] = { "device", "volume", NULL };

static int dev_parse(struct uc_graph *g, const config_setting_t *d)
{
	const char *rec, *sched;
	struct uc_dev_conf *c = &g->dev;
	uint64_t max_io;
	long long v;
	int ret;

	if (!config_setting_is_group(d))
		return uc_conf_err(d, "device must be a group { ... }");
	if (uc_conf_check_keys(d, uc_device_keys, "device"))
		return -EINVAL;
	if ((ret = uc_conf_int_range(d, "queues", 1, 64, &v)) < 0)
		return ret;
	if (ret)
		c->queues = v;
	if ((ret = uc_conf_int_range(d, "depth", 1, 4096, &v)) < 0)
		return ret;
	if (ret)
		c->depth = v;
	if ((ret = uc_conf_size(d, "max_io", &max_io)) < 0)
		return ret;
	if (ret && (max_io < 4096 || max_io > (32 << 20) || max_io % 4096))
		return uc_conf_err(config_setting_get_member(d, "max_io"),
				   "max_io must be a multiple of 4K from 4K to 32M");
	if (ret)
		c->max_io = max_io;
	if ((ret = uc_conf_int(d, "block_size", &v)) < 0)
		return ret;
	if (ret && v != 512 && v != 4096)
		return uc_conf_err(config_setting_get_member(d, "block_size"),
				   "block_size must be 512 or 4096");
	if (ret)
		c->block_size = v;
	if ((ret = uc_conf_int(d, "id", &v)) < 0)
		return ret;
	if (ret && (v < -1 || v > 1048575))
		return uc_conf_err(config_setting_get_member(d, "id"), "id must be -1 or a device number");
	if (ret)
		c->id = v;
	if ((ret = uc_conf_string(d, "recovery", &rec)) < 0)
		return ret;
	for (c->recovery = 0; ret && uc_recovery_names[c->recovery]; c->recovery++)
		if (!strcmp(rec, uc_recovery_names[c->recovery]))
			break;
	if (!uc_recovery_names[c->recovery])
		return uc_conf_err(config_setting_get_member(d, "recovery"),
				   "recovery must be \"reissue\", \"requeue\", \"fail\" or \"off\"");
	if (!ret)
		c->recovery = UC_RECOVERY_REISSUE;
	if (uc_conf_bool(d, "zero_copy", &c->zero_copy) < 0)
		return -EINVAL;
	if ((ret = uc_conf_bool(d, "batch", &c->batch)) < 0)
		return -EINVAL;
	/* a batched hand-over leaves requests to the next server, which "requeue" fails */
	if (!ret)
		c->batch = c->recovery != UC_RECOVERY_REQUEUE;
	if ((ret = uc_conf_string(d, "scheduler", &sched)) < 0)
		return ret;
	if (!ret)
		sched = "none";
	for (unsigned int i = 0;; i++) {
		if (!uc_schedulers[i])
			return uc_conf_err(config_setting_get_member(d, "scheduler"),
					   "scheduler must be \"none\", \"mq-deadline\", \"bfq\", "
					   "\"kyber\" or \"kernel\"");
		if (!strcmp(sched, uc_schedulers[i]))
			break;
	}
	snprintf(c->scheduler, sizeof(c->scheduler), "%s", sched);
	if ((ret = uc_conf_int_range(d, "spin_us", 0, 1000, &v)) < 0)
		return ret;
	if (ret)
		c->spin_us = v;
	return 0;
}

/* Arena sums while size_arenas() walks the tree, in 64 bits: they are checked before use. */
struct arena_sum {
	uint64_t subs, iovs;
};

static int arena_err(const struct uc_graph *g, const struct uc_node *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int arena_err(const struct uc_graph *g, const struct uc_node *n, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: ", n->conf_file ? n->conf_file : g->conf_path, n->conf_line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return -EINVAL;
}

/*
 * Top-down: how many iovecs each node's subs may carry and how many subs of
 * a node one request can use (a mirror sends a child up to child_subs subs
 * per sub of its own); sums: arena sizes and internal tags. A sub's slot
 * number must fit the 16 bits user_data has for it (UC_MAX_SUBS).
 */
static int size_arenas(struct uc_graph *g, struct uc_node *n, unsigned int max_iov,
		       struct arena_sum *sum)
{
	uint64_t subs = n->parent ? (uint64_t)n->parent->max_subs * n->parent->child_subs : 1;
	char b[32];

	n->max_iov = max_iov;
	g->nr_internal += n->internal_ios;
	if (n->internal_buf > g->internal_buf)
		g->internal_buf = n->internal_buf;
	if (max_iov > UC_MAX_IOV)
		return arena_err(g, n, "a %s request would need %u iovecs here (more than %d): use a larger chunk or a smaller max_io",
				 uc_size_str(g->dev.max_io, b, sizeof(b)), max_iov, UC_MAX_IOV);
	if (sum->subs + subs > UC_MAX_SUBS) {
		/* point at the layer whose fan-out got there */
		const struct uc_node *at = n->parent && n->parent->child_subs > 1 ? n->parent : n;

		return arena_err(g, at, "a %s request could need more than %u sub-requests %s %s: use a smaller max_io",
				 uc_size_str(g->dev.max_io, b, sizeof(b)), UC_MAX_SUBS,
				 at == n ? "at this" : "below this", at->ops->name);
	}
	n->max_subs = subs;
	sum->subs += subs;
	sum->iovs += subs * max_iov;
	for (unsigned int i = 0; i < n->nr_children; i++) {
		unsigned int c = n->ops->child_max_iov ?
			n->ops->child_max_iov(n, max_iov, g->dev.max_io) : max_iov;
		int ret = size_arenas(g, n->children[i], c, sum);

		if (ret)
			return ret;
	}
	return 0;
}

/* Bytes of one tag's arenas. */
static uint64_t tag_bytes(uint64_t subs, uint64_t iovs, unsigned int sub_priv)
{
	return subs * (sizeof(struct uc_sub) + sub_priv) + iovs * sizeof(struct iovec);
}

uint64_t uc_graph_arena_bytes(const struct uc_graph *g)
{
	return tag_bytes(g->nr_subs, g->nr_iovs, g->sub_priv) * (g->dev.depth + g->nr_internal);
}

/* (Re)compute every node's max_subs/max_iov and g's arena sizes; checks the per-queue cap. */
static int size_graph(struct uc_graph *g)
{
	struct arena_sum sum = { 0, 0 };
	uint64_t bytes;
	char b1[32], b2[32];
	int ret;

	g->nr_subs = g->nr_iovs = g->nr_internal = 0;
	g->internal_buf = 0;
	ret = size_arenas(g, g->root, 1, &sum);
	if (ret)
		return ret;
	/* every sub slot can hold any node's private data: the largest, 16-byte aligned */
	g->sub_priv = 0;
	for (unsigned int i = 0; i < g->nr_nodes; i++)
		if (g->nodes[i]->sub_priv_size > g->sub_priv)
			g->sub_priv = g->nodes[i]->sub_priv_size;
	g->sub_priv = (g->sub_priv + 15) & ~15U;
	bytes = tag_bytes(sum.subs, sum.iovs, g->sub_priv) * (g->dev.depth + g->nr_internal);
	if (bytes > UC_MAX_ARENA_BYTES) {
		const config_setting_t *d = config_lookup(&g->cfg, "device");
		const config_setting_t *mi = d ? config_setting_get_member(d, "max_io") : NULL;

		if (mi)
			return uc_conf_err(mi, "%u tags of %llu sub-requests and %llu iovecs need %s of arenas per queue (at most %s): use a smaller max_io or depth",
					   g->dev.depth + g->nr_internal, (unsigned long long)sum.subs,
					   (unsigned long long)sum.iovs, uc_size_str(bytes, b1, sizeof(b1)),
					   uc_size_str(UC_MAX_ARENA_BYTES, b2, sizeof(b2)));
		return arena_err(g, g->root, "%u tags of %llu sub-requests and %llu iovecs need %s of arenas per queue (at most %s): use a smaller max_io or depth",
				 g->dev.depth + g->nr_internal, (unsigned long long)sum.subs,
				 (unsigned long long)sum.iovs, uc_size_str(bytes, b1, sizeof(b1)),
				 uc_size_str(UC_MAX_ARENA_BYTES, b2, sizeof(b2)));
	}
	g->nr_subs = sum.subs;
	g->nr_iovs = sum.iovs;
	return 0;
}

static char *dir_of(const char *path)
{
	char *copy = strdup(path), *d;

	if (!copy)
		return NULL;
	d = strdup(dirname(copy));
	free(copy);
	return d;
}

int uc_graph_load(struct uc_graph *g, const char *path)
{
	return uc_graph_load_in(g, path, NULL);
}

/*
 * Zero copy if every layer allows it and the config does; user_copy leaves
 * take part through UBLK_F_USER_COPY, but only beside a leaf that reads
 * the kernel's pages itself (alone they would pay a syscall per piece for
 * nothing: the copy path copies as much, inside the kernel).
 */
static void zero_copy_plan(struct uc_graph *g)
{
	bool direct_leaf = false;

	g->zero_copy = g->dev.zero_copy;
	g->user_copy = false;
	for (unsigned int i = 0; i < g->nr_nodes; i++) {
		const struct uc_node *n = g->nodes[i];

		g->zero_copy &= (n->ops->zero_copy || n->ops->user_copy) && !n->needs_data;
		g->user_copy |= !n->ops->zero_copy && n->ops->user_copy;
		direct_leaf |= !n->nr_children && n->ops->zero_copy;
	}
	g->zero_copy &= direct_leaf;
	g->user_copy &= g->zero_copy;
}

int uc_graph_load_in(struct uc_graph *g, const char *path, const char *dir)
{
	const config_setting_t *top, *d, *vol;
	int ret;

	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->queues_lock, NULL);
	pthread_mutex_init(&g->conf_lock, NULL);
	pthread_rwlock_init(&g->admin_lock, NULL);
	for (unsigned int i = 0; i <= UC_MAX_QUEUES; i++)
		g->kick_fd[i] = -1;
	config_init(&g->cfg);
	g->dev = (struct uc_dev_conf){ .queues = 1, .depth = 128, .max_io = 512 << 10,
				       .block_size = 512, .id = -1, .zero_copy = true,
				       .batch = true, .scheduler = "none" };
	g->conf_path = strdup(path);
	g->conf_dir = dir ? strdup(dir) : dir_of(path);
	if (!g->conf_path || !g->conf_dir)
		return -ENOMEM;
	if (!config_read_file(&g->cfg, path)) {
		if (config_error_type(&g->cfg) == CONFIG_ERR_FILE_IO)
			fprintf(stderr, "%s: cannot read: %s\n", path, strerror(errno ? errno : EIO));
		else
			fprintf(stderr, "%s:%d: %s\n",
				config_error_file(&g->cfg) ? config_error_file(&g->cfg) : path,
				config_error_line(&g->cfg), config_error_text(&g->cfg));
		return -EINVAL;
	}
	top = config_root_setting(&g->cfg);
	if (uc_conf_check_keys(top, uc_top_keys, "the top level"))
		return -EINVAL;
	d = config_setting_get_member(top, "device");
	if (d && (ret = dev_parse(g, d)))
		return ret;
	/* src/names.c, src/events.c */
	if ((ret = uc_name_parse(d, path, g->dev.name)) ||
	    (ret = uc_event_parse_conf(d, &g->dev.space_warn)))
		return ret;
	vol = config_setting_get_member(top, "volume");
	if (!vol) {
		fprintf(stderr, "%s:1: no volume = { type = ...; } defined\n", path);
		return -EINVAL;
	}
	ret = node_parse(g, NULL, vol, &g->root);
	if (ret)
		return ret;
	g->size = g->root->size / g->dev.block_size * g->dev.block_size;
	zero_copy_plan(g);
	if (!g->size)
		return uc_conf_err(vol, "volume size is 0");
	return size_graph(g);
}

int uc_graph_open(struct uc_graph *g)
{
	for (unsigned int i = 0; i < g->nr_nodes; i++) {
		struct uc_node *n = g->nodes[i];
		int ret;

		/* on failure uc_graph_free() closes (and unlinks what was created) */
		if (n->ops->open && (ret = n->ops->open(n)))
			return ret;
	}
	/* children before parents: a mirror of mirrors assembles the inner ones first */
	for (unsigned int i = g->nr_nodes; i--;) {
		struct uc_node *n = g->nodes[i];
		int ret;

		if (n->ops->activate && (ret = n->ops->activate(n))) {
			uc_graph_sync_done(g);
			return ret;
		}
	}
	uc_graph_sync_done(g);
	g->opened = true;
	return 0;
}

/* Close and free nodes[from..]: they are the last ones, and so are their leaves. */
static void drop_nodes(struct uc_graph *g, unsigned int from)
{
	for (unsigned int i = g->nr_nodes; i-- > from;) {
		struct uc_node *n = g->nodes[i];

		if (n->file_index >= 0 && (unsigned int)n->file_index < g->nr_leaves)
			g->nr_leaves = n->file_index;
		if (n->ops->close)
			n->ops->close(n);
		free(n->qstate);
		free(n->name);
		free(n->children);
		free(n);
	}
	g->nr_nodes = from;
}

int uc_graph_new_child(struct uc_node *parent, config_setting_t *cfg, struct uc_node **out)
{
	struct uc_graph *g = parent->graph;
	unsigned int from = g->nr_nodes;
	struct uc_node *c = NULL;
	int ret = node_parse(g, parent, cfg, &c);

	for (unsigned int i = from; !ret && i < g->nr_nodes; i++)
		if (g->nodes[i]->ops->open)
			ret = g->nodes[i]->ops->open(g->nodes[i]);
	for (unsigned int i = g->nr_nodes; !ret && i-- > from;)
		if (g->nodes[i]->ops->activate)
			ret = g->nodes[i]->ops->activate(g->nodes[i]);
	uc_graph_sync_done(g);
	if (ret) {
		drop_nodes(g, from);
		return ret;
	}
	*out = c;
	return 0;
}

void uc_graph_drop_child(struct uc_node *c)
{
	struct uc_graph *g = c->graph;
	config_setting_t *list = config_setting_parent(c->cfg);

	pthread_mutex_lock(&g->conf_lock);
	if (list)
		config_setting_remove_elem(list, config_setting_index(c->cfg));
	pthread_mutex_unlock(&g->conf_lock);
	drop_nodes(g, c->index);
}

int uc_graph_attach_child(struct uc_node *c)
{
	struct uc_node *p = c->parent;
	struct uc_graph *g = c->graph;
	struct uc_node **ch = realloc(p->children, (p->nr_children + 1) * sizeof(*ch));
	unsigned int subs = g->nr_subs, iovs = g->nr_iovs, internal = g->nr_internal;
	uint32_t ibuf = g->internal_buf;
	int ret;

	if (!ch)
		return -ENOMEM;
	p->children = ch;
	ch[p->nr_children++] = c;
	ret = size_graph(g);
	/* a queue's internal tags and their buffers cannot change under it */
	if (!ret && (g->nr_internal != internal || g->internal_buf > ibuf))
		ret = -EINVAL;
	g->internal_buf = ibuf;
	pthread_mutex_lock(&g->queues_lock);
	for (unsigned int i = 0; !ret && i <= UC_MAX_QUEUES; i++)
		if (g->queues[i])
			ret = uc_queue_resize(g->queues[i]);
	pthread_mutex_unlock(&g->queues_lock);
	if (ret) {
		/* queues already resized keep their larger arenas: harmless */
		p->nr_children--;
		size_graph(g);
		g->nr_subs = subs;
		g->nr_iovs = iovs;
		g->nr_internal = internal;
		g->internal_buf = ibuf;
	}
	return ret;
}

int uc_graph_save(struct uc_graph *g, const char *path)
{
	char tmp[4096];
	int ret = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	pthread_mutex_lock(&g->conf_lock);
	if (!config_write_file(&g->cfg, tmp))
		ret = -EIO;
	pthread_mutex_unlock(&g->conf_lock);
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

void uc_graph_free(struct uc_graph *g)
{
	for (unsigned int i = 0; g->opened && i < g->nr_nodes; i++)
		if (g->nodes[i]->ops->deactivate)
			g->nodes[i]->ops->deactivate(g->nodes[i]);
	uc_graph_sync_done(g);
	for (unsigned int i = g->nr_nodes; i--;) {
		struct uc_node *n = g->nodes[i];

		if (n->ops->close)
			n->ops->close(n);
		free(n->qstate);
		free(n->name);
		free(n->children);
		free(n);
	}
	free(g->nodes);
	free(g->leaves);
	free(g->conf_path);
	free(g->conf_dir);
	config_destroy(&g->cfg);
	memset(g, 0, sizeof(*g));
}

static void print_node(const struct uc_node *n, FILE *out, int depth)
{
	char size[32], line[512] = "";

	if (n->ops->status)
		n->ops->status(n, line, sizeof(line));
	fprintf(out, "%*s%-8s %8s  %s  [%s]\n", depth * 2, "", n->ops->name,
		uc_size_str(n->size, size, sizeof(size)), line, n->name);
	for (unsigned int i = 0; i < n->nr_children; i++)
		print_node(n->children[i], out, depth + 1);
}

void uc_graph_print(const struct uc_graph *g, FILE *out)
{
	char size[32], mi[32];

	fprintf(out, "device   %8s  %" PRIu64 " bytes, queues=%u depth=%u max_io=%s block_size=%u name=%s\n",
		uc_size_str(g->size, size, sizeof(size)), g->size, g->dev.queues, g->dev.depth,
		uc_size_str(g->dev.max_io, mi, sizeof(mi)), g->dev.block_size, g->dev.name);
	print_node(g->root, out, 1);
}
