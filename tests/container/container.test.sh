#!/usr/bin/env bash
# container.test.sh -- proves the Dockerfile: builds the image with podman on a
# Debian 12 base made here with debootstrap, runs it with a volume, checks
# /healthz and the HEALTHCHECK, chats through it over WebSocket, stops it (it
# must exit 0 in under 5 s on SIGTERM, closing clients with 1001), starts a new
# container on the same volume and finds the message in the history.
#
# Run from the repository root (CTest does): bash tests/container/container.test.sh
# Needs root or sudo (debootstrap and rootful podman). Installs podman, runc and
# debootstrap with apt-get when they are missing.
#
# The base image, the podman options and why, the stale-run sweep and the
# environment variables (PARLEY_SANITIZE, PARLEY_TEST_CACHE, PARLEY_TEST_MIRROR,
# PARLEY_TEST_KEEP) are in podman.sh, shared with compose.test.sh.
set -euo pipefail
TAG=container
. "$(dirname "${BASH_SOURCE[0]}")/podman.sh"

# ---------------------------------------------------------------------------
step "tools: podman runc debootstrap curl"
need_packages podman runc debootstrap curl
base_tar
podman_storage parley-container

STAMP=$$
IMAGE=localhost/parley-test:$STAMP
VOLUME=parley-test-data-$STAMP
C1=parley-test-1-$STAMP
C2=parley-test-2-$STAMP
HOLD_PID=""
cleanup() {
  local rc=$?
  set +e
  # 77 means "skipped" to CTest; a step that failed with 77 is a failure.
  [ $rc -eq 77 ] && rc=1
  [ -n "$HOLD_PID" ] && kill "$HOLD_PID" 2>/dev/null
  if [ "${PARLEY_TEST_KEEP:-}" = 1 ]; then
    echo "[container] kept: ${PODMAN[*]} ps -a   (storage in $WORK)"
  else
    local t=$(ms)
    teardown "$WORK" "$driver"
    echo "[container] cleaned up in $(( $(ms) - t )) ms"
  fi
  [ $rc -eq 0 ] || echo "[container] FAILED (exit $rc) after $(( $(date +%s) - T0 ))s" >&2
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

podman_check
import_base

step "image: podman build --build-arg BASE=$BASE_IMAGE"
t=$(ms)
if ! "${PODMAN[@]}" build --format docker --pull=never --build-arg "BASE=$BASE_IMAGE" \
      -t "$IMAGE" -f Dockerfile . 2>&1 | tee "$WORK/build.log" |
      grep --line-buffered -E '^(\[[0-9]+/[0-9]+\] )?STEP' | sed -u 's/^/[container]   /'; then
  tail -40 "$WORK/build.log" >&2
  fail "podman build failed (last lines above)"
fi
info "built in $(( ($(ms) - t) / 1000 )) s"
SIZE=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
info "image size: $SIZE bytes ($(( SIZE / 1000000 )) MB); base alone: $("${PODMAN[@]}" image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes"
cfg=$("${PODMAN[@]}" image inspect --format '{{.Config.User}} {{.Config.StopSignal}} {{json .Config.ExposedPorts}} {{json .Config.Volumes}}' "$IMAGE")
info "config: user/stopsignal/ports/volumes: $cfg"
[[ "$cfg" == "parley:parley SIGTERM "*'"8080/tcp"'*'"/data"'* ]] || fail "unexpected image config: $cfg"
hc=$("${PODMAN[@]}" image inspect --format '{{json .HealthCheck}}' "$IMAGE")
[[ "$hc" == *healthz* ]] || fail "image has no HEALTHCHECK on /healthz: $hc"

# ---------------------------------------------------------------------------
PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
BASEURL="http://127.0.0.1:$PORT"
WSURL="ws://127.0.0.1:$PORT/ws"
SECRET="container-test-secret-$STAMP-0123456789abcdef"
ROOM=container
TEXT="hello from the container test $STAMP ✓"
"${PODMAN[@]}" volume create "$VOLUME" >/dev/null

wait_healthz() { # NAME
  local deadline=$(( $(date +%s) + 30 ))
  until curl -fsS -m 2 -o /dev/null "$BASEURL/healthz" 2>/dev/null; do
    if [ "$("${PODMAN[@]}" inspect --format '{{.State.Running}}' "$1")" != true ]; then
      "${PODMAN[@]}" logs "$1" >&2 || true
      fail "container $1 exited before /healthz answered (logs above)"
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { "${PODMAN[@]}" logs "$1" >&2; fail "/healthz did not answer within 30 s"; }
    sleep 0.2
  done
}

step "run 1: podman run -p 127.0.0.1:$PORT:8080 -v $VOLUME:/data (guests allowed, PARLEY_MAX_TEXT=1234)"
quiet "${PODMAN[@]}" run -d --name "$C1" "${RUN_OPTS[@]}" \
  -p "127.0.0.1:$PORT:8080" -v "$VOLUME:/data" \
  -e PARLEY_JWT_SECRET="$SECRET" -e PARLEY_MAX_TEXT=1234 \
  "$IMAGE" >/dev/null
t=$(ms)
wait_healthz "$C1"
info "/healthz answered after $(( $(ms) - t )) ms: $(curl -fsS -m 2 "$BASEURL/healthz" | head -c 300)"
"${PODMAN[@]}" healthcheck run "$C1" >/dev/null || fail "podman healthcheck run: unhealthy"
info "HEALTHCHECK: $("${PODMAN[@]}" inspect --format '{{.State.Health.Status}}' "$C1")"
uid=$("${PODMAN[@]}" exec "$C1" awk '/^Uid:/ { print $2 }' /proc/1/status)
[ "$uid" != 0 ] || fail "parley runs as root in the container"
info "parley (pid 1) runs as uid $uid"

step "chat: hello, join, send over WebSocket"
# A second client stays connected, to see the close code when the container stops.
node tests/container/chat.mjs hold "$WSURL" "$ROOM" >"$WORK/hold.out" 2>&1 &
HOLD_PID=$!
sent=$(CHAT_MAX_TEXT=1234 node tests/container/chat.mjs send "$WSURL" "$ROOM" "$TEXT") || fail "chat failed"
info "acked and delivered: $sent"
MSG_ID=$(node -e 'console.log(JSON.parse(process.argv[1]).id)' "$sent")
for _ in $(seq 100); do grep -q ready "$WORK/hold.out" && break; sleep 0.1; done
grep -q ready "$WORK/hold.out" || fail "second client did not join: $(cat "$WORK/hold.out")"
sent_tok=$(CHAT_SECRET="$SECRET" node tests/container/chat.mjs send "$WSURL" "$ROOM" "$TEXT (token)") ||
  fail "chat with a token (PARLEY_JWT_SECRET) failed"
info "token user (PARLEY_JWT_SECRET): $sent_tok"

step "stop: podman stop -t 10 (SIGTERM; parley must exit 0 in < 5 s)"
t=$(ms)
quiet "${PODMAN[@]}" stop -t 10 "$C1" >/dev/null
stop_ms=$(( $(ms) - t ))
code=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$C1")
# The promise is parley's exit (conmon's record, on the host clock), not
# podman's own network and mount cleanup after it (2.7 s for a compose node once).
exit_at=$("${PODMAN[@]}" inspect --format '{{.State.FinishedAt.UnixMilli}}' "$C1" 2>/dev/null || true)
if [[ "$exit_at" =~ ^[0-9]+$ ]] && (( exit_at >= t )); then exit_ms=$(( exit_at - t )); else exit_ms=$stop_ms; fi
info "parley exited $exit_ms ms after the stop began (podman stop took $stop_ms ms), exit code $code"
wait "$HOLD_PID" || fail "the held client failed: $(cat "$WORK/hold.out")"
HOLD_PID=""
info "held client: $(tail -1 "$WORK/hold.out")"
if [ "$code" != 0 ] || [ "$exit_ms" -ge 5000 ]; then
  "${PODMAN[@]}" logs --tail 30 "$C1" >&2
  fail "container did not stop cleanly on SIGTERM (exit $code after $exit_ms ms, podman stop $stop_ms ms; logs above)"
fi
grep -q '^closed 1001$' "$WORK/hold.out" || fail "clients were not closed with 1001: $(cat "$WORK/hold.out")"
quiet "${PODMAN[@]}" rm "$C1" >/dev/null

step "run 2: a new container on the same volume (PARLEY_NO_GUESTS=1)"
quiet "${PODMAN[@]}" run -d --name "$C2" "${RUN_OPTS[@]}" \
  -p "127.0.0.1:$PORT:8080" -v "$VOLUME:/data" \
  -e PARLEY_JWT_SECRET="$SECRET" -e PARLEY_NO_GUESTS=1 \
  "$IMAGE" >/dev/null
wait_healthz "$C2"
refused=$(node tests/container/chat.mjs guest-refused "$WSURL") || fail "PARLEY_NO_GUESTS=1 not honoured"
info "$refused"
seen=$(CHAT_SECRET="$SECRET" node tests/container/chat.mjs history "$WSURL" "$ROOM" "$MSG_ID" "$TEXT") ||
  fail "message $MSG_ID is not in the history after the restart"
info "history over WebSocket: $seen"
row=$("${PODMAN[@]}" exec "$C2" sqlite3 -cmd '.timeout 5000' /data/parley.db \
  "SELECT id, room, text FROM messages WHERE id = $MSG_ID") || fail "sqlite3 in the container failed"
[ "$row" = "$MSG_ID|$ROOM|$TEXT" ] || fail "sqlite3 /data/parley.db: expected '$MSG_ID|$ROOM|$TEXT', got '$row'"
info "sqlite3 /data/parley.db: $row"
quiet "${PODMAN[@]}" stop -t 10 "$C2" >/dev/null
[ "$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$C2")" = 0 ] || fail "second container exited non-zero"

step "done: image $(( SIZE / 1000000 )) MB, stop $stop_ms ms"
echo "container: 1 passed, 0 failed"
