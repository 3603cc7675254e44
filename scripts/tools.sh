#!/usr/bin/env bash
# Installs the Rust tools the tests run, from crates.io, into ~/.cache/splitsound/tools/bin and
# prints that folder:
#   wasm-bindgen   wasm-bindgen-cli, the version wasm/Cargo.toml pins (scripts/build-wasm.sh)
#   cargo-fuzz     cargo-fuzz (scripts/fuzz.sh)
#   s3s-fs         s3s-fs with its server binary, an S3 server that checks signatures (scripts/services.sh)
#
#   scripts/tools.sh [NAME...]      (default: all three)
#
# A tool already there at the right version is kept. They build into one shared target folder with a
# lean profile (opt-level 1, no debug info): on a fresh machine their build time is what counts, not
# their speed, and they share many crates.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$HOME/.cache/splitsound/tools"
mkdir -p "$tools/bin"

wasm_bindgen_version=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' wasm/Cargo.toml)
cargo_fuzz_version=0.13.2
s3s_version=0.14.1

install() { # crate, version, extra cargo install arguments (--locked where the crate's lockfile resolves)...
  local crate=$1 version=$2
  shift 2
  echo "==> installing $crate $version (crates.io) into $tools" >&2
  (cd /tmp && env -u CARGO_TARGET_DIR CARGO_TARGET_DIR="$tools/build" \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_LTO=false \
    CARGO_PROFILE_RELEASE_STRIP=true \
    cargo install --quiet --root "$tools" "$crate" --version "=$version" "$@" >&2)
}

for name in "${@:-wasm-bindgen cargo-fuzz s3s-fs}"; do
  for n in $name; do
    case "$n" in
      wasm-bindgen)
        "$tools/bin/wasm-bindgen" --version 2>/dev/null | grep -qF "$wasm_bindgen_version" ||
          install wasm-bindgen-cli "$wasm_bindgen_version" # its lockfile names a yanked webpki-roots
        ;;
      cargo-fuzz)
        "$tools/bin/cargo-fuzz" --version 2>/dev/null | grep -qF "$cargo_fuzz_version" ||
          install cargo-fuzz "$cargo_fuzz_version" --locked
        ;;
      s3s-fs)
        [ -x "$tools/bin/s3s-fs" ] && [ -f "$tools/s3s-fs-$s3s_version" ] ||
          { install s3s-fs "$s3s_version" --locked --features binary && touch "$tools/s3s-fs-$s3s_version"; }
        ;;
      *)
        echo "scripts/tools.sh: no tool named $n (wasm-bindgen, cargo-fuzz, s3s-fs)" >&2
        exit 2
        ;;
    esac
  done
done
echo "$tools/bin"
