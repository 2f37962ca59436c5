#include "core/acl.h"

#include <errno.h>
#include <string.h>

/* Linux's xattr encoding: little-endian, a version word, then entries. */
#define ACL_XATTR_VERSION 2
#define TAG_USER_OBJ 0x01
#define TAG_USER 0x02
#define TAG_GROUP_OBJ 0x04
#define TAG_GROUP 0x08
#define TAG_MASK 0x10
#define TAG_OTHER 0x20

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

int acl_parse(struct acl *acl, const void *value, size_t len)
{
	const uint8_t *p = value;
	int have_uo = 0, have_go = 0, have_o = 0, have_mask = 0, named = 0;
	uint16_t last_tag = 0;

	if (len < 4 || (len - 4) % 8 || le32(p) != ACL_XATTR_VERSION)
		return -EINVAL;
	acl->n = (unsigned)((len - 4) / 8);
	if (acl->n > ACL_MAX_ENTRIES)
		return -EINVAL;
	for (unsigned i = 0; i < acl->n; i++) {
		const uint8_t *q = p + 4 + 8 * i;
		struct acl_entry *e = &acl->e[i];

		e->tag = le16(q);
		e->perm = le16(q + 2);
		e->id = le32(q + 4);
		if (e->perm & ~7u)
			return -EINVAL;
		/* entries come sorted by tag, as the kernel emits them */
		if (e->tag < last_tag)
			return -EINVAL;
		last_tag = e->tag;
		switch (e->tag) {
		case TAG_USER_OBJ: have_uo++; break;
		case TAG_GROUP_OBJ: have_go++; break;
		case TAG_OTHER: have_o++; break;
		case TAG_MASK: have_mask++; break;
		case TAG_USER: case TAG_GROUP: named++; break;
		default: return -EINVAL;
		}
	}
	if (have_uo != 1 || have_go != 1 || have_o != 1 || have_mask > 1 || (named && !have_mask))
		return -EINVAL;
	return 0;
}

size_t acl_xattr_size(const struct acl *acl)
{
	return 4 + 8 * (size_t)acl->n;
}

size_t acl_format(const struct acl *acl, void *buf, size_t cap)
{
	uint8_t *p = buf;
	size_t need = acl_xattr_size(acl);

	if (cap < need)
		return 0;
	p[0] = ACL_XATTR_VERSION;
	p[1] = p[2] = p[3] = 0;
	for (unsigned i = 0; i < acl->n; i++) {
		uint8_t *q = p + 4 + 8 * i;
		const struct acl_entry *e = &acl->e[i];

		q[0] = (uint8_t)e->tag;
		q[1] = (uint8_t)(e->tag >> 8);
		q[2] = (uint8_t)e->perm;
		q[3] = (uint8_t)(e->perm >> 8);
		q[4] = (uint8_t)e->id;
		q[5] = (uint8_t)(e->id >> 8);
		q[6] = (uint8_t)(e->id >> 16);
		q[7] = (uint8_t)(e->id >> 24);
	}
	return need;
}

int acl_equiv_mode(const struct acl *acl)
{
	for (unsigned i = 0; i < acl->n; i++)
		if (acl->e[i].tag != TAG_USER_OBJ && acl->e[i].tag != TAG_GROUP_OBJ &&
		    acl->e[i].tag != TAG_OTHER)
			return 0;
	return 1;
}

static struct acl_entry *find(struct acl *acl, uint16_t tag)
{
	for (unsigned i = 0; i < acl->n; i++)
		if (acl->e[i].tag == tag)
			return &acl->e[i];
	return NULL;
}

mode_t acl_mode_bits(const struct acl *acl)
{
	struct acl *a = (struct acl *)acl;
	struct acl_entry *uo = find(a, TAG_USER_OBJ), *go = find(a, TAG_GROUP_OBJ);
	struct acl_entry *o = find(a, TAG_OTHER), *m = find(a, TAG_MASK);
	mode_t mode = 0;

	if (uo)
		mode |= (mode_t)uo->perm << 6;
	if (m)
		mode |= (mode_t)m->perm << 3;
	else if (go)
		mode |= (mode_t)go->perm << 3;
	if (o)
		mode |= o->perm;
	return mode;
}

void acl_chmod(struct acl *acl, mode_t mode)
{
	struct acl_entry *uo = find(acl, TAG_USER_OBJ), *go = find(acl, TAG_GROUP_OBJ);
	struct acl_entry *o = find(acl, TAG_OTHER), *m = find(acl, TAG_MASK);

	if (uo)
		uo->perm = (mode >> 6) & 7;
	if (m)
		m->perm = (mode >> 3) & 7;
	else if (go)
		go->perm = (mode >> 3) & 7;
	if (o)
		o->perm = mode & 7;
}

void acl_create_masq(struct acl *acl, mode_t *mode)
{
	struct acl_entry *uo = find(acl, TAG_USER_OBJ), *go = find(acl, TAG_GROUP_OBJ);
	struct acl_entry *o = find(acl, TAG_OTHER), *m = find(acl, TAG_MASK);
	mode_t newmode = *mode & ~(mode_t)0777;

	if (uo) {
		uo->perm &= (*mode >> 6) & 7;
		newmode |= (mode_t)uo->perm << 6;
	}
	if (m) {
		m->perm &= (*mode >> 3) & 7;
		newmode |= (mode_t)m->perm << 3;
	} else if (go) {
		go->perm &= (*mode >> 3) & 7;
		newmode |= (mode_t)go->perm << 3;
	}
	if (o) {
		o->perm &= *mode & 7;
		newmode |= o->perm;
	}
	*mode = newmode;
}
