/* SPDX-License-Identifier: MIT */
/*
 * Run state under /run/ublk-compose (0700): ID.conf holds the absolute path of
 * the config device ID was started with, ID.pid its server, ID.env its name
 * (KEY=VALUE, for the udev rule too), NAME.lock is held by the server of
 * NAME. `recover ID` starts a new server from it; `upgrade ID` makes the
 * running server hand the device over (SIGUSR1) and starts this binary in
 * its place; a plain start of a config whose device is still there without
 * a server recovers it (uc_run_claim).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "dev.h"
#include "log.h"
#include "names.h"

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

int uc_run_save_name(unsigned int id, const char *name)
{
	char path[PATH_MAX], text[UC_NAME_MAX + 32];

	if (mkdir(UC_RUN_DIR, 0700) && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), UC_RUN_DIR "/%u.env", id);
	snprintf(text, sizeof(text), "UBLK_COMPOSE_NAME=%s\n", name);
	return write_file(path, text);
}

void uc_run_forget(unsigned int id)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), UC_RUN_DIR "/%u.env", id);
	unlink(path);
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


/* NAME.lock, held while this process serves NAME. Returns 0, -EBUSY or -errno. */
static int lock_name(const char *name)
{
	char path[PATH_MAX];
	int fd;

	if (mkdir(UC_RUN_DIR, 0700) && errno != EEXIST)
		return -errno;
	snprintf(path, sizeof(path), UC_RUN_DIR "/%s.lock", name);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int err = errno == EWOULDBLOCK ? -EBUSY : -errno;

		close(fd);
		return err;
	}
	return 0;	/* fd stays open: the lock goes with this process */
}

/* The pid in ID.pid, or -1. */
static int recorded_pid(unsigned int id)
{
	char path[64], text[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), UC_RUN_DIR "/%u.pid", id);
	f = fopen(path, "re");
	if (f && !fgets(text, sizeof(text), f))
		text[0] = 0;
	if (f)
		fclose(f);
	return text[0] ? atoi(text) : -1;
}

static void refuse_running(const char *name)
{
	unsigned int id;

	if (uc_name_find(name, &id))
		uc_err("%s is already being started or served by another ublk-compose", name);
	else
		uc_err("%s is already running: /dev/ublkb%u, server pid %d", name, id, recorded_pid(id));
}

/* The device's current layout (ID.live.conf after replace/add) instead of the config given. */
static int reload_recorded(struct uc_graph *g, unsigned int id)
{
	char conf[PATH_MAX], abs[PATH_MAX], name[UC_NAME_MAX + 1];

	if (uc_run_conf(id, conf, sizeof(conf)) || !realpath(g->conf_path, abs) || !strcmp(conf, abs))
		return 0;
	if (access(conf, R_OK))
		return 0;	/* gone: the config given is all there is */
	uc_notice("%s: using the layout the device runs with, %s", g->dev.name, conf);
	snprintf(name, sizeof(name), "%s", g->dev.name);
	uc_graph_free(g);
	if (uc_graph_load(g, conf))
		return -EINVAL;
	snprintf(g->dev.name, sizeof(g->dev.name), "%s", name);
	return 0;
}

/* stat of leaf n's backing file (its "path", relative to the config's directory) */
static int leaf_stat(const struct uc_graph *g, const struct uc_node *n, struct stat *st,
		     char *path)
{
	const char *p;

	if (!n->cfg || !config_setting_lookup_string(n->cfg, "path", &p))
		return -ENOENT;
	if (p[0] == '/')
		snprintf(path, PATH_MAX, "%s", p);
	else
		snprintf(path, PATH_MAX, "%s/%s", g->conf_dir, p);
	return stat(path, st) ? -errno : 0;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	if (S_ISBLK(a->st_mode) && S_ISBLK(b->st_mode))
		return a->st_rdev == b->st_rdev;
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/*
 * A backing file of g is one of device id (whose server died, so nothing
 * locks it): say so. Returns true if one is.
 */
static bool shares_legs(struct uc_graph *g, unsigned int id)
{
	char conf[PATH_MAX], name[UC_NAME_MAX + 1] = "?";
	struct uc_graph other;
	bool found = false;

	if (uc_run_conf(id, conf, sizeof(conf)) || uc_graph_load(&other, conf)) {
		uc_graph_free(&other);
		return false;
	}
	uc_name_of(id, name);
	for (unsigned int i = 0; i < g->nr_leaves && !found; i++) {
		char path[PATH_MAX], path2[PATH_MAX];
		struct stat a, b;

		if (leaf_stat(g, g->leaves[i], &a, path))
			continue;
		for (unsigned int k = 0; k < other.nr_leaves && !found; k++)
			if (!leaf_stat(&other, other.leaves[k], &b, path2) && same_file(&a, &b)) {
				uc_err("%s: a backing file of /dev/ublkb%u (%s), whose server died: "
				       "`ublk-compose recover %u` serves it again, `ublk-compose del %u` "
				       "removes it", path, id, name, id, id);
				found = true;
			}
	}
	uc_graph_free(&other);
	return found;
}

/* Devices left without a server that use a backing file of g (nothing locks those files). */
static int check_orphaned_legs(struct uc_graph *g, struct uc_ctrl *c)
{
	DIR *d = opendir(UC_RUN_DIR);
	struct dirent *e;
	int ret = 0;

	while (d && !ret && (e = readdir(d))) {
		struct ublksrv_ctrl_dev_info info;
		char tail[8], name[UC_NAME_MAX + 1];
		unsigned int id;

		if (sscanf(e->d_name, "%u.%7s", &id, tail) != 2 || strcmp(tail, "env") ||
		    uc_name_of(id, name) || !strcmp(name, g->dev.name) ||
		    uc_ctrl_get_info(c, id, &info) || uc_pid_running(info.ublksrv_pid) ||
		    info.state == UBLK_S_DEV_DEAD)
			continue;
		if (shares_legs(g, id))
			ret = -EBUSY;
	}
	if (d)
		closedir(d);
	return ret;
}

int uc_run_claim(struct uc_graph *g, struct uc_ctrl *c, int *recover_id)
{
	struct ublksrv_ctrl_dev_info info;
	char name[UC_NAME_MAX + 1];
	unsigned int id;
	int ret;

	/* a device keeps the name it was started with */
	if (*recover_id >= 0 && !uc_name_of(*recover_id, name))
		snprintf(g->dev.name, sizeof(g->dev.name), "%s", name);
	ret = lock_name(g->dev.name);
	if (ret == -EBUSY)
		refuse_running(g->dev.name);
	else if (ret)
		uc_err(UC_RUN_DIR "/%s.lock: %s", g->dev.name, strerror(-ret));
	if (ret || *recover_id >= 0)
		return ret;
	if (uc_name_find(g->dev.name, &id))
		return check_orphaned_legs(g, c);
	ret = uc_ctrl_get_info(c, id, &info);
	if (ret) {
		uc_run_forget(id);	/* stale: the device is gone */
		return check_orphaned_legs(g, c);
	}
	if (uc_pid_running(info.ublksrv_pid) && info.ublksrv_pid != getpid()) {
		uc_err("%s is already running: /dev/ublkb%u, server pid %d", g->dev.name, id,
		       info.ublksrv_pid);
		return -EBUSY;
	}
	if (info.state == UBLK_S_DEV_DEAD) {
		/* stopped, not deleted: it has no disk and holds nothing */
		uc_notice("%s: deleting device %u, stopped by a server that died", g->dev.name, id);
		ret = uc_ctrl_remove(c, id, 30000);
		if (ret)
			uc_err("%s: device %u: delete failed: %s", g->dev.name, id, strerror(-ret));
		uc_run_forget(id);
		return ret ? ret : check_orphaned_legs(g, c);
	}
	/* the kernel forgets the pid of a server that died (-1): the run state has it */
	uc_notice("%s: /dev/ublkb%u exists and its server (pid %d) is gone: recovering it",
		  g->dev.name, id, info.ublksrv_pid > 0 ? info.ublksrv_pid : recorded_pid(id));
	*recover_id = id;
	return reload_recorded(g, id);
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
		snprintf(log, sizeof(log), UC_RUN_DIR "/%u.log", id);
		if (detach) {
			int fd;

			setsid();
			/* the server opens its log itself (--log): SIGHUP reopens it */
			fd = open("/dev/null", O_RDWR);
			if (fd >= 0) {
				dup2(fd, 0);
				dup2(fd, 1);
				dup2(fd, 2);
			}
		}
		fcntl(p[1], F_SETFD, 0);
		snprintf(fdbuf, sizeof(fdbuf), "%d", p[1]);
		/* not a service of whoever started us */
		unsetenv("NOTIFY_SOCKET");
		/* a detached server's log is all there is to read: info lines too */
		if (detach)
			execl("/proc/self/exe", "ublk-compose", "-c", conf, "--recover", idbuf,
			      "--ready-fd", fdbuf, "--log", log, uc_verbose > 1 ? "-vv" : "-v",
			      (char *)NULL);
		else
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
	int ret;

	if (argc < 1) {
		fprintf(stderr, "usage: ublk-compose recover NAME|ID\n");
		return 2;
	}
	if ((ret = uc_name_resolve(argv[0], &id, false)))
		return ret == -ENOENT ? 1 : 2;
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

	if (argc < 1) {
		fprintf(stderr, "usage: ublk-compose upgrade NAME|ID\n");
		return 2;
	}
	if ((ret = uc_name_resolve(argv[0], &id, false)))
		return ret == -ENOENT ? 1 : 2;
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
