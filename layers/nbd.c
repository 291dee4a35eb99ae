/* SPDX-License-Identifier: MIT */
/*
 * nbd: a leaf on an NBD export of another machine (nbdkit, qemu-nbd,
 * nbd-server), through libnbd's asynchronous API driven from each queue's
 * own io_uring (nbd_conn.c): no thread per connection, no blocking call on a
 * queue thread.
 *
 *   { type = "nbd"; uri = "nbd://host:10809/export"; size = "1G";
 *     connections = 1; timeout = "30s"; }
 *   uri:         nbd://, nbds:// (TLS), nbd+unix:///export?socket=PATH,
 *                nbds+unix://; tls-psk-file=, tls-certificates= in the query
 *   size:        bytes to use (default: the export's); the export must hold it
 *   connections: per queue (default 1); more than one connection in all
 *                needs an export that offers multi-conn
 *   timeout:     a request not answered in this time ("30s", "500ms") fails,
 *                and its connection is dropped and made again
 *
 * The connections are made at start, synchronously on the main thread (the
 * first one by parse, which learns the export's size and flags from it): a
 * bad URI, an unreachable server or a too small export is one config error
 * and no device. Later losses are the queue's business: the requests fail
 * with EIO and the connection is made again in the background.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "nbd.h"
#include "log.h"

#define NBD_PORT	"10809"
#define MS		1000000ULL

static const char *const nbd_keys[] = { "type", "uri", "size", "connections", "timeout", NULL };

struct nbd_handle *nbd_leaf_handle(const struct nbd_conn *c)
{
	struct nbd_handle *h = nbd_create();
	char name[128];

	if (!h)
		return NULL;
	/* LIBNBD_DEBUG=1 prints what each connection does under this name */
	snprintf(name, sizeof(name), "%s.%u", c->nl->node->name, c->idx + 1);
	nbd_set_handle_name(h, name);
	/* the config is root's: tls-psk-file= and tls-certificates= may name files */
	nbd_set_uri_allow_local_file(h, true);
	/* reads land in the request's buffer; a failed read fails the request anyway */
	nbd_set_pread_initialize(h, false);
	/* block status at start: an export that reads as zeroes is a new leg (export_is_zero) */
	nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION);
	return h;
}

/* libnbd's last error without the "nbd_call: " it starts with */
static const char *leaf_why(void)
{
	const char *e = nbd_get_error(), *p;

	if (!e)
		return "unknown error";
	p = strstr(e, ": ");
	return !strncmp(e, "nbd_", 4) && p ? p + 2 : e;
}

/* Connect h to uri within timeout_ns (main thread). Returns 0 or -errno, why in err. */
static int connect_sync(struct nbd_handle *h, const char *uri, uint64_t timeout_ns, char *err,
			size_t len)
{
	uint64_t end = nbd_leaf_now_ns() + timeout_ns;

	if (nbd_aio_connect_uri(h, uri) == -1)
		goto fail;
	while (!nbd_aio_is_ready(h)) {
		uint64_t now = nbd_leaf_now_ns();

		if (nbd_aio_is_dead(h) || nbd_aio_is_closed(h))
			goto fail;
		if (now >= end) {
			snprintf(err, len, "no answer within %llu ms", (unsigned long long)(timeout_ns / MS));
			return -ETIMEDOUT;
		}
		if (nbd_poll(h, (end - now + MS - 1) / MS) == -1)
			goto fail;
	}
	return 0;
fail:
	snprintf(err, len, "%s", leaf_why());
	return -(nbd_get_errno() > 0 ? nbd_get_errno() : EIO);
}

/* "30s", "500ms" */
static int parse_timeout(const config_setting_t *cfg, uint64_t *ns)
{
	const config_setting_t *t = config_setting_get_member(cfg, "timeout");
	int ret = uc_conf_duration(cfg, "timeout", "nbd", ns);

	if (ret <= 0)
		return ret;
	if (*ns < 100 * MS)
		return uc_conf_err(t, "nbd: timeout '%.40s' is under 100ms", config_setting_get_string(t));
	return 0;
}

/*
 * The URI for status and messages: a password in the user part (which
 * libnbd does not use) is left out.
 */
static char *uri_public(const char *uri)
{
	const char *auth = strstr(uri, "://"), *end, *at, *colon;
	char *out;

	if (!auth)
		return strdup(uri);
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	at = memchr(auth, '@', end - auth);
	colon = at ? memchr(auth, ':', at - auth) : NULL;
	if (!colon)
		return strdup(uri);
	if (asprintf(&out, "%.*s%s", (int)(colon - uri), uri, at) < 0)
		return NULL;
	return out;
}

/*
 * The URI reconnects use. A host name in a plain nbd:// URI is resolved
 * here, once (main thread): a reconnect then never waits on DNS on a queue
 * thread. With TLS the name stays (the certificate is checked against it).
 */
static char *uri_resolved(const char *uri)
{
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;
	const char *host, *hend, *at;
	char name[256], port[16] = NBD_PORT, addr[INET_ADDRSTRLEN], *out;
	struct in_addr a4;
	struct in6_addr a6;

	if (strncmp(uri, "nbd://", 6))
		return strdup(uri);
	host = uri + 6;
	hend = host + strcspn(host, "/?#");
	at = memchr(host, '@', hend - host);
	if (at)
		host = at + 1;
	if (*host == '[')
		return strdup(uri);	/* an IPv6 address */
	hend = host + strcspn(host, ":/?#");
	if (hend == host || hend - host >= (long)sizeof(name))
		return strdup(uri);
	memcpy(name, host, hend - host);
	name[hend - host] = 0;
	if (inet_pton(AF_INET, name, &a4) == 1 || inet_pton(AF_INET6, name, &a6) == 1)
		return strdup(uri);
	if (*hend == ':')
		snprintf(port, sizeof(port), "%.*s", (int)strcspn(hend + 1, "/?#"), hend + 1);
	if (getaddrinfo(name, port, &hints, &res))
		return strdup(uri);	/* libnbd resolves it (an IPv6-only name) */
	inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, addr, sizeof(addr));
	freeaddrinfo(res);
	if (asprintf(&out, "%.*s%s%s", (int)(host - uri), uri, addr, hend) < 0)
		return NULL;
	return out;
}

int nbd_leaf_check(const struct uc_node *n, struct nbd_handle *h, char *err, size_t len)
{
	const struct nbd_leaf *nl = n->priv;
	int64_t size = nbd_get_size(h), min = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
	char b1[32], b2[32];

	if (size < 0) {
		snprintf(err, len, "%s", leaf_why());
		return -EINVAL;
	}
	if ((uint64_t)size < n->size) {
		snprintf(err, len, "the export is %s, smaller than %s", uc_size_str(size, b1, sizeof(b1)),
			 uc_size_str(n->size, b2, sizeof(b2)));
		return -EINVAL;
	}
	if (nbd_is_read_only(h) == 1) {
		snprintf(err, len, "the export is read-only");
		return -EINVAL;
	}
	if (min > 0 && (uint64_t)min > n->graph->dev.block_size) {
		snprintf(err, len, "the export takes blocks of %" PRId64 " bytes at least: set the device's block_size to 4096",
			 min);
		return -EINVAL;
	}
	/* what the layer was set up with at start must still be there */
	if ((nl->can_flush && nbd_can_flush(h) != 1) || (nl->can_fua && nbd_can_fua(h) != 1) ||
	    (nl->can_zero && nbd_can_zero(h) != 1) || (nl->multi_conn && nbd_can_multi_conn(h) != 1)) {
		snprintf(err, len, "the export no longer offers what it did at start (flush, FUA, write-zeroes, multi-conn)");
		return -EINVAL;
	}
	return 0;
}

/* What the first connection tells about the export. Returns 0 or -EINVAL. */
static int export_probe(struct uc_node *n, const config_setting_t *us, struct nbd_handle *h,
			bool has_size)
{
	struct nbd_leaf *nl = n->priv;
	int64_t size = nbd_get_size(h), max = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
	unsigned int total = nl->nr_queues * nl->nr_conns;
	char err[256];

	if (size < 0)
		return uc_conf_err(us, "%s: %s", nl->shown, leaf_why());
	nl->export_size = size;
	if (!has_size)
		n->size = size;
	n->size &= ~4095ULL;	/* whole 4K blocks, like a file leaf */
	if (!n->size)
		return uc_conf_err(us, "%s: the export is smaller than 4K", nl->shown);
	nl->can_flush = nbd_can_flush(h) == 1;
	nl->can_fua = nbd_can_fua(h) == 1;
	nl->can_zero = nbd_can_zero(h) == 1;
	nl->multi_conn = nbd_can_multi_conn(h) == 1;
	nl->tls = nbd_get_tls_negotiated(h) == 1;
	/* the NBD default when the server names none: 32M of data per command */
	nl->max_cmd = max > 0 ? (uint64_t)max : 32 << 20;
	if (nbd_leaf_check(n, h, err, sizeof(err)))
		return uc_conf_err(us, "%s: %s", nl->shown, err);
	/*
	 * Without multi-conn the server does not promise that one connection
	 * sees what another wrote or flushed (the kernel's NBD client refuses
	 * several connections then, too).
	 */
	if (total > 1 && !nl->multi_conn)
		return uc_conf_err(us, "%s: the export does not offer multi-conn, so it takes one connection only; %u queues x %u connections need it (set the device's queues = 1%s)",
				   nl->shown, nl->nr_queues, nl->nr_conns,
				   nl->nr_conns > 1 ? " and connections = 1" : "");
	n->can_discard = nl->can_zero;
	return 0;
}

static int leaf_parse(struct uc_node *n, const config_setting_t *cfg)
{
	const config_setting_t *us = config_setting_get_member(cfg, "uri");
	struct nbd_leaf *nl;
	struct nbd_handle *h;
	const char *uri = NULL;
	long long conns = 1;
	uint64_t size = 0;
	char err[256];
	int ret, has_size;

	if (uc_conf_check_keys(cfg, nbd_keys, "nbd"))
		return -EINVAL;
	if ((ret = uc_conf_string(cfg, "uri", &uri)) <= 0)
		return ret ? ret : uc_conf_err(cfg, "nbd needs a uri, e.g. \"nbd://host/export\"");
	if (!*uri)
		return uc_conf_err(us, "nbd: uri is empty");
	if ((has_size = uc_conf_size(cfg, "size", &size)) < 0)
		return has_size;
	if (has_size && size < 4096)
		return uc_conf_err(config_setting_get_member(cfg, "size"), "nbd: size must be at least 4K");
	if ((ret = uc_conf_int(cfg, "connections", &conns)) < 0)
		return ret;
	if (conns < 1 || conns > 16)
		return uc_conf_err(config_setting_get_member(cfg, "connections"),
				   "nbd: connections must be 1 to 16");
	nl = calloc(1, sizeof(*nl));
	if (!nl)
		return -ENOMEM;
	n->priv = nl;
	nl->node = n;
	nl->timeout_ns = 30000 * MS;
	if ((ret = parse_timeout(cfg, &nl->timeout_ns)))
		return ret;
	nl->epoch_ns = nl->timeout_ns / NBD_EPOCHS_PER_TIMEOUT;
	nl->nr_queues = n->graph->dev.queues;
	nl->nr_conns = conns;
	nl->uri = strdup(uri);
	nl->shown = uri_public(uri);
	nl->conns = calloc((size_t)nl->nr_queues * nl->nr_conns, sizeof(*nl->conns));
	if (!nl->uri || !nl->shown || !nl->conns)
		return -ENOMEM;
	for (unsigned int i = 0; i < nl->nr_queues * nl->nr_conns; i++) {
		nl->conns[i] = (struct nbd_conn){ .nl = nl, .idx = i, .timer_fd = -1 };
		nl->conns[i].done_tail = &nl->conns[i].done;
	}
	if (!(h = nbd_leaf_handle(&nl->conns[0])))
		return -ENOMEM;
	if (nbd_supports_uri(h) != 1) {
		nbd_close(h);
		return uc_conf_err(us, "nbd: this libnbd cannot parse URIs (built without libxml2)");
	}
	nl->conns[0].h = h;
	n->size = size;
	/* the config fuzzer: everything up to here, but no network (a lookup can take seconds) */
	if (getenv("UC_NBD_NO_CONNECT"))
		return uc_conf_err(us, "%s: not connecting (UC_NBD_NO_CONNECT is set)", nl->shown);
	/* the first connection now: it tells the size the graph above needs */
	if ((ret = connect_sync(h, uri, nl->timeout_ns, err, sizeof(err))))
		return uc_conf_err(us, "%s: cannot connect: %s", nl->shown, err);
	return export_probe(n, us, h, has_size);
}

struct zero_scan {
	uint64_t next;		/* bytes known to read as zeroes from 0 */
	bool data;		/* an extent that is not known to be zero */
};

static int zero_extent(void *arg, const char *ctx, uint64_t off, uint32_t *e, size_t nr, int *error)
{
	struct zero_scan *z = arg;

	(void)error;
	if (strcmp(ctx, LIBNBD_CONTEXT_BASE_ALLOCATION))
		return 0;
	for (size_t i = 0; i + 1 < nr; i += 2) {
		if (!(e[i + 1] & LIBNBD_STATE_ZERO) || off != z->next) {
			z->data = true;
			return 0;
		}
		z->next += e[i];
		off += e[i];
	}
	return 0;
}

/*
 * The export reads as zeroes from 0 to size (block status, main thread):
 * like a file this start created, it holds no data yet, and a new mirror
 * over it needs no initial copy (n->created).
 */
static bool export_is_zero(struct nbd_handle *h, uint64_t size)
{
	struct zero_scan z = { 0 };

	if (nbd_can_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) != 1)
		return false;
	while (z.next < size && !z.data) {
		uint64_t before = z.next, len = size - z.next;

		if (len > (1ULL << 31))
			len = 1ULL << 31;
		if (nbd_block_status(h, len, z.next, (nbd_extent_callback){ .callback = zero_extent,
				     .user_data = &z }, 0) == -1 || z.next == before)
			return false;
	}
	return !z.data && z.next >= size;
}

/* The other connections, on the main thread before any queue runs. */
static int leaf_open(struct uc_node *n)
{
	struct nbd_leaf *nl = n->priv;
	char err[256];
	int ret;

	nl->connect_uri = uri_resolved(nl->uri);
	if (!nl->connect_uri)
		return -ENOMEM;
	n->created = export_is_zero(nl->conns[0].h, n->size);
	for (unsigned int i = 0; i < nl->nr_queues * nl->nr_conns; i++) {
		struct nbd_conn *c = &nl->conns[i];

		/* a parent that hands down several pieces per request (a stripe) */
		if ((ret = nbd_leaf_conn_init(c, n->max_iov > 1)))
			return ret;
		if (c->h)
			continue;
		if (!(c->h = nbd_leaf_handle(c)))
			return -ENOMEM;
		if ((ret = connect_sync(c->h, nl->connect_uri, nl->timeout_ns, err, sizeof(err))) ||
		    (ret = nbd_leaf_check(n, c->h, err, sizeof(err)))) {
			uc_err("%s:%d: %s: connection %u: %s", n->conf_file, n->conf_line, nl->shown,
			       i + 1, err);
			return ret;
		}
	}
	return 0;
}

static void leaf_close(struct uc_node *n)
{
	struct nbd_leaf *nl = n->priv;

	if (!nl)
		return;
	for (unsigned int i = 0; nl->conns && i < nl->nr_queues * nl->nr_conns; i++)
		nbd_leaf_conn_free(&nl->conns[i]);
	free(nl->conns);
	free(nl->uri);
	free(nl->shown);
	free(nl->connect_uri);
	free(nl);
	n->priv = NULL;
}

/* ---- status ---- */

struct nbd_totals {
	unsigned int up, connecting;
	uint64_t inflight, requests, lat_ns, lat_max_ns, reconnects, timeouts, bounced;
	int last_err;
	uint64_t down_ns;
};

static void totals(const struct nbd_leaf *nl, struct nbd_totals *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned int i = 0; i < nl->nr_queues * nl->nr_conns; i++) {
		const struct nbd_conn *c = &nl->conns[i];
		int st = atomic_load(&c->state);
		uint64_t max = atomic_load_explicit(&c->lat_max_ns, memory_order_relaxed);

		t->up += st == CONN_UP;
		t->connecting += st == CONN_CONNECTING;
		t->inflight += atomic_load_explicit(&c->inflight, memory_order_relaxed);
		t->requests += atomic_load_explicit(&c->requests, memory_order_relaxed);
		t->lat_ns += atomic_load_explicit(&c->lat_ns, memory_order_relaxed);
		t->reconnects += atomic_load_explicit(&c->reconnects, memory_order_relaxed);
		t->timeouts += atomic_load_explicit(&c->timeouts, memory_order_relaxed);
		t->bounced += atomic_load_explicit(&c->bounced, memory_order_relaxed);
		if (max > t->lat_max_ns)
			t->lat_max_ns = max;
		if (st != CONN_UP && !t->last_err)
			t->last_err = atomic_load(&c->last_err);
	}
}

static const char *state_name(const struct nbd_leaf *nl, const struct nbd_totals *t)
{
	unsigned int total = nl->nr_queues * nl->nr_conns;

	return t->up == total ? "up" : t->up ? "partly down" : t->connecting ? "connecting" : "down";
}

static int leaf_status(const struct uc_node *n, char *buf, size_t len)
{
	const struct nbd_leaf *nl = n->priv;
	unsigned int total = nl->nr_queues * nl->nr_conns;
	struct nbd_totals t;
	int off;

	totals(nl, &t);
	off = snprintf(buf, len, "%s %s", nl->shown, state_name(nl, &t));
	if (t.up < total && t.last_err)
		off += snprintf(buf + off, len > (size_t)off ? len - off : 0, " (%s)",
				t.last_err == ETIMEDOUT ? "a request timed out" : strerror(t.last_err));
	snprintf(buf + off, len > (size_t)off ? len - off : 0,
		 ", %u/%u connections, %" PRIu64 " in flight, %" PRIu64 " requests, latency avg %" PRIu64
		 "us max %" PRIu64 "us, %" PRIu64 " reconnects, %" PRIu64 " timeouts",
		 t.up, total, t.inflight, t.requests, t.requests ? t.lat_ns / t.requests / 1000 : 0,
		 t.lat_max_ns / 1000, t.reconnects, t.timeouts);
	return 0;
}

static void json_escaped(char *out, size_t len, const char *s)
{
	size_t o = 0;

	for (; *s && o + 7 < len; s++) {
		if (*s == '"' || *s == '\\')
			o += snprintf(out + o, len - o, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			o += snprintf(out + o, len - o, "\\u%04x", *s);
		else
			out[o++] = *s;
	}
	out[o] = 0;
}

static int leaf_json(const struct uc_node *n, char *buf, size_t len)
{
	const struct nbd_leaf *nl = n->priv;
	struct nbd_totals t;
	char uri[1024];

	totals(nl, &t);
	json_escaped(uri, sizeof(uri), nl->shown);
	snprintf(buf, len,
		 "\"uri\": \"%s\", \"state\": \"%s\", \"connections\": %u, \"connections_up\": %u, "
		 "\"last_error\": \"%s\", \"in_flight\": %" PRIu64 ", \"requests\": %" PRIu64
		 ", \"latency_avg_us\": %" PRIu64 ", \"latency_max_us\": %" PRIu64
		 ", \"reconnects\": %" PRIu64 ", \"timeouts\": %" PRIu64 ", \"bounced\": %" PRIu64
		 ", \"export_size\": %" PRIu64
		 ", \"multi_conn\": %s, \"tls\": %s, \"flush\": %s, \"fua\": %s, \"write_zeroes\": %s",
		 uri, state_name(nl, &t), nl->nr_queues * nl->nr_conns, t.up,
		 t.last_err == ETIMEDOUT ? "request timed out" : t.last_err ? strerror(t.last_err) : "",
		 t.inflight, t.requests, t.requests ? t.lat_ns / t.requests / 1000 : 0,
		 t.lat_max_ns / 1000, t.reconnects, t.timeouts, t.bounced, nl->export_size,
		 nl->multi_conn ? "true" : "false", nl->tls ? "true" : "false",
		 nl->can_flush ? "true" : "false", nl->can_fua ? "true" : "false",
		 nl->can_zero ? "true" : "false");
	return 0;
}

/* A lost connection degrades the leg (a mirror above fails it and goes on). */
static int leaf_health(const struct uc_node *n)
{
	const struct nbd_leaf *nl = n->priv;

	return atomic_load(&nl->nr_down) ? UC_HEALTH_DEGRADED : UC_HEALTH_CLEAN;
}

const struct uc_layer_ops nbd_layer_ops = {
	.name = "nbd",
	.keys = nbd_keys,
	.help = "uri=<nbd://host[:port]/export, nbds://, nbd+unix:///export?socket=PATH> size=<size> connections=<per queue, 1> timeout=<\"30s\">",
	.parse = leaf_parse,
	.open = leaf_open,
	.close = leaf_close,
	.submit = nbd_leaf_submit,
	.poll = nbd_leaf_poll,
	.status = leaf_status,
	.json = leaf_json,
	.health = leaf_health,
	/*
	 * libnbd sends and receives with user pointers: no registered kernel
	 * pages. Beside legs that use them the core copies this leg's pieces.
	 */
	.zero_copy = false,
	.user_copy = true,
};
