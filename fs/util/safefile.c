#include "util/safefile.h"
#include "util/fileutil.h"
#include "util/why.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_once_t service_once = PTHREAD_ONCE_INIT;
static uid_t service_uid = (uid_t)-1;
static int service_set;

uid_t safe_owner(void)
{
	return geteuid();
}

static void service_lookup(void)
{
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (!service_set && getpwnam_r(SAFE_SERVICE_USER, &pw, buf, sizeof(buf), &res) == 0 && res &&
	    res->pw_uid != 0)
		service_uid = res->pw_uid;
}

void safe_set_service(uid_t uid)
{
	service_set = 1;
	service_uid = uid;
}

/* the store's side: us, or the service account that serves it */
static int owner_ok(uid_t uid)
{
	if (uid == safe_owner())
		return 1;
	pthread_once(&service_once, service_lookup);
	return service_uid != (uid_t)-1 && uid == service_uid;
}

static const char *kind_of(mode_t m)
{
	if (S_ISLNK(m))
		return "a symbolic link";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	return "a regular file";
}

static int kind_errno(mode_t m)
{
	return S_ISLNK(m) ? -ELOOP : S_ISDIR(m) ? -EISDIR : -EINVAL;
}

/* the owner and mode rule for a directory st: 0 or -EPERM with why;
 * private: ours only, never the service account's (KSDIR) */
static int dir_rule(const struct stat *st, int private, const char *label, char *why, size_t whylen)
{
	if (!S_ISDIR(st->st_mode))
		return why_set(why, whylen, -ENOTDIR, "%s is %s, not a directory; refused", label,
			       kind_of(st->st_mode));
	if (private ? st->st_uid != safe_owner() : !owner_ok(st->st_uid))
		return why_set(why, whylen, -EPERM, "%s is owned by uid %u, not uid %u; refused", label,
			       (unsigned)st->st_uid, (unsigned)safe_owner());
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return why_set(why, whylen, -EPERM,
			       "%s is writable by %s (mode %04o); refused (chmod go-w it)", label,
			       st->st_mode & S_IWOTH ? "others" : "its group",
			       (unsigned)(st->st_mode & 07777));
	return 0;
}

/*
 * A file is ours or the service account's: a snapshot's hard links to the
 * packs keep the owner of the store's copies in a directory of root's.
 * In KSDIR (root's only, not writable by others) only root can have put
 * one there.
 */
static int file_rule(const struct stat *st, const char *label, char *why, size_t whylen)
{
	if (!S_ISREG(st->st_mode))
		return why_set(why, whylen, kind_errno(st->st_mode),
			       "%s is %s, not a regular file; refused", label, kind_of(st->st_mode));
	if (!owner_ok(st->st_uid))
		return why_set(why, whylen, -EPERM, "%s is owned by uid %u, not uid %u; refused", label,
			       (unsigned)st->st_uid, (unsigned)safe_owner());
	return 0;
}

/*
 * openat2 beneath dfd with no link anywhere in rel; openat with
 * O_NOFOLLOW (the last component only) where the kernel lacks openat2.
 */
static int open_beneath(int dfd, const char *rel, int flags, mode_t mode)
{
	struct open_how how = {
		.flags = (unsigned long long)(flags | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY),
		.mode = flags & (O_CREAT | O_TMPFILE) ? mode : 0,
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH,
	};
	long fd;

	do
		fd = syscall(SYS_openat2, dfd, rel, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN);
	if (fd < 0 && errno == ENOSYS)
		fd = openat(dfd, rel, (int)how.flags, (mode_t)how.mode);
	return fd < 0 ? -errno : (int)fd;
}

/* Name what is at rel when an open of it failed, for the one line. */
static int explain(int dfd, const char *rel, int rc, const char *label, char *why, size_t whylen)
{
	struct stat st;

	if (fstatat(dfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode))
		return why_set(why, whylen, kind_errno(st.st_mode), "%s is %s, not a regular file; refused",
			       label, kind_of(st.st_mode));
	if (rc == -ELOOP || rc == -EXDEV)
		return why_set(why, whylen, -ELOOP, "%s: a symbolic link on the way; refused", label);
	return why_set(why, whylen, rc, "cannot open %s: %s", label, strerror(-rc));
}

static int dir_open(const char *path, int private, char *why, size_t whylen)
{
	struct stat st;
	int fd, rc;

	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		if (rc == -ENOTDIR)
			return why_set(why, whylen, rc, "%s is not a directory", path);
		return why_set(why, whylen, rc, "%s: %s", path, strerror(-rc));
	}
	if (fstat(fd, &st) < 0) {
		rc = why_set(why, whylen, -errno, "%s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	if ((rc = dir_rule(&st, private, path, why, whylen)) < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int safe_dir_open(const char *path, char *why, size_t whylen)
{
	return dir_open(path, 0, why, whylen);
}

int safe_private_dir_open(const char *path, char *why, size_t whylen)
{
	return dir_open(path, 1, why, whylen);
}

int safe_subdir_open(int dfd, const char *rel, int create, const char *label,
		     char *why, size_t whylen)
{
	struct stat st;
	int fd, rc;

	if (create && mkdirat(dfd, rel, 0700) < 0 && errno != EEXIST)
		return why_set(why, whylen, -errno, "cannot create %s: %s", label, strerror(errno));
	fd = open_beneath(dfd, rel, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0) {
		if (fd == -ENOTDIR || fd == -ELOOP || fd == -EXDEV) {
			if (fstatat(dfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode))
				return why_set(why, whylen, -ENOTDIR, "%s is %s, not a directory; refused",
					       label, kind_of(st.st_mode));
			return why_set(why, whylen, -ELOOP, "%s: a symbolic link on the way; refused", label);
		}
		return why_set(why, whylen, fd, "cannot open %s: %s", label, strerror(-fd));
	}
	if (fstat(fd, &st) < 0) {
		rc = why_set(why, whylen, -errno, "%s: %s", label, strerror(errno));
		close(fd);
		return rc;
	}
	if ((rc = dir_rule(&st, 0, label, why, whylen)) < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int safe_check_fd(int fd, const char *label, char *why, size_t whylen)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return why_set(why, whylen, -errno, "%s: %s", label, strerror(errno));
	return file_rule(&st, label, why, whylen);
}

int safe_open(int dfd, const char *rel, int flags, mode_t mode, const char *label,
	      char *why, size_t whylen)
{
	struct stat st;
	int fd, rc;

	/* a FIFO, socket or device is refused without being opened at all
	 * when it is already there; the fstat below catches one planted in
	 * between (opened O_NONBLOCK, so never waited on) */
	if (fstatat(dfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode))
		return why_set(why, whylen, kind_errno(st.st_mode), "%s is %s, not a regular file; refused",
			       label, kind_of(st.st_mode));
	fd = open_beneath(dfd, rel, (flags & ~O_TRUNC) | O_NONBLOCK, mode);
	if (fd < 0)
		return explain(dfd, rel, fd, label, why, whylen);
	if ((rc = safe_check_fd(fd, label, why, whylen)) < 0 ||
	    (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 &&
	     (rc = why_set(why, whylen, -errno, "%s: %s", label, strerror(errno))) < 0)) {
		close(fd);
		return rc;
	}
	return fd;
}

int safe_check(int dfd, const char *rel, int absent_ok, const char *label,
	       char *why, size_t whylen)
{
	struct stat st;

	if (fstatat(dfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT && absent_ok)
			return 0;
		return why_set(why, whylen, -errno, "%s: %s", label, strerror(errno));
	}
	return file_rule(&st, label, why, whylen);
}

int safe_read_all(int dfd, const char *rel, size_t max, char **out, size_t *len,
		  const char *label, char *why, size_t whylen)
{
	int fd, rc;

	*out = NULL;
	if ((fd = safe_open(dfd, rel, O_RDONLY, 0, label, why, whylen)) < 0)
		return fd;
	rc = fd_read_all(fd, max, out, len);
	close(fd);
	if (rc < 0)
		why_set(why, whylen, rc, "cannot read %s: %s", label, strerror(-rc));
	return rc;
}

int safe_write_atomic(int dfd, const char *name, const void *buf, size_t len, mode_t mode)
{
	char tmp[256];
	uint8_t r[8];
	int fd, rc;

	/* unpredictable, so nobody can have a link waiting under it */
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -EIO;
	if (snprintf(tmp, sizeof(tmp), ".%s.tmp.%02x%02x%02x%02x%02x%02x%02x%02x", name, r[0], r[1], r[2],
		     r[3], r[4], r[5], r[6], r[7]) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	rc = write_full(fd, buf, len);
	if (rc == 0 && fchmod(fd, mode) < 0)	/* the umask does not decide */
		rc = -errno;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	/* renameat replaces whatever is at name, a planted link included,
	 * and never writes through it */
	if (rc == 0 && renameat(dfd, tmp, dfd, name) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(dfd, tmp, 0);
		return rc;
	}
	return fsync(dfd) < 0 ? -errno : 0;
}

int file_write_atomic(const char *path, const void *buf, size_t len, mode_t mode)
{
	char dir[PATH_MAX], name[PATH_MAX];
	int dfd, rc;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	snprintf(name, sizeof(name), "%s", path);
	/* the temporary's name is unpredictable and made O_EXCL (safefile.h) */
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	rc = safe_write_atomic(dfd, basename(name), buf, len, mode);
	close(dfd);
	return rc;
}
