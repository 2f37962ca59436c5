#include "crypto/aead.h"
#include "gcm_bulk.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <sodium.h>

struct aead {
	enum aead_cipher cipher;
	/* AES-GCM keeps an expanded key schedule; it must stay 16-byte aligned,
	 * which sodium_malloc guarantees. */
	crypto_aead_aes256gcm_state gcm;
	uint8_t key[32];
};

/*
 * Items of at least this many bytes go through libcrypto (gcm_bulk.c);
 * below it libsodium's precomputed key schedule wins over a fresh
 * context per call (both measured on 4-64 KiB items).
 */
static size_t bulk_min = 16384;

void aead_set_bulk_min(size_t n)
{
	bulk_min = n;
}

#define GCM_NONCE crypto_aead_aes256gcm_NPUBBYTES
#define GCM_TAG crypto_aead_aes256gcm_ABYTES
#define XC_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define XC_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES

/*
 * Nonces: libsodium's randombytes_buf makes one getrandom(2) call per
 * nonce, a syscall on every sealed record.  Instead each thread keeps a
 * ChaCha20 key drawn from the kernel once and emits the keystream for an
 * incrementing counter: unpredictable, and never repeating within a
 * thread.  A forked child redraws the key so parent and child never share
 * a stream; fork is noticed with an atfork handler rather than getpid(),
 * which glibc no longer caches and which cost a syscall per record.
 */
struct nonce_gen {
	int seeded;
	uint64_t counter;
	uint8_t key[crypto_stream_chacha20_ietf_KEYBYTES];
};

static _Thread_local struct nonce_gen nonce_gen;
static pthread_once_t nonce_once = PTHREAD_ONCE_INIT;

/* only the forking thread lives on in the child, so its state is all
 * there is to forget */
static void nonce_forget_in_child(void)
{
	sodium_memzero(&nonce_gen, sizeof(nonce_gen));
}

static void nonce_register_fork(void)
{
	pthread_atfork(NULL, NULL, nonce_forget_in_child);
}

static void nonce_fill(uint8_t *out, size_t len)
{
	struct nonce_gen *g = &nonce_gen;
	uint8_t n[crypto_stream_chacha20_ietf_NONCEBYTES] = { 0 };

	if (!g->seeded || g->counter >= (1ull << 62)) {
		pthread_once(&nonce_once, nonce_register_fork);
		randombytes_buf(g->key, sizeof(g->key));
		g->seeded = 1;
		g->counter = 0;
	}
	memcpy(n, &g->counter, sizeof(g->counter));
	g->counter++;
	crypto_stream_chacha20_ietf(out, len, n, g->key);
}

enum aead_cipher aead_cipher_best(void)
{
	return crypto_aead_aes256gcm_is_available() ? AEAD_AES256GCM : AEAD_XCHACHA20POLY1305;
}

const char *aead_cipher_name(enum aead_cipher c)
{
	switch (c) {
	case AEAD_XCHACHA20POLY1305: return "xchacha20poly1305";
	case AEAD_AES256GCM: return "aes256gcm";
	}
	return "unknown";
}

int aead_cipher_parse(const char *name, enum aead_cipher *out)
{
	if (!strcmp(name, "xchacha20poly1305") || !strcmp(name, "xchacha20-poly1305"))
		*out = AEAD_XCHACHA20POLY1305;
	else if (!strcmp(name, "aes256gcm") || !strcmp(name, "aes-256-gcm"))
		*out = AEAD_AES256GCM;
	else
		return -EINVAL;
	return 0;
}

int aead_cipher_usable(enum aead_cipher c)
{
	if (c == AEAD_AES256GCM)
		return crypto_aead_aes256gcm_is_available() ? 0 : -ENOTSUP;
	return c == AEAD_XCHACHA20POLY1305 ? 0 : -ENOTSUP;
}

/*
 * Per-file keys come and go with every file opened, and sodium_malloc
 * costs an mmap, mprotects and an mlock each time.  They are carved
 * instead from slabs of sodium_malloc'd (locked, guarded) memory, wiped
 * when freed.  Slabs are never returned: their number follows the peak of
 * files in use.
 */
#define SLAB_OBJECTS 64

union aead_slot {
	struct aead a;
	union aead_slot *next_free;
};

static pthread_mutex_t slab_lock = PTHREAD_MUTEX_INITIALIZER;
static union aead_slot *slab_free;	/* protected by slab_lock */

static struct aead *slot_get(void)
{
	union aead_slot *s;

	pthread_mutex_lock(&slab_lock);
	if (!slab_free) {
		union aead_slot *slab = sodium_malloc(SLAB_OBJECTS * sizeof(*slab));

		if (slab) {
			for (int i = 0; i < SLAB_OBJECTS; i++) {
				slab[i].next_free = slab_free;
				slab_free = &slab[i];
			}
		}
	}
	s = slab_free;
	if (s)
		slab_free = s->next_free;
	pthread_mutex_unlock(&slab_lock);
	return s ? &s->a : NULL;
}

static void slot_put(struct aead *a)
{
	union aead_slot *s = (union aead_slot *)a;

	sodium_memzero(a, sizeof(*a));
	pthread_mutex_lock(&slab_lock);
	s->next_free = slab_free;
	slab_free = s;
	pthread_mutex_unlock(&slab_lock);
}

int aead_new(struct aead **out, enum aead_cipher c, const uint8_t key[32])
{
	struct aead *a;
	int rc;

	*out = NULL;
	if ((rc = aead_cipher_usable(c)) < 0)
		return rc;
	a = slot_get();
	if (!a)
		return -ENOMEM;
	a->cipher = c;
	memcpy(a->key, key, 32);
	if (c == AEAD_AES256GCM)
		crypto_aead_aes256gcm_beforenm(&a->gcm, key);
	*out = a;
	return 0;
}

void aead_free(struct aead *a)
{
	if (a)
		slot_put(a);
}

size_t aead_overhead(const struct aead *a)
{
	return a->cipher == AEAD_AES256GCM ? GCM_NONCE + GCM_TAG : XC_NONCE + XC_TAG;
}

ssize_t aead_seal(const struct aead *a, uint8_t *out, size_t cap,
		  const uint8_t *pt, size_t ptlen, const uint8_t *ad, size_t adlen)
{
	unsigned long long clen = 0;

	if (cap < ptlen + aead_overhead(a))
		return -EOVERFLOW;
	if (a->cipher == AEAD_AES256GCM) {
		nonce_fill(out, GCM_NONCE);
		if (ptlen >= bulk_min) {
			int rc = gcm_bulk_seal(a->key, out, pt, ptlen, ad, adlen, out + GCM_NONCE,
					       out + GCM_NONCE + ptlen);

			return rc < 0 ? rc : (ssize_t)(GCM_NONCE + ptlen + GCM_TAG);
		}
		crypto_aead_aes256gcm_encrypt_afternm(out + GCM_NONCE, &clen, pt, ptlen,
						      ad, adlen, NULL, out, &a->gcm);
		return (ssize_t)(clen + GCM_NONCE);
	}
	nonce_fill(out, XC_NONCE);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + XC_NONCE, &clen, pt, ptlen,
						   ad, adlen, NULL, out, a->key);
	return (ssize_t)(clen + XC_NONCE);
}

ssize_t aead_open(const struct aead *a, uint8_t *out, size_t cap,
		  const uint8_t *ct, size_t ctlen, const uint8_t *ad, size_t adlen)
{
	size_t over = aead_overhead(a);
	unsigned long long plen = 0;
	int rc;

	if (ctlen < over)
		return -EBADMSG;
	if (cap < ctlen - over)
		return -EOVERFLOW;
	if (a->cipher == AEAD_AES256GCM && ctlen - over >= bulk_min) {
		plen = ctlen - over;
		rc = gcm_bulk_open(a->key, ct, ct + GCM_NONCE, plen, ad, adlen,
				   ct + GCM_NONCE + plen, out);
	} else if (a->cipher == AEAD_AES256GCM)
		rc = crypto_aead_aes256gcm_decrypt_afternm(out, &plen, NULL, ct + GCM_NONCE,
							   ctlen - GCM_NONCE, ad, adlen, ct, &a->gcm);
	else
		rc = crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plen, NULL, ct + XC_NONCE,
								ctlen - XC_NONCE, ad, adlen, ct, a->key);
	if (rc != 0) {
		/* unauthenticated bytes never reach the caller, whatever failed */
		sodium_memzero(out, ctlen - over);
		return rc == -EIO ? -EIO : -EBADMSG;
	}
	return (ssize_t)plen;
}
