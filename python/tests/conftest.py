import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo() -> Path:
    return ROOT / "examples/data/demo/mixture.flac"


@pytest.fixture(scope="session")
def model() -> Path:
    """The tiny HT-Demucs test package; needs ONNX Runtime (SPLITSOUND_ORT_LIB, set by scripts/test.sh)."""
    if not os.environ.get("SPLITSOUND_ORT_LIB"):
        pytest.fail("SPLITSOUND_ORT_LIB is not set: run the tests through scripts/test-python.sh")
    return ROOT / "core/tests/data/neural/demucs/ci.json"


@pytest.fixture(scope="session")
def cli() -> Path:
    """The Rust CLI, for parity checks (SPLITSOUND_CLI, set by scripts/test-python.sh)."""
    path = os.environ.get("SPLITSOUND_CLI")
    if not path:
        pytest.fail("SPLITSOUND_CLI is not set: run the tests through scripts/test-python.sh")
    return Path(path)
