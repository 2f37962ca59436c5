/*
 * Compaction, in three steps: pick packs (from their accounting and their
 * size on disk), move their live chunks to the open pack in batches, each
 * batch committed in one transaction that re-checks every chunk record,
 * then, once all of it is durable, delete the emptied packs, but only if
 * no snapshot holds the snapshot lock.  A crash at any point leaves every
 * chunk readable from its old or its new place.
 */
#include "store/compact.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <syslog.h>
#include <unistd.h>

#include "store/blobstore.h"
#include "store/index.h"
#include "store/layout.h"
#include "util/array.h"
#include "util/progress.h"
#include "util/safefile.h"

#define MOVE_BATCH_BYTES (8u << 20)

struct victim {
	uint64_t pack;
	uint64_t live;
};

struct move {
	uint64_t ino, idx;
	struct chunk_rec old;
	struct chunk_rec now;	/* filled once appended */
};

struct pick_ctx {
	struct vault *v;
	double ratio;
	uint64_t open_id;
	struct victim *vs;
	size_t n, cap;
};

static int pick_pack(void *ctx, uint64_t pack, const struct pack_rec *p)
{
	struct pick_ctx *c = ctx;
	int64_t size;

	if (pack == c->open_id)
		return 0;
	size = blobstore_pack_size(c->v->bs, pack);
	if (size <= BLOBSTORE_HEADER_LEN)
		return 0;
	/* dead bytes include appends that were never committed: the file
	 * size, not the accounting's total, is what the disk holds */
	if ((double)p->live_bytes >= c->ratio * (double)(size - BLOBSTORE_HEADER_LEN))
		return 0;
	if (array_reserve(&c->vs, &c->cap, c->n + 1, sizeof(*c->vs)) < 0)
		return -ENOMEM;
	c->vs[c->n].pack = pack;
	c->vs[c->n].live = p->live_bytes;
	c->n++;
	return 0;
}

static int victim_cmp(const void *a, const void *b)
{
	const struct victim *x = a, *y = b;

	return x->pack < y->pack ? -1 : x->pack > y->pack;
}

struct gather_ctx {
	struct victim *vs;
	size_t nv;
	struct move *moves;
	size_t n, cap;
};

static int gather_chunk(void *ctx, uint64_t ino, uint64_t idx, const struct chunk_rec *c)
{
	struct gather_ctx *g = ctx;
	struct victim key = { .pack = c->pack };

	if (!bsearch(&key, g->vs, g->nv, sizeof(*g->vs), victim_cmp))
		return 0;
	if (array_reserve(&g->moves, &g->cap, g->n + 1, sizeof(*g->moves)) < 0)
		return -ENOMEM;
	g->moves[g->n].ino = ino;
	g->moves[g->n].idx = idx;
	g->moves[g->n].old = *c;
	g->n++;
	return 0;
}

struct commit_ctx {
	struct move *moves;
	size_t n;
	uint64_t max_pack;
};

static int commit_moves(struct index_txn *txn, void *arg)
{
	struct commit_ctx *c = arg;
	uint64_t max_pack = 0;
	int rc;

	index_meta_get(txn, "max_pack", &max_pack);
	for (size_t i = 0; i < c->n; i++) {
		struct move *m = &c->moves[i];
		struct chunk_rec cur;

		rc = index_chunk_get(txn, m->ino, m->idx, &cur);
		if (rc == 0 && cur.version == m->old.version && cur.pack == m->old.pack &&
		    cur.off == m->old.off) {
			if ((rc = index_chunk_put(txn, m->ino, m->idx, &m->now)) < 0 ||
			    (rc = index_pack_account(txn, m->old.pack, -(int64_t)m->old.len, 0)) < 0 ||
			    (rc = index_pack_account(txn, m->now.pack, m->now.len, m->now.len)) < 0)
				return rc;
		} else {
			/* rewritten, truncated or deleted meanwhile: the copy is dead */
			if ((rc = index_pack_account(txn, m->now.pack, 0, m->now.len)) < 0)
				return rc;
		}
		if (m->now.pack > max_pack)
			max_pack = m->now.pack;
	}
	return index_meta_put(txn, "max_pack", max_pack);
}

/* Move moves[0..n) (their sealed bytes) into the open pack. */
static int move_batch(struct vault *v, struct move *moves, size_t n, pthread_rwlock_t *barrier)
{
	struct commit_ctx cc = { moves, n, 0 };
	size_t total = 0, at = 0;
	uint8_t *buf;
	struct blob_loc loc;
	int rc = 0;

	for (size_t i = 0; i < n; i++)
		total += moves[i].old.len;
	buf = malloc(total ? total : 1);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct blob_loc from = { moves[i].old.pack, moves[i].old.off, moves[i].old.len };

		/* an unreadable chunk stays where it is, for fsck to name */
		if (blobstore_read(v->bs, &from, buf + at) < 0) {
			moves[i].old.len = 0;
			continue;
		}
		moves[i].now = moves[i].old;
		moves[i].now.off = at;	/* relative until appended */
		at += moves[i].old.len;
	}
	if (barrier)
		pthread_rwlock_rdlock(barrier);
	rc = blobstore_append(v->bs, buf, at, &loc);
	if (rc == 0) {
		size_t k = 0;

		for (size_t i = 0; i < n; i++) {
			if (moves[i].old.len == 0)
				continue;
			moves[i].now.pack = loc.pack;
			moves[i].now.off += loc.off;
			moves[k++] = moves[i];
		}
		cc.n = k;
		rc = index_write(v->ix, commit_moves, &cc);
	}
	if (barrier)
		pthread_rwlock_unlock(barrier);
	free(buf);
	return rc;
}

static int drop_pack_record(struct index_txn *txn, void *arg)
{
	struct pack_rec p;
	int rc = index_pack_get(txn, *(uint64_t *)arg, &p);

	if (rc < 0 || p.live_bytes != 0)
		return rc == -ENOENT ? 0 : (rc < 0 ? rc : -EBUSY);
	return index_pack_del(txn, *(uint64_t *)arg);
}

int compact_run(struct vault *v, double ratio, pthread_rwlock_t *barrier,
		int (*checkpoint)(void *ctx), void *ctx, FILE *progress,
		struct compact_stats *st)
{
	struct pick_ctx pc = { .v = v, .ratio = ratio, .open_id = blobstore_open_id(v->bs) };
	struct gather_ctx gc = { 0 };
	struct index_txn *txn = NULL;
	struct progress prog;
	char lock_path[PATH_MAX + 32];
	int rc, lock_fd = -1;

	memset(st, 0, sizeof(*st));
	st->earlier_age_s = -1;
	if ((rc = index_read_begin(v->ix, &txn)) < 0)
		return rc;
	rc = index_pack_iter(txn, pick_pack, &pc);
	if (rc == 0 && pc.n) {
		qsort(pc.vs, pc.n, sizeof(*pc.vs), victim_cmp);
		gc.vs = pc.vs;
		gc.nv = pc.n;
		rc = index_chunk_iter_all(txn, gather_chunk, &gc);
	}
	index_read_end(txn);
	if (rc < 0 || pc.n == 0)
		goto out;

	progress_start(&prog, progress, "compacting", gc.n);
	for (size_t i = 0; i < gc.n && rc == 0;) {
		size_t j = i, bytes = 0;

		while (j < gc.n && (bytes < MOVE_BATCH_BYTES || j == i))
			bytes += gc.moves[j++].old.len;
		rc = move_batch(v, gc.moves + i, j - i, barrier);
		st->bytes_moved += bytes;
		progress_add(&prog, j - i);
		i = j;
	}
	progress_end(&prog);
	if (rc < 0)
		goto out;
	st->packs_rewritten = pc.n;

	/* the moves must be durable before their old copies go */
	if (checkpoint)
		rc = checkpoint(ctx);
	else if ((rc = blobstore_sync(v->bs)) == 0)
		rc = index_sync(v->ix);
	if (rc < 0)
		goto out;

	store_path(lock_path, sizeof(lock_path), v->store, STORE_SNAPSHOT_LOCK);
	{
		/* through the open store, not its path: the daemon's server may
		 * not be able to walk that (it dropped root) */
		lock_fd = safe_open(blobstore_dirfd(v->bs), STORE_SNAPSHOT_LOCK_NAME, O_RDWR | O_CREAT,
				    0600, lock_path, NULL, 0);
		if (lock_fd < 0)
			syslog(LOG_WARNING, "compaction: %s refused (%s): no pack deleted", lock_path,
			       strerror(-lock_fd));
	}
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		/* a snapshot may be linking these packs: next time */
		st->packs_kept = pc.n;
		goto out;
	}
	for (size_t i = 0; i < pc.n; i++) {
		uint64_t id = pc.vs[i].pack;
		int64_t size = blobstore_pack_size(v->bs, id);

		if (index_write(v->ix, drop_pack_record, &id) < 0)
			continue;	/* still live: a move was skipped */
		if (blobstore_pack_remove(v->bs, id) == 0) {
			st->packs_deleted++;
			if (size > 0)
				st->bytes_freed += (uint64_t)size;
		}
	}
	if (checkpoint)
		checkpoint(ctx);
	else
		index_sync(v->ix);
	syslog(LOG_INFO, "compaction: %" PRIu64 " packs rewritten, %" PRIu64 " deleted, %" PRIu64
	       " bytes moved, %" PRIu64 " bytes freed", st->packs_rewritten, st->packs_deleted,
	       st->bytes_moved, st->bytes_freed);
out:
	if (lock_fd >= 0)
		close(lock_fd);
	free(gc.moves);
	free(pc.vs);
	return rc;
}
