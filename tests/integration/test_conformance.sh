#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every signature scheme, checked from both ends: for each key type (RSA,
# RSA-PSS, P-256, P-384, P-521, Ed25519) an unmodified `openssl s_server`
# holding the key itself and one holding only a LURK key reference serve
# side by side; `s_client -sigalgs` forces each scheme libssl knows, in TLS
# 1.3, TLS 1.2 and DTLS 1.2, against both. Every row must have the same
# outcome: the same negotiated cipher and signature, or the same failure as
# the client sees it. RSA key exchange is in the walk too.
#
# Both servers run at @SECLEVEL=0 with a key server that has
# legacy_hashes = yes, so that SHA-1 and SHA-224 rows are reached at all:
# that is the setting an operator picks to serve old clients exactly as a
# local key would. The default (legacy_hashes = no) is checked at the end.
. "$(dirname "$0")/lib.sh"

KEYS="rsa rsapss p256 p384 p521 ed25519"
SIGALGS="ecdsa_secp256r1_sha256 ecdsa_secp384r1_sha384 ecdsa_secp521r1_sha512 ed25519 ed448
ECDSA+SHA224 ECDSA+SHA1 rsa_pss_rsae_sha256 rsa_pss_rsae_sha384 rsa_pss_rsae_sha512
rsa_pss_pss_sha256 rsa_pss_pss_sha384 rsa_pss_pss_sha512 rsa_pkcs1_sha256 rsa_pkcs1_sha384
rsa_pkcs1_sha512 RSA+SHA224 RSA+SHA1 DSA+SHA256 DSA+SHA1"
CIPHERS='ALL:!aNULL:!eNULL:!PSK:!SRP:@SECLEVEL=0'

lurk_pki
# The two key types lurk_pki does not make, with certificates from the same CA.
openssl genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048 -out "$LURK_T/keys/rsapss.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-521 -out "$LURK_T/keys/p521.pem" 2>/dev/null
chmod 600 "$LURK_T"/keys/*.pem
for k in rsapss p521; do
    openssl req -new -key "$LURK_T/keys/$k.pem" -subj "/CN=localhost" -out "$LURK_T/pki/web-$k.csr" 2>/dev/null
    openssl x509 -req -in "$LURK_T/pki/web-$k.csr" -CA "$LURK_T/pki/web-ca.crt" \
        -CAkey "$LURK_T/pki/web-ca.key" -CAcreateserial -days 2 -extfile "$LURK_T/pki/web.ext" \
        -out "$LURK_T/pki/web-$k.crt" 2>/dev/null
done

KS_PORT=$(lurk_port)
lurk_keyserver_conf "$LURK_T/ks.cnf" "tls+tcp://127.0.0.1:$KS_PORT" "legacy_hashes = yes"
printf 'rsapss = %s\np521 = %s\n' "$LURK_T/keys/rsapss.pem" "$LURK_T/keys/p521.pem" >> "$LURK_T/ks.cnf"
lurk_keyserver_start ks "$LURK_T/ks.cnf" || { lurk_fail "key server starts"; lurk_done; }
lurk_openssl_cnf "$LURK_T/openssl.cnf" "tls+tcp://127.0.0.1:$KS_PORT"
mkdir -p "$LURK_T/ref"
for k in $KEYS; do
    lurk_check "key reference for $k matches its certificate" "$LURK_CTL" \
        --keyserver-config "$LURK_T/ks.cnf" --match-cert "$LURK_T/pki/web-$k.crt" \
        -o "$LURK_T/ref/$k.pem" keyref "$k"
done

# serve NAME KEYFILE CERT [s_server args...]: sets PORT[NAME]. The local
# server gets the same OPENSSL_CONF, so that the provider set is the same
# and only where the key lives differs.
declare -A PORT
serve() {
    local name=$1 key=$2 cert=$3; shift 3
    PORT[$name]=$(lurk_port)
    OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg_stdin "s_server-$name" \
        openssl s_server -accept "${PORT[$name]}" -naccept 1000 -cert "$cert" -key "$key" \
        -cipher "$CIPHERS" "$@"
}
for k in $KEYS; do
    for where in local lurk; do
        keyfile=$LURK_T/keys/$k.pem
        [ "$where" = lurk ] && keyfile=$LURK_T/ref/$k.pem
        serve "$where-$k" "$keyfile" "$LURK_T/pki/web-$k.crt"
        serve "$where-$k-dtls" "$keyfile" "$LURK_T/pki/web-$k.crt" -dtls
    done
done
for name in "${!PORT[@]}"; do
    lurk_wait_log "$LURK_T/s_server-$name.log" '^ACCEPT' 15 \
        || lurk_fail "s_server $name starts"
done

# outcome NAME PROTO-ARGS...: what the client saw, reduced to what must be
# equal between a local and a LURK key: negotiated cipher and signature on
# success, else the client's first error (library:function:reason, alert).
outcome() {
    local name=$1 out; shift
    out=$(echo | env -u OPENSSL_CONF timeout 20 openssl s_client \
        -connect "127.0.0.1:${PORT[$name]}" -servername localhost -cipher "$CIPHERS" "$@" 2>&1)
    if grep -q '^New, .*Cipher is' <<< "$out" && ! grep -q '^New, (NONE)' <<< "$out"; then
        printf 'ok %s / %s / %s' "$(grep -m1 -o 'Cipher is .*' <<< "$out")" \
            "$(grep -m1 -o 'Peer signature type: .*' <<< "$out")" \
            "$(grep -m1 -o 'Peer signing digest: .*' <<< "$out")"
    else
        grep -m1 -E ':error:|alert|errno' <<< "$out" \
            | sed -E 's/^[0-9A-F]+:error:[0-9A-F]+:([^:]*:[^:]*:[^:]*).*(SSL alert number [0-9]+)?.*$/failed \1 \2/'
    fi
}

# walk KEY LABEL PORT-SUFFIX ARGS...: one row per scheme, local vs LURK,
# "same|differs KEY LABEL SCHEME: outcome(s)" each.
walk() {
    local k=$1 label=$2 sfx=$3 sa local remote; shift 3
    for sa in $SIGALGS; do
        local=$(outcome "local-$k$sfx" "$@" -sigalgs "$sa")
        remote=$(outcome "lurk-$k$sfx" "$@" -sigalgs "$sa")
        if [ "$local" = "$remote" ]; then
            echo "same $k $label $sa: $local"
        else
            echo "differs $k $label $sa: local key: $local; LURK: $remote"
        fi
    done
}

# One key per background walk: the servers of a key are its own, and a DTLS
# client lingers half a second after its handshake, so keys run side by side.
walk_pids=()
for k in $KEYS; do
    { walk "$k" "TLS 1.3" "" -tls1_3
      walk "$k" "TLS 1.2" "" -tls1_2
      walk "$k" "DTLS 1.2" "-dtls" -dtls1_2
      # RSA keys also sign finite-field DHE parameters (ECDHE wins otherwise).
      case $k in rsa*) walk "$k" "TLS 1.2 DHE" "" -tls1_2 \
          -cipher 'DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0' ;; esac
    } > "$LURK_T/walk-$k.txt" 2>&1 &
    walk_pids+=($!)
done
wait "${walk_pids[@]}"
cat "$LURK_T"/walk-*.txt > "$LURK_T/walk.txt"
sed 's/^/# /' "$LURK_T/walk.txt"
rows=$(grep -c '^\(same\|differs\) ' "$LURK_T/walk.txt")
diffs=$(grep -c '^differs ' "$LURK_T/walk.txt")
oks=$(grep -c '^same .*: ok ' "$LURK_T/walk.txt")
while read -r line; do lurk_fail "$line"; done < <(grep '^differs ' "$LURK_T/walk.txt")
lurk_log "$rows rows, $oks handshakes that succeed with both keys, $diffs differences"
lurk_check "the walk has every row (6 keys x 3 protocols x 20 schemes, DHE for 2)" \
    test "$rows" -eq 400
lurk_check "every row of the walk has the local key's outcome" test "$diffs" -eq 0
# A walk that failed everywhere would match too: enough rows must succeed.
lurk_check "the walk reaches real handshakes ($oks of $rows succeed)" test "$oks" -ge 70

# RSA key exchange, good ciphertexts: a normal handshake, TLS 1.2 and DTLS.
for k in rsa rsapss; do
    for v in tls1_2 dtls1_2; do
        sfx=""; [ "$v" = dtls1_2 ] && sfx="-dtls"
        local_kx=$(outcome "local-$k$sfx" "-$v" -cipher 'AES128-GCM-SHA256:@SECLEVEL=0')
        lurk_kx=$(outcome "lurk-$k$sfx" "-$v" -cipher 'AES128-GCM-SHA256:@SECLEVEL=0')
        lurk_check "$k $v RSA key exchange: same outcome (local: $local_kx; LURK: $lurk_kx)" \
            test "$local_kx" = "$lurk_kx"
    done
done
outcome lurk-rsa -tls1_2 -cipher 'AES128-GCM-SHA256:@SECLEVEL=0' > "$LURK_T/kx.log"
lurk_grep "RSA key exchange completes through LURK" 'ok Cipher is AES128-GCM-SHA256' "$LURK_T/kx.log"

# A TLS 1.2 client that sends no signature_algorithms (SHA-1 implied) and
# does RSA key exchange: libssl checks that the key could sign
# rsa_pkcs1_sha1 even though nothing is signed. Both keys must then take the
# ClientKeyExchange and fail only at the garbage Finished.
CKE=$(cd "$(dirname "$0")/../tools" && pwd)/tls12_rsa_cke.py
ZEROS=$(printf '%0512d' 0)
for where in local lurk; do
    python3 "$CKE" --no-sigalgs 127.0.0.1 "${PORT[$where-rsa]}" "$ZEROS" \
        > "$LURK_T/nosigalgs-$where.log" 2>&1
done
lurk_grep "no signature_algorithms, RSA key exchange, local key: fails at Finished" \
    '^alert fatal bad_record_mac' "$LURK_T/nosigalgs-local.log"
lurk_grep "no signature_algorithms, RSA key exchange, LURK: fails at Finished" \
    '^alert fatal bad_record_mac' "$LURK_T/nosigalgs-lurk.log"

# The default: legacy_hashes = no. The provider learns from Capabilities
# that SHA-1 and SHA-224 are off, so a client that prefers them but offers
# SHA-256 too gets SHA-256 through LURK, and one that offers nothing else
# fails before any request reaches the key server. RSA key exchange still
# works for a client that implies SHA-1.
KS2_PORT=$(lurk_port)
lurk_keyserver_conf "$LURK_T/ks2.cnf" "tls+tcp://127.0.0.1:$KS2_PORT"
lurk_keyserver_start ks2 "$LURK_T/ks2.cnf" || { lurk_fail "second key server starts"; lurk_done; }
lurk_openssl_cnf "$LURK_T/openssl2.cnf" "tls+tcp://127.0.0.1:$KS2_PORT"
for k in p256 rsa; do
    PORT[nolegacy-$k]=$(lurk_port)
    OPENSSL_CONF=$LURK_T/openssl2.cnf lurk_bg_stdin "s_server-nolegacy-$k" \
        openssl s_server -accept "${PORT[nolegacy-$k]}" -naccept 1000 \
        -cert "$LURK_T/pki/web-$k.crt" -key "$LURK_T/ref/$k.pem" -cipher "$CIPHERS"
    lurk_wait_log "$LURK_T/s_server-nolegacy-$k.log" '^ACCEPT' 15
done
outcome nolegacy-p256 -tls1_2 -sigalgs ECDSA+SHA1:ECDSA+SHA224:ECDSA+SHA256 \
    > "$LURK_T/nolegacy-prefer.log"
lurk_grep "legacy_hashes = no: a client preferring SHA-1 and SHA-224 gets SHA-256" \
    'Peer signing digest: SHA256' "$LURK_T/nolegacy-prefer.log"
outcome nolegacy-p256 -tls1_2 -sigalgs ECDSA+SHA1 > "$LURK_T/nolegacy-sha1.log"
lurk_grep "legacy_hashes = no: a client offering only SHA-1 is refused" '^failed' \
    "$LURK_T/nolegacy-sha1.log"
lurk_check_fails "legacy_hashes = no: no SHA-1 or SHA-224 request reached the key server" \
    grep -Eq 'ecdsa_sha1|ecdsa_sha224' "$LURK_T/ks2.log"
python3 "$CKE" --no-sigalgs 127.0.0.1 "${PORT[nolegacy-rsa]}" "$ZEROS" \
    > "$LURK_T/nosigalgs-nolegacy.log" 2>&1
lurk_grep "legacy_hashes = no: no signature_algorithms, RSA key exchange: fails at Finished" \
    '^alert fatal bad_record_mac' "$LURK_T/nosigalgs-nolegacy.log"
lurk_done
