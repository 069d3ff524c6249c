#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# All four benchmarks in one invocation (about 9 minutes on 2 cores), then
# the medians, ratios and targets:
#
#   bench/run-all.sh                      # LURK_BUILD=build ROUNDS=3
#   LURK_BUILD=build-perf ROUNDS=5 bench/run-all.sh
#   bench/run-all.sh sign latency         # only some: sign handshake latency haproxy
#
# Results: $BENCH_OUT (default LURK_BUILD/bench-results/<date>-<time>):
# results.tsv (every measurement), machine.txt, summary.md, logs.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export LURK_BUILD=$(cd "${LURK_BUILD:-$root/build}" && pwd) || exit 1
export ROUNDS=${ROUNDS:-3}
export HS_SECS=${HS_SECS:-1.2}
export SIGN_SECS=${SIGN_SECS:-2}
export BENCH_OUT=${BENCH_OUT:-$LURK_BUILD/bench-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$BENCH_OUT"
sections=${*:-sign handshake latency haproxy}

bash "$here/build.sh" "$LURK_BUILD" > /dev/null || exit 1
# machine.txt, through common.sh's helper, in a subshell of its own
( . "$here/common.sh" && bench_machine ) || exit 1
cat "$BENCH_OUT/machine.txt"
start=$(date +%s)
rc=0
for s in $sections; do
    echo "== $s (rounds: $ROUNDS) =="
    t0=$(date +%s)
    bash "$here/$s.sh" 2> >(tee -a "$BENCH_OUT/$s.log" >&2) || { echo "$s failed" >&2; rc=1; }
    echo "== $s: $(( $(date +%s) - t0 )) s =="
done
echo "loadavg at end: $(cat /proc/loadavg)" >> "$BENCH_OUT/machine.txt"
echo "total: $(( $(date +%s) - start )) s" >> "$BENCH_OUT/machine.txt"
python3 "$here/summarize.py" "$BENCH_OUT/results.tsv" | tee "$BENCH_OUT/summary.md"
echo "results in $BENCH_OUT"
exit $rc
