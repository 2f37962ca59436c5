/*
 * fsck: one pass over each database in key order, so every table below is
 * built sorted and looked up by binary search; then the whole-tree checks
 * (link counts, connectivity, pack accounting).  Repairs are collected and
 * applied in one index transaction at the end, so an interrupted repair
 * changes nothing.
 */
#include "store/fsck.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "crypto/aead.h"
#include "store/blobstore.h"
#include "util/array.h"
#include "util/byteorder.h"
#include "store/index.h"
#include "util/progress.h"
#include "crypto/volkeys.h"

#define F_BAD_RECORD 1	/* inode record fails authentication */
#define F_REACHABLE 2
#define F_ORPHAN 4
#define F_DAMAGED 8	/* some content unreadable */
#define F_QUARANTINED 16	/* an earlier repair could not verify it */

struct fk_stale {	/* what the integrity tree check found */
	uint64_t ino;
	enum index_stale what;
};

struct fk_inode {
	uint64_t ino;
	uint32_t mode, nlink, flags;
	uint64_t size, parent;
	uint32_t links, subdirs;
	uint64_t name_parent;	/* first link seen, for paths */
	char *name;
};

struct fk_dirent {
	uint64_t parent, child;
	uint8_t key[24];
	int bad;
};

struct fk_pack {
	uint64_t id;
	uint64_t live, total;	/* as recorded */
	uint64_t counted;	/* live bytes found in chunk records */
	int recorded, on_disk;
};

struct fk_raw {		/* a record to delete on repair */
	enum index_db db;
	uint8_t key[40];
	size_t klen;
};

struct fsck {
	struct vault *v;
	FILE *out;
	struct fsck_report *r;
	int repair;
	struct fk_inode *in;
	size_t nin, capin;
	struct fk_dirent *de;
	size_t nde, capde;
	struct fk_pack *pk;
	size_t npk, cappk;
	struct fk_raw *del;
	size_t ndel, capdel;
	uint64_t *orphans;
	size_t norph, caporph;
	uint64_t *fix_nlink;	/* inodes whose nlink must be set to links */
	size_t nfix, capfix;
	uint64_t *lost;		/* inodes to reattach under /lost+found */
	size_t nlost, caplost;
	struct fk_stale *stale;
	size_t nstale, capstale;
	uint64_t max_epoch;	/* highest epoch in a chunk version */
	struct index_root_state root;
	struct progress prog;
	struct aead *cur_aead;
	uint64_t cur_ino, cur_gen;	/* whose key cur_aead is (volkeys_chunk_gen) */
	uint8_t *pt, *ct;
	struct index_txn *txn;
};

#define PUSH(f, arr, n, cap, val) \
	(array_reserve(&(f)->arr, &(f)->cap, (f)->n + 1, sizeof(*(f)->arr)) ? -ENOMEM : \
	 ((f)->arr[(f)->n++] = (val), 0))

static struct fk_inode *find_inode(struct fsck *f, uint64_t ino)
{
	size_t lo = 0, hi = f->nin;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (f->in[mid].ino == ino)
			return &f->in[mid];
		if (f->in[mid].ino < ino)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static struct fk_pack *find_pack(struct fsck *f, uint64_t id, int create)
{
	for (size_t i = 0; i < f->npk; i++)	/* packs are few: thousands at most */
		if (f->pk[i].id == id)
			return &f->pk[i];
	if (!create)
		return NULL;
	struct fk_pack p = { .id = id };

	if (PUSH(f, pk, npk, cappk, p) < 0)
		return NULL;
	return &f->pk[f->npk - 1];
}

/* "/a/b/c" for ino, or "<inode N>" when it hangs nowhere */
static void path_of(struct fsck *f, uint64_t ino, char *out, size_t outlen)
{
	const char *parts[256];
	size_t n = 0, used = 0;
	uint64_t at = ino;

	while (at != INDEX_ROOT_INO && n < 256) {
		struct fk_inode *i = find_inode(f, at);

		if (!i || !i->name) {
			snprintf(out, outlen, "<inode %" PRIu64 ">", ino);
			return;
		}
		parts[n++] = i->name;
		at = i->name_parent;
	}
	if (n == 0) {
		snprintf(out, outlen, "/");
		return;
	}
	out[0] = '\0';
	while (n-- > 0 && used + 2 < outlen) {
		int w = snprintf(out + used, outlen - used, "/%s", parts[n]);

		if (w < 0)
			break;
		used += (size_t)w;
	}
}

static void problem(struct fsck *f, int damaged, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void problem(struct fsck *f, int damaged, const char *fmt, ...)
{
	va_list ap;

	f->r->problems++;
	if (damaged)
		f->r->damaged++;
	fputs(damaged ? "damaged: " : "problem: ", f->out);
	va_start(ap, fmt);
	vfprintf(f->out, fmt, ap);
	va_end(ap);
	fputc('\n', f->out);
}

static int note_delete(struct fsck *f, enum index_db db, const uint8_t *key, size_t klen)
{
	struct fk_raw r = { .db = db, .klen = klen < 40 ? klen : 40 };

	memcpy(r.key, key, r.klen);
	return PUSH(f, del, ndel, capdel, r);
}

/* ---- pass 1: inodes ---- */

static int walk_inode(void *ctx, const uint8_t *key, size_t klen, const uint8_t *plain,
		      size_t plen, int rc)
{
	struct fsck *f = ctx;
	struct fk_inode fi = { 0 };
	struct mv_attr a;

	if (klen == 8)
		fi.ino = be64_get(key);
	if (rc == 0)
		rc = index_decode_inode(key, klen, plain, plen, &a);
	if (rc < 0) {
		fi.flags = F_BAD_RECORD;	/* reported with its path, once names are known */
	} else {
		if (a.flags & INDEX_FLAG_QUARANTINED)
			fi.flags |= F_QUARANTINED;
		fi.mode = a.mode;
		fi.nlink = a.nlink;
		fi.size = a.size;
		fi.parent = a.parent;
		if (S_ISDIR(a.mode))
			f->r->dirs++;
		else if (S_ISREG(a.mode))
			f->r->files++;
	}
	f->r->inodes++;
	return PUSH(f, in, nin, capin, fi) < 0 ? -ENOMEM : 0;
}

/* ---- pass 2: directory entries ---- */

static int walk_dirent(void *ctx, const uint8_t *key, size_t klen, const uint8_t *plain,
		       size_t plen, int rc)
{
	struct fsck *f = ctx;
	struct fk_dirent d = { 0 };
	const char *name = NULL;
	size_t len = 0;
	uint8_t type = 0;
	struct fk_inode *p, *c;

	f->r->dirents++;
	memcpy(d.key, key, klen < 24 ? klen : 24);
	if (klen >= 8)
		d.parent = be64_get(key);
	if (rc == 0)
		rc = index_decode_dirent(key, klen, plain, plen, &d.parent, &d.child, &type, &name, &len);
	if (rc < 0) {
		problem(f, 1, "directory entry in inode %" PRIu64 ": record fails authentication", d.parent);
		return note_delete(f, INDEX_DB_DIRENT, key, klen);
	}
	p = find_inode(f, d.parent);
	c = find_inode(f, d.child);
	if (!p || (!(p->flags & F_BAD_RECORD) && !S_ISDIR(p->mode))) {
		problem(f, 0, "entry %" PRIu64 "/%.*s: parent is missing or not a directory",
			d.parent, (int)len, name);
		return note_delete(f, INDEX_DB_DIRENT, key, klen);
	}
	if (!c) {
		problem(f, 0, "entry %" PRIu64 "/%.*s names missing inode %" PRIu64,
			d.parent, (int)len, name, d.child);
		return note_delete(f, INDEX_DB_DIRENT, key, klen);
	}
	c->links++;
	if (!c->name) {
		c->name = strndup(name, len);
		c->name_parent = d.parent;
	}
	if (!(c->flags & F_BAD_RECORD) && ((uint32_t)type << 12) != (c->mode & S_IFMT))
		problem(f, 0, "entry %.*s: type differs from inode %" PRIu64, (int)len, name, d.child);
	if (!(c->flags & F_BAD_RECORD) && S_ISDIR(c->mode)) {
		p->subdirs++;
		if (c->parent != d.parent)
			problem(f, 0, "directory inode %" PRIu64 ": parent pointer disagrees with its entry",
				d.child);
	}
	return PUSH(f, de, nde, capde, d) < 0 ? -ENOMEM : 0;
}

/* ---- pass 3: chunks, with their contents ---- */

static int walk_chunk(void *ctx, const uint8_t *key, size_t klen, const uint8_t *plain,
		      size_t plen, int rc)
{
	struct fsck *f = ctx;
	struct chunk_rec c;
	uint64_t ino = klen >= 8 ? be64_get(key) : 0, idx = 0;
	struct fk_inode *fi;
	char path[PATH_MAX];
	struct fk_pack *pk;

	progress_add(&f->prog, 1);
	f->r->chunks++;
	if (rc == 0)
		rc = index_decode_chunk(key, klen, plain, plen, &ino, &idx, &c);
	fi = find_inode(f, ino);
	if (rc < 0) {
		if (fi)
			fi->flags |= F_DAMAGED;
		path_of(f, ino, path, sizeof(path));
		problem(f, 1, "%s (inode %" PRIu64 "): a chunk record fails authentication", path, ino);
		return 0;	/* referenced, even if unreadable: never deleted */
	}
	if (!fi) {
		problem(f, 0, "chunk %" PRIu64 " of missing inode %" PRIu64 ": unreferenced", idx, ino);
		return note_delete(f, INDEX_DB_CHUNK, key, klen);
	}
	pk = find_pack(f, c.pack, 1);
	if (!pk)
		return -ENOMEM;
	pk->counted += c.len;
	f->r->chunk_bytes += c.plain_len;
	if (!(fi->flags & F_BAD_RECORD) && idx * (uint64_t)f->v->conf.chunk_size >= fi->size)
		problem(f, 0, "inode %" PRIu64 ": chunk %" PRIu64 " lies past the end of the file", ino, idx);

	/* the content itself: read it and authenticate it */
	if (f->cur_ino != ino || !f->cur_aead ||
	    f->cur_gen != volkeys_chunk_gen(f->v->keygen_epoch, c.version)) {
		aead_free(f->cur_aead);
		f->cur_aead = NULL;
		f->cur_ino = ino;
		f->cur_gen = volkeys_chunk_gen(f->v->keygen_epoch, c.version);
		if (volkeys_chunk_aead(f->v->keys, VOLKEYS_DEFAULT_DOMAIN, ino, f->cur_gen, &f->cur_aead) < 0)
			return -ENOMEM;
	}
	{
		struct blob_loc loc = { c.pack, c.off, c.len };
		uint8_t ad[44];
		ssize_t n = -EIO;

		memcpy(ad, "MVC1", 4);
		memcpy(ad + 4, f->v->conf.uuid, 16);
		be64_put(ad + 20, ino);
		be64_put(ad + 28, idx);
		be64_put(ad + 36, c.version);
		if (c.version >> 40 > f->max_epoch)
			f->max_epoch = c.version >> 40;
		if (c.len <= f->v->conf.chunk_size + aead_overhead(f->cur_aead) &&
		    blobstore_read(f->v->bs, &loc, f->ct) == 0)
			n = aead_open(f->cur_aead, f->pt, f->v->conf.chunk_size, f->ct, c.len, ad, sizeof(ad));
		if (n < 0 || (uint32_t)n != c.plain_len) {
			fi->flags |= F_DAMAGED;
			path_of(f, ino, path, sizeof(path));
			problem(f, 1, "%s (inode %" PRIu64 ", chunk %" PRIu64 ", pack %" PRIu64
				"): content missing or fails authentication", path, ino, idx, c.pack);
		}
	}
	return 0;
}

static int walk_pack(void *ctx, const uint8_t *key, size_t klen, const uint8_t *plain,
		     size_t plen, int rc)
{
	struct fsck *f = ctx;
	struct pack_rec p;
	uint64_t id = klen >= 8 ? be64_get(key) : 0;
	struct fk_pack *fp;

	if (rc == 0)
		rc = index_decode_pack(key, klen, plain, plen, &id, &p);
	if (rc < 0) {
		problem(f, 0, "pack %" PRIu64 ": accounting record fails authentication", id);
		return note_delete(f, INDEX_DB_PACK, key, klen);
	}
	fp = find_pack(f, id, 1);
	if (!fp)
		return -ENOMEM;
	fp->recorded = 1;
	fp->live = p.live_bytes;
	fp->total = p.total_bytes;
	return 0;
}

static int walk_xattr(void *ctx, const uint8_t *key, size_t klen, const uint8_t *plain,
		      size_t plen, int rc)
{
	struct fsck *f = ctx;
	uint64_t ino = klen >= 8 ? be64_get(key) : 0;

	(void)plain;
	(void)plen;
	f->r->xattrs++;
	if (rc < 0) {
		struct fk_inode *fi = find_inode(f, ino);
		char path[PATH_MAX];

		if (fi)
			fi->flags |= F_DAMAGED;
		path_of(f, ino, path, sizeof(path));
		problem(f, 1, "%s (inode %" PRIu64 "): an extended attribute fails authentication", path, ino);
		return 0;
	}
	if (!find_inode(f, ino)) {
		problem(f, 0, "extended attribute of missing inode %" PRIu64, ino);
		return note_delete(f, INDEX_DB_XATTR, key, klen);
	}
	return 0;
}

static int walk_orphan(void *ctx, const uint8_t *key, size_t klen, const uint8_t *plain,
		       size_t plen, int rc)
{
	struct fsck *f = ctx;
	uint64_t ino = klen == 8 ? be64_get(key) : 0;
	struct fk_inode *fi = find_inode(f, ino);

	(void)plain;
	(void)plen;
	(void)rc;
	f->r->orphans++;
	if (fi)
		fi->flags |= F_ORPHAN;
	/* unlinked while open when the daemon stopped: freed at next mount */
	return PUSH(f, orphans, norph, caporph, ino) < 0 ? -ENOMEM : 0;
}

/* ---- whole-tree checks ---- */

static int dirent_cmp_parent(const void *a, const void *b)
{
	const struct fk_dirent *x = a, *y = b;

	return x->parent < y->parent ? -1 : x->parent > y->parent;
}

static void mark_reachable(struct fsck *f)
{
	uint64_t *stack = malloc((f->nin + 1) * sizeof(*stack));
	size_t sp = 0;
	struct fk_inode *root = find_inode(f, INDEX_ROOT_INO);

	if (!stack || !root) {
		free(stack);
		return;
	}
	/* dirents arrive sorted by parent already (key order) */
	root->flags |= F_REACHABLE;
	stack[sp++] = INDEX_ROOT_INO;
	while (sp) {
		uint64_t dir = stack[--sp];
		struct fk_dirent key = { .parent = dir };
		struct fk_dirent *d = bsearch(&key, f->de, f->nde, sizeof(*f->de), dirent_cmp_parent);

		if (!d)
			continue;
		while (d > f->de && d[-1].parent == dir)
			d--;
		for (; d < f->de + f->nde && d->parent == dir; d++) {
			struct fk_inode *c = find_inode(f, d->child);

			if (!c || (c->flags & F_REACHABLE))
				continue;
			c->flags |= F_REACHABLE;
			if (!(c->flags & F_BAD_RECORD) && S_ISDIR(c->mode) && sp < f->nin)
				stack[sp++] = c->ino;
		}
	}
	free(stack);
}

static int check_tree(struct fsck *f)
{
	char path[PATH_MAX];

	mark_reachable(f);
	for (size_t i = 0; i < f->nin; i++) {
		struct fk_inode *fi = &f->in[i];
		uint32_t want;

		if (fi->flags & F_BAD_RECORD) {
			path_of(f, fi->ino, path, sizeof(path));
			problem(f, 1, "%s (inode %" PRIu64 "): inode record fails authentication",
				path, fi->ino);
			continue;
		}
		if (fi->flags & F_QUARANTINED) {
			path_of(f, fi->ino, path, sizeof(path));
			problem(f, 0, "%s (inode %" PRIu64 "): quarantined by an earlier repair (its records "
				"could not be verified; its data reads as EIO): inspect, then remove it",
				path, fi->ino);
		}
		if (fi->ino == INDEX_ROOT_INO) {
			want = 2 + fi->subdirs;
		} else if (S_ISDIR(fi->mode)) {
			want = fi->links ? 2 + fi->subdirs : 0;
		} else {
			want = fi->links;
		}
		if ((fi->flags & F_ORPHAN) && fi->links == 0)
			continue;	/* freed at next mount */
		if (!(fi->flags & F_REACHABLE)) {
			problem(f, 0, "inode %" PRIu64 " is not reachable from the root", fi->ino);
			if (PUSH(f, lost, nlost, caplost, fi->ino) < 0)
				return -ENOMEM;
			continue;
		}
		if (fi->nlink != want) {
			path_of(f, fi->ino, path, sizeof(path));
			problem(f, 0, "%s (inode %" PRIu64 "): link count %" PRIu32 ", should be %" PRIu32,
				path, fi->ino, fi->nlink, want);
			if (PUSH(f, fix_nlink, nfix, capfix, fi->ino) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

static int note_pack_file(void *ctx, uint64_t pack, uint64_t size)
{
	struct fk_pack *p = find_pack(ctx, pack, 1);

	(void)size;
	if (p)
		p->on_disk = 1;
	return 0;
}

static void scan_pack_files(struct fsck *f)
{
	blobstore_scan(f->v->store, note_pack_file, f);
}

static void check_packs(struct fsck *f)
{
	for (size_t i = 0; i < f->npk; i++) {
		struct fk_pack *p = &f->pk[i];

		f->r->packs += p->on_disk;
		if (p->counted && !p->on_disk)
			problem(f, 1, "pack %" PRIu64 " is referenced but missing", p->id);
		else if (p->recorded && p->live != p->counted)
			problem(f, 0, "pack %" PRIu64 ": accounting says %" PRIu64 " live bytes, chunks say %" PRIu64,
				p->id, p->live, p->counted);
		else if (!p->recorded && p->counted)
			problem(f, 0, "pack %" PRIu64 ": no accounting record", p->id);
	}
}

/* ---- pass 5: freshness, against the integrity tree ---- */

static void note_stale(void *ctx, uint64_t ino, enum index_stale what)
{
	struct fsck *f = ctx;
	struct fk_stale st = { ino, what };

	PUSH(f, stale, nstale, capstale, st);
}

static int check_fresh(struct fsck *f)
{
	char path[PATH_MAX];
	long n = index_tree_verify(f->txn, &f->root, note_stale, f);

	if (n == -ENOENT)
		return 0;	/* a format-1 store opened read-only: no tree yet */
	if (n < 0)
		return (int)n;
	for (size_t i = 0; i < f->nstale; i++) {
		struct fk_stale *st = &f->stale[i];
		struct fk_inode *fi = find_inode(f, st->ino);
		int dir = fi && !(fi->flags & F_BAD_RECORD) && S_ISDIR(fi->mode);

		if (st->what == INDEX_STALE_NODE) {
			problem(f, 0, "the index's integrity tree: %s", index_stale_name(st->what, 0, 0));
			continue;
		}
		if (st->ino == 0) {
			problem(f, 1, "the volume: %s", index_stale_name(st->what, 0, 0));
			continue;
		}
		path_of(f, st->ino, path, sizeof(path));
		problem(f, 1, "%s (inode %" PRIu64 "): %s", path, st->ino,
			index_stale_name(st->what, st->ino, dir));
	}
	return 0;
}

/* ---- repair ---- */

static int find_or_make_lost_found(struct index_txn *txn, struct fsck *f, uint64_t *out)
{
	struct mv_attr root, lf;
	uint64_t ino, next;
	uint8_t type;
	struct timespec now;
	int rc;

	rc = index_dirent_get(txn, INDEX_ROOT_INO, "lost+found", 10, &ino, &type);
	if (rc == 0) {
		*out = ino;
		return 0;
	}
	if ((rc = index_inode_get(txn, INDEX_ROOT_INO, &root)) < 0)
		return rc;
	if ((rc = index_meta_get(txn, "next_ino", &next)) < 0)
		return rc;
	clock_gettime(CLOCK_REALTIME, &now);
	memset(&lf, 0, sizeof(lf));
	lf.ino = next;
	lf.mode = S_IFDIR | 0700;
	lf.nlink = 2;
	lf.size = 4096;
	lf.blocks = 8;
	lf.parent = INDEX_ROOT_INO;
	lf.atime_s = lf.mtime_s = lf.ctime_s = now.tv_sec;
	if ((rc = index_meta_put(txn, "next_ino", next + 1)) < 0 ||
	    (rc = index_inode_put(txn, &lf)) < 0 ||
	    (rc = index_dirent_put(txn, INDEX_ROOT_INO, "lost+found", 10, lf.ino, DT_DIR)) < 0)
		return rc;
	root.nlink++;
	if ((rc = index_inode_put(txn, &root)) < 0)
		return rc;
	(void)f;
	*out = lf.ino;
	return 0;
}

/* The scan counted a freed orphan's chunks as live: take them back out, or
 * the accounting step below would restore what the purge just released. */
static int uncount_chunk(void *ctx, uint64_t ino, uint64_t idx, const struct chunk_rec *c)
{
	struct fk_pack *pk = find_pack(ctx, c->pack, 0);

	(void)ino;
	(void)idx;
	if (pk)
		pk->counted -= pk->counted < c->len ? pk->counted : c->len;
	return 0;
}

static int free_inode_txn(struct fsck *f, struct index_txn *txn, uint64_t ino)
{
	struct mv_attr a;
	int rc = index_inode_get(txn, ino, &a);

	if (rc == 0 && a.nlink > 0) {
		/* linked after all: only the mark is stale.  A failed delete
		 * breaks the transaction, so its error must not be hidden */
		rc = index_orphan_del(txn, ino);
		return rc == -ENOENT ? 0 : rc;
	}
	/* damaged chunk records went by raw key above (f->del); one found
	 * still must not keep the inode's other records */
	if ((rc = index_chunk_iter(txn, ino, 0, uncount_chunk, f)) < 0 && rc != -EIO)
		return rc;
	rc = index_inode_purge(txn, ino);
	return rc == -EIO ? 0 : rc;
}

/* drop every entry naming ino (its records go or move to lost+found) */
static int unlink_everywhere(struct fsck *f, struct index_txn *txn, uint64_t ino)
{
	for (size_t i = 0; i < f->nde; i++) {
		int rc;

		if (f->de[i].child != ino)
			continue;
		rc = index_raw_del(txn, INDEX_DB_DIRENT, f->de[i].key, sizeof(f->de[i].key));
		if (rc < 0 && rc != -ENOENT)
			return rc;
	}
	return 0;
}

/*
 * What cannot be verified is never served as it was: a file whose
 * record, chunks or xattrs do not add up is quarantined (flagged: its data
 * reads as EIO; closed to all but its owner; moved to lost+found), an
 * inode the tree never knew (a resurrected or planted file) is removed,
 * a directory keeps only its verifiable entries and loses its xattrs,
 * and the volume's counters move past everything in the store.  The
 * tree is rebuilt over what remains afterwards.
 */
static int repair_stale(struct fsck *f, struct index_txn *txn)
{
	uint64_t max_ino = f->nin ? f->in[f->nin - 1].ino : INDEX_ROOT_INO, v, max_pack = 0;
	int rc;

	for (size_t i = 0; i < f->nstale; i++) {
		struct fk_stale *st = &f->stale[i];
		struct fk_inode *fi = find_inode(f, st->ino);
		struct mv_attr a;

		if (st->ino == 0 && st->what == INDEX_STALE_SMALL) {
			for (size_t p = 0; p < f->npk; p++)
				if (f->pk[p].id > max_pack)
					max_pack = f->pk[p].id;
			if ((rc = index_meta_get(txn, "next_ino", &v)) < 0 || v <= max_ino)
				v = max_ino + 1;
			if ((rc = index_meta_put(txn, "next_ino", v)) < 0)
				return rc;
			if ((rc = index_meta_get(txn, "epoch", &v)) < 0 || v < f->max_epoch)
				v = f->max_epoch;
			if ((rc = index_meta_put(txn, "epoch", v + 1)) < 0)
				return rc;
			if ((rc = index_meta_get(txn, "max_pack", &v)) < 0 || v < max_pack)
				v = max_pack;
			if ((rc = index_meta_put(txn, "max_pack", v)) < 0)
				return rc;
			f->r->repaired++;
			continue;
		}
		if (st->ino == 0 || !fi || st->what == INDEX_STALE_NODE || st->what == INDEX_STALE_MISSING)
			continue;	/* accounting, dangling entries: the steps below */
		if (st->what == INDEX_STALE_UNKNOWN) {
			if ((rc = unlink_everywhere(f, txn, st->ino)) < 0 ||
			    ((rc = index_inode_purge(txn, st->ino)) < 0 && rc != -EIO))
				return rc;
			fi->flags |= F_QUARANTINED;	/* nothing more to do for it */
			f->r->repaired++;
			continue;
		}
		if (fi->flags & F_QUARANTINED)
			continue;
		if (index_inode_get(txn, st->ino, &a) < 0)
			continue;	/* failed authentication: deleted above */
		if (S_ISDIR(a.mode) && st->what == INDEX_STALE_SMALL) {
			if ((rc = index_xattr_del_all(txn, st->ino)) < 0)
				return rc;
			f->r->repaired++;
			continue;
		}
		if ((S_ISDIR(a.mode) && st->what == INDEX_STALE_BULK) || st->ino == INDEX_ROOT_INO)
			continue;	/* kept as found, minus the entries removed above */
		a.flags |= INDEX_FLAG_QUARANTINED;
		a.mode &= ~(mode_t)(S_IRWXG | S_IRWXO);
		if ((rc = index_inode_put(txn, &a)) < 0 || (rc = unlink_everywhere(f, txn, st->ino)) < 0)
			return rc;
		fi->flags |= F_QUARANTINED;
		if (PUSH(f, lost, nlost, caplost, st->ino) < 0)
			return -ENOMEM;
		f->r->repaired++;
	}
	return 0;
}

static int do_repair(struct index_txn *txn, void *arg)
{
	struct fsck *f = arg;
	int rc;

	if ((rc = repair_stale(f, txn)) < 0)
		return rc;

	for (size_t i = 0; i < f->ndel; i++) {
		rc = index_raw_del(txn, f->del[i].db, f->del[i].key, f->del[i].klen);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		f->r->repaired++;
	}
	for (size_t i = 0; i < f->norph; i++) {
		if ((rc = free_inode_txn(f, txn, f->orphans[i])) < 0)
			return rc;
		f->r->repaired++;
	}
	for (size_t i = 0; i < f->nfix; i++) {
		struct fk_inode *fi = find_inode(f, f->fix_nlink[i]);
		struct mv_attr a;

		if (!fi || index_inode_get(txn, fi->ino, &a) < 0)
			continue;
		a.nlink = S_ISDIR(a.mode) ? 2 + fi->subdirs : fi->links;
		if ((rc = index_inode_put(txn, &a)) < 0)
			return rc;
		f->r->repaired++;
	}
	if (f->nlost) {
		uint64_t lf;

		if ((rc = find_or_make_lost_found(txn, f, &lf)) < 0)
			return rc;
		for (size_t i = 0; i < f->nlost; i++) {
			struct mv_attr a, lfa;
			char name[32];

			if (index_inode_get(txn, f->lost[i], &a) < 0)
				continue;
			snprintf(name, sizeof(name), "#%" PRIu64, a.ino);
			if ((rc = index_dirent_put(txn, lf, name, strlen(name), a.ino,
						   (uint8_t)((a.mode & S_IFMT) >> 12))) < 0)
				return rc;
			if (S_ISDIR(a.mode)) {
				a.parent = lf;
				a.nlink = 2;	/* its own subdirectories are counted below it */
				if (index_inode_get(txn, lf, &lfa) == 0) {
					lfa.nlink++;
					if ((rc = index_inode_put(txn, &lfa)) < 0)
						return rc;
				}
			} else {
				a.nlink = 1;
			}
			if ((rc = index_inode_put(txn, &a)) < 0)
				return rc;
			f->r->repaired++;
		}
	}
	/* accounting from what the chunks say */
	for (size_t i = 0; i < f->npk; i++) {
		struct fk_pack *p = &f->pk[i];
		struct pack_rec cur = { 0 };

		if (!p->counted) {
			/* nothing references it: the file goes after the commit */
			if (p->recorded && (rc = index_pack_del(txn, p->id)) < 0 && rc != -ENOENT)
				return rc;
			continue;
		}
		index_pack_get(txn, p->id, &cur);
		if (cur.live_bytes != p->counted || !p->recorded) {
			rc = index_pack_account(txn, p->id, (int64_t)p->counted - (int64_t)cur.live_bytes,
						p->recorded ? 0 : (int64_t)p->counted);
			if (rc < 0)
				return rc;
			f->r->repaired++;
		}
	}
	return 0;
}

int fsck_run(struct vault *v, int repair, FILE *out, FILE *progress_out, struct fsck_report *r)
{
	struct fsck f = { .v = v, .out = out, .r = r, .repair = repair };
	uint64_t nchunks = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	f.pt = malloc(v->conf.chunk_size);
	f.ct = malloc(v->conf.chunk_size + 64);
	if (!f.pt || !f.ct) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = index_read_begin(v->ix, &f.txn)) < 0)
		goto out;
	if ((rc = index_walk(f.txn, INDEX_DB_INODE, walk_inode, &f)) < 0)
		goto out;
	if (!find_inode(&f, INDEX_ROOT_INO))
		problem(&f, 1, "the root directory record is missing");
	if ((rc = index_walk(f.txn, INDEX_DB_DIRENT, walk_dirent, &f)) < 0)
		goto out;
	if ((rc = index_walk(f.txn, INDEX_DB_PACK, walk_pack, &f)) < 0)
		goto out;
	if ((rc = index_walk(f.txn, INDEX_DB_ORPHAN, walk_orphan, &f)) < 0)
		goto out;
	scan_pack_files(&f);
	index_count(f.txn, INDEX_DB_CHUNK, &nchunks);
	progress_start(&f.prog, progress_out, "checking chunks", nchunks);
	rc = index_walk(f.txn, INDEX_DB_CHUNK, walk_chunk, &f);
	progress_end(&f.prog);
	if (rc < 0)
		goto out;
	if ((rc = index_walk(f.txn, INDEX_DB_XATTR, walk_xattr, &f)) < 0)
		goto out;
	if ((rc = check_tree(&f)) < 0)
		goto out;
	check_packs(&f);
	if ((rc = check_fresh(&f)) < 0)
		goto out;
	index_read_end(f.txn);
	f.txn = NULL;
	if (repair && (f.ndel || f.norph || f.nfix || f.nlost || f.npk || f.nstale)) {
		/* repairs read records the tree may refuse; it is rebuilt
		 * over what they leave */
		index_tree_detach(v->ix);
		if ((rc = index_write(v->ix, do_repair, &f)) < 0 || (rc = index_sync(v->ix)) < 0 ||
		    (rc = index_tree_rebuild(v->ix)) < 0)
			goto out;
		for (size_t i = 0; i < f.npk; i++) {
			if (f.pk[i].counted == 0 && f.pk[i].on_disk &&
			    blobstore_pack_remove(v->bs, f.pk[i].id) == 0) {
				fprintf(out, "removed pack %" PRIu64 ": no live data\n", f.pk[i].id);
				r->packs--;
			}
		}
	}
out:
	index_read_end(f.txn);
	aead_free(f.cur_aead);
	for (size_t i = 0; i < f.nin; i++)
		free(f.in[i].name);
	free(f.in);
	free(f.de);
	free(f.pk);
	free(f.del);
	free(f.orphans);
	free(f.fix_nlink);
	free(f.lost);
	free(f.stale);
	free(f.pt);
	free(f.ct);
	return rc;
}
