/*
 * Why this is consistent: every chunk the copied index references was
 * written to its pack before the commit that references it, and that
 * commit came before the copy's read transaction began; so packs looked at
 * after the index copy hold every referenced byte.  Sealed packs never
 * change, so a hard link is a copy.  The newest pack may still be growing
 * if the daemon did not answer the seal request: it is copied, never
 * linked, so the snapshot never changes after the fact.  Talking to the
 * daemon is the caller's: it passes the seal step in.
 */
#include "util/array.h"
#include "util/why.h"
#include "store/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "store/blobstore.h"
#include "util/fileutil.h"
#include "util/safefile.h"
#include "store/storedir.h"
#include "store/index.h"
#include "store/index_check.h"
#include "util/progress.h"
#include "store/volconf.h"
#include "store/layout.h"

struct pack_file {
	uint64_t id;
	off_t size;
};

struct pack_list {
	struct pack_file *v;
	size_t n, cap;
};

static int list_pack(void *ctx, uint64_t pack, uint64_t size)
{
	struct pack_list *l = ctx;

	if (array_reserve(&l->v, &l->cap, l->n + 1, sizeof(*l->v)) < 0)
		return -ENOMEM;
	l->v[l->n].id = pack;
	l->v[l->n].size = (off_t)size;
	l->n++;
	return 0;
}

static int list_packs(const char *store, struct pack_file **out, size_t *n)
{
	struct pack_list l = { 0 };
	int rc = blobstore_scan(store, list_pack, &l);

	if (rc < 0) {
		free(l.v);
		return rc;
	}
	*out = l.v;
	*n = l.n;
	return 0;
}

/* Copy the first len bytes of src to a new dst, keeping src's mtime so
 * that rsync sees an unchanged pack as unchanged. */
static int copy_prefix(int sdfd, const char *src, const char *dst, off_t len)
{
	char buf[1 << 16];
	struct stat st;
	off_t done = 0;
	int in, out, rc = 0;

	if ((in = safe_open(sdfd, src, O_RDONLY, 0, src, NULL, 0)) < 0)
		return in;
	if (fstat(in, &st) < 0 || (out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	while (done < len) {
		size_t want = (size_t)(len - done) < sizeof(buf) ? (size_t)(len - done) : sizeof(buf);
		ssize_t n = pread_full(in, buf, want, done);

		if (n <= 0) {
			rc = n < 0 ? (int)n : -EIO;
			break;
		}
		if ((rc = write_full(out, buf, (size_t)n)) < 0)
			break;
		done += n;
	}
	if (rc == 0 && fdatasync(out) < 0)
		rc = -errno;
	if (rc == 0) {
		struct timespec t[2] = { st.st_atim, st.st_mtim };

		futimens(out, t);
	}
	close(out);
	close(in);
	if (rc < 0)
		unlink(dst);
	return rc;
}

static int dest_prepare(const char *dest, char *why, size_t whylen)
{
	struct stat st;

	if (stat(dest, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return why_set(why, whylen, -ENOTDIR, "%s exists and is not a directory", dest);
		if (dir_is_empty(dest) == 0)
			return why_set(why, whylen, -EEXIST, "%s is not empty; a snapshot needs a new directory", dest);
		return 0;
	}
	if (mkdir(dest, 0700) < 0)
		return why_set(why, whylen, -errno, "cannot create %s: %s", dest, strerror(errno));
	return 0;
}

int snapshot_take(const char *store_arg, const char *dest, FILE *progress, snapshot_seal_fn *seal,
		  void *seal_ctx, char *why, size_t whylen)
{
	char store[PATH_MAX], path[PATH_MAX * 2], dpath[PATH_MAX * 2];
	struct pack_file *packs = NULL;
	struct volconf vc;
	struct progress prog;
	uint64_t newest = 0;
	size_t npacks = 0;
	int sdfd = -1, lock_fd = -1, rc, linked = 0, copied = 0;

	if (!realpath(store_arg, store))
		return why_set(why, whylen, -errno, "store %s: %s", store_arg, strerror(errno));
	if ((rc = volconf_load(store, &vc, why, whylen)) < 0)
		return rc;
	volconf_release(&vc);
	if ((sdfd = safe_dir_open(store, why, whylen)) < 0)
		return sdfd;
	/* what LMDB will open by name, before anything is made in dest */
	if ((rc = store_index_check(sdfd, store, why, whylen)) < 0)
		goto out;
	if ((rc = dest_prepare(dest, why, whylen)) < 0)
		goto out;

	/* compaction deletes packs only when it can take this exclusively */
	store_path(path, sizeof(path), store, STORE_SNAPSHOT_LOCK);
	lock_fd = safe_open(sdfd, STORE_SNAPSHOT_LOCK_NAME, O_RDWR | O_CREAT, 0600, path, why, whylen);
	if (lock_fd < 0) {
		rc = lock_fd;
		goto out;
	}
	{
		/* made by root in a store the daemon serves as its service
		 * account: theirs, or compaction could never take it */
		struct stat ds, ls;

		if (fstat(sdfd, &ds) == 0 && fstat(lock_fd, &ls) == 0 && ls.st_uid != ds.st_uid &&
		    fchown(lock_fd, ds.st_uid, ds.st_gid) < 0)
			syslog(LOG_WARNING, "cannot give %s to uid %u: %s", path, (unsigned)ds.st_uid,
			       strerror(errno));
	}
	if (flock(lock_fd, LOCK_SH) < 0) {
		rc = why_set(why, whylen, -errno, "cannot lock %s: %s", path, strerror(errno));
		goto out;
	}
	if (seal)
		seal(seal_ctx, store);	/* best effort: see snapshot_seal_fn */

	store_path(dpath, sizeof(dpath), dest, STORE_INDEX);
	if (mkdir(dpath, 0700) < 0) {
		rc = why_set(why, whylen, -errno, "cannot create %s: %s", dpath, strerror(errno));
		goto out;
	}
	store_path(path, sizeof(path), store, STORE_INDEX);
	/* LMDB trusts its file: a confined child checks it first, beside a
	 * daemon that may be writing (so through the reader table) */
	if ((rc = index_check_structure_flags(path, INDEX_CHECK_LIVE, 0, why, whylen)) < 0)
		goto out;
	if ((rc = index_copy_env(path, dpath)) < 0) {
		why_set(why, whylen, rc, "cannot copy the index of %s: %s", store, strerror(-rc));
		goto out;
	}
	/* LMDB makes the copy 0666 less the umask; a backup rsynced from
	 * here keeps the mode, so close it like every other file */
	store_path(dpath, sizeof(dpath), dest, STORE_INDEX_DATA);
	if (chmod(dpath, 0600) < 0) {
		rc = why_set(why, whylen, -errno, "cannot chmod %s: %s", dpath, strerror(errno));
		goto out;
	}

	if ((rc = list_packs(store, &packs, &npacks)) < 0) {
		if (rc == -ELOOP || rc == -EINVAL)
			why_set(why, whylen, rc, "packs of %s: one is a symbolic link or not a regular "
				"file; refused (run medvault fsck)", store);
		else
			why_set(why, whylen, rc, "cannot list the packs of %s: %s", store, strerror(-rc));
		goto out;
	}
	for (size_t i = 0; i < npacks; i++)
		if (packs[i].id > newest)
			newest = packs[i].id;
	store_path(dpath, sizeof(dpath), dest, STORE_PACKS);
	if (mkdir(dpath, 0700) < 0 && errno != EEXIST) {
		rc = why_set(why, whylen, -errno, "cannot create %s: %s", dpath, strerror(errno));
		goto out;
	}
	progress_start(&prog, progress, "snapshot packs", npacks);
	for (size_t i = 0; i < npacks; i++) {
		struct pack_file *p = &packs[i];

		store_pack_dir(dpath, sizeof(dpath), dest, p->id);
		if (mkdir(dpath, 0700) < 0 && errno != EEXIST) {
			rc = -errno;
			break;
		}
		snprintf(path, sizeof(path), STORE_PACKS_NAME "/%02x/%016" PRIx64 STORE_PACK_SUFFIX,
			 (unsigned)(p->id & 0xff), p->id);
		blobstore_pack_path(dest, p->id, dpath, sizeof(dpath));
		/* linkat never follows a link at path, and only a regular
		 * file of ours is linked; anything else is refused below */
		if (p->id != newest && safe_check(sdfd, path, 0, path, NULL, 0) == 0 &&
		    linkat(sdfd, path, AT_FDCWD, dpath, 0) == 0) {
			linked++;
		} else if (p->id != newest && errno == ENOENT) {
			/* deleted since listed: only dead packs go, nothing lost */
		} else {
			if ((rc = copy_prefix(sdfd, path, dpath, p->size)) < 0 && rc != -ENOENT)
				break;
			rc = 0;
			copied++;
		}
		progress_add(&prog, 1);
	}
	progress_end(&prog);
	if (rc < 0) {
		why_set(why, whylen, rc, "cannot copy packs into %s: %s", dest, strerror(-rc));
		goto out;
	}

	/* the card last: a snapshot without it is visibly unfinished */
	{
		char *text = NULL;
		size_t len;

		store_path(path, sizeof(path), store, STORE_CONF);
		store_path(dpath, sizeof(dpath), dest, STORE_LOCK);
		close(open(dpath, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
		if ((rc = safe_read_all(sdfd, STORE_CONF_NAME, 1 << 16, &text, &len, path, NULL, 0)) == 0) {
			store_path(dpath, sizeof(dpath), dest, STORE_CONF);
			rc = file_write_atomic(dpath, text, len, 0600);
		}
		free(text);
		if (rc < 0) {
			why_set(why, whylen, rc, "cannot write %s/" STORE_CONF_NAME ": %s", dest, strerror(-rc));
			goto out;
		}
	}
	store_path(dpath, sizeof(dpath), dest, STORE_PACKS);
	fsync_dir(dpath);
	fsync_dir(dest);
	fprintf(progress, "snapshot %s: %zu packs (%d linked, %d copied)\n", dest, npacks, linked, copied);
out:
	free(packs);
	if (lock_fd >= 0)
		close(lock_fd);
	if (sdfd >= 0)
		close(sdfd);
	return rc;
}
