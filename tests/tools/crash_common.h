/*
 * crash_common.h: the content model shared by crash_writer and crash_check
 * (t_50_crash.sh, stress_crash.sh).  Header-only: the Makefile builds every
 * tests/tools/X.c into a tool, and this file is included by two of them.
 *
 * A file version ("generation") is a length L and a list of segments that
 * cover [0, L) in order.  A segment is (off, len, seed): seed 0 means zeros
 * (a truncate that extends), any other seed means the keyed pattern
 *
 *     byte(i) = byte (i % 8) of splitmix64(seed ^ ((i / 8) * PHI))
 *
 * where i is the ABSOLUTE file offset.  seed = hash(name, gen, segment
 * number), so the bytes of a version identify the file, the generation and
 * the position: a chunk from another file, another generation or another
 * offset never matches.  Writes of whole versions make one segment; an
 * append adds one; a truncate cuts (or adds a zero segment).
 *
 * The writer's journal (text, one line per event, outside the mount):
 *   B <name> <gen> <op> [<tmpname>] L <len> S <nseg> <off> <len> <seed>...
 *        op begins; the descriptor is the version the op produces
 *        (op U: L -1 S 0, i.e. the name is absent)
 *   E <name> <gen>     the op returned (including close and rename)
 * The acked journal (fsync'd after each line): A <name> <gen>.
 * The state file (written by crash_check, read by both): one line per name
 *   <name> <gen> L <len> S <nseg> ...   (L -1: absent)
 */
#ifndef CRASH_COMMON_H
#define CRASH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CR_MAXSEG 24
#define CR_NAMELEN 64

struct cr_seg {
	uint64_t off, len, seed;
};

struct cr_ver {
	long long gen;
	long long len;		/* -1: absent */
	int nseg;
	struct cr_seg seg[CR_MAXSEG];
};

static inline uint64_t cr_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static inline uint64_t cr_seed(const char *name, long long gen, int segno)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const char *p = name; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	h = cr_mix(h ^ cr_mix((uint64_t)gen * 131 + (uint64_t)segno));
	return h ? h : 1;
}

/* fill out[0..n) with the bytes of segment s at absolute offset off */
static inline void cr_seg_bytes(const struct cr_seg *s, uint64_t off, uint8_t *out, size_t n)
{
	if (!s->seed) {
		memset(out, 0, n);
		return;
	}
	size_t i = 0;
	while (i < n) {
		uint64_t pos = off + i, w = cr_mix(s->seed ^ ((pos / 8) * 0x9e3779b97f4a7c15ull));
		unsigned k = pos % 8;
		for (; k < 8 && i < n; k++, i++)
			out[i] = (uint8_t)(w >> (8 * k));
	}
}

/* bytes [off, off+n) of version v (must lie inside [0, v->len)) */
static inline void cr_ver_bytes(const struct cr_ver *v, uint64_t off, uint8_t *out, size_t n)
{
	for (int i = 0; i < v->nseg && n; i++) {
		const struct cr_seg *s = &v->seg[i];
		if (off >= s->off + s->len)
			continue;
		size_t take = s->off + s->len - off;
		if (take > n)
			take = n;
		cr_seg_bytes(s, off, out, take);
		out += take, off += take, n -= take;
	}
	if (n)
		memset(out, 0xEE, n);	/* outside the version: never matches by accident */
}

static inline void cr_ver_full(struct cr_ver *v, const char *name, long long gen, uint64_t len)
{
	v->gen = gen;
	v->len = (long long)len;
	v->nseg = 0;
	if (len) {
		v->seg[0] = (struct cr_seg){ 0, len, cr_seed(name, gen, 0) };
		v->nseg = 1;
	}
}

static inline void cr_ver_append(struct cr_ver *v, const char *name, long long gen, uint64_t add)
{
	uint64_t old = (uint64_t)v->len;

	v->gen = gen;
	if (add) {
		v->seg[v->nseg] = (struct cr_seg){ old, add, cr_seed(name, gen, v->nseg) };
		v->nseg++;
	}
	v->len = (long long)(old + add);
}

static inline void cr_ver_truncate(struct cr_ver *v, long long gen, uint64_t nlen)
{
	uint64_t old = (uint64_t)v->len;

	v->gen = gen;
	if (nlen > old) {
		v->seg[v->nseg++] = (struct cr_seg){ old, nlen - old, 0 };
	} else {
		int k = 0;
		for (int i = 0; i < v->nseg; i++) {
			if (v->seg[i].off >= nlen)
				break;
			v->seg[k] = v->seg[i];
			if (v->seg[k].off + v->seg[k].len > nlen)
				v->seg[k].len = nlen - v->seg[k].off;
			k++;
		}
		v->nseg = k;
	}
	v->len = (long long)nlen;
}

/* zeros over [off, off+n), which lies inside [0, v->len): at most two more
 * segments (the one the range starts in is cut, the one it ends in too) */
static inline void cr_ver_zero(struct cr_ver *v, long long gen, uint64_t off, uint64_t n)
{
	struct cr_seg out[CR_MAXSEG];
	uint64_t end = off + n;
	int k = 0;

	v->gen = gen;
	for (int i = 0; i < v->nseg; i++) {
		struct cr_seg s = v->seg[i];
		uint64_t send = s.off + s.len;

		if (send <= off || s.off >= end) {
			out[k++] = s;
			continue;
		}
		if (s.off < off)
			out[k++] = (struct cr_seg){ s.off, off - s.off, s.seed };
		if (send > end)
			out[k++] = (struct cr_seg){ end, send - end, s.seed };
	}
	/* insert the zero segment in offset order */
	{
		int at = 0;

		while (at < k && out[at].off < off)
			at++;
		memmove(&out[at + 1], &out[at], (size_t)(k - at) * sizeof(out[0]));
		out[at] = (struct cr_seg){ off, n, 0 };
		k++;
	}
	memcpy(v->seg, out, (size_t)k * sizeof(out[0]));
	v->nseg = k;
}

static inline int cr_ver_format(const struct cr_ver *v, char *buf, size_t n)
{
	int w = snprintf(buf, n, "L %lld S %d", v->len, v->nseg);
	for (int i = 0; i < v->nseg && w > 0 && (size_t)w < n; i++)
		w += snprintf(buf + w, n - w, " %llu %llu %llu", (unsigned long long)v->seg[i].off,
			      (unsigned long long)v->seg[i].len, (unsigned long long)v->seg[i].seed);
	return w;
}

/* parse "L <len> S <n> ..." starting at p; 0 on success */
static inline int cr_ver_parse(const char *p, struct cr_ver *v)
{
	int used;
	if (sscanf(p, " L %lld S %d%n", &v->len, &v->nseg, &used) != 2 || v->nseg < 0 ||
	    v->nseg > CR_MAXSEG)
		return -1;
	p += used;
	for (int i = 0; i < v->nseg; i++) {
		unsigned long long a, b, c;
		if (sscanf(p, " %llu %llu %llu%n", &a, &b, &c, &used) != 3)
			return -1;
		v->seg[i] = (struct cr_seg){ a, b, c };
		p += used;
	}
	return 0;
}

#endif
