/*
 * tree_digest DIR: print a manifest of everything below DIR, one line per
 * entry, in a fixed (byte-sorted) order, so two runs can be compared with
 * diff(1) -- e.g. before unmount and after remount, to prove persistence.
 *
 * Each line holds: path, type, mode, uid, gid, nlink, size (not for
 * directories: their size is filesystem-specific), mtime and ctime with
 * nanoseconds, rdev of devices, symlink target, every xattr with its value,
 * the SHA-256 of a regular file's content, and for a file with several
 * links the first path that reaches the same inode.  atime is left out
 * (reading changes it).  Bytes outside printable ASCII in names, targets
 * and xattr names are written as %XX so every line is one line.
 *
 * Exit status: 0, or 1 if anything could not be read (reported on stderr).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <sodium.h>

static int g_errors;

/* inode -> first path seen, for hard-link groups */
struct link_seen {
	dev_t dev;
	ino_t ino;
	char *path;
};
static struct link_seen *g_links;
static size_t g_nlinks, g_caplinks;

static void fail(const char *what, const char *path)
{
	fprintf(stderr, "tree_digest: %s %s: %s\n", what, path, strerror(errno));
	g_errors++;
}

static void put_escaped(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == '%' || c == '=' || c == ',')
			printf("%%%02X", c);
		else
			putchar(c);
	}
}

static void put_hex(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		printf("%02x", p[i]);
}

static const char *first_link(const struct stat *st, const char *path)
{
	for (size_t i = 0; i < g_nlinks; i++)
		if (g_links[i].dev == st->st_dev && g_links[i].ino == st->st_ino)
			return g_links[i].path;
	if (g_nlinks == g_caplinks) {
		g_caplinks = g_caplinks ? 2 * g_caplinks : 64;
		g_links = realloc(g_links, g_caplinks * sizeof *g_links);
		if (!g_links)
			abort();
	}
	g_links[g_nlinks++] = (struct link_seen){ st->st_dev, st->st_ino, strdup(path) };
	return NULL;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the xattrs of dirfd/name, sorted by name; proc path avoids PATH_MAX */
static void put_xattrs(int dirfd, const char *name, const char *path)
{
	char via[64 + NAME_MAX], *list = NULL, **names = NULL;
	ssize_t len;
	size_t n = 0;

	snprintf(via, sizeof via, "/proc/self/fd/%d/%s", dirfd, name);
	if (!strcmp(name, "."))
		snprintf(via, sizeof via, "/proc/self/fd/%d", dirfd);
	len = llistxattr(via, NULL, 0);
	if (len < 0) {
		if (errno != ENOTSUP)
			fail("listxattr", path);
		return;
	}
	list = malloc((size_t)len + 1);
	len = llistxattr(via, list, (size_t)len);
	if (len < 0) {
		fail("listxattr", path);
		free(list);
		return;
	}
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(list + i) + 1) {
		names = realloc(names, (n + 1) * sizeof *names);
		names[n++] = list + i;
	}
	if (n)	/* qsort(NULL, 0, ...) is undefined */
		qsort(names, n, sizeof *names, cmp_name);
	printf(" xattrs=");
	for (size_t i = 0; i < n; i++) {
		unsigned char *val;
		ssize_t vlen = lgetxattr(via, names[i], NULL, 0);

		if (vlen < 0) {
			fail("getxattr", path);
			continue;
		}
		val = malloc((size_t)vlen + 1);
		vlen = lgetxattr(via, names[i], val, (size_t)vlen);
		if (vlen < 0)
			fail("getxattr", path);
		put_escaped(names[i], strlen(names[i]));
		putchar('=');
		if (vlen >= 0)
			put_hex(val, (size_t)vlen);
		if (i + 1 < n)
			putchar(',');
		free(val);
	}
	free(names);
	free(list);
}

static void put_content_hash(int dirfd, const char *name, const char *path)
{
	static unsigned char buf[1 << 20];
	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_state s;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
	ssize_t n;

	if (fd < 0) {
		fail("open", path);
		return;
	}
	crypto_hash_sha256_init(&s);
	while ((n = read(fd, buf, sizeof buf)) > 0)
		crypto_hash_sha256_update(&s, buf, (unsigned long long)n);
	if (n < 0)
		fail("read", path);
	crypto_hash_sha256_final(&s, h);
	close(fd);
	printf(" sha256=");
	put_hex(h, sizeof h);
}

static char type_char(mode_t m)
{
	return S_ISREG(m) ? 'f' : S_ISDIR(m) ? 'd' : S_ISLNK(m) ? 'l' : S_ISFIFO(m) ? 'p' :
	       S_ISCHR(m) ? 'c' : S_ISBLK(m) ? 'b' : S_ISSOCK(m) ? 's' : '?';
}

static void walk(int dirfd, const char *path);

/* one manifest line for dirfd/name (path is its display path) */
static void entry(int dirfd, const char *name, const char *path)
{
	struct stat st;
	const char *first;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		fail("stat", path);
		return;
	}
	put_escaped(path, strlen(path));
	printf(" type=%c mode=%04o uid=%u gid=%u nlink=%ju", type_char(st.st_mode),
	       (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid,
	       (uintmax_t)st.st_nlink);
	if (!S_ISDIR(st.st_mode))
		printf(" size=%jd", (intmax_t)st.st_size);
	printf(" mtime=%jd.%09ld ctime=%jd.%09ld", (intmax_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
	       (intmax_t)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
	if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
		printf(" rdev=%u:%u", major(st.st_rdev), minor(st.st_rdev));
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX + 1];
		ssize_t n = readlinkat(dirfd, name, target, sizeof target);

		if (n < 0)
			fail("readlink", path);
		printf(" target=");
		put_escaped(target, n < 0 ? 0 : (size_t)n);
	} else {
		put_xattrs(dirfd, name, path);
	}
	if (S_ISREG(st.st_mode))
		put_content_hash(dirfd, name, path);
	if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && (first = first_link(&st, path))) {
		printf(" link=");
		put_escaped(first, strlen(first));
	}
	putchar('\n');
	if (S_ISDIR(st.st_mode) && strcmp(name, ".")) {
		int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);

		if (sub < 0) {
			fail("open", path);
			return;
		}
		walk(sub, path);
		close(sub);
	}
}

/* every entry of directory dirfd (which walk closes via closedir) */
static void walk(int dirfd, const char *path)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;

	if (!d) {
		fail("opendir", path);
		if (fd >= 0)
			close(fd);
		return;
	}
	errno = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		names = realloc(names, (n + 1) * sizeof *names);
		names[n++] = strdup(e->d_name);
	}
	if (errno)
		fail("readdir", path);
	closedir(d);
	if (n)	/* qsort(NULL, 0, ...) is undefined */
		qsort(names, n, sizeof *names, cmp_name);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(path) + strlen(names[i]) + 2;
		char *child = malloc(len);

		snprintf(child, len, "%s/%s", path, names[i]);
		entry(dirfd, names[i], child);
		free(child);
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	int root;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: tree_digest DIR > MANIFEST\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 2;
	root = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (root < 0) {
		fail("open", argv[1]);
		return 1;
	}
	entry(root, ".", ".");
	walk(root, ".");
	close(root);
	fflush(stdout);
	return g_errors ? 1 : 0;
}
