/*
 * fuzz_acl: the POSIX ACL xattr parser (fs/core/acl.c), fed by setxattr from
 * any user who owns a file, and the rules built on it.
 *
 * Input: 2 bytes of mode (for chmod / create), then the xattr value.
 * Invariants checked for every ACL that parses:
 *   - format(parse(v)) == v, byte for byte;
 *   - after acl_chmod(m), the ACL implies exactly m's rwx bits and still
 *     parses; an ACL equivalent to a mode stays equivalent;
 *   - acl_create_masq(&mode) only removes permissions, from the ACL and
 *     from the mode, keeps the non-permission bits, and the result agrees.
 */
#include <errno.h>
#include <string.h>

#include "core/acl.h"
#include "fuzz_common.h"

static struct acl a, b, c;
static uint8_t buf[4 + 8 * ACL_MAX_ENTRIES];

static void reparse(const struct acl *x)
{
	size_t n = acl_format(x, buf, sizeof(buf));

	FUZZ_ASSERT(n == acl_xattr_size(x));
	FUZZ_ASSERT(acl_parse(&c, buf, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mode_t m, mode, before;
	uint8_t *v;
	size_t n, vlen;
	int rc;

	if (size < 2)
		return 0;
	m = (mode_t)(data[0] | data[1] << 8) & 07777;
	vlen = size - 2;
	v = malloc(vlen ? vlen : 1);	/* exact size: ASan sees overreads */
	if (!v)
		abort();
	memcpy(v, data + 2, vlen);

	rc = acl_parse(&a, v, vlen);
	FUZZ_ASSERT(rc == 0 || rc == -EINVAL);
	if (rc == 0) {
		FUZZ_ASSERT(a.n >= 3 && a.n <= ACL_MAX_ENTRIES);
		n = acl_format(&a, buf, sizeof(buf));
		FUZZ_ASSERT(n == vlen && memcmp(buf, v, n) == 0);
		FUZZ_ASSERT(acl_format(&a, buf, n - 1) == 0);	/* too small: refused */
		FUZZ_ASSERT((acl_mode_bits(&a) & ~(mode_t)0777) == 0);

		b = a;
		acl_chmod(&b, m);
		FUZZ_ASSERT(acl_mode_bits(&b) == (m & 0777));
		FUZZ_ASSERT(acl_equiv_mode(&b) == acl_equiv_mode(&a));
		reparse(&b);

		b = a;
		mode = before = m | 0100000;	/* S_IFREG */
		acl_create_masq(&b, &mode);
		FUZZ_ASSERT((mode & ~(mode_t)0777) == (before & ~(mode_t)0777));
		FUZZ_ASSERT((mode & 0777 & ~before) == 0);
		FUZZ_ASSERT(acl_mode_bits(&b) == (mode & 0777));
		for (unsigned i = 0; i < b.n; i++)
			FUZZ_ASSERT((b.e[i].perm & ~a.e[i].perm) == 0 && b.e[i].tag == a.e[i].tag &&
				    b.e[i].id == a.e[i].id);
		reparse(&b);
	}
	free(v);
	return 0;
}
