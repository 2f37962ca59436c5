/* fileutil: small POSIX helpers shared by every module. */
#ifndef MEDVAULT_FILEUTIL_H
#define MEDVAULT_FILEUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* only for fs/core/filedata.c and tests/unit/store/test_index.c, which
 * still take the encoders from here: they should include it themselves */
#include "util/byteorder.h"

/* Read a whole regular file of at most max bytes into a malloc'd,
 * NUL-terminated buffer.  -errno, -EFBIG when larger than max. */
int file_read_all(const char *path, size_t max, char **out, size_t *len);
/* The same from an open fd (for callers that open with their own flags,
 * e.g. O_NOFOLLOW); -EINVAL when not a regular file. */
int fd_read_all(int fd, size_t max, char **out, size_t *len);


int fsync_dir(const char *dir);
/* the same for rel under dfd (its last component not followed) */
int fsync_dir_at(int dfd, const char *rel);

/* 1 if dir holds nothing but . and .., 0 if it holds something, -errno */
int dir_is_empty(const char *dir);

/* write/pwrite that retry short writes and EINTR: 0 or -errno (-EIO when
 * the kernel takes nothing and reports no error) */
int write_full(int fd, const void *buf, size_t len);
int pwrite_full(int fd, const void *buf, size_t len, off_t off);
/* read/pread that retry short reads and EINTR; return the bytes read
 * (fewer than len only at end of file) or -errno */
ssize_t read_full(int fd, void *buf, size_t len);
ssize_t pread_full(int fd, void *buf, size_t len, off_t off);

#endif
