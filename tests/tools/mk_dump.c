/*
 * mk_dump STORE KEYSTORE PASSPHRASE-FILE: print the volume master key as
 * 64 lowercase hex digits.  TEST ONLY: t_40_leak uses it to prove the raw
 * key appears nowhere in the store or the keystore.  It unlocks exactly as
 * mount does (volconf_load for the uuid, keystore_unlock for the key), and
 * it is built only under build/tools, never installed.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "crypto/keystore.h"
#include "store/volconf.h"

int main(int argc, char **argv)
{
	struct volconf vc;
	struct key_opts opts;
	char why[512] = "";
	uint8_t *mk = NULL;
	int rc;

	if (argc != 4) {
		fprintf(stderr, "usage: mk_dump STORE KEYSTORE PASSPHRASE-FILE\n");
		return 2;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "mk_dump: sodium_init failed\n");
		return 1;
	}
	memset(&vc, 0, sizeof vc);
	memset(&opts, 0, sizeof opts);
	opts.passphrase_file = argv[3];
	if ((rc = volconf_load(argv[1], &vc, why, sizeof why)) < 0) {
		fprintf(stderr, "mk_dump: %s\n", why[0] ? why : strerror(-rc));
		return 1;
	}
	rc = keystore_unlock(argv[2], vc.uuid, &opts, &mk, why, sizeof why);
	if (rc < 0) {
		fprintf(stderr, "mk_dump: %s\n", why[0] ? why : strerror(-rc));
		volconf_release(&vc);
		return 1;
	}
	for (size_t i = 0; i < KEYSTORE_MK_LEN; i++)
		printf("%02x", mk[i]);
	printf("\n");
	keystore_key_free(mk);
	volconf_release(&vc);
	return 0;
}
