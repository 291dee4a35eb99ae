/* SPDX-License-Identifier: MIT */
/*
 * The sd_notify protocol without libsystemd: a service of Type=notify tells
 * systemd it is ready (READY=1) with a datagram to $NOTIFY_SOCKET.
 */
#ifndef UC_NOTIFY_H
#define UC_NOTIFY_H

#include <stdbool.h>

/* $NOTIFY_SOCKET is set: systemd (or another manager) waits for READY=1 */
bool uc_notify_wanted(void);
/*
 * Send state ("READY=1\nSTATUS=...") to $NOTIFY_SOCKET. Returns 0 (also when
 * the variable is unset: nobody listens) or -errno.
 */
int uc_notify(const char *state);
/* The same with printf formatting. */
int uc_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
