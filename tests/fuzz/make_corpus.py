#!/usr/bin/env python3
"""Write the seed corpus of the fuzz targets into tests/fuzz/corpus/<target>/.

    tests/fuzz/make_corpus.py STORE KSDIR

STORE and KSDIR: a real store and its keystore (from `medvault init`, ideally
with a PKCS#11 slot and a passphrase slot) whose medvault.conf and .keys file
become seeds.  Everything else is encoded here from docs/FORMAT.md,
docs/KEYS.md and include/audit/audit.h.  Seeds hold no secret: the keystore's
slots wrap a throwaway key.
"""
import glob, os, struct, sys

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")


def seed(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    store, ks = sys.argv[1], sys.argv[2]
    conf = open(os.path.join(store, "medvault.conf"), "rb").read()
    seed("fuzz_volconf", "real.conf", conf)
    seed("fuzz_volconf", "newer-format.conf", conf.replace(b"format=1", b"format=2"))
    seed("fuzz_volconf", "xchacha.conf", conf.replace(b"aes256gcm", b"xchacha20poly1305"))
    seed("fuzz_volconf", "no-mac.conf", conf.split(b"mac=")[0])

    for path in glob.glob(os.path.join(ks, "*.keys")):
        keys = open(path, "rb").read()
        seed("fuzz_keystore", "real-fixsum", b"\x01" + keys)
        seed("fuzz_keystore", "real-raw", b"\x00" + keys)
        seed("fuzz_keystore", "real-othervol", b"\x03" + keys)
        seed("fuzz_keystore", "truncated", b"\x00" + keys[:-7])

    be = lambda fmt, *v: struct.pack(">" + fmt, *v)
    # index records: [klen][key][plaintext]
    ino = be("Q", 5)
    inode = (bytes([1]) + be("IIII", 0o100644, 1000, 1000, 1) + be("QQ", 12345, 32) +
             be("qI", 1700000000, 5) * 3 + be("QQ", 0, 1) + be("III", 0, 0, 0))
    seed("fuzz_index_record", "inode", bytes([8]) + ino + inode + be("H", 0))
    seed("fuzz_index_record", "symlink", bytes([8]) + ino + inode + be("H", 6) + b"target")
    dkey = be("Q", 1) + bytes(range(16))
    seed("fuzz_index_record", "dirent", bytes([24]) + dkey + be("Q", 5) + bytes([8, 9]) + b"study.dcm")
    seed("fuzz_index_record", "chunk", bytes([16]) + be("QQ", 5, 0) + be("QQII", 1, 32, 4136, 4096) + be("Q", (3 << 40) | 7))
    seed("fuzz_index_record", "pack", bytes([8]) + be("Q", 1) + be("QQI", 4096, 8192, 1))

    # ACLs: [mode u16 le][xattr value]
    le = lambda fmt, *v: struct.pack("<" + fmt, *v)
    ent = lambda tag, perm, id=0xFFFFFFFF: le("HHI", tag, perm, id)
    minimal = le("I", 2) + ent(1, 6) + ent(4, 4) + ent(0x20, 4)
    named = le("I", 2) + ent(1, 7) + ent(2, 6, 1000) + ent(2, 4, 1001) + ent(4, 5) + ent(8, 5, 100) + ent(0x10, 7) + ent(0x20, 0)
    seed("fuzz_acl", "minimal", le("H", 0o640) + minimal)
    seed("fuzz_acl", "named", le("H", 0o750) + named)
    seed("fuzz_acl", "mask-only", le("H", 0o777) + le("I", 2) + ent(1, 7) + ent(4, 5) + ent(0x10, 5) + ent(0x20, 1))

    uris = [
        b"pkcs11:token=medvault;object=medvault-kek?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/tmp/pin",
        b"pkcs11:token=med%20vault;object=medvault-kek;type=secret-key?module-path=/m.so&pin-source=file:///tmp/pin",
        b"pkcs11:object=k;serial=1234;manufacturer=SoftHSM?module-path=/m.so&pin-source=/p",
        b"pkcs11:token=t?module-path=/m.so&pin-value=1234",
        b"pkcs11:token=t?module-name=softhsm2&pin-source=file://localhost/p",
    ]
    for i, u in enumerate(uris):
        seed("fuzz_pkcs11_uri", "uri%d" % i, u)

    # aead: garbage mode (bit 1 clear) and structured mode (bit 1 set), both ciphers
    seed("fuzz_aead_open", "garbage-xc", bytes([0, 21]) + b"MVI1" + bytes(17) + bytes(64))
    seed("fuzz_aead_open", "garbage-gcm", bytes([1, 0]) + bytes(28))
    rec = be("Q", 5) + bytes([8, 9]) + b"study.dcm"
    seed("fuzz_aead_open", "struct-xc", bytes([2, 1, 0, 3, 17, 24]) + dkey + rec)
    seed("fuzz_aead_open", "struct-gcm", bytes([3, 0, 1, 7, 200, 8]) + ino + inode + be("H", 0))

    # audit records (layout of audit_record_pack)
    def record(op, comm, path, path2=b"", detail=b"", result=0):
        return (bytes([1, op]) + be("H", 0) + be("I", result) + be("q", 1700000000000000) +
                be("III", 0, 0, 4242) + be("Q", 12) + be("HHHH", len(comm), len(path), len(path2), len(detail)) +
                comm + path + path2 + detail)
    r1 = record(1, b"cat", b"/studies/1234/img1.dcm")
    r2 = record(7, b"mv", b"/a", b"/b", b"", 0)
    r3 = record(9, b"chmod", b"/a", b"", b"mode=0640", 13)
    seed("fuzz_audit_record", "open", b"\x00" + r1)
    seed("fuzz_audit_record", "rename", b"\x02" + r2)
    seed("fuzz_audit_record", "chmod", b"\x01" + r3)
    hdr = b"MVAUDIT1" + be("II", 1, 0) + b"fuzz-volume-uuid" + be("Q", 0) + bytes(32) + be("qQ", 1704067200000000, 1) + bytes(40)
    cp = b"MVAUDCP1" + be("II", 1, 0) + b"fuzz-volume-uuid" + be("QQ", 0, 3) + bytes(32) + be("qQ", 1704067300000000, 1) + bytes(40)
    seed("fuzz_audit_record", "header", b"\x01" + hdr)
    seed("fuzz_audit_record", "checkpoint", b"\x01" + cp)
    seed("fuzz_audit_record", "strings", b"\x02" + b"cat\0/studies/1\0\0size=0")

    # audit files: flags, then ctl u8 | len u16 | bytes
    item = lambda ctl, b: bytes([ctl]) + be("H", len(b)) + b
    seed("fuzz_audit_file", "clean3", b"\x00" + item(0, b"cat\0/a\0\0") + item(0, b"mv\0/a\0/b\0") + item(8, r3))
    seed("fuzz_audit_file", "tampered", b"\x00" + item(0, b"cat\0/a\0\0") + item(4 | (3 << 5), b"x\0/p\0\0d"))
    seed("fuzz_audit_file", "skip-seq", b"\x08" + item(0, b"a\0/1") + item(1, b"a\0/2") + item(0, b"a\0/3"))
    seed("fuzz_audit_file", "torn-tail", b"\x01" + item(0, b"cat\0/a") + b"\x00\x00\x01")
    seed("fuzz_audit_file", "no-cp", b"\x04" + item(0, b"cat\0/a"))
    seed("fuzz_audit_file", "raw", b"\x02" + hdr + be("I", 60) + bytes([1]) + be("Q", 0) + bytes(51))


if __name__ == "__main__":
    main()
