#!/usr/bin/env bash
# Keeping backups healthy: retention, forget, prune, locks and keys through the real CLI.
#   retention  snapshots at synthetic times (backup --time): which ids each policy keeps,
#              --dry-run changes nothing and says why each kept snapshot stays
#   prune      forget --prune frees space and every kept snapshot restores exactly;
#              packs mostly unused (many small files, most deleted) are rewritten with
#              --max-unused 0, then check --read-data passes
#   leftovers  packs an interrupted backup left in no index: check sums them up in one
#              line (each named with -v); temporary files of killed writes older than
#              every live lock's lease are removed by prune, fresh ones stay
#   fulldisk   on a small tmpfs filled up: prune takes its lock with the reserve (or by
#              removing old temporary files), frees the forgotten snapshot's packs before
#              writing anything, writes the reserve again; with nothing to free it says so
#   kill       kill -9 at many moments during a prune that rewrites packs: check passes,
#              every kept snapshot restores, a second prune finishes the job
#   locks      prune refused (exit 11, holder named) while a backup holds a shared lock;
#              a kill -9'ed backup's lock does not block the next one; an expired lease
#              (another host's, or a stopped process's) is taken over with a warning;
#              unlock removes stale locks only, unlock --force every lock, naming each
#   parallel   two backups into one repository at once: both succeed, both restore
#   keys       key add/list/remove/passwd, paper export/import, tampered sheet, wrong
#              passphrase
# MAINT_PARTS="kill locks" runs some parts only; MAINT_KILL_MB (200) sizes the data of
# the prune and kill parts; MAINT_KILL_AT="0.05 0.3" overrides the kill moments (seconds).
# Needs python3 (tests/lib/compare_trees.py). The "another host" lock is made in a UTS
# namespace (unshare -u) when that is allowed, else with a stopped process on this host.
set -eEuo pipefail
trap 'echo "FAIL: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR

PF=${PERMAFROST:-$PWD/permafrost}
LIB=${PF_TESTLIB:-$(cd "$(dirname "$0")/../lib" && pwd)}
PARTS=${MAINT_PARTS:-retention prune leftovers fulldisk kill locks parallel keys}
KILL_MB=${MAINT_KILL_MB:-200}

W=$(mktemp -d "${TMPDIR:-/tmp}/pf-maint.XXXXXX")
BG_PIDS=()
FULL_MNT=
cleanup() {
    for p in "${BG_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    if [ -n "$FULL_MNT" ]; then umount "$FULL_MNT" 2>/dev/null || umount -l "$FULL_MNT" || true; fi
    chmod -R u+rwx "$W" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

export PERMAFROST_PASSWORD=maintenance-test-passphrase
PW=$PERMAFROST_PASSWORD
unset PERMAFROST_PASSWORD_FILE PERMAFROST_REPO PERMAFROST_HOST PERMAFROST_LOCK_LEASE
export PERMAFROST_LOCK_WAIT=10
export TZ=UTC # retention buckets are local time
: >"$W/empty.conf"
export PERMAFROST_CONFIG="$W/empty.conf" # nothing from /etc/permafrost.conf

say() { echo "== $*"; }
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
show_cmd() {
    local s
    s=$(printf '%q ' "$@")
    echo "${s:0:600}"
}

# run RC CMD...: runs CMD with stdout in $W/out.txt and stderr in $W/err.txt, and fails
# unless it exits with RC.
run() {
    local want=$1 rc=0
    shift
    "$@" >"$W/out.txt" 2>"$W/err.txt" || rc=$?
    local good=0
    if [ $rc = "$want" ]; then good=1; fi
    if [ $good = 0 ]; then
        echo "command: $(show_cmd "$@")" >&2
        echo "--- stdout (end)" >&2
        tail -c 2000 "$W/out.txt" >&2 || true
        echo "--- stderr (end)" >&2
        tail -c 3000 "$W/err.txt" >&2 || true
        fail "exit code $rc, expected $want"
    fi
}

pf() { "$PF" --repo "$REPO" "$@"; }

# JSON value from a file: jget FILE PYTHON-EXPR-ON-d
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

# grep_in FILE REGEX WHAT: fails naming WHAT unless FILE has a line matching REGEX.
grep_in() {
    if ! grep -Eq -- "$2" "$1"; then
        echo "--- $1:" >&2
        head -c 3000 "$1" >&2
        fail "$3 (no line matching /$2/)"
    fi
}
grep_not() {
    if grep -Eq -- "$2" "$1"; then
        echo "--- $1:" >&2
        head -c 3000 "$1" >&2
        fail "$3 (a line matches /$2/)"
    fi
}

compare() {
    if ! python3 "$LIB/compare_trees.py" --skip-top "$@" >"$W/cmp.txt" 2>&1; then
        head -n 40 "$W/cmp.txt" >&2
        fail "trees differ: $*"
    fi
}

# restore_compare SNAPSHOT SOURCE [NAME]: restores SNAPSHOT and compares it with SOURCE
# (the tree as it was at backup time). A snapshot stores a path under its base name, NAME
# (default: SOURCE's base name).
restore_compare() {
    rm -rf "$W/rc-target"
    run 0 pf restore "$1" --target "$W/rc-target"
    compare "$2" "$W/rc-target/${3:-$(basename "$2")}"
    rm -rf "$W/rc-target"
}

# The ids of the snapshots, sorted, one a line.
snapshot_ids() {
    run 0 pf --json snapshots
    python3 -c 'import json,sys; print("\n".join(sorted(s["id"] for s in json.load(open(sys.argv[1])))))' "$W/out.txt"
}

repo_bytes() { du -sb "$1" | cut -f1; }
# Bytes of the packs (data/<2 hex>/<64 hex>), what prune's bytes_before/after count.
pack_bytes() {
    find "$1/data" -type f -regextype posix-extended -regex '.*/[0-9a-f]{64}' -printf '%s\n' |
        awk '{s += $1} END {print s + 0}'
}

# Every object of a repository, with its size (a fingerprint of its state).
repo_listing() { (cd "$1" && find . -type f -printf '%p %s\n' | sort); }

# Live lock objects (not temporary files being written).
lock_count() {
    { find "$REPO/locks" -type f -regextype posix-extended -regex '.*/[0-9a-f]{64}' 2>/dev/null || true; } | wc -l
}

# Objects written while a run was killed are left as "<name>.tmp-<random>".
tmp_count() { find "$1" -type f -name '*.tmp-*' | wc -l; }

# ---------------------------------------------------------------------------------------
# Retention decided on synthetic times. The table-driven edge cases are in
# tests/unit/repo/test_retention.c; here a handful go through the real CLI and the real
# snapshot store. Times are UTC (TZ=UTC above). s4 carries the tag "keep".
declare -A SNAP
TIMES=(
    "s1 2024-01-01 09:00:00"  # Monday, ISO week 1
    "s2 2024-01-01 18:00:00"
    "s3 2024-01-02 09:00:00"
    "s4 2024-01-03 09:00:00"  # tag keep
    "s5 2024-01-03 21:00:00"
    "s6 2024-01-08 09:00:00"  # week 2
    "s7 2024-01-15 09:00:00"  # week 3
    "s8 2024-02-01 09:00:00"  # week 5
    "s9 2024-02-01 10:00:00"
    "s10 2024-03-01 09:00:00" # week 9
)

# expect_kept LABEL... : the repository's snapshots are exactly these.
expect_kept() {
    local want="" l
    for l in "$@"; do want+="${SNAP[$l]}"$'\n'; done
    want=$(printf '%s' "$want" | sort)
    local got
    got=$(snapshot_ids)
    if [ "$got" != "$want" ]; then
        local names="" id k
        for id in $got; do
            for k in "${!SNAP[@]}"; do [ "${SNAP[$k]}" = "$id" ] && names+="$k "; done
        done
        fail "kept: $names; expected: $*"
    fi
}

# policy_case "EXPECTED LABELS" FORGET-OPTIONS...: applies the policy to a copy of the
# ten snapshots and checks what is left.
policy_case() {
    local want=$1
    shift
    rm -rf "$W/ret-case"
    cp -a "$W/ret-base" "$W/ret-case"
    REPO=$W/ret-case
    run 0 pf forget "$@"
    # shellcheck disable=SC2086
    expect_kept $want
    ok "forget $* keeps $want"
}

part_retention() {
    say "retention: ten snapshots at synthetic times"
    local t=$W/ret-src label when tag
    mkdir -p "$t"
    echo "retention" >"$t/file"
    REPO=$W/ret-base
    run 0 pf init
    for e in "${TIMES[@]}"; do
        label=${e%% *}
        when=${e#* }
        tag=()
        [ "$label" = s4 ] && tag=(--tag keep)
        run 0 pf --json backup --time "$when" "${tag[@]}" "$t"
        SNAP[$label]=$(jget "$W/out.txt" 'd["id"]')
    done
    run 0 pf --json snapshots
    [ "$(jget "$W/out.txt" 'len(d)')" = 10 ] || fail "expected 10 snapshots"
    # time is UTC (docs/JSON.md); --time is the local wall clock, as date reads it.
    [ "$(jget "$W/out.txt" '[s["time"] for s in d if s["id"] == "'"${SNAP[s8]}"'"][0]')" = "$(date -u -d "2024-02-01 09:00:00" +%Y-%m-%dT%H:%M:%SZ)" ] ||
        fail "backup --time was not kept as given"

    # The newest of each of the last three days that have a snapshot.
    policy_case "s10 s9 s7" --keep-daily 3 --group-by host
    # Counts left over: the oldest snapshot is kept as well.
    policy_case "s10 s9 s7 s1" --keep-monthly 5 --group-by host
    # ISO weeks and months together; a snapshot kept by both counts for both.
    policy_case "s10 s9 s7 s6" --keep-weekly 4 --keep-monthly 2 --group-by host
    # Hours: 09:00 and 10:00 on 1 February are two buckets.
    policy_case "s10 s9 s8" --keep-hourly 3 --group-by host
    # Within one month of the newest (1 March 09:00): strictly after 1 February 09:00.
    policy_case "s10 s9" --keep-within 1m --group-by host
    # A tag keeps its snapshot whatever the other rules say.
    policy_case "s10 s4" --keep-last 1 --keep-tag keep --group-by host
    # Grouping by host and tags: the tagged snapshot is a group of its own.
    policy_case "s10 s9 s4" --keep-daily 2 --group-by host,tags
    # The default groups by host, paths and kind: a tag does not make a group.
    policy_case "s10 s9" --keep-daily 2
    # A policy with no rule is refused and removes nothing.
    REPO=$W/ret-base
    run 2 pf forget
    grep_in "$W/err.txt" "no retention policy" "forget without a policy"
    [ "$(snapshot_ids | wc -l)" = 10 ] || fail "forget without a policy removed snapshots"
    ok "forget without a policy is refused"

    say "retention: --dry-run changes nothing and gives reasons"
    local before after
    before=$(repo_listing "$REPO")
    run 0 pf forget --keep-daily 3 --keep-monthly 4 --group-by host --dry-run
    cp "$W/out.txt" "$W/dry.txt"
    after=$(repo_listing "$REPO")
    [ "$before" = "$after" ] || fail "forget --dry-run changed the repository"
    [ "$(snapshot_ids | wc -l)" = 10 ] || fail "forget --dry-run removed snapshots"
    grep_in "$W/dry.txt" "^keep +${SNAP[s10]:0:8} .*daily snapshot, monthly snapshot" "reasons of s10"
    grep_in "$W/dry.txt" "^keep +${SNAP[s7]:0:8} .*daily snapshot, monthly snapshot" "reasons of s7"
    grep_in "$W/dry.txt" "^keep +${SNAP[s1]:0:8} .*oldest monthly snapshot" "reason of s1"
    grep_in "$W/dry.txt" "^would remove ${SNAP[s5]:0:8} " "s5 would go"
    [ "$(grep -c '^would remove' "$W/dry.txt")" = 6 ] || fail "dry run: expected 6 to go"
    grep_in "$W/dry.txt" "4 kept, 6 would be removed" "dry-run summary"
    run 0 pf --json forget --keep-daily 3 --group-by host --dry-run
    python3 - "$W/out.txt" "${SNAP[s9]}" <<'EOF' || fail "forget --json --dry-run"
import json, sys
d = json.load(open(sys.argv[1]))["snapshots"]  # docs/JSON.md, "forget"
assert len(d) == 10, d
s9 = [s for s in d if s["id"] == sys.argv[2]][0]
assert s9["keep"] and s9["reasons"] == ["daily snapshot"], s9
assert sum(1 for s in d if s["keep"]) == 3
EOF
    after=$(repo_listing "$REPO")
    [ "$before" = "$after" ] || fail "forget --json --dry-run changed the repository"
    ok "dry run: nothing changed, reasons shown"
    rm -rf "$W/ret-base" "$W/ret-case" "$t"
    retention_groups
}

# Backups of different paths, and of different kinds, do not push each other out.
retention_groups() {
    say "retention: groups by host, paths and kind by default"
    local a=$W/grp/A b=$W/grp/B live=$W/grp/live day id
    mkdir -p "$a" "$b" "$live/public/system"
    echo a >"$a/f"
    echo b >"$b/f"
    printf 'LOCAL_DOMAIN=groups.example\nDB_NAME=mastodon_production\n' >"$live/.env.production"
    chmod 600 "$live/.env.production"
    REPO=$W/grp/repo
    run 0 pf init
    declare -A G=()
    for day in 1 2 3; do
        run 0 pf --json backup --time "2024-04-0$day 09:00:00" "$a"
        G[a$day]=$(jget "$W/out.txt" 'd["id"]')
        run 0 pf --json backup --time "2024-04-0$day 10:00:00" "$b"
        G[b$day]=$(jget "$W/out.txt" 'd["id"]')
        # The same live/ directory as a plain backup (tagged like a Mastodon one) at 03:00,
        # and a partial --only secrets snapshot of it later the same day.
        run 0 pf --json backup --tag mastodon --time "2024-04-0$day 03:00:00" "$live"
        G[full$day]=$(jget "$W/out.txt" 'd["id"]')
        run 0 pf --json backup --live "$live" --only secrets --time "2024-04-0$day 12:00:00"
        G[part$day]=$(jget "$W/out.txt" 'd["id"]')
        [ "$(jget "$W/out.txt" 'd["kind"]')" = mastodon-partial ] || fail "--only snapshot is not mastodon-partial"
    done
    run 0 pf --json snapshots
    python3 - "$W/out.txt" "${G[a1]}" "${G[part1]}" <<'EOF2' || fail "snapshots --json: kind and paths"
import json, sys
d = {s["id"]: s for s in json.load(open(sys.argv[1]))}
a, part = d[sys.argv[2]], d[sys.argv[3]]
assert a["kind"] == "paths" and a["paths"][0].endswith("/grp/A") and a["complete"], a
assert part["kind"] == "mastodon-partial" and part["complete"], part
EOF2
    cp -a "$REPO" "$W/grp/base"
    run 0 pf forget --keep-daily 2
    grep_in "$W/out.txt" "grouped by host, paths and kind \(4 groups\)" "forget names the grouping"
    local got want=""
    got=$(snapshot_ids)
    for id in a2 a3 b2 b3 full2 full3 part2 part3; do want+="${G[$id]}"$'\n'; done
    want=$(printf '%s' "$want" | sort)
    [ "$got" = "$want" ] || fail "keep-daily 2 by default: expected the last two days of A, B, the plain and the partial backups"
    ok "keep-daily 2: A and B each keep two days; the partial snapshots push no full one out"
    # Without kind, the partial snapshot (newer in each day) takes the day of the full one.
    rm -rf "$REPO" && cp -a "$W/grp/base" "$REPO"
    run 0 pf forget --keep-daily 2 --group-by host,paths
    got=$(snapshot_ids)
    want=""
    for id in a2 a3 b2 b3 part2 part3; do want+="${G[$id]}"$'\n'; done
    want=$(printf '%s' "$want" | sort)
    [ "$got" = "$want" ] || fail "--group-by host,paths: unexpected snapshots kept"
    rm -rf "$REPO" && cp -a "$W/grp/base" "$REPO"
    run 0 pf forget --keep-last 1 --group-by host,paths,tags,kind
    [ "$(snapshot_ids | wc -l)" = 4 ] || fail "--group-by host,paths,tags,kind: expected 4 groups of one"
    run 2 pf forget --keep-last 1 --group-by host,colour
    grep_in "$W/err.txt" "unknown grouping \"colour\"" "an unknown grouping is refused"
    ok "--group-by host,paths and host,paths,tags,kind"
    rm -rf "$W/grp"
}

# ---------------------------------------------------------------------------------------
# Data for prune: three snapshots A, B, C of a tree of random files. Each later snapshot
# drops some files and adds one, so the packs of A end up partly used once A is forgotten.
# Sources as they were at each backup are kept (hard links: files are never modified in
# place) to compare restores with.
KILL_BASE=$W/kill-base # A forgotten, not pruned
make_prune_data() {
    [ -d "$KILL_BASE" ] && return 0
    local d=$W/data n=$((KILL_MB / 10)) i
    local sz=$((KILL_MB * 1048576 / (n + 2)))
    mkdir -p "$d"
    for i in $(seq 1 "$n"); do head -c "$sz" /dev/urandom >"$d/f$i"; done
    REPO=$W/prune-full
    run 0 pf init
    run 0 pf --json backup --time "2024-05-01 03:00:00" "$d"
    SNAP[A]=$(jget "$W/out.txt" 'd["id"]')
    cp -al "$d" "$W/src-A"
    for i in $(seq 1 2 "$n"); do rm "$d/f$i"; done
    head -c "$sz" /dev/urandom >"$d/g1"
    run 0 pf --json backup --time "2024-05-02 03:00:00" "$d"
    SNAP[B]=$(jget "$W/out.txt" 'd["id"]')
    cp -al "$d" "$W/src-B"
    rm "$d/f2"
    head -c "$sz" /dev/urandom >"$d/g2"
    run 0 pf --json backup --time "2024-05-03 03:00:00" "$d"
    SNAP[C]=$(jget "$W/out.txt" 'd["id"]')
    cp -al "$d" "$W/src-C"
    rm -rf "$d"
    cp -a "$REPO" "$KILL_BASE"
    REPO=$KILL_BASE
    run 0 pf forget --keep-last 2
    ok "prune data: $KILL_MB MiB in three snapshots, the oldest forgotten"
}

part_prune() {
    make_prune_data
    say "prune: forget --prune frees space, kept snapshots restore exactly"
    REPO=$W/prune-full
    local before after
    before=$(repo_bytes "$REPO")
    run 0 pf --json forget --keep-last 2 --prune
    grep_in "$W/out.txt" '"packs_deleted"' "forget --prune printed prune statistics"
    after=$(repo_bytes "$REPO")
    echo "repository: $before -> $after bytes"
    [ "$after" -lt $((before * 9 / 10)) ] || fail "forget --prune freed too little: $before -> $after"
    expect_kept B C
    restore_compare "${SNAP[B]}" "$W/src-B" data
    restore_compare "${SNAP[C]}" "$W/src-C" data
    run 0 pf check --read-data
    grep_not "$W/err.txt" "in no index|not in any index" "check after prune"
    ok "forget --prune: $before -> $after bytes, B and C restore exactly"
    rm -rf "$REPO"

    say "prune: packs mostly unused are rewritten"
    local s=$W/small i
    mkdir -p "$s"
    python3 - "$s" <<'EOF'
import os, sys
for i in range(1500):
    with open(os.path.join(sys.argv[1], "s%04d" % i), "wb") as f:
        f.write(os.urandom(1024 + (i * 37) % 3072))
EOF
    REPO=$W/prune-small
    run 0 pf init
    run 0 pf backup --time "2024-06-01 00:00:00" "$s"
    # Keep one in ten: the packs are now about 90% unused.
    for i in $(seq 0 1499); do
        [ $((i % 10)) = 0 ] || rm "$s/$(printf 's%04d' "$i")"
    done
    run 0 pf --json backup --time "2024-06-02 00:00:00" "$s"
    local keep
    keep=$(jget "$W/out.txt" 'd["id"]')
    run 0 pf forget --keep-last 1
    run 0 pf check
    grep_in "$W/out.txt" "unused blobs" "check before prune counts unused blobs"
    # The default (10%) threshold rewrites them too; --max-unused 100 keeps every pack
    # that has a used blob.
    before=$(repo_bytes "$REPO")
    run 0 pf --json prune --max-unused 100 --dry-run
    [ "$(jget "$W/out.txt" 'd["packs_rewritten"]')" = 0 ] || fail "--max-unused 100 rewrote a pack"
    local packs_before packs_after
    packs_before=$(pack_bytes "$REPO")
    run 0 pf prune --max-unused 0 --dry-run
    grep_in "$W/out.txt" "copied, estimated\); would free .* -> " "prune --dry-run says what it would free and copy"
    run 0 pf --json prune --max-unused 0
    cp "$W/out.txt" "$W/prune-small.json"
    after=$(repo_bytes "$REPO")
    packs_after=$(pack_bytes "$REPO")
    echo "prune: $(cat "$W/prune-small.json")"
    # What was freed is what the packs lost, not the size of every pack rewritten.
    [ "$(jget "$W/prune-small.json" 'd["bytes_before"]')" = "$packs_before" ] || fail "bytes_before is not the packs' size"
    [ "$(jget "$W/prune-small.json" 'd["bytes_after"]')" = "$packs_after" ] || fail "bytes_after is not the packs' size"
    [ "$(jget "$W/prune-small.json" 'd["bytes_freed"]')" = $((packs_before - packs_after)) ] ||
        fail "bytes_freed $(jget "$W/prune-small.json" 'd["bytes_freed"]') is not $packs_before - $packs_after"
    [ "$(jget "$W/prune-small.json" 'd["bytes_copied"] > 0 and d["bytes_freed"] <= d["bytes_removed"] - d["bytes_copied"]')" = True ] ||
        fail "bytes_copied/bytes_removed do not add up"
    [ "$(jget "$W/prune-small.json" 'd["packs_rewritten"]')" -ge 1 ] || fail "no pack was rewritten"
    [ "$(jget "$W/prune-small.json" 'd["blobs_repacked"]')" -ge 150 ] || fail "the 150 kept files were not repacked"
    [ "$after" -lt $((before / 2)) ] || fail "prune freed too little: $before -> $after"
    run 0 pf check --read-data
    grep_not "$W/out.txt" "unused blobs" "check after prune --max-unused 0"
    grep_not "$W/err.txt" "in no index|not in any index" "check after prune --max-unused 0"
    restore_compare "$keep" "$s"
    # Nothing left to do: a second prune deletes and rewrites nothing.
    run 0 pf --json prune --max-unused 0
    [ "$(jget "$W/out.txt" 'd["packs_deleted"] + d["packs_rewritten"]')" = 0 ] || fail "second prune still had work"
    ok "rewrote mostly unused packs: $before -> $after bytes, check --read-data passes"
    rm -rf "$REPO" "$s"
}

# ---------------------------------------------------------------------------------------
part_leftovers() {
    say "leftovers: packs in no index are summed up by check"
    local s=$W/left-src i
    mkdir -p "$s"
    for i in $(seq 1 40); do head -c 300000 /dev/urandom >"$s/a$i"; done
    REPO=$W/left
    run 0 pf init
    run 0 pf backup "$s"
    # What a backup killed after its packs but before its index leaves: the packs of a
    # second backup (made in a copy of the repository) with no index naming them.
    cp -a "$REPO" "$W/left2"
    for i in $(seq 1 40); do head -c 300000 /dev/urandom >"$s/b$i"; done
    REPO=$W/left2
    run 0 pf backup "$s"
    local p n=0
    for p in $(cd "$W/left2" && find data -type f); do
        if [ ! -e "$W/left/$p" ]; then
            mkdir -p "$(dirname "$W/left/$p")"
            cp "$W/left2/$p" "$W/left/$p"
            n=$((n + 1))
        fi
    done
    [ $n -ge 2 ] || fail "expected several orphan packs, made $n"
    REPO=$W/left
    run 0 pf check
    [ "$(grep -c 'in no index\|not in any index' "$W/err.txt")" = 1 ] ||
        fail "check printed $(grep -c 'in no index\|not in any index' "$W/err.txt") lines about $n orphan packs, wanted one"
    grep_in "$W/err.txt" "^warning: $n packs \([0-9]+ blobs, [0-9]+ bytes\) in no index" "the summary counts the packs"
    run 0 pf -v check
    [ "$(grep -c ': not in any index' "$W/err.txt")" = $n ] || fail "check -v does not name each of the $n packs"
    run 0 pf --json check
    [ "$(jget "$W/out.txt" 'd["orphan_packs"]')" = $n ] || fail "check --json orphan_packs"
    ok "check: $n orphan packs in one line, named with -v"

    say "leftovers: prune removes old temporary files, keeps fresh ones"
    local old1 old2 fresh
    old1="$(ls -d "$REPO"/data/*/ | head -1)$(printf '%064d' 0).tmp-killed1"
    old2="$REPO/index/$(printf '%064d' 1).tmp-killed2"
    fresh="$REPO/snapshots/$(printf '%064d' 2).tmp-writing"
    head -c 5000 /dev/urandom >"$old1"
    head -c 700 /dev/urandom >"$old2"
    head -c 300 /dev/urandom >"$fresh"
    # Older than a lease (300 s by default), as after a kill -9 last night.
    touch -d '1 hour ago' "$old1" "$old2"
    run 0 pf --json prune
    [ "$(jget "$W/out.txt" 'd["tmp_removed"]')" = 2 ] || fail "prune removed $(jget "$W/out.txt" 'd["tmp_removed"]') temporary files, wanted 2"
    [ "$(jget "$W/out.txt" 'd["tmp_bytes"]')" = 5700 ] || fail "tmp_bytes"
    [ ! -e "$old1" ] && [ ! -e "$old2" ] || fail "old temporary files are still there"
    [ -e "$fresh" ] || fail "prune removed a temporary file a writer may still be writing"
    # The age that counts is a lease: with hour-long leases a 20-minute-old file may still
    # be a live writer's, with the default 300 s it cannot be.
    touch -d '20 minutes ago' "$fresh"
    PERMAFROST_LOCK_LEASE=3600 run 0 pf --json prune
    [ -e "$fresh" ] || fail "a temporary file younger than the lease was removed"
    run 0 pf --json prune
    [ ! -e "$fresh" ] || fail "a 20-minute-old temporary file outlived a 300 s lease"
    run 0 pf check
    ok "prune: old temporary files removed, fresh ones kept"
    rm -rf "$W/left" "$W/left2" "$s"
}

# ---------------------------------------------------------------------------------------
# fill DIR: writes DIR/filler until the file system is full.
fill() {
    dd if=/dev/zero of="$1/filler" bs=64k status=none 2>/dev/null || true
    if printf 'x%.0s' $(seq 1 8192) >"$1/probe" 2>/dev/null; then fail "the tmpfs is not full"; fi
    rm -f "$1/probe"
}

part_fulldisk() {
    say "full disk: prune runs when the repository's disk is full"
    [ "$(id -u)" = 0 ] || fail "part fulldisk mounts a tmpfs: run as root (or MAINT_PARTS without it)"
    local m=$W/full i
    mkdir -p "$m" "$W/full-src/A" "$W/full-src/B" "$W/full-src/C"
    mount -t tmpfs -o size=12m pf-test-full "$m" || fail "cannot mount a tmpfs on $m"
    FULL_MNT=$m
    for i in 1 2 3 4; do head -c 1048576 /dev/urandom >"$W/full-src/A/a$i"; done
    for i in 1 2 3 4; do head -c 1048576 /dev/urandom >"$W/full-src/B/b$i"; done
    for i in 1 2; do head -c 1048576 /dev/urandom >"$W/full-src/C/c$i"; done
    REPO=$m/repo
    run 0 pf init
    [ "$(stat -c %s "$REPO/reserve")" = 262144 ] || fail "init wrote no 256 KiB reserve"
    run 0 pf backup --time "2024-07-01 00:00:00" "$W/full-src/A"
    run 0 pf --json backup --time "2024-07-02 00:00:00" "$W/full-src/B"
    local keep
    keep=$(jget "$W/out.txt" 'd["id"]')
    run 0 pf forget --keep-last 1 --group-by none
    fill "$m"
    # The lock is the first write: only the reserve makes room for it.
    run 0 pf --json prune
    cp "$W/out.txt" "$W/full1.json"
    grep_in "$W/err.txt" "disk is full: released its 256 KiB reserve" "prune says it used the reserve"
    [ "$(jget "$W/full1.json" 'd["packs_deleted"] >= 1 and d["bytes_freed"] > 3 * 1048576')" = True ] ||
        fail "prune on a full disk freed too little: $(cat "$W/full1.json")"
    [ "$(stat -c %s "$REPO/reserve")" = 262144 ] || fail "prune did not write the reserve again"
    rm -f "$m/filler"
    run 0 pf check --read-data
    restore_compare "$keep" "$W/full-src/B" B
    ok "prune on a full disk: the reserve let it lock, it freed $(jget "$W/full1.json" 'd["bytes_freed"]') bytes"

    say "full disk: old temporary files make room when there is no reserve"
    run 0 pf --json backup --time "2024-07-03 00:00:00" "$W/full-src/C"
    keep=$(jget "$W/out.txt" 'd["id"]')
    run 0 pf forget --keep-last 1 --group-by none
    local tmp
    tmp="$(ls -d "$REPO"/data/*/ | head -1)$(printf '%064d' 7).tmp-killed"
    head -c 300000 /dev/urandom >"$tmp"
    touch -d '1 hour ago' "$tmp"
    rm "$REPO/reserve"
    fill "$m"
    run 0 pf --json prune
    grep_in "$W/err.txt" "disk is full: removed 1 temporary file" "prune says it removed the temporary file"
    [ ! -e "$tmp" ] || fail "the old temporary file is still there"
    [ "$(jget "$W/out.txt" 'd["bytes_freed"]')" -gt $((3 * 1048576)) ] || fail "prune freed too little: $(cat "$W/out.txt")"
    rm -f "$m/filler"
    restore_compare "$keep" "$W/full-src/C" C
    ok "prune on a full disk without a reserve: an old temporary file made room"

    say "full disk: nothing to free without writing"
    rm "$REPO/reserve"
    fill "$m"
    run 1 pf prune
    grep_in "$W/err.txt" "disk holding the repository is full and there was no reserve or old temporary file to free: free a few hundred KiB" "the message says what to do"
    rm -f "$m/filler"
    run 0 pf prune
    run 0 pf check
    ok "prune on a full disk with nothing to free says so, and runs once there is room"

    # One free page: the lock fits, a new index file would not until the forgotten
    # snapshot's index file and packs are gone, so prune must delete before it writes.
    say "full disk: room for the lock only"
    run 0 pf --json backup --time "2024-07-04 00:00:00" "$W/full-src/A"
    keep=$(jget "$W/out.txt" 'd["id"]')
    run 0 pf forget --keep-last 1 --group-by none
    rm "$REPO/reserve"
    head -c 4096 /dev/zero >"$m/gap"
    fill "$m"
    rm "$m/gap"
    run 0 pf --json prune
    [ "$(jget "$W/out.txt" 'd["bytes_freed"]')" -gt $((3 * 1048576 / 2)) ] || fail "prune freed too little: $(cat "$W/out.txt")"
    rm -f "$m/filler"
    run 0 pf check --read-data
    restore_compare "$keep" "$W/full-src/A" A
    ok "prune with room for its lock only: it deleted before writing"
    umount "$m"
    FULL_MNT=
    rm -rf "$W/full-src"
}

# ---------------------------------------------------------------------------------------
# after_kill WHAT RC: the checks after a prune killed at WHAT (exit RC) on $REPO.
KILL_N=0
KILL_MID=0
KILL_TMP_LEFT=()
after_kill() {
    local what=$1 rc=$2 state="unchanged" idx packs
    KILL_N=$((KILL_N + 1))
    if [ "$(repo_listing "$REPO" | grep -v '^./locks/')" != "$KILL_BASE_LISTING" ]; then
        state="changed"
    fi
    idx=$(find "$REPO/index" -type f -regextype posix-extended -regex '.*/[0-9a-f]{64}' | wc -l)
    packs=$(find "$REPO/data" -type f -regextype posix-extended -regex '.*/[0-9a-f]{64}' | wc -l)
    echo "killed $what: exit $rc, repository $state ($idx index files, $packs packs, $(tmp_count "$REPO") temporary files)"
    if [ "$rc" = 0 ]; then
        echo "  (the prune had finished already)"
    else
        [ "$rc" = 137 ] || { cat "$W/kill-out.txt" >&2; fail "prune exited $rc before the kill"; }
        [ $state = changed ] && KILL_MID=$((KILL_MID + 1))
    fi
    run 0 pf check
    grep_not "$W/out.txt" "DAMAGED" "check after a killed prune"
    expect_kept B C
    restore_compare "${SNAP[B]}" "$W/src-B" data
    restore_compare "${SNAP[C]}" "$W/src-C" data
    # A second prune finishes the job: nothing unused, nothing unindexed left.
    run 0 pf --json prune --max-unused 0
    if [ $((KILL_N % 4)) = 2 ]; then
        run 0 pf check --read-data
    else
        run 0 pf check
    fi
    grep_not "$W/err.txt" "in no index|not in any index" "check after the second prune"
    grep_not "$W/out.txt" "unused blobs" "check after the second prune"
    [ "$(lock_count)" = 0 ] || fail "locks left after the second prune"
    # Half-written objects (<name>.tmp-<random>) are invisible to list, check and prune.
    local t
    t=$(tmp_count "$REPO")
    [ "$t" = 0 ] || KILL_TMP_LEFT+=("$what: $t")
}

# The first SYSCALL (among NAMES...) a traced run made, and how often it was called.
trace_count() { # FILE NAME...: prints "name count" of the first of NAMES found
    local f=$1 n c
    shift
    for n in "$@"; do
        c=$(grep -Ec "^[0-9]+ +$n\(" "$f" || true)
        if [ "$c" -gt 0 ]; then
            echo "$n $c"
            return 0
        fi
    done
    echo "none 0"
}

part_kill() {
    make_prune_data
    say "kill -9 during prune"
    # A whole prune (that rewrites the partly used packs of A) on a copy: how long?
    # Objects are never modified in place, so hard-linked copies are independent.
    KILL_BASE_LISTING=$(repo_listing "$KILL_BASE" | grep -v '^./locks/')
    REPO=$W/kill-calibrate
    rm -rf "$REPO"
    cp -al "$KILL_BASE" "$REPO"
    local t0 t1 dur moments m
    t0=$(date +%s.%N)
    run 0 pf --json prune --max-unused 0
    t1=$(date +%s.%N)
    [ "$(jget "$W/out.txt" 'd["packs_rewritten"]')" -ge 1 ] || fail "calibration prune rewrote nothing: make the data larger"
    rm -rf "$REPO"
    dur=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')

    # Exact moments first: strace kills the prune on entry to a rename (an object becoming
    # visible: the lock, new packs, new index files) or to its Nth unlink (old index files,
    # then old packs, then the lock). LeakSanitizer cannot run under ptrace, hence
    # detect_leaks=0 for the traced run that finishes.
    local exact=0
    if command -v strace >/dev/null && strace -f -qq -o /dev/null true 2>/dev/null; then
        REPO=$W/kill-calibrate
        cp -al "$KILL_BASE" "$REPO"
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
            strace -f -qq -o "$W/strace.txt" -e trace=rename,renameat,renameat2,unlink,unlinkat \
            "$PF" --repo "$REPO" prune --max-unused 0 >"$W/out.txt" 2>&1 || fail "traced prune failed: $(cat "$W/out.txt")"
        rm -rf "$REPO"
        local rn rc_ un uc
        read -r rn rc_ < <(trace_count "$W/strace.txt" rename renameat2 renameat)
        read -r un uc < <(trace_count "$W/strace.txt" unlink unlinkat)
        echo "a whole prune: $rc_ ${rn}s (lock, packs, index files), $uc ${un}s (index files, packs, lock)"
        [ "$rc_" -ge 4 ] && [ "$uc" -ge 5 ] || fail "unexpected calls in the traced prune: $rc_ $rn, $uc $un"
        # Counts are per thread: the lock and index files are renamed by the main thread,
        # packs by the saver's writer threads, so rename #2 lands on a writer's second
        # pack (or, with a single pack per writer, on the first index file). Removals are
        # all made by the main thread: unlink #1, nothing removed yet (old and new index
        # files side by side); #2, one old index file gone; the middle of the pack
        # removals; the last pack.
        local points=("$rn 2" "$un 1" "$un 2" "$un $((uc / 2))" "$un $((uc - 1))")
        local pt call nth rc
        for pt in "${points[@]}"; do
            read -r call nth <<<"$pt"
            REPO=$W/kill-repo
            rm -rf "$REPO"
            cp -al "$KILL_BASE" "$REPO"
            rc=0
            { strace -f -qq -o /dev/null -e trace="$call" -e inject="$call":signal=KILL:when="$nth" \
                "$PF" --repo "$REPO" prune --max-unused 0 >"$W/kill-out.txt" 2>&1; } 2>/dev/null || rc=$?
            [ $rc = 137 ] || fail "prune traced to be killed at $call #$nth exited $rc"
            after_kill "at $call #$nth" "$rc"
            exact=$((exact + 1))
        done
    else
        echo "(no usable strace: only timed kills)"
    fi

    # Timed kills, 0.05 s apart or spread over the whole run when it is longer.
    local count=8
    [ $exact -gt 0 ] && count=4
    moments=$(awk -v d="$dur" -v n=$count 'BEGIN {s = d / n; if (s < 0.05) s = 0.05;
        for (i = 0; i < n; i++) printf "%.3f ", 0.02 + i * s}')
    echo "a whole prune takes ${dur}s: killing at $moments"
    local mid_exact=$KILL_MID
    for m in ${MAINT_KILL_AT:-$moments}; do
        REPO=$W/kill-repo
        rm -rf "$REPO"
        cp -al "$KILL_BASE" "$REPO"
        "$PF" --repo "$REPO" prune --max-unused 0 >"$W/kill-out.txt" 2>&1 &
        local pid=$! rc=0
        BG_PIDS+=("$pid")
        sleep "$m"
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || rc=$?
        after_kill "after ${m}s" "$rc"
    done
    if [ ${#KILL_TMP_LEFT[@]} -gt 0 ]; then
        echo "note: temporary files of killed writes stay after the second prune (nothing removes them): ${KILL_TMP_LEFT[*]}"
    fi
    rm -rf "$W/kill-repo"
    if [ $exact -gt 0 ]; then
        [ "$mid_exact" = $exact ] || fail "only $mid_exact of $exact exact kills changed the repository"
    else
        [ $KILL_MID -ge 2 ] || fail "only $KILL_MID kills landed while prune was changing the repository: make MAINT_KILL_MB larger"
    fi
    ok "$KILL_N kills during prune ($KILL_MID mid-way): check passes, B and C restore, a second prune finishes"
}

# ---------------------------------------------------------------------------------------
# A backup that holds its lock for as long as we like: the backup of a huge sparse file
# (read as zeros, tens of seconds), stopped with SIGSTOP once its lock is visible.
HOLD=$W/hold
# Start one only when no stale lock is there (it would remove that one while taking its
# own, and the count of locks would not tell whether it holds one yet).
start_holder() { # [ENV=VALUE...]: sets HPID
    LOCKS0=$(lock_count)
    env "$@" "$PF" --repo "$REPO" backup "$HOLD" >"$W/holder.txt" 2>&1 &
    HPID=$!
    BG_PIDS+=("$HPID")
    wait_lock_then_stop
}
wait_lock_then_stop() { # waits for a lock more than $LOCKS0
    local i
    for i in $(seq 1 3000); do
        [ "$(lock_count)" -gt "$LOCKS0" ] && break
        kill -0 "$HPID" 2>/dev/null || { cat "$W/holder.txt" >&2; fail "the holding backup ended before taking its lock"; }
        sleep 0.01
    done
    [ "$(lock_count)" -gt "$LOCKS0" ] || fail "no lock appeared within 30 s"
    kill -STOP "$HPID" || fail "the holding backup is gone (did it finish already?)"
    # Still alive and holding its lock?
    [ "$(lock_count)" -gt "$LOCKS0" ] || fail "the holding backup released its lock too soon"
}
kill_holder() {
    kill -9 "$HPID" 2>/dev/null || true
    wait "$HPID" 2>/dev/null || true # reaped: a zombie would still look alive
}

part_locks() {
    say "locks: prune refused while a backup holds a shared lock"
    REPO=$W/lock-repo
    mkdir -p "$HOLD" "$W/lsrc"
    truncate -s 64G "$HOLD/zeros"
    echo "small" >"$W/lsrc/file"
    run 0 pf init
    start_holder
    PERMAFROST_LOCK_WAIT=0 run 11 pf prune
    grep_in "$W/err.txt" "locked by backup \\(pid $HPID on $(hostname)" "prune names the holder"
    local refusal
    refusal=$(cat "$W/err.txt")
    PERMAFROST_LOCK_WAIT=0 run 11 pf forget --keep-last 1
    grep_in "$W/err.txt" "by backup \\(pid $HPID" "forget names the holder"
    # Shared locks do not conflict with each other.
    PERMAFROST_LOCK_WAIT=0 run 0 pf check
    PERMAFROST_LOCK_WAIT=0 run 0 pf backup "$W/lsrc"
    # A live holder's lock is not stale: unlock leaves it.
    run 0 pf unlock
    [ "$(lock_count)" = 1 ] || fail "unlock removed a live lock"
    ok "prune and forget refused (exit 11): $refusal; check and backup run alongside"

    say "locks: a kill -9'ed backup does not block the next one"
    kill_holder
    [ "$(lock_count)" = 1 ] || fail "the killed backup's lock is not there"
    PERMAFROST_LOCK_WAIT=0 run 0 pf backup "$W/lsrc"
    grep_in "$W/err.txt" "stale lock.*backup.*pid $HPID.*process $HPID is gone" "warning about the stale lock"
    [ "$(lock_count)" = 0 ] || fail "stale lock left behind"
    start_holder
    kill_holder
    PERMAFROST_LOCK_WAIT=0 run 0 pf prune
    grep_in "$W/err.txt" "stale lock.*process $HPID is gone" "prune's warning about the stale lock"
    ok "stale locks of dead processes are removed with a warning"

    say "locks: unlock removes stale locks; unlock --force every lock"
    start_holder # stays alive (stopped)
    local live=$HPID dead
    start_holder
    dead=$HPID
    kill_holder
    HPID=$live
    run 0 pf unlock
    grep_in "$W/out.txt" "removed shared lock .*backup.*pid $dead .*stale: process $dead is gone" "unlock names the stale lock"
    grep_not "$W/out.txt" "pid $HPID" "unlock left the live lock"
    [ "$(lock_count)" = 1 ] || fail "unlock: expected the live lock to stay"
    run 0 pf unlock --force
    grep_in "$W/out.txt" "removed shared lock .*backup by .*pid $HPID on" "unlock --force names the lock"
    [ "$(lock_count)" = 0 ] || fail "unlock --force left a lock"
    kill_holder
    ok "unlock: stale only; --force: all, each named"

    say "locks: an expired lease is taken over"
    local lease=5 other=pf-other-host
    if unshare -u true 2>/dev/null; then
        # A lock from another host: whether its process lives cannot be known here, so
        # only the lease ends it.
        PERMAFROST_LOCK_LEASE=$lease unshare -u sh -c 'hostname "$1" && exec "$2" --repo "$3" backup "$4"' \
            sh "$other" "$PF" "$REPO" "$HOLD" >"$W/holder.txt" 2>&1 &
        HPID=$!
        BG_PIDS+=("$HPID")
        LOCKS0=0
        wait_lock_then_stop
        kill_holder
        PERMAFROST_LOCK_WAIT=0 run 11 pf prune
        grep_in "$W/err.txt" "by backup \\(pid $HPID on $other" "prune names the other host's holder"
    else
        # A live process on this host that stopped refreshing its lease.
        other=$(hostname)
        start_holder PERMAFROST_LOCK_LEASE=$lease
        PERMAFROST_LOCK_WAIT=0 run 11 pf prune
    fi
    sleep $((lease + 1))
    PERMAFROST_LOCK_WAIT=0 run 0 pf backup "$W/lsrc"
    grep_in "$W/err.txt" "stale lock.*backup.*pid $HPID on $other\\): its lease ran out" "warning about the expired lease"
    kill_holder
    [ "$(lock_count)" = 0 ] || fail "locks left"
    run 0 pf check
    ok "expired lease of backup pid $HPID on $other taken over with a warning"
    rm -rf "$HOLD" "$W/lsrc" "$REPO"
}

# ---------------------------------------------------------------------------------------
part_parallel() {
    say "parallel: two backups into one repository at once"
    REPO=$W/par-repo
    run 0 pf init
    local a=$W/par-a b=$W/par-b i
    mkdir -p "$a/sub" "$b/sub"
    head -c 24M /dev/urandom >"$a/big"
    head -c 24M /dev/urandom >"$b/big"
    head -c 4M /dev/urandom >"$W/shared"
    cp "$W/shared" "$a/shared"
    cp "$W/shared" "$b/shared"
    for i in $(seq 1 100); do
        head -c $((i * 97)) /dev/urandom >"$a/sub/f$i"
        head -c $((i * 89)) /dev/urandom >"$b/sub/f$i"
    done
    "$PF" --repo "$REPO" --json backup "$a" >"$W/par-a.json" 2>"$W/par-a.err" &
    local pa=$!
    "$PF" --repo "$REPO" --json backup "$b" >"$W/par-b.json" 2>"$W/par-b.err" &
    local pb=$! ra=0 rb=0
    BG_PIDS+=("$pa" "$pb")
    wait "$pa" || ra=$?
    wait "$pb" || rb=$?
    [ $ra = 0 ] || { cat "$W/par-a.err" >&2; fail "first parallel backup exited $ra"; }
    [ $rb = 0 ] || { cat "$W/par-b.err" >&2; fail "second parallel backup exited $rb"; }
    [ "$(snapshot_ids | wc -l)" = 2 ] || fail "expected 2 snapshots"
    restore_compare "$(jget "$W/par-a.json" 'd["id"]')" "$a"
    restore_compare "$(jget "$W/par-b.json" 'd["id"]')" "$b"
    run 0 pf check --read-data
    [ "$(lock_count)" = 0 ] || fail "locks left"
    ok "two parallel backups both succeeded and restore exactly"
    rm -rf "$REPO" "$a" "$b" "$W/shared"
}

# ---------------------------------------------------------------------------------------
part_keys() {
    say "keys: add, list, remove, passwd"
    REPO=$W/key-repo
    local k=$W/key-src
    mkdir -p "$k"
    head -c 100K /dev/urandom >"$k/data"
    run 0 pf init
    run 0 pf --json backup "$k"
    local snap
    snap=$(jget "$W/out.txt" 'd["id"]')
    echo "second passphrase" >"$W/pw2"
    echo "third passphrase" >"$W/pw3"
    echo "passphrase from paper" >"$W/pw4"
    run 0 pf --json key list
    local id1
    id1=$(jget "$W/out.txt" 'd[0]["id"]')
    run 2 pf key remove "$id1"
    grep_in "$W/err.txt" "refusing to remove the last key" "last key"
    run 0 pf key add --new-password-file "$W/pw2"
    PERMAFROST_PASSWORD="second passphrase" run 0 pf snapshots
    grep_in "$W/out.txt" "^${snap:0:8} " "the second passphrase opens the repository"
    run 0 pf key list
    [ "$(wc -l <"$W/out.txt")" = 2 ] || fail "key list: expected 2 keys"
    grep_in "$W/out.txt" "^\\* ${id1:0:8} " "key list marks the key in use"
    local id2
    id2=$(awk '$1 != "*" {print $1}' "$W/out.txt")
    [ -n "$id2" ] || fail "key list: no second key"
    run 2 pf key remove "${id1:0:8}"
    grep_in "$W/err.txt" "refusing to remove the key in use" "key in use"
    ok "key add: the second passphrase opens it; list shows both; last key and key in use not removed"

    run 0 pf key passwd --new-password-file "$W/pw3"
    run 12 pf snapshots
    grep_in "$W/err.txt" "wrong passphrase" "the old passphrase after passwd"
    export PERMAFROST_PASSWORD="third passphrase"
    run 0 pf snapshots
    run 0 pf key remove "$id2"
    PERMAFROST_PASSWORD="second passphrase" run 12 pf snapshots
    run 0 pf key list
    [ "$(wc -l <"$W/out.txt")" = 1 ] || fail "key list: expected 1 key"
    ok "key passwd: the old passphrase stops working, the new one works; key remove"

    say "keys: paper export and import"
    run 0 pf key export --paper
    cp "$W/out.txt" "$W/sheet.txt"
    grep_in "$W/sheet.txt" "^permafrost paper key v1" "sheet header"
    # Every passphrase forgotten: the sheet alone gives access again.
    (
        unset PERMAFROST_PASSWORD
        run 0 pf key import --paper "$W/sheet.txt" --new-password-file "$W/pw4"
    )
    PERMAFROST_PASSWORD="passphrase from paper" run 0 pf snapshots
    PERMAFROST_PASSWORD="passphrase from paper" restore_compare "$snap" "$k"
    ok "key export --paper / import --paper: a new passphrase opens it"

    # One character changed on key line 3 (to another valid symbol).
    python3 - "$W/sheet.txt" "$W/tampered.txt" <<'EOF'
import sys
lines = open(sys.argv[1]).read().split("\n")
for i, l in enumerate(lines):
    if l.lstrip().startswith("3:"):
        head, rest = l.split(":", 1)
        j = next(k for k, c in enumerate(rest) if c.isalnum())
        rest = rest[:j] + ("7" if rest[j] != "7" else "8") + rest[j + 1:]
        lines[i] = head + ":" + rest
        break
else:
    sys.exit("no line 3 on the sheet")
open(sys.argv[2], "w").write("\n".join(lines))
EOF
    cmp -s "$W/sheet.txt" "$W/tampered.txt" && fail "the sheet was not changed"
    run 0 pf key list
    local keys_before
    keys_before=$(wc -l <"$W/out.txt")
    run 4 pf key import --paper "$W/tampered.txt" --new-password-file "$W/pw2"
    grep_in "$W/err.txt" "line 3" "the tampered sheet's line is named"
    local why
    why=$(cat "$W/err.txt")
    run 0 pf key list
    [ "$(wc -l <"$W/out.txt")" = "$keys_before" ] || fail "a tampered sheet added a key"
    ok "tampered sheet refused: $why"

    PERMAFROST_PASSWORD="not the passphrase" run 12 pf snapshots
    grep_in "$W/err.txt" "wrong passphrase" "wrong passphrase message"
    PERMAFROST_PASSWORD="not the passphrase" run 12 pf restore "$snap" --target "$W/nope"
    [ ! -e "$W/nope" ] || fail "restore with a wrong passphrase wrote something"
    ok "wrong passphrase refused (exit 12)"
    export PERMAFROST_PASSWORD=$PW
    rm -rf "$REPO" "$k"
}

for p in $PARTS; do
    "part_$p"
done
echo "maintenance: all parts passed ($PARTS)"
