/*
 * ks_internal: what the keystore's pieces (keystore.c, ks_passphrase.c,
 * ks_pkcs11.c, pkcs11_uri.c, ks_secret.c, ks_opts.c) share.  Not a public
 * header: only crypto/ and the keystore unit tests include it.
 */
#ifndef MEDVAULT_KS_INTERNAL_H
#define MEDVAULT_KS_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/keystore.h"
#include "util/why.h"

#define KS_SECRET_MAX 1024	/* longest passphrase or PIN, bytes */
#define KS_WRAPPED_LEN 48	/* MK (32) + AEAD tag (16) */
#define KS_P11_IV_LEN 12
#define KS_P11_TAG_BITS 128
#define KS_LABEL_MAX 255	/* CKA_LABEL we accept */
#define KS_TOKEN_MAX 32		/* CK_TOKEN_INFO.label is 32 blank-padded bytes */
#define KS_PATH_MAX 4095

/*
 * A key source after the command line and any pkcs11: URI are merged.
 * Owns its strings.  kind is KEYSTORE_SLOT_PASSPHRASE or _PKCS11.
 */
struct ks_source {
	int kind;
	char *passphrase_file;
	char *module;
	char *token;		/* NULL: take it from the slot, else first token */
	char *key;		/* never NULL once resolved */
	char *pin_file;
	int insecure_perms;	/* key_opts.insecure_perms */
};

/* -EINVAL (why set) for no source, two sources or a bad URI */
int ks_source_resolve(const struct key_opts *opts, struct ks_source *src,
		      char *why, size_t whylen);
void ks_source_release(struct ks_source *src);

/*
 * Refuse (-EPERM, why set) a file whose mode lets group or others in at
 * all (mode & 077), as ssh does with private keys: a readable keystore or
 * passphrase file is an offline guessing attack waiting to happen, a
 * readable PIN file hands out the HSM.  what names it ("keystore",
 * "PIN file"...).  With allow, the mode is not looked at.  -errno of fstat.
 */
int ks_perms_check(int fd, const char *path, const char *what, int allow,
		   char *why, size_t whylen);

/* Refuse (-EPERM) a keystore directory that group or others can write to
 * (they could swap the keystore, or plant files in it), unless allow. */
int ks_dir_perms_check(int dirfd, const char *dir, int allow, char *why, size_t whylen);

/* the hint every permission refusal ends with */
#define KS_PERMS_HINT "or pass --insecure-perms to accept it"

#define KS_SECRET_CONFIRM 1	/* prompt twice (a new passphrase) */
#define KS_SECRET_ANY_PERMS 2	/* --insecure-perms: skip ks_perms_check */

/*
 * Read a passphrase or PIN from path, or from a no-echo prompt when path is
 * "-" and stdin is a terminal (asked twice with KS_SECRET_CONFIRM).  A file
 * must pass ks_perms_check unless KS_SECRET_ANY_PERMS.  One trailing
 * newline is stripped.  *out is sodium_malloc'd and NUL-terminated;
 * release with ks_secret_free.  -ENOENT/-EACCES (file), -EPERM (file open
 * to group or others), -EINVAL (empty, "-" without a terminal, mismatch),
 * -EFBIG (longer than KS_SECRET_MAX).
 */
int ks_secret_read(const char *path, const char *what, int flags,
		   char **out, size_t *len, char *why, size_t whylen);
void ks_secret_free(char *s);

/* --- passphrase slots (ks_passphrase.c) --- */

struct ks_pw_params {
	uint64_t opslimit;
	uint64_t memlimit;
	uint8_t salt[16];
	uint8_t nonce[24];
};

/* Fresh salt and nonce, and the current cost settings. */
void ks_pw_params_new(struct ks_pw_params *pp);
/*
 * -EBADMSG when the recorded cost is outside what we accept (why names the
 * parameter, its value and the bound).  Cheap: callers run it on every
 * passphrase slot before reading the passphrase or running Argon2.
 */
int ks_pw_params_check(const struct ks_pw_params *pp, char *why, size_t whylen);
/* the memlimit cap on this machine, bytes */
unsigned long long ks_pw_mem_cap(void);
/* tests: pretend the machine has this much RAM (0: ask sysconf) */
void ks_pw_test_ram(unsigned long long bytes);

/* wrapped = XChaCha20-Poly1305(Argon2id(pw), mk, ad).  -ENOMEM */
int ks_pw_wrap(const char *pw, size_t pwlen, const struct ks_pw_params *pp,
	       const uint8_t *ad, size_t adlen, const uint8_t *mk,
	       uint8_t wrapped[KS_WRAPPED_LEN]);
/* -EACCES when the tag does not verify (wrong passphrase), -ENOMEM */
int ks_pw_unwrap(const char *pw, size_t pwlen, const struct ks_pw_params *pp,
		 const uint8_t *ad, size_t adlen,
		 const uint8_t wrapped[KS_WRAPPED_LEN], uint8_t *mk);

/* --- PKCS#11 slots (ks_pkcs11.c) --- */

struct ks_p11;

/*
 * Load module, initialise it, find the token labelled token (NULL: the
 * first initialised token), open a session and log in with the PIN read
 * from pin_file (pin_flags: ks_secret_read's KS_SECRET_ANY_PERMS or 0).
 * -ENOENT module or PIN file missing, -ELIBBAD not a PKCS#11 module,
 * -ENODEV no such token, -EACCES wrong PIN, -EPERM PIN locked or PIN file
 * open to others, -EIO other.
 */
int ks_p11_open(const char *module, const char *token, const char *pin_file, int pin_flags,
		struct ks_p11 **out, char *why, size_t whylen);
/* logs out, closes the session, finalizes and unloads the module */
void ks_p11_close(struct ks_p11 *p);
/* the label of the token actually opened (blank padding removed) */
const char *ks_p11_token_label(const struct ks_p11 *p);

/*
 * Find the AES secret key labelled label.  With create, generate it
 * (sensitive, non-extractable, on the token) when absent.  A key found (or
 * made) is used only if CKA_TOKEN and CKA_SENSITIVE are true,
 * CKA_EXTRACTABLE false and CKA_ENCRYPT and CKA_DECRYPT true: one that
 * could leave the token, or vanish with the session, would not keep MK
 * where docs/KEYS.md says it is.
 * -ENOKEY absent, -EKEYREJECTED an attribute is wrong (why names it),
 * -ENOTUNIQ two keys with that label, -EIO token failure.
 */
int ks_p11_key_find(struct ks_p11 *p, const char *label, int create,
		    unsigned long *handle, char *why, size_t whylen);

/* C_Encrypt/C_Decrypt with CKM_AES_GCM, 96-bit iv, 128-bit tag, ad non-empty. */
int ks_p11_wrap(struct ks_p11 *p, unsigned long key, const uint8_t iv[KS_P11_IV_LEN],
		const uint8_t *ad, size_t adlen, const uint8_t *mk,
		uint8_t wrapped[KS_WRAPPED_LEN], char *why, size_t whylen);
/* -EACCES when the token refuses the tag (other key, or slot damaged) */
int ks_p11_unwrap(struct ks_p11 *p, unsigned long key, const uint8_t iv[KS_P11_IV_LEN],
		  const uint8_t *ad, size_t adlen,
		  const uint8_t wrapped[KS_WRAPPED_LEN], uint8_t *mk,
		  char *why, size_t whylen);

/* A private data object (CKO_DATA) labelled label: read into buf (-ENOENT
 * none, -EBADMSG larger than cap), or written (created, or its value
 * replaced in place). */
int ks_p11_data_get(struct ks_p11 *p, const char *label, uint8_t *buf, size_t cap, size_t *len,
		    char *why, size_t whylen);
int ks_p11_data_put(struct ks_p11 *p, const char *label, const uint8_t *buf, size_t len,
		    char *why, size_t whylen);

/*
 * The access trail's checkpoint key: a 256-bit generic secret labelled
 * label, on the token, private, sensitive, non-extractable, for
 * CKM_SHA256_HMAC.  With create, generated when absent.  An existing key
 * without those attributes is refused (-EPERM, why names the attribute).
 * -ENOKEY absent, -ENOTUNIQ two of them, -EIO token failure.
 */
#define KS_P11_MAC_LEN 32
int ks_p11_mac_key_find(struct ks_p11 *p, const char *label, int create,
			unsigned long *handle, char *why, size_t whylen);
/* C_Sign with CKM_SHA256_HMAC: out gets KS_P11_MAC_LEN bytes */
int ks_p11_hmac(struct ks_p11 *p, unsigned long key, const uint8_t *msg, size_t len,
		uint8_t out[KS_P11_MAC_LEN], char *why, size_t whylen);

/* a CK_RV as -errno: PIN incorrect -EACCES, PIN locked -EPERM, ... */
int ks_p11_rv_errno(unsigned long rv);

/* --- RFC 7512 URIs (pkcs11_uri.c) --- */

struct pkcs11_uri {
	char *token;
	char *object;
	char *module_path;
	char *pin_file;		/* from pin-source=file:... */
};

/*
 * Parse a pkcs11: URI (percent-decoded).  Unknown standard attributes are
 * ignored; pin-value is refused (a PIN on the command line leaks through
 * ps and shell history).  -EINVAL with why set.
 */
int pkcs11_uri_parse(const char *uri, struct pkcs11_uri *out, char *why, size_t whylen);
void pkcs11_uri_release(struct pkcs11_uri *u);

#endif
