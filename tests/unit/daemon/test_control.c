/*
 * control: both ends of the channel without FUSE: a server with stub
 * operations in this process, clients calling it.  Requests and answers,
 * a status while a compaction runs, another store with the same volume
 * id, wait-for-exit, a stale socket, a link planted at the socket's path,
 * an unsafe run directory, and (as root) a caller of another uid refused
 * by the socket's mode and, with that mode opened up, by SO_PEERCRED.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/aead.h"
#include "crypto/secure.h"
#include "daemon/control.h"
#include "store/compact.h"
#include "store/volconf.h"
#include "../../tap.h"

static char tmp[64], store[128], twin[128], rundir[128], sock[256], why[512];

/* the stub daemon */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int seals, statuses, compacts, seal_rc, status_rc;
static double last_ratio;
static int compact_hold;	/* compact waits while set */
static int compact_inside;	/* a compact is waiting */

/* the stubs run on the channel's threads: the socket orders them after
 * the test's writes, but only the lock says so to a race detector */
static void set(int *v, int value)
{
	pthread_mutex_lock(&lock);
	*v = value;
	pthread_mutex_unlock(&lock);
}

static int get(const int *v)
{
	int value;

	pthread_mutex_lock(&lock);
	value = *v;
	pthread_mutex_unlock(&lock);
	return value;
}

static int stub_seal(void *ctx)
{
	(void)ctx;
	pthread_mutex_lock(&lock);
	seals++;
	pthread_mutex_unlock(&lock);
	return get(&seal_rc);
}

static int stub_compact(void *ctx, double ratio, struct compact_stats *st)
{
	(void)ctx;
	pthread_mutex_lock(&lock);
	compacts++;
	last_ratio = ratio;
	compact_inside = 1;
	pthread_cond_broadcast(&cond);
	while (compact_hold)
		pthread_cond_wait(&cond, &lock);
	compact_inside = 0;
	pthread_mutex_unlock(&lock);
	*st = (struct compact_stats){ 1, 2, 3, 4, 5, 6, 7, 8 };
	return 0;
}

static int stub_status(void *ctx, char *buf, size_t len)
{
	int rc = get(&status_rc);

	pthread_mutex_lock(&lock);
	statuses++;
	pthread_mutex_unlock(&lock);
	(void)ctx;
	if (rc < 0)
		return rc;
	return snprintf(buf, len, "pid 42\nstore %s\n", store);
}

static int scrub_running;

static int stub_scrub(void *ctx, unsigned *run)
{
	(void)ctx;
	pthread_mutex_lock(&lock);
	*run = 3;
	if (!scrub_running) {
		scrub_running = 1;
		pthread_mutex_unlock(&lock);
		return 1;
	}
	pthread_mutex_unlock(&lock);
	return 0;
}

static int stub_scrub_report(void *ctx, char *buf, size_t len)
{
	(void)ctx;
	if (get(&scrub_running))
		return -ENOENT;
	return snprintf(buf, len, "3 done 1 1 4 5 6 7 0\n12\t/a/b\tchunk 0: content fails authentication\n");
}

static const struct control_ops ops = { stub_seal, stub_compact, stub_status, stub_scrub,
					stub_scrub_report };


static int make_store(const char *dir, const uint8_t uuid[16])
{
	struct volconf vc = { 0 };
	uint8_t mk[32];

	if (mkdir(dir, 0755) < 0)
		return -1;
	secure_random(mk, sizeof(mk));
	vc.format = VOLCONF_FORMAT;
	memcpy(vc.uuid, uuid, 16);
	vc.cipher = AEAD_XCHACHA20POLY1305;
	vc.chunk_size = 65536;
	vc.pack_size = 32ull << 20;
	vc.created = 1700000000;
	return volconf_save(dir, &vc, mk);
}

struct compact_call {
	int rc;
	struct compact_stats st;
};

static void *compact_thread(void *arg)
{
	struct compact_call *c = arg;

	c->rc = control_compact(rundir, store, 0.25, &c->st);
	return NULL;
}

/* a socket file nobody listens on, as a killed daemon leaves behind */
static int plant_dead_socket(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	int rc;

	if (strlen(path) >= sizeof(a.sun_path))
		return -1;
	memcpy(a.sun_path, path, strlen(path) + 1);
	rc = bind(fd, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	return rc;
}

/* control_status as uid 65534 in a child: its return value, negated */
static int status_as_nobody(void)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		char *text = NULL;
		int rc;

		struct sockaddr_un a = { .sun_family = AF_UNIX };
		char line[32] = "";
		int s;

		(void)text;
		(void)rc;
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(100);
		/* straight to the socket: the store itself is not nobody's,
		 * so control_status would stop before it (safefile.h) */
		if (strlen(sock) >= sizeof(a.sun_path))
			_exit(103);
		memcpy(a.sun_path, sock, strlen(sock) + 1);
		s = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
			_exit(errno);
		if (read(s, line, sizeof(line) - 1) <= 0)
			_exit(101);
		_exit(!strcmp(line, "error 13\n") ? EACCES : 102);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

int main(void)
{
	struct control *c = NULL, *c2 = NULL;
	struct compact_stats st;
	uint8_t uuid[16];
	char *text = NULL, hex[33], victim[192], buf[16];
	struct stat sb;
	double ratio;
	int rc, fd, fd2;

	if (secure_init() < 0)
		return 2;
	snprintf(tmp, sizeof(tmp), "/tmp/mv-ctl-XXXXXX");
	if (!mkdtemp(tmp) || chmod(tmp, 0755) < 0)
		return 2;
	snprintf(store, sizeof(store), "%s/store", tmp);
	snprintf(twin, sizeof(twin), "%s/twin", tmp);
	snprintf(rundir, sizeof(rundir), "%s/run", tmp);
	snprintf(victim, sizeof(victim), "%s/victim", tmp);
	secure_random(uuid, sizeof(uuid));
	volconf_uuid_hex(uuid, hex);
	snprintf(sock, sizeof(sock), "%s/%s.sock", rundir, hex);
	/* a snapshot of a store carries its volume id */
	if (make_store(store, uuid) < 0 || make_store(twin, uuid) < 0)
		return 2;

	rc = control_status(rundir, store, &text);
	ok(rc == -ESRCH, "no daemon: -ESRCH (%d)", rc);

	rc = control_listen(&c, rundir, store, uuid, &ops, NULL, why, sizeof(why));
	ok(rc == 0, "listen (%d %s)", rc, why);
	ok(stat(rundir, &sb) == 0 && S_ISDIR(sb.st_mode) && (sb.st_mode & 0777) == 0700,
	   "run directory made 0700 (mode %o)", (unsigned)sb.st_mode & 0777);
	rc = lstat(sock, &sb);
	ok(rc == 0 && S_ISSOCK(sb.st_mode) && (sb.st_mode & 0777) == 0600, "socket is 0600 (mode %o)",
	   (unsigned)sb.st_mode & 0777);

	/* requests */
	rc = control_status(rundir, store, &text);
	ok(rc == 0 && text && !strncmp(text, "pid 42\nstore ", 13), "status answers the lines (%d)", rc);
	free(text);
	text = NULL;
	set(&status_rc, -EAGAIN);
	rc = control_status(rundir, store, &text);
	ok(rc == -EAGAIN && !text, "status not published yet: -EAGAIN (%d)", rc);
	set(&status_rc, 0);
	rc = control_seal(rundir, store);
	ok(rc == 0 && get(&seals) == 1, "seal (%d, %d calls)", rc, get(&seals));
	set(&seal_rc, -EIO);
	rc = control_seal(rundir, store);
	ok(rc == -EIO, "a failed seal comes back as its errno (%d)", rc);
	set(&seal_rc, 0);
	rc = control_compact(rundir, store, 0.75, &st);
	pthread_mutex_lock(&lock);
	ratio = last_ratio;
	pthread_mutex_unlock(&lock);
	ok(rc == 0 && ratio > 0.7499 && ratio < 0.7501, "compact carries the ratio (%d, %f)", rc, ratio);
	ok(st.packs_rewritten == 1 && st.packs_deleted == 2 && st.bytes_moved == 3 &&
	   st.bytes_freed == 4 && st.packs_kept == 5 && st.earlier_age_s == 6 &&
	   st.earlier_packs_deleted == 7 && st.earlier_bytes_freed == 8, "compact answers its stats");

	/* a long compaction holds up nothing else */
	{
		struct compact_call cc = { -1, { 0 } };
		pthread_t t;

		pthread_mutex_lock(&lock);
		compact_hold = 1;
		pthread_mutex_unlock(&lock);
		pthread_create(&t, NULL, compact_thread, &cc);
		pthread_mutex_lock(&lock);
		while (!compact_inside)
			pthread_cond_wait(&cond, &lock);
		pthread_mutex_unlock(&lock);
		rc = control_status(rundir, store, &text);
		ok(rc == 0, "status answers while a compaction runs (%d)", rc);
		free(text);
		text = NULL;
		pthread_mutex_lock(&lock);
		compact_hold = 0;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
		pthread_join(t, NULL);
		ok(cc.rc == 0 && cc.st.packs_kept == 5, "then the compaction answers (%d)", cc.rc);
	}

	/* scrub: answered at once, started or running */
	{
		unsigned run = 0;
		int started = -1;

		rc = control_scrub(rundir, store, &started, &run);
		ok(rc == 0 && started == 1 && run == 3, "scrub: started, run 3 (%d %d %u)", rc, started, run);
		rc = control_scrub(rundir, store, &started, &run);
		ok(rc == 0 && started == 0 && run == 3, "scrub again: running (%d %d)", rc, started);
		rc = control_scrub_report(rundir, store, &text);
		ok(rc == -ENOENT && !text, "scrub report while running: -ENOENT (%d)", rc);
		set(&scrub_running, 0);
		rc = control_scrub_report(rundir, store, &text);
		ok(rc == 0 && text && !strncmp(text, "3 done 1 1", 10) && strstr(text, "\n12\t/a/b\t"),
		   "scrub report: its summary and findings (%d)", rc);
		free(text);
		text = NULL;
	}

	rc = control_seal(rundir, twin);
	ok(rc == -ESRCH && get(&seals) == 2, "another store with the same volume id: -ESRCH, not served (%d)", rc);

	rc = control_listen(&c2, rundir, twin, uuid, &ops, NULL, why, sizeof(why));
	ok(rc == -EADDRINUSE && !c2, "a second daemon does not take a live socket (%d: %s)", rc, why);
	ok(control_status(rundir, store, &text) == 0, "the first still answers");
	free(text);
	text = NULL;

	/* wait-for-exit */
	rc = control_wait_begin(rundir, store, &fd);
	ok(rc == 0 && fd >= 0, "wait accepted (%d)", rc);
	rc = control_wait_begin(rundir, store, &fd2);
	ok(rc == 0, "a second wait accepted");
	rc = control_wait_end(fd2, 200);
	ok(rc == -ETIMEDOUT, "while the daemon runs, wait times out (%d)", rc);

	/* another uid: refused by the socket's mode, and by SO_PEERCRED */
	if (geteuid() == 0) {
		int before = get(&statuses);

		rc = status_as_nobody();
		ok(rc == EACCES, "uid 65534: refused (errno %d)", rc);
		chmod(sock, 0666);
		rc = status_as_nobody();
		ok(rc == EACCES, "uid 65534 with the socket opened up: refused by SO_PEERCRED (errno %d)", rc);
		ok(get(&statuses) == before, "nothing was served to it");
		chmod(sock, 0600);
	} else {
		ok(1, "# skip SO_PEERCRED: not root");
		ok(1, "# skip SO_PEERCRED: not root");
		ok(1, "# skip SO_PEERCRED: not root");
	}

	control_close(c);
	c = NULL;
	rc = control_wait_end(fd, 5000);
	ok(rc == 0, "close ends the wait with EOF (%d)", rc);
	ok(lstat(sock, &sb) < 0 && errno == ENOENT, "close removes the socket");
	rc = control_seal(rundir, store);
	ok(rc == -ESRCH, "after close: -ESRCH (%d)", rc);

	/* a killed daemon's socket */
	ok(plant_dead_socket(sock) == 0, "a stale socket is planted");
	rc = control_seal(rundir, store);
	ok(rc == -ESRCH, "a stale socket: -ESRCH (%d)", rc);
	rc = control_listen(&c, rundir, store, uuid, &ops, NULL, why, sizeof(why));
	ok(rc == 0, "listen replaces a stale socket (%d %s)", rc, why);
	ok(control_seal(rundir, store) == 0, "and serves");
	control_close(c);
	c = NULL;

	/* a link planted where the socket goes is replaced, never followed */
	fd = open(victim, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ok(fd >= 0 && write(fd, "victim\n", 7) == 7, "a victim file");
	close(fd);
	ok(symlink(victim, sock) == 0, "a link to it at the socket's path");
	rc = control_listen(&c, rundir, store, uuid, &ops, NULL, why, sizeof(why));
	ok(rc == 0, "listen over the link (%d %s)", rc, why);
	ok(lstat(sock, &sb) == 0 && S_ISSOCK(sb.st_mode), "the path is now our socket");
	ok(lstat(victim, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 7, "the victim is untouched");
	fd = open(victim, O_RDONLY);
	ok(fd >= 0 && read(fd, buf, sizeof(buf)) == 7 && !memcmp(buf, "victim\n", 7),
	   "the victim's contents are untouched");
	if (fd >= 0)
		close(fd);
	ok(control_seal(rundir, store) == 0, "and serves");
	control_close(c);
	c = NULL;

	/* run directories others could write into are not used */
	chmod(rundir, 0777);
	rc = control_listen(&c, rundir, store, uuid, &ops, NULL, why, sizeof(why));
	ok(rc == -EPERM && !c, "a world-writable run directory is refused (%d: %s)", rc, why);
	/* one an older build made 0755 is closed */
	chmod(rundir, 0755);
	rc = control_listen(&c, rundir, store, uuid, &ops, NULL, why, sizeof(why));
	ok(rc == 0 && stat(rundir, &sb) == 0 && (sb.st_mode & 0777) == 0700,
	   "a 0755 run directory of ours is made 0700 (%d, mode %o)", rc, (unsigned)sb.st_mode & 0777);
	control_close(c);
	c = NULL;
	{
		char link[192];

		snprintf(link, sizeof(link), "%s/runlink", tmp);
		ok(symlink(rundir, link) == 0, "a link to the run directory");
		rc = control_listen(&c, link, store, uuid, &ops, NULL, why, sizeof(why));
		ok(rc < 0 && !c, "a run directory reached through a link is refused (%d: %s)", rc, why);
		unlink(link);
	}
	control_close(NULL);

	unlink(victim);
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", tmp);
	}
	return tap_done();
}
