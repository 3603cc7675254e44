#!/usr/bin/env bash
# Tests of the Python package (run by scripts/test.sh): `pip install ./python` (maturin builds the abi3
# wheel) into a fresh virtual environment, then pytest (which also runs examples/python/separate_demo.ipynb
# through nbclient), mypy --strict on the package and on a typed
# caller, and mypy's stubtest of the .pyi stubs against the built extension (so they cannot drift).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/splitsound/target}"
: "${SPLITSOUND_ORT_LIB:?set by scripts/test.sh: the ONNX Runtime library for the model tests}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release --locked -q -p splitsound-cli
export SPLITSOUND_CLI=$CARGO_TARGET_DIR/release/splitsound

echo "==> Python: pip install ./python into a fresh venv"
python3 -m venv "$work/venv"
py=$work/venv/bin/python
"$py" -m pip install --quiet --upgrade pip
# onnxruntime: the package finds the wheel's library in its own interpreter (test_errors.py).
"$py" -m pip install --quiet "numpy>=1.21" "pytest>=8" "mypy>=1.18" typing_extensions tqdm soundfile "onnxruntime==1.32.0" \
  nbclient nbformat ipykernel matplotlib   # the example notebook runs in the tests
"$py" -m pip install --quiet ./python

echo "==> Python: pytest"
# From outside the checkout, so `import splitsound` is the installed package, not python/splitsound.
(cd "$work" && "$py" -m pytest -q -p no:cacheprovider --import-mode=importlib "$repo/python/tests")

echo "==> Python: mypy --strict and stubtest"
(cd "$work" && "$py" -m mypy --strict --no-incremental -p splitsound)
(cd "$work" && "$py" -m mypy --strict --no-incremental "$repo/python/tests/typing_usage.py")
(cd "$work" && "$py" -m mypy.stubtest splitsound._splitsound)
echo "==> Python: all passed"
