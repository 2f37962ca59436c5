/*
 * namespace: create, look up, link, unlink and rename through the core API
 * on a real store (LMDB index, sealed records), without FUSE; the refusals
 * POSIX asks for (EEXIST, ENOTEMPTY, EINVAL for a directory moved below
 * itself, ENAMETOOLONG past 255 bytes), link counts of directories and
 * hard links, xattr flags, and a file unlinked while open: freed on its
 * last release, or by ns_free_orphans after a crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../fsutil.h"
#include "store/fsck.h"
#include "../../tap.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define ROOT INDEX_ROOT_INO

static struct tu_env env;
static struct tu_fs m;

static uint32_t nlink_of(uint64_t ino)
{
	struct mv_attr a;

	return ns_getattr(m.fs, ino, &a) == 0 ? a.nlink : UINT32_MAX;
}

static uint64_t ino_at(uint64_t parent, const char *name)
{
	struct mv_attr a;

	return ns_lookup(m.fs, parent, name, &a) == 0 ? a.ino : 0;
}

static int gone(uint64_t ino)
{
	struct mv_attr a;

	return ns_getattr(m.fs, ino, &a) == -ENOENT;
}

static void test_create_lookup(void)
{
	struct mv_attr a = { 0 }, b = { 0 };
	int64_t f, d, s;

	f = tu_mk(m.fs, ROOT, "file", S_IFREG | 0666);
	ok(f > ROOT, "mknod a file: inode %lld", (long long)f);
	ok(ns_lookup(m.fs, ROOT, "file", &a) == 0 && a.ino == (uint64_t)f && S_ISREG(a.mode) &&
	   a.nlink == 1 && a.size == 0 && a.uid == 1000, "lookup finds it: regular, nlink 1, empty");
	ok((a.mode & 0777) == 0666, "without POSIX ACLs the kernel applied the umask: mode kept (%o)",
	   a.mode & 0777);
	m.fs->posix_acl = 1;
	ok(tu_mk(m.fs, ROOT, "masked", S_IFREG | 0666) > 0 && ns_lookup(m.fs, ROOT, "masked", &b) == 0 &&
	   (b.mode & 0777) == 0644, "with POSIX ACLs and no default ACL the umask is applied here (%o)",
	   b.mode & 0777);
	m.fs->posix_acl = 0;
	ns_unlink(m.fs, ROOT, "masked", 0);
	ok(tu_mk(m.fs, ROOT, "file", S_IFREG | 0600) == -EEXIST, "same name again: EEXIST");
	ok(ns_lookup(m.fs, ROOT, "nothere", &a) == -ENOENT, "missing name: ENOENT");
	ok(tu_mk(m.fs, (uint64_t)f, "x", S_IFREG | 0600) == -ENOTDIR, "create under a file: ENOTDIR");
	ok(tu_mk(m.fs, 999999, "x", S_IFREG | 0600) == -ENOENT, "create under a missing inode: ENOENT");

	d = tu_mk(m.fs, ROOT, "dir", S_IFDIR | 0777);
	ok(d > f, "mkdir: inode %lld (numbers grow)", (long long)d);
	ok(ns_getattr(m.fs, (uint64_t)d, &b) == 0 && S_ISDIR(b.mode) && b.nlink == 2 &&
	   b.parent == ROOT, "a new directory has nlink 2 and knows its parent");
	ok(nlink_of(ROOT) == 3, "the root's nlink counts the new subdirectory (%u)", nlink_of(ROOT));
	ok(ns_mknod(m.fs, &tu_ctx, ROOT, "ln", S_IFLNK | 0777, 0, "dir/target", &a) == 0 &&
	   S_ISLNK(a.mode) && a.size == 10 && a.symlink_len == 10 && !memcmp(a.symlink, "dir/target", 10),
	   "symlink keeps its target");
	s = (int64_t)a.ino;
	ok(ns_getattr(m.fs, (uint64_t)s, &b) == 0 && b.symlink_len == 10 &&
	   !memcmp(b.symlink, "dir/target", 10), "symlink target reads back from the index");
	{
		char *t = malloc(INDEX_SYMLINK_MAX + 2);

		memset(t, 'a', INDEX_SYMLINK_MAX + 1);
		t[INDEX_SYMLINK_MAX + 1] = '\0';
		ok(ns_mknod(m.fs, &tu_ctx, ROOT, "long", S_IFLNK | 0777, 0, t, &a) == -ENAMETOOLONG,
		   "symlink target of 4096 bytes: ENAMETOOLONG");
		t[INDEX_SYMLINK_MAX] = '\0';
		ok(ns_mknod(m.fs, &tu_ctx, ROOT, "long", S_IFLNK | 0777, 0, t, &a) == 0 &&
		   a.symlink_len == INDEX_SYMLINK_MAX, "symlink target of 4095 bytes is fine");
		free(t);
		ok(ns_unlink(m.fs, ROOT, "long", 0) == 0, "unlink the long symlink");
	}
	ok(ns_unlink(m.fs, ROOT, "ln", 0) == 0 && gone((uint64_t)s), "unlink a symlink frees it");

	/* a setgid directory passes its group and the bit on */
	{
		struct mv_attr want = { .mode = 02775 };
		int64_t sub;

		ok(ns_setattr(m.fs, (uint64_t)d, &want, NS_SET_MODE, &b) == 0 && (b.mode & 07777) == 02775,
		   "chmod g+s on a directory");
		sub = tu_mk(m.fs, (uint64_t)d, "sub", S_IFDIR | 0755);
		ok(sub > 0 && ns_getattr(m.fs, (uint64_t)sub, &b) == 0 && (b.mode & S_ISGID),
		   "a subdirectory of a setgid directory is setgid");
		ok(ns_unlink(m.fs, (uint64_t)d, "sub", 1) == 0, "rmdir it");
		want.mode = 0755;
		ns_setattr(m.fs, (uint64_t)d, &want, NS_SET_MODE, &b);
	}
}

static void test_names(void)
{
	char n255[256], n256[257];
	struct mv_attr a;
	uint64_t d = ino_at(ROOT, "dir");

	memset(n255, 'n', 255);
	n255[255] = '\0';
	memset(n256, 'm', 256);
	n256[256] = '\0';
	ok(tu_mk(m.fs, d, n255, S_IFREG | 0644) > 0, "a 255-byte name is accepted");
	ok(ns_lookup(m.fs, d, n255, &a) == 0, "and found again");
	ok(tu_mk(m.fs, d, n256, S_IFREG | 0644) == -ENAMETOOLONG, "a 256-byte name: ENAMETOOLONG");
	ok(ns_lookup(m.fs, d, n256, &a) == -ENAMETOOLONG, "lookup of a 256-byte name: ENAMETOOLONG");
	ok(ns_unlink(m.fs, d, n256, 0) == -ENAMETOOLONG, "unlink of a 256-byte name: ENAMETOOLONG");
	ok(ns_rename(m.fs, d, n255, d, n256, 0, NULL, NULL) == -ENAMETOOLONG,
	   "rename to a 256-byte name: ENAMETOOLONG");
	ok(ns_link(m.fs, a.ino, d, n256, &a) == -ENAMETOOLONG, "link as a 256-byte name: ENAMETOOLONG");
	ok(ns_lookup(m.fs, d, n255, &a) == 0 && a.nlink == 1, "the refused calls changed nothing");
	n255[254] = 'x';
	ok(ns_rename(m.fs, d, "nope", d, n255, 0, NULL, NULL) == -ENOENT, "rename of a missing name: ENOENT");
	n255[254] = 'n';
	ok(ns_unlink(m.fs, d, n255, 0) == 0, "unlink the 255-byte name");
}

static void test_unlink_rmdir(void)
{
	uint64_t d = ino_at(ROOT, "dir"), f;

	ok(tu_mk(m.fs, d, "inner", S_IFREG | 0644) > 0, "a file inside dir");
	ok(ns_unlink(m.fs, ROOT, "dir", 1) == -ENOTEMPTY, "rmdir of a non-empty directory: ENOTEMPTY");
	ok(ns_unlink(m.fs, ROOT, "dir", 0) == -EISDIR, "unlink of a directory: EISDIR");
	ok(ns_unlink(m.fs, d, "inner", 1) == -ENOTDIR, "rmdir of a file: ENOTDIR");
	ok(ns_unlink(m.fs, d, "none", 0) == -ENOENT, "unlink of a missing name: ENOENT");
	f = ino_at(d, "inner");
	ok(ns_unlink(m.fs, d, "inner", 0) == 0 && gone(f), "unlink frees an unused file at once");
	ok(ns_unlink(m.fs, ROOT, "dir", 1) == 0 && gone(d), "rmdir of the emptied directory");
	ok(nlink_of(ROOT) == 2, "the root's nlink is back to 2 (%u)", nlink_of(ROOT));
	ok(tu_mk(m.fs, d, "x", S_IFREG | 0644) == -ENOENT, "create in the removed directory: ENOENT");
}

static void test_links(void)
{
	uint64_t d1 = tu_mk_or_bail(m.fs, ROOT, "l1", S_IFDIR | 0755);
	uint64_t d2 = tu_mk_or_bail(m.fs, ROOT, "l2", S_IFDIR | 0755);
	uint64_t f = tu_mk_or_bail(m.fs, d1, "f", S_IFREG | 0644);
	struct mv_attr a;

	ok(tu_write(m.fs, f, 0, 10000, 7, 0, 1) == 0, "write 10000 bytes into l1/f");
	ok(ns_link(m.fs, f, d2, "g", &a) == 0 && a.ino == f && a.nlink == 2, "link l2/g: nlink 2");
	ok(a.size == 10000, "link's attributes carry the size");
	ok(ino_at(d2, "g") == f && ino_at(d1, "f") == f, "both names reach one inode");
	ok(ns_link(m.fs, f, d2, "g", &a) == -EEXIST, "link onto an existing name: EEXIST");
	ok(ns_link(m.fs, d1, d2, "dlink", &a) == -EPERM, "hard link to a directory: EPERM");
	ok(ns_link(m.fs, f, f, "x", &a) == -ENOTDIR, "link into a file: ENOTDIR");
	ok(nlink_of(d2) == 2, "a hard link does not change the directory's nlink");
	ok(ns_unlink(m.fs, d1, "f", 0) == 0 && nlink_of(f) == 1, "unlink one name: nlink 1");
	ok(tu_read_check(m.fs, f, 0, 10000, 7), "the data stays with the other name");
	ok(tu_chunk_count(m.v, f) == 3, "its chunks are all still there (%d)", tu_chunk_count(m.v, f));
	ok(ns_unlink(m.fs, d2, "g", 0) == 0 && gone(f), "unlink the last name frees the inode");
	ok(tu_chunk_count(m.v, f) == 0, "and its chunks (%d left)", tu_chunk_count(m.v, f));
	ns_unlink(m.fs, ROOT, "l1", 1);
	ns_unlink(m.fs, ROOT, "l2", 1);
}

static void test_rename(void)
{
	uint64_t a = tu_mk_or_bail(m.fs, ROOT, "ra", S_IFDIR | 0755);
	uint64_t b = tu_mk_or_bail(m.fs, ROOT, "rb", S_IFDIR | 0755);
	uint64_t asub = tu_mk_or_bail(m.fs, a, "sub", S_IFDIR | 0755);
	uint64_t f1 = tu_mk_or_bail(m.fs, a, "f1", S_IFREG | 0644);
	uint64_t f2 = tu_mk_or_bail(m.fs, b, "f2", S_IFREG | 0644);
	uint64_t moved = 1, swapped = 1;
	struct mv_attr at;
	uint32_t root_nl = nlink_of(ROOT);

	ok(nlink_of(a) == 3 && nlink_of(b) == 2, "ra has a subdirectory (nlink 3), rb none (2)");
	ok(tu_write(m.fs, f2, 0, 5000, 2, 0, 1) == 0, "rb/f2 holds data");

	/* plain moves */
	ok(ns_rename(m.fs, a, "f1", b, "f1", 0, &moved, &swapped) == 0 && moved == f1 && swapped == 0,
	   "move ra/f1 to rb/f1: moved names it, nothing swapped");
	ok(ino_at(a, "f1") == 0 && ino_at(b, "f1") == f1, "old name gone, new name there");
	ok(ns_rename(m.fs, b, "f1", b, "f1", RENAME_NOREPLACE, NULL, NULL) == -EEXIST,
	   "NOREPLACE onto itself: EEXIST");

	/* replacing a file frees the old one */
	ok(ns_rename(m.fs, b, "f1", b, "f2", RENAME_NOREPLACE, NULL, NULL) == -EEXIST,
	   "NOREPLACE onto an existing file: EEXIST");
	ok(ino_at(b, "f1") == f1 && ino_at(b, "f2") == f2, "a refused rename changes nothing");
	ok(ns_rename(m.fs, b, "f1", b, "f2", 0, NULL, NULL) == 0 && ino_at(b, "f2") == f1 &&
	   ino_at(b, "f1") == 0, "rename over rb/f2 replaces it");
	ok(gone(f2) && tu_chunk_count(m.v, f2) == 0, "the replaced file and its chunks are freed");

	/* exchange */
	{
		uint64_t g = tu_mk_or_bail(m.fs, a, "g", S_IFREG | 0644);

		ok(ns_rename(m.fs, a, "g", b, "f2", RENAME_EXCHANGE, &moved, &swapped) == 0 &&
		   moved == g && swapped == f1, "EXCHANGE ra/g with rb/f2");
		ok(ino_at(a, "g") == f1 && ino_at(b, "f2") == g, "the two names swapped inodes");
		ok(ns_rename(m.fs, a, "g", b, "absent", RENAME_EXCHANGE, NULL, NULL) == -ENOENT,
		   "EXCHANGE with a missing target: ENOENT");
		ok(ns_rename(m.fs, a, "g", b, "f2", RENAME_EXCHANGE | RENAME_NOREPLACE, NULL, NULL) == -EINVAL,
		   "EXCHANGE|NOREPLACE: EINVAL");
		ok(ns_rename(m.fs, a, "g", b, "f2", 1u << 5, NULL, NULL) == -EINVAL, "unknown flag: EINVAL");
		/* a directory swapped with a file across parents moves one link */
		ok(ns_rename(m.fs, a, "sub", b, "f2", RENAME_EXCHANGE, NULL, NULL) == 0,
		   "EXCHANGE directory ra/sub with file rb/f2");
		ok(nlink_of(a) == 2 && nlink_of(b) == 3, "parents' nlinks follow the directory (%u, %u)",
		   nlink_of(a), nlink_of(b));
		ok(ns_getattr(m.fs, asub, &at) == 0 && at.parent == b, "the directory's parent is now rb");
		ok(ns_rename(m.fs, a, "sub", b, "f2", RENAME_EXCHANGE, NULL, NULL) == 0 &&
		   nlink_of(a) == 3 && nlink_of(b) == 2, "and back");
		ok(ns_unlink(m.fs, b, "f2", 0) == 0 && gone(g), "remove rb/f2 (was ra/g)");
	}

	/* directories */
	ok(tu_mk(m.fs, asub, "deep", S_IFDIR | 0755) > 0, "ra/sub/deep");
	ok(ns_rename(m.fs, ROOT, "ra", asub, "x", 0, NULL, NULL) == -EINVAL,
	   "a directory into its own subdirectory: EINVAL");
	ok(ns_rename(m.fs, ROOT, "ra", ino_at(asub, "deep"), "x", 0, NULL, NULL) == -EINVAL,
	   "a directory two levels below itself: EINVAL");
	ok(ns_rename(m.fs, ROOT, "ra", a, "x", 0, NULL, NULL) == -EINVAL, "a directory into itself: EINVAL");
	ok(ns_rename(m.fs, ROOT, "rb", a, "sub", 0, NULL, NULL) == -ENOTEMPTY,
	   "a directory onto a non-empty one: ENOTEMPTY");
	ok(ns_rename(m.fs, a, "g", ROOT, "rb", 0, NULL, NULL) == -EISDIR, "a file onto a directory: EISDIR");
	ok(ns_rename(m.fs, ROOT, "rb", a, "g", 0, NULL, NULL) == -ENOTDIR, "a directory onto a file: ENOTDIR");
	ok(tu_mk(m.fs, b, "x", S_IFREG | 0644) > 0 &&
	   ns_rename(m.fs, asub, "deep", ROOT, "rb", 0, NULL, NULL) == -ENOTEMPTY,
	   "an empty directory onto a non-empty one: ENOTEMPTY");
	ok(ns_unlink(m.fs, b, "x", 0) == 0, "empty rb again");
	{
		uint64_t deep = ino_at(asub, "deep");

		ok(ns_rename(m.fs, asub, "deep", ROOT, "rb", 0, NULL, NULL) == 0,
		   "a directory onto an empty directory replaces it");
		ok(gone(b) && ino_at(ROOT, "rb") == deep, "the empty directory is freed");
		ok(nlink_of(ROOT) == root_nl && nlink_of(asub) == 2,
		   "root keeps its count (%u, was %u), ra/sub lost one (%u)", nlink_of(ROOT), root_nl,
		   nlink_of(asub));
		ok(ns_getattr(m.fs, deep, &at) == 0 && at.parent == ROOT, "the moved directory's parent is root");
	}
	/* a hard link renamed onto its other name: nothing happens */
	{
		uint64_t h = tu_mk_or_bail(m.fs, a, "h", S_IFREG | 0644);

		ok(ns_link(m.fs, h, a, "h2", &at) == 0, "h2 links to h");
		ok(ns_rename(m.fs, a, "h", a, "h2", 0, &moved, NULL) == 0 && moved == 0 &&
		   ino_at(a, "h") == h && ino_at(a, "h2") == h && nlink_of(h) == 2,
		   "rename of a link onto another link of the same file does nothing");
		ns_unlink(m.fs, a, "h", 0);
		ns_unlink(m.fs, a, "h2", 0);
	}
	ns_unlink(m.fs, a, "g", 0);
	ns_unlink(m.fs, asub, "deep", 1);
	ns_unlink(m.fs, a, "sub", 1);
	ok(ns_unlink(m.fs, ROOT, "ra", 1) == 0 && ns_unlink(m.fs, ROOT, "rb", 1) == 0, "clean up");
	ok(nlink_of(ROOT) == 2, "root nlink 2 again (%u)", nlink_of(ROOT));
}

static void test_setattr(void)
{
	uint64_t f = tu_mk_or_bail(m.fs, ROOT, "sa", S_IFREG | 0644);
	uint64_t d = tu_mk_or_bail(m.fs, ROOT, "sad", S_IFDIR | 0755);
	struct mv_attr want = { 0 }, out;

	want.mode = 04755;
	ok(ns_setattr(m.fs, f, &want, NS_SET_MODE, &out) == 0 && (out.mode & 07777) == 04755 &&
	   S_ISREG(out.mode), "chmod 4755 keeps the file type");
	ok(ns_setattr(m.fs, f, &want, NS_CLEAR_SUID, &out) == 0 && (out.mode & 07777) == 0755,
	   "NS_CLEAR_SUID drops set-user-ID");
	want.uid = 42;
	want.gid = 43;
	ok(ns_setattr(m.fs, f, &want, NS_SET_UID | NS_SET_GID, &out) == 0 && out.uid == 42 && out.gid == 43,
	   "chown");
	want.mtime_s = 1000000000;
	want.mtime_ns = 5;
	ok(ns_setattr(m.fs, f, &want, NS_SET_MTIME, &out) == 0 && out.mtime_s == 1000000000 &&
	   out.mtime_ns == 5, "set mtime");
	want.size = 123456;
	ok(ns_setattr(m.fs, f, &want, NS_SET_SIZE, &out) == 0 && out.size == 123456, "truncate up via setattr");
	ok(tu_read_zero(m.fs, f, 0, 123456), "the extension reads as zeros");
	ok(ns_setattr(m.fs, d, &want, NS_SET_SIZE, &out) == -EISDIR, "truncate a directory: EISDIR");
	ok(ns_setattr(m.fs, 987654, &want, NS_SET_MODE, &out) == -ENOENT, "setattr of a missing inode: ENOENT");
	ns_unlink(m.fs, ROOT, "sa", 0);
	ns_unlink(m.fs, ROOT, "sad", 1);
}

static void test_xattrs(void)
{
	uint64_t f = tu_mk_or_bail(m.fs, ROOT, "xa", S_IFREG | 0644);
	char buf[64], list[256], name[300];
	static char big[INDEX_XATTR_VALUE_MAX + 1];

	ok(ns_setxattr(m.fs, f, "user.a", "one", 3, XATTR_CREATE) == 0, "CREATE a new xattr");
	ok(ns_setxattr(m.fs, f, "user.a", "two", 3, XATTR_CREATE) == -EEXIST, "CREATE an existing one: EEXIST");
	ok(ns_getxattr(m.fs, f, "user.a", buf, sizeof(buf)) == 3 && !memcmp(buf, "one", 3),
	   "the refused CREATE kept the old value");
	ok(ns_setxattr(m.fs, f, "user.b", "x", 1, XATTR_REPLACE) == -ENODATA, "REPLACE a missing one: ENODATA");
	ok(ns_getxattr(m.fs, f, "user.b", buf, sizeof(buf)) == -ENODATA, "and it was not created");
	ok(ns_setxattr(m.fs, f, "user.a", "three", 5, XATTR_REPLACE) == 0 &&
	   ns_getxattr(m.fs, f, "user.a", buf, sizeof(buf)) == 5 && !memcmp(buf, "three", 5),
	   "REPLACE an existing one");
	ok(ns_setxattr(m.fs, f, "user.b", "", 0, 0) == 0 && ns_getxattr(m.fs, f, "user.b", buf, sizeof(buf)) == 0,
	   "an empty value is a value");
	ok(ns_getxattr(m.fs, f, "user.a", NULL, 0) == 5, "size probe");
	ok(ns_getxattr(m.fs, f, "user.a", buf, 2) == -ERANGE, "too small a buffer: ERANGE");
	{
		ssize_t n = ns_listxattr(m.fs, f, list, sizeof(list));

		ok(n == 14 && ns_listxattr(m.fs, f, NULL, 0) == 14 &&
		   memmem(list, (size_t)n, "user.a\0", 7) && memmem(list, (size_t)n, "user.b\0", 7),
		   "list names both (%zd bytes)", n);
		ok(ns_listxattr(m.fs, f, list, 5) == -ERANGE, "list into too small a buffer: ERANGE");
	}
	ok(ns_setxattr(m.fs, f, "foo.bar", "x", 1, 0) == -EOPNOTSUPP, "unknown namespace: EOPNOTSUPP");
	ok(ns_setxattr(m.fs, f, "user.", "x", 1, 0) == -EINVAL, "namespace without a name: EINVAL");
	memcpy(name, "user.", 5);
	memset(name + 5, 'q', 251);
	name[256] = '\0';
	ok(ns_setxattr(m.fs, f, name, "x", 1, 0) == -ERANGE, "a 256-byte xattr name: ERANGE");
	name[255] = '\0';
	ok(ns_setxattr(m.fs, f, name, "x", 1, 0) == 0, "a 255-byte xattr name is fine");
	ok(ns_setxattr(m.fs, f, "user.big", big, sizeof(big), 0) == -E2BIG, "a value over 64 KiB: E2BIG");
	memset(big, 'v', sizeof(big));
	ok(ns_setxattr(m.fs, f, "user.big", big, INDEX_XATTR_VALUE_MAX, 0) == 0 &&
	   ns_getxattr(m.fs, f, "user.big", NULL, 0) == INDEX_XATTR_VALUE_MAX, "a 64 KiB value is fine");
	ok(ns_setxattr(m.fs, f, "system.posix_acl_access", "\2\0\0\0", 4, 0) == -EOPNOTSUPP,
	   "ACLs without posix_acl: EOPNOTSUPP");
	ok(ns_removexattr(m.fs, f, "user.a") == 0 && ns_getxattr(m.fs, f, "user.a", buf, sizeof(buf)) == -ENODATA,
	   "remove");
	ok(ns_removexattr(m.fs, f, "user.a") == -ENODATA, "remove a missing one: ENODATA");
	ok(ns_setxattr(m.fs, 876543, "user.a", "x", 1, 0) == -ENOENT, "xattr on a missing inode: ENOENT");
	ok(ns_unlink(m.fs, ROOT, "xa", 0) == 0 && ns_getxattr(m.fs, f, "user.b", buf, sizeof(buf)) == -ENOENT,
	   "unlink frees the xattrs with the inode");
	{
		struct index_txn *t;
		ssize_t n = -1;

		if (index_read_begin(m.v->ix, &t) == 0) {
			n = index_xattr_list(t, f, NULL, 0);
			index_read_end(t);
		}
		ok(n == 0, "no xattr record of the freed inode is left (%zd)", n);
	}
}

/* The kernel holds it (lookup) and a handle has it open. */
static struct mv_inode *open_file(uint64_t parent, const char *name)
{
	struct mv_inode *in = NULL;
	uint64_t ino = ino_at(parent, name);

	itable_lookup_inc(m.fs, ino, parent, name);
	if (itable_get(m.fs, ino, &in) == 0)
		itable_open_inc(m.fs, in);
	return in;
}

static int groups_called;

static int in_group_3000(void *ctx, uint32_t gid)
{
	(void)ctx;
	groups_called++;
	return gid == 3000;
}

static void forget_at(void *ctx, size_t i, uint64_t *ino, uint64_t *nlookup)
{
	uint64_t (*fg)[2] = ctx;

	*ino = fg[i][0];
	*nlookup = fg[i][1];
}

/* The calls the FUSE adapter makes, one per request. */
static void test_daemon_calls(void)
{
	struct core_caller other = { 2000, 2000, NULL, NULL }, member = { 2000, 2000, in_group_3000, NULL };
	struct core_caller root = { 0, 0, NULL, NULL };
	struct mv_attr want = { 0 }, out, a;
	struct mv_inode *in;
	uint64_t f, d, d2, ino = 1, fg[2][2];
	char list[64];

	f = tu_mk_or_bail(m.fs, ROOT, "dc", S_IFREG | 0644);
	d = tu_mk_or_bail(m.fs, ROOT, "dcd", S_IFDIR | 0755);
	tu_mk_or_bail(m.fs, d, "in", S_IFREG | 0644);
	ok(core_unlink(m.fs, ROOT, "dcd", 1, &ino) == -ENOTEMPTY && ino == d,
	   "core_unlink names the inode even when it refuses");
	ok(core_unlink(m.fs, ROOT, "none", 0, &ino) == -ENOENT && ino == 0, "and 0 for a missing name");
	ok(core_unlink(m.fs, d, "in", 0, NULL) == 0 && core_unlink(m.fs, ROOT, "dcd", 1, &ino) == 0 && ino == d,
	   "core_unlink of a directory: its inode");

	want.mode = 06744;
	want.gid = 3000;
	ok(ns_setattr(m.fs, f, &want, NS_SET_MODE | NS_SET_GID, &out) == 0, "mode 6744, group 3000");
	want.size = 10;
	ok(core_setattr(m.fs, f, &want, NS_SET_SIZE, CORE_KILL_CHANGE, &root, &out) == 0 &&
	   (out.mode & 07777) == 06744, "truncate by root keeps set-ID");
	groups_called = 0;
	ok(core_setattr(m.fs, f, &want, NS_SET_SIZE, CORE_KILL_CHANGE, &member, &out) == 0 &&
	   (out.mode & 07777) == 02744 && groups_called == 1,
	   "truncate by a member of the file's group: set-user-ID goes, set-group-ID stays");
	ok(core_setattr(m.fs, f, &want, 0, CORE_KILL_CTIME, &other, &out) == -EPERM,
	   "chown(f, -1, -1) by a stranger with bits to clear: EPERM");
	ok(core_setattr(m.fs, f, &want, NS_SET_SIZE, CORE_KILL_CHANGE, &other, &out) == 0 &&
	   (out.mode & 07777) == 0744, "truncate by a stranger: set-group-ID goes too");
	ok(ns_getattr(m.fs, f, &a) == 0 && core_setattr(m.fs, f, &want, 0, CORE_KILL_NONE, NULL, &out) == 0 &&
	   (out.mode & 07777) == 0744, "nothing to set: the change is marked, nothing cleared");

	want.mode = 06755;
	ok(ns_setattr(m.fs, f, &want, NS_SET_MODE, &out) == 0 && core_open(m.fs, f, O_RDWR, &in) == 0,
	   "mode 6755, opened");
	ok(core_write(m.fs, in, "abc", 3, 0, NULL) == 3 && ns_getattr(m.fs, f, &a) == 0 &&
	   (a.mode & 07777) == 06755, "a write asking no kill keeps set-ID");
	ok(core_write(m.fs, in, "abc", 3, 0, &member) == 3 && ns_getattr(m.fs, f, &a) == 0 &&
	   (a.mode & 07777) == 0755, "a killing write: group-execute set, so both go");
	ok(core_write(m.fs, in, "x", 1, (off_t)MV_MAX_FILE_SIZE, NULL) == -EFBIG, "a write at the largest size: EFBIG");
	core_release(m.fs, in, O_RDWR);

	ok(ns_setxattr(m.fs, f, "trusted.t", "1", 1, 0) == 0 && ns_setxattr(m.fs, f, "user.u", "2", 1, 0) == 0,
	   "a trusted and a user xattr");
	ok(core_listxattr(m.fs, f, 0, NULL, 0) == 17 && core_listxattr(m.fs, f, 1, NULL, 0) == 7,
	   "core_listxattr: the length, with and without trusted.*");
	ok(core_listxattr(m.fs, f, 1, list, 6) == -ERANGE, "ERANGE below the filtered length");
	ok(core_listxattr(m.fs, f, 1, list, 7) == 7 && !memcmp(list, "user.u", 7), "the filtered list fits its length");

	d2 = tu_mk_or_bail(m.fs, ROOT, "dc1", S_IFREG | 0644);
	fg[0][0] = d2;
	fg[0][1] = 1;
	fg[1][0] = d2;
	fg[1][1] = 1;
	ok(core_lookup(m.fs, ROOT, "dc", &a) == 0 && a.ino == f, "core_lookup");
	ok(ns_unlink(m.fs, ROOT, "dc", 0) == 0 && !gone(f), "its counted lookup keeps the unlinked inode");
	ok(core_link(m.fs, d2, ROOT, "dc2", &a) == 0 && core_lookup(m.fs, ROOT, "dc2", &a) == 0 &&
	   ns_unlink(m.fs, ROOT, "dc2", 0) == 0 && ns_unlink(m.fs, ROOT, "dc1", 0) == 0,
	   "core_link and core_lookup: two lookups of a file, then unlinked");
	core_forget(m.fs, f, 1);
	ok(gone(f), "freed at the FORGET");
	core_forget_multi(m.fs, 1, forget_at, fg);
	ok(!gone(d2), "a FORGET_MULTI of one lookup leaves the other");
	core_forget_multi(m.fs, 1, forget_at, fg + 1);
	ok(gone(d2), "freed at the last");
}

static void close_file(struct mv_inode *in)
{
	uint64_t ino = in->ino;

	itable_open_dec(m.fs, in);
	itable_put(m.fs, in);
	itable_forget(m.fs, ino, 1);
}

static void test_unlink_open(void)
{
	uint64_t f = tu_mk_or_bail(m.fs, ROOT, "uo", S_IFREG | 0644), orph[8];
	struct mv_inode *in;
	struct mv_attr a;
	char buf[100];

	ok(tu_write(m.fs, f, 0, 9000, 11, 0, 1) == 0, "a file with 3 chunks");
	in = open_file(ROOT, "uo");
	ok(in != NULL, "opened");
	ok(ns_unlink(m.fs, ROOT, "uo", 0) == 0, "unlink while open");
	ok(ns_lookup(m.fs, ROOT, "uo", &a) == -ENOENT, "the name is gone");
	ok(ns_getattr(m.fs, f, &a) == 0 && a.nlink == 0, "the inode stays, nlink 0");
	ok(tu_orphans(m.v, orph, 8) == 1 && orph[0] == f, "it is recorded as an orphan");
	ok(filedata_read(m.fs, in, buf, 100, 8900) == 100 && tu_check(buf, 100, 8900, 11),
	   "the open handle still reads the data");
	ok(filedata_write(m.fs, in, "zz", 2, 0) == 2 && filedata_flush(m.fs, in) == 0,
	   "and can still write");
	ok(tu_mk(m.fs, ROOT, "uo", S_IFREG | 0644) > 0 && ino_at(ROOT, "uo") != f,
	   "the name can be reused by a new file meanwhile");
	ns_unlink(m.fs, ROOT, "uo", 0);
	close_file(in);
	ok(gone(f), "the last release frees the inode");
	ok(tu_chunk_count(m.v, f) == 0, "with its chunks (%d)", tu_chunk_count(m.v, f));
	ok(tu_orphans(m.v, orph, 8) == 0, "and its orphan record");

	/* released in the other order: forget first, then close */
	f = tu_mk_or_bail(m.fs, ROOT, "uo2", S_IFREG | 0644);
	tu_write(m.fs, f, 0, 100, 12, 0, 1);
	in = open_file(ROOT, "uo2");
	ok(ns_unlink(m.fs, ROOT, "uo2", 0) == 0, "unlink another open file");
	itable_forget(m.fs, f, 1);
	ok(!gone(f), "the kernel forgetting it is not enough while it is open");
	itable_open_dec(m.fs, in);
	itable_put(m.fs, in);
	ok(gone(f) && tu_orphans(m.v, orph, 8) == 0, "closing it frees it");

	/* a file with another link is not an orphan */
	f = tu_mk_or_bail(m.fs, ROOT, "uo3", S_IFREG | 0644);
	tu_write(m.fs, f, 0, 100, 13, 0, 1);
	ns_link(m.fs, f, ROOT, "uo3b", &a);
	in = open_file(ROOT, "uo3");
	ok(ns_unlink(m.fs, ROOT, "uo3", 0) == 0 && tu_orphans(m.v, orph, 8) == 0,
	   "unlink of one of two links while open: no orphan");
	close_file(in);
	ok(!gone(f) && tu_read_check(m.fs, f, 0, 100, 13), "the release keeps the file and its data");
	ns_unlink(m.fs, ROOT, "uo3b", 0);
}

/*
 * A crash: a child process opens the store, unlinks an open file and dies
 * without releasing it.  The orphan must survive in the index, and the
 * next mount (ns_free_orphans) must free it with its chunks.
 */
static void test_orphan_after_crash(void)
{
	uint64_t orph[8];
	struct tu_fs c;
	pid_t pid;
	int st = 0, n;

	tu_umount(&m);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		uint64_t f;

		if (tu_mount(&env, env.store, &c) < 0)
			_exit(3);
		m = c;
		f = (uint64_t)tu_mk(c.fs, ROOT, "crash", S_IFREG | 0644);
		if (tu_write(c.fs, f, 0, 20000, 21, 0, 1) < 0)
			_exit(4);
		if (!open_file(ROOT, "crash"))
			_exit(5);
		if (ns_unlink(c.fs, ROOT, "crash", 0) < 0 || fs_checkpoint(c.fs) < 0)
			_exit(6);
		printf("# child: inode %llu unlinked while open; dying\n", (unsigned long long)f);
		fflush(stdout);
		_exit(0);
	}
	ok(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "child unlinked an open file and died (status %d)", st);

	/* look at the store before any mount frees anything */
	{
		struct vault *v = NULL;
		struct fsck_report r;
		FILE *out = fopen("/dev/null", "w");

		ok(tu_vault_open(&env, env.store, &v) == 0, "the store opens after the crash");
		n = v ? tu_orphans(v, orph, 8) : -1;
		ok(n == 1, "one orphan recorded (%d)", n);
		ok(n == 1 && tu_chunk_count(v, orph[0]) == 5, "its chunks are still stored");
		ok(v && fsck_run(v, 0, out, out, &r) == 0 && r.orphans == 1 && r.problems == 0,
		   "fsck sees the orphan and calls it no problem");
		vault_close(v);
		fclose(out);
	}
	tu_mount_or_bail(&env, env.store, &m);
	ok(n == 1 && gone(orph[0]) && tu_chunk_count(m.v, orph[0]) == 0,
	   "the next mount frees the orphan and its chunks");
	ok(tu_orphans(m.v, orph, 8) == 0, "no orphan left");
	ok(ns_free_orphans(m.fs) == 0, "ns_free_orphans on a clean store does nothing");
	ok(ns_lookup(m.fs, ROOT, "crash", &(struct mv_attr){ 0 }) == -ENOENT, "its name stayed unlinked");
}

static void test_persist(void)
{
	uint64_t d = tu_mk_or_bail(m.fs, ROOT, "keep", S_IFDIR | 0700);
	uint64_t f = tu_mk_or_bail(m.fs, d, "file", S_IFREG | 0600);
	struct mv_attr a;
	char buf[16];

	ns_setxattr(m.fs, f, "user.k", "v", 1, 0);
	/* held by the "kernel", so the data stays buffered until the unmount */
	itable_lookup_inc(m.fs, f, d, "file");
	tu_write(m.fs, f, 0, 5, 31, 0, 0);
	tu_umount(&m);
	tu_mount_or_bail(&env, env.store, &m);
	ok(ino_at(ROOT, "keep") == d && ino_at(d, "file") == f, "names survive a remount");
	ok(ns_getattr(m.fs, f, &a) == 0 && a.size == 5 && (a.mode & 0777) == 0600, "attributes survive");
	ok(ns_getxattr(m.fs, f, "user.k", buf, sizeof(buf)) == 1 && buf[0] == 'v', "xattrs survive");
	ok(tu_read_check(m.fs, f, 0, 5, 31), "buffered data was written by the unmount");
	ok(nlink_of(ROOT) == 3 && nlink_of(d) == 2, "link counts survive");
	ok(tu_mk(m.fs, ROOT, "new", S_IFREG | 0644) > (int64_t)f, "inode numbers are not reused after a remount");
}

int main(void)
{
	tu_env_init(&env, 4096);
	tu_mount_or_bail(&env, env.store, &m);
	test_create_lookup();
	test_names();
	test_unlink_rmdir();
	test_links();
	test_rename();
	test_setattr();
	test_xattrs();
	test_daemon_calls();
	test_unlink_open();
	test_orphan_after_crash();
	test_persist();
	tu_umount(&m);
	tu_env_done(&env);
	return tap_done();
}
