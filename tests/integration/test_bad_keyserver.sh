#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The edge copes with a key server that answers wrongly: a wrong request
# id, a huge signature, garbage, silence, or a signature that does not
# verify. Each handshake fails cleanly with a reason in the edge's log, the
# edge keeps running, and with verify_signatures = yes a bad signature is
# caught before it reaches the client.
. "$(dirname "$0")/lib.sh"

FAKE=$LURK_TOOLS_DIR/lurk-fake-keyserver
lurk_pki
lurk_keyserver_conf "$LURK_T/ks.cnf" "tls+tcp://127.0.0.1:$(lurk_port)"
lurk_keyrefs "$LURK_T/ks.cnf" || lurk_fail "reference files"

# try MODE REGEX [provider lines...]: s_server with the rsa reference against
# a fake key server in MODE; the handshake must fail and s_server's log
# must match REGEX.
try() {
    local mode=$1 regex=$2 kport wport name; shift 2
    name=$mode${1:+-verify}
    kport=$(lurk_port)
    wport=$(lurk_port)
    lurk_bg "fake-$name" "$FAKE" "tls+tcp://127.0.0.1:$kport" "$LURK_T/pki/keyserver.crt" \
        "$LURK_T/pki/keyserver.key" "$LURK_T/pki/ca.crt" "$mode"
    lurk_check "$name: the fake key server listens" lurk_wait_log "$LURK_T/fake-$name.log" ready 10
    lurk_openssl_cnf "$LURK_T/$name.cnf" "tls+tcp://localhost:$kport" "timeout_ms = 1500" "$@"
    OPENSSL_CONF=$LURK_T/$name.cnf lurk_bg "edge-$name" openssl s_server -www -accept "$wport" \
        -cert "$LURK_T/pki/web-rsa.crt" -key "$LURK_T/ref/rsa.pem"
    local edge=$LURK_BG_PID
    lurk_wait_port "$wport" 10
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 20 openssl s_client -connect "127.0.0.1:$wport" \
        -servername localhost -CAfile "$LURK_T/pki/web-ca.crt" -verify_return_error -tls1_3 \
        > "$LURK_T/client-$name.log" 2>&1
    lurk_check_fails "$name: no page is served" grep -q 'HTTP/1.0 200' "$LURK_T/client-$name.log"
    lurk_grep "$name: the edge says why" "$regex" "$LURK_T/edge-$name.log"
    lurk_check "$name: the edge is still running" kill -0 "$edge"
}

try wrong-id 'answers another request id'
try huge-signature 'signature of 60000 bytes'
try garbage 'undecodable response'
try silent 'no key server answered within 1500 ms'
# Without the switch a bad signature reaches the client, which rejects it;
# with it the edge catches it first.
try bad-signature 'unexpected eof|alert decrypt error|SSL_accept'
lurk_grep "bad-signature: the client rejected the signature" 'decrypt error|bad signature' \
    "$LURK_T/client-bad-signature.log"
try bad-signature 'does not verify with the public key' 'verify_signatures = yes'
lurk_done
