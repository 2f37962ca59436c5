/*
 * compact: packs whose live share fell below the ratio are rewritten and
 * deleted, the data still reads back identical (from the moved copies,
 * after a remount too), the accounting stays exact (fsck finds nothing),
 * a pack is never deleted while a snapshot holds the snapshot lock, and a
 * writer racing a compaction never sees its newer chunk moved back.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/compact.h"
#include "store/layout.h"
#include "store/fsck.h"
#include "../fsutil.h"
#include "../../tap.h"

#define CS 4096u
#define ROOT INDEX_ROOT_INO

static struct tu_env env;
static struct tu_fs m;
static FILE *devnull;

static int checkpoint_cb(void *ctx)
{
	return fs_checkpoint(ctx);
}

/* compaction as the daemon runs it: under its barrier, with its checkpoint */
static int compact_mounted(double ratio, struct compact_stats *st)
{
	return compact_run(m.v, ratio, &m.fs->barrier, checkpoint_cb, m.fs, devnull, st);
}

/* the lock a snapshot holds shared while it links packs */
static int snapshot_lock_take(void)
{
	char path[512];
	int fd;

	store_path(path, sizeof(path), env.store, STORE_SNAPSHOT_LOCK);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0 && flock(fd, LOCK_SH) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* the next append starts a new pack */
static void seal(void)
{
	blobstore_seal_open(m.v->bs);
}

static int fsck_clean(struct vault *v, const char *what)
{
	struct fsck_report r;
	int rc = fsck_run(v, 0, stdout, devnull, &r);

	return ok(rc == 0 && r.problems == 0, "fsck after %s: clean (%llu problems)", what,
		  (unsigned long long)r.problems);
}

static void test_nothing(void)
{
	struct compact_stats st;

	ok(compact_mounted(COMPACT_DEFAULT_RATIO, &st) == 0 && st.packs_rewritten == 0 && st.packs_deleted == 0,
	   "an empty store: nothing to do");
}

static void test_rewrite(void)
{
	uint64_t a = tu_mk_or_bail(m.fs, ROOT, "a", S_IFREG | 0644);
	uint64_t b = tu_mk_or_bail(m.fs, ROOT, "b", S_IFREG | 0644);
	uint64_t c = tu_mk_or_bail(m.fs, ROOT, "c", S_IFREG | 0644);
	struct compact_stats st;
	struct chunk_rec rec;
	uint64_t p1;
	int64_t p1_size;

	ok(tu_write(m.fs, a, 0, 40 * CS, 1, 0, 1) == 0 && tu_write(m.fs, b, 0, 40 * CS, 2, 0, 1) == 0,
	   "a and b: 40 chunks each, in one pack");
	ok(tu_chunk_get(m.v, b, 0, &rec) == 0, "b's first chunk record");
	p1 = rec.pack;
	p1_size = blobstore_pack_size(m.v->bs, p1);
	seal();
	ok(tu_write(m.fs, c, 0, 20 * CS, 3, 0, 1) == 0, "c: 20 chunks in the next pack");
	ok(compact_mounted(COMPACT_DEFAULT_RATIO, &st) == 0 && st.packs_rewritten == 0,
	   "all live: nothing rewritten");

	ok(ns_unlink(m.fs, ROOT, "a", 0) == 0, "unlink a");
	ok(tu_write(m.fs, b, 5 * CS, 30 * CS, 4, 0, 1) == 0, "overwrite 30 of b's chunks");
	seal();
	ok(fs_checkpoint(m.fs) == 0, "checkpoint");
	ok(compact_mounted(COMPACT_DEFAULT_RATIO, &st) == 0, "compact at ratio 0.5");
	ok(st.packs_rewritten == 1 && st.packs_deleted == 1 && st.packs_kept == 0,
	   "the first pack (1/8 live) rewritten and deleted (%llu, %llu)",
	   (unsigned long long)st.packs_rewritten, (unsigned long long)st.packs_deleted);
	ok(st.bytes_moved > 10 * CS && st.bytes_moved < 11 * (CS + 64),
	   "only its 10 live chunks moved (%llu bytes)", (unsigned long long)st.bytes_moved);
	ok(p1_size > 0 && st.bytes_freed == (uint64_t)p1_size, "its whole size freed (%llu)",
	   (unsigned long long)st.bytes_freed);
	ok(!tu_pack_exists(env.store, p1), "the pack file is gone");
	ok(tu_chunk_get(m.v, b, 0, &rec) == 0 && rec.pack != p1, "b's chunk 0 now lives in pack %llu",
	   (unsigned long long)rec.pack);
	ok(tu_read_check(m.fs, b, 0, 5 * CS, 2) && tu_read_check(m.fs, b, 5 * CS, 30 * CS, 4) &&
	   tu_read_check(m.fs, b, 35 * CS, 5 * CS, 2) && tu_read_check(m.fs, c, 0, 20 * CS, 3),
	   "b and c read back identical");
	ok(compact_mounted(COMPACT_DEFAULT_RATIO, &st) == 0 && st.packs_rewritten == 0,
	   "a second run finds nothing");
	tu_umount(&m);
	tu_mount_or_bail(&env, env.store, &m);
	ok(tu_read_check(m.fs, b, 0, 5 * CS, 2) && tu_read_check(m.fs, b, 5 * CS, 30 * CS, 4) &&
	   tu_read_check(m.fs, b, 35 * CS, 5 * CS, 2) && tu_read_check(m.fs, c, 0, 20 * CS, 3),
	   "and after a remount, with no cache");
	fsck_clean(m.v, "compaction");
}

static void test_snapshot_lock(void)
{
	uint64_t d = tu_mk_or_bail(m.fs, ROOT, "d", S_IFREG | 0644);
	struct compact_stats st;
	struct chunk_rec rec;
	uint64_t pd;
	int fd;

	seal();
	ok(tu_write(m.fs, d, 0, 20 * CS, 5, 0, 1) == 0, "d: 20 chunks in a pack of its own");
	tu_chunk_get(m.v, d, 0, &rec);
	pd = rec.pack;
	seal();
	ok(tu_write(m.fs, d, 0, 18 * CS, 6, 0, 1) == 0, "overwrite 18 of them elsewhere");
	seal();
	fd = snapshot_lock_take();
	ok(fd >= 0, "hold the snapshot lock shared, as a snapshot does");
	ok(compact_mounted(COMPACT_DEFAULT_RATIO, &st) == 0, "compact while it is held");
	ok(st.packs_rewritten == 1 && st.packs_deleted == 0 && st.packs_kept == 1,
	   "the pack is emptied but kept (rewritten %llu, deleted %llu, kept %llu)",
	   (unsigned long long)st.packs_rewritten, (unsigned long long)st.packs_deleted,
	   (unsigned long long)st.packs_kept);
	ok(tu_pack_exists(env.store, pd), "its file is still there for the snapshot");
	ok(tu_read_check(m.fs, d, 0, 18 * CS, 6) && tu_read_check(m.fs, d, 18 * CS, 2 * CS, 5),
	   "d reads back from the moved copies");
	fsck_clean(m.v, "a compaction that kept its pack");
	if (fd >= 0)
		close(fd);
	ok(compact_mounted(COMPACT_DEFAULT_RATIO, &st) == 0 && st.packs_deleted == 1 && st.bytes_moved == 0,
	   "lock released: the next run deletes it, moving nothing");
	ok(!tu_pack_exists(env.store, pd), "the file is gone now");
	ok(tu_read_check(m.fs, d, 0, 18 * CS, 6) && tu_read_check(m.fs, d, 18 * CS, 2 * CS, 5), "d still reads");
}

static void test_offline(void)
{
	uint64_t e = tu_mk_or_bail(m.fs, ROOT, "e", S_IFREG | 0644);
	struct compact_stats st;
	struct vault *v = NULL;
	struct tu_packs before, after;
	struct chunk_rec rec;
	uint64_t pe;
	int rc;

	seal();
	tu_write(m.fs, e, 0, 30 * CS, 7, 0, 1);
	tu_chunk_get(m.v, e, 0, &rec);
	pe = rec.pack;
	seal();
	tu_write(m.fs, e, 0, 29 * CS, 8, 0, 1);
	tu_umount(&m);
	tu_packs_list(env.store, &before);
	ok(tu_vault_open(&env, env.store, &v) == 0, "open the store unmounted");
	memset(&st, 0, sizeof(st));
	rc = v ? compact_run(v, COMPACT_DEFAULT_RATIO, NULL, NULL, NULL, devnull, &st) : -1;
	ok(rc == 0 && st.packs_deleted >= 1, "offline compaction, no barrier nor checkpoint (%llu deleted)",
	   (unsigned long long)st.packs_deleted);
	if (v)
		fsck_clean(v, "offline compaction");
	vault_close(v);
	tu_packs_list(env.store, &after);
	ok(!tu_pack_exists(env.store, pe) && after.n <= before.n,
	   "e's old pack is gone (%d pack files, were %d)", after.n, before.n);
	tu_mount_or_bail(&env, env.store, &m);
	ok(tu_read_check(m.fs, e, 0, 29 * CS, 8) && tu_read_check(m.fs, e, 29 * CS, CS, 7), "e reads back");
}

/* A writer keeps rewriting a file in fresh packs while compaction runs. */
struct racing {
	uint64_t ino;
	int rounds;
	int done;
	int err;
};

static void *writer(void *arg)
{
	struct racing *r = arg;

	for (int i = 0; i < r->rounds && !r->err; i++) {
		/* one chunk in four changes each round: packs go partly dead */
		for (uint64_t k = (uint64_t)i % 4; k < 16; k += 4)
			if (tu_write(m.fs, r->ino, k * CS, CS, 100 + (uint32_t)i, 0, 0) < 0)
				r->err = 1;
		if (tu_write(m.fs, r->ino, 0, 0, 0, 0, 1) < 0)
			r->err = 1;
		seal();
	}
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_race(void)
{
	struct racing r = { .rounds = 40 };
	struct compact_stats st;
	pthread_t t;
	int runs = 0, errors = 0, good = 1;
	uint64_t deleted = 0;

	r.ino = tu_mk_or_bail(m.fs, ROOT, "race", S_IFREG | 0644);
	itable_lookup_inc(m.fs, r.ino, ROOT, "race");
	tu_write(m.fs, r.ino, 0, 16 * CS, 99, 0, 1);
	if (pthread_create(&t, NULL, writer, &r) != 0) {
		ok(0, "start a writer thread");
		return;
	}
	while (!__atomic_load_n(&r.done, __ATOMIC_ACQUIRE)) {
		if (compact_mounted(0.9, &st) < 0)
			errors++;
		deleted += st.packs_deleted;
		runs++;
	}
	pthread_join(t, NULL);
	ok(!r.err && errors == 0, "%d compactions raced 40 rounds of rewrites without an error (%llu packs deleted)",
	   runs, (unsigned long long)deleted);
	ok(compact_mounted(0.9, &st) == 0, "one more after the writer stopped");
	/* round i wrote chunks k = i%4 (mod 4) with seed 100+i; the last round
	 * to touch chunk k is the last i with i%4 == k%4 */
	for (uint64_t k = 0; k < 16; k++) {
		uint64_t last = (uint64_t)r.rounds - 1;

		while (last % 4 != k % 4)
			last--;
		good &= tu_read_check(m.fs, r.ino, k * CS, CS, 100 + (uint32_t)last);
	}
	ok(good, "every chunk holds its newest version");
	itable_forget(m.fs, r.ino, 1);
	tu_umount(&m);
	tu_mount_or_bail(&env, env.store, &m);
	good = 1;
	for (uint64_t k = 0; k < 16; k++) {
		uint64_t last = (uint64_t)r.rounds - 1;

		while (last % 4 != k % 4)
			last--;
		good &= tu_read_check(m.fs, r.ino, k * CS, CS, 100 + (uint32_t)last);
	}
	ok(good, "and after a remount");
	fsck_clean(m.v, "racing compactions");
}

int main(void)
{
	devnull = fopen("/dev/null", "w");
	tu_env_init(&env, CS);
	tu_mount_or_bail(&env, env.store, &m);
	test_nothing();
	test_rewrite();
	test_snapshot_lock();
	test_offline();
	test_race();
	tu_umount(&m);
	tu_env_done(&env);
	fclose(devnull);
	return tap_done();
}
