/*
 * volkeys: derivation is a pure function of the master key; name hashes
 * bind parent and name; per-file content keys bind the inode number; the
 * medvault.conf MAC is deterministic and keyed; format 3's chunk keys
 * differ per generation and from the file key, and the rule that picks one
 * holds at its boundaries.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include "crypto/aead.h"
#include "crypto/secure.h"
#include "crypto/volkeys.h"
#include "../../tap.h"

#define HL VOLKEYS_NAME_HASH_LEN

/* seal under x, open under y: 1 if it opens to the same plaintext */
static int cross_opens(const struct aead *x, const struct aead *y)
{
	uint8_t pt[33], ct[33 + 64], out[33];
	const uint8_t ad[] = "chunk-ad";
	ssize_t n, m;

	secure_random(pt, sizeof(pt));
	n = aead_seal(x, ct, sizeof(ct), pt, sizeof(pt), ad, sizeof(ad));
	if (n < 0)
		return 0;
	m = aead_open(y, out, sizeof(out), ct, (size_t)n, ad, sizeof(ad));
	return m == (ssize_t)sizeof(pt) && !memcmp(out, pt, sizeof(pt));
}

static void test_content(enum aead_cipher content, const uint8_t *mk, const uint8_t *mk2)
{
	const char *cn = aead_cipher_name(content);
	struct volkeys *a = NULL, *b = NULL, *o = NULL;
	struct aead *f5 = NULL, *f5b = NULL, *f6 = NULL, *fo5 = NULL, *fx = (struct aead *)1;

	ok(volkeys_derive(&a, mk, content) == 0 && a, "%s: derive", cn);
	ok(volkeys_derive(&b, mk, content) == 0 && b, "%s: derive again, same MK", cn);
	ok(volkeys_derive(&o, mk2, content) == 0 && o, "%s: derive, other MK", cn);
	if (!a || !b || !o)
		goto out;
	ok(volkeys_file_aead(a, VOLKEYS_DEFAULT_DOMAIN, 5, &f5) == 0 && f5, "%s: file aead ino 5", cn);
	ok(volkeys_file_aead(b, VOLKEYS_DEFAULT_DOMAIN, 5, &f5b) == 0 && f5b, "%s: file aead ino 5 again", cn);
	ok(volkeys_file_aead(a, VOLKEYS_DEFAULT_DOMAIN, 6, &f6) == 0 && f6, "%s: file aead ino 6", cn);
	ok(volkeys_file_aead(o, VOLKEYS_DEFAULT_DOMAIN, 5, &fo5) == 0 && fo5, "%s: file aead ino 5, other MK", cn);
	ok(volkeys_file_aead(a, 7, 5, &fx) == -ENOENT && fx == NULL, "%s: unknown key domain -ENOENT", cn);
	if (!f5 || !f5b || !f6 || !fo5)
		goto out;
	ok(aead_overhead(f5) == (content == AEAD_AES256GCM ? 12u + 16 : 24u + 16),
	   "%s: file aead uses the content cipher", cn);
	ok(aead_overhead(volkeys_index_aead(a)) == 24 + 16, "%s: index aead is always XChaCha", cn);
	ok(cross_opens(f5, f5), "%s: chunk for ino 5 opens with ino 5", cn);
	ok(cross_opens(f5, f5b), "%s: chunk for ino 5 opens with a re-derived ino 5 key", cn);
	ok(!cross_opens(f5, f6), "%s: chunk sealed for ino 5 does not open with ino 6's aead", cn);
	ok(!cross_opens(f6, f5), "%s: chunk sealed for ino 6 does not open with ino 5's aead", cn);
	ok(!cross_opens(f5, fo5), "%s: chunk for ino 5 does not open under another MK's ino 5", cn);
	if (content == AEAD_XCHACHA20POLY1305)
		ok(!cross_opens(f5, volkeys_index_aead(a)), "%s: file key is not the index key", cn);
out:
	aead_free(f5);
	aead_free(f5b);
	aead_free(f6);
	aead_free(fo5);
	volkeys_free(a);
	volkeys_free(b);
	volkeys_free(o);
}

/* seal a chunk of version ver under the key the rule picks, as filedata does */
static ssize_t seal_chunk(const struct volkeys *vk, uint64_t keygen_epoch, uint64_t ino,
			  uint64_t ver, uint8_t *ct, size_t cap, const uint8_t *pt, size_t len)
{
	struct aead *k = NULL;
	uint8_t ad[16];
	ssize_t n;

	memcpy(ad, &ino, 8);
	memcpy(ad + 8, &ver, 8);
	if (volkeys_chunk_aead(vk, VOLKEYS_DEFAULT_DOMAIN, ino, volkeys_chunk_gen(keygen_epoch, ver), &k) < 0)
		return -ENOMEM;
	n = aead_seal(k, ct, cap, pt, len, ad, sizeof(ad));
	aead_free(k);
	return n;
}

/* 1 if the chunk ct opens as version ver of inode ino */
static int chunk_opens(const struct volkeys *vk, uint64_t keygen_epoch, uint64_t ino,
		       uint64_t ver, const uint8_t *ct, size_t n)
{
	struct aead *k = NULL;
	uint8_t ad[16], out[64];
	ssize_t m;

	memcpy(ad, &ino, 8);
	memcpy(ad + 8, &ver, 8);
	if (volkeys_chunk_aead(vk, VOLKEYS_DEFAULT_DOMAIN, ino, volkeys_chunk_gen(keygen_epoch, ver), &k) < 0)
		return 0;
	m = aead_open(k, out, sizeof(out), ct, n, ad, sizeof(ad));
	aead_free(k);
	return m == 33;
}

static void test_generations(enum aead_cipher content, const uint8_t *mk)
{
	const char *cn = aead_cipher_name(content);
	const uint64_t E = 7, G = VOLKEYS_GEN_FILE;
	struct volkeys *a = NULL;
	struct aead *file = NULL, *g0 = NULL, *g0b = NULL, *g1 = NULL, *g0o = NULL, *gx = (struct aead *)1;
	uint8_t pt[33], ct[33 + 64];
	ssize_t n;
	uint64_t v_old = (E - 1) << 40 | 5, v_new = E << 40 | 5, v_next = (E << 40) | (1ull << 31) | 5;

	ok(volkeys_derive(&a, mk, content) == 0 && a, "%s: derive for generations", cn);
	if (!a)
		return;
	/* the rule, at its boundaries */
	ok(volkeys_chunk_gen(G, 0) == G && volkeys_chunk_gen(G, UINT64_MAX) == G,
	   "%s: a format-2 store (no keygen epoch): every chunk has the file key", cn);
	ok(volkeys_chunk_gen(E, ((E - 1) << 40) | ((1ull << 40) - 1)) == G,
	   "%s: the last version of epoch E-1 has the file key", cn);
	ok(volkeys_chunk_gen(E, E << 40) == E << 9, "%s: the first version of epoch E has generation E<<9", cn);
	ok(volkeys_chunk_gen(E, (E << 40) | ((1ull << 31) - 1)) == E << 9 &&
	   volkeys_chunk_gen(E, (E << 40) | (1ull << 31)) == (E << 9) + 1,
	   "%s: a generation holds exactly 2^31 versions", cn);
	ok(volkeys_chunk_gen(E, (E + 1) << 40) == (E + 1) << 9 &&
	   volkeys_chunk_gen(E, (E << 40) | ((1ull << 40) - 1)) == (E << 9) + 511,
	   "%s: each epoch (mount) starts a new generation", cn);
	ok(volkeys_chunk_gen(0, 1) == 0 && volkeys_chunk_gen(0, UINT64_MAX) == (UINT64_MAX >> 31),
	   "%s: keygen epoch 0 (made as format 3): every chunk derived, the top generation is not the sentinel", cn);

	/* the keys */
	ok(volkeys_file_aead(a, VOLKEYS_DEFAULT_DOMAIN, 5, &file) == 0 &&
	   volkeys_chunk_aead(a, VOLKEYS_DEFAULT_DOMAIN, 5, 0, &g0) == 0 &&
	   volkeys_chunk_aead(a, VOLKEYS_DEFAULT_DOMAIN, 5, 0, &g0b) == 0 &&
	   volkeys_chunk_aead(a, VOLKEYS_DEFAULT_DOMAIN, 5, 1, &g1) == 0 &&
	   volkeys_chunk_aead(a, VOLKEYS_DEFAULT_DOMAIN, 6, 0, &g0o) == 0, "%s: chunk keys derived", cn);
	ok(volkeys_chunk_aead(a, 3, 5, 0, &gx) == -ENOENT && gx == NULL, "%s: unknown domain -ENOENT", cn);
	if (file && g0 && g0b && g1 && g0o) {
		ok(cross_opens(g0, g0b), "%s: a generation's key is deterministic", cn);
		ok(!cross_opens(g0, g1) && !cross_opens(g1, g0), "%s: generations 0 and 1 differ", cn);
		ok(!cross_opens(g0, file) && !cross_opens(file, g0), "%s: generation 0 is not the file key", cn);
		ok(!cross_opens(g0, g0o), "%s: generation 0 of inode 6 is not inode 5's", cn);
	}

	/* chunks across the upgrade: old ones keep the file key, new ones
	 * derive; a chunk replayed under another version fails */
	secure_random(pt, sizeof(pt));
	n = seal_chunk(a, G, 5, v_old, ct, sizeof(ct), pt, sizeof(pt));
	ok(n > 0 && chunk_opens(a, E, 5, v_old, ct, (size_t)n),
	   "%s: a chunk sealed before the upgrade (format 2) reads after it", cn);
	ok(n > 0 && chunk_opens(a, G, 5, v_old, ct, (size_t)n),
	   "%s: and still reads as format 2", cn);
	ok(n > 0 && !chunk_opens(a, E - 1, 5, v_old, ct, (size_t)n),
	   "%s: read under a derived key (a keygen epoch moved back) it fails", cn);
	n = seal_chunk(a, E, 5, v_new, ct, sizeof(ct), pt, sizeof(pt));
	ok(n > 0 && chunk_opens(a, E, 5, v_new, ct, (size_t)n), "%s: a chunk sealed after the upgrade reads", cn);
	ok(n > 0 && !chunk_opens(a, G, 5, v_new, ct, (size_t)n),
	   "%s: a format-2 reader cannot open it (it would need the keygen epoch)", cn);
	ok(n > 0 && !chunk_opens(a, E + 1, 5, v_new, ct, (size_t)n),
	   "%s: a keygen epoch moved forward (its key taken for the file key) fails", cn);
	ok(n > 0 && !chunk_opens(a, E, 5, v_next, ct, (size_t)n) && !chunk_opens(a, E, 5, v_old, ct, (size_t)n),
	   "%s: its record replayed under the next generation's or an old version fails", cn);
	aead_free(file);
	aead_free(g0);
	aead_free(g0b);
	aead_free(g1);
	aead_free(g0o);
	volkeys_free(a);
}

/* digest of a temp file holding data[0..len) */
static int digest_of(const struct volkeys *vk, const uint8_t *data, size_t len, uint8_t out[32])
{
	char path[] = "/tmp/mv-vkdig-XXXXXX";
	int fd = mkstemp(path), rc;

	if (fd < 0)
		return -errno;
	unlink(path);
	rc = write(fd, data, len) == (ssize_t)len ? volkeys_index_digest(vk, fd, out) : -EIO;
	close(fd);
	return rc;
}

/* the index digest: keyed, covers every byte and the length */
static void test_index_digest(const struct volkeys *a, const struct volkeys *b,
			      const struct volkeys *o)
{
	size_t len = (3u << 20) + 123;	/* several read blocks and a partial one */
	uint8_t *d = malloc(len + 1), x[32], y[32], z[32];
	int fd;

	if (!d)
		return;
	for (size_t i = 0; i < len; i++)
		d[i] = (uint8_t)(i * 2654435761u >> 13);
	ok(digest_of(a, d, len, x) == 0 && digest_of(b, d, len, y) == 0 && !memcmp(x, y, 32),
	   "index digest: the same for the same MK and bytes");
	ok(digest_of(o, d, len, z) == 0 && memcmp(x, z, 32), "index digest: keyed by MK");
	d[len - 1] ^= 1;
	ok(digest_of(a, d, len, y) == 0 && memcmp(x, y, 32), "index digest: covers the last byte");
	d[len - 1] ^= 1;
	d[0] ^= 0x80;
	ok(digest_of(a, d, len, y) == 0 && memcmp(x, y, 32), "index digest: covers the first byte");
	d[0] ^= 0x80;
	d[len] = 0;
	ok(digest_of(a, d, len + 1, y) == 0 && memcmp(x, y, 32), "index digest: a zero appended changes it");
	ok(digest_of(a, d, 0, y) == 0 && memcmp(x, y, 32), "index digest: empty file");
	fd = open("/nonexistent-dir", O_RDONLY);
	ok(volkeys_index_digest(a, fd, y) == -EBADF, "index digest: a bad fd is -EBADF");
	free(d);
}

int main(void)
{
	uint8_t mk[32], mk2[32], h1[HL], h2[HL], h3[HL], m1[32], m2[32], m3[32];
	struct volkeys *a = NULL, *b = NULL, *o = NULL, *x = (struct volkeys *)1;
	char name255[255];

	if (secure_init() < 0)
		return 2;
	secure_random(mk, sizeof(mk));
	memcpy(mk2, mk, 32);
	mk2[0] ^= 0x01;

	ok(volkeys_derive(&a, mk, AEAD_XCHACHA20POLY1305) == 0 && a, "derive");
	ok(volkeys_derive(&b, mk, AEAD_XCHACHA20POLY1305) == 0 && b, "derive again");
	ok(volkeys_derive(&o, mk2, AEAD_XCHACHA20POLY1305) == 0 && o, "derive with MK differing in one bit");
	ok(volkeys_derive(&x, mk, (enum aead_cipher)42) == -ENOTSUP && x == NULL, "unknown content cipher -ENOTSUP");
	if (!a || !b || !o)
		return tap_done();

	test_index_digest(a, b, o);

	/* name hashes */
	volkeys_name_hash(a, 1, "hello", 5, h1);
	volkeys_name_hash(b, 1, "hello", 5, h2);
	ok(!memcmp(h1, h2, HL), "name hash deterministic for the same MK");
	volkeys_name_hash(o, 1, "hello", 5, h3);
	ok(memcmp(h1, h3, HL) != 0, "name hash differs under a different MK");
	volkeys_name_hash(a, 2, "hello", 5, h2);
	ok(memcmp(h1, h2, HL) != 0, "name hash differs by parent");
	volkeys_name_hash(a, 1ull << 56, "hello", 5, h2);
	ok(memcmp(h1, h2, HL) != 0, "name hash differs by the parent's top byte");
	volkeys_name_hash(a, 1, "hellp", 5, h2);
	ok(memcmp(h1, h2, HL) != 0, "name hash differs by name");
	volkeys_name_hash(a, 1, "hello", 4, h2);
	ok(memcmp(h1, h2, HL) != 0, "name hash covers exactly len bytes (prefix differs)");
	volkeys_name_hash(a, 1, "hello!", 5, h2);
	ok(!memcmp(h1, h2, HL), "name hash ignores bytes past len");
	volkeys_name_hash(a, 1, "a\0b", 3, h2);
	volkeys_name_hash(a, 1, "a\0c", 3, h3);
	ok(memcmp(h2, h3, HL) != 0, "name hash does not stop at NUL");
	memset(name255, 'z', sizeof(name255));
	volkeys_name_hash(a, 1, name255, 255, h2);
	volkeys_name_hash(b, 1, name255, 255, h3);
	ok(!memcmp(h2, h3, HL) && memcmp(h1, h2, HL), "255-byte name hashes deterministically");
	{
		uint8_t z[HL] = { 0 };

		volkeys_name_hash(a, 0, "", 0, h2);
		ok(memcmp(h2, z, HL) != 0, "hash of (0, \"\") is not all zero");
	}

	/* index keys */
	ok(cross_opens(volkeys_index_aead(a), volkeys_index_aead(b)), "index key deterministic for the same MK");
	ok(!cross_opens(volkeys_index_aead(a), volkeys_index_aead(o)), "index key differs for a different MK");

	/* content keys, both ciphers */
	test_content(AEAD_XCHACHA20POLY1305, mk, mk2);
	test_generations(AEAD_XCHACHA20POLY1305, mk);
	if (aead_cipher_usable(AEAD_AES256GCM) == 0) {
		test_content(AEAD_AES256GCM, mk, mk2);
		test_generations(AEAD_AES256GCM, mk);
	}
	else
		printf("# AES-256-GCM not usable here: GCM content keys skipped\n");

	/* conf MAC */
	volkeys_conf_mac(mk, "format=1\n", 9, m1);
	volkeys_conf_mac(mk, "format=1\n", 9, m2);
	ok(!memcmp(m1, m2, 32), "conf mac deterministic");
	volkeys_conf_mac(mk2, "format=1\n", 9, m3);
	ok(memcmp(m1, m3, 32) != 0, "conf mac depends on the key");
	volkeys_conf_mac(mk, "format=2\n", 9, m3);
	ok(memcmp(m1, m3, 32) != 0, "conf mac depends on the data");
	volkeys_conf_mac(mk, "format=1\n", 8, m3);
	ok(memcmp(m1, m3, 32) != 0, "conf mac depends on the length");
	{
		/* it is keyed: not the plain HMAC under the master key itself */
		uint8_t plain[32];

		secure_mac(plain, mk, "format=1\n", 9);
		ok(memcmp(m1, plain, 32) != 0, "conf mac key is derived, not the master key");
	}

	volkeys_free(a);
	volkeys_free(b);
	volkeys_free(o);
	volkeys_free(NULL);
	return tap_done();
}
