/*
 * fuzz_volconf: STORE/medvault.conf as read by volconf_load (before the mac
 * is checked, which is when an attacker holding the store gets to talk to
 * the parser).  A parsed card must satisfy what FORMAT.md promises.
 */
#include <errno.h>
#include <string.h>

#include "fuzz_common.h"
#include "crypto/secure.h"
#include "store/volconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t mk[32] = { 1, 2, 3 };
	struct volconf vc;
	char why[512];
	int rc;

	if (secure_init() < 0)
		abort();
	fuzz_write_file(VOLCONF_NAME, data, size);
	rc = volconf_load(fuzz_dir(), &vc, why, sizeof(why));
	FUZZ_ASSERT(rc == 0 || rc == -EBADMSG || rc == -EPROTONOSUPPORT || rc == -EFBIG ||
		    rc == -ENOMEM || rc == -EINVAL);
	if (rc == 0) {
		FUZZ_ASSERT(vc.format >= 1 && vc.format <= VOLCONF_FORMAT);
		FUZZ_ASSERT(vc.chunk_size >= 4096 && (vc.chunk_size & (vc.chunk_size - 1)) == 0);
		FUZZ_ASSERT(vc.pack_size >= (1u << 20));
		FUZZ_ASSERT(vc.text != NULL && vc.text_len <= size);
		/* the mac covers a prefix of the file, ending before "mac=" */
		FUZZ_ASSERT(memcmp(vc.text, data, vc.text_len) == 0);
		FUZZ_ASSERT(strncmp((const char *)data + vc.text_len, "mac=", 4) == 0);
		/* a fixed key never matches a fuzzer-made mac (2^-256) */
		FUZZ_ASSERT(volconf_verify(&vc, mk) == -EBADMSG);
		volconf_release(&vc);
	}
	return 0;
}
