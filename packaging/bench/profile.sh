#!/usr/bin/env bash
# Where a server's time goes while it holds calls: `onhold bench` holds CALLS calls on a fresh
# server process, and `perf record -g` samples that process for SECONDS of the hold.
#
#   bash packaging/bench/profile.sh target/release/onhold-mio [CALLS] [SECONDS] [SERVER_ARG…]
#
# Arguments after SECONDS go to the server (e.g. --rtp-shared-port=40000 --media-threads=0).
#
# Prints `perf report --no-children --percent-limit 2`; the bench's own table follows. Needs
# perf (Debian `linux-perf`) and the right to profile (root, or kernel.perf_event_paranoid ≤ 1).
set -euo pipefail
server=${1:?usage: profile.sh SERVER_BINARY [CALLS] [SECONDS]}
calls=${2:-2000}
seconds=${3:-8}
shift $(($# < 3 ? $# : 3))
server_args=()
for a in "$@"; do server_args+=("--server-arg=$a"); done
cps=500
here=$(cd "$(dirname "$0")/../.." && pwd)
onhold=${ONHOLD:-$here/target/release/onhold}
out=$(mktemp -d /tmp/onhold-profile.XXXXXX)
# The hold outlasts the ramp wait and the sample.
hold=$((seconds + 6))
"$onhold" bench --server "$server" --calls "$calls" --cps "$cps" --hold "${hold}s" \
    --work-dir "$out" "${server_args[@]}" >"$out/bench.txt" 2>"$out/bench.err" &
bench=$!
# The server is the bench's child; wait for it and for the ramp (CALLS / cps seconds).
pid=""
for _ in $(seq 100); do
    pid=$(pgrep -P "$bench" | head -n1 || true)
    [ -n "$pid" ] && break
    sleep 0.1
done
[ -n "$pid" ] || { echo "no server process under the bench" >&2; cat "$out/bench.err" >&2; exit 1; }
sleep $(((calls + cps - 1) / cps + 2))
perf record -g -p "$pid" -o "$out/perf.data" -- sleep "$seconds" 2>"$out/perf.err"
wait "$bench"
perf report -i "$out/perf.data" --no-children --percent-limit 2 --stdio 2>/dev/null | grep -v '^$'
cat "$out/bench.txt"
echo "(perf data and logs in $out)"
