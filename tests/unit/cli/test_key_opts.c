/*
 * key_opts_parse: KEY-OPTIONS and NEW-KEY-OPTIONS taken out of argv, the
 * rest left in order for the command's own parser.  (Whether the options
 * name a usable key, key_opts_check, is tested in test_keystore.c.)
 */
#include <errno.h>
#include <string.h>

#include "../../../fs/cli/key_opts.h"
#include "../../tap.h"

static char why[256];

int main(void)
{
	char *argv[] = { "mount", "STORE", "--passphrase-file", "p", "--new-pkcs11-module=/m.so",
			 "--other", "--new-pin-file", "pin", "MNT", "--", "--pin-file", "x", NULL };
	int argc = 12;
	struct key_opts o = { 0 }, n = { 0 };

	ok(key_opts_parse(&argc, argv, "new-", &n, why, sizeof(why)) == 0, "parse new- options");
	ok(key_opts_parse(&argc, argv, "", &o, why, sizeof(why)) == 0, "parse options");
	ok(o.passphrase_file && !strcmp(o.passphrase_file, "p") && !o.pin_file, "--passphrase-file p, stops at --");
	ok(n.pkcs11_module && !strcmp(n.pkcs11_module, "/m.so") && n.pin_file && !strcmp(n.pin_file, "pin"),
	   "--new-pkcs11-module=VALUE and --new-pin-file VALUE");
	ok(argc == 7 && !strcmp(argv[1], "STORE") && !strcmp(argv[2], "--other") &&
	   !strcmp(argv[3], "MNT") && !strcmp(argv[4], "--") && argv[7] == NULL,
	   "the rest of argv kept in order (argc %d)", argc);

	char *dup[] = { "x", "--pin-file", "a", "--pin-file=b", NULL };
	int dc = 4;
	struct key_opts d = { 0 };

	ok(key_opts_parse(&dc, dup, "", &d, why, sizeof(why)) == -EINVAL, "option twice => -EINVAL (%s)", why);
	char *miss[] = { "x", "--pkcs11-module", NULL };
	int mc = 2;

	memset(&d, 0, sizeof(d));
	ok(key_opts_parse(&mc, miss, "", &d, why, sizeof(why)) == -EINVAL, "missing value => -EINVAL (%s)", why);
	ok(!strcmp(why, "--pkcs11-module needs a value"), "one line naming the option: %s", why);

	char *empty[] = { "x", "--pin-file=", NULL };
	int ec = 2;

	memset(&d, 0, sizeof(d));
	ok(key_opts_parse(&ec, empty, "", &d, why, sizeof(why)) == -EINVAL, "empty value => -EINVAL (%s)", why);

	char *flag[] = { "key", "--insecure-perms", "S", "--new-insecure-perms", "--insecure-permsX", NULL };
	int fc = 5;
	struct key_opts fo = { 0 }, fn = { 0 };

	ok(key_opts_parse(&fc, flag, "new-", &fn, why, sizeof(why)) == 0 &&
	   key_opts_parse(&fc, flag, "", &fo, why, sizeof(why)) == 0, "parse the flag");
	ok(fo.insecure_perms == 1 && fn.insecure_perms == 1, "--insecure-perms and --new-insecure-perms set");
	ok(fc == 3 && !strcmp(flag[1], "S") && !strcmp(flag[2], "--insecure-permsX"),
	   "both taken out of argv, a longer word left alone");
	return tap_done();
}
