/* SPDX-License-Identifier: MIT */
/*
 * The nbd layer without ublk, against real nbdkit servers on this host
 * (Unix sockets, and TCP on loopback): bad configs (one line, no device),
 * random mixes against a model (alone, striped, mirrored with a file, several
 * connections, an export with a small maximum block size), FUA on an export
 * without it, a killed server (requests fail with EIO, the connection comes
 * back when the server does), a server that stops answering (timeout), read
 * errors under a mirror. Skips (77) without nbdkit.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "events.h"
#include "harness.h"
#include "nbd.h"
#include "testlib.h"

/* ---- nbdkit ---- */

struct server {
	pid_t pid;
	char sock[256];
	char uri[512];
};

static const char *tpath(const char *name)
{
	static char p[4][512];
	static int k;

	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", t_tmpdir(), name);
	return p[k];
}

static uint64_t ms_now(void)
{
	return nbd_leaf_now_ns() / 1000000;
}

/*
 * nbdkit ARGS serving a Unix socket named name (or TCP port if port),
 * in the foreground as our child; returns once it listens (its pid file).
 */
static int server_start(struct server *s, const char *name, int port, const char *args)
{
	char pidfile[512], cmd[2048];

	snprintf(pidfile, sizeof(pidfile), "%s.pid", tpath(name));
	unlink(pidfile);
	if (port) {
		snprintf(cmd, sizeof(cmd), "exec nbdkit --exit-with-parent -f -P %s -i 127.0.0.1 -p %d %s",
			 pidfile, port, args);
		snprintf(s->uri, sizeof(s->uri), "nbd://127.0.0.1:%d/", port);
	} else {
		snprintf(s->sock, sizeof(s->sock), "%s.sock", tpath(name));
		unlink(s->sock);
		snprintf(cmd, sizeof(cmd), "exec nbdkit --exit-with-parent -f -P %s -U %s %s", pidfile,
			 s->sock, args);
		snprintf(s->uri, sizeof(s->uri), "nbd+unix:///?socket=%s", s->sock);
	}
	s->pid = fork();
	if (s->pid < 0)
		return -1;
	if (!s->pid) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		int st;

		if (!access(pidfile, F_OK))
			return 0;
		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			fprintf(stderr, "nbdkit exited: %s\n", cmd);
			s->pid = 0;
			return -1;
		}
		usleep(10000);
	}
	fprintf(stderr, "nbdkit did not start: %s\n", cmd);
	return -1;
}

static void server_kill(struct server *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
	}
	s->pid = 0;
}

/* ---- driving the queue ---- */

/* One turn that waits up to ms for a CQE even when no request is in flight. */
static int turn_wait(struct harness *h, int ms)
{
	struct __kernel_timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000LL };
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;
	int ret;

	uc_queue_poll(&h->q);
	ret = io_uring_submit_and_wait_timeout(&h->q.ring, &cqe, 1, &ts, NULL);
	if (ret < 0 && ret != -ETIME && ret != -EINTR)
		return ret;
	io_uring_for_each_cqe(&h->q.ring, head, cqe) {
		if (!uc_queue_cqe(&h->q, cqe))
			return -EBADMSG;
		n++;
	}
	io_uring_cq_advance(&h->q.ring, n);
	uc_queue_poll(&h->q);
	return 0;
}

/* Turn until the node's status contains want, for up to ms. */
static bool wait_status(struct harness *h, struct uc_node *n, const char *want, int ms)
{
	uint64_t end = ms_now() + ms;

	while (!strstr(status(n), want)) {
		if (ms_now() > end || turn_wait(h, 50))
			return false;
	}
	return true;
}

/* One request on tag 0 alone, turning with waits until it ends; its result. */
static int one_wait(struct harness *h, uint8_t op, uint64_t off, uint64_t len, int ms)
{
	uint64_t end = ms_now() + ms;

	h->lax = true;
	h->reqs[0] = (struct uc_req){ .op = op, .off = off, .len = len };
	h->done[0] = false;
	h->inflight = 1;
	if (op == UC_OP_WRITE)
		harness_fill(h, h->q.ios[0].buf, len);
	uc_queue_start(&h->q, 0, &h->reqs[0]);
	while (!h->done[0])
		if (ms_now() > end || turn_wait(h, 50))
			return -EPIPE;
	if (op == UC_OP_WRITE && h->results[0] >= 0)
		memcpy(h->model + off, h->q.ios[0].buf, len);
	if (op == UC_OP_READ && h->results[0] >= 0 && memcmp(h->q.ios[0].buf, h->model + off, len))
		return BAD_DATA;
	return h->results[0];
}

/* ---- configs ---- */

#define NBD_CONF(dev, leaf) \
	"device = { " dev " };\n" \
	"volume = { type = \"nbd\"; name = \"n\"; " leaf " };\n"

static int test_config_errors(void)
{
	struct server small = { 0 }, named = { 0 }, ro = { 0 }, single = { 0 };
	char text[2048];
	int ret = T_FAIL;

	static const struct { const char *name, *needle, *text; } cases[] = {
		{ "no_uri", "nbd needs a uri", "volume = { type = \"nbd\"; }; #<\n" },
		{ "empty_uri", "uri must not be empty", "volume = { type = \"nbd\"; uri = \"\"; }; #<\n" },
		{ "uri_int", "uri must be a string", "volume = { type = \"nbd\"; uri = 5; }; #<\n" },
		{ "timeout_unit", "bad timeout '30'",
		  "volume = { type = \"nbd\"; uri = \"nbd://x/\"; timeout = \"30\"; }; #<\n" },
		{ "timeout_small", "under 100ms",
		  "volume = { type = \"nbd\"; uri = \"nbd://x/\"; timeout = \"50ms\"; }; #<\n" },
		{ "timeout_big", "over 1 hour",
		  "volume = { type = \"nbd\"; uri = \"nbd://x/\"; timeout = \"3601s\"; }; #<\n" },
		{ "timeout_int", "timeout must be a string",
		  "volume = { type = \"nbd\"; uri = \"nbd://x/\"; timeout = 30; }; #<\n" },
		{ "connections_0", "connections must be 1 to 16",
		  "volume = { type = \"nbd\"; uri = \"nbd://x/\"; connections = 0; }; #<\n" },
		{ "connections_17", "connections must be 1 to 16",
		  "volume = { type = \"nbd\"; uri = \"nbd://x/\"; connections = 17; }; #<\n" },
		{ "size_small", "size must be at least 4K",
		  "volume = { type = \"nbd\"; uri = \"nbd://x/\"; size = 512; }; #<\n" },
		{ "unknown_key", "unknown key 'url'",
		  "volume = { type = \"nbd\"; url = \"nbd://x/\"; }; #<\n" },
		{ "uri_typo", "nbdx://127.0.0.1/: cannot connect",
		  "volume = { type = \"nbd\"; uri = \"nbdx://127.0.0.1/\"; }; #<\n" },
		{ "no_socket", "cannot connect",
		  "volume = { type = \"nbd\"; uri = \"nbd+unix:///?socket=/nonexistent/nbd.sock\"; }; #<\n" },
		{ "refused", "nbd://127.0.0.1:1/: cannot connect",
		  "volume = { type = \"nbd\"; uri = \"nbd://127.0.0.1:1/\"; }; #<\n" },
		{ "password_hidden", "nbd://alice@127.0.0.1:1/: cannot connect",
		  "volume = { type = \"nbd\"; uri = \"nbd://alice:secret@127.0.0.1:1/\"; }; #<\n" },
	};

	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (expect_bad(cases[i].name, cases[i].text, cases[i].needle))
			return T_FAIL;
	if (server_start(&small, "small", 0, "memory 1M") ||
	    server_start(&named, "named", 0,
			 "--filter=exportname memory 4M exportname=good exportname-strict=true") ||
	    server_start(&ro, "ro", 0, "-r memory 4M") ||
	    server_start(&single, "single", 0, "--filter=multi-conn memory 4M multi-conn-mode=disable"))
		goto out;
	snprintf(text, sizeof(text), "volume = { type = \"nbd\"; uri = \"%s\"; size = \"2M\"; }; #<\n",
		 small.uri);
	if (expect_bad("too_small", text, "the export is 1M, smaller than 2M"))
		goto out;
	snprintf(text, sizeof(text), "volume = { type = \"nbd\"; uri = \"nbd+unix:///bad?socket=%s\"; }; #<\n",
		 named.sock);
	if (expect_bad("wrong_export", text, "cannot connect"))
		goto out;
	snprintf(text, sizeof(text), "volume = { type = \"nbd\"; uri = \"%s\"; }; #<\n", ro.uri);
	if (expect_bad("read_only", text, "the export is read-only"))
		goto out;
	snprintf(text, sizeof(text), "device = { queues = 2; };\nvolume = { type = \"nbd\"; uri = \"%s\"; }; #<\n",
		 single.uri);
	if (expect_bad("no_multi_conn", text, "does not offer multi-conn"))
		goto out;
	snprintf(text, sizeof(text), "volume = { type = \"nbd\"; uri = \"%s\"; connections = 2; }; #<\n",
		 single.uri);
	if (expect_bad("no_multi_conn_conns", text, "connections = 1"))
		goto out;
	ret = T_PASS;
out:
	server_kill(&small);
	server_kill(&named);
	server_kill(&ro);
	server_kill(&single);
	return ret;
}

/* ---- data ---- */

static int mix(const char *name, const char *text, unsigned int nr)
{
	struct harness h;
	int fails;

	if (harness_open(&h, conf(name, text)))
		return T_FAIL;
	fails = run_mix(&h, nr, true);
	printf("  %s: %llu requests, %d failures\n", name, (unsigned long long)h.nr_reqs, fails);
	harness_close(&h);
	return fails ? T_FAIL : T_PASS;
}

static int test_mix(void)
{
	struct server s = { 0 };
	char text[1024];
	int ret = T_FAIL;

	if (server_start(&s, "mix", 0, "memory 16M"))
		return T_FAIL;
	snprintf(text, sizeof(text), NBD_CONF("max_io = \"256K\";", "uri = \"%s\";"), s.uri);
	ret = mix("mix.conf", text, 2000);
	server_kill(&s);
	return ret;
}

/* TCP on loopback, several connections (the export offers multi-conn) */
static int test_tcp_connections(void)
{
	struct server s = { 0 };
	char text[1024];
	int ret = T_FAIL, port;

	for (int tries = 0; tries < 5; tries++) {
		port = 20000 + (int)(t_rand() % 20000);
		if (!server_start(&s, "tcp", port, "memory 16M"))
			break;
	}
	if (!s.pid)
		return T_FAIL;
	/* a host name: libnbd resolves it for the first connection, open() for the others */
	snprintf(text, sizeof(text),
		 NBD_CONF("max_io = \"128K\";",
			  "uri = \"nbd://localhost:%d/\"; connections = 3; size = \"8M\";"), port);
	ret = mix("tcp.conf", text, 2000);
	server_kill(&s);
	return ret;
}

static uint64_t json_u64(struct uc_node *n, const char *key)
{
	char json[4096], k[64];
	const char *p;

	n->ops->json(n, json, sizeof(json));
	snprintf(k, sizeof(k), "\"%s\": ", key);
	p = strstr(json, k);
	return p ? strtoull(p + strlen(k), NULL, 10) : UINT64_MAX;
}

/*
 * A stripe's legs get several pieces per request: small ones (16K chunks)
 * through a bounce buffer as one command, large ones (256K chunks: one
 * piece per leg and request) in place.
 */
static int test_stripe(void)
{
	struct server s[3] = { { 0 } };
	struct harness h;
	char text[2048];
	int ret = T_FAIL;

	for (int big = 0; big < 2; big++) {
		/* fresh exports: the model starts as zeroes */
		for (int i = 0; i < 3; i++) {
			char name[16];

			server_kill(&s[i]);
			snprintf(name, sizeof(name), "stripe%d", i);
			if (server_start(&s[i], name, 0, "memory 8M"))
				goto out;
		}
		snprintf(text, sizeof(text),
			 "device = { max_io = \"512K\"; };\n"
			 "volume = { type = \"stripe\"; chunk = \"%s\"; children = (\n"
			 "  { type = \"nbd\"; uri = \"%s\"; },\n"
			 "  { type = \"nbd\"; uri = \"%s\"; },\n"
			 "  { type = \"nbd\"; uri = \"%s\"; } ); };\n", big ? "256K" : "16K",
			 s[0].uri, s[1].uri, s[2].uri);
		if (harness_open(&h, conf("stripe.conf", text)))
			goto out;
		CHECK(!run_mix(&h, 1200, true), "mix with %s chunks", big ? "256K" : "16K");
		for (int i = 0; i < 3; i++) {
			uint64_t b = json_u64(h.g.root->children[i], "bounced");

			CHECK(big ? b == 0 : b > 100 && b != UINT64_MAX, "leg %d bounced %llu (%s chunks)",
			      i, (unsigned long long)b, big ? "256K" : "16K");
		}
		printf("  %s chunks: %llu requests, leg 0 bounced %llu\n", big ? "256K" : "16K",
		       (unsigned long long)h.nr_reqs,
		       (unsigned long long)json_u64(h.g.root->children[0], "bounced"));
		harness_close(&h);
	}
	ret = T_PASS;
out:
	for (int i = 0; i < 3; i++)
		server_kill(&s[i]);
	return ret;
}

static int test_mirror(void)
{
	struct server s = { 0 };
	char text[2048];
	int ret;

	if (server_start(&s, "mirror", 0, "memory 8M"))
		return T_FAIL;
	snprintf(text, sizeof(text),
		 "device = { max_io = \"256K\"; };\n"
		 "volume = { type = \"mirror\"; bitmap_chunk = \"64K\"; children = (\n"
		 "  { type = \"file\"; name = \"a\"; path = \"mirror-a.img\"; size = \"8M\"; },\n"
		 "  { type = \"nbd\"; name = \"b\"; uri = \"%s\"; } ); };\n", s.uri);
	ret = mix("mirror.conf", text, 1500);
	server_kill(&s);
	return ret;
}

/*
 * An export that reads as zeroes is a new leg (created), like a file this
 * start made: a new mirror over it and a new file needs no initial copy.
 * Once written, it is not.
 */
static int test_created(void)
{
	struct server s = { 0 };
	struct harness h;
	char text[2048];

	if (server_start(&s, "created", 0, "memory 8M"))
		return T_FAIL;
	snprintf(text, sizeof(text), NBD_CONF("", "uri = \"%s\";"), s.uri);
	if (harness_open(&h, conf("created.conf", text)))
		return T_FAIL;
	CHECK(h.g.root->created, "a zero export is not new");
	CHECK(one(&h, UC_OP_WRITE, 5 << 20, 4096) == 4096, "write");
	harness_close(&h);
	if (harness_open(&h, conf("created.conf", text)))
		return T_FAIL;
	CHECK(!h.g.root->created, "an export with data is new");
	harness_close(&h);
	server_kill(&s);
	return T_PASS;
}

/* the export takes at most 64K per command: larger pieces are split */
static int test_max_block(void)
{
	struct server s = { 0 };
	char text[1024];
	int ret;

	if (server_start(&s, "maxblk", 0,
			 "--filter=blocksize-policy memory 8M blocksize-maximum=64K blocksize-error-policy=error"))
		return T_FAIL;
	snprintf(text, sizeof(text), NBD_CONF("max_io = \"512K\";", "uri = \"%s\";"), s.uri);
	ret = mix("maxblk.conf", text, 500);
	server_kill(&s);
	return ret;
}

/* lines of path holding what and also (if given) what2: nbdkit's log filter */
static int count_in(const char *path, const char *what, const char *what2)
{
	char line[1024];
	FILE *f = fopen(path, "r");
	int n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, what) && (!what2 || strstr(line, what2));
	fclose(f);
	return n;
}

/* An export without FUA: a FUA write is written, then flushed, then done. */
static int test_fua_emulated(void)
{
	struct server s = { 0 }, t = { 0 };
	struct harness h;
	char text[1024], log[512], log2[512];
	int ret = T_FAIL;

	snprintf(log, sizeof(log), "%s", tpath("fua.log"));
	snprintf(log2, sizeof(log2), "%s", tpath("fua2.log"));
	snprintf(text, sizeof(text), "--filter=log --filter=fua memory 4M logfile=%s", log);
	if (server_start(&s, "fua", 0, text))
		return T_FAIL;
	snprintf(text, sizeof(text), "--filter=log memory 4M logfile=%s", log2);
	if (server_start(&t, "fua2", 0, text))
		goto out;
	snprintf(text, sizeof(text), NBD_CONF("", "uri = \"%s\";"), s.uri);
	if (harness_open(&h, conf("fua.conf", text)))
		goto out;
	for (int i = 0; i < 3; i++) {
		issue(&h, UC_OP_WRITE, UC_F_FUA, i * 8192, 4096);
		CHECK(!harness_drain(&h) && !h.failures, "fua write");
	}
	CHECK(strstr(status(h.g.root), "up"), "status %s", status(h.g.root));
	harness_close(&h);
	CHECK(count_in(log, "...Flush", NULL) == 3 && count_in(log, "Write", "fua=1") == 0,
	      "%d flushes, %d FUA writes; want 3 and 0", count_in(log, "...Flush", NULL),
	      count_in(log, "Write", "fua=1"));
	/* with FUA: the flag, no flush */
	snprintf(text, sizeof(text), NBD_CONF("", "uri = \"%s\";"), t.uri);
	if (harness_open(&h, conf("fua2.conf", text)))
		goto out;
	issue(&h, UC_OP_WRITE, UC_F_FUA, 0, 4096);
	CHECK(!harness_drain(&h) && !h.failures, "fua write");
	harness_close(&h);
	CHECK(count_in(log2, "...Flush", NULL) == 0 && count_in(log2, "Write", "fua=1") == 1,
	      "%d flushes, %d FUA writes; want 0 and 1", count_in(log2, "...Flush", NULL),
	      count_in(log2, "Write", "fua=1"));
	ret = T_PASS;
out:
	server_kill(&s);
	server_kill(&t);
	return ret;
}

/* How many events of type t the server recorded after seq *from; *from moves to the newest. */
static int events_of(enum uc_event_type t, uint64_t *from)
{
	static struct uc_event_rec ev[64];
	unsigned int nr = uc_events_since(*from, ev, 64, from);
	int k = 0;

	for (unsigned int i = 0; i < nr; i++)
		k += ev[i].type == t;
	return k;
}

/*
 * The server dies: what was in flight and what comes next fail with EIO,
 * at once; once it is back on the same socket, the connection comes back
 * and the data written before is there.
 */
static int test_reconnect(void)
{
	struct server s = { 0 };
	struct harness h;
	char text[1024], args[1024];
	struct uc_node *n;
	int r, errors = 0, res[DEPTH];
	uint64_t t0, seq = 0;

	snprintf(args, sizeof(args), "file %s", tpath("reconnect.img"));
	CHECK(!truncate(tpath("reconnect.img"), 0) || errno == ENOENT, "truncate");
	{
		int fd = open(tpath("reconnect.img"), O_RDWR | O_CREAT, 0600);

		CHECK(fd >= 0 && !ftruncate(fd, 8 << 20), "image");
		close(fd);
	}
	if (server_start(&s, "reconnect", 0, args))
		return T_FAIL;
	snprintf(text, sizeof(text), NBD_CONF("max_io = \"64K\";", "uri = \"%s\"; timeout = \"5s\";"),
		 s.uri);
	if (harness_open(&h, conf("reconnect.conf", text)))
		return T_FAIL;
	n = h.g.root;
	events_of(UC_EV_CONNECTION_LOST, &seq);	/* what earlier tests left */
	CHECK(one_wait(&h, UC_OP_WRITE, 0, 65536, 5000) == 65536, "write");
	/* requests in flight when it dies */
	h.lax = true;
	for (int i = 0; i < DEPTH; i++)
		issue(&h, UC_OP_WRITE, 0, (1 + i) * 65536ULL, 65536);
	server_kill(&s);
	t0 = ms_now();
	CHECK(!harness_drain(&h), "drain");
	for (int i = 0; i < DEPTH; i++) {
		res[i] = h.results[i];
		CHECK(res[i] == 65536 || res[i] == -EIO, "tag %d: %d", i, res[i]);
		errors += res[i] < 0;
	}
	CHECK(wait_status(&h, n, "down", 2000), "status %s", status(n));
	r = one_wait(&h, UC_OP_READ, 0, 4096, 1000);
	CHECK(r == -EIO, "read while down: %d", r);
	CHECK(ms_now() - t0 < 3000, "failing took %llu ms", (unsigned long long)(ms_now() - t0));
	CHECK(h.g.root->ops->health(n) == UC_HEALTH_DEGRADED, "health");
	printf("  %d of %d in flight failed\n", errors, DEPTH);
	/* the monitor hears it once per outage, however many requests failed */
	CHECK(events_of(UC_EV_CONNECTION_LOST, &seq) == 1, "ConnectionLost events");
	/* back: the connection returns within the backoff (<= 5 s) */
	if (server_start(&s, "reconnect", 0, args))
		return T_FAIL;
	CHECK(wait_status(&h, n, "up, 1/1", 8000), "not back: %s", status(n));
	CHECK(strstr(status(n), "1 reconnects"), "%s", status(n));
	CHECK(h.g.root->ops->health(n) == UC_HEALTH_CLEAN, "health");
	CHECK(events_of(UC_EV_RECONNECTED, &seq) == 1, "Reconnected events");
	/* what was acknowledged is there (a failed write may or may not have reached the file) */
	for (int i = 0; i <= DEPTH; i++) {
		if (i && res[i - 1] < 0)
			continue;
		r = one_wait(&h, UC_OP_READ, i * 65536ULL, 65536, 5000);
		CHECK(r == 65536, "read %d after reconnect: %d", i, r);
	}
	harness_close(&h);
	server_kill(&s);
	return T_PASS;
}

/* TLS (a pre-shared key from the URI): the data, and a reconnect through the handshake */
static int test_tls(void)
{
	struct server s = { 0 };
	struct harness h;
	char text[2048], args[1024], psk[512];
	FILE *f;
	int ret;

	if (system("nbdkit --dump-config 2>/dev/null | grep -q '^tls=yes'")) {
		printf("  nbdkit without TLS: skipped\n");
		return T_PASS;
	}

	snprintf(psk, sizeof(psk), "%s", tpath("keys.psk"));
	f = fopen(psk, "w");
	CHECK(f, "psk");
	fprintf(f, "alice:");
	for (int i = 0; i < 32; i++)
		fprintf(f, "%02x", (unsigned int)(t_rand() & 0xff));
	fprintf(f, "\n");
	fclose(f);
	snprintf(args, sizeof(args), "--tls=require --tls-psk=%s memory 8M", psk);
	if (server_start(&s, "tls", 0, args))
		return T_FAIL;
	snprintf(text, sizeof(text),
		 NBD_CONF("max_io = \"128K\";",
			  "uri = \"nbds+unix://alice@/?socket=%s&tls-psk-file=%s\"; timeout = \"5s\";"),
		 s.sock, psk);
	if (harness_open(&h, conf("tls.conf", text)))
		return T_FAIL;
	CHECK(strstr(status(h.g.root), "up"), "%s", status(h.g.root));
	{
		char json[2048];

		h.g.root->ops->json(h.g.root, json, sizeof(json));
		CHECK(strstr(json, "\"tls\": true"), "%s", json);
	}
	ret = run_mix(&h, 800, true);
	CHECK(!ret, "mix: %d failures", ret);
	server_kill(&s);
	if (server_start(&s, "tls", 0, args))
		return T_FAIL;
	/* the loss is seen (the socket's EOF), then the new connection */
	CHECK(wait_status(&h, h.g.root, "1 reconnects", 8000), "not back: %s", status(h.g.root));
	CHECK(strstr(status(h.g.root), "up"), "%s", status(h.g.root));
	CHECK(one_wait(&h, UC_OP_WRITE, 0, 4096, 2000) == 4096, "write after");
	CHECK(one_wait(&h, UC_OP_READ, 0, 4096, 2000) == 4096, "read after");
	harness_close(&h);
	server_kill(&s);
	return T_PASS;
}

/*
 * The server is gone before the next request: its send fails inside
 * libnbd's aio call (the handle dies there, not in a notify). That too must
 * be seen as a lost connection, or the leg would keep an "up" connection
 * that fails every request and never reconnects.
 */
static int test_dies_on_send(void)
{
	struct server s = { 0 };
	struct harness h;
	char text[1024];
	struct uc_node *n;
	int r;

	if (server_start(&s, "onsend", 0, "memory 4M"))
		return T_FAIL;
	snprintf(text, sizeof(text), NBD_CONF("", "uri = \"%s\";"), s.uri);
	if (harness_open(&h, conf("onsend.conf", text)))
		return T_FAIL;
	n = h.g.root;
	CHECK(one_wait(&h, UC_OP_WRITE, 0, 4096, 2000) == 4096, "write");
	server_kill(&s);
	/* no loop turn in between: the write is sent on the dead socket */
	r = one_wait(&h, UC_OP_WRITE, 4096, 4096, 2000);
	CHECK(r == -EIO, "write to a dead server: %d", r);
	CHECK(wait_status(&h, n, "down", 2000), "the loss went unnoticed: %s", status(n));
	if (server_start(&s, "onsend", 0, "memory 4M"))
		return T_FAIL;
	CHECK(wait_status(&h, n, "1 reconnects", 8000), "not back: %s", status(n));
	harness_close(&h);
	server_kill(&s);
	return T_PASS;
}

static const char *leg_state_of(struct uc_node *mirror, const char *leg)
{
	static char st[32];
	char json[4096], k[96];
	const char *p;

	mirror->ops->json(mirror, json, sizeof(json));
	snprintf(k, sizeof(k), "\"node\": \"%s\", \"state\": \"", leg);
	p = strstr(json, k);
	if (!p)
		return "?";
	snprintf(st, sizeof(st), "%.*s", (int)strcspn(p + strlen(k), "\""), p + strlen(k));
	return st;
}

static bool leg_is(struct harness *h, const char *leg, const char *state, int ms)
{
	uint64_t end = ms_now() + ms;

	while (strcmp(leg_state_of(h->g.root, leg), state))
		if (ms_now() > end || turn_wait(h, 50))
			return false;
	return true;
}

/*
 * A mirror of a file and an nbd leg whose server dies: writes go on (the
 * leg is faulty, no error); the server back, the connection returns, the
 * mirror re-adds the leg and copies it only what was written meanwhile
 * (the bitmap), and both legs hold the same data after.
 */
static int test_mirror_rejoin(void)
{
	struct server s = { 0 };
	struct harness h;
	char text[2048], args[600], json[4096], img[512], *a, *b;
	uint64_t total = 0;
	int fd;

	snprintf(img, sizeof(img), "%s", tpath("rejoin.img"));
	fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && !ftruncate(fd, 8 << 20), "image");
	close(fd);
	snprintf(args, sizeof(args), "file %s", img);
	if (server_start(&s, "rejoin", 0, args))
		return T_FAIL;
	snprintf(text, sizeof(text),
		 "device = { max_io = \"64K\"; };\n"
		 "volume = { type = \"mirror\"; name = \"m\"; bitmap_chunk = \"64K\"; children = (\n"
		 "  { type = \"file\"; name = \"a\"; path = \"rejoin-a.img\"; size = \"8M\"; },\n"
		 "  { type = \"nbd\"; name = \"b\"; uri = \"%s\"; timeout = \"5s\"; } ); };\n", s.uri);
	if (harness_open(&h, conf("rejoin.conf", text)))
		return T_FAIL;
	h.lax = true;
	for (int i = 0; i < 32; i++)
		CHECK(one_wait(&h, UC_OP_WRITE, i * 65536ULL, 65536, 5000) == 65536, "write %d", i);
	/* bits of chunks written before the outage clear once idle (2 s): wait for that */
	for (uint64_t end = ms_now() + 8000; ms_now() < end;)
		turn_wait(&h, 100);
	server_kill(&s);
	/* written while the leg is out: chunks 40..43 and 50 */
	for (int i = 40; i < 44; i++)
		CHECK(one_wait(&h, UC_OP_WRITE, i * 65536ULL, 65536, 5000) == 65536, "write %d", i);
	CHECK(one_wait(&h, UC_OP_WRITE, 50 * 65536ULL, 4096, 5000) == 4096, "write 50");
	CHECK(!strcmp(leg_state_of(h.g.root, "b"), "faulty"), "leg b %s", leg_state_of(h.g.root, "b"));
	if (server_start(&s, "rejoin", 0, args))
		return T_FAIL;
	CHECK(leg_is(&h, "b", "in-sync", 15000), "leg b %s: %s", leg_state_of(h.g.root, "b"),
	      status(h.g.root->children[1]));
	h.g.root->ops->json(h.g.root, json, sizeof(json));
	{
		const char *t = strstr(json, "\"resync_total\": ");

		total = t ? strtoull(t + 16, NULL, 10) : 0;
	}
	/* 5 chunks of 64K written while out, nothing else */
	CHECK(total == 5 * 65536, "resync of %llu bytes: %s", (unsigned long long)total, json);
	CHECK(!harness_drain(&h), "drain");
	harness_close(&h);
	server_kill(&s);
	/* the legs hold the same data (after 1M of metadata) */
	a = malloc(7 << 20);
	b = malloc(7 << 20);
	{
		char pa[600];
		int fa, fb;

		snprintf(pa, sizeof(pa), "%s/rejoin-a.img", t_tmpdir());
		fa = open(pa, O_RDONLY);
		fb = open(img, O_RDONLY);
		CHECK(fa >= 0 && fb >= 0 && pread(fa, a, 7 << 20, 1 << 20) == 7 << 20 &&
		      pread(fb, b, 7 << 20, 1 << 20) == 7 << 20, "read legs");
		close(fa);
		close(fb);
	}
	CHECK(!memcmp(a, b, 7 << 20), "the legs differ after the rejoin");
	free(a);
	free(b);
	/* failed by the administrator while it is out: it stays out when it comes back */
	if (server_start(&s, "rejoin", 0, args) || harness_open(&h, conf("rejoin.conf", text)))
		return T_FAIL;
	h.lax = true;
	server_kill(&s);
	CHECK(one_wait(&h, UC_OP_WRITE, 0, 4096, 5000) == 4096, "write while out");
	CHECK(!strcmp(leg_state_of(h.g.root, "b"), "faulty"), "leg b %s", leg_state_of(h.g.root, "b"));
	{
		char reply[256];

		CHECK(h.g.root->ops->ctl(h.g.root, "fail", "b", reply, sizeof(reply)) == -EALREADY,
		      "fail b: %s", reply);
	}
	if (server_start(&s, "rejoin", 0, args))
		return T_FAIL;
	CHECK(wait_status(&h, h.g.root->children[1], "1 reconnects", 8000), "%s",
	      status(h.g.root->children[1]));
	for (uint64_t end = ms_now() + 1000; ms_now() < end;)
		turn_wait(&h, 50);
	CHECK(!strcmp(leg_state_of(h.g.root, "b"), "faulty"), "a leg failed by the administrator came back: %s",
	      leg_state_of(h.g.root, "b"));
	harness_close(&h);
	server_kill(&s);
	return T_PASS;
}

/* A server that stops answering: the request times out, the connection is made again. */
static int test_timeout(void)
{
	struct server s = { 0 };
	struct harness h;
	char text[1024];
	struct uc_node *n;
	uint64_t t0, took;
	int r;

	if (server_start(&s, "timeout", 0, "--filter=delay memory 4M delay-read=20"))
		return T_FAIL;
	snprintf(text, sizeof(text), NBD_CONF("", "uri = \"%s\"; timeout = \"400ms\";"), s.uri);
	if (harness_open(&h, conf("timeout.conf", text)))
		return T_FAIL;
	n = h.g.root;
	CHECK(one_wait(&h, UC_OP_WRITE, 0, 4096, 2000) == 4096, "write");
	t0 = ms_now();
	r = one_wait(&h, UC_OP_READ, 0, 4096, 5000);
	took = ms_now() - t0;
	CHECK(r == -EIO, "read: %d", r);
	/* 1 to 1.25 timeouts, plus a tick */
	CHECK(took >= 400 && took < 1200, "timed out after %llu ms", (unsigned long long)took);
	CHECK(strstr(status(n), "1 timeouts"), "%s", status(n));
	printf("  timed out after %llu ms\n", (unsigned long long)took);
	CHECK(wait_status(&h, n, "up", 3000), "not back: %s", status(n));
	CHECK(one_wait(&h, UC_OP_WRITE, 4096, 4096, 2000) == 4096, "write after");
	harness_close(&h);
	server_kill(&s);
	return T_PASS;
}

/* Read errors from the export: alone an EIO, under a mirror the other copy (and a rewrite). */
static int test_read_errors(void)
{
	struct server s = { 0 };
	struct harness h;
	char text[2048], args[512];
	const char *inject = tpath("inject");
	int r, fd;

	unlink(inject);
	snprintf(args, sizeof(args),
		 "--filter=error memory 8M error-pread=EIO error-pread-rate=100%% error-pread-file=%s",
		 inject);
	if (server_start(&s, "rderr", 0, args))
		return T_FAIL;
	snprintf(text, sizeof(text),
		 "volume = { type = \"mirror\"; read_policy = \"round-robin\"; children = (\n"
		 "  { type = \"file\"; name = \"a\"; path = \"rderr-a.img\"; size = \"8M\"; },\n"
		 "  { type = \"nbd\"; name = \"b\"; uri = \"%s\"; } ); };\n", s.uri);
	if (harness_open(&h, conf("rderr.conf", text)))
		return T_FAIL;
	CHECK(one(&h, UC_OP_WRITE, 0, 65536) == 65536, "write");
	CHECK(!harness_drain(&h), "drain");	/* the initial resync: reads then go to either leg */
	fd = open(inject, O_CREAT | O_WRONLY, 0600);
	close(fd);
	for (int i = 0; i < 4; i++) {
		r = one(&h, UC_OP_READ, 4096 * i, 4096);
		CHECK(r == 4096, "read %d under a mirror: %d", i, r);
	}
	CHECK(!harness_drain(&h), "drain");
	{
		char json[4096];

		h.g.root->ops->json(h.g.root, json, sizeof(json));
		const char *c = strstr(json, "\"read_errors_corrected\": ");
		int corrected = c ? atoi(c + 25) : -1;

		/* round-robin: some reads went to the nbd leg, each failed there and was repaired */
		CHECK(corrected >= 1 && corrected <= 4, "%d corrected: %s", corrected, json);
		CHECK(strstr(status(h.g.root), "clean"), "mirror: %s", status(h.g.root));
	}
	harness_close(&h);
	/* alone: the error reaches the request */
	snprintf(text, sizeof(text), NBD_CONF("", "uri = \"%s\";"), s.uri);
	if (harness_open(&h, conf("rderr2.conf", text)))
		return T_FAIL;
	r = one(&h, UC_OP_READ, 7 << 20, 4096);
	CHECK(r == -EIO, "read: %d", r);
	CHECK(strstr(status(h.g.root), "up"), "an error reply is no lost connection: %s",
	      status(h.g.root));
	unlink(inject);
	CHECK(one(&h, UC_OP_READ, 7 << 20, 4096) == 4096, "read after");
	harness_close(&h);
	server_kill(&s);
	return T_PASS;
}

int main(void)
{
	static const struct t_case cases[] = {
		{ "config_errors", test_config_errors },
		{ "mix", test_mix },
		{ "tcp_connections", test_tcp_connections },
		{ "stripe", test_stripe },
		{ "mirror", test_mirror },
		{ "max_block", test_max_block },
		{ "created", test_created },
		{ "fua_emulated", test_fua_emulated },
		{ "reconnect", test_reconnect },
		{ "dies_on_send", test_dies_on_send },
		{ "mirror_rejoin", test_mirror_rejoin },
		{ "tls", test_tls },
		{ "timeout", test_timeout },
		{ "read_errors", test_read_errors },
	};

	if (system("nbdkit --version >/dev/null 2>&1")) {
		fprintf(stderr, "no nbdkit here\n");
		return T_SKIP;
	}
	signal(SIGPIPE, SIG_IGN);
	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
