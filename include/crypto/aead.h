/*
 * aead: authenticated encryption of one item with a 32-byte key.
 * Output layout: nonce || ciphertext || tag.  Nonces are random, drawn
 * from the kernel (getrandom) for every seal: 24 bytes for
 * XChaCha20-Poly1305 (safe for any number of messages under one key), 12
 * bytes for AES-256-GCM, which we therefore only use with per-file keys
 * (see volkeys.h) and cap at AEAD_GCM_SEAL_LIMIT seals per key object.
 */
#ifndef MEDVAULT_AEAD_H
#define MEDVAULT_AEAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum aead_cipher {
	AEAD_XCHACHA20POLY1305 = 1,
	AEAD_AES256GCM = 2,
};

struct aead;

/* The best cipher for this CPU: AES-256-GCM if it has AES-NI, else XChaCha. */
enum aead_cipher aead_cipher_best(void);
const char *aead_cipher_name(enum aead_cipher c);
/* -EINVAL for an unknown name */
int aead_cipher_parse(const char *name, enum aead_cipher *out);
/* 0 when this CPU can run cipher c, -ENOTSUP otherwise */
int aead_cipher_usable(enum aead_cipher c);

/* Copies key into guarded memory.  -ENOMEM, -ENOTSUP (no AES-NI). */
int aead_new(struct aead **out, enum aead_cipher c, const uint8_t key[32]);
void aead_free(struct aead *a);

/* bytes added to a plaintext by sealing: nonce + tag */
size_t aead_overhead(const struct aead *a);

/*
 * Seals one AES-GCM key object accepts: 2^31, well under the 2^32 that
 * random 96-bit nonces allow (aead.c says why).  The count lives in the
 * object.  Format 3's chunk keys cover 2^31 versions each, so none reaches
 * it by wear: it is a second guard (docs/DESIGN.md, "Nonces").
 */
#define AEAD_GCM_SEAL_LIMIT (1ull << 31)

/*
 * Seal pt into out (cap >= ptlen + aead_overhead).
 * Returns the sealed length, -EOVERFLOW, -EKEYEXPIRED (an AES-GCM key that
 * has sealed its limit: nothing is written, the caller needs another key),
 * or -EIO if libcrypto or getrandom fails.
 */
ssize_t aead_seal(const struct aead *a, uint8_t *out, size_t cap,
		  const uint8_t *pt, size_t ptlen,
		  const uint8_t *ad, size_t adlen);

/*
 * Open a sealed item into out (cap >= ctlen - overhead).  out may not
 * overlap ct.  Returns the plaintext length, or -EBADMSG when the item is
 * truncated or fails authentication (out is then wiped), -EIO if
 * libcrypto fails.
 */
ssize_t aead_open(const struct aead *a, uint8_t *out, size_t cap,
		  const uint8_t *ct, size_t ctlen,
		  const uint8_t *ad, size_t adlen);

/* how many items a sealed so far (AES-GCM keys; XChaCha20 ones count 0) */
uint64_t aead_seals(const struct aead *a);
/* a's seal limit (0: none) */
uint64_t aead_seal_limit(const struct aead *a);

/* tests: AES-GCM keys made from now on refuse to seal more than n items;
 * it only lowers AEAD_GCM_SEAL_LIMIT (0 or more: back to it).  A hook, not
 * an option or environment variable, so nobody can raise the cap. */
void aead_test_seal_limit(uint64_t n);

/* tests: AES-GCM items of at least n bytes use libcrypto, smaller ones
 * libsodium (default 16 KiB; 0: always libcrypto, SIZE_MAX: never) */
void aead_set_bulk_min(size_t n);

#endif
