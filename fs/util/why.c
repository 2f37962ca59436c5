#include "util/why.h"

#include <stdarg.h>
#include <stdio.h>

int why_set(char *why, size_t whylen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return rc;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return rc;
}
