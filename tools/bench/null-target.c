/* SPDX-License-Identifier: MIT */
/*
 * ucbench-null: the do-nothing ublk target of tools/bench. It is ublk-compose
 * (the same control plane, queue threads, BATCH_IO and zero-copy
 * negotiation) with one more layer, `null`, a leaf that completes every
 * request at once without reading or writing anything. What a volume over
 * it costs is the ublk round trip alone; the bench compares file and stripe
 * volumes with it in the same VM run.
 *
 * usage: ucbench-null -c CONF [-v]      e.g. CONF:
 *   device = { queues = 1; depth = 128; max_io = "1M"; block_size = 4096; };
 *   volume = { type = "null"; size = "1G"; };
 * Runs until SIGINT/SIGTERM like `ublk-compose -c CONF` (prints /dev/ublkbN).
 * Not installed: a benchmark reference, not a storage layer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "dev.h"
#include "graph.h"
#include "log.h"

static const char *const null_keys[] = { "type", "size", NULL };

static int null_parse(struct uc_node *n, const config_setting_t *cfg)
{
	uint64_t size = 0;
	int ret;

	if (uc_conf_check_keys(cfg, null_keys, "null"))
		return -EINVAL;
	if ((ret = uc_conf_size(cfg, "size", &size)) <= 0)
		return ret ? ret : uc_conf_err(cfg, "null needs a size");
	if (size < 4096)
		return uc_conf_err(config_setting_get_member(cfg, "size"), "size must be at least 4K");
	n->size = size;
	n->can_discard = true;
	return 0;
}

/* Every op succeeds at once: nothing is queued, the core ends the request. */
static int null_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	(void)n;
	(void)q;
	(void)s;
	return 0;
}

static int null_status(const struct uc_node *n, char *buf, size_t len)
{
	(void)n;
	return snprintf(buf, len, "completes every request at once");
}

static const struct uc_layer_ops null_layer_ops = {
	.name = "null",
	.help = "size=<size>  (bench only: completes every request at once)",
	.keys = null_keys,
	.parse = null_parse,
	.submit = null_submit,
	.status = null_status,
	.zero_copy = true,
};

int main(int argc, char **argv)
{
	struct uc_serve_opts opts = { .recover_id = -1, .ready_fd = -1 };
	const char *conf = NULL;
	struct uc_graph g;
	int c, ret;

	while ((c = getopt(argc, argv, "c:v")) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'v': uc_verbose++; break;
		default: conf = NULL; optind = argc + 1; break;
		}
	}
	if (!conf || optind != argc) {
		fprintf(stderr, "usage: ucbench-null -c CONF [-v]\n");
		return 2;
	}
	if (uc_layer_add(&null_layer_ops)) {
		fprintf(stderr, "ucbench-null: no room for the null layer\n");
		return 1;
	}
	if (uc_graph_load(&g, conf)) {
		uc_graph_free(&g);
		return 2;
	}
	ret = uc_dev_serve(&g, &opts);
	uc_graph_free(&g);
	return ret;
}
