/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "alert.h"

const char *uc_alert_text(const struct uc_event_rec *e, bool journal, char *buf, size_t len)
{
	char when[32] = "", dev[32] = "-";
	time_t t = e->time;
	struct tm tm;
	int off;

	if (e->id >= 0)
		snprintf(dev, sizeof(dev), "/dev/ublkb%d", e->id);
	if (journal)
		off = snprintf(buf, len, "<%d>", uc_event_prio(e));
	else
		off = snprintf(buf, len, "%s ", localtime_r(&t, &tm) &&
			       strftime(when, sizeof(when), "%F %T", &tm) ? when : "-");
	if (off < 0 || (size_t)off >= len)
		return buf;
	snprintf(buf + off, len - off, "%s %s (%s)%s%s%s%s", uc_event_name(e->type), dev,
		 e->name[0] ? e->name : "?", e->node[0] ? " " : "", e->node,
		 e->detail[0] ? ": " : "", e->detail);
	return buf;
}

static int wait_child(pid_t pid, int timeout_ms)
{
	int pfd = syscall(SYS_pidfd_open, pid, 0), status;

	if (pfd >= 0) {
		struct pollfd p = { pfd, POLLIN, 0 };

		if (poll(&p, 1, timeout_ms) == 0) {
			/* its group: a shell script's children (sleep, mail) go too */
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			close(pfd);
			return -ETIMEDOUT;
		}
		close(pfd);
	}
	/* without pidfd (Linux < 5.3) the wait is not bounded */
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int uc_alert_program(const char *prog, const struct uc_event_rec *e, int timeout_ms)
{
	char dev[32] = "", id[16] = "";
	pid_t pid;

	if (e->id >= 0) {
		snprintf(dev, sizeof(dev), "/dev/ublkb%d", e->id);
		snprintf(id, sizeof(id), "%d", e->id);
	}
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		int fd = open("/dev/null", O_RDONLY);

		/* a process group of its own, which a timeout kills as a whole */
		setpgid(0, 0);
		if (fd >= 0 && fd != 0) {
			dup2(fd, 0);
			close(fd);
		}
		setenv("UBLK_COMPOSE_NAME", e->name, 1);
		setenv("UBLK_COMPOSE_ID", id, 1);
		/* the program is not part of our service's readiness protocol */
		unsetenv("NOTIFY_SOCKET");
		execlp(prog, prog, uc_event_name(e->type), dev, e->node, e->detail, (char *)NULL);
		fprintf(stderr, "ublk-compose: %s: %s\n", prog, strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);	/* as the child does: whichever runs first */
	return wait_child(pid, timeout_ms);
}
