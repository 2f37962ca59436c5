/*
 * keystore: the volume master key (MK), wrapped in one or more key slots
 * kept in KSDIR/<uuid-hex>.keys, a directory that never lives inside the
 * store.  Slot kinds: a passphrase (Argon2id) or a PKCS#11 token key
 * (CKM_AES_GCM).  The file is authenticated with a key derived from MK, so
 * an edited slot table is detected once any slot unlocks.
 *
 * Every function returns 0 on success or -errno, and on failure writes one
 * human-readable line (no secrets, no trailing newline) into why[whylen].
 */
#ifndef MEDVAULT_KEYSTORE_H
#define MEDVAULT_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#define KEYSTORE_MK_LEN 32
#define KEYSTORE_UUID_LEN 16

/*
 * Where a key comes from, as given on the command line.  None of these are
 * secrets: PINs and passphrases are read from the named files (or a prompt
 * when the file is "-" and stdin is a terminal).  Exactly one of
 * passphrase_file, pkcs11_module or pkcs11_uri is set.
 */
struct key_opts {
	const char *passphrase_file;
	const char *pkcs11_module;
	const char *pkcs11_token;	/* token label; NULL: first token with a key */
	const char *pkcs11_key;		/* key label; NULL: "medvault-kek" */
	const char *pin_file;
	const char *pkcs11_uri;		/* RFC 7512 */
	/* --insecure-perms: accept a keystore, keystore directory, PIN or
	 * passphrase file open to group or others (refused otherwise) */
	int insecure_perms;
};

/* true when opts names some key source */
int key_opts_given(const struct key_opts *opts);

/*
 * Create KSDIR/<uuid>.keys holding one slot made from opts that wraps mk.
 * KSDIR is created if missing.  -EEXIST if the file already exists,
 * -EACCES wrong PIN, -ENOENT missing passphrase/pin file or module, -EIO
 * token failure.
 */
int keystore_create(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		    const struct key_opts *opts, const uint8_t *mk,
		    char *why, size_t whylen);

/*
 * Unlock the master key with opts.  On success *mk_out points to
 * KEYSTORE_MK_LEN bytes of sodium_malloc'd, read-only memory; release it
 * with keystore_key_free().
 * -ENOENT no keystore file for this volume, -EACCES wrong passphrase/PIN or
 * no slot of that kind, -EBADMSG keystore corrupt, of another volume, or a
 * passphrase slot whose Argon2id cost is over the caps (checked before the
 * passphrase is read), -EPERM keystore, its directory, the PIN or
 * passphrase file open to others (without opts->insecure_perms),
 * -EKEYREJECTED the token key has a wrong attribute (why names it).
 */
int keystore_unlock(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		    const struct key_opts *opts, uint8_t **mk_out,
		    char *why, size_t whylen);

void keystore_key_free(uint8_t *mk);

/* ---------------------------------------------------------------------
 * Added by the keystore module (crypto/keystore.c, crypto/ks_opts.c).
 * --------------------------------------------------------------------- */

#define KEYSTORE_DEFAULT_KEY_LABEL "medvault-kek"
#define KEYSTORE_SLOTS_MAX 32

enum keystore_slot_kind {
	KEYSTORE_SLOT_PASSPHRASE = 1,	/* Argon2id + XChaCha20-Poly1305 */
	KEYSTORE_SLOT_PKCS11 = 2,	/* AES-256 key on a token, CKM_AES_GCM */
};

/*
 * Check that opts names exactly one usable key source (a PKCS#11 key needs a
 * PIN file, a URI must parse and carry module-path, no mixing), without
 * reading any file.  prefix ("" or "new-") only shapes the message.
 * -EINVAL (why set).
 */
int key_opts_check(const struct key_opts *opts, const char *prefix, char *why, size_t whylen);

struct keystore_slot_info {
	uint32_t id;
	int kind;			/* enum keystore_slot_kind */
	int64_t created;		/* unix seconds, UTC */
	/* KEYSTORE_SLOT_PASSPHRASE */
	uint64_t opslimit;
	uint64_t memlimit;
	/* KEYSTORE_SLOT_PKCS11 */
	char module[4096];
	char token[33];
	char key[256];
};

/*
 * Read the slot table without unlocking (so not yet authenticated by the
 * MK-keyed MAC; the unkeyed checksum is verified).  *slots is malloc'd:
 * free() it.  -ENOENT no keystore, -EBADMSG corrupt or another volume,
 * -EPROTONOSUPPORT newer format.
 */
int keystore_list(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		  struct keystore_slot_info **slots, size_t *nslots,
		  char *why, size_t whylen);

/*
 * Unlock with `unlock`, then add a slot made from `add`; *new_id (may be
 * NULL) receives its id.  A PKCS#11 key absent from the token is generated.
 * Errors of keystore_unlock, plus -ENOSPC (KEYSTORE_SLOTS_MAX reached).
 */
int keystore_slot_add(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		      const struct key_opts *unlock, const struct key_opts *add,
		      uint32_t *new_id, char *why, size_t whylen);

/*
 * Unlock with `unlock`, then delete slot id.  -ENOENT no such slot, -EPERM
 * it is the last slot (the volume would become unreadable).
 */
int keystore_slot_remove(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
			 const struct key_opts *unlock, uint32_t id,
			 char *why, size_t whylen);

/*
 * Key rotation: unlock with `unlock` and re-seal MK in that same slot (same
 * id, new creation time) under `repl` (a new HSM key label, or a new
 * passphrase).  The old HSM key is left on the token; the store is not
 * touched.  *slot_id (may be NULL) receives the slot's id.
 */
int keystore_rewrap(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		    const struct key_opts *unlock, const struct key_opts *repl,
		    uint32_t *slot_id, char *why, size_t whylen);

/* KSDIR/<uuid-hex>.keys into out (PATH_MAX is enough). */
void keystore_path(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		   char *out, size_t outlen);

/*
 * Argon2id cost for passphrase slots created from now on in this process;
 * 0 selects the default (opslimit 3, memlimit 128 MiB, ~0.3 s).  Tests use
 * the minimum to stay fast under valgrind.  Unlock uses the slot's cost.
 */
void keystore_pwhash_cost(unsigned long long opslimit, size_t memlimit);

/*
 * A small private data object on the token the key options name (their
 * token, else the one of the keystore's slot for their key), for the
 * rollback anchor's copy (store/anchor.h).  Each call opens the token and
 * logs in with the PIN file.  -ENOTSUP: opts name a passphrase, not a
 * token; get: -ENOENT no such object; token errors as keystore_unlock.
 */
int keystore_token_get(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		       const struct key_opts *opts, const char *label, uint8_t *buf, size_t cap,
		       size_t *len, char *why, size_t whylen);
int keystore_token_put(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		       const struct key_opts *opts, const char *label, const uint8_t *buf,
		       size_t len, char *why, size_t whylen);

/*
 * The access trail's checkpoint key (fs/audit): a 256-bit HMAC-SHA256 key
 * labelled "medvault-audit-<uuid>" on the token the key options name,
 * sensitive and non-extractable, so the trail's checkpoints can be sealed
 * by the token and not only by a key derived from MK.  The session stays
 * open until keystore_mac_close; keystore_mac may be called from one
 * thread at a time.  With create, the key is generated when absent.
 * -ENOTSUP opts name a passphrase, not a token; -ENOKEY no such key (and
 * not create); -EPERM an existing key is extractable or not sensitive;
 * token errors as keystore_unlock.
 */
#define KEYSTORE_MAC_LEN 32
struct keystore_mac;
int keystore_mac_open(const char *ksdir, const uint8_t uuid[KEYSTORE_UUID_LEN],
		      const struct key_opts *opts, int create, struct keystore_mac **out,
		      char *why, size_t whylen);
/* HMAC-SHA256 on the token; -EIO (and token errors) */
int keystore_mac(struct keystore_mac *m, const uint8_t *msg, size_t len,
		 uint8_t out[KEYSTORE_MAC_LEN], char *why, size_t whylen);
const char *keystore_mac_token(const struct keystore_mac *m);	/* token label */
const char *keystore_mac_label(const struct keystore_mac *m);	/* key label */
int keystore_mac_created(const struct keystore_mac *m);		/* made by this open */
void keystore_mac_close(struct keystore_mac *m);		/* m may be NULL */

#endif
