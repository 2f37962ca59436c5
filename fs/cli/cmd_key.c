/*
 * cli_key: `medvault key list|add|remove|rewrap`.  Parsing and printing
 * only; the keystore does the work.  The volume UUID comes from
 * STORE/medvault.conf, so a command given the wrong --keystore reports
 * "no keystore for this volume" instead of editing another volume's keys.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/keystore.h"
#include "store/volconf.h"
#include "cli.h"
#include "key_opts.h"

enum key_cmd { KEY_LIST, KEY_ADD, KEY_REMOVE, KEY_REWRAP };

static const struct {
	const char *name;
	enum key_cmd cmd;
	const char *synopsis;
	const char *what;
} key_cmds[] = {
	{ "list", KEY_LIST, "key list STORE --keystore KS",
	  "Print the key slots of STORE's keystore (no key needed)." },
	{ "add", KEY_ADD, "key add STORE --keystore KS KEY-OPTIONS NEW-KEY-OPTIONS",
	  "Unlock with KEY-OPTIONS and add a slot for NEW-KEY-OPTIONS\n"
	  "(e.g. a recovery passphrase, or a second HSM)." },
	{ "remove", KEY_REMOVE, "key remove STORE --keystore KS KEY-OPTIONS --slot N",
	  "Unlock with KEY-OPTIONS and delete slot N.  The last slot cannot be removed." },
	{ "rewrap", KEY_REWRAP, "key rewrap STORE --keystore KS KEY-OPTIONS NEW-KEY-OPTIONS",
	  "Key rotation: re-seal the master key in the slot that KEY-OPTIONS opens,\n"
	  "under NEW-KEY-OPTIONS (a new HSM key label, or a new passphrase).  The old\n"
	  "HSM key stays on the token; the store is not touched." },
};

static void key_usage(FILE *out, int which)
{
	size_t i;

	if (which < 0) {
		fprintf(out, "usage:\n");
		for (i = 0; i < sizeof(key_cmds) / sizeof(key_cmds[0]); i++)
			fprintf(out, "  medvault %s\n", key_cmds[i].synopsis);
		fprintf(out, "\nmedvault key SUBCOMMAND --help for details.\n");
		return;
	}
	fprintf(out, "usage: medvault %s\n\n%s\n\n", key_cmds[which].synopsis,
		key_cmds[which].what);
	fprintf(out, "  --keystore KS             keystore directory (never inside STORE)\n");
	if (key_cmds[which].cmd == KEY_LIST)
		return;
	fprintf(out, "KEY-OPTIONS (a key the keystore already accepts):\n%s", KEY_OPTS_HELP(""));
	if (key_cmds[which].cmd == KEY_REMOVE)
		fprintf(out, "  --slot N                  the slot to delete (see `key list`)\n");
	else
		fprintf(out, "NEW-KEY-OPTIONS (the key to add):\n%s", KEY_OPTS_HELP("new-"));
}

/* any KEY-OPTION at all, even a lone --pin-file (key_opts_given ignores those) */
static int any_key_opt(const struct key_opts *o)
{
	return o->passphrase_file || o->pkcs11_module || o->pkcs11_token || o->pkcs11_key ||
	       o->pin_file || o->pkcs11_uri;
}

static int is_help(const char *a)
{
	return !strcmp(a, "--help") || !strcmp(a, "-h");
}

static void print_slots(const struct keystore_slot_info *s, size_t n)
{
	printf("%-5s %-11s %-21s %s\n", "SLOT", "KIND", "CREATED", "DETAILS");
	for (size_t i = 0; i < n; i++) {
		char when[32] = "?";
		time_t t = (time_t)s[i].created;
		struct tm tm;

		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (s[i].kind == KEYSTORE_SLOT_PASSPHRASE)
			printf("%-5" PRIu32 " %-11s %-21s argon2id ops=%" PRIu64 " mem=%" PRIu64 "%s\n",
			       s[i].id, "passphrase", when, s[i].opslimit,
			       s[i].memlimit >= (1u << 20) ? s[i].memlimit >> 20 : s[i].memlimit >> 10,
			       s[i].memlimit >= (1u << 20) ? "MiB" : "KiB");
		else
			printf("%-5" PRIu32 " %-11s %-21s token=%s key=%s module=%s\n",
			       s[i].id, "pkcs11", when, s[i].token, s[i].key, s[i].module);
	}
}

static int parse_slot(const char *a, uint32_t *id)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(a, &end, 10);
	if (errno || end == a || *end || v == 0 || v > UINT32_MAX || a[0] == '-')
		return -EINVAL;
	*id = (uint32_t)v;
	return 0;
}

/* A parsed `key` command line.  The strings point into argv and av. */
struct key_args {
	int which;		/* index into key_cmds */
	int help;		/* usage printed: nothing to run */
	const char *store, *ksdir;
	struct key_opts opts, nopts;
	uint32_t id;		/* key remove --slot */
	char **av;		/* our permuted copy of argv; freed by the caller */
};

/* 0 (a->help when usage was printed), or -EINVAL usage error, -ENOMEM;
 * why set.  Touches no file. */
static int key_args_parse(struct key_args *a, int argc, char **argv, char *why, size_t whylen)
{
	const char *slot_arg = NULL;
	int ac, i, rc = 0;

	a->which = -1;
	if (argc < 2 || is_help(argv[1])) {
		if (argc < 2) {
			rc = -EINVAL;
			snprintf(why, whylen, "key: missing subcommand (list, add, remove, rewrap; "
				 "see medvault key --help)");
		} else {
			key_usage(stdout, -1);
			a->help = 1;
		}
		goto out;
	}
	for (i = 0; i < (int)(sizeof(key_cmds) / sizeof(key_cmds[0])); i++)
		if (!strcmp(argv[1], key_cmds[i].name))
			a->which = i;
	if (a->which < 0) {
		rc = -EINVAL;
		snprintf(why, whylen, "key: unknown subcommand '%s' (list, add, remove, rewrap)",
			 argv[1]);
		goto out;
	}
	/* our own copy: key_opts_parse permutes it; av[0] = subcommand */
	a->av = calloc((size_t)argc, sizeof(*a->av));
	if (!a->av) {
		rc = -ENOMEM;
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	ac = argc - 1;
	for (i = 0; i < ac; i++)
		a->av[i] = argv[i + 1];
	for (i = 1; i < ac; i++) {
		if (is_help(a->av[i])) {
			key_usage(stdout, a->which);
			a->help = 1;
			goto out;
		}
	}
	if ((rc = key_opts_parse(&ac, a->av, "new-", &a->nopts, why, whylen)) < 0 ||
	    (rc = key_opts_parse(&ac, a->av, "", &a->opts, why, whylen)) < 0)
		goto out;
	rc = -EINVAL;
	for (i = 1; i < ac; i++) {
		const char *arg = a->av[i];

		if (!strcmp(arg, "--keystore") || !strcmp(arg, "--slot")) {
			if (i + 1 >= ac) {
				snprintf(why, whylen, "%s needs a value", arg);
				goto out;
			}
			*(arg[2] == 'k' ? &a->ksdir : &slot_arg) = a->av[++i];
		} else if (!strncmp(arg, "--keystore=", 11)) {
			a->ksdir = arg + 11;
		} else if (!strncmp(arg, "--slot=", 7)) {
			slot_arg = arg + 7;
		} else if (arg[0] == '-' && arg[1]) {
			snprintf(why, whylen, "key %s: unknown option %s (see --help)",
				 key_cmds[a->which].name, arg);
			goto out;
		} else if (!a->store) {
			a->store = arg;
		} else {
			snprintf(why, whylen, "key %s: unexpected argument '%s'",
				 key_cmds[a->which].name, arg);
			goto out;
		}
	}
	if (!a->store || !a->ksdir) {
		snprintf(why, whylen, "usage: medvault %s", key_cmds[a->which].synopsis);
		goto out;
	}
	if (key_cmds[a->which].cmd == KEY_LIST && (any_key_opt(&a->opts) || any_key_opt(&a->nopts))) {
		snprintf(why, whylen, "key list needs no key options");
		goto out;
	}
	if (key_cmds[a->which].cmd != KEY_LIST &&
	    (rc = key_opts_check(&a->opts, "", why, whylen)) < 0)
		goto out;
	rc = -EINVAL;
	if (key_cmds[a->which].cmd == KEY_REMOVE) {
		if (any_key_opt(&a->nopts)) {
			snprintf(why, whylen, "key remove takes no --new-* options");
			goto out;
		}
		if (!slot_arg || parse_slot(slot_arg, &a->id) < 0) {
			snprintf(why, whylen, "key remove needs --slot N (a slot id from `key list`)");
			goto out;
		}
	} else if (slot_arg) {
		snprintf(why, whylen, "--slot is only for key remove");
		goto out;
	}
	if ((key_cmds[a->which].cmd == KEY_ADD || key_cmds[a->which].cmd == KEY_REWRAP) &&
	    (rc = key_opts_check(&a->nopts, "new-", why, whylen)) < 0)
		goto out;
	rc = 0;
out:
	return rc;
}

static int key_run(const struct key_args *a, char *why, size_t whylen)
{
	struct keystore_slot_info *slots = NULL;
	struct volconf vc;
	uint32_t id = a->id;
	size_t n = 0;
	int rc;

	if ((rc = volconf_load(a->store, &vc, why, whylen)) < 0)
		return rc;
	switch (key_cmds[a->which].cmd) {
	case KEY_LIST:
		if ((rc = keystore_list(a->ksdir, vc.uuid, &slots, &n, why, whylen)) == 0)
			print_slots(slots, n);
		break;
	case KEY_ADD:
		if ((rc = keystore_slot_add(a->ksdir, vc.uuid, &a->opts, &a->nopts, &id, why, whylen)) == 0)
			printf("slot %" PRIu32 " added\n", id);
		break;
	case KEY_REMOVE:
		if ((rc = keystore_slot_remove(a->ksdir, vc.uuid, &a->opts, id, why, whylen)) == 0)
			printf("slot %" PRIu32 " removed\n", id);
		break;
	case KEY_REWRAP:
		if ((rc = keystore_rewrap(a->ksdir, vc.uuid, &a->opts, &a->nopts, &id, why, whylen)) == 0)
			printf("slot %" PRIu32 " rewrapped\n", id);
		break;
	}
	fflush(stdout);
	volconf_release(&vc);
	free(slots);
	return rc;
}

int cli_key(int argc, char **argv, char *why, size_t whylen)
{
	struct key_args a = { 0 };
	int rc;

	rc = key_args_parse(&a, argc, argv, why, whylen);
	if (rc == 0 && !a.help)
		rc = key_run(&a, why, whylen);
	free(a.av);
	return rc;
}

int cmd_key(int argc, char **argv)
{
	struct key_args a = { 0 };
	char why[WHY_LEN] = "";
	int rc;

	if ((rc = key_args_parse(&a, argc, argv, why, sizeof(why))) < 0)
		rc = rc == -EINVAL ? fail_usage("%s", why) : fail("%s", why);
	else if (!a.help && key_run(&a, why, sizeof(why)) < 0)
		rc = fail("%s", why);
	else
		rc = CLI_EXIT_OK;
	free(a.av);
	return rc;
}
