# SPDX-License-Identifier: Apache-2.0
# Shared helpers for LURK integration tests. Source it from a test script.
#
# Every test runs in its own temporary directory, generates its own
# certificates, starts its own servers on free 127.0.0.1 ports, and stops
# them by PID on exit. It ends with one line "N passed, N failed, N skipped"
# and exits non-zero when anything failed, 77 (ctest's SKIP_RETURN_CODE)
# when every check was skipped.
#
# Every "ok"/"not ok" line goes to the script's own standard output as it
# was when lib.sh was sourced (fd LURK_TAP), even from a check whose output
# the caller redirects (`lurk_check DESC cmd > log 2>&1`): the lines reach
# ctest's output, not a log file. Processes started through the helpers
# below do not inherit that descriptor.
#
# ctest passes the build products in the environment:
#   LURK_KEYSERVER, LURK_CTL, LURK_PUBKEY, LURK_MODULES_DIR, LURK_FREEPORT,
#   LURK_TOOLS_DIR

set -u -o pipefail

: "${LURK_KEYSERVER:?set by ctest}" "${LURK_CTL:?}" "${LURK_PUBKEY:?}" "${LURK_MODULES_DIR:?}"
: "${LURK_FREEPORT:?}"

LURK_T=$(mktemp -d "${TMPDIR:-/tmp}/lurk-test.XXXXXX")
LURK_PIDS=()
LURK_PASS=0
LURK_FAIL=0
LURK_SKIP=0
exec {LURK_TAP}>&1

lurk_cleanup() {
    local pid
    for pid in "${LURK_PIDS[@]}"; do
        kill -CONT "$pid" 2>/dev/null
        kill "$pid" 2>/dev/null
    done
    for pid in "${LURK_PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    if [ "${LURK_KEEP:-0}" = 1 ] || [ "$LURK_FAIL" -gt 0 ]; then
        echo "# logs kept in $LURK_T"
    else
        rm -rf "$LURK_T"
    fi
}
trap lurk_cleanup EXIT

lurk_log() { echo "# $*"; }

# _lurk_report LINE: to the test's output (see above); to stdout if that
# descriptor is closed (inside a command run by lurk_check).
_lurk_report() { { echo "$*" >&"$LURK_TAP"; } 2> /dev/null || echo "$*"; }

lurk_pass() { LURK_PASS=$((LURK_PASS + 1)); _lurk_report "ok - $*"; }

lurk_fail() { LURK_FAIL=$((LURK_FAIL + 1)); _lurk_report "not ok - $*"; }

lurk_skip() { LURK_SKIP=$((LURK_SKIP + 1)); _lurk_report "ok - SKIP $*"; }

# lurk_check DESC CMD...: passes when CMD succeeds. Returns CMD's status, so
# that `lurk_check DESC CMD || show-diagnostics` works.
lurk_check() {
    local desc=$1 rc; shift
    "$@" {LURK_TAP}>&-
    rc=$?
    if [ "$rc" -eq 0 ]; then lurk_pass "$desc"; else lurk_fail "$desc (exit status $rc)"; fi
    return "$rc"
}

# lurk_check_fails DESC CMD...: passes when CMD fails. Returns 0 when the
# check passed (CMD failed), 1 when it did not.
lurk_check_fails() {
    local desc=$1; shift
    if "$@" {LURK_TAP}>&-; then
        lurk_fail "$desc (unexpectedly succeeded)"
        return 1
    fi
    lurk_pass "$desc"
}

# lurk_grep DESC PATTERN FILE: passes when FILE matches the extended regex;
# returns 0 when it passed, 1 when not (and shows the end of FILE).
lurk_grep() {
    if grep -Eq -- "$2" "$3"; then
        lurk_pass "$1"
        return 0
    fi
    lurk_fail "$1: /$2/ not in $3"
    { sed 's/^/#   /' "$3" | tail -n 15 >&"$LURK_TAP"; } 2> /dev/null
    return 1
}

# lurk_done: the summary line, then the exit status: 1 if anything failed,
# 77 if every check was skipped (shown by ctest as skipped), else 0.
lurk_done() {
    _lurk_report "${LURK_PASS} passed, ${LURK_FAIL} failed, ${LURK_SKIP} skipped"
    [ "$LURK_FAIL" -gt 0 ] && exit 1
    [ "$LURK_PASS" -eq 0 ] && [ "$LURK_SKIP" -gt 0 ] && exit 77
    exit 0
}

lurk_port() { "$LURK_FREEPORT"; }

# lurk_wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT.
lurk_wait_port() {
    local port=$1 n=$(( ${2:-10} * 10 ))
    for _ in $(seq "$n"); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "# nothing listens on port $port" >&2
    return 1
}

# lurk_wait_log FILE REGEX [SECONDS]
lurk_wait_log() {
    local n=$(( ${3:-10} * 10 ))
    for _ in $(seq "$n"); do
        grep -Eq -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "# /$2/ never appeared in $1" >&2
    tail -n 20 "$1" >&2
    return 1
}

# lurk_wait_log_count FILE REGEX N [SECONDS]: until FILE has at least N lines
# matching REGEX: waits for the Nth occurrence of an event whose earlier
# occurrences are already in the log.
lurk_wait_log_count() {
    local file=$1 re=$2 want=$3 n=$(( ${4:-10} * 10 )) have=0
    for _ in $(seq "$n"); do
        have=$(grep -Ec -- "$re" "$file" 2>/dev/null)
        [ "${have:-0}" -ge "$want" ] && return 0
        sleep 0.1
    done
    echo "# /$re/ appeared ${have:-0} times in $file, not $want" >&2
    tail -n 20 "$file" >&2
    return 1
}

# lurk_log_count FILE REGEX: how many lines of FILE match REGEX now (0 if
# none or no file); take it before an action, then wait for count + 1.
lurk_log_count() { local c; c=$(grep -Ec -- "$2" "$1" 2>/dev/null); echo "${c:-0}"; }

# lurk_wait_exit PID [SECONDS]: until process PID has exited.
lurk_wait_exit() {
    local pid=$1 n=$(( ${2:-10} * 10 ))
    for _ in $(seq "$n"); do
        kill -0 "$pid" 2>/dev/null || return 0
        # An exited child of this shell stays a zombie until waited for.
        [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = Z ] && return 0
        sleep 0.1
    done
    echo "# process $pid still runs after ${2:-10} s" >&2
    return 1
}

# lurk_wait_metric URL REGEX [SECONDS]: until a line of the Prometheus page
# at URL matches REGEX (a gauge reaching a value: requests in flight).
lurk_wait_metric() {
    local url=$1 re=$2 n=$(( ${3:-10} * 20 ))
    for _ in $(seq "$n"); do
        curl -sf --max-time 2 "$url" 2> /dev/null | grep -Eq -- "$re" && return 0
        sleep 0.05
    done
    echo "# /$re/ never appeared in $url" >&2
    return 1
}

# --- certificates -----------------------------------------------------------

# _lurk_cert NAME CA CN SAN: a P-256 key and a certificate signed by CA.
_lurk_cert() {
    local name=$1 ca=$2 cn=$3 san=$4 dir=$LURK_T/pki
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$name.key" 2>/dev/null
    openssl req -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr" 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\n' "$san" > "$dir/$name.ext"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
    chmod 600 "$dir/$name.key"
}

_lurk_ca() {
    local name=$1 dir=$LURK_T/pki
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3 \
        -subj "/CN=LURK test $name" -keyout "$dir/$name.key" -out "$dir/$name.crt" 2>/dev/null
}

# lurk_pki: the channel PKI (CA, key server, edge, and a rogue edge from
# another CA) and the web PKI (a CA and one server certificate per key).
# Keys served by the key server: rsa (2048), p256, p384, ed25519.
lurk_pki() {
    local dir=$LURK_T/pki k
    mkdir -p "$dir" "$LURK_T/keys"
    _lurk_ca ca
    _lurk_ca rogue-ca
    _lurk_cert keyserver ca localhost "DNS:localhost,IP:127.0.0.1"
    _lurk_cert edge ca edge1.example "DNS:edge1.example"
    _lurk_cert rogue-edge rogue-ca edge1.example "DNS:edge1.example"
    _lurk_ca web-ca
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$LURK_T/keys/rsa.pem" 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$LURK_T/keys/p256.pem" 2>/dev/null
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$LURK_T/keys/p384.pem" 2>/dev/null
    openssl genpkey -algorithm ED25519 -out "$LURK_T/keys/ed25519.pem" 2>/dev/null
    chmod 600 "$LURK_T"/keys/*.pem
    for k in rsa p256 p384 ed25519; do
        openssl req -new -key "$LURK_T/keys/$k.pem" -subj "/CN=localhost" -out "$dir/web-$k.csr" 2>/dev/null
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$dir/web.ext"
        openssl x509 -req -in "$dir/web-$k.csr" -CA "$dir/web-ca.crt" -CAkey "$dir/web-ca.key" \
            -CAcreateserial -days 2 -extfile "$dir/web.ext" -out "$dir/web-$k.crt" 2>/dev/null
    done
}

# lurk_mini_ca: an `openssl ca` database over the test CA ($LURK_T/pki/ca.*),
# for edge certificates with chosen dates, revocation and CRLs. After
# lurk_pki.
lurk_mini_ca() {
    local dir=$LURK_T/pki/mini
    mkdir -p "$dir/new"
    : > "$dir/index.txt"
    echo 1000 > "$dir/serial"
    cat > "$dir/ca.cnf" <<CNF
[ca]
default_ca = d
[d]
database = $dir/index.txt
new_certs_dir = $dir/new
serial = $dir/serial
default_md = sha256
policy = p
default_crl_days = 2
unique_subject = no
copy_extensions = copy
[p]
commonName = supplied
CNF
}

# lurk_mini_cert NAME [openssl ca options...]: a P-256 key and a certificate
# for CN=NAME.example from the mini CA, in $LURK_T/pki/NAME.{key,crt}.
lurk_mini_cert() {
    local n=$1 dir=$LURK_T/pki; shift
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$n.key" 2>/dev/null
    chmod 600 "$dir/$n.key"
    openssl req -new -key "$dir/$n.key" -subj "/CN=$n.example" -out "$dir/$n.csr" 2>/dev/null
    openssl ca -batch -config "$dir/mini/ca.cnf" -cert "$dir/ca.crt" -keyfile "$dir/ca.key" \
        -in "$dir/$n.csr" -out "$dir/$n.crt" -notext "$@" > "$LURK_T/ca-$n.log" 2>&1
}

# --- key server ---------------------------------------------------------------

# lurk_keyserver_conf FILE URL [extra [keyserver] lines...]
lurk_keyserver_conf() {
    local file=$1 url=$2; shift 2
    {
        echo "[keyserver]"
        echo "listen = $url"
        echo "tls_cert = $LURK_T/pki/keyserver.crt"
        echo "tls_key = $LURK_T/pki/keyserver.key"
        echo "client_ca = $LURK_T/pki/ca.crt"
        # The tests exercise RSA key exchange (off by default) unless told.
        case " $* " in *" rsa_decrypt "*|*" rsa_decrypt="*) ;; *) echo "rsa_decrypt = yes" ;; esac
        for line in "$@"; do echo "$line"; done
        echo "[keys]"
        echo "rsa = $LURK_T/keys/rsa.pem"
        echo "p256 = $LURK_T/keys/p256.pem"
        echo "p384 = $LURK_T/keys/p384.pem"
        echo "ed25519 = $LURK_T/keys/ed25519.pem"
    } > "$file"
}

# lurk_keyserver_start NAME CONF [ARGS...]: sets LURK_KS_PID; log in $LURK_T/NAME.log
lurk_keyserver_start() {
    local name=$1 conf=$2; shift 2
    "$LURK_KEYSERVER" -c "$conf" "$@" > "$LURK_T/$name.log" 2>&1 {LURK_TAP}>&- &
    LURK_KS_PID=$!
    LURK_PIDS+=("$LURK_KS_PID")
    lurk_wait_log "$LURK_T/$name.log" "ready" 10
}

# lurk_openssl_cnf FILE SERVER-URLS [extra lurk_sect lines...]: activates
# default first, then lurk, with optional default properties (docs/provider.md,
# ACTIVATION: why the order and the properties matter).
lurk_openssl_cnf() {
    local file=$1 urls=$2; shift 2
    {
        echo "openssl_conf = openssl_init"
        echo "[openssl_init]"
        echo "providers = provider_sect"
        echo "alg_section = alg_sect"
        echo "[alg_sect]"
        echo "default_properties = ?provider=default"
        echo "[provider_sect]"
        echo "default = default_sect"
        echo "lurk = lurk_sect"
        echo "[default_sect]"
        echo "activate = 1"
        echo "[lurk_sect]"
        echo "module = $LURK_MODULES_DIR/lurk.so"
        echo "activate = 1"
        echo "servers = $urls"
        echo "tls_cert = $LURK_T/pki/edge.crt"
        echo "tls_key = $LURK_T/pki/edge.key"
        echo "tls_ca = $LURK_T/pki/ca.crt"
        echo "server_name = localhost"
        # The build tree's key lookup helper (the default is the install path).
        echo "pubkey_helper = $LURK_PUBKEY"
        for line in "$@"; do echo "$line"; done
    } > "$file"
}

# lurk_bg NAME CMD...: runs CMD in the background, output to $LURK_T/NAME.log;
# sets LURK_BG_PID.
lurk_bg() {
    local name=$1; shift
    "$@" > "$LURK_T/$name.log" 2>&1 < /dev/null {LURK_TAP}>&- &
    LURK_BG_PID=$!
    LURK_PIDS+=("$LURK_BG_PID")
}

# lurk_bg_stdin NAME CMD...: like lurk_bg, but with a standard input that
# stays open (servers such as `s_server -dtls` stop at end of input).
lurk_bg_stdin() {
    local name=$1 fifo=$LURK_T/$1.stdin; shift
    mkfifo "$fifo"
    "$@" > "$LURK_T/$name.log" 2>&1 <> "$fifo" {LURK_TAP}>&- &
    LURK_BG_PID=$!
    LURK_PIDS+=("$LURK_BG_PID")
}

lurk_stop() {
    kill "$1" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$1" 2>/dev/null
}

# --- clients -----------------------------------------------------------------

# lurk_clients NAME PORT: three independent client stacks fetch a page from
# https://localhost:PORT/ over TLS 1.3 and TLS 1.2, verifying the chain to the
# test web CA: curl (OpenSSL), gnutls-cli (GnuTLS, which verifies our
# signatures with a second implementation) and Python's ssl module. None of
# them is given OPENSSL_CONF: clients are untouched.
lurk_clients() {
    local name=$1 port=$2 v ca=$LURK_T/pki/web-ca.crt out
    for v in 1.3 1.2; do
        out=$LURK_T/$name-curl-$v.log
        env -u OPENSSL_CONF timeout 20 curl -sS --tlsv"$v" --tls-max "$v" --cacert "$ca" \
            "https://localhost:$port/" > "$out" 2>&1
        lurk_grep "$name: curl TLS $v" 'lurk ok' "$out"
    done
    if command -v gnutls-cli > /dev/null; then
        for v in 1.3 1.2; do
            out=$LURK_T/$name-gnutls-$v.log
            printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' | env -u OPENSSL_CONF timeout 20 \
                gnutls-cli --x509cafile="$ca" -p "$port" \
                --priority "NORMAL:-VERS-ALL:+VERS-TLS$v" localhost > "$out" 2>&1
            lurk_grep "$name: gnutls-cli TLS $v handshake" 'Handshake was completed' "$out"
            lurk_grep "$name: gnutls-cli TLS $v page" 'lurk ok' "$out"
        done
    else
        lurk_skip "$name: gnutls-cli is not installed (scripts/setup-debian installs gnutls-bin)"
    fi
    for v in TLSv1_3 TLSv1_2; do
        out=$LURK_T/$name-python-$v.log
        env -u OPENSSL_CONF timeout 20 /usr/bin/python3 - "$port" "$ca" "$v" > "$out" 2>&1 <<'PY'
import socket, ssl, sys
port, ca, ver = int(sys.argv[1]), sys.argv[2], getattr(ssl.TLSVersion, sys.argv[3])
ctx = ssl.create_default_context(cafile=ca)
ctx.minimum_version = ctx.maximum_version = ver
with ctx.wrap_socket(socket.create_connection(("localhost", port)), server_hostname="localhost") as s:
    s.sendall(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    print(s.version(), data.decode(errors="replace"))
PY
        lurk_grep "$name: python ssl $v" "lurk ok" "$out"
    done
}

# lurk_keyrefs: reference files $LURK_T/ref/<id>.pem for every test key,
# made from the key server configuration (no network) and checked against
# the web certificates.
lurk_keyrefs() {
    local conf=$1 k
    mkdir -p "$LURK_T/ref"
    for k in rsa p256 p384 ed25519; do
        "$LURK_CTL" --keyserver-config "$conf" --match-cert "$LURK_T/pki/web-$k.crt" \
            -o "$LURK_T/ref/$k.pem" keyref "$k" || return 1
    done
}

# --- nginx ---------------------------------------------------------------------

LURK_NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# lurk_nginx_server PORT CERT KEY: one TLS server block, answering
# "lurk ok <protocol> <cipher>".
lurk_nginx_server() {
    printf '    server {\n        listen 127.0.0.1:%s ssl;\n' "$1"
    printf '        ssl_certificate %s;\n        ssl_certificate_key %s;\n' "$2" "$3"
    printf '        location / { return 200 "lurk ok $ssl_protocol $ssl_cipher\\n"; }\n    }\n'
}

# lurk_nginx_conf FILE DIR WORKERS BLOCK...: an nginx.conf for Debian's
# nginx run as root with DIR as its prefix (pid, logs/, tmp/ inside it),
# TLS 1.2 and 1.3, and the given server blocks (lurk_nginx_server).
lurk_nginx_conf() {
    local file=$1 dir=$2 workers=$3 t; shift 3
    mkdir -p "$dir/tmp" "$dir/logs"
    {
        printf 'worker_processes %s;\nuser root;\npid %s/nginx.pid;\n' "$workers" "$dir"
        printf 'error_log %s/logs/error.log info;\nevents { worker_connections 256; }\n' "$dir"
        printf 'http {\n    access_log %s/logs/access.log;\n' "$dir"
        for t in client_body proxy fastcgi uwsgi scgi; do
            printf '    %s_temp_path %s/tmp/%s;\n' "$t" "$dir" "$t"
        done
        printf '    ssl_protocols TLSv1.2 TLSv1.3;\n'
        printf '%s\n' "$@"
        printf '}\n'
    } > "$file"
}

# --- software TPM ----------------------------------------------------------------

# lurk_swtpm DIR: a software TPM (swtpm) with its state in DIR; sets
# LURK_SWTPM_PID and LURK_SWTPM_PORT and exports the TCTI that tpm2-tools
# (TPM2TOOLS_TCTI) and tpm2-openssl (TPM2OPENSSL_TCTI) use to reach it.
# The swtpm TCTI finds the control channel at the server port + 1, which
# no free-port helper can reserve, and swtpm binds without SO_REUSEADDR, so
# a port in TIME_WAIT (the other tests' clients churn through the ephemeral
# range) fails too. So: ports below the ephemeral range, retried on failure.
lurk_swtpm() {
    local dir=$1 port started=0
    mkdir -p "$dir/state"
    for _ in $(seq 8); do
        port=$(( 20000 + (RANDOM % 6000) * 2 ))
        lurk_bg swtpm swtpm socket --tpm2 --tpmstate dir="$dir/state" \
            --server type=tcp,port="$port",bindaddr=127.0.0.1 \
            --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
            --flags not-need-init,startup-clear
        LURK_SWTPM_PID=$LURK_BG_PID
        for _ in $(seq 50); do
            kill -0 "$LURK_SWTPM_PID" 2>/dev/null || break
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then started=1; break; fi
            sleep 0.1
        done
        [ "$started" = 1 ] && break
        lurk_stop "$LURK_SWTPM_PID"
    done
    LURK_SWTPM_PORT=$port
    export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port"
    export TPM2OPENSSL_TCTI=$TPM2TOOLS_TCTI
    [ "$started" = 1 ]
}

# lurk_tpm_persist_key DIR HANDLE: a P-256 key created in the TPM with
# tpm2-tools and made persistent at HANDLE (a `handle:HANDLE` OSSL_STORE URI
# for tpm2-openssl); work files and the log (DIR/persist.log) in DIR.
# Without a resource manager each tool leaves its transient objects loaded:
# they are flushed between steps.
lurk_tpm_persist_key() {
    local dir=$1 handle=$2
    {
        tpm2_createprimary -Q -C o -g sha256 -G ecc -c "$dir/primary.ctx" && tpm2_flushcontext -t \
        && tpm2_create -Q -C "$dir/primary.ctx" -G ecc256 -u "$dir/key.pub" -r "$dir/key.priv" \
        && tpm2_flushcontext -t \
        && tpm2_load -Q -C "$dir/primary.ctx" -u "$dir/key.pub" -r "$dir/key.priv" -c "$dir/key.ctx" \
        && tpm2_flushcontext -t \
        && tpm2_evictcontrol -Q -C o -c "$dir/key.ctx" "$handle" && tpm2_flushcontext -t
    } > "$dir/persist.log" 2>&1
}
