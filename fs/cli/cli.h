/*
 * Internal to fs/cli: the commands main.c dispatches to and the helpers
 * they share.  Every command returns the process's exit status
 * (exit_codes.h) and, when that is not CLI_EXIT_OK, has printed exactly one
 * line on stderr.
 */
#ifndef MEDVAULT_CLI_H
#define MEDVAULT_CLI_H

#include <stddef.h>

#include "exit_codes.h"

#define WHY_LEN 512

/* "medvault: <line>" on stderr, control characters shown as '?'; returns
 * CLI_EXIT_FAILURE (fail) or CLI_EXIT_USAGE (fail_usage) */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int fail_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* When --help or -h comes before any "--" in argv[1..]: usage printed on
 * stdout and 1 (the command has nothing else to do); 0 otherwise */
int help_shown(int argc, char **argv, const char *usage);

/* cmd_mount.c */
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_scrub(int argc, char **argv);

/* cmd_store.c */
int cmd_init(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_compact(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);

/* cmd_key.c: exits CLI_EXIT_USAGE where cli_key returns -EINVAL */
int cmd_key(int argc, char **argv);

/*
 * argv[0] is "key", argv[1] the subcommand:
 *   key list   STORE --keystore KS
 *   key add    STORE --keystore KS KEY-OPTIONS NEW-KEY-OPTIONS
 *   key remove STORE --keystore KS KEY-OPTIONS --slot N
 *   key rewrap STORE --keystore KS KEY-OPTIONS NEW-KEY-OPTIONS
 * `--help` (or -h) anywhere prints that subcommand's usage on stdout.
 * Results (the slot table, "slot N added") go to stdout.  argv is permuted.
 * The volume UUID comes from STORE/medvault.conf.
 *
 * Returns 0, or -errno with one line (no secrets, no newline) in why for
 * the caller to print.  -EINVAL usage error, and the errors of
 * keystore_unlock/keystore_slot_add/... (crypto/keystore.h).
 */
int cli_key(int argc, char **argv, char *why, size_t whylen);

/*
 * cmd_audit.c, argv[0] is "audit":
 *   audit DIR --keystore KS KEY-OPTIONS [--path P] [--uid U] [--since T]
 *         [--until T] [--op OP[,OP...]] [--json]
 *   audit verify DIR --keystore KS KEY-OPTIONS
 * DIR is an audit directory, or one holding a single volume's audit
 * directory (KS/audit by default).  Records go to stdout.  A log that fails
 * verification exits CLI_EXIT_DAMAGE.
 */
int cmd_audit(int argc, char **argv);

#endif
