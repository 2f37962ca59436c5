#include "util/why.h"
#include "store/volconf.h"
#include "store/layout.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto/aead.h"
#include "util/fileutil.h"
#include "util/safefile.h"
#include "crypto/secure.h"
#include "crypto/volkeys.h"

#define VOLCONF_MAX 16384

void volconf_uuid_hex(const uint8_t uuid[16], char out[33])
{
	secure_hex(out, uuid, 16);
}

static int parse_line(struct volconf *vc, const char *key, const char *val, unsigned *seen)
{
	char *end;
	unsigned long long v;

	if (!strcmp(key, "format")) {
		v = strtoull(val, &end, 10);
		if (*end || v == 0 || v > 1000)
			return -EBADMSG;
		vc->format = (unsigned)v;
		*seen |= 1;
	} else if (!strcmp(key, "uuid")) {
		if (strlen(val) != 32 || secure_unhex(vc->uuid, 16, val, 32) < 0)
			return -EBADMSG;
		*seen |= 2;
	} else if (!strcmp(key, "cipher")) {
		enum aead_cipher c;

		if (aead_cipher_parse(val, &c) < 0)
			return -EBADMSG;
		vc->cipher = c;
		*seen |= 4;
	} else if (!strcmp(key, "chunk_size")) {
		v = strtoull(val, &end, 10);
		if (*end || v < 4096 || v > (16u << 20) || (v & (v - 1)))
			return -EBADMSG;
		vc->chunk_size = (uint32_t)v;
		*seen |= 8;
	} else if (!strcmp(key, "pack_size")) {
		v = strtoull(val, &end, 10);
		if (*end || v < (1u << 20) || v > (1ull << 34))
			return -EBADMSG;
		vc->pack_size = v;
		*seen |= 16;
	} else if (!strcmp(key, "created")) {
		vc->created = strtoll(val, &end, 10);
		if (*end)
			return -EBADMSG;
		*seen |= 32;
	}
	/* unknown keys from a newer minor revision are authenticated but ignored */
	return 0;
}

int volconf_load(const char *store, struct volconf *vc, char *why, size_t whylen)
{
	char path[PATH_MAX];
	char *text = NULL, *line, *save = NULL, *copy = NULL;
	size_t len;
	unsigned seen = 0;
	int rc, dfd, have_mac = 0;

	memset(vc, 0, sizeof(*vc));
	if ((dfd = safe_dir_open(store, why, whylen)) < 0)
		return dfd;
	store_path(path, sizeof(path), store, STORE_CONF);
	rc = safe_read_all(dfd, STORE_CONF_NAME, VOLCONF_MAX, &text, &len, path, why, whylen);
	close(dfd);
	if (rc == -ENOENT)
		return why_set(why, whylen, rc, "%s is not a medvault store (no " STORE_CONF_NAME ")", store);
	if (rc < 0)
		return rc;
	if (strlen(text) != len) {
		rc = -EBADMSG;
		goto bad;
	}
	copy = strdup(text);
	if (!copy) {
		rc = -ENOMEM;
		goto out;
	}
	/* a newer format may use fields this build cannot parse: say so
	 * rather than calling the store corrupt */
	{
		const char *f = strstr(text, "\nformat=");

		if (f && strtoul(f + 8, NULL, 10) > VOLCONF_FORMAT) {
			rc = -EPROTONOSUPPORT;
			why_set(why, whylen, rc, "%s uses a newer medvault format; upgrade medvault to mount it", store);
			goto out;
		}
	}
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq;

		if (line[0] == '#' || line[0] == '\0')
			continue;
		if (have_mac) {	/* nothing may follow the mac */
			rc = -EBADMSG;
			goto bad;
		}
		eq = strchr(line, '=');
		if (!eq) {
			rc = -EBADMSG;
			goto bad;
		}
		*eq = '\0';
		if (!strcmp(line, "mac")) {
			if (strlen(eq + 1) != 64 || secure_unhex(vc->mac, 32, eq + 1, 64) < 0) {
				rc = -EBADMSG;
				goto bad;
			}
			vc->text_len = (size_t)(line - copy);
			have_mac = 1;
			continue;
		}
		if ((rc = parse_line(vc, line, eq + 1, &seen)) < 0)
			goto bad;
	}
	if (!have_mac || (seen & 1) == 0) {
		rc = -EBADMSG;
		goto bad;
	}
	if (vc->format > VOLCONF_FORMAT) {
		rc = -EPROTONOSUPPORT;
		why_set(why, whylen, rc, "%s uses a newer medvault format; upgrade medvault to mount it", store);
		goto out;
	}
	if (seen != 63) {
		rc = -EBADMSG;
		goto bad;
	}
	vc->text = text;
	text = NULL;
	rc = 0;
	goto out;
bad:
	why_set(why, whylen, rc, "%s/" STORE_CONF_NAME " is corrupt", store);
out:
	free(copy);
	free(text);
	return rc;
}

int volconf_verify(const struct volconf *vc, const uint8_t *mk)
{
	uint8_t mac[32];
	int rc;

	volkeys_conf_mac(mk, vc->text, vc->text_len, mac);
	rc = secure_memcmp(mac, vc->mac, 32) == 0 ? 0 : -EBADMSG;
	secure_wipe(mac, sizeof(mac));
	return rc;
}

int volconf_save(const char *store, struct volconf *vc, const uint8_t *mk)
{
	char uuid[33], machex[65];
	char buf[2048];
	uint8_t mac[32];
	int n, m, dfd, rc;

	volconf_uuid_hex(vc->uuid, uuid);
	n = snprintf(buf, sizeof(buf),
		     "# medvault store; no secrets here. Authenticated: do not edit.\n"
		     "format=%u\nuuid=%s\ncipher=%s\nchunk_size=%" PRIu32 "\n"
		     "pack_size=%" PRIu64 "\ncreated=%" PRId64 "\n",
		     vc->format, uuid, aead_cipher_name(vc->cipher), vc->chunk_size,
		     vc->pack_size, vc->created);
	volkeys_conf_mac(mk, buf, (size_t)n, mac);
	secure_hex(machex, mac, 32);
	m = snprintf(buf + n, sizeof(buf) - (size_t)n, "mac=%s\n", machex);
	if ((dfd = safe_dir_open(store, NULL, 0)) < 0)
		return dfd;
	rc = safe_write_atomic(dfd, STORE_CONF_NAME, buf, (size_t)(n + m), 0600);
	close(dfd);
	return rc;
}

void volconf_release(struct volconf *vc)
{
	free(vc->text);
	vc->text = NULL;
}
