#!/usr/bin/env python3
"""Checks one --json output against docs/JSON.md (schema version 1).

    check_json.py JSON.md SECTION OUTPUT   stdout of `permafrost --json SECTION ...`
    check_json.py JSON.md --error OUTPUT [KIND EXIT_CODE]
                                           stderr of a failed command: its last line (and
                                           that its kind and exit_code are those given)

A SECTION is a heading "### `name`" of JSON.md; below it, "Shape: object" or "Shape:
array", then a table | field | type | meaning |. A field is a path: "a.b" inside
objects, "a[].b" for every element of the array a; in an array section the paths are
those of each element. The type is one of string, integer, number, boolean, time,
array, object, optionally "or null", optionally followed by ", optional" (may be
absent). Beyond the table, every document is held to the rules of JSON.md,
"Conventions": one JSON document in UTF-8; every time field (the names listed there) is
RFC 3339 with a zone; a non-integer number only in a duration or ratio field, with at
most 3 decimals.
Exits non-zero naming the first violation.
"""
import json
import re
import sys

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
TIME_KEYS = {"time", "created", "mtime"}
DEPRECATED_TIME_KEYS = {"time_local"}  # JSON.md: deprecated, not RFC 3339, goes in version 2
# JSON.md, "Numbers": the only non-integers are durations and ratios.
def fraction_allowed(key):
    return key is not None and (key == "seconds" or key.endswith("_seconds") or key.endswith("_ratio"))


def fail(msg):
    sys.exit("check_json: " + msg)


def sections(md):
    out, name, shape, rows = {}, None, None, None
    for line in md.splitlines():
        m = re.match(r"^### `([^`]+)`", line)
        if m:
            name, shape, rows = m.group(1), None, []
            out[name] = (None, rows)
            continue
        if name is None:
            continue
        if line.startswith("## "):
            name = None
            continue
        m = re.match(r"^Shape: (object|array)", line)
        if m:
            shape = m.group(1)
            out[name] = (shape, rows)
            continue
        m = re.match(r"^\| `([^`]+)` \| ([^|]+) \|", line)
        if m:
            rows.append((m.group(1), m.group(2).strip()))
    return out


def is_time(v):
    if not isinstance(v, str) or not RFC3339.match(v):
        return False
    mo, d, h, mi, s = int(v[5:7]), int(v[8:10]), int(v[11:13]), int(v[14:16]), int(v[17:19])
    return 1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61


def type_ok(v, t):
    base = t.split(",")[0].strip()
    alts = [a.strip() for a in base.split(" or ")]
    for a in alts:
        if a == "null" and v is None:
            return True
        if a == "string" and isinstance(v, str):
            return True
        if a == "time" and is_time(v):
            return True
        if a == "integer" and isinstance(v, int) and not isinstance(v, bool):
            return True
        if a == "number" and isinstance(v, (int, float)) and not isinstance(v, bool):
            return True
        if a == "boolean" and isinstance(v, bool):
            return True
        if a == "array" and isinstance(v, list):
            return True
        if a == "object" and isinstance(v, dict):
            return True
    return False


def resolve(doc, path):
    """Every (where, value) the path names; a missing key yields (where, KeyError)."""
    items = [("", doc)]
    for part in path.split("."):
        arr = part.endswith("[]")
        key = part[:-2] if arr else part
        nxt = []
        for where, v in items:
            if key:
                if not isinstance(v, dict):
                    continue  # a null parent: the parent's own row says if null is allowed
                if key not in v:
                    nxt.append((where + "." + key, KeyError))
                    continue
                where, v = where + "." + key, v[key]
            if arr:
                if not isinstance(v, list):
                    nxt.append((where, TypeError))
                    continue
                nxt.extend((where + "[%d]" % i, e) for i, e in enumerate(v))
            else:
                nxt.append((where, v))
        items = nxt
    return items


def rules(v, where="", key=None):
    """The conventions of JSON.md that hold for every document."""
    if isinstance(v, dict):
        for k, x in v.items():
            rules(x, where + "." + k, k)
    elif isinstance(v, list):
        for i, x in enumerate(v):
            rules(x, where + "[%d]" % i, key)
    elif isinstance(v, float):
        if not fraction_allowed(key):
            fail("%s: %r is not an integer (only durations and ratios may have decimals)" % (where, v))
        if round(v, 3) != v or len(repr(v).split(".")[1]) > 3:
            fail("%s: %r has more than 3 decimals" % (where, v))
    elif key in TIME_KEYS and v is not None and not is_time(v):
        fail("%s: %r is not an RFC 3339 time with a zone" % (where, v))


def main():
    md = open(sys.argv[1], encoding="utf-8").read()
    try:
        text = open(sys.argv[3], "rb").read().decode("utf-8")
    except UnicodeDecodeError as e:
        fail("%s: not UTF-8 (JSON text is): %s" % (sys.argv[2], e))
    if sys.argv[2] == "--error":
        lines = [l for l in text.splitlines() if l.strip()]
        if not lines:
            fail("nothing on stderr")
        text, name = lines[-1], "error"
    else:
        name = sys.argv[2]
    try:
        doc = json.loads(text)  # one document: trailing data is an error here
    except ValueError as e:
        fail("%s: not one JSON document: %s: %r" % (name, e, text[:200]))
    secs = sections(md)
    if name not in secs or not secs[name][0]:
        fail("JSON.md has no section \"### `%s`\" with a Shape line" % name)
    shape, rows = secs[name]
    if not rows:
        fail("JSON.md section %s has no fields" % name)
    if shape == "array" and not isinstance(doc, list):
        fail("%s: JSON.md says an array, got %s" % (name, type(doc).__name__))
    if shape == "object" and not isinstance(doc, dict):
        fail("%s: JSON.md says an object, got %s" % (name, type(doc).__name__))
    rules(doc)
    for path, t in rows:
        optional = t.endswith(", optional")
        for where, v in resolve(doc, ("[]." if shape == "array" else "") + path):
            if v is KeyError:
                if not optional:
                    fail("%s: documented field %s missing at %s" % (name, path, where))
                continue
            if v is TypeError or not type_ok(v, t):
                fail("%s: %s is %r, JSON.md says %s" % (name, where, v, t))
    if name == "error" and len(sys.argv) > 4:
        e = doc["error"]
        if e["kind"] != sys.argv[4] or e["exit_code"] != int(sys.argv[5]):
            fail("error: kind %s, exit_code %s; expected %s, %s" % (e["kind"], e["exit_code"], sys.argv[4], sys.argv[5]))
        if not e["message"] or "\n" in e["message"]:
            fail("error: the message is not one line: %r" % e["message"])
    print("ok: %s output follows JSON.md" % name)


main()
