#!/usr/bin/env bash
# What a live source costs in CPU: Icecast on loopback fed 44.1 kHz stereo MP3 at 128 kbit/s by
# ffmpeg (a chord, so the decoder has work), and the release `onhold` playing it as a live class
# with no calls; `perf stat` counts the server's task-clock over SECONDS (default 30) once the
# source plays. The same server with the class playing a file instead is the baseline: the
# difference is the stream's reading, decoding, resampling and G.711 encoding.
#
#   cargo build --release --bin onhold && bash runtime/benches/live_cpu.sh [SECONDS]
#
# Needs icecast2, ffmpeg and perf. Everything listens on 127.0.0.1 only.
set -euo pipefail
seconds=${1:-30}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$root/target/release/onhold
[ -x "$bin" ] || { echo "build it first: cargo build --release --bin onhold" >&2; exit 1; }
dir=$(mktemp -d)
chmod 755 "$dir"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
port=$((20000 + RANDOM % 20000))
owner=""
[ "$(id -u)" = 0 ] && owner="<changeowner><user>nobody</user><group>nogroup</group></changeowner>"
cat > "$dir/icecast.xml" <<EOF
<icecast>
  <limits><clients>4</clients><sources>2</sources></limits>
  <authentication><source-password>pw</source-password><admin-user>admin</admin-user>
    <admin-password>pw</admin-password></authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket><port>$port</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <paths><basedir>$dir</basedir><logdir>$dir</logdir>
    <webroot>/usr/share/icecast2/web</webroot><adminroot>/usr/share/icecast2/admin</adminroot></paths>
  <logging><errorlog>-</errorlog><accesslog>-</accesslog><loglevel>1</loglevel></logging>
  <security><chroot>0</chroot>$owner</security>
</icecast>
EOF
icecast2 -c "$dir/icecast.xml" >"$dir/icecast.log" 2>&1 & pids+=($!)
sleep 1
ffmpeg -nostdin -loglevel error -re -f lavfi \
  -i "aevalsrc=0.2*sin(2*PI*220*t)+0.2*sin(2*PI*277*t)+0.2*sin(2*PI*330*t)|0.2*sin(2*PI*440*t):s=44100" \
  -c:a libmp3lame -b:a 128k -content_type audio/mpeg -f mp3 \
  "icecast://source:pw@127.0.0.1:$port/live.mp3" 2>"$dir/ffmpeg.log" & pids+=($!)
sleep 2
ffmpeg -nostdin -loglevel error -f lavfi -i "sine=frequency=400:duration=10" "$dir/fallback.wav"

run() { # $1: the class's music; prints task-clock ms
  local control=$((port + 1)) sip=$((port + 2))
  cat > "$dir/onhold.toml" <<EOF
listen = ["udp:127.0.0.1:$sip"]
control_listen = "127.0.0.1:$control"
[classes.default]
music = "$1"
EOF
  "$bin" --config "$dir/onhold.toml" --log-level warn 2>"$dir/onhold.log" & local pid=$!
  pids+=($pid)
  sleep 5
  perf stat -x, -e task-clock -p "$pid" -- sleep "$seconds" 2>&1 | awk -F, '/task-clock/ {print $1}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
live=$(run "http://127.0.0.1:$port/live.mp3")
file=$(run "$dir/fallback.wav")
awk -v l="$live" -v f="$file" -v s="$seconds" 'BEGIN {
  printf "live class: %.1f ms CPU over %d s; file class: %.1f ms; a live source: %.2f ms CPU per second of audio (%.2f %% of one core)\n", l, s, f, (l - f) / s, (l - f) / s / 10
}'
