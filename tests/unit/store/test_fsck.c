/*
 * fsck: a clean store passes; lost records, lost or damaged packs, wrong
 * link counts, unreachable inodes and dangling entries are reported, named
 * by path; --repair fixes what it can without deleting referenced data,
 * and a second check then finds nothing (or, for lost data, the same
 * damage again: repair never hides it by deleting).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../tap.h"
#include "store/fsck.h"
#include "../fsutil.h"
#include "rawlmdb.h"
#include "util/byteorder.h"

#define CS 4096u
#define ROOT INDEX_ROOT_INO

static struct tu_env env;
static uint64_t dir_d, file_f, file_g, file_h;
static FILE *devnull;

/* A store with /d/f (3 chunks), /g (2 chunks, an xattr, a second name
 * /d/g2) and /h (1 chunk), unmounted. */
static void fresh(void)
{
	struct tu_fs m;
	struct mv_attr a;

	tu_env_init(&env, CS);
	tu_mount_or_bail(&env, env.store, &m);
	dir_d = tu_mk_or_bail(m.fs, ROOT, "d", S_IFDIR | 0755);
	file_f = tu_mk_or_bail(m.fs, dir_d, "f", S_IFREG | 0644);
	file_g = tu_mk_or_bail(m.fs, ROOT, "g", S_IFREG | 0644);
	file_h = tu_mk_or_bail(m.fs, ROOT, "h", S_IFREG | 0644);
	if (tu_write(m.fs, file_f, 0, 3 * CS, 1, 0, 1) < 0 || tu_write(m.fs, file_g, 0, 2 * CS, 2, 0, 1) < 0 ||
	    tu_write(m.fs, file_h, 0, 100, 3, 0, 1) < 0 ||
	    ns_setxattr(m.fs, file_g, "user.x", "1", 1, 0) < 0 || ns_link(m.fs, file_g, dir_d, "g2", &a) < 0)
		tu_bail("populate", -EIO, NULL);
	tu_umount(&m);
}

struct report {
	struct fsck_report r;
	int rc;
	char *text;
	size_t len;
};

/* fsck the store (repair or not); findings kept in rep->text */
static void check(int repair, struct report *rep)
{
	struct vault *v = NULL;
	FILE *out;

	free(rep->text);
	memset(rep, 0, sizeof(*rep));
	out = open_memstream(&rep->text, &rep->len);
	rep->rc = tu_vault_open(&env, env.store, &v);
	if (rep->rc == 0)
		rep->rc = fsck_run(v, repair, out, devnull, &rep->r);
	vault_close(v);
	fclose(out);
	for (char *l = rep->text, *nl; l && *l; l = nl + 1) {
		nl = strchr(l, '\n');
		printf("# %.*s\n", nl ? (int)(nl - l) : (int)strlen(l), l);
		if (!nl)
			break;
	}
	printf("# fsck%s: rc %d, %llu problems, %llu damaged, %llu repaired\n", repair ? " --repair" : "",
	       rep->rc, (unsigned long long)rep->r.problems, (unsigned long long)rep->r.damaged,
	       (unsigned long long)rep->r.repaired);
}

static int says(const struct report *rep, const char *what)
{
	return rep->text && strstr(rep->text, what) != NULL;
}

/* ---- raw index edits, as damage or an attacker without keys would do
 * (deletes), or with keys (puts) ---- */

struct edit {
	int kind;
	uint64_t a, b;
	const char *name;
	struct mv_attr attr;
};

enum { E_CHUNK_DEL, E_INODE_PUT, E_INODE_DEL, E_DIRENT_DEL, E_ORPHAN_ADD };

static int do_edit(struct index_txn *t, void *arg)
{
	struct edit *e = arg;

	switch (e->kind) {
	case E_CHUNK_DEL: return index_chunk_del(t, e->a, e->b);
	case E_INODE_PUT: return index_inode_put(t, &e->attr);
	case E_INODE_DEL: return index_inode_del(t, e->a);
	case E_DIRENT_DEL: return index_dirent_del(t, e->a, e->name, strlen(e->name));
	case E_ORPHAN_ADD: return index_orphan_add(t, e->a);
	}
	return -EINVAL;
}

static int edit(struct edit *e)
{
	struct vault *v = NULL;
	int rc = tu_vault_open(&env, env.store, &v);

	if (rc == 0 && e->kind == E_INODE_PUT) {
		struct index_txn *t;

		if ((rc = index_read_begin(v->ix, &t)) == 0) {
			rc = index_inode_get(t, e->attr.ino, &e->attr);
			index_read_end(t);
		}
		if (e->a)
			e->attr.nlink = (uint32_t)e->b;
	}
	if (rc == 0)
		rc = index_write(v->ix, do_edit, e);
	if (rc == 0)
		rc = index_sync(v->ix);
	vault_close(v);
	return rc;
}

static void test_clean(struct report *rep)
{
	struct vault *v = NULL, *v2 = NULL;

	fresh();
	check(0, rep);
	ok(rep->rc == 0 && rep->r.problems == 0 && rep->r.damaged == 0 && rep->len == 0,
	   "a clean store: no problem, no output");
	ok(rep->r.inodes == 5 && rep->r.dirs == 2 && rep->r.files == 3,
	   "counts 5 inodes, 2 directories, 3 files (%llu, %llu, %llu)", (unsigned long long)rep->r.inodes,
	   (unsigned long long)rep->r.dirs, (unsigned long long)rep->r.files);
	ok(rep->r.dirents == 5 && rep->r.chunks == 6 && rep->r.xattrs == 1 && rep->r.packs == 1,
	   "5 entries, 6 chunks, 1 xattr, 1 pack (%llu, %llu, %llu, %llu)", (unsigned long long)rep->r.dirents,
	   (unsigned long long)rep->r.chunks, (unsigned long long)rep->r.xattrs, (unsigned long long)rep->r.packs);
	ok(rep->r.chunk_bytes == 5 * CS + 100, "chunk bytes %llu", (unsigned long long)rep->r.chunk_bytes);
	check(1, rep);
	ok(rep->rc == 0 && rep->r.problems == 0 && rep->r.repaired == 0, "--repair of a clean store changes nothing");
	ok(tu_vault_open(&env, env.store, &v) == 0 && tu_vault_open(&env, env.store, &v2) == -EBUSY,
	   "a store in use cannot be opened a second time (fsck would refuse)");
	vault_close(v2);
	vault_close(v);
	tu_env_done(&env);
}

/* delete one chunk record with raw LMDB, as someone without the keys */
static int raw_chunk_del(uint64_t ino, uint64_t idx)
{
	char dir[600];
	uint8_t key[16];

	be64_put(key, ino);
	be64_put(key + 8, idx);
	snprintf(dir, sizeof(dir), "%s/index", env.store);
	return raw_del(dir, "chunk", key, sizeof(key));
}

static void test_lost_chunk_record(struct report *rep)
{
	struct tu_fs m;
	char buf[CS];
	ssize_t n;

	fresh();
	ok(raw_chunk_del(file_f, 1) == 0, "delete the record of /d/f's chunk 1 (raw LMDB, no key)");
	check(0, rep);
	ok(rep->rc == 0 && rep->r.problems >= 1, "fsck reports it (%llu problems)",
	   (unsigned long long)rep->r.problems);
	ok(rep->r.damaged >= 1 && says(rep, "/d/f") && says(rep, "chunk records do not add up"),
	   "as damage to /d/f: its chunk records do not add up (damaged %llu)",
	   (unsigned long long)rep->r.damaged);
	tu_mount_or_bail(&env, env.store, &m);
	n = tu_read(m.fs, file_f, buf, CS, CS);
	ok(n == -EIO, "reading a chunk whose record was deleted fails (got %zd%s)", n,
	   n == CS && tu_is_zero(buf, CS) ? ", zeros" : "");
	n = tu_read(m.fs, file_g, buf, CS, 0);
	ok(n > 0, "another file still reads (%zd)", n);
	tu_umount(&m);
	check(1, rep);
	ok(rep->rc == 0 && rep->r.repaired >= 1, "--repair quarantines it");
	check(0, rep);
	ok(rep->r.problems >= 1 && says(rep, "quarantined") && rep->r.damaged == 0,
	   "after --repair the file is reported as quarantined (%llu problems)",
	   (unsigned long long)rep->r.problems);
	tu_mount_or_bail(&env, env.store, &m);
	n = tu_read(m.fs, file_f, buf, CS, 0);
	ok(n == -EIO, "a quarantined file reads as EIO, never zeros (%zd)", n);
	tu_umount(&m);
	tu_env_done(&env);
}

static void test_lost_pack(struct report *rep)
{
	struct tu_packs p;
	char path[512];
	struct tu_fs m;
	uint64_t damaged;

	fresh();
	ok(tu_packs_list(env.store, &p) == 0 && p.n == 1, "one pack file");
	blobstore_pack_path(env.store, p.id[0], path, sizeof(path));
	ok(unlink(path) == 0, "remove it");
	check(0, rep);
	ok(rep->rc == 0 && rep->r.damaged >= 6, "every chunk is damaged (%llu)", (unsigned long long)rep->r.damaged);
	ok(says(rep, "is referenced but missing"), "the missing pack is named");
	ok(says(rep, "/d/f (inode") && (says(rep, "/g (inode") || says(rep, "/d/g2 (inode")) && says(rep, "/h (inode"),
	   "files are named by path");
	damaged = rep->r.damaged;
	check(1, rep);
	ok(rep->rc == 0, "--repair runs");
	check(0, rep);
	ok(rep->r.damaged == damaged, "repair deletes no referenced record: the same damage is reported (%llu)",
	   (unsigned long long)rep->r.damaged);
	tu_mount_or_bail(&env, env.store, &m);
	{
		char buf[100];

		ok(tu_read(m.fs, file_h, buf, 100, 0) == -EIO, "the file still reads as -EIO, not as a hole");
		ok(tu_chunk_count(m.v, file_f) == 3, "its chunk records are kept");
	}
	tu_umount(&m);
	tu_env_done(&env);
}

static void test_flipped_byte(struct report *rep)
{
	struct chunk_rec c;
	struct tu_fs m;
	char path[512];

	fresh();
	tu_mount_or_bail(&env, env.store, &m);
	tu_chunk_get(m.v, file_f, 2, &c);
	tu_umount(&m);
	blobstore_pack_path(env.store, c.pack, path, sizeof(path));
	ok(tu_flip_byte(path, c.off + 7, 0x10) == 0, "flip a bit inside /d/f's chunk 2");
	check(0, rep);
	ok(rep->rc == 0 && rep->r.damaged == 1 && rep->r.problems == 1, "exactly one damaged chunk");
	ok(says(rep, "/d/f (inode") && says(rep, "chunk 2,"), "named by path and chunk");
	check(1, rep);
	check(0, rep);
	ok(rep->r.damaged == 1, "repair leaves damaged content in place");
	tu_env_done(&env);
}

static void test_repairs(struct report *rep)
{
	struct edit e = { 0 };
	struct tu_fs m;
	struct mv_attr a;

	/* a wrong link count */
	fresh();
	e.kind = E_INODE_PUT;
	e.attr.ino = file_g;
	e.a = 1;
	e.b = 5;
	ok(edit(&e) == 0, "set /g's nlink to 5 (it has 2 names)");
	check(0, rep);
	ok(rep->r.problems == 1 && rep->r.damaged == 0 && says(rep, "link count 5, should be 2"),
	   "reported as a wrong link count");
	check(1, rep);
	ok(rep->r.repaired >= 1, "--repair fixes it");
	check(0, rep);
	ok(rep->r.problems == 0, "clean afterwards");
	tu_mount_or_bail(&env, env.store, &m);
	ok(ns_getattr(m.fs, file_g, &a) == 0 && a.nlink == 2, "nlink is 2");
	tu_umount(&m);
	tu_env_done(&env);

	/* an inode no entry reaches */
	fresh();
	e = (struct edit){ .kind = E_DIRENT_DEL, .a = ROOT, .name = "h" };
	ok(edit(&e) == 0, "delete the entry /h");
	check(0, rep);
	ok(rep->r.problems >= 1 && says(rep, "not reachable"), "/h's inode is unreachable");
	check(1, rep);
	check(0, rep);
	ok(rep->r.problems == 0, "after --repair: clean");
	tu_mount_or_bail(&env, env.store, &m);
	{
		char name[32];
		uint64_t lf = 0;

		if (ns_lookup(m.fs, ROOT, "lost+found", &a) == 0)
			lf = a.ino;
		snprintf(name, sizeof(name), "#%llu", (unsigned long long)file_h);
		ok(lf && ns_lookup(m.fs, lf, name, &a) == 0 && a.ino == file_h && a.nlink == 1,
		   "it is in /lost+found/%s", name);
		ok(tu_read_check(m.fs, file_h, 0, 100, 3), "with its data");
		ok(ns_getattr(m.fs, ROOT, &a) == 0 && a.nlink == 4, "root counts lost+found (nlink %u)", a.nlink);
	}
	tu_umount(&m);
	tu_env_done(&env);

	/* an entry naming a deleted inode, whose chunks now belong to nobody */
	fresh();
	e = (struct edit){ .kind = E_INODE_DEL, .a = file_f };
	ok(edit(&e) == 0, "delete /d/f's inode record");
	check(0, rep);
	ok(says(rep, "names missing inode") && says(rep, "unreferenced"),
	   "the dangling entry and the unreferenced chunks are reported");
	check(1, rep);
	check(0, rep);
	ok(rep->r.problems == 0 && rep->r.chunks == 3, "after --repair: clean, 3 chunks left (%llu)",
	   (unsigned long long)rep->r.chunks);
	tu_mount_or_bail(&env, env.store, &m);
	ok(ns_lookup(m.fs, dir_d, "f", &a) == -ENOENT && tu_read_check(m.fs, file_g, 0, 2 * CS, 2),
	   "the entry is gone, other files intact");
	tu_umount(&m);
	tu_env_done(&env);

	/* an orphan left by a crash */
	fresh();
	e = (struct edit){ .kind = E_INODE_PUT, .attr.ino = file_h, .a = 1, .b = 0 };
	ok(edit(&e) == 0, "make /h an unlinked inode (nlink 0) ...");
	e = (struct edit){ .kind = E_DIRENT_DEL, .a = ROOT, .name = "h" };
	ok(edit(&e) == 0, "without its entry ...");
	e = (struct edit){ .kind = E_ORPHAN_ADD, .a = file_h };
	ok(edit(&e) == 0, "recorded as an orphan, as a crash leaves it");
	check(0, rep);
	ok(rep->r.orphans == 1 && rep->r.problems == 0, "fsck counts the orphan, no problem");
	check(1, rep);
	ok(rep->r.repaired >= 1, "--repair frees it");
	check(0, rep);
	ok(rep->r.orphans == 0 && rep->r.inodes == 4 && rep->r.chunks == 5,
	   "gone with its chunk (%llu inodes, %llu chunks)", (unsigned long long)rep->r.inodes,
	   (unsigned long long)rep->r.chunks);
	/* repair frees the orphan's chunks (their bytes leave the pack's
	 * accounting); the accounting it then writes must not count them */
	ok(rep->r.problems == 0, "the pack accounting is right after freeing an orphan (%llu problems)",
	     (unsigned long long)rep->r.problems);
	tu_env_done(&env);

	/* a pack with no live data */
	fresh();
	tu_mount_or_bail(&env, env.store, &m);
	ns_unlink(m.fs, dir_d, "f", 0);
	ns_unlink(m.fs, dir_d, "g2", 0);
	ns_unlink(m.fs, ROOT, "g", 0);
	ns_unlink(m.fs, ROOT, "h", 0);
	tu_umount(&m);
	check(0, rep);
	ok(rep->r.problems == 0 && rep->r.packs == 1, "an emptied pack is no problem");
	check(1, rep);
	ok(says(rep, "removed pack") && rep->r.packs == 0, "--repair removes the dead pack file");
	{
		struct tu_packs p;

		ok(tu_packs_list(env.store, &p) == 0 && p.n == 0, "no pack file left");
	}
	check(0, rep);
	ok(rep->r.problems == 0, "clean afterwards");
	tu_env_done(&env);
}

int main(void)
{
	struct report rep = { 0 };

	devnull = fopen("/dev/null", "w");
	test_clean(&rep);
	test_lost_chunk_record(&rep);
	test_lost_pack(&rep);
	test_flipped_byte(&rep);
	test_repairs(&rep);
	free(rep.text);
	fclose(devnull);
	return tap_done();
}
