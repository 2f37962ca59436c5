/*
 * progress: a progress line for long operations (fsck, snapshot,
 * compaction, rewrap): a bar with done/total, rate and ETA redrawn in
 * place on a terminal, plain lines every few seconds otherwise.
 */
#ifndef MEDVAULT_PROGRESS_H
#define MEDVAULT_PROGRESS_H

#include <stdint.h>
#include <stdio.h>
#include <time.h>

struct progress {
	FILE *out;
	const char *what;
	uint64_t total, done;
	int tty;
	struct timespec start, last;
};

/* out NULL: count, print nothing (callers inside the daemon, unit tests) */
void progress_start(struct progress *p, FILE *out, const char *what, uint64_t total);
void progress_add(struct progress *p, uint64_t n);
void progress_end(struct progress *p);

#endif
