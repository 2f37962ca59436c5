/*
 * cli_audit: `medvault audit DIR ...` (print the access trail, filtered)
 * and `medvault audit verify DIR ...` (check the chain).  fs/main.c
 * dispatches `medvault audit ...` here.
 */
#ifndef MEDVAULT_CLI_AUDIT_H
#define MEDVAULT_CLI_AUDIT_H

#include <stddef.h>

/*
 * argv[0] is "audit":
 *   audit DIR --keystore KS KEY-OPTIONS [--path P] [--uid U] [--since T]
 *         [--until T] [--op OP[,OP...]] [--json]
 *   audit verify DIR --keystore KS KEY-OPTIONS
 * DIR is an audit directory, or one holding a single volume's audit
 * directory (KS/audit by default).  `--help` prints usage on stdout.
 * Records go to stdout.  argv is permuted.
 *
 * Returns 0, or -errno with one line in why: -EINVAL usage, -ENOENT no log,
 * -EBADMSG the log fails verification (why names the first bad record),
 * and the errors of keystore_unlock.
 */
int cli_audit(int argc, char **argv, char *why, size_t whylen);

#endif
