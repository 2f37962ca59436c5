/*
 * The access trail's reader: walking a log file's chain, listing a trail
 * directory, and verification that names the first altered, missing,
 * reordered or truncated record.  The format itself is audit_record.c.
 */
#include "audit/audit.h"
#include "audit_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypto/aead.h"
#include "crypto/secure.h"
#include "util/array.h"
#include "util/byteorder.h"
#include "util/safefile.h"

/* ---- walking ---- */

static void problem(struct audit_problem *p, uint64_t seq, const char *file, uint64_t off,
		    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void problem(struct audit_problem *p, uint64_t seq, const char *file, uint64_t off,
		    const char *fmt, ...)
{
	va_list ap;

	if (p->found)
		return;
	p->found = 1;
	p->seq = seq;
	snprintf(p->file, sizeof(p->file), "%s", file ? file : "");
	p->offset = off;
	va_start(ap, fmt);
	vsnprintf(p->what, sizeof(p->what), fmt, ap);
	va_end(ap);
}

/* Expected pairs up to count: the ones below it were not reached (before
 * the walk's start), the ones at it are checked against head. */
static void expect_pass(struct audit_walk *w, uint64_t count, const uint8_t head[AUDIT_HASH_LEN])
{
	while (w->exp_at < w->nexp && w->exp[w->exp_at].count < count)
		w->exp_at++;
	for (; w->exp_at < w->nexp && w->exp[w->exp_at].count == count; w->exp_at++)
		w->exp[w->exp_at].state = memcmp(w->exp[w->exp_at].head, head, AUDIT_HASH_LEN) ? -1 : 1;
}

/* seq of the frame at off, or UINT64_MAX when there is none */
static uint64_t peek_seq(const uint8_t *m, size_t len, size_t off)
{
	uint32_t flen;

	if (len - off < AUDIT_FRAME_HEAD)
		return UINT64_MAX;
	flen = be32_get(m + off);
	off += 4 + (size_t)flen;
	if (off > len || len - off < AUDIT_FRAME_HEAD)
		return UINT64_MAX;
	return be64_get(m + off + 5);
}

int audit_walk_file(int dirfd, const char *name, const struct aead *k,
		    const uint8_t uuid[AUDIT_UUID_LEN], int fresh_start, int tail_ok,
		    const struct audit_checkpoint *cp, struct audit_walk *w,
		    int (*fn)(void *, const struct audit_record *), void *arg,
		    struct audit_problem *p)
{
	struct audit_header h;
	struct audit_record *rec = NULL;
	uint8_t *pt = NULL, ad[65];
	const uint8_t *m = MAP_FAILED;
	struct stat st;
	size_t len = 0, off;
	int fd, rc = 0;

	/* a link, FIFO or device planted as a log file is refused, unread */
	fd = safe_open(dirfd, name, O_RDONLY, 0, name, NULL, 0);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		problem(p, w->next_seq, name, 0, "%s: not a regular file", name);
		goto out;
	}
	len = (size_t)st.st_size;
	if (len < AUDIT_HDR_LEN) {
		problem(p, w->next_seq, name, 0, "%s: header missing or cut short (%zu bytes)", name, len);
		goto out;
	}
	m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED) {
		rc = -errno;
		goto out;
	}
	rec = malloc(sizeof(*rec));
	pt = malloc(AUDIT_FRAME_MAX);
	if (!rec || !pt) {
		rc = -ENOMEM;
		goto out;
	}
	if (audit_header_decode(k, m, len, &h) < 0) {
		problem(p, w->next_seq, name, 0, "%s: file header altered (authentication failed)", name);
		goto out;
	}
	if (memcmp(h.uuid, uuid, AUDIT_UUID_LEN)) {
		problem(p, w->next_seq, name, 0, "%s: belongs to another volume", name);
		goto out;
	}
	if (fresh_start) {
		w->next_seq = h.first_seq;
		memcpy(w->head, h.prev, AUDIT_HASH_LEN);
		if (w->exp && h.first_seq > 0)
			expect_pass(w, h.first_seq, h.prev);
	} else if (h.first_seq > w->next_seq) {
		problem(p, w->next_seq, name, 0,
			"records %" PRIu64 "..%" PRIu64 " missing: the file before %s was removed or cut short",
			w->next_seq, h.first_seq - 1, name);
		goto out;
	} else if (h.first_seq < w->next_seq) {
		problem(p, h.first_seq, name, 0,
			"%s repeats records from %" PRIu64 " (a copied or replayed file)", name, h.first_seq);
		goto out;
	} else if (memcmp(h.prev, w->head, AUDIT_HASH_LEN)) {
		problem(p, w->next_seq, name, 0,
			"%s does not continue the chain of the file before it (record %" PRIu64 ")",
			name, w->next_seq);
		goto out;
	}
	w->file_no = h.file_no;
	w->file_created_us = h.created_us;
	snprintf(w->file, sizeof(w->file), "%s", name);
	w->file_len = len;
	off = AUDIT_HDR_LEN;
	w->good_len = off;
	while (off < len) {
		uint64_t seq, expect = w->next_seq;
		uint32_t flen;
		ssize_t n;

		if (len - off < AUDIT_FRAME_HEAD ||
		    (flen = be32_get(m + off)) > len - off - 4) {
			if (!tail_ok)
				problem(p, expect, name, off,
					"log ends inside record %" PRIu64 " (truncated)", expect);
			break;
		}
		if (flen < 9 + AUDIT_SEAL_LEN || flen > AUDIT_FRAME_MAX - 4 || m[off + 4] != AUDIT_KIND_RECORD) {
			problem(p, expect, name, off, "record %" PRIu64 " altered (damaged frame)", expect);
			break;
		}
		seq = be64_get(m + off + 5);
		if (seq != expect) {
			uint64_t next = peek_seq(m, len, off);

			if (next == expect + 1)
				problem(p, expect, name, off,
					"record %" PRIu64 " altered (its sequence number reads %" PRIu64 ")",
					expect, seq);
			else if (seq > expect && next == expect)
				problem(p, expect, name, off,
					"records reordered: record %" PRIu64 " found where %" PRIu64 " belongs",
					seq, expect);
			else if (seq == expect + 1)
				problem(p, expect, name, off, "record %" PRIu64 " missing (deleted)", expect);
			else if (seq > expect)
				problem(p, expect, name, off,
					"records %" PRIu64 "..%" PRIu64 " missing (deleted)", expect, seq - 1);
			else
				problem(p, expect, name, off,
					"records reordered or replayed: record %" PRIu64 " found where %" PRIu64 " belongs",
					seq, expect);
			break;
		}
		audit_frame_ad(ad, uuid, AUDIT_KIND_RECORD, seq, w->head);
		n = aead_open(k, pt, AUDIT_FRAME_MAX, m + off + AUDIT_FRAME_HEAD,
			      flen - 9, ad, sizeof(ad));
		if (n < 0 || audit_record_unpack(pt, (size_t)n, rec) < 0) {
			problem(p, expect, name, off, "record %" PRIu64 " altered (authentication failed)", expect);
			break;
		}
		rec->seq = seq;
		audit_chain_step(w->head, m + off, 4 + (size_t)flen);
		if (cp && cp->next_seq && seq == cp->next_seq - 1)
			w->cp_met = memcmp(w->head, cp->head, AUDIT_HASH_LEN) ? -1 : 1;
		if (w->exp)
			expect_pass(w, seq + 1, w->head);
		w->next_seq++;
		w->records++;
		off += 4 + (size_t)flen;
		w->good_len = off;
		if (fn && fn(arg, rec))
			break;
	}
out:
	if (pt)
		secure_wipe(pt, AUDIT_FRAME_MAX);
	free(pt);
	if (rec)
		secure_wipe(rec, sizeof(*rec));
	free(rec);
	if (m != MAP_FAILED)
		munmap((void *)m, len);
	close(fd);
	return rc;
}

/* ---- the directory ---- */

static int is_log_name(const char *n)
{
	size_t l = strlen(n);

	return l > 10 && !strncmp(n, "audit-", 6) && !strcmp(n + l - 4, ".log");
}

int audit_list_files(int dirfd, char ***names, struct audit_header **hdrs, size_t *n)
{
	DIR *d;
	struct dirent *e;
	char **nm = NULL;
	struct audit_header *h = NULL;
	size_t cnt = 0, nmcap = 0, hcap = 0;
	int fd2, rc = 0;

	*names = NULL;
	*hdrs = NULL;
	*n = 0;
	fd2 = dup(dirfd);
	if (fd2 < 0)
		return -errno;
	d = fdopendir(fd2);
	if (!d) {
		close(fd2);
		return -errno;
	}
	rewinddir(d);
	while ((e = readdir(d))) {
		uint8_t buf[AUDIT_HDR_LEN];
		struct audit_header hh;
		ssize_t got;
		int fd;

		if (!is_log_name(e->d_name))
			continue;
		fd = safe_open(dirfd, e->d_name, O_RDONLY, 0, e->d_name, NULL, 0);
		if (fd < 0)
			continue;
		got = pread(fd, buf, sizeof(buf), 0);
		close(fd);
		memset(&hh, 0, sizeof(hh));
		/* a damaged header sorts by its name's number: verify reports it */
		if (got != (ssize_t)sizeof(buf) || audit_header_decode(NULL, buf, sizeof(buf), &hh) < 0) {
			const char *u = strrchr(e->d_name, '-');

			hh.first_seq = UINT64_MAX;
			hh.file_no = u ? strtoull(u + 1, NULL, 10) : 0;
		}
		/* two arrays, one count: each keeps its own capacity */
		if ((rc = array_reserve(&nm, &nmcap, cnt + 1, sizeof(*nm))) < 0 ||
		    (rc = array_reserve(&h, &hcap, cnt + 1, sizeof(*h))) < 0)
			break;
		if (!(nm[cnt] = strdup(e->d_name))) {
			rc = -ENOMEM;
			break;
		}
		h[cnt++] = hh;
	}
	closedir(d);
	if (rc < 0) {
		audit_free_list(nm, h, cnt);
		return rc;
	}
	/* insertion sort by (file_no): file numbers only grow, and unlike
	 * first_seq they stay ordered when a header is damaged */
	for (size_t i = 1; i < cnt; i++)
		for (size_t j = i; j > 0 && h[j - 1].file_no > h[j].file_no; j--) {
			struct audit_header th = h[j];
			char *tn = nm[j];

			h[j] = h[j - 1];
			nm[j] = nm[j - 1];
			h[j - 1] = th;
			nm[j - 1] = tn;
		}
	*names = nm;
	*hdrs = h;
	*n = cnt;
	return 0;
}

void audit_free_list(char **names, struct audit_header *hdrs, size_t n)
{
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	free(hdrs);
}

static int read_cp_named(int dirfd, const char *name, uint8_t *buf, size_t cap, size_t *got)
{
	int fd = safe_open(dirfd, name, O_RDONLY, 0, name, NULL, 0);
	ssize_t n;

	if (fd < 0)
		return fd;
	n = pread(fd, buf, cap, 0);
	close(fd);
	if (n < 0)
		return -errno;
	*got = (size_t)n;
	return 0;
}

static int read_cp(int dirfd, uint8_t *buf, size_t cap, size_t *got)
{
	return read_cp_named(dirfd, AUDIT_CP_NAME, buf, cap, got);
}

int audit_cp_read(int dirfd, const char *name, const struct aead *k, struct audit_checkpoint *c)
{
	uint8_t buf[AUDIT_CP_MAX + 1];
	size_t got = 0;
	int rc = read_cp_named(dirfd, name, buf, sizeof(buf), &got);

	if (rc < 0)
		return rc;
	return audit_cp_decode(k, buf, got, c) < 0 ? -EBADMSG : 0;
}

int audit_dir_uuid(const char *dir, uint8_t uuid[AUDIT_UUID_LEN], char *why, size_t whylen)
{
	uint8_t buf[AUDIT_CP_MAX + 1];
	struct audit_checkpoint cp;
	char **names = NULL;
	struct audit_header *h = NULL;
	size_t n = 0, got = 0;
	int dfd, rc = -ENOENT;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		snprintf(why, whylen, "audit directory %s: %s", dir, strerror(errno));
		return rc;
	}
	if (read_cp(dfd, buf, sizeof(buf), &got) == 0 && audit_cp_decode(NULL, buf, got, &cp) == 0) {
		memcpy(uuid, cp.uuid, AUDIT_UUID_LEN);
		rc = 0;
	} else if (audit_list_files(dfd, &names, &h, &n) == 0) {
		for (size_t i = 0; i < n && rc < 0; i++)
			if (h[i].first_seq != UINT64_MAX) {
				memcpy(uuid, h[i].uuid, AUDIT_UUID_LEN);
				rc = 0;
			}
		audit_free_list(names, h, n);
	}
	close(dfd);
	if (rc < 0)
		snprintf(why, whylen, "%s holds no medvault audit log", dir);
	return rc;
}

static int expect_cmp(const void *a, const void *b)
{
	const struct audit_expect *x = a, *y = b;

	return x->count < y->count ? -1 : x->count > y->count;
}

static void hex(char *out, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/*
 * The token's part of verification: which checkpoint the token sealed.
 * The newest checkpoint when it carries the token's MAC; else the one
 * kept aside by a mount without the token.  Without either, a token that
 * holds the trail's key means the checkpoint was written without it:
 * reported, since that is what a passphrase holder's forgery looks like.
 * *tcp gets the token-sealed checkpoint when there is one (returns 1).
 */
static int token_part(int dfd, const struct aead *k, const struct audit_checkpoint *cp,
		      const struct audit_verify_opts *o, struct audit_checkpoint *tcp,
		      struct audit_problem *p)
{
	int rc;

	if (cp->version == 2) {
		rc = audit_cp_token_check(cp, o->token_mac, o->token_arg);
		if (rc == -EBADMSG)
			problem(p, 0, AUDIT_CP_NAME, 0, "the checkpoint's token seal does not verify: "
				"forged (by someone holding only the passphrase) or sealed by another token");
		else if (rc < 0)
			problem(p, 0, AUDIT_CP_NAME, 0, "the token cannot check the checkpoint (%s)",
				strerror(-rc));
		*tcp = *cp;
		return rc == 0;
	}
	rc = audit_cp_read(dfd, AUDIT_CP_TOKEN_NAME, k, tcp);
	if (rc == -ENOENT) {
		problem(p, 0, AUDIT_CP_NAME, 0, "the checkpoint is sealed by the master key only, and "
			"no checkpoint sealed by the token is kept, although the token holds this "
			"trail's key: rewritten by someone holding only the passphrase?");
		return 0;
	}
	if (rc == 0 && memcmp(tcp->uuid, cp->uuid, AUDIT_UUID_LEN))
		rc = -EBADMSG;
	if (rc == 0)
		rc = audit_cp_token_check(tcp, o->token_mac, o->token_arg);
	if (rc < 0) {
		problem(p, 0, AUDIT_CP_TOKEN_NAME, 0, "the kept token-sealed checkpoint does not verify (%s)",
			rc == -EBADMSG ? "altered or forged" : strerror(-rc));
		return 0;
	}
	if (tcp->next_seq > cp->next_seq)
		problem(p, cp->next_seq, AUDIT_CP_TOKEN_NAME, 0,
			"the token-sealed checkpoint counts %" PRIu64 " records but the checkpoint only %"
			PRIu64 ": records were cut off and the checkpoint rewritten",
			tcp->next_seq, cp->next_seq);
	return 1;
}

int audit_verify_dir_ex(const char *dir, const uint8_t key[AUDIT_KEY_LEN],
			const struct audit_verify_opts *o,
			int (*fn)(void *, const struct audit_record *), void *arg,
			struct audit_problem *p, struct audit_verify_info *info, char *why, size_t whylen)
{
	static const struct audit_verify_opts none;
	uint8_t buf[AUDIT_CP_MAX + 1];
	struct audit_checkpoint cp, tcp;
	struct audit_verify_info dummy;
	struct audit_walk w;
	struct audit_expect *exp = NULL;
	struct aead *k = NULL;
	char **names = NULL;
	struct audit_header *h = NULL;
	size_t n = 0, got = 0, nexp = 0, tok_at = SIZE_MAX;
	int dfd, rc, have_cp, have_tcp = 0;

	if (!o)
		o = &none;
	if (!info)
		info = &dummy;
	memset(info, 0, sizeof(*info));
	memset(p, 0, sizeof(*p));
	memset(&w, 0, sizeof(w));
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		snprintf(why, whylen, "audit directory %s: %s", dir, strerror(errno));
		return rc;
	}
	if ((rc = aead_new(&k, AEAD_XCHACHA20POLY1305, key)) < 0) {
		snprintf(why, whylen, "cannot set up the audit key: %s", strerror(-rc));
		goto out;
	}
	if ((rc = audit_list_files(dfd, &names, &h, &n)) < 0) {
		snprintf(why, whylen, "cannot list %s: %s", dir, strerror(-rc));
		goto out;
	}
	rc = read_cp(dfd, buf, sizeof(buf), &got);
	have_cp = rc == 0;
	if (rc < 0 && rc != -ENOENT) {
		snprintf(why, whylen, "cannot read %s/%s: %s", dir, AUDIT_CP_NAME, strerror(-rc));
		goto out;
	}
	rc = 0;
	if (!have_cp && n == 0) {
		rc = -ENOENT;
		snprintf(why, whylen, "%s holds no medvault audit log", dir);
		goto out;
	}
	if (!have_cp) {
		problem(p, 0, AUDIT_CP_NAME, 0, "the checkpoint file is missing (removed?)");
		goto out;
	}
	if (audit_cp_decode(k, buf, got, &cp) < 0) {
		problem(p, 0, AUDIT_CP_NAME, 0,
			"the checkpoint is altered or sealed by another key (authentication failed)");
		goto out;
	}
	info->cp_count = cp.next_seq;
	memcpy(info->cp_head, cp.head, AUDIT_HASH_LEN);
	info->cp_version = (int)cp.version;
	if (o->token_mac) {
		have_tcp = token_part(dfd, k, &cp, o, &tcp, p);
		if (p->found)
			goto out;
	}
	/* the pairs the chain must go through: exported ones and the
	 * token's, sorted by count for one pass */
	exp = calloc(o->nexp + 1, sizeof(*exp));
	if (!exp) {
		rc = -ENOMEM;
		snprintf(why, whylen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < o->nexp; i++)
		if (o->exp[i].count > 0)
			exp[nexp++] = o->exp[i];
	if (have_tcp && tcp.next_seq > 0) {
		exp[nexp].count = tcp.next_seq;
		memcpy(exp[nexp].head, tcp.head, AUDIT_HASH_LEN);
		exp[nexp].state = 2;	/* marks the token's until sorted */
		nexp++;
	}
	qsort(exp, nexp, sizeof(*exp), expect_cmp);
	for (size_t i = 0; i < nexp; i++)
		if (exp[i].state == 2) {
			tok_at = i;
			exp[i].state = 0;
		}
	w.exp = exp;
	w.nexp = nexp;
	if (n == 0 && cp.next_seq > cp.base_seq) {
		problem(p, cp.base_seq, "", 0, "every log file is missing (%" PRIu64 " records)",
			cp.next_seq - cp.base_seq);
		goto out;
	}
	for (size_t i = 0; i < n && !p->found; i++) {
		int fresh = i == 0;

		if (fresh && h[i].first_seq != UINT64_MAX && h[i].first_seq > cp.base_seq) {
			problem(p, cp.base_seq, names[i], 0,
				"records %" PRIu64 "..%" PRIu64 " missing: the oldest log file was removed",
				cp.base_seq, h[i].first_seq - 1);
			break;
		}
		if (fresh)
			info->first_seq = h[i].first_seq;
		rc = audit_walk_file(dfd, names[i], k, cp.uuid, fresh, 0, &cp, &w, fn, arg, p);
		if (rc < 0) {
			snprintf(why, whylen, "cannot read %s/%s: %s", dir, names[i], strerror(-rc));
			goto out;
		}
	}
	if (!p->found && w.next_seq < cp.next_seq)
		problem(p, w.next_seq, w.file, w.good_len,
			"log ends at record %" PRIu64 " but the sealed checkpoint counts %" PRIu64
			": records %" PRIu64 "..%" PRIu64 " were cut off (truncated)",
			w.next_seq ? w.next_seq - 1 : 0, cp.next_seq, w.next_seq, cp.next_seq - 1);
	if (!p->found && cp.next_seq > 0 && w.cp_met != 1)
		problem(p, cp.next_seq - 1, w.file, 0,
			"the chain does not reach the sealed checkpoint's head at record %" PRIu64,
			cp.next_seq - 1);
	if (!p->found && tok_at != SIZE_MAX) {
		if (exp[tok_at].state != 1)
			problem(p, tcp.next_seq - 1, "", 0,
				"the chain does not go through the token-sealed checkpoint's head at record %"
				PRIu64 " (records before it were rewritten)", tcp.next_seq - 1);
		else
			info->token_checked = 1, info->token_count = tcp.next_seq;
	}
	for (size_t i = 0; i < nexp && !p->found; i++) {
		char hx[2 * AUDIT_HASH_LEN + 1];

		if (i == tok_at)
			continue;
		hex(hx, exp[i].head, AUDIT_HASH_LEN);
		if (exp[i].state == 1)
			info->exp_met++;
		else if (exp[i].state == -1)
			problem(p, exp[i].count - 1, "", 0,
				"the chain's head after record %" PRIu64 " differs from the exported one (%.16s...): "
				"the trail was rewritten", exp[i].count - 1, hx);
		else if (exp[i].count > w.next_seq)
			problem(p, w.next_seq, w.file, w.good_len,
				"the trail ends at record %" PRIu64 " but an exported checkpoint counts %" PRIu64
				" records (head %.16s...): records %" PRIu64 "..%" PRIu64 " are missing "
				"(an older log and checkpoint put back?)",
				w.next_seq ? w.next_seq - 1 : 0, exp[i].count, hx, w.next_seq, exp[i].count - 1);
		else
			info->exp_pruned++;
	}
out:
	info->records = w.records;
	free(exp);
	audit_free_list(names, h, n);
	aead_free(k);
	close(dfd);
	return rc;
}

int audit_verify_dir(const char *dir, const uint8_t key[AUDIT_KEY_LEN],
		     int (*fn)(void *, const struct audit_record *), void *arg,
		     struct audit_problem *p, uint64_t *nrecords, char *why, size_t whylen)
{
	struct audit_verify_info info;
	int rc = audit_verify_dir_ex(dir, key, NULL, fn, arg, p, &info, why, whylen);

	*nrecords = info.records;
	return rc;
}

/* "... audit checkpoint: volume=<32 hex> records=<N> head=<64 hex> ..." */
int audit_export_parse(const char *line, const uint8_t uuid[AUDIT_UUID_LEN], struct audit_expect *e)
{
	const char *at = strstr(line, "audit checkpoint: volume=");
	char want[2 * AUDIT_UUID_LEN + 1], *end;
	unsigned long long cnt;

	if (!at)
		return -EINVAL;
	at += strlen("audit checkpoint: volume=");
	hex(want, uuid, AUDIT_UUID_LEN);
	if (strncmp(at, want, 2 * AUDIT_UUID_LEN) || strncmp(at + 2 * AUDIT_UUID_LEN, " records=", 9))
		return -EINVAL;
	at += 2 * AUDIT_UUID_LEN + 9;
	if (*at < '0' || *at > '9')
		return -EINVAL;
	errno = 0;
	cnt = strtoull(at, &end, 10);
	if (errno || strncmp(end, " head=", 6))
		return -EINVAL;
	at = end + 6;
	for (int i = 0; i < AUDIT_HASH_LEN; i++) {
		unsigned v;

		if (sscanf(at + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdef", at[2 * i]) ||
		    !at[2 * i + 1] || !strchr("0123456789abcdef", at[2 * i + 1]))
			return -EINVAL;
		e->head[i] = (uint8_t)v;
	}
	e->count = cnt;
	e->state = 0;
	return 0;
}
