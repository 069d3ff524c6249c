#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# An edge with two key servers keeps serving through the loss of either:
# nginx (2 workers) under a bounded client loop while one key server is
# killed (-9) and restarted, and the other is frozen (SIGSTOP) and thawed.
# Then both down: handshakes fail fast with a clear error, and service
# comes back by itself when a key server does. Prints the figures.
. "$(dirname "$0")/lib.sh"

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
    lurk_skip "nginx is not installed (scripts/setup-debian installs nginx-light)"
    lurk_done
fi

# Bounds this test asserts (stated here, printed with the measurements):
MAX_FAIL_PER_EVENT=2     # handshakes that may fail around one event
MAX_RECOVERY_MS=3000     # from an event to the next successful request
TIMEOUT_MS=2000          # the provider's per-operation deadline

lurk_pki
P1=$(lurk_port)
P2=$(lurk_port)
lurk_keyserver_conf "$LURK_T/ks1.cnf" "tls+tcp://127.0.0.1:$P1"
lurk_keyserver_conf "$LURK_T/ks2.cnf" "tls+tcp://127.0.0.1:$P2"
lurk_keyserver_start ks1 "$LURK_T/ks1.cnf" -v || lurk_fail "key server 1 starts"
KS1=$LURK_KS_PID
lurk_keyserver_start ks2 "$LURK_T/ks2.cnf" -v || lurk_fail "key server 2 starts"
KS2=$LURK_KS_PID
lurk_openssl_cnf "$LURK_T/openssl.cnf" "tls+tcp://localhost:$P1 tls+tcp://localhost:$P2" \
    "timeout_ms = $TIMEOUT_MS"
lurk_keyrefs "$LURK_T/ks1.cnf" || lurk_fail "reference files"
export OPENSSL_CONF=$LURK_T/openssl.cnf

N=$LURK_T/nginx
WEB=$(lurk_port)
mkdir -p "$N/tmp"
cat > "$N/nginx.conf" <<CONF
worker_processes 2;
user root;
pid $N/nginx.pid;
error_log $N/error.log info;
events {}
http {
    access_log off;
    client_body_temp_path $N/tmp;
    server {
        listen 127.0.0.1:$WEB ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate $LURK_T/pki/web-rsa.crt;
        ssl_certificate_key $LURK_T/ref/rsa.pem;
        keepalive_timeout 0;
        location / { return 200 "lurk ok\n"; }
    }
}
CONF
lurk_bg nginx "$NGINX" -p "$N" -c "$N/nginx.conf" -g 'daemon off;'
NGINX_PID=$LURK_BG_PID
lurk_wait_port "$WEB" 15 || lurk_fail "nginx listens"

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# One full handshake per request; "<end-ms> ok|fail" per line.
client_loop() {
    local i
    for i in $(seq 3000); do
        [ -e "$LURK_T/stop" ] && break
        if env -u OPENSSL_CONF curl -sf --max-time 5 --cacert "$LURK_T/pki/web-ca.crt" \
            -o /dev/null "https://localhost:$WEB/"; then
            echo "$(now_ms) ok"
        else
            echo "$(now_ms) fail"
        fi
    done > "$LURK_T/loop.log"
}

# event NAME: records the time; the loop's results are analysed per window.
declare -a EV_NAME EV_T
event() { EV_NAME+=("$1"); EV_T+=("$(now_ms)"); lurk_log "event: $1"; }

# served N: until the loop has N more successful handshakes than at the
# last event (each phase must have carried traffic before the next event).
OK_AT=0
served() {
    lurk_wait_log_count "$LURK_T/loop.log" ' ok$' $((OK_AT + $1)) 30 \
        || lurk_fail "$1 more successful handshakes after the last event (${#EV_NAME[@]} so far)"
    OK_AT=$(lurk_log_count "$LURK_T/loop.log" ' ok$')
}

client_loop &
LOOP=$!
served 5
event "kill -9 key server 1"
kill -9 "$KS1"
served 5
event "restart key server 1"
"$LURK_KEYSERVER" -c "$LURK_T/ks1.cnf" -v > "$LURK_T/ks1b.log" 2>&1 {LURK_TAP}>&- &
KS1=$!
LURK_PIDS+=("$KS1")
# Taken back: the restarted key server signs for the edge again.
lurk_wait_log "$LURK_T/ks1b.log" 'signed' 15 || lurk_fail "the restarted key server 1 is used"
served 5
event "SIGSTOP key server 2"
kill -STOP "$KS2"
served 5
KS2_SIGNED=$(lurk_log_count "$LURK_T/ks2.log" 'signed')
event "SIGCONT key server 2"
kill -CONT "$KS2"
# Taken back: key server 2 signs again (its held request, then new ones).
lurk_wait_log_count "$LURK_T/ks2.log" 'signed' $((KS2_SIGNED + 2)) 15 \
    || lurk_fail "key server 2 is used again after SIGCONT"
served 5
event "end"
touch "$LURK_T/stop"
wait "$LOOP"

total=$(wc -l < "$LURK_T/loop.log")
fails=$(grep -c fail "$LURK_T/loop.log")
lurk_log "client loop: $total handshakes, $fails failed"
lurk_check "the loop ran (>= 20 handshakes)" test "$total" -ge 20
# Both servers really carried traffic, and the restarted one was taken back.
lurk_grep "key server 2 signed while 1 was dead" 'signed' "$LURK_T/ks2.log"
lurk_grep "the restarted key server 1 signed again" 'signed' "$LURK_T/ks1b.log"
for i in 0 1 2 3; do
    from=${EV_T[$i]} to=${EV_T[$((i + 1))]}
    f=$(awk -v a="$from" -v b="$to" '$1 > a && $1 <= b && $2 == "fail"' "$LURK_T/loop.log" | wc -l)
    first_ok=$(awk -v a="$from" -v b="$to" '$1 > a && $1 <= b && $2 == "ok" { print $1; exit }' \
        "$LURK_T/loop.log")
    rec=$(( ${first_ok:-$to} - from ))
    lurk_log "${EV_NAME[$i]}: $f failed, first success after $rec ms"
    lurk_check "${EV_NAME[$i]}: at most $MAX_FAIL_PER_EVENT failed handshakes (got $f)" \
        test "$f" -le "$MAX_FAIL_PER_EVENT"
    lurk_check "${EV_NAME[$i]}: service within $MAX_RECOVERY_MS ms (got $rec)" \
        test -n "$first_ok" -a "$rec" -le "$MAX_RECOVERY_MS"
done

# Both key servers down: a handshake fails within the deadline, clearly.
kill -9 "$KS1" "$KS2"
wait "$KS1" "$KS2" 2> /dev/null # both gone (reaped) before the clock starts
t0=$(now_ms)
env -u OPENSSL_CONF curl -sf --max-time 10 --cacert "$LURK_T/pki/web-ca.crt" -o /dev/null \
    "https://localhost:$WEB/"
rc=$?
dt=$(( $(now_ms) - t0 ))
lurk_log "all key servers down: request failed after $dt ms (deadline $TIMEOUT_MS ms)"
lurk_check "all down: the handshake fails" test "$rc" -ne 0
lurk_check "all down: within the deadline + 1 s (got $dt ms)" test "$dt" -le $((TIMEOUT_MS + 1000))
lurk_grep "all down: nginx logs why" 'key server unreachable' "$N/error.log"

# One comes back: the edge recovers by itself.
"$LURK_KEYSERVER" -c "$LURK_T/ks2.cnf" > "$LURK_T/ks2b.log" 2>&1 {LURK_TAP}>&- &
LURK_PIDS+=("$!")
t0=$(now_ms)
ok=0
for _ in $(seq 40); do
    if env -u OPENSSL_CONF curl -sf --max-time 5 --cacert "$LURK_T/pki/web-ca.crt" -o /dev/null \
        "https://localhost:$WEB/"; then ok=1; break; fi
    sleep 0.25
done
dt=$(( $(now_ms) - t0 ))
lurk_log "recovery after a key server came back: $dt ms"
lurk_check "recovers by itself when a key server returns (in $dt ms)" test "$ok" = 1

lurk_check "nginx master survived" kill -0 "$NGINX_PID"
lurk_check_fails "no worker crashed" grep -Eq 'exited on signal|not fork-reentrant' "$N/error.log"
# A key server over its rate limit answers "overloaded": the edge tries the
# other one within the same deadline instead of failing the handshake.
P3=$(lurk_port)
P4=$(lurk_port)
lurk_keyserver_conf "$LURK_T/ks3.cnf" "tls+tcp://127.0.0.1:$P3" "rate = 1" "burst = 1"
lurk_keyserver_conf "$LURK_T/ks4.cnf" "tls+tcp://127.0.0.1:$P4"
lurk_keyserver_start ks3 "$LURK_T/ks3.cnf" -v || lurk_fail "rate-limited key server starts"
lurk_keyserver_start ks4 "$LURK_T/ks4.cnf" -v || lurk_fail "second key server starts"
lurk_openssl_cnf "$LURK_T/ovl.cnf" "tls+tcp://localhost:$P3 tls+tcp://localhost:$P4"
OVL=$(lurk_port)
OPENSSL_CONF=$LURK_T/ovl.cnf lurk_bg s_server-ovl openssl s_server -www -accept "$OVL" \
    -cert "$LURK_T/pki/web-rsa.crt" -key "$LURK_T/ref/rsa.pem"
lurk_wait_port "$OVL" 15 || lurk_fail "s_server starts"
ok=0
for _ in $(seq 12); do
    env -u OPENSSL_CONF curl -sf --max-time 5 --cacert "$LURK_T/pki/web-ca.crt" -o /dev/null \
        "https://localhost:$OVL/" && ok=$((ok + 1))
done
lurk_log "with one key server over its rate limit: $ok of 12 handshakes succeeded"
lurk_check "overloaded: every handshake succeeds on the other key server" test "$ok" -eq 12
lurk_grep "overloaded: the limited key server did refuse some" 'overloaded' "$LURK_T/ks3.log"
lurk_done
