#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A chrooted edge: Debian's Postfix, unmodified, with Debian's default
# `chroot = y` for smtpd, offers STARTTLS with a key it never holds. Its
# smtpd loads the key reference file (smtpd_tls_key_file) and activates
# the lurk provider (OPENSSL_CONF through import_environment) as root,
# before it enters its chroot (the queue directory) and becomes `postfix`;
# the channel's certificate, key and CA are read then, at activation. At
# the first handshake smtpd, chrooted, where none of those files exist,
# signs through the key server. Postfix runs from a config and queue
# directory of this test's own, on a free port, started and stopped here.
# Skips when Postfix is not installed.
. "$(dirname "$0")/lib.sh"

if ! command -v postfix > /dev/null || ! command -v postconf > /dev/null; then
    lurk_skip "Postfix is not installed (scripts/setup-debian installs postfix)"
    lurk_done
fi
if ! id postfix > /dev/null 2>&1 || ! getent group postdrop > /dev/null; then
    lurk_skip "no postfix user or postdrop group (the Debian package creates them)"
    lurk_done
fi
if [ "$(id -u)" != 0 ]; then
    lurk_skip "Postfix's master must run as root (chroot, privilege drop)"
    lurk_done
fi

lurk_pki
KS_PORT=$(lurk_port)
URL="tls+tcp://127.0.0.1:$KS_PORT"
lurk_keyserver_conf "$LURK_T/ks.cnf" "$URL" "audit_log = $LURK_T/audit.log"
lurk_keyserver_start ks "$LURK_T/ks.cnf" -v || { lurk_fail "key server starts"; lurk_done; }
lurk_check "reference files from the key server configuration" lurk_keyrefs "$LURK_T/ks.cnf"
lurk_openssl_cnf "$LURK_T/openssl.cnf" "$URL"

# A sanitized build (sanitize-run.sh): Postfix's daemons load the
# instrumented lurk.so, which needs the ASan runtime first in the process,
# as the driver's wrappers give openssl and nginx. Postfix's master passes
# on only what import_environment names. (Reports written after the chroot
# cannot reach the driver's log directory.)
SAN_ENV=""
if [ "${LURK_SANITIZE:-0}" = 1 ]; then
    runtime=$(ldd "$LURK_MODULES_DIR/lurk.so" | awk '/libasan|libclang_rt\.asan/ { print $3; exit }')
    SAN_ENV="LD_PRELOAD=$runtime ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0"
    SAN_ENV="$SAN_ENV UBSAN_OPTIONS=${UBSAN_OPTIONS:-}"
fi

# Postfix's own directories: configuration, queue (the chroot), data.
# Its daemons that are not chrooted reach the queue through the path, as
# `postfix`: the test directory must let them through.
chmod 711 "$LURK_T"
PF=$LURK_T/postfix
CONF=$PF/etc
SPOOL=$PF/spool
mkdir -p "$CONF" "$SPOOL" "$PF/data"
chown postfix: "$PF/data"
SMTP_PORT=$(lurk_port)
cat > "$CONF/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $SPOOL
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
myhostname = edge.lurk-test.example
mydestination =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# Log to a file through postlogd: no syslog needed.
maillog_file = $PF/maillog
maillog_file_prefixes = $PF
# Postfix's master passes its children only these (FIELD-NOTES 12).
import_environment = MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C OPENSSL_CONF=$LURK_T/openssl.cnf $SAN_ENV
smtpd_tls_security_level = may
smtpd_tls_cert_file = $LURK_T/pki/web-p256.crt
smtpd_tls_key_file = $LURK_T/ref/p256.pem
smtpd_tls_loglevel = 1
CF
# Debian's master.cf lines for the services an SMTP session touches, smtpd
# on the test's port, chrooted (the fifth column) as Debian ships it.
cat > "$CONF/master.cf" <<CF
127.0.0.1:$SMTP_PORT inet n - y - - smtpd
tlsmgr    unix  -       -       y       1000?   1       tlsmgr
rewrite   unix  -       -       y       -       -       trivial-rewrite
cleanup   unix  n       -       y       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
bounce    unix  -       -       y       -       0       bounce
defer     unix  -       -       y       -       0       bounce
trace     unix  -       -       y       -       0       bounce
anvil     unix  -       -       y       -       1       anvil
scache    unix  -       -       y       -       1       scache
proxymap  unix  -       -       n       -       -       proxymap
postlog   unix-dgram n  -       n       -       1       postlogd
CF
lurk_grep "master.cf: smtpd chrooted, as Debian ships it" \
    "^127\.0\.0\.1:$SMTP_PORT +inet +n +- +y " "$CONF/master.cf"

# postfix_stop: `postfix stop`, then the master has exited.
MASTER_PID=""
postfix_stop() {
    postfix -c "$CONF" stop > "$PF/stop.log" 2>&1
    [ -z "$MASTER_PID" ] || lurk_wait_exit "$MASTER_PID" 30
}

postfix -c "$CONF" start > "$PF/start.log" 2>&1
lurk_check "postfix -c DIR start" test $? -eq 0 || sed 's/^/#   /' "$PF/start.log"
if lurk_wait_log "$SPOOL/pid/master.pid" '[0-9]' 15; then
    MASTER_PID=$(tr -d ' \n' < "$SPOOL/pid/master.pid")
    LURK_PIDS+=("$MASTER_PID") # stopped on any exit, even a failed check's
fi
lurk_check "Postfix listens on 127.0.0.1:$SMTP_PORT" lurk_wait_port "$SMTP_PORT" 15

# STARTTLS, the chain verified to the test web CA, the handshake signed by
# the key server for the chrooted smtpd. QUIT after the handshake.
signed_before=$(lurk_log_count "$LURK_T/ks.log" 'signed .* with key "p256"')
for v in 1.3 1.2; do
    out=$LURK_T/starttls-$v.log
    printf 'QUIT\r\n' | env -u OPENSSL_CONF timeout 20 openssl s_client -starttls smtp \
        -connect "127.0.0.1:$SMTP_PORT" -servername localhost -CAfile "$LURK_T/pki/web-ca.crt" \
        -verify_return_error -crlf -ign_eof "-tls${v/./_}" > "$out" 2>&1
    lurk_grep "STARTTLS TLS $v: chain verified" 'Verify return code: 0 \(ok\)' "$out"
    lurk_grep "STARTTLS TLS $v: handshake complete" "^New, TLSv$v, Cipher is " "$out"
    lurk_grep "STARTTLS TLS $v: the session goes on (QUIT answered)" '^221 ' "$out"
done
lurk_check "the key server signed both handshakes" \
    lurk_wait_log_count "$LURK_T/ks.log" 'signed .* with key "p256"' $((signed_before + 2)) 10
lurk_grep "the audit log has the signatures" 'op=sign key=p256 .*result=OK' "$LURK_T/audit.log"

# The smtpd that signed: chrooted in the queue directory, running as postfix.
smtpd=$(pgrep -P "${MASTER_PID:-0}" -x smtpd | head -n 1)
lurk_log "smtpd pid: ${smtpd:-none}"
lurk_check "an smtpd process serves" test -n "$smtpd"
root=$(readlink "/proc/${smtpd:-0}/root")
lurk_check "smtpd is chrooted in the queue directory ($root)" test "$root" = "$SPOOL"
lurk_check "smtpd runs as postfix" test "$(ps -o user= -p "${smtpd:-0}" | tr -d ' ')" = postfix
lurk_check_fails "the channel's files are out of smtpd's reach" \
    test -e "/proc/${smtpd:-0}/root$LURK_T/pki/edge.crt"
lurk_check_fails "smtpd logged no TLS library problem" \
    grep -Eq 'TLS library problem|cannot get private key|cannot load' "$PF/maillog"
lurk_check_fails "no process died" grep -Eq 'killed by signal|fatal' "$PF/maillog"

postfix_stop
lurk_check "postfix -c DIR stop: the master exits" test -n "$MASTER_PID"
lurk_done
