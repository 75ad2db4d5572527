#!/usr/bin/env bash
# Instructions per delivered frame on the fan-out path, under callgrind:
# repeatable when the machine is too noisy for wall-clock capacity numbers.
#
# usage: tools/bench/callgrind-fanout.sh PARLEY_BIN OUT_DIR [LOADGEN]
#
# The server (--threads 1, temporary database, --rate/--burst 100000) runs
# under `valgrind --tool=callgrind --instr-atstart=no`; parley-loadgen puts
# 200 clients in one room and 10 senders send 20 msgs/s (4,000 deliveries/s)
# for 25 s. Once sending has started, collection is switched on for 8 s
# (callgrind_control -i on/off), and the instructions counted are divided
# by the growth of /metrics parley_frames_out_total over the same window
# (read just before switching on and just after switching off).
# Prints one JSON line; OUT_DIR keeps callgrind.out.* for callgrind_annotate.
# Everything ends by itself (loadgen deadline, timeout, the server is killed).
set -euo pipefail
BIN=$(realpath "$1") OUT=$2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LOADGEN=${3:-$ROOT/build/tools/parley-loadgen}
mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/parley-cg.XXXXXX)
PID="" WD=""
cleanup() { [ -n "$WD" ] && kill "$WD" 2>/dev/null; [ -n "$PID" ] && kill "$PID" 2>/dev/null; sleep 0.5; [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
# the per-address flags only for a binary that has them (an A/B against an
# older build)
IPFLAGS=()
"$BIN" --help 2>&1 | grep -q max-conns-per-ip && IPFLAGS=(--max-conns-per-ip 0 --guests-per-ip-minute 0)
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
taskset -c 0 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT/callgrind.out.%p" \
    "$BIN" --port "$PORT" --bind 127.0.0.1 --db "$TMP/cg.db" --rate 100000 --burst 100000 --threads 1 \
    --max-connections 2000 --log-level warn "${IPFLAGS[@]}" 2>"$OUT/valgrind.log" &
PID=$! # taskset execs valgrind: its pid (callgrind_control needs it)
# a watchdog: the server never outlives 150 s (cancelled by cleanup)
(trap 'exit 0' TERM; sleep 150 & wait $!; kill -9 "$PID" 2>/dev/null) &
WD=$!
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
for i in $(seq 1 300); do curl -s "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
timeout 100 taskset -c 1 "$LOADGEN" --port "$PORT" --clients 200 --rooms 1 --senders 10 --size 100 --rate 20 \
    --warmup 5 --duration 20 --drain 5 --json --label callgrind >"$TMP/lg.json" 2>"$TMP/lg.err" &
LG=$!
# wait until messages are being stored (setup and presence are over)
for i in $(seq 1 600); do
    s=$(metric parley_messages_stored_total); [ "${s:-0}" -gt 40 ] && break; sleep 0.1
done
sleep 1
f0=$(metric parley_frames_out_total); m0=$(metric parley_messages_stored_total)
callgrind_control -i on "$PID" >/dev/null
sleep 8
callgrind_control -i off "$PID" >/dev/null
f1=$(metric parley_frames_out_total); m1=$(metric parley_messages_stored_total)
callgrind_control -d "$PID" >/dev/null
wait "$LG" || true
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
# the dump made by `callgrind_control -d` holds the 8 s window
ir=$(cat "$OUT"/callgrind.out.* | awk '/^totals:/ { s += $2 } END { print s }')
node -e '
  const [ir, f0, f1, m0, m1, bin] = process.argv.slice(1).map((x, i) => (i < 5 ? Number(x) : x));
  const lg = require("fs").readFileSync(process.argv[7], "utf8").split("\n").find((l) => l.startsWith("{")) || "{}";
  const j = JSON.parse(lg);
  console.log(JSON.stringify({ bin, ir, frames_out: f1 - f0, messages: m1 - m0, ir_per_frame: Math.round(ir / (f1 - f0)),
    ir_per_message: Math.round(ir / (m1 - m0)), loadgen_missing: j.missing, loadgen_deliveries_per_s: j.deliveries_per_s }));
' "$ir" "$f0" "$f1" "$m0" "$m1" "$BIN" "$TMP/lg.json"
