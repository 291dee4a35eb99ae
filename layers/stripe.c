/* SPDX-License-Identifier: MIT */
/*
 * stripe: RAID0 over two or more children, md raid0's layout. Chunk k of the
 * volume lives on child k % N at child offset (k / N) * chunk, so the chunks
 * a request touches on one child are contiguous there: one sub per child.
 *
 *   { type = "stripe"; chunk = "64K"; children = ( {...}, {...} ); }
 *   chunk: power of two from 4K to 1M (default 64K)
 * Size: the smallest child rounded down to the chunk, times N.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "layer.h"
#include "stripe.h"

struct stripe {
	unsigned int chunk_shift;
};

void stripe_map(unsigned int chunk_shift, unsigned int nr, uint64_t off, uint64_t len,
		unsigned int c, uint64_t *child_off, uint64_t *child_len)
{
	uint64_t first = off >> chunk_shift, last = (off + len - 1) >> chunk_shift;
	uint64_t mask = (1ULL << chunk_shift) - 1, k, end = off + len;

	*child_len = 0;
	if (!len)
		return;
	k = first + (c + nr - first % nr) % nr;	/* first chunk of child c in range */
	if (k > last)
		return;
	*child_off = ((k / nr) << chunk_shift) + (k == first ? off & mask : 0);
	for (; k <= last; k += nr) {
		uint64_t lo = k << chunk_shift, hi = lo + mask + 1;

		*child_len += (hi < end ? hi : end) - (lo > off ? lo : off);
	}
}

/* the keys parse accepts (ops.keys; ublk-compose.conf(5) documents each) */
static const char *const stripe_keys[] = { "type", "chunk", "children", NULL };

static int stripe_parse(struct uc_node *n, const config_setting_t *cfg)
{
	uint64_t chunk = 64 << 10, smallest = UINT64_MAX;
	struct stripe *st;
	int ret;

	if (uc_conf_check_keys(cfg, stripe_keys, "stripe"))
		return -EINVAL;
	if ((ret = uc_conf_size(cfg, "chunk", &chunk)) < 0)
		return ret;
	if (chunk < 4096 || chunk > (1 << 20) || (chunk & (chunk - 1)))
		return uc_conf_err(config_setting_get_member(cfg, "chunk"),
				   "stripe chunk must be a power of two from 4K to 1M");
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	n->priv = st;
	st->chunk_shift = __builtin_ctzll(chunk);
	if ((ret = uc_node_parse_children(n, cfg, 2)))
		return ret;
	n->can_discard = true;
	for (unsigned int i = 0; i < n->nr_children; i++) {
		if (n->children[i]->size < smallest)
			smallest = n->children[i]->size;
		n->can_discard &= n->children[i]->can_discard;
	}
	if (smallest < chunk) {
		char b[32];

		return uc_conf_err(cfg, "stripe child of %s is smaller than the chunk",
				   uc_size_str(smallest, b, sizeof(b)));
	}
	n->size = (smallest >> st->chunk_shift << st->chunk_shift) * n->nr_children;
	n->io_min = chunk;
	n->io_opt = chunk * n->nr_children;
	return 0;
}

static void stripe_close(struct uc_node *n)
{
	free(n->priv);
	n->priv = NULL;
}

static unsigned int stripe_child_max_iov(const struct uc_node *n, unsigned int max_iov,
					 uint32_t max_io)
{
	const struct stripe *st = n->priv;
	uint64_t row = (uint64_t)n->nr_children << st->chunk_shift;

	/* pieces on one child, plus one split per boundary of the parent's iovecs */
	return max_io / row + 2 + max_iov;
}

static int stripe_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	const struct stripe *st = n->priv;
	unsigned int shift = st->chunk_shift, nr = n->nr_children;
	uint64_t mask = (1ULL << shift) - 1, end = s->off + s->len;

	if (s->op == UC_OP_FLUSH) {
		for (unsigned int c = 0; c < nr; c++)
			uc_child_submit(q, s, c, 0, 0, NULL, 0);
		return 0;
	}
	if (s->off >> shift == (end - 1) >> shift) {
		/* inside one chunk (most small I/O): one child, the parent's iovecs as they are */
		uint64_t k = s->off >> shift;

		uc_child_submit(q, s, k % nr, (k / nr) << shift | (s->off & mask), s->len, s->iov,
				s->nr_iov);
		return 0;
	}
	for (unsigned int c = 0; c < nr; c++) {
		uint64_t coff, clen, k;
		struct uc_sub *cs;

		stripe_map(shift, nr, s->off, s->len, c, &coff, &clen);
		if (!clen)
			continue;
		cs = uc_child_prep(q, s, c, coff, clen);
		/* gather this child's pieces of the parent's buffer, in order */
		for (k = coff >> shift; s->nr_iov; k++) {
			uint64_t lo = ((k * nr + c) << shift), hi = lo + mask + 1;
			int r;

			if (lo < s->off)
				lo = s->off;
			if (hi > end)
				hi = end;
			if (lo >= hi)
				break;
			r = uc_iov_slice(cs->iov, cs->nr_iov, cs->node->max_iov, s->iov, s->nr_iov,
					 lo - s->off, hi - lo);
			assert(r > 0);	/* max_iov comes from stripe_child_max_iov() */
			cs->nr_iov = r;
		}
		uc_child_issue(q, cs);
	}
	return 0;
}

static int stripe_status(const struct uc_node *n, char *buf, size_t len)
{
	const struct stripe *st = n->priv;
	char b[32];

	return snprintf(buf, len, "chunk=%s legs=%u", uc_size_str(1ULL << st->chunk_shift, b, sizeof(b)),
			n->nr_children);
}

const struct uc_layer_ops stripe_layer_ops = {
	.name = "stripe",
	.keys = stripe_keys,
	.help = "chunk=<size, power of two 4K-1M, default 64K> children=(>= 2 layers)",
	.parse = stripe_parse,
	.close = stripe_close,
	.child_max_iov = stripe_child_max_iov,
	.submit = stripe_submit,
	.status = stripe_status,
	.zero_copy = true,
};
