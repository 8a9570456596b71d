#!/usr/bin/env bash
# Instructions per complete INVITE→200→ACK→BYE dialog through onhold_core::Server, counted by
# callgrind: unlike dialogs per second, the same binary gives the same count on a busy machine.
# Two runs of different lengths, subtracted, cancel the set-up (music, server) out.
#
#   bash core/benches/instructions.sh        # needs valgrind (apt-get install valgrind)
set -euo pipefail
cd "$(dirname "$0")/../.."
exe=$(cargo bench -p onhold-core --bench server --no-run --message-format=json 2>/dev/null |
  grep -o '"executable":"[^"]*/server-[^"]*"' | tail -1 | cut -d'"' -f4)
[ -n "$exe" ] || { echo "build failed: cargo bench -p onhold-core --bench server --no-run" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
count() {
  BENCH_ROUNDS=1 BENCH_DIALOGS=$1 valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$1" \
    "$exe" dialogs >/dev/null 2>"$tmp/err.$1" || { cat "$tmp/err.$1" >&2; exit 1; }
  grep -m1 '^summary:' "$tmp/cg.$1" | awk '{print $2}'
}
short=$(count 2000)
long=$(count 4000)
echo "instructions per INVITE→200→ACK→BYE dialog through Server: $(( (long - short) / 2000 ))"
