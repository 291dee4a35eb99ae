/* SPDX-License-Identifier: MIT */
/*
 * User copy: leaves that need a request's data in user memory (an nbd leg,
 * whose client library sends and receives with plain pointers) in a volume
 * that otherwise runs on the kernel's pages (zero copy). Rather than keep
 * the whole volume on the copy path for them, only their pieces are copied,
 * through the ublk char device (UBLK_F_USER_COPY): pread at a request's
 * position reads its data, pwrite fills it. The tag's own buffer, unused in
 * a zero-copy request, holds each piece at its offset in the request, so
 * pieces of different legs never overlap and two legs writing the same
 * range hold the same bytes.
 *
 * The copies are synchronous on the queue thread: a memcpy between the
 * request's pages and ours behind one syscall, nothing that waits on a
 * device. (An io_uring READ of the char device would go to an io-wq
 * worker: a thread hand-off per piece, dearer than the copy.)
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include "io.h"
#include "log.h"
#include "ublk_uapi.h"

static uint64_t user_copy_pos(const struct uc_queue *q, const struct uc_io *io, uint64_t off)
{
	return UBLKSRV_IO_BUF_OFFSET + ((uint64_t)q->id << UBLK_QID_OFF) +
	       ((uint64_t)io->tag << UBLK_TAG_OFF) + off;
}

/* Copy one piece between the request and io->buf + off. Returns 0 or -EIO. */
static int copy_piece(struct uc_queue *q, struct uc_io *io, char *p, size_t len, bool to_request)
{
	uint64_t off = p - (char *)io->buf;

	while (len) {
		ssize_t r = to_request ? pwrite(q->user_copy_fd, p, len, user_copy_pos(q, io, off)) :
					 pread(q->user_copy_fd, p, len, user_copy_pos(q, io, off));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			static atomic_bool warned;

			if (!atomic_exchange(&warned, true))
				uc_warn("user copy %s the request's pages failed: %s",
					to_request ? "to" : "from",
					r < 0 ? strerror(errno) : "no data");
			return -EIO;
		}
		p += r;
		off += r;
		len -= r;
	}
	return 0;
}

int uc_user_copy_in(struct uc_queue *q, struct uc_sub *s)
{
	struct uc_io *io = s->io;

	if (q->user_copy_fd < 0)
		return -EIO;	/* a bug: dev.c asks for USER_COPY whenever a leaf needs it */
	for (unsigned int i = 0; i < s->nr_iov; i++) {
		/* iov_base is an offset in the request: the same offset in io->buf */
		s->iov[i].iov_base = (char *)io->buf + (uintptr_t)s->iov[i].iov_base;
		if (s->op == UC_OP_WRITE &&
		    copy_piece(q, io, s->iov[i].iov_base, s->iov[i].iov_len, false))
			return -EIO;
	}
	return 0;
}

int uc_user_copy_out(struct uc_queue *q, struct uc_sub *s)
{
	for (unsigned int i = 0; i < s->nr_iov; i++)
		if (copy_piece(q, s->io, s->iov[i].iov_base, s->iov[i].iov_len, true))
			return -EIO;
	return 0;
}
