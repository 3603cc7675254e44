#!/usr/bin/env bash
# The hosted service's web UI, end to end in headless Chromium (Debian's chromium, driven by
# playwright-core from npm): server-example/web/tests/e2e.mjs against the release binary on the
# embedded default. Screenshots go to $SPLITSOUND_UI_OUT (default: $CARGO_TARGET_DIR/server-ui-e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/splitsound/target}"
bin=$(./scripts/server-bin.sh)
(cd server-example/web && npm ci --no-audit --no-fund --loglevel=error)
node server-example/web/tests/e2e.mjs "$bin" \
  "${SPLITSOUND_UI_OUT:-$CARGO_TARGET_DIR/server-ui-e2e}"
