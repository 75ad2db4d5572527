#!/usr/bin/env bash
# Builds the libFuzzer harnesses (clang, -fsanitize=fuzzer,address,undefined)
# from the server's own sources and runs each for a bounded time: first on
# the committed regression inputs (tests/fuzz/regressions/<harness>/, every
# bug found so far), then fuzzing from the committed seed corpus
# (tests/fuzz/corpus/<harness>/). Any crash, sanitizer report, leak or
# timeout fails the test; the reproducer is kept in build-fuzz/crashes/.
#
# Environment:
#   FUZZ_SECONDS   seconds of fuzzing per harness (default 30)
#   FUZZ_ONLY      space-separated harness names to run (default all)
#   FUZZ_OUT       build directory (default <repo>/build-fuzz)
#   CC_FUZZ        the clang to use (default: clang, or the newest clang-N)
# Run from the repository root (CTest does). Exits 0 when every fuzzer passed,
# 1 on any failure, 77 (skipped) in the sanitizer pass.
set -uo pipefail

if [[ "${PARLEY_SANITIZE:-OFF}" =~ ^(ON|on|1|true|TRUE|yes)$ ]]; then
    # 77: CTest's SKIP_RETURN_CODE, so this shows as skipped, not passed.
    echo "skipped: fuzzers run once, in the normal pass (PARLEY_SANITIZE=$PARLEY_SANITIZE)" >&2
    exit 77
fi

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
secs=${FUZZ_SECONDS:-30}
out=${FUZZ_OUT:-$root/build-fuzz}
fz=tests/fuzz

cc=${CC_FUZZ:-}
if [[ -z "$cc" ]]; then
    for c in clang clang-19 clang-18 clang-17 clang-16 clang-15 clang-14; do
        if command -v "$c" >/dev/null; then cc=$c; break; fi
    done
fi
if [[ -z "$cc" ]]; then
    echo "FAIL: no clang found (the fuzzers need libFuzzer); install clang" >&2
    exit 1
fi

mkdir -p "$out/obj" "$out/logs" "$out/crashes" "$out/work"
flags=(-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined
       -fno-sanitize-recover=undefined -DPARLEY_VERSION=\"fuzz\"
       -I server -I "$fz" $(pkg-config --cflags libcjson libwebsockets))
libs=($(pkg-config --libs libcjson) -lmbedcrypto -lsqlite3 -lm -lpthread)

# The generated assets (http.c serves them); the same script CMake runs.
cmake -DWEB_DIR="$root/web" -DSCHEMA_DIR="$root/schema" -DOUT="$out/assets_gen.c" \
      -P tools/embed.cmake >/dev/null || { echo "FAIL: cannot generate the assets" >&2; exit 1; }

echo "== building the fuzzers with $cc ($($cc --version | head -1))"
t0=$(date +%s)
objs=()
for src in server/{access,api_parse,assets,buf,cluster_note,config,crypto,dm,edit,event,expiry,fanout,hello,http,hub,iplimit,json,jwt,log,member,metrics,moderate,online,outq,peer,protocol,ranks,ratelimit,readmark,remote,room,roomlist,roomreq,sanction,search,searchq,send,session,utf8,wire}.c \
           "$out/assets_gen.c" "$fz/fake_lws.c"; do
    o="$out/obj/$(basename "${src%.c}").o"
    "$cc" "${flags[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$o" || {
        echo "FAIL: compiling $src" >&2; exit 1; }
    objs+=("$o")
done
obj() { for n in "$@"; do printf '%s\n' "$out/obj/$n.o"; done; }

declare -A deps=(
    [protocol]="protocol json buf utf8"
    [jwt]="jwt json crypto protocol buf utf8"
    [utf8]="utf8"
    [b64]="crypto"
    [config]="config iplimit log"
    [searchq]="searchq utf8"
    [http]="http api_parse peer iplimit metrics hub ranks sanction room protocol json config buf log assets assets_gen fake_lws utf8 jwt crypto cluster_note event remote"
    [session]="session hello access dm edit expiry member moderate ranks sanction fanout online peer iplimit readmark roomlist roomreq search searchq send wire hub room outq buf protocol json jwt crypto utf8 ratelimit log config fake_lws cluster_note event remote"
    [xff]="iplimit log"
)
all=(protocol jwt utf8 b64 config http session searchq xff)
only=(${FUZZ_ONLY:-${all[@]}})
for h in "${only[@]}"; do
    [[ -n "${deps[$h]:-}" ]] || { echo "FAIL: unknown harness $h" >&2; exit 1; }
    mapfile -t hobjs < <(obj ${deps[$h]})
    "$cc" "${flags[@]}" -fsanitize=fuzzer "$fz/fuzz_$h.c" "${hobjs[@]}" "${libs[@]}" \
        -o "$out/fuzz_$h" || { echo "FAIL: building fuzz_$h" >&2; exit 1; }
done
echo "built ${#only[@]} harnesses in $(( $(date +%s) - t0 )) s"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=()
for h in "${only[@]}"; do
    bin="$out/fuzz_$h"
    log="$out/logs/$h.log"
    extra=()
    [[ $h == config ]] && extra+=(-close_fd_mask=3)
    # 1. Every regression input must pass.
    reg="$fz/regressions/$h"
    if compgen -G "$reg/*" >/dev/null; then
        if ! "$bin" "${extra[@]}" -timeout=20 -rss_limit_mb=4096 "$reg"/* >"$log.reg" 2>&1; then
            echo "FAIL: fuzz_$h: a regression input in $reg fails:"
            grep -E "Running:|ERROR|runtime error|SUMMARY|Assertion|contract|abort|let through" "$log.reg" | head -20
            failed+=("$h(regression)")
        else
            echo "ok   fuzz_$h: $(ls "$reg" | wc -l) regression inputs pass"
        fi
    fi
    # 2. Fuzz for a bounded time from the seeds (new inputs go to work/).
    mkdir -p "$out/work/$h"
    t1=$(date +%s)
    "$bin" "${extra[@]}" -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 \
        -max_len=16384 -print_final_stats=1 -artifact_prefix="$out/crashes/$h-" \
        "$out/work/$h" "$fz/corpus/$h" >"$log" 2>&1
    rc=$?
    stats=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1 | sed -E 's/[[:space:]]+/ /g')
    if [[ $rc -ne 0 ]]; then
        echo "FAIL: fuzz_$h (exit $rc after $(( $(date +%s) - t1 )) s); log: $log"
        grep -E -A30 "==ERROR|runtime error|Assertion|contract violation|let through|deadly signal|timeout after" "$log" | head -60
        ls -1 "$out/crashes/$h-"* 2>/dev/null | sed 's/^/  reproducer: /'
        failed+=("$h")
    else
        echo "ok   fuzz_$h: ${secs} s, ${stats:-no stats}"
    fi
done

if (( ${#failed[@]} )); then
    echo "FAILED: ${failed[*]}"
    echo "Reproduce: $out/fuzz_NAME <reproducer>; keep a minimized copy in tests/fuzz/regressions/NAME/."
    exit 1
fi
echo "all fuzzers passed"
