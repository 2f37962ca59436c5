/*
 * The core's entry points for the daemon that span its modules: open
 * handles and their writer count, reads that also feed the kernel's page
 * cache, forgetting inodes, statfs, and the settings the daemon makes.
 * Each request is one call here; the locks it needs are taken and
 * dropped here, never in the adapter.
 *
 * Calls only downward: core -> namespace -> filedata -> inode_table.
 *
 * The background work at the end (write-back by age, compaction, status)
 * is what the daemon's flusher thread needs; mvfs.c's flusher still does
 * it by hand until it moves to fs/daemon.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <syslog.h>

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
	int rc = open_handle(fs, ino, flags, out);

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
	return rc;
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

	if (statvfs(fs->v->store, sv) < 0)
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
