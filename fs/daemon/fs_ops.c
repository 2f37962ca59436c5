/*
 * The FUSE adapter: decode the request, make one call into mvfs, send
 * exactly one reply.  No locks are held here.
 */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/statvfs.h>

#include "audit/audit.h"
#include "util/bufpool.h"
#include "daemon/fs_ops.h"
#include "daemon/fuse_io.h"
#include "core/mvfs.h"

#define ATTR_TIMEOUT 1.0
#define ENTRY_TIMEOUT 1.0

static struct mvfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void attr_to_stat(const struct mv_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_rdev = a->rdev;
	st->st_size = (off_t)a->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)a->blocks;
	st->st_atim.tv_sec = a->atime_s;
	st->st_atim.tv_nsec = a->atime_ns;
	st->st_mtim.tv_sec = a->mtime_s;
	st->st_mtim.tv_nsec = a->mtime_ns;
	st->st_ctim.tv_sec = a->ctime_s;
	st->st_ctim.tv_nsec = a->ctime_ns;
}

static void fill_entry(struct fuse_entry_param *e, const struct mv_attr *a)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->ino;
	e->generation = 0;	/* inode numbers are never reused */
	attr_to_stat(a, &e->attr);
	e->attr_timeout = ATTR_TIMEOUT;
	e->entry_timeout = ENTRY_TIMEOUT;
}

/* Reply with a new entry, reached as parent/name, counting the kernel's
 * lookup first. */
static void reply_entry(fuse_req_t req, int rc, const struct mv_attr *a, uint64_t parent,
			const char *name)
{
	struct fuse_entry_param e;

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	itable_lookup_inc(fs_of(req), a->ino, parent, name);
	fill_entry(&e, a);
	if (fuse_reply_entry(req, &e) != 0)
		itable_forget(fs_of(req), a->ino, 1);
}

/* ---- the access trail: queue one record (never blocks on I/O) ---- */

static void audit_req(fuse_req_t req, int op, int rc, uint64_t ino, const char *path,
		      const char *path2, const char *detail)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	struct audit_event e = {
		.op = op, .result = rc < 0 ? -rc : 0, .uid = c->uid, .gid = c->gid,
		.pid = (uint32_t)c->pid, .ino = ino, .path = path, .path2 = path2, .detail = detail,
	};

	audit_log(fs_of(req)->audit, &e);
}

/* parent's path + "/" + name, as the kernel reached it */
static void audit_child_path(struct mvfs *fs, uint64_t parent, const char *name, char *buf, size_t len)
{
	size_t n;

	itable_path(fs, parent, buf, len);
	n = strlen(buf);
	snprintf(buf + n, len - n, "%s%s", n == 1 && buf[0] == '/' ? "" : "/", name);
}

static void mv_init(void *userdata, struct fuse_conn_info *conn)
{
	struct mvfs *fs = userdata;

	conn->max_write = MV_MAX_IO;
	conn->max_readahead = MV_MAX_IO;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/*
	 * Directory handles hold no state here (a readdir offset is a stable
	 * position in the directory's hash order), so the kernel may skip
	 * OPENDIR and RELEASEDIR: two round trips fewer for every directory
	 * an ls -lR or find walks.
	 */
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) {
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
		fs->no_opendir = 1;
	}
	/*
	 * No atomic O_TRUNC: with the writeback cache the kernel stamps the
	 * truncated file's mtime itself after OPEN returns and never sends
	 * that time, so the stored mtime (ours) and the one stat showed (the
	 * kernel's) differed after a remount.  Without it the kernel sends
	 * SETATTR(size 0, its mtime), and both agree.
	 */
	conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
	/* locks stay in the kernel: one mount, so local locking is exact */
	conn->want &= ~(unsigned)(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	/*
	 * The kernel's page cache absorbs small writes and sends large,
	 * concurrent ones; it flushes them on close and fsync, and keeps
	 * size and mtime itself meanwhile.
	 */
	/* ACLs checked by the kernel, kept consistent with modes by us */
	if ((conn->capable & FUSE_CAP_POSIX_ACL) && (conn->capable & FUSE_CAP_DONT_MASK)) {
		/* the umask must reach us unapplied: a default ACL replaces it */
		conn->want |= FUSE_CAP_POSIX_ACL | FUSE_CAP_DONT_MASK;
		fs->posix_acl = 1;
	}
	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE) {
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
		fs->writeback = 1;
	}
}

static void mv_destroy(void *userdata)
{
	(void)userdata;
}

static void mv_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mv_attr a;
	int rc = ns_lookup(fs_of(req), parent, name, &a);

	if (rc == -ENOENT) {
		/* a negative entry the kernel may cache: every create goes
		 * through it, so it can never hide a file */
		struct fuse_entry_param e = { .ino = 0, .entry_timeout = ENTRY_TIMEOUT };

		fuse_reply_entry(req, &e);
		return;
	}
	reply_entry(req, rc, &a, parent, name);
}

static void mv_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	itable_forget(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void mv_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++)
		itable_forget(fs_of(req), f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

static void mv_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mv_attr a;
	struct stat st;
	int rc;

	(void)fi;
	rc = ns_getattr(fs_of(req), ino, &a);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	attr_to_stat(&a, &st);
	fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

/* Is the caller in group gid, as its primary or a supplementary group? */
static int caller_in_group(fuse_req_t req, gid_t gid)
{
	gid_t some[32], *list = some;
	int n, found = 0;

	if (fuse_req_ctx(req)->gid == gid)
		return 1;
	n = fuse_req_getgroups(req, 32, some);
	if (n > 32) {
		if (!(list = malloc((size_t)n * sizeof(*list))))
			return 0;
		n = fuse_req_getgroups(req, n, list);
	}
	for (int i = 0; i < n && !found; i++)
		found = list[i] == gid;
	if (list != some)
		free(list);
	return found;
}

/*
 * With FUSE_HANDLE_KILLPRIV_V2 (fuse_io.c) the kernel leaves clearing
 * set-user-ID and set-group-ID to us.  ext4's rule (Linux fs/attr.c):
 * set-user-ID always goes; set-group-ID goes when group-execute is set,
 * or when the caller is neither in the file's group nor privileged.  A
 * write or truncate by a privileged caller keeps both, but the kernel
 * only asks for unprivileged ones there; a chown clears them on anything
 * but a directory, whoever calls.  uid 0 stands for CAP_FSETID, which we
 * cannot see.
 */
static int suidgid_to_clear(fuse_req_t req, const struct mv_attr *a, int chown)
{
	uid_t uid = fuse_req_ctx(req)->uid;
	int mask = 0;

	if (chown ? S_ISDIR(a->mode) : (!S_ISREG(a->mode) || uid == 0))
		return 0;
	if (a->mode & S_ISUID)
		mask |= NS_CLEAR_SUID;
	if ((a->mode & S_ISGID) &&
	    ((a->mode & S_IXGRP) || (uid != 0 && !caller_in_group(req, a->gid))))
		mask |= NS_CLEAR_SGID;
	return mask;
}

/*
 * Which kill a SETATTR stands for, when the kernel leaves kills to us:
 * its FATTR_KILL_SUIDGID (libfuse's KILL_SUID bit) on truncate and
 * chown.  chown(f, -1, -1) arrives as nothing but a ctime (a regular
 * file, whose times the kernel keeps) or as nothing at all; on ext4 it
 * clears the bits too, and so needs the owner when there are bits to
 * clear.  Nothing at all on a regular file is the kernel's
 * file_remove_privs() ahead of a write, fallocate or copy_file_range by
 * an unprivileged caller.
 */
static int setattr_kill(fuse_req_t req, fuse_ino_t ino, int to_set, int *mask)
{
	struct mv_attr cur;
	int chown_noop, chown, kill, rc;

	if (!fuse_io_killpriv_v2() ||
	    !(to_set == 0 || to_set == FUSE_SET_ATTR_CTIME || (to_set & FUSE_SET_ATTR_KILL_SUID)))
		return 0;
	if ((rc = ns_getattr(fs_of(req), ino, &cur)) < 0)
		return rc;
	chown_noop = to_set == FUSE_SET_ATTR_CTIME || (to_set == 0 && !S_ISREG(cur.mode));
	chown = chown_noop || (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID));
	kill = suidgid_to_clear(req, &cur, chown);
	if (kill && chown_noop && fuse_req_ctx(req)->uid != 0 && fuse_req_ctx(req)->uid != cur.uid)
		return -EPERM;
	*mask |= kill;
	return 0;
}

static void mv_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct mv_attr want = { 0 }, out;
	struct timespec now;
	struct stat st;
	int mask = 0, rc;

	(void)fi;
	ns_now(&now);
	if (to_set & FUSE_SET_ATTR_MODE) {
		mask |= NS_SET_MODE;
		want.mode = attr->st_mode;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		mask |= NS_SET_UID;
		want.uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		mask |= NS_SET_GID;
		want.gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		mask |= NS_SET_SIZE;
		want.size = (uint64_t)attr->st_size;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		struct timespec t = (to_set & FUSE_SET_ATTR_ATIME_NOW) ? now : attr->st_atim;

		mask |= NS_SET_ATIME;
		want.atime_s = t.tv_sec;
		want.atime_ns = (uint32_t)t.tv_nsec;
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		struct timespec t = (to_set & FUSE_SET_ATTR_MTIME_NOW) ? now : attr->st_mtim;

		mask |= NS_SET_MTIME;
		want.mtime_s = t.tv_sec;
		want.mtime_ns = (uint32_t)t.tv_nsec;
	}
	if (to_set & FUSE_SET_ATTR_CTIME) {
		mask |= NS_SET_CTIME;
		want.ctime_s = attr->st_ctim.tv_sec;
		want.ctime_ns = (uint32_t)attr->st_ctim.tv_nsec;
	}
	if ((rc = setattr_kill(req, ino, to_set, &mask)) < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	/* nothing to set is chown(f, -1, -1) (the kernel strips the rest):
	 * on ext4 it still marks the change */
	if (mask == 0) {
		mask = NS_SET_CTIME;
		want.ctime_s = now.tv_sec;
		want.ctime_ns = (uint32_t)now.tv_nsec;
	}
	rc = ns_setattr(fs_of(req), ino, &want, mask, &out);
	if (fs_of(req)->audit && (mask & (NS_SET_SIZE | NS_SET_MODE | NS_SET_UID | NS_SET_GID))) {
		char path[AUDIT_PATH_MAX + 1], d[64];

		itable_path(fs_of(req), ino, path, sizeof(path));
		if (mask & NS_SET_SIZE) {
			snprintf(d, sizeof(d), "size=%llu", (unsigned long long)want.size);
			audit_req(req, AUDIT_OP_TRUNCATE, rc, ino, path, NULL, d);
		}
		if (mask & NS_SET_MODE) {
			snprintf(d, sizeof(d), "mode=%04o", (unsigned)(want.mode & 07777));
			audit_req(req, AUDIT_OP_CHMOD, rc, ino, path, NULL, d);
		}
		if (mask & (NS_SET_UID | NS_SET_GID)) {
			d[0] = '\0';
			if (mask & NS_SET_UID)
				snprintf(d, sizeof(d), "uid=%u", (unsigned)want.uid);
			if (mask & NS_SET_GID)
				snprintf(d + strlen(d), sizeof(d) - strlen(d), "%sgid=%u",
					 d[0] ? " " : "", (unsigned)want.gid);
			audit_req(req, AUDIT_OP_CHOWN, rc, ino, path, NULL, d);
		}
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	attr_to_stat(&out, &st);
	fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

static void ctx_of(fuse_req_t req, struct ns_ctx *c)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);

	c->uid = fc->uid;
	c->gid = fc->gid;
	c->umask = fc->umask;
}

static void mv_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct ns_ctx c;
	struct mv_attr a;

	ctx_of(req, &c);
	reply_entry(req, ns_mknod(fs_of(req), &c, parent, name, mode, rdev, NULL, &a), &a, parent, name);
}

static void mv_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct ns_ctx c;
	struct mv_attr a;

	ctx_of(req, &c);
	reply_entry(req, ns_mknod(fs_of(req), &c, parent, name, S_IFDIR | (mode & 07777), 0, NULL, &a), &a,
		    parent, name);
}

static void mv_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct ns_ctx c;
	struct mv_attr a;

	ctx_of(req, &c);
	reply_entry(req, ns_mknod(fs_of(req), &c, parent, name, S_IFLNK | 0777, 0, link, &a), &a,
		    parent, name);
}

static void mv_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct mv_attr a;

	reply_entry(req, ns_link(fs_of(req), ino, newparent, newname, &a), &a, newparent, newname);
}

static void do_unlink(fuse_req_t req, fuse_ino_t parent, const char *name, int is_dir)
{
	struct mvfs *fs = fs_of(req);
	char path[AUDIT_PATH_MAX + 1];
	struct mv_attr a = { .ino = 0 };
	int rc;

	if (fs->audit) {
		audit_child_path(fs, parent, name, path, sizeof(path));
		if (ns_lookup(fs, parent, name, &a) < 0)
			a.ino = 0;
	}
	rc = ns_unlink(fs, parent, name, is_dir);
	if (fs->audit)
		audit_req(req, is_dir ? AUDIT_OP_RMDIR : AUDIT_OP_UNLINK, rc, a.ino, path, NULL, NULL);
	fuse_reply_err(req, -rc);
}

static void mv_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_unlink(req, parent, name, 0);
}

static void mv_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_unlink(req, parent, name, 1);
}

static void mv_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct mvfs *fs = fs_of(req);
	char from[AUDIT_PATH_MAX + 1], to[AUDIT_PATH_MAX + 1];
	uint64_t moved = 0;
	int rc;

	if (fs->audit) {
		audit_child_path(fs, parent, name, from, sizeof(from));
		audit_child_path(fs, newparent, newname, to, sizeof(to));
	}
	rc = ns_rename(fs, parent, name, newparent, newname, flags, &moved, NULL);
	if (fs->audit)
		audit_req(req, AUDIT_OP_RENAME, rc, moved, from, to,
			  (flags & RENAME_EXCHANGE) ? "exchange" : (flags & RENAME_NOREPLACE) ? "noreplace" : NULL);
	fuse_reply_err(req, -rc);
}

static void mv_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct mv_attr a;
	int rc = ns_getattr(fs_of(req), ino, &a);

	if (rc == 0 && !S_ISLNK(a.mode))
		rc = -EINVAL;
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, a.symlink);
}

/* ---- files ---- */

static int open_handle(struct mvfs *fs, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mv_inode *in;
	int rc;

	if ((rc = itable_get(fs, ino, &in)) < 0)
		return rc;
	itable_open_inc(fs, in);
	itable_put(fs, in);
	/* writeback-cache writes can come through any handle (mmap, or the
	 * kernel's own writeback): count every handle that may write */
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		pthread_mutex_lock(&in->store_lock);
		in->nwriters++;
		pthread_mutex_unlock(&in->store_lock);
	}
	fi->fh = (uint64_t)(uintptr_t)in;
	/* this daemon is the only way to the data: cached pages stay valid */
	fi->keep_cache = 1;
	return 0;
}

static void close_handle(struct mvfs *fs, struct fuse_file_info *fi)
{
	struct mv_inode *in = (struct mv_inode *)(uintptr_t)fi->fh;

	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		pthread_mutex_lock(&in->store_lock);
		in->nwriters--;
		pthread_mutex_unlock(&in->store_lock);
	}
	filedata_flush(fs, in);
	itable_open_dec(fs, in);
}

static void mv_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct mvfs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct ns_ctx c;
	struct mv_attr a;
	int rc, refused;

	ctx_of(req, &c);
	/* fail closed: no new file while the access trail cannot be written */
	refused = rc = audit_allowed(fs->audit);
	if (rc == 0)
		rc = ns_mknod(fs, &c, parent, name, S_IFREG | (mode & 07777), 0, NULL, &a);
	if (rc == -EEXIST && !(fi->flags & O_EXCL)) {
		/* lost a race with another creator: open the winner's file */
		rc = ns_lookup(fs, parent, name, &a);
		if (rc == 0 && S_ISDIR(a.mode))
			rc = -EISDIR;
	}
	if (rc == 0)
		rc = open_handle(fs, a.ino, fi);
	if (fs->audit) {
		char path[AUDIT_PATH_MAX + 1], d[64];

		audit_child_path(fs, parent, name, path, sizeof(path));
		snprintf(d, sizeof(d), "mode=%04o%s", (unsigned)(mode & 07777),
			 refused ? " refused: audit log unavailable" : "");
		audit_req(req, AUDIT_OP_CREATE, rc, rc == 0 ? a.ino : 0, path, NULL, d);
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	itable_lookup_inc(fs, a.ino, parent, name);
	fill_entry(&e, &a);
	if (fuse_reply_create(req, &e, fi) != 0) {
		close_handle(fs, fi);
		itable_forget(fs, a.ino, 1);
	}
}

static void mv_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mvfs *fs = fs_of(req);
	int refused = audit_allowed(fs->audit);	/* fail closed */
	int rc = refused ? refused : open_handle(fs, ino, fi);

	if (rc == 0 && (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY) {
		struct mv_attr want = { .size = 0 }, out;

		rc = ns_setattr(fs, ino, &want, NS_SET_SIZE, &out);
		if (rc < 0)
			close_handle(fs, fi);
	}
	if (fs->audit) {
		char path[AUDIT_PATH_MAX + 1];
		int acc = fi->flags & O_ACCMODE;

		itable_path(fs, ino, path, sizeof(path));
		audit_req(req, acc == O_RDONLY ? AUDIT_OP_OPEN_R : acc == O_WRONLY ? AUDIT_OP_OPEN_W : AUDIT_OP_OPEN_RW,
			  rc, ino, path, NULL,
			  refused ? "refused: audit log unavailable" :
			  (fi->flags & O_TRUNC) && acc != O_RDONLY ? "trunc" :
			  (fi->flags & O_APPEND) ? "append" : NULL);
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (fuse_reply_open(req, fi) != 0)
		close_handle(fs, fi);
}

/*
 * How many FUSE worker threads may be inside notify_store at once.  A
 * store locks the page-cache pages it fills, and a page the kernel is
 * reading ahead stays locked until some worker answers that READ: if every
 * worker waited on such a page, or on a thread that does, nobody would
 * read /dev/fuse again (seen: all 16 workers stuck, 15 of them queued
 * behind one store).  So stores are optional and never waited for.
 */
#define STORES_MAX 2

/*
 * A small read made us open a whole chunk: give the kernel the rest of it,
 * so the neighbouring reads (random 4 KiB reads of a 64 KiB chunk) are
 * served from its page cache with no round trip.  Only after the reply,
 * when the pages of this request are unlocked again, and only if no other
 * store of this file or too many stores overall are under way.
 */
static void store_rest_of_chunk(struct mvfs *fs, struct mv_inode *in, fuse_ino_t ino,
				off_t off, size_t n)
{
	uint8_t *chunk;
	uint64_t start = 0;
	size_t len;

	if (!fs->session)
		return;
	if (__atomic_add_fetch(&fs->storing, 1, __ATOMIC_ACQ_REL) > STORES_MAX)
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

		if (lo > start) {
			struct fuse_bufvec bv = FUSE_BUFVEC_INIT(lo - start);

			bv.buf[0].mem = chunk;
			fuse_lowlevel_notify_store(fs->session, ino, (off_t)start, &bv, 0);
		}
		if (hi < end) {
			struct fuse_bufvec bv = FUSE_BUFVEC_INIT(end - hi);

			bv.buf[0].mem = chunk + (hi - start);
			fuse_lowlevel_notify_store(fs->session, ino, (off_t)hi, &bv, 0);
		}
	}
	pthread_mutex_unlock(&in->store_lock);
	bufpool_put(fs->chunks, chunk);
out:
	__atomic_sub_fetch(&fs->storing, 1, __ATOMIC_ACQ_REL);
}

static void mv_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct mv_inode *in = (struct mv_inode *)(uintptr_t)fi->fh;
	struct mvfs *fs = fs_of(req);	/* req is gone once replied to */
	uint8_t *buf;
	ssize_t n;

	/* the reply is plaintext: it lives in a pooled, mlocked buffer that
	 * is wiped when the pool lets it go, never in the malloc heap.  The
	 * kernel asks for at most max_write (max_pages); a short reply to a
	 * cached read would mean end of file, so never trim a request. */
	if (size > MV_MAX_IO) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (!(buf = bufpool_get(fs->replies))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = filedata_read(fs, in, (char *)buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, (const char *)buf, (size_t)n);
	bufpool_put(fs->replies, buf);
	if (n > 0 && size < fs->chunk_size)
		store_rest_of_chunk(fs, in, ino, off, (size_t)n);
}

static void mv_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	struct mv_inode *in = (struct mv_inode *)(uintptr_t)fi->fh;
	ssize_t n;

	/* like ext4: nothing at or past the largest size, short up to it */
	if ((uint64_t)off >= MV_MAX_FILE_SIZE) {
		fuse_reply_err(req, EFBIG);
		return;
	}
	if (size > MV_MAX_FILE_SIZE - (uint64_t)off)
		size = (size_t)(MV_MAX_FILE_SIZE - (uint64_t)off);
	/*
	 * The kernel sends such writes through, not via its page cache.  Its
	 * empty SETATTR (setattr_kill) has usually cleared the bits already;
	 * the flag is checked too, for write paths that send no SETATTR.
	 */
	if (fuse_io_write_kills_suidgid()) {
		struct mv_attr cur, out;
		struct mv_attr none = { 0 };
		int kill;

		if ((n = ns_getattr(fs_of(req), ino, &cur)) == 0 && (kill = suidgid_to_clear(req, &cur, 0)))
			n = ns_setattr(fs_of(req), ino, &none, kill, &out);
		if (n < 0) {
			fuse_reply_err(req, (int)-n);
			return;
		}
	}
	n = filedata_write(fs_of(req), in, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static const char *falloc_mode_name(int mode)
{
	if (mode & FALLOC_FL_PUNCH_HOLE)
		return "punch-hole";
	if (mode & FALLOC_FL_ZERO_RANGE)
		return "zero-range";
	return mode & FALLOC_FL_KEEP_SIZE ? "keep-size" : "reserve";
}

static void mv_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct mv_inode *in = (struct mv_inode *)(uintptr_t)fi->fh;
	struct mvfs *fs = fs_of(req);
	int rc;

	/* what ext4 accepts of what the kernel passes on; the kernel has
	 * checked the file's type, the handle's mode and the bounds */
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) ||
	    ((mode & FALLOC_FL_PUNCH_HOLE) &&
	     (mode & (FALLOC_FL_KEEP_SIZE | FALLOC_FL_ZERO_RANGE)) != FALLOC_FL_KEEP_SIZE))
		rc = -EOPNOTSUPP;
	else if (off < 0 || len <= 0)
		rc = -EINVAL;
	else if ((uint64_t)off + (uint64_t)len > MV_MAX_FILE_SIZE)
		rc = -EFBIG;
	else
		rc = filedata_fallocate(fs, in, mode, (uint64_t)off, (uint64_t)len);
	if (fs->audit) {
		char path[AUDIT_PATH_MAX + 1], d[96];

		itable_path(fs, ino, path, sizeof(path));
		snprintf(d, sizeof(d), "mode=%s off=%lld len=%lld", falloc_mode_name(mode),
			 (long long)off, (long long)len);
		audit_req(req, AUDIT_OP_FALLOCATE, rc, ino, path, NULL, d);
	}
	fuse_reply_err(req, -rc);
}

static void mv_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mv_inode *in = (struct mv_inode *)(uintptr_t)fi->fh;

	(void)ino;
	fuse_reply_err(req, -filedata_flush(fs_of(req), in));
}

static void mv_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	close_handle(fs_of(req), fi);
	fuse_reply_err(req, 0);
}

static void mv_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct mvfs *fs = fs_of(req);
	struct mv_inode *in = (struct mv_inode *)(uintptr_t)fi->fh;
	uint64_t audit_point;
	int rc;

	(void)datasync;
	/* the records about this file are as durable as its data; the log's
	 * flush runs beside ours */
	audit_point = audit_sync_start(fs->audit);
	rc = filedata_flush(fs, in);
	if (rc == 0)
		rc = fs_checkpoint(fs);
	if (rc == 0)
		rc = audit_sync_wait(fs->audit, audit_point);
	/*
	 * The kernel may hold attributes fetched while the data was still in
	 * its page cache (st_blocks 0); close drops them, fsync does not.
	 * Attributes only (offset < 0): takes no lock the fsync holds.
	 */
	if (rc == 0 && fs->session)
		fuse_lowlevel_notify_inval_inode(fs->session, ino, -1, 0);
	fuse_reply_err(req, -rc);
}

/* ---- directories ---- */

/* ENOSYS tells a kernel that offered it to stop sending OPENDIR (see mv_init) */
static void mv_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	if (fs_of(req)->no_opendir) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

struct dir_fill {
	fuse_req_t req;
	uint64_t dir;
	struct mvfs *fs;
	struct index_txn *txn;
	char *buf;
	size_t size, used;
	int plus;
	int err;
};

static int fill_one(void *ctx, const char *name, size_t len, uint64_t ino, uint8_t type,
		    uint64_t next_off)
{
	struct dir_fill *d = ctx;
	char cname[INDEX_NAME_MAX + 1];
	size_t need;

	memcpy(cname, name, len);
	cname[len] = '\0';
	if (d->plus) {
		struct fuse_entry_param e;
		struct mv_attr a;
		int rc = index_inode_get(d->txn, ino, &a);

		if (rc < 0) {
			d->err = rc;
			return 1;
		}
		if (S_ISREG(a.mode)) {
			struct mv_inode *in = itable_find(d->fs, ino);

			if (in) {
				filedata_overlay(d->fs, in, &a);
				itable_put(d->fs, in);
			}
		}
		fill_entry(&e, &a);
		need = fuse_add_direntry_plus(d->req, d->buf + d->used, d->size - d->used,
					      cname, &e, (off_t)next_off);
		if (need > d->size - d->used)
			return 1;
		itable_lookup_inc(d->fs, ino, d->dir, cname);
	} else {
		struct stat st = { .st_ino = ino, .st_mode = (mode_t)type << 12 };

		need = fuse_add_direntry(d->req, d->buf + d->used, d->size - d->used,
					 cname, &st, (off_t)next_off);
		if (need > d->size - d->used)
			return 1;
	}
	d->used += need;
	return 0;
}

static int fill_dot(struct dir_fill *d, const char *name, uint64_t ino, off_t next)
{
	size_t need;

	if (d->plus) {
		struct fuse_entry_param e = { 0 };

		/* ino 0: the kernel takes no lookup reference for . and .. */
		e.attr.st_ino = ino;
		e.attr.st_mode = S_IFDIR;
		need = fuse_add_direntry_plus(d->req, d->buf + d->used, d->size - d->used,
					      name, &e, next);
	} else {
		struct stat st = { .st_ino = ino, .st_mode = S_IFDIR };

		need = fuse_add_direntry(d->req, d->buf + d->used, d->size - d->used,
					 name, &st, next);
	}
	if (need > d->size - d->used)
		return 1;
	d->used += need;
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
	struct dir_fill d = { .req = req, .dir = ino, .fs = fs_of(req), .size = size, .plus = plus };
	struct mv_attr dir;
	int rc;

	d.buf = malloc(size);
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if ((rc = index_read_begin(d.fs->v->ix, &d.txn)) < 0)
		goto out;
	if ((rc = index_inode_get(d.txn, ino, &dir)) < 0)
		goto out;
	if (off < 1 && fill_dot(&d, ".", ino, 1))
		goto out;
	if (off < 2 && fill_dot(&d, "..", dir.parent ? dir.parent : ino, 2))
		goto out;
	rc = index_dirent_iter(d.txn, ino, (uint64_t)off, fill_one, &d);
	if (rc == 0 && d.err && d.used == 0)
		rc = d.err;
out:
	index_read_end(d.txn);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, d.buf, d.used);
	free(d.buf);
}

static void mv_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, 0);
}

static void mv_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, 1);
}

static void mv_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	uint64_t audit_point = audit_sync_start(fs_of(req)->audit);
	int rc;

	(void)ino;
	(void)datasync;
	(void)fi;
	rc = fs_checkpoint(fs_of(req));
	if (rc == 0)
		rc = audit_sync_wait(fs_of(req)->audit, audit_point);
	fuse_reply_err(req, -rc);
}

static void mv_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct mvfs *fs = fs_of(req);
	struct statvfs sv;
	struct index_txn *t;
	uint64_t files = 0;

	(void)ino;
	if (statvfs(fs->v->store, &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (index_read_begin(fs->v->ix, &t) == 0) {
		index_count_inodes(t, &files);
		index_read_end(t);
	}
	/* report in 4 KiB units whatever the backing filesystem uses */
	{
		uint64_t unit = sv.f_frsize ? sv.f_frsize : sv.f_bsize;

		sv.f_blocks = sv.f_blocks * unit / 4096;
		sv.f_bfree = sv.f_bfree * unit / 4096;
		sv.f_bavail = sv.f_bavail * unit / 4096;
	}
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_files = files + sv.f_ffree;
	sv.f_namemax = INDEX_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* ---- xattrs ---- */

static void audit_xattr(fuse_req_t req, int op, int rc, fuse_ino_t ino, const char *name)
{
	char path[AUDIT_PATH_MAX + 1];

	if (!fs_of(req)->audit)
		return;
	itable_path(fs_of(req), ino, path, sizeof(path));
	audit_req(req, op, rc, ino, path, NULL, name);
}

static void mv_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	int rc = ns_setxattr(fs_of(req), ino, name, value, size, flags);

	audit_xattr(req, AUDIT_OP_SETXATTR, rc, ino, name);
	fuse_reply_err(req, -rc);
}

static void mv_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = NULL;
	ssize_t n;

	if (size && !(buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = ns_getxattr(fs_of(req), ino, name, buf, size);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

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

static void mv_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct mvfs *fs = fs_of(req);
	/* ext4 lists trusted.* only to CAP_SYS_ADMIN; root stands for it.
	 * Others get the list filtered, so it is read whole first. */
	int hide = fuse_req_ctx(req)->uid != 0;
	size_t cap = size;
	ssize_t n;
	char *buf;

	if (hide && (n = ns_listxattr(fs, ino, NULL, 0)) < 0) {
		fuse_reply_err(req, (int)-n);
		return;
	}
	if (hide)
		cap = (size_t)n;
	if (!(buf = malloc(cap + 1))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = ns_listxattr(fs, ino, cap ? buf : NULL, cap);
	if (n >= 0 && hide)
		n = (ssize_t)drop_trusted(buf, (size_t)n);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else if (size < (size_t)n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void mv_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	int rc = ns_removexattr(fs_of(req), ino, name);

	audit_xattr(req, AUDIT_OP_REMOVEXATTR, rc, ino, name);
	fuse_reply_err(req, -rc);
}

const struct fuse_lowlevel_ops mv_fuse_ops = {
	.init = mv_init,
	.destroy = mv_destroy,
	.lookup = mv_lookup,
	.forget = mv_forget,
	.forget_multi = mv_forget_multi,
	.getattr = mv_getattr,
	.setattr = mv_setattr,
	.readlink = mv_readlink,
	.mknod = mv_mknod,
	.mkdir = mv_mkdir,
	.unlink = mv_unlink,
	.rmdir = mv_rmdir,
	.symlink = mv_symlink,
	.rename = mv_rename,
	.link = mv_link,
	.open = mv_open,
	.read = mv_read,
	.write = mv_write,
	.flush = mv_flush,
	.release = mv_release,
	.fsync = mv_fsync,
	.fallocate = mv_fallocate,
	.opendir = mv_opendir,
	.readdir = mv_readdir,
	.readdirplus = mv_readdirplus,
	.fsyncdir = mv_fsyncdir,
	.statfs = mv_statfs,
	.setxattr = mv_setxattr,
	.getxattr = mv_getxattr,
	.listxattr = mv_listxattr,
	.removexattr = mv_removexattr,
	.create = mv_create,
};
