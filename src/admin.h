/* SPDX-License-Identifier: MIT */
/* The admin socket of a running daemon and the CLI commands that use it. */
#ifndef UC_ADMIN_H
#define UC_ADMIN_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include "graph.h"

struct uc_admin {
	struct uc_graph *g;
	unsigned int id;
	bool zero_copy;
	int fd;			/* listening socket */
	int stop_fd[2];		/* a byte here stops the listener */
	char path[108];		/* sizeof(sun_path) */
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int nr_clients;	/* connections being served */
	char conf[PATH_MAX];	/* the config it was started with */
};

struct uc_admin_client {
	struct uc_admin *admin;
	int fd;
};

/* Listen on /run/ublk-compose/ID.sock (0600). Returns 0 or -errno. */
int uc_admin_start(struct uc_admin *a, struct uc_graph *g, unsigned int id, bool zero_copy);
/* Stop listening; wait (bounded) for requests in flight. Idempotent. */
void uc_admin_stop(struct uc_admin *a);

/*
 * CLI side: send line to device id's daemon, print the reply (stdout, or
 * stderr for a failure), return its exit status (1 if no daemon answers).
 */
int uc_admin_call(unsigned int id, const char *line, bool quiet_missing);
/* CLI: `status [ID...] [--json] [--watch]` */
int uc_cmd_status(int argc, char **argv);
/*
 * CLI: `fail ID NODE`, `replace ID NODE PATH`, `add ID MIRROR PATH`,
 * `ctl ID NODE KEY [VALUE]`, `scrub ID [--repair] [--json]`
 */
int uc_cmd_admin(const char *cmd, int argc, char **argv);

#endif
