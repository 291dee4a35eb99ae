/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include "log.h"

int uc_verbose;

void uc_log(int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (level > uc_verbose)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* one write per line so lines from queue threads don't interleave */
	fprintf(stderr, "ublk-compose: %s\n", line);
}
