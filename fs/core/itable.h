/*
 * itable.h: the in-memory inode table (inode_table.c), for fs/core only.
 *
 * The table only counts references.  When an inode's last one goes
 * (kernel lookups, open handles, pins), the table unhooks it and queues
 * it; it never writes anything back or frees records itself.  Whoever
 * dropped a reference calls ns_release_inodes() once it is outside any
 * index transaction and inode lock (see namespace.h).
 */
#ifndef MEDVAULT_ITABLE_H
#define MEDVAULT_ITABLE_H

#include "core_int.h"

/* find or create and pin; -ENOMEM */
int itable_get(struct mvfs *fs, uint64_t ino, struct mv_inode **out);
/* find and pin if present, else NULL */
struct mv_inode *itable_find(struct mvfs *fs, uint64_t ino);
/* unpin; in may be NULL */
void itable_put(struct mvfs *fs, struct mv_inode *in);
/* drop n kernel lookups of ino */
void itable_forget(struct mvfs *fs, uint64_t ino, uint64_t n);
/* itable_lookup_inc and itable_path: see core/mvfs.h */
/* remember that ino is now reached as parent/name (after a rename) */
void itable_set_name(struct mvfs *fs, uint64_t ino, uint64_t parent, const char *name);
void itable_open_inc(struct mvfs *fs, struct mv_inode *in);
void itable_open_dec(struct mvfs *fs, struct mv_inode *in);
void itable_mark_unlinked(struct mvfs *fs, uint64_t ino);
/* 1 if in is unlinked and no handle has it open */
int itable_is_dead(struct mvfs *fs, struct mv_inode *in);
/* 1 if the kernel or a handle still uses ino */
int itable_in_use(struct mvfs *fs, uint64_t ino);
/* call fn on each inode, pinned meanwhile */
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
/* the next released inode, now the caller's alone; NULL when none */
struct mv_inode *itable_next_released(struct mvfs *fs);
/* free the entry of an inode the table no longer holds: locks, name and
 * the struct.  Its contents must be gone already (filedata_release). */
void itable_free_inode(struct mvfs *fs, struct mv_inode *in);
/* inodes in the table */
size_t itable_count(struct mvfs *fs);
uint64_t mvfs_new_version(struct mvfs *fs);

#endif
