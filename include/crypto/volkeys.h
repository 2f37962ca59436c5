/*
 * volkeys: every key the filesystem uses, derived from the master key with
 * crypto_kdf (BLAKE2b) so the master key itself is touched once per mount.
 *
 *   index   XChaCha20-Poly1305 key sealing every LMDB value
 *   names   BLAKE2b key hashing (parent, name) into dirent/xattr keys
 *   audit   XChaCha20-Poly1305 key sealing the access trail (fs/audit/audit.c)
 *   anchor  HMAC key of the rollback anchor beside the keystore (fs/store/anchor.c)
 *   domain  per key-domain root; per-file content keys derive from it with
 *           the inode number, which is never reused in a volume, so a
 *           96-bit random GCM nonce only ever meets one file's chunks.
 *   chunk   format 3: a chunk's key derives from its file's key and the
 *           chunk's key generation (version >> 31), so no key seals more
 *           than 2^31 chunks, however long the file lives.
 */
#ifndef MEDVAULT_VOLKEYS_H
#define MEDVAULT_VOLKEYS_H

#include <stddef.h>
#include <stdint.h>
#include "crypto/aead.h"

#define VOLKEYS_NAME_HASH_LEN 16
#define VOLKEYS_DEFAULT_DOMAIN 0

struct volkeys;

/* -ENOMEM, -ENOTSUP (content cipher not usable here) */
int volkeys_derive(struct volkeys **out, const uint8_t *mk, enum aead_cipher content);
void volkeys_free(struct volkeys *vk);

const struct aead *volkeys_index_aead(const struct volkeys *vk);

/* 32 bytes (guarded, read-only, lives as long as vk): the access-trail key */
const uint8_t *volkeys_audit_key(const struct volkeys *vk);

void volkeys_name_hash(const struct volkeys *vk, uint64_t parent,
		       const char *name, size_t len, uint8_t out[VOLKEYS_NAME_HASH_LEN]);

/* The content AEAD of one file; free with aead_free.  -ENOMEM, -ENOENT
 * (unknown key domain). */
int volkeys_file_aead(const struct volkeys *vk, uint32_t domain, uint64_t ino,
		      struct aead **out);

/*
 * Which key sealed the chunk of this version: VOLKEYS_GEN_FILE (the file
 * key itself, as format 2 seals) or its key generation, version >> 31.
 * keygen_epoch is the store's meta `keygen_epoch` (VOLKEYS_GEN_FILE for a
 * format-2 store): chunks of an older epoch (version >> 40) keep the file
 * key.  Every mount has a new epoch, and a mount's versions come from one
 * counter, so a generation spans at most 2^31 versions of one mount.
 */
#define VOLKEYS_GEN_FILE UINT64_MAX
#define VOLKEYS_GEN_SHIFT 31
uint64_t volkeys_chunk_gen(uint64_t keygen_epoch, uint64_t version);

/* The content AEAD of generation gen of one file's chunks (gen
 * VOLKEYS_GEN_FILE: the file's key, volkeys_file_aead); free with
 * aead_free.  -ENOMEM, -ENOENT (unknown key domain). */
int volkeys_chunk_aead(const struct volkeys *vk, uint32_t domain, uint64_t ino, uint64_t gen,
		       struct aead **out);

/* The key authenticating medvault.conf, straight from the master key. */
void volkeys_conf_mac(const uint8_t *mk, const void *data, size_t len, uint8_t out[32]);

/* HMAC-SHA-512/256 of the rollback anchor's bytes (fs/store/anchor.c),
 * keyed with crypto_kdf(MK, id 1, "mvanchor"), a key that lives in vk's
 * guarded memory.  Compare results with secure_memcmp. */
void volkeys_anchor_mac(const struct volkeys *vk, const void *data, size_t len, uint8_t out[32]);

/*
 * The integrity tree's MAC (keyed BLAKE2b-128) over head || body: record
 * fingerprints, tree nodes and the root (fs/store/itree.c).  Keyed, so
 * someone without the keys can neither forge nor predict one.
 */
#define VOLKEYS_TREE_MAC_LEN 16
void volkeys_tree_mac(const struct volkeys *vk, const void *head, size_t hlen,
		      const void *body, size_t blen, uint8_t out[VOLKEYS_TREE_MAC_LEN]);

/*
 * The keyed digest of an index file (STORE/index/data.mdb) as it is on
 * disk: BLAKE2b-256 keyed with crypto_kdf_derive_from_key(32, id 1,
 * "mvidxdig", MK), over the file's size (8 bytes, big-endian) and then
 * every byte of it, read through fd from offset 0.  Recorded with the
 * anchor at clean unmount; a mount whose file still has it may skip the
 * structural check (store/index_check.h).  The caller holds the store's
 * lock so the file does not change meanwhile.  0, or -errno (-EIO if it
 * shrank while read); out is zeroed on failure.
 */
#define VOLKEYS_INDEX_DIGEST_LEN 32
int volkeys_index_digest(const struct volkeys *vk, int fd, uint8_t out[VOLKEYS_INDEX_DIGEST_LEN]);

#endif
