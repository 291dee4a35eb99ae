/* SPDX-License-Identifier: MIT */
/*
 * Stable device names. A volume is known by a name: device.name, by default
 * the config file's base name without ".conf". While it runs,
 * /dev/ublk-compose/NAME points at its /dev/ublkbN, and every command that
 * takes a device ID also takes NAME (or /dev/ublk-compose/NAME). The name of
 * device ID is recorded in /run/ublk-compose/ID.env, which the udev rule
 * imports too.
 */
#ifndef UC_NAMES_H
#define UC_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <libconfig.h>

#define UC_NAME_MAX	64
#define UC_NAME_DIR	"/dev/ublk-compose"

/* 1-64 of [A-Za-z0-9_.-], not starting with '.' or '-', not a number. */
bool uc_name_valid(const char *name);
/*
 * device.name from d (may be NULL), else the base name of conf_path, into
 * name (UC_NAME_MAX + 1 bytes). Returns 0, or -EINVAL after printing
 * "FILE:LINE: message".
 */
int uc_name_parse(const config_setting_t *d, const char *conf_path, char *name);
/*
 * A device argument: N, /dev/ublkbN, NAME or /dev/ublk-compose/NAME, into
 * *id. Returns 0, or -ENOENT (no running or recorded device has that name)
 * or -EINVAL (neither a number nor a valid name); unless quiet, one line
 * on stderr says which.
 */
int uc_name_resolve(const char *arg, unsigned int *id, bool quiet);
/* The name recorded for device id (ID.env) into name (UC_NAME_MAX + 1). Returns 0 or -errno. */
int uc_name_of(unsigned int id, char *name);
/* The id of the existing device recorded with name. Returns 0 or -ENOENT. */
int uc_name_find(const char *name, unsigned int *id);
/*
 * /dev/ublk-compose/NAME -> ../ublkbID (udev makes it too where the rule
 * is installed; making it here means it exists once the device is ready).
 * Returns 0 or -errno.
 */
int uc_name_link(const char *name, unsigned int id);
/* Remove /dev/ublk-compose/NAME if it points at device id. */
void uc_name_unlink(const char *name, unsigned int id);

#endif
