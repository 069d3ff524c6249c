#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# (c) Added handshake latency at 1 connection vs the bare nng tls+tcp round trip.
#
# ROUNDS interleaved rounds of:
#   echo        lurk-signbench --op echo: sequential 200-byte requests from a
#               bare nng req0 socket to a bare nng rep0 echo server with the
#               same mutual TLS: the bare round trip
#   echo-client the same through the edges' client code (lurk_client_call_raw)
#   echo-paced  the bare echo with 1 ms between requests, as between the
#               RPCs of handshakes at 1 connection: threads and CPUs go idle
#               between requests and must be woken, which a tight loop avoids
#   ping        the same with LURK Ping to the key server (decode, answer)
#   sign-<key>  one Sign at a time: round trip plus the signature
#   nginx local/lurk, per key, TLS 1.3, 1 connection: handshake p50
# Added latency = p50(lurk) - p50(local); the target is <= 2 x p50(echo).
#
#   LAT_SECS  seconds per measurement (2)
#   LAT_KEYS  "rsa p256 ed25519"
set -u
. "$(dirname "$0")/common.sh"

SECS=${LAT_SECS:-2}
KEYS=${LAT_KEYS:-rsa p256 ed25519}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

bench_pki
bench_keyserver ks
LURK_CNF=$LURK_T/ks.openssl.cnf

ECHO_PORT=$(lurk_port)
lurk_bg echo "$SIGNBENCH" --serve-echo "tls+tcp://127.0.0.1:$ECHO_PORT" \
    --cert "$LURK_T/pki/keyserver.crt" --key "$LURK_T/pki/keyserver.key" --ca "$LURK_T/pki/ca.crt"
lurk_wait_log "$LURK_T/echo.log" "ready" 10 || exit 1
KS_URL_echo=tls+tcp://127.0.0.1:$ECHO_PORT

declare -A PORT SRVPID
bench_nginx_start local
bench_nginx_start lurk

for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then order="local lurk"; else order="lurk local"; fi
    record lat rtt echo "$r" "$(signbench echo -o echo --size 200 -d "$SECS")"
    record lat rtt echo-client "$r" "$(signbench echo -o echo-client --size 200 -d "$SECS")"
    record lat rtt echo-paced "$r" "$(signbench echo -o echo --size 200 --gap-us 1000 -d "$SECS")"
    record lat rtt ping "$r" "$(signbench ks -o ping -i 1 -d "$SECS")"
    for k in $KEYS; do
        record lat "sign-$k" lurk "$r" "$(signbench ks -o sign -k "$k" -s "${SCHEME[$k]}" -i 1 -d "$SECS")"
    done
    for k in $KEYS; do
        for v in $order; do
            line=$(hsbench "${PORT[nginx-$v-$k]}" -V 1.3 -c 1 -d "$SECS" -w 0.3)
            valid "$line" || bench_log "nginx $k $v: invalid run: $line"
            record lat "nginx/$k/tls1.3/c1" "$v" "$r" "$line"
        done
    done
done
