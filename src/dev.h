/* SPDX-License-Identifier: MIT */
/* A ublk device served by this process: queue threads and the lifecycle. */
#ifndef UC_DEV_H
#define UC_DEV_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include "ctrl.h"
#include "io.h"

struct uc_dev;
struct uc_batch;

struct uc_ublk_queue {		/* one thread, one ring */
	struct uc_queue q;	/* the engine */
	struct uc_dev *dev;
	unsigned int id;
	struct ublksrv_io_desc *descs;	/* mmapped from /dev/ublkcN */
	size_t descs_len;
	int stop_efd;		/* written by the control thread to wake the ring */
	pthread_t thread;
	bool thread_started;
	bool has_affinity;
	cpu_set_t affinity;	/* CPUs whose requests land on this queue */
	bool stopping;
	unsigned int nr_cmds;	/* FETCH/COMMIT commands held by the kernel */
	struct uc_batch *batch;	/* UBLK_F_BATCH_IO state (src/batch.c); NULL: per-tag commands */
	uint64_t spin_ns;	/* device.spin_us */
};

struct uc_dev {
	struct uc_graph *g;
	struct uc_ctrl ctrl;
	struct ublksrv_ctrl_dev_info info;	/* as the kernel returned it */
	int char_fd;
	uint32_t max_io;	/* bytes, after the kernel's cap */
	struct uc_ublk_queue *queues;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int nr_setup;	/* queue threads done with setup */
	int setup_err;		/* first setup failure */
	atomic_int failed;	/* a queue thread died: the daemon must stop */
	uint64_t features;	/* GET_FEATURES, 0 if the kernel lacks it */
	bool zero_copy;		/* UBLK_F_AUTO_BUF_REG granted: requests' pages go into the rings */
	bool user_copy;		/* ... and UBLK_F_USER_COPY: user_copy leaves reach them by the char device */
	bool batch;		/* UBLK_F_BATCH_IO granted: PREP/FETCH/COMMIT_IO_CMDS (src/batch.c) */
};

struct uc_serve_opts {
	int recover_id;		/* >= 0: take over this device (its server died) */
	int ready_fd;		/* >= 0: also write "/dev/ublkbN\n" here once live */
};

/* Run state under /run/ublk-compose (src/run.c). */
#define UC_RUN_DIR "/run/ublk-compose"
/* Record that pid serves device id with config conf. Returns 0 or -errno. */
int uc_run_save(unsigned int id, const char *conf, int pid);
/* Record the name of device id (ID.env). Returns 0 or -errno. */
int uc_run_save_name(unsigned int id, const char *name);
/* Remove the run state of device id. */
void uc_run_forget(unsigned int id);
/*
 * Before serving g: take its name (held until this process exits) and find
 * its device. *recover_id stays -1 for a new device, or becomes the id of
 * g's device whose server died (then g may be reloaded from the layout the
 * device runs with). With *recover_id >= 0 already, g takes that device's
 * name. Returns 0, -EBUSY (a live server has the name; said on stderr), or
 * -errno.
 */
int uc_run_claim(struct uc_graph *g, struct uc_ctrl *c, int *recover_id);
/* The config path device id was started with, into buf. Returns 0 or -errno. */
int uc_run_conf(unsigned int id, char *buf, size_t len);
/*
 * The tree of device id changed at runtime (replace, add): save it as
 * ID.live.conf, which recover and upgrade use from now on; its path into
 * path. Returns 0 or -errno.
 */
int uc_run_save_live(unsigned int id, struct uc_graph *g, char *path, size_t len);
/* `recover ID` and `upgrade ID` subcommands. Return the process exit status. */
int uc_cmd_recover(int argc, char **argv);
int uc_cmd_upgrade(int argc, char **argv);

/* Queue thread (src/queue.c): set up, FETCH every tag, serve until stopped. */
void *uc_ublk_queue_thread(void *arg);

/*
 * Serve graph g (loaded, not opened) as a ublk device until SIGINT/SIGTERM.
 * Prints /dev/ublkbN on stdout once live. Returns the process exit status.
 */
int uc_dev_serve(struct uc_graph *g, const struct uc_serve_opts *opts);
/* `list` and `del` subcommands. Return the process exit status. */
int uc_dev_list(void);
int uc_dev_del(int argc, char **argv);
/* A process pid exists and has not exited (a zombie has): a device's server, say. */
bool uc_pid_running(int pid);

#endif
