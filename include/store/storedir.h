/*
 * storedir: STORE's own files reached safely (util/safefile.h) and its
 * lock taken, for every command and the daemon alike.
 */
#ifndef MEDVAULT_STORE_STOREDIR_H
#define MEDVAULT_STORE_STOREDIR_H

#include <stddef.h>

/* how long a command waits for an unmounted daemon to release the store */
#define STORE_LOCK_WAIT_S 30

/*
 * Check what LMDB will open by name before it does: STORE/index a
 * directory of ours not writable by others, data.mdb and lock.mdb (when
 * there) regular files of ours.  sdfd: STORE, from safe_dir_open.
 * 0, or -ELOOP, -EINVAL, -EISDIR, -EPERM, -ENOTDIR, -errno with why.
 */
int store_index_check(int sdfd, const char *store, char *why, size_t whylen);

/*
 * Open STORE/medvault.lock: read-only (a read-only store, where a missing
 * lock is 0 with *fd -1), or read-write, made when missing.  0 or -errno
 * with why.
 */
int store_lock_open(int sdfd, const char *store, int rdonly, int *fd, char *why, size_t whylen);

/*
 * Take the store's lock (exclusive, or shared) on fd.  A medvault process
 * that holds it and serves no mount of store (real path) is a daemon
 * finishing its write-back after umount(8): wait for it, up to
 * STORE_LOCK_WAIT_S, saying so once on stderr.  0, -EBUSY (in use: a
 * mount of it is live, another process holds it, or the wait ran out),
 * -errno.
 */
int store_lock_take(int fd, const char *store, int exclusive);

#endif
