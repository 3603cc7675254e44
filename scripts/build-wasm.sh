#!/usr/bin/env bash
# Builds the WebAssembly package into wasm/pkg: an ES module (splitsound.js), its TypeScript
# declarations (splitsound.d.ts), the .wasm, and a package.json. Installs the wasm32 target and the
# wasm-bindgen-cli of exactly the version wasm/Cargo.toml pins (from crates.io, into ~/.cache) if missing.
#   scripts/build-wasm.sh        build
#   scripts/build-wasm.sh test   build, then run the wasm unit tests in Node (wasm-bindgen-test), check
#                                the package's stems against the native CLI's, and run the demo page
#                                (examples/web) end to end in headless Chromium (needs /usr/bin/chromium,
#                                npm, and SPLITSOUND_ORT_LIB or another way to find ONNX Runtime)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/splitsound/target}"

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
tools_bin=$(./scripts/tools.sh wasm-bindgen)
tools=$(dirname "$tools_bin")

cargo build --release --locked -q --target wasm32-unknown-unknown -p splitsound-wasm
rm -rf wasm/pkg
"$tools/bin/wasm-bindgen" --target web --out-dir wasm/pkg --out-name splitsound --remove-name-section \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/splitsound_wasm.wasm"
pkg_version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
cat > wasm/pkg/package.json <<JSON
{
  "name": "splitsound",
  "version": "$pkg_version",
  "description": "Split songs, podcasts and soundtracks into stems, in the browser (WebAssembly)",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "splitsound.js",
  "types": "splitsound.d.ts",
  "files": ["splitsound.js", "splitsound.d.ts", "splitsound_bg.wasm", "splitsound_bg.wasm.d.ts"],
  "sideEffects": false
}
JSON
echo "==> wasm/pkg: $(wc -c < wasm/pkg/splitsound_bg.wasm) bytes of wasm ($(gzip -9c wasm/pkg/splitsound_bg.wasm | wc -c) gzipped)"

if [ "${1:-}" = test ]; then
  echo "==> wasm unit tests in Node (wasm-bindgen-test)"
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER="$tools/bin/wasm-bindgen-test-runner" \
    cargo test --release --locked --target wasm32-unknown-unknown -p splitsound-wasm
  echo "==> the npm package in Node against the native CLI"
  native=$(mktemp -d)
  trap 'rm -rf "$native"' EXIT
  cargo build --release --locked -q -p splitsound-cli
  native_separate() { # case, CLI arguments...
    local case=$1
    shift
    "$CARGO_TARGET_DIR/release/splitsound" separate examples/data/demo/mixture.flac --bits 32f --clip none \
      -o "$native/$case" "$@" >"$native/log" 2>&1 || { cat "$native/log"; exit 1; }
  }
  ci=core/tests/data/neural/demucs/ci.json
  native_separate hpss -m builtin:hpss
  native_separate center -m builtin:center
  native_separate ci -m "$ci"
  native_separate ci-query -m "$ci" --query "remove the vocals"
  node wasm/tests/package.mjs examples/data/demo/mixture.flac "$native"
  echo "==> the demo page end to end in headless Chromium"
  (cd examples/web && npm ci --no-audit --no-fund --loglevel=error)
  node examples/web/tests/e2e.mjs "$native" "${SPLITSOUND_E2E_OUT:-$CARGO_TARGET_DIR/web-e2e}"
fi
