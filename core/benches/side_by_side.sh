#!/usr/bin/env bash
# Dialogs per second of several builds of the `server` bench, side by side: on these shared VMs
# the same binary varies by up to 2x through the day, so builds are compared only within one run.
# Each round runs every binary once (`BENCH_ROUNDS=3 <bin> dialogs`, keeping that run's best),
# alternating; at the end each binary's bests are listed with their median and maximum.
#
#   cargo bench -p onhold-core --bench server --no-run    # prints the binary's path; copy it
#   bash core/benches/side_by_side.sh OLD_BIN NEW_BIN [...]   # ROUNDS=6 by default
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BENCH_BINARY... (see the comment at the top)" >&2; exit 2; }
rounds=${ROUNDS:-6}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for _ in $(seq "$rounds"); do
  for k in $(seq $#); do
    bin=${!k}
    BENCH_ROUNDS=3 "$bin" dialogs | grep -o '[0-9]* /s best' | awk '{print $1}' >>"$tmp/$k"
  done
done
for k in $(seq $#); do
  sort -n "$tmp/$k" | awk -v name="${!k}" '{ v[NR] = $1; all = all " " $1 }
    END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "%s\n  bests:%s\n  median of bests %d /s, best %d /s\n", name, all, m, v[NR] }'
done
