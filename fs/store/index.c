#include "store/index.h"
#include "store/layout.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "crypto/aead.h"
#include "itree.h"
#include "util/array.h"
#include "util/byteorder.h"
#include "crypto/secure.h"

/* Never change: part of every record's associated data (format 1). */
#define AD_MAGIC "MVI1"

/* Read-only openers (other processes) map this much address space; the
 * daemon's own map follows the file (map_room).  Small enough for
 * valgrind to map. */
#define INDEX_MAP_SIZE (16ull << 30)
/* the daemon's map (and data.mdb) grows in steps of this or 1/8 */
#define MAP_STEP (16ull << 20)
#define MAP_PAGE 4096ull	/* map sizes are multiples of the OS page */
#define INDEX_KEY_MAX 40
#define READ_POOL 32

/* the record databases, then the integrity tree's nodes (format 2) */
enum db_id { DB_INODE, DB_DIRENT, DB_CHUNK, DB_PACK, DB_XATTR, DB_ORPHAN, DB_META, DB_TREE,
	     DB_COUNT };
#define DB_RECORDS DB_TREE
static const char *const db_names[DB_COUNT] = {
	"inode", "dirent", "chunk", "pack", "xattr", "orphan", "meta", "tree",
};
_Static_assert((int)DB_RECORDS == (int)IT_DB_RECORDS && (int)DB_CHUNK == (int)IT_DB_CHUNK &&
	       (int)DB_META == (int)IT_DB_META, "itree numbers the databases as the index does");

struct write_req {
	index_write_fn fn;
	void *arg;
	int rc;
	int done;
	struct write_req *next;
};

struct index {
	MDB_env *env;
	MDB_dbi dbi[DB_COUNT];
	uint8_t uuid[16];
	const struct volkeys *vk;
	const struct aead *aead;

	pthread_mutex_t qlock;		/* protects the queue and leader flag */
	pthread_cond_t qcond;
	struct write_req *qhead, **qtail;
	int leader;

	pthread_mutex_t pool_lock;	/* protects the read pool */
	/* read transactions hold it shared; growing the map needs it alone */
	pthread_rwlock_t resize_lock;
	MDB_txn *pool[READ_POOL];
	int npool;
	char data_path[PATH_MAX];
	uint64_t filled;	/* data.mdb is written up to here (map_fill) */
	int env_open;		/* mdb_env_open succeeded: there is a map to sync */
	int rdonly;		/* INDEX_RDONLY: no write transaction ever */
	int has_tree;		/* the tree database exists (format 2) */
	/* the integrity tree, once the index has a root record (else NULL:
	 * a format-1 index, checked by authentication alone) */
	struct itree *it;
	uint64_t first_counter;	/* the root's counter at open: no view is older */
	pthread_mutex_t root_lock;	/* the two roots below */
	/* their MACs are taken when asked for (at the anchor's pace), not
	 * at every commit */
	struct it_root committed, durable;
	uint64_t dead_bytes;	/* atomic; see index_dead_bytes */
};

struct index_txn {
	struct index *ix;
	MDB_txn *txn;
	int write;
	int broken;	/* a put/del failed: the whole write txn must go */
	int mutated;	/* the current write function has changed something */
	struct itree_txn *ot;	/* a write transaction's tree changes */
	MDB_txn *committed;	/* a writer's read view of the committed state */
	uint8_t *buf;	/* scratch for sealing/opening, grown on demand */
	size_t bufcap;
};

static int mdb_err(int rc)
{
	switch (rc) {
	case 0: return 0;
	case MDB_NOTFOUND: return -ENOENT;
	case MDB_MAP_FULL: return -ENOSPC;
	case MDB_TXN_FULL: return -ENOSPC;
	case MDB_READERS_FULL: return -EAGAIN;
	case MDB_INVALID: return -EBADMSG;
	case MDB_VERSION_MISMATCH: return -EBADMSG;
	case MDB_CORRUPTED: return -EIO;
	case MDB_PANIC: return -EIO;
	}
	return rc > 0 ? -rc : -EIO;
}

static int scratch(struct index_txn *t, size_t need)
{
	return array_reserve(&t->buf, &t->bufcap, need, 1);
}

/* associated data: magic || volume uuid || database || record key */
static size_t make_ad(uint8_t *ad, const struct index *ix, enum db_id db,
		      const void *key, size_t klen)
{
	memcpy(ad, AD_MAGIC, 4);
	memcpy(ad + 4, ix->uuid, 16);
	ad[20] = (uint8_t)db;
	memcpy(ad + 21, key, klen);
	return 21 + klen;
}

static void make_io(struct index_txn *t, struct it_io *io);

/*
 * The record stored under key now, as the tree knows it (*had 0: none), for the
 * tree's sums: taken from the bytes as stored, never checked, so a stale
 * record overwritten stays visible as a sum that no longer adds up.
 */
static int old_rec(struct index_txn *t, enum db_id db, const void *key, size_t klen,
		   struct it_rec *rec, int *had)
{
	MDB_val k = { klen, (void *)key }, v;
	int rc = mdb_get(t->txn, t->ix->dbi[db], &k, &v);

	*had = rc == 0;
	if (rc == 0)
		itree_rec(t->ix->vk, (enum it_db)db, key, klen, v.mv_data, v.mv_size, rec);
	return rc == MDB_NOTFOUND ? 0 : mdb_err(rc);
}

static int tree_note(struct index_txn *t, enum db_id db, const void *key, size_t klen,
		     const struct it_rec *before, const struct it_rec *after)
{
	struct it_io io;

	make_io(t, &io);
	return itree_txn_note(t->ot, &io, (enum it_db)db, key, klen, before, after);
}

/*
 * Seal and store a record.  tracked 0: the root record, which is the
 * tree's own (not summed anywhere), so it needs none of the tree's work.
 */
static int seal_put(struct index_txn *t, enum db_id db, const void *key, size_t klen,
		    const void *plain, size_t plen, int tracked)
{
	uint8_t ad[21 + INDEX_KEY_MAX];
	struct it_rec before, after;
	size_t adlen, over = aead_overhead(t->ix->aead);
	MDB_val k = { klen, (void *)key }, v;
	ssize_t n;
	int rc, had = 0;

	if (klen > INDEX_KEY_MAX)
		return -ENAMETOOLONG;	/* refused before any change: not broken */
	if (!t->ot)
		tracked = 0;
	if (tracked && (rc = old_rec(t, db, key, klen, &before, &had)) < 0)
		goto fail;
	adlen = make_ad(ad, t->ix, db, key, klen);
	if ((rc = scratch(t, plen + over)) < 0)
		goto fail;
	n = aead_seal(t->ix->aead, t->buf, t->bufcap, plain, plen, ad, adlen);
	if (n < 0) {
		rc = (int)n;
		goto fail;
	}
	v.mv_size = (size_t)n;
	v.mv_data = t->buf;
	if (tracked)
		itree_rec(t->ix->vk, (enum it_db)db, key, klen, t->buf, (size_t)n, &after);
	if ((rc = mdb_err(mdb_put(t->txn, t->ix->dbi[db], &k, &v, 0))) < 0)
		goto fail;
	t->mutated = 1;
	if (tracked && (rc = tree_note(t, db, key, klen, had ? &before : NULL, &after)) < 0)
		goto fail;
	return 0;
fail:
	t->broken = 1;
	return rc;
}

static int rec_put(struct index_txn *t, enum db_id db, const void *key, size_t klen,
		   const void *plain, size_t plen)
{
	return seal_put(t, db, key, klen, plain, plen, 1);
}

static int rec_del(struct index_txn *t, enum db_id db, const void *key, size_t klen)
{
	MDB_val k = { klen, (void *)key };
	struct it_rec before;
	int rc, had = 0;

	if (t->ot && (rc = old_rec(t, db, key, klen, &before, &had)) < 0) {
		t->broken = 1;
		return rc;
	}
	rc = mdb_err(mdb_del(t->txn, t->ix->dbi[db], &k, NULL));
	if (rc < 0 && rc != -ENOENT)
		t->broken = 1;
	if (rc == 0) {
		t->mutated = 1;
		if (t->ot && had && (rc = tree_note(t, db, key, klen, &before, NULL)) < 0)
			t->broken = 1;
	}
	return rc;
}

/* Authenticate a raw value into t->buf; returns the plaintext length. */
static ssize_t rec_open_val(struct index_txn *t, enum db_id db, const void *key,
			    size_t klen, const MDB_val *v)
{
	uint8_t ad[21 + INDEX_KEY_MAX];
	size_t adlen;
	ssize_t n;
	int rc;

	if (klen > INDEX_KEY_MAX)
		return -EIO;
	adlen = make_ad(ad, t->ix, db, key, klen);
	if ((rc = scratch(t, v->mv_size + 1)) < 0)
		return rc;
	n = aead_open(t->ix->aead, t->buf, t->bufcap, v->mv_data, v->mv_size, ad, adlen);
	if (n < 0) {
		syslog(LOG_ERR, "index record in %s failed authentication",
			db_names[db]);
		return -EIO;
	}
	return n;
}

/* Authenticate and decrypt the record under a cursor whose key must be
 * exactly klen bytes (any other size is a damaged index); the key is
 * copied to key[] first because the cursor's memory belongs to LMDB.
 * Returns the plaintext length in t->buf, -EIO or -ENOMEM. */
static int rec_check(struct index_txn *t, enum db_id db, const void *key, size_t klen,
		     const MDB_val *v);

static ssize_t cursor_rec_open(struct index_txn *t, enum db_id db, const MDB_val *k,
			       const MDB_val *v, uint8_t *key, size_t klen)
{
	int rc;

	if (k->mv_size != klen)
		return -EIO;
	memcpy(key, k->mv_data, klen);
	if ((rc = rec_check(t, db, key, klen, v)) < 0)
		return rc;
	return rec_open_val(t, db, key, klen, v);
}

static ssize_t rec_get(struct index_txn *t, enum db_id db, const void *key, size_t klen)
{
	MDB_val k = { klen, (void *)key }, v;
	int rc;

	if (klen > INDEX_KEY_MAX)
		return -ENAMETOOLONG;
	rc = mdb_err(mdb_get(t->txn, t->ix->dbi[db], &k, &v));
	if (rc == -ENOENT) {
		/* absent must be absent in the tree too: not a deleted record */
		int c = rec_check(t, db, key, klen, NULL);

		return c < 0 ? c : -ENOENT;
	}
	if (rc < 0)
		return rc;
	if ((rc = rec_check(t, db, key, klen, &v)) < 0)
		return rc;
	return rec_open_val(t, db, key, klen, &v);
}

/* ---- the integrity tree's view of a transaction (itree.h) ---- */

static int cursor_move(MDB_cursor *c, MDB_val *k, MDB_val *v, MDB_cursor_op op);

static void tree_key(uint8_t key[9], unsigned level, uint64_t prefix)
{
	key[0] = (uint8_t)level;
	be64_put(key + 1, prefix);
}

static int io_node_get(void *ctx, unsigned level, uint64_t prefix, const uint8_t **data,
		       size_t *len)
{
	struct index_txn *t = ctx;
	uint8_t key[9];
	MDB_val k = { sizeof(key), key }, v;
	int rc;

	if (!t->ix->has_tree)
		return 0;
	tree_key(key, level, prefix);
	rc = mdb_get(t->txn, t->ix->dbi[DB_TREE], &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return mdb_err(rc);
	*data = v.mv_data;
	*len = v.mv_size;
	return 1;
}

static int io_put_node(void *ctx, unsigned level, uint64_t prefix, const uint8_t *data,
		       size_t len)
{
	struct index_txn *t = ctx;
	uint8_t key[9];
	MDB_val k = { sizeof(key), key }, v = { len, (void *)data };
	int rc;

	tree_key(key, level, prefix);
	if (!data) {
		rc = mdb_del(t->txn, t->ix->dbi[DB_TREE], &k, NULL);
		return rc == MDB_NOTFOUND ? 0 : mdb_err(rc);
	}
	return mdb_err(mdb_put(t->txn, t->ix->dbi[DB_TREE], &k, &v, 0));
}

static int is_root_key(enum db_id db, const MDB_val *k)
{
	return db == DB_META && k->mv_size == strlen(IT_ROOT_KEY) &&
	       !memcmp(k->mv_data, IT_ROOT_KEY, k->mv_size);
}

/* every record of db whose key starts with prefix (plen 0: all), raw */
static int scan_db(struct index_txn *t, enum db_id db, const uint8_t *prefix, size_t plen,
		   it_rec_cb cb, void *cbctx)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc, more;

	if ((rc = mdb_err(mdb_cursor_open(t->txn, t->ix->dbi[db], &c))) < 0)
		return rc;
	k.mv_size = plen;
	k.mv_data = (void *)prefix;
	more = cursor_move(c, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
	while (more > 0) {
		if (plen && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen)))
			break;
		if (!is_root_key(db, &k) &&
		    (rc = cb(cbctx, (enum it_db)db, k.mv_data, k.mv_size, v.mv_data, v.mv_size)) < 0) {
			more = rc;
			break;
		}
		more = cursor_move(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return more < 0 ? more : 0;
}

static int io_scan(void *ctx, uint64_t owner, enum it_cls cls, it_rec_cb cb, void *cbctx)
{
	struct index_txn *t = ctx;
	uint8_t p[8];
	int rc;

	be64_put(p, owner);
	if (cls == IT_BULK) {
		if ((rc = scan_db(t, DB_CHUNK, p, 8, cb, cbctx)) < 0 ||
		    (rc = scan_db(t, DB_DIRENT, p, 8, cb, cbctx)) < 0)
			return rc;
		return owner == 0 ? scan_db(t, DB_PACK, NULL, 0, cb, cbctx) : 0;
	}
	if ((rc = scan_db(t, DB_XATTR, p, 8, cb, cbctx)) < 0 ||
	    (rc = scan_db(t, DB_ORPHAN, p, 8, cb, cbctx)) < 0)
		return rc;
	return owner == 0 ? scan_db(t, DB_META, NULL, 0, cb, cbctx) : 0;
}

/* the committed state, for a writer: one read view per write transaction */
static int io_scan_committed(void *ctx, uint64_t owner, enum it_cls cls, it_rec_cb cb,
			     void *cbctx)
{
	struct index_txn *w = ctx, r = { .ix = w->ix };
	int rc;

	if (!w->committed && (rc = mdb_err(mdb_txn_begin(w->ix->env, NULL, MDB_RDONLY, &w->committed))) < 0)
		return rc;
	r.txn = w->committed;
	return io_scan(&r, owner, cls, cb, cbctx);
}

static int io_scan_all(void *ctx, it_rec_cb cb, void *cbctx)
{
	int rc;

	for (int db = 0; db < DB_RECORDS; db++)
		if ((rc = scan_db(ctx, (enum db_id)db, NULL, 0, cb, cbctx)) < 0)
			return rc;
	return 0;
}

static void make_io(struct index_txn *t, struct it_io *io)
{
	memset(io, 0, sizeof(*io));
	io->ctx = t;
	io->node_get = io_node_get;
	io->scan = io_scan;
	io->scan_committed = io_scan_committed;
	io->scan_all = io_scan_all;
	io->writer = t->write;
	io->snap = t->write ? 0 : mdb_txn_id(t->txn);
}

/* The root record as t sees it: authenticated, decoded.  -ENOENT, -EIO */
static int view_root(struct index_txn *t, struct it_root *r)
{
	MDB_val k = { strlen(IT_ROOT_KEY), (void *)IT_ROOT_KEY }, v;
	ssize_t n;
	int rc = mdb_err(mdb_get(t->txn, t->ix->dbi[DB_META], &k, &v));

	if (rc < 0)
		return rc;
	n = rec_open_val(t, DB_META, IT_ROOT_KEY, strlen(IT_ROOT_KEY), &v);
	if (n < 0)
		return (int)n;
	return itree_root_decode(r, t->buf, (size_t)n);
}

/*
 * Check a record read in t's view (v NULL: the key is absent) against
 * the integrity tree.  A reader whose view a commit overtook is checked
 * against its own root record, which may be no older than the index
 * was at open.
 */
static int rec_check(struct index_txn *t, enum db_id db, const void *key, size_t klen,
		     const MDB_val *v)
{
	struct it_root own;
	struct it_io io;
	int rc;

	if (!t->ix->it || db == DB_TREE)
		return 0;
	make_io(t, &io);
	rc = itree_check(t->ix->it, t->ot, &io, (enum it_db)db, key, klen,
			 v ? v->mv_data : NULL, v ? v->mv_size : 0);
	if (rc != -EAGAIN)
		return rc;
	rc = view_root(t, &own);
	if (rc == -ENOENT && t->ix->first_counter == 0) {
		/* a view from before the new index's first commit */
		memset(&own, 0, sizeof(own));
		own.depth = 1;
		rc = 0;
	}
	if (rc < 0 || own.counter < t->ix->first_counter) {
		syslog(LOG_ERR, "index integrity: the root record in view is %s",
		       rc < 0 ? "unreadable" : "older than at mount");
		return -EIO;
	}
	io.own_root = &own;
	return itree_check(t->ix->it, t->ot, &io, (enum it_db)db, key, klen,
			   v ? v->mv_data : NULL, v ? v->mv_size : 0);
}

/* ---- lifecycle ---- */

/*
 * Write zeros over [from, to) of data.mdb.  The map is stored into in
 * place (MDB_WRITEMAP), so each page of it must exist on disk first: a
 * store into a hole of a full filesystem kills the daemon with SIGBUS,
 * where a failed write here is one request's ENOSPC.  Written rather than
 * fallocate'd: an fdatasync after stores into written blocks flushes data
 * alone, no extent conversion, so no journal commit per fsync.
 */
static int map_fill(int fd, uint64_t from, uint64_t to)
{
	enum { ZEROS = 1 << 20 };
	uint8_t *zeros;
	int rc = 0;

	if (from >= to)
		return 0;
	if (!(zeros = calloc(1, ZEROS)))
		return -ENOMEM;
	while (from < to && rc == 0) {
		size_t n = to - from < ZEROS ? (size_t)(to - from) : ZEROS;
		ssize_t w = pwrite(fd, zeros, n, (off_t)from);

		if (w > 0)
			from += (uint64_t)w;
		else
			rc = w < 0 ? -errno : -EIO;
	}
	free(zeros);
	return rc;
}

/* Bytes of the map LMDB has handed out; *size gets the map's size. */
static uint64_t map_used(struct index *ix, uint64_t *size)
{
	MDB_envinfo info;
	MDB_stat st;

	mdb_env_info(ix->env, &info);
	mdb_env_stat(ix->env, &st);
	*size = info.me_mapsize;
	return ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
}

/* A growth step for a map of this size: 16 MiB, or an eighth of it */
static uint64_t map_step(uint64_t size)
{
	return size / 8 > MAP_STEP ? size / 8 : MAP_STEP;
}

/* An eighth of what is left on the filesystem of fd (0 if unknown) */
static uint64_t disk_eighth(int fd)
{
	struct statvfs vfs;

	return fstatvfs(fd, &vfs) == 0 ? (uint64_t)vfs.f_bavail * vfs.f_frsize / 8 : 0;
}

/*
 * The map's next size: a step, but never more than an eighth of the space
 * left on the store's filesystem, so that a nearly full disk still takes
 * the pages a commit needs and keeps the rest for the packs.
 */
static uint64_t map_next(int fd, uint64_t size)
{
	uint64_t step = map_step(size), room = disk_eighth(fd);

	if (step > room)
		step = room;
	step = step / MAP_PAGE * MAP_PAGE;
	return size + (step ? step : MAP_PAGE);
}

/*
 * Make every byte of the map written (map_fill); when a commit found the
 * map full (`full`), grow it first by a step (map_next).  No transaction
 * may be open.
 */
static int map_room(struct index *ix, int full)
{
	uint64_t size, used = map_used(ix, &size), target;
	int fd, rc;

	/* LMDB's own descriptor, not data.mdb's path: the daemon's server
	 * may not be able to walk that once it dropped root */
	if ((rc = mdb_err(mdb_env_get_fd(ix->env, &fd))) < 0)
		return rc;
	target = full ? map_next(fd, size) : size;
	if (target == size && ix->filled >= size)
		return 0;
	if ((rc = map_fill(fd, ix->filled > used ? ix->filled : used, target)) < 0) {
		/* give a partial step back to the packs */
		if (target > size && ftruncate(fd, (off_t)(ix->filled > size ? ix->filled : size)) < 0)
			syslog(LOG_WARNING, "cannot trim %s: %s", ix->data_path, strerror(errno));
		return rc;
	}
	ix->filled = target;
	return target == size ? 0 : mdb_err(mdb_env_set_mapsize(ix->env, target));
}

static void root_state(const struct index *ix, const struct it_root *r,
		       struct index_root_state *out)
{
	out->counter = r->counter;
	itree_root_mac(ix->vk, r, out->mac);
}

/*
 * Load the integrity tree's root: a format-2 index has its root record;
 * a new one starts an empty tree (its first commit writes the record); a
 * format-1 index has none until index_upgrade.
 */
static int open_tree(struct index *ix, int create)
{
	struct index_txn t = { .ix = ix };
	struct it_root root = { .depth = 1 };
	uint64_t entries = 0;
	MDB_stat st;
	int rc;

	if ((rc = mdb_err(mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &t.txn))) < 0)
		return rc;
	rc = view_root(&t, &root);
	if (rc == -ENOENT && mdb_stat(t.txn, ix->dbi[DB_META], &st) == 0)
		entries = st.ms_entries;
	if (rc == 0 || (rc == -ENOENT && create && entries == 0)) {
		if (rc == -ENOENT)
			memset(&root, 0, sizeof(root)), root.depth = 1;
		rc = itree_new(&ix->it, ix->vk, &root, mdb_txn_id(t.txn));
		ix->first_counter = root.counter;
		ix->committed = root;
		ix->durable = root;
	} else if (rc == -ENOENT) {
		rc = 0;	/* format 1 */
	} else {
		/* another volume's index, or keys that are not this one's */
		rc = -EBADMSG;
	}
	mdb_txn_abort(t.txn);
	free(t.buf);
	return rc;
}

int index_open(struct index **out, const char *dir, const uint8_t uuid[16],
	       const struct volkeys *vk, int flags)
{
	int create = flags & INDEX_CREATE, rdonly = flags & INDEX_RDONLY;
	struct index *ix;
	MDB_txn *txn = NULL;
	struct stat st;
	int rc;

	*out = NULL;
	if (stat(dir, &st) < 0) {
		if (errno != ENOENT || !create)
			return -errno;
		if (mkdir(dir, 0700) < 0)
			return -errno;
	}
	ix = calloc(1, sizeof(*ix));
	if (!ix)
		return -ENOMEM;
	memcpy(ix->uuid, uuid, 16);
	ix->vk = vk;
	ix->aead = volkeys_index_aead(vk);
	ix->qtail = &ix->qhead;
	pthread_mutex_init(&ix->qlock, NULL);
	pthread_cond_init(&ix->qcond, NULL);
	pthread_mutex_init(&ix->pool_lock, NULL);
	pthread_rwlock_init(&ix->resize_lock, NULL);
	pthread_mutex_init(&ix->root_lock, NULL);

	if ((rc = mdb_err(mdb_env_create(&ix->env))) < 0)
		goto fail;
	mdb_env_set_maxdbs(ix->env, DB_COUNT + 1);
	mdb_env_set_maxreaders(ix->env, 256);
	snprintf(ix->data_path, sizeof(ix->data_path), "%s/" STORE_INDEX_DATA_NAME, dir);
	/* no index there: say so before LMDB creates one */
	if (!create && access(ix->data_path, F_OK) < 0) {
		rc = -ENOENT;
		goto fail;
	}
	/*
	 * Map what the file holds (an existing file is written up to its
	 * size), except a sparse one (a 16 GiB map of the WRITEMAP builds up
	 * to 2b2f41e), which LMDB trims to the map given here.
	 */
	if (stat(ix->data_path, &st) == 0 && (uint64_t)st.st_blocks * 512 >= (uint64_t)st.st_size &&
	    st.st_size > 0)
		ix->filled = (uint64_t)st.st_size;
	mdb_env_set_mapsize(ix->env, ix->filled ? ix->filled : MAP_STEP);
	/*
	 * NOSYNC: commits only write; durability comes from index_sync(),
	 * which the daemon calls after syncing the packs, so the index never
	 * becomes durable ahead of the chunks it references.  NOTLS: read
	 * transactions are pooled across FUSE worker threads.  WRITEMAP: a
	 * commit stores into the map instead of writing each page (1.7 us
	 * against 15 us, measured; an untar, a few commits per file, took
	 * 15-24% less time).  data.mdb is then as large as the map, so the
	 * map starts at the file's size (16 MiB new) and grows by steps when
	 * full, written ahead (map_room) rather than left sparse.
	 */
	/* read-only: NOLOCK too, so lock.mdb is neither made nor written
	 * (an fsck check leaves the store byte for byte as it was).  The
	 * caller holds the store's lock, so no writer runs meanwhile. */
	rc = mdb_err(mdb_env_open(ix->env, dir,
				  rdonly ? MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD | MDB_NOLOCK
					 : MDB_NOSYNC | MDB_NOTLS | MDB_NORDAHEAD | MDB_WRITEMAP,
				  0600));
	if (rc < 0)
		goto fail;
	ix->env_open = !rdonly;
	ix->rdonly = rdonly;
	/* a foreign or empty directory gets no map written into it */
	if (create && !rdonly && (rc = map_room(ix, 0)) < 0)
		goto fail;
	if ((rc = mdb_err(mdb_txn_begin(ix->env, NULL, rdonly ? MDB_RDONLY : 0, &txn))) < 0)
		goto fail;
	for (int i = 0; i < DB_COUNT; i++) {
		/* a format-1 index has no tree yet: made here, filled by
		 * index_upgrade (read-only: none, and nothing checked) */
		int flags = create || (i == DB_TREE && !rdonly) ? MDB_CREATE : 0;

		rc = mdb_err(mdb_dbi_open(txn, db_names[i], flags, &ix->dbi[i]));
		if (rc == -ENOENT && i == DB_TREE)
			continue;
		if (rc < 0) {
			if (rc == -ENOENT)
				rc = -EBADMSG;
			mdb_txn_abort(txn);
			goto fail;
		}
		if (i == DB_TREE)
			ix->has_tree = 1;
	}
	if ((rc = mdb_err(mdb_txn_commit(txn))) < 0)
		goto fail;
	if ((rc = open_tree(ix, create)) < 0)
		goto fail;
	if (!create && !rdonly && (rc = map_room(ix, 0)) < 0)
		goto fail;
	*out = ix;
	return 0;
fail:
	index_close(ix);
	return rc;
}

void index_close(struct index *ix)
{
	if (!ix)
		return;
	for (int i = 0; i < ix->npool; i++)
		mdb_txn_abort(ix->pool[i]);
	if (ix->env) {
		/* an environment that failed to open has no map to sync */
		if (ix->env_open)
			mdb_env_sync(ix->env, 1);
		mdb_env_close(ix->env);
	}
	pthread_mutex_destroy(&ix->qlock);
	pthread_cond_destroy(&ix->qcond);
	pthread_mutex_destroy(&ix->pool_lock);
	pthread_rwlock_destroy(&ix->resize_lock);
	pthread_mutex_destroy(&ix->root_lock);
	itree_free(ix->it);
	free(ix);
}

int index_sync(struct index *ix)
{
	struct it_root now;

	if (ix->rdonly)
		return 0;
	/* what is committed before the sync is durable after it */
	pthread_mutex_lock(&ix->root_lock);
	now = ix->committed;
	pthread_mutex_unlock(&ix->root_lock);
	if (mdb_env_sync(ix->env, 1))
		return -EIO;
	pthread_mutex_lock(&ix->root_lock);
	if (now.counter > ix->durable.counter)
		ix->durable = now;
	pthread_mutex_unlock(&ix->root_lock);
	return 0;
}

int index_root_durable(struct index *ix, struct index_root_state *out)
{
	struct it_root r;

	pthread_mutex_lock(&ix->root_lock);
	r = ix->durable;
	pthread_mutex_unlock(&ix->root_lock);
	root_state(ix, &r, out);
	return 0;
}

void index_cache_caps(struct index *ix, size_t nodes, size_t entries)
{
	if (ix->it)
		itree_set_caps(ix->it, nodes, entries);
}

int index_has_tree(struct index *ix)
{
	return ix->it != NULL;
}

/* Put the root record (the tree's own, outside its sums). */
static int put_root(struct index_txn *t, const struct it_root *r)
{
	uint8_t rec[IT_ROOT_REC];

	itree_root_encode(r, rec);
	return seal_put(t, DB_META, IT_ROOT_KEY, strlen(IT_ROOT_KEY), rec, sizeof(rec), 0);
}

static int grow_map(struct index *ix, int wait);

/* one attempt of index_tree_rebuild; -ENOSPC when the map is too small */
static int tree_rebuild_once(struct index *ix)
{
	struct index_txn t = { .ix = ix, .write = 1 };
	struct it_root root = { 0 }, old;
	struct it_io io;
	uint8_t fmt[8];
	uint64_t id;
	int rc;

	if (ix->rdonly)
		return -EROFS;
	if (!ix->has_tree)
		return -EIO;
	if ((rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &t.txn))) < 0)
		return rc;
	if (view_root(&t, &old) == 0)
		root.counter = old.counter;
	root.counter++;
	be64_put(fmt, 2);
	make_io(&t, &io);
	/* the format first: the rebuilt sums include it */
	if ((rc = rec_put(&t, DB_META, "format", 6, fmt, sizeof(fmt))) < 0 ||
	    (rc = mdb_err(mdb_drop(t.txn, ix->dbi[DB_TREE], 0))) < 0 ||
	    (rc = itree_rebuild(ix->vk, &io, io_put_node, &root)) < 0 ||
	    (rc = put_root(&t, &root)) < 0) {
		mdb_txn_abort(t.txn);
		free(t.buf);
		return rc;
	}
	id = mdb_txn_id(t.txn);
	rc = mdb_err(mdb_txn_commit(t.txn));
	free(t.buf);
	if (rc < 0)
		return rc;
	itree_free(ix->it);
	ix->it = NULL;
	if ((rc = itree_new(&ix->it, ix->vk, &root, id)) < 0)
		return rc;
	pthread_mutex_lock(&ix->root_lock);
	ix->committed = root;
	ix->first_counter = root.counter;
	pthread_mutex_unlock(&ix->root_lock);
	return index_sync(ix);
}

int index_tree_rebuild(struct index *ix)
{
	int rc;

	/* the tree adds a few percent to the index: a map sized to a
	 * format-1 file may need to grow first */
	for (int tries = 0; (rc = tree_rebuild_once(ix)) == -ENOSPC && tries < 64; tries++)
		if (grow_map(ix, 1) < 0)
			break;
	return rc;
}

int index_upgrade(struct index *ix)
{
	return ix->it ? 0 : index_tree_rebuild(ix);
}

struct verify_arg {
	index_bad_cb cb;
	void *ctx;
};

static void verify_bad(void *ctx, uint64_t owner, enum it_part part)
{
	struct verify_arg *a = ctx;

	_Static_assert((int)IT_PART_NODE == (int)INDEX_STALE_NODE &&
		       (int)IT_PART_SMALL == (int)INDEX_STALE_SMALL, "index_stale mirrors it_part");
	a->cb(a->ctx, owner, (enum index_stale)part);
}

const char *index_stale_name(enum index_stale what, uint64_t ino, int is_dir)
{
	switch (what) {
	case INDEX_STALE_RECORD: return "its inode record is stale (replayed)";
	case INDEX_STALE_UNKNOWN: return "its inode record is unknown to the integrity tree (planted or resurrected)";
	case INDEX_STALE_MISSING: return "its inode record is missing";
	case INDEX_STALE_BULK:
		return !ino ? "the pack records do not add up (replayed, deleted or planted)"
		       : is_dir ? "its directory entries do not add up (replayed, deleted or planted)"
				: "its chunk records do not add up (replayed, deleted or planted)";
	case INDEX_STALE_SMALL:
		return !ino ? "the volume counters do not add up (replayed)"
			    : "its xattrs or orphan mark do not add up (replayed, deleted or planted)";
	case INDEX_STALE_NODE: return "an integrity tree node is stale or damaged";
	}
	return "?";
}

void index_tree_detach(struct index *ix)
{
	itree_free(ix->it);
	ix->it = NULL;
}

long index_tree_verify(struct index_txn *t, struct index_root_state *state, index_bad_cb bad,
		       void *ctx)
{
	struct verify_arg a = { bad, ctx };
	struct it_root root;
	struct it_io io;
	int rc;

	if (!t->ix->has_tree || (rc = view_root(t, &root)) == -ENOENT)
		return -ENOENT;
	if (rc < 0)
		return rc;
	if (state)
		root_state(t->ix, &root, state);
	make_io(t, &io);
	return itree_verify_all(t->ix->vk, &io, &root, verify_bad, &a);
}

int index_copy(struct index *ix, const char *dest_dir)
{
	return mdb_err(mdb_env_copy2(ix->env, dest_dir, MDB_CP_COMPACT));
}

/* ---- transactions ---- */

int index_read_begin(struct index *ix, struct index_txn **out)
{
	struct index_txn *t;
	MDB_txn *txn = NULL;
	int rc;

	*out = NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_rwlock_rdlock(&ix->resize_lock);
	pthread_mutex_lock(&ix->pool_lock);
	if (ix->npool)
		txn = ix->pool[--ix->npool];
	pthread_mutex_unlock(&ix->pool_lock);
	if (txn)
		rc = mdb_err(mdb_txn_renew(txn));
	else
		rc = mdb_err(mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn));
	if (rc < 0) {
		if (txn)
			mdb_txn_abort(txn);
		pthread_rwlock_unlock(&ix->resize_lock);
		free(t);
		return rc;
	}
	t->ix = ix;
	t->txn = txn;
	*out = t;
	return 0;
}

void index_read_end(struct index_txn *t)
{
	struct index *ix;

	if (!t)
		return;
	ix = t->ix;
	mdb_txn_reset(t->txn);
	pthread_mutex_lock(&ix->pool_lock);
	if (ix->npool < READ_POOL) {
		ix->pool[ix->npool++] = t->txn;
		t->txn = NULL;
	}
	pthread_mutex_unlock(&ix->pool_lock);
	if (t->txn)
		mdb_txn_abort(t->txn);
	pthread_rwlock_unlock(&ix->resize_lock);
	free(t->buf);
	free(t);
}

/* Run reqs in one transaction.  Returns 0 if committed, else an error that
 * applies to the whole batch (nothing of it was committed). */
static int run_batch(struct index *ix, struct write_req *reqs, int single)
{
	struct index_txn t = { .ix = ix, .write = 1 };
	struct it_root root;
	int rc, changed = 0;
	uint64_t id;

	if (ix->it && (rc = itree_txn_begin(ix->it, &t.ot)) < 0)
		return rc;
	if ((rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &t.txn))) < 0) {
		itree_txn_free(t.ot);
		return rc;
	}
	for (struct write_req *r = reqs; r; r = single ? NULL : r->next) {
		t.mutated = 0;
		r->rc = r->fn(&t, r->arg);
		/* an error after a put breaks the contract: its half-done
		 * changes must not be committed with the others */
		if (t.broken || (r->rc < 0 && t.mutated)) {
			rc = r->rc < 0 ? r->rc : -EIO;
			goto abort;
		}
	}
	if (t.ot) {
		struct it_io io;

		make_io(&t, &io);
		if ((rc = itree_txn_finish(t.ot, &io, io_put_node, &root, &changed)) < 0 ||
		    (changed && (rc = put_root(&t, &root)) < 0))
			goto abort;
	}
	if (t.committed)
		mdb_txn_abort(t.committed);
	id = mdb_txn_id(t.txn);
	rc = mdb_err(mdb_txn_commit(t.txn));
	free(t.buf);
	if (rc == 0 && t.ot && changed) {
		itree_txn_apply(t.ot, id, &root);
		pthread_mutex_lock(&ix->root_lock);
		ix->committed = root;
		pthread_mutex_unlock(&ix->root_lock);
	}
	itree_txn_free(t.ot);
	return rc;
abort:
	if (t.committed)
		mdb_txn_abort(t.committed);
	mdb_txn_abort(t.txn);
	free(t.buf);
	itree_txn_free(t.ot);
	return rc;
}

/*
 * Grow the map by a step, written first (ENOSPC on a full disk).  LMDB
 * allows it only with no transaction open in the process: the leader has
 * none, and readers are drained by the lock.  A reader can be stuck behind
 * a writer (readdir waits for a file's lock that a flush holds while it
 * waits for the leader), so `wait` bounds the wait, and the leader grows
 * the map ahead of need (map_short) with a try that waits for nothing.
 */
static int grow_map(struct index *ix, int wait)
{
	struct timespec until;
	int rc;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	if ((wait ? pthread_rwlock_timedwrlock(&ix->resize_lock, &until)
		  : pthread_rwlock_trywrlock(&ix->resize_lock)) != 0)
		return -EBUSY;
	for (int i = 0; i < ix->npool; i++)
		mdb_txn_abort(ix->pool[i]);
	ix->npool = 0;
	rc = map_room(ix, 1);
	pthread_rwlock_unlock(&ix->resize_lock);
	return rc;
}

/*
 * Less than half a step of the map left, and a disk with room for eight
 * whole steps: on a tighter disk the map grows only when full, by what
 * the commit needs, and the rest stays for the packs.  No transaction may
 * be open.
 */
static int map_short(struct index *ix)
{
	uint64_t size, used = map_used(ix, &size), step = map_step(size);
	int fd;

	return used + step / 2 > size && mdb_env_get_fd(ix->env, &fd) == 0 && disk_eighth(fd) >= step;
}

int index_write(struct index *ix, index_write_fn fn, void *arg)
{
	struct write_req req = { .fn = fn, .arg = arg };

	if (ix->rdonly)
		return -EROFS;
	pthread_mutex_lock(&ix->qlock);
	*ix->qtail = &req;
	ix->qtail = &req.next;
	while (!req.done) {
		struct write_req *batch, *r, *next;
		int rc;

		if (ix->leader) {
			pthread_cond_wait(&ix->qcond, &ix->qlock);
			continue;
		}
		/* Lead: take everything queued so far and commit it at once. */
		ix->leader = 1;
		batch = ix->qhead;
		ix->qhead = NULL;
		ix->qtail = &ix->qhead;
		pthread_mutex_unlock(&ix->qlock);

		rc = run_batch(ix, batch, 0);
		if (rc == -ENOSPC && grow_map(ix, 1) == 0)
			rc = run_batch(ix, batch, 0);
		if (rc < 0) {
			/* One request broke the transaction: replay each alone so
			 * only the culprit fails. */
			for (r = batch; r; r = r->next) {
				int one = run_batch(ix, r, 1);

				if (one < 0)
					r->rc = one;
			}
		}
		if (map_short(ix))
			grow_map(ix, 0);

		pthread_mutex_lock(&ix->qlock);
		for (r = batch; r; r = next) {
			next = r->next;
			r->done = 1;
		}
		ix->leader = 0;
		pthread_cond_broadcast(&ix->qcond);
	}
	pthread_mutex_unlock(&ix->qlock);
	return req.rc;
}

/* ---- inode records ---- */

#define INODE_REC_VERSION 1
#define INODE_FIXED 99

static size_t inode_encode(const struct mv_attr *a, uint8_t *p)
{
	p[0] = INODE_REC_VERSION;
	be32_put(p + 1, a->mode);
	be32_put(p + 5, a->uid);
	be32_put(p + 9, a->gid);
	be32_put(p + 13, a->nlink);
	be64_put(p + 17, a->size);
	be64_put(p + 25, a->blocks);
	be64_put(p + 33, (uint64_t)a->atime_s);
	be32_put(p + 41, a->atime_ns);
	be64_put(p + 45, (uint64_t)a->mtime_s);
	be32_put(p + 53, a->mtime_ns);
	be64_put(p + 57, (uint64_t)a->ctime_s);
	be32_put(p + 65, a->ctime_ns);
	be64_put(p + 69, a->rdev);
	be64_put(p + 77, a->parent);
	be32_put(p + 85, a->domain);
	be32_put(p + 89, a->flags);
	be32_put(p + 93, 0);	/* reserved */
	p[97] = (uint8_t)(a->symlink_len >> 8);
	p[98] = (uint8_t)a->symlink_len;
	memcpy(p + INODE_FIXED, a->symlink, a->symlink_len);
	return INODE_FIXED + a->symlink_len;
}

static int inode_decode(struct mv_attr *a, uint64_t ino, const uint8_t *p, size_t n)
{
	if (n < INODE_FIXED || p[0] != INODE_REC_VERSION)
		return -EIO;
	a->ino = ino;
	a->mode = be32_get(p + 1);
	a->uid = be32_get(p + 5);
	a->gid = be32_get(p + 9);
	a->nlink = be32_get(p + 13);
	a->size = be64_get(p + 17);
	a->blocks = be64_get(p + 25);
	a->atime_s = (int64_t)be64_get(p + 33);
	a->atime_ns = be32_get(p + 41);
	a->mtime_s = (int64_t)be64_get(p + 45);
	a->mtime_ns = be32_get(p + 53);
	a->ctime_s = (int64_t)be64_get(p + 57);
	a->ctime_ns = be32_get(p + 65);
	a->rdev = be64_get(p + 69);
	a->parent = be64_get(p + 77);
	a->domain = be32_get(p + 85);
	a->flags = be32_get(p + 89);
	a->symlink_len = (uint16_t)((p[97] << 8) | p[98]);
	if (a->symlink_len > INDEX_SYMLINK_MAX || INODE_FIXED + (size_t)a->symlink_len != n)
		return -EIO;
	memcpy(a->symlink, p + INODE_FIXED, a->symlink_len);
	a->symlink[a->symlink_len] = '\0';
	return 0;
}

/* a record keyed by one 64-bit id (inode, pack) */
static ssize_t rec_get_id(struct index_txn *t, enum db_id db, uint64_t id)
{
	uint8_t key[8];

	be64_put(key, id);
	return rec_get(t, db, key, sizeof(key));
}

int index_inode_get(struct index_txn *t, uint64_t ino, struct mv_attr *out)
{
	ssize_t n = rec_get_id(t, DB_INODE, ino);

	if (n < 0)
		return (int)n;
	return inode_decode(out, ino, t->buf, (size_t)n);
}

int index_inode_put(struct index_txn *t, const struct mv_attr *a)
{
	uint8_t key[8], rec[INODE_FIXED + INDEX_SYMLINK_MAX];
	size_t n;

	if (a->symlink_len > INDEX_SYMLINK_MAX)
		return -ENAMETOOLONG;
	be64_put(key, a->ino);
	n = inode_encode(a, rec);
	return rec_put(t, DB_INODE, key, sizeof(key), rec, n);
}

int index_inode_del(struct index_txn *t, uint64_t ino)
{
	uint8_t key[8];

	be64_put(key, ino);
	return rec_del(t, DB_INODE, key, sizeof(key));
}

int index_count_inodes(struct index_txn *t, uint64_t *count)
{
	MDB_stat st;
	int rc = mdb_err(mdb_stat(t->txn, t->ix->dbi[DB_INODE], &st));

	if (rc == 0)
		*count = st.ms_entries;
	return rc;
}

/* ---- directory entries ---- */

#define DIRENT_KEY 24

static void dirent_key(struct index_txn *t, uint8_t key[DIRENT_KEY], uint64_t parent,
		       const char *name, size_t len)
{
	be64_put(key, parent);
	volkeys_name_hash(t->ix->vk, parent, name, len, key + 8);
}

/* readdir position of an entry: the top 62 bits of its hash, plus 3 so
 * that 0, 1, 2 stay free for the start, "." and "..". */
static uint64_t dirent_next_off(const uint8_t key[DIRENT_KEY])
{
	return (be64_get(key + 8) >> 2) + 3;
}

/* Bytes after the name are padding (index_dirent_put pads names to a
 * length bucket; entries written before that have none). */
static int dirent_decode(const uint8_t *p, size_t n, uint64_t *ino, uint8_t *type,
			 const char **name, size_t *len)
{
	if (n < 10 || (size_t)p[9] + 10 > n || p[9] == 0)
		return -EIO;
	*ino = be64_get(p);
	*type = p[8];
	*len = p[9];
	*name = (const char *)p + 10;
	return 0;
}

int index_dirent_get(struct index_txn *t, uint64_t parent, const char *name,
		     size_t len, uint64_t *ino, uint8_t *type)
{
	uint8_t key[DIRENT_KEY];
	const char *stored;
	size_t slen;
	ssize_t n;
	int rc;

	dirent_key(t, key, parent, name, len);
	n = rec_get(t, DB_DIRENT, key, sizeof(key));
	if (n < 0)
		return (int)n;
	if ((rc = dirent_decode(t->buf, (size_t)n, ino, type, &stored, &slen)) < 0)
		return rc;
	/* a 128-bit hash collision is not expected, but never return the
	 * wrong file if one happens */
	if (slen != len || memcmp(stored, name, len))
		return -ENOENT;
	return 0;
}

/*
 * The room a name takes in its dirent value: the least bucket that holds
 * it, so that a sealed value's length tells someone holding the store
 * only which bucket a name falls in, not its length.  Four buckets keep
 * the cost small (a 12-byte name pays 20 bytes of padding).
 */
static size_t dirent_name_room(size_t len)
{
	static const size_t bucket[] = { 32, 64, 128, INDEX_NAME_MAX };

	for (size_t i = 0; i < sizeof(bucket) / sizeof(bucket[0]); i++)
		if (len <= bucket[i])
			return bucket[i];
	return len;	/* unreachable: callers refuse longer names */
}

int index_dirent_put(struct index_txn *t, uint64_t parent, const char *name,
		     size_t len, uint64_t ino, uint8_t type)
{
	uint8_t key[DIRENT_KEY], rec[10 + INDEX_NAME_MAX] = { 0 };

	if (len == 0 || len > INDEX_NAME_MAX)
		return -ENAMETOOLONG;
	dirent_key(t, key, parent, name, len);
	be64_put(rec, ino);
	rec[8] = type;
	rec[9] = (uint8_t)len;
	memcpy(rec + 10, name, len);
	return rec_put(t, DB_DIRENT, key, sizeof(key), rec, 10 + dirent_name_room(len));
}

int index_dirent_del(struct index_txn *t, uint64_t parent, const char *name, size_t len)
{
	uint8_t key[DIRENT_KEY];

	dirent_key(t, key, parent, name, len);
	return rec_del(t, DB_DIRENT, key, sizeof(key));
}

/* mdb_cursor_get as a walk wants it: 1 at a record, 0 past the end, -errno. */
static int cursor_move(MDB_cursor *c, MDB_val *k, MDB_val *v, MDB_cursor_op op)
{
	int rc = mdb_cursor_get(c, k, v, op);

	return rc == MDB_NOTFOUND ? 0 : rc ? mdb_err(rc) : 1;
}

/* Position a cursor at the first key >= prefix||rest and check that it
 * still starts with the 8-byte prefix.  1 found, 0 none, -errno. */
static int cursor_seek(MDB_cursor *c, const uint8_t *start, size_t slen, MDB_val *k, MDB_val *v)
{
	int rc;

	k->mv_size = slen;
	k->mv_data = (void *)start;
	if ((rc = cursor_move(c, k, v, MDB_SET_RANGE)) <= 0)
		return rc;
	return k->mv_size >= 8 && !memcmp(k->mv_data, start, 8);
}

static int cursor_next(MDB_cursor *c, const uint8_t *prefix, MDB_val *k, MDB_val *v)
{
	int rc;

	if ((rc = cursor_move(c, k, v, MDB_NEXT)) <= 0)
		return rc;
	return k->mv_size >= 8 && !memcmp(k->mv_data, prefix, 8);
}

/*
 * A walk that saw every record of owner's bulk class must have seen as
 * many as the integrity tree knows of: fewer means records were deleted
 * behind the index's back.  0 when it matches (or there is no tree),
 * -EIO otherwise.
 */
static int owner_count_is(struct index_txn *t, uint64_t owner, uint64_t seen)
{
	struct it_io io;
	uint64_t n;
	int rc;

	if (!t->ix->it)
		return 0;
	make_io(t, &io);
	rc = itree_count(t->ix->it, t->ot, &io, owner, IT_BULK, &n);
	if (rc == -EAGAIN)
		return 0;	/* overtaken by a commit: the records were checked one by one */
	if (rc < 0)
		return rc;
	if (n == seen || itree_stale(t->ix->it, &io))
		return 0;	/* or overtaken by a commit: each record was checked */
	syslog(LOG_ERR, "inode %llu: %llu of its chunks or entries are missing from the index",
	       (unsigned long long)owner, (unsigned long long)(n - seen));
	return -EIO;
}

int index_dir_empty(struct index_txn *t, uint64_t parent)
{
	uint8_t start[DIRENT_KEY] = { 0 };
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	be64_put(start, parent);
	if ((rc = mdb_err(mdb_cursor_open(t->txn, t->ix->dbi[DB_DIRENT], &c))) < 0)
		return rc;
	rc = cursor_seek(c, start, sizeof(start), &k, &v);
	if (rc > 0) {
		uint8_t key[DIRENT_KEY];
		ssize_t n = cursor_rec_open(t, DB_DIRENT, &k, &v, key, DIRENT_KEY);

		if (n < 0)
			rc = (int)n;
	}
	mdb_cursor_close(c);
	if (rc < 0)
		return rc;
	if (rc == 0 && (rc = owner_count_is(t, parent, 0)) < 0)
		return rc;	/* entries deleted behind our back: not empty */
	return rc ? 0 : 1;
}

int index_dirent_iter(struct index_txn *t, uint64_t parent, uint64_t off,
		      index_dirent_cb cb, void *ctx)
{
	uint8_t start[DIRENT_KEY] = { 0 };
	MDB_cursor *c;
	MDB_val k, v;
	int rc, more, whole = off <= 2;
	uint64_t seen = 0;

	be64_put(start, parent);
	if (off > 2) {
		uint64_t pos = off - 2;

		if (pos > (UINT64_MAX >> 2))
			return 0;
		be64_put(start + 8, pos << 2);
	}
	if ((rc = mdb_err(mdb_cursor_open(t->txn, t->ix->dbi[DB_DIRENT], &c))) < 0)
		return rc;
	for (more = cursor_seek(c, start, sizeof(start), &k, &v); more > 0;
	     more = cursor_next(c, start, &k, &v)) {
		uint8_t key[DIRENT_KEY];
		const char *name;
		size_t len;
		uint64_t ino;
		uint8_t type;
		ssize_t n;

		n = cursor_rec_open(t, DB_DIRENT, &k, &v, key, DIRENT_KEY);
		if (n < 0) {
			more = (int)n;
			break;
		}
		if ((more = dirent_decode(t->buf, (size_t)n, &ino, &type, &name, &len)) < 0)
			break;
		seen++;
		rc = cb(ctx, name, len, ino, type, dirent_next_off(key));
		if (rc) {
			whole = 0;
			more = rc < 0 ? rc : 0;
			break;
		}
	}
	mdb_cursor_close(c);
	if (more == 0 && whole)
		more = owner_count_is(t, parent, seen);
	return more < 0 ? more : 0;
}

/* ---- chunks ---- */

#define CHUNK_REC 32

static void chunk_encode(const struct chunk_rec *c, uint8_t *p)
{
	be64_put(p, c->pack);
	be64_put(p + 8, c->off);
	be32_put(p + 16, c->len);
	be32_put(p + 20, c->plain_len);
	be64_put(p + 24, c->version);
}

static int chunk_decode(struct chunk_rec *c, const uint8_t *p, size_t n)
{
	if (n != CHUNK_REC)
		return -EIO;
	c->pack = be64_get(p);
	c->off = be64_get(p + 8);
	c->len = be32_get(p + 16);
	c->plain_len = be32_get(p + 20);
	c->version = be64_get(p + 24);
	return 0;
}

int index_chunk_get(struct index_txn *t, uint64_t ino, uint64_t idx, struct chunk_rec *out)
{
	uint8_t key[16];
	ssize_t n;

	be64_put(key, ino);
	be64_put(key + 8, idx);
	n = rec_get(t, DB_CHUNK, key, sizeof(key));
	if (n < 0)
		return (int)n;
	return chunk_decode(out, t->buf, (size_t)n);
}

int index_chunk_put(struct index_txn *t, uint64_t ino, uint64_t idx, const struct chunk_rec *c)
{
	uint8_t key[16], rec[CHUNK_REC];

	be64_put(key, ino);
	be64_put(key + 8, idx);
	chunk_encode(c, rec);
	return rec_put(t, DB_CHUNK, key, sizeof(key), rec, sizeof(rec));
}

int index_chunk_del(struct index_txn *t, uint64_t ino, uint64_t idx)
{
	uint8_t key[16];

	be64_put(key, ino);
	be64_put(key + 8, idx);
	return rec_del(t, DB_CHUNK, key, sizeof(key));
}

static int chunk_walk(struct index_txn *t, const uint8_t *start, int one_inode,
		      index_chunk_cb cb, void *ctx)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc, more, whole = one_inode && be64_get(start + 8) == 0;
	uint64_t seen = 0;

	if ((rc = mdb_err(mdb_cursor_open(t->txn, t->ix->dbi[DB_CHUNK], &c))) < 0)
		return rc;
	k.mv_size = 16;
	k.mv_data = (void *)start;
	more = cursor_move(c, &k, &v, MDB_SET_RANGE);
	while (more > 0) {
		uint8_t key[16];
		struct chunk_rec cr;
		ssize_t n;

		/* past the inode's last chunk before authenticating a stranger's */
		if (one_inode && k.mv_size == 16 && memcmp(k.mv_data, start, 8))
			break;
		n = cursor_rec_open(t, DB_CHUNK, &k, &v, key, 16);
		if (n < 0) {
			more = (int)n;
			break;
		}
		if ((more = chunk_decode(&cr, t->buf, (size_t)n)) < 0)
			break;
		seen++;
		rc = cb(ctx, be64_get(key), be64_get(key + 8), &cr);
		if (rc) {
			whole = 0;
			more = rc < 0 ? rc : 0;
			break;
		}
		more = cursor_move(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (more == 0 && whole)
		more = owner_count_is(t, be64_get(start), seen);
	return more < 0 ? more : 0;
}

int index_chunk_iter(struct index_txn *t, uint64_t ino, uint64_t from,
		     index_chunk_cb cb, void *ctx)
{
	uint8_t start[16];

	be64_put(start, ino);
	be64_put(start + 8, from);
	return chunk_walk(t, start, 1, cb, ctx);
}

int index_chunk_iter_all(struct index_txn *t, index_chunk_cb cb, void *ctx)
{
	uint8_t start[16] = { 0 };

	return chunk_walk(t, start, 0, cb, ctx);
}

/* ---- xattrs ---- */

#define XATTR_KEY 24

static void xattr_key(struct index_txn *t, uint8_t key[XATTR_KEY], uint64_t ino,
		      const char *name, size_t len)
{
	be64_put(key, ino);
	/* top bit set: never the same hash input as a dirent of dir ino */
	volkeys_name_hash(t->ix->vk, ino | (1ull << 63), name, len, key + 8);
}

ssize_t index_xattr_get(struct index_txn *t, uint64_t ino, const char *name,
			void *value, size_t cap)
{
	uint8_t key[XATTR_KEY];
	size_t nlen = strlen(name), vlen;
	ssize_t n;

	xattr_key(t, key, ino, name, nlen);
	n = rec_get(t, DB_XATTR, key, sizeof(key));
	if (n == -ENOENT)
		return -ENODATA;
	if (n < 0)
		return n;
	if ((size_t)n < 1 || (size_t)t->buf[0] + 1 > (size_t)n)
		return -EIO;
	if (t->buf[0] != nlen || memcmp(t->buf + 1, name, nlen))
		return -ENODATA;
	vlen = (size_t)n - 1 - nlen;
	if (cap == 0)
		return (ssize_t)vlen;
	if (cap < vlen)
		return -ERANGE;
	memcpy(value, t->buf + 1 + nlen, vlen);
	return (ssize_t)vlen;
}

int index_xattr_put(struct index_txn *t, uint64_t ino, const char *name,
		    const void *value, size_t len)
{
	uint8_t key[XATTR_KEY], *rec;
	size_t nlen = strlen(name);
	int rc;

	if (nlen == 0 || nlen > INDEX_XATTR_NAME_MAX)
		return -ERANGE;
	if (len > INDEX_XATTR_VALUE_MAX)
		return -E2BIG;
	rec = malloc(1 + nlen + len);
	if (!rec)
		return -ENOMEM;
	rec[0] = (uint8_t)nlen;
	memcpy(rec + 1, name, nlen);
	if (len)
		memcpy(rec + 1 + nlen, value, len);
	xattr_key(t, key, ino, name, nlen);
	rc = rec_put(t, DB_XATTR, key, sizeof(key), rec, 1 + nlen + len);
	free(rec);
	return rc;
}

int index_xattr_del(struct index_txn *t, uint64_t ino, const char *name)
{
	uint8_t key[XATTR_KEY];
	int rc;

	xattr_key(t, key, ino, name, strlen(name));
	rc = rec_del(t, DB_XATTR, key, sizeof(key));
	return rc == -ENOENT ? -ENODATA : rc;
}

ssize_t index_xattr_list(struct index_txn *t, uint64_t ino, char *list, size_t cap)
{
	uint8_t start[XATTR_KEY] = { 0 };
	MDB_cursor *c;
	MDB_val k, v;
	size_t total = 0;
	int rc, more;

	be64_put(start, ino);
	if ((rc = mdb_err(mdb_cursor_open(t->txn, t->ix->dbi[DB_XATTR], &c))) < 0)
		return rc;
	for (more = cursor_seek(c, start, sizeof(start), &k, &v); more > 0;
	     more = cursor_next(c, start, &k, &v)) {
		uint8_t key[XATTR_KEY];
		ssize_t n;
		size_t nlen;

		n = cursor_rec_open(t, DB_XATTR, &k, &v, key, XATTR_KEY);
		if (n < 0) {
			more = (int)n;
			break;
		}
		nlen = t->buf[0];
		if ((size_t)n < 1 + nlen) {
			more = -EIO;
			break;
		}
		if (cap) {
			if (total + nlen + 1 > cap) {
				more = -ERANGE;
				break;
			}
			memcpy(list + total, t->buf + 1, nlen);
			list[total + nlen] = '\0';
		}
		total += nlen + 1;
	}
	mdb_cursor_close(c);
	return more < 0 ? more : (ssize_t)total;
}

int index_xattr_del_all(struct index_txn *t, uint64_t ino)
{
	uint8_t start[XATTR_KEY] = { 0 };
	MDB_cursor *c;
	MDB_val k, v;
	int rc, more;

	be64_put(start, ino);
	if ((rc = mdb_err(mdb_cursor_open(t->txn, t->ix->dbi[DB_XATTR], &c))) < 0)
		return rc;
	/* seek afresh after each delete: simpler than cursor repositioning,
	 * and files carry few xattrs */
	while ((more = cursor_seek(c, start, sizeof(start), &k, &v)) > 0) {
		uint8_t key[XATTR_KEY];
		struct it_rec before;
		size_t klen = k.mv_size < sizeof(key) ? k.mv_size : sizeof(key);

		memcpy(key, k.mv_data, klen);
		if (t->ot)
			itree_rec(t->ix->vk, IT_DB_XATTR, key, klen, v.mv_data, v.mv_size, &before);
		if ((rc = mdb_err(mdb_cursor_del(c, 0))) < 0 ||
		    (t->ot && (rc = tree_note(t, DB_XATTR, key, klen, &before, NULL)) < 0)) {
			t->broken = 1;
			more = rc;
			break;
		}
		t->mutated = 1;
	}
	mdb_cursor_close(c);
	return more < 0 ? more : 0;
}

/* ---- orphans ---- */

int index_orphan_add(struct index_txn *t, uint64_t ino)
{
	uint8_t key[8];

	be64_put(key, ino);
	return rec_put(t, DB_ORPHAN, key, sizeof(key), "", 0);
}

int index_orphan_del(struct index_txn *t, uint64_t ino)
{
	uint8_t key[8];

	be64_put(key, ino);
	return rec_del(t, DB_ORPHAN, key, sizeof(key));
}

int index_orphan_list(struct index_txn *t, uint64_t *inos, int max)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc, n = 0;

	if ((rc = mdb_err(mdb_cursor_open(t->txn, t->ix->dbi[DB_ORPHAN], &c))) < 0)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && n < max;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint8_t key[8];

		if (k.mv_size != 8)
			continue;
		memcpy(key, k.mv_data, 8);
		/* a forged or replayed orphan record must not get a live
		 * inode freed */
		if (rec_check(t, DB_ORPHAN, key, 8, &v) < 0 || rec_open_val(t, DB_ORPHAN, key, 8, &v) < 0)
			continue;
		inos[n++] = be64_get(key);
	}
	mdb_cursor_close(c);
	return n;
}

/* ---- purging an inode ---- */

struct purge_list {
	uint64_t *idx;
	struct chunk_rec *rec;
	size_t n, cap;
};

static int purge_collect(void *ctx, uint64_t ino, uint64_t idx, const struct chunk_rec *c)
{
	struct purge_list *l = ctx;

	(void)ino;
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		uint64_t *ni = realloc(l->idx, ncap * sizeof(*ni));
		struct chunk_rec *nr;

		if (!ni)
			return -ENOMEM;
		l->idx = ni;
		if (!(nr = realloc(l->rec, ncap * sizeof(*nr))))
			return -ENOMEM;
		l->rec = nr;
		l->cap = ncap;
	}
	l->idx[l->n] = idx;
	l->rec[l->n] = *c;
	l->n++;
	return 0;
}

/*
 * The chunks are collected before any is deleted: a cursor walk must not
 * run over records the same transaction deletes under it.  A damaged
 * chunk record stops the collection, so then no chunk is deleted; the
 * other records still are, and -EIO tells fsck (which deletes damaged
 * records itself) from a caller that must abort.
 */
int index_inode_purge(struct index_txn *t, uint64_t ino)
{
	struct purge_list l = { 0 };
	int rc, chunks_rc;

	chunks_rc = index_chunk_iter(t, ino, 0, purge_collect, &l);
	for (size_t i = 0; chunks_rc == 0 && i < l.n; i++) {
		if ((chunks_rc = index_chunk_del(t, ino, l.idx[i])) < 0)
			break;
		chunks_rc = index_pack_account(t, l.rec[i].pack, -(int64_t)l.rec[i].len, 0);
	}
	free(l.idx);
	free(l.rec);
	if (chunks_rc < 0 && chunks_rc != -EIO)
		return chunks_rc;
	if ((rc = index_xattr_del_all(t, ino)) < 0)
		return rc;
	if ((rc = index_inode_del(t, ino)) < 0 && rc != -ENOENT)
		return rc;
	if ((rc = index_orphan_del(t, ino)) < 0 && rc != -ENOENT)
		return rc;
	return chunks_rc;
}

/* ---- packs ---- */

/* A longer record carries fields of a later build (an object store's
 * upload state); format 2 keeps to the first 20 bytes. */
static int pack_decode(struct pack_rec *p, const uint8_t *b, size_t n)
{
	if (n < 20)
		return -EIO;
	p->live_bytes = be64_get(b);
	p->total_bytes = be64_get(b + 8);
	p->state = be32_get(b + 16);
	return 0;
}

int index_pack_get(struct index_txn *t, uint64_t pack, struct pack_rec *out)
{
	ssize_t n = rec_get_id(t, DB_PACK, pack);

	if (n < 0)
		return (int)n;
	return pack_decode(out, t->buf, (size_t)n);
}

int index_pack_account(struct index_txn *t, uint64_t pack, int64_t live, int64_t total)
{
	struct pack_rec p = { 0 };
	uint8_t key[8], rec[20];
	int rc = index_pack_get(t, pack, &p);

	if (rc < 0 && rc != -ENOENT)
		return rc;
	p.live_bytes = (uint64_t)((int64_t)p.live_bytes + live);
	p.total_bytes = (uint64_t)((int64_t)p.total_bytes + total);
	be64_put(key, pack);
	be64_put(rec, p.live_bytes);
	be64_put(rec + 8, p.total_bytes);
	be32_put(rec + 16, p.state);
	if ((rc = rec_put(t, DB_PACK, key, sizeof(key), rec, sizeof(rec))) == 0 && live < 0)
		__atomic_add_fetch(&t->ix->dead_bytes, (uint64_t)-live, __ATOMIC_RELAXED);
	return rc;
}

uint64_t index_dead_bytes(struct index *ix)
{
	return __atomic_load_n(&ix->dead_bytes, __ATOMIC_RELAXED);
}

void index_dead_bytes_reset(struct index *ix)
{
	__atomic_store_n(&ix->dead_bytes, 0, __ATOMIC_RELAXED);
}

int index_pack_iter(struct index_txn *t, index_pack_cb cb, void *ctx)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc, more;

	if ((rc = mdb_err(mdb_cursor_open(t->txn, t->ix->dbi[DB_PACK], &c))) < 0)
		return rc;
	more = cursor_move(c, &k, &v, MDB_FIRST);
	while (more > 0) {
		uint8_t key[8];
		struct pack_rec p;
		ssize_t n;

		n = cursor_rec_open(t, DB_PACK, &k, &v, key, 8);
		if (n < 0 || pack_decode(&p, t->buf, (size_t)n) < 0) {
			more = -EIO;
			break;
		}
		if ((rc = cb(ctx, be64_get(key), &p))) {
			more = rc < 0 ? rc : 0;
			break;
		}
		more = cursor_move(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return more < 0 ? more : 0;
}

int index_pack_del(struct index_txn *t, uint64_t pack)
{
	uint8_t key[8];

	be64_put(key, pack);
	return rec_del(t, DB_PACK, key, sizeof(key));
}

/* ---- meta ---- */

int index_meta_get(struct index_txn *t, const char *name, uint64_t *val)
{
	ssize_t n = rec_get(t, DB_META, name, strlen(name));

	if (n < 0)
		return (int)n;
	if (n != 8)
		return -EIO;
	*val = be64_get(t->buf);
	return 0;
}

int index_meta_put(struct index_txn *t, const char *name, uint64_t val)
{
	uint8_t rec[8];

	be64_put(rec, val);
	return rec_put(t, DB_META, name, strlen(name), rec, sizeof(rec));
}

/* ---- raw access for fsck ---- */

_Static_assert((int)INDEX_DB_INODE == (int)DB_INODE && (int)INDEX_DB_META == (int)DB_META,
	       "index_db must mirror db_id");

int index_walk(struct index_txn *t, enum index_db db, index_walk_cb cb, void *ctx)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc, stop = 0;

	if ((rc = mdb_err(mdb_cursor_open(t->txn, t->ix->dbi[db], &c))) < 0)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && !stop;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		uint8_t key[64];
		size_t klen = k.mv_size < sizeof(key) ? k.mv_size : sizeof(key);
		ssize_t n;

		memcpy(key, k.mv_data, klen);
		n = k.mv_size <= 40 ? rec_open_val(t, (enum db_id)db, key, klen, &v) : -EIO;
		if (n < 0)
			stop = cb(ctx, key, klen, NULL, 0, -EIO);
		else
			stop = cb(ctx, key, klen, t->buf, (size_t)n, 0);
	}
	mdb_cursor_close(c);
	if (stop)
		return stop;
	return rc == MDB_NOTFOUND ? 0 : mdb_err(rc);
}

int index_count(struct index_txn *t, enum index_db db, uint64_t *count)
{
	MDB_stat st;
	int rc = mdb_err(mdb_stat(t->txn, t->ix->dbi[db], &st));

	if (rc == 0)
		*count = st.ms_entries;
	return rc;
}

int index_raw_del(struct index_txn *t, enum index_db db, const uint8_t *key, size_t klen)
{
	return rec_del(t, (enum db_id)db, key, klen);
}

int index_decode_inode(const uint8_t *key, size_t klen, const uint8_t *plain, size_t plen,
		       struct mv_attr *out)
{
	if (klen != 8)
		return -EIO;
	return inode_decode(out, be64_get(key), plain, plen);
}

int index_decode_dirent(const uint8_t *key, size_t klen, const uint8_t *plain, size_t plen,
			uint64_t *parent, uint64_t *ino, uint8_t *type,
			const char **name, size_t *len)
{
	if (klen != DIRENT_KEY)
		return -EIO;
	*parent = be64_get(key);
	return dirent_decode(plain, plen, ino, type, name, len);
}

int index_decode_chunk(const uint8_t *key, size_t klen, const uint8_t *plain, size_t plen,
		       uint64_t *ino, uint64_t *idx, struct chunk_rec *out)
{
	if (klen != 16)
		return -EIO;
	*ino = be64_get(key);
	*idx = be64_get(key + 8);
	return chunk_decode(out, plain, plen);
}

int index_decode_pack(const uint8_t *key, size_t klen, const uint8_t *plain, size_t plen,
		      uint64_t *pack, struct pack_rec *out)
{
	if (klen != 8)
		return -EIO;
	*pack = be64_get(key);
	return pack_decode(out, plain, plen);
}

/* Open an index read-only and keyless, beside a daemon that may be writing
 * it: its readers sit in the daemon's reader table, so the writer never
 * reuses the pages they read. */
static int open_env_readonly(const char *dir, MDB_env **out)
{
	MDB_env *env = NULL;
	int rc;

	*out = NULL;
	if ((rc = mdb_err(mdb_env_create(&env))) < 0)
		return rc;
	mdb_env_set_maxdbs(env, DB_COUNT);
	mdb_env_set_mapsize(env, INDEX_MAP_SIZE);
	rc = mdb_err(mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600));
	if (rc < 0) {
		mdb_env_close(env);
		return rc;
	}
	*out = env;
	return 0;
}

int index_copy_env(const char *dir, const char *dest_dir)
{
	MDB_env *env;
	int rc = open_env_readonly(dir, &env);

	if (rc < 0)
		return rc;
	rc = mdb_err(mdb_env_copy2(env, dest_dir, 0));
	mdb_env_close(env);
	return rc;
}

int index_env_counts(const char *dir, uint64_t counts[INDEX_DB_COUNT])
{
	MDB_env *env;
	MDB_txn *txn = NULL;
	int rc;

	memset(counts, 0, INDEX_DB_COUNT * sizeof(counts[0]));
	if ((rc = open_env_readonly(dir, &env)) < 0)
		return rc;
	rc = mdb_err(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
	for (int i = 0; rc == 0 && i < INDEX_DB_COUNT; i++) {
		MDB_dbi dbi;
		MDB_stat st;

		if (mdb_dbi_open(txn, db_names[i], 0, &dbi) == 0 && mdb_stat(txn, dbi, &st) == 0)
			counts[i] = st.ms_entries;
	}
	if (txn)
		mdb_txn_abort(txn);
	mdb_env_close(env);
	return rc;
}
