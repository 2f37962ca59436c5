#!/usr/bin/env python3
"""fsdiff: randomized differential test of two directory trees.

    fsdiff.py REF TEST --seed S --ops N [--stop-on-first] ...

REF is a directory on ext4 (the reference), TEST a directory on the
filesystem under test (medvault).  Both must be empty; the same random
operation sequence runs on both, and after every operation the results
(return value or errno name, bytes read, file offset) and an lstat of every
touched path (type, mode, nlink, uid, gid, size; whether mtime/ctime changed
across the operation) and the listings of the touched directories are
compared.  Every few operations (and at the end) the whole trees are
compared: names, types, modes, owners, nlink, sizes, contents, symlink
targets and user xattrs.

The sequence is generated up front from the seed alone, so any subset of it
can be replayed (--subset) and a failing run can be reduced automatically
(--minimize) to a short list of operations that still shows the difference.
--print-ops prints the sequence.  --compare-only compares two trees as they
are (used after a remount).

Each difference prints one line:
    MISMATCH seed=S op=I <op> :: <what> ext4=<x> test=<y>
The exit status is 1 when anything differed.

Some operations run as an unprivileged user (uid 65534, or uid 61500 with
supplementary group 61501) in a forked child, so both trees must be
reachable by other users (the caller makes the roots and their parents
searchable) and the FUSE mount must allow other users.

Not compared, because ext4 itself does not define them the same way every
time: directory st_size, exact st_blocks (only "a file with data on ext4
has st_blocks > 0" is checked), inode numbers, st_dev, atime (relatime),
absolute time stamps other than those set explicitly.  statvfs is called but
only sanity-checked.

Known differences (KNOWN_* below) are differences of the kernel's FUSE
client that no daemon can avoid, and of
allocation (ext4 allocates on fallocate, medvault writes on demand): they
are printed as KNOWN lines, not counted, and the test tree is put back in
step.  SEEK_DATA/SEEK_HOLE may answer "all data" (see no_hole_map_answer).
"""

import argparse
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import math
import mmap
import os
import pickle
import random
import stat
import sys
import time

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.lgetxattr.argtypes = libc.getxattr.argtypes
libc.getxattr.restype = libc.lgetxattr.restype = ctypes.c_ssize_t
libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.llistxattr.argtypes = libc.listxattr.argtypes
libc.listxattr.restype = libc.llistxattr.restype = ctypes.c_ssize_t
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(Timespec), ctypes.c_int]
libc.futimens.argtypes = [ctypes.c_int, ctypes.POINTER(Timespec)]

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
FALLOC = {0: "0", 1: "KEEP_SIZE", 3: "PUNCH_HOLE|KEEP_SIZE", 0x10: "ZERO_RANGE",
          0x11: "ZERO_RANGE|KEEP_SIZE"}
OLD_NS = 1_000_000_000 * 10**9		# time stamp put on touched paths before a timed op
EXPLICIT_LIMIT = 1_500_000_000 * 10**9	# stamps below this were set explicitly: compare exactly

NAMES1 = list("abcdefgh")
NAMES2 = list("abcd")
LONG_OK = "L" * 255
LONG_BAD = "M" * 256
MODES = [0o644, 0o600, 0o755, 0o777, 0o666, 0o4755, 0o4777, 0o2777, 0o6777, 0o2666,
         0o1777, 0o000, 0o700, 0o2755, 0o4666]
UIDS = [0, 65534, 61500, -1]
GIDS = [0, 65534, 61500, 61501, -1]
# unprivileged identities: (uid, gid, supplementary groups)
IDENTS = [(65534, 65534, []), (61500, 61500, [61501])]
XNAMES = ["user.a", "user.b", "user.c", "user." + "x" * 250, "user." + "y" * 251,
          "trusted.t", "foo.bar", "user."]
FLAGS = {"RDONLY": os.O_RDONLY, "WRONLY": os.O_WRONLY, "RDWR": os.O_RDWR,
         "CREAT": os.O_CREAT, "EXCL": os.O_EXCL, "TRUNC": os.O_TRUNC,
         "APPEND": os.O_APPEND, "DIRECTORY": os.O_DIRECTORY, "NOFOLLOW": os.O_NOFOLLOW}
NSLOTS = 4
FTYPES = {stat.S_IFREG: "reg", stat.S_IFDIR: "dir", stat.S_IFLNK: "lnk", stat.S_IFIFO: "fifo",
          stat.S_IFCHR: "chr", stat.S_IFBLK: "blk", stat.S_IFSOCK: "sock"}
PAGE = mmap.PAGESIZE

# operation kinds and weights
WEIGHTS = {
    "open": 14, "close": 4, "write": 8, "pwrite": 9, "read": 5, "pread": 6,
    "ftruncate": 4, "truncate": 3, "fsync": 2, "fallocate": 4, "lseek": 4,
    "mmap_read": 3, "mmap_write": 4, "fstat": 1, "fchmod": 1, "fchown": 1,
    "futimens": 1, "rename": 8, "link": 5, "unlink": 7, "mkdir": 6, "rmdir": 4,
    "symlink": 4, "readlink": 2, "stat": 2, "chmod": 4, "chown": 4, "utimens": 4,
    "setxattr": 5, "getxattr": 3, "listxattr": 2, "removexattr": 2, "mkfifo": 1,
    "readdir": 2, "statvfs": 1,
}
FD_KINDS = {"close", "write", "pwrite", "read", "pread", "ftruncate", "fsync",
            "fallocate", "lseek", "mmap_read", "mmap_write", "fstat", "fchmod",
            "fchown", "futimens"}
UNPRIV_KINDS = {"open", "write", "pwrite", "ftruncate", "truncate", "rename", "link",
                "unlink", "mkdir", "rmdir", "symlink", "chmod", "chown", "utimens",
                "setxattr", "getxattr", "removexattr", "mkfifo", "readdir", "stat",
                "fchmod", "fchown", "futimens", "listxattr", "readlink"}


# ------------------------------------------------------------------ generation

def gen_path(rng):
    r = rng.random()
    depth = 1 if r < 0.6 else 2 if r < 0.9 else 3
    comps = [rng.choice(NAMES1)] + [rng.choice(NAMES2) for _ in range(depth - 1)]
    r = rng.random()
    if r < 0.02:
        comps[-1] = LONG_OK
    elif r < 0.03:
        comps[-1] = LONG_BAD
    elif r < 0.037:
        comps.append(".")
    return "/".join(comps)


def gen_off(rng):
    r = rng.random()
    if r < 0.3:
        return rng.randrange(0, 5000)
    if r < 0.55:	# around page and chunk (64 KiB) boundaries
        b = rng.choice([4096, 8192, 65536, 131072, 196608, 1 << 20])
        return max(0, b + rng.randrange(-40, 40))
    if r < 0.85:
        return rng.randrange(0, 300000)
    if r < 0.98:
        return rng.randrange(0, 4 << 20)	# far past EOF: sparse holes
    return rng.randrange(0, 40 << 20)


def gen_len(rng):
    r = rng.random()
    if r < 0.1:
        return 0
    if r < 0.5:
        return rng.randrange(1, 200)
    if r < 0.85:
        return rng.randrange(1, 10000)
    return rng.randrange(1, 200000)


def gen_times(rng):
    def one():
        r = rng.random()
        if r < 0.3:
            return "NOW"
        if r < 0.5:
            return "OMIT"
        return (rng.randrange(1_100_000_000, 1_400_000_000), rng.randrange(0, 10**9))
    return [one(), one()]


KNOWN_SEEN = {}	# known difference -> its first example
IGNORE = set()	# --ignore: fields not to report (investigation only)


def gen_ops(seed, n, skip=()):
    rng = random.Random(seed)
    kinds = [k for k in WEIGHTS if k not in skip]
    weights = [WEIGHTS[k] for k in kinds]
    model = [False] * NSLOTS	# slots the sequence has opened (results unknown)
    ops = []
    while len(ops) < n:
        k = rng.choices(kinds, weights)[0]
        op = {"k": k}
        if k in FD_KINDS:
            live = [i for i in range(NSLOTS) if model[i]]
            if not live or k not in kinds:
                k = op["k"] = "open"
            else:
                op["s"] = rng.choice(live)
        if k == "open":
            s = rng.randrange(NSLOTS)
            op["s"] = s
            acc = rng.choices(["RDONLY", "WRONLY", "RDWR"], [3, 3, 5])[0]
            fl = [acc]
            for f, p in (("CREAT", .55), ("EXCL", .12), ("TRUNC", .15), ("APPEND", .15),
                         ("DIRECTORY", .06), ("NOFOLLOW", .08)):
                if rng.random() < p:
                    fl.append(f)
            op["fl"] = fl
            op["mode"] = rng.choice(MODES)
            op["p"] = gen_path(rng)
            model[s] = True
        elif k == "close":
            model[op["s"]] = False
        elif k == "write":
            op["n"], op["ds"] = gen_len(rng), rng.randrange(1 << 30)
        elif k == "pwrite":
            op["off"], op["n"], op["ds"] = gen_off(rng), gen_len(rng), rng.randrange(1 << 30)
        elif k == "read":
            op["n"] = gen_len(rng) + 1
        elif k == "pread":
            op["off"], op["n"] = gen_off(rng), gen_len(rng) + 1
        elif k in ("ftruncate", "truncate"):
            op["len"] = rng.choice([0, gen_off(rng), gen_off(rng), rng.randrange(0, 100)])
            if k == "truncate":
                op["p"] = gen_path(rng)
        elif k == "fsync":
            op["data"] = rng.random() < 0.5
        elif k == "fallocate":
            op["mode"] = rng.choice(list(FALLOC))
            op["off"], op["n"] = gen_off(rng), rng.choice([gen_len(rng), rng.randrange(1, 300000)])
        elif k == "lseek":
            op["wh"] = rng.choice(["SET", "CUR", "END", "DATA", "HOLE", "DATA", "HOLE"])
            op["off"] = gen_off(rng) if op["wh"] != "CUR" else rng.randrange(-100, 100)
        elif k == "mmap_read":
            op["off"], op["n"] = rng.choice([0, 0, PAGE, 16 * PAGE]), gen_len(rng) + 1
        elif k == "mmap_write":
            op["off"], op["n"] = rng.choice([0, 0, PAGE, 16 * PAGE]), gen_len(rng) + 1
            op["at"] = rng.randrange(0, 3000)	# offset inside the mapping
            op["ds"] = rng.randrange(1 << 30)
            op["msync"] = rng.random() < 0.5
        elif k in ("fchmod", "chmod"):
            op["mode"] = rng.choice(MODES)
        elif k in ("fchown", "chown"):
            op["uid"], op["gid"] = rng.choice(UIDS), rng.choice(GIDS)
        elif k in ("futimens", "utimens"):
            op["t"] = gen_times(rng)
        elif k in ("rename", "link"):
            op["p"] = gen_path(rng)
            r = rng.random()
            if r < 0.08:
                op["q"] = op["p"] + "/" + rng.choice(NAMES2)	# into itself
            elif r < 0.14:
                op["q"] = op["p"]
            else:
                op["q"] = gen_path(rng)
            if k == "rename":
                op["fl"] = rng.choices([0, RENAME_NOREPLACE, RENAME_EXCHANGE], [8, 1, 1])[0]
            else:
                op["follow"] = rng.random() < 0.2
        elif k in ("unlink", "rmdir", "readlink", "stat", "readdir", "statvfs"):
            op["p"] = gen_path(rng)
        elif k in ("mkdir", "mkfifo"):
            op["p"], op["mode"] = gen_path(rng), rng.choice(MODES)
        elif k == "symlink":
            op["p"] = gen_path(rng)
            r = rng.random()
            # never "..": the trees' parents differ, a link must not leave its root
            if r < 0.5:
                op["tgt"] = rng.choice(NAMES1)
            elif r < 0.8:
                op["tgt"] = rng.choice(NAMES2) + "/" + rng.choice(NAMES2)
            elif r < 0.9:
                op["tgt"] = rng.choice([".", "nonexist", "a/b/c/d"])
            else:
                op["tgt"] = rng.choice(["x" * 300, "y" * 4095, "z" * 4096, ""])
        elif k in ("setxattr", "getxattr", "removexattr", "listxattr"):
            op["p"] = gen_path(rng)
            op["follow"] = rng.random() < 0.3
            if k != "listxattr":
                op["name"] = rng.choices(XNAMES, [5, 5, 3, 1, 1, 1, 1, 1])[0]
            if k == "setxattr":
                op["n"] = rng.choice([0, rng.randrange(1, 50), rng.randrange(1, 900)])
                op["ds"] = rng.randrange(1 << 30)
                op["fl"] = rng.choices([0, os.XATTR_CREATE, os.XATTR_REPLACE, 3], [4, 2, 2, 1])[0]
            elif k in ("getxattr", "listxattr"):
                op["size"] = rng.choice([0, 1, 3, 65536, 65536])
        if k in ("chmod", "chown", "utimens"):
            op["p"] = gen_path(rng)
            if k == "chown":
                op["follow"] = rng.random() < 0.7
            elif k == "utimens":
                op["nofollow"] = rng.random() < 0.2
        if k in UNPRIV_KINDS and rng.random() < 0.15:
            op["u"] = rng.randrange(len(IDENTS))
            if k == "open" and rng.random() < 0.5:
                op["wn"], op["ds"] = rng.randrange(1, 100), rng.randrange(1 << 30)
        op["tc"] = rng.random() < 0.5	# check which time stamps change
        ops.append(op)
    return ops


def resolve_slot(t, op):
    """the generated slot number is a preference: fd ops use the n-th live
    descriptor of the reference tree, open uses a free slot if there is one
    (the same slot is then used on both trees)"""
    if "s" not in op:
        return op
    live = [i for i in range(NSLOTS) if t.slots[i] is not None]
    op = dict(op)
    if op["k"] == "open":
        free = [i for i in range(NSLOTS) if t.slots[i] is None]
        if free:
            op["s"] = free[op["s"] % len(free)]
    elif live:
        op["s"] = live[op["s"] % len(live)]
    return op


def op_str(op):
    parts = []
    for key, v in op.items():
        if key in ("k", "tc", "ds"):
            continue
        if key == "fl" and isinstance(v, list):
            v = "|".join(v)
        elif key in ("mode",) and op["k"] != "fallocate":
            v = oct(v)
        elif key == "mode":
            v = FALLOC[v]
        elif isinstance(v, str) and len(v) > 20:
            v = "%s*%d" % (v[0], len(v)) if len(set(v)) == 1 else v[:12] + "...(%d)" % len(v)
        elif key == "u":
            v = "uid%d" % IDENTS[v][0]
        parts.append("%s=%s" % (key, v))
    return "%s(%s)" % (op["k"], " ".join(parts))


def data_of(op, n=None):
    return random.Random(op["ds"]).randbytes(op["n"] if n is None else n)


# ------------------------------------------------------------------ execution

class Tree:
    def __init__(self, root):
        self.root = root
        self.slots = [None] * NSLOTS
        self.fallocated = set()	# inodes a reserving fallocate touched

    def P(self, p):
        return os.path.join(self.root, p)

    def close_all(self):
        for i, fd in enumerate(self.slots):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                self.slots[i] = None


def ename(e):
    return errno.errorcode.get(e, str(e))


def blob(b):
    if len(b) <= 16:
        return b
    return (len(b), hashlib.sha1(b).hexdigest()[:16])


def cerr():
    return OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def tspec(t):
    ts = (Timespec * 2)()
    for i, v in enumerate(t):
        if v == "NOW":
            ts[i].tv_sec, ts[i].tv_nsec = 0, UTIME_NOW
        elif v == "OMIT":
            ts[i].tv_sec, ts[i].tv_nsec = 0, UTIME_OMIT
        else:
            ts[i].tv_sec, ts[i].tv_nsec = v
    return ts


def _exec(t, op, child):
    k = op["k"]
    if k in FD_KINDS:
        fd = t.slots[op["s"]]
        if fd is None:
            return ("noslot",)
    if k == "open":
        flags = os.O_NONBLOCK	# never block on a FIFO
        for f in op["fl"]:
            flags |= FLAGS[f]
        if not child and t.slots[op["s"]] is not None:
            os.close(t.slots[op["s"]])
            t.slots[op["s"]] = None
        fd = os.open(t.P(op["p"]), flags, op["mode"])
        if child:
            r = None
            try:
                if "wn" in op:
                    r = os.write(fd, data_of(op, op["wn"]))
            except OSError as e:
                r = ename(e.errno)
            os.close(fd)
            return ("ok", r)
        t.slots[op["s"]] = fd
        return ("ok",)
    if k == "close":
        t.slots[op["s"]] = None
        os.close(fd)
        return ("ok",)
    if k == "write":
        n = os.write(fd, data_of(op))
        return ("ok", n, os.lseek(fd, 0, os.SEEK_CUR))
    if k == "pwrite":
        n = os.pwrite(fd, data_of(op), op["off"])
        return ("ok", n, os.lseek(fd, 0, os.SEEK_CUR))
    if k == "read":
        b = os.read(fd, op["n"])
        return ("ok", blob(b), os.lseek(fd, 0, os.SEEK_CUR))
    if k == "pread":
        return ("ok", blob(os.pread(fd, op["n"], op["off"])))
    if k == "ftruncate":
        os.ftruncate(fd, op["len"])
        return ("ok",)
    if k == "truncate":
        os.truncate(t.P(op["p"]), op["len"])
        return ("ok",)
    if k == "fsync":
        (os.fdatasync if op["data"] else os.fsync)(fd)
        return ("ok",)
    if k == "fallocate":
        if libc.fallocate(fd, op["mode"], op["off"], op["n"]) != 0:
            raise cerr()
        if not op["mode"] & 2:	# not PUNCH_HOLE: ext4 allocates (unwritten) blocks
            t.fallocated.add(os.fstat(fd).st_ino)
        return ("ok",)
    if k == "lseek":
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            # ext4 directory offsets are htree hash cookies (SEEK_END and
            # SEEK_HOLE give LLONG_MAX): nothing another fs can match
            return ("dir-not-compared",)
        wh = {"SET": os.SEEK_SET, "CUR": os.SEEK_CUR, "END": os.SEEK_END,
              "DATA": os.SEEK_DATA, "HOLE": os.SEEK_HOLE}[op["wh"]]
        return ("ok", os.lseek(fd, op["off"], wh))
    if k in ("mmap_read", "mmap_write"):
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):	# (a directory's size is not comparable)
            m = mmap.mmap(fd, 1, mmap.MAP_SHARED, mmap.PROT_READ)
            m.close()
            return ("ok-nonreg",)
        size = st.st_size
        off = op["off"]
        n = min(op["n"], size - off)
        if n <= 0:
            return ("skip-beyond-eof",)
        if k == "mmap_read":
            m = mmap.mmap(fd, n, mmap.MAP_SHARED, mmap.PROT_READ, offset=off)
            b = m[:]
            m.close()
            return ("ok", blob(b))
        at = min(op["at"], n - 1)
        d = data_of(op, min(op["n"], n - at))
        m = mmap.mmap(fd, n, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=off)
        m[at:at + len(d)] = d
        if op["msync"]:
            m.flush()
        m.close()
        # read back through read(2) on the same descriptor
        try:
            back = blob(os.pread(fd, len(d), off + at))
        except OSError as e:
            back = ename(e.errno)
        return ("ok", back)
    if k == "fstat":
        os.fstat(fd)
        return ("ok",)
    if k == "fchmod":
        os.fchmod(fd, op["mode"])
        return ("ok",)
    if k == "fchown":
        os.fchown(fd, op["uid"], op["gid"])
        return ("ok",)
    if k == "futimens":
        if libc.futimens(fd, tspec(op["t"])) != 0:
            raise cerr()
        return ("ok",)
    if k == "rename":
        if op["fl"]:
            if libc.renameat2(AT_FDCWD, t.P(op["p"]).encode(), AT_FDCWD,
                              t.P(op["q"]).encode(), op["fl"]) != 0:
                raise cerr()
        else:
            os.rename(t.P(op["p"]), t.P(op["q"]))
        return ("ok",)
    if k == "link":
        os.link(t.P(op["p"]), t.P(op["q"]), follow_symlinks=op["follow"])
        return ("ok",)
    if k == "unlink":
        os.unlink(t.P(op["p"]))
        return ("ok",)
    if k == "mkdir":
        os.mkdir(t.P(op["p"]), op["mode"])
        return ("ok",)
    if k == "rmdir":
        os.rmdir(t.P(op["p"]))
        return ("ok",)
    if k == "symlink":
        os.symlink(op["tgt"], t.P(op["p"]))
        return ("ok",)
    if k == "readlink":
        return ("ok", os.readlink(t.P(op["p"])))
    if k == "stat":
        st = os.stat(t.P(op["p"]))
        return ("ok", stat_fields(st, exact_times=True))
    if k == "chmod":
        os.chmod(t.P(op["p"]), op["mode"])
        return ("ok",)
    if k == "chown":
        os.chown(t.P(op["p"]), op["uid"], op["gid"], follow_symlinks=op.get("follow", True))
        return ("ok",)
    if k == "utimens":
        if libc.utimensat(AT_FDCWD, t.P(op["p"]).encode(), tspec(op["t"]),
                          AT_SYMLINK_NOFOLLOW if op["nofollow"] else 0) != 0:
            raise cerr()
        return ("ok",)
    if k == "setxattr":
        os.setxattr(t.P(op["p"]), op["name"], data_of(op), op["fl"], follow_symlinks=op["follow"])
        return ("ok",)
    if k == "getxattr":
        fn = libc.getxattr if op["follow"] else libc.lgetxattr
        size = op["size"]
        buf = ctypes.create_string_buffer(max(size, 1))
        r = fn(t.P(op["p"]).encode(), op["name"].encode(), buf if size else None, size)
        if r < 0:
            raise cerr()
        return ("ok", r, blob(buf.raw[:r]) if size else None)
    if k == "listxattr":
        fn = libc.listxattr if op["follow"] else libc.llistxattr
        size = op["size"]
        buf = ctypes.create_string_buffer(max(size, 1))
        r = fn(t.P(op["p"]).encode(), buf if size else None, size)
        if r < 0:
            raise cerr()
        names = sorted(buf.raw[:r].split(b"\0")[:-1]) if size else None
        return ("ok", r, names)
    if k == "removexattr":
        os.removexattr(t.P(op["p"]), op["name"], follow_symlinks=op["follow"])
        return ("ok",)
    if k == "mkfifo":
        os.mkfifo(t.P(op["p"]), op["mode"])
        return ("ok",)
    if k == "readdir":
        return ("ok", sorted(os.listdir(t.P(op["p"]))))
    if k == "statvfs":
        sv = os.statvfs(t.P(op["p"]))
        sane = sv.f_bsize > 0 and sv.f_blocks >= sv.f_bfree >= sv.f_bavail and sv.f_namemax >= 255
        return ("ok", "sane" if sane else "INSANE %r" % (sv,))
    raise AssertionError(k)


def execute(t, op, child=False):
    try:
        return _exec(t, op, child)
    except OSError as e:
        return ("err", ename(e.errno))
    except ValueError as e:
        return ("ValueError", str(e))


def run_as(ident, op, trees):
    """run op on every tree as an unprivileged user, in a forked child"""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            uid, gid, groups = ident
            os.setgroups(groups)
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            data = pickle.dumps([execute(t, op, child=True) for t in trees])
        except BaseException as e:	# noqa: B902 - report anything
            data = pickle.dumps([("child-exception", repr(e))] * len(trees))
        view = memoryview(data)
        while view:
            view = view[os.write(w, view):]
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    os.waitpid(pid, 0)
    return pickle.loads(b"".join(chunks))


# ------------------------------------------------------------------ state

def stat_fields(st, exact_times=False):
    d = {"type": FTYPES.get(stat.S_IFMT(st.st_mode), "?"),
         "mode": oct(stat.S_IMODE(st.st_mode)), "nlink": st.st_nlink,
         "uid": st.st_uid, "gid": st.st_gid}
    if not stat.S_ISDIR(st.st_mode):
        d["size"] = st.st_size
    if exact_times:
        for f in ("st_mtime_ns", "st_ctime_ns"):
            v = getattr(st, f)
            if v < EXPLICIT_LIMIT:
                d[f] = v
    return d


def touched(op):
    paths = []
    for key in ("p", "q"):
        if key in op:
            p = op[key]
            paths.append(p)
            parent = os.path.dirname(p)
            paths.append(parent if parent else ".")
    out = []
    for p in paths:
        if p not in out:
            out.append(p)
    return out


def lstat_raw(t, p):
    try:
        return os.lstat(t.P(p))
    except OSError as e:
        return ename(e.errno)


def fstat_raw(t, s):
    fd = t.slots[s]
    if fd is None:
        return "noslot"
    try:
        return os.fstat(fd)
    except OSError as e:
        return ename(e.errno)


def snapshot(t, op):
    snap = {}
    for p in touched(op):
        snap[p] = lstat_raw(t, p)
    if "s" in op:
        snap["fd#%d" % op["s"]] = fstat_raw(t, op["s"])
    return snap


def listing(t, p):
    try:
        return sorted(os.listdir(t.P(p)))
    except OSError as e:
        return ename(e.errno)


def prep_times(t, op):
    """before a timed op: put an old mtime on every touched inode"""
    res = []
    for p in touched(op):
        try:
            if os.path.lexists(t.P(p)):
                os.utime(t.P(p), ns=(OLD_NS, OLD_NS), follow_symlinks=False)
            res.append("ok")
        except OSError as e:
            res.append(ename(e.errno))
    if "s" in op and t.slots[op["s"]] is not None:
        try:
            os.utime(t.slots[op["s"]], ns=(OLD_NS, OLD_NS))
            res.append("ok")
        except OSError as e:
            res.append(ename(e.errno))
    return res


def coarse_tick():
    """wait until the coarse clock (which FUSE's kernel stamps use) has
    passed the fine-grained time of now: a kernel stamp after this is later
    than any stamp taken before it, by the kernel or by a daemon (the
    coarse clock may lag the fine one by a tick, so one change of it is
    not enough)"""
    clk = getattr(time, "CLOCK_REALTIME_COARSE", 5)
    t0 = time.clock_gettime_ns(time.CLOCK_REALTIME)
    while time.clock_gettime_ns(clk) <= t0:
        pass


def cmp_stats(key, pa, pb, qa, qb, tc, exact_times):
    """pa/pb: stat before (or None), qa/qb: stat after, on ext4 / test"""
    out = []
    if isinstance(qa, str) or isinstance(qb, str):
        if not (isinstance(qa, str) and isinstance(qb, str) and qa == qb):
            out.append(("exists", key, qa if isinstance(qa, str) else "present",
                        qb if isinstance(qb, str) else "present"))
        return out
    fa, fb = stat_fields(qa, exact_times), stat_fields(qb, exact_times)
    for f in fa:
        if fa.get(f) != fb.get(f):
            out.append((f, key, fa.get(f), fb.get(f)))
    if stat.S_ISREG(qa.st_mode) and qa.st_size > 0 and qa.st_blocks > 0 and qb.st_blocks == 0:
        out.append(("blocks", key, "blocks=%d" % qa.st_blocks, "blocks=0 size=%d" % qb.st_size))
    if tc and not isinstance(pa, (str, type(None))) and not isinstance(pb, (str, type(None))):
        # the same inode before and after (not replaced by the op)
        if pa.st_ino == qa.st_ino and pb.st_ino == qb.st_ino:
            for f in ("st_mtime_ns", "st_ctime_ns"):
                ca = getattr(pa, f) != getattr(qa, f)
                cb = getattr(pb, f) != getattr(qb, f)
                if ca != cb:
                    out.append((f[3:8] + "-changed", key, ca, cb))
    return out


# ------------------------------------------------------------------ whole trees

def dump_tree(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            try:
                st = os.lstat(full)
            except OSError as e:
                out[rel] = ename(e.errno)
                continue
            d = stat_fields(st)
            if stat.S_ISLNK(st.st_mode):
                d["target"] = os.readlink(full)
            elif stat.S_ISREG(st.st_mode):
                try:
                    fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                    h = hashlib.sha1()
                    while True:
                        b = os.read(fd, 1 << 20)
                        if not b:
                            break
                        h.update(b)
                    os.close(fd)
                    d["content"] = h.hexdigest()[:16]
                except OSError as e:
                    d["content"] = ename(e.errno)
            if not stat.S_ISLNK(st.st_mode):
                try:
                    xs = {}
                    for x in os.listxattr(full, follow_symlinks=False):
                        if x.startswith("user."):
                            xs[x] = blob(os.getxattr(full, x, follow_symlinks=False))
                    d["xattrs"] = xs
                except OSError as e:
                    d["xattrs"] = ename(e.errno)
            out[rel] = d
    return out


def short(rel):
    return "/".join(c if len(c) <= 20 else "%s*%d" % (c[0], len(c)) for c in rel.split("/"))


def compare_trees(ra, rb, a=None):
    a = dump_tree(ra) if a is None else a
    b = dump_tree(rb)
    out = []
    for rel in sorted(set(a) | set(b)):
        da, db = a.get(rel, "absent"), b.get(rel, "absent")
        if da == db:
            continue
        if isinstance(da, dict) and isinstance(db, dict):
            for f in sorted(set(da) | set(db)):
                if da.get(f) != db.get(f):
                    out.append("%s %s: ext4=%r test=%r" % (short(rel), f, da.get(f), db.get(f)))
        else:
            out.append("%s: ext4=%s test=%s" % (short(rel), "present" if isinstance(da, dict) else da,
                                                "present" if isinstance(db, dict) else db))
    return out


# ------------------------------------------------------------------ the run

# Differences that come from the kernel's FUSE client, not from the daemon:
# no FUSE filesystem can avoid them (see
# docs/DESIGN.md, "Where medvault differs from ext4").  They are counted and
# shown, not failed; the test tree is put back in step where needed.
KNOWN_FIFO = "FIFO I/O never reaches a FUSE daemon and the kernel does not stamp times on FUSE FIFOs"
KNOWN_TRUNC = "truncate to the same size: the kernel's writeback cache stamps times only when the size changes"
KNOWN_XATTR_CTIME = ("setxattr of the value a regular file already has: ext4 leaves ctime, the "
                     "kernel's writeback cache stamps it itself (directories match)")
KNOWN_FALLOC_BLOCKS = ("fallocate (mode 0, KEEP_SIZE, ZERO_RANGE) allocates unwritten blocks on ext4; "
                       "medvault writes chunks on demand, so the range stays a hole")
KNOWN_XBLOCK = "ext4 counts a file's external xattr block in st_blocks (not a difference in data)"
KNOWN_BLOCKS = ("st_blocks is 0 while the written data is still only in the kernel's writeback "
                "cache (a writable descriptor is open)")


def ref_has_xattrs(A, key):
    try:
        if key.startswith("fd#"):
            return bool(os.listxattr(A.slots[int(key[3:])]))
        return bool(os.listxattr(A.P(key), follow_symlinks=False))
    except OSError:
        return False


def writable_fd_open(t, st):
    for fd in t.slots:
        if fd is None:
            continue
        try:
            fst = os.fstat(fd)
            if (fst.st_ino, fst.st_dev) == (st.st_ino, st.st_dev) and \
               fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_RDONLY:
                return True
        except OSError:
            pass
    return False


def known_difference(A, B, op, what, key, va, vb, pre_b, post_b):
    if isinstance(post_b, (str, type(None))):
        return None
    if what in ("mtime-changed", "ctime-changed") and va is True and vb is False:
        if stat.S_ISFIFO(post_b.st_mode):
            return KNOWN_FIFO
        trunc = op["k"] in ("truncate", "ftruncate") or (op["k"] == "open" and "TRUNC" in op["fl"])
        if trunc and not isinstance(pre_b, (str, type(None))) and pre_b.st_size == post_b.st_size:
            return KNOWN_TRUNC
    if (what == "ctime-changed" and va is False and vb is True and op["k"] in ("setxattr", "fsetxattr")
            and stat.S_ISREG(post_b.st_mode)):
        return KNOWN_XATTR_CTIME
    if what == "blocks" and post_b.st_ino in B.fallocated:
        return KNOWN_FALLOC_BLOCKS
    if what == "blocks" and writable_fd_open(B, post_b):
        return KNOWN_BLOCKS
    if what == "blocks" and int(va.split("=")[1]) <= 8 and ref_has_xattrs(A, key):
        return KNOWN_XBLOCK
    return None


def no_hole_map_answer(A, t, op, res_ref, res):
    """SEEK_DATA/SEEK_HOLE without a map of holes: POSIX lets a filesystem
    treat the whole file as data (SEEK_DATA -> off, SEEK_HOLE -> size; the
    kernel's generic answer, which medvault gives on purpose, see
    docs/DESIGN.md).  Accept that answer and move the test descriptor to
    the reference's offset, so the sequence goes on comparing."""
    if op["k"] != "lseek" or op["wh"] not in ("DATA", "HOLE"):
        return False
    fd = t.slots[op["s"]]
    size, off = os.fstat(fd).st_size, op["off"]
    if off >= size:
        return False
    if res != ("ok", off if op["wh"] == "DATA" else size):
        return False
    if res_ref[0] == "ok":
        os.lseek(fd, res_ref[1], os.SEEK_SET)
    elif res_ref == ("err", "ENXIO") and op["wh"] == "DATA":
        # only holes from off to the end: the reference's offset stays put
        os.lseek(fd, os.lseek(A.slots[op["s"]], 0, os.SEEK_CUR), os.SEEK_SET)
    else:
        return False
    return True


def run_ops(ra, rb, ops, seed, indices=None, stop_on_first=False, max_mm=20,
            full_every=200, quiet=False, deadline=None, log=None):
    """returns a list of (index, key, line)"""
    A, B = Tree(ra), Tree(rb)
    found = []
    known = KNOWN_SEEN

    seen = set()

    def report(i, op, what, key, va, vb):
        if what in IGNORE:
            return
        # the same difference on the same path again (st_blocks of a file
        # that keeps growing, say) is not news
        tag = (what, key) if what in ("blocks", "size", "exists") else (what, key, repr(va), repr(vb))
        if tag in seen:
            return
        seen.add(tag)
        line = "MISMATCH seed=%s op=%d %s :: %s%s ext4=%r test=%r" % (
            seed, i, op_str(op), what, (" " + key) if key else "", va, vb)
        found.append((i, "%s:%s" % (op["k"], what), line))
        if not quiet:
            print(line, flush=True)

    seq = range(len(ops)) if indices is None else indices
    done = 0
    try:
        for i in seq:
            if deadline and time.monotonic() > deadline:
                break
            if stop_on_first and found or len(found) >= max_mm:
                break
            op = resolve_slot(A, ops[i])
            if log:
                log.write("%d %s\n" % (i, op_str(op)))
            tc = op["tc"]
            if tc:
                ra_, rb_ = prep_times(A, op), prep_times(B, op)
                if ra_ != rb_:
                    report(i, op, "prep-utime", "", ra_, rb_)
            pre_a, pre_b = snapshot(A, op), snapshot(B, op)
            if tc:
                coarse_tick()
            if "u" in op:
                res_a, res_b = run_as(IDENTS[op["u"]], op, [A, B])
            else:
                res_a, res_b = execute(A, op), execute(B, op)
            if res_a != res_b and no_hole_map_answer(A, B, op, res_a, res_b):
                res_b = res_a
            if res_a != res_b:
                report(i, op, "result", "", res_a, res_b)
            post_a, post_b = snapshot(A, op), snapshot(B, op)
            exact = op["k"] in ("utimens", "futimens") or tc
            for key in post_a:
                for what, k2, va, vb in cmp_stats(key, pre_a.get(key), pre_b.get(key),
                                                  post_a[key], post_b[key], tc, exact):
                    why = known_difference(A, B, op, what, key, va, vb, pre_b.get(key), post_b[key])
                    if why:
                        known.setdefault(why, "seed=%s op=%d %s :: %s %s ext4=%r test=%r" % (
                            seed, i, op_str(op), what, k2, va, vb))
                        continue
                    report(i, op, what, k2, va, vb)
            for p in touched(op):
                la, lb = listing(A, p), listing(B, p)
                if la != lb and not (isinstance(la, str) and isinstance(lb, str)):
                    report(i, op, "readdir", p, la, lb)
            done += 1
            if full_every and done % full_every == 0:
                for line in compare_trees(ra, rb):
                    report(i, op, "tree", "", line, "")
                    break
        else:
            if full_every:
                for line in compare_trees(ra, rb)[:5]:
                    report(len(ops) - 1 if indices is None else seq[-1], {"k": "final"},
                           "tree", "", line, "")
    finally:
        A.close_all()
        B.close_all()
    return found, done


def fresh_dirs(ra, rb, tag):
    tag = "%s.%d.%d" % (tag, os.getpid(), time.monotonic_ns())
    a, b = os.path.join(ra, tag), os.path.join(rb, tag)
    for d in (a, b):
        os.mkdir(d)
        os.chmod(d, 0o777)
    return a, b


def minimize(ra, rb, ops, seed, target, idx, budget):
    """delta-debug the op list [0..idx] down to a few ops that still show target"""
    deadline = time.monotonic() + budget
    trial = [0]

    def fails(seq):
        trial[0] += 1
        a, b = fresh_dirs(ra, rb, "min%d" % trial[0])
        found, _ = run_ops(a, b, ops, seed, indices=seq, quiet=True, full_every=0, max_mm=50)
        return any(k == target for _, k, _ in found)

    seq = list(range(idx + 1))
    if not fails(seq):
        print("# minimize: the mismatch did not reproduce on a fresh pair of directories")
        return None
    n = 2
    while len(seq) >= 2 and time.monotonic() < deadline:
        chunk = math.ceil(len(seq) / n)
        removed = False
        for start in range(0, len(seq), chunk):
            cand = seq[:start] + seq[start + chunk:]
            if cand and fails(cand):
                seq, n, removed = cand, max(n - 1, 2), True
                break
            if time.monotonic() > deadline:
                break
        if not removed:
            if n >= len(seq):
                break
            n = min(len(seq), n * 2)
    return seq


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref", help="empty directory on ext4 (reference)")
    ap.add_argument("test", nargs="?", help="empty directory on the filesystem under test")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ops", type=int, default=1000)
    ap.add_argument("--stop-on-first", action="store_true")
    ap.add_argument("--max-mismatches", type=int, default=20)
    ap.add_argument("--full-every", type=int, default=200, help="whole-tree compare every N ops")
    ap.add_argument("--time-limit", type=float, default=0, help="stop after this many seconds")
    ap.add_argument("--subset", help="run only these op indices (comma list, a-b ranges)")
    ap.add_argument("--print-ops", action="store_true", help="print the op sequence and exit")
    ap.add_argument("--minimize", action="store_true", help="reduce the first mismatch to a minimal op list")
    ap.add_argument("--min-time", type=float, default=120)
    ap.add_argument("--compare-only", action="store_true", help="only compare the two trees")
    ap.add_argument("--save-dump", metavar="FILE", help="save the state of the tree REF to FILE")
    ap.add_argument("--against-dump", metavar="FILE", help="compare the tree REF with a --save-dump FILE")
    ap.add_argument("--skip", help="op kinds not to generate (comma list; investigation only: "
                    "finds further differences once one is known)")
    ap.add_argument("--ignore", help="mismatch kinds not to report, e.g. blocks (investigation only)")
    ap.add_argument("--log", help="append each op as it runs to this file")
    args = ap.parse_args()
    os.umask(0o022)

    if args.save_dump:
        with open(args.save_dump, "wb") as f:
            pickle.dump(dump_tree(args.ref), f)
        return 0
    if args.against_dump:	# compare the tree REF with a saved dump of it
        with open(args.against_dump, "rb") as f:
            saved = pickle.load(f)
        diffs = compare_trees(None, args.ref, saved)
        for line in diffs:
            print("MISMATCH changed %s" % line.replace("ext4=", "before=").replace("test=", "now="))
        print("RESULT unchanged entries=%d mismatches=%d" % (len(saved), len(diffs)))
        return 1 if diffs else 0
    if args.compare_only:
        diffs = compare_trees(args.ref, args.test)
        for line in diffs:
            print("MISMATCH compare %s" % line)
        print("RESULT compare entries=%d mismatches=%d" % (len(dump_tree(args.ref)), len(diffs)))
        return 1 if diffs else 0

    skip = set(args.skip.split(",")) if args.skip else set()
    IGNORE.update(args.ignore.split(",") if args.ignore else [])
    ops = gen_ops(args.seed, args.ops, skip)
    indices = None
    if args.subset:
        indices = []
        for part in args.subset.split(","):
            if "-" in part:
                lo, hi = part.split("-")
                indices += range(int(lo), int(hi) + 1)
            else:
                indices.append(int(part))
    if args.print_ops:
        for i in (indices if indices is not None else range(len(ops))):
            print("%d %s%s" % (i, op_str(ops[i]), "  [timed]" if ops[i]["tc"] else ""))
        return 0
    if args.test is None:
        ap.error("TEST directory needed")

    log = open(args.log, "a") if args.log else None
    deadline = time.monotonic() + args.time_limit if args.time_limit else None
    if args.minimize:
        ra, rb = fresh_dirs(args.ref, args.test, "run")
    else:
        ra, rb = args.ref, args.test
    t0 = time.monotonic()
    found, done = run_ops(ra, rb, ops, args.seed, indices=indices,
                          stop_on_first=args.stop_on_first or args.minimize,
                          max_mm=args.max_mismatches, full_every=args.full_every,
                          deadline=deadline, log=log)
    for why, example in KNOWN_SEEN.items():
        print("KNOWN %s (first: %s)" % (why, example))
    print("RESULT seed=%d ops=%d mismatches=%d known=%d time=%.1fs" % (
        args.seed, done, len(found), len(KNOWN_SEEN), time.monotonic() - t0), flush=True)
    if args.minimize and found:
        idx, target, line = found[0]
        seq = minimize(args.ref, args.test, ops, args.seed, target, idx, args.min_time)
        if seq is not None:
            print("# minimal sequence for %s (replay: --seed %d --ops %d --subset %s):" % (
                target, args.seed, args.ops, ",".join(map(str, seq))))
            for i in seq:
                print("#   %d %s%s" % (i, op_str(ops[i]), "  [timed]" if ops[i]["tc"] else ""))
            a, b = fresh_dirs(args.ref, args.test, "final")
            run_ops(a, b, ops, args.seed, indices=seq, full_every=0)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
