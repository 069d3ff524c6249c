#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The channel between edge and key server, on OpenSSL (proto/lurk_tls.c):
#   - TLS 1.3 by default, seen in the key server's log; a TLS 1.2 client is
#     refused and the log says why; with tls_min_version = 1.2 it is served.
#   - Ed25519 certificates on both ends of the channel.
#   - A key server restart: the edge's next connection resumes its session
#     (session tickets keyed from the key server's key), and after the CRL
#     changes it does not (a full handshake proves the certificate again).
. "$(dirname "$0")/lib.sh"

lurk_pki
P=$LURK_T/pki
KS_PORT=$(lurk_port)
URL="tls+tcp://127.0.0.1:$KS_PORT"
TLS=(--server "$URL" --ca "$P/ca.crt" --server-name localhost)
EDGE=(--cert "$P/edge.crt" --key "$P/edge.key")

# s_client_ks NAME ARGS...: a raw TLS handshake to the key server with the
# edge's certificate; output in $LURK_T/NAME.log.
s_client_ks() {
    local name=$1; shift
    timeout 10 openssl s_client -connect "127.0.0.1:$KS_PORT" -servername localhost \
        -CAfile "$P/ca.crt" -cert "$P/edge.crt" -key "$P/edge.key" -verify_return_error \
        "$@" < /dev/null > "$LURK_T/$name.log" 2>&1
}

# --- 1. TLS 1.3 only, by default ---------------------------------------------
lurk_keyserver_conf "$LURK_T/ks.cnf" "$URL"
lurk_keyserver_start ks "$LURK_T/ks.cnf" || { lurk_fail "key server starts"; lurk_done; }
lurk_check "an edge pings over the channel" \
    "$LURK_CTL" "${TLS[@]}" "${EDGE[@]}" ping
lurk_check "the key server logs the edge's TLS 1.3 connection" \
    lurk_wait_log "$LURK_T/ks.log" 'edge connected: .*TLSv1\.3 TLS_AES_128_GCM_SHA256' 10
lurk_check_fails "a TLS 1.2 client is refused" s_client_ks tls12-refused -tls1_2
lurk_grep "the TLS 1.2 client hears a protocol version alert" \
    'alert protocol version|unsupported protocol|wrong version' "$LURK_T/tls12-refused.log"
lurk_check "the key server's log says why" \
    lurk_wait_log "$LURK_T/ks.log" 'channel handshake: .*(unsupported protocol|version)' 10
s_client_ks tls13-raw -tls1_3
lurk_grep "a TLS 1.3 client with the edge certificate is served" 'New, TLSv1\.3' \
    "$LURK_T/tls13-raw.log"
lurk_stop "$LURK_KS_PID"

# --- 2. TLS 1.2 when allowed ---------------------------------------------------
lurk_keyserver_conf "$LURK_T/ks12.cnf" "$URL" "tls_min_version = 1.2"
lurk_keyserver_start ks12 "$LURK_T/ks12.cnf" || { lurk_fail "key server (1.2) starts"; lurk_done; }
s_client_ks tls12-allowed -tls1_2
lurk_grep "with tls_min_version = 1.2, a TLS 1.2 client is served" 'Protocol *: *TLSv1\.2' \
    "$LURK_T/tls12-allowed.log"
lurk_grep "over an ECDHE AEAD suite" 'Cipher *: *ECDHE-ECDSA-AES128-GCM-SHA256' \
    "$LURK_T/tls12-allowed.log"
lurk_check "LURK edges still negotiate TLS 1.3 there" \
    "$LURK_CTL" "${TLS[@]}" "${EDGE[@]}" ping
lurk_check "(seen in the log)" lurk_wait_log "$LURK_T/ks12.log" 'edge connected: .*TLSv1\.3' 10
lurk_check_fails "a bad tls_min_version is refused at start" \
    "$LURK_KEYSERVER" --check -c <(sed 's/^tls_min_version = 1.2/tls_min_version = 1.1/' \
    "$LURK_T/ks12.cnf")
lurk_stop "$LURK_KS_PID"

# --- 3. Ed25519 on both ends -----------------------------------------------------
ed_cert() { # NAME CN SAN, signed by ed-ca
    openssl genpkey -algorithm ED25519 -out "$P/$1.key" 2>/dev/null
    chmod 600 "$P/$1.key"
    openssl req -new -key "$P/$1.key" -subj "/CN=$2" -out "$P/$1.csr" 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$3" > "$P/$1.ext"
    openssl x509 -req -in "$P/$1.csr" -CA "$P/ed-ca.crt" -CAkey "$P/ed-ca.key" -CAcreateserial \
        -days 2 -extfile "$P/$1.ext" -out "$P/$1.crt" 2>/dev/null
}
openssl req -x509 -newkey ED25519 -nodes -days 3 -subj "/CN=LURK test Ed25519 CA" \
    -keyout "$P/ed-ca.key" -out "$P/ed-ca.crt" 2>/dev/null
ed_cert ed-keyserver localhost "DNS:localhost,IP:127.0.0.1"
ed_cert ed-edge edge1.example "DNS:edge1.example"
lurk_keyserver_conf "$LURK_T/ks-ed.cnf" "$URL"
sed -i -e "s|^tls_cert = .*|tls_cert = $P/ed-keyserver.crt|" \
    -e "s|^tls_key = .*|tls_key = $P/ed-keyserver.key|" \
    -e "s|^client_ca = .*|client_ca = $P/ed-ca.crt|" "$LURK_T/ks-ed.cnf"
lurk_keyserver_start ks-ed "$LURK_T/ks-ed.cnf" || { lurk_fail "key server (Ed25519) starts"; lurk_done; }
ED_TLS=(--server "$URL" --ca "$P/ed-ca.crt" --server-name localhost
    --cert "$P/ed-edge.crt" --key "$P/ed-edge.key")
lurk_check "an edge with an Ed25519 certificate pings a key server with one" \
    "$LURK_CTL" "${ED_TLS[@]}" ping
lurk_check "(TLS 1.3, seen in the log)" \
    lurk_wait_log "$LURK_T/ks-ed.log" 'edge connected: .*TLSv1\.3' 10
timeout 10 openssl s_client -connect "127.0.0.1:$KS_PORT" -servername localhost \
    -CAfile "$P/ed-ca.crt" -cert "$P/ed-edge.crt" -key "$P/ed-edge.key" \
    -verify_return_error < /dev/null > "$LURK_T/ed-raw.log" 2>&1
lurk_grep "the key server signs its handshake with Ed25519" 'Peer signature type: [Ee][Dd]25519' \
    "$LURK_T/ed-raw.log"
lurk_check_fails "an Ed25519 edge is refused by a key server trusting another CA" \
    "$LURK_CTL" --server "$URL" --ca "$P/ca.crt" --server-name localhost \
    --cert "$P/edge.crt" --key "$P/edge.key" --timeout-ms 1500 ping
lurk_stop "$LURK_KS_PID"

# --- 4. restarts resume sessions ----------------------------------------------
# A long-lived edge: s_server with a lurk key keeps its key server
# connection (and its session) across the handshakes it serves.
lurk_keyserver_start ks-r1 "$LURK_T/ks.cnf" || { lurk_fail "key server starts"; lurk_done; }
lurk_openssl_cnf "$LURK_T/openssl.cnf" "$URL"
WEB_PORT=$(lurk_port)
OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg s_server openssl s_server -www -accept "$WEB_PORT" \
    -cert "$P/web-p256.crt" -key "lurk://p256"
lurk_check "s_server with lurk://p256 listens" lurk_wait_port "$WEB_PORT" 15
web() {
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 20 openssl s_client -connect "127.0.0.1:$WEB_PORT" \
        -servername localhost -CAfile "$P/web-ca.crt" -verify_return_error -ign_eof \
        > "$LURK_T/web-$1.log" 2>&1
    lurk_grep "$1: a page over a handshake signed by the key server" 'HTTP/1.0 200 ok' \
        "$LURK_T/web-$1.log"
}
web first
lurk_check "the edge's first connection is a full handshake" \
    lurk_wait_log "$LURK_T/ks-r1.log" 'edge connected: .*TLSv1\.3' 10
lurk_check_fails "(not a resumed one)" grep -q 'session resumed' "$LURK_T/ks-r1.log"
kill -TERM "$LURK_KS_PID"
lurk_check "the key server stops" lurk_wait_exit "$LURK_KS_PID" 15
lurk_keyserver_start ks-r2 "$LURK_T/ks.cnf" || { lurk_fail "key server restarts"; lurk_done; }
web after-restart
lurk_check "after a restart the edge resumes its session" \
    lurk_wait_log "$LURK_T/ks-r2.log" 'edge connected: .*TLSv1\.3.*session resumed' 10
kill -TERM "$LURK_KS_PID"
lurk_check "the key server stops again" lurk_wait_exit "$LURK_KS_PID" 15

# A CRL now (revoking nobody): the tickets issued under the old trust
# settings are not resumed.
lurk_mini_ca
openssl ca -batch -config "$P/mini/ca.cnf" -cert "$P/ca.crt" -keyfile "$P/ca.key" -gencrl \
    -out "$P/empty.crl" > "$LURK_T/crl.log" 2>&1
lurk_keyserver_conf "$LURK_T/ks-crl.cnf" "$URL" "client_crl = $P/empty.crl"
lurk_keyserver_start ks-r3 "$LURK_T/ks-crl.cnf" || { lurk_fail "key server (CRL) starts"; lurk_done; }
web after-crl
lurk_check "after the CRL changes the edge connects again" \
    lurk_wait_log "$LURK_T/ks-r3.log" 'edge connected: .*TLSv1\.3' 10
lurk_check_fails "with a full handshake, not a resumed session" \
    grep -q 'session resumed' "$LURK_T/ks-r3.log"
lurk_done
