#!/usr/bin/env python3
"""Compare two directory trees entry by entry; print every difference.

    compare_trees.py [options] EXPECTED ACTUAL

EXPECTED is the original tree, ACTUAL the restored one. Compared, for every entry:
its name (any bytes), type, content bytes, mode with setuid/setgid/sticky, uid and gid,
mtime in nanoseconds (directories and symlinks included), symlink target, device
numbers, hardlink groups (the set of paths sharing an inode must be the same on both
sides, counting only links inside the tree), and holes: a file that is sparse in
EXPECTED (at least 1 MiB of its size not allocated) must have fewer allocated bytes than
its size in ACTUAL too.
The two top directories are compared like any other entry (mode, owner, mtime) unless
--skip-top is given. --uid-map OLD:NEW (and --gid-map) expects an entry owned by OLD in
EXPECTED to be owned by NEW in ACTUAL: a restore onto a machine where the same user
name has another id.

The walk goes through directory descriptors (openat-style), so paths longer than
PATH_MAX are fine. Exit status: 0 same, 1 differences (each printed on stdout), 2 usage.
"""

import argparse
import os
import stat
import sys

BLOCK = 1 << 20
SPARSE_MIN = 1 << 20


def show(rel):
    """A printable form of a bytes path: escapes for anything not printable ASCII."""
    if not rel:
        return "/"
    out = []
    for b in rel:
        if 0x20 <= b < 0x7F and b != 0x5C:
            out.append(chr(b))
        elif b == 0x5C:
            out.append("\\\\")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        else:
            out.append("\\x%02x" % b)
    s = "".join(out)
    if len(s) > 300:
        s = s[:140] + "...(%d bytes)..." % len(rel) + s[-140:]
    return "/" + s


def sparse(st):
    """A file with a real hole: at least SPARSE_MIN bytes of it are not allocated. Smaller
    holes do not count: content-defined chunks may cover them with written zeros."""
    return st.st_blocks * 512 + SPARSE_MIN <= st.st_size


def kind(mode):
    for test, name in (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "dir"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "chardev"),
        (stat.S_ISBLK, "blockdev"),
    ):
        if test(mode):
            return name
    return "unknown"


class Side:
    """One tree: lstat results and inode groups, keyed by relative bytes path."""

    def __init__(self, top):
        self.top = top
        self.stats = {}
        self.inodes = {}  # (dev, ino) -> [rel, ...] for non-directories
        self.errors = []


def walk(side, dirfd, rel):
    try:
        names = sorted(e.name for e in os.scandir(dirfd))
    except OSError as e:
        side.errors.append((rel, "cannot list: %s" % e.strerror))
        return
    # scandir(fd) yields str names; turn them back into the exact bytes.
    for name in names:
        bname = os.fsencode(name)
        crel = rel + b"/" + bname if rel else bname
        try:
            st = os.lstat(bname, dir_fd=dirfd)
        except OSError as e:
            side.errors.append((crel, "cannot stat: %s" % e.strerror))
            continue
        side.stats[crel] = st
        if stat.S_ISDIR(st.st_mode):
            try:
                fd = os.open(bname, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dirfd)
            except OSError as e:
                side.errors.append((crel, "cannot open directory: %s" % e.strerror))
                continue
            try:
                walk(side, fd, crel)
            finally:
                os.close(fd)
        else:
            side.inodes.setdefault((st.st_dev, st.st_ino), []).append(crel)


def load(top):
    side = Side(top)
    btop = os.fsencode(top)
    side.stats[b""] = os.lstat(btop)
    fd = os.open(btop, os.O_RDONLY | os.O_DIRECTORY)
    try:
        walk(side, fd, b"")
    finally:
        os.close(fd)
    return side


def open_at(top, rel):
    """Opens top/rel for reading without ever building a path longer than one name."""
    fd = os.open(os.fsencode(top), os.O_RDONLY | os.O_DIRECTORY)
    parts = rel.split(b"/")
    try:
        for p in parts[:-1]:
            nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)


def readlink_at(top, rel):
    parent, _, name = rel.rpartition(b"/")
    fd = os.open(os.fsencode(top), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for p in parent.split(b"/") if parent else []:
            nfd = os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return os.readlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def first_difference(a_top, b_top, rel):
    """None when the contents are equal, else a description of the first difference."""
    fa = open_at(a_top, rel)
    try:
        fb = open_at(b_top, rel)
    except OSError:
        os.close(fa)
        raise
    try:
        off = 0
        while True:
            x = os.read(fa, BLOCK)
            y = os.read(fb, BLOCK)
            # os.read may return short counts; top up so blocks line up.
            while len(x) < BLOCK:
                more = os.read(fa, BLOCK - len(x))
                if not more:
                    break
                x += more
            while len(y) < BLOCK:
                more = os.read(fb, BLOCK - len(y))
                if not more:
                    break
                y += more
            if x != y:
                n = min(len(x), len(y))
                i = next((k for k in range(n) if x[k] != y[k]), n)
                return "content differs at byte %d" % (off + i)
            if not x:
                return None
            off += len(x)
    finally:
        os.close(fa)
        os.close(fb)


def compare(args):
    a = load(args.expected)
    b = load(args.actual)
    diffs = []

    def diff(rel, msg):
        diffs.append("%s: %s" % (show(rel), msg))

    for rel, msg in a.errors:
        diff(rel, "expected side: " + msg)
    for rel, msg in b.errors:
        diff(rel, "actual side: " + msg)

    excluded = [os.fsencode(x).strip(b"/") for x in args.exclude]

    def is_excluded(rel):
        return any(rel == x or rel.startswith(x + b"/") for x in excluded)

    def group(side, rel):
        st = side.stats[rel]
        return frozenset(side.inodes.get((st.st_dev, st.st_ino), [rel]))

    compared = 0
    for rel in sorted(set(a.stats) | set(b.stats)):
        if is_excluded(rel):
            continue
        sa, sb = a.stats.get(rel), b.stats.get(rel)
        if sb is None:
            if args.ignore_sockets and stat.S_ISSOCK(sa.st_mode):
                continue
            diff(rel, "missing (a %s in the expected tree)" % kind(sa.st_mode))
            continue
        if sa is None:
            diff(rel, "unexpected %s (not in the expected tree)" % kind(sb.st_mode))
            continue
        compared += 1
        ka, kb = kind(sa.st_mode), kind(sb.st_mode)
        if ka != kb:
            diff(rel, "type %s, expected %s" % (kb, ka))
            continue
        top = rel == b""
        if top and args.skip_top:
            continue
        ma, mb = stat.S_IMODE(sa.st_mode), stat.S_IMODE(sb.st_mode)
        if ka != "symlink" and ma != mb:
            diff(rel, "mode %04o, expected %04o" % (mb, ma))
        want_owner = (args.uid_map.get(sa.st_uid, sa.st_uid), args.gid_map.get(sa.st_gid, sa.st_gid))
        if not args.no_owner and want_owner != (sb.st_uid, sb.st_gid):
            diff(rel, "owner %d:%d, expected %d:%d" % ((sb.st_uid, sb.st_gid) + want_owner))
        if not args.no_mtime and sa.st_mtime_ns != sb.st_mtime_ns:
            if not (ka == "dir" and args.no_dir_mtime):
                diff(rel, "mtime %d ns, expected %d ns" % (sb.st_mtime_ns, sa.st_mtime_ns))
        if ka == "symlink":
            ta, tb = readlink_at(a.top, rel), readlink_at(b.top, rel)
            if ta != tb:
                diff(rel, "symlink to %s, expected %s" % (show(tb)[1:], show(ta)[1:]))
        elif ka in ("chardev", "blockdev"):
            if sa.st_rdev != sb.st_rdev:
                diff(rel, "device %d:%d, expected %d:%d" % (
                    os.major(sb.st_rdev), os.minor(sb.st_rdev),
                    os.major(sa.st_rdev), os.minor(sa.st_rdev)))
        elif ka == "file":
            if sa.st_size != sb.st_size:
                diff(rel, "size %d, expected %d" % (sb.st_size, sa.st_size))
            try:
                d = first_difference(a.top, b.top, rel)
            except OSError as e:
                d = "cannot read: %s" % e.strerror
            if d:
                diff(rel, d)
            if not args.no_sparse and sparse(sa) and sb.st_blocks * 512 >= sb.st_size:
                diff(rel, "not sparse: %d bytes allocated for %d (expected %d allocated)" % (
                    sb.st_blocks * 512, sb.st_size, sa.st_blocks * 512))
        if ka != "dir" and not args.no_hardlinks:
            ga, gb = group(a, rel), group(b, rel)
            if ga != gb:
                diff(rel, "hardlinked with {%s}, expected {%s}" % (
                    ", ".join(show(x) for x in sorted(gb - {rel})),
                    ", ".join(show(x) for x in sorted(ga - {rel}))))

    for line in diffs:
        print(line)
    if not args.quiet or diffs:
        print("%d entries compared, %d difference%s" % (
            compared, len(diffs), "" if len(diffs) == 1 else "s"),
            file=sys.stderr)
    return 1 if diffs else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("expected")
    p.add_argument("actual")
    p.add_argument("--no-owner", action="store_true", help="do not compare uid/gid")
    p.add_argument("--no-mtime", action="store_true", help="do not compare mtimes")
    p.add_argument("--no-dir-mtime", action="store_true", help="do not compare directory mtimes")
    p.add_argument("--no-sparse", action="store_true", help="do not require holes to be kept")
    p.add_argument("--no-hardlinks", action="store_true", help="do not compare hardlink groups")
    p.add_argument("--ignore-sockets", action="store_true",
                   help="a socket of EXPECTED may be missing from ACTUAL")
    p.add_argument("--skip-top", action="store_true",
                   help="do not compare the metadata of the two top directories")
    p.add_argument("--exclude", action="append", default=[], metavar="REL",
                   help="skip this relative path and everything below it (repeatable)")
    p.add_argument("--uid-map", action="append", default=[], metavar="OLD:NEW",
                   help="an owner OLD in EXPECTED is NEW in ACTUAL (repeatable)")
    p.add_argument("--gid-map", action="append", default=[], metavar="OLD:NEW",
                   help="a group OLD in EXPECTED is NEW in ACTUAL (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary when equal")
    args = p.parse_args()
    for name in ("uid_map", "gid_map"):
        pairs = {}
        for m in getattr(args, name):
            old, _, new = m.partition(":")
            pairs[int(old)] = int(new)
        setattr(args, name, pairs)
    for d in (args.expected, args.actual):
        if not os.path.isdir(d):
            print("compare_trees: %s is not a directory" % d, file=sys.stderr)
            return 2
    return compare(args)


if __name__ == "__main__":
    sys.exit(main())
