/* SPDX-License-Identifier: MIT */
/* ublk-compose command line. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "admin.h"
#include "dev.h"
#include "graph.h"
#include "log.h"
#include "monitor.h"
#include "stop.h"

static void usage(FILE *out)
{
	fprintf(out,
"usage: ublk-compose -c FILE [-v] [--log FILE]  serve the volume in FILE as /dev/ublkbN until\n"
"                                       stopped (SIGTERM, `stop`); recovers its device if a server died\n"
"       ublk-compose check -c FILE      validate FILE and print the layer tree with sizes\n"
"       ublk-compose list               list ublk devices: id, state, size, daemon pid, name\n"
"       ublk-compose stop [--force] DEV...  stop and delete DEV; refused while it is in use\n"
"       ublk-compose del DEV...|--all   remove a device whose daemon is gone\n"
"       ublk-compose -c FILE --recover ID  serve device ID again after its server died\n"
"       ublk-compose recover DEV        the same, with the config DEV was started with\n"
"       ublk-compose upgrade DEV        hand DEV over to this binary without I/O errors\n"
"       ublk-compose examine PATH...    print the metadata on a mirror leg (like mdadm --examine)\n"
"       ublk-compose status [DEV...] [--json] [--watch]  layer tree, health, resync progress\n"
"       ublk-compose fail DEV NODE      mark a mirror leg faulty\n"
"       ublk-compose replace DEV NODE PATH  swap a mirror leg for a new file, rebuilt online\n"
"       ublk-compose add DEV MIRROR PATH  grow a mirror by a new file leg, rebuilt online\n"
"       ublk-compose scrub DEV [--repair] [--json]  compare every mirror copy, report (fix) mismatches\n"
"       ublk-compose ctl DEV NODE KEY [VALUE]  change a layer setting at runtime (e.g. fault errors)\n"
"       ublk-compose monitor [--json] [--syslog] [--program PROG] [--test] [--oneshot]\n"
"                                       report device events (LegFailed, Degraded, ServerDied...)\n"
"       ublk-compose --help | --version\n"
"DEV: a device id N, /dev/ublkbN, its name (device.name) or /dev/ublk-compose/NAME\n"
"Layers:\n");
	for (unsigned int i = 0; uc_layer_at(i); i++)
		if (uc_layer_at(i)->help)
			fprintf(out, "  %-8s %s\n", uc_layer_at(i)->name, uc_layer_at(i)->help);
}

/* examine PATH...: the metadata a layer keeps on a leg, without starting anything */
static int cmd_examine(int argc, char **argv)
{
	int rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: ublk-compose examine PATH...\n");
		return 2;
	}
	for (int a = 1; a < argc; a++) {
		int ret = -ENOENT;

		if (argc > 2)
			printf("%s:\n", argv[a]);
		for (unsigned int i = 0; ret == -ENOENT && uc_layer_at(i); i++)
			if (uc_layer_at(i)->examine)
				ret = uc_layer_at(i)->examine(argv[a], stdout);
		if (ret == -ENOENT)
			fprintf(stderr, "%s: no ublk-compose metadata\n", argv[a]);
		else if (ret)
			fprintf(stderr, "%s: %s\n", argv[a], strerror(-ret));
		if (ret)
			rc = 1;
	}
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "recover", required_argument, NULL, 'R' },
		{ "ready-fd", required_argument, NULL, 'F' },
		{ "log", required_argument, NULL, 'L' },
		{ NULL, 0, NULL, 0 },
	};
	struct uc_serve_opts sopts = { .recover_id = -1, .ready_fd = -1 };
	const char *conf = NULL, *cmd = "serve", *log = NULL;
	struct uc_graph g;
	int c, ret;

	if (argc > 1 && argv[1][0] != '-') {
		cmd = argv[1];
		argv++;
		argc--;
	}
	if (!strcmp(cmd, "status"))
		return uc_cmd_status(argc, argv);
	if (!strcmp(cmd, "fail") || !strcmp(cmd, "replace") || !strcmp(cmd, "ctl") ||
	    !strcmp(cmd, "scrub") || !strcmp(cmd, "add"))
		return uc_cmd_admin(cmd, argc, argv);
	if (!strcmp(cmd, "examine"))
		return cmd_examine(argc, argv);
	if (!strcmp(cmd, "list"))
		return uc_dev_list();
	if (!strcmp(cmd, "del"))
		return uc_dev_del(argc - 1, argv + 1);
	if (!strcmp(cmd, "stop"))
		return uc_cmd_stop(argc - 1, argv + 1);
	if (!strcmp(cmd, "monitor"))
		return uc_cmd_monitor(argc, argv);
	if (!strcmp(cmd, "recover"))
		return uc_cmd_recover(argc - 1, argv + 1);
	if (!strcmp(cmd, "upgrade"))
		return uc_cmd_upgrade(argc - 1, argv + 1);
	if (strcmp(cmd, "serve") && strcmp(cmd, "check")) {
		fprintf(stderr, "ublk-compose: unknown command '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	while ((c = getopt_long(argc, argv, "c:vhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'v': uc_verbose++; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("ublk-compose %s\n", UC_VERSION); return 0;
		case 'R':
			sopts.recover_id = atoi(optarg);
			if (strncmp(optarg, "/dev/ublkb", 10) == 0)
				sopts.recover_id = atoi(optarg + 10);
			break;
		case 'F': sopts.ready_fd = atoi(optarg); break;
		case 'L': log = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	if (!conf || optind < argc) {
		usage(stderr);
		return 2;
	}
	if (log && (ret = uc_log_open(log))) {
		fprintf(stderr, "ublk-compose: %s: %s\n", log, strerror(-ret));
		return 1;
	}
	if (uc_graph_load(&g, conf)) {
		uc_graph_free(&g);
		return 2;
	}
	if (!strcmp(cmd, "check")) {
		uc_graph_print(&g, stdout);
		uc_graph_free(&g);
		return 0;
	}
	ret = uc_dev_serve(&g, &sopts);
	uc_graph_free(&g);
	return ret;
}
