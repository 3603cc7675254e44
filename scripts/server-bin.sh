#!/usr/bin/env bash
# Prints the path of the splitsound-server release binary the scripts run: $SPLITSOUND_SERVER_BIN
# when set (test.sh passes the workspace build's), else a fresh `cargo build` of it.
set -euo pipefail
if [ -n "${SPLITSOUND_SERVER_BIN:-}" ]; then
  echo "$SPLITSOUND_SERVER_BIN"
  exit 0
fi
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/splitsound/target}"
cargo build --release --locked -q -p splitsound-server >&2
echo "$CARGO_TARGET_DIR/release/splitsound-server"
