/* SPDX-License-Identifier: MIT */
/*
 * concat: linear, like md linear / dm-linear tables: children back to back.
 *
 *   { type = "concat"; children = ( {...}, ... ); }
 * Size: the sum of the children.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "layer.h"
#include "stripe.h"

void concat_map(const uint64_t *starts, unsigned int c, uint64_t off, uint64_t len,
		uint64_t *child_off, uint64_t *child_len)
{
	uint64_t lo = off > starts[c] ? off : starts[c];
	uint64_t hi = off + len < starts[c + 1] ? off + len : starts[c + 1];

	*child_len = hi > lo ? hi - lo : 0;
	*child_off = lo - starts[c];
}

/* the keys parse accepts (ops.keys; ublk-compose.conf(5) documents each) */
static const char *const concat_keys[] = { "type", "children", NULL };

static int concat_parse(struct uc_node *n, const config_setting_t *cfg)
{
	uint64_t *starts;
	int ret;

	if (uc_conf_check_keys(cfg, concat_keys, "concat"))
		return -EINVAL;
	if ((ret = uc_node_parse_children(n, cfg, 1)))
		return ret;
	starts = calloc(n->nr_children + 1, sizeof(*starts));
	if (!starts)
		return -ENOMEM;
	n->priv = starts;
	n->can_discard = true;
	for (unsigned int i = 0; i < n->nr_children; i++) {
		const struct uc_node *c = n->children[i];

		starts[i + 1] = starts[i] + c->size;
		n->can_discard &= c->can_discard;
		if (c->io_min > n->io_min)
			n->io_min = c->io_min;
	}
	n->size = starts[n->nr_children];
	n->io_opt = n->children[0]->io_opt;
	return 0;
}

static void concat_close(struct uc_node *n)
{
	free(n->priv);
	n->priv = NULL;
}

/* First child whose range ends after off (binary search over the starts). */
static unsigned int concat_first(const uint64_t *starts, unsigned int nr, uint64_t off)
{
	unsigned int lo = 0, hi = nr - 1;

	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;

		if (starts[mid + 1] <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int concat_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	const uint64_t *starts = n->priv;

	if (s->op == UC_OP_FLUSH) {
		for (unsigned int c = 0; c < n->nr_children; c++)
			uc_child_submit(q, s, c, 0, 0, NULL, 0);
		return 0;
	}
	for (unsigned int c = concat_first(starts, n->nr_children, s->off);
	     c < n->nr_children && starts[c] < s->off + s->len; c++) {
		uint64_t coff, clen;
		struct uc_sub *cs;
		int r;

		concat_map(starts, c, s->off, s->len, &coff, &clen);
		if (!clen)
			continue;
		cs = uc_child_prep(q, s, c, coff, clen);
		if (s->nr_iov) {
			r = uc_iov_slice(cs->iov, 0, cs->node->max_iov, s->iov, s->nr_iov,
					 starts[c] + coff - s->off, clen);
			assert(r > 0);
			cs->nr_iov = r;
		}
		uc_child_issue(q, cs);
	}
	return 0;
}

static int concat_status(const struct uc_node *n, char *buf, size_t len)
{
	return snprintf(buf, len, "parts=%u", n->nr_children);
}

const struct uc_layer_ops concat_layer_ops = {
	.name = "concat",
	.keys = concat_keys,
	.help = "children=(>= 1 layers), placed back to back",
	.parse = concat_parse,
	.close = concat_close,
	.submit = concat_submit,
	.status = concat_status,
	.zero_copy = true,
};
