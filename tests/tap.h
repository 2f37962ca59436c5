/*
 * A tiny TAP harness for unit tests: ok() never aborts, so one run reports
 * every failure; tap_done() prints the closing "N passed, M failed" line and
 * returns the exit status.
 */
#ifndef MEDVAULT_TAP_H
#define MEDVAULT_TAP_H

#include <stdio.h>
#include <stdarg.h>

static int tap_n, tap_failed;

/* one result line; todo: a known bug, TAP's "# TODO" (counts as passed) */
static inline int tap_line(int cond, int todo, const char *file, int line, const char *fmt,
			   va_list ap)
{
	tap_n++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
	vprintf(fmt, ap);
	if (todo)
		printf(" # TODO known bug%s", cond ? " (now passes: make it an ok)" : "");
	printf("\n");
	if (!cond && !todo) {
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

__attribute__((format(printf, 5, 6)))
static inline int tap_ok(int cond, int todo, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = tap_line(cond, todo, file, line, fmt, ap);
	va_end(ap);
	return rc;
}

#define ok(cond, ...) tap_ok(!!(cond), 0, __FILE__, __LINE__, __VA_ARGS__)
/* a known bug, reported and left for its owner: "not ok ... # TODO" while
 * it is there, counted as passed, so the suite stays green and says why */
#define todo(cond, ...) tap_ok(!!(cond), 1, __FILE__, __LINE__, __VA_ARGS__)

static inline int tap_done(void)
{
	printf("1..%d\n# %d passed, %d failed\n", tap_n, tap_n - tap_failed, tap_failed);
	return tap_failed ? 1 : 0;
}

#endif
