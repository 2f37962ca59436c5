/*
 * volconf: STORE/medvault.conf, the store's identity card.  Plain text, no
 * secrets, one key=value per line, ending with a mac= line that
 * authenticates every byte before it with a key derived from the master
 * key, so a tampered card is detected at mount.
 */
#ifndef MEDVAULT_VOLCONF_H
#define MEDVAULT_VOLCONF_H

#include <stddef.h>
#include <stdint.h>

#include "store/layout.h"

#define VOLCONF_NAME STORE_CONF_NAME	/* for the tests that write a card by hand */
#define VOLCONF_FORMAT 3	/* newest on-disk format this build reads */

struct volconf {
	unsigned format;
	uint8_t uuid[16];
	int cipher;		/* enum aead_cipher */
	uint32_t chunk_size;
	uint64_t pack_size;	/* target size of a pack before it is sealed */
	int64_t created;	/* unix seconds */
	/* set by volconf_load: the authenticated text and its mac */
	char *text;
	size_t text_len;	/* bytes covered by the mac */
	uint8_t mac[32];
};

/*
 * Read and parse STORE/medvault.conf (not yet authenticated: call
 * volconf_verify once the master key is known).
 * -ENOENT no such file (not a medvault store), -EBADMSG unparsable,
 * -EPROTONOSUPPORT format newer than this build.
 */
int volconf_load(const char *store, struct volconf *vc, char *why, size_t whylen);

/* Write STORE/medvault.conf atomically with a mac under mk. -errno. */
int volconf_save(const char *store, struct volconf *vc, const uint8_t *mk);

/* 0 if the loaded text's mac matches mk, else -EBADMSG. */
int volconf_verify(const struct volconf *vc, const uint8_t *mk);

void volconf_release(struct volconf *vc);

/* uuid as 32 lowercase hex digits plus NUL */
void volconf_uuid_hex(const uint8_t uuid[16], char out[33]);

#endif
