/*
 * `medvault key ...` through cli_key(): argument handling, the UUID taken
 * from STORE/medvault.conf, and the passphrase slot commands end to end.
 * (PKCS#11 slots are exercised in test_pkcs11.c.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto/aead.h"
#include "crypto/keystore.h"
#include "crypto/secure.h"
#include "store/volconf.h"
#include "../../../fs/cli/cli.h"
#include "../../tap.h"

static char tmp[64], store[128], ks[128], pw1[128], pw2[128], pw3[128], out_path[128];
static char why[1024];
static char output[8192];

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s)) {
		perror(path);
		exit(2);
	}
	close(fd);
}

/* Run cli_key on a NULL-terminated list, capturing its stdout in output. */
static int run(const char *first, ...)
{
	char *argv[32];
	int argc = 0, saved, fd, rc;
	va_list ap;
	const char *a;
	ssize_t n;

	va_start(ap, first);
	for (a = first; a && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	why[0] = '\0';
	rc = cli_key(argc, argv, why, sizeof(why));
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	fd = open(out_path, O_RDONLY);
	n = read(fd, output, sizeof(output) - 1);
	output[n > 0 ? n : 0] = '\0';
	close(fd);
	return rc;
}

int main(void)
{
	struct volconf vc;
	uint8_t mk[KEYSTORE_MK_LEN];
	struct key_opts o = { 0 };
	char notstore[160];

	if (secure_init() < 0)
		return 2;
	if (!freopen("/dev/null", "r", stdin))
		return 2;
	keystore_pwhash_cost(1, 8192);
	snprintf(tmp, sizeof(tmp), "/tmp/mv-clikey-XXXXXX");
	if (!mkdtemp(tmp))
		return 2;
	snprintf(store, sizeof(store), "%s/store", tmp);
	snprintf(ks, sizeof(ks), "%s/ks", tmp);
	snprintf(pw1, sizeof(pw1), "%s/pw1", tmp);
	snprintf(pw2, sizeof(pw2), "%s/pw2", tmp);
	snprintf(pw3, sizeof(pw3), "%s/pw3", tmp);
	snprintf(out_path, sizeof(out_path), "%s/out", tmp);
	snprintf(notstore, sizeof(notstore), "%s/nostore", tmp);
	write_file(pw1, "first passphrase\n");
	write_file(pw2, "second passphrase\n");
	write_file(pw3, "third passphrase\n");
	mkdir(store, 0700);
	mkdir(notstore, 0700);

	memset(&vc, 0, sizeof(vc));
	vc.format = VOLCONF_FORMAT;
	secure_random(vc.uuid, sizeof(vc.uuid));
	vc.cipher = AEAD_XCHACHA20POLY1305;
	vc.chunk_size = 1 << 20;
	vc.pack_size = 64 << 20;
	vc.created = (int64_t)time(NULL);
	secure_random(mk, sizeof(mk));
	ok(volconf_save(store, &vc, mk) == 0, "test store created");
	o.passphrase_file = pw1;
	ok(keystore_create(ks, vc.uuid, &o, mk, why, sizeof(why)) == 0, "keystore created (%s)", why);

	ok(run("key", "--help", NULL) == 0 && strstr(output, "key rewrap"), "key --help lists subcommands");
	ok(run("key", "add", "--help", NULL) == 0 && strstr(output, "--new-passphrase-file") &&
	   strstr(output, "--pkcs11-uri"), "key add --help shows KEY-OPTIONS and NEW-KEY-OPTIONS");
	ok(run("key", "remove", "-h", NULL) == 0 && strstr(output, "--slot"), "key remove -h");
	ok(run("key", NULL) == -EINVAL && *why, "no subcommand => -EINVAL: %s", why);
	ok(run("key", "frobnicate", store, NULL) == -EINVAL, "unknown subcommand: %s", why);
	ok(run("key", "list", store, NULL) == -EINVAL && strstr(why, "usage"), "missing --keystore: %s", why);
	ok(run("key", "list", store, "--keystore", ks, "--bogus", NULL) == -EINVAL, "unknown option: %s", why);
	ok(run("key", "list", notstore, "--keystore", ks, NULL) == -ENOENT, "not a store: %s", why);

	ok(run("key", "list", store, "--keystore", ks, NULL) == 0, "key list (%s)", why);
	ok(strstr(output, "SLOT") && strstr(output, "passphrase") && strstr(output, "Z "),
	   "list prints kind and an ISO 8601 UTC time:\n%s", output);
	ok(run("key", "list", store, "--keystore", ks, "--passphrase-file", pw1, NULL) == -EINVAL,
	   "list refuses key options: %s", why);
	ok(run("key", "list", store, "--keystore", ks, "--pin-file", pw1, NULL) == -EINVAL,
	   "list refuses a lone --pin-file: %s", why);

	ok(run("key", "add", store, "--keystore", ks, "--passphrase-file", pw1, NULL) == -EINVAL,
	   "add without a new key: %s", why);
	ok(run("key", "add", store, "--keystore", ks, "--passphrase-file", pw2,
	       "--new-passphrase-file", pw3, NULL) == -EACCES, "add with a wrong passphrase: %s", why);
	ok(run("key", "add", store, "--keystore=" , "x", NULL) == -EINVAL, "empty --keystore= then stray arg");
	ok(run("key", "add", store, "--keystore", ks, "--passphrase-file", pw1,
	       "--new-passphrase-file", pw2, NULL) == 0 && strstr(output, "slot 2 added"),
	   "key add (%s) %s", why, output);
	ok(run("key", "list", store, "--keystore", ks, NULL) == 0 && strstr(output, "\n2 "),
	   "list shows slot 2");

	ok(run("key", "remove", store, "--keystore", ks, "--passphrase-file", pw2, NULL) == -EINVAL,
	   "remove without --slot: %s", why);
	ok(run("key", "remove", store, "--keystore", ks, "--passphrase-file", pw2, "--slot", "x", NULL) == -EINVAL,
	   "remove --slot x: %s", why);
	ok(run("key", "remove", store, "--keystore", ks, "--passphrase-file", pw2, "--slot=1", NULL) == 0 &&
	   strstr(output, "slot 1 removed"), "key remove --slot=1 (%s)", why);
	ok(run("key", "remove", store, "--keystore", ks, "--passphrase-file", pw2, "--slot", "2", NULL) == -EPERM,
	   "last slot refused: %s", why);

	ok(run("key", "rewrap", store, "--keystore", ks, "--passphrase-file", pw2,
	       "--new-passphrase-file", pw1, NULL) == 0 && strstr(output, "slot 2 rewrapped"),
	   "key rewrap (%s)", why);
	uint8_t *got = NULL;

	o.passphrase_file = pw1;
	ok(keystore_unlock(ks, vc.uuid, &o, &got, why, sizeof(why)) == 0 && !memcmp(got, mk, 32),
	   "rewrapped slot opens with the new passphrase");
	keystore_key_free(got);
	o.passphrase_file = pw2;
	got = NULL;
	ok(keystore_unlock(ks, vc.uuid, &o, &got, why, sizeof(why)) == -EACCES, "old passphrase refused");
	keystore_key_free(got);

	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmp);
	return tap_done();
}
