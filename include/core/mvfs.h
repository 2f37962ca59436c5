/*
 * core/mvfs.h: the filesystem core as the daemon sees it (the FUSE adapter
 * in fs/daemon and the daemon's lifetime).  One call per request; the
 * core takes and drops its own locks, and calls back (readdir, read)
 * holding none of the index's transactions open for a reply.
 *
 * struct mvfs and struct mv_inode are opaque here: fs/core/core_int.h
 * defines them for the core alone.  An open file's handle is its
 * struct mv_inode.
 *
 * Functions return 0 (or a byte count) or -errno.
 */
#ifndef MEDVAULT_MVFS_H
#define MEDVAULT_MVFS_H

#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

#include "store/compact.h"
#include "store/index.h"
#include "store/vault.h"

struct mvfs;
struct mv_inode;
struct audit;

/* largest READ or WRITE the daemon negotiates with the kernel */
#define MV_MAX_IO (1u << 20)
/* ext4's limit with 4 KiB blocks (2^32 - 1 blocks): larger sizes get EFBIG */
#define MV_MAX_FILE_SIZE (((1ull << 32) - 1) * 4096)

/* ---- lifetime (mvfs.c) ---- */
/* frees the orphans a crash left; -ENOMEM */
int mvfs_create(struct mvfs **out, struct vault *v);
/* writes everything back and makes it durable; fs may be NULL */
void mvfs_destroy(struct mvfs *fs);
/* start the sealing pool: call after fork().  -errno of pthread_create.
 * The daemon's threads that call into fs stop before mvfs_destroy */
int mvfs_start_workers(struct mvfs *fs);
/* the access trail operations are recorded in (NULL: none; the default) */
void mvfs_set_audit(struct mvfs *fs, struct audit *audit);
struct audit *mvfs_audit(const struct mvfs *fs);
/* the daemon's FUSE session, kept for it (cache notifications) */
void mvfs_set_session(struct mvfs *fs, void *session);
void *mvfs_session(const struct mvfs *fs);
/*
 * What the kernel agreed to at INIT, before any other request:
 * writeback, the kernel caches writes and owns mtime (writes stamp
 * none); posix_acl, the kernel checks ACLs and sends the umask
 * unapplied (a parent's default ACL replaces it).
 */
void mvfs_set_kernel(struct mvfs *fs, int writeback, int posix_acl);

static inline void core_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

/* ---- inode references the kernel holds (core.c, inode_table.c) ---- */
/* count one kernel lookup of ino, reached as parent/name (name may be NULL);
 * call before the reply that hands it over.  The core_* calls that return
 * an entry (core_lookup, core_mknod, core_link, core_create) count it
 * themselves; a failed reply undoes it with core_forget(fs, ino, 1) */
void itable_lookup_inc(struct mvfs *fs, uint64_t ino, uint64_t parent, const char *name);
/* FORGET: drop n lookups; the last reference frees an unlinked inode */
void core_forget(struct mvfs *fs, uint64_t ino, uint64_t n);
/* FORGET_MULTI: n FORGETs, the i-th read through at(ctx, i, ...); the
 * inodes they release are finished once, after all of them */
typedef void (*core_forget_at_fn)(void *ctx, size_t i, uint64_t *ino, uint64_t *nlookup);
void core_forget_multi(struct mvfs *fs, size_t n, core_forget_at_fn at, void *ctx);
/* "/a/b/c" as the kernel last reached ino; "<inode N>" parts where unknown */
void itable_path(struct mvfs *fs, uint64_t ino, char *buf, size_t len);

/* ---- namespace (namespace.c) ---- */
struct ns_ctx { uint32_t uid, gid; mode_t umask; };
int ns_lookup(struct mvfs *fs, uint64_t parent, const char *name, struct mv_attr *out);
int ns_getattr(struct mvfs *fs, uint64_t ino, struct mv_attr *out);
/* a symlink's attributes, target included: -EINVAL not a symlink, -EIO
 * quarantined by fsck */
int ns_readlink(struct mvfs *fs, uint64_t ino, struct mv_attr *out);
int ns_mknod(struct mvfs *fs, const struct ns_ctx *c, uint64_t parent, const char *name,
	     mode_t mode, dev_t rdev, const char *link_target, struct mv_attr *out);
int ns_link(struct mvfs *fs, uint64_t ino, uint64_t newparent, const char *newname, struct mv_attr *out);
int ns_unlink(struct mvfs *fs, uint64_t parent, const char *name, int is_dir);
/* ns_unlink, and *ino (may be NULL) the inode parent/name named, 0 if it
 * named none, set even when the unlink fails (ENOTEMPTY, EISDIR...) */
int core_unlink(struct mvfs *fs, uint64_t parent, const char *name, int is_dir, uint64_t *ino);
/* ns_lookup, ns_mknod and ns_link that also count the kernel's lookup of
 * the entry they return (itable_lookup_inc), for LOOKUP, MKNOD, MKDIR,
 * SYMLINK and LINK: their errors */
int core_lookup(struct mvfs *fs, uint64_t parent, const char *name, struct mv_attr *out);
int core_mknod(struct mvfs *fs, const struct ns_ctx *c, uint64_t parent, const char *name,
	       mode_t mode, dev_t rdev, const char *link_target, struct mv_attr *out);
int core_link(struct mvfs *fs, uint64_t ino, uint64_t newparent, const char *newname,
	      struct mv_attr *out);
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
/*
 * Who asks, for ext4's set-ID rules (Linux fs/attr.c); uid 0 stands for
 * CAP_FSETID, which the core cannot see.  in_group (may be NULL: no
 * supplementary groups) answers whether the caller is in supplementary
 * group gid; it is called only when the rule needs it, with no lock held.
 */
struct core_caller {
	uint32_t uid, gid;
	int (*in_group)(void *ctx, uint32_t gid);
	void *ctx;
};
/*
 * Which set-ID kill a SETATTR stands for, when the kernel leaves kills to
 * the filesystem (FUSE_HANDLE_KILLPRIV_V2):
 * CORE_KILL_CHANGE: its kill flag on a truncate (mask has NS_SET_SIZE) or
 *   a chown (NS_SET_UID/GID);
 * CORE_KILL_EMPTY: nothing at all: on a regular file the kernel's
 *   file_remove_privs() ahead of an unprivileged write, fallocate or
 *   copy_file_range; on anything else chown(f, -1, -1);
 * CORE_KILL_CTIME: nothing but a ctime, chown(f, -1, -1) of a regular file.
 */
#define CORE_KILL_NONE 0
#define CORE_KILL_CHANGE 1
#define CORE_KILL_EMPTY 2
#define CORE_KILL_CTIME 3
/*
 * SETATTR: ns_setattr, clearing the set-ID bits kill asks for as ext4
 * would (who may be NULL with CORE_KILL_NONE).  Nothing to set at all
 * still marks the change (ctime), as chown(f, -1, -1) does on ext4.
 * ns_setattr's errors, -EPERM (a chown(f, -1, -1) that would clear bits
 * of a file the caller does not own).
 */
int core_setattr(struct mvfs *fs, uint64_t ino, const struct mv_attr *want, int mask, int kill,
		 const struct core_caller *who, struct mv_attr *out);
int ns_setxattr(struct mvfs *fs, uint64_t ino, const char *name, const void *value, size_t len, int flags);
int ns_removexattr(struct mvfs *fs, uint64_t ino, const char *name);
ssize_t ns_getxattr(struct mvfs *fs, uint64_t ino, const char *name, void *value, size_t cap);
ssize_t ns_listxattr(struct mvfs *fs, uint64_t ino, char *list, size_t cap);
/* LISTXATTR: ns_listxattr, without the trusted.* names if hide_trusted
 * (ext4 lists them only to CAP_SYS_ADMIN).  cap 0: the length only.
 * -ERANGE, -ENOMEM, -ENOENT, -EIO */
ssize_t core_listxattr(struct mvfs *fs, uint64_t ino, int hide_trusted, char *list, size_t cap);
/*
 * One entry of a listing, called with the index's read transaction open:
 * fill a buffer, nothing more (no reply, no lock, no call into the core).
 * attr is the entry's attributes in a READDIRPLUS listing, NULL for "."
 * and ".." and in a plain one (then only ino and mode's type are known).
 * Returns 0 when it took the entry, 1 when the buffer is full.
 */
typedef int (*ns_dirent_fn)(void *ctx, const char *name, uint64_t ino, mode_t mode,
			    const struct mv_attr *attr, uint64_t next_off);
/*
 * List dir from readdir offset off ("." and ".." first).  With plus, each
 * entry fn takes counts as a kernel lookup.  An entry whose inode cannot
 * be read ends the listing; its error is returned only if fn took nothing.
 * -ENOENT, -EIO.
 */
int ns_readdir(struct mvfs *fs, uint64_t dir, uint64_t off, int plus, ns_dirent_fn fn, void *ctx);

/* ---- open files (core.c, filedata.c) ---- */
/* OPEN with open(2) flags (O_TRUNC truncates a writable handle): *out is
 * the handle.  -ENOMEM, or ns_setattr's errors */
int core_open(struct mvfs *fs, uint64_t ino, int flags, struct mv_inode **out);
/* CREATE: a regular file parent/name, or the one a racing creator made
 * unless O_EXCL; *attr its attributes, *out its handle.  Counts the
 * kernel's lookup of it, as core_lookup does.  ns_mknod's errors, -EISDIR */
int core_create(struct mvfs *fs, const struct ns_ctx *c, uint64_t parent, const char *name,
		mode_t mode, int flags, struct mv_attr *attr, struct mv_inode **out);
/* RELEASE: write back and drop the handle (flags as at open).  A failed
 * write-back stays buffered for the flusher; flush and fsync report it */
void core_release(struct mvfs *fs, struct mv_inode *in, int flags);
/*
 * READ, answered through reply exactly once, with no lock held: the data
 * (n bytes, in a buffer valid during the call) or -errno in n.  After a
 * small read, push (may be NULL) is offered the rest of the chunk the
 * read decrypted, for the kernel's page cache; it is called only while no
 * handle may write the file, and must not wait for a READ to be answered.
 */
typedef void (*core_reply_fn)(void *ctx, const void *buf, ssize_t n);
typedef void (*core_push_fn)(void *ctx, uint64_t off, const void *buf, size_t len);
void core_read(struct mvfs *fs, struct mv_inode *in, size_t size, off_t off,
	       core_reply_fn reply, core_push_fn push, void *ctx);
ssize_t filedata_write(struct mvfs *fs, struct mv_inode *in, const char *buf, size_t size, off_t off);
/*
 * WRITE: filedata_write, nothing at or past MV_MAX_FILE_SIZE and short up
 * to it (as ext4).  With kill_for (may be NULL), the write first clears
 * the set-ID bits ext4 clears for that caller (the kernel's
 * FUSE_WRITE_KILL_SUIDGID).  Bytes written, -EFBIG, ns_setattr's and
 * filedata_write's errors.
 */
ssize_t core_write(struct mvfs *fs, struct mv_inode *in, const char *buf, size_t size, off_t off,
		   const struct core_caller *kill_for);
/* write back dirty chunks and size/mtime to the index */
int filedata_flush(struct mvfs *fs, struct mv_inode *in);
/* fallocate(2): mode 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE[|KEEP_SIZE] */
int filedata_fallocate(struct mvfs *fs, struct mv_inode *in, int mode, uint64_t off, uint64_t len);
/* FSYNC: write back in and make everything written so far durable */
int core_fsync(struct mvfs *fs, struct mv_inode *in);
/* make everything written back so far durable (packs and index) */
int fs_checkpoint(struct mvfs *fs);

/* ---- the store as a whole (core.c) ---- */
/* STATFS in 4 KiB units: the store's disk, and the inodes in use */
int core_statfs(struct mvfs *fs, struct statvfs *out);

/* ---- for the daemon's background work (core.c) ---- */
struct compact_stats;
/* the store the core runs on (its packs for sealing, its index's counts) */
struct vault *mvfs_vault(const struct mvfs *fs);
/* write back every file whose buffered data has waited age_s seconds,
 * and the sizes and times not yet written */
void core_flush_due(struct mvfs *fs, time_t now, unsigned age_s);
/* write back everything buffered (before the open pack is sealed) */
void core_flush_all(struct mvfs *fs);
/*
 * Compact packs below ratio while the filesystem runs; afterwards the
 * dead-bytes count that triggers early compaction starts again.  Runs are
 * serialised, whichever thread asks.  background: the daemon's timer or
 * dead-byte trigger; what those deleted is summed, and an explicit run
 * (background 0) reports that sum in st->earlier_* and restarts it.  A burst of deletes often trips the dead-byte
 * trigger within a second or two, so a `medvault compact` just after
 * finds nothing left to do, and its report must be able to say the space
 * already came back.  compact_run's -errno.
 */
int core_compact(struct mvfs *fs, double ratio, int background, FILE *progress,
		 struct compact_stats *st);
/* counters for `medvault status`, read approximately */
struct core_status {
	uint64_t inodes;	/* in the inode table */
	uint64_t open;		/* open handles */
	uint64_t dirty_bytes;	/* written, not yet written back */
	uint64_t chunk_hits;	/* chunks served from memory */
	uint64_t chunk_loads;	/* chunks read and opened from packs */
	int64_t last_checkpoint;	/* unix seconds */
};
void core_status(struct mvfs *fs, struct core_status *out);

#endif
