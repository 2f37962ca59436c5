/*
 * medvault init, info, fsck, compact and snapshot: the commands that work
 * on a store as a whole.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crypto/aead.h"
#include "crypto/keystore.h"
#include "crypto/secure.h"
#include "daemon/control.h"
#include "store/blobstore.h"
#include "store/compact.h"
#include "store/fsck.h"
#include "store/index.h"
#include "store/snapshot.h"
#include "store/vault.h"
#include "store/volconf.h"
#include "util/fileutil.h"
#include "cli.h"
#include "key_opts.h"

static const char *const usage_init =
	"usage: medvault init STORE --keystore KS KEY-OPTIONS [--chunk-size N] [--cipher C]\n"
	"Create an encrypted store in STORE (new or empty directory) and its key file\n"
	"in the keystore directory KS, which must live apart from the store.\n"
	"  --chunk-size N   content chunk size, a power of two from 4096 (default 65536)\n"
	"  --cipher C       aes256gcm or xchacha20poly1305 (default: the fastest here)\n"
	"KEY-OPTIONS:\n" KEY_OPTS_HELP("");

static const char *const usage_fsck =
	"usage: medvault fsck STORE --keystore KS KEY-OPTIONS [--repair]\n"
	"Verify every index record and every chunk of an unmounted store: exit 0 when\n"
	"clean, 1 when damage is found (damaged files are named), 2 on usage errors.\n"
	"  --repair   drop unreferenced records and packs, fix link counts and\n"
	"             accounting, reattach lost inodes under /lost+found; never\n"
	"             deletes data that a file still references\n"
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

/* ---- init ---- */

int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keystore", required_argument, NULL, 'k' },
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "cipher", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	struct key_opts ko = { 0 };
	struct vault_init_opts io = { 0 };
	char why[WHY_LEN] = "";
	int c;

	if (wants_help(argc, argv)) {
		fputs(usage_init, stdout);
		return 0;
	}
	if (key_opts_parse(&argc, argv, "", &ko, why, sizeof(why)) < 0)
		return fail("%s", why);
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			io.keystore = optarg;
			break;
		case 'c': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*end == 'k' || *end == 'K') {
				v <<= 10;
				end++;
			} else if (*end == 'm' || *end == 'M') {
				v <<= 20;
				end++;
			}
			if (*end || v == 0 || v > UINT32_MAX)
				return fail("--chunk-size: not a size: %s", optarg);
			io.chunk_size = (uint32_t)v;
			break;
		}
		case 'C': {
			enum aead_cipher ci;

			if (aead_cipher_parse(optarg, &ci) < 0)
				return fail("--cipher: unknown cipher %s (aes256gcm, xchacha20poly1305)", optarg);
			io.cipher = ci;
			break;
		}
		default:
			return fail("init: unknown or incomplete option %s (see medvault init --help)",
				    argv[optind - 1]);
		}
	}
	if (argc - optind != 1)
		return fail("init: expected exactly one STORE (see medvault init --help)");
	io.store = argv[optind];
	if (!io.keystore)
		return fail("init: --keystore KS is required");
	if (key_opts_check(&ko, "", why, sizeof(why)) < 0)
		return fail("%s", why);
	io.key = &ko;
	if (vault_init(&io, why, sizeof(why)) < 0)
		return fail("%s", why);
	printf("medvault: created store %s (keys in %s)\n", io.store, io.keystore);
	return 0;
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

	if (wants_help(argc, argv)) {
		fputs(usage_snapshot, stdout);
		return 0;
	}
	if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-')
		return fail("snapshot: expected STORE and DEST (see medvault snapshot --help)"), 2;
	if (snapshot_take(argv[1], argv[2], stderr, seal_mounted, NULL, why, sizeof(why)) < 0)
		return fail("%s", why);
	return 0;
}

/* ---- compact ---- */

static void print_compact_stats(const struct compact_stats *st)
{
	printf("compact: %llu packs rewritten, %llu deleted, %llu bytes moved, %llu bytes freed%s\n",
	       (unsigned long long)st->packs_rewritten, (unsigned long long)st->packs_deleted,
	       (unsigned long long)st->bytes_moved, (unsigned long long)st->bytes_freed,
	       st->packs_kept ? " (some kept for a running snapshot)" : "");
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
	return 0;
}

int cmd_compact(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keystore", required_argument, NULL, 'k' },
		{ "ratio", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct key_opts ko = { 0 };
	struct compact_stats st;
	struct vault *v = NULL;
	const char *keystore = NULL;
	char why[WHY_LEN] = "", *end;
	double ratio = COMPACT_DEFAULT_RATIO;
	int c, rc;

	if (wants_help(argc, argv)) {
		fputs(usage_compact, stdout);
		return 0;
	}
	if (key_opts_parse(&argc, argv, "", &ko, why, sizeof(why)) < 0)
		return fail("%s", why), 2;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'k') {
			keystore = optarg;
		} else if (c == 'r') {
			ratio = strtod(optarg, &end);
			if (*end || ratio <= 0 || ratio > 1)
				return fail("--ratio: a number in (0, 1], not %s", optarg), 2;
		} else {
			return fail("compact: unknown option %s (see medvault compact --help)", argv[optind - 1]), 2;
		}
	}
	if (argc - optind != 1)
		return fail("compact: expected STORE (see medvault compact --help)"), 2;
	{
		struct volconf vc;

		if (volconf_load(argv[optind], &vc, why, sizeof(why)) < 0)
			return fail("%s", why);
		volconf_release(&vc);
	}
	/* a mounted store is compacted by its daemon, which no other
	 * process may do while it writes */
	rc = control_compact(NULL, argv[optind], ratio, &st);
	if (rc != -ESRCH)
		return compact_mounted(argv[optind], rc, &st);
	if (vault_in_use(argv[optind]) == 1)
		return fail("store %s is in use (fsck?); try again later", argv[optind]);
	if (!keystore || !key_opts_given(&ko))
		return fail("store %s is not mounted: give --keystore and KEY-OPTIONS to compact it", argv[optind]), 2;
	if (key_opts_check(&ko, "", why, sizeof(why)) < 0)
		return fail("%s", why), 2;
	secure_harden_process();
	if (vault_open(&v, argv[optind], keystore, &ko, why, sizeof(why)) < 0)
		return fail("%s", why);
	rc = compact_run(v, ratio, NULL, NULL, NULL, stderr, &st);
	vault_close(v);
	if (rc < 0)
		return fail("compaction of %s failed: %s", argv[optind], strerror(-rc));
	print_compact_stats(&st);
	return 0;
}

/* ---- fsck ---- */

int cmd_fsck(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keystore", required_argument, NULL, 'k' },
		{ "repair", no_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct key_opts ko = { 0 };
	struct fsck_report r;
	struct vault *v = NULL;
	const char *keystore = NULL;
	char why[WHY_LEN] = "";
	int c, repair = 0, rc;

	if (wants_help(argc, argv)) {
		fputs(usage_fsck, stdout);
		return 0;
	}
	if (key_opts_parse(&argc, argv, "", &ko, why, sizeof(why)) < 0)
		return fail("%s", why), 2;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'k')
			keystore = optarg;
		else if (c == 'r')
			repair = 1;
		else
			return fail("fsck: unknown option %s (see medvault fsck --help)", argv[optind - 1]), 2;
	}
	if (argc - optind != 1)
		return fail("fsck: expected STORE (see medvault fsck --help)"), 2;
	if (!keystore)
		return fail("fsck: --keystore KS is required"), 2;
	if (key_opts_check(&ko, "", why, sizeof(why)) < 0)
		return fail("%s", why), 2;
	secure_harden_process();
	if ((rc = vault_open(&v, argv[optind], keystore, &ko, why, sizeof(why))) < 0) {
		if (rc == -EBUSY)
			return fail("store %s is mounted or in use; unmount it first", argv[optind]), 2;
		return fail("%s", why), 2;
	}
	rc = fsck_run(v, repair, stdout, stderr, &r);
	vault_close(v);
	if (rc < 0)
		return fail("fsck of %s stopped: %s", argv[optind], strerror(-rc)), 2;
	printf("fsck: %" PRIu64 " inodes (%" PRIu64 " directories, %" PRIu64 " files), %" PRIu64
	       " entries, %" PRIu64 " chunks (%" PRIu64 " bytes), %" PRIu64 " packs, %" PRIu64
	       " orphans: %" PRIu64 " problems (%" PRIu64 " damaged)%s\n",
	       r.inodes, r.dirs, r.files, r.dirents, r.chunks, r.chunk_bytes, r.packs, r.orphans,
	       r.problems, r.damaged, repair ? "" : "");
	if (repair)
		printf("fsck: %" PRIu64 " repairs made\n", r.repaired);
	if (r.problems == 0)
		return 0;
	if (repair && r.damaged == 0)
		return 0;
	if (!repair)
		fprintf(stderr, "medvault: %s has %" PRIu64 " problems\n", argv[optind], r.problems);
	else
		fprintf(stderr, "medvault: %s has %" PRIu64 " damaged items that cannot be repaired\n",
			argv[optind], r.damaged);
	return 1;
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
	struct volconf vc;
	const char *keystore = NULL;
	char why[WHY_LEN], uuid[33], when[64];
	uint64_t npacks, bytes;
	time_t created;
	int c;

	if (wants_help(argc, argv)) {
		fputs(usage_info, stdout);
		return 0;
	}
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'k')
			return fail("info: unknown option %s (see medvault info --help)", argv[optind - 1]);
		keystore = optarg;
	}
	if (argc - optind != 1)
		return fail("info: expected STORE (see medvault info --help)");
	if (volconf_load(argv[optind], &vc, why, sizeof(why)) < 0)
		return fail("%s", why);
	volconf_uuid_hex(vc.uuid, uuid);
	created = (time_t)vc.created;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&created));
	count_packs(argv[optind], &npacks, &bytes);
	printf("store:       %s\n", argv[optind]);
	printf("format:      %u\n", vc.format);
	printf("volume:      %s\n", uuid);
	printf("cipher:      %s\n", aead_cipher_name(vc.cipher));
	printf("chunk size:  %" PRIu32 "\n", vc.chunk_size);
	printf("pack size:   %" PRIu64 "\n", vc.pack_size);
	printf("created:     %s\n", when);
	printf("packs:       %" PRIu64 " (%" PRIu64 " bytes)\n", npacks, bytes);
	{
		uint64_t counts[INDEX_DB_COUNT];
		char ipath[PATH_MAX + 8];

		snprintf(ipath, sizeof(ipath), "%s/index", argv[optind]);
		if (index_env_counts(ipath, counts) == 0)
			printf("index:       %" PRIu64 " inodes, %" PRIu64 " names, %" PRIu64 " chunks, %"
			       PRIu64 " xattrs\n", counts[INDEX_DB_INODE], counts[INDEX_DB_DIRENT],
			       counts[INDEX_DB_CHUNK], counts[INDEX_DB_XATTR]);
	}
	if (keystore) {
		struct keystore_slot_info *slots = NULL;
		size_t n = 0;

		if (keystore_list(keystore, vc.uuid, &slots, &n, why, sizeof(why)) < 0) {
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
	return 0;
}

