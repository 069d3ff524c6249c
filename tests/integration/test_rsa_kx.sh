#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# TLS 1.2 RSA key exchange through the key server looks like a local key
# to a TLS client, also when a ClientKeyExchange comes again.
#
#  1. Key server level (lurk-rawclient): one real premaster ciphertext
#     under two request ids: the first answer is the premaster, the second
#     48 other bytes, both STATUS_OK; a retry of the first id gets the
#     premaster again. A replayed Sign is still refused. With a full
#     replay cache a Decrypt gets random bytes, a Sign OVERLOADED.
#  2. TLS level (tests/tools/tls12_rsa_cke.py, a raw TLS 1.2 client that
#     sends a chosen ClientKeyExchange and a garbage Finished): against
#     `openssl s_server` with the local key and with lurk://rsa, each
#     ciphertext sent on two connections: all zero bytes, random bytes
#     below the modulus, a short one, one above the modulus, and a real
#     premaster. Every connection gets the alert the local key gives, and
#     the real premaster sent twice costs exactly one replay, logged,
#     audited and counted by the key server.
. "$(dirname "$0")/lib.sh"

RAW=$LURK_TOOLS_DIR/lurk-rawclient
CKE=$(cd "$(dirname "$0")/../tools" && pwd)/tls12_rsa_cke.py
P=$LURK_T/pki
lurk_pki

KS_PORT=$(lurk_port)
MPORT=$(lurk_port)
URL="tls+tcp://127.0.0.1:$KS_PORT"
lurk_keyserver_conf "$LURK_T/ks.cnf" "$URL" "audit_log = $LURK_T/audit.log" \
    "metrics_listen = http://127.0.0.1:$MPORT" "replay_window = 60"
lurk_keyserver_start ks "$LURK_T/ks.cnf" || { lurk_fail "key server starts"; lurk_done; }
KS=$LURK_KS_PID
lurk_openssl_cnf "$LURK_T/openssl.cnf" "$URL"
R=("$RAW" --server "$URL" --ca "$P/ca.crt" --server-name localhost --cert "$P/edge.crt"
   --key "$P/edge.key" --timeout-ms 5000)

hex() { od -An -tx1 -v | tr -d ' \n'; }
openssl x509 -in "$P/web-rsa.crt" -pubkey -noout > "$LURK_T/rsa.pub"
# premaster NAME: $LURK_T/NAME.pms (0x0303 + 46 random bytes) and its
# PKCS#1 v1.5 encryption to the certificate's key, $LURK_T/NAME.ct.
premaster() {
    { printf '\003\003'; head -c 46 /dev/urandom; } > "$LURK_T/$1.pms"
    openssl pkeyutl -encrypt -pubin -inkey "$LURK_T/rsa.pub" -pkeyopt rsa_padding_mode:pkcs1 \
        -in "$LURK_T/$1.pms" -out "$LURK_T/$1.ct"
}
premaster_of() { sed -n 's/.* premaster=\([0-9a-f]*\).*/\1/p' "$1"; }
replays_logged() { grep -c 'decrypt key "rsa" from .*replay: this ciphertext was already decrypted' \
    "$LURK_T/ks.log"; }
replays_audited() { grep -c 'op=decrypt .*result=OK .*reason=replay' "$LURK_T/audit.log" 2>/dev/null; }
replays_counted() {
    curl -sf "http://127.0.0.1:$MPORT/metrics" \
        | sed -n 's/^lurk_keyserver_refusals_total{reason="replay"} \([0-9]*\)$/\1/p' | grep . \
        || echo 0
}
# wait_audited N: the audit log is written in batches; wait for N replay lines.
wait_audited() {
    for _ in $(seq 100); do
        [ "$(replays_audited)" -ge "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# --- 1. the key server answers a replayed Decrypt like any other -----------------

premaster raw
# decrypt_as NAME ID: the raw ciphertext as request ID, answer in $LURK_T/raw-NAME.log
decrypt_as() {
    "${R[@]}" --id "$2" decrypt rsa "@$LURK_T/raw.ct" 0x0303 > "$LURK_T/raw-$1.log" 2>&1
}
decrypt_as first 1
decrypt_as replay 2
decrypt_as retry 1
decrypt_as replay-again 3
pms=$(hex < "$LURK_T/raw.pms")
for n in first replay retry replay-again; do
    lurk_grep "decrypt ($n): STATUS_OK, 48 bytes, no detail" \
        '^status=0 ok id=echoed result=premaster:48 premaster=[0-9a-f]{96} detail=""$' \
        "$LURK_T/raw-$n.log"
done
lurk_check "request id 1: the real premaster" test "$(premaster_of "$LURK_T/raw-first.log")" = "$pms"
lurk_check "the same ciphertext as request id 2: not the premaster" \
    test "$(premaster_of "$LURK_T/raw-replay.log")" != "$pms"
lurk_check "request id 1 again (a retry): the real premaster again" \
    test "$(premaster_of "$LURK_T/raw-retry.log")" = "$pms"
lurk_check "request id 3: not the premaster, nor id 2's bytes" \
    sh -c '[ "$1" != "$0" ] && [ "$1" != "$2" ]' "$pms" \
    "$(premaster_of "$LURK_T/raw-replay-again.log")" "$(premaster_of "$LURK_T/raw-replay.log")"
lurk_check "two replays logged (ids 2 and 3)" test "$(replays_logged)" -eq 2
lurk_check "two replays in the audit log, result OK" wait_audited 2
lurk_check_fails "no premaster bytes in the key server log" grep -q "$pms\|${pms:0:32}" \
    "$LURK_T/ks.log"
lurk_check_fails "no premaster bytes in the audit log" grep -q "${pms:0:32}" "$LURK_T/audit.log"
lurk_check "the retry is logged as one" grep -q 'decrypt key "rsa" .*retry of request' \
    "$LURK_T/ks.log"

# A replayed Sign is still refused.
spaces=$(printf '%064d' 0 | tr 0 ' ' | hex)
tbs=$spaces$(printf 'TLS 1.3, server CertificateVerify\0' | hex)$(head -c 32 /dev/urandom | hex)
"${R[@]}" --id 7 sign rsa rsa_pss_rsae_sha256 "$tbs" > "$LURK_T/sign-7.log" 2>&1
"${R[@]}" --id 8 sign rsa rsa_pss_rsae_sha256 "$tbs" > "$LURK_T/sign-8.log" 2>&1
lurk_grep "sign: the first request is signed" '^status=0 ok .*result=signature' "$LURK_T/sign-7.log"
lurk_grep "sign: the same context under another id is refused as a replay" \
    '^status=2 not permitted .*result=none .*replay: these TLS handshake bytes were already signed' \
    "$LURK_T/sign-8.log"

# A full replay cache: a new ciphertext cannot be told from a replay, so a
# Decrypt gets random bytes (STATUS_OK), a Sign is refused OVERLOADED.
KS2_PORT=$(lurk_port)
URL2="tls+tcp://127.0.0.1:$KS2_PORT"
lurk_keyserver_conf "$LURK_T/ks2.cnf" "$URL2" "audit_log = $LURK_T/audit2.log" \
    "replay_cache = 16"
lurk_keyserver_start ks2 "$LURK_T/ks2.cnf" || lurk_fail "a key server with replay_cache = 16 starts"
R2=("$RAW" --server "$URL2" --ca "$P/ca.crt" --server-name localhost --cert "$P/edge.crt"
    --key "$P/edge.key" --timeout-ms 5000)
for i in $(seq 16); do
    { printf '\0'; head -c 255 /dev/urandom; } > "$LURK_T/fill.ct"
    "${R2[@]}" --id "$i" decrypt rsa "@$LURK_T/fill.ct"
done > "$LURK_T/fill.log" 2>&1
lurk_check "16 ciphertexts fill the cache, each answered" \
    test "$(grep -c '^status=0 ok .*result=premaster:48' "$LURK_T/fill.log")" -eq 16
premaster full
"${R2[@]}" --id 100 decrypt rsa "@$LURK_T/full.ct" > "$LURK_T/full-decrypt.log" 2>&1
lurk_grep "full cache: a new Decrypt is answered STATUS_OK with 48 bytes, no detail" \
    '^status=0 ok id=echoed result=premaster:48 premaster=[0-9a-f]{96} detail=""$' \
    "$LURK_T/full-decrypt.log"
lurk_check "full cache: but not with the premaster" \
    test "$(premaster_of "$LURK_T/full-decrypt.log")" != "$(hex < "$LURK_T/full.pms")"
"${R2[@]}" --id 101 sign rsa rsa_pss_rsae_sha256 "$tbs" > "$LURK_T/full-sign.log" 2>&1
lurk_grep "full cache: a Sign is refused OVERLOADED" '^status=6 .*result=none .*replay cache full' \
    "$LURK_T/full-sign.log"
lurk_check "full cache: audited as replay_cache_full, result OK" lurk_wait_log "$LURK_T/audit2.log" \
    'op=decrypt .*result=OK .*reason=replay_cache_full' 10
lurk_grep "full cache: one warn line per interval says so" \
    'warn: replay cache full for decrypt .*: 1 answered with random bytes' "$LURK_T/ks2.log"
lurk_stop "$LURK_KS_PID"

# --- 2. what a TLS client sees: the same alerts as with the local key -------------

PL=$(lurk_port)
PR=$(lurk_port)
CIPHERS='AES128-GCM-SHA256:AES128-SHA'
lurk_bg s_server-local env -u OPENSSL_CONF openssl s_server -www -accept "$PL" -tls1_2 \
    -cipher "$CIPHERS" -cert "$P/web-rsa.crt" -key "$LURK_T/keys/rsa.pem"
SL=$LURK_BG_PID
OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg s_server-lurk openssl s_server -www -accept "$PR" \
    -tls1_2 -cipher "$CIPHERS" -cert "$P/web-rsa.crt" -key lurk://rsa
SR=$LURK_BG_PID
lurk_check "s_server with the local key listens" lurk_wait_port "$PL" 15
lurk_check "s_server with lurk://rsa listens" lurk_wait_port "$PR" 15

head -c 256 /dev/zero > "$LURK_T/zero.ct"
{ printf '\0'; head -c 255 /dev/urandom; } > "$LURK_T/random.ct"       # below the modulus
{ printf '\1'; head -c 199 /dev/urandom; } > "$LURK_T/short.ct"        # 200 bytes
head -c 256 /dev/zero | tr '\0' '\377' > "$LURK_T/above.ct"             # not below it
premaster tls

# cke NAME PORT CIPHERTEXT: the alert one connection gets.
cke() {
    timeout 30 /usr/bin/python3 "$CKE" 127.0.0.1 "$2" "@$3" > "$LURK_T/cke-$1.log" \
        2> "$LURK_T/cke-$1.err"
    head -n 1 "$LURK_T/cke-$1.log"
}

# same_alerts CASE EXPECTED-ALERT: two connections to each server with one
# ciphertext; all four alerts equal, and equal to what a local key gives.
same_alerts() {
    local c=$1 want=$2 l1 l2 r1 r2
    l1=$(cke "$c-local-1" "$PL" "$LURK_T/$c.ct")
    l2=$(cke "$c-local-2" "$PL" "$LURK_T/$c.ct")
    r1=$(cke "$c-lurk-1" "$PR" "$LURK_T/$c.ct")
    r2=$(cke "$c-lurk-2" "$PR" "$LURK_T/$c.ct")
    lurk_log "$c: local key: '$l1', '$l2'; through LURK: '$r1', '$r2'"
    lurk_check "$c ciphertext: the local key answers '$want'" \
        test "$l1" = "$want" -a "$l2" = "$want"
    lurk_check "$c ciphertext: the first connection through LURK gets the same alert" \
        test "$r1" = "$l1"
    lurk_check "$c ciphertext: the second connection (same ciphertext) gets it too" \
        test "$r2" = "$l1"
}

before=$(replays_logged)
same_alerts zero "alert fatal bad_record_mac"
same_alerts random "alert fatal bad_record_mac"
same_alerts short "alert fatal bad_record_mac"
lurk_check "zero, random and short: one replay each (got $(( $(replays_logged) - before )))" \
    test "$(( $(replays_logged) - before ))" -eq 3
# Above the modulus: refused as a local key refuses it (a public fact). The
# second request is a replay too, but its decryption fails the same way
# and it is refused like the first, not answered: no replay logged.
before=$(replays_logged)
same_alerts above "alert fatal decrypt_error"
lurk_check "above the modulus: no replay answered" test "$(replays_logged)" -eq "$before"

counted0=$(replays_counted)
audited0=$(replays_audited)
logged0=$(replays_logged)
same_alerts tls "alert fatal bad_record_mac"
lurk_check "real premaster twice: exactly one replay logged (got $(( $(replays_logged) - logged0 )))" \
    test "$(( $(replays_logged) - logged0 ))" -eq 1
lurk_check "real premaster twice: exactly one replay audited" wait_audited $((audited0 + 1))
lurk_check "real premaster twice: no second one in the audit log" \
    test "$(replays_audited)" -eq $((audited0 + 1))
counted1=$(replays_counted)
lurk_check "real premaster twice: refusals_total{reason=\"replay\"} +1 ($counted0 -> $counted1)" \
    test "$((counted1 - counted0))" -eq 1
lurk_grep "the replay warning names the key and the edge group" \
    'warn: decrypt key "rsa" from .*\[default\]: replay: this ciphertext was already decrypted' \
    "$LURK_T/ks.log"
lurk_check_fails "no decryption refused as a replay (NOT_PERMITTED) anywhere" \
    grep -q 'op=decrypt .*result=NOT_PERMITTED' "$LURK_T/audit.log"
lurk_check "the key server and both s_servers are still running" \
    kill -0 "$KS" "$SL" "$SR"
lurk_done
