/*
 * ks_passphrase: the recovery slot.  KEK = Argon2id(passphrase, salt,
 * opslimit, memlimit); wrapped = XChaCha20-Poly1305(KEK, nonce, MK, ad).
 * The cost is recorded in the slot so it can be raised later without
 * breaking old slots.  Default cost: opslimit 3, memlimit 128 MiB, measured
 * at ~0.29 s on the 2-core reference box (mount must stay under 1 s).
 */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "ks_internal.h"

#define PW_OPS_DEFAULT 3ULL
#define PW_MEM_DEFAULT (128ULL << 20)
/* An edited slot could ask for absurd costs before its MAC can be checked. */
#define PW_OPS_MAX 32ULL
#define PW_MEM_MAX (4ULL << 30)

static unsigned long long pw_ops = PW_OPS_DEFAULT;
static unsigned long long pw_mem = PW_MEM_DEFAULT;

void keystore_pwhash_cost(unsigned long long opslimit, size_t memlimit)
{
	pw_ops = opslimit ? opslimit : PW_OPS_DEFAULT;
	pw_mem = memlimit ? memlimit : PW_MEM_DEFAULT;
	if (pw_ops < crypto_pwhash_OPSLIMIT_MIN)
		pw_ops = crypto_pwhash_OPSLIMIT_MIN;
	if (pw_mem < crypto_pwhash_MEMLIMIT_MIN)
		pw_mem = crypto_pwhash_MEMLIMIT_MIN;
}

void ks_pw_params_new(struct ks_pw_params *pp)
{
	pp->opslimit = pw_ops;
	pp->memlimit = pw_mem;
	randombytes_buf(pp->salt, sizeof(pp->salt));
	randombytes_buf(pp->nonce, sizeof(pp->nonce));
}

int ks_pw_params_check(const struct ks_pw_params *pp)
{
	if (pp->opslimit < crypto_pwhash_OPSLIMIT_MIN || pp->opslimit > PW_OPS_MAX ||
	    pp->memlimit < crypto_pwhash_MEMLIMIT_MIN || pp->memlimit > PW_MEM_MAX)
		return -EBADMSG;
	return 0;
}

static int derive_kek(uint8_t *kek, const char *pw, size_t pwlen, const struct ks_pw_params *pp)
{
	if (crypto_pwhash(kek, 32, pw, pwlen, pp->salt, pp->opslimit, (size_t)pp->memlimit,
			  crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -ENOMEM;	/* the only way Argon2 fails with valid params */
	return 0;
}

int ks_pw_wrap(const char *pw, size_t pwlen, const struct ks_pw_params *pp,
	       const uint8_t *ad, size_t adlen, const uint8_t *mk,
	       uint8_t wrapped[KS_WRAPPED_LEN])
{
	uint8_t *kek;
	int rc;

	kek = sodium_malloc(32);
	if (!kek)
		return -ENOMEM;
	if ((rc = derive_kek(kek, pw, pwlen, pp)) < 0)
		goto out;
	crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped, NULL, mk, KEYSTORE_MK_LEN,
						   ad, adlen, NULL, pp->nonce, kek);
out:
	sodium_free(kek);
	return rc;
}

int ks_pw_unwrap(const char *pw, size_t pwlen, const struct ks_pw_params *pp,
		 const uint8_t *ad, size_t adlen,
		 const uint8_t wrapped[KS_WRAPPED_LEN], uint8_t *mk)
{
	uint8_t *kek;
	int rc;

	if (ks_pw_params_check(pp) < 0)
		return -EBADMSG;
	kek = sodium_malloc(32);
	if (!kek)
		return -ENOMEM;
	if ((rc = derive_kek(kek, pw, pwlen, pp)) < 0)
		goto out;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(mk, NULL, NULL, wrapped, KS_WRAPPED_LEN,
						       ad, adlen, pp->nonce, kek) != 0) {
		sodium_memzero(mk, KEYSTORE_MK_LEN);
		rc = -EACCES;
	}
out:
	sodium_free(kek);
	return rc;
}
