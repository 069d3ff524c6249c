#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Security regressions over real connections: what a hostile or
# broken edge can send the key server, and what it gets back.
#
#  1. Who may talk: an edge certificate from another CA, an expired one, one
#     not yet valid, none at all, and plain SP over TCP to a TLS listener are
#     refused; a cleartext tcp:// listener only starts with allow_insecure.
#  2. Hostile bytes (lurk-rawclient): malformed, truncated, oversized,
#     unknown-version and unknown-operation messages, absurd field sizes:
#     each gets its clear refusal, and after each a normal edge still pings.
#     A bystander edge pings all along and must never fail.
#  3. The oracle catalogue: arbitrary data, a TLS 1.3 client
#     CertificateVerify context, TLS 1.2 contexts with trailing bytes or an
#     invalid point, precomputed digests, mismatched schemes, RSA decryption
#     of anything but a TLS premaster and of wrong-length ciphertexts: every
#     one refused with the expected status and no signature or plaintext;
#     next to positive controls whose signatures verify.
#  4. Resources: 800 idle TCP connections and 200 stalled TLS handshakes
#     held open, three times; thousands of malformed requests: the key
#     server's RSS (from /proc) stays bounded and it keeps answering.
#  5. The edge's exit: processes that used a lurk key exit cleanly.
. "$(dirname "$0")/lib.sh"

RAW=$LURK_TOOLS_DIR/lurk-rawclient
P=$LURK_T/pki
# Section 4 holds 1200 connections: give the key server the descriptors a
# service manager would (dist/lurk-keyserver.service: LimitNOFILE=65536).
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
lurk_pki

# --- edge certificates: expired, not yet valid (openssl ca sets the dates) ---
lurk_mini_ca
lurk_mini_cert expired-edge -startdate 20200101000000Z -enddate 20200102000000Z
lurk_mini_cert future-edge -startdate 20990101000000Z -enddate 20991231000000Z
lurk_check "the expired edge certificate chains to the edge CA (time aside)" \
    openssl verify -no_check_time -CAfile "$P/ca.crt" "$P/expired-edge.crt"
lurk_check_fails "the expired edge certificate is expired" \
    openssl x509 -in "$P/expired-edge.crt" -noout -checkend 0
lurk_check "the not-yet-valid edge certificate chains to the edge CA (time aside)" \
    openssl verify -no_check_time -CAfile "$P/ca.crt" "$P/future-edge.crt"

KS_PORT=$(lurk_port)
URL="tls+tcp://127.0.0.1:$KS_PORT"
lurk_keyserver_conf "$LURK_T/ks.cnf" "$URL"
lurk_keyserver_start ks "$LURK_T/ks.cnf" || { lurk_fail "key server starts"; lurk_done; }
KS=$LURK_KS_PID
TLS=(--server "$URL" --ca "$P/ca.crt" --server-name localhost)
EDGE=(--cert "$P/edge.crt" --key "$P/edge.key")
R=("$RAW" "${TLS[@]}" "${EDGE[@]}" --timeout-ms 3000)

ping_ok() { "$LURK_CTL" "${TLS[@]}" "${EDGE[@]}" --timeout-ms 3000 ping > /dev/null 2>&1; }
# The bystander's ping: 10 s, since under a sanitizer and the floods below a
# TLS handshake on a loaded 2-core machine can take seconds; what must never
# happen is a refusal or a lost connection. Each failure's reason is kept.
bystander_ping() {
    "$LURK_CTL" "${TLS[@]}" "${EDGE[@]}" --timeout-ms 10000 ping > /dev/null \
        2>> "$LURK_T/bystander.err"
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$KS/status"; }
# ks_conns: TCP connections the key server has not closed yet on its side
# (established or close-wait on its port, from /proc/net/tcp).
ks_conns() {
    awk -v p="$(printf ':%04X' "$KS_PORT")" \
        '$2 ~ p "$" && ($4 == "01" || $4 == "08") { n++ } END { print n + 0 }' /proc/net/tcp
}

lurk_check "a normal edge pings" ping_ok

# A bystander edge: one lurkctl ping every 0.2 s through everything below.
bystander() {
    local ok=0 bad=0
    while [ ! -e "$LURK_T/bystander.stop" ]; do
        if bystander_ping; then ok=$((ok + 1)); else bad=$((bad + 1)); fi
        sleep 0.2 # the pace of the bystander's pings, not a wait
    done
    echo "$ok $bad" > "$LURK_T/bystander.result"
}
bystander &
BYSTANDER=$!

# --- 1. who may talk ----------------------------------------------------------

# refused NAME RAWCLIENT-ARGS...: no answer within the timeout, the key
# server logs no connected edge for it, and a normal edge still pings.
refused() {
    local name=$1 out=$LURK_T/refused-$1.log; shift
    "$RAW" "${TLS[@]}" --timeout-ms 1500 "$@" ping > "$out" 2>&1
    lurk_check "$name: refused (no answer)" grep -q '^no-answer' "$out"
    lurk_check "$name: a normal edge still pings" ping_ok
}
refused "edge certificate from another CA" --cert "$P/rogue-edge.crt" --key "$P/rogue-edge.key"
refused "expired edge certificate" --cert "$P/expired-edge.crt" --key "$P/expired-edge.key"
refused "edge certificate not yet valid" --cert "$P/future-edge.crt" --key "$P/future-edge.key"
refused "edge without a certificate"
out=$LURK_T/refused-cleartext-sp.log
"$RAW" --server "tcp://127.0.0.1:$KS_PORT" --allow-insecure --timeout-ms 1500 ping > "$out" 2>&1
lurk_check "cleartext SP to the TLS listener: no answer" grep -q '^no-answer' "$out"
"$RAW" --server "tcp://127.0.0.1:$KS_PORT" ping > "$LURK_T/client-tcp.log" 2>&1
lurk_check "the edge side refuses a tcp:// URL unless told it is insecure (exit 2)" test $? -eq 2
lurk_grep "naming allow_insecure" 'allow_insecure' "$LURK_T/client-tcp.log"

# A cleartext listener: refused at start unless allow_insecure = yes.
TCP_PORT=$(lurk_port)
{
    echo "[keyserver]"
    echo "listen = tcp://127.0.0.1:$TCP_PORT"
    sed -n '/^\[keys\]/,$p' "$LURK_T/ks.cnf"
} > "$LURK_T/tcp.cnf"
timeout 10 "$LURK_KEYSERVER" -c "$LURK_T/tcp.cnf" > "$LURK_T/tcp.log" 2>&1
lurk_check "tcp:// listener without allow_insecure: the key server exits 1" test $? -eq 1
lurk_grep "the refusal names allow_insecure" 'allow_insecure' "$LURK_T/tcp.log"
sed 's|^listen = .*|&\nallow_insecure = yes|' "$LURK_T/tcp.cnf" > "$LURK_T/tcp-insecure.cnf"
lurk_keyserver_start tcp-insecure "$LURK_T/tcp-insecure.cnf" \
    || lurk_fail "tcp:// listener with allow_insecure = yes starts"
TCP_KS=$LURK_KS_PID
lurk_grep "it warns that the listener has no TLS" 'without TLS' "$LURK_T/tcp-insecure.log"
"$RAW" --server "tcp://127.0.0.1:$TCP_PORT" --allow-insecure ping > "$LURK_T/tcp-ping.log" 2>&1
lurk_grep "and answers over cleartext only because it was told to" '^status=0 ok' \
    "$LURK_T/tcp-ping.log"
lurk_stop "$TCP_KS"

# --- 2. hostile bytes -----------------------------------------------------------

# hostile CASE EXPECT-REGEX: lurk-rawclient's built-in case gets the expected
# answer, no result, and the key server is still there for a normal edge.
hostile() {
    local c=$1 expect=$2 out=$LURK_T/hostile-$1.log
    "${R[@]}" case "$c" > "$out" 2>&1
    lurk_grep "hostile $c: $expect" "$expect" "$out"
    lurk_check_fails "hostile $c: no result in the answer" grep -q 'result=\(signature\|premaster\)' "$out"
    lurk_check "hostile $c: the key server is up and a normal edge pings" \
        sh -c 'kill -0 "$0" && "$@" > /dev/null' "$KS" "$LURK_CTL" "${TLS[@]}" "${EDGE[@]}" \
        --timeout-ms 3000 ping
}
hostile garbage '^status=5 malformed request id=none result=none detail="undecodable protobuf"'
hostile truncated '^status=5 malformed request .*undecodable'
hostile wrong-wire-type '^status=5 malformed request .*undecodable'
hostile length-overflow '^status=5 malformed request .*undecodable'
hostile empty '^status=8 unsupported protocol version'
hostile version-2 '^status=8 unsupported protocol version id=echoed'
hostile no-operation '^status=5 malformed request id=echoed .*no or unknown operation'
hostile unknown-operation '^status=5 malformed request id=echoed .*no or unknown operation'
hostile key-id-65 '^status=5 malformed request id=echoed .*bad key id'
hostile key-id-path '^status=5 malformed request id=echoed .*bad key id'
hostile tbs-4097 '^status=5 malformed request id=echoed .*over the size limit'
hostile ping-65 '^status=5 malformed request id=echoed .*over 64 bytes'
hostile ciphertext-1025 '^status=5 malformed request id=echoed .*over the size limit'
hostile scheme-32-bits '^status=5 malformed request id=echoed .*16-bit'
hostile client-version-17-bits '^status=5 malformed request id=echoed .*16 bits'
hostile message-max '^status=0 ok id=echoed result=ping:8'
# Over the limit: refused unread. Just over it (within nng's allowance for
# its own header) with a reason; far over it nng drops the connection.
hostile message-max+1 '^(status=5 malformed request .*size limit|no-answer)'
hostile message-1mib '^no-answer'
hostile unknown-fields-20000 '^status=0 ok id=echoed result=ping:8'

# --- 3. the oracle catalogue ------------------------------------------------------

hex() { od -An -tx1 -v | tr -d ' \n'; }
unhex() { /usr/bin/python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$1"; }
rnd() { head -c "$1" /dev/urandom | hex; }
spaces=$(printf '%064d' 0 | tr 0 ' ' | od -An -tx1 -v | tr -d ' \n')
srv13=$(printf 'TLS 1.3, server CertificateVerify\0' | hex)
cli13=$(printf 'TLS 1.3, client CertificateVerify\0' | hex)
# An ECDHE P-256 share that is on the curve: the public key of a fresh key.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null \
    | openssl pkey -pubout -outform DER 2>/dev/null | tail -c 65 > "$LURK_T/p256-share.bin"
share=$(hex < "$LURK_T/p256-share.bin")
bad_share=${share:0:128}$(printf '%02x' $(( 0x${share:128:2} ^ 1 )))
ske() { echo "$(rnd 64)03001741$1"; } # randoms || named_curve P-256 || 65-byte point
for k in rsa p256 p384 ed25519; do
    openssl pkey -in "$LURK_T/keys/$k.pem" -pubout -out "$LURK_T/$k.pub" 2>/dev/null
done

# oracle NAME KEY SCHEME HEX EXPECT-REGEX
oracle() {
    local name=$1 key=$2 scheme=$3 tbs=$4 expect=$5 out=$LURK_T/oracle-$1.log
    rm -f "$LURK_T/oracle-$name.sig"
    "${R[@]}" --out "$LURK_T/oracle-$name.sig" sign "$key" "$scheme" "$tbs" > "$out" 2>&1
    lurk_grep "oracle: $name: $expect" "$expect" "$out"
    lurk_grep "oracle: $name: no signature in the answer" 'result=none' "$out"
    lurk_check_fails "oracle: $name: nothing written" test -s "$LURK_T/oracle-$name.sig"
}
NOT_CTX='^status=3 not a TLS handshake context'
SCHEME='^status=4 unsupported signature scheme'
oracle arbitrary-100 rsa rsa_pkcs1_sha256 "$(rnd 100)" "$NOT_CTX"
oracle arbitrary-1000 p256 ecdsa_secp256r1_sha256 "$(rnd 1000)" "$NOT_CTX"
oracle tls13-client-context rsa rsa_pss_rsae_sha256 "$spaces$cli13$(rnd 32)" \
    "$NOT_CTX.*client CertificateVerify"
oracle tls13-hash-20 p256 ecdsa_secp256r1_sha256 "$spaces$srv13$(rnd 20)" "$NOT_CTX"
oracle tls13-trailing rsa rsa_pss_rsae_sha256 "$spaces$srv13$(rnd 33)" "$NOT_CTX"
oracle tls12-trailing rsa rsa_pkcs1_sha256 "$(ske "$share")00" "$NOT_CTX.*trailing bytes"
oracle tls12-invalid-point rsa rsa_pkcs1_sha256 "$(ske "$bad_share")" "$NOT_CTX.*not on curve"
oracle tls12-truncated-point p256 ecdsa_secp256r1_sha256 "$(ske "${share:0:120}")" "$NOT_CTX"
oracle tls12-x25519-zero rsa rsa_pss_rsae_sha256 "$(rnd 64)03001d20$(printf '%064d' 0)" \
    "$NOT_CTX.*all-zero"
oracle digest-sha256 rsa rsa_pkcs1_sha256 "$(rnd 32)" "$NOT_CTX"
oracle digest-sha384 p384 ecdsa_secp384r1_sha384 "$(rnd 48)" "$NOT_CTX"
oracle digest-sha512 rsa rsa_pss_rsae_sha512 "$(rnd 64)" "$NOT_CTX"
# A PKCS#1 DigestInfo (SHA-256) around a digest: what a raw RSA signer would take.
oracle digestinfo rsa rsa_pkcs1_sha256 "3031300d060960864801650304020105000420$(rnd 32)" "$NOT_CTX"
oracle tls13-pkcs1 rsa rsa_pkcs1_sha256 "$spaces$srv13$(rnd 32)" "$SCHEME.*PKCS#1"
oracle tls13-other-curve p256 ecdsa_secp384r1_sha384 "$spaces$srv13$(rnd 48)" "$SCHEME.*curve"
oracle ed25519-with-ecdsa ed25519 ecdsa_secp256r1_sha256 "$spaces$srv13$(rnd 32)" "$SCHEME"
oracle rsa-with-ed25519 rsa ed25519 "$spaces$srv13$(rnd 32)" "$SCHEME"
oracle unknown-key nope rsa_pss_rsae_sha256 "$spaces$srv13$(rnd 32)" '^status=1 unknown key'

# Positive controls: the same connection signs real contexts, and the
# signatures verify with the public keys: the refusals above are the
# policy's, not a broken setup's.
unhex "$spaces$srv13$(rnd 32)" > "$LURK_T/control13.tbs"
"${R[@]}" --out "$LURK_T/control13.sig" sign rsa rsa_pss_rsae_sha256 "@$LURK_T/control13.tbs" \
    > "$LURK_T/control13.log" 2>&1
lurk_grep "control: TLS 1.3 server context is signed" '^status=0 ok .*result=signature:256' \
    "$LURK_T/control13.log"
lurk_check "control: the RSA-PSS signature verifies" openssl dgst -sha256 -sigopt rsa_padding_mode:pss \
    -sigopt rsa_pss_saltlen:digest -verify "$LURK_T/rsa.pub" -signature "$LURK_T/control13.sig" \
    "$LURK_T/control13.tbs"
unhex "$(ske "$share")" > "$LURK_T/control12.tbs"
"${R[@]}" --out "$LURK_T/control12.sig" sign p256 ecdsa_secp256r1_sha256 "@$LURK_T/control12.tbs" \
    > "$LURK_T/control12.log" 2>&1
lurk_grep "control: TLS 1.2 ECDHE context is signed" '^status=0 ok .*result=signature' \
    "$LURK_T/control12.log"
lurk_check "control: the ECDSA signature verifies" openssl dgst -sha256 -verify "$LURK_T/p256.pub" \
    -signature "$LURK_T/control12.sig" "$LURK_T/control12.tbs"

# RSA decryption: only ever a TLS premaster (48 bytes), never a plaintext.
# decrypt NAME KEY FILE [VERSION] -> the answer in $LURK_T/decrypt-NAME.log
decrypt() {
    "${R[@]}" decrypt "$2" "@$3" ${4:+"$4"} > "$LURK_T/decrypt-$1.log" 2>&1
}
premaster_of() { sed -n 's/.* premaster=\([0-9a-f]*\).*/\1/p' "$LURK_T/decrypt-$1.log"; }
head -c 255 /dev/urandom > "$LURK_T/ct-255.bin"
head -c 257 /dev/urandom > "$LURK_T/ct-257.bin"
head -c 256 /dev/zero | tr '\0' '\377' > "$LURK_T/ct-ff.bin"
{ printf '\0'; head -c 255 /dev/urandom; } > "$LURK_T/ct-garbage.bin"
for c in 255 257; do
    decrypt "len-$c" rsa "$LURK_T/ct-$c.bin"
    lurk_grep "decrypt: a $c-byte ciphertext (modulus 256) is refused" \
        '^status=5 malformed request .*result=none.*modulus length' "$LURK_T/decrypt-len-$c.log"
done
decrypt out-of-range rsa "$LURK_T/ct-ff.bin"
lurk_grep "decrypt: a ciphertext above the modulus is refused" \
    '^status=5 malformed request .*result=none.*out of range' "$LURK_T/decrypt-out-of-range.log"
decrypt ec-key p256 "$LURK_T/ct-garbage.bin"
lurk_grep "decrypt: with an EC key is refused" '^status=4 .*result=none' "$LURK_T/decrypt-ec-key.log"

# A real TLS premaster (version 0x0303) decrypts to itself: the control.
{ printf '\003\003'; head -c 46 /dev/urandom; } > "$LURK_T/pms.bin"
openssl pkeyutl -encrypt -pubin -inkey "$LURK_T/rsa.pub" -pkeyopt rsa_padding_mode:pkcs1 \
    -in "$LURK_T/pms.bin" -out "$LURK_T/ct-pms.bin"
decrypt control rsa "$LURK_T/ct-pms.bin" 0x0303
lurk_check "control: a TLS premaster decrypts to itself" \
    test "$(premaster_of control)" = "$(hex < "$LURK_T/pms.bin")"
# Anything else gives 48 bytes that are not the plaintext.
decrypt wrong-version rsa "$LURK_T/ct-pms.bin" 0x0302
lurk_grep "decrypt: wrong client version: 48 bytes" 'result=premaster:48' "$LURK_T/decrypt-wrong-version.log"
lurk_check "decrypt: wrong client version: not the premaster" \
    test "$(premaster_of wrong-version)" != "$(hex < "$LURK_T/pms.bin")"
head -c 32 /dev/urandom > "$LURK_T/secret32.bin"
openssl pkeyutl -encrypt -pubin -inkey "$LURK_T/rsa.pub" -pkeyopt rsa_padding_mode:pkcs1 \
    -in "$LURK_T/secret32.bin" -out "$LURK_T/ct-pkcs1-32.bin"
head -c 48 /dev/urandom > "$LURK_T/secret48.bin"
openssl pkeyutl -encrypt -pubin -inkey "$LURK_T/rsa.pub" -pkeyopt rsa_padding_mode:oaep \
    -in "$LURK_T/secret48.bin" -out "$LURK_T/ct-oaep.bin"
{ printf '\0'; head -c 207 /dev/zero; printf '\003\003'; head -c 46 /dev/urandom; } > "$LURK_T/raw-m.bin"
openssl pkeyutl -encrypt -pubin -inkey "$LURK_T/rsa.pub" -pkeyopt rsa_padding_mode:none \
    -in "$LURK_T/raw-m.bin" -out "$LURK_T/ct-raw.bin"
for c in pkcs1-32:secret32 oaep:secret48 raw:raw-m; do
    name=${c%%:*} plain=${c#*:}
    decrypt "$name" rsa "$LURK_T/ct-$name.bin"
    lurk_grep "decrypt: $name ciphertext: 48 bytes, as for any TLS premaster" \
        '^status=0 ok .*result=premaster:48' "$LURK_T/decrypt-$name.log"
    lurk_check_fails "decrypt: $name ciphertext: the plaintext is nowhere in the answer" \
        grep -q "$(hex < "$LURK_T/$plain.bin" | tail -c 64)" "$LURK_T/decrypt-$name.log"
done
# Garbage twice (the same request id, a retry, then another id, a replay):
# random-looking bytes that differ each time, so nothing about the
# ciphertext shows; a replay is answered, never refused.
decrypt garbage-1 rsa "$LURK_T/ct-garbage.bin"
decrypt garbage-2 rsa "$LURK_T/ct-garbage.bin"
"${R[@]}" --id 0x5241570000000002 decrypt rsa "@$LURK_T/ct-garbage.bin" \
    > "$LURK_T/decrypt-garbage-3.log" 2>&1
g1=$(premaster_of garbage-1) g2=$(premaster_of garbage-2) g3=$(premaster_of garbage-3)
lurk_log "garbage ciphertext, three answers: ${g1:-none} / ${g2:-none} / ${g3:-none}"
lurk_check "decrypt: garbage ciphertext gives 48 bytes" test "${#g1}" -eq 96
lurk_check "decrypt: the same garbage again (a retry, then a replay) gives 48 other bytes" \
    sh -c '[ "${#1}" -eq 96 ] && [ "${#2}" -eq 96 ] && [ "$1" != "$0" ] && [ "$2" != "$0" ] \
        && [ "$2" != "$1" ]' "$g1" "$g2" "$g3"
distinct=$(echo "$g1" | fold -w2 | sort -u | wc -l)
lurk_check "decrypt: the 48 bytes look random ($distinct distinct byte values)" test "$distinct" -ge 20

# --- 4. resources -----------------------------------------------------------------

# hold N-IDLE N-STALLED SECONDS: open that many TCP connections (idle, or
# stalled in a TLS handshake after part of a ClientHello) and hold them.
hold() {
    /usr/bin/python3 - "$KS_PORT" "$1" "$2" "$3" "$LURK_T/hold.ready" {LURK_TAP}>&- <<'PY' &
import resource, socket, sys, time
port, idle, stalled, secs, ready = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, idle + stalled + 256), hard))
socks = []
for i in range(idle + stalled):
    s = socket.create_connection(("127.0.0.1", port))
    if i >= idle:
        s.sendall(bytes.fromhex("16030102000100") + b"\x01\xfc\x03\x03")
    socks.append(s)
open(ready, "w").write("%d\n" % len(socks))
time.sleep(secs)  # the scenario: hold them this long
PY
    HOLD_PID=$!
    LURK_PIDS+=("$HOLD_PID")
}
ping_ok
rss0=$(rss_kb)
rss_max=$rss0
fails_before=$LURK_FAIL
for round in 1 2 3; do
    rm -f "$LURK_T/hold.ready"
    start=$(date +%s%N)
    hold 800 200 2
    lurk_wait_log "$LURK_T/hold.ready" '^1000$' 60 || lurk_fail "round $round: 1000 connections opened"
    opened_ms=$(( ($(date +%s%N) - start) / 1000000 ))
    rss_held=$(rss_kb)
    ping_ok || lurk_fail "round $round: a normal edge pings while 1000 connections are held"
    wait "$HOLD_PID"
    # Measured once the key server has closed its side of all of them (a
    # bystander ping may be connected too).
    for _ in $(seq 300); do [ "$(ks_conns)" -le 2 ] && break; sleep 0.1; done
    lurk_check "round $round: the key server closes the 1000 connections (left: $(ks_conns))" \
        test "$(ks_conns)" -le 2
    rss_after=$(rss_kb)
    lurk_log "round $round: 800 idle + 200 stalled connections opened in $opened_ms ms; key server RSS ${rss0} kB at first, ${rss_held} kB while held, ${rss_after} kB after"
    [ "$round" = 1 ] && rss_held_1=$rss_held
    for v in $rss_held $rss_after; do [ "$v" -gt "$rss_max" ] && rss_max=$v; done
done
lurk_check "a normal edge pinged while each round's 1000 connections were held" \
    test "$LURK_FAIL" -eq "$fails_before"
# Malformed requests by the thousand, on one connection and on many.
rss_m0=$(rss_kb)
"${R[@]}" --repeat 3000 case garbage > "$LURK_T/flood.log" 2>&1
lurk_check "3000 malformed requests on one connection: 3000 refusals" \
    test "$(grep -c '^status=5 malformed' "$LURK_T/flood.log")" -eq 3000
for i in $(seq 100); do "${R[@]}" case unknown-fields-20000; done > "$LURK_T/flood2.log" 2>&1
lurk_check "100 connections with 20000 unknown fields each: all answered" \
    test "$(grep -c '^status=0 ok' "$LURK_T/flood2.log")" -eq 100
rss_m1=$(rss_kb)
lurk_log "malformed floods: RSS ${rss_m0} kB before, ${rss_m1} kB after"
lurk_check "the key server is still running" kill -0 "$KS"
if [ "${LURK_SANITIZE:-0}" = 1 ]; then
    lurk_skip "RSS bounds (a sanitized key server's memory is ASan's shadow and quarantine)"
else
    # About 40 KiB per pending connection (nng + mbed TLS buffers). glibc's
    # per-thread arenas keep some after each round, so later rounds settle
    # higher (a plateau, not a leak: with MALLOC_ARENA_MAX=1 it flattens
    # after a few rounds, and test_valgrind.sh finds nothing lost on this path).
    lurk_check "1000 held connections cost under 96 MiB (got +$(( (rss_held_1 - rss0) / 1024 )) MiB)" \
        test $((rss_held_1 - rss0)) -lt $((96 * 1024))
    lurk_check "3 rounds: RSS stays under first + 192 MiB (peak +$(( (rss_max - rss0) / 1024 )) MiB)" \
        test $((rss_max - rss0)) -lt $((192 * 1024))
    lurk_check "the malformed floods grow it by under 8 MiB" test $((rss_m1 - rss_m0)) -lt $((8 * 1024))
fi

# --- 5. the edge's exit ---------------------------------------------------------

# A process that used the key server exits: OpenSSL unloads the provider at
# exit while nng's threads (keepalive timers, the reconnecting dialer) still
# run, so lurk.so and libnng must stay mapped (found by the ASan run: a few
# percent of such exits died with SIGSEGV). Refused signatures (raw data)
# are enough to start nng; exit status 1 is the refusal, anything above a crash.
lurk_openssl_cnf "$LURK_T/openssl.cnf" "$URL"
crashes=0
for i in $(seq 40); do
    OPENSSL_CONF=$LURK_T/openssl.cnf timeout 20 openssl pkeyutl -sign -inkey lurk://p256 -rawin \
        -digest sha256 -in "$LURK_T/p256.pub" -out /dev/null > "$LURK_T/exit.log" 2>&1
    rc=$?
    [ "$rc" -gt 1 ] && { crashes=$((crashes + 1)); lurk_log "exit $i: status $rc"; }
done
lurk_check "40 openssl processes that used the key server all exit without a crash (got $crashes)" \
    test "$crashes" -eq 0

touch "$LURK_T/bystander.stop"
wait "$BYSTANDER"
read -r by_ok by_bad < "$LURK_T/bystander.result"
lurk_log "bystander edge: $by_ok pings answered, $by_bad failed"
[ "$by_bad" -eq 0 ] || sed 's/^/# bystander: /' "$LURK_T/bystander.err"
lurk_check "the bystander edge never failed (got $by_bad failures)" test "$by_bad" -eq 0
lurk_check "the bystander pinged throughout" test "$by_ok" -ge 10
lurk_check_fails "the key server never logged key material" grep -q 'PRIVATE KEY' "$LURK_T/ks.log"
lurk_done
