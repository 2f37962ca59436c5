/*
 * index_check: the structural check of an untrusted data.mdb (see
 * include/store/index_check.h for what and why).
 *
 * Two passes, both in a confined child:
 *   1. index_check_image: our own reading of LMDB 0.9's on-disk format
 *      (mdb.c: MDB_page, MDB_node, MDB_meta, MDB_db; 64-bit, little
 *      endian, PAGEBASE 0), bounds-checked everywhere, every page reached
 *      at most once.  It is what makes LMDB safe to run afterwards: LMDB
 *      follows page numbers and node offsets without looking.
 *   2. LMDB itself opens the environment read-only and walks every key
 *      and value of the free, main and named databases with cursors, and
 *      mdb_stat's counts must equal the walk's.
 * The parent never maps the file: it forks, waits with a deadline, and
 * reads one line back through a pipe.
 */
#include "store/index_check.h"
#include "store/layout.h"
#include "util/why.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <lmdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define CHECK_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHECK_SANITIZED 1
#endif
#endif
#ifndef CHECK_SANITIZED
#define CHECK_SANITIZED 0
#endif

/* ---- LMDB 0.9 on-disk format (libraries/liblmdb/mdb.c) ---- */

#define PAGEHDRSZ 16u		/* pgno(8) pad(2) flags(2) lower(2) upper(2) */
#define NODESIZE 8u		/* lo(2) hi(2) flags(2) ksize(2) */
#define P_BRANCH 0x01
#define P_LEAF 0x02
#define P_OVERFLOW 0x04
#define P_META 0x08
#define F_BIGDATA 0x01
#define F_SUBDATA 0x02
#define LMDB_MAGIC 0xBEEFC0DEu
#define LMDB_DATA_VERSION 1u
#define PGNO_INVALID (~(uint64_t)0)
#define NUM_METAS 2u
#define KEY_MAX 511u		/* MDB_MAXKEYSIZE */
#define DEPTH_MAX 32u		/* CURSOR_STACK */
#define DBREC_SIZE 48u		/* MDB_db */
#define META_SIZE 136u		/* MDB_meta, after the page header */
#define PSIZE_MIN 512u
#define PSIZE_MAX 32768u	/* 16-bit node offsets */
#define NAMED_MAX 1000u		/* named databases we accept (medvault has 7) */
#define FLAG_INTEGERKEY 0x08	/* MDB_INTEGERKEY */
#define FLAG_NOSUBDIR 0x4000	/* MDB_NOSUBDIR, kept in the free DB's flags */

static uint16_t ld16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t ld32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t ld64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* MDB_db */
struct dbrec {
	uint32_t pad;
	uint16_t flags, depth;
	uint64_t branch, leaf, overflow, entries, root;
};

static void dbrec_load(struct dbrec *d, const uint8_t *p)
{
	d->pad = ld32(p);
	d->flags = ld16(p + 4);
	d->depth = ld16(p + 6);
	d->branch = ld64(p + 8);
	d->leaf = ld64(p + 16);
	d->overflow = ld64(p + 24);
	d->entries = ld64(p + 32);
	d->root = ld64(p + 40);
}

/* MDB_meta, as found at PAGEHDRSZ in pages 0 and 1 */
struct meta {
	uint32_t magic, version;
	uint64_t address, mapsize;
	struct dbrec dbs[2];	/* free, main */
	uint64_t last_pg, txnid;
};

static void meta_load(struct meta *m, const uint8_t *p)
{
	m->magic = ld32(p);
	m->version = ld32(p + 4);
	m->address = ld64(p + 8);
	m->mapsize = ld64(p + 16);
	dbrec_load(&m->dbs[0], p + 24);
	dbrec_load(&m->dbs[1], p + 72);
	m->last_pg = ld64(p + 120);
	m->txnid = ld64(p + 128);
}

enum tree_kind { TREE_FREE, TREE_MAIN, TREE_NAMED };

struct tree {
	enum tree_kind kind;
	char name[40];		/* printable, for messages */
	struct dbrec rec;	/* what the database record says */
	uint64_t branch, leaf, overflow, entries;	/* what the walk found */
};

struct img {
	const uint8_t *p;
	size_t len;
	uint32_t psize;
	uint64_t last_pg, txnid;
	uint8_t *seen;		/* one bit per page */
	uint64_t named;		/* named databases met */
	char *why;
	size_t whylen;
};

struct keyref {
	const uint8_t *p;
	size_t n;
};

__attribute__((format(printf, 2, 3)))
static int damaged(struct img *im, const char *fmt, ...)
{
	va_list ap;

	if (im->why && im->whylen) {
		va_start(ap, fmt);
		vsnprintf(im->why, im->whylen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

/* a database name from the file, printable whatever its bytes */
static void name_print(char *out, size_t cap, const uint8_t *p, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 1 < cap; i++)
		out[o++] = (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
			   (p[i] >= '0' && p[i] <= '9') || p[i] == '_' || p[i] == '-' || p[i] == '.'
			   ? (char)p[i] : '?';
	out[o] = '\0';
}

/* The key order of the tree: native size_t for the free DB (mdb_cmp_long),
 * shorter-first memcmp otherwise (mdb_cmp_memn). */
static int key_cmp(const struct tree *t, const struct keyref *a, const struct keyref *b)
{
	if (t->kind == TREE_FREE) {
		uint64_t x = ld64(a->p), y = ld64(b->p);

		return x < y ? -1 : x > y;
	}
	{
		size_t n = a->n < b->n ? a->n : b->n;
		int c = n ? memcmp(a->p, b->p, n) : 0;

		if (c)
			return c;
		return a->n < b->n ? -1 : a->n > b->n;
	}
}

/* Claim page pgno for t: in range, never claimed before. */
static int take(struct img *im, uint64_t pgno, const char *tname, const char *what)
{
	if (pgno < NUM_METAS || pgno > im->last_pg)
		return damaged(im, "%s database: %s page %llu is outside pages 2..%llu", tname, what,
			       (unsigned long long)pgno, (unsigned long long)im->last_pg);
	if (im->seen[pgno >> 3] & (1u << (pgno & 7)))
		return damaged(im, "%s database: %s page %llu is reached a second time", tname, what,
			       (unsigned long long)pgno);
	im->seen[pgno >> 3] |= (uint8_t)(1u << (pgno & 7));
	return 0;
}

static const uint8_t *page_at(const struct img *im, uint64_t pgno)
{
	return im->p + (size_t)pgno * im->psize;
}

static int walk_tree(struct img *im, struct tree *t);

/* Free DB values: an IDL, count then that many page numbers, descending;
 * the pages are claimed, so none is also in use. */
static int check_idl(struct img *im, const struct tree *t, const uint8_t *d, uint64_t dsize,
		     uint64_t key)
{
	uint64_t n, prev = PGNO_INVALID;
	int rc;

	if (dsize < 8 || dsize % 8)
		return damaged(im, "free database: list of txn %llu has %llu bytes",
			       (unsigned long long)key, (unsigned long long)dsize);
	n = ld64(d);
	if (n > dsize / 8 - 1)
		return damaged(im, "free database: list of txn %llu claims %llu pages in %llu bytes",
			       (unsigned long long)key, (unsigned long long)n, (unsigned long long)dsize);
	for (uint64_t i = 1; i <= n; i++) {
		uint64_t pg = ld64(d + 8 * i);

		if (pg >= prev)
			return damaged(im, "free database: list of txn %llu is not in descending order",
				       (unsigned long long)key);
		if ((rc = take(im, pg, t->name, "free")) < 0)
			return rc;
		prev = pg;
	}
	return 0;
}

/* One leaf node's value: inline or on its overflow pages; then what the
 * tree's kind says the value is. */
static int check_value(struct img *im, struct tree *t, const uint8_t *pg, uint64_t pgno,
		       unsigned i, const uint8_t *node, const struct keyref *key)
{
	uint16_t flags = ld16(node + 4);
	uint64_t dsize = (uint64_t)ld16(node) | (uint64_t)ld16(node + 2) << 16;
	const uint8_t *d = node + NODESIZE + key->n;
	int rc;

	(void)pg;
	if (flags & F_BIGDATA) {
		uint64_t ov = ld64(d), pages, want;
		const uint8_t *op;

		if (flags != F_BIGDATA || t->kind == TREE_MAIN)
			return damaged(im, "%s database: page %llu node %u has flags 0x%x", t->name,
				       (unsigned long long)pgno, i, flags);
		if (ov < NUM_METAS || ov > im->last_pg)
			return damaged(im, "%s database: page %llu node %u: overflow page %llu is out of range",
				       t->name, (unsigned long long)pgno, i, (unsigned long long)ov);
		op = page_at(im, ov);
		pages = ld32(op + 12);
		want = (PAGEHDRSZ - 1 + dsize) / im->psize + 1;	/* OVPAGES */
		if (ld16(op + 10) != P_OVERFLOW || ld64(op) != ov || pages != want ||
		    pages - 1 > im->last_pg - ov)
			return damaged(im, "%s database: overflow page %llu (of page %llu node %u) is not a run of %llu pages",
				       t->name, (unsigned long long)ov, (unsigned long long)pgno, i,
				       (unsigned long long)want);
		for (uint64_t k = 0; k < pages; k++)
			if ((rc = take(im, ov + k, t->name, "overflow")) < 0)
				return rc;
		t->overflow += pages;
		d = op + PAGEHDRSZ;
	} else if (t->kind == TREE_MAIN ? flags != F_SUBDATA : flags != 0) {
		return damaged(im, "%s database: page %llu node %u has flags 0x%x", t->name,
			       (unsigned long long)pgno, i, flags);
	}

	if (t->kind == TREE_FREE) {
		if (key->n != 8 || ld64(key->p) == 0 || ld64(key->p) > im->txnid)
			return damaged(im, "free database: page %llu node %u: bad transaction key",
				       (unsigned long long)pgno, i);
		return check_idl(im, t, d, dsize, ld64(key->p));
	}
	if (t->kind == TREE_MAIN) {
		struct tree sub = { .kind = TREE_NAMED };

		if (dsize != DBREC_SIZE || key->n == 0 || memchr(key->p, 0, key->n))
			return damaged(im, "main database: page %llu node %u is not a database record",
				       (unsigned long long)pgno, i);
		if (++im->named > NAMED_MAX)
			return damaged(im, "main database: more than %u databases", NAMED_MAX);
		name_print(sub.name, sizeof(sub.name), key->p, key->n);
		dbrec_load(&sub.rec, d);
		if (sub.rec.pad != 0 || sub.rec.flags != 0)
			return damaged(im, "%s database: record has pad %u flags 0x%x", sub.name,
				       sub.rec.pad, sub.rec.flags);
		return walk_tree(im, &sub);
	}
	return 0;
}

/*
 * Page pgno of t at level (1 = root), whose keys must lie in [lo, hi)
 * (NULL: unbounded).  Recursion is bounded by DEPTH_MAX per tree, and by
 * the main database's depth plus a named one's.
 */
static int walk_page(struct img *im, struct tree *t, uint64_t pgno, unsigned level,
		     const struct keyref *lo, const struct keyref *hi)
{
	const uint8_t *pg;
	uint16_t flags, lower, upper;
	unsigned n, i;
	uint64_t packed = 0;
	struct keyref prev = { NULL, 0 };
	int rc, leaf;

	if ((rc = take(im, pgno, t->name, level == 1 ? "root" : "tree")) < 0)
		return rc;
	pg = page_at(im, pgno);
	flags = ld16(pg + 10);
	lower = ld16(pg + 12);
	upper = ld16(pg + 14);
	if (ld64(pg) != pgno)
		return damaged(im, "%s database: page %llu says it is page %llu", t->name,
			       (unsigned long long)pgno, (unsigned long long)ld64(pg));
	if (flags != P_BRANCH && flags != P_LEAF)
		return damaged(im, "%s database: page %llu has flags 0x%x, not a branch or leaf",
			       t->name, (unsigned long long)pgno, flags);
	leaf = flags == P_LEAF;
	if (leaf ? level != t->rec.depth : level >= t->rec.depth)
		return damaged(im, "%s database: page %llu is a %s at level %u of %u", t->name,
			       (unsigned long long)pgno, leaf ? "leaf" : "branch", level, t->rec.depth);
	if (lower < PAGEHDRSZ || (lower - PAGEHDRSZ) % 2 || lower > upper || upper > im->psize ||
	    lower == PAGEHDRSZ)
		return damaged(im, "%s database: page %llu has bounds %u..%u", t->name,
			       (unsigned long long)pgno, lower, upper);
	n = (lower - PAGEHDRSZ) / 2;
	if (leaf)
		t->leaf++;
	else
		t->branch++;

	for (i = 0; i < n; i++) {
		unsigned off = ld16(pg + PAGEHDRSZ + 2 * i);
		const uint8_t *node;
		uint64_t size;
		struct keyref key;

		if (off < upper || off % 2 || off + NODESIZE > im->psize)
			return damaged(im, "%s database: page %llu node %u at offset %u is outside %u..%u",
				       t->name, (unsigned long long)pgno, i, off, upper, im->psize);
		node = pg + off;
		key.p = node + NODESIZE;
		key.n = ld16(node + 6);
		if (key.n > KEY_MAX)
			return damaged(im, "%s database: page %llu node %u has a %zu-byte key", t->name,
				       (unsigned long long)pgno, i, key.n);
		if (leaf) {
			uint16_t nf = ld16(node + 4);

			size = NODESIZE + key.n + ((nf & F_BIGDATA) ? 8 :
				((uint64_t)ld16(node) | (uint64_t)ld16(node + 2) << 16));
		} else {
			size = NODESIZE + key.n;
		}
		if (off + size > im->psize)
			return damaged(im, "%s database: page %llu node %u runs past the page", t->name,
				       (unsigned long long)pgno, i);
		packed += (size + 1) & ~(uint64_t)1;
		/* the key order; a branch's first key is not a key (LMDB skips it) */
		if (leaf || i > 0) {
			if (t->kind == TREE_FREE && key.n != 8)
				return damaged(im, "free database: page %llu node %u has a %zu-byte key",
					       (unsigned long long)pgno, i, key.n);
			if ((prev.p && key_cmp(t, &prev, &key) >= 0) ||
			    (lo && key_cmp(t, &key, lo) < 0) || (hi && key_cmp(t, &key, hi) >= 0))
				return damaged(im, "%s database: page %llu node %u is out of key order",
					       t->name, (unsigned long long)pgno, i);
			prev = key;
		}
	}
	if (packed != (uint64_t)im->psize - upper)
		return damaged(im, "%s database: page %llu holds %llu bytes of nodes in %u", t->name,
			       (unsigned long long)pgno, (unsigned long long)packed,
			       im->psize - upper);

	for (i = 0; i < n; i++) {
		const uint8_t *node = pg + ld16(pg + PAGEHDRSZ + 2 * i);
		struct keyref key = { node + NODESIZE, ld16(node + 6) };

		if (leaf) {
			t->entries++;
			if ((rc = check_value(im, t, pg, pgno, i, node, &key)) < 0)
				return rc;
		} else {
			uint64_t child = (uint64_t)ld16(node) | (uint64_t)ld16(node + 2) << 16 |
					 (uint64_t)ld16(node + 4) << 32;
			const uint8_t *nx = i + 1 < n ? pg + ld16(pg + PAGEHDRSZ + 2 * (i + 1)) : NULL;
			struct keyref clo = key, chi;

			if (nx) {
				chi.p = nx + NODESIZE;
				chi.n = ld16(nx + 6);
			}
			if ((rc = walk_page(im, t, child, level + 1, i ? &clo : lo, nx ? &chi : hi)) < 0)
				return rc;
		}
	}
	return 0;
}

/* A database from its record: empty, or a tree whose counts match. */
static int walk_tree(struct img *im, struct tree *t)
{
	const struct dbrec *r = &t->rec;
	int rc;

	if (r->root == PGNO_INVALID) {
		if (r->depth || r->branch || r->leaf || r->overflow || r->entries)
			return damaged(im, "%s database: empty, but its record counts pages or entries",
				       t->name);
		return 0;
	}
	if (r->depth < 1 || r->depth > DEPTH_MAX)
		return damaged(im, "%s database: depth %u", t->name, r->depth);
	if ((rc = walk_page(im, t, r->root, 1, NULL, NULL)) < 0)
		return rc;
	if (t->branch != r->branch || t->leaf != r->leaf || t->overflow != r->overflow ||
	    t->entries != r->entries)
		return damaged(im, "%s database: record says %llu/%llu/%llu pages and %llu entries, found %llu/%llu/%llu and %llu",
			       t->name, (unsigned long long)r->branch, (unsigned long long)r->leaf,
			       (unsigned long long)r->overflow, (unsigned long long)r->entries,
			       (unsigned long long)t->branch, (unsigned long long)t->leaf,
			       (unsigned long long)t->overflow, (unsigned long long)t->entries);
	return 0;
}

/* Read meta page i as LMDB's mdb_env_read_header does, checking more. */
static int meta_read(struct img *im, unsigned i, uint64_t off, struct meta *m)
{
	const uint8_t *pg;

	if (off > im->len || im->len - off < PAGEHDRSZ + META_SIZE)
		return damaged(im, "meta page %u is past the end of the file (%zu bytes)", i, im->len);
	pg = im->p + off;
	if (!(ld16(pg + 10) & P_META))
		return damaged(im, "page %u is not a meta page", i);
	meta_load(m, pg + PAGEHDRSZ);
	if (m->magic != LMDB_MAGIC || m->version != LMDB_DATA_VERSION)
		return damaged(im, "meta page %u has magic 0x%x version %u", i, m->magic, m->version);
	/* a commit rewrites only the databases, last page, txnid and map
	 * size of the older meta page: what else it holds becomes the newest
	 * meta's, so both are held to the same rules */
	if (m->address != 0)
		return damaged(im, "meta page %u asks for a fixed map address", i);
	if (m->dbs[0].pad < PSIZE_MIN || m->dbs[0].pad > PSIZE_MAX ||
	    (m->dbs[0].pad & (m->dbs[0].pad - 1)))
		return damaged(im, "meta page %u has page size %u", i, m->dbs[0].pad);
	return 0;
}

/* Both meta pages; *cur the one LMDB will use (the newest, or the one
 * that committed want_txnid).  Sets im's page size and bounds. */
static int img_meta(struct img *im, uint64_t want_txnid, struct meta *m, struct meta **cur)
{
	int rc;

	if ((rc = meta_read(im, 0, 0, &m[0])) < 0)
		return rc;
	/* mdb_env_read_header finds meta 1 one page (of meta 0's size) on */
	if ((rc = meta_read(im, 1, m[0].dbs[0].pad, &m[1])) < 0)
		return rc;
	if (m[1].dbs[0].pad != m[0].dbs[0].pad)
		return damaged(im, "the meta pages disagree on the page size (%u, %u)",
			       m[0].dbs[0].pad, m[1].dbs[0].pad);
	if (want_txnid)
		*cur = m[0].txnid == want_txnid ? &m[0] : m[1].txnid == want_txnid ? &m[1] : NULL;
	else	/* mdb_env_pick_meta */
		*cur = m[0].txnid < m[1].txnid ? &m[1] : &m[0];
	if (!*cur)
		return damaged(im, "no meta page names transaction %llu", (unsigned long long)want_txnid);
	im->psize = (*cur)->dbs[0].pad;
	im->last_pg = (*cur)->last_pg;
	im->txnid = (*cur)->txnid;
	if (im->last_pg < NUM_METAS - 1 || im->last_pg >= im->len / im->psize)
		return damaged(im, "the meta page says %llu pages, the file holds %zu",
			       (unsigned long long)im->last_pg + 1, im->len / im->psize);
	if (!((*cur)->dbs[0].flags & FLAG_INTEGERKEY) ||
	    ((*cur)->dbs[0].flags & ~(FLAG_INTEGERKEY | FLAG_NOSUBDIR)) || (*cur)->dbs[1].pad != 0 ||
	    (*cur)->dbs[1].flags != 0)
		return damaged(im, "the meta page has database flags 0x%x/0x%x",
			       (*cur)->dbs[0].flags, (*cur)->dbs[1].flags);
	return 0;
}

/* meta_only: just what mdb_env_open reads (img_meta) */
static int img_check(const uint8_t *img, size_t len, uint64_t want_txnid, int meta_only,
		     char *why, size_t whylen)
{
	struct img im = { .p = img, .len = len, .why = why, .whylen = whylen };
	struct meta m[NUM_METAS], *cur = NULL;
	struct tree free_t = { .kind = TREE_FREE, .name = "free" };
	struct tree main_t = { .kind = TREE_MAIN, .name = "main" };
	int rc;

	if (why && whylen)
		why[0] = '\0';
	if ((rc = img_meta(&im, want_txnid, m, &cur)) < 0 || meta_only)
		return rc;
	im.seen = calloc(1, (size_t)(im.last_pg / 8 + 1));
	if (!im.seen)
		return -ENOMEM;
	free_t.rec = cur->dbs[0];
	free_t.rec.pad = 0;	/* the page size lives there */
	main_t.rec = cur->dbs[1];
	if ((rc = walk_tree(&im, &free_t)) == 0)
		rc = walk_tree(&im, &main_t);
	free(im.seen);
	return rc;
}

int index_check_image(const uint8_t *img, size_t len, uint64_t want_txnid,
		      char *why, size_t whylen)
{
	return img_check(img, len, want_txnid, 0, why, whylen);
}

/* ---- the child ---- */

static void (*test_hook)(int stage);

void index_check_set_test_hook(void (*fn)(int stage))
{
	test_hook = fn;
}

/* the answer line: "OK", "D <damage>" or "E <errno> <what>" */
__attribute__((format(printf, 3, 4)))
static void child_say(int fd, char kind, const char *fmt, ...)
{
	char line[512];
	int n = 0;
	va_list ap;

	if (kind != 'O')
		n = snprintf(line, sizeof(line), "%c ", kind);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(fd, line, (size_t)n) < 0)
		_exit(4);
}

struct confine {
	int drop;		/* running as root: become uid/gid */
	uid_t uid;
	gid_t gid;
	unsigned cpu_s;
	uint64_t as_bytes;	/* more address space allowed; 0: no limit
				 * (sanitizers reserve terabytes) */
};

static void child_confine(int *wfd)
{
	struct rlimit core = { 0, 0 };
	sigset_t all;
	int null;

	/* the crash signals must kill, not run a handler inherited from the
	 * caller (a sanitizer's or libFuzzer's would report a "crash" the
	 * parent already handles) */
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGSYS,
				    SIGXCPU, SIGTRAP, SIGPIPE, SIGTERM, SIGINT, SIGALRM };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	setrlimit(RLIMIT_CORE, &core);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	/* the answer pipe becomes fd 3; 0 and 1 (and 2 unless a sanitizer
	 * wants to report there) go to /dev/null; every other fd is closed */
	if (*wfd != 3) {
		if (dup2(*wfd, 3) < 0)
			_exit(5);
		*wfd = 3;
	}
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		if (!CHECK_SANITIZED)
			dup2(null, 2);
	}
	if (syscall(SYS_close_range, 4u, ~0u, 0) < 0) {
		long max = sysconf(_SC_OPEN_MAX);

		for (long fd = 4; fd < (max > 0 ? max : 1024); fd++)
			close((int)fd);
	}
}

/* The address space this process already has (inherited from the
 * caller: a daemon's pools, a fuzzer's arenas), or 0 if unknown. */
static uint64_t vsize_now(void)
{
	unsigned long long pages = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (!f)
		return 0;
	if (fscanf(f, "%llu", &pages) != 1)
		pages = 0;
	fclose(f);
	return (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void child_limit(const struct confine *c)
{
	struct rlimit cpu = { c->cpu_s, c->cpu_s + 1 };
	uint64_t have;

	setrlimit(RLIMIT_CPU, &cpu);
	/* on top of what the fork brought along, which is not ours to cut */
	if (c->as_bytes && (have = vsize_now()) != 0) {
		struct rlimit as = { have + c->as_bytes, have + c->as_bytes };

		setrlimit(RLIMIT_AS, &as);
	}
}

static int child_drop(const struct confine *c)
{
	if (!c->drop)
		return 0;
	if (setgroups(0, NULL) < 0 || setresgid(c->gid, c->gid, c->gid) < 0 ||
	    setresuid(c->uid, c->uid, c->uid) < 0)
		return -errno;
	if (getuid() == 0 || geteuid() == 0)
		return -EPERM;
	return 0;
}

/* every byte of v, so that a value LMDB points out of the map faults here */
static uint8_t touch(const MDB_val *v, uint8_t acc)
{
	const uint8_t *p = v->mv_data;

	for (size_t i = 0; i < v->mv_size; i++)
		acc ^= p[i];
	return acc;
}

/* Walk dbi with a cursor; its entry count must be mdb_stat's.  -EBADMSG */
static int lmdb_walk_dbi(MDB_txn *txn, MDB_dbi dbi, const char *name, int wfd,
			 volatile uint8_t *sink)
{
	MDB_cursor *c = NULL;
	MDB_val k, v;
	MDB_stat st;
	uint64_t n = 0;
	uint8_t acc = 0;
	int rc;

	if ((rc = mdb_cursor_open(txn, dbi, &c)) != 0) {
		child_say(wfd, 'D', "LMDB cannot open a cursor on the %s database: %s", name,
			  mdb_strerror(rc));
		return -EBADMSG;
	}
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
		acc = touch(&v, touch(&k, acc));
		n++;
	}
	mdb_cursor_close(c);
	*sink ^= acc;
	if (rc != MDB_NOTFOUND) {
		child_say(wfd, 'D', "LMDB stopped walking the %s database: %s", name, mdb_strerror(rc));
		return -EBADMSG;
	}
	if ((rc = mdb_stat(txn, dbi, &st)) != 0 || st.ms_entries != n) {
		child_say(wfd, 'D', "the %s database holds %llu entries, its record says %llu", name,
			  (unsigned long long)n, (unsigned long long)(rc ? 0 : st.ms_entries));
		return -EBADMSG;
	}
	return 0;
}

/* The free DB, the main DB and every database the main DB names. */
static int lmdb_walk(MDB_txn *txn, int wfd)
{
	static volatile uint8_t sink;
	MDB_cursor *c = NULL;
	MDB_dbi main_dbi;
	MDB_val k, v;
	int rc;

	if (lmdb_walk_dbi(txn, 0, "free", wfd, &sink) < 0)
		return -EBADMSG;
	if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) != 0) {
		child_say(wfd, 'D', "LMDB cannot open the main database: %s", mdb_strerror(rc));
		return -EBADMSG;
	}
	if (lmdb_walk_dbi(txn, main_dbi, "main", wfd, &sink) < 0)
		return -EBADMSG;
	if ((rc = mdb_cursor_open(txn, main_dbi, &c)) != 0) {
		child_say(wfd, 'D', "LMDB cannot open a cursor on the main database: %s", mdb_strerror(rc));
		return -EBADMSG;
	}
	while ((rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) == 0) {
		char name[KEY_MAX + 1], shown[40];
		MDB_dbi dbi;
		int orc;

		if (k.mv_size == 0 || k.mv_size > KEY_MAX || memchr(k.mv_data, 0, k.mv_size)) {
			child_say(wfd, 'D', "the main database holds a key that names no database");
			rc = -EBADMSG;
			break;
		}
		memcpy(name, k.mv_data, k.mv_size);
		name[k.mv_size] = '\0';
		name_print(shown, sizeof(shown), k.mv_data, k.mv_size);
		if ((orc = mdb_dbi_open(txn, name, 0, &dbi)) != 0) {
			child_say(wfd, 'D', "LMDB cannot open the %s database: %s", shown,
				  mdb_strerror(orc));
			rc = -EBADMSG;
			break;
		}
		if (lmdb_walk_dbi(txn, dbi, shown, wfd, &sink) < 0) {
			rc = -EBADMSG;
			break;
		}
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc > 0)
		child_say(wfd, 'D', "LMDB stopped walking the main database: %s", mdb_strerror(rc));
	return -EBADMSG;
}

/* Map the whole of data.mdb as it is now; exits on failure. */
static const uint8_t *child_map(int fd, int wfd, size_t *len)
{
	struct stat st;
	void *img;

	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		child_say(wfd, 'D', "it is not a regular file");
		_exit(1);
	}
	if (st.st_size < (off_t)(2 * PSIZE_MIN)) {
		child_say(wfd, 'D', "it holds only %lld bytes", (long long)st.st_size);
		_exit(1);
	}
	img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (img == MAP_FAILED) {
		child_say(wfd, 'E', "%d cannot map it", errno);
		_exit(2);
	}
	*len = (size_t)st.st_size;
	return img;
}

/* LMDB's open or first read transaction failed */
static void child_lmdb_failed(int wfd, int rc)
{
	int bad = rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_CORRUPTED ||
		  rc == MDB_PAGE_NOTFOUND;

	if (bad)
		child_say(wfd, 'D', "LMDB cannot open it: %s", mdb_strerror(rc));
	else
		child_say(wfd, 'E', "%d LMDB: %s", rc > 0 && rc < 4096 ? rc : EIO, mdb_strerror(rc));
	_exit(bad ? 1 : 2);
}

/* Everything the child does; never returns. */
static void child_run(const char *dir, int wfd, const struct confine *cf, int flags)
{
	char path[PATH_MAX], why[256];
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	const uint8_t *img = NULL;
	size_t len = 0;
	int fd, rc, live = flags & INDEX_CHECK_LIVE;

	child_confine(&wfd);
	child_limit(cf);
	if (test_hook)
		test_hook(INDEX_CHECK_HOOK_CONFINED);
	if ((size_t)snprintf(path, sizeof(path), "%s/" STORE_INDEX_DATA_NAME, dir) >= sizeof(path)) {
		child_say(wfd, 'E', "%d path too long", ENAMETOOLONG);
		_exit(2);
	}
	/* a FIFO planted here blocks the open: the parent's deadline ends it */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		child_say(wfd, 'E', "%d cannot open it", errno);
		_exit(2);
	}
	/*
	 * Alone with the file (the caller holds the store's lock): the meta
	 * pages first, before LMDB reads them (a page size of 0 alone makes
	 * mdb_env_open divide by zero), and LMDB's map no larger than the
	 * file.  Beside a writer, the metas may change at any time and the
	 * file grow: LMDB's read transaction pins a snapshot first, the map
	 * follows the writer's, and the file is mapped after, so it holds
	 * every page of that snapshot.
	 */
	if (!live) {
		img = child_map(fd, wfd, &len);
		if (img_check(img, len, 0, 1, why, sizeof(why)) < 0) {
			child_say(wfd, 'D', "%s", why);
			_exit(1);
		}
	}
	if ((rc = mdb_env_create(&env)) != 0)
		child_lmdb_failed(wfd, rc);
	mdb_env_set_maxdbs(env, NAMED_MAX + 2);
	if (!live)
		mdb_env_set_mapsize(env, len);
	rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD | (live ? 0 : MDB_NOLOCK),
			  0600);
	if (rc == 0)
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
	if (rc == MDB_MAP_RESIZED && live && mdb_env_set_mapsize(env, 0) == 0)
		rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);	/* the writer grew it */
	if (rc != 0)
		child_lmdb_failed(wfd, rc);
	if (live)
		img = child_map(fd, wfd, &len);
	/* files open, reader slot taken: from here on nothing needs root */
	if ((rc = child_drop(cf)) < 0) {
		child_say(wfd, 'E', "%d cannot drop privileges", -rc);
		_exit(2);
	}
	if (test_hook)
		test_hook(INDEX_CHECK_HOOK_DROPPED);
	/* every page, of the snapshot LMDB is about to walk */
	if ((rc = img_check(img, len, mdb_txn_id(txn), 0, why, sizeof(why))) < 0) {
		if (rc == -ENOMEM)
			child_say(wfd, 'E', "%d out of memory", ENOMEM);
		else
			child_say(wfd, 'D', "%s", why);
		_exit(rc == -ENOMEM ? 2 : 1);
	}
	if (lmdb_walk(txn, wfd) < 0)
		_exit(1);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	child_say(wfd, 'O', "OK");
	_exit(0);
}

/* ---- the parent ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Keep what the child said printable, on one line. */
static void line_clean(char *s)
{
	for (; *s; s++)
		if (*s == '\n') {
			*s = '\0';
			break;
		} else if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f) {
			*s = '?';
		}
}

/*
 * Read the child's line until EOF, then reap it, all before the deadline;
 * on expiry kill and reap it.  *status -1: unknown (someone else reaped
 * it).  Returns 0, or -ETIMEDOUT.
 */
static int child_wait(pid_t pid, int rfd, uint64_t deadline, char *line, size_t cap, int *status)
{
	size_t n = 0;
	int eof = 0, rc = -ETIMEDOUT;

	*status = -1;
	line[0] = '\0';
	for (;;) {
		uint64_t t = now_ms();
		int left = t >= deadline ? 0 : (int)(deadline - t > INT_MAX ? INT_MAX : deadline - t);

		if (left == 0)
			break;
		if (!eof) {
			struct pollfd p = { .fd = rfd, .events = POLLIN };
			char buf[256];
			ssize_t k;

			if (poll(&p, 1, left) <= 0)
				continue;
			k = read(rfd, buf, sizeof(buf));
			if (k > 0) {
				size_t take = (size_t)k < cap - 1 - n ? (size_t)k : cap - 1 - n;

				memcpy(line + n, buf, take);
				n += take;
				line[n] = '\0';
			} else if (k == 0 || (errno != EINTR && errno != EAGAIN)) {
				eof = 1;
			}
			continue;
		}
		{
			pid_t w = waitpid(pid, status, WNOHANG);

			if (w == pid) {
				rc = 0;
				break;
			}
			if (w < 0 && errno == ECHILD) {
				*status = -1;
				rc = 0;
				break;
			}
			poll(NULL, 0, left < 2 ? left : 2);
		}
	}
	if (rc == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	return rc;
}

static void confine_prepare(struct confine *c, uint64_t file_size, unsigned timeout_ms)
{
	memset(c, 0, sizeof(*c));
	if (geteuid() == 0) {
		struct passwd pw, *r = NULL;
		char buf[1024];

		c->drop = 1;
		c->uid = 65534;
		c->gid = 65534;
		if (getpwnam_r("nobody", &pw, buf, sizeof(buf), &r) == 0 && r && pw.pw_uid != 0) {
			c->uid = pw.pw_uid;
			c->gid = pw.pw_gid;
		}
	}
	c->cpu_s = timeout_ms / 1000 + 2;
	/* two maps of the file (ours and LMDB's) and room for the rest */
	c->as_bytes = CHECK_SANITIZED ? 0 : 2 * file_size + (512ull << 20);
}

int index_check_structure_flags(const char *index_dir, int flags, unsigned timeout_ms,
				char *why, size_t whylen)
{
	char path[PATH_MAX], line[512];
	struct confine cf;
	struct stat st;
	int fds[2], status, rc;
	pid_t pid;

	if ((size_t)snprintf(path, sizeof(path), "%s/" STORE_INDEX_DATA_NAME, index_dir) >= sizeof(path))
		return why_set(why, whylen, -ENAMETOOLONG, "index path too long: %s", index_dir);
	if (stat(path, &st) < 0)
		return why_set(why, whylen, -errno, "index %s: %s", path, strerror(errno));
	if (timeout_ms == 0)
		timeout_ms = 20000 + (unsigned)((uint64_t)st.st_size / (32u << 20)) * 1000;
	confine_prepare(&cf, (uint64_t)st.st_size, timeout_ms);
	if (pipe2(fds, O_CLOEXEC) < 0)
		return why_set(why, whylen, -errno, "cannot check index %s: %s", path, strerror(errno));
	fflush(NULL);	/* nothing buffered is written twice */
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		close(fds[0]);
		close(fds[1]);
		return why_set(why, whylen, rc, "cannot check index %s: %s", path, strerror(-rc));
	}
	if (pid == 0) {
		close(fds[0]);
		child_run(index_dir, fds[1], &cf, flags);
		_exit(6);
	}
	close(fds[1]);
	rc = child_wait(pid, fds[0], now_ms() + timeout_ms, line, sizeof(line), &status);
	close(fds[0]);
	if (rc == -ETIMEDOUT)
		return why_set(why, whylen, rc, "index %s is damaged (its check did not finish in %.1f s)",
			       path, timeout_ms / 1000.0);
	line_clean(line);
	if (status != -1 && WIFSIGNALED(status))
		return why_set(why, whylen, -EBADMSG, "index %s is damaged (the check died with signal %d)",
			       path, WTERMSIG(status));
	if (line[0] == 'E' && line[1] == ' ') {
		long e = strtol(line + 2, NULL, 10);

		if (e <= 0 || e >= 4096)
			e = EIO;
		if (e == ENOENT)
			return why_set(why, whylen, -ENOENT, "index %s: %s", path, strerror(ENOENT));
		return why_set(why, whylen, (int)-e, "cannot check index %s: %s", path, strerror((int)e));
	}
	if (line[0] == 'D' && line[1] == ' ')
		return why_set(why, whylen, -EBADMSG, "index %s is damaged: %s", path, line + 2);
	if (strcmp(line, "OK") == 0 && (status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 0)))
		return 0;
	if (status != -1 && WIFEXITED(status))
		return why_set(why, whylen, -EBADMSG, "index %s is damaged (the check exited with status %d)",
			       path, WEXITSTATUS(status));
	return why_set(why, whylen, -EBADMSG, "index %s is damaged (the check ended without an answer)",
		       path);
}

int index_check_structure(const char *index_dir, unsigned timeout_ms, char *why, size_t whylen)
{
	return index_check_structure_flags(index_dir, 0, timeout_ms, why, whylen);
}
