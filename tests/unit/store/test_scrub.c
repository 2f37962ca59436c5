/*
 * scrub: a clean store scrubs clean and every chunk is read; a flipped
 * byte in a sealed chunk, and a chunk record put back from an older copy
 * of the index (raw LMDB, as someone holding a backup would), are found
 * and named by inode and path while the other files scrub on; the rate
 * holds; a stop ends a run at once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../tap.h"
#include "store/scrub.h"
#include "util/byteorder.h"
#include "../fsutil.h"
#include "rawlmdb.h"

#define CS 4096u
#define ROOT INDEX_ROOT_INO

static struct tu_env env;
static uint64_t dir_d, file_f, file_g, file_h;
static char backup[192];

/* /d/f (8 chunks), /g (4 chunks, an xattr), /h (64 chunks), unmounted;
 * a copy of the index as it was then in DIR/old-index; then /d/f's
 * chunk 1 rewritten (its old record is the one to replay) */
static void fresh(void)
{
	struct tu_fs m;
	char cmd[512];

	tu_env_init(&env, CS);
	tu_mount_or_bail(&env, env.store, &m);
	dir_d = tu_mk_or_bail(m.fs, ROOT, "d", S_IFDIR | 0755);
	file_f = tu_mk_or_bail(m.fs, dir_d, "f", S_IFREG | 0644);
	file_g = tu_mk_or_bail(m.fs, ROOT, "g", S_IFREG | 0644);
	file_h = tu_mk_or_bail(m.fs, ROOT, "h", S_IFREG | 0644);
	if (tu_write(m.fs, file_f, 0, 8 * CS, 1, 0, 1) < 0 || tu_write(m.fs, file_g, 0, 4 * CS, 2, 0, 1) < 0 ||
	    tu_write(m.fs, file_h, 0, 64 * CS, 3, 0, 1) < 0 ||
	    ns_setxattr(m.fs, file_g, "user.x", "1", 1, 0) < 0)
		tu_bail("populate", -EIO, NULL);
	tu_umount(&m);
	tu_path(&env, "old-index", backup, sizeof(backup));
	snprintf(cmd, sizeof(cmd), "cp -r %s/index %s", env.store, backup);
	if (system(cmd) != 0)
		tu_bail("copy the index", -EIO, NULL);
	tu_mount_or_bail(&env, env.store, &m);
	if (tu_write(m.fs, file_f, CS, CS, 9, 0, 1) < 0)
		tu_bail("rewrite", -EIO, NULL);
	tu_umount(&m);
}

struct run {
	int rc;
	struct scrub_progress p;
	struct scrub_finding f[SCRUB_FINDINGS_KEPT];
	size_t nf;
	double secs;
};

static void scrub_store(uint64_t rate, struct run *r)
{
	struct scrub_opts o = { .rate = rate, .mountpoint = "/mnt/test" };
	struct vault *v = NULL;
	struct scrub *s = NULL;
	struct timespec a, b;

	memset(r, 0, sizeof(*r));
	r->rc = tu_vault_open(&env, env.store, &v);
	if (r->rc == 0)
		r->rc = scrub_new(&s, v, &o);
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (r->rc == 0)
		r->rc = scrub_run(s);
	clock_gettime(CLOCK_MONOTONIC, &b);
	r->secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	if (s) {
		scrub_progress_get(s, &r->p);
		r->nf = scrub_findings_get(s, r->f, SCRUB_FINDINGS_KEPT);
	}
	scrub_free(s);
	vault_close(v);
	printf("# scrub: rc %d, state %s, %llu records, %llu/%llu chunks, %llu bytes, %llu findings in %llu files, %.2f s\n",
	       r->rc, scrub_state_name(r->p.state), (unsigned long long)r->p.records,
	       (unsigned long long)r->p.chunks, (unsigned long long)r->p.chunks_total,
	       (unsigned long long)r->p.bytes, (unsigned long long)r->p.findings,
	       (unsigned long long)r->p.files, r->secs);
	for (size_t i = 0; i < r->nf; i++)
		printf("#   inode %llu %s: %s\n", (unsigned long long)r->f[i].ino, r->f[i].path, r->f[i].what);
}

/* a kept finding names ino, with path and what (substrings; NULL: any) */
static int names(const struct run *r, uint64_t ino, const char *path, const char *what)
{
	for (size_t i = 0; i < r->nf; i++)
		if (r->f[i].ino == ino && (!path || !strcmp(r->f[i].path, path)) &&
		    (!what || strstr(r->f[i].what, what)))
			return 1;
	return 0;
}

static int names_only(const struct run *r, uint64_t ino)
{
	for (size_t i = 0; i < r->nf; i++)
		if (r->f[i].ino != ino)
			return 0;
	return r->nf > 0;
}

/* ---- raw LMDB, as someone holding a copy of the store ---- */

/* put the old copy's value of key back into the store's index */
static int replay(const char *db, const void *key, size_t klen)
{
	char live[192];

	snprintf(live, sizeof(live), "%s/index", env.store);
	return raw_replay(backup, live, db, key, klen);
}

/* where a file's chunk lives, from the store as it is */
static int chunk_where(uint64_t ino, uint64_t idx, struct chunk_rec *c)
{
	struct vault *v = NULL;
	int rc = tu_vault_open(&env, env.store, &v);

	if (rc == 0)
		rc = tu_chunk_get(v, ino, idx, c);
	vault_close(v);
	return rc;
}

static int flip_chunk(uint64_t ino, uint64_t idx)
{
	struct chunk_rec c;
	char path[512];
	int rc = chunk_where(ino, idx, &c);

	if (rc < 0)
		return rc;
	blobstore_pack_path(env.store, c.pack, path, sizeof(path));
	return tu_flip_byte(path, c.off + c.len / 2, 0x10);
}

/* ---- the tests ---- */

static void test_clean(void)
{
	struct run r;

	scrub_store(0, &r);
	ok(r.rc == 0 && r.p.state == SCRUB_DONE, "a clean store scrubs to the end (%d)", r.rc);
	ok(r.p.findings == 0 && r.nf == 0 && r.p.files == 0, "a clean store: no findings");
	ok(r.p.chunks == 8 + 4 + 64 && r.p.chunks_total == r.p.chunks, "every chunk read (%llu)",
	   (unsigned long long)r.p.chunks);
	ok(r.p.bytes > 76 * CS && r.p.bytes < 77 * CS, "every chunk's bytes counted");
	ok(r.p.records > r.p.chunks, "every record authenticated (%llu)", (unsigned long long)r.p.records);
	ok(r.p.started && r.p.finished >= r.p.started, "start and end times");
}

static void test_rate(void)
{
	struct run r;
	uint64_t rate;

	scrub_store(0, &r);
	rate = r.p.bytes;	/* all of it in about a second */
	scrub_store(rate * 2, &r);
	ok(r.rc == 0 && r.p.findings == 0, "a rate-limited scrub is clean too");
	ok(r.secs >= 0.45 && r.secs < 10, "at twice the data per second it takes half a second (%.2f s)", r.secs);
}

struct stopper {
	struct scrub *s;
	int rc;
};

static void *run_thread(void *arg)
{
	struct stopper *st = arg;

	st->rc = scrub_run(st->s);
	return NULL;
}

static void test_stop(void)
{
	struct scrub_opts o = { .rate = 4096 };	/* a chunk a second: 76 s */
	struct scrub_progress p;
	struct stopper st = { NULL, 1 };
	struct timespec a, b;
	struct vault *v = NULL;
	pthread_t t;
	double secs;

	if (tu_vault_open(&env, env.store, &v) < 0 || scrub_new(&st.s, v, &o) < 0)
		tu_bail("scrub_new", -EIO, NULL);
	pthread_create(&t, NULL, run_thread, &st);
	usleep(300000);
	scrub_progress_get(st.s, &p);
	ok(p.state == SCRUB_CHUNKS && p.chunks < p.chunks_total, "another thread sees it read chunks (%s %llu/%llu)",
	   scrub_state_name(p.state), (unsigned long long)p.chunks, (unsigned long long)p.chunks_total);
	clock_gettime(CLOCK_MONOTONIC, &a);
	scrub_stop(st.s);
	pthread_join(t, NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	scrub_progress_get(st.s, &p);
	ok(st.rc == -ECANCELED && p.state == SCRUB_STOPPED, "a stop ends it (%d, %s)", st.rc,
	   scrub_state_name(p.state));
	ok(secs < 0.5, "at once (%.3f s)", secs);
	scrub_free(st.s);
	vault_close(v);
}

static void test_flipped(void)
{
	struct run r;

	ok(flip_chunk(file_g, 2) == 0, "a byte of /g's chunk 2 flipped in its pack");
	scrub_store(0, &r);
	ok(r.rc == 0 && r.p.state == SCRUB_DONE, "the scrub goes through");
	ok(r.p.findings == 1 && r.p.files == 1, "one finding, one file (%llu)", (unsigned long long)r.p.findings);
	ok(names(&r, file_g, "/g", "chunk 2"), "it names /g (inode %llu) and the chunk",
	   (unsigned long long)file_g);
	ok(names(&r, file_g, NULL, "fails authentication"), "as failing authentication");
	ok(r.p.chunks == 8 + 4 + 64, "the other files' chunks are read too");
	ok(flip_chunk(file_g, 2) == 0, "flipped back");
	scrub_store(0, &r);
	ok(r.p.findings == 0, "clean again");
}

static void test_replayed(void)
{
	uint8_t key[16];
	struct run r;

	be64_put(key, file_f);
	be64_put(key + 8, 1);
	ok(replay("chunk", key, sizeof(key)) == 0, "/d/f's old chunk 1 record put back");
	scrub_store(0, &r);
	ok(r.rc == 0 && r.p.state == SCRUB_DONE, "the scrub goes through");
	ok(names(&r, file_f, "/d/f", "do not add up"), "the tree check names /d/f (inode %llu)",
	   (unsigned long long)file_f);
	ok(names(&r, file_f, "/d/f", "refused"), "its chunk walk is refused, and named");
	ok(names_only(&r, file_f) && r.p.files == 1, "no other file is named");
	ok(r.p.chunks == 4 + 64, "the other files' chunks are all read (%llu)", (unsigned long long)r.p.chunks);
}

static void test_missing_pack(void)
{
	struct chunk_rec c;
	struct run r;
	char path[512], moved[600];

	/* /h's chunks are in the same pack as everything else: move the pack
	 * away, and every file is named */
	if (chunk_where(file_h, 0, &c) < 0)
		tu_bail("chunk_where", -EIO, NULL);
	blobstore_pack_path(env.store, c.pack, path, sizeof(path));
	snprintf(moved, sizeof(moved), "%s.away", path);
	ok(rename(path, moved) == 0, "the pack holding /h moved away");
	scrub_store(0, &r);
	ok(r.rc == 0 && names(&r, file_h, "/h", "is missing"), "a missing pack is found, /h named");
	/* /d/f's chunk 1, rewritten after the others, went to a second pack */
	ok(r.p.findings == 7 + 4 + 64 && r.p.files == 3, "each chunk counted, three files");
	ok(r.nf == 3 && r.f[2].ino == file_h && r.f[2].more == 63, "one kept finding per file, the rest counted in it");
	ok(rename(moved, path) == 0, "the pack put back");
}

int main(void)
{
	fresh();
	test_clean();
	test_rate();
	test_stop();
	test_flipped();
	test_missing_pack();
	test_replayed();
	tu_env_done(&env);
	return tap_done();
}
