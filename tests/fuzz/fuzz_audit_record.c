/*
 * fuzz_audit_record: the audit trail's fixed-layout decoders (fs/audit/audit_record.c):
 * audit_record_unpack (a record's plaintext), audit_header_decode and
 * audit_cp_decode (a log file's header and the checkpoint), which
 * `medvault audit` and audit_list_files run on files anyone with write
 * access to the audit directory can change; the header and checkpoint are
 * parsed without a key first.  Also audit_record_pack -> unpack round trips.
 *
 * Input: byte 0 selects what else happens; the rest is the bytes decoded.
 *   bit 0: also check the header and checkpoint seals with a fixed key
 *          (must fail: the fuzzer cannot forge them);
 *   bit 1: round trip: the bytes, split at NULs, are comm, path, path2 and
 *          detail of an event that is packed then unpacked.
 */
#include <errno.h>
#include <string.h>

#include "crypto/aead.h"
#include "audit/audit.h"
#include "fuzz_common.h"
#include "crypto/secure.h"

static struct audit_record r, r2;

static const struct aead *audit_key(void)
{
	static struct aead *k;
	static const uint8_t key[32] = "medvault audit fuzz key, public";

	if (!k && (secure_init() < 0 || aead_new(&k, AEAD_XCHACHA20POLY1305, key) < 0))
		abort();
	return k;
}

static void check_record(const struct audit_record *x)
{
	FUZZ_ASSERT(strlen(x->comm) <= AUDIT_COMM_MAX);
	FUZZ_ASSERT(strlen(x->path) <= AUDIT_PATH_MAX);
	FUZZ_ASSERT(strlen(x->path2) <= AUDIT_PATH_MAX);
	FUZZ_ASSERT(strlen(x->detail) <= AUDIT_DETAIL_MAX);
}

static void round_trip(const uint8_t *d, size_t n)
{
	const char *f[4] = { "", "", "", "" };
	char *s = malloc(n + 1);
	size_t at = 0, len, cap;
	uint8_t *buf;
	struct audit_event e;

	if (!s)
		abort();
	memcpy(s, d, n);
	s[n] = '\0';
	for (int i = 0; i < 4 && at <= n; i++) {
		f[i] = s + at;
		at += strlen(s + at) + 1;
	}
	memset(&e, 0, sizeof(e));
	e.op = n ? d[0] % (AUDIT_OP_MAX + 1) : 1;
	e.result = n > 1 ? d[1] : 0;
	e.uid = 1000;
	e.ino = 42;
	e.path = f[1];
	e.path2 = *f[2] ? f[2] : NULL;
	e.detail = f[3];
	/* as fs/audit/audit.c calls it */
	cap = AUDIT_FRAME_MAX - AUDIT_FRAME_HEAD - AUDIT_SEAL_LEN;
	buf = malloc(cap);
	if (!buf)
		abort();
	len = audit_record_pack(buf, cap, 1700000000000000LL, f[0], &e);
	FUZZ_ASSERT(len > 0 && len <= cap);
	FUZZ_ASSERT(audit_record_unpack(buf, len, &r2) == 0);
	check_record(&r2);
	FUZZ_ASSERT(r2.op == e.op && r2.result == e.result && r2.uid == e.uid && r2.ino == e.ino);
	FUZZ_ASSERT(r2.time_us == 1700000000000000LL);
	FUZZ_ASSERT(strncmp(r2.comm, f[0], AUDIT_COMM_MAX) == 0);
	FUZZ_ASSERT(strncmp(r2.path, f[1], AUDIT_PATH_MAX) == 0);
	FUZZ_ASSERT(strncmp(r2.path2, f[2], AUDIT_PATH_MAX) == 0);
	FUZZ_ASSERT(strncmp(r2.detail, f[3], AUDIT_DETAIL_MAX) == 0);
	free(buf);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct audit_header h;
	struct audit_checkpoint cp;
	uint8_t *in;
	size_t n;
	int flags, rc;

	if (size < 1 || size > 3 * AUDIT_FRAME_MAX)
		return 0;
	flags = data[0];
	n = size - 1;
	in = malloc(n ? n : 1);	/* exact size: ASan sees overreads */
	if (!in)
		abort();
	memcpy(in, data + 1, n);

	rc = audit_record_unpack(in, n, &r);
	FUZZ_ASSERT(rc == 0 || rc == -EBADMSG);
	if (rc == 0)
		check_record(&r);

	rc = audit_header_decode(NULL, in, n, &h);
	FUZZ_ASSERT(rc == 0 || rc == -EBADMSG || rc == -EPROTONOSUPPORT);
	if (rc == 0 && (flags & 1))
		FUZZ_ASSERT(audit_header_decode(audit_key(), in, n, &h) == -EBADMSG);
	rc = audit_cp_decode(NULL, in, n, &cp);
	FUZZ_ASSERT(rc == 0 || rc == -EBADMSG || rc == -EPROTONOSUPPORT);
	if (rc == 0 && (flags & 1))
		FUZZ_ASSERT(audit_cp_decode(audit_key(), in, n, &cp) == -EBADMSG);

	if (flags & 2)
		round_trip(in, n);
	free(in);
	return 0;
}
