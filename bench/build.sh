#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the benchmark programs against an existing LURK build directory
# with a plain cc command (no change to the top-level CMake project needed):
#
#   bench/build.sh [BUILD-DIR]      # default: build/ of this checkout
#
# Needs BUILD-DIR/proto/{lurk.pb-c.h,liblurk_transport.a,liblurk_wire.a},
# i.e. `cmake --build BUILD-DIR` has run. Output: BUILD-DIR/bench-bin/.
# If the top-level CMakeLists.txt has `add_subdirectory(bench)`, CMake builds
# the same programs into BUILD-DIR/bench/ and the scripts use those instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
out=$build/bench-bin
mkdir -p "$out"

for f in proto/lurk.pb-c.h proto/liblurk_transport.a proto/liblurk_wire.a; do
    [ -e "$build/$f" ] || { echo "bench/build.sh: $build/$f missing: build LURK first" >&2; exit 1; }
done

CC=${CC:-cc}
CFLAGS=(-O2 -g -std=c11 -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes
        -D_POSIX_C_SOURCE=200809L -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED)

# newer SRC... than OUT?
stale() {
    local o=$1; shift
    [ -e "$o" ] || return 0
    for s in "$@"; do [ "$s" -nt "$o" ] && return 0; done
    return 1
}

if stale "$out/lurk-hsbench" "$here/lurk-hsbench.c"; then
    "$CC" "${CFLAGS[@]}" -o "$out/lurk-hsbench" "$here/lurk-hsbench.c" -lssl -lcrypto -lpthread
fi
if stale "$out/lurk-signcore" "$here/lurk-signcore.c"; then
    "$CC" "${CFLAGS[@]}" -o "$out/lurk-signcore" "$here/lurk-signcore.c" -lcrypto -lpthread
fi
if stale "$out/lurk-signbench" "$here/lurk-signbench.c" "$build/proto/liblurk_transport.a" \
    "$build/proto/liblurk_wire.a"; then
    "$CC" "${CFLAGS[@]}" -I"$root/proto" -I"$build/proto" -o "$out/lurk-signbench" \
        "$here/lurk-signbench.c" "$build/proto/liblurk_transport.a" "$build/proto/liblurk_wire.a" \
        -lnng -lprotobuf-c -lssl -lcrypto -lpthread
fi
echo "$out"
