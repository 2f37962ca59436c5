/*
 * crash_check: verify a vault after crash_writer's daemon was killed
 * (t_50_crash.sh, stress_crash.sh).  Content model: crash_common.h.
 *
 *   crash_check DIR STATE_IN STATE_OUT ACKED JOURNAL...
 *
 * For every name, the legitimate contents are defined from the versions
 * the round started from (STATE_IN) and the "B"/"E" journal lines:
 *
 *  - exactly one of the versions (absent counts as a version), and never
 *    one older than the newest acknowledged (ACKED) generation of the name;
 *  - only for the one operation a writer had begun but not finished (no
 *    "E" line) and not acknowledged, a partial state:
 *      W (rewrite with O_TRUNC): size <= the new length, each byte equal to
 *        the new version's byte or 0 (not yet written back);
 *      A (append): the previous version exactly, then up to the new length
 *        each byte the new version's or 0;
 *      S (save to temp + rename): the target is the old or the new version
 *        exactly (rename is all-or-nothing); the temp name may exist with a
 *        partial W-like state, but never together with a target that
 *        already shows the new version;
 *      T, U: old or new only (metadata operations are atomic).
 *  - no other names in DIR; no read fails (EIO is a failure).
 *
 * Then it cleans up for the next round: removes temp files and files in a
 * partial state (fsync of DIR afterwards) and writes STATE_OUT, the exact
 * version of every name.  Prints one line per problem and a summary line;
 * exit 0 when everything was legitimate, 1 otherwise, 2 on usage errors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "crash_common.h"

#define MAXNAMES 1024
#define MAXVERS 4096

struct vrec {
	struct cr_ver v;
	char op;		/* 0 for the starting version */
	bool done;
	char tmp[CR_NAMELEN + 24];
};

struct name {
	char name[CR_NAMELEN];
	long long next, acked;
	int nv;
	struct vrec *vs;	/* vs[0]: the starting version */
	bool seen;
	/* result */
	int exact;		/* index into vs, -1 none */
	bool partial, tmp_partial;
	struct cr_ver out;
};

static struct name names[MAXNAMES];
static int nnames, failures, lost_closed, partials, exacts, leftover;

static void problem(const char *fmt, ...)
{
	va_list ap;

	failures++;
	printf("PROBLEM: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static struct name *lookup(const char *nm, bool create)
{
	for (int i = 0; i < nnames; i++)
		if (!strcmp(names[i].name, nm))
			return &names[i];
	if (!create || nnames == MAXNAMES)
		return NULL;
	struct name *n = &names[nnames++];
	memset(n, 0, sizeof(*n));
	snprintf(n->name, sizeof(n->name), "%s", nm);
	n->vs = calloc(MAXVERS, sizeof(struct vrec));
	if (!n->vs) {
		perror("calloc");
		exit(2);
	}
	n->vs[0].v = (struct cr_ver){ .gen = 0, .len = -1 };
	n->vs[0].done = true;
	n->nv = 1;
	n->next = 1;
	n->acked = -1;
	n->exact = -1;
	return n;
}

/* read a whole file; returns its length, -1 absent, -2 read error */
static long long slurp(const char *path, uint8_t **buf)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	size_t cap, len = 0;

	*buf = NULL;
	if (fd < 0) {
		if (errno == ENOENT)
			return -1;
		problem("%s: open: %s", path, strerror(errno));
		return -2;
	}
	if (fstat(fd, &st) < 0) {
		problem("%s: fstat: %s", path, strerror(errno));
		close(fd);
		return -2;
	}
	cap = (size_t)st.st_size + 65536;
	*buf = malloc(cap);
	for (;;) {
		if (len == cap)
			*buf = realloc(*buf, cap *= 2);
		ssize_t n = read(fd, *buf + len, cap - len);
		if (n < 0) {
			problem("%s: read at offset %zu: %s", path, len, strerror(errno));
			close(fd);
			return -2;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if ((long long)len != (long long)st.st_size)
		problem("%s: stat says %lld bytes, read returned %zu", path, (long long)st.st_size, len);
	return (long long)len;
}

static uint8_t *expect_buf;

static bool same(const struct cr_ver *v, const uint8_t *b, long long len)
{
	if (v->len != len)
		return false;
	if (len <= 0)
		return true;
	cr_ver_bytes(v, 0, expect_buf, (size_t)len);
	return !memcmp(expect_buf, b, (size_t)len);
}

/* bytes [from, len) are v's or zero, and [0, from) exactly v's */
static bool partial_of(const struct cr_ver *v, const uint8_t *b, long long len, long long from)
{
	if (len < 0 || len > v->len || len < from)
		return false;
	if (len == 0)
		return true;
	cr_ver_bytes(v, 0, expect_buf, (size_t)len);
	if (memcmp(expect_buf, b, (size_t)from))
		return false;
	for (long long i = from; i < len; i++)
		if (b[i] != expect_buf[i] && b[i] != 0)
			return false;
	return true;
}

/* a diagnostic for content that matches nothing: where it first differs
 * from the newest version of the same length, and whose bytes it holds */
static void explain(struct name *n, const uint8_t *b, long long len)
{
	for (int k = n->nv - 1; k >= 0; k--) {
		const struct cr_ver *v = &n->vs[k].v;
		if (v->len != len || len <= 0)
			continue;
		cr_ver_bytes(v, 0, expect_buf, (size_t)len);
		long long i = 0;
		while (i < len && b[i] == expect_buf[i])
			i++;
		printf("#   vs generation %lld (op %c, same length): first difference at offset %lld (chunk %lld of 64 KiB)",
		       v->gen, n->vs[k].op ? n->vs[k].op : '-', i, i / 65536);
		for (int j = 0; j < n->nv; j++) {
			const struct cr_ver *o = &n->vs[j].v;
			if (o->len > i && j != k) {
				uint8_t x[16];
				size_t m = (size_t)(len - i < 16 ? len - i : 16);
				if ((long long)(i + m) > o->len)
					m = (size_t)(o->len - i);
				cr_ver_bytes(o, (uint64_t)i, x, m);
				if (!memcmp(x, b + i, m))
					printf("; those bytes belong to generation %lld", o->gen);
			}
		}
		bool zero = true;
		for (long long j = i; j < len && j < i + 4096; j++)
			zero &= b[j] == 0;
		if (zero)
			printf("; zeros there");
		printf("\n");
		return;
	}
	printf("#   no version of %s has length %lld\n", n->name, len);
}

static void check_name(const char *dir, struct name *n)
{
	char path[4096 + 2 * CR_NAMELEN];
	uint8_t *b;
	long long len;
	int last = n->nv - 1;
	struct vrec *lv = &n->vs[last];
	bool inflight = last > 0 && !lv->done && lv->v.gen > n->acked;

	snprintf(path, sizeof(path), "%s/%.63s", dir, n->name);
	len = slurp(path, &b);
	if (len == -2) {
		free(b);
		n->out = (struct cr_ver){ .gen = 0, .len = -1 };
		n->partial = true;	/* remove it */
		return;
	}
	for (int k = last; k >= 0; k--) {
		if (n->vs[k].v.gen < n->acked)
			break;
		if (same(&n->vs[k].v, b, len)) {
			n->exact = k;
			break;
		}
	}
	if (n->exact >= 0) {
		exacts++;
		n->out = n->vs[n->exact].v;
		for (int k = n->exact + 1; k <= last; k++)
			if (n->vs[k].done) {
				lost_closed++;
				printf("# note: %s shows generation %lld; generation %lld (op %c) had been closed, not synced\n",
				       n->name, n->vs[n->exact].v.gen, n->vs[k].v.gen, n->vs[k].op);
				break;
			}
	} else if (inflight && lv->op == 'W' && partial_of(&lv->v, b, len, 0)) {
		n->partial = true;
	} else if (inflight && lv->op == 'A' && n->vs[last - 1].v.len >= 0 &&
		   partial_of(&lv->v, b, len, n->vs[last - 1].v.len)) {
		n->partial = true;
	} else {
		long long ag = n->acked;
		problem("%s: content (%lld bytes%s) is no legitimate version (newest acked generation %lld, "
			"last operation %c generation %lld%s)", n->name, len, len == -1 ? ", absent" : "",
			ag, lv->op ? lv->op : '-', lv->v.gen, lv->done ? " finished" : " in flight");
		for (int k = 0; k <= last; k++)
			printf("#   generation %lld op %c len %lld%s%s\n", n->vs[k].v.gen,
			       n->vs[k].op ? n->vs[k].op : '-', n->vs[k].v.len,
			       n->vs[k].done ? "" : " (in flight)", n->vs[k].v.gen == ag ? " (acked)" : "");
		if (len >= 0)
			explain(n, b, len);
		n->partial = true;	/* unknown state: remove it before the next round */
	}
	if (n->partial) {
		partials++;
		n->out = (struct cr_ver){ .gen = 0, .len = -1 };
	}
	free(b);
}

int main(int argc, char **argv)
{
	char line[8192], path[4096 + 2 * CR_NAMELEN];
	const char *dir;
	FILE *f;

	if (argc < 5) {
		fprintf(stderr, "usage: crash_check DIR STATE_IN STATE_OUT ACKED JOURNAL...\n");
		return 2;
	}
	dir = argv[1];
	expect_buf = malloc(64u << 20);
	if ((f = fopen(argv[2], "r"))) {
		while (fgets(line, sizeof(line), f)) {
			char nm[CR_NAMELEN];
			long long g, nx;
			int used;
			struct name *n;
			if (sscanf(line, "%63s %lld %lld%n", nm, &g, &nx, &used) != 3 ||
			    !(n = lookup(nm, true)) || cr_ver_parse(line + used, &n->vs[0].v) < 0) {
				fprintf(stderr, "crash_check: bad state line: %s", line);
				return 2;
			}
			n->vs[0].v.gen = g;
			n->next = nx;
		}
		fclose(f);
	}
	for (int j = 5; j < argc; j++) {
		if (!(f = fopen(argv[j], "r")))
			continue;	/* a writer that never started */
		while (fgets(line, sizeof(line), f)) {
			char nm[CR_NAMELEN], op, tmp[CR_NAMELEN + 24];
			long long g;
			int used;
			struct name *n;
			if (sscanf(line, "B %63s %lld %c%n", nm, &g, &op, &used) == 3) {
				n = lookup(nm, true);
				if (!n || n->nv == MAXVERS) {
					fprintf(stderr, "crash_check: too many names or versions\n");
					return 2;
				}
				struct vrec *r = &n->vs[n->nv];
				memset(r, 0, sizeof(*r));
				r->op = op;
				if (op == 'S') {
					int u2;
					if (sscanf(line + used, " %87s%n", tmp, &u2) != 1)
						goto bad;
					snprintf(r->tmp, sizeof(r->tmp), "%s", tmp);
					used += u2;
				}
				if (cr_ver_parse(line + used, &r->v) < 0)
					goto bad;
				r->v.gen = g;
				if (g >= n->next)
					n->next = g + 1;
				n->nv++;
			} else if (sscanf(line, "E %63s %lld", nm, &g) == 2) {
				n = lookup(nm, false);
				if (!n || n->vs[n->nv - 1].v.gen != g)
					goto bad;
				n->vs[n->nv - 1].done = true;
			} else {
bad:
				fprintf(stderr, "crash_check: bad journal line in %s: %s", argv[j], line);
				return 2;
			}
		}
		fclose(f);
	}
	if ((f = fopen(argv[4], "r"))) {
		while (fgets(line, sizeof(line), f)) {
			char nm[CR_NAMELEN];
			long long g;
			struct name *n;
			if (sscanf(line, "A %63s %lld", nm, &g) != 2 || !(n = lookup(nm, false))) {
				fprintf(stderr, "crash_check: bad acked line: %s", line);
				return 2;
			}
			if (g > n->acked)
				n->acked = g;
		}
		fclose(f);
	}

	for (int i = 0; i < nnames; i++)
		check_name(dir, &names[i]);

	/* every name in DIR must be a target or the temp file of an in-flight save */
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d) {
		problem("opendir %s: %s", dir, strerror(errno));
	} else {
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			struct name *n = lookup(e->d_name, false);
			if (n) {
				n->seen = true;
				continue;
			}
			char base[CR_NAMELEN];
			const char *t = strstr(e->d_name, ".tmp");
			snprintf(base, sizeof(base), "%.*s", t ? (int)(t - e->d_name) : 0, e->d_name);
			n = t ? lookup(base, false) : NULL;
			struct vrec *lv = n ? &n->vs[n->nv - 1] : NULL;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			if (!lv || lv->op != 'S' || strcmp(lv->tmp, e->d_name)) {
				problem("unexpected name %s in %s (not a target, not the temp file of an unfinished save)",
					e->d_name, dir);
			} else {
				uint8_t *b;
				long long len = slurp(path, &b);
				leftover++;
				if (len >= 0 && !partial_of(&lv->v, b, len, 0)) {
					problem("temp file %s (%lld bytes) holds no prefix of generation %lld", e->d_name, len,
						lv->v.gen);
					explain(n, b, len);
				}
				if (lv->done)
					problem("temp file %s still exists although its rename returned", e->d_name);
				if (n->exact == n->nv - 1)
					problem("rename not atomic: %s already shows generation %lld and %s still exists",
						n->name, lv->v.gen, e->d_name);
				free(b);
			}
			if (unlink(path) < 0)
				problem("unlink %s: %s", path, strerror(errno));
		}
		closedir(d);
	}
	for (int i = 0; i < nnames; i++) {
		struct name *n = &names[i];
		snprintf(path, sizeof(path), "%s/%.63s", dir, n->name);
		if (n->partial && unlink(path) < 0 && errno != ENOENT)
			problem("unlink %s: %s", path, strerror(errno));
		if (n->out.len >= 0 && !n->seen)
			problem("%s: open() found it but readdir did not list it", n->name);
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd < 0 || fsync(dfd) < 0)
		problem("fsync %s: %s", dir, strerror(errno));
	if (dfd >= 0)
		close(dfd);

	if (!(f = fopen(argv[3], "w"))) {
		fprintf(stderr, "crash_check: %s: %s\n", argv[3], strerror(errno));
		return 2;
	}
	for (int i = 0; i < nnames; i++) {
		char desc[4096];
		cr_ver_format(&names[i].out, desc, sizeof(desc));
		fprintf(f, "%s %lld %lld %s\n", names[i].name, names[i].out.gen, names[i].next, desc);
	}
	if (fclose(f) != 0)
		return 2;
	printf("crash_check: %d names: %d exact, %d partial (in flight, removed), %d temp files, "
	       "%d closed-but-unsynced updates lost, %d problems\n",
	       nnames, exacts, partials, leftover, lost_closed, failures);
	return failures ? 1 : 0;
}
