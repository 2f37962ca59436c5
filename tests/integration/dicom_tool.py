#!/usr/bin/env python3
"""Helpers for t_85_dicom.sh (no pydicom on Debian 12 by default).

  dicom_tool.py pixels OUTDIR N SEED
      write OUTDIR/px_NNNN.raw: N slices of a 512x512 16-bit CT-like phantom
      (body ellipse, a moving "bone" disc, 5 bits of noise, slice number in
      the first pixels), 12 bits stored, little endian.

  dicom_tool.py scan FILE|DIR...
      parse every DICOM Part 10 file (explicit or implicit VR little endian)
      and print one tab-separated line per file:
      SOPInstanceUID PatientID StudyInstanceUID SeriesInstanceUID
      InstanceNumber Rows Columns BitsAllocated len(PixelData) sha256(PixelData)
      A file that does not parse prints "ERROR<TAB>path<TAB>why" and the
      exit status is 1.
"""
import hashlib
import os
import struct
import sys

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC",
            b"UN", b"UR", b"UT", b"UV"}
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEF = 0xFFFFFFFF
WANT = {
    0x00080018: "sop", 0x00100020: "pid", 0x0020000D: "study",
    0x0020000E: "series", 0x00200013: "inst", 0x00280010: "rows",
    0x00280011: "cols", 0x00280100: "bits", 0x7FE00010: "pixels",
}


class Bad(Exception):
    pass


def parse(buf, pos, end, explicit, out, depth=0, stop=None):
    """Walk data elements in buf[pos:end]; top-level ones of interest go to
    out.  Returns the position after the walk (or after the delimiter stop)."""
    while pos < end:
        if pos + 8 > end:
            raise Bad("truncated element header at %d" % pos)
        group, elem = struct.unpack_from("<HH", buf, pos)
        tag = (group << 16) | elem
        if tag in (ITEM, ITEM_END, SEQ_END):
            (length,) = struct.unpack_from("<I", buf, pos + 4)
            pos += 8
            if tag == stop:
                return pos
            if tag == ITEM:
                if length == UNDEF:
                    pos = parse(buf, pos, end, explicit, out, depth + 1, ITEM_END)
                else:
                    parse(buf, pos, pos + length, explicit, out, depth + 1)
                    pos += length
                continue
            raise Bad("unexpected delimiter %08x at %d" % (tag, pos - 8))
        if explicit:
            vr = bytes(buf[pos + 4:pos + 6])
            if vr in LONG_VRS:
                (length,) = struct.unpack_from("<I", buf, pos + 8)
                pos += 12
            else:
                (length,) = struct.unpack_from("<H", buf, pos + 6)
                pos += 8
        else:
            vr = None
            (length,) = struct.unpack_from("<I", buf, pos + 4)
            pos += 8
        if length == UNDEF:
            # a sequence, or encapsulated pixel data: items until SEQ_END
            pos = parse(buf, pos, end, explicit, {}, depth + 1, SEQ_END)
            if depth == 0 and tag == 0x7FE00010:
                raise Bad("encapsulated (compressed) pixel data")
            continue
        if pos + length > end:
            raise Bad("element %08x overruns the file (%d bytes at %d)" % (tag, length, pos))
        if vr == b"SQ":
            parse(buf, pos, pos + length, explicit, {}, depth + 1)
        elif depth == 0 and tag in WANT:
            out[WANT[tag]] = (vr, buf[pos:pos + length])
        pos += length
    if stop is not None:
        raise Bad("missing delimiter %08x" % stop)
    return pos


def text(v):
    return bytes(v[1]).rstrip(b"\0 ").decode("ascii", "replace") if v else ""


def us(v):
    return str(struct.unpack("<H", bytes(v[1][:2]))[0]) if v and len(v[1]) >= 2 else ""


def scan_file(path):
    with open(path, "rb") as f:
        buf = memoryview(f.read())
    if len(buf) < 132 or bytes(buf[128:132]) != b"DICM":
        raise Bad("no DICM preamble")
    # file meta information: always explicit VR little endian
    pos = 132
    meta = {}
    ts = None
    while pos + 8 <= len(buf):
        group, elem = struct.unpack_from("<HH", buf, pos)
        if group != 0x0002:
            break
        vr = bytes(buf[pos + 4:pos + 6])
        if vr in LONG_VRS:
            (length,) = struct.unpack_from("<I", buf, pos + 8)
            pos += 12
        else:
            (length,) = struct.unpack_from("<H", buf, pos + 6)
            pos += 8
        if elem == 0x0010:
            ts = bytes(buf[pos:pos + length]).rstrip(b"\0 ").decode()
        meta[elem] = bytes(buf[pos:pos + length])
        pos += length
    if ts == EXPLICIT_LE:
        explicit = True
    elif ts == IMPLICIT_LE:
        explicit = False
    else:
        raise Bad("unsupported transfer syntax %r" % ts)
    out = {}
    parse(buf, pos, len(buf), explicit, out)
    if "pixels" not in out:
        raise Bad("no PixelData (7fe0,0010)")
    px = bytes(out["pixels"][1])
    return [text(out.get("sop")), text(out.get("pid")), text(out.get("study")),
            text(out.get("series")), text(out.get("inst")), us(out.get("rows")),
            us(out.get("cols")), us(out.get("bits")), str(len(px)),
            hashlib.sha256(px).hexdigest()]


def scan(args):
    files = []
    for a in args:
        if os.path.isdir(a):
            for root, _, names in os.walk(a):
                files += [os.path.join(root, n) for n in names]
        else:
            files.append(a)
    rc = 0
    for path in sorted(files):
        try:
            print("\t".join(scan_file(path)))
        except (Bad, OSError, struct.error, UnicodeDecodeError) as e:
            print("ERROR\t%s\t%s" % (path, e))
            rc = 1
    return rc


def pixels(outdir, n, seed):
    rows = cols = 512
    air, tissue, bone = 0, 1064, 1724  # stored values; rescale intercept -1024
    rnd = __import__("random").Random(seed)
    mask = int.from_bytes(b"\x1f\x00" * (rows * cols), "little")
    a2, b2 = 230.0 ** 2, 180.0 ** 2
    for s in range(n):
        cx = 256 + int(60 * ((s % 50) - 25) / 25)
        cy, r = 240, 22 + (s % 7)
        img = bytearray()
        for y in range(rows):
            dy = y - 256
            if dy * dy >= b2:
                img += struct.pack("<H", air) * cols
                continue
            half = int((a2 * (1 - dy * dy / b2)) ** 0.5)
            x0, x1 = 256 - half, 256 + half
            row = bytearray(struct.pack("<H", air) * x0 + struct.pack("<H", tissue) * (x1 - x0)
                            + struct.pack("<H", air) * (cols - x1))
            ey = y - cy
            if ey * ey < r * r:
                h = int((r * r - ey * ey) ** 0.5)
                row[2 * (cx - h):2 * (cx + h)] = struct.pack("<H", bone) * (2 * h)
            img += row
        noise = int.from_bytes(rnd.randbytes(rows * cols * 2), "little") & mask
        img = (int.from_bytes(img, "little") ^ noise).to_bytes(rows * cols * 2, "little")
        img = struct.pack("<HH", s & 0xFFF, (seed + s) & 0xFFF) + img[4:]
        with open(os.path.join(outdir, "px_%04d.raw" % s), "wb") as f:
            f.write(img)
    return 0


def main(argv):
    if len(argv) >= 2 and argv[1] == "scan":
        return scan(argv[2:])
    if len(argv) == 5 and argv[1] == "pixels":
        return pixels(argv[2], int(argv[3]), int(argv[4]))
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
