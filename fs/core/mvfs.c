/*
 * The mounted filesystem's lifetime: its shared state and the orderly
 * shutdown that writes everything back.  The flusher that bounds how long
 * written data waits in memory is the daemon's (fs/daemon/daemon.c); it
 * drives the write-back steps in core.c.  Nothing here starts a thread
 * except the sealing pool.
 *
 * Calls only downward: mvfs -> namespace -> filedata -> inode_table.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "chunkcache.h"
#include "namespace.h"
#include "util/bufpool.h"
#include "util/parallel.h"

/* Dirty data per file before write-back, written back in groups of
 * FLUSH_GROUP_BYTES so the sealing buffers stay small.  32 MiB (to let
 * random 4 KiB writes gather in a chunk) measured no better than 8 MiB. */
#ifndef DIRTY_BYTES_PER_INODE
#define DIRTY_BYTES_PER_INODE (8u << 20)
#endif
#define FLUSH_GROUP_BYTES (8u << 20)
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
	/* inodes unlinked while open when the last daemon died (a
	 * read-only mount leaves them for the next read-write one) */
	if (!fs_read_only(fs) && (rc = ns_free_orphans(fs)) < 0)
		syslog(LOG_WARNING, "could not free orphaned inodes: %s", strerror(-rc));
	*out = fs;
	return 0;
}

int mvfs_start_workers(struct mvfs *fs)
{
	/* threads belong to the process that made them: after the fork */
	return parallel_create(&fs->par, sealing_workers());
}

void mvfs_destroy(struct mvfs *fs)
{
	if (!fs)
		return;
	core_flush_all(fs);
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
	if (!fs_read_only(fs))
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
	free(fs);
}
