/*
 * snapshot: a consistent point-in-time copy of a store, taken without keys
 * and while the store is mounted and being written.
 */
#ifndef MEDVAULT_SNAPSHOT_H
#define MEDVAULT_SNAPSHOT_H

#include <stddef.h>
#include <stdio.h>

/*
 * Asks whoever serves STORE (the daemon, through the caller) to write back
 * everything buffered and seal its open pack, and returns when that is
 * done: 0, or -errno when nothing serves it or it did not answer.  Its
 * failure only costs a copy of the newest pack instead of a link, and
 * buffered writes younger than the flush age.
 */
typedef int snapshot_seal_fn(void *ctx, const char *store);

/*
 * Copy STORE to DEST (new, or an empty directory): seal (may be NULL) is
 * called once the snapshot lock is held, the index is copied from one
 * read transaction, and packs are hard-linked when DEST is on the same
 * filesystem, copied otherwise.  Compaction cannot delete a pack while
 * this runs.  -errno with one line in why.
 */
int snapshot_take(const char *store, const char *dest, FILE *progress, snapshot_seal_fn *seal,
		  void *seal_ctx, char *why, size_t whylen);

#endif
