/* SPDX-License-Identifier: MIT */
/*
 * Device lifecycle: ADD_DEV, SET_PARAMS, queue threads FETCH every tag,
 * START_DEV, serve until a signal, STOP_DEV while the queues still serve,
 * wake and join them, close the char device, DEL_DEV. Anything failing
 * before the device is live removes it again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "dev.h"
#include "log.h"

#define CTRL_TIMEOUT_MS	30000	/* a control command that takes longer is a hang */

static unsigned int ilog2(uint64_t v)
{
	return 63 - __builtin_clzll(v);
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static void fill_params(const struct uc_dev *dev, struct ublk_params *p)
{
	const struct uc_graph *g = dev->g;
	uint32_t bs = g->dev.block_size;
	uint32_t io_min = g->root->io_min > bs ? g->root->io_min : bs;
	uint32_t io_opt = g->root->io_opt;

	memset(p, 0, sizeof(*p));
	p->len = sizeof(*p);
	p->types = UBLK_PARAM_TYPE_BASIC;
	p->basic.attrs = UBLK_ATTR_VOLATILE_CACHE | UBLK_ATTR_FUA;
	p->basic.logical_bs_shift = ilog2(bs);
	p->basic.physical_bs_shift = ilog2(bs > 4096 ? bs : 4096);
	p->basic.io_min_shift = ilog2(is_pow2(io_min) ? io_min : bs);
	/* the kernel takes a shift: an io_opt like 3 x chunk falls back to io_min */
	p->basic.io_opt_shift = is_pow2(io_opt) ? ilog2(io_opt) : p->basic.io_min_shift;
	p->basic.max_sectors = dev->max_io >> 9;
	p->basic.dev_sectors = g->size >> 9;
	if (g->root->can_discard) {
		p->types |= UBLK_PARAM_TYPE_DISCARD;
		p->discard.discard_granularity = bs;
		p->discard.max_discard_sectors = UINT32_MAX >> 9;
		p->discard.max_write_zeroes_sectors = UINT32_MAX >> 9;
		p->discard.max_discard_segments = 1;
	}
}

static int add_dev(struct uc_dev *dev)
{
	const struct uc_graph *g = dev->g;
	uint64_t want = UBLK_F_CMD_IOCTL_ENCODE, features = 0;
	char b[512];
	int ret;

	ret = uc_ctrl_get_features(&dev->ctrl, &features);
	if (ret)
		uc_info("GET_FEATURES failed (%s): kernel older than 6.5", strerror(-ret));
	else
		uc_info("kernel ublk features 0x%" PRIx64 ": %s", features,
			uc_ctrl_flags_str(features, b, sizeof(b)));
	dev->info = (struct ublksrv_ctrl_dev_info){
		.nr_hw_queues = g->dev.queues,
		.queue_depth = g->dev.depth,
		.max_io_buf_bytes = g->dev.max_io,
		.dev_id = (uint32_t)g->dev.id,
		.ublksrv_pid = getpid(),
		.flags = want,
	};
	ret = uc_ctrl_cmd(&dev->ctrl, UBLK_U_CMD_ADD_DEV, dev->info.dev_id, &dev->info,
			  sizeof(dev->info), 0, CTRL_TIMEOUT_MS);
	if (ret) {
		if (ret == -EEXIST)
			uc_err("ADD_DEV: /dev/ublkb%d already exists", g->dev.id);
		else
			uc_err("ADD_DEV failed: %s (ublk_drv needs Linux >= 6.4)", strerror(-ret));
		return ret;
	}
	uc_info("added device %u, flags 0x%" PRIx64 ": %s", dev->info.dev_id,
		(uint64_t)dev->info.flags, uc_ctrl_flags_str(dev->info.flags, b, sizeof(b)));
	/* the kernel drops flags it does not know and adds some of its own */
	if ((dev->info.flags & want) != want) {
		uc_err("kernel refused flags 0x%" PRIx64 " (ioctl encoding needs Linux >= 6.4)",
		       (uint64_t)(want & ~dev->info.flags));
		return -EOPNOTSUPP;
	}
	if (dev->info.nr_hw_queues != g->dev.queues || dev->info.queue_depth != g->dev.depth) {
		uc_err("kernel changed queues/depth to %u/%u", dev->info.nr_hw_queues,
		       dev->info.queue_depth);
		return -EINVAL;
	}
	dev->max_io = dev->info.max_io_buf_bytes < g->dev.max_io ?
		dev->info.max_io_buf_bytes : g->dev.max_io;
	dev->max_io &= ~4095U;
	if (dev->max_io < 4096)
		return -EINVAL;
	return 0;
}

static int open_char_dev(struct uc_dev *dev)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/ublkc%u", dev->info.dev_id);
	/* the node may appear a moment after ADD_DEV returns */
	for (int i = 0; i < 500; i++) {
		dev->char_fd = open(path, O_RDWR | O_CLOEXEC);
		if (dev->char_fd >= 0)
			return 0;
		if (errno != ENOENT)
			break;
		usleep(10000);
	}
	uc_err("%s: %s", path, strerror(errno));
	return -errno;
}

static int start_queues(struct uc_dev *dev)
{
	unsigned int nr = dev->info.nr_hw_queues;

	dev->queues = calloc(nr, sizeof(*dev->queues));
	if (!dev->queues)
		return -ENOMEM;
	for (unsigned int i = 0; i < nr; i++) {
		struct uc_ublk_queue *uq = &dev->queues[i];

		uq->dev = dev;
		uq->id = i;
		uq->stop_efd = eventfd(0, EFD_CLOEXEC);
		if (uq->stop_efd < 0 || pthread_create(&uq->thread, NULL, uc_ublk_queue_thread, uq))
			return -errno ? -errno : -EAGAIN;
		uq->thread_started = true;
	}
	pthread_mutex_lock(&dev->lock);
	while (dev->nr_setup < nr)
		pthread_cond_wait(&dev->cond, &dev->lock);
	pthread_mutex_unlock(&dev->lock);
	return dev->setup_err;
}

static void stop_queues(struct uc_dev *dev)
{
	if (!dev->queues)
		return;
	for (unsigned int i = 0; i < dev->info.nr_hw_queues; i++) {
		struct uc_ublk_queue *uq = &dev->queues[i];
		uint64_t one = 1;

		if (uq->thread_started) {
			if (write(uq->stop_efd, &one, sizeof(one)) != sizeof(one))
				uc_err("queue %u: cannot wake: %s", i, strerror(errno));
			pthread_join(uq->thread, NULL);
		}
		if (uq->stop_efd > 0)
			close(uq->stop_efd);
	}
	free(dev->queues);
	dev->queues = NULL;
}

/* Wait for SIGINT/SIGTERM, or a queue thread failing. */
static void wait_for_stop(struct uc_dev *dev, const sigset_t *sigs)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 200 * 1000000L };

	while (!atomic_load(&dev->failed)) {
		int sig = sigtimedwait(sigs, NULL, &ts);

		if (sig == SIGINT || sig == SIGTERM) {
			uc_info("signal %d: stopping", sig);
			return;
		}
	}
	uc_err("a queue failed: stopping");
}

static bool wait_for_path(const char *path, int ms)
{
	struct stat st;

	for (; ms > 0; ms -= 10) {
		if (!stat(path, &st))
			return true;
		usleep(10000);
	}
	return false;
}

int uc_dev_serve(struct uc_graph *g)
{
	struct uc_dev dev = { .g = g, .char_fd = -1, .ctrl.fd = -1,
			      .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct ublk_params params;
	bool added = false, live = false;
	char path[64];
	sigset_t sigs;
	int ret;

	/* queue threads inherit this mask: only sigtimedwait() here takes the signals */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	ret = uc_ctrl_open(&dev.ctrl);
	if (ret) {
		uc_err("/dev/ublk-control: %s%s", strerror(-ret),
		       ret == -ENOENT ? " (modprobe ublk_drv; Linux >= 6.4)" : "");
		goto out;
	}
	/* backing files first: a config that fails here leaves no device behind */
	ret = uc_graph_open(g);
	if (ret)
		goto out;
	ret = add_dev(&dev);
	if (ret)
		goto out;
	added = true;
	fill_params(&dev, &params);
	ret = uc_ctrl_cmd(&dev.ctrl, UBLK_U_CMD_SET_PARAMS, dev.info.dev_id, &params, sizeof(params),
			  0, CTRL_TIMEOUT_MS);
	if (ret) {
		uc_err("SET_PARAMS failed: %s", strerror(-ret));
		goto out;
	}
	ret = open_char_dev(&dev);
	if (ret)
		goto out;
	ret = start_queues(&dev);
	if (ret)
		goto out;
	/* completes only once every tag of every queue has its FETCH queued */
	ret = uc_ctrl_cmd(&dev.ctrl, UBLK_U_CMD_START_DEV, dev.info.dev_id, NULL, 0, getpid(),
			  CTRL_TIMEOUT_MS);
	if (ret) {
		uc_err("START_DEV failed: %s", strerror(-ret));
		goto out;
	}
	live = true;
	snprintf(path, sizeof(path), "/dev/ublkb%u", dev.info.dev_id);
	if (!wait_for_path(path, 5000))
		uc_warn("%s did not appear", path);
	printf("%s\n", path);
	fflush(stdout);
	wait_for_stop(&dev, &sigs);
out:
	/* STOP_DEV while the queues still serve: it waits for in-flight requests */
	if (live) {
		int r = uc_ctrl_cmd(&dev.ctrl, UBLK_U_CMD_STOP_DEV, dev.info.dev_id, NULL, 0, 0,
				    CTRL_TIMEOUT_MS);

		if (r)
			uc_err("STOP_DEV failed: %s", strerror(-r));
	}
	stop_queues(&dev);
	/* DEL_DEV waits for every fd and mapping of the char device to go */
	if (dev.char_fd >= 0)
		close(dev.char_fd);
	if (added) {
		int r = uc_ctrl_cmd(&dev.ctrl, UBLK_U_CMD_DEL_DEV, dev.info.dev_id, NULL, 0, 0,
				    CTRL_TIMEOUT_MS);

		if (r) {
			uc_err("DEL_DEV failed: %s", strerror(-r));
			ret = ret ? ret : r;
		}
	}
	uc_ctrl_close(&dev.ctrl);
	if (!ret && atomic_load(&dev.failed))
		ret = -EIO;
	return ret ? 1 : 0;
}

static const char *state_str(unsigned int state)
{
	switch (state) {
	case UBLK_S_DEV_DEAD: return "dead";
	case UBLK_S_DEV_LIVE: return "live";
	case UBLK_S_DEV_QUIESCED: return "quiesced";
	case UBLK_S_DEV_FAIL_IO: return "fail-io";
	}
	return "?";
}

static bool pid_alive(int pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* Ids of /dev/ublkcN, ascending. Returns the count (at most max). */
static int list_ids(unsigned int *ids, int max)
{
	DIR *d = opendir("/dev");
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < max) {
		unsigned int id;
		char rest;

		if (sscanf(e->d_name, "ublkc%u%c", &id, &rest) == 1)
			ids[n++] = id;
	}
	closedir(d);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
			unsigned int t = ids[j];

			ids[j] = ids[j - 1];
			ids[j - 1] = t;
		}
	return n;
}

int uc_dev_list(void)
{
	struct uc_ctrl c = { .fd = -1 };
	unsigned int ids[1024];
	int n, ret = uc_ctrl_open(&c);

	if (ret) {
		fprintf(stderr, "ublk-compose: /dev/ublk-control: %s\n", strerror(-ret));
		return 1;
	}
	n = list_ids(ids, 1024);
	printf("%-5s %-9s %10s %8s %s\n", "ID", "STATE", "SIZE", "PID", "DAEMON");
	for (int i = 0; i < n; i++) {
		struct ublksrv_ctrl_dev_info info;
		struct ublk_params p;
		char size[32] = "-";

		if (uc_ctrl_get_info(&c, ids[i], &info))
			continue;
		if (!uc_ctrl_get_params(&c, ids[i], &p) && (p.types & UBLK_PARAM_TYPE_BASIC))
			uc_size_str(p.basic.dev_sectors << 9, size, sizeof(size));
		printf("%-5u %-9s %10s %8d %s\n", ids[i], state_str(info.state), size,
		       info.ublksrv_pid, pid_alive(info.ublksrv_pid) ? "running" : "gone");
	}
	uc_ctrl_close(&c);
	return 0;
}

static int del_one(struct uc_ctrl *c, unsigned int id)
{
	struct ublksrv_ctrl_dev_info info;
	int ret = uc_ctrl_get_info(c, id, &info);

	if (ret) {
		fprintf(stderr, "ublk-compose: device %u: %s\n", id, strerror(-ret));
		return 1;
	}
	if (pid_alive(info.ublksrv_pid) && info.ublksrv_pid != getpid()) {
		fprintf(stderr, "ublk-compose: device %u is served by pid %d: stop it with SIGTERM\n",
			id, info.ublksrv_pid);
		return 1;
	}
	ret = uc_ctrl_remove(c, id, 10000);
	if (ret) {
		fprintf(stderr, "ublk-compose: device %u: delete failed: %s\n", id, strerror(-ret));
		return 1;
	}
	printf("deleted /dev/ublkb%u\n", id);
	return 0;
}

int uc_dev_del(int argc, char **argv)
{
	struct uc_ctrl c = { .fd = -1 };
	int ret = 0, err;

	if (argc < 1) {
		fprintf(stderr, "usage: ublk-compose del ID|--all\n");
		return 2;
	}
	err = uc_ctrl_open(&c);
	if (err) {
		fprintf(stderr, "ublk-compose: /dev/ublk-control: %s\n", strerror(-err));
		return 1;
	}
	if (!strcmp(argv[0], "--all")) {
		unsigned int ids[1024];
		int n = list_ids(ids, 1024);

		for (int i = 0; i < n; i++) {
			struct ublksrv_ctrl_dev_info info;

			/* --all leaves devices with a live daemon alone */
			if (!uc_ctrl_get_info(&c, ids[i], &info) && pid_alive(info.ublksrv_pid))
				continue;
			ret |= del_one(&c, ids[i]);
		}
	} else {
		for (int i = 0; i < argc; i++) {
			char *end;
			unsigned long id = strtoul(argv[i], &end, 10);

			if (!strncmp(argv[i], "/dev/ublkb", 10))
				id = strtoul(argv[i] + 10, &end, 10);
			if (*end) {
				fprintf(stderr, "ublk-compose: bad device id '%s'\n", argv[i]);
				ret = 2;
				continue;
			}
			ret |= del_one(&c, id);
		}
	}
	uc_ctrl_close(&c);
	return ret;
}
