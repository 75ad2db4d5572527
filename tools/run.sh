#!/usr/bin/env bash
# Builds Parley and runs it: http://localhost:8080, history in ./parley.db.
# Installs the Debian packages it needs first. Extra arguments go to parley.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/deps.sh" build
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARLEY_TESTS=OFF \
    -DPARLEY_TOOLS=OFF >/dev/null
cmake --build "$root/build" -j"$(nproc)" >/dev/null
exec "$root/build/parley" "$@"
