/*
 * The file-system core without FUSE, for unit tests: "mount" is
 * vault_open + mvfs_create, and the few calls every test makes (create a
 * file, write a pattern, read it back) go through the core API exactly as
 * the FUSE adapter would.  No sealing pool or flusher thread is started:
 * filedata runs its parallel loops in the calling thread when fs->par is
 * NULL, and the tests flush and checkpoint explicitly.
 */
#ifndef MEDVAULT_FSUTIL_H
#define MEDVAULT_FSUTIL_H

#include "testutil.h"
#include "core/mvfs.h"
/* white-box tests of the core: its internal headers too */
#include "../../fs/core/namespace.h"

/*
 * The inode table queues released inodes and their owner frees them once
 * it holds no transaction (ns_release_inodes), as core_forget and
 * core_release do for the daemon.  These tests drop references one at a
 * time, so each drop is followed by that drain.
 */
static inline void t_itable_put(struct mvfs *fs, struct mv_inode *in)
{
	itable_put(fs, in);
	ns_release_inodes(fs);
}

static inline void t_itable_forget(struct mvfs *fs, uint64_t ino, uint64_t n)
{
	itable_forget(fs, ino, n);
	ns_release_inodes(fs);
}

static inline void t_itable_open_dec(struct mvfs *fs, struct mv_inode *in)
{
	itable_open_dec(fs, in);
	ns_release_inodes(fs);
}
#define itable_put t_itable_put
#define itable_forget t_itable_forget
#define itable_open_dec t_itable_open_dec

struct tu_fs {
	struct vault *v;
	struct mvfs *fs;
};

/* o NULL: read-write; &tu_read_only for a copy that is only looked at */
static inline int tu_mount_opts(const struct tu_env *e, const char *store,
				const struct vault_open_opts *o, struct tu_fs *m)
{
	int rc;

	m->v = NULL;
	m->fs = NULL;
	if ((rc = tu_vault_open_opts(e, store, o, &m->v)) < 0)
		return rc;
	if ((rc = mvfs_create(&m->fs, m->v)) < 0) {
		vault_close(m->v);
		m->v = NULL;
	}
	return rc;
}

static inline int tu_mount(const struct tu_env *e, const char *store, struct tu_fs *m)
{
	return tu_mount_opts(e, store, NULL, m);
}

/* an orderly unmount: everything written back, orphans freed */
static inline void tu_umount(struct tu_fs *m)
{
	mvfs_destroy(m->fs);
	vault_close(m->v);
	m->fs = NULL;
	m->v = NULL;
}

static inline void tu_mount_or_bail(const struct tu_env *e, const char *store, struct tu_fs *m)
{
	int rc = tu_mount(e, store, m);

	if (rc < 0)
		tu_bail("mount", rc, store);
}

static const struct ns_ctx tu_ctx = { 1000, 1000, 022 };

/* mknod/mkdir: the new inode number, or -errno */
static inline int64_t tu_mk(struct mvfs *fs, uint64_t parent, const char *name, mode_t mode)
{
	struct mv_attr a;
	int rc = ns_mknod(fs, &tu_ctx, parent, name, mode, 0, NULL, &a);

	return rc < 0 ? rc : (int64_t)a.ino;
}

static inline uint64_t tu_mk_or_bail(struct mvfs *fs, uint64_t parent, const char *name, mode_t mode)
{
	int64_t ino = tu_mk(fs, parent, name, mode);

	if (ino < 0)
		tu_bail("ns_mknod", (int)ino, name);
	return (uint64_t)ino;
}

/* Write len bytes of pattern seed at off, in pieces of at most piece bytes
 * (0: one call); flush when asked.  Returns 0 or -errno. */
static inline int tu_write(struct mvfs *fs, uint64_t ino, uint64_t off, size_t len, uint32_t seed,
			   size_t piece, int flush)
{
	struct mv_inode *in;
	char *buf = malloc(len ? len : 1);
	size_t done = 0;
	int rc;

	if (!buf)
		return -ENOMEM;
	tu_fill(buf, len, off, seed);
	if ((rc = itable_get(fs, ino, &in)) < 0) {
		free(buf);
		return rc;
	}
	while (done < len) {
		size_t n = piece && len - done > piece ? piece : len - done;
		ssize_t w = filedata_write(fs, in, buf + done, n, (off_t)(off + done));

		if (w < 0) {
			rc = (int)w;
			break;
		}
		if ((size_t)w != n) {
			rc = -EIO;
			break;
		}
		done += n;
	}
	if (rc == 0 && flush)
		rc = filedata_flush(fs, in);
	itable_put(fs, in);
	free(buf);
	return rc;
}

/* Read len bytes at off into buf; the byte count or -errno. */
static inline ssize_t tu_read(struct mvfs *fs, uint64_t ino, char *buf, size_t len, uint64_t off)
{
	struct mv_inode *in;
	ssize_t n;
	int rc;

	if ((rc = itable_get(fs, ino, &in)) < 0)
		return rc;
	n = filedata_read(fs, in, buf, len, (off_t)off);
	itable_put(fs, in);
	return n;
}

/* 1 if [off, off+len) reads back as pattern seed, in one read */
static inline int tu_read_check(struct mvfs *fs, uint64_t ino, uint64_t off, size_t len, uint32_t seed)
{
	char *buf = malloc(len ? len : 1);
	ssize_t n;
	int same;

	if (!buf)
		return 0;
	n = tu_read(fs, ino, buf, len, off);
	same = n == (ssize_t)len && tu_check(buf, len, off, seed);
	if (!same)
		printf("# read of %zu at %llu: %zd%s\n", len, (unsigned long long)off, n,
		       n == (ssize_t)len ? " bytes, wrong contents" : "");
	free(buf);
	return same;
}

/* 1 if [off, off+len) reads back as zeros */
static inline int tu_read_zero(struct mvfs *fs, uint64_t ino, uint64_t off, size_t len)
{
	char *buf = malloc(len ? len : 1);
	ssize_t n;
	int zero;

	if (!buf)
		return 0;
	memset(buf, 0x5a, len);
	n = tu_read(fs, ino, buf, len, off);
	zero = n == (ssize_t)len && tu_is_zero(buf, len);
	free(buf);
	return zero;
}

static inline uint64_t tu_size(struct mvfs *fs, uint64_t ino)
{
	struct mv_attr a;

	return ns_getattr(fs, ino, &a) == 0 ? a.size : UINT64_MAX;
}

/* chunk records of ino in the index (-errno on failure) */
static inline int tu_chunk_count_cb(void *ctx, uint64_t ino, uint64_t idx, const struct chunk_rec *c)
{
	(void)ino;
	(void)idx;
	(void)c;
	(*(int *)ctx)++;
	return 0;
}

static inline int tu_chunk_count(struct vault *v, uint64_t ino)
{
	struct index_txn *t;
	int n = 0, rc;

	if ((rc = index_read_begin(v->ix, &t)) < 0)
		return rc;
	rc = index_chunk_iter(t, ino, 0, tu_chunk_count_cb, &n);
	index_read_end(t);
	return rc < 0 ? rc : n;
}

static inline int tu_chunk_get(struct vault *v, uint64_t ino, uint64_t idx, struct chunk_rec *c)
{
	struct index_txn *t;
	int rc;

	if ((rc = index_read_begin(v->ix, &t)) < 0)
		return rc;
	rc = index_chunk_get(t, ino, idx, c);
	index_read_end(t);
	return rc;
}

static inline int tu_orphans(struct vault *v, uint64_t *inos, int max)
{
	struct index_txn *t;
	int rc;

	if ((rc = index_read_begin(v->ix, &t)) < 0)
		return rc;
	rc = index_orphan_list(t, inos, max);
	index_read_end(t);
	return rc;
}

#endif
