/*
 * scrubd: the daemon's scrub thread (store/scrub.h does the work): one
 * run at a time, started by a control request or by the schedule, and
 * its last or current run's counters for `medvault status`.
 */
#ifndef MEDVAULT_SCRUBD_H
#define MEDVAULT_SCRUBD_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct vault;
struct scrubd;

/*
 * interval_s: time between scheduled runs, the first one a full interval
 * after this call, the next one an interval after a run ends (0: never
 * on a schedule); rate: bytes of chunk data per second (0: no limit).
 * -ENOMEM
 */
int scrubd_new(struct scrubd **out, struct vault *v, const char *mountpoint, uint64_t interval_s,
	       uint64_t rate);

/* Start a run now: 1 started, 0 one is running already (*run: its
 * number, counted from 1 per mount), -ESHUTDOWN after scrubd_shutdown,
 * -errno (thread). */
int scrubd_start(struct scrubd *sd, unsigned *run);

/* Start the scheduled run when it is due (the flusher, every second). */
void scrubd_tick(struct scrubd *sd);

/* "scrub_..." status lines of the current or last run, appended at buf
 * (NUL-terminated, cap bytes in all): their length, or 0 when they do not fit. */
size_t scrubd_status(struct scrubd *sd, char *buf, size_t cap);

/* The last finished run's report into buf: "RUN STATE FINDINGS\n", then
 * one line per kept finding "INODE\tPATH\tWHAT\n" (PATH "-" when unknown).
 * Its length (cut at cap - 1), -ENOENT when no run has finished. */
int scrubd_report(struct scrubd *sd, char *buf, size_t cap);

/* Stop a running scrub and wait for it (unmount): prompt, well under a
 * second.  No run starts afterwards.  sd may be NULL. */
void scrubd_shutdown(struct scrubd *sd);
/* After scrubd_shutdown; sd may be NULL. */
void scrubd_free(struct scrubd *sd);

#endif
