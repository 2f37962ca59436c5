/*
 * The mounted filesystem's lifetime: its shared state, the background
 * flusher that bounds how long written data waits in memory, and the
 * orderly shutdown that writes everything back.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "aead.h"
#include "bufpool.h"
#include "parallel.h"
#include <unistd.h>
#include "mvfs.h"

#define FLUSH_AGE_S 2		/* dirty data older than this is written back */
#define CHECKPOINT_EVERY_S 2	/* and made durable this often */
#define DIRTY_BYTES_PER_INODE (8u << 20)

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
	fs->batch_size = (size_t)fs->dirty_max * (fs->chunk_size + 64);
	if (bufpool_create(&fs->chunks, fs->chunk_size, 256) < 0 ||
	    bufpool_create(&fs->batches, fs->batch_size, 4) < 0) {
		bufpool_destroy(fs->chunks);
		bufpool_destroy(fs->batches);
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
	/* inodes unlinked while open when the last daemon died */
	if ((rc = ns_free_orphans(fs)) < 0)
		syslog(LOG_WARNING, "could not free orphaned inodes: %s", strerror(-rc));
	*out = fs;
	return 0;
}

static void flush_old(struct mvfs *fs, struct mv_inode *in, void *arg)
{
	time_t now = *(time_t *)arg;
	int due;

	pthread_mutex_lock(&in->lock);
	due = (in->ndirty && now - in->dirty_since >= FLUSH_AGE_S) ||
	      (!in->ndirty && in->content_dirty);
	pthread_mutex_unlock(&in->lock);
	if (due)
		filedata_flush(fs, in);
}

static void flush_all(struct mvfs *fs, struct mv_inode *in, void *arg)
{
	(void)arg;
	filedata_flush(fs, in);
}

static void *flusher_main(void *arg)
{
	struct mvfs *fs = arg;
	time_t last_checkpoint = time(NULL);

	pthread_mutex_lock(&fs->sync_lock);
	while (!fs->stop) {
		struct timespec until;
		time_t now;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&fs->sync_cond, &fs->sync_lock, &until);
		if (fs->stop)
			break;
		pthread_mutex_unlock(&fs->sync_lock);
		now = time(NULL);
		itable_foreach(fs, flush_old, &now);
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
	return 0;
}

void mvfs_stop_flusher(struct mvfs *fs)
{
	if (!fs->flusher_running)
		return;
	pthread_mutex_lock(&fs->sync_lock);
	fs->stop = 1;
	pthread_cond_broadcast(&fs->sync_cond);
	pthread_mutex_unlock(&fs->sync_lock);
	pthread_join(fs->flusher, NULL);
	fs->flusher_running = 0;
}

void mvfs_destroy(struct mvfs *fs)
{
	if (!fs)
		return;
	mvfs_stop_flusher(fs);
	itable_foreach(fs, flush_all, NULL);
	fs_checkpoint(fs);
	/* whatever the kernel still held is released with the mount */
	for (size_t i = 0; i < fs->table_size; i++) {
		struct mv_inode *in = fs->table[i], *next;

		for (; in; in = next) {
			next = in->hnext;
			for (struct dirty_chunk *d = in->dirty, *dn; d; d = dn) {
				dn = d->next;
				bufpool_put(fs->chunks, d->buf);
				free(d);
			}
			bufpool_put(fs->chunks, in->rbuf);
			aead_free(in->aead);
			pthread_mutex_destroy(&in->lock);
			free(in->name);
			free(in);
		}
	}
	ns_free_orphans(fs);
	fs_checkpoint(fs);
	parallel_destroy(fs->par);
	bufpool_destroy(fs->chunks);
	bufpool_destroy(fs->batches);
	free(fs->table);
	pthread_rwlock_destroy(&fs->barrier);
	pthread_mutex_destroy(&fs->table_lock);
	pthread_mutex_destroy(&fs->sync_lock);
	pthread_cond_destroy(&fs->sync_cond);
	free(fs);
}
