#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A key held by a TPM: a software TPM (swtpm) on free ports in the
# test's directory, a P-256 key created in it with tpm2-tools and made
# persistent at handle 0x81000001, served by the key server as
# `handle:0x81000001` through OSSL_STORE with the tpm2 provider
# (tpm2-openssl) activated in the key server's OPENSSL_CONF; an unmodified
# `openssl s_server` on the edge completes TLS 1.3 and 1.2 handshakes with it.
# Skips, saying exactly why, when swtpm, tpm2-tools or tpm2-openssl is missing.
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
T=$LURK_T/tpm
lurk_swtpm "$T"
lurk_check "swtpm listens on 127.0.0.1:$LURK_SWTPM_PORT" test $? -eq 0
SWTPM_PID=$LURK_SWTPM_PID
HANDLE=0x81000001
lurk_tpm_persist_key "$T" "$HANDLE"
lurk_check "tpm2-tools: a P-256 key persisted at $HANDLE" test $? -eq 0 \
    || sed 's/^/#   /' "$T/persist.log"

# The key server's OpenSSL: default and tpm2 providers.
cat > "$T/openssl-ks.cnf" <<CNF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
tpm2 = tpm2_sect
[default_sect]
activate = 1
[tpm2_sect]
activate = 1
CNF
OPENSSL_CONF=$T/openssl-ks.cnf openssl pkey -in "handle:$HANDLE" -pubout -out "$T/tpm-pub.pem" \
    > "$T/pub.log" 2>&1
lurk_check "the tpm2 provider opens handle:$HANDLE" test -s "$T/tpm-pub.pem"

# A web certificate for the TPM key, issued by the test web CA.
P=$LURK_T/pki
openssl req -new -key "$LURK_T/keys/p256.pem" -subj "/CN=localhost" -out "$T/web.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$T/web.ext"
openssl x509 -req -in "$T/web.csr" -force_pubkey "$T/tpm-pub.pem" -CA "$P/web-ca.crt" \
    -CAkey "$P/web-ca.key" -CAcreateserial -days 2 -extfile "$T/web.ext" \
    -out "$T/web-tpm.crt" 2>/dev/null
lurk_check "a web certificate for the TPM key" test -s "$T/web-tpm.crt"

KS_PORT=$(lurk_port)
URL="tls+tcp://127.0.0.1:$KS_PORT"
cat > "$LURK_T/ks.cnf" <<CNF
[keyserver]
listen = $URL
tls_cert = $P/keyserver.crt
tls_key = $P/keyserver.key
client_ca = $P/ca.crt
# One TPM, one command at a time: keep signatures on one worker.
workers = 1
[keys]
tpm = handle:$HANDLE
CNF
OPENSSL_CONF=$T/openssl-ks.cnf lurk_keyserver_start ks "$LURK_T/ks.cnf" \
    || { lurk_fail "key server starts with the TPM key"; lurk_done; }
lurk_grep "the key server loaded the TPM key" 'key "tpm": EC prime256v1' "$LURK_T/ks.log"

lurk_openssl_cnf "$LURK_T/openssl.cnf" "$URL"
WEB_PORT=$(lurk_port)
OPENSSL_CONF=$LURK_T/openssl.cnf lurk_bg s_server openssl s_server -www -accept "$WEB_PORT" \
    -cert "$T/web-tpm.crt" -key lurk://tpm
lurk_check "s_server loads lurk://tpm and listens" lurk_wait_port "$WEB_PORT" 15
for v in 1.3 1.2; do
    out=$LURK_T/client-$v.log
    printf 'GET / HTTP/1.0\r\n\r\n' | env -u OPENSSL_CONF timeout 20 openssl s_client \
        -connect "127.0.0.1:$WEB_PORT" -servername localhost -CAfile "$P/web-ca.crt" \
        -verify_return_error -ign_eof "-tls${v/./_}" > "$out" 2>&1
    lurk_grep "TLS $v handshake signed by the TPM: chain verified" 'Verify return code: 0 \(ok\)' "$out"
    lurk_grep "TLS $v: page served" 'HTTP/1.0 200 ok' "$out"
done
lurk_grep "the key server signed with the TPM key" 'op=sign key=tpm scheme=ecdsa_secp256r1_sha256 result=OK' \
    "$LURK_T/ks.log"
lurk_check "swtpm is still running" kill -0 "$SWTPM_PID"
lurk_done
