/* SPDX-License-Identifier: MIT */
/* CRC-32C (Castagnoli) for on-disk checksums: the SSE4.2 instruction or tables, the faster. */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include "crc32c.h"

static uint32_t table[8][256];

static void table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78 : c >> 1;
		table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xff];
}

/* slice-by-8 */
static uint32_t crc_soft(uint32_t crc, const uint8_t *p, size_t len)
{
	for (; len >= 8; p += 8, len -= 8) {
		uint64_t v;

		__builtin_memcpy(&v, p, 8);
		v ^= crc;
		crc = table[7][v & 0xff] ^ table[6][(v >> 8) & 0xff] ^ table[5][(v >> 16) & 0xff] ^
		      table[4][(v >> 24) & 0xff] ^ table[3][(v >> 32) & 0xff] ^
		      table[2][(v >> 40) & 0xff] ^ table[1][(v >> 48) & 0xff] ^ table[0][v >> 56];
	}
	while (len--)
		crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc_hw_serial(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

	for (; len >= 8; p += 8, len -= 8) {
		uint64_t v;

		__builtin_memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
	}
	crc = c;
	while (len--)
		crc = __builtin_ia32_crc32qi(crc, *p++);
	return crc;
}

/*
 * The crc32 instruction takes 3 cycles but can start one every cycle: three
 * streams over adjacent pieces run at once and are joined by "shift": the
 * CRC state after n zero bytes, which is linear in the state, so a table per
 * state byte gives it (built from 32 single-bit states, with the instruction
 * itself). The technique of the kernel's crc32c-intel and of zlib's combine.
 */
#define CRC_LONG	4096
#define CRC_SHORT	256
static uint32_t shift_long[4][256], shift_short[4][256];

__attribute__((target("sse4.2")))
static void shift_init(uint32_t t[4][256], size_t n)
{
	static const uint8_t zeros[CRC_LONG];
	uint32_t bit[32];

	for (int i = 0; i < 32; i++)
		bit[i] = crc_hw_serial(1U << i, zeros, n);
	for (int k = 0; k < 4; k++)
		for (int v = 0; v < 256; v++) {
			uint32_t x = 0;

			for (int j = 0; j < 8; j++)
				if (v >> j & 1)
					x ^= bit[8 * k + j];
			t[k][v] = x;
		}
}

static void shift_tables(void)
{
	shift_init(shift_short, CRC_SHORT);
	shift_init(shift_long, CRC_LONG);
}

static inline uint32_t shift(const uint32_t t[4][256], uint32_t c)
{
	return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t len)
{
	static const struct { size_t n; const uint32_t (*t)[256]; } step[] = {
		{ CRC_LONG, shift_long }, { CRC_SHORT, shift_short },
	};

	for (size_t s = 0; s < 2; s++) {
		const size_t n = step[s].n;

		for (; len >= 3 * n; p += 3 * n, len -= 3 * n) {
			uint64_t c0 = crc, c1 = 0, c2 = 0;

			for (size_t i = 0; i < n; i += 8) {
				uint64_t v0, v1, v2;

				__builtin_memcpy(&v0, p + i, 8);
				__builtin_memcpy(&v1, p + n + i, 8);
				__builtin_memcpy(&v2, p + 2 * n + i, 8);
				c0 = __builtin_ia32_crc32di(c0, v0);
				c1 = __builtin_ia32_crc32di(c1, v1);
				c2 = __builtin_ia32_crc32di(c2, v2);
			}
			crc = shift(step[s].t, (uint32_t)c0) ^ (uint32_t)c1;
			crc = shift(step[s].t, crc) ^ (uint32_t)c2;
		}
	}
	return crc_hw_serial(crc, p, len);
}
#endif

static bool hw;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Once, before any thread computes a CRC (no thread may see half-built
 * tables). Where the instruction exists, time it against the tables on 16K
 * and keep the faster, as the kernel's raid6 and crypto code pick their
 * algorithms: an emulated CPU (QEMU TCG runs crc32 bit by bit, 64 steps per
 * instruction) can make the "hardware" path the slow one.
 */
static void crc_init(void)
{
	table_init();
#if defined(__x86_64__)
	if (__builtin_cpu_supports("sse4.2")) {
		static uint8_t buf[16 << 10];
		double t_hw = 1e9, t_soft = 1e9;
		volatile uint32_t sink = 0;

		shift_tables();
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (uint8_t)(i * 131);
		for (int round = 0; round < 3; round++) {	/* the best of 3: a preempted round does not count */
			double t0 = now(), t1, t2;

			sink ^= crc_hw(0, buf, sizeof(buf));
			t1 = now();
			sink ^= crc_soft(0, buf, sizeof(buf));
			t2 = now();
			t_hw = t1 - t0 < t_hw ? t1 - t0 : t_hw;
			t_soft = t2 - t1 < t_soft ? t2 - t1 : t_soft;
		}
		(void)sink;
		hw = t_hw <= t_soft;
	}
#endif
}

int uc_crc32c_use(const char *impl)
{
	pthread_once(&once, crc_init);
	if (!strcmp(impl, "table")) {
		hw = false;
		return 0;
	}
#if defined(__x86_64__)
	if (!strcmp(impl, "sse4.2") && __builtin_cpu_supports("sse4.2")) {
		hw = true;
		return 0;
	}
#endif
	return -1;
}

const char *uc_crc32c_impl(void)
{
	pthread_once(&once, crc_init);
	return hw ? "sse4.2" : "table";
}

uint32_t uc_crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&once, crc_init);
	crc = ~crc;
#if defined(__x86_64__)
	if (hw)
		return ~crc_hw(crc, buf, len);
#endif
	return ~crc_soft(crc, buf, len);
}
