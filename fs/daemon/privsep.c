/*
 * The daemon's root part and the server's side of its channel
 * (privsep.h).  The channel is a SOCK_SEQPACKET socketpair carrying
 * fixed-size messages: one recv is one whole message, of exactly
 * sizeof(struct ps_msg) bytes, or the peer is treated as gone.  The root
 * part checks every type and length before it looks at the data, since
 * the server, once it dropped root, is what an exploit of a store parser
 * would control.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "crypto/keystore.h"
#include "daemon/control.h"
#include "util/mountinfo.h"
#include "privsep.h"
#include "store/anchor.h"
#include "store/vault.h"
#include "util/why.h"

#define PS_DATA_MAX 512
/* what mlock needs: the chunk cache and buffer pools of a busy mount;
 * below this a warning says plaintext may reach swap */
#define PS_MEMLOCK_WANT (1ull << 30)

enum ps_type {
	PS_HELLO = 1,	/* S->R: uuid[16], want_mac[1]; R->S: rc, fresh[1] + why */
	PS_MAC,		/* S->R: the message; R->S: rc, mac[32] */
	PS_ANCHOR,	/* S->R: an encoded anchor; R->S: rc */
	PS_MOUNTED,	/* S->R: the control socket's path, or nothing; R->S: rc */
	PS_UNMOUNT,	/* S->R: nothing; R->S: rc */
};

struct ps_msg {
	uint32_t type;
	int32_t rc;
	uint32_t len;
	uint8_t data[PS_DATA_MAX];
};

struct privsep {
	int fd;				/* the channel */
	pid_t root_pid;
	pthread_mutex_t lock;		/* one request and its answer at a time */
	pthread_t watcher;
	int watching;
	int wake[2];			/* privsep_close stops the watcher */
};

int privsep_account(const char *name, uid_t *uid, gid_t *gid, char *why, size_t whylen)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) != 0 || !res)
		return why_set(why, whylen, -ENOENT,
			       "service account %s does not exist; create it with `useradd --system "
			       "--no-create-home --shell /usr/sbin/nologin %s` or name another with --user",
			       name, name);
	if (res->pw_uid == 0)
		return why_set(why, whylen, -EINVAL, "service account %s is root; name an unprivileged one",
			       name);
	*uid = res->pw_uid;
	*gid = res->pw_gid;
	return 0;
}

/* ---- the channel ---- */

static int msg_send(int fd, const struct ps_msg *m)
{
	ssize_t n;

	do
		n = send(fd, m, sizeof(*m), MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(*m) ? 0 : -EPROTO;
}

/* 0, -EPIPE when the peer is gone, -EPROTO for anything not one whole
 * message of a known type and a length within bounds */
static int msg_recv(int fd, struct ps_msg *m)
{
	ssize_t n;

	do
		n = recv(fd, m, sizeof(*m), MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == ECONNRESET ? -EPIPE : -errno;
	if (n == 0)
		return -EPIPE;
	if (n != (ssize_t)sizeof(*m) || m->type < PS_HELLO || m->type > PS_UNMOUNT ||
	    m->len > PS_DATA_MAX)
		return -EPROTO;
	return 0;
}

int privsep_test_raw(struct privsep *p, const void *buf, size_t len)
{
	struct ps_msg m;
	ssize_t n;

	if (send(p->fd, buf, len, MSG_NOSIGNAL) != (ssize_t)len)
		return -errno;
	do
		n = recv(p->fd, &m, sizeof(m), 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -EPIPE;
	return n == (ssize_t)sizeof(m) ? m.rc : -EPROTO;
}

/* the server's side: one request, its answer in *m */
static int call(struct privsep *p, struct ps_msg *m)
{
	uint32_t type = m->type;
	int rc;

	pthread_mutex_lock(&p->lock);
	if ((rc = msg_send(p->fd, m)) == 0 && (rc = msg_recv(p->fd, m)) == 0 && m->type != type)
		rc = -EPROTO;
	pthread_mutex_unlock(&p->lock);
	return rc < 0 ? rc : m->rc;
}

/* ---- the root part ---- */

struct root {
	int fd;
	pid_t server;
	const char *ksdir;
	const struct key_opts *key;
	const char *mountpoint;
	uint8_t uuid[16];
	int have_uuid;
	struct keystore_mac *mac;
	char mount_dev[64];		/* ours, from mountinfo; "" before PS_MOUNTED */
	int mounted_told;
	char sock[PS_DATA_MAX];		/* the control socket, its dev and inode */
	dev_t sock_dev;
	ino_t sock_ino;
};

static volatile sig_atomic_t root_server_pid;

/* SIGTERM for the root part means the daemon's: pass it on while the
 * server is still our parent (not a pid reused since) */
static void root_on_term(int sig)
{
	(void)sig;
	if (root_server_pid > 0 && getppid() == (pid_t)root_server_pid)
		kill((pid_t)root_server_pid, SIGTERM);
}

static void root_unmount(struct root *r)
{
	struct mount_entry m;

	if (!r->mount_dev[0] || !mount_at(r->mountpoint, &m) ||
	    strcmp(m.dev, r->mount_dev) || strcmp(m.fstype, "fuse.medvault"))
		return;		/* gone already, or someone else's now */
	/* lazy, as libfuse does for root: a process still inside the
	 * mountpoint must not keep a dead mount there */
	if (umount2(r->mountpoint, MNT_DETACH) < 0)
		syslog(LOG_ERR, "cannot unmount %s: %s", r->mountpoint, strerror(errno));
	else
		syslog(LOG_INFO, "unmounted %s (the root part)", r->mountpoint);
	r->mount_dev[0] = '\0';
}

static void root_hello(struct root *r, struct ps_msg *m)
{
	char why[256] = "";
	int rc;

	if (r->have_uuid || m->len != 17) {
		m->rc = -EPROTO;
		m->len = 0;
		return;
	}
	memcpy(r->uuid, m->data, 16);
	r->have_uuid = 1;
	rc = 0;
	if (m->data[16])
		rc = keystore_mac_open(r->ksdir, r->uuid, r->key, 1, &r->mac, why, sizeof(why));
	m->rc = rc;
	m->data[0] = r->mac && keystore_mac_created(r->mac);
	m->len = 1 + (uint32_t)snprintf((char *)m->data + 1, PS_DATA_MAX - 1, "%s", why);
	if (m->len > PS_DATA_MAX)
		m->len = PS_DATA_MAX;
}

static void root_mac(struct root *r, struct ps_msg *m)
{
	char why[256] = "";
	uint8_t out[KEYSTORE_MAC_LEN];

	if (!r->mac || m->len == 0) {
		m->rc = r->mac ? -EPROTO : -ENOTSUP;
		m->len = 0;
		return;
	}
	m->rc = keystore_mac(r->mac, m->data, m->len, out, why, sizeof(why));
	if (m->rc < 0)
		syslog(LOG_ERR, "audit: %s", why);
	memcpy(m->data, out, sizeof(out));
	m->len = m->rc < 0 ? 0 : sizeof(out);
}

static void root_anchor(struct root *r, struct ps_msg *m)
{
	/* only this volume's anchor: its MAC is beyond us (no key here),
	 * but the server holds the key anyway, so it could make any */
	if (!r->have_uuid || m->len != ANCHOR_LEN || memcmp(m->data, ANCHOR_MAGIC, 8) ||
	    memcmp(m->data + 8, r->uuid, 16))
		m->rc = -EPROTO;
	else
		m->rc = vault_anchor_store(r->ksdir, r->key, m->data, m->len);
	m->len = 0;
}

static void root_mounted(struct root *r, struct ps_msg *m)
{
	struct mount_entry dm;
	struct stat st;

	char want[PATH_MAX], hex[33];

	m->rc = 0;
	/* the one path the root part will ever unlink: this volume's socket
	 * in root's run directory, whatever the server says */
	volconf_uuid_hex(r->uuid, hex);
	if (control_rundir(want, sizeof(want)) < 0 ||
	    strlen(want) + 1 + strlen(hex) + 5 >= sizeof(want))
		want[0] = '\0';
	else
		strcat(strcat(strcat(want, "/"), hex), ".sock");
	if (r->mounted_told || !r->have_uuid || m->len >= PS_DATA_MAX ||
	    memchr(m->data, '\0', m->len) ||
	    (m->len && (strlen(want) != m->len || memcmp(want, m->data, m->len)))) {
		m->rc = -EPROTO;
	} else {
		r->mounted_told = 1;
		if (mount_at(r->mountpoint, &dm) && !strcmp(dm.fstype, "fuse.medvault"))
			snprintf(r->mount_dev, sizeof(r->mount_dev), "%s", dm.dev);
		else
			m->rc = -ENOENT;
		memcpy(r->sock, m->data, m->len);
		r->sock[m->len] = '\0';
		if (r->sock[0] && lstat(r->sock, &st) == 0 && S_ISSOCK(st.st_mode)) {
			r->sock_dev = st.st_dev;
			r->sock_ino = st.st_ino;
		} else {
			r->sock[0] = '\0';
		}
	}
	m->len = 0;
}

/* the server is gone: what it cannot undo itself */
static void root_finish(struct root *r)
{
	struct stat st;

	root_unmount(r);
	/* only the socket it made: a daemon started since may own the path */
	if (r->sock[0] && lstat(r->sock, &st) == 0 && st.st_dev == r->sock_dev &&
	    st.st_ino == r->sock_ino)
		unlink(r->sock);
	keystore_mac_close(r->mac);
}

static void root_serve(struct root *r)
{
	struct ps_msg m;
	int rc;

	for (;;) {
		if ((rc = msg_recv(r->fd, &m)) < 0) {
			if (rc != -EPIPE)
				syslog(LOG_ERR, "root part: a malformed request from the server (%s); "
				       "stopping it", strerror(-rc));
			break;
		}
		switch (m.type) {
		case PS_HELLO:
			root_hello(r, &m);
			break;
		case PS_MAC:
			root_mac(r, &m);
			break;
		case PS_ANCHOR:
			root_anchor(r, &m);
			break;
		case PS_MOUNTED:
			root_mounted(r, &m);
			break;
		case PS_UNMOUNT:
			root_unmount(r);
			m.rc = 0;
			m.len = 0;
			break;
		}
		if (msg_send(r->fd, &m) < 0)
			break;
	}
	/* a server that talks nonsense is ended: it is not to be trusted
	 * with a mount any more */
	if (rc != -EPIPE && getppid() == r->server)
		kill(r->server, SIGKILL);
	root_finish(r);
}

static void root_main(int fd, pid_t server, const char *ksdir, const struct key_opts *key,
		      const char *mountpoint, int foreground)
{
	/* KSDIR as given may be relative, and we leave the cwd */
	char *ks = realpath(ksdir, NULL);
	struct root r = { .fd = fd, .server = server, .ksdir = ks ? ks : ksdir, .key = key,
			  .mountpoint = mountpoint };
	struct sigaction sa = { .sa_handler = root_on_term };

	root_server_pid = server;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGINT, SIG_IGN);	/* -f's ^C reaches both: the server stops, we follow */
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (!foreground) {
		int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);

		setsid();
		if (devnull >= 0) {
			dup2(devnull, STDIN_FILENO);
			dup2(devnull, STDOUT_FILENO);
			dup2(devnull, STDERR_FILENO);
			close(devnull);
		}
	}
	if (chdir("/") < 0)
		syslog(LOG_WARNING, "chdir /: %s", strerror(errno));
	prctl(PR_SET_NAME, "medvault-priv", 0, 0, 0);
	root_serve(&r);
	free(ks);
}

int privsep_start(struct privsep **out, const char *ksdir, const struct key_opts *key,
		  const char *mountpoint, int foreground, int close_fd, char *why, size_t whylen)
{
	struct privsep *p;
	int sv[2];
	pid_t server = getpid(), pid;

	*out = NULL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return why_set(why, whylen, -errno, "socketpair: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		int rc = why_set(why, whylen, -errno, "fork: %s", strerror(errno));

		close(sv[0]);
		close(sv[1]);
		return rc;
	}
	if (pid == 0) {
		close(sv[0]);
		if (close_fd >= 0)
			close(close_fd);
		root_main(sv[1], server, ksdir, key, mountpoint, foreground);
		_exit(0);
	}
	close(sv[1]);
	if (!(p = calloc(1, sizeof(*p)))) {
		close(sv[0]);	/* it exits at EOF */
		waitpid(pid, NULL, 0);
		return why_set(why, whylen, -ENOMEM, "out of memory");
	}
	p->fd = sv[0];
	p->root_pid = pid;
	p->wake[0] = p->wake[1] = -1;
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return 0;
}

/* ---- the server's requests ---- */

int privsep_hello(struct privsep *p, const uint8_t uuid[16], int want_mac, int *fresh,
		  char *why, size_t whylen)
{
	struct ps_msg m = { .type = PS_HELLO, .len = 17 };
	int rc;

	memcpy(m.data, uuid, 16);
	m.data[16] = !!want_mac;
	rc = call(p, &m);
	*fresh = m.len >= 1 && m.data[0];
	if (rc < 0) {
		/* the root part's own line, if it sent one */
		if (m.type == PS_HELLO && m.len > 1 && m.len <= PS_DATA_MAX) {
			m.data[PS_DATA_MAX - 1] = '\0';
			if (m.len < PS_DATA_MAX)
				m.data[m.len] = '\0';
			if (m.data[1])
				return why_set(why, whylen, rc, "%s", (char *)m.data + 1);
		}
		return why_set(why, whylen, rc, "the daemon's root part: %s", strerror(-rc));
	}
	return 0;
}

int privsep_mac(struct privsep *p, const uint8_t *msg, size_t len, uint8_t out[PRIVSEP_MAC_LEN])
{
	struct ps_msg m = { .type = PS_MAC };
	int rc;

	if (len == 0 || len > PS_DATA_MAX)
		return -EINVAL;
	m.len = (uint32_t)len;
	memcpy(m.data, msg, len);
	if ((rc = call(p, &m)) < 0)
		return rc;
	if (m.len != PRIVSEP_MAC_LEN)
		return -EPROTO;
	memcpy(out, m.data, PRIVSEP_MAC_LEN);
	return 0;
}

int privsep_anchor_put(void *arg, const uint8_t *buf, size_t len)
{
	struct ps_msg m = { .type = PS_ANCHOR };

	if (len > PS_DATA_MAX)
		return -EINVAL;
	m.len = (uint32_t)len;
	memcpy(m.data, buf, len);
	return call(arg, &m);
}

int privsep_mounted(struct privsep *p, const char *sock)
{
	struct ps_msg m = { .type = PS_MOUNTED };
	size_t n = sock ? strlen(sock) : 0;

	if (n >= PS_DATA_MAX)
		n = 0;		/* not named: left behind, replaced by the next mount */
	memcpy(m.data, sock ? sock : "", n);
	m.len = (uint32_t)n;
	return call(p, &m);
}

int privsep_unmount(struct privsep *p)
{
	struct ps_msg m = { .type = PS_UNMOUNT };

	return call(p, &m);
}

/* ---- dropping root ---- */

/* 0 when every capability line of status is zero, -EPERM if not */
static int caps_empty(const char *status)
{
	char line[256];
	FILE *f = fopen(status, "re");
	int rc = 0, seen = 0;

	if (!f)
		return errno == ENOENT ? 0 : -errno;	/* a thread that just ended */
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v;

		if ((sscanf(line, "CapEff: %llx", &v) == 1 || sscanf(line, "CapPrm: %llx", &v) == 1 ||
		     sscanf(line, "CapAmb: %llx", &v) == 1) && ++seen && v != 0)
			rc = -EPERM;
	}
	fclose(f);
	return rc ? rc : seen == 3 ? 0 : -EPERM;
}

static int all_threads_capless(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	char path[64];
	int rc = 0;

	if (!d)
		return -errno;
	while (rc == 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%.20s/status", e->d_name);
		rc = caps_empty(path);
	}
	closedir(d);
	return rc;
}

static void raise_memlock(void)
{
	struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };

	if (setrlimit(RLIMIT_MEMLOCK, &rl) == 0)
		return;
	/* without CAP_SYS_RESOURCE (a container): at least up to the hard limit */
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_MEMLOCK, &rl);
	}
	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < PS_MEMLOCK_WANT)
		syslog(LOG_WARNING, "RLIMIT_MEMLOCK stays at %llu bytes (%s): plaintext and keys beyond "
		       "it are not locked and may reach swap",
		       (unsigned long long)rl.rlim_cur, strerror(errno));
}

int privsep_drop(uid_t uid, gid_t gid, char *why, size_t whylen)
{
	uid_t ru, eu, su;
	int rc;

	raise_memlock();
	/* glibc applies each of these to every thread of the process */
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return why_set(why, whylen, -errno, "cannot drop to uid %u: %s", (unsigned)uid,
			       strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return why_set(why, whylen, -errno, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	/* a uid change makes the process dumpable again */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid || setuid(0) == 0)
		return why_set(why, whylen, -EPERM, "root could not be dropped; refusing to serve");
	if ((rc = all_threads_capless()) < 0)
		return why_set(why, whylen, rc, "capabilities left after dropping root; refusing to serve");
	return 0;
}

/* ---- the watcher ---- */

static void *watch_main(void *arg)
{
	struct privsep *p = arg;
	struct pollfd pf[2] = { { .fd = p->fd, .events = 0 }, { .fd = p->wake[0], .events = POLLIN } };

	for (;;) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			return NULL;	/* privsep_close */
		if (pf[0].revents & (POLLHUP | POLLERR | POLLNVAL))
			break;
	}
	syslog(LOG_CRIT, "the daemon's root part is gone; stopping (the mount stays until umount)");
	kill(getpid(), SIGTERM);
	return NULL;
}

int privsep_watch(struct privsep *p)
{
	int rc;

	if (pipe2(p->wake, O_CLOEXEC) < 0)
		return -errno;
	if ((rc = pthread_create(&p->watcher, NULL, watch_main, p)) != 0)
		return -rc;
	p->watching = 1;
	return 0;
}

void privsep_close(struct privsep *p)
{
	if (!p)
		return;
	if (p->watching) {
		if (write(p->wake[1], "x", 1) < 0)
			syslog(LOG_WARNING, "privsep: cannot wake the watcher: %s", strerror(errno));
		pthread_join(p->watcher, NULL);
	}
	if (p->wake[0] >= 0)
		close(p->wake[0]);
	if (p->wake[1] >= 0)
		close(p->wake[1]);
	close(p->fd);
	/* it removes our socket and exits at EOF */
	while (waitpid(p->root_pid, NULL, 0) < 0 && errno == EINTR)
		;
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* ---- ownership ---- */

int privsep_chown_tree(int dirfd, uid_t uid, gid_t gid, int depth)
{
	struct stat st;
	struct dirent *e;
	DIR *d;
	int fd, rc = 0;

	if (fstat(dirfd, &st) < 0)
		return -errno;
	if (st.st_uid == 0 && fchown(dirfd, uid, gid) < 0)
		return -errno;
	if (depth <= 0)
		return 0;
	/* a second descriptor: closedir closes the one it reads */
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (!(d = fdopendir(fd))) {
		close(fd);
		return -errno;
	}
	while (rc == 0 && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;	/* gone since */
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub < 0)
				continue;
			rc = privsep_chown_tree(sub, uid, gid, depth - 1);
			close(sub);
		} else if (S_ISREG(st.st_mode) && st.st_uid == 0 &&
			   fchownat(dirfd, e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
		}
	}
	closedir(d);
	return rc;
}
