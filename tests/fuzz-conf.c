/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target over the config parser and graph builder: any input must give
 * 0 or -EINVAL, never a crash, leak or hang. Built with clang's libFuzzer by
 * tests/fuzz/run.sh; built with -DUC_FUZZ_REPLAY it is a plain program that
 * replays a corpus directory (the regression cases) under ctest.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "graph.h"

static char dir[] = "/tmp/uc-fuzz-XXXXXX";
static char path[64];
static int null_fd = -1, err_fd = -1;

static void setup(void)
{
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/f.conf", dir);
	null_fd = open("/dev/null", O_WRONLY);
	err_fd = dup(2);
	/* an nbd leaf stops before it connects: no network, no DNS lookups of random names */
	setenv("UC_NBD_NO_CONNECT", "1", 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uc_graph g;
	FILE *f;
	int ret;

	if (!path[0])
		setup();
	f = fopen(path, "w");
	if (!f)
		abort();
	fwrite(data, 1, size, f);
	fclose(f);
	/* one error line per input: hidden, but crash reports must still reach stderr */
	dup2(null_fd, 2);
	ret = uc_graph_load(&g, path);
	dup2(err_fd, 2);
	if (ret && ret != -EINVAL && ret != -ENOMEM)
		abort();
	if (!ret && (!g.root || !g.size || !g.nr_subs || !g.nr_iovs))
		abort();	/* a graph that loads must be usable */
	uc_graph_free(&g);
	return 0;
}

#ifdef UC_FUZZ_REPLAY
int main(int argc, char **argv)
{
	int n = 0;

	for (int i = 1; i < argc; i++) {
		DIR *d = opendir(argv[i]);
		struct dirent *e;

		if (!d) {
			perror(argv[i]);
			return 1;
		}
		while ((e = readdir(d))) {
			char p[4096], *buf;
			long len;
			FILE *f;

			if (e->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
			f = fopen(p, "rb");
			if (!f)
				continue;
			fseek(f, 0, SEEK_END);
			len = ftell(f);
			rewind(f);
			buf = malloc(len + 1);
			if (buf && fread(buf, 1, len, f) == (size_t)len)
				LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
			free(buf);
			fclose(f);
			n++;
		}
		closedir(d);
	}
	printf("replayed %d inputs\n", n);
	rmdir(dir);
	return n ? 0 : 1;
}
#endif
