/* SPDX-License-Identifier: MIT */
/*
 * UBLK_F_BATCH_IO for one ublk queue (src/batch.c), beside the per-tag
 * FETCH_REQ/COMMIT_AND_FETCH_REQ path of src/queue.c; the queue loop is
 * shared. Every function runs on the queue's own thread.
 */
#ifndef UC_BATCH_H
#define UC_BATCH_H

#include "dev.h"

/*
 * Buffers and the fetch buffer ring for uq (its ring and descriptors set
 * up), then PREP_IO_CMDS for every tag and the multishot FETCH_IO_CMDS
 * queued (not submitted). Returns 0 or -errno.
 */
int uc_batch_setup(struct uc_ublk_queue *uq);
/* Free what setup allocated; after the ring is gone. */
void uc_batch_free(struct uc_ublk_queue *uq);
/* q->commit in batch mode: the result joins this loop turn's COMMIT_IO_CMDS. */
void uc_batch_commit(struct uc_queue *q, struct uc_io *io, int res);
/* A CQE of a batch command (PREP, FETCH, COMMIT). */
void uc_batch_cqe(struct uc_ublk_queue *uq, const struct io_uring_cqe *cqe);
/* Before each wait: queue the gathered commits and re-arm the fetch if it ended. */
void uc_batch_flush(struct uc_ublk_queue *uq);
/*
 * The queue is done: submit the last commits and wait (bounded) until the
 * kernel has taken every commit buffer, so none is freed while it reads it.
 */
void uc_batch_finish(struct uc_ublk_queue *uq);

/*
 * The fetch's provided buffer ring and its entries, as registered with the
 * kernel (tests/unit-batch.c plays the kernel's side of it).
 */
const struct io_uring_buf_ring *uc_batch_fetch_ring(const struct uc_ublk_queue *uq,
						    unsigned int *entries);

/* src/queue.c, for batch.c */
/* A request for tag arrived: its descriptor goes into the engine. */
void uc_ublk_queue_request(struct uc_ublk_queue *uq, unsigned int tag);
/*
 * A cleared 128-byte SQE carrying ublk uring_cmd cmd_op on the char device,
 * user_data set; submits first if the SQ is full. NULL only if the ring
 * cannot take one even then.
 */
struct io_uring_sqe *uc_ublk_cmd_sqe(struct uc_ublk_queue *uq, unsigned int cmd_op,
				     uint64_t user_data);

#endif
