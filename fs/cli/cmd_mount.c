/*
 * medvault mount, umount, status and scrub: the commands that start, stop,
 * look at and ask things of a daemon serving a store.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "crypto/keystore.h"
#include "daemon/control.h"
#include "daemon/daemon.h"
#include "util/mountinfo.h"
#include "store/storedir.h"
#include "util/safefile.h"
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
	"  --audit-export FILE       also append each trail checkpoint's syslog line to FILE\n"
	"  --no-audit                no access trail (benchmarks only)\n"
	"  --scrub-interval DAYS     scrub the store every DAYS days, the first time DAYS\n"
	"                            after mounting (default 7; 0: only `medvault scrub`)\n"
	"  --scrub-rate MB/S         read chunk data at most this fast while scrubbing\n"
	"                            (megabytes of 10^6 bytes per second, default 50)\n"
	"  --user NAME               the account a root mount serves as once mounted\n"
	"                            (default " DAEMON_SERVICE_USER "); STORE and the trail become its\n"
	"KEY-OPTIONS:\n" KEY_OPTS_HELP("");

static const char *const usage_umount =
	"usage: medvault umount MOUNTPOINT\n"
	"Unmount a medvault filesystem and wait until its daemon has written\n"
	"everything back and released the store.\n";

static const char *const usage_status =
	"usage: medvault status MOUNTPOINT\n"
	"Show what the daemon serving MOUNTPOINT is doing: open files, data not yet\n"
	"written back, chunk cache hit rate, last durable checkpoint, dead bytes\n"
	"waiting for compaction, and the current or last scrub.\n";

static const char *const usage_scrub =
	"usage: medvault scrub MOUNTPOINT [--wait]\n"
	"Scrub the store mounted on MOUNTPOINT: check the whole index against its\n"
	"integrity tree, authenticate every index record, and read and authenticate\n"
	"every chunk of every file, at the rate set at mount (--scrub-rate, default\n"
	"50 MB/s), while the filesystem keeps serving.  Findings go to syslog (by\n"
	"inode number) and `medvault status` shows the progress.  Returns at once\n"
	"(a scrub already running is not started twice).\n"
	"  --wait    wait for the end and print what was found, naming damaged files;\n"
	"            exit status 3 when there were findings, 0 when all is well\n";

struct scrub_line {		/* what `status` says of the scrub */
	char state[16];
	unsigned run;
	long long started, finished, next;
	unsigned long long chunks, chunks_total, bytes, findings, files, rate;
	char inodes[200];
};

static void scrub_line_parse(const char *text, struct scrub_line *sl);
static void scrub_line_print(const struct scrub_line *sl);

/* ---- mounts ---- */

/* Find the mount at path: 1 found (fstype/source filled), 0 not mounted. */
static int find_mount(const char *path, char *fstype, size_t ftlen, char *source, size_t srclen)
{
	struct mount_entry m;

	if (!mount_at(path, &m))
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
		{ "audit-export", required_argument, NULL, 'X' },
		{ "no-audit", no_argument, NULL, 'N' },
		{ "read-only", no_argument, NULL, 'r' },
		{ "accept-rollback", no_argument, NULL, 'a' },
		{ "scrub-interval", required_argument, NULL, 'I' },
		{ "scrub-rate", required_argument, NULL, 'T' },
		{ "user", required_argument, NULL, 'U' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t scrub_interval_s = DAEMON_SCRUB_INTERVAL_S, scrub_rate = DAEMON_SCRUB_RATE;
	struct key_opts ko = { 0 };
	struct audit_opts ao = { 0 };
	struct daemon_opts dop;
	int no_audit = 0;
	const char *keystore = NULL, *store, *mnt, *user = NULL;
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
		case 'X':
			/* the daemon works from / once detached */
			if (optarg[0] != '/') {
				free(user_opts);
				return fail_usage("--audit-export: an absolute path, not %s", optarg);
			}
			ao.export_file = optarg;
			break;
		case 'N':
			no_audit = 1;
			break;
		case 'U':
			user = optarg;
			break;
		case 'r':
			read_only = 1;
			break;
		case 'a':
			accept_rollback = 1;
			break;
		case 'I':
		case 'T': {
			char *end;
			double v = strtod(optarg, &end);

			/* fractions allowed: tests scrub every few seconds */
			if (*end || end == optarg || !(v >= 0) || (c == 'T' && v <= 0) ||
			    (c == 'I' && v > 36500) || (c == 'T' && v > 1e6)) {
				free(user_opts);
				return fail_usage("--scrub-%s: not a %s: %s", c == 'I' ? "interval" : "rate",
						  c == 'I' ? "number of days" : "rate in MB/s", optarg);
			}
			if (c == 'I')
				scrub_interval_s = v > 0 && v * 86400 < 1 ? 1 : (uint64_t)(v * 86400);
			else
				scrub_rate = v * 1e6 < 1 ? 1 : (uint64_t)(v * 1e6);
			break;
		}
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
				    .foreground = foreground, .no_audit = no_audit, .audit = ao, .user = user,
				    .read_only = read_only, .accept_rollback = accept_rollback,
				    .scrub_interval_s = scrub_interval_s, .scrub_rate = scrub_rate };
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
	int fd = -1, sdfd = safe_dir_open(store, NULL, 0);

	/* nothing planted in the store is followed or waited on */
	if (sdfd >= 0) {
		store_lock_open(sdfd, store, 1, &fd, NULL, 0);
		close(sdfd);
	}
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
	if (geteuid() == 0) {
		/* as umount(8) does for ext4: a busy mount stays, and says so */
		if (umount2(real, UMOUNT_NOFOLLOW) < 0) {
			rc = errno == EBUSY ? fail("cannot unmount %s: target is busy (close its files "
						   "and leave the directory)", argv[1])
					    : fail("cannot unmount %s: %s", argv[1], strerror(errno));
			goto out;
		}
	} else {
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
	struct scrub_line sl;
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
	scrub_line_parse(text, &sl);
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
	scrub_line_print(&sl);
	return CLI_EXIT_OK;
}

/* ---- scrub ---- */

/* the scrub_* lines of the daemon's status */
static void scrub_line_parse(const char *text, struct scrub_line *sl)
{
	const char *l = text;

	memset(sl, 0, sizeof(*sl));
	snprintf(sl->state, sizeof(sl->state), "-");
	snprintf(sl->inodes, sizeof(sl->inodes), "-");
	while (l && *l) {
		sscanf(l, "scrub_state %15s", sl->state);
		sscanf(l, "scrub_run %u", &sl->run);
		sscanf(l, "scrub_started %lld", &sl->started);
		sscanf(l, "scrub_finished %lld", &sl->finished);
		sscanf(l, "scrub_chunks %llu", &sl->chunks);
		sscanf(l, "scrub_chunks_total %llu", &sl->chunks_total);
		sscanf(l, "scrub_bytes %llu", &sl->bytes);
		sscanf(l, "scrub_findings %llu", &sl->findings);
		sscanf(l, "scrub_files %llu", &sl->files);
		sscanf(l, "scrub_inodes %199s", sl->inodes);
		sscanf(l, "scrub_next %lld", &sl->next);
		sscanf(l, "scrub_rate %llu", &sl->rate);
		l = strchr(l, '\n');
		if (l)
			l++;
	}
}

static int scrub_running(const struct scrub_line *sl)
{
	return !strcmp(sl->state, "records") || !strcmp(sl->state, "chunks") || !strcmp(sl->state, "new");
}

static void scrub_line_print(const struct scrub_line *sl)
{
	long long now = (long long)time(NULL);

	if (!sl->run || !strcmp(sl->state, "never"))
		printf("scrub:             none since mount");
	else if (scrub_running(sl))
		printf("scrub:             running for %lld s (%s): %llu of %llu chunks, %llu bytes read, "
		       "%llu findings", now - sl->started, sl->state, sl->chunks, sl->chunks_total,
		       sl->bytes, sl->findings);
	else
		printf("scrub:             %s %lld s ago after %lld s: %llu chunks, %llu findings in %llu files%s%s",
		       sl->state, now - sl->finished, sl->finished - sl->started, sl->chunks, sl->findings,
		       sl->files, sl->findings ? ", inodes " : "", sl->findings ? sl->inodes : "");
	if (sl->next)
		printf("; next in %lld h\n", sl->next > now ? (sl->next - now + 3599) / 3600 : 0);
	else
		printf("; none scheduled\n");
}

static void scrub_print_report(const char *mnt, char *text, unsigned long long findings)
{
	char *line, *save = NULL;
	unsigned long long shown = 0;

	strtok_r(text, "\n", &save);	/* the summary line, parsed by the caller */
	while ((line = strtok_r(NULL, "\n", &save))) {
		char *path, *what, *tab1 = strchr(line, '\t'), *tab2;

		if (!tab1 || !(tab2 = strchr(tab1 + 1, '\t')))
			continue;
		*tab1 = *tab2 = '\0';
		path = tab1 + 1;
		what = tab2 + 1;
		shown++;
		if (!strcmp(line, "0"))
			printf("damaged: the volume: %s\n", what);
		else if (strcmp(path, "-"))
			printf("damaged: %s%s (inode %s): %s\n", mnt, path[1] ? path : "", line, what);
		else
			printf("damaged: inode %s (find %s -inum %s): %s\n", line, mnt, line, what);
	}
	if (findings > shown)
		printf("... and %llu more findings (in syslog, by inode number)\n", findings - shown);
}

int cmd_scrub(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "wait", no_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 },
	};
	char real[PATH_MAX], source[PATH_MAX], state[16];
	char *args[2], *text = NULL;
	unsigned long long findings = 0, files = 0, chunks = 0, bytes = 0;
	long long started = 0, finished = 0;
	unsigned run = 0, rrun = 0;
	int c, wait = 0, started_now = 0, err = 0, rc;

	if (help_shown(argc, argv, usage_scrub))
		return CLI_EXIT_OK;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'w')
			return fail_usage("scrub: unknown option %s (see medvault scrub --help)",
					  argv[optind - 1]);
		wait = 1;
	}
	if (argc - optind != 1)
		return fail_usage("scrub: expected MOUNTPOINT (see medvault scrub --help)");
	args[0] = argv[0];
	args[1] = argv[optind];
	if ((rc = mountpoint_arg(2, args, "scrub", real, source, sizeof(source))) != CLI_EXIT_OK)
		return rc;
	rc = control_scrub(NULL, source, &started_now, &run);
	if (rc == -EACCES)
		return fail("the daemon of %s answers only root and its own user", args[1]);
	if (rc < 0)
		return fail("cannot reach the daemon of %s: %s", args[1],
			    rc == -ESRCH ? "it does not answer" : rc == -EPROTO ? "it is too old to scrub" :
			    strerror(-rc));
	if (!wait) {
		printf(started_now ? "scrub %u started on %s\n" : "scrub %u already running on %s\n", run, real);
		return CLI_EXIT_OK;
	}
	for (;;) {
		struct scrub_line sl;

		rc = control_status(NULL, source, &text);
		if (rc == -EAGAIN) {
			usleep(200000);
			continue;
		}
		if (rc < 0)
			return fail("the daemon of %s went away before the scrub finished", args[1]);
		scrub_line_parse(text, &sl);
		free(text);
		text = NULL;
		if (sl.run > run || (sl.run == run && !scrub_running(&sl)))
			break;
		usleep(500000);
	}
	rc = control_scrub_report(NULL, source, &text);
	if (rc < 0)
		return fail("the daemon of %s gave no scrub report: %s", args[1], strerror(-rc));
	if (sscanf(text, "%u %15s %llu %llu %llu %llu %lld %lld %d", &rrun, state, &findings, &files,
		   &chunks, &bytes, &started, &finished, &err) != 9) {
		free(text);
		return fail("the daemon of %s sent a scrub report this command cannot read", args[1]);
	}
	if (strcmp(state, "done")) {
		free(text);
		if (!strcmp(state, "stopped"))
			return fail("scrub %u of %s was stopped before its end (unmounted?)", rrun, args[1]);
		return fail("scrub %u of %s failed: %s", rrun, args[1], strerror(err));
	}
	printf("scrub %u of %s: %llu chunks (%llu bytes) read and authenticated in %lld s; %llu findings in %llu files\n",
	       rrun, real, chunks, bytes, finished - started, findings, files);
	scrub_print_report(real, text, findings);
	free(text);
	if (findings) {
		fprintf(stderr, "medvault: %s: the scrub found %llu damaged or stale items\n", args[1], findings);
		return CLI_EXIT_DAMAGE;
	}
	return CLI_EXIT_OK;
}
