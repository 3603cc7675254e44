#!/usr/bin/env bash
# Regenerates include/splitsound.h from ffi/src with the pinned cbindgen (a dev-dependency of ffi).
set -euo pipefail
cd "$(dirname "$0")/.."
SPLITSOUND_BLESS=1 cargo test --release --locked -q -p splitsound-ffi --test header
echo "wrote include/splitsound.h"
