/*
 * fuzz_keystore: the keystore file parser (crypto/keystore.c file_load and
 * slot_decode), reached without a key through keystore_list, as `medvault
 * key list` and every unlock do before any MAC is checked.
 *
 * Input: one flag byte, then the file.  The file carries an unkeyed
 * BLAKE2b-256 checksum, which random mutations almost never satisfy, so:
 *   flag bit 0: overwrite the last 32 bytes with the right checksum, so the
 *               mutations reach the slot table;
 *   flag bit 1: ask for another volume's uuid (all 0xee) instead of the
 *               one the file names at offset 10, to reach the uuid check.
 * Unlocking is not fuzzed here: a slot's Argon2 cost (up to 4 GiB) makes a
 * run too slow and the wrap is an AEAD the fuzzer cannot forge.
 */
#include <errno.h>
#include <string.h>

#include "fuzz_common.h"
#include "crypto/keystore.h"
#include "crypto/secure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t uuid[KEYSTORE_UUID_LEN], *file;
	struct keystore_slot_info *slots = NULL;
	size_t n = 0, flen;
	char path[PATH_MAX + 64], *name, why[1024];
	int rc, flags;

	if (size < 1 || size > 300 * 1024)
		return 0;
	if (secure_init() < 0)
		abort();
	flags = data[0];
	flen = size - 1;
	file = malloc(flen ? flen : 1);
	if (!file)
		abort();
	memcpy(file, data + 1, flen);
	if ((flags & 1) && flen >= 32)
		secure_hash(file + flen - 32, file, flen - 32);
	memset(uuid, 0xee, sizeof(uuid));
	if (!(flags & 2) && flen >= 26)
		memcpy(uuid, file + 10, sizeof(uuid));

	keystore_path(fuzz_dir(), uuid, path, sizeof(path));
	name = strrchr(path, '/') + 1;
	fuzz_write_file(name, file, flen);
	why[0] = '\0';
	rc = keystore_list(fuzz_dir(), uuid, &slots, &n, why, sizeof(why));
	FUZZ_ASSERT(rc == 0 || rc == -EBADMSG || rc == -EPROTONOSUPPORT);
	if (rc == 0) {
		FUZZ_ASSERT(n >= 1 && n <= KEYSTORE_SLOTS_MAX);
		for (size_t i = 0; i < n; i++) {
			FUZZ_ASSERT(slots[i].kind == KEYSTORE_SLOT_PASSPHRASE ||
				    slots[i].kind == KEYSTORE_SLOT_PKCS11);
			FUZZ_ASSERT(memchr(slots[i].module, 0, sizeof(slots[i].module)));
			FUZZ_ASSERT(memchr(slots[i].token, 0, sizeof(slots[i].token)));
			FUZZ_ASSERT(memchr(slots[i].key, 0, sizeof(slots[i].key)));
			for (size_t j = 0; j < i; j++)
				FUZZ_ASSERT(slots[i].id != slots[j].id);
		}
		free(slots);
	} else {
		/* one line, no trailing newline, as the CLI prints it */
		FUZZ_ASSERT(why[0] != '\0' && !strchr(why, '\n'));
	}
	fuzz_unlink(name);
	free(file);
	return 0;
}
