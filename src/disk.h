/* SPDX-License-Identifier: MIT */
#ifndef UC_DISK_H
#define UC_DISK_H
/*
 * Block-layer settings of the ublk disk (/sys/block/ublkbN/queue). The
 * kernel puts an I/O scheduler (mq-deadline) in front of a disk with one
 * hardware queue, as every ublk device with `queues = 1` is: a request
 * then goes through the elevator and, for most dispatches, a kblockd
 * worker on its way to the daemon. Loop opts out of that by default
 * (BLK_MQ_F_NO_SCHED_BY_DEFAULT); ublk_drv does not, so the daemon does.
 */
#include <stddef.h>

#define UC_SYS_BLOCK "/sys/block"

/* device.scheduler values: "kernel" leaves the kernel's (or a udev rule's) choice */
extern const char *const uc_schedulers[];

/* Select NAME for ublkbID under SYS_BLOCK. Returns 0 or -errno. */
int uc_disk_set_scheduler(const char *sys_block, unsigned int id, const char *name);

/* The scheduler in use (the bracketed one). Returns 0 or -errno. */
int uc_disk_scheduler(const char *sys_block, unsigned int id, char *buf, size_t len);

/* A new device: apply device.scheduler, warn (one line) when the kernel refuses it. */
void uc_disk_apply_scheduler(unsigned int id, const char *name);

#endif
