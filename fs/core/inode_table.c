/*
 * The in-memory inode table: which inodes the kernel holds (lookup counts),
 * which are open, and their unwritten contents.  An entry lives while any
 * of nlookup, nopen or pins is non-zero.
 *
 * Calls only downward: namespace -> filedata -> inode_table.  The table
 * calls nothing in namespace.c or filedata.c: an entry whose last
 * reference goes is queued (fs->released), not written back or freed
 * here, because references are dropped in every context, inside
 * readdirplus's read transaction or while the flusher walks the table,
 * where a write transaction or a flush must not start.  A callback set at
 * creation would have run in those same contexts; with the queue, the
 * caller drains it (ns_release_inodes) where it knows it holds nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "itable.h"

static size_t slot_of(struct mvfs *fs, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) & (fs->table_size - 1);
}

/* table_lock held */
static struct mv_inode *find_locked(struct mvfs *fs, uint64_t ino)
{
	struct mv_inode *in;

	for (in = fs->table[slot_of(fs, ino)]; in; in = in->hnext)
		if (in->ino == ino)
			return in;
	return NULL;
}

/* table_lock held */
static void grow_locked(struct mvfs *fs)
{
	size_t old = fs->table_size, nsize = old * 2;
	struct mv_inode **nt = calloc(nsize, sizeof(*nt));

	if (!nt)
		return;	/* longer chains, still correct */
	fs->table_size = nsize;
	for (size_t i = 0; i < old; i++) {
		struct mv_inode *in = fs->table[i], *next;

		for (; in; in = next) {
			size_t s = slot_of(fs, in->ino);

			next = in->hnext;
			in->hnext = nt[s];
			nt[s] = in;
		}
	}
	free(fs->table);
	fs->table = nt;
}

int itable_get(struct mvfs *fs, uint64_t ino, struct mv_inode **out)
{
	struct mv_inode *in;

	pthread_mutex_lock(&fs->table_lock);
	in = find_locked(fs, ino);
	if (!in) {
		in = calloc(1, sizeof(*in));
		if (!in) {
			pthread_mutex_unlock(&fs->table_lock);
			return -ENOMEM;
		}
		in->ino = ino;
		pthread_mutex_init(&in->lock, NULL);
		pthread_cond_init(&in->inflight_done, NULL);
		pthread_mutex_init(&in->store_lock, NULL);
		pthread_mutex_init(&in->keys_lock, NULL);
		if (fs->table_count >= fs->table_size)
			grow_locked(fs);
		size_t s = slot_of(fs, ino);
		in->hnext = fs->table[s];
		fs->table[s] = in;
		fs->table_count++;
	}
	in->pins++;
	pthread_mutex_unlock(&fs->table_lock);
	*out = in;
	return 0;
}

struct mv_inode *itable_find(struct mvfs *fs, uint64_t ino)
{
	struct mv_inode *in;

	pthread_mutex_lock(&fs->table_lock);
	in = find_locked(fs, ino);
	if (in)
		in->pins++;
	pthread_mutex_unlock(&fs->table_lock);
	return in;
}

/* table_lock held */
static void activate_locked(struct mvfs *fs, struct mv_inode *in)
{
	if (in->active)
		return;
	in->active = 1;
	in->aprev = NULL;
	in->anext = fs->active;
	if (fs->active)
		fs->active->aprev = in;
	fs->active = in;
}

/* table_lock held */
static void deactivate_locked(struct mvfs *fs, struct mv_inode *in)
{
	if (!in->active)
		return;
	if (in->aprev)
		in->aprev->anext = in->anext;
	else
		fs->active = in->anext;
	if (in->anext)
		in->anext->aprev = in->aprev;
	in->anext = in->aprev = NULL;
	in->active = 0;
}

/* table_lock held: unhook in if nothing uses it; returns 1 if unhooked */
static int maybe_unhook(struct mvfs *fs, struct mv_inode *in)
{
	struct mv_inode **pp;

	if (in->nlookup || in->nopen || in->pins)
		return 0;
	for (pp = &fs->table[slot_of(fs, in->ino)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == in) {
			*pp = in->hnext;
			fs->table_count--;
			deactivate_locked(fs, in);
			return 1;
		}
	}
	return 0;
}

void itable_free_inode(struct mvfs *fs, struct mv_inode *in)
{
	/* a flush that failed on the way out put it back on the list */
	pthread_mutex_lock(&fs->table_lock);
	deactivate_locked(fs, in);
	pthread_mutex_unlock(&fs->table_lock);
	pthread_mutex_destroy(&in->lock);
	pthread_cond_destroy(&in->inflight_done);
	pthread_mutex_destroy(&in->store_lock);
	pthread_mutex_destroy(&in->keys_lock);
	free(in->name);
	free(in);
}

static void drop(struct mvfs *fs, struct mv_inode *in, uint64_t lookups, int opens, int pins)
{
	pthread_mutex_lock(&fs->table_lock);
	in->nlookup -= lookups < in->nlookup ? lookups : in->nlookup;
	in->nopen -= (uint32_t)opens;
	in->pins -= (uint32_t)pins;
	if (maybe_unhook(fs, in)) {
		in->hnext = fs->released;
		__atomic_store_n(&fs->released, in, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&fs->table_lock);
}

struct mv_inode *itable_next_released(struct mvfs *fs)
{
	struct mv_inode *in;

	/* the common case, nothing released, costs no lock */
	if (!__atomic_load_n(&fs->released, __ATOMIC_ACQUIRE))
		return NULL;
	pthread_mutex_lock(&fs->table_lock);
	in = fs->released;
	if (in) {
		__atomic_store_n(&fs->released, in->hnext, __ATOMIC_RELEASE);
		in->hnext = NULL;
	}
	pthread_mutex_unlock(&fs->table_lock);
	return in;
}

void itable_put(struct mvfs *fs, struct mv_inode *in)
{
	if (in)
		drop(fs, in, 0, 0, 1);
}

/* table_lock held */
static void set_name_locked(struct mv_inode *in, uint64_t parent, const char *name)
{
	char *copy;

	if (!name)
		return;
	if (in->name && in->name_parent == parent && !strcmp(in->name, name))
		return;
	copy = strdup(name);
	if (!copy)
		return;	/* a path shown as <inode N> is the only loss */
	free(in->name);
	in->name = copy;
	in->name_parent = parent;
}

void itable_lookup_inc(struct mvfs *fs, uint64_t ino, uint64_t parent, const char *name)
{
	struct mv_inode *in;

	if (itable_get(fs, ino, &in) < 0)
		return;
	pthread_mutex_lock(&fs->table_lock);
	in->nlookup++;
	set_name_locked(in, parent, name);
	pthread_mutex_unlock(&fs->table_lock);
	itable_put(fs, in);
}

void itable_set_name(struct mvfs *fs, uint64_t ino, uint64_t parent, const char *name)
{
	struct mv_inode *in;

	pthread_mutex_lock(&fs->table_lock);
	in = find_locked(fs, ino);
	if (in)
		set_name_locked(in, parent, name);
	pthread_mutex_unlock(&fs->table_lock);
}

void itable_path(struct mvfs *fs, uint64_t ino, char *buf, size_t len)
{
	const char *parts[128];
	char unknown[32];
	size_t n = 0, used = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	pthread_mutex_lock(&fs->table_lock);
	while (ino != INDEX_ROOT_INO && n < 128) {
		struct mv_inode *in = find_locked(fs, ino);

		if (!in || !in->name) {
			snprintf(unknown, sizeof(unknown), "<inode %llu>", (unsigned long long)ino);
			parts[n++] = unknown;
			break;
		}
		parts[n++] = in->name;
		ino = in->name_parent;
	}
	if (n == 0)
		snprintf(buf, len, "/");
	while (n-- > 0 && used + 1 < len) {
		int w = snprintf(buf + used, len - used, "%s%s",
				 parts[n] == unknown ? "" : "/", parts[n]);

		if (w < 0)
			break;
		used += (size_t)w;
	}
	pthread_mutex_unlock(&fs->table_lock);
}

void itable_forget(struct mvfs *fs, uint64_t ino, uint64_t n)
{
	struct mv_inode *in = itable_find(fs, ino);

	if (in)
		drop(fs, in, n, 0, 1);
}

void itable_open_inc(struct mvfs *fs, struct mv_inode *in)
{
	pthread_mutex_lock(&fs->table_lock);
	in->nopen++;
	activate_locked(fs, in);
	pthread_mutex_unlock(&fs->table_lock);
}

void itable_activate(struct mvfs *fs, struct mv_inode *in)
{
	pthread_mutex_lock(&fs->table_lock);
	activate_locked(fs, in);
	pthread_mutex_unlock(&fs->table_lock);
}

size_t itable_count(struct mvfs *fs)
{
	size_t n;

	pthread_mutex_lock(&fs->table_lock);
	n = fs->table_count;
	pthread_mutex_unlock(&fs->table_lock);
	return n;
}

void itable_open_dec(struct mvfs *fs, struct mv_inode *in)
{
	drop(fs, in, 0, 1, 0);
}

void itable_mark_unlinked(struct mvfs *fs, uint64_t ino)
{
	struct mv_inode *in;

	pthread_mutex_lock(&fs->table_lock);
	in = find_locked(fs, ino);
	if (in)
		in->unlinked = 1;
	pthread_mutex_unlock(&fs->table_lock);
}

int itable_is_dead(struct mvfs *fs, struct mv_inode *in)
{
	int dead;

	pthread_mutex_lock(&fs->table_lock);
	dead = in->unlinked && in->nopen == 0;
	pthread_mutex_unlock(&fs->table_lock);
	return dead;
}

int itable_in_use(struct mvfs *fs, uint64_t ino)
{
	int used;

	pthread_mutex_lock(&fs->table_lock);
	used = find_locked(fs, ino) != NULL;
	pthread_mutex_unlock(&fs->table_lock);
	return used;
}

void itable_foreach(struct mvfs *fs, void (*fn)(struct mvfs *, struct mv_inode *, void *), void *arg)
{
	struct mv_inode **list = NULL;
	size_t n = 0;

	pthread_mutex_lock(&fs->table_lock);
	list = malloc((fs->table_count + 1) * sizeof(*list));
	if (list) {
		for (size_t i = 0; i < fs->table_size; i++)
			for (struct mv_inode *in = fs->table[i]; in; in = in->hnext) {
				in->pins++;
				list[n++] = in;
			}
	}
	pthread_mutex_unlock(&fs->table_lock);
	for (size_t i = 0; i < n; i++) {
		fn(fs, list[i], arg);
		itable_put(fs, list[i]);
	}
	free(list);
}

void itable_foreach_active(struct mvfs *fs, int (*fn)(struct mvfs *, struct mv_inode *, void *),
			   void *arg)
{
	struct mv_inode **list = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&fs->table_lock);
	for (struct mv_inode *in = fs->active; in; in = in->anext)
		cap++;
	list = malloc((cap + 1) * sizeof(*list));
	if (list) {
		for (struct mv_inode *in = fs->active; in; in = in->anext) {
			in->pins++;
			list[n++] = in;
		}
	}
	pthread_mutex_unlock(&fs->table_lock);
	for (size_t i = 0; i < n; i++) {
		struct mv_inode *in = list[i];
		int busy = fn(fs, in, arg);

		pthread_mutex_lock(&fs->table_lock);
		/* an open since fn looked keeps it listed (nopen is checked
		 * here, under the lock that open_inc takes) */
		if (!busy && in->nopen == 0)
			deactivate_locked(fs, in);
		pthread_mutex_unlock(&fs->table_lock);
		itable_put(fs, in);
	}
	free(list);
}

uint64_t mvfs_new_version(struct mvfs *fs)
{
	uint64_t v;

	pthread_mutex_lock(&fs->table_lock);
	v = (fs->v->epoch << 40) | ++fs->next_version;
	pthread_mutex_unlock(&fs->table_lock);
	return v;
}
