#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Asynchronous offload: an edge that runs its handshakes inside OpenSSL ASYNC
# jobs never blocks on the key server.
#
# With a key server that delays every signature by 200 ms:
#  * HAProxy with ONE thread and `ssl-mode-async` puts (nearly) all of 20
#    concurrent handshakes in flight at the key server at once, and all 20
#    complete;
#  * the same HAProxy without `ssl-mode-async` blocks its only thread for
#    each signature: never more than 1 request in flight;
#  * `openssl s_server -async`, which resumes its jobs in a busy loop before
#    the wait fd fires, completes handshakes correctly.
#
# Everything here counts (requests in flight, handshakes done, signatures
# made); nothing is timed, so a loaded machine cannot fail it by slowness.
. "$(dirname "$0")/lib.sh"

HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
N=20          # concurrent handshakes
DELAY_MS=200  # key server delay per signature
# Lower bound on the peak in flight in async mode. All N ClientHellos leave
# one curl process within a few milliseconds (curl --parallel-immediate), and
# HAProxy needs well under a millisecond of CPU per ClientHello to reach the
# signature, so on an idle machine the peak is N. Each request stays in
# flight for DELAY_MS: the peak falls below N only if the ClientHellos are
# spread over more than DELAY_MS, e.g. when HAProxy or curl is descheduled on
# a loaded 2-core machine. 15 tolerates a quarter of them missing the window
# while staying far above what blocking mode can ever reach (1): a provider
# that blocks, or pauses only every other job, fails it.
MIN_PEAK=15

lurk_pki
KS_PORT=$(lurk_port)
lurk_keyserver_conf "$LURK_T/ks.cnf" "tls+tcp://127.0.0.1:$KS_PORT" "workers = 32"
lurk_openssl_cnf "$LURK_T/openssl.cnf" "tls+tcp://127.0.0.1:$KS_PORT" "timeout_ms = 20000"
lurk_check "reference files from the key server configuration" lurk_keyrefs "$LURK_T/ks.cnf"
export OPENSSL_CONF=$LURK_T/openssl.cnf
CA=$LURK_T/pki/web-ca.crt

# ks_run NAME: start a key server delaying every signature by DELAY_MS.
ks_run() {
    lurk_keyserver_start "$1" "$LURK_T/ks.cnf" -v --debug-delay-ms "$DELAY_MS" || {
        lurk_fail "$1: key server starts"
        return 1
    }
    KS=$LURK_KS_PID
}

# ks_stop_stats NAME: stop it with SIGTERM and read its summary line
# "stopped: A requests answered, R refused, peak P of W workers busy"
# into ANSWERED, REFUSED and PEAK (-1 when the line is missing).
ks_stop_stats() {
    local log=$LURK_T/$1.log line
    ANSWERED=-1 REFUSED=-1 PEAK=-1
    lurk_stop "$KS"
    line=$(grep -E 'stopped: [0-9]+ requests answered, [0-9]+ refused, peak [0-9]+ of [0-9]+ workers busy' "$log" | tail -n 1)
    if [[ $line =~ stopped:\ ([0-9]+)\ requests\ answered,\ ([0-9]+)\ refused,\ peak\ ([0-9]+)\ of ]]; then
        ANSWERED=${BASH_REMATCH[1]} REFUSED=${BASH_REMATCH[2]} PEAK=${BASH_REMATCH[3]}
    fi
    lurk_log "$1: answered $ANSWERED, refused $REFUSED, peak in flight $PEAK"
}

# ---- HAProxy, one thread, async and blocking ---------------------------------

H=$LURK_T/haproxy
mkdir -p "$H"
cat "$LURK_T/pki/web-p256.crt" "$LURK_T/ref/p256.pem" > "$H/p256.bundle.pem"

# haproxy_cfg FILE PORT ASYNC-LINE
haproxy_cfg() {
    cat > "$1" <<CFG
global
    nbthread 1
    $3
    maxconn 200
    ssl-default-bind-options ssl-min-ver TLSv1.3
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$2 ssl crt $H/p256.bundle.pem
    http-request return status 200 content-type text/plain lf-string "lurk ok %[ssl_fc_protocol]\n"
CFG
}

# concurrent NAME PORT: N handshakes started together from one curl process,
# each on its own connection with no session reuse; the number of verified
# pages is in DONE.
concurrent() {
    local name=$1 port=$2 i args=()
    for i in $(seq "$N"); do
        args+=(-o "$H/$name.page.$i" "https://localhost:$port/$i")
    done
    env -u OPENSSL_CONF timeout 120 curl -sS -Z --parallel-immediate --parallel-max "$N" \
        --no-sessionid -H 'Connection: close' --cacert "$CA" --max-time 100 \
        -w '%{http_code} %{num_connects}\n' "${args[@]}" > "$H/$name.curl.log" 2>&1
    DONE=$(cat "$H/$name".page.* 2>/dev/null | grep -c '^lurk ok TLSv1.3$')
    lurk_log "$name: $DONE of $N pages, $(grep -c '^200 1$' "$H/$name.curl.log") new connections answered 200"
}

# haproxy_run NAME ASYNC-LINE: HAProxy against a fresh delaying key server.
haproxy_run() {
    local name=$1 port
    port=$(lurk_port)
    haproxy_cfg "$H/$name.cfg" "$port" "$2"
    ks_run "ks-$name" || return 1
    lurk_bg "$name" "$HAPROXY" -db -f "$H/$name.cfg"
    local hp=$LURK_BG_PID
    lurk_wait_port "$port" 15 || { lurk_fail "$name: haproxy listens"; return 1; }
    concurrent "$name" "$port"
    lurk_check "$name: all $N concurrent handshakes completed" test "$DONE" -eq "$N"
    lurk_check "$name: haproxy still runs" kill -0 "$hp"
    lurk_stop "$hp"
    ks_stop_stats "ks-$name"
    # One signature per TLS 1.3 handshake: every one was a full handshake.
    # (Counted from the key server's per-operation log, not from "answered",
    # which also counts the provider's keepalive Pings.)
    signed=$(grep -c 'signed .* with key' "$LURK_T/ks-$name.log")
    lurk_check "$name: the key server signed exactly $N times (got $signed)" \
        test "$signed" -eq "$N"
    lurk_check "$name: no refusal (got $REFUSED)" test "$REFUSED" -eq 0
}

if [ ! -x "$HAPROXY" ]; then
    lurk_skip "haproxy is not installed (scripts/setup-debian installs haproxy)"
else
    haproxy_run haproxy-async "ssl-mode-async"
    lurk_check "haproxy-async: peak in flight $PEAK >= $MIN_PEAK of $N" test "$PEAK" -ge "$MIN_PEAK"
    lurk_check_fails "haproxy-async: no blocking call in the provider's log" \
        grep -q 'cannot pause' "$LURK_T/haproxy-async.log"

    haproxy_run haproxy-blocking ""
    lurk_check "haproxy-blocking: peak in flight $PEAK is 1 (at most 1, and it signed)" \
        test "$PEAK" -eq 1

    # A fast key server: answers can arrive before the job pauses. HAProxy
    # would then find in the SSL's wait context a fd it was never told about
    # (no SSL_ERROR_WANT_ASYNC) and its fd_delete() at close aborted with
    # 'bug condition "fd_tgid(fd) != 1"', until the provider learnt to pause
    # once after registering a new wait fd. This is that regression test.
    if [ "${LURK_TEST_ASYNC_FAST:-1}" = 1 ]; then
        FAST_N=400
        port=$(lurk_port)
        haproxy_cfg "$H/fast.cfg" "$port" "ssl-mode-async"
        DELAY_MS=0 ks_run ks-fast
        lurk_bg haproxy-fast "$HAPROXY" -db -f "$H/fast.cfg"
        hp=$LURK_BG_PID
        if lurk_wait_port "$port" 15; then
            args=()
            for i in $(seq "$FAST_N"); do args+=(-o "$H/fast.page.$i" "https://localhost:$port/$i"); done
            env -u OPENSSL_CONF timeout 120 curl -sS -Z --parallel-immediate --parallel-max 8 \
                --no-sessionid -H 'Connection: close' --cacert "$CA" --max-time 60 \
                "${args[@]}" > "$H/fast.curl.log" 2>&1
            DONE=$(cat "$H"/fast.page.* 2>/dev/null | grep -c '^lurk ok TLSv1.3$')
            lurk_check "haproxy-fast: $FAST_N handshakes with an undelayed key server (got $DONE)" \
                test "$DONE" -eq "$FAST_N"
            lurk_check "haproxy-fast: haproxy survived" kill -0 "$hp"
        else
            lurk_fail "haproxy-fast: haproxy listens"
        fi
        lurk_stop "$hp"
        ks_stop_stats ks-fast
    else
        lurk_skip "haproxy-fast: turned off with LURK_TEST_ASYNC_FAST=0"
    fi
fi

# ---- openssl s_server -async ---------------------------------------------------

ks_run ks-s_server || lurk_done
declare -A PORT SPID
for k in rsa p256 ed25519; do
    PORT[$k]=$(lurk_port)
    # Without -www: s_server's plain loop retries SSL_accept at once while
    # the job waits (the busy resumes), and prints what the client sends.
    lurk_bg_stdin "s_server-$k" openssl s_server -async -accept "${PORT[$k]}" \
        -cert "$LURK_T/pki/web-$k.crt" -key "$LURK_T/ref/$k.pem"
    SPID[$k]=$LURK_BG_PID
done
PORT[www]=$(lurk_port)
# With -www: s_server sleeps 1 s after every WANT_ASYNC, but must still finish.
lurk_bg "s_server-www" openssl s_server -async -www -accept "${PORT[www]}" \
    -cert "$LURK_T/pki/web-rsa.crt" -key "$LURK_T/ref/rsa.pem"
SPID[www]=$LURK_BG_PID
for k in rsa p256 ed25519 www; do
    lurk_check "s_server -async ($k) listens" lurk_wait_port "${PORT[$k]}" 15
done

# s_async NAME KEY EXPECT s_client-args...: a full handshake with chain
# verification, then a line that the server must print.
s_async() {
    local name=$1 key=$2 expect=$3 out=$LURK_T/client-$1.log; shift 3
    echo "hello-$name" | env -u OPENSSL_CONF timeout 30 openssl s_client \
        -connect "127.0.0.1:${PORT[$key]}" -servername localhost -CAfile "$CA" \
        -verify_return_error "$@" > "$out" 2>&1
    lurk_grep "$name: chain verified" 'Verify return code: 0 \(ok\)' "$out"
    lurk_grep "$name: $expect" "$expect" "$out"
    lurk_wait_log "$LURK_T/s_server-$key.log" "hello-$name" 10
    lurk_grep "$name: the server received data" "hello-$name" "$LURK_T/s_server-$key.log"
}
s_async async-tls13-rsa rsa 'Peer signature type: RSA-PSS' -tls1_3
s_async async-tls13-p256 p256 'Peer signing digest: SHA256' -tls1_3
s_async async-tls13-ed25519 ed25519 'Peer signature type: [Ee][Dd]25519' -tls1_3
s_async async-tls12-ecdhe-rsa rsa 'Cipher is ECDHE-RSA-AES128-GCM-SHA256' -tls1_2 \
    -cipher ECDHE-RSA-AES128-GCM-SHA256
s_async async-tls12-rsa-kx rsa 'Cipher is AES128-GCM-SHA256' -tls1_2 -cipher AES128-GCM-SHA256
# The same job machinery again on the same server: no stale wait fd.
s_async async-tls13-rsa-again rsa 'Peer signature type: RSA-PSS' -tls1_3

out=$LURK_T/client-www.log
env -u OPENSSL_CONF timeout 30 curl -sS --tlsv1.3 --cacert "$CA" -o "$out" \
    "https://localhost:${PORT[www]}/" > "$LURK_T/client-www.err" 2>&1
lurk_grep "s_server -async -www: page served over TLS 1.3" 'Protocol *: *TLSv1.3' "$out"

alive=0
for k in rsa p256 ed25519 www; do
    kill -0 "${SPID[$k]}" 2>/dev/null && alive=$((alive + 1))
done
lurk_check "all 4 s_server -async are still running" test "$alive" -eq 4
ks_stop_stats ks-s_server
# 3 TLS 1.3 + 1 ECDHE + 1 again + 1 www signatures, 1 kRSA decryption.
ops=$(grep -cE 'signed .* with key|decrypted a premaster' "$LURK_T/ks-s_server.log")
lurk_check "the key server made 7 private-key operations (got $ops)" test "$ops" -eq 7
lurk_done
