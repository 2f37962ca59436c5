/*
 * memfind [-x] NEEDLE PATH...: look for a byte string in every regular
 * file below each PATH (recursively, symlinks not followed).  With -x the
 * needle is given in hex, so binary needles (a raw key) work.  Prints
 * "PATH: offset N" for each file that holds it.
 * Exit status: 0 not found anywhere, 1 found, 2 error.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

static const unsigned char *g_needle;
static size_t g_len;
static int g_found, g_error;

static int scan(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	int fd;
	void *map;
	const unsigned char *hit;

	(void)ftw;
	if (flag == FTW_NS || flag == FTW_DNR) {
		fprintf(stderr, "memfind: cannot read %s\n", path);
		g_error = 1;
		return 0;
	}
	if (flag != FTW_F || !S_ISREG(st->st_mode) || st->st_size == 0)
		return 0;
	fd = open(path, O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "memfind: %s: %s\n", path, strerror(errno));
		g_error = 1;
		return 0;
	}
	map = mmap(NULL, (size_t)st->st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		fprintf(stderr, "memfind: mmap %s: %s\n", path, strerror(errno));
		g_error = 1;
		return 0;
	}
	hit = memmem(map, (size_t)st->st_size, g_needle, g_len);
	if (hit) {
		printf("%s: offset %td\n", path, hit - (const unsigned char *)map);
		g_found = 1;
	}
	munmap(map, (size_t)st->st_size);
	return 0;
}

static unsigned char *from_hex(const char *hex, size_t *len)
{
	size_t n = strlen(hex);
	unsigned char *out;

	if (n == 0 || n % 2)
		return NULL;
	out = malloc(n / 2);
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
			free(out);
			return NULL;
		}
		out[i] = (unsigned char)v;
	}
	*len = n / 2;
	return out;
}

int main(int argc, char **argv)
{
	int i = 1;
	unsigned char *bin = NULL;

	if (argc > 1 && !strcmp(argv[1], "-x")) {
		if (argc < 3 || !(bin = from_hex(argv[2], &g_len))) {
			fprintf(stderr, "memfind: bad hex needle\n");
			return 2;
		}
		g_needle = bin;
		i = 3;
	} else if (argc > 1) {
		g_needle = (const unsigned char *)argv[1];
		g_len = strlen(argv[1]);
		i = 2;
	}
	if (!g_needle || g_len == 0 || i >= argc) {
		fprintf(stderr, "usage: memfind [-x] NEEDLE PATH...\n");
		return 2;
	}
	for (; i < argc; i++)
		if (nftw(argv[i], scan, 16, FTW_PHYS) != 0) {
			fprintf(stderr, "memfind: %s: %s\n", argv[i], strerror(errno));
			g_error = 1;
		}
	free(bin);
	return g_error ? 2 : g_found ? 1 : 0;
}
