/*
 * audit_forge DIR KEYSTORE PASSPHRASE-FILE COUNT [fake-token]: what someone
 * holding only a passphrase slot can do to a trail.  TEST ONLY (t_90_audit):
 * it unlocks MK with the passphrase, cuts the trail after record COUNT-1
 * (later files removed), and writes a checkpoint for COUNT records sealed
 * with the MK-derived audit key, exactly what a trail sealed by MK alone
 * accepts; the token-sealed checkpoint kept aside is removed.  With
 * fake-token, the checkpoint claims a token seal (version 2) with a MAC
 * made up without the token.  Built under build/tools only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "audit/audit.h"
#include "crypto/aead.h"
#include "crypto/keystore.h"
#include "crypto/volkeys.h"

struct stop {
	uint64_t last;
};

static int stop_at(void *arg, const struct audit_record *r)
{
	return r->seq == ((struct stop *)arg)->last;
}

static int fake_mac(void *arg, const uint8_t *msg, size_t len, uint8_t out[AUDIT_TMAC_LEN])
{
	(void)arg;
	/* what a forger can make: any MAC, just not the token's */
	crypto_generichash(out, AUDIT_TMAC_LEN, msg, len, NULL, 0);
	return 0;
}

int main(int argc, char **argv)
{
	struct key_opts ko = { 0 };
	struct volkeys *vk = NULL;
	struct aead *k = NULL;
	struct audit_walk w;
	struct audit_problem p = { 0 };
	struct audit_checkpoint cp;
	struct audit_header *h = NULL;
	struct stop st;
	char **names = NULL, why[512] = "";
	uint8_t *mk = NULL, uuid[AUDIT_UUID_LEN], buf[AUDIT_CP_MAX];
	size_t n = 0, i;
	int dfd, len, fd, rc = 1;

	if (argc < 5 || argc > 6 || (argc == 6 && strcmp(argv[5], "fake-token"))) {
		fprintf(stderr, "usage: audit_forge DIR KEYSTORE PASSPHRASE-FILE COUNT [fake-token]\n");
		return 2;
	}
	st.last = strtoull(argv[4], NULL, 10) - 1;
	ko.passphrase_file = argv[3];
	if (sodium_init() < 0 || audit_dir_uuid(argv[1], uuid, why, sizeof(why)) < 0 ||
	    keystore_unlock(argv[2], uuid, &ko, &mk, why, sizeof(why)) < 0 ||
	    volkeys_derive(&vk, mk, AEAD_XCHACHA20POLY1305) < 0 ||
	    aead_new(&k, AEAD_XCHACHA20POLY1305, volkeys_audit_key(vk)) < 0) {
		fprintf(stderr, "audit_forge: %s\n", why[0] ? why : "cannot set up the keys");
		goto out;
	}
	dfd = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (dfd < 0 || audit_list_files(dfd, &names, &h, &n) < 0 || n == 0) {
		fprintf(stderr, "audit_forge: cannot list %s\n", argv[1]);
		goto out;
	}
	memset(&w, 0, sizeof(w));
	for (i = 0; i < n; i++) {
		if (audit_walk_file(dfd, names[i], k, uuid, i == 0, 0, NULL, &w, stop_at, &st, &p) < 0 ||
		    p.found) {
			fprintf(stderr, "audit_forge: %s: %s\n", names[i], p.what);
			goto out;
		}
		if (w.next_seq == st.last + 1)
			break;
	}
	if (i == n) {
		fprintf(stderr, "audit_forge: the trail has no record %" PRIu64 "\n", st.last);
		goto out;
	}
	/* cut the records after it, and the files after that */
	fd = openat(dfd, names[i], O_WRONLY);
	if (fd < 0 || ftruncate(fd, (off_t)w.good_len) < 0) {
		perror("audit_forge: truncate");
		goto out;
	}
	close(fd);
	for (size_t j = i + 1; j < n; j++)
		unlinkat(dfd, names[j], 0);
	unlinkat(dfd, AUDIT_CP_TOKEN_NAME, 0);
	memset(&cp, 0, sizeof(cp));
	memcpy(cp.uuid, uuid, AUDIT_UUID_LEN);
	cp.base_seq = h[0].first_seq;
	cp.next_seq = st.last + 1;
	memcpy(cp.head, w.head, AUDIT_HASH_LEN);
	cp.time_us = 0;
	cp.file_no = w.file_no;
	len = audit_cp_seal(k, &cp, argc == 6 ? fake_mac : NULL, NULL, buf);
	fd = openat(dfd, AUDIT_CP_NAME, O_WRONLY | O_TRUNC);
	if (len < 0 || fd < 0 || write(fd, buf, (size_t)len) != len) {
		perror("audit_forge: checkpoint");
		goto out;
	}
	close(fd);
	printf("forged: %" PRIu64 " records, checkpoint of %d bytes\n", cp.next_seq, len);
	rc = 0;
out:
	audit_free_list(names, h, n);
	aead_free(k);
	volkeys_free(vk);
	keystore_key_free(mk);
	return rc;
}
