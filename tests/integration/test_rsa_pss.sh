#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# RSA-PSS keys (id-RSASSA-PSS SubjectPublicKeyInfo) behave exactly as the
# same key held locally: an unrestricted one and one restricted to SHA-256
# (RFC 4055 parameters), each served by `openssl s_server` twice, side by
# side, once with a LURK key reference file and once with the key file
# itself. Every client probe must end the same way on both: TLS 1.3 with
# each rsa_pss_pss_* scheme, TLS 1.2 ECDHE-RSA, a client offering only
# rsa_pss_rsae_* (refused), DTLS 1.2 (which OpenSSL 3.0 refuses for an
# RSA-PSS certificate, "no shared cipher"). Then gnutls-cli, curl and
# Debian's nginx with the reference file.
. "$(dirname "$0")/lib.sh"

lurk_pki
W=$LURK_T/pss
mkdir -p "$W"
# pss: unrestricted; pss256: hash, MGF1 hash SHA-256, salt >= 32.
openssl genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048 -out "$LURK_T/keys/pss.pem" 2>/dev/null
openssl genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048 -pkeyopt rsa_pss_keygen_md:sha256 \
    -pkeyopt rsa_pss_keygen_mgf1_md:sha256 -pkeyopt rsa_pss_keygen_saltlen:32 \
    -out "$LURK_T/keys/pss256.pem" 2>/dev/null
chmod 600 "$LURK_T"/keys/pss*.pem
for k in pss pss256; do
    # Self-signed, used as its own CA by every client below.
    openssl req -x509 -new -key "$LURK_T/keys/$k.pem" -subj "/CN=localhost" -days 2 \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$W/$k.crt" 2>/dev/null
done
lurk_grep "the restricted key's certificate is id-RSASSA-PSS with parameters" \
    'Hash Algorithm: sha256' <(openssl x509 -in "$W/pss256.crt" -noout -text)

KS_PORT=$(lurk_port)
lurk_keyserver_conf "$LURK_T/ks.cnf" "tls+tcp://127.0.0.1:$KS_PORT"
# [keys] is the file's last section.
printf 'pss = %s\npss256 = %s\n' "$LURK_T/keys/pss.pem" "$LURK_T/keys/pss256.pem" >> "$LURK_T/ks.cnf"
"$LURK_KEYSERVER" -c "$LURK_T/ks.cnf" --check > "$W/check.log" 2>&1
lurk_check "--check accepts the RSA-PSS keys" test $? -eq 0
lurk_grep "--check: unrestricted key, all three rsa_pss_pss_*" \
    'schemes rsa_pss_pss_sha256, rsa_pss_pss_sha384, rsa_pss_pss_sha512$' "$W/check.log"
lurk_grep "--check: the restrictions" 'RSA-PSS parameters: hash SHA256, MGF1 SHA256, salt length >= 32' \
    "$W/check.log"
lurk_grep "--check: the restricted key takes rsa_pss_pss_sha256 alone" \
    'schemes rsa_pss_pss_sha256$' "$W/check.log"
lurk_keyserver_start ks "$LURK_T/ks.cnf" -v || { lurk_fail "key server starts"; lurk_done; }
lurk_grep "start-up line: type and restrictions" \
    'key "pss256": RSA-PSS 2048 bits, restricted to hash SHA256, MGF1 SHA256, salt >= 32' "$LURK_T/ks.log"
lurk_grep "start-up line: unrestricted" 'key "pss": RSA-PSS 2048 bits, unrestricted' "$LURK_T/ks.log"
# verify_signatures: every RSA-PSS signature is also checked with the public half.
lurk_openssl_cnf "$LURK_T/openssl.cnf" "tls+tcp://127.0.0.1:$KS_PORT" "verify_signatures = yes"

mkdir -p "$LURK_T/ref"
for k in pss pss256; do
    lurk_check "keyref $k (RSA-PSS) matching its certificate" \
        "$LURK_CTL" -C "$LURK_T/openssl.cnf" --match-cert "$W/$k.crt" -o "$LURK_T/ref/$k.pem" keyref "$k"
    lurk_grep "keyref $k: key type 4 (RSA-PSS)" '^ *[0-9]+:d=1 .*INTEGER +:04$' \
        <(openssl asn1parse -in "$LURK_T/ref/$k.pem" 2>&1)
done
"$LURK_CTL" -C "$LURK_T/openssl.cnf" capabilities > "$W/caps.log" 2>&1
lurk_grep "capabilities: RSA-PSS type" '^key pss256: RSA-PSS 2048' "$W/caps.log"
lurk_grep "capabilities: the restrictions" 'rsa-pss: hash SHA256, mgf1 SHA256, min-salt 32' "$W/caps.log"

# Refusals the provider makes locally, without an RPC: with no key server
# behind the provider they must still name the real reason at once.
lurk_openssl_cnf "$LURK_T/dead.cnf" "tls+tcp://127.0.0.1:$(lurk_port)" "timeout_ms = 3000"
echo data > "$W/msg"
refusal() {
    local desc=$1 want=$2 out=$W/refusal-$RANDOM.log; shift 2
    env OPENSSL_CONF="$LURK_T/dead.cnf" timeout 10 "$@" > "$out" 2>&1
    lurk_check "$desc: refused" test $? -ne 0
    lurk_grep "$desc: $want" "$want" "$out"
}
refusal "restricted key, SHA-384 (at DigestSignInit, no RPC)"     'restrict it to hash SHA256 with MGF1 SHA256, not SHA384'     openssl dgst -sha384 -sign "$LURK_T/ref/pss256.pem" -out "$W/sig" "$W/msg"
refusal "RSA-PSS key, PKCS#1 v1.5 padding" 'an RSA-PSS key signs with PSS only'     openssl dgst -sha256 -sigopt rsa_padding_mode:pkcs1 -sign "$LURK_T/ref/pss.pem" -out "$W/sig" "$W/msg"
for f in "$LURK_T/ref/pss.pem" "$LURK_T/keys/pss.pem"; do
    refusal "decryption with $(basename "$(dirname "$f")")/pss.pem, as with a local key"         'operation not supported for this keytype' openssl pkeyutl -decrypt -inkey "$f" -in "$W/msg"
    refusal "$(basename "$(dirname "$f")")/pss256.pem with pss.crt: mismatch" 'key values mismatch'         openssl s_server -accept "$(lurk_port)" -cert "$W/pss.crt" -key "${f/pss.pem/pss256.pem}"
done

# Each key twice: "lurk" (the reference file) and "local" (the key file).
declare -A PORT KEYFILE
for k in pss pss256; do
    KEYFILE[$k-lurk]=$LURK_T/ref/$k.pem
    KEYFILE[$k-local]=$LURK_T/keys/$k.pem
    for how in lurk local; do
        PORT[$k-$how]=$(lurk_port)
        OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg "s_server-$k-$how" openssl s_server -www \
            -accept "${PORT[$k-$how]}" -cert "$W/$k.crt" -key "${KEYFILE[$k-$how]}"
        PORT[dtls-$k-$how]=$(lurk_port)
        OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg_stdin "s_server-dtls-$k-$how" openssl s_server \
            -dtls -accept "${PORT[dtls-$k-$how]}" -cert "$W/$k.crt" -key "${KEYFILE[$k-$how]}"
    done
done
# And the store: `-key lurk://pss256` (GetPublicKey at load).
PORT[pss256-uri]=$(lurk_port)
OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg "s_server-pss256-uri" openssl s_server -www \
    -accept "${PORT[pss256-uri]}" -cert "$W/pss256.crt" -key lurk://pss256
for p in pss-lurk pss-local pss256-lurk pss256-local pss256-uri; do
    lurk_check "s_server $p listens" lurk_wait_port "${PORT[$p]}" 15
done

# outcome PORT-NAME s_client-args...: "ok <signature type> <digest> <protocol>"
# or "fail alert <n>", as the client saw it.
outcome() {
    local p=$1 out=$W/client-$1-$RANDOM.log; shift
    printf 'GET / HTTP/1.0\r\n\r\n' | env -u OPENSSL_CONF timeout 20 openssl s_client \
        -connect "127.0.0.1:${PORT[$p]}" -servername localhost -ign_eof "$@" > "$out" 2>&1
    if grep -q 'HTTP/1.0 200 ok' "$out"; then
        echo "ok $(sed -n 's/^Peer signature type: //p' "$out") $(sed -n 's/^Peer signing digest: //p' "$out")" \
            "$(sed -n 's/^ *Protocol *: //p' "$out" | head -1)"
    else
        echo "fail alert $(sed -n 's/.*SSL alert number \([0-9]*\).*/\1/p' "$out" | head -1)"
    fi
}

# same DESC EXPECTED KEY s_client-args...: LURK and local key end alike, as expected.
same() {
    local desc=$1 want=$2 k=$3 lurk local; shift 3
    lurk=$(outcome "$k-lurk" -CAfile "$W/$k.crt" -verify_return_error "$@")
    local=$(outcome "$k-local" -CAfile "$W/$k.crt" -verify_return_error "$@")
    lurk_check "$k $desc: LURK \"$lurk\" = local \"$local\"" test "$lurk" = "$local"
    lurk_check "$k $desc: $want" test "$lurk" = "$want"
}

for md in sha256 sha384 sha512; do
    same "TLS 1.3 rsa_pss_pss_$md" "ok RSA-PSS ${md^^} TLSv1.3" pss -tls1_3 -sigalgs "rsa_pss_pss_$md"
done
same "TLS 1.3 rsa_pss_pss_sha256" "ok RSA-PSS SHA256 TLSv1.3" pss256 -tls1_3 -sigalgs rsa_pss_pss_sha256
same "TLS 1.3 rsa_pss_pss_sha384 (restricted: refused)" "fail alert 40" pss256 -tls1_3 \
    -sigalgs rsa_pss_pss_sha384
same "TLS 1.3 rsa_pss_pss_sha512 (restricted: refused)" "fail alert 40" pss256 -tls1_3 \
    -sigalgs rsa_pss_pss_sha512
for k in pss pss256; do
    same "TLS 1.3 default sigalgs" "ok RSA-PSS SHA256 TLSv1.3" "$k" -tls1_3
    same "TLS 1.2 ECDHE-RSA" "ok RSA-PSS SHA256 TLSv1.2" "$k" -tls1_2 \
        -cipher ECDHE-RSA-AES128-GCM-SHA256
    same "TLS 1.3 client offers only rsa_pss_rsae_*" "fail alert 40" "$k" -tls1_3 \
        -sigalgs rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512
    same "TLS 1.2 client offers only rsa_pss_rsae_*" "fail alert 40" "$k" -tls1_2 \
        -sigalgs rsa_pss_rsae_sha256:rsa_pss_rsae_sha384:rsa_pss_rsae_sha512
    same "TLS 1.2 RSA key exchange (an RSA-PSS key cannot)" "fail alert 40" "$k" -tls1_2 \
        -cipher AES128-GCM-SHA256
done
same "TLS 1.2 rsa_pss_pss_sha512" "ok RSA-PSS SHA512 TLSv1.2" pss -tls1_2 -sigalgs rsa_pss_pss_sha512
same "TLS 1.2 rsa_pss_pss_sha384 (restricted: refused)" "fail alert 40" pss256 -tls1_2 \
    -sigalgs rsa_pss_pss_sha384

for sa in "rsa_pss_pss_sha256:ok RSA-PSS SHA256 TLSv1.3" "rsa_pss_pss_sha384:fail alert 40"; do
    got=$(outcome pss256-uri -CAfile "$W/pss256.crt" -verify_return_error -tls1_3 -sigalgs "${sa%%:*}")
    lurk_check "lurk://pss256 TLS 1.3 ${sa%%:*}: \"$got\", as the local key" test "$got" = "${sa#*:}"
done

# DTLS 1.2: measured with the local key first, it fails ("no shared
# cipher" at the server); LURK must not do better or worse.
for k in pss pss256; do
    for how in lurk local; do
        echo "hello-$k-$how" | env -u OPENSSL_CONF timeout 20 openssl s_client -dtls1_2 \
            -connect "127.0.0.1:${PORT[dtls-$k-$how]}" -CAfile "$W/$k.crt" \
            > "$W/dtls-$k-$how.log" 2>&1
        lurk_grep "$k DTLS 1.2 ($how key): refused with a handshake failure alert" \
            'SSL alert number 40' "$W/dtls-$k-$how.log"
        lurk_wait_log "$LURK_T/s_server-dtls-$k-$how.log" 'no shared cipher' 5 \
            && lurk_pass "$k DTLS 1.2 ($how key): server says no shared cipher" \
            || lurk_fail "$k DTLS 1.2 ($how key): server says no shared cipher"
    done
done

# Other client stacks against the LURK s_server: curl and gnutls-cli (a
# second RSA-PSS verifier), the self-signed certificate as the CA.
for k in pss pss256; do
    for v in 1.3 1.2; do
        env -u OPENSSL_CONF timeout 20 curl -sS --tlsv"$v" --tls-max "$v" --cacert "$W/$k.crt" \
            "https://localhost:${PORT[$k-lurk]}/" > "$W/curl-$k-$v.log" 2>&1
        lurk_grep "$k: curl TLS $v" 'Protocol *: TLSv'"$v" "$W/curl-$k-$v.log"
        if command -v gnutls-cli > /dev/null; then
            printf 'GET / HTTP/1.0\r\n\r\n' | env -u OPENSSL_CONF timeout 20 gnutls-cli \
                --x509cafile="$W/$k.crt" -p "${PORT[$k-lurk]}" \
                --priority "NORMAL:-VERS-ALL:+VERS-TLS$v" localhost > "$W/gnutls-$k-$v.log" 2>&1
            lurk_grep "$k: gnutls-cli TLS $v handshake" 'Handshake was completed' "$W/gnutls-$k-$v.log"
            lurk_grep "$k: gnutls-cli TLS $v with rsa_pss_pss_*" 'RSA-PSS-SHA(256|384|512)' "$W/gnutls-$k-$v.log"
        else
            lurk_skip "gnutls-cli is not installed (scripts/setup-debian installs gnutls-bin)"
        fi
    done
done

# nginx (Debian's, unmodified) with the RSA-PSS reference files.
NGINX=$LURK_NGINX
if [ -x "$NGINX" ]; then
    P=$LURK_T/nginx
    NG_PSS=$(lurk_port)
    NG_PSS256=$(lurk_port)
    lurk_nginx_conf "$P/nginx.conf" "$P" 1 \
        "$(lurk_nginx_server "$NG_PSS" "$W/pss.crt" "$LURK_T/ref/pss.pem")" \
        "$(lurk_nginx_server "$NG_PSS256" "$W/pss256.crt" "$LURK_T/ref/pss256.pem")"
    OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg nginx "$NGINX" -p "$P" -c "$P/nginx.conf" -g 'daemon off;'
    if lurk_wait_port "$NG_PSS" 15 && lurk_wait_port "$NG_PSS256" 15; then
        for k in pss pss256; do
            [ "$k" = pss ] && port=$NG_PSS || port=$NG_PSS256
            for v in 1.3 1.2; do
                env -u OPENSSL_CONF timeout 20 curl -sS --tlsv"$v" --tls-max "$v" \
                    --cacert "$W/$k.crt" "https://localhost:$port/" > "$P/curl-$k-$v.log" 2>&1
                lurk_grep "nginx $k: curl TLS $v" "lurk ok TLSv$v" "$P/curl-$k-$v.log"
            done
        done
    else
        lurk_fail "nginx listens with the RSA-PSS reference files"
        tail -n 5 "$P/logs/error.log" 2>/dev/null | sed 's/^/#   /'
    fi
else
    lurk_skip "nginx is not installed (scripts/setup-debian installs nginx-light)"
fi

lurk_grep "the key server signed rsa_pss_pss_* with the RSA-PSS keys" \
    'signed rsa_pss_pss_sha256 with key "pss256"' "$LURK_T/ks.log"
lurk_check_fails "the key server never signed rsae or PKCS#1 with them" \
    grep -Eq 'signed rsa_(pss_rsae|pkcs1)_[a-z0-9]+ with key "pss' "$LURK_T/ks.log"
lurk_check_fails "key server log has no PEM private key" grep -q 'PRIVATE KEY' "$LURK_T/ks.log"
lurk_done
