/*
 * File contents: fixed-size chunks, buffered per inode while dirty, sealed
 * with the file's key and appended to the packs, then committed to the
 * index in one transaction per flush.  A chunk is never rewritten in
 * place: a flush adds a new version and the old bytes become dead.
 *
 * Calls only downward: namespace -> filedata -> inode_table.  Nothing here
 * calls the namespace.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/statvfs.h>

#include "crypto/aead.h"
#include "store/blobstore.h"
#include "util/bufpool.h"
#include "chunkcache.h"
#include "util/parallel.h"
#include "util/fileutil.h"
#include "filedata.h"
#include "crypto/volkeys.h"

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
	int rc;

	if (in->aead)
		return 0;
	rc = volkeys_file_aead(fs->v->keys, VOLKEYS_DEFAULT_DOMAIN, in->ino, &in->aead);
	return rc;
}

/*
 * The key of in's chunk of this version: the file key (a chunk sealed
 * before format 3; in->aead, ensure_aead done) or its generation's, from
 * the cache.  *own set: a key of the caller's, to aead_free (cache full).
 * Needs in->aead but not in->lock.
 */
static int chunk_key(struct mvfs *fs, struct mv_inode *in, uint64_t version, struct aead **out,
		     int *own)
{
	uint64_t gen = volkeys_chunk_gen(fs->v->keygen_epoch, version);
	struct aead *k = NULL;
	int rc = 0;

	*own = 0;
	if (gen == VOLKEYS_GEN_FILE) {
		*out = in->aead;
		return 0;
	}
	pthread_mutex_lock(&in->keys_lock);
	for (unsigned i = 0; i < in->ngkeys && !k; i++)
		if (in->gkeys[i].gen == gen)
			k = in->gkeys[i].aead;
	if (!k && (rc = volkeys_chunk_aead(fs->v->keys, VOLKEYS_DEFAULT_DOMAIN, in->ino, gen, &k)) == 0) {
		if (in->ngkeys < MV_GEN_KEYS)
			in->gkeys[in->ngkeys++] = (struct gen_key){ gen, k };
		else
			*own = 1;
	}
	pthread_mutex_unlock(&in->keys_lock);
	*out = k;
	return rc;
}

static void chunk_key_put(struct aead *k, int own)
{
	if (own)
		aead_free(k);
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
	in->quarantined = (a.flags & INDEX_FLAG_QUARANTINED) != 0;
	return 0;
}

/*
 * Read and authenticate chunk idx of in into buf (chunk_size bytes); *len
 * gets its stored length, 0 for a hole.  Needs in->aead but not in->lock,
 * so readers of one file load chunks in parallel.  -EIO on any damage.
 */
static int chunk_load(struct mvfs *fs, struct mv_inode *in, uint64_t idx, uint8_t *buf,
		      uint32_t *len, int cache_it)
{
	struct index_txn *t;
	struct chunk_rec c;
	uint8_t ad[CHUNK_AD_LEN], *ct = NULL;
	struct aead *key;
	ssize_t n;
	int rc, own;

	*len = 0;
	if ((rc = index_read_begin(fs->v->ix, &t)) < 0)
		return rc;
	rc = index_chunk_get(t, in->ino, idx, &c);
	index_read_end(t);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		goto damaged;
	if (c.plain_len > fs->chunk_size || c.len != c.plain_len + aead_overhead(in->aead)) {
		rc = -EIO;
		goto damaged;
	}
	if (chunkcache_get(fs->cache, in->ino, idx, c.version, buf, len))
		return 0;
	ct = bufpool_get(fs->sealed);
	if (!ct)
		return -ENOMEM;
	{
		struct blob_loc loc = { c.pack, c.off, c.len };

		rc = blobstore_read(fs->v->bs, &loc, ct);
	}
	if (rc < 0)
		goto damaged;
	chunk_ad(ad, fs, in->ino, idx, c.version);
	if ((rc = chunk_key(fs, in, c.version, &key, &own)) < 0) {
		bufpool_put(fs->sealed, ct);
		return rc;
	}
	n = aead_open(key, buf, fs->chunk_size, ct, c.len, ad, sizeof(ad));
	chunk_key_put(key, own);
	if (n < 0 || (uint32_t)n != c.plain_len) {
		rc = -EIO;
		goto damaged;
	}
	bufpool_put(fs->sealed, ct);
	*len = c.plain_len;
	if (cache_it)
		chunkcache_put(fs->cache, in->ino, idx, c.version, buf, c.plain_len);
	return 0;
damaged:
	bufpool_put(fs->sealed, ct);
	syslog(LOG_ERR, "inode %" PRIu64 " chunk %" PRIu64 ": %s", in->ino, idx,
	       rc == -ENOENT ? "pack missing" : "failed authentication or unreadable");
	return -EIO;
}

/* Copy bytes [within, within+take) of a chunk holding valid bytes into
 * out; whatever lies past the stored bytes is a hole: zeros. */
static void chunk_copy(char *out, const uint8_t *src, uint32_t valid, uint64_t within, size_t take)
{
	if (within >= valid) {
		memset(out, 0, take);
	} else if (within + take > valid) {
		memcpy(out, src + within, valid - within);
		memset(out + (valid - within), 0, take - (valid - within));
	} else {
		memcpy(out, src + within, take);
	}
}

static struct dirty_chunk *dirty_find(struct mv_inode *in, uint64_t idx)
{
	for (struct dirty_chunk *d = in->dirty; d; d = d->next)
		if (d->idx == idx)
			return d;
	return NULL;
}

/* A chunk some writer is writing back right now (see flush_behind). */
static struct dirty_chunk *inflight_find(struct mv_inode *in, uint64_t idx)
{
	for (struct dirty_chunk *d = in->inflight; d; d = d->next)
		if (d->idx == idx)
			return d;
	return NULL;
}

/* The newest copy of chunk idx that the index does not have yet. */
static struct dirty_chunk *pending_find(struct mv_inode *in, uint64_t idx)
{
	struct dirty_chunk *d = dirty_find(in, idx);

	return d ? d : inflight_find(in, idx);
}

/* in->lock held; returns with it held and no write-back in flight. */
static void wait_inflight(struct mv_inode *in)
{
	while (in->inflight)
		pthread_cond_wait(&in->inflight_done, &in->lock);
}

static void dirty_chunk_free(struct mvfs *fs, struct dirty_chunk *d)
{
	bufpool_put(fs->chunks, d->buf);
	free(d);
}

void filedata_discard(struct mvfs *fs, struct mv_inode *in)
{
	struct dirty_chunk *d, *next;

	for (d = in->dirty; d; d = next) {
		next = d->next;
		dirty_chunk_free(fs, d);
	}
	in->dirty = NULL;
	in->ndirty = 0;
}

void filedata_release(struct mvfs *fs, struct mv_inode *in)
{
	/* an unlinked file's data is moot; a failed last flush keeps its
	 * chunks here, and they must go back to the pool all the same */
	filedata_discard(fs, in);
	bufpool_put(fs->chunks, in->rbuf);
	in->rbuf = NULL;
	in->rvalid = 0;
	aead_free(in->aead);
	in->aead = NULL;
	pthread_mutex_lock(&in->keys_lock);
	for (unsigned i = 0; i < in->ngkeys; i++)
		aead_free(in->gkeys[i].aead);
	in->ngkeys = 0;
	pthread_mutex_unlock(&in->keys_lock);
}

struct read_item {
	uint64_t idx, within;
	size_t take;
	char *out;
	uint8_t *buf;		/* loaded plaintext, kept for the read cache */
	uint32_t valid;
	int rc;
};

struct read_job {
	struct mvfs *fs;
	struct mv_inode *in;
	struct read_item *items;
};

static void read_one(void *ctx, size_t i)
{
	struct read_job *j = ctx;
	struct read_item *it = &j->items[i];
	uint32_t cs = j->fs->chunk_size;

	if (it->within == 0 && it->take == cs) {
		/* a whole chunk: open it straight into the reply; a sequential
		 * reader will not ask for it again, so no cache either */
		it->rc = chunk_load(j->fs, j->in, it->idx, (uint8_t *)it->out, &it->valid, 0);
		if (it->rc == 0 && it->valid < cs)
			memset(it->out + it->valid, 0, cs - it->valid);
		return;
	}
	it->buf = bufpool_get(j->fs->chunks);
	if (!it->buf) {
		it->rc = -ENOMEM;
		return;
	}
	it->rc = chunk_load(j->fs, j->in, it->idx, it->buf, &it->valid, 1);
	if (it->rc == 0)
		chunk_copy(it->out, it->buf, it->valid, it->within, it->take);
}

ssize_t filedata_read(struct mvfs *fs, struct mv_inode *in, char *buf, size_t size, off_t off)
{
	uint64_t cs = fs->chunk_size, pos = (uint64_t)off, end;
	struct read_item *items = NULL;
	struct read_job job = { fs, in, NULL };
	size_t nitems = 0, done = 0;
	uint64_t gen;
	int rc = 0;

	pthread_mutex_lock(&in->lock);
	gen = in->gen;
	if ((rc = ensure_size(fs, in)) < 0 || (rc = ensure_aead(fs, in)) < 0)
		goto unlock;
	if (in->quarantined) {
		rc = -EIO;	/* fsck could not verify it: never serve it */
		goto unlock;
	}
	if (pos >= in->size)
		goto unlock;
	end = pos + size < in->size ? pos + size : in->size;
	items = calloc((size_t)((end - pos) / cs + 2), sizeof(*items));
	if (!items) {
		rc = -ENOMEM;
		goto unlock;
	}
	/* buffered and cached chunks now; the rest is loaded unlocked */
	while (pos < end) {
		uint64_t idx = pos / cs, within = pos % cs;
		size_t take = (size_t)((end - pos) < cs - within ? end - pos : cs - within);
		struct dirty_chunk *d = pending_find(in, idx);

		if (d) {
			chunk_copy(buf + done, d->buf, d->len, within, take);
			__atomic_add_fetch(&fs->stat_chunk_hits, 1, __ATOMIC_RELAXED);
		} else if (in->rvalid && in->ridx == idx) {
			chunk_copy(buf + done, in->rbuf, in->rlen, within, take);
			__atomic_add_fetch(&fs->stat_chunk_hits, 1, __ATOMIC_RELAXED);
		} else {
			struct read_item *it = &items[nitems++];

			it->idx = idx;
			it->within = within;
			it->take = take;
			it->out = buf + done;
		}
		done += take;
		pos += take;
	}
unlock:
	pthread_mutex_unlock(&in->lock);
	if (rc < 0 || nitems == 0)
		goto out;

	job.items = items;
	__atomic_add_fetch(&fs->stat_chunk_loads, nitems, __ATOMIC_RELAXED);
	parallel_for(fs->par, nitems, read_one, &job);
	for (size_t i = 0; i < nitems; i++)
		if (items[i].rc < 0 && rc == 0)
			rc = items[i].rc;
	if (rc == 0 && items[nitems - 1].buf) {
		/* keep the last chunk read: small sequential reads come next */
		struct read_item *last = &items[nitems - 1];

		pthread_mutex_lock(&in->lock);
		/* unless a flush or truncate changed the file meanwhile */
		if (in->gen == gen && !pending_find(in, last->idx)) {
			uint8_t *old = in->rbuf;

			in->rbuf = last->buf;
			in->ridx = last->idx;
			in->rlen = last->valid;
			in->rvalid = 1;
			last->buf = old;
		}
		pthread_mutex_unlock(&in->lock);
	}
out:
	for (size_t i = 0; i < nitems; i++)
		bufpool_put(fs->chunks, items[i].buf);
	free(items);
	return rc < 0 ? rc : (ssize_t)done;
}

size_t filedata_chunk_peek(struct mvfs *fs, struct mv_inode *in, off_t off, uint8_t *buf,
			   uint64_t *start)
{
	uint64_t idx = (uint64_t)off / fs->chunk_size;
	size_t n = 0;

	pthread_mutex_lock(&in->lock);
	if (in->rvalid && in->ridx == idx && in->size_loaded && !pending_find(in, idx)) {
		uint64_t s = idx * fs->chunk_size;

		if (s < in->size) {
			n = (size_t)(in->size - s < fs->chunk_size ? in->size - s : fs->chunk_size);
			chunk_copy((char *)buf, in->rbuf, in->rlen, 0, n);
			*start = s;
		}
	}
	pthread_mutex_unlock(&in->lock);
	return n;
}

/* ---- write-back ---- */

struct sealed_chunk {
	uint64_t idx;
	struct chunk_rec rec;
	struct chunk_rec old;
	int had_old;
	struct aead *key;	/* chunk_key's, for rec.version */
	int own_key;
};

struct commit_arg {
	uint64_t ino;
	struct sealed_chunk *chunks;
	unsigned n;
	uint64_t size;
	struct timespec mtime, ctime;
	int set_times;
	uint64_t delete_from;	/* drop chunks [delete_from, delete_to) */
	uint64_t delete_to;
	uint64_t max_pack;
};

struct dead_chunk {
	uint64_t idx;
	struct chunk_rec rec;
};

struct dead_list {
	struct dead_chunk *v;
	size_t n, cap;
	uint64_t stop;		/* first index not collected */
};

static int collect_dead(void *ctx, uint64_t ino, uint64_t idx, const struct chunk_rec *c)
{
	struct dead_list *l = ctx;

	(void)ino;
	if (idx >= l->stop)
		return 1;
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

	if (a->delete_from < a->delete_to) {
		struct dead_list l = { .stop = a->delete_to };

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

struct seal_job {
	struct mvfs *fs;
	struct mv_inode *in;
	struct sealed_chunk *sc;
	const uint8_t **plain;
	size_t *at;		/* offset of each sealed chunk in out */
	uint8_t *out;
	size_t over;
	int rc;
};

static void seal_one(void *ctx, size_t i)
{
	struct seal_job *j = ctx;
	struct sealed_chunk *s = &j->sc[i];
	uint8_t ad[CHUNK_AD_LEN];
	ssize_t n;

	chunk_ad(ad, j->fs, j->in->ino, s->idx, s->rec.version);
	n = aead_seal(s->key, j->out + j->at[i], s->rec.plain_len + j->over,
		      j->plain[i], s->rec.plain_len, ad, sizeof(ad));
	if (n < 0)
		j->rc = (int)n;	/* any failure fails the batch; which one is moot */
	else
		s->rec.len = (uint32_t)n;
}

/* What a flush commits besides the chunks, taken under in->lock. */
struct flush_meta {
	uint64_t size;
	struct timespec mtime, ctime;
	int set_times;
	uint64_t drop_from, drop_to;	/* stored chunks deleted (truncate, hole) */
};

static void meta_take(const struct mv_inode *in, const struct timespec *ctime,
		      struct flush_meta *m)
{
	m->drop_from = m->drop_to = UINT64_MAX;
	m->size = in->size;
	m->set_times = in->mtime_dirty || ctime;
	m->mtime = in->mtime;
	m->ctime = ctime ? *ctime : in->mtime;
}

/* Whether the n chunks mostly cover one range of neighbouring indexes. */
static int chunks_clustered(const struct sealed_chunk *sc, unsigned n)
{
	uint64_t lo = UINT64_MAX, hi = 0;

	for (unsigned i = 0; i < n; i++) {
		if (sc[i].idx < lo)
			lo = sc[i].idx;
		if (sc[i].idx > hi)
			hi = sc[i].idx;
	}
	return n && hi - lo < (uint64_t)n + n / 8;
}

/*
 * Seal the first count chunks of list (in parallel), append them as one
 * run to the open pack, and commit them with m's size and times in one
 * transaction.  Reads only in->ino and in->aead, so in->lock need not be
 * held as long as nobody changes these chunks meanwhile.
 */
static int flush_list(struct mvfs *fs, struct mv_inode *in, struct dirty_chunk *list,
		      unsigned count, int drop, const struct flush_meta *m)
{
	struct commit_arg a = {
		.ino = in->ino,
		.delete_from = drop ? m->drop_from : UINT64_MAX,
		.delete_to = drop ? m->drop_to : UINT64_MAX,
	};
	struct seal_job job = { .fs = fs, .in = in };
	struct sealed_chunk *sc = NULL;
	const uint8_t **plain = NULL;
	size_t *at = NULL, total = 0;
	unsigned n = 0;
	int rc = 0;

	job.over = aead_overhead(in->aead);
	if (count) {
		sc = calloc(count, sizeof(*sc));
		plain = calloc(count, sizeof(*plain));
		at = calloc(count, sizeof(*at));
		if (!sc || !plain || !at) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (unsigned seen = 0; list && seen < count; list = list->next, seen++) {
		struct dirty_chunk *d = list;
		uint64_t start = d->idx * fs->chunk_size;
		uint32_t len = d->len;

		if (start >= m->size)
			continue;	/* cut off by a truncate */
		if (start + len > m->size)
			len = (uint32_t)(m->size - start);
		sc[n].idx = d->idx;
		sc[n].rec.version = mvfs_new_version(fs);
		sc[n].rec.plain_len = len;
		/* the versions of one flush share a generation but at its
		 * end; the cache answers the rest without deriving */
		if ((rc = chunk_key(fs, in, sc[n].rec.version, &sc[n].key, &sc[n].own_key)) < 0)
			goto out;
		plain[n] = d->buf;
		at[n] = total;
		total += len + job.over;
		n++;
	}
	if (n) {
		job.out = total <= fs->batch_size ? bufpool_get(fs->batches) : malloc(total);
		if (!job.out) {
			rc = -ENOMEM;
			goto out;
		}
		job.sc = sc;
		job.plain = plain;
		job.at = at;
		parallel_for(fs->par, n, seal_one, &job);
		if ((rc = job.rc) < 0)
			goto out;
	}
	pthread_rwlock_rdlock(&fs->barrier);
	if (n) {
		struct blob_loc loc;
		size_t cap = total <= fs->batch_size ? fs->batch_size : total;

		/*
		 * Scattered chunks (random writes) are likely to be rewritten
		 * soon, and each rewrite must read the chunk back: keep them
		 * in the page cache.  Only a run of neighbours, a file being
		 * streamed out, bypasses it.
		 */
		if (!chunks_clustered(sc, n))
			cap = 0;
		rc = blobstore_append_buf(fs->v->bs, job.out, total, cap, &loc);
		for (unsigned i = 0; rc == 0 && i < n; i++) {
			sc[i].rec.pack = loc.pack;
			sc[i].rec.off = loc.off + at[i];
		}
	}
	if (rc == 0) {
		a.chunks = sc;
		a.n = n;
		a.size = m->size;
		a.set_times = m->set_times;
		a.mtime = m->mtime;
		a.ctime = m->ctime;
		rc = index_write(fs->v->ix, commit_chunks, &a);
	}
	pthread_rwlock_unlock(&fs->barrier);
out:
	/* format 3 gives each 2^31 versions a new key, so a key reaching
	 * the limit (aead.h, kept as a second guard) is a bug, not wear */
	if (rc == -EKEYEXPIRED)
		syslog(LOG_ERR, "inode %" PRIu64 ": write-back refused: a chunk key reached the AES-GCM "
		       "seal limit", in->ino);
	else if (rc < 0)
		syslog(LOG_ERR, "inode %" PRIu64 ": write-back failed: %s", in->ino, strerror(-rc));
	if (job.out && total <= fs->batch_size)
		bufpool_put(fs->batches, job.out);
	else
		free(job.out);
	for (unsigned i = 0; sc && i < n; i++)
		chunk_key_put(sc[i].key, sc[i].own_key);
	free(at);
	free(plain);
	free(sc);
	return rc;
}

/*
 * Write back the first count chunks of list in groups of at most
 * flush_group chunks, so that a large dirty budget never needs a large
 * sealing buffer; the last group also drops m's chunk range.
 * *done gets how many chunks (a prefix of list) were committed.
 */
static int flush_chunks(struct mvfs *fs, struct mv_inode *in, struct dirty_chunk *list,
			unsigned count, const struct flush_meta *m, unsigned *done)
{
	/* what one write past a full budget adds still fits the batch
	 * buffer (see mvfs_create): no tiny second group */
	unsigned most = fs->flush_group + MV_MAX_IO / fs->chunk_size;
	int rc;

	*done = 0;
	do {
		unsigned n = count - *done;
		int last = n <= most;

		if (!last)
			n = fs->flush_group;
		rc = flush_list(fs, in, list, n, last, m);
		if (rc < 0)
			return rc;
		*done += n;
		for (unsigned i = 0; i < n; i++)
			list = list->next;
	} while (*done < count);
	return 0;
}

/*
 * Write back every dirty chunk with in->lock held, so nobody sees them
 * detached.  On failure the unwritten chunks stay dirty, so nothing
 * written is lost and a later flush retries.
 */
static int flush_locked(struct mvfs *fs, struct mv_inode *in, uint64_t drop_from,
			uint64_t drop_to, const struct timespec *ctime)
{
	struct flush_meta m;
	unsigned done;
	int rc;

	wait_inflight(in);
	if (!in->dirty && !in->content_dirty && drop_from >= drop_to)
		return 0;
	if (itable_is_dead(fs, in)) {
		/* unlinked and closed: nobody can read it again */
		filedata_discard(fs, in);
		in->content_dirty = in->mtime_dirty = 0;
		return 0;
	}
	if ((rc = ensure_aead(fs, in)) < 0)
		return rc;
	meta_take(in, ctime, &m);
	m.drop_from = drop_from;
	m.drop_to = drop_to;
	rc = flush_chunks(fs, in, in->dirty, in->ndirty, &m, &done);
	if (rc == 0 || done)
		in->gen++;
	for (unsigned i = 0; i < done; i++) {
		struct dirty_chunk *d = in->dirty;

		in->dirty = d->next;
		in->ndirty--;
		dirty_chunk_free(fs, d);
	}
	if (rc == 0) {
		in->content_dirty = 0;
		in->mtime_dirty = 0;
	} else {
		itable_activate(fs, in);	/* the flusher retries it */
	}
	return rc;
}

/*
 * Make room in a full dirty budget without stopping the file's other
 * writers: detach the dirty chunks and write them back with in->lock
 * released, while later writes fill a fresh budget.  Writes to a detached
 * chunk start from its buffer (dirty_get), reads look there too.  One
 * group per inode at a time: a chunk's versions must commit in order.
 * in->lock held on entry and on return.
 */
static int flush_behind(struct mvfs *fs, struct mv_inode *in)
{
	struct dirty_chunk *list, *next;
	struct flush_meta m;
	unsigned count, done, i;
	int rc;

	wait_inflight(in);
	if (in->ndirty < fs->dirty_max)
		return 0;	/* another writer made room meanwhile */
	if (itable_is_dead(fs, in))
		return flush_locked(fs, in, UINT64_MAX, UINT64_MAX, NULL);
	if ((rc = ensure_aead(fs, in)) < 0)
		return rc;
	meta_take(in, NULL, &m);
	list = in->inflight = in->dirty;
	count = in->ndirty;
	in->dirty = NULL;
	in->ndirty = 0;
	in->inflight_mtime = m.set_times;
	in->content_dirty = in->mtime_dirty = 0;
	pthread_mutex_unlock(&in->lock);

	rc = flush_chunks(fs, in, list, count, &m, &done);

	pthread_mutex_lock(&in->lock);
	in->inflight = NULL;
	in->inflight_mtime = 0;
	if (rc == 0 || done)
		in->gen++;
	/* unwritten chunks go back, unless a later write took them over */
	for (i = 0; list; i++, list = next) {
		next = list->next;
		if (i < done || dirty_find(in, list->idx)) {
			dirty_chunk_free(fs, list);
			continue;
		}
		list->next = in->dirty;
		in->dirty = list;
		if (in->ndirty++ == 0)
			in->dirty_since = time(NULL);
	}
	if (rc < 0) {
		in->content_dirty = 1;
		in->mtime_dirty |= m.set_times;
		itable_activate(fs, in);
	}
	pthread_cond_broadcast(&in->inflight_done);
	return rc;
}

int filedata_flush(struct mvfs *fs, struct mv_inode *in)
{
	int rc;

	pthread_mutex_lock(&in->lock);
	rc = flush_locked(fs, in, UINT64_MAX, UINT64_MAX, NULL);
	pthread_mutex_unlock(&in->lock);
	return rc;
}

/* A dirty buffer for chunk idx, loading what the chunk holds unless the
 * caller overwrites all of it.  in->lock held. */
static int dirty_get(struct mvfs *fs, struct mv_inode *in, uint64_t idx, int whole,
		     struct dirty_chunk **out)
{
	struct dirty_chunk *d = dirty_find(in, idx), *src;
	int rc;

	if (d) {
		*out = d;
		return 0;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->idx = idx;
	d->buf = bufpool_get(fs->chunks);
	if (!d->buf) {
		free(d);
		return -ENOMEM;
	}
	if (whole || idx * (uint64_t)fs->chunk_size >= in->size) {
		d->len = 0;
	} else if ((src = inflight_find(in, idx))) {
		memcpy(d->buf, src->buf, src->len);
		d->len = src->len;
	} else if (in->rvalid && in->ridx == idx) {
		memcpy(d->buf, in->rbuf, in->rlen);
		d->len = in->rlen;
	} else if ((rc = ensure_aead(fs, in)) < 0 ||
		   (rc = chunk_load(fs, in, idx, d->buf, &d->len, 0)) < 0) {
		dirty_chunk_free(fs, d);
		return rc;
	}
	/* bytes past d->len are garbage: readers and sealing stop at len,
	 * and a write past it zeroes the gap first */
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
	if (in->ndirty >= fs->dirty_max && (rc = flush_behind(fs, in)) < 0)
		goto out;
	while (pos < end) {
		uint64_t idx = pos / cs, within = pos % cs;
		size_t take = (size_t)(end - pos < cs - within ? end - pos : cs - within);
		struct dirty_chunk *d;

		if ((rc = dirty_get(fs, in, idx, within == 0 && take == cs, &d)) < 0)
			break;
		if (within > d->len)
			memset(d->buf + d->len, 0, within - d->len);
		memcpy(d->buf + within, buf + done, take);
		if (within + take > d->len)
			d->len = (uint32_t)(within + take);
		done += take;
		pos += take;
	}
	if (done) {
		if (pos > in->size)
			in->size = pos;
		/*
		 * With the writeback cache the kernel stamps mtime at write(2)
		 * time and sends it in a setattr; pages may reach us after
		 * that, and must not overwrite it with the writeback time.
		 */
		if (!fs->writeback) {
			core_now(&in->mtime);
			in->mtime_dirty = 1;
		}
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
	wait_inflight(in);
	old = in->size;
	/* drop buffered chunks past the end; trim the one across it */
	for (pp = &in->dirty; (d = *pp);) {
		if (d->idx >= keep) {
			*pp = d->next;
			dirty_chunk_free(fs, d);
			in->ndirty--;
			continue;
		}
		if (d->idx * cs + d->len > size)
			d->len = (uint32_t)(size - d->idx * cs);
		pp = &d->next;
	}
	/* a stored chunk across the new end must be rewritten shorter, or a
	 * later extension would bring its old tail back */
	if (size < old && size % cs) {
		if ((rc = dirty_get(fs, in, size / cs, 0, &d)) < 0)
			goto out;
		if (d->len > size % cs)
			d->len = (uint32_t)(size % cs);
	}
	in->rvalid = 0;
	in->gen++;
	in->size = size;
	in->mtime = *now;
	in->mtime_dirty = 1;
	in->content_dirty = 1;
	rc = flush_locked(fs, in, size < old ? keep : UINT64_MAX, UINT64_MAX, now);
	if (rc < 0)
		in->size = old;
out:
	pthread_mutex_unlock(&in->lock);
	return rc;
}

/* Zero [off, end), which lies inside one chunk, through a dirty copy of
 * that chunk.  Bytes past the chunk's stored length already read as zero.
 * in->lock held. */
static int chunk_zero(struct mvfs *fs, struct mv_inode *in, uint64_t off, uint64_t end)
{
	uint64_t cs = fs->chunk_size, idx = off / cs;
	uint32_t from = (uint32_t)(off - idx * cs), to = (uint32_t)(end - idx * cs);
	struct dirty_chunk *d;
	int rc;

	if ((rc = dirty_get(fs, in, idx, 0, &d)) < 0)
		return rc;
	if (to > d->len)
		to = d->len;
	if (from < to)
		memset(d->buf + from, 0, to - from);
	return 0;
}

/* Whether the store's disk has room for need more bytes. */
static int store_has_room(struct mvfs *fs, uint64_t need)
{
	struct statvfs sv;

	if (need == 0 || fstatvfs(blobstore_dirfd(fs->v->bs), &sv) < 0)
		return 1;	/* unknown: the writes themselves will tell */
	return (uint64_t)sv.f_bavail * (sv.f_frsize ? sv.f_frsize : sv.f_bsize) >= need;
}

/*
 * fallocate(2) with the modes FUSE passes on: 0 and KEEP_SIZE reserve
 * (chunks are written on demand, so only the size and the free space are
 * checked), PUNCH_HOLE and ZERO_RANGE drop the chunks the range covers
 * and zero the partial ones at its edges.  The zeroing and the size
 * commit in one transaction after everything buffered was written, so a
 * failure leaves the file as it was.
 */
int filedata_fallocate(struct mvfs *fs, struct mv_inode *in, int mode, uint64_t off, uint64_t len)
{
	uint64_t cs = fs->chunk_size, end = off + len, old, drop_from = UINT64_MAX,
		 drop_to = UINT64_MAX;
	int changed = 0, rc;

	if (fs_read_only(fs))
		return -EROFS;
	pthread_mutex_lock(&in->lock);
	if ((rc = ensure_size(fs, in)) < 0)
		goto out;
	old = in->size;
	if (!(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) && end > old &&
	    !store_has_room(fs, end - (off > old ? off : old))) {
		rc = -ENOSPC;
		goto out;
	}
	if ((rc = flush_locked(fs, in, UINT64_MAX, UINT64_MAX, NULL)) < 0)
		goto out;
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		/* past the end there is nothing to zero */
		uint64_t zend = end < old ? end : old;

		if (off < zend) {
			/* chunks the range covers up to their end or the file's */
			uint64_t first = (off + cs - 1) / cs;
			uint64_t last = zend == old ? (zend + cs - 1) / cs : zend / cs;

			uint64_t edge[2] = { off / cs, (zend - 1) / cs };

			if (first < last) {
				drop_from = first;
				drop_to = last;
			}
			/* the first and last chunk, unless covered: zero their part */
			for (int e = 0; e < 2 && rc == 0; e++) {
				uint64_t idx = edge[e], lo = idx * cs, hi = lo + cs;

				if ((e == 1 && idx == edge[0]) || (idx >= first && idx < last))
					continue;
				rc = chunk_zero(fs, in, off > lo ? off : lo, zend < hi ? zend : hi);
			}
			if (rc < 0)
				goto undo;
			changed = 1;
			in->rvalid = 0;
			in->gen++;
		}
	}
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > old) {
		in->size = end;
		changed = 1;
	}
	if (!changed)
		goto out;
	in->content_dirty = 1;
	if (!fs->writeback) {
		core_now(&in->mtime);
		in->mtime_dirty = 1;
	}
	if ((rc = flush_locked(fs, in, drop_from, drop_to, NULL)) == 0)
		goto out;
undo:
	/* only the edge chunks are buffered, copies of what is stored */
	filedata_discard(fs, in);
	in->size = old;
	in->content_dirty = 0;
	in->rvalid = 0;
	in->gen++;
out:
	pthread_mutex_unlock(&in->lock);
	return rc;
}

int filedata_unwritten(struct mv_inode *in)
{
	int left;

	pthread_mutex_lock(&in->lock);
	left = in->ndirty || in->content_dirty || in->inflight;
	pthread_mutex_unlock(&in->lock);
	return left;
}

int filedata_mtime_pending(struct mv_inode *in)
{
	int pending;

	pthread_mutex_lock(&in->lock);
	pending = in->mtime_dirty || (in->inflight && in->inflight_mtime);
	pthread_mutex_unlock(&in->lock);
	return pending;
}

void filedata_overlay(struct mvfs *fs, struct mv_inode *in, struct mv_attr *a)
{
	(void)fs;
	pthread_mutex_lock(&in->lock);
	if (in->size_loaded)
		a->size = in->size;
	if (in->mtime_dirty) {
		a->mtime_s = a->ctime_s = in->mtime.tv_sec;
		a->mtime_ns = a->ctime_ns = (uint32_t)in->mtime.tv_nsec;
	}
	/* buffered data counts as allocated, as ext4's delayed allocation
	 * does: a file with data never looks like one big hole */
	{
		uint64_t buffered = 0;

		for (struct dirty_chunk *d = in->dirty; d; d = d->next)
			buffered += blocks_of(d->len);
		for (struct dirty_chunk *d = in->inflight; d; d = d->next)
			buffered += blocks_of(d->len);
		if (a->blocks < buffered)
			a->blocks = buffered;
	}
	pthread_mutex_unlock(&in->lock);
}

/* ---- durability ---- */

struct sync_job {
	struct mvfs *fs;
	int rc[2];
};

static void sync_one(void *ctx, size_t i)
{
	struct sync_job *j = ctx;

	j->rc[i] = i == 0 ? blobstore_sync(j->fs->v->bs) : index_sync(j->fs->v->ix);
}

/*
 * Packs and index are flushed at the same time: the disk's two flushes
 * overlap (one journal commit on ext4), which halves an fsync's wait.
 * Index pages durable before the pack bytes they name can only happen
 * inside a checkpoint that has not returned, the same window LMDB's
 * NOSYNC write-back already opens: reads of that data fail
 * authentication (EIO); nothing acknowledged is affected.
 */
static int sync_store(struct mvfs *fs)
{
	struct sync_job j = { .fs = fs };

	parallel_for(fs->par, 2, sync_one, &j);
	return j.rc[0] ? j.rc[0] : j.rc[1];
}

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
		rc = sync_store(fs);
		pthread_rwlock_unlock(&fs->barrier);

		pthread_mutex_lock(&fs->sync_lock);
		if (rc == 0)
			__atomic_store_n(&fs->last_checkpoint, (int64_t)time(NULL), __ATOMIC_RELAXED);
		fs->sync_error = rc;
		fs->sync_done = mine;
		fs->syncing = 0;
		pthread_cond_broadcast(&fs->sync_cond);
	}
	rc = fs->sync_error;
	pthread_mutex_unlock(&fs->sync_lock);
	return rc;
}
