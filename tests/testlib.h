/* SPDX-License-Identifier: MIT */
/* Tiny test helpers: exit 0 pass, 1 fail, 77 skip (liburing's convention). */
#ifndef UC_TESTLIB_H
#define UC_TESTLIB_H

#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>

#define T_PASS	0
#define T_FAIL	1
#define T_SKIP	77

#define CHECK(cond, ...) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
	fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); return T_FAIL; } } while (0)

/* Make a scratch directory; returns its path (static storage). */
const char *t_tmpdir(void);
/* Write text to DIR/name; returns the full path (static rotating storage). */
const char *t_write_file(const char *dir, const char *name, const char *text);
/* Read a whole file (up to len - 1 bytes) into buf, "" if it cannot; returns buf. */
char *t_slurp(const char *path, char *buf, size_t len);
/* Run each test, print its name and verdict; returns the exit status. */
struct t_case { const char *name; int (*fn)(void); };
int t_run(const struct t_case *cases, int n);
uint64_t t_rand(void);

#endif
