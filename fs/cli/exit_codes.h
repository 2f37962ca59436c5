/*
 * The exit status of every medvault command, one scheme for all, so that
 * scripts and monitoring can tell "you called it wrong" from "it failed"
 * from "it worked and found the data damaged".  docs/medvault.1 (EXIT
 * STATUS) promises these values: never renumber them.
 * mount.medvault keeps mount(8)'s codes instead (1 usage, 32 mount failure).
 */
#ifndef MEDVAULT_CLI_EXIT_CODES_H
#define MEDVAULT_CLI_EXIT_CODES_H

#define CLI_EXIT_OK 0		/* done; also --help */
#define CLI_EXIT_FAILURE 1	/* could not do it: wrong key, not a store, busy, I/O error... */
#define CLI_EXIT_USAGE 2	/* bad or missing command, option or argument; nothing was touched */
#define CLI_EXIT_DAMAGE 3	/* the check ran and found damage (fsck, audit verify, audit) */

#endif
