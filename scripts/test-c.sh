#!/usr/bin/env bash
# Tests of the C API as a C or C++ host sees it (run by scripts/test.sh, which installs the tools):
#  - installs the library, header and a generated splitsound.pc into a scratch prefix;
#  - builds examples/c with -Wall -Wextra -Wpedantic -Werror three ways: find_library + shared library
#    under AddressSanitizer + UBSan, find_library + static library, pkg-config + shared library;
#  - runs the C test suite (C, double include, C++) under the sanitizers, then under valgrind (no leaks);
#  - checks the C programs' output equals the Rust output: `stems` against the CLI (identical files) and
#    `plugin_loop` against core's realtime_blocks example (identical samples), built-in and neural.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/splitsound/target}"
: "${SPLITSOUND_ORT_LIB:?set by scripts/test.sh: the ONNX Runtime library for the model tests}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
demo=$PWD/examples/data/demo/mixture.flac
model=$PWD/core/tests/data/neural/demucs/ci.json

echo "==> C API: library, header and splitsound.pc into a scratch prefix"
./scripts/install-c.sh "$work/prefix"
cargo build --release --locked -q -p splitsound-cli
cargo build --release --locked -q -p splitsound-core --example realtime_blocks
cli=$CARGO_TARGET_DIR/release/splitsound
rt_example=$CARGO_TARGET_DIR/release/examples/realtime_blocks

configure() { # build-dir, extra cmake args...
  local dir=$1
  shift
  cmake -S examples/c -B "$dir" -DSPLITSOUND_ROOT="$work/prefix" -DSPLITSOUND_TESTS=ON \
    -DSPLITSOUND_TEST_MODEL="$model" "$@" >"$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
  cmake --build "$dir" -j 2 >>"$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
}

# Outputs of the C programs against the Rust ones, for one build.
compare_with_rust() { # build-dir, label
  local bin=$1 label=$2 out=$work/out-$2
  for m in builtin:hpss "$model"; do
    rm -rf "$out" && mkdir -p "$out/c" "$out/rust" "$out/plugin"
    "$bin/stems" "$m" "$out/c" "$demo" >/dev/null 2>&1 || { "$bin/stems" "$m" "$out/c" "$demo"; exit 1; }
    "$cli" separate "$demo" -m "$m" -o "$out/rust" >/dev/null 2>&1
    local n=0
    for f in "$out"/rust/mixture/*.wav; do
      cmp "$f" "$out/c/mixture/$(basename "$f")"
      n=$((n + 1))
    done
    [ "$n" -ge 2 ]
    "$bin/plugin_loop" "$m" "$demo" "$out/plugin" 2>/dev/null
    cp "$demo" "$out/mix.flac"
    if [ "$m" = builtin:hpss ]; then "$rt_example" "$out/mix.flac" "$m" >/dev/null; else "$rt_example" "$out/mix.flac" "$m" bounce >/dev/null; fi
    for f in "$out"/plugin/*.wav; do
      local stem
      stem=$(basename "$f" .wav)
      cmp <(ffmpeg -v error -i "$f" -f f32le -) <(ffmpeg -v error -i "$out/mix.rt.$stem.wav" -f f32le -)
    done
    echo "    $label, $(basename "$m"): stems = CLI ($n files identical), plugin_loop = realtime_blocks (same samples)"
  done
}

echo "==> C API: find_library, shared, AddressSanitizer + UBSan"
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
configure "$work/asan" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="$san" -DCMAKE_CXX_FLAGS="$san" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
(cd "$work/asan" && ctest --output-on-failure)
compare_with_rust "$work/asan" "sanitized"
unset ASAN_OPTIONS UBSAN_OPTIONS

echo "==> C API: find_library, static"
configure "$work/static" -DSPLITSOUND_STATIC=ON
if ldd "$work/static/stems" | grep -q splitsound; then echo "stems links libsplitsound.so dynamically"; exit 1; fi
(cd "$work/static" && ctest --output-on-failure)
compare_with_rust "$work/static" "static"

echo "==> C API: pkg-config, shared"
configure "$work/pkgconfig" -DSPLITSOUND_FIND=pkg-config
(cd "$work/pkgconfig" && ctest --output-on-failure)

echo "==> C API: the C test suite under valgrind (no leaks, no memory errors)"
vg=(valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
  --show-leak-kinds=definite,indirect --suppressions=examples/c/tests/valgrind.supp)
"${vg[@]}" "$work/pkgconfig/test_abi" "$demo" "$work/valgrind-out"
# ONNX Runtime's vectorised kernels leave bytes valgrind cannot prove defined (it flags reads of
# their outputs), so the model part runs without undefined-value checks; leaks are still errors.
"${vg[@]}" --undef-value-errors=no "$work/pkgconfig/test_abi" "$demo" "$work/valgrind-out" "$model" --model-only
echo "==> C API: all passed"
