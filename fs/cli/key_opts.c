/*
 * key_opts: KEY-OPTIONS on the command line.  Shared by every command that
 * takes a key (cmd_store.c, cmd_mount.c, cmd_key.c, cmd_audit.c), so they
 * all spell them the same way.  Whether the options name a usable key is
 * the keystore's question (key_opts_check, crypto/ks_opts.c).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "key_opts.h"

struct opt_def {
	const char *name;
	size_t field;		/* offset of the const char * in struct key_opts */
};

static const struct opt_def opt_defs[] = {
	{ "passphrase-file", offsetof(struct key_opts, passphrase_file) },
	{ "pkcs11-module", offsetof(struct key_opts, pkcs11_module) },
	{ "pkcs11-token", offsetof(struct key_opts, pkcs11_token) },
	{ "pkcs11-key", offsetof(struct key_opts, pkcs11_key) },
	{ "pin-file", offsetof(struct key_opts, pin_file) },
	{ "pkcs11-uri", offsetof(struct key_opts, pkcs11_uri) },
};

/* Which option argument a names (NULL if none); *val set for --opt=VALUE. */
static const struct opt_def *opt_match(const char *a, const char *prefix, const char **val)
{
	size_t plen = strlen(prefix);

	*val = NULL;
	if (strncmp(a, "--", 2) || strncmp(a + 2, prefix, plen))
		return NULL;
	a += 2 + plen;
	for (size_t i = 0; i < sizeof(opt_defs) / sizeof(opt_defs[0]); i++) {
		size_t n = strlen(opt_defs[i].name);

		if (strncmp(a, opt_defs[i].name, n))
			continue;
		if (a[n] == '\0')
			return &opt_defs[i];
		if (a[n] == '=') {
			*val = a + n + 1;
			return &opt_defs[i];
		}
	}
	return NULL;
}

int key_opts_parse(int *argc, char **argv, const char *prefix, struct key_opts *opts,
		   char *why, size_t whylen)
{
	int in, out = 1, rc = 0, done = 0;

	if (*argc < 1)
		return 0;
	for (in = 1; in < *argc; in++) {
		const struct opt_def *d;
		const char *val;
		const char **field;

		if (done || !strcmp(argv[in], "--")) {
			done = 1;
			argv[out++] = argv[in];
			continue;
		}
		/* a flag, not a valued option: --insecure-perms (or with prefix) */
		if (!strncmp(argv[in], "--", 2) && !strncmp(argv[in] + 2, prefix, strlen(prefix)) &&
		    !strcmp(argv[in] + 2 + strlen(prefix), "insecure-perms")) {
			opts->insecure_perms = 1;
			continue;
		}
		d = opt_match(argv[in], prefix, &val);
		if (!d) {
			argv[out++] = argv[in];
			continue;
		}
		if (!val) {
			if (in + 1 >= *argc) {
				rc = -EINVAL;
				snprintf(why, whylen, "--%s%s needs a value", prefix, d->name);
				goto out;
			}
			val = argv[++in];
		}
		if (!*val) {
			rc = -EINVAL;
			snprintf(why, whylen, "--%s%s needs a non-empty value", prefix, d->name);
			goto out;
		}
		field = (const char **)((char *)opts + d->field);
		if (*field) {
			rc = -EINVAL;
			snprintf(why, whylen, "--%s%s given twice", prefix, d->name);
			goto out;
		}
		*field = val;
	}
	*argc = out;
	argv[out] = NULL;
out:
	return rc;
}
