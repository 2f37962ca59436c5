/*
 * Directory entries pad their names to a bucket: a raw LMDB view of the
 * dirent database, as someone holding the store but not the keys sees
 * it, shows value lengths of four sizes only, for names of every length
 * 1..255; every name still reads back (lookup and readdir), and one
 * renamed to another bucket's length too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/aead.h"
#include "crypto/secure.h"
#include "crypto/volkeys.h"
#include "store/index.h"
#include "../../tap.h"
#include "rawlmdb.h"

#define DIR_INO 7
#define NAMES 255
/* index values are XChaCha20-Poly1305: 24-byte nonce, 16-byte tag (FORMAT.md) */
#define SEAL_OVERHEAD 40

static char tmp[64], dir[128];
static uint8_t mk[32], uuid[16];
static struct volkeys *vk;

/* a name of len bytes that no other length shares a prefix with */
static void name_of(char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)('a' + (len + i) % 26);
	buf[len] = '\0';
}

static int put_all(struct index_txn *t, void *arg)
{
	char name[NAMES + 1];
	int rc;

	(void)arg;
	for (size_t len = 1; len <= NAMES; len++) {
		name_of(name, len);
		if ((rc = index_dirent_put(t, DIR_INO, name, len, 1000 + len, 8)) < 0)
			return rc;
	}
	return 0;
}

static int del_one(struct index_txn *t, void *arg)
{
	char name[NAMES + 1];

	name_of(name, *(size_t *)arg);
	return index_dirent_del(t, DIR_INO, name, *(size_t *)arg);
}

struct seen {
	unsigned by_len[NAMES + 1];
	unsigned wrong;
};

static int count_entry(void *ctx, const char *name, size_t len, uint64_t ino, uint8_t type,
		       uint64_t next_off)
{
	struct seen *s = ctx;
	char want[NAMES + 1];

	(void)next_off;
	if (len == 0 || len > NAMES) {
		s->wrong++;
		return 0;
	}
	name_of(want, len);
	if (memcmp(name, want, len) || ino != 1000 + len || type != 8)
		s->wrong++;
	s->by_len[len]++;
	return 0;
}

static size_t bucket_of(size_t len)
{
	return len <= 32 ? 32 : len <= 64 ? 64 : len <= 128 ? 128 : 255;
}

static void test_padding(void)
{
	struct index *ix = NULL;
	struct index_txn *t = NULL;
	char name[NAMES + 1];
	size_t over = SEAL_OVERHEAD, gone = 200;
	unsigned found = 0, bad_len = 0, per_size[4] = { 0 };
	struct seen s = { { 0 }, 0 };
	struct raw r;
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	rc = index_open(&ix, dir, uuid, vk, INDEX_CREATE);
	ok(rc == 0, "index created (%d)", rc);
	if (rc < 0)
		exit(2);
	rc = index_write(ix, put_all, NULL);
	ok(rc == 0, "entries with names of every length 1..255 written (%d)", rc);

	/* every name reads back, by lookup and by readdir */
	if (index_read_begin(ix, &t) == 0) {
		unsigned misses = 0;

		for (size_t len = 1; len <= NAMES; len++) {
			uint64_t ino = 0;
			uint8_t type = 0;

			name_of(name, len);
			if (index_dirent_get(t, DIR_INO, name, len, &ino, &type) < 0 ||
			    ino != 1000 + len || type != 8)
				misses++;
		}
		ok(misses == 0, "every name of length 1..255 is found by lookup (%u missed)", misses);
		rc = index_dirent_iter(t, DIR_INO, 0, count_entry, &s);
		index_read_end(t);
		{
			unsigned twice = 0, absent = 0;

			for (size_t len = 1; len <= NAMES; len++) {
				absent += s.by_len[len] == 0;
				twice += s.by_len[len] > 1;
			}
			ok(rc == 0 && s.wrong == 0 && absent == 0 && twice == 0,
			   "readdir returns each name exactly, with its inode and type (rc %d, "
			   "wrong %u, absent %u, twice %u)", rc, s.wrong, absent, twice);
		}
	}
	rc = index_write(ix, del_one, &gone);
	ok(rc == 0, "an entry is removed (%d)", rc);
	index_close(ix);

	/* what the store shows without the keys */
	if ((rc = raw_open(&r, dir, "dirent", 0))) {
		ok(0, "raw LMDB open of the dirent database (%d)", rc);
		return;
	}
	mdb_cursor_open(r.txn, r.dbi, &c);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		size_t room = v.mv_size - over - 10;

		found++;
		if (v.mv_size < over + 10)
			bad_len++;
		else if (room == 32)
			per_size[0]++;
		else if (room == 64)
			per_size[1]++;
		else if (room == 128)
			per_size[2]++;
		else if (room == 255)
			per_size[3]++;
		else
			bad_len++;
	}
	mdb_cursor_close(c);
	raw_close(&r, 0);
	ok(found == NAMES - 1, "the raw dirent database holds %u values (want %u)", found, NAMES - 1);
	ok(bad_len == 0, "every value's length is one of 4 bucket sizes (%u are not)", bad_len);
	ok(per_size[0] == 32 && per_size[1] == 32 && per_size[2] == 64 &&
	   per_size[3] == 127 - (bucket_of(gone) == 255),
	   "names of 1..32, 33..64, 65..128 and 129..255 bytes share one length each "
	   "(%u %u %u %u)", per_size[0], per_size[1], per_size[2], per_size[3]);

	/* padded records reopen and read back after a close */
	if (index_open(&ix, dir, uuid, vk, 0) == 0 && index_read_begin(ix, &t) == 0) {
		uint64_t ino = 0;
		uint8_t type = 0;

		name_of(name, NAMES);
		rc = index_dirent_get(t, DIR_INO, name, NAMES, &ino, &type);
		ok(rc == 0 && ino == 1000 + NAMES, "a 255-byte name reads back after reopening (%d)",
		   rc);
		name_of(name, gone);
		rc = index_dirent_get(t, DIR_INO, name, gone, &ino, &type);
		ok(rc == -ENOENT, "the removed entry stays gone (%d)", rc);
		/* a name that is a prefix of a padded one is another name */
		name_of(name, 40);
		rc = index_dirent_get(t, DIR_INO, name, 39, &ino, &type);
		ok(rc == -ENOENT, "padding is not taken for name bytes (%d)", rc);
		index_read_end(t);
	} else {
		ok(0, "reopen");
	}
	index_close(ix);
}

static void cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", tmp);
}

int main(void)
{
	if (secure_init() < 0)
		return 2;
	snprintf(tmp, sizeof(tmp), "/tmp/mv-pad-XXXXXX");
	if (!mkdtemp(tmp))
		return 2;
	atexit(cleanup);
	snprintf(dir, sizeof(dir), "%s/index", tmp);
	secure_random(mk, sizeof(mk));
	secure_random(uuid, sizeof(uuid));
	if (volkeys_derive(&vk, mk, AEAD_XCHACHA20POLY1305) < 0)
		return 2;
	test_padding();
	volkeys_free(vk);
	return tap_done();
}
