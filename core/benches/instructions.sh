#!/usr/bin/env bash
# Instructions and L1 instruction-cache misses per complete INVITE→200→ACK→BYE dialog through
# onhold_core::Server, counted by callgrind: unlike dialogs per second, the same binary gives the
# same counts on a busy machine. Two runs of different lengths, subtracted, cancel the set-up
# (music, server) out. The cache is simulated as a 32 KB, 8-way L1i (these VMs' EPYC cores):
# a dialog's code path is larger than that, so misses, not only instructions, set the wall clock.
#
#   bash core/benches/instructions.sh        # needs valgrind (apt-get install valgrind)
#   bash core/benches/instructions.sh --features reference   # arguments go to cargo bench
set -euo pipefail
cd "$(dirname "$0")/../.."
exe=$(cargo bench --profile profiling -p onhold-core --bench server --no-run --message-format=json "$@" 2>/dev/null |
  grep -o '"executable":"[^"]*/server-[^"]*"' | tail -1 | cut -d'"' -f4)
[ -n "$exe" ] || { echo "build failed: cargo bench --profile profiling -p onhold-core --bench server --no-run" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# prints "instructions L1i-misses" for a run of $1 dialogs
count() {
  BENCH_ROUNDS=1 BENCH_DIALOGS=$1 valgrind --tool=callgrind --cache-sim=yes --I1=32768,8,64 \
    --callgrind-out-file="$tmp/cg.$1" "$exe" dialogs >/dev/null 2>"$tmp/err.$1" ||
    { cat "$tmp/err.$1" >&2; exit 1; }
  # events: Ir Dr Dw I1mr ...; summary: gives them in that order
  awk '/^events:/ { for (i = 2; i <= NF; i++) col[$i] = i }
       /^summary:/ { print $(col["Ir"]), $(col["I1mr"]) }' "$tmp/cg.$1"
}
read -r short_ir short_i1 < <(count 2000)
read -r long_ir long_i1 < <(count 4000)
echo "instructions per INVITE→200→ACK→BYE dialog through Server: $(( (long_ir - short_ir) / 2000 ))"
echo "L1 instruction-cache misses per dialog (32 KB, 8-way):      $(( (long_i1 - short_i1) / 2000 ))"
