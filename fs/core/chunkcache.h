/*
 * chunkcache: recently used plaintext chunks, shared by all files.  Keyed
 * by (inode, chunk index, version): versions are never reused, so an entry
 * can only ever be right or unused, and nothing needs invalidating; stale
 * entries simply age out of the LRU.
 */
#ifndef MEDVAULT_CHUNKCACHE_H
#define MEDVAULT_CHUNKCACHE_H

#include <stddef.h>
#include <stdint.h>

struct chunkcache;

/* capacity in bytes (rounded down to whole chunks; 0 disables). -ENOMEM */
int chunkcache_create(struct chunkcache **out, uint32_t chunk_size, size_t capacity);
void chunkcache_destroy(struct chunkcache *cc);

/* 1 and the chunk copied into buf (chunk_size bytes) on a hit, else 0 */
int chunkcache_get(struct chunkcache *cc, uint64_t ino, uint64_t idx, uint64_t version,
		   uint8_t *buf, uint32_t *len);
void chunkcache_put(struct chunkcache *cc, uint64_t ino, uint64_t idx, uint64_t version,
		    const uint8_t *buf, uint32_t len);

#endif
