/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include "testlib.h"

static char tmp[256];

static void cleanup(void)
{
	char cmd[300];

	if (tmp[0] && !getenv("UC_KEEP_TMP")) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd))
			fprintf(stderr, "cleanup of %s failed\n", tmp);
	}
}

const char *t_tmpdir(void)
{
	if (!tmp[0]) {
		const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";

		snprintf(tmp, sizeof(tmp), "%s/uc-test-XXXXXX", base);
		if (!mkdtemp(tmp)) {
			perror("mkdtemp");
			exit(T_FAIL);
		}
		atexit(cleanup);
	}
	return tmp;
}

const char *t_write_file(const char *dir, const char *name, const char *text)
{
	static char paths[4][512];
	static int next;
	char *p = paths[next++ % 4];
	FILE *f;

	snprintf(p, 512, "%s/%s", dir, name);
	f = fopen(p, "w");
	if (!f || fputs(text, f) < 0 || fclose(f)) {
		perror(p);
		exit(T_FAIL);
	}
	return p;
}

int t_run(const struct t_case *cases, int n)
{
	int failed = 0;

	for (int i = 0; i < n; i++) {
		int r = cases[i].fn();

		printf("%s: %s\n", r == T_PASS ? "PASS" : r == T_SKIP ? "SKIP" : "FAIL", cases[i].name);
		fflush(stdout);
		failed += r == T_FAIL;
	}
	return failed ? T_FAIL : T_PASS;
}

/* xorshift64*: reproducible, seeded by UC_SEED */
uint64_t t_rand(void)
{
	static uint64_t s;

	if (!s) {
		s = getenv("UC_SEED") ? strtoull(getenv("UC_SEED"), NULL, 0) : 0x9e3779b97f4a7c15ULL;
		if (!s)
			s = 1;
	}
	s ^= s >> 12;
	s ^= s << 25;
	s ^= s >> 27;
	return s * 0x2545f4914f6cdd1dULL;
}

char *t_slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;

	buf[n > 0 ? n : 0] = 0;
	if (fd >= 0)
		close(fd);
	return buf;
}
