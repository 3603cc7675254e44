#!/usr/bin/env bash
# Builds the C library and installs it for C/C++ hosts:
#   PREFIX/lib/libsplitsound.so, PREFIX/lib/libsplitsound.a, PREFIX/include/splitsound.h,
#   PREFIX/lib/pkgconfig/splitsound.pc (generated here, with the static link flags rustc reports).
# Usage: scripts/install-c.sh PREFIX [cargo features, e.g. --features cuda]
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:?usage: scripts/install-c.sh PREFIX [cargo args]}
shift
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
target=${CARGO_TARGET_DIR:-target}

# The static library needs the system libraries Rust's std links; rustc lists them.
native=$(cargo rustc --release --locked -q -p splitsound-ffi --crate-type staticlib "$@" -- --print native-static-libs 2>&1 \
  | sed -n 's/.*native-static-libs: //p' | tail -n 1)
cargo build --release --locked -q -p splitsound-ffi "$@"
[ -n "$native" ] || { echo "rustc did not report the native static libraries" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 644 include/splitsound.h "$prefix/include/"
install -m 755 "$target/release/libsplitsound.so" "$prefix/lib/"
install -m 644 "$target/release/libsplitsound.a" "$prefix/lib/"
cat > "$prefix/lib/pkgconfig/splitsound.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: splitsound
Description: Split songs, podcasts and soundtracks into stems
Version: $version
Libs: -L\${libdir} -lsplitsound
Libs.private: $native
Cflags: -I\${includedir}
PC
echo "installed splitsound $version into $prefix"
