#!/usr/bin/env bash
# A/B of two Parley binaries in one period: runs run.sh's standard scenarios
# (one scenario at a time, Parley only) alternating A, B, A, B, ... and keeps
# every run's JSON line with the load around it.
#
# usage: tools/bench/ab.sh A_BIN B_BIN OUT_DIR
#
# Environment (optional):
#   AB_ROUNDS     rounds (default 3): each round runs every scenario on A then B
#   AB_SCENARIOS  scenarios (default "capacity acks idle")
#   BENCH_QUIET_WAIT, BENCH_QUICK, BUILD_DIR ... are passed on to run.sh
#
# Writes OUT_DIR/runs.jsonl: one line per run, the loadgen's JSON with
# "ab" (A or B), "round", "loadavg_before"/"loadavg_after" (/proc/loadavg)
# and "procs_before" (the three busiest processes) added, and
# OUT_DIR/<round>-<scenario>-<A|B>.md (run.sh's report of that run).
# Every run stops by itself (run.sh: loadgen deadline + timeout); loopback only.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
A_BIN=$(realpath "$1") B_BIN=$(realpath "$2") OUT=$3
ROUNDS=${AB_ROUNDS:-3}
SCENARIOS=${AB_SCENARIOS:-"capacity acks idle"}
mkdir -p "$OUT"
: >"$OUT/runs.jsonl"
for r in $(seq 1 "$ROUNDS"); do
    for sc in $SCENARIOS; do
        for ab in A B; do
            bin=$A_BIN
            [ "$ab" = B ] && bin=$B_BIN
            la0=$(cut -d' ' -f1-3 /proc/loadavg)
            busy=$(ps -eo pcpu=,comm= --sort=-pcpu | head -3 | awk '{printf "%s%s %s%%", (NR>1?", ":""), $2, $1}')
            md=$OUT/$r-$sc-$ab.md
            echo "ab: round $r $sc $ab ($bin) load $la0" >&2
            BENCH_SERVERS=parley BENCH_SCENARIOS=$sc PARLEY_BIN=$bin BENCH_BUDGET=${BENCH_BUDGET:-400} \
                "$HERE/run.sh" "$md" 2>"$OUT/$r-$sc-$ab.log" || echo "ab: run.sh failed ($?)" >&2
            la1=$(cut -d' ' -f1-3 /proc/loadavg)
            # run.sh's report ends with the raw JSON lines of each run
            line=$(grep '^{.*"label":"parley/' "$md" | tail -1 || true)
            [ -n "$line" ] || line='{"failed":"no result"}'
            node -e '
                const [l, ab, r, sc, la0, la1, busy] = process.argv.slice(1);
                const o = JSON.parse(l);
                Object.assign(o, { ab, round: +r, scenario: sc, loadavg_before: la0, loadavg_after: la1, procs_before: busy });
                console.log(JSON.stringify(o));' "$line" "$ab" "$r" "$sc" "$la0" "$la1" "$busy" >>"$OUT/runs.jsonl"
            tail -1 "$OUT/runs.jsonl" | cut -c1-300 >&2
        done
    done
done
