/* SPDX-License-Identifier: MIT */
/*
 * Changing a graph under running queues: the admin thread pauses them (a leg
 * added, a tree grown), swaps a leaf's fd, or kicks them; each queue answers
 * from its own loop (uc_queue_poll), so nothing here blocks a queue thread.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "io.h"
#include "io_int.h"
#include "log.h"

void uc_queue_files_update(struct uc_queue *q)
{
	struct uc_graph *g = q->g;
	uint64_t gen = atomic_load(&g->files_gen);
	int fds[g->nr_leaves ? g->nr_leaves : 1], ret;

	if (gen == q->files_gen)
		return;
	for (unsigned int i = 0; i < g->nr_leaves; i++)
		fds[i] = g->leaves[i]->fd;
	ret = io_uring_register_files_update(&q->ring, 0, fds, g->nr_leaves);
	/* this generation is done either way: the waiter hears whether it worked */
	q->files_gen = gen;
	if (ret < 0) {
		uc_err("queue %u: cannot register the new files: %s", q->id, strerror(-ret));
		atomic_store(&g->files_err[q->id], ret);
		atomic_store(&g->files_failed[q->id], gen);
	}
	atomic_store(&g->files_seen[q->id], gen);
}

int uc_queue_register_files(struct uc_queue *q)
{
	struct uc_graph *g = q->g;
	int fds[g->nr_leaves ? g->nr_leaves : 1], ret;

	if (q->nr_files)
		io_uring_unregister_files(&q->ring);
	q->nr_files = 0;
	for (unsigned int i = 0; i < g->nr_leaves; i++)
		fds[i] = g->leaves[i]->fd;
	ret = g->nr_leaves ? io_uring_register_files(&q->ring, fds, g->nr_leaves) : 0;
	if (!ret)
		q->nr_files = g->nr_leaves;
	return ret;
}

bool uc_queue_pause_poll(struct uc_queue *q)
{
	struct uc_graph *g = q->g;
	uint64_t gen = atomic_load(&g->pause_gen);

	if (!q->pausing) {
		if (gen == q->pause_gen)
			return false;
		q->pausing = true;	/* new requests are held from here */
		q->pause_gen = gen;
	}
	if (!q->paused) {
		if (q->nr_busy || q->nr_member)
			return false;	/* draining: layers finish what they hold */
		q->paused = true;
		atomic_store(&g->paused_seen[q->id], q->pause_gen);
	}
	if (atomic_load(&g->resume_gen) < q->pause_gen)
		return true;
	q->pausing = q->paused = false;
	if (q->nr_files != g->nr_leaves && uc_queue_register_files(q))
		uc_err("queue %u: cannot register the new files", q->id);
	q->files_gen = atomic_load(&g->files_gen);
	atomic_store(&g->files_seen[q->id], q->files_gen);
	for (unsigned int t = 0; q->nr_held && t < q->depth; t++)
		if (q->ios[t].held) {
			q->ios[t].held = false;
			q->nr_held--;
			uc_queue_start(q, t, &q->ios[t].held_req);
		}
	return false;
}

void uc_graph_kick(struct uc_graph *g)
{
	pthread_mutex_lock(&g->queues_lock);
	for (unsigned int i = 0; i <= UC_MAX_QUEUES; i++)
		if (g->kick_fd[i] >= 0)
			eventfd_write(g->kick_fd[i], 1);
	pthread_mutex_unlock(&g->queues_lock);
}

void uc_graph_kick_queue(struct uc_graph *g, unsigned int id)
{
	pthread_mutex_lock(&g->queues_lock);
	if (id <= UC_MAX_QUEUES && g->kick_fd[id] >= 0)
		eventfd_write(g->kick_fd[id], 1);
	pthread_mutex_unlock(&g->queues_lock);
}

int uc_graph_files_changed(struct uc_graph *g, int timeout_ms)
{
	uint64_t gen = atomic_fetch_add(&g->files_gen, 1) + 1;

	for (int waited = 0;; waited += 5) {
		bool all = true;
		int err = 0;

		uc_graph_kick(g);
		pthread_mutex_lock(&g->queues_lock);
		for (unsigned int i = 0; i <= UC_MAX_QUEUES; i++) {
			if (g->kick_fd[i] < 0)
				continue;
			if (atomic_load(&g->files_seen[i]) < gen)
				all = false;
			else if (atomic_load(&g->files_failed[i]) >= gen && !err)
				err = atomic_load(&g->files_err[i]);
		}
		pthread_mutex_unlock(&g->queues_lock);
		if (all)
			return err;
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		usleep(5000);
	}
}

int uc_graph_pause(struct uc_graph *g, int timeout_ms)
{
	uint64_t gen = atomic_fetch_add(&g->pause_gen, 1) + 1;

	for (int waited = 0;; waited += 5) {
		bool all = true;

		uc_graph_kick(g);
		pthread_mutex_lock(&g->queues_lock);
		for (unsigned int i = 0; i <= UC_MAX_QUEUES; i++)
			if (g->queues[i] && atomic_load(&g->paused_seen[i]) < gen)
				all = false;
		pthread_mutex_unlock(&g->queues_lock);
		if (all)
			return 0;
		if (waited >= timeout_ms) {
			uc_graph_resume(g);
			return -ETIMEDOUT;
		}
		usleep(5000);
	}
}

void uc_graph_resume(struct uc_graph *g)
{
	atomic_store(&g->resume_gen, atomic_load(&g->pause_gen));
	uc_graph_kick(g);
}
