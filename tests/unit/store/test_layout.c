/* test_layout: the names inside STORE (they are the on-disk format) */
#include <errno.h>
#include <string.h>

#include "../../tap.h"
#include "store/layout.h"

int main(void)
{
	char p[64], tiny[8];
	volatile size_t tinylen = sizeof(tiny);	/* unknown to the compiler: no truncation warning */

	ok(store_path(p, sizeof(p), "/s", STORE_CONF) == 0 && !strcmp(p, "/s/medvault.conf"), "medvault.conf");
	ok(store_path(p, sizeof(p), "/s", STORE_LOCK) == 0 && !strcmp(p, "/s/medvault.lock"), "medvault.lock");
	ok(store_path(p, sizeof(p), "/s", STORE_SNAPSHOT_LOCK) == 0 && !strcmp(p, "/s/snapshot.lock"),
	   "snapshot.lock");
	ok(store_path(p, sizeof(p), "/s", STORE_INDEX) == 0 && !strcmp(p, "/s/index"), "index/");
	ok(store_path(p, sizeof(p), "/s", STORE_INDEX_DATA) == 0 && !strcmp(p, "/s/index/data.mdb"),
	   "index/data.mdb");
	ok(store_path(p, sizeof(p), "/s", STORE_INDEX_LOCK) == 0 && !strcmp(p, "/s/index/lock.mdb"),
	   "index/lock.mdb");
	ok(store_path(p, sizeof(p), "/s", STORE_PACKS) == 0 && !strcmp(p, "/s/packs"), "packs/");
	ok(store_pack_dir(p, sizeof(p), "/s", 0x1234) == 0 && !strcmp(p, "/s/packs/34"), "pack folder: low byte");
	ok(store_pack_path(p, sizeof(p), "/s", 0x1234) == 0 && !strcmp(p, "/s/packs/34/0000000000001234.pack"),
	   "pack file: 16 hex digits");
	ok(store_path(tiny, tinylen, "/s", STORE_CONF) == -ENAMETOOLONG, "too long => -ENAMETOOLONG");
	ok(store_pack_path(tiny, tinylen, "/s", 1) == -ENAMETOOLONG, "pack path too long => -ENAMETOOLONG");
	return tap_done();
}
