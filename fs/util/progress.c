#include "util/progress.h"

#include <unistd.h>

static double since(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void draw(struct progress *p, const struct timespec *now, int final)
{
	double el = since(&p->start, now);
	double rate = el > 0 ? (double)p->done / el : 0;
	double eta = rate > 0 && p->total > p->done ? (double)(p->total - p->done) / rate : 0;
	int pct = p->total ? (int)(p->done * 100 / p->total) : 100;

	if (!p->out)
		return;
	if (p->tty) {
		char bar[31];
		int fill = pct * 30 / 100;

		for (int i = 0; i < 30; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[30] = '\0';
		fprintf(p->out, "\r%s [%s] %3d%% %llu/%llu %.0f/s ETA %.0fs  ", p->what, bar, pct,
			(unsigned long long)p->done, (unsigned long long)p->total, rate, eta);
		if (final)
			fputc('\n', p->out);
	} else {
		fprintf(p->out, "%s: %llu/%llu (%d%%), %.0f/s, ETA %.0fs\n", p->what,
			(unsigned long long)p->done, (unsigned long long)p->total, pct, rate, eta);
	}
	fflush(p->out);
}

void progress_start(struct progress *p, FILE *out, const char *what, uint64_t total)
{
	p->out = out;
	p->what = what;
	p->total = total;
	p->done = 0;
	p->tty = out && isatty(fileno(out));
	clock_gettime(CLOCK_MONOTONIC, &p->start);
	p->last = p->start;
}

void progress_add(struct progress *p, uint64_t n)
{
	struct timespec now;

	p->done += n;
	clock_gettime(CLOCK_MONOTONIC, &now);
	/* a terminal redraws often; a log gets a line every few seconds */
	if (since(&p->last, &now) >= (p->tty ? 0.2 : 5.0)) {
		draw(p, &now, 0);
		p->last = now;
	}
}

void progress_end(struct progress *p)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (p->tty || since(&p->start, &now) >= 5.0)
		draw(p, &now, 1);
}
