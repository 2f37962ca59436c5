#!/usr/bin/env python3
"""Write-back under load: several writers rewrite interleaved 4 KiB pages of
one file (so they share chunks) far past the daemon's dirty budget, while
O_DIRECT readers (served by the daemon, not the page cache) check every page
they see and fsync/same-size truncate calls force flushes in between.

  wb_check.py run FILE     write, read and check concurrently; exit 1 on error
  wb_check.py verify FILE  check the final contents (after run, or a remount)

Every page holds its index and a generation followed by bytes derived from
both, so a reader can tell a torn, misplaced or stale page from a good one.
"""
import mmap
import os
import random
import struct
import sys
import threading
import zlib

PAGE = 4096
PAGES = 12288            # 48 MiB: six times the 8 MiB per-file budget
WRITERS = 4
PASSES = 3
SEED = 20261201


def page_bytes(idx, gen):
    head = struct.pack("<QQ", idx, gen)
    rnd = random.Random(idx * 1000003 + gen)
    body = rnd.randbytes(PAGE - len(head) - 4)
    data = head + body
    return data + struct.pack("<I", zlib.crc32(data))


def page_parse(buf):
    """(idx, gen) of a well-formed page, None for a hole, raise otherwise."""
    if buf == bytes(PAGE):
        return None
    data, crc = buf[:-4], struct.unpack("<I", buf[-4:])[0]
    if zlib.crc32(data) != crc:
        raise ValueError("torn or corrupt page")
    idx, gen = struct.unpack("<QQ", data[:16])
    if page_bytes(idx, gen) != buf:
        raise ValueError("page body does not match its header")
    return idx, gen


def final_gen(idx):
    return PASSES       # each pass bumps every page once


def writer(path, w, errors):
    try:
        rnd = random.Random(SEED + w)
        fd = os.open(path, os.O_WRONLY)
        mine = [p for p in range(PAGES) if p % WRITERS == w]
        for gen in range(1, PASSES + 1):
            rnd.shuffle(mine)
            i = 0
            while i < len(mine):
                # runs of 1..8 pages: small random writes and larger ones
                run = rnd.randint(1, 8)
                for p in mine[i:i + run]:
                    os.pwrite(fd, page_bytes(p, gen), p * PAGE)
                i += run
        os.close(fd)
    except Exception as e:  # noqa: BLE001 - report any failure
        errors.append(f"writer {w}: {e!r}")


def reader(path, r, stop, errors):
    try:
        rnd = random.Random(SEED + 100 + r)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, 16 * PAGE)       # page-aligned for O_DIRECT
        seen = {}
        reads = 0
        while not stop.is_set() or reads < 50:
            first = rnd.randrange(0, PAGES - 16)
            n = os.preadv(fd, [buf], first * PAGE)
            if n != 16 * PAGE:
                raise ValueError(f"short read {n} at page {first}")
            for k in range(16):
                got = page_parse(bytes(buf[k * PAGE:(k + 1) * PAGE]))
                want = first + k
                if got is None:
                    raise ValueError(f"page {want} reads as a hole")
                if got[0] != want:
                    raise ValueError(f"page {want} holds page {got[0]}")
                if got[1] < seen.get(want, 0):
                    raise ValueError(f"page {want} went back from generation "
                                     f"{seen[want]} to {got[1]}")
                seen[want] = got[1]
            reads += 1
        os.close(fd)
    except Exception as e:  # noqa: BLE001
        errors.append(f"reader {r}: {e!r}")


def syncer(path, stop, errors):
    try:
        fd = os.open(path, os.O_WRONLY)
        size = PAGES * PAGE
        n = 0
        while not stop.wait(0.05):
            if n % 2:
                os.fsync(fd)
            else:
                os.ftruncate(fd, size)   # same size: a flush through truncate
            n += 1
        os.close(fd)
    except Exception as e:  # noqa: BLE001
        errors.append(f"syncer: {e!r}")


def run(path):
    with open(path, "wb") as f:
        for p in range(PAGES):
            f.write(page_bytes(p, 0))
        f.flush()
        os.fsync(f.fileno())
    errors, stop = [], threading.Event()
    ws = [threading.Thread(target=writer, args=(path, w, errors)) for w in range(WRITERS)]
    others = [threading.Thread(target=reader, args=(path, r, stop, errors)) for r in range(2)]
    others.append(threading.Thread(target=syncer, args=(path, stop, errors)))
    for t in ws + others:
        t.start()
    for t in ws:
        t.join()
    stop.set()
    for t in others:
        t.join()
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else verify(path)


def verify(path):
    if os.path.getsize(path) != PAGES * PAGE:
        print(f"size {os.path.getsize(path)}, want {PAGES * PAGE}", file=sys.stderr)
        return 1
    bad = 0
    with open(path, "rb") as f:
        for p in range(PAGES):
            try:
                got = page_parse(f.read(PAGE))
            except ValueError as e:
                got = str(e)
            if got != (p, final_gen(p)):
                if bad < 5:
                    print(f"page {p}: {got}, want {(p, final_gen(p))}", file=sys.stderr)
                bad += 1
    if bad:
        print(f"{bad} pages wrong", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("run", "verify"):
        sys.exit(__doc__)
    sys.exit(run(sys.argv[2]) if sys.argv[1] == "run" else verify(sys.argv[2]))
