/* SPDX-License-Identifier: MIT */
/* libconfig helpers: typed getters that report FILE:LINE on bad input. */
#include <errno.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "layer.h"

int uc_conf_err(const config_setting_t *s, const char *fmt, ...)
{
	const char *file = s ? config_setting_source_file(s) : NULL;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s:%u: %s\n", file ? file : "config",
		s ? config_setting_source_line(s) : 0, msg);
	return -EINVAL;
}

int uc_conf_check_keys(const config_setting_t *g, const char *const *keys, const char *what)
{
	int n = config_setting_length(g);
	bool layer = config_setting_get_member(g, "type");

	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(g, i);
		const char *name = config_setting_name(e);
		const char *const *k;

		if (layer && name && !strcmp(name, "name"))
			continue;	/* every layer may have a name (src/graph.c) */
		for (k = keys; *k; k++)
			if (name && !strcmp(name, *k))
				break;
		if (!*k)
			return uc_conf_err(e, "unknown key '%s' in %s", name ? name : "?", what);
	}
	return 0;
}

int uc_parse_size(const char *str, uint64_t *out)
{
	char *end;
	unsigned long long v;
	int shift = 0;

	while (*str == ' ')
		str++;
	if (*str < '0' || *str > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(str, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (shift && (*end == 'b' || *end == 'B'))
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

const char *uc_size_str(uint64_t b, char *buf, size_t len)
{
	static const char units[] = "KMGTP";
	int u = -1;
	double v = (double)b;

	if (b < 1024) {
		snprintf(buf, len, "%" PRIu64, b);
		return buf;
	}
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (v == (uint64_t)v)
		snprintf(buf, len, "%" PRIu64 "%c", (uint64_t)v, units[u]);
	else
		snprintf(buf, len, "%.1f%c", v, units[u]);
	return buf;
}

int uc_conf_size(const config_setting_t *g, const char *key, uint64_t *out)
{
	const config_setting_t *s = config_setting_get_member(g, key);

	if (!s)
		return 0;
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: {
		long long v = config_setting_get_int64(s);

		if (v < 0)
			return uc_conf_err(s, "%s must not be negative", key);
		*out = v;
		return 1;
	}
	case CONFIG_TYPE_STRING:
		if (uc_parse_size(config_setting_get_string(s), out))
			return uc_conf_err(s, "%s: bad size '%s' (bytes, or a number with K/M/G/T)",
					   key, config_setting_get_string(s));
		return 1;
	default:
		return uc_conf_err(s, "%s must be a size (bytes, or a string like \"64K\")", key);
	}
}

int uc_conf_duration(const config_setting_t *g, const char *key, const char *what, uint64_t *ns)
{
	const config_setting_t *t = config_setting_get_member(g, key);
	const uint64_t ms = 1000000;
	const char *str;
	unsigned long long v;
	char *end;

	if (!t)
		return 0;
	if (config_setting_type(t) != CONFIG_TYPE_STRING)
		return uc_conf_err(t, "%s: %s must be a string like \"30s\" or \"500ms\"", what, key);
	str = config_setting_get_string(t);
	errno = 0;
	v = strtoull(str, &end, 10);
	if (*str < '0' || *str > '9' || errno || (strcmp(end, "s") && strcmp(end, "ms")))
		return uc_conf_err(t, "%s: bad %s '%.40s' (a number with s or ms, e.g. \"30s\")",
				   what, key, str);
	if (v > 3600000 || (!strcmp(end, "s") && v > 3600))
		return uc_conf_err(t, "%s: %s '%.40s' is over 1 hour", what, key, str);
	*ns = v * (strcmp(end, "s") ? ms : 1000 * ms);
	return 1;
}

int uc_conf_bool(const config_setting_t *g, const char *key, bool *out)
{
	const config_setting_t *s = config_setting_get_member(g, key);

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return uc_conf_err(s, "%s must be true or false", key);
	*out = config_setting_get_bool(s);
	return 1;
}

int uc_conf_int(const config_setting_t *g, const char *key, long long *out)
{
	const config_setting_t *s = config_setting_get_member(g, key);

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
		return uc_conf_err(s, "%s must be an integer", key);
	*out = config_setting_get_int64(s);
	return 1;
}

int uc_conf_int_range(const config_setting_t *g, const char *key, long long lo, long long hi,
		      long long *out)
{
	long long v = 0;
	int ret = uc_conf_int(g, key, &v);

	if (ret <= 0)
		return ret;
	if (v < lo || v > hi)
		return uc_conf_err(config_setting_get_member(g, key), "%s must be %lld to %lld", key,
				   lo, hi);
	*out = v;
	return 1;
}

int uc_conf_string(const config_setting_t *g, const char *key, const char **out)
{
	const config_setting_t *s = config_setting_get_member(g, key);

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return uc_conf_err(s, "%s must be a string", key);
	*out = config_setting_get_string(s);
	if (!**out)
		return uc_conf_err(s, "%s must not be empty", key);
	return 1;
}
