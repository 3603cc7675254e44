#!/usr/bin/env bash
# Runs every splitsound test on a fresh Debian machine that has Rust.
# Installs what the tests need (ffmpeg, cmake, gcc, g++, pkg-config, valgrind, LV2 hosts, from Debian) and builds once, in release
# mode, into a target directory outside the checkout so later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_cmd=""
[ "$(id -u)" = 0 ] || sudo_cmd="sudo"
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)   # builds the bundled libopus and the C examples
# The C API's tests: C and C++ compilers, pkg-config, valgrind.
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
# The LV2 plugin's tests: the SDK and real hosts (lilv's lv2apply and lv2info, jalv on a dummy JACK server).
pkg-config --exists lv2 2>/dev/null || missing+=(lv2-dev)
pkg-config --exists lilv-0 2>/dev/null || missing+=(liblilv-dev)
command -v lv2apply >/dev/null 2>&1 || missing+=(lilv-utils)
command -v jalv >/dev/null 2>&1 || missing+=(jalv)
command -v jackd >/dev/null 2>&1 || missing+=(jackd2)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)   # the Python package's tests
command -v node >/dev/null 2>&1 || missing+=(nodejs)   # the WebAssembly package's tests
command -v npm >/dev/null 2>&1 || missing+=(npm)   # playwright-core for the web demo's test
[ -x /usr/bin/chromium ] || missing+=(chromium)   # the web demo's end-to-end test (headless)
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || missing+=(postgresql)   # server-example's production tests
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing ${missing[*]} (Debian packages)"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/splitsound/target}"
# Release builds without debug info: the tests need the speed, not line tables (the
# workspace profile keeps them for profiling), and a cold run builds everything.
export CARGO_PROFILE_RELEASE_DEBUG=false

# ONNX Runtime for the model tests: the shared library from PyPI's onnxruntime
# wheel, unpacked into a cache dir (no Python import needed).
ort_version=1.32.0
ort_dir="$HOME/.cache/splitsound/onnxruntime-$ort_version"
if ! ls "$ort_dir"/onnxruntime/capi/libonnxruntime.so.* >/dev/null 2>&1; then
  echo "==> installing onnxruntime $ort_version (PyPI) into $ort_dir"
  python3 -m pip install --quiet --no-deps --target "$ort_dir" "onnxruntime==$ort_version"
fi
export SPLITSOUND_ORT_LIB
SPLITSOUND_ORT_LIB=$(ls "$ort_dir"/onnxruntime/capi/libonnxruntime.so.* | head -n 1)
export CARGO_TERM_COLOR=never

# Each step's start, as minutes:seconds since this script began (where a cold run spends its time).
step() { printf '==> [%d:%02d] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

step "formatting"
cargo fmt --all --check

step "server-example's layering (no module imports one of its layer or above)"
python3 scripts/check-layers.py

step "API docs build without warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --locked -q -p splitsound-core --no-deps

step "servers for server-example's production tests (PostgreSQL, moto's S3 and SQS, on 127.0.0.1)"
eval "$(./scripts/services.sh start)"
export SPLITSOUND_REQUIRE_SERVICES=1

step "tests (release build, whole workspace)"
log=$(mktemp)
trap 'rm -f "$log"; ./scripts/services.sh stop' EXIT
cargo test --release --locked --workspace --features splitsound-core/opus 2>&1 | tee "$log"
step "core built with the cuda and tensorrt features, on the CPU-only runtime: the GPU code compiles, those providers fall back or are refused"
# The workspace's feature set plus the two, so only ort and core rebuild.
cargo test --release --locked --workspace --features splitsound-core/opus,splitsound-core/cuda,splitsound-core/tensorrt \
  --test model --test ort_options 2>&1 | tee -a "$log"
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')

# The server binary the workspace tests built (with the opus feature); the scripts below reuse it.
export SPLITSOUND_SERVER_BIN="$CARGO_TARGET_DIR/release/splitsound-server"
step "fuzzing server-example's HTTP API against its OpenAPI document (schemathesis, no 5xx, answers as documented)"
./scripts/api-fuzz.sh 40

step "server-example's web UI end to end in headless Chromium (sign in, buy, upload, separate, preview, download, delete)"
./scripts/test-server-ui.sh 2>&1 | tee -a "$log"

step "the C API (examples/c: sanitizers, static and pkg-config builds, valgrind, parity with Rust)"
./scripts/test-c.sh

step "the Opus error path of a build without the opus feature (the CLI test-c.sh built)"
opus=$(mktemp -d)
ffmpeg -v error -f lavfi -i "sine=frequency=440:duration=0.5" -c:a libopus "$opus/a.opus"
if "$CARGO_TARGET_DIR/release/splitsound" separate "$opus/a.opus" -o "$opus/stems" >"$opus/out" 2>&1; then
  echo "a build without the opus feature decoded Opus"; exit 1
fi
grep -q "opus" "$opus/out" && grep -qi "unsupported" "$opus/out" || { cat "$opus/out"; exit 1; }
echo "typed error: $(tail -n 1 "$opus/out")"
rm -rf "$opus"

step "the LV2 plugin (examples/lv2) in lv2apply and jalv"
./scripts/test-lv2.sh 2>&1 | tee -a "$log"

step "the Python package (a fresh venv: pip install ./python, pytest, mypy, stubtest)"
./scripts/test-python.sh 2>&1 | tee -a "$log"
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')

step "the WebAssembly package (wasm-bindgen-test in Node, the package against the native CLI)"
./scripts/build-wasm.sh test 2>&1 | tee -a "$log"
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')

step "the README's first command"
out=$(mktemp -d)
cargo run --release --locked -q -p splitsound-cli -- separate examples/data/demo/mixture.flac -o "$out" >/dev/null
test -s "$out/mixture/harmonic.wav" && test -s "$out/mixture/percussive.wav"
rm -rf "$out"

step "fuzzing decode and probe (${SPLITSOUND_FUZZ_SECS:-60}s each)"
fuzzlog=$(mktemp)
if ! ./scripts/fuzz.sh "${SPLITSOUND_FUZZ_SECS:-60}" >"$fuzzlog" 2>&1; then
  tail -n 60 "$fuzzlog"
  echo "fuzzing found a crash or failed to run"
  exit 1
fi
grep -E '^==>|^Done|stat::number_of_executed_units' "$fuzzlog" || true
rm -f "$fuzzlog"

step "all tests passed"
echo "tests: $passed passed, $failed failed"
