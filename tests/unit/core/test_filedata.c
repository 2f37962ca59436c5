/*
 * filedata: file contents in 4 KiB chunks on a real store, without FUSE.
 * Reads and writes across chunk boundaries (buffered, written back, and
 * after a remount), holes read as zeros, truncate and fallocate never
 * bring old bytes back, and damaged or misplaced chunks read as -EIO:
 * never as garbage, never as someone else's data.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../fsutil.h"
#include "../../tap.h"

#define CS 4096u
#define ROOT INDEX_ROOT_INO

static struct tu_env env;
static struct tu_fs m;

static void remount(void)
{
	tu_umount(&m);
	tu_mount_or_bail(&env, env.store, &m);
}

static uint64_t blocks_of(uint64_t ino)
{
	struct mv_attr a;

	return ns_getattr(m.fs, ino, &a) == 0 ? a.blocks : UINT64_MAX;
}

static struct mv_inode *pin(uint64_t ino)
{
	struct mv_inode *in = NULL;

	if (itable_get(m.fs, ino, &in) < 0)
		tu_bail("itable_get", -ENOMEM, NULL);
	return in;
}

static void test_boundaries(void)
{
	uint64_t f = tu_mk_or_bail(m.fs, ROOT, "b", S_IFREG | 0644);
	char buf[64];

	ok(tu_write(m.fs, f, 4000, 10000, 1, 0, 0) == 0, "one write of 10000 bytes at 4000 (chunks 0-3)");
	ok(tu_size(m.fs, f) == 14000, "size 14000 before any write-back");
	ok(tu_read_zero(m.fs, f, 0, 4000), "[0, 4000) reads as zeros");
	ok(tu_read_check(m.fs, f, 4000, 10000, 1), "the data reads back while buffered");
	ok(tu_write(m.fs, f, 0, 0, 1, 0, 1) == 0, "flush");
	ok(tu_chunk_count(m.v, f) == 4, "4 chunks stored (%d)", tu_chunk_count(m.v, f));
	ok(tu_read_check(m.fs, f, 4090, 20, 1) && tu_read_check(m.fs, f, 8191, 2, 1) &&
	   tu_read_check(m.fs, f, 12287, 1713, 1), "small reads across each boundary");
	ok(tu_read(m.fs, f, buf, 64, 14000) == 0, "a read at the end: 0");
	ok(tu_read(m.fs, f, buf, 64, 99999) == 0, "a read past the end: 0");
	ok(tu_read(m.fs, f, buf, 64, 13990) == 10 && tu_check(buf, 10, 13990, 1), "a read across the end is short");
	ok(tu_read(m.fs, f, buf, 0, 0) == 0, "a read of 0 bytes");
	remount();
	ok(tu_size(m.fs, f) == 14000 && tu_read_check(m.fs, f, 4000, 10000, 1) &&
	   tu_read_zero(m.fs, f, 0, 4000), "everything reads back after a remount");
	ok(blocks_of(f) == 32, "blocks count the 4 stored chunks (%llu)", (unsigned long long)blocks_of(f));

	/* many small unaligned writes, then one overwrite in the middle */
	f = tu_mk_or_bail(m.fs, ROOT, "b2", S_IFREG | 0644);
	ok(tu_write(m.fs, f, 0, 50000, 2, 999, 1) == 0, "50000 bytes in 999-byte writes");
	ok(tu_write(m.fs, f, 10000, 7000, 3, 0, 1) == 0, "overwrite [10000, 17000) with other bytes");
	ok(tu_read_check(m.fs, f, 0, 10000, 2) && tu_read_check(m.fs, f, 10000, 7000, 3) &&
	   tu_read_check(m.fs, f, 17000, 33000, 2), "old, new, old");
	ok(tu_chunk_count(m.v, f) == 13, "an overwrite replaces chunks, adds none (%d)", tu_chunk_count(m.v, f));
	remount();
	ok(tu_read_check(m.fs, f, 0, 10000, 2) && tu_read_check(m.fs, f, 10000, 7000, 3) &&
	   tu_read_check(m.fs, f, 17000, 33000, 2), "and after a remount");
}

static void test_holes(void)
{
	uint64_t f = tu_mk_or_bail(m.fs, ROOT, "sparse", S_IFREG | 0644), g;
	uint64_t far = (1u << 20) + 5;

	ok(tu_write(m.fs, f, far, 10, 4, 0, 1) == 0, "10 bytes at 1 MiB + 5");
	ok(tu_size(m.fs, f) == far + 10, "size follows");
	ok(tu_chunk_count(m.v, f) == 1 && blocks_of(f) == 8, "one chunk stored, 8 blocks");
	ok(tu_read_zero(m.fs, f, 0, (size_t)far), "the first MiB reads as zeros");
	ok(tu_read_check(m.fs, f, far, 10, 4), "the data after the hole");

	/* chunk buffers are pooled: a fresh file's gap must not show the
	 * last file's bytes */
	g = tu_mk_or_bail(m.fs, ROOT, "gap", S_IFREG | 0644);
	ok(tu_write(m.fs, g, 0, 3 * CS, 5, 0, 1) == 0, "fill and write back 3 chunks");
	f = tu_mk_or_bail(m.fs, ROOT, "gap2", S_IFREG | 0644);
	ok(tu_write(m.fs, f, 0, 10, 6, 0, 0) == 0 && tu_write(m.fs, f, 3000, 10, 6, 0, 0) == 0,
	   "two writes inside one chunk of a new file, with a gap");
	ok(tu_read_zero(m.fs, f, 10, 2990), "the gap reads as zeros while buffered");
	ok(tu_write(m.fs, f, 0, 0, 6, 0, 1) == 0 && tu_read_zero(m.fs, f, 10, 2990), "and once written back");
	ok(tu_write(m.fs, f, 3 * CS + 100, 1, 6, 0, 1) == 0 && tu_read_zero(m.fs, f, 3010, 3 * CS + 100 - 3010),
	   "a write into a later chunk leaves zeros up to it");
	remount();
	ok(tu_read_zero(m.fs, f, 10, 2990) && tu_read_zero(m.fs, f, 3010, 3 * CS + 100 - 3010) &&
	   tu_read_check(m.fs, f, 0, 10, 6) && tu_read_check(m.fs, f, 3000, 10, 6),
	   "after a remount too");
}

static int truncate_to(uint64_t ino, uint64_t size)
{
	struct mv_inode *in = pin(ino);
	struct timespec now;
	int rc;

	core_now(&now);
	rc = filedata_truncate(m.fs, in, size, &now);
	itable_put(m.fs, in);
	return rc;
}

static void test_truncate(void)
{
	uint64_t f = tu_mk_or_bail(m.fs, ROOT, "t", S_IFREG | 0644);

	ok(tu_write(m.fs, f, 0, 3 * CS, 7, 0, 1) == 0, "3 full chunks");
	ok(truncate_to(f, 5000) == 0 && tu_size(m.fs, f) == 5000, "truncate to 5000");
	ok(tu_chunk_count(m.v, f) == 2, "the chunk past the end is deleted (%d left)", tu_chunk_count(m.v, f));
	ok(tu_read_check(m.fs, f, 0, 5000, 7), "what is kept is intact");
	ok(truncate_to(f, 3 * CS) == 0 && tu_size(m.fs, f) == 3 * CS, "extend again to 3 chunks");
	ok(tu_read_zero(m.fs, f, 5000, 3 * CS - 5000), "the old tail does not come back: zeros");
	remount();
	ok(tu_read_zero(m.fs, f, 5000, 3 * CS - 5000) && tu_read_check(m.fs, f, 0, 5000, 7),
	   "not after a remount either");

	/* a truncate that cuts buffered, unwritten data */
	itable_lookup_inc(m.fs, f, ROOT, "t");	/* keep it buffered */
	ok(tu_write(m.fs, f, 0, 3 * CS, 8, 0, 0) == 0, "rewrite 3 chunks, left buffered");
	ok(truncate_to(f, 100) == 0 && truncate_to(f, 2 * CS) == 0, "truncate to 100, then extend");
	ok(tu_read_check(m.fs, f, 0, 100, 8) && tu_read_zero(m.fs, f, 100, 2 * CS - 100),
	   "buffered bytes past the cut are gone");
	itable_forget(m.fs, f, 1);
	remount();
	ok(tu_size(m.fs, f) == 2 * CS && tu_read_check(m.fs, f, 0, 100, 8) &&
	   tu_read_zero(m.fs, f, 100, 2 * CS - 100), "and stay gone after a remount");

	ok(truncate_to(f, 0) == 0 && tu_size(m.fs, f) == 0 && tu_chunk_count(m.v, f) == 0 && blocks_of(f) == 0,
	   "truncate to 0 drops every chunk and block");
	ok(truncate_to(f, 1u << 20) == 0 && tu_chunk_count(m.v, f) == 0 && tu_read_zero(m.fs, f, 0, 1u << 20),
	   "extending stores nothing and reads zeros");
	ok(tu_write(m.fs, f, 5000, 1, 9, 0, 1) == 0 && truncate_to(f, 5000) == 0 &&
	   tu_write(m.fs, f, 8000, 1, 9, 0, 1) == 0 && tu_read_zero(m.fs, f, 5000, 3000),
	   "a byte cut by a truncate and a write past it: zeros between");
}

static int falloc(uint64_t ino, int mode, uint64_t off, uint64_t len)
{
	struct mv_inode *in = pin(ino);
	int rc = filedata_fallocate(m.fs, in, mode, off, len);

	itable_put(m.fs, in);
	return rc;
}

static void test_fallocate(void)
{
	uint64_t f = tu_mk_or_bail(m.fs, ROOT, "fa", S_IFREG | 0644);
	const uint64_t n = 5 * CS;

	ok(falloc(f, 0, 0, 20000) == 0 && tu_size(m.fs, f) == 20000, "fallocate mode 0 extends the size");
	ok(tu_chunk_count(m.v, f) == 0 && tu_read_zero(m.fs, f, 0, 20000), "stores nothing, reads zeros");
	ok(falloc(f, FALLOC_FL_KEEP_SIZE, 0, 50000) == 0 && tu_size(m.fs, f) == 20000, "KEEP_SIZE keeps it");
	ok(falloc(f, 0, 0, 100) == 0 && tu_size(m.fs, f) == 20000, "fallocate inside the file changes nothing");

	ok(truncate_to(f, 0) == 0 && tu_write(m.fs, f, 0, n, 10, 0, 1) == 0, "5 chunks of data");
	ok(falloc(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3000, 10000) == 0, "punch [3000, 13000)");
	ok(tu_size(m.fs, f) == n, "the size is kept");
	ok(tu_read_check(m.fs, f, 0, 3000, 10) && tu_read_zero(m.fs, f, 3000, 10000) &&
	   tu_read_check(m.fs, f, 13000, n - 13000, 10), "data, hole, data");
	ok(tu_chunk_count(m.v, f) == 3, "the two covered chunks are dropped (%d left)", tu_chunk_count(m.v, f));
	ok(blocks_of(f) == 24, "and their blocks (%llu)", (unsigned long long)blocks_of(f));
	remount();
	ok(tu_read_check(m.fs, f, 0, 3000, 10) && tu_read_zero(m.fs, f, 3000, 10000) &&
	   tu_read_check(m.fs, f, 13000, n - 13000, 10), "the same after a remount");

	ok(falloc(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, n - 10, 1000) == 0 && tu_size(m.fs, f) == n &&
	   tu_read_zero(m.fs, f, n - 10, 10) && tu_read_check(m.fs, f, n - 20, 10, 10),
	   "a hole across the end zeros up to the end only");
	ok(falloc(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, n + 100, 1000) == 0 && tu_size(m.fs, f) == n,
	   "a hole past the end changes nothing");
	ok(falloc(f, FALLOC_FL_ZERO_RANGE, 100, 100) == 0 && tu_read_zero(m.fs, f, 100, 100) &&
	   tu_read_check(m.fs, f, 0, 100, 10) && tu_read_check(m.fs, f, 200, 2800, 10) && tu_size(m.fs, f) == n,
	   "ZERO_RANGE inside one chunk");
	ok(falloc(f, FALLOC_FL_ZERO_RANGE, n - 5, 100) == 0 && tu_size(m.fs, f) == n + 95 &&
	   tu_read_zero(m.fs, f, n - 5, 100), "ZERO_RANGE across the end extends the file with zeros");
	ok(falloc(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, n + 95) == 0 && tu_chunk_count(m.v, f) == 0 &&
	   tu_read_zero(m.fs, f, 0, n + 95), "punching the whole file leaves no chunk");
}

/* Much more than one inode's dirty budget (8 MiB): write-back happens
 * behind the writes, in groups; nothing may be lost or reordered. */
static void test_large(void)
{
	uint64_t f = tu_mk_or_bail(m.fs, ROOT, "large", S_IFREG | 0644);
	const size_t len = (9u << 20) + 1234;

	itable_lookup_inc(m.fs, f, ROOT, "large");
	ok(tu_write(m.fs, f, 0, len, 12, 128u << 10, 0) == 0, "9 MiB in 128 KiB writes");
	ok(tu_chunk_count(m.v, f) > 0, "part of it was written back already (%d chunks)", tu_chunk_count(m.v, f));
	ok(tu_read_check(m.fs, f, 0, len, 12), "all of it reads back before the last flush");
	ok(tu_write(m.fs, f, 4u << 20, 100000, 13, 0, 1) == 0, "overwrite 100000 bytes at 4 MiB and flush");
	itable_forget(m.fs, f, 1);
	remount();
	ok(tu_size(m.fs, f) == len && tu_read_check(m.fs, f, 0, 4u << 20, 12) &&
	   tu_read_check(m.fs, f, 4u << 20, 100000, 13) &&
	   tu_read_check(m.fs, f, (4u << 20) + 100000, len - (4u << 20) - 100000, 12),
	   "after a remount");
	ok(truncate_to(f, 0) == 0, "drop it");
}

/* Rewrite the chunk record of (ino, idx) in the index as rec. */
struct put_chunk {
	uint64_t ino, idx;
	struct chunk_rec rec;
};

static int do_put_chunk(struct index_txn *t, void *arg)
{
	struct put_chunk *p = arg;

	return index_chunk_put(t, p->ino, p->idx, &p->rec);
}

static int expect_eio(uint64_t ino, uint64_t off, size_t len, const char *what)
{
	char *buf = malloc(len);
	ssize_t n;

	memset(buf, 0, len);
	n = tu_read(m.fs, ino, buf, len, off);
	free(buf);
	return ok(n == -EIO, "%s: -EIO (%zd)", what, n);
}

static void test_tamper(void)
{
	uint64_t f = tu_mk_or_bail(m.fs, ROOT, "tamper", S_IFREG | 0644);
	uint64_t g = tu_mk_or_bail(m.fs, ROOT, "other", S_IFREG | 0644);
	struct chunk_rec c0, c1, c2, gc;
	char path[512];

	ok(tu_write(m.fs, f, 0, 3 * CS, 20, 0, 1) == 0 && tu_write(m.fs, g, 0, CS, 21, 0, 1) == 0,
	   "two files written back");
	ok(tu_chunk_get(m.v, f, 0, &c0) == 0 && tu_chunk_get(m.v, f, 1, &c1) == 0 &&
	   tu_chunk_get(m.v, f, 2, &c2) == 0 && tu_chunk_get(m.v, g, 0, &gc) == 0, "their chunk records");
	blobstore_pack_path(env.store, c1.pack, path, sizeof(path));
	tu_umount(&m);
	ok(tu_flip_byte(path, c1.off + c1.len / 2, 0x01) == 0, "flip one bit in chunk 1's ciphertext");
	tu_mount_or_bail(&env, env.store, &m);
	expect_eio(f, CS, CS, "reading the flipped chunk");
	expect_eio(f, CS + 10, 10, "a small read inside it");
	expect_eio(f, 0, 3 * CS, "a read spanning it");
	ok(tu_read_check(m.fs, f, 0, CS, 20) && tu_read_check(m.fs, f, 2 * CS, CS, 20),
	   "its neighbours still read");
	{
		struct mv_inode *in = pin(f);
		ssize_t w = filedata_write(m.fs, in, "x", 1, CS + 5);

		ok(w == -EIO, "a partial write into the damaged chunk fails (%zd): nothing resealed", w);
		itable_put(m.fs, in);
	}
	expect_eio(f, CS, CS, "the chunk still fails after the refused write");
	ok(tu_flip_byte(path, c1.off + c1.len / 2, 0x01) == 0, "flip the bit back");
	ok(tu_read_check(m.fs, f, CS, CS, 20), "a failure is not cached: the restored chunk reads at once");
	remount();
	ok(tu_read_check(m.fs, f, 0, 3 * CS, 20), "restored bytes read again");

	/* the tag, the first byte */
	tu_umount(&m);
	tu_flip_byte(path, c2.off + c2.len - 1, 0x80);
	tu_flip_byte(path, c0.off, 0x80);
	tu_mount_or_bail(&env, env.store, &m);
	expect_eio(f, 2 * CS, CS, "a flipped tag");
	expect_eio(f, 0, 100, "a flipped first byte");
	tu_umount(&m);
	tu_flip_byte(path, c2.off + c2.len - 1, 0x80);
	tu_flip_byte(path, c0.off, 0x80);
	tu_mount_or_bail(&env, env.store, &m);

	/* records that point at the wrong, valid ciphertext */
	{
		struct put_chunk p = { f, 1, c0 };

		ok(index_write(m.v->ix, do_put_chunk, &p) == 0, "chunk 1's record now names chunk 0's bytes");
		expect_eio(f, CS, CS, "a chunk moved to another index");
		p.rec = gc;
		ok(index_write(m.v->ix, do_put_chunk, &p) == 0, "chunk 1's record names another file's chunk");
		expect_eio(f, CS, CS, "another file's chunk");
		p.rec = c1;
		p.rec.version++;
		ok(index_write(m.v->ix, do_put_chunk, &p) == 0, "chunk 1's record claims another version");
		expect_eio(f, CS, CS, "a replayed older version");
		p.rec = c1;
		p.rec.len += 16;
		index_write(m.v->ix, do_put_chunk, &p);
		expect_eio(f, CS, CS, "a record with a wrong length");
		p.rec = c1;
		index_write(m.v->ix, do_put_chunk, &p);
		ok(tu_read_check(m.fs, f, 0, 3 * CS, 20), "the true record reads again");
	}

	/* a pack cut short, then gone */
	tu_umount(&m);
	{
		/* chunks sit in the pack in no promised order */
		const struct chunk_rec *cr[3] = { &c0, &c1, &c2 };
		int hi = 0, lo = 0;

		for (int i = 1; i < 3; i++) {
			if (cr[i]->off > cr[hi]->off)
				hi = i;
			if (cr[i]->off < cr[lo]->off)
				lo = i;
		}
		ok(truncate(path, (off_t)(cr[hi]->off + 10)) == 0, "cut the pack inside chunk %d, its last", hi);
		tu_mount_or_bail(&env, env.store, &m);
		expect_eio(f, (uint64_t)hi * CS, CS, "a chunk cut short");
		ok(tu_read_check(m.fs, f, (uint64_t)lo * CS, CS, 20), "chunk %d before the cut reads", lo);
	}
	tu_umount(&m);
	ok(unlink(path) == 0, "remove the pack");
	tu_mount_or_bail(&env, env.store, &m);
	expect_eio(f, 0, CS, "a chunk whose pack is gone");
	ok(truncate_to(f, 0) == 0 && tu_size(m.fs, f) == 0, "a damaged file can still be truncated away");
	ok(ns_unlink(m.fs, ROOT, "tamper", 0) == 0 && ns_unlink(m.fs, ROOT, "other", 0) == 0,
	   "and unlinked");
}

/*
 * The seal limit of an AES-GCM key object (aead.h), made 3 here.  Format 3
 * gives every 2^31 versions a new key, so the limit cannot be reached by
 * wear; it stays as a second guard, and this checks that it still holds:
 * one flush of four chunks under one key is refused with EKEYEXPIRED and
 * stores nothing, a flush of three goes through, other files (other keys)
 * are not affected.  (docs/DESIGN.md, "Nonces and the seal limit".)
 */
static void test_seal_limit(void)
{
	uint64_t f, g;
	int rc;

	if (m.v->conf.cipher != AEAD_AES256GCM) {
		ok(1, "# skip: the store uses XChaCha20, which has no seal limit");
		return;
	}
	aead_test_seal_limit(3);
	f = tu_mk_or_bail(m.fs, ROOT, "limited", S_IFREG | 0644);
	ok(tu_write(m.fs, f, 0, 3 * CS, 11, 0, 1) == 0, "three chunks in one write-back under a limit of 3");
	rc = tu_write(m.fs, f, 0, 4 * CS, 14, 0, 1);
	ok(rc == -EKEYEXPIRED, "four in one write-back (one key) are refused with EKEYEXPIRED (%s)",
	   strerror(-rc));
	g = tu_mk_or_bail(m.fs, ROOT, "other", S_IFREG | 0644);
	ok(tu_write(m.fs, g, 0, 5000, 15, 0, 1) == 0 && tu_read_check(m.fs, g, 0, 5000, 15),
	   "another file (another key) is written meanwhile");
	ok(truncate_to(f, 0) == 0, "the refused data dropped by a truncate");
	aead_test_seal_limit(0);
	remount();
	ok(tu_size(m.fs, f) == 0 && tu_read_check(m.fs, g, 0, 5000, 15),
	   "after a remount: nothing half-written, the other file intact");
}

int main(void)
{
	tu_env_init(&env, CS);
	tu_mount_or_bail(&env, env.store, &m);
	ok(m.fs->chunk_size == CS, "store made with %u-byte chunks", CS);
	test_boundaries();
	test_holes();
	test_truncate();
	test_fallocate();
	test_large();
	test_tamper();
	test_seal_limit();
	tu_umount(&m);
	tu_env_done(&env);
	return tap_done();
}
