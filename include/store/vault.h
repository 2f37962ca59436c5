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

#include "store/anchor.h"
#include "store/blobstore.h"
#include "store/index.h"
#include "crypto/keystore.h"
#include "store/volconf.h"
#include "crypto/volkeys.h"

#define VAULT_DEFAULT_CHUNK (64u << 10)
#define VAULT_DEFAULT_PACK (32ull << 20)

/* What vault_open found when it compared the store with its anchor. */
enum vault_anchor_state {
	VAULT_ANCHOR_OK,	/* same state, or ahead of it (commits since the last move) */
	VAULT_ANCHOR_NEW,	/* none yet on a store without commits: created (not read-only) */
	VAULT_ANCHOR_BEHIND,	/* the store lacks anchor_behind commits */
	VAULT_ANCHOR_FORKED,	/* same counter, another root */
	VAULT_ANCHOR_MISSING,	/* none, though the store has commits */
	VAULT_ANCHOR_BAD,	/* unreadable, tampered, or another volume's */
};

/* "ok", "new", "behind", "forked", "missing", "bad" */
const char *vault_anchor_state_name(enum vault_anchor_state s);

struct vault {
	char *store;
	char *keystore;		/* KSDIR: the anchor lives there */
	/* the caller's key options, kept for the anchor's copy on their token
	 * (they must outlive the vault) */
	const struct key_opts *key;
	int token_mirror;	/* the key options name a token: it holds a copy */
	char *anchor_file;	/* KSDIR/<uuid>.anchor, for messages */
	struct volconf conf;
	struct volkeys *keys;
	struct index *ix;
	struct blobstore *bs;
	int lock_fd;
	uint64_t epoch;		/* this mount's number; high bits of chunk versions */
	/* meta keygen_epoch: chunks of this epoch on have derived keys
	 * (volkeys_chunk_gen); VOLKEYS_GEN_FILE for a format-2 store (read
	 * only: a read-write open upgrades it to format 3) */
	uint64_t keygen_epoch;
	int read_only;		/* opened with read_only: nothing is ever written */

	/* the anchor check at open */
	enum vault_anchor_state anchor_state;
	uint64_t anchor_behind;		/* commits, for VAULT_ANCHOR_BEHIND */
	uint64_t anchor_counter;	/* the anchor's counter as found (0: none) */
	uint64_t store_counter;		/* the store's durable counter at open */
	int rollback_accepted;		/* accept_rollback moved the anchor back */
	/* one line for the caller to show (a read-only open past what would
	 * have been a refusal, or an accepted rollback); empty: nothing.
	 * Already syslogged. */
	char anchor_note[512];

	/* the anchor this process last read or wrote; only the thread that
	 * calls vault_anchor_move (the daemon's flusher, then vault_close
	 * once it has stopped) touches these */
	struct anchor anchor;
	int anchor_known;
	int anchor_writable;	/* opened read-write and checked: the anchor may move */
	/* set: the anchor (encoded) is handed to this instead of written to
	 * KSDIR and the token by this process, which no longer may (the
	 * daemon's server after it dropped root); 0 or -errno */
	int (*anchor_put)(void *arg, const uint8_t *buf, size_t len);
	void *anchor_put_arg;
};

struct vault_open_opts {
	/* open the index INDEX_RDONLY: no epoch bump, nothing written to the
	 * store, the anchor never created or moved.  A store behind its
	 * anchor (or forked, or without one) opens, with anchor_note. */
	int read_only;
	/* a store behind or forked from its anchor, without one, or whose
	 * anchor fails authentication is accepted: the anchor is moved to the
	 * store's state (syslogged; rollback_accepted for the access trail) */
	int accept_rollback;
};

struct vault_init_opts {
	const char *store;
	const char *keystore;
	const struct key_opts *key;
	uint32_t chunk_size;	/* 0: default */
	int cipher;		/* 0: best for this CPU */
	/* The root directory's permission bits (07777), VAULT_ROOT_MODE when
	 * root_mode_set is 0: closed, since a root mount gets allow_other and
	 * everyone's umask would otherwise decide who reads the archive. */
	int root_mode_set;
	uint32_t root_mode;
	/* its owner when root_owner_set, else the caller's uid and gid */
	int root_owner_set;
	uint32_t root_uid, root_gid;
};

#define VAULT_ROOT_MODE 0700

/* Create a store and its keystore.  Refuses an existing store (-EEXIST). */
int vault_init(const struct vault_init_opts *o, char *why, size_t whylen);

/*
 * Open and lock a store (opts NULL: read-write, no rollback accepted):
 * -ENOENT not a store, -EACCES wrong key, -EBADMSG corrupt or foreign,
 * -EBUSY already mounted, -EPROTONOSUPPORT newer format, -ESTALE the
 * store is behind its anchor, forked from it, or has commits but no
 * anchor, -EBADMSG also for an anchor that fails authentication.  why[]
 * gets one line.  Nothing is written to the store before the anchor check
 * passes.  -EUCLEAN: the
 * index file is damaged (its structural check, store/index_check.h,
 * failed or hung; nothing was written).
 */
int vault_open(struct vault **out, const char *store, const char *keystore,
	       const struct key_opts *key, const struct vault_open_opts *opts,
	       char *why, size_t whylen);
/* A read-write vault is made durable and its anchor moved to the final
 * state, marked clean; v may be NULL. */
void vault_close(struct vault *v);

/*
 * Move the anchor to the state the last index_sync made durable, if it
 * differs from the anchor's (counter, root, or the clean flag).  clean:
 * the store is being closed.  Call it only from one thread at a time (the
 * daemon's flusher), never for a read-only vault (it does nothing then).
 * 0 (moved or nothing to do), -errno of anchor_save.
 */
int vault_anchor_move(struct vault *v, int clean);

/*
 * What vault_anchor_move does with an anchor when anchor_put is not set,
 * for the process that receives it (the daemon's root part): buf (an
 * encoded anchor, ANCHOR_LEN bytes, not authenticated here: no key) to
 * KSDIR, and its copy to the token when key names one (failures of the
 * copy are logged).  -EBADMSG, -errno of anchor_save.
 */
int vault_anchor_store(const char *ksdir, const struct key_opts *key, const uint8_t *buf,
		       size_t len);

/*
 * Record the serving daemon's pid in the lock file (after it forked), for
 * people and tools (perf -p, fuser).  Nothing signals it: the file is
 * writable by whoever owns the store, so the pid in it proves nothing.
 */
void vault_note_pid(struct vault *v);

/* 1 if a process holds STORE's lock (a mounted daemon, or fsck), 0 if
 * none, -errno.  A daemon finishing after umount(8) is waited for, as in
 * vault_open (store_lock_take). */
int vault_in_use(const char *store);

#endif
