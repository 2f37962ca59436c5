/* PACS-style ingest for scripts/bench.sh: copy SRC/<series>/<file> to
 * DST/<series>/<file> one file at a time, fsync()ing every file before the
 * next one is opened (what a DICOM store SCP does before it acknowledges).
 *
 *   ingest SRC DST      prints "<files> <bytes>" on stdout
 *
 * Series and files are processed in name order; 128 KiB writes (like cp).
 * Build: gcc -O2 -Wall -o build/bench/ingest scripts/bench/ingest.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (128 * 1024)

static char buf[CHUNK];

static int skip(const struct dirent *d)
{
	return strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
}

static int copy_one(const char *src, const char *dst, long long *bytes)
{
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		fprintf(stderr, "ingest: open %s: %s\n", src, strerror(errno));
		return -1;
	}
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		fprintf(stderr, "ingest: create %s: %s\n", dst, strerror(errno));
		close(in);
		return -1;
	}
	for (;;) {
		ssize_t n = read(in, buf, sizeof buf);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "ingest: read %s: %s\n", src, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0) {
				if (errno == EINTR)
					continue;
				fprintf(stderr, "ingest: write %s: %s\n", dst, strerror(errno));
				goto fail;
			}
			off += w;
		}
		*bytes += n;
	}
	if (fsync(out) != 0) {
		fprintf(stderr, "ingest: fsync %s: %s\n", dst, strerror(errno));
		goto fail;
	}
	close(in);
	if (close(out) != 0) {
		fprintf(stderr, "ingest: close %s: %s\n", dst, strerror(errno));
		return -1;
	}
	return 0;
fail:
	close(in);
	close(out);
	return -1;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s SRC DST\n", argv[0]);
		return 2;
	}
	struct dirent **series;
	int ns = scandir(argv[1], &series, skip, alphasort);
	if (ns < 0) {
		fprintf(stderr, "ingest: scandir %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (mkdir(argv[2], 0755) != 0 && errno != EEXIST) {
		fprintf(stderr, "ingest: mkdir %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	long long files = 0, bytes = 0;
	int rc = 0;
	for (int i = 0; i < ns && rc == 0; i++) {
		char sdir[4096], ddir[4096];
		snprintf(sdir, sizeof sdir, "%s/%s", argv[1], series[i]->d_name);
		snprintf(ddir, sizeof ddir, "%s/%s", argv[2], series[i]->d_name);
		if (mkdir(ddir, 0755) != 0 && errno != EEXIST) {
			fprintf(stderr, "ingest: mkdir %s: %s\n", ddir, strerror(errno));
			rc = 1;
			break;
		}
		struct dirent **ents;
		int ne = scandir(sdir, &ents, skip, alphasort);
		if (ne < 0) {
			fprintf(stderr, "ingest: scandir %s: %s\n", sdir, strerror(errno));
			rc = 1;
			break;
		}
		for (int j = 0; j < ne; j++) {
			char s[8192], d[8192];
			snprintf(s, sizeof s, "%s/%s", sdir, ents[j]->d_name);
			snprintf(d, sizeof d, "%s/%s", ddir, ents[j]->d_name);
			if (rc == 0 && copy_one(s, d, &bytes) != 0)
				rc = 1;
			else if (rc == 0)
				files++;
			free(ents[j]);
		}
		free(ents);
	}
	for (int i = 0; i < ns; i++)
		free(series[i]);
	free(series);
	printf("%lld %lld\n", files, bytes);
	return rc;
}
