#!/bin/sh
# Prints the faked moment for a run: one of scripts/faked_moments.txt, chosen by the run's day
# (UTC days since 1970), so that day after day CI passes through every moment on the list.
# `scripts/faked_moment.sh all` prints the whole list.
set -eu
list="$(dirname "$0")/faked_moments.txt"
moments=$(grep -v '^#' "$list" | grep -v '^[[:space:]]*$' | sed 's/[[:space:]]*|.*$//')
if [ "${1:-}" = "all" ]; then
    echo "$moments"
    exit 0
fi
count=$(echo "$moments" | wc -l)
day=$(( $(date -u +%s) / 86400 ))
echo "$moments" | sed -n "$(( day % count + 1 ))p"
