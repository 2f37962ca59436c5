/*
 * itree: records that are authentic but not fresh are refused.  An index
 * is written through the normal API, copied while closed (the "backup"),
 * changed, closed again; then old records are put back, or records
 * deleted, with raw LMDB calls, as someone holding the store but not the
 * keys could.  Each attack must read as -EIO where the record is used,
 * untouched records must still read, a genuine hole must stay -ENOENT,
 * and fsck's whole-tree check must name the inode.  Also: concurrent
 * readers and writers never see a false -EIO, and a format-1 index (no
 * tree) upgrades in place and is then protected.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "store/index.h"
#include "util/byteorder.h"
#include "util/fileutil.h"
#include "crypto/secure.h"
#include "crypto/volkeys.h"
#include "../../tap.h"
#include "rawlmdb.h"

static char tmp[64], dir[128], backup[160];
static uint8_t mk[32], uuid[16];
static struct volkeys *vk;
static struct index *ix;
static int tiny;	/* caches bounded to a few entries: everything is evicted */

/* ---- writing and reading through the API ---- */

typedef int (*txn_fn)(struct index_txn *t, void *arg);

static int w(txn_fn fn, void *arg)
{
	return index_write(ix, fn, arg);
}

static struct index_txn *rd(void)
{
	struct index_txn *t = NULL;

	if (index_read_begin(ix, &t) < 0) {
		fprintf(stderr, "read_begin failed\n");
		exit(2);
	}
	return t;
}

static void attr(struct mv_attr *a, uint64_t ino, uint32_t mode)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->mode = mode;
	a->nlink = 1;
	a->size = 3 * 65536;
}

static void chunk(struct chunk_rec *c, uint64_t ino, uint64_t idx, uint64_t version)
{
	c->pack = 1;
	c->off = 32 + (ino * 16 + idx) * 1000;
	c->len = 1000;
	c->plain_len = 900;
	c->version = version;
}

/* the world: dir 1 with entries a, b; files 2 (3 chunks, xattr), 3 (3 chunks), 4 (sparse: chunk 0, 2) */
struct state {
	uint32_t mode2;
	uint64_t version;	/* of file 2's chunk 1 */
	const char *xval;
	int with_c;		/* dir 1 has an entry "c" -> 5 */
	int orphan5;
	uint64_t next_ino;
};

static int write_state(struct index_txn *t, void *arg)
{
	const struct state *s = arg;
	struct mv_attr a;
	struct chunk_rec c;
	int rc = 0;

	attr(&a, 1, 040755);
	rc |= index_inode_put(t, &a);
	attr(&a, 2, 0100000 | s->mode2);
	rc |= index_inode_put(t, &a);
	attr(&a, 3, 0100644);
	rc |= index_inode_put(t, &a);
	attr(&a, 4, 0100644);
	rc |= index_inode_put(t, &a);
	rc |= index_dirent_put(t, 1, "a", 1, 2, 8);
	rc |= index_dirent_put(t, 1, "b", 1, 3, 8);
	for (uint64_t i = 0; i < 3; i++) {
		chunk(&c, 2, i, i == 1 ? s->version : 7);
		rc |= index_chunk_put(t, 2, i, &c);
		chunk(&c, 3, i, 7);
		rc |= index_chunk_put(t, 3, i, &c);
	}
	chunk(&c, 4, 0, 7);
	rc |= index_chunk_put(t, 4, 0, &c);
	chunk(&c, 4, 2, 7);
	rc |= index_chunk_put(t, 4, 2, &c);
	rc |= index_xattr_put(t, 2, "user.x", s->xval, strlen(s->xval));
	rc |= index_xattr_put(t, 3, "user.y", "keep", 4);
	if (s->with_c) {
		attr(&a, 5, 0100644);
		rc |= index_inode_put(t, &a);
		rc |= index_dirent_put(t, 1, "c", 1, 5, 8);
		chunk(&c, 5, 0, 9);
		rc |= index_chunk_put(t, 5, 0, &c);
	} else {
		index_dirent_del(t, 1, "c", 1);
		index_inode_purge(t, 5);
	}
	if (s->orphan5)
		rc |= index_orphan_add(t, 5);
	else
		index_orphan_del(t, 5);
	rc |= index_meta_put(t, "next_ino", s->next_ino);
	rc |= index_meta_put(t, "epoch", s->next_ino);
	return rc;
}

static void open_ix(void)
{
	if (index_open(&ix, dir, uuid, vk, INDEX_CREATE) < 0) {
		fprintf(stderr, "index_open failed\n");
		exit(2);
	}
	if (tiny)
		index_cache_caps(ix, 8, 16);
}

static void close_ix(void)
{
	index_close(ix);
	ix = NULL;
}

/* ---- raw LMDB, as an attacker without keys ---- */

/* put the backup's value of key back into the live index (replay) */
static int replay(const char *db, const void *key, size_t klen)
{
	return raw_replay(backup, dir, db, key, klen);
}

/* the one key of db present in the backup and absent now (dirents, xattrs) */
static int lost_key(const char *db, uint8_t *key, size_t *klen)
{
	struct raw old, now;
	MDB_cursor *c;
	MDB_val k, v;
	int found = 0;

	if (raw_open(&old, backup, db, 0) || raw_open(&now, dir, db, 0))
		return -1;
	mdb_cursor_open(old.txn, old.dbi, &c);
	while (mdb_cursor_get(c, &k, &v, found ? MDB_NEXT : MDB_FIRST) == 0) {
		MDB_val k2 = k, v2;

		if (!found)
			found = -1;
		if (mdb_get(now.txn, now.dbi, &k2, &v2) == MDB_NOTFOUND) {
			memcpy(key, k.mv_data, k.mv_size);
			*klen = k.mv_size;
			found = 1;
			break;
		}
	}
	mdb_cursor_close(c);
	raw_close(&old, 0);
	raw_close(&now, 0);
	return found == 1 ? 0 : -1;
}

/* the key of db whose value differs between backup and now, with prefix */
static int changed_key(const char *db, const uint8_t *prefix, size_t plen, uint8_t *key, size_t *klen)
{
	struct raw old, now;
	MDB_cursor *c;
	MDB_val k, v;
	int rc = -1, op = MDB_FIRST;

	if (raw_open(&old, backup, db, 0) || raw_open(&now, dir, db, 0))
		return -1;
	mdb_cursor_open(old.txn, old.dbi, &c);
	while (mdb_cursor_get(c, &k, &v, op) == 0) {
		MDB_val k2 = k, v2;

		op = MDB_NEXT;
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen))
			continue;
		if (mdb_get(now.txn, now.dbi, &k2, &v2) == 0 &&
		    (v2.mv_size != v.mv_size || memcmp(v2.mv_data, v.mv_data, v.mv_size))) {
			memcpy(key, k.mv_data, k.mv_size);
			*klen = k.mv_size;
			rc = 0;
			break;
		}
	}
	mdb_cursor_close(c);
	raw_close(&old, 0);
	raw_close(&now, 0);
	return rc;
}

static int copy_file(const char *from, const char *to)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -a '%s' '%s'", to, from, to);
	return system(cmd);
}

/* a fresh index in state `old`, backed up, then moved to state `now` and closed */
static void scenario(const struct state *old, const struct state *now)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		exit(2);
	open_ix();
	if (w(write_state, (void *)old) < 0) {
		fprintf(stderr, "write old state failed\n");
		exit(2);
	}
	index_sync(ix);
	close_ix();
	if (copy_file(dir, backup) != 0)
		exit(2);
	open_ix();
	if (w(write_state, (void *)now) < 0) {
		fprintf(stderr, "write new state failed\n");
		exit(2);
	}
	index_sync(ix);
	close_ix();
}

static const struct state OLD = { 0644, 10, "old", 1, 0, 6 };
static const struct state NOW = { 0600, 11, "new", 0, 0, 9 };

/* ---- checks ---- */

struct bad_seen {
	uint64_t ino[16];
	int n;
};

static void bad_cb(void *ctx, uint64_t ino, enum index_stale what)
{
	struct bad_seen *b = ctx;

	(void)what;
	if (b->n < 16)
		b->ino[b->n++] = ino;
}

static int fsck_names(uint64_t ino)
{
	struct bad_seen b = { 0 };
	struct index_txn *t = rd();
	long n = index_tree_verify(t, NULL, bad_cb, &b);

	index_read_end(t);
	for (int i = 0; i < b.n; i++)
		if (b.ino[i] == ino)
			return n > 0;
	return 0;
}

/* the files not attacked still read: inode 3, its chunks and xattr */
static int bystander_ok(void)
{
	struct index_txn *t = rd();
	struct mv_attr a;
	struct chunk_rec c;
	char v[8];
	int ok3 = index_inode_get(t, 3, &a) == 0 && index_chunk_get(t, 3, 2, &c) == 0 &&
		  index_xattr_get(t, 3, "user.y", v, sizeof(v)) == 4;

	index_read_end(t);
	return ok3;
}

static int count_cb(void *ctx, const char *name, size_t len, uint64_t ino, uint8_t type, uint64_t off)
{
	(void)name, (void)len, (void)ino, (void)type, (void)off;
	++*(int *)ctx;
	return 0;
}

static void test_fresh(void)
{
	struct index_txn *t;
	struct mv_attr a;
	struct chunk_rec c;
	uint64_t v, ino;
	uint8_t type;
	char x[8];

	scenario(&OLD, &NOW);
	open_ix();
	ok(index_has_tree(ix) == 1, "a new index has its integrity tree");
	t = rd();
	ok(index_inode_get(t, 2, &a) == 0 && (a.mode & 0777) == 0600, "untouched index: inode reads");
	ok(index_chunk_get(t, 2, 1, &c) == 0 && c.version == 11, "untouched index: chunk reads");
	ok(index_chunk_get(t, 4, 1, &c) == -ENOENT, "a hole of a sparse file is -ENOENT");
	ok(index_dirent_get(t, 1, "c", 1, &ino, &type) == -ENOENT, "a removed entry is -ENOENT");
	ok(index_xattr_get(t, 2, "user.x", x, sizeof(x)) == 3 && !memcmp(x, "new", 3), "xattr reads");
	ok(index_meta_get(t, "next_ino", &v) == 0 && v == 9, "meta reads");
	index_read_end(t);
	{
		struct bad_seen b = { 0 };
		struct index_root_state st = { 0 };
		long n;

		t = rd();
		n = index_tree_verify(t, &st, bad_cb, &b);
		ok(n == 0 && st.counter >= 2,
		   "whole-tree check of an untouched index finds nothing (counter %" PRIu64 ")", st.counter);
		index_read_end(t);
	}
	close_ix();
}

static void test_attacks(void)
{
	uint8_t key[64];
	size_t klen = 0;
	struct index_txn *t;
	struct mv_attr a;
	struct chunk_rec c;
	uint64_t v, ino;
	uint8_t type;
	char x[8];

	/* 1: an older inode record (mode 0644 again) */
	scenario(&OLD, &NOW);
	be64_put(key, 2);
	ok(replay("inode", key, 8) == 0, "inode 2's old record put back");
	open_ix();
	t = rd();
	ok(index_inode_get(t, 2, &a) == -EIO, "replayed inode record: -EIO, never mode 0644");
	index_read_end(t);
	ok(bystander_ok(), "replayed inode: other files read");
	ok(fsck_names(2), "replayed inode: the tree check names inode 2");
	close_ix();

	/* 2: an older chunk record */
	scenario(&OLD, &NOW);
	be64_put(key, 2);
	be64_put(key + 8, 1);
	ok(replay("chunk", key, 16) == 0, "file 2's old chunk 1 put back");
	open_ix();
	t = rd();
	ok(index_chunk_get(t, 2, 1, &c) == -EIO, "replayed chunk record: -EIO");
	ok(index_chunk_get(t, 2, 0, &c) == -EIO, "replayed chunk record: the file's map is untrusted");
	index_read_end(t);
	ok(bystander_ok(), "replayed chunk: other files read");
	ok(fsck_names(2), "replayed chunk: the tree check names inode 2");
	close_ix();

	/* 3: a deleted chunk record of a non-sparse file; the sparse file's hole stays a hole */
	scenario(&OLD, &NOW);
	be64_put(key, 3);
	be64_put(key + 8, 1);
	ok(raw_del(dir, "chunk", key, 16) == 0, "file 3's chunk 1 deleted");
	open_ix();
	t = rd();
	ok(index_chunk_get(t, 3, 1, &c) == -EIO, "deleted chunk record: -EIO, not a hole");
	ok(index_chunk_get(t, 4, 1, &c) == -ENOENT && index_chunk_get(t, 4, 2, &c) == 0,
	   "a genuine hole is still -ENOENT");
	index_read_end(t);
	ok(fsck_names(3), "deleted chunk: the tree check names inode 3");
	close_ix();

	/* 4: a resurrected file: its entry, inode and chunk put back */
	scenario(&OLD, &NOW);
	ok(lost_key("dirent", key, &klen) == 0, "the removed entry found by diffing");
	{
		uint8_t ikey[8], ckey[16];

		be64_put(ikey, 5);
		be64_put(ckey, 5);
		be64_put(ckey + 8, 0);
		ok(replay("dirent", key, klen) == 0 && replay("inode", ikey, 8) == 0 &&
		   replay("chunk", ckey, 16) == 0, "entry, inode and chunk of the removed file put back");
	}
	open_ix();
	t = rd();
	ok(index_dirent_get(t, 1, "c", 1, &ino, &type) == -EIO, "resurrected entry: -EIO");
	ok(index_inode_get(t, 5, &a) == -EIO, "resurrected inode: -EIO");
	ok(index_chunk_get(t, 5, 0, &c) == -EIO, "resurrected chunk: -EIO");
	index_read_end(t);
	ok(bystander_ok(), "resurrected file: other files read");
	ok(fsck_names(1) && fsck_names(5), "resurrected file: the tree check names the directory and the file");
	close_ix();

	/* 4b: an entry deleted: readdir and rmdir's emptiness check notice */
	scenario(&OLD, &NOW);
	{
		struct raw r;
		MDB_cursor *cur;
		MDB_val k, val;
		int rc = raw_open(&r, dir, "dirent", 1), n = 0;

		if (!rc && !(rc = mdb_cursor_open(r.txn, r.dbi, &cur)) &&
		    !(rc = mdb_cursor_get(cur, &k, &val, MDB_FIRST)))
			rc = mdb_cursor_del(cur, 0);
		ok(rc == 0 && raw_close(&r, 1) == 0, "an entry of directory 1 deleted");
		open_ix();
		t = rd();
		ok(index_dirent_iter(t, 1, 0, count_cb, &n) == -EIO, "deleted entry: a whole readdir -EIO");
		index_read_end(t);
		close_ix();
	}

	/* 5: an older xattr value */
	scenario(&OLD, &NOW);
	be64_put(key, 2);
	ok(changed_key("xattr", key, 8, key, &klen) == 0 && replay("xattr", key, klen) == 0,
	   "file 2's old user.x put back");
	open_ix();
	t = rd();
	ok(index_xattr_get(t, 2, "user.x", x, sizeof(x)) == -EIO, "replayed xattr: -EIO, never \"old\"");
	ok(index_xattr_list(t, 2, x, 0) == -EIO, "replayed xattr: listxattr -EIO");
	index_read_end(t);
	ok(bystander_ok(), "replayed xattr: other files read");
	close_ix();

	/* 6: an older orphan mark on a live inode */
	{
		struct state old = OLD, now = OLD;
		uint64_t inos[8];

		old.orphan5 = 1;
		now.version = 12;
		scenario(&old, &now);
		be64_put(key, 5);
		ok(replay("orphan", key, 8) == 0, "inode 5's old orphan mark put back");
		open_ix();
		t = rd();
		ok(index_orphan_list(t, inos, 8) == 0, "replayed orphan mark: not listed, nothing freed");
		ok(index_inode_get(t, 5, &a) == 0, "replayed orphan mark: the inode itself still reads");
		index_read_end(t);
		close_ix();
	}

	/* 7: older counters */
	scenario(&OLD, &NOW);
	ok(replay("meta", "next_ino", 8) == 0, "old next_ino put back");
	open_ix();
	t = rd();
	ok(index_meta_get(t, "next_ino", &v) == -EIO, "replayed next_ino: -EIO, never 6");
	ok(index_meta_get(t, "epoch", &v) == -EIO, "replayed next_ino: the counters are untrusted together");
	index_read_end(t);
	ok(fsck_names(0), "replayed next_ino: the tree check names the volume (0)");
	close_ix();

	/* 8: a planted tree node byte */
	scenario(&OLD, &NOW);
	{
		struct raw r;
		MDB_cursor *cur;
		MDB_val k, val;
		uint8_t buf[2048];
		int rc = raw_open(&r, dir, "tree", 1);

		if (!rc && !(rc = mdb_cursor_open(r.txn, r.dbi, &cur)) &&
		    !(rc = mdb_cursor_get(cur, &k, &val, MDB_FIRST)) && val.mv_size <= sizeof(buf)) {
			memcpy(buf, val.mv_data, val.mv_size);
			buf[5] ^= 1;
			val.mv_data = buf;
			rc = mdb_cursor_put(cur, &k, &val, MDB_CURRENT);
		}
		ok(rc == 0 && raw_close(&r, 1) == 0, "a byte of the first tree node flipped");
	}
	open_ix();
	t = rd();
	ok(index_inode_get(t, 2, &a) == -EIO, "flipped tree node: -EIO");
	index_read_end(t);
	close_ix();

	/* 9: the whole index rolled back: its counter says so */
	scenario(&OLD, &NOW);
	{
		struct index_root_state now, then;

		open_ix();
		index_root_durable(ix, &now);
		close_ix();
		copy_file(backup, dir);
		open_ix();
		index_root_durable(ix, &then);
		ok(then.counter < now.counter && memcmp(then.mac, now.mac, sizeof(now.mac)) != 0,
		   "a rolled-back index opens with an older counter (%" PRIu64 " < %" PRIu64 ")",
		   then.counter, now.counter);
		close_ix();
	}
}

/* ---- writers and readers at once: never a false -EIO ---- */

static volatile int stop;
static long false_eio;

static int bump(struct index_txn *t, void *arg)
{
	uint64_t i = *(uint64_t *)arg;
	struct mv_attr a;
	struct chunk_rec c;
	char name[16];
	int rc;

	attr(&a, 100 + i % 8, 0100644);
	a.size = i;
	chunk(&c, 100 + i % 8, i % 5, i);
	snprintf(name, sizeof(name), "f%" PRIu64, i % 50);
	if ((rc = index_inode_put(t, &a)) < 0 || (rc = index_chunk_put(t, 100 + i % 8, i % 5, &c)) < 0 ||
	    (rc = index_dirent_put(t, 1, name, strlen(name), 100 + i % 8, 8)) < 0 ||
	    (rc = index_xattr_put(t, 100 + i % 8, "user.n", name, strlen(name))) < 0)
		return rc;
	if (i % 7 == 0)
		index_dirent_del(t, 1, name, strlen(name));
	return index_pack_account(t, 1 + i % 3, 10, 10);
}

static void *writer(void *arg)
{
	uint64_t base = (uint64_t)(uintptr_t)arg;

	for (uint64_t i = base; !stop; i += 2)
		if (w(bump, &i) < 0) {
			fprintf(stderr, "# writer: -EIO at step %" PRIu64 "\n", i);
			__atomic_add_fetch(&false_eio, 1, __ATOMIC_RELAXED);
		}
	return NULL;
}

static int chunk_cb(void *ctx, uint64_t ino, uint64_t idx, const struct chunk_rec *c)
{
	(void)ino, (void)idx, (void)c;
	++*(int *)ctx;
	return 0;
}

static void *reader(void *arg)
{
	(void)arg;
	for (uint64_t i = 0; !stop; i++) {
		struct index_txn *t = rd();
		struct mv_attr a;
		struct chunk_rec c;
		uint64_t ino;
		uint8_t type;
		char name[16], v[16];
		int n = 0, rc;

		snprintf(name, sizeof(name), "f%" PRIu64, i % 50);
		rc = index_inode_get(t, 100 + i % 8, &a);
		if (rc == -EIO)
			__atomic_add_fetch(&false_eio, 1, __ATOMIC_RELAXED);
		rc = index_chunk_get(t, 100 + i % 8, i % 5, &c);
		if (rc == -EIO)
			__atomic_add_fetch(&false_eio, 1, __ATOMIC_RELAXED);
		if ((rc = index_dirent_get(t, 1, name, strlen(name), &ino, &type)) == -EIO ||
		    (rc = index_xattr_get(t, 100 + i % 8, "user.n", v, sizeof(v))) == -EIO ||
		    (rc = index_dirent_iter(t, 1, 0, count_cb, &n)) == -EIO ||
		    (rc = index_chunk_iter(t, 100 + i % 8, 0, chunk_cb, &n)) == -EIO) {
			fprintf(stderr, "# reader: false -EIO at step %" PRIu64 "\n", i);
			__atomic_add_fetch(&false_eio, 1, __ATOMIC_RELAXED);
		}
		index_read_end(t);
	}
	return NULL;
}

static void test_concurrency(void)
{
	pthread_t th[5];
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		exit(2);
	open_ix();
	stop = 0;
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, writer, (void *)(uintptr_t)i);
	for (int i = 2; i < 5; i++)
		pthread_create(&th[i], NULL, reader, NULL);
	sleep(3);
	stop = 1;
	for (int i = 0; i < 5; i++)
		pthread_join(th[i], NULL);
	ok(false_eio == 0, "3 s of 2 writers and 3 readers: no false -EIO (%ld)", false_eio);
	{
		struct bad_seen b = { 0 };
		struct index_txn *t = rd();

		ok(index_tree_verify(t, NULL, bad_cb, &b) == 0, "and the tree adds up afterwards");
		index_read_end(t);
	}
	close_ix();
}

/* ---- format 1 -> 2 ---- */

static void test_upgrade(void)
{
	struct index_txn *t;
	struct mv_attr a;
	uint8_t key[8];

	scenario(&OLD, &NOW);
	/* make it a format-1 index: no tree, no root record */
	{
		struct raw r;
		int rc = raw_open(&r, dir, "tree", 1);

		if (!rc)
			rc = mdb_drop(r.txn, r.dbi, 1);
		rc |= raw_close(&r, !rc);
		ok(rc == 0 && raw_del(dir, "meta", "root", 4) == 0, "tree and root record removed (format 1)");
	}
	if (copy_file(dir, backup) != 0)
		exit(2);
	open_ix();
	ok(index_has_tree(ix) == 0, "format 1: no tree");
	t = rd();
	ok(index_inode_get(t, 2, &a) == 0, "format 1: records read (authentication alone)");
	index_read_end(t);
	ok(index_upgrade(ix) == 0 && index_has_tree(ix) == 1, "upgraded in place");
	t = rd();
	ok(index_inode_get(t, 2, &a) == 0 && (a.mode & 0777) == 0600, "upgraded: records read");
	index_read_end(t);
	{
		struct state more = NOW;

		more.version = 20;
		ok(w(write_state, &more) == 0, "upgraded: writes");
	}
	close_ix();
	open_ix();
	ok(index_has_tree(ix) == 1, "the tree persists");
	close_ix();
	/* replay the inode record of the format-1 copy: now refused */
	{
		struct state st = NOW;

		st.mode2 = 0640;
		open_ix();
		w(write_state, &st);
		close_ix();
	}
	be64_put(key, 2);
	ok(replay("inode", key, 8) == 0, "a record from before the upgrade put back");
	open_ix();
	t = rd();
	ok(index_inode_get(t, 2, &a) == -EIO, "after the upgrade a replay is refused");
	index_read_end(t);
	close_ix();
}

int main(void)
{
	if (secure_init() < 0)
		return 2;
	/* the index's findings go to stderr too, for the TAP log */
	openlog("test_itree", LOG_PERROR, LOG_USER);
	strcpy(tmp, "/tmp/mv-itree-XXXXXX");
	if (!mkdtemp(tmp))
		return 2;
	snprintf(dir, sizeof(dir), "%s/index", tmp);
	snprintf(backup, sizeof(backup), "%s/backup", tmp);
	secure_random(mk, sizeof(mk));
	secure_random(uuid, sizeof(uuid));
	if (volkeys_derive(&vk, mk, AEAD_XCHACHA20POLY1305) < 0)
		return 2;
	test_fresh();
	test_attacks();
	test_concurrency();
	test_upgrade();
	/* again with caches too small to keep anything for long */
	tiny = 1;
	test_fresh();
	test_attacks();
	test_concurrency();
	volkeys_free(vk);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			return 2;
	}
	return tap_done();
}
