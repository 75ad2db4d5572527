#!/usr/bin/env bash
# Installs every Debian package Parley needs to build, run and test.
# Usage: tools/deps.sh [build|test]   (default: build)
# Idempotent: packages already present are not fetched again.
set -euo pipefail
what=${1:-build}
pkgs=(build-essential cmake pkg-config libwebsockets-dev libmbedtls-dev
      libcjson-dev libsqlite3-dev libuv1-dev libhiredis-dev sqlite3)
if [ "$what" = test ]; then
    pkgs+=(check clang libclang-rt-14-dev nodejs npm chromium openssl curl redis-server haproxy)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done
# nodejs may come from elsewhere on a developer machine; a working node is enough.
if command -v node >/dev/null && command -v npm >/dev/null; then
    missing=("${missing[@]/nodejs/}"); missing=("${missing[@]/npm/}")
fi
read -r -a missing <<<"${missing[*]}"
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
