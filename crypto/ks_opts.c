/*
 * ks_opts: whether a struct key_opts, as the command line filled it, names
 * exactly one usable key source.  Here rather than beside the parser
 * (fs/cli/key_opts.c) because the answer is ks_source_resolve's, which
 * stays internal to the keystore.
 */
#include "ks_internal.h"

int key_opts_check(const struct key_opts *opts, const char *prefix, char *why, size_t whylen)
{
	struct ks_source src = { 0 };
	char inner[256] = "";
	int rc;

	rc = ks_source_resolve(opts, &src, inner, sizeof(inner));
	if (rc < 0)
		ks_why(why, whylen, rc, "%s%s", *prefix ? "new key: " : "", inner);
	ks_source_release(&src);
	return rc;
}
