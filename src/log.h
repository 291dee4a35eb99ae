/* SPDX-License-Identifier: MIT */
/* Logging to stderr. uc_verbose is raised by -v. */
#ifndef UC_LOG_H
#define UC_LOG_H

extern int uc_verbose;

void uc_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define uc_err(...)	uc_log(0, __VA_ARGS__)
#define uc_warn(...)	uc_log(0, __VA_ARGS__)
#define uc_info(...)	uc_log(1, __VA_ARGS__)
#define uc_dbg(...)	uc_log(2, __VA_ARGS__)

#endif
