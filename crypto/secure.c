#include "crypto/secure.h"

#include <errno.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/resource.h>

int secure_init(void)
{
	return sodium_init() < 0 ? -EIO : 0;
}

void secure_harden_process(void)
{
	struct rlimit no_core = { 0, 0 };

	/* A core dump or a debugger attach would expose the master key. */
	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

void *secure_alloc(size_t len)
{
	return sodium_malloc(len);
}

void secure_free(void *p)
{
	if (p)
		sodium_free(p);
}

void secure_readonly(void *p)
{
	sodium_mprotect_readonly(p);
}

void secure_wipe(void *p, size_t len)
{
	sodium_memzero(p, len);
}

void secure_random(void *buf, size_t len)
{
	randombytes_buf(buf, len);
}

uint64_t secure_random_u64(void)
{
	uint64_t v;

	randombytes_buf(&v, sizeof(v));
	return v;
}

int secure_memcmp(const void *a, const void *b, size_t len)
{
	return sodium_memcmp(a, b, len);
}

void secure_mac(uint8_t out[32], const uint8_t key[32], const void *data, size_t len)
{
	crypto_auth_hmacsha512256(out, data, len, key);
}

void secure_hash(uint8_t out[32], const void *data, size_t len)
{
	crypto_generichash(out, 32, data, len, NULL, 0);
}

void secure_hex(char *out, const uint8_t *bin, size_t len)
{
	sodium_bin2hex(out, len * 2 + 1, bin, len);
}

int secure_unhex(uint8_t *out, size_t outlen, const char *hex, size_t hexlen)
{
	size_t got = 0;

	if (sodium_hex2bin(out, outlen, hex, hexlen, NULL, &got, NULL) != 0 || got != outlen)
		return -EINVAL;
	return 0;
}
