/*
 * ks_pkcs11: the HSM slot.  The KEK is an AES-256 key that lives on the
 * token (sensitive, non-extractable); MK is sealed with C_Encrypt in
 * CKM_AES_GCM with a random 96-bit IV, a 128-bit tag and non-empty
 * associated data (SoftHSM2 2.6 mishandles an empty AAD).
 *
 * The module is loaded with dlopen for each open and finalized/unloaded on
 * close, so nothing of the token stays in the process once the key is out.
 * With pkcs11_uri.c (through <p11-kit/uri.h>), the only file that includes
 * <p11-kit/pkcs11.h>: its compatibility macros rename common words (value,
 * parameter, reserved...).
 */
#include <dlfcn.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <p11-kit/pkcs11.h>

#include "ks_internal.h"

struct ks_p11 {
	void *dl;
	CK_FUNCTION_LIST_PTR f;
	int finalize;		/* we initialised the module, so we finalize it */
	int have_session;
	int logged_in;
	CK_SESSION_HANDLE session;
	char token[KS_TOKEN_MAX + 1];
	char module[KS_PATH_MAX + 1];
};

static const char *ckr_name(CK_RV rv)
{
	switch (rv) {
	case CKR_OK: return "CKR_OK";
	case CKR_HOST_MEMORY: return "CKR_HOST_MEMORY";
	case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
	case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
	case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
	case CKR_DEVICE_ERROR: return "CKR_DEVICE_ERROR";
	case CKR_DEVICE_REMOVED: return "CKR_DEVICE_REMOVED";
	case CKR_ENCRYPTED_DATA_INVALID: return "CKR_ENCRYPTED_DATA_INVALID";
	case CKR_ENCRYPTED_DATA_LEN_RANGE: return "CKR_ENCRYPTED_DATA_LEN_RANGE";
	case CKR_KEY_HANDLE_INVALID: return "CKR_KEY_HANDLE_INVALID";
	case CKR_KEY_FUNCTION_NOT_PERMITTED: return "CKR_KEY_FUNCTION_NOT_PERMITTED";
	case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
	case CKR_MECHANISM_PARAM_INVALID: return "CKR_MECHANISM_PARAM_INVALID";
	case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
	case CKR_PIN_INVALID: return "CKR_PIN_INVALID";
	case CKR_PIN_LEN_RANGE: return "CKR_PIN_LEN_RANGE";
	case CKR_PIN_EXPIRED: return "CKR_PIN_EXPIRED";
	case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
	case CKR_SESSION_HANDLE_INVALID: return "CKR_SESSION_HANDLE_INVALID";
	case CKR_TOKEN_NOT_PRESENT: return "CKR_TOKEN_NOT_PRESENT";
	case CKR_TOKEN_NOT_RECOGNIZED: return "CKR_TOKEN_NOT_RECOGNIZED";
	case CKR_TOKEN_WRITE_PROTECTED: return "CKR_TOKEN_WRITE_PROTECTED";
	case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
	case CKR_USER_PIN_NOT_INITIALIZED: return "CKR_USER_PIN_NOT_INITIALIZED";
	case CKR_TEMPLATE_INCONSISTENT: return "CKR_TEMPLATE_INCONSISTENT";
	case CKR_ATTRIBUTE_VALUE_INVALID: return "CKR_ATTRIBUTE_VALUE_INVALID";
	case CKR_ATTRIBUTE_TYPE_INVALID: return "CKR_ATTRIBUTE_TYPE_INVALID";
	case CKR_ATTRIBUTE_SENSITIVE: return "CKR_ATTRIBUTE_SENSITIVE";
	case CKR_BUFFER_TOO_SMALL: return "CKR_BUFFER_TOO_SMALL";
	case CKR_CRYPTOKI_NOT_INITIALIZED: return "CKR_CRYPTOKI_NOT_INITIALIZED";
	case CKR_CRYPTOKI_ALREADY_INITIALIZED: return "CKR_CRYPTOKI_ALREADY_INITIALIZED";
	default: return "CKR_(other)";
	}
}

int ks_p11_rv_errno(unsigned long rv)
{
	switch (rv) {
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:
		return -EACCES;
	case CKR_PIN_LOCKED:
		return -EPERM;
	case CKR_PIN_EXPIRED:
		return -EKEYEXPIRED;
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_DEVICE_REMOVED:
		return -ENODEV;
	case CKR_KEY_HANDLE_INVALID:
		return -ENOKEY;
	case CKR_HOST_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/* CK_TOKEN_INFO.label: 32 bytes, blank padded, not NUL terminated */
static void token_label_copy(char out[KS_TOKEN_MAX + 1], const unsigned char in[32])
{
	size_t n = 32;

	memcpy(out, in, 32);
	while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\0'))
		n--;
	out[n] = '\0';
}

static int module_load(struct ks_p11 *p, const char *module, char *why, size_t whylen)
{
	CK_C_GetFunctionList getfl;
	CK_C_INITIALIZE_ARGS args;
	struct stat st;
	CK_RV rv;

	snprintf(p->module, sizeof(p->module), "%s", module);
	if (strchr(module, '/') && stat(module, &st) < 0) {
		int e = errno;

		return why_set(why, whylen, -e, "PKCS#11 module %s: %s", module, strerror(e));
	}
	p->dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (!p->dl)
		return why_set(why, whylen, -ELIBBAD, "cannot load PKCS#11 module: %s", dlerror());
	*(void **)&getfl = dlsym(p->dl, "C_GetFunctionList");
	if (!getfl)
		return why_set(why, whylen, -ELIBBAD,
			       "%s is not a PKCS#11 module (no C_GetFunctionList)", module);
	rv = getfl(&p->f);
	if (rv != CKR_OK || !p->f || !p->f->C_Initialize)
		return why_set(why, whylen, -ELIBBAD,
			       "%s: C_GetFunctionList failed (%s)", module, ckr_name(rv));
	memset(&args, 0, sizeof(args));
	args.flags = CKF_OS_LOCKING_OK;
	rv = p->f->C_Initialize(&args);
	if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED)
		return 0;	/* someone else in this process owns it */
	if (rv != CKR_OK)
		return why_set(why, whylen, -EIO, "%s: C_Initialize failed (%s); for SoftHSM2 "
			       "check SOFTHSM2_CONF and its tokendir", module, ckr_name(rv));
	p->finalize = 1;
	return 0;
}

static int token_find(struct ks_p11 *p, const char *token, CK_SLOT_ID *slot,
		      char *why, size_t whylen)
{
	CK_SLOT_ID *slots = NULL;
	CK_ULONG n = 0, i;
	CK_RV rv;
	int rc = -ENODEV;

	rv = p->f->C_GetSlotList(CK_TRUE, NULL, &n);
	if (rv == CKR_OK && n > 0) {
		slots = calloc(n, sizeof(*slots));
		if (!slots) {
			rc = why_set(why, whylen, -ENOMEM, "out of memory");
			goto out;
		}
		rv = p->f->C_GetSlotList(CK_TRUE, slots, &n);
	}
	if (rv != CKR_OK) {
		rc = why_set(why, whylen, ks_p11_rv_errno(rv), "%s: C_GetSlotList failed (%s)",
			     p->module, ckr_name(rv));
		goto out;
	}
	for (i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		char label[KS_TOKEN_MAX + 1];

		if (p->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK ||
		    !(ti.flags & CKF_TOKEN_INITIALIZED))
			continue;
		token_label_copy(label, ti.label);
		if (token && strcmp(label, token))
			continue;
		memcpy(p->token, label, sizeof(label));
		*slot = slots[i];
		rc = 0;
		goto out;
	}
	if (token)
		why_set(why, whylen, rc, "no PKCS#11 token labelled '%s' in %s", token, p->module);
	else
		why_set(why, whylen, rc, "no initialised PKCS#11 token in %s", p->module);
out:
	free(slots);
	return rc;
}

int ks_p11_open(const char *module, const char *token, const char *pin_file, int pin_flags,
		struct ks_p11 **out, char *why, size_t whylen)
{
	struct ks_p11 *p = NULL;
	char *pin = NULL;
	size_t pinlen = 0;
	CK_SLOT_ID slot = 0;
	CK_RV rv;
	int rc;

	/* Read the PIN first: a missing PIN file should not touch the token. */
	if ((rc = ks_secret_read(pin_file, "PIN", pin_flags, &pin, &pinlen, why, whylen)) < 0)
		goto out;
	p = calloc(1, sizeof(*p));
	if (!p) {
		rc = why_set(why, whylen, -ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = module_load(p, module, why, whylen)) < 0)
		goto out;
	if ((rc = token_find(p, token, &slot, why, whylen)) < 0)
		goto out;
	rv = p->f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
				 &p->session);
	if (rv != CKR_OK) {
		rc = why_set(why, whylen, ks_p11_rv_errno(rv), "token '%s': C_OpenSession failed (%s)",
			     p->token, ckr_name(rv));
		goto out;
	}
	p->have_session = 1;
	rv = p->f->C_Login(p->session, CKU_USER, (CK_UTF8CHAR_PTR)pin, pinlen);
	if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE) {
		rc = why_set(why, whylen, -EACCES, "wrong PIN for token '%s'", p->token);
		goto out;
	}
	if (rv == CKR_PIN_LOCKED) {
		rc = why_set(why, whylen, -EPERM, "the user PIN of token '%s' is locked "
			     "(too many wrong PINs); the security officer must reset it", p->token);
		goto out;
	}
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
		rc = why_set(why, whylen, ks_p11_rv_errno(rv), "token '%s': C_Login failed (%s)",
			     p->token, ckr_name(rv));
		goto out;
	}
	p->logged_in = rv == CKR_OK;
	*out = p;
	p = NULL;
out:
	ks_p11_close(p);
	ks_secret_free(pin);
	return rc;
}

void ks_p11_close(struct ks_p11 *p)
{
	if (!p)
		return;
	if (p->logged_in)
		p->f->C_Logout(p->session);
	if (p->have_session)
		p->f->C_CloseSession(p->session);
	if (p->finalize)
		p->f->C_Finalize(NULL);
	if (p->dl)
		dlclose(p->dl);
	free(p);
}

const char *ks_p11_token_label(const struct ks_p11 *p)
{
	return p->token;
}

/*
 * A 256-bit secret on the token that never leaves it: token object,
 * private, sensitive, not extractable, usable only as use1 and use2
 * (encrypt/decrypt for the KEK, sign/verify for the trail's MAC key).
 */
static int secret_generate(struct ks_p11 *p, const char *label, CK_MECHANISM_TYPE gen,
			   CK_KEY_TYPE kt, CK_ATTRIBUTE_TYPE use1, CK_ATTRIBUTE_TYPE use2,
			   CK_OBJECT_HANDLE *h, char *why, size_t whylen)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_ULONG len = 32;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_VALUE_LEN, &len, sizeof(len) },
		{ CKA_LABEL, (void *)label, strlen(label) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ use1, &yes, sizeof(yes) },
		{ use2, &yes, sizeof(yes) },
	};
	CK_MECHANISM mech = { gen, NULL, 0 };
	CK_RV rv;

	rv = p->f->C_GenerateKey(p->session, &mech, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), h);
	if (rv != CKR_OK)
		return why_set(why, whylen, ks_p11_rv_errno(rv),
			       "token '%s': cannot generate key '%s' (%s)", p->token, label,
			       ckr_name(rv));
	return 0;
}

/*
 * The attributes a KEK must have, and the value each must hold.  Checked
 * on every key found or made: a key someone generated under our label
 * with CKA_EXTRACTABLE=true could be read out of the token by any PIN
 * holder, a session key (CKA_TOKEN=false) dies with the session, and one
 * that may not encrypt or decrypt would seal a slot nobody can open.
 */
static const struct {
	CK_ATTRIBUTE_TYPE type;
	const char *name;
	CK_BBOOL want;
} kek_attrs[] = {
	{ CKA_TOKEN, "CKA_TOKEN", CK_TRUE },
	{ CKA_SENSITIVE, "CKA_SENSITIVE", CK_TRUE },
	{ CKA_EXTRACTABLE, "CKA_EXTRACTABLE", CK_FALSE },
	{ CKA_ENCRYPT, "CKA_ENCRYPT", CK_TRUE },
	{ CKA_DECRYPT, "CKA_DECRYPT", CK_TRUE },
};

static int key_attrs_check(struct ks_p11 *p, CK_OBJECT_HANDLE h, const char *label,
			   char *why, size_t whylen)
{
	for (size_t i = 0; i < sizeof(kek_attrs) / sizeof(kek_attrs[0]); i++) {
		CK_BBOOL v = CK_FALSE;
		CK_ATTRIBUTE a = { kek_attrs[i].type, &v, sizeof(v) };
		CK_RV rv = p->f->C_GetAttributeValue(p->session, h, &a, 1);

		if (rv != CKR_OK || a.ulValueLen != sizeof(v))
			return why_set(why, whylen, -EKEYREJECTED, "token '%s': key '%s': cannot "
				       "read %s (%s); medvault uses only a key it can check",
				       p->token, label, kek_attrs[i].name, ckr_name(rv));
		if ((v != CK_FALSE) != (kek_attrs[i].want != CK_FALSE))
			return why_set(why, whylen, -EKEYREJECTED, "token '%s': key '%s' has %s=%s; "
				       "medvault needs a token key that is sensitive, not "
				       "extractable and allowed to encrypt and decrypt (generate "
				       "one under another label with --pkcs11-key)", p->token,
				       label, kek_attrs[i].name, v ? "true" : "false");
	}
	return 0;
}

int ks_p11_key_find(struct ks_p11 *p, const char *label, int create,
		    unsigned long *handle, char *why, size_t whylen)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_OBJECT_HANDLE found[2];
	CK_ULONG n = 0;
	CK_RV rv;

	rv = p->f->C_FindObjectsInit(p->session, tmpl, sizeof(tmpl) / sizeof(tmpl[0]));
	if (rv == CKR_OK) {
		rv = p->f->C_FindObjects(p->session, found, 2, &n);
		p->f->C_FindObjectsFinal(p->session);
	}
	if (rv != CKR_OK)
		return why_set(why, whylen, ks_p11_rv_errno(rv), "token '%s': key search failed (%s)",
			       p->token, ckr_name(rv));
	if (n > 1)
		/* Guessing between two KEKs could seal MK under the wrong one. */
		return why_set(why, whylen, -ENOTUNIQ, "token '%s' holds several AES keys "
			       "labelled '%s'; give each a distinct label", p->token, label);
	if (n == 1) {
		int rc = key_attrs_check(p, found[0], label, why, whylen);

		if (rc == 0)
			*handle = found[0];
		return rc;
	}
	if (!create)
		return why_set(why, whylen, -ENOKEY, "no AES key labelled '%s' on token '%s' "
			       "(deleted? restore the HSM backup, or unlock with the recovery "
			       "passphrase slot)", label, p->token);
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	int rc = secret_generate(p, label, CKM_AES_KEY_GEN, CKK_AES, CKA_ENCRYPT, CKA_DECRYPT, &h,
				 why, whylen);

	/* a module that ignored part of the template is found out here */
	if (rc == 0 && (rc = key_attrs_check(p, h, label, why, whylen)) == 0)
		*handle = h;
	return rc;
}

static void gcm_params(CK_GCM_PARAMS *g, const uint8_t *iv, const uint8_t *ad, size_t adlen)
{
	memset(g, 0, sizeof(*g));
	g->pIv = (CK_BYTE_PTR)iv;
	g->ulIvLen = KS_P11_IV_LEN;
	g->ulIvBits = KS_P11_IV_LEN * 8;
	g->pAAD = (CK_BYTE_PTR)ad;
	g->ulAADLen = adlen;
	g->ulTagBits = KS_P11_TAG_BITS;
}

int ks_p11_wrap(struct ks_p11 *p, unsigned long key, const uint8_t iv[KS_P11_IV_LEN],
		const uint8_t *ad, size_t adlen, const uint8_t *mk,
		uint8_t wrapped[KS_WRAPPED_LEN], char *why, size_t whylen)
{
	CK_GCM_PARAMS g;
	CK_MECHANISM mech = { CKM_AES_GCM, &g, sizeof(g) };
	uint8_t out[KS_WRAPPED_LEN + 32];	/* ciphertext: not secret */
	CK_ULONG outlen = sizeof(out);
	CK_RV rv;

	if (adlen == 0)
		return why_set(why, whylen, -EINVAL, "internal: empty AAD");
	gcm_params(&g, iv, ad, adlen);
	rv = p->f->C_EncryptInit(p->session, &mech, key);
	if (rv == CKR_OK)
		rv = p->f->C_Encrypt(p->session, (CK_BYTE_PTR)mk, KEYSTORE_MK_LEN, out, &outlen);
	if (rv != CKR_OK)
		return why_set(why, whylen, ks_p11_rv_errno(rv), "token '%s': AES-GCM encrypt failed (%s)",
			       p->token, ckr_name(rv));
	if (outlen != KS_WRAPPED_LEN)
		return why_set(why, whylen, -EIO, "token '%s': AES-GCM returned %lu bytes, "
			       "expected %d", p->token, (unsigned long)outlen, KS_WRAPPED_LEN);
	memcpy(wrapped, out, KS_WRAPPED_LEN);
	return 0;
}

int ks_p11_unwrap(struct ks_p11 *p, unsigned long key, const uint8_t iv[KS_P11_IV_LEN],
		  const uint8_t *ad, size_t adlen,
		  const uint8_t wrapped[KS_WRAPPED_LEN], uint8_t *mk,
		  char *why, size_t whylen)
{
	CK_GCM_PARAMS g;
	CK_MECHANISM mech = { CKM_AES_GCM, &g, sizeof(g) };
	uint8_t *out;
	CK_ULONG outlen = KS_WRAPPED_LEN + 16;
	CK_RV rv;
	int rc = 0;

	/* some modules want room for the whole input, tag included */
	out = sodium_malloc(outlen);
	if (!out)
		return why_set(why, whylen, -ENOMEM, "out of memory");
	gcm_params(&g, iv, ad, adlen);
	rv = p->f->C_DecryptInit(p->session, &mech, key);
	if (rv != CKR_OK) {
		rc = why_set(why, whylen, ks_p11_rv_errno(rv), "token '%s': AES-GCM decrypt "
			     "refused (%s)", p->token, ckr_name(rv));
		goto out;
	}
	rv = p->f->C_Decrypt(p->session, (CK_BYTE_PTR)wrapped, KS_WRAPPED_LEN, out, &outlen);
	/*
	 * A tag mismatch is CKR_ENCRYPTED_DATA_INVALID by the standard, but
	 * SoftHSM2 2.6 answers CKR_GENERAL_ERROR (measured), so treat both, once
	 * C_DecryptInit accepted key and parameters, as "not this key".
	 */
	if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
	    rv == CKR_GENERAL_ERROR || rv == CKR_FUNCTION_FAILED ||
	    (rv == CKR_OK && outlen != KEYSTORE_MK_LEN)) {
		rc = why_set(why, whylen, -EACCES, "token '%s': the key does not open this slot "
			     "(another key with the same label, or the slot was edited; %s)",
			     p->token, ckr_name(rv));
		goto out;
	}
	if (rv != CKR_OK) {
		rc = why_set(why, whylen, ks_p11_rv_errno(rv), "token '%s': AES-GCM decrypt failed (%s)",
			     p->token, ckr_name(rv));
		goto out;
	}
	memcpy(mk, out, KEYSTORE_MK_LEN);
out:
	sodium_free(out);	/* wipes */
	return rc;
}

/* the one data object labelled label: 1 found, 0 none, -errno */
static int data_find(struct ks_p11 *p, const char *label, CK_OBJECT_HANDLE *h, char *why, size_t whylen)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_OBJECT_HANDLE found[2];
	CK_ULONG n = 0;
	CK_RV rv = p->f->C_FindObjectsInit(p->session, tmpl, sizeof(tmpl) / sizeof(tmpl[0]));

	if (rv == CKR_OK) {
		rv = p->f->C_FindObjects(p->session, found, 2, &n);
		p->f->C_FindObjectsFinal(p->session);
	}
	if (rv != CKR_OK)
		return why_set(why, whylen, ks_p11_rv_errno(rv), "token '%s': object search failed (%s)",
			       p->token, ckr_name(rv));
	if (n > 1)
		return why_set(why, whylen, -ENOTUNIQ, "token '%s' holds several objects labelled '%s'",
			       p->token, label);
	if (n == 1)
		*h = found[0];
	return n == 1;
}

int ks_p11_data_get(struct ks_p11 *p, const char *label, uint8_t *buf, size_t cap, size_t *len,
		    char *why, size_t whylen)
{
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_ATTRIBUTE val = { CKA_VALUE, NULL, 0 };
	CK_RV rv;
	int rc = data_find(p, label, &h, why, whylen);

	if (rc <= 0)
		return rc < 0 ? rc : -ENOENT;
	rv = p->f->C_GetAttributeValue(p->session, h, &val, 1);
	if (rv == CKR_OK && val.ulValueLen > cap)
		return why_set(why, whylen, -EBADMSG, "token '%s': object '%s' is %lu bytes, not an anchor",
			       p->token, label, (unsigned long)val.ulValueLen);
	if (rv == CKR_OK) {
		val.pValue = buf;
		rv = p->f->C_GetAttributeValue(p->session, h, &val, 1);
	}
	if (rv != CKR_OK)
		return why_set(why, whylen, ks_p11_rv_errno(rv), "token '%s': cannot read object '%s' (%s)",
			       p->token, label, ckr_name(rv));
	*len = val.ulValueLen;
	return 0;
}

int ks_p11_data_put(struct ks_p11 *p, const char *label, const uint8_t *buf, size_t len,
		    char *why, size_t whylen)
{
	CK_OBJECT_CLASS cls = CKO_DATA;
	CK_BBOOL yes = CK_TRUE;
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_ATTRIBUTE val = { CKA_VALUE, (void *)buf, len };
	CK_RV rv;
	int rc = data_find(p, label, &h, why, whylen);

	if (rc < 0)
		return rc;
	/* in place where the token allows it (SoftHSM2 refuses to change a data
	 * object's value): then a crash leaves the old value or the new */
	if (rc == 1 && p->f->C_SetAttributeValue(p->session, h, &val, 1) == CKR_OK)
		return 0;
	if (rc == 1 && (rv = p->f->C_DestroyObject(p->session, h)) != CKR_OK)
		return why_set(why, whylen, ks_p11_rv_errno(rv), "token '%s': cannot replace object '%s' (%s)",
			       p->token, label, ckr_name(rv));
	{
		/* private: only a PIN holder can write it (and the contents are
		 * MACed, so a PIN alone cannot forge one) */
		CK_ATTRIBUTE tmpl[] = {
			{ CKA_CLASS, &cls, sizeof(cls) },
			{ CKA_TOKEN, &yes, sizeof(yes) },
			{ CKA_PRIVATE, &yes, sizeof(yes) },
			{ CKA_MODIFIABLE, &yes, sizeof(yes) },
			{ CKA_LABEL, (void *)label, strlen(label) },
			{ CKA_APPLICATION, (void *)"medvault", 8 },
			{ CKA_VALUE, (void *)buf, len },
		};

		rv = p->f->C_CreateObject(p->session, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &h);
	}
	if (rv != CKR_OK)
		return why_set(why, whylen, ks_p11_rv_errno(rv), "token '%s': cannot write object '%s' (%s)",
			       p->token, label, ckr_name(rv));
	return 0;
}

/* ---- the access trail's MAC key (a generic secret, CKM_SHA256_HMAC) ---- */

/* CK_BBOOL attribute of h, or -1 when the token will not say */
static int attr_bool(struct ks_p11 *p, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL v = CK_FALSE;
	CK_ATTRIBUTE a = { type, &v, sizeof(v) };

	if (p->f->C_GetAttributeValue(p->session, h, &a, 1) != CKR_OK || a.ulValueLen != sizeof(v))
		return -1;
	return v == CK_TRUE;
}

/*
 * An existing trail key is used only if nobody can have read it out:
 * otherwise whoever holds a copy could seal checkpoints without the token.
 */
static int mac_key_check(struct ks_p11 *p, CK_OBJECT_HANDLE h, const char *label,
			 char *why, size_t whylen)
{
	static const struct {
		CK_ATTRIBUTE_TYPE type;
		int want;
		const char *name;
	} need[] = {
		{ CKA_TOKEN, 1, "CKA_TOKEN" },
		{ CKA_SENSITIVE, 1, "CKA_SENSITIVE" },
		{ CKA_EXTRACTABLE, 0, "CKA_EXTRACTABLE" },
		{ CKA_SIGN, 1, "CKA_SIGN" },
	};

	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (attr_bool(p, h, need[i].type) != need[i].want)
			return why_set(why, whylen, -EPERM, "token '%s': key '%s' is not usable for the "
				       "access trail: %s is not %s", p->token, label, need[i].name,
				       need[i].want ? "true" : "false");
	return 0;
}

int ks_p11_mac_key_find(struct ks_p11 *p, const char *label, int create,
			unsigned long *handle, char *why, size_t whylen)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
	CK_ATTRIBUTE find[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_OBJECT_HANDLE found[2], h = CK_INVALID_HANDLE;
	CK_ULONG n = 0;
	CK_RV rv;

	rv = p->f->C_FindObjectsInit(p->session, find, sizeof(find) / sizeof(find[0]));
	if (rv == CKR_OK) {
		rv = p->f->C_FindObjects(p->session, found, 2, &n);
		p->f->C_FindObjectsFinal(p->session);
	}
	if (rv != CKR_OK)
		return why_set(why, whylen, ks_p11_rv_errno(rv), "token '%s': key search failed (%s)",
			       p->token, ckr_name(rv));
	if (n > 1)
		return why_set(why, whylen, -ENOTUNIQ, "token '%s' holds several keys labelled '%s'",
			       p->token, label);
	if (n == 1) {
		int rc = mac_key_check(p, found[0], label, why, whylen);

		if (rc == 0)
			*handle = found[0];
		return rc;
	}
	if (!create)
		return why_set(why, whylen, -ENOKEY, "no key labelled '%s' on token '%s'", label, p->token);
	{
		int rc = secret_generate(p, label, CKM_GENERIC_SECRET_KEY_GEN, CKK_GENERIC_SECRET,
					 CKA_SIGN, CKA_VERIFY, &h, why, whylen);

		if (rc < 0)
			return rc;
	}
	*handle = h;
	return 0;
}

int ks_p11_hmac(struct ks_p11 *p, unsigned long key, const uint8_t *msg, size_t len,
		uint8_t out[KS_P11_MAC_LEN], char *why, size_t whylen)
{
	CK_MECHANISM mech = { CKM_SHA256_HMAC, NULL, 0 };
	CK_ULONG outlen = KS_P11_MAC_LEN;
	CK_RV rv;

	rv = p->f->C_SignInit(p->session, &mech, key);
	if (rv == CKR_OK)
		rv = p->f->C_Sign(p->session, (CK_BYTE_PTR)msg, len, out, &outlen);
	if (rv == CKR_OK && outlen != KS_P11_MAC_LEN)
		rv = CKR_GENERAL_ERROR;
	if (rv != CKR_OK)
		return why_set(why, whylen, ks_p11_rv_errno(rv), "token '%s': HMAC-SHA256 failed (%s)",
			       p->token, ckr_name(rv));
	return 0;
}
