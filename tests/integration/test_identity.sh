#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Per-edge identity: edges whose certificates come from ONE CA share ONE
# listener and are told apart by their certificates (a DNS subjectAltName,
# or the SHA-256 of the public key), each group with its own grant. A
# certificate no group names is closed with its identity in the log; the
# audit log names each edge; a revoked edge (CRL, then SIGHUP) is refused
# while its sibling keeps working; ipc:// keeps its listener's group.
. "$(dirname "$0")/lib.sh"

OPS=${LURK_TOOLS_DIR}/lurk-ops-client
lurk_pki
lurk_mini_ca
P=$LURK_T/pki

# edge_cert NAME DNS: a P-256 key and a certificate from the test CA (the
# mini CA database, for revocation) with one DNS subjectAltName.
edge_cert() {
    local n=$1 dns=$2
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$P/$n.key" 2>/dev/null
    chmod 600 "$P/$n.key"
    openssl req -new -key "$P/$n.key" -subj "/O=CDN/CN=$n" -addext "subjectAltName=DNS:$dns" \
        -out "$P/$n.csr" 2>/dev/null
    openssl ca -batch -config "$P/mini/ca.cnf" -cert "$P/ca.crt" -keyfile "$P/ca.key" \
        -in "$P/$n.csr" -out "$P/$n.crt" -notext -days 2 > "$LURK_T/ca-$n.log" 2>&1
}
gencrl() {
    openssl ca -gencrl -config "$P/mini/ca.cnf" -cert "$P/ca.crt" -keyfile "$P/ca.key" \
        -out "$P/edges.crl" > "$LURK_T/ca-crl.log" 2>&1
}
edge_cert edge-a a.cdn.example
edge_cert edge-b b.cdn.example
edge_cert edge-p p.cdn.example # named by its public key only
edge_cert edge-x x.cdn.example # named by no group
gencrl
lurk_check "test PKI: four edge certificates of one CA and an empty CRL" \
    test -s "$P/edge-a.crt" -a -s "$P/edge-b.crt" -a -s "$P/edge-p.crt" -a -s "$P/edge-x.crt" \
    -a -s "$P/edges.crl"
PIN_P=$(openssl x509 -in "$P/edge-p.crt" -noout -pubkey | openssl pkey -pubin -outform DER \
    | openssl dgst -sha256 -r | cut -d' ' -f1)

PORT=$(lurk_port); MPORT=$(lurk_port)
URL="tls+tcp://127.0.0.1:$PORT"
URL_RE=$(printf '%s' "$URL" | sed 's/[.+]/\\&/g') # the URL in an extended regex
IPC="ipc://$LURK_T/ks.sock"
cat > "$LURK_T/ks.cnf" <<CNF
[keyserver]
tls_cert = $P/keyserver.crt
tls_key = $P/keyserver.key
audit_log = $LURK_T/audit.log
metrics_listen = http://127.0.0.1:$MPORT

# Two groups on one listener, one CA and one CRL, told apart by certificate.
[edge.alpha]
listen = $URL
client_ca = $P/ca.crt
client_crl = $P/edges.crl
edges = dns:a.cdn.example
keys = p256

[edge.beta]
listen = $URL
client_ca = $P/ca.crt
client_crl = $P/edges.crl
edges = dns:b.cdn.example, spki:$PIN_P
keys = ed25519 p384

# A local socket: no certificate, its listener's group.
[edge.local]
listen = $IPC
keys = rsa

[keys]
rsa = $LURK_T/keys/rsa.pem
p256 = $LURK_T/keys/p256.pem
p384 = $LURK_T/keys/p384.pem
ed25519 = $LURK_T/keys/ed25519.pem
CNF
"$LURK_KEYSERVER" -c "$LURK_T/ks.cnf" --check > "$LURK_T/check.log" 2>&1
lurk_check "--check accepts two groups on one listener" test $? -eq 0
lurk_grep "--check lists one listener for both groups" "^  listen      $URL_RE\$" "$LURK_T/check.log"
lurk_grep "--check lists each group's edges" "^    edge        spki:$PIN_P\$" "$LURK_T/check.log"
lurk_check "--check: the shared URL is one listener" \
    test "$(grep -Ec "^  listen      $URL_RE\$" "$LURK_T/check.log")" -eq 1

# A listener shared by groups with different CAs is refused, naming both and the line.
sed "0,/^client_ca = .*ca.crt/s||client_ca = $P/rogue-ca.crt|" "$LURK_T/ks.cnf" > "$LURK_T/bad.cnf"
"$LURK_KEYSERVER" -c "$LURK_T/bad.cnf" --check > "$LURK_T/bad.log" 2>&1
lurk_check "a shared listener with two CAs is refused" test $? -eq 1
lurk_grep "the refusal names both groups and the line" \
    "bad\.cnf:16: \[edge\.beta\]: listen: $URL_RE is shared with \[edge\.alpha\] \(line 9\), whose client_ca differs" \
    "$LURK_T/bad.log"

lurk_keyserver_start ks "$LURK_T/ks.cnf" || { lurk_fail "key server starts"; lurk_done; }

as() { # EDGE ARGS...: lurk-ops-client with that edge's certificate, on the shared listener
    local e=$1; shift
    timeout 30 "$OPS" --server "$URL" --cert "$P/$e.crt" --key "$P/$e.key" --ca "$P/ca.crt" \
        --server-name localhost --timeout-ms 3000 "$@"
}
ctl() { # EDGE ARGS...: lurkctl with that edge's certificate, on the shared listener
    local e=$1; shift
    timeout 30 "$LURK_CTL" -s "$URL" --cert "$P/$e.crt" --key "$P/$e.key" --ca "$P/ca.crt" \
        --server-name localhost --timeout-ms 3000 "$@"
}

# --- one listener, one CA, a grant per edge -------------------------------------
ctl edge-a capabilities > "$LURK_T/caps-a.txt" 2>&1
lurk_grep "lurkctl capabilities: edge a sees one key" '^keys: 1$' "$LURK_T/caps-a.txt"
lurk_grep "lurkctl capabilities: edge a sees alpha's key" '^key p256: ' "$LURK_T/caps-a.txt"
ctl edge-b capabilities > "$LURK_T/caps-b.txt" 2>&1
lurk_grep "lurkctl capabilities: edge b sees two keys" '^keys: 2$' "$LURK_T/caps-b.txt"
lurk_grep "lurkctl capabilities: edge b sees beta's keys" '^key p384: ' "$LURK_T/caps-b.txt"
lurk_check_fails "lurkctl capabilities: edge b does not see alpha's key" \
    grep -q '^key p256: ' "$LURK_T/caps-b.txt"
ctl edge-p capabilities > "$LURK_T/caps-p.txt" 2>&1
lurk_grep "an edge named by its public key gets its group's keys" '^key ed25519: ' \
    "$LURK_T/caps-p.txt"

as edge-a sign p256 > "$LURK_T/sa1.txt" 2>&1
lurk_grep "edge a signs with its key" '^sign: ok$' "$LURK_T/sa1.txt"
as edge-a sign ed25519 > "$LURK_T/sa2.txt" 2>&1
lurk_grep "edge a is refused edge b's key" '^sign: not permitted key "ed25519" is not granted' \
    "$LURK_T/sa2.txt"
as edge-b sign ed25519 > "$LURK_T/sb1.txt" 2>&1
lurk_grep "edge b signs with its key" '^sign: ok$' "$LURK_T/sb1.txt"
as edge-b sign p256 > "$LURK_T/sb2.txt" 2>&1
lurk_grep "edge b is refused edge a's key" '^sign: not permitted key "p256" is not granted' \
    "$LURK_T/sb2.txt"

# --- a certificate of the CA that no group names --------------------------------
n=$(lurk_log_count "$LURK_T/ks.log" 'no edge group of this listener names its certificate')
lurk_check_fails "an edge of the CA that no group names cannot connect" as edge-x caps \
    > "$LURK_T/sx.txt" 2>&1
lurk_check "the refused edge is logged with its identity" \
    lurk_wait_log_count "$LURK_T/ks.log" \
    "edge x\.cdn\.example/spki:[0-9a-f]{16} at 127\.0\.0\.1:[0-9]+ on $URL_RE refused: no edge group of this listener names its certificate.*subject \"/CN=edge-x\", dns x\.cdn\.example, spki sha256 [0-9a-f]{64}" \
    $((n + 1)) 10

# --- connections and audit name each edge ------------------------------------------
lurk_grep "the connection line names the group, the edge, the TLS version and cipher" \
    "edge connected: 127\.0\.0\.1:[0-9]+ on $URL_RE, group alpha, edge a\.cdn\.example/spki:[0-9a-f]{16}, TLSv1\.3 TLS_[A-Z0-9_]+, client certificate verified" \
    "$LURK_T/ks.log"
lurk_grep "the refusal log names the edge" \
    'refused sign key "p256" from b\.cdn\.example/spki:[0-9a-f]{16} at 127\.0\.0\.1:[0-9]+ \[beta\]: not permitted' \
    "$LURK_T/ks.log"
# The audit log is written whenever the key server runs out of requests.
lurk_check "audit: edge a's signature names edge a" lurk_wait_log "$LURK_T/audit.log" \
    'group=alpha .* op=sign key=p256 .*result=OK .* edge=a\.cdn\.example/spki:[0-9a-f]{16}$' 10
lurk_grep "audit: edge b's signature names edge b" \
    'group=beta .* op=sign key=ed25519 .*result=OK .* edge=b\.cdn\.example/spki:[0-9a-f]{16}$' \
    "$LURK_T/audit.log"
lurk_grep "audit: edge b's refusal names edge b" \
    'group=beta .* op=sign key=p256 .*result=NOT_PERMITTED .* edge=b\.cdn\.example/spki:[0-9a-f]{16} reason=not_permitted' \
    "$LURK_T/audit.log"
lurk_grep "audit: the edge named by its pin carries its pin's prefix" \
    "group=beta .* op=capabilities .* edge=p\.cdn\.example/spki:${PIN_P:0:16}( |\$)" "$LURK_T/audit.log"

# --- ipc:// keeps its listener's group -----------------------------------------------
timeout 30 "$LURK_CTL" -s "$IPC" --timeout-ms 3000 capabilities > "$LURK_T/caps-ipc.txt" 2>&1
lurk_grep "ipc://: the listener's group and its key" '^key rsa: ' "$LURK_T/caps-ipc.txt"
lurk_check "audit: ipc:// has no certificate (edge=-)" lurk_wait_log "$LURK_T/audit.log" \
    'group=local peer=ipc-pid-[0-9]+-uid-[0-9]+ .* op=capabilities .* edge=-$' 10

# --- metrics: by group, never by edge name ----------------------------------------------
curl -sf "http://127.0.0.1:$MPORT/metrics" > "$LURK_T/m.txt"
lurk_grep "metrics: requests by group" \
    '^lurk_keyserver_requests_total\{op="sign",key="ed25519",group="beta",result="OK"\} [1-9]' \
    "$LURK_T/m.txt"
lurk_check_fails "metrics: no edge name or pin becomes a label" \
    grep -Eq 'cdn\.example|spki' "$LURK_T/m.txt"

# --- max_inflight per group: beta's edges share 1, alpha is not held back ---------------------
# A second key server on another port, answers delayed 1.2 s so that a burst is in flight at once.
PORT2=$(lurk_port)
URL2="tls+tcp://127.0.0.1:$PORT2"
sed -e "s|$URL|$URL2|" -e "s|^audit_log = .*|audit_log = $LURK_T/audit2.log|" -e '/^metrics_listen/d' \
    -e "s|ks\.sock|ks2.sock|" -e 's|^keys = ed25519 p384$|&\nmax_inflight = 1|' \
    -e 's|^\[keyserver\]$|&\nworkers = 4\nmax_inflight = 16\nmax_inflight_per_conn = 8|' \
    "$LURK_T/ks.cnf" > "$LURK_T/ks2.cnf"
KS1_PID=$LURK_KS_PID
if lurk_keyserver_start ks2 "$LURK_T/ks2.cnf" --debug-delay-ms 1200; then
    tally() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" "$2"; }
    timeout 30 "$OPS" --server "$URL2" --cert "$P/edge-b.crt" --key "$P/edge-b.key" \
        --ca "$P/ca.crt" --server-name localhost --timeout-ms 5000 burst ed25519 4 \
        > "$LURK_T/burst-b.txt" 2>&1
    lurk_log "beta: $(cat "$LURK_T/burst-b.txt")"
    ok=$(tally ok "$LURK_T/burst-b.txt"); over=$(tally overloaded "$LURK_T/burst-b.txt")
    lurk_check "group max_inflight 1: one of 4 simultaneous requests of beta is served (got ${ok:-?})" \
        test "${ok:-0}" -eq 1
    lurk_check "group max_inflight: the others are refused as overloaded (got ${over:-?})" \
        test "${over:-0}" -eq 3
    timeout 30 "$OPS" --server "$URL2" --cert "$P/edge-a.crt" --key "$P/edge-a.key" \
        --ca "$P/ca.crt" --server-name localhost --timeout-ms 5000 burst p256 4 \
        > "$LURK_T/burst-a.txt" 2>&1
    lurk_log "alpha: $(cat "$LURK_T/burst-a.txt")"
    lurk_check "a group without max_inflight on the same listener is not held back" \
        test "$(tally ok "$LURK_T/burst-a.txt")" = 4
    lurk_grep "group max_inflight: logged with the group and the edge" \
        'max_inflight \(1\) of edge group beta reached, last from b\.cdn\.example/spki:[0-9a-f]{16} at ' \
        "$LURK_T/ks2.log"
    lurk_check "group max_inflight: audited as inflight_group" lurk_wait_log "$LURK_T/audit2.log" \
        'group=beta .*result=OVERLOADED .* edge=b\.cdn\.example/spki:[0-9a-f]{16} reason=inflight_group' 10
    lurk_stop "$LURK_KS_PID"
else
    lurk_fail "a second key server starts ($(tail -n 3 "$LURK_T/ks2.log"))"
fi
LURK_KS_PID=$KS1_PID

# --- revoke edge a: CRL, SIGHUP; edge b keeps working --------------------------------------
openssl ca -config "$P/mini/ca.cnf" -cert "$P/ca.crt" -keyfile "$P/ca.key" \
    -revoke "$P/edge-a.crt" > "$LURK_T/ca-revoke.log" 2>&1
gencrl
serial=$(openssl x509 -in "$P/edge-a.crt" -noout -serial | cut -d= -f2)
openssl crl -in "$P/edges.crl" -noout -text > "$LURK_T/crl.txt" 2>&1
lurk_grep "the CRL now lists edge a" "Serial Number: $serial" "$LURK_T/crl.txt"
n=$(lurk_log_count "$LURK_T/ks.log" 'reloaded: epoch')
kill -HUP "$LURK_KS_PID"
lurk_check "SIGHUP: reloaded" lurk_wait_log_count "$LURK_T/ks.log" 'reloaded: epoch' $((n + 1)) 20
lurk_grep "SIGHUP: the shared listener restarts with the new CRL" \
    "restarting listener $URL_RE \(group alpha beta\)" "$LURK_T/ks.log"
n=$(lurk_log_count "$LURK_T/ks.log" 'peer certificate: certificate revoked')
lurk_check_fails "the revoked edge a is refused" as edge-a sign p256 > "$LURK_T/sa3.txt" 2>&1
lurk_check "the key server says why" lurk_wait_log_count "$LURK_T/ks.log" \
    'peer certificate: certificate revoked' $((n + 1)) 10
as edge-b sign ed25519 > "$LURK_T/sb3.txt" 2>&1
lurk_grep "its sibling edge b, on the same listener and CA, still signs" '^sign: ok$' \
    "$LURK_T/sb3.txt"
ctl edge-b capabilities > "$LURK_T/caps-b2.txt" 2>&1
lurk_grep "lurkctl capabilities: edge b still sees its keys" '^keys: 2$' "$LURK_T/caps-b2.txt"

lurk_check_fails "no key material in the logs" \
    grep -q 'PRIVATE KEY' "$LURK_T/audit.log" "$LURK_T/ks.log"
alive=0; kill -0 "$LURK_KS_PID" 2>/dev/null && alive=1
lurk_check "the key server is still running" test "$alive" -eq 1

# --- a resumed session is matched again, to the same group ------------------------------------
# A long-lived edge (s_server with edge b's certificate and beta's key) keeps
# its channel session across a key server restart and resumes it.
lurk_openssl_cnf "$LURK_T/openssl.cnf" "$URL"
sed -i -e "s|$P/edge\.crt|$P/edge-b.crt|" -e "s|$P/edge\.key|$P/edge-b.key|" "$LURK_T/openssl.cnf"
WEB_PORT=$(lurk_port)
OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg s_server openssl s_server -www -accept "$WEB_PORT" \
    -cert "$P/web-ed25519.crt" -key "lurk://ed25519"
lurk_check "s_server with edge b's certificate and lurk://ed25519 listens" \
    lurk_wait_port "$WEB_PORT" 15
web() {
    printf 'GET / HTTP/1.0\r\n\r\n' | timeout 20 openssl s_client -connect "127.0.0.1:$WEB_PORT" \
        -servername localhost -CAfile "$P/web-ca.crt" -verify_return_error -ign_eof \
        > "$LURK_T/web-$1.log" 2>&1
    lurk_grep "$1: a page over a handshake signed with beta's key" 'HTTP/1.0 200 ok' \
        "$LURK_T/web-$1.log"
}
web first
kill -TERM "$LURK_KS_PID"
lurk_check "the key server stops" lurk_wait_exit "$LURK_KS_PID" 15
lurk_keyserver_start ks-r "$LURK_T/ks.cnf" || { lurk_fail "key server restarts"; lurk_done; }
web after-restart
lurk_check "the resumed session is edge b's, in group beta" lurk_wait_log "$LURK_T/ks-r.log" \
    "edge connected: .* group beta, edge b\.cdn\.example/spki:[0-9a-f]{16}, TLSv1\.3 [A-Z0-9_]+, session resumed" 10
lurk_done
