/* SPDX-License-Identifier: MIT */
/*
 * The server's event feed: monitors send "events [replay]" on the admin
 * socket and keep the connection; the server answers with one state line,
 * then (replay) the events it recorded since it started, then every new
 * event as it happens, one JSON line each (src/events.h). The feed also
 * turns health changes into Degraded and Failed events.
 *
 * State line: {"state": "degraded", "id": 0, "name": "r10", "pid": 123,
 *              "node": "m0", "detail": "<that node's status>", "seq": 7}
 * Last line of a server that hands the device over: {"bye": "handover"}.
 */
#ifndef UC_EVENT_FEED_H
#define UC_EVENT_FEED_H

#include "graph.h"

/* Start the feed thread for device id of graph g. Returns 0 or -errno. */
int uc_feed_start(struct uc_graph *g, unsigned int id, const char *name);
/*
 * Take over the admin connection fd (args: the rest of the request line).
 * Call with g->admin_lock held. Returns 0 (fd is the feed's now) or -errno.
 */
int uc_feed_subscribe(int fd, const char *args);
/*
 * Deliver what is recorded, then end every subscription (with the bye line
 * if handover) and stop the thread. Idempotent.
 */
void uc_feed_stop(bool handover);

#endif
