/*
 * volconf: STORE/medvault.conf save/load/verify, and every way a card can
 * be wrong: another master key, an edited byte anywhere, truncation, a
 * missing file, a newer format, garbage lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/aead.h"
#include "crypto/secure.h"
#include "store/volconf.h"
#include "../../tap.h"

static char tmp[64], store[128], conf[192], why[512];
static char orig[4096];
static size_t orig_len;

static void write_file(const char *path, const void *s, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, s, len) != (ssize_t)len) {
		perror(path);
		exit(2);
	}
	close(fd);
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	return (size_t)n;
}

/* load + verify: 0 only when both succeed */
static int load_verify(const uint8_t *mk, int *load_rc)
{
	struct volconf vc;
	int rc;

	why[0] = '\0';
	rc = volconf_load(store, &vc, why, sizeof(why));
	if (load_rc)
		*load_rc = rc;
	if (rc < 0)
		return rc;
	rc = volconf_verify(&vc, mk);
	volconf_release(&vc);
	return rc;
}

/* Replace the first occurrence of from with to in the saved card. */
static void write_edited(const char *from, const char *to)
{
	char buf[4096], *p = strstr(orig, from);
	size_t pre;

	if (!p) {
		fprintf(stderr, "no %s in card\n", from);
		exit(2);
	}
	pre = (size_t)(p - orig);
	memcpy(buf, orig, pre);
	strcpy(buf + pre, to);
	strcat(buf, p + strlen(from));
	write_file(conf, buf, strlen(buf));
}

int main(void)
{
	uint8_t mk[32], mk2[32];
	struct volconf vc, in;
	char hex[33];
	int rc, lrc;

	if (secure_init() < 0)
		return 2;
	snprintf(tmp, sizeof(tmp), "/tmp/mv-vc-XXXXXX");
	if (!mkdtemp(tmp))
		return 2;
	snprintf(store, sizeof(store), "%s/store", tmp);
	snprintf(conf, sizeof(conf), "%s/%s", store, VOLCONF_NAME);
	if (mkdir(store, 0700) < 0)
		return 2;
	secure_random(mk, sizeof(mk));
	secure_random(mk2, sizeof(mk2));

	/* missing */
	why[0] = '\0';
	rc = volconf_load(store, &in, why, sizeof(why));
	ok(rc == -ENOENT, "missing card -ENOENT (%d)", rc);
	ok(strstr(why, "not a medvault store") != NULL, "missing card explained: %s", why);

	/* round trip */
	memset(&vc, 0, sizeof(vc));
	vc.format = VOLCONF_FORMAT;
	secure_random(vc.uuid, sizeof(vc.uuid));
	vc.cipher = AEAD_XCHACHA20POLY1305;
	vc.chunk_size = 65536;
	vc.pack_size = 64ull << 20;
	vc.created = 1700000000;
	ok(volconf_save(store, &vc, mk) == 0, "save");
	orig_len = read_file(conf, orig, sizeof(orig));
	ok(orig_len > 0 && orig[orig_len - 1] == '\n', "card written, newline-terminated");
	{
		struct stat st;

		ok(stat(conf, &st) == 0 && (st.st_mode & 0777) == 0600, "card mode 0600");
	}
	rc = volconf_load(store, &in, why, sizeof(why));
	ok(rc == 0, "load (%d %s)", rc, rc ? why : "");
	if (rc == 0) {
		ok(in.format == vc.format, "format round trip");
		ok(!memcmp(in.uuid, vc.uuid, 16), "uuid round trip");
		ok(in.cipher == vc.cipher, "cipher round trip");
		ok(in.chunk_size == vc.chunk_size, "chunk_size round trip");
		ok(in.pack_size == vc.pack_size, "pack_size round trip");
		ok(in.created == vc.created, "created round trip");
		ok(in.text && in.text_len > 0 && in.text_len < orig_len &&
		   !strncmp(orig + in.text_len, "mac=", 4), "text_len covers everything before mac=");
		ok(volconf_verify(&in, mk) == 0, "verify with the right MK");
		ok(volconf_verify(&in, mk2) == -EBADMSG, "verify with another MK -EBADMSG");
		volconf_release(&in);
		ok(in.text == NULL, "release clears text");
		volconf_release(&in);	/* twice is harmless */
	}
	volconf_uuid_hex(vc.uuid, hex);
	ok(strlen(hex) == 32 && strstr(orig, hex) != NULL, "uuid_hex is what the card holds");
	for (int i = 0; i < 32; i++)
		if (!((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'))) {
			ok(0, "uuid_hex lowercase hex");
			break;
		}

	/* AES and negative created also round trip */
	vc.cipher = AEAD_AES256GCM;
	vc.created = -5;
	vc.chunk_size = 4096;
	vc.pack_size = 1u << 20;
	ok(volconf_save(store, &vc, mk) == 0, "save variant");
	rc = volconf_load(store, &in, why, sizeof(why));
	ok(rc == 0 && in.cipher == AEAD_AES256GCM && in.created == -5 && in.chunk_size == 4096 &&
	   in.pack_size == (1u << 20) && volconf_verify(&in, mk) == 0, "variant round trip");
	if (rc == 0)
		volconf_release(&in);
	write_file(conf, orig, orig_len);	/* back to the first card */

	/* flip a byte inside a value that still parses: mac catches it */
	{
		char buf[64];

		snprintf(buf, sizeof(buf), "created=%d", 1700000000);
		write_edited(buf, "created=1700000001");
		rc = load_verify(mk, &lrc);
		ok(lrc == 0 && rc == -EBADMSG, "edited created= parses but fails verify (%d/%d)", lrc, rc);
		write_edited("chunk_size=65536", "chunk_size=32768");
		rc = load_verify(mk, &lrc);
		ok(lrc == 0 && rc == -EBADMSG, "edited chunk_size= parses but fails verify (%d/%d)", lrc, rc);
		write_edited("cipher=xchacha20poly1305", "cipher=aes256gcm");
		rc = load_verify(mk, &lrc);
		ok(lrc == 0 && rc == -EBADMSG, "cipher downgrade/switch fails verify (%d/%d)", lrc, rc);
		write_edited("# medvault", "# MEDVAULT");
		rc = load_verify(mk, &lrc);
		ok(lrc == 0 && rc == -EBADMSG, "edited comment fails verify (mac covers it) (%d/%d)", lrc, rc);
	}

	/* flip every byte of the card in turn: nothing may load and verify */
	{
		size_t accepted = 0, first = 0;
		char buf[4096];

		for (size_t i = 0; i < orig_len; i++) {
			memcpy(buf, orig, orig_len);
			buf[i] ^= 0x01;
			write_file(conf, buf, orig_len);
			if (load_verify(mk, NULL) == 0 && !accepted++)
				first = i;
		}
		ok(accepted == 0, "every one-byte edit of the %zu-byte card is refused (%zu accepted, first at %zu)",
		   orig_len, accepted, first);
	}

	/* truncation */
	{
		size_t cuts[] = { 0, 1, 10, orig_len / 2, orig_len - 66, orig_len - 40, orig_len - 2 };
		size_t bad = 0;

		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
			write_file(conf, orig, cuts[i]);
			rc = load_verify(mk, &lrc);
			if (rc == 0)
				bad++;
			ok(rc < 0, "card truncated to %zu bytes refused (%d)", cuts[i], rc);
		}
		write_file(conf, orig, orig_len - 66);	/* up to the mac line */
		rc = volconf_load(store, &in, why, sizeof(why));
		ok(rc == -EBADMSG && strstr(why, "corrupt"), "card without mac line -EBADMSG (%s)", why);
		if (rc == 0)
			volconf_release(&in);
	}

	/* newer format: refused as such, before (and regardless of) the mac */
	{
		char buf[32], cur[32];

		snprintf(buf, sizeof(buf), "format=%d\n", VOLCONF_FORMAT + 1);
		snprintf(cur, sizeof(cur), "format=%d\n", VOLCONF_FORMAT);
		write_edited(cur, buf);
		rc = volconf_load(store, &in, why, sizeof(why));
		ok(rc == -EPROTONOSUPPORT, "format=%d -EPROTONOSUPPORT (%d)", VOLCONF_FORMAT + 1, rc);
		ok(strstr(why, "newer") != NULL, "newer format explained: %s", why);
		if (rc == 0)
			volconf_release(&in);
		write_edited(cur, "format=999\n");
		rc = volconf_load(store, &in, why, sizeof(why));
		ok(rc == -EPROTONOSUPPORT, "format=999 -EPROTONOSUPPORT (%d)", rc);
		if (rc == 0)
			volconf_release(&in);
		write_edited(cur, "format=0\n");
		rc = volconf_load(store, &in, why, sizeof(why));
		ok(rc == -EBADMSG, "format=0 -EBADMSG (%d)", rc);
		if (rc == 0)
			volconf_release(&in);
		write_edited(cur, "format=1x\n");
		rc = volconf_load(store, &in, why, sizeof(why));
		ok(rc == -EBADMSG, "format=1x -EBADMSG (%d)", rc);
		if (rc == 0)
			volconf_release(&in);
	}

	/* garbage */
	{
		const char *cases[][2] = {
			{ "uuid=", "garbage\nuuid=" },
			{ "mac=", "garbage line\nmac=" },
			{ "\ncipher=", "\nformat\ncipher=" },
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			write_edited(cases[i][0], cases[i][1]);
			rc = volconf_load(store, &in, why, sizeof(why));
			ok(rc == -EBADMSG, "garbage line %zu -EBADMSG (%d)", i, rc);
			if (rc == 0)
				volconf_release(&in);
		}
		/* a line after the mac */
		{
			char buf[4096];

			memcpy(buf, orig, orig_len);
			strcpy(buf + orig_len, "format=1\n");
			write_file(conf, buf, strlen(buf));
			rc = volconf_load(store, &in, why, sizeof(why));
			ok(rc == -EBADMSG, "key=value after the mac -EBADMSG (%d)", rc);
			if (rc == 0)
				volconf_release(&in);
		}
		/* embedded NUL */
		{
			char buf[4096];

			memcpy(buf, orig, orig_len);
			buf[3] = '\0';
			write_file(conf, buf, orig_len);
			rc = volconf_load(store, &in, why, sizeof(why));
			ok(rc == -EBADMSG, "embedded NUL -EBADMSG (%d)", rc);
			if (rc == 0)
				volconf_release(&in);
		}
		/* bad uuid / mac hex */
		write_edited("uuid=", "uuid=zz");
		rc = volconf_load(store, &in, why, sizeof(why));
		ok(rc == -EBADMSG, "bad uuid -EBADMSG (%d)", rc);
		if (rc == 0)
			volconf_release(&in);
		write_edited("mac=", "mac=00");
		rc = volconf_load(store, &in, why, sizeof(why));
		ok(rc == -EBADMSG, "mac of wrong length -EBADMSG (%d)", rc);
		if (rc == 0)
			volconf_release(&in);
		write_edited("cipher=xchacha20poly1305", "cipher=rot13");
		rc = volconf_load(store, &in, why, sizeof(why));
		ok(rc == -EBADMSG, "unknown cipher -EBADMSG (%d)", rc);
		if (rc == 0)
			volconf_release(&in);
		write_edited("chunk_size=65536", "chunk_size=65537");
		rc = volconf_load(store, &in, why, sizeof(why));
		ok(rc == -EBADMSG, "chunk_size not a power of two -EBADMSG (%d)", rc);
		if (rc == 0)
			volconf_release(&in);
		write_edited("\ncreated=", "\nCREATED=");
		rc = volconf_load(store, &in, why, sizeof(why));
		ok(rc == -EBADMSG, "missing created= -EBADMSG (%d)", rc);
		if (rc == 0)
			volconf_release(&in);
	}

	/* a directory, not a file */
	unlink(conf);
	mkdir(conf, 0700);
	rc = volconf_load(store, &in, why, sizeof(why));
	ok(rc < 0 && rc != -ENOENT, "medvault.conf that is a directory refused (%d)", rc);
	if (rc == 0)
		volconf_release(&in);
	rmdir(conf);

	/* too big */
	{
		static char big[20000];

		memset(big, '#', sizeof(big));
		big[sizeof(big) - 1] = '\n';
		write_file(conf, big, sizeof(big));
		rc = volconf_load(store, &in, why, sizeof(why));
		ok(rc < 0, "oversized card refused (%d)", rc);
		if (rc == 0)
			volconf_release(&in);
	}

	/* save into a missing store directory fails */
	{
		char missing[200];

		snprintf(missing, sizeof(missing), "%s/nope", tmp);
		ok(volconf_save(missing, &vc, mk) < 0, "save into a missing directory fails");
	}

	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", tmp);
	return tap_done();
}
