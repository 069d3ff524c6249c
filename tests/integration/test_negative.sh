#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What must fail, fails clearly: an unknown key id, an edge without a
# client certificate or with one from another CA, a key server that is
# down (within the timeout), and signing anything that is not a TLS
# handshake context.
. "$(dirname "$0")/lib.sh"

lurk_pki
KS_PORT=$(lurk_port)
lurk_keyserver_conf "$LURK_T/ks.cnf" "tls+tcp://127.0.0.1:$KS_PORT"
lurk_keyserver_start ks "$LURK_T/ks.cnf" || { lurk_fail "key server starts"; lurk_done; }
URL="tls+tcp://127.0.0.1:$KS_PORT"
lurk_openssl_cnf "$LURK_T/openssl.cnf" "$URL" "timeout_ms = 1500"
export OPENSSL_CONF=$LURK_T/openssl.cnf
CTL=("$LURK_CTL" --server "$URL" --ca "$LURK_T/pki/ca.crt" --server-name localhost --timeout-ms 1500)

lurk_check "lurkctl ping with the edge certificate" \
    "${CTL[@]}" --cert "$LURK_T/pki/edge.crt" --key "$LURK_T/pki/edge.key" ping
"${CTL[@]}" --cert "$LURK_T/pki/edge.crt" --key "$LURK_T/pki/edge.key" capabilities > "$LURK_T/caps.txt" 2>&1
lurk_grep "capabilities list the RSA key with PSS" 'rsa_pss_rsae_sha256' "$LURK_T/caps.txt"
lurk_grep "capabilities list Ed25519" 'key ed25519: ED25519' "$LURK_T/caps.txt"

# Unknown key id: refused by name, at load time.
openssl pkey -in lurk://no-such-key -pubout > "$LURK_T/unknown.log" 2>&1
lurk_grep "unknown key id is refused with the reason" 'unknown key' "$LURK_T/unknown.log"

# Not a TLS context: pkeyutl signs a precomputed digest, then arbitrary data.
head -c 32 /dev/urandom > "$LURK_T/digest.bin"
head -c 100 /dev/urandom > "$LURK_T/data.bin"
lurk_check_fails "pkeyutl -sign of a precomputed digest fails" \
    openssl pkeyutl -sign -inkey lurk://rsa -in "$LURK_T/digest.bin" -out "$LURK_T/sig.bin"
openssl pkeyutl -sign -inkey lurk://rsa -in "$LURK_T/digest.bin" -out "$LURK_T/sig.bin" \
    > "$LURK_T/pkeyutl.log" 2>&1
lurk_grep "the refusal is readable" 'key server refused.*not a TLS handshake context' "$LURK_T/pkeyutl.log"
openssl pkeyutl -sign -rawin -digest sha256 -inkey lurk://p256 -in "$LURK_T/data.bin" \
    -out "$LURK_T/sig.bin" > "$LURK_T/pkeyutl-raw.log" 2>&1
lurk_grep "digest-sign of arbitrary data is refused too" 'not a TLS handshake context' \
    "$LURK_T/pkeyutl-raw.log"
lurk_check_fails "no signature was written" test -s "$LURK_T/sig.bin"
lurk_grep "the key server logged the refusal" 'refused' "$LURK_T/ks.log"
openssl req -new -key lurk://rsa -subj /CN=x -out "$LURK_T/x.csr" > "$LURK_T/req.log" 2>&1
lurk_grep "a certificate request with a lurk key fails with the reason" \
    'sign TLS handshakes only' "$LURK_T/req.log"
lurk_check_fails "decrypting anything but a TLS premaster fails" \
    openssl pkeyutl -decrypt -inkey lurk://rsa -in "$LURK_T/data.bin"
openssl pkey -in lurk://rsa -out "$LURK_T/exported.pem" > /dev/null 2>&1
lurk_check_fails "the private key cannot be exported" grep -q 'PRIVATE KEY' "$LURK_T/exported.pem"

# A bad provider setting is named at key load, not silently dropped.
lurk_openssl_cnf "$LURK_T/bad-setting.cnf" "$URL" "timeout_ms = 3000ms"
OPENSSL_CONF=$LURK_T/bad-setting.cnf openssl pkey -in lurk://rsa -pubout > "$LURK_T/bad-setting.log" 2>&1
lurk_grep "a bad provider setting is reported by name" 'timeout_ms = "3000ms"' "$LURK_T/bad-setting.log"
lurk_openssl_cnf "$LURK_T/bad-cert.cnf" "$URL" "tls_cert = $LURK_T/pki/missing.crt"
sed -i "/^tls_cert = .*edge.crt/d" "$LURK_T/bad-cert.cnf"
OPENSSL_CONF=$LURK_T/bad-cert.cnf openssl pkey -in lurk://rsa -pubout > "$LURK_T/bad-cert.log" 2>&1
lurk_grep "an unreadable client certificate is a configuration error" \
    'lurk provider configuration.*missing\.crt' "$LURK_T/bad-cert.log"

# Edges the key server must not serve.
lurk_check_fails "edge without a client certificate is refused" "${CTL[@]}" ping
lurk_check_fails "edge with a certificate from another CA is refused" \
    "${CTL[@]}" --cert "$LURK_T/pki/rogue-edge.crt" --key "$LURK_T/pki/rogue-edge.key" ping

# Key server down: s_server loaded its key while the key server was up;
# once it is gone a handshake fails within the timeout, with the reason.
WEB_PORT=$(lurk_port)
lurk_bg s_server openssl s_server -www -accept "$WEB_PORT" \
    -cert "$LURK_T/pki/web-rsa.crt" -key lurk://rsa
lurk_wait_port "$WEB_PORT" 15 || lurk_fail "s_server starts"
lurk_stop "$LURK_KS_PID"
start=$(date +%s%N)
printf 'GET / HTTP/1.0\r\n\r\n' | timeout 20 env -u OPENSSL_CONF openssl s_client -tls1_3 \
    -connect "127.0.0.1:$WEB_PORT" > "$LURK_T/down.log" 2>&1
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
lurk_log "handshake against a dead key server failed after ${elapsed} ms (timeout_ms = 1500)"
lurk_check "it failed within timeout + 1.5 s" test "$elapsed" -lt 3000
lurk_check_fails "no page was served" grep -q 'HTTP/1.0 200' "$LURK_T/down.log"
lurk_grep "s_server says the key server is unreachable" 'key server unreachable' "$LURK_T/s_server.log"
lurk_check "s_server survived" kill -0 "$LURK_BG_PID"
# RSA key exchange is off unless the key server config turns it on.
NK_PORT=$(lurk_port)
lurk_keyserver_conf "$LURK_T/ks-nokrsa.cnf" "tls+tcp://127.0.0.1:$NK_PORT" "rsa_decrypt = no"
lurk_keyserver_start ks-nokrsa "$LURK_T/ks-nokrsa.cnf" || lurk_fail "key server without rsa_decrypt starts"
lurk_openssl_cnf "$LURK_T/nokrsa.cnf" "tls+tcp://localhost:$NK_PORT"
NK_WEB=$(lurk_port)
OPENSSL_CONF=$LURK_T/nokrsa.cnf lurk_bg s_server-nokrsa openssl s_server -www -accept "$NK_WEB" \
    -cert "$LURK_T/pki/web-rsa.crt" -key lurk://rsa
lurk_wait_port "$NK_WEB" 15 || lurk_fail "s_server starts"
printf 'GET / HTTP/1.0\r\n\r\n' | timeout 20 env -u OPENSSL_CONF openssl s_client -tls1_2 \
    -cipher AES128-GCM-SHA256 -connect "127.0.0.1:$NK_WEB" > "$LURK_T/nokrsa.log" 2>&1
lurk_check_fails "rsa_decrypt off: an RSA key exchange handshake fails" \
    grep -q 'HTTP/1.0 200' "$LURK_T/nokrsa.log"
lurk_grep "rsa_decrypt off: the key server says why" 'refused decrypt .*not permitted' \
    "$LURK_T/ks-nokrsa.log"
printf 'GET / HTTP/1.0\r\n\r\n' | timeout 20 env -u OPENSSL_CONF openssl s_client -tls1_2 \
    -ign_eof -cipher ECDHE-RSA-AES128-GCM-SHA256 -connect "127.0.0.1:$NK_WEB" \
    > "$LURK_T/nokrsa-ecdhe.log" 2>&1
lurk_grep "rsa_decrypt off: ECDHE with the same key still works" 'HTTP/1.0 200' \
    "$LURK_T/nokrsa-ecdhe.log"
lurk_done
