/*
 * The control channel, both ends (wire format in control.h).  It replaces
 * signals sent to the pid in STORE/medvault.lock (a file the store's owner
 * can write: a signal could reach any process) and request files in STORE
 * (which backups copied).  The socket's directory is ours and not
 * writable by others, so nobody can swap the socket under a client, and
 * the daemon still checks each caller's uid itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "daemon/control.h"
#include "store/compact.h"
#include "store/volconf.h"
#include "util/why.h"

#define CONTROL_PROTO "medvault1"
#define CONTROL_LINE_MAX 256		/* a request or an answer's first line */
#define CONTROL_STATUS_MAX 4096
#define CONTROL_REPORT_MAX 32768	/* a scrub's kept findings with their paths */
#define CONTROL_REQUEST_TIMEOUT_S 5	/* for a caller to send its request */
#define CONTROL_ANSWER_TIMEOUT_S 30	/* status and wait answer at once */

struct control {
	int lfd;			/* listening socket */
	int wake[2];			/* control_close wakes the listener */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t sock_dev;			/* the socket file we made, so that */
	ino_t sock_ino;			/* close removes no one else's */
	dev_t store_dev;
	ino_t store_ino;
	const struct control_ops *ops;
	void *ctx;
	pthread_t listener;
	int listening;

	pthread_mutex_t lock;		/* protects the fields below */
	pthread_cond_t idle;		/* nconn reached 0 */
	unsigned nconn;			/* connection threads running */
	int *waiters;			/* "wait" connections, closed last */
	size_t nwaiters, capwaiters;
};

struct conn {
	struct control *c;
	int fd;
};

/* send(2) all of buf; a caller that went away is -EPIPE, not SIGPIPE */
static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read up to and without the first '\n' into line (NUL-terminated).
 * -EPROTO on EOF before it or an overlong line, -errno (-EAGAIN timeout). */
static int recv_line(int fd, char *line, size_t cap)
{
	size_t n = 0;

	/* byte by byte: what follows the line (status text) stays unread */
	while (n + 1 < cap) {
		ssize_t r = recv(fd, line + n, 1, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EPROTO;
		if (line[n] == '\n') {
			line[n] = '\0';
			return 0;
		}
		n++;
	}
	return -EPROTO;
}

static void set_timeout(int fd, int optname, int seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, optname, &tv, sizeof(tv));
}

static void answer_error(int fd, int rc)
{
	char line[32];
	int n = snprintf(line, sizeof(line), "error %d\n", -rc);

	send_all(fd, line, (size_t)n);
}

int control_rundir(char *buf, size_t len)
{
	uid_t uid = geteuid();
	char user[64];
	struct stat st;
	int n;

	if (uid == 0) {
		n = snprintf(buf, len, "/run/medvault");
	} else {
		snprintf(user, sizeof(user), "/run/user/%u", (unsigned)uid);
		if (stat(user, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == uid)
			n = snprintf(buf, len, "%s/medvault", user);
		else
			n = snprintf(buf, len, "/tmp/medvault-%u", (unsigned)uid);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int sock_path(const char *rundir, const uint8_t uuid[16], char *buf, size_t len)
{
	char hex[33];
	int n;

	volconf_uuid_hex(uuid, hex);
	n = snprintf(buf, len, "%s/%s.sock", rundir, hex);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- daemon side ---- */

/* 1 if the peer is root or runs as we do */
static int peer_allowed(int fd, uid_t *uid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	*uid = (uid_t)-1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return 0;
	*uid = cr.uid;
	return cr.uid == 0 || cr.uid == geteuid();
}

/* Answer one request; returns 1 when fd was kept as a waiter. */
static int serve(struct control *c, int fd)
{
	char line[CONTROL_LINE_MAX], proto[16], verb[16], out[CONTROL_STATUS_MAX + 8];
	unsigned long long dev, ino;
	double ratio = 0;
	uid_t uid;
	int rc, n, fields;

	if (!peer_allowed(fd, &uid)) {
		syslog(LOG_WARNING, "control: refused a request from uid %d", (int)uid);
		answer_error(fd, -EACCES);
		return 0;
	}
	set_timeout(fd, SO_RCVTIMEO, CONTROL_REQUEST_TIMEOUT_S);
	if (recv_line(fd, line, sizeof(line)) < 0)
		return 0;
	fields = sscanf(line, "%15s %15s %llu %llu %lf", proto, verb, &dev, &ino, &ratio);
	if (fields < 4 || strcmp(proto, CONTROL_PROTO)) {
		answer_error(fd, -EPROTO);
		return 0;
	}
	if ((dev_t)dev != c->store_dev || (ino_t)ino != c->store_ino) {
		answer_error(fd, -ESRCH);
		return 0;
	}
	if (!strcmp(verb, "seal")) {
		if ((rc = c->ops->seal(c->ctx)) < 0)
			answer_error(fd, rc);
		else
			send_all(fd, "ok\n", 3);
	} else if (!strcmp(verb, "compact")) {
		struct compact_stats st = { 0 };

		if (fields != 5 || !(ratio > 0 && ratio <= 1)) {
			answer_error(fd, -EINVAL);
			return 0;
		}
		if ((rc = c->ops->compact(c->ctx, ratio, &st)) < 0) {
			answer_error(fd, rc);
			return 0;
		}
		n = snprintf(out, sizeof(out), "ok %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
			     " %" PRId64 " %" PRIu64 " %" PRIu64 "\n",
			     st.packs_rewritten, st.packs_deleted, st.bytes_moved, st.bytes_freed,
			     st.packs_kept, st.earlier_age_s, st.earlier_packs_deleted,
			     st.earlier_bytes_freed);
		send_all(fd, out, (size_t)n);
	} else if (!strcmp(verb, "status")) {
		memcpy(out, "ok\n", 3);
		if ((rc = c->ops->status(c->ctx, out + 3, sizeof(out) - 3)) < 0)
			answer_error(fd, rc);
		else
			send_all(fd, out, 3 + (size_t)rc);
	} else if (!strcmp(verb, "scrub")) {
		unsigned run = 0;

		rc = c->ops->scrub ? c->ops->scrub(c->ctx, &run) : -EPROTO;
		if (rc < 0) {
			answer_error(fd, rc);
			return 0;
		}
		n = snprintf(out, sizeof(out), "ok %s %u\n", rc ? "started" : "running", run);
		send_all(fd, out, (size_t)n);
	} else if (!strcmp(verb, "scrub-report")) {
		char *rep = c->ops->scrub_report ? malloc(CONTROL_REPORT_MAX + 4) : NULL;

		if (!rep) {
			answer_error(fd, c->ops->scrub_report ? -ENOMEM : -EPROTO);
			return 0;
		}
		memcpy(rep, "ok\n", 3);
		if ((rc = c->ops->scrub_report(c->ctx, rep + 3, CONTROL_REPORT_MAX)) < 0)
			answer_error(fd, rc);
		else
			send_all(fd, rep, 3 + (size_t)rc);
		free(rep);
	} else if (!strcmp(verb, "wait")) {
		int kept = 0;

		pthread_mutex_lock(&c->lock);
		if (c->nwaiters == c->capwaiters) {
			size_t ncap = c->capwaiters ? c->capwaiters * 2 : 8;
			int *nw = realloc(c->waiters, ncap * sizeof(*nw));

			if (nw) {
				c->waiters = nw;
				c->capwaiters = ncap;
			}
		}
		if (c->nwaiters < c->capwaiters) {
			c->waiters[c->nwaiters++] = fd;
			kept = 1;
		}
		pthread_mutex_unlock(&c->lock);
		if (!kept)
			answer_error(fd, -ENOMEM);
		else
			send_all(fd, "ok\n", 3);
		return kept;
	} else {
		answer_error(fd, -EPROTO);
	}
	return 0;
}

static void *conn_main(void *arg)
{
	struct conn *k = arg;
	struct control *c = k->c;

	if (!serve(c, k->fd))
		close(k->fd);
	free(k);
	pthread_mutex_lock(&c->lock);
	if (--c->nconn == 0)
		pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void *listener_main(void *arg)
{
	struct control *c = arg;
	struct pollfd p[2] = { { .fd = c->lfd, .events = POLLIN }, { .fd = c->wake[0], .events = POLLIN } };

	for (;;) {
		struct conn *k;
		pthread_attr_t attr;
		pthread_t t;
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			syslog(LOG_ERR, "control: poll: %s", strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				usleep(100000);	/* no busy loop while out of descriptors */
			continue;
		}
		/* a long compaction must not hold up a status request */
		k = malloc(sizeof(*k));
		if (!k) {
			close(fd);
			continue;
		}
		*k = (struct conn){ c, fd };
		pthread_mutex_lock(&c->lock);
		c->nconn++;
		pthread_mutex_unlock(&c->lock);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, conn_main, k) != 0) {
			close(fd);
			free(k);
			pthread_mutex_lock(&c->lock);
			if (--c->nconn == 0)
				pthread_cond_broadcast(&c->idle);
			pthread_mutex_unlock(&c->lock);
		}
		pthread_attr_destroy(&attr);
	}
	return NULL;
}

/* rundir exists, is a directory (not a link to one), ours or root's, and
 * nobody else can add or replace entries in it; ours is made 0700 (one
 * that an older build made 0755 too) */
static int rundir_prepare(const char *rundir, char *why, size_t whylen)
{
	struct stat st;
	int fd, rc = 0;

	/* 0700: the socket names tell which volumes are mounted, and only
	 * root and the daemon's own uid may talk to it anyway */
	if (mkdir(rundir, 0700) < 0 && errno != EEXIST)
		return why_set(why, whylen, -errno, "cannot create %s: %s", rundir, strerror(errno));
	fd = open(rundir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return why_set(why, whylen, -errno, "%s: %s", rundir, strerror(errno));
	if (fstat(fd, &st) < 0)
		rc = why_set(why, whylen, -errno, "%s: %s", rundir, strerror(errno));
	else if ((st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & 022))
		rc = why_set(why, whylen, -EPERM, "%s is writable by others or not ours: not used",
			     rundir);
	else if (st.st_uid == geteuid() && (st.st_mode & 077) && fchmod(fd, 0700) < 0)
		syslog(LOG_WARNING, "cannot make %s 0700: %s", rundir, strerror(errno));
	close(fd);
	return rc;
}

/* 1 if a daemon answers on path, 0 if nothing does, -errno */
static int socket_live(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return 0;	/* not a socket (a planted link): replaced, never followed */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memcpy(a.sun_path, path, strlen(path) + 1);
	rc = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 ? 1 : 0;
	close(fd);
	return rc;
}

int control_listen(struct control **out, const char *rundir, const char *store,
		   const uint8_t uuid[16], const struct control_ops *ops, void *ctx, char *why,
		   size_t whylen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char tmp[sizeof(a.sun_path)];
	struct control *c;
	struct stat st;
	int rc, n;

	*out = NULL;
	if (stat(store, &st) < 0)
		return why_set(why, whylen, -errno, "store %s: %s", store, strerror(errno));
	c = calloc(1, sizeof(*c));
	if (!c)
		return why_set(why, whylen, -ENOMEM, "out of memory");
	c->lfd = c->wake[0] = c->wake[1] = -1;
	c->store_dev = st.st_dev;
	c->store_ino = st.st_ino;
	c->ops = ops;
	c->ctx = ctx;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->idle, NULL);
	if ((rc = sock_path(rundir, uuid, c->path, sizeof(c->path))) < 0) {
		why_set(why, whylen, rc, "run directory %s: name too long", rundir);
		goto fail;
	}
	n = snprintf(tmp, sizeof(tmp), "%s.%d.tmp", c->path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		rc = why_set(why, whylen, -ENAMETOOLONG, "run directory %s: name too long", rundir);
		goto fail;
	}
	if ((rc = rundir_prepare(rundir, why, whylen)) < 0)
		goto fail;
	if ((rc = socket_live(c->path)) != 0) {
		if (rc > 0)
			rc = why_set(why, whylen, -EADDRINUSE,
				     "%s: another daemon serves a store with this volume id", c->path);
		else
			why_set(why, whylen, rc, "%s: %s", c->path, strerror(-rc));
		goto fail;
	}
	if (pipe2(c->wake, O_CLOEXEC) < 0) {
		rc = why_set(why, whylen, -errno, "pipe: %s", strerror(errno));
		goto fail;
	}
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->lfd < 0) {
		rc = why_set(why, whylen, -errno, "socket: %s", strerror(errno));
		goto fail;
	}
	/*
	 * Made under a name of this process and put in place by rename(2),
	 * which replaces whatever is at the path (a dead daemon's socket, a
	 * planted link) without following it.  The mode is set before
	 * listen(): until then a connect is refused anyway.
	 */
	unlink(tmp);
	memcpy(a.sun_path, tmp, strlen(tmp) + 1);
	if (bind(c->lfd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		rc = why_set(why, whylen, -errno, "bind %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (chmod(tmp, 0600) < 0 || listen(c->lfd, 16) < 0 || rename(tmp, c->path) < 0) {
		rc = why_set(why, whylen, -errno, "%s: %s", c->path, strerror(errno));
		unlink(tmp);
		goto fail;
	}
	if (lstat(c->path, &st) == 0) {
		c->sock_dev = st.st_dev;
		c->sock_ino = st.st_ino;
	}
	if ((rc = -pthread_create(&c->listener, NULL, listener_main, c)) < 0) {
		why_set(why, whylen, rc, "cannot start the control thread: %s", strerror(-rc));
		unlink(c->path);
		goto fail;
	}
	c->listening = 1;
	*out = c;
	return 0;
fail:
	control_close(c);
	return rc;
}

void control_close(struct control *c)
{
	struct stat st;

	if (!c)
		return;
	if (c->listening) {
		if (write(c->wake[1], "x", 1) < 0)
			syslog(LOG_WARNING, "control: cannot wake the listener: %s", strerror(errno));
		pthread_join(c->listener, NULL);
		/* only our own socket: a daemon started since may own the path */
		if (lstat(c->path, &st) == 0 && st.st_dev == c->sock_dev && st.st_ino == c->sock_ino)
			unlink(c->path);
	}
	if (c->lfd >= 0)
		close(c->lfd);
	pthread_mutex_lock(&c->lock);
	while (c->nconn)
		pthread_cond_wait(&c->idle, &c->lock);
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < c->nwaiters; i++)
		close(c->waiters[i]);	/* their EOF: the store is released */
	free(c->waiters);
	if (c->wake[0] >= 0)
		close(c->wake[0]);
	if (c->wake[1] >= 0)
		close(c->wake[1]);
	pthread_cond_destroy(&c->idle);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

const char *control_path(const struct control *c)
{
	return c->path;
}

/* ---- command-line side ---- */

/*
 * Connect to the daemon of store, send verb (and arg), and read the first
 * line of the answer into line.  0 with *fd open after "ok", else -errno.
 */
static int call(const char *rundir, const char *store, const char *verb, const char *arg,
		int answer_timeout_s, int *fd, char *line, size_t cap)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char dir[PATH_MAX], req[CONTROL_LINE_MAX];
	struct volconf vc;
	struct stat st;
	int s = -1, rc, n;

	*fd = -1;
	if (stat(store, &st) < 0)
		return -errno;
	if ((rc = volconf_load(store, &vc, NULL, 0)) < 0)
		return rc;
	if (!rundir) {
		if ((rc = control_rundir(dir, sizeof(dir))) < 0)
			goto out;
		rundir = dir;
	}
	rc = sock_path(rundir, vc.uuid, a.sun_path, sizeof(a.sun_path));
	if (rc < 0)
		goto out;
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		rc = -errno;
		goto out;
	}
	if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
		rc = errno == ENOENT || errno == ECONNREFUSED ? -ESRCH : -errno;
		goto out;
	}
	n = snprintf(req, sizeof(req), CONTROL_PROTO " %s %llu %llu%s%s\n", verb,
		     (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, arg ? " " : "",
		     arg ? arg : "");
	if (answer_timeout_s)
		set_timeout(s, SO_RCVTIMEO, answer_timeout_s);
	if ((rc = send_all(s, req, (size_t)n)) < 0 && rc != -EPIPE)
		goto out;
	/* even after EPIPE: a refusing daemon's "error" line may be waiting */
	if ((rc = recv_line(s, line, cap)) < 0) {
		/* EOF without an answer: the daemon stopped under us */
		if (rc == -EPROTO || rc == -ECONNRESET)
			rc = -ECONNABORTED;
		goto out;
	}
	if (!strncmp(line, "error ", 6)) {
		int e = atoi(line + 6);

		rc = e > 0 ? -e : -EPROTO;
		goto out;
	}
	if (strncmp(line, "ok", 2) || (line[2] && line[2] != ' ')) {
		rc = -EPROTO;
		goto out;
	}
	*fd = s;
	s = -1;
	rc = 0;
out:
	if (s >= 0)
		close(s);
	volconf_release(&vc);
	return rc;
}

int control_seal(const char *rundir, const char *store)
{
	char line[CONTROL_LINE_MAX];
	int fd, rc;

	/* no answer timeout: writing back can take long, and a daemon that
	 * dies closes the socket */
	if ((rc = call(rundir, store, "seal", NULL, 0, &fd, line, sizeof(line))) < 0)
		return rc;
	close(fd);
	return 0;
}

int control_compact(const char *rundir, const char *store, double ratio, struct compact_stats *st)
{
	char line[CONTROL_LINE_MAX], arg[32];
	unsigned long long v[7];
	long long age = -1;
	int fd, rc, n;

	snprintf(arg, sizeof(arg), "%.6f", ratio);
	if ((rc = call(rundir, store, "compact", arg, 0, &fd, line, sizeof(line))) < 0)
		return rc;
	close(fd);
	n = sscanf(line, "ok %llu %llu %llu %llu %llu %lld %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &age, &v[5], &v[6]);
	if (n != 5 && n != 8)
		return -EPROTO;
	*st = (struct compact_stats){ .packs_rewritten = v[0], .packs_deleted = v[1],
				      .bytes_moved = v[2], .bytes_freed = v[3], .packs_kept = v[4],
				      .earlier_age_s = n == 8 ? age : -1,
				      .earlier_packs_deleted = n == 8 ? v[5] : 0,
				      .earlier_bytes_freed = n == 8 ? v[6] : 0 };
	return 0;
}

/* "ok" then text up to EOF (at most max bytes) */
static int call_text(const char *rundir, const char *store, const char *verb, size_t max,
		     char **text)
{
	char line[CONTROL_LINE_MAX], *buf = NULL;
	size_t len = 0;
	int fd, rc;

	*text = NULL;
	if ((rc = call(rundir, store, verb, NULL, CONTROL_ANSWER_TIMEOUT_S, &fd, line,
		       sizeof(line))) < 0)
		return rc;
	buf = malloc(max + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	while (len < max) {
		ssize_t n = recv(fd, buf + len, max - len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*text = buf;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

int control_status(const char *rundir, const char *store, char **text)
{
	return call_text(rundir, store, "status", CONTROL_STATUS_MAX, text);
}

int control_scrub_report(const char *rundir, const char *store, char **text)
{
	return call_text(rundir, store, "scrub-report", CONTROL_REPORT_MAX, text);
}

int control_scrub(const char *rundir, const char *store, int *started, unsigned *run)
{
	char line[CONTROL_LINE_MAX], word[16];
	int fd, rc;

	if ((rc = call(rundir, store, "scrub", NULL, CONTROL_ANSWER_TIMEOUT_S, &fd, line,
		       sizeof(line))) < 0)
		return rc;
	close(fd);
	if (sscanf(line, "ok %15s %u", word, run) != 2 ||
	    (strcmp(word, "started") && strcmp(word, "running")))
		return -EPROTO;
	*started = !strcmp(word, "started");
	return 0;
}

int control_wait_begin(const char *rundir, const char *store, int *fd)
{
	char line[CONTROL_LINE_MAX];

	return call(rundir, store, "wait", NULL, CONTROL_ANSWER_TIMEOUT_S, fd, line, sizeof(line));
}

int control_wait_end(int fd, int timeout_ms)
{
	struct timespec start, now;
	char buf[64];
	int rc = -ETIMEDOUT;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long left;

		clock_gettime(CLOCK_MONOTONIC, &now);
		left = timeout_ms - ((now.tv_sec - start.tv_sec) * 1000 +
				     (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0)
			break;
		if (poll(&p, 1, (int)(left > INT_MAX ? INT_MAX : left)) < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			break;
		}
		if (p.revents) {
			ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				rc = 0;	/* EOF (or reset): the daemon is gone */
				break;
			}
		}
	}
	close(fd);
	return rc;
}
