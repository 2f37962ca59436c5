#include "itree.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "util/byteorder.h"

/* Committed caches: bounded, so a huge store does not live in memory.
 * A node is 0.5 or 1.5 KiB; an owner table entry 16 bytes at most half
 * full.  Tables above the cap are used once and not kept. */
#define NODE_CAP 16384
#define ENT_CAP (2u << 20)
#define NODE_BUCKETS 16384
#define KIDS_BUCKETS 65536
#define IT_TAG 16		/* an index value's AEAD tag: its last bytes */

static const char *const part_names[] = { "chunks or entries", "xattrs, orphan mark or counters" };

/* what a class holds, for syslog: the volume (0) owns packs and counters */
static const char *part_of(uint64_t owner, enum it_cls cls)
{
	if (owner == 0)
		return cls == IT_BULK ? "pack records" : "counters (next_ino, epoch, max_pack, format)";
	return part_names[cls];
}

/* ---- small pieces ---- */

static int is_zero(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

static void sum_add(uint8_t *sum, const uint8_t *mac, int sub)
{
	for (int lane = 0; lane < 2; lane++) {
		uint64_t a = be64_get(sum + 8 * lane), b = be64_get(mac + 8 * lane);

		be64_put(sum + 8 * lane, sub ? a - b : a + b);
	}
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Table key of a record: not secret (a planted record changes the sum
 * whatever its key), only well spread; 0 means an empty slot. */
static uint64_t key_hash(enum it_db db, const uint8_t *key, size_t klen)
{
	uint64_t h = mix64(0x6d76747265650000ull ^ ((uint64_t)db << 8) ^ klen);

	for (size_t i = 0; i < klen; i += 8) {
		uint64_t w = 0;
		size_t n = klen - i < 8 ? klen - i : 8;

		for (size_t j = 0; j < n; j++)
			w = w << 8 | key[i + j];
		h = mix64(h ^ w);
	}
	return h ? h : 1;
}

/*
 * What an owner table keeps of a record: the first half of its AEAD tag.
 * The table itself was verified by summing the records' MACs, and the
 * tag names the sealed value (it opens under this key's associated data
 * only), so a read compares tags and needs no MAC of its own; another
 * authentic value of the same key sharing those 64 bits is as unlikely
 * as a MAC collision.
 */
static uint64_t tag_fp(const uint8_t *val, size_t vlen)
{
	uint8_t tag[IT_TAG] = { 0 };

	memcpy(tag, vlen > IT_TAG ? val + vlen - IT_TAG : val, vlen < IT_TAG ? vlen : IT_TAG);
	return be64_get(tag);
}

void itree_rec(const struct volkeys *vk, enum it_db db, const uint8_t *key, size_t klen,
	       const uint8_t *val, size_t vlen, struct it_rec *out)
{
	itree_rec_mac(vk, db, key, klen, val, vlen, out->mac);
	out->fp = tag_fp(val, vlen);
}

static size_t node_bytes(unsigned level)
{
	return level == 1 ? IT_LEAF_BYTES : IT_INNER_BYTES;
}

static void node_mac(const struct volkeys *vk, unsigned level, uint64_t prefix,
		     const uint8_t *data, uint8_t out[IT_MAC])
{
	uint8_t head[10];
	size_t n = node_bytes(level);

	if (is_zero(data, n)) {
		memset(out, 0, IT_MAC);
		return;
	}
	head[0] = 'N';
	head[1] = (uint8_t)level;
	be64_put(head + 2, prefix);
	volkeys_tree_mac(vk, head, sizeof(head), data, n, out);
}

static unsigned depth_for(uint64_t owner)
{
	unsigned d = 1;

	while (d < IT_MAX_DEPTH && (owner >> (IT_BITS * d)))
		d++;
	return d;
}

/* Each database's key size (0: a meta name, 1..40 bytes), whether the
 * owner is the key's first 8 bytes (else the volume, 0), and its class. */
static const struct {
	uint8_t klen, owned, cls;
} rules[IT_DB_RECORDS] = {
	[IT_DB_INODE] = { 8, 1, IT_BULK },	/* class unused: it has its own MAC */
	[IT_DB_DIRENT] = { 24, 1, IT_BULK },
	[IT_DB_CHUNK] = { 16, 1, IT_BULK },
	[IT_DB_PACK] = { 8, 0, IT_BULK },
	[IT_DB_XATTR] = { 24, 1, IT_SMALL },
	[IT_DB_ORPHAN] = { 8, 1, IT_SMALL },
	[IT_DB_META] = { 0, 0, IT_SMALL },
};

int itree_classify(enum it_db db, const uint8_t *key, size_t klen, uint64_t *owner,
		   enum it_cls *cls)
{
	if ((unsigned)db >= IT_DB_RECORDS)
		return -EIO;
	if (db == IT_DB_META && klen == strlen(IT_ROOT_KEY) && !memcmp(key, IT_ROOT_KEY, klen))
		return 1;
	if (rules[db].klen ? klen != rules[db].klen : klen == 0 || klen > 40)
		return -EIO;
	*owner = rules[db].owned ? be64_get(key) : 0;
	*cls = (enum it_cls)rules[db].cls;
	return 0;
}

/*
 * Over the value's AEAD tag (its last 16 bytes), not the whole value: the
 * tag names the sealed value exactly (a value altered around its tag
 * fails to open; two values of ours with one 128-bit tag do not happen),
 * and it keeps the MAC of a 1 KiB record at one compression.
 */
void itree_rec_mac(const struct volkeys *vk, enum it_db db, const uint8_t *key, size_t klen,
		   const uint8_t *val, size_t vlen, uint8_t out[IT_MAC])
{
	uint8_t head[3 + 64];

	head[0] = 'R';
	head[1] = (uint8_t)db;
	head[2] = (uint8_t)klen;
	if (klen > 64)
		klen = 64;	/* classify refused such keys already */
	memcpy(head + 3, key, klen);
	if (vlen > IT_TAG)
		val += vlen - IT_TAG, vlen = IT_TAG;
	volkeys_tree_mac(vk, head, 3 + klen, val, vlen, out);
}

void itree_root_encode(const struct it_root *r, uint8_t out[IT_ROOT_REC])
{
	out[0] = 1;
	be64_put(out + 1, r->counter);
	out[9] = r->depth;
	memcpy(out + 10, r->top, IT_MAC);
}

int itree_root_decode(struct it_root *r, const uint8_t *p, size_t n)
{
	if (n != IT_ROOT_REC || p[0] != 1 || p[9] == 0 || p[9] > IT_MAX_DEPTH)
		return -EIO;
	r->counter = be64_get(p + 1);
	r->depth = p[9];
	memcpy(r->top, p + 10, IT_MAC);
	return 0;
}

void itree_root_mac(const struct volkeys *vk, const struct it_root *r, uint8_t out[IT_MAC])
{
	uint8_t rec[IT_ROOT_REC];

	itree_root_encode(r, rec);
	volkeys_tree_mac(vk, "T", 1, rec, sizeof(rec), out);
}

/* ---- owner tables: key hash -> first 8 bytes of the record MAC ---- */

struct ent {
	uint64_t kh, fp;
};

struct table {
	struct ent *ent;
	size_t n, cap;		/* cap: a power of two, at least 2n */
};

static int table_grow(struct table *t, size_t want)
{
	size_t cap = t->cap ? t->cap : 16;
	struct ent *old = t->ent, *ne;
	size_t oldcap = t->cap;

	while (cap < 2 * want)
		cap *= 2;
	if (cap == t->cap)
		return 0;
	if (!(ne = calloc(cap, sizeof(*ne))))
		return -ENOMEM;
	t->ent = ne;
	t->cap = cap;
	t->n = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].kh) {
			size_t j = old[i].kh & (cap - 1);

			while (ne[j].kh)
				j = (j + 1) & (cap - 1);
			ne[j] = old[i];
			t->n++;
		}
	free(old);
	return 0;
}

/* insert (kh may repeat: two keys with one hash both stay) */
static int table_add(struct table *t, uint64_t kh, uint64_t fp)
{
	size_t j;
	int rc;

	if (2 * (t->n + 1) > t->cap && (rc = table_grow(t, t->n + 1)) < 0)
		return rc;
	j = kh & (t->cap - 1);
	while (t->ent[j].kh)
		j = (j + 1) & (t->cap - 1);
	t->ent[j].kh = kh;
	t->ent[j].fp = fp;
	t->n++;
	return 0;
}

/* 1 when an entry with kh has fp, 0 when entries with kh exist but none
 * has it, -1 when there is none */
static int table_match(const struct table *t, uint64_t kh, uint64_t fp)
{
	int seen = -1;

	if (!t->cap)
		return -1;
	for (size_t j = kh & (t->cap - 1); t->ent[j].kh; j = (j + 1) & (t->cap - 1))
		if (t->ent[j].kh == kh) {
			if (t->ent[j].fp == fp)
				return 1;
			seen = 0;
		}
	return seen;
}

/* remove the entry kh/fp (or any with kh when fp is 0), backward-shifting */
static void table_del(struct table *t, uint64_t kh, uint64_t old_fp)
{
	size_t mask = t->cap - 1, j;

	if (!t->cap)
		return;
	for (j = kh & mask; t->ent[j].kh; j = (j + 1) & mask)
		if (t->ent[j].kh == kh && (!old_fp || t->ent[j].fp == old_fp))
			break;
	if (!t->ent[j].kh)
		return;
	t->ent[j].kh = 0;
	t->n--;
	for (size_t k = (j + 1) & mask; t->ent[k].kh; k = (k + 1) & mask) {
		size_t home = t->ent[k].kh & mask;

		/* move k back into the hole j if its home is not in (j, k] */
		if (((k - home) & mask) >= ((k - j) & mask)) {
			t->ent[j] = t->ent[k];
			t->ent[k].kh = 0;
			j = k;
		}
	}
}

/* ---- the committed caches ---- */

struct cnode {
	struct cnode *next;
	uint64_t prefix;
	unsigned level;
	uint8_t data[];
};

struct kids {
	struct kids *next;
	uint64_t owner;
	enum it_cls cls;
	uint64_t used;		/* clock of the last use, for eviction */
	struct table t;
};

struct itree {
	const struct volkeys *vk;
	pthread_rwlock_t lock;	/* everything below */
	struct it_root root;
	uint64_t vgen;		/* commit id the caches describe */
	struct cnode *nodes[NODE_BUCKETS];
	size_t nnodes;
	size_t evict_at;	/* next bucket eviction looks at */
	struct kids *kids[KIDS_BUCKETS];
	size_t nents;
	uint64_t clock;		/* atomic */
	size_t node_cap, ent_cap;	/* NODE_CAP, ENT_CAP unless a test says */
	size_t kick_at;		/* next bucket the table sweep looks at */
	uint64_t swept;		/* clock when the last sweep ended */
};

static size_t node_bucket(unsigned level, uint64_t prefix)
{
	return mix64(prefix * 31 + level) & (NODE_BUCKETS - 1);
}

static size_t kids_bucket(uint64_t owner, enum it_cls cls)
{
	return mix64(owner * 2 + cls) & (KIDS_BUCKETS - 1);
}

static struct cnode *cache_node(struct itree *it, unsigned level, uint64_t prefix)
{
	for (struct cnode *n = it->nodes[node_bucket(level, prefix)]; n; n = n->next)
		if (n->level == level && n->prefix == prefix)
			return n;
	return NULL;
}

static struct kids *cache_kids(struct itree *it, uint64_t owner, enum it_cls cls)
{
	for (struct kids *k = it->kids[kids_bucket(owner, cls)]; k; k = k->next)
		if (k->owner == owner && k->cls == cls)
			return k;
	return NULL;
}

static void kids_free(struct kids *k)
{
	if (k) {
		free(k->t.ent);
		free(k);
	}
}

/* Drop leaves until the node cache is under three quarters of its cap;
 * inner nodes are few and every path needs them.  Write-locked. */
static void evict_nodes(struct itree *it)
{
	for (size_t scanned = 0; it->nnodes > it->node_cap * 3 / 4 && scanned < NODE_BUCKETS; scanned++) {
		struct cnode **pp = &it->nodes[it->evict_at];

		while (*pp) {
			struct cnode *n = *pp;

			if (n->level == 1) {
				*pp = n->next;
				free(n);
				it->nnodes--;
			} else {
				pp = &n->next;
			}
		}
		it->evict_at = (it->evict_at + 1) & (NODE_BUCKETS - 1);
	}
}

/*
 * Drop tables (never the volume's own, nor keep) until the entries fit in
 * three quarters of the cap: a sweep over the buckets from where the last
 * one stopped, passing over tables used since the sweep last came by
 * (a clock), so the hot ones stay.  Write-locked.
 */
static void evict_kids(struct itree *it, const struct kids *keep)
{
	uint64_t now = __atomic_load_n(&it->clock, __ATOMIC_RELAXED);

	for (size_t scanned = 0; it->nents > it->ent_cap * 3 / 4 && scanned < 2 * KIDS_BUCKETS; scanned++) {
		struct kids **pp = &it->kids[it->kick_at];

		while (*pp) {
			struct kids *k = *pp;

			if (k->owner != 0 && k != keep && (scanned >= KIDS_BUCKETS || k->used < it->swept)) {
				*pp = k->next;
				it->nents -= k->t.n;
				kids_free(k);
			} else {
				pp = &k->next;
			}
		}
		it->kick_at = (it->kick_at + 1) & (KIDS_BUCKETS - 1);
	}
	it->swept = now;
}

int itree_new(struct itree **out, const struct volkeys *vk, const struct it_root *root,
	      uint64_t snap)
{
	struct itree *it = calloc(1, sizeof(*it));

	*out = NULL;
	if (!it)
		return -ENOMEM;
	it->vk = vk;
	it->node_cap = NODE_CAP;
	it->ent_cap = ENT_CAP;
	it->root = *root;
	it->vgen = snap;
	pthread_rwlock_init(&it->lock, NULL);
	*out = it;
	return 0;
}

void itree_free(struct itree *it)
{
	if (!it)
		return;
	for (size_t b = 0; b < NODE_BUCKETS; b++)
		while (it->nodes[b]) {
			struct cnode *n = it->nodes[b];

			it->nodes[b] = n->next;
			free(n);
		}
	for (size_t b = 0; b < KIDS_BUCKETS; b++)
		while (it->kids[b]) {
			struct kids *k = it->kids[b];

			it->kids[b] = k->next;
			kids_free(k);
		}
	pthread_rwlock_destroy(&it->lock);
	free(it);
}

void itree_set_caps(struct itree *it, size_t nodes, size_t entries)
{
	pthread_rwlock_wrlock(&it->lock);
	it->node_cap = nodes < 8 ? 8 : nodes;
	it->ent_cap = entries < 16 ? 16 : entries;
	evict_nodes(it);
	evict_kids(it, NULL);
	pthread_rwlock_unlock(&it->lock);
}

void itree_root(struct itree *it, struct it_root *out)
{
	pthread_rwlock_rdlock(&it->lock);
	*out = it->root;
	pthread_rwlock_unlock(&it->lock);
}

/*
 * A reader's view must be the state the caches describe.  Older, or newer
 * (the commit that made it is being applied right now): the caller checks
 * against the view's own root instead.
 */
static int view_current(struct itree *it, const struct it_io *io)
{
	uint64_t v;

	if (io->writer || io->own_root)
		return 0;
	pthread_rwlock_rdlock(&it->lock);
	v = it->vgen;
	pthread_rwlock_unlock(&it->lock);
	return io->snap == v ? 0 : -EAGAIN;
}

/* A reader whose view a commit has overtaken since it began checking:
 * a mismatch may be that, not damage, so it reads again. */
int itree_stale(struct itree *it, const struct it_io *io)
{
	uint64_t v;

	if (io->writer || io->own_root)
		return 0;
	pthread_rwlock_rdlock(&it->lock);
	v = it->vgen;
	pthread_rwlock_unlock(&it->lock);
	return v != io->snap;
}

/*
 * The committed node (level, prefix) into out, verified up to the root:
 * from the cache, or read through io and checked against its parent.
 * A level above the tree's depth is all zeros.
 */
static int committed_node(struct itree *it, const struct it_io *io, unsigned level,
			  uint64_t prefix, uint8_t *out)
{
	size_t bytes = node_bytes(level);
	const uint8_t *raw;
	uint8_t mac[IT_MAC], want[IT_MAC];
	struct it_root root;
	struct cnode *n;
	size_t len;
	int rc;

	n = NULL;
	if (io->own_root) {
		root = *io->own_root;
	} else {
		pthread_rwlock_rdlock(&it->lock);
		root = it->root;
		if ((n = cache_node(it, level, prefix)))
			memcpy(out, n->data, bytes);
		pthread_rwlock_unlock(&it->lock);
	}
	if (n)
		return 0;
	if (level > root.depth || (level == root.depth && prefix != 0)) {
		memset(out, 0, bytes);
		return 0;
	}
	if ((rc = io->node_get(io->ctx, level, prefix, &raw, &len)) < 0)
		return rc;
	if (rc == 0)
		memset(out, 0, bytes);
	else if (len != bytes)
		goto bad;
	else
		memcpy(out, raw, bytes);
	node_mac(it->vk, level, prefix, out, mac);
	if (level == root.depth) {
		memcpy(want, root.top, IT_MAC);
	} else {
		uint8_t parent[IT_INNER_BYTES];

		if ((rc = committed_node(it, io, level + 1, prefix >> IT_BITS, parent)) < 0)
			return rc;
		memcpy(want, parent + (prefix & (IT_FAN - 1)) * IT_MAC, IT_MAC);
	}
	if (memcmp(mac, want, IT_MAC))
		goto bad;
	if (io->own_root || !(n = malloc(sizeof(*n) + bytes)))
		return 0;	/* verified all the same; just not kept */
	n->level = level;
	n->prefix = prefix;
	memcpy(n->data, out, bytes);
	pthread_rwlock_wrlock(&it->lock);
	if ((io->writer || it->vgen == io->snap) && !cache_node(it, level, prefix)) {
		size_t b = node_bucket(level, prefix);

		n->next = it->nodes[b];
		it->nodes[b] = n;
		it->nnodes++;
		n = NULL;
		if (it->nnodes > it->node_cap)
			evict_nodes(it);
	}
	pthread_rwlock_unlock(&it->lock);
	free(n);
	return 0;
bad:
	if (itree_stale(it, io))
		return -EAGAIN;
	syslog(LOG_ERR, "index integrity: tree node %u/%llu does not match its parent (stale, planted or damaged)",
	       level, (unsigned long long)prefix);
	return -EIO;
}

/* ---- a write transaction's changes ---- */

struct onode {
	struct onode *next;	/* all of them, newest first */
	struct onode *hnext;	/* hash chain */
	uint64_t prefix;
	unsigned level;
	uint8_t data[];
};

#define OT_BUCKETS 256

struct itree_txn {
	struct itree *it;
	struct it_root base;	/* the committed root this txn started from */
	unsigned depth;		/* grows when a new owner needs it */
	struct onode *nodes, *hash[OT_BUCKETS];
	struct table changed;	/* records written here: kh -> new fp (0: deleted) */
	struct table touched;	/* (owner, class) keys with changed records */
	/* the changes again, in order, to apply to the caches after commit */
	struct change {
		uint64_t owner, kh, old_fp, new_fp;
		enum it_cls cls;
	} *log;
	size_t nlog, caplog;
	/* inodes created here (no record before, no children): their tables
	 * are known empty, so the caches get them without a scan */
	uint64_t *born;
	size_t nborn, capborn;
};

int itree_txn_begin(struct itree *it, struct itree_txn **out)
{
	struct itree_txn *ot = calloc(1, sizeof(*ot));

	*out = NULL;
	if (!ot)
		return -ENOMEM;
	ot->it = it;
	itree_root(it, &ot->base);
	ot->depth = ot->base.depth;
	*out = ot;
	return 0;
}

void itree_txn_free(struct itree_txn *ot)
{
	if (!ot)
		return;
	while (ot->nodes) {
		struct onode *n = ot->nodes;

		ot->nodes = n->next;
		free(n);
	}
	free(ot->changed.ent);
	free(ot->touched.ent);
	free(ot->log);
	free(ot->born);
	free(ot);
}

static struct onode *ot_find(struct itree_txn *ot, unsigned level, uint64_t prefix)
{
	for (struct onode *n = ot->hash[node_bucket(level, prefix) & (OT_BUCKETS - 1)]; n; n = n->hnext)
		if (n->level == level && n->prefix == prefix)
			return n;
	return NULL;
}

/* The txn's own copy of a node, made from the committed one on first use. */
static int ot_node(struct itree_txn *ot, const struct it_io *io, unsigned level, uint64_t prefix,
		   struct onode **out)
{
	size_t bytes = node_bytes(level), b;
	struct onode *n = ot_find(ot, level, prefix);
	int rc;

	if (n) {
		*out = n;
		return 0;
	}
	if (!(n = malloc(sizeof(*n) + bytes)))
		return -ENOMEM;
	n->level = level;
	n->prefix = prefix;
	if (level > ot->base.depth)
		memset(n->data, 0, bytes);
	else if ((rc = committed_node(ot->it, io, level, prefix, n->data)) < 0) {
		free(n);
		return rc;
	}
	b = node_bucket(level, prefix) & (OT_BUCKETS - 1);
	n->hnext = ot->hash[b];
	ot->hash[b] = n;
	n->next = ot->nodes;
	ot->nodes = n;
	*out = n;
	return 0;
}

/* The slot of owner as this reader or writer sees it (48 bytes). */
static int slot_get(struct itree *it, struct itree_txn *ot, const struct it_io *io,
		    uint64_t owner, uint8_t out[IT_LEAF_SLOT])
{
	uint8_t leaf[IT_LEAF_BYTES];
	size_t at = (owner & (IT_FAN - 1)) * IT_LEAF_SLOT;
	struct onode *n;
	int rc;

	if (ot && (n = ot_find(ot, 1, owner >> IT_BITS))) {
		memcpy(out, n->data + at, IT_LEAF_SLOT);
		return 0;
	}
	if (!io->own_root) {
		/* the common case, on every read: the slot alone, not the leaf */
		struct cnode *c;

		pthread_rwlock_rdlock(&it->lock);
		if ((c = cache_node(it, 1, owner >> IT_BITS)))
			memcpy(out, c->data + at, IT_LEAF_SLOT);
		pthread_rwlock_unlock(&it->lock);
		if (c)
			return 0;
	}
	if ((rc = committed_node(it, io, 1, owner >> IT_BITS, leaf)) < 0)
		return rc;
	memcpy(out, leaf + at, IT_LEAF_SLOT);
	return 0;
}

static uint64_t touch_key(uint64_t owner, enum it_cls cls)
{
	uint64_t k = mix64(owner * 2 + cls);

	return k ? k : 1;
}

/* this transaction's net change in the number of owner's records of cls */
static int64_t touched_delta(const struct itree_txn *ot, uint64_t owner, enum it_cls cls)
{
	uint64_t kh = touch_key(owner, cls);
	const struct table *t = &ot->touched;

	if (!t->cap)
		return 0;
	for (size_t j = kh & (t->cap - 1); t->ent[j].kh; j = (j + 1) & (t->cap - 1))
		if (t->ent[j].kh == kh)
			return (int64_t)t->ent[j].fp;
	return 0;
}

static int touched_add(struct itree_txn *ot, uint64_t owner, enum it_cls cls, int64_t d)
{
	uint64_t kh = touch_key(owner, cls);
	struct table *t = &ot->touched;

	if (t->cap)
		for (size_t j = kh & (t->cap - 1); t->ent[j].kh; j = (j + 1) & (t->cap - 1))
			if (t->ent[j].kh == kh) {
				t->ent[j].fp = (uint64_t)((int64_t)t->ent[j].fp + d);
				return 0;
			}
	return table_add(t, kh, (uint64_t)d);
}

int itree_txn_note(struct itree_txn *ot, const struct it_io *io, enum it_db db,
		   const uint8_t *key, size_t klen, const struct it_rec *before,
		   const struct it_rec *after)
{
	const uint8_t *old_mac = before ? before->mac : NULL, *new_mac = after ? after->mac : NULL;
	struct onode *leaf;
	uint64_t owner;
	enum it_cls cls;
	uint8_t *slot;
	int rc = itree_classify(db, key, klen, &owner, &cls);

	if (rc)
		return rc < 0 ? rc : 0;	/* the root record is the tree's own */
	if (depth_for(owner) > ot->depth)
		ot->depth = depth_for(owner);
	if ((rc = ot_node(ot, io, 1, owner >> IT_BITS, &leaf)) < 0)
		return rc;
	slot = leaf->data + (owner & (IT_FAN - 1)) * IT_LEAF_SLOT;
	if (db == IT_DB_INODE) {
		if (!old_mac && new_mac && is_zero(slot, IT_LEAF_SLOT)) {
			if (ot->nborn == ot->capborn) {
				size_t ncap = ot->capborn ? 2 * ot->capborn : 16;
				uint64_t *nb = realloc(ot->born, ncap * sizeof(*nb));

				if (!nb)
					return -ENOMEM;
				ot->born = nb;
				ot->capborn = ncap;
			}
			ot->born[ot->nborn++] = owner;
		}
		if (new_mac)
			memcpy(slot, new_mac, IT_MAC);
		else
			memset(slot, 0, IT_MAC);
		return 0;
	}
	if (old_mac)
		sum_add(slot + IT_MAC * (1 + cls), old_mac, 1);
	if (new_mac)
		sum_add(slot + IT_MAC * (1 + cls), new_mac, 0);
	{
		uint64_t kh = key_hash(db, key, klen), nfp = after ? after->fp : 0;
		struct change *c;

		/* the latest write of a key wins: drop what this txn said before */
		table_del(&ot->changed, kh, 0);
		if ((rc = table_add(&ot->changed, kh, nfp)) < 0)
			return rc;
		if ((rc = touched_add(ot, owner, cls, (new_mac != NULL) - (old_mac != NULL))) < 0)
			return rc;
		if (ot->nlog == ot->caplog) {
			size_t ncap = ot->caplog ? 2 * ot->caplog : 64;
			struct change *nl = realloc(ot->log, ncap * sizeof(*nl));

			if (!nl)
				return -ENOMEM;
			ot->log = nl;
			ot->caplog = ncap;
		}
		c = &ot->log[ot->nlog++];
		c->owner = owner;
		c->cls = cls;
		c->kh = kh;
		c->old_fp = before ? before->fp : 0;
		c->new_fp = nfp;
	}
	return 0;
}

int itree_txn_finish(struct itree_txn *ot, const struct it_io *io, it_put_node put,
		     struct it_root *root, int *changed)
{
	struct onode *n;
	int rc;

	*changed = ot->nodes != NULL;
	if (!ot->nodes)
		return 0;
	/* a deeper tree: the old top becomes the first child of the new */
	if (ot->depth > ot->base.depth && (rc = ot_node(ot, io, ot->base.depth, 0, &n)) < 0)
		return rc;
	for (unsigned level = 1; level < ot->depth; level++) {
		/* parents are created at the list's head, never at this level */
		for (n = ot->nodes; n; n = n->next) {
			struct onode *parent;
			uint8_t mac[IT_MAC];

			if (n->level != level)
				continue;
			node_mac(ot->it->vk, level, n->prefix, n->data, mac);
			if ((rc = ot_node(ot, io, level + 1, n->prefix >> IT_BITS, &parent)) < 0)
				return rc;
			memcpy(parent->data + (n->prefix & (IT_FAN - 1)) * IT_MAC, mac, IT_MAC);
		}
	}
	if (!(n = ot_find(ot, ot->depth, 0)))
		return -EIO;	/* cannot happen: every path reaches the top */
	root->counter = ot->base.counter + 1;
	root->depth = (uint8_t)ot->depth;
	node_mac(ot->it->vk, ot->depth, 0, n->data, root->top);
	for (n = ot->nodes; n; n = n->next) {
		size_t bytes = node_bytes(n->level);
		int zero = is_zero(n->data, bytes);

		if ((rc = put(io->ctx, n->level, n->prefix, zero ? NULL : n->data, bytes)) < 0)
			return rc;
	}
	return 0;
}

void itree_txn_apply(struct itree_txn *ot, uint64_t snap, const struct it_root *root)
{
	struct itree *it = ot->it;

	pthread_rwlock_wrlock(&it->lock);
	for (struct onode *n = ot->nodes; n; n = n->next) {
		size_t bytes = node_bytes(n->level);
		struct cnode *c = cache_node(it, n->level, n->prefix);

		if (c) {
			memcpy(c->data, n->data, bytes);
		} else if ((c = malloc(sizeof(*c) + bytes))) {
			size_t b = node_bucket(n->level, n->prefix);

			c->level = n->level;
			c->prefix = n->prefix;
			memcpy(c->data, n->data, bytes);
			c->next = it->nodes[b];
			it->nodes[b] = c;
			it->nnodes++;
		}
	}
	for (size_t i = 0; i < ot->nborn; i++)
		for (int cls = IT_BULK; cls <= IT_SMALL; cls++) {
			struct kids *k;
			size_t bk;

			if (cache_kids(it, ot->born[i], (enum it_cls)cls) || !(k = calloc(1, sizeof(*k))))
				continue;
			k->owner = ot->born[i];
			k->cls = (enum it_cls)cls;
			k->used = __atomic_add_fetch(&it->clock, 1, __ATOMIC_RELAXED);
			bk = kids_bucket(k->owner, k->cls);
			k->next = it->kids[bk];
			it->kids[bk] = k;
		}
	for (size_t i = 0; i < ot->nlog; i++) {
		struct change *c = &ot->log[i];
		struct kids *k = cache_kids(it, c->owner, c->cls);

		if (!k)
			continue;
		if (c->old_fp || table_match(&k->t, c->kh, 0) >= 0) {
			size_t before = k->t.n;

			table_del(&k->t, c->kh, c->old_fp);
			it->nents -= before - k->t.n;
		}
		if (c->new_fp) {
			if (table_add(&k->t, c->kh, c->new_fp) < 0) {
				/* out of memory: forget the table; it is rebuilt */
				struct kids **pp = &it->kids[kids_bucket(k->owner, k->cls)];

				while (*pp != k)
					pp = &(*pp)->next;
				*pp = k->next;
				it->nents -= k->t.n;
				kids_free(k);
				continue;
			}
			it->nents++;
		}
	}
	it->root = *root;
	it->vgen = snap;
	if (it->nnodes > it->node_cap)
		evict_nodes(it);
	if (it->nents > it->ent_cap)
		evict_kids(it, NULL);
	pthread_rwlock_unlock(&it->lock);
}

/* ---- owner tables: built by summing an owner's records ---- */

struct build {
	const struct volkeys *vk;
	uint8_t sum[IT_MAC];
	struct table t;
	int rc;
};

static int build_rec(void *ctx, enum it_db db, const uint8_t *key, size_t klen,
		     const uint8_t *val, size_t vlen)
{
	struct build *b = ctx;
	uint8_t mac[IT_MAC];

	itree_rec_mac(b->vk, db, key, klen, val, vlen, mac);
	sum_add(b->sum, mac, 0);
	if ((b->rc = table_add(&b->t, key_hash(db, key, klen), tag_fp(val, vlen))) < 0)
		return b->rc;
	return 0;
}

/* What a caller asks of an owner's table, answered under its lock. */
struct query {
	uint64_t kh, fp;
	int match;		/* table_match */
	uint64_t count;		/* entries */
};

static void run_query(const struct table *t, struct query *q)
{
	q->match = table_match(t, q->kh, q->fp);
	q->count = t->n;
}

/*
 * Answer q from the verified table of owner's class in the committed
 * state: from the cache, or built by summing all of the owner's records
 * of the class and comparing with the committed slot, then kept.  A
 * writer builds from a read view of the committed state (its own
 * transaction holds its changes, which the caller knows from ot); a
 * reader from its own view, which is the committed one (view_current) or,
 * with io->own_root, its own snapshot (then nothing is kept).
 */
static int owner_query(struct itree *it, const struct it_io *io, uint64_t owner, enum it_cls cls,
		       struct query *q)
{
	struct build b = { .vk = it->vk };
	uint8_t slot[IT_LEAF_SLOT];
	struct kids *nk;
	int rc;

	if (!io->own_root) {
		struct kids *k;

		pthread_rwlock_rdlock(&it->lock);
		if ((k = cache_kids(it, owner, cls))) {
			__atomic_store_n(&k->used, __atomic_add_fetch(&it->clock, 1, __ATOMIC_RELAXED),
					 __ATOMIC_RELAXED);
			run_query(&k->t, q);
			pthread_rwlock_unlock(&it->lock);
			return 0;
		}
		pthread_rwlock_unlock(&it->lock);
	}
	if ((rc = slot_get(it, NULL, io, owner, slot)) < 0)
		return rc;
	/* a zero sum: the owner has no record of the class (most files have
	 * no xattrs), so there is nothing to read; one planted there anyway
	 * is unknown to the empty table when it is read */
	if (!is_zero(slot + IT_MAC * (1 + cls), IT_MAC))
		rc = (io->writer ? io->scan_committed : io->scan)(io->ctx, owner, cls, build_rec, &b);
	if (rc == 0 && b.rc < 0)
		rc = b.rc;
	if (rc < 0) {
		free(b.t.ent);
		return rc;
	}
	if (memcmp(b.sum, slot + IT_MAC * (1 + cls), IT_MAC)) {
		free(b.t.ent);
		if (itree_stale(it, io))
			return -EAGAIN;
		syslog(LOG_ERR, "%s %llu: its %s do not match the integrity tree (a record was replayed, deleted or planted)",
		       owner ? "inode" : "volume, inode", (unsigned long long)owner, part_of(owner, cls));
		return -EIO;
	}
	run_query(&b.t, q);
	if (io->own_root || b.t.n > it->ent_cap / 2 || !(nk = calloc(1, sizeof(*nk)))) {
		free(b.t.ent);
		return 0;	/* answered; not kept */
	}
	nk->owner = owner;
	nk->cls = cls;
	nk->t = b.t;
	nk->used = __atomic_add_fetch(&it->clock, 1, __ATOMIC_RELAXED);
	pthread_rwlock_wrlock(&it->lock);
	if ((io->writer || it->vgen == io->snap) && !cache_kids(it, owner, cls)) {
		size_t bk = kids_bucket(owner, cls);

		nk->next = it->kids[bk];
		it->kids[bk] = nk;
		it->nents += nk->t.n;
		nk = NULL;
		if (it->nents > it->ent_cap)
			evict_kids(it, NULL);
	}
	pthread_rwlock_unlock(&it->lock);
	kids_free(nk);
	return 0;
}

int itree_check(struct itree *it, struct itree_txn *ot, const struct it_io *io,
		enum it_db db, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	uint8_t mac[IT_MAC] = { 0 };
	uint64_t owner, kh, fp;
	enum it_cls cls;
	int rc, match;

	if ((rc = itree_classify(db, key, klen, &owner, &cls)) != 0) {
		if (rc > 0)
			return 0;	/* the root record: checked against the anchor */
		syslog(LOG_ERR, "index integrity: a %u-byte key in database %d", (unsigned)klen, db);
		return -EIO;
	}
	if ((rc = view_current(it, io)) < 0)
		return rc;
	if (db == IT_DB_INODE) {
		uint8_t slot[IT_LEAF_SLOT];

		if (val)
			itree_rec_mac(it->vk, db, key, klen, val, vlen, mac);
		if ((rc = slot_get(it, ot, io, owner, slot)) < 0)
			return rc;
		if (!memcmp(slot, mac, IT_MAC))
			return 0;
		if (itree_stale(it, io))
			return -EAGAIN;
		syslog(LOG_ERR, "inode %llu: its record is %s (replayed, deleted or planted)",
		       (unsigned long long)owner,
		       !val ? "missing" : is_zero(slot, IT_MAC) ? "not in the integrity tree" : "stale");
		return -EIO;
	}
	kh = key_hash(db, key, klen);
	fp = val ? tag_fp(val, vlen) : 0;
	if (ot && (match = table_match(&ot->changed, kh, fp)) >= 0) {
		/* written by this transaction: what it wrote is what it reads */
		if (match)
			return 0;
		goto bad;
	}
	{
		/* not written here: as committed */
		struct query q = { .kh = kh, .fp = fp };

		if ((rc = owner_query(it, io, owner, cls, &q)) < 0)
			return rc;
		match = q.match;
	}
	if (val ? match == 1 : match < 0)
		return 0;
	if (itree_stale(it, io))
		return -EAGAIN;
bad:
	syslog(LOG_ERR, "%s %llu: a record of its %s is %s (replayed, deleted or planted)",
	       owner ? "inode" : "volume, inode", (unsigned long long)owner, part_of(owner, cls),
	       !val ? "missing" : match < 0 ? "unknown to the integrity tree" : "stale");
	return -EIO;
}

int itree_count(struct itree *it, struct itree_txn *ot, const struct it_io *io,
		uint64_t owner, enum it_cls cls, uint64_t *count)
{
	struct query q = { .kh = 1 };
	int rc;

	if ((rc = view_current(it, io)) < 0)
		return rc;
	if ((rc = owner_query(it, io, owner, cls, &q)) < 0)
		return rc;
	*count = q.count + (uint64_t)(ot ? touched_delta(ot, owner, cls) : 0);
	return 0;
}

/* ---- whole-tree work: rebuild and full verification ---- */

struct slotmap {
	uint64_t *owner;	/* sorted after collection */
	uint8_t (*slot)[IT_LEAF_SLOT];
	size_t n, cap;
	struct table index;	/* owner hash -> position + 1 */
	const struct volkeys *vk;
	int rc;
};

static uint8_t *slotmap_get(struct slotmap *m, uint64_t owner)
{
	uint64_t kh = touch_key(owner, 0);
	size_t j;

	if (m->index.cap)
		for (j = kh & (m->index.cap - 1); m->index.ent[j].kh; j = (j + 1) & (m->index.cap - 1))
			if (m->index.ent[j].kh == kh && m->owner[m->index.ent[j].fp - 1] == owner)
				return m->slot[m->index.ent[j].fp - 1];
	if (m->n == m->cap) {
		size_t ncap = m->cap ? 2 * m->cap : 1024;
		uint64_t *no = realloc(m->owner, ncap * sizeof(*no));
		uint8_t (*ns)[IT_LEAF_SLOT];

		if (!no)
			return NULL;
		m->owner = no;
		if (!(ns = realloc(m->slot, ncap * sizeof(*ns))))
			return NULL;
		m->slot = ns;
		m->cap = ncap;
	}
	if (table_add(&m->index, kh, m->n + 1) < 0)
		return NULL;
	m->owner[m->n] = owner;
	memset(m->slot[m->n], 0, IT_LEAF_SLOT);
	return m->slot[m->n++];
}

static int slotmap_rec(void *ctx, enum it_db db, const uint8_t *key, size_t klen,
		       const uint8_t *val, size_t vlen)
{
	struct slotmap *m = ctx;
	uint8_t mac[IT_MAC], *slot;
	uint64_t owner;
	enum it_cls cls;
	int rc = itree_classify(db, key, klen, &owner, &cls);

	if (rc > 0)
		return 0;
	if (rc < 0)
		owner = 0, cls = IT_SMALL;	/* a key no record has: it spoils the volume's sum */
	itree_rec_mac(m->vk, db, key, klen, val, vlen, mac);
	if (!(slot = slotmap_get(m, owner)))
		return m->rc = -ENOMEM;
	if (db == IT_DB_INODE)
		memcpy(slot, mac, IT_MAC);
	else
		sum_add(slot + IT_MAC * (1 + cls), mac, 0);
	return 0;
}

static void slotmap_free(struct slotmap *m)
{
	free(m->owner);
	free(m->slot);
	free(m->index.ent);
}

static int slotmap_collect(struct slotmap *m, const struct volkeys *vk, const struct it_io *io)
{
	int rc;

	memset(m, 0, sizeof(*m));
	m->vk = vk;
	rc = io->scan_all(io->ctx, slotmap_rec, m);
	if (rc == 0 && m->rc < 0)
		rc = m->rc;
	return rc;
}

/* A level of nodes being built: sorted by prefix, contents alongside. */
struct level {
	uint64_t *prefix;
	uint8_t *data;
	size_t n, cap;
};

static uint8_t *level_node(struct level *l, uint64_t prefix, size_t bytes)
{
	if (l->n && l->prefix[l->n - 1] == prefix)
		return l->data + (l->n - 1) * bytes;
	if (l->n == l->cap) {
		size_t ncap = l->cap ? 2 * l->cap : 64;
		uint64_t *np = realloc(l->prefix, ncap * sizeof(*np));
		uint8_t *nd;

		if (!np)
			return NULL;
		l->prefix = np;
		if (!(nd = realloc(l->data, ncap * bytes)))
			return NULL;
		l->data = nd;
		l->cap = ncap;
	}
	l->prefix[l->n] = prefix;
	memset(l->data + l->n * bytes, 0, bytes);
	return l->data + l->n++ * bytes;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Every level of the tree over m's slots, bottom up, each node given to
 * visit(level, prefix, data) once complete; *top gets the top's MAC and
 * *depth the levels.
 */
typedef int (*level_visit)(void *ctx, unsigned level, uint64_t prefix, const uint8_t *data);
static int build_levels(struct slotmap *m, const struct volkeys *vk, level_visit visit, void *ctx,
			uint8_t top[IT_MAC], unsigned *depth)
{
	struct level cur = { 0 }, up = { 0 };
	uint64_t maxowner = 0;
	size_t *order;
	unsigned level, d;
	int rc = 0;

	if (!(order = malloc((m->n ? m->n : 1) * sizeof(*order))))
		return -ENOMEM;
	/* sort positions by owner (sorting the owners array alongside) */
	{
		uint64_t *pairs = malloc((m->n ? m->n : 1) * 2 * sizeof(*pairs));

		if (!pairs) {
			free(order);
			return -ENOMEM;
		}
		for (size_t i = 0; i < m->n; i++) {
			pairs[2 * i] = m->owner[i];
			pairs[2 * i + 1] = i;
		}
		qsort(pairs, m->n, 2 * sizeof(*pairs), cmp_u64);
		for (size_t i = 0; i < m->n; i++)
			order[i] = (size_t)pairs[2 * i + 1];
		free(pairs);
	}
	for (size_t i = 0; i < m->n; i++)
		if (m->owner[i] > maxowner)
			maxowner = m->owner[i];
	d = depth_for(maxowner);
	for (size_t i = 0; i < m->n; i++) {
		uint64_t o = m->owner[order[i]];
		uint8_t *node = level_node(&cur, o >> IT_BITS, IT_LEAF_BYTES);

		if (!node) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(node + (o & (IT_FAN - 1)) * IT_LEAF_SLOT, m->slot[order[i]], IT_LEAF_SLOT);
	}
	if (cur.n == 0 && !level_node(&cur, 0, IT_LEAF_BYTES)) {
		rc = -ENOMEM;
		goto out;
	}
	for (level = 1;; level++) {
		size_t bytes = node_bytes(level);

		up.n = 0;
		for (size_t i = 0; i < cur.n; i++) {
			uint8_t *data = cur.data + i * bytes, mac[IT_MAC], *parent;

			if ((rc = visit(ctx, level, cur.prefix[i], data)) < 0)
				goto out;
			node_mac(vk, level, cur.prefix[i], data, mac);
			if (level == d) {
				memcpy(top, mac, IT_MAC);
				continue;
			}
			if (!(parent = level_node(&up, cur.prefix[i] >> IT_BITS, IT_INNER_BYTES))) {
				rc = -ENOMEM;
				goto out;
			}
			memcpy(parent + (cur.prefix[i] & (IT_FAN - 1)) * IT_MAC, mac, IT_MAC);
		}
		if (level == d)
			break;
		{
			struct level t = cur;

			cur = up;
			up = t;
		}
	}
	*depth = d;
out:
	free(order);
	free(cur.prefix);
	free(cur.data);
	free(up.prefix);
	free(up.data);
	return rc;
}

struct rebuild_ctx {
	const struct it_io *io;
	it_put_node put;
};

static int rebuild_visit(void *ctx, unsigned level, uint64_t prefix, const uint8_t *data)
{
	struct rebuild_ctx *r = ctx;
	size_t bytes = node_bytes(level);

	return r->put(r->io->ctx, level, prefix, is_zero(data, bytes) ? NULL : data, bytes);
}

int itree_rebuild(const struct volkeys *vk, const struct it_io *io, it_put_node put,
		  struct it_root *root)
{
	struct rebuild_ctx r = { io, put };
	struct slotmap m;
	unsigned depth = 1;
	int rc;

	if ((rc = slotmap_collect(&m, vk, io)) == 0)
		rc = build_levels(&m, vk, rebuild_visit, &r, root->top, &depth);
	slotmap_free(&m);
	root->depth = (uint8_t)depth;
	return rc;
}

struct verify_ctx {
	const struct volkeys *vk;
	const struct it_io *io;
	it_bad_cb bad;
	void *ctx;
	long nbad;
	int rc;
};

/* Compare a recomputed node with the stored one: leaves slot by slot. */
static int verify_visit(void *ctx, unsigned level, uint64_t prefix, const uint8_t *data)
{
	struct verify_ctx *v = ctx;
	size_t bytes = node_bytes(level), len;
	const uint8_t *raw;
	int rc = v->io->node_get(v->io->ctx, level, prefix, &raw, &len);

	if (rc < 0)
		return rc;
	if (rc == 1 && len == bytes && !memcmp(raw, data, bytes))
		return 0;
	if (rc == 0 && is_zero(data, bytes))
		return 0;
	if (level != 1) {
		v->bad(v->ctx, prefix << (IT_BITS * level), IT_PART_NODE);
		v->nbad++;
		return 0;
	}
	for (unsigned s = 0; s < IT_FAN; s++) {
		const uint8_t *want = data + s * IT_LEAF_SLOT;
		uint8_t zero[IT_LEAF_SLOT] = { 0 };
		const uint8_t *have = rc == 1 && len == bytes ? raw + s * IT_LEAF_SLOT : zero;
		uint64_t owner = prefix << IT_BITS | s;

		if (memcmp(want, have, IT_MAC)) {
			v->bad(v->ctx, owner, is_zero(have, IT_MAC) ? IT_PART_UNKNOWN
					      : is_zero(want, IT_MAC) ? IT_PART_MISSING : IT_PART_RECORD);
			v->nbad++;
		}
		for (int c = 0; c < 2; c++)
			if (memcmp(want + IT_MAC * (1 + c), have + IT_MAC * (1 + c), IT_MAC)) {
				v->bad(v->ctx, owner, c == IT_BULK ? IT_PART_BULK : IT_PART_SMALL);
				v->nbad++;
			}
	}
	return 0;
}

long itree_verify_all(const struct volkeys *vk, const struct it_io *io, const struct it_root *root,
		      it_bad_cb bad, void *ctx)
{
	struct verify_ctx v = { vk, io, bad, ctx, 0, 0 };
	struct slotmap m;
	uint8_t top[IT_MAC] = { 0 };
	unsigned depth = 1;
	int rc;

	if ((rc = slotmap_collect(&m, vk, io)) == 0)
		rc = build_levels(&m, vk, verify_visit, &v, top, &depth);
	slotmap_free(&m);
	if (rc < 0)
		return rc;
	if (v.nbad == 0 && (depth != root->depth || memcmp(top, root->top, IT_MAC))) {
		bad(ctx, 0, IT_PART_NODE);
		v.nbad++;
	}
	return v.nbad;
}
