#!/usr/bin/env bash
# Builds Parley and runs it: http://localhost:8080, history in ./parley.db.
# Installs the Debian packages it needs first. Extra arguments go to parley.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/tools/deps.sh" build
# A folder of its own (build/ is test.sh's and the developer's, with tests
# on), and every cache option set, so neither command inherits the other's.
cmake -S "$root" -B "$root/build-run" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARLEY_TESTS=OFF \
    -DPARLEY_TOOLS=OFF -DPARLEY_SANITIZE=OFF >/dev/null
cmake --build "$root/build-run" -j"$(nproc)" >/dev/null
exec "$root/build-run/parley" "$@"
