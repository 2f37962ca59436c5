/*
 * stress_io: concurrent I/O with self-verifying data, for t_30_concurrency.
 *
 *   stress_io writer DIR ID NW NREC   records into DIR/shared, DIR/priv.ID, DIR/log
 *   stress_io reader DIR NW NREC SEED read everything concurrently until DIR/STOP
 *   stress_io churn DIR ID N          temp-write+rename/unlink/mkdir in DIR/churn
 *   stress_io churnread DIR           read DIR/churn concurrently until DIR/STOP
 *   stress_io verify DIR NW NREC NCHURN N   check the final state byte-exactly
 *
 * DIR/shared: record (w, s) lives at ((s * NW) + w) * REC_SIZE.  REC_SIZE is
 * not a power of two, so records straddle pages and chunks, and neighbouring
 * records of different writers share chunks: a read-modify-write race in a
 * chunk buffer loses someone's record.  Each record is written twice
 * (version 1 then 2); the final state must hold version 2 everywhere, and a
 * reader that has seen version v of a record must never see less later.
 * Every record carries a checksum and its own coordinates, so misplaced or
 * stale data is caught, not just garbage.
 *
 * A concurrent read may legally observe a write half-done (Linux does not
 * make buffered read() atomic against write(), on ext4 either), so a reader
 * re-reads a bad record a few times before calling it corrupt.
 *
 * Exit status 0 when every check passed; failures are described on stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#define REC_SIZE 1000
#define REC_MAGIC 0x4d565245u	/* "MVRE" */
#define LOG_SIZE 128
#define LOG_MAGIC 0x4d564c47u	/* "MVLG" */
#define PRIV_SIZE (3u << 20)	/* bytes per private file */
#define MAX_FAILS 20		/* stop reporting after this many */

struct rec_head {
	uint32_t magic, writer, seq, version;
	uint64_t sum;		/* over the whole record with sum = 0 */
};

static int g_fails;
static const char *g_role = "stress_io";

__attribute__((format(printf, 1, 2)))
static void failf(const char *fmt, ...)
{
	va_list ap;

	if (++g_fails > MAX_FAILS)
		return;
	fprintf(stderr, "%s: ", g_role);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x7fb5d329728ea185ULL;
	x ^= x >> 27;
	x *= 0x81dadef4bc2dd44dULL;
	x ^= x >> 33;
	return x;
}

static uint64_t checksum(const unsigned char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return mix(h);
}

static unsigned char pat(uint64_t seed, uint64_t pos)
{
	return (unsigned char)mix(seed * 0x9E3779B97F4A7C15ULL + pos);
}

static void msleep(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&t, NULL);
}

static bool stop_requested(const char *dir)
{
	char p[4096];

	snprintf(p, sizeof p, "%s/STOP", dir);
	return access(p, F_OK) == 0;
}

static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);

		if (n < 0 && errno != EINTR)
			return -1;
		if (n > 0)
			done += (size_t)n;
	}
	return 0;
}

static ssize_t pread_all(int fd, void *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);

		if (n < 0 && errno != EINTR)
			return -1;
		if (n == 0)
			break;
		if (n > 0)
			got += (size_t)n;
	}
	return (ssize_t)got;
}

static int open_in(const char *dir, const char *name, int flags)
{
	char p[4096];

	snprintf(p, sizeof p, "%s/%s", dir, name);
	return open(p, flags, 0644);
}

/* ------------------------------------------------------------ records */

static void rec_make(unsigned char *r, uint32_t w, uint32_t s, uint32_t v)
{
	struct rec_head h = { REC_MAGIC, w, s, v, 0 };

	for (size_t i = sizeof h; i < REC_SIZE; i++)
		r[i] = pat(((uint64_t)w << 40) ^ ((uint64_t)s << 8) ^ v, i);
	memcpy(r, &h, sizeof h);
	h.sum = checksum(r, REC_SIZE);
	memcpy(r, &h, sizeof h);
}

/*
 * 0 all zero (not written yet), v > 0 a valid version-v record of (w, s),
 * -1 a damaged record, -2 a valid record of some other (w, s): misplaced.
 */
static int rec_check(const unsigned char *r, uint32_t w, uint32_t s)
{
	struct rec_head h;
	unsigned char copy[REC_SIZE];
	bool zero = true;

	for (size_t i = 0; i < REC_SIZE && zero; i++)
		zero = r[i] == 0;
	if (zero)
		return 0;
	memcpy(&h, r, sizeof h);
	memcpy(copy, r, REC_SIZE);
	memset(copy + offsetof(struct rec_head, sum), 0, sizeof h.sum);
	if (h.magic != REC_MAGIC || h.sum != checksum(copy, REC_SIZE) || h.version < 1 || h.version > 2)
		return -1;
	if (h.writer != w || h.seq != s)
		return -2;
	rec_make(copy, w, s, h.version);	/* the payload must be the right one too */
	return memcmp(copy, r, REC_SIZE) == 0 ? (int)h.version : -1;
}

static off_t rec_off(uint32_t w, uint32_t s, uint32_t nw)
{
	return ((off_t)s * nw + w) * REC_SIZE;
}

static void log_make(unsigned char *r, uint32_t w, uint32_t s)
{
	struct rec_head h = { LOG_MAGIC, w, s, 1, 0 };

	for (size_t i = sizeof h; i < LOG_SIZE; i++)
		r[i] = pat(((uint64_t)w << 32) ^ s ^ 0x1000000000000ULL, i);
	memcpy(r, &h, sizeof h);
	h.sum = checksum(r, LOG_SIZE);
	memcpy(r, &h, sizeof h);
}

/* ------------------------------------------------------------ writer */

static int run_writer(const char *dir, uint32_t id, uint32_t nw, uint32_t nrec)
{
	unsigned char rec[REC_SIZE], lrec[LOG_SIZE], *priv = malloc(PRIV_SIZE);
	int shared = open_in(dir, "shared", O_RDWR | O_CREAT);
	int log = open_in(dir, "log", O_WRONLY | O_CREAT | O_APPEND);
	char name[64];
	int pfd;
	size_t poff = 0;

	snprintf(name, sizeof name, "priv.%u", id);
	pfd = open_in(dir, name, O_RDWR | O_CREAT | O_TRUNC);
	if (shared < 0 || log < 0 || pfd < 0 || !priv) {
		failf("open: %s", strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < PRIV_SIZE; i++)
		priv[i] = pat(id + 1000, i);
	srandom(id * 7919 + 1);
	for (uint32_t s = 0; s < nrec && !g_fails; s++) {
		for (uint32_t v = 1; v <= 2; v++) {
			rec_make(rec, id, s, v);
			if (pwrite_all(shared, rec, REC_SIZE, rec_off(id, s, nw)) != 0)
				failf("pwrite shared (%u,%u): %s", id, s, strerror(errno));
		}
		log_make(lrec, id, s);
		if (write(log, lrec, LOG_SIZE) != LOG_SIZE)
			failf("append log (%u,%u): %s", id, s, strerror(errno));
		/* the private file grows in odd-sized pieces */
		if (poff < PRIV_SIZE) {
			size_t n = 1 + (size_t)random() % 20000;

			if (n > PRIV_SIZE - poff)
				n = PRIV_SIZE - poff;
			if (pwrite_all(pfd, priv + poff, n, (off_t)poff) != 0)
				failf("pwrite priv.%u: %s", id, strerror(errno));
			poff += n;
		}
		if (s % 200 == 199 && fsync(shared) != 0)
			failf("fsync shared: %s", strerror(errno));
	}
	if (poff < PRIV_SIZE && pwrite_all(pfd, priv + poff, PRIV_SIZE - poff, (off_t)poff) != 0)
		failf("pwrite priv.%u tail: %s", id, strerror(errno));
	if (fsync(pfd) != 0 || close(pfd) != 0 || close(shared) != 0 || close(log) != 0)
		failf("fsync/close: %s", strerror(errno));
	free(priv);
	return g_fails ? 1 : 0;
}

/* ------------------------------------------------------------ reader */

/* re-read one record until it settles; returns rec_check's verdict */
static int rec_settle(int fd, uint32_t w, uint32_t s, uint32_t nw)
{
	unsigned char r[REC_SIZE];
	int v = -1;

	for (int tries = 0; tries < 5; tries++) {
		ssize_t n = pread_all(fd, r, REC_SIZE, rec_off(w, s, nw));

		if (n < REC_SIZE)
			memset(r + (n < 0 ? 0 : n), 0, REC_SIZE - (size_t)(n < 0 ? 0 : n));
		v = rec_check(r, w, s);
		if (v >= 0)
			return v;
		msleep(20);
	}
	return v;
}

static int run_reader(const char *dir, uint32_t nw, uint32_t nrec, unsigned seed)
{
	const size_t span = 64 * REC_SIZE;
	unsigned char *buf = malloc(span), *pbuf = malloc(PRIV_SIZE);
	unsigned char *seen = calloc((size_t)nw * nrec, 1);	/* highest version seen */
	int fd = -1;
	long passes = 0;
	time_t deadline = time(NULL) + 600;

	srandom(seed);
	while (!stop_requested(dir) && time(NULL) < deadline && !g_fails) {
		if (fd < 0 && (fd = open_in(dir, "shared", O_RDONLY)) < 0) {
			msleep(10);	/* not created yet */
			continue;
		}
		/* a random window of records, not aligned to anything */
		uint64_t first = (uint64_t)random() % ((uint64_t)nw * nrec);
		ssize_t n = pread_all(fd, buf, span, (off_t)(first * REC_SIZE));

		for (ssize_t i = 0; n > 0 && (i + 1) * REC_SIZE <= n; i++) {
			uint64_t idx = first + (uint64_t)i;
			uint32_t w = (uint32_t)(idx % nw), s = (uint32_t)(idx / nw);
			int v = rec_check(buf + i * REC_SIZE, w, s);

			if (v < 0)
				v = rec_settle(fd, w, s, nw);
			if (v == -2)
				failf("record (%u,%u) holds another record's data", w, s);
			else if (v < 0)
				failf("record (%u,%u) is corrupt", w, s);
			else if (v < seen[idx])
				failf("record (%u,%u) went back from version %u to %d", w, s, seen[idx], v);
			else
				seen[idx] = (unsigned char)v;
		}
		/* a private file: every byte below the size seen must be final */
		{
			char name[64];
			struct stat st;
			uint32_t w = (uint32_t)random() % nw;
			int pfd;

			snprintf(name, sizeof name, "priv.%u", w);
			pfd = open_in(dir, name, O_RDONLY);
			if (pfd >= 0 && fstat(pfd, &st) == 0 && st.st_size > 0) {
				/* a random 256 KiB window below the size seen */
				size_t size = (size_t)st.st_size > PRIV_SIZE ? PRIV_SIZE : (size_t)st.st_size;
				size_t at = (size_t)random() % size, len = size - at;
				ssize_t got;

				if (len > 256 * 1024)
					len = 256 * 1024;
				got = pread_all(pfd, pbuf, len, (off_t)at);
				for (ssize_t i = 0; i < got; i++)
					if (pbuf[i] != pat(w + 1000, at + (uint64_t)i)) {
						/* maybe in flight: look again once */
						unsigned char c;

						msleep(20);
						if (pread(pfd, &c, 1, (off_t)at + i) != 1 ||
						    c != pat(w + 1000, at + (uint64_t)i))
							failf("priv.%u byte %zu is wrong", w, at + (size_t)i);
						break;
					}
			}
			if (pfd >= 0)
				close(pfd);
		}
		passes++;
		msleep(2);	/* leave the CPU to the writers on small machines */
	}
	if (fd >= 0)
		close(fd);
	if (!g_fails && passes == 0)
		failf("never got to read anything");
	free(buf);
	free(pbuf);
	free(seen);
	return g_fails ? 1 : 0;
}

/* ------------------------------------------------------------ churn */

/* self-describing content: "CHURN id k len sum\n" + len pattern bytes */
static size_t churn_make(unsigned char *buf, size_t cap, uint32_t id, uint32_t k)
{
	size_t len = (size_t)(mix(((uint64_t)id << 32) | k) % 30000);
	int h;

	for (size_t i = 0; i < len; i++)
		buf[100 + i] = pat(((uint64_t)id << 32) ^ k ^ 0x5555, i);
	h = snprintf((char *)buf, 100, "CHURN %u %u %zu %016llx\n", id, k, len,
		     (unsigned long long)checksum(buf + 100, len));
	memmove(buf + h, buf + 100, len);
	(void)cap;
	return (size_t)h + len;
}

/* 0 valid (fills *id, *k), -1 not */
static int churn_check(const unsigned char *buf, size_t n, uint32_t *id, uint32_t *k)
{
	unsigned char want[40000];
	unsigned a, b;

	if (sscanf((const char *)buf, "CHURN %u %u", &a, &b) != 2)
		return -1;
	size_t wl = churn_make(want, sizeof want, a, b);
	if (wl != n || memcmp(want, buf, n) != 0)
		return -1;
	*id = a;
	*k = b;
	return 0;
}

static int read_whole(const char *path, unsigned char *buf, size_t cap, size_t *n)
{
	int fd = open(path, O_RDONLY);
	ssize_t got;

	if (fd < 0)
		return -1;
	got = pread_all(fd, buf, cap, 0);
	close(fd);
	if (got < 0)
		return -1;
	*n = (size_t)got;
	return 0;
}

static int run_churn(const char *dir, uint32_t id, uint32_t n)
{
	static unsigned char buf[40000];
	char cdir[4096], tmp[4200], fin[4200], cur[4200], sub[4200];

	snprintf(cdir, sizeof cdir, "%s/churn", dir);
	if (mkdir(cdir, 0755) != 0 && errno != EEXIST) {
		failf("mkdir %s: %s", cdir, strerror(errno));
		return 1;
	}
	snprintf(cur, sizeof cur, "%s/current", cdir);
	for (uint32_t k = 0; k < n && !g_fails; k++) {
		size_t len = churn_make(buf, sizeof buf, id, k);
		int fd;

		snprintf(tmp, sizeof tmp, "%s/tmp.%u.%u", cdir, id, k);
		snprintf(fin, sizeof fin, "%s/f.%u.%u", cdir, id, k);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0 || pwrite_all(fd, buf, len, 0) != 0 || (k % 10 == 0 && fsync(fd) != 0) || close(fd) != 0) {
			failf("write %s: %s", tmp, strerror(errno));
			break;
		}
		/* every churner also races to replace one shared name */
		if (k % 4 == 0) {
			char tmp2[4300];

			snprintf(tmp2, sizeof tmp2, "%s.cur", tmp);
			if (link(tmp, tmp2) != 0 || rename(tmp2, cur) != 0)
				failf("replace current: %s", strerror(errno));
		}
		if (rename(tmp, fin) != 0)
			failf("rename %s: %s", tmp, strerror(errno));
		if (k % 3 == 0 && unlink(fin) != 0)
			failf("unlink %s: %s", fin, strerror(errno));
		snprintf(sub, sizeof sub, "%s/d.%u.%u", cdir, id, k);
		if (mkdir(sub, 0755) != 0 || rmdir(sub) != 0)
			failf("mkdir/rmdir %s: %s", sub, strerror(errno));
	}
	return g_fails ? 1 : 0;
}

static int run_churnread(const char *dir)
{
	static unsigned char buf[40000];
	char cdir[4096], path[4400];
	long passes = 0;
	time_t deadline = time(NULL) + 600;

	snprintf(cdir, sizeof cdir, "%s/churn", dir);
	while (!stop_requested(dir) && time(NULL) < deadline && !g_fails) {
		DIR *d = opendir(cdir);
		struct dirent *e;
		size_t n;
		uint32_t id, k;

		if (!d) {
			msleep(10);
			continue;
		}
		while ((e = readdir(d))) {
			if (strncmp(e->d_name, "f.", 2) != 0 && strcmp(e->d_name, "current") != 0)
				continue;
			snprintf(path, sizeof path, "%s/%s", cdir, e->d_name);
			/* a final name is only ever made by rename: always complete */
			if (read_whole(path, buf, sizeof buf, &n) != 0) {
				if (errno != ENOENT)
					failf("read %s: %s", e->d_name, strerror(errno));
				continue;
			}
			if (churn_check(buf, n, &id, &k) != 0)
				failf("%s holds incomplete or foreign content (%zu bytes)", e->d_name, n);
		}
		closedir(d);
		passes++;
		msleep(5);
	}
	if (!g_fails && passes == 0)
		failf("never got to read anything");
	return g_fails ? 1 : 0;
}

/* ------------------------------------------------------------ verify */

static void verify_shared(const char *dir, uint32_t nw, uint32_t nrec)
{
	unsigned char r[REC_SIZE];
	int fd = open_in(dir, "shared", O_RDONLY);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) != 0) {
		failf("open shared: %s", strerror(errno));
		return;
	}
	if (st.st_size != (off_t)nw * nrec * REC_SIZE)
		failf("shared has %jd bytes, want %ju", (intmax_t)st.st_size, (uintmax_t)nw * nrec * REC_SIZE);
	for (uint32_t s = 0; s < nrec; s++)
		for (uint32_t w = 0; w < nw; w++) {
			int v;

			if (pread_all(fd, r, REC_SIZE, rec_off(w, s, nw)) != REC_SIZE)
				v = -3;
			else
				v = rec_check(r, w, s);
			if (v != 2)
				failf("shared record (%u,%u): %s", w, s,
				      v == 1 ? "lost its second write (version 1)" : v == 0 ? "missing (zeros)" :
				      v == -2 ? "holds another record" : v == -3 ? "short read" : "corrupt");
		}
	close(fd);
}

static void verify_priv(const char *dir, uint32_t nw)
{
	unsigned char *buf = malloc(PRIV_SIZE + 1);

	for (uint32_t w = 0; w < nw; w++) {
		char name[64];
		int fd;
		ssize_t n;

		snprintf(name, sizeof name, "priv.%u", w);
		fd = open_in(dir, name, O_RDONLY);
		n = fd >= 0 ? pread_all(fd, buf, PRIV_SIZE + 1, 0) : -1;
		if (n != PRIV_SIZE)
			failf("%s: %zd bytes, want %u", name, n, PRIV_SIZE);
		for (ssize_t i = 0; i < n && i < PRIV_SIZE; i++)
			if (buf[i] != pat(w + 1000, (uint64_t)i)) {
				failf("%s: wrong byte at %zd", name, i);
				break;
			}
		if (fd >= 0)
			close(fd);
	}
	free(buf);
}

static void verify_log(const char *dir, uint32_t nw, uint32_t nrec)
{
	unsigned char r[LOG_SIZE], want[LOG_SIZE];
	uint32_t *next = calloc(nw, sizeof *next);
	int fd = open_in(dir, "log", O_RDONLY);
	struct stat st;
	off_t off;

	if (fd < 0 || fstat(fd, &st) != 0) {
		failf("open log: %s", strerror(errno));
		free(next);
		return;
	}
	if (st.st_size != (off_t)nw * nrec * LOG_SIZE)
		failf("log has %jd bytes, want %ju (lost or overlapping appends)", (intmax_t)st.st_size,
		      (uintmax_t)nw * nrec * LOG_SIZE);
	for (off = 0; off + LOG_SIZE <= st.st_size; off += LOG_SIZE) {
		struct rec_head h;

		if (pread_all(fd, r, LOG_SIZE, off) != LOG_SIZE)
			break;
		memcpy(&h, r, sizeof h);
		if (h.magic != LOG_MAGIC || h.writer >= nw) {
			failf("log record at %jd is corrupt", (intmax_t)off);
			continue;
		}
		log_make(want, h.writer, h.seq);
		if (memcmp(want, r, LOG_SIZE) != 0)
			failf("log record at %jd is corrupt", (intmax_t)off);
		else if (h.seq != next[h.writer])
			failf("log: writer %u seq %u where %u was expected", h.writer, h.seq, next[h.writer]);
		else
			next[h.writer]++;
	}
	for (uint32_t w = 0; w < nw; w++)
		if (next[w] != nrec)
			failf("log: writer %u has %u records in order, want %u", w, next[w], nrec);
	close(fd);
	free(next);
}

static void verify_churn(const char *dir, uint32_t nchurn, uint32_t n)
{
	static unsigned char buf[40000];
	char cdir[4096], path[4400];
	DIR *d;
	struct dirent *e;
	size_t len;
	uint32_t id, k;
	unsigned found = 0, want = 0;

	snprintf(cdir, sizeof cdir, "%s/churn", dir);
	for (uint32_t c = 0; c < nchurn; c++)
		for (uint32_t j = 0; j < n; j++) {
			snprintf(path, sizeof path, "%s/f.%u.%u", cdir, c, j);
			if (j % 3 == 0) {
				if (access(path, F_OK) == 0)
					failf("churn: f.%u.%u was unlinked but exists", c, j);
				continue;
			}
			want++;
			if (read_whole(path, buf, sizeof buf, &len) != 0)
				failf("churn: f.%u.%u: %s", c, j, strerror(errno));
			else if (churn_check(buf, len, &id, &k) != 0 || id != c || k != j)
				failf("churn: f.%u.%u has wrong content", c, j);
		}
	snprintf(path, sizeof path, "%s/current", cdir);
	if (read_whole(path, buf, sizeof buf, &len) != 0 || churn_check(buf, len, &id, &k) != 0)
		failf("churn: 'current' is missing or not one complete version");
	d = opendir(cdir);
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "current"))
			continue;
		if (strncmp(e->d_name, "f.", 2) == 0)
			found++;
		else
			failf("churn: leftover entry '%s'", e->d_name);
	}
	if (d)
		closedir(d);
	if (found != want)
		failf("churn: readdir lists %u f.* files, want %u", found, want);
}

/* ------------------------------------------------------------ main */

static uint32_t num(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == 0 || *end != 0 || v > 1000000) {
		fprintf(stderr, "stress_io: bad number '%s'\n", s);
		exit(2);
	}
	return (uint32_t)v;
}

int main(int argc, char **argv)
{
	static char role[64];
	int rc;

	if (argc >= 3 && !strcmp(argv[1], "writer") && argc == 6) {
		snprintf(role, sizeof role, "writer %s", argv[3]);
		g_role = role;
		rc = run_writer(argv[2], num(argv[3]), num(argv[4]), num(argv[5]));
	} else if (argc == 6 && !strcmp(argv[1], "reader")) {
		g_role = "reader";
		rc = run_reader(argv[2], num(argv[3]), num(argv[4]), num(argv[5]));
	} else if (argc == 5 && !strcmp(argv[1], "churn")) {
		snprintf(role, sizeof role, "churn %s", argv[3]);
		g_role = role;
		rc = run_churn(argv[2], num(argv[3]), num(argv[4]));
	} else if (argc == 3 && !strcmp(argv[1], "churnread")) {
		g_role = "churnread";
		rc = run_churnread(argv[2]);
	} else if (argc == 7 && !strcmp(argv[1], "verify")) {
		g_role = "verify";
		verify_shared(argv[2], num(argv[3]), num(argv[4]));
		verify_priv(argv[2], num(argv[3]));
		verify_log(argv[2], num(argv[3]), num(argv[4]));
		verify_churn(argv[2], num(argv[5]), num(argv[6]));
		rc = g_fails ? 1 : 0;
	} else {
		fprintf(stderr, "usage: stress_io writer DIR ID NW NREC | reader DIR NW NREC SEED |\n"
			"       churn DIR ID N | churnread DIR | verify DIR NW NREC NCHURN N\n");
		return 2;
	}
	if (g_fails > MAX_FAILS)
		fprintf(stderr, "%s: ... %d failures in all\n", g_role, g_fails);
	return rc;
}
