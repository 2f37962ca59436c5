/*
 * filedata.h: file contents (filedata.c), for fs/core only; the calls the
 * daemon makes are in core/mvfs.h.  filedata uses the inode table, never
 * the namespace.
 */
#ifndef MEDVAULT_FILEDATA_H
#define MEDVAULT_FILEDATA_H

#include <sys/types.h>

#include "itable.h"

ssize_t filedata_read(struct mvfs *fs, struct mv_inode *in, char *buf, size_t size, off_t off);
/*
 * After a read smaller than a chunk: copy the whole chunk holding off (as
 * the last read left it decrypted) into buf (chunk_size bytes), so the
 * caller can hand the rest of it to the kernel's page cache.  Returns the
 * number of bytes (to the end of the file at most) and its file offset in
 * *start, or 0 when nothing is known.
 */
size_t filedata_chunk_peek(struct mvfs *fs, struct mv_inode *in, off_t off, uint8_t *buf,
			   uint64_t *start);
/* truncate to size (under the inode lock, committed at once) */
int filedata_truncate(struct mvfs *fs, struct mv_inode *in, uint64_t size, const struct timespec *now);
/* drop every buffered chunk of in, written back or not */
void filedata_discard(struct mvfs *fs, struct mv_inode *in);
/* free all content state of an inode nobody references any more */
void filedata_release(struct mvfs *fs, struct mv_inode *in);
/* 1 while in holds data (or a size) not yet committed to the index */
int filedata_unwritten(struct mv_inode *in);
/* 1 if a flush would write an mtime the index does not have yet */
int filedata_mtime_pending(struct mv_inode *in);
/* overlay in-memory size/mtime onto a from-index record */
void filedata_overlay(struct mvfs *fs, struct mv_inode *in, struct mv_attr *a);

#endif
