/* SPDX-License-Identifier: MIT */
/*
 * fault: pass-through over one child that fails or delays requests on
 * purpose, for tests and for rehearsing failures (like dm-flakey/dm-delay).
 *
 *   { type = "fault"; errors = "write"; ranges = ( "0+1M", "64M+4K" );
 *     after = 1000; delay = "5ms"; children = ( {...} ); }
 *   errors: "none" (default), "read", "write" (WRITE, WRITE_ZEROES, DISCARD)
 *           or "all" (also READ and FLUSH): those ops end with -EIO instead
 *           of reaching the child
 *   ranges: byte ranges "OFFSET+LENGTH" where errors apply (default: the
 *           whole device); a request overlapping one fails as a whole, like
 *           a disk with a bad sector. A FLUSH has no range: it fails only
 *           when errors cover the whole device.
 *   after:  errors start once this many requests (of any op) went through
 *   delay:  latency added to every request, "200us", "5ms", "1s" (max 10s)
 *   lose_unflushed: a power-cut emulator. Writes stay in memory (a volatile
 *           write cache, wcache.h) until a FLUSH writes them to the child;
 *           `ctl ... crash on` drops what was not flushed and fails every
 *           request from then on, as a disk that lost power. FUA writes are
 *           flushed before they complete; DISCARD/WRITE_ZEROES go straight
 *           to the child (they may survive a crash, like on a real disk).
 *           Needs the copy path: the device does not use zero copy then.
 *   unflushed_max: cache size (default 64M, at least 2 x max_io); a full
 *           cache is written back early, as a disk destages its cache.
 * Size, discard support, io_min and io_opt: the child's.
 *
 * ctl keys (`ublk-compose ctl ID NODE KEY [VALUE]`; no VALUE reads it):
 *   errors, ranges ("0+1M,64M+4K" or "all"), after (restarts the count),
 *   delay, reset (zeroes the counters and restarts the count),
 *   lose_unflushed (on|off; off writes the cache back first), crash (on|off).
 * Settings are atomics read on the queue threads; ranges change under a
 * seqlock so the submit path never blocks.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fault.h"
#include "log.h"

#define RANGES_STR		(FAULT_MAX_RANGES * 44)	/* "OFF+LEN," of 20-digit numbers */
#define FAULT_MAX_DELAY_NS	(10 * NSEC)
#define OPBIT(op)		(1U << (op))
#define ERR_READ		OPBIT(UC_OP_READ)
#define ERR_WRITE		(OPBIT(UC_OP_WRITE) | OPBIT(UC_OP_WRITE_ZEROES) | \
				 OPBIT(UC_OP_DISCARD))
#define ERR_ALL			(ERR_READ | ERR_WRITE | OPBIT(UC_OP_FLUSH))

static const struct {
	const char *name;
	uint32_t mask;
} error_modes[] = {
	{ "none", 0 }, { "read", ERR_READ }, { "write", ERR_WRITE }, { "all", ERR_ALL },
};

struct fault_range {
	uint64_t off, len;
};

/* ---- parsing, shared by the config and ctl; messages go to err ---- */

static int parse_errors(const char *str, uint32_t *mask, char *err, size_t elen)
{
	for (unsigned int i = 0; i < sizeof(error_modes) / sizeof(error_modes[0]); i++)
		if (!strcmp(str, error_modes[i].name)) {
			*mask = error_modes[i].mask;
			return 0;
		}
	snprintf(err, elen, "fault: errors must be \"none\", \"read\", \"write\" or \"all\", not '%.40s'",
		 str);
	return -EINVAL;
}

static const char *errors_name(uint32_t mask)
{
	for (unsigned int i = 0; i < sizeof(error_modes) / sizeof(error_modes[0]); i++)
		if (error_modes[i].mask == mask)
			return error_modes[i].name;
	return "?";
}

/* "5ms", "200us", "1s", "100ns" or "0" */
static int parse_delay(const char *str, uint64_t *ns, char *err, size_t elen)
{
	static const struct {
		const char *unit;
		uint64_t ns;
	} units[] = { { "ns", 1 }, { "us", 1000 }, { "ms", 1000000 }, { "s", NSEC } };
	unsigned long long v;
	char *end;

	if (*str >= '0' && *str <= '9') {
		errno = 0;
		v = strtoull(str, &end, 10);
		if (!errno && !*end && !v) {
			*ns = 0;
			return 0;
		}
		for (unsigned int i = 0; !errno && i < sizeof(units) / sizeof(units[0]); i++) {
			if (strcmp(end, units[i].unit))
				continue;
			if (v > FAULT_MAX_DELAY_NS / units[i].ns) {
				snprintf(err, elen, "fault: delay '%.40s' is over 10s", str);
				return -EINVAL;
			}
			*ns = v * units[i].ns;
			return 0;
		}
	}
	snprintf(err, elen, "fault: bad delay '%.40s' (a number with ns, us, ms or s, e.g. \"5ms\")",
		 str);
	return -EINVAL;
}

/* bytes with the largest unit that keeps them exact: parse_range() reads it back */
static const char *exact_size(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "KMGT";
	int u = -1;

	while (u < 3 && v && !(v & 1023)) {
		v >>= 10;
		u++;
	}
	if (u < 0)
		snprintf(buf, len, "%" PRIu64, v);
	else
		snprintf(buf, len, "%" PRIu64 "%c", v, units[u]);
	return buf;
}

static const char *delay_str(uint64_t ns, char *buf, size_t len)
{
	if (!ns)
		snprintf(buf, len, "0");
	else if (!(ns % NSEC))
		snprintf(buf, len, "%" PRIu64 "s", ns / NSEC);
	else if (!(ns % 1000000))
		snprintf(buf, len, "%" PRIu64 "ms", ns / 1000000);
	else if (!(ns % 1000))
		snprintf(buf, len, "%" PRIu64 "us", ns / 1000);
	else
		snprintf(buf, len, "%" PRIu64 "ns", ns);
	return buf;
}

/* One "OFFSET+LENGTH" (str[0..slen)), inside a device of size bytes. */
static int parse_range(const char *str, size_t slen, uint64_t size, struct fault_range *r,
		       char *err, size_t elen)
{
	char buf[64], off[64], *plus, b[32];
	size_t l;

	while (slen && *str == ' ')
		str++, slen--;
	while (slen && str[slen - 1] == ' ')
		slen--;
	if (slen >= sizeof(buf))
		slen = sizeof(buf) - 1;	/* too long to be valid: fails below */
	memcpy(buf, str, slen);
	buf[slen] = 0;
	/* "OFFSET + LENGTH" is fine too: uc_parse_size() skips leading spaces only */
	plus = strchr(buf, '+');
	l = plus ? (size_t)(plus - buf) : 0;
	while (l && buf[l - 1] == ' ')
		l--;
	memcpy(off, buf, l);
	off[l] = 0;
	if (!plus || uc_parse_size(off, &r->off) || uc_parse_size(plus + 1, &r->len)) {
		snprintf(err, elen, "fault: bad range '%s' (OFFSET+LENGTH, e.g. \"64M+4K\")", buf);
		return -EINVAL;
	}
	if (!r->len) {
		snprintf(err, elen, "fault: range '%s' is empty", buf);
		return -EINVAL;
	}
	if (r->off > size || r->len > size - r->off) {
		snprintf(err, elen, "fault: range '%s' ends beyond the child's %s", buf,
			 exact_size(size, b, sizeof(b)));
		return -EINVAL;
	}
	return 0;
}

/* "all" or comma separated ranges; *nr = 0 means the whole device */
static int parse_ranges(const char *str, uint64_t size, struct fault_range *r, unsigned int *nr,
			char *err, size_t elen)
{
	*nr = 0;
	if (!strcmp(str, "all"))
		return 0;
	for (;;) {
		size_t l = strcspn(str, ",");

		if (*nr == FAULT_MAX_RANGES) {
			snprintf(err, elen, "fault: at most %d ranges", FAULT_MAX_RANGES);
			return -EINVAL;
		}
		if (parse_range(str, l, size, &r[(*nr)++], err, elen))
			return -EINVAL;
		if (!str[l])
			return 0;
		str += l + 1;
	}
}

static void ranges_str(const struct fault_range *r, unsigned int nr, char *buf, size_t len)
{
	size_t used = 0;
	char a[32], b[32];

	if (!nr)
		snprintf(buf, len, "all");
	for (unsigned int i = 0; i < nr && used < len; i++)
		used += snprintf(buf + used, len - used, "%s%s+%s", i ? "," : "",
				 exact_size(r[i].off, a, sizeof(a)),
				 exact_size(r[i].len, b, sizeof(b)));
}

/* Writers hold f->lock; readers on the queue threads never block. */
static void ranges_set(struct fault *f, const struct fault_range *r, unsigned int nr)
{
	uint32_t seq = atomic_load_explicit(&f->seq, memory_order_relaxed);

	atomic_store_explicit(&f->seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (unsigned int i = 0; i < nr; i++) {
		atomic_store_explicit(&f->ranges[i].off, r[i].off, memory_order_relaxed);
		atomic_store_explicit(&f->ranges[i].len, r[i].len, memory_order_relaxed);
	}
	atomic_store_explicit(&f->nr_ranges, nr, memory_order_relaxed);
	atomic_store_explicit(&f->seq, seq + 2, memory_order_release);
}

/* Under f->lock (the only writer then), or before the queues start. */
static unsigned int ranges_get(struct fault *f, struct fault_range *r)
{
	unsigned int nr = atomic_load_explicit(&f->nr_ranges, memory_order_relaxed);

	for (unsigned int i = 0; i < nr; i++) {
		r[i].off = atomic_load_explicit(&f->ranges[i].off, memory_order_relaxed);
		r[i].len = atomic_load_explicit(&f->ranges[i].len, memory_order_relaxed);
	}
	return nr;
}

/* Does s fall in the error ranges? */
static bool ranges_hit(struct fault *f, const struct uc_sub *s)
{
	uint32_t seq;
	bool hit;

	do {
		unsigned int nr;

		seq = atomic_load_explicit(&f->seq, memory_order_acquire);
		nr = atomic_load_explicit(&f->nr_ranges, memory_order_relaxed);
		hit = !nr;
		for (unsigned int i = 0; i < nr && i < FAULT_MAX_RANGES && !hit; i++) {
			uint64_t off, len;

			off = atomic_load_explicit(&f->ranges[i].off, memory_order_relaxed);
			len = atomic_load_explicit(&f->ranges[i].len, memory_order_relaxed);

			hit = s->len && s->off < off + len && off < s->off + s->len;
		}
		atomic_thread_fence(memory_order_acquire);
	} while ((seq & 1) || seq != atomic_load_explicit(&f->seq, memory_order_relaxed));
	return hit;
}

/* ---- config ---- */

/* the keys parse accepts (ops.keys; ublk-compose.conf(5) documents each) */
static const char *const fault_keys[] = { "type", "errors", "ranges", "after", "delay",
					  "lose_unflushed", "unflushed_max", "children", NULL };

static int fault_parse(struct uc_node *n, const config_setting_t *cfg)
{
	struct fault_range r[FAULT_MAX_RANGES];
	const config_setting_t *set;
	const struct uc_node *c;
	unsigned int nr = 0;
	uint32_t mask = 0;
	uint64_t delay = 0;
	long long after = 0;
	bool lose = false;
	const char *str;
	char err[160];
	struct fault *f;
	int ret;

	if (uc_conf_check_keys(cfg, fault_keys, "fault"))
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	pthread_mutex_init(&f->lock, NULL);
	pthread_mutex_init(&f->cache_lock, NULL);
	n->priv = f;
	n->sub_priv_size = sizeof(struct fault_sub);
	n->qstate_size = sizeof(struct fault_q);
	if ((ret = uc_wait_init(&f->epoch, n, "flush epoch", fault_resume)))
		return ret;

	f->cache_size = 64ULL << 20;
	if ((ret = uc_conf_bool(cfg, "lose_unflushed", &lose)) < 0 ||
	    (ret = uc_conf_size(cfg, "unflushed_max", &f->cache_size)) < 0)
		return ret;
	/* any write must fit next to a snapshot being written back */
	if (f->cache_size < 2ULL * n->graph->dev.max_io || f->cache_size > (16ULL << 30))
		return uc_conf_err(config_setting_get_member(cfg, "unflushed_max"),
				   "fault: unflushed_max must be from 2 x max_io to 16G");
	atomic_init(&f->lose, lose);
	/* the cache reads and copies the data; write-back runs on internal tags */
	n->needs_data = lose;
	n->internal_ios = WB_IOS;
	n->internal_buf = WB_RUN;
	if ((ret = uc_conf_string(cfg, "errors", &str)) < 0)
		return ret;
	if (ret && parse_errors(str, &mask, err, sizeof(err)))
		return uc_conf_err(config_setting_get_member(cfg, "errors"), "%s", err);
	if ((ret = uc_conf_int(cfg, "after", &after)) < 0)
		return ret;
	if (after < 0)
		return uc_conf_err(config_setting_get_member(cfg, "after"),
				   "fault: after must be 0 or more requests");
	set = config_setting_get_member(cfg, "delay");
	if (set && config_setting_type(set) != CONFIG_TYPE_STRING)
		return uc_conf_err(set, "fault: delay must be a string like \"5ms\"");
	if (set && parse_delay(config_setting_get_string(set), &delay, err, sizeof(err)))
		return uc_conf_err(set, "%s", err);

	if ((ret = uc_node_parse_children(n, cfg, 1)))
		return ret;
	if (n->nr_children != 1)
		return uc_conf_err(config_setting_get_member(cfg, "children"),
				   "fault: needs exactly one child, has %u", n->nr_children);
	c = n->children[0];
	n->size = c->size;
	n->can_discard = c->can_discard;
	n->io_min = c->io_min;
	n->io_opt = c->io_opt;

	/* ranges need the child's size */
	set = config_setting_get_member(cfg, "ranges");
	if (set && config_setting_type(set) == CONFIG_TYPE_STRING) {
		if (parse_ranges(config_setting_get_string(set), n->size, r, &nr, err, sizeof(err)))
			return uc_conf_err(set, "%s", err);
	} else if (set) {
		unsigned int len = config_setting_length(set);

		if (!config_setting_is_list(set) && !config_setting_is_array(set))
			return uc_conf_err(set, "fault: ranges must be a list ( \"0+1M\", ... )");
		if (!len)
			return uc_conf_err(set, "fault: ranges is empty (leave it out for the whole device)");
		if (len > FAULT_MAX_RANGES)
			return uc_conf_err(set, "fault: at most %d ranges, has %u", FAULT_MAX_RANGES, len);
		for (; nr < len; nr++) {
			const config_setting_t *e = config_setting_get_elem(set, nr);

			/* the list's line: libconfig puts a scalar element on the line after it */
			if (config_setting_type(e) != CONFIG_TYPE_STRING)
				return uc_conf_err(set, "fault: ranges must be strings \"OFFSET+LENGTH\"");
			str = config_setting_get_string(e);
			if (parse_range(str, strlen(str), n->size, &r[nr], err, sizeof(err)))
				return uc_conf_err(set, "%s", err);
		}
	}

	atomic_init(&f->errors, mask);
	atomic_init(&f->after, after);
	atomic_init(&f->delay_ns, delay);
	ranges_set(f, r, nr);
	return 0;
}

static void fault_close(struct uc_node *n)
{
	struct fault *f = n->priv;

	if (!f)
		return;
	pthread_mutex_destroy(&f->lock);
	pthread_mutex_destroy(&f->cache_lock);
	wcache_free(&f->cache);
	uc_wait_free(&f->epoch);
	free(f);
	n->priv = NULL;
}

/* ---- I/O ---- */

/* Count s and decide whether it fails. */
static bool fault_decide(struct fault *f, const struct uc_sub *s)
{
	uint64_t ticket = atomic_fetch_add_explicit(&f->seen, 1, memory_order_relaxed);
	uint32_t mask = atomic_load_explicit(&f->errors, memory_order_relaxed);
	bool fail = s->op < 32 && (mask & OPBIT(s->op)) &&
		    ticket >= atomic_load_explicit(&f->after, memory_order_relaxed) &&
		    ranges_hit(f, s);

	atomic_fetch_add_explicit(fail ? &f->injected : &f->passed, 1, memory_order_relaxed);
	return fail;
}

/* ---- I/O ---- */

static int fault_pass(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	struct fault *f = n->priv;

	if (UC_SUB_PRIV(s, struct fault_sub)->flags & FS_FAIL)
		return -EIO;
	if (atomic_load(&f->lose) || atomic_load(&f->draining))
		return fault_cache_submit(n, f, q, s);
	if (fault_cache_dead(f))
		return -EIO;
	fault_child_pass(q, s);
	return 0;
}

/* Only a read through the cache has anything to do at its end. */
static int fault_end(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	(void)q;
	if (!(UC_SUB_PRIV(s, struct fault_sub)->flags & FS_CACHED))
		return 0;
	return fault_cache_read_end(n->priv, s);
}

static int fault_submit(struct uc_node *n, struct uc_queue *q, struct uc_sub *s)
{
	struct fault *f = n->priv;
	struct fault_sub *fs = UC_SUB_PRIV(s, struct fault_sub);
	uint64_t delay = atomic_load_explicit(&f->delay_ns, memory_order_relaxed);

	if (!(fs->flags & FS_DECIDED))
		fs->flags = FS_DECIDED | (fault_decide(f, s) ? FS_FAIL : 0);
	if (delay) {
		struct __kernel_timespec *ts;
		struct io_uring_sqe *sqe;

		ts = &UC_QSTATE(n, q, struct fault_q)->ts;
		/* SQEs of this queue not submitted yet get the new value too: harmless */
		if ((uint64_t)ts->tv_sec != delay / NSEC || (uint64_t)ts->tv_nsec != delay % NSEC)
			*ts = (struct __kernel_timespec){ .tv_sec = delay / NSEC,
							  .tv_nsec = delay % NSEC };
		sqe = uc_sub_sqe(q, s);
		if (sqe) {
			io_uring_prep_timeout(sqe, ts, 0, 0);
			return 0;	/* fault_complete() goes on */
		}
		/* the ring cannot take it even after submitting: go on undelayed */
	}
	return fault_pass(n, q, s);
}

/* Only our own timeout SQEs complete here. */
static int fault_complete(struct uc_node *n, struct uc_queue *q, struct uc_sub *s, int res)
{
	if (res != -ETIME && res != 0)
		return res < 0 ? res : -EIO;	/* cancelled (ring teardown) or refused */
	return fault_pass(n, q, s);		/* the child holds its own reference on s */
}

/* ---- admin ---- */

static int fault_status(const struct uc_node *n, char *buf, size_t len)
{
	struct fault *f = n->priv;
	struct fault_range r[FAULT_MAX_RANGES];
	char rs[RANGES_STR], d[32];
	unsigned int nr;
	int off;

	pthread_mutex_lock(&f->lock);
	nr = ranges_get(f, r);
	pthread_mutex_unlock(&f->lock);
	ranges_str(r, nr, rs, sizeof(rs));
	off = snprintf(buf, len, "errors=%s ranges=%s after=%" PRIu64 " delay=%s injected=%" PRIu64
		       " passed=%" PRIu64, errors_name(atomic_load(&f->errors)), rs,
		       (uint64_t)atomic_load(&f->after),
		       delay_str(atomic_load(&f->delay_ns), d, sizeof(d)),
		       (uint64_t)atomic_load(&f->injected), (uint64_t)atomic_load(&f->passed));
	if ((atomic_load(&f->lose) || atomic_load(&f->crashed)) && off < (int)len) {
		pthread_mutex_lock(&f->cache_lock);
		off += snprintf(buf + off, len - off, " lose_unflushed unflushed=%" PRIu64
				" flush_epochs=%" PRIu64 "%s", wcache_bytes(&f->cache),
				(uint64_t)atomic_load(&f->epochs_done),
				atomic_load(&f->crashed) ? " CRASHED" : "");
		pthread_mutex_unlock(&f->cache_lock);
	}
	return off;
}

static int parse_count(const char *str, uint64_t *out)
{
	char *end;

	if (*str < '0' || *str > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(str, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

static int fault_ctl_locked(struct uc_node *n, struct fault *f, const char *key,
			    const char *value, char *reply, size_t len)
{
	struct fault_range r[FAULT_MAX_RANGES];
	char err[160], buf[RANGES_STR];
	unsigned int nr;
	uint64_t v;
	uint32_t mask;

	if (!strcmp(key, "errors")) {
		if (value && parse_errors(value, &mask, err, sizeof(err)))
			goto bad;
		if (value)
			atomic_store(&f->errors, mask);
		snprintf(reply, len, "errors=%s", errors_name(atomic_load(&f->errors)));
	} else if (!strcmp(key, "ranges")) {
		if (value && parse_ranges(value, n->size, r, &nr, err, sizeof(err)))
			goto bad;
		if (value)
			ranges_set(f, r, nr);
		nr = ranges_get(f, r);
		ranges_str(r, nr, buf, sizeof(buf));
		snprintf(reply, len, "ranges=%s", buf);
	} else if (!strcmp(key, "after")) {
		if (value && parse_count(value, &v)) {
			snprintf(err, sizeof(err), "fault: after must be a count of requests, not '%.40s'",
				 value);
			goto bad;
		}
		if (value) {
			/* "after N more": the count restarts */
			atomic_store(&f->seen, 0);
			atomic_store(&f->after, v);
		}
		snprintf(reply, len, "after=%" PRIu64, (uint64_t)atomic_load(&f->after));
	} else if (!strcmp(key, "delay")) {
		if (value && parse_delay(value, &v, err, sizeof(err)))
			goto bad;
		if (value)
			atomic_store(&f->delay_ns, v);
		delay_str(atomic_load(&f->delay_ns), buf, sizeof(buf));
		snprintf(reply, len, "delay=%s", buf);
	} else if (!strcmp(key, "reset")) {
		if (value && *value) {
			snprintf(err, sizeof(err), "fault: reset takes no value");
			goto bad;
		}
		atomic_store(&f->seen, 0);
		snprintf(reply, len, "reset: injected=%" PRIu64 " passed=%" PRIu64,
			 (uint64_t)atomic_exchange(&f->injected, 0),
			 (uint64_t)atomic_exchange(&f->passed, 0));
	} else if (!strcmp(key, "lose_unflushed") || !strcmp(key, "crash")) {
		bool on = value && !strcmp(value, "on");

		if (value && !on && strcmp(value, "off")) {
			snprintf(err, sizeof(err), "fault: %s takes on or off, not '%.40s'", key, value);
			goto bad;
		}
		if (!value) {
			pthread_mutex_lock(&f->cache_lock);
			snprintf(reply, len, "lose_unflushed=%s crash=%s unflushed=%llu",
				 atomic_load(&f->lose) ? "on" : "off",
				 atomic_load(&f->crashed) ? "on" : "off",
				 (unsigned long long)wcache_bytes(&f->cache));
			pthread_mutex_unlock(&f->cache_lock);
			return 0;
		}
		return !strcmp(key, "crash") ? fault_cache_crash(n, f, on, reply, len) :
		       on ? fault_cache_on(n, f, reply, len) : fault_cache_off(n, f, reply, len);
	} else {
		snprintf(reply, len, "fault: unknown key '%.40s' (errors, ranges, after, delay, reset, "
			 "lose_unflushed, crash)", key);
		return -EINVAL;
	}
	return 0;
bad:
	snprintf(reply, len, "%s", err);
	return -EINVAL;
}

static int fault_ctl(struct uc_node *n, const char *key, const char *value, char *reply,
		     size_t len)
{
	struct fault *f = n->priv;
	char v[1024];
	size_t l;
	int ret;

	/* the admin command line may leave spaces around the value */
	if (value) {
		value += strspn(value, " \t");
		l = strlen(value);
		while (l && strchr(" \t\n", value[l - 1]))
			l--;
		if (l >= sizeof(v)) {
			snprintf(reply, len, "fault: %.40s value too long", key);
			return -EINVAL;
		}
		memcpy(v, value, l);
		v[l] = 0;
		value = v;
	}
	pthread_mutex_lock(&f->lock);
	ret = fault_ctl_locked(n, f, key, value, reply, len);
	pthread_mutex_unlock(&f->lock);
	return ret;
}

const struct uc_layer_ops fault_layer_ops = {
	.name = "fault",
	.keys = fault_keys,
	.help = "errors=none|read|write|all ranges=(\"OFFSET+LENGTH\", ...) after=<requests> "
		"delay=<\"5ms\", up to 10s> lose_unflushed=<bool> unflushed_max=<size, default 64M> "
		"children=(1 layer)",
	.parse = fault_parse,
	.close = fault_close,
	.submit = fault_submit,
	.complete = fault_complete,
	.end = fault_end,
	.activate = fault_activate,
	.deactivate = fault_deactivate,
	.poll = fault_poll,
	.ctl = fault_ctl,
	.ctl_keys = (const char *const[]){ "errors", "ranges", "after", "delay", "reset",
					   "lose_unflushed", "crash", NULL },
	.status = fault_status,
	.zero_copy = true,
};
