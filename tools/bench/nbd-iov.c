/* SPDX-License-Identifier: MIT */
/*
 * tools/bench/nbd-iov: what the nbd layer's choice for vectored requests
 * costs. libnbd takes one buffer per command, so a request whose data is
 * P separate pieces (a stripe leg's share of a request) is either P
 * commands on the pieces in place (what the layer does) or one command on
 * a bounce buffer the pieces are copied into (or out of). This sends the
 * same bytes both ways, QD requests in flight, and prints MB/s and the
 * client's CPU per MB.
 *
 * usage: nbd-iov URI [MB [PIECE_KB [PIECES [QD]]]]   (defaults 512 64 8 8)
 * build: gcc -O2 -o nbd-iov tools/bench/nbd-iov.c -lnbd
 */
#include <libnbd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct req {
	char **pieces;		/* PIECES separate buffers: the request's data */
	char *bounce;		/* PIECES * PIECE bytes */
	int left;		/* commands in flight */
};

static int done_cb(void *arg, int *error)
{
	struct req *r = arg;

	if (*error) {
		fprintf(stderr, "command failed: %d\n", *error);
		exit(1);
	}
	r->left--;
	return 1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* Send req r at off: PIECES commands in place, or a copy and one command. */
static void issue(struct nbd_handle *h, struct req *r, uint64_t off, size_t piece, int pieces,
		  int bounce, int wr)
{
	nbd_completion_callback cb = { .callback = done_cb, .user_data = r };
	int64_t c;

	if (bounce) {
		if (wr)
			for (int i = 0; i < pieces; i++)
				memcpy(r->bounce + i * piece, r->pieces[i], piece);
		r->left = 1;
		c = wr ? nbd_aio_pwrite(h, r->bounce, piece * pieces, off, cb, 0) :
			 nbd_aio_pread(h, r->bounce, piece * pieces, off, cb, 0);
		if (c == -1)
			goto fail;
		return;
	}
	r->left = pieces;
	for (int i = 0; i < pieces; i++) {
		c = wr ? nbd_aio_pwrite(h, r->pieces[i], piece, off + i * piece, cb, 0) :
			 nbd_aio_pread(h, r->pieces[i], piece, off + i * piece, cb, 0);
		if (c == -1)
			goto fail;
	}
	return;
fail:
	fprintf(stderr, "%s\n", nbd_get_error());
	exit(1);
}

int main(int argc, char **argv)
{
	uint64_t mb = argc > 2 ? atoll(argv[2]) : 512;
	size_t piece = (argc > 3 ? atoll(argv[3]) : 64) * 1024;
	int pieces = argc > 4 ? atoi(argv[4]) : 8, qd = argc > 5 ? atoi(argv[5]) : 8;
	uint64_t req_bytes = piece * pieces, total = mb << 20, size;
	struct nbd_handle *h;
	struct req *reqs;

	if (argc < 2) {
		fprintf(stderr, "usage: nbd-iov URI [MB [PIECE_KB [PIECES [QD]]]]\n");
		return 2;
	}
	h = nbd_create();
	nbd_set_pread_initialize(h, 0);
	if (!h || nbd_connect_uri(h, argv[1])) {
		fprintf(stderr, "%s\n", nbd_get_error());
		return 1;
	}
	size = nbd_get_size(h);
	reqs = calloc(qd, sizeof(*reqs));
	for (int q = 0; q < qd; q++) {
		reqs[q].pieces = calloc(pieces, sizeof(char *));
		for (int i = 0; i < pieces; i++) {
			reqs[q].pieces[i] = aligned_alloc(4096, piece);
			memset(reqs[q].pieces[i], q + i + 1, piece);
		}
		reqs[q].bounce = aligned_alloc(4096, req_bytes);
	}
	printf("%s: %llu MB in requests of %d x %zuK, QD %d\n", argv[1], (unsigned long long)mb,
	       pieces, piece >> 10, qd);
	/* the region written once first: the server allocates it before anything is timed */
	for (uint64_t off = 0; off < total && off + req_bytes <= size; off += req_bytes) {
		issue(h, &reqs[0], off, piece, pieces, 1, 1);
		while (reqs[0].left)
			nbd_poll(h, -1);
	}
	for (int wr = 1; wr >= 0; wr--) {
		for (int bounce = 0; bounce <= 1; bounce++) {
			uint64_t sent = 0, off = 0;
			double t0 = now(), c0 = cpu();

			for (int q = 0; q < qd; q++)
				reqs[q].left = 0;
			while (sent < total) {
				for (int q = 0; q < qd && sent < total; q++) {
					if (reqs[q].left)
						continue;
					/* a read's pieces go out of the bounce buffer once it is in */
					if (!wr && bounce && sent >= (uint64_t)qd * req_bytes)
						for (int i = 0; i < pieces; i++)
							memcpy(reqs[q].pieces[i], reqs[q].bounce + i * piece, piece);
					if (off + req_bytes > size)
						off = 0;
					issue(h, &reqs[q], off, piece, pieces, bounce, wr);
					off += req_bytes;
					sent += req_bytes;
				}
				if (nbd_poll(h, -1) == -1) {
					fprintf(stderr, "%s\n", nbd_get_error());
					return 1;
				}
			}
			for (int q = 0; q < qd; q++)
				while (reqs[q].left)
					nbd_poll(h, -1);
			double t = now() - t0, c = cpu() - c0;

			printf("  %-5s %-34s %8.0f MB/s  %6.1f us CPU/MB\n", wr ? "write" : "read",
			       bounce ? "one command on a bounce buffer" : "one command per piece, in place",
			       mb / t, c * 1e6 / mb);
		}
	}
	nbd_shutdown(h, 0);
	nbd_close(h);
	return 0;
}
