/*
 * medvault: the command line.  A table of commands, each in the file of its
 * group (cmd_mount.c, cmd_store.c, cmd_key.c, cmd_audit.c).  Every command
 * exits CLI_EXIT_OK on success, or another code of exit_codes.h with
 * exactly one line on stderr.
 */
#include <stdio.h>
#include <string.h>

#include "crypto/keystore.h"
#include "crypto/secure.h"
#include "cli.h"
#include "key_opts.h"

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;	/* NULL: an alias, not listed */
} commands[] = {
	{ "init", cmd_init, "create an encrypted store and its key file" },
	{ "mount", cmd_mount, "unlock a store and mount it" },
	{ "umount", cmd_umount, "unmount and wait until the daemon released the store" },
	{ "unmount", cmd_umount, NULL },
	{ "status", cmd_status, "what the daemon serving a mount point is doing" },
	{ "info", cmd_info, "describe a store (and its key slots); needs no key" },
	{ "fsck", cmd_fsck, "verify (and --repair) an unmounted store" },
	{ "scrub", cmd_scrub, "read and authenticate everything a mounted store holds" },
	{ "compact", cmd_compact, "rewrite sparse packs so deleted data frees space" },
	{ "snapshot", cmd_snapshot, "consistent point-in-time copy of a store, even mounted" },
	{ "key", cmd_key, "list, add, remove or rewrap key slots (list|add|remove|rewrap)" },
	{ "audit", cmd_audit, "print or verify the access trail (audit [verify] DIR)" },
};

static void usage_print(void)
{
	printf("usage: medvault COMMAND [ARGS]\n\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].help)
			printf("  %-9s %s\n", commands[i].name, commands[i].help);
	printf("\nKEY-OPTIONS:\n%s", KEY_OPTS_HELP(""));
	printf("\nExit status: 0 success, 1 failure, 2 usage error, 3 damage found (fsck, scrub, audit).\n");
	printf("'medvault COMMAND --help' describes one command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return fail_usage("missing command (see medvault --help)");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage_print();
		return CLI_EXIT_OK;
	}
	if (secure_init() < 0)
		return fail("libsodium failed to initialise");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	return fail_usage("unknown command %s (see medvault --help)", argv[1]);
}
