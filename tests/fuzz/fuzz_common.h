/*
 * fuzz_common: what the libFuzzer targets share.  Decoders that read a file
 * (medvault.conf, the keystore, audit logs) get the input written to a file
 * in one private directory per process, made once and removed at exit, so
 * parallel fuzzers (-jobs/-workers) never share a file.
 */
#ifndef MEDVAULT_FUZZ_COMMON_H
#define MEDVAULT_FUZZ_COMMON_H

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A violated invariant: abort so libFuzzer saves the input as a crash. */
#define FUZZ_ASSERT(c) do { \
	if (!(c)) { \
		fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c); \
		abort(); \
	} \
} while (0)

static char fuzz_dir_path[PATH_MAX];

static __attribute__((unused)) void fuzz_dir_remove(void)
{
	DIR *d;
	struct dirent *e;
	char p[PATH_MAX + 256];

	if (!fuzz_dir_path[0] || !(d = opendir(fuzz_dir_path)))
		return;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
			snprintf(p, sizeof(p), "%s/%s", fuzz_dir_path, e->d_name);
			unlink(p);
		}
	closedir(d);
	rmdir(fuzz_dir_path);
}

/* the per-process scratch directory */
static __attribute__((unused)) const char *fuzz_dir(void)
{
	if (!fuzz_dir_path[0]) {
		const char *t = getenv("TMPDIR");

		snprintf(fuzz_dir_path, sizeof(fuzz_dir_path), "%s/mvfuzz.XXXXXX",
			 t && *t ? t : "/tmp");
		if (!mkdtemp(fuzz_dir_path)) {
			perror("mkdtemp");
			abort();
		}
		atexit(fuzz_dir_remove);
	}
	return fuzz_dir_path;
}

/* write exactly data[0..size) to DIR/name (replacing it) */
static __attribute__((unused)) void fuzz_write_file(const char *name, const uint8_t *data, size_t size)
{
	char p[PATH_MAX + 256];
	int fd;
	size_t off = 0;

	snprintf(p, sizeof(p), "%s/%s", fuzz_dir(), name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		perror(p);
		abort();
	}
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);

		if (n <= 0) {
			perror(p);
			abort();
		}
		off += (size_t)n;
	}
	close(fd);
}

static __attribute__((unused)) void fuzz_unlink(const char *name)
{
	char p[PATH_MAX + 256];

	snprintf(p, sizeof(p), "%s/%s", fuzz_dir(), name);
	unlink(p);
}

#endif
