/*
 * privsep: the root part driven by a server that is this test's child,
 * the way a compromised server could drive it.  Malformed requests (short,
 * an unknown type, a length past the buffer) end the server with SIGKILL
 * and the root part with it; well-formed requests it cannot check against
 * what it knows (a second hello, a socket that is not this volume's, an
 * anchor of another volume, a MAC without a token key) are refused and
 * never acted on; a server that just hangs up ends it cleanly.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/keystore.h"
#include "daemon/control.h"
#include "store/anchor.h"
#include "store/volconf.h"
#include "../../../fs/daemon/privsep.h"
#include "../../tap.h"

/* the channel's message as the root part reads it (privsep.c) */
struct raw_msg {
	uint32_t type;
	int32_t rc;
	uint32_t len;
	uint8_t data[512];
};

static char tmp[64], ksdir[128], mnt[128], victim[108], why[512];
static const uint8_t uuid[16] = { 0x6d, 0x76, 0x74, 0x65, 0x73, 0x74, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

/*
 * Run fn as a server with its own root part.  *server: the server's wait
 * status (its exit code is fn's; it exits only once privsep_close has
 * reaped the root part).  Returns the root part's status when it outlived
 * a killed server and came to us (the subreaper), else -1.
 */
static int as_server(int (*fn)(struct privsep *p), int *server)
{
	struct key_opts key = { 0 };
	pid_t pid = fork(), got;
	int st, root = -1;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct privsep *p = NULL;
		int rc;

		if (privsep_start(&p, ksdir, &key, mnt, 1, -1, why, sizeof(why)) < 0)
			_exit(100);
		rc = fn(p);
		privsep_close(p);
		_exit(rc);
	}
	if (waitpid(pid, server, 0) != pid)
		return -1;
	/* the root part, orphaned to us once its server is gone */
	while ((got = waitpid(-1, &st, 0)) > 0)
		root = st;
	return root;
}

static int killed(int st)
{
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

static int exited0(int st)
{
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int send_short(struct privsep *p)
{
	uint8_t b[8] = { 1 };

	privsep_test_raw(p, b, sizeof(b));
	pause();	/* the root part ends us */
	return 1;
}

static int send_unknown_type(struct privsep *p)
{
	struct raw_msg m = { .type = 99 };

	privsep_test_raw(p, &m, sizeof(m));
	pause();
	return 1;
}

static int send_overlong(struct privsep *p)
{
	struct raw_msg m = { .type = 1, .len = sizeof(m.data) + 1 };

	privsep_test_raw(p, &m, sizeof(m));
	pause();
	return 1;
}

static int hello_twice(struct privsep *p)
{
	int fresh = 0;

	if (privsep_hello(p, uuid, 0, &fresh, why, sizeof(why)) != 0)
		return 1;
	return privsep_hello(p, uuid, 0, &fresh, why, sizeof(why)) == -EPROTO ? 0 : 2;
}

/* a socket path that is not this volume's in root's run directory:
 * refused, so the root part will not unlink it at the end */
static int foreign_socket(struct privsep *p)
{
	int fresh = 0;

	if (privsep_mounted(p, victim) != -EPROTO)
		return 1;	/* before hello: no volume yet */
	if (privsep_hello(p, uuid, 0, &fresh, why, sizeof(why)) != 0)
		return 2;
	return privsep_mounted(p, victim) == -EPROTO ? 0 : 3;
}

static int foreign_anchor(struct privsep *p)
{
	uint8_t a[ANCHOR_LEN] = { 0 };
	int fresh = 0;

	if (privsep_hello(p, uuid, 0, &fresh, why, sizeof(why)) != 0)
		return 1;
	if (privsep_anchor_put(p, a, sizeof(a)) != -EPROTO)
		return 2;	/* no magic, no uuid */
	memcpy(a, ANCHOR_MAGIC, 8);
	a[8] = (uint8_t)~uuid[0];
	return privsep_anchor_put(p, a, sizeof(a)) == -EPROTO ? 0 : 3;	/* another volume's */
}

static int mac_without_key(struct privsep *p)
{
	uint8_t out[PRIVSEP_MAC_LEN];
	int fresh = 0;

	if (privsep_hello(p, uuid, 0, &fresh, why, sizeof(why)) != 0)
		return 1;
	return privsep_mac(p, (const uint8_t *)"x", 1, out) == -ENOTSUP ? 0 : 2;
}

static int hang_up(struct privsep *p)
{
	int fresh = 0;

	return privsep_hello(p, uuid, 0, &fresh, why, sizeof(why)) == 0 ? 0 : 1;
}

static int make_victim(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", victim);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -1;
	close(fd);	/* the file stays */
	return 0;
}

int main(void)
{
	struct stat st;
	int server = 0, root;
	char anchor_path[256];

	snprintf(tmp, sizeof(tmp), "/tmp/mvprivsep.XXXXXX");
	if (!mkdtemp(tmp))
		return 1;
	snprintf(ksdir, sizeof(ksdir), "%s/ks", tmp);
	snprintf(mnt, sizeof(mnt), "%s/mnt", tmp);
	snprintf(victim, sizeof(victim), "%s/victim.sock", tmp);
	mkdir(ksdir, 0700);
	mkdir(mnt, 0700);
	prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	root = as_server(send_short, &server);
	ok(killed(server) && root != -1 && WIFEXITED(root),
	   "a short request: the server is killed, the root part exits");
	root = as_server(send_unknown_type, &server);
	ok(killed(server) && root != -1 && WIFEXITED(root), "an unknown request type: the same");
	root = as_server(send_overlong, &server);
	ok(killed(server) && root != -1 && WIFEXITED(root), "a length past the buffer: the same");

	root = as_server(hello_twice, &server);
	ok(exited0(server), "a second hello is refused, and nothing ends");

	ok(make_victim() == 0 && stat(victim, &st) == 0 && S_ISSOCK(st.st_mode),
	   "a socket of someone else's");
	root = as_server(foreign_socket, &server);
	ok(exited0(server), "the server naming it as its control socket is refused");
	ok(stat(victim, &st) == 0, "and the root part left it in place when the server went");

	root = as_server(foreign_anchor, &server);
	snprintf(anchor_path, sizeof(anchor_path), "%s/anchor", ksdir);
	ok(exited0(server), "an anchor without the magic, or of another volume, is refused");
	{
		int files = 0;
		FILE *ls;
		char cmd[256], line[256];

		snprintf(cmd, sizeof(cmd), "ls -A %s", ksdir);
		if ((ls = popen(cmd, "r"))) {
			while (fgets(line, sizeof(line), ls))
				files++;
			pclose(ls);
		}
		ok(files == 0, "and nothing was written to the keystore directory (%d files)", files);
	}

	root = as_server(mac_without_key, &server);
	ok(exited0(server), "a MAC asked of a root part without a token key: ENOTSUP");

	root = as_server(hang_up, &server);
	ok(exited0(server), "a server that hangs up ends its root part cleanly");

	unlink(victim);
	rmdir(ksdir);
	rmdir(mnt);
	rmdir(tmp);
	return tap_done();
}
