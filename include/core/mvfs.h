/*
 * mvfs: the mounted filesystem's state shared by fs_ops (the FUSE
 * adapter), the inode table, file contents and namespace operations.
 *
 * Lock order: inode->lock, then fs->barrier (read), then index_write's
 * internal queue.  The table lock is a leaf: nothing else is taken while
 * holding it.
 */
#ifndef MEDVAULT_MVFS_H
#define MEDVAULT_MVFS_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "store/index.h"
#include "store/vault.h"

struct dirty_chunk {
	uint64_t idx;
	uint32_t len;		/* valid bytes from the chunk start */
	uint8_t *buf;		/* chunk_size bytes */
	struct dirty_chunk *next;
};

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
	struct mv_inode *hnext;
	/* on fs->active: open, or holding data a flush has not written;
	 * the flusher visits only these, never the whole table */
	struct mv_inode *anext, *aprev;
	int active;

	/*
	 * Pushing decrypted pages into the kernel's cache (notify_store) is
	 * only safe while no handle can write: a writer's pages may sit dirty
	 * in that cache, and a store would overwrite them.  Taken alone, never
	 * with lock held.
	 */
	pthread_mutex_t store_lock;
	uint32_t nwriters;	/* protected by store_lock */

	pthread_mutex_t lock;	/* protects everything below */
	struct aead *aead;	/* content key, made on first use */
	int size_loaded;	/* size below is the file's size */
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
};

struct audit;

/* largest READ or WRITE the daemon negotiates with the kernel */
#define MV_MAX_IO (1u << 20)
/* ext4's limit with 4 KiB blocks (2^32 - 1 blocks): larger sizes get EFBIG */
#define MV_MAX_FILE_SIZE (((1ull << 32) - 1) * 4096)

struct mvfs {
	struct vault *v;
	struct audit *audit;	/* access trail (fs/audit.c); NULL: not audited */
	uint32_t chunk_size;
	int writeback;		/* the kernel caches writes and owns mtime */
	int posix_acl;		/* the kernel enforces ACLs; we apply umask */
	int no_opendir;		/* the kernel skips OPENDIR once told ENOSYS */
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
	void *session;		/* struct fuse_session, for cache notifications */
	int storing;		/* threads inside a notify_store (fs_ops.c) */
};

int mvfs_create(struct mvfs **out, struct vault *v);
/* write everything back and free fs; the daemon's threads that use fs
 * must have stopped.  fs may be NULL. */
void mvfs_destroy(struct mvfs *fs);
/* start the sealing pool: call after fork().  -errno of pthread_create */
int mvfs_start_workers(struct mvfs *fs);
/* write back what has waited long enough (as of now); failures stay
 * buffered for the next call */
void mvfs_flush_due(struct mvfs *fs, time_t now);
/* write back everything buffered (not made durable: fs_checkpoint) */
void mvfs_flush_all(struct mvfs *fs);

/* what `medvault status` shows of the filesystem; counts only */
struct mvfs_counts {
	uint64_t inodes;	/* in the table */
	uint64_t open;		/* handles */
	uint64_t dirty_bytes;	/* buffered, not yet written back */
	uint64_t chunk_hits, chunk_loads;
	int64_t last_checkpoint;	/* unix seconds, 0: none yet */
};
void mvfs_counts(struct mvfs *fs, struct mvfs_counts *out);

struct compact_stats;
/* compact the packs below ratio while the filesystem serves (writers
 * wait only at the checkpoint barrier).  -errno of compact_run */
int mvfs_compact(struct mvfs *fs, double ratio, struct compact_stats *st);

/* ---- inode table (inode_table.c) ---- */
/* find or create and pin; -ENOMEM */
int itable_get(struct mvfs *fs, uint64_t ino, struct mv_inode **out);
/* find and pin if present, else NULL */
struct mv_inode *itable_find(struct mvfs *fs, uint64_t ino);
void itable_put(struct mvfs *fs, struct mv_inode *in);
/* count one kernel lookup of ino, reached as parent/name (name may be NULL) */
void itable_lookup_inc(struct mvfs *fs, uint64_t ino, uint64_t parent, const char *name);
/* remember that ino is now reached as parent/name (after a rename) */
void itable_set_name(struct mvfs *fs, uint64_t ino, uint64_t parent, const char *name);
/* "/a/b/c" as the kernel last reached ino; "<inode N>" parts where unknown */
void itable_path(struct mvfs *fs, uint64_t ino, char *buf, size_t len);
/* returns 1 when the inode was released and should be freed if unlinked */
void itable_forget(struct mvfs *fs, uint64_t ino, uint64_t n);
void itable_open_inc(struct mvfs *fs, struct mv_inode *in);
void itable_open_dec(struct mvfs *fs, struct mv_inode *in);
void itable_mark_unlinked(struct mvfs *fs, uint64_t ino);
/* 1 if in is unlinked and no handle has it open */
int itable_is_dead(struct mvfs *fs, struct mv_inode *in);
/* 1 if the kernel or a handle still uses ino */
int itable_in_use(struct mvfs *fs, uint64_t ino);
/* call fn on each pinned inode */
void itable_foreach(struct mvfs *fs, void (*fn)(struct mvfs *, struct mv_inode *, void *), void *arg);
/*
 * Visit the active inodes only (open, or with unwritten data): cost
 * follows the files in use, not the million the kernel may cache.  fn
 * returns non-zero while the inode still has unwritten data; a closed
 * inode for which it returns 0 leaves the list.
 */
void itable_foreach_active(struct mvfs *fs, int (*fn)(struct mvfs *, struct mv_inode *, void *),
			   void *arg);
/* keep in on the active list (a flush failed: the flusher retries it) */
void itable_activate(struct mvfs *fs, struct mv_inode *in);
/* free an inode no table references any more, with any chunks it still buffers */
void itable_free_inode(struct mvfs *fs, struct mv_inode *in);
/* inodes in the table */
size_t itable_count(struct mvfs *fs);
uint64_t mvfs_new_version(struct mvfs *fs);

/* ---- contents (filedata.c) ---- */
ssize_t filedata_read(struct mvfs *fs, struct mv_inode *in, char *buf, size_t size, off_t off);
ssize_t filedata_write(struct mvfs *fs, struct mv_inode *in, const char *buf, size_t size, off_t off);
/*
 * After a read smaller than a chunk: copy the whole chunk holding off (as
 * the last read left it decrypted) into buf (chunk_size bytes), so the
 * caller can hand the rest of it to the kernel's page cache.  Returns the
 * number of bytes (to the end of the file at most) and its file offset in
 * *start, or 0 when nothing is known.
 */
size_t filedata_chunk_peek(struct mvfs *fs, struct mv_inode *in, off_t off, uint8_t *buf,
			   uint64_t *start);
/* write back dirty chunks and size/mtime to the index */
int filedata_flush(struct mvfs *fs, struct mv_inode *in);
/* truncate to size (under the inode lock, committed at once) */
int filedata_truncate(struct mvfs *fs, struct mv_inode *in, uint64_t size, const struct timespec *now);
/* fallocate(2): mode 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE[|KEEP_SIZE] */
int filedata_fallocate(struct mvfs *fs, struct mv_inode *in, int mode, uint64_t off, uint64_t len);
/* drop every buffered chunk of in, written back or not */
void filedata_discard(struct mvfs *fs, struct mv_inode *in);
/* 1 while in holds data (or a size) not yet committed to the index */
int filedata_unwritten(struct mv_inode *in);
/* 1 if a flush would write an mtime the index does not have yet */
int filedata_mtime_pending(struct mv_inode *in);
/* overlay in-memory size/mtime onto a from-index record */
void filedata_overlay(struct mvfs *fs, struct mv_inode *in, struct mv_attr *a);
/* delete all chunks of ino (inside a write txn) */
int filedata_delete_chunks(struct index_txn *txn, uint64_t ino, uint64_t from_idx);
/* fsync: flush + durable checkpoint */
int fs_checkpoint(struct mvfs *fs);

/* ---- namespace (namespace.c) ---- */
struct ns_ctx { uint32_t uid, gid; mode_t umask; };
int ns_lookup(struct mvfs *fs, uint64_t parent, const char *name, struct mv_attr *out);
int ns_getattr(struct mvfs *fs, uint64_t ino, struct mv_attr *out);
int ns_mknod(struct mvfs *fs, const struct ns_ctx *c, uint64_t parent, const char *name,
	     mode_t mode, dev_t rdev, const char *link_target, struct mv_attr *out);
int ns_link(struct mvfs *fs, uint64_t ino, uint64_t newparent, const char *newname, struct mv_attr *out);
int ns_unlink(struct mvfs *fs, uint64_t parent, const char *name, int is_dir);
/* *moved (may be NULL) gets the inode now at newparent/newname, and
 * *swapped the one now at parent/name after RENAME_EXCHANGE (else 0) */
int ns_rename(struct mvfs *fs, uint64_t parent, const char *name, uint64_t newparent,
	      const char *newname, unsigned flags, uint64_t *moved, uint64_t *swapped);
#define NS_SET_MODE 1
#define NS_SET_UID 2
#define NS_SET_GID 4
#define NS_SET_SIZE 8
#define NS_SET_ATIME 16
#define NS_SET_MTIME 32
#define NS_SET_CTIME 64
/* clear set-user-ID / set-group-ID (ext4's "kill" on write, truncate, chown) */
#define NS_CLEAR_SUID 128
#define NS_CLEAR_SGID 256
int ns_setattr(struct mvfs *fs, uint64_t ino, const struct mv_attr *want, int mask, struct mv_attr *out);
int ns_setxattr(struct mvfs *fs, uint64_t ino, const char *name, const void *value, size_t len, int flags);
int ns_removexattr(struct mvfs *fs, uint64_t ino, const char *name);
ssize_t ns_getxattr(struct mvfs *fs, uint64_t ino, const char *name, void *value, size_t cap);
ssize_t ns_listxattr(struct mvfs *fs, uint64_t ino, char *list, size_t cap);
/* free an unlinked inode nobody uses any more */
int ns_free_inode(struct mvfs *fs, uint64_t ino);
/* free every orphan left by a crash */
int ns_free_orphans(struct mvfs *fs);
void ns_now(struct timespec *ts);

#endif
