/*
 * index: every record type round-trips through a real LMDB environment in
 * a mkdtemp directory; readdir offsets are stable while entries come and
 * go; group commit loses no update; and values edited, swapped or moved
 * with raw LMDB calls, or read under another volume uuid, fail as -EIO.
 */
#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/fileutil.h"
#include "store/index.h"
#include "crypto/secure.h"
#include "crypto/volkeys.h"
#include "../../tap.h"

static char tmp[64], dir[128];
static uint8_t mk[32], uuid[16];
static struct volkeys *vk;
static struct index *ix;

/* ---- helpers ---- */

struct op {
	int kind;
	uint64_t a, b;
	const char *name;
	size_t len;
	const void *val;
	size_t vlen;
	const struct mv_attr *attr;
	const struct chunk_rec *chunk;
	int64_t d1, d2;
};

enum { OP_INODE_PUT, OP_INODE_DEL, OP_DIRENT_PUT, OP_DIRENT_DEL, OP_CHUNK_PUT, OP_CHUNK_DEL,
       OP_XATTR_PUT, OP_XATTR_DEL, OP_XATTR_DEL_ALL, OP_ORPHAN_ADD, OP_ORPHAN_DEL,
       OP_PACK_ACCOUNT, OP_PACK_DEL, OP_META_PUT };

static int do_op(struct index_txn *t, void *arg)
{
	const struct op *o = arg;

	switch (o->kind) {
	case OP_INODE_PUT: return index_inode_put(t, o->attr);
	case OP_INODE_DEL: return index_inode_del(t, o->a);
	case OP_DIRENT_PUT: return index_dirent_put(t, o->a, o->name, o->len, o->b, (uint8_t)o->d1);
	case OP_DIRENT_DEL: return index_dirent_del(t, o->a, o->name, o->len);
	case OP_CHUNK_PUT: return index_chunk_put(t, o->a, o->b, o->chunk);
	case OP_CHUNK_DEL: return index_chunk_del(t, o->a, o->b);
	case OP_XATTR_PUT: return index_xattr_put(t, o->a, o->name, o->val, o->vlen);
	case OP_XATTR_DEL: return index_xattr_del(t, o->a, o->name);
	case OP_XATTR_DEL_ALL: return index_xattr_del_all(t, o->a);
	case OP_ORPHAN_ADD: return index_orphan_add(t, o->a);
	case OP_ORPHAN_DEL: return index_orphan_del(t, o->a);
	case OP_PACK_ACCOUNT: return index_pack_account(t, o->a, o->d1, o->d2);
	case OP_PACK_DEL: return index_pack_del(t, o->a);
	case OP_META_PUT: return index_meta_put(t, o->name, o->a);
	}
	return -EINVAL;
}

static int w_inode_put(const struct mv_attr *a)
{
	struct op o = { .kind = OP_INODE_PUT, .attr = a };

	return index_write(ix, do_op, &o);
}

static int w_inode_del(uint64_t ino)
{
	struct op o = { .kind = OP_INODE_DEL, .a = ino };

	return index_write(ix, do_op, &o);
}

static int w_dirent_put(uint64_t parent, const char *name, size_t len, uint64_t ino, uint8_t type)
{
	struct op o = { .kind = OP_DIRENT_PUT, .a = parent, .name = name, .len = len, .b = ino, .d1 = type };

	return index_write(ix, do_op, &o);
}

static int w_dirent_del(uint64_t parent, const char *name, size_t len)
{
	struct op o = { .kind = OP_DIRENT_DEL, .a = parent, .name = name, .len = len };

	return index_write(ix, do_op, &o);
}

static int w_chunk_put(uint64_t ino, uint64_t idx, const struct chunk_rec *c)
{
	struct op o = { .kind = OP_CHUNK_PUT, .a = ino, .b = idx, .chunk = c };

	return index_write(ix, do_op, &o);
}

static int w_simple(int kind, uint64_t a, uint64_t b)
{
	struct op o = { .kind = kind, .a = a, .b = b };

	return index_write(ix, do_op, &o);
}

static int w_xattr_put(uint64_t ino, const char *name, const void *val, size_t vlen)
{
	struct op o = { .kind = OP_XATTR_PUT, .a = ino, .name = name, .val = val, .vlen = vlen };

	return index_write(ix, do_op, &o);
}

static int w_xattr_del(uint64_t ino, const char *name)
{
	struct op o = { .kind = OP_XATTR_DEL, .a = ino, .name = name };

	return index_write(ix, do_op, &o);
}

static int w_pack_account(uint64_t pack, int64_t live, int64_t total)
{
	struct op o = { .kind = OP_PACK_ACCOUNT, .a = pack, .d1 = live, .d2 = total };

	return index_write(ix, do_op, &o);
}

static int w_meta_put(const char *name, uint64_t v)
{
	struct op o = { .kind = OP_META_PUT, .name = name, .a = v };

	return index_write(ix, do_op, &o);
}

static struct index_txn *rd(void)
{
	struct index_txn *t = NULL;

	if (index_read_begin(ix, &t) < 0 || !t) {
		printf("# index_read_begin failed\n");
		exit(2);
	}
	return t;
}

static int r_inode_get(uint64_t ino, struct mv_attr *a)
{
	struct index_txn *t = rd();
	int rc = index_inode_get(t, ino, a);

	index_read_end(t);
	return rc;
}

static int r_dirent_get(uint64_t parent, const char *name, size_t len, uint64_t *ino, uint8_t *type)
{
	struct index_txn *t = rd();
	uint64_t i = 0;
	uint8_t ty = 0;
	int rc = index_dirent_get(t, parent, name, len, ino ? ino : &i, type ? type : &ty);

	index_read_end(t);
	return rc;
}

static int r_meta_get(const char *name, uint64_t *v)
{
	struct index_txn *t = rd();
	int rc = index_meta_get(t, name, v);

	index_read_end(t);
	return rc;
}

static int r_chunk_get(uint64_t ino, uint64_t idx, struct chunk_rec *c)
{
	struct index_txn *t = rd();
	int rc = index_chunk_get(t, ino, idx, c);

	index_read_end(t);
	return rc;
}

static void make_attr(struct mv_attr *a, uint64_t ino, size_t slen)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->mode = 0100644 ^ (uint32_t)(ino & 0777);
	a->uid = 1000 + (uint32_t)ino;
	a->gid = 0xfffffffe;
	a->nlink = 3;
	a->size = (5ull << 30) + ino;	/* > 4 GiB */
	a->blocks = 0x123456789abull;
	a->atime_s = -1;
	a->atime_ns = 999999999;
	a->mtime_s = -86400LL * 365 * 100;
	a->mtime_ns = 1;
	a->ctime_s = INT64_MAX;
	a->ctime_ns = 500000000;
	a->rdev = 0x0102030405060708ull;
	a->parent = ino ^ 0xdeadbeefull;
	a->domain = 0;
	a->flags = 0x80000001u;
	a->symlink_len = (uint16_t)slen;
	for (size_t i = 0; i < slen; i++)
		a->symlink[i] = (char)('!' + (i * 7 + ino) % 90);
	a->symlink[slen] = '\0';
}

static int attr_eq(const struct mv_attr *x, const struct mv_attr *y)
{
	return x->ino == y->ino && x->mode == y->mode && x->uid == y->uid && x->gid == y->gid &&
	       x->nlink == y->nlink && x->size == y->size && x->blocks == y->blocks &&
	       x->atime_s == y->atime_s && x->mtime_s == y->mtime_s && x->ctime_s == y->ctime_s &&
	       x->atime_ns == y->atime_ns && x->mtime_ns == y->mtime_ns && x->ctime_ns == y->ctime_ns &&
	       x->rdev == y->rdev && x->parent == y->parent && x->domain == y->domain &&
	       x->flags == y->flags && x->symlink_len == y->symlink_len &&
	       !memcmp(x->symlink, y->symlink, x->symlink_len) && y->symlink[y->symlink_len] == '\0';
}

static void reopen(void)
{
	int rc;

	index_close(ix);
	ix = NULL;
	rc = index_open(&ix, dir, uuid, vk, 0);
	if (rc < 0 || !ix) {
		printf("# reopen failed: %d\n", rc);
		exit(2);
	}
}

/* Run fn in a child so that memory corruption cannot take the rest of the
 * tests down.  Returns the exit status, or 128 + signal. */
static int in_child(int (*fn)(const char *), const char *sub)
{
	char d[200];
	pid_t pid;
	int st;

	snprintf(d, sizeof(d), "%s/%s", tmp, sub);
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(fn(d));
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return 255;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- child cases (no LMDB env is open in the parent when they run) ---- */

static int put_long_symlink(struct index_txn *t, void *arg)
{
	return index_inode_put(t, arg);
}

/* 0: an over-long symlink_len was refused */
static int child_symlink_too_long(const char *d)
{
	static struct mv_attr a;
	struct index *x = NULL;
	int rc;

	if (index_open(&x, d, uuid, vk, 1) < 0)
		return 3;
	make_attr(&a, 77, INDEX_SYMLINK_MAX);
	a.symlink_len = INDEX_SYMLINK_MAX + 1;
	rc = index_write(x, put_long_symlink, &a);
	index_close(x);
	return rc < 0 ? 0 : 1;
}

static int meta_long(struct index_txn *t, void *arg)
{
	int rc = index_meta_put(t, arg, 42);

	/* a clean refusal is acceptable; silently corrupting is not */
	return rc;
}

/* 0: a 400-byte meta name round-trips or is refused cleanly */
static int child_meta_long_name(const char *d)
{
	static char name[401];
	struct index *x = NULL;
	struct index_txn *t = NULL;
	uint64_t v = 0;
	int rc;

	memset(name, 'm', 400);
	if (index_open(&x, d, uuid, vk, 1) < 0)
		return 3;
	rc = index_write(x, meta_long, name);
	if (rc == 0) {
		if (index_read_begin(x, &t) < 0)
			return 4;
		rc = index_meta_get(t, name, &v);
		index_read_end(t);
		rc = (rc == 0 && v == 42) ? 0 : 1;
	} else {
		rc = (rc == -EINVAL || rc == -ENAMETOOLONG || rc == -ERANGE) ? 0 : 1;
	}
	index_close(x);
	return rc;
}

/* 0: index_open of a regular file fails cleanly */
static int child_open_file(const char *d)
{
	struct index *x = NULL;
	FILE *f = fopen(d, "w");
	int rc;

	if (!f)
		return 3;
	fclose(f);
	rc = index_open(&x, d, uuid, vk, 1);
	if (rc == 0)
		index_close(x);
	return rc < 0 && x == NULL ? 0 : 1;
}

static void test_children(void)
{
	int st;

	st = in_child(child_symlink_too_long, "c1");
	ok(st == 0, "inode_put with symlink_len = INDEX_SYMLINK_MAX + 1 is refused (child status %d)", st);
	st = in_child(child_meta_long_name, "c2");
	ok(st == 0, "a 400-byte meta name round-trips or is refused cleanly (child status %d)", st);
	st = in_child(child_open_file, "c3");
	ok(st == 0, "index_open on a regular file fails cleanly (child status %d)", st);
}

/* ---- lifecycle ---- */

static void test_open(void)
{
	struct index *x = (struct index *)1;
	int rc;

	rc = index_open(&x, dir, uuid, vk, 0);
	ok(rc == -ENOENT && x == NULL, "open of a missing index without create -ENOENT (%d)", rc);
	rc = index_open(&ix, dir, uuid, vk, 1);
	ok(rc == 0 && ix, "create (%d)", rc);
	if (!ix)
		exit(2);
	{
		struct stat st;
		char p[256];

		snprintf(p, sizeof(p), "%s/data.mdb", dir);
		ok(stat(p, &st) == 0, "data.mdb exists");
	}
	{
		/* an empty directory is not an index */
		char empty[200];
		struct index *y = (struct index *)1;

		snprintf(empty, sizeof(empty), "%s/empty", tmp);
		mkdir(empty, 0700);
		rc = index_open(&y, empty, uuid, vk, 0);
		ok(rc == -ENOENT && y == NULL, "open of an empty dir without create -ENOENT (%d)", rc);
		{
			char f[260];
			struct stat st;

			snprintf(f, sizeof(f), "%s/data.mdb", empty);
			ok(stat(f, &st) < 0, "and nothing is created there");
		}
	}
}

/* ---- inodes ---- */

static void test_inodes(void)
{
	static struct mv_attr a, b, c, got;
	struct index_txn *t;
	uint64_t count = 0;
	int rc;

	make_attr(&a, 2, 0);
	make_attr(&b, 3, INDEX_SYMLINK_MAX);
	make_attr(&c, UINT64_MAX - 1, 1);
	c.atime_s = INT64_MIN;
	c.size = UINT64_MAX;
	ok(w_inode_put(&a) == 0 && w_inode_put(&b) == 0 && w_inode_put(&c) == 0, "inode puts");
	memset(&got, 0x5a, sizeof(got));
	rc = r_inode_get(2, &got);
	ok(rc == 0 && attr_eq(&a, &got), "inode 2 round trip, every field (%d)", rc);
	memset(&got, 0x5a, sizeof(got));
	rc = r_inode_get(3, &got);
	ok(rc == 0 && attr_eq(&b, &got), "inode with a 4095-byte symlink round trip (%d)", rc);
	ok(got.size > (4ull << 30) && got.atime_s == -1 && got.mtime_s < 0 && got.atime_ns == 999999999,
	   "size > 4 GiB, negative times and nsec intact");
	memset(&got, 0x5a, sizeof(got));
	rc = r_inode_get(UINT64_MAX - 1, &got);
	ok(rc == 0 && attr_eq(&c, &got) && got.atime_s == INT64_MIN && got.ctime_s == INT64_MAX &&
	   got.size == UINT64_MAX, "extreme values round trip (%d)", rc);
	ok(r_inode_get(4, &got) == -ENOENT, "missing inode -ENOENT");
	ok(r_inode_get(0, &got) == -ENOENT, "inode 0 -ENOENT");

	/* overwrite */
	a.nlink = 7;
	a.size = 12;
	ok(w_inode_put(&a) == 0 && r_inode_get(2, &got) == 0 && got.nlink == 7 && got.size == 12,
	   "inode overwrite");
	t = rd();
	ok(index_count_inodes(t, &count) == 0 && count == 3, "count_inodes 3 (%" PRIu64 ")", count);
	index_read_end(t);
	ok(w_inode_del(UINT64_MAX - 1) == 0 && r_inode_get(UINT64_MAX - 1, &got) == -ENOENT, "inode del");
	ok(w_inode_del(UINT64_MAX - 1) == -ENOENT, "inode del of a missing inode -ENOENT");

	/* a read txn sees its snapshot, not later writes */
	t = rd();
	make_attr(&c, 9, 3);
	ok(w_inode_put(&c) == 0, "put while a reader is open");
	ok(index_inode_get(t, 9, &got) == -ENOENT, "the older reader does not see it");
	index_read_end(t);
	ok(r_inode_get(9, &got) == 0 && attr_eq(&c, &got), "a new reader does");
}

/* ---- dirents ---- */

struct seen {
	int n, dup, foreign, bad_off;
	uint64_t last_off;
	int stop_after;
	uint64_t stop_off;
	/* up to 2000 names, by index: name "e%04d" */
	int count[2200];
};

static int parse_ename(const char *name, size_t len)
{
	char b[16];

	if (len < 2 || len > 10 || name[0] != 'e')
		return -1;
	memcpy(b, name + 1, len - 1);
	b[len - 1] = '\0';
	return atoi(b);
}

static int collect(void *ctx, const char *name, size_t len, uint64_t ino, uint8_t type, uint64_t next_off)
{
	struct seen *s = ctx;
	int i = parse_ename(name, len);

	if (i < 0 || i >= 2200 || ino != 100000u + (unsigned)i || type != (uint8_t)(i % 16)) {
		s->foreign++;
	} else {
		if (s->count[i]++)
			s->dup++;
	}
	if (next_off <= 2 || (s->n && next_off <= s->last_off))
		s->bad_off++;
	s->last_off = next_off;
	s->n++;
	if (s->stop_after && s->n == s->stop_after) {
		s->stop_off = next_off;
		return 1;
	}
	return 0;
}

static void ename(char *b, int i)
{
	sprintf(b, "e%04d", i);
}

struct batch_dirents {
	uint64_t parent;
	int from, to, del;
};

static int put_dirents(struct index_txn *t, void *arg)
{
	struct batch_dirents *bd = arg;
	char n[16];
	int rc;

	for (int i = bd->from; i < bd->to; i++) {
		ename(n, i);
		rc = bd->del ? index_dirent_del(t, bd->parent, n, strlen(n))
			     : index_dirent_put(t, bd->parent, n, strlen(n), 100000u + (unsigned)i,
						(uint8_t)(i % 16));
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int iter(uint64_t parent, uint64_t off, struct seen *s)
{
	struct index_txn *t = rd();
	int rc = index_dirent_iter(t, parent, off, collect, s);

	index_read_end(t);
	return rc;
}

static int abort_cb(void *ctx, const char *name, size_t len, uint64_t ino, uint8_t type, uint64_t off)
{
	(void)name; (void)len; (void)ino; (void)type; (void)off;
	++*(int *)ctx;
	return -EINTR;
}

struct odd {
	const char *name[5];
	size_t len[5];
	uint64_t ino[5];
	int seen[5];
	int other;
};

static int odd_cb(void *ctx, const char *name, size_t len, uint64_t ino, uint8_t type, uint64_t off)
{
	struct odd *o = ctx;

	(void)type;
	(void)off;
	for (int i = 0; i < 5; i++)
		if (len == o->len[i] && !memcmp(name, o->name[i], len) && ino == o->ino[i]) {
			o->seen[i]++;
			return 0;
		}
	o->other++;
	return 0;
}

static void test_dirents(void)
{
	char n255[255], all[255], nl[] = "line\nbreak";
	uint64_t ino = 0;
	uint8_t type = 0;
	struct index_txn *t;
	int rc;

	memset(n255, 'x', sizeof(n255));
	for (int i = 0; i < 255; i++)
		all[i] = (char)(i + 1);	/* 0x01 .. 0xff */
	ok(w_dirent_put(1, "hello", 5, 2, 8) == 0, "dirent put");
	rc = r_dirent_get(1, "hello", 5, &ino, &type);
	ok(rc == 0 && ino == 2 && type == 8, "dirent get (%d)", rc);
	ok(r_dirent_get(1, "hellO", 5, NULL, NULL) == -ENOENT, "dirent get of a missing name -ENOENT");
	ok(r_dirent_get(1, "hell", 4, NULL, NULL) == -ENOENT, "dirent get of a prefix -ENOENT");
	ok(r_dirent_get(2, "hello", 5, NULL, NULL) == -ENOENT, "same name under another parent -ENOENT");
	ok(w_dirent_put(1, n255, 255, 3, 4) == 0, "255-byte name put");
	rc = r_dirent_get(1, n255, 255, &ino, &type);
	ok(rc == 0 && ino == 3 && type == 4, "255-byte name get (%d)", rc);
	ok(w_dirent_put(1, all, 255, 4, 1) == 0, "name of bytes 0x01..0xff put");
	rc = r_dirent_get(1, all, 255, &ino, &type);
	ok(rc == 0 && ino == 4 && type == 1, "name of bytes 0x01..0xff get (%d)", rc);
	ok(w_dirent_put(1, nl, strlen(nl), 5, 8) == 0 && r_dirent_get(1, nl, strlen(nl), &ino, NULL) == 0 &&
	   ino == 5, "name with a newline");
	ok(w_dirent_put(1, "\xff", 1, 6, 8) == 0 && r_dirent_get(1, "\xff", 1, &ino, NULL) == 0 && ino == 6,
	   "one-byte name 0xff");
	{
		char n256[256];

		memset(n256, 'y', sizeof(n256));
		ok(w_dirent_put(1, n256, 256, 7, 8) == -ENAMETOOLONG, "256-byte name -ENAMETOOLONG");
		ok(w_dirent_put(1, "", 0, 7, 8) == -ENAMETOOLONG, "empty name refused");
	}
	/* overwrite (rename over) */
	ok(w_dirent_put(1, "hello", 5, 9, 4) == 0 && r_dirent_get(1, "hello", 5, &ino, &type) == 0 &&
	   ino == 9 && type == 4, "dirent overwrite");

	/* listing the odd names: each comes back byte for byte */
	{
		struct odd o = { { "hello", n255, all, nl, "\xff" }, { 5, 255, 255, strlen(nl), 1 },
				 { 9, 3, 4, 5, 6 }, { 0 }, 0 };
		int hits = 0;

		t = rd();
		rc = index_dirent_iter(t, 1, 0, odd_cb, &o);
		index_read_end(t);
		for (int i = 0; i < 5; i++)
			hits += o.seen[i] == 1;
		ok(rc == 0 && hits == 5 && o.other == 0, "dir 1 lists its 5 odd names exactly, once each");
	}

	/* dir_empty */
	t = rd();
	ok(index_dir_empty(t, 1) == 0, "dir 1 not empty");
	ok(index_dir_empty(t, 2) == 1, "dir 2 empty");
	ok(index_dir_empty(t, 0) == 1, "dir 0 empty (neighbour below)");
	index_read_end(t);
	ok(w_dirent_put(3, "only", 4, 10, 8) == 0, "one entry in dir 3");
	t = rd();
	ok(index_dir_empty(t, 3) == 0 && index_dir_empty(t, 2) == 1 && index_dir_empty(t, 4) == 1,
	   "dir 3 not empty; its neighbours 2 and 4 are");
	index_read_end(t);
	ok(w_dirent_del(3, "only", 4) == 0, "dirent del");
	ok(r_dirent_get(3, "only", 4, NULL, NULL) == -ENOENT, "deleted entry -ENOENT");
	ok(w_dirent_del(3, "only", 4) == -ENOENT, "dirent del of a missing entry -ENOENT");
	t = rd();
	ok(index_dir_empty(t, 3) == 1, "dir 3 empty again");
	index_read_end(t);
	ok(w_dirent_put(UINT64_MAX, "top", 3, 11, 8) == 0, "entry under parent UINT64_MAX");
	t = rd();
	ok(index_dir_empty(t, UINT64_MAX) == 0 && index_dir_empty(t, UINT64_MAX - 1) == 1,
	   "dir_empty at the top of the key space");
	index_read_end(t);

	/* iteration: 1000 entries in dir 10, decoys in 9 and 11 */
	{
		static struct seen s;
		struct batch_dirents bd = { 10, 0, 1000, 0 }, d9 = { 9, 1000, 1050, 0 }, d11 = { 11, 1050, 1100, 0 };
		int bad = 0, calls = 0;

		ok(index_write(ix, put_dirents, &bd) == 0, "1000 entries in dir 10");
		ok(index_write(ix, put_dirents, &d9) == 0 && index_write(ix, put_dirents, &d11) == 0,
		   "50 decoys in dirs 9 and 11");
		for (uint64_t off = 0; off <= 2; off++) {
			memset(&s, 0, sizeof(s));
			rc = iter(10, off, &s);
			for (int i = 0; i < 1000; i++)
				if (s.count[i] != 1)
					bad++;
			for (int i = 1000; i < 1100; i++)
				if (s.count[i])
					bad++;
			ok(rc == 0 && s.n == 1000 && bad == 0 && s.dup == 0 && s.foreign == 0,
			   "iter from off %" PRIu64 " lists each of the 1000 exactly once (n=%d rc=%d bad=%d)",
			   off, s.n, rc, bad);
			ok(s.bad_off == 0, "next_off > 2 and strictly increasing in listing order");
		}
		memset(&s, 0, sizeof(s));
		ok(iter(2, 0, &s) == 0 && s.n == 0, "iter of an empty dir lists nothing");
		memset(&s, 0, sizeof(s));
		s.stop_after = 10;
		ok(iter(10, 0, &s) == 0 && s.n == 10, "cb returning 1 stops the walk (0 returned)");
		{
			struct index_txn *tt = rd();

			rc = index_dirent_iter(tt, 10, 0, abort_cb, &calls);
			index_read_end(tt);
			ok(rc == -EINTR && calls == 1, "cb returning -EINTR aborts with -EINTR after one call");
		}
		memset(&s, 0, sizeof(s));
		ok(iter(10, UINT64_MAX, &s) == 0 && s.n == 0, "off UINT64_MAX lists nothing");
	}

	/* resume from every entry's next_off: exactly the remaining entries */
	{
		static struct seen s, r;
		struct batch_dirents bd = { 20, 0, 200, 0 };
		int bad = 0;

		ok(index_write(ix, put_dirents, &bd) == 0, "200 entries in dir 20");
		memset(&s, 0, sizeof(s));
		rc = iter(20, 0, &s);
		ok(rc == 0 && s.n == 200 && s.dup == 0 && s.foreign == 0, "dir 20 lists 200");
		/* walk again stopping after k entries: the offset of entry k */
		for (int k = 1; k <= 200 && !bad; k++) {
			memset(&s, 0, sizeof(s));
			s.stop_after = k;
			iter(20, 0, &s);
			memset(&r, 0, sizeof(r));
			rc = iter(20, s.stop_off, &r);
			/* r must be exactly the complement of s */
			if (rc != 0 || r.n != 200 - k || r.dup || r.foreign)
				bad++;
			for (int i = 0; i < 200; i++)
				if (s.count[i] + r.count[i] != 1)
					bad++;
			if (bad)
				printf("# resume after %d entries: n=%d rc=%d\n", k, r.n, rc);
		}
		ok(bad == 0, "resuming from each entry's next_off lists exactly the entries after it");
	}

	/* stability while entries come and go */
	{
		static struct seen s, r;
		struct batch_dirents bd = { 30, 0, 1000, 0 }, add = { 30, 1000, 1100, 0 };
		int listed_twice = 0, missed = 0, resurrected = 0, kill[100], nkill = 0;

		ok(index_write(ix, put_dirents, &bd) == 0, "1000 entries in dir 30");
		memset(&s, 0, sizeof(s));
		s.stop_after = 500;
		ok(iter(30, 0, &s) == 0 && s.n == 500, "list the first 500");
		/* delete 50 already listed and 50 not yet listed */
		for (int i = 0, a = 0, b = 0; i < 1000 && nkill < 100; i++) {
			if (s.count[i] && a < 50) {
				kill[nkill++] = i;
				a++;
			} else if (!s.count[i] && b < 50) {
				kill[nkill++] = i;
				b++;
			}
		}
		for (int k = 0; k < nkill; k++) {
			struct batch_dirents del = { 30, kill[k], kill[k] + 1, 1 };

			if (index_write(ix, put_dirents, &del) != 0)
				missed += 1000;
		}
		ok(index_write(ix, put_dirents, &add) == 0, "added 100 new entries");
		memset(&r, 0, sizeof(r));
		ok(iter(30, s.stop_off, &r) == 0, "resume from the saved offset");
		for (int i = 0; i < 1000; i++) {
			int killed = 0;

			for (int k = 0; k < nkill; k++)
				if (kill[k] == i)
					killed = 1;
			if (killed && r.count[i])
				resurrected++;
			if (s.count[i] && r.count[i])
				listed_twice++;
			if (!killed && !s.count[i] && r.count[i] != 1)
				missed++;
		}
		for (int i = 1000; i < 1100; i++)
			if (r.count[i] > 1)
				listed_twice++;
		ok(nkill == 100 && missed == 0,
		   "every surviving entry not yet listed is listed exactly once (%d missed)", missed);
		ok(listed_twice == 0 && r.dup == 0, "no entry listed twice (%d)", listed_twice);
		ok(resurrected == 0, "deleted entries are not listed");
		ok(r.foreign == 0, "no foreign entries");
	}
}

/* ---- chunks ---- */

struct chunk_seen {
	int n, bad;
	uint64_t ino, next_idx;
	int stop_after;
};

static int chunk_cb(void *ctx, uint64_t ino, uint64_t idx, const struct chunk_rec *c)
{
	struct chunk_seen *s = ctx;

	if (ino != s->ino || idx < s->next_idx || c->pack != ino * 1000 + idx ||
	    c->off != idx * 4096 + 32 || c->len != 4096 + 40 || c->plain_len != 4096 ||
	    c->version != idx + 7)
		s->bad++;
	s->next_idx = idx + 1;
	s->n++;
	return s->stop_after && s->n == s->stop_after;
}

static void mkchunk(struct chunk_rec *c, uint64_t ino, uint64_t idx)
{
	c->pack = ino * 1000 + idx;
	c->off = idx * 4096 + 32;
	c->len = 4096 + 40;
	c->plain_len = 4096;
	c->version = idx + 7;
}

struct all_seen {
	int n, bad;
	uint64_t last_ino, last_idx;
};

static int all_cb(void *ctx, uint64_t ino, uint64_t idx, const struct chunk_rec *c)
{
	struct all_seen *s = ctx;

	if (s->n && (ino < s->last_ino || (ino == s->last_ino && idx <= s->last_idx)))
		s->bad++;
	if (c->pack != ino * 1000 + idx)
		s->bad++;
	s->last_ino = ino;
	s->last_idx = idx;
	s->n++;
	return 0;
}

static void test_chunks(void)
{
	struct chunk_rec c, got;
	struct index_txn *t;
	struct chunk_seen s;
	struct all_seen as = { 0 };
	int bad = 0, rc;

	for (uint64_t ino = 40; ino <= 42; ino++)
		for (uint64_t idx = 0; idx < 20; idx++) {
			mkchunk(&c, ino, idx);
			if (w_chunk_put(ino, idx, &c) != 0)
				bad++;
		}
	mkchunk(&c, 41, 1ull << 40);
	bad += w_chunk_put(41, 1ull << 40, &c) != 0;
	ok(bad == 0, "chunk puts for inodes 40..42");
	rc = r_chunk_get(41, 5, &got);
	mkchunk(&c, 41, 5);
	ok(rc == 0 && got.pack == c.pack && got.off == c.off && got.len == c.len &&
	   got.plain_len == c.plain_len && got.version == c.version, "chunk get round trip");
	rc = r_chunk_get(41, 1ull << 40, &got);
	ok(rc == 0 && got.pack == 41 * 1000 + (1ull << 40), "chunk at index 2^40");
	ok(r_chunk_get(41, 20, &got) == -ENOENT, "missing chunk -ENOENT");
	ok(r_chunk_get(43, 0, &got) == -ENOENT, "chunk of an inode without chunks -ENOENT");

	t = rd();
	memset(&s, 0, sizeof(s));
	s.ino = 41;
	rc = index_chunk_iter(t, 41, 0, chunk_cb, &s);
	ok(rc == 0 && s.n == 21 && s.bad == 0, "chunk_iter from 0 lists ino 41's 21 chunks in order (n=%d bad=%d)",
	   s.n, s.bad);
	memset(&s, 0, sizeof(s));
	s.ino = 41;
	s.next_idx = 12;
	rc = index_chunk_iter(t, 41, 12, chunk_cb, &s);
	ok(rc == 0 && s.n == 9 && s.bad == 0, "chunk_iter from 12 lists 12..19 and 2^40 (n=%d)", s.n);
	memset(&s, 0, sizeof(s));
	s.ino = 41;
	s.stop_after = 3;
	ok(index_chunk_iter(t, 41, 0, chunk_cb, &s) == 0 && s.n == 3, "chunk_iter stops when cb returns 1");
	memset(&s, 0, sizeof(s));
	s.ino = 43;
	ok(index_chunk_iter(t, 43, 0, chunk_cb, &s) == 0 && s.n == 0, "chunk_iter of ino 43 lists nothing");
	ok(index_chunk_iter_all(t, all_cb, &as) == 0 && as.n == 61 && as.bad == 0,
	   "chunk_iter_all lists all 61 in (ino, idx) order (n=%d)", as.n);
	index_read_end(t);

	ok(w_simple(OP_CHUNK_DEL, 41, 5) == 0 && r_chunk_get(41, 5, &got) == -ENOENT, "chunk del");
	ok(w_simple(OP_CHUNK_DEL, 41, 5) == -ENOENT, "chunk del of a missing chunk -ENOENT");
	t = rd();
	memset(&s, 0, sizeof(s));
	s.ino = 41;
	ok(index_chunk_iter(t, 41, 0, chunk_cb, &s) == 0 && s.n == 20, "chunk_iter skips the deleted chunk");
	index_read_end(t);
}

/* ---- purge: every record of one inode, in one transaction ---- */

static int do_purge(struct index_txn *t, void *arg)
{
	return index_inode_purge(t, *(uint64_t *)arg);
}

static void test_purge(void)
{
	static struct mv_attr a, b, got;
	struct chunk_rec c, cb;
	struct pack_rec before, after;
	struct index_txn *t;
	char list[256];
	uint64_t ino = 7070;
	int bad = 0;

	/* 7070 and its neighbour 7071 share pack 97000: only 70's bytes may go */
	make_attr(&a, 7070, 0);
	make_attr(&b, 7071, 0);
	bad += w_inode_put(&a) != 0 || w_inode_put(&b) != 0;
	for (uint64_t idx = 0; idx < 3; idx++) {
		mkchunk(&c, 7070, idx);
		c.pack = 97000;
		bad += w_chunk_put(7070, idx, &c) != 0;
	}
	mkchunk(&cb, 7071, 0);
	cb.pack = 97000;
	bad += w_chunk_put(7071, 0, &cb) != 0;
	{
		struct op o = { .kind = OP_PACK_ACCOUNT, .a = 97000, .d1 = 4 * (int64_t)c.len,
				.d2 = 4 * (int64_t)c.len };

		bad += index_write(ix, do_op, &o) != 0;
	}
	bad += w_xattr_put(7070, "user.a", "1", 1) != 0 || w_xattr_put(7071, "user.b", "2", 1) != 0;
	bad += w_simple(OP_ORPHAN_ADD, 7070, 0) != 0;
	ok(bad == 0, "purge: inode 7070 with 3 chunks, an xattr and an orphan mark, beside inode 7071");
	t = rd();
	index_pack_get(t, 97000, &before);
	index_read_end(t);
	ok(index_write(ix, do_purge, &ino) == 0, "index_inode_purge(7070)");
	ok(r_inode_get(7070, &got) == -ENOENT, "its inode record is gone");
	ok(r_chunk_get(7070, 0, &c) == -ENOENT && r_chunk_get(7070, 2, &c) == -ENOENT, "its chunks are gone");
	t = rd();
	ok(index_xattr_list(t, 7070, list, sizeof(list)) <= 0, "its xattrs are gone");
	{
		uint64_t orphans[8];
		int n = index_orphan_list(t, orphans, 8), mark = 0;

		for (int i = 0; i < n; i++)
			mark |= orphans[i] == 7070;
		ok(n >= 0 && !mark, "its orphan mark is gone");
	}
	index_pack_get(t, 97000, &after);
	ok(before.live_bytes - after.live_bytes == 3 * (uint64_t)c.len,
	   "the pack lost exactly its 3 chunks' live bytes (%llu -> %llu)",
	   (unsigned long long)before.live_bytes, (unsigned long long)after.live_bytes);
	ok(index_inode_get(t, 7071, &got) == 0 && index_chunk_get(t, 7071, 0, &cb) == 0 &&
	   index_xattr_list(t, 7071, list, sizeof(list)) > 0, "the neighbour 7071 keeps all of its records");
	index_read_end(t);
	{
		int rc = index_write(ix, do_purge, &ino);

		ok(rc == 0 || rc == -ENOENT, "a second purge of 7070 is harmless (%d)", rc);
	}
	ok(r_inode_get(7071, &got) == 0, "and 7071 is still there");
	/* leave the index as the later tests expect it */
	ino = 7071;
	ok(index_write(ix, do_purge, &ino) == 0 && w_simple(OP_PACK_DEL, 97000, 0) == 0,
	   "purge 7071 and drop the pack record");
}

/* ---- xattrs ---- */

static void test_xattrs(void)
{
	char buf[256], list[1024], n255[256], n256[257];
	static uint8_t big[INDEX_XATTR_VALUE_MAX + 1];
	struct index_txn *t;
	ssize_t n;

	memset(n255, 'n', 255);
	n255[255] = '\0';
	memset(n256, 'n', 256);
	n256[256] = '\0';
	ok(w_xattr_put(50, "user.a", "alpha", 5) == 0, "xattr put user.a");
	ok(w_xattr_put(50, "user.bb", "", 0) == 0, "xattr put empty value");
	ok(w_xattr_put(50, "security.selinux", "x\0y", 3) == 0, "xattr put binary value");
	ok(w_xattr_put(51, "user.a", "other", 5) == 0, "same name on inode 51");
	ok(w_xattr_put(49, "user.z", "z", 1) == 0, "xattr on inode 49");
	t = rd();
	ok(index_xattr_get(t, 50, "user.a", NULL, 0) == 5, "size probe (cap 0) = 5");
	n = index_xattr_get(t, 50, "user.a", buf, sizeof(buf));
	ok(n == 5 && !memcmp(buf, "alpha", 5), "get value");
	n = index_xattr_get(t, 50, "user.a", buf, 5);
	ok(n == 5, "get with an exact buffer");
	ok(index_xattr_get(t, 50, "user.a", buf, 4) == -ERANGE, "get with a small buffer -ERANGE");
	ok(index_xattr_get(t, 50, "user.bb", buf, sizeof(buf)) == 0, "empty value length 0");
	ok(index_xattr_get(t, 50, "user.bb", NULL, 0) == 0, "empty value probe 0");
	n = index_xattr_get(t, 50, "security.selinux", buf, sizeof(buf));
	ok(n == 3 && !memcmp(buf, "x\0y", 3), "binary value");
	ok(index_xattr_get(t, 50, "user.missing", buf, sizeof(buf)) == -ENODATA, "missing -ENODATA");
	ok(index_xattr_get(t, 50, "user.missing", NULL, 0) == -ENODATA, "missing probe -ENODATA");
	ok(index_xattr_get(t, 52, "user.a", buf, sizeof(buf)) == -ENODATA, "other inode -ENODATA");
	n = index_xattr_get(t, 51, "user.a", buf, sizeof(buf));
	ok(n == 5 && !memcmp(buf, "other", 5), "inode 51 keeps its own value");

	/* list */
	n = index_xattr_list(t, 50, NULL, 0);
	ok(n == (ssize_t)(sizeof("user.a") + sizeof("user.bb") + sizeof("security.selinux")),
	   "list probe = total length (%zd)", n);
	ok(index_xattr_list(t, 50, list, (size_t)n - 1) == -ERANGE, "list with a small buffer -ERANGE");
	memset(list, 0x7f, sizeof(list));
	n = index_xattr_list(t, 50, list, sizeof(list));
	{
		int a = 0, b = 0, s = 0, other = 0;

		for (ssize_t p = 0; p < n; p += (ssize_t)strlen(list + p) + 1) {
			if (!strcmp(list + p, "user.a"))
				a++;
			else if (!strcmp(list + p, "user.bb"))
				b++;
			else if (!strcmp(list + p, "security.selinux"))
				s++;
			else
				other++;
		}
		ok(n > 0 && a == 1 && b == 1 && s == 1 && other == 0 && list[n - 1] == '\0',
		   "list holds each name once, NUL-separated");
	}
	ok(index_xattr_list(t, 52, NULL, 0) == 0, "list of an inode without xattrs: 0");
	index_read_end(t);

	/* limits */
	ok(w_xattr_put(50, n255, "v", 1) == 0, "255-byte name");
	t = rd();
	ok(index_xattr_get(t, 50, n255, buf, sizeof(buf)) == 1, "255-byte name get");
	index_read_end(t);
	ok(w_xattr_put(50, n256, "v", 1) == -ERANGE, "256-byte name -ERANGE");
	ok(w_xattr_put(50, "", "v", 1) == -ERANGE, "empty name -ERANGE");
	memset(big, 0xab, sizeof(big));
	ok(w_xattr_put(50, "user.big", big, INDEX_XATTR_VALUE_MAX) == 0, "64 KiB value");
	ok(w_xattr_put(50, "user.big2", big, INDEX_XATTR_VALUE_MAX + 1) == -E2BIG, "64 KiB + 1 -E2BIG");
	t = rd();
	{
		static uint8_t back[INDEX_XATTR_VALUE_MAX];

		n = index_xattr_get(t, 50, "user.big", back, sizeof(back));
		ok(n == INDEX_XATTR_VALUE_MAX && !memcmp(back, big, sizeof(back)), "64 KiB value reads back");
	}
	index_read_end(t);

	/* overwrite, del */
	ok(w_xattr_put(50, "user.a", "ALPHA!", 6) == 0, "overwrite");
	t = rd();
	n = index_xattr_get(t, 50, "user.a", buf, sizeof(buf));
	ok(n == 6 && !memcmp(buf, "ALPHA!", 6), "overwritten value");
	index_read_end(t);
	ok(w_xattr_del(50, "user.a") == 0, "del");
	ok(w_xattr_del(50, "user.a") == -ENODATA, "del of a missing xattr -ENODATA");
	t = rd();
	ok(index_xattr_get(t, 50, "user.a", buf, sizeof(buf)) == -ENODATA, "deleted -> -ENODATA");
	n = index_xattr_list(t, 50, NULL, 0);
	ok(n == (ssize_t)(sizeof("user.bb") + sizeof("security.selinux") + 256 + sizeof("user.big")),
	   "list after del (%zd)", n);
	index_read_end(t);

	/* a dirent and an xattr of the same (ino, name) do not collide */
	ok(w_dirent_put(50, "user.bb", 7, 123, 8) == 0, "dirent named like an xattr");
	t = rd();
	ok(index_xattr_get(t, 50, "user.bb", NULL, 0) == 0, "xattr unaffected by the dirent");
	index_read_end(t);

	ok(w_simple(OP_XATTR_DEL_ALL, 50, 0) == 0, "del_all");
	t = rd();
	ok(index_xattr_list(t, 50, NULL, 0) == 0, "no xattrs left on 50");
	ok(index_xattr_get(t, 50, "user.bb", NULL, 0) == -ENODATA, "user.bb gone");
	n = index_xattr_get(t, 51, "user.a", buf, sizeof(buf));
	ok(n == 5 && index_xattr_get(t, 49, "user.z", buf, sizeof(buf)) == 1,
	   "neighbouring inodes 49 and 51 keep theirs");
	index_read_end(t);
	ok(r_dirent_get(50, "user.bb", 7, NULL, NULL) == 0, "the dirent survives del_all");
	ok(w_simple(OP_XATTR_DEL_ALL, 50, 0) == 0, "del_all with nothing to delete");
}

/* ---- orphans, packs, meta ---- */

struct pack_seen {
	int n, bad;
};

static int pack_cb(void *ctx, uint64_t pack, const struct pack_rec *p)
{
	struct pack_seen *s = ctx;

	if (pack == 7 && (p->live_bytes != 150 || p->total_bytes != 400))
		s->bad++;
	if (pack == 8 && (p->live_bytes != 1 || p->total_bytes != 2))
		s->bad++;
	if (pack != 7 && pack != 8)
		s->bad++;
	s->n++;
	return 0;
}

static void test_misc(void)
{
	uint64_t inos[8], v = 0;
	struct index_txn *t;
	struct pack_rec p;
	struct pack_seen ps = { 0 };
	int n;

	ok(w_simple(OP_ORPHAN_ADD, 300, 0) == 0 && w_simple(OP_ORPHAN_ADD, 100, 0) == 0 &&
	   w_simple(OP_ORPHAN_ADD, 200, 0) == 0, "orphan add x3");
	ok(w_simple(OP_ORPHAN_ADD, 200, 0) == 0, "orphan add twice is fine");
	t = rd();
	n = index_orphan_list(t, inos, 8);
	ok(n == 3 && inos[0] == 100 && inos[1] == 200 && inos[2] == 300, "orphan list (%d)", n);
	n = index_orphan_list(t, inos, 2);
	ok(n == 2 && inos[0] == 100 && inos[1] == 200, "orphan list honours max");
	index_read_end(t);
	ok(w_simple(OP_ORPHAN_DEL, 200, 0) == 0, "orphan del");
	ok(w_simple(OP_ORPHAN_DEL, 200, 0) == -ENOENT, "orphan del of a missing one -ENOENT");
	t = rd();
	n = index_orphan_list(t, inos, 8);
	ok(n == 2 && inos[0] == 100 && inos[1] == 300, "orphan list after del");
	index_read_end(t);

	ok(w_pack_account(7, 100, 200) == 0 && w_pack_account(7, 100, 200) == 0, "pack_account twice");
	index_dead_bytes_reset(ix);
	ok(w_pack_account(7, -50, 0) == 0, "pack_account negative delta");
	ok(index_dead_bytes(ix) == 50, "lost live bytes counted for early compaction (%llu)",
	   (unsigned long long)index_dead_bytes(ix));
	index_dead_bytes_reset(ix);
	ok(index_dead_bytes(ix) == 0, "dead byte count resets");
	ok(w_pack_account(8, 1, 2) == 0, "pack_account another pack");
	t = rd();
	ok(index_pack_get(t, 7, &p) == 0 && p.live_bytes == 150 && p.total_bytes == 400 && p.state == 0,
	   "pack 7 accumulated: live 150, total 400");
	ok(index_pack_get(t, 9, &p) == -ENOENT, "pack_get of a missing pack -ENOENT");
	ok(index_pack_iter(t, pack_cb, &ps) == 0 && ps.n == 2 && ps.bad == 0, "pack_iter lists 7 and 8");
	index_read_end(t);
	ok(w_simple(OP_PACK_DEL, 8, 0) == 0, "pack del");
	t = rd();
	ok(index_pack_get(t, 8, &p) == -ENOENT, "deleted pack -ENOENT");
	index_read_end(t);

	ok(r_meta_get("next_ino", &v) == -ENOENT, "meta get of a missing name -ENOENT");
	ok(w_meta_put("next_ino", 12345678901234ull) == 0, "meta put");
	ok(r_meta_get("next_ino", &v) == 0 && v == 12345678901234ull, "meta get");
	ok(w_meta_put("next_ino", UINT64_MAX) == 0 && r_meta_get("next_ino", &v) == 0 && v == UINT64_MAX,
	   "meta overwrite");
	ok(r_meta_get("next_in", &v) == -ENOENT, "meta name prefix is another name");
}

/* ---- group commit ---- */

#define GC_THREADS 8
#define GC_ITERS 500

static int incr(struct index_txn *t, void *arg)
{
	uint64_t v = 0;
	int rc = index_meta_get(t, arg, &v);

	if (rc < 0 && rc != -ENOENT)
		return rc;
	return index_meta_put(t, arg, v + 1);
}

/* clean failures that ran on another thread: batched by a leader */
static int batched_failures;

static int fail_clean(struct index_txn *t, void *arg)
{
	uint64_t v;

	if (arg && !pthread_equal(*(pthread_t *)arg, pthread_self()))
		__atomic_add_fetch(&batched_failures, 1, __ATOMIC_RELAXED);
	/* checks first, nothing mutated */
	if (index_meta_get(t, "counter", &v) < 0)
		return -ENOENT;
	return -EPERM;
}

static int fail_dirty(struct index_txn *t, void *arg)
{
	int rc = index_meta_put(t, arg, 1);

	return rc < 0 ? rc : -EPERM;
}

struct gc_worker {
	int mode;	/* 0: increment only; 1: mixed with clean failures */
	int errors, failed_ok, incs;
};

static void *gc_thread(void *arg)
{
	struct gc_worker *w = arg;

	for (int i = 0; i < GC_ITERS; i++) {
		if (w->mode == 1 && i % 3 == 1) {
			pthread_t self = pthread_self();

			if (index_write(ix, fail_clean, &self) == -EPERM)
				w->failed_ok++;
			else
				w->errors++;
		} else if (w->mode == 2 && i % 5 == 2) {
			if (index_write(ix, fail_dirty, "poison") == -EPERM)
				w->failed_ok++;
			else
				w->errors++;
		} else {
			if (index_write(ix, incr, "counter") == 0)
				w->incs++;
			else
				w->errors++;
		}
	}
	return NULL;
}

static int run_gc(int mode, int *incs, int *failed)
{
	static struct gc_worker w[GC_THREADS];
	pthread_t th[GC_THREADS];
	int errors = 0;

	*incs = *failed = 0;
	for (int i = 0; i < GC_THREADS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].mode = mode;
		pthread_create(&th[i], NULL, gc_thread, &w[i]);
	}
	for (int i = 0; i < GC_THREADS; i++) {
		pthread_join(th[i], NULL);
		errors += w[i].errors;
		*incs += w[i].incs;
		*failed += w[i].failed_ok;
	}
	return errors;
}

/* A deterministic batch: a slow writer holds the leader role while seven
 * others queue up; whichever of them leads next commits them all at once. */
static volatile int slow_entered;

static int slow_writer(struct index_txn *t, void *arg)
{
	(void)arg;
	__atomic_store_n(&slow_entered, 1, __ATOMIC_SEQ_CST);
	usleep(300000);
	return index_meta_put(t, "slow", 1);
}

static void *slow_thread(void *arg)
{
	*(int *)arg = index_write(ix, slow_writer, NULL);
	return NULL;
}

struct queued {
	int kind;	/* 0 incr, 1 clean failure, 2 dirty failure */
	int rc;
};

static void *queued_thread(void *arg)
{
	struct queued *q = arg;
	pthread_t self = pthread_self();

	if (q->kind == 0)
		q->rc = index_write(ix, incr, "batch_ctr");
	else if (q->kind == 1)
		q->rc = index_write(ix, fail_clean, &self);
	else
		q->rc = index_write(ix, fail_dirty, "poison_batch");
	return NULL;
}

static void test_one_batch(void)
{
	struct queued q[7] = { { 0, 1 }, { 1, 1 }, { 0, 1 }, { 1, 1 }, { 0, 1 }, { 1, 1 }, { 2, 1 } };
	pthread_t slow, th[7];
	int slow_rc = 1, bad = 0, rc;
	uint64_t v = 0;

	batched_failures = 0;
	pthread_create(&slow, NULL, slow_thread, &slow_rc);
	while (!__atomic_load_n(&slow_entered, __ATOMIC_SEQ_CST))
		usleep(1000);
	for (int i = 0; i < 7; i++)
		pthread_create(&th[i], NULL, queued_thread, &q[i]);
	pthread_join(slow, NULL);
	for (int i = 0; i < 7; i++) {
		pthread_join(th[i], NULL);
		if (q[i].rc != (q[i].kind == 0 ? 0 : -EPERM))
			bad++;
	}
	ok(slow_rc == 0 && bad == 0, "queued batch: increments return 0, failures -EPERM");
	ok(batched_failures >= 2, "the failing writers ran inside one leader's batch (%d of 3)", batched_failures);
	rc = r_meta_get("batch_ctr", &v);
	ok(rc == 0 && v == 3, "the 3 increments in that batch committed (%" PRIu64 ")", v);
	rc = r_meta_get("poison_batch", &v);
	ok(rc == -ENOENT, "the writer that failed after a put left no trace in that batch (meta_get %d)", rc);
}

static void test_group_commit(void)
{
	uint64_t v = 0;
	int incs, failed, errors, rc;

	errors = run_gc(0, &incs, &failed);
	ok(errors == 0 && incs == GC_THREADS * GC_ITERS, "%d threads x %d index_write increments succeed",
	   GC_THREADS, GC_ITERS);
	rc = r_meta_get("counter", &v);
	ok(rc == 0 && v == GC_THREADS * GC_ITERS, "counter is exactly %d (%" PRIu64 ")", GC_THREADS * GC_ITERS, v);

	/* clean failures mixed in: they return their error, the rest commit */
	errors = run_gc(1, &incs, &failed);
	rc = r_meta_get("counter", &v);
	ok(errors == 0 && failed == GC_THREADS * ((GC_ITERS + 1) / 3), "every clean failure returned -EPERM (%d)",
	   failed);
	printf("# %d clean failures ran inside another thread's batch\n", batched_failures);
	ok(rc == 0 && v == (uint64_t)(GC_THREADS * GC_ITERS + incs) &&
	   incs == GC_THREADS * GC_ITERS - failed,
	   "batches with failing writers commit everyone else (%" PRIu64 ")", v);

	/* single-threaded: a clean failure leaves nothing */
	ok(index_write(ix, fail_clean, NULL) == -EPERM, "clean failure returns its error");

	/* a writer that fails after mutating is replayed without it */
	rc = index_write(ix, fail_dirty, "poison1");
	ok(rc == -EPERM, "failure after a put returns the error (%d)", rc);
	rc = r_meta_get("poison1", &v);
	ok(rc == -ENOENT, "failure after a put leaves no trace (meta_get %d)", rc);
	{
		uint64_t before = 0;

		r_meta_get("counter", &before);
		errors = run_gc(2, &incs, &failed);
		rc = r_meta_get("counter", &v);
		ok(errors == 0 && v == before + (uint64_t)incs, "mixed with dirty failures: others still commit");
		rc = r_meta_get("poison", &v);
		ok(rc == -ENOENT, "no dirty failure in a batch left a trace (meta_get %d)", rc);
	}
}

/* ---- tampering with raw LMDB ---- */

struct raw {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
};

#define RAW_MAP_SIZE (16ull << 30)

static int raw_open(struct raw *r, const char *db)
{
	memset(r, 0, sizeof(*r));
	if (mdb_env_create(&r->env))
		return -1;
	/* the map size fs/store/index.c uses: big enough, and valgrind can map it
	 * (it cannot reserve 1 TiB) */
	if (mdb_env_set_maxdbs(r->env, 8) || mdb_env_set_mapsize(r->env, RAW_MAP_SIZE) ||
	    mdb_env_open(r->env, dir, 0, 0600))
		goto fail;
	if (mdb_txn_begin(r->env, NULL, 0, &r->txn))
		goto fail;
	if (mdb_dbi_open(r->txn, db, 0, &r->dbi)) {
		mdb_txn_abort(r->txn);
		goto fail;
	}
	return 0;
fail:
	mdb_env_close(r->env);
	r->env = NULL;
	return -1;
}

static int raw_close(struct raw *r)
{
	int rc = mdb_txn_commit(r->txn);

	mdb_env_close(r->env);
	return rc ? -1 : 0;
}

static int raw_get(struct raw *r, const void *key, size_t klen, uint8_t *val, size_t *vlen)
{
	MDB_val k = { klen, (void *)key }, v;

	if (mdb_get(r->txn, r->dbi, &k, &v))
		return -1;
	memcpy(val, v.mv_data, v.mv_size);
	*vlen = v.mv_size;
	return 0;
}

static int raw_put(struct raw *r, const void *key, size_t klen, const uint8_t *val, size_t vlen)
{
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };

	return mdb_put(r->txn, r->dbi, &k, &v, 0) ? -1 : 0;
}

/* The dirent key of the only entry under parent (the keyed name hash
 * cannot be computed here, so the test dirs hold exactly one entry). */
static int find_dirent_key(uint64_t parent, const char *name, uint8_t key[24])
{
	struct raw r;
	MDB_cursor *c;
	MDB_val k, v;
	uint8_t start[8];
	int found = 0;

	be64_put(start, parent);
	if (raw_open(&r, "dirent") || mdb_cursor_open(r.txn, r.dbi, &c))
		return -1;
	k.mv_size = 8;
	k.mv_data = start;
	if (mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) == 0 && k.mv_size == 24 && !memcmp(k.mv_data, start, 8)) {
		memcpy(key, k.mv_data, 24);
		found = 1;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(r.txn);
	mdb_env_close(r.env);
	(void)name;
	return found ? 0 : -1;
}

static void test_tamper(void)
{
	static struct mv_attr a, got;
	uint8_t key[8], key2[8], val[8192], val2[8192];
	size_t vlen = 0, vlen2 = 0, reclen;
	struct raw r;
	int bad = 0, rc;

	/* inodes 1000.. for byte flips, 5000/5001 for a swap, 5002 -> 5003 for a move */
	make_attr(&a, 1000, 0);
	ok(w_inode_put(&a) == 0, "reference inode");
	index_close(ix);
	ix = NULL;
	if (raw_open(&r, "inode")) {
		ok(0, "raw LMDB open");
		return;
	}
	be64_put(key, 1000);
	raw_get(&r, key, 8, val, &vlen);
	mdb_txn_abort(r.txn);
	mdb_env_close(r.env);
	reclen = vlen;
	ok(reclen == 99 + 40, "sealed inode record is %zu bytes (99 + nonce + tag)", reclen);
	reopen();
	for (uint64_t i = 0; i < reclen; i++) {
		make_attr(&a, 1000 + i, 0);
		bad += w_inode_put(&a) != 0;
	}
	make_attr(&a, 5000, 10);
	bad += w_inode_put(&a) != 0;
	make_attr(&a, 5001, 20);
	bad += w_inode_put(&a) != 0;
	make_attr(&a, 5002, 5);
	bad += w_inode_put(&a) != 0;
	make_attr(&a, 5004, 5);
	bad += w_inode_put(&a) != 0;
	ok(bad == 0, "victim inodes written");
	index_close(ix);
	ix = NULL;

	/* flip one byte at position i of inode 1000+i; swap 5000/5001; copy 5002 to 5003;
	 * truncate 5004 by one byte */
	rc = raw_open(&r, "inode");
	for (uint64_t i = 0; rc == 0 && i < reclen; i++) {
		be64_put(key, 1000 + i);
		if (raw_get(&r, key, 8, val, &vlen) || vlen != reclen)
			rc = -1;
		val[i] ^= 0x20;
		if (raw_put(&r, key, 8, val, vlen))
			rc = -1;
	}
	be64_put(key, 5000);
	be64_put(key2, 5001);
	if (rc == 0 && (raw_get(&r, key, 8, val, &vlen) || raw_get(&r, key2, 8, val2, &vlen2) ||
			raw_put(&r, key, 8, val2, vlen2) || raw_put(&r, key2, 8, val, vlen)))
		rc = -1;
	be64_put(key, 5002);
	be64_put(key2, 5003);
	if (rc == 0 && (raw_get(&r, key, 8, val, &vlen) || raw_put(&r, key2, 8, val, vlen)))
		rc = -1;
	be64_put(key, 5004);
	if (rc == 0 && (raw_get(&r, key, 8, val, &vlen) || raw_put(&r, key, 8, val, vlen - 1)))
		rc = -1;
	ok(rc == 0 && raw_close(&r) == 0, "raw LMDB edits committed");
	reopen();

	bad = 0;
	for (uint64_t i = 0; i < reclen; i++) {
		rc = r_inode_get(1000 + i, &got);
		if (rc != -EIO) {
			if (!bad)
				printf("# byte %" PRIu64 " flipped: inode_get %d\n", i, rc);
			bad++;
		}
	}
	ok(bad == 0, "a flipped byte at any of the %zu positions of an inode value -> -EIO (%d not)", reclen, bad);
	ok(r_inode_get(5000, &got) == -EIO && r_inode_get(5001, &got) == -EIO,
	   "swapped inode values: both -EIO (AD binds the key)");
	ok(r_inode_get(5002, &got) == 0 && r_inode_get(5003, &got) == -EIO,
	   "an inode value copied under another key -EIO; the original still reads");
	ok(r_inode_get(5004, &got) == -EIO, "a value truncated by one byte -EIO");
	ok(r_inode_get(2, &got) == 0, "untouched inodes still read");

	/* dirents: copy one entry's value under another entry's key */
	{
		uint8_t k1[24], k2[24];
		uint64_t ino = 0;

		ok(w_dirent_put(60, "first", 5, 601, 8) == 0, "dirent 60/first");
		index_close(ix);
		ix = NULL;
		rc = find_dirent_key(60, "first", k1);
		reopen();
		ok(w_dirent_put(61, "second", 6, 611, 8) == 0, "dirent 61/second");
		index_close(ix);
		ix = NULL;
		rc |= find_dirent_key(61, "second", k2);
		if (rc == 0 && raw_open(&r, "dirent") == 0) {
			rc = raw_get(&r, k1, 24, val, &vlen) || raw_put(&r, k2, 24, val, vlen);
			rc |= raw_close(&r);
		} else {
			rc = -1;
		}
		ok(rc == 0, "copied 60/first's value under 61/second's key");
		reopen();
		rc = r_dirent_get(61, "second", 6, &ino, NULL);
		ok(rc == -EIO, "dirent value under another key -EIO (%d, ino %" PRIu64 ")", rc, ino);
		ok(r_dirent_get(60, "first", 5, &ino, NULL) == 0 && ino == 601, "the original entry still reads");
		{
			struct seen s;
			struct index_txn *t = rd();

			memset(&s, 0, sizeof(s));
			rc = index_dirent_iter(t, 61, 0, collect, &s);
			index_read_end(t);
			ok(rc == -EIO, "iterating the tampered directory -EIO (%d)", rc);
		}
	}

	/* chunks: swap two chunk records of one file */
	{
		struct chunk_rec c, cg;
		uint8_t k1[16], k2[16];

		mkchunk(&c, 70, 0);
		rc = w_chunk_put(70, 0, &c);
		mkchunk(&c, 70, 1);
		rc |= w_chunk_put(70, 1, &c);
		index_close(ix);
		ix = NULL;
		be64_put(k1, 70);
		be64_put(k1 + 8, 0);
		be64_put(k2, 70);
		be64_put(k2 + 8, 1);
		if (rc == 0 && raw_open(&r, "chunk") == 0) {
			rc = raw_get(&r, k1, 16, val, &vlen) || raw_get(&r, k2, 16, val2, &vlen2) ||
			     raw_put(&r, k1, 16, val2, vlen2) || raw_put(&r, k2, 16, val, vlen);
			rc |= raw_close(&r);
		} else {
			rc = -1;
		}
		ok(rc == 0, "swapped chunks 0 and 1 of inode 70");
		reopen();
		ok(r_chunk_get(70, 0, &cg) == -EIO && r_chunk_get(70, 1, &cg) == -EIO, "swapped chunks -EIO");
	}

	/* a record moved between databases with the same key shape */
	{
		struct pack_rec p;
		struct index_txn *t;

		ok(w_pack_account(90, 5, 6) == 0 && w_pack_account(91, 5, 6) == 0, "packs 90, 91");
		index_close(ix);
		ix = NULL;
		be64_put(key, 90);
		rc = -1;
		if (raw_open(&r, "pack") == 0) {
			rc = raw_get(&r, key, 8, val, &vlen);
			mdb_txn_abort(r.txn);
			mdb_env_close(r.env);
		}
		be64_put(key2, 91);
		if (rc == 0 && raw_open(&r, "pack") == 0)
			rc = raw_put(&r, key2, 8, val, vlen) | raw_close(&r);
		ok(rc == 0, "pack 90's value copied to pack 91");
		reopen();
		t = rd();
		/* the packs' records add up together (the volume's slot in the
		 * integrity tree): one moved record makes all of them untrusted */
		ok(index_pack_get(t, 91, &p) == -EIO && index_pack_get(t, 90, &p) == -EIO,
		   "moved pack record: the pack records are refused (-EIO)");
		{
			struct pack_seen ps = { 0 };

			ok(index_pack_iter(t, pack_cb, &ps) == -EIO, "pack_iter over a tampered record -EIO");
		}
		index_read_end(t);
	}

	/* orphans: a record moved to another key is not trusted */
	{
		uint64_t inos[16];
		struct index_txn *t;
		int n, has = 0;

		ok(w_simple(OP_ORPHAN_ADD, 400, 0) == 0, "orphan 400");
		index_close(ix);
		ix = NULL;
		be64_put(key, 400);
		be64_put(key2, 401);
		rc = -1;
		if (raw_open(&r, "orphan") == 0)
			rc = raw_get(&r, key, 8, val, &vlen) || raw_put(&r, key2, 8, val, vlen) ? -1 : raw_close(&r);
		ok(rc == 0, "orphan 400's record copied to key 401");
		reopen();
		t = rd();
		n = index_orphan_list(t, inos, 16);
		index_read_end(t);
		for (int i = 0; i < n; i++)
			if (inos[i] == 401)
				has = 1;
		ok(n == -EIO || (n >= 0 && !has), "a forged orphan record is not listed (n=%d, listed=%d)", n, has);
	}
}

/* ---- foreign volume, persistence ---- */

static void test_foreign_and_persist(void)
{
	struct volkeys *vk2 = NULL;
	struct index *y = NULL;
	struct mv_attr got;
	uint8_t uuid2[16], mk2[32];
	int rc;

	/* persistence: close and reopen, everything still there */
	index_close(ix);
	ix = NULL;
	rc = index_open(&ix, dir, uuid, vk, 0);
	ok(rc == 0 && ix, "reopen without create");
	if (!ix)
		exit(2);
	{
		uint64_t ino = 0, v = 0;
		uint8_t ty = 0;
		struct chunk_rec c;

		ok(r_inode_get(3, &got) == 0 && got.symlink_len == INDEX_SYMLINK_MAX, "inode persists");
		ok(r_dirent_get(1, "hello", 5, &ino, &ty) == 0 && ino == 9, "dirent persists");
		ok(r_chunk_get(42, 19, &c) == 0 && c.pack == 42019, "chunk persists");
		ok(r_meta_get("counter", &v) == 0 && v >= GC_THREADS * GC_ITERS, "meta persists");
	}
	index_close(ix);
	ix = NULL;

	/* another uuid, same keys */
	memcpy(uuid2, uuid, 16);
	uuid2[15] ^= 0x01;
	rc = index_open(&y, dir, uuid2, vk, 0);
	if (rc == 0 && y) {
		struct index_txn *t = NULL;
		uint64_t ino, v;
		uint8_t ty;

		ix = y;
		ok(r_inode_get(2, &got) == -EIO, "other uuid: inode_get -EIO");
		ok(r_dirent_get(1, "hello", 5, &ino, &ty) == -EIO, "other uuid: dirent_get -EIO");
		ok(r_meta_get("counter", &v) == -EIO, "other uuid: meta_get -EIO");
		t = rd();
		ok(index_xattr_get(t, 51, "user.a", NULL, 0) == -EIO, "other uuid: xattr_get -EIO");
		index_read_end(t);
		index_close(y);
		ix = NULL;
	} else {
		ok(rc == -EBADMSG, "other uuid: open refused as foreign (%d)", rc);
	}

	/* another master key, same uuid */
	secure_random(mk2, sizeof(mk2));
	if (volkeys_derive(&vk2, mk2, AEAD_XCHACHA20POLY1305) == 0) {
		y = NULL;
		rc = index_open(&y, dir, uuid, vk2, 0);
		if (rc == 0 && y) {
			ix = y;
			ok(r_inode_get(2, &got) == -EIO, "other master key: inode_get -EIO");
			index_close(y);
			ix = NULL;
		} else {
			ok(rc == -EBADMSG, "other master key: open refused (%d)", rc);
		}
		volkeys_free(vk2);
	}

	/* and the right one still works afterwards */
	rc = index_open(&ix, dir, uuid, vk, 0);
	ok(rc == 0 && r_inode_get(2, &got) == 0, "right uuid and key: reads again");
	ok(index_sync(ix) == 0, "index_sync");
	{
		char copy[200];
		struct index *z = NULL;

		snprintf(copy, sizeof(copy), "%s/copy", tmp);
		mkdir(copy, 0700);
		ok(index_copy(ix, copy) == 0, "index_copy");
		index_close(ix);
		ix = NULL;
		rc = index_open(&z, copy, uuid, vk, 0);
		if (ok(rc == 0 && z, "the copy opens")) {
			ix = z;
			ok(r_inode_get(3, &got) == 0 && got.symlink_len == INDEX_SYMLINK_MAX, "the copy holds the data");
			index_close(z);
			ix = NULL;
		}
	}
}

static void cleanup(void)
{
	char cmd[128];

	index_close(ix);
	ix = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", tmp);
}

/* ---- map growth ---- */

/* The map outgrows its first step: data.mdb grows with it, allocated
 * (not sparse: a store into a hole of a full disk would be SIGBUS), and
 * what was written before and after the growth reads back. */
static void test_map_growth(void)
{
	static uint8_t val[60000];
	char p[512], name[32];
	struct stat before, after;
	int rc = 0, i, last;

	snprintf(p, sizeof(p), "%s/data.mdb", dir);
	ok(stat(p, &before) == 0, "data.mdb before growth");
	ok((uint64_t)before.st_blocks * 512 >= (uint64_t)before.st_size,
	   "data.mdb is allocated, not sparse (%lld blocks for %lld bytes)",
	   (long long)before.st_blocks, (long long)before.st_size);
	after = before;
	for (i = 0; i < 6000 && rc == 0 && after.st_size == before.st_size; i++) {
		struct op o = { .kind = OP_XATTR_PUT, .a = 777, .name = name, .val = val,
				.vlen = sizeof(val) };

		snprintf(name, sizeof(name), "user.big%d", i);
		memset(val, i & 0xff, sizeof(val));
		rc = index_write(ix, do_op, &o);
		if (stat(p, &after) != 0)
			rc = -errno;
	}
	last = i - 1;
	ok(rc == 0, "%d values of 60000 bytes written (%d)", i, rc);
	ok(after.st_size > before.st_size, "data.mdb grew with the map (%lld -> %lld)",
	   (long long)before.st_size, (long long)after.st_size);
	ok((uint64_t)after.st_blocks * 512 >= (uint64_t)after.st_size,
	   "the grown file is allocated too");
	{
		struct index_txn *t;
		ssize_t n1 = -1, n2 = -1;

		if (index_read_begin(ix, &t) == 0) {
			n1 = index_xattr_get(t, 777, "user.big0", val, sizeof(val));
			n1 = n1 == (ssize_t)sizeof(val) && val[0] == 0 && val[59999] == 0 ? n1 : -1;
			snprintf(name, sizeof(name), "user.big%d", last);
			n2 = index_xattr_get(t, 777, name, val, sizeof(val));
			n2 = n2 == (ssize_t)sizeof(val) && val[0] == (last & 0xff) ? n2 : -1;
			index_read_end(t);
		}
		ok(n1 > 0 && n2 > 0, "the first and the last value read back");
	}
	{
		struct op o = { .kind = OP_XATTR_DEL_ALL, .a = 777 };

		ok(index_write(ix, do_op, &o) == 0, "and go again");
	}
	{
		/* a mount adds no step to a map that has room */
		struct stat again;

		index_close(ix);
		ix = NULL;
		ok(index_open(&ix, dir, uuid, vk, 0) == 0 && ix, "reopen after growth");
		if (!ix)
			exit(2);
		if (stat(p, &again) != 0)
			again.st_size = -1;
		ok(again.st_size == after.st_size, "reopening leaves data.mdb's size (%lld -> %lld)",
		   (long long)after.st_size, (long long)again.st_size);
	}
}

int main(void)
{
	if (secure_init() < 0)
		return 2;
	snprintf(tmp, sizeof(tmp), "/tmp/mv-ix-XXXXXX");
	if (!mkdtemp(tmp))
		return 2;
	atexit(cleanup);	/* also after an early exit(2) */
	snprintf(dir, sizeof(dir), "%s/index", tmp);
	secure_random(mk, sizeof(mk));
	secure_random(uuid, sizeof(uuid));
	if (volkeys_derive(&vk, mk, AEAD_XCHACHA20POLY1305) < 0)
		return 2;

	test_children();
	test_open();
	test_inodes();
	test_dirents();
	test_chunks();
	test_purge();
	test_xattrs();
	test_misc();
	test_group_commit();
	test_one_batch();
	test_tamper();
	test_map_growth();
	test_foreign_and_persist();

	index_close(ix);
	ix = NULL;
	volkeys_free(vk);
	return tap_done();
}
