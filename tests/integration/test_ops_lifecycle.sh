#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Key server life cycle: in-flight limits refuse rather than
# queue; SIGUSR1/SIGHUP reopen the audit log; SIGHUP reloads atomically
# (in-flight requests finish on the old configuration, a broken one is
# rejected and the old stays, the epoch changes, listeners follow); SIGTERM
# drains and exits 0.
. "$(dirname "$0")/lib.sh"

OPS=${LURK_TOOLS_DIR}/lurk-ops-client
lurk_pki
P=$LURK_T/pki
PORT=$(lurk_port); PORT2=$(lurk_port); MPORT=$(lurk_port)
URL="tls+tcp://127.0.0.1:$PORT"; URL2="tls+tcp://127.0.0.1:$PORT2"

conf() { # FILE LISTEN [extra [keyserver] lines...]
    local f=$1 l=$2; shift 2
    lurk_keyserver_conf "$f" "$l" "audit_log = $LURK_T/audit.log" \
        "metrics_listen = http://127.0.0.1:$MPORT" "workers = 2" "max_inflight = 3" \
        "max_inflight_per_conn = 3" "$@"
}
conf "$LURK_T/ks.cnf" "$URL"
lurk_keyserver_start ks "$LURK_T/ks.cnf" --debug-delay-ms 1200 \
    || { lurk_fail "key server starts"; lurk_done; }
ops() { local u=$1; shift; timeout 30 "$OPS" --server "$u" --cert "$P/edge.crt" \
    --key "$P/edge.key" --ca "$P/ca.crt" --server-name localhost --timeout-ms 3000 "$@"; }
METRICS=http://127.0.0.1:$MPORT/metrics
# in_flight: until the key server has a request in flight (each takes 1.2 s:
# long enough that a poll of /metrics on a loaded machine sees it).
in_flight() { lurk_wait_metric "$METRICS" '^lurk_keyserver_in_flight [1-9]' 10; }
# hup_and_wait REGEX: SIGHUP, then until one more log line matches REGEX
# than before (earlier reloads wrote the same lines).
hup_and_wait() {
    local n
    n=$(lurk_log_count "$LURK_T/ks.log" "$1")
    kill -HUP "$LURK_KS_PID"
    lurk_wait_log_count "$LURK_T/ks.log" "$1" $((n + 1)) 10
}

# --- in-flight limits: 8 at once, 1.2 s each, max_inflight 3 -------------------
ops "$URL" burst p256 8 > "$LURK_T/burst.txt" 2>&1
lurk_log "$(cat "$LURK_T/burst.txt")"
ok=$(sed -n 's/.*ok=\([0-9]*\).*/\1/p' "$LURK_T/burst.txt")
over=$(sed -n 's/.*overloaded=\([0-9]*\).*/\1/p' "$LURK_T/burst.txt")
lurk_check "max_inflight 3: at most 3 of 8 simultaneous requests are served (got ${ok:-?})" \
    test "${ok:-0}" -ge 1 -a "${ok:-9}" -le 3
lurk_check "max_inflight: the others are refused at once as overloaded (got ${over:-?})" \
    test "$(( ${ok:-0} + ${over:-0} ))" -eq 8
lurk_grep "max_inflight: logged" 'max_inflight(_per_conn)? \([0-9]+\) reached' "$LURK_T/ks.log"
lurk_grep "max_inflight: audited" 'result=OVERLOADED .*reason=inflight_(total|conn)' "$LURK_T/audit.log"

# --- audit log rotation ----------------------------------------------------------
mv "$LURK_T/audit.log" "$LURK_T/audit.log.1"
kill -USR1 "$LURK_KS_PID"
lurk_wait_log "$LURK_T/ks.log" 'audit log reopened' 5
ops "$URL" sign p256 > /dev/null 2>&1
lurk_grep "SIGUSR1: the audit log is reopened (a new file gets the next line)" 'op=sign key=p256' \
    "$LURK_T/audit.log"

# --- reload --------------------------------------------------------------------------
epoch() { ops "$1" caps 2>/dev/null | sed -n 's/^caps: epoch \([0-9a-f]*\) .*/\1/p'; }
E1=$(epoch "$URL")
lurk_check "the epoch is reported (${E1:-none})" test -n "$E1"
# A broken configuration is rejected with the reason; the old one stays.
cp "$LURK_T/ks.cnf" "$LURK_T/ks.good"
printf '[keyserver\nbroken\n' > "$LURK_T/ks.cnf"
hup_and_wait 'reload rejected'
lurk_grep "SIGHUP with a broken file: rejected with the reason" \
    'reload rejected, the running configuration stays \(epoch [0-9a-f]+\): .*ks\.cnf' "$LURK_T/ks.log"
lurk_check "the old configuration still serves (same epoch)" test "$(epoch "$URL")" = "$E1"
curl -sf "http://127.0.0.1:$MPORT/metrics" > "$LURK_T/m1.txt"
lurk_grep "metrics count the rejected reload" '^lurk_keyserver_config_reload_failures_total 1$' "$LURK_T/m1.txt"
# A key whose file is unreadable: rejected too (keys load before the swap).
conf "$LURK_T/ks.cnf" "$URL"
sed -i "s|^p384 = .*|p384 = $LURK_T/keys/missing.pem|" "$LURK_T/ks.cnf"
hup_and_wait 'reload rejected'
lurk_grep "a missing key file: the rejection names it" 'reload rejected.*(missing\.pem|could not be loaded)' \
    "$LURK_T/ks.log"
lurk_check "a missing key file is rejected, the epoch stays" test "$(epoch "$URL")" = "$E1"

# A good new configuration: without p384, with a second listener. A request
# in flight during the reload (1.2 s of delay) finishes on the old one.
conf "$LURK_T/ks.cnf" "$URL $URL2"
sed -i '/^p384 = /d' "$LURK_T/ks.cnf"
ops "$URL" sign p384 > "$LURK_T/inflight-reload.txt" 2>&1 {LURK_TAP}>&- &
INFLIGHT=$!
in_flight || lurk_fail "a request is in flight before the reload"
hup_and_wait 'reloaded: epoch' || lurk_fail "the good configuration is loaded"
wait "$INFLIGHT"
lurk_grep "a request in flight during the reload finishes on the old configuration" \
    '^sign: ok$' "$LURK_T/inflight-reload.txt"
E2=$(epoch "$URL")
lurk_check "after the reload the epoch changed ($E1 -> ${E2:-none})" test -n "$E2" -a "$E2" != "$E1"
ops "$URL" sign p384 > "$LURK_T/after-reload.txt" 2>&1
lurk_grep "new requests use the new configuration (p384 is gone)" '^sign: unknown key' \
    "$LURK_T/after-reload.txt"
lurk_check "the new listener serves after the reload" test "$(epoch "$URL2")" = "$E2"
curl -sf "http://127.0.0.1:$MPORT/metrics" > "$LURK_T/m2.txt"
lurk_grep "metrics: 2 configurations loaded" '^lurk_keyserver_config_loads_total 2$' "$LURK_T/m2.txt"
lurk_grep "metrics: the key count follows" '^lurk_keyserver_keys 3$' "$LURK_T/m2.txt"
lurk_grep "metrics: the epoch follows" "^lurk_keyserver_config_info\\{epoch=\"$E2\"\\} 1" "$LURK_T/m2.txt"

# Revocation by reload: the edge's certificate goes on a CRL; the listener
# restarts with it and the edge cannot reconnect.
mkdir -p "$P/crl/new"; : > "$P/crl/index.txt"; echo 2000 > "$P/crl/serial"
printf '[ca]\ndefault_ca = d\n[d]\ndatabase = %s\nnew_certs_dir = %s\nserial = %s\ndefault_md = sha256\ndefault_crl_days = 2\npolicy = p\n[p]\ncommonName = supplied\n' \
    "$P/crl/index.txt" "$P/crl/new" "$P/crl/serial" > "$P/crl/ca.cnf"
openssl ca -config "$P/crl/ca.cnf" -cert "$P/ca.crt" -keyfile "$P/ca.key" \
    -revoke "$P/edge.crt" > "$LURK_T/revoke.log" 2>&1
openssl ca -gencrl -config "$P/crl/ca.cnf" -cert "$P/ca.crt" -keyfile "$P/ca.key" \
    -out "$P/edges.crl" >> "$LURK_T/revoke.log" 2>&1
# All or nothing with listeners: a reload that would restart both listeners
# (the new CRL) and open a URL whose port is taken is rejected as a whole.
# New URLs open first, so nothing was restarted and the edge still gets in.
BUSY=$(lurk_port)
lurk_bg busy /usr/bin/python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(60)' "$BUSY"
BUSY_PID=$LURK_BG_PID
lurk_wait_port "$BUSY" 5
conf "$LURK_T/ks.cnf" "$URL $URL2 tls+tcp://127.0.0.1:$BUSY" "client_crl = $P/edges.crl"
sed -i '/^p384 = /d' "$LURK_T/ks.cnf"
kill -HUP "$LURK_KS_PID"
lurk_wait_log "$LURK_T/ks.log" "reload rejected.*127\.0\.0\.1:$BUSY" 5
lurk_check_fails "a reload whose new URL cannot listen restarts no listener" \
    grep -q 'restarting listener' "$LURK_T/ks.log"
lurk_check "... and applies nothing: the edge the new CRL names still gets in" ops "$URL" caps
kill "$BUSY_PID" 2>/dev/null
conf "$LURK_T/ks.cnf" "$URL $URL2" "client_crl = $P/edges.crl"
sed -i '/^p384 = /d' "$LURK_T/ks.cnf"
# "reloaded" is logged once the listeners have been restarted.
hup_and_wait 'reloaded: epoch' || lurk_fail "the configuration with the CRL is loaded"
lurk_grep "the listener restarts with the CRL" 'restarting listener' "$LURK_T/ks.log"
lurk_check_fails "after a reload with a CRL naming it, the edge is refused" ops "$URL" caps
conf "$LURK_T/ks.cnf" "$URL $URL2"
sed -i '/^p384 = /d' "$LURK_T/ks.cnf"
hup_and_wait 'reloaded: epoch' || lurk_fail "the configuration without the CRL is loaded"
lurk_check "without the CRL it is served again" ops "$URL" caps

# --- SIGTERM: drain ---------------------------------------------------------------------
ops "$URL" sign p256 > "$LURK_T/drain.txt" 2>&1 {LURK_TAP}>&- &
INFLIGHT=$!
in_flight || lurk_fail "a request is in flight before SIGTERM"
kill -TERM "$LURK_KS_PID"
wait "$INFLIGHT"
lurk_grep "SIGTERM: the request in flight is answered" '^sign: ok$' "$LURK_T/drain.txt"
wait "$LURK_KS_PID"
rc=$?
lurk_check "SIGTERM: exit status 0 (got $rc)" test "$rc" -eq 0
lurk_grep "SIGTERM: drained" 'drained: [1-9][0-9]* requests in flight at the stop were answered' "$LURK_T/ks.log"
lurk_done
