/* SPDX-License-Identifier: MIT */
/* Little-endian fields of on-disk blocks. */
#ifndef UC_LE_H
#define UC_LE_H

#include <endian.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline void uc_put32(uint8_t *b, size_t o, uint32_t v)
{
	v = htole32(v);
	memcpy(b + o, &v, 4);
}

static inline void uc_put64(uint8_t *b, size_t o, uint64_t v)
{
	v = htole64(v);
	memcpy(b + o, &v, 8);
}

static inline uint32_t uc_get32(const uint8_t *b, size_t o)
{
	uint32_t v;

	memcpy(&v, b + o, 4);
	return le32toh(v);
}

static inline uint64_t uc_get64(const uint8_t *b, size_t o)
{
	uint64_t v;

	memcpy(&v, b + o, 8);
	return le64toh(v);
}

#endif
