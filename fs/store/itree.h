/*
 * itree: the index's integrity tree, which makes every record fresh as
 * well as authentic (docs/DESIGN.md "Integrity").  Internal to the index:
 * index.c feeds it the sealed records it reads and writes, through an
 * it_io that reads one transaction's view; itree never touches LMDB.
 *
 * Every inode number (0 stands for the volume itself) owns a slot: the
 * MAC of its inode record, and two sums (mod 2^64 per 8-byte lane) of the
 * MACs of the records it owns, one per class:
 *   bulk   its chunks (a file), its entries (a directory), the packs (0)
 *   small  its xattrs and orphan mark, the meta counters (0)
 * so that checking an xattr never reads a large file's chunk map.  Slots
 * sit in leaves of a radix tree over the inode number (16 per node), each
 * node's MAC in its parent, the top node's MAC in the root record (meta
 * "root"), whose counter grows with every commit and which the anchor
 * outside the store names.
 *
 * A record read is checked before it is used: an inode record against its
 * slot, through verified nodes up to the root; any other record against
 * the verified table of its owner's class, built once by summing all of
 * that owner's records of the class and comparing with the slot, which
 * keeps each record's AEAD tag fingerprint (a read compares tags).  The
 * caches hold the committed state only; a write transaction keeps its
 * changes aside (struct itree_txn) until its commit succeeded.
 */
#ifndef MEDVAULT_ITREE_H
#define MEDVAULT_ITREE_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/volkeys.h"

#define IT_MAC VOLKEYS_TREE_MAC_LEN
#define IT_BITS 4
#define IT_FAN (1u << IT_BITS)
#define IT_LEAF_SLOT (3 * IT_MAC)	/* record MAC, bulk sum, small sum */
#define IT_LEAF_BYTES (IT_FAN * IT_LEAF_SLOT)
#define IT_INNER_BYTES (IT_FAN * IT_MAC)
#define IT_MAX_DEPTH 16		/* 4 * 16 bits cover any 64-bit owner */

/* record databases as index.c numbers them (the format's db numbers) */
enum it_db { IT_DB_INODE, IT_DB_DIRENT, IT_DB_CHUNK, IT_DB_PACK, IT_DB_XATTR,
	     IT_DB_ORPHAN, IT_DB_META, IT_DB_RECORDS };
enum it_cls { IT_BULK, IT_SMALL };

#define IT_ROOT_KEY "root"	/* the meta record holding the root */
#define IT_ROOT_REC 26		/* version(1) counter(8) depth(1) top(16) */

struct it_root {
	uint64_t counter;	/* commits since the tree exists */
	uint8_t depth;		/* levels; the top node is (depth, 0) */
	uint8_t top[IT_MAC];	/* MAC of the top node */
};

struct itree;
struct itree_txn;

typedef int (*it_rec_cb)(void *cbctx, enum it_db db, const uint8_t *key, size_t klen,
			 const uint8_t *val, size_t vlen);

/* One transaction's view of the index, provided by index.c. */
struct it_io {
	void *ctx;
	/* a node's stored bytes: 1 (*data valid until the next call), 0 absent, -errno */
	int (*node_get)(void *ctx, unsigned level, uint64_t prefix, const uint8_t **data, size_t *len);
	/* every record of owner's class (owner 0: packs or meta too) */
	int (*scan)(void *ctx, uint64_t owner, enum it_cls cls, it_rec_cb cb, void *cbctx);
	/* as scan, in a read view of the committed state (for a writer,
	 * whose own view holds its uncommitted changes) */
	int (*scan_committed)(void *ctx, uint64_t owner, enum it_cls cls, it_rec_cb cb, void *cbctx);
	/* every record of every record database */
	int (*scan_all)(void *ctx, it_rec_cb cb, void *cbctx);
	uint64_t snap;	/* a read view's commit id (unused for a writer) */
	int writer;
	/* A reader whose view is older than the caches: check it against its
	 * own root record instead, without the caches (slower, rare). */
	const struct it_root *own_root;
};

/* Which owner and class a record key belongs to.  -EIO for a key no
 * record of db can have; 1 for the root record (not in the tree). */
int itree_classify(enum it_db db, const uint8_t *key, size_t klen, uint64_t *owner,
		   enum it_cls *cls);

void itree_rec_mac(const struct volkeys *vk, enum it_db db, const uint8_t *key, size_t klen,
		   const uint8_t *val, size_t vlen, uint8_t out[IT_MAC]);

/* A sealed record as the tree knows it: the MAC its owner's sum adds, and
 * the fingerprint of its AEAD tag that owner tables keep. */
struct it_rec {
	uint8_t mac[IT_MAC];
	uint64_t fp;
};
void itree_rec(const struct volkeys *vk, enum it_db db, const uint8_t *key, size_t klen,
	       const uint8_t *val, size_t vlen, struct it_rec *out);

/* The root record's bytes, and the MAC naming the state (the anchor's). */
void itree_root_encode(const struct it_root *r, uint8_t out[IT_ROOT_REC]);
int itree_root_decode(struct it_root *r, const uint8_t *p, size_t n);
void itree_root_mac(const struct volkeys *vk, const struct it_root *r, uint8_t out[IT_MAC]);

int itree_new(struct itree **out, const struct volkeys *vk, const struct it_root *root,
	      uint64_t snap);
void itree_free(struct itree *it);
void itree_root(struct itree *it, struct it_root *out);
/* Bound the caches: verified nodes, and owner-table entries (tests). */
void itree_set_caps(struct itree *it, size_t nodes, size_t entries);

/*
 * Check one record as read in io's view (val NULL: the key is absent).
 * ot is the write transaction's changes (NULL for a reader).  0 fresh;
 * -EIO stale, planted, deleted or the tree damaged (syslogged with the
 * inode); -EAGAIN the view is older than the committed state: check again
 * with io->own_root set to the view's root record; -ENOMEM.
 */
int itree_check(struct itree *it, struct itree_txn *ot, const struct it_io *io,
		enum it_db db, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen);

/* 1 when a commit overtook io's (reader's) view: a difference found with
 * the caches may be that, not damage. */
int itree_stale(struct itree *it, const struct it_io *io);

/* Records of owner's class in the committed (or this txn's) state. */
int itree_count(struct itree *it, struct itree_txn *ot, const struct it_io *io,
		uint64_t owner, enum it_cls cls, uint64_t *count);

int itree_txn_begin(struct itree *it, struct itree_txn **out);
void itree_txn_free(struct itree_txn *ot);
/* A record was written or deleted: what it was and is (NULL: absent). */
int itree_txn_note(struct itree_txn *ot, const struct it_io *io, enum it_db db,
		   const uint8_t *key, size_t klen, const struct it_rec *before,
		   const struct it_rec *after);

typedef int (*it_put_node)(void *ctx, unsigned level, uint64_t prefix, const uint8_t *data,
			   size_t len);
/*
 * Before the commit: fold the changes into the tree, storing each changed
 * node through put (data NULL: delete it).  *root gets the new root, and
 * *changed 0 when the transaction changed no record (nothing stored).
 */
int itree_txn_finish(struct itree_txn *ot, const struct it_io *io, it_put_node put,
		     struct it_root *root, int *changed);
/* After the commit (id snap) succeeded: the caches take the new state. */
void itree_txn_apply(struct itree_txn *ot, uint64_t snap, const struct it_root *root);

/*
 * Build the whole tree from the records in io's view (format upgrade,
 * fsck repair): every node through put; root->counter is kept, the rest
 * filled.  -ENOMEM, put's error.
 */
int itree_rebuild(const struct volkeys *vk, const struct it_io *io, it_put_node put,
		  struct it_root *root);

/* What a whole-tree check found wrong with one owner's slot. */
enum it_part {
	IT_PART_RECORD,		/* its inode record differs from the tree's */
	IT_PART_UNKNOWN,	/* an inode record the tree does not know (planted, resurrected) */
	IT_PART_MISSING,	/* the tree knows an inode whose record is gone */
	IT_PART_BULK,		/* its chunks, entries (or the volume's packs) */
	IT_PART_SMALL,		/* its xattrs, orphan mark (or the volume's counters) */
	IT_PART_NODE,		/* an inner tree node */
};

/*
 * Recompute every slot from the records and compare with the stored tree
 * under root (fsck, scrub): bad(ctx, owner, part) for each difference.
 * Returns the number of differences, or -errno.
 */
typedef void (*it_bad_cb)(void *ctx, uint64_t owner, enum it_part part);
long itree_verify_all(const struct volkeys *vk, const struct it_io *io, const struct it_root *root,
		      it_bad_cb bad, void *ctx);

#endif
