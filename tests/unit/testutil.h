/*
 * Shared setup for unit tests that need a whole store: a mkdtemp directory
 * holding a passphrase file, a keystore and one or more stores, opened
 * with the real vault code.  Every call into vault_init/vault_open and the
 * file-system walking the tests need is here, so an API change is a
 * one-place fix.  Failures of the setup itself bail out: a test that
 * cannot build its fixture has nothing to say.
 */
#ifndef MEDVAULT_TESTUTIL_H
#define MEDVAULT_TESTUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/keystore.h"
#include "crypto/secure.h"
#include "store/blobstore.h"
#include "store/vault.h"

struct tu_env {
	char dir[64];		/* the mkdtemp directory, removed by tu_env_done */
	char store[128];	/* DIR/store, made by tu_env_init */
	char keystore[128];
	char pw[128];
	struct key_opts key;
};

static inline void tu_bail(const char *what, int rc, const char *why)
{
	printf("Bail out! %s: %s%s%s\n", what, strerror(rc < 0 ? -rc : rc),
	       why && *why ? ": " : "", why ? why : "");
	fflush(stdout);
	exit(2);
}

/* DIR/name into out (cap bytes) */
static inline const char *tu_path(const struct tu_env *e, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", e->dir, name);
	return out;
}

/* A store at e->store with chunk_size-byte chunks (0: the default).  The
 * passphrase KDF is made cheap: these tests are about the file system. */
static inline void tu_env_init(struct tu_env *e, uint32_t chunk_size)
{
	struct vault_init_opts o = { 0 };
	char why[512] = "";
	int fd, rc;

	memset(e, 0, sizeof(*e));
	if ((rc = secure_init()) < 0)
		tu_bail("secure_init", rc, NULL);
	snprintf(e->dir, sizeof(e->dir), "/tmp/mvunit.XXXXXX");
	if (!mkdtemp(e->dir))
		tu_bail("mkdtemp", -errno, NULL);
	tu_path(e, "store", e->store, sizeof(e->store));
	tu_path(e, "ks", e->keystore, sizeof(e->keystore));
	tu_path(e, "pw", e->pw, sizeof(e->pw));
	fd = open(e->pw, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "correct horse\n", 14) != 14)
		tu_bail("passphrase file", -errno, NULL);
	close(fd);
	e->key.passphrase_file = e->pw;
	keystore_pwhash_cost(1, 8192);
	o.store = e->store;
	o.keystore = e->keystore;
	o.key = &e->key;
	o.chunk_size = chunk_size;
	if ((rc = vault_init(&o, why, sizeof(why))) < 0)
		tu_bail("vault_init", rc, why);
}

/* Open the store at path (e->store or a copy of it) with e's keystore;
 * o NULL: read-write.  A copy shares the original's rollback anchor (same
 * volume), so tests that only look at a copy open it read-only: a
 * read-write open would move the anchor to the copy's state. */
static inline int tu_vault_open_opts(const struct tu_env *e, const char *path,
				     const struct vault_open_opts *o, struct vault **v)
{
	char why[512] = "";
	int rc = vault_open(v, path, e->keystore, &e->key, o, why, sizeof(why));

	if (rc < 0)
		printf("# vault_open %s: %s\n", path, why);
	return rc;
}

static inline int tu_vault_open(const struct tu_env *e, const char *path, struct vault **v)
{
	return tu_vault_open_opts(e, path, NULL, v);
}

static const struct vault_open_opts tu_read_only = { .read_only = 1 };

static inline int tu_rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	remove(path);
	return 0;
}

static inline void tu_rm_rf(const char *path)
{
	nftw(path, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void tu_env_done(struct tu_env *e)
{
	tu_rm_rf(e->dir);
}

/* Pack files of a store: their ids, for tampering and counting. */
struct tu_packs {
	uint64_t id[256];
	uint64_t size[256];
	int n;
};

static inline int tu_pack_one(void *ctx, uint64_t pack, uint64_t size)
{
	struct tu_packs *p = ctx;

	if (p->n < 256) {
		p->id[p->n] = pack;
		p->size[p->n] = size;
		p->n++;
	}
	return 0;
}

static inline int tu_packs_list(const char *store, struct tu_packs *p)
{
	memset(p, 0, sizeof(*p));
	return blobstore_scan(store, tu_pack_one, p);
}

static inline int tu_pack_exists(const char *store, uint64_t id)
{
	char path[512];
	struct stat st;

	blobstore_pack_path(store, id, path, sizeof(path));
	return stat(path, &st) == 0;
}

/* XOR one byte of a file at off with mask. */
static inline int tu_flip_byte(const char *path, uint64_t off, uint8_t mask)
{
	uint8_t b;
	int fd = open(path, O_RDWR), rc = -EIO;

	if (fd < 0)
		return -errno;
	if (pread(fd, &b, 1, (off_t)off) == 1) {
		b ^= mask;
		if (pwrite(fd, &b, 1, (off_t)off) == 1)
			rc = 0;
	}
	close(fd);
	return rc;
}

/* A byte pattern that differs per file (seed) and per position, so a
 * chunk read from the wrong place or version shows. */
static inline void tu_fill(char *buf, size_t len, uint64_t off, uint32_t seed)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = (off + i) * 2654435761u + seed * 40503u;

		buf[i] = (char)((x >> 7) ^ (x >> 19) ^ seed);
	}
}

/* 1 if buf equals the pattern tu_fill makes */
static inline int tu_check(const char *buf, size_t len, uint64_t off, uint32_t seed)
{
	char *want = malloc(len ? len : 1);
	int same;

	if (!want)
		return 0;
	tu_fill(want, len, off, seed);
	same = memcmp(buf, want, len) == 0;
	free(want);
	return same;
}

static inline int tu_is_zero(const char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return 0;
	return 1;
}


#endif
