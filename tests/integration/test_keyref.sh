#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Key reference files: `lurkctl keyref` writes a PEM "LURK KEY REFERENCE"
# (key id + public key, no secret), made either on the key server host from
# its configuration or on an edge over the network, and an unmodified
# `openssl` loads it as a private key file: alone, or after the
# certificate in a cert+key bundle. Loading is local; signing goes to the
# key server.
. "$(dirname "$0")/lib.sh"

lurk_pki
KS_PORT=$(lurk_port)
lurk_keyserver_conf "$LURK_T/ks.cnf" "tls+tcp://127.0.0.1:$KS_PORT"
lurk_keyserver_start ks "$LURK_T/ks.cnf" || { lurk_fail "key server starts"; lurk_done; }
lurk_openssl_cnf "$LURK_T/openssl.cnf" "tls+tcp://127.0.0.1:$KS_PORT"
# The same provider settings with no key server behind them.
lurk_openssl_cnf "$LURK_T/dead.cnf" "tls+tcp://127.0.0.1:$(lurk_port)" "timeout_ms = 3000"
R=$LURK_T/ref
mkdir -p "$R"

# --- making references ------------------------------------------------------

for k in rsa p256 p384 ed25519; do
    lurk_check "keyref $k from the key server configuration" \
        "$LURK_CTL" --keyserver-config "$LURK_T/ks.cnf" -o "$R/$k-ks.pem" keyref "$k"
    lurk_check "keyref $k over the network" \
        "$LURK_CTL" -C "$LURK_T/openssl.cnf" -o "$R/$k.pem" keyref "$k"
    lurk_check "keyref $k: both ways write the same file" cmp -s "$R/$k-ks.pem" "$R/$k.pem"
    lurk_grep "keyref $k: a LURK KEY REFERENCE block" '^-----BEGIN LURK KEY REFERENCE-----$' \
        "$R/$k.pem"
    lurk_check_fails "keyref $k: no private key in the file" grep -q PRIVATE "$R/$k.pem"
    lurk_check "keyref $k --match-cert web-$k.crt: accepted" \
        "$LURK_CTL" -C "$LURK_T/openssl.cnf" --match-cert "$LURK_T/pki/web-$k.crt" \
        -o "$R/$k-matched.pem" keyref "$k"
    lurk_check "keyref $k --match-cert: same file" cmp -s "$R/$k-matched.pem" "$R/$k.pem"
done

# A mismatching certificate is refused, naming both, and nothing is written.
for how in "--keyserver-config $LURK_T/ks.cnf" "-C $LURK_T/openssl.cnf"; do
    out=$LURK_T/mismatch.log
    # shellcheck disable=SC2086
    "$LURK_CTL" $how --match-cert "$LURK_T/pki/web-p256.crt" -o "$R/mismatch.pem" keyref rsa \
        > "$out" 2>&1
    rc=$?
    lurk_check "keyref rsa --match-cert web-p256.crt (${how%% *}): exit 1" test "$rc" = 1
    lurk_grep "the refusal names the key and the certificate" '"rsa".*web-p256\.crt' "$out"
    lurk_check_fails "no reference written on refusal" test -e "$R/mismatch.pem"
done
lurk_check_fails "keyref of an unknown key id fails" \
    "$LURK_CTL" --keyserver-config "$LURK_T/ks.cnf" -o "$R/nope.pem" keyref nope
lurk_check "keyref --servers-hint" "$LURK_CTL" --keyserver-config "$LURK_T/ks.cnf" \
    --servers-hint "tls+tcp://127.0.0.1:$KS_PORT" -o "$R/rsa-hint.pem" keyref rsa
openssl asn1parse -in "$R/rsa-hint.pem" > "$R/rsa-hint.asn1" 2>&1
lurk_grep "the hint is in the file" "UTF8STRING +:tls\+tcp://127\.0\.0\.1:$KS_PORT" \
    "$R/rsa-hint.asn1"

# --- loading references -----------------------------------------------------

for k in rsa p256 p384 ed25519; do
    openssl pkey -in "$LURK_T/keys/$k.pem" -pubout > "$R/$k.real.pub"
    openssl x509 -in "$LURK_T/pki/web-$k.crt" -noout -pubkey > "$R/$k.cert.pub"
    lurk_check "openssl pkey -in $k reference -pubout" \
        env OPENSSL_CONF="$LURK_T/openssl.cnf" openssl pkey -in "$R/$k.pem" -pubout \
        -out "$R/$k.pub"
    lurk_check "$k: the reference's public key is the key's" cmp -s "$R/$k.pub" "$R/$k.real.pub"
    lurk_check "$k: and the certificate's" cmp -s "$R/$k.pub" "$R/$k.cert.pub"
done
lurk_check "rsa reference with the servers hint loads too" \
    env OPENSSL_CONF="$LURK_T/openssl.cnf" openssl pkey -in "$R/rsa-hint.pem" -pubout \
    -out "$R/rsa-hint.pub"
lurk_check "... to the same key" cmp -s "$R/rsa-hint.pub" "$R/rsa.real.pub"

# Loading never asks the key server: it works, at once, with none there.
start=$SECONDS
lurk_check "a reference loads with no key server reachable" \
    env OPENSSL_CONF="$LURK_T/dead.cnf" openssl pkey -in "$R/p256.pem" -pubout -out "$R/dead.pub"
lurk_check "... without waiting for one" test $((SECONDS - start)) -lt 3
lurk_check "... to the right key" cmp -s "$R/dead.pub" "$R/p256.real.pub"

# A damaged reference fails with the reason, not as "unsupported".
der=$LURK_T/bad.der
sed '1d;$d' "$R/rsa.pem" | openssl base64 -d > "$der"
printf '\002' | dd of="$der" bs=1 seek=6 conv=notrunc 2>/dev/null # version 1 -> 2
{
    echo "-----BEGIN LURK KEY REFERENCE-----"
    openssl base64 -in "$der"
    echo "-----END LURK KEY REFERENCE-----"
} > "$R/bad-version.pem"
lurk_check_fails "a version 2 reference is refused" env OPENSSL_CONF="$LURK_T/openssl.cnf" \
    openssl pkey -in "$R/bad-version.pem" -pubout -out "$LURK_T/bad.pub" 2> "$LURK_T/bad.log"
lurk_grep "... saying why" 'key reference file: unsupported reference version' "$LURK_T/bad.log"

# The nginx/HAProxy order, through the reference file: load, fork, sign in the child.
for k in rsa p256; do
    if OPENSSL_CONF=$LURK_T/openssl.cnf timeout 20 "$LURK_TOOLS_DIR/lurk-fork-sign" "$R/$k.pem" \
        child > "$LURK_T/fork-$k.log" 2>&1; then
        lurk_pass "load the $k reference, fork, the child signs"
    else
        lurk_fail "load the $k reference, fork, the child signs"
        sed 's/^/#   /' "$LURK_T/fork-$k.log"
    fi
done

# --- TLS with unmodified s_server and s_client --------------------------------

declare -A PORT
for k in rsa p256; do
    cat "$LURK_T/pki/web-$k.crt" "$R/$k.pem" > "$R/bundle-$k.pem"
    PORT[$k]=$(lurk_port)
    OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg "s_server-$k" \
        openssl s_server -www -accept "${PORT[$k]}" -cert "$LURK_T/pki/web-$k.crt" -key "$R/$k.pem"
    PORT[bundle-$k]=$(lurk_port)
    OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg "s_server-bundle-$k" \
        openssl s_server -www -accept "${PORT[bundle-$k]}" -cert "$R/bundle-$k.pem" \
        -key "$R/bundle-$k.pem"
done
# Reference first, certificate second: each loader must skip the other's block.
cat "$R/rsa.pem" "$LURK_T/pki/web-rsa.crt" > "$R/keyfirst-rsa.pem"
PORT[keyfirst-rsa]=$(lurk_port)
OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg "s_server-keyfirst-rsa" \
    openssl s_server -www -accept "${PORT[keyfirst-rsa]}" -cert "$R/keyfirst-rsa.pem" \
    -key "$R/keyfirst-rsa.pem"
for s in rsa p256 bundle-rsa bundle-p256 keyfirst-rsa; do
    lurk_check "s_server loads the $s reference and listens" lurk_wait_port "${PORT[$s]}" 15 \
        || sed 's/^/#   /' "$LURK_T/s_server-$s.log"
done

# handshake NAME SERVER EXPECT-REGEX s_client-args...
handshake() {
    local name=$1 server=$2 expect=$3 out=$LURK_T/client-$1.log; shift 3
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 20 openssl s_client \
        -connect "127.0.0.1:${PORT[$server]}" -servername localhost \
        -CAfile "$LURK_T/pki/web-ca.crt" -verify_return_error -ign_eof "$@" > "$out" 2>&1
    lurk_grep "$name: chain verified" 'Verify return code: 0 \(ok\)' "$out"
    lurk_grep "$name: $expect" "$expect" "$out"
    lurk_grep "$name: page served" 'HTTP/1.0 200 ok' "$out"
}

for s in rsa bundle-rsa; do
    handshake "tls13-$s" "$s" 'Peer signature type: RSA-PSS' -tls1_3
    handshake "tls12-ecdhe-$s" "$s" 'Cipher is ECDHE-RSA-AES128-GCM-SHA256' -tls1_2 \
        -cipher ECDHE-RSA-AES128-GCM-SHA256
    handshake "tls12-rsa-kx-$s" "$s" 'Cipher is AES128-GCM-SHA256' -tls1_2 \
        -cipher AES128-GCM-SHA256
done
handshake "tls13-keyfirst-rsa" keyfirst-rsa 'Peer signature type: RSA-PSS' -tls1_3
for s in p256 bundle-p256; do
    handshake "tls13-$s" "$s" 'Peer signature type: ECDSA' -tls1_3
    handshake "tls12-ecdhe-$s" "$s" 'Cipher is ECDHE-ECDSA-AES128-GCM-SHA256' -tls1_2 \
        -cipher ECDHE-ECDSA-AES128-GCM-SHA256
done

# --- unmodified nginx and HAProxy, when installed ---------------------------
# Both read key files with PEM_read_bio_PrivateKey in a master process and
# fork the workers that sign. nginx 1.22 needs TLS 1.3 switched on.

# curl_tls NAME PORT curl-args...
curl_tls() {
    local name=$1 port=$2; shift 2
    lurk_check "$name" timeout 20 curl -sf --cacert "$LURK_T/pki/web-ca.crt" \
        -o "$LURK_T/curl.out" "$@" "https://localhost:$port/"
}

if command -v nginx > /dev/null; then
    N=$LURK_T/nginx
    mkdir -p "$N/tmp"
    PORT[nginx]=$(lurk_port)
    cat > "$N/nginx.conf" <<EOF
user root;
worker_processes 2;
daemon off;
pid $N/nginx.pid;
error_log stderr info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $N/tmp;
    proxy_temp_path $N/tmp;
    fastcgi_temp_path $N/tmp;
    uwsgi_temp_path $N/tmp;
    scgi_temp_path $N/tmp;
    server {
        listen 127.0.0.1:${PORT[nginx]} ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate $R/bundle-rsa.pem;
        ssl_certificate_key $R/bundle-rsa.pem;
        ssl_certificate $LURK_T/pki/web-p256.crt;
        ssl_certificate_key $R/p256.pem;
        location / { return 200 "lurk\n"; }
    }
}
EOF
    OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg nginx nginx -p "$N" -c "$N/nginx.conf" -e stderr
    if lurk_wait_port "${PORT[nginx]}" 15; then
        lurk_pass "nginx loads a cert+reference bundle and a reference file"
        curl_tls "nginx TLS 1.3" "${PORT[nginx]}" --tlsv1.3
        curl_tls "nginx TLS 1.2 ECDHE-RSA (bundle)" "${PORT[nginx]}" --tlsv1.2 --tls-max 1.2 \
            --ciphers ECDHE-RSA-AES128-GCM-SHA256
        curl_tls "nginx TLS 1.2 RSA key exchange (bundle)" "${PORT[nginx]}" --tlsv1.2 \
            --tls-max 1.2 --ciphers AES128-GCM-SHA256
        curl_tls "nginx TLS 1.2 ECDHE-ECDSA" "${PORT[nginx]}" --tlsv1.2 --tls-max 1.2 \
            --ciphers ECDHE-ECDSA-AES128-GCM-SHA256
    else
        lurk_fail "nginx loads a cert+reference bundle and a reference file"
        sed 's/^/#   /' "$LURK_T/nginx.log" | tail -n 15
    fi
else
    lurk_skip "nginx is not installed"
fi

if command -v haproxy > /dev/null; then
    PORT[haproxy]=$(lurk_port)
    cat > "$LURK_T/haproxy.cfg" <<EOF
defaults
    mode http
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:${PORT[haproxy]} ssl crt $R/bundle-rsa.pem crt $R/bundle-p256.pem
    http-request return status 200 content-type text/plain string lurk
EOF
    # -W: master-worker, so the worker that signs is a fork of the loader.
    OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg haproxy haproxy -W -db -f "$LURK_T/haproxy.cfg"
    if lurk_wait_port "${PORT[haproxy]}" 15; then
        lurk_pass "HAProxy (master-worker) loads two cert+reference bundles"
        curl_tls "HAProxy TLS 1.3" "${PORT[haproxy]}" --tlsv1.3
        curl_tls "HAProxy TLS 1.2 ECDHE-RSA" "${PORT[haproxy]}" --tlsv1.2 --tls-max 1.2 \
            --ciphers ECDHE-RSA-AES128-GCM-SHA256
        curl_tls "HAProxy TLS 1.2 ECDHE-ECDSA" "${PORT[haproxy]}" --tlsv1.2 --tls-max 1.2 \
            --ciphers ECDHE-ECDSA-AES128-GCM-SHA256
    else
        lurk_fail "HAProxy (master-worker) loads two cert+reference bundles"
        sed 's/^/#   /' "$LURK_T/haproxy.log" | tail -n 15
    fi
else
    lurk_skip "HAProxy is not installed"
fi

lurk_check "every server is still running" bash -c "kill -0 $(printf '%s ' "${LURK_PIDS[@]}")"
lurk_check_fails "key server log has no PEM private key" grep -q 'PRIVATE KEY' "$LURK_T/ks.log"
lurk_done
