/* SPDX-License-Identifier: MIT */
/* The queue engine's internals shared by io.c, pause.c and sync_io.c (not for layers). */
#ifndef UC_IO_INT_H
#define UC_IO_INT_H
#include <stdbool.h>
#include "io.h"

/* Ops that carry data (the others: flush, discard, write zeroes). */
static inline bool uc_op_moves_data(unsigned int op)
{
	return op == UC_OP_READ || op == UC_OP_WRITE;
}
/* Another thread swapped a leaf's fd: register the current ones. */
void uc_queue_files_update(struct uc_queue *q);
/* Register the leaves as fixed files (again, after the tree grew). Returns 0 or -errno. */
int uc_queue_register_files(struct uc_queue *q);
/*
 * uc_graph_pause() from this queue's side. Returns true while the graph
 * may be changing: nothing here may touch it then.
 */
bool uc_queue_pause_poll(struct uc_queue *q);
#endif
