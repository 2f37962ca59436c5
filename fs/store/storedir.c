#include "store/storedir.h"
#include "store/layout.h"
#include "util/safefile.h"
#include "util/why.h"
#include "util/mountinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

int store_index_check(int sdfd, const char *store, char *why, size_t whylen)
{
	char label[PATH_MAX];
	int fd, rc;

	snprintf(label, sizeof(label), "%s/" STORE_INDEX_NAME, store);
	if ((fd = safe_subdir_open(sdfd, STORE_INDEX_NAME, 0, label, why, whylen)) < 0)
		return fd;
	close(fd);
	/* LMDB opens both by name, follows links and blocks on a FIFO; its
	 * directory is ours alone (checked above), so what is checked here
	 * is what LMDB gets */
	snprintf(label, sizeof(label), "%s/%s", store, store_entry_name(STORE_INDEX_DATA));
	if ((rc = safe_check(sdfd, store_entry_name(STORE_INDEX_DATA), 1, label, why, whylen)) < 0)
		return rc;
	snprintf(label, sizeof(label), "%s/%s", store, store_entry_name(STORE_INDEX_LOCK));
	return safe_check(sdfd, store_entry_name(STORE_INDEX_LOCK), 1, label, why, whylen);
}

int store_lock_open(int sdfd, const char *store, int rdonly, int *fd, char *why, size_t whylen)
{
	char label[PATH_MAX];
	int rc;

	*fd = -1;
	store_path(label, sizeof(label), store, STORE_LOCK);
	/* made by init, so a refused open changes nothing in the store; a
	 * read-only open creates nothing (the store may be on read-only
	 * media) and takes the lock through a read-only descriptor */
	rc = safe_open(sdfd, STORE_LOCK_NAME, rdonly ? O_RDONLY : O_RDWR, 0, label, why, whylen);
	if (rc == -ENOENT && !rdonly)
		rc = safe_open(sdfd, STORE_LOCK_NAME, O_RDWR | O_CREAT, 0600, label, why, whylen);
	if (rc == -ENOENT && rdonly)
		return 0;
	if (rc < 0)
		return rc;
	*fd = rc;
	return 0;
}

/* the program pid runs is this one, or pid is exiting (its memory, and
 * with it /proc/PID/exe, goes before its files and their locks) */
static int same_program(pid_t pid)
{
	char p[64], a[PATH_MAX], b[PATH_MAX];
	ssize_t n, m;

	snprintf(p, sizeof(p), "/proc/%d/exe", (int)pid);
	n = readlink(p, a, sizeof(a) - 1);
	if (n < 0 && errno == ENOENT) {
		snprintf(p, sizeof(p), "/proc/%d", (int)pid);
		return access(p, F_OK) == 0;
	}
	m = readlink("/proc/self/exe", b, sizeof(b) - 1);
	if (n <= 0 || m <= 0)
		return 0;
	a[n] = b[m] = '\0';
	return !strcmp(a, b);
}

/* The pid of a process holding a flock on the file of fd: -1 when this
 * process holds it, 0 when none is seen (just let go: try again). */
static pid_t lock_holder(int fd)
{
	struct stat st;
	char line[256];
	pid_t found = 0;
	FILE *f;

	if (fstat(fd, &st) < 0 || !(f = fopen("/proc/locks", "re")))
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char kind[16];
		unsigned maj, min;
		unsigned long ino;
		int pid;

		/* "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters
		 * ("1: -> FLOCK ...") do not hold it */
		if (sscanf(line, "%*d: %15s %*s %*s %d %x:%x:%lu", kind, &pid, &maj, &min, &ino) != 5 ||
		    strcmp(kind, "FLOCK"))
			continue;
		if (ino == (unsigned long)st.st_ino && maj == major(st.st_dev) &&
		    min == minor(st.st_dev) && pid > 0)
			found = pid == getpid() ? -1 : pid;
	}
	fclose(f);
	return found;
}

static int try_lock(int fd, int exclusive)
{
	while (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	}
	return 0;
}

int store_lock_take(int fd, const char *store, int exclusive)
{
	struct timespec start, now;
	pid_t holder;
	int rc, said = 0;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while ((rc = try_lock(fd, exclusive)) == -EBUSY) {
		/*
		 * Waited for only while it looks like a daemon whose mount is
		 * gone: umount(8) returns as soon as the kernel lets go, and
		 * the daemon then writes everything back before it lets go of
		 * the store.  Anything else holding it is in use now.
		 */
		holder = lock_holder(fd);
		if (holder < 0 || (holder > 0 && !same_program(holder)) || mount_of_source("fuse.medvault", store))
			return -EBUSY;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= STORE_LOCK_WAIT_S)
			return -EBUSY;
		if (!said && holder > 0) {
			fprintf(stderr, "medvault: waiting for medvault process %d to release store %s "
				"(up to %d s)\n", (int)holder, store, STORE_LOCK_WAIT_S);
			said = 1;
		}
		usleep(50000);
	}
	return rc;
}
