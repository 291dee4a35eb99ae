/* SPDX-License-Identifier: MIT */
#ifndef UC_CRC32C_H
#define UC_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of buf, continuing from crc (0 to start). "123456789" gives 0xe3069283. */
uint32_t uc_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
