#include "util/parallel.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct job {
	void (*fn)(void *ctx, size_t i);
	void *ctx;
	size_t n;
	size_t next;		/* next item to claim; protected by p->lock */
	size_t done;		/* items finished; protected by p->lock */
	struct job *qnext;
};

struct parallel {
	pthread_mutex_t lock;
	pthread_cond_t work;	/* a job was queued, or stop */
	pthread_cond_t finished;	/* some job's last item completed */
	struct job *queue;
	int stop;
	unsigned nthreads;
	pthread_t *threads;
};

/* lock held: run items of job until none are left to claim */
static void drain(struct parallel *p, struct job *j)
{
	while (j->next < j->n) {
		size_t i = j->next++;

		pthread_mutex_unlock(&p->lock);
		j->fn(j->ctx, i);
		pthread_mutex_lock(&p->lock);
		if (++j->done == j->n)
			pthread_cond_broadcast(&p->finished);
	}
}

static void *worker(void *arg)
{
	struct parallel *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct job *j = p->queue;

		while (j && j->next >= j->n)
			j = j->qnext;
		if (!j) {
			pthread_cond_wait(&p->work, &p->lock);
			continue;
		}
		drain(p, j);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int parallel_create(struct parallel **out, unsigned workers)
{
	struct parallel *p = calloc(1, sizeof(*p));

	*out = NULL;
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->finished, NULL);
	p->threads = calloc(workers ? workers : 1, sizeof(*p->threads));
	if (!p->threads) {
		parallel_destroy(p);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < workers; i++) {
		if (pthread_create(&p->threads[i], NULL, worker, p) != 0)
			break;
		p->nthreads++;
	}
	*out = p;
	return 0;
}

void parallel_destroy(struct parallel *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	free(p->threads);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->finished);
	free(p);
}

void parallel_for(struct parallel *p, size_t n, void (*fn)(void *ctx, size_t i), void *ctx)
{
	struct job j = { .fn = fn, .ctx = ctx, .n = n };
	struct job **pp;

	if (n == 0)
		return;
	if (!p || p->nthreads == 0 || n == 1) {
		for (size_t i = 0; i < n; i++)
			fn(ctx, i);
		return;
	}
	pthread_mutex_lock(&p->lock);
	for (pp = &p->queue; *pp; pp = &(*pp)->qnext)
		;
	*pp = &j;
	pthread_cond_broadcast(&p->work);
	drain(p, &j);
	while (j.done < j.n)
		pthread_cond_wait(&p->finished, &p->lock);
	for (pp = &p->queue; *pp != &j; pp = &(*pp)->qnext)
		;
	*pp = j.qnext;
	pthread_mutex_unlock(&p->lock);
}
