/*
 * The daemon's lifetime: open the store, mount, serve, and tear down in
 * order; and its flusher thread, which bounds how long written data waits
 * in memory, makes it durable every few seconds, compacts in the
 * background, publishes the counters of `medvault status`, and carries
 * out the seal and compact requests that arrive on the control channel.
 * Requests run on the flusher so that they never overlap a background
 * compaction or each other.
 */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "crypto/keystore.h"
#include "core/mvfs.h"
#include "crypto/secure.h"
#include "daemon/control.h"
#include "daemon/daemon.h"
#include "util/mountinfo.h"
#include "fs_ops.h"
#include "fuse_io.h"
#include "privsep.h"
#include "scrubd.h"
#include "store/blobstore.h"
#include "store/compact.h"
#include "store/index.h"
#include "store/vault.h"
#include "store/volconf.h"
#include "util/safefile.h"
#include "util/why.h"

#define FLUSH_AGE_S 2		/* dirty data older than this is written back */
#define CHECKPOINT_EVERY_S 2	/* and made durable this often */
#define STATUS_EVERY_S 2	/* counters for `medvault status` */
#define PACK_SCAN_EVERY_S 60	/* dead bytes in packs, for the same */
#define COMPACT_EVERY_S 60	/* background compaction of packs below the ratio */
/*
 * The rollback anchor follows the durable state at most this often (and
 * at unmount): each move is a file write, an fsync and a directory fsync
 * in KSDIR, so not one per checkpoint.  A rollback to a state newer than
 * the last move (at most this long before a crash) goes unseen.
 */
#define ANCHOR_EVERY_S 5
/*
 * Overwrites leave dead chunk versions behind at the write rate (random
 * 4 KiB writes reseal whole 64 KiB chunks: several GB a minute), so a
 * burst of that much dead data starts compaction early, at most this
 * often: the store does not grow to many times its live size between two
 * timer runs, nor fill the disk with garbage.
 */
#define COMPACT_DEAD_TRIGGER (256ull << 20)
#define COMPACT_MIN_GAP_S 5
#define STATUS_MAX 1024

enum request_kind { REQUEST_SEAL, REQUEST_COMPACT };

struct daemon {
	struct vault *v;
	struct mvfs *fs;
	struct scrubd *scrub;		/* its own lock */
	const char *mountpoint;
	/* a root mount: the root part, the account the server drops to, and
	 * what the root part said of the trail's token key */
	struct privsep *ps;
	uid_t uid;
	gid_t gid;
	int token_rc;			/* of privsep_hello: 0, -ENOTSUP (no token), -errno */
	int token_fresh;
	char token_why[256];
	char audit_dir[PATH_MAX];	/* the trail's directory, to hand it over */
	time_t started;
	uint64_t dead_bytes;		/* flusher thread only */

	pthread_t flusher;
	pthread_mutex_t lock;		/* protects everything below */
	pthread_cond_t kick;		/* wakes the flusher early */
	pthread_cond_t done;		/* a request was answered, or the slot freed */
	int stop;
	int flusher_running;
	/* one request at a time, from the control channel to the flusher */
	int req_busy;			/* a caller owns the slot */
	int req_pending;		/* the flusher has not answered it yet */
	enum request_kind req_kind;
	double req_ratio;
	int req_rc;
	struct compact_stats req_st;
	char status[STATUS_MAX];	/* published lines; empty until the first */
	size_t status_len;
};

/* ---- the flusher ---- */

struct dead_sum {
	struct blobstore *bs;
	uint64_t live, total;
};

static int sum_pack(void *ctx, uint64_t pack, const struct pack_rec *p)
{
	struct dead_sum *d = ctx;
	int64_t size = blobstore_pack_size(d->bs, pack);

	d->live += p->live_bytes;
	if (size > 0)
		d->total += (uint64_t)size;
	return 0;
}

/*
 * When the kernel forgets most of the inodes it held (memory pressure, a
 * drop_caches after a walk of a million files), their entries are freed
 * but malloc keeps the pages; give them back once the table has shrunk by
 * half and by at least 64k entries.
 */
static void return_freed_memory(size_t n, size_t *peak)
{
	if (n > *peak)
		*peak = n;
	else if (*peak - n >= 65536 && n < *peak / 2) {
		malloc_trim(0);
		*peak = n;
	}
}

/*
 * The counters `medvault status` reads over the control channel (never
 * written into the store: it would leak activity into backups).  Counts
 * only: no names, no paths inside the filesystem.
 */
static void publish_status(struct daemon *d, int with_packs, size_t *table_peak)
{
	struct core_status c;
	char text[STATUS_MAX];
	int n;

	if (with_packs) {
		struct dead_sum s = { d->v->bs, 0, 0 };
		struct index_txn *t;

		if (index_read_begin(d->v->ix, &t) == 0) {
			index_pack_iter(t, sum_pack, &s);
			index_read_end(t);
			d->dead_bytes = s.total > s.live ? s.total - s.live : 0;
		}
	}
	core_status(d->fs, &c);
	n = snprintf(text, sizeof(text),
		     "pid %d\nstore %s\nmountpoint %s\nuptime %lld\ninodes %" PRIu64 "\n"
		     "open %" PRIu64 "\ndirty_bytes %" PRIu64 "\nchunk_hits %" PRIu64 "\n"
		     "chunk_loads %" PRIu64 "\nlast_checkpoint %lld\ndead_bytes %" PRIu64 "\n",
		     (int)getpid(), d->v->store, d->mountpoint, (long long)(time(NULL) - d->started),
		     c.inodes, c.open, c.dirty_bytes, c.chunk_hits, c.chunk_loads,
		     (long long)c.last_checkpoint, d->dead_bytes);
	if (n < 0 || (size_t)n >= sizeof(text))
		n = 0;
	pthread_mutex_lock(&d->lock);
	memcpy(d->status, text, (size_t)n);
	d->status_len = (size_t)n;
	pthread_mutex_unlock(&d->lock);
	if (table_peak)
		return_freed_memory(c.inodes, table_peak);
}

static void seal_open_pack(struct daemon *d)
{
	/* everything written so far lands in packs a snapshot can link, and
	 * nothing more is ever appended to them */
	core_flush_all(d->fs);
	blobstore_seal_open(d->v->bs);
	syslog(LOG_INFO, "open pack sealed for a snapshot");
}

/* Carry out the request in the slot, if any (flusher thread). */
static void answer_request(struct daemon *d)
{
	struct compact_stats st = { 0 };
	enum request_kind kind;
	double ratio;
	int rc = 0;

	pthread_mutex_lock(&d->lock);
	if (!d->req_pending) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	kind = d->req_kind;
	ratio = d->req_ratio;
	pthread_mutex_unlock(&d->lock);
	if (kind == REQUEST_SEAL)
		seal_open_pack(d);
	else
		rc = core_compact(d->fs, ratio, 0, stderr, &st);
	pthread_mutex_lock(&d->lock);
	d->req_rc = rc;
	d->req_st = st;
	d->req_pending = 0;
	pthread_cond_broadcast(&d->done);
	pthread_mutex_unlock(&d->lock);
}

static void *flusher_main(void *arg)
{
	struct daemon *d = arg;
	time_t last_checkpoint = time(NULL), last_compaction = time(NULL);
	time_t last_status = time(NULL), last_pack_scan = time(NULL), last_anchor = time(NULL);
	size_t table_peak = 0;
	int ro = d->v->read_only;

	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		struct timespec until;
		struct compact_stats st;
		time_t now;

		if (!d->req_pending) {
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += 1;
			pthread_cond_timedwait(&d->kick, &d->lock, &until);
			if (d->stop)
				break;
		}
		pthread_mutex_unlock(&d->lock);
		answer_request(d);
		now = time(NULL);
		if (!ro && (now - last_compaction >= COMPACT_EVERY_S ||
			    (now - last_compaction >= COMPACT_MIN_GAP_S &&
			     index_dead_bytes(d->v->ix) >= COMPACT_DEAD_TRIGGER))) {
			core_compact(d->fs, COMPACT_DEFAULT_RATIO, 1, stderr, &st);
			last_compaction = now;
		}
		if (now - last_status >= STATUS_EVERY_S) {
			publish_status(d, now - last_pack_scan >= PACK_SCAN_EVERY_S, &table_peak);
			if (now - last_pack_scan >= PACK_SCAN_EVERY_S)
				last_pack_scan = now;
			last_status = now;
		}
		core_flush_due(d->fs, now, FLUSH_AGE_S);
		scrubd_tick(d->scrub);
		if (!ro && now - last_checkpoint >= CHECKPOINT_EVERY_S) {
			int rc = fs_checkpoint(d->fs);

			if (rc < 0)
				syslog(LOG_ERR, "checkpoint failed: %s", strerror(-rc));
			last_checkpoint = now;
			/* to what the checkpoints made durable, never further */
			if (now - last_anchor >= ANCHOR_EVERY_S) {
				if ((rc = vault_anchor_move(d->v, 0)) < 0)
					syslog(LOG_ERR, "cannot move the anchor: %s", strerror(-rc));
				last_anchor = now;
			}
		}
		pthread_mutex_lock(&d->lock);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

static int flusher_start(struct daemon *d)
{
	int rc = pthread_create(&d->flusher, NULL, flusher_main, d);

	if (rc)
		return -rc;
	pthread_mutex_lock(&d->lock);
	d->flusher_running = 1;
	pthread_mutex_unlock(&d->lock);
	return 0;
}

static void flusher_stop(struct daemon *d)
{
	pthread_mutex_lock(&d->lock);
	if (!d->flusher_running) {
		pthread_mutex_unlock(&d->lock);
		return;
	}
	d->stop = 1;
	pthread_cond_signal(&d->kick);
	pthread_mutex_unlock(&d->lock);
	pthread_join(d->flusher, NULL);
	pthread_mutex_lock(&d->lock);
	d->flusher_running = 0;
	pthread_cond_broadcast(&d->done);	/* requests left unanswered fail */
	pthread_mutex_unlock(&d->lock);
}

/* ---- control requests (the channel's threads) ---- */

static int request(struct daemon *d, enum request_kind kind, double ratio, struct compact_stats *st)
{
	int rc;

	pthread_mutex_lock(&d->lock);
	while (d->req_busy && d->flusher_running)
		pthread_cond_wait(&d->done, &d->lock);
	if (!d->flusher_running) {
		pthread_mutex_unlock(&d->lock);
		return -ESHUTDOWN;
	}
	d->req_busy = 1;
	d->req_pending = 1;
	d->req_kind = kind;
	d->req_ratio = ratio;
	pthread_cond_signal(&d->kick);
	while (d->req_pending && d->flusher_running)
		pthread_cond_wait(&d->done, &d->lock);
	if (d->req_pending) {
		d->req_pending = 0;
		rc = -ESHUTDOWN;
	} else {
		rc = d->req_rc;
		if (st)
			*st = d->req_st;
	}
	d->req_busy = 0;
	pthread_cond_broadcast(&d->done);
	pthread_mutex_unlock(&d->lock);
	return rc;
}

static int on_seal(void *ctx)
{
	return request(ctx, REQUEST_SEAL, 0, NULL);
}

static int on_compact(void *ctx, double ratio, struct compact_stats *st)
{
	return request(ctx, REQUEST_COMPACT, ratio, st);
}

static int on_status(void *ctx, char *buf, size_t len)
{
	struct daemon *d = ctx;
	int rc = -EAGAIN;

	pthread_mutex_lock(&d->lock);
	if (d->status_len && d->status_len < len) {
		memcpy(buf, d->status, d->status_len);
		buf[d->status_len] = '\0';
		rc = (int)d->status_len;
	}
	pthread_mutex_unlock(&d->lock);
	if (rc > 0 && d->scrub)	/* live, not as of the last publish */
		rc += (int)scrubd_status(d->scrub, buf + rc, len - (size_t)rc);
	return rc;
}

static int on_scrub(void *ctx, unsigned *run)
{
	struct daemon *d = ctx;

	return d->scrub ? scrubd_start(d->scrub, run) : -ESHUTDOWN;
}

static int on_scrub_report(void *ctx, char *buf, size_t len)
{
	struct daemon *d = ctx;

	return d->scrub ? scrubd_report(d->scrub, buf, len) : -ENOENT;
}

static const struct control_ops daemon_control_ops = {
	.seal = on_seal,
	.compact = on_compact,
	.status = on_status,
	.scrub = on_scrub,
	.scrub_report = on_scrub_report,
};

/* ---- mounting ---- */

static void bdi_set(const char *dev, const char *knob, unsigned value)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/bdi/%s/%s", dev, knob);
	if ((f = fopen(path, "w"))) {
		fprintf(f, "%u\n", value);
		fclose(f);
	}
}

/*
 * Two limits the kernel puts on every FUSE mount suit a slow or untrusted
 * daemon, not this one.  Readahead is 128 KiB whatever max_readahead says;
 * sequential reads of 64 KiB chunks need more in flight to keep the disk
 * and both cores busy.  Dirty page cache is capped at 1% of the global
 * dirty threshold (strictlimit): random writes then reach the daemon with
 * two or three 4 KiB pages per 64 KiB chunk, and each such chunk is read,
 * decrypted, resealed and appended for them.  A larger share lets pages of
 * the same chunk gather first (fio randwrite 7k -> 20k IOPS at 10%); the
 * backing filesystem keeps the other 90%, and close and fsync still write
 * everything back.  Read from mountinfo, not stat(2): nothing serves the
 * mount yet.
 */
static void tune_bdi(const char *mnt)
{
	struct mount_entry m;

	if (mount_at(mnt, &m)) {
		bdi_set(m.dev, "read_ahead_kb", 1024);
		bdi_set(m.dev, "max_ratio", 10);
	}
}

/*
 * The waiting parent's side of the fork: "0" when the daemon serves, "1"
 * and its one line when it could not start.  The parent exits with that
 * verdict; the daemon keeps running.
 */
static int await_verdict(int fd, pid_t child, char *why, size_t whylen)
{
	char buf[1024];
	size_t len = 0;
	int st;

	while (len < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	close(fd);
	if (len && buf[0] == '0')
		return 0;
	if (len > 1)
		return why_set(why, whylen, -EIO, "%s", buf + 1);
	/* no verdict at all: it crashed (a damaged index can make LMDB
	 * fault); say how, so the one line is not empty */
	if (waitpid(child, &st, 0) == child && WIFSIGNALED(st))
		return why_set(why, whylen, -ECHILD, "the daemon died while starting (signal %d, %s)",
			       WTERMSIG(st), strsignal(WTERMSIG(st)));
	return why_set(why, whylen, -ECHILD, "the daemon died while starting");
}

/* A background daemon's startup failure goes to its parent, which prints
 * it; the daemon itself then has nothing more to say. */
static void report_failure(int *verdict_fd, char *why, size_t whylen)
{
	if (*verdict_fd < 0)
		return;
	if (write(*verdict_fd, "1", 1) == 1 && why && whylen) {
		size_t n = strnlen(why, whylen);

		if (write(*verdict_fd, why, n) == (ssize_t)n)
			why[0] = '\0';
	}
	close(*verdict_fd);
	*verdict_fd = -1;
}

/* Mounted and serving: release the waiting parent and leave its session. */
static int detach(int *verdict_fd)
{
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	int rc = 0;

	if (write(*verdict_fd, "0", 1) != 1)
		rc = -EPIPE;
	close(*verdict_fd);
	*verdict_fd = -1;
	if (rc < 0) {
		if (devnull >= 0)
			close(devnull);
		return rc;
	}
	setsid();
	if (chdir("/") < 0)
		syslog(LOG_WARNING, "chdir /: %s", strerror(errno));
	if (devnull >= 0) {
		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		dup2(devnull, STDERR_FILENO);
		close(devnull);
	}
	return 0;
}

static struct fuse_session *session_new(struct fuse_args *args, struct mvfs *fs)
{
	/* libfuse explains a bad option on stderr itself; the contract is
	 * one line, ours */
	int saved = dup(STDERR_FILENO), devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	struct fuse_session *se;

	if (saved >= 0 && devnull >= 0)
		dup2(devnull, STDERR_FILENO);
	se = fuse_session_new(args, &mv_fuse_ops, sizeof(mv_fuse_ops), fs);
	if (saved >= 0) {
		dup2(saved, STDERR_FILENO);
		close(saved);
	}
	if (devnull >= 0)
		close(devnull);
	return se;
}

static int serve(struct fuse_session *se)
{
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	int rc;

	if (!lc)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_idle_threads(lc, 8);
	fuse_loop_cfg_set_max_threads(lc, 16);
	rc = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	return rc ? -EIO : 0;
}

/* the same through the root part, which holds the token's session */
static int daemon_ps_mac(void *arg, const uint8_t *msg, size_t len, uint8_t out[AUDIT_TMAC_LEN])
{
	int rc = privsep_mac(arg, msg, len, out);

	if (rc < 0 && rc != -EIO)
		syslog(LOG_ERR, "audit: the root part cannot seal the checkpoint: %s", strerror(-rc));
	return rc;
}

/* the trail's checkpoints sealed by the token (writer thread only) */
static int daemon_token_mac(void *arg, const uint8_t *msg, size_t len, uint8_t out[AUDIT_TMAC_LEN])
{
	char why[256] = "";
	int rc = keystore_mac(arg, msg, len, out, why, sizeof(why));

	if (rc < 0)
		syslog(LOG_ERR, "audit: %s", why);
	return rc;
}

static int daemon_open_audit(struct daemon *d, const struct daemon_opts *o, struct audit **audit,
			     struct keystore_mac **tok, char *why, size_t whylen)
{
	struct audit_opts ao = o->audit;
	int rc;
	char dir[PATH_MAX], detail[PATH_MAX + 16], uuid[33];

	/* opened before mounting so that a bad trail fails the mount; its
	 * writer thread starts with the others */
	volconf_uuid_hex(d->v->conf.uuid, uuid);
	if (!ao.dir) {
		snprintf(dir, sizeof(dir), "%s/audit/%s", o->keystore, uuid);
		ao.dir = dir;
	}
	snprintf(detail, sizeof(detail), "mnt=%s%s", o->mountpoint, o->read_only ? " read-only" : "");
	ao.uuid = d->v->conf.uuid;
	ao.key = volkeys_audit_key(d->v->keys);
	ao.store = d->v->store;
	ao.mountpoint = o->mountpoint;
	ao.mount_detail = detail;
	snprintf(d->audit_dir, sizeof(d->audit_dir), "%s", ao.dir);
	/* unlocked with a token: its key seals the trail's checkpoints, so
	 * that holding a passphrase slot is not enough to rewrite the trail */
	if (d->ps) {
		/* opened by the root part at hello: the token's files are root's */
		if (d->token_rc < 0 && d->token_rc != -ENOTSUP)
			return why_set(why, whylen, d->token_rc, "%s", d->token_why);
		if (d->token_rc == 0) {
			ao.token_mac = daemon_ps_mac;
			ao.token_arg = d->ps;
			ao.token_fresh = d->token_fresh;
		}
		return audit_open(audit, &ao, why, whylen);
	}
	rc = keystore_mac_open(o->keystore, d->v->conf.uuid, o->key, 1, tok, why, whylen);
	if (rc < 0 && rc != -ENOTSUP)
		return rc;
	if (*tok) {
		ao.token_mac = daemon_token_mac;
		ao.token_arg = *tok;
		ao.token_fresh = keystore_mac_created(*tok);
	}
	return audit_open(audit, &ao, why, whylen);
}

/* the explicit acceptance of a rollback, in the trail it must answer to */
static void audit_rollback(struct daemon *d, struct audit *audit)
{
	char detail[AUDIT_DETAIL_MAX];
	struct audit_event e = { .op = AUDIT_OP_ACCEPT_ROLLBACK, .uid = (uint32_t)getuid(),
				 .gid = (uint32_t)getgid(), .pid = (uint32_t)getpid(),
				 .path = d->v->store, .detail = detail };

	snprintf(detail, sizeof(detail), "%s anchor=%" PRIu64 " store=%" PRIu64 " behind=%" PRIu64,
		 vault_anchor_state_name(d->v->anchor_state), d->v->anchor_counter,
		 d->v->store_counter, d->v->anchor_behind);
	audit_log(audit, &e);
}

/*
 * The server gives up root (privsep.h): what root made in the store and
 * the trail's directory becomes the service account's (a store of an
 * older build, files an offline fsck or compaction made as root), then
 * the drop, after which anchors go through the root part.  Everything
 * the server still needs of root's is open by now: the store's
 * directories and LMDB, the trail's directory, /dev/fuse, the control
 * socket.
 */
static int hand_over(struct daemon *d, char *why, size_t whylen)
{
	int rc, fd;

	if ((rc = privsep_chown_tree(blobstore_dirfd(d->v->bs), d->uid, d->gid, 4)) < 0)
		return why_set(why, whylen, rc, "cannot give store %s to uid %u: %s", d->v->store,
			       (unsigned)d->uid, strerror(-rc));
	if (d->audit_dir[0]) {
		if ((fd = safe_dir_open(d->audit_dir, why, whylen)) < 0)
			return fd;
		rc = privsep_chown_tree(fd, d->uid, d->gid, 1);
		close(fd);
		if (rc < 0)
			return why_set(why, whylen, rc, "cannot give audit directory %s to uid %u: %s",
				       d->audit_dir, (unsigned)d->uid, strerror(-rc));
	}
	if ((rc = privsep_drop(d->uid, d->gid, why, whylen)) < 0)
		return rc;
	d->v->anchor_put = privsep_anchor_put;
	d->v->anchor_put_arg = d->ps;
	return 0;
}

/*
 * A root mount splits in two (privsep.h); anyone else's runs as one
 * process, with nothing to give up.  Resolved before the fork, so that
 * a missing account is the mount command's one line.
 */
static int privsep_plan(struct daemon *d, const struct daemon_opts *o, int *split, char *why,
			size_t whylen)
{
	int rc;

	*split = geteuid() == 0;
	if (!*split)
		return o->user ? why_set(why, whylen, -EPERM, "mount: --user needs root") : 0;
	if ((rc = privsep_account(o->user ? o->user : DAEMON_SERVICE_USER, &d->uid, &d->gid, why,
				  whylen)) < 0)
		return rc;
	safe_set_service(d->uid);
	return 0;
}

/* The server's end of the FUSE channel is closed (so that the unmount
 * waits on nothing) and the root part unmounts. */
static void unmount_via_root(struct fuse_session *se, struct privsep *ps)
{
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);

	/* in place, so that fuse_session_destroy closes a descriptor of ours */
	if (devnull >= 0) {
		dup2(devnull, fuse_session_fd(se));
		close(devnull);
	}
	if (privsep_unmount(ps) < 0)
		syslog(LOG_ERR, "the root part did not unmount %s", "the mountpoint");
}

int daemon_run(const struct daemon_opts *o, char *why, size_t whylen)
{
	struct daemon d = { .mountpoint = o->mountpoint };
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	struct audit *audit = NULL;
	struct keystore_mac *audit_tok = NULL;
	struct control *ctl = NULL;
	char fuseopts[PATH_MAX + 256], rundir[PATH_MAX], cwhy[256];
	int verdict[2] = { -1, -1 }, mounted = 0, handlers = 0, split = 0, dropped = 0, rc;
	pthread_condattr_t ca;

	pthread_mutex_init(&d.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d.kick, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&d.done, NULL);
	if ((rc = privsep_plan(&d, o, &split, why, whylen)) < 0)
		goto out;
	/*
	 * Go to the background first: LMDB's locks and our threads belong to
	 * the process that made them, so the daemon must be the one that
	 * opens everything.  The parent only waits for the verdict.
	 */
	if (!o->foreground) {
		pid_t pid;

		if (pipe2(verdict, O_CLOEXEC) < 0) {
			rc = why_set(why, whylen, -errno, "pipe: %s", strerror(errno));
			goto out;
		}
		pid = fork();
		if (pid < 0) {
			rc = why_set(why, whylen, -errno, "fork: %s", strerror(errno));
			close(verdict[0]);
			close(verdict[1]);
			verdict[1] = -1;
			goto out;
		}
		if (pid > 0) {
			close(verdict[1]);
			verdict[1] = -1;
			rc = await_verdict(verdict[0], pid, why, whylen);
			goto out;
		}
		close(verdict[0]);
	}
	if (secure_init() < 0) {
		rc = why_set(why, whylen, -ENOSYS, "libsodium failed to initialise");
		goto out;
	}
	secure_harden_process();
	/* before the store is opened: what its checks find goes to the log */
	openlog("medvault", LOG_PID | (o->foreground ? LOG_PERROR : 0), LOG_DAEMON);
	/* before anything of the store is read: the root part never sees it */
	if (split && (rc = privsep_start(&d.ps, o->keystore, o->key, o->mountpoint, o->foreground,
					 verdict[1], why, whylen)) < 0)
		goto out;
	{
		struct vault_open_opts vo = { .read_only = o->read_only,
					      .accept_rollback = o->accept_rollback };

		if ((rc = vault_open(&d.v, o->store, o->keystore, o->key, &vo, why, whylen)) < 0)
			goto out;
	}
	if (d.ps) {
		d.token_rc = privsep_hello(d.ps, d.v->conf.uuid, !o->no_audit, &d.token_fresh,
					   d.token_why, sizeof(d.token_why));
		if (d.token_rc < 0 && d.token_rc != -ENOTSUP && o->no_audit) {
			rc = why_set(why, whylen, d.token_rc, "%s", d.token_why);
			goto out;
		}
	}
	/* a read-only mount past a rollback, or an accepted one: said on
	 * the terminal that mounts (the daemon's stderr until it detaches),
	 * and already syslogged */
	if (d.v->anchor_note[0])
		fprintf(stderr, "medvault: warning: %s\n", d.v->anchor_note);
	if ((rc = scrubd_new(&d.scrub, d.v, o->mountpoint, o->scrub_interval_s,
			     o->scrub_rate ? o->scrub_rate : DAEMON_SCRUB_RATE)) < 0 ||
	    (rc = mvfs_create(&d.fs, d.v)) < 0) {
		why_set(why, whylen, rc, "cannot start the filesystem: out of memory");
		goto out;
	}
	if (!o->no_audit) {
		if ((rc = daemon_open_audit(&d, o, &audit, &audit_tok, why, whylen)) < 0)
			goto out;
		mvfs_set_audit(d.fs, audit);
		if (d.v->rollback_accepted)
			audit_rollback(&d, audit);
	}
	/*
	 * The kernel checks modes (default_permissions) exactly as for ext4,
	 * so when root mounts, other users get in as their modes allow, as
	 * on a local disk; an unprivileged mount stays private to its owner.
	 */
	snprintf(fuseopts, sizeof(fuseopts), "default_permissions,fsname=%s,subtype=medvault%s%s%s%s",
		 d.v->store, geteuid() == 0 ? ",allow_other" : "", d.v->read_only ? ",ro" : "",
		 o->fuse_opts ? "," : "", o->fuse_opts ? o->fuse_opts : "");
	if (fuse_opt_add_arg(&args, "medvault") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, fuseopts)) {
		rc = why_set(why, whylen, -ENOMEM, "out of memory");
		goto out;
	}
	if (!(se = session_new(&args, d.fs))) {
		rc = why_set(why, whylen, -EINVAL, "mount: invalid FUSE options: %s",
			     o->fuse_opts ? o->fuse_opts : "");
		goto out;
	}
	mvfs_set_session(d.fs, se);
	if (fuse_session_mount(se, o->mountpoint) != 0) {
		rc = why_set(why, whylen, -EIO,
			     "cannot mount on %s (is /dev/fuse usable and fusermount3 installed?)",
			     o->mount_name ? o->mount_name : o->mountpoint);
		goto out;
	}
	mounted = 1;
	if (fuse_io_install(se) != 0) {
		rc = why_set(why, whylen, -EIO, "cannot set up the FUSE channel");
		goto out;
	}
	tune_bdi(o->mountpoint);
	/* everything that answers the command line runs before mount returns */
	d.started = time(NULL);
	publish_status(&d, 1, NULL);
	/* without the channel the filesystem still serves; snapshots then
	 * copy the open pack, and umount waits on the store's lock.  Made
	 * while root: its directory is root's */
	if (control_rundir(rundir, sizeof(rundir)) < 0 ||
	    control_listen(&ctl, rundir, d.v->store, d.v->conf.uuid, &daemon_control_ops, &d, cwhy,
			   sizeof(cwhy)) < 0)
		syslog(LOG_WARNING, "no control channel: %s", cwhy);
	if (d.ps) {
		if ((rc = privsep_mounted(d.ps, ctl ? control_path(ctl) : NULL)) < 0) {
			why_set(why, whylen, rc, "the daemon's root part cannot find the mount: %s",
				strerror(-rc));
			goto out;
		}
		if ((rc = hand_over(&d, why, whylen)) < 0)
			goto out;
		dropped = 1;
	}
	if ((rc = mvfs_start_workers(d.fs)) < 0 || (rc = flusher_start(&d)) < 0 ||
	    (rc = audit_start(audit)) < 0) {
		why_set(why, whylen, rc, "cannot start the daemon's threads: %s", strerror(-rc));
		goto out;
	}
	if (fuse_set_signal_handlers(se) != 0) {
		rc = why_set(why, whylen, -EIO, "cannot set up signal handlers");
		goto out;
	}
	handlers = 1;
	if (d.ps && (rc = privsep_watch(d.ps)) < 0) {
		why_set(why, whylen, rc, "cannot start the daemon's threads: %s", strerror(-rc));
		goto out;
	}
	vault_note_pid(d.v);
	if (!o->foreground && (rc = detach(&verdict[1])) < 0) {
		syslog(LOG_ERR, "the starting command went away");
		goto out;
	}
	syslog(LOG_INFO, "mounted %s on %s", d.v->store, o->mountpoint);
	rc = serve(se);
	if (rc < 0)
		why_set(why, whylen, rc, "the FUSE session failed");
out:
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (mounted && dropped)
		unmount_via_root(se, d.ps);
	else if (mounted)
		fuse_session_unmount(se);
	scrubd_shutdown(d.scrub);	/* stops within a batch; no run starts after */
	/* the order matters: requests fail once the flusher is gone, the
	 * filesystem writes everything back, then the store is released, and
	 * only then do waiting `umount`s hear EOF */
	flusher_stop(&d);
	mvfs_destroy(d.fs);
	audit_close(audit);
	keystore_mac_close(audit_tok);
	if (mounted)
		syslog(LOG_INFO, "unmounted %s", o->mountpoint);
	scrubd_free(d.scrub);	/* it reads the vault's settings: before the vault goes */
	vault_close(d.v);
	control_close(ctl);
	privsep_close(d.ps);	/* after vault_close: the last anchor goes through it */
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	if (rc < 0)
		report_failure(&verdict[1], why, whylen);
	else if (verdict[1] >= 0)
		close(verdict[1]);
	pthread_cond_destroy(&d.done);
	pthread_cond_destroy(&d.kick);
	pthread_mutex_destroy(&d.lock);
	return rc;
}
