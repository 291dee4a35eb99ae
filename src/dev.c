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
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "admin.h"
#include "dev.h"
#include "disk.h"
#include "event_feed.h"
#include "events.h"
#include "log.h"
#include "names.h"
#include "notify.h"
#include "reload.h"
#include "stop.h"

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

static void probe_features(struct uc_dev *dev)
{
	char b[512];
	int ret = uc_ctrl_get_features(&dev->ctrl, &dev->features);

	if (ret) {
		dev->features = 0;
		uc_info("GET_FEATURES failed (%s): kernel older than 6.5", strerror(-ret));
	} else {
		uc_info("kernel ublk features 0x%" PRIx64 ": %s", dev->features,
			uc_ctrl_flags_str(dev->features, b, sizeof(b)));
	}
}

/* The ADD_DEV flags for the configured recovery mode; 0 with *err set if unsupported. */
static uint64_t recovery_flags(const struct uc_dev *dev, int *err)
{
	static const uint64_t modes[] = {
		[UC_RECOVERY_REISSUE] = UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE,
		[UC_RECOVERY_REQUEUE] = UBLK_F_USER_RECOVERY,
		[UC_RECOVERY_FAIL] = UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_FAIL_IO,
		[UC_RECOVERY_OFF] = 0,
	};
	enum uc_recovery r = dev->g->dev.recovery;
	uint64_t f = modes[r];

	*err = 0;
	/* without GET_FEATURES (< 6.5) only the flags of 6.0 can be asked for */
	if ((dev->features && (dev->features & f) != f) ||
	    (!dev->features && (f & UBLK_F_USER_RECOVERY_FAIL_IO))) {
		uc_err("recovery = \"%s\" is not supported by this kernel%s", uc_recovery_names[r],
		       r == UC_RECOVERY_FAIL ? " (needs Linux >= 6.13)" : "");
		*err = -EOPNOTSUPP;
		return 0;
	}
	/* a planned hand-over (upgrade) can quiesce the device where the kernel can (>= 6.16) */
	if (f && (dev->features & UBLK_F_QUIESCE))
		f |= UBLK_F_QUIESCE;
	return f;
}

static int set_max_io(struct uc_dev *dev);

/* Zero copy needs AUTO_BUF_REG (6.16), vectored fixed I/O (6.15) and layers that allow it. */
static bool zero_copy_possible(const struct uc_dev *dev)
{
	struct io_uring_probe *p;
	bool ok;

	if (!dev->g->zero_copy || !(dev->features & UBLK_F_AUTO_BUF_REG))
		return false;
	p = io_uring_get_probe();
	ok = p && io_uring_opcode_supported(p, UC_IORING_OP_READV_FIXED) &&
	     io_uring_opcode_supported(p, UC_IORING_OP_WRITEV_FIXED);
	if (p)
		io_uring_free_probe(p);
	return ok;
}

/* BATCH_IO (7.x) unless the config says batch = false. */
static bool batch_possible(const struct uc_dev *dev)
{
	if (!dev->g->dev.batch || !(dev->features & UBLK_F_BATCH_IO))
		return false;
	if (dev->g->dev.recovery == UC_RECOVERY_REQUEUE)
		uc_warn("batch = true with recovery = \"requeue\": an upgrade fails the requests "
			"the kernel holds at the hand-over");
	return true;
}

/* The I/O path the device was made with; the queues follow it. */
static void io_path_from_flags(struct uc_dev *dev)
{
	dev->zero_copy = dev->info.flags & UBLK_F_AUTO_BUF_REG;
	dev->user_copy = dev->zero_copy && (dev->info.flags & UBLK_F_USER_COPY);
	dev->batch = dev->info.flags & UBLK_F_BATCH_IO;
	dev->g->running_zero_copy = dev->zero_copy;
	dev->g->running_batch = dev->batch;
	uc_info("I/O path: %s%s, %s", dev->zero_copy ? "zero copy (AUTO_BUF_REG)" : "copy",
		dev->user_copy ? ", network legs' data by USER_COPY" : "",
		dev->batch ? "batched commands (BATCH_IO)" : "per-tag commands");
}

/* A zero-copy device with user_copy leaves must have UBLK_F_USER_COPY. Returns 0 or -EINVAL. */
static int check_user_copy(const struct uc_dev *dev)
{
	if (!dev->zero_copy || !dev->g->user_copy || dev->user_copy)
		return 0;
	uc_err("device %u runs zero copy without USER_COPY, which this config's network legs "
	       "need (set device.zero_copy = false)", dev->info.dev_id);
	return -EINVAL;
}

static int add_dev(struct uc_dev *dev)
{
	const struct uc_graph *g = dev->g;
	uint64_t want = UBLK_F_CMD_IOCTL_ENCODE;
	char b[512];
	int ret;

	want |= recovery_flags(dev, &ret);
	if (ret)
		return ret;
	if (zero_copy_possible(dev))
		want |= UBLK_F_AUTO_BUF_REG | (g->user_copy ? UBLK_F_USER_COPY : 0);
	/* a stop checks for openers in the kernel where it can (7.0; src/stop.c) */
	if (dev->features & UBLK_F_SAFE_STOP_DEV)
		want |= UBLK_F_SAFE_STOP_DEV;
	if (batch_possible(dev))
		want |= UBLK_F_BATCH_IO;
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
	io_path_from_flags(dev);
	/* optional: without them, the copy path and per-tag commands */
	want &= ~(UBLK_F_AUTO_BUF_REG | UBLK_F_USER_COPY | UBLK_F_BATCH_IO);
	if ((ret = check_user_copy(dev)))
		return ret;
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
	return set_max_io(dev);
}

static int set_max_io(struct uc_dev *dev)
{
	const struct uc_graph *g = dev->g;

	dev->max_io = dev->info.max_io_buf_bytes < g->dev.max_io ?
		dev->info.max_io_buf_bytes : g->dev.max_io;
	dev->max_io &= ~4095U;
	return dev->max_io < 4096 ? -EINVAL : 0;
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
		/* run each queue on the CPUs that submit to it, as kublk does */
		uq->has_affinity = !uc_ctrl_cmd(&dev->ctrl, UBLK_U_CMD_GET_QUEUE_AFFINITY,
						dev->info.dev_id, &uq->affinity,
						sizeof(uq->affinity), i, CTRL_TIMEOUT_MS);
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

enum stop_kind { STOP_DELETE, STOP_HANDOVER, STOP_FAILED, STOP_RELOAD };

/*
 * Wait for SIGINT/SIGTERM or `ublk-compose stop` (stop and delete: *force
 * from the request), SIGUSR1 (hand over), SIGHUP (reload), or a queue failing.
 */
static enum stop_kind wait_for_stop(struct uc_dev *dev, const sigset_t *sigs, bool *force)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 200 * 1000000L };

	*force = false;
	while (!atomic_load(&dev->failed)) {
		int sig = sigtimedwait(sigs, NULL, &ts);

		if (sig == SIGINT || sig == SIGTERM) {
			uc_info("signal %d: stopping", sig);
			return STOP_DELETE;
		}
		if (sig == SIGHUP)
			return STOP_RELOAD;
		if (sig == SIGUSR2 && uc_stop_pending(force))
			return STOP_DELETE;
		if (sig == SIGUSR1) {
			/*
			 * Without QUIESCE the only hand-over is to exit under load, and on
			 * 6.12 that raced the kernel into an io_uring refcount underflow.
			 */
			if (!(dev->info.flags & UBLK_F_QUIESCE)) {
				uc_warn("SIGUSR1: hand-over needs UBLK_F_QUIESCE (Linux >= 6.16); still serving");
				continue;
			}
			uc_info("SIGUSR1: handing the device over to a new server");
			return STOP_HANDOVER;
		}
	}
	uc_err("a queue failed: stopping");
	return STOP_FAILED;
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

static bool pid_alive(int pid);

/*
 * Take over device id whose server died: it must be quiesced (or failing
 * I/O) and shaped like the config. Fills dev->info. Returns 0 or -errno.
 */
static int recover_prepare(struct uc_dev *dev, unsigned int id)
{
	const struct uc_graph *g = dev->g;
	int ret;

	/*
	 * The old server may still be on its way out: under heavy I/O the kernel
	 * took up to ~30 s (6.12, TCG) to quiesce the device after a kill -9.
	 */
	for (int i = 0; i < 900; i++) {
		ret = uc_ctrl_get_info(&dev->ctrl, id, &dev->info);
		if (ret) {
			uc_err("device %u: %s", id, strerror(-ret));
			return ret;
		}
		if (!(dev->info.flags & UBLK_F_USER_RECOVERY))
			break;	/* it will never quiesce: refused below at once */
		if (dev->info.state == UBLK_S_DEV_QUIESCED || dev->info.state == UBLK_S_DEV_FAIL_IO)
			break;
		if (dev->info.state == UBLK_S_DEV_LIVE && pid_alive(dev->info.ublksrv_pid)) {
			uc_err("device %u is served by pid %d", id, dev->info.ublksrv_pid);
			return -EBUSY;
		}
		usleep(100000);
	}
	if (!(dev->info.flags & UBLK_F_USER_RECOVERY)) {
		uc_err("device %u was created with recovery = \"off\": it cannot be recovered", id);
		return -EINVAL;
	}
	if (dev->info.state != UBLK_S_DEV_QUIESCED && dev->info.state != UBLK_S_DEV_FAIL_IO) {
		uc_err("device %u is still %s 90 s after its server died", id,
		       dev->info.state == UBLK_S_DEV_LIVE ? "live" : "dead");
		return -ETIMEDOUT;
	}
	if (dev->info.nr_hw_queues != g->dev.queues || dev->info.queue_depth != g->dev.depth) {
		uc_err("device %u has %u queues of depth %u, the config says %u of %u", id,
		       dev->info.nr_hw_queues, dev->info.queue_depth, g->dev.queues, g->dev.depth);
		return -EINVAL;
	}
	/* the I/O path is fixed at ADD_DEV: a zero-copy device needs zero-copy layers */
	io_path_from_flags(dev);
	if (dev->zero_copy && !zero_copy_possible(dev)) {
		uc_err("device %u uses zero copy, which this config or kernel cannot serve", id);
		return -EINVAL;
	}
	if ((ret = check_user_copy(dev)))
		return ret;
	return set_max_io(dev);
}

static int recover_start(struct uc_dev *dev)
{
	int ret = -EBUSY;

	/* -EBUSY while the old server's char device is still being released */
	for (int i = 0; i < 100 && ret == -EBUSY; i++) {
		ret = uc_ctrl_cmd(&dev->ctrl, UBLK_U_CMD_START_USER_RECOVERY, dev->info.dev_id, NULL,
				  0, 0, CTRL_TIMEOUT_MS);
		if (ret == -EBUSY)
			usleep(100000);
	}
	if (ret)
		uc_err("START_USER_RECOVERY failed: %s", strerror(-ret));
	return ret;
}

/* Bring the device up (new, or taken over); on success it is live. */
static int dev_up(struct uc_dev *dev, const struct uc_serve_opts *opts, bool *added)
{
	struct ublk_params params;
	int ret;

	if (opts->recover_id >= 0) {
		ret = recover_prepare(dev, opts->recover_id);
		if (ret)
			return ret;
	}
	/* backing files before any device change: a bad leaf leaves nothing behind */
	ret = uc_graph_open(dev->g);
	if (ret)
		return ret;
	if (opts->recover_id >= 0) {
		ret = recover_start(dev);
	} else {
		ret = add_dev(dev);
		*added = !ret;
	}
	/* before START_DEV: the udev rule imports it when the disk appears */
	if (!ret && uc_run_save_name(dev->info.dev_id, dev->g->dev.name))
		uc_warn("cannot record the name in " UC_RUN_DIR);
	if (!ret && opts->recover_id < 0) {
		fill_params(dev, &params);
		ret = uc_ctrl_cmd(&dev->ctrl, UBLK_U_CMD_SET_PARAMS, dev->info.dev_id, &params,
				  sizeof(params), 0, CTRL_TIMEOUT_MS);
		if (ret)
			uc_err("SET_PARAMS failed: %s", strerror(-ret));
	}
	if (!ret)
		ret = open_char_dev(dev);
	if (!ret)
		ret = start_queues(dev);
	if (ret)
		return ret;
	/* both complete only once every tag of every queue has its FETCH queued */
	if (opts->recover_id >= 0)
		ret = uc_ctrl_cmd(&dev->ctrl, UBLK_U_CMD_END_USER_RECOVERY, dev->info.dev_id, NULL, 0,
				  getpid(), CTRL_TIMEOUT_MS);
	else
		ret = uc_ctrl_cmd(&dev->ctrl, UBLK_U_CMD_START_DEV, dev->info.dev_id, NULL, 0,
				  getpid(), CTRL_TIMEOUT_MS);
	if (ret)
		uc_err("%s failed: %s", opts->recover_id >= 0 ? "END_USER_RECOVERY" : "START_DEV",
		       strerror(-ret));
	/* a new disk only: one taken over keeps what it had (the admin may have changed it) */
	else if (opts->recover_id < 0)
		uc_disk_apply_scheduler(dev->info.dev_id, dev->g->dev.scheduler);
	return ret;
}

/*
 * Leave the device to the next server: quiesce it (in-flight requests
 * finish, FETCHes are cancelled), then the queues exit.
 */
static void dev_handover(struct uc_dev *dev)
{
	int r;

	/*
	 * Not with BATCH_IO: on 7.3 QUIESCE_DEV then fails every new request
	 * with EIO until the next server is up (its cancel sets force_abort).
	 * Leave as a restart does: the queues finish what they started, the
	 * kernel re-issues the rest to the next server (src/batch.c).
	 */
	if (dev->batch)
		return;
	r = uc_ctrl_cmd(&dev->ctrl, UBLK_U_CMD_QUIESCE_DEV, dev->info.dev_id, NULL, 0, 10000,
			CTRL_TIMEOUT_MS);
	if (r)
		uc_warn("QUIESCE_DEV failed: %s; leaving without it", strerror(-r));
}

/*
 * Serve until a stop that goes through: a stop while the disk is in use is
 * refused (unless forced) and the device keeps running. Returns how it ended.
 */
static enum stop_kind serve_loop(struct uc_dev *dev, const sigset_t *sigs)
{
	const char *name = dev->g->dev.name;
	unsigned int id = dev->info.dev_id;

	for (;;) {
		char why[PATH_MAX], msg[PATH_MAX + 256];
		bool force;
		int ret;

		switch (wait_for_stop(dev, sigs, &force)) {
		case STOP_RELOAD:
			uc_reload(dev->g);
			continue;
		case STOP_HANDOVER:
			return STOP_HANDOVER;
		case STOP_FAILED:
			return STOP_FAILED;
		case STOP_DELETE:
			break;
		}
		ret = uc_stop_device(&dev->ctrl, id, dev->info.flags, force, why, sizeof(why));
		if (ret == -EBUSY) {
			snprintf(msg, sizeof(msg), "refusing to stop /dev/ublkb%u (%s): it is in use (%s); "
				 "unmount it first, or `ublk-compose stop --force %s`", id, name, why, name);
			uc_err("%s", msg);
			uc_stop_answer(-EBUSY, msg);
			continue;
		}
		if (ret)
			uc_err("STOP_DEV failed: %s", strerror(-ret));
		snprintf(msg, sizeof(msg), "stopping /dev/ublkb%u (%s)%s", id, name,
			 force ? " (forced)" : "");
		uc_info("%s", msg);
		uc_stop_answer(0, msg);
		return STOP_DELETE;
	}
}

/* The device is live: announce it (run state, name, events, admin socket, readiness). */
static void announce(struct uc_dev *dev, const struct uc_serve_opts *opts, struct uc_admin *admin)
{
	struct uc_graph *g = dev->g;
	unsigned int id = dev->info.dev_id;
	char path[64];
	int ret;

	snprintf(path, sizeof(path), "/dev/ublkb%u", id);
	if (!wait_for_path(path, 5000))
		uc_warn("%s did not appear", path);
	if (uc_run_save(id, g->conf_path, getpid()))
		uc_warn("cannot record run state in " UC_RUN_DIR);
	if ((ret = uc_name_link(g->dev.name, id)))
		uc_warn(UC_NAME_DIR "/%s: %s", g->dev.name, strerror(-ret));
	if (opts->recover_id >= 0) {
		uc_notice("%s: recovered %s", g->dev.name, path);
		uc_event(NULL, UC_EV_RECOVERED, "%s served again by pid %d", path, (int)getpid());
	} else {
		uc_event(NULL, UC_EV_DEVICE_STARTED, "%s, config %s", path, g->conf_path);
	}
	if ((ret = uc_feed_start(g, id, g->dev.name)))
		uc_warn("event feed: %s (monitor sees no events)", strerror(-ret));
	if ((ret = uc_admin_start(admin, g, id, dev->zero_copy)))
		uc_warn("admin socket " UC_RUN_DIR "/%u.sock: %s (status/fail/replace unavailable)",
			id, strerror(-ret));
	printf("%s\n", path);
	fflush(stdout);
	if (opts->ready_fd >= 0) {
		dprintf(opts->ready_fd, "%s\n", path);
		close(opts->ready_fd);
	}
	uc_notifyf("READY=1\nSTATUS=serving %s (%s)\nMAINPID=%d", path, g->dev.name, (int)getpid());
}

int uc_dev_serve(struct uc_graph *g, const struct uc_serve_opts *opts_in)
{
	struct uc_dev dev = { .g = g, .char_fd = -1, .ctrl.fd = -1,
			      .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct uc_serve_opts o = *opts_in, *opts = &o;
	enum stop_kind stop = STOP_FAILED;
	struct uc_admin admin = { .fd = -1 };
	bool added = false, live = false;
	sigset_t sigs;
	int ret;

	/* queue threads inherit this mask: only sigtimedwait() here takes the signals */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGUSR2);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	uc_stop_set_main();

	ret = uc_ctrl_open(&dev.ctrl);
	if (ret) {
		uc_err("/dev/ublk-control: %s%s", strerror(-ret),
		       ret == -ENOENT ? " (modprobe ublk_drv; Linux >= 6.4)" : "");
		goto out;
	}
	probe_features(&dev);
	ret = uc_run_claim(g, &dev.ctrl, &opts->recover_id);
	if (ret)
		goto out;
	uc_event_set_space_warn(g->dev.space_warn);
	ret = dev_up(&dev, opts, &added);
	if (ret)
		goto out;
	live = true;
	announce(&dev, opts, &admin);
	stop = serve_loop(&dev, &sigs);
out:
	uc_notify("STOPPING=1");
	/* admin commands act on running queues: no new ones from here */
	uc_admin_stop(&admin);
	if (live && stop == STOP_HANDOVER) {
		dev_handover(&dev);
	} else if (live || (opts->recover_id < 0 && added)) {
		/* STOP_DEV while the queues still serve: it waits for in-flight requests */
		int r = uc_ctrl_cmd(&dev.ctrl, UBLK_U_CMD_STOP_DEV, dev.info.dev_id, NULL, 0, 0,
				    CTRL_TIMEOUT_MS);

		if (r && live)
			uc_err("STOP_DEV failed: %s", strerror(-r));
	}
	stop_queues(&dev);
	/* DEL_DEV waits for every fd and mapping of the char device to go */
	if (dev.char_fd >= 0)
		close(dev.char_fd);
	/* a device taken over (recovery) stays if that failed: it holds the user's I/O */
	if ((added || (live && opts->recover_id >= 0)) && stop != STOP_HANDOVER) {
		int r = uc_ctrl_cmd(&dev.ctrl, UBLK_U_CMD_DEL_DEV, dev.info.dev_id, NULL, 0, 0,
				    CTRL_TIMEOUT_MS);

		if (r) {
			uc_err("DEL_DEV failed: %s", strerror(-r));
			ret = ret ? ret : r;
		}
		if (live)
			uc_event(NULL, UC_EV_DEVICE_STOPPED, "%s", stop == STOP_FAILED ?
				 "a queue failed: the device was removed" : "stopped and deleted");
		uc_name_unlink(g->dev.name, dev.info.dev_id);
		uc_run_forget(dev.info.dev_id);
	}
	uc_feed_stop(stop == STOP_HANDOVER);
	uc_ctrl_close(&dev.ctrl);
	if (!ret && stop == STOP_FAILED)
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
	printf("%-5s %-9s %10s %8s %-8s %s\n", "ID", "STATE", "SIZE", "PID", "DAEMON", "NAME");
	for (int i = 0; i < n; i++) {
		struct ublksrv_ctrl_dev_info info;
		struct ublk_params p;
		char size[32] = "-", name[UC_NAME_MAX + 1] = "-";

		if (uc_ctrl_get_info(&c, ids[i], &info))
			continue;
		if (!uc_ctrl_get_params(&c, ids[i], &p) && (p.types & UBLK_PARAM_TYPE_BASIC))
			uc_size_str(p.basic.dev_sectors << 9, size, sizeof(size));
		uc_name_of(ids[i], name);
		printf("%-5u %-9s %10s %8d %-8s %s\n", ids[i], state_str(info.state), size,
		       info.ublksrv_pid, pid_alive(info.ublksrv_pid) ? "running" : "gone", name);
	}
	uc_ctrl_close(&c);
	return 0;
}

static int del_one(struct uc_ctrl *c, unsigned int id)
{
	struct ublksrv_ctrl_dev_info info;
	char name[UC_NAME_MAX + 1];
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
	/* a server killed under load can leave STOP_DEV waiting for a while */
	ret = uc_ctrl_remove(c, id, 90000);
	if (ret) {
		fprintf(stderr, "ublk-compose: device %u: delete failed: %s\n", id, strerror(-ret));
		return 1;
	}
	if (!uc_name_of(id, name))
		uc_name_unlink(name, id);
	uc_run_forget(id);
	printf("deleted /dev/ublkb%u\n", id);
	return 0;
}

int uc_dev_del(int argc, char **argv)
{
	struct uc_ctrl c = { .fd = -1 };
	unsigned int want[256];
	int ret = 0, err;

	if (argc < 1 || argc > 256) {
		fprintf(stderr, "usage: ublk-compose del ID|--all\n");
		return 2;
	}
	/* an unknown device: nothing is deleted, not even the others */
	for (int i = 0; strcmp(argv[0], "--all") && i < argc; i++)
		if ((err = uc_name_resolve(argv[i], &want[i], false)))
			return err == -ENOENT ? 1 : 2;
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
		for (int i = 0; i < argc; i++)
			ret |= del_one(&c, want[i]);
	}
	uc_ctrl_close(&c);
	return ret;
}

bool uc_pid_running(int pid)
{
	char path[64], stat[256];
	bool zombie = false;
	FILE *f;

	if (pid <= 0 || (kill(pid, 0) && errno != EPERM))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((f = fopen(path, "re"))) {
		/* "pid (comm) S ...": a zombie has exited */
		if (fgets(stat, sizeof(stat), f) && strrchr(stat, ')'))
			zombie = strrchr(stat, ')')[2] == 'Z';
		fclose(f);
	}
	return !zombie;
}
