/*
 * snapshot: a consistent point-in-time copy of a store, taken without keys
 * and while the store is mounted and being written.
 */
#ifndef MEDVAULT_SNAPSHOT_H
#define MEDVAULT_SNAPSHOT_H

#include <stddef.h>
#include <stdio.h>

/*
 * Copy STORE to DEST (new, or an empty directory): the daemon (if any) is
 * asked to seal its open pack, the index is copied from one read
 * transaction, and packs are hard-linked when DEST is on the same
 * filesystem, copied otherwise.  Compaction cannot delete a pack while
 * this runs.  -errno with one line in why.
 */
int snapshot_take(const char *store, const char *dest, FILE *progress, char *why, size_t whylen);

#endif
