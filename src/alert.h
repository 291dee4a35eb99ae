/* SPDX-License-Identifier: MIT */
/*
 * How `ublk-compose monitor` reports an event: a text or JSON line, syslog,
 * and the --program contract (mdadm's): PROG EVENT DEVICE NODE DETAIL, with
 * NODE "" for events about the whole device, UBLK_COMPOSE_NAME and
 * UBLK_COMPOSE_ID in the environment, stdin /dev/null.
 */
#ifndef UC_ALERT_H
#define UC_ALERT_H

#include <stdbool.h>
#include <stddef.h>
#include "events.h"

/*
 * The text line for e: "LegFailed /dev/ublkb0 (r10) m0.children[1]: write
 * failed" (journal: with a "<3>" prefix instead of the time). Returns buf.
 */
const char *uc_alert_text(const struct uc_event_rec *e, bool journal, char *buf, size_t len);
/*
 * Run prog for e (in a process group of its own) and wait up to timeout_ms,
 * then kill the group. Returns its exit
 * status (0-255), 128+signal, or -errno (could not run it; -ETIMEDOUT).
 */
int uc_alert_program(const char *prog, const struct uc_event_rec *e, int timeout_ms);

#endif
