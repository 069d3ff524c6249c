#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The edge's channel key held by a TPM: a software TPM (swtpm), a P-256 key
# created in it with tpm2-tools and made persistent, named in the
# provider's section by its OSSL_STORE URI (`tls_key = handle:0x81000002`)
# with `tls_providers = tpm2 default`; the edge's channel certificate is
# issued for it. The provider loads it at activation into the channel's
# private library context, and every channel handshake signs its
# CertificateVerify in the TPM. lurkctl pings with it, `openssl s_server`
# serves a key reference file whose handshakes the key server signs over
# that channel, and a lurk:// load asks through the lookup helper, which
# loads the TPM key the same way. A TSS2 PEM key file made by
# `openssl genpkey -provider tpm2` works as well (lurkctl), and is refused,
# by name, without the tpm2 provider.
#
# The key server's channel certificate and CA are Ed25519 here. The edge's
# channel prefers the key's provider for its signature algorithms, so it
# would verify an ECDSA key server in the TPM too; swtpm without a resource
# manager has three object slots, which the edge's own signature needs
# (docs/provider.md, "A channel key in a TPM"). Skips when swtpm,
# tpm2-tools or tpm2-openssl is missing.
. "$(dirname "$0")/lib.sh"

missing=""
for cmd in swtpm tpm2_createprimary tpm2_create tpm2_load tpm2_evictcontrol tpm2_flushcontext; do
    command -v "$cmd" > /dev/null || missing="$missing $cmd"
done
MODDIR=$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')
[ -e "$MODDIR/tpm2.so" ] || missing="$missing $MODDIR/tpm2.so"
if [ -n "$missing" ]; then
    lurk_skip "TPM: not installed:$missing (Debian packages swtpm, tpm2-tools, tpm2-openssl; scripts/setup-debian installs them)"
    lurk_done
fi

lurk_pki
P=$LURK_T/pki
T=$LURK_T/tpm
lurk_swtpm "$T"
lurk_check "swtpm listens on 127.0.0.1:$LURK_SWTPM_PORT" test $? -eq 0 || lurk_done
HANDLE=0x81000002
lurk_tpm_persist_key "$T" "$HANDLE"
lurk_check "tpm2-tools: the edge's channel key persisted at $HANDLE" test $? -eq 0 \
    || sed 's/^/#   /' "$T/persist.log"

# Its certificate request, signed in the TPM; the certificate from the
# channel CA, which the key server's client_ca is.
openssl req -new -provider tpm2 -provider default -key "handle:$HANDLE" \
    -subj "/CN=edge-tpm.example" -out "$T/edge-tpm.csr" > "$T/req.log" 2>&1
printf 'subjectAltName=DNS:edge-tpm.example\nbasicConstraints=CA:FALSE\n' > "$T/edge.ext"
openssl x509 -req -in "$T/edge-tpm.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
    -days 2 -extfile "$T/edge.ext" -out "$T/edge-tpm.crt" > "$T/x509.log" 2>&1
lurk_check "the channel CA certified the TPM key (request signed in the TPM)" \
    test -s "$T/edge-tpm.crt"

# The key server: an Ed25519 channel certificate from an Ed25519 CA (see above).
openssl req -x509 -newkey ED25519 -nodes -days 3 -subj "/CN=LURK test Ed25519 CA" \
    -keyout "$P/ed-ca.key" -out "$P/ed-ca.crt" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$P/ed-keyserver.key" 2>/dev/null
chmod 600 "$P/ed-keyserver.key"
openssl req -new -key "$P/ed-keyserver.key" -subj "/CN=localhost" -out "$P/ed-keyserver.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$P/ed-keyserver.ext"
openssl x509 -req -in "$P/ed-keyserver.csr" -CA "$P/ed-ca.crt" -CAkey "$P/ed-ca.key" \
    -CAcreateserial -days 2 -extfile "$P/ed-keyserver.ext" -out "$P/ed-keyserver.crt" 2>/dev/null
KS_PORT=$(lurk_port)
URL="tls+tcp://127.0.0.1:$KS_PORT"
lurk_keyserver_conf "$LURK_T/ks.cnf" "$URL" "audit_log = $LURK_T/audit.log"
sed -i -e "s|^tls_cert = .*|tls_cert = $P/ed-keyserver.crt|" \
    -e "s|^tls_key = .*|tls_key = $P/ed-keyserver.key|" "$LURK_T/ks.cnf"
lurk_keyserver_start ks "$LURK_T/ks.cnf" -v || { lurk_fail "key server starts"; lurk_done; }
lurk_check "reference files from the key server configuration" lurk_keyrefs "$LURK_T/ks.cnf"

# edge_cnf FILE CERT KEY [extra lines]: the provider's section with CERT and
# KEY as the edge's channel credential.
edge_cnf() {
    local file=$1 cert=$2 key=$3; shift 3
    lurk_openssl_cnf "$file" "$URL" "$@"
    sed -i -e "s|^tls_cert = .*|tls_cert = $cert|" -e "s|^tls_key = .*|tls_key = $key|" \
        -e "s|^tls_ca = .*|tls_ca = $P/ed-ca.crt|" "$file"
}
edge_cnf "$LURK_T/edge-tpm.cnf" "$T/edge-tpm.crt" "handle:$HANDLE" "tls_providers = tpm2 default"

# --- lurkctl over the TPM-authenticated channel --------------------------------
connected=$(lurk_log_count "$LURK_T/ks.log" 'edge connected: .*client certificate verified')
"$LURK_CTL" -C "$LURK_T/edge-tpm.cnf" ping > "$LURK_T/ping.log" 2>&1
lurk_check "lurkctl -C (tls_key = handle:$HANDLE, tls_providers = tpm2 default) pings" \
    test $? -eq 0 || sed 's/^/#   /' "$LURK_T/ping.log"
lurk_check "the key server verified the TPM key's certificate" \
    lurk_wait_log_count "$LURK_T/ks.log" 'edge connected: .*TLSv1\.3.*client certificate verified' \
    $((connected + 1)) 10
"$LURK_CTL" -C "$LURK_T/edge-tpm.cnf" capabilities > "$LURK_T/caps.log" 2>&1
lurk_grep "lurkctl capabilities over it" 'key p256: EC' "$LURK_T/caps.log"

# --- s_server: handshakes signed by the key server over that channel ------------
WEB_PORT=$(lurk_port)
OPENSSL_CONF=$LURK_T/edge-tpm.cnf lurk_bg s_server openssl s_server -www -accept "$WEB_PORT" \
    -cert "$P/web-p256.crt" -key "$LURK_T/ref/p256.pem"
S_SERVER_PID=$LURK_BG_PID
lurk_check "s_server loads the reference file and listens" lurk_wait_port "$WEB_PORT" 15
signed_before=$(lurk_log_count "$LURK_T/ks.log" 'signed .* with key "p256"')
for v in 1.3 1.2; do
    out=$LURK_T/client-$v.log
    printf 'GET / HTTP/1.0\r\n\r\n' | env -u OPENSSL_CONF timeout 20 openssl s_client \
        -connect "127.0.0.1:$WEB_PORT" -servername localhost -CAfile "$P/web-ca.crt" \
        -verify_return_error -ign_eof "-tls${v/./_}" > "$out" 2>&1
    lurk_grep "TLS $v handshake, chain verified" 'Verify return code: 0 \(ok\)' "$out"
    lurk_grep "TLS $v: page served" 'HTTP/1.0 200 ok' "$out"
done
lurk_check "the key server signed both, for the TPM-authenticated edge" \
    lurk_wait_log_count "$LURK_T/ks.log" 'signed .* with key "p256"' $((signed_before + 2)) 10
lurk_grep "(in the audit log)" 'op=sign key=p256 scheme=ecdsa_secp256r1_sha256 result=OK' \
    "$LURK_T/audit.log"
lurk_stop "$S_SERVER_PID"

# --- lurk://: the lookup helper loads the TPM key as the provider did -------------
OPENSSL_CONF=$LURK_T/edge-tpm.cnf timeout 30 openssl pkey -in lurk://p256 -pubout \
    > "$LURK_T/lurk-uri.pub" 2> "$LURK_T/lurk-uri.log"
lurk_grep "a lurk:// load through the helper, over the TPM channel" 'BEGIN PUBLIC KEY' \
    "$LURK_T/lurk-uri.pub" || sed 's/^/#   /' "$LURK_T/lurk-uri.log"

# --- a TSS2 key file: tls_providers decides --------------------------------------
openssl genpkey -provider tpm2 -provider base -algorithm EC -pkeyopt group:P-256 \
    -out "$T/edge-file.pem" > "$T/genpkey.log" 2>&1
lurk_grep "tpm2-openssl made a key file that only the TPM can use" 'BEGIN TSS2 PRIVATE KEY' \
    "$T/edge-file.pem"
openssl req -new -provider tpm2 -provider default -key "$T/edge-file.pem" \
    -subj "/CN=edge-tpm.example" -out "$T/edge-file.csr" > /dev/null 2>&1
openssl x509 -req -in "$T/edge-file.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
    -days 2 -extfile "$T/edge.ext" -out "$T/edge-file.crt" > /dev/null 2>&1
edge_cnf "$LURK_T/edge-file.cnf" "$T/edge-file.crt" "$T/edge-file.pem" "tls_providers = tpm2 default"
edge_cnf "$LURK_T/edge-noprov.cnf" "$T/edge-file.crt" "$T/edge-file.pem"
# A reference file loads locally once the provider is usable: the
# credential was accepted at activation.
OPENSSL_CONF=$LURK_T/edge-file.cnf openssl pkey -in "$LURK_T/ref/p256.pem" -pubout \
    > "$LURK_T/file.pub" 2> "$LURK_T/file.log"
lurk_grep "with tls_providers = tpm2 default the TSS2 file is the channel key" \
    'BEGIN PUBLIC KEY' "$LURK_T/file.pub" || sed 's/^/#   /' "$LURK_T/file.log"
"$LURK_CTL" -C "$LURK_T/edge-file.cnf" ping > "$LURK_T/file-ping.log" 2>&1
lurk_check "lurkctl pings over the channel of the TSS2 file key" test $? -eq 0 \
    || sed 's/^/#   /' "$LURK_T/file-ping.log"
OPENSSL_CONF=$LURK_T/edge-noprov.cnf openssl pkey -in lurk://p256 -pubout \
    > "$LURK_T/noprov.log" 2>&1
lurk_grep "without the tpm2 provider it is refused, naming the file" \
    "channel credentials.*$T/edge-file\\.pem: not an unencrypted PEM private key" \
    "$LURK_T/noprov.log"
"$LURK_CTL" -C "$LURK_T/edge-noprov.cnf" ping > "$LURK_T/noprov-ctl.log" 2>&1
lurk_check "lurkctl refuses it too (exit status 2)" test $? -eq 2
lurk_grep "(naming the file)" "$T/edge-file\\.pem" "$LURK_T/noprov-ctl.log"

lurk_check "swtpm is still running" kill -0 "$LURK_SWTPM_PID"
lurk_done
