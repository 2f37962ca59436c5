/*
 * fsck: verify every index record and every chunk of a store that is not
 * mounted, and optionally repair what can be repaired without deleting
 * referenced data.
 */
#ifndef MEDVAULT_FSCK_H
#define MEDVAULT_FSCK_H

#include <stdint.h>
#include <stdio.h>

#include "store/vault.h"

struct fsck_report {
	uint64_t inodes, dirs, files, dirents, chunks, chunk_bytes, packs, xattrs, orphans;
	uint64_t problems;	/* everything found wrong */
	uint64_t damaged;	/* of which: data that fails authentication or is missing */
	uint64_t repaired;
};

/*
 * Check (repair != 0: and fix) the opened vault; findings go to out, one
 * line each, naming files by path.  Returns 0 or -errno for a failure of
 * the check itself (not for damage found: see the report).
 */
int fsck_run(struct vault *v, int repair, FILE *out, FILE *progress_out, struct fsck_report *r);

#endif
