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
# Environment:
#   PARLEY_SANITIZE=ON      skip, exit 77 (the sanitizer build doesn't repeat this test)
#   PARLEY_TEST_CACHE       where the base root filesystem is cached
#                           (default /var/cache/parley-test)
#   PARLEY_TEST_MIRROR      Debian mirror for debootstrap (default: read from
#                           the machine's own apt sources)
#   PARLEY_TEST_KEEP=1      keep the containers and storage (until the next run)
#
# Why these podman options (found on the CI machines, podman 4.3 from Debian 12):
#   --root/--runroot TMP    storage in a temporary directory, removed at the end:
#                           nothing is left in the machine's own podman storage.
#   --storage-driver overlay  fast; vfs (copies every layer) if overlay can't mount.
#   --runtime runc          crun fails on these hosts' cgroups: "cgroups in hybrid
#                           mode not supported" (v1 controllers beside a v2 mount).
#   --cgroup-manager cgroupfs, --events-backend file
#                           there is no systemd or journald; podman falls back to
#                           these by itself here, they are explicit for other hosts.
#   --ulimit nofile=…,nproc=…  podman's defaults (nofile 1048576, nproc 4194304)
#                           are above the host's hard limits, and raising a hard
#                           limit needs CAP_SYS_RESOURCE, which the sandbox lacks:
#                           runc then fails with "error setting rlimit type 7".
#                           We pass the host's own hard limits, capped at
#                           nofile 20000 and nproc 32768.
#   network                 podman's default (CNI bridge "podman", rootful) works,
#                           and so does -p 127.0.0.1:PORT:8080; no slirp4netns.
#   build --format docker   podman builds OCI images by default, and OCI images
#                           have no HEALTHCHECK: it would be dropped silently.
#   build --pull=never      the base is the local import; never ask a registry.
# podman can't run HEALTHCHECKs on a timer without systemd (it logs "unable to get
# systemd connection"; harmless), so the test runs it with `podman healthcheck run`.
set -euo pipefail

case "${PARLEY_SANITIZE:-OFF}" in
  ON|on|1|true|TRUE|yes|YES)
    # 77: CTest's SKIP_RETURN_CODE, so this shows as skipped, not passed.
    echo "skipped: the container test runs in the normal build (PARLEY_SANITIZE=$PARLEY_SANITIZE)" >&2
    exit 77 ;;
esac

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
T0=$(date +%s)

step() { printf '\n[container] %s (%ds)\n' "$*" "$(( $(date +%s) - T0 ))"; }
info() { printf '[container]   %s\n' "$*"; }
fail() { printf '\n[container] FAIL: %s\n' "$*" >&2; exit 1; }
ms() { date +%s%3N; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || fail "needs root or sudo (debootstrap, rootful podman)"
  SUDO="sudo"
fi

# ---------------------------------------------------------------------------
step "tools: podman runc debootstrap curl"
missing=()
for p in podman runc debootstrap curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  info "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v node >/dev/null || fail "node is needed for the WebSocket client (tools/deps.sh test)"
if [ ! -d tests/node_modules/ws ]; then
  info "installing tests/node_modules (npm ci)"
  (cd tests && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci in tests/ failed"
fi
info "$(podman --version), $(runc --version | head -1)"

# ---------------------------------------------------------------------------
# The Debian mirror this machine's apt uses: "URI SUITE" for every deb entry of
# /etc/apt/sources.list{,.d/*.list} (one-line) and /etc/apt/sources.list.d/*.sources
# (deb822), then the first whose suite is bookworm (or this host's codename).
apt_entries() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" { print $2, $3 }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      { types = ""; uris = ""; suites = ""; enabled = "yes"
        for (i = 1; i <= NF; i++) {
          line = $i; sub(/#.*/, "", line)
          if (line ~ /^[ \t]/) continue             # continuation lines (Signed-By keys)
          k = tolower(line); sub(/:.*/, "", k)
          v = line; sub(/^[^:]*:[ \t]*/, "", v)
          if (k == "types") types = v; else if (k == "uris") uris = v
          else if (k == "suites") suites = v; else if (k == "enabled") enabled = tolower(v)
        }
        if (enabled == "no" || (" " types " ") !~ / deb /) next
        nu = split(uris, U, /[ \t]+/); ns = split(suites, S, /[ \t]+/)
        for (a = 1; a <= nu; a++) for (b = 1; b <= ns; b++) if (U[a] != "" && S[b] != "") print U[a], S[b]
      }' "$f"
  done
}
host_codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
entries=$(apt_entries)
mirror_for() { # SUITE -> URI of the first entry for it, plain http:// first
  awk -v s="$1" '$2 == s { if ($1 ~ /^http:/) { print $1; found = 1; exit } else if (other == "") other = $1 }
                 END { if (!found && other != "") print other }' <<<"$entries"
}
MIRROR=${PARLEY_TEST_MIRROR:-$(mirror_for bookworm)}
[ -n "$MIRROR" ] || [ -z "$host_codename" ] || MIRROR=$(mirror_for "$host_codename")
[ -n "$MIRROR" ] || fail "no Debian mirror found in /etc/apt/sources.list{,.d}: set PARLEY_TEST_MIRROR"

# ---------------------------------------------------------------------------
CACHE=${PARLEY_TEST_CACHE:-/var/cache/parley-test}
BASE_TAR="$CACHE/bookworm-minbase.tar"
# Bump when the recipe below changes: a cached base of another recipe is rebuilt.
RECIPE="minbase+updates+security+slim+unsafe-io v2"
if [ -s "$BASE_TAR" ] && [ "$(cat "$BASE_TAR.recipe" 2>/dev/null)" = "$RECIPE" ]; then
  step "base: cached $BASE_TAR"
else
  step "base: debootstrap --variant=minbase bookworm from $MIRROR (once; cached in $CACHE)"
  $SUDO mkdir -p "$CACHE"
  rootfs=$($SUDO mktemp -d "$CACHE/rootfs.XXXXXX")
  # minbase has no CA certificates: apt in the image needs them for an https mirror.
  include=()
  [[ "$MIRROR" == https:* ]] && include=(--include=ca-certificates)
  if ! $SUDO debootstrap --variant=minbase "${include[@]}" bookworm "$rootfs" "$MIRROR" 2>&1 |
        $SUDO tee "$CACHE/debootstrap.log" >/dev/null; then
    tail -20 "$CACHE/debootstrap.log" >&2
    $SUDO rm -rf "$rootfs"
    fail "debootstrap failed (log: $CACHE/debootstrap.log)"
  fi
  # Make it like debian:bookworm-slim, so the image size measured here is the
  # one a user gets: bookworm-updates and bookworm-security (from this machine's
  # sources, when it has them), no docs/man pages/translations, no apt caches,
# and dpkg without fsync (the official images' docker-apt-speedup).
  $SUDO bash -euo pipefail -s "$rootfs" "$(mirror_for bookworm-updates)" "$(mirror_for bookworm-security)" <<'EOS'
r=$1 updates=$2 security=$3
[ -n "$updates" ] && echo "deb $updates bookworm-updates main" >>"$r/etc/apt/sources.list"
[ -n "$security" ] && echo "deb $security bookworm-security main" >>"$r/etc/apt/sources.list"
cat >"$r/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
cat >"$r/etc/apt/apt.conf.d/slim" <<'EOF'
Acquire::Languages "none";
EOF
echo force-unsafe-io >"$r/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$r"/usr/share/man/* "$r"/usr/share/info/* "$r"/usr/share/locale/* \
       "$r"/var/cache/apt/archives/*.deb "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/* \
       "$r"/var/log/*.log "$r"/var/log/apt/* "$r"/var/log/bootstrap.log
EOS
  $SUDO tar --numeric-owner -C "$rootfs" -cf "$BASE_TAR.tmp" .
  $SUDO mv "$BASE_TAR.tmp" "$BASE_TAR"
  echo "$RECIPE" | $SUDO tee "$BASE_TAR.recipe" >/dev/null
  $SUDO rm -rf "$rootfs"
fi
info "base: $(du -h "$BASE_TAR" | cut -f1) ($BASE_TAR)"

# ---------------------------------------------------------------------------
# podman for the storage in directory $1 with driver $2 (default: this run's).
podman_in() {
  PODMAN=($SUDO podman --root "$1/storage" --runroot "$1/run" --storage-driver "${2:-overlay}"
          --runtime runc --cgroup-manager cgroupfs --events-backend file)
}
# Removes a run's containers (stops them, releases their network), unmounts
# what is left under its directory and deletes it, images and volumes with it
# (`podman rmi` would take 15 s more). Not `podman system reset`/`prune`: those
# also delete the machine's own podman networks, which live outside --root.
teardown() { # DIR DRIVER
  podman_in "$1" "$2"
  "${PODMAN[@]}" rm -a -f -t 0 >/dev/null 2>&1
  awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do $SUDO umount -l "$m"; done
  $SUDO rm -rf "$1"
}

# Storage of runs that were killed (a CTest timeout) before their cleanup.
for d in "${TMPDIR:-/var/tmp}"/parley-container.*; do
  [ -d "$d" ] || continue
  pid=$(cat "$d/pid" 2>/dev/null || true)
  [ -n "$pid" ] && [ -e "/proc/$pid" ] && continue
  echo "[container] removing a stale run's storage $d"
  teardown "$d" "$(cat "$d/driver" 2>/dev/null || echo overlay)" || true
done

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/parley-container.XXXXXX")
echo $$ >"$WORK/pid"
driver=overlay
echo "$driver" >"$WORK/driver"
PODMAN=()
podman_in "$WORK" "$driver"
# podman without systemd logs these on every run/rm of a container with a
# HEALTHCHECK; they are expected (see above), so they are filtered out.
quiet() { "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }

STAMP=$$
IMAGE=localhost/parley-test:$STAMP
BASE_IMAGE=localhost/parley-test-base:bookworm
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

step "podman: storage in $WORK"
if ! "${PODMAN[@]}" info >/dev/null 2>"$WORK/info.err"; then
  info "overlay storage failed ($(tail -1 "$WORK/info.err")); using vfs"
  driver=vfs
  echo "$driver" >"$WORK/driver"
  podman_in "$WORK" "$driver"
  "${PODMAN[@]}" info >/dev/null || fail "podman info fails with vfs storage too"
fi
info "storage driver $driver, runtime runc, network backend $("${PODMAN[@]}" info --format '{{.Host.NetworkBackend}}')"

# The host's hard limits, capped (see above).
hn=$(ulimit -Hn); hu=$(ulimit -Hu)
[ "$hn" = unlimited ] || [ "$hn" -gt 20000 ] && hn=20000
[ "$hu" = unlimited ] || [ "$hu" -gt 32768 ] && hu=32768
RUN_OPTS=(--ulimit "nofile=$hn:$hn" --ulimit "nproc=$hu:$hu")

step "base: podman import"
"${PODMAN[@]}" import -q "$BASE_TAR" "$BASE_IMAGE" >/dev/null

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

step "stop: podman stop -t 10 (SIGTERM; must exit 0 in < 5 s)"
t=$(ms)
quiet "${PODMAN[@]}" stop -t 10 "$C1" >/dev/null
stop_ms=$(( $(ms) - t ))
code=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' "$C1")
info "stopped in $stop_ms ms, exit code $code"
wait "$HOLD_PID" || fail "the held client failed: $(cat "$WORK/hold.out")"
HOLD_PID=""
info "held client: $(tail -1 "$WORK/hold.out")"
if [ "$code" != 0 ] || [ "$stop_ms" -ge 5000 ]; then
  "${PODMAN[@]}" logs --tail 30 "$C1" >&2
  fail "container did not stop cleanly on SIGTERM (exit $code after $stop_ms ms; logs above)"
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
