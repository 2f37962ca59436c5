/*
 * fuzz_index_pages: a damaged STORE/index/data.mdb under what info, fsck
 * and mount do with it.  At startup a small vault-like index is written
 * through the normal store API with a fixed key (tests/index_fixture.h:
 * inodes, entries, chunks, xattrs with an overflow value, packs, an
 * orphan, deleted files so the freelist is not empty) and copied (its
 * pages in use, the freelist kept).  Each input is a list of page
 * mutations applied to a copy of that image:
 *
 *   op % 5 == 0  bytes:  page, offset(2), n (1..32), n bytes
 *   op % 5 == 1  u16:    page, offset(2), value(2)      (bounds, offsets, sizes)
 *   op % 5 == 2  pgno:   page, offset(2), value(1)      (a small page number, 8 bytes)
 *   op % 5 == 3  copy:   page a over page b             (a stale page replayed)
 *   op % 5 == 4  length: pages (1)                      (file cut or grown)
 *
 * (page = byte % number of pages, offset % page size.)  Then:
 *   1. index_check_image on an exact-size heap copy (our own parser, under
 *      ASan here);
 *   2. index_check_structure on the written file (the confined child);
 *      damage found by 1 must be found by 2, and an image 1 passes must
 *      pass 2: LMDB must never find (or crash on) what our check let by;
 *   3. only when it passes: info's index_env_counts, then fsck's and
 *      mount's index_open, every record read through the normal API, a
 *      write transaction (puts, deletes, growth), index_sync, close; and
 *      the file LMDB leaves must pass index_check_image again.
 * Any crash, hang or sanitizer report in this process is a bug.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "crypto/secure.h"
#include "crypto/volkeys.h"
#include "store/index.h"
#include "store/index_check.h"
#include "../index_fixture.h"

#define PSIZE 4096u
#define CHECK_MS 10000
#define PAD_PAGES 128

static uint8_t *base;
static size_t base_len, npages;
static char ixdir[PATH_MAX], datap[PATH_MAX + 16], lockp[PATH_MAX + 16];
static uint8_t uuid[16];
static struct volkeys *vk;

static void die(const char *what, int rc)
{
	fprintf(stderr, "fuzz_index_pages setup: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	abort();
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *b;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	b = malloc((size_t)st.st_size ? (size_t)st.st_size : 1);
	if (b && read(fd, b, (size_t)st.st_size) != st.st_size) {
		free(b);
		b = NULL;
	}
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static void spill(const char *path, const uint8_t *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || (len && write(fd, b, len) != (ssize_t)len))
		die(path, -errno);
	close(fd);
}

/* A smaller quarantine: every input forks, and fork copies the page
 * tables of everything ASan keeps (256 MiB by default): 28 ms -> 8 ms. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=16";
}

static void remove_ix(void)
{
	unlink(datap);
	unlink(lockp);
	rmdir(ixdir);
}

/*
 * The environment under test lives on tmpfs when there is one: LMDB
 * msyncs at every sync and close, free there, 17 ms per input on a disk.
 * /dev/shm/mvfuzz-ix.PID, so a crashed run (no atexit) is swept by the
 * next one instead of staying in memory.
 */
static void ix_dir_pick(void)
{
	DIR *d;
	struct dirent *e;

	if (access("/dev/shm", W_OK) != 0) {
		snprintf(ixdir, sizeof(ixdir), "%s/ix", fuzz_dir());
		return;
	}
	if ((d = opendir("/dev/shm"))) {
		while ((e = readdir(d))) {
			char stale[PATH_MAX], f[PATH_MAX + 16];
			long pid;

			if (strncmp(e->d_name, "mvfuzz-ix.", 10) != 0)
				continue;
			pid = strtol(e->d_name + 10, NULL, 10);
			if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
				continue;
			snprintf(stale, sizeof(stale), "/dev/shm/%s", e->d_name);
			snprintf(f, sizeof(f), "%s/data.mdb", stale);
			unlink(f);
			snprintf(f, sizeof(f), "%s/lock.mdb", stale);
			unlink(f);
			rmdir(stale);
		}
		closedir(d);
	}
	snprintf(ixdir, sizeof(ixdir), "/dev/shm/mvfuzz-ix.%ld", (long)getpid());
}

static void setup(void)
{
	char src[PATH_MAX], p[PATH_MAX + 16];
	uint8_t mk[32];
	struct index *ix = NULL;
	struct ixf_batch all = { 0, 300 };
	int rc;

	if (secure_init() < 0)
		die("secure_init", -EIO);
	memset(mk, 0x42, sizeof(mk));
	memset(uuid, 0x17, sizeof(uuid));
	if ((rc = volkeys_derive(&vk, mk, AEAD_XCHACHA20POLY1305)) < 0)
		die("volkeys", rc);
	snprintf(src, sizeof(src), "%s/src", fuzz_dir());
	ix_dir_pick();
	snprintf(datap, sizeof(datap), "%s/data.mdb", ixdir);
	snprintf(lockp, sizeof(lockp), "%s/lock.mdb", ixdir);
	if ((rc = index_open(&ix, src, uuid, vk, INDEX_CREATE)) < 0 || (rc = ixf_fill(ix, 300, 100)) < 0 ||
	    (rc = index_write(ix, ixf_purge, &all)) < 0 || (rc = index_sync(ix)) < 0)
		die("fixture", rc);
	index_close(ix);
	if (mkdir(ixdir, 0700) < 0 || (rc = index_copy_env(src, ixdir)) < 0)
		die("copy", rc ? rc : -errno);
	atexit(remove_ix);
	base = slurp(datap, &base_len);
	if (!base || base_len % PSIZE || base_len < 8 * PSIZE)
		die("base image", -EINVAL);
	npages = base_len / PSIZE;
	/* the daemon's files have zeroed room past the last page: so has
	 * this one, so a write transaction needs no 16 MiB map growth */
	base = realloc(base, base_len + PAD_PAGES * PSIZE);
	if (!base)
		die("base image", -ENOMEM);
	memset(base + base_len, 0, PAD_PAGES * PSIZE);
	base_len += PAD_PAGES * PSIZE;
	snprintf(p, sizeof(p), "%s/data.mdb", src);
	unlink(p);
	snprintf(p, sizeof(p), "%s/lock.mdb", src);
	unlink(p);
	rmdir(src);
}

/* Apply the input's mutations to a fresh copy; returns it (exact size). */
static uint8_t *mutate(const uint8_t *d, size_t n, size_t *len)
{
	size_t cap = base_len + 4 * PSIZE, l = base_len, i = 0;
	uint8_t *img = calloc(1, cap), *out;

	if (!img)
		abort();
	memcpy(img, base, base_len);
	while (i < n) {
		unsigned op = d[i++] % 5;

		if (op == 4) {
			if (i + 1 > n)
				break;
			l = (size_t)(d[i++] % (npages + 5)) * PSIZE;
			if (d[i - 1] & 1)
				l += d[i - 1] * 3u;	/* not a whole page */
			if (l > cap)
				l = cap;
			continue;
		}
		if (op == 3) {
			if (i + 2 > n)
				break;
			memmove(img + (d[i + 1] % npages) * PSIZE, img + (d[i] % npages) * PSIZE, PSIZE);
			i += 2;
			continue;
		}
		if (i + 3 > n)
			break;
		{
			size_t pg = d[i] % npages, off = (d[i + 1] | (size_t)d[i + 2] << 8) % PSIZE;
			uint8_t *at = img + pg * PSIZE + off;
			size_t room = PSIZE - off;

			i += 3;
			if (op == 0) {
				size_t k;

				if (i >= n)
					break;
				k = d[i++] % 32 + 1;
				if (k > n - i)
					k = n - i;
				if (k > room)
					k = room;
				memcpy(at, d + i, k);
				i += k;
			} else if (op == 1) {
				if (i + 2 > n)
					break;
				if (room >= 2)
					memcpy(at, d + i, 2);
				i += 2;
			} else {
				uint64_t v;

				if (i + 1 > n)
					break;
				v = d[i++] % (npages + 8);
				if (room >= 8)
					memcpy(at, &v, 8);
			}
		}
	}
	out = malloc(l ? l : 1);
	if (!out)
		abort();
	memcpy(out, img, l);
	free(img);
	*len = l;
	return out;
}

/* ---- what fsck and mount do after the check ---- */

static int count_rec(void *ctx, const uint8_t *key, size_t klen, const uint8_t *plain,
		     size_t plen, int rc)
{
	(void)key;
	(void)klen;
	(void)plain;
	(void)plen;
	(void)rc;
	++*(uint64_t *)ctx;
	return 0;
}

static int count_dirent(void *ctx, const char *name, size_t len, uint64_t ino, uint8_t type,
			uint64_t next_off)
{
	(void)name;
	(void)len;
	(void)ino;
	(void)type;
	(void)next_off;
	++*(uint64_t *)ctx;
	return 0;
}

static int count_chunk(void *ctx, uint64_t ino, uint64_t idx, const struct chunk_rec *c)
{
	(void)ino;
	(void)idx;
	(void)c;
	++*(uint64_t *)ctx;
	return 0;
}

static int count_pack(void *ctx, uint64_t pack, const struct pack_rec *p)
{
	(void)pack;
	(void)p;
	++*(uint64_t *)ctx;
	return 0;
}

static void read_all(struct index *ix)
{
	struct index_txn *t;
	struct mv_attr a;
	struct chunk_rec c;
	uint64_t n = 0, v, inos[16];
	char list[256], val[64];

	if (index_read_begin(ix, &t) < 0)
		return;
	for (int db = 0; db < INDEX_DB_COUNT; db++) {
		index_walk(t, (enum index_db)db, count_rec, &n);
		index_count(t, (enum index_db)db, &v);
	}
	index_meta_get(t, "next_ino", &v);
	index_meta_get(t, "epoch", &v);
	index_dirent_iter(t, INDEX_ROOT_INO, 0, count_dirent, &n);
	index_dirent_iter(t, ixf_dir_ino(0), 0, count_dirent, &n);
	index_dir_empty(t, ixf_dir_ino(0));
	index_chunk_iter_all(t, count_chunk, &n);
	index_pack_iter(t, count_pack, &n);
	index_orphan_list(t, inos, 16);
	index_count_inodes(t, &v);
	for (uint64_t f = 0; f < 300; f += 7) {
		uint64_t ino;
		uint8_t type;
		char name[64];

		index_inode_get(t, ixf_file_ino(f), &a);
		index_chunk_get(t, ixf_file_ino(f), 0, &c);
		index_chunk_iter(t, ixf_file_ino(f), 1, count_chunk, &n);
		index_xattr_list(t, ixf_file_ino(f), list, sizeof(list));
		index_xattr_get(t, ixf_file_ino(f), "user.study", val, sizeof(val));
		index_xattr_get(t, ixf_file_ino(f), "user.big", NULL, 0);
		snprintf(name, sizeof(name), "IM-%04llu-%06llu.dcm", (unsigned long long)(f % 97),
			 (unsigned long long)f);
		index_dirent_get(t, ixf_dir_ino(f), name, strlen(name), &ino, &type);
	}
	index_read_end(t);
}

/* mount's epoch bump, a batch of new files, deletions and a purge */
static int write_some(struct index_txn *t, void *arg)
{
	struct ixf_batch b = { 300, 40 }, d = { 0, 60 };
	uint64_t epoch = 0;
	int rc;

	(void)arg;
	index_meta_get(t, "epoch", &epoch);
	if ((rc = index_meta_put(t, "epoch", epoch + 1)) < 0)
		return rc;
	if ((rc = ixf_write(t, &b)) < 0)
		return rc;
	rc = ixf_purge(t, &d);
	if (rc == -ENOENT || rc == -EIO)
		rc = 0;	/* records missing or not authentic: what a damaged index has */
	if (rc < 0)
		return rc;
	return index_pack_account(t, 1, -100, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	char why[512], why2[512];
	uint8_t *img;
	size_t len;
	int a, b;

	if (!ready) {
		setup();
		ready = 1;
	}
	img = mutate(data, size, &len);
	a = index_check_image(img, len, 0, why, sizeof(why));
	FUZZ_ASSERT(a == 0 || a == -EBADMSG);
	FUZZ_ASSERT(a == 0 || (why[0] && !strchr(why, '\n')));
	unlink(lockp);
	spill(datap, img, len);
	b = index_check_structure(ixdir, CHECK_MS, why2, sizeof(why2));
	if (a == 0 && b != 0)
		fprintf(stderr, "image passed, child said %d: %s\n", b, why2);
	FUZZ_ASSERT(b == 0 || b == -EBADMSG || b == -ETIMEDOUT);
	FUZZ_ASSERT(b == 0 || (why2[0] && !strchr(why2, '\n')));
	FUZZ_ASSERT(a == 0 || b != 0);	/* the child runs the same check */
	FUZZ_ASSERT(a != 0 || b == 0);	/* nothing we let by trips LMDB */
	{
		/* the file is what we wrote: the check wrote nothing */
		size_t l2;
		uint8_t *after = slurp(datap, &l2);

		FUZZ_ASSERT(after && l2 == len && memcmp(after, img, len) == 0);
		FUZZ_ASSERT(access(lockp, F_OK) < 0);
		free(after);
	}
	if (b == 0) {
		uint64_t counts[INDEX_DB_COUNT];
		struct index *ix = NULL;

		index_env_counts(ixdir, counts);	/* info */
		if (index_open(&ix, ixdir, uuid, vk, 0) == 0) {	/* fsck, mount */
			read_all(ix);
			index_write(ix, write_some, NULL);
			index_sync(ix);
			read_all(ix);
			index_close(ix);
			/* mapped, not read: the map grew to 17 MiB, mostly zeros */
			{
				struct stat st;
				int fd = open(datap, O_RDONLY | O_CLOEXEC);
				void *m;

				FUZZ_ASSERT(fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0);
				m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
				FUZZ_ASSERT(m != MAP_FAILED);
				a = index_check_image(m, (size_t)st.st_size, 0, why, sizeof(why));
				if (a)
					fprintf(stderr, "after LMDB wrote: %s\n", why);
				munmap(m, (size_t)st.st_size);
				close(fd);
			}
			FUZZ_ASSERT(a == 0);
		}
	}
	free(img);
	return 0;
}
