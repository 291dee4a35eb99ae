/* SPDX-License-Identifier: MIT */
/* `ublk-compose monitor`: report the events of every server as they happen. */
#ifndef UC_MONITOR_H
#define UC_MONITOR_H

/* Returns the exit status (--oneshot: 3 if a device is degraded, failed or has no server). */
int uc_cmd_monitor(int argc, char **argv);

#endif
