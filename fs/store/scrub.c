/*
 * scrub: the whole-tree check and every record in one read transaction,
 * then every chunk in short batches at a bounded rate (store/scrub.h).
 *
 * Phase 2 walks the regular files, as listed by phase 1's walk of the
 * inode records (8 bytes each), one index_chunk_iter per file and batch:
 * chunk records of no file are the whole-tree check's and fsck's.  The index
 * offers no walk over all chunks from a given key, and the list lets a
 * batch resume exactly after the last key it read.  A batch copies its
 * chunk records out of the transaction and ends it before reading any
 * pack, so the transaction lives for microseconds however slow the disk.
 * A chunk that then fails is looked up again in a fresh transaction: when
 * its record changed meanwhile (rewritten, moved by compaction, the file
 * truncated or deleted), that is the live daemon's doing, not damage.
 */
#include "store/scrub.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>

#include "crypto/aead.h"
#include "crypto/secure.h"
#include "crypto/volkeys.h"
#include "store/blobstore.h"
#include "store/index.h"
#include "util/array.h"
#include "util/byteorder.h"

#define SCRUB_BATCH_MAX_BYTES (8u << 20)	/* chunk data per batch, at most */
#define SCRUB_BATCH_MAX_CHUNKS 512
#define SCRUB_SLEEP_SLICE_NS 50000000L	/* a stop is seen within this */
#define SCRUB_LOG_MAX 200		/* syslog lines per run, then a summary */
#define SCRUB_FILES_MAX 65536		/* distinct inodes counted exactly */

struct sc_chunk {
	uint64_t ino, idx;
	struct chunk_rec c;
};

struct sc_stale {
	uint64_t ino;
	enum index_stale what;
	int is_dir;
};

struct sc_dir {			/* a directory entry kept to build paths */
	uint64_t child, parent;
	char *name;
};

struct scrub {
	struct vault *v;
	struct scrub_opts o;
	char *mnt;
	atomic_int stop;

	pthread_mutex_t lock;	/* protects p, kept, nkept */
	struct scrub_progress p;
	struct scrub_finding kept[SCRUB_FINDINGS_KEPT];
	size_t nkept;
	int last_kept_chunk;	/* the last kept finding is about a chunk */

	/* the running thread's own state */
	uint64_t *files;	/* distinct inodes found damaged, in order found */
	size_t nfiles, capfiles;
	uint64_t logged;
	uint64_t *owners;	/* inodes owning chunk records (phase 1) */
	size_t nowners, capowners;
	struct sc_stale *stale;
	size_t nstale, capstale;
	struct sc_chunk *batch;
	size_t nbatch;
	uint64_t batch_bytes, batch_limit;
	uint64_t next_idx;	/* where the current owner's walk resumes */
	int owner_done;
	struct aead *aead;
	uint64_t aead_ino, aead_gen;	/* whose key aead is (volkeys_chunk_gen) */
	uint8_t *pt, *ct;
	size_t ctcap;
};

const char *scrub_state_name(enum scrub_state s)
{
	switch (s) {
	case SCRUB_NEW: return "new";
	case SCRUB_RECORDS: return "records";
	case SCRUB_CHUNKS: return "chunks";
	case SCRUB_DONE: return "done";
	case SCRUB_STOPPED: return "stopped";
	case SCRUB_FAILED: return "failed";
	}
	return "?";
}

int scrub_new(struct scrub **out, struct vault *v, const struct scrub_opts *o)
{
	struct scrub *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->v = v;
	s->o = *o;
	if (o->mountpoint && !(s->mnt = strdup(o->mountpoint))) {
		free(s);
		return -ENOMEM;
	}
	s->o.mountpoint = s->mnt;
	atomic_init(&s->stop, 0);
	pthread_mutex_init(&s->lock, NULL);
	s->p.state = SCRUB_NEW;
	*out = s;
	return 0;
}

void scrub_free(struct scrub *s)
{
	if (!s)
		return;
	free(s->files);
	free(s->owners);
	free(s->stale);
	free(s->batch);
	aead_free(s->aead);
	if (s->pt) {
		secure_wipe(s->pt, s->v->conf.chunk_size);
		free(s->pt);
	}
	free(s->ct);
	free(s->mnt);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void scrub_stop(struct scrub *s)
{
	atomic_store(&s->stop, 1);
}

void scrub_progress_get(struct scrub *s, struct scrub_progress *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->p;
	pthread_mutex_unlock(&s->lock);
}

size_t scrub_findings_get(struct scrub *s, struct scrub_finding *out, size_t max)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->nkept < max ? s->nkept : max;
	memcpy(out, s->kept, n * sizeof(*out));
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- findings ---- */

static int seen_file(struct scrub *s, uint64_t ino)
{
	for (size_t i = s->nfiles; i-- > 0;)	/* the latest first: a file's chunks come together */
		if (s->files[i] == ino)
			return 1;
	if (s->nfiles < SCRUB_FILES_MAX &&
	    array_reserve(&s->files, &s->capfiles, s->nfiles + 1, sizeof(*s->files)) == 0)
		s->files[s->nfiles++] = ino;
	return 0;
}

static void finding(struct scrub *s, uint64_t ino, int chunk, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * One thing found wrong: counted, logged (inode numbers only: a path
 * names a patient), kept for the report with its path filled in later.
 * A file's further bad chunks (chunk 1) after a kept one are counted in
 * it: a lost pack must not fill the report with one file.
 */
static void finding(struct scrub *s, uint64_t ino, int chunk, const char *fmt, ...)
{
	char what[SCRUB_WHAT_MAX];
	int is_new = !seen_file(s, ino);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (s->logged < SCRUB_LOG_MAX) {
		if (ino == 0)
			syslog(LOG_ERR, "scrub: the volume: %s", what);
		else if (s->o.mountpoint)
			syslog(LOG_ERR, "scrub: inode %" PRIu64 ": %s (its name: find %s -inum %" PRIu64 ")",
			       ino, what, s->o.mountpoint, ino);
		else
			syslog(LOG_ERR, "scrub: inode %" PRIu64 ": %s", ino, what);
	} else if (s->logged == SCRUB_LOG_MAX) {
		syslog(LOG_ERR, "scrub: more findings; only counted from here on");
	}
	s->logged++;
	pthread_mutex_lock(&s->lock);
	s->p.findings++;
	if (is_new)
		s->p.files++;
	if (chunk && s->nkept && s->kept[s->nkept - 1].ino == ino && s->last_kept_chunk) {
		s->kept[s->nkept - 1].more++;
	} else if (s->nkept < SCRUB_FINDINGS_KEPT) {
		struct scrub_finding *f = &s->kept[s->nkept++];

		memset(f, 0, sizeof(*f));
		f->ino = ino;
		snprintf(f->what, sizeof(f->what), "%s", what);
		s->last_kept_chunk = chunk;
	}
	pthread_mutex_unlock(&s->lock);
}

static void count(struct scrub *s, uint64_t records, uint64_t chunks, uint64_t bytes)
{
	pthread_mutex_lock(&s->lock);
	s->p.records += records;
	s->p.chunks += chunks;
	s->p.bytes += bytes;
	pthread_mutex_unlock(&s->lock);
}

static void set_state(struct scrub *s, enum scrub_state st)
{
	pthread_mutex_lock(&s->lock);
	s->p.state = st;
	pthread_mutex_unlock(&s->lock);
}

/* ---- phase 1: the tree and every record ---- */

static void note_stale(void *ctx, uint64_t ino, enum index_stale what)
{
	struct scrub *s = ctx;
	struct sc_stale st = { ino, what, 0 };

	if (array_reserve(&s->stale, &s->capstale, s->nstale + 1, sizeof(*s->stale)) == 0)
		s->stale[s->nstale++] = st;
	else
		finding(s, ino, 0, "%s", index_stale_name(what, ino, 0));	/* reported without the detail */
}

static const char *db_what(enum index_db db)
{
	switch (db) {
	case INDEX_DB_INODE: return "its inode record";
	case INDEX_DB_DIRENT: return "one of its directory entries";
	case INDEX_DB_CHUNK: return "one of its chunk records";
	case INDEX_DB_PACK: return "a pack record";
	case INDEX_DB_XATTR: return "one of its extended attributes";
	case INDEX_DB_ORPHAN: return "its orphan mark";
	case INDEX_DB_META: return "a counter record";
	case INDEX_DB_COUNT: break;
	}
	return "a record";
}

struct rec_walk {
	struct scrub *s;
	enum index_db db;
	uint64_t n;
};

static int walk_record(void *ctx, const uint8_t *key, size_t klen, const uint8_t *plain,
		       size_t plen, int rc)
{
	struct rec_walk *w = ctx;
	struct scrub *s = w->s;
	int owned = w->db != INDEX_DB_PACK && w->db != INDEX_DB_META;
	uint64_t ino = owned && klen >= 8 ? be64_get(key) : 0;

	w->n++;
	if ((w->n & 4095) == 0) {
		count(s, 4096, 0, 0);
		if (atomic_load(&s->stop))
			return -ECANCELED;
	}
	if (w->db == INDEX_DB_INODE && rc == 0) {
		struct mv_attr a;

		if (index_decode_inode(key, klen, plain, plen, &a) < 0) {
			rc = -EIO;
		} else {
			for (size_t i = 0; i < s->nstale; i++)
				if (s->stale[i].ino == a.ino)
					s->stale[i].is_dir = S_ISDIR(a.mode);
			/* the files whose chunks phase 2 reads, in key order */
			if (S_ISREG(a.mode)) {
				if (array_reserve(&s->owners, &s->capowners, s->nowners + 1,
						  sizeof(*s->owners)))
					return -ENOMEM;
				s->owners[s->nowners++] = a.ino;
			}
		}
	}
	if (rc < 0)
		finding(s, ino, 0, "%s fails authentication", db_what(w->db));
	return 0;
}

/*
 * A read transaction holds off the growth of the index's map (and LMDB's
 * reuse of freed pages) while it lasts, so each step has its own: the
 * whole-tree check, which must see one state, then each database but the
 * chunks, whose records phase 2 reads (and authenticates) in batches.
 */
static int phase_records(struct scrub *s)
{
	struct index_txn *t = NULL;
	uint64_t nchunks = 0;
	long n;
	int rc;

	if ((rc = index_read_begin(s->v->ix, &t)) < 0)
		return rc;
	n = index_tree_verify(t, NULL, note_stale, s);
	if (n < 0 && n != -ENOENT) {	/* -ENOENT: a format-1 index, read-only */
		rc = (int)n;
		goto out;
	}
	index_count(t, INDEX_DB_CHUNK, &nchunks);
	pthread_mutex_lock(&s->lock);
	s->p.chunks_total = nchunks;
	pthread_mutex_unlock(&s->lock);
	for (int db = 0; db < INDEX_DB_COUNT; db++) {
		struct rec_walk w = { s, (enum index_db)db, 0 };

		if (db == INDEX_DB_CHUNK)
			continue;
		index_read_end(t);
		if ((rc = index_read_begin(s->v->ix, &t)) < 0)
			goto out;
		rc = index_walk(t, (enum index_db)db, walk_record, &w);
		count(s, w.n & 4095, 0, 0);
		if (rc < 0)
			goto out;
	}
	for (size_t i = 0; i < s->nstale; i++) {
		struct sc_stale *st = &s->stale[i];

		if (st->what == INDEX_STALE_NODE)
			finding(s, 0, 0, "the integrity tree: %s", index_stale_name(st->what, 0, 0));
		else
			finding(s, st->ino, 0, "%s", index_stale_name(st->what, st->ino, st->is_dir));
	}
	rc = 0;
out:
	index_read_end(t);
	return rc;
}

/* ---- phase 2: every chunk ---- */

static int collect_chunk(void *ctx, uint64_t ino, uint64_t idx, const struct chunk_rec *c)
{
	struct scrub *s = ctx;

	s->batch[s->nbatch++] = (struct sc_chunk){ ino, idx, *c };
	s->batch_bytes += c->len;
	s->next_idx = idx + 1;
	if (s->nbatch >= SCRUB_BATCH_MAX_CHUNKS || s->batch_bytes >= s->batch_limit)
		return 1;
	return 0;
}

/* Read one chunk and authenticate it: 0, or -errno (-ENOENT its pack is gone). */
static int check_chunk(struct scrub *s, const struct sc_chunk *k)
{
	struct blob_loc loc = { k->c.pack, k->c.off, k->c.len };
	uint64_t gen = volkeys_chunk_gen(s->v->keygen_epoch, k->c.version);
	uint8_t ad[44];
	ssize_t n;
	int rc;

	if (!s->aead || s->aead_ino != k->ino || s->aead_gen != gen) {
		aead_free(s->aead);
		s->aead = NULL;
		if ((rc = volkeys_chunk_aead(s->v->keys, VOLKEYS_DEFAULT_DOMAIN, k->ino, gen, &s->aead)) < 0)
			return rc;
		s->aead_ino = k->ino;
		s->aead_gen = gen;
	}
	if (k->c.len > s->ctcap || k->c.len < aead_overhead(s->aead))
		return -EBADMSG;
	if ((rc = blobstore_read(s->v->bs, &loc, s->ct)) < 0)
		return rc;
	memcpy(ad, "MVC1", 4);
	memcpy(ad + 4, s->v->conf.uuid, 16);
	be64_put(ad + 20, k->ino);
	be64_put(ad + 28, k->idx);
	be64_put(ad + 36, k->c.version);
	n = aead_open(s->aead, s->pt, s->v->conf.chunk_size, s->ct, k->c.len, ad, sizeof(ad));
	if (n >= 0)
		secure_wipe(s->pt, (size_t)n);
	if (n < 0)
		return (int)n;
	return (uint32_t)n == k->c.plain_len ? 0 : -EBADMSG;
}

static int same_rec(const struct chunk_rec *a, const struct chunk_rec *b)
{
	return a->pack == b->pack && a->off == b->off && a->len == b->len && a->version == b->version &&
	       a->plain_len == b->plain_len;
}

/*
 * A chunk failed: damage, or the daemon changed it after the batch read
 * its record (compaction moved it and removed the pack, the file was
 * rewritten, truncated or deleted).  Ask the index again; a record that
 * changed is checked at its new place, once.
 */
static void chunk_failed(struct scrub *s, struct sc_chunk *k, int rc)
{
	for (int tries = 0; tries < 2; tries++) {
		struct index_txn *t;
		struct chunk_rec now;
		int g;

		if (index_read_begin(s->v->ix, &t) < 0)
			break;
		g = index_chunk_get(t, k->ino, k->idx, &now);
		index_read_end(t);
		if (g == -ENOENT)
			return;	/* gone meanwhile: nothing left to check */
		if (g < 0) {
			finding(s, k->ino, 1, "chunk %" PRIu64 ": its record is refused by the index (%s)",
				k->idx, strerror(-g));
			return;
		}
		if (same_rec(&now, &k->c))
			break;
		k->c = now;
		if ((rc = check_chunk(s, k)) == 0)
			return;
		if (rc == -ENOMEM)
			break;
	}
	if (rc == -ENOENT)
		finding(s, k->ino, 1, "chunk %" PRIu64 ": its pack %" PRIu64 " is missing", k->idx, k->c.pack);
	else
		finding(s, k->ino, 1, "chunk %" PRIu64 " (pack %" PRIu64 ", offset %" PRIu64 "): %s", k->idx,
			k->c.pack, k->c.off,
			rc == -EBADMSG ? "content fails authentication" : "content cannot be read");
}

static int64_t ns_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t0->tv_sec) * 1000000000 + (now.tv_nsec - t0->tv_nsec);
}

/* Sleep until done bytes are due at the rate, in slices so a stop is
 * seen soon.  -ECANCELED when stopped. */
static int pace(struct scrub *s, const struct timespec *t0, uint64_t done)
{
	int64_t due;

	if (!s->o.rate)
		return atomic_load(&s->stop) ? -ECANCELED : 0;
	due = (int64_t)((double)done / (double)s->o.rate * 1e9);
	for (;;) {
		int64_t left = due - ns_since(t0);
		struct timespec d = { 0, SCRUB_SLEEP_SLICE_NS };

		if (atomic_load(&s->stop))
			return -ECANCELED;
		if (left <= 0)
			return 0;
		if (left < SCRUB_SLEEP_SLICE_NS)
			d.tv_nsec = left;
		nanosleep(&d, NULL);
	}
}

static int phase_chunks(struct scrub *s)
{
	struct timespec t0;
	uint64_t done = 0;
	size_t o = 0;
	int rc = 0;

	s->batch = malloc(SCRUB_BATCH_MAX_CHUNKS * sizeof(*s->batch));
	s->pt = malloc(s->v->conf.chunk_size);
	s->ctcap = s->v->conf.chunk_size + 64;
	s->ct = malloc(s->ctcap);
	if (!s->batch || !s->pt || !s->ct)
		return -ENOMEM;
	/* a tenth of a second's worth per batch: smooth, and a stop is quick */
	s->batch_limit = s->o.rate ? s->o.rate / 10 : SCRUB_BATCH_MAX_BYTES;
	if (s->batch_limit > SCRUB_BATCH_MAX_BYTES)
		s->batch_limit = SCRUB_BATCH_MAX_BYTES;
	if (s->batch_limit == 0)
		s->batch_limit = 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	s->next_idx = 0;
	while (o < s->nowners) {
		struct index_txn *t;

		s->nbatch = 0;
		s->batch_bytes = 0;
		if ((rc = index_read_begin(s->v->ix, &t)) < 0)
			return rc;
		/* fill one batch, inode after inode, resuming after the last key */
		while (o < s->nowners && s->nbatch < SCRUB_BATCH_MAX_CHUNKS &&
		       s->batch_bytes < s->batch_limit) {
			uint64_t ino = s->owners[o];

			rc = index_chunk_iter(t, ino, s->next_idx, collect_chunk, s);
			if (rc == -ENOMEM)
				break;
			if (rc < 0) {
				/* the tree refuses a record of this file (or the
				 * index cannot read one): name it, go on with the
				 * next file */
				finding(s, ino, 0, "its chunk records are refused by the integrity tree or unreadable "
					"(%s): the file reads as EIO", strerror(-rc));
				rc = 0;
				o++;
				s->next_idx = 0;
				continue;
			}
			if (s->nbatch >= SCRUB_BATCH_MAX_CHUNKS || s->batch_bytes >= s->batch_limit)
				break;	/* the batch is full: this file resumes at next_idx */
			o++;
			s->next_idx = 0;
		}
		index_read_end(t);
		if (rc < 0)
			return rc;
		for (size_t i = 0; i < s->nbatch; i++) {
			struct sc_chunk *k = &s->batch[i];
			int c = check_chunk(s, k);

			if (c == -ENOMEM)
				return c;
			if (c < 0)
				chunk_failed(s, k, c);
			done += k->c.len;
		}
		count(s, s->nbatch, s->nbatch, s->batch_bytes);	/* each chunk record too */
		if ((rc = pace(s, &t0, done)) < 0)
			return rc;
	}
	return 0;
}

/* ---- paths of what was found ---- */

struct path_walk {
	struct scrub *s;
	struct sc_dir *d;
	size_t n, cap;
	int err;
};

static int wanted(struct scrub *s, uint64_t ino)
{
	for (size_t i = 0; i < s->nkept; i++)
		if (s->kept[i].ino == ino)
			return 1;
	return 0;
}

static int walk_name(void *ctx, const uint8_t *key, size_t klen, const uint8_t *plain, size_t plen,
		     int rc)
{
	struct path_walk *w = ctx;
	uint64_t parent, ino;
	uint8_t type;
	const char *name;
	size_t len;

	if (rc < 0 || index_decode_dirent(key, klen, plain, plen, &parent, &ino, &type, &name, &len) < 0)
		return 0;
	/* every directory (for the steps up) and the files found damaged */
	if (type != DT_DIR && !wanted(w->s, ino))
		return 0;
	if (array_reserve(&w->d, &w->cap, w->n + 1, sizeof(*w->d)) ||
	    !(w->d[w->n].name = strndup(name, len))) {
		w->err = -ENOMEM;
		return 1;
	}
	w->d[w->n].child = ino;
	w->d[w->n].parent = parent;
	w->n++;
	return 0;
}

static const struct sc_dir *name_of(const struct path_walk *w, uint64_t ino)
{
	for (size_t i = 0; i < w->n; i++)	/* few: directories and the damaged files */
		if (w->d[i].child == ino)
			return &w->d[i];
	return NULL;
}

static void build_path(const struct path_walk *w, uint64_t ino, char *out, size_t cap)
{
	const char *parts[64];
	size_t n = 0, used = 0;

	out[0] = '\0';
	if (ino == INDEX_ROOT_INO) {
		snprintf(out, cap, "/");
		return;
	}
	while (ino != INDEX_ROOT_INO && n < 64) {
		const struct sc_dir *d = name_of(w, ino);

		if (!d)
			return;	/* hangs nowhere: no path */
		parts[n++] = d->name;
		ino = d->parent;
	}
	if (ino != INDEX_ROOT_INO)
		return;
	while (n-- > 0 && used + 2 < cap) {
		int k = snprintf(out + used, cap - used, "/%s", parts[n]);

		if (k < 0)
			break;
		used += (size_t)k;
	}
	if (used >= cap)
		memcpy(out + cap - 4, "...", 4);
	for (char *c = out; *c; c++)	/* one report line per finding */
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
}

/*
 * Directory entries are keyed by a keyed hash of the name, so a path is
 * a reverse lookup: one walk over the entries keeps every directory's
 * name and the damaged files' names, then each path is built upwards.
 * Only for the kept findings, and only when there are some.
 */
static void resolve_paths(struct scrub *s)
{
	struct path_walk w = { .s = s };
	struct index_txn *t;
	size_t nkept;

	pthread_mutex_lock(&s->lock);
	nkept = s->nkept;
	pthread_mutex_unlock(&s->lock);
	if (!nkept || index_read_begin(s->v->ix, &t) < 0)
		return;
	index_walk(t, INDEX_DB_DIRENT, walk_name, &w);
	index_read_end(t);
	if (!w.err) {
		for (size_t i = 0; i < nkept; i++) {
			char path[SCRUB_PATH_MAX];

			if (s->kept[i].ino == 0)
				continue;
			build_path(&w, s->kept[i].ino, path, sizeof(path));
			pthread_mutex_lock(&s->lock);
			memcpy(s->kept[i].path, path, sizeof(path));
			pthread_mutex_unlock(&s->lock);
		}
	}
	for (size_t i = 0; i < w.n; i++)
		free(w.d[i].name);
	free(w.d);
}

int scrub_run(struct scrub *s)
{
	struct scrub_progress p;
	int rc;

	pthread_mutex_lock(&s->lock);
	s->p.started = time(NULL);
	s->p.state = SCRUB_RECORDS;
	pthread_mutex_unlock(&s->lock);
	syslog(LOG_INFO, "scrub: started%s%s (%" PRIu64 " bytes/s)", s->o.mountpoint ? " on " : "",
	       s->o.mountpoint ? s->o.mountpoint : "", s->o.rate);
	rc = phase_records(s);
	if (rc == 0 && !atomic_load(&s->stop)) {
		set_state(s, SCRUB_CHUNKS);
		rc = phase_chunks(s);
	} else if (rc == 0) {
		rc = -ECANCELED;
	}
	if (rc == 0 || rc == -ECANCELED)
		resolve_paths(s);
	pthread_mutex_lock(&s->lock);
	s->p.finished = time(NULL);
	s->p.state = rc == 0 ? SCRUB_DONE : rc == -ECANCELED ? SCRUB_STOPPED : SCRUB_FAILED;
	s->p.error = rc == -ECANCELED ? 0 : rc;
	p = s->p;
	pthread_mutex_unlock(&s->lock);
	syslog(p.findings || rc ? LOG_ERR : LOG_INFO,
	       "scrub: %s: %" PRIu64 " records, %" PRIu64 " chunks (%" PRIu64 " bytes), %" PRIu64
	       " findings in %" PRIu64 " files%s%s", rc == 0 ? "finished" : rc == -ECANCELED ? "stopped" : "failed",
	       p.records, p.chunks, p.bytes, p.findings, p.files, rc && rc != -ECANCELED ? ": " : "",
	       rc && rc != -ECANCELED ? strerror(-rc) : "");
	return rc;
}
