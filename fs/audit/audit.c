/*
 * The access trail's writer: a queue filled by the FUSE threads, one writer
 * thread that seals, chains and appends, rotation by size and by day,
 * sealed checkpoints, retention, and the fail-closed state.  The format is
 * in include/audit/audit.h and fs/audit/audit_record.c.
 */
#include "util/array.h"
#include "util/why.h"
#include "audit/audit.h"

#include <errno.h>
#include <sys/file.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "crypto/aead.h"
#include "crypto/secure.h"
#include "util/fileutil.h"
#include "util/safefile.h"

#define QUEUE_MAX 200000	/* records waiting; beyond, they are counted lost */
#define WAKE_AT 512		/* queued records that wake the writer early */
#define CP_EVERY_US 1000000	/* checkpoint (and fdatasync) at least this often */
#define RETRY_US 1000000	/* a failing log is retried this often */
#define COMM_SLOTS 256
#define COMM_TTL_US 1000000
#define DAY_US 86400000000LL

struct qrec {
	struct qrec *next;
	size_t len;
	int64_t time_us;
	uint8_t pt[];
};

struct comm_slot {
	uint32_t pid;
	int64_t at;		/* monotonic µs; 0: empty */
	char comm[AUDIT_COMM_MAX + 1];
};

struct audit {
	pthread_mutex_t lock;
	pthread_cond_t wake;	/* the writer waits here */
	pthread_cond_t done;	/* audit_sync waits here */
	/* protected by lock */
	struct qrec *qhead, *qtail;
	uint64_t nqueued;
	uint64_t enq_gen;	/* records ever queued */
	uint64_t written_gen;	/* of those, written in order */
	uint64_t durable_gen;	/* of those, on stable storage */
	uint64_t sync_want;
	uint64_t lost_pending, lost_total;
	uint64_t written_total;
	int failing;
	int stop;
	int running;
	int inject;		/* tests: errno for the next writes */
	pthread_t thread;

	/* the writer's own (audit_open/audit_close run without a thread) */
	char *dir;
	int dirfd, fd;
	uint8_t uuid[AUDIT_UUID_LEN];
	struct aead *k;
	int fail_open;
	uint64_t max_file;
	unsigned retain_days;
	int64_t (*clock_us)(void *);
	void *clock_arg;
	uint64_t next_seq, base_seq, cp_seq;
	uint8_t head[AUDIT_HASH_LEN];
	uint64_t file_no, file_len;
	int64_t file_day;
	int64_t last_cp;
	uint64_t files_made;
	uint8_t *wbuf;
	size_t wcap;
	int last_err;
	int opened;		/* audit_open succeeded: close writes the last words */
	audit_mac_fn token_mac;	/* NULL: checkpoints sealed by MK only */
	void *token_arg;
	int token_fresh;
	int tcp_stale;		/* checkpoint.token is superseded once we seal one */
	int export_fd;		/* each checkpoint's line also goes here (-1: none) */
	char uuid_hex[2 * AUDIT_UUID_LEN + 1];

	pthread_mutex_t comm_lock;
	struct comm_slot comm[COMM_SLOTS];
};

static int64_t real_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_us(struct audit *a)
{
	return a->clock_us ? a->clock_us(a->clock_arg) : real_clock();
}

static int64_t day_of(int64_t us)
{
	return us >= 0 ? us / DAY_US : (us - DAY_US + 1) / DAY_US;
}

/* ---- the process-name cache ---- */

void audit_comm(struct audit *a, uint32_t pid, char out[AUDIT_COMM_MAX + 1])
{
	struct comm_slot *s = &a->comm[pid % COMM_SLOTS];
	int64_t t = mono_us();
	char path[64];
	ssize_t n = -1;
	int fd;

	pthread_mutex_lock(&a->comm_lock);
	if (s->at && s->pid == pid && t - s->at < COMM_TTL_US) {
		memcpy(out, s->comm, AUDIT_COMM_MAX + 1);
		pthread_mutex_unlock(&a->comm_lock);
		return;
	}
	pthread_mutex_unlock(&a->comm_lock);
	snprintf(path, sizeof(path), "/proc/%" PRIu32 "/comm", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, out, AUDIT_COMM_MAX);
		close(fd);
	}
	if (n <= 0) {
		strcpy(out, "?");
		return;		/* gone: do not cache, the pid may come back */
	}
	out[n] = '\0';
	if (n > 0 && out[n - 1] == '\n')
		out[n - 1] = '\0';
	pthread_mutex_lock(&a->comm_lock);
	s->pid = pid;
	s->at = t;
	memcpy(s->comm, out, AUDIT_COMM_MAX + 1);
	pthread_mutex_unlock(&a->comm_lock);
}

/* ---- queueing (FUSE threads) ---- */

static void enqueue(struct audit *a, struct qrec *q)
{
	pthread_mutex_lock(&a->lock);
	if (a->nqueued >= QUEUE_MAX) {
		a->lost_pending++;
		a->lost_total++;
		pthread_mutex_unlock(&a->lock);
		free(q);
		return;
	}
	q->next = NULL;
	if (a->qtail)
		a->qtail->next = q;
	else
		a->qhead = q;
	a->qtail = q;
	a->nqueued++;
	a->enq_gen++;
	if (a->nqueued == WAKE_AT)
		pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
}

void audit_log(struct audit *a, const struct audit_event *e)
{
	uint8_t buf[AUDIT_FRAME_MAX];
	char comm[AUDIT_COMM_MAX + 1] = "";
	struct qrec *q;
	int64_t t;
	size_t n;

	if (!a)
		return;
	t = now_us(a);
	if (e->pid)
		audit_comm(a, e->pid, comm);
	n = audit_record_pack(buf, AUDIT_FRAME_MAX - AUDIT_FRAME_HEAD - AUDIT_SEAL_LEN, t, comm, e);
	q = malloc(sizeof(*q) + n);
	if (!q) {
		pthread_mutex_lock(&a->lock);
		a->lost_pending++;
		a->lost_total++;
		pthread_mutex_unlock(&a->lock);
		secure_wipe(buf, n);
		return;
	}
	q->len = n;
	q->time_us = t;
	memcpy(q->pt, buf, n);
	secure_wipe(buf, n);
	enqueue(a, q);
}

int audit_allowed(struct audit *a)
{
	int rc = 0;

	if (!a)
		return 0;
	pthread_mutex_lock(&a->lock);
	if (a->failing && !a->fail_open)
		rc = -EACCES;
	pthread_mutex_unlock(&a->lock);
	return rc;
}

void audit_inject_error(struct audit *a, int err)
{
	pthread_mutex_lock(&a->lock);
	a->inject = err;
	pthread_mutex_unlock(&a->lock);
}

void audit_get_stats(struct audit *a, struct audit_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	st->written = a->written_total;
	st->queued = a->nqueued;
	st->lost = a->lost_total;
	st->files = a->files_made;
	st->failing = a->failing;
	pthread_mutex_unlock(&a->lock);
}

/* ---- files (writer thread, or audit_open/audit_close) ---- */

static int injected(struct audit *a)
{
	int e;

	pthread_mutex_lock(&a->lock);
	e = a->inject;
	pthread_mutex_unlock(&a->lock);
	return e ? -e : 0;
}

/* the directory itself, made again if someone removed it */
static int ensure_dir(struct audit *a)
{
	struct stat st;

	if (a->dirfd >= 0 && fstat(a->dirfd, &st) == 0 && st.st_nlink > 0)
		return 0;
	if (a->dirfd >= 0) {
		syslog(LOG_ALERT, "audit directory %s was removed; making it again (the records it held are gone)",
		       a->dir);
		close(a->dirfd);
		a->dirfd = -1;
	}
	if (mkdir(a->dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	a->dirfd = safe_dir_open(a->dir, NULL, 0);
	return a->dirfd < 0 ? a->dirfd : 0;
}

struct prune_walk {
	int64_t newest;		/* the latest record time in the file */
};

static int prune_note(void *arg, const struct audit_record *r)
{
	struct prune_walk *pw = arg;

	if (r->time_us > pw->newest)
		pw->newest = r->time_us;
	return 0;
}

/*
 * May names[i] go?  Only what the keys vouch for counts, never a header
 * as read: the file must authenticate record by record, start at the
 * oldest record the checkpoint keeps, end where the (authenticated) next
 * file begins, and hold no record newer than the cut-off.  0 yes, 1 not
 * yet (too recent), -EBADMSG no (what says why).
 */
static int prune_check(struct audit *a, char **names, size_t i, int64_t cut,
		       char *what, size_t whatlen)
{
	struct audit_problem p = { 0 };
	struct audit_walk w;
	struct audit_header next;
	struct prune_walk pw = { INT64_MIN };
	uint8_t buf[AUDIT_HDR_LEN];
	ssize_t got = -1;
	int fd, rc;

	memset(&w, 0, sizeof(w));
	rc = audit_walk_file(a->dirfd, names[i], a->k, a->uuid, 1, 0, NULL, &w, prune_note, &pw, &p);
	if (rc < 0)
		return why_set(what, whatlen, rc, "%s cannot be read (%s)", names[i], strerror(-rc));
	if (p.found)
		return why_set(what, whatlen, -EBADMSG, "%s", p.what);
	if (w.next_seq - w.records != a->base_seq)
		return why_set(what, whatlen, -EBADMSG, "%s starts at record %" PRIu64
			       " but the oldest record kept is %" PRIu64, names[i],
			       w.next_seq - w.records, a->base_seq);
	fd = openat(a->dirfd, names[i + 1], O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd >= 0) {
		got = pread(fd, buf, sizeof(buf), 0);
		close(fd);
	}
	if (got != (ssize_t)sizeof(buf) || audit_header_decode(a->k, buf, sizeof(buf), &next) < 0 ||
	    memcmp(next.uuid, a->uuid, AUDIT_UUID_LEN))
		return why_set(what, whatlen, -EBADMSG, "%s: file header fails authentication", names[i + 1]);
	if (next.first_seq != w.next_seq || memcmp(next.prev, w.head, AUDIT_HASH_LEN))
		return why_set(what, whatlen, -EBADMSG, "%s does not continue the chain of %s",
			       names[i + 1], names[i]);
	return next.created_us < cut && pw.newest < cut ? 0 : 1;
}

/* Delete whole files older than the retention period: a file goes when the
 * one after it was started before the cut-off (so all its records are
 * older).  The oldest kept record becomes the checkpoint's base.  A file
 * that fails authentication stops it (nothing more is deleted) and is
 * reported, in syslog and in the trail. */
static void prune(struct audit *a, int64_t now)
{
	char **names = NULL, what[AUDIT_DETAIL_MAX - 32] = "";
	struct audit_header *h = NULL;
	size_t n = 0, gone = 0;
	int64_t cut = now - (int64_t)a->retain_days * DAY_US;
	uint64_t from = 0, to = 0;
	int refused = 0;

	if (audit_list_files(a->dirfd, &names, &h, &n) < 0)
		return;
	for (size_t i = 0; i + 1 < n; i++) {
		int rc;

		/* the headers as read only decide what not to look at */
		if (h[i].file_no >= a->file_no)
			break;
		if (h[i].first_seq != UINT64_MAX && h[i + 1].first_seq != UINT64_MAX &&
		    h[i + 1].created_us >= cut)
			break;
		rc = prune_check(a, names, i, cut, what, sizeof(what));
		if (rc == 1)
			break;
		if (rc < 0) {
			refused = 1;
			break;
		}
		if (unlinkat(a->dirfd, names[i], 0) < 0)
			break;
		if (!gone)
			from = h[i].first_seq;
		to = h[i + 1].first_seq;
		a->base_seq = to;
		gone++;
	}
	audit_free_list(names, h, n);
	if (gone) {
		char d[AUDIT_DETAIL_MAX];
		struct audit_event e = { .op = AUDIT_OP_PRUNE, .detail = d };

		fsync(a->dirfd);
		snprintf(d, sizeof(d), "files=%zu records=%" PRIu64 "..%" PRIu64 " retain_days=%u",
			 gone, from, to - 1, a->retain_days);
		audit_log(a, &e);
		syslog(LOG_INFO, "audit: retention removed %zu old log files (records %" PRIu64 "..%" PRIu64 ")",
		       gone, from, to - 1);
	}
	if (refused) {
		char d[AUDIT_DETAIL_MAX];
		struct audit_event e = { .op = AUDIT_OP_PRUNE, .result = EBADMSG, .detail = d };

		snprintf(d, sizeof(d), "refused: %s", what);
		audit_log(a, &e);
		syslog(LOG_ALERT, "audit: retention deletes nothing more in %s: %s (planted or altered; "
		       "run medvault audit verify)", a->dir, what);
	}
}

/* Start a new file whose first record will be next_seq. */
static int rotate(struct audit *a, int64_t t)
{
	struct audit_header h;
	uint8_t buf[AUDIT_HDR_LEN];
	char name[64];
	int rc, fd;

	if (a->fd >= 0) {
		fdatasync(a->fd);
		close(a->fd);
		a->fd = -1;
	}
	if ((rc = ensure_dir(a)) < 0)
		return rc;
	if ((rc = injected(a)) < 0)
		return rc;
	memset(&h, 0, sizeof(h));
	memcpy(h.uuid, a->uuid, AUDIT_UUID_LEN);
	h.first_seq = a->next_seq;
	memcpy(h.prev, a->head, AUDIT_HASH_LEN);
	h.created_us = t;
	h.file_no = a->file_no + 1;
	audit_header_encode(a->k, &h, buf);
	audit_file_name(name, sizeof(name), h.file_no, t);
	fd = openat(a->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if ((rc = write_full(fd, buf, sizeof(buf))) < 0) {
		close(fd);
		unlinkat(a->dirfd, name, 0);
		return rc;
	}
	fsync(a->dirfd);
	a->fd = fd;
	a->file_no = h.file_no;
	a->file_len = AUDIT_HDR_LEN;
	a->file_day = day_of(t);
	pthread_mutex_lock(&a->lock);
	a->files_made++;
	pthread_mutex_unlock(&a->lock);
	if (a->file_no > 1)
		syslog(LOG_INFO, "audit: new log file %s at record %" PRIu64, name, a->next_seq);
	prune(a, t);
	return 0;
}

/* Append wlen bytes of frames to the current file; on failure the file is
 * cut back so it never ends in a half record. */
static int append(struct audit *a, const uint8_t *p, size_t n)
{
	struct stat st;
	int rc;

	if ((rc = injected(a)) < 0)
		return rc;
	if (fstat(a->fd, &st) == 0 && st.st_nlink == 0)
		return -ENOENT;		/* removed since write_list looked */
	rc = write_full(a->fd, p, n);
	if (rc < 0) {
		if (ftruncate(a->fd, (off_t)a->file_len) < 0)
			syslog(LOG_ERR, "audit: cannot cut back a partial write: %s", strerror(errno));
		return rc;
	}
	a->file_len += n;
	return 0;
}

/*
 * Seal and append the records of list in order.  Returns 0, or -errno with
 * *rest the first record not written (the chain state is rolled back to
 * it).  Records are batched: one write per file touched.
 */
static int write_list(struct audit *a, struct qrec *list, struct qrec **rest, uint64_t *nwritten)
{
	struct qrec *seg = list;
	uint64_t seg_seq = a->next_seq, seg_n = 0;
	uint8_t seg_head[AUDIT_HASH_LEN];
	size_t wlen = 0;
	int rc = 0;

	*nwritten = 0;
	memcpy(seg_head, a->head, AUDIT_HASH_LEN);
	if (a->fd >= 0) {
		struct stat st;

		/* someone removed the file we append to: go on in a new one (the
		 * gap stays visible to verify) */
		if (fstat(a->fd, &st) == 0 && st.st_nlink == 0) {
			syslog(LOG_ALERT, "audit log file %" PRIu64 " in %s was removed while in use",
			       a->file_no, a->dir);
			close(a->fd);
			a->fd = -1;
		}
	}
	for (struct qrec *r = list; r; r = r->next) {
		size_t need = AUDIT_FRAME_HEAD + r->len + AUDIT_SEAL_LEN;
		int turn = a->fd < 0 || day_of(r->time_us) != a->file_day ||
			   (a->file_len + wlen + need > a->max_file && a->file_len + wlen > AUDIT_HDR_LEN);

		if (turn) {
			if (wlen) {
				if ((rc = append(a, a->wbuf, wlen)) < 0)
					goto fail;
				*nwritten += seg_n;
				wlen = 0;
			}
			seg = r;
			seg_seq = a->next_seq;
			memcpy(seg_head, a->head, AUDIT_HASH_LEN);
			seg_n = 0;
			if ((rc = rotate(a, r->time_us)) < 0)
				goto fail;
		}
		if ((rc = array_reserve(&a->wbuf, &a->wcap, wlen + need, 1)) < 0)
			goto fail;
		wlen += audit_frame_seal(a->k, a->uuid, a->next_seq, a->head, r->pt, r->len,
					 a->wbuf + wlen, a->wcap - wlen);
		a->next_seq++;
		seg_n++;
	}
	if (wlen && (rc = append(a, a->wbuf, wlen)) < 0)
		goto fail;
	*nwritten += seg_n;
	*rest = NULL;
	return 0;
fail:
	a->next_seq = seg_seq;
	memcpy(a->head, seg_head, AUDIT_HASH_LEN);
	*rest = seg;
	return rc;
}

/*
 * Every checkpoint's count and chain head leave the host (syslog, and the
 * export file if any): a log and checkpoint put back from a copy, however
 * authentic, are then behind a line already shipped, and `audit verify
 * --expect-log` says so.
 */
static void export_checkpoint(struct audit *a, const struct audit_checkpoint *c)
{
	char head[2 * AUDIT_HASH_LEN + 1], line[256];
	int n;

	for (int i = 0; i < AUDIT_HASH_LEN; i++)
		sprintf(head + 2 * i, "%02x", c->head[i]);
	n = snprintf(line, sizeof(line), "audit checkpoint: volume=%s records=%" PRIu64 " head=%s base=%"
		     PRIu64 " file=%" PRIu64 " sealed=%s", a->uuid_hex, c->next_seq, head, c->base_seq,
		     c->file_no, c->version == 2 ? "token" : "key");
	syslog(LOG_INFO, "%s", line);
	if (a->export_fd >= 0 && n > 0 && (size_t)n < sizeof(line) - 1) {
		line[n++] = '\n';
		if (write_full(a->export_fd, (const uint8_t *)line, (size_t)n) < 0)
			syslog(LOG_WARNING, "audit: cannot append to the checkpoint export file: %s",
			       strerror(errno));
	}
}

/* fdatasync the log, then replace DIR/checkpoint atomically. */
static int checkpoint(struct audit *a, int64_t t)
{
	struct audit_checkpoint c;
	uint8_t buf[AUDIT_CP_MAX];
	int len, rc;

	if (a->fd >= 0 && fdatasync(a->fd) < 0)
		return -errno;
	if ((rc = ensure_dir(a)) < 0)
		return rc;
	if ((rc = injected(a)) < 0)
		return rc;
	memset(&c, 0, sizeof(c));
	memcpy(c.uuid, a->uuid, AUDIT_UUID_LEN);
	c.base_seq = a->base_seq;
	c.next_seq = a->next_seq;
	memcpy(c.head, a->head, AUDIT_HASH_LEN);
	c.time_us = t;
	c.file_no = a->file_no;
	len = audit_cp_seal(a->k, &c, a->token_mac, a->token_arg, buf);
	if (len < 0) {
		syslog(LOG_ERR, "audit: the token cannot seal the checkpoint: %s", strerror(-len));
		return len;
	}
	/* through a temporary of an unpredictable name (safefile.h) */
	if ((rc = safe_write_atomic(a->dirfd, AUDIT_CP_NAME, buf, (size_t)len, 0600)) < 0)
		return rc;
	if (a->tcp_stale && unlinkat(a->dirfd, AUDIT_CP_TOKEN_NAME, 0) == 0)
		fsync(a->dirfd);
	a->tcp_stale = 0;
	a->cp_seq = a->next_seq;
	a->last_cp = mono_us();
	export_checkpoint(a, &c);
	return 0;
}

static void set_failing(struct audit *a, int rc)
{
	/* called with a->lock held */
	if (!a->failing || a->last_err != rc)
		syslog(LOG_ALERT, "audit log %s cannot be written (%s): %s", a->dir,
		       audit_errno_name(-rc),
		       a->fail_open ? "continuing WITHOUT an access trail (--audit-failure=continue)"
				    : "new opens are refused (EACCES) until it can be written again");
	a->failing = 1;
	a->last_err = rc;
}

/*
 * One pass of the writer: take the queue, write it, checkpoint when due.
 * final: write a checkpoint whatever happens (unmount).
 */
static void drain(struct audit *a, int final)
{
	struct qrec *list, *rest = NULL, *r;
	uint64_t n, nw = 0, lost = 0;
	int want_sync, rc = 0, was_failing, synced = 0;

	pthread_mutex_lock(&a->lock);
	list = a->qhead;
	n = a->nqueued;
	a->qhead = a->qtail = NULL;
	a->nqueued = 0;
	want_sync = a->sync_want > a->durable_gen;
	was_failing = a->failing;
	if (!was_failing) {
		lost = a->lost_pending;
		a->lost_pending = 0;
	}
	pthread_mutex_unlock(&a->lock);

	if (lost) {
		/* queued behind this pass: the gap is near where it happened */
		char d[64];
		struct audit_event e = { .op = AUDIT_OP_LOST, .detail = d };

		snprintf(d, sizeof(d), "records=%" PRIu64, lost);
		audit_log(a, &e);
	}
	if (list)
		rc = write_list(a, list, &rest, &nw);
	/* after a failure, also retry an empty pass: the checkpoint clears it */
	if (rc == 0 && (final || was_failing ||
			(a->next_seq != a->cp_seq && mono_us() - a->last_cp >= CP_EVERY_US))) {
		rc = checkpoint(a, now_us(a));
		synced = rc == 0;
	} else if (rc == 0 && want_sync) {
		/* an fsync needs its records on disk, not a new checkpoint: one
		 * flush instead of three; the next periodic checkpoint covers them */
		if (a->fd >= 0 && fdatasync(a->fd) < 0)
			rc = -errno;
		synced = rc == 0;
	}

	for (r = list; r && r != rest; ) {
		struct qrec *nx = r->next;

		secure_wipe(r->pt, r->len);
		free(r);
		r = nx;
	}
	pthread_mutex_lock(&a->lock);
	a->written_gen += nw;
	a->written_total += nw;
	if (rest) {
		/* put the unwritten records back in front, in order */
		struct qrec *last = rest;
		uint64_t k = 1;

		while (last->next) {
			last = last->next;
			k++;
		}
		last->next = a->qhead;
		if (!a->qhead)
			a->qtail = last;
		a->qhead = rest;
		a->nqueued += k;
	}
	if (rc < 0) {
		set_failing(a, rc);
	} else {
		if (a->failing)
			syslog(LOG_NOTICE, "audit log %s can be written again", a->dir);
		a->failing = 0;
		if (synced)
			a->durable_gen = a->written_gen;
	}
	(void)n;
	pthread_cond_broadcast(&a->done);
	pthread_mutex_unlock(&a->lock);
}

static void *writer_main(void *arg)
{
	struct audit *a = arg;

	pthread_mutex_lock(&a->lock);
	while (!a->stop) {
		struct timespec until;
		int64_t wait = a->failing ? RETRY_US : CP_EVERY_US;

		/* a failing log is retried once per RETRY_US, whoever asks */
		if (a->failing || (a->nqueued < WAKE_AT && a->sync_want <= a->durable_gen)) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += wait / 1000000;
			until.tv_nsec += (long)(wait % 1000000) * 1000;
			if (until.tv_nsec >= 1000000000) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&a->wake, &a->lock, &until);
		}
		if (a->stop)
			break;
		pthread_mutex_unlock(&a->lock);
		drain(a, 0);
		pthread_mutex_lock(&a->lock);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

uint64_t audit_sync_start(struct audit *a)
{
	uint64_t target;

	if (!a)
		return 0;
	pthread_mutex_lock(&a->lock);
	target = a->enq_gen;
	if (a->durable_gen < target && a->sync_want < target) {
		a->sync_want = target;
		if (a->running && !a->failing)
			pthread_cond_signal(&a->wake);
	}
	pthread_mutex_unlock(&a->lock);
	return target;
}

int audit_sync(struct audit *a)
{
	return audit_sync_wait(a, audit_sync_start(a));
}

int audit_sync_wait(struct audit *a, uint64_t target)
{
	int rc = 0, running;

	if (!a)
		return 0;
	pthread_mutex_lock(&a->lock);
	running = a->running;
	if (a->durable_gen >= target) {
		pthread_mutex_unlock(&a->lock);
		return 0;
	}
	if (a->sync_want < target)
		a->sync_want = target;
	if (!running) {
		pthread_mutex_unlock(&a->lock);
		drain(a, 0);
		pthread_mutex_lock(&a->lock);
	} else if (!a->failing) {
		pthread_cond_signal(&a->wake);
		/* give up when the writer reports a failure: fail closed now */
		while (a->durable_gen < target && !a->failing && !a->stop)
			pthread_cond_wait(&a->done, &a->lock);
	}
	if (a->durable_gen < target && !a->fail_open)
		rc = -EIO;
	pthread_mutex_unlock(&a->lock);
	return rc;
}

/* ---- lifetime ---- */

static int mkdir_p(const char *dir)
{
	char tmp[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int is_under(const char *path, const char *top)
{
	char real[PATH_MAX];
	size_t n;

	if (!top || !realpath(top, real))
		return 0;
	n = strlen(real);
	if (n == 1)
		return 1;
	return !strncmp(path, real, n) && (path[n] == '/' || path[n] == '\0');
}

/* Resume the chain: check the newest files against the sealed checkpoint,
 * cut off a torn tail. */
/*
 * The token's say on the checkpoint found at mount.  With the token: a
 * checkpoint it sealed must verify; one sealed by MK alone is accepted
 * only with the token-sealed checkpoint kept aside by the mount that
 * wrote it (*tcp, returns 1: the chain must go through it), or when the
 * token's key was only just made.  Without the token: a token-sealed
 * checkpoint is kept aside before MK-sealed ones replace it.  0 or 1, or
 * -errno with why set.
 */
static int resume_token(struct audit *a, const struct audit_checkpoint *cp, const uint8_t *raw,
			size_t rawlen, struct audit_checkpoint *tcp, char *why, size_t whylen)
{
	int rc;

	if (!a->token_mac) {
		if (cp->version != 2)
			return 0;
		if ((rc = safe_write_atomic(a->dirfd, AUDIT_CP_TOKEN_NAME, raw, rawlen, 0600)) < 0)
			return why_set(why, whylen, rc, "audit log %s: cannot keep the token-sealed checkpoint: %s",
				       a->dir, strerror(-rc));
		syslog(LOG_WARNING, "audit: %s is mounted without its token: checkpoints are sealed by the "
		       "master key alone until a mount with the token", a->dir);
		return 0;
	}
	a->tcp_stale = 1;
	if (cp->version == 2) {
		rc = audit_cp_token_check(cp, a->token_mac, a->token_arg);
		if (rc < 0)
			return why_set(why, whylen, rc == -EBADMSG ? -EBADMSG : rc,
				       "audit log %s: %s; run medvault audit verify, and move the directory "
				       "aside to start a new log", a->dir,
				       rc == -EBADMSG ? "the checkpoint's token seal does not verify (forged?)"
						      : "the token cannot check the checkpoint");
		return 0;
	}
	rc = audit_cp_read(a->dirfd, AUDIT_CP_TOKEN_NAME, a->k, tcp);
	if (rc == -ENOENT && a->token_fresh)
		return 0;	/* the first mount with the token since it got the key */
	if (rc == -ENOENT)
		return why_set(why, whylen, -EBADMSG, "audit log %s: the checkpoint is sealed by the master "
			       "key alone and no token-sealed one is kept, though the token holds this "
			       "trail's key (rewritten by a passphrase holder?); run medvault audit verify, "
			       "and move the directory aside to start a new log", a->dir);
	if (rc == 0 && memcmp(tcp->uuid, a->uuid, AUDIT_UUID_LEN))
		rc = -EBADMSG;
	if (rc == 0)
		rc = audit_cp_token_check(tcp, a->token_mac, a->token_arg);
	if (rc == 0 && tcp->next_seq > cp->next_seq)
		rc = -EBADMSG;
	if (rc < 0)
		return why_set(why, whylen, -EBADMSG, "audit log %s: the kept token-sealed checkpoint "
			       "does not verify or is ahead of the checkpoint (%s); run medvault audit "
			       "verify, and move the directory aside to start a new log", a->dir,
			       strerror(-rc));
	return 1;
}

static int resume(struct audit *a, char *why, size_t whylen)
{
	uint8_t buf[AUDIT_CP_MAX + 1];
	struct audit_checkpoint cp, tcp;
	struct audit_expect texp = { 0 };
	uint64_t from_no;
	int have_tcp;
	struct audit_problem p = { 0 };
	struct audit_walk w;
	char **names = NULL;
	struct audit_header *h = NULL;
	size_t n = 0, got = 0, first;
	char cwhy[256];
	ssize_t r;
	int fd, rc, walked = 0;

	memset(&w, 0, sizeof(w));
	if ((rc = audit_list_files(a->dirfd, &names, &h, &n)) < 0)
		return why_set(why, whylen, rc, "cannot list the audit directory %s: %s", a->dir, strerror(-rc));
	fd = safe_open(a->dirfd, AUDIT_CP_NAME, O_RDONLY, 0, AUDIT_CP_NAME, cwhy, sizeof(cwhy));
	if (fd < 0) {
		rc = fd;
		if (rc == -ENOENT && n == 0) {
			rc = 0;		/* a new log */
			goto out;
		}
		why_set(why, whylen, rc == -ENOENT ? -EBADMSG : rc,
			"audit log %s: %s", a->dir,
			rc == -ENOENT ? "log files but no checkpoint (removed?); run medvault audit verify "
					"and move the directory aside to start a new log" : cwhy);
		rc = rc == -ENOENT ? -EBADMSG : rc;
		goto out;
	}
	r = pread(fd, buf, sizeof(buf), 0);
	got = r > 0 ? (size_t)r : 0;
	close(fd);
	if (audit_cp_decode(a->k, buf, got, &cp) < 0) {
		rc = why_set(why, whylen, -EBADMSG,
			     "audit log %s: the checkpoint fails authentication (altered, or another volume's)",
			     a->dir);
		goto out;
	}
	if (memcmp(cp.uuid, a->uuid, AUDIT_UUID_LEN)) {
		rc = why_set(why, whylen, -EBADMSG, "audit directory %s belongs to another volume", a->dir);
		goto out;
	}
	if ((rc = resume_token(a, &cp, buf, got, &tcp, why, whylen)) < 0)
		goto out;
	have_tcp = rc;
	a->base_seq = cp.base_seq;
	if (n > 0) {
		struct stat st;

		/* a crash between creating a file and writing its header */
		if (fstatat(a->dirfd, names[n - 1], &st, 0) == 0 && st.st_size < AUDIT_HDR_LEN &&
		    h[n - 1].file_no > cp.file_no && unlinkat(a->dirfd, names[n - 1], 0) == 0) {
			syslog(LOG_WARNING, "audit: removed %s, a log file cut short before its header",
			       names[n - 1]);
			free(names[--n]);
		}
	}
	from_no = cp.file_no;
	if (have_tcp && tcp.next_seq > 0) {
		/* walk from the token's checkpoint on: the chain must pass it */
		from_no = tcp.file_no < from_no ? tcp.file_no : from_no;
		texp.count = tcp.next_seq;
		memcpy(texp.head, tcp.head, AUDIT_HASH_LEN);
		w.exp = &texp;
		w.nexp = 1;
	}
	for (first = 0; first < n && h[first].file_no < from_no; first++)
		;
	for (size_t i = first; i < n && !p.found; i++) {
		rc = audit_walk_file(a->dirfd, names[i], a->k, a->uuid, i == first, i + 1 == n,
				     &cp, &w, NULL, NULL, &p);
		if (rc < 0) {
			why_set(why, whylen, rc, "cannot read %s/%s: %s", a->dir, names[i], strerror(-rc));
			goto out;
		}
		walked = 1;
	}
	if (!p.found && cp.next_seq > 0 && (!walked || w.next_seq < cp.next_seq))
		snprintf(p.what, sizeof(p.what), "records up to %" PRIu64 " are missing (truncated)",
			 cp.next_seq - 1), p.found = 1;
	else if (!p.found && cp.next_seq > 0 && w.cp_met != 1)
		snprintf(p.what, sizeof(p.what), "the chain does not match the checkpoint"), p.found = 1;
	else if (!p.found && w.nexp && texp.state != 1)
		snprintf(p.what, sizeof(p.what), "the chain does not go through the token-sealed checkpoint"),
			p.found = 1;
	if (p.found) {
		rc = why_set(why, whylen, -EBADMSG,
			     "audit log %s fails verification: %s; run medvault audit verify, and move "
			     "the directory aside to start a new log", a->dir, p.what);
		goto out;
	}
	a->next_seq = w.next_seq;
	a->cp_seq = cp.next_seq;
	memcpy(a->head, w.head, AUDIT_HASH_LEN);
	a->file_no = w.file_no;
	if (walked) {
		a->fd = safe_open(a->dirfd, w.file, O_WRONLY | O_APPEND, 0, w.file, NULL, 0);
		if (a->fd < 0) {
			rc = why_set(why, whylen, a->fd, "cannot open %s/%s: %s", a->dir, w.file,
				     strerror(-a->fd));
			a->fd = -1;
			goto out;
		}
		if (w.good_len < w.file_len) {
			char d[96];
			struct audit_event e = { .op = AUDIT_OP_RECOVER, .detail = d };

			if (ftruncate(a->fd, (off_t)w.good_len) < 0) {
				rc = why_set(why, whylen, -errno, "cannot repair %s/%s: %s", a->dir,
					     w.file, strerror(errno));
				goto out;
			}
			snprintf(d, sizeof(d), "incomplete record of %" PRIu64 " bytes dropped at record %" PRIu64,
				 w.file_len - w.good_len, w.next_seq);
			audit_log(a, &e);
			syslog(LOG_WARNING, "audit: %s", d);
		}
		a->file_len = w.good_len;
		a->file_day = day_of(w.file_created_us);
	}
	rc = 0;
out:
	audit_free_list(names, h, n);
	return rc;
}

int audit_open(struct audit **out, const struct audit_opts *o, char *why, size_t whylen)
{
	struct audit *a;
	char real[PATH_MAX];
	int rc;

	*out = NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return why_set(why, whylen, -ENOMEM, "out of memory");
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->wake, NULL);
	pthread_cond_init(&a->done, NULL);
	pthread_mutex_init(&a->comm_lock, NULL);
	a->dirfd = a->fd = a->export_fd = -1;
	memcpy(a->uuid, o->uuid, AUDIT_UUID_LEN);
	for (int i = 0; i < AUDIT_UUID_LEN; i++)
		sprintf(a->uuid_hex + 2 * i, "%02x", a->uuid[i]);
	a->token_mac = o->token_mac;
	a->token_arg = o->token_arg;
	a->token_fresh = o->token_fresh;
	a->fail_open = o->fail_open;
	a->max_file = o->max_file ? o->max_file : AUDIT_DEFAULT_MAX_FILE;
	a->retain_days = o->retain_days ? o->retain_days : AUDIT_DEFAULT_RETAIN_DAYS;
	a->clock_us = o->clock_us;
	a->clock_arg = o->clock_arg;
	a->last_cp = mono_us();
	if ((rc = mkdir_p(o->dir)) < 0) {
		why_set(why, whylen, rc, "cannot create the audit directory %s: %s", o->dir, strerror(-rc));
		goto fail;
	}
	if (!realpath(o->dir, real) || !(a->dir = strdup(real))) {
		rc = why_set(why, whylen, -errno, "audit directory %s: %s", o->dir, strerror(errno));
		goto fail;
	}
	if (is_under(a->dir, o->store) || is_under(a->dir, o->mountpoint)) {
		rc = why_set(why, whylen, -EINVAL,
			     "the audit directory %s must not be inside the store or the mount point", o->dir);
		goto fail;
	}
	a->dirfd = safe_dir_open(a->dir, why, whylen);
	if (a->dirfd < 0) {
		rc = a->dirfd;
		a->dirfd = -1;
		goto fail;
	}
	/* one writer per trail: a snapshot or copy of this volume mounted
	 * beside it would otherwise fork the hash chain */
	if (flock(a->dirfd, LOCK_EX | LOCK_NB) < 0) {
		rc = why_set(why, whylen, -EBUSY,
			     "audit trail %s is in use by another mount of this volume; give this one its own --audit-dir",
			     a->dir);
		goto fail;
	}
	if (o->export_file) {
		a->export_fd = open(o->export_file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK |
				    O_CLOEXEC, 0600);
		if (a->export_fd < 0) {
			rc = why_set(why, whylen, -errno, "checkpoint export file %s: %s", o->export_file,
				     strerror(errno));
			goto fail;
		}
	}
	if ((rc = aead_new(&a->k, AEAD_XCHACHA20POLY1305, o->key)) < 0) {
		why_set(why, whylen, rc, "cannot set up the audit key: %s", strerror(-rc));
		goto fail;
	}
	if ((rc = resume(a, why, whylen)) < 0)
		goto fail;
	{
		struct audit_event e = { .op = AUDIT_OP_MOUNT, .uid = (uint32_t)getuid(),
					 .gid = (uint32_t)getgid(), .pid = (uint32_t)getpid(),
					 .detail = o->mount_detail };

		audit_log(a, &e);
	}
	/* the first write now, so an unwritable directory fails the mount */
	drain(a, 1);
	if (a->failing) {
		rc = why_set(why, whylen, a->last_err, "cannot write the audit log in %s: %s", o->dir,
			     strerror(-a->last_err));
		goto fail;
	}
	a->opened = 1;
	*out = a;
	return 0;
fail:
	audit_close(a);
	return rc;
}

int audit_start(struct audit *a)
{
	int rc;

	if (!a)
		return 0;
	rc = pthread_create(&a->thread, NULL, writer_main, a);
	if (rc)
		return -rc;
	pthread_mutex_lock(&a->lock);
	a->running = 1;
	pthread_mutex_unlock(&a->lock);
	return 0;
}

void audit_close(struct audit *a)
{
	struct qrec *r;
	int running;

	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	running = a->running;
	pthread_mutex_unlock(&a->lock);
	if (a->opened) {
		struct audit_event e = { .op = AUDIT_OP_UNMOUNT, .uid = (uint32_t)getuid(),
					 .gid = (uint32_t)getgid(), .pid = (uint32_t)getpid() };

		audit_log(a, &e);
	}
	pthread_mutex_lock(&a->lock);
	a->stop = 1;
	pthread_cond_broadcast(&a->wake);
	pthread_mutex_unlock(&a->lock);
	if (running)
		pthread_join(a->thread, NULL);
	if (a->opened) {
		/* last words: a few tries, then say what is lost */
		for (int i = 0; i < 3; i++) {
			drain(a, 1);
			if (!a->failing)
				break;
		}
		if (a->failing || a->nqueued)
			syslog(LOG_ALERT, "audit: %" PRIu64 " records could not be written to %s at unmount",
			       a->nqueued, a->dir);
		else
			syslog(LOG_INFO, "audit: log %s closed at record %" PRIu64, a->dir, a->next_seq);
	}
	while ((r = a->qhead)) {
		a->qhead = r->next;
		secure_wipe(r->pt, r->len);
		free(r);
	}
	if (a->fd >= 0)
		close(a->fd);
	if (a->dirfd >= 0)
		close(a->dirfd);
	if (a->export_fd >= 0)
		close(a->export_fd);
	aead_free(a->k);
	free(a->wbuf);
	free(a->dir);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->wake);
	pthread_cond_destroy(&a->done);
	pthread_mutex_destroy(&a->comm_lock);
	free(a);
}
