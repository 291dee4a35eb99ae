/* SPDX-License-Identifier: MIT */
/*
 * Stopping a device only when nothing uses it, as `mdadm --stop` refuses a
 * busy array: a mounted filesystem must not lose its disk because someone
 * sent SIGTERM. Where the kernel has UBLK_F_SAFE_STOP_DEV (7.0) the check
 * and the stop are one command (TRY_STOP_DEV: no opener at all); elsewhere
 * an exclusive open of /dev/ublkbN, held across STOP_DEV, finds exclusive
 * users (a mounted filesystem, md/dm/LVM, swap) but not a plain open.
 */
#ifndef UC_STOP_H
#define UC_STOP_H

#include <stdbool.h>
#include <stddef.h>
#include "ctrl.h"

/*
 * STOP_DEV device id unless it is in use (force: anyway). flags: the
 * device's, from ADD_DEV or GET_DEV_INFO. On -EBUSY why gets what uses it
 * ("mounted on /mnt"). Returns 0 (stopped), -EBUSY (nothing changed), or
 * another -errno.
 */
int uc_stop_device(struct uc_ctrl *c, unsigned int id, uint64_t flags, bool force, char *why,
		   size_t len);

/* ---- `ublk-compose stop` reaching the server's main thread ---- */

/* The thread that takes the stop requests (it waits in sigtimedwait for SIGUSR2). */
void uc_stop_set_main(void);
/*
 * Admin thread: ask the main thread to stop the device; wait for its answer
 * (one line into reply). Returns 0 (it stops), -EBUSY or -errno.
 */
int uc_stop_request(bool force, char *reply, size_t len);
/* Main thread: a request is waiting; *force: forced. */
bool uc_stop_pending(bool *force);
/* Main thread: the answer to the waiting request (0 or -errno; msg: one line). */
void uc_stop_answer(int result, const char *msg);

/* CLI: `stop [--force] NAME|ID...`. Returns the exit status. */
int uc_cmd_stop(int argc, char **argv);

#endif
