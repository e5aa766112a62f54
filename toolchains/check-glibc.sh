#!/usr/bin/env bash
# Fails when an ELF file needs a glibc newer than the floor (default 2.17, the bundle's).
#
#   toolchains/check-glibc.sh [--max 2.17] FILE...
#
# Reads the version-needs section (readelf -V): the GLIBC_x.y versions the dynamic linker
# must find on the board. Prints "FILE: glibc X.Y (floor 2.17) ok" per file, one line each.
set -euo pipefail

max=2.17
if [ "${1:-}" = "--max" ]; then max="$2"; shift 2; fi
[ $# -gt 0 ] || { echo "usage: $0 [--max X.Y] FILE..." >&2; exit 2; }

status=0
for f in "$@"; do
    if [ ! -f "$f" ]; then echo "$f: missing" >&2; status=1; continue; fi
    versions=$(readelf -V --wide "$f" | sed -n '/Version needs section/,$p' \
        | grep -o 'Name: GLIBC_[0-9][0-9.]*' | sed 's/Name: GLIBC_//' | sort -uV)
    if [ -z "$versions" ]; then
        echo "$f: needs no versioned glibc symbol"
        continue
    fi
    highest=$(printf '%s\n' "$versions" | tail -n1)
    # highest <= max  <=>  max sorts last (or equal)
    if [ "$(printf '%s\n%s\n' "$highest" "$max" | sort -V | tail -n1)" = "$max" ]; then
        echo "$f: glibc $highest (floor $max) ok"
    else
        newer=$(printf '%s\n' "$versions" | while read -r v; do
            [ "$(printf '%s\n%s\n' "$v" "$max" | sort -V | tail -n1)" = "$v" ] && [ "$v" != "$max" ] && echo "$v"
        done | tr '\n' ' ')
        echo "$f: glibc $highest needed, above the floor $max (versions above it: $newer)" >&2
        status=1
    fi
done
exit $status
