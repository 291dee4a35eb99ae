/* SPDX-License-Identifier: MIT */
/*
 * Events and the monitor, on the host (no ublk): the JSON line format, the
 * priorities, the ring a server keeps, SpaceLow's threshold, device names,
 * the --program contract, and a monitor following fake servers (the event
 * feed on a real admin socket in /run/ublk-compose): replay, ServerDied
 * when one is killed, Recovered from the next, DeviceStopped.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include "admin.h"
#include "alert.h"
#include "dev.h"
#include "event_feed.h"
#include "events.h"
#include "graph.h"
#include "harness.h"
#include "monitor.h"
#include "names.h"
#include "testlib.h"

static int test_encode_decode(void)
{
	struct uc_event_rec e = { .seq = 42, .time = 1700000000, .type = UC_EV_LEG_FAILED, .id = 3,
				  .count = 7 }, d;
	char line[1024];
	int len;

	snprintf(e.name, sizeof(e.name), "r10");
	snprintf(e.node, sizeof(e.node), "m0.children[1]");
	/* quotes, a backslash, a newline, a tab, a control byte, a non-ASCII byte */
	snprintf(e.detail, sizeof(e.detail), "say \"no\" \\ then\nnext\tx\x01y \xc3\xa9");
	len = uc_event_encode(&e, line, sizeof(line));
	CHECK(len > 0 && (size_t)len == strlen(line), "encode: %d", len);
	CHECK(!strchr(line, '\n'), "a newline in the line: %s", line);
	CHECK(strstr(line, "\"event\": \"LegFailed\"") && strstr(line, "\"device\": \"/dev/ublkb3\"") &&
	      strstr(line, "\"priority\": \"err\""), "%s", line);
	CHECK(!uc_event_decode(line, &d), "decode %s", line);
	CHECK(d.seq == 42 && d.time == 1700000000 && d.type == UC_EV_LEG_FAILED && d.id == 3 &&
	      d.count == 7, "fields: seq %llu type %d id %d count %llu", (unsigned long long)d.seq,
	      d.type, d.id, (unsigned long long)d.count);
	CHECK(!strcmp(d.name, "r10") && !strcmp(d.node, "m0.children[1]"), "%s %s", d.name, d.node);
	CHECK(!strcmp(d.detail, e.detail), "detail came back as '%s'", d.detail);
	/* every type by name, and a device-level event (no node, no id) */
	for (int t = 0; t < UC_EV_NR; t++) {
		struct uc_event_rec x = { .type = t, .id = -1 };

		CHECK(uc_event_type_of(uc_event_name(t)) == t, "type %d", t);
		CHECK(uc_event_encode(&x, line, sizeof(line)) > 0 && !uc_event_decode(line, &d) &&
		      d.type == (enum uc_event_type)t && d.id == -1 && !d.node[0], "%s", line);
		CHECK(strstr(line, "\"device\": \"\""), "no device for id -1: %s", line);
	}
	/* too small a buffer: refused, nothing written past it */
	memset(line, 'Z', sizeof(line));
	CHECK(uc_event_encode(&e, line, 40) == -ENOSPC, "short buffer");
	CHECK(line[40] == 'Z' && line[39] == 0, "wrote past the buffer");
	return T_PASS;
}

static int test_decode_input(void)
{
	struct uc_event_rec d;
	char s[64];
	long long v;

	/* members in any order, unknown ones (nested too) skipped */
	CHECK(!uc_event_decode("{\"x\": {\"a\": [1, \"]}\"]}, \"node\": \"n\", \"event\": "
			       "\"Degraded\", \"id\": 5, \"y\": null}", &d), "order");
	CHECK(d.type == UC_EV_DEGRADED && d.id == 5 && !strcmp(d.node, "n"), "fields");
	CHECK(uc_event_decode("", &d) == -EINVAL, "empty");
	CHECK(uc_event_decode("not json", &d) == -EINVAL, "text");
	CHECK(uc_event_decode("{\"event\": \"Nonsense\"}", &d) == -EINVAL, "unknown type");
	CHECK(uc_event_decode("{\"state\": \"clean\", \"id\": 1}", &d) == -EINVAL, "a state line");
	CHECK(uc_event_decode("{\"event\": \"Failed", &d) == -EINVAL, "cut string");
	CHECK(uc_event_decode("{\"event\": \"Failed\", \"detail\": \"abc", &d) == 0 && !d.detail[0],
	      "a cut member after the type is left empty");
	CHECK(!uc_json_get_str("{\"a\": \"\\u0041\\/\"}", "a", s, sizeof(s)) && !strcmp(s, "A/"), "%s", s);
	CHECK(uc_json_get_str("{\"a\": 1}", "a", s, sizeof(s)) == -ENOENT, "int as string");
	CHECK(!uc_json_get_int("{\"a\": -12}", "a", &v) && v == -12, "int");
	CHECK(uc_json_get_int("{\"b\": 1}", "a", &v) == -ENOENT, "absent");
	/* a long string is cut to the buffer, still terminated */
	CHECK(!uc_json_get_str("{\"a\": \"0123456789\"}", "a", s, 5) && !strcmp(s, "0123"), "%s", s);
	return T_PASS;
}

static int test_priorities(void)
{
	struct uc_event_rec e = { .id = -1 };

	e.type = UC_EV_FAILED;
	CHECK(uc_event_prio(&e) == LOG_CRIT, "Failed");
	e.type = UC_EV_LEG_FAILED;
	CHECK(uc_event_prio(&e) == LOG_ERR, "LegFailed");
	e.type = UC_EV_DEGRADED;
	CHECK(uc_event_prio(&e) == LOG_ERR, "Degraded");
	e.type = UC_EV_SERVER_DIED;
	CHECK(uc_event_prio(&e) == LOG_ERR, "ServerDied");
	e.type = UC_EV_SPACE_LOW;
	CHECK(uc_event_prio(&e) == LOG_WARNING, "SpaceLow");
	e.type = UC_EV_SCRUB_FINISHED;
	CHECK(uc_event_prio(&e) == LOG_NOTICE, "a clean scrub");
	e.count = 4096;
	CHECK(uc_event_prio(&e) == LOG_WARNING, "a scrub that found differences");
	e.type = UC_EV_RECOVERED;
	CHECK(uc_event_prio(&e) == LOG_NOTICE, "Recovered");
	CHECK(!strcmp(uc_prio_name(LOG_CRIT), "crit"), "name");
	return T_PASS;
}

static int wakes;

static void count_wake(void)
{
	wakes++;
}

static int test_ring(void)
{
	struct uc_event_rec out[80];
	uint64_t last, first;
	unsigned int n;

	uc_events_since(UINT64_MAX - 1, out, 0, &first);
	uc_events_set_wake(count_wake);
	uc_event(NULL, UC_EV_DEVICE_STARTED, "a %d", 1);
	uc_event(NULL, UC_EV_DEGRADED, "b");
	uc_event_count(NULL, UC_EV_SCRUB_FINISHED, 9, "c");
	uc_events_set_wake(NULL);
	CHECK(wakes == 3, "woken %d times", wakes);
	n = uc_events_since(first, out, 80, &last);
	CHECK(n == 3 && last == first + 3, "n %u last %llu", n, (unsigned long long)last);
	CHECK(out[0].seq == first + 1 && out[0].type == UC_EV_DEVICE_STARTED &&
	      !strcmp(out[0].detail, "a 1"), "first: seq %llu type %d '%s'",
	      (unsigned long long)out[0].seq, out[0].type, out[0].detail);
	CHECK(out[2].type == UC_EV_SCRUB_FINISHED && out[2].count == 9, "third");
	n = uc_events_since(first + 2, out, 80, &last);
	CHECK(n == 1 && out[0].seq == first + 3, "since a seq: n %u", n);
	/* past the ring's 64: the newest 64, oldest first, seqs in a row */
	for (int i = 0; i < 100; i++)
		uc_event(NULL, UC_EV_TEST_MESSAGE, "%d", i);
	n = uc_events_since(first, out, 80, &last);
	CHECK(n == 64 && last == first + 103, "n %u", n);
	for (unsigned int i = 0; i < n; i++)
		CHECK(out[i].seq == last - 63 + i && atoi(out[i].detail) == 36 + (int)i,
		      "slot %u: seq %llu detail %s", i, (unsigned long long)out[i].seq, out[i].detail);
	return T_PASS;
}

/* SpaceLow events of node n recorded after seq *from (which moves on) */
static int space_events(const struct uc_node *n, uint64_t *from)
{
	struct uc_event_rec out[64];
	unsigned int nr = uc_events_since(*from, out, 64, from);
	int c = 0;

	for (unsigned int i = 0; i < nr; i++)
		c += out[i].type == UC_EV_SPACE_LOW && !strcmp(out[i].node, n->name);
	return c;
}

static int test_space_low(void)
{
	struct uc_node a = { .name = "cz-a" }, b = { .name = "cz-b" };
	struct uc_event_rec dummy;
	uint64_t seq;

	uc_events_since(UINT64_MAX - 1, &dummy, 0, &seq);
	uc_event_set_space_warn(90);
	uc_event_space(&a, 50, 100);
	CHECK(space_events(&a, &seq) == 0, "50%%");
	uc_event_space(&a, 91, 100);
	CHECK(space_events(&a, &seq) == 1, "91%%: one SpaceLow");
	uc_event_space(&a, 99, 100);
	uc_event_space(&a, 92, 100);
	CHECK(space_events(&a, &seq) == 0, "still above: no repeat");
	uc_event_space(&b, 95, 100);
	CHECK(space_events(&b, &seq) == 1, "another node has its own state");
	uc_event_space(&a, 88, 100);
	uc_event_space(&a, 91, 100);
	CHECK(space_events(&a, &seq) == 0, "not 5 points below in between: no repeat");
	uc_event_space(&a, 84, 100);
	uc_event_space(&a, 90, 100);
	CHECK(space_events(&a, &seq) == 1, "dropped below 85%%, then 90%% again: SpaceLow again");
	uc_event_set_space_warn(100);
	uc_event_space(&b, 40, 100);
	uc_event_space(&b, 100, 100);
	CHECK(space_events(&b, &seq) == 0, "space_warn 100: never");
	uc_event_set_space_warn(90);
	return T_PASS;
}

/* device.name: parse a config with text; returns 0 or -EINVAL, the name and stderr */
static int load_name(const char *file, const char *text, char *name, char *err, size_t len)
{
	char path[PATH_MAX], tmpl[PATH_MAX];
	struct uc_graph g;
	int fd, saved, ret;
	ssize_t n;

	snprintf(path, sizeof(path), "%s", t_write_file(t_tmpdir(), file, text));
	snprintf(tmpl, sizeof(tmpl), "%s/stderr-XXXXXX", t_tmpdir());
	fd = mkstemp(tmpl);
	unlink(tmpl);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	ret = uc_graph_load(&g, path);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, err, len - 1, 0);
	err[n > 0 ? n : 0] = 0;
	close(fd);
	snprintf(name, UC_NAME_MAX + 1, "%s", g.dev.name);
	uc_graph_free(&g);
	return ret;
}

static int test_names(void)
{
	const char *vol = "volume = { type = \"file\"; path = \"n.img\"; size = \"1M\"; };\n";
	char text[512], name[UC_NAME_MAX + 1], err[1024];
	unsigned int id;

	CHECK(uc_name_valid("r10") && uc_name_valid("raid_10.a-b") && uc_name_valid("0x1"), "valid");
	CHECK(!uc_name_valid("") && !uc_name_valid("12") && !uc_name_valid("-a") &&
	      !uc_name_valid(".a") && !uc_name_valid("a b") && !uc_name_valid("a/b") &&
	      !uc_name_valid("\xc3\xa9"), "invalid");
	memset(text, 'a', UC_NAME_MAX + 1);
	text[UC_NAME_MAX + 1] = 0;
	CHECK(!uc_name_valid(text), "too long");
	text[UC_NAME_MAX] = 0;
	CHECK(uc_name_valid(text), "64 is fine");

	CHECK(!load_name("data-vol.conf", vol, name, err, sizeof(err)) && !strcmp(name, "data-vol"),
	      "default from the file name: '%s' %s", name, err);
	snprintf(text, sizeof(text), "device = { name = \"r10\"; };\n%s", vol);
	CHECK(!load_name("x.conf", text, name, err, sizeof(err)) && !strcmp(name, "r10"),
	      "device.name: '%s' %s", name, err);
	CHECK(!load_name("plain", vol, name, err, sizeof(err)) && !strcmp(name, "plain"),
	      "a file without .conf: '%s'", name);
	/* bad names: one line FILE:LINE: message */
	snprintf(text, sizeof(text), "device = {\n name = \"1\"; };\n%s", vol);
	CHECK(load_name("y.conf", text, name, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "y.conf:2: device name '1'") && !strchr(strchr(err, '\n') + 1, '\n'),
	      "a number: %s", err);
	snprintf(text, sizeof(text), "device = { name = \"a b\"; };\n%s", vol);
	CHECK(load_name("y.conf", text, name, err, sizeof(err)) == -EINVAL && strstr(err, "'a b'"),
	      "a space: %s", err);
	snprintf(text, sizeof(text), "device = { name = 5; };\n%s", vol);
	CHECK(load_name("y.conf", text, name, err, sizeof(err)) == -EINVAL, "not a string: %s", err);
	CHECK(load_name("7.conf", vol, name, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "7.conf:1: the file name does not make a device name") &&
	      strstr(err, "set device.name"), "a numeric file name: %s", err);
	CHECK(!load_name("8.conf", "device = { name = \"eight\"; };\nvolume = { type = \"file\"; "
			 "path = \"m.img\"; size = \"1M\"; };\n", name, err, sizeof(err)) &&
	      !strcmp(name, "eight"), "a numeric file name with device.name: %s", err);
	/* space_warn */
	snprintf(text, sizeof(text), "device = { space_warn = 101; };\n%s", vol);
	CHECK(load_name("s.conf", text, name, err, sizeof(err)) == -EINVAL &&
	      strstr(err, "space_warn must be"), "space_warn 101: %s", err);

	/* what commands take for a device */
	CHECK(!uc_name_resolve("12", &id, true) && id == 12, "N");
	CHECK(!uc_name_resolve("/dev/ublkb7", &id, true) && id == 7, "/dev/ublkbN");
	CHECK(uc_name_resolve("no-such-volume-xyz", &id, true) == -ENOENT, "unknown name");
	CHECK(uc_name_resolve(UC_NAME_DIR "/no-such-volume-xyz", &id, true) == -ENOENT, "link");
	CHECK(uc_name_resolve("a b", &id, true) == -EINVAL, "neither");
	CHECK(uc_name_resolve("", &id, true) == -EINVAL, "empty");
	return T_PASS;
}

/* pid runs and is not a zombie */
static bool process_running(int pid)
{
	char path[64], st[256] = "";
	FILE *f;

	if (kill(pid, 0))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "re");
	if (f) {
		if (!fgets(st, sizeof(st), f))
			st[0] = 0;
		fclose(f);
	}
	return !strrchr(st, ')') || strrchr(st, ')')[2] != 'Z';
}

static int test_program_contract(void)
{
	const char *dir = t_tmpdir();
	char script[PATH_MAX], out[PATH_MAX], marker[80], text[4 * PATH_MAX], want[2048];
	struct uc_event_rec e = { .type = UC_EV_LEG_FAILED, .id = 4, .time = 1 };
	struct timespec t0, t1;
	int rc, child;

	snprintf(out, sizeof(out), "%s/prog.out", dir);
	/* a short path: it must fit the detail twice */
	snprintf(marker, sizeof(marker), "/tmp/uc-injected-%d", (int)getpid());
	unlink(marker);
	/* the script prints its arguments, one per line, its environment and what stdin gives */
	snprintf(text, sizeof(text), "#!/bin/sh\nprintf '%%s\\n' \"$#\" \"$1\" \"$2\" \"$3\" \"$4\" "
		 "\"$UBLK_COMPOSE_NAME\" \"$UBLK_COMPOSE_ID\" \"${NOTIFY_SOCKET-unset}\" > '%s'\n"
		 "cat >> '%s'\necho end >> '%s'\nexit 7\n", out, out, out);
	snprintf(script, sizeof(script), "%s", t_write_file(dir, "prog.sh", text));
	chmod(script, 0755);
	snprintf(e.name, sizeof(e.name), "r10");
	snprintf(e.node, sizeof(e.node), "m0.children[1]");
	/* nothing in DETAIL is interpreted by a shell */
	snprintf(e.detail, sizeof(e.detail), "write failed; $(touch %s) `touch %s` \"q\" 'x'", marker,
		 marker);
	setenv("NOTIFY_SOCKET", "/run/systemd/notify", 1);
	rc = uc_alert_program(script, &e, 10000);
	unsetenv("NOTIFY_SOCKET");
	CHECK(rc == 7, "exit status %d, want the program's 7", rc);
	snprintf(want, sizeof(want), "4\nLegFailed\n/dev/ublkb4\nm0.children[1]\n%s\nr10\n4\nunset\nend\n",
		 e.detail);
	CHECK(!strcmp(t_slurp(out, text, sizeof(text)), want), "got:\n%s\nwant:\n%s", text, want);
	CHECK(access(marker, F_OK), "DETAIL was run by a shell");
	/* a device-level event: NODE is "" (still 4 arguments) */
	e.type = UC_EV_SERVER_DIED;
	e.node[0] = 0;
	snprintf(e.detail, sizeof(e.detail), "gone");
	CHECK(uc_alert_program(script, &e, 10000) == 7, "second run");
	CHECK(!strcmp(t_slurp(out, text, sizeof(text)),
		      "4\nServerDied\n/dev/ublkb4\n\ngone\nr10\n4\nunset\nend\n"),
	      "device event: %s", text);
	/* a program that hangs is killed after the timeout, and what it started with it */
	snprintf(out, sizeof(out), "%s/hang.pid", dir);
	snprintf(text, sizeof(text), "#!/bin/sh\nsleep 30 &\necho $! > '%s'\nwait\n", out);
	snprintf(script, sizeof(script), "%s", t_write_file(dir, "hang.sh", text));
	chmod(script, 0755);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = uc_alert_program(script, &e, 300);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(rc == -ETIMEDOUT, "hang: %d", rc);
	CHECK(t1.tv_sec - t0.tv_sec < 5, "the timeout did not bound the wait");
	child = atoi(t_slurp(out, text, sizeof(text)));
	CHECK(child > 0, "the hung program recorded no child: '%s'", text);
	for (int i = 0; i < 50 && process_running(child); i++)
		usleep(20000);
	CHECK(!process_running(child), "the hung program's child (pid %d) survived the kill", child);
	/* a program that does not exist: 127, like a shell */
	CHECK(uc_alert_program("/nonexistent/prog", &e, 10000) == 127, "missing program");
	return T_PASS;
}

static int test_alert_text(void)
{
	struct uc_event_rec e = { .type = UC_EV_LEG_FAILED, .id = 3, .time = 0 };
	char buf[512];

	snprintf(e.name, sizeof(e.name), "r10");
	snprintf(e.node, sizeof(e.node), "f0");
	snprintf(e.detail, sizeof(e.detail), "leg 0 of m0 marked faulty: write failed");
	CHECK(!strcmp(uc_alert_text(&e, true, buf, sizeof(buf)),
		      "<3>LegFailed /dev/ublkb3 (r10) f0: leg 0 of m0 marked faulty: write failed"), "%s", buf);
	uc_alert_text(&e, false, buf, sizeof(buf));
	CHECK(strstr(buf, " LegFailed /dev/ublkb3 (r10) f0: leg 0") && buf[4] == '-', "%s", buf);
	e.type = UC_EV_DEVICE_STOPPED;
	e.node[0] = e.detail[0] = 0;
	CHECK(!strcmp(uc_alert_text(&e, true, buf, sizeof(buf)), "<5>DeviceStopped /dev/ublkb3 (r10)"),
	      "%s", buf);
	return T_PASS;
}

/* ---- events from the layers, and what the feed makes of health changes ---- */

#define EV_LEG(name, file) \
	"   { type = \"fault\"; name = \"" name "\"; children = (\n" \
	"     { type = \"file\"; path = \"" file "\"; size = \"16M\"; } ); }"

/* Run the queue (background work too) until n's status starts with want; 0 or -1. */
static int run_until_status(struct harness *h, struct uc_node *n, const char *want, int secs)
{
	time_t end = time(NULL) + secs;

	while (strncmp(status(n), want, strlen(want))) {
		if (time(NULL) > end) {
			fprintf(stderr, "%s: status '%s', waited for '%s'\n", n->name, status(n), want);
			return -1;
		}
		if (harness_turn(h))
			return -1;
	}
	return 0;
}

/* Wait (up to 5 s) until an event of type t has been recorded after seq from. */
static bool recorded(uint64_t from, enum uc_event_type t)
{
	struct uc_event_rec out[64];
	uint64_t last;

	for (int i = 0; i < 500; i++) {
		unsigned int n = uc_events_since(from, out, 64, &last);

		for (unsigned int k = 0; k < n; k++)
			if (out[k].type == t)
				return true;
		usleep(10000);
	}
	return false;
}

/* The events recorded after seq from must include want[] (type, node, detail part) in order. */
static int events_in_order(uint64_t from, const char *const want[][3], unsigned int nr)
{
	struct uc_event_rec out[64];
	unsigned int n, k = 0;
	uint64_t last;

	n = uc_events_since(from, out, 64, &last);
	for (unsigned int i = 0; i < n && k < nr; i++) {
		if (out[i].type != (enum uc_event_type)uc_event_type_of(want[k][0]))
			continue;
		CHECK(!strcmp(out[i].node, want[k][1]) && strstr(out[i].detail, want[k][2]),
		      "%s: node '%s' detail '%s', want '%s' '%s'", want[k][0], out[i].node,
		      out[i].detail, want[k][1], want[k][2]);
		k++;
	}
	CHECK(k == nr, "%s missing or out of order (%u events)", want[k < nr ? k : 0][0], n);
	return T_PASS;
}

/*
 * A mirror m of fault nodes fa, fb; over legs that exist (exist): a new array
 * resyncs them in full, else the legs are created.
 */
static const char *event_mirror(const char *name, const char *rate, bool exist)
{
	char text[1024], a[64], b[64];

	snprintf(a, sizeof(a), "%s-a.img", name);
	snprintf(b, sizeof(b), "%s-b.img", name);
	unlink(conf(a, ""));
	unlink(conf(b, ""));
	if (exist && (truncate(conf(a, ""), 16 * M) || truncate(conf(b, ""), 16 * M)))
		return NULL;
	snprintf(text, sizeof(text), "device = { max_io = \"256K\"; };\n"
		 "volume = { type = \"mirror\"; name = \"m\"; bitmap_chunk = \"1M\"; "
		 "resync_rate = \"%s\";\n  children = (\n" EV_LEG("fa", "%s") ",\n" EV_LEG("fb", "%s")
		 " ); };\n", rate, a, b);
	snprintf(a, sizeof(a), "%s.conf", name);
	return conf(a, text);
}

/*
 * The mirror's events (RebuildStarted/Finished, LegFailed) and the ones the
 * feed derives from the health (Degraded, Failed), in order, with nodes.
 */
static int test_layer_events(void)
{
	const char *const want_degraded[][3] = {
		{ "RebuildStarted", "m", "from leg 0 to legs 0x2" },
		{ "RebuildFinished", "m", "copied in" },
		{ "LegFailed", "fa", "leg 0 of m marked faulty: " },
		{ "Degraded", "m", "degraded" },
	};
	const char *const want_failed[][3] = {
		{ "RebuildStarted", "m", "from leg 0 to legs 0x2" },
		{ "LegFailed", "fa", "leg 0 of m marked faulty: " },
		{ "Failed", "m", "failed" },
	};
	struct uc_event_rec dummy;
	const char *cf;
	struct harness h;
	uint64_t first;
	char r[256];
	int ret;

	/* a resync, then write errors on leg 0: the write succeeds on leg 1, degraded */
	uc_events_since(UINT64_MAX - 1, &dummy, 0, &first);
	CHECK((cf = event_mirror("evd", "0", true)) && !harness_open(&h, cf), "open");
	CHECK(!run_until_status(&h, h.g.root, "clean", 60), "the first resync did not finish");
	CHECK(!uc_feed_start(&h.g, 4242, "ev"), "feed");
	CHECK(!ctl(uc_graph_find(&h.g, "fa"), "errors", "write", r, sizeof(r)), "%s", r);
	CHECK(one(&h, UC_OP_WRITE, 1 * M, 64 * K) == 64 * K, "a write with one leg failing");
	CHECK(recorded(first, UC_EV_DEGRADED), "no Degraded from the feed");
	uc_feed_stop(false);
	harness_close(&h);
	if ((ret = events_in_order(first, want_degraded, 4)))
		return ret;

	/*
	 * Leg b replaced by an empty file while stopped; the in-sync leg a fails
	 * while b is rebuilt (slowly, 4K/s): no in-sync leg left, failed.
	 */
	CHECK((cf = event_mirror("evf", "4K", false)) && !harness_open(&h, cf), "open");
	CHECK(one(&h, UC_OP_WRITE, 0, 64 * K) == 64 * K, "write");
	h.q.stopping = true;
	while (!uc_queue_idle(&h.q) && !uc_queue_turn(&h.q))
		;
	harness_close(&h);
	unlink(conf("evf-b.img", ""));
	uc_events_since(UINT64_MAX - 1, &dummy, 0, &first);
	CHECK(!harness_open(&h, cf), "open with a new leg b");
	CHECK(!strncmp(status(h.g.root), "resyncing", 9), "no rebuild: %s", status(h.g.root));
	CHECK(!uc_feed_start(&h.g, 4243, "ev"), "feed");
	CHECK(one(&h, UC_OP_WRITE, 0, 64 * K) == 64 * K, "write during the rebuild");
	CHECK(!ctl(uc_graph_find(&h.g, "fa"), "errors", "all", r, sizeof(r)), "%s", r);
	h.lax = true;
	CHECK(one(&h, UC_OP_WRITE, 0, 64 * K) == -EIO, "a write with no in-sync leg left");
	CHECK(recorded(first, UC_EV_FAILED), "no Failed from the feed");
	uc_feed_stop(false);
	harness_close(&h);
	if ((ret = events_in_order(first, want_failed, 3)))
		return ret;
	/*
	 * New legs: leg a's, then leg b's metadata writes fail (the bitmap bits
	 * of two writes): failed. The LegFailed of the last leg woke the feed
	 * before the mirror said it had failed, and no Failed came.
	 */
	uc_events_since(UINT64_MAX - 1, &dummy, 0, &first);
	CHECK((cf = event_mirror("evm", "0", false)) && !harness_open(&h, cf), "open");
	CHECK(!uc_feed_start(&h.g, 4244, "ev"), "feed");
	CHECK(!ctl(uc_graph_find(&h.g, "fa"), "errors", "write", r, sizeof(r)), "%s", r);
	h.lax = true;
	one(&h, UC_OP_WRITE, 1 * M, 64 * K);
	CHECK(recorded(first, UC_EV_DEGRADED), "no Degraded from the feed (%s)", status(h.g.root));
	CHECK(!ctl(uc_graph_find(&h.g, "fb"), "errors", "write", r, sizeof(r)), "%s", r);
	one(&h, UC_OP_WRITE, 2 * M, 64 * K);
	CHECK(!strncmp(status(h.g.root), "failed", 6), "not failed: %s", status(h.g.root));
	CHECK(recorded(first, UC_EV_FAILED), "no Failed from the feed");
	uc_feed_stop(false);
	harness_close(&h);
	{
		struct uc_event_rec e = { .type = UC_EV_FAILED };

		CHECK(uc_event_prio(&e) == LOG_CRIT, "Failed is crit");
	}
	return T_PASS;
}

/* ---- a monitor following fake servers ---- */

static unsigned int fake_id;

/* A server of device fake_id without a device: the feed and the admin socket. */
static void fake_server(const char *conf, enum uc_event_type first, int ready_fd)
{
	struct uc_admin a = { .fd = -1 };
	struct uc_graph g;
	sigset_t s;
	int sig;

	sigemptyset(&s);
	sigaddset(&s, SIGTERM);
	sigprocmask(SIG_BLOCK, &s, NULL);
	if (uc_graph_load(&g, conf))
		_exit(1);
	uc_event(NULL, first, "pid %d", (int)getpid());
	if (uc_feed_start(&g, fake_id, "fake") || uc_admin_start(&a, &g, fake_id, false))
		_exit(1);
	if (write(ready_fd, "x", 1) != 1)
		_exit(1);
	sigwait(&s, &sig);	/* SIGTERM: a clean stop */
	uc_event(g.root, UC_EV_LEG_FAILED, "just before the stop");
	uc_admin_stop(&a);
	uc_event(NULL, UC_EV_DEVICE_STOPPED, "stopped");
	uc_feed_stop(false);
	uc_graph_free(&g);
	_exit(0);
}

static char self[PATH_MAX];

/* A fake server in a new process of this binary (a fresh ring: only its own events). */
static pid_t start_fake(const char *conf, enum uc_event_type first)
{
	char fdarg[16], idarg[16], typearg[16];
	int p[2];
	char c;
	pid_t pid;

	if (pipe(p))
		return -1;
	pid = fork();
	if (!pid) {
		close(p[0]);
		snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
		snprintf(idarg, sizeof(idarg), "%u", fake_id);
		snprintf(typearg, sizeof(typearg), "%d", first);
		execl(self, self, "--fake-server", conf, typearg, idarg, fdarg, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1)
		pid = -1;
	close(p[0]);
	return pid;
}

/* Wait (up to 10 s) until path holds needle; returns whether it did. */
static bool wait_for(const char *path, const char *needle)
{
	char buf[16384];

	for (int i = 0; i < 100; i++) {
		if (strstr(t_slurp(path, buf, sizeof(buf)), needle))
			return true;
		usleep(100000);
	}
	return false;
}

static pid_t children[3];

/* The monitor and the fake servers go with the test, also when a check fails. */
static void kill_children(void)
{
	for (int i = 0; i < 3; i++)
		if (children[i] > 0) {
			kill(children[i], SIGKILL);
			waitpid(children[i], NULL, 0);
			children[i] = 0;
		}
}

static int monitor_follows_servers(void);

static int test_monitor_follows_servers(void)
{
	int ret = monitor_follows_servers();
	char sock[64];

	kill_children();
	snprintf(sock, sizeof(sock), UC_RUN_DIR "/%u.sock", fake_id);
	unlink(sock);
	return ret;
}

static int monitor_follows_servers(void)
{
	const char *dir = t_tmpdir();
	char conf[PATH_MAX], out[PATH_MAX], prog[PATH_MAX], plog[PATH_MAX], text[16384], sock[64];
	const char *evs[] = { "\"DeviceStarted\"", "\"LegFailed\"", "\"DeviceStopped\"", "\"ServerDied\"",
			      "\"Recovered\"" };
	pid_t mon, s1, s2;
	int fd, status;
	long last = -1;

	if (geteuid() || (mkdir(UC_RUN_DIR, 0700) && errno != EEXIST)) {
		fprintf(stderr, "monitor test: needs root and " UC_RUN_DIR "\n");
		return T_SKIP;
	}
	fake_id = 900000 + getpid() % 90000;
	snprintf(conf, sizeof(conf), "%s", t_write_file(dir, "fake.conf",
		 "volume = { type = \"file\"; path = \"fake.img\"; size = \"1M\"; };\n"));
	snprintf(out, sizeof(out), "%s/monitor.out", dir);
	snprintf(plog, sizeof(plog), "%s/program.log", dir);
	snprintf(text, sizeof(text), "#!/bin/sh\necho \"$1 $2\" >> '%s'\n", plog);
	snprintf(prog, sizeof(prog), "%s", t_write_file(dir, "prog.sh", text));
	chmod(prog, 0755);
	mon = fork();
	if (!mon) {
		char *av[] = { "monitor", "--json", "--program", prog, NULL };

		fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		_exit(uc_cmd_monitor(4, av));
	}
	children[0] = mon;
	usleep(500000);	/* its inotify watch is set */
	/* a new server: what it recorded before the monitor connected is replayed */
	s1 = children[1] = start_fake(conf, UC_EV_DEVICE_STARTED);
	CHECK(s1 > 0, "fake server");
	CHECK(wait_for(out, "\"DeviceStarted\""), "no DeviceStarted: %s", t_slurp(out, text, sizeof(text)));
	/* it dies: ServerDied */
	kill(s1, SIGKILL);
	waitpid(s1, &status, 0);
	children[1] = 0;
	CHECK(wait_for(out, "\"ServerDied\""), "no ServerDied: %s", t_slurp(out, text, sizeof(text)));
	/* a new server of the device (its socket replaces the dead one's): Recovered */
	s2 = children[2] = start_fake(conf, UC_EV_RECOVERED);
	CHECK(s2 > 0, "second fake server");
	CHECK(wait_for(out, "\"Recovered\""), "no Recovered: %s", t_slurp(out, text, sizeof(text)));
	/* a clean stop: the events before it, DeviceStopped, and no ServerDied */
	kill(s2, SIGTERM);
	waitpid(s2, &status, 0);
	children[2] = 0;
	CHECK(WIFEXITED(status) && !WEXITSTATUS(status), "fake server exit");
	CHECK(wait_for(out, "\"DeviceStopped\""), "no DeviceStopped: %s", t_slurp(out, text, sizeof(text)));
	usleep(1500000);	/* a ServerDied would come within this */
	kill_children();
	t_slurp(out, text, sizeof(text));
	/* the order: DeviceStarted ServerDied Recovered LegFailed DeviceStopped, each once */
	{
		const int order[] = { 0, 3, 4, 1, 2 };

		for (int i = 0; i < 5; i++) {
			const char *at = strstr(text, evs[order[i]]);

			CHECK(at && !strstr(at + 1, evs[order[i]]), "%s not exactly once:\n%s",
			      evs[order[i]], text);
			CHECK(at - text > last, "%s out of order:\n%s", evs[order[i]], text);
			last = at - text;
		}
	}
	CHECK(strstr(text, "\"name\": \"fake\""), "events name the device: %s", text);
	/* --program ran for each, with EVENT DEVICE */
	snprintf(sock, sizeof(sock), "ServerDied /dev/ublkb%u", fake_id);
	CHECK(wait_for(plog, sock), "program log: %s", t_slurp(plog, text, sizeof(text)));
	snprintf(sock, sizeof(sock), "DeviceStopped /dev/ublkb%u", fake_id);
	CHECK(wait_for(plog, sock), "program log: %s", t_slurp(plog, text, sizeof(text)));
	return T_PASS;
}

static const struct t_case cases[] = {
#define C(fn) { #fn, test_##fn }
	C(encode_decode), C(decode_input), C(priorities), C(ring), C(space_low), C(names),
	C(program_contract), C(alert_text), C(layer_events), C(monitor_follows_servers),
#undef C
};

int main(int argc, char **argv)
{
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	self[n > 0 ? n : 0] = 0;
	if (argc == 6 && !strcmp(argv[1], "--fake-server")) {
		fake_id = atoi(argv[4]);
		fake_server(argv[2], atoi(argv[3]), atoi(argv[5]));
	}
	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
