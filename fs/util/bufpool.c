#include "util/bufpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct bufpool {
	size_t size;
	unsigned keep;
	pthread_mutex_t lock;	/* protects free/nfree */
	uint8_t **free;
	unsigned nfree;
};

int bufpool_create(struct bufpool **out, size_t size, unsigned keep)
{
	struct bufpool *bp = calloc(1, sizeof(*bp));

	*out = NULL;
	if (!bp)
		return -ENOMEM;
	bp->free = calloc(keep ? keep : 1, sizeof(*bp->free));
	if (!bp->free) {
		free(bp);
		return -ENOMEM;
	}
	bp->size = size;
	bp->keep = keep;
	pthread_mutex_init(&bp->lock, NULL);
	*out = bp;
	return 0;
}

static void buf_release(struct bufpool *bp, uint8_t *buf)
{
	/* plaintext may have lived here */
	explicit_bzero(buf, bp->size);
	munlock(buf, bp->size);
	free(buf);
}

void bufpool_destroy(struct bufpool *bp)
{
	if (!bp)
		return;
	for (unsigned i = 0; i < bp->nfree; i++)
		buf_release(bp, bp->free[i]);
	free(bp->free);
	pthread_mutex_destroy(&bp->lock);
	free(bp);
}

uint8_t *bufpool_get(struct bufpool *bp)
{
	uint8_t *buf = NULL;

	pthread_mutex_lock(&bp->lock);
	if (bp->nfree)
		buf = bp->free[--bp->nfree];
	pthread_mutex_unlock(&bp->lock);
	if (buf)
		return buf;
	if (posix_memalign((void **)&buf, 4096, bp->size) != 0)
		return NULL;
	mlock(buf, bp->size);	/* best effort: RLIMIT_MEMLOCK may refuse */
	return buf;
}

void bufpool_put(struct bufpool *bp, uint8_t *buf)
{
	if (!buf)
		return;
	pthread_mutex_lock(&bp->lock);
	if (bp->nfree < bp->keep) {
		bp->free[bp->nfree++] = buf;
		buf = NULL;
	}
	pthread_mutex_unlock(&bp->lock);
	if (buf)
		buf_release(bp, buf);
}
