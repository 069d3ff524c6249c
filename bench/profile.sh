#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Where the time goes: CPU time and context switches per request, server and
# client side, for the bare nng echo (tls+tcp and tcp), LURK Ping and Sign,
# one request at a time and 16 in flight; the signing code's in-process
# ceilings; and a perf profile of the key server under ECDSA P-256 load.
#
#   bench/profile.sh            (perf from linux-perf; about 1.5 minutes)
#
# Output: $BENCH_OUT/profile.md (tables) and $BENCH_OUT/ks-p256.perf.txt.
set -u
. "$(dirname "$0")/common.sh"
command -v perf > /dev/null || { echo "bench: perf is not installed (apt-get install linux-perf)" >&2; exit 1; }

SECS=${PROF_SECS:-3}
OUT=$BENCH_OUT/profile.md
bench_pki
bench_keyserver ks
KS=$KS_PID_ks
for t in tls+tcp tcp; do
    port=$(lurk_port)
    lurk_bg "echo-$t" "$SIGNBENCH" --serve-echo "$t://127.0.0.1:$port" \
        --cert "$LURK_T/pki/keyserver.crt" --key "$LURK_T/pki/keyserver.key" --ca "$LURK_T/pki/ca.crt"
    printf -v "ECHO_PID_${t//+/_}" '%s' "$LURK_BG_PID"
    printf -v "KS_URL_echo_${t//+/_}" '%s' "$t://127.0.0.1:$port"
    lurk_wait_log "$LURK_T/echo-$t.log" ready 10 || exit 1
done

# pstat PID-OF-SERVER NAME SIGNBENCH-ARGS...: perf stat on the server while
# lurk-signbench runs under perf stat too; one table row.
pstat() {
    local spid=$1 name=$2 line ops s_ms s_cs c_ms c_cs
    shift 2
    perf stat -x, -e task-clock,context-switches -p "$spid" -o "$LURK_T/s.stat" -- sleep "$SECS" &
    local pp=$!
    line=$(perf stat -x, -e task-clock,context-switches -o "$LURK_T/c.stat" \
        "$SIGNBENCH" --cert "$LURK_T/pki/edge.crt" --key "$LURK_T/pki/edge.key" \
        --ca "$LURK_T/pki/ca.crt" --server-name localhost -w 0 -d "$SECS" "$@")
    wait "$pp"
    ops=$(echo "$line" | sed -n 's/.*ops=\([0-9]*\).*/\1/p')
    s_ms=$(awk -F, '/task-clock/ {print $1}' "$LURK_T/s.stat")
    s_cs=$(awk -F, '/context-switches/ {print $1}' "$LURK_T/s.stat")
    c_ms=$(awk -F, '/task-clock/ {print $1}' "$LURK_T/c.stat")
    c_cs=$(awk -F, '/context-switches/ {print $1}' "$LURK_T/c.stat")
    [ -n "$ops" ] && [ "$ops" -gt 0 ] || { echo "| $name | failed: $line |" >> "$OUT"; return; }
    awk -v n="$name" -v o="$ops" -v s="$SECS" -v sm="$s_ms" -v sc="$s_cs" -v cm="$c_ms" -v cc="$c_cs" \
        -v p50="$(echo "$line" | sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p')" 'BEGIN {
        printf "| %s | %.0f | %s | %.0f | %.1f | %.0f | %.1f |\n", n, o / s, p50,
            sm * 1000 / o, sc / o, cm * 1000 / o, cc / o }' >> "$OUT"
}

{
    echo "# Profile ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    echo "## CPU time and context switches per request"
    echo
    echo "perf stat -e task-clock,context-switches on the server process and on lurk-signbench."
    echo
    echo "| load | req/s | p50 ms | server CPU µs/req | server ctx switches/req | client CPU µs/req | client ctx switches/req |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
} > "$OUT"
pstat "$ECHO_PID_tls_tcp" "bare nng echo, tls+tcp, 1 at a time" --url "$KS_URL_echo_tls_tcp" -o echo --size 200
pstat "$ECHO_PID_tcp" "bare nng echo, tcp, 1 at a time" --url "$KS_URL_echo_tcp" -o echo --size 200
pstat "$KS" "key server Ping, 1 at a time" --url "$KS_URL_ks" -o ping -i 1
pstat "$KS" "key server Ping, 16 in flight" --url "$KS_URL_ks" -o ping -i 16 -C 2
for k in rsa p256 ed25519; do
    pstat "$KS" "key server Sign $k, 1 at a time" --url "$KS_URL_ks" -o sign -k "$k" -s "${SCHEME[$k]}" -i 1
    pstat "$KS" "key server Sign $k, 16 in flight" --url "$KS_URL_ks" -o sign -k "$k" -s "${SCHEME[$k]}" -i 16 -C 2
done

{
    echo
    echo "## The signing code in-process (lurk-signcore, $NCPU threads, signatures/s)"
    echo
    echo "| key | shared key, context set up per signature | key copy per thread | context copied per signature (the key server since 6c1fcb7) | openssl speed -multi $NCPU |"
    echo "|---|---:|---:|---:|---:|"
} >> "$OUT"
for k in rsa p256 ed25519; do
    row="| $k"
    for m in shared dup reuse; do
        row="$row | $("$SIGNCORE" --key "$LURK_T/keys/$k.pem" --threads "$NCPU" --seconds 2 --mode "$m" | sed -n 's/.*rate=\([0-9.]*\).*/\1/p')"
    done
    row="$row | $(openssl speed -multi "$NCPU" -seconds 2 "${SPEED_ALG[$k]}" 2>/dev/null \
        | awk '/^(rsa|[ ]*[0-9]+ bits)/ { for (i = NF; i > 0; i--) if ($i ~ /^[0-9.]+$/) { v[++n] = $i } print v[2]; exit }') |"
    echo "$row" >> "$OUT"
done

# perf record of the key server under P-256 load (DWARF call graphs: the
# Debian libraries have no frame pointers and no symbols beyond exports).
signbench ks -o sign -k p256 -s 0x0403 -i 16 -C 2 -d $((SECS + 3)) -w 0 > /dev/null &
sb=$!
sleep 1
perf record -q --call-graph dwarf,16384 -F 499 -p "$KS" -o "$LURK_T/ks.perf" -- sleep "$SECS" > /dev/null 2>&1
wait "$sb"
perf report -i "$LURK_T/ks.perf" --children -g none --sort sym 2>/dev/null | grep -v '^#' | grep -v '^$' \
    | head -60 > "$BENCH_OUT/ks-p256.perf.txt"
{
    echo
    echo "## Key server under ECDSA P-256 load: inclusive share of samples (perf, DWARF)"
    echo
    echo '```'
    grep -E 'ks_server_worker|ks_server_answer|ks_ops_sign|EVP_DigestSign|futex|lll_lock|nng_ctx_(send|recv)|mbedtls_ssl_(write|read)|ks_server_peer|lurk_request_decode|ks_replay|protobuf' \
        "$BENCH_OUT/ks-p256.perf.txt" | head -25
    echo '```'
} >> "$OUT"
cat "$OUT"
