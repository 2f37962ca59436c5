#include "chunkcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct entry {
	uint64_t ino, idx, version;
	uint32_t len;
	int used;
	int locked;	/* mlock'd on first use, so an idle cache costs no RAM */
	struct entry *hnext;		/* hash chain */
	struct entry *prev, *next;	/* LRU: head is the most recent */
	uint8_t *data;
};

struct chunkcache {
	uint32_t chunk_size;
	size_t nslots, nbuckets;
	pthread_mutex_t lock;	/* protects everything below */
	struct entry *slots;
	struct entry **buckets;
	struct entry *head, *tail;
	uint8_t *arena;		/* nslots * chunk_size, locked: it holds plaintext */
	size_t arena_len;
};

static size_t bucket(const struct chunkcache *cc, uint64_t ino, uint64_t idx)
{
	uint64_t h = ino * 0x9E3779B97F4A7C15ull ^ (idx + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull;

	return (size_t)(h >> 17) % cc->nbuckets;
}

int chunkcache_create(struct chunkcache **out, uint32_t chunk_size, size_t capacity)
{
	struct chunkcache *cc = calloc(1, sizeof(*cc));

	*out = NULL;
	if (!cc)
		return -ENOMEM;
	cc->chunk_size = chunk_size;
	cc->nslots = capacity / chunk_size;
	cc->nbuckets = cc->nslots * 2 + 1;
	pthread_mutex_init(&cc->lock, NULL);
	if (cc->nslots) {
		cc->arena_len = cc->nslots * (size_t)chunk_size;
		cc->arena = mmap(NULL, cc->arena_len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		cc->slots = calloc(cc->nslots, sizeof(*cc->slots));
		cc->buckets = calloc(cc->nbuckets, sizeof(*cc->buckets));
		if (cc->arena == MAP_FAILED || !cc->slots || !cc->buckets) {
			if (cc->arena == MAP_FAILED)
				cc->arena = NULL;
			chunkcache_destroy(cc);
			return -ENOMEM;
		}
		/* never in a core dump; each slot is locked when first filled */
		madvise(cc->arena, cc->arena_len, MADV_DONTDUMP);
		for (size_t i = 0; i < cc->nslots; i++) {
			struct entry *e = &cc->slots[i];

			e->data = cc->arena + i * (size_t)chunk_size;
			/* all slots start on the LRU list, unused, at the tail end */
			e->prev = cc->tail;
			if (cc->tail)
				cc->tail->next = e;
			else
				cc->head = e;
			cc->tail = e;
		}
	}
	*out = cc;
	return 0;
}

void chunkcache_destroy(struct chunkcache *cc)
{
	if (!cc)
		return;
	if (cc->arena) {
		explicit_bzero(cc->arena, cc->arena_len);
		munmap(cc->arena, cc->arena_len);
	}
	free(cc->slots);
	free(cc->buckets);
	pthread_mutex_destroy(&cc->lock);
	free(cc);
}

/* lock held */
static struct entry *find(struct chunkcache *cc, uint64_t ino, uint64_t idx)
{
	for (struct entry *e = cc->buckets[bucket(cc, ino, idx)]; e; e = e->hnext)
		if (e->ino == ino && e->idx == idx)
			return e;
	return NULL;
}

/* lock held */
static void lru_front(struct chunkcache *cc, struct entry *e)
{
	if (cc->head == e)
		return;
	e->prev->next = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		cc->tail = e->prev;
	e->prev = NULL;
	e->next = cc->head;
	cc->head->prev = e;
	cc->head = e;
}

/* lock held */
static void unhash(struct chunkcache *cc, struct entry *e)
{
	struct entry **pp = &cc->buckets[bucket(cc, e->ino, e->idx)];

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == e) {
			*pp = e->hnext;
			break;
		}
	}
	e->used = 0;
}

int chunkcache_get(struct chunkcache *cc, uint64_t ino, uint64_t idx, uint64_t version,
		   uint8_t *buf, uint32_t *len)
{
	struct entry *e;
	int hit = 0;

	if (!cc || !cc->nslots)
		return 0;
	pthread_mutex_lock(&cc->lock);
	e = find(cc, ino, idx);
	if (e && e->version == version) {
		memcpy(buf, e->data, e->len);
		*len = e->len;
		lru_front(cc, e);
		hit = 1;
	}
	pthread_mutex_unlock(&cc->lock);
	return hit;
}

void chunkcache_put(struct chunkcache *cc, uint64_t ino, uint64_t idx, uint64_t version,
		    const uint8_t *buf, uint32_t len)
{
	struct entry *e;

	if (!cc || !cc->nslots || len > cc->chunk_size)
		return;
	pthread_mutex_lock(&cc->lock);
	e = find(cc, ino, idx);
	if (!e) {
		e = cc->tail;	/* the least recently used, or an unused slot */
		if (e->used)
			unhash(cc, e);
		e->ino = ino;
		e->idx = idx;
		e->hnext = cc->buckets[bucket(cc, ino, idx)];
		cc->buckets[bucket(cc, ino, idx)] = e;
		e->used = 1;
	}
	if (!e->locked) {
		mlock(e->data, cc->chunk_size);	/* plaintext never reaches swap */
		e->locked = 1;
	}
	e->version = version;
	e->len = len;
	memcpy(e->data, buf, len);
	lru_front(cc, e);
	pthread_mutex_unlock(&cc->lock);
}
