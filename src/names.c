/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "dev.h"
#include "layer.h"
#include "names.h"

bool uc_name_valid(const char *name)
{
	size_t n = strlen(name);
	bool digits = true;

	if (!n || n > UC_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	for (const char *p = name; *p; p++) {
		if (!isascii(*p) || !(isalnum(*p) || *p == '_' || *p == '-' || *p == '.'))
			return false;
		digits &= isdigit(*p) != 0;
	}
	/* a number would read as a device id */
	return !digits;
}

int uc_name_parse(const config_setting_t *d, const char *conf_path, char *name)
{
	const char *v = NULL, *base = strrchr(conf_path, '/');
	int ret = d ? uc_conf_string(d, "name", &v) : 0;
	size_t n;

	if (ret < 0)
		return ret;
	if (v) {
		if (!uc_name_valid(v))
			return uc_conf_err(config_setting_get_member(d, "name"),
					   "device name '%s': 1-%d letters, digits, '_', '-' or '.', not a number",
					   v, UC_NAME_MAX);
		snprintf(name, UC_NAME_MAX + 1, "%s", v);
		return 0;
	}
	base = base ? base + 1 : conf_path;
	n = strlen(base);
	if (n > 5 && !strcmp(base + n - 5, ".conf"))
		n -= 5;
	if (n <= UC_NAME_MAX) {
		memcpy(name, base, n);
		name[n] = 0;
		if (uc_name_valid(name))
			return 0;
	}
	name[0] = 0;
	fprintf(stderr, "%s:1: the file name does not make a device name (1-%d letters, digits, '_', "
		"'-' or '.', not a number): set device.name\n", conf_path, UC_NAME_MAX);
	return -EINVAL;
}

int uc_name_of(unsigned int id, char *name)
{
	char path[64], line[UC_NAME_MAX + 64];
	int ret = -ENOENT;
	FILE *f;

	snprintf(path, sizeof(path), UC_RUN_DIR "/%u.env", id);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (!strncmp(line, "UBLK_COMPOSE_NAME=", 18) && uc_name_valid(line + 18)) {
			memcpy(name, line + 18, strlen(line + 18) + 1);	/* valid: <= UC_NAME_MAX */
			ret = 0;
		}
	}
	fclose(f);
	return ret;
}

int uc_name_find(const char *name, unsigned int *id)
{
	DIR *d = opendir(UC_RUN_DIR);
	struct dirent *e;
	int ret = -ENOENT;

	while (d && ret && (e = readdir(d))) {
		char rec[UC_NAME_MAX + 1], tail[8], node[32];
		unsigned int i;

		if (sscanf(e->d_name, "%u.%7s", &i, tail) != 2 || strcmp(tail, "env") ||
		    uc_name_of(i, rec) || strcmp(rec, name))
			continue;
		/* a record without its device is stale (deleted by another tool, or a crash) */
		snprintf(node, sizeof(node), "/dev/ublkc%u", i);
		if (access(node, F_OK))
			continue;
		*id = i;
		ret = 0;
	}
	if (d)
		closedir(d);
	return ret;
}

int uc_name_resolve(const char *arg, unsigned int *id, bool quiet)
{
	const char *s = arg;
	char *end;
	unsigned long v;

	if (!strncmp(s, "/dev/ublkb", 10))
		s += 10;
	if (isdigit((unsigned char)*s)) {
		v = strtoul(s, &end, 10);
		if (!*end && v <= 1 << 20) {
			*id = v;
			return 0;
		}
	}
	if (!strncmp(arg, UC_NAME_DIR "/", sizeof(UC_NAME_DIR)))
		arg += sizeof(UC_NAME_DIR);
	if (!uc_name_valid(arg)) {
		if (!quiet)
			fprintf(stderr, "ublk-compose: '%s' is neither a device id (N, /dev/ublkbN) nor a "
				"device name\n", arg);
		return -EINVAL;
	}
	if (uc_name_find(arg, id)) {
		if (!quiet)
			fprintf(stderr, "ublk-compose: no device named '%s' (see `ublk-compose list`)\n",
				arg);
		return -ENOENT;
	}
	return 0;
}

int uc_name_link(const char *name, unsigned int id)
{
	char link[PATH_MAX], tmp[PATH_MAX + 8], target[32];

	if (mkdir(UC_NAME_DIR, 0755) && errno != EEXIST)
		return -errno;
	snprintf(link, sizeof(link), UC_NAME_DIR "/%s", name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", link);
	snprintf(target, sizeof(target), "../ublkb%u", id);
	unlink(tmp);
	if (symlink(target, tmp) || rename(tmp, link)) {
		int err = -errno;

		unlink(tmp);
		return err;
	}
	return 0;
}

void uc_name_unlink(const char *name, unsigned int id)
{
	char link[PATH_MAX], have[64], want[32];
	const char *base;
	ssize_t n;

	snprintf(link, sizeof(link), UC_NAME_DIR "/%s", name);
	snprintf(want, sizeof(want), "ublkb%u", id);
	n = readlink(link, have, sizeof(have) - 1);
	if (n < 0)
		return;
	have[n] = 0;
	/* ours is ../ublkbN; udev's too; another device's link stays */
	base = strrchr(have, '/');
	if (!strcmp(base ? base + 1 : have, want))
		unlink(link);
}
