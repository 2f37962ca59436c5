/*
 * Namespace operations: each is one index_write() function that checks
 * everything first and only then mutates, so a refused operation leaves
 * the index untouched (see index.h).
 *
 * Calls only downward: namespace -> filedata -> inode_table.  It is also
 * where inodes the table released are finished (ns_release_inodes).
 */
#include <errno.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "core/acl.h"
#include "namespace.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static void set_mtime(struct mv_attr *a, const struct timespec *t)
{
	a->mtime_s = a->ctime_s = t->tv_sec;
	a->mtime_ns = a->ctime_ns = (uint32_t)t->tv_nsec;
}

static void set_ctime(struct mv_attr *a, const struct timespec *t)
{
	a->ctime_s = t->tv_sec;
	a->ctime_ns = (uint32_t)t->tv_nsec;
}

static uint8_t dtype_of(uint32_t mode)
{
	return (uint8_t)((mode & S_IFMT) >> 12);
}

static int overlay(struct mvfs *fs, struct mv_attr *a)
{
	struct mv_inode *in;

	if (!S_ISREG(a->mode))
		return 0;
	in = itable_find(fs, a->ino);
	if (in) {
		filedata_overlay(fs, in, a);
		itable_put(fs, in);
		ns_release_inodes(fs);	/* the kernel may have forgotten it meanwhile */
	}
	return 0;
}

int ns_getattr(struct mvfs *fs, uint64_t ino, struct mv_attr *out)
{
	struct index_txn *t;
	int rc;

	if ((rc = index_read_begin(fs->v->ix, &t)) < 0)
		return rc;
	rc = index_inode_get(t, ino, out);
	index_read_end(t);
	if (rc == 0)
		overlay(fs, out);
	return rc;
}

int ns_readlink(struct mvfs *fs, uint64_t ino, struct mv_attr *out)
{
	int rc = ns_getattr(fs, ino, out);

	if (rc == 0 && !S_ISLNK(out->mode))
		rc = -EINVAL;
	if (rc == 0 && (out->flags & INDEX_FLAG_QUARANTINED))
		rc = -EIO;	/* fsck could not verify it: never serve its target */
	return rc;
}

int ns_lookup(struct mvfs *fs, uint64_t parent, const char *name, struct mv_attr *out)
{
	struct index_txn *t;
	uint64_t ino;
	uint8_t type;
	size_t len = strlen(name);
	int rc;

	if (len > INDEX_NAME_MAX)
		return -ENAMETOOLONG;
	if ((rc = index_read_begin(fs->v->ix, &t)) < 0)
		return rc;
	rc = index_dirent_get(t, parent, name, len, &ino, &type);
	if (rc == 0)
		rc = index_inode_get(t, ino, out);
	index_read_end(t);
	if (rc == 0)
		overlay(fs, out);
	return rc;
}

/* Drop one link of child inside a write transaction; at zero, orphan it if
 * the kernel still holds it, else free it now. */
static int drop_link(struct mvfs *fs, struct index_txn *txn, struct mv_attr *child,
		     const struct timespec *now)
{
	int rc;

	if (S_ISDIR(child->mode))
		child->nlink = 0;
	else if (child->nlink > 0)
		child->nlink--;
	set_ctime(child, now);
	if (child->nlink > 0)
		return index_inode_put(txn, child);
	if (itable_in_use(fs, child->ino)) {
		itable_mark_unlinked(fs, child->ino);
		if ((rc = index_inode_put(txn, child)) < 0)
			return rc;
		return index_orphan_add(txn, child->ino);
	}
	return index_inode_purge(txn, child->ino);
}

/* Store an ACL xattr; an access ACL that only restates the mode is not
 * stored at all (drop_equiv), as ext4 does. */
static int put_acl(struct index_txn *txn, uint64_t ino, const char *name, const struct acl *acl,
		   int drop_equiv)
{
	uint8_t raw[4 + 8 * ACL_MAX_ENTRIES];
	size_t len;
	int rc;

	if (drop_equiv && acl_equiv_mode(acl)) {
		rc = index_xattr_del(txn, ino, name);
		return rc == -ENODATA ? 0 : rc;
	}
	len = acl_format(acl, raw, sizeof(raw));
	return index_xattr_put(txn, ino, name, raw, len);
}

/* ---- create ---- */

struct mknod_arg {
	struct mvfs *fs;
	const struct ns_ctx *c;
	uint64_t parent;
	const char *name;
	size_t len;
	mode_t mode;
	dev_t rdev;
	const char *target;
	struct mv_attr *out;
	int has_dacl;
	struct acl dacl, aacl;	/* the parent's default ACL, the new access ACL */
};

static int do_mknod(struct index_txn *txn, void *argp)
{
	struct mknod_arg *a = argp;
	struct mv_attr p, *n = a->out;
	struct timespec now;
	uint64_t ino, next, child;
	uint8_t type;
	int rc;

	if ((rc = index_inode_get(txn, a->parent, &p)) < 0)
		return rc;
	if (!S_ISDIR(p.mode))
		return -ENOTDIR;
	if (p.nlink == 0)
		return -ENOENT;
	rc = index_dirent_get(txn, a->parent, a->name, a->len, &child, &type);
	if (rc == 0)
		return -EEXIST;
	if (rc != -ENOENT)
		return rc;
	if ((rc = index_meta_get(txn, "next_ino", &next)) < 0)
		return rc;
	ino = next;

	/* POSIX ACLs: a default ACL on the parent replaces the umask */
	if (!S_ISLNK(a->mode) && a->fs->posix_acl) {
		ssize_t dl = index_xattr_get(txn, a->parent, ACL_XATTR_DEFAULT, NULL, 0);

		if (dl == -ENODATA) {
			a->mode &= ~(a->c->umask & 0777);
		} else if (dl < 0) {
			return (int)dl;
		} else {
			uint8_t raw[4 + 8 * ACL_MAX_ENTRIES];

			dl = index_xattr_get(txn, a->parent, ACL_XATTR_DEFAULT, raw, sizeof(raw));
			if (dl < 0 || acl_parse(&a->dacl, raw, (size_t)dl) < 0)
				return dl < 0 ? (int)dl : -EIO;
			a->has_dacl = 1;
			a->aacl = a->dacl;
			acl_create_masq(&a->aacl, &a->mode);
		}
	}
	core_now(&now);
	memset(n, 0, sizeof(*n));
	n->ino = ino;
	n->mode = a->mode;
	n->uid = a->c->uid;
	n->gid = (p.mode & S_ISGID) ? p.gid : a->c->gid;
	if (S_ISDIR(a->mode) && (p.mode & S_ISGID))
		n->mode |= S_ISGID;
	n->nlink = S_ISDIR(a->mode) ? 2 : 1;
	n->atime_s = n->mtime_s = n->ctime_s = now.tv_sec;
	n->atime_ns = n->mtime_ns = n->ctime_ns = (uint32_t)now.tv_nsec;
	n->rdev = a->rdev;
	n->domain = p.domain;
	if (S_ISDIR(a->mode)) {
		n->size = 4096;
		n->blocks = 8;
		n->parent = a->parent;
	} else if (S_ISLNK(a->mode)) {
		n->symlink_len = (uint16_t)strlen(a->target);
		memcpy(n->symlink, a->target, n->symlink_len);
		n->size = n->symlink_len;
	}

	if ((rc = index_meta_put(txn, "next_ino", next + 1)) < 0)
		return rc;
	if ((rc = index_inode_put(txn, n)) < 0)
		return rc;
	if (a->has_dacl && (rc = put_acl(txn, ino, ACL_XATTR_ACCESS, &a->aacl, 1)) < 0)
		return rc;
	if (a->has_dacl && S_ISDIR(n->mode) && (rc = put_acl(txn, ino, ACL_XATTR_DEFAULT, &a->dacl, 0)) < 0)
		return rc;
	if ((rc = index_dirent_put(txn, a->parent, a->name, a->len, ino, dtype_of(n->mode))) < 0)
		return rc;
	set_mtime(&p, &now);
	if (S_ISDIR(a->mode))
		p.nlink++;
	return index_inode_put(txn, &p);
}

int ns_mknod(struct mvfs *fs, const struct ns_ctx *c, uint64_t parent, const char *name,
	     mode_t mode, dev_t rdev, const char *link_target, struct mv_attr *out)
{
	struct mknod_arg *a;
	int rc;

	if (fs_read_only(fs))
		return -EROFS;
	if (strlen(name) > INDEX_NAME_MAX)
		return -ENAMETOOLONG;
	if (link_target && strlen(link_target) > INDEX_SYMLINK_MAX)
		return -ENAMETOOLONG;
	a = calloc(1, sizeof(*a));	/* two ACLs: too big for a FUSE thread's stack */
	if (!a)
		return -ENOMEM;
	*a = (struct mknod_arg){ .fs = fs, .c = c, .parent = parent, .name = name,
				 .len = strlen(name), .mode = mode, .rdev = rdev,
				 .target = link_target, .out = out };
	rc = index_write(fs->v->ix, do_mknod, a);
	free(a);
	return rc;
}

/* ---- link ---- */

struct link_arg {
	uint64_t ino, parent;
	const char *name;
	size_t len;
	struct mv_attr *out;
};

static int do_link(struct index_txn *txn, void *argp)
{
	struct link_arg *a = argp;
	struct mv_attr p;
	struct timespec now;
	uint64_t child;
	uint8_t type;
	int rc;

	if ((rc = index_inode_get(txn, a->ino, a->out)) < 0)
		return rc;
	if (S_ISDIR(a->out->mode))
		return -EPERM;
	if (a->out->nlink == 0)
		return -ENOENT;
	if (a->out->nlink >= 65000)
		return -EMLINK;
	if ((rc = index_inode_get(txn, a->parent, &p)) < 0)
		return rc;
	if (!S_ISDIR(p.mode))
		return -ENOTDIR;
	rc = index_dirent_get(txn, a->parent, a->name, a->len, &child, &type);
	if (rc == 0)
		return -EEXIST;
	if (rc != -ENOENT)
		return rc;
	core_now(&now);
	a->out->nlink++;
	set_ctime(a->out, &now);
	if ((rc = index_inode_put(txn, a->out)) < 0)
		return rc;
	if ((rc = index_dirent_put(txn, a->parent, a->name, a->len, a->ino, dtype_of(a->out->mode))) < 0)
		return rc;
	set_mtime(&p, &now);
	return index_inode_put(txn, &p);
}

int ns_link(struct mvfs *fs, uint64_t ino, uint64_t newparent, const char *newname, struct mv_attr *out)
{
	struct link_arg a = { ino, newparent, newname, strlen(newname), out };
	int rc;

	if (fs_read_only(fs))
		return -EROFS;
	if (a.len > INDEX_NAME_MAX)
		return -ENAMETOOLONG;
	rc = index_write(fs->v->ix, do_link, &a);
	if (rc == 0)
		overlay(fs, out);
	return rc;
}

/* ---- unlink / rmdir ---- */

struct unlink_arg {
	struct mvfs *fs;
	uint64_t parent;
	const char *name;
	size_t len;
	int is_dir;
	uint64_t ino;	/* what the name named, for the access trail */
};


/*
 * Whether the entry naming victim may go, by rmdir/unlink (as_dir: the
 * caller wants a directory) or by a rename over it (as_dir: the source is
 * a directory): -ENOTDIR, -EISDIR, -ENOTEMPTY, or index errors.
 */
static int may_remove(struct index_txn *txn, int as_dir, uint64_t ino, const struct mv_attr *victim)
{
	int rc;

	if (!as_dir)
		return S_ISDIR(victim->mode) ? -EISDIR : 0;
	if (!S_ISDIR(victim->mode))
		return -ENOTDIR;
	if ((rc = index_dir_empty(txn, ino)) < 0)
		return rc;
	return rc ? 0 : -ENOTEMPTY;
}
static int do_unlink(struct index_txn *txn, void *argp)
{
	struct unlink_arg *a = argp;
	struct mv_attr p, c;
	struct timespec now;
	uint64_t ino;
	uint8_t type;
	int rc;

	if ((rc = index_inode_get(txn, a->parent, &p)) < 0)
		return rc;
	if ((rc = index_dirent_get(txn, a->parent, a->name, a->len, &ino, &type)) < 0)
		return rc;
	a->ino = ino;
	if ((rc = index_inode_get(txn, ino, &c)) < 0)
		return rc;
	if ((rc = may_remove(txn, a->is_dir, ino, &c)) < 0)
		return rc;
	core_now(&now);
	if ((rc = index_dirent_del(txn, a->parent, a->name, a->len)) < 0)
		return rc;
	set_mtime(&p, &now);
	if (a->is_dir && p.nlink > 2)
		p.nlink--;
	if ((rc = index_inode_put(txn, &p)) < 0)
		return rc;
	return drop_link(a->fs, txn, &c, &now);
}

int core_unlink(struct mvfs *fs, uint64_t parent, const char *name, int is_dir, uint64_t *ino)
{
	struct unlink_arg a = { fs, parent, name, strlen(name), is_dir, 0 };
	int rc = -ENAMETOOLONG;

	if (a.len <= INDEX_NAME_MAX)
		rc = index_write(fs->v->ix, do_unlink, &a);
	if (ino)
		*ino = a.ino;
	return rc;
}

int ns_unlink(struct mvfs *fs, uint64_t parent, const char *name, int is_dir)
{
	if (fs_read_only(fs))
		return -EROFS;
	return core_unlink(fs, parent, name, is_dir, NULL);
}

/* ---- rename ---- */

struct rename_arg {
	struct mvfs *fs;
	uint64_t parent, newparent;
	const char *name, *newname;
	size_t len, newlen;
	unsigned flags;
	uint64_t moved, swapped;
};

/* 1 if dir is anc or below it */
static int is_within(struct index_txn *txn, uint64_t dir, uint64_t anc)
{
	struct mv_attr a;
	int depth = 0;

	while (dir != anc) {
		if (dir == INDEX_ROOT_INO || depth++ > 100000)
			return 0;
		if (index_inode_get(txn, dir, &a) < 0)
			return -EIO;
		dir = a.parent;
	}
	return 1;
}


/* A directory moved from one parent to another: its ".." link moves too. */
static void reparent(struct mv_attr *dir, uint64_t to_ino, struct mv_attr *from, struct mv_attr *to)
{
	if (!S_ISDIR(dir->mode))
		return;
	dir->parent = to_ino;
	from->nlink--;
	to->nlink++;
}
static int do_rename(struct index_txn *txn, void *argp)
{
	struct rename_arg *a = argp;
	struct mv_attr p, np, s, d, *pp = &p, *npp;
	struct timespec now;
	uint64_t sino, dino = 0;
	uint8_t stype, dtype = 0;
	int rc, have_dst;

	if ((rc = index_inode_get(txn, a->parent, &p)) < 0)
		return rc;
	if (a->newparent == a->parent) {
		npp = &p;
	} else {
		if ((rc = index_inode_get(txn, a->newparent, &np)) < 0)
			return rc;
		npp = &np;
	}
	if (!S_ISDIR(pp->mode) || !S_ISDIR(npp->mode))
		return -ENOTDIR;
	if ((rc = index_dirent_get(txn, a->parent, a->name, a->len, &sino, &stype)) < 0)
		return rc;
	if ((rc = index_inode_get(txn, sino, &s)) < 0)
		return rc;
	rc = index_dirent_get(txn, a->newparent, a->newname, a->newlen, &dino, &dtype);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	have_dst = rc == 0;
	if (have_dst && (rc = index_inode_get(txn, dino, &d)) < 0)
		return rc;

	if (a->flags & RENAME_EXCHANGE) {
		if (!have_dst)
			return -ENOENT;
	} else if (have_dst && (a->flags & RENAME_NOREPLACE)) {
		return -EEXIST;
	}
	a->moved = sino;
	a->swapped = (a->flags & RENAME_EXCHANGE) ? dino : 0;
	if (have_dst && dino == sino) {
		a->moved = a->swapped = 0;
		return 0;	/* two links to one file: POSIX says do nothing */
	}
	if (S_ISDIR(s.mode) && a->parent != a->newparent) {
		if ((rc = is_within(txn, a->newparent, sino)) < 0)
			return rc;
		if (rc)
			return -EINVAL;
	}
	if ((a->flags & RENAME_EXCHANGE) && S_ISDIR(d.mode) && a->parent != a->newparent) {
		if ((rc = is_within(txn, a->parent, dino)) < 0)
			return rc;
		if (rc)
			return -EINVAL;
	}
	if (have_dst && !(a->flags & RENAME_EXCHANGE)) {
		if ((rc = may_remove(txn, S_ISDIR(s.mode), dino, &d)) < 0)
			return rc;
	}

	core_now(&now);
	if (a->flags & RENAME_EXCHANGE) {
		if ((rc = index_dirent_put(txn, a->parent, a->name, a->len, dino, dtype)) < 0)
			return rc;
		if ((rc = index_dirent_put(txn, a->newparent, a->newname, a->newlen, sino, stype)) < 0)
			return rc;
		if (a->parent != a->newparent) {
			reparent(&s, a->newparent, pp, npp);
			reparent(&d, a->parent, npp, pp);
		}
		set_ctime(&d, &now);
		if ((rc = index_inode_put(txn, &d)) < 0)
			return rc;
	} else {
		if (have_dst) {
			if (S_ISDIR(d.mode) && npp->nlink > 2)
				npp->nlink--;
			if ((rc = drop_link(a->fs, txn, &d, &now)) < 0)
				return rc;
		}
		if ((rc = index_dirent_put(txn, a->newparent, a->newname, a->newlen, sino, stype)) < 0)
			return rc;
		if ((rc = index_dirent_del(txn, a->parent, a->name, a->len)) < 0)
			return rc;
		if (a->parent != a->newparent)
			reparent(&s, a->newparent, pp, npp);
	}
	set_ctime(&s, &now);
	if ((rc = index_inode_put(txn, &s)) < 0)
		return rc;
	set_mtime(pp, &now);
	if ((rc = index_inode_put(txn, pp)) < 0)
		return rc;
	if (npp != pp) {
		set_mtime(npp, &now);
		if ((rc = index_inode_put(txn, npp)) < 0)
			return rc;
	}
	return 0;
}

int ns_rename(struct mvfs *fs, uint64_t parent, const char *name, uint64_t newparent,
	      const char *newname, unsigned flags, uint64_t *moved, uint64_t *swapped)
{
	struct rename_arg a = { fs, parent, newparent, name, newname, strlen(name),
				strlen(newname), flags, 0, 0 };
	int rc;

	if (fs_read_only(fs))
		return -EROFS;
	if (a.len > INDEX_NAME_MAX || a.newlen > INDEX_NAME_MAX)
		return -ENAMETOOLONG;
	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		return -EINVAL;
	rc = index_write(fs->v->ix, do_rename, &a);
	if (rc == 0) {
		if (a.moved)
			itable_set_name(fs, a.moved, newparent, newname);
		if (a.swapped)
			itable_set_name(fs, a.swapped, parent, name);
	}
	if (moved)
		*moved = rc == 0 ? a.moved : 0;
	if (swapped)
		*swapped = rc == 0 ? a.swapped : 0;
	return rc;
}

/* ---- setattr ---- */

struct setattr_arg {
	uint64_t ino;
	const struct mv_attr *want;
	int mask;
	struct mv_attr *out;
	int acl_changed;
	struct acl acl;
};

static int do_setattr(struct index_txn *txn, void *argp)
{
	struct setattr_arg *a = argp;
	struct mv_attr *o = a->out;
	struct timespec now;
	int rc;

	if ((rc = index_inode_get(txn, a->ino, o)) < 0)
		return rc;
	core_now(&now);
	if ((a->mask & NS_SET_MODE) && !S_ISLNK(o->mode)) {
		/* chmod rewrites the access ACL's owner, mask and other */
		uint8_t raw[4 + 8 * ACL_MAX_ENTRIES];
		ssize_t n = index_xattr_get(txn, a->ino, ACL_XATTR_ACCESS, raw, sizeof(raw));

		if (n >= 0 && acl_parse(&a->acl, raw, (size_t)n) == 0) {
			acl_chmod(&a->acl, a->want->mode);
			a->acl_changed = 1;
		} else if (n < 0 && n != -ENODATA) {
			return (int)n;
		}
	}
	if (a->mask & NS_SET_MODE)
		o->mode = (o->mode & S_IFMT) | (a->want->mode & 07777);
	if (a->mask & NS_CLEAR_SUID)
		o->mode &= ~(uint32_t)S_ISUID;
	if (a->mask & NS_CLEAR_SGID)
		o->mode &= ~(uint32_t)S_ISGID;
	if (a->acl_changed && (rc = put_acl(txn, a->ino, ACL_XATTR_ACCESS, &a->acl, 0)) < 0)
		return rc;
	if (a->mask & NS_SET_UID)
		o->uid = a->want->uid;
	if (a->mask & NS_SET_GID)
		o->gid = a->want->gid;
	if (a->mask & NS_SET_ATIME) {
		o->atime_s = a->want->atime_s;
		o->atime_ns = a->want->atime_ns;
	}
	if (a->mask & NS_SET_MTIME) {
		o->mtime_s = a->want->mtime_s;
		o->mtime_ns = a->want->mtime_ns;
	}
	if (a->mask & NS_SET_CTIME) {
		o->ctime_s = a->want->ctime_s;
		o->ctime_ns = a->want->ctime_ns;
	} else {
		set_ctime(o, &now);
	}
	return index_inode_put(txn, o);
}

int ns_setattr(struct mvfs *fs, uint64_t ino, const struct mv_attr *want, int mask, struct mv_attr *out)
{
	struct setattr_arg *a;
	struct mv_inode *in = NULL;
	int rc;

	if (fs_read_only(fs))
		return -EROFS;
	if (!(a = calloc(1, sizeof(*a))))
		return -ENOMEM;
	a->ino = ino;
	a->want = want;
	a->mask = mask & ~NS_SET_SIZE;
	a->out = out;

	if (mask & NS_SET_SIZE) {
		struct timespec now;

		if ((rc = ns_getattr(fs, ino, out)) < 0)
			goto out;
		if (S_ISDIR(out->mode))
			rc = -EISDIR;
		else if (!S_ISREG(out->mode))
			rc = -EINVAL;
		else if (want->size > MV_MAX_FILE_SIZE)
			rc = -EFBIG;
		else
			rc = itable_get(fs, ino, &in);
		if (rc < 0)
			goto out;
		core_now(&now);
		rc = filedata_truncate(fs, in, want->size, &now);
		if (rc < 0)
			goto out;
	} else if (mask & (NS_SET_MTIME | NS_SET_ATIME)) {
		/*
		 * A buffered write or truncate that stamped its own mtime must
		 * land first, or its older time would override this one.  With
		 * the writeback cache writes stamp none (the kernel owns mtime
		 * and sends it here on every inode write-back): flushing then
		 * would stall each write-back for nothing.
		 */
		in = itable_find(fs, ino);
		if (in && filedata_mtime_pending(in) && (rc = filedata_flush(fs, in)) < 0)
			goto out;
	}
	if (a->mask)
		rc = index_write(fs->v->ix, do_setattr, a);
	else
		rc = ns_getattr(fs, ino, out);
	if (rc == 0)
		overlay(fs, out);
out:
	itable_put(fs, in);
	ns_release_inodes(fs);
	free(a);
	return rc;
}

/* ---- listing ---- */

struct readdir_arg {
	struct mvfs *fs;
	struct index_txn *txn;
	uint64_t dir;
	int plus;
	ns_dirent_fn fn;
	void *ctx;
	unsigned taken;
	int err;
};

static int readdir_one(void *ctx, const char *name, size_t len, uint64_t ino, uint8_t type,
		       uint64_t next_off)
{
	struct readdir_arg *r = ctx;
	char cname[INDEX_NAME_MAX + 1];
	struct mv_attr a;
	int rc;

	memcpy(cname, name, len);
	cname[len] = '\0';
	if (!r->plus) {
		if (r->fn(r->ctx, cname, ino, (mode_t)type << 12, NULL, next_off))
			return 1;
		r->taken++;
		return 0;
	}
	if ((rc = index_inode_get(r->txn, ino, &a)) < 0) {
		r->err = rc;
		return 1;
	}
	if (S_ISREG(a.mode)) {
		struct mv_inode *in = itable_find(r->fs, ino);

		/* a pin dropped here may release the inode: queued, and
		 * finished by ns_readdir once the transaction is over */
		if (in) {
			filedata_overlay(r->fs, in, &a);
			itable_put(r->fs, in);
		}
	}
	if (r->fn(r->ctx, cname, ino, a.mode, &a, next_off))
		return 1;
	r->taken++;
	itable_lookup_inc(r->fs, ino, r->dir, cname);
	return 0;
}

int ns_readdir(struct mvfs *fs, uint64_t dir, uint64_t off, int plus, ns_dirent_fn fn, void *ctx)
{
	struct readdir_arg r = { .fs = fs, .dir = dir, .plus = plus, .fn = fn, .ctx = ctx };
	struct mv_attr d;
	int rc;

	if ((rc = index_read_begin(fs->v->ix, &r.txn)) < 0)
		return rc;
	if ((rc = index_inode_get(r.txn, dir, &d)) < 0)
		goto out;
	/* no lookup is counted for these: the kernel takes none */
	if (off < 1) {
		if (fn(ctx, ".", dir, S_IFDIR, NULL, 1))
			goto out;
		r.taken++;
	}
	if (off < 2) {
		if (fn(ctx, "..", d.parent ? d.parent : dir, S_IFDIR, NULL, 2))
			goto out;
		r.taken++;
	}
	rc = index_dirent_iter(r.txn, dir, off, readdir_one, &r);
	if (rc == 0 && r.err && r.taken == 0)
		rc = r.err;
out:
	index_read_end(r.txn);
	ns_release_inodes(fs);
	return rc;
}

/* ---- xattrs ---- */

/* The namespaces ext4 accepts: of system.*, only the two POSIX ACLs. */
static int xattr_name_ok(const char *name)
{
	static const char *const prefixes[] = { "user.", "trusted.", "security." };
	size_t nlen = strlen(name);

	if (nlen == 0 || nlen > INDEX_XATTR_NAME_MAX)
		return -ERANGE;
	if (!strcmp(name, ACL_XATTR_ACCESS) || !strcmp(name, ACL_XATTR_DEFAULT))
		return 0;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		size_t plen = strlen(prefixes[i]);

		/* a namespace with no name in it: EINVAL, as the VFS says */
		if (nlen >= plen && !strncmp(name, prefixes[i], plen))
			return nlen > plen ? 0 : -EINVAL;
	}
	return -EOPNOTSUPP;
}

struct xattr_arg {
	uint64_t ino;
	const char *name;
	const void *value;
	size_t len;
	int flags;
	int remove;
	int is_acl;		/* 1 access ACL, 2 default ACL */
	struct acl acl;
};

static int value_is(struct index_txn *txn, uint64_t ino, const char *name, const void *value,
		    size_t len)
{
	uint8_t *cur;
	int same;

	if (len == 0)
		return 1;
	if (!(cur = malloc(len)))
		return 0;
	same = index_xattr_get(txn, ino, name, cur, len) == (ssize_t)len && !memcmp(cur, value, len);
	free(cur);
	return same;
}

static int do_xattr(struct index_txn *txn, void *argp)
{
	struct xattr_arg *a = argp;
	struct mv_attr at;
	struct timespec now;
	ssize_t have;
	int rc;

	if ((rc = index_inode_get(txn, a->ino, &at)) < 0)
		return rc;
	have = index_xattr_get(txn, a->ino, a->name, NULL, 0);
	if (have < 0 && have != -ENODATA)
		return (int)have;
	if (a->remove) {
		if (have == -ENODATA)
			return -ENODATA;
	} else {
		if ((a->flags & XATTR_CREATE) && have >= 0)
			return -EEXIST;
		if ((a->flags & XATTR_REPLACE) && have == -ENODATA)
			return -ENODATA;
		/* like ext4, storing the value it already has changes nothing,
		 * not even ctime */
		if (!a->is_acl && have >= 0 && (size_t)have == a->len &&
		    value_is(txn, a->ino, a->name, a->value, a->len))
			return 0;
	}
	core_now(&now);
	set_ctime(&at, &now);
	if (a->is_acl && !a->remove) {
		if (a->is_acl == 2 && !S_ISDIR(at.mode))
			return -EACCES;	/* only directories have default ACLs */
		if (a->is_acl == 1)
			at.mode = (at.mode & ~(uint32_t)0777) | acl_mode_bits(&a->acl);
		rc = put_acl(txn, a->ino, a->name, &a->acl, a->is_acl == 1);
	} else {
		rc = a->remove ? index_xattr_del(txn, a->ino, a->name)
			       : index_xattr_put(txn, a->ino, a->name, a->value, a->len);
	}
	if (rc < 0)
		return rc;
	return index_inode_put(txn, &at);
}

int ns_setxattr(struct mvfs *fs, uint64_t ino, const char *name, const void *value, size_t len, int flags)
{
	struct xattr_arg *a;
	int rc;

	if (fs_read_only(fs))
		return -EROFS;
	if ((rc = xattr_name_ok(name)) < 0)
		return rc;
	if (len > INDEX_XATTR_VALUE_MAX)
		return -E2BIG;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	*a = (struct xattr_arg){ .ino = ino, .name = name, .value = value, .len = len, .flags = flags };
	if (!strcmp(name, ACL_XATTR_ACCESS))
		a->is_acl = 1;
	else if (!strcmp(name, ACL_XATTR_DEFAULT))
		a->is_acl = 2;
	if (a->is_acl && !fs->posix_acl)
		rc = -EOPNOTSUPP;
	else if (a->is_acl)
		rc = acl_parse(&a->acl, value, len);
	if (rc == 0)
		rc = index_write(fs->v->ix, do_xattr, a);
	free(a);
	return rc;
}

int ns_removexattr(struct mvfs *fs, uint64_t ino, const char *name)
{
	struct xattr_arg *a;
	int rc;

	if (fs_read_only(fs))
		return -EROFS;
	if ((rc = xattr_name_ok(name)) < 0)
		return rc;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	*a = (struct xattr_arg){ .ino = ino, .name = name, .remove = 1 };
	rc = index_write(fs->v->ix, do_xattr, a);
	free(a);
	return rc;
}

ssize_t ns_getxattr(struct mvfs *fs, uint64_t ino, const char *name, void *value, size_t cap)
{
	struct index_txn *t;
	struct mv_attr at;
	ssize_t n;
	int rc;

	if ((rc = xattr_name_ok(name)) < 0)
		return rc;
	if ((rc = index_read_begin(fs->v->ix, &t)) < 0)
		return rc;
	n = index_inode_get(t, ino, &at);
	if (n == 0)
		n = index_xattr_get(t, ino, name, value, cap);
	index_read_end(t);
	return n;
}

ssize_t ns_listxattr(struct mvfs *fs, uint64_t ino, char *list, size_t cap)
{
	struct index_txn *t;
	struct mv_attr at;
	ssize_t n;
	int rc;

	if ((rc = index_read_begin(fs->v->ix, &t)) < 0)
		return rc;
	n = index_inode_get(t, ino, &at);
	if (n == 0)
		n = index_xattr_list(t, ino, list, cap);
	index_read_end(t);
	return n;
}

/* ---- freeing ---- */

static int do_free(struct index_txn *txn, void *argp)
{
	uint64_t ino = *(uint64_t *)argp;
	struct mv_attr at;
	int rc;

	rc = index_inode_get(txn, ino, &at);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (rc == -ENOENT || at.nlink > 0) {
		/*
		 * Only the orphan mark is stale.  A failed delete is returned,
		 * not swallowed: it broke the transaction, and its own error
		 * (-ENOSPC grows the map and retries) beats the -EIO the
		 * index would report instead.
		 */
		rc = index_orphan_del(txn, ino);
		return rc == -ENOENT ? 0 : rc;
	}
	return index_inode_purge(txn, ino);
}

int ns_free_inode(struct mvfs *fs, uint64_t ino)
{
	return index_write(fs->v->ix, do_free, &ino);
}

int ns_free_orphans(struct mvfs *fs)
{
	uint64_t inos[256];
	struct index_txn *t;
	int n, rc;

	do {
		if ((rc = index_read_begin(fs->v->ix, &t)) < 0)
			return rc;
		n = index_orphan_list(t, inos, 256);
		index_read_end(t);
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++)
			if ((rc = ns_free_inode(fs, inos[i])) < 0)
				return rc;
	} while (n == 256);
	return 0;
}

void ns_release_inodes(struct mvfs *fs)
{
	struct mv_inode *in;

	while ((in = itable_next_released(fs))) {
		/* unlinked: nobody can reach it any more */
		if (in->unlinked)
			ns_free_inode(fs, in->ino);
		else if (filedata_unwritten(in))
			filedata_flush(fs, in);
		filedata_release(fs, in);
		itable_free_inode(fs, in);
	}
}
