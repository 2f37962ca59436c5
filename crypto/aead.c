#include "aead.h"

#include <errno.h>
#include <string.h>
#include <sodium.h>

struct aead {
	enum aead_cipher cipher;
	/* AES-GCM keeps an expanded key schedule; it must stay 16-byte aligned,
	 * which sodium_malloc guarantees. */
	crypto_aead_aes256gcm_state gcm;
	uint8_t key[32];
};

#define GCM_NONCE crypto_aead_aes256gcm_NPUBBYTES
#define GCM_TAG crypto_aead_aes256gcm_ABYTES
#define XC_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define XC_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES

enum aead_cipher aead_cipher_best(void)
{
	return crypto_aead_aes256gcm_is_available() ? AEAD_AES256GCM : AEAD_XCHACHA20POLY1305;
}

const char *aead_cipher_name(enum aead_cipher c)
{
	switch (c) {
	case AEAD_XCHACHA20POLY1305: return "xchacha20poly1305";
	case AEAD_AES256GCM: return "aes256gcm";
	}
	return "unknown";
}

int aead_cipher_parse(const char *name, enum aead_cipher *out)
{
	if (!strcmp(name, "xchacha20poly1305") || !strcmp(name, "xchacha20-poly1305"))
		*out = AEAD_XCHACHA20POLY1305;
	else if (!strcmp(name, "aes256gcm") || !strcmp(name, "aes-256-gcm"))
		*out = AEAD_AES256GCM;
	else
		return -EINVAL;
	return 0;
}

int aead_cipher_usable(enum aead_cipher c)
{
	if (c == AEAD_AES256GCM)
		return crypto_aead_aes256gcm_is_available() ? 0 : -ENOTSUP;
	return c == AEAD_XCHACHA20POLY1305 ? 0 : -ENOTSUP;
}

int aead_new(struct aead **out, enum aead_cipher c, const uint8_t key[32])
{
	struct aead *a;
	int rc;

	*out = NULL;
	if ((rc = aead_cipher_usable(c)) < 0)
		return rc;
	a = sodium_malloc(sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->cipher = c;
	memcpy(a->key, key, 32);
	if (c == AEAD_AES256GCM)
		crypto_aead_aes256gcm_beforenm(&a->gcm, key);
	sodium_mprotect_readonly(a);
	*out = a;
	return 0;
}

void aead_free(struct aead *a)
{
	if (a)
		sodium_free(a);	/* sodium_free wipes before unmapping */
}

size_t aead_overhead(const struct aead *a)
{
	return a->cipher == AEAD_AES256GCM ? GCM_NONCE + GCM_TAG : XC_NONCE + XC_TAG;
}

ssize_t aead_seal(const struct aead *a, uint8_t *out, size_t cap,
		  const uint8_t *pt, size_t ptlen, const uint8_t *ad, size_t adlen)
{
	unsigned long long clen = 0;

	if (cap < ptlen + aead_overhead(a))
		return -EOVERFLOW;
	if (a->cipher == AEAD_AES256GCM) {
		randombytes_buf(out, GCM_NONCE);
		crypto_aead_aes256gcm_encrypt_afternm(out + GCM_NONCE, &clen, pt, ptlen,
						      ad, adlen, NULL, out, &a->gcm);
		return (ssize_t)(clen + GCM_NONCE);
	}
	randombytes_buf(out, XC_NONCE);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + XC_NONCE, &clen, pt, ptlen,
						   ad, adlen, NULL, out, a->key);
	return (ssize_t)(clen + XC_NONCE);
}

ssize_t aead_open(const struct aead *a, uint8_t *out, size_t cap,
		  const uint8_t *ct, size_t ctlen, const uint8_t *ad, size_t adlen)
{
	size_t over = aead_overhead(a);
	unsigned long long plen = 0;
	int rc;

	if (ctlen < over)
		return -EBADMSG;
	if (cap < ctlen - over)
		return -EOVERFLOW;
	if (a->cipher == AEAD_AES256GCM)
		rc = crypto_aead_aes256gcm_decrypt_afternm(out, &plen, NULL, ct + GCM_NONCE,
							   ctlen - GCM_NONCE, ad, adlen, ct, &a->gcm);
	else
		rc = crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plen, NULL, ct + XC_NONCE,
								ctlen - XC_NONCE, ad, adlen, ct, a->key);
	if (rc != 0) {
		sodium_memzero(out, ctlen - over);
		return -EBADMSG;
	}
	return (ssize_t)plen;
}
