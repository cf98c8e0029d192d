#!/bin/sh
# No file includes upward: a file in src/L/ includes only headers of L and of the layers
# below it. Layers, lowest first (docs/ARCHITECTURE.md):
#   common store serve repo component mastodon drill cli cmd main
# src/main.c is the top. Prints each upward include as FILE:LINE: and exits 1 if any;
# a directory of src/ that is not a layer fails too (add it to the list).
#   tests/lint/includes.sh [SRC]   (default: the src/ of this tree)
set -u
src=${1:-$(dirname "$0")/../../src}
cd "$src" || exit 2
find . -name '*.[ch]' | sed 's|^\./||' | sort | xargs grep -Hn '' /dev/null |
    awk -v layers="common store serve repo component mastodon drill cli cmd main" -v src="$src" '
    BEGIN { n = split(layers, l, " "); for (i = 1; i <= n; i++) rank[l[i]] = i }
    {
        file = $0; sub(/:.*/, "", file)
        rest = substr($0, length(file) + 2)
        line = rest; sub(/:.*/, "", line)
        text = substr(rest, length(line) + 2)
        own = file ~ /\// ? file : "main"; sub(/\/.*/, "", own)
        if (!(own in rank)) {
            if (!(own in told)) printf "%s/%s: directory %s is not a layer: add it to tests/lint/includes.sh\n", src, file, own
            told[own] = 1; bad = 1; next
        }
        if (text !~ /^[ \t]*#[ \t]*include[ \t]*"[a-z_]+\//) next
        inc = text; sub(/^[^"]*"/, "", inc); sub(/".*/, "", inc)
        dir = inc; sub(/\/.*/, "", dir)
        if ((dir in rank) && rank[dir] > rank[own]) {
            printf "%s/%s:%s: %s includes %s: %s is above %s\n", src, file, line, own, inc, dir, own
            bad = 1
        }
    }
    END {
        if (bad) print "includes: a lower layer includes a higher one (see docs/ARCHITECTURE.md)"
        exit bad
    }' >&2
