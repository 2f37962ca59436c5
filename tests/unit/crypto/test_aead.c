/*
 * aead: round trips for both ciphers, tamper/truncation/wrong-key/wrong-AD
 * rejection with the output wiped, nonce freshness, and known answers that
 * pin the nonce || ciphertext || tag layout against libsodium itself; a
 * forked child never repeats its parent's nonces.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/aead.h"
#include "crypto/secure.h"
#include "../../tap.h"

static int all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static void test_names(void)
{
	enum aead_cipher cs[] = { AEAD_XCHACHA20POLY1305, AEAD_AES256GCM };
	enum aead_cipher c;

	for (size_t i = 0; i < 2; i++) {
		const char *n = aead_cipher_name(cs[i]);

		c = 0;
		ok(aead_cipher_parse(n, &c) == 0 && c == cs[i], "name %s parses back", n);
	}
	ok(strcmp(aead_cipher_name(AEAD_XCHACHA20POLY1305), aead_cipher_name(AEAD_AES256GCM)) != 0,
	   "the two ciphers have different names");
	ok(aead_cipher_parse("xchacha20-poly1305", &c) == 0 && c == AEAD_XCHACHA20POLY1305,
	   "alias xchacha20-poly1305");
	ok(aead_cipher_parse("aes-256-gcm", &c) == 0 && c == AEAD_AES256GCM, "alias aes-256-gcm");
	ok(aead_cipher_parse("rot13", &c) == -EINVAL, "unknown name -EINVAL");
	ok(aead_cipher_parse("", &c) == -EINVAL, "empty name -EINVAL");
	ok(aead_cipher_parse("aes256gcmX", &c) == -EINVAL, "name with trailing junk -EINVAL");
	ok(aead_cipher_usable(AEAD_XCHACHA20POLY1305) == 0, "xchacha always usable");
	ok(aead_cipher_usable((enum aead_cipher)99) == -ENOTSUP, "unknown cipher not usable");
	ok(aead_cipher_usable(aead_cipher_best()) == 0, "best cipher is usable");
}

static void test_cipher(enum aead_cipher c, size_t nonce_len)
{
	const char *cn = aead_cipher_name(c);
	uint8_t key[32], key2[32], ad[40];
	uint8_t pt[64], ct[64 + 64], out[64], ct2[64 + 64];
	struct aead *a = NULL, *b = NULL;
	size_t over, big = 1u << 20;
	ssize_t n, m;

	secure_random(key, sizeof(key));
	memcpy(key2, key, 32);
	key2[31] ^= 0x01;
	secure_random(ad, sizeof(ad));
	secure_random(pt, sizeof(pt));
	if (!ok(aead_new(&a, c, key) == 0 && a, "%s: aead_new", cn))
		return;
	ok(aead_new(&b, c, key2) == 0 && b, "%s: aead_new second key", cn);
	over = aead_overhead(a);
	ok(over == nonce_len + 16, "%s: overhead %zu = nonce %zu + tag 16", cn, over, nonce_len);

	/* round trip */
	n = aead_seal(a, ct, sizeof(ct), pt, sizeof(pt), ad, sizeof(ad));
	ok(n == (ssize_t)(sizeof(pt) + over), "%s: sealed length %zd", cn, n);
	memset(out, 0xaa, sizeof(out));
	m = aead_open(a, out, sizeof(out), ct, (size_t)n, ad, sizeof(ad));
	ok(m == (ssize_t)sizeof(pt) && !memcmp(out, pt, sizeof(pt)), "%s: round trip", cn);
	ok(memcmp(ct + nonce_len, pt, sizeof(pt)) != 0, "%s: ciphertext is not the plaintext", cn);

	/* no AD at all */
	n = aead_seal(a, ct2, sizeof(ct2), pt, 10, NULL, 0);
	m = aead_open(a, out, sizeof(out), ct2, (size_t)n, NULL, 0);
	ok(n == (ssize_t)(10 + over) && m == 10 && !memcmp(out, pt, 10), "%s: round trip without AD", cn);

	/* capacity checks */
	ok(aead_seal(a, ct2, sizeof(pt) + over - 1, pt, sizeof(pt), ad, sizeof(ad)) == -EOVERFLOW,
	   "%s: seal with cap one short -EOVERFLOW", cn);
	ok(aead_open(a, out, sizeof(pt) - 1, ct, sizeof(pt) + over, ad, sizeof(ad)) == -EOVERFLOW,
	   "%s: open with cap one short -EOVERFLOW", cn);

	/* nonces differ between two seals of the same plaintext */
	n = aead_seal(a, ct2, sizeof(ct2), pt, sizeof(pt), ad, sizeof(ad));
	ok(n == (ssize_t)(sizeof(pt) + over) && memcmp(ct, ct2, nonce_len) != 0,
	   "%s: two seals use different nonces", cn);
	ok(memcmp(ct + nonce_len, ct2 + nonce_len, sizeof(pt) + 16) != 0,
	   "%s: two seals give different ciphertexts", cn);

	/* empty plaintext */
	n = aead_seal(a, ct2, sizeof(ct2), pt, 0, ad, sizeof(ad));
	ok(n == (ssize_t)over, "%s: empty plaintext seals to overhead only", cn);
	m = aead_open(a, out, sizeof(out), ct2, (size_t)n, ad, sizeof(ad));
	ok(m == 0, "%s: empty plaintext opens to 0 bytes", cn);
	m = aead_open(a, out, 0, ct2, (size_t)n, ad, sizeof(ad));
	ok(m == 0, "%s: empty plaintext opens with cap 0", cn);
	ct2[over - 1] ^= 0x80;
	ok(aead_open(a, out, sizeof(out), ct2, (size_t)n, ad, sizeof(ad)) == -EBADMSG,
	   "%s: empty plaintext with a flipped tag bit -EBADMSG", cn);

	/* large plaintext (1 MiB) */
	{
		uint8_t *bp = malloc(big), *bc = malloc(big + over), *bo = malloc(big);

		if (bp && bc && bo) {
			secure_random(bp, big);
			n = aead_seal(a, bc, big + over, bp, big, ad, sizeof(ad));
			ok(n == (ssize_t)(big + over), "%s: 1 MiB sealed", cn);
			m = aead_open(a, bo, big, bc, (size_t)n, ad, sizeof(ad));
			ok(m == (ssize_t)big && !memcmp(bo, bp, big), "%s: 1 MiB round trip", cn);
			bc[big / 2 + nonce_len] ^= 0x04;
			memset(bo, 0x55, big);
			m = aead_open(a, bo, big, bc, (size_t)n, ad, sizeof(ad));
			ok(m == -EBADMSG && all_zero(bo, big), "%s: 1 MiB with one flipped bit -EBADMSG, wiped", cn);
		} else {
			ok(0, "malloc 1 MiB");
		}
		free(bp);
		free(bc);
		free(bo);
	}

	/* flip every byte position (nonce, ciphertext, tag) of a small item */
	{
		uint8_t small[20], sc[20 + 64], tmp[20 + 64], so[20];
		size_t sn, bad_rc = 0, bad_wipe = 0;

		secure_random(small, sizeof(small));
		n = aead_seal(a, sc, sizeof(sc), small, sizeof(small), ad, sizeof(ad));
		sn = (size_t)n;
		for (size_t i = 0; i < sn; i++) {
			for (int bit = 0; bit < 8; bit++) {
				memcpy(tmp, sc, sn);
				tmp[i] ^= (uint8_t)(1u << bit);
				memset(so, 0xaa, sizeof(so));
				m = aead_open(a, so, sizeof(so), tmp, sn, ad, sizeof(ad));
				if (m != -EBADMSG)
					bad_rc++;
				else if (!all_zero(so, sizeof(so)))
					bad_wipe++;
			}
		}
		ok(bad_rc == 0, "%s: every single-bit flip in all %zu bytes -> -EBADMSG (%zu accepted)",
		   cn, sn, bad_rc);
		ok(bad_wipe == 0, "%s: output wiped after every failure (%zu not wiped)", cn, bad_wipe);

		/* the untouched item still opens */
		m = aead_open(a, so, sizeof(so), sc, sn, ad, sizeof(ad));
		ok(m == (ssize_t)sizeof(small) && !memcmp(so, small, sizeof(small)), "%s: pristine item opens", cn);

		/* wrong AD: each byte changed in turn */
		bad_rc = 0;
		for (size_t i = 0; i < sizeof(ad); i++) {
			uint8_t ad2[sizeof(ad)];

			memcpy(ad2, ad, sizeof(ad));
			ad2[i] ^= 0x01;
			memset(so, 0xaa, sizeof(so));
			m = aead_open(a, so, sizeof(so), sc, sn, ad2, sizeof(ad2));
			if (m != -EBADMSG || !all_zero(so, sizeof(so)))
				bad_rc++;
		}
		ok(bad_rc == 0, "%s: any one AD byte changed -> -EBADMSG, wiped", cn);
		ok(aead_open(a, so, sizeof(so), sc, sn, ad, sizeof(ad) - 1) == -EBADMSG,
		   "%s: AD one byte shorter -EBADMSG", cn);
		ok(aead_open(a, so, sizeof(so), sc, sn, NULL, 0) == -EBADMSG, "%s: AD missing -EBADMSG", cn);

		/* truncation: every shorter length */
		bad_rc = 0;
		for (size_t l = 0; l < sn; l++) {
			memset(so, 0xaa, sizeof(so));
			m = aead_open(a, so, sizeof(so), sc, l, ad, sizeof(ad));
			if (m != -EBADMSG)
				bad_rc++;
		}
		ok(bad_rc == 0, "%s: every truncation (0..%zu bytes) -> -EBADMSG", cn, sn - 1);
		/* extended by one byte */
		memcpy(tmp, sc, sn);
		tmp[sn] = 0;
		{
			uint8_t wide[64];

			ok(aead_open(a, wide, sizeof(wide), tmp, sn + 1, ad, sizeof(ad)) == -EBADMSG,
			   "%s: one byte appended -EBADMSG", cn);
		}

		/* wrong key */
		memset(so, 0xaa, sizeof(so));
		m = aead_open(b, so, sizeof(so), sc, sn, ad, sizeof(ad));
		ok(m == -EBADMSG && all_zero(so, sizeof(so)), "%s: wrong key (one bit) -EBADMSG, wiped", cn);
	}
	aead_free(a);
	aead_free(b);
}

/* The draft-irtf-cfrg-xchacha-03 A.3.1 vector, as nonce || ct || tag. */
static void test_kat_xchacha(void)
{
	static const char ct_hex[] =
		"bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
		"731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
		"2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
		"21f9664c97637da9768812f615c68b13b52e"
		"c0875924c1c7987947deafd8780acf49";
	static const char pt[] = "Ladies and Gentlemen of the class of '99: If I could offer you "
				 "only one tip for the future, sunscreen would be it.";
	const uint8_t ad[12] = { 0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3,
				 0xc4, 0xc5, 0xc6, 0xc7 };
	uint8_t key[32], item[24 + 256], out[256], item2[24 + 256], raw[256];
	size_t ptlen = strlen(pt), ctlen = 0;
	unsigned long long clen = 0;
	struct aead *a = NULL;
	ssize_t m, n;

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(0x80 + i);
	for (int i = 0; i < 24; i++)
		item[i] = (uint8_t)(0x40 + i);
	if (sodium_hex2bin(item + 24, sizeof(item) - 24, ct_hex, strlen(ct_hex), NULL, &ctlen, NULL) != 0) {
		ok(0, "KAT hex decodes");
		return;
	}
	ok(ctlen == ptlen + 16, "KAT: ciphertext+tag is %zu bytes", ctlen);
	if (!ok(aead_new(&a, AEAD_XCHACHA20POLY1305, key) == 0, "KAT: aead_new"))
		return;
	memset(out, 0xaa, sizeof(out));
	m = aead_open(a, out, sizeof(out), item, 24 + ctlen, ad, sizeof(ad));
	ok(m == (ssize_t)ptlen && !memcmp(out, pt, ptlen),
	   "KAT: aead_open accepts the draft-irtf-cfrg-xchacha A.3.1 vector as nonce||ct||tag");

	/* the same, built with the raw libsodium primitive and a fixed nonce */
	memcpy(item2, item, 24);
	crypto_aead_xchacha20poly1305_ietf_encrypt(item2 + 24, &clen, (const uint8_t *)pt, ptlen,
						   ad, sizeof(ad), NULL, item2, key);
	ok(clen == ctlen && !memcmp(item2, item, 24 + ctlen), "KAT: libsodium primitive reproduces the vector");
	m = aead_open(a, out, sizeof(out), item2, 24 + (size_t)clen, ad, sizeof(ad));
	ok(m == (ssize_t)ptlen && !memcmp(out, pt, ptlen), "KAT: aead_open accepts the primitive's output");

	/* and the other direction: aead_seal's output opens with the primitive */
	n = aead_seal(a, item2, sizeof(item2), (const uint8_t *)pt, ptlen, ad, sizeof(ad));
	ok(n == (ssize_t)(ptlen + 40) &&
	   crypto_aead_xchacha20poly1305_ietf_decrypt(raw, &clen, NULL, item2 + 24, (size_t)n - 24,
						      ad, sizeof(ad), item2, key) == 0 &&
	   clen == ptlen && !memcmp(raw, pt, ptlen),
	   "KAT: aead_seal output is nonce||ct||tag for the libsodium primitive");
	aead_free(a);
}

static void test_kat_gcm(void)
{
	uint8_t key[32], nonce[12], pt[100], ad[7] = "gcm-ad", item[12 + 100 + 16], out[100], raw[100];
	unsigned long long clen = 0;
	struct aead *a = NULL;
	ssize_t m, n;

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(3 * i + 1);
	for (int i = 0; i < 12; i++)
		nonce[i] = (uint8_t)(0xf0 - i);
	for (int i = 0; i < 100; i++)
		pt[i] = (uint8_t)i;
	memcpy(item, nonce, 12);
	crypto_aead_aes256gcm_encrypt(item + 12, &clen, pt, sizeof(pt), ad, sizeof(ad), NULL, nonce, key);
	if (!ok(aead_new(&a, AEAD_AES256GCM, key) == 0, "GCM KAT: aead_new"))
		return;
	m = aead_open(a, out, sizeof(out), item, 12 + (size_t)clen, ad, sizeof(ad));
	ok(m == (ssize_t)sizeof(pt) && !memcmp(out, pt, sizeof(pt)),
	   "GCM KAT: aead_open accepts the libsodium primitive's nonce||ct||tag");
	n = aead_seal(a, item, sizeof(item), pt, sizeof(pt), ad, sizeof(ad));
	ok(n == (ssize_t)sizeof(item) &&
	   crypto_aead_aes256gcm_decrypt(raw, &clen, NULL, item + 12, (size_t)n - 12, ad, sizeof(ad),
					 item, key) == 0 && clen == sizeof(pt) && !memcmp(raw, pt, sizeof(pt)),
	   "GCM KAT: aead_seal output opens with the libsodium primitive");
	aead_free(a);
}

/*
 * Large items go through libcrypto, small ones through libsodium: both
 * must produce standard GCM, so whichever sealed an item, the other opens
 * it, at every size around the switch and on both sides of a bad tag.
 */
static void test_gcm_bulk_interop(void)
{
	static const size_t sizes[] = { 1, 15, 16, 17, 4095, 16383, 16384, 16385, 65536, 65536 + 7, 1 << 20 };
	uint8_t key[32], ad[24];
	struct aead *a = NULL;
	size_t big = 1 << 20;
	uint8_t *pt = malloc(big), *ct = malloc(big + 28), *out = malloc(big);
	int fails = 0, tamper_ok = 1;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(ad, sizeof(ad));
	randombytes_buf(pt, big);
	if (!ok(pt && ct && out && aead_new(&a, AEAD_AES256GCM, key) == 0, "bulk: setup"))
		return;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (int dir = 0; dir < 2; dir++) {
			size_t n = sizes[i];
			ssize_t s, m;

			/* dir 0: libcrypto seals, libsodium opens; dir 1: the reverse */
			aead_set_bulk_min(dir == 0 ? 0 : SIZE_MAX);
			s = aead_seal(a, ct, n + 28, pt, n, ad, i % 2 ? 0 : sizeof(ad));
			aead_set_bulk_min(dir == 0 ? SIZE_MAX : 0);
			m = aead_open(a, out, n, ct, (size_t)s, ad, i % 2 ? 0 : sizeof(ad));
			if (s != (ssize_t)(n + 28) || m != (ssize_t)n || memcmp(out, pt, n))
				fails++;
			ct[12 + n + (i % 16)] ^= 1;	/* a tag byte */
			if (aead_open(a, out, n, ct, (size_t)s, ad, i % 2 ? 0 : sizeof(ad)) != -EBADMSG ||
			    !all_zero(out, n))
				tamper_ok = 0;
		}
	}
	aead_set_bulk_min(16384);
	ok(fails == 0, "bulk: libcrypto and libsodium open each other's items (%d failures)", fails);
	ok(tamper_ok, "bulk: a flipped tag bit fails with -EBADMSG and wipes out, either way");
	aead_free(a);
	free(pt);
	free(ct);
	free(out);
}

/*
 * After fork, parent and child would emit the same next nonce if the
 * child kept the parent's nonce stream: the child sends its next nonce
 * through a pipe and the parent compares it with its own next one.
 */
static void test_fork_nonces(void)
{
	uint8_t key[32], pt[32] = "same plaintext on both sides", ct[128], theirs[24];
	struct aead *a = NULL;
	int fds[2], status = 0;
	size_t nl = 24;
	pid_t pid;
	ssize_t n;

	randombytes_buf(key, sizeof(key));
	if (!ok(aead_new(&a, AEAD_XCHACHA20POLY1305, key) == 0 && pipe(fds) == 0,
		"fork: aead_new and pipe"))
		return;
	aead_seal(a, ct, sizeof(ct), pt, sizeof(pt), NULL, 0);	/* seeds the stream */
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		aead_seal(a, ct, sizeof(ct), pt, sizeof(pt), NULL, 0);
		_exit(write(fds[1], ct, nl) == (ssize_t)nl ? 0 : 1);
	}
	close(fds[1]);
	n = read(fds[0], theirs, nl);
	close(fds[0]);
	waitpid(pid, &status, 0);
	aead_seal(a, ct, sizeof(ct), pt, sizeof(pt), NULL, 0);
	ok(pid > 0 && n == (ssize_t)nl && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "fork: the child sealed and reported its nonce");
	ok(n == (ssize_t)nl && memcmp(theirs, ct, nl) != 0,
	   "fork: the child's next nonce differs from the parent's next nonce");
	aead_free(a);
}

/*
 * A VM restored from a memory snapshot is a copy of the process that is
 * told nothing: no atfork handler runs.  A raw fork(2) syscall makes such
 * a copy.  Parent and copy each seal a batch; no nonce may appear in both
 * (a stream seeded once would give both the same sequence).
 */
static void test_snapshot_nonces(enum aead_cipher c, size_t nl)
{
	enum { N = 16 };
	uint8_t key[32], pt[32] = { 1 }, ct[128], mine[N][24], theirs[N][24];
	struct aead *a = NULL;
	int fds[2], status = 0, same = 0;
	pid_t pid;
	ssize_t n;

	randombytes_buf(key, sizeof(key));
	if (!ok(aead_new(&a, c, key) == 0 && pipe(fds) == 0, "snapshot %s: aead_new and pipe",
		aead_cipher_name(c)))
		return;
	aead_seal(a, ct, sizeof(ct), pt, sizeof(pt), NULL, 0);
	pid = (pid_t)syscall(SYS_fork);
	if (pid == 0) {
		close(fds[0]);
		for (int i = 0; i < N; i++) {
			aead_seal(a, ct, sizeof(ct), pt, sizeof(pt), NULL, 0);
			memcpy(theirs[i], ct, nl);
		}
		_exit(write(fds[1], theirs, sizeof(theirs)) == (ssize_t)sizeof(theirs) ? 0 : 1);
	}
	close(fds[1]);
	for (int i = 0; i < N; i++) {
		aead_seal(a, ct, sizeof(ct), pt, sizeof(pt), NULL, 0);
		memcpy(mine[i], ct, nl);
	}
	n = read(fds[0], theirs, sizeof(theirs));
	close(fds[0]);
	waitpid(pid, &status, 0);
	for (int i = 0; i < N; i++)
		for (int j = 0; j < N; j++)
			same += !memcmp(mine[i], theirs[j], nl);
	ok(pid > 0 && n == (ssize_t)sizeof(theirs) && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	   same == 0, "snapshot %s: a copy made without atfork never repeats the original's "
	   "nonces (%d shared of %d)", aead_cipher_name(c), same, N);
	aead_free(a);
}

/* An AES-GCM key object seals at most its limit, then refuses untouched. */
static void test_seal_limit(void)
{
	uint8_t key[32], pt[100] = { 7 }, ct[200], back[100], before[200];
	struct aead *a = NULL, *b = NULL, *x = NULL;
	ssize_t n = 0;
	int fine = 1;

	randombytes_buf(key, sizeof(key));
	aead_test_seal_limit(5);
	if (!ok(aead_new(&a, AEAD_AES256GCM, key) == 0 && aead_new(&x, AEAD_XCHACHA20POLY1305, key) == 0,
		"limit: keys made with a limit of 5"))
		return;
	for (int i = 0; i < 5; i++)
		fine &= aead_seal(a, ct, sizeof(ct), pt, sizeof(pt), NULL, 0) > 0;
	ok(fine && aead_seals(a) == 5, "5 seals go through (%llu counted)",
	   (unsigned long long)aead_seals(a));
	memcpy(before, ct, sizeof(ct));
	n = aead_seal(a, ct, sizeof(ct), pt, sizeof(pt), NULL, 0);
	ok(n == -EKEYEXPIRED && !memcmp(before, ct, sizeof(ct)),
	   "the 6th: -EKEYEXPIRED, nothing written");
	ok(aead_seal(a, ct, sizeof(ct), pt, sizeof(pt), NULL, 0) == -EKEYEXPIRED && aead_seals(a) == 5,
	   "and it stays refused");
	ok(aead_open(a, back, sizeof(back), before, 100 + aead_overhead(a), NULL, 0) == 100,
	   "what it sealed still opens");
	fine = 1;
	for (int i = 0; i < 10; i++)
		fine &= aead_seal(x, ct, sizeof(ct), pt, sizeof(pt), NULL, 0) > 0;
	ok(fine, "XChaCha20 keys have no limit (192-bit nonces)");
	aead_test_seal_limit(UINT64_MAX);
	ok(aead_new(&b, AEAD_AES256GCM, key) == 0 &&
	   aead_seal(b, ct, sizeof(ct), pt, sizeof(pt), NULL, 0) > 0,
	   "the hook cannot raise the limit, and a new key object counts from 0");
	aead_test_seal_limit(0);
	aead_free(a);
	aead_free(b);
	aead_free(x);
}

int main(void)
{
	if (secure_init() < 0)
		return 2;
	test_names();
	test_cipher(AEAD_XCHACHA20POLY1305, 24);
	test_kat_xchacha();
	test_fork_nonces();
	test_snapshot_nonces(AEAD_XCHACHA20POLY1305, 24);
	if (aead_cipher_usable(AEAD_AES256GCM) == 0) {
		test_cipher(AEAD_AES256GCM, 12);
		test_kat_gcm();
		test_gcm_bulk_interop();
		test_snapshot_nonces(AEAD_AES256GCM, 12);
		test_seal_limit();
	} else {
		struct aead *a = (struct aead *)1;
		uint8_t key[32] = { 0 };

		printf("# AES-256-GCM not usable on this CPU: GCM round trips skipped\n");
		ok(aead_new(&a, AEAD_AES256GCM, key) == -ENOTSUP && a == NULL, "aead_new(GCM) -ENOTSUP");
	}
	return tap_done();
}
