/* SPDX-License-Identifier: MIT */
/* Control commands on /dev/ublk-control (see ../shared protocol notes in README). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "ctrl.h"

int uc_ctrl_init(struct uc_ctrl *c, int fd)
{
	int ret;

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	ret = io_uring_queue_init(4, &c->ring, IORING_SETUP_SQE128);
	if (ret) {
		close(c->fd);
		c->fd = -1;
	}
	return ret;
}

int uc_ctrl_open(struct uc_ctrl *c)
{
	int fd = open("/dev/ublk-control", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		c->fd = -1;
		return -errno;
	}
	return uc_ctrl_init(c, fd);
}

void uc_ctrl_close(struct uc_ctrl *c)
{
	if (c->fd < 0)
		return;
	io_uring_queue_exit(&c->ring);
	close(c->fd);
	c->fd = -1;
}

/* Milliseconds of CLOCK_MONOTONIC. */
static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int uc_ctrl_cmd(struct uc_ctrl *c, unsigned int cmd_op, unsigned int dev_id, void *buf,
		unsigned int len, uint64_t data0, int timeout_ms)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&c->ring);
	struct ublksrv_ctrl_cmd *cmd;
	int64_t deadline = now_ms() + timeout_ms;
	uint64_t id;
	int ret;

	if (!sqe)
		return -EBUSY;
	uc_sqe128_clear(sqe);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = c->fd;
	sqe->cmd_op = cmd_op;
	cmd = (struct ublksrv_ctrl_cmd *)sqe->cmd;
	cmd->dev_id = dev_id;
	cmd->queue_id = (__u16)-1;
	cmd->addr = (uintptr_t)buf;
	cmd->len = len;
	cmd->data[0] = data0;
	/* a command that timed out completes later: its CQE must not pass for this one's */
	id = ++c->seq;
	io_uring_sqe_set_data64(sqe, id);
	ret = io_uring_submit(&c->ring);
	if (ret < 0)
		return ret;
	for (;;) {
		int64_t left = deadline - now_ms();
		struct __kernel_timespec ts = { .tv_sec = left > 0 ? left / 1000 : 0,
						.tv_nsec = left > 0 ? left % 1000 * 1000000L : 0 };
		struct io_uring_cqe *cqe;

		ret = io_uring_wait_cqe_timeout(&c->ring, &cqe, &ts);
		if (ret == -ETIME)
			return -ETIMEDOUT;
		if (ret == -EINTR)
			continue;
		if (ret)
			return ret;
		if (cqe->user_data == id) {
			ret = cqe->res;
			io_uring_cqe_seen(&c->ring, cqe);
			return ret;
		}
		/* an earlier command's, after its caller gave up on it */
		io_uring_cqe_seen(&c->ring, cqe);
	}
}

int uc_ctrl_get_features(struct uc_ctrl *c, uint64_t *features)
{
	return uc_ctrl_cmd(c, UBLK_U_CMD_GET_FEATURES, (unsigned int)-1, features,
			   sizeof(*features), 0, 5000);
}

int uc_ctrl_get_info(struct uc_ctrl *c, unsigned int dev_id, struct ublksrv_ctrl_dev_info *info)
{
	memset(info, 0, sizeof(*info));
	return uc_ctrl_cmd(c, UBLK_U_CMD_GET_DEV_INFO, dev_id, info, sizeof(*info), 0, 5000);
}

int uc_ctrl_get_params(struct uc_ctrl *c, unsigned int dev_id, struct ublk_params *p)
{
	memset(p, 0, sizeof(*p));
	p->len = sizeof(*p);
	return uc_ctrl_cmd(c, UBLK_U_CMD_GET_PARAMS, dev_id, p, sizeof(*p), 0, 5000);
}

int uc_ctrl_remove(struct uc_ctrl *c, unsigned int dev_id, int timeout_ms)
{
	struct ublksrv_ctrl_dev_info info;
	int ret = uc_ctrl_get_info(c, dev_id, &info);

	if (ret)
		return ret;
	if (info.state != UBLK_S_DEV_DEAD) {
		ret = uc_ctrl_cmd(c, UBLK_U_CMD_STOP_DEV, dev_id, NULL, 0, 0, timeout_ms);
		if (ret && ret != -ENODEV && ret != -EINVAL)
			return ret;
	}
	return uc_ctrl_cmd(c, UBLK_U_CMD_DEL_DEV, dev_id, NULL, 0, 0, timeout_ms);
}

const char *uc_ctrl_flags_str(uint64_t flags, char *buf, size_t len)
{
	static const char *const names[] = {
		"ZERO_COPY", "COMP_IN_TASK", "NEED_GET_DATA", "USER_RECOVERY",
		"RECOVERY_REISSUE", "UNPRIVILEGED", "IOCTL_ENCODE", "USER_COPY", "ZONED",
		"RECOVERY_FAIL_IO", "UPDATE_SIZE", "AUTO_BUF_REG", "QUIESCE", "PER_IO_DAEMON",
		"BUF_REG_OFF_DAEMON", "BATCH_IO", "INTEGRITY", "SAFE_STOP", "NO_AUTO_PART_SCAN",
	};
	size_t used = 0;

	buf[0] = 0;
	for (unsigned int i = 0; i < 64 && used < len; i++) {
		if (!(flags & (1ULL << i)))
			continue;
		if (i < sizeof(names) / sizeof(names[0]))
			used += snprintf(buf + used, len - used, "%s%s", used ? " " : "", names[i]);
		else
			used += snprintf(buf + used, len - used, "%sbit%u", used ? " " : "", i);
	}
	return buf;
}
