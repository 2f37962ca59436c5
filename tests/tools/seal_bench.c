/*
 * seal_bench: the cost of aead_seal per item, for the sizes medvault
 * seals: a 64 KiB chunk (AES-256-GCM, the libcrypto path), a 4 KiB chunk
 * (GCM, libsodium) and a 200-byte index value (XChaCha20-Poly1305).
 * Used to price the nonce source (docs/PERFORMANCE.md, "Fresh nonces"):
 * build it against two versions of crypto/aead.c and compare.
 *
 *   seal_bench [ROUNDS]     prints one line per size: ns per seal, MB/s
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypto/aead.h"
#include "crypto/secure.h"

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static const struct { enum aead_cipher c; size_t len; long n; } runs[] = {
		{ AEAD_AES256GCM, 65536, 20000 },
		{ AEAD_AES256GCM, 4096, 200000 },
		{ AEAD_XCHACHA20POLY1305, 200, 1000000 },
	};
	int rounds = argc > 1 ? atoi(argv[1]) : 5;
	uint8_t key[32] = { 1 }, ad[44] = { 2 };

	if (secure_init() < 0)
		return 2;
	for (size_t r = 0; r < sizeof(runs) / sizeof(runs[0]); r++) {
		struct aead *a = NULL;
		uint8_t *pt = calloc(1, runs[r].len), *ct = malloc(runs[r].len + 64);
		double best = 1e30;

		if (!pt || !ct || aead_new(&a, runs[r].c, key) < 0) {
			printf("%s %zu: not usable here\n", aead_cipher_name(runs[r].c), runs[r].len);
			continue;
		}
		for (int k = 0; k < rounds; k++) {
			double t0 = now(), dt;

			for (long i = 0; i < runs[r].n; i++)
				if (aead_seal(a, ct, runs[r].len + 64, pt, runs[r].len, ad, sizeof(ad)) < 0)
					return 1;
			dt = (now() - t0) / (double)runs[r].n;
			if (dt < best)
				best = dt;
		}
		printf("%-18s %6zu B: %8.0f ns/seal  %7.0f MB/s (best of %d)\n",
		       aead_cipher_name(runs[r].c), runs[r].len, best * 1e9,
		       (double)runs[r].len / best / 1e6, rounds);
		aead_free(a);
		free(pt);
		free(ct);
	}
	return 0;
}
