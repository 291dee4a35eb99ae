/* SPDX-License-Identifier: MIT */
/*
 * file: a leaf over a regular file or a block device.
 *
 *   { type = "file"; path = "data/d0.img"; size = "1G"; direct = true; }
 *   path:   relative paths resolve against the config file's directory
 *   size:   bytes to use; a missing file is created sparse with this size
 *           (required then); an existing file must be at least this big
 *   direct: O_DIRECT (default true)
 * DISCARD punches a hole (files) or discards (block devices); WRITE_ZEROES
 * zeroes the range, unmapping it unless NOUNMAP.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "graph.h"
#include "io.h"
#include "log.h"

#ifndef BLOCK_URING_CMD_DISCARD
#define BLOCK_URING_CMD_DISCARD	_IO(0x12, 0)	/* Linux 6.12 */
#endif

struct file {
	char *path;		/* resolved */
	char *key;		/* canonical absolute path: spots one file named two ways */
	bool direct;
	bool is_blk;
	bool exists;		/* at parse time */
	bool created;		/* by open(): removed again if the graph fails */
	dev_t dev;
	ino_t ino;
	int old_fd;		/* after a swap (file_ctl), until every queue moved over */
};

/* Each queue's state (UC_QSTATE): only its thread touches it. */
struct file_q {
	struct uc_sub *head, *tail;	/* found the SQ full: issued again from poll, in order */
};

/* Each sub's private data (UC_SUB_PRIV). */
struct file_sub {
	uint8_t fallback;	/* DISCARD/WRITE_ZEROES: 0 the preferred way, 1 the fallback */
};

extern const struct uc_layer_ops file_layer_ops;

static char *resolve(const struct uc_graph *g, const char *path)
{
	char *out;

	if (path[0] == '/' || !strcmp(g->conf_dir, "."))
		return strdup(path);
	if (asprintf(&out, "%s/%s", g->conf_dir, path) < 0)
		return NULL;
	return out;
}

static int blk_size(const char *path, uint64_t *size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, BLKGETSIZE64, size))
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * realpath() of the longest existing prefix of path, the rest appended with
 * "." and ".." taken out: the same name for "a.img", "./a.img" or
 * "data/../a.img" before the file (or its directory) exists.
 */
static char *canonical(const char *path)
{
	char *abs = NULL, *cut, *real = NULL, *rest = NULL, *out, *p;
	size_t len;

	if (path[0] == '/')
		abs = strdup(path);
	else if ((p = getcwd(NULL, 0))) {
		if (asprintf(&abs, "%s/%s", p, path) < 0)
			abs = NULL;
		free(p);
	}
	if (!abs)
		return NULL;
	while (!(real = realpath(abs, NULL)) && (cut = strrchr(abs, '/'))) {
		if (rest)
			cut[strlen(cut)] = '/';	/* undo the previous cut */
		*cut = 0;
		rest = cut + 1;
		if (cut == abs) {
			real = strdup("/");
			break;
		}
	}
	len = (real ? strlen(real) : 0) + (rest ? strlen(rest) : 0) + 2;
	out = real ? malloc(len) : NULL;
	if (out) {
		strcpy(out, real);
		for (char *c = rest ? strtok_r(rest, "/", &p) : NULL; c; c = strtok_r(NULL, "/", &p)) {
			if (!strcmp(c, "."))
				continue;
			if (!strcmp(c, "..")) {
				char *s = strrchr(out, '/');

				s[s == out] = 0;
				continue;
			}
			if (strcmp(out, "/"))
				strcat(out, "/");
			strcat(out, c);
		}
	}
	free(real);
	free(abs);
	return out;
}

/* Two leaves must never share a backing file: their data would collide. */
static int check_duplicate(struct uc_node *n, const config_setting_t *cfg)
{
	const struct file *f = n->priv;
	const struct uc_graph *g = n->graph;

	for (unsigned int i = 0; i < g->nr_leaves; i++) {
		const struct uc_node *o = g->leaves[i];
		const struct file *of = o->priv;

		if (o->ops != &file_layer_ops)
			continue;
		if (!strcmp(of->key, f->key) ||
		    (f->exists && of->exists && f->dev == of->dev && f->ino == of->ino))
			return uc_conf_err(config_setting_get_member(cfg, "path"),
					   "%s is used twice (also at line %d)", f->path, o->conf_line);
	}
	return 0;
}

/* the keys parse accepts (ops.keys; ublk-compose.conf(5) documents each) */
static const char *const file_keys[] = { "type", "path", "size", "direct", NULL };

static int file_parse(struct uc_node *n, const config_setting_t *cfg)
{
	config_setting_t *ps = config_setting_get_member(cfg, "path");
	const char *path = NULL;
	uint64_t size = 0, have = 0;
	bool has_size;
	struct file *f;
	struct stat st;
	char b1[32], b2[32];
	int ret;

	if (uc_conf_check_keys(cfg, file_keys, "file"))
		return -EINVAL;
	if ((ret = uc_conf_string(cfg, "path", &path)) <= 0)
		return ret ? ret : uc_conf_err(cfg, "file needs a path");
	if ((ret = uc_conf_size(cfg, "size", &size)) < 0)
		return ret;
	has_size = ret;
	if (has_size && size < 4096)
		return uc_conf_err(config_setting_get_member(cfg, "size"), "file size must be at least 4K");
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	n->priv = f;
	f->old_fd = -1;
	f->direct = true;
	if ((ret = uc_conf_bool(cfg, "direct", &f->direct)) < 0)
		return ret;
	f->path = resolve(n->graph, path);
	if (!f->path)
		return -ENOMEM;
	f->key = canonical(f->path);
	if (!f->key && !(f->key = strdup(f->path)))
		return -ENOMEM;
	/* the config as it runs (uc_graph_save) holds absolute paths: it is saved elsewhere */
	if (path[0] != '/' && f->key[0] == '/')
		config_setting_set_string(ps, f->key);
	if (!stat(f->path, &st)) {
		f->exists = true;
		f->dev = st.st_dev;
		f->ino = st.st_ino;
		if (S_ISREG(st.st_mode)) {
			have = st.st_size;
		} else if (S_ISBLK(st.st_mode)) {
			f->is_blk = true;
			if ((ret = blk_size(f->path, &have)))
				return uc_conf_err(ps, "%s: %s", f->path, strerror(-ret));
		} else {
			return uc_conf_err(ps, "%s is not a regular file or block device", f->path);
		}
		if (has_size && have < size)
			return uc_conf_err(ps, "%s is %s, smaller than its size %s", f->path,
					   uc_size_str(have, b1, sizeof(b1)), uc_size_str(size, b2, sizeof(b2)));
		n->size = has_size ? size : have;
	} else if (errno == ENOENT) {
		if (!has_size)
			return uc_conf_err(ps, "%s does not exist (give a size to create it)", f->path);
		n->size = size;
	} else {
		return uc_conf_err(ps, "%s: %s", f->path, strerror(errno));
	}
	n->size &= ~4095ULL;	/* whole 4K blocks: every block size and chunk divides it */
	if (!n->size)
		return uc_conf_err(ps, "%s is smaller than 4K", f->path);
	n->can_discard = true;
	n->sub_priv_size = sizeof(struct file_sub);
	n->qstate_size = sizeof(struct file_q);
	if ((ret = check_duplicate(n, cfg)))
		return ret;
	return uc_graph_add_leaf(n->graph, n);
}

/* mkdir -p of path's directory, so conf/data/ need not exist beforehand */
static void make_parents(const char *path)
{
	char *p = strdup(path);

	for (char *s = p ? strchr(p + 1, '/') : NULL; s; s = strchr(s + 1, '/')) {
		*s = 0;
		mkdir(p, 0755);
		*s = '/';
	}
	free(p);
}

static int file_open(struct uc_node *n)
{
	struct file *f = n->priv;
	int flags = O_RDWR | O_CLOEXEC | (f->exists ? 0 : O_CREAT | O_EXCL);

	if (!f->exists)
		make_parents(f->path);
	n->fd = open(f->path, flags | (f->direct ? O_DIRECT : 0), 0600);
	if (n->fd < 0 && errno == EINVAL && f->direct) {
		/* the filesystem has no O_DIRECT (e.g. old tmpfs) */
		uc_warn("%s: O_DIRECT not supported here, using buffered I/O", f->path);
		n->fd = open(f->path, flags, 0600);
	}
	if (n->fd < 0) {
		int err = errno;

		uc_err("%s: %s", f->path, strerror(err));
		return -err;
	}
	/*
	 * Two servers must never write one backing file. A server killed a
	 * moment ago still holds its lock until the kernel has torn its rings
	 * down: wait a little before calling the file busy.
	 */
	for (int i = 0; flock(n->fd, LOCK_EX | LOCK_NB) && errno == EWOULDBLOCK && i < 30; i++)
		usleep(100000);
	if (flock(n->fd, LOCK_EX | LOCK_NB)) {
		int err = errno;

		uc_err("%s: %s", f->path, err == EWOULDBLOCK ?
		       "in use by another ublk-compose (locked)" : strerror(err));
		close(n->fd);
		n->fd = -1;
		return err == EWOULDBLOCK ? -EBUSY : -err;
	}
	f->created = !f->exists;
	n->created = f->created;
	if (f->created && ftruncate(n->fd, n->size)) {
		int err = errno;

		uc_err("%s: cannot size it: %s", f->path, strerror(err));
		return -err;
	}
	return 0;
}

static void file_close(struct uc_node *n)
{
	struct file *f = n->priv;

	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	if (f && f->old_fd >= 0)
		close(f->old_fd);
	if (f && f->created && !n->graph->opened)
		unlink(f->path);
	if (f) {
		free(f->path);
		free(f->key);
	}
	free(f);
	n->priv = NULL;
}

/* DISCARD/WRITE_ZEROES: the preferred way first, then the fallback. */
static void prep_zero(struct io_uring_sqe *sqe, const struct file *f, struct uc_sub *s, int idx)
{
	bool unmap = s->op == UC_OP_DISCARD || !(s->flags & UC_F_NOUNMAP);
	bool fallback = UC_SUB_PRIV(s, struct file_sub)->fallback;

	if (s->op == UC_OP_DISCARD && f->is_blk && !fallback) {
		io_uring_prep_rw(IORING_OP_URING_CMD, sqe, idx, NULL, 0, 0);
		sqe->cmd_op = BLOCK_URING_CMD_DISCARD;
		sqe->addr = s->off;
		sqe->addr3 = s->len;
		return;
	}
	if (fallback && s->op == UC_OP_WRITE_ZEROES)
		unmap = !unmap;
	io_uring_prep_fallocate(sqe, idx, (unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE) |
				FALLOC_FL_KEEP_SIZE, s->off, s->len);
}

/* READ/WRITE from the tag buffer, or (zero copy) from the request's registered pages */
static void prep_rw(struct io_uring_sqe *sqe, const struct uc_sub *s,
		    int idx)
{
	bool rd = s->op == UC_OP_READ;

	if (!s->io->zero_copy) {
		io_uring_prep_rw(rd ? IORING_OP_READV : IORING_OP_WRITEV, sqe, idx, s->iov, s->nr_iov,
				 s->off);
	} else if (s->nr_iov == 1) {
		io_uring_prep_rw(rd ? IORING_OP_READ_FIXED : IORING_OP_WRITE_FIXED, sqe, idx,
				 s->iov[0].iov_base, s->iov[0].iov_len, s->off);
		sqe->buf_index = s->io->tag;
	} else {
		io_uring_prep_rw(rd ? UC_IORING_OP_READV_FIXED : UC_IORING_OP_WRITEV_FIXED, sqe, idx,
				 s->iov, s->nr_iov, s->off);
		sqe->buf_index = s->io->tag;
	}
	if (!rd && (s->flags & UC_F_FUA))
		sqe->rw_flags = RWF_DSYNC;
}

static int file_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	const struct file *f = n->priv;
	struct io_uring_sqe *sqe;

	if (s->copy > 1)
		return -ENODATA;	/* there is one copy */
	if (!(sqe = uc_sub_sqe(q, s))) {
		/*
		 * The ring takes no SQE even after a submit: nothing is wrong
		 * with the file, so the I/O waits (holding a reference) and
		 * poll issues it once completions have made room. An error
		 * here would fail a mirror leg for a busy ring.
		 */
		struct file_q *fq = UC_QSTATE(n, q, struct file_q);

		uc_sub_get(s);
		s->next = NULL;
		if (fq->tail)
			fq->tail->next = s;
		else
			fq->head = s;
		fq->tail = s;
		return 0;
	}
	switch (s->op) {
	case UC_OP_READ:
	case UC_OP_WRITE:
		prep_rw(sqe, s, n->file_index);
		break;
	case UC_OP_FLUSH:
		io_uring_prep_fsync(sqe, n->file_index, IORING_FSYNC_DATASYNC);
		break;
	default:
		prep_zero(sqe, f, s, n->file_index);
		break;
	}
	sqe->flags |= IOSQE_FIXED_FILE;
	return 0;
}

/*
 * Issue what found the ring full. A CQE of the member I/O in flight brings
 * the queue back to try again; only with none (the SQ full of entries that
 * complete silently) is the 1 ms poll timer needed. Returns true then.
 */
static bool file_poll(struct uc_node *n, struct uc_queue *q)
{
	struct file_q *fq = UC_QSTATE(n, q, struct file_q);
	struct uc_sub *s = fq->head;

	if (!s)
		return false;
	fq->head = fq->tail = NULL;
	while (s) {
		struct uc_sub *next = s->next;

		uc_sub_error(s, file_submit(n, q, s));	/* may wait again */
		uc_sub_put(q, s);	/* the waiting's reference */
		s = next;
	}
	return fq->head && !q->nr_member;
}

static int file_complete(struct uc_node *n, struct uc_queue *q, struct uc_sub *s, int res)
{
	(void)n;
	if ((res == -EOPNOTSUPP || res == -EINVAL) &&
	    (s->op == UC_OP_DISCARD || s->op == UC_OP_WRITE_ZEROES) &&
	    !UC_SUB_PRIV(s, struct file_sub)->fallback) {
		int ret;

		UC_SUB_PRIV(s, struct file_sub)->fallback = 1;
		uc_sub_get(s);
		ret = file_submit(n, q, s);
		uc_sub_error(s, ret);
		uc_sub_put(q, s);
		return UC_RESUBMITTED;
	}
	return res < 0 ? res : 0;
}

/*
 * Swap the backing file at runtime (a mirror's `replace`): "check-path"
 * validates, "path" opens the new file (created with the leaf's size if
 * missing, locked), "path-commit" closes the old one once every queue has
 * re-registered the leaves (uc_graph_files_changed()).
 */
static int file_ctl(struct uc_node *n, const char *key, const char *value, char *reply, size_t len)
{
	struct file *f = n->priv;
	struct stat st;
	char *key2, b1[32], b2[32];
	int fd, ret = 0;

	if (!strcmp(key, "path-commit")) {
		if (f->old_fd >= 0)
			close(f->old_fd);
		f->old_fd = -1;
		return 0;
	}
	if ((strcmp(key, "check-path") && strcmp(key, "path")) || !value || value[0] != '/') {
		snprintf(reply, len, "file: keys: check-path|path ABSOLUTE_PATH");
		return -EINVAL;
	}
	key2 = canonical(value);
	if (!key2)
		return -ENOMEM;
	for (unsigned int i = 0; i < n->graph->nr_leaves; i++) {
		const struct uc_node *o = n->graph->leaves[i];

		if (o->ops == &file_layer_ops && !strcmp(((const struct file *)o->priv)->key, key2))
			ret = -EBUSY;
	}
	if (ret) {
		snprintf(reply, len, "%s is already part of this volume", value);
		goto out;
	}
	if (!stat(value, &st)) {
		uint64_t have = st.st_size;

		if (S_ISBLK(st.st_mode) && (ret = blk_size(value, &have))) {
			snprintf(reply, len, "%s: %s", value, strerror(-ret));
			goto out;
		}
		if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode)) {
			snprintf(reply, len, "%s is not a regular file or block device", value);
			ret = -EINVAL;
			goto out;
		}
		if (have < n->size) {
			snprintf(reply, len, "%s is %s, smaller than the leg (%s)", value,
				 uc_size_str(have, b1, sizeof(b1)), uc_size_str(n->size, b2, sizeof(b2)));
			ret = -ENOSPC;
			goto out;
		}
	} else if (errno != ENOENT) {
		ret = -errno;
		snprintf(reply, len, "%s: %s", value, strerror(-ret));
		goto out;
	}
	fd = open(value, O_RDWR | O_CLOEXEC | O_CREAT | (f->direct ? O_DIRECT : 0), 0600);
	if (fd < 0 && errno == EINVAL && f->direct)
		fd = open(value, O_RDWR | O_CLOEXEC | O_CREAT, 0600);
	if (fd < 0) {
		ret = -errno;
		snprintf(reply, len, "%s: %s", value, strerror(-ret));
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(reply, len, "%s: %s", value, ret == -EBUSY ?
			 "in use by another ublk-compose (locked)" : strerror(-ret));
		close(fd);
		goto out;
	}
	if (!fstat(fd, &st) && S_ISREG(st.st_mode) && (uint64_t)st.st_size < n->size &&
	    ftruncate(fd, n->size)) {
		ret = -errno;
		snprintf(reply, len, "%s: cannot size it: %s", value, strerror(-ret));
		close(fd);
		goto out;
	}
	if (!strcmp(key, "check-path")) {
		close(fd);	/* it may have been created: it stays, empty and sparse */
		goto out;
	}
	f->old_fd = n->fd;
	n->fd = fd;
	f->is_blk = S_ISBLK(st.st_mode);
	/* the config as it runs (uc_graph_save) names the new file */
	pthread_mutex_lock(&n->graph->conf_lock);
	{
		config_setting_t *ps = config_setting_get_member(n->cfg, "path");

		if (ps)
			config_setting_set_string(ps, value);
	}
	pthread_mutex_unlock(&n->graph->conf_lock);
	free(f->path);
	free(f->key);
	f->path = strdup(value);
	f->key = key2;
	key2 = NULL;
	f->created = false;
	snprintf(reply, len, "%s", value);
out:
	free(key2);
	return ret;
}

static int file_status(const struct uc_node *n, char *buf, size_t len)
{
	const struct file *f = n->priv;

	return snprintf(buf, len, "%s%s%s", f->path, f->is_blk ? " (block device)" : "",
			f->direct ? "" : " (buffered)");
}

const struct uc_layer_ops file_layer_ops = {
	.name = "file",
	.keys = file_keys,
	.help = "path=<file or block device> size=<size> direct=<bool, default true>",
	.parse = file_parse,
	.open = file_open,
	.close = file_close,
	.submit = file_submit,
	.complete = file_complete,
	.poll = file_poll,
	.status = file_status,
	.ctl = file_ctl,
	.zero_copy = true,
};
