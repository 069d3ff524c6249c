#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# (a) Key server signing throughput vs `openssl speed -multi <cores>`.
#
# For RSA-2048 (RSA-PSS-SHA256), ECDSA P-256 (SHA-256) and Ed25519, ROUNDS
# interleaved rounds of:
#   speed   openssl speed -multi $NCPU -seconds 2 <alg>: sign/s on every core
#   core    lurk-signcore, $NCPU threads: the key server's own signing code
#           (same EVP calls, same shared key) with no network: the ceiling
#   ks      lurk-signbench: 16 Sign requests in flight over 2 connections (one
#           per nginx worker) to a key server with default workers, each a
#           valid TLS 1.3 CertificateVerify; signatures verified
# Client and key server share the machine's cores, as the issue's target says.
set -u
. "$(dirname "$0")/common.sh"

SECS=${SIGN_SECS:-3}
bench_pki
bench_keyserver ks
KS=$KS_PID_ks

for r in $(seq "$ROUNDS"); do
    for k in rsa p256 ed25519; do
        line=$(openssl speed -multi "$NCPU" -seconds 2 "${SPEED_ALG[$k]}" 2>/dev/null \
            | awk '/^(rsa|[ ]*[0-9]+ bits)/ { for (i = NF; i > 0; i--) if ($i ~ /^[0-9.]+$/) { v[++n] = $i } print "rate=" v[2]; exit }')
        record sign "$k" speed "$r" "$line"

        record sign "$k" core "$r" "$("$SIGNCORE" --key "$LURK_T/keys/$k.pem" --threads "$NCPU" --seconds 2)"

        c0=$(cpu_ticks "$KS")
        line=$(signbench ks -k "$k" -s "${SCHEME[$k]}" -i 16 -C 2 -d "$SECS" -w 0.5)
        c1=$(cpu_ticks "$KS")
        valid "$line" || bench_log "sign $k: invalid run: $line"
        # key server CPU over the run (warmup included): cores it kept busy
        record sign "$k" ks "$r" "$line ks_cores=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" -v s="$SECS" 'BEGIN { printf "%.2f", t / hz / (s + 0.5) }')"
    done
done
lurk_stop "$KS"
grep -E 'stopped:' "$LURK_T/ks.log" | sed 's/^/# /' >&2
