/* SPDX-License-Identifier: MIT */
/*
 * czload: block I/O carrying the bytes of a real file, for the compress vs
 * zram benchmark (fio can fill its buffers only with a short repeated
 * pattern). Block b of the device always receives block b of SRC, so after
 * any write job the device holds SRC again and `verify` checks it.
 *
 * usage: czload MODE DEV SRC [--bs BYTES] [--qd N] [--seconds S]
 *   write      SRC onto DEV from offset 0, once (the device's size or SRC's, whichever is less)
 *   randwrite  for S seconds: random blocks b, SRC's block b onto DEV's block b
 *   read       for S seconds: DEV sequentially, wrapping around
 *   randread   for S seconds: random blocks of DEV
 *   verify     read DEV (as far as SRC goes) and compare with SRC; exit 1 on a difference
 * O_DIRECT, io_uring, QD requests in flight (default 32; --bs default 4096).
 * Writes go straight from a mapping of SRC (no copy). Output: one JSON object
 * shaped like fio's (jobs[0].read/write: iops, bw_bytes, io_bytes,
 * clat_ns.percentile "50.000000"/"99.000000"), so the bench reports read it
 * like fio's.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>

#define LAT_BUCKETS	512	/* latency histogram: 16 per power of two of nanoseconds */

struct load {
	int fd;
	const uint8_t *src;
	uint64_t nr_blocks, next, done, bytes, ops;
	unsigned int bs, qd;
	bool write, rand, seq_once, verify;
	uint8_t **bufs;
	uint64_t *started, *block;
	uint64_t lat[LAT_BUCKETS];
	uint64_t rng, mismatch_at;
	bool mismatch;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static uint64_t rnd(struct load *l)
{
	l->rng ^= l->rng >> 12;
	l->rng ^= l->rng << 25;
	l->rng ^= l->rng >> 27;
	return l->rng * 0x2545F4914F6CDD1DULL;
}

static unsigned int bucket(uint64_t ns)
{
	unsigned int b;

	if (ns < 16)
		return ns;
	b = 63 - __builtin_clzll(ns);	/* ns in [2^b, 2^(b+1)): 16 steps of 2^(b-4) */
	b = (b - 3) * 16 + (unsigned int)((ns >> (b - 4)) & 15);
	return b < LAT_BUCKETS ? b : LAT_BUCKETS - 1;
}

static double bucket_ns(unsigned int b)
{
	unsigned int e;

	if (b < 16)
		return b;
	e = b / 16 + 3;
	return (double)(1ULL << e) + (double)(b % 16 + 0.5) * (double)(1ULL << (e - 4));
}

static double percentile(const struct load *l, double p)
{
	uint64_t total = 0, seen = 0;

	for (unsigned int i = 0; i < LAT_BUCKETS; i++)
		total += l->lat[i];
	for (unsigned int i = 0; i < LAT_BUCKETS; i++) {
		seen += l->lat[i];
		if (total && seen * 100.0 >= p * total)
			return bucket_ns(i);
	}
	return 0;
}

/* The next block to do, or false when the job is through (write, verify). */
static bool next_block(struct load *l, uint64_t *b)
{
	if (l->rand) {
		*b = rnd(l) % l->nr_blocks;
		return true;
	}
	if (l->next >= l->nr_blocks) {
		if (l->seq_once)
			return false;
		l->next = 0;
	}
	*b = l->next++;
	return true;
}

static bool prep(struct load *l, struct io_uring *ring, unsigned int slot)
{
	struct io_uring_sqe *sqe;
	uint64_t b;

	if (!next_block(l, &b))
		return false;
	sqe = io_uring_get_sqe(ring);
	if (l->write)
		io_uring_prep_write(sqe, l->fd, l->src + b * l->bs, l->bs, b * l->bs);
	else
		io_uring_prep_read(sqe, l->fd, l->bufs[slot], l->bs, b * l->bs);
	io_uring_sqe_set_data64(sqe, slot);
	l->block[slot] = b;
	l->started[slot] = now_ns();
	return true;
}

int main(int argc, char **argv)
{
	struct load l = { .bs = 4096, .qd = 32, .rng = 0x9E3779B97F4A7C15ULL };
	double secs = 4, t0, t1, end;
	const char *mode;
	struct io_uring ring;
	unsigned int inflight = 0;
	uint64_t dev_size = 0, src_size;
	struct stat st;
	int sfd;

	if (argc < 4) {
		fprintf(stderr, "usage: czload write|randwrite|read|randread|verify DEV SRC [--bs B] "
			"[--qd N] [--seconds S]\n");
		return 2;
	}
	mode = argv[1];
	for (int i = 4; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--bs"))
			l.bs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--qd"))
			l.qd = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--seconds"))
			secs = atof(argv[i + 1]);
		else {
			fprintf(stderr, "czload: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	l.write = !strcmp(mode, "write") || !strcmp(mode, "randwrite");
	l.rand = !strncmp(mode, "rand", 4);
	l.seq_once = !strcmp(mode, "write") || !strcmp(mode, "verify");
	l.verify = !strcmp(mode, "verify");
	if (!l.write && !l.rand && strcmp(mode, "read") && !l.verify) {
		fprintf(stderr, "czload: unknown mode %s\n", mode);
		return 2;
	}
	if (!l.bs || l.bs % 4096 || !l.qd || l.qd > 1024) {
		fprintf(stderr, "czload: --bs must be a multiple of 4096, --qd 1 to 1024\n");
		return 2;
	}
	l.fd = open(argv[2], (l.write ? O_WRONLY : O_RDONLY) | O_DIRECT);
	sfd = open(argv[3], O_RDONLY);
	if (l.fd < 0 || sfd < 0 || fstat(sfd, &st)) {
		fprintf(stderr, "czload: %s: %s\n", l.fd < 0 ? argv[2] : argv[3], strerror(errno));
		return 1;
	}
	if (ioctl(l.fd, BLKGETSIZE64, &dev_size) && fstat(l.fd, &st) == 0)
		dev_size = st.st_size;
	fstat(sfd, &st);
	src_size = st.st_size;
	l.nr_blocks = (src_size < dev_size ? src_size : dev_size) / l.bs;
	if (!l.nr_blocks) {
		fprintf(stderr, "czload: nothing to do (source %llu bytes, device %llu)\n",
			(unsigned long long)src_size, (unsigned long long)dev_size);
		return 1;
	}
	l.src = mmap(NULL, l.nr_blocks * l.bs, PROT_READ, MAP_SHARED | MAP_POPULATE, sfd, 0);
	l.bufs = calloc(l.qd, sizeof(*l.bufs));
	l.started = calloc(l.qd, sizeof(*l.started));
	l.block = calloc(l.qd, sizeof(*l.block));
	if (l.src == MAP_FAILED || !l.bufs || !l.started || !l.block ||
	    io_uring_queue_init(l.qd, &ring, 0)) {
		fprintf(stderr, "czload: setup failed: %s\n", strerror(errno));
		return 1;
	}
	for (unsigned int i = 0; i < l.qd; i++)
		if (posix_memalign((void **)&l.bufs[i], 4096, l.bs))
			return 1;
	l.rng ^= (uint64_t)now_ns();
	t0 = now();
	end = t0 + secs;
	for (unsigned int i = 0; i < l.qd && prep(&l, &ring, i); i++)
		inflight++;
	while (inflight) {
		struct io_uring_cqe *cqe;
		unsigned int slot;
		int ret;

		io_uring_submit_and_wait(&ring, 1);
		while (!io_uring_peek_cqe(&ring, &cqe)) {
			slot = io_uring_cqe_get_data64(cqe);
			ret = cqe->res;
			io_uring_cqe_seen(&ring, cqe);
			inflight--;
			if (ret != (int)l.bs) {
				fprintf(stderr, "czload: %s of block %llu: %s\n", l.write ? "write" : "read",
					(unsigned long long)l.block[slot],
					ret < 0 ? strerror(-ret) : "short transfer");
				return 1;
			}
			l.lat[bucket(now_ns() - l.started[slot])]++;
			l.ops++;
			l.bytes += l.bs;
			if (l.verify && !l.mismatch &&
			    memcmp(l.bufs[slot], l.src + l.block[slot] * l.bs, l.bs)) {
				l.mismatch = true;
				l.mismatch_at = l.block[slot] * l.bs;
			}
			if ((l.seq_once || now() < end) && prep(&l, &ring, slot))
				inflight++;
		}
	}
	t1 = now();
	{
		const char *dir = l.write ? "write" : "read", *other = l.write ? "read" : "write";
		double s = t1 - t0;

		printf("{\"czload\": {\"mode\": \"%s\", \"bs\": %u, \"qd\": %u, \"blocks\": %llu, "
		       "\"seconds\": %.4f, \"verified\": %s},\n \"jobs\": [{\"jobname\": \"%s\", \"error\": 0, "
		       "\"%s\": {\"iops\": %.1f, \"bw_bytes\": %.0f, \"io_bytes\": %llu, \"clat_ns\": "
		       "{\"percentile\": {\"50.000000\": %.0f, \"99.000000\": %.0f}}}, "
		       "\"%s\": {\"iops\": 0, \"bw_bytes\": 0, \"io_bytes\": 0}}]}\n",
		       mode, l.bs, l.qd, (unsigned long long)l.nr_blocks, s,
		       l.verify ? (l.mismatch ? "false" : "true") : "null", mode, dir, l.ops / s,
		       l.bytes / s, (unsigned long long)l.bytes, percentile(&l, 50), percentile(&l, 99),
		       other);
	}
	if (l.mismatch) {
		fprintf(stderr, "czload: %s differs from %s at byte %llu\n", argv[2], argv[3],
			(unsigned long long)l.mismatch_at);
		return 1;
	}
	return 0;
}
