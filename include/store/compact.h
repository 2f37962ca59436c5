/*
 * compact: rewrite packs whose live ratio is low, so deleted data frees
 * its space.  Live chunks are moved as sealed bytes (their associated data
 * names the file and chunk, not the position), so nothing is decrypted.
 */
#ifndef MEDVAULT_COMPACT_H
#define MEDVAULT_COMPACT_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "store/vault.h"

#define COMPACT_DEFAULT_RATIO 0.5

struct compact_stats {
	uint64_t packs_rewritten;	/* packs whose live chunks were moved */
	uint64_t packs_deleted;
	uint64_t bytes_moved;
	uint64_t bytes_freed;
	uint64_t packs_kept;		/* emptied, but a snapshot was running */
	/* filled by the daemon for a requested run: what its own background
	 * runs deleted since the last requested one (earlier_age_s -1: none) */
	int64_t earlier_age_s;
	uint64_t earlier_packs_deleted;
	uint64_t earlier_bytes_freed;
};

/*
 * Compact the packs of an open vault whose live bytes are below ratio of
 * their size.  barrier (the daemon's checkpoint barrier, or NULL offline)
 * is held for reading around each append-and-commit; checkpoint makes
 * everything durable before packs are deleted (NULL: sync here).  Safe
 * against concurrent writers: a chunk rewritten meanwhile is not moved
 * back.  -errno.
 */
int compact_run(struct vault *v, double ratio, pthread_rwlock_t *barrier,
		int (*checkpoint)(void *ctx), void *ctx, FILE *progress,
		struct compact_stats *st);

#endif
