#include "store/blobstore.h"
#include "store/layout.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/byteorder.h"
#include "util/fileutil.h"
#include "util/safefile.h"

#define PACK_MAGIC "MVPACK01"
#define FD_CACHE 64
#define DIRTY_MAX 64

/* An open pack descriptor; refs keeps it from being closed under a pread. */
struct pack_fd {
	uint64_t id;
	int fd;
	int dfd;	/* O_DIRECT, for large appends to the open pack; -1 if none */
	unsigned refs;
	uint64_t last_use;
};

/* Large appends bypass the page cache: copying tens of MiB per second into
 * it costs more CPU than sealing them, and the data is not read back soon.
 * Only streaming batches, though: a direct write waits for the disk, which
 * would make every small file's close() wait too (measured: 512 KiB files
 * written 40% slower with a 256 KiB threshold). */
#define DIRECT_ALIGN 4096u
#define DIRECT_MIN (4u << 20)
#define ALIGN_UP(x) (((x) + DIRECT_ALIGN - 1) & ~(uint64_t)(DIRECT_ALIGN - 1))

struct blobstore {
	char *store;
	int sdfd;	/* STORE: packs are reached from it, no link followed */
	uint8_t uuid[16];
	uint64_t pack_size;
	pthread_mutex_t lock;		/* protects everything below */
	uint64_t last_id;
	struct pack_fd *open_pack;	/* the pack being appended, or NULL */
	uint64_t open_size;
	struct pack_fd cache[FD_CACHE];
	uint64_t tick;
	/* packs appended (or created) since the last sync */
	uint64_t dirty[DIRTY_MAX];
	unsigned ndirty;
	int dirs_dirty;
	pthread_mutex_t sync_lock;	/* serialises syncs; taken before lock */
};

void blobstore_pack_path(const char *store, uint64_t pack, char *out, size_t outlen)
{
	store_pack_path(out, outlen, store, pack);
}

/* packs/<xx>/<16 hex>.pack, relative to STORE */
static void pack_rel(uint64_t pack, char *out, size_t outlen)
{
	snprintf(out, outlen, STORE_PACKS_NAME "/%02x/%016" PRIx64 STORE_PACK_SUFFIX,
		 (unsigned)(pack & 0xff), pack);
}

int blobstore_create(const char *store)
{
	char path[PATH_MAX];

	store_path(path, sizeof(path), store, STORE_PACKS);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int blobstore_scan(const char *store, blobstore_scan_cb cb, void *ctx)
{
	char path[PATH_MAX];
	DIR *top;
	struct dirent *d;
	int rc = 0, bad = 0;

	store_path(path, sizeof(path), store, STORE_PACKS);
	if (!(top = opendir(path)))
		return -errno;
	while (!rc && (d = readdir(top))) {
		char sub[PATH_MAX + 256];
		DIR *sd;
		struct dirent *e;

		if (strlen(d->d_name) != 2)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, d->d_name);
		if (!(sd = opendir(sub)))
			continue;
		while (!rc && (e = readdir(sd))) {
			char file[PATH_MAX * 2], *end;
			uint64_t id = strtoull(e->d_name, &end, 16);
			struct stat st;

			if (end == e->d_name || strcmp(end, STORE_PACK_SUFFIX))
				continue;
			snprintf(file, sizeof(file), "%s/%s", sub, e->d_name);
			if (lstat(file, &st) < 0)
				continue;
			if (S_ISREG(st.st_mode))
				rc = cb(ctx, id, (uint64_t)st.st_size);
			else if (!bad)	/* a link or FIFO planted as a pack: never followed */
				bad = S_ISLNK(st.st_mode) ? -ELOOP : -EINVAL;
		}
		closedir(sd);
	}
	closedir(top);
	return rc ? rc : bad;
}

static int note_max(void *ctx, uint64_t pack, uint64_t size)
{
	uint64_t *max = ctx;

	(void)size;
	if (pack > *max)
		*max = pack;
	return 0;
}

static uint64_t scan_max_id(const char *store)
{
	uint64_t max = 0;

	blobstore_scan(store, note_max, &max);
	return max;
}

int blobstore_open(struct blobstore **out, const char *store, const uint8_t uuid[16],
		   uint64_t pack_size, uint64_t min_id)
{
	struct blobstore *bs;
	uint64_t found;

	*out = NULL;
	bs = calloc(1, sizeof(*bs));
	if (!bs)
		return -ENOMEM;
	bs->store = strdup(store);
	if (!bs->store) {
		free(bs);
		return -ENOMEM;
	}
	bs->sdfd = safe_dir_open(store, NULL, 0);
	if (bs->sdfd >= 0) {
		int pfd = safe_subdir_open(bs->sdfd, STORE_PACKS_NAME, 0, STORE_PACKS_NAME, NULL, 0);

		if (pfd >= 0 || pfd == -ENOENT) {
			if (pfd >= 0)
				close(pfd);
		} else {
			close(bs->sdfd);
			bs->sdfd = pfd;
		}
	}
	if (bs->sdfd < 0) {
		int rc = bs->sdfd;

		free(bs->store);
		free(bs);
		return rc;
	}
	memcpy(bs->uuid, uuid, 16);
	bs->pack_size = pack_size;
	found = scan_max_id(store);
	bs->last_id = found > min_id ? found : min_id;
	for (int i = 0; i < FD_CACHE; i++)
		bs->cache[i].fd = bs->cache[i].dfd = -1;
	pthread_mutex_init(&bs->lock, NULL);
	pthread_mutex_init(&bs->sync_lock, NULL);
	*out = bs;
	return 0;
}

void blobstore_close(struct blobstore *bs)
{
	if (!bs)
		return;
	for (int i = 0; i < FD_CACHE; i++) {
		if (bs->cache[i].fd >= 0)
			close(bs->cache[i].fd);
		if (bs->cache[i].dfd >= 0)
			close(bs->cache[i].dfd);
	}
	pthread_mutex_destroy(&bs->lock);
	pthread_mutex_destroy(&bs->sync_lock);
	close(bs->sdfd);
	free(bs->store);
	free(bs);
}

int blobstore_dirfd(struct blobstore *bs)
{
	return bs->sdfd;
}

uint64_t blobstore_last_id(struct blobstore *bs)
{
	uint64_t id;

	pthread_mutex_lock(&bs->lock);
	id = bs->last_id;
	pthread_mutex_unlock(&bs->lock);
	return id;
}

/* lock held.  A free cache slot, evicting the least recently used idle
 * descriptor; NULL when every slot is busy. */
static struct pack_fd *cache_slot(struct blobstore *bs)
{
	struct pack_fd *best = NULL;

	for (int i = 0; i < FD_CACHE; i++) {
		struct pack_fd *p = &bs->cache[i];

		if (p->fd < 0)
			return p;
		if (p->refs == 0 && p != bs->open_pack && (!best || p->last_use < best->last_use))
			best = p;
	}
	if (best) {
		close(best->fd);
		if (best->dfd >= 0)
			close(best->dfd);
		best->fd = best->dfd = -1;
	}
	return best;
}

static void mark_dirty(struct blobstore *bs, uint64_t id)
{
	for (unsigned i = 0; i < bs->ndirty; i++)
		if (bs->dirty[i] == id)
			return;
	if (bs->ndirty < DIRTY_MAX)
		bs->dirty[bs->ndirty++] = id;
}

/* lock held: start a new pack file with its header. */
static int pack_start(struct blobstore *bs)
{
	char path[PATH_MAX], dir[64];
	uint8_t hdr[BLOBSTORE_HEADER_LEN];
	struct pack_fd *slot;
	uint64_t id = bs->last_id + 1;
	int fd, rc;

	/* the previous pack may still be in the dirty list, and its slot
	 * stays cached for readers */
	bs->open_pack = NULL;
	slot = cache_slot(bs);
	if (!slot)
		return -EMFILE;
	snprintf(dir, sizeof(dir), STORE_PACKS_NAME "/%02x", (unsigned)(id & 0xff));
	if ((fd = safe_subdir_open(bs->sdfd, dir, 1, dir, NULL, 0)) < 0)
		return fd;
	close(fd);
	pack_rel(id, path, sizeof(path));
	fd = safe_open(bs->sdfd, path, O_RDWR | O_CREAT | O_EXCL, 0600, path, NULL, 0);
	if (fd < 0)
		return fd;
	memcpy(hdr, PACK_MAGIC, 8);
	memcpy(hdr + 8, bs->uuid, 16);
	be64_put(hdr + 24, id);
	if ((rc = pwrite_full(fd, hdr, sizeof(hdr), 0)) < 0) {
		close(fd);
		unlinkat(bs->sdfd, path, 0);
		return rc;
	}
	bs->last_id = id;
	slot->id = id;
	slot->fd = fd;
	/* tmpfs and some others refuse O_DIRECT: then every append is buffered */
	slot->dfd = safe_open(bs->sdfd, path, O_WRONLY | O_DIRECT, 0, path, NULL, 0);
	if (slot->dfd < 0)
		slot->dfd = -1;
	slot->refs = 0;
	slot->last_use = ++bs->tick;
	bs->open_pack = slot;
	bs->open_size = BLOBSTORE_HEADER_LEN;
	bs->dirs_dirty = 1;
	mark_dirty(bs, id);
	return 0;
}

void blobstore_seal_open(struct blobstore *bs)
{
	pthread_mutex_lock(&bs->lock);
	bs->open_pack = NULL;
	pthread_mutex_unlock(&bs->lock);
}

/* cap > len with an aligned buf allows a direct write (the tail up to the
 * next 4 KiB is zeroed and written too). */
static int append(struct blobstore *bs, uint8_t *buf, size_t len, size_t cap,
		  struct blob_loc *loc)
{
	struct pack_fd *p;
	uint64_t off, wlen;
	int rc = 0, direct;

	if (len > BLOBSTORE_CHUNK_MAX)
		return -EFBIG;
	pthread_mutex_lock(&bs->lock);
	if (bs->ndirty >= DIRTY_MAX - 1) {
		/* too many unsynced packs to track (a new pack needs a slot
		 * too): make room the slow way */
		pthread_mutex_unlock(&bs->lock);
		if ((rc = blobstore_sync(bs)) < 0)
			return rc;
		return append(bs, buf, len, cap, loc);
	}
	if (bs->open_pack && bs->open_size + len > bs->pack_size &&
	    bs->open_size > BLOBSTORE_HEADER_LEN)
		bs->open_pack = NULL;	/* sealed: never appended again */
	if (!bs->open_pack && (rc = pack_start(bs)) < 0) {
		pthread_mutex_unlock(&bs->lock);
		return rc;
	}
	p = bs->open_pack;
	direct = p->dfd >= 0 && len >= DIRECT_MIN && cap >= ALIGN_UP(len) &&
		 ((uintptr_t)buf % DIRECT_ALIGN) == 0;
	off = direct ? ALIGN_UP(bs->open_size) : bs->open_size;
	wlen = direct ? ALIGN_UP(len) : len;
	bs->open_size = off + wlen;
	p->refs++;
	p->last_use = ++bs->tick;
	mark_dirty(bs, p->id);
	loc->pack = p->id;
	loc->off = off;
	loc->len = (uint32_t)len;
	pthread_mutex_unlock(&bs->lock);

	if (direct) {
		memset(buf + len, 0, wlen - len);
		rc = pwrite_full(p->dfd, buf, wlen, (off_t)off);
		if (rc == -EINVAL)	/* the filesystem changed its mind */
			rc = pwrite_full(p->fd, buf, len, (off_t)off);
	} else {
		rc = pwrite_full(p->fd, buf, len, (off_t)off);
	}

	pthread_mutex_lock(&bs->lock);
	p->refs--;
	if (rc < 0 && p == bs->open_pack) {
		/* give the space back if nothing was appended after us (a full
		 * disk must not fill up further with torn writes); otherwise
		 * the gap stays and a new pack starts */
		if (bs->open_size == off + wlen && ftruncate(p->fd, (off_t)off) == 0)
			bs->open_size = off;
		else
			bs->open_pack = NULL;
	}
	pthread_mutex_unlock(&bs->lock);
	return rc;
}

int blobstore_append(struct blobstore *bs, const uint8_t *buf, size_t len,
		     struct blob_loc *loc)
{
	return append(bs, (uint8_t *)buf, len, 0, loc);
}

int blobstore_append_buf(struct blobstore *bs, uint8_t *buf, size_t len, size_t cap,
			 struct blob_loc *loc)
{
	return append(bs, buf, len, cap, loc);
}

/* lock held: a referenced descriptor for pack id, opening it if needed. */
static int pack_get(struct blobstore *bs, uint64_t id, struct pack_fd **out)
{
	char path[PATH_MAX];
	struct pack_fd *slot;
	int fd;

	for (int i = 0; i < FD_CACHE; i++) {
		if (bs->cache[i].fd >= 0 && bs->cache[i].id == id) {
			bs->cache[i].refs++;
			bs->cache[i].last_use = ++bs->tick;
			*out = &bs->cache[i];
			return 0;
		}
	}
	pack_rel(id, path, sizeof(path));
	/* a link, FIFO or device planted as a pack is refused, not read */
	fd = safe_open(bs->sdfd, path, O_RDONLY, 0, path, NULL, 0);
	if (fd < 0)
		return fd;
	slot = cache_slot(bs);
	if (!slot) {
		*out = NULL;
		return fd;	/* caller closes this uncached descriptor */
	}
	slot->id = id;
	slot->fd = fd;
	slot->dfd = -1;
	slot->refs = 1;
	slot->last_use = ++bs->tick;
	*out = slot;
	return 0;
}

/* A descriptor for pack id, taking the lock: fd or -errno.  Referenced
 * (*p set) or uncached (*p NULL); give it back with pack_release. */
static int pack_acquire(struct blobstore *bs, uint64_t id, struct pack_fd **p)
{
	int rc;

	*p = NULL;
	pthread_mutex_lock(&bs->lock);
	rc = pack_get(bs, id, p);
	pthread_mutex_unlock(&bs->lock);
	if (rc < 0)
		return rc;
	return *p ? (*p)->fd : rc;
}

static void pack_release(struct blobstore *bs, struct pack_fd *p, int fd)
{
	if (p) {
		pthread_mutex_lock(&bs->lock);
		p->refs--;
		pthread_mutex_unlock(&bs->lock);
	} else {
		close(fd);
	}
}

int blobstore_read(struct blobstore *bs, const struct blob_loc *loc, uint8_t *buf)
{
	struct pack_fd *p = NULL;
	ssize_t n;
	int fd;

	fd = pack_acquire(bs, loc->pack, &p);
	if (fd < 0)
		return fd == -ENOENT ? -ENOENT : -EIO;
	n = pread_full(fd, buf, loc->len, (off_t)loc->off);
	pack_release(bs, p, fd);
	if (n < 0 || (size_t)n != loc->len)
		return -EIO;
	return 0;
}

int blobstore_sync(struct blobstore *bs)
{
	uint64_t ids[DIRTY_MAX];
	unsigned n;
	int dirs, rc = 0;

	pthread_mutex_lock(&bs->sync_lock);
	pthread_mutex_lock(&bs->lock);
	n = bs->ndirty;
	memcpy(ids, bs->dirty, n * sizeof(ids[0]));
	bs->ndirty = 0;
	dirs = bs->dirs_dirty;
	bs->dirs_dirty = 0;
	pthread_mutex_unlock(&bs->lock);

	for (unsigned i = 0; i < n; i++) {
		struct pack_fd *p = NULL;
		int fd = pack_acquire(bs, ids[i], &p);

		if (fd < 0) {
			if (fd != -ENOENT)	/* removed by compaction: nothing to sync */
				rc = -EIO;
			continue;
		}
		if (fdatasync(fd) < 0)
			rc = -EIO;
		pack_release(bs, p, fd);
	}
	if (dirs) {
		char path[PATH_MAX];
		uint64_t seen_sub[256] = { 0 };

		for (unsigned i = 0; i < n; i++) {
			unsigned sub = (unsigned)(ids[i] & 0xff);

			if (seen_sub[sub]++)
				continue;
			/* from STORE's descriptor: the daemon's server may not be
			 * able to walk STORE's path once it dropped root */
			snprintf(path, sizeof(path), STORE_PACKS_NAME "/%02x", sub);
			if (fsync_dir_at(bs->sdfd, path) < 0)
				rc = -EIO;
		}
		if (fsync_dir_at(bs->sdfd, STORE_PACKS_NAME) < 0)
			rc = -EIO;
	}
	if (rc < 0) {
		/* keep them dirty so a later sync retries */
		pthread_mutex_lock(&bs->lock);
		for (unsigned i = 0; i < n; i++)
			mark_dirty(bs, ids[i]);
		bs->dirs_dirty |= dirs;
		pthread_mutex_unlock(&bs->lock);
	}
	pthread_mutex_unlock(&bs->sync_lock);
	return rc;
}

int blobstore_pack_remove(struct blobstore *bs, uint64_t pack)
{
	char path[PATH_MAX];

	pthread_mutex_lock(&bs->lock);
	if (bs->open_pack && bs->open_pack->id == pack)
		bs->open_pack = NULL;
	for (int i = 0; i < FD_CACHE; i++) {
		if (bs->cache[i].fd >= 0 && bs->cache[i].id == pack && bs->cache[i].refs == 0) {
			close(bs->cache[i].fd);
			if (bs->cache[i].dfd >= 0)
				close(bs->cache[i].dfd);
			bs->cache[i].fd = bs->cache[i].dfd = -1;
		}
	}
	pthread_mutex_unlock(&bs->lock);
	pack_rel(pack, path, sizeof(path));
	if (unlinkat(bs->sdfd, path, 0) < 0)
		return -errno;
	return 0;
}

uint64_t blobstore_open_id(struct blobstore *bs)
{
	uint64_t id;

	pthread_mutex_lock(&bs->lock);
	id = bs->open_pack ? bs->open_pack->id : 0;
	pthread_mutex_unlock(&bs->lock);
	return id;
}

int64_t blobstore_pack_size(struct blobstore *bs, uint64_t pack)
{
	char path[PATH_MAX];
	struct stat st;

	pack_rel(pack, path, sizeof(path));
	if (fstatat(bs->sdfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return S_ISREG(st.st_mode) ? st.st_size : -EINVAL;
}
