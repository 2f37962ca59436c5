/*
 * key_opts (internal to fs/cli): KEY-OPTIONS on the command line, the way
 * every command that takes a key parses them and prints their help.  The
 * struct they fill and its check (key_opts_check) are the keystore's,
 * crypto/keystore.h.
 */
#ifndef MEDVAULT_CLI_KEY_OPTS_H
#define MEDVAULT_CLI_KEY_OPTS_H

#include <stddef.h>

#include "crypto/keystore.h"

/* Help text for KEY-OPTIONS, for usage messages (prefix "" or "new-"). */
#define KEY_OPTS_HELP(p) \
	"  --" p "passphrase-file F    passphrase from file F (\"-\": prompt on the terminal)\n" \
	"  --" p "pkcs11-module SO     PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so)\n" \
	"  --" p "pkcs11-token LABEL   token label (default: the slot's token, else the first)\n" \
	"  --" p "pkcs11-key LABEL     AES key label on the token (default " KEYSTORE_DEFAULT_KEY_LABEL ")\n" \
	"  --" p "pin-file F           user PIN from file F (\"-\": prompt on the terminal)\n" \
	"  --" p "pkcs11-uri URI       RFC 7512 'pkcs11:token=..;object=..?module-path=..&pin-source=file:..'\n" \
	"  --" p "insecure-perms       accept a keystore, PIN or passphrase file open to others\n"

/*
 * Take KEY-OPTIONS (prefix "") or NEW-KEY-OPTIONS (prefix "new-") out of
 * argv[1 .. *argc-1]:
 *   --<p>passphrase-file F  --<p>pkcs11-module SO  --<p>pkcs11-token LABEL
 *   --<p>pkcs11-key LABEL   --<p>pin-file F        --<p>pkcs11-uri URI
 *   --<p>insecure-perms (a flag: sets opts->insecure_perms)
 * in the form "--opt VALUE" or "--opt=VALUE".  Matched options and their
 * values are removed from argv, the rest keep their order, *argc shrinks
 * and argv[*argc] = NULL, so a caller runs it (once per prefix) before its
 * own parser (e.g. getopt_long) sees argv.  Scanning stops at "--".
 * The fields set in opts point into argv; fields of options not present are
 * left as they were (zero opts first).  Does not check consistency: use
 * key_opts_check.
 * -EINVAL (why set): an option without its value, or given twice; argv
 * is then half-permuted, so report the error and stop.
 *
 * Typical use in a command (argv[0] = the command name):
 *	struct key_opts ko = { 0 };
 *	if (key_opts_parse(&argc, argv, "", &ko, why, sizeof(why)) < 0 ||
 *	    key_opts_check(&ko, "", why, sizeof(why)) < 0)
 *		-> print why, exit EXIT_USAGE
 *	then getopt_long(argc, argv, ...) for the command's own options.
 */
int key_opts_parse(int *argc, char **argv, const char *prefix, struct key_opts *opts,
		   char *why, size_t whylen);

#endif
