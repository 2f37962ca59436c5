/*
 * The mount table as the kernel shows it to this process: which mount is
 * visible at a path (the CLI's checks, the bdi tuning, the root part's
 * "is this still our mount" before it unmounts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/mountinfo.h"

/* mountinfo escapes blanks as \040 and backslashes as \134 */
static void unescape_mountinfo(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] && r[3]) {
			*w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

int daemon_find_mount(const char *path, struct daemon_mount *m)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0) {
		char *fields[12], *save = NULL, *tok;
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
		if (strcmp(fields[4], path))
			continue;
		unescape_mountinfo(fields[sep + 2]);
		snprintf(m->fstype, sizeof(m->fstype), "%s", fields[sep + 1]);
		snprintf(m->source, sizeof(m->source), "%s", fields[sep + 2]);
		snprintf(m->dev, sizeof(m->dev), "%s", fields[2]);
		found = 1;	/* keep going: the last mount on a path is the visible one */
	}
	free(line);
	fclose(f);
	return found;
}

