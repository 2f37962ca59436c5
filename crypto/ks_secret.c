/*
 * ks_secret: where passphrases and PINs come from (a file, or a no-echo
 * prompt on a terminal; never argv or the environment, which other users
 * can read through /proc), and how command-line key options become one
 * resolved key source.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "ks_internal.h"
#include "util/fileutil.h"

int key_opts_given(const struct key_opts *opts)
{
	return opts && (opts->passphrase_file || opts->pkcs11_module || opts->pkcs11_uri);
}

static int dup_opt(char **dst, const char *src)
{
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

int ks_source_resolve(const struct key_opts *opts, struct ks_source *src,
		      char *why, size_t whylen)
{
	struct ks_source s = { 0 };
	struct pkcs11_uri u = { 0 };
	int n = 0, rc = 0;

	n = !!opts->passphrase_file + !!opts->pkcs11_module + !!opts->pkcs11_uri;
	if (n != 1) {
		rc = why_set(why, whylen, -EINVAL, n ? "give only one of --passphrase-file, "
			     "--pkcs11-module and --pkcs11-uri"
			     : "no key given: use --passphrase-file, --pkcs11-module or --pkcs11-uri");
		goto out;
	}
	if (opts->passphrase_file) {
		if (opts->pin_file || opts->pkcs11_token || opts->pkcs11_key) {
			rc = why_set(why, whylen, -EINVAL,
				     "--pin-file/--pkcs11-token/--pkcs11-key need --pkcs11-module");
			goto out;
		}
		s.kind = KEYSTORE_SLOT_PASSPHRASE;
		s.insecure_perms = opts->insecure_perms;
		rc = dup_opt(&s.passphrase_file, opts->passphrase_file);
		goto done;
	}
	s.kind = KEYSTORE_SLOT_PKCS11;
	s.insecure_perms = opts->insecure_perms;
	if (opts->pkcs11_uri) {
		if ((rc = pkcs11_uri_parse(opts->pkcs11_uri, &u, why, whylen)) < 0)
			goto out;
		if (opts->pkcs11_token || opts->pkcs11_key) {
			rc = why_set(why, whylen, -EINVAL, "with --pkcs11-uri, give the token and "
				     "key in the URI (token=...;object=...)");
			goto out;
		}
		if (u.pin_file && opts->pin_file) {
			rc = why_set(why, whylen, -EINVAL,
				     "both the URI's pin-source and --pin-file name a PIN file");
			goto out;
		}
		if (!u.module_path) {
			rc = why_set(why, whylen, -EINVAL,
				     "pkcs11 URI has no module-path=/path/to/module.so");
			goto out;
		}
		s.module = u.module_path;
		s.token = u.token;
		s.key = u.object;
		s.pin_file = u.pin_file;
		memset(&u, 0, sizeof(u));
		if (!s.pin_file && (rc = dup_opt(&s.pin_file, opts->pin_file)) < 0)
			goto out;
	} else {
		if ((rc = dup_opt(&s.module, opts->pkcs11_module)) < 0 ||
		    (rc = dup_opt(&s.token, opts->pkcs11_token)) < 0 ||
		    (rc = dup_opt(&s.key, opts->pkcs11_key)) < 0 ||
		    (rc = dup_opt(&s.pin_file, opts->pin_file)) < 0)
			goto out;
	}
	if (!s.pin_file) {
		rc = why_set(why, whylen, -EINVAL, "a PKCS#11 key needs --pin-file F "
			     "(or pin-source=file:F in the URI)");
		goto out;
	}
	if (!s.key && (rc = dup_opt(&s.key, KEYSTORE_DEFAULT_KEY_LABEL)) < 0)
		goto out;
	if (!*s.key || strlen(s.key) > KS_LABEL_MAX) {
		rc = why_set(why, whylen, -EINVAL, "PKCS#11 key label must be 1..%d bytes",
			     KS_LABEL_MAX);
		goto out;
	}
	if (s.token && (!*s.token || strlen(s.token) > KS_TOKEN_MAX)) {
		rc = why_set(why, whylen, -EINVAL, "PKCS#11 token label must be 1..%d bytes",
			     KS_TOKEN_MAX);
		goto out;
	}
	if (strlen(s.module) > KS_PATH_MAX) {
		rc = why_set(why, whylen, -ENAMETOOLONG, "PKCS#11 module path too long");
		goto out;
	}
done:
	if (rc == 0) {
		*src = s;
		memset(&s, 0, sizeof(s));
	}
out:
	if (rc == -ENOMEM)
		why_set(why, whylen, rc, "out of memory");
	pkcs11_uri_release(&u);
	ks_source_release(&s);
	return rc;
}

void ks_source_release(struct ks_source *src)
{
	free(src->passphrase_file);
	free(src->module);
	free(src->token);
	free(src->key);
	free(src->pin_file);
	memset(src, 0, sizeof(*src));
}

/* Read one line from the terminal without echo into buf[cap]; -errno. */
static int prompt_line(const char *prompt, char *buf, size_t cap, size_t *len)
{
	struct termios old, quiet;
	int restore = 0, rc = 0;
	size_t n = 0;
	char c;

	fprintf(stderr, "%s", prompt);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		quiet.c_lflag |= ICANON;
		restore = tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
	}
	for (;;) {
		ssize_t r = read(STDIN_FILENO, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		if (r == 0 || c == '\n')
			break;
		if (n + 1 >= cap) {
			rc = -EFBIG;
			break;
		}
		buf[n++] = c;
	}
	c = 0;
	if (restore)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fprintf(stderr, "\n");
	buf[n] = '\0';
	*len = n;
	return rc;
}

int ks_perms_check(int fd, const char *path, const char *what, int allow,
		   char *why, size_t whylen)
{
	struct stat st;

	if (allow)
		return 0;
	if (fstat(fd, &st) < 0)
		return why_set(why, whylen, -errno, "%s %s: %s", what, path, strerror(errno));
	if (st.st_mode & 077)
		return why_set(why, whylen, -EPERM, "%s %s is open to group or others (mode %04o): "
			       "chmod 600 it, " KS_PERMS_HINT, what, path,
			       (unsigned)(st.st_mode & 07777));
	return 0;
}

int ks_dir_perms_check(int dirfd, const char *dir, int allow, char *why, size_t whylen)
{
	struct stat st;

	if (allow)
		return 0;
	if (fstat(dirfd, &st) < 0)
		return why_set(why, whylen, -errno, "keystore directory %s: %s", dir, strerror(errno));
	if (st.st_mode & 022)
		return why_set(why, whylen, -EPERM, "keystore directory %s is writable by group or "
			       "others (mode %04o): chmod 700 it", dir,
			       (unsigned)(st.st_mode & 07777));
	return 0;
}

/* 0, -errno of open/read, or -EPERM (why set) from ks_perms_check */
static int read_file_secret(const char *path, const char *what, int flags, char *buf,
			    size_t cap, size_t *len, char *why, size_t whylen)
{
	char label[64];
	ssize_t n;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	snprintf(label, sizeof(label), "%s file", what);
	rc = ks_perms_check(fd, path, label, flags & KS_SECRET_ANY_PERMS, why, whylen);
	if (rc < 0) {
		close(fd);
		return rc == -EPERM ? rc : -EIO;
	}
	n = read_full(fd, buf, cap);
	close(fd);
	if (n < 0)
		return (int)n;
	*len = (size_t)n;
	return 0;
}

int ks_secret_read(const char *path, const char *what, int flags,
		   char **out, size_t *outlen, char *why, size_t whylen)
{
	/* +2: room to notice an over-long secret and a trailing newline */
	const size_t cap = KS_SECRET_MAX + 2;
	char *buf = NULL, *again = NULL;
	size_t len = 0, len2 = 0;
	int rc = 0;

	buf = sodium_malloc(cap + 1);
	if (!buf) {
		rc = why_set(why, whylen, -ENOMEM, "out of memory");
		goto out;
	}
	if (!strcmp(path, "-")) {
		char prompt[96];

		if (!isatty(STDIN_FILENO)) {
			rc = why_set(why, whylen, -EINVAL, "%s file \"-\" needs a terminal on "
				     "stdin; give a file instead", what);
			goto out;
		}
		snprintf(prompt, sizeof(prompt), "%s: ", what);
		if ((rc = prompt_line(prompt, buf, cap, &len)) < 0)
			goto fail_read;
		if (flags & KS_SECRET_CONFIRM) {
			if (!(again = sodium_malloc(cap + 1))) {
				rc = why_set(why, whylen, -ENOMEM, "out of memory");
				goto out;
			}
			snprintf(prompt, sizeof(prompt), "%s (again): ", what);
			if ((rc = prompt_line(prompt, again, cap, &len2)) < 0)
				goto fail_read;
			if (len != len2 || sodium_memcmp(buf, again, len) != 0) {
				rc = why_set(why, whylen, -EINVAL, "the two %ss differ", what);
				goto out;
			}
		}
	} else {
		if ((rc = read_file_secret(path, what, flags, buf, cap, &len, why, whylen)) == -EPERM)
			goto out;
		if (rc < 0)
			goto fail_read;
		if (len > 0 && buf[len - 1] == '\n')
			len--;
	}
	if (len > KS_SECRET_MAX) {
		rc = why_set(why, whylen, -EFBIG, "%s in %s is longer than %d bytes",
			     what, path, KS_SECRET_MAX);
		goto out;
	}
	if (len == 0) {
		rc = why_set(why, whylen, -EINVAL, "%s from %s is empty", what, path);
		goto out;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
	goto out;
fail_read:
	if (rc == -EFBIG)
		why_set(why, whylen, rc, "%s is longer than %d bytes", what, KS_SECRET_MAX);
	else
		why_set(why, whylen, rc, "cannot read %s file %s: %s", what, path, strerror(-rc));
out:
	ks_secret_free(buf);	/* sodium_free wipes */
	ks_secret_free(again);
	return rc;
}

void ks_secret_free(char *s)
{
	if (s)
		sodium_free(s);
}
