#!/usr/bin/env bash
# Builds Parley and passes every test, on a fresh Debian 12 machine too:
# installs the Debian and npm packages, then runs the whole CTest suite
# (unit, integration, browser, container) in a normal build, and again
# under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/deps.sh test
(cd tests && npm ci --no-audit --no-fund --loglevel=error)
jobs=$(nproc)
# Every cache option is set on each configure (a folder's cache would otherwise
# keep whatever an earlier configure chose, e.g. PARLEY_TESTS=OFF), and a
# suite with no tests is a failure, not "No tests were found!!!" and exit 0.
# tools/run.sh builds in build-run/, never in these folders.

echo "== normal build"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPARLEY_TESTS=ON -DPARLEY_TOOLS=ON \
    -DPARLEY_SANITIZE=OFF >/dev/null
cmake --build build -j"$jobs" >/dev/null
(cd build && ctest --output-on-failure --no-tests=error -j"$jobs")

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DPARLEY_TESTS=ON -DPARLEY_TOOLS=OFF \
    -DPARLEY_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null
(cd build-asan && ctest --output-on-failure --no-tests=error -j"$jobs")
