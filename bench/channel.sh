#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# (f) The channel's own cost: tls+tcp against ipc:// to the same key server.
#
# One key server listens on both. ROUNDS interleaved rounds (the order
# alternates) of, per transport:
#   ping-1     one Ping at a time: the round trip, no key
#   sign-1     one P-256 Sign at a time: p50 (the issue's 0.15 ms target)
#   sign-16    16 Signs in flight over 2 connections: rate, and the key
#              server's CPU per request (utime+stime / requests)
# then, once per transport, the system calls per request: strace -c -f on
# the key server and on the client during a sign-1 run of SYSCALL_OPS
# requests (strace slows both; its counts, not its times, are reported).
#
# lurk-signbench reports tls_pieces_per_op (plaintext pieces nng handed to
# the engine) and tls_records_per_op (records written) for the client side.
#
#   CHANNEL_SECS   seconds per measurement (3)
#   SYSCALL_OPS    requests under strace (2000); 0 skips that part
set -u
. "$(dirname "$0")/common.sh"

SECS=${CHANNEL_SECS:-3}
SYSCALL_OPS=${SYSCALL_OPS:-2000}

bench_pki
PORT=$(lurk_port)
KS_URL_tls=tls+tcp://127.0.0.1:$PORT
KS_URL_ipc=ipc://$LURK_T/ks.sock
lurk_keyserver_conf "$LURK_T/ks.cnf" "$KS_URL_tls $KS_URL_ipc" \
    ${BENCH_REPLAY_CACHE:+"replay_cache = $BENCH_REPLAY_CACHE"}
lurk_keyserver_start ks "$LURK_T/ks.cnf" \
    || { echo "bench: the key server does not start" >&2; cat "$LURK_T/ks.log" >&2; exit 1; }
KS=$LURK_KS_PID
bench_log "key server: $(grep -m1 -o 'channel: .*' "$LURK_T/ks.log" || true)"

# sign_cpu T ARGS...: a signbench line plus the key server's CPU per request
sign_cpu() {
    local t=$1 c0 c1 line ops
    shift
    c0=$(cpu_ticks "$KS")
    line=$(signbench "$t" "$@")
    c1=$(cpu_ticks "$KS")
    ops=$(sed -n 's/.*ops=\([0-9]*\).*/\1/p' <<< "$line")
    # ticks over the run, warm-up included, per measured request
    echo "$line ks_us_per_op=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v n="${ops:-0}" \
        -v s="$SECS" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / (n * (s + 0.5) / s); else print "nan" }')"
}

for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then order="tls ipc"; else order="ipc tls"; fi
    for t in $order; do
        record chan ping-1 "$t" "$r" "$(signbench "$t" -o ping -i 1 -d "$SECS")"
        record chan sign-1 "$t" "$r" "$(signbench "$t" -o sign -k p256 -s 0x0403 -i 1 -d "$SECS")"
        record chan sign-16 "$t" "$r" "$(sign_cpu "$t" -o sign -k p256 -s 0x0403 -i 16 -C 2 -d "$SECS")"
    done
done

if [ "$SYSCALL_OPS" -gt 0 ] && command -v strace > /dev/null; then
    for t in tls ipc; do
        strace -c -f -p "$KS" -o "$BENCH_OUT/strace-ks-$t.txt" &
        sp=$!
        # strace prints nothing when attached; its pid in /proc is enough
        for _ in $(seq 200); do
            grep -q 'TracerPid:.[1-9]' "/proc/$KS/status" && break
            sleep 0.05
        done
        strace -c -f -o "$BENCH_OUT/strace-client-$t.txt" "$SIGNBENCH" --url "$(eval echo \$KS_URL_$t)" \
            --cert "$LURK_T/pki/edge.crt" --key "$LURK_T/pki/edge.key" --ca "$LURK_T/pki/ca.crt" \
            --server-name localhost -o sign -k p256 -s 0x0403 -i 1 -w 0 -n "$SYSCALL_OPS" > /dev/null
        kill -INT "$sp"
        wait "$sp" 2> /dev/null
        for side in ks client; do
            # calls per request of the calls that move data or wake threads
            awk -v n="$SYSCALL_OPS" -v side="$side" -v t="$t" '
                $NF ~ /^(sendmsg|recvmsg|write|read|readv|writev|futex|epoll_wait|epoll_ctl|poll)$/ {
                    c[$NF] = $4 } $NF == "total" { tot = $4 }
                END { printf "%s %s:", t, side; for (k in c) printf " %s=%.2f", k, c[k] / n;
                      printf " all=%.2f\n", tot / n }' "$BENCH_OUT/strace-$side-$t.txt" \
                | tee -a "$BENCH_OUT/syscalls.txt" >&2
        done
    done
fi
lurk_stop "$KS"
python3 "$BENCH_DIR/summarize.py" "$RESULTS" 2> /dev/null || cat "$RESULTS"
