#!/usr/bin/env bash
# Instructions per G.722 octet of the encoder alone (`media` bench, `g722-encode`), counted by
# callgrind: two runs of different lengths, subtracted, so set-up cancels out.
#
#   bash core/benches/g722.sh        # needs valgrind (apt-get install valgrind)
set -euo pipefail
cd "$(dirname "$0")/../.."
bench_exe() {
  cargo bench --profile profiling -p onhold-core --bench "$1" --no-run --message-format=json 2>/dev/null |
    grep -o "\"executable\":\"[^\"]*/$1-[^\"]*\"" | tail -1 | cut -d'"' -f4
}
media=$(bench_exe media)
[ -n "$media" ] || { echo "build failed: cargo bench --profile profiling -p onhold-core --bench media --no-run" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# prints the instructions of one run: $1 the executable, $2 its part, $3 the knob's setting
count() {
  env "$3" valgrind --tool=callgrind --callgrind-out-file="$tmp/cg" "$1" "$2" >/dev/null 2>"$tmp/err" ||
    { cat "$tmp/err" >&2; exit 1; }
  awk '/^events:/ { for (i = 2; i <= NF; i++) col[$i] = i }
       /^summary:/ { print $(col["Ir"]) }' "$tmp/cg"
}
short=$(count "$media" g722-encode BENCH_OCTETS=100000)
long=$(count "$media" g722-encode BENCH_OCTETS=300000)
echo "instructions per G.722 octet, encoder alone: $(( (long - short) / 200000 ))"
