/*
 * secure: process hardening and the few libsodium services the layers
 * above crypto/ need (they never include <sodium.h> themselves).
 */
#ifndef MEDVAULT_SECURE_H
#define MEDVAULT_SECURE_H

#include <stddef.h>
#include <stdint.h>

/* sodium_init; -EIO if libsodium cannot start.  Idempotent. */
int secure_init(void);

/* No core dumps, no ptrace attach (PR_SET_DUMPABLE 0). */
void secure_harden_process(void);

/* Locked, guarded memory for keys; secure_free(NULL) does nothing. */
void *secure_alloc(size_t len);
void secure_free(void *p);
void secure_readonly(void *p);
void secure_wipe(void *p, size_t len);

void secure_random(void *buf, size_t len);
uint64_t secure_random_u64(void);

/* constant time; 0 when equal */
int secure_memcmp(const void *a, const void *b, size_t len);

/* HMAC-SHA-512/256 of data under a 32-byte key */
void secure_mac(uint8_t out[32], const uint8_t key[32], const void *data, size_t len);

/* BLAKE2b-256 of data, unkeyed (identifiers, not secrets) */
void secure_hash(uint8_t out[32], const void *data, size_t len);

/* hex without and with secrets: the output of secure_hex is not a secret */
void secure_hex(char *out, const uint8_t *bin, size_t len);
int secure_unhex(uint8_t *out, size_t outlen, const char *hex, size_t hexlen);

#endif
