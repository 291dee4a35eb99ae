/* SPDX-License-Identifier: MIT */
/* The volume graph built from a config file, and the device settings. */
#ifndef UC_GRAPH_H
#define UC_GRAPH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include "layer.h"
#include "names.h"

/* uc_graph_sync_io()'s queue id: layers size per-queue state UC_MAX_QUEUES + 1 */
#define UC_MAX_QUEUES		64
#define UC_SYNC_QUEUE_ID	UC_MAX_QUEUES
/* sub slots of one tag: a slot number travels in 16 bits of user_data (udata.h) */
#define UC_MAX_SUBS		(1U << 16)
/*
 * Per-queue cap on the request arenas (subs, iovecs, sub private data of
 * every tag). The example configs need at most 9M (conf/compressed-raid10:
 * 491 subs a tag, 148 tags); 64M leaves them room for a few times larger
 * requests while 64 queues stay within 4G.
 */
#define UC_MAX_ARENA_BYTES	(64ULL << 20)

enum uc_recovery {
	UC_RECOVERY_REISSUE,	/* I/O waits for a new server; held requests are re-issued */
	UC_RECOVERY_REQUEUE,	/* I/O waits; requests the dead server held fail */
	UC_RECOVERY_FAIL,	/* every request fails until a new server takes over */
	UC_RECOVERY_OFF,	/* the device dies with the daemon */
};

extern const char *const uc_recovery_names[];
/* The keys the config's top level and its device group accept (NULL terminated). */
extern const char *const uc_top_keys[];
extern const char *const uc_device_keys[];

struct uc_dev_conf {
	unsigned int queues;	/* ublk queues, one thread each */
	unsigned int depth;	/* tags per queue */
	uint32_t max_io;	/* bytes: largest request */
	unsigned int block_size;	/* logical block size: 512 or 4096 */
	int id;			/* /dev/ublkbN number, -1: kernel picks */
	enum uc_recovery recovery;	/* what the kernel does when this daemon dies */
	bool zero_copy;		/* use zero copy where the kernel and every layer can */
	char name[UC_NAME_MAX + 1];	/* device.name, default the config's base name (names.h) */
	unsigned int space_warn;	/* percent: SpaceLow above it (events.h) */
	bool batch;		/* use UBLK_F_BATCH_IO where the kernel has it (default: unless "requeue") */
	char scheduler[16];	/* the disk's I/O scheduler, one of uc_schedulers (disk.h); default "none" */
	unsigned int spin_us;	/* a queue with at most one request in flight spins this long before it sleeps */
};

struct uc_graph {
	config_t cfg;
	char *conf_path;	/* as given */
	char *conf_dir;		/* relative paths resolve here */
	struct uc_dev_conf dev;
	struct uc_node *root;
	struct uc_node **nodes;	/* every node, pre-order */
	unsigned int nr_nodes;
	struct uc_node **leaves;	/* nodes with file_index >= 0 */
	unsigned int nr_leaves;
	unsigned int nr_subs;	/* per-tag sub arena */
	unsigned int nr_iovs;	/* per-tag iovec arena */
	unsigned int sub_priv;	/* bytes of private data per sub slot (largest sub_priv_size, 16-aligned) */
	unsigned int nr_internal;	/* internal tags per queue (layers' own I/O) */
	uint32_t internal_buf;	/* bytes of an internal tag's buffer beyond max_io */
	struct uc_queue *sync_q;	/* uc_graph_sync_io()'s queue while activating */
	/*
	 * Queues serving the graph, for other threads (admin): a kick wakes a
	 * queue's ring (its layers' poll runs); files_gen tells queues to
	 * re-register the leaves' fds after a leaf was swapped.
	 */
	pthread_mutex_t queues_lock;
	int kick_fd[UC_MAX_QUEUES + 1];	/* -1: no queue with that id */
	_Atomic uint64_t files_gen;
	_Atomic uint64_t files_seen[UC_MAX_QUEUES + 1];
	/* the generation a queue could not register (files_err: why), else older */
	_Atomic uint64_t files_failed[UC_MAX_QUEUES + 1];
	_Atomic int files_err[UC_MAX_QUEUES + 1];
	/*
	 * Changing the tree at runtime (a mirror's `add`): uc_graph_pause()
	 * makes every queue hold new requests and drain; while they are
	 * paused the tree and the queues' arenas may change; resume lets them
	 * go on. admin_lock: admin commands that walk the tree hold it for
	 * reading, the one that changes it for writing.
	 */
	_Atomic uint64_t pause_gen, resume_gen;
	_Atomic uint64_t paused_seen[UC_MAX_QUEUES + 1];
	struct uc_queue *queues[UC_MAX_QUEUES + 1];	/* under queues_lock */
	pthread_rwlock_t admin_lock;
	pthread_mutex_t conf_lock;	/* edits of cfg (uc_graph_save) */
	uint64_t size;		/* device bytes: root size rounded to block_size */
	bool opened;
	bool zero_copy;		/* every layer can run on the kernel's pages (and the config allows it) */
	bool user_copy;		/* ... some of them through UBLK_F_USER_COPY (layer.h: user_copy) */
	bool running_zero_copy;	/* the device does (dev.c, before the queues start) */
	bool running_batch;	/* the device uses UBLK_F_BATCH_IO (dev.c, likewise) */
};

/*
 * Read and validate path: device settings and the whole layer tree, with no
 * side effects (no file is created). Returns 0, or -EINVAL after printing
 * one "FILE:LINE: message" line.
 */
int uc_graph_load(struct uc_graph *g, const char *path);
/* The same, relative paths resolving against dir (a saved config: uc_graph_save). */
int uc_graph_load_in(struct uc_graph *g, const char *path, const char *dir);
/*
 * Open every leaf (creating sparse files). Returns 0 or -errno; after a
 * failure uc_graph_free() closes what was opened and removes what was created.
 */
int uc_graph_open(struct uc_graph *g);
/* Close what open did; free everything load did. */
void uc_graph_free(struct uc_graph *g);
/* Bytes of request arenas one queue of g allocates (tags x subs, iovecs, sub private data). */
uint64_t uc_graph_arena_bytes(const struct uc_graph *g);
/* Print the tree with sizes, one node per line. */
void uc_graph_print(const struct uc_graph *g, FILE *out);
/* The node with that name (or path), or NULL. */
struct uc_node *uc_graph_find(const struct uc_graph *g, const char *name);
/*
 * Synchronous I/O through the subtree at n, for activate(): op at off, len
 * bytes from/to buf (any length; split by max_io). Runs on a private ring on
 * the calling thread. Returns 0 or -errno.
 */
int uc_graph_sync_io(struct uc_graph *g, struct uc_node *n, int op, uint64_t off, void *buf,
		     uint64_t len);
/* Wake every queue: their layers' poll() runs soon. Any thread. */
void uc_graph_kick(struct uc_graph *g);
/* Wake queue id only (a worker thread finished something of its). */
void uc_graph_kick_queue(struct uc_graph *g, unsigned int id);
/*
 * After a leaf's fd changed: make every queue re-register the leaves and
 * wait (up to timeout_ms) until they have. Returns 0, -ETIMEDOUT, or the
 * -errno of a queue that could not (it still uses the fds it had).
 */
int uc_graph_files_changed(struct uc_graph *g, int timeout_ms);
/* Drop the private ring uc_graph_sync_io() set up. */
void uc_graph_sync_done(struct uc_graph *g);
/* Register a leaf node (called by leaf layers' parse). */
int uc_graph_add_leaf(struct uc_graph *g, struct uc_node *n);
/*
 * Make every serving queue hold new requests and drain what is in flight
 * (bounded by timeout_ms). Returns 0 once all are paused, or -ETIMEDOUT
 * (then they are resumed). Call with admin_lock held for writing.
 */
int uc_graph_pause(struct uc_graph *g, int timeout_ms);
/* Let paused queues go on (with arenas sized for the graph as it is now). */
void uc_graph_resume(struct uc_graph *g);
/*
 * A new child of parent from cfg (a group appended to parent's children
 * list in graph->cfg): parsed and opened, not yet attached. Returns 0 with
 * *out set, or -errno (the node and its files are gone again).
 */
int uc_graph_new_child(struct uc_node *parent, config_setting_t *cfg, struct uc_node **out);
/*
 * While paused: make c (from uc_graph_new_child) the last child of its
 * parent and size every paused queue's arenas for the new tree.
 * Returns 0 or -ENOMEM (nothing changed).
 */
int uc_graph_attach_child(struct uc_node *c);
/* Undo uc_graph_new_child (not attached). */
void uc_graph_drop_child(struct uc_node *c);
/* Write the config with runtime changes to path (atomically). Returns 0 or -errno. */
int uc_graph_save(struct uc_graph *g, const char *path);

#endif
