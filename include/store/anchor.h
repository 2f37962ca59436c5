/*
 * anchor: the store's rollback anchor, KSDIR/<uuid-hex>.anchor, beside the
 * keystore and so outside the store and its backups.  It keeps a copy of
 * the index's integrity root (commit counter and root MAC) as it was last
 * made durable, so that a store put back from an older copy (a backup, a
 * snapshot, an index file swapped under the packs) is seen at mount: its
 * counter is behind the anchor's, or equal with another root.
 *
 * On disk, big-endian, exactly ANCHOR_LEN bytes (docs/FORMAT.md):
 *
 *   0  "MVANCH01"   8  uuid[16]   24 u64 counter   32 root mac[16]
 *   48 index digest[32] (zeros: none)   80 u32 flags   84 i64 time (unix s)
 *   92 MAC[32]: volkeys_anchor_mac over bytes 0..91
 *
 * The file is read only through O_NOFOLLOW and must be a regular file of
 * exactly ANCHOR_LEN bytes; the MAC is checked before any field is used.
 * It is replaced atomically: a new file under a random name in KSDIR
 * (O_CREAT|O_EXCL|O_NOFOLLOW, 0600), written, fsynced, renamed over the
 * old one, then KSDIR fsynced; a failed save leaves the old anchor.
 *
 * When it moves is the vault's business (fs/store/vault.c): only ever to
 * a state index_sync has made durable.
 */
#ifndef MEDVAULT_ANCHOR_H
#define MEDVAULT_ANCHOR_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/volkeys.h"
#include "store/index.h"

#define ANCHOR_MAGIC "MVANCH01"
#define ANCHOR_LEN 124
#define ANCHOR_MAC_OFF 92
#define ANCHOR_DIGEST_LEN 32
#define ANCHOR_UUID_LEN 16

/* flags */
#define ANCHOR_CLEAN 1u	/* written at a clean close: no daemon holds the store */

struct anchor {
	uint8_t uuid[ANCHOR_UUID_LEN];
	uint64_t counter;			/* the index's commit counter */
	uint8_t root_mac[INDEX_ROOT_MAC];	/* the index's root MAC at that commit */
	uint8_t digest[ANCHOR_DIGEST_LEN];	/* keyed digest of data.mdb; zeros: none */
	uint32_t flags;
	int64_t time;				/* when it was written, unix seconds */
};

/* Encode a (MAC included) into out.  Always succeeds. */
void anchor_encode(const struct volkeys *vk, const struct anchor *a, uint8_t out[ANCHOR_LEN]);
/* Decode and verify len bytes: 0, -EBADMSG (wrong size or magic, MAC
 * fails, or the uuid is not uuid: another volume's anchor).  *out is
 * written only on success. */
int anchor_decode(const struct volkeys *vk, const uint8_t uuid[ANCHOR_UUID_LEN],
		  const uint8_t *buf, size_t len, struct anchor *out);

/* KSDIR/<uuid-hex>.anchor into buf: 0, -ENAMETOOLONG */
int anchor_path(char *buf, size_t len, const char *ksdir, const uint8_t uuid[ANCHOR_UUID_LEN]);

/*
 * Load the anchor of volume uuid from ksdir.  0; -ENOENT there is none;
 * -EBADMSG not a regular file of the right size (a link, a FIFO, a
 * directory...), tampered, or another volume's; -errno of KSDIR or of the
 * read.  Never blocks on a FIFO, never follows a link at the anchor's name.
 */
int anchor_load(const char *ksdir, const struct volkeys *vk, const uint8_t uuid[ANCHOR_UUID_LEN],
		struct anchor *out);

/*
 * Replace the anchor of volume a->uuid in ksdir with a, crash-safely and
 * durably (see above).  0, or -errno (KSDIR missing or not writable,
 * -ENOSPC, -EIO...); on failure the previous anchor is untouched and no
 * temporary file is left.
 */
int anchor_save(const char *ksdir, const struct volkeys *vk, const struct anchor *a);
/* The same through the given temporary name inside ksdir, tried once
 * (tests: a link planted there must not be followed; -EEXIST). */
int anchor_save_via(const char *ksdir, const char *tmpname, const struct volkeys *vk,
		    const struct anchor *a);
/* An anchor anchor_encode made elsewhere (the daemon's unprivileged
 * server, which holds the keys; its root part writes KSDIR), saved as
 * anchor_save does.  Only the magic is checked: no key here.  -EBADMSG. */
int anchor_save_encoded(const char *ksdir, const uint8_t buf[ANCHOR_LEN]);

/* How a store's durable root stands against its anchor. */
enum anchor_cmp {
	ANCHOR_SAME,	/* the state the anchor names */
	ANCHOR_AHEAD,	/* newer: commits after the last move (a crash, or the rate limit) */
	ANCHOR_BEHIND,	/* older: *behind commits were rolled back */
	ANCHOR_FORKED,	/* same counter, another root: a different history */
};
/* Pure: compare the store's (counter, mac) with a.  *behind (may be
 * NULL) gets the number of commits the store lacks, 0 unless BEHIND. */
enum anchor_cmp anchor_compare(const struct anchor *a, uint64_t counter,
			       const uint8_t mac[INDEX_ROOT_MAC], uint64_t *behind);
/* "same", "ahead", "behind", "forked" */
const char *anchor_cmp_name(enum anchor_cmp c);

#endif
