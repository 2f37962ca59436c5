#!/usr/bin/env python3
"""Check the include graph against medvault's layering (docs/DESIGN.md).

    scripts/check-layers.py [--graph] [--objects BUILD]

Layers, top to bottom: cli -> daemon -> core -> {store, audit} -> crypto -> util.
A file may include headers of its own layer or of any layer below it; store
and audit never include each other.  Interface headers live in
include/<layer>/ and are included as "layer/x.h"; a header included by a bare
name must sit beside the source (an internal header of that folder).
Library headers are fenced: <fuse*.h> only in fs/daemon, <lmdb.h> only in
the index (fs/store/index.c) and the structural check that runs before
LMDB may open an untrusted data.mdb (fs/store/index_check.c), <sodium.h>
only in crypto/.  Inside a folder, modules (x.c with its x.h) must not
depend on each other in a circle: a source file depends on every header it
reaches, through other headers too, and a header without a source of its
own (crypto/ks_internal.h) adds no edge back.

An interface header is in include/ because something outside its folder
(another layer, a unit test, a fuzzer, a test tool) includes it; a header
only its own folder uses belongs beside the sources.

With --objects BUILD (make test passes its build directory) the calls are
checked too, from the compiled objects' symbol tables (nm): no function
calls into a layer above it or into its sibling, and no two source files
call each other in a circle, so a call that dodges the headers (a
prototype written by hand) is caught as well.

Prints TAP, one line per rule, and "# N passed, M failed"; exits non-zero on
a violation, so `make test` fails on it.  --graph prints the module edges.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
RANK = {"util": 1, "crypto": 2, "store": 3, "audit": 3, "core": 4, "daemon": 5, "cli": 6}
FENCES = [
    (re.compile(r"^fuse(_lowlevel|_opt|_common)?\.h$"), lambda p: p.startswith("fs/daemon/"),
     "<fuse*.h> outside fs/daemon"),
    (re.compile(r"^lmdb\.h$"), lambda p: p in ("fs/store/index.c", "fs/store/index_check.c"),
     "<lmdb.h> outside fs/store/index.c and fs/store/index_check.c"),
    (re.compile(r"^sodium(/.*)?\.h$"), lambda p: p.startswith("crypto/"), "<sodium.h> outside crypto/"),
]
# A facade declares one layer's calls for the layers above it and is
# implemented across that layer's files, so it is no module of its own: a
# file of the layer reaching it (for its types) is no edge back to the rest.
FACADES = {"include/core/mvfs.h"}
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def layer_of(path):
    """The layer a product file belongs to, or None for anything else."""
    parts = path.split("/")
    if parts[0] == "crypto":
        return "crypto"
    if parts[0] in ("fs", "include") and len(parts) > 2 and parts[1] in RANK:
        return parts[1]
    return None


def product_files():
    out = []
    for top in ("fs", "crypto", "include"):
        for dirpath, _, names in os.walk(os.path.join(ROOT, top)):
            for n in names:
                if n.endswith((".c", ".h")):
                    out.append(os.path.relpath(os.path.join(dirpath, n), ROOT))
    return sorted(out)


def module_of(path):
    """fs/core/namespace.c and include/core/namespace.h are one module."""
    layer = layer_of(path)
    return "%s/%s" % (layer, os.path.splitext(os.path.basename(path))[0])


def find_cycle(edges):
    """One circle in the graph as a list of nodes, or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def object_calls(build):
    """(problems, edges) of the calls between the compiled product objects."""
    objs = {}
    for path in product_files():
        if path.endswith(".c") and layer_of(path):
            obj = os.path.join(build, path[:-2] + ".o")
            if os.path.exists(obj):
                objs[path] = obj
    defined, wanted = {}, {}
    for src, obj in objs.items():
        out = subprocess.run(["nm", obj], capture_output=True, text=True, check=True).stdout
        wanted[src] = set()
        for line in out.splitlines():
            f = line.split()
            if len(f) == 3 and f[1] in "TDBR":
                defined[f[2]] = src
            elif len(f) == 2 and f[0] == "U":
                wanted[src].add(f[1])
    problems, edges = [], {}
    for src, syms in wanted.items():
        me = layer_of(src)
        for sym in sorted(syms):
            dst = defined.get(sym)
            if not dst or dst == src:
                continue
            them = layer_of(dst)
            if RANK[them] > RANK[me] or (RANK[them] == RANK[me] and them != me):
                problems.append("%s calls %s (%s), in %s" % (src, sym, dst, them))
            edges.setdefault(src, set()).add(dst)
    return problems, edges, len(objs)


def main():
    problems = []
    edges = {}
    direct = {}
    files = product_files()
    for path in files:
        me = layer_of(path)
        if me is None:
            problems.append("%s: not inside a layer folder" % path)
            continue
        with open(os.path.join(ROOT, path), encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        for lineno, line in enumerate(lines, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            kind, name = m.groups()
            where = "%s:%d" % (path, lineno)
            if kind == "<":
                for rx, allowed, what in FENCES:
                    if rx.match(name) and not allowed(path):
                        problems.append("%s: %s" % (where, what))
                continue
            if "/" not in name:
                beside = os.path.join(os.path.dirname(path), name)
                if not os.path.exists(os.path.join(ROOT, beside)):
                    problems.append('%s: "%s" is neither beside the source nor "layer/x.h"' % (where, name))
                    continue
                target = beside
            else:
                target = os.path.normpath(os.path.join("include", name))
                if not os.path.exists(os.path.join(ROOT, target)):
                    # tests/ and tools may use relative paths; product code may not
                    problems.append('%s: "%s" is not a header under include/' % (where, name))
                    continue
            them = layer_of(target)
            if them is None:
                problems.append('%s: "%s" is outside every layer' % (where, name))
                continue
            if RANK[them] > RANK[me]:
                problems.append("%s: %s includes %s, a layer above it" % (where, me, them))
            elif RANK[them] == RANK[me] and them != me:
                problems.append("%s: %s and %s are siblings and must not include each other" %
                                (where, me, them))
            direct.setdefault(path, set()).add(target)
    for path in files:
        if not path.endswith(".c") or layer_of(path) is None:
            continue
        seen, todo = set(), list(direct.get(path, ()))
        while todo:
            h = todo.pop()
            if h not in seen:
                seen.add(h)
                todo.extend(direct.get(h, ()))
        a = module_of(path)
        for h in seen:
            if h in FACADES:
                continue
            b = module_of(h)
            if a != b:
                edges.setdefault(a, set()).add(b)
    # who includes each interface header from outside its own folder
    outside = set()
    for dirpath, _, names in os.walk(os.path.join(ROOT, "tests")):
        for n in names:
            if n.endswith((".c", ".h")):
                with open(os.path.join(dirpath, n), encoding="utf-8", errors="replace") as f:
                    for line in f:
                        m = INCLUDE.match(line)
                        if m and m.group(1) == '"' and "/" in m.group(2):
                            outside.add(os.path.normpath(os.path.join("include", m.group(2))))
    for path, targets in direct.items():
        for t in targets:
            if t.startswith("include/") and layer_of(t) != layer_of(path):
                outside.add(t)
    for path in files:
        if path.startswith("include/") and path not in outside:
            problems.append("%s: used only inside its folder: it belongs beside the sources" % path)
    if "--graph" in sys.argv:
        for a in sorted(edges):
            print("%s -> %s" % (a, " ".join(sorted(edges[a]))))
    cycle = find_cycle(edges)
    n_ok = 0
    print("1..%d" % (4 if "--objects" in sys.argv else 3))
    if problems:
        print("not ok 1 - every include runs downward, library headers fenced, headers placed by the rule")
        for p in problems:
            print("#   " + p)
    else:
        n_ok += 1
        print("ok 1 - every include runs downward, library headers fenced, headers placed by the rule (%d files)" % len(files))
    if cycle:
        print("not ok 2 - no circle between modules: " + " -> ".join(cycle))
    else:
        n_ok += 1
        print("ok 2 - no circle between modules (%d modules with includes)" % len(edges))
    # the checker must be able to fail: a planted upward include is caught
    planted = {"util/x": {"cli/y"}, "cli/y": {"util/x"}}
    if find_cycle(planted) and RANK["cli"] > RANK["util"]:
        n_ok += 1
        print("ok 3 - the checker catches a planted circle")
    else:
        print("not ok 3 - the checker catches a planted circle")
    total = 3
    if "--objects" in sys.argv:
        build = sys.argv[sys.argv.index("--objects") + 1]
        total += 1
        calls, call_edges, nobj = object_calls(build)
        circle = find_cycle(call_edges)
        if nobj == 0:
            print("not ok %d - calls run downward: no objects in %s" % (total, build))
        elif calls or circle:
            print("not ok %d - calls run downward, no circle of calls between files" % total)
            for p in calls:
                print("#   " + p)
            if circle:
                print("#   circle: " + " -> ".join(circle))
        else:
            n_ok += 1
            print("ok %d - calls run downward, no circle of calls between files (%d objects)" %
                  (total, nobj))
    n_fail = total - n_ok
    print("# %d passed, %d failed" % (n_ok, n_fail))
    return 1 if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
