/* array: the one growable array (a malloc'd vector with n and cap beside it). */
#ifndef MEDVAULT_ARRAY_H
#define MEDVAULT_ARRAY_H

#include <stddef.h>

/*
 * Make room in the array whose pointer is at parr (a T **, passed as void *
 * so any element type fits) for at least need elements of elem bytes.  The
 * capacity at least doubles, so n appends cost O(n) copies.  *parr and *cap
 * change only on success; on failure the old array is still valid and owned
 * by the caller.  0, -ENOMEM (also when need * elem overflows).
 *
 *	if ((rc = array_reserve(&l->v, &l->cap, l->n + 1, sizeof(*l->v))) < 0)
 *		return rc;
 *	l->v[l->n++] = x;
 */
int array_reserve(void *parr, size_t *cap, size_t need, size_t elem);

#endif
