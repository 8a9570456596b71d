#!/usr/bin/env bash
# Two onhold instances behind Kamailio's dispatcher, all on loopback (127.0.0.1 for Kamailio,
# 127.0.0.2 and 127.0.0.3 for the instances):
#   1. places $CALLS calls through Kamailio and shows how they were split (each instance's
#      onhold_calls_total from its control API);
#   2. stops instance A with SIGTERM while 20 calls are up: A hangs up its calls (BYE, through
#      Kamailio) and exits 0; Kamailio's OPTIONS pings (503 while draining, then no answer)
#      take it out of the rotation;
#   3. places 50 more calls: every one is answered by B.
# Exits non-zero, saying why, if any of that does not happen.
#
#   bash packaging/cluster/run.sh                      # onhold and kamailio from PATH
#   ONHOLD=target/release/onhold ONHOLD_B=target/release/onhold-mio PROXY_PORT=5070 \
#     SIP_PORT=5060 CALLS=200 bash packaging/cluster/run.sh
# (ONHOLD_B: instance B's binary, by default the same as A's.)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
ONHOLD=${ONHOLD:-onhold}
ONHOLD_B=${ONHOLD_B:-$ONHOLD}
KAMAILIO=${KAMAILIO:-$(command -v kamailio || echo /usr/sbin/kamailio)}
PROXY_PORT=${PROXY_PORT:-5070}
SIP_PORT=${SIP_PORT:-5060}
CALLS=${CALLS:-200}
A=127.0.0.2
B=127.0.0.3
work=$(mktemp -d)
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${failed:-0}" = 1 ]; then
    echo "logs kept in $work" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
fail() {
  failed=1
  echo "FAIL: $*" >&2
  for f in "$work"/*.log; do echo "--- $f (last 20 lines)" >&2; tail -20 "$f" >&2; done
  exit 1
}

start_instance() { # name ip binary
  "$3" --listen "udp:$2:$SIP_PORT" --rtp-ip "$2" --advertised-address "$2" \
    --rtp-ports 20000-20999 --control-listen "$2:8080" --shutdown-grace 5s --seed 1 \
    2>"$work/$1.log" &
  pids+=($!)
  eval "pid_$1=$!"
  for _ in $(seq 100); do
    grep -q "control API on" "$work/$1.log" && return 0
    sleep 0.1
  done
  fail "instance $1 did not start"
}

answered() { # ip: the instance's answered calls
  "$ONHOLD" ctl --url "http://$1:8080" metrics |
    awk '/^onhold_calls_total\{outcome="answered"\}/ { print $2 }'
}

probe() { # name calls duration: calls through Kamailio, judged by onhold probe
  "$ONHOLD" probe "sip:moh@127.0.0.1:$PROXY_PORT" --calls "$2" --rate 50 --duration "$3" \
    --timeout 5s >"$work/$1.log" 2>&1
}

start_instance a "$A" "$ONHOLD"
start_instance b "$B" "$ONHOLD_B"

printf '1 sip:%s:%s\n1 sip:%s:%s\n' "$A" "$SIP_PORT" "$B" "$SIP_PORT" >"$work/dispatcher.list"
sed -e "s|^listen=.*|listen=udp:127.0.0.1:$PROXY_PORT|" \
  -e "s|/etc/kamailio/dispatcher.list|$work/dispatcher.list|" \
  "$here/kamailio.cfg" >"$work/kamailio.cfg"
"$KAMAILIO" -DD -E -m 64 -M 8 -f "$work/kamailio.cfg" -P "$work/kamailio.pid" -Y "$work" \
  -w "$work" >"$work/kamailio.log" 2>&1 &
pids+=($!)
# Both instances answered a ping: in the rotation.
sleep 3
kill -0 "${pids[-1]}" 2>/dev/null || fail "kamailio did not start"

echo "1. $CALLS calls through Kamailio"
probe calls1 "$CALLS" 2s || fail "the probe judged some of the $CALLS calls unhealthy"
a1=$(answered "$A")
b1=$(answered "$B")
echo "   instance A ($A) answered $a1, instance B ($B) answered $b1"
[ "$((a1 + b1))" = "$CALLS" ] || fail "$((a1 + b1)) answered, not $CALLS"
[ "$a1" -gt 0 ] && [ "$b1" -gt 0 ] || fail "one instance took every call"

echo "2. 20 calls up, then SIGTERM to instance A"
probe calls2 20 8s &
long=$!
sleep 3
kill -TERM "$pid_a"
status=0
wait "$pid_a" || status=$?
[ "$status" = 0 ] || fail "instance A exited with $status"
ended=$(grep -c "call ended.*reason=Control" "$work/a.log" || true)
echo "   instance A hung up its $ended calls and exited 0"
[ "$ended" -gt 0 ] || fail "instance A had no calls to end"
wait "$long" || true # A's calls ended early: the probe says so

echo "3. 50 more calls"
sleep 2
probe calls3 50 1s || fail "calls after the drain were not all healthy"
b3=$(answered "$B")
echo "   instance B answered $((b3 - b1 - (20 - ended))) of them (A is gone)"
[ "$((b3 - b1 - (20 - ended)))" = 50 ] || fail "B answered $((b3 - b1)) since step 1, expected $((50 + 20 - ended))"
echo "PASS"
