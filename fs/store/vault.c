#include "util/why.h"
#include "store/vault.h"
#include "store/layout.h"
#include "store/index_check.h"
#include "store/storedir.h"
#include "util/safefile.h"

#include <dirent.h>
#include <inttypes.h>
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


/* the token object holding the anchor's copy */
static void token_label(const uint8_t uuid[ANCHOR_UUID_LEN], char out[64])
{
	int n = snprintf(out, 64, "medvault-anchor-");

	for (int i = 0; i < ANCHOR_UUID_LEN; i++)
		n += snprintf(out + n, 64 - (size_t)n, "%02x", uuid[i]);
}

/*
 * Write the anchor's copy on the token the key options name, when they
 * name one: someone who rolls back the keystore directory along with the
 * store cannot roll the token back without its PIN.  Errors are logged,
 * not fatal: the file stays the anchor of record.
 */
static void token_anchor_put(const char *ksdir, const struct key_opts *key, const uint8_t *buf)
{
	char label[64], why[256] = "";
	int rc;

	if (!key)
		return;
	token_label(buf + 8, label);
	rc = keystore_token_put(ksdir, buf + 8, key, label, buf, ANCHOR_LEN, why, sizeof(why));
	if (rc < 0 && rc != -ENOTSUP)
		syslog(LOG_WARNING, "cannot write the anchor's copy on the token: %s",
		       why[0] ? why : strerror(-rc));
}

static void token_anchor_save(const char *ksdir, const struct key_opts *key,
			      const struct volkeys *keys, const struct anchor *a)
{
	uint8_t buf[ANCHOR_LEN];

	anchor_encode(keys, a, buf);
	token_anchor_put(ksdir, key, buf);
}

int vault_anchor_store(const char *ksdir, const struct key_opts *key, const uint8_t *buf,
		       size_t len)
{
	int rc;

	if (len != ANCHOR_LEN)
		return -EBADMSG;
	if ((rc = anchor_save_encoded(ksdir, buf)) < 0)
		return rc;
	token_anchor_put(ksdir, key, buf);
	return 0;
}

/* The root directory and the counters, in the index's first transaction. */
struct root_arg {
	uint32_t uid, gid, mode;
};

static int write_root(struct index_txn *txn, void *arg)
{
	struct root_arg *r = arg;
	struct mv_attr a = { 0 };
	struct timespec now;
	int rc;

	clock_gettime(CLOCK_REALTIME, &now);
	a.ino = INDEX_ROOT_INO;
	a.mode = S_IFDIR | r->mode;
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
	/* made as format 3: every chunk has a derived key */
	if ((rc = index_meta_put(txn, "keygen_epoch", 0)) < 0)
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
	struct root_arg root = { getuid(), getgid(), VAULT_ROOT_MODE };
	int rc, made_store = 0;

	if (o->root_mode_set) {
		if (o->root_mode & ~07777u)
			return why_set(why, whylen, -EINVAL, "--root-mode: not a permission mode: %o",
				       o->root_mode);
		root.mode = o->root_mode;
	}
	if (o->root_owner_set) {
		root.uid = o->root_uid;
		root.gid = o->root_gid;
	}
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
	{
		/* an empty directory others could plant files in is no store */
		int sdfd = safe_dir_open(o->store, why, whylen);

		if (sdfd < 0) {
			rc = sdfd;
			goto fail;
		}
		close(sdfd);
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
	{
		/* the new store's first anchor, so that its first mount finds
		 * one (a store with commits and no anchor is refused) */
		struct index_root_state root;
		struct anchor a = { .flags = ANCHOR_CLEAN, .time = (int64_t)time(NULL) };

		if ((rc = index_root_durable(ix, &root)) == 0) {
			memcpy(a.uuid, vc.uuid, ANCHOR_UUID_LEN);
			a.counter = root.counter;
			memcpy(a.root_mac, root.mac, INDEX_ROOT_MAC);
			if ((rc = anchor_save(o->keystore, keys, &a)) == 0)
				token_anchor_save(o->keystore, o->key, keys, &a);
		}
		if (rc < 0) {
			why_set(why, whylen, rc, "cannot write the anchor in %s: %s", o->keystore, strerror(-rc));
			goto fail_ks;
		}
	}
	if ((rc = blobstore_create(o->store)) < 0) {
		why_set(why, whylen, rc, "cannot create %s/" STORE_PACKS_NAME ": %s", o->store, strerror(-rc));
		goto fail_ks;
	}
	{
		int fd = -1, sdfd = safe_dir_open(o->store, why, whylen);

		rc = sdfd < 0 ? sdfd : store_lock_open(sdfd, o->store, 0, &fd, why, whylen);
		if (sdfd >= 0)
			close(sdfd);
		if (rc < 0)
			goto fail_ks;
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
		if (anchor_path(kpath, sizeof(kpath), o->keystore, vc.uuid) == 0)
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

struct epoch_bump {
	uint64_t epoch;		/* out: this mount's */
	int keygen;		/* upgrading to format 3: the keygen epoch is this one */
};

static int bump_epoch(struct index_txn *txn, void *arg)
{
	struct epoch_bump *b = arg;
	int rc = index_meta_get(txn, "epoch", &b->epoch);

	if (rc < 0)
		return rc;
	b->epoch += 1;
	if ((rc = index_meta_put(txn, "epoch", b->epoch)) < 0)
		return rc;
	if (!b->keygen)
		return 0;
	if ((rc = index_meta_put(txn, "keygen_epoch", b->epoch)) < 0)
		return rc;
	return index_meta_put(txn, "format", 3);
}

/*
 * Format 2 -> 3, after the epoch bump that wrote keygen_epoch = this
 * mount's epoch (durable): now the card.  Every chunk this mount seals
 * has that epoch, so derived keys start here, and every older chunk keeps
 * its file key.  A crash before the card leaves a format-2 store whose
 * keygen_epoch nobody reads (format-2 builds ignore it); the next open by
 * this build writes it again, with its own, newer epoch, so chunks a
 * format-2 build sealed meanwhile stay on the file-key side.
 */
static int upgrade3(struct vault *v, const uint8_t *mk, char *why, size_t whylen)
{
	int rc;

	v->conf.format = 3;
	if ((rc = volconf_save(v->store, &v->conf, mk)) < 0)
		return why_set(why, whylen, rc, "cannot upgrade %s/" STORE_CONF_NAME " to format 3: %s",
			       v->store, strerror(-rc));
	syslog(LOG_NOTICE, "store %s upgraded from format 2 to 3 (chunk keys by generation from epoch %"
	       PRIu64 ")", v->store, v->epoch);
	return 0;
}

/*
 * Format 1 -> 2: the card first, so that no older build (which refuses a
 * newer format) writes records the tree would not know of; then the tree,
 * in one index transaction.  A crash in between leaves a format-2 card
 * over a tree-less index, which the next open upgrades the same way.
 */
static int upgrade(struct vault *v, const uint8_t *mk, char *why, size_t whylen)
{
	unsigned was = v->conf.format;
	int rc;

	if (index_has_tree(v->ix))
		return 0;
	if (v->conf.format < 2) {
		v->conf.format = 2;
		if ((rc = volconf_save(v->store, &v->conf, mk)) < 0)
			return why_set(why, whylen, rc, "cannot upgrade %s/" STORE_CONF_NAME " to format 2: %s",
				       v->store, strerror(-rc));
	}
	if ((rc = index_upgrade(v->ix)) < 0)
		return why_set(why, whylen, rc, "cannot upgrade the index of %s to format 2: %s", v->store,
			       rc == -EIO ? "a record fails authentication (run medvault fsck)" : strerror(-rc));
	syslog(LOG_NOTICE, "store %s upgraded from format %u to 2 (integrity tree built)", v->store, was);
	return 0;
}

/* "2026-11-01T09:30:00Z", or "never" */
/* the token's copy: 0, -ENOTSUP (no token named), -ENOENT, -EBADMSG, -errno */
static int token_anchor_load(struct vault *v, struct anchor *out)
{
	uint8_t buf[ANCHOR_LEN + 1];
	char label[64], why[256] = "";
	size_t len = 0;
	int rc;

	if (!v->key)
		return -ENOTSUP;
	token_label(v->conf.uuid, label);
	rc = keystore_token_get(v->keystore, v->conf.uuid, v->key, label, buf, sizeof(buf), &len,
				why, sizeof(why));
	if (rc < 0) {
		if (rc != -ENOTSUP && rc != -ENOENT)
			syslog(LOG_WARNING, "cannot read the anchor's copy on the token: %s",
			       why[0] ? why : strerror(-rc));
		return rc;
	}
	return anchor_decode(v->keys, v->conf.uuid, buf, len, out);
}

static void anchor_when(int64_t t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || !gmtime_r(&tt, &tm) || !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, len, "never");
}

const char *vault_anchor_state_name(enum vault_anchor_state s)
{
	static const char *const names[] = {
		[VAULT_ANCHOR_OK] = "ok", [VAULT_ANCHOR_NEW] = "new",
		[VAULT_ANCHOR_BEHIND] = "behind", [VAULT_ANCHOR_FORKED] = "forked",
		[VAULT_ANCHOR_MISSING] = "missing", [VAULT_ANCHOR_BAD] = "bad",
	};

	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

#define ANCHOR_HINT "mount it with --read-only to inspect, or --accept-rollback to make it current"

/*
 * Compare the store's durable root with its anchor, before anything is
 * written to the store.  Sets v->anchor_state and friends; returns 0 to
 * go on, or -errno with why[] set when the store must be refused (never
 * for a read-only open, which gets v->anchor_note instead, nor with
 * accept_rollback).
 */
static int anchor_check(struct vault *v, const struct vault_open_opts *o, const char *store,
			char *why, size_t whylen)
{
	struct index_root_state root;
	struct anchor a;
	char when[32], line[sizeof(v->anchor_note)];
	int rc, lrc, from_token = 0;

	if ((rc = index_root_durable(v->ix, &root)) < 0)
		return why_set(why, whylen, rc, "index of %s: no integrity root: %s", store, strerror(-rc));
	v->store_counter = root.counter;
	line[0] = '\0';
	lrc = anchor_load(v->keystore, v->keys, v->conf.uuid, &a);
	{
		/* the token's copy wins when it is newer, or the file is gone:
		 * the keystore directory may have been rolled back with the store */
		struct anchor ta;
		int trc = token_anchor_load(v, &ta);

		v->token_mirror = trc != -ENOTSUP;
		if (trc == 0 && (lrc != 0 || ta.counter > a.counter)) {
			a = ta;
			lrc = 0;
			from_token = 1;
		} else if (trc == -EBADMSG && lrc != 0) {
			lrc = -EBADMSG;
			from_token = 1;
		}
	}
	if (lrc == 0) {
		enum anchor_cmp c = anchor_compare(&a, root.counter, root.mac, &v->anchor_behind);

		v->anchor = a;
		v->anchor_known = 1;
		v->anchor_counter = a.counter;
		anchor_when(a.time, when, sizeof(when));
		if (c == ANCHOR_BEHIND) {
			v->anchor_state = VAULT_ANCHOR_BEHIND;
			snprintf(line, sizeof(line), "store %s is %" PRIu64 " commits behind its anchor%s (last moved %s)",
				 store, v->anchor_behind, from_token ? " (the copy on the PKCS#11 token)" : "", when);
		} else if (c == ANCHOR_FORKED) {
			v->anchor_state = VAULT_ANCHOR_FORKED;
			snprintf(line, sizeof(line), "store %s is not the state its anchor names at commit %" PRIu64
				 " (another history; last moved %s)", store, a.counter, when);
		} else {
			v->anchor_state = VAULT_ANCHOR_OK;
		}
	} else if (lrc == -ENOENT && root.counter == 0) {
		/* a store without commits (format 1) gets its first anchor */
		v->anchor_state = VAULT_ANCHOR_NEW;
	} else if (lrc == -ENOENT) {
		v->anchor_state = VAULT_ANCHOR_MISSING;
		snprintf(line, sizeof(line), "store %s has %" PRIu64 " commits but its anchor %s is missing",
			 store, root.counter, v->anchor_file);
	} else {
		v->anchor_state = VAULT_ANCHOR_BAD;
		snprintf(line, sizeof(line), "anchor %s of store %s %s",
			 from_token ? "copy on the PKCS#11 token" : v->anchor_file, store,
			 lrc == -EBADMSG ? "fails authentication (tampered, or another volume's)"
					 : strerror(-lrc));
	}
	if (!line[0])
		return 0;
	if (o->read_only) {
		snprintf(v->anchor_note, sizeof(v->anchor_note), "%s; opened read-only", line);
		syslog(LOG_WARNING, "%s", v->anchor_note);
		return 0;
	}
	if (o->accept_rollback) {
		v->rollback_accepted = 1;
		snprintf(v->anchor_note, sizeof(v->anchor_note),
			 "%s; accepted (--accept-rollback): the anchor now names the store's state", line);
		/* logged once the anchor has moved (anchor_after_open) */
		return 0;
	}
	return why_set(why, whylen, v->anchor_state == VAULT_ANCHOR_BAD ? -EBADMSG : -ESTALE,
		       "%s; " ANCHOR_HINT, line);
}

/* the anchor names root (durable), clean or not, unless it already does */
static int anchor_move_to(struct vault *v, const struct index_root_state *root, int clean)
{
	struct anchor a;
	int rc;

	if (v->anchor_known && v->anchor.counter == root->counter &&
	    !memcmp(v->anchor.root_mac, root->mac, INDEX_ROOT_MAC) &&
	    (v->anchor.flags & ANCHOR_CLEAN) == (clean ? ANCHOR_CLEAN : 0))
		return 0;
	memset(&a, 0, sizeof(a));
	memcpy(a.uuid, v->conf.uuid, ANCHOR_UUID_LEN);
	a.counter = root->counter;
	memcpy(a.root_mac, root->mac, INDEX_ROOT_MAC);
	a.flags = clean ? ANCHOR_CLEAN : 0;
	a.time = (int64_t)time(NULL);
	if (v->anchor_put) {
		uint8_t buf[ANCHOR_LEN];

		anchor_encode(v->keys, &a, buf);
		if ((rc = v->anchor_put(v->anchor_put_arg, buf, sizeof(buf))) < 0)
			return rc;
	} else {
		if ((rc = anchor_save(v->keystore, v->keys, &a)) < 0)
			return rc;
		if (v->token_mirror)
			token_anchor_save(v->keystore, v->key, v->keys, &a);
	}
	v->anchor = a;
	v->anchor_known = 1;
	return 0;
}

int vault_anchor_move(struct vault *v, int clean)
{
	struct index_root_state root;
	int rc;

	if (!v->anchor_writable)
		return 0;
	/* what index_sync made durable, never what is merely committed */
	if ((rc = index_root_durable(v->ix, &root)) < 0)
		return rc;
	return anchor_move_to(v, &root, clean);
}

/*
 * After the epoch bump is durable: the anchor names the store as it now
 * is, not clean (a daemon holds it), which creates a missing one and
 * moves it back after an accepted rollback.
 */
/* the index reopened for writing must still be the state checked */
static int anchor_recheck(struct vault *v, const char *store, char *why, size_t whylen)
{
	struct index_root_state root;
	int rc;

	if ((rc = index_root_durable(v->ix, &root)) < 0)
		return why_set(why, whylen, rc, "index of %s: no integrity root: %s", store, strerror(-rc));
	if (root.counter != v->store_counter)
		return why_set(why, whylen, -EAGAIN, "index of %s changed while it was opened", store);
	return 0;
}

static int anchor_after_open(struct vault *v, const char *store, char *why, size_t whylen)
{
	int rc;

	v->anchor_writable = 1;
	if (v->anchor_state != VAULT_ANCHOR_OK)
		v->anchor_known = 0;	/* whatever is there is replaced */
	if ((rc = vault_anchor_move(v, 0)) < 0) {
		v->anchor_writable = 0;
		return why_set(why, whylen, rc, "cannot write the anchor %s of store %s: %s",
			       v->anchor_file, store, strerror(-rc));
	}
	if (v->rollback_accepted)
		syslog(LOG_WARNING, "%s", v->anchor_note);
	return 0;
}

int vault_open(struct vault **out, const char *store, const char *keystore,
	       const struct key_opts *key, const struct vault_open_opts *opts,
	       char *why, size_t whylen)
{
	static const struct vault_open_opts defaults = { 0 };
	const struct vault_open_opts *o = opts ? opts : &defaults;
	struct vault *v;
	uint8_t *mk = NULL;
	char path[PATH_MAX];
	uint64_t max_pack = 0;
	struct epoch_bump bump = { 0 };
	int rc, sdfd = -1;

	*out = NULL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->lock_fd = -1;
	v->read_only = !!o->read_only;
	v->store = realpath(store, NULL);
	if (!v->store) {
		rc = why_set(why, whylen, -errno, "store %s: %s", store, strerror(errno));
		goto fail;
	}
	if ((sdfd = safe_dir_open(v->store, why, whylen)) < 0) {
		rc = sdfd;
		goto fail;
	}
	v->key = key;
	v->keystore = strdup(keystore);
	if (!v->keystore) {
		rc = why_set(why, whylen, -ENOMEM, "out of memory");
		goto fail;
	}
	if ((rc = volconf_load(v->store, &v->conf, why, whylen)) < 0)
		goto fail;
	if (anchor_path(path, sizeof(path), keystore, v->conf.uuid) < 0 ||
	    !(v->anchor_file = strdup(path))) {
		rc = why_set(why, whylen, -ENAMETOOLONG, "keystore directory %s: name too long", keystore);
		goto fail;
	}

	if ((rc = store_lock_open(sdfd, v->store, v->read_only, &v->lock_fd, why, whylen)) < 0)
		goto fail;
	if (v->lock_fd >= 0 && (rc = store_lock_take(v->lock_fd, v->store, 1)) < 0) {
		rc = why_set(why, whylen, rc, "store %s is in use by another medvault process", store);
		goto fail;
	}
	/* LMDB opens its files by name: checked first, under the lock */
	if ((rc = store_index_check(sdfd, v->store, why, whylen)) < 0)
		goto fail;

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

	/*
	 * The anchor is checked on the index opened read-only, and only a
	 * store that passes is reopened for writing: LMDB's read-write open
	 * already touches data.mdb (it sizes the file to the map), and a
	 * refused store must be left exactly as it was.
	 */
	store_path(path, sizeof(path), v->store, STORE_INDEX);
	/* LMDB trusts its file: a confined child checks it first (we hold the lock) */
	if ((rc = index_check_structure(path, 0, why, whylen)) < 0) {
		rc = rc == -EBADMSG || rc == -ETIMEDOUT ? -EUCLEAN : rc;
		goto fail;
	}
	if ((rc = index_open(&v->ix, path, v->conf.uuid, v->keys, INDEX_RDONLY)) < 0) {
		why_set(why, whylen, rc, "index of %s cannot be opened: %s", store,
			rc == -EBADMSG ? "its root record fails authentication" : strerror(-rc));
		goto fail;
	}
	if ((rc = anchor_check(v, o, store, why, whylen)) < 0)
		goto fail;
	if (!v->read_only) {
		index_close(v->ix);
		v->ix = NULL;
		if ((rc = index_open(&v->ix, path, v->conf.uuid, v->keys, 0)) < 0) {
			why_set(why, whylen, rc, "index of %s cannot be opened: %s", store,
				rc == -EBADMSG ? "its root record fails authentication" : strerror(-rc));
			goto fail;
		}
		if ((rc = anchor_recheck(v, store, why, whylen)) < 0)
			goto fail;
		/* format 1 -> 2 only once the store has passed (a read-only
		 * open never upgrades).  A format-1 store has no anchor yet:
		 * one naming its state comes first, so a crash after the
		 * upgrade's commit finds a store ahead of its anchor, not one
		 * with commits and no anchor (which is refused) */
		if (v->anchor_state == VAULT_ANCHOR_NEW && !index_has_tree(v->ix)) {
			v->anchor_writable = 1;
			rc = vault_anchor_move(v, 0);
			v->anchor_writable = 0;
			if (rc < 0) {
				why_set(why, whylen, rc, "cannot write the anchor %s of store %s: %s",
					v->anchor_file, store, strerror(-rc));
				goto fail;
			}
		}
		if ((rc = upgrade(v, mk, why, whylen)) < 0)
			goto fail;
		bump.keygen = v->conf.format < 3;
		if ((rc = index_write(v->ix, bump_epoch, &bump)) < 0 || (rc = index_sync(v->ix)) < 0) {
			why_set(why, whylen, rc, "index of %s is unreadable or corrupt: %s", store,
				rc == -EIO ? "authentication failed" : strerror(-rc));
			goto fail;
		}
		v->epoch = bump.epoch;
		if (bump.keygen && (rc = upgrade3(v, mk, why, whylen)) < 0)
			goto fail;
		if ((rc = anchor_after_open(v, store, why, whylen)) < 0)
			goto fail;
	}
	keystore_key_free(mk);
	mk = NULL;
	{
		struct index_txn *t;

		v->keygen_epoch = VOLKEYS_GEN_FILE;
		if (index_read_begin(v->ix, &t) == 0) {
			index_meta_get(t, "max_pack", &max_pack);
			if (v->read_only)
				index_meta_get(t, "epoch", &v->epoch);
			/* format 2 (read only) has no derived keys, whatever
			 * an interrupted upgrade left in the meta records */
			rc = v->conf.format >= 3 ? index_meta_get(t, "keygen_epoch", &v->keygen_epoch) : 0;
			index_read_end(t);
			if (rc < 0) {
				v->keygen_epoch = VOLKEYS_GEN_FILE;
				why_set(why, whylen, rc, "index of %s: no keygen_epoch record in a format-3 store: %s",
					store, strerror(-rc));
				goto fail;
			}
		}
	}
	if ((rc = blobstore_open(&v->bs, v->store, v->conf.uuid, v->conf.pack_size, max_pack)) < 0) {
		why_set(why, whylen, rc, "cannot open packs of %s: %s", store, strerror(-rc));
		goto fail;
	}
	close(sdfd);
	*out = v;
	return 0;
fail:
	if (sdfd >= 0)
		close(sdfd);
	keystore_key_free(mk);
	v->anchor_writable = 0;		/* a refused store keeps its anchor */
	vault_close(v);
	return rc;
}

void vault_close(struct vault *v)
{
	struct index_root_state root;
	int final = 0;

	if (!v)
		return;
	if (v->bs && !v->read_only)
		blobstore_sync(v->bs);
	blobstore_close(v->bs);
	/* the clean anchor names the index as closed: durable first */
	if (v->ix && v->anchor_writable && index_sync(v->ix) == 0 &&
	    index_root_durable(v->ix, &root) == 0)
		final = 1;
	index_close(v->ix);
	v->ix = NULL;
	if (final) {
		int rc = anchor_move_to(v, &root, 1);

		if (rc < 0)
			syslog(LOG_ERR, "cannot move the anchor of %s at close: %s", v->store, strerror(-rc));
	}
	volkeys_free(v->keys);
	volconf_release(&v->conf);
	if (v->lock_fd >= 0)
		close(v->lock_fd);
	free(v->anchor_file);
	free(v->keystore);
	free(v->store);
	free(v);
}

void vault_note_pid(struct vault *v)
{
	char buf[32];
	int n;

	if (v->read_only || v->lock_fd < 0)
		return;	/* nothing is written to a read-only store */
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(v->lock_fd, 0) == 0 && pwrite(v->lock_fd, buf, (size_t)n, 0) != n)
		syslog(LOG_WARNING, "cannot record the daemon pid in the lock file");
}

int vault_in_use(const char *store)
{
	char real[PATH_MAX];
	int sdfd, fd = -1, rc;

	if (!realpath(store, real))
		return -errno;
	if ((sdfd = safe_dir_open(real, NULL, 0)) < 0)
		return sdfd;
	rc = store_lock_open(sdfd, real, 1, &fd, NULL, 0);
	close(sdfd);
	if (rc < 0 || fd < 0)
		return rc;
	/* a daemon still finishing after umount(8) is waited for */
	rc = store_lock_take(fd, real, 0);
	if (rc == 0)
		flock(fd, LOCK_UN);
	close(fd);
	return rc == -EBUSY ? 1 : rc;
}
