/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "disk.h"
#include "log.h"

const char *const uc_schedulers[] = { "none", "mq-deadline", "bfq", "kyber", "kernel", NULL };

static void sched_path(char *path, size_t len, const char *sys_block, unsigned int id)
{
	snprintf(path, len, "%s/ublkb%u/queue/scheduler", sys_block, id);
}

int uc_disk_set_scheduler(const char *sys_block, unsigned int id, const char *name)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd, ret = 0;

	sched_path(path, sizeof(path), sys_block, id);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return -errno;
	/* the kernel switches elevators inside this write (the queue is frozen meanwhile) */
	n = write(fd, name, strlen(name));
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != strlen(name))
		ret = -EIO;
	close(fd);
	return ret;
}

int uc_disk_scheduler(const char *sys_block, unsigned int id, char *buf, size_t len)
{
	char path[PATH_MAX], line[256], *open_b, *close_b, *word = line;
	ssize_t n;
	int fd;

	sched_path(path, sizeof(path), sys_block, id);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	if (n < 0)
		return -errno;
	line[n] = '\0';
	/* "none [mq-deadline] kyber": the one in brackets; a queue without elevators says "none" */
	if ((open_b = strchr(line, '[')) && (close_b = strchr(open_b, ']'))) {
		word = open_b + 1;
		*close_b = '\0';
	} else {
		word[strcspn(word, " \n")] = '\0';
	}
	if (!*word)
		return -EINVAL;
	snprintf(buf, len, "%s", word);
	return 0;
}

void uc_disk_apply_scheduler(unsigned int id, const char *name)
{
	int ret;

	if (!strcmp(name, "kernel"))
		return;
	ret = uc_disk_set_scheduler(UC_SYS_BLOCK, id, name);
	if (ret)
		uc_warn("device.scheduler: cannot select \"%s\" for /dev/ublkb%u: %s (the kernel's "
			"choice stays)", name, id, strerror(-ret));
}
