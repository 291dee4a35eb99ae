/* SPDX-License-Identifier: MIT */
/*
 * Running as a system service, on the host (no ublk): the sd-daemon
 * priority prefixes when stderr is the journal, SIGHUP (the log reopened
 * after a rotation, device.space_warn re-read, a broken config ignored),
 * the sd_notify datagrams (READY=1, RELOADING=1), a stop request reaching
 * the main thread and its answer coming back, and the CLI's answer to a
 * device name that does not exist (one line, exit 1, nothing done).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "dev.h"
#include "events.h"
#include "graph.h"
#include "log.h"
#include "names.h"
#include "notify.h"
#include "reload.h"
#include "stop.h"
#include "testlib.h"

/* Run fn in a child process whose stderr is the file err; returns its exit status. */
static int in_child(int (*fn)(void), const char *err)
{
	int status, fd;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (!pid) {
		fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || dup2(fd, 2) < 0)
			_exit(99);
		_exit(fn());
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* One line of each priority, with -v0, -v1 and -v2 in turn. */
static int log_lines(void)
{
	uc_verbose = 0;
	uc_err("e %d", 1);
	uc_warn("w");
	uc_notice("n");
	uc_info("i0");
	uc_dbg("d0");
	uc_verbose = 1;
	uc_info("i1");
	uc_dbg("d1");
	uc_verbose = 2;
	uc_dbg("d2");
	return 0;
}

/* JOURNAL_STREAM names stderr's file (as systemd does for the journal stream) */
static int log_journal_child(void)
{
	struct stat st;
	char v[64];

	if (fstat(2, &st))
		return 98;
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", v, 1);
	return log_lines();
}

/* JOURNAL_STREAM names another file: stderr is not the journal (e.g. redirected) */
static int log_other_stream_child(void)
{
	setenv("JOURNAL_STREAM", "1:1", 1);
	return log_lines();
}

static int test_log_priorities(void)
{
	char err[PATH_MAX], text[4096];

	snprintf(err, sizeof(err), "%s/log-journal", t_tmpdir());
	CHECK(in_child(log_journal_child, err) == 0, "child");
	CHECK(!strcmp(t_slurp(err, text, sizeof(text)), "<3>e 1\n<4>w\n<5>n\n<6>i1\n<7>d2\n"),
	      "under the journal:\n%s", text);
	snprintf(err, sizeof(err), "%s/log-plain", t_tmpdir());
	CHECK(in_child(log_other_stream_child, err) == 0, "child");
	CHECK(!strcmp(t_slurp(err, text, sizeof(text)), "ublk-compose: e 1\nublk-compose: w\n"
		      "ublk-compose: n\nublk-compose: i1\nublk-compose: d2\n"), "plain:\n%s", text);
	return T_PASS;
}

/* ---- sd_notify ---- */

/* A datagram socket at path (a leading '@': abstract). Returns the fd or -1. */
static int notify_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = 0;
	else
		unlink(path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, offsetof(struct sockaddr_un, sun_path) + n)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The next datagram on fd (waits up to 5 s), "" if none. */
static const char *next_msg(int fd, char *buf, size_t len)
{
	struct timeval tv = { 5, 0 };
	ssize_t n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = recv(fd, buf, len - 1, 0);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

static int test_notify(void)
{
	char path[PATH_MAX], abs_name[64], msg[512];
	struct timeval tv = { 0, 100000 };
	int fd;

	unsetenv("NOTIFY_SOCKET");
	CHECK(!uc_notify_wanted() && uc_notify("READY=1") == 0, "unset: nobody listens, no error");
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	CHECK(!uc_notify_wanted(), "a relative path is not a notify socket");

	snprintf(path, sizeof(path), "%s/notify.sock", t_tmpdir());
	fd = notify_socket(path);
	CHECK(fd >= 0, "bind %s: %s", path, strerror(errno));
	setenv("NOTIFY_SOCKET", path, 1);
	CHECK(uc_notify_wanted(), "a path");
	CHECK(!uc_notifyf("READY=1\nSTATUS=serving %s", "/dev/ublkb3"), "send");
	CHECK(!strcmp(next_msg(fd, msg, sizeof(msg)), "READY=1\nSTATUS=serving /dev/ublkb3"), "%s", msg);
	close(fd);
	unlink(path);
	CHECK(uc_notify("READY=1") < 0, "a socket that is gone: an error");

	snprintf(abs_name, sizeof(abs_name), "@uc-test-notify-%d", (int)getpid());
	fd = notify_socket(abs_name);
	CHECK(fd >= 0, "bind %s: %s", abs_name, strerror(errno));
	setenv("NOTIFY_SOCKET", abs_name, 1);
	CHECK(uc_notify_wanted() && !uc_notify("STOPPING=1"), "abstract");
	CHECK(!strcmp(next_msg(fd, msg, sizeof(msg)), "STOPPING=1"), "%s", msg);
	/* nothing else was sent */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	CHECK(recv(fd, msg, sizeof(msg), 0) < 0, "a second datagram");
	close(fd);
	unsetenv("NOTIFY_SOCKET");
	return T_PASS;
}

/* ---- SIGHUP ---- */

static char reload_dir[PATH_MAX];

static const char *reload_conf(const char *device)
{
	char text[512];

	snprintf(text, sizeof(text), "%s\nvolume = { type = \"file\"; path = \"rl.img\"; "
		 "size = \"1M\"; };\n", device);
	return t_write_file(reload_dir, "rl.conf", text);
}

/* SpaceLow events recorded after *from (which moves on) */
static int space_lows(uint64_t *from)
{
	struct uc_event_rec out[64];
	unsigned int n = uc_events_since(*from, out, 64, from);
	int c = 0;

	for (unsigned int i = 0; i < n; i++)
		c += out[i].type == UC_EV_SPACE_LOW;
	return c;
}

/*
 * What a server does: its log in a file (--log), SIGHUP after logrotate
 * moved it, the config changed in between. Exit status: the failed step.
 */
static int reload_child(void)
{
	struct uc_node cz = { .name = "cz" };
	struct uc_event_rec dummy;
	char log[PATH_MAX + 16], rotated[PATH_MAX + 32];
	struct uc_graph g;
	uint64_t seq;

	snprintf(log, sizeof(log), "%s/server.log", reload_dir);
	snprintf(rotated, sizeof(rotated), "%s.1", log);
	if (uc_graph_load(&g, reload_conf("device = { space_warn = 95; };")) || g.dev.space_warn != 95)
		return 1;
	uc_event_set_space_warn(g.dev.space_warn);
	if (uc_log_open(log))
		return 2;
	uc_notice("serving");
	if (rename(log, rotated))
		return 3;
	uc_events_since(UINT64_MAX - 1, &dummy, 0, &seq);
	uc_event_space(&cz, 60, 100);
	if (space_lows(&seq))
		return 4;	/* 60% < 95% */
	reload_conf("device = { space_warn = 50; };");
	if (uc_reload(&g) || g.dev.space_warn != 50)
		return 5;
	uc_event_space(&cz, 61, 100);
	if (space_lows(&seq) != 1)
		return 6;	/* the new threshold applies at once */
	/* a config with an error: reported, nothing changes */
	t_write_file(reload_dir, "rl.conf", "device = { space_warn = 10; };\nvolume = { type = ;\n");
	if (uc_reload(&g) != -EINVAL || g.dev.space_warn != 50)
		return 7;
	reload_conf("device = { space_warn = 300; };");
	if (uc_reload(&g) != -EINVAL || g.dev.space_warn != 50)
		return 8;
	uc_graph_free(&g);
	return 0;
}

static int test_sighup_reload(void)
{
	char path[PATH_MAX + 16], text[4096], msg[512], err[PATH_MAX + 16];
	int fd, rc;

	snprintf(reload_dir, sizeof(reload_dir), "%s/reload", t_tmpdir());
	mkdir(reload_dir, 0700);
	snprintf(path, sizeof(path), "%s/notify.sock", reload_dir);
	fd = notify_socket(path);
	CHECK(fd >= 0, "bind %s", path);
	setenv("NOTIFY_SOCKET", path, 1);
	snprintf(err, sizeof(err), "%s/stderr", reload_dir);
	rc = in_child(reload_child, err);
	unsetenv("NOTIFY_SOCKET");
	snprintf(path, sizeof(path), "%s/server.log", reload_dir);
	CHECK(rc == 0, "step %d failed; the log:\n%s", rc, t_slurp(path, text, sizeof(text)));
	/* the first line stayed in the rotated file, the rest went to a new one */
	snprintf(path, sizeof(path), "%s/server.log.1", reload_dir);
	CHECK(!strcmp(t_slurp(path, text, sizeof(text)), "ublk-compose: serving\n"), "rotated:\n%s", text);
	snprintf(path, sizeof(path), "%s/server.log", reload_dir);
	t_slurp(path, text, sizeof(text));
	CHECK(strstr(text, "SIGHUP: re-read ") && strstr(text, "rl.conf: space_warn 50%; other changes "
							 "take effect at the next start"), "%s", text);
	/* the broken configs: the parser's line, then that nothing changed */
	CHECK(strstr(text, "rl.conf:2: ") && strstr(text, "space_warn must be a percentage") &&
	      strstr(text, "not applied: it has the problem above; settings unchanged"), "%s", text);
	CHECK(!strstr(t_slurp(err, msg, sizeof(msg)), "ublk-compose"), "logged to stderr: %s", msg);
	/* parsing created nothing */
	snprintf(path, sizeof(path), "%s/rl.img", reload_dir);
	CHECK(access(path, F_OK), "the reload created the backing file");
	/* systemd heard of each reload and that it ended */
	for (int i = 0; i < 3; i++) {
		CHECK(!strncmp(next_msg(fd, msg, sizeof(msg)), "RELOADING=1\nMONOTONIC_USEC=", 27),
		      "reload %d: '%s'", i, msg);
		CHECK(!strcmp(next_msg(fd, msg, sizeof(msg)), "READY=1"), "reload %d: '%s'", i, msg);
	}
	close(fd);
	return T_PASS;
}

/* ---- a stop request from the admin socket to the main thread ---- */

static _Atomic int stop_answers;
static atomic_bool main_set;

/* The server's main thread: waits for SIGUSR2 like wait_for_stop(), answers twice. */
static void *fake_main(void *arg)
{
	sigset_t s;
	int sig;

	(void)arg;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	uc_stop_set_main();
	atomic_store(&main_set, true);
	for (int i = 0; i < 2; i++) {
		bool force;

		if (sigwait(&s, &sig) || sig != SIGUSR2 || !uc_stop_pending(&force))
			return NULL;
		if (force)
			uc_stop_answer(0, "stopping /dev/ublkb7 (vol) (forced)");
		else
			uc_stop_answer(-EBUSY, "refusing to stop /dev/ublkb7 (vol): it is in use");
		stop_answers++;
	}
	return NULL;
}

static int test_stop_request(void)
{
	char reply[512];
	pthread_t t;
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	CHECK(!pthread_create(&t, NULL, fake_main, NULL), "thread");
	for (int i = 0; i < 500 && !atomic_load(&main_set); i++)
		usleep(10000);
	CHECK(uc_stop_request(false, reply, sizeof(reply)) == -EBUSY, "a refused stop");
	CHECK(!strcmp(reply, "refusing to stop /dev/ublkb7 (vol): it is in use"), "%s", reply);
	CHECK(uc_stop_request(true, reply, sizeof(reply)) == 0, "a forced stop");
	CHECK(!strcmp(reply, "stopping /dev/ublkb7 (vol) (forced)"), "%s", reply);
	pthread_join(t, NULL);
	CHECK(stop_answers == 2, "answers: %d", stop_answers);
	return T_PASS;
}

/* ---- the CLI: a device name that does not exist ---- */

/* Run the binary with args; stdout and stderr into out/err. Returns its exit status. */
static int run_bin(const char *bin, char *const args[], char *out, char *err, size_t len)
{
	char o[PATH_MAX], e[PATH_MAX];
	int status;
	pid_t pid;

	snprintf(o, sizeof(o), "%s/cli.out", t_tmpdir());
	snprintf(e, sizeof(e), "%s/cli.err", t_tmpdir());
	pid = fork();
	if (!pid) {
		int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fo, 1);
		dup2(fe, 2);
		execv(bin, args);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	t_slurp(o, out, len);
	t_slurp(e, err, len);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static int test_cli_unknown_name(void)
{
	const char *bin = getenv("UC_BIN");
	const char *name = "no-such-volume-uc-test";
	char *cmds[][6] = {
		{ "status", NULL }, { "stop", NULL }, { "stop", "--force", NULL }, { "del", NULL },
		{ "recover", NULL }, { "upgrade", NULL }, { "fail", NULL, "m0a" },
		{ "replace", NULL, "m0a", "/tmp/x.img" }, { "add", NULL, "m0", "/tmp/x.img" },
		{ "scrub", NULL }, { "ctl", NULL, "f0", "errors", "write" },
	};
	char out[4096], err[4096], want[256], path[PATH_MAX];

	if (!bin) {
		fprintf(stderr, "UC_BIN is not set (ctest sets it)\n");
		return T_SKIP;
	}
	snprintf(want, sizeof(want), "ublk-compose: no device named '%s' (see `ublk-compose list`)\n",
		 name);
	for (unsigned int i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char *args[8] = { "ublk-compose" };
		int n = 1, rc;

		args[n++] = cmds[i][0];
		if (cmds[i][1])	/* an option before the device */
			args[n++] = cmds[i][1];
		args[n++] = (char *)name;
		for (int k = 2; k < 6 && cmds[i][k]; k++)
			args[n++] = cmds[i][k];
		args[n] = NULL;
		rc = run_bin(bin, args, out, err, sizeof(out));
		CHECK(rc == 1 && !out[0] && !strcmp(err, want), "`ublk-compose %s %s%s`: exit %d, "
		      "stdout '%s', stderr '%s'", cmds[i][0], cmds[i][1] ? cmds[i][1] : "", name, rc, out,
		      err);
	}
	/* one unknown among known ids: nothing is done to the others either */
	{
		char *args[] = { "ublk-compose", "stop", "0", (char *)name, "1", NULL };

		CHECK(run_bin(bin, args, out, err, sizeof(out)) == 1 && !strcmp(err, want), "stop 0 %s 1: %s",
		      name, err);
		args[1] = "del";
		CHECK(run_bin(bin, args, out, err, sizeof(out)) == 1 && !strcmp(err, want), "del 0 %s 1: %s",
		      name, err);
	}
	/* neither a number nor a name: one line, exit 2 */
	{
		char *args[] = { "ublk-compose", "status", "a b", NULL };

		CHECK(run_bin(bin, args, out, err, sizeof(out)) == 2 && count_lines(err) == 1 &&
		      strstr(err, "'a b' is neither a device id"), "status 'a b': %s", err);
	}
	/* nothing was made for the name */
	snprintf(path, sizeof(path), UC_RUN_DIR "/%s.lock", name);
	CHECK(access(path, F_OK), "%s exists", path);
	snprintf(path, sizeof(path), UC_NAME_DIR "/%s", name);
	CHECK(access(path, F_OK), "%s exists", path);
	return T_PASS;
}

static const struct t_case cases[] = {
#define C(fn) { #fn, test_##fn }
	C(log_priorities), C(notify), C(sighup_reload), C(stop_request), C(cli_unknown_name),
#undef C
};

int main(void)
{
	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
