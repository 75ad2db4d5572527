# podman.sh -- what the container tests share (sourced, not run): the skip in
# the sanitizer pass, the tools, the Debian 12 base made with debootstrap and
# cached, and podman in a temporary storage of its own, removed at the end.
# Sourced by container.test.sh and compose.test.sh after `set -euo pipefail`,
# with TAG set (the log prefix: "container", "compose").
#
# Environment:
#   PARLEY_SANITIZE=ON      skip, exit 77 (the sanitizer build doesn't repeat these tests)
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
#   --network-config-dir TMP/net  only when the run made TMP/net (compose.test.sh):
#                           the networks it creates live there, not in
#                           /etc/cni/net.d, and are removed with it.
#   --ulimit nofile=…,nproc=…  podman's defaults (nofile 1048576, nproc 4194304)
#                           are above the host's hard limits, and raising a hard
#                           limit needs CAP_SYS_RESOURCE, which the sandbox lacks:
#                           runc then fails with "error setting rlimit type 7".
#                           We pass the host's own hard limits, capped at
#                           nofile 20000 and nproc 32768 (RUN_OPTS).
#   network                 podman's default (CNI bridge "podman", rootful) works,
#                           and so does -p 127.0.0.1:PORT:8080; no slirp4netns.
#   build --format docker   podman builds OCI images by default, and OCI images
#                           have no HEALTHCHECK: it would be dropped silently.
#   build --pull=never      the base is the local import; never ask a registry.
# podman can't run HEALTHCHECKs on a timer without systemd (it logs "unable to get
# systemd connection"; harmless), so the tests run them with `podman healthcheck run`.

case "${PARLEY_SANITIZE:-OFF}" in
  ON|on|1|true|TRUE|yes|YES)
    # 77: CTest's SKIP_RETURN_CODE, so this shows as skipped, not passed.
    echo "skipped: the $TAG test runs in the normal build (PARLEY_SANITIZE=$PARLEY_SANITIZE)" >&2
    exit 77 ;;
esac

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
T0=$(date +%s)

step() { printf '\n[%s] %s (%ds)\n' "$TAG" "$*" "$(( $(date +%s) - T0 ))"; }
info() { printf '[%s]   %s\n' "$TAG" "$*"; }
fail() { printf '\n[%s] FAIL: %s\n' "$TAG" "$*" >&2; exit 1; }
ms() { date +%s%3N; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || fail "needs root or sudo (debootstrap, rootful podman)"
  SUDO="sudo"
fi

# need_packages PKG...: installs the Debian packages that are missing, and
# tests/node_modules (the WebSocket clients use ws).
need_packages() {
  local missing=() p
  for p in "$@"; do
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
}

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
mirror_for() { # SUITE -> URI of the first entry for it, plain http:// first
  awk -v s="$1" '$2 == s { if ($1 ~ /^http:/) { print $1; found = 1; exit } else if (other == "") other = $1 }
                 END { if (!found && other != "") print other }' <<<"$entries"
}

# base_tar: sets BASE_TAR to a tar of a Debian 12 minbase root filesystem,
# made with debootstrap once and cached in PARLEY_TEST_CACHE.
base_tar() {
  local CACHE=${PARLEY_TEST_CACHE:-/var/cache/parley-test}
  BASE_TAR="$CACHE/bookworm-minbase.tar"
  # Bump when the recipe below changes: a cached base of another recipe is rebuilt.
  local RECIPE="minbase+updates+security+slim+unsafe-io v2"
  if [ -s "$BASE_TAR" ] && [ "$(cat "$BASE_TAR.recipe" 2>/dev/null)" = "$RECIPE" ]; then
    step "base: cached $BASE_TAR"
    info "base: $(du -h "$BASE_TAR" | cut -f1) ($BASE_TAR)"
    return 0
  fi
  local host_codename entries MIRROR rootfs include=()
  host_codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  entries=$(apt_entries)
  MIRROR=${PARLEY_TEST_MIRROR:-$(mirror_for bookworm)}
  [ -n "$MIRROR" ] || [ -z "$host_codename" ] || MIRROR=$(mirror_for "$host_codename")
  [ -n "$MIRROR" ] || fail "no Debian mirror found in /etc/apt/sources.list{,.d}: set PARLEY_TEST_MIRROR"

  step "base: debootstrap --variant=minbase bookworm from $MIRROR (once; cached in $CACHE)"
  $SUDO mkdir -p "$CACHE"
  rootfs=$($SUDO mktemp -d "$CACHE/rootfs.XXXXXX")
  # minbase has no CA certificates: apt in the image needs them for an https mirror.
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
cat >"$r/etc/dpkg/dpkg.cfg.d/slim" <<'EOF2'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF2
cat >"$r/etc/apt/apt.conf.d/slim" <<'EOF2'
Acquire::Languages "none";
EOF2
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
  info "base: $(du -h "$BASE_TAR" | cut -f1) ($BASE_TAR)"
}

# ---------------------------------------------------------------------------
# podman_in DIR [DRIVER]: sets PODMAN_OPTS (podman's global options for the
# storage in directory DIR with driver DRIVER, default overlay) and PODMAN
# (the command with them).
podman_in() {
  PODMAN_OPTS=(--root "$1/storage" --runroot "$1/run" --storage-driver "${2:-overlay}"
               --runtime runc --cgroup-manager cgroupfs --events-backend file)
  [ -d "$1/net" ] && PODMAN_OPTS+=(--network-config-dir "$1/net")
  PODMAN=($SUDO podman "${PODMAN_OPTS[@]}")
}
# Removes a run's containers (stops them, releases their network) and the
# networks it made (when it has its own network directory), unmounts what is
# left under its directory and deletes it, images and volumes with it
# (`podman rmi` would take 15 s more). Not `podman system reset`/`prune`: those
# also delete the machine's own podman networks, which live outside --root.
teardown() { # DIR DRIVER
  podman_in "$1" "$2"
  "${PODMAN[@]}" rm -a -f -t 0 >/dev/null 2>&1
  if [ -d "$1/net" ]; then
    # CNI's dnsname plugin opens DNS on the network's bridge with an iptables
    # rule that stays after the network is removed: removed here too.
    local brs br
    brs=$(sed -n 's/.*"bridge": *"\([^"]*\)".*/\1/p' "$1"/net/*.conflist 2>/dev/null || true)
    "${PODMAN[@]}" network ls --format '{{.Name}}' 2>/dev/null | grep -vx podman |
      while read -r br; do "${PODMAN[@]}" network rm -f "$br" >/dev/null 2>&1; done
    for br in $brs; do
      while $SUDO iptables -D INPUT -i "$br" -p udp -m udp --dport 53 -j ACCEPT 2>/dev/null; do :; done
    done
  fi
  awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do $SUDO umount -l "$m"; done
  $SUDO rm -rf "$1"
}

# podman_storage PREFIX: removes the storage of runs of PREFIX that were killed
# (a CTest timeout) before their cleanup, makes this run's (WORK, with a
# network directory of its own when NETDIR=1) and sets PODMAN for it, overlay
# or else vfs. Sets RUN_OPTS (the ulimits for `podman run`).
podman_storage() {
  local d pid
  for d in "${TMPDIR:-/var/tmp}/$1".*; do
    [ -d "$d" ] || continue
    pid=$(cat "$d/pid" 2>/dev/null || true)
    [ -n "$pid" ] && [ -e "/proc/$pid" ] && continue
    echo "[$TAG] removing a stale run's storage $d"
    teardown "$d" "$(cat "$d/driver" 2>/dev/null || echo overlay)" || true
  done
  WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/$1.XXXXXX")
  echo $$ >"$WORK/pid"
  [ "${NETDIR:-}" = 1 ] && mkdir "$WORK/net"
  driver=overlay
  echo "$driver" >"$WORK/driver"
  podman_in "$WORK" "$driver"
}

# podman_check: after the trap is set, checks that podman works in WORK
# (falls back to vfs) and sets RUN_OPTS.
podman_check() {
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
  local hn hu
  hn=$(ulimit -Hn); hu=$(ulimit -Hu)
  [ "$hn" = unlimited ] || [ "$hn" -gt 20000 ] && hn=20000
  [ "$hu" = unlimited ] || [ "$hu" -gt 32768 ] && hu=32768
  RUN_OPTS=(--ulimit "nofile=$hn:$hn" --ulimit "nproc=$hu:$hu")
}

# podman without systemd logs these on every run/rm of a container with a
# HEALTHCHECK; they are expected (see above), so they are filtered out.
quiet() { "$@" 2> >(grep -v 'unable to get systemd connection' >&2); }

# free_port: a free TCP port on 127.0.0.1.
free_port() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

# import_base: imports BASE_TAR as BASE_IMAGE, the BASE of every image built.
BASE_IMAGE=localhost/parley-test-base:bookworm
import_base() {
  step "base: podman import"
  "${PODMAN[@]}" import -q "$BASE_TAR" "$BASE_IMAGE" >/dev/null
}
