/*
 * Helpers every command of fs/cli shares.  Apart from main.c so that unit
 * tests can link a command group without main().
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* One line on stderr, always: control characters that came from user
 * input or a damaged file are shown as '?'. */
static void fail_print(const char *fmt, va_list ap)
{
	char line[2048];

	vsnprintf(line, sizeof(line), fmt, ap);
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	fprintf(stderr, "medvault: %s\n", line);
}

int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail_print(fmt, ap);
	va_end(ap);
	return CLI_EXIT_FAILURE;
}

int fail_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fail_print(fmt, ap);
	va_end(ap);
	return CLI_EXIT_USAGE;
}

int help_shown(int argc, char **argv, const char *usage)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage, stdout);
			return 1;
		}
	}
	return 0;
}
