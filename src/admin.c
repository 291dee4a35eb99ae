/* SPDX-License-Identifier: MIT */
/*
 * The admin socket: a running daemon listens on /run/ublk-compose/ID.sock
 * (0600) and the CLI talks to it (`status`, `fail`, `replace`, `add`,
 * `ctl`, `scrub`). One request line per connection; the reply is text, then a last
 * line "%exit N" with the command's exit status. Each connection gets its
 * own thread so a long scrub does not block `status`.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "admin.h"
#include "disk.h"
#include "dev.h"
#include "event_feed.h"
#include "log.h"
#include "names.h"
#include "stop.h"

#define REPLY_MAX	(256 << 10)

struct reply {
	char *buf;
	size_t len;
};

static void out(struct reply *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void out(struct reply *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (r->len >= REPLY_MAX - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(r->buf + r->len, REPLY_MAX - r->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->len += (size_t)n < REPLY_MAX - r->len ? (size_t)n : REPLY_MAX - 1 - r->len;
}

static const char *const health_names[] = { "clean", "resyncing", "degraded", "failed" };

static int worst_health(const struct uc_node *n)
{
	int h = n->ops->health ? n->ops->health(n) : UC_HEALTH_CLEAN;

	for (unsigned int i = 0; i < n->nr_children; i++) {
		int c = worst_health(n->children[i]);

		if (c > h)
			h = c;
	}
	return h;
}

static void json_str(struct reply *r, const char *s)
{
	out(r, "\"");
	for (; *s; s++)
		if (*s == '"' || *s == '\\')
			out(r, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			out(r, "\\u%04x", *s);
		else
			out(r, "%c", *s);
	out(r, "\"");
}

static void status_node(struct reply *r, const struct uc_node *n, int depth, bool json)
{
	char line[4096] = "", size[32];

	if (n->ops->status)
		n->ops->status(n, line, sizeof(line));
	if (!json) {
		out(r, "%*s%-7s %-28s %8s  %s\n", 2 + depth * 2, "", n->ops->name, n->name,
		    uc_size_str(n->size, size, sizeof(size)), line);
	} else {
		out(r, "{\"name\": ");
		json_str(r, n->name);
		out(r, ", \"type\": \"%s\", \"size\": %" PRIu64 ", \"health\": \"%s\", \"status\": ",
		    n->ops->name, n->size, health_names[worst_health(n)]);
		json_str(r, line);
		if (n->ops->json) {
			line[0] = 0;
			n->ops->json(n, line, sizeof(line));
			out(r, ", %s", line);
		}
		out(r, ", \"children\": [");
	}
	for (unsigned int i = 0; i < n->nr_children; i++) {
		if (json && i)
			out(r, ", ");
		status_node(r, n->children[i], depth + 1, json);
	}
	if (json)
		out(r, "]}");
}

/* The device's data path: nbd legs of a zero-copy volume have their pieces copied (user copy). */
static const char *io_path(const struct uc_admin *a, const struct uc_graph *g)
{
	if (!a->zero_copy)
		return "copy";
	return g->user_copy ? "zero copy + user copy" : "zero copy";
}

static int cmd_status(struct uc_admin *a, struct reply *r, bool json)
{
	struct uc_graph *g = a->g;
	char size[32], sched[32], spin[32] = "";
	int h = worst_health(g->root);

	if (uc_disk_scheduler(UC_SYS_BLOCK, a->id, sched, sizeof(sched)))
		snprintf(sched, sizeof(sched), "unknown");

	if (json) {
		out(r, "{\"id\": %u, \"name\": ", a->id);
		json_str(r, g->dev.name);
		out(r, ", \"device\": \"/dev/ublkb%u\", \"size\": %" PRIu64 ", \"config\": ", a->id,
		    g->size);
		json_str(r, a->conf);
		out(r, ", \"queues\": %u, \"depth\": %u, \"io_path\": \"%s\", \"batch\": %s"
		    ", \"scheduler\": \"%s\", \"spin_us\": %u, \"health\": \"%s\", \"volume\": ",
		    g->dev.queues, g->dev.depth, io_path(a, g), g->running_batch ? "true" : "false",
		    sched, g->dev.spin_us, health_names[h]);
		status_node(r, g->root, 0, true);
		out(r, "}\n");
		return 0;
	}
	if (g->dev.spin_us)
		snprintf(spin, sizeof(spin), ", spin %u us", g->dev.spin_us);
	out(r, "/dev/ublkb%u: %s, %s, %u queue%s x %u, %s I/O%s, scheduler %s%s, config %s\n",
	    a->id, uc_size_str(g->size, size, sizeof(size)), health_names[h], g->dev.queues,
	    g->dev.queues > 1 ? "s" : "", g->dev.depth, io_path(a, g),
	    g->running_batch ? ", batch" : "", sched, spin, a->conf);
	status_node(r, g->root, 0, false);
	return 0;
}

/*
 * The tree now differs from the config it was started with: save it where
 * `recover` and `upgrade` find it, and tell the user.
 */
static void layout_changed(struct uc_admin *a, struct reply *r)
{
	char path[PATH_MAX];
	int ret = uc_run_save_live(a->id, a->g, path, sizeof(path));

	if (ret)
		out(r, "warning: cannot save the new layout (%s): recover and upgrade would use the old "
		    "config\n", strerror(-ret));
	else
		out(r, "the layout is saved in %s (recover and upgrade use it); change %s to match "
		    "before the next start\n", path, a->conf);
}

/* NODE's parent acts on it: `fail NODE`, `replace NODE PATH` */
static int cmd_leg(struct uc_admin *a, struct reply *r, const char *verb, char *args)
{
	char *node = strtok(args, " "), *path = strtok(NULL, " "), msg[1024] = "", value[PATH_MAX + 300];
	struct uc_node *n = node ? uc_graph_find(a->g, node) : NULL;
	int ret;

	if (!node || (!strcmp(verb, "replace") && !path)) {
		out(r, "usage: %s ID NODE%s\n", verb, strcmp(verb, "replace") ? "" : " PATH");
		return 2;
	}
	if (!n) {
		out(r, "no node named '%s' (see `ublk-compose status %u`)\n", node, a->id);
		return 1;
	}
	if (!n->parent || !n->parent->ops->ctl || strcmp(n->parent->ops->name, "mirror")) {
		out(r, "%s is not a leg of a mirror\n", node);
		return 1;
	}
	snprintf(value, sizeof(value), "%s%s%s", node, path ? " " : "", path ? path : "");
	ret = n->parent->ops->ctl(n->parent, verb, value, msg, sizeof(msg));
	out(r, "%s\n", msg);
	if (!ret && path)
		layout_changed(a, r);
	return ret ? 1 : 0;
}

/* `add MIRROR PATH`: a new leg, rebuilt online */
static int cmd_add(struct uc_admin *a, struct reply *r, char *args)
{
	char *node = strtok(args, " "), *path = strtok(NULL, " "), msg[1024] = "";
	struct uc_node *n = node ? uc_graph_find(a->g, node) : NULL;
	int ret;

	if (!node || !path) {
		out(r, "usage: add ID MIRROR PATH\n");
		return 2;
	}
	if (!n) {
		out(r, "no node named '%s' (see `ublk-compose status %u`)\n", node, a->id);
		return 1;
	}
	if (!n->ops->ctl || strcmp(n->ops->name, "mirror")) {
		out(r, "%s is a %s, not a mirror\n", node, n->ops->name);
		return 1;
	}
	ret = n->ops->ctl(n, "add", path, msg, sizeof(msg));
	out(r, "%s\n", msg);
	if (!ret)
		layout_changed(a, r);
	return ret ? 1 : 0;
}

/* Only a layer's documented settings come from the CLI; its other keys are internal. */
static bool ctl_key_public(const struct uc_layer_ops *ops, const char *key)
{
	for (const char *const *k = uc_layer_ctl_keys(ops); *k; k++)
		if (!strcmp(*k, key))
			return true;
	return false;
}

/* `ctl NODE KEY VALUE` changes a setting, `ctl NODE KEY` reads it */
static bool ctl_sets(const char *args)
{
	for (int words = 0; args && *args; words++) {
		args += strspn(args, " ");
		if (!*args)
			break;
		if (words == 2)
			return true;
		args += strcspn(args, " ");
	}
	return false;
}

static int cmd_ctl(struct uc_admin *a, struct reply *r, char *args)
{
	char *node = strtok(args, " "), *key = strtok(NULL, " "), *value = strtok(NULL, ""), msg[1024] = "";
	struct uc_node *n = node ? uc_graph_find(a->g, node) : NULL;
	int ret;

	if (!node || !key) {
		out(r, "usage: ctl ID NODE KEY [VALUE]\n");
		return 2;
	}
	if (!n) {
		out(r, "no node named '%s'\n", node);
		return 1;
	}
	if (!n->ops->ctl || !*uc_layer_ctl_keys(n->ops)) {
		out(r, "%s (%s) takes no runtime settings\n", node, n->ops->name);
		return 1;
	}
	if (!ctl_key_public(n->ops, key)) {
		out(r, "'%s' is not a runtime setting of %s (%s:", key, node, n->ops->name);
		for (const char *const *k = uc_layer_ctl_keys(n->ops); *k; k++)
			out(r, " %s", *k);
		out(r, ")\n");
		return 1;
	}
	ret = n->ops->ctl(n, key, value, msg, sizeof(msg));
	out(r, "%s\n", msg);
	return ret ? 1 : 0;
}

/* Every scrub-capable node (mirrors) checks its copies; the report is theirs. */
static int cmd_scrub(struct uc_admin *a, struct reply *r, char *args)
{
	bool repair = args && strstr(args, "--repair"), json = args && strstr(args, "--json");
	char *msg = malloc(REPLY_MAX / 2);
	int rc = 0, found = 0;

	if (!msg)
		return 1;
	if (json)
		out(r, "{\"scrub\": [");
	for (unsigned int i = 0; i < a->g->nr_nodes; i++) {
		struct uc_node *n = a->g->nodes[i];
		int ret;

		if (!n->ops->ctl || strcmp(n->ops->name, "mirror"))
			continue;
		msg[0] = 0;
		ret = n->ops->ctl(n, repair ? "scrub-repair" : "scrub", json ? "json" : "text", msg,
				  REPLY_MAX / 2);
		if (json)
			out(r, "%s%s", found ? ", " : "", msg);
		else
			out(r, "%s", msg);
		found++;
		if (ret < 0)
			rc = 1;
		else if (ret > 0 && rc == 0)
			rc = 3;	/* mismatches found */
	}
	if (json)
		out(r, "]}\n");
	else if (!found)
		out(r, "nothing to scrub: the volume has no mirror\n");
	free(msg);
	return rc;
}

static void *client_thread(void *arg)
{
	struct uc_admin_client *c = arg;
	struct uc_admin *a = c->admin;
	struct reply r = { malloc(REPLY_MAX), 0 };
	char req[PATH_MAX + 512];
	ssize_t n = 0;
	int rc = 2;

	if (!r.buf)
		goto out;
	/* one line; a client that sends nothing within 5 s is dropped */
	while ((size_t)n < sizeof(req) - 1) {
		struct pollfd p = { c->fd, POLLIN, 0 };
		ssize_t k;

		if (poll(&p, 1, 5000) <= 0)
			break;
		k = read(c->fd, req + n, sizeof(req) - 1 - n);
		if (k <= 0)
			break;
		n += k;
		if (memchr(req, '\n', n))
			break;
	}
	req[n] = 0;
	req[strcspn(req, "\n")] = 0;
	{
		char *args = strchr(req, ' ');

		if (args)
			*args++ = 0;
		/*
		 * Commands walk the tree under the admin lock; the ones that
		 * change a node (the tree, a leg's file, a setting) hold it for
		 * writing, so that no reader sees a node mid-change.
		 */
		bool change = !strcmp(req, "add") || !strcmp(req, "fail") || !strcmp(req, "replace") ||
			      (!strcmp(req, "ctl") && ctl_sets(args));

		if (change)
			pthread_rwlock_wrlock(&a->g->admin_lock);
		else
			pthread_rwlock_rdlock(&a->g->admin_lock);
		if (!strcmp(req, "events") && !uc_feed_subscribe(c->fd, args)) {
			/* the feed has the connection now */
			pthread_rwlock_unlock(&a->g->admin_lock);
			c->fd = -1;
			goto out;
		}
		if (!strcmp(req, "status"))
			rc = cmd_status(a, &r, args && strstr(args, "--json"));
		else if (!strcmp(req, "stop")) {
			char msg[PATH_MAX + 256];

			rc = uc_stop_request(args && strstr(args, "--force"), msg, sizeof(msg)) ? 1 : 0;
			out(&r, "%s\n", msg);
		}
		else if (!strcmp(req, "fail") || !strcmp(req, "replace"))
			rc = cmd_leg(a, &r, req, args ? args : (char[]){ 0 });
		else if (!strcmp(req, "add"))
			rc = cmd_add(a, &r, args ? args : (char[]){ 0 });
		else if (!strcmp(req, "ctl"))
			rc = cmd_ctl(a, &r, args ? args : (char[]){ 0 });
		else if (!strcmp(req, "scrub"))
			rc = cmd_scrub(a, &r, args);
		else
			out(&r, "unknown admin command '%s'\n", req);
		pthread_rwlock_unlock(&a->g->admin_lock);
	}
	out(&r, "%%exit %d\n", rc);
	for (size_t off = 0; off < r.len;) {
		ssize_t k = write(c->fd, r.buf + off, r.len - off);

		if (k <= 0)
			break;
		off += k;
	}
out:
	free(r.buf);
	if (c->fd >= 0)
		close(c->fd);
	pthread_mutex_lock(&a->lock);
	a->nr_clients--;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	free(c);
	return NULL;
}

static void *accept_thread(void *arg)
{
	struct uc_admin *a = arg;

	for (;;) {
		struct pollfd p[2] = { { a->fd, POLLIN, 0 }, { a->stop_fd[0], POLLIN, 0 } };
		struct uc_admin_client *c;
		pthread_t t;
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->admin = a;
		pthread_mutex_lock(&a->lock);
		a->nr_clients++;
		pthread_mutex_unlock(&a->lock);
		if (pthread_create(&t, NULL, client_thread, c)) {
			close(fd);
			free(c);
			pthread_mutex_lock(&a->lock);
			a->nr_clients--;
			pthread_mutex_unlock(&a->lock);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

int uc_admin_start(struct uc_admin *a, struct uc_graph *g, unsigned int id, bool zero_copy)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	sigset_t all, old;
	int ret;

	memset(a, 0, sizeof(*a));
	a->g = g;
	a->id = id;
	a->zero_copy = zero_copy;
	a->fd = -1;
	snprintf(a->conf, sizeof(a->conf), "%s", g->conf_path);
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cond, NULL);
	if (mkdir(UC_RUN_DIR, 0700) && errno != EEXIST)
		return -errno;
	snprintf(a->path, sizeof(a->path), UC_RUN_DIR "/%u.sock", id);
	snprintf(sa.sun_path, sizeof(sa.sun_path), UC_RUN_DIR "/%u.sock", id);
	unlink(a->path);
	a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a->fd < 0 || pipe2(a->stop_fd, O_CLOEXEC))
		return -errno;
	{
		mode_t um = umask(0177);	/* the socket is created 0600 */

		ret = bind(a->fd, (struct sockaddr *)&sa, sizeof(sa));
		umask(um);
	}
	if (ret || listen(a->fd, 16))
		return -errno;
	/* the admin threads take no signals: the main thread waits for them */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&a->thread, NULL, accept_thread, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return -ret;
	a->running = true;
	return 0;
}

void uc_admin_stop(struct uc_admin *a)
{
	struct timespec until;

	if (a->running) {
		if (write(a->stop_fd[1], "x", 1) != 1)
			uc_warn("admin: cannot stop the listener");
		pthread_join(a->thread, NULL);
		a->running = false;
		/* clients in flight (a scrub) get a bounded time to finish */
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 10;
		pthread_mutex_lock(&a->lock);
		while (a->nr_clients && !pthread_cond_timedwait(&a->cond, &a->lock, &until))
			;
		pthread_mutex_unlock(&a->lock);
	}
	if (a->fd >= 0) {
		close(a->fd);
		unlink(a->path);
	}
	a->fd = -1;
	if (a->stop_fd[0] > 0) {
		close(a->stop_fd[0]);
		close(a->stop_fd[1]);
	}
	a->stop_fd[0] = a->stop_fd[1] = 0;
}

/* ---- client side (the CLI) ---- */

int uc_admin_call(unsigned int id, const char *line, bool quiet_missing)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[65536], *tail;
	size_t have = 0;
	int fd, rc = 1;

	snprintf(sa.sun_path, sizeof(sa.sun_path), UC_RUN_DIR "/%u.sock", id);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		if (!quiet_missing)
			fprintf(stderr, "ublk-compose: no daemon serves device %u (%s: %s)\n", id,
				sa.sun_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line) || write(fd, "\n", 1) != 1) {
		fprintf(stderr, "ublk-compose: device %u: %s\n", id, strerror(errno));
		close(fd);
		return 1;
	}
	/* print as it comes, holding back the last partial line (it may be %exit) */
	for (;;) {
		ssize_t k = read(fd, buf + have, sizeof(buf) - 1 - have);
		char *nl;

		if (k <= 0)
			break;
		have += k;
		buf[have] = 0;
		while ((nl = strrchr(buf, '\n')) && have == sizeof(buf) - 1) {
			fwrite(buf, 1, nl + 1 - buf, stdout);
			have -= nl + 1 - buf;
			memmove(buf, nl + 1, have);
			buf[have] = 0;
		}
	}
	close(fd);
	buf[have] = 0;
	tail = strstr(buf, "%exit ");
	if (tail && (tail == buf || tail[-1] == '\n')) {
		rc = atoi(tail + 6);
		*tail = 0;
	} else {
		fprintf(stderr, "ublk-compose: device %u: the daemon's reply was cut short\n", id);
	}
	fputs(buf, rc && rc != 3 ? stderr : stdout);
	fflush(stdout);
	return rc;
}

static int parse_id(const char *s, unsigned int *id)
{
	return uc_name_resolve(s, id, false);
}

/* ids with a socket in the run directory */
static int running_ids(unsigned int *ids, int max)
{
	DIR *d = opendir(UC_RUN_DIR);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)) && n < max) {
		unsigned int id;
		char tail[8];

		if (sscanf(e->d_name, "%u.%7s", &id, tail) == 2 && !strcmp(tail, "sock"))
			ids[n++] = id;
	}
	if (d)
		closedir(d);
	return n;
}

int uc_cmd_status(int argc, char **argv)
{
	bool json = false, watch = false;
	unsigned int ids[256];
	int nr = 0, rc = 0, ret;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--watch"))
			watch = true;
		else if (nr == 256)
			return 2;
		else if ((ret = parse_id(argv[i], &ids[nr])))
			return ret == -ENOENT ? 1 : 2;
		else
			nr++;
	}
	if (!nr && !(nr = running_ids(ids, 256))) {
		fprintf(stderr, "ublk-compose: no running ublk-compose device\n");
		return 1;
	}
	do {
		if (watch)
			printf("\033[H\033[2J");
		rc = 0;
		for (int i = 0; i < nr; i++)
			rc |= uc_admin_call(ids[i], json ? "status --json" : "status", false);
		if (watch)
			sleep(1);
	} while (watch);
	return rc;
}

int uc_cmd_admin(const char *cmd, int argc, char **argv)
{
	char line[PATH_MAX + 512];
	unsigned int id;
	size_t off;
	int ret;

	if (argc < 2) {
		fprintf(stderr, "usage: ublk-compose %s NAME|ID ...\n", cmd);
		return 2;
	}
	if ((ret = parse_id(argv[1], &id)))
		return ret == -ENOENT ? 1 : 2;
	off = snprintf(line, sizeof(line), "%s", cmd);
	for (int i = 2; i < argc && off < sizeof(line); i++) {
		const char *arg = argv[i];
		char abs[PATH_MAX];

		/* a new leg's path is resolved here: the daemon has another cwd */
		if ((!strcmp(cmd, "replace") || !strcmp(cmd, "add")) && i == 3 && arg[0] != '/') {
			if (!getcwd(abs, sizeof(abs) - strlen(arg) - 2))
				return 1;
			strcat(abs, "/");
			strcat(abs, arg);
			arg = abs;
		}
		off += snprintf(line + off, sizeof(line) - off, " %s", arg);
	}
	return uc_admin_call(id, line, false);
}
