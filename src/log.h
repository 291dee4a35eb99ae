/* SPDX-License-Identifier: MIT */
/*
 * Logging to stderr, one line per message. Under systemd (stderr is the
 * journal stream named by $JOURNAL_STREAM) each line starts with an
 * sd-daemon priority prefix, "<3>" for an error, so `journalctl -p err`
 * finds them. uc_verbose is raised by -v: info needs -v, debug -vv.
 */
#ifndef UC_LOG_H
#define UC_LOG_H

#include <stdbool.h>

extern int uc_verbose;

/* syslog priorities (sd-daemon.h): what the prefix and the -v threshold use */
#define UC_LOG_ERR	3
#define UC_LOG_WARNING	4
#define UC_LOG_NOTICE	5
#define UC_LOG_INFO	6
#define UC_LOG_DEBUG	7

void uc_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define uc_err(...)	uc_log(UC_LOG_ERR, __VA_ARGS__)
#define uc_warn(...)	uc_log(UC_LOG_WARNING, __VA_ARGS__)
#define uc_notice(...)	uc_log(UC_LOG_NOTICE, __VA_ARGS__)
#define uc_info(...)	uc_log(UC_LOG_INFO, __VA_ARGS__)
#define uc_dbg(...)	uc_log(UC_LOG_DEBUG, __VA_ARGS__)

/* stderr is the journal ($JOURNAL_STREAM names it): lines carry "<N>" prefixes */
bool uc_log_to_journal(void);
/*
 * Send stdout and stderr to path (appended; --log). Returns 0 or -errno.
 * uc_log_reopen() opens it again (SIGHUP, after logrotate moved it).
 */
int uc_log_open(const char *path);
int uc_log_reopen(void);

#endif
