/*
 * medvault mount, umount and status: the commands that start, stop and
 * look at a daemon serving a store.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "crypto/keystore.h"
#include "daemon/control.h"
#include "daemon/daemon.h"
#include "cli.h"
#include "key_opts.h"

static const char *const usage_mount =
	"usage: medvault mount STORE MOUNTPOINT --keystore KS KEY-OPTIONS [-f] [-o OPTS]\n"
	"           [--read-only | --accept-rollback]\n"
	"Unlock STORE and mount it on MOUNTPOINT.  Returns once the filesystem serves;\n"
	"the daemon stays in the background (-f keeps it in the foreground).\n"
	"  -o OPTS   FUSE mount options, e.g. allow_other (-o ro is --read-only)\n"
	"  --read-only               mount read-only and write nothing to STORE (no\n"
	"                            epoch bump, no compaction, no anchor move): for a\n"
	"                            snapshot, a backup or a restore drill; a store behind\n"
	"                            its anchor mounts, with a warning\n"
	"  --accept-rollback         STORE is older than its anchor in the keystore (a\n"
	"                            restored backup): accept it, move the anchor back to\n"
	"                            it (syslogged and in the access trail) and mount\n"
	"  --audit-dir DIR           access trail directory (default KS/audit/<volume id>)\n"
	"  --audit-failure=closed|continue\n"
	"                            when the trail cannot be written: refuse new opens\n"
	"                            with EACCES (closed, the default) or go on without it\n"
	"  --audit-max-size N        rotate trail files at N bytes (default 64 MiB)\n"
	"  --audit-retain-days N     delete trail files older than N days (default 366)\n"
	"  --no-audit                no access trail (benchmarks only)\n"
	"KEY-OPTIONS:\n" KEY_OPTS_HELP("");

static const char *const usage_umount =
	"usage: medvault umount MOUNTPOINT\n"
	"Unmount a medvault filesystem and wait until its daemon has written\n"
	"everything back and released the store.\n";

static const char *const usage_status =
	"usage: medvault status MOUNTPOINT\n"
	"Show what the daemon serving MOUNTPOINT is doing: open files, data not yet\n"
	"written back, chunk cache hit rate, last durable checkpoint, and dead bytes\n"
	"waiting for compaction.\n";

/* ---- mounts ---- */

/* Find the mount at path: 1 found (fstype/source filled), 0 not mounted. */
static int find_mount(const char *path, char *fstype, size_t ftlen, char *source, size_t srclen)
{
	struct daemon_mount m;

	if (!daemon_find_mount(path, &m))
		return 0;
	snprintf(fstype, ftlen, "%s", m.fstype);
	snprintf(source, srclen, "%s", m.source);
	return 1;
}

/* The one argument of umount and status (cmd names them in the usage
 * error): a MOUNTPOINT, resolved into real (PATH_MAX bytes), served by a
 * medvault daemon whose store goes to source.  CLI_EXIT_OK, or the exit
 * status with its line printed. */
static int mountpoint_arg(int argc, char **argv, const char *cmd, char *real, char *source,
			  size_t srclen)
{
	const char *arg = argv[1];
	char fstype[64];

	if (argc != 2)
		return fail_usage("%s: expected MOUNTPOINT (see medvault %s --help)", cmd, cmd);
	if (!realpath(arg, real))
		return fail("mountpoint %s: %s", arg, strerror(errno));
	if (!find_mount(real, fstype, sizeof(fstype), source, srclen) ||
	    strcmp(fstype, "fuse.medvault"))
		return fail("%s is not a mounted medvault filesystem", arg);
	return CLI_EXIT_OK;
}

/* 1 if the comma-separated list opts (may be NULL) holds the option want */
static int fuse_opts_has(const char *opts, const char *want)
{
	size_t n = strlen(want);

	for (const char *p = opts; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
		if (!strncmp(p, want, n) && (p[n] == ',' || p[n] == '\0'))
			return 1;
	return 0;
}

int cmd_mount(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keystore", required_argument, NULL, 'k' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "audit-dir", required_argument, NULL, 'A' },
		{ "audit-failure", required_argument, NULL, 'F' },
		{ "audit-max-size", required_argument, NULL, 'S' },
		{ "audit-retain-days", required_argument, NULL, 'R' },
		{ "no-audit", no_argument, NULL, 'N' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "accept-rollback", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	struct key_opts ko = { 0 };
	struct audit_opts ao = { 0 };
	struct daemon_opts dop;
	int no_audit = 0;
	const char *keystore = NULL, *store, *mnt;
	char why[WHY_LEN] = "", mntreal[PATH_MAX], fstype[64], source[PATH_MAX];
	char *user_opts = NULL;
	struct stat st;
	int c, foreground = 0, read_only = 0, accept_rollback = 0, rc = CLI_EXIT_FAILURE;

	if (help_shown(argc, argv, usage_mount))
		return CLI_EXIT_OK;
	if (key_opts_parse(&argc, argv, "", &ko, why, sizeof(why)) < 0)
		return fail_usage("%s", why);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "fo:", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			keystore = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		case 'A':
			ao.dir = optarg;
			break;
		case 'F':
			if (strcmp(optarg, "closed") && strcmp(optarg, "continue")) {
				free(user_opts);
				return fail_usage("--audit-failure: closed or continue, not %s", optarg);
			}
			ao.fail_open = !strcmp(optarg, "continue");
			break;
		case 'S':
		case 'R': {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);

			if (*end || end == optarg || v == 0 || (c == 'R' && v > 100000)) {
				free(user_opts);
				return fail_usage("--audit-%s: not a number: %s", c == 'S' ? "max-size" : "retain-days",
					    optarg);
			}
			if (c == 'S')
				ao.max_file = v;
			else
				ao.retain_days = (unsigned)v;
			break;
		}
		case 'N':
			no_audit = 1;
			break;
		case 'r':
			read_only = 1;
			break;
		case 'a':
			accept_rollback = 1;
			break;
		case 'o': {
			size_t old = user_opts ? strlen(user_opts) : 0;
			char *n;

			if (!*optarg)
				break;	/* -o '' adds nothing */
			n = realloc(user_opts, old + strlen(optarg) + 2);
			if (!n)
				return fail("out of memory");
			if (old)
				n[old++] = ',';
			strcpy(n + old, optarg);
			user_opts = n;
			break;
		}
		default:
			free(user_opts);
			return fail_usage("mount: unknown or incomplete option %s (see medvault mount --help)",
				    argv[optind - 1]);
		}
	}
	if (argc - optind != 2) {
		free(user_opts);
		return fail_usage("mount: expected STORE and MOUNTPOINT (see medvault mount --help)");
	}
	store = argv[optind];
	mnt = argv[optind + 1];
	/* fstab's "ro" (mount.medvault passes it as -o ro) means the same */
	if (fuse_opts_has(user_opts, "ro"))
		read_only = 1;
	if (read_only && accept_rollback) {
		rc = fail_usage("mount: --read-only never moves the anchor; --accept-rollback needs a read-write mount");
		goto out;
	}
	if (!keystore) {
		rc = fail_usage("mount: --keystore KS is required");
		goto out;
	}
	if (key_opts_check(&ko, "", why, sizeof(why)) < 0) {
		rc = fail_usage("%s", why);
		goto out;
	}
	if (stat(mnt, &st) < 0 || !realpath(mnt, mntreal)) {
		rc = fail("mountpoint %s: %s", mnt, strerror(errno));
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		rc = fail("mountpoint %s is not a directory", mnt);
		goto out;
	}
	if (find_mount(mntreal, fstype, sizeof(fstype), source, sizeof(source))) {
		rc = fail("%s is already a mount point (%s)", mnt, fstype);
		goto out;
	}
	dop = (struct daemon_opts){ .store = store, .keystore = keystore, .key = &ko,
				    .mountpoint = mntreal, .mount_name = mnt, .fuse_opts = user_opts,
				    .foreground = foreground, .no_audit = no_audit, .audit = ao,
				    .read_only = read_only, .accept_rollback = accept_rollback };
	/* in the background both processes return here: the parent with the
	 * daemon's verdict, the daemon after unmount */
	if (daemon_run(&dop, why, sizeof(why)) < 0)
		rc = why[0] ? fail("%s", why) : CLI_EXIT_FAILURE;
	else
		rc = CLI_EXIT_OK;
out:
	free(user_opts);
	return rc;
}

/* how long umount waits for the daemon to write everything back */
#define UMOUNT_WAIT_MS 120000

static int wait_store_released(const char *store)
{
	char path[PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/medvault.lock", store);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	/* the daemon holds this lock until its last write is durable */
	for (int i = 0; i < UMOUNT_WAIT_MS / 20; i++) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			flock(fd, LOCK_UN);
			close(fd);
			return 0;
		}
		usleep(20000);
	}
	close(fd);
	return -ETIMEDOUT;
}

int cmd_umount(int argc, char **argv)
{
	char real[PATH_MAX], source[PATH_MAX];
	int status, wfd = -1, rc = 0;
	pid_t pid;

	if (help_shown(argc, argv, usage_umount))
		return CLI_EXIT_OK;
	if ((rc = mountpoint_arg(argc, argv, "umount", real, source, sizeof(source))) != CLI_EXIT_OK)
		return rc;
	/* before unmounting, or the daemon may be gone before we ask; a
	 * daemon without the channel is waited for on the store's lock */
	if (control_wait_begin(NULL, source, &wfd) < 0)
		wfd = -1;
	pid = fork();
	if (pid < 0) {
		rc = fail("fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-q", real, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		rc = fail("cannot unmount %s (busy? close files and leave the directory)", argv[1]);
		goto out;
	}
	if (wfd >= 0) {
		rc = control_wait_end(wfd, UMOUNT_WAIT_MS);
		wfd = -1;
	}
	if (rc < 0 || wait_store_released(source) < 0) {
		rc = fail("unmounted %s, but its daemon has not exited yet", argv[1]);
		goto out;
	}
	rc = CLI_EXIT_OK;
out:
	if (wfd >= 0)
		close(wfd);
	return rc;
}

/* ---- status ---- */

int cmd_status(int argc, char **argv)
{
	char real[PATH_MAX], source[PATH_MAX];
	char *text = NULL, *line, *save = NULL;
	unsigned long long hits = 0, loads = 0, dirty = 0, dead = 0, open_files = 0, inodes = 0;
	long long last = 0, uptime = 0;
	int pid = 0, rc;

	if (help_shown(argc, argv, usage_status))
		return CLI_EXIT_OK;
	if ((rc = mountpoint_arg(argc, argv, "status", real, source, sizeof(source))) != CLI_EXIT_OK)
		return rc;
	rc = control_status(NULL, source, &text);
	if (rc == -EAGAIN)
		return fail("the daemon of %s has not published its status yet; try again in 2 s", argv[1]);
	if (rc == -EACCES)
		return fail("the daemon of %s answers only root and its own user", argv[1]);
	if (rc < 0)
		return fail("cannot reach the daemon of %s: %s", argv[1],
			    rc == -ESRCH ? "it does not answer" : strerror(-rc));
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		sscanf(line, "pid %d", &pid);
		sscanf(line, "uptime %lld", &uptime);
		sscanf(line, "inodes %llu", &inodes);
		sscanf(line, "open %llu", &open_files);
		sscanf(line, "dirty_bytes %llu", &dirty);
		sscanf(line, "chunk_hits %llu", &hits);
		sscanf(line, "chunk_loads %llu", &loads);
		sscanf(line, "last_checkpoint %lld", &last);
		sscanf(line, "dead_bytes %llu", &dead);
	}
	free(text);
	printf("mountpoint:        %s\n", real);
	printf("store:             %s\n", source);
	printf("daemon:            pid %d, up %lld s\n", pid, uptime);
	printf("open files:        %llu (%llu inodes in use)\n", open_files, inodes);
	printf("dirty data:        %llu bytes not yet written back\n", dirty);
	printf("chunk cache:       %.1f%% hits (%llu from memory, %llu from packs)\n",
	       hits + loads ? 100.0 * (double)hits / (double)(hits + loads) : 0.0, hits, loads);
	printf("last checkpoint:   %lld s ago\n", last ? (long long)time(NULL) - last : -1LL);
	printf("pending compaction: %llu dead bytes in packs\n", dead);
	return CLI_EXIT_OK;
}
