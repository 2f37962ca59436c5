/*
 * crash_writer: a workload to be interrupted by killing the medvault daemon
 * (t_50_crash.sh, stress_crash.sh).  Content model: crash_common.h.
 *
 *   crash_writer DIR PREFIX NFILES STATE JOURNAL ACKED SEED
 *
 * Works on the names DIR/PREFIX00 .. PREFIX<NFILES-1>, starting from the
 * versions described in STATE (written by crash_check; a missing file or a
 * missing line means "absent, generation 0").  Loops until an operation
 * fails (which is what happens once the daemon is killed), each iteration
 * one of, on a random name:
 *   W  open(O_TRUNC) + write a whole new version (0..2 MiB, random piece
 *      sizes) [+ fsync] + close
 *   S  save-to-temp: write NAME.tmp<gen> [+ fsync], close, rename over NAME
 *      [+ fsync of the directory]
 *   A  O_APPEND a new segment [+ fsync]
 *   T  ftruncate shorter or longer [+ fsync]
 *   P  fallocate PUNCH_HOLE or ZERO_RANGE (KEEP_SIZE) inside the file [+ fsync]
 *   U  unlink [+ fsync of the directory]
 * Before an operation starts, a "B" line describing the version it produces
 * goes to JOURNAL; when it has returned, an "E" line.  When an operation
 * was made durable (fsync of the file, and of the directory for S and U),
 * "A NAME GEN" is appended to ACKED and ACKED is fsync'd, after the fsync
 * returned.  The journals live outside the mount and only the daemon is
 * killed, so they are complete.  Exit: 3 when an operation failed (the
 * expected end), 2 for a usage or journal error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "crash_common.h"

#define MAXFILES 256
#define MAXLEN (2u << 20)

static int jfd = -1, afd = -1, dfd = -1;
static char dir[4096];
static uint64_t rng;

static uint64_t rnd(void)
{
	rng = cr_mix(rng);
	return rng;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "crash_writer: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void jwrite(int fd, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf) || write(fd, buf, n) != n)
		die(2, "journal write: %s", strerror(errno));
}

static void ack(const char *name, long long gen)
{
	jwrite(afd, "A %s %lld\n", name, gen);
	if (fsync(afd) < 0)
		die(2, "fsync acked journal: %s", strerror(errno));
}

static uint64_t pick_len(void)
{
	switch (rnd_below(10)) {
	case 0: return rnd_below(2);		/* 0 or 1 byte */
	case 1: case 2: return rnd_below(65536 + 1);
	case 3: case 4: case 5: return 65536 + rnd_below(512 * 1024);
	case 6: return 65536 * (1 + rnd_below(8));	/* whole chunks */
	default: return rnd_below(MAXLEN + 1);
	}
}

/* write bytes [from, to) of v to fd in random-sized pieces */
static int write_range(int fd, const struct cr_ver *v, uint64_t from, uint64_t to, const char *what)
{
	static uint8_t buf[300 * 1024];

	while (from < to) {
		uint64_t n = 1 + rnd_below(sizeof(buf));
		if (n > to - from)
			n = to - from;
		cr_ver_bytes(v, from, buf, n);
		ssize_t w = write(fd, buf, n);
		if (w < 0) {
			fprintf(stderr, "crash_writer: write %s: %s\n", what, strerror(errno));
			return -1;
		}
		from += (uint64_t)w;
	}
	return 0;
}

static void fail(const char *op, const char *path)
{
	die(3, "%s %s: %s", op, path, strerror(errno));
}

/* the end of an operation on an open file: [fsync + ack], close */
static void sync_ack_close(int fd, int sync, const char *path, const char *nm, long long gen)
{
	if (sync) {
		if (fsync(fd) < 0)
			fail("fsync", path);
		ack(nm, gen);
	}
	if (close(fd) < 0)
		fail("close", path);
}

int main(int argc, char **argv)
{
	static struct cr_ver cur[MAXFILES];
	static long long next[MAXFILES];
	char names[MAXFILES][CR_NAMELEN];
	char line[8192], desc[4096], path[4096 + 2 * CR_NAMELEN], tmp[4096 + 2 * CR_NAMELEN];
	int nfiles;
	FILE *sf;

	if (argc != 8)
		die(2, "usage: crash_writer DIR PREFIX NFILES STATE JOURNAL ACKED SEED");
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	nfiles = atoi(argv[3]);
	if (nfiles < 1 || nfiles > MAXFILES || strlen(argv[2]) > 20)
		die(2, "bad NFILES or PREFIX");
	rng = strtoull(argv[7], NULL, 0) * 0x9e3779b97f4a7c15ull + 12345;
	for (int i = 0; i < nfiles; i++) {
		snprintf(names[i], CR_NAMELEN, "%s%02d", argv[2], i);
		cur[i] = (struct cr_ver){ .gen = 0, .len = -1, .nseg = 0 };
		next[i] = 1;
	}
	if ((sf = fopen(argv[4], "r"))) {
		while (fgets(line, sizeof(line), sf)) {
			char nm[CR_NAMELEN];
			long long g, nx;
			int used;
			if (sscanf(line, "%63s %lld %lld%n", nm, &g, &nx, &used) != 3)
				die(2, "bad state line: %s", line);
			for (int i = 0; i < nfiles; i++) {
				if (strcmp(nm, names[i]))
					continue;
				if (cr_ver_parse(line + used, &cur[i]) < 0)
					die(2, "bad state line: %s", line);
				cur[i].gen = g;
				next[i] = nx;
			}
		}
		fclose(sf);
	}
	jfd = open(argv[5], O_WRONLY | O_APPEND | O_CREAT, 0644);
	afd = open(argv[6], O_WRONLY | O_APPEND | O_CREAT, 0644);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (jfd < 0 || afd < 0 || dfd < 0)
		die(2, "cannot open the journals or %s: %s", dir, strerror(errno));

	for (;;) {
		int i = (int)rnd_below(nfiles), fd;
		const char *nm = names[i];
		struct cr_ver v = cur[i];
		long long gen = next[i]++;
		int sync = rnd_below(100) < 40, r = (int)rnd_below(100);
		uint64_t hole_off = 0, hole_len = 0;
		char op;

		if (cur[i].len < 0)
			op = r < 50 ? 'W' : 'S';
		else if (r < 25)
			op = 'W';
		else if (r < 55)
			op = 'S';
		else if (r < 75)
			op = (cur[i].nseg < CR_MAXSEG - 2 && cur[i].len < (long long)MAXLEN) ? 'A' : 'S';
		else if (r < 84)
			op = (cur[i].nseg < CR_MAXSEG - 2) ? 'T' : 'W';
		else if (r < 92)
			op = (cur[i].nseg < CR_MAXSEG - 2 && cur[i].len > 0) ? 'P' : 'W';
		else
			op = 'U';

		snprintf(path, sizeof(path), "%s/%s", dir, nm);
		switch (op) {
		case 'W':
		case 'S':
			cr_ver_full(&v, nm, gen, pick_len());
			break;
		case 'A':
			cr_ver_append(&v, nm, gen, 1 + rnd_below(MAXLEN - (uint64_t)v.len));
			break;
		case 'T': {
			uint64_t n = rnd_below((uint64_t)v.len * 3 / 2 + 2);
			cr_ver_truncate(&v, gen, n > MAXLEN ? MAXLEN : n);
			break;
		}
		case 'P':
			hole_off = rnd_below((uint64_t)v.len);
			hole_len = 1 + rnd_below((uint64_t)v.len - hole_off);
			cr_ver_zero(&v, gen, hole_off, hole_len);
			break;
		case 'U':
			v = (struct cr_ver){ .gen = gen, .len = -1, .nseg = 0 };
			break;
		}
		cr_ver_format(&v, desc, sizeof(desc));
		if (op == 'S') {
			snprintf(tmp, sizeof(tmp), "%s/%s.tmp%lld", dir, nm, gen);
			jwrite(jfd, "B %s %lld S %s.tmp%lld %s\n", nm, gen, nm, gen, desc);
		} else {
			jwrite(jfd, "B %s %lld %c %s\n", nm, gen, op, desc);
		}

		switch (op) {
		case 'W':
			if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
				fail("open", path);
			if (write_range(fd, &v, 0, (uint64_t)v.len, path) < 0)
				exit(3);
			sync_ack_close(fd, sync, path, nm, gen);
			break;
		case 'S':
			if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644)) < 0)
				fail("open", tmp);
			if (write_range(fd, &v, 0, (uint64_t)v.len, tmp) < 0)
				exit(3);
			if (sync && fsync(fd) < 0)
				fail("fsync", tmp);
			if (close(fd) < 0)
				fail("close", tmp);
			if (rename(tmp, path) < 0)
				fail("rename", tmp);
			if (sync) {
				if (fsync(dfd) < 0)
					fail("fsync", dir);
				ack(nm, gen);
			}
			break;
		case 'A':
			if ((fd = open(path, O_WRONLY | O_APPEND)) < 0)
				fail("open", path);
			if (write_range(fd, &v, (uint64_t)cur[i].len, (uint64_t)v.len, path) < 0)
				exit(3);
			sync_ack_close(fd, sync, path, nm, gen);
			break;
		case 'T':
			if ((fd = open(path, O_WRONLY)) < 0)
				fail("open", path);
			if (ftruncate(fd, v.len) < 0)
				fail("ftruncate", path);
			sync_ack_close(fd, sync, path, nm, gen);
			break;
		case 'P':
			if ((fd = open(path, O_WRONLY)) < 0)
				fail("open", path);
			if (fallocate(fd, FALLOC_FL_KEEP_SIZE | (rnd_below(2) ? FALLOC_FL_PUNCH_HOLE
									 : FALLOC_FL_ZERO_RANGE),
				      (off_t)hole_off, (off_t)hole_len) < 0)
				fail("fallocate", path);
			sync_ack_close(fd, sync, path, nm, gen);
			break;
		case 'U':
			if (unlink(path) < 0)
				fail("unlink", path);
			if (sync) {
				if (fsync(dfd) < 0)
					fail("fsync", dir);
				ack(nm, gen);
			}
			break;
		}
		jwrite(jfd, "E %s %lld\n", nm, gen);
		cur[i] = v;
	}
}
