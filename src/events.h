/* SPDX-License-Identifier: MIT */
/*
 * Events: what happened to a device, for `ublk-compose monitor`. Layers and
 * the core report them with uc_event() from any thread (it never blocks on
 * I/O); the server keeps the recent ones in a ring and pushes them to the
 * monitors subscribed on its admin socket (src/event_feed.c). On the wire
 * an event is one JSON object per line (uc_event_encode/decode).
 */
#ifndef UC_EVENTS_H
#define UC_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libconfig.h>
#include "names.h"

struct uc_node;

enum uc_event_type {
	UC_EV_DEVICE_STARTED,	/* a new device is live */
	UC_EV_DEVICE_STOPPED,	/* stopped and deleted */
	UC_EV_SERVER_DIED,	/* the device is left without a server (the monitor sees it) */
	UC_EV_RECOVERED,	/* a new server took a device over */
	UC_EV_LEG_FAILED,	/* a mirror leg was marked faulty */
	UC_EV_DEGRADED,		/* the volume lost redundancy (health became degraded) */
	UC_EV_REBUILD_STARTED,	/* a resync or rebuild began */
	UC_EV_REBUILD_FINISHED,
	UC_EV_SCRUB_FINISHED,	/* count: bytes that differed */
	UC_EV_CHECKSUM_ERROR,	/* count: checksum errors so far */
	UC_EV_SPACE_LOW,	/* a compress child is fuller than device.space_warn */
	UC_EV_FAILED,		/* the volume fails I/O (health became failed) */
	UC_EV_CONNECTION_LOST,	/* a network leaf (nbd) lost its server; it reconnects */
	UC_EV_RECONNECTED,	/* ... and has every connection back */
	UC_EV_TEST_MESSAGE,	/* `monitor --test` */
	UC_EV_NR
};

struct uc_event_rec {
	uint64_t seq;		/* per server, from 1 */
	int64_t time;		/* seconds since the epoch */
	enum uc_event_type type;
	int id;			/* device id, -1: unknown */
	char name[UC_NAME_MAX + 1];	/* device name */
	char node[64];		/* the node it concerns, "" for the whole device */
	char detail[256];
	uint64_t count;
};

/* "LegFailed" etc. */
const char *uc_event_name(enum uc_event_type t);
/* The type named s. Returns it, or -1. */
int uc_event_type_of(const char *s);
/* syslog priority: LOG_CRIT for Failed down to LOG_NOTICE for routine events */
int uc_event_prio(const struct uc_event_rec *e);
/* "crit", "err", "warning", "notice" */
const char *uc_prio_name(int prio);

/*
 * One JSON object (no newline) into buf: {"event": "LegFailed", "seq": 3,
 * ...}. Returns the length, or -ENOSPC if it does not fit.
 */
int uc_event_encode(const struct uc_event_rec *e, char *buf, size_t len);
/*
 * Parse a line made by uc_event_encode. Unknown members are skipped.
 * Returns 0, or -EINVAL (not an event line).
 */
int uc_event_decode(const char *line, struct uc_event_rec *e);
/*
 * The string or integer member key of the flat JSON object in line, into
 * buf / *v. Returns 0 or -ENOENT.
 */
int uc_json_get_str(const char *line, const char *key, char *buf, size_t len);
int uc_json_get_int(const char *line, const char *key, long long *v);

/* ---- reporting (layers and core, any thread) ---- */

/* Record an event about node n (NULL: the device); detail is printf-formatted. */
void uc_event(const struct uc_node *n, enum uc_event_type t, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same with a count (ScrubFinished: bytes that differ; ChecksumError: errors). */
void uc_event_count(const struct uc_node *n, enum uc_event_type t, uint64_t count,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/*
 * A compress child holds used of total bytes: SpaceLow once it is above
 * device.space_warn percent, again only after it went 5 points below.
 */
void uc_event_space(const struct uc_node *n, uint64_t used, uint64_t total);
/* device.space_warn (percent, 1-100; 100: never). Set at start and on SIGHUP. */
void uc_event_set_space_warn(unsigned int pct);
/* Parse device.space_warn from d (may be NULL) into *pct (default 90). Returns 0 or -EINVAL. */
int uc_event_parse_conf(const config_setting_t *d, unsigned int *pct);

/*
 * The ring: events with seq > after, oldest first, up to max into out.
 * Returns the count; *last gets the newest seq recorded.
 */
unsigned int uc_events_since(uint64_t after, struct uc_event_rec *out, unsigned int max,
			     uint64_t *last);
/* Called with every new event's seq (the feed wakes its thread); NULL: none. */
void uc_events_set_wake(void (*wake)(void));

#endif
