#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# (b) Full handshakes per second and latency (p50/p99): local key vs LURK.
#
# Servers: nginx (2 workers, Debian's, unmodified) and `openssl s_server -www`
# (one thread, one connection at a time). Keys: RSA-2048, ECDSA P-256,
# Ed25519. TLS 1.3 and TLS 1.2 (ECDHE). 1 and 32 concurrent connections.
#
#   local  the server holds the key file, stock OpenSSL configuration
#   lurk   the server holds a LURK key reference; every signature is a Sign
#          RPC to a key server (default workers) on the same machine
#
# Both variants run at the same time (idle when not measured) and each case
# is measured ROUNDS times, interleaved local/lurk, order alternating per
# round. lurk-hsbench: full handshakes only (no tickets, no session reuse),
# connect, handshake, close_notify, close.
#
#   HS_SECS     seconds per measurement (1.5)
#   HS_SERVERS  "nginx s_server"
#   HS_KEYS     "rsa p256 ed25519"
#   HS_TLS      "1.3 1.2"
#   HS_CONNS    "1 32"
#   HS_EXTRA_WORKERS  8: also nginx with LURK keys and this many workers
#               ("lurk-8w"), at the largest connection count only: blocked
#               workers leave their core to the others (empty: skip)
set -u
. "$(dirname "$0")/common.sh"

SECS=${HS_SECS:-1.5}
SERVERS=${HS_SERVERS:-nginx s_server}
KEYS=${HS_KEYS:-rsa p256 ed25519}
VERSIONS=${HS_TLS:-1.3 1.2}
CONNS=${HS_CONNS:-1 32}
EXTRA_W=${HS_EXTRA_WORKERS-8}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
MAXC=$(echo $CONNS | tr ' ' '\n' | sort -n | tail -n 1)

bench_pki
bench_keyserver ks
KS=$KS_PID_ks
LURK_CNF=$LURK_T/ks.openssl.cnf
declare -A PORT SRVPID

# s_server_start VARIANT KEY
s_server_start() {
    local v=$1 k=$2 key
    PORT[s_server-$v-$k]=$(lurk_port)
    if [ "$v" = local ]; then key=$LURK_T/keys/$k.pem; else key=$LURK_T/ref/$k.pem; fi
    if [ "$v" = local ]; then
        env -u OPENSSL_CONF openssl s_server -quiet -www -accept "${PORT[s_server-$v-$k]}" \
            -cert "$LURK_T/pki/web-$k.crt" -key "$key" > "$LURK_T/s_server-$v-$k.log" 2>&1 < /dev/null &
    else
        OPENSSL_CONF=$LURK_CNF openssl s_server -quiet -www -accept "${PORT[s_server-$v-$k]}" \
            -cert "$LURK_T/pki/web-$k.crt" -key "$key" > "$LURK_T/s_server-$v-$k.log" 2>&1 < /dev/null &
    fi
    SRVPID[s_server-$v-$k]=$!
    LURK_PIDS+=("$!")
    lurk_wait_port "${PORT[s_server-$v-$k]}" 15 || exit 1
}

for srv in $SERVERS; do
    for v in local lurk; do
        if [ "$srv" = nginx ]; then
            bench_nginx_start "$v"
            [ "$v" = lurk ] && [ -n "$EXTRA_W" ] && bench_nginx_start "lurk-${EXTRA_W}w" "$EXTRA_W"
        else
            for k in $KEYS; do s_server_start "$v" "$k"; done
        fi
    done
done

# server_ticks SRV VARIANT KEY: CPU ticks of the server processes (nginx workers).
server_ticks() {
    local pid t=0 w
    if [ "$1" = nginx ]; then
        pid=${SRVPID[nginx-$2]}
        for w in $(pgrep -P "$pid"); do t=$((t + $(cpu_ticks "$w"))); done
        echo "$t"
    else
        cpu_ticks "${SRVPID[s_server-$2-$3]}"
    fi
}

HZ=$(getconf CLK_TCK)
measure() {
    local srv=$1 k=$2 tv=$3 c=$4 v=$5 r=$6 port line s0 s1 k0 k1
    port=${PORT[$srv-$v-$k]}
    s0=$(server_ticks "$srv" "$v" "$k"); k0=$(cpu_ticks "$KS")
    line=$(hsbench "$port" -V "$tv" -c "$c" -d "$SECS" -w 0.3)
    s1=$(server_ticks "$srv" "$v" "$k"); k1=$(cpu_ticks "$KS")
    valid "$line" || bench_log "$srv $k TLS $tv c=$c $v: invalid run: $line"
    record hs "$srv/$k/tls$tv/c$c" "$v" "$r" "$line $(awk -v a=$((s1 - s0)) -v b=$((k1 - k0)) \
        -v hz="$HZ" -v s="$SECS" 'BEGIN { printf "srv_cores=%.2f ks_cores=%.2f", a / hz / (s + 0.3), b / hz / (s + 0.3) }')"
}

for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then order="local lurk"; else order="lurk local"; fi
    for srv in $SERVERS; do
        for k in $KEYS; do
            for tv in $VERSIONS; do
                for c in $CONNS; do
                    for v in $order; do measure "$srv" "$k" "$tv" "$c" "$v" "$r"; done
                    if [ "$srv" = nginx ] && [ -n "$EXTRA_W" ] && [ "$c" = "$MAXC" ]; then
                        measure "$srv" "$k" "$tv" "$c" "lurk-${EXTRA_W}w" "$r"
                    fi
                done
            done
        done
    done
done
lurk_stop "$KS"
grep -E 'stopped:' "$LURK_T/ks.log" | sed 's/^/# /' >&2
