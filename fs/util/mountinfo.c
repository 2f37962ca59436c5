/*
 * The mount table as the kernel shows it to this process: which mount is
 * visible at a path (the CLI's checks, the bdi tuning, the root part's
 * "is this still our mount" before it unmounts), and whether a source is
 * mounted anywhere (a store still served, for the lock wait).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mountinfo.h"

/* mountinfo escapes blanks as \040 and backslashes as \134 */
static void unescape_mountinfo(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/*
 * Each line's mount point, fstype, source and dev, unescaped, to visit
 * until it returns non-zero (its value is returned; 0 at the end).
 */
static int mount_each(int (*visit)(const struct mount_entry *e, const char *mountpoint, void *ctx),
		      void *ctx)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;

	if (!f)
		return 0;
	while (!rc && getline(&line, &cap, f) > 0) {
		char *fields[12], *save = NULL, *tok;
		struct mount_entry e;
		int n = 0, sep = -1;

		for (tok = strtok_r(line, " \n", &save); tok && n < 12; tok = strtok_r(NULL, " \n", &save)) {
			fields[n] = tok;
			if (!strcmp(tok, "-") && sep < 0)
				sep = n;
			n++;
		}
		if (n < 5 || sep < 0 || sep + 2 >= n)
			continue;
		unescape_mountinfo(fields[4]);
		unescape_mountinfo(fields[sep + 2]);
		snprintf(e.fstype, sizeof(e.fstype), "%s", fields[sep + 1]);
		snprintf(e.source, sizeof(e.source), "%s", fields[sep + 2]);
		snprintf(e.dev, sizeof(e.dev), "%s", fields[2]);
		rc = visit(&e, fields[4], ctx);
	}
	free(line);
	fclose(f);
	return rc;
}

struct at_path {
	const char *path;
	struct mount_entry *m;
	int found;
};

static int visit_at(const struct mount_entry *e, const char *mountpoint, void *ctx)
{
	struct at_path *a = ctx;

	if (!strcmp(mountpoint, a->path)) {
		*a->m = *e;
		a->found = 1;	/* keep going: the last mount on a path is the visible one */
	}
	return 0;
}

int mount_at(const char *path, struct mount_entry *m)
{
	struct at_path a = { path, m, 0 };

	mount_each(visit_at, &a);
	return a.found;
}

static int visit_source(const struct mount_entry *e, const char *mountpoint, void *ctx)
{
	const char **want = ctx;

	(void)mountpoint;
	return !strcmp(e->fstype, want[0]) && !strcmp(e->source, want[1]);
}

int mount_of_source(const char *fstype, const char *source)
{
	const char *want[2] = { fstype, source };

	return mount_each(visit_source, want);
}
