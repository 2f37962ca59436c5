/*
 * blobstore: sealed chunks appended to pack files, STORE/packs/XX/<id>.pack.
 *
 * A pack is written by one daemon only, append-only, and never reopened for
 * appending after a restart (its tail may hold a write the index never
 * committed), so every byte the index references is immutable.  Once a pack
 * reaches the target size it is closed ("sealed") and a new one is started.
 * The blobstore knows nothing of what the bytes mean: position in the index,
 * identity in the AEAD's associated data.
 */
#ifndef MEDVAULT_BLOBSTORE_H
#define MEDVAULT_BLOBSTORE_H

#include <stddef.h>
#include <stdint.h>

#define BLOBSTORE_HEADER_LEN 32
/* largest single append: a write-back batch of several sealed chunks */
#define BLOBSTORE_CHUNK_MAX (64u << 20)

struct blobstore;

struct blob_loc {
	uint64_t pack;
	uint64_t off;
	uint32_t len;
};

/*
 * Open STORE/packs.  New pack ids start above both min_id and every pack
 * found on disk, so an id is never reused.  -errno.
 */
int blobstore_open(struct blobstore **out, const char *store, const uint8_t uuid[16],
		   uint64_t pack_size, uint64_t min_id);
void blobstore_close(struct blobstore *bs);

/* Create STORE/packs; used by init.  -errno. */
int blobstore_create(const char *store);

/*
 * Append one sealed chunk to the open pack; thread-safe, and the write
 * itself runs outside the lock so sealers proceed in parallel.
 * -ENOSPC, -EIO, -EFBIG (len > BLOBSTORE_CHUNK_MAX).
 */
int blobstore_append(struct blobstore *bs, const uint8_t *buf, size_t len,
		     struct blob_loc *loc);

/*
 * Same, for a caller whose buffer may be scribbled on up to cap bytes: a
 * large run from a 4 KiB-aligned buffer with cap >= len rounded up to
 * 4 KiB is written with O_DIRECT at a 4 KiB-aligned offset, bypassing the
 * page cache.  cap 0: always through the page cache.
 */
int blobstore_append_buf(struct blobstore *bs, uint8_t *buf, size_t len, size_t cap,
			 struct blob_loc *loc);

/* Read exactly loc->len bytes.  -ENOENT missing pack, -EIO short or failed read. */
int blobstore_read(struct blobstore *bs, const struct blob_loc *loc, uint8_t *buf);

/*
 * Make every append that returned before this call durable (fdatasync of
 * the packs written since the last sync, fsync of new pack directories).
 * Concurrent callers share the work.  -EIO.
 */
int blobstore_sync(struct blobstore *bs);

/* Close the open pack so the next append starts a new one (snapshots). */
void blobstore_seal_open(struct blobstore *bs);

/* Delete a pack that no index record references any more.  -errno. */
int blobstore_pack_remove(struct blobstore *bs, uint64_t pack);

/* The pack being appended to, 0 if none (compaction leaves it alone). */
uint64_t blobstore_open_id(struct blobstore *bs);

/* Size of a pack file, -errno (-ENOENT: gone). */
int64_t blobstore_pack_size(struct blobstore *bs, uint64_t pack);

/*
 * STORE's directory descriptor (the blobstore's; do not close it): what
 * runs after the daemon dropped root reaches the store through it, since
 * the service account may not be able to walk STORE's path.
 */
int blobstore_dirfd(struct blobstore *bs);

/* Highest pack id handed out so far (0 if none). */
uint64_t blobstore_last_id(struct blobstore *bs);

/*
 * Every pack file under STORE/packs, in no particular order: cb gets its
 * id and size (stat'ed; a pack removed meanwhile is skipped) and returns
 * 0 to go on, non-zero to stop (returned).  -errno if packs/ is unreadable.
 */
typedef int (*blobstore_scan_cb)(void *ctx, uint64_t pack, uint64_t size);
int blobstore_scan(const char *store, blobstore_scan_cb cb, void *ctx);

/* Path of a pack, for tools (fsck, snapshot). */
void blobstore_pack_path(const char *store, uint64_t pack, char *out, size_t outlen);

#endif
