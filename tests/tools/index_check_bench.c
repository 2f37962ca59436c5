/*
 * index_check_bench DIR NFILES: what checking an untrusted data.mdb costs
 * on a big index.  Makes DIR (an LMDB environment written through the
 * store API: tests/index_fixture.h, NFILES files of about 100 KiB each
 * in directories of 1000) unless it is there, then times, warm (the file
 * in the page cache) and cold (its pages dropped with fadvise first):
 *
 *   image   index_check_image over a read-only map, in this process
 *   child   index_check_structure: fork, confine, meta, image, LMDB walk
 *   digest  volkeys_index_digest (keyed BLAKE2b of the whole file)
 *   open    index_open + one read transaction + index_close (no check)
 *
 * index_check_bench --vault DIR NFILES: the same index inside a real
 * store (DIR/store, keystore DIR/ks, passphrase DIR/pw; made unless there)
 * and the whole of vault_open + vault_close timed, which is what a mount
 * does before FUSE: lock, keystore unlock (a cheap passphrase KDF here),
 * the structural check, index_open, the epoch bump, the packs.
 *
 * Prints one line per measurement; docs/DESIGN.md has the numbers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto/keystore.h"
#include "crypto/secure.h"
#include "store/vault.h"
#include "crypto/volkeys.h"
#include "store/index.h"
#include "store/index_check.h"
#include "../index_fixture.h"

static struct volkeys *vk;
static uint8_t uuid[16];
static char dir[4096], data[4200];

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static void drop_cache(void)
{
	int fd = open(data, O_RDONLY);

	if (fd >= 0) {
		fdatasync(fd);
		posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
}

static int run_image(void)
{
	struct stat st;
	char why[256];
	int fd = open(data, O_RDONLY), rc;
	void *m;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -errno;
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return -errno;
	rc = index_check_image(m, (size_t)st.st_size, 0, why, sizeof(why));
	if (rc)
		fprintf(stderr, "image: %s\n", why);
	munmap(m, (size_t)st.st_size);
	return rc;
}

static int run_child(void)
{
	char why[512];
	int rc = index_check_structure(dir, 0, why, sizeof(why));

	if (rc)
		fprintf(stderr, "child: %s\n", why);
	return rc;
}

static int run_digest(void)
{
	uint8_t d[VOLKEYS_INDEX_DIGEST_LEN];
	int fd = open(data, O_RDONLY), rc;

	if (fd < 0)
		return -errno;
	rc = volkeys_index_digest(vk, fd, d);
	close(fd);
	return rc;
}

static int run_open(void)
{
	struct index *ix = NULL;
	struct index_txn *t;
	uint64_t n = 0;
	int rc = index_open(&ix, dir, uuid, vk, INDEX_RDONLY);

	if (rc < 0)
		return rc;
	if ((rc = index_read_begin(ix, &t)) == 0) {
		index_meta_get(t, "next_ino", &n);
		index_read_end(t);
	}
	index_close(ix);
	return rc;
}

static void measure(const char *name, int (*fn)(void))
{
	double best_warm = 1e9, t, cold;
	int rc = 0;

	drop_cache();
	t = now();
	rc |= fn();
	cold = now() - t;
	for (int i = 0; i < 3; i++) {
		t = now();
		rc |= fn();
		t = now() - t;
		if (t < best_warm)
			best_warm = t;
	}
	printf("%-7s cold %7.3f s   warm %7.3f s%s\n", name, cold, best_warm, rc ? "   (FAILED)" : "");
	fflush(stdout);
}

static char vstore[3900], vks[3900], vpw[3900];

static int run_vault(void)
{
	struct key_opts ko = { .passphrase_file = vpw };
	struct vault *v = NULL;
	char why[512];
	int rc = vault_open(&v, vstore, vks, &ko, NULL, why, sizeof(why));

	if (rc < 0)
		fprintf(stderr, "vault_open: %s\n", why);
	vault_close(v);
	return rc;
}

static int vault_main(const char *top, uint64_t n)
{
	struct key_opts ko = { .passphrase_file = vpw };
	struct stat st;
	int rc;

	snprintf(vstore, sizeof(vstore), "%s/store", top);
	snprintf(vks, sizeof(vks), "%s/ks", top);
	snprintf(vpw, sizeof(vpw), "%s/pw", top);
	snprintf(dir, sizeof(dir), "%s/index", vstore);
	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	keystore_pwhash_cost(1, 8192);
	if (stat(vstore, &st) < 0) {
		struct vault_init_opts o = { .store = vstore, .keystore = vks, .key = &ko };
		struct vault *v = NULL;
		char why[512];
		double t = now();
		FILE *f;

		mkdir(top, 0700);
		if (!(f = fopen(vpw, "w")) || fputs("bench passphrase\n", f) < 0 || fclose(f) != 0)
			return 1;
		if ((rc = vault_init(&o, why, sizeof(why))) < 0 ||
		    (rc = vault_open(&v, vstore, vks, &ko, NULL, why, sizeof(why))) < 0) {
			fprintf(stderr, "%s\n", why);
			return 1;
		}
		rc = ixf_fill(v->ix, n, 2000);
		vault_close(v);
		if (rc < 0) {
			fprintf(stderr, "fill: %s\n", strerror(-rc));
			return 1;
		}
		printf("made a store of %llu files in %.1f s\n", (unsigned long long)n, now() - t);
	}
	stat(data, &st);
	printf("data.mdb %.1f MiB\n", st.st_size / 1048576.0);
	measure("child", run_child);
	measure("vault", run_vault);
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t mk[32];
	struct stat st;
	uint64_t n;
	int rc;

	if (argc == 4 && strcmp(argv[1], "--vault") == 0) {
		if (secure_init() < 0)
			return 2;
		return vault_main(argv[2], strtoull(argv[3], NULL, 10));
	}
	if (argc != 3) {
		fprintf(stderr, "usage: index_check_bench [--vault] DIR NFILES\n");
		return 2;
	}
	n = strtoull(argv[2], NULL, 10);
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	snprintf(data, sizeof(data), "%s/data.mdb", dir);
	if (secure_init() < 0)
		return 2;
	memset(mk, 0x33, sizeof(mk));
	memset(uuid, 0x44, sizeof(uuid));
	if (volkeys_derive(&vk, mk, AEAD_XCHACHA20POLY1305) < 0)
		return 2;
	if (stat(data, &st) < 0) {
		struct index *ix = NULL;
		double t = now();

		if ((rc = index_open(&ix, dir, uuid, vk, INDEX_CREATE)) < 0 ||
		    (rc = ixf_fill(ix, n, 2000)) < 0) {
			fprintf(stderr, "fill: %s\n", strerror(-rc));
			return 1;
		}
		index_close(ix);
		printf("made %llu files in %.1f s\n", (unsigned long long)n, now() - t);
		stat(data, &st);
	}
	{
		uint64_t c[INDEX_DB_COUNT];

		index_env_counts(dir, c);
		printf("data.mdb %.1f MiB: %llu inodes, %llu names, %llu chunks, %llu xattrs\n",
		       st.st_size / 1048576.0, (unsigned long long)c[INDEX_DB_INODE],
		       (unsigned long long)c[INDEX_DB_DIRENT], (unsigned long long)c[INDEX_DB_CHUNK],
		       (unsigned long long)c[INDEX_DB_XATTR]);
	}
	measure("image", run_image);
	measure("child", run_child);
	measure("digest", run_digest);
	measure("open", run_open);
	volkeys_free(vk);
	return 0;
}
