/*
 * The access trail's format, shared by the writer (audit.c) and the reader
 * (audit_read.c): operation names, the sealed file header and checkpoint,
 * records, frames and the hash chain that links them.
 */
#include "audit/audit.h"
#include "audit_int.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "crypto/aead.h"
#include "crypto/secure.h"
#include "util/byteorder.h"

#define REC_FIXED 44

static const char *const op_names[AUDIT_OP_MAX + 1] = {
	[AUDIT_OP_OPEN_R] = "open-r",
	[AUDIT_OP_OPEN_W] = "open-w",
	[AUDIT_OP_OPEN_RW] = "open-rw",
	[AUDIT_OP_CREATE] = "create",
	[AUDIT_OP_UNLINK] = "unlink",
	[AUDIT_OP_RMDIR] = "rmdir",
	[AUDIT_OP_RENAME] = "rename",
	[AUDIT_OP_TRUNCATE] = "truncate",
	[AUDIT_OP_CHMOD] = "chmod",
	[AUDIT_OP_CHOWN] = "chown",
	[AUDIT_OP_SETXATTR] = "setxattr",
	[AUDIT_OP_REMOVEXATTR] = "removexattr",
	[AUDIT_OP_MOUNT] = "mount",
	[AUDIT_OP_UNMOUNT] = "unmount",
	[AUDIT_OP_LOST] = "lost",
	[AUDIT_OP_RECOVER] = "recover",
	[AUDIT_OP_PRUNE] = "prune",
	[AUDIT_OP_FALLOCATE] = "fallocate",
	[AUDIT_OP_ACCEPT_ROLLBACK] = "accept-rollback",
};

const char *audit_op_name(int op)
{
	if (op < 1 || op > AUDIT_OP_MAX)
		return NULL;
	return op_names[op];
}

int audit_op_parse(const char *name, int *op)
{
	for (int i = 1; i <= AUDIT_OP_MAX; i++)
		if (!strcmp(name, op_names[i])) {
			*op = i;
			return 0;
		}
	return -EINVAL;
}

const char *audit_errno_name(int err)
{
	static __thread char buf[16];
	const char *n;

	if (err == 0)
		return "OK";
	n = strerrorname_np(err);
	if (n)
		return n;
	snprintf(buf, sizeof(buf), "E%d", err);
	return buf;
}

/* ---- header and checkpoint: clear bytes, sealed as associated data ---- */

static const uint8_t kind_header = 'H', kind_cp = 'C';

static void seal_clear(const struct aead *k, const uint8_t *clear, size_t n, uint8_t kind,
		       uint8_t *seal)
{
	uint8_t ad[AUDIT_CP_CLEAR + 1];
	ssize_t r;

	memcpy(ad, clear, n);
	ad[n] = kind;
	r = aead_seal(k, seal, AUDIT_SEAL_LEN, (const uint8_t *)"", 0, ad, n + 1);
	(void)r;	/* cannot fail: the cap is exact */
}

static int open_clear(const struct aead *k, const uint8_t *clear, size_t n, uint8_t kind,
		      const uint8_t *seal)
{
	uint8_t ad[AUDIT_CP_CLEAR + 1], none[1];

	memcpy(ad, clear, n);
	ad[n] = kind;
	return aead_open(k, none, sizeof(none), seal, AUDIT_SEAL_LEN, ad, n + 1) < 0 ? -EBADMSG : 0;
}

/* A header and a checkpoint start alike: magic, version, a reserved word
 * and the log's uuid (32 bytes); what follows differs. */
static void preamble_put(uint8_t *out, const char *magic, uint32_t version, const uint8_t *uuid)
{
	memcpy(out, magic, 8);
	be32_put(out + 8, version);
	be32_put(out + 12, 0);
	memcpy(out + 16, uuid, 16);
}

/* -EBADMSG (not this kind of block), -EPROTONOSUPPORT (a newer version) */
static int preamble_get(const uint8_t *in, const char *magic, uint32_t max, uint8_t *uuid)
{
	if (memcmp(in, magic, 8))
		return -EBADMSG;
	if (be32_get(in + 8) > max)
		return -EPROTONOSUPPORT;
	memcpy(uuid, in + 16, 16);
	return 0;
}

void audit_header_encode(const struct aead *k, const struct audit_header *h, uint8_t *out)
{
	preamble_put(out, AUDIT_MAGIC, AUDIT_VERSION, h->uuid);
	be64_put(out + 32, h->first_seq);
	memcpy(out + 40, h->prev, 32);
	be64_put(out + 72, (uint64_t)h->created_us);
	be64_put(out + 80, h->file_no);
	seal_clear(k, out, AUDIT_HDR_CLEAR, kind_header, out + AUDIT_HDR_CLEAR);
}

int audit_header_decode(const struct aead *k, const uint8_t *in, size_t len, struct audit_header *h)
{
	int rc;

	if (len < AUDIT_HDR_LEN)
		return -EBADMSG;
	if ((rc = preamble_get(in, AUDIT_MAGIC, AUDIT_VERSION, h->uuid)) < 0)
		return rc;
	h->first_seq = be64_get(in + 32);
	memcpy(h->prev, in + 40, 32);
	h->created_us = (int64_t)be64_get(in + 72);
	h->file_no = be64_get(in + 80);
	if (k && open_clear(k, in, AUDIT_HDR_CLEAR, kind_header, in + AUDIT_HDR_CLEAR) < 0)
		return -EBADMSG;
	return 0;
}

/* the clear bytes of a checkpoint: what both seals cover */
static void cp_clear(const struct audit_checkpoint *c, uint8_t out[AUDIT_CP_CLEAR])
{
	preamble_put(out, AUDIT_CP_MAGIC, c->version ? c->version : 1, c->uuid);
	be64_put(out + 32, c->base_seq);
	be64_put(out + 40, c->next_seq);
	memcpy(out + 48, c->head, 32);
	be64_put(out + 80, (uint64_t)c->time_us);
	be64_put(out + 88, c->file_no);
}

void audit_cp_encode(const struct aead *k, const struct audit_checkpoint *c, uint8_t *out)
{
	cp_clear(c, out);
	seal_clear(k, out, AUDIT_CP_CLEAR, kind_cp, out + AUDIT_CP_CLEAR);
}

/* what the token MACs: a label of its own, so the token's MAC of a
 * checkpoint is never valid as anything else */
static int cp_token_mac(const struct audit_checkpoint *c, audit_mac_fn mac, void *arg,
			uint8_t out[AUDIT_TMAC_LEN])
{
	uint8_t msg[AUDIT_CP_TOKEN_MSG];

	memcpy(msg, "MVAUDTOK", 8);
	cp_clear(c, msg + 8);
	return mac(arg, msg, sizeof(msg), out);
}

int audit_cp_seal(const struct aead *k, struct audit_checkpoint *c, audit_mac_fn mac, void *arg,
		  uint8_t out[AUDIT_CP_MAX])
{
	int rc;

	c->version = mac ? 2 : 1;
	if (mac && (rc = cp_token_mac(c, mac, arg, c->tmac)) < 0)
		return rc;
	audit_cp_encode(k, c, out);
	if (!mac)
		return AUDIT_CP_LEN;
	memcpy(out + AUDIT_CP_LEN, c->tmac, AUDIT_TMAC_LEN);
	return AUDIT_CP_TOKEN_LEN;
}

int audit_cp_token_check(const struct audit_checkpoint *c, audit_mac_fn mac, void *arg)
{
	uint8_t want[AUDIT_TMAC_LEN];
	int rc;

	if (c->version != 2)
		return -EBADMSG;
	if ((rc = cp_token_mac(c, mac, arg, want)) < 0)
		return rc;
	return secure_memcmp(want, c->tmac, AUDIT_TMAC_LEN) ? -EBADMSG : 0;
}

int audit_cp_decode(const struct aead *k, const uint8_t *in, size_t len, struct audit_checkpoint *c)
{
	int rc;

	if (len != AUDIT_CP_LEN && len != AUDIT_CP_TOKEN_LEN)
		return -EBADMSG;
	if ((rc = preamble_get(in, AUDIT_CP_MAGIC, 2, c->uuid)) < 0)
		return rc;
	/* the length follows the version: a token MAC cannot be cut off
	 * without the MK seal noticing the version */
	c->version = be32_get(in + 8);
	if (c->version != (len == AUDIT_CP_LEN ? 1u : 2u))
		return -EBADMSG;
	memset(c->tmac, 0, AUDIT_TMAC_LEN);
	if (len == AUDIT_CP_TOKEN_LEN)
		memcpy(c->tmac, in + AUDIT_CP_LEN, AUDIT_TMAC_LEN);
	c->base_seq = be64_get(in + 32);
	c->next_seq = be64_get(in + 40);
	memcpy(c->head, in + 48, 32);
	c->time_us = (int64_t)be64_get(in + 80);
	c->file_no = be64_get(in + 88);
	if (k && open_clear(k, in, AUDIT_CP_CLEAR, kind_cp, in + AUDIT_CP_CLEAR) < 0)
		return -EBADMSG;
	return 0;
}

/* ---- records ---- */

static size_t put_str(uint8_t *out, size_t at, const char *s, size_t n)
{
	if (n)
		memcpy(out + at, s, n);
	return at + n;
}

static size_t slen(const char *s, size_t max)
{
	return s ? strnlen(s, max) : 0;
}

size_t audit_record_pack(uint8_t *out, size_t cap, int64_t time_us, const char *comm,
			 const struct audit_event *e)
{
	size_t lc = slen(comm, AUDIT_COMM_MAX), lp = slen(e->path, AUDIT_PATH_MAX);
	size_t lp2 = slen(e->path2, AUDIT_PATH_MAX), ld = slen(e->detail, AUDIT_DETAIL_MAX);
	size_t at;

	if (cap < REC_FIXED)
		return 0;
	/* paths are cut (never the fixed part) if cap is short */
	if (REC_FIXED + lc + lp + lp2 + ld > cap) {
		lp2 = 0;
		if (REC_FIXED + lc + lp + ld > cap)
			lp = cap - REC_FIXED - lc - ld;
	}
	out[0] = 1;
	out[1] = (uint8_t)e->op;
	be16_put(out + 2, 0);
	be32_put(out + 4, (uint32_t)e->result);
	be64_put(out + 8, (uint64_t)time_us);
	be32_put(out + 16, e->uid);
	be32_put(out + 20, e->gid);
	be32_put(out + 24, e->pid);
	be64_put(out + 28, e->ino);
	be16_put(out + 36, (uint16_t)lc);
	be16_put(out + 38, (uint16_t)lp);
	be16_put(out + 40, (uint16_t)lp2);
	be16_put(out + 42, (uint16_t)ld);
	at = REC_FIXED;
	at = put_str(out, at, comm, lc);
	at = put_str(out, at, e->path, lp);
	at = put_str(out, at, e->path2, lp2);
	at = put_str(out, at, e->detail, ld);
	return at;
}

int audit_record_unpack(const uint8_t *in, size_t len, struct audit_record *r)
{
	size_t lc, lp, lp2, ld, at = REC_FIXED;

	if (len < REC_FIXED || in[0] != 1)
		return -EBADMSG;
	lc = be16_get(in + 36);
	lp = be16_get(in + 38);
	lp2 = be16_get(in + 40);
	ld = be16_get(in + 42);
	if (lc > AUDIT_COMM_MAX || lp > AUDIT_PATH_MAX || lp2 > AUDIT_PATH_MAX ||
	    ld > AUDIT_DETAIL_MAX || REC_FIXED + lc + lp + lp2 + ld != len)
		return -EBADMSG;
	r->op = in[1];
	r->result = (int)be32_get(in + 4);
	r->time_us = (int64_t)be64_get(in + 8);
	r->uid = be32_get(in + 16);
	r->gid = be32_get(in + 20);
	r->pid = be32_get(in + 24);
	r->ino = be64_get(in + 28);
	memcpy(r->comm, in + at, lc);
	r->comm[lc] = '\0';
	at += lc;
	memcpy(r->path, in + at, lp);
	r->path[lp] = '\0';
	at += lp;
	memcpy(r->path2, in + at, lp2);
	r->path2[lp2] = '\0';
	at += lp2;
	memcpy(r->detail, in + at, ld);
	r->detail[ld] = '\0';
	return 0;
}

/* ---- frames and the chain ---- */

void audit_frame_ad(uint8_t ad[65], const uint8_t uuid[16], uint8_t kind, uint64_t seq,
		     const uint8_t prev[32])
{
	memcpy(ad, AUDIT_MAGIC, 8);
	memcpy(ad + 8, uuid, 16);
	ad[24] = kind;
	be64_put(ad + 25, seq);
	memcpy(ad + 33, prev, 32);
}

/* prev <- BLAKE2b-256(prev || frame) */
void audit_chain_step(uint8_t prev[32], const uint8_t *frame, size_t n)
{
	uint8_t buf[AUDIT_HASH_LEN + AUDIT_FRAME_MAX];

	memcpy(buf, prev, AUDIT_HASH_LEN);
	memcpy(buf + AUDIT_HASH_LEN, frame, n);
	secure_hash(prev, buf, AUDIT_HASH_LEN + n);
}

size_t audit_frame_seal(const struct aead *k, const uint8_t uuid[AUDIT_UUID_LEN], uint64_t seq,
			uint8_t prev[AUDIT_HASH_LEN], const uint8_t *pt, size_t ptlen,
			uint8_t *frame, size_t cap)
{
	uint8_t ad[65];
	ssize_t n;

	audit_frame_ad(ad, uuid, AUDIT_KIND_RECORD, seq, prev);
	n = aead_seal(k, frame + AUDIT_FRAME_HEAD, cap - AUDIT_FRAME_HEAD, pt, ptlen, ad, sizeof(ad));
	if (n < 0)
		return 0;
	be32_put(frame, (uint32_t)(9 + (size_t)n));
	frame[4] = AUDIT_KIND_RECORD;
	be64_put(frame + 5, seq);
	audit_chain_step(prev, frame, AUDIT_FRAME_HEAD + (size_t)n);
	return AUDIT_FRAME_HEAD + (size_t)n;
}

void audit_file_name(char *out, size_t len, uint64_t file_no, int64_t time_us)
{
	time_t t = (time_t)(time_us / 1000000);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, len, "audit-%04d%02d%02d-%08" PRIu64 ".log", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, file_no);
}

