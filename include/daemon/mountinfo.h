/* mountinfo: the visible mount at a path (fs/daemon/mountinfo.c) */
#ifndef MEDVAULT_MOUNTINFO_H
#define MEDVAULT_MOUNTINFO_H

#include <limits.h>

/* one line of /proc/self/mountinfo */
struct daemon_mount {
	char fstype[64];	/* "fuse.medvault" */
	char source[PATH_MAX];	/* the store, for ours */
	char dev[64];		/* major:minor, the mount's bdi name */
};

/* The visible mount at path (a real path): 1 and *m, or 0 if none. */
int daemon_find_mount(const char *path, struct daemon_mount *m);

#endif
