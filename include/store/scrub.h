/*
 * scrub: read and authenticate everything a store holds while it is open
 * (mounted, or not), at a bounded rate, and name what is damaged: files
 * nobody reads would otherwise keep their damage hidden until the day
 * they are needed, possibly after the last good backup has rotated out.
 *
 * A run has two phases.  Records: in one read transaction, the whole
 * integrity tree is recomputed from the records (index_tree_verify: a
 * replayed, deleted or planted record of any database), then every record
 * of every other database is authenticated.  Chunks: every chunk record is read
 * through the index (which checks it against the tree) and its chunk read
 * from its pack and authenticated, in batches of short read transactions
 * that resume after the last key (a transaction held for the hours a
 * large store takes would keep LMDB from reusing any page freed since),
 * sleeping between batches so that chunk data is read at no more than
 * the rate asked for.
 *
 * Findings go to syslog (LOG_ERR), one line each with the inode number:
 * never a name or a path (docs/DESIGN.md, logs); the path, resolved
 * through the directory entries at the end of the run, is kept with the
 * finding for whoever asks (scrub_findings_get: `medvault scrub --wait`).
 */
#ifndef MEDVAULT_SCRUB_H
#define MEDVAULT_SCRUB_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store/vault.h"

#define SCRUB_FINDINGS_KEPT 64	/* findings kept with their path */
#define SCRUB_PATH_MAX 256	/* a kept path is cut to this */
#define SCRUB_WHAT_MAX 160

struct scrub_opts {
	uint64_t rate;		/* bytes of chunk data per second; 0: no limit */
	/* where the store is mounted, for the hint in syslog (NULL: none) */
	const char *mountpoint;
};

enum scrub_state {
	SCRUB_NEW,		/* not started */
	SCRUB_RECORDS,		/* phase 1: the tree and every record */
	SCRUB_CHUNKS,		/* phase 2: every chunk */
	SCRUB_DONE,		/* finished; findings may be non-zero */
	SCRUB_STOPPED,		/* scrub_stop() ended it early */
	SCRUB_FAILED,		/* the scrub itself failed (error) */
};

/* A snapshot of a run's counters; any thread may take one at any time. */
struct scrub_progress {
	enum scrub_state state;
	int error;		/* SCRUB_FAILED: -errno */
	time_t started, finished;	/* wall clock; finished 0 while running */
	uint64_t records;	/* index records authenticated (chunk records included) */
	uint64_t chunks, bytes;	/* chunks checked (found good or not), their sealed bytes */
	uint64_t chunks_total;	/* chunk records in the index (known after the tree check) */
	uint64_t findings;	/* everything found wrong */
	uint64_t files;		/* distinct inodes named by the findings (the volume counts as 0) */
};

struct scrub_finding {
	uint64_t ino;		/* 0: the volume itself (counters, pack records, tree nodes) */
	char path[SCRUB_PATH_MAX];	/* "/a/b", "" when unknown */
	char what[SCRUB_WHAT_MAX];
	uint64_t more;		/* further bad chunks of the same file, after this one */
};

const char *scrub_state_name(enum scrub_state s);

struct scrub;

/* A run over v (which must stay open until scrub_free).  -ENOMEM */
int scrub_new(struct scrub **out, struct vault *v, const struct scrub_opts *o);

/*
 * Run the scrub in the calling thread, to its end.  Returns 0 when it
 * went through (findings, if any, in the progress), -ECANCELED when
 * scrub_stop ended it, or -errno when the scrub itself failed (-ENOMEM,
 * -EIO from the index outside any one record).
 */
int scrub_run(struct scrub *s);

/* Ask a running scrub to stop; it does between two batches (well under a
 * second).  Any thread. */
void scrub_stop(struct scrub *s);

void scrub_progress_get(struct scrub *s, struct scrub_progress *out);

/* Copy up to max kept findings (the first SCRUB_FINDINGS_KEPT of a run;
 * paths are filled in once the run has ended).  Returns how many. */
size_t scrub_findings_get(struct scrub *s, struct scrub_finding *out, size_t max);

/* s may be NULL; s must not be running */
void scrub_free(struct scrub *s);

#endif
