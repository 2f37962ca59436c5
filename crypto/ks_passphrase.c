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
#include <unistd.h>

#include "ks_internal.h"

#define PW_OPS_DEFAULT 3ULL
#define PW_MEM_DEFAULT (128ULL << 20)
/*
 * A slot's cost is read before anything can authenticate it: the key that
 * would check it is what Argon2 is about to compute.  So an edited slot
 * could make an unlock allocate gigabytes and run for minutes (or get the
 * daemon OOM-killed) and then fail as a "wrong passphrase".  Caps, checked
 * before the passphrase is even read: 16 passes (about 5x the default
 * time), and memory within both 1 GiB (libsodium's "sensitive" level) and
 * a quarter of this machine's RAM, but never below the default, which
 * must open everywhere.
 */
#define PW_OPS_MAX 16ULL
#define PW_MEM_MAX (1ULL << 30)
#define PW_MEM_RAM_SHARE 4

static unsigned long long ram_for_tests;

void ks_pw_test_ram(unsigned long long bytes)
{
	ram_for_tests = bytes;
}

unsigned long long ks_pw_mem_cap(void)
{
	unsigned long long ram = ram_for_tests, cap = PW_MEM_MAX;
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);

	if (!ram && pages > 0 && psize > 0)
		ram = (unsigned long long)pages * (unsigned long long)psize;
	if (ram && ram / PW_MEM_RAM_SHARE < cap)
		cap = ram / PW_MEM_RAM_SHARE;
	return cap < PW_MEM_DEFAULT ? PW_MEM_DEFAULT : cap;
}

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

int ks_pw_params_check(const struct ks_pw_params *pp, char *why, size_t whylen)
{
	unsigned long long cap = ks_pw_mem_cap();

	if (pp->opslimit < crypto_pwhash_OPSLIMIT_MIN || pp->opslimit > PW_OPS_MAX)
		return why_set(why, whylen, -EBADMSG, "Argon2id opslimit %llu is outside %llu..%llu",
			       (unsigned long long)pp->opslimit,
			       (unsigned long long)crypto_pwhash_OPSLIMIT_MIN, PW_OPS_MAX);
	if (pp->memlimit < crypto_pwhash_MEMLIMIT_MIN)
		return why_set(why, whylen, -EBADMSG, "Argon2id memlimit %llu bytes is under "
			       "the minimum of %llu", (unsigned long long)pp->memlimit,
			       (unsigned long long)crypto_pwhash_MEMLIMIT_MIN);
	if (pp->memlimit > cap)
		return why_set(why, whylen, -EBADMSG, "Argon2id memlimit %llu MiB is over the cap "
			       "of %llu MiB (at most 1 GiB and a quarter of this machine's RAM)",
			       (unsigned long long)(pp->memlimit >> 20), cap >> 20);
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

	if (ks_pw_params_check(pp, NULL, 0) < 0)
		return -EBADMSG;	/* the caller checked first, with a message */
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
