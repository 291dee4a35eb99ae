/* SPDX-License-Identifier: MIT */
/*
 * One thread delivers events to every subscribed monitor: it sleeps in
 * poll() on an eventfd (uc_event() writes it) and the subscribers' sockets
 * (a monitor that goes away is dropped). Writes never block the thread: a
 * subscriber whose socket buffer is full is dropped (it reconnects).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include "event_feed.h"
#include "events.h"
#include "log.h"

#define MAX_SUBS	16
#define BATCH		64

static const char *const health_names[] = { "clean", "resyncing", "degraded", "failed" };

struct sub {
	int fd;
	uint64_t sent;		/* the last seq it has */
};

static struct {
	struct uc_graph *g;
	unsigned int id;
	char name[UC_NAME_MAX + 1];
	int efd;
	pthread_t thread;
	bool running, stopping, handover;
	pthread_mutex_t lock;	/* subs, stopping */
	struct sub subs[MAX_SUBS];
	unsigned int nr_subs;
	int health;		/* the last one reported */
} feed = { .efd = -1, .lock = PTHREAD_MUTEX_INITIALIZER };

static void feed_wake(void)
{
	uint64_t one = 1;

	if (write(feed.efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return;	/* nothing to do: the thread still sees the ring later */
}

/* The worst health in the tree and the first node that has it (admin_lock held). */
static int graph_health(const struct uc_graph *g, const struct uc_node **worst)
{
	int h = UC_HEALTH_CLEAN;

	*worst = NULL;
	for (unsigned int i = 0; i < g->nr_nodes; i++) {
		const struct uc_node *n = g->nodes[i];
		int nh = n->ops->health ? n->ops->health(n) : UC_HEALTH_CLEAN;

		if (nh > h) {
			h = nh;
			*worst = n;
		}
	}
	return h;
}

static void node_status(const struct uc_node *n, char *buf, size_t len)
{
	buf[0] = 0;
	if (n && n->ops->status)
		n->ops->status(n, buf, len);
}

/* A health change becomes an event (Degraded, Failed) once per worsening. */
static void check_health(void)
{
	const struct uc_node *n;
	char st[256];
	int h;

	pthread_rwlock_rdlock(&feed.g->admin_lock);
	h = graph_health(feed.g, &n);
	if (h > feed.health && h >= UC_HEALTH_DEGRADED) {
		node_status(n, st, sizeof(st));
		uc_event(n, h == UC_HEALTH_FAILED ? UC_EV_FAILED : UC_EV_DEGRADED, "%s", st);
	}
	pthread_rwlock_unlock(&feed.g->admin_lock);
	/* back to clean (or resyncing) re-arms the events for the next failure */
	feed.health = h >= UC_HEALTH_DEGRADED ? h : UC_HEALTH_CLEAN;
}

static bool send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t k = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (k <= 0)
			return false;
		buf += k;
		len -= k;
	}
	return true;
}

static void drop_sub(unsigned int i)
{
	close(feed.subs[i].fd);
	feed.subs[i] = feed.subs[--feed.nr_subs];
}

/* Send every subscriber the events it does not have yet (feed.lock held). */
static void deliver(void)
{
	struct uc_event_rec recs[BATCH];
	uint64_t from = UINT64_MAX, last;
	unsigned int nr;

	for (unsigned int i = 0; i < feed.nr_subs; i++)
		if (feed.subs[i].sent < from)
			from = feed.subs[i].sent;
	if (from == UINT64_MAX)
		return;
	do {
		nr = uc_events_since(from, recs, BATCH, &last);
		for (unsigned int k = 0; k < nr; k++) {
			char line[1024];
			int len;

			recs[k].id = feed.id;
			snprintf(recs[k].name, sizeof(recs[k].name), "%s", feed.name);
			len = uc_event_encode(&recs[k], line, sizeof(line) - 1);
			if (len < 0)
				continue;
			line[len++] = '\n';
			for (unsigned int i = 0; i < feed.nr_subs; i++) {
				if (feed.subs[i].sent >= recs[k].seq)
					continue;
				if (!send_all(feed.subs[i].fd, line, len)) {
					drop_sub(i--);
					continue;
				}
				feed.subs[i].sent = recs[k].seq;
			}
			from = recs[k].seq;
		}
	} while (nr == BATCH);
}

/* A subscriber that sent something or hung up is done. */
static void reap_subs(const struct pollfd *p, unsigned int nr)
{
	for (unsigned int k = 0; k < nr; k++) {
		if (!p[k].revents)
			continue;
		for (unsigned int i = 0; i < feed.nr_subs; i++)
			if (feed.subs[i].fd == p[k].fd) {
				drop_sub(i);
				break;
			}
	}
}

static void *feed_thread(void *arg)
{
	uint64_t seen = 0;

	(void)arg;
	check_health();	/* a volume that starts degraded says so at once */
	for (;;) {
		struct pollfd p[MAX_SUBS + 1] = { { feed.efd, POLLIN, 0 } };
		struct uc_event_rec dummy;
		unsigned int nr;
		uint64_t v, last;
		bool stop;

		pthread_mutex_lock(&feed.lock);
		nr = feed.nr_subs;
		for (unsigned int i = 0; i < nr; i++)
			p[i + 1] = (struct pollfd){ feed.subs[i].fd, POLLIN, 0 };
		stop = feed.stopping;
		pthread_mutex_unlock(&feed.lock);
		uc_events_since(UINT64_MAX - 1, &dummy, 0, &last);
		if (last == seen && !stop && poll(p, nr + 1, -1) < 0 && errno != EINTR)
			break;
		if (p[0].revents && read(feed.efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
			break;
		uc_events_since(UINT64_MAX - 1, &dummy, 0, &last);
		if (last != seen) {
			seen = last;
			check_health();	/* may record Degraded/Failed: the next turn sends them */
		}
		pthread_mutex_lock(&feed.lock);
		reap_subs(p + 1, nr);
		deliver();
		uc_events_since(UINT64_MAX - 1, &dummy, 0, &last);
		stop = feed.stopping && last == seen;
		if (stop) {
			while (feed.nr_subs) {
				if (feed.handover)
					send_all(feed.subs[0].fd, "{\"bye\": \"handover\"}\n", 20);
				drop_sub(0);
			}
		}
		pthread_mutex_unlock(&feed.lock);
		if (stop)
			break;
	}
	return NULL;
}

int uc_feed_start(struct uc_graph *g, unsigned int id, const char *name)
{
	sigset_t all, old;
	int ret;

	feed.g = g;
	feed.id = id;
	feed.stopping = feed.handover = false;	/* a feed stopped before (tests) starts afresh */
	feed.nr_subs = 0;
	snprintf(feed.name, sizeof(feed.name), "%s", name);
	feed.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (feed.efd < 0)
		return -errno;
	feed.health = UC_HEALTH_CLEAN;
	uc_events_set_wake(feed_wake);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&feed.thread, NULL, feed_thread, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		uc_events_set_wake(NULL);
		close(feed.efd);
		feed.efd = -1;
		return -ret;
	}
	feed.running = true;
	return 0;
}

int uc_feed_subscribe(int fd, const char *args)
{
	struct uc_event_rec dummy;
	const struct uc_node *n;
	char st[256], line[1024];
	uint64_t last;
	int h, len, ret = 0;

	if (!feed.running)
		return -ENOTCONN;
	uc_events_since(UINT64_MAX - 1, &dummy, 0, &last);
	h = graph_health(feed.g, &n);
	node_status(n, st, sizeof(st));
	len = snprintf(line, sizeof(line), "{\"state\": \"%s\", \"id\": %u, \"name\": \"%s\", "
		       "\"pid\": %d, "
		       "\"node\": \"%s\", \"seq\": %" PRIu64 ", \"detail\": \"", health_names[h],
		       feed.id, feed.name, (int)getpid(), n ? n->name : "", last);
	/* status lines are plain text: keep them to printable ASCII without quotes */
	for (const char *s = st; *s && len < (int)sizeof(line) - 4; s++)
		line[len++] = (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) ? ' ' : *s;
	len += snprintf(line + len, sizeof(line) - len, "\"}\n");
	pthread_mutex_lock(&feed.lock);
	if (feed.stopping || feed.nr_subs == MAX_SUBS) {
		ret = feed.stopping ? -ESHUTDOWN : -EUSERS;
	} else if (!send_all(fd, line, len)) {
		ret = -EPIPE;
	} else {
		feed.subs[feed.nr_subs++] = (struct sub){ fd, args && strstr(args, "replay") ? 0 : last };
	}
	pthread_mutex_unlock(&feed.lock);
	if (!ret)
		feed_wake();
	return ret;
}

void uc_feed_stop(bool handover)
{
	if (!feed.running)
		return;
	pthread_mutex_lock(&feed.lock);
	feed.stopping = true;
	feed.handover = handover;
	pthread_mutex_unlock(&feed.lock);
	feed_wake();
	pthread_join(feed.thread, NULL);
	uc_events_set_wake(NULL);
	close(feed.efd);
	feed.efd = -1;
	feed.running = false;
}
