/*
 * layout: every file and folder inside STORE, named once.
 *
 *   STORE/medvault.conf        the volume card (volconf.c), written last at init
 *   STORE/medvault.lock        flock'd by the mounted daemon, holds its PID (vault.c)
 *   STORE/snapshot.lock        shared by snapshots, exclusive to delete packs
 *   STORE/index/               the LMDB environment (index.c)
 *   STORE/index/data.mdb         LMDB's own names for its two files
 *   STORE/index/lock.mdb
 *   STORE/packs/<xx>/<16 hex digits>.pack
 *                              a pack; xx is the low byte of its id, in hex
 *
 * medvault.conf is replaced through .medvault.conf.tmp.<16 random hex>
 * (util/safefile.h: nothing here is followed or waited on).
 * The keystore is not here: KSDIR never lives inside STORE, and crypto/
 * names its file (keystore_path: KSDIR/<uuid-hex>.keys).  Beside it lies
 * the store's rollback anchor, KSDIR/<uuid-hex>.anchor (fs/store/anchor.c),
 * replaced through KSDIR/.<uuid-hex>.anchor.<16 random hex>.  Shell scripts
 * (scripts/medvault-backup, scripts/bench-scale.sh) spell these names too.
 */
#ifndef MEDVAULT_STORE_LAYOUT_H
#define MEDVAULT_STORE_LAYOUT_H

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define STORE_CONF_NAME "medvault.conf"
#define STORE_LOCK_NAME "medvault.lock"
#define STORE_SNAPSHOT_LOCK_NAME "snapshot.lock"
#define STORE_INDEX_NAME "index"
#define STORE_INDEX_DATA_NAME "data.mdb"	/* inside STORE_INDEX_NAME */
#define STORE_INDEX_LOCK_NAME "lock.mdb"	/* inside STORE_INDEX_NAME */
#define STORE_PACKS_NAME "packs"
#define STORE_PACK_SUFFIX ".pack"
/* in KSDIR, after the volume id in 32 hex digits, as the keystore's ".keys" */
#define KEYSTORE_ANCHOR_SUFFIX ".anchor"

enum store_entry {
	STORE_CONF,
	STORE_LOCK,
	STORE_SNAPSHOT_LOCK,
	STORE_INDEX,
	STORE_INDEX_DATA,
	STORE_INDEX_LOCK,
	STORE_PACKS,
};

/* the entry's path relative to STORE */
static inline const char *store_entry_name(enum store_entry e)
{
	static const char *const names[] = {
		[STORE_CONF] = STORE_CONF_NAME,
		[STORE_LOCK] = STORE_LOCK_NAME,
		[STORE_SNAPSHOT_LOCK] = STORE_SNAPSHOT_LOCK_NAME,
		[STORE_INDEX] = STORE_INDEX_NAME,
		[STORE_INDEX_DATA] = STORE_INDEX_NAME "/" STORE_INDEX_DATA_NAME,
		[STORE_INDEX_LOCK] = STORE_INDEX_NAME "/" STORE_INDEX_LOCK_NAME,
		[STORE_PACKS] = STORE_PACKS_NAME,
	};

	return names[e];
}

/* store/<entry> into buf[len]: 0, -ENAMETOOLONG (buf then holds a cut path) */
static inline int store_path(char *buf, size_t len, const char *store, enum store_entry e)
{
	int n = snprintf(buf, len, "%s/%s", store, store_entry_name(e));

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* store/packs/<xx>, the folder of pack id: 0, -ENAMETOOLONG */
static inline int store_pack_dir(char *buf, size_t len, const char *store, uint64_t pack)
{
	int n = snprintf(buf, len, "%s/" STORE_PACKS_NAME "/%02x", store, (unsigned)(pack & 0xff));

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* store/packs/<xx>/<16 hex>.pack: 0, -ENAMETOOLONG */
static inline int store_pack_path(char *buf, size_t len, const char *store, uint64_t pack)
{
	int n = snprintf(buf, len, "%s/" STORE_PACKS_NAME "/%02x/%016" PRIx64 STORE_PACK_SUFFIX,
			 store, (unsigned)(pack & 0xff), pack);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ksdir/<uuid_hex>.anchor: 0, -ENAMETOOLONG */
static inline int keystore_anchor_path(char *buf, size_t len, const char *ksdir, const char *uuid_hex)
{
	int n = snprintf(buf, len, "%s/%s" KEYSTORE_ANCHOR_SUFFIX, ksdir, uuid_hex);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

#endif
