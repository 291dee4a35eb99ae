/* SPDX-License-Identifier: MIT */
/*
 * Event records: names, priorities, the JSON line format, and the ring the
 * server keeps of the recent ones. uc_event() takes a mutex for a copy and
 * calls the feed's wake (an eventfd write): cheap enough for a queue thread,
 * and events are rare (a leg failing, a scrub ending).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include "events.h"
#include "layer.h"

static const char *const type_names[UC_EV_NR] = {
	[UC_EV_DEVICE_STARTED] = "DeviceStarted",
	[UC_EV_DEVICE_STOPPED] = "DeviceStopped",
	[UC_EV_SERVER_DIED] = "ServerDied",
	[UC_EV_RECOVERED] = "Recovered",
	[UC_EV_LEG_FAILED] = "LegFailed",
	[UC_EV_DEGRADED] = "Degraded",
	[UC_EV_REBUILD_STARTED] = "RebuildStarted",
	[UC_EV_REBUILD_FINISHED] = "RebuildFinished",
	[UC_EV_SCRUB_FINISHED] = "ScrubFinished",
	[UC_EV_CHECKSUM_ERROR] = "ChecksumError",
	[UC_EV_SPACE_LOW] = "SpaceLow",
	[UC_EV_FAILED] = "Failed",
	[UC_EV_CONNECTION_LOST] = "ConnectionLost",
	[UC_EV_RECONNECTED] = "Reconnected",
	[UC_EV_TEST_MESSAGE] = "TestMessage",
};

const char *uc_event_name(enum uc_event_type t)
{
	return (unsigned int)t < UC_EV_NR ? type_names[t] : "Unknown";
}

int uc_event_type_of(const char *s)
{
	for (int t = 0; t < UC_EV_NR; t++)
		if (!strcmp(s, type_names[t]))
			return t;
	return -1;
}

int uc_event_prio(const struct uc_event_rec *e)
{
	switch (e->type) {
	case UC_EV_FAILED:
		return LOG_CRIT;
	case UC_EV_LEG_FAILED:
	case UC_EV_DEGRADED:
	case UC_EV_SERVER_DIED:
		return LOG_ERR;
	case UC_EV_CHECKSUM_ERROR:
	case UC_EV_SPACE_LOW:
	case UC_EV_CONNECTION_LOST:
		return LOG_WARNING;
	case UC_EV_SCRUB_FINISHED:
		return e->count ? LOG_WARNING : LOG_NOTICE;
	default:
		return LOG_NOTICE;
	}
}

const char *uc_prio_name(int prio)
{
	static const char *const names[] = { "emerg", "alert", "crit", "err", "warning", "notice",
					     "info", "debug" };

	return prio >= 0 && prio < 8 ? names[prio] : "notice";
}

/* ---- JSON lines ---- */

/* Append s as a JSON string; returns the new offset (may exceed len: then it did not fit). */
static size_t put_str(char *buf, size_t len, size_t off, const char *s)
{
	off += snprintf(buf + (off < len ? off : len), off < len ? len - off : 0, "\"");
	for (; *s; s++) {
		unsigned char c = *s;
		char esc[8];

		if (c == '"' || c == '\\')
			snprintf(esc, sizeof(esc), "\\%c", c);
		else if (c == '\n')
			snprintf(esc, sizeof(esc), "\\n");
		else if (c < 0x20 || c == 0x7f)
			snprintf(esc, sizeof(esc), "\\u%04x", c);
		else
			snprintf(esc, sizeof(esc), "%c", c);
		off += snprintf(buf + (off < len ? off : len), off < len ? len - off : 0, "%s", esc);
	}
	off += snprintf(buf + (off < len ? off : len), off < len ? len - off : 0, "\"");
	return off;
}

int uc_event_encode(const struct uc_event_rec *e, char *buf, size_t len)
{
	char dev[32] = "";
	size_t off;

	if (e->id >= 0)
		snprintf(dev, sizeof(dev), "/dev/ublkb%d", e->id);
	off = snprintf(buf, len, "{\"event\": ");
	off = put_str(buf, len, off, uc_event_name(e->type));
	off += snprintf(buf + (off < len ? off : len), off < len ? len - off : 0,
			", \"seq\": %" PRIu64 ", \"time\": %" PRId64 ", \"id\": %d, \"name\": ",
			e->seq, e->time, e->id);
	off = put_str(buf, len, off, e->name);
	off += snprintf(buf + (off < len ? off : len), off < len ? len - off : 0, ", \"device\": ");
	off = put_str(buf, len, off, dev);
	off += snprintf(buf + (off < len ? off : len), off < len ? len - off : 0, ", \"node\": ");
	off = put_str(buf, len, off, e->node);
	off += snprintf(buf + (off < len ? off : len), off < len ? len - off : 0, ", \"detail\": ");
	off = put_str(buf, len, off, e->detail);
	off += snprintf(buf + (off < len ? off : len), off < len ? len - off : 0,
			", \"count\": %" PRIu64 ", \"priority\": \"%s\"}", e->count,
			uc_prio_name(uc_event_prio(e)));
	return off < len ? (int)off : -ENOSPC;
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

/* Parse a JSON string at p (at the quote) into out (if not NULL); returns the end or NULL. */
static const char *get_string(const char *p, char *out, size_t len)
{
	size_t n = 0;

	if (*p++ != '"')
		return NULL;
	for (; *p && *p != '"'; p++) {
		char c = *p;

		if (c == '\\') {
			p++;
			switch (*p) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u': {
				unsigned int v = 0;

				for (int i = 1; i <= 4; i++) {
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
					v = v * 16 + (isdigit((unsigned char)p[i]) ? p[i] - '0' :
						      (tolower((unsigned char)p[i]) - 'a' + 10));
				}
				p += 4;
				c = v < 0x80 ? (char)v : '?';	/* our encoder writes ASCII escapes only */
				break;
			}
			case 0: return NULL;
			default: c = *p; break;	/* \" \\ \/ */
			}
		}
		if (out && n + 1 < len)
			out[n++] = c;
	}
	if (*p != '"')
		return NULL;
	if (out && len)
		out[n] = 0;
	return p + 1;
}

/* Skip the JSON value at p: returns where it ends (at ',', '}' or ']'), or NULL. */
static const char *skip_value(const char *p)
{
	int depth = 0;

	for (;;) {
		if (!*p)
			return NULL;
		if (*p == '"') {
			if (!(p = get_string(p, NULL, 0)))
				return NULL;
			continue;
		}
		if (!depth && (*p == ',' || *p == '}' || *p == ']'))
			return p;
		if (*p == '{' || *p == '[')
			depth++;
		else if (*p == '}' || *p == ']')
			depth--;
		p++;
	}
}

/* The value of top-level member key in object line; NULL if absent. */
static const char *find_member(const char *line, const char *key)
{
	const char *p = skip_ws(line);
	char name[64];

	if (*p++ != '{')
		return NULL;
	for (;;) {
		p = skip_ws(p);
		if (*p != '"')
			return NULL;
		p = get_string(p, name, sizeof(name));
		if (!p)
			return NULL;
		p = skip_ws(p);
		if (*p++ != ':')
			return NULL;
		p = skip_ws(p);
		if (!strcmp(name, key))
			return p;
		p = skip_value(p);
		if (!p)
			return NULL;
		p = skip_ws(p);
		if (*p++ != ',')
			return NULL;
	}
}

int uc_json_get_str(const char *line, const char *key, char *buf, size_t len)
{
	const char *p = find_member(line, key);

	if (p && *p == '"' && get_string(p, buf, len))
		return 0;
	if (len)
		buf[0] = 0;	/* not a half-parsed string */
	return -ENOENT;
}

int uc_json_get_int(const char *line, const char *key, long long *v)
{
	const char *p = find_member(line, key);
	char *end;

	if (!p || !(*p == '-' || isdigit((unsigned char)*p)))
		return -ENOENT;
	errno = 0;
	*v = strtoll(p, &end, 10);
	return errno || end == p ? -ENOENT : 0;
}

int uc_event_decode(const char *line, struct uc_event_rec *e)
{
	char type[32];
	long long v;
	int t;

	memset(e, 0, sizeof(*e));
	e->id = -1;
	if (uc_json_get_str(line, "event", type, sizeof(type)) || (t = uc_event_type_of(type)) < 0)
		return -EINVAL;
	e->type = t;
	if (!uc_json_get_int(line, "seq", &v) && v >= 0)
		e->seq = v;
	if (!uc_json_get_int(line, "time", &v))
		e->time = v;
	if (!uc_json_get_int(line, "id", &v) && v >= -1 && v <= 1 << 20)
		e->id = v;
	if (!uc_json_get_int(line, "count", &v) && v >= 0)
		e->count = v;
	uc_json_get_str(line, "name", e->name, sizeof(e->name));
	uc_json_get_str(line, "node", e->node, sizeof(e->node));
	uc_json_get_str(line, "detail", e->detail, sizeof(e->detail));
	return 0;
}

/* ---- the ring ---- */

#define RING_SIZE	64	/* a monitor that connects late replays at most this many */

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static struct uc_event_rec ring[RING_SIZE];
static uint64_t ring_seq;	/* the newest seq */
static void (*ring_wake)(void);

void uc_events_set_wake(void (*wake)(void))
{
	pthread_mutex_lock(&ring_lock);
	ring_wake = wake;
	pthread_mutex_unlock(&ring_lock);
}

static void record(const struct uc_node *n, enum uc_event_type t, uint64_t count, const char *fmt,
		   va_list ap)
{
	struct uc_event_rec *e;
	void (*wake)(void);

	pthread_mutex_lock(&ring_lock);
	ring_seq++;
	e = &ring[ring_seq % RING_SIZE];
	memset(e, 0, sizeof(*e));
	e->seq = ring_seq;
	e->time = time(NULL);
	e->type = t;
	e->id = -1;
	e->count = count;
	if (n)
		snprintf(e->node, sizeof(e->node), "%s", n->name);
	vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
	wake = ring_wake;
	pthread_mutex_unlock(&ring_lock);
	if (wake)
		wake();
}

void uc_event(const struct uc_node *n, enum uc_event_type t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	record(n, t, 0, fmt, ap);
	va_end(ap);
}

void uc_event_count(const struct uc_node *n, enum uc_event_type t, uint64_t count,
		    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	record(n, t, count, fmt, ap);
	va_end(ap);
}

unsigned int uc_events_since(uint64_t after, struct uc_event_rec *out, unsigned int max,
			     uint64_t *last)
{
	unsigned int nr = 0;
	uint64_t first;

	pthread_mutex_lock(&ring_lock);
	first = ring_seq > RING_SIZE ? ring_seq - RING_SIZE + 1 : 1;
	if (after + 1 > first)
		first = after + 1;
	for (uint64_t s = first; s <= ring_seq && nr < max; s++)
		out[nr++] = ring[s % RING_SIZE];
	*last = ring_seq;
	pthread_mutex_unlock(&ring_lock);
	return nr;
}

/* ---- space ---- */

#define SPACE_NODES	16

static _Atomic unsigned int space_warn = 90;
static struct {
	const struct uc_node *node;
	atomic_bool low;
} space[SPACE_NODES];
static pthread_mutex_t space_lock = PTHREAD_MUTEX_INITIALIZER;

void uc_event_set_space_warn(unsigned int pct)
{
	atomic_store(&space_warn, pct);
}

int uc_event_parse_conf(const config_setting_t *d, unsigned int *pct)
{
	long long v;
	int ret;

	*pct = 90;
	if (!d)
		return 0;
	ret = uc_conf_int(d, "space_warn", &v);
	if (ret < 0)
		return ret;
	if (ret && (v < 1 || v > 100))
		return uc_conf_err(config_setting_get_member(d, "space_warn"),
				   "space_warn must be a percentage from 1 to 100");
	if (ret)
		*pct = v;
	return 0;
}

void uc_event_space(const struct uc_node *n, uint64_t used, uint64_t total)
{
	unsigned int warn = atomic_load(&space_warn), pct, i;

	if (!total || warn >= 100)
		return;
	pct = used * 100 / total;
	for (i = 0; i < SPACE_NODES && space[i].node != n; i++)
		;
	if (i == SPACE_NODES) {
		if (pct < warn)
			return;	/* the common case: nothing to remember */
		pthread_mutex_lock(&space_lock);
		for (i = 0; i < SPACE_NODES && space[i].node && space[i].node != n; i++)
			;
		if (i < SPACE_NODES)
			space[i].node = n;
		pthread_mutex_unlock(&space_lock);
		if (i == SPACE_NODES)
			return;
	}
	if (pct >= warn && !atomic_exchange(&space[i].low, true)) {
		char u[32], t[32];

		uc_event(n, UC_EV_SPACE_LOW, "%u%% of the child's space in use (%s of %s; space_warn %u%%)",
			 pct, uc_size_str(used, u, sizeof(u)), uc_size_str(total, t, sizeof(t)), warn);
	} else if (pct + 5 < warn) {
		atomic_store(&space[i].low, false);
	}
}
