#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs one libFuzzer target for a bounded time, starting from its committed
# seed corpus, and fails on any crash, leak, timeout or broken invariant.
#
#   run-fuzzer.sh FUZZER SEED-DIR [libFuzzer options...]
#
# LURK_FUZZ_SECONDS   time per target (default 60)
# LURK_FUZZ_KEEP=1    keep the working directory even on success
#
# The seed directory is only read: new inputs go to a temporary corpus, so a
# run never changes the checkout. On a failure the reproducer is copied next
# to the build (fuzz-artifacts/) and printed in hex; add it to the seed
# directory (and fix the bug) to make it a regression test: every build
# replays the seed directories (ctest label `corpus`).
set -u -o pipefail

fuzzer=${1:?usage: run-fuzzer.sh FUZZER SEED-DIR [options...]}
seeds=${2:?usage: run-fuzzer.sh FUZZER SEED-DIR [options...]}
shift 2
secs=${LURK_FUZZ_SECONDS:-60}
name=$(basename "$fuzzer")

case $secs in ''|*[!0-9]*) echo "LURK_FUZZ_SECONDS must be a number of seconds" >&2; exit 2;; esac
[ -x "$fuzzer" ] || { echo "$fuzzer: not built" >&2; exit 2; }
[ -d "$seeds" ] || { echo "$seeds: no seed corpus" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/lurk-$name.XXXXXX")
mkdir -p "$work/corpus" "$work/artifacts"

# halt at the first error; a leak in one input is a finding too. The
# runtime options of the sanitized build come from the environment.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1:halt_on_error=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:print_stacktrace=1"

echo "# $name: ${secs}s from $(find "$seeds" -type f | wc -l) seeds in $seeds"
"$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$@" "$work/corpus" "$seeds" > "$work/fuzz.log" 2>&1
rc=$?

grep -E '^#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added' \
    "$work/fuzz.log" | sed "s/^/# $name: /"
artifacts=$(find "$work/artifacts" -type f | sort)
if [ "$rc" -ne 0 ] || [ -n "$artifacts" ]; then
    echo "not ok - $name: libFuzzer exited with $rc"
    grep -vE '^#[0-9]+ +(NEW|REDUCE|pulse|RELOAD)' "$work/fuzz.log" | tail -n 60 | sed 's/^/#   /'
    keep=${LURK_FUZZ_ARTIFACTS:-$PWD/fuzz-artifacts}
    mkdir -p "$keep"
    for a in $artifacts; do
        cp "$a" "$keep/$name-$(basename "$a")"
        echo "# reproducer: $keep/$name-$(basename "$a") ($(wc -c < "$a") bytes)"
        echo "#   run it: $fuzzer $keep/$name-$(basename "$a")"
        head -c 2048 "$a" | od -An -tx1 -v | sed 's/^/#   /'
    done
    echo "# fuzzing log and corpus kept in $work"
    exit 1
fi
echo "ok - $name: no crash in ${secs}s"
if [ "${LURK_FUZZ_KEEP:-0}" = 1 ]; then
    echo "# corpus kept in $work/corpus"
else
    rm -rf "$work"
fi
exit 0
