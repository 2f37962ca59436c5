/*
 * The rollback anchor file beside the keystore: encoding, a load that
 * trusts nothing it has not authenticated, and a crash-safe replace.
 * Layout and rules: include/store/anchor.h, docs/FORMAT.md.
 */
#include "store/anchor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/secure.h"
#include "store/layout.h"
#include "store/volconf.h"
#include "util/byteorder.h"
#include "util/fileutil.h"
#include "util/safefile.h"

#define TMP_TRIES 8

static void uuid_hex(const uint8_t uuid[ANCHOR_UUID_LEN], char out[33])
{
	volconf_uuid_hex(uuid, out);
}

void anchor_encode(const struct volkeys *vk, const struct anchor *a, uint8_t out[ANCHOR_LEN])
{
	memcpy(out, ANCHOR_MAGIC, 8);
	memcpy(out + 8, a->uuid, ANCHOR_UUID_LEN);
	be64_put(out + 24, a->counter);
	memcpy(out + 32, a->root_mac, INDEX_ROOT_MAC);
	memcpy(out + 48, a->digest, ANCHOR_DIGEST_LEN);
	be32_put(out + 80, a->flags);
	be64_put(out + 84, (uint64_t)a->time);
	volkeys_anchor_mac(vk, out, ANCHOR_MAC_OFF, out + ANCHOR_MAC_OFF);
}

int anchor_decode(const struct volkeys *vk, const uint8_t uuid[ANCHOR_UUID_LEN],
		  const uint8_t *buf, size_t len, struct anchor *out)
{
	uint8_t mac[32];
	int bad;

	if (len != ANCHOR_LEN || memcmp(buf, ANCHOR_MAGIC, 8))
		return -EBADMSG;
	/* nothing is read from the fields before the MAC holds */
	volkeys_anchor_mac(vk, buf, ANCHOR_MAC_OFF, mac);
	bad = secure_memcmp(mac, buf + ANCHOR_MAC_OFF, sizeof(mac));
	secure_wipe(mac, sizeof(mac));
	if (bad || memcmp(buf + 8, uuid, ANCHOR_UUID_LEN))
		return -EBADMSG;
	memcpy(out->uuid, buf + 8, ANCHOR_UUID_LEN);
	out->counter = be64_get(buf + 24);
	memcpy(out->root_mac, buf + 32, INDEX_ROOT_MAC);
	memcpy(out->digest, buf + 48, ANCHOR_DIGEST_LEN);
	out->flags = be32_get(buf + 80);
	out->time = (int64_t)be64_get(buf + 84);
	return 0;
}

int anchor_path(char *buf, size_t len, const char *ksdir, const uint8_t uuid[ANCHOR_UUID_LEN])
{
	char hex[33];

	uuid_hex(uuid, hex);
	return keystore_anchor_path(buf, len, ksdir, hex);
}

static int anchor_name(char *buf, size_t len, const uint8_t uuid[ANCHOR_UUID_LEN])
{
	char hex[33];
	int n;

	uuid_hex(uuid, hex);
	n = snprintf(buf, len, "%s" KEYSTORE_ANCHOR_SUFFIX, hex);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* KSDIR itself is the operator's choice, as for the keystore: it may be
 * a link; only the names inside it are never followed.  Its owner and
 * mode are checked as the keystore's are (safefile.h). */
static int ksdir_open(const char *ksdir)
{
	return safe_private_dir_open(ksdir, NULL, 0);
}

int anchor_load(const char *ksdir, const struct volkeys *vk, const uint8_t uuid[ANCHOR_UUID_LEN],
		struct anchor *out)
{
	uint8_t buf[ANCHOR_LEN + 1];
	char name[64];
	struct stat st;
	ssize_t n;
	int dfd, fd = -1, rc;

	if ((rc = anchor_name(name, sizeof(name), uuid)) < 0)
		return rc;
	if ((dfd = ksdir_open(ksdir)) < 0)
		return dfd;
	/* O_NONBLOCK: a FIFO planted here opens at once (and is refused
	 * below) instead of waiting for a writer; O_NOCTTY for a tty */
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno == ELOOP ? -EBADMSG : -errno;	/* a link planted at the name */
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size != ANCHOR_LEN) {
		rc = -EBADMSG;
		goto out;
	}
	/* one byte more than expected: a file that grew since the fstat */
	n = read_full(fd, buf, sizeof(buf));
	if (n < 0) {
		rc = (int)n;
		goto out;
	}
	rc = anchor_decode(vk, uuid, buf, (size_t)n, out);
out:
	if (fd >= 0)
		close(fd);
	close(dfd);
	return rc;
}

/* write buf as tmpname in dfd, durably, then rename it to name */
static int save_at(int dfd, const char *tmpname, const char *name, const uint8_t *buf, size_t len)
{
	int fd, rc = 0;

	fd = openat(dfd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) < 0 || (rc = write_full(fd, buf, len)) < 0 || fsync(fd) < 0)
		rc = rc ? rc : -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	/* renameat replaces whatever is at name, a planted link included,
	 * without following it */
	if (rc == 0 && renameat(dfd, tmpname, dfd, name) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(dfd, tmpname, 0);
		return rc;
	}
	return fsync(dfd) < 0 ? -errno : 0;
}

static int save_encoded(const char *ksdir, const char *tmpname, const uint8_t buf[ANCHOR_LEN])
{
	char name[64], tmp[96], hex[33];
	int dfd, rc;

	if ((rc = anchor_name(name, sizeof(name), buf + 8)) < 0)
		return rc;
	if ((dfd = ksdir_open(ksdir)) < 0)
		return dfd;
	if (tmpname) {
		rc = save_at(dfd, tmpname, name, buf, ANCHOR_LEN);
	} else {
		uuid_hex(buf + 8, hex);
		rc = -EEXIST;
		/* an unpredictable name: nobody can plant anything there in
		 * advance, and O_EXCL|O_NOFOLLOW refuse whatever is there */
		for (int i = 0; i < TMP_TRIES && rc == -EEXIST; i++) {
			snprintf(tmp, sizeof(tmp), ".%s" KEYSTORE_ANCHOR_SUFFIX ".%016llx", hex,
				 (unsigned long long)secure_random_u64());
			rc = save_at(dfd, tmp, name, buf, ANCHOR_LEN);
		}
	}
	close(dfd);
	return rc;
}

static int save(const char *ksdir, const char *tmpname, const struct volkeys *vk,
		const struct anchor *a)
{
	uint8_t buf[ANCHOR_LEN];

	anchor_encode(vk, a, buf);
	return save_encoded(ksdir, tmpname, buf);
}

int anchor_save_encoded(const char *ksdir, const uint8_t buf[ANCHOR_LEN])
{
	if (memcmp(buf, ANCHOR_MAGIC, 8))
		return -EBADMSG;
	return save_encoded(ksdir, NULL, buf);
}

int anchor_save(const char *ksdir, const struct volkeys *vk, const struct anchor *a)
{
	return save(ksdir, NULL, vk, a);
}

int anchor_save_via(const char *ksdir, const char *tmpname, const struct volkeys *vk,
		    const struct anchor *a)
{
	return save(ksdir, tmpname, vk, a);
}

enum anchor_cmp anchor_compare(const struct anchor *a, uint64_t counter,
			       const uint8_t mac[INDEX_ROOT_MAC], uint64_t *behind)
{
	if (behind)
		*behind = 0;
	if (counter > a->counter)
		return ANCHOR_AHEAD;
	if (counter < a->counter) {
		if (behind)
			*behind = a->counter - counter;
		return ANCHOR_BEHIND;
	}
	return memcmp(mac, a->root_mac, INDEX_ROOT_MAC) ? ANCHOR_FORKED : ANCHOR_SAME;
}

const char *anchor_cmp_name(enum anchor_cmp c)
{
	switch (c) {
	case ANCHOR_SAME:
		return "same";
	case ANCHOR_AHEAD:
		return "ahead";
	case ANCHOR_BEHIND:
		return "behind";
	case ANCHOR_FORKED:
		return "forked";
	}
	return "?";
}
