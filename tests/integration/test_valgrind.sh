#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The key server under valgrind memcheck, through a whole working life:
# start-up (config, keys, TLS), ping and capabilities with lurkctl, TLS 1.3,
# TLS 1.2 ECDHE and TLS 1.2 RSA key exchange handshakes answered for an
# `openssl s_server` edge, refusals (not a TLS context, unknown key, an
# edge of another CA, hostile bytes, a wrong-length ciphertext), TCP
# connections that never finish their TLS handshake, then SIGTERM. Any memcheck error or any definitely lost block fails the test;
# valgrind.supp holds the few suppressions, each for third-party global
# state and justified there.
. "$(dirname "$0")/lib.sh"

if [ "${LURK_SANITIZE:-0}" = 1 ]; then
    lurk_skip "valgrind cannot run an ASan-instrumented key server (the non-sanitized build runs this test)"
    lurk_done
fi
if ! command -v valgrind > /dev/null; then
    lurk_skip "valgrind is not installed (scripts/setup-debian installs it)"
    lurk_done
fi

lurk_pki
KS_PORT=$(lurk_port)
URL="tls+tcp://127.0.0.1:$KS_PORT"
lurk_keyserver_conf "$LURK_T/ks.cnf" "$URL" "workers = 4"
VGLOG=$LURK_T/valgrind.log
# --errors-for-leak-kinds=definite: a definitely lost block counts as an
# error, so it sets the exit code as memory errors do.
valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --num-callers=40 --track-fds=no \
    --suppressions="$(dirname "$0")/valgrind.supp" --gen-suppressions=all --log-file="$VGLOG" \
    "$LURK_KEYSERVER" -c "$LURK_T/ks.cnf" > "$LURK_T/ks.log" 2>&1 {LURK_TAP}>&- &
KS=$!
LURK_PIDS+=("$KS")
lurk_wait_log "$LURK_T/ks.log" 'ready' 120 || { lurk_fail "the key server starts under valgrind"; lurk_done; }
lurk_pass "the key server starts under valgrind"

TLS=(--server "$URL" --ca "$LURK_T/pki/ca.crt" --server-name localhost --timeout-ms 20000)
EDGE=(--cert "$LURK_T/pki/edge.crt" --key "$LURK_T/pki/edge.key")
lurk_check "lurkctl ping" "$LURK_CTL" "${TLS[@]}" "${EDGE[@]}" ping
"$LURK_CTL" "${TLS[@]}" "${EDGE[@]}" capabilities > "$LURK_T/caps.log" 2>&1
lurk_grep "lurkctl capabilities" 'key rsa: RSA 2048' "$LURK_T/caps.log"
lurk_check "lurkctl pubkey" "$LURK_CTL" "${TLS[@]}" "${EDGE[@]}" -o "$LURK_T/p256.pub" pubkey p256

# An edge: openssl s_server with keys it never holds.
lurk_openssl_cnf "$LURK_T/openssl.cnf" "$URL" "timeout_ms = 20000" "attempt_timeout_ms = 20000"
declare -A PORT EDGE_PID
for k in rsa p256; do
    PORT[$k]=$(lurk_port)
    OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg "s_server-$k" openssl s_server -www \
        -accept "${PORT[$k]}" -cert "$LURK_T/pki/web-$k.crt" -key "lurk://$k"
    EDGE_PID[$k]=$LURK_BG_PID
done
for k in rsa p256; do lurk_wait_port "${PORT[$k]}" 60 || lurk_fail "s_server $k listens"; done
handshake() { # NAME KEY s_client-args...
    local name=$1 key=$2 out=$LURK_T/client-$1.log; shift 2
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 60 openssl s_client -connect "127.0.0.1:${PORT[$key]}" \
        -servername localhost -CAfile "$LURK_T/pki/web-ca.crt" -verify_return_error -ign_eof \
        "$@" > "$out" 2>&1
    lurk_grep "$name: handshake verified and page served" 'HTTP/1.0 200 ok' "$out"
}
handshake tls13-rsa-pss rsa -tls1_3
handshake tls13-ecdsa p256 -tls1_3
handshake tls12-ecdhe-rsa rsa -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256
handshake tls12-rsa-key-exchange rsa -tls1_2 -cipher AES128-GCM-SHA256

# Refusals take their own code paths: they must be as clean.
head -c 32 /dev/urandom > "$LURK_T/digest.bin"
OPENSSL_CONF=$LURK_T/openssl.cnf openssl pkeyutl -sign -inkey lurk://rsa -in "$LURK_T/digest.bin" \
    -out "$LURK_T/sig.bin" > "$LURK_T/pkeyutl.log" 2>&1
lurk_grep "signing a digest is refused" 'not a TLS handshake context' "$LURK_T/pkeyutl.log"
R=("$LURK_TOOLS_DIR/lurk-rawclient" "${TLS[@]}" "${EDGE[@]}")
"${R[@]}" sign nope rsa_pss_rsae_sha256 "$(printf '%0260d' 0)" > "$LURK_T/unknown.log" 2>&1
lurk_grep "an unknown key is refused" '^status=1 unknown key' "$LURK_T/unknown.log"
for c in garbage truncated version-2 unknown-operation tbs-4097 message-max+1 \
    unknown-fields-20000; do
    "${R[@]}" case "$c" > "$LURK_T/case-$c.log" 2>&1
    lurk_grep "hostile $c: answered" '^status=' "$LURK_T/case-$c.log"
done
head -c 255 /dev/urandom > "$LURK_T/ct255.bin"
"${R[@]}" decrypt rsa "@$LURK_T/ct255.bin" > "$LURK_T/ct255.log" 2>&1
lurk_grep "a wrong-length ciphertext is refused" '^status=5 .*modulus length' "$LURK_T/ct255.log"
{ printf '\0'; head -c 255 /dev/urandom; } > "$LURK_T/ct256.bin"
"${R[@]}" decrypt rsa "@$LURK_T/ct256.bin" > "$LURK_T/ct256.log" 2>&1
lurk_grep "a garbage ciphertext gives 48 random bytes" '^status=0 ok .*premaster:48' "$LURK_T/ct256.log"
"$LURK_TOOLS_DIR/lurk-rawclient" --server "$URL" --ca "$LURK_T/pki/ca.crt" --server-name localhost \
    --timeout-ms 5000 --cert "$LURK_T/pki/rogue-edge.crt" --key "$LURK_T/pki/rogue-edge.key" \
    ping > "$LURK_T/rogue.log" 2>&1
lurk_grep "an edge of another CA is refused" '^no-answer' "$LURK_T/rogue.log"
# Connections that never finish their TLS handshake: idle ones and ones
# stalled after part of a ClientHello; one batch closed by the peer, one
# still open when SIGTERM comes.
hold() { # IDLE STALLED SECONDS: opens them, writes their count to hold.ready, holds
    rm -f "$LURK_T/hold.ready"
    /usr/bin/python3 - "$KS_PORT" "$@" "$LURK_T/hold.ready" {LURK_TAP}>&- <<'PY' &
import socket, sys, time
port, idle, stalled, secs, ready = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
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
hold 40 10 3
lurk_wait_log "$LURK_T/hold.ready" '^50$' 60 || lurk_fail "50 connections opened"
wait "$HOLD_PID"
hold 20 5 300
lurk_wait_log "$LURK_T/hold.ready" '^25$' 60 || lurk_fail "25 connections opened"
# The key server accepts in order: once a ping made after them is answered,
# it holds all 25.
lurk_check "lurkctl ping after all that" "$LURK_CTL" "${TLS[@]}" "${EDGE[@]}" ping

# Stop the edges first (their connections close), then the key server.
for k in rsa p256; do lurk_stop "${EDGE_PID[$k]}"; done
kill -TERM "$KS"
lurk_wait_exit "$KS" 60
wait "$KS"
rc=$?
lurk_log "$(grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|possibly lost' "$VGLOG" | sed 's/^==[0-9]*== //' | tr '\n' ';')"
lurk_check "SIGTERM: the key server exits 0 under valgrind (got $rc; 99 = memcheck errors or leaks)" \
    test "$rc" -eq 0
lurk_grep "memcheck: no errors" 'ERROR SUMMARY: 0 errors' "$VGLOG"
lurk_check_fails "memcheck: nothing definitely lost" \
    grep -Eq 'definitely lost: [1-9]' "$VGLOG"
if [ "$LURK_FAIL" -gt 0 ]; then
    grep -E '^==[0-9]+== ' "$VGLOG" | grep -v '^==[0-9]*== *$' | head -n 120 | sed 's/^/#   /'
fi
lurk_done
