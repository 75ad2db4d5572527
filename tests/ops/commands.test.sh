#!/usr/bin/env bash
# commands.test.sh -- the README's two commands keep their builds apart and
# never pass without running tests. Runs tools/run.sh and then tools/test.sh
# (the order a new user follows) on a copy of the repository, with cmake
# configuring for real but not building, and ctest listing tests (-N) instead
# of running them; so it takes seconds, not the 8 minutes of test.sh. Checks:
#   - every ctest call of test.sh sees registered tests, in every build
#     folder it tests (today's bug: run.sh turned PARLEY_TESTS off in the
#     folder test.sh then reused, and CTest printed "No tests were found!!!"
#     and exited 0);
#   - every ctest call passes --no-tests=error, so an empty suite fails;
#   - every configure sets every option() of CMakeLists.txt and the build
#     type explicitly (a folder's cache can't leak one command's choice into
#     the other's);
#   - run.sh builds in a folder of its own, which test.sh doesn't use;
#   - in the sanitizer folder, the container test and the fuzzers (which run
#     only in the normal pass) report "Skipped" (exit 77), not "Passed".
#
# Environment: PARLEY_SANITIZE=ON skips (exit 77): the scripts are the same in
# both passes. Run from the repository root (CTest does).
set -uo pipefail

case "${PARLEY_SANITIZE:-OFF}" in
ON | on | 1 | true | TRUE | yes | YES)
    echo "skipped: the commands test runs in the normal build" >&2
    exit 77
    ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
real_cmake=$(command -v cmake) || fail "no cmake"
real_ctest=$(command -v ctest) || fail "no ctest"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/parley-commands.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# The repository without its build folders and installed packages.
mkdir "$tmp/repo" "$tmp/bin"
tar -C "$root" --exclude='./build*' --exclude=node_modules --exclude=./.git \
    --exclude='*.db*' --exclude=./tests/artifacts -cf - . | tar -C "$tmp/repo" -xf - ||
    fail "cannot copy the repository"
log=$tmp/calls.log
# deps.sh and npm install packages: not what is tested here.
printf '#!/bin/sh\nexit 0\n' >"$tmp/repo/tools/deps.sh"
printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/npm"
# cmake: configures for real and records the call; --build only leaves a
# stand-in parley for run.sh to exec.
cat >"$tmp/bin/cmake" <<EOF
#!/usr/bin/env bash
if [ "\$1" = --build ]; then
    mkdir -p "\$2" && printf '#!/bin/sh\\necho parley-stand-in "\$@"\\n' >"\$2/parley"
    chmod +x "\$2/parley"
    exit 0
fi
printf 'configure\\t%s\\n' "\$*" >>"$log"
exec "$real_cmake" "\$@"
EOF
# ctest: records the call, its folder and how many tests are registered there.
cat >"$tmp/bin/ctest" <<EOF
#!/usr/bin/env bash
n=\$("$real_ctest" -N | sed -n 's/^Total Tests: *//p')
printf 'ctest\\t%s\\t%s\\t%s\\n' "\$PWD" "\${n:-0}" "\$*" >>"$log"
EOF
chmod +x "$tmp/repo/tools/deps.sh" "$tmp/bin/"*

export PATH="$tmp/bin:$PATH"
out=$("$tmp/repo/tools/run.sh" --version 2>&1) || fail "tools/run.sh failed: $out"
[[ "$out" == *parley-stand-in* ]] || fail "tools/run.sh did not exec the parley it built: $out"
echo "--- run.sh" >>"$log"
"$tmp/repo/tools/test.sh" >"$tmp/test.out" 2>&1 || fail "tools/test.sh failed: $(tail -20 "$tmp/test.out")"
sed "s|$tmp/repo|<repo>|g" "$log"

bad=0
check() { # CONDITION-STATUS MESSAGE
    if [ "$1" -ne 0 ]; then
        echo "not ok: $2" >&2
        bad=1
    else
        echo "ok: $2"
    fi
}

# Every option() in CMakeLists.txt, and the build type, on every configure.
mapfile -t options < <(sed -n 's/^ *option( *\([A-Z_]*\).*/\1/p' "$root/CMakeLists.txt")
options+=(CMAKE_BUILD_TYPE)
while IFS=$'\t' read -r kind args; do
    [ "$kind" = configure ] || continue
    args=${args//"$tmp/repo"/<repo>}
    for o in "${options[@]}"; do
        [[ " $args " == *" -D$o="* ]]
        check $? "configure sets $o: cmake $args"
    done
done <"$log"

# The folders: run.sh's (the configure before the marker) against test.sh's.
run_dirs=$(sed -n '/^--- run.sh/q; s/^configure.*-B \([^ ]*\).*/\1/p' "$log")
test_dirs=$(sed -n '/^--- run.sh/,$ s/^configure.*-B \([^ ]*\).*/\1/p' "$log")
[ -n "$run_dirs" ] && [ -n "$test_dirs" ]
check $? "run.sh and test.sh each configure a build folder"
for d in $run_dirs; do
    # test.sh configures relative to the repo root; compare the last component.
    ! grep -qx -- "$(basename "$d")" <<<"$(for t in $test_dirs; do basename "$t"; done)"
    check $? "run.sh's folder $(basename "$d") is not one test.sh uses"
done

# Every ctest call: tests registered, and an empty suite is an error.
calls=0
while IFS=$'\t' read -r kind dir n args; do
    [ "$kind" = ctest ] || continue
    calls=$((calls + 1))
    [ "$n" -gt 0 ]
    check $? "ctest in ${dir#"$tmp/repo/"} sees $n registered tests"
    [[ " $args " == *" --no-tests=error "* ]]
    check $? "ctest in ${dir#"$tmp/repo/"} passes --no-tests=error: ctest $args"
done <"$log"
[ "$calls" -ge 2 ]
check $? "test.sh runs ctest in both builds ($calls calls)"

# In the sanitizer folder test.sh configured, the tests that only run in the
# normal pass must report "skipped", not a 0.00 s pass that proves nothing.
(cd "$tmp/repo/build-asan" && "$real_ctest" -R '^(container|fuzz)/' --timeout 60) >"$tmp/skip.out" 2>&1
sed -n 's/^ *[0-9]*\/[0-9]* Test *#[0-9]*: *//p' "$tmp/skip.out"
n=$(grep -cE 'Test +#[0-9]+: (container|fuzz)/' "$tmp/skip.out")
[ "$n" -ge 2 ]
check $? "the sanitizer folder registers the container test and the fuzzers ($n)"
! grep -qE 'Test +#[0-9]+: (container|fuzz)/.* Passed' "$tmp/skip.out"
check $? "in the sanitizer folder none of them reports Passed"
[ "$(grep -cE 'Test +#[0-9]+: (container|fuzz)/.*Skipped' "$tmp/skip.out")" -eq "$n" ]
check $? "in the sanitizer folder each of them reports Skipped"

[ "$bad" -eq 0 ] || fail "the two commands (see above)"
echo "commands: all checks passed"
