#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The cost of `verify_signatures = yes` (the provider checks every key
# server signature with the public key before libssl sends it).
#
# `openssl s_server -www` with the rsa and p256 reference files, the same key
# server, the provider with and without the switch; TLS 1.3, 1 connection
# (latency) and 8 connections (rate); ROUNDS interleaved rounds.
#
#   VERIFY_SECS  seconds per measurement (3)
set -u
. "$(dirname "$0")/common.sh"

SECS=${VERIFY_SECS:-3}

bench_pki
bench_keyserver ks
lurk_openssl_cnf "$LURK_T/verify-off.cnf" "$KS_URL_ks"
lurk_openssl_cnf "$LURK_T/verify-on.cnf" "$KS_URL_ks" "verify_signatures = yes"

declare -A PORT
for k in rsa p256; do
    for v in off on; do
        PORT[$k-$v]=$(lurk_port)
        OPENSSL_CONF=$LURK_T/verify-$v.cnf lurk_bg "s_server-$k-$v" openssl s_server -www \
            -accept "${PORT[$k-$v]}" -cert "$LURK_T/pki/web-$k.crt" -key "$LURK_T/ref/$k.pem"
        lurk_wait_port "${PORT[$k-$v]}" 15 || exit 1
    done
done

for r in $(seq "$ROUNDS"); do
    for k in rsa p256; do
        for c in 1 8; do
            for v in off on; do
                line=$(hsbench "${PORT[$k-$v]}" -c "$c" -d "$SECS" -V 1.3)
                record verify "$k/tls1.3/c$c" "verify-$v" "$r" "$line"
            done
        done
    done
done
