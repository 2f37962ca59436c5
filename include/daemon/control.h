/*
 * control: the channel between the command line and the daemon serving a
 * store, both ends.  A Unix stream socket RUNDIR/<volume-uuid>.sock (the
 * uuid is in STORE/medvault.conf, readable without keys); the daemon
 * serves only root and its own uid (SO_PEERCRED), and only requests that
 * name its own store (device and inode of the store directory: a snapshot
 * of a store carries the same uuid).
 *
 * Wire format, one connection per request, text lines ending in '\n':
 *   request:  "medvault1 VERB DEV INO[ ARG]\n"   (DEV, INO in decimal)
 *   answer:   "ok[ FIELDS]\n" [payload], then EOF; or "error ERRNO\n", EOF
 *   seal                 ok once everything buffered is written back and the
 *                        open pack is sealed
 *   compact RATIO        "ok REWRITTEN DELETED MOVED FREED KEPT EARLIER_AGE_S
 *                        EARLIER_DELETED EARLIER_FREED" (compact_stats; the
 *                        last three: the daemon's own background runs since
 *                        the last request, age -1 when none)
 *   status               "ok" then the status lines ("key value\n"), EOF
 *   wait                 "ok" at once, then EOF once the daemon has written
 *                        everything back and released the store
 *   scrub                "ok started RUN" or "ok running RUN" at once: a scrub
 *                        (store/scrub.h) started now, or the one under way;
 *                        RUN numbers the runs of this mount from 1
 *   scrub-report         "ok" then the last finished run: "RUN STATE FINDINGS
 *                        FILES CHUNKS BYTES STARTED FINISHED ERRNO\n", then a
 *                        line per kept finding "INODE\tPATH\tWHAT\n" (PATH "-"
 *                        unknown), EOF; ENOENT while none has finished
 * ERRNO is a positive errno: EACCES refused caller, ESRCH another store,
 * EPROTO unknown request, ESHUTDOWN the daemon is stopping.
 */
#ifndef MEDVAULT_CONTROL_H
#define MEDVAULT_CONTROL_H

#include <stddef.h>
#include <stdint.h>

struct compact_stats;

/* What the daemon does for a request.  Called from the channel's own
 * threads, one per connection, possibly at the same time. */
struct control_ops {
	/* write back everything buffered and seal the open pack; -errno */
	int (*seal)(void *ctx);
	/* compact packs below ratio; -errno */
	int (*compact)(void *ctx, double ratio, struct compact_stats *st);
	/* the status lines into buf (NUL-terminated): their length, or
	 * -EAGAIN while none are published yet */
	int (*status)(void *ctx, char *buf, size_t len);
	/* start a scrub: 1 started, 0 one runs already (*run: its number), -errno */
	int (*scrub)(void *ctx, unsigned *run);
	/* the last finished scrub's report into buf (NUL-terminated): its
	 * length, -ENOENT none yet */
	int (*scrub_report)(void *ctx, char *buf, size_t len);
};

struct control;

/*
 * The run directory of this uid's daemons: /run/medvault for root,
 * /run/user/UID/medvault (or /tmp/medvault-UID without a user runtime
 * directory) for others.  -ENAMETOOLONG.
 */
int control_rundir(char *buf, size_t len);

/*
 * Serve requests about store (a real path) on rundir/<uuid>.sock.  rundir
 * is created (0700) if missing, made 0700 if it is ours, and refused
 * (-EPERM) when it is not a directory owned by us or root, or is writable
 * by group or others.  An
 * existing file at the socket's path is replaced (never followed) unless a
 * daemon answers on it: -EADDRINUSE, another store with this uuid is
 * served.  Starts a thread: call after fork().  -errno, why says which.
 */
int control_listen(struct control **out, const char *rundir, const char *store,
		   const uint8_t uuid[16], const struct control_ops *ops, void *ctx, char *why,
		   size_t whylen);
/*
 * Stop accepting, wait for the requests under way, remove the socket, and
 * end every "wait": call once the store is released.  c may be NULL.
 */
void control_close(struct control *c);

/* The socket's path (the daemon's root part removes it once the server,
 * which may no longer write the run directory, is gone). */
const char *control_path(const struct control *c);

/*
 * Client side; rundir NULL means control_rundir().  Each returns 0, or
 * -ESRCH when no daemon serves store, -EACCES when it refused us,
 * -ECONNABORTED when it went away before answering, -errno of its answer
 * (-ESHUTDOWN: it is stopping), or -errno of reading STORE/medvault.conf
 * or the socket.
 */
int control_seal(const char *rundir, const char *store);
int control_compact(const char *rundir, const char *store, double ratio, struct compact_stats *st);
/* *text: the status lines, malloc'd and NUL-terminated */
int control_status(const char *rundir, const char *store, char **text);
/* start a scrub: *started 1 when this call started it, 0 when one was
 * running; *run its number */
int control_scrub(const char *rundir, const char *store, int *started, unsigned *run);
/* *text: the last finished scrub's report (see above), malloc'd */
int control_scrub_report(const char *rundir, const char *store, char **text);
/* before unmounting: register to hear when the daemon is gone (*fd) */
int control_wait_begin(const char *rundir, const char *store, int *fd);
/* then wait up to timeout_ms for it to release the store; closes fd.
 * 0, -ETIMEDOUT */
int control_wait_end(int fd, int timeout_ms);

#endif
