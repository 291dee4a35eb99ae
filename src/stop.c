/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "admin.h"
#include "dev.h"
#include "log.h"
#include "names.h"
#include "stop.h"

#define CTRL_TIMEOUT_MS	30000
/* udev's blkid probe and the like open the disk for a moment: not a user */
#define BUSY_RETRY_MS	3000

/* What holds /dev/ublkbID: a holder (dm, md), a mount, or just "open". */
static void who_uses(unsigned int id, char *why, size_t len)
{
	char path[PATH_MAX], devno[32] = "", line[PATH_MAX + 256];
	struct dirent *e;
	FILE *f;
	DIR *d;

	snprintf(why, len, "open");
	snprintf(path, sizeof(path), "/sys/block/ublkb%u/holders", id);
	if ((d = opendir(path))) {
		while ((e = readdir(d)))
			if (e->d_name[0] != '.') {
				snprintf(why, len, "held by %.64s", e->d_name);
				break;
			}
		closedir(d);
		if (strcmp(why, "open"))
			return;
	}
	snprintf(path, sizeof(path), "/sys/block/ublkb%u/dev", id);
	if ((f = fopen(path, "re"))) {
		if (!fgets(devno, sizeof(devno), f))
			devno[0] = 0;
		devno[strcspn(devno, "\n")] = 0;
		fclose(f);
	}
	if (!devno[0] || !(f = fopen("/proc/self/mountinfo", "re")))
		return;
	while (fgets(line, sizeof(line), f)) {
		char dev[32], mnt[PATH_MAX];

		/* "36 35 98:0 / /mnt rw,... - ext4 /dev/x rw" */
		if (sscanf(line, "%*d %*d %31s %*s %4095s", dev, mnt) == 2 && !strcmp(dev, devno)) {
			snprintf(why, len, "mounted on %s", mnt);
			break;
		}
	}
	fclose(f);
}

/* The exclusive open check: STOP_DEV while we hold the disk exclusively. */
static int stop_if_not_exclusive(struct uc_ctrl *c, unsigned int id)
{
	char path[64];
	int fd, ret;

	snprintf(path, sizeof(path), "/dev/ublkb%u", id);
	fd = open(path, O_RDONLY | O_EXCL | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == EBUSY)
		return -EBUSY;
	/* no node (no udev, already gone): nothing can hold it through the node either */
	ret = uc_ctrl_cmd(c, UBLK_U_CMD_STOP_DEV, id, NULL, 0, 0, CTRL_TIMEOUT_MS);
	if (fd >= 0)
		close(fd);
	return ret;
}

int uc_stop_device(struct uc_ctrl *c, unsigned int id, uint64_t flags, bool force, char *why,
		   size_t len)
{
	bool safe = flags & UBLK_F_SAFE_STOP_DEV;
	int ret = -EBUSY;

	if (force)
		return uc_ctrl_cmd(c, UBLK_U_CMD_STOP_DEV, id, NULL, 0, 0, CTRL_TIMEOUT_MS);
	for (int ms = 0; ret == -EBUSY && ms <= BUSY_RETRY_MS; ms += 100) {
		if (ms)
			usleep(100000);
		if (safe) {
			ret = uc_ctrl_cmd(c, UBLK_U_CMD_TRY_STOP_DEV, id, NULL, 0, 0, CTRL_TIMEOUT_MS);
			/* the flag without the command: take the older way */
			if (ret == -EOPNOTSUPP || ret == -EINVAL || ret == -ENOTTY) {
				uc_info("TRY_STOP_DEV: %s: using the exclusive open check", strerror(-ret));
				safe = false;
				ret = -EBUSY;
				ms -= 100;
			}
		} else {
			ret = stop_if_not_exclusive(c, id);
		}
	}
	if (ret == -EBUSY)
		who_uses(id, why, len);
	return ret;
}

/* ---- requests from the admin socket to the main thread ---- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t main;
	bool have_main, pending, force, answered;
	int result;
	char msg[512];
} req = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

void uc_stop_set_main(void)
{
	req.main = pthread_self();
	req.have_main = true;
}

int uc_stop_request(bool force, char *reply, size_t len)
{
	struct timespec until;
	int ret;

	pthread_mutex_lock(&req.lock);
	if (!req.have_main || req.pending) {
		pthread_mutex_unlock(&req.lock);
		snprintf(reply, len, "a stop is already in progress");
		return -EALREADY;
	}
	req.pending = true;
	req.force = force;
	req.answered = false;
	pthread_mutex_unlock(&req.lock);
	pthread_kill(req.main, SIGUSR2);
	/* STOP_DEV waits for requests in flight; the busy check retries a few seconds */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 120;
	pthread_mutex_lock(&req.lock);
	while (!req.answered && !pthread_cond_timedwait(&req.cond, &req.lock, &until))
		;
	if (req.answered) {
		ret = req.result;
		snprintf(reply, len, "%s", req.msg);
	} else {
		ret = -ETIMEDOUT;
		snprintf(reply, len, "the server did not answer the stop request within 120 s");
	}
	req.pending = false;
	pthread_mutex_unlock(&req.lock);
	return ret;
}

bool uc_stop_pending(bool *force)
{
	bool p;

	pthread_mutex_lock(&req.lock);
	p = req.pending && !req.answered;
	*force = req.force;
	pthread_mutex_unlock(&req.lock);
	return p;
}

void uc_stop_answer(int result, const char *msg)
{
	pthread_mutex_lock(&req.lock);
	if (req.pending && !req.answered) {
		req.result = result;
		snprintf(req.msg, sizeof(req.msg), "%s", msg);
		req.answered = true;
		pthread_cond_broadcast(&req.cond);
	}
	pthread_mutex_unlock(&req.lock);
}

/* ---- the CLI ---- */


static int stop_one(struct uc_ctrl *c, unsigned int id, bool force)
{
	struct ublksrv_ctrl_dev_info info;
	char node[32];
	int ret;

	ret = uc_ctrl_get_info(c, id, &info);
	if (ret) {
		fprintf(stderr, "ublk-compose: device %u: %s\n", id, strerror(-ret));
		return 1;
	}
	if (!uc_pid_running(info.ublksrv_pid)) {
		fprintf(stderr, "ublk-compose: device %u has no server (it died): `ublk-compose recover %u` "
			"serves it again, `ublk-compose del %u` removes it\n", id, id, id);
		return 1;
	}
	ret = uc_admin_call(id, force ? "stop --force" : "stop", false);
	if (ret)
		return ret;
	/* the server deletes the device and exits */
	snprintf(node, sizeof(node), "/dev/ublkc%u", id);
	for (int i = 0; i < 1200 && (!access(node, F_OK) || uc_pid_running(info.ublksrv_pid)); i++)
		usleep(100000);
	if (!access(node, F_OK)) {
		fprintf(stderr, "ublk-compose: device %u is still there 120 s after its server stopped\n", id);
		return 1;
	}
	return 0;
}

int uc_cmd_stop(int argc, char **argv)
{
	struct uc_ctrl c = { .fd = -1 };
	unsigned int ids[256];
	bool force = false;
	int rc = 0, nr = 0, ret;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--force") || !strcmp(argv[i], "-f")) {
			force = true;
		} else if (argv[i][0] == '-' || nr == 256) {
			nr = -1;
			break;
		} else if ((ret = uc_name_resolve(argv[i], &ids[nr++], false))) {
			/* an unknown device: nothing is stopped, not even the others */
			return ret == -ENOENT ? 1 : 2;
		}
	}
	if (nr <= 0) {
		fprintf(stderr, "usage: ublk-compose stop [--force] NAME|ID...\n");
		return 2;
	}
	ret = uc_ctrl_open(&c);
	if (ret) {
		fprintf(stderr, "ublk-compose: /dev/ublk-control: %s\n", strerror(-ret));
		return 1;
	}
	for (int i = 0; i < nr; i++)
		rc |= stop_one(&c, ids[i], force);
	uc_ctrl_close(&c);
	return rc;
}
