/*
 * keystore: KSDIR/<uuid-hex>.keys, the volume master key (MK) wrapped in
 * one or more slots.  docs/KEYS.md explains the hierarchy and operations.
 *
 * File format, version 1 (all integers big-endian):
 *
 *   off  len
 *   0    8    magic "MEDVKEYS"
 *   8    2    format version (1)
 *   10   16   volume uuid
 *   26   4    next slot id (ids are never reused)
 *   30   2    number of slots, 1..KEYSTORE_SLOTS_MAX
 *   32   ...  slots, one after another:
 *             4 slot id | 1 kind | 1 reserved (0) | 8 created (unix s, signed)
 *             | 2 P | P kind params | 2 W (48) | W wrapped MK
 *   E-64 32   MAC: HMAC-SHA-512/256 over [0, E-64), key =
 *             crypto_kdf_derive_from_key(32, id 1, ctx "mvkeysto", MK)
 *   E-32 32   checksum: BLAKE2b-256 (unkeyed) over [0, E-32)
 *
 *   kind 1, passphrase, P = 58:
 *             1 kdf (2 = Argon2id v1.3) | 8 opslimit | 8 memlimit | 16 salt
 *             | 1 aead (1 = XChaCha20-Poly1305) | 24 nonce
 *             wrapped = XChaCha20-Poly1305(KEK = Argon2id(passphrase), MK, AD)
 *   kind 2, PKCS#11:
 *             8 mechanism (CKM_AES_GCM = 0x1087) | 1 iv length (12) | 12 iv
 *             | 1 tag bits (128) | 2+n module path | 2+n token label
 *             | 2+n key label (CKA_LABEL)
 *             wrapped = C_Encrypt(AES-GCM, token key, MK, AD)
 *
 *   AD of a slot = bytes [0, 26) of the file (magic, version, uuid) || the
 *   slot's bytes from its id through the end of its params.  So a slot
 *   cannot be moved to another volume, renumbered or have its parameters
 *   changed without failing to unwrap.
 *
 * An unlock checks, in this order: permissions, checksum and structure,
 * the Argon2id cost of every passphrase slot against the caps, then runs
 * the KDF (or the token) and opens the slot (whose AD covers the header and
 * its params), and last the MAC.  Nothing keyed can come before the KDF:
 * its key would be a shortcut around Argon2 for a passphrase guesser.
 *
 * Why both a checksum and a MAC: the checksum tells "damaged file" apart
 * from "wrong passphrase" before any Argon2 run and lets `key list` read a
 * slot table it cannot authenticate; the MAC (checked once a slot unlocks)
 * is what detects deliberate edits: a slot removed, added or reordered.
 *
 * Every write goes to a temp file in KSDIR (mode 0600), is fsync'd, renamed
 * (or hard-linked, for create, so an existing keystore is never clobbered)
 * and the directory is fsync'd.  Writers hold flock(KSDIR) so two `key`
 * commands cannot lose each other's update.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ks_internal.h"
#include "util/byteorder.h"
#include "util/fileutil.h"
#include "util/safefile.h"

#define KS_MAGIC "MEDVKEYS"
#define KS_VERSION 1
#define KS_HEAD_LEN 32
#define KS_AD_HEAD_LEN 26
#define KS_TRAILER_LEN 64
#define KS_FILE_MAX (256 * 1024)
#define KS_PW_PARAMS_LEN 58
#define KS_KDF_ARGON2ID13 2
#define KS_AEAD_XCHACHA 1
#define KS_CKM_AES_GCM 0x1087ULL
#define KS_MAC_CTX "mvkeysto"
#define KS_AD_MAX (KS_AD_HEAD_LEN + 16 + 8 + 1 + 12 + 1 + 6 + KS_PATH_MAX + KS_TOKEN_MAX + KS_LABEL_MAX + 16)

struct ks_slot {
	uint32_t id;
	uint8_t kind;
	int64_t created;
	struct ks_pw_params pw;
	uint64_t mech;
	uint8_t iv[KS_P11_IV_LEN];
	char module[KS_PATH_MAX + 1];
	char token[KS_TOKEN_MAX + 1];
	char key[KS_LABEL_MAX + 1];
	uint8_t wrapped[KS_WRAPPED_LEN];
};

struct ks_file {
	uint8_t uuid[KEYSTORE_UUID_LEN];
	uint32_t next_id;
	size_t nslots;
	struct ks_slot slots[KEYSTORE_SLOTS_MAX];
	uint8_t *raw;		/* the bytes as read, for the MAC check */
	size_t rawlen;
	char path[4200];
};

/* ---------- byte buffers ---------- */

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void put(struct wbuf *b, const void *src, size_t n)
{
	if (b->err || n > b->cap - b->len) {
		b->err = 1;
		return;
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
}

static void put_be(struct wbuf *b, uint64_t v, int n)
{
	uint8_t t[8];

	be_put(t, v, (size_t)n);
	put(b, t, (size_t)n);
}

static void put_str(struct wbuf *b, const char *s)
{
	size_t n = strlen(s);

	put_be(b, n, 2);
	put(b, s, n);
}

struct rbuf {
	const uint8_t *p;
	size_t len, off;
	int err;
};

static const uint8_t *get(struct rbuf *r, size_t n)
{
	const uint8_t *q;

	if (r->err || n > r->len - r->off) {
		r->err = 1;
		return NULL;
	}
	q = r->p + r->off;
	r->off += n;
	return q;
}

static uint64_t get_be(struct rbuf *r, int n)
{
	const uint8_t *q = get(r, (size_t)n);

	return q ? be_get(q, (size_t)n) : 0;
}

static void get_bytes(struct rbuf *r, void *dst, size_t n)
{
	const uint8_t *q = get(r, n);

	if (q)
		memcpy(dst, q, n);
}

/* strings: no NUL or other control character inside (they end up on
 * terminals and in one-line errors, and the checksum is unkeyed), at most
 * max bytes; non-canonical input is an error */
static void get_str(struct rbuf *r, char *dst, size_t max, int allow_empty)
{
	size_t n = (size_t)get_be(r, 2);
	const uint8_t *q;

	if (r->err || n > max || (!n && !allow_empty)) {
		r->err = 1;
		return;
	}
	q = get(r, n);
	if (!q) {
		r->err = 1;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (q[i] < 0x20 || q[i] == 0x7f) {
			r->err = 1;
			return;
		}
	}
	memcpy(dst, q, n);
	dst[n] = '\0';
}

/* ---------- encoding ---------- */

static void head_encode(struct wbuf *b, const struct ks_file *f)
{
	put(b, KS_MAGIC, 8);
	put_be(b, KS_VERSION, 2);
	put(b, f->uuid, KEYSTORE_UUID_LEN);
	put_be(b, f->next_id, 4);
	put_be(b, f->nslots, 2);
}

/* The slot's bytes up to the end of its params: what the AD covers. */
static void slot_head_encode(struct wbuf *b, const struct ks_slot *s)
{
	put_be(b, s->id, 4);
	put_be(b, s->kind, 1);
	put_be(b, 0, 1);
	put_be(b, (uint64_t)s->created, 8);
	if (s->kind == KEYSTORE_SLOT_PASSPHRASE) {
		put_be(b, KS_PW_PARAMS_LEN, 2);
		put_be(b, KS_KDF_ARGON2ID13, 1);
		put_be(b, s->pw.opslimit, 8);
		put_be(b, s->pw.memlimit, 8);
		put(b, s->pw.salt, sizeof(s->pw.salt));
		put_be(b, KS_AEAD_XCHACHA, 1);
		put(b, s->pw.nonce, sizeof(s->pw.nonce));
	} else {
		size_t plen = 8 + 1 + KS_P11_IV_LEN + 1 + 2 + strlen(s->module) + 2 +
			      strlen(s->token) + 2 + strlen(s->key);

		put_be(b, plen, 2);
		put_be(b, s->mech, 8);
		put_be(b, KS_P11_IV_LEN, 1);
		put(b, s->iv, KS_P11_IV_LEN);
		put_be(b, KS_P11_TAG_BITS, 1);
		put_str(b, s->module);
		put_str(b, s->token);
		put_str(b, s->key);
	}
}

/* AD = magic || version || uuid || slot head */
static int slot_ad(const uint8_t uuid[KEYSTORE_UUID_LEN], const struct ks_slot *s,
		   uint8_t *ad, size_t *adlen)
{
	struct wbuf b = { ad, 0, KS_AD_MAX, 0 };

	put(&b, KS_MAGIC, 8);
	put_be(&b, KS_VERSION, 2);
	put(&b, uuid, KEYSTORE_UUID_LEN);
	slot_head_encode(&b, s);
	*adlen = b.len;
	return b.err ? -EOVERFLOW : 0;
}

static int mac_key(uint8_t key[32], const uint8_t *mk)
{
	return crypto_kdf_derive_from_key(key, 32, 1, KS_MAC_CTX, mk) == 0 ? 0 : -EIO;
}

/* Serialise f, authenticated with mk, into a malloc'd buffer. */
static int file_encode(const struct ks_file *f, const uint8_t *mk, uint8_t **out, size_t *outlen)
{
	struct wbuf b = { NULL, 0, KS_FILE_MAX, 0 };
	uint8_t *key = NULL;
	int rc = 0;

	b.p = malloc(b.cap);
	key = sodium_malloc(32);
	if (!b.p || !key) {
		rc = -ENOMEM;
		goto out;
	}
	head_encode(&b, f);
	for (size_t i = 0; i < f->nslots; i++) {
		slot_head_encode(&b, &f->slots[i]);
		put_be(&b, KS_WRAPPED_LEN, 2);
		put(&b, f->slots[i].wrapped, KS_WRAPPED_LEN);
	}
	if (b.err || b.cap - b.len < KS_TRAILER_LEN) {
		rc = -EOVERFLOW;
		goto out;
	}
	if ((rc = mac_key(key, mk)) < 0)
		goto out;
	crypto_auth_hmacsha512256(b.p + b.len, b.p, b.len, key);
	b.len += 32;
	crypto_generichash(b.p + b.len, 32, b.p, b.len, NULL, 0);
	b.len += 32;
	*out = b.p;
	*outlen = b.len;
	b.p = NULL;
out:
	free(b.p);
	if (key)
		sodium_free(key);
	return rc;
}

/* ---------- decoding ---------- */

static void slot_decode(struct rbuf *r, struct ks_slot *s)
{
	size_t plen, start;

	s->id = (uint32_t)get_be(r, 4);
	s->kind = (uint8_t)get_be(r, 1);
	if (get_be(r, 1) != 0)
		r->err = 1;
	s->created = (int64_t)get_be(r, 8);
	plen = (size_t)get_be(r, 2);
	start = r->off;
	if (s->kind == KEYSTORE_SLOT_PASSPHRASE) {
		if (plen != KS_PW_PARAMS_LEN || get_be(r, 1) != KS_KDF_ARGON2ID13)
			r->err = 1;
		s->pw.opslimit = get_be(r, 8);
		s->pw.memlimit = get_be(r, 8);
		get_bytes(r, s->pw.salt, sizeof(s->pw.salt));
		if (get_be(r, 1) != KS_AEAD_XCHACHA)
			r->err = 1;
		get_bytes(r, s->pw.nonce, sizeof(s->pw.nonce));
	} else if (s->kind == KEYSTORE_SLOT_PKCS11) {
		s->mech = get_be(r, 8);
		if (s->mech != KS_CKM_AES_GCM || get_be(r, 1) != KS_P11_IV_LEN)
			r->err = 1;
		get_bytes(r, s->iv, KS_P11_IV_LEN);
		if (get_be(r, 1) != KS_P11_TAG_BITS)
			r->err = 1;
		get_str(r, s->module, KS_PATH_MAX, 0);
		get_str(r, s->token, KS_TOKEN_MAX, 0);
		get_str(r, s->key, KS_LABEL_MAX, 0);
	} else {
		r->err = 1;
	}
	if (!r->err && r->off - start != plen)
		r->err = 1;
	if (get_be(r, 2) != KS_WRAPPED_LEN)
		r->err = 1;
	get_bytes(r, s->wrapped, KS_WRAPPED_LEN);
}

void keystore_path(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		   char *out, size_t outlen)
{
	char hex[2 * KEYSTORE_UUID_LEN + 1];

	sodium_bin2hex(hex, sizeof(hex), uuid, KEYSTORE_UUID_LEN);
	snprintf(out, outlen, "%s/%s.keys", ksdir, hex);
}

static void file_free(struct ks_file *f)
{
	if (!f)
		return;
	free(f->raw);
	free(f);
}

/* How a load treats a keystore file or directory open to others. */
enum ks_perms {
	PERMS_REFUSE,		/* unlock and edits: ks_perms_check's refusal */
	PERMS_ALLOW,		/* --insecure-perms */
	PERMS_WARN,		/* `key list`, `info`: nothing secret is used */
};

/* ks_perms_check / ks_dir_perms_check's verdict rc, as mode asks */
static int perms_verdict(int rc, enum ks_perms mode, char *why)
{
	if (rc != -EPERM || mode != PERMS_WARN)
		return rc;
	if (why) {
		fprintf(stderr, "medvault: warning: %s\n", why);
		why[0] = '\0';
	}
	return 0;
}

/*
 * Read KSDIR/<uuid>.keys (path, for messages): KSDIR's owner and mode
 * checked, the file reached without following a link and refused unless
 * a regular file of ours (a FIFO planted there is not waited on), then
 * its own mode as perms asks.
 */
static int file_read(const char *ksdir, const char *path, enum ks_perms perms, uint8_t **out,
		     size_t *outlen, char *why, size_t whylen)
{
	const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	char *buf = NULL;
	int dfd, fd, rc;

	if ((dfd = safe_private_dir_open(ksdir, why, whylen)) < 0)
		return dfd;
	fd = safe_open(dfd, name, O_RDONLY, 0, path, why, whylen);
	close(dfd);
	if (fd < 0)
		return fd;
	rc = ks_perms_check(fd, path, "keystore", perms == PERMS_ALLOW, why, whylen);
	if ((rc = perms_verdict(rc, perms, why)) == 0) {
		rc = fd_read_all(fd, KS_FILE_MAX, &buf, outlen);
		if (rc == -EINVAL || rc == -EFBIG)
			rc = why_set(why, whylen, -EBADMSG, "keystore %s is not a medvault keystore "
				     "(too large)", path);
		else if (rc < 0)
			why_set(why, whylen, rc, "cannot read keystore %s: %s", path, strerror(-rc));
		else
			*out = (uint8_t *)buf;
	}
	close(fd);
	return rc;
}

static int dir_check(const char *ksdir, enum ks_perms perms, char *why, size_t whylen)
{
	int fd, rc;

	fd = open(ksdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;	/* the keystore file's open says what is wrong */
	rc = ks_dir_perms_check(fd, ksdir, perms == PERMS_ALLOW, why, whylen);
	close(fd);
	return perms_verdict(rc, perms, why);
}

/*
 * Load and parse KSDIR/<uuid>.keys: its directory's and its own mode, the
 * checksum and the structure; not the MAC, which needs MK.
 */
static int file_load(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		     enum ks_perms perms, struct ks_file **out, char *why, size_t whylen)
{
	struct ks_file *f;
	struct rbuf r = { 0 };
	uint8_t sum[32];
	unsigned version;
	size_t n;
	int rc = 0;

	f = calloc(1, sizeof(*f));
	if (!f)
		return why_set(why, whylen, -ENOMEM, "out of memory");
	keystore_path(ksdir, uuid, f->path, sizeof(f->path));
	if ((rc = dir_check(ksdir, perms, why, whylen)) < 0)
		goto out;
	rc = file_read(ksdir, f->path, perms, &f->raw, &f->rawlen, why, whylen);
	if (rc == -ENOENT) {
		why_set(why, whylen, rc, "no keystore for this volume: %s does not exist "
			"(wrong --keystore?)", f->path);
		goto out;
	}
	if (rc < 0)
		goto out;
	if (f->rawlen < 8 || memcmp(f->raw, KS_MAGIC, 8)) {
		rc = why_set(why, whylen, -EBADMSG, "%s is not a medvault keystore", f->path);
		goto out;
	}
	crypto_generichash(sum, 32, f->raw, f->rawlen >= 32 ? f->rawlen - 32 : 0, NULL, 0);
	if (f->rawlen < KS_HEAD_LEN + KS_TRAILER_LEN ||
	    sodium_memcmp(sum, f->raw + f->rawlen - 32, 32) != 0) {
		rc = why_set(why, whylen, -EBADMSG, "keystore %s is corrupted or truncated "
			     "(checksum mismatch); restore it from the keystore backup", f->path);
		goto out;
	}
	r.p = f->raw;
	r.len = f->rawlen - KS_TRAILER_LEN;
	r.off = 8;
	version = (unsigned)get_be(&r, 2);
	if (version != KS_VERSION) {
		rc = why_set(why, whylen, version > KS_VERSION ? -EPROTONOSUPPORT : -EBADMSG,
			     "keystore %s has format version %u; this medvault reads %d",
			     f->path, version, KS_VERSION);
		goto out;
	}
	get_bytes(&r, f->uuid, KEYSTORE_UUID_LEN);
	if (sodium_memcmp(f->uuid, uuid, KEYSTORE_UUID_LEN) != 0) {
		char hex[2 * KEYSTORE_UUID_LEN + 1];

		sodium_bin2hex(hex, sizeof(hex), f->uuid, KEYSTORE_UUID_LEN);
		rc = why_set(why, whylen, -EBADMSG, "keystore %s belongs to another volume "
			     "(uuid %s)", f->path, hex);
		goto out;
	}
	f->next_id = (uint32_t)get_be(&r, 4);
	n = (size_t)get_be(&r, 2);
	if (n == 0 || n > KEYSTORE_SLOTS_MAX)
		r.err = 1;
	for (f->nslots = 0; !r.err && f->nslots < n; f->nslots++) {
		struct ks_slot *s = &f->slots[f->nslots];

		slot_decode(&r, s);
		if (s->id >= f->next_id)
			r.err = 1;
		for (size_t j = 0; j < f->nslots; j++)
			if (f->slots[j].id == s->id)
				r.err = 1;
	}
	if (r.err || r.off != r.len) {
		rc = why_set(why, whylen, -EBADMSG, "keystore %s is malformed", f->path);
		goto out;
	}
	*out = f;
	f = NULL;
out:
	file_free(f);
	return rc;
}

/* ---------- writing ---------- */

static int dir_prepare(const char *ksdir, int create, int insecure, int *dirfd,
		       char *why, size_t whylen)
{
	struct stat st;
	int fd, rc = 0;

	if (create && mkdir(ksdir, 0700) == 0) {
		chmod(ksdir, 0700);	/* whatever the umask said */
	} else if (create && errno != EEXIST) {
		rc = -errno;
		return why_set(why, whylen, rc, "cannot create keystore directory %s: %s",
			       ksdir, strerror(-rc));
	}
	if ((fd = safe_private_dir_open(ksdir, why, whylen)) < 0)
		return fd;
	if ((rc = ks_dir_perms_check(fd, ksdir, insecure, why, whylen)) < 0) {
		close(fd);
		return rc;
	}
	if (!insecure && fstat(fd, &st) == 0 && (st.st_mode & 0077))
		fprintf(stderr, "medvault: warning: keystore directory %s is accessible to "
			"other users (mode %03o); chmod 700 it\n", ksdir, st.st_mode & 0777);
	/* Serialise writers: two `key add` at once must not lose a slot. */
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			rc = -errno;
			close(fd);
			return why_set(why, whylen, rc, "cannot lock %s: %s", ksdir, strerror(-rc));
		}
	}
	*dirfd = fd;
	return 0;
}

/*
 * Put buf at path atomically.  create: never replace an existing file
 * (link(2) fails with EEXIST); else rename over it.
 */
static int file_write(int dirfd, const char *ksdir, const char *path, const uint8_t *buf,
		      size_t len, int create, char *why, size_t whylen)
{
	char tmp[4300];
	int fd = -1, rc = 0, have_tmp = 0;

	snprintf(tmp, sizeof(tmp), "%s/.keystore.tmp.XXXXXX", ksdir);
	fd = mkostemp(tmp, O_CLOEXEC);	/* mode 0600 */
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	have_tmp = 1;
	if (fchmod(fd, 0600) < 0 || (rc = write_full(fd, buf, len)) < 0 || fsync(fd) < 0) {
		rc = rc ? rc : -errno;
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = -errno;
		goto out;
	}
	fd = -1;
	if (create) {
		if (link(tmp, path) < 0) {
			rc = -errno;
			goto out;
		}
		unlink(tmp);
	} else if (rename(tmp, path) < 0) {
		rc = -errno;
		goto out;
	}
	have_tmp = 0;
	if (fsync(dirfd) < 0)
		rc = -errno;
out:
	if (fd >= 0)
		close(fd);
	if (have_tmp)
		unlink(tmp);	/* nothing half-written is left behind */
	if (rc == -EEXIST)
		why_set(why, whylen, rc, "keystore %s already exists", path);
	else if (rc < 0)
		why_set(why, whylen, rc, "cannot write keystore %s: %s", path, strerror(-rc));
	return rc;
}

static int file_store(const struct ks_file *f, int dirfd, const char *ksdir, const uint8_t *mk,
		      int create, char *why, size_t whylen)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	rc = file_encode(f, mk, &buf, &len);
	if (rc < 0) {
		why_set(why, whylen, rc, "cannot encode keystore: %s", strerror(-rc));
		goto out;
	}
	rc = file_write(dirfd, ksdir, f->path, buf, len, create, why, whylen);
out:
	free(buf);
	return rc;
}

/* ---------- slots ---------- */

static int pin_flags(const struct ks_source *src)
{
	return src->insecure_perms ? KS_SECRET_ANY_PERMS : 0;
}

/*
 * Every passphrase slot's Argon2id cost within the caps, before the
 * passphrase is read or any KDF runs: nothing can authenticate the cost
 * before Argon2 has run with it (see ks_passphrase.c).
 */
static int pw_costs_check(const struct ks_file *f, char *why, size_t whylen)
{
	char what[160];
	int rc;

	for (size_t i = 0; i < f->nslots; i++) {
		const struct ks_slot *s = &f->slots[i];

		if (s->kind != KEYSTORE_SLOT_PASSPHRASE)
			continue;
		if ((rc = ks_pw_params_check(&s->pw, what, sizeof(what))) < 0)
			return why_set(why, whylen, rc, "keystore %s: slot %u: %s; refused before "
				       "running it (edited? restore the keystore from its backup)",
				       f->path, s->id, what);
	}
	return 0;
}

/* Fill s (id and created already set) with MK wrapped under src. */
static int slot_seal(const struct ks_file *f, struct ks_slot *s, const struct ks_source *src,
		     const uint8_t *mk, char *why, size_t whylen)
{
	struct ks_p11 *p = NULL;
	uint8_t *ad = NULL, *check = NULL;
	char *pw = NULL;
	size_t adlen = 0, pwlen = 0;
	unsigned long key = 0;
	int rc = 0;

	ad = malloc(KS_AD_MAX);
	if (!ad) {
		rc = why_set(why, whylen, -ENOMEM, "out of memory");
		goto out;
	}
	s->kind = (uint8_t)src->kind;
	if (src->kind == KEYSTORE_SLOT_PASSPHRASE) {
		rc = ks_secret_read(src->passphrase_file, "new passphrase", KS_SECRET_CONFIRM |
				    (src->insecure_perms ? KS_SECRET_ANY_PERMS : 0), &pw, &pwlen,
				    why, whylen);
		if (rc < 0)
			goto out;
		ks_pw_params_new(&s->pw);
		/* a slot this machine could not open again is not written */
		if ((rc = ks_pw_params_check(&s->pw, why, whylen)) < 0)
			goto out;
		if ((rc = slot_ad(f->uuid, s, ad, &adlen)) < 0)
			goto out;
		rc = ks_pw_wrap(pw, pwlen, &s->pw, ad, adlen, mk, s->wrapped);
		if (rc < 0)
			why_set(why, whylen, rc, "Argon2id failed: %s", strerror(-rc));
		goto out;
	}
	rc = ks_p11_open(src->module, src->token, src->pin_file, pin_flags(src), &p, why, whylen);
	if (rc < 0)
		goto out;
	if ((rc = ks_p11_key_find(p, src->key, 1, &key, why, whylen)) < 0)
		goto out;
	s->mech = KS_CKM_AES_GCM;
	randombytes_buf(s->iv, sizeof(s->iv));
	snprintf(s->module, sizeof(s->module), "%s", src->module);
	snprintf(s->token, sizeof(s->token), "%s", ks_p11_token_label(p));
	snprintf(s->key, sizeof(s->key), "%s", src->key);
	if ((rc = slot_ad(f->uuid, s, ad, &adlen)) < 0)
		goto out;
	if ((rc = ks_p11_wrap(p, key, s->iv, ad, adlen, mk, s->wrapped, why, whylen)) < 0)
		goto out;
	/*
	 * Open what we just sealed: a module that lays out CK_GCM_PARAMS
	 * differently (ulIvBits) or drops the AAD would otherwise leave a slot
	 * nobody can open, found out only on the day it is needed.
	 */
	check = sodium_malloc(KEYSTORE_MK_LEN);
	if (!check) {
		rc = why_set(why, whylen, -ENOMEM, "out of memory");
		goto out;
	}
	rc = ks_p11_unwrap(p, key, s->iv, ad, adlen, s->wrapped, check, why, whylen);
	if (rc == 0 && sodium_memcmp(check, mk, KEYSTORE_MK_LEN) != 0)
		rc = -EIO;
	if (rc < 0)
		why_set(why, whylen, -EIO, "token '%s': AES-GCM does not round-trip; this "
			"module cannot hold medvault keys", s->token);
	rc = rc < 0 ? -EIO : 0;
out:
	if (check)
		sodium_free(check);
	ks_p11_close(p);
	ks_secret_free(pw);
	free(ad);
	return rc;
}

static void kinds_summary(const struct ks_file *f, char *out, size_t outlen)
{
	size_t off = 0;

	out[0] = '\0';
	for (size_t i = 0; i < f->nslots && off < outlen; i++) {
		const struct ks_slot *s = &f->slots[i];
		int n;

		if (s->kind == KEYSTORE_SLOT_PASSPHRASE)
			n = snprintf(out + off, outlen - off, "%s%u:passphrase", i ? ", " : "",
				     s->id);
		else
			n = snprintf(out + off, outlen - off, "%s%u:pkcs11 %s/%s", i ? ", " : "",
				     s->id, s->token, s->key);
		if (n < 0)
			break;
		off += (size_t)n;
	}
}

/*
 * Find the slot src opens and unwrap MK into mk.  *which = slot index.
 * -EACCES no slot of that kind or wrong secret, token errors as ks_p11_*.
 */
static int slot_open(const struct ks_file *f, const struct ks_source *src, uint8_t *mk,
		     size_t *which, char *why, size_t whylen)
{
	struct ks_p11 *p = NULL;
	uint8_t *ad = NULL;
	char *pw = NULL, kinds[512];
	const char *token = src->token;
	size_t adlen, pwlen = 0, i, tried = 0;
	unsigned long key = 0;
	int rc = -EACCES;

	kinds_summary(f, kinds, sizeof(kinds));
	if (src->kind == KEYSTORE_SLOT_PASSPHRASE && (rc = pw_costs_check(f, why, whylen)) < 0)
		goto out;
	ad = malloc(KS_AD_MAX);
	if (!ad) {
		rc = why_set(why, whylen, -ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < f->nslots; i++) {
		const struct ks_slot *s = &f->slots[i];

		if (s->kind != src->kind)
			continue;
		if (s->kind == KEYSTORE_SLOT_PKCS11 && strcmp(s->key, src->key))
			continue;
		if (s->kind == KEYSTORE_SLOT_PASSPHRASE) {
			tried++;
			if (!pw && (rc = ks_secret_read(src->passphrase_file, "passphrase",
							pin_flags(src), &pw, &pwlen, why, whylen)) < 0)
				goto out;
			if ((rc = slot_ad(f->uuid, s, ad, &adlen)) < 0)
				goto out;
			rc = ks_pw_unwrap(pw, pwlen, &s->pw, ad, adlen, s->wrapped, mk);
			if (rc == -EBADMSG) {
				why_set(why, whylen, rc, "keystore %s: slot %u has an unacceptable "
					"Argon2id cost (edited?)", f->path, s->id);
				goto out;
			}
			if (rc == -ENOMEM) {
				why_set(why, whylen, rc, "Argon2id: out of memory (slot %u needs "
					"%llu MiB)", s->id, (unsigned long long)(s->pw.memlimit >> 20));
				goto out;
			}
		} else {
			if (!p) {
				/* One token per unlock: the named one, else this slot's. */
				token = token ? token : s->token;
				rc = ks_p11_open(src->module, token, src->pin_file, pin_flags(src), &p,
						 why, whylen);
				if (rc < 0)
					goto out;
				rc = ks_p11_key_find(p, src->key, 0, &key, why, whylen);
				if (rc < 0)
					goto out;
			}
			if (strcmp(s->token, ks_p11_token_label(p)))
				continue;
			tried++;
			if ((rc = slot_ad(f->uuid, s, ad, &adlen)) < 0)
				goto out;
			rc = ks_p11_unwrap(p, key, s->iv, ad, adlen, s->wrapped, mk, why, whylen);
			if (rc < 0 && rc != -EACCES)
				goto out;
		}
		if (rc == 0) {
			*which = i;
			goto out;
		}
	}
	rc = -EACCES;
	if (!tried && src->kind == KEYSTORE_SLOT_PASSPHRASE)
		why_set(why, whylen, rc, "keystore %s has no passphrase slot (slots: %s)",
			f->path, kinds);
	else if (!tried)
		why_set(why, whylen, rc, "keystore %s has no slot for PKCS#11 key '%s'%s%s%s "
			"(slots: %s)", f->path, src->key, token ? " on token '" : "",
			token ? token : "", token ? "'" : "", kinds);
	else if (src->kind == KEYSTORE_SLOT_PASSPHRASE)
		why_set(why, whylen, rc, "wrong passphrase for keystore %s", f->path);
	/* else: ks_p11_unwrap said why */
out:
	ks_p11_close(p);
	ks_secret_free(pw);
	free(ad);
	return rc;
}

/*
 * Load the keystore and unlock MK with opts.  *mk_out: sodium_malloc'd,
 * read-only.  *f_out (may be NULL) keeps the parsed file for edits,
 * *which the index of the slot that opened.
 */
static int unlock_file(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		       const struct key_opts *opts, struct ks_file **f_out, uint8_t **mk_out,
		       size_t *which, char *why, size_t whylen)
{
	struct ks_source src = { 0 };
	struct ks_file *f = NULL;
	uint8_t *mk = NULL, *key = NULL, mac[32];
	size_t idx = 0;
	int rc;

	if ((rc = ks_source_resolve(opts, &src, why, whylen)) < 0)
		goto out;
	if ((rc = file_load(ksdir, uuid, src.insecure_perms ? PERMS_ALLOW : PERMS_REFUSE, &f,
			    why, whylen)) < 0)
		goto out;
	mk = sodium_malloc(KEYSTORE_MK_LEN);
	key = sodium_malloc(32);
	if (!mk || !key) {
		rc = why_set(why, whylen, -ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = slot_open(f, &src, mk, &idx, why, whylen)) < 0)
		goto out;
	if ((rc = mac_key(key, mk)) < 0) {
		why_set(why, whylen, rc, "key derivation failed");
		goto out;
	}
	crypto_auth_hmacsha512256(mac, f->raw, f->rawlen - KS_TRAILER_LEN, key);
	if (sodium_memcmp(mac, f->raw + f->rawlen - KS_TRAILER_LEN, 32) != 0) {
		rc = why_set(why, whylen, -EBADMSG, "keystore %s fails authentication: its slot "
			     "table was edited; restore it from the keystore backup", f->path);
		goto out;
	}
	sodium_mprotect_readonly(mk);
	*mk_out = mk;
	mk = NULL;
	if (which)
		*which = idx;
	if (f_out) {
		*f_out = f;
		f = NULL;
	}
out:
	if (mk)
		sodium_free(mk);
	if (key)
		sodium_free(key);
	file_free(f);
	ks_source_release(&src);
	return rc;
}

/* ---------- public API ---------- */

int keystore_create(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		    const struct key_opts *opts, const uint8_t *mk,
		    char *why, size_t whylen)
{
	struct ks_source src = { 0 };
	struct ks_file *f = NULL;
	int dirfd = -1, rc;

	if (sodium_init() < 0) {
		rc = why_set(why, whylen, -EIO, "libsodium failed to initialise");
		goto out;
	}
	if ((rc = ks_source_resolve(opts, &src, why, whylen)) < 0)
		goto out;
	f = calloc(1, sizeof(*f));
	if (!f) {
		rc = why_set(why, whylen, -ENOMEM, "out of memory");
		goto out;
	}
	memcpy(f->uuid, uuid, KEYSTORE_UUID_LEN);
	keystore_path(ksdir, uuid, f->path, sizeof(f->path));
	if ((rc = dir_prepare(ksdir, 1, opts->insecure_perms, &dirfd, why, whylen)) < 0)
		goto out;
	/* Checked early to spare a prompt; link() in file_write is the real guard. */
	if (access(f->path, F_OK) == 0) {
		rc = why_set(why, whylen, -EEXIST, "keystore %s already exists", f->path);
		goto out;
	}
	f->slots[0].id = 1;
	f->slots[0].created = (int64_t)time(NULL);
	f->nslots = 1;
	f->next_id = 2;
	if ((rc = slot_seal(f, &f->slots[0], &src, mk, why, whylen)) < 0)
		goto out;
	rc = file_store(f, dirfd, ksdir, mk, 1, why, whylen);
out:
	if (dirfd >= 0)
		close(dirfd);	/* drops the lock */
	file_free(f);
	ks_source_release(&src);
	return rc;
}

int keystore_unlock(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		    const struct key_opts *opts, uint8_t **mk_out,
		    char *why, size_t whylen)
{
	if (sodium_init() < 0)
		return why_set(why, whylen, -EIO, "libsodium failed to initialise");
	return unlock_file(ksdir, uuid, opts, NULL, mk_out, NULL, why, whylen);
}

/*
 * Open the token opts name (their token, else the one of the keystore's
 * slot for their key) for a data object: *p set, or -ENOTSUP when opts
 * name a passphrase, not a token.
 */
static int token_open(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		      const struct key_opts *opts, struct ks_p11 **p, char *why, size_t whylen)
{
	struct ks_source src = { 0 };
	struct ks_file *f = NULL;
	const char *token;
	int rc;

	*p = NULL;
	if ((rc = ks_source_resolve(opts, &src, why, whylen)) < 0)
		return rc;
	if (src.kind != KEYSTORE_SLOT_PKCS11) {
		ks_source_release(&src);
		return -ENOTSUP;
	}
	token = src.token;
	if (!token && file_load(ksdir, uuid, src.insecure_perms ? PERMS_ALLOW : PERMS_REFUSE, &f,
				why, whylen) == 0)
		for (size_t i = 0; i < f->nslots && !token; i++)
			if (f->slots[i].kind == KEYSTORE_SLOT_PKCS11 && !strcmp(f->slots[i].key, src.key))
				token = f->slots[i].token;
	rc = ks_p11_open(src.module, token, src.pin_file, pin_flags(&src), p, why, whylen);
	file_free(f);
	ks_source_release(&src);
	return rc;
}

int keystore_token_get(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		       const struct key_opts *opts, const char *label, uint8_t *buf, size_t cap,
		       size_t *len, char *why, size_t whylen)
{
	struct ks_p11 *p;
	int rc = token_open(ksdir, uuid, opts, &p, why, whylen);

	if (rc < 0)
		return rc;
	rc = ks_p11_data_get(p, label, buf, cap, len, why, whylen);
	ks_p11_close(p);
	return rc;
}

int keystore_token_put(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		       const struct key_opts *opts, const char *label, const uint8_t *buf,
		       size_t len, char *why, size_t whylen)
{
	struct ks_p11 *p;
	int rc = token_open(ksdir, uuid, opts, &p, why, whylen);

	if (rc < 0)
		return rc;
	rc = ks_p11_data_put(p, label, buf, len, why, whylen);
	ks_p11_close(p);
	return rc;
}

void keystore_key_free(uint8_t *mk)
{
	if (mk)
		sodium_free(mk);
}

int keystore_list(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		  struct keystore_slot_info **slots, size_t *nslots,
		  char *why, size_t whylen)
{
	struct keystore_slot_info *info = NULL;
	struct ks_file *f = NULL;
	int rc;

	if (sodium_init() < 0)
		return why_set(why, whylen, -EIO, "libsodium failed to initialise");
	if ((rc = file_load(ksdir, uuid, PERMS_WARN, &f, why, whylen)) < 0)
		goto out;
	info = calloc(f->nslots, sizeof(*info));
	if (!info) {
		rc = why_set(why, whylen, -ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < f->nslots; i++) {
		const struct ks_slot *s = &f->slots[i];

		info[i].id = s->id;
		info[i].kind = s->kind;
		info[i].created = s->created;
		info[i].opslimit = s->pw.opslimit;
		info[i].memlimit = s->pw.memlimit;
		snprintf(info[i].module, sizeof(info[i].module), "%s", s->module);
		snprintf(info[i].token, sizeof(info[i].token), "%s", s->token);
		snprintf(info[i].key, sizeof(info[i].key), "%s", s->key);
	}
	*slots = info;
	*nslots = f->nslots;
	info = NULL;
out:
	free(info);
	file_free(f);
	return rc;
}

/* What add, remove and rewrap share: lock, unlock, edit, store. */
enum edit_op { EDIT_ADD, EDIT_REMOVE, EDIT_REWRAP };

static int keystore_edit(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
			 const struct key_opts *unlock, enum edit_op op,
			 const struct key_opts *nopts, uint32_t *id, char *why, size_t whylen)
{
	struct ks_source nsrc = { 0 };
	struct ks_file *f = NULL;
	struct ks_slot *s = NULL;
	uint8_t *mk = NULL;
	size_t which = 0, i;
	int dirfd = -1, rc;

	if (sodium_init() < 0) {
		rc = why_set(why, whylen, -EIO, "libsodium failed to initialise");
		goto out;
	}
	/* Check the new key's options before asking for any secret. */
	if (nopts && (rc = ks_source_resolve(nopts, &nsrc, why, whylen)) < 0)
		goto out;
	nsrc.insecure_perms |= unlock->insecure_perms;
	if ((rc = dir_prepare(ksdir, 0, unlock->insecure_perms, &dirfd, why, whylen)) < 0)
		goto out;
	if ((rc = unlock_file(ksdir, uuid, unlock, &f, &mk, &which, why, whylen)) < 0)
		goto out;
	switch (op) {
	case EDIT_ADD:
		if (f->nslots >= KEYSTORE_SLOTS_MAX || f->next_id == UINT32_MAX) {
			rc = why_set(why, whylen, -ENOSPC, "keystore %s is full (%d slots)",
				     f->path, KEYSTORE_SLOTS_MAX);
			goto out;
		}
		s = calloc(1, sizeof(*s));
		if (!s) {
			rc = why_set(why, whylen, -ENOMEM, "out of memory");
			goto out;
		}
		s->id = f->next_id;
		s->created = (int64_t)time(NULL);
		if ((rc = slot_seal(f, s, &nsrc, mk, why, whylen)) < 0)
			goto out;
		f->slots[f->nslots++] = *s;
		f->next_id++;
		if (id)
			*id = s->id;
		break;
	case EDIT_REMOVE:
		for (i = 0; i < f->nslots && f->slots[i].id != *id; i++)
			;
		if (i == f->nslots) {
			rc = why_set(why, whylen, -ENOENT, "keystore %s has no slot %u", f->path, *id);
			goto out;
		}
		if (f->nslots == 1) {
			rc = why_set(why, whylen, -EPERM, "refusing to remove slot %u: it is the "
				     "last one and the volume would become unreadable", *id);
			goto out;
		}
		memmove(&f->slots[i], &f->slots[i + 1], (f->nslots - i - 1) * sizeof(f->slots[0]));
		f->nslots--;
		break;
	case EDIT_REWRAP:
		s = calloc(1, sizeof(*s));
		if (!s) {
			rc = why_set(why, whylen, -ENOMEM, "out of memory");
			goto out;
		}
		s->id = f->slots[which].id;
		s->created = (int64_t)time(NULL);
		if ((rc = slot_seal(f, s, &nsrc, mk, why, whylen)) < 0)
			goto out;
		f->slots[which] = *s;
		if (id)
			*id = s->id;
		break;
	}
	rc = file_store(f, dirfd, ksdir, mk, 0, why, whylen);
out:
	free(s);
	keystore_key_free(mk);
	file_free(f);
	if (dirfd >= 0)
		close(dirfd);
	ks_source_release(&nsrc);
	return rc;
}

int keystore_slot_add(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		      const struct key_opts *unlock, const struct key_opts *add,
		      uint32_t *new_id, char *why, size_t whylen)
{
	return keystore_edit(ksdir, uuid, unlock, EDIT_ADD, add, new_id, why, whylen);
}

int keystore_slot_remove(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
			 const struct key_opts *unlock, uint32_t id,
			 char *why, size_t whylen)
{
	return keystore_edit(ksdir, uuid, unlock, EDIT_REMOVE, NULL, &id, why, whylen);
}

int keystore_rewrap(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		    const struct key_opts *unlock, const struct key_opts *repl,
		    uint32_t *slot_id, char *why, size_t whylen)
{
	return keystore_edit(ksdir, uuid, unlock, EDIT_REWRAP, repl, slot_id, why, whylen);
}

/* ---------- the access trail's key on the token ---------- */

struct keystore_mac {
	struct ks_p11 *p;
	unsigned long key;
	int created;		/* generated by this open */
	char label[64];
};

int keystore_mac_open(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		      const struct key_opts *opts, int create, struct keystore_mac **out,
		      char *why, size_t whylen)
{
	struct keystore_mac *m;
	int n, rc;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return why_set(why, whylen, -ENOMEM, "out of memory");
	n = snprintf(m->label, sizeof(m->label), "medvault-audit-");
	for (int i = 0; i < KEYSTORE_UUID_LEN; i++)
		n += snprintf(m->label + n, sizeof(m->label) - (size_t)n, "%02x", uuid[i]);
	if ((rc = token_open(ksdir, uuid, opts, &m->p, why, whylen)) < 0)
		goto out;
	rc = ks_p11_mac_key_find(m->p, m->label, 0, &m->key, why, whylen);
	if (rc == -ENOKEY && create) {
		rc = ks_p11_mac_key_find(m->p, m->label, 1, &m->key, why, whylen);
		m->created = rc == 0;
	}
	if (rc < 0)
		goto out;
	*out = m;
	m = NULL;
out:
	keystore_mac_close(m);
	return rc;
}

int keystore_mac(struct keystore_mac *m, const uint8_t *msg, size_t len,
		 uint8_t out[KEYSTORE_MAC_LEN], char *why, size_t whylen)
{
	return ks_p11_hmac(m->p, m->key, msg, len, out, why, whylen);
}

const char *keystore_mac_token(const struct keystore_mac *m)
{
	return ks_p11_token_label(m->p);
}

int keystore_mac_created(const struct keystore_mac *m)
{
	return m->created;
}

const char *keystore_mac_label(const struct keystore_mac *m)
{
	return m->label;
}

void keystore_mac_close(struct keystore_mac *m)
{
	if (!m)
		return;
	ks_p11_close(m->p);
	free(m);
}
