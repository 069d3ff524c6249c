#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The nginx/HAProxy pattern: load a lurk key, fork, sign in the child. And
# the unsupported order: sign in the parent, fork, the child must get a
# clear error rather than nng's abort.
. "$(dirname "$0")/lib.sh"

lurk_pki
KS_PORT=$(lurk_port)
lurk_keyserver_conf "$LURK_T/ks.cnf" "tls+tcp://127.0.0.1:$KS_PORT"
lurk_keyserver_start ks "$LURK_T/ks.cnf" || { lurk_fail "key server starts"; lurk_done; }
lurk_openssl_cnf "$LURK_T/openssl.cnf" "tls+tcp://127.0.0.1:$KS_PORT"
export OPENSSL_CONF=$LURK_T/openssl.cnf

for k in rsa p256 ed25519; do
    out=$LURK_T/fork-child-$k.log
    lurk_check "load lurk://$k, fork, the child signs and the signature verifies" \
        timeout 20 "$LURK_TOOLS_DIR/lurk-fork-sign" "lurk://$k" child > "$out" 2>&1 \
        || sed 's/^/#   /' "$out"
done

out=$LURK_T/fork-parent.log
lurk_check "sign in the parent, fork: the child fails cleanly" \
    timeout 20 "$LURK_TOOLS_DIR/lurk-fork-sign" lurk://rsa parent > "$out" 2>&1
lurk_grep "the child's error explains the fork" 'unusable after fork' "$out"
lurk_check_fails "no nng abort" grep -q 'not fork-reentrant' "$out"

# --- the key lookup helper ---------------------------------------------------
URL="tls+tcp://127.0.0.1:$KS_PORT"
# A wrapper in place of the helper records what it was given (arguments,
# environment, open descriptors), then runs the real one.
cat > "$LURK_T/spy-helper" <<SPY
#!/bin/sh
echo "args: \$*" > "$LURK_T/spy.args"
env > "$LURK_T/spy.env"
ls -l /proc/\$\$/fd > "$LURK_T/spy.fds"
[ -p /dev/stdout ] && echo "stdout is a pipe" >> "$LURK_T/spy.fds"
exec "$LURK_PUBKEY" "\$@"
SPY
chmod 755 "$LURK_T/spy-helper"
lurk_openssl_cnf "$LURK_T/spy.cnf" "$URL" "pubkey_helper = $LURK_T/spy-helper"
# The host has a descriptor of its own open (fd 9, not close-on-exec).
OPENSSL_CONF=$LURK_T/spy.cnf SPY_MARK=host-only timeout 20 openssl pkey -in lurk://p256 -pubout \
    > "$LURK_T/spy.pub" 2> "$LURK_T/spy.log" 9> "$LURK_T/host-only.fd"
lurk_grep "lurk:// loads through pubkey_helper" 'BEGIN PUBLIC KEY' "$LURK_T/spy.pub"
lurk_grep "the helper is asked for the key with the channel settings" \
    "--server ${URL//+/\\+} .*--ca $LURK_T/pki/ca.crt .*--server-name localhost .*-- p256\$" \
    "$LURK_T/spy.args"
lurk_check_fails "the helper's environment is clean (no OPENSSL_CONF, nothing of the host's)" \
    grep -Eq '^(OPENSSL_CONF|SPY_MARK)=' "$LURK_T/spy.env"
lurk_grep "the helper's stdin is /dev/null" ' 0 -> /dev/null' "$LURK_T/spy.fds"
lurk_grep "the helper's stdout is a pipe" '^stdout is a pipe' "$LURK_T/spy.fds"
lurk_check_fails "the helper does not inherit the host's other descriptors" \
    grep -q 'host-only.fd' "$LURK_T/spy.fds"

# A missing or non-executable helper is named by its setting.
lurk_openssl_cnf "$LURK_T/nohelper.cnf" "$URL" "pubkey_helper = $LURK_T/no-such-helper"
OPENSSL_CONF=$LURK_T/nohelper.cnf timeout 20 openssl pkey -in lurk://p256 -pubout \
    > "$LURK_T/nohelper.log" 2>&1
lurk_grep "a missing pubkey_helper fails with a message naming it" \
    "pubkey_helper = \"$LURK_T/no-such-helper\": cannot run it: No such file" "$LURK_T/nohelper.log"
printf '#!/bin/sh\nexit 0\n' > "$LURK_T/noexec-helper"
chmod 644 "$LURK_T/noexec-helper"
lurk_openssl_cnf "$LURK_T/noexec.cnf" "$URL" "pubkey_helper = $LURK_T/noexec-helper"
OPENSSL_CONF=$LURK_T/noexec.cnf timeout 20 openssl pkey -in lurk://p256 -pubout \
    > "$LURK_T/noexec.log" 2>&1
lurk_grep "a non-executable pubkey_helper fails with a message naming it" \
    "pubkey_helper = \"$LURK_T/noexec-helper\": cannot run it: Permission denied" \
    "$LURK_T/noexec.log"

# A helper that never answers is killed at timeout_ms + 1 s, and reaped.
cat > "$LURK_T/hung-helper" <<HUNG
#!/bin/sh
echo \$\$ > "$LURK_T/hung.pid"
exec sleep 60
HUNG
chmod 755 "$LURK_T/hung-helper"
lurk_openssl_cnf "$LURK_T/hung.cnf" "$URL" "pubkey_helper = $LURK_T/hung-helper" "timeout_ms = 500"
start=$(date +%s%N)
OPENSSL_CONF=$LURK_T/hung.cnf timeout 20 openssl pkey -in lurk://p256 -pubout \
    > "$LURK_T/hung.log" 2>&1
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
lurk_log "load with a hung helper failed after $elapsed ms (timeout_ms = 500)"
lurk_grep "a hung helper: the load fails with no answer" 'no answer from the key server within 500 ms' \
    "$LURK_T/hung.log"
lurk_check "a hung helper: the load gives up at the deadline (1.5 s; under 10 s on a loaded machine)" \
    test "$elapsed" -lt 10000
lurk_check "a hung helper was started" test -s "$LURK_T/hung.pid"
lurk_check_fails "a hung helper is killed" kill -0 "$(cat "$LURK_T/hung.pid" 2>/dev/null)" 2> /dev/null

# A multi-threaded host: a thread holding a lock that its atfork handler
# takes, malloc/OpenSSL churn, a thread reaping children. A key lookup by
# fork() blocks in that handler; the spawned helper does not.
out=$LURK_T/mt-load.log
lurk_check "a multi-threaded loader (locks held, children reaped) loads lurk:// 20 times" \
    timeout 60 "$LURK_TOOLS_DIR/lurk-mt-load" lurk://rsa 20 > "$out" 2>&1 \
    || sed 's/^/#   /' "$out" | tail -n 20
lurk_done
