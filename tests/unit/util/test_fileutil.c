/*
 * test_fileutil: the full read/write loops (through a pipe, where short
 * reads and writes really happen), file_read_all's refusals, the
 * big-endian encoders and the growable array.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../tap.h"
#include "util/array.h"
#include "util/byteorder.h"
#include "util/fileutil.h"
#include "util/safefile.h"

static void test_loops(const char *dir)
{
	enum { BIG = 1 << 20 };	/* more than a pipe holds: the writer blocks and resumes */
	uint8_t *out = malloc(BIG), *in = malloc(BIG + 1);
	int pfd[2];
	pid_t pid;
	ssize_t n;

	for (size_t i = 0; i < BIG; i++)
		out[i] = (uint8_t)(i * 31 + 7);
	ok(pipe(pfd) == 0, "pipe");
	pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		_exit(write_full(pfd[1], out, BIG) == 0 ? 0 : 1);
	}
	close(pfd[1]);
	n = read_full(pfd[0], in, BIG + 1);
	close(pfd[0]);
	int st = 0;

	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "write_full wrote 1 MiB into a pipe");
	ok(n == BIG && !memcmp(in, out, BIG), "read_full read it back whole, short only at EOF");
	ok(read_full(-1, in, 1) == -EBADF && write_full(-1, out, 1) == -EBADF, "-EBADF from both");

	char path[PATH_MAX], *text = NULL;
	size_t len = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/f", dir);
	ok(file_write_atomic(path, out, 1000, 0600) == 0, "file_write_atomic");
	fd = open(path, O_RDWR);
	ok(pwrite_full(fd, "xyz", 3, 998) == 0, "pwrite_full past the end");
	ok(pread_full(fd, in, 10, 995) == 6 && !memcmp(in + 3, "xyz", 3), "pread_full short at EOF");
	close(fd);
	ok(file_read_all(path, 1001, &text, &len) == 0 && len == 1001 && text[len] == '\0',
	   "file_read_all: whole file, NUL added");
	free(text);
	ok(file_read_all(path, 1000, &text, &len) == -EFBIG && !text, "file_read_all over max => -EFBIG");
	ok(file_read_all(dir, 1000, &text, &len) == -EINVAL, "file_read_all of a directory => -EINVAL");
	snprintf(path, sizeof(path), "%s/none", dir);
	ok(file_read_all(path, 1000, &text, &len) == -ENOENT, "file_read_all of nothing => -ENOENT");
	free(out);
	free(in);
}

static void test_byteorder(void)
{
	uint8_t b[8];

	be64_put(b, 0x0102030405060708ull);
	ok(b[0] == 1 && b[7] == 8 && be64_get(b) == 0x0102030405060708ull, "be64 most significant first");
	be32_put(b, 0xa1b2c3d4u);
	ok(b[0] == 0xa1 && b[3] == 0xd4 && be32_get(b) == 0xa1b2c3d4u, "be32");
	be16_put(b, 0xbeef);
	ok(b[0] == 0xbe && b[1] == 0xef && be16_get(b) == 0xbeef, "be16");
	be_put(b, 0x123456, 3);
	ok(b[0] == 0x12 && b[2] == 0x56 && be_get(b, 3) == 0x123456, "be_put/be_get of 3 bytes");
	be_put(b, 0xffff01, 1);
	ok(b[0] == 0x01, "be_put keeps the low bytes");
}

static void test_array(void)
{
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;
	int good = 1;

	for (uint64_t i = 0; i < 10000; i++) {
		if (array_reserve(&v, &cap, n + 1, sizeof(*v)) < 0) {
			good = 0;
			break;
		}
		v[n++] = i;
	}
	for (size_t i = 0; good && i < n; i++)
		good = v[i] == i;
	ok(good && n == 10000 && cap >= n && cap < 2 * n + 16, "10000 appends, capacity doubles");
	size_t old = cap;

	ok(array_reserve(&v, &cap, 5, sizeof(*v)) == 0 && cap == old, "no shrink, no move when room");
	ok(array_reserve(&v, &cap, SIZE_MAX / 4, sizeof(*v)) == -ENOMEM && cap == old && v[9999] == 9999,
	   "overflowing size => -ENOMEM, array untouched");
	free(v);
}

int main(void)
{
	char dir[] = "/tmp/mvutil.XXXXXX";
	char cmd[64];

	if (!mkdtemp(dir))
		return 2;
	test_loops(dir);
	test_byteorder();
	test_array();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		ok(0, "cleanup");
	return tap_done();
}
