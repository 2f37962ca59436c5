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

__attribute__((format(printf, 4, 5)))
static inline int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond) {
		tap_failed++;
		printf("#   failed at %s:%d\n", file, line);
	}
	fflush(stdout);
	return cond;
}

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

static inline int tap_done(void)
{
	printf("1..%d\n# %d passed, %d failed\n", tap_n, tap_n - tap_failed, tap_failed);
	return tap_failed ? 1 : 0;
}

#endif
