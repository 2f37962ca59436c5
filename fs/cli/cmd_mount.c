/*
 * medvault mount, umount and status: the commands that start, stop and
 * look at a daemon serving a store.
 */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "audit/audit.h"
#include "core/mvfs.h"
#include "crypto/keystore.h"
#include "crypto/secure.h"
#include "crypto/volkeys.h"
#include "daemon/fs_ops.h"
#include "daemon/fuse_io.h"
#include "store/vault.h"
#include "store/volconf.h"
#include "util/fileutil.h"
#include "cli.h"
#include "key_opts.h"

static const char *const usage_mount =
	"usage: medvault mount STORE MOUNTPOINT --keystore KS KEY-OPTIONS [-f] [-o OPTS]\n"
	"Unlock STORE and mount it on MOUNTPOINT.  Returns once the filesystem serves;\n"
	"the daemon stays in the background (-f keeps it in the foreground).\n"
	"  -o OPTS   FUSE mount options, e.g. allow_other\n"
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

/* mountinfo escapes blanks as \040 and backslashes as \134 */
static void unescape_mountinfo(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] && r[3]) {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/* Find the mount at path: 1 found (fstype/source filled), 0 not mounted. */
static int find_mount(const char *path, char *fstype, size_t ftlen, char *source, size_t srclen)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0) {
		char *fields[12], *save = NULL, *tok;
		int n = 0, sep = -1;

		for (tok = strtok_r(line, " \n", &save); tok && n < 12; tok = strtok_r(NULL, " \n", &save)) {
			fields[n] = tok;
			if (!strcmp(tok, "-") && sep < 0)
				sep = n;
			n++;
		}
		if (n < 5 || sep < 0 || sep + 2 >= n)
			continue;
		unescape_mountinfo(fields[4]);
		if (strcmp(fields[4], path))
			continue;
		unescape_mountinfo(fields[sep + 2]);
		snprintf(fstype, ftlen, "%s", fields[sep + 1]);
		snprintf(source, srclen, "%s", fields[sep + 2]);
		found = 1;	/* keep going: the last mount on a path is the visible one */
	}
	free(line);
	fclose(f);
	return found;
}

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
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char *line = NULL, dev[64] = "";
	size_t cap = 0;

	if (!f)
		return;
	while (getline(&line, &cap, f) > 0) {
		char mp[PATH_MAX], d[64];

		if (sscanf(line, "%*s %*s %63s %*s %4095s", d, mp) == 2) {
			unescape_mountinfo(mp);
			if (!strcmp(mp, mnt))
				snprintf(dev, sizeof(dev), "%s", d);
		}
	}
	free(line);
	fclose(f);
	if (dev[0]) {
		bdi_set(dev, "read_ahead_kb", 1024);
		bdi_set(dev, "max_ratio", 10);
	}
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
		{ NULL, 0, NULL, 0 },
	};
	struct key_opts ko = { 0 };
	struct audit_opts ao = { 0 };
	struct audit *audit = NULL;
	char audit_dir[PATH_MAX], audit_detail[PATH_MAX + 16];
	int no_audit = 0;
	const char *keystore = NULL, *store, *mnt;
	char why[WHY_LEN] = "", mntreal[PATH_MAX], fstype[64], source[PATH_MAX];
	char fuseopts[PATH_MAX + 256], *user_opts = NULL;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_session *se = NULL;
	struct fuse_loop_config *lc = NULL;
	struct vault *v = NULL;
	struct mvfs *fs = NULL;
	struct stat st;
	int c, foreground = 0, rc = 1;
	int status_pipe[2] = { -1, -1 };

	if (wants_help(argc, argv)) {
		fputs(usage_mount, stdout);
		return 0;
	}
	if (key_opts_parse(&argc, argv, "", &ko, why, sizeof(why)) < 0)
		return fail("%s", why);
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
				return fail("--audit-failure: closed or continue, not %s", optarg);
			}
			ao.fail_open = !strcmp(optarg, "continue");
			break;
		case 'S':
		case 'R': {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 10);

			if (*end || end == optarg || v == 0 || (c == 'R' && v > 100000)) {
				free(user_opts);
				return fail("--audit-%s: not a number: %s", c == 'S' ? "max-size" : "retain-days",
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
			return fail("mount: unknown or incomplete option %s (see medvault mount --help)",
				    argv[optind - 1]);
		}
	}
	if (argc - optind != 2) {
		free(user_opts);
		return fail("mount: expected STORE and MOUNTPOINT (see medvault mount --help)");
	}
	store = argv[optind];
	mnt = argv[optind + 1];
	if (!keystore) {
		rc = fail("mount: --keystore KS is required");
		goto out;
	}
	if (key_opts_check(&ko, "", why, sizeof(why)) < 0) {
		rc = fail("%s", why);
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
	/*
	 * Go to the background first: LMDB's locks and our threads belong to
	 * the process that made them, so the daemon must be the one that
	 * opens everything.  The parent only waits for a verdict; the child
	 * prints its own one-line error on the shared stderr.
	 */
	if (!foreground) {
		pid_t pid;

		if (pipe2(status_pipe, O_CLOEXEC) < 0) {
			rc = fail("pipe: %s", strerror(errno));
			goto out;
		}
		pid = fork();
		if (pid < 0) {
			rc = fail("fork: %s", strerror(errno));
			goto out;
		}
		if (pid > 0) {
			char verdict = '1';

			close(status_pipe[1]);
			while (read(status_pipe[0], &verdict, 1) < 0 && errno == EINTR)
				;
			close(status_pipe[0]);
			free(user_opts);
			return verdict == '0' ? 0 : 1;
		}
		close(status_pipe[0]);
		status_pipe[0] = -1;
	}
	if (secure_init() < 0) {
		rc = fail("libsodium failed to initialise");
		goto out;
	}
	secure_harden_process();
	if (vault_open(&v, store, keystore, &ko, why, sizeof(why)) < 0) {
		rc = fail("%s", why);
		goto out;
	}
	if (mvfs_create(&fs, v) < 0) {
		rc = fail("cannot start the filesystem: out of memory");
		goto out;
	}
	if (!no_audit) {
		/* opened before mounting so that a bad trail fails the mount;
		 * its writer thread starts after fuse_daemonize() */
		char uuid[33];

		volconf_uuid_hex(v->conf.uuid, uuid);
		if (!ao.dir) {
			snprintf(audit_dir, sizeof(audit_dir), "%s/audit/%s", keystore, uuid);
			ao.dir = audit_dir;
		}
		snprintf(audit_detail, sizeof(audit_detail), "mnt=%s", mntreal);
		ao.uuid = v->conf.uuid;
		ao.key = volkeys_audit_key(v->keys);
		ao.store = v->store;
		ao.mountpoint = mntreal;
		ao.mount_detail = audit_detail;
		if (audit_open(&audit, &ao, why, sizeof(why)) < 0) {
			rc = fail("%s", why);
			goto out;
		}
		fs->audit = audit;
	}
	/*
	 * The kernel checks modes (default_permissions) exactly as for ext4,
	 * so when root mounts, other users get in as their modes allow, as
	 * on a local disk; an unprivileged mount stays private to its owner.
	 */
	snprintf(fuseopts, sizeof(fuseopts), "default_permissions,fsname=%s,subtype=medvault%s%s%s",
		 v->store, geteuid() == 0 ? ",allow_other" : "",
		 user_opts ? "," : "", user_opts ? user_opts : "");
	if (fuse_opt_add_arg(&args, "medvault") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, fuseopts)) {
		rc = fail("out of memory");
		goto out;
	}
	{
		/* libfuse explains a bad option on stderr itself; the contract
		 * is one line, ours */
		int saved = dup(STDERR_FILENO), devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (saved >= 0 && devnull >= 0)
			dup2(devnull, STDERR_FILENO);
		se = fuse_session_new(&args, &mv_fuse_ops, sizeof(mv_fuse_ops), fs);
		if (saved >= 0) {
			dup2(saved, STDERR_FILENO);
			close(saved);
		}
		if (devnull >= 0)
			close(devnull);
	}
	if (!se) {
		rc = fail("mount: invalid FUSE options: %s", user_opts ? user_opts : "");
		goto out;
	}
	fs->session = se;
	if (fuse_session_mount(se, mntreal) != 0) {
		rc = fail("cannot mount on %s (is /dev/fuse usable and fusermount3 installed?)", mnt);
		goto out;
	}
	if (fuse_io_install(se) != 0) {
		rc = fail("cannot set up the FUSE channel");
		goto unmount;
	}
	openlog("medvault", LOG_PID | (foreground ? LOG_PERROR : 0), LOG_DAEMON);
	tune_bdi(mntreal);
	if (!foreground) {
		int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);

		/* mounted and serving: release the waiting parent */
		if (write(status_pipe[1], "0", 1) != 1) {
			syslog(LOG_ERR, "the starting command went away");
			goto unmount;
		}
		close(status_pipe[1]);
		status_pipe[1] = -1;
		setsid();
		if (chdir("/") < 0)
			syslog(LOG_WARNING, "chdir /: %s", strerror(errno));
		if (devnull >= 0) {
			dup2(devnull, STDIN_FILENO);
			dup2(devnull, STDOUT_FILENO);
			dup2(devnull, STDERR_FILENO);
			close(devnull);
		}
	}
	vault_note_pid(v);	/* snapshot and compact signal this process */
	fs->mountpoint = strdup(mntreal);
	if (fuse_set_signal_handlers(se) != 0 || mvfs_start_flusher(fs) < 0 ||
	    audit_start(audit) < 0) {
		syslog(LOG_ERR, "cannot start the daemon's threads");
		goto unmount;
	}
	syslog(LOG_INFO, "mounted %s on %s", v->store, mntreal);
	lc = fuse_loop_cfg_create();
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_idle_threads(lc, 8);
	fuse_loop_cfg_set_max_threads(lc, 16);
	rc = fuse_session_loop_mt(se, lc) ? 1 : 0;
	fuse_loop_cfg_destroy(lc);
	fuse_remove_signal_handlers(se);
unmount:
	fuse_session_unmount(se);
	mvfs_destroy(fs);
	fs = NULL;
	audit_close(audit);
	audit = NULL;
	syslog(LOG_INFO, "unmounted %s", mntreal);
out:
	if (se)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	mvfs_destroy(fs);
	audit_close(audit);
	vault_close(v);
	free(user_opts);
	if (status_pipe[1] >= 0)
		close(status_pipe[1]);	/* the parent reads EOF: startup failed */
	return rc;
}

static int wait_store_released(const char *store)
{
	char path[PATH_MAX + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/medvault.lock", store);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	/* the daemon holds this lock until its last write is durable */
	for (int i = 0; i < 6000; i++) {
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
	char real[PATH_MAX], fstype[64], source[PATH_MAX];
	int status;
	pid_t pid;

	if (wants_help(argc, argv)) {
		fputs(usage_umount, stdout);
		return 0;
	}
	if (argc != 2)
		return fail("umount: expected MOUNTPOINT (see medvault umount --help)");
	if (!realpath(argv[1], real))
		return fail("mountpoint %s: %s", argv[1], strerror(errno));
	if (!find_mount(real, fstype, sizeof(fstype), source, sizeof(source)) ||
	    strcmp(fstype, "fuse.medvault"))
		return fail("%s is not a mounted medvault filesystem", argv[1]);
	pid = fork();
	if (pid < 0)
		return fail("fork: %s", strerror(errno));
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-q", real, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		return fail("cannot unmount %s (busy? close files and leave the directory)", argv[1]);
	if (wait_store_released(source) < 0)
		return fail("unmounted %s, but its daemon has not exited yet", argv[1]);
	return 0;
}

/* ---- status ---- */

int cmd_status(int argc, char **argv)
{
	char real[PATH_MAX], fstype[64], source[PATH_MAX], path[PATH_MAX], uuid[33], why[WHY_LEN];
	char *text = NULL, *line, *save = NULL;
	unsigned long long hits = 0, loads = 0, dirty = 0, dead = 0, open_files = 0, inodes = 0;
	long long last = 0, uptime = 0;
	int pid = 0;
	struct volconf vc;
	size_t len;

	if (wants_help(argc, argv)) {
		fputs(usage_status, stdout);
		return 0;
	}
	if (argc != 2)
		return fail("status: expected MOUNTPOINT (see medvault status --help)"), 2;
	if (!realpath(argv[1], real))
		return fail("mountpoint %s: %s", argv[1], strerror(errno));
	if (!find_mount(real, fstype, sizeof(fstype), source, sizeof(source)) ||
	    strcmp(fstype, "fuse.medvault"))
		return fail("%s is not a mounted medvault filesystem", argv[1]);
	if (volconf_load(source, &vc, why, sizeof(why)) < 0)
		return fail("%s", why);
	volconf_uuid_hex(vc.uuid, uuid);
	volconf_release(&vc);
	snprintf(path, sizeof(path), "%s/%s.status", MVFS_STATUS_DIR, uuid);
	if (file_read_all(path, 4096, &text, &len) < 0)
		return fail("the daemon of %s has not published its status yet; try again in 2 s", argv[1]);
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
	return 0;
}
