# SPDX-License-Identifier: Apache-2.0
# Shared by the bench scripts: build products, the test harness's PKI and
# process helpers (tests/integration/lib.sh), result recording.
#
# Environment:
#   LURK_BUILD   build directory (default: build/ of this checkout)
#   ROUNDS       interleaved rounds per measurement (default 3)
#   BENCH_OUT    directory for results.tsv and logs (default: a new
#                LURK_BUILD/bench-results/<date>-<time>)
#   LURK_KEEP=1  keep the temporary directory (keys, configs, server logs)

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LURK_ROOT=$(cd "$BENCH_DIR/.." && pwd)
LURK_BUILD=$(cd "${LURK_BUILD:-$LURK_ROOT/build}" && pwd) || exit 1
ROUNDS=${ROUNDS:-3}
NCPU=$(nproc)

export LURK_KEYSERVER=$LURK_BUILD/keyserver/lurk-keyserver
export LURK_CTL=$LURK_BUILD/tools/lurkctl
export LURK_PUBKEY=$LURK_BUILD/tools/lurk-pubkey
export LURK_MODULES_DIR=$LURK_BUILD/provider
export LURK_FREEPORT=$LURK_BUILD/tests/tools/lurk-freeport
export LURK_TOOLS_DIR=$LURK_BUILD/tests/tools
for f in "$LURK_KEYSERVER" "$LURK_CTL" "$LURK_PUBKEY" "$LURK_MODULES_DIR/lurk.so" "$LURK_FREEPORT"; do
    [ -e "$f" ] || { echo "bench: $f missing: cmake --build $LURK_BUILD first" >&2; exit 1; }
done

# The programs: CMake's (add_subdirectory(bench)) or bench/build.sh's.
if [ -x "$LURK_BUILD/bench/lurk-hsbench" ] && [ -x "$LURK_BUILD/bench/lurk-signbench" ] \
    && [ -x "$LURK_BUILD/bench/lurk-signcore" ]; then
    BENCH_BIN=$LURK_BUILD/bench
else
    BENCH_BIN=$(bash "$BENCH_DIR/build.sh" "$LURK_BUILD") || exit 1
fi
HSBENCH=$BENCH_BIN/lurk-hsbench
SIGNBENCH=$BENCH_BIN/lurk-signbench
SIGNCORE=$BENCH_BIN/lurk-signcore

if [ -z "${BENCH_OUT:-}" ]; then
    BENCH_OUT=$LURK_BUILD/bench-results/$(date +%Y%m%d-%H%M%S)
fi
mkdir -p "$BENCH_OUT"
BENCH_OUT=$(cd "$BENCH_OUT" && pwd)
RESULTS=$BENCH_OUT/results.tsv
touch "$RESULTS"

# lib.sh: temporary directory, PKI, key server and process helpers, and
# stopping every process it started (by PID) on exit.
. "$LURK_ROOT/tests/integration/lib.sh"
set +e

# Keys: rsa (2048), p256, ed25519 (p384 exists too). Signature schemes the
# key server is asked for in the signing benchmark.
declare -A SCHEME=([rsa]=0x0804 [p256]=0x0403 [ed25519]=0x0807)
declare -A SPEED_ALG=([rsa]=rsa2048 [p256]=ecdsap256 [ed25519]=ed25519)

bench_log() { echo "# $*" >&2; }

# record SECTION CASE VARIANT ROUND LINE: one measurement (LINE is the
# key=value output of a bench program) with the 1-minute load average.
record() {
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    printf '%s\t%s\t%s\t%s\t%s load=%s\n' "$1" "$2" "$3" "$4" "$5" "$load" >> "$RESULTS"
    printf '%-10s %-28s %-16s r%s  %s\n' "$1" "$2" "$3" "$4" "$5" >&2
}

# bench_pki: keys, certificates and reference files, once per script.
bench_pki() {
    lurk_pki
    lurk_keyserver_conf "$LURK_T/refs.cnf" "tls+tcp://127.0.0.1:1"
    lurk_keyrefs "$LURK_T/refs.cnf" || { echo "bench: cannot make reference files" >&2; exit 1; }
}

# bench_keyserver NAME [conf lines...] [-- keyserver args...]: a key server
# on a free port; sets KS_URL_<NAME>, KS_PID_<NAME> and writes
# $LURK_T/NAME.openssl.cnf for edges that use it.
#
# Everything at its default except the replay cache: by default it holds
# 100000 signatures per 60 s replay window and refuses beyond (1667 signs/s
# sustained), which a benchmark passes within seconds. 4 Mi entries cover
# 60 s at 70000 signs/s. BENCH_REPLAY_CACHE= (empty) keeps the default.
BENCH_REPLAY_CACHE=${BENCH_REPLAY_CACHE-4194304}
bench_keyserver() {
    local name=$1 port lines=() args=()
    shift
    [ -n "$BENCH_REPLAY_CACHE" ] && lines+=("replay_cache = $BENCH_REPLAY_CACHE")
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do lines+=("$1"); shift; done
    [ "${1:-}" = "--" ] && { shift; args=("$@"); }
    port=$(lurk_port)
    lurk_keyserver_conf "$LURK_T/$name.cnf" "tls+tcp://127.0.0.1:$port" "${lines[@]}"
    lurk_keyserver_start "$name" "$LURK_T/$name.cnf" "${args[@]}" \
        || { echo "bench: key server $name does not start" >&2; cat "$LURK_T/$name.log" >&2; exit 1; }
    printf -v "KS_URL_$name" '%s' "tls+tcp://127.0.0.1:$port"
    printf -v "KS_PID_$name" '%s' "$LURK_KS_PID"
    lurk_openssl_cnf "$LURK_T/$name.openssl.cnf" "tls+tcp://127.0.0.1:$port"
}

# signbench KS-NAME ARGS...: lurk-signbench with the edge's credentials.
signbench() {
    local name=$1 url
    shift
    url=KS_URL_$name
    "$SIGNBENCH" --url "${!url}" --cert "$LURK_T/pki/edge.crt" --key "$LURK_T/pki/edge.key" \
        --ca "$LURK_T/pki/ca.crt" --server-name localhost "$@"
}

# hsbench PORT ARGS...: lurk-hsbench against 127.0.0.1:PORT, outside any
# LURK configuration (the client is a plain OpenSSL client).
hsbench() {
    local port=$1
    shift
    env -u OPENSSL_CONF "$HSBENCH" -q -p "$port" "$@"
}

# A measurement is valid when it completed work and had no error.
valid() { [[ $1 =~ (handshakes|ops|signs)=[1-9] ]] && [[ ! $1 =~ errors=[1-9] ]]; }

# cpu_ticks PID: user+system clock ticks of a process (all its threads).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

bench_machine() {
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "nproc: $NCPU"
        echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
        echo "kernel: $(uname -sr)"
        echo "openssl: $(openssl version)"
        for p in libssl3 libnng1 libmbedtls14 nginx nginx-light nginx-core haproxy curl; do
            v=$(dpkg-query -W -f '${Version}' "$p" 2>/dev/null) && [ -n "$v" ] && echo "package $p: $v"
        done
        src=$(grep -m1 '^CMAKE_HOME_DIRECTORY:' "$LURK_BUILD/CMakeCache.txt" | cut -d= -f2)
        echo "build: $LURK_BUILD ($(grep -m1 CMAKE_BUILD_TYPE: "$LURK_BUILD/CMakeCache.txt" | cut -d= -f2)) from $src"
        if git -C "$src" rev-parse --git-dir > /dev/null 2>&1; then
            echo "lurk source: commit $(git -C "$src" rev-parse --short HEAD)$(git -C "$src" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
        else
            echo "lurk source: not a git checkout (export of commit ${LURK_SOURCE_COMMIT:-unknown})"
        fi
        echo "bench scripts: $BENCH_DIR"
        echo "loadavg at start: $(cat /proc/loadavg)"
    } > "$BENCH_OUT/machine.txt"
}

# bench_nginx_start VARIANT [WORKERS]: one nginx (2 workers unless told),
# one server block per key of $KEYS; VARIANT "local" loads the key files,
# any other the reference files through $LURK_CNF. Sets PORT[nginx-VARIANT-KEY]
# and SRVPID[nginx-VARIANT] (declare -A PORT SRVPID first; needs NGINX).
bench_nginx_start() {
    local v=$1 p=$LURK_T/nginx-$1 k key
    mkdir -p "$p/tmp" "$p/logs"
    {
        echo "worker_processes ${2:-2};"
        echo "user root;"
        echo "pid $p/nginx.pid;"
        echo "error_log $p/logs/error.log crit;"
        echo "events { worker_connections 1024; }"
        echo "http {"
        echo "  access_log off;"
        echo "  client_body_temp_path $p/tmp/body; proxy_temp_path $p/tmp/proxy;"
        echo "  fastcgi_temp_path $p/tmp/fastcgi; uwsgi_temp_path $p/tmp/uwsgi;"
        echo "  scgi_temp_path $p/tmp/scgi;"
        echo "  ssl_protocols TLSv1.2 TLSv1.3;"
        for k in $KEYS; do
            PORT[nginx-$v-$k]=$(lurk_port)
            if [ "$v" = local ]; then key=$LURK_T/keys/$k.pem; else key=$LURK_T/ref/$k.pem; fi
            echo "  server { listen 127.0.0.1:${PORT[nginx-$v-$k]} ssl;"
            echo "    ssl_certificate $LURK_T/pki/web-$k.crt; ssl_certificate_key $key;"
            echo "    location / { return 200 \"ok\\n\"; } }"
        done
        echo "}"
    } > "$p/nginx.conf"
    if [ "$v" = local ]; then
        env -u OPENSSL_CONF "$NGINX" -p "$p" -c "$p/nginx.conf" -g 'daemon off;' > "$p/out.log" 2>&1 &
    else
        OPENSSL_CONF=$LURK_CNF "$NGINX" -p "$p" -c "$p/nginx.conf" -g 'daemon off;' > "$p/out.log" 2>&1 &
    fi
    SRVPID[nginx-$v]=$!
    LURK_PIDS+=("$!")
    for k in $KEYS; do lurk_wait_port "${PORT[nginx-$v-$k]}" 15 || exit 1; done
}
