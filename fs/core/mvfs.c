/*
 * The mounted filesystem's lifetime: its shared state, the background
 * flusher that bounds how long written data waits in memory, and the
 * orderly shutdown that writes everything back.
 *
 * Calls only downward: mvfs -> namespace -> filedata -> inode_table.
 */
#include <errno.h>
#include <malloc.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "crypto/aead.h"
#include "store/blobstore.h"
#include "chunkcache.h"
#include "store/volconf.h"
#include <sys/stat.h>
#include "store/compact.h"
#include "util/fileutil.h"
#include <inttypes.h>
#include "util/bufpool.h"
#include "util/parallel.h"
#include <unistd.h>
#include "namespace.h"

#define FLUSH_AGE_S 2		/* dirty data older than this is written back */
#define CHECKPOINT_EVERY_S 2	/* and made durable this often */
/* Dirty data per file before write-back, written back in groups of
 * FLUSH_GROUP_BYTES so the sealing buffers stay small.  32 MiB (to let
 * random 4 KiB writes gather in a chunk) measured no better than 8 MiB. */
#ifndef DIRTY_BYTES_PER_INODE
#define DIRTY_BYTES_PER_INODE (8u << 20)
#endif
#define FLUSH_GROUP_BYTES (8u << 20)
#define COMPACT_EVERY_S 60	/* background compaction of packs below the ratio */
/*
 * Overwrites leave dead chunk versions behind at the write rate (random
 * 4 KiB writes reseal whole 64 KiB chunks: several GB a minute), so a
 * burst of that much dead data starts compaction early, at most this
 * often: the store does not grow to many times its live size between two
 * timer runs, nor fill the disk with garbage.
 */
#define COMPACT_DEAD_TRIGGER (256ull << 20)
#define COMPACT_MIN_GAP_S 5
#define CHUNK_CACHE_BYTES (64u << 20)	/* plaintext chunks kept after reads */

/* one sealer per core; the calling thread makes one more */
static unsigned sealing_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 1 ? (unsigned)(n > 8 ? 8 : n) : 1;
}

int mvfs_create(struct mvfs **out, struct vault *v)
{
	struct mvfs *fs;
	pthread_rwlockattr_t ra;
	int rc;

	*out = NULL;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->v = v;
	fs->chunk_size = v->conf.chunk_size;
	fs->dirty_max = DIRTY_BYTES_PER_INODE / fs->chunk_size;
	if (fs->dirty_max < 4)
		fs->dirty_max = 4;
	fs->flush_group = FLUSH_GROUP_BYTES / fs->chunk_size;
	if (fs->flush_group < 2)
		fs->flush_group = 2;
	/* room for the sealed batch: dirty_max is checked before a write, which
	 * may add up to max_write's worth of chunks; plus the rounding up to
	 * 4 KiB for O_DIRECT */
	fs->batch_size = (size_t)(fs->flush_group + MV_MAX_IO / fs->chunk_size + 2) *
			 (fs->chunk_size + 64) + 4096;
	if (bufpool_create(&fs->chunks, fs->chunk_size, 256) < 0 ||
	    bufpool_create(&fs->batches, fs->batch_size, 4) < 0 ||
	    bufpool_create(&fs->sealed, fs->chunk_size + 64, 64) < 0 ||
	    bufpool_create(&fs->replies, MV_MAX_IO, 8) < 0 ||
	    chunkcache_create(&fs->cache, fs->chunk_size, CHUNK_CACHE_BYTES) < 0) {
		bufpool_destroy(fs->chunks);
		bufpool_destroy(fs->batches);
		bufpool_destroy(fs->sealed);
		bufpool_destroy(fs->replies);
		free(fs);
		return -ENOMEM;
	}
	fs->table_size = 1024;
	fs->table = calloc(fs->table_size, sizeof(*fs->table));
	if (!fs->table) {
		free(fs);
		return -ENOMEM;
	}
	pthread_mutex_init(&fs->table_lock, NULL);
	pthread_rwlockattr_init(&ra);
	/* a checkpoint must not starve behind a stream of writers */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&fs->barrier, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&fs->sync_lock, NULL);
	pthread_cond_init(&fs->sync_cond, NULL);
	pthread_mutex_init(&fs->compact_lock, NULL);
	sem_init(&fs->wake, 0, 0);
	fs->started = time(NULL);
	/* inodes unlinked while open when the last daemon died */
	if ((rc = ns_free_orphans(fs)) < 0)
		syslog(LOG_WARNING, "could not free orphaned inodes: %s", strerror(-rc));
	*out = fs;
	return 0;
}

static int flush_old(struct mvfs *fs, struct mv_inode *in, void *arg)
{
	time_t now = *(time_t *)arg;
	int due;

	pthread_mutex_lock(&in->lock);
	due = (in->ndirty && now - in->dirty_since >= FLUSH_AGE_S) ||
	      (!in->ndirty && in->content_dirty);
	pthread_mutex_unlock(&in->lock);
	if (due)
		filedata_flush(fs, in);
	return filedata_unwritten(in);
}

static void flush_all(struct mvfs *fs, struct mv_inode *in, void *arg)
{
	(void)arg;
	filedata_flush(fs, in);
}

static void flush_all_cb(struct mvfs *fs, struct mv_inode *in, void *arg)
{
	flush_all(fs, in, arg);
}

/* SIGUSR1 from `medvault snapshot`: seal the open pack.  Only
 * async-signal-safe work here; the flusher does the rest. */
static struct mvfs *signalled_fs;
static volatile sig_atomic_t seal_requested;

static volatile sig_atomic_t compact_requested;

static void on_seal_signal(int sig)
{
	if (sig == SIGUSR2)
		compact_requested = 1;
	else
		seal_requested = 1;
	if (signalled_fs)
		sem_post(&signalled_fs->wake);
}

/* Compact now (SIGUSR2 from `medvault compact`, ratio in the request
 * file) or in the background (default ratio, at most every interval). */
static void compact_now(struct mvfs *fs, int requested)
{
	char req[PATH_MAX + 32], done[PATH_MAX + 32], line[256];
	double ratio = COMPACT_DEFAULT_RATIO;
	struct core_compact_prior prior = { 0 };
	struct compact_stats st;
	char *text = NULL;
	size_t len;
	int rc, n;

	snprintf(req, sizeof(req), "%s/%s", fs->v->store, MVFS_COMPACT_REQUEST);
	snprintf(done, sizeof(done), "%s/%s", fs->v->store, MVFS_COMPACT_DONE);
	if (requested) {
		compact_requested = 0;
		if (file_read_all(req, 64, &text, &len) == 0) {
			double r = strtod(text, NULL);

			if (r > 0 && r <= 1)
				ratio = r;
		}
		free(text);
	}
	rc = core_compact(fs, ratio, !requested, stderr, &st, &prior);
	if (!requested)
		return;
	if (rc < 0) {
		n = snprintf(line, sizeof(line), "error %s\n", strerror(-rc));
	} else {
		n = snprintf(line, sizeof(line), "ok %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
			     st.packs_rewritten, st.packs_deleted, st.bytes_moved, st.bytes_freed, st.packs_kept);
		/* after the five fields the command parses today, so it still can */
		if (prior.at)
			n += snprintf(line + n, sizeof(line) - (size_t)n,
				      " background %lld %" PRIu64 " %" PRIu64,
				      (long long)(time(NULL) - prior.at), prior.st.packs_deleted,
				      prior.st.bytes_freed);
		n += snprintf(line + n, sizeof(line) - (size_t)n, "\n");
	}
	if (file_write_atomic(done, line, (size_t)n, 0600) == 0)
		unlink(req);
}

static void seal_for_snapshot(struct mvfs *fs)
{
	char path[PATH_MAX];

	seal_requested = 0;
	/* everything written so far lands in packs the snapshot can link,
	 * and nothing more is ever appended to them */
	itable_foreach(fs, flush_all_cb, NULL);
	blobstore_seal_open(fs->v->bs);
	snprintf(path, sizeof(path), "%s/%s", fs->v->store, MVFS_SEAL_REQUEST);
	unlink(path);
	syslog(LOG_INFO, "open pack sealed for a snapshot");
}

struct status_sum {
	uint64_t inodes, open, dirty_bytes;
};

static int sum_status(struct mvfs *fs, struct mv_inode *in, void *arg)
{
	struct status_sum *s = arg;

	pthread_mutex_lock(&fs->table_lock);
	s->open += in->nopen;
	pthread_mutex_unlock(&fs->table_lock);
	pthread_mutex_lock(&in->lock);
	s->dirty_bytes += (uint64_t)in->ndirty * fs->chunk_size;
	pthread_mutex_unlock(&in->lock);
	return filedata_unwritten(in);
}

struct dead_sum {
	struct mvfs *fs;
	uint64_t live, total;
};

static int sum_pack(void *ctx, uint64_t pack, const struct pack_rec *p)
{
	struct dead_sum *d = ctx;
	int64_t size = blobstore_pack_size(d->fs->v->bs, pack);

	d->live += p->live_bytes;
	if (size > 0)
		d->total += (uint64_t)size;
	return 0;
}

/*
 * Publish counters for `medvault status` in /run (never in the store: it
 * would leak activity into backups).  Counts only: no names, no paths.
 */
static void publish_status(struct mvfs *fs, int with_packs)
{
	static uint64_t dead_bytes;	/* flusher thread only */
	struct status_sum s = { 0 };
	char path[PATH_MAX], uuid[33], text[1024];
	uint64_t hits = __atomic_load_n(&fs->stat_chunk_hits, __ATOMIC_RELAXED);
	uint64_t loads = __atomic_load_n(&fs->stat_chunk_loads, __ATOMIC_RELAXED);
	int n;

	if (with_packs) {
		struct dead_sum d = { fs, 0, 0 };
		struct index_txn *t;

		if (index_read_begin(fs->v->ix, &t) == 0) {
			index_pack_iter(t, sum_pack, &d);
			index_read_end(t);
			dead_bytes = d.total > d.live ? d.total - d.live : 0;
		}
	}
	s.inodes = itable_count(fs);
	itable_foreach_active(fs, sum_status, &s);
	volconf_uuid_hex(fs->v->conf.uuid, uuid);
	n = snprintf(text, sizeof(text),
		     "pid %d\nstore %s\nmountpoint %s\nuptime %lld\ninodes %" PRIu64 "\n"
		     "open %" PRIu64 "\ndirty_bytes %" PRIu64 "\nchunk_hits %" PRIu64 "\n"
		     "chunk_loads %" PRIu64 "\nlast_checkpoint %lld\ndead_bytes %" PRIu64 "\n",
		     (int)getpid(), fs->v->store, fs->mountpoint ? fs->mountpoint : "?",
		     (long long)(time(NULL) - fs->started), s.inodes, s.open, s.dirty_bytes, hits, loads,
		     (long long)__atomic_load_n(&fs->last_checkpoint, __ATOMIC_RELAXED), dead_bytes);
	if (mkdir(MVFS_STATUS_DIR, 0755) < 0 && errno != EEXIST)
		return;
	snprintf(path, sizeof(path), "%s/%s.status", MVFS_STATUS_DIR, uuid);
	file_replace_volatile(path, text, (size_t)n, 0644);
}

/*
 * When the kernel forgets most of the inodes it held (memory pressure, a
 * drop_caches after a walk of a million files), their entries are freed
 * but malloc keeps the pages; give them back once the table has shrunk by
 * half and by at least 64k entries.
 */
static void return_freed_memory(struct mvfs *fs, size_t *peak)
{
	size_t n = itable_count(fs);

	if (n > *peak)
		*peak = n;
	else if (*peak - n >= 65536 && n < *peak / 2) {
		malloc_trim(0);
		*peak = n;
	}
}

static void *flusher_main(void *arg)
{
	struct mvfs *fs = arg;
	time_t last_checkpoint = time(NULL), last_compaction = time(NULL);
	time_t last_status = time(NULL), last_pack_scan = time(NULL);
	size_t table_peak = 0;

	publish_status(fs, 1);	/* `medvault status` works as soon as mount returns */
	pthread_mutex_lock(&fs->sync_lock);
	while (!fs->stop) {
		struct timespec until;
		time_t now;

		pthread_mutex_unlock(&fs->sync_lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		while (sem_timedwait(&fs->wake, &until) < 0 && errno == EINTR)
			;
		pthread_mutex_lock(&fs->sync_lock);
		if (fs->stop)
			break;
		pthread_mutex_unlock(&fs->sync_lock);
		if (seal_requested)
			seal_for_snapshot(fs);
		if (compact_requested)
			compact_now(fs, 1);
		now = time(NULL);
		if (now - last_compaction >= COMPACT_EVERY_S ||
		    (now - last_compaction >= COMPACT_MIN_GAP_S &&
		     index_dead_bytes(fs->v->ix) >= COMPACT_DEAD_TRIGGER)) {
			compact_now(fs, 0);
			last_compaction = now;
		}
		if (now - last_status >= 2) {
			publish_status(fs, now - last_pack_scan >= 60);
			if (now - last_pack_scan >= 60)
				last_pack_scan = now;
			last_status = now;
		}
		itable_foreach_active(fs, flush_old, &now);
		ns_release_inodes(fs);	/* inodes whose last user went meanwhile */
		return_freed_memory(fs, &table_peak);
		if (now - last_checkpoint >= CHECKPOINT_EVERY_S) {
			int rc = fs_checkpoint(fs);

			if (rc < 0)
				syslog(LOG_ERR, "checkpoint failed: %s", strerror(-rc));
			last_checkpoint = now;
		}
		pthread_mutex_lock(&fs->sync_lock);
	}
	pthread_mutex_unlock(&fs->sync_lock);
	return NULL;
}

int mvfs_start_flusher(struct mvfs *fs)
{
	int rc;

	/* threads are made here, after the daemon has forked away */
	if ((rc = parallel_create(&fs->par, sealing_workers())) < 0)
		return rc;
	rc = pthread_create(&fs->flusher, NULL, flusher_main, fs);
	if (rc)
		return -rc;
	fs->flusher_running = 1;
	{
		struct sigaction sa = { .sa_handler = on_seal_signal };

		signalled_fs = fs;
		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART;
		sigaction(SIGUSR1, &sa, NULL);
		sigaction(SIGUSR2, &sa, NULL);
	}
	return 0;
}

void mvfs_stop_flusher(struct mvfs *fs)
{
	if (!fs->flusher_running)
		return;
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	signalled_fs = NULL;
	pthread_mutex_lock(&fs->sync_lock);
	fs->stop = 1;
	pthread_mutex_unlock(&fs->sync_lock);
	sem_post(&fs->wake);
	pthread_join(fs->flusher, NULL);
	fs->flusher_running = 0;
	{
		char path[PATH_MAX], uuid[33];

		volconf_uuid_hex(fs->v->conf.uuid, uuid);
		snprintf(path, sizeof(path), "%s/%s.status", MVFS_STATUS_DIR, uuid);
		unlink(path);
	}
}

void mvfs_destroy(struct mvfs *fs)
{
	if (!fs)
		return;
	mvfs_stop_flusher(fs);
	itable_foreach(fs, flush_all, NULL);
	ns_release_inodes(fs);
	fs_checkpoint(fs);
	/* whatever the kernel still held is released with the mount */
	for (size_t i = 0; i < fs->table_size; i++) {
		struct mv_inode *in = fs->table[i], *next;

		for (; in; in = next) {
			next = in->hnext;
			filedata_release(fs, in);
			itable_free_inode(fs, in);
		}
	}
	ns_free_orphans(fs);
	fs_checkpoint(fs);
	parallel_destroy(fs->par);
	bufpool_destroy(fs->chunks);
	bufpool_destroy(fs->batches);
	bufpool_destroy(fs->sealed);
	bufpool_destroy(fs->replies);
	chunkcache_destroy(fs->cache);
	free(fs->table);
	pthread_rwlock_destroy(&fs->barrier);
	pthread_mutex_destroy(&fs->table_lock);
	pthread_mutex_destroy(&fs->sync_lock);
	pthread_cond_destroy(&fs->sync_cond);
	pthread_mutex_destroy(&fs->compact_lock);
	sem_destroy(&fs->wake);
	free(fs->mountpoint);
	free(fs);
}
