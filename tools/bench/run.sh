#!/usr/bin/env bash
# Parley benchmarks: runs the standard scenarios with parley-loadgen against
# Parley and the comparison servers, and writes a markdown report.
#
# usage: tools/bench/run.sh [OUTPUT.md]        (no argument: report on stdout)
#
# Environment (all optional):
#   PARLEY_BIN       server binary to test (default: build/parley, built if missing)
#   BUILD_DIR        where parley-loadgen and lws-broadcast are built (default: build)
#   BENCH_SERVERS    servers to run, in order (default: "parley lws-broadcast ws-broadcast")
#   PARLEY_THREADS   --threads for Parley (default 1: the server is pinned to one core)
#   BENCH_SCENARIOS  scenarios to run (default: "capacity fixed1k rooms10k acks idle ceiling")
#   BENCH_IDLE_CLIENTS  connections for the idle scenario (default: 19900, lowered to the fd limit)
#   BENCH_PORT       ports are taken from BENCH_PORT+1 upwards, skipping busy ones (default: 18480)
#   BENCH_QUICK=1    shorter durations (smoke test; numbers are noisier)
#   BENCH_QUIET_WAIT seconds to wait before a run for other processes to use less than
#                    25% of a CPU (default 20; 0 = don't wait). The report flags runs
#                    that were disturbed anyway.
#   BENCH_BUDGET     seconds the whole run may take (default 840); scenarios that
#                    would start after that are skipped, each run is cut at the budget
#
# The server runs pinned to core 0 (taskset -c 0), the load generator to
# core 1, both at nice -10 when the user may raise priority (root).  Only loopback addresses are used.  Every loadgen run is bounded by
# its own deadline and by `timeout`; the whole script takes about 8-12 minutes.
# See docs/benchmarks-howto.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${1:-}
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
PARLEY_BIN=${PARLEY_BIN:-$BUILD_DIR/parley}
SERVERS=${BENCH_SERVERS:-"parley lws-broadcast ws-broadcast"}
SCENARIOS=${BENCH_SCENARIOS:-"capacity fixed1k rooms10k acks idle ceiling"}
PORT=${BENCH_PORT:-18480}
QUICK=${BENCH_QUICK:-0}
BUDGET=${BENCH_BUDGET:-840}
QUIET_WAIT=${BENCH_QUIET_WAIT:-20}

log() { echo "bench: $*" >&2; }

command -v taskset >/dev/null || { log "taskset (util-linux) is required"; exit 2; }
NCPU=$(nproc)
# Higher scheduling priority (when allowed) so that background jobs disturb less.
PRIO=""
if nice -n -10 true 2>/dev/null; then PRIO="nice -n -10"; fi
if [ "$NCPU" -ge 2 ]; then
    PIN_SERVER="taskset -c 0 $PRIO"
    PIN_LOADGEN="taskset -c 1 $PRIO"
else
    PIN_SERVER="$PRIO"
    PIN_LOADGEN="$PRIO"
    log "only one CPU: not pinning (numbers will be much worse)"
fi

# Raise the fd limit for this shell and everything it starts.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
IDLE_CLIENTS=${BENCH_IDLE_CLIENTS:-19900}
if [ "$IDLE_CLIENTS" -gt $((FD_LIMIT - 100)) ]; then
    IDLE_CLIENTS=$((FD_LIMIT - 100))
    log "fd limit $FD_LIMIT: idle scenario lowered to $IDLE_CLIENTS connections"
fi

# ---------------------------------------------------------------- build
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    log "configuring $BUILD_DIR"
    cmake -S "$ROOT" -B "$BUILD_DIR" >/dev/null
fi
targets=(--target parley-loadgen lws-broadcast epoll-broadcast)
[ "$PARLEY_BIN" = "$BUILD_DIR/parley" ] && targets+=(parley)
log "building ${targets[*]:1}"
cmake --build "$BUILD_DIR" -j"$NCPU" "${targets[@]}" >/dev/null
LOADGEN=$BUILD_DIR/tools/parley-loadgen
LWS_BCAST=$BUILD_DIR/tools/lws-broadcast
EPOLL_BCAST=$BUILD_DIR/tools/epoll-broadcast

if [[ " $SERVERS " == *" ws-broadcast "* ]] && [ ! -d "$ROOT/tools/bench/node_modules/ws" ]; then
    log "installing ws into tools/bench/node_modules"
    npm install --prefix "$ROOT/tools/bench" --no-audit --no-fund --no-package-lock --loglevel=error >/dev/null
fi

WORK=$(mktemp -d /tmp/parley-bench.XXXXXX)
RESULTS=$WORK/results.jsonl
COMMANDS=$WORK/commands.txt
: >"$RESULTS"
: >"$COMMANDS"
SERVER_PID=""

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# alive and not a zombie (a crashed child stays a zombie until waited for)
server_alive() {
    [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

next_port() {
    PORT=$((PORT + 1))
    while port_busy "$PORT"; do PORT=$((PORT + 1)); done
}

# start_server NAME -> sets SERVER_PID, SERVER_CMD, uses $PORT
start_server() {
    local name=$1
    next_port
    case $name in
    parley)
        local db=$WORK/parley-$PORT.db ipflags=""
        # Every client is 127.0.0.1: the per-address limits off, where the
        # binary has them (an A/B may compare a build from before them).
        if "$PARLEY_BIN" --help 2>&1 | grep -q -- --max-conns-per-ip; then
            ipflags="--max-conns-per-ip 0 --guests-per-ip-minute 0"
        fi
        SERVER_CMD="$PIN_SERVER $PARLEY_BIN --port $PORT --bind 127.0.0.1 --db $db --rate 100000 --burst 100000 --max-connections 20000 $ipflags --log-level warn --threads ${PARLEY_THREADS:-1}"
        ;;
    lws-broadcast) SERVER_CMD="$PIN_SERVER $LWS_BCAST --port $PORT" ;;
    ws-broadcast) SERVER_CMD="$PIN_SERVER node $ROOT/tools/bench/ws-broadcast.mjs --port $PORT" ;;
    epoll-broadcast) SERVER_CMD="$PIN_SERVER $EPOLL_BCAST --port $PORT" ;;
    *) log "unknown server $name"; return 1 ;;
    esac
    # taskset and nice exec the server, so $! is the server's own pid
    $SERVER_CMD >"$WORK/$name-$PORT.log" 2>&1 &
    SERVER_PID=$!
    local i
    for i in $(seq 1 100); do
        if port_busy "$PORT"; then return 0; fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    log "$name did not start; its log:"
    tail -20 "$WORK/$name-$PORT.log" >&2 || true
    stop_server
    return 1
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill "$SERVER_PID" 2>/dev/null || true
    local i
    for i in $(seq 1 50); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# scenario arguments
if [ "$QUICK" = 1 ]; then
    DUR=4 WARM=1 STEP=2
else
    DUR=10 WARM=2 STEP=3
fi
scenario_args() {
    case $1 in
    capacity) echo "--clients 1000 --rooms 1 --senders 10 --size 100 --capacity --rate 20 --step-seconds $STEP --step-factor 1.5 --refine-factor 1.15 --max-steps 16 --p99-limit-ms 100" ;;
    fixed1k) echo "--clients 1000 --rooms 1 --senders 10 --size 100 --rate 100 --warmup $WARM --duration $DUR" ;;
    rooms10k) echo "--clients 10000 --rooms 100 --senders 100 --size 100 --rate 500 --warmup $WARM --duration $DUR" ;;
    acks) echo "--clients 10 --rooms 1 --senders 10 --size 100 --rate 0 --window 64 --warmup $WARM --duration $DUR" ;;
    idle) echo "--clients $IDLE_CLIENTS --rooms $(((IDLE_CLIENTS + 9) / 10)) --senders 0 --idle --idle-wait 3" ;;
    ceiling) echo "--clients 100 --rooms 1 --senders 10 --size 100 --capacity --rate 2000 --step-seconds $STEP --step-factor 1.4 --refine-factor 1.15 --max-steps 12 --p99-limit-ms 100" ;;
    esac
}

# busy CPU time of the whole machine over one second, in % of one CPU
busy_pct() {
    local a b
    a=$(head -1 /proc/stat)
    sleep 1
    b=$(head -1 /proc/stat)
    # fields: cpu user nice system idle iowait irq softirq steal ...
    echo "$a $b" | awk -v hz="$(getconf CLK_TCK)" '{ busy1 = $2+$3+$4+$7+$8+$9; busy2 = $13+$14+$15+$18+$19+$20;
        print int((busy2 - busy1) * 100 / hz) }'
}

# wait (a bounded time) until nothing else is using the machine
wait_quiet() {
    [ "$QUIET_WAIT" -gt 0 ] || return 0
    local waited=0 b
    while b=$(busy_pct) && [ "$b" -gt 25 ] && [ "$waited" -lt "$QUIET_WAIT" ]; do
        [ "$waited" = 0 ] && log "other processes use ${b}% of a CPU; waiting up to ${QUIET_WAIT}s"
        sleep 4
        waited=$((waited + 5))
    done
}

run_one() { # server scenario
    local server=$1 sc=$2 args out rc left limit
    args=$(scenario_args "$sc")
    left=$((BUDGET - ($(date +%s) - T0)))
    if [ "$left" -lt 30 ]; then
        log "$server / $sc: skipped, the time budget (${BUDGET}s) is used up"
        echo "{\"label\":\"$server/$sc\",\"failed\":\"skipped: time budget\"}" >>"$RESULTS"
        return 0
    fi
    limit=$((left < 300 ? left : 300))
    wait_quiet
    if ! start_server "$server"; then
        echo "{\"label\":\"$server/$sc\",\"failed\":\"server did not start\"}" >>"$RESULTS"
        return 0
    fi
    local cmd="$PIN_LOADGEN $LOADGEN --port $PORT $args --server-pid $SERVER_PID --json --label $server/$sc"
    printf '%s\n  %s\n' "${SERVER_CMD//$WORK/\$TMP}" "${cmd//$WORK/\$TMP}" | sed "s/--server-pid [0-9]*/--server-pid \$SERVER_PID/" >>"$COMMANDS"
    log "$server / $sc: $args"
    set +e
    out=$(timeout "$limit" $cmd 2>"$WORK/loadgen.err")
    rc=$?
    set -e
    local line
    line=$(printf '%s\n' "$out" | grep '^{' | tail -1 || true)
    if [ -n "$line" ]; then
        echo "$line" >>"$RESULTS"
        log "  $line"
    else
        echo "{\"label\":\"$server/$sc\",\"failed\":\"loadgen exit $rc\"}" >>"$RESULTS"
        log "  loadgen failed (exit $rc):"
        tail -5 "$WORK/loadgen.err" >&2 || true
    fi
    if ! server_alive "$SERVER_PID"; then
        log "  $server exited during the run; its log:"
        tail -10 "$WORK/$server-$PORT.log" >&2 || true
        echo "{\"label\":\"$server/$sc\",\"server_died\":true}" >>"$RESULTS"
    fi
    stop_server
}

# --------------------------------------------------------- machine state
START=$(date -u +"%Y-%m-%d %H:%M UTC")
T0=$(date +%s)
CPU_MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
MEM=$(free -h 2>/dev/null | awk '/^Mem:/{print $2}')
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY=$(ps -eo pcpu=,comm= --sort=-pcpu 2>/dev/null | head -3 | awk '{printf "%s%s %s%%", (NR>1?", ":""), $2, $1}')
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- server 2>/dev/null || COMMIT="$COMMIT (server/ modified)"
log "load average before start: $LOADAVG; busiest: $BUSY"

for sc in $SCENARIOS; do
    if [ "$sc" = ceiling ]; then
        run_one epoll-broadcast ceiling
        continue
    fi
    for s in $SERVERS; do
        if [ "$s" = parley ] && [ ! -x "$PARLEY_BIN" ]; then
            echo "{\"label\":\"parley/$sc\",\"failed\":\"$PARLEY_BIN not built\"}" >>"$RESULTS"
            continue
        fi
        run_one "$s" "$sc"
    done
done
ELAPSED=$(($(date +%s) - T0))
LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)

report() {
    node "$ROOT/tools/bench/report.mjs" "$RESULTS" "$COMMANDS" <<EOF
{"date":"$START","cpu":"$CPU_MODEL","nproc":$NCPU,"mem":"$MEM","kernel":"$(uname -r)","commit":"$COMMIT",
 "loadavg_start":"$LOADAVG","loadavg_end":"$LOADAVG_END","busy":"$BUSY","elapsed_s":$ELAPSED,"fd_limit":$FD_LIMIT,
 "servers":"$SERVERS","quick":$([ "$QUICK" = 1 ] && echo true || echo false),
 "parley_bin":"${PARLEY_BIN#"$ROOT"/}","pin_server":"$PIN_SERVER","pin_loadgen":"$PIN_LOADGEN"}
EOF
}
if [ -n "$OUT" ]; then
    report >"$OUT"
    log "report written to $OUT (${ELAPSED}s)"
else
    report
fi
