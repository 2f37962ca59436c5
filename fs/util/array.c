#include "util/array.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_FIRST 16	/* elements in a first allocation */

int array_reserve(void *parr, size_t *cap, size_t need, size_t elem)
{
	void *v, *nv;
	size_t ncap;

	if (need <= *cap)
		return 0;
	ncap = *cap > SIZE_MAX / 2 ? SIZE_MAX : *cap * 2;
	if (ncap < ARRAY_FIRST)
		ncap = ARRAY_FIRST;
	if (ncap < need)
		ncap = need;
	if (elem && ncap > SIZE_MAX / elem) {
		if (need > SIZE_MAX / elem)
			return -ENOMEM;
		ncap = SIZE_MAX / elem;
	}
	/* memcpy, not a cast to void **: the caller's pointer has its own type */
	memcpy(&v, parr, sizeof(v));
	nv = realloc(v, ncap * elem);
	if (!nv)
		return -ENOMEM;
	memcpy(parr, &nv, sizeof(nv));
	*cap = ncap;
	return 0;
}
