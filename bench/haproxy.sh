#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# (d) HAProxy with `ssl-mode-async` vs blocking, key server delay 0 and 5 ms,
# 64 connections, TLS 1.3, ECDSA P-256 and RSA-2048.
#
# Two key servers (workers = 128 so that a sleeping worker never limits the
# requests in flight): ks0 answers at once, ks5 sleeps 5 ms in the worker
# before each signature (--debug-delay-ms 5: a far-away key server). Five
# HAProxy processes run side by side (idle when not measured), each
# `nbthread $HP_THREADS`:
#   local      the key file itself (reference)
#   async-0ms  ssl-mode-async, ks0      async-5ms  ssl-mode-async, ks5
#   block-0ms  blocking, ks0            block-5ms  blocking, ks5
# The target: async-5ms >= 0.80 x async-0ms handshakes/s at 64 connections.
#
#   HP_SECS HP_THREADS HP_CONNS HP_KEYS
set -u
. "$(dirname "$0")/common.sh"

SECS=${HP_SECS:-2}
THREADS=${HP_THREADS:-2}
CONNS=${HP_CONNS:-64}
KEYS=${HP_KEYS:-p256 rsa}
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$HAPROXY" ] || { echo "bench: haproxy is not installed" >&2; exit 1; }

bench_pki
bench_keyserver ks0 "workers = 128"
bench_keyserver ks5 "workers = 128" -- --debug-delay-ms 5

H=$LURK_T/haproxy
mkdir -p "$H"
for k in $KEYS; do
    cat "$LURK_T/pki/web-$k.crt" "$LURK_T/keys/$k.pem" > "$H/$k.local.pem"
    cat "$LURK_T/pki/web-$k.crt" "$LURK_T/ref/$k.pem" > "$H/$k.lurk.pem"
done

declare -A PORT HPID CNF
VARIANTS="local async-0ms async-5ms block-0ms block-5ms"

# hp_start VARIANT: (re)start one HAProxy
hp_start() {
    local v=$1 k
    if [ -z "${CNF[$v]}" ]; then
        env -u OPENSSL_CONF "$HAPROXY" -db -f "$H/$v.cfg" >> "$H/$v.log" 2>&1 < /dev/null &
    else
        OPENSSL_CONF=${CNF[$v]} "$HAPROXY" -db -f "$H/$v.cfg" >> "$H/$v.log" 2>&1 < /dev/null &
    fi
    HPID[$v]=$!
    LURK_PIDS+=("$!")
    for k in $KEYS; do lurk_wait_port "${PORT[$v-$k]}" 15 || { cat "$H/$v.log" >&2; exit 1; }; done
}

for v in $VARIANTS; do
    case $v in
        local) cnf=""; async=""; kind=local ;;
        async-0ms) cnf=$LURK_T/ks0.openssl.cnf; async=ssl-mode-async; kind=lurk ;;
        async-5ms) cnf=$LURK_T/ks5.openssl.cnf; async=ssl-mode-async; kind=lurk ;;
        block-0ms) cnf=$LURK_T/ks0.openssl.cnf; async=""; kind=lurk ;;
        block-5ms) cnf=$LURK_T/ks5.openssl.cnf; async=""; kind=lurk ;;
    esac
    CNF[$v]=$cnf
    {
        echo "global"
        echo "    nbthread $THREADS"
        echo "    maxconn 4000"
        [ -n "$async" ] && echo "    $async"
        echo "defaults"
        echo "    mode http"
        echo "    timeout connect 5s"
        echo "    timeout client 30s"
        echo "    timeout server 30s"
        for k in $KEYS; do
            PORT[$v-$k]=$(lurk_port)
            echo "frontend fe-$k"
            echo "    bind 127.0.0.1:${PORT[$v-$k]} ssl crt $H/$k.$kind.pem"
            echo "    http-request return status 200 content-type text/plain string ok"
        done
    } > "$H/$v.cfg"
    hp_start "$v"
done

for r in $(seq "$ROUNDS"); do
    # rotate the order each round so that no variant always runs first
    set -- $VARIANTS
    shift $(( (r - 1) % 5 ))
    order="$* $(echo $VARIANTS | cut -d' ' -f1-$(( (r - 1) % 5 )) 2>/dev/null)"
    [ $(( (r - 1) % 5 )) = 0 ] && order=$VARIANTS
    for k in $KEYS; do
        for v in $order; do
            if ! kill -0 "${HPID[$v]}" 2>/dev/null; then
                bench_log "haproxy $v had died: restarting it for this measurement"
                hp_start "$v"
            fi
            line=$(hsbench "${PORT[$v-$k]}" -V 1.3 -c "$CONNS" -d "$SECS" -w 0.5)
            valid "$line" || bench_log "haproxy $k $v: invalid run: $line"
            if ! kill -0 "${HPID[$v]}" 2>/dev/null; then
                # A dead HAProxy is a result too: say so, with its last words.
                line="$line crashed=1"
                bench_log "haproxy $v is dead: $(grep -m1 -E 'FATAL|ALERT' "$H/$v.log")"
            fi
            record haproxy "$k/tls1.3/c$CONNS/t$THREADS" "$v" "$r" "$line"
        done
    done
done
for ks in ks0 ks5; do
    pid=KS_PID_$ks
    lurk_stop "${!pid}"
    grep -E 'stopped:' "$LURK_T/$ks.log" | sed "s/^/# $ks: /" >&2
done
