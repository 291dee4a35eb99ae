/* SPDX-License-Identifier: MIT */
/*
 * The layer interface. A volume is a tree of nodes; each node is an instance
 * of a layer (file, stripe, concat, ...). A request enters the root as a
 * struct uc_sub and each layer maps it onto sub-requests of its children
 * (uc_child_submit) or, at the leaves, onto SQEs on the queue's ring.
 *
 * Lifetime of a sub: it holds a reference count `pending`. Every child sub
 * and every SQE in flight holds one; the core holds one while submit runs.
 * When the count drops to zero the layer's optional end() runs (it may issue
 * more and keep the sub alive), then the parent's child_end() sees the
 * finished child (by default its -errno becomes the parent's), and the
 * parent loses a reference. The root's end commits the ublk request.
 *
 * Layers can also start requests of their own (metadata, resync) on a
 * queue's internal tags: uc_internal_get()/uc_internal_start() in io.h.
 * A leaf that talks to something other than a file (a network connection)
 * has the queue poll its fd on the ring: struct uc_watch in io.h.
 *
 * Nothing here allocates per I/O: subs and iovecs come from per-tag arenas
 * sized from the graph (uc_node.max_subs, uc_node.max_iov) when it is built.
 */
#ifndef UC_LAYER_H
#define UC_LAYER_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>
#include <libconfig.h>

struct uc_queue;
struct uc_io;
struct uc_graph;

/* Ops inside the graph; values match UBLK_IO_OP_* for the ones shared. */
enum uc_op {
	UC_OP_READ = 0,
	UC_OP_WRITE = 1,
	UC_OP_FLUSH = 2,
	UC_OP_DISCARD = 3,
	UC_OP_WRITE_ZEROES = 5,
	UC_OP_PRIVATE = 0x20,	/* from here: a layer's own ops on internal requests */
};

#define UC_F_FUA	(1U << 0)	/* write through: RWF_DSYNC on member writes */
#define UC_F_NOUNMAP	(1U << 1)	/* write-zeroes must keep the range allocated */

struct uc_sub {
	struct uc_node *node;
	struct uc_sub *parent;
	struct uc_io *io;	/* the tag this request belongs to */
	uint16_t idx;		/* slot in io->subs: goes into SQE user_data */
	uint8_t op;		/* enum uc_op */
	uint8_t flags;		/* UC_F_* */
	/*
	 * READ: which copy redundant layers below serve. 0: their choice (and
	 * they retry others on errors); k >= 1: the k-th copy, -ENODATA if
	 * there are fewer. A checksumming layer above asks for the others
	 * when a copy fails its checksum. Children inherit it.
	 */
	uint8_t copy;
	uint32_t child;		/* index of node in parent->node->children */
	int pending;		/* references: children + SQEs + submit bias */
	int result;		/* 0 or the first -errno seen */
	/*
	 * Untyped layer scratch (state, mask, scratch), kept until mirror and
	 * compress move to the typed private data (UC_SUB_PRIV()).
	 */
	uint32_t mask;		/* e.g. children that failed */
	uint64_t off;		/* bytes, in node's address space */
	uint64_t len;		/* bytes */
	struct iovec *iov;	/* READ/WRITE data, inside the tag buffer */
	unsigned int nr_iov;
	unsigned int state;	/* e.g. a phase */
	uint64_t scratch;	/* e.g. the commit a parked sub waits for */
	void *priv;		/* node->sub_priv_size bytes of private data: UC_SUB_PRIV() */
	void *pctx;		/* the parent layer's note on this child sub (its cluster job) */
	struct uc_sub *next;	/* list link while parked: uc_park()'s, or a layer's own list */
};

struct uc_node {
	const struct uc_layer_ops *ops;
	struct uc_graph *graph;
	struct uc_node *parent;
	struct uc_node **children;
	unsigned int nr_children;
	unsigned int index;	/* position in graph->nodes */
	uint64_t size;		/* bytes exposed to the parent */
	uint32_t io_min;	/* bytes: smallest efficient I/O (0 = block size) */
	uint32_t io_opt;	/* bytes: optimal I/O (0 = none) */
	bool can_discard;	/* DISCARD/WRITE_ZEROES reach every leaf */
	bool created;		/* leaves: open() created the file (it holds no data yet) */
	bool needs_data;	/* this instance reads or changes the data: no zero copy */
	unsigned int max_subs;	/* subs of this node one request can hold (>= 1) */
	unsigned int child_subs;	/* subs one sub of this node may send to one child (>= 1) */
	unsigned int internal_ios;	/* internal tags this node needs per queue */
	uint32_t internal_buf;	/* bytes an internal tag's buffer must hold */
	char *name;		/* conf name = "...", or a path like volume.children[1] */
	unsigned int max_iov;	/* iovecs one sub of this node can carry */
	int file_index;		/* leaves: registered file slot, else -1 */
	int fd;			/* leaves: open file, else -1 */
	const char *conf_file;	/* for messages: where the node was defined */
	int conf_line;
	config_setting_t *cfg;	/* its group in graph->cfg (runtime changes edit it: uc_graph_save) */
	void *priv;		/* layer state, freed by close/free */
	/*
	 * Set by parse: bytes of private data each sub of this node gets,
	 * zeroed when the sub is made (UC_SUB_PRIV(s, type) in io.h), and
	 * bytes of state per queue, on cache lines of its own so that queue
	 * threads do not share them (UC_QSTATE(n, q, type); zeroed, owned by
	 * the graph, freed with the node).
	 */
	unsigned int sub_priv_size;
	size_t qstate_size;
	void *qstate;		/* UC_MAX_QUEUES + 1 slots of qstate_stride bytes */
	size_t qstate_stride;
};

struct uc_layer_ops {
	const char *name;	/* conf: type = "stripe"; */
	const char *help;	/* one line: the layer's keys */
	/*
	 * Every key the layer's config group accepts (NULL terminated; "name"
	 * is accepted on every layer besides). parse checks the group against
	 * this very list, and a test compares it with ublk-compose.conf(5).
	 */
	const char *const *keys;
	/*
	 * Validate n's config group without side effects: reject unknown keys,
	 * build children with uc_node_parse_children(), set n->size and hints.
	 * Returns 0, or -EINVAL after printing "FILE:LINE: message".
	 */
	int (*parse)(struct uc_node *n, const config_setting_t *cfg);
	/* Leaves: acquire the backing file, set n->fd. Returns 0 or -errno. */
	int (*open)(struct uc_node *n);
	/* Release what open() and parse() took; must cope with open() not run
	 * or failed. A failed graph (graph->opened false) removes files it created. */
	void (*close)(struct uc_node *n);
	/* Most iovecs a child sub can get, given this node's own max_iov. */
	unsigned int (*child_max_iov)(const struct uc_node *n, unsigned int max_iov,
				      uint32_t max_io);
	/*
	 * Start s: hand pieces down with uc_child_submit(), or (leaves) queue
	 * SQEs holding a reference each (uc_sub_get). Returns 0, or -errno when
	 * nothing more can be issued (what was issued still completes).
	 * Called again for the remainder after a short read/write.
	 */
	int (*submit)(struct uc_node *n, struct uc_queue *q, struct uc_sub *s);
	/*
	 * Leaves, optional: a CQE for s (not a short READ/WRITE, which the core
	 * resubmits). Returns the result to record (0 or -errno), or
	 * UC_RESUBMITTED after queueing s again.
	 */
	int (*complete)(struct uc_node *n, struct uc_queue *q, struct uc_sub *s, int res);
	/*
	 * Optional: s has no references left. Return 0 to finish it, or
	 * UC_RESUBMITTED after taking a reference and issuing more (a retry on
	 * another child, a repair write, waiting for metadata).
	 */
	int (*end)(struct uc_node *n, struct uc_queue *q, struct uc_sub *s);
	/* Optional: child sub cs of s finished (default: cs->result goes into s). */
	void (*child_end)(struct uc_node *n, struct uc_queue *q, struct uc_sub *s,
			  struct uc_sub *cs);
	/*
	 * Optional, after every node is open, children before parents: read or
	 * set up on-disk state (uc_graph_sync_io()). Returns 0 or -errno after
	 * printing why.
	 */
	int (*activate)(struct uc_node *n);
	/* Optional, on a clean stop after the queues drained, parents first: persist state. */
	void (*deactivate)(struct uc_node *n);
	/*
	 * Optional, once per queue loop turn: resume parked subs, start
	 * background work. Returns true to be called again soon even if no CQE
	 * arrives (the queue arms a short timer).
	 */
	bool (*poll)(struct uc_node *n, struct uc_queue *q);
	/*
	 * Optional: an admin command for this node (`ublk-compose ctl ID NODE
	 * KEY [VALUE]`), e.g. a fault layer's errors=write. Runs on the admin
	 * thread while queues serve: the layer makes it thread safe. Returns 0
	 * or -errno; reply gets one line either way.
	 */
	int (*ctl)(struct uc_node *n, const char *key, const char *value, char *reply,
		   size_t len);
	/*
	 * The keys `ublk-compose ctl` may pass to ctl (NULL-terminated): the
	 * layer's documented runtime settings. Other keys are internal (a
	 * mirror swapping its file leg's fd, the admin's fail/replace/add)
	 * and reach ctl only from code. NULL: none (uc_layer_ctl_keys()).
	 */
	const char *const *ctl_keys;
	/*
	 * Optional: print the on-disk metadata this layer keeps at the start of
	 * path (`ublk-compose examine PATH`). Returns 0, or -ENOENT if path
	 * holds none of it, or another -errno.
	 */
	int (*examine)(const char *path, FILE *out);
	/* Optional: health for `status` (enum uc_health). */
	int (*health)(const struct uc_node *n);
	/* Optional: extra JSON members for `status --json` ("\"k\": v, ..."; no braces). */
	int (*json)(const struct uc_node *n, char *buf, size_t len);
	/* One line of health/config for `check` and `status`. */
	int (*status)(const struct uc_node *n, char *buf, size_t len);
	/*
	 * The layer never reads or changes the data, only where it goes: its
	 * requests can use the kernel's pages directly (zero copy, where the
	 * kernel has UBLK_F_AUTO_BUF_REG). Then iov_base values are offsets in
	 * the request, and leaves issue READ(V)_FIXED/WRITE(V)_FIXED.
	 */
	bool zero_copy;
	/*
	 * Leaves that need the data in user memory (a network client) but may
	 * sit in a zero-copy volume beside leaves that do not: there the core
	 * copies each READ/WRITE sub's pieces between the request's pages and
	 * the tag's buffer through the ublk char device (UBLK_F_USER_COPY),
	 * before submit (writes) and when the sub ends (reads), and the leaf
	 * sees iovecs in that buffer as on the copy path. Such a leaf has no
	 * end() and no short-transfer resubmits of the core (no member SQEs
	 * for data). A volume of such leaves alone runs on the copy path.
	 */
	bool user_copy;
};

#define UC_RESUBMITTED	1

enum uc_health { UC_HEALTH_CLEAN, UC_HEALTH_RESYNCING, UC_HEALTH_DEGRADED, UC_HEALTH_FAILED };

/* Registered layers (src/layers.c). Returns NULL if no layer has that name. */
const struct uc_layer_ops *uc_layer_find(const char *name);
/* The i-th registered layer, NULL past the end. */
const struct uc_layer_ops *uc_layer_at(unsigned int i);
/* The keys `ublk-compose ctl` may pass to a layer (NULL-terminated; never NULL). */
const char *const *uc_layer_ctl_keys(const struct uc_layer_ops *ops);
/* Tests add their own leaves. Returns 0 or -ENOSPC. */
int uc_layer_add(const struct uc_layer_ops *ops);

/*
 * Parse the "children" list of cfg (at least min entries) into n->children.
 * Returns 0 or -EINVAL after printing the error.
 */
int uc_node_parse_children(struct uc_node *n, const config_setting_t *cfg, unsigned int min);

/* Take a reference on s (one per SQE or child in flight). */
static inline void uc_sub_get(struct uc_sub *s)
{
	s->pending++;
}

/* Drop a reference; the last one ends s and passes its result up. */
void uc_sub_put(struct uc_queue *q, struct uc_sub *s);

/* Record an error on s: the first one wins. */
static inline void uc_sub_error(struct uc_sub *s, int err)
{
	if (err < 0 && !s->result)
		s->result = err;
}

/*
 * Issue a sub-request of s to child i: op and flags of s, [off, off+len) in
 * the child's space, data in iov[0..nr_iov) (copied into the child sub).
 * Errors end up in s->result; nothing to check here.
 */
void uc_child_submit(struct uc_queue *q, struct uc_sub *s, unsigned int i, uint64_t off,
		     uint64_t len, const struct iovec *iov, unsigned int nr_iov);

/*
 * The same in two steps, for layers that gather a child's iovecs piece by
 * piece: prep returns the child sub (empty iov, room for node->max_iov),
 * issue sends it down.
 */
struct uc_sub *uc_child_prep(struct uc_queue *q, struct uc_sub *s, unsigned int i,
			     uint64_t off, uint64_t len);
void uc_child_issue(struct uc_queue *q, struct uc_sub *cs);

/*
 * Leaves: an SQE for s on q's ring, user_data set, a reference taken on s.
 * Returns NULL if the ring cannot take another SQE even after submitting.
 */
struct io_uring_sqe *uc_sub_sqe(struct uc_queue *q, struct uc_sub *s);

/* iovec helpers (src/io.c) */
/* Copy len bytes between buf and the data of iov at byte skip (to_iov: into the iovecs). */
void uc_iov_copy(const struct iovec *iov, unsigned int nr_iov, uint64_t skip, void *buf,
		 uint64_t len, bool to_iov);
/*
 * Append to dst the part [skip, skip+len) of the buffer described by src.
 * Returns the new count of dst, or -E2BIG if more than max entries are needed.
 */
int uc_iov_slice(struct iovec *dst, unsigned int nr_dst, unsigned int max,
		 const struct iovec *src, unsigned int nr_src, uint64_t skip, uint64_t len);

/* Conf helpers for layers (src/conf.c); each prints FILE:LINE and returns -EINVAL. */
int uc_conf_err(const config_setting_t *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Reject keys of group g not in the NULL-terminated list. */
int uc_conf_check_keys(const config_setting_t *g, const char *const *keys, const char *what);
/* Size key: integer bytes or "64K"/"1G" string. Returns 1 if set, 0 if absent, -EINVAL. */
int uc_conf_size(const config_setting_t *g, const char *key, uint64_t *out);
int uc_conf_bool(const config_setting_t *g, const char *key, bool *out);
int uc_conf_int(const config_setting_t *g, const char *key, long long *out);
/* Integer key from lo to hi ("KEY must be LO to HI" otherwise). Returns 1 if set, 0 if absent, -EINVAL. */
int uc_conf_int_range(const config_setting_t *g, const char *key, long long lo, long long hi,
		      long long *out);
int uc_conf_string(const config_setting_t *g, const char *key, const char **out);
/*
 * Duration key: a string like "30s" or "500ms", at most 1 hour, into ns.
 * Returns 1 if set, 0 if absent, -EINVAL (what names the layer in errors).
 */
int uc_conf_duration(const config_setting_t *g, const char *key, const char *what, uint64_t *ns);
/* Parse "64K", "1G", "4096" into bytes. Returns 0 or -EINVAL. */
int uc_parse_size(const char *str, uint64_t *out);
/* Format bytes as "1.5G" etc. */
const char *uc_size_str(uint64_t bytes, char *buf, size_t len);

#endif
