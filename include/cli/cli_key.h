/*
 * cli_key: the `medvault key ...` subcommands (list, add, remove, rewrap),
 * which manage the key slots of a volume's keystore without touching the
 * store.  fs/main.c dispatches `medvault key ...` here.
 */
#ifndef MEDVAULT_CLI_KEY_H
#define MEDVAULT_CLI_KEY_H

#include <stddef.h>

/*
 * argv[0] is "key", argv[1] the subcommand:
 *   key list   STORE --keystore KS
 *   key add    STORE --keystore KS KEY-OPTIONS NEW-KEY-OPTIONS
 *   key remove STORE --keystore KS KEY-OPTIONS --slot N
 *   key rewrap STORE --keystore KS KEY-OPTIONS NEW-KEY-OPTIONS
 * `--help` (or -h) anywhere prints that subcommand's usage on stdout.
 * Results (the slot table, "slot N added") go to stdout.  argv is permuted.
 *
 * Returns 0, or -errno with one line (no secrets, no newline) in why for
 * the caller to print, e.g. "medvault: %s\n".  -EINVAL usage error, and the
 * errors of keystore_unlock/keystore_slot_add/... (include/keystore.h).
 */
int cli_key(int argc, char **argv, char *why, size_t whylen);

#endif
