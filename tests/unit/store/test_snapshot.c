/*
 * snapshot: a copy of a store opens with the same keystore and holds the
 * same files; sealed packs are hard-linked (same filesystem), the newest
 * one copied; later writes, deletes and compactions of the original never
 * reach the copy; a store that is open and being written snapshots to the
 * state of its last commit.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../tap.h"
#include "store/compact.h"
#include "store/fsck.h"
#include "store/layout.h"
#include "store/snapshot.h"
#include "../fsutil.h"

#define CS 4096u
#define ROOT INDEX_ROOT_INO

static struct tu_env env;
static FILE *devnull;
static uint64_t ino_a, ino_b, ino_d;

static int seals;	/* seal callbacks seen, and whether the lock was held then */

/* the daemon's seal arrives while the snapshot lock is held shared, so a
 * compaction cannot delete packs between the seal and the links */
static int count_seal(void *ctx, const char *store)
{
	char path[512];
	int fd;

	(void)ctx;
	store_path(path, sizeof(path), store, STORE_SNAPSHOT_LOCK);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK)
		seals++;
	if (fd >= 0)
		close(fd);
	return 0;
}

static int take(const char *dest)
{
	char why[512] = "";
	int rc = snapshot_take(env.store, dest, devnull, count_seal, NULL, why, sizeof(why));

	if (rc < 0)
		printf("# snapshot_take %s: %s\n", dest, why);
	return rc;
}

static int fsck_clean(const char *store, const char *what)
{
	struct vault *v = NULL;
	struct fsck_report r = { 0 };
	/* read-only, as `medvault fsck` checks: a copy must not move the
	 * anchor it shares with the original */
	int rc = tu_vault_open_opts(&env, store, &tu_read_only, &v);

	if (rc == 0)
		rc = fsck_run(v, 0, stdout, devnull, &r);
	vault_close(v);
	return ok(rc == 0 && r.problems == 0, "fsck of %s: clean (%llu problems)", what,
		  (unsigned long long)r.problems);
}

/* /a (3 chunks), /d/b (2 chunks, an xattr), /d/ln -> a, over 3 packs */
static void populate(void)
{
	struct tu_fs m;

	tu_mount_or_bail(&env, env.store, &m);
	ino_a = tu_mk_or_bail(m.fs, ROOT, "a", S_IFREG | 0644);
	ino_d = tu_mk_or_bail(m.fs, ROOT, "d", S_IFDIR | 0755);
	ino_b = tu_mk_or_bail(m.fs, ino_d, "b", S_IFREG | 0600);
	tu_write(m.fs, ino_a, 0, 3 * CS, 1, 0, 1);
	blobstore_seal_open(m.v->bs);
	tu_write(m.fs, ino_b, 0, 2 * CS, 2, 0, 1);
	blobstore_seal_open(m.v->bs);
	tu_write(m.fs, ino_a, CS, 100, 3, 0, 1);
	ns_setxattr(m.fs, ino_b, "user.tag", "snap", 4, 0);
	ns_mknod(m.fs, &tu_ctx, ino_d, "ln", S_IFLNK | 0777, 0, "../a", &(struct mv_attr){ 0 });
	tu_umount(&m);
}

/* the populated contents, as seen in the store at path */
static int same_contents(const char *path)
{
	struct tu_fs m;
	struct mv_attr a;
	char buf[16];
	int good;

	if (tu_mount_opts(&env, path, &tu_read_only, &m) < 0)
		return 0;
	good = ns_lookup(m.fs, ROOT, "a", &a) == 0 && a.ino == ino_a && a.size == 3 * CS &&
	       tu_read_check(m.fs, ino_a, 0, CS, 1) && tu_read_check(m.fs, ino_a, CS, 100, 3) &&
	       tu_read_check(m.fs, ino_a, CS + 100, 2 * CS - 100, 1) &&
	       ns_lookup(m.fs, ino_d, "b", &a) == 0 && a.ino == ino_b && (a.mode & 0777) == 0600 &&
	       tu_read_check(m.fs, ino_b, 0, 2 * CS, 2) &&
	       ns_getxattr(m.fs, ino_b, "user.tag", buf, sizeof(buf)) == 4 && !memcmp(buf, "snap", 4) &&
	       ns_lookup(m.fs, ino_d, "ln", &a) == 0 && a.symlink_len == 4 && !memcmp(a.symlink, "../a", 4);
	tu_umount(&m);
	return good;
}

static void test_unmounted(void)
{
	char dest[256], src[512], dst[512];
	struct tu_packs p;
	uint64_t newest = 0;
	int linked = 0, copied = 0, same = 1, rc;

	tu_path(&env, "snap1", dest, sizeof(dest));
	seals = 0;
	ok(take(dest) == 0, "snapshot of an unmounted store");
	ok(seals == 1, "its seal callback ran once, under the snapshot lock (%d)", seals);
	rc = tu_packs_list(env.store, &p);
	ok(rc == 0 && p.n == 3, "the store has 3 packs (%d)", p.n);
	for (int i = 0; i < p.n; i++)
		if (p.id[i] > newest)
			newest = p.id[i];
	for (int i = 0; i < p.n; i++) {
		struct stat s1, s2;

		blobstore_pack_path(env.store, p.id[i], src, sizeof(src));
		blobstore_pack_path(dest, p.id[i], dst, sizeof(dst));
		if (stat(src, &s1) < 0 || stat(dst, &s2) < 0 || s1.st_size != s2.st_size) {
			same = 0;
			continue;
		}
		if (s1.st_ino == s2.st_ino && s1.st_dev == s2.st_dev)
			linked += p.id[i] != newest;
		else
			copied += p.id[i] == newest;
	}
	ok(same, "every pack is in the copy, same size");
	ok(linked == 2 && copied == 1, "sealed packs hard-linked (%d), the newest copied (%d)", linked, copied);
	ok(same_contents(dest), "the copy opens with the same keystore and holds the same files");
	fsck_clean(dest, "the copy");
	ok(same_contents(env.store), "the original is unchanged");
}

static void test_independent(void)
{
	char dest[256];
	struct compact_stats st;
	struct tu_fs m;
	struct vault *v = NULL;
	int rc;

	tu_path(&env, "snap2", dest, sizeof(dest));
	ok(take(dest) == 0, "another snapshot");
	tu_mount_or_bail(&env, env.store, &m);
	ok(tu_write(m.fs, ino_a, 0, 3 * CS, 9, 0, 1) == 0 && ns_unlink(m.fs, ino_d, "b", 0) == 0 &&
	   ns_setxattr(m.fs, ino_a, "user.new", "x", 1, 0) == 0, "rewrite /a, delete /d/b in the original");
	blobstore_seal_open(m.v->bs);
	tu_umount(&m);
	ok(tu_vault_open(&env, env.store, &v) == 0, "open it for compaction");
	rc = v ? compact_run(v, 0.99, NULL, NULL, NULL, devnull, &st) : -1;
	ok(rc == 0 && st.packs_deleted >= 2, "compaction deletes the original's old packs (%llu)",
	   (unsigned long long)st.packs_deleted);
	vault_close(v);
	ok(same_contents(dest), "the snapshot still holds the old files (its links keep the packs)");
	fsck_clean(dest, "the snapshot after the original was compacted");
	tu_mount_or_bail(&env, env.store, &m);
	ok(tu_read_check(m.fs, ino_a, 0, 3 * CS, 9) && ns_lookup(m.fs, ino_d, "b", &(struct mv_attr){ 0 }) == -ENOENT,
	   "and the original its new ones");
	tu_umount(&m);
}

static void test_mounted(void)
{
	char dest[256];
	struct tu_fs m, c;
	uint64_t f;
	int rc1, rc2, st = 0;
	pid_t pid;

	tu_mount_or_bail(&env, env.store, &m);
	f = tu_mk_or_bail(m.fs, ROOT, "live", S_IFREG | 0644);
	ok(tu_write(m.fs, f, 0, 5 * CS, 20, 0, 1) == 0, "a mounted store: /live written back, not synced");
	tu_path(&env, "snap3", dest, sizeof(dest));
	/* from another process, as `medvault snapshot` runs: LMDB must not
	 * open one environment twice in a process (closing the second
	 * handle drops the first one's locks) */
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(take(dest) == 0 ? 0 : 1);
	ok(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "snapshot while it is open, from another process");
	rc1 = tu_write(m.fs, f, 0, 5 * CS, 21, 0, 1);
	rc2 = tu_write(m.fs, f, 5 * CS, CS, 21, 0, 1);
	ok(rc1 == 0 && rc2 == 0, "rewrite and extend /live after the snapshot (same open pack): %d %d", rc1, rc2);
	ok(tu_mount_opts(&env, dest, &tu_read_only, &c) == 0,
	   "the snapshot opens (read-only) while the original is mounted");
	if (c.fs) {
		ok(tu_size(c.fs, f) == 5 * CS && tu_read_check(c.fs, f, 0, 5 * CS, 20),
		   "it holds /live as committed before the snapshot");
		tu_umount(&c);
	}
	tu_umount(&m);
	fsck_clean(dest, "a snapshot of a mounted store");
}

static void test_refusals(void)
{
	char dest[256], file[256], why[256];
	FILE *fp;

	tu_path(&env, "busy", dest, sizeof(dest));
	mkdir(dest, 0700);
	tu_path(&env, "busy/x", file, sizeof(file));
	fp = fopen(file, "w");
	if (fp)
		fclose(fp);
	ok(take(dest) == -EEXIST, "into a non-empty directory: EEXIST");
	ok(take(file) == -ENOTDIR, "onto a file: ENOTDIR");
	tu_path(&env, "empty", dest, sizeof(dest));
	mkdir(dest, 0700);
	ok(take(dest) == 0, "into an existing empty directory: fine");
	ok(snapshot_take(env.dir, file, devnull, NULL, NULL, why, sizeof(why)) < 0, "of a directory that is no store: %s", why);
}

static void test_empty_store(void)
{
	struct tu_env e2;
	char dest[256];
	struct tu_fs m;
	struct tu_packs p;
	char why[512] = "";

	tu_env_init(&e2, CS);
	tu_path(&e2, "snap", dest, sizeof(dest));
	ok(snapshot_take(e2.store, dest, devnull, NULL, NULL, why, sizeof(why)) == 0, "snapshot of a store with no pack");
	ok(tu_packs_list(dest, &p) == 0 && p.n == 0, "no pack in it");
	ok(tu_mount(&e2, dest, &m) == 0, "it opens");
	if (m.fs) {
		int64_t x = tu_mk(m.fs, ROOT, "x", S_IFREG | 0644);

		ok(x > 0 && tu_write(m.fs, (uint64_t)x, 0, 10, 1, 0, 1) == 0 && tu_read_check(m.fs, (uint64_t)x, 0, 10, 1),
		   "and takes writes");
		tu_umount(&m);
	}
	tu_env_done(&e2);
}

int main(void)
{
	devnull = fopen("/dev/null", "w");
	tu_env_init(&env, CS);
	populate();
	test_unmounted();
	test_independent();
	test_mounted();
	test_refusals();
	test_empty_store();
	tu_env_done(&env);
	fclose(devnull);
	return tap_done();
}
