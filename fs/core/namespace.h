/*
 * namespace.h: names, attributes, xattrs and freeing inodes
 * (namespace.c), for fs/core only; the calls the daemon makes are in
 * core/mvfs.h.  The namespace uses file contents and the inode table.
 */
#ifndef MEDVAULT_NAMESPACE_H
#define MEDVAULT_NAMESPACE_H

#include "filedata.h"

/* free an unlinked inode nobody uses any more */
int ns_free_inode(struct mvfs *fs, uint64_t ino);
/* free every orphan left by a crash */
int ns_free_orphans(struct mvfs *fs);
/*
 * Finish the inodes the table released: free an unlinked one's records,
 * write back what a failed flush left, free the rest of its memory.
 * Call after dropping references, with no index transaction open and no
 * inode lock held: it runs write transactions and flushes.
 */
void ns_release_inodes(struct mvfs *fs);

#endif
