#!/usr/bin/env bash
# compose.test.sh -- proves deploy/compose.yaml with Debian's podman-compose
# (1.0.3): builds the Parley, Redis and haproxy images on the Debian 12 base of
# container.test.sh, brings the stack up, and through haproxy's one published
# port: two WebSocket clients on two connections (round robin: one on each
# node, checked with each node's /healthz) join a room, one sends, the other
# gets the message with the acked id, and both nodes' histories agree. Then it
# stops the node of the client still connected: the client is closed, connects
# again through haproxy (to the other node), finds the message and sends
# another; the stopped node starts again, catches up from Redis (its SQLite has
# the message sent while it was down) and haproxy sends it traffic again.
# Last, `podman-compose down -v` must leave no container and no volume.
#
# Run from the repository root (CTest does): bash tests/container/compose.test.sh
# Needs root or sudo. Installs podman, runc, debootstrap, podman-compose and
# the CNI dnsname plugin with apt-get when they are missing. Takes about
# 3 to 7 minutes on a 2-core machine (more while it is loaded), most of it
# building the three images (no cache is kept between runs).
#
# The base image, the podman options and why, the stale-run sweep and the
# environment variables (PARLEY_SANITIZE, PARLEY_TEST_CACHE, PARLEY_TEST_MIRROR,
# PARLEY_TEST_KEEP) are in podman.sh, shared with container.test.sh.
#
# How podman-compose gets podman's options: podman-compose 1.0.3 puts
# --podman-args after the subcommand (`podman run --root … …`, `podman volume
# --root … inspect …`), which podman accepts for its global options, so the
# storage, runtime and network directory of podman.sh are passed that way;
# --podman-build-args gives the builds --format docker (the images keep their
# HEALTHCHECKs) and --pull=never, --podman-run-args the ulimits. Nothing is
# read from or written to the machine's own podman configuration or storage.
# Names: the containers of the stack resolve each other (redis, node1, ...)
# through CNI's dnsname plugin (golang-github-containernetworking-plugin-dnsname,
# dnsmasq on the network's bridge); without it podman 4.3's CNI networks have
# no DNS and haproxy and the nodes would find nobody. The network is made in
# this run's own --network-config-dir and removed at the end.
set -euo pipefail
TAG=compose
. "$(dirname "${BASH_SOURCE[0]}")/podman.sh"

step "tools: podman runc debootstrap curl podman-compose dnsname"
need_packages podman runc debootstrap curl podman-compose golang-github-containernetworking-plugin-dnsname
info "$(podman-compose version 2>/dev/null | grep -i 'podman-compose' | head -1)"
base_tar
NETDIR=1 podman_storage parley-compose

STAMP=$$
PROJECT=parleytest$STAMP
COMPOSE_FILE=deploy/compose.yaml
PORT="" # picked just before `up` binds it, not minutes before, across the builds
ROOM=compose
TEXT="hello through haproxy $STAMP ✓"
N1=${PROJECT}_node1_1
N2=${PROJECT}_node2_1
HAPROXY=${PROJECT}_haproxy_1
REDIS=${PROJECT}_redis_1
PAIR_PID=""
UP=""

# podman-compose with this run's podman (see the header). Its own output goes
# to $WORK/compose.log; the last lines are shown when a command fails.
compose() {
  local rc=0
  printf '\n$ podman-compose %s\n' "$*" >>"$WORK/compose.log"
  $SUDO env PARLEY_BASE="$BASE_IMAGE" PARLEY_HTTP_PORT="127.0.0.1:$PORT" \
    timeout "${COMPOSE_TIMEOUT:-900}" podman-compose -p "$PROJECT" -f "$COMPOSE_FILE" \
    --podman-args "$(printf '%q ' "${PODMAN_OPTS[@]}")" \
    --podman-build-args "--format docker --pull=never" \
    --podman-run-args "$(printf '%q ' "${RUN_OPTS[@]}")" \
    "$@" >>"$WORK/compose.log" 2>&1 || rc=$?
  return $rc
}
compose_or_fail() { # WHAT ARGS...
  local what=$1; shift
  if ! compose "$@"; then
    tail -40 "$WORK/compose.log" | grep -v 'unable to get systemd connection' >&2
    fail "$what failed (the last lines of podman-compose's output above)"
  fi
}

cleanup() {
  local rc=$?
  set +e
  # 77 means "skipped" to CTest; a step that failed with 77 is a failure.
  [ $rc -eq 77 ] && rc=1
  [ -n "$PAIR_PID" ] && kill "$PAIR_PID" 2>/dev/null
  if [ $rc -ne 0 ] && [ -n "$UP" ]; then
    for c in "$HAPROXY" "$N1" "$N2" "$REDIS"; do
      echo "[compose] --- logs of $c (last 15 lines)" >&2
      "${PODMAN[@]}" logs --tail 15 "$c" 2>&1 | sed 's/^/    /' >&2
    done
  fi
  if [ "${PARLEY_TEST_KEEP:-}" = 1 ]; then
    echo "[compose] kept: ${PODMAN[*]} ps -a   (storage in $WORK, log $WORK/compose.log)"
  else
    local t=$(ms)
    # On failure, the stack as the test leaves it on success (down -v), then
    # whatever is left: containers, the network, the storage.
    [ $rc -ne 0 ] && [ -n "$UP" ] && COMPOSE_TIMEOUT=120 compose down -v -t 5 >/dev/null 2>&1
    teardown "$WORK" "$driver"
    echo "[compose] cleaned up in $(( $(ms) - t )) ms"
  fi
  [ $rc -eq 0 ] || echo "[compose] FAILED (exit $rc) after $(( $(date +%s) - T0 ))s" >&2
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

podman_check
import_base

# GET PATH on port PORT inside container C (bash's /dev/tcp: the images have
# no curl); prints the status code, a space and the body.
http_in() { # C PORT PATH
  "${PODMAN[@]}" exec "$1" timeout 5 bash -c '
    exec 3<>/dev/tcp/127.0.0.1/$0 || exit 1
    printf "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" "$1" >&3
    IFS=" " read -r _ code _ <&3 || exit 1
    while IFS= read -r l <&3 && [ ${#l} -gt 1 ]; do :; done
    printf "%s " "$code"; cat <&3' "$2" "$3" 2>/dev/null
}
# The number in "connections":N of node C's /healthz.
conns() { http_in "$1" 8080 /healthz | sed -n 's/.*"connections":\([0-9]*\).*/\1/p'; }
# haproxy's state of server SRV (UP, DOWN, MAINT, ...), from its stats CSV.
hastate() { http_in "$HAPROXY" 8404 '/stats;csv' | awk -F, -v s="$1" '$1 == "nodes" && $2 == s { print $18 }'; }
# What the test sees now, for a failure's message.
state() {
  [ -n "$UP" ] || return 0
  printf '\n  node1: %s\n  node2: %s\n  haproxy: node1 %s, node2 %s' \
    "$(http_in "$N1" 8080 /healthz)" "$(http_in "$N2" 8080 /healthz)" "$(hastate node1)" "$(hastate node2)"
  [ -s "$WORK/pair.out" ] && printf '\n  client: %s' "$(tr '\n' '|' <"$WORK/pair.out")"
  return 0
}
# until_ok SECONDS WHAT CMD...: runs CMD every 0.5 s until it succeeds.
until_ok() {
  local secs=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "$what: not within $secs s$(state)"
    sleep 0.5
  done
}
healthy() { [[ "$(http_in "$1" 8080 /healthz)" == '200 '*'"redis":"up"'* ]]; }
ha_up() { [ "$(hastate "$1")" = UP ]; }
has_line() { grep -q "^$1" "$WORK/pair.out"; }

# ---------------------------------------------------------------------------
step "images: podman-compose build (parley, redis, haproxy on $BASE_IMAGE)"
t=$(ms)
# node2 is the same image as node1 (image: parley): built once.
compose_or_fail "podman-compose build" build redis node1 haproxy
info "built in $(( ($(ms) - t) / 1000 )) s: $("${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}} {{.Size}}' |
  grep -v -e parley-test-base -e '^<none>' | tr '\n' ' ')"
for img in parley parley-redis parley-haproxy; do
  hc=$("${PODMAN[@]}" image inspect --format '{{json .HealthCheck}}' "$img")
  [ "$hc" != null ] || fail "image $img has no HEALTHCHECK (built without --format docker?)"
done

PORT=$(free_port)
BASEURL="http://127.0.0.1:$PORT"
WSURL="ws://127.0.0.1:$PORT/ws"
step "up: podman-compose up -d (project $PROJECT, haproxy on 127.0.0.1:$PORT)"
t=$(ms)
UP=1
compose_or_fail "podman-compose up -d" up -d
info "containers: $("${PODMAN[@]}" ps --format '{{.Names}}' | tr '\n' ' ')"
for c in "$REDIS" "$N1" "$N2" "$HAPROXY"; do
  [ "$("${PODMAN[@]}" inspect --format '{{.State.Running}}' "$c" 2>/dev/null)" = true ] ||
    fail "container $c is not running"
done

step "wait: haproxy's port answers /healthz 200 with redis up (60 s at most)"
through_haproxy() { [[ "$(curl -sS -m 2 "$BASEURL/healthz" 2>/dev/null)" == *'"status":"ok"'*'"redis":"up"'* ]]; }
until_ok 60 "GET $BASEURL/healthz through haproxy" through_haproxy
info "after $(( $(ms) - t )) ms: $(curl -sS -m 2 "$BASEURL/healthz")"
until_ok 30 "node1 /healthz 200 with redis up" healthy "$N1"
until_ok 30 "node2 /healthz 200 with redis up" healthy "$N2"
until_ok 30 "haproxy sees node1 UP" ha_up node1
until_ok 30 "haproxy sees node2 UP" ha_up node2
info "node1: $(http_in "$N1" 8080 /healthz)"
info "node2: $(http_in "$N2" 8080 /healthz)"
info "haproxy: node1 $(hastate node1), node2 $(hastate node2)"
for c in "$N1" "$N2" "$REDIS"; do
  quiet "${PODMAN[@]}" healthcheck run "$c" >/dev/null || fail "podman healthcheck run $c: unhealthy"
done
info "compose healthchecks (podman healthcheck run): node1, node2, redis healthy"
aof=$("${PODMAN[@]}" exec "$REDIS" redis-cli config get appendfsync | tail -1)
[ "$aof" = always ] || fail "redis: appendfsync is '$aof', expected always"
[ "$("${PODMAN[@]}" exec "$REDIS" redis-cli config get appendonly | tail -1)" = yes ] || fail "redis: appendonly is not yes"
info "redis: appendonly yes, appendfsync always"

step "chat: two clients through haproxy, one on each node"
node tests/container/chat.mjs pair "$WSURL" "$ROOM" "$TEXT" "$WORK" >"$WORK/pair.out" 2>&1 &
PAIR_PID=$!
until_ok 30 "both clients joined" has_line ready
one_each() { [ "$(conns "$N1")" = 1 ] && [ "$(conns "$N2")" = 1 ]; }
until_ok 10 "one connection on each node" one_each
info "connections: node1 1, node2 1 (round robin)"
touch "$WORK/go"
until_ok 30 "the message from one node to the other" has_line exchanged
first=$(sed -n 's/^exchanged //p' "$WORK/pair.out")
MSG_ID=$(node -e 'console.log(JSON.parse(process.argv[1]).id)' "$first")
info "sent on one node, received on the other with the same id, histories agree: $first"

step "failover: stop the node of the client still connected"
# alice left: bob's node is the one with a connection.
bob_node() { b1=$(conns "$N1"); b2=$(conns "$N2"); [ "$b1$b2" = 10 ] || [ "$b1$b2" = 01 ]; }
until_ok 10 "alice's connection closed, bob's still open" bob_node
if [ "$b1" = 1 ]; then STOPPED=$N1 STOPPED_SRV=node1 OTHER=$N2; else STOPPED=$N2 STOPPED_SRV=node2 OTHER=$N1; fi
t=$(ms)
quiet "${PODMAN[@]}" stop -t 10 "$STOPPED" >/dev/null
info "podman stop $STOPPED: $(( $(ms) - t )) ms, exit code $("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$STOPPED")"
t=$(ms)
# chat.mjs gives itself 30 s to connect again; this bounds the whole of it.
for _ in $(seq 90); do kill -0 "$PAIR_PID" 2>/dev/null || break; sleep 0.5; done
kill -0 "$PAIR_PID" 2>/dev/null && fail "the client did not finish within 45 s: $(cat "$WORK/pair.out")"
wait "$PAIR_PID" || fail "the client failed: $(cat "$WORK/pair.out")"
PAIR_PID=""
grep -q '^closed 1001$' "$WORK/pair.out" || fail "the client was not closed with 1001: $(cat "$WORK/pair.out")"
second=$(sed -n 's/^reconnected //p' "$WORK/pair.out")
[ -n "$second" ] || fail "the client did not reconnect: $(cat "$WORK/pair.out")"
MSG2_ID=$(node -e 'console.log(JSON.parse(process.argv[1]).id)' "$second")
info "closed 1001, connected again through haproxy in $(( $(ms) - t )) ms, found message $MSG_ID, sent $second"
row=$("${PODMAN[@]}" exec "$OTHER" sqlite3 -cmd '.timeout 5000' /data/parley.db \
  "SELECT count(*) FROM messages WHERE id IN ($MSG_ID, $MSG2_ID)")
[ "$row" = 2 ] || fail "sqlite3 in $OTHER: $row of messages $MSG_ID and $MSG2_ID"
info "sqlite3 in $OTHER: both messages"

step "rejoin: start $STOPPED again; it catches up from Redis, then haproxy sends it traffic"
t=$(ms)
quiet "${PODMAN[@]}" start "$STOPPED" >/dev/null
until_ok 60 "$STOPPED /healthz 200 after its restart" healthy "$STOPPED"
caught_up() { [ "$("${PODMAN[@]}" exec "$STOPPED" sqlite3 -cmd '.timeout 5000' /data/parley.db \
  "SELECT count(*) FROM messages WHERE id = $MSG2_ID")" = 1 ]; }
until_ok 10 "message $MSG2_ID (sent while $STOPPED was stopped) in its SQLite" caught_up
info "$STOPPED serves after $(( $(ms) - t )) ms and has message $MSG2_ID: $(http_in "$STOPPED" 8080 /healthz)"
until_ok 30 "haproxy sees $STOPPED_SRV UP again (it re-resolves the name)" ha_up "$STOPPED_SRV"
info "haproxy: node1 $(hastate node1), node2 $(hastate node2)"

step "down: podman-compose down -v"
t=$(ms)
compose_or_fail "podman-compose down -v" down -v
UP=""
left=$("${PODMAN[@]}" ps -a --format '{{.Names}}')
[ -z "$left" ] || fail "containers left after down -v: $left"
left=$("${PODMAN[@]}" volume ls --format '{{.Name}}')
[ -z "$left" ] || fail "volumes left after down -v: $left"
info "no container and no volume left ($(( $(ms) - t )) ms); the network and storage go with the cleanup"

step "done"
echo "compose: 1 passed, 0 failed"
