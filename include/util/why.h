/* why: the one-line explanations that travel with an -errno to the CLI. */
#ifndef MEDVAULT_WHY_H
#define MEDVAULT_WHY_H

#include <stddef.h>

/* Format into why[whylen] (if given) and return rc, for `return why_set(...)`. */
int why_set(char *why, size_t whylen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
