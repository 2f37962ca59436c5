/*
 * index_fixture: a vault-like index written through the normal store API,
 * for the tests, the fuzz target and the bench tool that need real LMDB
 * files of some shape: a root directory, subdirectories of files, each
 * file with an inode record, a directory entry, chunk records, some with
 * xattrs (one large enough for overflow pages), pack records, the meta
 * counters and an orphan.  Deterministic for a given (first, count).
 */
#ifndef MEDVAULT_INDEX_FIXTURE_H
#define MEDVAULT_INDEX_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "store/index.h"

#define IXF_PER_DIR 1000	/* files per subdirectory */

struct ixf_batch {
	uint64_t first, count;	/* file numbers [first, first + count) */
};

static inline uint64_t ixf_dir_ino(uint64_t file)
{
	return 2 + file / IXF_PER_DIR * (IXF_PER_DIR + 1);
}

static inline uint64_t ixf_file_ino(uint64_t file)
{
	return ixf_dir_ino(file) + 1 + file % IXF_PER_DIR;
}

static inline void ixf_attr(struct mv_attr *a, uint64_t ino, uint32_t mode, uint64_t parent,
			    uint64_t size)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->mode = mode;
	a->uid = 1000;
	a->gid = 1000;
	a->nlink = S_ISDIR(mode) ? 2 : 1;
	a->size = size;
	a->blocks = (size + 511) / 512;
	a->atime_s = a->mtime_s = a->ctime_s = 1700000000 + (int64_t)ino;
	a->parent = parent;
}

/* one batch of files (and the directories they start), in one transaction */
static inline int ixf_write(struct index_txn *t, void *arg)
{
	const struct ixf_batch *b = arg;
	struct mv_attr a;
	char name[64];
	int rc;

	if (b->first == 0) {
		ixf_attr(&a, INDEX_ROOT_INO, S_IFDIR | 0755, INDEX_ROOT_INO, 4096);
		if ((rc = index_inode_put(t, &a)) < 0 || (rc = index_meta_put(t, "epoch", 1)) < 0 ||
		    (rc = index_meta_put(t, "format", 1)) < 0 || (rc = index_orphan_add(t, 999999)) < 0)
			return rc;
	}
	for (uint64_t f = b->first; f < b->first + b->count; f++) {
		uint64_t ino = ixf_file_ino(f), size = 1000 + (f * 7919) % 200000;
		struct chunk_rec c = { 0 };

		if (f % IXF_PER_DIR == 0) {
			uint64_t d = ixf_dir_ino(f);

			ixf_attr(&a, d, S_IFDIR | 0750, INDEX_ROOT_INO, 4096);
			snprintf(name, sizeof(name), "study-%06llu", (unsigned long long)(f / IXF_PER_DIR));
			if ((rc = index_inode_put(t, &a)) < 0 ||
			    (rc = index_dirent_put(t, INDEX_ROOT_INO, name, strlen(name), d, 4)) < 0)
				return rc;
		}
		ixf_attr(&a, ino, S_IFREG | 0640, 0, size);
		snprintf(name, sizeof(name), "IM-%04llu-%06llu.dcm", (unsigned long long)(f % 97),
			 (unsigned long long)f);
		if ((rc = index_inode_put(t, &a)) < 0 ||
		    (rc = index_dirent_put(t, ixf_dir_ino(f), name, strlen(name), ino, 8)) < 0)
			return rc;
		for (uint64_t i = 0; i * 65536 < size; i++) {
			c.pack = 1 + f / 300;
			c.off = 32 + (f % 300) * 70000 + i * 65564;
			c.plain_len = (uint32_t)(size - i * 65536 < 65536 ? size - i * 65536 : 65536);
			c.len = c.plain_len + 28;
			c.version = 1ull << 40 | f;
			if ((rc = index_chunk_put(t, ino, i, &c)) < 0)
				return rc;
		}
		if (f % 300 == 0 && (rc = index_pack_account(t, 1 + f / 300, 300 * 70000, 300 * 70000)) < 0)
			return rc;
		if (f % 50 == 7 && (rc = index_xattr_put(t, ino, "user.study", "1.2.840.113619", 14)) < 0)
			return rc;
		if (f % 1000 == 3) {
			static uint8_t big[6000];

			for (size_t i = 0; i < sizeof(big); i++)
				big[i] = (uint8_t)(i * 31 + f);
			if ((rc = index_xattr_put(t, ino, "user.big", big, sizeof(big))) < 0)
				return rc;
		}
	}
	return index_meta_put(t, "next_ino", ixf_file_ino(b->first + b->count - 1) + 1);
}

/* delete every file f of [first, first + count) with f % 3 == 0 (its
 * entry and every record of its inode): leaves free pages behind */
static inline int ixf_purge(struct index_txn *t, void *arg)
{
	const struct ixf_batch *b = arg;
	char name[64];
	int rc;

	for (uint64_t f = b->first; f < b->first + b->count; f++) {
		if (f % 3)
			continue;
		snprintf(name, sizeof(name), "IM-%04llu-%06llu.dcm", (unsigned long long)(f % 97),
			 (unsigned long long)f);
		if ((rc = index_dirent_del(t, ixf_dir_ino(f), name, strlen(name))) < 0 ||
		    (rc = index_inode_purge(t, ixf_file_ino(f))) < 0)
			return rc;
	}
	return 0;
}

/* Files [0, n) in batches of batch; 0 or the first error. */
static inline int ixf_fill(struct index *ix, uint64_t n, uint64_t batch)
{
	for (uint64_t f = 0; f < n; f += batch) {
		struct ixf_batch b = { f, n - f < batch ? n - f : batch };
		int rc = index_write(ix, ixf_write, &b);

		if (rc < 0)
			return rc;
	}
	return index_sync(ix);
}

#endif
