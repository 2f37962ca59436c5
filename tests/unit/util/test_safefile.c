/*
 * test_safefile: every refusal of util/safefile.h, and that none of them
 * writes through a link or waits on a FIFO (alarm(10) turns a hang into a
 * failure): a link as the last component or on the way, a FIFO, a
 * directory, a device, a file or directory of another owner, a directory
 * writable by group or others; safe_write_atomic through a fresh name.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../../tap.h"
#include "util/safefile.h"

static char dir[64], path[PATH_MAX], why[512];

static const char *at(const char *name)
{
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static void put(const char *name, const char *text)
{
	FILE *f = fopen(at(name), "w");

	fputs(text, f);
	fclose(f);
}

static int same(const char *name, const char *text)
{
	char buf[64] = "";
	FILE *f = fopen(at(name), "r");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return !strcmp(buf, text);
}

int main(void)
{
	char *text = NULL;
	size_t len = 0;
	int dfd, fd, rc;

	alarm(10);
	snprintf(dir, sizeof(dir), "/tmp/mv-safe-XXXXXX");
	if (!mkdtemp(dir))
		return 2;
	put("victim", "precious\n");
	put("plain", "hello\n");
	mkdir(at("sub"), 0700);
	mkdir(at("real"), 0700);
	if (symlink("victim", at("link")) < 0 || symlink("real", at("dirlink")) < 0 ||
	    mkfifo(at("fifo"), 0600) < 0)
		return 2;

	dfd = safe_dir_open(dir, why, sizeof(why));
	ok(dfd >= 0, "a directory of ours, 0700, opens (%d %s)", dfd, why);

	fd = safe_open(dfd, "plain", O_RDONLY, 0, "plain", why, sizeof(why));
	ok(fd >= 0 && !(fcntl(fd, F_GETFL) & O_NONBLOCK) && (fcntl(fd, F_GETFD) & FD_CLOEXEC),
	   "a regular file opens, blocking and close-on-exec");
	close(fd);
	rc = safe_read_all(dfd, "plain", 100, &text, &len, "plain", why, sizeof(why));
	ok(rc == 0 && len == 6 && !strcmp(text, "hello\n"), "safe_read_all reads it whole");
	free(text);

	rc = safe_open(dfd, "link", O_RDWR | O_CREAT, 0600, "link", why, sizeof(why));
	ok(rc == -ELOOP && strstr(why, "symbolic link"), "a link: -ELOOP, said (%d: %s)", rc, why);
	rc = safe_open(dfd, "fifo", O_RDONLY, 0, "fifo", why, sizeof(why));
	ok(rc == -EINVAL && strstr(why, "FIFO"), "a FIFO for reading: refused, not waited on (%s)", why);
	rc = safe_open(dfd, "fifo", O_WRONLY, 0, "fifo", why, sizeof(why));
	ok(rc == -EINVAL, "a FIFO for writing: refused, not waited on (%d)", rc);
	rc = safe_open(dfd, "sub", O_RDONLY, 0, "sub", why, sizeof(why));
	ok(rc == -EISDIR && strstr(why, "a directory"), "a directory: -EISDIR (%s)", why);
	rc = safe_open(dfd, "dirlink/x", O_RDWR | O_CREAT, 0600, "dirlink/x", why, sizeof(why));
	ok(rc == -ELOOP && access(at("real/x"), F_OK) < 0, "a link on the way: refused, nothing made (%s)",
	   why);
	rc = safe_open(dfd, "../victim", O_RDONLY, 0, "../victim", why, sizeof(why));
	ok(rc < 0, "a name climbing out of the directory: refused (%d)", rc);
	rc = safe_check(dfd, "link", 1, "link", why, sizeof(why));
	ok(rc == -ELOOP, "safe_check of a link: -ELOOP");
	ok(safe_check(dfd, "none", 1, "none", why, sizeof(why)) == 0, "safe_check: absent is fine if allowed");
	ok(safe_check(dfd, "none", 0, "none", why, sizeof(why)) == -ENOENT, "and -ENOENT if not");
	if (geteuid() == 0) {
		mknod(at("null"), S_IFCHR | 0600, makedev(1, 3));
		rc = safe_open(dfd, "null", O_RDWR, 0, "null", why, sizeof(why));
		ok(rc == -EINVAL && strstr(why, "device"), "a device: refused (%s)", why);
		chown(at("plain"), 65534, 65534);
		rc = safe_open(dfd, "plain", O_RDONLY, 0, "plain", why, sizeof(why));
		ok(rc == -EPERM && strstr(why, "owned by uid 65534"), "a file of another owner: -EPERM (%s)", why);
		chown(at("sub"), 65534, 65534);
		rc = safe_subdir_open(dfd, "sub", 0, "sub", why, sizeof(why));
		ok(rc == -EPERM, "a subdirectory of another owner: -EPERM (%s)", why);
		chown(at("sub"), 0, 0);
	}
	chmod(at("sub"), 0770);
	rc = safe_subdir_open(dfd, "sub", 0, "sub", why, sizeof(why));
	ok(rc == -EPERM && strstr(why, "writable by its group"), "a group-writable subdirectory: -EPERM (%s)",
	   why);
	chmod(at("sub"), 0700);
	rc = safe_subdir_open(dfd, "dirlink", 0, "dirlink", why, sizeof(why));
	ok(rc == -ENOTDIR && strstr(why, "symbolic link"), "a subdirectory that is a link: refused (%s)", why);
	fd = safe_subdir_open(dfd, "made", 1, "made", why, sizeof(why));
	ok(fd >= 0, "safe_subdir_open makes a missing one");
	close(fd);

	/* the atomic write: a link at the name is replaced, never written through */
	ok(safe_write_atomic(dfd, "link", "new\n", 4, 0640) == 0, "safe_write_atomic over a link");
	{
		struct stat st;

		ok(lstat(at("link"), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0640 &&
		   same("link", "new\n"), "the name now holds the new bytes, mode 0640");
	}
	ok(same("victim", "precious\n"), "the link's old target is untouched");

	chmod(dir, 0777);
	rc = safe_dir_open(dir, why, sizeof(why));
	ok(rc == -EPERM && strstr(why, "writable by others"), "a world-writable directory: -EPERM (%s)", why);
	chmod(dir, 0700);
	rc = safe_dir_open(at("victim"), why, sizeof(why));
	ok(rc == -ENOTDIR, "a file as the directory: -ENOTDIR");
	close(dfd);

	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			return 2;
	}
	return tap_done();
}
