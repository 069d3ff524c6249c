#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The edge's channel credentials are read when the provider is activated:
# Debian's nginx with `user nobody nogroup;` and the channel key owned by
# root, mode 0600. The master (root) activates the provider and loads the
# key reference file; its workers, as nobody, sign through the key server
# with the credential the master read. The channel files are even moved
# away before the first handshake: none is opened then. And a wrong
# credential (missing key, key of another certificate, a CA file without a
# certificate) stops nginx at start with a message that names the file.
. "$(dirname "$0")/lib.sh"

NGINX=$LURK_NGINX
if [ ! -x "$NGINX" ]; then
    lurk_skip "nginx is not installed (scripts/setup-debian installs nginx-light)"
    lurk_done
fi
if [ "$(id -u)" != 0 ] || ! id nobody > /dev/null 2>&1 || ! getent group nogroup > /dev/null; then
    lurk_skip "needs root and Debian's nobody user and nogroup group (nginx drops to them)"
    lurk_done
fi

lurk_pki
KS_PORT=$(lurk_port)
URL="tls+tcp://127.0.0.1:$KS_PORT"
lurk_keyserver_conf "$LURK_T/ks.cnf" "$URL" "audit_log = $LURK_T/audit.log"
lurk_keyserver_start ks "$LURK_T/ks.cnf" -v || { lurk_fail "key server starts"; lurk_done; }
lurk_check "reference files from the key server configuration" lurk_keyrefs "$LURK_T/ks.cnf"

# The edge's channel files in a directory of their own, root's only.
CH=$LURK_T/channel
mkdir -m 700 "$CH"
cp "$LURK_T/pki/edge.crt" "$LURK_T/pki/edge.key" "$LURK_T/pki/ca.crt" "$CH/"
chown root:root "$CH/edge.key"
chmod 600 "$CH/edge.key"
lurk_check "the channel key is root's, mode 0600" \
    test "$(stat -c '%U %a' "$CH/edge.key")" = "root 600"
lurk_check_fails "nobody cannot read it" \
    setpriv --reuid=nobody --regid=nogroup --clear-groups cat "$CH/edge.key"
lurk_openssl_cnf "$LURK_T/openssl.cnf" "$URL"
sed -i -e "s|^tls_cert = .*|tls_cert = $CH/edge.crt|" -e "s|^tls_key = .*|tls_key = $CH/edge.key|" \
    -e "s|^tls_ca = .*|tls_ca = $CH/ca.crt|" "$LURK_T/openssl.cnf"
export OPENSSL_CONF=$LURK_T/openssl.cnf

P=$LURK_T/nginx
PORT=$(lurk_port)
lurk_nginx_conf "$P/nginx.conf" "$P" 2 \
    "$(lurk_nginx_server "$PORT" "$LURK_T/pki/web-p256.crt" "$LURK_T/ref/p256.pem")"
sed -i 's/^user root;$/user nobody nogroup;/' "$P/nginx.conf"
lurk_grep "nginx.conf: the workers run as nobody" '^user nobody nogroup;$' "$P/nginx.conf"

# --- a wrong credential stops nginx at start, naming the file --------------
# bad_cred NAME SETTING DESCRIPTION REGEX: nginx -t with one channel setting
# replaced refuses the configuration, and its message matches REGEX.
bad_cred() {
    local name=$1 setting=$2 desc=$3 re=$4 cnf=$LURK_T/$1.cnf
    sed "s|^${setting%% =*} = .*|$setting|" "$LURK_T/openssl.cnf" > "$cnf"
    OPENSSL_CONF=$cnf "$NGINX" -t -p "$P" -c "$P/nginx.conf" > "$P/$name.log" 2>&1
    lurk_check "$desc: nginx -t refuses to start" test $? -ne 0
    lurk_grep "$desc: the error names the file and the problem" "$re" "$P/$name.log"
}
bad_cred missing-key "tls_key = $CH/no-such.key" "a missing tls_key" \
    "lurk provider configuration.*channel credentials.*cannot open $CH/no-such\\.key: No such file"
bad_cred other-key "tls_key = $LURK_T/pki/rogue-edge.key" "the key of another certificate" \
    "channel credentials.*the key $LURK_T/pki/rogue-edge\\.key does not match the certificate $CH/edge\\.crt"
bad_cred bad-ca "tls_ca = $CH/edge.key" "a CA file with no certificate" \
    "channel credentials.*$CH/edge\\.key: no PEM CA certificate"
lurk_check_fails "no abort on a wrong credential" \
    grep -Eq 'Aborted|core dumped|not fork-reentrant' "$P/missing-key.log" "$P/other-key.log" \
    "$P/bad-ca.log"

# --- the workers sign as nobody --------------------------------------------
"$NGINX" -t -p "$P" -c "$P/nginx.conf" > "$P/t.log" 2>&1
lurk_check "nginx -t accepts the configuration" test $? -eq 0 || sed 's/^/#   /' "$P/t.log"
lurk_bg nginx "$NGINX" -p "$P" -c "$P/nginx.conf" -g 'daemon off;'
NGINX_PID=$LURK_BG_PID
lurk_check "nginx listens" lurk_wait_port "$PORT" 15

workers=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
lurk_log "nginx master $NGINX_PID, workers: $workers"
lurk_check "nginx runs 2 workers" test "$(echo $workers | wc -w)" -eq 2
for w in $workers; do
    lurk_check "worker $w runs as nobody (real, effective, saved and fs uid 65534)" \
        grep -Eq '^Uid:\s+65534\s+65534\s+65534\s+65534$' "/proc/$w/status"
done
lurk_check "the master runs as root" grep -Eq '^Uid:\s+0\s' "/proc/$NGINX_PID/status"

# Nothing of the channel is on disk any more: the workers have what the
# master read at activation.
mv "$CH" "$CH.gone"
signed_before=$(lurk_log_count "$LURK_T/ks.log" 'signed .* with key "p256"')
for v in 1.3 1.2; do
    out=$LURK_T/curl-$v.log
    env -u OPENSSL_CONF timeout 20 curl -sS --tlsv"$v" --tls-max "$v" \
        --cacert "$LURK_T/pki/web-ca.crt" -w 'HTTP %{http_code}\n' "https://localhost:$PORT/" \
        > "$out" 2>&1
    lurk_grep "curl TLS $v: 200, signed through the key server" '^HTTP 200$' "$out"
    lurk_grep "curl TLS $v: the page" "lurk ok TLSv$v" "$out"
done
lurk_check "the key server logged both signatures" \
    lurk_wait_log_count "$LURK_T/ks.log" 'signed .* with key "p256"' $((signed_before + 2)) 10
lurk_grep "the audit log has them" 'op=sign key=p256 scheme=ecdsa_secp256r1_sha256 result=OK' \
    "$LURK_T/audit.log"
lurk_check_fails "no worker failed to reach the channel files" \
    grep -Eq 'cannot open|Permission denied|lurk provider configuration' "$P/logs/error.log"
lurk_check_fails "no worker crashed or aborted" grep -Eq 'exited on signal|not fork-reentrant' \
    "$P/logs/error.log"
lurk_check "nginx master survived" kill -0 "$NGINX_PID"
lurk_done
