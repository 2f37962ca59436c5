/*
 * vault: an opened store: its card (medvault.conf), its keys, its index and
 * its packs, plus the lock that keeps a second daemon (or a repairing
 * fsck) off it.
 */
#ifndef MEDVAULT_VAULT_H
#define MEDVAULT_VAULT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "store/blobstore.h"
#include "store/index.h"
#include "crypto/keystore.h"
#include "store/volconf.h"
#include "crypto/volkeys.h"

#define VAULT_DEFAULT_CHUNK (64u << 10)
#define VAULT_DEFAULT_PACK (32ull << 20)

struct vault {
	char *store;
	struct volconf conf;
	struct volkeys *keys;
	struct index *ix;
	struct blobstore *bs;
	int lock_fd;
	uint64_t epoch;		/* this mount's number; high bits of chunk versions */
};

struct vault_init_opts {
	const char *store;
	const char *keystore;
	const struct key_opts *key;
	uint32_t chunk_size;	/* 0: default */
	int cipher;		/* 0: best for this CPU */
};

/* Create a store and its keystore.  Refuses an existing store (-EEXIST). */
int vault_init(const struct vault_init_opts *o, char *why, size_t whylen);

/*
 * Open and lock a store: -ENOENT not a store, -EACCES wrong key,
 * -EBADMSG corrupt or foreign, -EBUSY already mounted, -EPROTONOSUPPORT
 * newer format, -EUCLEAN the index file is damaged (its structural check,
 * store/index_check.h, failed or hung; nothing was written).  why[] gets
 * one line.
 */
int vault_open(struct vault **out, const char *store, const char *keystore,
	       const struct key_opts *key, char *why, size_t whylen);
void vault_close(struct vault *v);

/*
 * Record the serving daemon's pid in the lock file (after it forked), for
 * people and tools (perf -p, fuser).  Nothing signals it: the file is
 * writable by whoever owns the store, so the pid in it proves nothing.
 */
void vault_note_pid(struct vault *v);

/* 1 if a process holds STORE's lock (a mounted daemon, or fsck), 0 if
 * none, -errno. */
int vault_in_use(const char *store);

#endif
