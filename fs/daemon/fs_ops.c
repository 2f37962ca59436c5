/*
 * The FUSE adapter.  Its rule: each handler decodes the request, makes
 * exactly one call into the core (core/mvfs.h), records the outcome to
 * the access trail, and sends exactly one reply, taking no lock of the
 * layers below; the only other core calls are itable_path for a trail
 * record and the undo of a failed reply (core_forget, core_release).
 *
 * The core calls back into this file in three places: in_group (the
 * caller's supplementary groups, asked with no lock held), readdir
 * (fill_one formats entries inside the index's read transaction, no
 * reply) and read (send_read replies with no lock held; push_pages hands
 * pages to the kernel under the file's store_lock, the one syscall made
 * under a lock, because that lock exists to keep writers out meanwhile).
 */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "audit/audit.h"
#include "fs_ops.h"
#include "fuse_io.h"
#include "core/mvfs.h"

#define ATTR_TIMEOUT 1.0
#define ENTRY_TIMEOUT 1.0

/* The kernel's answer at INIT: it skips OPENDIR once told ENOSYS.  Set
 * before any other request; one session per process. */
static int no_opendir;

static struct mvfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* An open file's handle is its core inode. */
static struct mv_inode *handle_of(const struct fuse_file_info *fi)
{
	return (struct mv_inode *)(uintptr_t)fi->fh;
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

/* Reply with a new entry whose lookup the core counted. */
static void reply_entry(fuse_req_t req, int rc, const struct mv_attr *a)
{
	struct fuse_entry_param e;

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fill_entry(&e, a);
	if (fuse_reply_entry(req, &e) != 0)
		core_forget(fs_of(req), a->ino, 1);
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

	audit_log(mvfs_audit(fs_of(req)), &e);
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
	int writeback = 0, posix_acl = 0;

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
		no_opendir = 1;
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
		posix_acl = 1;
	}
	if (conn->capable & FUSE_CAP_WRITEBACK_CACHE) {
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
		writeback = 1;
	}
	mvfs_set_kernel(fs, writeback, posix_acl);
}

static void mv_destroy(void *userdata)
{
	(void)userdata;
}

static void mv_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct mv_attr a;
	int rc = core_lookup(fs_of(req), parent, name, &a);

	if (rc == -ENOENT) {
		/* a negative entry the kernel may cache: every create goes
		 * through it, so it can never hide a file */
		struct fuse_entry_param e = { .ino = 0, .entry_timeout = ENTRY_TIMEOUT };

		fuse_reply_entry(req, &e);
		return;
	}
	reply_entry(req, rc, &a);
}

static void mv_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	core_forget(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void forget_at(void *ctx, size_t i, uint64_t *ino, uint64_t *nlookup)
{
	const struct fuse_forget_data *f = ctx;

	*ino = f[i].ino;
	*nlookup = f[i].nlookup;
}

static void mv_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	core_forget_multi(fs_of(req), count, forget_at, f);
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

/* Is the caller in supplementary group gid?  The core asks only when
 * ext4's set-ID rule needs it: the list comes from /proc. */
static int in_group(void *ctx, uint32_t gid)
{
	fuse_req_t req = ctx;
	gid_t some[32], *list = some;
	int n, found = 0;

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

static void caller_of(fuse_req_t req, struct core_caller *who)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);

	who->uid = c->uid;
	who->gid = c->gid;
	who->in_group = in_group;
	who->ctx = req;
}

/*
 * Which kill a SETATTR stands for, when the kernel leaves kills to us
 * (FUSE_HANDLE_KILLPRIV_V2, fuse_io.c): its FATTR_KILL_SUIDGID (libfuse's
 * KILL_SUID bit) on truncate and chown.  chown(f, -1, -1) arrives as
 * nothing but a ctime (a regular file, whose times the kernel keeps) or
 * as nothing at all; on ext4 it clears the bits too.  Nothing at all on
 * a regular file is the kernel's file_remove_privs() ahead of a write,
 * fallocate or copy_file_range by an unprivileged caller.  The core tells
 * those apart by the file's type (CORE_KILL_* in core/mvfs.h).
 */
static int setattr_kill(int to_set)
{
	if (!fuse_io_killpriv_v2())
		return CORE_KILL_NONE;
	if (to_set == 0)
		return CORE_KILL_EMPTY;
	if (to_set == FUSE_SET_ATTR_CTIME)
		return CORE_KILL_CTIME;
	return (to_set & FUSE_SET_ATTR_KILL_SUID) ? CORE_KILL_CHANGE : CORE_KILL_NONE;
}

static void mv_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct mv_attr want = { 0 }, out;
	struct core_caller who;
	struct timespec now;
	struct stat st;
	int mask = 0, rc;

	(void)fi;
	core_now(&now);
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
	caller_of(req, &who);
	rc = core_setattr(fs_of(req), ino, &want, mask, setattr_kill(to_set), &who, &out);
	if (mvfs_audit(fs_of(req)) && (mask & (NS_SET_SIZE | NS_SET_MODE | NS_SET_UID | NS_SET_GID))) {
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
	reply_entry(req, core_mknod(fs_of(req), &c, parent, name, mode, rdev, NULL, &a), &a);
}

static void mv_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct ns_ctx c;
	struct mv_attr a;

	ctx_of(req, &c);
	reply_entry(req, core_mknod(fs_of(req), &c, parent, name, S_IFDIR | (mode & 07777), 0, NULL, &a),
		    &a);
}

static void mv_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct ns_ctx c;
	struct mv_attr a;

	ctx_of(req, &c);
	reply_entry(req, core_mknod(fs_of(req), &c, parent, name, S_IFLNK | 0777, 0, link, &a), &a);
}

static void mv_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct mv_attr a;

	reply_entry(req, core_link(fs_of(req), ino, newparent, newname, &a), &a);
}

static void do_unlink(fuse_req_t req, fuse_ino_t parent, const char *name, int is_dir)
{
	struct mvfs *fs = fs_of(req);
	char path[AUDIT_PATH_MAX + 1];
	uint64_t ino = 0;
	int rc;

	/* the path as the kernel reached it, before the name goes */
	if (mvfs_audit(fs))
		audit_child_path(fs, parent, name, path, sizeof(path));
	rc = core_unlink(fs, parent, name, is_dir, &ino);
	if (mvfs_audit(fs))
		audit_req(req, is_dir ? AUDIT_OP_RMDIR : AUDIT_OP_UNLINK, rc, ino, path, NULL, NULL);
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

	if (mvfs_audit(fs)) {
		audit_child_path(fs, parent, name, from, sizeof(from));
		audit_child_path(fs, newparent, newname, to, sizeof(to));
	}
	rc = ns_rename(fs, parent, name, newparent, newname, flags, &moved, NULL);
	if (mvfs_audit(fs))
		audit_req(req, AUDIT_OP_RENAME, rc, moved, from, to,
			  (flags & RENAME_EXCHANGE) ? "exchange" : (flags & RENAME_NOREPLACE) ? "noreplace" : NULL);
	fuse_reply_err(req, -rc);
}

static void mv_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct mv_attr a;
	int rc = ns_readlink(fs_of(req), ino, &a);

	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, a.symlink);
}

/* ---- files ---- */

static void mv_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct mvfs *fs = fs_of(req);
	struct fuse_entry_param e;
	struct mv_inode *in = NULL;
	struct ns_ctx c;
	struct mv_attr a;
	int rc, refused;

	ctx_of(req, &c);
	/* fail closed: no new file while the access trail cannot be written */
	refused = rc = audit_allowed(mvfs_audit(fs));
	if (rc == 0)
		rc = core_create(fs, &c, parent, name, mode, fi->flags, &a, &in);
	if (mvfs_audit(fs)) {
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
	fill_entry(&e, &a);
	fi->fh = (uint64_t)(uintptr_t)in;
	/* this daemon is the only way to the data: cached pages stay valid */
	fi->keep_cache = 1;
	if (fuse_reply_create(req, &e, fi) != 0) {
		core_release(fs, in, fi->flags);
		core_forget(fs, a.ino, 1);
	}
}

static void mv_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct mvfs *fs = fs_of(req);
	struct mv_inode *in = NULL;
	int refused = audit_allowed(mvfs_audit(fs));	/* fail closed */
	int rc = refused ? refused : core_open(fs, ino, fi->flags, &in);

	if (mvfs_audit(fs)) {
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
	fi->fh = (uint64_t)(uintptr_t)in;
	/* this daemon is the only way to the data: cached pages stay valid */
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) != 0)
		core_release(fs, in, fi->flags);
}

struct read_reply {
	fuse_req_t req;
	struct fuse_session *se;
	fuse_ino_t ino;
};

static void send_read(void *ctx, const void *buf, ssize_t n)
{
	struct read_reply *r = ctx;

	if (n < 0)
		fuse_reply_err(r->req, (int)-n);
	else
		fuse_reply_buf(r->req, buf, (size_t)n);
}

/* After the reply: req is gone, the session and inode remain. */
static void push_pages(void *ctx, uint64_t off, const void *buf, size_t len)
{
	struct read_reply *r = ctx;
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);

	bv.buf[0].mem = (void *)buf;
	fuse_lowlevel_notify_store(r->se, r->ino, (off_t)off, &bv, 0);
}

static void mv_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct mvfs *fs = fs_of(req);
	struct read_reply r = { req, mvfs_session(fs), ino };

	core_read(fs, handle_of(fi), size, off, send_read, r.se ? push_pages : NULL, &r);
}

static void mv_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	struct core_caller who;
	ssize_t n;

	(void)ino;
	/*
	 * The kernel sends such writes through, not via its page cache.  Its
	 * empty SETATTR (setattr_kill) has usually cleared the bits already;
	 * the flag is checked too, for write paths that send no SETATTR.
	 */
	caller_of(req, &who);
	n = core_write(fs_of(req), handle_of(fi), buf, size, off,
		       fuse_io_write_kills_suidgid() ? &who : NULL);
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
	struct mv_inode *in = handle_of(fi);
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
	if (mvfs_audit(fs)) {
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
	struct mv_inode *in = handle_of(fi);

	(void)ino;
	fuse_reply_err(req, -filedata_flush(fs_of(req), in));
}

static void mv_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	core_release(fs_of(req), handle_of(fi), fi->flags);
	fuse_reply_err(req, 0);
}

static void mv_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct mvfs *fs = fs_of(req);
	struct mv_inode *in = handle_of(fi);
	uint64_t audit_point;
	int rc;

	(void)datasync;
	/* the records about this file are as durable as its data; the log's
	 * flush runs beside ours */
	audit_point = audit_sync_start(mvfs_audit(fs));
	rc = core_fsync(fs, in);
	if (rc == 0)
		rc = audit_sync_wait(mvfs_audit(fs), audit_point);
	/*
	 * The kernel may hold attributes fetched while the data was still in
	 * its page cache (st_blocks 0); close drops them, fsync does not.
	 * Attributes only (offset < 0): takes no lock the fsync holds.
	 */
	if (rc == 0 && mvfs_session(fs))
		fuse_lowlevel_notify_inval_inode(mvfs_session(fs), ino, -1, 0);
	fuse_reply_err(req, -rc);
}

/* ---- directories ---- */

/* ENOSYS tells a kernel that offered it to stop sending OPENDIR (see mv_init) */
static void mv_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	if (no_opendir) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fi->fh = 0;
	fuse_reply_open(req, fi);
}

struct dir_fill {
	fuse_req_t req;
	char *buf;
	size_t size, used;
	int plus;
};

/* Called inside the core's read transaction: formats, never replies. */
static int fill_one(void *ctx, const char *name, uint64_t ino, mode_t mode,
		    const struct mv_attr *attr, uint64_t next_off)
{
	struct dir_fill *d = ctx;
	size_t need;

	if (d->plus) {
		struct fuse_entry_param e = { 0 };

		if (attr) {
			fill_entry(&e, attr);
		} else {
			/* . and ..: ino 0, the kernel takes no lookup reference */
			e.attr.st_ino = ino;
			e.attr.st_mode = mode;
		}
		need = fuse_add_direntry_plus(d->req, d->buf + d->used, d->size - d->used,
					      name, &e, (off_t)next_off);
	} else {
		struct stat st = { .st_ino = ino, .st_mode = mode };

		need = fuse_add_direntry(d->req, d->buf + d->used, d->size - d->used,
					 name, &st, (off_t)next_off);
	}
	if (need > d->size - d->used)
		return 1;
	d->used += need;
	return 0;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
	struct dir_fill d = { .req = req, .size = size, .plus = plus };
	int rc;

	d.buf = malloc(size);
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = ns_readdir(fs_of(req), ino, (uint64_t)off, plus, fill_one, &d);
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
	uint64_t audit_point = audit_sync_start(mvfs_audit(fs_of(req)));
	int rc;

	(void)ino;
	(void)datasync;
	(void)fi;
	rc = fs_checkpoint(fs_of(req));
	if (rc == 0)
		rc = audit_sync_wait(mvfs_audit(fs_of(req)), audit_point);
	fuse_reply_err(req, -rc);
}

static void mv_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	int rc;

	(void)ino;
	rc = core_statfs(fs_of(req), &sv);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_statfs(req, &sv);
}

/* ---- xattrs ---- */

static void audit_xattr(fuse_req_t req, int op, int rc, fuse_ino_t ino, const char *name)
{
	char path[AUDIT_PATH_MAX + 1];

	if (!mvfs_audit(fs_of(req)))
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

/* the size a probe (size 0) asked for, or the bytes; frees buf */
static void reply_xattr(fuse_req_t req, size_t size, char *buf, ssize_t n)
{
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void mv_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = NULL;

	if (size && !(buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	reply_xattr(req, size, buf, ns_getxattr(fs_of(req), ino, name, buf, size));
}

static void mv_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	/* ext4 lists trusted.* only to CAP_SYS_ADMIN; root stands for it */
	int hide = fuse_req_ctx(req)->uid != 0;
	char *buf = NULL;

	if (size && !(buf = malloc(size))) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	reply_xattr(req, size, buf, core_listxattr(fs_of(req), ino, hide, buf, size));
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
