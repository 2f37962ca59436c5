/*
 * pkcs11_uri: the subset of RFC 7512 that names a secret key:
 *
 *   pkcs11:token=medvault;object=medvault-kek;type=secret-key
 *          ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/mv.pin
 *
 * Path attributes are separated by ';', query attributes by '&', values are
 * percent-decoded.  Attributes we do not use (manufacturer, serial, id, ...)
 * are accepted and ignored so URIs printed by p11tool/pkcs11-tool work.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ks_internal.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode s[0..len) into a new string; -EINVAL on a bad escape or %00. */
static int pct_decode(const char *s, size_t len, char **out)
{
	char *d = malloc(len + 1);
	size_t i, j = 0;
	int rc = 0;

	if (!d)
		return -ENOMEM;
	for (i = 0; i < len; i++) {
		if (s[i] != '%') {
			d[j++] = s[i];
			continue;
		}
		if (i + 2 >= len) {
			rc = -EINVAL;
			goto out;
		}
		int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);

		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			rc = -EINVAL;
			goto out;
		}
		d[j++] = (char)(hi << 4 | lo);
		i += 2;
	}
	d[j] = '\0';
	*out = d;
	d = NULL;
out:
	free(d);
	return rc;
}

/* pin-source is a URI reference: file:/p, file:///p, file://localhost/p or a path */
static int pin_source_path(char *v, char **out)
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

static int set_once(char **field, char *val, const char *name, char *why, size_t whylen)
{
	if (*field) {
		free(val);
		return why_set(why, whylen, -EINVAL, "pkcs11 URI: attribute %s given twice", name);
	}
	*field = val;
	return 0;
}

static int handle_attr(struct pkcs11_uri *u, const char *name, size_t nlen, char *val,
		       int query, char *why, size_t whylen)
{
	char attr[64];
	int rc = 0;

	if (nlen == 0 || nlen >= sizeof(attr)) {
		free(val);
		return why_set(why, whylen, -EINVAL, "pkcs11 URI: malformed attribute");
	}
	memcpy(attr, name, nlen);
	attr[nlen] = '\0';
	if (!query && !strcmp(attr, "token")) {
		rc = set_once(&u->token, val, attr, why, whylen);
	} else if (!query && !strcmp(attr, "object")) {
		rc = set_once(&u->object, val, attr, why, whylen);
	} else if (!query && !strcmp(attr, "type")) {
		if (strcmp(val, "secret-key")) {
			/* shown in a one-line error: no control characters */
			for (char *p = val; *p; p++)
				if ((unsigned char)*p < 0x20 || *p == 0x7f)
					*p = '?';
			rc = why_set(why, whylen, -EINVAL,
				     "pkcs11 URI: type=%s, medvault needs a secret-key", val);
		}
		free(val);
	} else if (query && !strcmp(attr, "module-path")) {
		rc = set_once(&u->module_path, val, attr, why, whylen);
	} else if (query && !strcmp(attr, "pin-source")) {
		char *path = NULL;

		rc = pin_source_path(val, &path);
		free(val);
		if (rc < 0)
			return why_set(why, whylen, rc,
				       "pkcs11 URI: pin-source must be a local file (file:/path)");
		rc = set_once(&u->pin_file, path, attr, why, whylen);
	} else if (query && !strcmp(attr, "pin-value")) {
		free(val);
		rc = why_set(why, whylen, -EINVAL,
			     "pkcs11 URI: pin-value refused (a PIN on the command line leaks); "
			     "use pin-source=file:/path");
	} else if (query && !strcmp(attr, "module-name")) {
		free(val);
		rc = why_set(why, whylen, -EINVAL,
			     "pkcs11 URI: module-name is not supported; use module-path=/path/to/module.so");
	} else {
		free(val);	/* manufacturer, serial, id, slot-*, library-*, x-... */
	}
	return rc;
}

/* Parse "a=v<sep>b=v..." from s[0..len) */
static int parse_list(struct pkcs11_uri *u, const char *s, size_t len, char sep, int query,
		      char *why, size_t whylen)
{
	const char *end = s + len;
	int rc = 0;

	while (s < end) {
		const char *item_end = memchr(s, sep, (size_t)(end - s));
		const char *eq;
		char *val = NULL;

		if (!item_end)
			item_end = end;
		if (item_end == s) {	/* empty item, e.g. a trailing ';' */
			s++;
			continue;
		}
		eq = memchr(s, '=', (size_t)(item_end - s));
		if (!eq)
			return why_set(why, whylen, -EINVAL,
				       "pkcs11 URI: attribute without '=' value");
		if (pct_decode(eq + 1, (size_t)(item_end - eq - 1), &val) < 0)
			return why_set(why, whylen, -EINVAL, "pkcs11 URI: bad percent-encoding");
		rc = handle_attr(u, s, (size_t)(eq - s), val, query, why, whylen);
		if (rc < 0)
			return rc;
		s = item_end + 1;
	}
	return 0;
}

int pkcs11_uri_parse(const char *uri, struct pkcs11_uri *out, char *why, size_t whylen)
{
	struct pkcs11_uri u = { 0 };
	const char *path, *q;
	int rc;

	if (strncasecmp(uri, "pkcs11:", 7)) {
		rc = why_set(why, whylen, -EINVAL, "not a pkcs11: URI");
		goto out;
	}
	path = uri + 7;
	q = strchr(path, '?');
	rc = parse_list(&u, path, q ? (size_t)(q - path) : strlen(path), ';', 0, why, whylen);
	if (rc < 0)
		goto out;
	if (q && (rc = parse_list(&u, q + 1, strlen(q + 1), '&', 1, why, whylen)) < 0)
		goto out;
	*out = u;
	memset(&u, 0, sizeof(u));
out:
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
