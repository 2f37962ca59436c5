/*
 * daemon: the lifetime of a mounted store's daemon: it opens the store,
 * mounts, serves FUSE requests, runs the flusher (write-back, checkpoints,
 * background compaction, status) and the control channel, and tears all
 * of it down in order at unmount.
 */
#ifndef MEDVAULT_DAEMON_H
#define MEDVAULT_DAEMON_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/audit.h"
#include "util/safefile.h"

struct key_opts;

#define DAEMON_SCRUB_INTERVAL_S (7ull * 86400)	/* mount's default */
#define DAEMON_SCRUB_RATE (50ull * 1000 * 1000)	/* bytes/s: 50 MB/s */
/* the account a root mount serves as once mounted (privsep.h) */
#define DAEMON_SERVICE_USER SAFE_SERVICE_USER

struct daemon_opts {
	const char *store;
	const char *keystore;
	const struct key_opts *key;	/* checked by the caller */
	const char *mountpoint;		/* real path of a directory, not a mount point */
	const char *mount_name;		/* as the user wrote it, for messages */
	const char *fuse_opts;		/* the user's -o options, or NULL */
	int foreground;			/* serve in this process (-f) */
	/* --user: the service account a root mount drops to once mounted
	 * (NULL: DAEMON_SERVICE_USER); the store and the trail become its */
	const char *user;
	int no_audit;
	/* --read-only: a ro mount, the store opened read-only (no epoch bump,
	 * orphan purge, compaction, write-back or anchor move), and every
	 * change refused with EROFS; a store behind its anchor opens, with a
	 * warning */
	int read_only;
	/* --accept-rollback: a store behind or forked from its anchor (a
	 * restored backup) is made current: the anchor moves back to it,
	 * which is syslogged and recorded in the access trail */
	int accept_rollback;
	/* scrub (store/scrub.h): seconds between scheduled runs, the first
	 * one that long after mount (0: only on request); chunk data read
	 * per second (0: DAEMON_SCRUB_RATE) */
	uint64_t scrub_interval_s;
	uint64_t scrub_rate;
	/* dir (NULL: KS/audit/<volume id>), fail_open, max_file, retain_days;
	 * the rest is filled in from the store */
	struct audit_opts audit;
};

/*
 * Mount o->store on o->mountpoint and serve it.  In the background (not
 * o->foreground) it forks: the caller's process returns 0 once the
 * filesystem serves, or -errno with the daemon's one line in why; the
 * daemon returns after unmount.  Either way a process that serves returns
 * 0 after a clean unmount.  A daemon whose startup failed returns -errno
 * with why empty: its waiting parent reports the line.
 */
int daemon_run(const struct daemon_opts *o, char *why, size_t whylen);

#endif
