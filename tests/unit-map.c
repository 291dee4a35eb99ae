/* SPDX-License-Identifier: MIT */
/* stripe_map() and concat_map() against a brute-force walk, sector by sector. */
#include <string.h>
#include "stripe.h"
#include "testlib.h"

#define SECT 512

struct extent { uint64_t lo, hi, bytes; };	/* per child: min/max child byte + count */

static void note(struct extent *e, uint64_t child_byte)
{
	if (!e->bytes || child_byte < e->lo)
		e->lo = child_byte;
	if (!e->bytes || child_byte + SECT > e->hi)
		e->hi = child_byte + SECT;
	e->bytes += SECT;
}

/* Compare one child's mapping with the brute-force extent: same, and contiguous. */
static int same(const struct extent *e, uint64_t off, uint64_t len)
{
	if (!e->bytes)
		return len == 0;
	return len == e->bytes && off == e->lo && e->hi - e->lo == e->bytes;
}

static int test_stripe_random(void)
{
	for (int iter = 0; iter < 20000; iter++) {
		unsigned int shift = 12 + t_rand() % 9, nr = 2 + t_rand() % 7;
		uint64_t chunk = 1ULL << shift, size = chunk * nr * (1 + t_rand() % 64);
		uint64_t len = SECT * (1 + t_rand() % (1024 + (iter & 1 ? 2048 : 0)));
		uint64_t off;
		struct extent ext[8];

		if (len > size)
			len = size;
		off = SECT * (t_rand() % ((size - len) / SECT + 1));
		memset(ext, 0, sizeof(ext));
		for (uint64_t b = off; b < off + len; b += SECT) {
			uint64_t k = b >> shift;	/* md raid0: chunk k on child k % nr */

			note(&ext[k % nr], (k / nr) * chunk + (b & (chunk - 1)));
		}
		for (unsigned int c = 0; c < nr; c++) {
			uint64_t coff = 0, clen;

			stripe_map(shift, nr, off, len, c, &coff, &clen);
			CHECK(same(&ext[c], coff, clen),
			      "shift %u nr %u off %llu len %llu child %u: got %llu+%llu, want %llu+%llu",
			      shift, nr, (unsigned long long)off, (unsigned long long)len, c,
			      (unsigned long long)coff, (unsigned long long)clen,
			      (unsigned long long)ext[c].lo, (unsigned long long)ext[c].bytes);
		}
	}
	return T_PASS;
}

static int test_stripe_edges(void)
{
	uint64_t off, len;

	/* one whole row of 4 x 64K: 64K on every child at child offset 0 */
	for (unsigned int c = 0; c < 4; c++) {
		stripe_map(16, 4, 0, 256 << 10, c, &off, &len);
		CHECK(off == 0 && len == 65536, "child %u: %llu+%llu", c,
		      (unsigned long long)off, (unsigned long long)len);
	}
	/* the last sector of chunk 5 (child 1, row 1) */
	stripe_map(16, 4, 6 * 65536 - 512, 512, 1, &off, &len);
	CHECK(off == 2 * 65536 - 512 && len == 512, "got %llu+%llu", (unsigned long long)off,
	      (unsigned long long)len);
	stripe_map(16, 4, 6 * 65536 - 512, 512, 2, &off, &len);
	CHECK(len == 0, "child 2 must be untouched");
	return T_PASS;
}

static int test_concat_random(void)
{
	for (int iter = 0; iter < 20000; iter++) {
		unsigned int nr = 1 + t_rand() % 6;
		uint64_t starts[8] = { 0 }, len, off;
		struct extent ext[8];

		for (unsigned int c = 0; c < nr; c++)
			starts[c + 1] = starts[c] + SECT * (1 + t_rand() % 2048);
		len = SECT * (1 + t_rand() % 2048);
		if (len > starts[nr])
			len = starts[nr];
		off = SECT * (t_rand() % ((starts[nr] - len) / SECT + 1));
		memset(ext, 0, sizeof(ext));
		for (uint64_t b = off; b < off + len; b += SECT) {
			unsigned int c = 0;

			while (b >= starts[c + 1])
				c++;
			note(&ext[c], b - starts[c]);
		}
		for (unsigned int c = 0; c < nr; c++) {
			uint64_t coff = 0, clen;

			concat_map(starts, c, off, len, &coff, &clen);
			CHECK(same(&ext[c], coff, clen), "nr %u off %llu len %llu child %u", nr,
			      (unsigned long long)off, (unsigned long long)len, c);
		}
	}
	return T_PASS;
}

int main(void)
{
	static const struct t_case cases[] = {
		{ "stripe_random", test_stripe_random },
		{ "stripe_edges", test_stripe_edges },
		{ "concat_random", test_concat_random },
	};

	return t_run(cases, sizeof(cases) / sizeof(cases[0]));
}
