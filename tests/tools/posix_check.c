/*
 * posix_check DIR: a battery of POSIX filesystem checks run inside DIR,
 * printed as TAP with a closing "# N passed, M failed" line.
 *
 *   posix_check [--keep] [--only SUBSTR] DIR
 *
 * The expected results are ext4's exact behaviour on Linux (run as root),
 * because medvault is later checked against ext4 by independent POSIX
 * suites; every check must pass on a plain ext4 directory.  Each group of
 * checks works in its own subdirectory DIR/<group>, reached with chdir(),
 * so paths stay short and groups cannot disturb each other.  Without
 * --keep the subdirectories are removed at the end (which exercises
 * unlink/rmdir on a large tree too).  --only runs the groups whose name
 * contains SUBSTR (for debugging a single failure).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#include "../tap.h"

#define KiB 1024LL
#define MiB (1024 * KiB)
#define GiB (1024 * MiB)

static const char *g_dir;	/* absolute path of DIR */

/* ------------------------------------------------------------ reporting */

static const char *errname(int e)
{
	const char *n = strerrorname_np(e);

	return n ? n : "?";
}

/* ok when expr fails with errno E */
#define fails_with(E, expr, ...) do {					\
	errno = 0;							\
	long r_ = (long)(expr);						\
	int e_ = errno;							\
	if (!ok(r_ == -1 && e_ == (E), __VA_ARGS__))			\
		printf("#   got %ld (%s), want -1 (%s)\n", r_,		\
		       r_ == -1 ? errname(e_) : "no error", errname(E));\
} while (0)

/* ok when expr does not return -1 */
#define succeeds(expr, ...) do {					\
	errno = 0;							\
	long r_ = (long)(expr);						\
	int e_ = errno;							\
	if (!ok(r_ != -1, __VA_ARGS__))					\
		printf("#   failed with %s\n", errname(e_));		\
} while (0)

#define eq(a, b, ...) do {						\
	long long a_ = (long long)(a), b_ = (long long)(b);		\
	if (!ok(a_ == b_, __VA_ARGS__))					\
		printf("#   got %lld, want %lld\n", a_, b_);		\
} while (0)

/*
 * A setup step that must work for the following checks to mean anything;
 * a failure is reported as a failed check (so it can never pass silently).
 */
#define setup(expr) setup_((long)(expr), #expr, __LINE__)
static long setup_(long r, const char *what, int line)
{
	if (r == -1)
		ok(0, "setup failed: %s (line %d): %s", what, line, errname(errno));
	return r;
}

/* ------------------------------------------------------------ helpers */

/* a group's private directory, fresh and made the cwd */
static void enter(const char *group)
{
	if (chdir(g_dir) != 0 || (mkdir(group, 0755) != 0 && errno != EEXIST) ||
	    chdir(group) != 0) {
		fprintf(stderr, "posix_check: cannot enter %s/%s: %s\n", g_dir, group,
			strerror(errno));
		exit(2);
	}
}

static void leave(void)
{
	if (chdir(g_dir) != 0)
		exit(2);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static ssize_t pread_all(int fd, void *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

/* create (or replace) path with exactly len bytes of buf */
static int put_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int rc;

	if (fd < 0)
		return -1;
	rc = write_all(fd, buf, len);
	if (close(fd) != 0)
		rc = -1;
	return rc;
}

static int put_str(const char *path, const char *s)
{
	return put_file(path, s, strlen(s));
}

/* read a whole (small) file; returns its length or -1 */
static ssize_t get_file(const char *path, void *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = pread_all(fd, buf, cap, 0);
	close(fd);
	return n;
}

/* true when path holds exactly the bytes of s */
static bool file_is(const char *path, const char *s)
{
	char buf[4096];
	ssize_t n = get_file(path, buf, sizeof buf);

	return n == (ssize_t)strlen(s) && memcmp(buf, s, (size_t)n) == 0;
}

static bool all_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* deterministic, position-dependent bytes: a misplaced block shows up */
static unsigned char pattern_byte(uint64_t seed, uint64_t pos)
{
	uint64_t x = (pos + 1) * 0x9E3779B97F4A7C15ULL ^ seed;

	x ^= x >> 29;
	x *= 0xBF58476D1CE4E5B9ULL;
	x ^= x >> 32;
	return (unsigned char)x;
}

static void fill_pattern(unsigned char *buf, size_t len, uint64_t seed, uint64_t pos)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern_byte(seed, pos + i);
}

static struct stat st_of(const char *path)
{
	struct stat st;

	if (lstat(path, &st) != 0)
		memset(&st, 0, sizeof st);
	return st;
}

static bool ts_eq(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

static bool ts_lt(struct timespec a, struct timespec b)
{
	return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

/*
 * Let the clock move past the filesystem's timestamp granularity, so a
 * time update is visible as a change (ext4 uses the coarse clock).
 */
static void tick(void)
{
	struct timespec d = { 0, 30 * 1000 * 1000 };

	nanosleep(&d, NULL);
}

static long long now_sec(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return t.tv_sec;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* rm -rf; returns 0 when everything was removed */
static int rm_tree(const char *path)
{
	return nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS);
}

/* run fn in a child process; true when it exited 0 */
static bool in_child(int (*fn)(void *), void *arg)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return false;
	if (pid == 0)
		_exit(fn(arg));
	if (waitpid(pid, &status, 0) != pid)
		return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* ------------------------------------------------------------ open */

static void g_open(void)
{
	int fd;
	struct stat st;
	mode_t old;

	enter("open");

	fd = open("excl", O_CREAT | O_EXCL | O_WRONLY, 0644);
	ok(fd >= 0, "open: O_CREAT|O_EXCL creates a new file");
	if (fd >= 0)
		close(fd);
	fails_with(EEXIST, open("excl", O_CREAT | O_EXCL | O_WRONLY, 0644),
		   "open: O_CREAT|O_EXCL on an existing file fails with EEXIST");
	setup(symlink("nowhere", "dangling"));
	fails_with(EEXIST, open("dangling", O_CREAT | O_EXCL | O_WRONLY, 0644),
		   "open: O_CREAT|O_EXCL on a dangling symlink fails with EEXIST");
	fails_with(ENOENT, access("nowhere", F_OK), "open: O_EXCL did not create the symlink's target");

	setup(put_str("trunc", "some old content"));
	fd = open("trunc", O_WRONLY | O_TRUNC);
	ok(fd >= 0, "open: O_TRUNC on an existing file");
	if (fd >= 0) {
		fstat(fd, &st);
		eq(st.st_size, 0, "open: O_TRUNC leaves size 0");
		close(fd);
	}
	eq(st_of("trunc").st_size, 0, "open: size stays 0 after close");

	old = umask(022);
	fd = open("umask022", O_CREAT | O_WRONLY, 0777);
	eq(st_of("umask022").st_mode, S_IFREG | 0755, "open: O_CREAT mode 0777 with umask 022 gives 0755");
	if (fd >= 0)
		close(fd);
	umask(077);
	fd = open("umask077", O_CREAT | O_WRONLY, 0666);
	eq(st_of("umask077").st_mode, S_IFREG | 0600, "open: O_CREAT mode 0666 with umask 077 gives 0600");
	if (fd >= 0)
		close(fd);
	umask(0);
	fd = open("umask0", O_CREAT | O_WRONLY, 04755);
	eq(st_of("umask0").st_mode, S_IFREG | 04755, "open: O_CREAT keeps setuid bit with umask 0");
	if (fd >= 0)
		close(fd);
	umask(old);

	/* tar and cp create read-only files this way and still write them */
	fd = open("ro_create", O_CREAT | O_RDWR | O_EXCL, 0444);
	ok(fd >= 0, "open: O_CREAT|O_RDWR with mode 0444 returns an fd");
	if (fd >= 0) {
		succeeds(write(fd, "abc", 3), "open: a file created 0444 is writable through its creating fd");
		close(fd);
	}
	ok(file_is("ro_create", "abc"), "open: the data written to the 0444 file is there");
	eq(st_of("ro_create").st_mode, S_IFREG | 0444, "open: the 0444 file keeps mode 0444");

	setup(mkdir("adir", 0755));
	fails_with(ENOTDIR, open("trunc", O_RDONLY | O_DIRECTORY), "open: O_DIRECTORY on a file fails with ENOTDIR");
	fails_with(EISDIR, open("adir", O_WRONLY), "open: a directory for writing fails with EISDIR");
	fails_with(EISDIR, open("adir", O_RDWR), "open: a directory O_RDWR fails with EISDIR");
	fd = open("adir", O_RDONLY | O_DIRECTORY);
	ok(fd >= 0, "open: O_DIRECTORY on a directory works");
	if (fd >= 0)
		close(fd);
	fails_with(ENOTDIR, open("trunc/", O_RDONLY), "open: a file with a trailing slash fails with ENOTDIR");
	fails_with(ENOTDIR, open("trunc/x", O_RDONLY), "open: a path through a file fails with ENOTDIR");
	setup(symlink("trunc", "link_to_file"));
	fails_with(ELOOP, open("link_to_file", O_RDONLY | O_NOFOLLOW), "open: O_NOFOLLOW on a symlink fails with ELOOP");
	fails_with(ENOENT, open("missing", O_RDONLY), "open: a missing file fails with ENOENT");
	fails_with(ENOENT, open("missing_dir/f", O_CREAT | O_WRONLY, 0644),
		   "open: O_CREAT in a missing directory fails with ENOENT");
	fails_with(ENOENT, creat("missing_dir/f", 0644), "creat: in a missing directory fails with ENOENT");

	fd = open("trunc", O_RDONLY);
	if (setup(fd) >= 0) {
		fails_with(EBADF, write(fd, "x", 1), "write: on an O_RDONLY fd fails with EBADF");
		close(fd);
	}
	fd = open("trunc", O_WRONLY);
	if (setup(fd) >= 0) {
		char c;

		fails_with(EBADF, read(fd, &c, 1), "read: on an O_WRONLY fd fails with EBADF");
		close(fd);
	}

	/* open(O_CREAT) through a dangling symlink creates the target */
	setup(symlink("made_by_link", "dangling2"));
	fd = open("dangling2", O_CREAT | O_WRONLY, 0644);
	ok(fd >= 0, "open: O_CREAT through a dangling symlink succeeds");
	if (fd >= 0)
		close(fd);
	ok(S_ISREG(st_of("made_by_link").st_mode), "open: ... and creates the symlink's target");
	ok(S_ISLNK(st_of("dangling2").st_mode), "open: ... and the symlink stays a symlink");

	/* root bypasses permission bits for read/write */
	setup(put_str("mode000", "secret"));
	setup(chmod("mode000", 0));
	fd = open("mode000", O_RDWR);
	ok(fd >= 0, "open: root opens a mode 0000 file read-write");
	if (fd >= 0)
		close(fd);
	leave();
}

/* ------------------------------------------------------------ append */

static void g_append(void)
{
	int fd, fd2;
	char buf[64];
	struct stat st;

	enter("append");
	setup(put_str("log", "0123456789"));
	fd = open("log", O_WRONLY | O_APPEND);
	if (setup(fd) >= 0) {
		lseek(fd, 0, SEEK_SET);
		setup(write(fd, "AB", 2));
		eq(lseek(fd, 0, SEEK_CUR), 12, "append: the offset is at the end after an O_APPEND write");
		close(fd);
	}
	ok(file_is("log", "0123456789AB"), "append: O_APPEND write after lseek(0) goes to the end");

	/* Linux: pwrite on an O_APPEND fd appends, ignoring the offset */
	fd = open("log", O_WRONLY | O_APPEND);
	if (setup(fd) >= 0) {
		setup(pwrite(fd, "C", 1, 0));
		close(fd);
	}
	ok(file_is("log", "0123456789ABC"), "append: pwrite on an O_APPEND fd appends (Linux)");

	/* two writers appending through separate fds never overwrite each other */
	fd = open("log2", O_WRONLY | O_APPEND | O_CREAT, 0644);
	fd2 = open("log2", O_WRONLY | O_APPEND);
	if (setup(fd) >= 0 && setup(fd2) >= 0) {
		for (int i = 0; i < 50; i++) {
			write(fd, "a1", 2);
			write(fd2, "b22", 3);
		}
		fstat(fd, &st);
		eq(st.st_size, 250, "append: two O_APPEND fds: size is the sum of all writes");
		ssize_t n = get_file("log2", buf, 5);
		ok(n == 5 && memcmp(buf, "a1b22", 5) == 0, "append: two O_APPEND fds interleave in write order");
	}
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);

	/* a log grown by many small appends, with reopen in between */
	bool good = true;
	for (int i = 0; i < 200 && good; i++) {
		fd = open("small", O_WRONLY | O_APPEND | O_CREAT, 0644);
		snprintf(buf, sizeof buf, "%06d\n", i);
		good = fd >= 0 && write_all(fd, buf, 7) == 0;
		if (fd >= 0)
			close(fd);
	}
	ok(good, "append: 200 reopen+append cycles succeed");
	fd = open("small", O_RDONLY);
	if (setup(fd) >= 0) {
		for (int i = 0; i < 200 && good; i++) {
			char want[16];

			snprintf(want, sizeof want, "%06d\n", i);
			good = pread_all(fd, buf, 7, (off_t)i * 7) == 7 && memcmp(buf, want, 7) == 0;
		}
		fstat(fd, &st);
		close(fd);
		ok(good && st.st_size == 1400, "append: the 200 small appends read back in order");
	}
	leave();
}

/* ------------------------------------------------------------ read/write */

/* random pwrite/pread/truncate against an in-memory model of the file */
static void fsx_lite(const char *name, size_t maxlen, int ops, unsigned seed)
{
	unsigned char *model = calloc(1, maxlen), *buf = malloc(maxlen);
	size_t len = 0;
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0644);
	bool good = model && buf && fd >= 0;
	int bad_op = -1;

	srandom(seed);
	for (int i = 0; i < ops && good; i++) {
		size_t off = (size_t)random() % maxlen;
		size_t n = 1 + (size_t)random() % (maxlen / 8);
		int kind = (int)(random() % 10);

		if (off + n > maxlen)
			n = maxlen - off;
		if (kind < 5) {			/* write */
			fill_pattern(buf, n, (uint64_t)i, off);
			good = pwrite_all(fd, buf, n, (off_t)off) == 0;
			memcpy(model + off, buf, n);
			if (off + n > len)
				len = off + n;
		} else if (kind < 8) {		/* read and compare */
			ssize_t got = pread_all(fd, buf, n, (off_t)off);
			size_t want = off >= len ? 0 : (off + n > len ? len - off : n);

			good = got == (ssize_t)want && memcmp(buf, model + off, want) == 0;
		} else if (kind < 9) {		/* truncate */
			size_t nl = (size_t)random() % maxlen;

			good = ftruncate(fd, (off_t)nl) == 0;
			if (nl < len)
				memset(model + nl, 0, len - nl);
			len = nl;
		} else {			/* reopen */
			close(fd);
			fd = open(name, O_RDWR);
			good = fd >= 0;
		}
		if (!good)
			bad_op = i;
	}
	if (good) {
		struct stat st;
		ssize_t got = pread_all(fd, buf, maxlen, 0);

		fstat(fd, &st);
		good = got == (ssize_t)len && st.st_size == (off_t)len && memcmp(buf, model, len) == 0;
	}
	if (!ok(good, "rw: %d random pwrite/pread/truncate/reopen ops (seed %u, up to %zu bytes) match a model",
		ops, seed, maxlen))
		printf("#   first mismatch at op %d\n", bad_op);
	if (fd >= 0)
		close(fd);
	free(model);
	free(buf);
}

static void g_rw(void)
{
	int fd, fd2;
	char buf[256];
	struct stat st;

	enter("rw");
	fd = open("f", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (setup(fd) < 0)
		return leave();
	setup(write_all(fd, "hello world", 11));
	eq(pread(fd, buf, 5, 6), 5, "rw: pread at an offset returns the bytes asked for");
	ok(memcmp(buf, "world", 5) == 0, "rw: pread at an offset returns the right bytes");
	setup(pwrite(fd, "W", 1, 6));
	eq(lseek(fd, 0, SEEK_CUR), 11, "rw: pwrite does not move the file offset");
	ok(pread(fd, buf, 11, 0) == 11 && memcmp(buf, "hello World", 11) == 0, "rw: pwrite overwrote one byte in place");
	eq(pread(fd, buf, 10, 100), 0, "rw: pread past EOF returns 0");
	eq(pread(fd, buf, 10, 8), 3, "rw: pread across EOF returns the bytes up to EOF");
	eq(pread(fd, buf, 10, 11), 0, "rw: pread exactly at EOF returns 0");
	eq(lseek(fd, 0, SEEK_END), 11, "rw: lseek SEEK_END returns the size");
	eq(lseek(fd, -3, SEEK_END), 8, "rw: lseek SEEK_END with a negative offset");
	eq(lseek(fd, 2, SEEK_CUR), 10, "rw: lseek SEEK_CUR");
	fails_with(EINVAL, lseek(fd, -100, SEEK_SET), "rw: lseek to a negative offset fails with EINVAL");
	eq(lseek(fd, 100, SEEK_SET), 100, "rw: lseek past EOF is allowed");
	eq(st_of("f").st_size, 11, "rw: lseek past EOF alone does not change the size");
	setup(write(fd, "Z", 1));
	fstat(fd, &st);
	eq(st.st_size, 101, "rw: a write past EOF extends the file");
	ok(pread(fd, buf, 89, 11) == 89 && all_zero(buf, 89), "rw: the gap before a write past EOF reads as zeros");
	ok(st.st_blksize > 0, "rw: st_blksize is positive (%ld)", (long)st.st_blksize);

	/* a second fd on the same file sees writes at once */
	fd2 = open("f", O_RDONLY);
	if (setup(fd2) >= 0) {
		setup(pwrite(fd, "XYZ", 3, 0));
		ok(pread(fd2, buf, 3, 0) == 3 && memcmp(buf, "XYZ", 3) == 0, "rw: a write is visible through another fd at once");
		close(fd2);
	}
	close(fd);

	/* many MiB with unaligned writes that straddle any chunk size */
	{
		const size_t total = 9 * MiB + 12345;
		unsigned char *big = malloc(total), *back = malloc(total);
		size_t off = 0, step = 65537 + 3;

		fd = open("big", O_RDWR | O_CREAT | O_TRUNC, 0644);
		bool good = big && back && fd >= 0;
		fill_pattern(big, total, 7, 0);
		for (off = 0; good && off < total; off += step) {
			size_t n = off + step > total ? total - off : step;

			good = pwrite_all(fd, big + off, n, (off_t)off) == 0;
		}
		ok(good, "rw: 9 MiB written in unaligned 64 KiB+5 pieces");
		if (fd >= 0)
			close(fd);
		good = good && get_file("big", back, total) == (ssize_t)total && memcmp(big, back, total) == 0;
		ok(good, "rw: the 9 MiB file reads back byte-exactly after reopen");
		/* overwrite a range crossing 1 MiB and 4 MiB boundaries, odd alignment */
		fd = open("big", O_RDWR);
		if (setup(fd) >= 0) {
			size_t at = 4 * MiB - 777, n = 3 * MiB + 1555;

			fill_pattern(big + at, n, 99, at);
			setup(pwrite_all(fd, big + at, n, (off_t)at));
			close(fd);
			good = get_file("big", back, total) == (ssize_t)total && memcmp(big, back, total) == 0;
			ok(good, "rw: an overwrite across chunk boundaries keeps the bytes around it");
		}
		free(big);
		free(back);
	}
	fsx_lite("fsx_small", 64 * KiB, 3000, 1);
	fsx_lite("fsx_large", 6 * MiB, 600, 2);
	leave();
}

/* ------------------------------------------------------------ truncate */

static void g_truncate(void)
{
	int fd, fd2;
	unsigned char buf[8192];
	struct stat st;

	enter("truncate");
	setup(put_str("up", "abc"));
	setup(truncate("up", 5000));
	eq(st_of("up").st_size, 5000, "truncate: up sets the size");
	ok(get_file("up", buf, sizeof buf) == 5000 && memcmp(buf, "abc", 3) == 0 && all_zero(buf + 3, 4997),
	   "truncate: up keeps the data and reads zeros after it");

	memset(buf, 'A', sizeof buf);
	setup(put_file("downup", buf, 8192));
	setup(truncate("downup", 100));
	eq(st_of("downup").st_size, 100, "truncate: down sets the size");
	setup(truncate("downup", 8192));
	ok(get_file("downup", buf, sizeof buf) == 8192 && buf[99] == 'A' && all_zero(buf + 100, 8092),
	   "truncate: down then up reads zeros, not the old data");

	/* the same across chunk boundaries of any size up to 1 MiB */
	{
		size_t total = 3 * MiB, cut = MiB + MiB / 2 + 7;
		unsigned char *big = malloc(total);

		memset(big, 0x5a, total);
		setup(put_file("bigdownup", big, total));
		setup(truncate("bigdownup", (off_t)cut));
		setup(truncate("bigdownup", (off_t)total));
		ok(get_file("bigdownup", big, total) == (ssize_t)total && big[cut - 1] == 0x5a &&
		   all_zero(big + cut, total - cut),
		   "truncate: 3 MiB down to 1.5 MiB+7 then up reads zeros after the cut");
		free(big);
	}

	fd = open("ftr", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (setup(fd) >= 0) {
		setup(write_all(fd, "0123456789", 10));
		succeeds(ftruncate(fd, 4), "ftruncate: on an open fd");
		fstat(fd, &st);
		eq(st.st_size, 4, "ftruncate: fstat shows the new size");
		eq(lseek(fd, 0, SEEK_CUR), 10, "ftruncate: does not move the file offset");
		setup(write_all(fd, "X", 1));
		ok(pread(fd, buf, 11, 0) == 11 && memcmp(buf, "0123\0\0\0\0\0\0X", 11) == 0,
		   "ftruncate: a write at the old offset leaves a zero gap");
		close(fd);
	}
	fd = open("ftr", O_RDONLY);
	if (setup(fd) >= 0) {
		fails_with(EINVAL, ftruncate(fd, 0), "ftruncate: on an O_RDONLY fd fails with EINVAL");
		close(fd);
	}

	/* truncate by path while an fd is open: the fd sees it */
	fd = open("shared", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (setup(fd) >= 0) {
		setup(write_all(fd, "abcdefghij", 10));
		setup(truncate("shared", 3));
		fstat(fd, &st);
		eq(st.st_size, 3, "truncate: by path is seen by fstat on an open fd");
		eq(pread(fd, buf, 10, 0), 3, "truncate: by path is seen by pread on an open fd");
		fd2 = open("shared", O_RDWR | O_TRUNC);
		if (setup(fd2) >= 0) {
			fstat(fd, &st);
			eq(st.st_size, 0, "truncate: O_TRUNC through a second fd is seen by the first");
			close(fd2);
		}
		close(fd);
	}
	fails_with(EINVAL, truncate("up", -1), "truncate: to a negative size fails with EINVAL");
	setup(mkdir("d", 0755));
	fails_with(EISDIR, truncate("d", 0), "truncate: a directory fails with EISDIR");

	fd = open("falloc", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (setup(fd) >= 0) {
		setup(write_all(fd, "xy", 2));
		eq(posix_fallocate(fd, 0, 100000), 0, "posix_fallocate: extends the file");
		fstat(fd, &st);
		eq(st.st_size, 100000, "posix_fallocate: sets the size");
		ok(pread(fd, buf, 8192, 0) == 8192 && memcmp(buf, "xy", 2) == 0 && all_zero(buf + 2, 8190),
		   "posix_fallocate: keeps data and reads zeros");
		close(fd);
	}
	leave();
}

/* ------------------------------------------------------------ big files */

static void g_sparse(void)
{
	int fd;
	char buf[4096];
	struct stat st;
	const off_t ten = 10 * GiB, five = 5 * GiB + 3;

	enter("sparse");
	fd = open("sparse10g", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (setup(fd) >= 0) {
		succeeds(pwrite(fd, "end", 3, ten), "sparse: pwrite at 10 GiB");
		fstat(fd, &st);
		eq(st.st_size, ten + 3, "sparse: size is 10 GiB + 3");
		ok(st.st_blocks * 512LL < 16 * MiB, "sparse: st_blocks stays small (%lld blocks)",
		   (long long)st.st_blocks);
		ok(pread(fd, buf, sizeof buf, 5 * GiB) == (ssize_t)sizeof buf && all_zero(buf, sizeof buf),
		   "sparse: the hole at 5 GiB reads zeros");
		ok(pread(fd, buf, sizeof buf, 0) == (ssize_t)sizeof buf && all_zero(buf, sizeof buf),
		   "sparse: the hole at 0 reads zeros");
		ok(pread(fd, buf, 10, ten - 7) == 10 && all_zero(buf, 7) && memcmp(buf + 7, "end", 3) == 0,
		   "sparse: a read across the hole's end returns zeros then data");
		close(fd);
	}
	fd = open("sparse10g", O_RDONLY);
	if (setup(fd) >= 0) {
		ok(pread(fd, buf, 3, ten) == 3 && memcmp(buf, "end", 3) == 0,
		   "sparse: the data at 10 GiB reads back after reopen");
		close(fd);
	}
	unlink("sparse10g");

	fd = open("big5g", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (setup(fd) >= 0) {
		setup(pwrite(fd, "5gigs!", 6, five));
		setup(pwrite(fd, "low", 3, 3));
		close(fd);
	}
	eq(st_of("big5g").st_size, five + 6, "large: st_size of a file written at 5 GiB");
	fd = open("big5g", O_RDONLY);
	if (setup(fd) >= 0) {
		ok(pread(fd, buf, 6, five) == 6 && memcmp(buf, "5gigs!", 6) == 0, "large: bytes at 5 GiB read back");
		/* 5 GiB + 3 modulo 4 GiB is 1 GiB + 3: a 32-bit offset bug lands there */
		ok(pread(fd, buf, 6, GiB + 3) == 6 && all_zero(buf, 6), "large: nothing at (5 GiB mod 4 GiB)");
		ok(pread(fd, buf, 3, 3) == 3 && memcmp(buf, "low", 3) == 0, "large: the low bytes are intact");
		close(fd);
	}
	setup(truncate("big5g", 4 * GiB + 1));
	fd = open("big5g", O_RDONLY);
	if (setup(fd) >= 0) {
		fstat(fd, &st);
		eq(st.st_size, 4 * GiB + 1, "large: truncate to 4 GiB + 1");
		eq(pread(fd, buf, 10, 4 * GiB), 1, "large: read at 4 GiB returns the last byte only");
		close(fd);
	}
	unlink("big5g");
	leave();
}

/* ------------------------------------------------------------ fallocate */

/* byte i of the fallocate test file before any change */
static char falloc_byte(off_t i)
{
	return (char)('a' + i % 23);
}

/* [from, to) of fd reads zeros and the rest of [0, size) the pattern */
static bool falloc_matches(int fd, off_t size, off_t zfrom, off_t zto)
{
	static char buf[600000];
	ssize_t n = pread_all(fd, buf, sizeof buf, 0);

	if (n != size)
		return false;
	for (off_t i = 0; i < size; i++) {
		char want = (i >= zfrom && i < zto) || i >= 200000 ? 0 : falloc_byte(i);

		if (buf[i] != want)
			return false;
	}
	return true;
}

static void g_fallocate(void)
{
	static char data[200000];
	struct stat st, st2;
	int fd;

	enter("fallocate");
	for (size_t i = 0; i < sizeof data; i++)
		data[i] = falloc_byte((off_t)i);
	fd = open("f", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (setup(fd) < 0) {
		leave();
		return;
	}
	setup(write_all(fd, data, sizeof data));
	succeeds(fallocate(fd, 0, 0, 300000), "fallocate: mode 0 past the end");
	fstat(fd, &st);
	eq(st.st_size, 300000, "fallocate: mode 0 extends the size");
	ok(falloc_matches(fd, 300000, 0, 0), "fallocate: data kept, the new part reads zeros");
	succeeds(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 1 << 20), "fallocate: KEEP_SIZE past the end");
	fstat(fd, &st);
	eq(st.st_size, 300000, "fallocate: KEEP_SIZE keeps the size");

	/* a hole across chunk boundaries, not aligned at either end */
	succeeds(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1000, 150000),
		 "fallocate: punch a hole");
	fstat(fd, &st);
	eq(st.st_size, 300000, "fallocate: punching keeps the size");
	ok(falloc_matches(fd, 300000, 1000, 151000), "fallocate: the hole reads zeros, the rest is intact");
	fails_with(EOPNOTSUPP, fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 10),
	      "fallocate: PUNCH_HOLE without KEEP_SIZE is EOPNOTSUPP");
	succeeds(fallocate(fd, FALLOC_FL_ZERO_RANGE, 250000, 100000), "fallocate: zero a range past the end");
	fstat(fd, &st);
	eq(st.st_size, 350000, "fallocate: ZERO_RANGE extends the size");
	succeeds(fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 340000, 100000),
		 "fallocate: zero a range with KEEP_SIZE");
	fstat(fd, &st);
	eq(st.st_size, 350000, "fallocate: ZERO_RANGE|KEEP_SIZE keeps the size");
	ok(falloc_matches(fd, 350000, 1000, 151000), "fallocate: contents after all the modes");
	fails_with(EINVAL, fallocate(fd, 0, 0, 0), "fallocate: length 0 is EINVAL");
	fails_with(EINVAL, fallocate(fd, 0, -1, 10), "fallocate: a negative offset is EINVAL");
	fails_with(EFBIG, fallocate(fd, 0, ((1LL << 32) - 1) * 4096 - 10, 100),
	      "fallocate: past ext4's largest file is EFBIG");
	close(fd);
	fd = open("f", O_RDONLY);
	if (setup(fd) >= 0) {
		ok(falloc_matches(fd, 350000, 1000, 151000), "fallocate: contents after reopening");
		fails_with(EBADF, fallocate(fd, 0, 0, 10), "fallocate: on a read-only handle is EBADF");
		close(fd);
	}

	/* punching frees space and changes the file's times */
	fd = open("g", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (setup(fd) >= 0) {
		static char mib[1 << 20];
		struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };

		memset(mib, 'x', sizeof mib);
		setup(write_all(fd, mib, sizeof mib));
		setup(fsync(fd));
		setup(futimens(fd, old));
		fstat(fd, &st);
		succeeds(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1 << 20),
			 "fallocate: punch the whole file");
		setup(fsync(fd));
		fstat(fd, &st2);
		ok(st2.st_blocks < st.st_blocks, "fallocate: punching frees blocks (%lld -> %lld)",
		   (long long)st.st_blocks, (long long)st2.st_blocks);
		ok(st2.st_mtime != old[1].tv_sec, "fallocate: punching updates mtime");
		ok(st2.st_ctime >= st.st_ctime, "fallocate: punching updates ctime");
		close(fd);
	}
	unlink("f");
	unlink("g");
	leave();
}

/* ------------------------------------------------------------ attributes */

static void g_attr(void)
{
	struct stat st, st2;
	int fd;

	enter("attr");
	setup(put_str("f", "x"));
	setup(mkdir("d", 0755));
	succeeds(chmod("f", 0), "chmod: file to 0000");
	eq(st_of("f").st_mode, S_IFREG, "chmod: 0000 keeps S_IFREG");
	succeeds(chmod("f", 07777), "chmod: file to 07777");
	eq(st_of("f").st_mode, S_IFREG | 07777, "chmod: 07777 keeps S_IFREG and all bits");
	succeeds(chmod("d", 01777), "chmod: directory to 01777");
	eq(st_of("d").st_mode, S_IFDIR | 01777, "chmod: keeps S_IFDIR");
	fd = open("f", O_RDONLY);
	if (setup(fd) >= 0) {
		succeeds(fchmod(fd, 0640), "fchmod: on an fd");
		fstat(fd, &st);
		eq(st.st_mode, S_IFREG | 0640, "fchmod: fstat shows the mode");
		close(fd);
	}
	eq(st_of("f").st_nlink, 1, "stat: a new file has nlink 1");

	succeeds(chown("f", 1234, 5678), "chown: root gives a file to another uid/gid");
	st = st_of("f");
	ok(st.st_uid == 1234 && st.st_gid == 5678, "chown: uid and gid are set (%u:%u)", st.st_uid, st.st_gid);
	succeeds(chown("f", (uid_t)-1, 42), "chown: -1 keeps the uid");
	st = st_of("f");
	ok(st.st_uid == 1234 && st.st_gid == 42, "chown: only the gid changed (%u:%u)", st.st_uid, st.st_gid);
	succeeds(chown("f", 0, 0), "chown: back to root");
	succeeds(chown("d", 777, 888), "chown: a directory");
	st = st_of("d");
	ok(st.st_uid == 777 && st.st_gid == 888, "chown: directory uid and gid set");

	/* changing the owner drops setuid and setgid (Linux, even for root) */
	setup(chmod("f", 06755));
	setup(chown("f", 1000, 1000));
	eq(st_of("f").st_mode, S_IFREG | 0755, "chown: clears S_ISUID and S_ISGID of an executable");

	setup(symlink("f", "sl"));
	succeeds(lchown("sl", 4321, 8765), "lchown: on a symlink");
	st = st_of("sl");
	st2 = st_of("f");
	ok(st.st_uid == 4321 && st.st_gid == 8765 && st2.st_uid == 1000,
	   "lchown: changes the link, not its target");
	succeeds(chown("sl", 55, 66), "chown: through a symlink");
	ok(st_of("f").st_uid == 55 && st_of("sl").st_uid == 4321, "chown: through a symlink changes the target");

	fd = open("f", O_RDONLY);
	if (setup(fd) >= 0) {
		succeeds(fchown(fd, 11, 22), "fchown: on an fd");
		fstat(fd, &st);
		ok(st.st_uid == 11 && st.st_gid == 22, "fchown: fstat shows the owner");
		close(fd);
	}

	/* inode numbers: distinct per file, stable across lookups and renames */
	{
		ino_t inos[50];
		bool distinct = true, stable = true;
		char name[32];

		for (int i = 0; i < 50; i++) {
			snprintf(name, sizeof name, "i%d", i);
			setup(put_str(name, ""));
			inos[i] = st_of(name).st_ino;
		}
		for (int i = 0; i < 50; i++)
			for (int j = i + 1; j < 50; j++)
				if (inos[i] == inos[j] || inos[i] == 0)
					distinct = false;
		ok(distinct, "stat: 50 files have distinct non-zero inode numbers");
		setup(rename("i7", "i7renamed"));
		stable = st_of("i7renamed").st_ino == inos[7] && st_of("i8").st_ino == inos[8];
		ok(stable, "stat: inode numbers are stable across lookups and rename");
		ok(st_of("i1").st_dev == st_of("d").st_dev, "stat: st_dev is the same for all entries");
	}
	leave();
}

/* ------------------------------------------------------------ times */

static struct stat st_at_change(const char *path)
{
	struct stat st = st_of(path);

	tick();
	return st;
}

#define CHANGED_M(a, b) ts_lt((a).st_mtim, (b).st_mtim)
#define CHANGED_C(a, b) ts_lt((a).st_ctim, (b).st_ctim)

static void g_times(void)
{
	struct timespec ts[2];
	struct stat st, a, b;
	int fd;
	long long t0;

	enter("times");
	setup(put_str("f", "data"));

	ts[0] = (struct timespec){ 1000000000, 123456789 };
	ts[1] = (struct timespec){ 1500000000, 987654321 };
	succeeds(utimensat(AT_FDCWD, "f", ts, 0), "utimensat: explicit times");
	st = st_of("f");
	ok(ts_eq(st.st_atim, ts[0]), "utimensat: atime set with nanoseconds");
	ok(ts_eq(st.st_mtim, ts[1]), "utimensat: mtime set with nanoseconds");

	ts[0] = (struct timespec){ 0, UTIME_OMIT };
	ts[1] = (struct timespec){ 1600000000, 1 };
	succeeds(utimensat(AT_FDCWD, "f", ts, 0), "utimensat: UTIME_OMIT atime");
	st = st_of("f");
	ok(st.st_atim.tv_sec == 1000000000 && st.st_atim.tv_nsec == 123456789,
	   "utimensat: UTIME_OMIT leaves atime alone");
	ok(st.st_mtim.tv_sec == 1600000000 && st.st_mtim.tv_nsec == 1, "utimensat: mtime changed to 1 ns past");

	t0 = now_sec();
	ts[0] = (struct timespec){ 0, UTIME_NOW };
	ts[1] = (struct timespec){ 0, UTIME_OMIT };
	succeeds(utimensat(AT_FDCWD, "f", ts, 0), "utimensat: UTIME_NOW atime, UTIME_OMIT mtime");
	st = st_of("f");
	ok(st.st_atim.tv_sec >= t0 - 1 && st.st_atim.tv_sec <= now_sec() + 1, "utimensat: UTIME_NOW sets atime to now");
	ok(st.st_mtim.tv_sec == 1600000000 && st.st_mtim.tv_nsec == 1, "utimensat: UTIME_OMIT leaves mtime alone");

	succeeds(utimensat(AT_FDCWD, "f", NULL, 0), "utimensat: NULL times (both now)");
	st = st_of("f");
	ok(st.st_mtim.tv_sec >= t0 - 1 && st.st_mtim.tv_sec <= now_sec() + 1, "utimensat: NULL sets mtime to now");

	ts[0] = (struct timespec){ -86400LL * 365, 500 };	/* 1969 */
	ts[1] = (struct timespec){ 4102444800LL, 999999999 };	/* 2100 */
	succeeds(utimensat(AT_FDCWD, "f", ts, 0), "utimensat: times before 1970 and after 2038");
	st = st_of("f");
	ok(ts_eq(st.st_atim, ts[0]), "utimensat: a 1969 atime round-trips");
	ok(ts_eq(st.st_mtim, ts[1]), "utimensat: a year-2100 mtime round-trips");

	fd = open("f", O_RDWR);
	if (setup(fd) >= 0) {
		ts[0] = (struct timespec){ 1111, 1 };
		ts[1] = (struct timespec){ 2222, 2 };
		succeeds(futimens(fd, ts), "futimens: on an fd");
		fstat(fd, &st);
		ok(ts_eq(st.st_mtim, ts[1]), "futimens: fstat shows the mtime");
		close(fd);
	}

	setup(symlink("f", "sl"));
	ts[0] = (struct timespec){ 3333, 3 };
	ts[1] = (struct timespec){ 4444, 4 };
	succeeds(utimensat(AT_FDCWD, "sl", ts, AT_SYMLINK_NOFOLLOW), "utimensat: AT_SYMLINK_NOFOLLOW on a symlink");
	ok(ts_eq(st_of("sl").st_mtim, ts[1]) && st_of("f").st_mtim.tv_sec == 2222,
	   "utimensat: AT_SYMLINK_NOFOLLOW changes the link, not the target");

	/* setting times also sets ctime to now */
	a = st_at_change("f");
	setup(utimensat(AT_FDCWD, "f", ts, 0));
	ok(CHANGED_C(a, st_of("f")), "utimensat: updates ctime");

	/* content changes: mtime and ctime */
	a = st_at_change("f");
	fd = open("f", O_WRONLY);
	if (setup(fd) >= 0) {
		setup(write(fd, "X", 1));
		close(fd);
	}
	b = st_of("f");
	ok(CHANGED_M(a, b) && CHANGED_C(a, b), "write: updates mtime and ctime");
	a = st_at_change("f");
	setup(truncate("f", 100));
	b = st_of("f");
	ok(CHANGED_M(a, b) && CHANGED_C(a, b), "truncate: updates mtime and ctime");
	a = st_at_change("f");
	fd = open("f", O_RDWR);
	if (setup(fd) >= 0) {
		setup(ftruncate(fd, 10));
		close(fd);
	}
	b = st_of("f");
	ok(CHANGED_M(a, b) && CHANGED_C(a, b), "ftruncate: updates mtime and ctime");
	a = st_at_change("f");
	fd = open("f", O_WRONLY | O_TRUNC);
	if (fd >= 0)
		close(fd);
	b = st_of("f");
	ok(CHANGED_M(a, b) && CHANGED_C(a, b), "open O_TRUNC: updates mtime and ctime");

	setup(put_str("f", "0123456789"));
	a = st_at_change("f");
	{
		char buf[16];

		get_file("f", buf, sizeof buf);
	}
	b = st_of("f");
	ok(ts_eq(a.st_mtim, b.st_mtim) && ts_eq(a.st_ctim, b.st_ctim), "read: changes neither mtime nor ctime");

	/* metadata changes: ctime only */
	a = st_at_change("f");
	setup(chmod("f", 0600));
	b = st_of("f");
	ok(CHANGED_C(a, b) && ts_eq(a.st_mtim, b.st_mtim), "chmod: updates ctime, not mtime");
	a = st_at_change("f");
	setup(chown("f", 1, 1));
	b = st_of("f");
	ok(CHANGED_C(a, b) && ts_eq(a.st_mtim, b.st_mtim), "chown: updates ctime, not mtime");
	a = st_at_change("f");
	setup(link("f", "f_link"));
	b = st_of("f");
	ok(CHANGED_C(a, b) && ts_eq(a.st_mtim, b.st_mtim), "link: updates the file's ctime, not mtime");
	a = st_at_change("f");
	setup(unlink("f_link"));
	b = st_of("f");
	ok(CHANGED_C(a, b), "unlink: of another name updates the file's ctime");
	a = st_at_change("f");
	setup(rename("f", "f2"));
	b = st_of("f2");
	ok(CHANGED_C(a, b) && ts_eq(a.st_mtim, b.st_mtim), "rename: updates the renamed file's ctime, not mtime");
	a = st_at_change("f2");
	setup(setxattr("f2", "user.t", "v", 1, 0));
	b = st_of("f2");
	ok(CHANGED_C(a, b) && ts_eq(a.st_mtim, b.st_mtim), "setxattr: updates ctime, not mtime");

	/* directory entry changes: the parent's mtime and ctime */
	setup(mkdir("p", 0755));
	setup(mkdir("q", 0755));
#define DIR_CHANGE(what, op) do {					\
	a = st_at_change("p");						\
	setup(op);							\
	b = st_of("p");							\
	ok(CHANGED_M(a, b) && CHANGED_C(a, b),				\
	   "%s: updates the parent's mtime and ctime", what);		\
} while (0)
	DIR_CHANGE("create", put_str("p/new", "n"));
	DIR_CHANGE("mkdir", mkdir("p/sub", 0755));
	DIR_CHANGE("symlink", symlink("x", "p/sym"));
	DIR_CHANGE("link", link("p/new", "p/new2"));
	DIR_CHANGE("mknod", mknod("p/fifo", S_IFIFO | 0644, 0));
	DIR_CHANGE("unlink", unlink("p/new2"));
	DIR_CHANGE("rmdir", rmdir("p/sub"));
	DIR_CHANGE("rename within", rename("p/new", "p/renamed"));
	DIR_CHANGE("rename out of", rename("p/renamed", "q/moved"));
	a = st_at_change("q");
	setup(rename("p/sym", "q/sym"));
	b = st_of("q");
	ok(CHANGED_M(a, b) && CHANGED_C(a, b), "rename into: updates the new parent's mtime and ctime");
	a = st_at_change("p");
	setup(put_str("p/new", "changed"));	/* overwriting contents of an existing entry */
	setup(put_str("p/new", "changed again"));
	b = st_at_change("p");
	setup(put_str("p/new", "and again"));
	ok(ts_eq(b.st_mtim, st_of("p").st_mtim), "write: of a child does not change the parent's mtime");
#undef DIR_CHANGE
	leave();
}

/* ------------------------------------------------------------ directories */

static void g_dirs(void)
{
	struct stat st;
	mode_t old;

	enter("dirs");
	succeeds(mkdir("d", 0755), "mkdir: creates a directory");
	st = st_of("d");
	ok(S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0755, "mkdir: mode 0755 directory");
	eq(st.st_nlink, 2, "mkdir: a new directory has nlink 2");
	fails_with(EEXIST, mkdir("d", 0755), "mkdir: existing directory fails with EEXIST");
	setup(put_str("file", "x"));
	fails_with(EEXIST, mkdir("file", 0755), "mkdir: over an existing file fails with EEXIST");
	fails_with(ENOTDIR, mkdir("file/sub", 0755), "mkdir: under a file fails with ENOTDIR");
	fails_with(ENOTDIR, stat("file/x", &st), "lookup: a name inside a file fails with ENOTDIR");
	fails_with(ENOENT, mkdir("nodir/sub", 0755), "mkdir: in a missing directory fails with ENOENT");

	eq(st_of(".").st_nlink, 3, "nlink: the group directory has 2 + 1 subdirectory");
	setup(mkdir("d/a", 0755));
	setup(mkdir("d/b", 0755));
	setup(mkdir("d/c", 0755));
	setup(put_str("d/file", "f"));
	eq(st_of("d").st_nlink, 5, "nlink: 2 + 3 subdirectories (files do not count)");
	setup(rmdir("d/b"));
	eq(st_of("d").st_nlink, 4, "nlink: rmdir of a subdirectory decrements the parent");
	eq(st_of("d/a").st_ino == st_of("d/a/.").st_ino, 1, "lookup: '.' is the directory itself");
	eq(st_of("d/a/..").st_ino, st_of("d").st_ino, "lookup: '..' is the parent");

	fails_with(ENOTEMPTY, rmdir("d"), "rmdir: non-empty directory fails with ENOTEMPTY");
	fails_with(ENOTDIR, rmdir("file"), "rmdir: a file fails with ENOTDIR");
	fails_with(EISDIR, unlink("d/a"), "unlink: a directory fails with EISDIR");
	fails_with(EINVAL, rmdir("d/a/."), "rmdir: '.' fails with EINVAL");
	fails_with(ENOTEMPTY, rmdir("d/a/.."), "rmdir: '..' fails with ENOTEMPTY");
	fails_with(ENOENT, rmdir("nothere"), "rmdir: a missing name fails with ENOENT");
	fails_with(ENOENT, unlink("nothere"), "unlink: a missing name fails with ENOENT");
	setup(unlink("d/file"));
	setup(rmdir("d/a"));
	setup(rmdir("d/c"));
	succeeds(rmdir("d"), "rmdir: a directory emptied by unlink/rmdir");
	fails_with(ENOENT, stat("d", &st), "rmdir: the directory is gone");

	old = umask(027);
	setup(mkdir("masked", 0777));
	umask(old);
	eq(st_of("masked").st_mode, S_IFDIR | 0750, "mkdir: mode 0777 with umask 027 gives 0750");
	setup(mkdir("sticky", 01777));
	eq(st_of("sticky").st_mode & 07777, 01755, "mkdir: keeps the sticky bit (umask 022 applies)");

	/* setgid directories pass their group on (BSD semantics) */
	setup(mkdir("sgid", 0755));
	setup(chown("sgid", 0, 4242));
	setup(chmod("sgid", 02755));
	setup(put_str("sgid/child", "c"));
	setup(mkdir("sgid/subdir", 0755));
	eq(st_of("sgid/child").st_gid, 4242, "mkdir: a file in a setgid directory gets its group");
	eq(st_of("sgid/subdir").st_mode & 02000, 02000, "mkdir: a subdirectory of a setgid directory is setgid");

	setup(put_str("Case", "upper"));
	setup(put_str("case", "lower"));
	ok(file_is("Case", "upper") && file_is("case", "lower"), "names: case-sensitive (Case and case coexist)");
	leave();
}

/* ------------------------------------------------------------ names */

/* true when directory "." lists name exactly once */
static int count_in_dir(const char *dir, const char *name)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, name) == 0)
			n++;
	closedir(d);
	return n;
}

static void g_names(void)
{
	char name[300], all[300];
	int fd, good = 1;
	size_t n = 0;

	enter("names");
	memset(name, 'n', 255);
	name[255] = 0;
	fd = open(name, O_CREAT | O_WRONLY, 0644);
	ok(fd >= 0, "names: a 255-byte name can be created");
	if (fd >= 0)
		close(fd);
	ok(S_ISREG(st_of(name).st_mode), "names: a 255-byte name can be looked up");
	eq(count_in_dir(".", name), 1, "names: readdir lists the 255-byte name once");
	name[255] = 'n';
	name[256] = 0;
	fails_with(ENAMETOOLONG, open(name, O_CREAT | O_WRONLY, 0644), "names: creating a 256-byte name fails with ENAMETOOLONG");
	fails_with(ENAMETOOLONG, mkdir(name, 0755), "names: mkdir of a 256-byte name fails with ENAMETOOLONG");
	fails_with(ENAMETOOLONG, access(name, F_OK), "names: lookup of a 256-byte name fails with ENAMETOOLONG");
	{
		char longer[300];

		memset(longer, 'm', 256);
		longer[256] = 0;
		name[255] = 0;
		fails_with(ENAMETOOLONG, rename(name, longer), "names: rename to a 256-byte name fails with ENAMETOOLONG");
		ok(S_ISREG(st_of(name).st_mode), "names: the failed rename left the 255-byte name");
	}

	/* 85 three-byte UTF-8 characters: 255 bytes */
	for (int i = 0; i < 85; i++)
		memcpy(name + 3 * i, "\xe2\x82\xac", 3);	/* U+20AC EURO SIGN */
	name[255] = 0;
	succeeds(put_str(name, "euro"), "names: 255 bytes of UTF-8 (85 x U+20AC)");
	ok(file_is(name, "euro"), "names: the UTF-8 name reads back");

	/* one name holding every byte value 1..255 except '/': 254 bytes */
	for (int c = 1; c < 256; c++)
		if (c != '/')
			all[n++] = (char)c;
	all[n] = 0;
	succeeds(put_str(all, "every byte"), "names: a name with every byte 1..255 except '/'");
	ok(file_is(all, "every byte"), "names: that name reads back");
	eq(count_in_dir(".", all), 1, "names: readdir returns that name byte-exactly");

	/* a separate name per byte value, so a collision between two shows up */
	setup(mkdir("bytes", 0755));
	for (int c = 1; c < 256 && good; c++) {
		char nm[32], content[8];

		if (c == '/')
			continue;
		snprintf(nm, sizeof nm, "bytes/a%cz", c);
		snprintf(content, sizeof content, "%d", c);
		good = put_str(nm, content) == 0;
	}
	ok(good, "names: 254 files named a<byte>z");
	for (int c = 1; c < 256 && good; c++) {
		char nm[32], content[8];

		if (c == '/')
			continue;
		snprintf(nm, sizeof nm, "bytes/a%cz", c);
		snprintf(content, sizeof content, "%d", c);
		good = file_is(nm, content);
	}
	ok(good, "names: each a<byte>z holds its own content");
	{
		DIR *d = opendir("bytes");
		struct dirent *e;
		int count = 0;

		while (d && (e = readdir(d)))
			if (strlen(e->d_name) == 3 && e->d_name[0] == 'a' && e->d_name[2] == 'z')
				count++;
		if (d)
			closedir(d);
		eq(count, 254, "names: readdir lists all 254 a<byte>z names");
	}
	setup(put_str("newline\nname", "nl"));
	ok(file_is("newline\nname", "nl"), "names: a name with a newline");
	setup(put_str("\xff\xfe\x80", "bin"));
	ok(file_is("\xff\xfe\x80", "bin"), "names: a name that is invalid UTF-8");
	setup(put_str("...", "dots"));
	ok(file_is("...", "dots"), "names: '...' is an ordinary name");
	setup(put_str(" lead and trail ", "sp"));
	ok(file_is(" lead and trail ", "sp"), "names: leading and trailing spaces");
	leave();
}

/* ------------------------------------------------------------ deep tree */

static void g_deep(void)
{
	char path[PATH_MAX] = "";
	int depth = 100, good = 1, fd;

	enter("deep");
	for (int i = 0; i < depth && good; i++) {
		char comp[16];

		snprintf(comp, sizeof comp, "%sd%02d", i ? "/" : "", i);
		strcat(path, comp);
		good = mkdir(path, 0755) == 0;
	}
	ok(good, "deep: mkdir of a %d-level tree", depth);
	strcat(path, "/leaf");
	succeeds(put_str(path, "bottom"), "deep: create a file at depth %d", depth);
	ok(file_is(path, "bottom"), "deep: read the file at depth %d by full path", depth);
	/* walk down with chdir, one component at a time */
	good = 1;
	for (int i = 0; i < depth && good; i++) {
		char comp[16];

		snprintf(comp, sizeof comp, "d%02d", i);
		good = chdir(comp) == 0;
	}
	ok(good && file_is("leaf", "bottom"), "deep: chdir down %d levels and read", depth);
	{
		char cwd[PATH_MAX];

		ok(getcwd(cwd, sizeof cwd) && strstr(cwd, "/deep/d00/d01/") && strstr(cwd, "/d99"),
		   "deep: getcwd at depth %d", depth);
	}
	leave();
	fd = rm_tree("deep/d00");
	ok(fd == 0 && access("deep/d00", F_OK) != 0, "deep: remove the %d-level tree", depth);
}

/* ------------------------------------------------------------ rename */

static void g_rename(void)
{
	struct stat st, a, b;
	int fd;
	char buf[64];

	enter("rename");
	/* file over file: the target's inode loses a link */
	setup(put_str("src", "source"));
	setup(put_str("dst", "destination"));
	setup(link("dst", "dst_other"));
	a = st_of("src");
	succeeds(rename("src", "dst"), "rename: file over file");
	ok(file_is("dst", "source"), "rename: the target now has the source's content");
	eq(st_of("dst").st_ino, a.st_ino, "rename: the target name now has the source's inode");
	fails_with(ENOENT, access("src", F_OK), "rename: the source name is gone");
	eq(st_of("dst_other").st_nlink, 1, "rename: the replaced inode lost a link (nlink 1)");
	ok(file_is("dst_other", "destination"), "rename: the replaced inode keeps its other name");

	setup(mkdir("emptydir", 0755));
	setup(put_str("file", "f"));
	fails_with(EISDIR, rename("file", "emptydir"), "rename: file over a directory fails with EISDIR");
	setup(mkdir("dirA", 0755));
	setup(put_str("dirA/inside", "i"));
	a = st_of("dirA");
	succeeds(rename("dirA", "emptydir"), "rename: directory over an empty directory");
	ok(st_of("emptydir").st_ino == a.st_ino && file_is("emptydir/inside", "i"),
	   "rename: the target is now the source directory");
	setup(mkdir("full", 0755));
	setup(put_str("full/x", "x"));
	setup(mkdir("dirB", 0755));
	fails_with(ENOTEMPTY, rename("dirB", "full"), "rename: directory over a non-empty directory fails with ENOTEMPTY");
	fails_with(ENOTDIR, rename("dirB", "file"), "rename: directory over a file fails with ENOTDIR");
	setup(mkdir("dirB/sub", 0755));
	fails_with(EINVAL, rename("dirB", "dirB/sub/moved"), "rename: a directory into its own subdirectory fails with EINVAL");
	fails_with(EINVAL, rename("dirB", "dirB/moved"), "rename: a directory into itself fails with EINVAL");
	fails_with(ENOENT, rename("nothing", "x"), "rename: a missing source fails with ENOENT");
	fails_with(ENOENT, rename("file", "nodir/x"), "rename: into a missing directory fails with ENOENT");

	a = st_of("file");
	succeeds(rename("file", "file"), "rename: a file to itself succeeds");
	ok(file_is("file", "f") && st_of("file").st_ino == a.st_ino, "rename: to itself changes nothing");
	setup(link("file", "alias"));
	succeeds(rename("file", "alias"), "rename: onto a hard link of itself succeeds");
	ok(access("file", F_OK) == 0 && access("alias", F_OK) == 0 && st_of("file").st_nlink == 2,
	   "rename: onto a hard link of itself keeps both names (POSIX)");

	/* renameat2 flags */
	setup(put_str("n1", "one"));
	setup(put_str("n2", "two"));
	fails_with(EEXIST, renameat2(AT_FDCWD, "n1", AT_FDCWD, "n2", RENAME_NOREPLACE),
		   "renameat2: RENAME_NOREPLACE onto an existing name fails with EEXIST");
	ok(file_is("n1", "one") && file_is("n2", "two"), "renameat2: a failed RENAME_NOREPLACE changes nothing");
	succeeds(renameat2(AT_FDCWD, "n1", AT_FDCWD, "n3", RENAME_NOREPLACE), "renameat2: RENAME_NOREPLACE to a new name");
	ok(file_is("n3", "one") && access("n1", F_OK) != 0, "renameat2: RENAME_NOREPLACE moved the file");
	a = st_of("n2");
	b = st_of("n3");
	succeeds(renameat2(AT_FDCWD, "n2", AT_FDCWD, "n3", RENAME_EXCHANGE), "renameat2: RENAME_EXCHANGE of two files");
	ok(file_is("n2", "one") && file_is("n3", "two") && st_of("n2").st_ino == b.st_ino &&
	   st_of("n3").st_ino == a.st_ino, "renameat2: RENAME_EXCHANGE swapped contents and inodes");
	setup(mkdir("xdir", 0755));
	setup(put_str("xdir/in", "in"));
	succeeds(renameat2(AT_FDCWD, "n2", AT_FDCWD, "xdir", RENAME_EXCHANGE), "renameat2: RENAME_EXCHANGE of a file and a directory");
	ok(S_ISDIR(st_of("n2").st_mode) && file_is("n2/in", "in") && file_is("xdir", "one"),
	   "renameat2: the file and the directory swapped names");
	fails_with(ENOENT, renameat2(AT_FDCWD, "n3", AT_FDCWD, "none", RENAME_EXCHANGE),
		   "renameat2: RENAME_EXCHANGE with a missing target fails with ENOENT");

	/* exchange a directory across parents: '..' and both parents' nlink follow */
	setup(mkdir("P", 0755));
	setup(mkdir("Q", 0755));
	setup(mkdir("P/sub", 0755));
	setup(put_str("Q/f", "f"));
	eq(st_of("P").st_nlink, 3, "renameat2: parent P has nlink 3 before the exchange");
	succeeds(renameat2(AT_FDCWD, "P/sub", AT_FDCWD, "Q/f", RENAME_EXCHANGE),
		 "renameat2: RENAME_EXCHANGE of a directory and a file in different parents");
	eq(st_of("P").st_nlink, 2, "renameat2: P lost the subdirectory link");
	eq(st_of("Q").st_nlink, 3, "renameat2: Q gained the subdirectory link");
	eq(st_of("Q/f/..").st_ino, st_of("Q").st_ino, "renameat2: the exchanged directory's '..' is its new parent");

	/* a directory moved across parents */
	setup(mkdir("from", 0755));
	setup(mkdir("to", 0755));
	setup(mkdir("from/mv", 0755));
	setup(put_str("from/mv/content", "c"));
	a = st_of("from");
	b = st_of("to");
	succeeds(rename("from/mv", "to/mv"), "rename: a directory to another parent");
	eq(st_of("to/mv/..").st_ino, b.st_ino, "rename: the moved directory's '..' is the new parent");
	eq(st_of("from").st_nlink, a.st_nlink - 1, "rename: the old parent's nlink drops by one");
	eq(st_of("to").st_nlink, b.st_nlink + 1, "rename: the new parent's nlink grows by one");
	ok(file_is("to/mv/content", "c"), "rename: the moved directory keeps its content");
	fd = open("to/mv/..", O_RDONLY | O_DIRECTORY);
	if (setup(fd) >= 0) {
		fstat(fd, &st);
		eq(st.st_ino, b.st_ino, "rename: open('moved/..') is the new parent");
		close(fd);
	}
	{
		DIR *d = opendir("to/mv");
		struct dirent *e;
		ino_t dotdot = 0;

		while (d && (e = readdir(d)))
			if (strcmp(e->d_name, "..") == 0)
				dotdot = e->d_ino;
		if (d)
			closedir(d);
		eq(dotdot, b.st_ino, "rename: readdir '..' of the moved directory is the new parent");
	}

	/* save-to-temp-then-rename over an open file: the old fd keeps old data */
	setup(put_str("doc", "old version"));
	fd = open("doc", O_RDONLY);
	if (setup(fd) >= 0) {
		setup(put_str("doc.tmp", "new version!"));
		succeeds(rename("doc.tmp", "doc"), "rename: over a file that is open");
		memset(buf, 0, sizeof buf);
		ok(pread(fd, buf, sizeof buf, 0) == 11 && memcmp(buf, "old version", 11) == 0,
		   "rename: the old fd still reads the old content");
		fstat(fd, &st);
		eq(st.st_nlink, 0, "rename: the replaced open file has nlink 0");
		close(fd);
	}
	ok(file_is("doc", "new version!"), "rename: the name has the new content");

	/* renaming an open file: the fd follows the inode */
	fd = open("doc", O_RDWR);
	if (setup(fd) >= 0) {
		setup(rename("doc", "doc2"));
		setup(pwrite(fd, "N", 1, 0));
		close(fd);
		ok(file_is("doc2", "New version!"), "rename: writes through an fd opened before a rename land in the file");
	}
	setup(symlink("doc2", "slink"));
	setup(rename("slink", "slink2"));
	memset(buf, 0, sizeof buf);
	ok(readlink("slink2", buf, sizeof buf) == 4 && strcmp(buf, "doc2") == 0 && file_is("doc2", "New version!"),
	   "rename: a symlink moves as a link, its target untouched");
	leave();
}

/* ------------------------------------------------------------ hard links */

static void g_links(void)
{
	struct stat a, b;

	enter("links");
	setup(put_str("f", "shared"));
	succeeds(link("f", "g"), "link: creates a second name");
	a = st_of("f");
	b = st_of("g");
	eq(a.st_ino, b.st_ino, "link: both names have the same inode");
	ok(a.st_nlink == 2 && b.st_nlink == 2, "link: nlink is 2");
	setup(put_str("g", "rewritten via g"));
	ok(file_is("f", "rewritten via g"), "link: a write through one name shows through the other");
	setup(mkdir("sub", 0755));
	succeeds(link("f", "sub/h"), "link: into another directory");
	eq(st_of("f").st_nlink, 3, "link: nlink is 3");
	succeeds(unlink("f"), "unlink: one of three names");
	ok(file_is("g", "rewritten via g") && file_is("sub/h", "rewritten via g"), "unlink: the other names keep the content");
	eq(st_of("g").st_nlink, 2, "unlink: nlink drops to 2");
	setup(mkdir("d", 0755));
	fails_with(EPERM, link("d", "d2"), "link: to a directory fails with EPERM");
	setup(put_str("other", "o"));
	fails_with(EEXIST, link("g", "other"), "link: onto an existing name fails with EEXIST");
	fails_with(ENOENT, link("missing", "m2"), "link: of a missing file fails with ENOENT");
	setup(symlink("g", "sym"));
	succeeds(link("sym", "sym_hard"), "link: of a symlink links the symlink itself");
	ok(S_ISLNK(st_of("sym_hard").st_mode) && st_of("sym").st_nlink == 2, "link: the new name is the symlink (nlink 2)");
	succeeds(linkat(AT_FDCWD, "sym", AT_FDCWD, "followed", AT_SYMLINK_FOLLOW), "linkat: AT_SYMLINK_FOLLOW links the target");
	eq(st_of("followed").st_ino, st_of("g").st_ino, "linkat: AT_SYMLINK_FOLLOW gave the target's inode");
	{
		bool good = true;
		char nm[32];

		for (int i = 0; i < 100 && good; i++) {
			snprintf(nm, sizeof nm, "many%03d", i);
			good = link("other", nm) == 0;
		}
		ok(good && st_of("other").st_nlink == 101, "link: 100 extra links give nlink 101");
		for (int i = 0; i < 100 && good; i++) {
			snprintf(nm, sizeof nm, "many%03d", i);
			good = unlink(nm) == 0;
		}
		ok(good && st_of("other").st_nlink == 1 && file_is("other", "o"), "unlink: of the 100 links leaves nlink 1");
	}
	leave();
}

/* ------------------------------------------------------------ symlinks */

static void g_symlinks(void)
{
	char target[4200], buf[4200];
	struct stat st;
	int fd;

	enter("symlinks");
	setup(put_str("t", "target content"));
	succeeds(symlink("t", "s"), "symlink: create");
	memset(buf, 0, sizeof buf);
	eq(readlink("s", buf, sizeof buf), 1, "readlink: returns the target length");
	ok(strcmp(buf, "t") == 0, "readlink: returns the target");
	st = st_of("s");
	ok(S_ISLNK(st.st_mode) && (st.st_mode & 0777) == 0777, "lstat: a symlink is S_IFLNK with mode 0777");
	eq(st.st_size, 1, "lstat: size is the target length");
	ok(file_is("s", "target content"), "symlink: open follows it");
	setup(symlink("a/much/longer/target/name", "s2"));
	eq(st_of("s2").st_size, 25, "lstat: size of a 25-byte target");
	memset(buf, 0, sizeof buf);
	eq(readlink("s2", buf, 5), 5, "readlink: a short buffer gets a truncated target");
	ok(memcmp(buf, "a/muc", 5) == 0 && buf[5] == 0, "readlink: truncation writes no NUL");

	setup(symlink("does/not/exist", "dangling"));
	fails_with(ENOENT, stat("dangling", &st), "symlink: stat of a dangling symlink fails with ENOENT");
	succeeds(lstat("dangling", &st), "symlink: lstat of a dangling symlink works");
	setup(symlink("loop2", "loop1"));
	setup(symlink("loop1", "loop2"));
	fails_with(ELOOP, open("loop1", O_RDONLY), "symlink: a loop fails with ELOOP on open");
	setup(symlink("self", "self"));
	fails_with(ELOOP, stat("self", &st), "symlink: a self-loop fails with ELOOP on stat");
	fails_with(EEXIST, symlink("x", "t"), "symlink: onto an existing name fails with EEXIST");
	fails_with(EINVAL, readlink("t", buf, sizeof buf), "readlink: on a regular file fails with EINVAL");
	fails_with(ENOENT, symlink("", "empty"), "symlink: an empty target fails with ENOENT");

	memset(target, 'L', 4095);
	for (int i = 100; i < 4095; i += 100)
		target[i] = '/';
	target[4095] = 0;
	succeeds(symlink(target, "long"), "symlink: a 4095-byte target");
	memset(buf, 0, sizeof buf);
	eq(readlink("long", buf, sizeof buf), 4095, "readlink: returns all 4095 bytes");
	ok(memcmp(buf, target, 4095) == 0, "readlink: the 4095-byte target is byte-exact");
	eq(st_of("long").st_size, 4095, "lstat: size of the 4095-byte target");
	target[4095] = 'L';
	target[4096] = 0;
	fails_with(ENAMETOOLONG, symlink(target, "toolong"), "symlink: a 4096-byte target fails with ENAMETOOLONG");

	setup(symlink("bin\n\xff\x01 target", "binlink"));
	memset(buf, 0, sizeof buf);
	ok(readlink("binlink", buf, sizeof buf) == 13 && memcmp(buf, "bin\n\xff\x01 target", 13) == 0,
	   "readlink: a target with newline and non-UTF-8 bytes");

	setup(mkdir("realdir", 0755));
	setup(put_str("realdir/f", "via dir link"));
	setup(symlink("realdir", "dirlink"));
	ok(file_is("dirlink/f", "via dir link"), "symlink: a path through a symlinked directory");
	fails_with(ENOTDIR, rmdir("dirlink"), "rmdir: on a symlink to a directory fails with ENOTDIR");
	succeeds(unlink("dirlink"), "unlink: a symlink removes the link only");
	ok(file_is("realdir/f", "via dir link"), "unlink: the symlink's target stays");
	setup(symlink("/absolute/target", "abs"));
	memset(buf, 0, sizeof buf);
	ok(readlink("abs", buf, sizeof buf) == 16 && strcmp(buf, "/absolute/target") == 0, "readlink: an absolute target");
	fd = open("s", O_RDONLY);
	if (fd >= 0) {
		fstat(fd, &st);
		ok(S_ISREG(st.st_mode), "symlink: an fd opened through it is the target");
		close(fd);
	}
	eq(st_of("s").st_nlink, 1, "lstat: a symlink has nlink 1");
	leave();
}

/* ------------------------------------------------------------ readdir */

struct seen {
	char **names;
	int n, cap;
};

static void seen_add(struct seen *s, const char *name)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 256;
		s->names = realloc(s->names, (size_t)s->cap * sizeof *s->names);
	}
	s->names[s->n++] = strdup(name);
}

static int seen_count(const struct seen *s, const char *name)
{
	int c = 0;

	for (int i = 0; i < s->n; i++)
		c += strcmp(s->names[i], name) == 0;
	return c;
}

static void seen_free(struct seen *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->names[i]);
	free(s->names);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* number of names seen more than once */
static int seen_dups(struct seen *s)
{
	int d = 0;

	qsort(s->names, (size_t)s->n, sizeof *s->names, cmp_str);
	for (int i = 1; i < s->n; i++)
		d += strcmp(s->names[i], s->names[i - 1]) == 0;
	return d;
}

static void g_readdir(void)
{
	DIR *d;
	struct dirent *e;
	struct seen s = { 0 };
	const int N = 1000;
	char name[64];
	bool good = true;

	enter("readdir");
	setup(mkdir("empty", 0755));
	d = opendir("empty");
	while (d && (e = readdir(d)))
		seen_add(&s, e->d_name);
	if (d)
		closedir(d);
	ok(s.n == 2 && seen_count(&s, ".") == 1 && seen_count(&s, ".."), "readdir: an empty directory lists exactly '.' and '..'");
	seen_free(&s);
	memset(&s, 0, sizeof s);

	/* d_type and d_ino of every kind of entry */
	setup(mkdir("kinds", 0755));
	setup(put_str("kinds/reg", "r"));
	setup(mkdir("kinds/dir", 0755));
	setup(symlink("reg", "kinds/lnk"));
	setup(mkfifo("kinds/fifo", 0644));
	setup(mknod("kinds/chr", S_IFCHR | 0600, makedev(1, 3)));
	setup(mknod("kinds/sock", S_IFSOCK | 0600, 0));
	{
		const struct { const char *name; unsigned char type; } want[] = {
			{ "reg", DT_REG }, { "dir", DT_DIR }, { "lnk", DT_LNK },
			{ "fifo", DT_FIFO }, { "chr", DT_CHR }, { "sock", DT_SOCK },
			{ ".", DT_DIR }, { "..", DT_DIR },
		};
		int found = 0, right = 0, ino_right = 0;

		d = opendir("kinds");
		while (d && (e = readdir(d))) {
			for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
				char path[300];

				if (strcmp(e->d_name, want[i].name) != 0)
					continue;
				found++;
				right += e->d_type == want[i].type;
				snprintf(path, sizeof path, "kinds/%s", e->d_name);
				ino_right += e->d_ino == st_of(path).st_ino;
			}
		}
		if (d)
			closedir(d);
		eq(found, 8, "readdir: lists all 8 kinds of entries (with '.' and '..')");
		eq(right, 8, "readdir: d_type is right for reg, dir, lnk, fifo, chr, sock, '.', '..'");
		eq(ino_right, 8, "readdir: d_ino matches lstat's st_ino for every entry");
	}

	/* a 1000-entry directory changed while it is being read */
	setup(mkdir("big", 0755));
	for (int i = 0; i < N && good; i++) {
		snprintf(name, sizeof name, "big/e%04d", i);
		good = put_str(name, "") == 0;
	}
	ok(good, "readdir: created %d entries", N);
	d = opendir("big");
	if (!d) {
		ok(0, "readdir: opendir of the big directory");
		return leave();
	}
	while ((e = readdir(d)))
		seen_add(&s, e->d_name);
	ok(s.n == N + 2 && seen_dups(&s) == 0, "readdir: lists %d + 2 entries, each once (got %d)", N, s.n);
	seen_free(&s);
	memset(&s, 0, sizeof s);

	rewinddir(d);
	int read_before = 0;
	while (read_before < 300 && (e = readdir(d))) {
		seen_add(&s, e->d_name);
		read_before++;
	}
	/* mid-read: remove every 5th original entry, add 200 new ones */
	for (int i = 0; i < N; i += 5) {
		snprintf(name, sizeof name, "big/e%04d", i);
		unlink(name);
	}
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof name, "big/new%04d", i);
		put_str(name, "");
	}
	while ((e = readdir(d)))
		seen_add(&s, e->d_name);
	{
		int missing = 0;

		for (int i = 0; i < N; i++) {
			if (i % 5 == 0)
				continue;
			snprintf(name, sizeof name, "e%04d", i);
			if (seen_count(&s, name) != 1)
				missing++;
		}
		eq(missing, 0, "readdir: entries present throughout a changing readdir appear exactly once");
		eq(seen_dups(&s), 0, "readdir: no entry is listed twice while the directory changes");
	}
	seen_free(&s);
	memset(&s, 0, sizeof s);

	/* telldir/seekdir: a saved position still leads to the same entry */
	rewinddir(d);
	{
		long pos[2000];
		char *names[2000];
		int n = 0;

		for (;;) {
			long p = telldir(d);

			if (!(e = readdir(d)) || n == 2000)
				break;
			pos[n] = p;
			names[n++] = strdup(e->d_name);
		}
		int k = n / 2, hits = 0, removed = 0;

		seekdir(d, pos[k]);
		e = readdir(d);
		ok(e && strcmp(e->d_name, names[k]) == 0, "seekdir: back to a telldir position returns the same entry");
		/* remove 100 entries listed before position k; k must not move */
		for (int i = 0; i < k && removed < 100; i++) {
			if (names[i][0] == '.')
				continue;
			snprintf(name, sizeof name, "big/%s", names[i]);
			removed += unlink(name) == 0;
		}
		for (int j = k; j < k + 5 && j < n; j++) {
			seekdir(d, pos[j]);
			e = readdir(d);
			hits += e && strcmp(e->d_name, names[j]) == 0;
		}
		eq(hits, k + 5 <= n ? 5 : n - k, "seekdir: positions stay valid after earlier entries are removed");
		for (int i = 0; i < n; i++)
			free(names[i]);
	}
	closedir(d);

	/* rewinddir picks up entries created after opendir */
	d = opendir("empty");
	if (d) {
		int found = 0;

		while (readdir(d))
			;
		setup(put_str("empty/late", ""));
		rewinddir(d);
		while ((e = readdir(d)))
			found += strcmp(e->d_name, "late") == 0;
		closedir(d);
		eq(found, 1, "rewinddir: sees an entry created after opendir");
	}
	leave();
}

/* ------------------------------------------------------------ xattrs */

/* in a child: as nobody, the list of the open file *arg has no trusted.* */
static int list_as_nobody(void *arg)
{
	int fd = *(int *)arg;
	char list[4096];
	ssize_t n, probe;

	if (setgroups(0, NULL) != 0 || setresgid(65534, 65534, 65534) != 0 ||
	    setresuid(65534, 65534, 65534) != 0)
		return 2;
	probe = flistxattr(fd, NULL, 0);
	n = flistxattr(fd, list, sizeof list);
	if (n < 0 || probe != n)
		return 1;
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1)
		if (!strncmp(list + i, "trusted.", 8))
			return 1;
	return 0;
}

static void g_xattr(void)
{
	char buf[70000], list[8192];
	ssize_t n;
	unsigned char bin[256];

	enter("xattr");
	setup(put_str("f", "x"));
	setup(mkdir("d", 0755));
	succeeds(setxattr("f", "user.one", "value1", 6, 0), "xattr: set on a file");
	eq(getxattr("f", "user.one", buf, sizeof buf), 6, "xattr: get returns the length");
	ok(memcmp(buf, "value1", 6) == 0, "xattr: get returns the value");
	eq(getxattr("f", "user.one", NULL, 0), 6, "xattr: size probe (size 0) returns the needed length");
	fails_with(ERANGE, getxattr("f", "user.one", buf, 3), "xattr: a too-small buffer fails with ERANGE");
	fails_with(ENODATA, getxattr("f", "user.missing", buf, sizeof buf), "xattr: get of a missing name fails with ENODATA");
	fails_with(EEXIST, setxattr("f", "user.one", "v", 1, XATTR_CREATE), "xattr: XATTR_CREATE on an existing name fails with EEXIST");
	fails_with(ENODATA, setxattr("f", "user.nope", "v", 1, XATTR_REPLACE), "xattr: XATTR_REPLACE on a missing name fails with ENODATA");
	succeeds(setxattr("f", "user.one", "longer value", 12, XATTR_REPLACE), "xattr: XATTR_REPLACE on an existing name");
	ok(getxattr("f", "user.one", buf, sizeof buf) == 12 && memcmp(buf, "longer value", 12) == 0, "xattr: the replaced value");
	succeeds(setxattr("f", "user.one", "s", 1, 0), "xattr: flags 0 replaces too");
	ok(getxattr("f", "user.one", buf, sizeof buf) == 1 && buf[0] == 's', "xattr: the value shrank to 1 byte");

	succeeds(setxattr("f", "user.empty", "", 0, 0), "xattr: an empty value");
	eq(getxattr("f", "user.empty", buf, sizeof buf), 0, "xattr: an empty value reads back with length 0");
	for (int i = 0; i < 256; i++)
		bin[i] = (unsigned char)i;
	succeeds(setxattr("f", "user.bin", bin, 256, 0), "xattr: a binary value with NUL bytes");
	ok(getxattr("f", "user.bin", buf, sizeof buf) == 256 && memcmp(buf, bin, 256) == 0, "xattr: the binary value reads back byte-exactly");

	n = listxattr("f", list, sizeof list);
	{
		int found = 0;

		for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1)
			found += !strcmp(list + i, "user.one") + !strcmp(list + i, "user.empty") + !strcmp(list + i, "user.bin");
		eq(found, 3, "xattr: listxattr names all three");
	}
	eq(listxattr("f", NULL, 0), n, "xattr: listxattr size probe returns the needed length");
	fails_with(ERANGE, listxattr("f", list, 3), "xattr: listxattr with a too-small buffer fails with ERANGE");
	succeeds(removexattr("f", "user.one"), "xattr: remove");
	fails_with(ENODATA, getxattr("f", "user.one", buf, sizeof buf), "xattr: a removed name is gone");
	fails_with(ENODATA, removexattr("f", "user.one"), "xattr: remove of a missing name fails with ENODATA");

	fails_with(EINVAL, setxattr("f", "user.", "v", 1, 0), "xattr: a bare namespace (\"user.\") is EINVAL");
	fails_with(EINVAL, getxattr("f", "user.", buf, sizeof buf), "xattr: get of a bare namespace is EINVAL");
	{
		struct stat before, after;

		setup(setxattr("d", "user.same", "v1", 2, 0));
		setup(stat("d", &before));
		usleep(20000);
		succeeds(setxattr("d", "user.same", "v1", 2, 0), "xattr: set the value it already has");
		setup(stat("d", &after));
		ok(before.st_ctim.tv_sec == after.st_ctim.tv_sec && before.st_ctim.tv_nsec == after.st_ctim.tv_nsec,
		   "xattr: the same value again leaves a directory's ctime alone (ext4)");
		usleep(20000);
		setup(setxattr("d", "user.same", "v2", 2, 0));
		setup(stat("d", &after));
		ok(before.st_ctim.tv_sec != after.st_ctim.tv_sec || before.st_ctim.tv_nsec != after.st_ctim.tv_nsec,
		   "xattr: a new value changes ctime");
		setup(removexattr("d", "user.same"));
	}
	if (setxattr("f", "trusted.hidden", "t", 1, 0) == 0) {
		int fd = open("f", O_RDONLY);

		if (setup(fd) >= 0) {
			ok(in_child(list_as_nobody, &fd),
			   "xattr: trusted.* names are not listed to an unprivileged user");
			close(fd);
		}
		setup(removexattr("f", "trusted.hidden"));
	} else {
		ok(0, "xattr: set trusted.hidden as root: %s", errname(errno));
	}

	{
		struct stat before, after;

		setup(stat("d", &before));
		usleep(20000);
		succeeds(chown("d", (uid_t)-1, (gid_t)-1), "chown(-1, -1) of a directory");
		setup(stat("d", &after));
		ok(before.st_ctim.tv_sec != after.st_ctim.tv_sec || before.st_ctim.tv_nsec != after.st_ctim.tv_nsec,
		   "chown(-1, -1) changes ctime (ext4)");
	}

	succeeds(setxattr("d", "user.dirattr", "dv", 2, 0), "xattr: set on a directory");
	ok(getxattr("d", "user.dirattr", buf, sizeof buf) == 2 && memcmp(buf, "dv", 2) == 0, "xattr: get on a directory");
	succeeds(removexattr("d", "user.dirattr"), "xattr: remove on a directory");

	{
		int fd = open("f", O_RDONLY);

		if (setup(fd) >= 0) {
			succeeds(fsetxattr(fd, "user.viafd", "fd", 2, 0), "xattr: fsetxattr on an fd");
			ok(fgetxattr(fd, "user.viafd", buf, sizeof buf) == 2, "xattr: fgetxattr on an fd");
			close(fd);
		}
	}

	/* many attributes on one file */
	setup(put_str("many", "m"));
	{
		bool good = true;
		char name[64], val[64];

		for (int i = 0; i < 40 && good; i++) {
			snprintf(name, sizeof name, "user.attr%02d", i);
			snprintf(val, sizeof val, "v%02d", i);
			good = setxattr("many", name, val, strlen(val), XATTR_CREATE) == 0;
		}
		ok(good, "xattr: 40 names on one file");
		for (int i = 0; i < 40 && good; i++) {
			snprintf(name, sizeof name, "user.attr%02d", i);
			snprintf(val, sizeof val, "v%02d", i);
			good = getxattr("many", name, buf, sizeof buf) == (ssize_t)strlen(val) &&
			       memcmp(buf, val, strlen(val)) == 0;
		}
		ok(good, "xattr: all 40 values read back");
		n = listxattr("many", list, sizeof list);
		int count = 0;
		for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1)
			count += strncmp(list + i, "user.attr", 9) == 0;
		eq(count, 40, "xattr: listxattr lists all 40");
	}

	/* a big value */
	setup(put_str("bigval", "b"));
	fill_pattern((unsigned char *)buf, 3000, 5, 0);
	succeeds(setxattr("bigval", "user.big", buf, 3000, 0), "xattr: a 3000-byte value");
	{
		char back[4000];

		ok(getxattr("bigval", "user.big", back, sizeof back) == 3000 && memcmp(back, buf, 3000) == 0,
		   "xattr: the 3000-byte value reads back");
	}
	fails_with(E2BIG, setxattr("bigval", "user.huge", buf, 65537, 0), "xattr: a value over 64 KiB fails with E2BIG");
	memset(list, 'n', 300);
	memcpy(list, "user.", 5);
	list[256] = 0;
	fails_with(ERANGE, setxattr("bigval", list, "v", 1, 0), "xattr: a name over 255 bytes fails with ERANGE");

	/* follows the inode across links and renames; symlinks refuse user.* */
	setup(setxattr("f", "user.follow", "me", 2, 0));
	setup(link("f", "f_link"));
	setup(rename("f", "f_moved"));
	ok(getxattr("f_link", "user.follow", buf, sizeof buf) == 2 && getxattr("f_moved", "user.follow", buf, sizeof buf) == 2,
	   "xattr: visible through a hard link and after rename");
	setup(symlink("f_moved", "sl"));
	fails_with(EPERM, lsetxattr("sl", "user.x", "v", 1, 0), "xattr: user.* on a symlink fails with EPERM");
	ok(getxattr("sl", "user.follow", buf, sizeof buf) == 2, "xattr: getxattr follows a symlink");
	succeeds(setxattr("f_moved", "trusted.root", "t", 1, 0), "xattr: trusted.* as root");
	ok(getxattr("f_moved", "trusted.root", buf, sizeof buf) == 1, "xattr: trusted.* reads back");
	fails_with(EOPNOTSUPP, setxattr("f_moved", "bogus.ns", "v", 1, 0), "xattr: an unknown namespace fails with EOPNOTSUPP");
	leave();
}

/* ------------------------------------------------------------ unlink while open */

static void g_unlink_open(void)
{
	int fd, fd2;
	char buf[64];
	struct stat st;

	enter("unlink_open");
	fd = open("f", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (setup(fd) < 0)
		return leave();
	setup(write_all(fd, "before unlink", 13));
	succeeds(unlink("f"), "unlink: an open file");
	fails_with(ENOENT, access("f", F_OK), "unlink: the name is gone at once");
	memset(buf, 0, sizeof buf);
	ok(pread(fd, buf, sizeof buf, 0) == 13 && memcmp(buf, "before unlink", 13) == 0, "unlink: the open fd still reads the data");
	succeeds(pwrite(fd, " and after", 10, 13), "unlink: the open fd can still write");
	ok(pread(fd, buf, sizeof buf, 0) == 23 && memcmp(buf, "before unlink and after", 23) == 0,
	   "unlink: the write through the fd reads back");
	succeeds(fstat(fd, &st), "unlink: fstat on the open fd works");
	eq(st.st_nlink, 0, "unlink: fstat shows st_nlink 0");
	eq(st.st_size, 23, "unlink: fstat shows the size");
	succeeds(ftruncate(fd, 6), "unlink: ftruncate through the fd");
	succeeds(fchmod(fd, 0600), "unlink: fchmod through the fd");
	succeeds(fsync(fd), "unlink: fsync through the fd");

	/* a new file with the same name is a different file */
	setup(put_str("f", "new file"));
	ok(pread(fd, buf, sizeof buf, 0) == 6 && memcmp(buf, "before", 6) == 0, "unlink: a new file of the same name does not disturb the fd");
	ok(file_is("f", "new file"), "unlink: the new file has its own content");
	close(fd);
	ok(file_is("f", "new file"), "unlink: closing the old fd does not affect the new file");
	setup(unlink("f"));
	{
		DIR *d = opendir(".");
		struct dirent *e;
		int others = 0;

		while (d && (e = readdir(d)))
			others += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
		if (d)
			closedir(d);
		eq(others, 0, "unlink: no hidden leftovers in the directory after close");
	}

	/* two fds on an unlinked file */
	fd = open("g", O_RDWR | O_CREAT | O_TRUNC, 0644);
	fd2 = open("g", O_RDONLY);
	if (setup(fd) >= 0 && setup(fd2) >= 0) {
		setup(unlink("g"));
		setup(write_all(fd, "shared", 6));
		ok(pread(fd2, buf, 6, 0) == 6 && memcmp(buf, "shared", 6) == 0, "unlink: two fds of an unlinked file share data");
	}
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);

	/* an unlinked directory that is still the cwd of someone */
	setup(mkdir("gone", 0755));
	fd = open("gone", O_RDONLY | O_DIRECTORY);
	if (setup(fd) >= 0) {
		setup(rmdir("gone"));
		fstat(fd, &st);
		eq(st.st_nlink, 0, "rmdir: an open directory has nlink 0 afterwards");
		fails_with(ENOENT, openat(fd, "x", O_CREAT | O_WRONLY, 0644), "rmdir: creating in a removed directory fails with ENOENT");
		close(fd);
	}
	leave();
}

/* ------------------------------------------------------------ mmap */

static void g_mmap(void)
{
	const size_t len = 3 * 65536 + 100;
	unsigned char *want = malloc(len), *back = malloc(len);
	int fd;
	char *m;

	enter("mmap");
	fill_pattern(want, len, 11, 0);
	setup(put_file("f", want, len));
	fd = open("f", O_RDWR);
	if (setup(fd) < 0)
		goto out;
	m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	ok(m != MAP_FAILED, "mmap: MAP_SHARED read-only mapping");
	if (m != MAP_FAILED) {
		ok(memcmp(m, want, len) == 0, "mmap: the mapping shows the file's bytes");
		munmap(m, len);
	}
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ok(m != MAP_FAILED, "mmap: MAP_SHARED writable mapping");
	if (m != MAP_FAILED) {
		memcpy(m + 65530, "MMAPWRITE", 9);	/* straddles a 64 KiB boundary */
		memcpy(m + len - 4, "TAIL", 4);
		memcpy(want + 65530, "MMAPWRITE", 9);
		memcpy(want + len - 4, "TAIL", 4);
		succeeds(msync(m, len, MS_SYNC), "mmap: msync(MS_SYNC)");
		ok(pread_all(fd, back, len, 0) == (ssize_t)len && memcmp(back, want, len) == 0,
		   "mmap: read() sees the bytes written through the mapping");
		/* and a write() is seen through the mapping */
		setup(pwrite(fd, "PWRITE", 6, 1000));
		ok(memcmp(m + 1000, "PWRITE", 6) == 0, "mmap: the mapping sees a later write()");
		memcpy(want + 1000, "PWRITE", 6);
		munmap(m, len);
	}
	close(fd);
	ok(get_file("f", back, len) == (ssize_t)len && memcmp(back, want, len) == 0,
	   "mmap: the file has the mapped writes after munmap and reopen");
	/* MAP_PRIVATE writes stay private */
	fd = open("f", O_RDONLY);
	if (setup(fd) >= 0) {
		m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		if (m != MAP_FAILED) {
			m[0] ^= 0xff;
			munmap(m, len);
		}
		ok(pread(fd, back, 1, 0) == 1 && back[0] == want[0], "mmap: MAP_PRIVATE writes do not reach the file");
		close(fd);
	}
	/* extending a file with ftruncate and filling it through a mapping */
	fd = open("grown", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (setup(fd) >= 0) {
		setup(ftruncate(fd, 8192));
		m = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m != MAP_FAILED) {
			memset(m, 'g', 8192);
			msync(m, 8192, MS_SYNC);
			munmap(m, 8192);
		}
		close(fd);
		memset(want, 'g', 8192);
		ok(get_file("grown", back, 8192) == 8192 && memcmp(back, want, 8192) == 0,
		   "mmap: a file filled only through a mapping reads back");
	}
out:
	free(want);
	free(back);
	leave();
}

/* ------------------------------------------------------------ sync, statfs */

static void g_sync(void)
{
	int fd;
	struct statfs sf;
	struct statvfs sv;

	enter("sync");
	fd = open("f", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (setup(fd) >= 0) {
		setup(write_all(fd, "durable", 7));
		succeeds(fsync(fd), "fsync: a regular file");
		setup(write_all(fd, "!", 1));
		succeeds(fdatasync(fd), "fdatasync: a regular file");
		succeeds(syncfs(fd), "syncfs: the filesystem");
		close(fd);
	}
	fd = open("f", O_RDONLY);
	if (setup(fd) >= 0) {
		succeeds(fsync(fd), "fsync: an O_RDONLY fd");
		close(fd);
	}
	fd = open(".", O_RDONLY | O_DIRECTORY);
	if (setup(fd) >= 0) {
		succeeds(fsync(fd), "fsync: a directory fd");
		succeeds(fdatasync(fd), "fdatasync: a directory fd");
		close(fd);
	}
	fd = open("f", O_WRONLY | O_SYNC | O_APPEND);
	if (setup(fd) >= 0) {
		succeeds(write(fd, "s", 1), "write: through an O_SYNC fd");
		close(fd);
	}
	ok(file_is("f", "durable!s"), "fsync: the synced data reads back");

	succeeds(statfs(".", &sf), "statfs: works");
	eq(sf.f_namelen, 255, "statfs: f_namelen is 255");
	ok(sf.f_bsize > 0, "statfs: f_bsize > 0 (%ld)", (long)sf.f_bsize);
	ok(sf.f_blocks > 0 && sf.f_bfree <= sf.f_blocks && sf.f_bavail <= sf.f_bfree,
	   "statfs: 0 < blocks, avail <= free <= blocks");
	ok(sf.f_files == 0 || sf.f_ffree <= sf.f_files, "statfs: free inodes <= inodes");
	succeeds(statvfs(".", &sv), "statvfs: works");
	eq(sv.f_namemax, 255, "statvfs: f_namemax is 255");
	ok(sv.f_frsize > 0, "statvfs: f_frsize > 0");
	leave();
}

/* ------------------------------------------------------------ locks */

struct lock_arg {
	int fd;
	pid_t holder;
};

/* in a child: the parent's locks must block ours */
static int child_lock_conflicts(void *p)
{
	struct lock_arg *a = p;
	int fd = open("locked", O_RDWR);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 5, .l_len = 10 };

	if (fd < 0)
		return 10;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)
		return 11;
	if (fcntl(fd, F_SETLK, &fl) == 0 || (errno != EAGAIN && errno != EACCES))
		return 12;
	if (fcntl(fd, F_GETLK, &fl) != 0 || fl.l_type != F_WRLCK || fl.l_pid != a->holder)
		return 13;
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 100, .l_len = 10 };
	if (fcntl(fd, F_SETLK, &fl) != 0)
		return 14;	/* a disjoint range is free */
	fl = (struct flock){ .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 30, .l_len = 1 };
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0 || errno != EAGAIN)
		return 15;	/* byte 30 is write-locked by the parent's OFD lock */
	return 0;
}

/* in a child: after the parent released, everything is free */
static int child_lock_free(void *p)
{
	int fd = open("locked", O_RDWR);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };

	(void)p;
	if (fd < 0)
		return 10;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0)
		return 11;
	if (fcntl(fd, F_SETLK, &fl) != 0)
		return 12;
	return 0;
}

static void g_locks(void)
{
	int fd, ofd;
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 20 };
	/* OFD locks conflict with POSIX locks even within one process */
	struct flock ofl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 30, .l_len = 1 };
	struct lock_arg a = { .holder = getpid() };

	enter("locks");
	setup(put_str("locked", "0123456789012345678901234567890123456789"));
	fd = open("locked", O_RDWR);
	ofd = open("locked", O_RDWR);
	if (setup(fd) < 0 || setup(ofd) < 0)
		return leave();
	succeeds(flock(fd, LOCK_EX), "flock: LOCK_EX");
	succeeds(fcntl(fd, F_SETLK, &fl), "fcntl: F_SETLK write lock on bytes 0..19");
	succeeds(fcntl(ofd, F_OFD_SETLK, &ofl), "fcntl: F_OFD_SETLK write lock on byte 30");
	a.fd = fd;
	ok(in_child(child_lock_conflicts, &a), "locks: another process sees flock, POSIX and OFD conflicts (and F_GETLK)");
	fl.l_type = F_UNLCK;
	ofl.l_type = F_UNLCK;
	setup(fcntl(fd, F_SETLK, &fl));
	setup(fcntl(ofd, F_OFD_SETLK, &ofl));
	setup(flock(fd, LOCK_UN));
	ok(in_child(child_lock_free, &a), "locks: after unlock another process gets flock and F_SETLK");
	close(fd);
	close(ofd);
	leave();
}

/* ------------------------------------------------------------ access, perms */

static int dirfd_for_child = -1;

/* as user 65534: only the permission bits decide */
static int child_as_nobody(void *p)
{
	int fd;

	(void)p;
	if (fchdir(dirfd_for_child) != 0 || setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
		return 10;
	if (access("r644", R_OK) != 0 || access("r644", W_OK) == 0 || errno != EACCES)
		return 11;
	if ((fd = open("r600", O_RDONLY)) >= 0 || errno != EACCES)
		return 12;
	if ((fd = open("r644", O_RDONLY)) < 0)
		return 13;
	close(fd);
	if (open("r644", O_WRONLY) >= 0 || errno != EACCES)
		return 14;
	if (open("newfile", O_CREAT | O_WRONLY, 0644) >= 0 || errno != EACCES)
		return 15;	/* the directory is root's 0755 */
	if (unlink("r644") == 0 || errno != EACCES)
		return 16;
	if (chmod("r644", 0777) == 0 || errno != EPERM)
		return 17;
	if (chown("mine", 0, 0) == 0 || errno != EPERM)
		return 18;
	if (chmod("mine", 0640) != 0)
		return 19;	/* the owner may chmod */
	if ((fd = open("sticky/other", O_CREAT | O_WRONLY, 0644)) < 0)
		return 20;
	close(fd);
	if (unlink("sticky/roots") == 0 || errno != EPERM)
		return 21;	/* sticky directory: not our file */
	if (unlink("sticky/other") != 0)
		return 22;
	if (access("noexec_dir/f", F_OK) == 0 || errno != EACCES)
		return 23;	/* no search permission */
	if (setxattr("r644", "user.x", "v", 1, 0) == 0 || errno != EACCES)
		return 24;
	return 0;
}

static void g_access(void)
{
	enter("access");
	setup(put_str("f", "x"));
	setup(chmod("f", 0644));
	succeeds(access("f", F_OK), "access: F_OK on an existing file");
	fails_with(ENOENT, access("missing", F_OK), "access: F_OK on a missing file fails with ENOENT");
	succeeds(access("f", R_OK | W_OK), "access: R_OK|W_OK for root");
	fails_with(EACCES, access("f", X_OK), "access: X_OK for root needs some x bit (EACCES on 0644)");
	setup(chmod("f", 0100));
	succeeds(access("f", X_OK), "access: X_OK for root with mode 0100");
	setup(chmod("f", 0));
	succeeds(access("f", R_OK | W_OK), "access: root reads and writes a 0000 file");

	/* permission checks for an ordinary user */
	setup(chmod(".", 0755));
	setup(put_str("r644", "public"));
	setup(chmod("r644", 0644));
	setup(put_str("r600", "private"));
	setup(chmod("r600", 0600));
	setup(put_str("mine", "m"));
	setup(chown("mine", 65534, 65534));
	setup(mkdir("sticky", 01777));
	setup(chmod("sticky", 01777));
	setup(put_str("sticky/roots", "r"));
	setup(mkdir("noexec_dir", 0700));
	setup(put_str("noexec_dir/f", "f"));
	dirfd_for_child = open(".", O_RDONLY | O_DIRECTORY);
	if (setup(dirfd_for_child) >= 0) {
		int status = -1;
		pid_t pid = fork();

		if (pid == 0)
			_exit(child_as_nobody(NULL));
		waitpid(pid, &status, 0);
		if (!ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			"perms: user 65534 is denied and allowed exactly as the mode bits say"))
			printf("#   child step %d failed\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		close(dirfd_for_child);
	}
	leave();
}

/* ------------------------------------------------------------ special files */

static void g_special(void)
{
	struct stat st;
	int rfd, wfd;
	char buf[16];

	enter("special");
	succeeds(mknod("fifo", S_IFIFO | 0644, 0), "mknod: a FIFO");
	ok(S_ISFIFO(st_of("fifo").st_mode), "mknod: the FIFO is S_IFIFO");
	succeeds(mkfifo("fifo2", 0600), "mkfifo: works");
	rfd = open("fifo", O_RDONLY | O_NONBLOCK);
	wfd = open("fifo", O_WRONLY | O_NONBLOCK);
	if (setup(rfd) >= 0 && setup(wfd) >= 0) {
		setup(write(wfd, "pipe", 4));
		ok(read(rfd, buf, sizeof buf) == 4 && memcmp(buf, "pipe", 4) == 0, "mknod: data passes through the FIFO");
		fstat(rfd, &st);
		eq(st.st_size, 0, "mknod: a FIFO's size stays 0");
	}
	if (rfd >= 0)
		close(rfd);
	if (wfd >= 0)
		close(wfd);
	succeeds(mknod("reg", S_IFREG | 0640, 0), "mknod: a regular file");
	st = st_of("reg");
	ok(S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0640 && st.st_size == 0, "mknod: an empty S_IFREG 0640 file");
	succeeds(mknod("chr", S_IFCHR | 0600, makedev(1, 3)), "mknod: a character device as root");
	st = st_of("chr");
	ok(S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3), "mknod: the device keeps st_rdev 1:3");
	succeeds(mknod("blk", S_IFBLK | 0600, makedev(7, 200)), "mknod: a block device as root");
	ok(S_ISBLK(st_of("blk").st_mode) && st_of("blk").st_rdev == makedev(7, 200), "mknod: the block device keeps st_rdev 7:200");
	fails_with(EEXIST, mknod("reg", S_IFIFO | 0644, 0), "mknod: on an existing name fails with EEXIST");
	leave();
}

/* ------------------------------------------------------------ set-ID bits */

enum { AS_WRITE, AS_TRUNCATE, AS_FALLOCATE, AS_CHOWN_NOOP };

struct as_user {
	uid_t uid;
	gid_t extra;		/* one supplementary group, 0 = none */
	int op;
	const char *path;
	int err;		/* the errno op must fail with; 0 = must work */
};

/* in a child: op as uid (group 65534, plus extra), as it must turn out */
static int op_as_user(void *arg)
{
	const struct as_user *u = arg;
	gid_t extra = u->extra;
	int fd = -1, r = -1, e;

	if (setgroups(u->extra ? 1 : 0, &extra) != 0 || setresgid(65534, 65534, 65534) != 0 ||
	    setresuid(u->uid, u->uid, u->uid) != 0)
		return 2;
	switch (u->op) {
	case AS_WRITE:
		if ((fd = open(u->path, O_WRONLY | O_APPEND)) >= 0)
			r = write(fd, "x", 1) == 1 ? 0 : -1;
		break;
	case AS_TRUNCATE:
		r = truncate(u->path, 1);
		break;
	case AS_FALLOCATE:
		if ((fd = open(u->path, O_WRONLY)) >= 0)
			r = fallocate(fd, 0, 0, 8192);
		break;
	case AS_CHOWN_NOOP:
		r = chown(u->path, (uid_t)-1, (gid_t)-1);
		break;
	}
	e = errno;
	if (fd >= 0)
		close(fd);
	return u->err ? !(r == -1 && e == u->err) : r != 0;
}

/* a file owned by owner:4242 with mode; returns its path */
static const char *setid_file(uid_t owner, mode_t mode)
{
	static const char *path = "f";

	unlink(path);
	setup(put_str(path, "0123456789"));
	setup(chown(path, owner, 4242));
	setup(chmod(path, mode));
	return path;
}

static mode_t mode_of(const char *path)
{
	return st_of(path).st_mode & 07777;
}

/* an unprivileged caller acts on a root-owned file of group 4242 */
static const struct setid_act {
	mode_t mode;
	int member;		/* the caller is in group 4242 */
	int op;
	mode_t after;
	const char *what;
} setid_acts[] = {
	{ 06766, 0, AS_WRITE, 0766, "a non-member's write clears S_ISUID and S_ISGID, even without group-exec" },
	{ 06766, 1, AS_WRITE, 02766, "a member's write keeps S_ISGID when group-exec is off" },
	{ 06776, 1, AS_WRITE, 0776, "with group-exec a member's write clears S_ISGID too" },
	{ 06766, 0, AS_TRUNCATE, 0766, "a non-member's truncate clears both" },
	{ 06766, 0, AS_FALLOCATE, 0766, "a non-member's fallocate clears both" },
};

/*
 * Who clears set-user-ID and set-group-ID, and when (Linux fs/attr.c and
 * fs/inode.c, as ext4 behaves): a FUSE daemon that handles the kills
 * itself (FUSE_HANDLE_KILLPRIV_V2) must reproduce all of it.
 */
static void g_setid(void)
{
	struct as_user nobody = { .uid = 65534, .path = "f" };
	int fd;

	enter("setid");

	for (size_t i = 0; i < sizeof setid_acts / sizeof setid_acts[0]; i++) {
		const struct setid_act *c = &setid_acts[i];
		struct as_user u = { .uid = 65534, .extra = c->member ? 4242 : 0, .op = c->op,
				     .path = "f" };

		setid_file(0, c->mode);
		ok(in_child(op_as_user, &u), "setid: %s (%04o): the call works", c->what, c->mode);
		eq(mode_of("f"), c->after, "setid: %s", c->what);
	}

	/* the kernel skips its check once a file is known clean: a later
	 * chmod must bring it back */
	nobody.op = AS_WRITE;
	setid_file(0, 0666);
	ok(in_child(op_as_user, &nobody), "setid: a plain file is written");
	setup(chmod("f", 06666));
	ok(in_child(op_as_user, &nobody), "setid: and written again after chmod 6666");
	eq(mode_of("f"), 0666, "setid: the second write clears the new bits");

	setid_file(0, 06777);
	setup(fd = open("f", O_WRONLY | O_APPEND));
	succeeds(write(fd, "x", 1), "setid: root writes");
	close(fd);
	eq(mode_of("f"), 06777, "setid: root's write (CAP_FSETID) keeps both bits");
	succeeds(truncate("f", 1), "setid: root truncates");
	eq(mode_of("f"), 06777, "setid: root's truncate keeps both bits");

	setid_file(0, 06755);
	succeeds(chown("f", (uid_t)-1, (gid_t)-1), "setid: chown(f, -1, -1) by root");
	eq(mode_of("f"), 0755, "setid: chown(-1, -1) clears S_ISUID and group-exec S_ISGID");
	setid_file(0, 02745);
	succeeds(chown("f", (uid_t)-1, (gid_t)-1), "setid: chown(f, -1, -1) by root, no group-exec");
	eq(mode_of("f"), 02745, "setid: root keeps S_ISGID without group-exec");
	nobody.op = AS_CHOWN_NOOP;
	nobody.err = EPERM;
	setid_file(0, 04777);
	ok(in_child(op_as_user, &nobody), "setid: chown(-1, -1) by a non-owner with bits to clear: EPERM");
	eq(mode_of("f"), 04777, "setid: and the mode stays");
	nobody.err = 0;
	setid_file(0, 0777);
	ok(in_child(op_as_user, &nobody), "setid: chown(-1, -1) by a non-owner with nothing to clear works");
	setid_file(65534, 04777);
	ok(in_child(op_as_user, &nobody), "setid: chown(-1, -1) by the owner");
	eq(mode_of("f"), 0777, "setid: the owner's chown(-1, -1) clears S_ISUID");

	setup(mkfifo("fifo", 04777));
	setup(chmod("fifo", 04777));
	succeeds(chown("fifo", 0, 0), "setid: chown of a FIFO");
	eq(mode_of("fifo"), 0777, "setid: chown clears S_ISUID on a FIFO too");
	leave();
}

/* ------------------------------------------------------------ main */

static const struct {
	const char *name;
	void (*fn)(void);
} groups[] = {
	{ "open", g_open }, { "append", g_append }, { "rw", g_rw },
	{ "truncate", g_truncate }, { "sparse", g_sparse },
	{ "fallocate", g_fallocate }, { "attr", g_attr },
	{ "times", g_times }, { "dirs", g_dirs }, { "names", g_names },
	{ "deep", g_deep }, { "rename", g_rename }, { "links", g_links },
	{ "symlinks", g_symlinks }, { "readdir", g_readdir }, { "xattr", g_xattr },
	{ "unlink_open", g_unlink_open }, { "mmap", g_mmap }, { "sync", g_sync },
	{ "locks", g_locks }, { "access", g_access }, { "special", g_special },
	{ "setid", g_setid },
};

static void usage(void)
{
	fprintf(stderr, "usage: posix_check [--keep] [--only SUBSTR] DIR\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static char dir[PATH_MAX];
	const char *only = NULL;
	bool keep = false;
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--keep"))
			keep = true;
		else if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else
			usage();
	}
	if (i != argc - 1)
		usage();
	if (!realpath(argv[i], dir)) {
		fprintf(stderr, "posix_check: %s: %s\n", argv[i], strerror(errno));
		return 2;
	}
	g_dir = dir;
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	umask(022);
	if (geteuid() != 0)
		printf("# warning: not root; root-only checks will fail\n");

	for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
		if (only && !strstr(groups[g].name, only))
			continue;
		printf("# --- %s\n", groups[g].name);
		groups[g].fn();
		umask(022);
		if (!keep) {
			char path[PATH_MAX + 64];

			snprintf(path, sizeof path, "%s/%s", g_dir, groups[g].name);
			if (rm_tree(path) != 0)
				ok(0, "cleanup: remove %s: %s", groups[g].name, strerror(errno));
		}
	}
	return tap_done();
}
