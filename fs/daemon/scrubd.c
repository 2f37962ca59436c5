/*
 * The daemon's scrub thread (scrubd.h).  One struct scrub per run; the
 * last one stays, finished, for `medvault status` and the report, until
 * the next run replaces it.
 */
#include "scrubd.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "store/scrub.h"
#include "store/vault.h"

#define SCRUBD_STATUS_INODES 8	/* inode numbers listed in the status */

struct scrubd {
	struct vault *v;
	char *mnt;
	uint64_t interval_s, rate;

	pthread_mutex_t lock;	/* protects everything below */
	struct scrub *cur;	/* the running or the last run; NULL before the first */
	unsigned run;		/* cur's number */
	int running;		/* its thread has not finished scrub_run */
	int joinable;		/* a thread to join before the next */
	pthread_t thread;
	int shut;
	time_t next_due;	/* CLOCK_MONOTONIC seconds; 0: none */
};

static time_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

int scrubd_new(struct scrubd **out, struct vault *v, const char *mountpoint, uint64_t interval_s,
	       uint64_t rate)
{
	struct scrubd *sd = calloc(1, sizeof(*sd));

	*out = NULL;
	if (!sd || (mountpoint && !(sd->mnt = strdup(mountpoint)))) {
		free(sd);
		return -ENOMEM;
	}
	sd->v = v;
	sd->interval_s = interval_s;
	sd->rate = rate;
	/* a full interval after mount, not at mount: a remount loop must
	 * not turn into a scrub loop */
	sd->next_due = interval_s ? mono_now() + (time_t)interval_s : 0;
	pthread_mutex_init(&sd->lock, NULL);
	*out = sd;
	return 0;
}

static void *scrub_main(void *arg)
{
	struct scrubd *sd = arg;
	struct scrub *s;

	pthread_mutex_lock(&sd->lock);
	s = sd->cur;		/* not replaced or freed while running */
	pthread_mutex_unlock(&sd->lock);
	scrub_run(s);
	pthread_mutex_lock(&sd->lock);
	sd->running = 0;
	if (sd->interval_s)
		sd->next_due = mono_now() + (time_t)sd->interval_s;
	pthread_mutex_unlock(&sd->lock);
	return NULL;
}

/* sd->lock held; *old gets the previous run, for the caller to free
 * once it released the lock */
static int start_locked(struct scrubd *sd, struct scrub **old)
{
	struct scrub_opts o = { .rate = sd->rate, .mountpoint = sd->mnt };
	struct scrub *s;
	int rc;

	*old = NULL;
	if (sd->shut)
		return -ESHUTDOWN;
	if (sd->running)
		return 0;
	if (sd->joinable) {
		/* finished: it only has to return */
		pthread_join(sd->thread, NULL);
		sd->joinable = 0;
	}
	if ((rc = scrub_new(&s, sd->v, &o)) < 0)
		return rc;
	*old = sd->cur;
	sd->cur = s;
	sd->run++;
	sd->running = 1;
	if ((rc = pthread_create(&sd->thread, NULL, scrub_main, sd)) != 0) {
		sd->running = 0;
		sd->cur = *old;
		*old = s;
		sd->run--;
		syslog(LOG_ERR, "scrub: cannot start its thread: %s", strerror(rc));
		return -rc;
	}
	sd->joinable = 1;
	return 1;
}

int scrubd_start(struct scrubd *sd, unsigned *run)
{
	struct scrub *old;
	int rc;

	pthread_mutex_lock(&sd->lock);
	rc = start_locked(sd, &old);
	*run = sd->run;
	pthread_mutex_unlock(&sd->lock);
	scrub_free(old);
	return rc;
}

void scrubd_tick(struct scrubd *sd)
{
	struct scrub *old = NULL;

	if (!sd)
		return;
	pthread_mutex_lock(&sd->lock);
	if (sd->next_due && !sd->running && !sd->shut && mono_now() >= sd->next_due) {
		if (start_locked(sd, &old) < 0)
			sd->next_due = mono_now() + 3600;	/* try again in an hour */
	}
	pthread_mutex_unlock(&sd->lock);
	scrub_free(old);
}

size_t scrubd_status(struct scrubd *sd, char *buf, size_t cap)
{
	struct scrub_finding f[SCRUBD_STATUS_INODES];
	struct scrub_progress p;
	char inodes[SCRUBD_STATUS_INODES * 21 + 1] = "-";
	long long next = 0;
	size_t nf = 0, used = 0;
	unsigned run;
	int n;

	pthread_mutex_lock(&sd->lock);
	if (sd->next_due)
		next = (long long)(time(NULL) + (sd->next_due - mono_now()));
	run = sd->run;
	if (sd->cur) {
		scrub_progress_get(sd->cur, &p);
		nf = scrub_findings_get(sd->cur, f, SCRUBD_STATUS_INODES);
	}
	pthread_mutex_unlock(&sd->lock);
	for (size_t i = 0; i < nf; i++) {
		int dup = 0;

		for (size_t j = 0; j < i; j++)
			dup |= f[j].ino == f[i].ino;
		if (!dup)
			used += (size_t)snprintf(inodes + used, sizeof(inodes) - used, "%s%" PRIu64,
						 used ? "," : "", f[i].ino);
	}
	if (!run)
		n = snprintf(buf, cap, "scrub_state never\nscrub_rate %" PRIu64 "\nscrub_next %lld\n",
			     sd->rate, next);
	else
		n = snprintf(buf, cap,
			     "scrub_state %s\nscrub_run %u\nscrub_started %lld\nscrub_finished %lld\n"
			     "scrub_records %" PRIu64 "\nscrub_chunks %" PRIu64 "\nscrub_chunks_total %" PRIu64
			     "\nscrub_bytes %" PRIu64 "\nscrub_findings %" PRIu64
			     "\nscrub_files %" PRIu64 "\nscrub_inodes %s\nscrub_error %d\n"
			     "scrub_rate %" PRIu64 "\nscrub_next %lld\n",
			     scrub_state_name(p.state), run, (long long)p.started, (long long)p.finished,
			     p.records, p.chunks, p.chunks_total, p.bytes, p.findings,
			     p.files, inodes, -p.error, sd->rate, next);
	if (n < 0 || (size_t)n >= cap) {
		if (cap)
			buf[0] = '\0';
		return 0;
	}
	return (size_t)n;
}

int scrubd_report(struct scrubd *sd, char *buf, size_t cap)
{
	struct scrub_finding *f = malloc(SCRUB_FINDINGS_KEPT * sizeof(*f));
	struct scrub_progress p;
	size_t nf = 0, used;
	unsigned run;
	int rc = 0, n;

	if (!f)
		return -ENOMEM;
	pthread_mutex_lock(&sd->lock);
	if (!sd->cur || sd->running) {
		rc = -ENOENT;
	} else {
		scrub_progress_get(sd->cur, &p);
		nf = scrub_findings_get(sd->cur, f, SCRUB_FINDINGS_KEPT);
	}
	run = sd->run;
	pthread_mutex_unlock(&sd->lock);
	if (rc < 0)
		goto out;
	n = snprintf(buf, cap, "%u %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %lld %lld %d\n", run,
		     scrub_state_name(p.state), p.findings, p.files, p.chunks, p.bytes,
		     (long long)p.started, (long long)p.finished, -p.error);
	used = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
	for (size_t i = 0; i < nf && used + 1 < cap; i++) {
		char more[48] = "";

		if (f[i].more)
			snprintf(more, sizeof(more), " (and %" PRIu64 " more chunks)", f[i].more);
		n = snprintf(buf + used, cap - used, "%" PRIu64 "\t%s\t%s%s\n", f[i].ino,
			     f[i].path[0] ? f[i].path : "-", f[i].what, more);
		if (n < 0)
			break;
		used += (size_t)n < cap - used ? (size_t)n : cap - used - 1;
	}
	rc = (int)used;
out:
	free(f);
	return rc;
}

void scrubd_shutdown(struct scrubd *sd)
{
	int join;

	if (!sd)
		return;
	pthread_mutex_lock(&sd->lock);
	sd->shut = 1;
	if (sd->running)
		scrub_stop(sd->cur);
	join = sd->joinable;
	sd->joinable = 0;
	pthread_mutex_unlock(&sd->lock);
	if (join)
		pthread_join(sd->thread, NULL);
}

void scrubd_free(struct scrubd *sd)
{
	if (!sd)
		return;
	scrubd_shutdown(sd);
	scrub_free(sd->cur);
	free(sd->mnt);
	pthread_mutex_destroy(&sd->lock);
	free(sd);
}
