/* SPDX-License-Identifier: MIT */
/* Pure address mapping of the stripe and concat layers, shared with the unit tests. */
#ifndef UC_STRIPE_H
#define UC_STRIPE_H

#include <stdint.h>

/*
 * The part of [off, off+len) of a stripe (chunk 1 << chunk_shift, nr children)
 * that lives on child c: *child_len bytes (0: none) from *child_off.
 */
void stripe_map(unsigned int chunk_shift, unsigned int nr, uint64_t off, uint64_t len,
		unsigned int c, uint64_t *child_off, uint64_t *child_len);

/*
 * The part of [off, off+len) of a concat whose child c starts at starts[c]
 * (starts[nr] = total size) that lives on child c.
 */
void concat_map(const uint64_t *starts, unsigned int c, uint64_t off, uint64_t len,
		uint64_t *child_off, uint64_t *child_len);

#endif
