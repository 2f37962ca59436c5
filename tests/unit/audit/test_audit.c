/*
 * audit: the record format, the chain and its seal, verification that
 * names each kind of alteration (changed byte, deleted, reordered,
 * truncated records, a file removed from the middle of a rotation chain),
 * rotation by size and by day (injected clock), retention, recovery of a
 * torn tail, and the fail-closed state.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto/aead.h"
#include "audit/audit.h"
#include "crypto/secure.h"
#include "../../tap.h"

#define DAY_US 86400000000LL

static uint8_t key[32], key2[32], uuid[16];
static char top[256];
static int64_t fake_now;

static int64_t fake_clock(void *arg)
{
	(void)arg;
	return fake_now += 1000;	/* 1 ms per call */
}

static void rm_rf(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "# rm -rf %s failed\n", dir);
}

static void newdir(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", top, name);
	rm_rf(out);
}

struct collect {
	uint64_t n;
	struct audit_record last;
	int saw_path, saw_lost, saw_recover, saw_prune, mounts;
	int prune_refused;
	char refused_detail[AUDIT_DETAIL_MAX + 1];
};

static int collect(void *arg, const struct audit_record *r)
{
	struct collect *c = arg;

	c->n++;
	c->last = *r;
	if (!strcmp(r->path, "/patient/Doe^John/ct-0007.dcm"))
		c->saw_path++;
	c->saw_lost += r->op == AUDIT_OP_LOST;
	c->saw_recover += r->op == AUDIT_OP_RECOVER;
	c->saw_prune += r->op == AUDIT_OP_PRUNE && r->result == 0;
	if (r->op == AUDIT_OP_PRUNE && r->result == EBADMSG) {
		c->prune_refused++;
		memcpy(c->refused_detail, r->detail, sizeof(c->refused_detail));
	}
	c->mounts += r->op == AUDIT_OP_MOUNT;
	return 0;
}

static int verify(const char *dir, const uint8_t *k, struct audit_problem *p, struct collect *c)
{
	char why[512] = "";
	uint64_t n = 0;
	int rc;

	memset(c, 0, sizeof(*c));
	rc = audit_verify_dir(dir, k, collect, c, p, &n, why, sizeof(why));
	if (rc < 0)
		printf("# verify: %s\n", why);
	if (p->found)
		printf("# verify %s: record %" PRIu64 ": %s (%s @%" PRIu64 ")\n", dir, p->seq, p->what,
		       p->file, p->offset);
	return rc;
}

static int open_log(struct audit **a, const char *dir, uint64_t max_file, int fail_open)
{
	struct audit_opts o = { .dir = dir, .uuid = uuid, .key = key, .max_file = max_file,
				.fail_open = fail_open, .clock_us = fake_now ? fake_clock : NULL };
	char why[512] = "";
	int rc = audit_open(a, &o, why, sizeof(why));

	if (rc < 0)
		printf("# audit_open: %s\n", why);
	return rc;
}

static void log_one(struct audit *a, int i)
{
	char path[64];
	struct audit_event e = { .op = AUDIT_OP_OPEN_R, .uid = 1000 + (uint32_t)(i % 3), .gid = 100,
				 .pid = (uint32_t)getpid(), .ino = (uint64_t)i + 2, .path = path };

	snprintf(path, sizeof(path), i == 7 ? "/patient/Doe^John/ct-%04d.dcm" : "/study/%d", i);
	audit_log(a, &e);
}

/* a closed log of MOUNT, n records, UNMOUNT */
static int make_log(const char *dir, int n, uint64_t max_file)
{
	struct audit *a = NULL;

	rm_rf(dir);
	if (open_log(&a, dir, max_file, 0) < 0)
		return -1;
	for (int i = 0; i < n; i++)
		log_one(a, i);
	audit_close(a);
	return 0;
}

/* the single log file of dir */
static void log_file(const char *dir, char *out, size_t len, int which)
{
	struct dirent **nl;
	int n = scandir(dir, &nl, NULL, alphasort), k = 0;

	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (!strncmp(nl[i]->d_name, "audit-", 6) && k++ == which)
			snprintf(out, len, "%s/%s", dir, nl[i]->d_name);
		free(nl[i]);
	}
	free(nl);
}

static int count_files(const char *dir)
{
	struct dirent **nl;
	int n = scandir(dir, &nl, NULL, alphasort), k = 0;

	for (int i = 0; i < n; i++) {
		k += !strncmp(nl[i]->d_name, "audit-", 6);
		free(nl[i]);
	}
	free(nl);
	return k;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)n + 1);
	if (fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void spill(const char *path, const uint8_t *b, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (f) {
		fwrite(b, 1, len, f);
		fclose(f);
	}
}

/* byte offsets of the frames of a log file (up to max) */
static int frames(const uint8_t *b, size_t len, size_t *off, int max)
{
	size_t o = AUDIT_HDR_LEN;
	int n = 0;

	while (o + 4 <= len && n < max) {
		uint32_t fl = (uint32_t)b[o] << 24 | (uint32_t)b[o + 1] << 16 | (uint32_t)b[o + 2] << 8 | b[o + 3];

		off[n++] = o;
		o += 4 + fl;
	}
	off[n] = o;
	return n;
}

static void test_format(void)
{
	uint8_t buf[AUDIT_FRAME_MAX];
	struct audit_event e = { .op = AUDIT_OP_RENAME, .result = EACCES, .uid = 7, .gid = 8,
				 .pid = 9, .ino = 10, .path = "/a", .path2 = "/b/c", .detail = "x" };
	struct audit_record r;
	size_t n = audit_record_pack(buf, sizeof(buf), 123456789, "cat", &e);
	int op = 0;

	ok(n > 0 && audit_record_unpack(buf, n, &r) == 0, "record packs and unpacks");
	ok(r.op == AUDIT_OP_RENAME && r.result == EACCES && r.uid == 7 && r.gid == 8 && r.pid == 9 &&
	   r.ino == 10 && r.time_us == 123456789 && !strcmp(r.comm, "cat") && !strcmp(r.path, "/a") &&
	   !strcmp(r.path2, "/b/c") && !strcmp(r.detail, "x"), "every field survives");
	ok(audit_record_unpack(buf, n - 1, &r) < 0, "a short record is refused");
	ok(audit_op_parse("open-r", &op) == 0 && op == AUDIT_OP_OPEN_R &&
	   !strcmp(audit_op_name(AUDIT_OP_SETXATTR), "setxattr") && audit_op_parse("nope", &op) < 0,
	   "operation names");
	ok(!strcmp(audit_errno_name(0), "OK") && !strcmp(audit_errno_name(EACCES), "EACCES"),
	   "errno names");
}

static void test_roundtrip(void)
{
	char dir[300], file[400];
	struct audit_problem p;
	struct collect c;
	uint8_t *b;
	size_t len;

	newdir(dir, sizeof(dir), "rt");
	ok(make_log(dir, 20, 0) == 0, "write a log of 20 records");
	ok(verify(dir, key, &p, &c) == 0 && !p.found, "the log verifies");
	ok(c.n == 22 && c.saw_path == 1 && c.mounts == 1, "mount + 20 + unmount records read back (%" PRIu64 ")", c.n);
	ok(c.last.op == AUDIT_OP_UNMOUNT, "the last record is the unmount");
	ok(verify(dir, key2, &p, &c) == 0 && p.found && strstr(p.what, "checkpoint"),
	   "another key fails at the checkpoint");
	log_file(dir, file, sizeof(file), 0);
	b = slurp(file, &len);
	ok(b && !memmem(b, len, "Doe^John", 8) && !memmem(b, len, "/study/", 7),
	   "no path is stored in clear");
	free(b);

	/* a second session continues the chain */
	{
		struct audit *a = NULL;
		int vr;

		ok(open_log(&a, dir, 0, 0) == 0, "reopen the log");
		log_one(a, 1);
		audit_close(a);
		vr = verify(dir, key, &p, &c);	/* before c.n is read */
		ok(vr == 0 && !p.found && c.n == 25 && c.mounts == 2,
		   "the chain continues across sessions (%" PRIu64 " records)", c.n);
	}
}

/* make a fresh log, apply fn to its file, verify and expect `want` at seq */
static void tamper(const char *name, void (*fn)(uint8_t *, size_t *, size_t *, int),
		   uint64_t want_seq, const char *want)
{
	char dir[300], file[400];
	struct audit_problem p;
	struct collect c;
	size_t len, off[64];
	uint8_t *b;
	int n;

	newdir(dir, sizeof(dir), "tamper");
	make_log(dir, 10, 0);
	log_file(dir, file, sizeof(file), 0);
	b = slurp(file, &len);
	if (!b) {
		ok(0, "%s: read the log", name);
		return;
	}
	b = realloc(b, len + 4096);
	n = frames(b, len, off, 62);
	fn(b, &len, off, n);
	spill(file, b, len);
	free(b);
	verify(dir, key, &p, &c);
	ok(p.found && p.seq == want_seq && strstr(p.what, want),
	   "%s: detected at record %" PRIu64 " (\"%s\")", name, want_seq, want);
}

static void t_flip(uint8_t *b, size_t *len, size_t *off, int n)
{
	(void)len;
	(void)n;
	b[off[4] + 30] ^= 0x01;		/* inside record 4's ciphertext */
}

static void t_flip_seq(uint8_t *b, size_t *len, size_t *off, int n)
{
	(void)len;
	(void)n;
	b[off[5] + 12] ^= 0x01;		/* record 5's sequence number */
}

static void t_delete(uint8_t *b, size_t *len, size_t *off, int n)
{
	(void)n;
	memmove(b + off[3], b + off[4], *len - off[4]);
	*len -= off[4] - off[3];
}

static void t_swap(uint8_t *b, size_t *len, size_t *off, int n)
{
	size_t l3 = off[4] - off[3], l4 = off[5] - off[4];
	uint8_t *tmp = malloc(l3 + l4);

	(void)len;
	(void)n;
	memcpy(tmp, b + off[4], l4);
	memcpy(tmp + l4, b + off[3], l3);
	memcpy(b + off[3], tmp, l3 + l4);
	free(tmp);
}

static void t_cut_tail(uint8_t *b, size_t *len, size_t *off, int n)
{
	(void)b;
	*len = off[n - 3];		/* the last three records, whole */
}

static void t_cut_mid(uint8_t *b, size_t *len, size_t *off, int n)
{
	(void)b;
	*len = off[n - 1] + 20;		/* inside the last record */
}

static void t_header(uint8_t *b, size_t *len, size_t *off, int n)
{
	(void)len;
	(void)off;
	(void)n;
	b[40] ^= 0x80;			/* the header's prev hash */
}

static void t_replay(uint8_t *b, size_t *len, size_t *off, int n)
{
	size_t l = off[3] - off[2];

	(void)n;
	/* record 2 again after record 2 */
	memmove(b + off[3] + l, b + off[3], *len - off[3]);
	memcpy(b + off[3], b + off[2], l);
	*len += l;
}

static void test_tamper(void)
{
	tamper("a flipped ciphertext byte", t_flip, 4, "altered");
	tamper("a flipped sequence number", t_flip_seq, 5, "altered");
	tamper("a deleted record", t_delete, 3, "missing");
	tamper("two swapped records", t_swap, 3, "reordered");
	tamper("the last records cut off", t_cut_tail, 9, "cut off");
	tamper("the file cut inside a record", t_cut_mid, 11, "truncated");
	tamper("an altered file header", t_header, 0, "header");
	tamper("a replayed record", t_replay, 3, "replayed");
}

static void test_checkpoint_gone(void)
{
	char dir[300], cp[400];
	struct audit_problem p;
	struct collect c;
	struct audit *a = NULL;

	newdir(dir, sizeof(dir), "nocp");
	make_log(dir, 3, 0);
	snprintf(cp, sizeof(cp), "%s/checkpoint", dir);
	unlink(cp);
	verify(dir, key, &p, &c);
	ok(p.found && strstr(p.what, "checkpoint"), "a removed checkpoint is detected");
	ok(open_log(&a, dir, 0, 0) < 0, "and the daemon refuses to resume that log");
	audit_close(a);
}

static void test_rotation_size(void)
{
	char dir[300], mid[400];
	struct audit_problem p;
	struct collect c;
	int files, vr;

	newdir(dir, sizeof(dir), "rot");
	ok(make_log(dir, 40, 700) == 0, "write 40 records with 700-byte files");
	files = count_files(dir);
	ok(files >= 5, "rotation by size made %d files", files);
	/* verify first: c.n as an argument of the same call could be read
	 * before verify fills it */
	vr = verify(dir, key, &p, &c);
	ok(vr == 0 && !p.found && c.n == 42,
	   "the chain continues across %d files (%" PRIu64 " records)", files, c.n);
	log_file(dir, mid, sizeof(mid), 2);
	unlink(mid);
	verify(dir, key, &p, &c);
	ok(p.found && strstr(p.what, "missing") && strstr(p.what, "removed"),
	   "a file removed from the middle of the chain is detected");
	{
		/* the newest file removed: records cut off, the checkpoint says so */
		char last[400];

		make_log(dir, 40, 700);
		log_file(dir, last, sizeof(last), count_files(dir) - 1);
		unlink(last);
		verify(dir, key, &p, &c);
		ok(p.found && strstr(p.what, "cut off"), "the newest file removed is detected");
	}
	{
		char first[400];

		make_log(dir, 40, 700);
		log_file(dir, first, sizeof(first), 0);
		unlink(first);
		verify(dir, key, &p, &c);
		ok(p.found && p.seq == 0 && strstr(p.what, "oldest"),
		   "the oldest file removed (outside retention) is detected");
	}
}

static void test_rotation_day(void)
{
	char dir[300], f0[400], f1[400];
	struct audit_problem p;
	struct collect c;
	struct audit *a = NULL;

	newdir(dir, sizeof(dir), "day");
	fake_now = 1714521600000000LL + DAY_US - 5000000;	/* 2024-05-01 23:59:55 UTC */
	ok(open_log(&a, dir, 0, 0) == 0, "open with an injected clock");
	for (int i = 0; i < 3; i++)
		log_one(a, i);
	fake_now += 10000000;					/* past midnight */
	for (int i = 0; i < 3; i++)
		log_one(a, i);
	audit_close(a);
	log_file(dir, f0, sizeof(f0), 0);
	log_file(dir, f1, sizeof(f1), 1);
	ok(count_files(dir) == 2 && strstr(f0, "audit-20240501-") && strstr(f1, "audit-20240502-"),
	   "a new file each UTC day (%s, %s)", strrchr(f0, '/') + 1, f1[0] ? strrchr(f1, '/') + 1 : "-");
	ok(verify(dir, key, &p, &c) == 0 && !p.found && c.n == 8, "the chain continues across days");

	/* retention: files whose successor began more than N days ago go */
	{
		struct audit_opts o = { .dir = dir, .uuid = uuid, .key = key, .retain_days = 2,
					.clock_us = fake_clock };
		char why[256];

		fake_now += 3 * DAY_US;
		ok(audit_open(&a, &o, why, sizeof(why)) == 0, "reopen three days later, retention 2 days");
		log_one(a, 1);
		audit_close(a);
		ok(count_files(dir) == 2, "the oldest file was pruned (%d files left)", count_files(dir));
		ok(verify(dir, key, &p, &c) == 0 && !p.found && c.saw_prune == 1,
		   "the pruned log still verifies and says what was pruned");
	}
	fake_now = 0;
}

/* a stand-in for the token: a MAC under a key the trail's key is not */
static uint8_t tok_key[32];

static int tok_mac(void *arg, const uint8_t *msg, size_t len, uint8_t out[AUDIT_TMAC_LEN])
{
	secure_mac(out, arg, msg, len);
	return 0;
}

/* version 2 checkpoints: the token's MAC covers the clear bytes, cannot be
 * cut off or made without the token's key; version 1 still reads */
static void test_cp_token(void)
{
	struct audit_checkpoint c = { .base_seq = 3, .next_seq = 42, .time_us = 7, .file_no = 2 }, d;
	uint8_t buf[AUDIT_CP_MAX], other[32];
	struct aead *k = NULL;
	int len;

	secure_random(tok_key, sizeof(tok_key));
	secure_random(other, sizeof(other));
	memcpy(c.uuid, uuid, sizeof(uuid));
	memset(c.head, 0xab, sizeof(c.head));
	aead_new(&k, AEAD_XCHACHA20POLY1305, key);
	len = audit_cp_seal(k, &c, tok_mac, tok_key, buf);
	ok(len == AUDIT_CP_TOKEN_LEN && audit_cp_decode(k, buf, (size_t)len, &d) == 0 && d.version == 2 &&
	   audit_cp_token_check(&d, tok_mac, tok_key) == 0, "a token-sealed checkpoint reads back and verifies");
	ok(audit_cp_token_check(&d, tok_mac, other) == -EBADMSG, "another token's key does not verify it");
	buf[AUDIT_CP_LEN + 5] ^= 1;
	ok(audit_cp_decode(k, buf, (size_t)len, &d) == 0 && audit_cp_token_check(&d, tok_mac, tok_key) == -EBADMSG,
	   "a changed token MAC fails (the MK seal does not cover it)");
	ok(audit_cp_decode(k, buf, AUDIT_CP_LEN, &d) == -EBADMSG, "the token MAC cannot be cut off");
	len = audit_cp_seal(k, &c, NULL, NULL, buf);
	ok(len == AUDIT_CP_LEN && audit_cp_decode(k, buf, (size_t)len, &d) == 0 && d.version == 1 &&
	   audit_cp_token_check(&d, tok_mac, tok_key) == -EBADMSG, "version 1: sealed by MK alone, no token MAC");
	aead_free(k);
}

/* three files, one per day from 2024-05-01, then a reopen ten days later
 * with retention 2 days, which would delete the first two */
static int three_days(const char *dir, char names[3][400])
{
	struct audit *a = NULL;

	rm_rf(dir);
	fake_now = 1714521600000000LL + 3600000000LL;	/* 2024-05-01 01:00 UTC */
	if (open_log(&a, dir, 0, 0) < 0)
		return -1;
	for (int d = 0; d < 3; d++) {
		for (int i = 0; i < 4; i++)
			log_one(a, i);
		if (d < 2)
			fake_now += DAY_US;
	}
	audit_close(a);
	for (int i = 0; i < 3; i++)
		log_file(dir, names[i], sizeof(names[i]), i);
	return count_files(dir) == 3 ? 0 : -1;
}

static int reopen_later(const char *dir)
{
	struct audit_opts o = { .dir = dir, .uuid = uuid, .key = key, .retain_days = 2,
				.clock_us = fake_clock };
	struct audit *a = NULL;
	char why[512] = "";

	fake_now += 10 * DAY_US;
	if (audit_open(&a, &o, why, sizeof(why)) < 0) {
		printf("# reopen: %s\n", why);
		return -1;
	}
	log_one(a, 1);
	audit_close(a);
	return 0;
}

static int all_there(char names[3][400])
{
	for (int i = 0; i < 3; i++)
		if (access(names[i], F_OK) < 0)
			return 0;
	return 1;
}

/* retention deletes only what authenticates: a planted or altered header
 * deletes nothing and is reported in the trail */
static void test_prune_forged(void)
{
	char dir[300], names[3][400], planted[400];
	struct audit_problem p;
	struct collect c;
	uint8_t *b;
	size_t len = 0;
	FILE *f;

	newdir(dir, sizeof(dir), "prunef");
	ok(three_days(dir, names) == 0, "a trail of three daily files");

	/* a file of our own making, sorted first, whose header claims the
	 * next file began long ago: without the key its seal cannot be right */
	b = slurp(names[0], &len);
	snprintf(planted, sizeof(planted), "%s/audit-20240401-00000000.log", dir);
	if (b && len >= AUDIT_HDR_LEN) {
		b[88] ^= 1;		/* the seal */
		f = fopen(planted, "wb");
		if (f) {
			fwrite(b, 1, len, f);
			fclose(f);
		}
	}
	free(b);
	ok(reopen_later(dir) == 0, "reopen ten days later with a planted file");
	ok(all_there(names), "retention deleted no file");
	unlink(planted);
	verify(dir, key, &p, &c);
	ok(!p.found && c.prune_refused == 1 && c.saw_prune == 0 && strstr(c.refused_detail, "refused:"),
	   "the refusal is in the trail (%s)", c.refused_detail);

	/* a FIFO planted where a log file would sort first: never opened
	 * for real (no hang), never deleted; the trail's own expired files
	 * still go, since each authenticates on its own */
	ok(three_days(dir, names) == 0, "a trail of three daily files, and a planted FIFO");
	snprintf(planted, sizeof(planted), "%s/audit-20240301-00000000.log", dir);
	ok(mkfifo(planted, 0600) == 0 && reopen_later(dir) == 0, "reopen ten days later returns");
	ok(access(planted, F_OK) == 0 && access(names[2], F_OK) == 0,
	   "retention left the FIFO and the newest file");
	unlink(planted);

	/* the real second file's header altered to claim an older start */
	ok(three_days(dir, names) == 0, "a trail of three daily files again");
	b = slurp(names[1], &len);
	if (b && len >= AUDIT_HDR_LEN) {
		memset(b + 72, 0, 8);	/* created_us: 1970 */
		f = fopen(names[1], "r+b");
		if (f) {
			fwrite(b, 1, AUDIT_HDR_LEN, f);
			fclose(f);
		}
	}
	free(b);
	{
		/* the next day just after midnight: only the altered header
		 * makes the first file old enough */
		struct audit_opts o = { .dir = dir, .uuid = uuid, .key = key, .retain_days = 2,
					.clock_us = fake_clock };
		struct audit *a = NULL;
		char why[512] = "";

		fake_now += DAY_US - 3600000000LL;
		ok(audit_open(&a, &o, why, sizeof(why)) == 0, "reopen the day after with an altered header");
		log_one(a, 1);
		audit_close(a);
	}
	ok(all_there(names), "retention deleted no file");
	verify(dir, key, &p, &c);
	ok(p.found && strstr(p.what, "header altered"), "verify names the altered header");

	/* the same trail, intact: retention does delete */
	ok(three_days(dir, names) == 0 && reopen_later(dir) == 0, "an intact trail reopened ten days later");
	ok(access(names[0], F_OK) < 0 && access(names[1], F_OK) < 0 && access(names[2], F_OK) == 0,
	   "retention deleted the two old files");
	ok(verify(dir, key, &p, &c) == 0 && !p.found && c.saw_prune == 1 && !c.prune_refused,
	   "and the trail verifies");
	fake_now = 0;
}

static void test_torn_tail(void)
{
	char dir[300], file[400];
	struct audit_problem p;
	struct collect c;
	struct audit *a = NULL;
	int fd;

	newdir(dir, sizeof(dir), "torn");
	make_log(dir, 5, 0);
	log_file(dir, file, sizeof(file), 0);
	/* what a power cut in the middle of an append leaves */
	fd = open(file, O_WRONLY | O_APPEND);
	ok(fd >= 0 && write(fd, "\0\0\1\0\1\0\0\0", 8) == 8, "append half a frame");
	if (fd >= 0)
		close(fd);
	verify(dir, key, &p, &c);
	ok(p.found && strstr(p.what, "truncated"), "verify reports the torn tail");
	ok(open_log(&a, dir, 0, 0) == 0, "the daemon resumes the log");
	audit_close(a);
	ok(verify(dir, key, &p, &c) == 0 && !p.found && c.saw_recover == 1,
	   "it cut off the torn tail and recorded that");
}

static void wait_allowed(struct audit *a, int want)
{
	for (int i = 0; i < 50 && (audit_allowed(a) == 0) != want; i++)
		usleep(100000);
}

static void test_fail_closed(void)
{
	char dir[300], aside[400];
	struct audit_problem p;
	struct collect c;
	struct audit_stats st;
	struct audit *a = NULL;
	int fd;

	newdir(dir, sizeof(dir), "fail");
	ok(open_log(&a, dir, 0, 0) == 0 && audit_start(a) == 0, "open and start the writer");
	log_one(a, 0);
	ok(audit_sync(a) == 0 && audit_allowed(a) == 0, "a healthy log syncs and allows opens");

	audit_inject_error(a, ENOSPC);
	log_one(a, 1);
	ok(audit_sync(a) == -EIO, "a full disk: audit_sync fails");
	ok(audit_allowed(a) == -EACCES, "and new opens are refused (fail closed)");
	audit_inject_error(a, 0);
	wait_allowed(a, 1);
	ok(audit_allowed(a) == 0, "space again: the writer retries and opens are allowed");
	ok(audit_sync(a) == 0, "the queued record reached the disk");

	/* the directory replaced by something unwritable */
	snprintf(aside, sizeof(aside), "%s.aside", dir);
	rm_rf(aside);
	ok(rename(dir, aside) == 0, "move the audit directory away");
	fd = open(dir, O_WRONLY | O_CREAT, 0600);	/* a file where the directory was */
	close(fd);
	rm_rf(aside);				/* and its old inode is gone */
	log_one(a, 2);
	ok(audit_sync(a) == -EIO && audit_allowed(a) == -EACCES,
	   "the directory removed and blocked: fail closed");
	unlink(dir);
	wait_allowed(a, 1);
	ok(audit_allowed(a) == 0 && audit_sync(a) == 0, "the path free again: the log is recreated");
	audit_get_stats(a, &st);
	ok(st.lost == 0 && !st.failing, "no record was lost");
	audit_close(a);
	verify(dir, key, &p, &c);
	ok(p.found && strstr(p.what, "missing"), "verify reports the records lost with the removed files");

	/* continue mode */
	newdir(dir, sizeof(dir), "failopen");
	ok(open_log(&a, dir, 0, 1) == 0 && audit_start(a) == 0, "open with --audit-failure=continue");
	audit_inject_error(a, EIO);
	log_one(a, 3);
	ok(audit_sync(a) == 0 && audit_allowed(a) == 0, "continue: opens still allowed while failing");
	audit_inject_error(a, 0);
	audit_close(a);
	ok(verify(dir, key, &p, &c) == 0 && !p.found && c.n == 3, "the records written after recovery verify");
}

static void test_refusals(void)
{
	char dir[400], store[300];
	struct audit_opts o = { .uuid = uuid, .key = key };
	struct audit *a = NULL;
	char why[256] = "";
	uint8_t other[16];

	newdir(store, sizeof(store), "store");
	mkdir(store, 0700);
	snprintf(dir, sizeof(dir), "%s/audit", store);
	o.dir = dir;
	o.store = store;
	ok(audit_open(&a, &o, why, sizeof(why)) == -EINVAL, "an audit dir inside the store is refused (%s)", why);

	newdir(dir, sizeof(dir), "othervol");
	make_log(dir, 1, 0);
	memcpy(other, uuid, 16);
	other[0] ^= 1;
	o.dir = dir;
	o.store = NULL;
	o.uuid = other;
	ok(audit_open(&a, &o, why, sizeof(why)) == -EBADMSG, "another volume's log is refused (%s)", why);
	{
		uint8_t u[16];

		ok(audit_dir_uuid(dir, u, why, sizeof(why)) == 0 && !memcmp(u, uuid, 16),
		   "the volume id is read from the log without a key");
	}
}

static void test_many(void)
{
	char dir[300];
	struct audit_problem p;
	struct collect c;
	struct audit *a = NULL;
	struct timespec t0, t1;
	double us;
	int vr;

	newdir(dir, sizeof(dir), "many");
	ok(open_log(&a, dir, 0, 0) == 0 && audit_start(a) == 0, "open for a load test");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 20000; i++)
		log_one(a, i);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) / 20000;
	printf("# audit_log: %.2f us per record on the calling thread\n", us);
	ok(us < 50, "queueing a record is cheap (%.2f us)", us);
	audit_close(a);
	vr = verify(dir, key, &p, &c);	/* before c.n is read, see above */
	ok(vr == 0 && !p.found && c.n == 20002, "20000 records verify (%" PRIu64 ")", c.n);
}

int main(void)
{
	if (secure_init() < 0)
		return 1;
	secure_random(key, sizeof(key));
	secure_random(key2, sizeof(key2));
	secure_random(uuid, sizeof(uuid));
	snprintf(top, sizeof(top), "%s/mvaudit.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(top))
		return 1;
	test_format();
	test_roundtrip();
	test_tamper();
	test_checkpoint_gone();
	test_rotation_size();
	test_rotation_day();
	test_cp_token();
	test_prune_forged();
	test_torn_tail();
	test_fail_closed();
	test_refusals();
	test_many();
	rm_rf(top);
	return tap_done();
}
