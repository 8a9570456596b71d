#!/usr/bin/env bash
# Instructions per G.722 octet of the encoder alone (`media` bench, `g722-encode`), and per RTP
# packet of a G.722 call and of a PCMU call through Server (`server` bench, `g722` and `pcmu`:
# 20 shared-mode calls, 20 ms packets, the G.722 ones encoded live), counted by callgrind: two
# runs of different lengths, subtracted, so set-up cancels out.
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
server=$(bench_exe server)
[ -n "$server" ] || { echo "build failed: cargo bench --profile profiling -p onhold-core --bench server --no-run" >&2; exit 1; }
for codec in g722 pcmu; do
  short=$(BENCH_CALLS=20 count "$server" $codec BENCH_SECONDS=1)
  long=$(BENCH_CALLS=20 count "$server" $codec BENCH_SECONDS=3)
  echo "instructions per 20 ms RTP packet, $codec call through Server: $(( (long - short) / (20 * 100) ))"
done
short=$(count "$media" g722-encode BENCH_OCTETS=100000)
long=$(count "$media" g722-encode BENCH_OCTETS=300000)
echo "instructions per G.722 octet, encoder alone: $(( (long - short) / 200000 ))"
