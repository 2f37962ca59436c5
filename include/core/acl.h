/*
 * acl: POSIX ACLs in their xattr form (system.posix_acl_access and
 * system.posix_acl_default), with the rules ext4 follows: an ACL that only
 * restates the mode is not stored, the mode follows an access ACL, chmod
 * rewrites the ACL, and new inodes inherit their directory's default ACL.
 * The kernel enforces them (default_permissions + FUSE_POSIX_ACL); the
 * daemon keeps them consistent with the mode.
 */
#ifndef MEDVAULT_ACL_H
#define MEDVAULT_ACL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ACL_XATTR_ACCESS "system.posix_acl_access"
#define ACL_XATTR_DEFAULT "system.posix_acl_default"
#define ACL_MAX_ENTRIES 1024

struct acl_entry {
	uint16_t tag, perm;
	uint32_t id;
};

struct acl {
	unsigned n;
	struct acl_entry e[ACL_MAX_ENTRIES];
};

/* Parse and validate an xattr value.  -EINVAL when malformed. */
int acl_parse(struct acl *acl, const void *value, size_t len);
/* Serialize into buf (cap >= acl_xattr_size); returns the length. */
size_t acl_format(const struct acl *acl, void *buf, size_t cap);
size_t acl_xattr_size(const struct acl *acl);

/* 1 if the ACL says no more than the mode's nine bits */
int acl_equiv_mode(const struct acl *acl);
/* the rwx bits (0777) the ACL implies */
mode_t acl_mode_bits(const struct acl *acl);
/* chmod: set the owner, mask (or group) and other entries from mode */
void acl_chmod(struct acl *acl, mode_t mode);
/* create: restrict an inherited default ACL by the requested mode, and
 * restrict *mode by the ACL (posix_acl_create) */
void acl_create_masq(struct acl *acl, mode_t *mode);

#endif
