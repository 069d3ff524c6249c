#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs one integration test script of a -DLURK_SANITIZE=ON build (ASan +
# UBSan) and fails it on any sanitizer report from any process it started.
#
#   sanitize-run.sh SCRIPT
#
# Our own programs (lurk-keyserver, lurkctl, tests/tools) are instrumented
# executables: they run with the ASAN_OPTIONS/UBSAN_OPTIONS ctest passes,
# leak detection included. lurk.so, however, is loaded into uninstrumented
# programs (openssl, nginx, haproxy), and an ASan-instrumented shared object
# only works when the ASan runtime is the first library of the process. So
# for exactly those programs this driver puts wrappers first in PATH that
# exec the real binary with the runtime in LD_PRELOAD. Leak detection stays
# on for openssl (its commands free everything at exit, so a leak there is
# lurk.so's) and is off for nginx and HAProxy (their leaks at exit are not
# ours to judge). The runtime is not preloaded into anything else: curl,
# for one, deadlocks in setlocale() under a preloaded libasan.
#
# Every sanitizer writes its report to a file (log_path) instead of stderr,
# so a report from a background process (a key server stopped at the end,
# an nginx worker) fails the test even when the script's own checks passed.
set -u

script=${1:?usage: sanitize-run.sh SCRIPT}
: "${LURK_MODULES_DIR:?set by ctest}"

san=$(mktemp -d "${TMPDIR:-/tmp}/lurk-san.XXXXXX")
mkdir -p "$san/bin" "$san/logs"

# The runtime lurk.so was linked against (libasan.so.8 with GCC).
runtime=$(ldd "$LURK_MODULES_DIR/lurk.so" | awk '/libasan|libclang_rt\.asan/ { print $3; exit }')
if [ -z "$runtime" ] || [ ! -e "$runtime" ]; then
    echo "sanitize-run: $LURK_MODULES_DIR/lurk.so is not linked to a shared ASan runtime" >&2
    echo "(build with GCC, or with clang and -shared-libasan)" >&2
    exit 1
fi

# Common options for every instrumented process, ours and third-party:
# stop at the first error, report to a file per process.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}halt_on_error=1:log_path=$san/logs/asan"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:print_stacktrace=1:log_path=$san/logs/ubsan"

for prog in openssl nginx haproxy; do
    real=$(command -v "$prog" || true)
    [ -z "$real" ] && [ -x "/usr/sbin/$prog" ] && real=/usr/sbin/$prog
    [ -z "$real" ] && continue
    leaks=0
    [ "$prog" = openssl ] && leaks=1
    cat > "$san/bin/$prog" <<EOF
#!/bin/sh
# $prog with the ASan runtime preloaded, so that it can load an instrumented lurk.so.
LD_PRELOAD="$runtime\${LD_PRELOAD:+:\$LD_PRELOAD}" ASAN_OPTIONS="\$ASAN_OPTIONS:detect_leaks=$leaks" exec "$real" "\$@"
EOF
    chmod 755 "$san/bin/$prog"
done
export PATH="$san/bin:$PATH"
export LURK_SANITIZE=1

bash "$script"
rc=$?

# Processes stopped at the end (nginx workers after their master) may still
# be writing their report: wait until none of the test's processes is left,
# that is no process whose environment carries our log_path (every process
# that can write a report has it; the search itself runs without it).
san_procs() {
    env -u ASAN_OPTIONS -u UBSAN_OPTIONS -u LSAN_OPTIONS \
        grep -l -s -F "log_path=$san/logs" /proc/[0-9]*/environ 2> /dev/null
}
for _ in $(seq 100); do
    left=$(san_procs)
    [ -z "$left" ] && break
    sleep 0.1
done
for f in $left; do
    pid=${f#/proc/}
    pid=${pid%/environ}
    echo "# a process of the test still runs after 10 s: $pid $(tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null)"
done
reports=$(find "$san/logs" -type f | sort)
failed=0
for f in $reports; do
    # Errors fail the test; warnings (ASan's "ignoring requested
    # __asan_handle_no_return" when OpenSSL ASYNC jobs switch stacks) are shown.
    if grep -Eq 'ERROR: (Address|Leak|UndefinedBehavior)Sanitizer|runtime error:|Sanitizer:DEADLYSIGNAL|^SUMMARY: ' "$f"; then
        [ "$failed" -eq 0 ] && echo "not ok - sanitizer errors in processes of $(basename "$script"):"
        failed=1
        echo "# ---- $f"
        sed 's/^/#   /' "$f"
    else
        echo "# sanitizer warning only ($f): $(grep -m1 -E 'WARNING' "$f")"
    fi
done
[ "$failed" -eq 0 ] || rc=1
if [ "$rc" -eq 0 ] && [ "${LURK_KEEP:-0}" != 1 ]; then
    rm -rf "$san"
else
    echo "# sanitizer logs and wrappers kept in $san"
fi
exit "$rc"
