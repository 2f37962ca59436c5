#!/usr/bin/python3
"""Record surgery on the LMDB index of an UNMOUNTED medvault store.

This is what someone holding the store or one of its backups, but not the
keys, can do: keys are clear, values are sealed, so records can be listed,
deleted, and copied (replayed) from another copy of the same index, but not
forged.  Used by tests/integration/t_62_replay.sh.

    mdb_surgery.py dbs ENV                       named databases, one a line
    mdb_surgery.py keys ENV DB [PREFIXHEX]       keys (hex), one a line
    mdb_surgery.py get ENV DB KEYHEX             the raw value (hex)
    mdb_surgery.py put ENV DB KEYHEX SRCENV      copy SRCENV's raw value of
                                                 KEYHEX into ENV (a replay)
    mdb_surgery.py putall ENV DB SRCENV PREFIXHEX
                                                 put every key of SRCENV's DB
                                                 starting with PREFIXHEX
    mdb_surgery.py del ENV DB KEYHEX...          delete keys
    mdb_surgery.py diff OLDENV NEWENV [DB...]    "DB + KEY" (only in NEW),
                                                 "DB - KEY" (only in OLD),
                                                 "DB ~ KEY" (value changed)
    mdb_surgery.py copydb ENV DB SRCENV          replace ENV's DB by SRCENV's

ENV is an LMDB environment directory (STORE/index).  Nothing assumes a fixed
set of databases: they are read from the main database.  Environments are
opened without LMDB's lock file (lock=False): never run this on the index
of a mounted store, or while any medvault command has it open.  Exit 0 on
success, 1 with one line on stderr otherwise (a missing key or database).
"""
import os
import sys

try:
    import lmdb
except ImportError:
    sys.exit("mdb_surgery: python3 lmdb module missing (apt-get install python3-lmdb)")


def env_open(path, write=False):
    data = os.path.join(path, "data.mdb")
    if not os.path.isfile(data):
        raise SystemExit("mdb_surgery: %s is not an LMDB environment" % path)
    # the map as large as the file: LMDB keeps the larger of the two, and
    # a mapsize written into the meta page by us must not be a surprise
    # to the daemon that opens the file next
    size = max(os.path.getsize(data), 1 << 20)
    return lmdb.open(path, max_dbs=16, map_size=size, lock=False,
                     readonly=not write, create=False, readahead=False,
                     meminit=False)


def db_names(env):
    names = []
    with env.begin() as t:
        for k, _ in t.cursor():
            names.append(k.decode("latin-1"))
    return names


def db_open(env, name, txn=None):
    if name not in db_names(env):
        raise SystemExit("mdb_surgery: no database %r in %s" % (name, env.path()))
    return env.open_db(name.encode(), txn=txn, create=False)


def unhex(s):
    try:
        return bytes.fromhex(s)
    except ValueError:
        raise SystemExit("mdb_surgery: %r is not hex" % s)


def db_items(env, name):
    db = db_open(env, name)
    with env.begin(db=db) as t:
        return {bytes(k): bytes(v) for k, v in t.cursor()}


def cmd_dbs(path):
    env = env_open(path)
    for n in db_names(env):
        print(n)


def cmd_keys(path, name, prefix=""):
    env = env_open(path)
    p = unhex(prefix)
    for k in sorted(db_items(env, name)):
        if k.startswith(p):
            print(k.hex())


def cmd_get(path, name, key):
    env = env_open(path)
    db = db_open(env, name)
    with env.begin(db=db) as t:
        v = t.get(unhex(key))
    if v is None:
        raise SystemExit("mdb_surgery: no key %s in %s" % (key, name))
    print(bytes(v).hex())


def put_keys(path, name, src, keys):
    senv = env_open(src)
    sdb = db_open(senv, name)
    vals = {}
    with senv.begin(db=sdb) as t:
        for k in keys:
            v = t.get(k)
            if v is None:
                raise SystemExit("mdb_surgery: no key %s in %s of %s" % (k.hex(), name, src))
            vals[k] = bytes(v)
    senv.close()
    env = env_open(path, write=True)
    db = db_open(env, name)
    with env.begin(db=db, write=True) as t:
        for k, v in vals.items():
            t.put(k, v)
    env.close()
    return len(vals)


def cmd_put(path, name, key, src):
    put_keys(path, name, src, [unhex(key)])


def cmd_putall(path, name, src, prefix):
    p = unhex(prefix)
    keys = [k for k in db_items(env_open(src), name) if k.startswith(p)]
    if not keys:
        raise SystemExit("mdb_surgery: no key with prefix %s in %s of %s" % (prefix, name, src))
    print(put_keys(path, name, src, keys))


def cmd_del(path, name, *keys):
    env = env_open(path, write=True)
    db = db_open(env, name)
    with env.begin(db=db, write=True) as t:
        for k in keys:
            if not t.delete(unhex(k)):
                raise SystemExit("mdb_surgery: no key %s in %s" % (k, name))
    env.close()


def cmd_diff(old, new, *names):
    eo, en = env_open(old), env_open(new)
    if not names:
        names = sorted(set(db_names(eo)) | set(db_names(en)))
    for n in names:
        a = db_items(eo, n) if n in db_names(eo) else {}
        b = db_items(en, n) if n in db_names(en) else {}
        for k in sorted(set(a) | set(b)):
            if k not in a:
                print(n, "+", k.hex())
            elif k not in b:
                print(n, "-", k.hex())
            elif a[k] != b[k]:
                print(n, "~", k.hex())


def cmd_copydb(path, name, src):
    items = db_items(env_open(src), name)
    env = env_open(path, write=True)
    db = db_open(env, name)
    with env.begin(write=True) as t:
        t.drop(db, delete=False)
        for k, v in items.items():
            t.put(k, v, db=db)
    env.close()


CMDS = {
    "dbs": (cmd_dbs, 1), "keys": (cmd_keys, 2), "get": (cmd_get, 3),
    "put": (cmd_put, 4), "putall": (cmd_putall, 4), "del": (cmd_del, 3),
    "diff": (cmd_diff, 2), "copydb": (cmd_copydb, 3),
}


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help") or argv[1] not in CMDS:
        sys.stderr.write(__doc__)
        return 2
    fn, nmin = CMDS[argv[1]]
    args = argv[2:]
    if len(args) < nmin:
        sys.stderr.write("mdb_surgery: %s needs %d arguments\n" % (argv[1], nmin))
        return 2
    try:
        fn(*args)
    except lmdb.Error as e:
        sys.stderr.write("mdb_surgery: %s\n" % e)
        return 1
    except TypeError:
        sys.stderr.write("mdb_surgery: wrong arguments for %s\n" % argv[1])
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
