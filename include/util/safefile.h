/*
 * safefile: open what lies under STORE and KSDIR without following a
 * link or blocking on a FIFO planted there.
 *
 * A directory the user names (STORE, KSDIR, an audit directory) is
 * opened by its path, links in it followed (a store may well live behind
 * /srv/vault -> /data/vault), then checked: a directory, owned as
 * below, not writable by group or others.  Everything inside is
 * reached from that descriptor with openat2(RESOLVE_NO_SYMLINKS |
 * RESOLVE_BENEATH), so no component of a relative name may be a link,
 * and must be a regular file owned as below.  Files are opened
 * O_NONBLOCK, so a FIFO or a device is seen by fstat, not waited on.
 *
 * Every refusal comes with one line in why[], naming label (the path as
 * the user knows it) and what is wrong.
 */
#ifndef MEDVAULT_SAFEFILE_H
#define MEDVAULT_SAFEFILE_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Who may own what.  KSDIR and its files: the account running the
 * command (root, in practice), nobody else.  The store, an audit
 * directory and their files: that account or the service account the
 * daemon serves them as (SAFE_SERVICE_USER if it exists, or the one given
 * to safe_set_service), since
 * the daemon chowns the store to it at mount; so may a file in any of
 * them (a snapshot's linked packs are the service account's, in
 * directories of root's).
 */
#define SAFE_SERVICE_USER "medvault"	/* the default service account */
uid_t safe_owner(void);
/* another service account than SAFE_SERVICE_USER ((uid_t)-1: none),
 * before the first check */
void safe_set_service(uid_t uid);

/*
 * Open the directory at path (links followed) and check it.  A
 * descriptor (O_RDONLY | O_DIRECTORY | O_CLOEXEC), or -ENOENT, -ENOTDIR,
 * -EPERM (another owner, or writable by group or others), -errno.
 */
int safe_dir_open(const char *path, char *why, size_t whylen);

/* The same for a directory only we may own (KSDIR): not the service
 * account's. */
int safe_private_dir_open(const char *path, char *why, size_t whylen);

/*
 * The same for rel under dfd, no link followed; with create, a missing
 * last component is made with mode 0700 first.
 */
int safe_subdir_open(int dfd, const char *rel, int create, const char *label,
		     char *why, size_t whylen);

/*
 * Open rel under dfd with flags (O_RDONLY, O_RDWR, O_WRONLY, O_CREAT,
 * O_EXCL, O_APPEND, O_DIRECT; never O_TRUNC, which a caller does with
 * ftruncate once the file is known to be its own).  The descriptor comes
 * back blocking and close-on-exec.  -ELOOP (a link on the way), -EISDIR,
 * -EINVAL (a FIFO, socket or device), -EPERM (another owner), -ENOENT,
 * -errno.
 */
int safe_open(int dfd, const char *rel, int flags, mode_t mode, const char *label,
	      char *why, size_t whylen);

/*
 * The checks of safe_open without keeping the file, for files another
 * library opens by name (LMDB's data.mdb and lock.mdb): 0 when rel is a
 * regular file owned by safe_owner(), or absent and absent_ok.
 */
int safe_check(int dfd, const char *rel, int absent_ok, const char *label,
	       char *why, size_t whylen);

/* The same as safe_check for a descriptor already open. */
int safe_check_fd(int fd, const char *label, char *why, size_t whylen);

/*
 * Read all of rel under dfd (a regular file of at most max bytes) into a
 * malloc'd, NUL-terminated buffer.  -EFBIG, and safe_open's codes.
 */
int safe_read_all(int dfd, const char *rel, size_t max, char **out, size_t *len,
		  const char *label, char *why, size_t whylen);

/*
 * Replace name (a plain name, no '/') in dfd: written to a temporary of
 * an unpredictable name made with O_EXCL, fsync'd, renamed over name,
 * the directory fsync'd.  0 or -errno; nothing is left behind on failure.
 */
int safe_write_atomic(int dfd, const char *name, const void *buf, size_t len, mode_t mode);

/* The same by path, in a directory the caller made (a snapshot's). */
int file_write_atomic(const char *path, const void *buf, size_t len, mode_t mode);

#endif
