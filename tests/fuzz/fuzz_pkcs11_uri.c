/*
 * fuzz_pkcs11_uri: the RFC 7512 parsing (p11-kit's p11_kit_uri_parse and
 * the checks around it in crypto/pkcs11_uri.c), which reads
 * --pkcs11-uri from the command line of a root-run daemon, and the key
 * options check and merge built on it (key_opts_check, ks_source_resolve).
 *
 * Input: the URI text (a NUL is added; an embedded NUL cuts it, as argv
 * would).
 */
#include <errno.h>
#include <string.h>

#include "fuzz_common.h"
#include "crypto/keystore.h"
#include "ks_internal.h"

/* a decoded value never carries the NUL that would cut it short silently */
static void check_field(const char *s)
{
	if (s)
		FUZZ_ASSERT(strlen(s) < 65536);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pkcs11_uri u;
	struct key_opts ko;
	struct ks_source src;
	char *s, why[512];
	int rc;

	static int skip_known = -1;

	if (skip_known < 0)
		skip_known = getenv("FUZZ_SKIP_KNOWN") != NULL;
	if (size > 65536)
		return 0;
	s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';

	memset(&u, 0, sizeof(u));
	why[0] = '\0';
	rc = pkcs11_uri_parse(s, &u, why, sizeof(why));
	FUZZ_ASSERT(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
	if (rc == 0) {
		check_field(u.token);
		check_field(u.object);
		check_field(u.module_path);
		check_field(u.pin_file);
	} else {
		FUZZ_ASSERT(why[0] != '\0');
		/* was a bug (corpus regression-type-newline): the type= value went
		 * into the message; now named from a table.  FUZZ_SKIP_KNOWN=1 still
		 * turns the check off */
		if (!skip_known)
			FUZZ_ASSERT(!strchr(why, '\n'));
	}
	pkcs11_uri_release(&u);

	memset(&ko, 0, sizeof(ko));
	ko.pkcs11_uri = s;
	why[0] = '\0';
	rc = key_opts_check(&ko, "", why, sizeof(why));
	FUZZ_ASSERT(rc == 0 || rc == -EINVAL || rc == -ENAMETOOLONG);
	if (rc < 0)
		FUZZ_ASSERT(why[0] != '\0' && (skip_known || !strchr(why, '\n')));

	memset(&src, 0, sizeof(src));
	rc = ks_source_resolve(&ko, &src, why, sizeof(why));
	FUZZ_ASSERT(rc == 0 || rc == -EINVAL || rc == -ENOMEM || rc == -ENAMETOOLONG);
	if (rc == 0) {
		FUZZ_ASSERT(src.kind == KEYSTORE_SLOT_PKCS11);
		FUZZ_ASSERT(src.key && *src.key && strlen(src.key) <= KS_LABEL_MAX);
		FUZZ_ASSERT(!src.token || (*src.token && strlen(src.token) <= KS_TOKEN_MAX));
		FUZZ_ASSERT(src.module && strlen(src.module) <= KS_PATH_MAX);
		FUZZ_ASSERT(src.pin_file && *src.pin_file);
	}
	ks_source_release(&src);
	free(s);
	return 0;
}
