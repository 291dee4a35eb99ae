/* SPDX-License-Identifier: MIT */
/*
 * `ublk-compose monitor`, like `mdadm --monitor`: subscribe to the event
 * feed of every server (the admin socket's "events" request) and report
 * each event (stdout, --json, --syslog, --program). Nothing is polled: the
 * servers push their events; inotify on /run/ublk-compose says when a
 * server (a new one, or one restarted after a crash) opens its socket; a
 * pidfd says when a server process ends. A server that ends without having
 * said DeviceStopped (or that it hands the device over) died: ServerDied.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include "alert.h"
#include "ctrl.h"
#include "dev.h"
#include "events.h"
#include "log.h"
#include "monitor.h"
#include "notify.h"

#define MAX_SERVERS	256
#define CONNECT_TRIES	100	/* x 100 ms: a new socket is bound a moment before it listens */
#define TICK_MS		100
#define PROGRAM_MS	60000	/* --program gets this long, then it is killed */

struct server {
	bool used;
	unsigned int id;
	int fd;			/* the subscription, -1: none */
	int pidfd;		/* the server process, -1: none */
	int pid;
	char name[UC_NAME_MAX + 1];
	char state[16];		/* its health when we subscribed */
	char node[64];
	char detail[256];
	bool got_state;
	bool ended;		/* it said DeviceStopped or bye: its exit is no death */
	bool replay;		/* ask for the events it recorded since it started */
	int tries;		/* connect attempts left; > 0: one is due at the next tick */
	int recheck;		/* ticks until an EOF without an exit is looked at again */
	uint64_t last_seq;	/* of this pid: a reconnect skips what we have */
	char buf[16384];
	size_t len;
};

static struct {
	bool json, oneshot, test, syslog, journal;
	const char *program;
	struct server srv[MAX_SERVERS];
	int inotify_fd, timer_fd;
	bool timer_armed;
} mon = { .inotify_fd = -1, .timer_fd = -1 };

static bool stdout_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	return e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && !fstat(1, &st) &&
	       st.st_dev == dev && st.st_ino == ino;
}

/* Report e on every channel asked for. */
static void emit(const struct uc_event_rec *e)
{
	char line[1024];
	int ret;

	if (mon.json) {
		if (uc_event_encode(e, line, sizeof(line)) > 0)
			printf("%s\n", line);
	} else {
		printf("%s\n", uc_alert_text(e, mon.journal, line, sizeof(line)));
	}
	fflush(stdout);
	if (mon.syslog)
		syslog(uc_event_prio(e), "%s", uc_alert_text(e, true, line, sizeof(line)) +
		       (line[0] == '<' ? 3 : 0));
	if (mon.program) {
		ret = uc_alert_program(mon.program, e, PROGRAM_MS);
		if (ret)
			uc_warn("%s %s: %s", mon.program, uc_event_name(e->type),
				ret == -ETIMEDOUT ? "killed after 60 s" : ret < 0 ? strerror(-ret) :
				"failed");
	}
}

/* An event the monitor itself saw (ServerDied, the state at start, TestMessage). */
static void emit_own(const struct server *s, enum uc_event_type t, const char *node,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void emit_own(const struct server *s, enum uc_event_type t, const char *node,
		     const char *fmt, ...)
{
	struct uc_event_rec e = { .time = time(NULL), .type = t, .id = s->id };
	va_list ap;

	snprintf(e.name, sizeof(e.name), "%s", s->name);
	snprintf(e.node, sizeof(e.node), "%s", node ? node : "");
	va_start(ap, fmt);
	vsnprintf(e.detail, sizeof(e.detail), fmt, ap);
	va_end(ap);
	emit(&e);
}

static struct server *server_for(unsigned int id)
{
	struct server *free_slot = NULL;

	for (int i = 0; i < MAX_SERVERS; i++) {
		if (mon.srv[i].used && mon.srv[i].id == id)
			return &mon.srv[i];
		if (!mon.srv[i].used && !free_slot)
			free_slot = &mon.srv[i];
	}
	if (!free_slot)
		return NULL;
	*free_slot = (struct server){ .used = true, .id = id, .fd = -1, .pidfd = -1 };
	if (uc_name_of(id, free_slot->name))
		snprintf(free_slot->name, sizeof(free_slot->name), "?");
	return free_slot;
}

static void arm_timer(void)
{
	struct itimerspec t = { .it_interval = { 0, TICK_MS * 1000000L },
				.it_value = { 0, TICK_MS * 1000000L } };

	if (!mon.timer_armed && !timerfd_settime(mon.timer_fd, 0, &t, NULL))
		mon.timer_armed = true;
}

/* Connect and subscribe. Returns 0, or -errno (ECONNREFUSED, ENOENT: not listening yet). */
static int subscribe(struct server *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *req = s->replay ? "events replay\n" : "events\n";
	int fd, err;

	snprintf(sa.sun_path, sizeof(sa.sun_path), UC_RUN_DIR "/%u.sock", s->id);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		err = -errno;
		close(fd);
		return err;
	}
	s->fd = fd;
	s->len = 0;
	s->got_state = false;
	uc_dbg("device %u: subscribed (%s)", s->id, s->replay ? "with replay" : "new events");
	return 0;
}


/* What the kernel says about device id, for ServerDied. */
static void device_fate(unsigned int id, char *buf, size_t len)
{
	struct ublksrv_ctrl_dev_info info;
	struct uc_ctrl c = { .fd = -1 };
	int ret = uc_ctrl_open(&c);

	if (ret) {
		snprintf(buf, len, "device state unknown (/dev/ublk-control: %s)", strerror(-ret));
		return;
	}
	ret = uc_ctrl_get_info(&c, id, &info);
	uc_ctrl_close(&c);
	if (ret == -ENODEV || ret == -ENOENT)
		snprintf(buf, len, "the device is gone");
	else if (ret)
		snprintf(buf, len, "device state unknown (%s)", strerror(-ret));
	else if (info.state == UBLK_S_DEV_FAIL_IO)
		snprintf(buf, len, "the kernel keeps /dev/ublkb%u; its I/O fails until a server "
			 "recovers it", id);
	else if (info.state == UBLK_S_DEV_DEAD)
		snprintf(buf, len, "the device is stopped, not deleted");
	else
		snprintf(buf, len, "the kernel keeps /dev/ublkb%u; its I/O waits for a server to "
			 "recover it", id);
}

/* Device id has a server process that has not opened its socket yet. */
static bool server_starting(unsigned int id)
{
	struct ublksrv_ctrl_dev_info info;
	struct uc_ctrl c = { .fd = -1 };
	int ret = uc_ctrl_open(&c);

	if (!ret)
		ret = uc_ctrl_get_info(&c, id, &info);
	uc_ctrl_close(&c);
	return !ret && uc_pid_running(info.ublksrv_pid);
}

/* The server process of s ended: a death unless it said it was stopping. */
static void server_exited(struct server *s)
{
	char fate[160];

	if (s->pidfd >= 0)
		close(s->pidfd);
	s->pidfd = -1;
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
	if (!s->ended && s->pid) {
		device_fate(s->id, fate, sizeof(fate));
		emit_own(s, UC_EV_SERVER_DIED, NULL, "server pid %d exited without stopping the "
			 "device; %s", s->pid, fate);
	}
	s->pid = 0;
	s->recheck = 0;
}

static void take_state(struct server *s, const char *line)
{
	long long v;

	uc_json_get_str(line, "state", s->state, sizeof(s->state));
	uc_json_get_str(line, "name", s->name, sizeof(s->name));
	uc_json_get_str(line, "node", s->node, sizeof(s->node));
	uc_json_get_str(line, "detail", s->detail, sizeof(s->detail));
	s->got_state = true;
	if (uc_json_get_int(line, "pid", &v) || v == s->pid)
		return;
	/* a new server process for this device: the old one has ended */
	if (s->pid) {
		int fd = s->fd;

		s->fd = -1;
		server_exited(s);
		s->fd = fd;
	}
	s->pid = v;
	s->last_seq = 0;
	s->ended = false;
	s->pidfd = syscall(SYS_pidfd_open, (pid_t)v, 0);
	if (s->pidfd < 0)
		uc_warn("pidfd_open(%d): %s: ServerDied needs Linux >= 5.3", s->pid, strerror(errno));
}

static void take_line(struct server *s, const char *line)
{
	struct uc_event_rec e;
	char bye[32];

	uc_dbg("device %u: %s", s->id, line);

	if (!uc_json_get_str(line, "state", bye, sizeof(bye))) {
		take_state(s, line);
		return;
	}
	if (!uc_json_get_str(line, "bye", bye, sizeof(bye))) {
		s->ended = true;	/* a hand-over: the next server says Recovered */
		return;
	}
	if (uc_event_decode(line, &e) || (e.seq && e.seq <= s->last_seq))
		return;
	if (e.seq)
		s->last_seq = e.seq;
	if (e.type == UC_EV_DEVICE_STOPPED)
		s->ended = true;
	emit(&e);
}

/* Read what the server sent. Returns false once the connection is gone. */
static bool read_server(struct server *s)
{
	ssize_t k = read(s->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
	char *nl, *p;

	if (k <= 0) {
		close(s->fd);
		s->fd = -1;
		return false;
	}
	s->len += k;
	s->buf[s->len] = 0;
	for (p = s->buf; (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = 0;
		take_line(s, p);
	}
	s->len -= p - s->buf;
	memmove(s->buf, p, s->len);
	if (s->len == sizeof(s->buf) - 1)
		s->len = 0;	/* a line longer than any we send: drop it */
	return true;
}

/* Wait (bounded) for the state line of a fresh subscription. */
static void wait_state(struct server *s, int ms)
{
	while (s->fd >= 0 && !s->got_state && ms > 0) {
		struct pollfd p = { s->fd, POLLIN, 0 };

		if (poll(&p, 1, TICK_MS) > 0)
			read_server(s);
		ms -= TICK_MS;
	}
}

static void connect_due(struct server *s)
{
	int ret = subscribe(s);

	if (!ret) {
		s->tries = 0;
		return;
	}
	if ((ret == -ECONNREFUSED || ret == -ENOENT) && --s->tries > 0)
		return;	/* the next tick tries again */
	s->tries = 0;
	uc_dbg("device %u: cannot subscribe: %s", s->id, strerror(-ret));
}

static void on_tick(void)
{
	uint64_t n;
	bool more = false;

	if (read(mon.timer_fd, &n, sizeof(n)) < 0)
		return;
	for (int i = 0; i < MAX_SERVERS; i++) {
		struct server *s = &mon.srv[i];

		if (!s->used)
			continue;
		if (s->tries > 0 && s->fd < 0)
			connect_due(s);
		if (s->recheck > 0 && --s->recheck == 0 && s->fd < 0 && s->pid) {
			if (uc_pid_running(s->pid)) {
				/* it dropped us (we were too slow): again, skipping what we have */
				s->replay = true;
				s->tries = CONNECT_TRIES;
				connect_due(s);
			} else {
				server_exited(s);	/* no pidfd told us */
			}
		}
		more |= s->tries > 0 || s->recheck > 0;
	}
	if (!more) {
		struct itimerspec off = { 0 };

		timerfd_settime(mon.timer_fd, 0, &off, NULL);
		mon.timer_armed = false;
	}
}

/* inotify: ID.sock appeared: a server started (or restarted) */
static void on_inotify(void)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t k = read(mon.inotify_fd, buf, sizeof(buf));

	for (char *p = buf; k > 0 && p < buf + k;) {
		struct inotify_event *ev = (struct inotify_event *)p;
		unsigned int id;
		char tail[8];

		p += sizeof(*ev) + ev->len;
		if (!ev->len || sscanf(ev->name, "%u.%7s", &id, tail) != 2 || strcmp(tail, "sock"))
			continue;
		struct server *s = server_for(id);

		if (!s || s->fd >= 0)
			continue;
		uc_name_of(id, s->name);
		s->replay = true;	/* it is new: its start events are news */
		s->tries = CONNECT_TRIES;
		connect_due(s);
		arm_timer();
	}
}

/* The servers running now, and recorded devices left without one. Returns the problem count. */
static int initial_scan(void)
{
	DIR *d = opendir(UC_RUN_DIR);
	struct dirent *e;
	int problems = 0;

	while (d && (e = readdir(d))) {
		unsigned int id;
		char tail[8], node[32];
		struct server *s;

		if (sscanf(e->d_name, "%u.%7s", &id, tail) != 2 || strcmp(tail, "env"))
			continue;
		snprintf(node, sizeof(node), "/dev/ublkc%u", id);
		if (access(node, F_OK) || !(s = server_for(id)))
			continue;	/* a stale record */
		if (subscribe(s)) {
			char fate[160];

			if (server_starting(id)) {
				s->replay = true;
				s->tries = CONNECT_TRIES;
				arm_timer();
				continue;
			}
			device_fate(id, fate, sizeof(fate));
			emit_own(s, UC_EV_SERVER_DIED, NULL, "no server; %s", fate);
			problems++;
			continue;
		}
		wait_state(s, 5000);
		if (!strcmp(s->state, "degraded") || !strcmp(s->state, "failed")) {
			emit_own(s, !strcmp(s->state, "failed") ? UC_EV_FAILED : UC_EV_DEGRADED,
				 s->node, "%s", s->detail);
			problems++;
		}
		if (mon.test)
			emit_own(s, UC_EV_TEST_MESSAGE, NULL, "test event from `ublk-compose monitor --test`");
	}
	if (d)
		closedir(d);
	return problems;
}

static void monitor_loop(void)
{
	for (;;) {
		struct pollfd p[2 + 2 * MAX_SERVERS];
		struct server *who[2 + 2 * MAX_SERVERS];
		unsigned int n = 0;

		p[n++] = (struct pollfd){ mon.inotify_fd, POLLIN, 0 };
		p[n++] = (struct pollfd){ mon.timer_fd, POLLIN, 0 };
		for (int i = 0; i < MAX_SERVERS; i++) {
			struct server *s = &mon.srv[i];

			if (s->used && s->fd >= 0) {
				who[n] = s;
				p[n++] = (struct pollfd){ s->fd, POLLIN, 0 };
			}
			if (s->used && s->pidfd >= 0) {
				who[n] = s;
				p[n++] = (struct pollfd){ s->pidfd, POLLIN, 0 };
			}
		}
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			uc_err("poll: %s", strerror(errno));
			return;
		}
		/* what servers said before they ended, then their ends, then new sockets */
		for (unsigned int i = 2; i < n; i++) {
			struct server *s = who[i];

			if (p[i].revents && p[i].fd == s->fd && !read_server(s)) {
				/* EOF: an exit (the pidfd says so soon) or it dropped us */
				s->recheck = 20;
				arm_timer();
			}
		}
		for (unsigned int i = 2; i < n; i++) {
			struct server *s = who[i];

			if (!p[i].revents || p[i].fd != s->pidfd)
				continue;
			/* its socket is closed by now: read what is left in it first */
			while (s->fd >= 0 && read_server(s))
				;
			server_exited(s);
		}
		if (p[1].revents)
			on_tick();
		if (p[0].revents)
			on_inotify();
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ublk-compose monitor [--json] [--syslog] [--program PROG] [--test] "
		"[--oneshot]\n"
		"  PROG runs as: PROG EVENT DEVICE NODE DETAIL (env UBLK_COMPOSE_NAME, UBLK_COMPOSE_ID)\n");
}

int uc_cmd_monitor(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "syslog", no_argument, NULL, 's' },
		{ "program", required_argument, NULL, 'p' },
		{ "test", no_argument, NULL, 't' },
		{ "oneshot", no_argument, NULL, '1' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, problems;

	while ((c = getopt_long(argc, argv, "jsp:t1vh", opts, NULL)) != -1) {
		switch (c) {
		case 'j': mon.json = true; break;
		case 's': mon.syslog = true; break;
		case 'p': mon.program = optarg; break;
		case 't': mon.test = true; break;
		case '1': mon.oneshot = true; break;
		case 'v': uc_verbose++; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	mon.journal = stdout_is_journal();
	if (mon.syslog)
		openlog("ublk-compose", LOG_PID, LOG_DAEMON);
	if (mkdir(UC_RUN_DIR, 0700) && errno != EEXIST) {
		uc_err(UC_RUN_DIR ": %s", strerror(errno));
		return 1;
	}
	/* watch before the scan: a server that starts meanwhile is not missed */
	mon.inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	mon.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (mon.inotify_fd < 0 || mon.timer_fd < 0 ||
	    inotify_add_watch(mon.inotify_fd, UC_RUN_DIR, IN_CREATE | IN_MOVED_TO) < 0) {
		uc_err("inotify on " UC_RUN_DIR ": %s", strerror(errno));
		return 1;
	}
	problems = initial_scan();
	if (mon.oneshot)
		return problems ? 3 : 0;
	uc_notify("READY=1\nSTATUS=watching " UC_RUN_DIR);
	monitor_loop();
	return 1;
}
