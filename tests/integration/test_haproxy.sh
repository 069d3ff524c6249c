#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Debian's own HAProxy, unmodified, in master-worker mode with two threads,
# serves HTTPS from `crt` bundles (certificate followed by a LURK key
# reference). Then a USR2 reload, and a mismatching bundle refused at start.
. "$(dirname "$0")/lib.sh"

HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
if [ ! -x "$HAPROXY" ]; then
    lurk_skip "haproxy is not installed (scripts/setup-debian installs haproxy)"
    lurk_done
fi

lurk_pki
KS_PORT=$(lurk_port)
lurk_keyserver_conf "$LURK_T/ks.cnf" "tls+tcp://127.0.0.1:$KS_PORT"
lurk_keyserver_start ks "$LURK_T/ks.cnf" -v || { lurk_fail "key server starts"; lurk_done; }
lurk_openssl_cnf "$LURK_T/openssl.cnf" "tls+tcp://127.0.0.1:$KS_PORT"
lurk_check "reference files from the key server configuration" lurk_keyrefs "$LURK_T/ks.cnf"
export OPENSSL_CONF=$LURK_T/openssl.cnf

H=$LURK_T/haproxy
mkdir -p "$H"
for k in rsa p256; do
    cat "$LURK_T/pki/web-$k.crt" "$LURK_T/ref/$k.pem" > "$H/$k.bundle.pem"
done
cat "$LURK_T/pki/web-p384.crt" "$LURK_T/ref/p256.pem" > "$H/mismatch.bundle.pem"
RSA_PORT=$(lurk_port)
EC_PORT=$(lurk_port)

# haproxy_cfg FILE RSA-BUNDLE
haproxy_cfg() {
    cat > "$1" <<CFG
global
    nbthread 2
    pidfile $H/haproxy.pid
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend rsa
    bind 127.0.0.1:$RSA_PORT ssl crt $2
    http-request return status 200 content-type text/plain lf-string "lurk ok %[ssl_fc_protocol] %[ssl_fc_cipher]\n"
frontend ecdsa
    bind 127.0.0.1:$EC_PORT ssl crt $H/p256.bundle.pem
    http-request return status 200 content-type text/plain lf-string "lurk ok %[ssl_fc_protocol] %[ssl_fc_cipher]\n"
CFG
}
haproxy_cfg "$H/haproxy.cfg" "$H/rsa.bundle.pem"
haproxy_cfg "$H/mismatch.cfg" "$H/mismatch.bundle.pem"

"$HAPROXY" -c -f "$H/haproxy.cfg" > "$H/check.log" 2>&1
lurk_check "haproxy -c accepts the bundles" test $? -eq 0
"$HAPROXY" -c -f "$H/mismatch.cfg" > "$H/mismatch.log" 2>&1
lurk_check "haproxy -c refuses a certificate that does not match the key" test $? -ne 0
lurk_grep "with HAProxy's usual error" 'inconsistencies between private key and certificate' \
    "$H/mismatch.log"

lurk_bg haproxy "$HAPROXY" -W -db -f "$H/haproxy.cfg"
MASTER=$LURK_BG_PID
lurk_wait_port "$RSA_PORT" 15 && lurk_wait_port "$EC_PORT" 15 || lurk_fail "haproxy listens"

lurk_clients haproxy-rsa "$RSA_PORT"
lurk_clients haproxy-ecdsa "$EC_PORT"
printf 'GET / HTTP/1.0\r\n\r\n' | env -u OPENSSL_CONF timeout 20 openssl s_client -tls1_2 \
    -cipher AES128-GCM-SHA256 -connect "127.0.0.1:$RSA_PORT" -servername localhost \
    -CAfile "$LURK_T/pki/web-ca.crt" -verify_return_error -ign_eof > "$H/krsa.log" 2>&1
lurk_grep "haproxy: TLS 1.2 RSA key exchange" 'lurk ok TLSv1.2 AES128-GCM-SHA256' "$H/krsa.log"

worker_before=$(pgrep -P "$MASTER" | tr '\n' ' ')
kill -USR2 "$MASTER"
for _ in $(seq 50); do
    worker_after=$(pgrep -P "$MASTER" | tr '\n' ' ')
    [ -n "$worker_after" ] && [ "$worker_after" != "$worker_before" ] && break
    sleep 0.2
done
lurk_log "worker before reload: $worker_before; after: $worker_after"
lurk_check "USR2 reload started a new worker" test -n "$worker_after" -a "$worker_after" != "$worker_before"
# The former worker leaves once the new one has taken the listeners over.
for w in $worker_before; do
    lurk_check "the former worker $w exits" lurk_wait_exit "$w" 30
done
lurk_clients haproxy-after-reload "$RSA_PORT"
lurk_check "haproxy master survived" kill -0 "$MASTER"
lurk_check_fails "no worker crashed or aborted" grep -Eq 'exited with code [^0]|killed by signal|not fork-reentrant' \
    "$LURK_T/haproxy.log"
lurk_grep "the key server signed for the worker" 'signed .* with key "p256"' "$LURK_T/ks.log"
lurk_done
