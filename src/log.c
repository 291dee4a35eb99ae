/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "log.h"

int uc_verbose;

static char log_path[PATH_MAX];
static pthread_once_t journal_once = PTHREAD_ONCE_INIT;
static bool journal;

/* systemd.exec(5): JOURNAL_STREAM is "DEV:INODE" of the stream it connected */
static void detect_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	journal = e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && !fstat(2, &st) &&
		  st.st_dev == dev && st.st_ino == ino;
}

bool uc_log_to_journal(void)
{
	pthread_once(&journal_once, detect_journal);
	return journal;
}

void uc_log(int prio, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (prio >= UC_LOG_INFO && prio - UC_LOG_NOTICE > uc_verbose)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* one write per line so lines from queue threads don't interleave */
	if (uc_log_to_journal())
		fprintf(stderr, "<%d>%s\n", prio, line);
	else
		fprintf(stderr, "ublk-compose: %s\n", line);
}

int uc_log_reopen(void)
{
	int fd;

	if (!log_path[0])
		return 0;
	fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	fflush(stdout);
	fflush(stderr);
	if (dup2(fd, 1) < 0 || dup2(fd, 2) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	close(fd);
	return 0;
}

int uc_log_open(const char *path)
{
	snprintf(log_path, sizeof(log_path), "%s", path);
	return uc_log_reopen();
}
