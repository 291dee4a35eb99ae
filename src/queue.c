/* SPDX-License-Identifier: MIT */
/*
 * A ublk queue thread: its own ring (SQE128) carries the ublk commands and
 * every member I/O of the queue's requests. The commands are a FETCH per tag
 * and a COMMIT_AND_FETCH per request, or with UBLK_F_BATCH_IO one PREP, one
 * multishot FETCH and a COMMIT per loop turn (src/batch.c). One
 * io_uring_enter per loop turn submits everything queued and waits.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "batch.h"
#include "log.h"
#include "udata.h"

static size_t page_round(size_t v)
{
	size_t ps = sysconf(_SC_PAGESIZE);

	return (v + ps - 1) / ps * ps;
}

struct io_uring_sqe *uc_ublk_cmd_sqe(struct uc_ublk_queue *uq, unsigned int cmd_op,
				     uint64_t user_data)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&uq->q.ring);

	if (!sqe) {
		io_uring_submit(&uq->q.ring);
		sqe = io_uring_get_sqe(&uq->q.ring);
		if (!sqe)
			return NULL;
	}
	uc_sqe128_clear(sqe);
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = uq->dev->char_fd;
	sqe->cmd_op = cmd_op;
	io_uring_sqe_set_data64(sqe, user_data);
	return sqe;
}

/* Queue a FETCH (first time) or COMMIT_AND_FETCH for tag. */
static void queue_cmd(struct uc_ublk_queue *uq, unsigned int tag, unsigned int cmd, int result)
{
	struct io_uring_sqe *sqe;
	struct ublksrv_io_cmd *io_cmd;

	sqe = uc_ublk_cmd_sqe(uq, cmd == UBLK_IO_FETCH_REQ ? UBLK_U_IO_FETCH_REQ :
			      UBLK_U_IO_COMMIT_AND_FETCH_REQ, uc_udata_cmd(tag, cmd));
	/* the ring has room for depth commands plus member I/O; if not, it is a bug */
	assert(sqe);
	io_cmd = (struct ublksrv_io_cmd *)sqe->cmd;
	io_cmd->q_id = uq->id;
	io_cmd->tag = tag;
	io_cmd->result = result;
	if (uq->q.zero_copy)
		sqe->addr = tag;	/* struct ublk_auto_buf_reg: register as buffer `tag` */
	else
		io_cmd->addr = (uintptr_t)uq->q.ios[tag].buf;
	uq->nr_cmds++;
}

static void queue_commit(struct uc_queue *q, struct uc_io *io, int res)
{
	queue_cmd(q->owner, io->tag, UBLK_IO_COMMIT_AND_FETCH_REQ, res);
}

void uc_ublk_queue_request(struct uc_ublk_queue *uq, unsigned int tag)
{
	const struct ublksrv_io_desc *d = &uq->descs[tag];
	unsigned int op = d->op_flags & 0xff, flags = d->op_flags >> 8;
	struct uc_req r = {
		.op = op == UBLK_IO_OP_WRITE_SAME ? 0xff : op,	/* unsupported: -EOPNOTSUPP */
		.flags = (flags & (UBLK_IO_F_FUA >> 8) ? UC_F_FUA : 0) |
			 (flags & (UBLK_IO_F_NOUNMAP >> 8) ? UC_F_NOUNMAP : 0),
		.off = d->start_sector << 9,
		.len = (uint64_t)d->nr_sectors << 9,
	};

	if (op > UC_OP_WRITE_ZEROES)
		r.op = 0xff;
	uc_queue_start(&uq->q, tag, &r);
}

static void queue_cmd_cqe(struct uc_ublk_queue *uq, const struct io_uring_cqe *cqe)
{
	unsigned int tag = uc_udata_tag(cqe->user_data);

	uq->nr_cmds--;
	if (cqe->res == UBLK_IO_RES_OK) {
		if (uq->stopping)
			uc_dbg("queue %u: request on tag %u while stopping", uq->id, tag);
		uc_ublk_queue_request(uq, tag);
	} else if (cqe->res != UBLK_IO_RES_ABORT) {
		/* the tag is no longer armed; the kernel fails what it held */
		uc_err("queue %u tag %u: ublk command failed: %s", uq->id, tag, strerror(-cqe->res));
	}
}

static void arm_stop_poll(struct uc_ublk_queue *uq)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&uq->q.ring);

	io_uring_prep_poll_add(sqe, uq->stop_efd, POLLIN);
	io_uring_sqe_set_data64(sqe, UC_UDATA_EVENT);
}

static int queue_setup(struct uc_ublk_queue *uq)
{
	struct uc_dev *dev = uq->dev;
	size_t stride = page_round(UBLK_MAX_QUEUE_DEPTH * sizeof(struct ublksrv_io_desc));
	int ret;

	ret = uc_queue_init(&uq->q, dev->g, uq->id, dev->info.queue_depth, IORING_SETUP_SQE128, 1);
	if (ret) {
		uc_err("queue %u: io_uring setup failed: %s", uq->id, strerror(-ret));
		return ret;
	}
	uq->q.owner = uq;
	uq->q.commit = dev->batch ? uc_batch_commit : queue_commit;
	uq->q.zero_copy = dev->zero_copy;
	uq->spin_ns = (uint64_t)dev->g->dev.spin_us * 1000;
	uq->q.user_copy_fd = dev->user_copy ? dev->char_fd : -1;
	/* AUTO_BUF_REG puts each request's pages at index tag of this sparse table */
	if (uq->q.zero_copy && (ret = io_uring_register_buffers_sparse(&uq->q.ring, uq->q.depth))) {
		uc_err("queue %u: cannot register a buffer table: %s", uq->id, strerror(-ret));
		return ret;
	}
	uq->descs_len = page_round(dev->info.queue_depth * sizeof(struct ublksrv_io_desc));
	uq->descs = mmap(NULL, uq->descs_len, PROT_READ, MAP_SHARED | MAP_POPULATE, dev->char_fd,
			 UBLKSRV_CMD_BUF_OFFSET + uq->id * stride);
	if (uq->descs == MAP_FAILED) {
		ret = -errno;
		uq->descs = NULL;
		uc_err("queue %u: mmap of descriptors failed: %s", uq->id, strerror(-ret));
		return ret;
	}
	arm_stop_poll(uq);
	if (dev->batch) {
		ret = uc_batch_setup(uq);
		if (ret) {
			uc_err("queue %u: batch I/O setup failed: %s", uq->id, strerror(-ret));
			return ret;
		}
	} else {
		for (unsigned int t = 0; t < uq->q.depth; t++)
			queue_cmd(uq, t, UBLK_IO_FETCH_REQ, 0);
	}
	ret = io_uring_submit(&uq->q.ring);
	return ret < 0 ? ret : 0;
}

static bool queue_done(const struct uc_ublk_queue *uq)
{
	return (uq->stopping || !uq->nr_cmds) && uc_queue_idle(&uq->q);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

/*
 * device.spin_us: at queue depth 1 every request costs the queue thread two
 * sleeps (for the member I/O, then for the next request), and waking a
 * thread costs more than the I/O on a slow or virtual CPU (about 100 us
 * under QEMU TCG). With at most one request in flight, poll the ring for up
 * to spin_us before sleeping. With more in flight the thread has work
 * anyway and a spin would only take CPU from the I/O it waits for.
 * Returns true when it submitted the ring and completions are ready.
 */
static bool queue_spin(struct uc_ublk_queue *uq)
{
	struct io_uring *ring = &uq->q.ring;
	uint64_t end;

	if (!uq->spin_ns || uq->q.nr_busy > 1 || io_uring_cq_ready(ring) || uq->stopping)
		return false;
	io_uring_submit(ring);
	end = now_ns() + uq->spin_ns;
	do {
		/* DEFER_TASKRUN: completions wait as task work until the ring is entered */
		io_uring_get_events(ring);
		if (io_uring_cq_ready(ring))
			return true;
	} while (now_ns() < end);
	return false;
}

static void queue_serve(struct uc_ublk_queue *uq)
{
	struct io_uring *ring = &uq->q.ring;

	/* layers may have work before any request comes (a resync after an unclean stop) */
	uc_queue_poll(&uq->q);
	while (!queue_done(uq)) {
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;
		int ret;

		if (uq->batch)
			uc_batch_flush(uq);
		/* a spin that found completions has submitted everything: no enter needed */
		ret = queue_spin(uq) ? 0 : uc_queue_enter(&uq->q);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			uc_err("queue %u: io_uring_enter: %s", uq->id, strerror(-ret));
			atomic_store(&uq->dev->failed, 1);
			break;
		}
		io_uring_for_each_cqe(ring, head, cqe) {
			if (uc_queue_cqe(&uq->q, cqe))
				;
			else if (cqe->user_data == UC_UDATA_EVENT)
				uq->stopping = uq->q.stopping = true;
			else if (uq->batch)
				uc_batch_cqe(uq, cqe);
			else
				queue_cmd_cqe(uq, cqe);
			n++;
		}
		io_uring_cq_advance(ring, n);
		uc_queue_poll(&uq->q);
	}
	/* commits of the last requests */
	if (uq->batch)
		uc_batch_finish(uq);
	else
		io_uring_submit(ring);
}

void *uc_ublk_queue_thread(void *arg)
{
	struct uc_ublk_queue *uq = arg;
	struct uc_dev *dev = uq->dev;
	int ret;

	if (uq->has_affinity &&
	    pthread_setaffinity_np(pthread_self(), sizeof(uq->affinity), &uq->affinity))
		uc_dbg("queue %u: cannot set CPU affinity", uq->id);
	ret = queue_setup(uq);

	pthread_mutex_lock(&dev->lock);
	dev->nr_setup++;
	if (ret && !dev->setup_err)
		dev->setup_err = ret;
	pthread_cond_broadcast(&dev->cond);
	pthread_mutex_unlock(&dev->lock);
	if (!ret)
		queue_serve(uq);
	else
		atomic_store(&dev->failed, 1);
	/* exiting the ring cancels the FETCH commands the kernel still holds */
	uc_queue_exit(&uq->q);
	if (uq->descs)
		munmap(uq->descs, uq->descs_len);
	uq->descs = NULL;
	uc_batch_free(uq);
	return NULL;
}
