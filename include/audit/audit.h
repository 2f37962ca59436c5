/*
 * audit: the tamper-evident access trail (who opened which file).
 *
 * The FUSE threads call audit_log(), which stamps the event, copies it into
 * a queue and returns; one writer thread seals the queued records, chains
 * them and appends them to DIR/audit-YYYYMMDD-NNNNNNNN.log, at least once a
 * second and whenever audit_sync() asks.  DIR lives beside the keystore,
 * never in the store.
 *
 * On disk (all integers big-endian; docs/AUDIT.md has the full picture):
 *
 *   file       = header frame*
 *   header     = "MVAUDIT1" u32 version u32 0  uuid[16] u64 first_seq
 *                prev_hash[32] i64 created_us u64 file_no  seal[40]
 *   frame      = u32 len  u8 kind  u64 seq  nonce[24] ciphertext tag[16]
 *   checkpoint = DIR/checkpoint: "MVAUDCP1" u32 version u32 0 uuid[16]
 *                u64 base_seq u64 next_seq head[32] i64 time_us u64 file_no
 *                seal[40]
 *
 * A record is sealed with XChaCha20-Poly1305 under the volume's audit key
 * (volkeys_audit_key, derived from the master key) with associated data
 * "MVAUDIT1" || uuid || kind || seq || prev_hash, and the chain hash is
 * h(seq) = BLAKE2b-256(h(seq-1) || frame).  So a changed byte, a removed,
 * reordered or replayed record fails, and the sealed checkpoint (record
 * count and chain head, rewritten at least every second and at unmount)
 * exposes records cut off the end.  The header and the checkpoint are
 * sealed empty messages whose associated data is their own clear bytes.
 * All of that derives from MK; so, when the mount has the PKCS#11 token,
 * each checkpoint also carries an HMAC made by a non-extractable key on
 * the token (version 2), and every checkpoint's count and chain head go to
 * syslog to leave the host (docs/AUDIT.md, "Beyond the key holders").
 *
 * Locking: a->lock protects the queue and the state flags; the writer
 * thread alone touches the files, except in audit_open/audit_close, which
 * run while no writer thread exists.
 */
#ifndef MEDVAULT_AUDIT_H
#define MEDVAULT_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define AUDIT_KEY_LEN 32
#define AUDIT_UUID_LEN 16
#define AUDIT_HASH_LEN 32
#define AUDIT_DEFAULT_MAX_FILE (64ull << 20)	/* rotate at this size */
#define AUDIT_DEFAULT_RETAIN_DAYS 366		/* then delete whole files */
#define AUDIT_PATH_MAX 4096
#define AUDIT_DETAIL_MAX 256
#define AUDIT_COMM_MAX 16

/* Operations.  Never renumber: the number is in the sealed records. */
enum audit_op {
	AUDIT_OP_OPEN_R = 1,
	AUDIT_OP_OPEN_W = 2,
	AUDIT_OP_OPEN_RW = 3,
	AUDIT_OP_CREATE = 4,
	AUDIT_OP_UNLINK = 5,
	AUDIT_OP_RMDIR = 6,
	AUDIT_OP_RENAME = 7,
	AUDIT_OP_TRUNCATE = 8,
	AUDIT_OP_CHMOD = 9,
	AUDIT_OP_CHOWN = 10,
	AUDIT_OP_SETXATTR = 11,
	AUDIT_OP_REMOVEXATTR = 12,
	AUDIT_OP_MOUNT = 13,		/* the daemon started logging */
	AUDIT_OP_UNMOUNT = 14,		/* clean stop */
	AUDIT_OP_LOST = 15,		/* detail: records dropped (continue mode) */
	AUDIT_OP_RECOVER = 16,		/* detail: torn tail dropped after a crash */
	AUDIT_OP_PRUNE = 17,		/* detail: files removed by retention */
	AUDIT_OP_FALLOCATE = 18,	/* detail: mode, offset, length */
	AUDIT_OP_ACCEPT_ROLLBACK = 19,	/* detail: anchor and store counters (--accept-rollback) */
	AUDIT_OP_MAX = 19,
};

/* "open-r", "create", ...; NULL for an unknown op */
const char *audit_op_name(int op);
/* 0 and *op, or -EINVAL */
int audit_op_parse(const char *name, int *op);

/* One event as the FUSE adapter sees it.  Strings may be NULL. */
struct audit_event {
	int op;			/* enum audit_op */
	int result;		/* 0 or a positive errno */
	uint32_t uid, gid, pid;
	uint64_t ino;
	const char *path;	/* the path at that time */
	const char *path2;	/* rename: the new path */
	const char *detail;	/* "mode=0640", "size=0", "user.x", ... */
};

/* A record as read back (strings are NUL-terminated copies). */
struct audit_record {
	uint64_t seq;
	int64_t time_us;	/* UTC, microseconds since the epoch */
	int op;
	int result;
	uint32_t uid, gid, pid;
	uint64_t ino;
	char comm[AUDIT_COMM_MAX + 1];
	char path[AUDIT_PATH_MAX + 1];
	char path2[AUDIT_PATH_MAX + 1];
	char detail[AUDIT_DETAIL_MAX + 1];
};

/* ---- the writer (fs/audit/audit.c) ---- */

struct audit;

/*
 * A MAC computed outside the process's keys (keystore_mac: HMAC-SHA256 by
 * a non-extractable key on the PKCS#11 token).  Checkpoints then carry it,
 * so whoever holds only MK (a passphrase) cannot forge one.  0 or -errno.
 */
#define AUDIT_TMAC_LEN 32
typedef int (*audit_mac_fn)(void *arg, const uint8_t *msg, size_t len, uint8_t out[AUDIT_TMAC_LEN]);

struct audit_opts {
	const char *dir;		/* created (0700) if missing */
	const uint8_t *uuid;		/* AUDIT_UUID_LEN: the volume */
	const uint8_t *key;		/* AUDIT_KEY_LEN: volkeys_audit_key() */
	int fail_open;			/* --audit-failure=continue */
	uint64_t max_file;		/* 0: AUDIT_DEFAULT_MAX_FILE */
	unsigned retain_days;		/* 0: AUDIT_DEFAULT_RETAIN_DAYS */
	const char *mount_detail;	/* text of the MOUNT record (may be NULL) */
	const char *store, *mountpoint;	/* dir must not be inside these (may be NULL) */
	/* the token's MAC (NULL: checkpoints sealed by MK only); called from
	 * the writer thread alone, and in audit_open/audit_close */
	audit_mac_fn token_mac;
	void *token_arg;
	int token_fresh;		/* the token's key was just made: an
					 * unsealed checkpoint is expected once */
	/* also append each checkpoint's syslog line to this file (may be NULL) */
	const char *export_file;
	/* tests: the clock (UTC µs); NULL: the real one */
	int64_t (*clock_us)(void *arg);
	void *clock_arg;
};

/*
 * Open or create the log in o->dir, check the existing chain's tail against
 * its sealed checkpoint (a torn tail after a crash is cut off and recorded),
 * and queue a MOUNT record.  No thread yet: call audit_start after fork().
 * -ENOMEM, -errno of the directory, -EBADMSG the log fails verification or
 * belongs to another volume (why says which).
 */
int audit_open(struct audit **out, const struct audit_opts *o, char *why, size_t whylen);
/* start the writer thread; -errno of pthread_create */
int audit_start(struct audit *a);
/* queue UNMOUNT, write everything, checkpoint, stop.  a may be NULL. */
void audit_close(struct audit *a);

/* Queue one record.  Never blocks on I/O.  a may be NULL (auditing off). */
void audit_log(struct audit *a, const struct audit_event *e);
/* 0, or -EACCES while the log cannot be written and the policy is to fail
 * closed: the caller must then refuse the open (and audit_log the refusal). */
int audit_allowed(struct audit *a);
/* Wait until every record queued before the call is on stable storage.
 * 0, or -EIO when it cannot be written (fail-closed policy only). */
int audit_sync(struct audit *a);
/* audit_sync in two halves, so the log's flush overlaps the caller's own:
 * start returns the point to wait for (records queued so far). */
uint64_t audit_sync_start(struct audit *a);
int audit_sync_wait(struct audit *a, uint64_t target);

/* counters for tests and `status` */
struct audit_stats {
	uint64_t written;	/* records on disk */
	uint64_t queued;	/* waiting for the writer */
	uint64_t lost;		/* dropped in continue mode */
	uint64_t files;		/* files created by this process */
	int failing;		/* the log cannot be written now */
};
void audit_get_stats(struct audit *a, struct audit_stats *st);

/* process name of pid from /proc, cached for a second; "?" if gone */
void audit_comm(struct audit *a, uint32_t pid, char out[AUDIT_COMM_MAX + 1]);

/* tests: make the next writes fail with err (0: stop) */
void audit_inject_error(struct audit *a, int err);

/* ---- the format (fs/audit/audit_record.c) and the reader (fs/audit/audit_read.c) ---- */

#define AUDIT_MAGIC "MVAUDIT1"
#define AUDIT_CP_MAGIC "MVAUDCP1"
#define AUDIT_VERSION 1
#define AUDIT_SEAL_LEN 40		/* XChaCha20-Poly1305 nonce + tag */
#define AUDIT_HDR_CLEAR 88
#define AUDIT_HDR_LEN (AUDIT_HDR_CLEAR + AUDIT_SEAL_LEN)
#define AUDIT_CP_CLEAR 96
#define AUDIT_CP_LEN (AUDIT_CP_CLEAR + AUDIT_SEAL_LEN)	/* version 1: MK seal only */
#define AUDIT_CP_TOKEN_LEN (AUDIT_CP_LEN + AUDIT_TMAC_LEN)	/* version 2: and the token's MAC */
#define AUDIT_CP_MAX AUDIT_CP_TOKEN_LEN
#define AUDIT_CP_TOKEN_MSG (8 + AUDIT_CP_CLEAR)	/* "MVAUDTOK" || clear bytes */
/* the last token-sealed checkpoint, kept while a mount without the token
 * writes checkpoints sealed by MK alone */
#define AUDIT_CP_TOKEN_NAME "checkpoint.token"
#define AUDIT_FRAME_HEAD 13		/* u32 len, u8 kind, u64 seq */
#define AUDIT_FRAME_MAX (AUDIT_FRAME_HEAD + 64 + 3 * AUDIT_PATH_MAX + AUDIT_SEAL_LEN)
#define AUDIT_KIND_RECORD 1
#define AUDIT_CP_NAME "checkpoint"

struct aead;

struct audit_header {
	uint8_t uuid[AUDIT_UUID_LEN];
	uint64_t first_seq;
	uint8_t prev[AUDIT_HASH_LEN];
	int64_t created_us;
	uint64_t file_no;
};

struct audit_checkpoint {
	uint8_t uuid[AUDIT_UUID_LEN];
	uint64_t base_seq;	/* oldest record kept (older files pruned) */
	uint64_t next_seq;	/* records 0 .. next_seq-1 were written */
	uint8_t head[AUDIT_HASH_LEN];	/* chain hash after next_seq-1 */
	int64_t time_us;
	uint64_t file_no;	/* the file holding record next_seq-1 */
	uint32_t version;	/* 1: MK seal only; 2: tmac follows (0 encodes as 1) */
	uint8_t tmac[AUDIT_TMAC_LEN];
};

/* Encoders: out gets exactly AUDIT_HDR_LEN / AUDIT_CP_LEN bytes. */
void audit_header_encode(const struct aead *k, const struct audit_header *h, uint8_t *out);
void audit_cp_encode(const struct aead *k, const struct audit_checkpoint *c, uint8_t *out);
/* Parse without a key (uuid, numbers), then check the seal when k != NULL.
 * -EBADMSG bad magic or seal, -EPROTONOSUPPORT newer version. */
int audit_header_decode(const struct aead *k, const uint8_t *in, size_t len, struct audit_header *h);
int audit_cp_decode(const struct aead *k, const uint8_t *in, size_t len, struct audit_checkpoint *c);
/* The whole checkpoint: version 2 with the token's MAC when mac is set,
 * else version 1.  Returns its length (AUDIT_CP_LEN or AUDIT_CP_TOKEN_LEN)
 * or the -errno of mac. */
int audit_cp_seal(const struct aead *k, struct audit_checkpoint *c, audit_mac_fn mac, void *arg,
		  uint8_t out[AUDIT_CP_MAX]);
/* 0 when c's tmac is mac's over its clear bytes; -EBADMSG when not (or c
 * carries none), -errno of mac */
int audit_cp_token_check(const struct audit_checkpoint *c, audit_mac_fn mac, void *arg);
/* read and decode dirfd/name (k may be NULL): -ENOENT, -errno, -EBADMSG */
int audit_cp_read(int dirfd, const char *name, const struct aead *k, struct audit_checkpoint *c);

/* plaintext of one record: returns its length (<= cap) */
size_t audit_record_pack(uint8_t *out, size_t cap, int64_t time_us, const char *comm,
			 const struct audit_event *e);
int audit_record_unpack(const uint8_t *in, size_t len, struct audit_record *r);

/* Seal pt as record seq after chain hash prev into frame (cap >=
 * AUDIT_FRAME_HEAD + ptlen + AUDIT_SEAL_LEN); returns the frame length and
 * advances prev to this record's chain hash. */
size_t audit_frame_seal(const struct aead *k, const uint8_t uuid[AUDIT_UUID_LEN], uint64_t seq,
			uint8_t prev[AUDIT_HASH_LEN], const uint8_t *pt, size_t ptlen,
			uint8_t *frame, size_t cap);

/* "audit-YYYYMMDD-NNNNNNNN.log" for file_no created at time_us */
void audit_file_name(char *out, size_t len, uint64_t file_no, int64_t time_us);

/* What verification found (the first problem only). */
struct audit_problem {
	int found;		/* 0: the log is intact */
	uint64_t seq;		/* the first bad record (or the first missing one) */
	char file[256];		/* where ("" if not in a file) */
	uint64_t offset;	/* byte offset in that file */
	char what[512];		/* one line */
};

/* A (record count, chain head) pair the chain must go through: a token-
 * sealed checkpoint, or a line exported to syslog.  Checked as the walk
 * passes record count-1. */
struct audit_expect {
	uint64_t count;
	uint8_t head[AUDIT_HASH_LEN];
	int state;		/* 0 not reached, 1 the chain matches, -1 it differs */
};

/* State of a chain walk (the writer resumes from it). */
struct audit_walk {
	uint64_t next_seq;
	uint8_t head[AUDIT_HASH_LEN];
	uint64_t file_no;	/* last file seen */
	char file[256];
	uint64_t good_len;	/* bytes of valid frames in that file */
	uint64_t file_len;	/* its length */
	int64_t file_created_us;
	uint64_t records;	/* records walked */
	/* where the checkpoint's head was met (verify) */
	int cp_met;
	/* optional: sorted by count; the walk sets their state */
	struct audit_expect *exp;
	size_t nexp, exp_at;
};

/*
 * Walk one file (dirfd/name) from its header; calls fn for each record
 * (fn may be NULL; fn returning non-zero stops the walk).  With tail_ok,
 * an incomplete last frame is not a problem (the writer cuts it off).
 * w must hold the expected state (next_seq, head) unless fresh_start.
 * Returns 0 (problem->found says if the chain broke) or -errno for I/O.
 */
int audit_walk_file(int dirfd, const char *name, const struct aead *k,
		    const uint8_t uuid[AUDIT_UUID_LEN], int fresh_start, int tail_ok,
		    const struct audit_checkpoint *cp, struct audit_walk *w,
		    int (*fn)(void *, const struct audit_record *), void *arg,
		    struct audit_problem *p);

/* The log files of dirfd, ordered by their header's first_seq (headers
 * parsed without a key).  *names: malloc'd array of malloc'd strings. */
int audit_list_files(int dirfd, char ***names, struct audit_header **hdrs, size_t *n);
void audit_free_list(char **names, struct audit_header *hdrs, size_t n);

/* uuid of the log in dir (from the checkpoint, else a file header), without
 * a key.  -ENOENT no log there. */
int audit_dir_uuid(const char *dir, uint8_t uuid[AUDIT_UUID_LEN], char *why, size_t whylen);

/*
 * Verify the whole log in dir with the audit key and call fn on each record
 * in order (fn may be NULL).  Returns 0 with p->found set to whether a
 * problem was found (records after the first problem are not reported), or
 * -errno (why set) when dir cannot be read at all.
 */
int audit_verify_dir(const char *dir, const uint8_t key[AUDIT_KEY_LEN],
		     int (*fn)(void *, const struct audit_record *), void *arg,
		     struct audit_problem *p, uint64_t *nrecords, char *why, size_t whylen);

/* What audit_verify_dir_ex was given beyond the key, and what it checked. */
struct audit_verify_opts {
	audit_mac_fn token_mac;		/* NULL: the token is not available */
	void *token_arg;
	struct audit_expect *exp;	/* exported (count, head) pairs, any order */
	size_t nexp;
};
struct audit_verify_info {
	uint64_t records;		/* records verified */
	uint64_t first_seq;		/* the oldest record kept */
	uint64_t cp_count;		/* the checkpoint's record count */
	uint8_t cp_head[AUDIT_HASH_LEN];
	int cp_version;			/* 1 sealed by MK only, 2 also by the token */
	int token_checked;		/* a token seal was checked and matched */
	uint64_t token_count;		/* records covered by a token-sealed checkpoint */
	size_t exp_met;			/* exported pairs the chain went through */
	size_t exp_pruned;		/* older than the oldest file kept: not checkable */
};
/*
 * audit_verify_dir, and: with o->token_mac, the newest checkpoint sealed
 * by the token must verify and the chain must go through it (a checkpoint
 * without a token seal is a problem then); the chain must go through
 * every pair of o->exp and reach the largest count.  info may be NULL.
 */
int audit_verify_dir_ex(const char *dir, const uint8_t key[AUDIT_KEY_LEN],
			const struct audit_verify_opts *o,
			int (*fn)(void *, const struct audit_record *), void *arg,
			struct audit_problem *p, struct audit_verify_info *info, char *why, size_t whylen);

/* "audit checkpoint: volume=UUID records=N head=HEX ..." as syslogged; 0
 * and the pair when line holds one for uuid, -EINVAL when not */
int audit_export_parse(const char *line, const uint8_t uuid[AUDIT_UUID_LEN], struct audit_expect *e);

/* errno name ("OK" for 0, "E123" if unknown) */
const char *audit_errno_name(int err);

#endif
