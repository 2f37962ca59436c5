/*
 * Raw LMDB on an index directory, as someone holding a copy of the store
 * but not the keys: for tests that replay or delete records behind the
 * index's back.  The index must be closed (MDB_NOLOCK).
 */
#ifndef MEDVAULT_TEST_RAWLMDB_H
#define MEDVAULT_TEST_RAWLMDB_H

#include <lmdb.h>
#include <stdint.h>
#include <string.h>

struct raw {
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
};

static inline int raw_open(struct raw *r, const char *where, const char *db, int write)
{
	int rc = mdb_env_create(&r->env);

	mdb_env_set_maxdbs(r->env, 16);
	mdb_env_set_mapsize(r->env, 1ull << 30);
	if (rc || (rc = mdb_env_open(r->env, where, MDB_NOLOCK | (write ? 0 : MDB_RDONLY), 0600)))
		return rc;
	if ((rc = mdb_txn_begin(r->env, NULL, write ? 0 : MDB_RDONLY, &r->txn)))
		return rc;
	return mdb_dbi_open(r->txn, db, 0, &r->dbi);
}

static inline int raw_close(struct raw *r, int commit)
{
	int rc = commit ? mdb_txn_commit(r->txn) : (mdb_txn_abort(r->txn), 0);

	mdb_env_close(r->env);
	return rc;
}

/* put the value key has in the index at from back into the one at to */
static inline int raw_replay(const char *from_dir, const char *to_dir, const char *db,
			     const void *key, size_t klen)
{
	struct raw from, to;
	MDB_val k = { klen, (void *)key }, v;
	uint8_t val[4096];
	size_t vlen;
	int rc;

	if ((rc = raw_open(&from, from_dir, db, 0)))
		return rc;
	rc = mdb_get(from.txn, from.dbi, &k, &v);
	vlen = v.mv_size;
	if (!rc && vlen <= sizeof(val))
		memcpy(val, v.mv_data, vlen);
	raw_close(&from, 0);
	if (rc)
		return rc;
	if ((rc = raw_open(&to, to_dir, db, 1)))
		return rc;
	v.mv_size = vlen;
	v.mv_data = val;
	rc = mdb_put(to.txn, to.dbi, &k, &v, 0);
	return rc | raw_close(&to, !rc);
}

static inline int raw_del(const char *dir, const char *db, const void *key, size_t klen)
{
	struct raw r;
	MDB_val k = { klen, (void *)key };
	int rc;

	if ((rc = raw_open(&r, dir, db, 1)))
		return rc;
	rc = mdb_del(r.txn, r.dbi, &k, NULL);
	return rc | raw_close(&r, !rc);
}

#endif
