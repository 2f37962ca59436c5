#include "crypto/volkeys.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>
#include <sodium.h>

#include "util/byteorder.h"

/* crypto_kdf contexts: 8 bytes each, never change them (format). */
#define CTX_INDEX "mvindex_"
#define CTX_NAMES "mvnames_"
#define CTX_DOMAIN "mvdomain"
#define CTX_FILE "mvfile__"
#define CTX_CHUNK "mvchunk_"
#define CTX_CONF "mvconf__"
#define CTX_AUDIT "mvaudit_"
#define CTX_ANCHOR "mvanchor"
#define CTX_TREE "mvtree__"
#define CTX_IDXDIG "mvidxdig"

struct volkeys {
	enum aead_cipher content;
	struct aead *index;
	uint8_t names[32];
	uint8_t domain0[32];
	uint8_t audit[32];	/* seals the access trail (fs/audit/audit.c) */
	uint8_t anchor[32];	/* MACs the rollback anchor (fs/store/anchor.c) */
	uint8_t tree[32];	/* the index's integrity tree (fs/store/itree.c) */
	/* BLAKE2b keyed with tree, its key block already absorbed: each tree
	 * MAC starts from a copy (one compression less; most are short) */
	crypto_generichash_state tree_start;
	uint8_t idxdig[32];	/* keys the digest of data.mdb (volkeys_index_digest) */
};

int volkeys_derive(struct volkeys **out, const uint8_t *mk, enum aead_cipher content)
{
	struct volkeys *vk;
	uint8_t k[32];
	int rc;

	*out = NULL;
	if ((rc = aead_cipher_usable(content)) < 0)
		return rc;
	vk = sodium_malloc(sizeof(*vk));
	if (!vk)
		return -ENOMEM;
	memset(vk, 0, sizeof(*vk));
	vk->content = content;
	crypto_kdf_derive_from_key(k, sizeof(k), 1, CTX_INDEX, mk);
	rc = aead_new(&vk->index, AEAD_XCHACHA20POLY1305, k);
	sodium_memzero(k, sizeof(k));
	if (rc < 0) {
		sodium_free(vk);
		return rc;
	}
	crypto_kdf_derive_from_key(vk->names, sizeof(vk->names), 1, CTX_NAMES, mk);
	crypto_kdf_derive_from_key(vk->domain0, sizeof(vk->domain0),
				   VOLKEYS_DEFAULT_DOMAIN, CTX_DOMAIN, mk);
	crypto_kdf_derive_from_key(vk->audit, sizeof(vk->audit), 1, CTX_AUDIT, mk);
	crypto_kdf_derive_from_key(vk->anchor, sizeof(vk->anchor), 1, CTX_ANCHOR, mk);
	crypto_kdf_derive_from_key(vk->tree, sizeof(vk->tree), 1, CTX_TREE, mk);
	crypto_generichash_init(&vk->tree_start, vk->tree, sizeof(vk->tree), VOLKEYS_TREE_MAC_LEN);
	crypto_kdf_derive_from_key(vk->idxdig, sizeof(vk->idxdig), 1, CTX_IDXDIG, mk);
	sodium_mprotect_readonly(vk);
	*out = vk;
	return 0;
}

void volkeys_free(struct volkeys *vk)
{
	if (!vk)
		return;
	aead_free(vk->index);
	sodium_free(vk);
}

const struct aead *volkeys_index_aead(const struct volkeys *vk)
{
	return vk->index;
}

const uint8_t *volkeys_audit_key(const struct volkeys *vk)
{
	return vk->audit;
}

void volkeys_name_hash(const struct volkeys *vk, uint64_t parent,
		       const char *name, size_t len, uint8_t out[VOLKEYS_NAME_HASH_LEN])
{
	crypto_generichash_state st;
	uint8_t p[8];

	be64_put(p, parent);
	crypto_generichash_init(&st, vk->names, sizeof(vk->names), VOLKEYS_NAME_HASH_LEN);
	crypto_generichash_update(&st, p, sizeof(p));
	crypto_generichash_update(&st, (const uint8_t *)name, len);
	crypto_generichash_final(&st, out, VOLKEYS_NAME_HASH_LEN);
	sodium_memzero(&st, sizeof(st));
}

int volkeys_file_aead(const struct volkeys *vk, uint32_t domain, uint64_t ino,
		      struct aead **out)
{
	return volkeys_chunk_aead(vk, domain, ino, VOLKEYS_GEN_FILE, out);
}

uint64_t volkeys_chunk_gen(uint64_t keygen_epoch, uint64_t version)
{
	if (keygen_epoch == VOLKEYS_GEN_FILE || version >> 40 < keygen_epoch)
		return VOLKEYS_GEN_FILE;
	return version >> VOLKEYS_GEN_SHIFT;
}

int volkeys_chunk_aead(const struct volkeys *vk, uint32_t domain, uint64_t ino, uint64_t gen,
		       struct aead **out)
{
	uint8_t k[32], fk[32];
	int rc;

	*out = NULL;
	/* Only the default domain exists so far; others will live in the
	 * keystore so that destroying one crypto-erases its files. */
	if (domain != VOLKEYS_DEFAULT_DOMAIN)
		return -ENOENT;
	crypto_kdf_derive_from_key(fk, sizeof(fk), ino, CTX_FILE, vk->domain0);
	/* a generation is below 2^33 (versions are 64 bits): never the
	 * sentinel, so no generation's key is the file key */
	if (gen != VOLKEYS_GEN_FILE)
		crypto_kdf_derive_from_key(k, sizeof(k), gen, CTX_CHUNK, fk);
	else
		memcpy(k, fk, sizeof(k));
	rc = aead_new(out, vk->content, k);
	sodium_memzero(k, sizeof(k));
	sodium_memzero(fk, sizeof(fk));
	return rc;
}

void volkeys_conf_mac(const uint8_t *mk, const void *data, size_t len, uint8_t out[32])
{
	uint8_t k[32];

	crypto_kdf_derive_from_key(k, sizeof(k), 1, CTX_CONF, mk);
	crypto_auth_hmacsha512256(out, data, len, k);
	sodium_memzero(k, sizeof(k));
}

void volkeys_tree_mac(const struct volkeys *vk, const void *head, size_t hlen,
		      const void *body, size_t blen, uint8_t out[VOLKEYS_TREE_MAC_LEN])
{
	crypto_generichash_state st = vk->tree_start;

	crypto_generichash_update(&st, head, hlen);
	if (blen)
		crypto_generichash_update(&st, body, blen);
	crypto_generichash_final(&st, out, VOLKEYS_TREE_MAC_LEN);
	sodium_memzero(&st, sizeof(st));
}

void volkeys_anchor_mac(const struct volkeys *vk, const void *data, size_t len, uint8_t out[32])
{
	crypto_auth_hmacsha512256(out, data, len, vk->anchor);
}

int volkeys_index_digest(const struct volkeys *vk, int fd, uint8_t out[VOLKEYS_INDEX_DIGEST_LEN])
{
	enum { BLOCK = 1 << 20 };
	crypto_generichash_state st;
	struct stat sb;
	uint8_t len8[8], *buf;
	uint64_t off = 0;
	int rc = 0;

	if (fstat(fd, &sb) < 0)
		return -errno;
	if (!(buf = malloc(BLOCK)))
		return -ENOMEM;
	be64_put(len8, (uint64_t)sb.st_size);
	crypto_generichash_init(&st, vk->idxdig, sizeof(vk->idxdig), VOLKEYS_INDEX_DIGEST_LEN);
	crypto_generichash_update(&st, len8, sizeof(len8));
	while (off < (uint64_t)sb.st_size) {
		size_t want = (uint64_t)sb.st_size - off < BLOCK ? (size_t)((uint64_t)sb.st_size - off) : BLOCK;
		ssize_t n = pread(fd, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;	/* the file shrank under us */
			break;
		}
		crypto_generichash_update(&st, buf, (size_t)n);
		off += (uint64_t)n;
	}
	crypto_generichash_final(&st, out, VOLKEYS_INDEX_DIGEST_LEN);
	sodium_memzero(&st, sizeof(st));
	free(buf);
	if (rc < 0)
		sodium_memzero(out, VOLKEYS_INDEX_DIGEST_LEN);
	return rc;
}
