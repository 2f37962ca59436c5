#include "gcm_bulk.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <openssl/evp.h>

static EVP_CIPHER *aes256gcm;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

/* one fetch for the process: an implicit one per operation costs a
 * provider lookup each time */
static void fetch_cipher(void)
{
	aes256gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

/*
 * Contexts are per operation: a context shared between the threads that
 * seal one file's chunks in parallel would need a lock, and freeing it
 * right away means the expanded key never outlives the call (OpenSSL
 * cleanses it on free).
 */
static EVP_CIPHER_CTX *start(const uint8_t key[32], const uint8_t nonce[GCM_BULK_NONCE], int enc)
{
	EVP_CIPHER_CTX *ctx;

	pthread_once(&fetch_once, fetch_cipher);
	if (!aes256gcm || !(ctx = EVP_CIPHER_CTX_new()))
		return NULL;
	if (EVP_CipherInit_ex2(ctx, aes256gcm, key, nonce, enc, NULL) != 1) {
		EVP_CIPHER_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* EVP lengths are ints: feed large buffers in pieces */
static int update(EVP_CIPHER_CTX *ctx, uint8_t *out, const uint8_t *in, size_t len)
{
	while (len) {
		int piece = len > (INT_MAX / 2) ? INT_MAX / 2 : (int)len, n;

		if (EVP_CipherUpdate(ctx, out, &n, in, piece) != 1)
			return -1;
		if (out)
			out += n;
		in += piece;
		len -= (size_t)piece;
	}
	return 0;
}

int gcm_bulk_seal(const uint8_t key[32], const uint8_t nonce[GCM_BULK_NONCE],
		  const uint8_t *pt, size_t len, const uint8_t *ad, size_t adlen,
		  uint8_t *ct, uint8_t tag[GCM_BULK_TAG])
{
	EVP_CIPHER_CTX *ctx = start(key, nonce, 1);
	int n, rc = -EIO;

	if (!ctx)
		return -EIO;
	if ((adlen == 0 || update(ctx, NULL, ad, adlen) == 0) && update(ctx, ct, pt, len) == 0 &&
	    EVP_CipherFinal_ex(ctx, ct + len, &n) == 1 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_BULK_TAG, tag) == 1)
		rc = 0;
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int gcm_bulk_open(const uint8_t key[32], const uint8_t nonce[GCM_BULK_NONCE],
		  const uint8_t *ct, size_t len, const uint8_t *ad, size_t adlen,
		  const uint8_t tag[GCM_BULK_TAG], uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = start(key, nonce, 0);
	int n, rc = -EIO;

	if (!ctx)
		return -EIO;
	if ((adlen == 0 || update(ctx, NULL, ad, adlen) == 0) && update(ctx, out, ct, len) == 0 &&
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_BULK_TAG, (void *)tag) == 1)
		rc = EVP_CipherFinal_ex(ctx, out + len, &n) == 1 ? 0 : -EBADMSG;
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}
