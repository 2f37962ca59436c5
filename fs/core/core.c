/*
 * The core's entry points for the daemon that span its modules: open
 * handles and their writer count, reads that also feed the kernel's page
 * cache, forgetting inodes, statfs, and the settings the daemon makes.
 * Each request is one call here; the locks it needs are taken and
 * dropped here, never in the adapter.
 *
 * Calls only downward: core -> namespace -> filedata -> inode_table.
 *
 * The background steps at the end (write-back by age, compaction, status)
 * are driven by the daemon's flusher thread (fs/daemon/daemon.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <syslog.h>

#include "store/blobstore.h"
#include "store/compact.h"
#include "util/bufpool.h"
#include "namespace.h"

/* ---- settings ---- */

void mvfs_set_audit(struct mvfs *fs, struct audit *audit)
{
	fs->audit = audit;
}

struct audit *mvfs_audit(const struct mvfs *fs)
{
	return fs->audit;
}

void mvfs_set_session(struct mvfs *fs, void *session)
{
	fs->session = session;
}

void *mvfs_session(const struct mvfs *fs)
{
	return fs->session;
}

void mvfs_set_kernel(struct mvfs *fs, int writeback, int posix_acl)
{
	fs->writeback = writeback;
	fs->posix_acl = posix_acl;
}

/* ---- inode references ---- */

void core_forget(struct mvfs *fs, uint64_t ino, uint64_t n)
{
	itable_forget(fs, ino, n);
	ns_release_inodes(fs);
}

void core_forget_multi(struct mvfs *fs, size_t n, core_forget_at_fn at, void *ctx)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t ino, nlookup;

		at(ctx, i, &ino, &nlookup);
		itable_forget(fs, ino, nlookup);
	}
	ns_release_inodes(fs);
}

/* Count the kernel's lookup of the entry a request hands over, before
 * the reply: a FORGET may follow it at once. */
static int entry_counted(struct mvfs *fs, int rc, const struct mv_attr *a, uint64_t parent,
			 const char *name)
{
	if (rc == 0)
		itable_lookup_inc(fs, a->ino, parent, name);
	return rc;
}

int core_lookup(struct mvfs *fs, uint64_t parent, const char *name, struct mv_attr *out)
{
	return entry_counted(fs, ns_lookup(fs, parent, name, out), out, parent, name);
}

int core_mknod(struct mvfs *fs, const struct ns_ctx *c, uint64_t parent, const char *name,
	       mode_t mode, dev_t rdev, const char *link_target, struct mv_attr *out)
{
	return entry_counted(fs, ns_mknod(fs, c, parent, name, mode, rdev, link_target, out), out,
			     parent, name);
}

int core_link(struct mvfs *fs, uint64_t ino, uint64_t newparent, const char *newname,
	      struct mv_attr *out)
{
	return entry_counted(fs, ns_link(fs, ino, newparent, newname, out), out, newparent, newname);
}

/* ---- set-user-ID and set-group-ID ---- */

static int caller_in_group(const struct core_caller *who, uint32_t gid)
{
	return who->gid == gid || (who->in_group && who->in_group(who->ctx, gid));
}

/*
 * With FUSE_HANDLE_KILLPRIV_V2 the kernel leaves clearing set-user-ID
 * and set-group-ID to us.  ext4's rule (Linux fs/attr.c): set-user-ID
 * always goes; set-group-ID goes when group-execute is set, or when the
 * caller is neither in the file's group nor privileged.  A write or
 * truncate by a privileged caller keeps both, but the kernel only asks
 * for unprivileged ones there; a chown clears them on anything but a
 * directory, whoever calls.
 */
static int suidgid_to_clear(const struct core_caller *who, const struct mv_attr *a, int chown)
{
	int mask = 0;

	if (chown ? S_ISDIR(a->mode) : (!S_ISREG(a->mode) || who->uid == 0))
		return 0;
	if (a->mode & S_ISUID)
		mask |= NS_CLEAR_SUID;
	if ((a->mode & S_ISGID) &&
	    ((a->mode & S_IXGRP) || (who->uid != 0 && !caller_in_group(who, a->gid))))
		mask |= NS_CLEAR_SGID;
	return mask;
}

/*
 * The kill is decided on attributes read just before the setattr's
 * transaction, not inside it: the caller's groups may cost a syscall
 * (in_group), which must not run with the index's writer held.
 */
int core_setattr(struct mvfs *fs, uint64_t ino, const struct mv_attr *want, int mask, int kill,
		 const struct core_caller *who, struct mv_attr *out)
{
	struct mv_attr w = *want;

	if (kill != CORE_KILL_NONE) {
		struct mv_attr cur;
		int chown_noop, chown, clear, rc;

		if ((rc = ns_getattr(fs, ino, &cur)) < 0)
			return rc;
		chown_noop = kill == CORE_KILL_CTIME || (kill == CORE_KILL_EMPTY && !S_ISREG(cur.mode));
		chown = chown_noop || (mask & (NS_SET_UID | NS_SET_GID));
		clear = suidgid_to_clear(who, &cur, chown);
		/* chown(f, -1, -1) changes nothing: only the owner may */
		if (clear && chown_noop && who->uid != 0 && who->uid != cur.uid)
			return -EPERM;
		mask |= clear;
	}
	if (mask == 0) {
		struct timespec now;

		core_now(&now);
		mask = NS_SET_CTIME;
		w.ctime_s = now.tv_sec;
		w.ctime_ns = (uint32_t)now.tv_nsec;
	}
	return ns_setattr(fs, ino, &w, mask, out);
}

/* ---- xattrs ---- */

/* Drop the trusted.* names from a NUL-separated list; its new length. */
static size_t drop_trusted(char *list, size_t n)
{
	size_t in = 0, out = 0;

	while (in < n) {
		size_t len = strnlen(list + in, n - in) + 1;

		if (strncmp(list + in, "trusted.", 8)) {
			memmove(list + out, list + in, len);
			out += len;
		}
		in += len;
	}
	return out;
}

/* Filtering needs the whole list: read it in one transaction, so its
 * length and its names agree. */
ssize_t core_listxattr(struct mvfs *fs, uint64_t ino, int hide_trusted, char *list, size_t cap)
{
	struct index_txn *t;
	struct mv_attr at;
	char *all = NULL;
	ssize_t n;

	if (!hide_trusted)
		return ns_listxattr(fs, ino, list, cap);
	if ((n = index_read_begin(fs->v->ix, &t)) < 0)
		return n;
	n = index_inode_get(t, ino, &at);
	if (n == 0)
		n = index_xattr_list(t, ino, NULL, 0);
	if (n > 0 && !(all = malloc((size_t)n)))
		n = -ENOMEM;
	if (n > 0)
		n = index_xattr_list(t, ino, all, (size_t)n);
	index_read_end(t);
	if (n > 0)
		n = (ssize_t)drop_trusted(all, (size_t)n);
	if (n > 0 && cap) {
		if ((size_t)n > cap)
			n = -ERANGE;
		else
			memcpy(list, all, (size_t)n);
	}
	free(all);
	return n;
}

/* ---- open files ---- */

static int writable(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

static int open_handle(struct mvfs *fs, uint64_t ino, int flags, struct mv_inode **out)
{
	struct mv_inode *in;
	int rc;

	if ((rc = itable_get(fs, ino, &in)) < 0)
		return rc;
	itable_open_inc(fs, in);
	itable_put(fs, in);	/* never the last reference: the open holds one */
	/* writeback-cache writes can come through any handle (mmap, or the
	 * kernel's own writeback): count every handle that may write */
	if (writable(flags)) {
		pthread_mutex_lock(&in->store_lock);
		in->nwriters++;
		pthread_mutex_unlock(&in->store_lock);
	}
	*out = in;
	return 0;
}

void core_release(struct mvfs *fs, struct mv_inode *in, int flags)
{
	if (writable(flags)) {
		pthread_mutex_lock(&in->store_lock);
		in->nwriters--;
		pthread_mutex_unlock(&in->store_lock);
	}
	filedata_flush(fs, in);
	itable_open_dec(fs, in);
	ns_release_inodes(fs);
}

int core_open(struct mvfs *fs, uint64_t ino, int flags, struct mv_inode **out)
{
	int rc;

	if (writable(flags) && fs_read_only(fs))
		return -EROFS;
	rc = open_handle(fs, ino, flags, out);

	if (rc == 0 && (flags & O_TRUNC) && writable(flags)) {
		struct mv_attr want = { .size = 0 }, attr;

		rc = ns_setattr(fs, ino, &want, NS_SET_SIZE, &attr);
		if (rc < 0)
			core_release(fs, *out, flags);
	}
	return rc;
}

int core_create(struct mvfs *fs, const struct ns_ctx *c, uint64_t parent, const char *name,
		mode_t mode, int flags, struct mv_attr *attr, struct mv_inode **out)
{
	int rc = ns_mknod(fs, c, parent, name, S_IFREG | (mode & 07777), 0, NULL, attr);

	if (rc == -EEXIST && !(flags & O_EXCL)) {
		/* lost a race with another creator: open the winner's file */
		rc = ns_lookup(fs, parent, name, attr);
		if (rc == 0 && S_ISDIR(attr->mode))
			rc = -EISDIR;
	}
	if (rc == 0)
		rc = open_handle(fs, attr->ino, flags, out);
	if (rc == 0)
		itable_lookup_inc(fs, attr->ino, parent, name);
	return rc;
}

ssize_t core_write(struct mvfs *fs, struct mv_inode *in, const char *buf, size_t size, off_t off,
		   const struct core_caller *kill_for)
{
	if (fs_read_only(fs))
		return -EROFS;
	/* like ext4: nothing at or past the largest size, short up to it */
	if ((uint64_t)off >= MV_MAX_FILE_SIZE)
		return -EFBIG;
	if (size > MV_MAX_FILE_SIZE - (uint64_t)off)
		size = (size_t)(MV_MAX_FILE_SIZE - (uint64_t)off);
	if (kill_for) {
		struct mv_attr cur, out, none = { 0 };
		int clear, rc;

		rc = ns_getattr(fs, in->ino, &cur);
		if (rc == 0 && (clear = suidgid_to_clear(kill_for, &cur, 0)))
			rc = ns_setattr(fs, in->ino, &none, clear, &out);
		if (rc < 0)
			return rc;
	}
	return filedata_write(fs, in, buf, size, off);
}

int core_fsync(struct mvfs *fs, struct mv_inode *in)
{
	int rc = filedata_flush(fs, in);

	return rc < 0 ? rc : fs_checkpoint(fs);
}

/*
 * How many threads may be pushing pages at once.  A push (notify_store)
 * locks the page-cache pages it fills, and a page the kernel is reading
 * ahead stays locked until some worker answers that READ: if every FUSE
 * worker waited on such a page, or on a thread that does, nobody would
 * read /dev/fuse again (seen: all 16 workers stuck, 15 of them queued
 * behind one store).  So pushes are optional and never waited for.
 */
#define PUSHES_MAX 2

/*
 * A small read made us open a whole chunk: offer the rest of it, so the
 * neighbouring reads (random 4 KiB reads of a 64 KiB chunk) are served
 * from the kernel's page cache with no round trip.  Only after the reply,
 * when the pages of this request are unlocked again, and only if no other
 * push of this file or too many pushes overall are under way.  store_lock
 * is held across push, a syscall: it is what keeps a writer from opening
 * (and dirtying pages the push would overwrite) until the push is done.
 */
static void push_rest_of_chunk(struct mvfs *fs, struct mv_inode *in, off_t off, size_t n,
			       core_push_fn push, void *ctx)
{
	uint8_t *chunk;
	uint64_t start = 0;
	size_t len;

	if (__atomic_add_fetch(&fs->storing, 1, __ATOMIC_ACQ_REL) > PUSHES_MAX)
		goto out;
	if (pthread_mutex_trylock(&in->store_lock) != 0)
		goto out;
	/* a pooled chunk buffer: mlocked, like all plaintext */
	if (!(chunk = bufpool_get(fs->chunks))) {
		pthread_mutex_unlock(&in->store_lock);
		goto out;
	}
	len = in->nwriters ? 0 : filedata_chunk_peek(fs, in, off, chunk, &start);
	if (len) {
		uint64_t lo = (uint64_t)off, hi = (uint64_t)off + n, end = start + len;

		if (lo > start)
			push(ctx, start, chunk, (size_t)(lo - start));
		if (hi < end)
			push(ctx, hi, chunk + (hi - start), (size_t)(end - hi));
	}
	pthread_mutex_unlock(&in->store_lock);
	bufpool_put(fs->chunks, chunk);
out:
	__atomic_sub_fetch(&fs->storing, 1, __ATOMIC_ACQ_REL);
}

void core_read(struct mvfs *fs, struct mv_inode *in, size_t size, off_t off,
	       core_reply_fn reply, core_push_fn push, void *ctx)
{
	uint8_t *buf;
	ssize_t n;

	/* the reply is plaintext: it lives in a pooled, mlocked buffer that
	 * is wiped when the pool lets it go, never in the malloc heap.  The
	 * kernel asks for at most max_write (max_pages); a short reply to a
	 * cached read would mean end of file, so never trim a request. */
	if (size > MV_MAX_IO) {
		reply(ctx, NULL, -EIO);
		return;
	}
	if (!(buf = bufpool_get(fs->replies))) {
		reply(ctx, NULL, -ENOMEM);
		return;
	}
	n = filedata_read(fs, in, (char *)buf, size, off);
	reply(ctx, buf, n);
	bufpool_put(fs->replies, buf);
	if (push && n > 0 && size < fs->chunk_size)
		push_rest_of_chunk(fs, in, off, (size_t)n, push, ctx);
}

/* ---- the store as a whole ---- */

int core_statfs(struct mvfs *fs, struct statvfs *sv)
{
	struct index_txn *t;
	uint64_t files = 0, unit;

	if (fstatvfs(blobstore_dirfd(fs->v->bs), sv) < 0)
		return -errno;
	/* a count that cannot be read leaves the free inodes alone */
	if (index_read_begin(fs->v->ix, &t) == 0) {
		index_count_inodes(t, &files);
		index_read_end(t);
	}
	/* report in 4 KiB units whatever the backing filesystem uses */
	unit = sv->f_frsize ? sv->f_frsize : sv->f_bsize;
	sv->f_blocks = sv->f_blocks * unit / 4096;
	sv->f_bfree = sv->f_bfree * unit / 4096;
	sv->f_bavail = sv->f_bavail * unit / 4096;
	sv->f_bsize = 4096;
	sv->f_frsize = 4096;
	sv->f_files = files + sv->f_ffree;
	sv->f_namemax = INDEX_NAME_MAX;
	return 0;
}

/* ---- background work ---- */

struct vault *mvfs_vault(const struct mvfs *fs)
{
	return fs->v;
}

struct due_arg {
	time_t now;
	unsigned age;
};

static int flush_due(struct mvfs *fs, struct mv_inode *in, void *arg)
{
	struct due_arg *a = arg;
	int due;

	pthread_mutex_lock(&in->lock);
	due = (in->ndirty && a->now - in->dirty_since >= (time_t)a->age) ||
	      (!in->ndirty && in->content_dirty);
	pthread_mutex_unlock(&in->lock);
	if (due)
		filedata_flush(fs, in);
	return filedata_unwritten(in);
}

void core_flush_due(struct mvfs *fs, time_t now, unsigned age_s)
{
	struct due_arg a = { now, age_s };

	itable_foreach_active(fs, flush_due, &a);
	ns_release_inodes(fs);	/* inodes whose last user went meanwhile */
}

static void flush_one(struct mvfs *fs, struct mv_inode *in, void *arg)
{
	(void)arg;
	filedata_flush(fs, in);
}

void core_flush_all(struct mvfs *fs)
{
	itable_foreach(fs, flush_one, NULL);
	ns_release_inodes(fs);
}

static int checkpoint_cb(void *ctx)
{
	return fs_checkpoint(ctx);
}

int core_compact(struct mvfs *fs, double ratio, int background, FILE *progress,
		 struct compact_stats *st)
{
	int rc;

	if (fs_read_only(fs)) {
		memset(st, 0, sizeof(*st));
		st->earlier_age_s = -1;
		return -EROFS;
	}
	pthread_mutex_lock(&fs->compact_lock);
	rc = compact_run(fs->v, ratio, &fs->barrier, checkpoint_cb, fs, progress, st);
	/* after the run: its own moves must not trigger the next one */
	index_dead_bytes_reset(fs->v->ix);
	if (background) {
		if (rc == 0 && st->packs_deleted) {
			fs->bg_compact_at = time(NULL);
			fs->bg_packs_deleted += st->packs_deleted;
			fs->bg_bytes_freed += st->bytes_freed;
		}
	} else {
		if (fs->bg_compact_at) {
			st->earlier_age_s = (int64_t)(time(NULL) - fs->bg_compact_at);
			st->earlier_packs_deleted = fs->bg_packs_deleted;
			st->earlier_bytes_freed = fs->bg_bytes_freed;
			syslog(LOG_INFO, "compaction requested: background runs had deleted %" PRIu64
			       " packs (%" PRIu64 " bytes freed), the latest %lld s ago",
			       fs->bg_packs_deleted, fs->bg_bytes_freed, (long long)st->earlier_age_s);
		}
		fs->bg_compact_at = 0;
		fs->bg_packs_deleted = fs->bg_bytes_freed = 0;
	}
	pthread_mutex_unlock(&fs->compact_lock);
	return rc;
}

static int sum_status(struct mvfs *fs, struct mv_inode *in, void *arg)
{
	struct core_status *s = arg;

	pthread_mutex_lock(&fs->table_lock);
	s->open += in->nopen;
	pthread_mutex_unlock(&fs->table_lock);
	pthread_mutex_lock(&in->lock);
	s->dirty_bytes += (uint64_t)in->ndirty * fs->chunk_size;
	pthread_mutex_unlock(&in->lock);
	return filedata_unwritten(in);
}

void core_status(struct mvfs *fs, struct core_status *s)
{
	memset(s, 0, sizeof(*s));
	s->inodes = itable_count(fs);
	itable_foreach_active(fs, sum_status, s);
	ns_release_inodes(fs);
	s->chunk_hits = __atomic_load_n(&fs->stat_chunk_hits, __ATOMIC_RELAXED);
	s->chunk_loads = __atomic_load_n(&fs->stat_chunk_loads, __ATOMIC_RELAXED);
	s->last_checkpoint = __atomic_load_n(&fs->last_checkpoint, __ATOMIC_RELAXED);
}
