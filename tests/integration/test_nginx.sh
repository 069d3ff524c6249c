#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Debian's own nginx, unmodified, serves HTTPS with keys it never holds:
# `ssl_certificate_key` names a LURK key reference file, the master loads it
# and forks two workers, the workers sign through the key server. Then a
# reload under traffic, and a mismatching certificate refused at start.
. "$(dirname "$0")/lib.sh"

NGINX=$LURK_NGINX
if [ ! -x "$NGINX" ]; then
    lurk_skip "nginx is not installed (scripts/setup-debian installs nginx-light)"
    lurk_done
fi

lurk_pki
KS_PORT=$(lurk_port)
lurk_keyserver_conf "$LURK_T/ks.cnf" "tls+tcp://127.0.0.1:$KS_PORT"
lurk_keyserver_start ks "$LURK_T/ks.cnf" -v || { lurk_fail "key server starts"; lurk_done; }
lurk_openssl_cnf "$LURK_T/openssl.cnf" "tls+tcp://127.0.0.1:$KS_PORT"
lurk_check "reference files from the key server configuration" lurk_keyrefs "$LURK_T/ks.cnf"
export OPENSSL_CONF=$LURK_T/openssl.cnf

P=$LURK_T/nginx
RSA_PORT=$(lurk_port)
EC_PORT=$(lurk_port)

# nginx_conf FILE RSA-CERT RSA-KEY: two workers, the RSA server and a P-256 one.
nginx_conf() {
    lurk_nginx_conf "$1" "$P" 2 "$(lurk_nginx_server "$RSA_PORT" "$2" "$3")" \
        "$(lurk_nginx_server "$EC_PORT" "$LURK_T/pki/web-p256.crt" "$LURK_T/ref/p256.pem")"
}
nginx_conf "$P/nginx.conf" "$LURK_T/pki/web-rsa.crt" "$LURK_T/ref/rsa.pem"
# Same key type, other key: the certificate slot libssl checks the key against.
nginx_conf "$P/mismatch.conf" "$LURK_T/pki/web-p384.crt" "$LURK_T/ref/p256.pem"

"$NGINX" -t -p "$P" -c "$P/nginx.conf" > "$P/t.log" 2>&1
lurk_check "nginx -t accepts the reference files" test $? -eq 0
"$NGINX" -t -p "$P" -c "$P/mismatch.conf" > "$P/mismatch.log" 2>&1
lurk_check "nginx -t refuses a certificate that does not match the key" test $? -ne 0
lurk_grep "with nginx's usual error" 'key values mismatch' "$P/mismatch.log"

lurk_bg nginx "$NGINX" -p "$P" -c "$P/nginx.conf" -g 'daemon off;'
NGINX_PID=$LURK_BG_PID
lurk_wait_port "$RSA_PORT" 15 && lurk_wait_port "$EC_PORT" 15 || lurk_fail "nginx listens"

lurk_clients nginx-rsa "$RSA_PORT"
lurk_clients nginx-ecdsa "$EC_PORT"

# kRSA key exchange and a TLS 1.2 PSS signature through nginx's workers.
printf 'GET / HTTP/1.0\r\n\r\n' | env -u OPENSSL_CONF timeout 20 openssl s_client -tls1_2 \
    -cipher AES128-GCM-SHA256 -connect "127.0.0.1:$RSA_PORT" -servername localhost \
    -CAfile "$LURK_T/pki/web-ca.crt" -verify_return_error -ign_eof > "$P/krsa.log" 2>&1
lurk_grep "nginx: TLS 1.2 RSA key exchange" 'lurk ok TLSv1.2 AES128-GCM-SHA256' "$P/krsa.log"

workers_before=$(pgrep -P "$NGINX_PID" | sort | tr '\n' ' ')
lurk_log "workers before reload: $workers_before"
lurk_check "nginx runs 2 workers" test "$(echo $workers_before | wc -w)" -eq 2

# Reload under a bounded client loop (one line per request in loop.log).
loop() {
    local i ok=0 bad=0
    for i in $(seq 60); do
        if env -u OPENSSL_CONF curl -sf --max-time 10 --cacert "$LURK_T/pki/web-ca.crt" \
            -o /dev/null "https://localhost:$RSA_PORT/"; then
            ok=$((ok + 1)); echo ok
        else
            bad=$((bad + 1)); echo fail
        fi
    done > "$P/loop.log"
    echo "$ok $bad" > "$P/loop.result"
}
loop &
LOOP_PID=$!
# Under traffic: the loop has completed a few handshakes.
lurk_wait_log_count "$P/loop.log" '^ok$' 3 30 || lurk_fail "the client loop runs"
"$NGINX" -p "$P" -c "$P/nginx.conf" -s reload
wait "$LOOP_PID"
read -r ok bad < "$P/loop.result"
lurk_log "during reload: $ok handshakes ok, $bad failed"
lurk_check "reload under traffic: at most 2 failed requests (got $bad)" test "$bad" -le 2
# The old workers leave, and the master has started their replacements.
for w in $workers_before; do
    lurk_check "old worker $w exits" lurk_wait_exit "$w" 30
done
for _ in $(seq 100); do
    workers_after=$(pgrep -P "$NGINX_PID" | sort | tr '\n' ' ')
    [ "$(echo $workers_after | wc -w)" -eq 2 ] && break
    sleep 0.1
done
lurk_log "workers after reload: $workers_after"
lurk_check "reload replaced the workers" test "$workers_before" != "$workers_after"
lurk_clients nginx-after-reload "$RSA_PORT"
lurk_check "nginx master survived" kill -0 "$NGINX_PID"
lurk_check_fails "no worker crashed or aborted" grep -Eq 'exited on signal|not fork-reentrant' \
    "$P/logs/error.log"
lurk_grep "the key server signed for the workers" 'signed .* with key "rsa"' "$LURK_T/ks.log"
lurk_done
