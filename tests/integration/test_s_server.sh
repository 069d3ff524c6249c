#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End to end: an unmodified `openssl s_server` serves TLS 1.3, TLS 1.2 and
# DTLS 1.2 with keys it never holds (`-key lurk://<id>`), answered by an
# unmodified `openssl s_client` and curl that verify the chain. The only
# copy of each private key is the key server's.
. "$(dirname "$0")/lib.sh"

lurk_pki
KS_PORT=$(lurk_port)
lurk_keyserver_conf "$LURK_T/ks.cnf" "tls+tcp://127.0.0.1:$KS_PORT"
lurk_keyserver_start ks "$LURK_T/ks.cnf" || { lurk_fail "key server starts"; lurk_done; }
lurk_openssl_cnf "$LURK_T/openssl.cnf" "tls+tcp://127.0.0.1:$KS_PORT"

declare -A PORT
for k in rsa p256 p384 ed25519; do
    PORT[$k]=$(lurk_port)
    OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg "s_server-$k" \
        openssl s_server -www -accept "${PORT[$k]}" \
        -cert "$LURK_T/pki/web-$k.crt" -key "lurk://$k"
done
for k in rsa p256; do
    PORT[dtls-$k]=$(lurk_port)
    OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg_stdin "s_server-dtls-$k" \
        openssl s_server -dtls -accept "${PORT[dtls-$k]}" \
        -cert "$LURK_T/pki/web-$k.crt" -key "lurk://$k"
done
for k in rsa p256 p384 ed25519; do
    lurk_check "s_server loads lurk://$k and listens" lurk_wait_port "${PORT[$k]}" 15
done

# handshake NAME KEY EXPECT-REGEX s_client-args...: one full handshake with
# chain verification and an HTTP request, then the expected negotiated
# parameters in s_client's report.
handshake() {
    local name=$1 key=$2 expect=$3 out=$LURK_T/client-$1.log; shift 3
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 20 openssl s_client -connect "127.0.0.1:${PORT[$key]}" \
        -servername localhost -CAfile "$LURK_T/pki/web-ca.crt" -verify_return_error \
        -ign_eof "$@" > "$out" 2>&1
    lurk_grep "$name: chain verified" 'Verify return code: 0 \(ok\)' "$out"
    lurk_grep "$name: $expect" "$expect" "$out"
    lurk_grep "$name: page served" 'HTTP/1.0 200 ok' "$out"
}

handshake tls13-rsa-pss rsa 'Peer signature type: RSA-PSS' -tls1_3
handshake tls13-ecdsa-p256 p256 'Peer signing digest: SHA256' -tls1_3
handshake tls13-ecdsa-p384 p384 'Peer signing digest: SHA384' -tls1_3
handshake tls13-ed25519 ed25519 'Peer signature type: [Ee][Dd]25519' -tls1_3
handshake tls13-aes256-sha384-transcript rsa 'TLS_AES_256_GCM_SHA384' -tls1_3 \
    -ciphersuites TLS_AES_256_GCM_SHA384
handshake tls12-ecdhe-rsa-pkcs1 rsa 'Peer signature type: RSA$' -tls1_2 \
    -cipher ECDHE-RSA-AES128-GCM-SHA256 -sigalgs RSA+SHA256
handshake tls12-ecdhe-rsa-pss rsa 'Peer signature type: RSA-PSS' -tls1_2 \
    -cipher ECDHE-RSA-AES128-GCM-SHA256 -sigalgs rsa_pss_rsae_sha256
handshake tls12-ecdhe-ecdsa p256 'Cipher is ECDHE-ECDSA-AES128-GCM-SHA256' -tls1_2 \
    -cipher ECDHE-ECDSA-AES128-GCM-SHA256
handshake tls12-ecdhe-ecdsa-p384-sha256 p384 'Peer signing digest: SHA256' -tls1_2 \
    -cipher ECDHE-ECDSA-AES256-GCM-SHA384 -sigalgs ECDSA+SHA256
handshake tls12-rsa-key-exchange rsa 'Cipher is AES128-GCM-SHA256' -tls1_2 \
    -cipher AES128-GCM-SHA256

# DTLS 1.2 over UDP (s_server has no -www for DTLS): a full handshake,
# then one line that the server must receive.
dtls() {
    local name=$1 key=$2 expect=$3 out=$LURK_T/client-$1.log; shift 3
    echo "hello-$name" | timeout 20 openssl s_client -dtls1_2 \
        -connect "127.0.0.1:${PORT[$key]}" -servername localhost \
        -CAfile "$LURK_T/pki/web-ca.crt" -verify_return_error "$@" > "$out" 2>&1
    lurk_grep "$name: chain verified" 'Verify return code: 0 \(ok\)' "$out"
    lurk_grep "$name: $expect" "$expect" "$out"
    lurk_wait_log "$LURK_T/s_server-$key.log" "hello-$name" 5
    lurk_grep "$name: the server received data" "hello-$name" "$LURK_T/s_server-$key.log"
}
# UDP: no port to connect to; s_server prints ACCEPT once it is bound.
for k in rsa p256; do
    lurk_check "DTLS s_server loads lurk://$k and is bound" \
        lurk_wait_log "$LURK_T/s_server-dtls-$k.log" '^ACCEPT' 15
done
dtls dtls12-rsa dtls-rsa 'Cipher is ECDHE-RSA-AES128-GCM-SHA256' -cipher ECDHE-RSA-AES128-GCM-SHA256
dtls dtls12-ecdsa dtls-p256 'Cipher is ECDHE-ECDSA-AES128-GCM-SHA256' -cipher ECDHE-ECDSA-AES128-GCM-SHA256

# curl, a second client stack on the same OpenSSL, verifying the chain.
for k in rsa p256 ed25519; do
    lurk_check "curl TLS 1.3 over lurk://$k" timeout 20 curl -sf --tlsv1.3 \
        --cacert "$LURK_T/pki/web-ca.crt" -o "$LURK_T/curl-$k.html" "https://localhost:${PORT[$k]}/"
done
lurk_check "curl TLS 1.2 over lurk://rsa" timeout 20 curl -sf --tlsv1.2 --tls-max 1.2 \
    --cacert "$LURK_T/pki/web-ca.crt" -o /dev/null "https://localhost:${PORT[rsa]}/"

# The key server did the signing, and logged no key material.
alive=0
for pid in "${LURK_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=$((alive + 1)); done
lurk_check "the key server and all 6 s_servers are still running" test "$alive" -eq 7
lurk_check_fails "key server log has no PEM private key" grep -q 'PRIVATE KEY' "$LURK_T/ks.log"
lurk_done
