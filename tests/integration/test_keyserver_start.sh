#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The key server refuses to start on a broken configuration, exits 1 and
# names the problem; --check accepts a good one without listening.
. "$(dirname "$0")/lib.sh"

lurk_pki
PORT=$(lurk_port)
GOOD=$LURK_T/good.cnf
lurk_keyserver_conf "$GOOD" "tls+tcp://127.0.0.1:$PORT"

"$LURK_KEYSERVER" -c "$GOOD" --check > "$LURK_T/check.log" 2>&1
lurk_check "--check accepts a good configuration (exit 0)" test $? -eq 0
lurk_grep "--check reports each key" 'p384' "$LURK_T/check.log"

# refuse NAME REGEX: the config in $LURK_T/NAME.cnf must fail with exit 1
# and a message matching REGEX.
refuse() {
    local name=$1 regex=$2 rc
    timeout 10 "$LURK_KEYSERVER" -c "$LURK_T/$name.cnf" > "$LURK_T/$name.log" 2>&1
    rc=$?
    lurk_check "$name: exit status 1 (got $rc)" test "$rc" -eq 1
    lurk_grep "$name: the message names the problem" "$regex" "$LURK_T/$name.log"
}

cp "$LURK_T/keys/rsa.pem" "$LURK_T/open.pem"
chmod 644 "$LURK_T/open.pem"
sed "s|^rsa = .*|rsa = $LURK_T/open.pem|" "$GOOD" > "$LURK_T/world-readable.cnf"
refuse world-readable 'open\.pem.*(readable|chmod)'

sed "s|^rsa = .*|rsa = $LURK_T/keys/missing.pem|" "$GOOD" > "$LURK_T/missing-key.cnf"
refuse missing-key 'missing\.pem'

sed "s|^listen = .*|listen = http://127.0.0.1:$PORT|" "$GOOD" > "$LURK_T/bad-url.cnf"
refuse bad-url 'http://127\.0\.0\.1'

sed "s|^listen = .*|listen = tcp://127.0.0.1:$PORT|" "$GOOD" > "$LURK_T/cleartext.cnf"
refuse cleartext 'allow_insecure'

grep -v '^client_ca' "$GOOD" > "$LURK_T/no-ca.cnf"
refuse no-ca 'client_ca'

sed "s|^client_ca = .*|client_ca = $LURK_T/pki/nope.crt|" "$GOOD" > "$LURK_T/missing-ca.cnf"
refuse missing-ca 'nope\.crt'

{ cat "$GOOD"; echo "rsa = $LURK_T/keys/p256.pem"; } > "$LURK_T/duplicate.cnf"
refuse duplicate 'duplicate key id "rsa"'

sed 's|^p256 = |bad/id = |' "$GOOD" > "$LURK_T/bad-id.cnf"
refuse bad-id 'bad/id'

"$LURK_KEYSERVER" --no-such-option > "$LURK_T/usage.log" 2>&1
lurk_check "an unknown option is a usage error (exit 2)" test $? -eq 2

# A port in use is a listen error, not a hang.
lurk_keyserver_start first "$GOOD" || lurk_fail "first key server starts"
refuse_port() { timeout 10 "$LURK_KEYSERVER" -c "$GOOD" > "$LURK_T/port.log" 2>&1; }
refuse_port
lurk_check "a second key server on the same port exits 1" test $? -eq 1
lurk_done
