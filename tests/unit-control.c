/* SPDX-License-Identifier: MIT */
/*
 * The control planes without ublk: the command ring of /dev/ublk-control
 * (ctrl.c) over stand-in files, and the admin socket (admin.c) of a graph
 * served by a queue thread on a real io_uring.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "ctrl.h"
#include "testlib.h"

/* ---- ctrl.c ---- */

/*
 * A command that timed out completes later: the next command must not take
 * that completion for its own. The late command is a real one, held back by
 * a linked timeout (it runs 200 ms after it was sent, its caller gave up
 * after 20 ms). The next command goes to a closed fd: its own answer is
 * -EBADF, whatever the late one says.
 */
static int test_ctrl_stale_completion(void)
{
	struct __kernel_timespec hold = { .tv_nsec = 200 * 1000000L };
	struct uc_ctrl c;
	struct io_uring_sqe *sqe;
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC), bad, ret, late;

	CHECK(fd >= 0, "open /dev/null: %s", strerror(errno));
	ret = uc_ctrl_init(&c, fd);
	CHECK(!ret, "uc_ctrl_init: %s", strerror(-ret));
	/* an expired timeout lets the command linked behind it run, and posts no CQE itself */
	sqe = io_uring_get_sqe(&c.ring);
	io_uring_prep_timeout(sqe, &hold, 0, IORING_TIMEOUT_ETIME_SUCCESS);
	sqe->flags |= IOSQE_IO_LINK | IOSQE_CQE_SKIP_SUCCESS;
	io_uring_sqe_set_data64(sqe, 0xdead);
	ret = uc_ctrl_cmd(&c, UBLK_U_CMD_GET_FEATURES, -1, NULL, 0, 0, 20);
	CHECK(ret == -ETIMEDOUT, "the held command: %d, want -ETIMEDOUT", ret);
	/* its completion arrives while nobody waits */
	for (int i = 0; i < 200 && !io_uring_cq_ready(&c.ring); i++)
		usleep(5000);
	CHECK(io_uring_cq_ready(&c.ring) == 1, "%u CQEs ready, want the late command's",
	      io_uring_cq_ready(&c.ring));
	{
		struct io_uring_cqe *cqe;

		CHECK(!io_uring_peek_cqe(&c.ring, &cqe), "peek");
		late = cqe->res;
		CHECK(cqe->user_data != 0xdead, "the timeout posted a CQE (%d)", cqe->res);
	}
	bad = dup(fd);
	close(bad);
	c.fd = bad;	/* no such file: this command's own answer is -EBADF */
	ret = uc_ctrl_cmd(&c, UBLK_U_CMD_GET_FEATURES, -1, NULL, 0, 0, 1000);
	c.fd = fd;
	CHECK(late != -EBADF, "the late completion says %d: the test cannot tell them apart", late);
	CHECK(ret == -EBADF, "the next command returned %d (the late one's was %d), want -EBADF",
	      ret, late);
	/* nothing is left over for a third */
	ret = uc_ctrl_cmd(&c, UBLK_U_CMD_GET_FEATURES, -1, NULL, 0, 0, 1000);
	CHECK(ret == late, "a third command: %d, want %d", ret, late);
	uc_ctrl_close(&c);
	return T_PASS;
}

int main(void)
{
	static const struct t_case cases[] = {
#define C(fn) { #fn, test_##fn }
		C(ctrl_stale_completion),
#undef C
	};

	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
