/*
 * index_check: a sound index passes; a truncated data.mdb, bytes flipped
 * in a branch page, a page pointer loop, a garbage meta page, a page size
 * of 0 (LMDB divides by it), a node past its page, a freelist naming a
 * page in use, a FIFO planted as data.mdb (the check hangs) each give
 * -EBADMSG or -ETIMEDOUT within the timeout, one line, and leave the file
 * byte-identical with no lock.mdb made.  The child is confined (no new
 * privileges, no core, other fds closed, nobody when root) and its
 * crash, exit status or hang reaches the parent as damage.  Indexes
 * written by LMDB through many random transactions always pass, in the
 * child and in index_check_image, also while a writer holds the
 * environment (INDEX_CHECK_LIVE).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crypto/secure.h"
#include "crypto/volkeys.h"
#include "store/index.h"
#include "store/index_check.h"
#include "util/fileutil.h"
#include "../../tap.h"
#include "../../index_fixture.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0	/* then the child's address space is bounded too */
#endif

#define PSIZE 4096
#define TIMEOUT_MS 10000

static char tmp[64], src[128], dir[128], data[160], lockpath[160];
static uint8_t mk[32], uuid[16];
static struct volkeys *vk;
static uint8_t *base;		/* the sound data.mdb */
static size_t base_len;

static void cleanup(void)
{
	char cmd[128];

	if (tmp[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "# cannot remove %s\n", tmp);
	}
}

static uint8_t *file_read(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *b;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	b = malloc((size_t)st.st_size + 1);
	if (b && read(fd, b, (size_t)st.st_size) != st.st_size) {
		free(b);
		b = NULL;
	}
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static void file_write(const char *path, const uint8_t *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, b, len) != (ssize_t)len) {
		printf("Bail out! cannot write %s\n", path);
		exit(2);
	}
	close(fd);
}

static uint16_t ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint64_t ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static void st64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* the newest meta page's fields (after the page header) */
static const uint8_t *newest_meta(const uint8_t *img)
{
	return img + (ld64(img + 16 + 128) < ld64(img + PSIZE + 16 + 128)) * PSIZE + 16;
}

/* The root page of a database: "" the main one, else a named one (found
 * in the main database's root leaf).  0 if none. */
static size_t db_root(const uint8_t *img, size_t len, const char *name)
{
	size_t root = ld64(newest_meta(img) + 72 + 40);
	const uint8_t *p;

	if (!*name || (root + 1) * PSIZE > len)
		return root;
	p = img + root * PSIZE;
	for (unsigned i = 0; i < (unsigned)(ld16(p + 12) - 16) / 2; i++) {
		const uint8_t *node = p + ld16(p + 16 + 2 * i);

		if (ld16(node + 6) == strlen(name) && !memcmp(node + 8, name, strlen(name)))
			return ld64(node + 8 + strlen(name) + 40);
	}
	return 0;
}

/* a page in use with these flags: a database's root, or its first child */
static size_t find_page(const uint8_t *img, size_t len, uint16_t flags)
{
	static const char *const dbs[] = { "", "inode", "dirent", "chunk", "xattr", "meta" };

	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		size_t pg = db_root(img, len, dbs[i]);

		if (!pg || (pg + 1) * PSIZE > len)
			continue;
		if (ld16(img + pg * PSIZE + 10) == flags)
			return pg;
		/* an overflow page hangs off a node of the leftmost leaf */
		while (flags == 4 && ld16(img + pg * PSIZE + 10) == 1) {
			const uint8_t *node = img + pg * PSIZE + ld16(img + pg * PSIZE + 16);

			pg = ld16(node) | (size_t)ld16(node + 2) << 16;
			if ((pg + 1) * PSIZE > len)
				return 0;
		}
		if (flags == 4 && ld16(img + pg * PSIZE + 10) == 2) {
			const uint8_t *p = img + pg * PSIZE;

			for (unsigned k = 0; k < (unsigned)(ld16(p + 12) - 16) / 2; k++) {
				const uint8_t *node = p + ld16(p + 16 + 2 * k);

				if (ld16(node + 4) & 1)
					return ld64(node + 8 + ld16(node + 6));
			}
		}
		if (ld16(img + pg * PSIZE + 10) == 1) {
			const uint8_t *node = img + pg * PSIZE + ld16(img + pg * PSIZE + 16);
			size_t child = ld16(node) | (size_t)ld16(node + 2) << 16;

			if ((child + 1) * PSIZE <= len && ld16(img + child * PSIZE + 10) == flags)
				return child;
		}
	}
	return 0;
}

/*
 * Install img as dir/data.mdb, run the check, and require an expected
 * result, one line, the same bytes after, and no lock.mdb.  want 0: sound;
 * otherwise damage (-EBADMSG or -ETIMEDOUT).
 */
static void expect(const char *what, const uint8_t *img, size_t len, int want)
{
	char why[512] = "";
	uint8_t *after;
	size_t alen = 0;
	struct timespec t0, t1;
	double secs;
	int rc;

	unlink(lockpath);
	file_write(data, img, len);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = index_check_structure(dir, TIMEOUT_MS, why, sizeof(why));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (want == 0)
		ok(rc == 0, "%s: sound (%d %s)", what, rc, why);
	else
		ok(rc == -EBADMSG || rc == -ETIMEDOUT, "%s: damaged, rc %d, in %.2f s: %s", what, rc,
		   secs, why);
	ok(rc == 0 || (why[0] && !strchr(why, '\n') && strstr(why, data)),
	   "%s: one line naming the file", what);
	after = file_read(data, &alen);
	ok(after && alen == len && memcmp(after, img, len) == 0 && access(lockpath, F_OK) < 0,
	   "%s: data.mdb byte-identical, no lock.mdb", what);
	free(after);
	/* the in-process pass agrees with the child */
	if (want != 0 && rc == -EBADMSG && strstr(why, "signal") == NULL) {
		char w2[256];

		ok(index_check_image(img, len, 0, w2, sizeof(w2)) == -EBADMSG || len < 2 * PSIZE ||
		   strstr(why, "LMDB"), "%s: index_check_image agrees (%s)", what, w2);
	}
}

/* Put page `used` into the first list of the free database (its root must
 * be a leaf), where it keeps the list descending.  1 if done. */
static int freelist_poison(uint8_t *img, size_t len, uint64_t used)
{
	uint64_t root = ld64(newest_meta(img) + 24 + 40), n, prev = UINT64_MAX;
	uint8_t *p, *node, *d;

	if (root == UINT64_MAX || (root + 1) * PSIZE > len)
		return 0;
	p = img + root * PSIZE;
	if (ld16(p + 10) != 2)
		return 0;
	node = p + ld16(p + 16);
	d = node + 8 + ld16(node + 6);
	if (ld16(node + 4) & 1) {	/* on overflow pages */
		uint64_t ov = ld64(d);

		if ((ov + 1) * PSIZE > len)
			return 0;
		d = img + ov * PSIZE + 16;
	}
	n = ld64(d);
	for (uint64_t i = 1; i <= n; i++) {
		uint64_t next = i < n ? ld64(d + 8 * (i + 1)) : 0;

		if (prev > used && used > next) {
			st64(d + 8 * i, used);
			return 1;
		}
		prev = ld64(d + 8 * i);
	}
	return 0;
}

static void make_base(void)
{
	struct index *ix = NULL;
	struct ixf_batch all = { 0, 3000 };
	int rc;

	if ((rc = index_open(&ix, src, uuid, vk, INDEX_CREATE)) < 0 ||
	    (rc = ixf_fill(ix, 3000, 500)) < 0 || (rc = index_write(ix, ixf_purge, &all)) < 0 ||
	    (rc = index_sync(ix)) < 0) {
		printf("Bail out! fixture: %s\n", strerror(-rc));
		exit(2);
	}
	index_close(ix);
	/* a copy has exactly the pages in use, and keeps the freelist */
	if ((rc = index_copy_env(src, dir)) < 0) {
		printf("Bail out! copy: %s\n", strerror(-rc));
		exit(2);
	}
	base = file_read(data, &base_len);
	if (!base) {
		printf("Bail out! cannot read %s\n", data);
		exit(2);
	}
	unlink(lockpath);
}

static void test_sound(void)
{
	char why[256] = "";
	char path[200];
	uint8_t *full;
	size_t flen;

	ok(base_len >= 50 * PSIZE && find_page(base, base_len, 1) && find_page(base, base_len, 4),
	   "fixture: %zu pages with branch and overflow pages", base_len / PSIZE);
	ok(index_check_image(base, base_len, 0, why, sizeof(why)) == 0, "image check: sound (%s)", why);
	expect("copied index", base, base_len, 0);
	/* the written environment itself: a 16 MiB map, free pages, zeros past the end */
	snprintf(path, sizeof(path), "%s/data.mdb", src);
	full = file_read(path, &flen);
	ok(full && index_check_image(full, flen, 0, why, sizeof(why)) == 0,
	   "image check of the daemon-style file (%zu bytes): sound (%s)", flen, why);
	ok(index_check_structure(src, TIMEOUT_MS, why, sizeof(why)) == 0,
	   "the daemon-style environment is sound (%s)", why);
	free(full);
	snprintf(path, sizeof(path), "%s/none", tmp);
	mkdir(path, 0700);
	ok(index_check_structure(path, TIMEOUT_MS, why, sizeof(why)) == -ENOENT,
	   "no data.mdb: -ENOENT (%s)", why);
}

static void test_damage(void)
{
	uint8_t *img = malloc(base_len);
	size_t br = find_page(base, base_len, 1), leaf = find_page(base, base_len, 2);

	ok(br && leaf, "found branch page %zu and leaf page %zu", br, leaf);

	expect("truncated to half", base, base_len / 2 / PSIZE * PSIZE, -1);
	expect("truncated to 100 bytes", base, 100, -1);
	expect("empty", base, 0, -1);

	memcpy(img, base, base_len);
	for (size_t i = PSIZE - 64; i < PSIZE - 16; i++)
		img[br * PSIZE + i] ^= 0x5a;
	expect("bytes flipped in a branch page's nodes", img, base_len, -1);

	memcpy(img, base, base_len);
	for (size_t i = 16; i < 40; i++)
		img[br * PSIZE + i] ^= 0xff;
	expect("bytes flipped in a branch page's offsets", img, base_len, -1);

	/* node 1 of the branch page points back at the page itself */
	memcpy(img, base, base_len);
	{
		uint8_t *node = img + br * PSIZE + ld16(img + br * PSIZE + 18);

		node[0] = (uint8_t)br;
		node[1] = (uint8_t)(br >> 8);
		node[2] = node[3] = node[4] = node[5] = 0;
	}
	expect("branch page pointing at itself (loop)", img, base_len, -1);

	memcpy(img, base, base_len);
	{
		uint8_t *node = img + br * PSIZE + ld16(img + br * PSIZE + 16);

		node[4] = 0x10;	/* page number bits 32..47: far past the map */
	}
	expect("branch pointer past the end of the map", img, base_len, -1);

	memcpy(img, base, base_len);
	for (size_t i = 0; i < PSIZE; i++)
		img[i] = (uint8_t)(i * 131 + 7);
	for (size_t i = 0; i < PSIZE; i++)
		img[PSIZE + i] = (uint8_t)(i * 17 + 3);
	expect("garbage meta pages", img, base_len, -1);

	/* the newest meta with a page size of 0: mdb_env_open would divide by it */
	memcpy(img, base, base_len);
	{
		int m = ld64(img + 16 + 128) < ld64(img + PSIZE + 16 + 128);
		uint8_t *meta = img + m * PSIZE + 16;

		memset(meta + 24, 0, 4);
	}
	expect("meta page size 0", img, base_len, -1);

	memcpy(img, base, base_len);
	{
		int m = ld64(img + 16 + 128) < ld64(img + PSIZE + 16 + 128);
		uint8_t *meta = img + m * PSIZE + 16;

		st64(meta + 120, ld64(meta + 120) + 5000);	/* last page past the file */
	}
	expect("meta page naming pages past the file", img, base_len, -1);

	/* the older meta page asking for a fixed address: the next commit
	 * would make it the newest one, keeping that field (fuzz finding) */
	memcpy(img, base, base_len);
	{
		int older = ld64(img + 16 + 128) >= ld64(img + PSIZE + 16 + 128);

		st64(img + older * PSIZE + 16 + 8, 0x7f0000000000ull);
	}
	expect("older meta page with a fixed map address", img, base_len, -1);

	memcpy(img, base, base_len);
	img[leaf * PSIZE + 16] = 0xf0;	/* node 0 offset past the page */
	img[leaf * PSIZE + 17] = 0x0f;
	expect("leaf node offset past the page", img, base_len, -1);

	memcpy(img, base, base_len);
	st64(img + leaf * PSIZE, leaf + 1);	/* the header's page number */
	expect("leaf page header naming another page", img, base_len, -1);

	memcpy(img, base, base_len);
	{
		uint8_t *p = img + leaf * PSIZE;
		uint16_t upper = ld16(p + 14);

		p[14] = (uint8_t)(upper + 2);	/* free space bounds off by two */
		p[15] = (uint8_t)((upper + 2) >> 8);
	}
	expect("leaf page upper bound moved", img, base_len, -1);

	/* a freelist entry naming a page in use (a leaf), order kept */
	memcpy(img, base, base_len);
	{
		char w[256] = "";
		int found = freelist_poison(img, base_len, leaf);

		ok(found && index_check_image(img, base_len, 0, w, sizeof(w)) == -EBADMSG &&
		   strstr(w, "second time"), "freelist naming page %zu in use: %s", leaf, w);
	}
	expect("freelist naming a page in use", img, base_len, -1);

	/* random damage: never a crash or a hang of this process */
	srandom(18);
	for (int r = 0; r < 40; r++) {
		char what[64];
		size_t pg = 2 + (size_t)random() % (base_len / PSIZE - 2);

		memcpy(img, base, base_len);
		for (int k = 0; k < 1 + r % 4; k++)
			img[pg * PSIZE + (size_t)random() % PSIZE] = (uint8_t)random();
		snprintf(what, sizeof(what), "random bytes in page %zu", pg);
		file_write(data, img, base_len);
		{
			char why[256];
			int a = index_check_image(img, base_len, 0, why, sizeof(why));
			int b = index_check_structure(dir, TIMEOUT_MS, why, sizeof(why));

			ok((a == 0 || a == -EBADMSG) && (b == 0 || b == -EBADMSG) && (a == 0 || b != 0),
			   "%s: image %d, child %d", what, a, b);
		}
	}
	file_write(data, base, base_len);
	free(img);
}

/* a FIFO as data.mdb: the child's open blocks, the deadline ends it */
static void test_hang(void)
{
	char why[256] = "";
	struct timespec t0, t1;
	int rc;

	unlink(data);
	ok(mkfifo(data, 0600) == 0, "FIFO planted as data.mdb");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = index_check_structure(dir, 1000, why, sizeof(why));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ok(rc == -ETIMEDOUT && t1.tv_sec - t0.tv_sec < 4, "hang: -ETIMEDOUT after %ld s: %s",
	   (long)(t1.tv_sec - t0.tv_sec), why);
	unlink(data);
	file_write(data, base, base_len);
}

/* ---- the child's confinement and the parent's reading of its end ---- */

static int probe_fd = -1, was_root;

static void hook_segv(int stage)
{
	if (stage != INDEX_CHECK_HOOK_CONFINED)
		return;
	raise(SIGSEGV);
}

static void hook_exit7(int stage)
{
	if (stage != INDEX_CHECK_HOOK_CONFINED)
		return;
	_exit(7);
}

static void hook_sleep(int stage)
{
	if (stage != INDEX_CHECK_HOOK_CONFINED)
		return;
	for (;;)
		pause();
}

static void hook_spin(int stage)
{
	if (stage != INDEX_CHECK_HOOK_CONFINED)
		return;
	for (volatile unsigned long i = 0;; i++)
		;
}

static void hook_confined(int stage)
{
	struct rlimit core;

	if (stage == INDEX_CHECK_HOOK_DROPPED) {
		/* as root: nobody now, for good (no way back to uid 0) */
		if (was_root && (getuid() == 0 || geteuid() == 0 || getgid() == 0 ||
				 setresuid(0, 0, 0) == 0))
			_exit(16);
		return;
	}

	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		_exit(10);
	if (getrlimit(RLIMIT_CORE, &core) < 0 || core.rlim_cur != 0)
		_exit(11);
	if (fcntl(probe_fd, F_GETFD) >= 0)
		_exit(12);
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
		_exit(13);
#if !SANITIZED
	{
		struct rlimit as;

		if (getrlimit(RLIMIT_AS, &as) < 0 || as.rlim_cur == RLIM_INFINITY)
			_exit(14);
	}
#endif
	{
		struct rlimit cpu;

		if (getrlimit(RLIMIT_CPU, &cpu) < 0 || cpu.rlim_cur == RLIM_INFINITY)
			_exit(15);
	}
}

static void test_child(void)
{
	char why[256] = "";
	int rc;

	index_check_set_test_hook(hook_segv);
	rc = index_check_structure(dir, TIMEOUT_MS, why, sizeof(why));
	ok(rc == -EBADMSG && strstr(why, "signal 11"), "child killed by SIGSEGV: %s", why);
	index_check_set_test_hook(hook_exit7);
	rc = index_check_structure(dir, TIMEOUT_MS, why, sizeof(why));
	ok(rc == -EBADMSG && strstr(why, "status 7"), "child exits 7: %s", why);
	index_check_set_test_hook(hook_sleep);
	rc = index_check_structure(dir, 500, why, sizeof(why));
	ok(rc == -ETIMEDOUT, "child sleeps: %s", why);
	index_check_set_test_hook(hook_spin);
	rc = index_check_structure(dir, 500, why, sizeof(why));
	ok(rc == -ETIMEDOUT || (rc == -EBADMSG && strstr(why, "signal")), "child spins: %s", why);
	/* not CLOEXEC, and above the fds the child keeps: it must close it */
	probe_fd = open("/dev/null", O_RDONLY);
	if (probe_fd >= 0 && dup2(probe_fd, 57) == 57) {
		close(probe_fd);
		probe_fd = 57;
	}
	was_root = geteuid() == 0;
	index_check_set_test_hook(hook_confined);
	rc = index_check_structure(dir, TIMEOUT_MS, why, sizeof(why));
	ok(rc == 0, "child confined: no new privileges, no core, not dumpable, CPU%s bounded, fds closed%s (%s)",
	   SANITIZED ? "" : " and address space", was_root ? ", nobody after opening" : "", why);
	close(probe_fd);
	index_check_set_test_hook(NULL);
	if (geteuid() == 0) {
		/* as nobody the child can no longer open a 0600 root file: the
		 * files must have been opened before the drop, and the walk after */
		ok(index_check_structure(dir, TIMEOUT_MS, why, sizeof(why)) == 0,
		   "as root: the files are opened before privileges are dropped (%s)", why);
	}
}

/* LMDB's own output, through many transactions, always passes */
static int churn(struct index_txn *t, void *arg)
{
	unsigned *seed = arg;
	struct ixf_batch b;
	int rc = 0;

	b.first = (uint64_t)(rand_r(seed) % 2900);
	b.count = 1 + (uint64_t)(rand_r(seed) % 100);
	if (rand_r(seed) % 2)
		rc = ixf_write(t, &b);
	else
		rc = ixf_purge(t, &b);
	return rc == -ENOENT ? 0 : rc;
}

static void test_churn(void)
{
	char why[256] = "", path[200];
	struct index *ix = NULL;
	unsigned seed = 42;
	int bad_img = 0, bad_child = 0, rc;

	rc = index_open(&ix, src, uuid, vk, 0);
	ok(rc == 0, "reopen the written index");
	if (rc < 0)
		return;
	snprintf(path, sizeof(path), "%s/data.mdb", src);
	for (int r = 0; r < 30; r++) {
		uint8_t *img;
		size_t len;

		index_write(ix, churn, &seed);
		index_sync(ix);
		/* a writer holds the environment: read through its reader table */
		if (index_check_structure_flags(src, INDEX_CHECK_LIVE, TIMEOUT_MS, why, sizeof(why)) < 0) {
			if (!bad_child++)
				printf("# live check after round %d: %s\n", r, why);
		}
		img = file_read(path, &len);
		if (!img || index_check_image(img, len, 0, why, sizeof(why)) < 0) {
			if (!bad_img++)
				printf("# image after round %d: %s\n", r, why);
		}
		free(img);
	}
	ok(bad_child == 0, "30 rounds of writes and deletes: the live check passes every time");
	ok(bad_img == 0, "30 rounds of writes and deletes: every image passes");
	index_close(ix);
	ok(index_check_structure(src, TIMEOUT_MS, why, sizeof(why)) == 0,
	   "after close: sound (%s)", why);
}

int main(void)
{
	if (secure_init() < 0)
		return 2;
	snprintf(tmp, sizeof(tmp), "/tmp/mv-ixc-XXXXXX");
	if (!mkdtemp(tmp))
		return 2;
	atexit(cleanup);
	snprintf(src, sizeof(src), "%s/src", tmp);
	snprintf(dir, sizeof(dir), "%s/ix", tmp);
	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	snprintf(lockpath, sizeof(lockpath), "%s/lock.mdb", dir);
	mkdir(dir, 0755);	/* nobody (the child, as root) needs no access: it is opened before */
	chmod(tmp, 0700);
	memset(mk, 7, sizeof(mk));
	memset(uuid, 9, sizeof(uuid));
	if (volkeys_derive(&vk, mk, AEAD_XCHACHA20POLY1305) < 0)
		return 2;
	make_base();

	test_sound();
	test_damage();
	test_hang();
	test_child();
	test_churn();

	volkeys_free(vk);
	free(base);
	return tap_done();
}
