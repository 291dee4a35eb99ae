/* SPDX-License-Identifier: MIT */
#ifndef UC_CRC32C_H
#define UC_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of buf, continuing from crc (0 to start). "123456789" gives 0xe3069283. */
uint32_t uc_crc32c(uint32_t crc, const void *buf, size_t len);
/* Which implementation uc_crc32c uses here ("sse4.2" or "table"): the faster, timed once. */
const char *uc_crc32c_impl(void);
/* Tests: use impl from now on; -1 if this CPU has no such path. Not thread-safe. */
int uc_crc32c_use(const char *impl);

#endif
