/*
 * cli_audit: `medvault audit` and `medvault audit verify`.  Parsing,
 * filtering and printing only: fs/audit/audit_read.c walks and verifies.  The
 * volume UUID comes from the log itself (checkpoint or file header), which
 * names the keystore file KS/<uuid>.keys; no store is needed.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "crypto/aead.h"
#include "audit/audit.h"
#include "crypto/keystore.h"
#include "crypto/secure.h"
#include "crypto/volkeys.h"
#include "cli.h"
#include "key_opts.h"

#define OPS_MAX 32

static const char *const usage_audit =
	"usage: medvault audit DIR --keystore KS KEY-OPTIONS [FILTERS] [--json]\n"
	"       medvault audit verify DIR --keystore KS KEY-OPTIONS [--expect-log FILE]\n"
	"                             [--expect-count N --expect-head HEX]\n"
	"\n"
	"Print the access trail kept in DIR (the mount's --audit-dir; by default\n"
	"KS/audit/<volume>), oldest first, or verify its hash chain and sealed\n"
	"checkpoint and name the first altered, missing, reordered or truncated record.\n"
	"Either way every record is authenticated; listing stops at the first bad one.\n"
	"\n"
	"FILTERS (all must match):\n"
	"  --path P      records about P or anything below it (rename: either name)\n"
	"  --uid U       by user U (number or name)\n"
	"  --since T     at or after T; --until T  before T (a bare date: through that day)\n"
	"                T: 2024-05-01, 2024-05-01T13:00:00[.123456][Z] (UTC), or @UNIXSECONDS\n"
	"  --op OP,...   open (any open), open-r, open-w, open-rw, create, unlink, rmdir,\n"
	"                rename, truncate, chmod, chown, setxattr, removexattr, mount,\n"
	"                unmount, lost, recover, prune, fallocate, accept-rollback, or denied\n"
	"                (any EACCES/EPERM result)\n"
	"  --json        one JSON array of objects instead of text lines\n"
	"\n"
	"verify also checks, when KEY-OPTIONS name the token, the checkpoint's seal by\n"
	"the token, and the chain against checkpoints exported off the host:\n"
	"  --expect-log FILE   every 'audit checkpoint: volume=... records=N head=H' line\n"
	"                      of this volume in FILE (syslog as shipped, or --audit-export)\n"
	"  --expect-count N --expect-head HEX   one such pair\n"
	"\n"
	"Exit status: 0 intact, 1 the log cannot be read (or the key is wrong), 2 usage\n"
	"error, 3 the log fails verification.\n"
	"KEY-OPTIONS:\n" KEY_OPTS_HELP("");

struct filter {
	const char *path;
	size_t path_len;
	int have_uid;
	uint32_t uid;
	int64_t since, until;	/* µs; INT64_MIN / INT64_MAX when open */
	int nops;
	int ops[OPS_MAX];	/* op numbers; 0 = denied, -1 = any open */
	int json;
	uint64_t shown;
};

static int is_help(const char *a)
{
	return !strcmp(a, "--help") || !strcmp(a, "-h");
}

/* "2024-05-01", "2024-05-01T13:00[:00[.123456]][Z]", "@1714567890"; UTC.
 * *date_only tells a bare date. */
static int parse_time(const char *s, int64_t *us, int *date_only)
{
	struct tm tm;
	const char *p;
	char *end;
	long frac = 0;
	int n = 0;

	*date_only = 0;
	if (s[0] == '@') {
		long long v;

		errno = 0;
		v = strtoll(s + 1, &end, 10);
		if (errno || end == s + 1 || *end)
			return -EINVAL;
		*us = (int64_t)v * 1000000;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	p = strptime(s, "%Y-%m-%d", &tm);
	if (!p)
		return -EINVAL;
	if (*p == '\0') {
		*date_only = 1;
	} else {
		if (*p != 'T' && *p != ' ')
			return -EINVAL;
		p = strptime(p + 1, "%H:%M", &tm);
		if (!p)
			return -EINVAL;
		if (*p == ':') {
			p = strptime(p + 1, "%S", &tm);
			if (!p)
				return -EINVAL;
			if (*p == '.') {
				p++;
				for (n = 0; isdigit((unsigned char)*p); p++, n++)
					if (n < 6)
						frac = frac * 10 + (*p - '0');
				for (; n < 6; n++)
					frac *= 10;
			}
		}
		if (*p == 'Z')
			p++;
		if (*p)
			return -EINVAL;
	}
	*us = (int64_t)timegm(&tm) * 1000000 + frac;
	return 0;
}

static int add_ops(struct filter *f, char *list, char *why, size_t whylen)
{
	for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int op;

		if (f->nops >= OPS_MAX) {
			snprintf(why, whylen, "--op: too many operations");
			return -EINVAL;
		}
		if (!strcmp(t, "denied"))
			op = 0;
		else if (!strcmp(t, "open"))
			op = -1;
		else if (audit_op_parse(t, &op) < 0) {
			snprintf(why, whylen, "--op: unknown operation '%s' (see medvault audit --help)", t);
			return -EINVAL;
		}
		f->ops[f->nops++] = op;
	}
	return 0;
}

static int path_match(const char *want, size_t wl, const char *have)
{
	if (!have[0])
		return 0;
	if (wl == 1 && want[0] == '/')
		return 1;
	return !strncmp(have, want, wl) && (have[wl] == '\0' || have[wl] == '/');
}

static int matches(const struct filter *f, const struct audit_record *r)
{
	if (f->path && !path_match(f->path, f->path_len, r->path) &&
	    !path_match(f->path, f->path_len, r->path2))
		return 0;
	if (f->have_uid && r->uid != f->uid)
		return 0;
	if (r->time_us < f->since || r->time_us >= f->until)
		return 0;
	if (f->nops) {
		int any = 0;

		for (int i = 0; i < f->nops && !any; i++) {
			if (f->ops[i] == 0)
				any = r->result == EACCES || r->result == EPERM;
			else if (f->ops[i] == -1)
				any = r->op == AUDIT_OP_OPEN_R || r->op == AUDIT_OP_OPEN_W ||
				      r->op == AUDIT_OP_OPEN_RW;
			else
				any = r->op == f->ops[i];
		}
		if (!any)
			return 0;
	}
	return 1;
}

static void fmt_time(char *out, size_t len, int64_t us)
{
	time_t t = (time_t)(us / 1000000);
	long frac = (long)(us % 1000000);
	struct tm tm;
	char base[32];

	if (frac < 0) {
		frac += 1000000;
		t--;
	}
	gmtime_r(&t, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%s.%06ldZ", base, frac);
}

/* One ASCII byte inside quotes: \" and \\ escaped, a control byte as
 * \xNN (text) or \u00NN (JSON). */
static void put_escaped(unsigned char c, int json)
{
	if (c == '"' || c == '\\')
		printf("\\%c", c);
	else if (c < 0x20 || c == 0x7f)
		printf(json ? "\\u%04x" : "\\x%02x", c);
	else
		putchar(c);
}

/* text: "..." with \" \\ and \xNN for control bytes */
static void put_quoted(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		put_escaped(*p, 0);
	putchar('"');
}

/* length of a valid UTF-8 sequence at p, or 0 */
static int utf8_len(const unsigned char *p)
{
	int n, i;
	uint32_t c;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0) {
		n = 2;
		c = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3;
		c = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		n = 4;
		c = p[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return n;
}

/* JSON string; bytes that are not UTF-8 become U+00XX (names are bytes) */
static void put_json(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; ) {
		int n = utf8_len(p);

		if (n == 0) {
			printf("\\u%04x", *p);
			p++;
		} else if (n > 1) {
			fwrite(p, 1, (size_t)n, stdout);
			p += n;
		} else {
			put_escaped(*p, 1);
			p++;
		}
	}
	putchar('"');
}

/* " key=\"value\"" in text, ", \"json_key\": \"value\"" in JSON */
static void put_field(const struct filter *f, const char *key, const char *json_key, const char *v)
{
	if (f->json) {
		printf(", \"%s\": ", json_key);
		put_json(v);
	} else {
		printf(" %s=", key);
		put_quoted(v);
	}
}

static int show(void *arg, const struct audit_record *r)
{
	struct filter *f = arg;
	const char *op = audit_op_name(r->op);
	char when[48];

	if (!matches(f, r))
		return 0;
	fmt_time(when, sizeof(when), r->time_us);
	if (f->json)
		printf("%s\n  {\"seq\": %" PRIu64 ", \"time\": \"%s\", \"time_us\": %" PRId64
		       ", \"op\": \"%s\", \"result\": \"%s\", \"errno\": %d, \"uid\": %" PRIu32
		       ", \"gid\": %" PRIu32 ", \"pid\": %" PRIu32,
		       f->shown ? "," : "", r->seq, when, r->time_us, op ? op : "?",
		       audit_errno_name(r->result), r->result, r->uid, r->gid, r->pid);
	else
		printf("%s seq=%" PRIu64 " op=%s result=%s uid=%" PRIu32 " gid=%" PRIu32 " pid=%" PRIu32,
		       when, r->seq, op ? op : "?", audit_errno_name(r->result), r->uid, r->gid, r->pid);
	put_field(f, "comm", "comm", r->comm);
	printf(f->json ? ", \"ino\": %" PRIu64 : " ino=%" PRIu64, r->ino);
	put_field(f, "path", "path", r->path);
	if (r->path2[0])
		put_field(f, "to", "path2", r->path2);
	if (r->detail[0])
		put_field(f, "detail", "detail", r->detail);
	putchar(f->json ? '}' : '\n');
	f->shown++;
	return 0;
}

static int has_log(const char *dir)
{
	char p[PATH_MAX + 32];
	struct stat st;
	DIR *d;
	struct dirent *e;
	int found = 0;

	snprintf(p, sizeof(p), "%s/%s", dir, AUDIT_CP_NAME);
	if (stat(p, &st) == 0)
		return 1;
	d = opendir(dir);
	while (d && (e = readdir(d)) && !found)
		found = !strncmp(e->d_name, "audit-", 6);
	if (d)
		closedir(d);
	return found;
}

/* DIR itself, or its only volume subdirectory (KS/audit/<uuid>); a
 * keystore directory stands for its audit/ */
static int resolve_dir(const char *dir, char *out, size_t len, char *why, size_t whylen)
{
	char sub_audit[PATH_MAX];
	struct stat st;
	DIR *d;
	struct dirent *e;
	int n = 0;

	if (has_log(dir)) {
		snprintf(out, len, "%s", dir);
		return 0;
	}
	snprintf(sub_audit, sizeof(sub_audit), "%s/audit", dir);
	if (stat(sub_audit, &st) == 0 && S_ISDIR(st.st_mode) && strlen(sub_audit) < PATH_MAX - 64)
		dir = sub_audit;
	d = opendir(dir);
	if (!d) {
		snprintf(why, whylen, "audit directory %s: %s", dir, strerror(errno));
		return -errno;
	}
	while ((e = readdir(d))) {
		char sub[PATH_MAX];

		if (strlen(e->d_name) != 32 || strspn(e->d_name, "0123456789abcdef") != 32)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		if (!has_log(sub))
			continue;
		if (n++ == 0)
			snprintf(out, len, "%s", sub);
	}
	closedir(d);
	if (n == 1)
		return 0;
	if (n > 1)
		snprintf(why, whylen, "%s holds the audit logs of %d volumes: name one (%s/<volume id>)",
			 dir, n, dir);
	else
		snprintf(why, whylen, "%s holds no medvault audit log", dir);
	return n > 1 ? -EINVAL : -ENOENT;
}

/* A parsed `audit` command line.  The strings point into argv. */
struct audit_args {
	int verify;
	const char *expect_log, *expect_head, *expect_count;
	int help;		/* usage printed: nothing to run */
	const char *dir_arg, *ksdir;
	struct key_opts ko;
	struct filter f;
	char **av;		/* our permuted copy of argv; freed by the caller */
};

/* 0 (a->help when usage was printed), or -EINVAL usage error, -ENOMEM;
 * why set.  Touches no file. */
static int audit_args_parse(struct audit_args *a, int argc, char **argv, char *why, size_t whylen)
{
	struct filter *f = &a->f;
	int ac, i, rc;

	f->since = INT64_MIN;
	f->until = INT64_MAX;
	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--"))
			break;
		else if (is_help(argv[i])) {
			fputs(usage_audit, stdout);
			a->help = 1;
			return 0;
		}
	a->av = calloc((size_t)argc + 1, sizeof(*a->av));
	if (!a->av) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	ac = 0;
	a->av[ac++] = argv[0];
	i = 1;
	if (argc > 1 && !strcmp(argv[1], "verify")) {
		a->verify = 1;
		i = 2;
	}
	for (; i < argc; i++)
		a->av[ac++] = argv[i];
	a->av[ac] = NULL;
	if ((rc = key_opts_parse(&ac, a->av, "", &a->ko, why, whylen)) < 0)
		goto out;
	rc = -EINVAL;
	for (i = 1; i < ac; i++) {
		const char *arg = a->av[i], *val = NULL;
		char name[32];
		const char *eq = strchr(arg, '=');

		if (arg[0] != '-' || !arg[1]) {
			if (a->dir_arg) {
				snprintf(why, whylen, "audit: unexpected argument '%s' (see medvault audit --help)", arg);
				goto out;
			}
			a->dir_arg = arg;
			continue;
		}
		if (!strcmp(arg, "--json")) {
			f->json = 1;
			continue;
		}
		snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - arg) : (int)strlen(arg), arg);
		if (strcmp(name, "--keystore") && strcmp(name, "--path") && strcmp(name, "--uid") &&
		    strcmp(name, "--since") && strcmp(name, "--until") && strcmp(name, "--op") &&
		    strcmp(name, "--expect-log") && strcmp(name, "--expect-head") &&
		    strcmp(name, "--expect-count")) {
			snprintf(why, whylen, "audit: unknown option %s (see medvault audit --help)", arg);
			goto out;
		}
		if (eq)
			val = eq + 1;
		else if (i + 1 < ac)
			val = a->av[++i];
		else {
			snprintf(why, whylen, "%s needs a value", name);
			goto out;
		}
		if (!strncmp(name, "--expect-", 9) && !a->verify) {
			snprintf(why, whylen, "%s: only for audit verify", name);
			goto out;
		}
		if (a->verify && strcmp(name, "--keystore") && strncmp(name, "--expect-", 9)) {
			snprintf(why, whylen, "audit verify takes no filters (%s)", name);
			goto out;
		}
		if (!strcmp(name, "--expect-log")) {
			a->expect_log = val;
		} else if (!strcmp(name, "--expect-head")) {
			a->expect_head = val;
		} else if (!strcmp(name, "--expect-count")) {
			a->expect_count = val;
		} else if (!strcmp(name, "--keystore")) {
			a->ksdir = val;
		} else if (!strcmp(name, "--path")) {
			f->path = val;
			f->path_len = strlen(val);
			while (f->path_len > 1 && f->path[f->path_len - 1] == '/')
				f->path_len--;
		} else if (!strcmp(name, "--uid")) {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(val, &end, 10);
			if (!errno && end != val && !*end && v <= UINT32_MAX) {
				f->uid = (uint32_t)v;
			} else {
				struct passwd *pw = getpwnam(val);

				if (!pw) {
					snprintf(why, whylen, "--uid: no such user '%s'", val);
					goto out;
				}
				f->uid = pw->pw_uid;
			}
			f->have_uid = 1;
		} else if (!strcmp(name, "--since") || !strcmp(name, "--until")) {
			int64_t t;
			int date_only;

			if (parse_time(val, &t, &date_only) < 0) {
				snprintf(why, whylen, "%s: not a time: '%s' (2024-05-01, 2024-05-01T13:00:00Z, @SECONDS)",
					 name, val);
				goto out;
			}
			if (name[2] == 's')
				f->since = t;
			else
				f->until = date_only ? t + 86400LL * 1000000 : t;
		} else {
			char list[256];

			snprintf(list, sizeof(list), "%s", val);
			if (add_ops(f, list, why, whylen) < 0)
				goto out;
		}
	}
	if (!a->dir_arg || !a->ksdir) {
		snprintf(why, whylen, "usage: medvault audit%s DIR --keystore KS KEY-OPTIONS%s",
			 a->verify ? " verify" : "", a->verify ? "" : " [FILTERS]");
		goto out;
	}
	if (!a->expect_head != !a->expect_count) {
		snprintf(why, whylen, "--expect-head and --expect-count go together");
		goto out;
	}
	rc = key_opts_check(&a->ko, "", why, whylen);
out:
	return rc;
}

/* --expect-count/--expect-head and the lines of --expect-log: *exp
 * malloc'd.  -EINVAL (a malformed pair, or a file with no line of this
 * volume), -errno of the file; why set. */
static int expect_load(const struct audit_args *a, const uint8_t uuid[AUDIT_UUID_LEN],
		       struct audit_expect **exp, size_t *n, char *why, size_t whylen)
{
	size_t cap = 0;
	int rc = 0;

	*exp = NULL;
	*n = 0;
	if (a->expect_count) {
		char line[256], *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(a->expect_count, &end, 10);
		if (errno || end == a->expect_count || *end || a->expect_count[0] == '-' ||
		    strlen(a->expect_head) != 2 * AUDIT_HASH_LEN) {
			snprintf(why, whylen, "--expect-count N --expect-head HEX: a record count and 64 hex digits");
			return -EINVAL;
		}
		snprintf(line, sizeof(line), "audit checkpoint: volume=");
		for (int i = 0; i < AUDIT_UUID_LEN; i++)
			sprintf(line + strlen(line), "%02x", uuid[i]);
		snprintf(line + strlen(line), sizeof(line) - strlen(line), " records=%llu head=%s", v,
			 a->expect_head);
		for (char *c = line; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		if (!(*exp = calloc(1, sizeof(**exp))) || audit_export_parse(line, uuid, *exp) < 0) {
			snprintf(why, whylen, "--expect-head: not 64 hex digits: %s", a->expect_head);
			rc = -EINVAL;
			goto out;
		}
		*n = cap = 1;
	}
	if (a->expect_log) {
		FILE *f = fopen(a->expect_log, "re");
		char *line = NULL;
		size_t lcap = 0, before = *n;
		struct audit_expect e;

		if (!f) {
			rc = -errno;
			snprintf(why, whylen, "--expect-log %s: %s", a->expect_log, strerror(errno));
			goto out;
		}
		while (getline(&line, &lcap, f) > 0) {
			if (audit_export_parse(line, uuid, &e) < 0)
				continue;
			if (*n == cap) {
				struct audit_expect *t = realloc(*exp, (cap = cap ? 2 * cap : 64) * sizeof(*t));

				if (!t) {
					rc = -ENOMEM;
					snprintf(why, whylen, "out of memory");
					break;
				}
				*exp = t;
			}
			(*exp)[(*n)++] = e;
		}
		free(line);
		fclose(f);
		if (rc == 0 && *n == before) {
			rc = -EINVAL;
			snprintf(why, whylen, "--expect-log %s holds no checkpoint line of this volume", a->expect_log);
		}
	}
out:
	if (rc < 0) {
		free(*exp);
		*exp = NULL;
		*n = 0;
	}
	return rc;
}

static int token_mac(void *arg, const uint8_t *msg, size_t len, uint8_t out[AUDIT_TMAC_LEN])
{
	char why[256];

	return keystore_mac(arg, msg, len, out, why, sizeof(why));
}

/* What `audit verify` checked, and what it could not. */
static void print_guarantees(const char *dir, const struct audit_verify_info *in,
			     const struct keystore_mac *tok, int trc, int token_slot, size_t nexp)
{
	printf("audit log %s: %" PRIu64 " records verified (records %" PRIu64 "..%" PRIu64
	       "); the chain is intact and matches its checkpoint, sealed by the master key\n",
	       dir, in->records, in->first_seq, in->cp_count ? in->cp_count - 1 : 0);
	if (tok && in->token_checked && in->token_count == in->cp_count)
		printf("token: the checkpoint is sealed by key '%s' on token '%s' and verified: "
		       "holding a passphrase is not enough to have forged it\n",
		       keystore_mac_label(tok), keystore_mac_token(tok));
	else if (tok && in->token_checked)
		printf("token: records up to %" PRIu64 " are covered by a checkpoint sealed by token '%s' "
		       "and verified; records %" PRIu64 "..%" PRIu64 " only by the master key (written by a "
		       "mount without the token)\n", in->token_count - 1, keystore_mac_token(tok),
		       in->token_count, in->cp_count - 1);
	else if (!token_slot && trc == -ENOTSUP)
		printf("token: none: the keystore has no PKCS#11 slot, so the trail is sealed by the "
		       "master key alone and anyone holding a passphrase could rewrite it\n");
	else if (tok || trc == -ENOKEY)
		printf("token: NOT checked: the token holds no trail key for this volume yet (no mount "
		       "with the token since); a passphrase holder could have rewritten the trail\n");
	else
		printf("token: NOT checked (%s): unlocked with a passphrase; a passphrase holder could "
		       "have rewritten the trail; verify with the token to check\n",
		       in->cp_version == 2 ? "the checkpoint carries a token seal" :
		       "the checkpoint carries no token seal");
	if (nexp && in->exp_pruned)
		printf("exported: the chain goes through %zu of %zu exported checkpoints and reaches "
		       "the newest (%zu older than the oldest record kept: not checkable)\n",
		       in->exp_met, nexp, in->exp_pruned);
	else if (nexp)
		printf("exported: the chain goes through all %zu exported checkpoints and reaches "
		       "the newest\n", nexp);
	else
		printf("exported: NOT checked: an older log and checkpoint put back whole would pass; "
		       "give --expect-log with the checkpoint lines shipped off the host\n");
}

/*
 * Returns 0, or -errno (why set): -ENOENT no log, -EBADMSG the log fails
 * verification (*damaged set, why names the first bad record), and the
 * errors of keystore_unlock.
 */
static int audit_run(struct audit_args *a, int *damaged, char *why, size_t whylen)
{
	struct audit_problem p;
	struct audit_verify_opts vo = { 0 };
	struct audit_verify_info info;
	struct keystore_mac *tok = NULL;
	struct volkeys *vk = NULL;
	uint8_t uuid[AUDIT_UUID_LEN], *mk = NULL;
	char dir[PATH_MAX], twhy[256] = "";
	int rc, trc = -ENOTSUP;

	*damaged = 0;
	secure_harden_process();
	if ((rc = resolve_dir(a->dir_arg, dir, sizeof(dir), why, whylen)) < 0)
		goto out;
	if ((rc = audit_dir_uuid(dir, uuid, why, whylen)) < 0)
		goto out;
	if ((rc = expect_load(a, uuid, &vo.exp, &vo.nexp, why, whylen)) < 0)
		goto out;
	if ((rc = keystore_unlock(a->ksdir, uuid, &a->ko, &mk, why, whylen)) < 0)
		goto out;
	/* the token's key is looked for, never made, by a reader */
	trc = keystore_mac_open(a->ksdir, uuid, &a->ko, 0, &tok, twhy, sizeof(twhy));
	if (trc < 0 && trc != -ENOTSUP && trc != -ENOKEY) {
		rc = trc;
		snprintf(why, whylen, "%s", twhy);
		goto out;
	}
	if (tok) {
		vo.token_mac = token_mac;
		vo.token_arg = tok;
	}
	if ((rc = volkeys_derive(&vk, mk, AEAD_XCHACHA20POLY1305)) < 0) {
		snprintf(why, whylen, "cannot derive keys: %s", strerror(-rc));
		goto out;
	}
	if (a->f.json && !a->verify)
		fputs("[", stdout);
	rc = audit_verify_dir_ex(dir, volkeys_audit_key(vk), &vo, a->verify ? NULL : show, &a->f, &p,
				 &info, why, whylen);
	if (a->f.json && !a->verify)
		fputs(a->f.shown ? "\n]\n" : "]\n", stdout);
	fflush(stdout);
	if (rc < 0)
		goto out;
	if (p.found) {
		rc = -EBADMSG;
		*damaged = 1;
		snprintf(why, whylen, "audit log %s fails verification at record %" PRIu64 ": %s%s%s",
			 dir, p.seq, p.what, p.file[0] ? " (in " : "", p.file[0] ? p.file : "");
		if (p.file[0])
			snprintf(why + strlen(why), whylen - strlen(why), ", offset %" PRIu64 ")", p.offset);
		goto out;
	}
	if (a->verify) {
		struct keystore_slot_info *slots = NULL;
		size_t ns = 0;
		int token_slot = 1;

		if (trc == -ENOTSUP && keystore_list(a->ksdir, uuid, &slots, &ns, why, whylen) == 0) {
			token_slot = 0;
			for (size_t i = 0; i < ns; i++)
				token_slot |= slots[i].kind == KEYSTORE_SLOT_PKCS11;
		}
		free(slots);
		print_guarantees(dir, &info, tok, trc, token_slot, vo.nexp);
	}
	rc = 0;
out:
	free(vo.exp);
	keystore_mac_close(tok);
	volkeys_free(vk);
	keystore_key_free(mk);
	return rc;
}

int cmd_audit(int argc, char **argv)
{
	struct audit_args a = { 0 };
	char why[PATH_MAX + 1024] = "";	/* dir, and the problem's file and what */
	int rc, damaged;

	if ((rc = audit_args_parse(&a, argc, argv, why, sizeof(why))) < 0)
		rc = rc == -EINVAL ? fail_usage("%s", why) : fail("%s", why);
	else if (a.help)
		rc = CLI_EXIT_OK;
	else if (audit_run(&a, &damaged, why, sizeof(why)) < 0) {
		fail("%s", why);
		rc = damaged ? CLI_EXIT_DAMAGE : CLI_EXIT_FAILURE;
	} else
		rc = CLI_EXIT_OK;
	free(a.av);
	return rc;
}
