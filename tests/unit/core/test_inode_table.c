/*
 * inode table: kernel lookup counts, opens and short pins keep an entry;
 * the last of them releases it, writing back what it buffered, or, for an
 * unlinked inode, freeing it in the index.  An unlinked inode is freed only
 * when no lookup, no open and no pin remains, in whatever order they go.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../fsutil.h"
#include "../../tap.h"

#define ROOT INDEX_ROOT_INO
#define FAKE 1000000	/* inode numbers never in the index: table only */

static struct tu_env env;
static struct tu_fs m;

static int gone(uint64_t ino)
{
	struct mv_attr a;

	return ns_getattr(m.fs, ino, &a) == -ENOENT;
}

static int in_table(uint64_t ino)
{
	return itable_in_use(m.fs, ino);
}

static void test_counts(void)
{
	struct mv_inode *a, *b;
	size_t base = itable_count(m.fs);

	ok(itable_find(m.fs, FAKE) == NULL && !in_table(FAKE), "an unknown inode is not in the table");
	ok(itable_get(m.fs, FAKE, &a) == 0 && itable_get(m.fs, FAKE, &b) == 0 && a == b && a->ino == FAKE,
	   "get twice: one entry");
	ok(itable_count(m.fs) == base + 1, "count grows by one");
	itable_put(m.fs, a);
	ok(in_table(FAKE), "one pin left: still there");
	itable_put(m.fs, b);
	ok(!in_table(FAKE) && itable_count(m.fs) == base, "the last put releases it");

	itable_lookup_inc(m.fs, FAKE, ROOT, "x");
	itable_lookup_inc(m.fs, FAKE, ROOT, "x");
	itable_lookup_inc(m.fs, FAKE, ROOT, "x");
	ok(in_table(FAKE) && itable_count(m.fs) == base + 1, "three lookups: one entry");
	itable_forget(m.fs, FAKE, 2);
	ok(in_table(FAKE), "forget 2 of 3: still there");
	itable_forget(m.fs, FAKE, 1);
	ok(!in_table(FAKE), "forget the last: released");
	itable_forget(m.fs, FAKE, 5);
	ok(itable_count(m.fs) == base, "forgetting an absent inode is harmless");
	itable_lookup_inc(m.fs, FAKE, ROOT, "x");
	itable_forget(m.fs, FAKE, 100);
	ok(!in_table(FAKE), "forgetting more than was looked up releases it (no underflow)");
	itable_lookup_inc(m.fs, FAKE, ROOT, "x");
	ok(in_table(FAKE), "and a new lookup starts from one again");
	itable_forget(m.fs, FAKE, 1);
	ok(!in_table(FAKE), "released by one forget");

	ok(itable_get(m.fs, FAKE, &a) == 0, "pin");
	itable_open_inc(m.fs, a);
	itable_open_inc(m.fs, a);
	itable_put(m.fs, a);
	ok(in_table(FAKE), "open twice, unpinned: kept by the opens");
	itable_open_dec(m.fs, a);
	ok(in_table(FAKE), "one close: kept");
	itable_lookup_inc(m.fs, FAKE, ROOT, "x");
	itable_open_dec(m.fs, a);
	ok(in_table(FAKE), "closed but looked up: kept");
	itable_forget(m.fs, FAKE, 1);
	ok(!in_table(FAKE) && itable_count(m.fs) == base, "released once nothing holds it");
}

static void test_paths(void)
{
	uint64_t d = tu_mk_or_bail(m.fs, ROOT, "pd", S_IFDIR | 0755);
	uint64_t f = tu_mk_or_bail(m.fs, d, "pf", S_IFREG | 0644);
	char buf[256], want[64];

	itable_path(m.fs, ROOT, buf, sizeof(buf));
	ok(!strcmp(buf, "/"), "the root's path is / (%s)", buf);
	itable_lookup_inc(m.fs, f, d, "pf");
	itable_path(m.fs, f, buf, sizeof(buf));
	snprintf(want, sizeof(want), "<inode %llu>/pf", (unsigned long long)d);
	ok(!strcmp(buf, want), "a parent the table does not hold shows as its number (%s)", buf);
	itable_lookup_inc(m.fs, d, ROOT, "pd");
	itable_path(m.fs, f, buf, sizeof(buf));
	ok(!strcmp(buf, "/pd/pf"), "with the parent known: /pd/pf (%s)", buf);
	ok(ns_rename(m.fs, d, "pf", ROOT, "moved", 0, NULL, NULL) == 0, "rename pd/pf to /moved");
	itable_path(m.fs, f, buf, sizeof(buf));
	ok(!strcmp(buf, "/moved"), "the path follows the rename (%s)", buf);
	itable_path(m.fs, f, buf, 4);
	ok(strlen(buf) < 4, "a short buffer is cut, not overrun (%s)", buf);
	itable_forget(m.fs, f, 1);
	itable_forget(m.fs, d, 1);
	ns_unlink(m.fs, ROOT, "moved", 0);
	ns_unlink(m.fs, ROOT, "pd", 1);
}

/* The last holder of a file that is not unlinked writes back its data. */
static void test_release_flushes(void)
{
	uint64_t f = tu_mk_or_bail(m.fs, ROOT, "rf", S_IFREG | 0644);
	struct mv_inode *in;

	itable_lookup_inc(m.fs, f, ROOT, "rf");
	ok(tu_write(m.fs, f, 0, 10000, 40, 0, 0) == 0, "buffered write while looked up");
	ok(tu_chunk_count(m.v, f) == 0, "nothing stored yet");
	in = itable_find(m.fs, f);
	ok(in && filedata_unwritten(in), "the entry holds unwritten data");
	itable_put(m.fs, in);
	itable_forget(m.fs, f, 1);
	ok(!in_table(f) && tu_chunk_count(m.v, f) == 3, "the last forget wrote it back (%d chunks)",
	   tu_chunk_count(m.v, f));
	ok(tu_read_check(m.fs, f, 0, 10000, 40), "and it reads back");
}

/*
 * Every order in which a lookup, an open and a pin of an unlinked file can
 * go: the inode is freed exactly at the last one.
 */
static void test_unlinked_lifetime(void)
{
	static const char *const orders[] = { "LOP", "LPO", "OLP", "OPL", "PLO", "POL" };

	for (int k = 0; k < 6; k++) {
		char name[16];
		uint64_t f, orph[4];
		struct mv_inode *in;
		int early = 0;

		snprintf(name, sizeof(name), "ul%d", k);
		f = tu_mk_or_bail(m.fs, ROOT, name, S_IFREG | 0644);
		tu_write(m.fs, f, 0, 5000, 41, 0, 1);
		itable_lookup_inc(m.fs, f, ROOT, name);
		itable_get(m.fs, f, &in);
		itable_open_inc(m.fs, in);
		itable_get(m.fs, f, &in);	/* the pin that goes on its own */
		/* unwritten data of a file about to die is never written */
		filedata_write(m.fs, in, "late", 4, 20000);
		ns_unlink(m.fs, ROOT, name, 0);
		for (int s = 0; s < 3; s++) {
			switch (orders[k][s]) {
			case 'L': itable_forget(m.fs, f, 1); break;
			case 'O': itable_open_dec(m.fs, in); itable_put(m.fs, in); break;
			case 'P': itable_put(m.fs, in); break;
			}
			if (s < 2 && gone(f))
				early = 1;
		}
		ok(!early && gone(f) && !in_table(f) && tu_chunk_count(m.v, f) == 0 && tu_orphans(m.v, orph, 4) == 0,
		   "release order %s: freed at the last release, not before", orders[k]);
	}
}

static void test_dead(void)
{
	uint64_t f = tu_mk_or_bail(m.fs, ROOT, "dd", S_IFREG | 0644);
	struct mv_inode *in;

	itable_get(m.fs, f, &in);
	itable_open_inc(m.fs, in);
	ok(!itable_is_dead(m.fs, in), "a linked open file is not dead");
	ns_unlink(m.fs, ROOT, "dd", 0);
	ok(!itable_is_dead(m.fs, in), "unlinked but open: not dead");
	itable_open_dec(m.fs, in);
	ok(itable_is_dead(m.fs, in) && !gone(f), "unlinked and closed, only pinned: dead, not yet freed");
	itable_put(m.fs, in);
	ok(gone(f), "freed when the pin goes");
}

static void count_cb(struct mvfs *fs, struct mv_inode *in, void *arg)
{
	(void)fs;
	(void)in;
	(*(size_t *)arg)++;
}

static int active_cb(struct mvfs *fs, struct mv_inode *in, void *arg)
{
	(void)fs;
	(*(size_t *)arg)++;
	return filedata_unwritten(in);
}

static void test_many(void)
{
	const uint64_t n = 5000;
	size_t seen = 0, active = 0;
	struct mv_inode *in;
	int all = 1;

	for (uint64_t i = 0; i < n; i++)
		itable_lookup_inc(m.fs, FAKE + i, ROOT, NULL);
	ok(itable_count(m.fs) == n, "5000 inodes in the table (%zu)", itable_count(m.fs));
	for (uint64_t i = 0; i < n; i++) {
		in = itable_find(m.fs, FAKE + i);
		all &= in && in->ino == FAKE + i;
		itable_put(m.fs, in);
	}
	ok(all, "each one found after the table grew");
	itable_foreach(m.fs, count_cb, &seen);
	ok(seen == n, "foreach visits all of them (%zu)", seen);
	itable_get(m.fs, FAKE + 7, &in);
	itable_open_inc(m.fs, in);
	itable_foreach_active(m.fs, active_cb, &active);
	ok(active == 1, "foreach_active visits only the open one (%zu)", active);
	itable_open_dec(m.fs, in);
	itable_put(m.fs, in);
	for (uint64_t i = 0; i < n; i++)
		itable_forget(m.fs, FAKE + i, 1);
	ok(itable_count(m.fs) == 0, "all released (%zu left)", itable_count(m.fs));
}

struct racer {
	unsigned seed;
	int rounds;
};

static void *race(void *arg)
{
	struct racer *r = arg;

	for (int i = 0; i < r->rounds; i++) {
		uint64_t ino = FAKE + rand_r(&r->seed) % 32;
		struct mv_inode *in;

		switch (rand_r(&r->seed) % 3) {
		case 0:
			itable_lookup_inc(m.fs, ino, ROOT, "r");
			itable_forget(m.fs, ino, 1);
			break;
		case 1:
			if (itable_get(m.fs, ino, &in) == 0) {
				itable_open_inc(m.fs, in);
				itable_put(m.fs, in);
				itable_open_dec(m.fs, in);
			}
			break;
		default:
			in = itable_find(m.fs, ino);
			itable_put(m.fs, in);
			break;
		}
	}
	return NULL;
}

static void test_race(void)
{
	pthread_t t[4];
	struct racer r[4];
	int started = 0;

	for (int i = 0; i < 4; i++) {
		r[i].seed = 77u + (unsigned)i;
		r[i].rounds = 20000;
		if (pthread_create(&t[i], NULL, race, &r[i]) == 0)
			started++;
	}
	for (int i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	ok(started == 4 && itable_count(m.fs) == 0,
	   "4 threads taking and dropping 32 inodes leave the table empty (%zu)", itable_count(m.fs));
}

static void test_versions(void)
{
	uint64_t a = mvfs_new_version(m.fs), b = mvfs_new_version(m.fs);

	ok(b > a, "chunk versions grow");
	ok(a >> 40 == m.v->epoch && m.v->epoch > 0, "their high bits are this mount's epoch (%llu)",
	   (unsigned long long)m.v->epoch);
	tu_umount(&m);
	tu_mount_or_bail(&env, env.store, &m);
	ok(mvfs_new_version(m.fs) > b, "a remount never repeats a version");
}

int main(void)
{
	tu_env_init(&env, 4096);
	tu_mount_or_bail(&env, env.store, &m);
	ok(itable_count(m.fs) == 0, "a fresh mount holds no inode");
	test_counts();
	test_paths();
	test_release_flushes();
	test_unlinked_lifetime();
	test_dead();
	test_many();
	test_race();
	test_versions();
	tu_umount(&m);
	tu_env_done(&env);
	return tap_done();
}
