/* SPDX-License-Identifier: MIT */
/*
 * SIGHUP (systemctl reload): what a running server takes again. The log
 * file is opened again (logrotate moved it away) and the config file is
 * read again for the settings that can change while the device runs:
 * device.space_warn. Everything else (the layout, the legs, queues, the
 * name) takes effect at the next start. The device is never touched.
 */
#ifndef UC_RELOAD_H
#define UC_RELOAD_H

#include "graph.h"

/*
 * Reopen the log and re-read g's config (g->conf_path), telling systemd
 * (RELOADING=1, then READY=1). A config with an error is reported and
 * changes nothing. Returns 0, or -EINVAL (the config has an error).
 */
int uc_reload(struct uc_graph *g);

#endif
