/* mountinfo: the mount table as this process sees it (fs/util/mountinfo.c) */
#ifndef MEDVAULT_MOUNTINFO_H
#define MEDVAULT_MOUNTINFO_H
#include <limits.h>
/* one line of /proc/self/mountinfo */
struct mount_entry {
	char fstype[64];	/* "fuse.medvault" */
	char source[PATH_MAX];	/* the store, for ours */
	char dev[64];		/* major:minor, the mount's bdi name */
};
/* The visible mount at path (a real path): 1 and *m, or 0 if none. */
int mount_at(const char *path, struct mount_entry *m);
/* 1 when a mount of fstype from source exists anywhere, else 0. */
int mount_of_source(const char *fstype, const char *source);
#endif
