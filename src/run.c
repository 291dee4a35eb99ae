/* SPDX-License-Identifier: MIT */
/*
 * Run state under /run/ublk-compose (0700): ID.conf holds the absolute path of
 * the config device ID was started with, ID.pid its server. `recover ID`
 * starts a new server from it; `upgrade ID` makes the running server hand the
 * device over (SIGUSR1) and starts this binary in its place.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "dev.h"
#include "log.h"

static int write_file(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	int fd, len = strlen(text), ret = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != len)
		ret = -EIO;
	close(fd);
	if (!ret && rename(tmp, path))
		ret = -errno;
	return ret;
}

int uc_run_save(unsigned int id, const char *conf, int pid)
{
	char path[PATH_MAX], abs[PATH_MAX], text[64];
	int ret;

	if (mkdir(UC_RUN_DIR, 0700) && errno != EEXIST)
		return -errno;
	if (!realpath(conf, abs))
		return -errno;
	/* a layout saved by an earlier server of this id is stale unless we run it */
	snprintf(path, sizeof(path), UC_RUN_DIR "/%u.live.conf", id);
	if (strcmp(abs, path))
		unlink(path);
	snprintf(path, sizeof(path), UC_RUN_DIR "/%u.conf", id);
	ret = write_file(path, abs);
	snprintf(path, sizeof(path), UC_RUN_DIR "/%u.pid", id);
	snprintf(text, sizeof(text), "%d\n", pid);
	return ret ? ret : write_file(path, text);
}

int uc_run_save_live(unsigned int id, struct uc_graph *g, char *path, size_t len)
{
	char conf[PATH_MAX];
	int ret;

	snprintf(path, len, UC_RUN_DIR "/%u.live.conf", id);
	if ((ret = uc_graph_save(g, path)))
		return ret;
	snprintf(conf, sizeof(conf), UC_RUN_DIR "/%u.conf", id);
	return write_file(conf, path);
}

void uc_run_forget(unsigned int id)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), UC_RUN_DIR "/%u.live.conf", id);
	unlink(path);
	snprintf(path, sizeof(path), UC_RUN_DIR "/%u.conf", id);
	unlink(path);
	snprintf(path, sizeof(path), UC_RUN_DIR "/%u.pid", id);
	unlink(path);
}

int uc_run_conf(unsigned int id, char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), UC_RUN_DIR "/%u.conf", id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -EINVAL;
	buf[n] = 0;
	return 0;
}

static int parse_id(const char *s, unsigned int *id)
{
	char *end;

	if (!strncmp(s, "/dev/ublkb", 10))
		s += 10;
	*id = strtoul(s, &end, 10);
	return *s && !*end ? 0 : -EINVAL;
}

/* Run this binary as `-c conf --recover id` and wait (bounded) until it is live. */
static int spawn_server(const char *conf, unsigned int id, bool detach)
{
	char idbuf[16], line[64] = "", fdbuf[16], log[PATH_MAX];
	struct pollfd pfd;
	int p[2], status;
	ssize_t n = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		return -errno;
	snprintf(idbuf, sizeof(idbuf), "%u", id);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		close(p[0]);
		if (detach) {
			int fd;

			setsid();
			snprintf(log, sizeof(log), UC_RUN_DIR "/%u.log", id);
			fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
			fd = open("/dev/null", O_RDONLY);
			if (fd >= 0)
				dup2(fd, 0);
		}
		fcntl(p[1], F_SETFD, 0);
		snprintf(fdbuf, sizeof(fdbuf), "%d", p[1]);
		/* a detached server's log is all there is to read: info lines too */
		execl("/proc/self/exe", "ublk-compose", "-c", conf, "--recover", idbuf,
		      "--ready-fd", fdbuf, uc_verbose > 1 ? "-vv" : "-v", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
	/* recovery may wait up to 90 s for the old device to quiesce */
	if (poll(&pfd, 1, 150000) == 1)
		n = read(p[0], line, sizeof(line) - 1);
	close(p[0]);
	if (n <= 0) {
		uc_err("the new server did not come up (see %s/%u.log)", UC_RUN_DIR, id);
		if (waitpid(pid, &status, WNOHANG) == 0)
			kill(pid, SIGTERM);
		return -EIO;
	}
	fputs(line, stdout);
	return 0;
}

int uc_cmd_recover(int argc, char **argv)
{
	char conf[PATH_MAX];
	unsigned int id;

	if (argc < 1 || parse_id(argv[0], &id)) {
		fprintf(stderr, "usage: ublk-compose recover ID\n");
		return 2;
	}
	if (uc_run_conf(id, conf, sizeof(conf))) {
		fprintf(stderr, "ublk-compose: no record of device %u in " UC_RUN_DIR
			" (use -c FILE --recover %u)\n", id, id);
		return 1;
	}
	return spawn_server(conf, id, true) ? 1 : 0;
}

int uc_cmd_upgrade(int argc, char **argv)
{
	struct uc_ctrl c = { .fd = -1 };
	struct ublksrv_ctrl_dev_info info;
	char conf[PATH_MAX];
	unsigned int id;
	int ret;

	if (argc < 1 || parse_id(argv[0], &id)) {
		fprintf(stderr, "usage: ublk-compose upgrade ID\n");
		return 2;
	}
	if (uc_run_conf(id, conf, sizeof(conf))) {
		fprintf(stderr, "ublk-compose: no record of device %u in " UC_RUN_DIR "\n", id);
		return 1;
	}
	ret = uc_ctrl_open(&c);
	if (!ret)
		ret = uc_ctrl_get_info(&c, id, &info);
	uc_ctrl_close(&c);
	if (ret) {
		fprintf(stderr, "ublk-compose: device %u: %s\n", id, strerror(-ret));
		return 1;
	}
	if (!(info.flags & UBLK_F_USER_RECOVERY)) {
		fprintf(stderr, "ublk-compose: device %u was created with recovery = \"off\"\n", id);
		return 1;
	}
	if (!(info.flags & UBLK_F_QUIESCE)) {
		fprintf(stderr, "ublk-compose: live upgrade needs UBLK_F_QUIESCE (Linux >= 6.16); on this "
			"kernel stop the server (kill) and run `ublk-compose recover %u`: I/O pauses, "
			"nothing fails\n", id);
		return 1;
	}
	if (info.ublksrv_pid > 0 && !kill(info.ublksrv_pid, SIGUSR1)) {
		/* the old server leaves the device quiesced and exits */
		for (int i = 0; i < 600 && !kill(info.ublksrv_pid, 0); i++)
			usleep(50000);
		if (!kill(info.ublksrv_pid, 0)) {
			fprintf(stderr, "ublk-compose: server %d did not exit\n", info.ublksrv_pid);
			return 1;
		}
	}
	return spawn_server(conf, id, true) ? 1 : 0;
}
