/*
 * fuzz_aead_open: opening sealed index values and chunks (crypto/aead.c)
 * with a fixed key, for both ciphers.  Everything an attacker holding the
 * store can write reaches aead_open first, so it must never accept
 * anything it did not seal, never crash, and wipe its output on failure.
 *
 * Input byte 0: bit 0 picks the cipher (XChaCha20-Poly1305 / AES-256-GCM
 * when the CPU has AES-NI), bit 1 the mode:
 *   garbage (bit 1 clear): byte 1 = associated-data length (mod 64), then
 *     the associated data, then the sealed item; open must fail.
 *   structured (bit 1 set): bytes 1..3 = db (mod 7), tamper position and
 *     bit, then a record key (byte 4 = its length mod 25) and a plaintext.
 *     The plaintext is sealed as the index seals a value (associated data
 *     "MVI1" || uuid || db || key); the seal must open to the same bytes,
 *     and each of: one flipped bit, one byte cut or added, another db,
 *     another key, another volume, must fail.
 */
#include <errno.h>
#include <string.h>

#include "crypto/aead.h"
#include "fuzz_common.h"
#include "crypto/secure.h"

static const uint8_t fixed_key[32] = "medvault fuzz key, not a secret";
static const uint8_t uuid1[16] = "0123456789abcdef", uuid2[16] = "0123456789abcdeF";

static struct aead *cipher(int aes)
{
	static struct aead *xc, *gcm;
	static int init;

	if (!init) {
		if (secure_init() < 0 || aead_new(&xc, AEAD_XCHACHA20POLY1305, fixed_key) < 0)
			abort();
		if (aead_cipher_usable(AEAD_AES256GCM) == 0 &&
		    aead_new(&gcm, AEAD_AES256GCM, fixed_key) < 0)
			abort();
		init = 1;
	}
	return aes && gcm ? gcm : xc;
}

static size_t make_ad(uint8_t *ad, const uint8_t *uuid, uint8_t db, const uint8_t *key, size_t klen)
{
	memcpy(ad, "MVI1", 4);
	memcpy(ad + 4, uuid, 16);
	ad[20] = db;
	memcpy(ad + 21, key, klen);
	return 21 + klen;
}

/* open must fail, and leave out wiped */
static void must_fail(const struct aead *a, const uint8_t *ct, size_t ctlen,
		      const uint8_t *ad, size_t adlen)
{
	size_t cap = ctlen + 1;
	uint8_t *out = malloc(cap);
	ssize_t r;

	if (!out)
		abort();
	memset(out, 0xa5, cap);
	r = aead_open(a, out, cap, ct, ctlen, ad, adlen);
	FUZZ_ASSERT(r == -EBADMSG);
	if (ctlen >= aead_overhead(a))
		for (size_t i = 0; i < ctlen - aead_overhead(a); i++)
			FUZZ_ASSERT(out[i] == 0);
	free(out);
}

static void garbage(const struct aead *a, const uint8_t *d, size_t n)
{
	size_t adlen;
	uint8_t *ct;

	if (n < 1)
		return;
	adlen = d[0] % 64;
	if (adlen > n - 1)
		adlen = n - 1;
	/* exact-size copy of the item so ASan catches any overread */
	ct = malloc(n - 1 - adlen + 1);
	if (!ct)
		abort();
	memcpy(ct, d + 1 + adlen, n - 1 - adlen);
	must_fail(a, ct, n - 1 - adlen, d + 1, adlen);
	free(ct);
}

static void structured(const struct aead *a, const uint8_t *d, size_t n)
{
	uint8_t ad[64], ad2[64], *sealed, *out;
	size_t klen, ptlen, adlen, adlen2, slen, cap, pos;
	const uint8_t *key, *pt;
	uint8_t db, bit;
	ssize_t r;

	if (n < 4)
		return;
	db = d[0] % 7;
	pos = (size_t)d[1] << 8;
	bit = d[2] & 7;
	pos |= d[3];
	d += 4;
	n -= 4;
	klen = n ? d[0] % 25 : 0;
	if (n)
		d++, n--;
	if (klen > n)
		klen = n;
	key = d;
	pt = d + klen;
	ptlen = n - klen;
	adlen = make_ad(ad, uuid1, db, key, klen);

	cap = ptlen + aead_overhead(a) + 1;
	sealed = malloc(cap);
	out = malloc(cap);
	if (!sealed || !out)
		abort();
	r = aead_seal(a, sealed, cap, pt, ptlen, ad, adlen);
	FUZZ_ASSERT(r == (ssize_t)(ptlen + aead_overhead(a)));
	slen = (size_t)r;

	r = aead_open(a, out, cap, sealed, slen, ad, adlen);
	FUZZ_ASSERT(r == (ssize_t)ptlen && memcmp(out, pt, ptlen) == 0);
	FUZZ_ASSERT(aead_open(a, out, ptlen ? ptlen - 1 : 0, sealed, slen, ad, adlen) ==
		    (ptlen ? -EOVERFLOW : (ssize_t)0));

	/* one flipped bit anywhere */
	pos %= slen;
	sealed[pos] ^= (uint8_t)(1u << bit);
	must_fail(a, sealed, slen, ad, adlen);
	sealed[pos] ^= (uint8_t)(1u << bit);
	/* cut or extended */
	must_fail(a, sealed, slen - 1, ad, adlen);
	sealed[slen] = 0x5a;
	must_fail(a, sealed, slen + 1, ad, adlen);
	/* moved to another database, key or volume */
	adlen2 = make_ad(ad2, uuid1, (uint8_t)((db + 1) % 7), key, klen);
	must_fail(a, sealed, slen, ad2, adlen2);
	if (klen) {
		adlen2 = make_ad(ad2, uuid1, db, key, klen);
		ad2[adlen2 - 1] ^= 1;
		must_fail(a, sealed, slen, ad2, adlen2);
		must_fail(a, sealed, slen, ad, adlen - 1);
	}
	adlen2 = make_ad(ad2, uuid2, db, key, klen);
	must_fail(a, sealed, slen, ad2, adlen2);
	/* still opens once restored */
	FUZZ_ASSERT(aead_open(a, out, cap, sealed, slen, ad, adlen) == (ssize_t)ptlen);
	free(out);
	free(sealed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct aead *a;

	if (size < 1 || size > 70000)
		return 0;
	a = cipher(data[0] & 1);
	if (data[0] & 2)
		structured(a, data + 1, size - 1);
	else
		garbage(a, data + 1, size - 1);
	return 0;
}
