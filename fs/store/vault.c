#include "util/why.h"
#include "store/vault.h"
#include "store/layout.h"
#include "store/index_check.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <syslog.h>
#include <unistd.h>

#include "crypto/aead.h"
#include "util/fileutil.h"
#include "crypto/secure.h"


/* The root directory and the counters, in the index's first transaction. */
struct root_arg {
	uint32_t uid, gid;
};

static int write_root(struct index_txn *txn, void *arg)
{
	struct root_arg *r = arg;
	struct mv_attr a = { 0 };
	struct timespec now;
	int rc;

	clock_gettime(CLOCK_REALTIME, &now);
	a.ino = INDEX_ROOT_INO;
	a.mode = S_IFDIR | 0755;
	a.uid = r->uid;
	a.gid = r->gid;
	a.nlink = 2;
	a.size = 4096;
	a.blocks = 8;
	a.atime_s = a.mtime_s = a.ctime_s = now.tv_sec;
	a.atime_ns = a.mtime_ns = a.ctime_ns = (uint32_t)now.tv_nsec;
	a.parent = INDEX_ROOT_INO;
	if ((rc = index_inode_put(txn, &a)) < 0)
		return rc;
	if ((rc = index_meta_put(txn, "next_ino", INDEX_ROOT_INO + 1)) < 0)
		return rc;
	if ((rc = index_meta_put(txn, "epoch", 0)) < 0)
		return rc;
	return index_meta_put(txn, "format", VOLCONF_FORMAT);
}

int vault_init(const struct vault_init_opts *o, char *why, size_t whylen)
{
	char path[PATH_MAX];
	struct volconf vc = { 0 };
	struct volkeys *keys = NULL;
	struct index *ix = NULL;
	uint8_t *mk = NULL;
	struct stat st;
	struct root_arg root = { getuid(), getgid() };
	int rc, made_store = 0;

	vc.format = VOLCONF_FORMAT;
	vc.cipher = o->cipher ? o->cipher : (int)aead_cipher_best();
	vc.chunk_size = o->chunk_size ? o->chunk_size : VAULT_DEFAULT_CHUNK;
	vc.pack_size = VAULT_DEFAULT_PACK;
	vc.created = time(NULL);
	if (vc.chunk_size < 4096 || vc.chunk_size > (4u << 20) || (vc.chunk_size & (vc.chunk_size - 1)))
		return why_set(why, whylen, -EINVAL,
			       "--chunk-size must be a power of two from 4096 to 4194304");
	if (aead_cipher_usable(vc.cipher) < 0)
		return why_set(why, whylen, -ENOTSUP, "cipher %s is not available on this CPU",
			       aead_cipher_name(vc.cipher));

	store_path(path, sizeof(path), o->store, STORE_CONF);
	if (stat(path, &st) == 0)
		return why_set(why, whylen, -EEXIST, "%s already holds a medvault store", o->store);
	if (stat(o->store, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return why_set(why, whylen, -ENOTDIR, "%s is not a directory", o->store);
		if (dir_is_empty(o->store) == 0)
			return why_set(why, whylen, -EEXIST,
				       "%s is not empty; medvault init needs a new or empty directory",
				       o->store);
	} else if (mkdir(o->store, 0700) < 0) {
		return why_set(why, whylen, -errno, "cannot create %s: %s", o->store, strerror(errno));
	} else {
		made_store = 1;
	}

	secure_random(vc.uuid, sizeof(vc.uuid));
	mk = secure_alloc(KEYSTORE_MK_LEN);
	if (!mk) {
		rc = why_set(why, whylen, -ENOMEM, "cannot allocate locked memory for the master key");
		goto fail;
	}
	secure_random(mk, KEYSTORE_MK_LEN);
	secure_readonly(mk);

	/* keystore first: without it the store could never be opened */
	if ((rc = keystore_create(o->keystore, vc.uuid, o->key, mk, why, whylen)) < 0)
		goto fail;
	if ((rc = volkeys_derive(&keys, mk, vc.cipher)) < 0) {
		why_set(why, whylen, rc, "cannot derive keys: %s", strerror(-rc));
		goto fail_ks;
	}
	store_path(path, sizeof(path), o->store, STORE_INDEX);
	if ((rc = index_open(&ix, path, vc.uuid, keys, 1)) < 0) {
		why_set(why, whylen, rc, "cannot create the index: %s", strerror(-rc));
		goto fail_ks;
	}
	if ((rc = index_write(ix, write_root, &root)) < 0 || (rc = index_sync(ix)) < 0) {
		why_set(why, whylen, rc, "cannot write the index: %s", strerror(-rc));
		goto fail_ks;
	}
	if ((rc = blobstore_create(o->store)) < 0) {
		why_set(why, whylen, rc, "cannot create %s/" STORE_PACKS_NAME ": %s", o->store, strerror(-rc));
		goto fail_ks;
	}
	store_path(path, sizeof(path), o->store, STORE_LOCK);
	{
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

		if (fd < 0) {
			rc = -errno;
			why_set(why, whylen, rc, "cannot create %s: %s", path, strerror(errno));
			goto fail_ks;
		}
		close(fd);
	}
	/* the card last: a store without it is visibly unfinished */
	if ((rc = volconf_save(o->store, &vc, mk)) < 0) {
		why_set(why, whylen, rc, "cannot write %s/" STORE_CONF_NAME ": %s", o->store, strerror(-rc));
		goto fail_ks;
	}
	index_close(ix);
	volkeys_free(keys);
	secure_free(mk);
	return 0;

fail_ks: {
		char kpath[PATH_MAX];

		keystore_path(o->keystore, vc.uuid, kpath, sizeof(kpath));
		unlink(kpath);
	}
fail:
	index_close(ix);
	volkeys_free(keys);
	secure_free(mk);
	if (made_store) {
		char cmd[PATH_MAX];

		/* only what this call created, files before their folder;
		 * remove(3) rmdirs folders (only while empty) and unlinks files */
		static const enum store_entry made[] = {
			STORE_INDEX_DATA, STORE_INDEX_LOCK, STORE_INDEX, STORE_PACKS, STORE_LOCK,
		};

		for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++)
			if (store_path(cmd, sizeof(cmd), o->store, made[i]) == 0)
				remove(cmd);
		rmdir(o->store);
	}
	return rc;
}

static int bump_epoch(struct index_txn *txn, void *arg)
{
	uint64_t *epoch = arg;
	int rc = index_meta_get(txn, "epoch", epoch);

	if (rc < 0)
		return rc;
	*epoch += 1;
	return index_meta_put(txn, "epoch", *epoch);
}

int vault_open(struct vault **out, const char *store, const char *keystore,
	       const struct key_opts *key, char *why, size_t whylen)
{
	struct vault *v;
	uint8_t *mk = NULL;
	char path[PATH_MAX];
	uint64_t max_pack = 0;
	int rc;

	*out = NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->lock_fd = -1;
	v->store = realpath(store, NULL);
	if (!v->store) {
		rc = why_set(why, whylen, -errno, "store %s: %s", store, strerror(errno));
		goto fail;
	}
	if ((rc = volconf_load(v->store, &v->conf, why, whylen)) < 0)
		goto fail;

	store_path(path, sizeof(path), v->store, STORE_LOCK);
	/* made by init, so a refused open changes nothing in the store */
	v->lock_fd = open(path, O_RDWR | O_CLOEXEC);
	if (v->lock_fd < 0 && errno == ENOENT)
		v->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (v->lock_fd < 0) {
		rc = why_set(why, whylen, -errno, "cannot open %s: %s", path, strerror(errno));
		goto fail;
	}
	if (flock(v->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = why_set(why, whylen, -EBUSY, "store %s is in use by another medvault process", store);
		goto fail;
	}

	if ((rc = keystore_unlock(keystore, v->conf.uuid, key, &mk, why, whylen)) < 0)
		goto fail;
	if (volconf_verify(&v->conf, mk) < 0) {
		rc = why_set(why, whylen, -EBADMSG,
			     "%s/" STORE_CONF_NAME " failed authentication (tampered, or keystore of another volume)",
			     store);
		goto fail;
	}
	if ((rc = volkeys_derive(&v->keys, mk, v->conf.cipher)) < 0) {
		why_set(why, whylen, rc, "cannot derive keys: %s", strerror(-rc));
		goto fail;
	}
	keystore_key_free(mk);
	mk = NULL;

	store_path(path, sizeof(path), v->store, STORE_INDEX);
	/* LMDB trusts its file: a confined child checks it first (we hold the lock) */
	if ((rc = index_check_structure(path, 0, why, whylen)) < 0) {
		rc = rc == -EBADMSG || rc == -ETIMEDOUT ? -EUCLEAN : rc;
		goto fail;
	}
	if ((rc = index_open(&v->ix, path, v->conf.uuid, v->keys, 0)) < 0) {
		why_set(why, whylen, rc, "index of %s cannot be opened: %s", store, strerror(-rc));
		goto fail;
	}
	if ((rc = index_write(v->ix, bump_epoch, &v->epoch)) < 0 || (rc = index_sync(v->ix)) < 0) {
		why_set(why, whylen, rc, "index of %s is unreadable or corrupt: %s", store,
			rc == -EIO ? "authentication failed" : strerror(-rc));
		goto fail;
	}
	{
		struct index_txn *t;

		if (index_read_begin(v->ix, &t) == 0) {
			index_meta_get(t, "max_pack", &max_pack);
			index_read_end(t);
		}
	}
	if ((rc = blobstore_open(&v->bs, v->store, v->conf.uuid, v->conf.pack_size, max_pack)) < 0) {
		why_set(why, whylen, rc, "cannot open packs of %s: %s", store, strerror(-rc));
		goto fail;
	}
	*out = v;
	return 0;
fail:
	keystore_key_free(mk);
	vault_close(v);
	return rc;
}

void vault_close(struct vault *v)
{
	if (!v)
		return;
	if (v->bs)
		blobstore_sync(v->bs);
	blobstore_close(v->bs);
	index_close(v->ix);
	volkeys_free(v->keys);
	volconf_release(&v->conf);
	if (v->lock_fd >= 0)
		close(v->lock_fd);
	free(v->store);
	free(v);
}

void vault_note_pid(struct vault *v)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

	if (ftruncate(v->lock_fd, 0) == 0 && pwrite(v->lock_fd, buf, (size_t)n, 0) != n)
		syslog(LOG_WARNING, "cannot record the daemon pid in the lock file");
}

int vault_in_use(const char *store)
{
	char path[PATH_MAX];
	int fd, rc = 0;

	store_path(path, sizeof(path), store, STORE_LOCK);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (flock(fd, LOCK_SH | LOCK_NB) == 0)
		flock(fd, LOCK_UN);
	else
		rc = errno == EWOULDBLOCK ? 1 : -errno;
	close(fd);
	return rc;
}
