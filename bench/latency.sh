#!/usr/bin/env bash
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

declare -A PORT
nginx_start() {
    local v=$1 p=$LURK_T/nginx-$1 k key
    mkdir -p "$p/tmp" "$p/logs"
    {
        echo "worker_processes 2; user root; pid $p/nginx.pid;"
        echo "error_log $p/logs/error.log crit;"
        echo "events { worker_connections 1024; }"
        echo "http { access_log off; ssl_protocols TLSv1.2 TLSv1.3;"
        echo "  client_body_temp_path $p/tmp/body; proxy_temp_path $p/tmp/proxy;"
        echo "  fastcgi_temp_path $p/tmp/fastcgi; uwsgi_temp_path $p/tmp/uwsgi; scgi_temp_path $p/tmp/scgi;"
        for k in $KEYS; do
            PORT[$v-$k]=$(lurk_port)
            if [ "$v" = local ]; then key=$LURK_T/keys/$k.pem; else key=$LURK_T/ref/$k.pem; fi
            echo "  server { listen 127.0.0.1:${PORT[$v-$k]} ssl;"
            echo "    ssl_certificate $LURK_T/pki/web-$k.crt; ssl_certificate_key $key;"
            echo "    location / { return 200 \"ok\\n\"; } }"
        done
        echo "}"
    } > "$p/nginx.conf"
    if [ "$v" = local ]; then
        env -u OPENSSL_CONF "$NGINX" -p "$p" -c "$p/nginx.conf" -g 'daemon off;' > "$p/out.log" 2>&1 &
    else
        OPENSSL_CONF=$LURK_CNF "$NGINX" -p "$p" -c "$p/nginx.conf" -g 'daemon off;' > "$p/out.log" 2>&1 &
    fi
    LURK_PIDS+=("$!")
    for k in $KEYS; do lurk_wait_port "${PORT[$v-$k]}" 15 || exit 1; done
}
nginx_start local
nginx_start lurk

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
            line=$(hsbench "${PORT[$v-$k]}" -V 1.3 -c 1 -d "$SECS" -w 0.3)
            valid "$line" || bench_log "nginx $k $v: invalid run: $line"
            record lat "nginx/$k/tls1.3/c1" "$v" "$r" "$line"
        done
    done
done
