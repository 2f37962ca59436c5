/*
 * A vault opened read-only (mount --read-only): the core serves reads and
 * refuses every change with EROFS at its entry points, before anything is
 * buffered, whatever the kernel's own "ro" check lets through; and
 * nothing reaches data.mdb or the packs, not even at teardown.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "../../tap.h"
#include "../fsutil.h"
#include "store/layout.h"
#include "util/fileutil.h"

static struct tu_env env;

/* BLAKE2b of a whole file, to prove it unchanged */
static void file_sum(const char *path, uint8_t out[32])
{
	char *buf = NULL;
	size_t len = 0;

	memset(out, 0, 32);
	if (file_read_all(path, 256u << 20, &buf, &len) == 0)
		secure_hash(out, buf, len);
	free(buf);
}

static void store_sums(uint8_t mdb[32], uint8_t pack[32], uint64_t pack_id)
{
	char p[512];

	store_path(p, sizeof(p), env.store, STORE_INDEX_DATA);
	file_sum(p, mdb);
	blobstore_pack_path(env.store, pack_id, p, sizeof(p));
	file_sum(p, pack);
}

int main(void)
{
	struct tu_fs m;
	struct vault_open_opts ro = { .read_only = 1 };
	struct mv_attr a, want = { .mode = 0600 };
	struct mv_inode *in = NULL;
	struct tu_packs packs;
	uint8_t mdb1[32], pack1[32], mdb2[32], pack2[32];
	char why[512];
	uint64_t dir, file;
	int rc;

	tu_env_init(&env, 0);
	tu_mount_or_bail(&env, env.store, &m);
	dir = tu_mk_or_bail(m.fs, INDEX_ROOT_INO, "study", S_IFDIR | 0755);
	file = tu_mk_or_bail(m.fs, dir, "ct.dcm", S_IFREG | 0644);
	ok(tu_write(m.fs, file, 0, 200000, 7, 0, 1) == 0, "write a file");
	ok(ns_setxattr(m.fs, file, "user.k", "v", 1, 0) == 0, "and an xattr");
	tu_umount(&m);
	tu_packs_list(env.store, &packs);
	if (packs.n < 1)
		tu_bail("no pack", -ENOENT, NULL);
	store_sums(mdb1, pack1, packs.id[0]);

	m.v = NULL;
	m.fs = NULL;
	rc = vault_open(&m.v, env.store, env.keystore, &env.key, &ro, why, sizeof(why));
	ok(rc == 0 && m.v->read_only, "open read-only (%s)", why);
	if (rc < 0)
		tu_bail("read-only open", rc, why);
	ok(mvfs_create(&m.fs, m.v) == 0, "the core starts on it");
	ok(tu_read_check(m.fs, file, 0, 200000, 7), "reads serve the file");
	ok(ns_lookup(m.fs, dir, "ct.dcm", &a) == 0 && a.ino == file, "lookups work");
	ok(ns_getxattr(m.fs, file, "user.k", why, sizeof(why)) == 1, "xattrs read");
	ok(core_open(m.fs, file, O_RDONLY, &in) == 0, "open for reading works");
	if (in)
		core_release(m.fs, in, O_RDONLY);
	in = NULL;
	ok(core_open(m.fs, file, O_WRONLY, &in) == -EROFS && !in, "open for writing: EROFS");
	ok(core_open(m.fs, file, O_RDWR | O_TRUNC, &in) == -EROFS, "open O_TRUNC: EROFS");
	ok(core_create(m.fs, &tu_ctx, dir, "new", 0644, O_WRONLY, &a, &in) == -EROFS, "create: EROFS");
	ok(ns_mknod(m.fs, &tu_ctx, dir, "d", S_IFDIR | 0755, 0, NULL, &a) == -EROFS, "mkdir: EROFS");
	ok(ns_mknod(m.fs, &tu_ctx, dir, "l", S_IFLNK | 0777, 0, "ct.dcm", &a) == -EROFS, "symlink: EROFS");
	ok(ns_link(m.fs, file, dir, "hard", &a) == -EROFS, "link: EROFS");
	ok(ns_unlink(m.fs, dir, "ct.dcm", 0) == -EROFS, "unlink: EROFS");
	ok(ns_rename(m.fs, dir, "ct.dcm", dir, "x", 0, NULL, NULL) == -EROFS, "rename: EROFS");
	ok(ns_setattr(m.fs, file, &want, NS_SET_MODE, &a) == -EROFS, "chmod: EROFS");
	ok(core_setattr(m.fs, file, &want, NS_SET_SIZE, CORE_KILL_NONE, NULL, &a) == -EROFS, "truncate: EROFS");
	ok(ns_setxattr(m.fs, file, "user.k", "w", 1, 0) == -EROFS, "setxattr: EROFS");
	ok(ns_removexattr(m.fs, file, "user.k") == -EROFS, "removexattr: EROFS");
	{
		struct mv_inode *h = NULL;

		/* a handle the kernel could only have from before; the
		 * write itself must still be refused, not buffered */
		if (itable_get(m.fs, file, &h) == 0) {
			ok(core_write(m.fs, h, "x", 1, 0, NULL) == -EROFS, "write through a handle: EROFS");
			ok(filedata_fallocate(m.fs, h, 0, 0, 4096) == -EROFS, "fallocate: EROFS");
			itable_put(m.fs, h);
		} else {
			ok(0, "itable_get");
		}
	}
	{
		struct compact_stats st;

		ok(core_compact(m.fs, 1.0, 0, NULL, &st) == -EROFS, "compaction: EROFS");
	}
	ok(fs_checkpoint(m.fs) == 0, "a checkpoint (fsync) succeeds, writing nothing");
	ok(tu_read_check(m.fs, file, 0, 200000, 7), "the file still reads the same");
	tu_umount(&m);
	store_sums(mdb2, pack2, packs.id[0]);
	ok(!memcmp(mdb1, mdb2, 32), "data.mdb is byte-identical after the read-only session");
	ok(!memcmp(pack1, pack2, 32), "and so is the pack");
	tu_env_done(&env);
	return tap_done();
}
