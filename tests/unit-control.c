/* SPDX-License-Identifier: MIT */
/*
 * The control planes without ublk: the command ring of /dev/ublk-control
 * (ctrl.c) over stand-in files, and the admin socket (admin.c) of a graph
 * served by a queue thread on a real io_uring.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "admin.h"
#include "ctrl.h"
#include "dev.h"
#include "io.h"
#include "testlib.h"

/* ---- ctrl.c ---- */

/*
 * A command that timed out completes later: the next command must not take
 * that completion for its own. The late command is a real one, held back by
 * a linked timeout (it runs 200 ms after it was sent, its caller gave up
 * after 20 ms). The next command goes to a closed fd: its own answer is
 * -EBADF, whatever the late one says.
 */
static int test_ctrl_stale_completion(void)
{
	struct __kernel_timespec hold = { .tv_nsec = 200 * 1000000L };
	struct uc_ctrl c;
	struct io_uring_sqe *sqe;
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC), bad, ret, late;

	CHECK(fd >= 0, "open /dev/null: %s", strerror(errno));
	ret = uc_ctrl_init(&c, fd);
	CHECK(!ret, "uc_ctrl_init: %s", strerror(-ret));
	/* an expired timeout lets the command linked behind it run, and posts no CQE itself */
	sqe = io_uring_get_sqe(&c.ring);
	io_uring_prep_timeout(sqe, &hold, 0, IORING_TIMEOUT_ETIME_SUCCESS);
	sqe->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, 0xdead);
	ret = uc_ctrl_cmd(&c, UBLK_U_CMD_GET_FEATURES, -1, NULL, 0, 0, 20);
	CHECK(ret == -ETIMEDOUT, "the held command: %d, want -ETIMEDOUT", ret);
	/* its completion arrives while nobody waits */
	for (int i = 0; i < 200 && !io_uring_cq_ready(&c.ring); i++)
		usleep(5000);
	CHECK(io_uring_cq_ready(&c.ring) == 1, "%u CQEs ready, want the late command's",
	      io_uring_cq_ready(&c.ring));
	{
		struct io_uring_cqe *cqe;

		CHECK(!io_uring_peek_cqe(&c.ring, &cqe), "peek");
		late = cqe->res;
		CHECK(cqe->user_data != 0xdead, "the timeout posted a CQE (%d)", cqe->res);
	}
	bad = dup(fd);
	close(bad);
	c.fd = bad;	/* no such file: this command's own answer is -EBADF */
	ret = uc_ctrl_cmd(&c, UBLK_U_CMD_GET_FEATURES, -1, NULL, 0, 0, 1000);
	c.fd = fd;
	CHECK(late != -EBADF, "the late completion says %d: the test cannot tell them apart", late);
	CHECK(ret == -EBADF, "the next command returned %d (the late one's was %d), want -EBADF",
	      ret, late);
	/* nothing is left over for a third */
	ret = uc_ctrl_cmd(&c, UBLK_U_CMD_GET_FEATURES, -1, NULL, 0, 0, 1000);
	CHECK(ret == late, "a third command: %d, want %d", ret, late);
	uc_ctrl_close(&c);
	return T_PASS;
}

/* ---- admin.c: a graph served by one queue thread, its admin socket ---- */

struct served {
	struct uc_graph g;
	struct uc_queue q;
	struct uc_admin a;
	unsigned int id;
	char dir[512];
	pthread_t thread;
	_Atomic bool stop;
	_Atomic int state;	/* 0 starting, 1 serving, -1 failed */
};

static void no_commit(struct uc_queue *q, struct uc_io *io, int res)
{
	(void)q, (void)io, (void)res;	/* no ublk requests here, only the layers' own */
}

/* The queue loop of a ublk queue thread, minus ublk: layers' internal I/O only. */
static void *queue_thread(void *arg)
{
	struct served *sv = arg;
	struct uc_queue *q = &sv->q;

	if (uc_queue_init(q, &sv->g, 0, 16, 0, 0)) {
		atomic_store(&sv->state, -1);
		return NULL;
	}
	q->owner = sv;
	q->commit = no_commit;
	atomic_store(&sv->state, 1);
	while (!q->stopping || !uc_queue_idle(q)) {
		struct __kernel_timespec ts = { .tv_nsec = 10 * 1000000L };
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;

		q->stopping = atomic_load(&sv->stop);
		uc_queue_poll(q);
		io_uring_submit_and_wait_timeout(&q->ring, &cqe, 1, &ts, NULL);
		io_uring_for_each_cqe(&q->ring, head, cqe) {
			uc_queue_cqe(q, cqe);
			n++;
		}
		io_uring_cq_advance(&q->ring, n);
		uc_queue_poll(q);
	}
	uc_queue_exit(q);
	return NULL;
}

/* Load and open text, serve it on a queue thread and an admin socket. Returns 0, -1 or T_SKIP. */
static int serve(struct served *sv, const char *name, const char *text)
{
	int ret;

	memset(sv, 0, sizeof(*sv));
	sv->a.fd = -1;	/* nothing to close if we stop before the admin socket */
	/* an id no real device of this machine uses: 900000 up */
	sv->id = 900000 + getpid() % 100000;
	if (mkdir(UC_RUN_DIR, 0700) && errno != EEXIST)
		return T_SKIP;	/* not root: no admin socket here */
	snprintf(sv->dir, sizeof(sv->dir), "%s/%s", t_tmpdir(), name);
	mkdir(sv->dir, 0700);
	if (uc_graph_load(&sv->g, t_write_file(sv->dir, "volume.conf", text)) ||
	    uc_graph_open(&sv->g))
		return -1;
	if (pthread_create(&sv->thread, NULL, queue_thread, sv))
		return -1;
	while (!atomic_load(&sv->state))
		usleep(1000);
	if (atomic_load(&sv->state) < 0)
		return -1;
	ret = uc_admin_start(&sv->a, &sv->g, sv->id, false);
	if (ret == -EACCES || ret == -EPERM)
		return T_SKIP;
	return ret ? -1 : 0;
}

static void unserve(struct served *sv)
{
	uc_admin_stop(&sv->a);
	if (sv->state) {
		atomic_store(&sv->stop, true);
		uc_graph_kick(&sv->g);
		pthread_join(sv->thread, NULL);
	}
	uc_graph_free(&sv->g);
	uc_run_forget(sv->id);
}

/* One admin request line; the reply text (without %exit) in reply. Returns its exit status or -1. */
static int admin(const struct served *sv, const char *line, char *reply, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t have = 0;
	char *tail;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), UC_RUN_DIR "/%u.sock", sv->id);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    write(fd, line, strlen(line)) != (ssize_t)strlen(line) || write(fd, "\n", 1) != 1) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	for (ssize_t k; have < len - 1 && (k = read(fd, reply + have, len - 1 - have)) > 0;)
		have += k;
	close(fd);
	reply[have] = 0;
	tail = strstr(reply, "%exit ");
	if (!tail)
		return -1;
	*tail = 0;
	return atoi(tail + 6);
}

/* a node's status line, read under the admin lock like `status` does */
static void node_status(struct served *sv, const char *name, char *buf, size_t len)
{
	struct uc_node *n;

	pthread_rwlock_rdlock(&sv->g.admin_lock);
	n = uc_graph_find(&sv->g, name);
	buf[0] = 0;
	if (n)
		n->ops->status(n, buf, len);
	pthread_rwlock_unlock(&sv->g.admin_lock);
}

/* a fault over a 2-way mirror of file legs a and b */
#define MIRROR_CONF \
	"device = { max_io = \"64K\"; };\n" \
	"volume = { type = \"fault\"; name = \"f\"; children = (\n" \
	"  { type = \"mirror\"; name = \"md\"; children = (\n" \
	"    { type = \"file\"; name = \"a\"; path = \"a.img\"; size = \"4M\"; },\n" \
	"    { type = \"file\"; name = \"b\"; path = \"b.img\"; size = \"4M\"; } ); } ); };\n"

/*
 * `ctl` reaches only a layer's documented runtime settings: the keys the
 * mirror uses to swap its file leg's fd (path, check-path, path-commit) and
 * the mirror's own admin verbs (fail, replace, add) are refused (issue 17,
 * item 5: `ctl ID LEG path /x` swapped the fd behind the mirror's back).
 */
static int ctl_refuses_internal_keys(struct served *svp)
{
	static const char *const refused[] = {
		"a path %s/x.img", "a check-path %s/x.img", "a path-commit", "md fail a",
		"md replace a %s/x.img", "md add %s/x.img",
	};
	char line[1200], reply[4096], st[512], x[600];
	struct served *sv = svp;
	int rc;

	snprintf(x, sizeof(x), "%s/x.img", sv->dir);
	for (unsigned int i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char args[900];

		snprintf(args, sizeof(args), refused[i], sv->dir);
		snprintf(line, sizeof(line), "ctl %s", args);
		rc = admin(sv, line, reply, sizeof(reply));
		CHECK(rc == 1, "'%s': exit %d (%s), want 1", line, rc, reply);
		CHECK(strstr(reply, "runtime setting"), "'%s': %s", line, reply);
	}
	node_status(sv, "a", st, sizeof(st));
	CHECK(strstr(st, "/a.img") && access(x, F_OK), "leg a: %s", st);
	node_status(sv, "md", st, sizeof(st));
	CHECK(!strstr(st, "faulty"), "md: %s", st);
	/* the documented settings still work */
	rc = admin(sv, "ctl f errors write", reply, sizeof(reply));
	CHECK(rc == 0 && strstr(reply, "errors=write"), "ctl f errors write: %d %s", rc, reply);
	rc = admin(sv, "ctl f errors none", reply, sizeof(reply));
	CHECK(rc == 0 && strstr(reply, "errors=none"), "ctl f errors none: %d %s", rc, reply);
	rc = admin(sv, "ctl f nosuchkey", reply, sizeof(reply));
	CHECK(rc == 1, "ctl f nosuchkey: %d %s", rc, reply);
	return T_PASS;
}

struct status_loop {
	struct served *sv;
	_Atomic bool stop;
	unsigned int calls;
	int failures;
};

static void *status_thread(void *arg)
{
	struct status_loop *sl = arg;
	static _Thread_local char reply[16384];

	while (!atomic_load(&sl->stop)) {
		if (admin(sl->sv, "status", reply, sizeof(reply)) != 0)
			sl->failures++;
		sl->calls++;
	}
	return NULL;
}

/*
 * `status` prints the file leg's path while a path change frees it: both
 * ran under the admin lock taken for reading (a use-after-free that ASan
 * shows). Changes now take the lock for writing, and the CLI cannot reach
 * the path key at all; statuses and refused path changes run side by side.
 */
static int status_during_path_change(struct served *sv)
{
	struct status_loop sl[2];
	pthread_t t[2];
	char line[1200], reply[4096];
	int refused = 0, accepted = 0;

	for (int i = 0; i < 2; i++) {
		sl[i] = (struct status_loop){ .sv = sv };
		CHECK(!pthread_create(&t[i], NULL, status_thread, &sl[i]), "pthread_create");
	}
	for (int i = 0; i < 400; i++) {
		snprintf(line, sizeof(line), "ctl a path %s/p%d.img", sv->dir, i);
		if (admin(sv, line, reply, sizeof(reply)) == 1)
			refused++;
		else
			accepted++;
	}
	for (int i = 0; i < 2; i++) {
		atomic_store(&sl[i].stop, true);
		pthread_join(t[i], NULL);
	}
	printf("  %u + %u statuses during 400 path changes\n", sl[0].calls, sl[1].calls);
	CHECK(!sl[0].failures && !sl[1].failures, "status failed %d + %d times", sl[0].failures,
	      sl[1].failures);
	CHECK(!accepted && refused == 400, "%d path changes accepted", accepted);
	return T_PASS;
}

struct admin_call {
	struct served *sv;
	char line[1200], reply[4096];
	int rc;
	_Atomic bool done;
};

static void *admin_thread(void *arg)
{
	struct admin_call *c = arg;

	c->rc = admin(c->sv, c->line, c->reply, sizeof(c->reply));
	atomic_store(&c->done, true);
	return NULL;
}

/* Send line while this thread holds the admin lock for reading: does it wait for it? */
static int blocked_by_reader(struct served *sv, const char *line, struct admin_call *c,
			     bool *blocked)
{
	pthread_t t;

	memset(c, 0, sizeof(*c));
	c->sv = sv;
	snprintf(c->line, sizeof(c->line), "%s", line);
	pthread_rwlock_rdlock(&sv->g.admin_lock);	/* a long `status` or `scrub` */
	if (pthread_create(&t, NULL, admin_thread, c)) {
		pthread_rwlock_unlock(&sv->g.admin_lock);
		return -1;
	}
	for (int i = 0; i < 100 && !atomic_load(&c->done); i++)
		usleep(5000);
	*blocked = !atomic_load(&c->done);
	pthread_rwlock_unlock(&sv->g.admin_lock);
	pthread_join(t, NULL);
	return 0;
}

/*
 * Every change takes the admin lock for writing: replace (which frees the
 * leg's old path), fail, and ctl with a value wait for readers to finish;
 * status and reading a setting do not.
 */
static int changes_take_write_lock(struct served *sv)
{
	static struct admin_call c;
	char line[1200], st[512];
	bool blocked;

	CHECK(!blocked_by_reader(sv, "status", &c, &blocked), "thread");
	CHECK(!blocked && c.rc == 0, "status waited for a reader (%d)", c.rc);
	CHECK(!blocked_by_reader(sv, "ctl f errors", &c, &blocked), "thread");
	CHECK(!blocked && c.rc == 0, "reading a setting waited for a reader (%d %s)", c.rc, c.reply);
	CHECK(!blocked_by_reader(sv, "ctl f delay 0", &c, &blocked), "thread");
	CHECK(blocked && c.rc == 0, "ctl f delay 0: blocked %d, exit %d %s", blocked, c.rc, c.reply);
	snprintf(line, sizeof(line), "replace a %s/new.img", sv->dir);
	CHECK(!blocked_by_reader(sv, line, &c, &blocked), "thread");
	CHECK(blocked, "replace ran beside a reader: %s", c.reply);
	CHECK(c.rc == 0, "replace: exit %d: %s", c.rc, c.reply);
	node_status(sv, "a", st, sizeof(st));
	CHECK(strstr(st, "/new.img"), "leg a after replace: %s", st);
	CHECK(!blocked_by_reader(sv, "fail b", &c, &blocked), "thread");
	CHECK(blocked, "fail ran beside a reader: %s", c.reply);
	return T_PASS;
}

/* Serve MIRROR_CONF, run body, stop serving whatever body said. */
static int with_served(const char *name, int (*body)(struct served *))
{
	static struct served sv;
	int ret = serve(&sv, name, MIRROR_CONF);

	if (!ret)
		ret = body(&sv);
	else if (ret != T_SKIP)
		ret = T_FAIL;
	unserve(&sv);
	return ret;
}

static int test_ctl_refuses_internal_keys(void)
{
	return with_served("ctlkeys", ctl_refuses_internal_keys);
}

static int test_status_during_path_change(void)
{
	return with_served("uaf", status_during_path_change);
}

static int test_changes_take_write_lock(void)
{
	return with_served("wrlock", changes_take_write_lock);
}

int main(void)
{
	static const struct t_case cases[] = {
#define C(fn) { #fn, test_##fn }
		C(ctrl_stale_completion), C(ctl_refuses_internal_keys), C(status_during_path_change),
		C(changes_take_write_lock),
#undef C
	};

	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
