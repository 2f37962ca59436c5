/* Metadata scale helper for scripts/bench-scale.sh (issue 8, item 3).
 *
 * Files are named DIR/dNNNN/<prefix>NNNNNNNN; file i lives in directory
 * i % DIRS (round-robin), so every directory grows at the same pace.
 *
 *   scale mkdirs   DIR DIRS
 *   scale warmdirs DIR DIRS                     stat every directory (untimed warm-up)
 *   scale create   DIR DIRS FROM TO SIZE WINDOW PREFIX
 *       creates files FROM..TO-1 (open O_CREAT|O_EXCL, SIZE bytes written
 *       if SIZE > 0, close); prints "window END SECONDS RATE" for every
 *       WINDOW files, then "total COUNT SECONDS RATE"
 *   scale lookup   DIR DIRS N COUNT SEED PREFIX
 *       stat(2) COUNT distinct names drawn at random among 0..N-1 (the same
 *       SEED draws the same names); prints "lookup COUNT SECONDS RATE ERRORS"
 *   scale neg      DIR DIRS COUNT SEED
 *       stat(2) COUNT fresh names that do not exist (expects ENOENT);
 *       prints "neg COUNT SECONDS RATE ERRORS"
 *   scale idle     PID [MAXSEC]
 *       wait until PID used no CPU for 3 consecutive 200 ms intervals
 *       (e.g. after drop_caches, until the daemon has handled the FORGETs);
 *       prints "idle SECONDS"
 *
 * Build: gcc -O2 -Wall -o build/bench/scale scripts/bench/scale.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64* */
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

static void seed(unsigned long s)
{
	rng_state = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)s * 0xBF58476D1CE4E5B9ULL);
	if (!rng_state)
		rng_state = 1;
	for (int i = 0; i < 8; i++)
		rng();
}

static unsigned long num(const char *s, const char *what)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || end == s) {
		fprintf(stderr, "scale: bad %s '%s'\n", what, s);
		exit(2);
	}
	return v;
}

static void file_path(char *buf, size_t n, const char *dir, unsigned dirs, const char *prefix,
		      unsigned long i)
{
	snprintf(buf, n, "%s/d%04lu/%s%08lu", dir, i % dirs, prefix, i);
}

static int cmd_mkdirs(const char *dir, unsigned dirs, int warm)
{
	char p[4096];
	for (unsigned d = 0; d < dirs; d++) {
		struct stat st;
		snprintf(p, sizeof p, "%s/d%04u", dir, d);
		if (warm) {
			if (stat(p, &st) < 0) {
				fprintf(stderr, "scale: stat %s: %s\n", p, strerror(errno));
				return 1;
			}
		} else if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			fprintf(stderr, "scale: mkdir %s: %s\n", p, strerror(errno));
			return 1;
		}
	}
	return 0;
}

static int cmd_create(const char *dir, unsigned dirs, unsigned long from, unsigned long to,
		      size_t size, unsigned long window, const char *prefix)
{
	char p[4096];
	char *buf = NULL;
	if (size) {
		buf = malloc(size);
		if (!buf)
			return 1;
		seed(from + 1);
		for (size_t k = 0; k < size; k++)
			buf[k] = (char)rng();
	}
	double t0 = now(), tw = t0;
	unsigned long wstart = from;
	for (unsigned long i = from; i < to; i++) {
		file_path(p, sizeof p, dir, dirs, prefix, i);
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0) {
			fprintf(stderr, "scale: create %s: %s\n", p, strerror(errno));
			return 1;
		}
		if (size) {
			memcpy(buf, &i, sizeof i);	/* every file differs */
			size_t off = 0;
			while (off < size) {
				ssize_t w = write(fd, buf + off, size - off);
				if (w < 0) {
					if (errno == EINTR)
						continue;
					fprintf(stderr, "scale: write %s: %s\n", p, strerror(errno));
					return 1;
				}
				off += (size_t)w;
			}
		}
		if (close(fd) < 0) {
			fprintf(stderr, "scale: close %s: %s\n", p, strerror(errno));
			return 1;
		}
		if (window && (i + 1 - wstart == window || i + 1 == to)) {
			double t = now();
			printf("window %lu %.6f %.1f\n", i + 1, t - tw, (double)(i + 1 - wstart) / (t - tw));
			fflush(stdout);
			tw = t;
			wstart = i + 1;
		}
	}
	double t = now() - t0;
	printf("total %lu %.6f %.1f\n", to - from, t, t > 0 ? (double)(to - from) / t : 0.0);
	free(buf);
	return 0;
}

static int cmd_lookup(const char *dir, unsigned dirs, unsigned long n, unsigned long count,
		      unsigned long s, const char *prefix)
{
	char p[4096];
	if (count > n)
		count = n;
	uint32_t *idx = malloc(n * sizeof *idx);
	if (!idx)
		return 1;
	for (unsigned long i = 0; i < n; i++)
		idx[i] = (uint32_t)i;
	seed(s);
	for (unsigned long i = 0; i < count; i++) {	/* partial Fisher-Yates: distinct names */
		unsigned long j = i + (unsigned long)(rng() % (n - i));
		uint32_t t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
	unsigned long errs = 0;
	double t0 = now();
	for (unsigned long i = 0; i < count; i++) {
		struct stat st;
		file_path(p, sizeof p, dir, dirs, prefix, idx[i]);
		if (stat(p, &st) < 0) {
			if (errs++ == 0)
				fprintf(stderr, "scale: stat %s: %s\n", p, strerror(errno));
		}
	}
	double t = now() - t0;
	printf("lookup %lu %.6f %.1f %lu\n", count, t, (double)count / t, errs);
	free(idx);
	return errs ? 1 : 0;
}

static int cmd_neg(const char *dir, unsigned dirs, unsigned long count, unsigned long s)
{
	char p[4096];
	unsigned long errs = 0;
	seed(s);
	double t0 = now();
	for (unsigned long i = 0; i < count; i++) {
		struct stat st;
		snprintf(p, sizeof p, "%s/d%04lu/nx%lu-%08lu", dir, (unsigned long)(rng() % dirs), s, i);
		if (stat(p, &st) == 0 || errno != ENOENT) {
			if (errs++ == 0)
				fprintf(stderr, "scale: stat %s: %s\n", p, errno ? strerror(errno) : "exists");
		}
	}
	double t = now() - t0;
	printf("neg %lu %.6f %.1f %lu\n", count, t, (double)count / t, errs);
	return errs ? 1 : 0;
}

static long long cpu_ticks(long pid)
{
	char p[64], b[4096];
	snprintf(p, sizeof p, "/proc/%ld/stat", pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return -1;
	size_t n = fread(b, 1, sizeof b - 1, f);
	fclose(f);
	b[n] = 0;
	char *c = strrchr(b, ')');
	if (!c)
		return -1;
	/* after ") ": state(3) ppid ... utime is field 14, stime 15 */
	unsigned long long ut = 0, st = 0;
	if (sscanf(c + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

static int cmd_idle(long pid, double maxsec)
{
	double t0 = now();
	long long last = cpu_ticks(pid);
	int quiet = 0;
	while (last >= 0 && now() - t0 < maxsec && quiet < 3) {
		usleep(200000);
		long long c = cpu_ticks(pid);
		if (c < 0)
			break;
		quiet = (c - last <= 1) ? quiet + 1 : 0;
		last = c;
	}
	printf("idle %.3f\n", now() - t0);
	return 0;
}

static void usage(void)
{
	fputs("usage: scale mkdirs|warmdirs DIR DIRS\n"
	      "       scale create DIR DIRS FROM TO SIZE WINDOW PREFIX\n"
	      "       scale lookup DIR DIRS N COUNT SEED PREFIX\n"
	      "       scale neg DIR DIRS COUNT SEED\n"
	      "       scale idle PID [MAXSEC]\n", stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		usage();
	const char *c = argv[1];
	if (!strcmp(c, "idle"))
		return cmd_idle((long)num(argv[2], "pid"), argc > 3 ? (double)num(argv[3], "seconds") : 60.0);
	if (argc < 4)
		usage();
	unsigned dirs = (unsigned)num(argv[3], "dirs");
	if (!dirs || dirs > 10000) {
		fprintf(stderr, "scale: DIRS must be 1..10000\n");
		return 2;
	}
	if (!strcmp(c, "mkdirs") && argc == 4)
		return cmd_mkdirs(argv[2], dirs, 0);
	if (!strcmp(c, "warmdirs") && argc == 4)
		return cmd_mkdirs(argv[2], dirs, 1);
	if (!strcmp(c, "create") && argc == 9)
		return cmd_create(argv[2], dirs, num(argv[4], "from"), num(argv[5], "to"),
				  num(argv[6], "size"), num(argv[7], "window"), argv[8]);
	if (!strcmp(c, "lookup") && argc == 8)
		return cmd_lookup(argv[2], dirs, num(argv[4], "n"), num(argv[5], "count"),
				  num(argv[6], "seed"), argv[7]);
	if (!strcmp(c, "neg") && argc == 6)
		return cmd_neg(argv[2], dirs, num(argv[4], "count"), num(argv[5], "seed"));
	usage();
	return 2;
}
