#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Key server operations: edge groups by listener and CA with key
# grants, connection-time refusal of other-CA, expired and revoked edge
# certificates, rate limits per group and per key, the replay window and
# retries, the audit log and the Prometheus metrics.
. "$(dirname "$0")/lib.sh"

OPS=${LURK_TOOLS_DIR}/lurk-ops-client
lurk_pki
P=$LURK_T/pki

# A small CA run with `openssl ca` (dates and revocation), signing with the
# test CA: an expired edge, a revoked edge, and a good one for control.
lurk_mini_ca
lurk_mini_cert expired-edge -startdate 20200101000000Z -enddate 20200102000000Z
lurk_mini_cert revoked-edge -days 2
lurk_mini_cert good-edge -days 2
openssl ca -config "$P/mini/ca.cnf" -cert "$P/ca.crt" -keyfile "$P/ca.key" \
    -revoke "$P/revoked-edge.crt" > "$LURK_T/ca-revoke.log" 2>&1
openssl ca -gencrl -config "$P/mini/ca.cnf" -cert "$P/ca.crt" -keyfile "$P/ca.key" \
    -out "$P/edges.crl" > "$LURK_T/ca-crl.log" 2>&1
lurk_check "test PKI: an expired, a revoked and a good edge certificate and a CRL" \
    test -s "$P/expired-edge.crt" -a -s "$P/revoked-edge.crt" -a -s "$P/edges.crl"

PORT1=$(lurk_port); PORT2=$(lurk_port); PORT3=$(lurk_port); MPORT=$(lurk_port)
URL1="tls+tcp://127.0.0.1:$PORT1"; URL2="tls+tcp://127.0.0.1:$PORT2"
URL3="tls+tcp://127.0.0.1:$PORT3"
cat > "$LURK_T/ks.cnf" <<CNF
[keyserver]
tls_cert = $P/keyserver.crt
tls_key = $P/keyserver.key
audit_log = $LURK_T/audit.log
metrics_listen = http://127.0.0.1:$MPORT
replay_window = 30

# cdn1: edges of the test CA, minus the revoked one
[edge.cdn1]
listen = $URL1
client_ca = $P/ca.crt
client_crl = $P/edges.crl
keys = p256 rsa
rate = 5
burst = 5

# cdn3: the test CA on a listener of its own, used by nothing but the
# group rate flood, so that its bucket is full (the burst) when it starts.
[edge.cdn3]
listen = $URL3
client_ca = $P/ca.crt
keys = p256
rate = 5
burst = 5

# cdn2: edges of another CA, one key
[edge.cdn2]
listen = $URL2
client_ca = $P/rogue-ca.crt
keys = ed25519 p384

[keys]
rsa = $LURK_T/keys/rsa.pem
p256 = $LURK_T/keys/p256.pem
p384 = $LURK_T/keys/p384.pem
ed25519 = $LURK_T/keys/ed25519.pem

[key_limits]
p384 = 3 3
CNF
"$LURK_KEYSERVER" -c "$LURK_T/ks.cnf" --check > "$LURK_T/check.log" 2>&1
lurk_check "--check accepts the edge groups" test $? -eq 0
lurk_grep "--check lists each group with its keys" 'edge group  cdn2' "$LURK_T/check.log"
lurk_keyserver_start ks "$LURK_T/ks.cnf" || { lurk_fail "key server starts"; lurk_done; }

as() { # EDGE URL ARGS...: lurk-ops-client with that edge's credentials
    local e=$1 u=$2; shift 2
    local ca=$P/ca.crt
    timeout 30 "$OPS" --server "$u" --cert "$P/$e.crt" --key "$P/$e.key" --ca "$ca" \
        --server-name localhost --timeout-ms 2000 "$@"
}

# --- authorization: groups by listener and CA ---------------------------------
as edge "$URL1" caps > "$LURK_T/caps1.txt" 2>&1
lurk_grep "cdn1 Capabilities list exactly its keys" 'keys p256 rsa$' "$LURK_T/caps1.txt"
as rogue-edge "$URL2" caps > "$LURK_T/caps2.txt" 2>&1
lurk_grep "cdn2 Capabilities list exactly its keys" 'keys ed25519 p384$' "$LURK_T/caps2.txt"
as edge "$URL1" sign p256 > "$LURK_T/s1.txt" 2>&1
lurk_grep "cdn1 signs with a granted key" '^sign: ok$' "$LURK_T/s1.txt"
as edge "$URL1" sign ed25519 > "$LURK_T/s2.txt" 2>&1
lurk_grep "cdn1 is refused another group's key: not permitted" \
    '^sign: not permitted key "ed25519" is not granted' "$LURK_T/s2.txt"
as edge "$URL1" sign no-such-key > "$LURK_T/s3.txt" 2>&1
lurk_grep "an unknown key id looks the same as an ungranted one" '^sign: not permitted' "$LURK_T/s3.txt"
lurk_grep "the refusal is logged, naming the edge's certificate" \
    'refused sign key "ed25519" from edge1\.example/spki:[0-9a-f]{16} at 127\.0\.0\.1:[0-9]+ \[cdn1\]: not permitted' "$LURK_T/ks.log"

# --- connection-time refusals ---------------------------------------------------
lurk_check_fails "an edge of the cdn1 CA cannot connect to cdn2's listener" \
    as edge "$URL2" caps
lurk_check_fails "an edge of another CA cannot connect to cdn1's listener" \
    as rogue-edge "$URL1" caps
lurk_check_fails "an expired edge certificate is refused" as expired-edge "$URL1" caps
lurk_check_fails "a revoked edge certificate (CRL) is refused" as revoked-edge "$URL1" caps
lurk_check "control: a good certificate of the same CA connects" as good-edge "$URL1" caps

# --- replay window ----------------------------------------------------------------
as edge "$URL1" replay p256 > "$LURK_T/replay.txt" 2>&1
lurk_grep "replay: the first signature is issued" '^first: ok$' "$LURK_T/replay.txt"
lurk_grep "replay: a retry (same request id and bytes) is answered again" '^retry: ok$' \
    "$LURK_T/replay.txt"
lurk_grep "replay: the same context in another request is refused" \
    '^replay: not permitted replay: these TLS handshake bytes were already signed' "$LURK_T/replay.txt"
lurk_grep "replay: the retry is logged as such" 'retry of request [0-9a-f]+ .*answered again' "$LURK_T/ks.log"

# --- rate limits -------------------------------------------------------------------
# Only what does not depend on how fast the machine is: a bucket that starts
# full lets at least its burst through, a flood much longer than the burst
# meets refusals, and the refusals are logged once. How many pass in a given
# time is the bucket's arithmetic, unit-tested with a known clock
# (tests/unit/test_ks_limits.c). 40 requests: refused ones only while the
# flood lasts under (40 - 5) / 5 = 7 s.
as edge "$URL3" flood p256 40 > "$LURK_T/flood1.txt" 2>&1
lurk_log "$(cat "$LURK_T/flood1.txt")"
ok=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' "$LURK_T/flood1.txt")
over=$(sed -n 's/.*overloaded=\([0-9]*\).*/\1/p' "$LURK_T/flood1.txt")
lurk_check "group rate 5/s burst 5: at least the burst of 40 passes (got ${ok:-?})" \
    test "${ok:-0}" -ge 5
lurk_check "group rate: some are refused as overloaded (got ${over:-?})" test "${over:-0}" -ge 1
lurk_check "group rate: every other one is overloaded (${ok:-?} + ${over:-?} = 40)" \
    test "$(( ${ok:-0} + ${over:-0} ))" -eq 40
n=$(lurk_log_count "$LURK_T/ks.log" 'edge group cdn3 over its rate limit')
lurk_check "group rate: logged once per interval, not per request (got $n lines)" test "$n" -eq 1
as rogue-edge "$URL2" flood p384 30 > "$LURK_T/flood2.txt" 2>&1
lurk_log "$(cat "$LURK_T/flood2.txt")"
over2=$(sed -n 's/.*overloaded=\([0-9]*\).*/\1/p' "$LURK_T/flood2.txt")
ok2=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' "$LURK_T/flood2.txt")
lurk_check "key rate 3/s burst 3: at least the burst of 30 passes (got ${ok2:-?})" \
    test "${ok2:-0}" -ge 3
lurk_check "key rate: some are refused as overloaded (got ${over2:-?})" test "${over2:-0}" -ge 1
lurk_check "key rate: every other one is overloaded (${ok2:-?} + ${over2:-?} = 30)" \
    test "$(( ${ok2:-0} + ${over2:-0} ))" -eq 30
lurk_grep "key rate: logged" 'key "p384" over its rate limit' "$LURK_T/ks.log"

# --- audit log ---------------------------------------------------------------------------
lurk_grep "audit: a line per operation with group, peer, key, scheme, result, latency, edge" \
    '^ts=[0-9T:.-]+Z group=cdn1 peer=127\.0\.0\.1:[0-9]+ conn=[0-9]+ id=[0-9a-f]{16} op=sign key=p256 scheme=ecdsa_secp256r1_sha256 result=OK latency_us=[0-9]+ epoch=[0-9a-f]{16} edge=edge1\.example/spki:[0-9a-f]{16}$' \
    "$LURK_T/audit.log"
lurk_grep "audit: refusals carry the reason" 'group=cdn1 .* op=sign key=ed25519 .*result=NOT_PERMITTED .*reason=not_permitted' "$LURK_T/audit.log"
lurk_grep "audit: replays carry the reason" 'result=NOT_PERMITTED .*reason=replay' "$LURK_T/audit.log"
lurk_grep "audit: rate refusals too" 'result=OVERLOADED .*reason=rate_group' "$LURK_T/audit.log"
lurk_check_fails "audit: no key material" grep -q 'PRIVATE KEY' "$LURK_T/audit.log"

# --- metrics ---------------------------------------------------------------------------
scrape() { curl -sf "http://127.0.0.1:$MPORT/metrics" > "$1"; }
metric() { # FILE REGEX: the value of the first matching line
    grep -E "$2" "$1" | head -n 1 | awk '{print $NF}'
}
lurk_check "metrics: /metrics answers over HTTP" scrape "$LURK_T/m1.txt"
FLOOD_OK='^lurk_keyserver_requests_total\{op="sign",key="p256",group="cdn3",result="OK"\}'
flood_ok=$(metric "$LURK_T/m1.txt" "$FLOOD_OK")
lurk_check "metrics: sign OK counted by op, key, group and result (${flood_ok:-none}, the flood's ${ok:-?})" \
    test "${flood_ok:-0}" -eq "${ok:--1}"
# cdn2 and ed25519 have no rate limit: two more signatures pass, whenever.
SIGN_OK='^lurk_keyserver_requests_total\{op="sign",key="ed25519",group="cdn2",result="OK"\}'
before=$(metric "$LURK_T/m1.txt" "$SIGN_OK")
lurk_grep "metrics: refusals by reason" '^lurk_keyserver_refusals_total\{reason="rate_group"\} [0-9]+' "$LURK_T/m1.txt"
lurk_grep "metrics: not_permitted counted" '^lurk_keyserver_refusals_total\{reason="not_permitted"\} [1-9]' "$LURK_T/m1.txt"
lurk_grep "metrics: latency histogram" '^lurk_keyserver_request_duration_seconds_bucket\{op="sign",le="\+Inf"\} [0-9]+' "$LURK_T/m1.txt"
lurk_grep "metrics: in-flight gauge" '^lurk_keyserver_in_flight [0-9]+' "$LURK_T/m1.txt"
lurk_grep "metrics: key count" '^lurk_keyserver_keys 4$' "$LURK_T/m1.txt"
lurk_grep "metrics: configuration epoch" '^lurk_keyserver_config_info\{epoch="[0-9a-f]{16}"\} 1' "$LURK_T/m1.txt"
lurk_grep "metrics: connections by group" '^lurk_keyserver_connections\{group="cdn2"\}' "$LURK_T/m1.txt"
lurk_check_fails "metrics: an unknown key id never becomes a label" grep -q 'no-such-key' "$LURK_T/m1.txt"
as rogue-edge "$URL2" sign ed25519 > /dev/null 2>&1
as rogue-edge "$URL2" sign ed25519 > /dev/null 2>&1
scrape "$LURK_T/m2.txt"
after=$(metric "$LURK_T/m2.txt" "$SIGN_OK")
lurk_check "metrics: the counter moved by 2 (${before:-?} -> ${after:-?})" test "$(( ${after:-0} - ${before:-0} ))" -eq 2

alive=0; kill -0 "$LURK_KS_PID" 2>/dev/null && alive=1
lurk_check "the key server is still running" test "$alive" -eq 1
# A CRL past its nextUpdate locks a whole group out: say so at start.
openssl ca -gencrl -config "$P/mini/ca.cnf" -cert "$P/ca.crt" -keyfile "$P/ca.key" -crlsec 1 \
    -out "$P/stale.crl" > "$LURK_T/ca-stale.log" 2>&1
# Until the clock is past that CRL's nextUpdate (the scenario is time).
next_update=$(date -d "$(openssl crl -in "$P/stale.crl" -noout -nextupdate | cut -d= -f2)" +%s)
for _ in $(seq 50); do [ "$(date +%s)" -gt "$next_update" ] && break; sleep 0.1; done
sed "s|^client_crl = .*edges.crl|client_crl = $P/stale.crl|" "$LURK_T/ks.cnf" > "$LURK_T/stale.cnf"
"$LURK_KEYSERVER" -c "$LURK_T/stale.cnf" --check > "$LURK_T/stale.log" 2>&1
lurk_grep "a CRL past its nextUpdate is named at start" 'stale\.crl is past its nextUpdate' \
    "$LURK_T/stale.log"
lurk_done
