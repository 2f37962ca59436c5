/*
 * fuzz_audit_file: the audit log walker (audit_walk_file, audit_list_files,
 * audit_verify_dir in fs/audit/audit_read.c) on whole log files.  Frames are
 * sealed, so random bytes die at the first tag; this target builds real
 * logs with a fixed key from the input and lets the input damage them.
 *
 * Input: byte 0 = flags (bit 0 tail_ok, bit 1 the whole rest is a raw file,
 * bit 2 no checkpoint, bit 3 a checkpoint one record short), then records:
 *   ctl u8 | len u16 | len bytes
 * ctl bit 0: skip a sequence number; bit 1: append the bytes raw instead of
 * a frame; bit 2: flip one bit of the sealed frame (at byte len % size);
 * bit 3: the bytes are a record's plaintext as is, instead of the strings
 * (split at NULs) of an event packed by audit_record_pack.
 * A log built without damage must verify with every record; any damage
 * must be reported, and nothing may crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "crypto/aead.h"
#include "audit/audit.h"
#include "fuzz_common.h"
#include "crypto/secure.h"

#define LOG_NAME "audit-20240101-00000001.log"

static const uint8_t akey[32] = "medvault audit fuzz key, public";
static const uint8_t uuid[16] = "fuzz-volume-uuid";

static const struct aead *audit_key(void)
{
	static struct aead *k;

	if (!k && (secure_init() < 0 || aead_new(&k, AEAD_XCHACHA20POLY1305, akey) < 0))
		abort();
	return k;
}

struct out {
	uint8_t *p;
	size_t len, cap;
};

static void put(struct out *o, const void *d, size_t n)
{
	if (n == 0)
		return;
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2 + 1024;
		o->p = realloc(o->p, o->cap);
		if (!o->p)
			abort();
	}
	memcpy(o->p + o->len, d, n);
	o->len += n;
}

static size_t event_pt(const uint8_t *d, size_t n, uint8_t *pt, size_t cap)
{
	const char *f[4] = { "", "", "", "" };
	char s[8192];
	size_t at = 0;
	struct audit_event e = { .op = AUDIT_OP_OPEN_R, .uid = 1, .ino = 7 };

	if (n >= sizeof(s))
		n = sizeof(s) - 1;
	memcpy(s, d, n);
	s[n] = '\0';
	for (int i = 0; i < 4 && at <= n; i++) {
		f[i] = s + at;
		at += strlen(s + at) + 1;
	}
	e.path = f[1];
	e.path2 = f[2];
	e.detail = f[3];
	return audit_record_pack(pt, cap, 1700000000000000LL, f[0], &e);
}

static int count_cb(void *arg, const struct audit_record *r)
{
	(void)r;
	(*(uint64_t *)arg)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct aead *k = audit_key();
	struct out o = { 0 };
	struct audit_header h = { 0 };
	struct audit_checkpoint cp = { 0 }, cp_short = { 0 };
	struct audit_walk w;
	struct audit_problem p;
	uint8_t hdr[AUDIT_HDR_LEN], cpb[AUDIT_CP_LEN], prev[32] = { 0 };
	static uint8_t pt[AUDIT_FRAME_MAX], frame[AUDIT_FRAME_MAX + 64];
	uint64_t seq = 0, nrec = 0, seen = 0, nrecords = 0;
	size_t off = 1;
	int flags, damaged = 0, dfd, rc;
	char why[512];

	if (size < 1 || size > 200000)
		return 0;
	flags = data[0];
	if (flags & 2) {
		put(&o, data + 1, size - 1);
		damaged = 1;
	} else {
		memcpy(h.uuid, uuid, 16);
		h.first_seq = 0;
		h.file_no = 1;
		h.created_us = 1704067200000000LL;
		audit_header_encode(k, &h, hdr);
		put(&o, hdr, sizeof(hdr));
		while (off + 3 <= size) {
			uint8_t ctl = data[off];
			size_t len = (size_t)data[off + 1] << 8 | data[off + 2], n, fl;

			off += 3;
			if (len > size - off)
				len = size - off;
			if (ctl & 1) {
				seq++;
				damaged = 1;
			}
			if (ctl & 2) {
				put(&o, data + off, len);
				damaged |= len > 0;
				off += len;
				continue;
			}
			if (ctl & 8) {
				n = len < AUDIT_FRAME_MAX ? len : AUDIT_FRAME_MAX;
				memcpy(pt, data + off, n);
				if (audit_record_unpack(pt, n, &(struct audit_record){ 0 }) < 0)
					damaged = 1;
			} else {
				n = event_pt(data + off, len, pt, sizeof(pt) - AUDIT_FRAME_HEAD - AUDIT_SEAL_LEN);
			}
			if (n + AUDIT_FRAME_HEAD + AUDIT_SEAL_LEN > AUDIT_FRAME_MAX) {
				off += len;
				continue;	/* the writer never makes such a frame */
			}
			cp_short.next_seq = seq;	/* the state before this record */
			memcpy(cp_short.head, prev, 32);
			fl = audit_frame_seal(k, uuid, seq, prev, pt, n, frame, sizeof(frame));
			FUZZ_ASSERT(fl == AUDIT_FRAME_HEAD + n + AUDIT_SEAL_LEN);
			if (ctl & 4) {
				frame[len % fl] ^= (uint8_t)(1u << (ctl >> 5));
				damaged = 1;
			}
			put(&o, frame, fl);
			seq++;
			nrec++;
			off += len;
		}
		if (off < size) {	/* a torn tail */
			put(&o, data + off, size - off);
			damaged = 1;
		}
	}
	fuzz_unlink(AUDIT_CP_NAME);
	fuzz_write_file(LOG_NAME, o.p, o.len);
	if (!(flags & 4)) {
		memcpy(cp.uuid, uuid, 16);
		cp.next_seq = seq;
		memcpy(cp.head, prev, 32);
		cp.file_no = 1;
		cp.time_us = 1704067300000000LL;
		if ((flags & 8) && nrec) {
			memcpy(cp_short.uuid, uuid, 16);
			cp_short.file_no = 1;
			cp = cp_short;	/* records past the checkpoint: still fine */
		}
		audit_cp_encode(k, &cp, cpb);
		fuzz_write_file(AUDIT_CP_NAME, cpb, sizeof(cpb));
	}

	dfd = open(fuzz_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	FUZZ_ASSERT(dfd >= 0);
	memset(&w, 0, sizeof(w));
	memset(&p, 0, sizeof(p));
	rc = audit_walk_file(dfd, LOG_NAME, k, uuid, 1, flags & 1, NULL, &w, count_cb, &seen, &p);
	FUZZ_ASSERT(rc == 0);
	FUZZ_ASSERT(w.records == seen && w.good_len <= o.len);
	if (!damaged) {
		FUZZ_ASSERT(!p.found && seen == nrec && w.good_len == o.len);
	}
	if (p.found)
		FUZZ_ASSERT(!strchr(p.what, '\n'));
	close(dfd);

	why[0] = '\0';
	rc = audit_verify_dir(fuzz_dir(), akey, NULL, NULL, &p, &nrecords, why, sizeof(why));
	FUZZ_ASSERT(rc == 0 || rc == -ENOENT);
	if (!damaged && !(flags & 4))
		FUZZ_ASSERT(rc == 0 && !p.found && nrecords == nrec);
	if (flags & 4)
		FUZZ_ASSERT(rc < 0 || p.found);
	free(o.p);
	return 0;
}
