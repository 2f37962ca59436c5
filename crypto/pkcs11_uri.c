/*
 * pkcs11_uri: an RFC 7512 URI that names a secret key, parsed by p11-kit
 * (p11_kit_uri_parse), of which medvault reads four things:
 *
 *   pkcs11:token=medvault;object=medvault-kek;type=secret-key
 *          ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/mv.pin
 *
 * Attributes p11-kit knows and we do not use (manufacturer, serial, id,
 * slot-*, library-*, vendor query attributes) are accepted and ignored, so
 * URIs printed by p11tool and pkcs11-tool work.  What p11-kit marks
 * unrecognized (an unknown path attribute, an unknown type, a token label
 * longer than 32 bytes) is refused: p11-kit defines such a URI as matching
 * nothing, and a misspelt "tokne=" silently ignored would pick another token.
 *
 * Besides the file that loads modules (ks_pkcs11.c), this is the only one
 * that includes p11-kit (its pkcs11.h renames common words with macros).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/uri.h>

#include "ks_internal.h"

/* A percent-encoded NUL would silently cut a decoded path or label short
 * (p11-kit decodes it into the string), so the raw text is checked. */
static int has_encoded_nul(const char *uri)
{
	for (const char *p = strchr(uri, '%'); p; p = strchr(p + 1, '%'))
		if (p[1] == '0' && p[2] == '0')
			return 1;
	return 0;
}

/* pin-source is a URI reference: file:/p, file:///p, file://localhost/p or a path */
static int pin_source_path(const char *v, char **out)
{
	const char *p = v;

	if (!strncmp(p, "file:", 5)) {
		p += 5;
		if (!strncmp(p, "//", 2)) {
			p += 2;
			if (!strncmp(p, "localhost/", 10))
				p += 9;
			else if (*p != '/')
				return -EINVAL;	/* a remote host */
		}
	} else if (p[0] != '/' && strchr(p, ':')) {
		return -EINVAL;		/* another scheme (e.g. a PIN helper program) */
	}
	if (!*p)
		return -EINVAL;
	*out = strdup(p);
	return *out ? 0 : -ENOMEM;
}

/* CK_TOKEN_INFO.label is 32 blank-padded bytes, all zero when not given */
static int token_label(const CK_TOKEN_INFO *ti, char **out)
{
	size_t n = sizeof(ti->label);
	static const CK_UTF8CHAR unset[sizeof(ti->label)];

	if (!memcmp(ti->label, unset, n))
		return 0;
	while (n && ti->label[n - 1] == ' ')
		n--;
	*out = strndup((const char *)ti->label, n);
	return *out ? 0 : -ENOMEM;
}

static const char *class_name(CK_OBJECT_CLASS c)
{
	switch (c) {
	case CKO_DATA: return "data";
	case CKO_CERTIFICATE: return "cert";
	case CKO_PUBLIC_KEY: return "public";
	case CKO_PRIVATE_KEY: return "private";
	case CKO_SECRET_KEY: return "secret-key";
	}
	return "another class";
}

/* p11-kit's result as -errno and a one-line why */
static int parse_error(int r, char *why, size_t whylen)
{
	switch (r) {
	case P11_KIT_URI_BAD_SCHEME:
		return why_set(why, whylen, -EINVAL, "not a pkcs11: URI");
	case P11_KIT_URI_BAD_ENCODING:
		return why_set(why, whylen, -EINVAL, "pkcs11 URI: bad percent-encoding");
	case P11_KIT_URI_BAD_SYNTAX:
		return why_set(why, whylen, -EINVAL, "pkcs11 URI: malformed attribute "
			       "(name=value, ';' between path attributes, '&' between query attributes)");
	case P11_KIT_URI_BAD_VERSION:
		return why_set(why, whylen, -EINVAL, "pkcs11 URI: malformed library-version");
	}
	/*
	 * P11_KIT_URI_UNEXPECTED, which is also P11_KIT_URI_NO_MEMORY: p11-kit
	 * 0.24 returns it for input too (a query attribute name with a ':'),
	 * and out of memory on a string this short is far the rarer cause.
	 */
	return why_set(why, whylen, -EINVAL, "pkcs11 URI: p11-kit refuses it (%s)",
		       p11_kit_uri_message(r));
}

int pkcs11_uri_parse(const char *uri, struct pkcs11_uri *out, char *why, size_t whylen)
{
	struct pkcs11_uri u = { 0 };
	P11KitUri *p = NULL;
	CK_ATTRIBUTE *a;
	const char *s;
	int r, rc = 0;

	if (has_encoded_nul(uri)) {
		rc = why_set(why, whylen, -EINVAL, "pkcs11 URI: bad percent-encoding");
		goto out;
	}
	if (!(p = p11_kit_uri_new())) {
		rc = why_set(why, whylen, -ENOMEM, "out of memory");
		goto out;
	}
	if ((r = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, p)) != P11_KIT_URI_OK) {
		rc = parse_error(r, why, whylen);
		goto out;
	}
	/* refused before anything else: the message must name pin-value */
	if (p11_kit_uri_get_pin_value(p)) {
		rc = why_set(why, whylen, -EINVAL,
			     "pkcs11 URI: pin-value refused (a PIN on the command line leaks); "
			     "use pin-source=file:/path");
		goto out;
	}
	if (p11_kit_uri_get_module_name(p)) {
		rc = why_set(why, whylen, -EINVAL,
			     "pkcs11 URI: module-name is not supported; use module-path=/path/to/module.so");
		goto out;
	}
	a = p11_kit_uri_get_attribute(p, CKA_CLASS);
	if (a && a->pValue && a->ulValueLen == sizeof(CK_OBJECT_CLASS) &&
	    *(CK_OBJECT_CLASS *)a->pValue != CKO_SECRET_KEY) {
		/* the name from our table, never the caller's bytes: one line */
		rc = why_set(why, whylen, -EINVAL, "pkcs11 URI: type=%s, medvault needs a secret-key",
			     class_name(*(CK_OBJECT_CLASS *)a->pValue));
		goto out;
	}
	if (p11_kit_uri_any_unrecognized(p)) {
		rc = why_set(why, whylen, -EINVAL, "pkcs11 URI: an attribute or value p11-kit does not "
			     "know (misspelt name, type other than secret-key, or token label over %d "
			     "bytes): it names no key", KS_TOKEN_MAX);
		goto out;
	}
	if ((rc = token_label(p11_kit_uri_get_token_info(p), &u.token)) < 0)
		goto nomem;
	a = p11_kit_uri_get_attribute(p, CKA_LABEL);
	if (a && !(u.object = strndup(a->pValue ? a->pValue : "", a->ulValueLen))) {
		rc = -ENOMEM;
		goto nomem;
	}
	if ((s = p11_kit_uri_get_module_path(p)) && !(u.module_path = strdup(s))) {
		rc = -ENOMEM;
		goto nomem;
	}
	if ((s = p11_kit_uri_get_pin_source(p)) && (rc = pin_source_path(s, &u.pin_file)) < 0) {
		if (rc == -ENOMEM)
			goto nomem;
		rc = why_set(why, whylen, rc, "pkcs11 URI: pin-source must be a local file (file:/path)");
		goto out;
	}
	*out = u;
	memset(&u, 0, sizeof(u));
	goto out;
nomem:
	rc = why_set(why, whylen, -ENOMEM, "out of memory");
out:
	if (p)
		p11_kit_uri_free(p);
	pkcs11_uri_release(&u);
	return rc;
}

void pkcs11_uri_release(struct pkcs11_uri *u)
{
	free(u->token);
	free(u->object);
	free(u->module_path);
	free(u->pin_file);
	memset(u, 0, sizeof(*u));
}
