/*
 * index: the LMDB environment under STORE/index.  Every value is sealed
 * (XChaCha20-Poly1305) with associated data naming the volume, the
 * database and the record's key, so a record moved, swapped or edited fails
 * authentication and reads as -EIO.  Keys are fixed-size big-endian
 * binary: an inode number, or a parent inode and a keyed hash of the name.
 *
 * Writes go through index_write(): callers hand in a function that runs
 * inside the one shared write transaction; concurrent callers are batched
 * into one commit (group commit) by whichever thread arrives first.
 * A write function must do all its checks before its first put or delete:
 * if it returns an error after mutating, the batch is replayed without it.
 */
#ifndef MEDVAULT_INDEX_H
#define MEDVAULT_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "crypto/volkeys.h"

#define INDEX_ROOT_INO 1
/* mv_attr.flags: fsck could not verify this inode's records; its data and
 * target read as EIO until it is removed */
#define INDEX_FLAG_QUARANTINED 1u
#define INDEX_NAME_MAX 255
#define INDEX_SYMLINK_MAX 4095
#define INDEX_XATTR_NAME_MAX 255
#define INDEX_XATTR_VALUE_MAX 65536

struct index;
struct index_txn;

/* An inode record, as kept (sealed) in the inode database. */
struct mv_attr {
	uint64_t ino;
	uint32_t mode;
	uint32_t uid, gid;
	uint32_t nlink;
	uint64_t size;
	uint64_t blocks;	/* 512-byte units actually stored */
	int64_t atime_s, mtime_s, ctime_s;
	uint32_t atime_ns, mtime_ns, ctime_ns;
	uint64_t rdev;
	uint64_t parent;	/* directories: the parent, for ".." and fsck */
	uint32_t domain;	/* key domain of the content key */
	uint32_t flags;
	uint16_t symlink_len;
	char symlink[INDEX_SYMLINK_MAX + 1];
};

/* Where one chunk's ciphertext lives, and which version it is. */
struct chunk_rec {
	uint64_t pack;
	uint64_t off;
	uint32_t len;		/* sealed length in the pack */
	uint32_t plain_len;
	uint64_t version;
};

struct pack_rec {
	uint64_t live_bytes;
	uint64_t total_bytes;
	uint32_t state;
};

/* index_open flags */
#define INDEX_CREATE 1	/* make the environment if there is none */
#define INDEX_RDONLY 2	/* never write: index_write returns -EROFS */

/* -errno: -ENOENT (no index and no INDEX_CREATE), -EIO, -EBADMSG (not ours /
 * foreign volume) */
int index_open(struct index **out, const char *dir, const uint8_t uuid[16],
	       const struct volkeys *vk, int flags);

/*
 * The integrity root of the committed index: a counter that grows by one
 * with every commit, and the MAC of the root record naming the state.
 * The anchor outside the store (store/anchor.h) keeps a copy of both.
 * counter 0 (root zeros): a format-1 index, which has no root yet.
 */
#define INDEX_ROOT_MAC 16
struct index_root_state {
	uint64_t counter;
	uint8_t mac[INDEX_ROOT_MAC];
};
/* The state made durable by the last index_sync (or found at open). */
int index_root_durable(struct index *ix, struct index_root_state *out);

/* 1 when the index has its integrity tree (format 2), 0 (format 1) */
int index_has_tree(struct index *ix);

/*
 * Format 1 -> 2: build the integrity tree over the records as they are,
 * in one transaction (a crash leaves format 1, and the next open tries
 * again); nothing when the tree exists.  No other user may have the
 * index open for writing.  -EROFS, -ENOMEM, -ENOSPC, -EIO
 */
int index_upgrade(struct index *ix);

/*
 * Build the tree afresh over the records as they are now and move the
 * counter on (fsck --repair, after it removed what it could not trust).
 * Same conditions as index_upgrade.
 */
int index_tree_rebuild(struct index *ix);

/*
 * Stop checking records against the tree until index_tree_rebuild: fsck
 * repairs a store whose tree does not add up with reads that would all
 * fail otherwise.
 */
void index_tree_detach(struct index *ix);

/* What a whole-tree check found (index_tree_verify). */
enum index_stale {
	INDEX_STALE_RECORD,	/* the inode record is not the one the tree names */
	INDEX_STALE_UNKNOWN,	/* an inode record the tree does not know (planted, resurrected) */
	INDEX_STALE_MISSING,	/* the tree names an inode whose record is gone */
	INDEX_STALE_BULK,	/* chunks or entries (inode 0: pack records) do not add up */
	INDEX_STALE_SMALL,	/* xattrs or orphan mark (inode 0: counters) do not add up */
	INDEX_STALE_NODE,	/* a tree node differs */
};
/* "its chunk records", ...: what to tell about ino */
const char *index_stale_name(enum index_stale what, uint64_t ino, int is_dir);

/*
 * Recompute the whole tree from the records in txn's view and compare
 * it with the stored one: bad(ctx, ino, what) for each finding (inode 0
 * is the volume: its counters and pack records).  *state (may be NULL)
 * gets the root state in view.  Returns the number of findings, -ENOENT
 * without a tree (format 1), or -errno.
 */
typedef void (*index_bad_cb)(void *ctx, uint64_t ino, enum index_stale what);
long index_tree_verify(struct index_txn *txn, struct index_root_state *state, index_bad_cb bad,
		       void *ctx);
void index_close(struct index *ix);

/* Short read transaction.  -EIO */
int index_read_begin(struct index *ix, struct index_txn **out);
void index_read_end(struct index_txn *txn);

typedef int (*index_write_fn)(struct index_txn *txn, void *arg);
/* Run fn in the shared write transaction and return its result once the
 * batch is committed (not yet synced).  -ENOSPC, -EIO, or fn's error. */
int index_write(struct index *ix, index_write_fn fn, void *arg);

/* Make every committed transaction durable.  -EIO */
int index_sync(struct index *ix);

/* Copy the environment from one read transaction (snapshots).  -errno */
int index_copy(struct index *ix, const char *dest_dir);

/* Every reader returns -ENOENT when absent, -EIO when the record fails to
 * authenticate or decode.  Writers return -ENOSPC or -EIO. */
int index_inode_get(struct index_txn *txn, uint64_t ino, struct mv_attr *out);
int index_inode_put(struct index_txn *txn, const struct mv_attr *a);
int index_inode_del(struct index_txn *txn, uint64_t ino);

int index_dirent_get(struct index_txn *txn, uint64_t parent, const char *name,
		     size_t len, uint64_t *ino, uint8_t *type);
int index_dirent_put(struct index_txn *txn, uint64_t parent, const char *name,
		     size_t len, uint64_t ino, uint8_t type);
int index_dirent_del(struct index_txn *txn, uint64_t parent, const char *name, size_t len);
/* 1 if parent has no entries, 0 if it has, -EIO */
int index_dir_empty(struct index_txn *txn, uint64_t parent);

/*
 * Walk parent's entries in hash order, starting after readdir offset off
 * (offsets 0..2 mean "from the first").  Each entry's next_off is stable
 * while other entries come and go.  cb returns 0 to go on, 1 to stop, or
 * -errno to abort.  Returns 0, cb's -errno, or -EIO.
 */
typedef int (*index_dirent_cb)(void *ctx, const char *name, size_t len,
			       uint64_t ino, uint8_t type, uint64_t next_off);
int index_dirent_iter(struct index_txn *txn, uint64_t parent, uint64_t off,
		      index_dirent_cb cb, void *ctx);

int index_chunk_get(struct index_txn *txn, uint64_t ino, uint64_t idx, struct chunk_rec *out);
int index_chunk_put(struct index_txn *txn, uint64_t ino, uint64_t idx, const struct chunk_rec *c);
int index_chunk_del(struct index_txn *txn, uint64_t ino, uint64_t idx);
/* chunks of ino with index >= from, in order; cb as above */
typedef int (*index_chunk_cb)(void *ctx, uint64_t ino, uint64_t idx, const struct chunk_rec *c);
int index_chunk_iter(struct index_txn *txn, uint64_t ino, uint64_t from,
		     index_chunk_cb cb, void *ctx);
/* every chunk of every inode (fsck, compaction) */
int index_chunk_iter_all(struct index_txn *txn, index_chunk_cb cb, void *ctx);

/* value NULL/cap 0 probes the size; returns the value length, -ENODATA, -ERANGE */
ssize_t index_xattr_get(struct index_txn *txn, uint64_t ino, const char *name,
			void *value, size_t cap);
int index_xattr_put(struct index_txn *txn, uint64_t ino, const char *name,
		    const void *value, size_t len);
/* -ENODATA if absent */
int index_xattr_del(struct index_txn *txn, uint64_t ino, const char *name);
/* NUL-separated names; list NULL/cap 0 probes.  Returns length or -ERANGE. */
ssize_t index_xattr_list(struct index_txn *txn, uint64_t ino, char *list, size_t cap);
int index_xattr_del_all(struct index_txn *txn, uint64_t ino);

/*
 * Delete every record of ino: its chunks (from index 0, with their packs'
 * live bytes), xattrs, inode and orphan mark; records that do not exist
 * are skipped.  Used when the last link and the last user are gone, and
 * by fsck.  Returns 0; -EIO when a chunk record is damaged (then no chunk
 * was deleted, everything else was); -ENOMEM, -ENOSPC, or another
 * record's -EIO.
 */
int index_inode_purge(struct index_txn *txn, uint64_t ino);

int index_orphan_add(struct index_txn *txn, uint64_t ino);
int index_orphan_del(struct index_txn *txn, uint64_t ino);
/* collects up to max orphans; returns the count */
int index_orphan_list(struct index_txn *txn, uint64_t *inos, int max);

int index_pack_get(struct index_txn *txn, uint64_t pack, struct pack_rec *out);
/* add deltas to a pack's accounting, creating its record */
int index_pack_account(struct index_txn *txn, uint64_t pack, int64_t live, int64_t total);
/*
 * Live bytes that packs have lost (chunks replaced, deleted or moved) since
 * the last reset: the daemon compacts early when this grows fast.  Counted
 * as transactions run, so an aborted one counts too: a hint, not a tally.
 */
uint64_t index_dead_bytes(struct index *ix);
void index_dead_bytes_reset(struct index *ix);
typedef int (*index_pack_cb)(void *ctx, uint64_t pack, const struct pack_rec *p);
int index_pack_iter(struct index_txn *txn, index_pack_cb cb, void *ctx);
int index_pack_del(struct index_txn *txn, uint64_t pack);

int index_meta_get(struct index_txn *txn, const char *name, uint64_t *val);
int index_meta_put(struct index_txn *txn, const char *name, uint64_t val);

/* Statistics for statfs/info: entries in the inode db. */
int index_count_inodes(struct index_txn *txn, uint64_t *count);


/* ---- raw access for fsck ---- */

enum index_db {
	INDEX_DB_INODE, INDEX_DB_DIRENT, INDEX_DB_CHUNK, INDEX_DB_PACK,
	INDEX_DB_XATTR, INDEX_DB_ORPHAN, INDEX_DB_META, INDEX_DB_COUNT
};

/*
 * Visit every record of db in key order, authenticating each on its own:
 * rc is 0 with the plaintext, or -EIO (plain NULL) for a record that fails
 * authentication, so one bad record does not hide the others.  cb returns
 * 0 to go on, non-zero to stop (returned).
 */
typedef int (*index_walk_cb)(void *ctx, const uint8_t *key, size_t klen,
			     const uint8_t *plain, size_t plen, int rc);
int index_walk(struct index_txn *txn, enum index_db db, index_walk_cb cb, void *ctx);

/* number of records in db */
int index_count(struct index_txn *txn, enum index_db db, uint64_t *count);

/* delete one record by its raw key (repair).  -ENOENT, -EIO */
int index_raw_del(struct index_txn *txn, enum index_db db, const uint8_t *key, size_t klen);

/* decoders for walked records: 0 or -EIO */
int index_decode_inode(const uint8_t *key, size_t klen, const uint8_t *plain, size_t plen,
		       struct mv_attr *out);
int index_decode_dirent(const uint8_t *key, size_t klen, const uint8_t *plain, size_t plen,
			uint64_t *parent, uint64_t *ino, uint8_t *type,
			const char **name, size_t *len);
int index_decode_chunk(const uint8_t *key, size_t klen, const uint8_t *plain, size_t plen,
		       uint64_t *ino, uint64_t *idx, struct chunk_rec *out);
int index_decode_pack(const uint8_t *key, size_t klen, const uint8_t *plain, size_t plen,
		      uint64_t *pack, struct pack_rec *out);

/*
 * Copy the index environment in dir to dest_dir from one read transaction,
 * without keys (values stay sealed).  Safe while a daemon writes to it.
 * -errno.
 */
int index_copy_env(const char *dir, const char *dest_dir);

/* Record counts of every database, read without keys.  -errno */
int index_env_counts(const char *dir, uint64_t counts[INDEX_DB_COUNT]);

#endif
