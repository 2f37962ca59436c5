/*
 * byteorder: the big-endian encoders every on-disk and on-wire record uses
 * (index records and keys, keystore, audit frames, associated data).
 * Big-endian so that LMDB's memcmp order of an encoded key is its numeric
 * order.  Byte by byte, so no alignment is assumed.
 */
#ifndef MEDVAULT_BYTEORDER_H
#define MEDVAULT_BYTEORDER_H

#include <stddef.h>
#include <stdint.h>

/* the n (1..8) low bytes of v, most significant first */
static inline void be_put(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static inline uint64_t be_get(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static inline void be16_put(uint8_t *p, uint16_t v) { be_put(p, v, 2); }
static inline void be32_put(uint8_t *p, uint32_t v) { be_put(p, v, 4); }
static inline void be64_put(uint8_t *p, uint64_t v) { be_put(p, v, 8); }
static inline uint16_t be16_get(const uint8_t *p) { return (uint16_t)be_get(p, 2); }
static inline uint32_t be32_get(const uint8_t *p) { return (uint32_t)be_get(p, 4); }
static inline uint64_t be64_get(const uint8_t *p) { return be_get(p, 8); }

#endif
