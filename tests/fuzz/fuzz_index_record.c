/*
 * fuzz_index_record: the decoders of index values once unsealed
 * (index_decode_inode, _dirent, _chunk, _pack; the same static decoders
 * back index_*_get).  The seal makes these reachable only with the index
 * key, but fsck walks every record of a damaged index through them, and a
 * bug here must not turn a damaged record into memory corruption.
 *
 * Input: byte 0 = key length (mod 33), then the key, then the plaintext.
 * Every input goes through all four decoders.
 */
#include <errno.h>
#include <string.h>

#include "fuzz_common.h"
#include "store/index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mv_attr a;
	struct chunk_rec c;
	struct pack_rec p;
	uint64_t parent, ino, idx, pack;
	uint8_t type;
	const char *name;
	size_t klen, plen, len;
	const uint8_t *key, *plain;
	uint8_t *pcopy;
	int rc;

	if (size < 1)
		return 0;
	klen = data[0] % 33;
	if (klen > size - 1)
		klen = size - 1;
	key = data + 1;
	plen = size - 1 - klen;
	/* an exact-size heap copy, so ASan sees any read past the value */
	pcopy = malloc(plen ? plen : 1);
	if (!pcopy)
		abort();
	memcpy(pcopy, data + 1 + klen, plen);
	plain = pcopy;

	rc = index_decode_inode(key, klen, plain, plen, &a);
	FUZZ_ASSERT(rc == 0 || rc == -EIO);
	if (rc == 0) {
		FUZZ_ASSERT(klen == 8 && a.symlink_len <= INDEX_SYMLINK_MAX);
		FUZZ_ASSERT(plen == 99 + (size_t)a.symlink_len);
		FUZZ_ASSERT(a.symlink[a.symlink_len] == '\0');
	}

	rc = index_decode_dirent(key, klen, plain, plen, &parent, &ino, &type, &name, &len);
	FUZZ_ASSERT(rc == 0 || rc == -EIO);
	if (rc == 0) {
		FUZZ_ASSERT(klen == 24 && len >= 1 && len <= INDEX_NAME_MAX);
		FUZZ_ASSERT(name >= (const char *)plain && name + len <= (const char *)plain + plen);
	}

	rc = index_decode_chunk(key, klen, plain, plen, &ino, &idx, &c);
	FUZZ_ASSERT(rc == 0 || rc == -EIO);
	if (rc == 0)
		FUZZ_ASSERT(klen == 16 && plen == 32);

	rc = index_decode_pack(key, klen, plain, plen, &pack, &p);
	FUZZ_ASSERT(rc == 0 || rc == -EIO);
	if (rc == 0)
		FUZZ_ASSERT(klen == 8 && plen >= 20);	/* later fields may follow */

	free(pcopy);
	return 0;
}
