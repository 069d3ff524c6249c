#!/usr/bin/env bash
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
lurk_done
