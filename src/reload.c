/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <time.h>
#include "events.h"
#include "log.h"
#include "notify.h"
#include "reload.h"

int uc_reload(struct uc_graph *g)
{
	struct timespec now;
	struct uc_graph ng;
	int ret;

	/* systemd >= 253 matches the reload by its time */
	clock_gettime(CLOCK_MONOTONIC, &now);
	uc_notifyf("RELOADING=1\nMONOTONIC_USEC=%llu",
		   (unsigned long long)now.tv_sec * 1000000 + now.tv_nsec / 1000);
	if ((ret = uc_log_reopen()))
		uc_warn("SIGHUP: cannot reopen the log: %s", strerror(-ret));
	/* parsing only: no backing file is opened, nothing is created */
	if (uc_graph_load(&ng, g->conf_path)) {
		uc_warn("SIGHUP: %s not applied: it has the problem above; settings unchanged",
			g->conf_path);
		ret = -EINVAL;
	} else {
		g->dev.space_warn = ng.dev.space_warn;
		uc_event_set_space_warn(g->dev.space_warn);
		uc_notice("SIGHUP: re-read %s: space_warn %u%%; other changes take effect at the next "
			  "start", g->conf_path, g->dev.space_warn);
		ret = 0;
	}
	uc_graph_free(&ng);
	uc_notify("READY=1");
	return ret;
}
