/* SPDX-License-Identifier: MIT */
/*
 * Print the key tables the config parser checks against, one line per group:
 *   top device volume
 *   device queues depth ...
 *   layer file type path size direct
 * tests/man-drift.sh compares them with ublk-compose.conf(5).
 */
#include <stdio.h>
#include "graph.h"

static void line(const char *what, const char *name, const char *const *keys)
{
	printf("%s%s%s", what, name ? " " : "", name ? name : "");
	for (; keys && *keys; keys++)
		printf(" %s", *keys);
	printf("\n");
}

int main(void)
{
	line("top", NULL, uc_top_keys);
	line("device", NULL, uc_device_keys);
	for (unsigned int i = 0; uc_layer_at(i); i++) {
		if (!uc_layer_at(i)->keys) {
			fprintf(stderr, "layer %s has no keys table\n", uc_layer_at(i)->name);
			return 1;
		}
		line("layer", uc_layer_at(i)->name, uc_layer_at(i)->keys);
	}
	return 0;
}
