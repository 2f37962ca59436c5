/*
 * medvault init, info, fsck, compact and snapshot: the commands that work
 * on a store as a whole.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <unistd.h>

#include "crypto/aead.h"
#include "crypto/keystore.h"
#include "crypto/secure.h"
#include "daemon/control.h"
#include "store/blobstore.h"
#include "store/compact.h"
#include "store/fsck.h"
#include "store/index.h"
#include "store/index_check.h"
#include "store/layout.h"
#include "store/snapshot.h"
#include "store/storedir.h"
#include "store/vault.h"
#include "store/volconf.h"
#include "util/fileutil.h"
#include "util/safefile.h"
#include "cli.h"
#include "key_opts.h"

static const char *const usage_init =
	"usage: medvault init STORE --keystore KS KEY-OPTIONS [--chunk-size N] [--cipher C]\n"
	"                     [--root-mode MODE] [--root-owner USER[:GROUP]]\n"
	"Create an encrypted store in STORE (new or empty directory) and its key file\n"
	"in the keystore directory KS, which must live apart from the store.\n"
	"  --chunk-size N   content chunk size, a power of two from 4096 (default 65536)\n"
	"  --cipher C       aes256gcm or xchacha20poly1305 (default: the fastest here)\n"
	"  --root-mode MODE permissions of the vault's root directory, octal (default\n"
	"                   0700: only its owner; see docs/ADMIN.md to share it)\n"
	"  --root-owner USER[:GROUP]  owner of the root directory (default: you; USER\n"
	"                   alone: with USER's login group)\n"
	"KEY-OPTIONS:\n" KEY_OPTS_HELP("");

static const char *const usage_fsck =
	"usage: medvault fsck STORE --keystore KS KEY-OPTIONS [--repair [--accept-rollback]]\n"
	"Verify every index record and every chunk of an unmounted store: exit 0 when\n"
	"clean, 3 when damage is found (damaged files are named), 1 when the store\n"
	"cannot be checked (wrong key, mounted, I/O error), 2 on usage errors.  Without\n"
	"--repair the store is opened read-only: nothing in it, nor its anchor, is\n"
	"written, and a store older than its anchor (a backup) is reported\n"
	"(\"N commits behind its anchor\") without counting as damage.\n"
	"  --repair   drop unreferenced records and packs, fix link counts and\n"
	"             accounting, reattach lost inodes under /lost+found; never\n"
	"             deletes data that a file still references\n"
	"  --accept-rollback  with --repair: repair a store behind its anchor and\n"
	"             move the anchor back to it\n"
	"KEY-OPTIONS:\n" KEY_OPTS_HELP("");

static const char *const usage_info =
	"usage: medvault info STORE [--keystore KS]\n"
	"Describe a store: format, cipher, chunk size, volume id, packs; with\n"
	"--keystore, its key slots too.  Needs no key.\n";

static const char *const usage_snapshot =
	"usage: medvault snapshot STORE DEST\n"
	"Make a consistent point-in-time copy of STORE in DEST (new or empty), even\n"
	"while it is mounted and written.  Needs no key.  Packs are hard-linked when\n"
	"DEST is on the same filesystem, copied otherwise.  Back up DEST, never a live\n"
	"store: DEST mounts with the original keystore.\n";

static const char *const usage_compact =
	"usage: medvault compact STORE [--ratio R] [--keystore KS KEY-OPTIONS]\n"
	"Rewrite the packs whose live data is below R of their size (default 0.5) and\n"
	"delete the emptied ones, so deleted files free their space.  A mounted\n"
	"store is compacted by its daemon (no key needed); an unmounted one needs\n"
	"--keystore and KEY-OPTIONS.  Packs a running snapshot uses are kept.\n"
	"KEY-OPTIONS:\n" KEY_OPTS_HELP("");

/*
 * The command line of init, info, fsck and compact:
 *   medvault CMD STORE [--keystore KS] [KEY-OPTIONS] [CMD's own options]
 * KEY-OPTIONS only when the command takes a key (want_key).  opts lists
 * every long option, --keystore as 'k'; the others go to on_opt, which
 * returns CLI_EXIT_OK or what fail_usage() returned.
 */
struct store_cmd {
	const char *name;
	int want_key;
	const char *store;	/* set on success */
	const char *keystore;	/* NULL when not given */
	struct key_opts ko;	/* zero when not given */
};

static int store_cmd_parse(struct store_cmd *sc, int argc, char **argv, const struct option *opts,
			   int (*on_opt)(int c, const char *arg, void *ctx), void *ctx)
{
	char why[WHY_LEN] = "";
	int c, rc;

	if (sc->want_key && key_opts_parse(&argc, argv, "", &sc->ko, why, sizeof(why)) < 0)
		return fail_usage("%s", why);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'k')
			sc->keystore = optarg;
		else if (c == '?' || c == ':')
			return fail_usage("%s: unknown or incomplete option %s (see medvault %s --help)",
					  sc->name, argv[optind - 1], sc->name);
		else if ((rc = on_opt(c, optarg, ctx)) != CLI_EXIT_OK)
			return rc;
	}
	if (argc - optind != 1)
		return fail_usage("%s: expected exactly one STORE (see medvault %s --help)", sc->name,
				  sc->name);
	sc->store = argv[optind];
	return CLI_EXIT_OK;
}

/* --keystore and KEY-OPTIONS, for the commands that cannot do without */
static int store_cmd_need_key(const struct store_cmd *sc)
{
	char why[WHY_LEN] = "";

	if (!sc->keystore)
		return fail_usage("%s: --keystore KS is required", sc->name);
	if (key_opts_check(&sc->ko, "", why, sizeof(why)) < 0)
		return fail_usage("%s", why);
	return CLI_EXIT_OK;
}

static int no_own_option(int c, const char *arg, void *ctx)
{
	(void)c;
	(void)arg;
	(void)ctx;
	assert(!"an option in opts that on_opt does not handle");
	return CLI_EXIT_USAGE;
}

/* ---- init ---- */

/* USER[:GROUP], by name or number; USER alone takes USER's login group */
static int parse_owner(const char *arg, uint32_t *uid, uint32_t *gid)
{
	char user[256], *colon, *end;
	const char *group = NULL;
	struct passwd *pw;
	unsigned long v;

	if (snprintf(user, sizeof(user), "%s", arg) >= (int)sizeof(user) || !user[0])
		return fail_usage("--root-owner: not USER[:GROUP]: %s", arg);
	if ((colon = strchr(user, ':'))) {
		*colon = '\0';
		group = colon + 1;
		if (!*group)
			return fail_usage("--root-owner: no group after ':' in %s", arg);
	}
	pw = getpwnam(user);
	if (pw) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	} else {
		v = strtoul(user, &end, 10);
		if (!user[0] || *end || v >= UINT32_MAX)
			return fail_usage("--root-owner: no such user: %s", user);
		if (!group)
			return fail_usage("--root-owner: uid %s has no login group: give USER:GROUP",
					  user);
		*uid = (uint32_t)v;
	}
	if (group) {
		struct group *gr = getgrnam(group);

		if (gr) {
			*gid = gr->gr_gid;
		} else {
			v = strtoul(group, &end, 10);
			if (*end || v >= UINT32_MAX)
				return fail_usage("--root-owner: no such group: %s", group);
			*gid = (uint32_t)v;
		}
	}
	return CLI_EXIT_OK;
}

static int init_option(int c, const char *arg, void *ctx)
{
	struct vault_init_opts *io = ctx;

	if (c == 'm') {
		char *end;
		unsigned long v = strtoul(arg, &end, 8);

		if (!*arg || *end || v > 07777 || arg[0] == '-' || arg[0] == '+')
			return fail_usage("--root-mode: not an octal mode (e.g. 0750): %s", arg);
		io->root_mode = (uint32_t)v;
		io->root_mode_set = 1;
		return CLI_EXIT_OK;
	}
	if (c == 'o') {
		int rc = parse_owner(arg, &io->root_uid, &io->root_gid);

		io->root_owner_set = rc == CLI_EXIT_OK;
		return rc;
	}
	if (c == 'c') {
		char *end;
		unsigned long v = strtoul(arg, &end, 10);

		if (*end == 'k' || *end == 'K') {
			v <<= 10;
			end++;
		} else if (*end == 'm' || *end == 'M') {
			v <<= 20;
			end++;
		}
		if (*end || v == 0 || v > UINT32_MAX)
			return fail_usage("--chunk-size: not a size: %s", arg);
		io->chunk_size = (uint32_t)v;
	} else {
		enum aead_cipher ci;

		if (aead_cipher_parse(arg, &ci) < 0)
			return fail_usage("--cipher: unknown cipher %s (aes256gcm, xchacha20poly1305)", arg);
		io->cipher = ci;
	}
	return CLI_EXIT_OK;
}

int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keystore", required_argument, NULL, 'k' },
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "cipher", required_argument, NULL, 'C' },
		{ "root-mode", required_argument, NULL, 'm' },
		{ "root-owner", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_cmd sc = { .name = "init", .want_key = 1 };
	struct vault_init_opts io = { 0 };
	char why[WHY_LEN] = "";
	int rc;

	if (help_shown(argc, argv, usage_init))
		return CLI_EXIT_OK;
	if ((rc = store_cmd_parse(&sc, argc, argv, opts, init_option, &io)) != CLI_EXIT_OK ||
	    (rc = store_cmd_need_key(&sc)) != CLI_EXIT_OK)
		return rc;
	io.store = sc.store;
	io.keystore = sc.keystore;
	io.key = &sc.ko;
	if (vault_init(&io, why, sizeof(why)) < 0)
		return fail("%s", why);
	printf("medvault: created store %s (keys in %s)\n", io.store, io.keystore);
	return CLI_EXIT_OK;
}

/* ---- snapshot ---- */

/* the daemon serving store (if any) writes back and seals its open pack */
static int seal_mounted(void *ctx, const char *store)
{
	(void)ctx;
	return control_seal(NULL, store);
}

int cmd_snapshot(int argc, char **argv)
{
	char why[WHY_LEN] = "";

	if (help_shown(argc, argv, usage_snapshot))
		return CLI_EXIT_OK;
	if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-')
		return fail_usage("snapshot: expected STORE and DEST (see medvault snapshot --help)");
	if (snapshot_take(argv[1], argv[2], stderr, seal_mounted, NULL, why, sizeof(why)) < 0)
		return fail("%s", why);
	return CLI_EXIT_OK;
}

/* ---- compact ---- */

static void print_compact_stats(const struct compact_stats *st)
{
	printf("compact: %llu packs rewritten, %llu deleted, %llu bytes moved, %llu bytes freed%s\n",
	       (unsigned long long)st->packs_rewritten, (unsigned long long)st->packs_deleted,
	       (unsigned long long)st->bytes_moved, (unsigned long long)st->bytes_freed,
	       st->packs_kept ? " (some kept for a running snapshot)" : "");
	if (st->earlier_age_s >= 0)
		printf("compact: background compaction had already deleted %llu packs, %llu bytes freed (latest %llds ago)\n",
		       (unsigned long long)st->earlier_packs_deleted,
		       (unsigned long long)st->earlier_bytes_freed, (long long)st->earlier_age_s);
}

/* the daemon's answer (control_compact) */
static int compact_mounted(const char *store, int rc, const struct compact_stats *st)
{
	if (rc == -ECONNABORTED || rc == -ESHUTDOWN)
		return fail("the daemon of %s stopped before compaction finished", store);
	if (rc == -EACCES)
		return fail("the daemon of %s answers only root and its own user", store);
	if (rc < 0)
		return fail("compaction of %s failed: %s", store, strerror(-rc));
	print_compact_stats(st);
	return CLI_EXIT_OK;
}

static int compact_option(int c, const char *arg, void *ctx)
{
	double *ratio = ctx;
	char *end;

	(void)c;
	*ratio = strtod(arg, &end);
	if (*end || end == arg || *ratio <= 0 || *ratio > 1)
		return fail_usage("--ratio: a number in (0, 1], not %s", arg);
	return CLI_EXIT_OK;
}

int cmd_compact(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keystore", required_argument, NULL, 'k' },
		{ "ratio", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_cmd sc = { .name = "compact", .want_key = 1 };
	struct compact_stats st;
	struct vault *v = NULL;
	char why[WHY_LEN] = "";
	double ratio = COMPACT_DEFAULT_RATIO;
	int rc;

	if (help_shown(argc, argv, usage_compact))
		return CLI_EXIT_OK;
	if ((rc = store_cmd_parse(&sc, argc, argv, opts, compact_option, &ratio)) != CLI_EXIT_OK)
		return rc;
	{
		struct volconf vc;

		if (volconf_load(sc.store, &vc, why, sizeof(why)) < 0)
			return fail("%s", why);
		volconf_release(&vc);
	}
	/* a mounted store is compacted by its daemon, which no other
	 * process may do while it writes */
	rc = control_compact(NULL, sc.store, ratio, &st);
	if (rc != -ESRCH)
		return compact_mounted(sc.store, rc, &st);
	if (vault_in_use(sc.store) == 1)
		return fail("store %s is in use (fsck?); try again later", sc.store);
	if (!sc.keystore || !key_opts_given(&sc.ko))
		return fail_usage("store %s is not mounted: give --keystore and KEY-OPTIONS to compact it",
				  sc.store);
	if ((rc = store_cmd_need_key(&sc)) != CLI_EXIT_OK)
		return rc;
	secure_harden_process();
	if (vault_open(&v, sc.store, sc.keystore, &sc.ko, NULL, why, sizeof(why)) < 0)
		return fail("%s", why);
	rc = compact_run(v, ratio, NULL, NULL, NULL, stderr, &st);
	vault_close(v);
	if (rc < 0)
		return fail("compaction of %s failed: %s", sc.store, strerror(-rc));
	print_compact_stats(&st);
	return CLI_EXIT_OK;
}

/* ---- fsck ---- */

struct fsck_opts {
	int repair, accept_rollback;
};

static int fsck_option(int c, const char *arg, void *ctx)
{
	struct fsck_opts *fo = ctx;

	(void)arg;
	if (c == 'r')
		fo->repair = 1;
	else
		fo->accept_rollback = 1;
	return CLI_EXIT_OK;
}

int cmd_fsck(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keystore", required_argument, NULL, 'k' },
		{ "repair", no_argument, NULL, 'r' },
		{ "accept-rollback", no_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_cmd sc = { .name = "fsck", .want_key = 1 };
	struct fsck_opts fo = { 0 };
	struct vault_open_opts vo = { 0 };
	struct fsck_report r;
	struct vault *v = NULL;
	char why[WHY_LEN] = "", behind[96] = "";
	int repair, rc;

	if (help_shown(argc, argv, usage_fsck))
		return CLI_EXIT_OK;
	if ((rc = store_cmd_parse(&sc, argc, argv, opts, fsck_option, &fo)) != CLI_EXIT_OK ||
	    (rc = store_cmd_need_key(&sc)) != CLI_EXIT_OK)
		return rc;
	if (fo.accept_rollback && !fo.repair)
		return fail_usage("fsck: --accept-rollback goes with --repair (a check alone writes nothing)");
	repair = fo.repair;
	/* a check writes nothing, not even the epoch or the anchor: it can
	 * look at a backup or a snapshot and say how far behind it is */
	vo.read_only = !repair;
	vo.accept_rollback = fo.accept_rollback;
	secure_harden_process();
	if ((rc = vault_open(&v, sc.store, sc.keystore, &sc.ko, &vo, why, sizeof(why))) < 0) {
		if (rc == -EBUSY)
			return fail("store %s is mounted or in use; unmount it first", sc.store);
		if (rc == -EUCLEAN) {	/* the index file itself is damaged */
			fail("%s", why);
			return CLI_EXIT_DAMAGE;
		}
		return fail("%s", why);
	}
	/* read-only, a store that is not what its anchor names opened with
	 * a note, said first.  Not counted as damage: a backup or a snapshot
	 * is behind its anchor by nature, and its check must pass */
	if (!repair && v->anchor_note[0]) {
		printf("fsck: %s\n", v->anchor_note);
		if (v->anchor_state == VAULT_ANCHOR_BEHIND)
			printf("fsck: %" PRIu64 " commits behind its anchor\n", v->anchor_behind);
		if (v->anchor_state == VAULT_ANCHOR_BEHIND)
			snprintf(behind, sizeof(behind), " (%" PRIu64 " commits behind its anchor)",
				 v->anchor_behind);
		else
			snprintf(behind, sizeof(behind), " (its anchor is %s)",
				 vault_anchor_state_name(v->anchor_state));
	}
	rc = fsck_run(v, repair, stdout, stderr, &r);
	vault_close(v);
	if (rc < 0)
		return fail("fsck of %s stopped: %s", sc.store, strerror(-rc));
	printf("fsck: %" PRIu64 " inodes (%" PRIu64 " directories, %" PRIu64 " files), %" PRIu64
	       " entries, %" PRIu64 " chunks (%" PRIu64 " bytes), %" PRIu64 " packs, %" PRIu64
	       " orphans: %" PRIu64 " problems (%" PRIu64 " damaged)\n",
	       r.inodes, r.dirs, r.files, r.dirents, r.chunks, r.chunk_bytes, r.packs, r.orphans,
	       r.problems, r.damaged);
	if (repair)
		printf("fsck: %" PRIu64 " repairs made\n", r.repaired);
	if (r.problems == 0)
		return CLI_EXIT_OK;
	if (repair && r.damaged == 0)
		return CLI_EXIT_OK;
	if (!repair)
		fprintf(stderr, "medvault: %s has %" PRIu64 " problems%s\n", sc.store, r.problems, behind);
	else
		fprintf(stderr, "medvault: %s has %" PRIu64 " damaged items that cannot be repaired\n",
			sc.store, r.damaged);
	return CLI_EXIT_DAMAGE;
}

/* ---- info ---- */

struct pack_count {
	uint64_t n, bytes;
};

static int count_pack(void *ctx, uint64_t pack, uint64_t size)
{
	struct pack_count *c = ctx;

	(void)pack;
	c->n++;
	c->bytes += size;
	return 0;
}

static void count_packs(const char *store, uint64_t *n, uint64_t *bytes)
{
	struct pack_count c = { 0, 0 };

	blobstore_scan(store, count_pack, &c);
	*n = c.n;
	*bytes = c.bytes;
}

int cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keystore", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	struct store_cmd sc = { .name = "info" };
	struct volconf vc;
	char why[WHY_LEN], uuid[33], when[64];
	uint64_t npacks, bytes, counts[INDEX_DB_COUNT];
	char ipath[PATH_MAX];
	time_t created;
	int rc, irc = -1;

	if (help_shown(argc, argv, usage_info))
		return CLI_EXIT_OK;
	if ((rc = store_cmd_parse(&sc, argc, argv, opts, no_own_option, NULL)) != CLI_EXIT_OK)
		return rc;
	if (volconf_load(sc.store, &vc, why, sizeof(why)) < 0)
		return fail("%s", why);
	/* LMDB trusts its file: a confined child checks it before we read it;
	 * unmounted, our shared lock keeps a daemon out meanwhile */
	{
		int lfd = -1, mine, sdfd;

		/* nothing in the store is followed or waited on (storedir.h) */
		if ((rc = sdfd = safe_dir_open(sc.store, why, sizeof(why))) >= 0) {
			rc = store_lock_open(sdfd, sc.store, 1, &lfd, why, sizeof(why));
			if (rc == 0)
				rc = store_index_check(sdfd, sc.store, why, sizeof(why));
			close(sdfd);
		}
		mine = lfd >= 0 && flock(lfd, LOCK_SH | LOCK_NB) == 0;
		store_path(ipath, sizeof(ipath), sc.store, STORE_INDEX);
		if (rc == 0)
			rc = index_check_structure_flags(ipath, mine ? 0 : INDEX_CHECK_LIVE, 0, why,
							 sizeof(why));
		if (rc == 0)
			irc = index_env_counts(ipath, counts);
		if (lfd >= 0)
			close(lfd);
		if (rc < 0) {
			volconf_release(&vc);
			return fail("%s", why);
		}
	}
	volconf_uuid_hex(vc.uuid, uuid);
	created = (time_t)vc.created;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&created));
	count_packs(sc.store, &npacks, &bytes);
	printf("store:       %s\n", sc.store);
	printf("format:      %u\n", vc.format);
	printf("volume:      %s\n", uuid);
	printf("cipher:      %s\n", aead_cipher_name(vc.cipher));
	printf("chunk size:  %" PRIu32 "\n", vc.chunk_size);
	printf("pack size:   %" PRIu64 "\n", vc.pack_size);
	printf("created:     %s\n", when);
	printf("packs:       %" PRIu64 " (%" PRIu64 " bytes)\n", npacks, bytes);
	{
		if (irc == 0)
			printf("index:       %" PRIu64 " inodes, %" PRIu64 " names, %" PRIu64 " chunks, %"
			       PRIu64 " xattrs\n", counts[INDEX_DB_INODE], counts[INDEX_DB_DIRENT],
			       counts[INDEX_DB_CHUNK], counts[INDEX_DB_XATTR]);
	}
	if (sc.keystore) {
		struct keystore_slot_info *slots = NULL;
		size_t n = 0;

		if (keystore_list(sc.keystore, vc.uuid, &slots, &n, why, sizeof(why)) < 0) {
			volconf_release(&vc);
			return fail("%s", why);
		}
		printf("key slots:   %zu\n", n);
		for (size_t i = 0; i < n; i++)
			printf("  slot %" PRIu32 ": %s%s%s\n", slots[i].id,
			       slots[i].kind == KEYSTORE_SLOT_PKCS11 ? "pkcs11 token " : "passphrase",
			       slots[i].kind == KEYSTORE_SLOT_PKCS11 ? slots[i].token : "",
			       "");
		free(slots);
	}
	volconf_release(&vc);
	return CLI_EXIT_OK;
}

