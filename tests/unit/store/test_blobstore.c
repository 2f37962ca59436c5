/*
 * blobstore: append/read round trips, pack rotation, pack ids never reused
 * across reopen, missing and truncated packs, concurrent appenders, sync
 * and pack removal, against real files in a mkdtemp directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/blobstore.h"
#include "crypto/secure.h"
#include "../../tap.h"

static char tmp[64], store[128];
static uint8_t uuid[16];

/* deterministic content for (tag, i): distinct per item */
static void fill(uint8_t *buf, size_t len, uint32_t tag, uint32_t i)
{
	uint32_t x = tag * 2654435761u ^ (i + 1) * 40503u;

	for (size_t k = 0; k < len; k++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[k] = (uint8_t)x;
	}
	if (len >= 8) {
		memcpy(buf, &tag, 4);
		memcpy(buf + 4, &i, 4);
	}
}

static int check_item(struct blobstore *bs, const struct blob_loc *loc, uint32_t tag, uint32_t i)
{
	uint8_t *want = malloc(loc->len ? loc->len : 1), *got = malloc(loc->len ? loc->len : 1);
	int rc;

	fill(want, loc->len, tag, i);
	rc = blobstore_read(bs, loc, got);
	if (rc == 0 && memcmp(want, got, loc->len))
		rc = -EILSEQ;
	free(want);
	free(got);
	return rc;
}

static off_t file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? -1 : st.st_size;
}

static int cmp_loc(const void *a, const void *b)
{
	const struct blob_loc *x = a, *y = b;

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return 0;
}

/* 0 if no two ranges overlap and none starts inside the header */
static int overlaps(struct blob_loc *locs, size_t n)
{
	int bad = 0;

	qsort(locs, n, sizeof(*locs), cmp_loc);
	for (size_t i = 0; i < n; i++) {
		if (locs[i].off < BLOBSTORE_HEADER_LEN)
			bad++;
		if (i && locs[i].pack == locs[i - 1].pack &&
		    locs[i - 1].off + locs[i - 1].len > locs[i].off)
			bad++;
	}
	return bad;
}

static void test_basic(void)
{
	struct blobstore *bs = NULL, *bs2 = NULL;
	struct blob_loc loc[8], miss;
	size_t sizes[8] = { 1, 7, 100, 4096, 4097, 65536, 0, 200000 };
	char path[512], p2[512];
	uint8_t buf[64], hdr[BLOBSTORE_HEADER_LEN];
	int rc, bad = 0, fd;

	ok(blobstore_create(store) == 0, "create");
	ok(blobstore_create(store) == 0, "create again is harmless");
	snprintf(path, sizeof(path), "%s/packs", store);
	ok(file_size(path) >= 0, "STORE/packs exists");
	rc = blobstore_open(&bs, store, uuid, 1u << 20, 0);
	if (!ok(rc == 0 && bs, "open (%d)", rc))
		return;
	ok(blobstore_last_id(bs) == 0, "fresh store: last id 0");
	for (int i = 0; i < 8; i++) {
		uint8_t *b = malloc(sizes[i] + 1);

		fill(b, sizes[i], 1, (uint32_t)i);
		rc = blobstore_append(bs, b, sizes[i], &loc[i]);
		if (rc != 0 || loc[i].len != sizes[i])
			bad++;
		free(b);
	}
	ok(bad == 0, "8 appends (sizes 0..200000)");
	ok(loc[0].pack == 1 && loc[0].off == BLOBSTORE_HEADER_LEN, "first item at pack 1, just after the header");
	for (int i = 1; i < 8; i++)
		if (loc[i].pack != 1 || loc[i].off != loc[i - 1].off + loc[i - 1].len)
			bad++;
	ok(bad == 0, "items packed back to back in pack 1");
	ok(blobstore_last_id(bs) == 1, "last id 1");
	for (int i = 0; i < 8; i++)
		if (check_item(bs, &loc[i], 1, (uint32_t)i) != 0)
			bad++;
	ok(bad == 0, "every item reads back exactly");
	ok(blobstore_sync(bs) == 0, "sync");
	ok(blobstore_sync(bs) == 0, "sync with nothing dirty");

	/* the pack on disk */
	blobstore_pack_path(store, 1, path, sizeof(path));
	snprintf(p2, sizeof(p2), "%s/packs/01/0000000000000001.pack", store);
	ok(!strcmp(path, p2), "pack path %s", path);
	blobstore_pack_path(store, 0x1234abcdull, p2, sizeof(p2));
	ok(strstr(p2, "/packs/cd/") != NULL, "pack dir is the id's low byte: %s", p2);
	ok(file_size(path) == (off_t)(loc[7].off + loc[7].len), "pack file size = header + items");
	fd = open(path, O_RDONLY);
	ok(fd >= 0 && read(fd, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr) &&
	   !memcmp(hdr, "MVPACK01", 8) && !memcmp(hdr + 8, uuid, 16),
	   "pack header carries magic and volume uuid");
	if (fd >= 0)
		close(fd);

	/* a second handle reads what the first wrote */
	ok(blobstore_open(&bs2, store, uuid, 1u << 20, 0) == 0 && bs2, "second handle");
	if (bs2) {
		ok(check_item(bs2, &loc[5], 1, 5) == 0, "second handle reads item 5");
		blobstore_close(bs2);
	}

	/* missing pack, reads past the end */
	miss = loc[2];
	miss.pack = 777;
	ok(blobstore_read(bs, &miss, buf) == -ENOENT, "read of a missing pack -ENOENT");
	miss = loc[7];
	miss.off = loc[7].off + loc[7].len;
	miss.len = 10;
	ok(blobstore_read(bs, &miss, buf) == -EIO, "read starting at the end of the pack -EIO");
	miss.off = loc[7].off + loc[7].len - 5;
	ok(blobstore_read(bs, &miss, buf) == -EIO, "read crossing the end of the pack -EIO");

	/* too large */
	ok(blobstore_append(bs, buf, (size_t)BLOBSTORE_CHUNK_MAX + 1, &miss) == -EFBIG,
	   "append of more than BLOBSTORE_CHUNK_MAX -EFBIG");

	/* truncate the pack in the middle of item 7: only item 7 breaks */
	ok(truncate(path, (off_t)(loc[7].off + 1000)) == 0, "truncate pack mid-item");
	{
		uint8_t *big = malloc(200000);

		ok(blobstore_read(bs, &loc[7], big) == -EIO, "read of the truncated item -EIO");
		free(big);
	}
	ok(check_item(bs, &loc[6], 1, 6) == 0 && check_item(bs, &loc[5], 1, 5) == 0,
	   "items before the cut still read");
	blobstore_close(bs);
	/* and through a fresh handle (no cached descriptor) */
	bs = NULL;
	ok(blobstore_open(&bs, store, uuid, 1u << 20, 0) == 0, "reopen");
	if (bs) {
		uint8_t *big = malloc(200000);

		ok(blobstore_read(bs, &loc[7], big) == -EIO, "truncated item -EIO after reopen");
		free(big);
		blobstore_close(bs);
	}
}

static void test_rotation(void)
{
	struct blobstore *bs = NULL;
	const size_t item = 300u << 10, psize = 1u << 20;
	struct blob_loc loc[10];
	uint8_t *b = malloc(item);
	uint64_t last, packs_seen = 0, prev = 0;
	char path[512];
	int rc, bad = 0;

	rc = blobstore_open(&bs, store, uuid, psize, 0);
	if (!ok(rc == 0 && bs, "open for rotation"))
		goto out;
	last = blobstore_last_id(bs);
	ok(last >= 1, "reopened store: last id %" PRIu64 " counts existing packs", last);
	for (uint32_t i = 0; i < 10; i++) {
		fill(b, item, 2, i);
		if (blobstore_append(bs, b, item, &loc[i]) != 0)
			bad++;
		if (loc[i].pack != prev) {
			packs_seen++;
			prev = loc[i].pack;
		}
	}
	ok(bad == 0, "10 appends of 300 KiB");
	ok(loc[0].pack > last, "a reopened blobstore starts a new pack (%" PRIu64 " > %" PRIu64 ")",
	   loc[0].pack, last);
	ok(packs_seen >= 4, "10 x 300 KiB with 1 MiB packs span %" PRIu64 " packs (>= 4)", packs_seen);
	for (uint32_t i = 0; i < 10; i++) {
		if (i && loc[i].pack < loc[i - 1].pack)
			bad++;
		if (check_item(bs, &loc[i], 2, i) != 0)
			bad++;
		if (loc[i].off + loc[i].len > psize)
			bad++;
	}
	ok(bad == 0, "every item reads back; none extends past pack_size; pack ids increase");
	for (uint64_t p = loc[0].pack; p <= loc[9].pack; p++) {
		blobstore_pack_path(store, p, path, sizeof(path));
		if (file_size(path) < 0 || file_size(path) > (off_t)psize)
			bad++;
	}
	ok(bad == 0, "every pack file exists and is at most pack_size");

	/* seal_open: the next append starts a new pack */
	{
		struct blob_loc l;

		fill(b, 10, 3, 0);
		blobstore_seal_open(bs);
		ok(blobstore_append(bs, b, 10, &l) == 0 && l.pack == loc[9].pack + 1 &&
		   l.off == BLOBSTORE_HEADER_LEN, "after seal_open the next append opens a new pack");
	}
	ok(blobstore_sync(bs) == 0, "sync after rotation");
	last = blobstore_last_id(bs);
	blobstore_close(bs);

	/* reopen: ids keep growing, and min_id is honoured */
	bs = NULL;
	ok(blobstore_open(&bs, store, uuid, psize, 0) == 0, "reopen");
	if (bs) {
		struct blob_loc l;

		ok(blobstore_last_id(bs) == last, "reopen: last id %" PRIu64 " found on disk", last);
		fill(b, 10, 3, 1);
		ok(blobstore_append(bs, b, 10, &l) == 0 && l.pack == last + 1,
		   "reopen: next pack id %" PRIu64 " (never an existing one)", l.pack);
		last = l.pack;
		blobstore_close(bs);
	}
	bs = NULL;
	ok(blobstore_open(&bs, store, uuid, psize, last + 100) == 0, "reopen with min_id above the disk");
	if (bs) {
		struct blob_loc l;

		ok(blobstore_last_id(bs) == last + 100, "min_id honoured: last id %" PRIu64, blobstore_last_id(bs));
		fill(b, 10, 3, 2);
		ok(blobstore_append(bs, b, 10, &l) == 0 && l.pack == last + 101, "next pack is min_id + 1");
		ok(check_item(bs, &l, 3, 2) == 0, "and reads back");
		last = l.pack;
		blobstore_close(bs);
	}
	bs = NULL;
	ok(blobstore_open(&bs, store, uuid, psize, 1) == 0, "reopen with a low min_id");
	if (bs) {
		ok(blobstore_last_id(bs) == last, "low min_id: disk maximum wins (%" PRIu64 ")", blobstore_last_id(bs));
		blobstore_close(bs);
	}
out:
	free(b);
}

#define NTHREADS 4
#define PER_THREAD 200

struct worker {
	struct blobstore *bs;
	uint32_t tag;
	struct blob_loc loc[PER_THREAD];
	int errors;
};

static size_t item_size(uint32_t tag, uint32_t i)
{
	return 1 + ((tag * 7919u + i * 104729u) % 24000u);
}

static void *appender(void *arg)
{
	struct worker *w = arg;
	uint8_t *b = malloc(24001);

	for (uint32_t i = 0; i < PER_THREAD; i++) {
		size_t len = item_size(w->tag, i);

		fill(b, len, w->tag, i);
		if (blobstore_append(w->bs, b, len, &w->loc[i]) != 0 || w->loc[i].len != len)
			w->errors++;
		if (i % 50 == 49 && blobstore_sync(w->bs) != 0)
			w->errors++;
	}
	free(b);
	return NULL;
}

static void test_concurrent(void)
{
	static struct worker w[NTHREADS];
	static struct blob_loc all[NTHREADS * PER_THREAD];
	struct blobstore *bs = NULL;
	pthread_t th[NTHREADS];
	uint64_t minp = UINT64_MAX, maxp = 0;
	int errors = 0, bad = 0, n = 0;

	if (!ok(blobstore_open(&bs, store, uuid, 1u << 20, 0) == 0 && bs, "open for threads"))
		return;
	for (int t = 0; t < NTHREADS; t++) {
		w[t].bs = bs;
		w[t].tag = 100 + (uint32_t)t;
		w[t].errors = 0;
		pthread_create(&th[t], NULL, appender, &w[t]);
	}
	for (int t = 0; t < NTHREADS; t++) {
		pthread_join(th[t], NULL);
		errors += w[t].errors;
	}
	ok(errors == 0, "%d threads x %d appends (with syncs) succeed", NTHREADS, PER_THREAD);
	ok(blobstore_sync(bs) == 0, "sync after threads");
	for (int t = 0; t < NTHREADS; t++)
		for (uint32_t i = 0; i < PER_THREAD; i++) {
			if (check_item(bs, &w[t].loc[i], w[t].tag, i) != 0)
				bad++;
			all[n++] = w[t].loc[i];
			if (w[t].loc[i].pack < minp)
				minp = w[t].loc[i].pack;
			if (w[t].loc[i].pack > maxp)
				maxp = w[t].loc[i].pack;
		}
	ok(bad == 0, "all %d items read back correctly", n);
	ok(maxp > minp, "items spread over packs %" PRIu64 "..%" PRIu64, minp, maxp);
	ok(overlaps(all, (size_t)n) == 0, "no two (pack, off, len) ranges overlap");
	blobstore_close(bs);
}

/* pack_size below two items: every append starts a pack, well past the
 * descriptor cache (64) and the dirty list (64). */
static void test_many_packs(void)
{
	static struct blob_loc loc[150];
	struct blobstore *bs = NULL;
	uint8_t b[3000];
	int bad = 0;

	if (!ok(blobstore_open(&bs, store, uuid, 4096, 0) == 0 && bs, "open with a 4 KiB pack size"))
		return;
	for (uint32_t i = 0; i < 150; i++) {
		fill(b, sizeof(b), 5, i);
		if (blobstore_append(bs, b, sizeof(b), &loc[i]) != 0)
			bad++;
		if (i && loc[i].pack != loc[i - 1].pack + 1)
			bad++;
	}
	ok(bad == 0, "150 appends, one pack each, no sync in between");
	for (uint32_t i = 0; i < 150; i++)
		if (check_item(bs, &loc[i], 5, i) != 0)
			bad++;
	ok(bad == 0, "all 150 read back (descriptor cache evictions)");
	ok(blobstore_sync(bs) == 0, "sync");

	/* pack_remove */
	{
		char path[512];
		uint8_t out[3000];

		blobstore_pack_path(store, loc[10].pack, path, sizeof(path));
		ok(file_size(path) > 0, "pack %" PRIu64 " on disk", loc[10].pack);
		ok(blobstore_pack_remove(bs, loc[10].pack) == 0, "pack_remove");
		ok(file_size(path) < 0 && errno == ENOENT, "pack file deleted");
		ok(blobstore_read(bs, &loc[10], out) == -ENOENT, "read of a removed pack -ENOENT");
		ok(blobstore_pack_remove(bs, loc[10].pack) == -ENOENT, "removing it again -ENOENT");
		ok(check_item(bs, &loc[11], 5, 11) == 0, "neighbouring pack unaffected");
		/* the open pack can be removed too; appends then go to a new one */
		blobstore_pack_path(store, loc[149].pack, path, sizeof(path));
		ok(blobstore_pack_remove(bs, loc[149].pack) == 0 && file_size(path) < 0, "remove the open pack");
		fill(b, 10, 6, 0);
		{
			struct blob_loc l;

			ok(blobstore_append(bs, b, 10, &l) == 0 && l.pack > loc[149].pack &&
			   check_item(bs, &l, 6, 0) == 0, "append after removing the open pack uses a new pack");
		}
		ok(blobstore_sync(bs) == 0, "sync after removing a dirty pack");
	}
	blobstore_close(bs);
}

int main(void)
{
	if (secure_init() < 0)
		return 2;
	snprintf(tmp, sizeof(tmp), "/tmp/mv-bs-XXXXXX");
	if (!mkdtemp(tmp))
		return 2;
	snprintf(store, sizeof(store), "%s/store", tmp);
	if (mkdir(store, 0700) < 0)
		return 2;
	secure_random(uuid, sizeof(uuid));

	test_basic();
	test_rotation();
	test_concurrent();
	{
		/* a fresh store for the many-packs case */
		snprintf(store, sizeof(store), "%s/store2", tmp);
		if (mkdir(store, 0700) < 0 || blobstore_create(store) < 0)
			return 2;
		test_many_packs();
	}
	blobstore_close(NULL);

	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", tmp);
	return tap_done();
}
