/*
 * PKCS#11 slots against a real SoftHSM2 token in a mkdtemp directory (its
 * own SOFTHSM2_CONF).  A missing SoftHSM2 is a failure, not a skip.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/keystore.h"
#include "crypto/secure.h"
#include "../../../crypto/ks_internal.h"
#include "../../tap.h"

#include <p11-kit/pkcs11.h>

#define MODULE "/usr/lib/softhsm/libsofthsm2.so"

static char tmp[64], ks[128], conf[128], pin[128], badpin[128], pw[128], emptypin[128];
static char why[1024];

static const uint8_t uuid_a[16] = { 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
				    0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01 };
static const uint8_t uuid_b[16] = { 0x21, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
				    0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x02 };

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		perror(path);
		exit(2);
	}
	close(fd);
}

static uint8_t *read_whole(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *b;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	b = malloc((size_t)st.st_size + 1);
	if (read(fd, b, (size_t)st.st_size) != st.st_size) {
		free(b);
		b = NULL;
	}
	*len = (size_t)st.st_size;
	close(fd);
	return b;
}

static int dir_clean(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int clean = 1;

	if (!d)
		return 1;	/* nothing there at all is clean too */
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (n < 5 || strcmp(e->d_name + n - 5, ".keys"))
			clean = 0;
	}
	closedir(d);
	return clean;
}

static struct key_opts p11(const char *token, const char *key, const char *pinf)
{
	struct key_opts o = { .pkcs11_module = MODULE, .pkcs11_token = token,
			      .pkcs11_key = key, .pin_file = pinf };
	return o;
}

static int unlock(const char *dir, const uint8_t *uuid, const struct key_opts *o, const uint8_t *expect)
{
	uint8_t *mk = NULL;
	int rc;

	why[0] = '\0';
	rc = keystore_unlock(dir, uuid, o, &mk, why, sizeof(why));
	if (rc == 0 && expect && memcmp(mk, expect, KEYSTORE_MK_LEN))
		rc = -EILSEQ;
	keystore_key_free(mk);
	return rc;
}

static int setup_softhsm(void)
{
	char cmd[512];
	FILE *f;

	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", tmp);
	f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f, "directories.tokendir = %s/tokens\nobjectstore.backend = file\n"
		"log.level = ERROR\nslots.removable = false\n", tmp);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "%s/tokens", tmp);
	if (mkdir(cmd, 0700) < 0)
		return -1;
	setenv("SOFTHSM2_CONF", conf, 1);
	const char *labels[] = { "medvault", "other" };

	for (int i = 0; i < 2; i++) {
		snprintf(cmd, sizeof(cmd), "softhsm2-util --init-token --free --label %s "
			 "--pin 1234 --so-pin 5678 >/dev/null", labels[i]);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

/* How many secret keys labelled label the token holds (via our own module code). */
static int key_present(const char *token, const char *label)
{
	struct ks_p11 *p = NULL;
	unsigned long h;
	char w[256];
	int rc;

	if (ks_p11_open(MODULE, token, pin, 0, &p, w, sizeof(w)) < 0)
		return -1;
	rc = ks_p11_key_find(p, label, 0, &h, w, sizeof(w));
	ks_p11_close(p);
	return rc == 0;
}

static void test_roundtrip(const uint8_t *mk)
{
	struct key_opts o = p11("medvault", NULL, pin);
	struct key_opts any = p11(NULL, NULL, pin);
	char kpath[512];
	uint8_t *raw;
	size_t len;

	ok(key_present("medvault", KEYSTORE_DEFAULT_KEY_LABEL) == 0, "token starts without a KEK");
	ok(keystore_create(ks, uuid_a, &o, mk, why, sizeof(why)) == 0, "create pkcs11 keystore (%s)", why);
	ok(key_present("medvault", KEYSTORE_DEFAULT_KEY_LABEL) == 1, "init generated medvault-kek on the token");
	ok(unlock(ks, uuid_a, &o, mk) == 0, "unlock round trip gives MK back (%s)", why);
	ok(unlock(ks, uuid_a, &any, mk) == 0, "unlock without a token label uses the slot's token (%s)", why);
	keystore_path(ks, uuid_a, kpath, sizeof(kpath));
	raw = read_whole(kpath, &len);
	ok(raw && !memmem(raw, len, mk, KEYSTORE_MK_LEN), "keystore does not contain the raw MK");
	ok(raw && !memmem(raw, len, "1234", 4), "keystore does not contain the PIN");
	free(raw);

	struct keystore_slot_info *si = NULL;
	size_t n = 0;

	ok(keystore_list(ks, uuid_a, &si, &n, why, sizeof(why)) == 0 && n == 1 &&
	   si[0].kind == KEYSTORE_SLOT_PKCS11 && !strcmp(si[0].token, "medvault") &&
	   !strcmp(si[0].key, "medvault-kek") && !strcmp(si[0].module, MODULE),
	   "list shows module, token and key label");
	free(si);
}

static void test_errors(const uint8_t *mk)
{
	struct key_opts o;
	char ks2[160], kpa[512], kpb[512];
	uint8_t *raw;
	size_t len;

	o = p11("medvault", NULL, badpin);
	ok(unlock(ks, uuid_a, &o, NULL) == -EACCES && strstr(why, "wrong PIN"), "wrong PIN => -EACCES: %s", why);
	o = p11("medvault", NULL, emptypin);
	ok(unlock(ks, uuid_a, &o, NULL) == -EINVAL, "empty PIN file => -EINVAL: %s", why);
	o = p11("medvault", NULL, "/nonexistent/pin");
	ok(unlock(ks, uuid_a, &o, NULL) == -ENOENT, "missing PIN file => -ENOENT: %s", why);
	o = p11("medvault", NULL, pin);
	o.pkcs11_module = "/nonexistent/libpkcs11.so";
	ok(unlock(ks, uuid_a, &o, NULL) == -ENOENT, "missing module => -ENOENT: %s", why);
	o.pkcs11_module = "/lib/x86_64-linux-gnu/libc.so.6";
	ok(unlock(ks, uuid_a, &o, NULL) == -ELIBBAD && strstr(why, "not a PKCS#11 module"),
	   "libc is not a PKCS#11 module => -ELIBBAD: %s", why);
	o.pkcs11_module = conf;	/* not even an ELF file */
	ok(unlock(ks, uuid_a, &o, NULL) == -ELIBBAD, "a text file as module => -ELIBBAD: %s", why);
	o = p11("nosuchtoken", NULL, pin);
	ok(unlock(ks, uuid_a, &o, NULL) == -ENODEV && strstr(why, "nosuchtoken"),
	   "token not found => -ENODEV: %s", why);
	o = p11("other", NULL, pin);
	ok(unlock(ks, uuid_a, &o, NULL) == -ENOKEY && strstr(why, "medvault-kek"),
	   "key not found on the named token => -ENOKEY: %s", why);
	o = p11("medvault", "no-such-key", pin);
	ok(unlock(ks, uuid_a, &o, NULL) == -EACCES, "no slot for that key label => -EACCES: %s", why);
	o = p11("nosuchtoken", NULL, pin);
	snprintf(ks2, sizeof(ks2), "%s/ks-notoken", tmp);
	ok(keystore_create(ks2, uuid_a, &o, mk, why, sizeof(why)) == -ENODEV, "create on a missing token => -ENODEV");
	o = p11("medvault", NULL, badpin);
	ok(keystore_create(ks2, uuid_a, &o, mk, why, sizeof(why)) == -EACCES, "create with a wrong PIN => -EACCES");
	ok(dir_clean(ks2), "failed creates leave nothing in KSDIR");
	keystore_path(ks2, uuid_a, kpa, sizeof(kpa));
	ok(access(kpa, F_OK) < 0, "no keystore file after failed create");

	/* another volume's keystore */
	keystore_path(ks, uuid_a, kpa, sizeof(kpa));
	keystore_path(ks, uuid_b, kpb, sizeof(kpb));
	raw = read_whole(kpa, &len);
	if (raw) {
		write_file(kpb, raw, len);
		o = p11("medvault", NULL, pin);
		ok(unlock(ks, uuid_b, &o, NULL) == -EBADMSG && strstr(why, "another volume"),
		   "keystore of another volume => -EBADMSG: %s", why);
		unlink(kpb);
		/* corrupted / truncated */
		raw[len - 40] ^= 4;
		write_file(kpa, raw, len);
		ok(unlock(ks, uuid_a, &o, NULL) == -EBADMSG, "corrupted keystore => -EBADMSG: %s", why);
		raw[len - 40] ^= 4;
		write_file(kpa, raw, len - 1);
		ok(unlock(ks, uuid_a, &o, NULL) == -EBADMSG, "truncated keystore => -EBADMSG: %s", why);
		/*
		 * The AD really is authenticated by the token: edit the slot's
		 * creation time and fix the checksum.  If the module ignored the
		 * AAD, C_Decrypt would succeed and only the MAC would object.
		 */
		raw[32 + 4 + 1 + 1 + 7] ^= 1;
		secure_hash(raw + len - 32, raw, len - 32);
		write_file(kpa, raw, len);
		ok(unlock(ks, uuid_a, &o, NULL) == -EACCES && strstr(why, "does not open"),
		   "edited slot AD => token refuses the GCM tag: %s", why);
		raw[32 + 4 + 1 + 1 + 7] ^= 1;
		secure_hash(raw + len - 32, raw, len - 32);
		write_file(kpa, raw, len);
		ok(unlock(ks, uuid_a, &o, NULL) == 0, "restored keystore unlocks");
		free(raw);
	} else {
		ok(0, "read keystore");
	}
	ok(ks_p11_rv_errno(0xa0) == -EACCES && ks_p11_rv_errno(0xa4) == -EPERM &&
	   ks_p11_rv_errno(0x60) == -ENOKEY && ks_p11_rv_errno(0x5) == -EIO,
	   "CKR_PIN_INCORRECT -EACCES, CKR_PIN_LOCKED -EPERM, CKR_KEY_HANDLE_INVALID -ENOKEY");
}

static void test_uri(const uint8_t *mk)
{
	char uri[512];
	struct key_opts o = { 0 };

	snprintf(uri, sizeof(uri), "pkcs11:token=med%%76ault;object=medvault%%2Dkek;type=secret-key"
		 "?module-path=%s&pin-source=file:%s", MODULE, pin);
	o.pkcs11_uri = uri;
	ok(unlock(ks, uuid_a, &o, mk) == 0, "unlock via a pkcs11: URI (%s)", why);
	snprintf(uri, sizeof(uri), "pkcs11:token=medvault?module-path=%s", MODULE);
	o.pin_file = pin;
	ok(unlock(ks, uuid_a, &o, mk) == 0, "URI without object (default key) + --pin-file (%s)", why);
	o.pin_file = NULL;
	snprintf(uri, sizeof(uri), "pkcs11:token=medvault?module-path=%s&pin-source=file:%s", MODULE, badpin);
	ok(unlock(ks, uuid_a, &o, NULL) == -EACCES, "URI with a wrong PIN file => -EACCES");
}

static void test_slots(const uint8_t *mk)
{
	struct key_opts hsm = p11("medvault", NULL, pin);
	struct key_opts pass = { .passphrase_file = pw };
	struct key_opts rot = p11("medvault", "medvault-kek-2", pin);
	struct key_opts other = p11("other", "kek-other", pin);
	uint32_t id = 0;
	char cmd[512];

	ok(keystore_slot_add(ks, uuid_a, &hsm, &pass, &id, why, sizeof(why)) == 0 && id == 2,
	   "add a recovery passphrase slot with the HSM (%s)", why);
	ok(unlock(ks, uuid_a, &pass, mk) == 0, "passphrase slot opens");
	ok(keystore_slot_add(ks, uuid_a, &pass, &other, &id, why, sizeof(why)) == 0 && id == 3,
	   "add a slot on a second token with the passphrase (%s)", why);
	ok(unlock(ks, uuid_a, &other, mk) == 0, "second token's slot opens (%s)", why);
	ok(keystore_slot_remove(ks, uuid_a, &hsm, 3, why, sizeof(why)) == 0, "remove that slot");
	ok(unlock(ks, uuid_a, &other, NULL) == -EACCES, "removed slot no longer opens (%s)", why);

	/* rotation: slot 1 moves to a new key; the old one stays on the token */
	ok(keystore_rewrap(ks, uuid_a, &hsm, &rot, &id, why, sizeof(why)) == 0 && id == 1,
	   "rewrap slot 1 under medvault-kek-2 (%s)", why);
	ok(key_present("medvault", "medvault-kek-2") == 1, "new KEK generated on the token");
	ok(key_present("medvault", "medvault-kek") == 1, "old KEK untouched on the token");
	ok(unlock(ks, uuid_a, &rot, mk) == 0, "new key opens (%s)", why);
	ok(unlock(ks, uuid_a, &hsm, NULL) == -EACCES, "old key label no longer opens (%s)", why);

	/* the HSM key disappears: clear error, recovery through the passphrase */
	snprintf(cmd, sizeof(cmd), "pkcs11-tool --module %s --token-label medvault --login "
		 "--pin 1234 --delete-object --type secrkey --label medvault-kek-2 >/dev/null 2>&1",
		 MODULE);
	ok(system(cmd) == 0, "pkcs11-tool deleted medvault-kek-2");
	ok(key_present("medvault", "medvault-kek-2") == 0, "key is gone");
	ok(unlock(ks, uuid_a, &rot, NULL) == -ENOKEY && strstr(why, "medvault-kek-2"),
	   "HSM key deleted => -ENOKEY: %s", why);
	ok(unlock(ks, uuid_a, &pass, mk) == 0, "recovery passphrase still opens");
	ok(keystore_rewrap(ks, uuid_a, &rot, &hsm, &id, why, sizeof(why)) == -ENOKEY,
	   "cannot rewrap with the deleted key");
	ok(keystore_slot_add(ks, uuid_a, &pass, &hsm, &id, why, sizeof(why)) == 0 && id == 4,
	   "recovery: passphrase re-adds an HSM slot (%s)", why);
	ok(unlock(ks, uuid_a, &hsm, mk) == 0, "HSM unlock works again");
	ok(keystore_slot_remove(ks, uuid_a, &hsm, 1, why, sizeof(why)) == 0, "drop the dead slot 1");
	ok(dir_clean(ks), "no temp files left in KSDIR");
}

/*
 * Keys under our label made by someone else, with one attribute wrong.
 * This process opens its own session through the module (already
 * initialised here, so ks_p11_open shares it and does not finalize it),
 * generates the keys with CKM_AES_KEY_GEN and reads attributes back.
 */
static CK_FUNCTION_LIST_PTR fl;
static CK_SESSION_HANDLE sess;

static int own_session(void)
{
	CK_C_GetFunctionList getfl;
	CK_SLOT_ID slots[8];
	CK_ULONG n = 8;
	void *dl = dlopen(MODULE, RTLD_NOW | RTLD_LOCAL);

	if (!dl)
		return -1;
	*(void **)&getfl = dlsym(dl, "C_GetFunctionList");
	if (!getfl || getfl(&fl) != CKR_OK || fl->C_Initialize(NULL) != CKR_OK ||
	    fl->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
		return -1;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;

		if (fl->C_GetTokenInfo(slots[i], &ti) == CKR_OK && !memcmp(ti.label, "medvault ", 9) &&
		    fl->C_OpenSession(slots[i], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
				      &sess) == CKR_OK &&
		    fl->C_Login(sess, CKU_USER, (CK_UTF8CHAR_PTR)"1234", 4) == CKR_OK)
			return 0;
	}
	return -1;
}

/* an AES-256 key labelled label, with attribute `which` set to `val` */
static int odd_key(const char *label, CK_ATTRIBUTE_TYPE which, CK_BBOOL val)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_KEY_TYPE kt = CKK_AES;
	CK_ULONG len = 32;
	CK_BBOOL v[5] = { CK_TRUE, CK_TRUE, CK_FALSE, CK_TRUE, CK_TRUE };
	CK_ATTRIBUTE_TYPE types[5] = { CKA_TOKEN, CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_ENCRYPT, CKA_DECRYPT };
	CK_ATTRIBUTE t[9] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
		{ CKA_VALUE_LEN, &len, sizeof(len) },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_MECHANISM mech = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_OBJECT_HANDLE h;

	for (int i = 0; i < 5; i++) {
		if (types[i] == which)
			v[i] = val;
		t[4 + i].type = types[i];
		t[4 + i].pValue = &v[i];
		t[4 + i].ulValueLen = sizeof(v[i]);
	}
	return fl->C_GenerateKey(sess, &mech, t, 9, &h) == CKR_OK ? 0 : -1;
}

/* attribute a of the one key labelled label: 1, 0, or -1 */
static int key_attr(const char *label, CK_ATTRIBUTE_TYPE a)
{
	CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_LABEL, (void *)label, strlen(label) } };
	CK_OBJECT_HANDLE h;
	CK_ULONG n = 0;
	CK_BBOOL v = 0;
	CK_ATTRIBUTE q = { a, &v, sizeof(v) };

	if (fl->C_FindObjectsInit(sess, t, 2) != CKR_OK)
		return -1;
	fl->C_FindObjects(sess, &h, 1, &n);
	fl->C_FindObjectsFinal(sess);
	if (n != 1 || fl->C_GetAttributeValue(sess, h, &q, 1) != CKR_OK)
		return -1;
	return v ? 1 : 0;
}

static void test_key_attributes(const uint8_t *mk)
{
	static const struct {
		const char *label, *name;
		CK_ATTRIBUTE_TYPE a;
		CK_BBOOL v;
	} bad[] = {
		{ "kek-extractable", "CKA_EXTRACTABLE=true", CKA_EXTRACTABLE, CK_TRUE },
		{ "kek-not-sensitive", "CKA_SENSITIVE=false", CKA_SENSITIVE, CK_FALSE },
		{ "kek-session", "CKA_TOKEN=false", CKA_TOKEN, CK_FALSE },
		{ "kek-no-encrypt", "CKA_ENCRYPT=false", CKA_ENCRYPT, CK_FALSE },
		{ "kek-no-decrypt", "CKA_DECRYPT=false", CKA_DECRYPT, CK_FALSE },
	};
	const uint8_t uuid_c[16] = { 0xc0, 0xc1 };
	char ks3[160], kp[512];

	if (!ok(own_session() == 0, "a session of our own on token medvault"))
		return;
	/* what medvault itself generated (test_roundtrip's init) */
	ok(key_attr(KEYSTORE_DEFAULT_KEY_LABEL, CKA_TOKEN) == 1 &&
	   key_attr(KEYSTORE_DEFAULT_KEY_LABEL, CKA_PRIVATE) == 1 &&
	   key_attr(KEYSTORE_DEFAULT_KEY_LABEL, CKA_SENSITIVE) == 1 &&
	   key_attr(KEYSTORE_DEFAULT_KEY_LABEL, CKA_EXTRACTABLE) == 0 &&
	   key_attr(KEYSTORE_DEFAULT_KEY_LABEL, CKA_ENCRYPT) == 1 &&
	   key_attr(KEYSTORE_DEFAULT_KEY_LABEL, CKA_DECRYPT) == 1,
	   "the key init made: token, private, sensitive, not extractable, encrypt, decrypt");
	snprintf(ks3, sizeof(ks3), "%s/ks-attrs", tmp);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct key_opts o = p11("medvault", bad[i].label, pin);

		if (!ok(odd_key(bad[i].label, bad[i].a, bad[i].v) == 0, "made %s with %s",
			bad[i].label, bad[i].name))
			continue;
		why[0] = '\0';
		ok(keystore_create(ks3, uuid_c, &o, mk, why, sizeof(why)) == -EKEYREJECTED &&
		   strstr(why, bad[i].name) && !strchr(why, '\n'),
		   "init with %s refused, one line naming it: %s", bad[i].label, why);
	}
	keystore_path(ks3, uuid_c, kp, sizeof(kp));
	ok(access(kp, F_OK) < 0 && dir_clean(ks3), "no keystore written for a refused key");
	/* the slot's key swapped on the token for an extractable one */
	{
		struct key_opts o = p11("medvault", NULL, pin);
		CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
		CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) },
				     { CKA_LABEL, KEYSTORE_DEFAULT_KEY_LABEL, strlen(KEYSTORE_DEFAULT_KEY_LABEL) } };
		CK_OBJECT_HANDLE h;
		CK_ULONG n = 0;

		if (fl->C_FindObjectsInit(sess, t, 2) == CKR_OK) {
			fl->C_FindObjects(sess, &h, 1, &n);
			fl->C_FindObjectsFinal(sess);
		}
		ok(n == 1 && fl->C_DestroyObject(sess, h) == CKR_OK &&
		   odd_key(KEYSTORE_DEFAULT_KEY_LABEL, CKA_EXTRACTABLE, CK_TRUE) == 0,
		   "medvault-kek replaced by an extractable key");
		ok(unlock(ks, uuid_a, &o, NULL) == -EKEYREJECTED && strstr(why, "CKA_EXTRACTABLE=true"),
		   "unlock refuses it, naming the attribute: %s", why);
	}
	fl->C_Logout(sess);
	fl->C_CloseSession(sess);
}

/* A PIN file open to others is refused, naming it; --insecure-perms takes it. */
static void test_pin_perms(const uint8_t *mk)
{
	struct key_opts o = p11("medvault", NULL, pin);

	chmod(pin, 0640);
	ok(unlock(ks, uuid_a, &o, NULL) == -EPERM && strstr(why, "PIN file") &&
	   strstr(why, "0640") && strstr(why, "--insecure-perms"), "PIN file 0640 refused: %s", why);
	o.insecure_perms = 1;
	ok(unlock(ks, uuid_a, &o, mk) == 0, "--insecure-perms accepts it (%s)", why);
	chmod(pin, 0600);
}

int main(void)
{
	uint8_t mk[KEYSTORE_MK_LEN];
	char cmd[128];

	if (secure_init() < 0)
		return 2;
	if (!freopen("/dev/null", "r", stdin))
		return 2;
	keystore_pwhash_cost(1, 8192);
	ok(access(MODULE, R_OK) == 0, "SoftHSM2 module present at " MODULE " (scripts/install-deps.sh)");
	snprintf(tmp, sizeof(tmp), "/tmp/mv-p11-XXXXXX");
	if (!mkdtemp(tmp))
		return 2;
	snprintf(ks, sizeof(ks), "%s/keystore", tmp);
	snprintf(pin, sizeof(pin), "%s/user.pin", tmp);
	snprintf(badpin, sizeof(badpin), "%s/bad.pin", tmp);
	snprintf(emptypin, sizeof(emptypin), "%s/empty.pin", tmp);
	snprintf(pw, sizeof(pw), "%s/recovery.pw", tmp);
	write_file(pin, "1234\n", 5);
	write_file(badpin, "0000\n", 5);
	write_file(emptypin, "\n", 1);
	write_file(pw, "recovery passphrase", 19);
	ok(setup_softhsm() == 0, "SoftHSM2 tokens initialised in %s", tmp);
	secure_random(mk, sizeof(mk));

	test_roundtrip(mk);
	test_errors(mk);
	test_uri(mk);
	test_slots(mk);
	test_pin_perms(mk);
	test_key_attributes(mk);

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmp);
	return tap_done();
}
