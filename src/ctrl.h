/* SPDX-License-Identifier: MIT */
/* /dev/ublk-control: uring_cmd control commands (ioctl encoding, Linux >= 6.4). */
#ifndef UC_CTRL_H
#define UC_CTRL_H

#include <liburing.h>
#include "ublk_uapi.h"

/* Zero a 128-byte SQE (SQE128 rings): uring_cmd payloads live in its second half. */
static inline void uc_sqe128_clear(struct io_uring_sqe *sqe)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
	__builtin_memset(sqe, 0, 2 * sizeof(*sqe));
#pragma GCC diagnostic pop
}

struct uc_ctrl {
	int fd;
	struct io_uring ring;
	uint64_t seq;		/* user_data of the last command sent */
};

/* Returns 0, or -errno (-ENOENT: no ublk_drv loaded). */
int uc_ctrl_open(struct uc_ctrl *c);
/* The same over an open fd (owned from here; tests pass stand-ins). Returns 0 or -errno. */
int uc_ctrl_init(struct uc_ctrl *c, int fd);
void uc_ctrl_close(struct uc_ctrl *c);
/*
 * Send one command and wait at most timeout_ms for it. Returns the CQE's res
 * (0 or -errno), or -ETIMEDOUT: the command may still complete later, and
 * a later call drops its CQE (the kernel runs the commands that fill buf
 * at once; the ones that wait, START/STOP/DEL/QUIESCE, take none).
 */
int uc_ctrl_cmd(struct uc_ctrl *c, unsigned int cmd_op, unsigned int dev_id, void *buf,
		unsigned int len, uint64_t data0, int timeout_ms);
int uc_ctrl_get_features(struct uc_ctrl *c, uint64_t *features);
int uc_ctrl_get_info(struct uc_ctrl *c, unsigned int dev_id, struct ublksrv_ctrl_dev_info *info);
int uc_ctrl_get_params(struct uc_ctrl *c, unsigned int dev_id, struct ublk_params *p);
/* Stop (if live) and delete a device. Returns 0 or -errno. */
int uc_ctrl_remove(struct uc_ctrl *c, unsigned int dev_id, int timeout_ms);
/* Describe feature bits as "ZERO_COPY USER_RECOVERY ..." into buf. */
const char *uc_ctrl_flags_str(uint64_t flags, char *buf, size_t len);

#endif
