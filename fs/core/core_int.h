/*
 * core_int.h: the core's shared state, for fs/core only.  The daemon sees
 * struct mvfs and struct mv_inode as opaque (core/mvfs.h).
 *
 * Lock order: inode->lock, then fs->barrier (read), then index_write's
 * internal queue.  The table lock is a leaf: nothing else is taken while
 * holding it.
 *
 * Who calls whom inside fs/core, one way only (each header includes the
 * one below it):
 *   core.c, mvfs.c -> namespace.h -> filedata.h -> itable.h -> core_int.h
 */
#ifndef MEDVAULT_CORE_INT_H
#define MEDVAULT_CORE_INT_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "core/mvfs.h"

struct dirty_chunk {
	uint64_t idx;
	uint32_t len;		/* valid bytes from the chunk start */
	uint8_t *buf;		/* chunk_size bytes */
	struct dirty_chunk *next;
};

/* chunk keys an inode keeps (a new one every mount that writes it) */
#define MV_GEN_KEYS 8

/* One inode the kernel knows about (nlookup > 0) or that is open. */
struct mv_inode {
	uint64_t ino;
	/* protected by fs->table_lock */
	uint64_t nlookup;
	uint32_t nopen;
	uint32_t pins;		/* short-lived references from fs code */
	int unlinked;		/* nlink reached 0: free when unused */
	uint64_t name_parent;	/* the name the kernel last reached it by, */
	char *name;		/* for audit paths (NULL: not known) */
	/* the table's hash chain; once released, the release queue */
	struct mv_inode *hnext;
	/* on fs->active: open, or holding data a flush has not written;
	 * the flusher visits only these, never the whole table */
	struct mv_inode *anext, *aprev;
	int active;

	/*
	 * Pushing decrypted pages into the kernel's cache (notify_store) is
	 * only safe while no handle can write: a writer's pages may sit dirty
	 * in that cache, and a store would overwrite them.  Taken alone, never
	 * with lock held; only core.c takes it.
	 */
	pthread_mutex_t store_lock;
	uint32_t nwriters;	/* protected by store_lock */

	pthread_mutex_t lock;	/* protects everything below */
	struct aead *aead;	/* the file key, made on first use (format-2 chunks) */
	int size_loaded;	/* size below is the file's size */
	int quarantined;	/* fsck could not verify it (INDEX_FLAG_QUARANTINED) */
	int content_dirty;	/* size below is newer than the index */
	int mtime_dirty;	/* mtime below is newer than the index */
	uint64_t size;
	struct timespec mtime;
	struct dirty_chunk *dirty;
	unsigned ndirty;
	time_t dirty_since;
	/*
	 * Chunks a writer detached from dirty and is writing back without
	 * holding lock, so other writes keep filling while they are sealed
	 * and appended.  Read-only until that writer frees them under lock;
	 * at most one such group per inode, so commits keep version order.
	 */
	struct dirty_chunk *inflight;
	int inflight_mtime;	/* the inflight commit also writes mtime */
	pthread_cond_t inflight_done;	/* broadcast when inflight empties */
	/* the last chunk read, decrypted: small reads need not reopen it */
	uint8_t *rbuf;
	uint64_t gen;		/* bumped when committed contents change */
	uint64_t ridx;
	uint32_t rlen;
	int rvalid;

	/*
	 * Format 3's chunk keys, one per key generation (volkeys_chunk_gen),
	 * made on first use and kept until filedata_release, so readers use
	 * them without holding lock and a read does not derive per chunk.
	 * Never evicted (a pointer handed out stays valid): past
	 * MV_GEN_KEYS generations a caller gets a key of its own to free.
	 */
	pthread_mutex_t keys_lock;
	struct gen_key { uint64_t gen; struct aead *aead; } gkeys[MV_GEN_KEYS];
	unsigned ngkeys;	/* protected by keys_lock */
};

struct audit;

struct mvfs {
	struct vault *v;
	struct audit *audit;	/* access trail (fs/audit); NULL: not audited */
	uint32_t chunk_size;
	int writeback;		/* the kernel caches writes and owns mtime */
	int posix_acl;		/* the kernel enforces ACLs; we apply umask */
	unsigned dirty_max;	/* per inode, in chunks, before write-back */
	unsigned flush_group;	/* chunks sealed and committed together */
	struct bufpool *chunks;	/* chunk_size plaintext buffers */
	struct bufpool *batches;	/* sealed write-back batches */
	struct bufpool *sealed;		/* one sealed chunk, for reads */
	struct bufpool *replies;	/* MV_MAX_IO plaintext READ replies */
	struct chunkcache *cache;	/* recently read chunks, all files */
	size_t batch_size;
	struct parallel *par;	/* sealing and opening run here */

	pthread_mutex_t table_lock;
	struct mv_inode **table;
	size_t table_size, table_count;
	struct mv_inode *active;	/* list head (table_lock) */
	/* unhooked inodes waiting for ns_release_inodes (table_lock) */
	struct mv_inode *released;

	/*
	 * Appending chunks and committing their records holds this for
	 * reading; a checkpoint takes it for writing so that the index it
	 * syncs never names pack bytes the pack sync did not cover.
	 */
	pthread_rwlock_t barrier;

	pthread_mutex_t sync_lock;	/* fsync sharing: see fs_checkpoint() */
	pthread_cond_t sync_cond;
	uint64_t sync_started, sync_done;
	int syncing;
	int sync_error;

	uint64_t next_version;	/* protected by table_lock */

	/* for `medvault status`; relaxed atomics, read approximately */
	uint64_t stat_chunk_hits;	/* chunks served from memory */
	uint64_t stat_chunk_loads;	/* chunks read and opened from packs */
	int64_t last_checkpoint;	/* unix seconds */
	void *session;		/* the daemon's, for cache notifications */
	int storing;		/* threads pushing pages (core_read) */

	/* one compaction at a time (core_compact); guards bg_compact too */
	pthread_mutex_t compact_lock;
	/* what background runs deleted since the last explicit one */
	time_t bg_compact_at;	/* the latest of them; 0: none */
	uint64_t bg_packs_deleted, bg_bytes_freed;
};

/* opened --read-only: every change is refused with EROFS at the core's
 * entry points, before anything is buffered (the index would refuse the
 * commit too, but only after a write had been acknowledged) */
static inline int fs_read_only(const struct mvfs *fs)
{
	return fs->v->read_only;
}

#endif
