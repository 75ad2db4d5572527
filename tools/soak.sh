#!/usr/bin/env bash
# Soak test: runs a Parley server and a mixed load against it for DURATION
# seconds, printing memory, file descriptors, connections, throughput,
# latency percentiles and errors every interval, then checks that every
# acked message is in the database and that the server stops cleanly.
#
#   tools/soak.sh DURATION [soak.mjs options]
#   tools/soak.sh 600 --interval 30 --chatters 500 --rooms 50 --rate 1
#
# Options (tools/soak/soak.mjs): --interval S (10), --chatters N (300),
# --rooms N (30), --rate R sends/s per chatter (0.5), --churners N (20),
# --readers N (5), --reconnect-every S (30).
# Environment: PARLEY_BIN (default build/parley; an ASan build works too),
# SOAK_SERVER_ARGS (extra server flags), SOAK_KEEP=1 keeps the temp dir.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dur=${1:?usage: tools/soak.sh DURATION_SECONDS [options]}
shift
bin=${PARLEY_BIN:-$root/build/parley}
[[ -x "$bin" ]] || { echo "soak: no server binary at $bin (build it first)" >&2; exit 2; }
dir=$(mktemp -d /tmp/parley-soak.XXXXXX)
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')

ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$bin" --port "$port" --bind 127.0.0.1 --db "$dir/soak.db" \
    --max-connections 20000 --max-conns-per-ip 0 --guests-per-ip-minute 0 \
    --rate 20 --burst 40 ${SOAK_SERVER_ARGS:-} 2>"$dir/server.log" &
pid=$!
cleanup() {
    kill -KILL "$pid" 2>/dev/null
    [[ "${SOAK_KEEP:-}" == 1 ]] && echo "soak: kept $dir" || rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    kill -0 "$pid" 2>/dev/null || { echo "soak: server exited at start:"; cat "$dir/server.log"; exit 2; }
    sleep 0.1
done
echo "soak: server $bin pid $pid port $port db $dir/soak.db"
echo "soak: $(uname -srm), $(nproc) CPUs, node $(node --version), started $(date -u +%FT%TZ)"

node "$root/tools/soak/soak.mjs" --url "ws://127.0.0.1:$port/ws" --pid "$pid" --db "$dir/soak.db" \
    --duration "$dur" "$@"
rc=$?

kill -TERM "$pid"
t0=$(date +%s%N)
wait "$pid"
code=$?
echo "soak: server exit code $code on SIGTERM after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
[[ $code -eq 0 ]] || rc=1
if grep -E "ERROR: AddressSanitizer|runtime error:|LeakSanitizer" "$dir/server.log"; then
    echo "soak: sanitizer report in the server log"; rc=1
fi
echo "soak: server log: $(grep -c . "$dir/server.log") lines; warnings/errors:"
grep -E " (warn|error) " "$dir/server.log" | sed -E 's/^[^ ]+ //' | sort | uniq -c | sort -rn | head -10
echo "soak: integrity_check $(sqlite3 "$dir/soak.db" 'PRAGMA integrity_check')"
exit $rc
