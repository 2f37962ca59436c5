/* fileutil: small POSIX helpers shared by every module. */
#ifndef MEDVAULT_FILEUTIL_H
#define MEDVAULT_FILEUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read a whole regular file of at most max bytes into a malloc'd,
 * NUL-terminated buffer.  -errno, -EFBIG when larger than max. */
int file_read_all(const char *path, size_t max, char **out, size_t *len);

/* Replace path atomically: temp file, write, fsync, rename, fsync dir. */
int file_write_atomic(const char *path, const void *buf, size_t len, mode_t mode);
/* The same without flushing: for state that dies with the machine (/run). */
int file_replace_volatile(const char *path, const void *buf, size_t len, mode_t mode);

int fsync_dir(const char *dir);

/* 1 if dir holds nothing but . and .., 0 if it holds something, -errno */
int dir_is_empty(const char *dir);

/* write/pwrite that retry short writes and EINTR */
int write_full(int fd, const void *buf, size_t len);
int pwrite_full(int fd, const void *buf, size_t len, off_t off);
/* pread that retries; returns bytes read (short only at EOF) or -errno */
ssize_t pread_full(int fd, void *buf, size_t len, off_t off);

static inline void be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint64_t be64_get(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static inline void be32_put(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static inline uint32_t be32_get(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 0; i < 4; i++)
		v = (v << 8) | p[i];
	return v;
}

#endif
