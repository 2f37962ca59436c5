/*
 * File contents: fixed-size chunks, buffered per inode while dirty, sealed
 * with the file's key and appended to the packs, then committed to the
 * index in one transaction per flush.  A chunk is never rewritten in
 * place: a flush adds a new version and the old bytes become dead.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "aead.h"
#include "blobstore.h"
#include "fileutil.h"
#include "mvfs.h"
#include "volkeys.h"

#define CHUNK_AD_MAGIC "MVC1"
#define CHUNK_AD_LEN 44

static void chunk_ad(uint8_t ad[CHUNK_AD_LEN], const struct mvfs *fs, uint64_t ino,
		     uint64_t idx, uint64_t version)
{
	memcpy(ad, CHUNK_AD_MAGIC, 4);
	memcpy(ad + 4, fs->v->conf.uuid, 16);
	be64_put(ad + 20, ino);
	be64_put(ad + 28, idx);
	be64_put(ad + 36, version);
}

static uint64_t blocks_of(uint64_t plain_len)
{
	return ((plain_len + 4095) / 4096) * 8;
}

/* in->lock held */
static int ensure_aead(struct mvfs *fs, struct mv_inode *in)
{
	if (in->aead)
		return 0;
	return volkeys_file_aead(fs->v->keys, VOLKEYS_DEFAULT_DOMAIN, in->ino, &in->aead);
}

/* in->lock held */
static int ensure_size(struct mvfs *fs, struct mv_inode *in)
{
	struct index_txn *t;
	struct mv_attr a;
	int rc;

	if (in->size_loaded)
		return 0;
	if ((rc = index_read_begin(fs->v->ix, &t)) < 0)
		return rc;
	rc = index_inode_get(t, in->ino, &a);
	index_read_end(t);
	if (rc < 0)
		return rc;
	in->size = a.size;
	in->size_loaded = 1;
	return 0;
}

/*
 * Read and authenticate chunk idx into buf (chunk_size bytes); *len gets
 * its stored length, 0 for a hole.  in->lock held.  -EIO on any damage.
 */
static int chunk_load(struct mvfs *fs, struct mv_inode *in, uint64_t idx, uint8_t *buf,
		      uint32_t *len)
{
	struct index_txn *t;
	struct chunk_rec c;
	uint8_t ad[CHUNK_AD_LEN], *ct = NULL;
	ssize_t n;
	int rc;

	*len = 0;
	if ((rc = index_read_begin(fs->v->ix, &t)) < 0)
		return rc;
	rc = index_chunk_get(t, in->ino, idx, &c);
	index_read_end(t);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		goto damaged;
	if ((rc = ensure_aead(fs, in)) < 0)
		return rc;
	if (c.plain_len > fs->chunk_size || c.len != c.plain_len + aead_overhead(in->aead)) {
		rc = -EIO;
		goto damaged;
	}
	ct = malloc(c.len);
	if (!ct)
		return -ENOMEM;
	{
		struct blob_loc loc = { c.pack, c.off, c.len };

		rc = blobstore_read(fs->v->bs, &loc, ct);
	}
	if (rc < 0)
		goto damaged;
	chunk_ad(ad, fs, in->ino, idx, c.version);
	n = aead_open(in->aead, buf, fs->chunk_size, ct, c.len, ad, sizeof(ad));
	if (n < 0 || (uint32_t)n != c.plain_len) {
		rc = -EIO;
		goto damaged;
	}
	free(ct);
	*len = c.plain_len;
	return 0;
damaged:
	free(ct);
	syslog(LOG_ERR, "inode %" PRIu64 " chunk %" PRIu64 ": %s", in->ino, idx,
	       rc == -ENOENT ? "pack missing" : "failed authentication or unreadable");
	fprintf(stderr, "medvault: inode %" PRIu64 " chunk %" PRIu64 ": damaged (%s)\n",
		in->ino, idx, rc == -ENOENT ? "pack missing" : "authentication failed");
	return -EIO;
}

static struct dirty_chunk *dirty_find(struct mv_inode *in, uint64_t idx)
{
	for (struct dirty_chunk *d = in->dirty; d; d = d->next)
		if (d->idx == idx)
			return d;
	return NULL;
}

static void dirty_free_all(struct mv_inode *in)
{
	struct dirty_chunk *d, *next;

	for (d = in->dirty; d; d = next) {
		next = d->next;
		free(d->buf);
		free(d);
	}
	in->dirty = NULL;
	in->ndirty = 0;
}

ssize_t filedata_read(struct mvfs *fs, struct mv_inode *in, char *buf, size_t size, off_t off)
{
	uint64_t cs = fs->chunk_size, pos = (uint64_t)off, end;
	size_t done = 0;
	int rc = 0;

	pthread_mutex_lock(&in->lock);
	if ((rc = ensure_size(fs, in)) < 0)
		goto out;
	if (pos >= in->size)
		goto out;
	end = pos + size < in->size ? pos + size : in->size;
	while (pos < end) {
		uint64_t idx = pos / cs, within = pos % cs;
		size_t take = (size_t)((end - pos) < cs - within ? end - pos : cs - within);
		struct dirty_chunk *d = dirty_find(in, idx);
		const uint8_t *src;
		uint32_t valid;

		if (d) {
			src = d->buf;
			valid = d->len;
		} else {
			if (!in->rvalid || in->ridx != idx) {
				if (!in->rbuf && !(in->rbuf = malloc(cs))) {
					rc = -ENOMEM;
					goto out;
				}
				in->rvalid = 0;
				if ((rc = chunk_load(fs, in, idx, in->rbuf, &in->rlen)) < 0)
					goto out;
				in->ridx = idx;
				in->rvalid = 1;
			}
			src = in->rbuf;
			valid = in->rlen;
		}
		/* bytes past what the chunk stores are a hole or a gap left by
		 * a truncate-and-extend: zeros */
		if (within >= valid) {
			memset(buf + done, 0, take);
		} else if (within + take > valid) {
			memcpy(buf + done, src + within, valid - within);
			memset(buf + done + (valid - within), 0, take - (valid - within));
		} else {
			memcpy(buf + done, src + within, take);
		}
		done += take;
		pos += take;
	}
out:
	pthread_mutex_unlock(&in->lock);
	return rc < 0 && done == 0 ? rc : (ssize_t)done;
}

/* ---- write-back ---- */

struct sealed_chunk {
	uint64_t idx;
	struct chunk_rec rec;
	struct chunk_rec old;
	int had_old;
};

struct commit_arg {
	uint64_t ino;
	struct sealed_chunk *chunks;
	unsigned n;
	uint64_t size;
	struct timespec mtime, ctime;
	int set_times;
	uint64_t delete_from;	/* drop chunks >= this index; UINT64_MAX: none */
	uint64_t max_pack;
};

struct dead_chunk {
	uint64_t idx;
	struct chunk_rec rec;
};

struct dead_list {
	struct dead_chunk *v;
	size_t n, cap;
};

static int collect_dead(void *ctx, uint64_t ino, uint64_t idx, const struct chunk_rec *c)
{
	struct dead_list *l = ctx;

	(void)ino;
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		struct dead_chunk *nv = realloc(l->v, ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = ncap;
	}
	l->v[l->n].idx = idx;
	l->v[l->n].rec = *c;
	l->n++;
	return 0;
}

/* Delete ino's chunks from index from_idx on, with their pack accounting.
 * Runs inside a write transaction. */
int filedata_delete_chunks(struct index_txn *txn, uint64_t ino, uint64_t from_idx)
{
	struct dead_list l = { 0 };
	int rc;

	rc = index_chunk_iter(txn, ino, from_idx, collect_dead, &l);
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		if ((rc = index_chunk_del(txn, ino, l.v[i].idx)) < 0)
			break;
		rc = index_pack_account(txn, l.v[i].rec.pack, -(int64_t)l.v[i].rec.len, 0);
	}
	free(l.v);
	return rc;
}

static int commit_chunks(struct index_txn *txn, void *argp)
{
	struct commit_arg *a = argp;
	struct mv_attr at;
	uint64_t max_pack = 0;
	int rc;

	/* checks and reads first: nothing may fail after the first put */
	if ((rc = index_inode_get(txn, a->ino, &at)) < 0)
		return rc;
	for (unsigned i = 0; i < a->n; i++) {
		rc = index_chunk_get(txn, a->ino, a->chunks[i].idx, &a->chunks[i].old);
		/* a damaged old record is simply replaced */
		a->chunks[i].had_old = rc == 0;
	}
	if (index_meta_get(txn, "max_pack", &max_pack) == -EIO)
		max_pack = 0;

	if (a->delete_from != UINT64_MAX) {
		struct dead_list l = { 0 };

		rc = index_chunk_iter(txn, a->ino, a->delete_from, collect_dead, &l);
		for (size_t i = 0; rc == 0 && i < l.n; i++) {
			at.blocks -= blocks_of(l.v[i].rec.plain_len) <= at.blocks ?
				blocks_of(l.v[i].rec.plain_len) : at.blocks;
			if ((rc = index_chunk_del(txn, a->ino, l.v[i].idx)) < 0)
				break;
			rc = index_pack_account(txn, l.v[i].rec.pack, -(int64_t)l.v[i].rec.len, 0);
		}
		free(l.v);
		if (rc < 0)
			return rc;
	}
	for (unsigned i = 0; i < a->n; i++) {
		struct sealed_chunk *s = &a->chunks[i];

		if (s->had_old) {
			uint64_t b = blocks_of(s->old.plain_len);

			at.blocks -= b <= at.blocks ? b : at.blocks;
			if ((rc = index_pack_account(txn, s->old.pack, -(int64_t)s->old.len, 0)) < 0)
				return rc;
		}
		if ((rc = index_chunk_put(txn, a->ino, s->idx, &s->rec)) < 0)
			return rc;
		if ((rc = index_pack_account(txn, s->rec.pack, s->rec.len, s->rec.len)) < 0)
			return rc;
		at.blocks += blocks_of(s->rec.plain_len);
		if (s->rec.pack > max_pack)
			max_pack = s->rec.pack;
	}
	if (max_pack > a->max_pack && (rc = index_meta_put(txn, "max_pack", max_pack)) < 0)
		return rc;
	at.size = a->size;
	if (a->set_times) {
		at.mtime_s = a->mtime.tv_sec;
		at.mtime_ns = (uint32_t)a->mtime.tv_nsec;
		at.ctime_s = a->ctime.tv_sec;
		at.ctime_ns = (uint32_t)a->ctime.tv_nsec;
	}
	return index_inode_put(txn, &at);
}

/*
 * Seal every dirty chunk, append them, and commit them with the size and
 * times in one transaction.  in->lock held.  On failure the dirty chunks
 * stay, so nothing written is lost and a later flush retries.
 */
static int flush_locked(struct mvfs *fs, struct mv_inode *in, uint64_t delete_from,
			const struct timespec *ctime)
{
	struct commit_arg a = { .ino = in->ino, .delete_from = delete_from };
	struct sealed_chunk *sc = NULL;
	uint8_t *ct = NULL;
	size_t over;
	unsigned n = 0;
	int rc;

	if (!in->dirty && !in->content_dirty && delete_from == UINT64_MAX)
		return 0;
	if ((rc = ensure_aead(fs, in)) < 0)
		return rc;
	over = aead_overhead(in->aead);
	if (in->ndirty) {
		sc = calloc(in->ndirty, sizeof(*sc));
		ct = malloc(fs->chunk_size + over);
		if (!sc || !ct) {
			rc = -ENOMEM;
			goto out;
		}
	}
	pthread_rwlock_rdlock(&fs->barrier);
	for (struct dirty_chunk *d = in->dirty; d; d = d->next) {
		uint64_t start = d->idx * fs->chunk_size;
		uint32_t len = d->len;
		uint8_t ad[CHUNK_AD_LEN];
		struct blob_loc loc;
		ssize_t sl;

		if (start >= in->size)
			continue;	/* cut off by a truncate */
		if (start + len > in->size)
			len = (uint32_t)(in->size - start);
		sc[n].idx = d->idx;
		sc[n].rec.version = mvfs_new_version(fs);
		sc[n].rec.plain_len = len;
		chunk_ad(ad, fs, in->ino, d->idx, sc[n].rec.version);
		sl = aead_seal(in->aead, ct, fs->chunk_size + over, d->buf, len, ad, sizeof(ad));
		if (sl < 0) {
			rc = (int)sl;
			goto unlock;
		}
		if ((rc = blobstore_append(fs->v->bs, ct, (size_t)sl, &loc)) < 0)
			goto unlock;
		sc[n].rec.pack = loc.pack;
		sc[n].rec.off = loc.off;
		sc[n].rec.len = loc.len;
		n++;
	}
	a.chunks = sc;
	a.n = n;
	a.size = in->size;
	a.set_times = in->content_dirty || ctime;
	a.mtime = in->mtime;
	a.ctime = ctime ? *ctime : in->mtime;
	rc = index_write(fs->v->ix, commit_chunks, &a);
unlock:
	pthread_rwlock_unlock(&fs->barrier);
	if (rc == 0) {
		dirty_free_all(in);
		in->rvalid = 0;
		in->content_dirty = 0;
	} else {
		syslog(LOG_ERR, "inode %" PRIu64 ": write-back failed: %s", in->ino, strerror(-rc));
	}
out:
	free(ct);
	free(sc);
	return rc;
}

int filedata_flush(struct mvfs *fs, struct mv_inode *in)
{
	int rc;

	pthread_mutex_lock(&in->lock);
	rc = flush_locked(fs, in, UINT64_MAX, NULL);
	pthread_mutex_unlock(&in->lock);
	return rc;
}

/* A dirty buffer for chunk idx, loading what the chunk holds unless the
 * caller overwrites all of it.  in->lock held. */
static int dirty_get(struct mvfs *fs, struct mv_inode *in, uint64_t idx, int whole,
		     struct dirty_chunk **out)
{
	struct dirty_chunk *d = dirty_find(in, idx);
	int rc;

	if (d) {
		*out = d;
		return 0;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->idx = idx;
	d->buf = malloc(fs->chunk_size);
	if (!d->buf) {
		free(d);
		return -ENOMEM;
	}
	if (whole || idx * (uint64_t)fs->chunk_size >= in->size) {
		d->len = 0;
	} else if (in->rvalid && in->ridx == idx) {
		memcpy(d->buf, in->rbuf, in->rlen);
		d->len = in->rlen;
	} else if ((rc = chunk_load(fs, in, idx, d->buf, &d->len)) < 0) {
		free(d->buf);
		free(d);
		return rc;
	}
	memset(d->buf + d->len, 0, fs->chunk_size - d->len);
	if (in->rvalid && in->ridx == idx)
		in->rvalid = 0;
	d->next = in->dirty;
	in->dirty = d;
	if (in->ndirty++ == 0)
		in->dirty_since = time(NULL);
	*out = d;
	return 0;
}

ssize_t filedata_write(struct mvfs *fs, struct mv_inode *in, const char *buf, size_t size, off_t off)
{
	uint64_t cs = fs->chunk_size, pos = (uint64_t)off, end = pos + size;
	size_t done = 0;
	int rc = 0;

	pthread_mutex_lock(&in->lock);
	if ((rc = ensure_size(fs, in)) < 0)
		goto out;
	/* make room first, so a failed write-back fails this write cleanly */
	if (in->ndirty >= fs->dirty_max && (rc = flush_locked(fs, in, UINT64_MAX, NULL)) < 0)
		goto out;
	while (pos < end) {
		uint64_t idx = pos / cs, within = pos % cs;
		size_t take = (size_t)(end - pos < cs - within ? end - pos : cs - within);
		struct dirty_chunk *d;

		if ((rc = dirty_get(fs, in, idx, within == 0 && take == cs, &d)) < 0)
			break;
		memcpy(d->buf + within, buf + done, take);
		if (within + take > d->len)
			d->len = (uint32_t)(within + take);
		done += take;
		pos += take;
	}
	if (done) {
		if (pos > in->size)
			in->size = pos;
		ns_now(&in->mtime);
		in->content_dirty = 1;
	}
out:
	pthread_mutex_unlock(&in->lock);
	return rc < 0 && done == 0 ? rc : (ssize_t)done;
}

int filedata_truncate(struct mvfs *fs, struct mv_inode *in, uint64_t size, const struct timespec *now)
{
	uint64_t cs = fs->chunk_size, keep = (size + cs - 1) / cs;
	struct dirty_chunk **pp, *d;
	uint64_t old;
	int rc;

	pthread_mutex_lock(&in->lock);
	if ((rc = ensure_size(fs, in)) < 0)
		goto out;
	old = in->size;
	/* drop buffered chunks past the end; trim the one across it */
	for (pp = &in->dirty; (d = *pp);) {
		if (d->idx >= keep) {
			*pp = d->next;
			free(d->buf);
			free(d);
			in->ndirty--;
			continue;
		}
		if (d->idx * cs + d->len > size) {
			d->len = (uint32_t)(size - d->idx * cs);
			memset(d->buf + d->len, 0, cs - d->len);
		}
		pp = &d->next;
	}
	/* a stored chunk across the new end must be rewritten shorter, or a
	 * later extension would bring its old tail back */
	if (size < old && size % cs) {
		if ((rc = dirty_get(fs, in, size / cs, 0, &d)) < 0)
			goto out;
		if (d->len > size % cs) {
			d->len = (uint32_t)(size % cs);
			memset(d->buf + d->len, 0, cs - d->len);
		}
	}
	in->rvalid = 0;
	in->size = size;
	in->mtime = *now;
	in->content_dirty = 1;
	rc = flush_locked(fs, in, size < old ? keep : UINT64_MAX, now);
	if (rc < 0)
		in->size = old;
out:
	pthread_mutex_unlock(&in->lock);
	return rc;
}

void filedata_overlay(struct mvfs *fs, struct mv_inode *in, struct mv_attr *a)
{
	(void)fs;
	pthread_mutex_lock(&in->lock);
	if (in->size_loaded)
		a->size = in->size;
	if (in->content_dirty) {
		a->mtime_s = a->ctime_s = in->mtime.tv_sec;
		a->mtime_ns = a->ctime_ns = (uint32_t)in->mtime.tv_nsec;
	}
	pthread_mutex_unlock(&in->lock);
}

/* ---- durability ---- */

int fs_checkpoint(struct mvfs *fs)
{
	uint64_t want;
	int rc = 0;

	pthread_mutex_lock(&fs->sync_lock);
	/* a sync that starts after this call covers everything before it */
	want = fs->sync_started + 1;
	while (fs->sync_done < want) {
		uint64_t mine;

		if (fs->syncing) {
			pthread_cond_wait(&fs->sync_cond, &fs->sync_lock);
			continue;
		}
		fs->syncing = 1;
		mine = ++fs->sync_started;
		pthread_mutex_unlock(&fs->sync_lock);

		pthread_rwlock_wrlock(&fs->barrier);
		rc = blobstore_sync(fs->v->bs);
		if (rc == 0)
			rc = index_sync(fs->v->ix);
		pthread_rwlock_unlock(&fs->barrier);

		pthread_mutex_lock(&fs->sync_lock);
		fs->sync_error = rc;
		fs->sync_done = mine;
		fs->syncing = 0;
		pthread_cond_broadcast(&fs->sync_cond);
	}
	rc = fs->sync_error;
	pthread_mutex_unlock(&fs->sync_lock);
	return rc;
}
