/*
 * parallel: a small pool of worker threads for CPU-bound loops (sealing
 * and opening chunks).  The calling thread works too, so a pool of zero
 * workers still runs every item.
 */
#ifndef MEDVAULT_PARALLEL_H
#define MEDVAULT_PARALLEL_H

#include <stddef.h>

struct parallel;

/* workers: extra threads (0 = run everything in the caller).  -errno */
int parallel_create(struct parallel **out, unsigned workers);
void parallel_destroy(struct parallel *p);

/* Run fn(ctx, i) for i in [0, n); returns when all are done.  Items run
 * concurrently, in no particular order. */
void parallel_for(struct parallel *p, size_t n, void (*fn)(void *ctx, size_t i), void *ctx);

#endif
