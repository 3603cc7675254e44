"""splitsound.models against a registry served from 127.0.0.1 (http.server)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import threading
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

import splitsound
from splitsound import models

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "core/tests/data/neural/demucs"


@pytest.fixture()
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: Path) -> Iterator[tuple[Path, str]]:
    """A cache folder and a registry listing the tiny HT-Demucs package as
    `demucs-py`, served over HTTP (the server ignores Range: whole files)."""
    served = tmp_path / "served/demucs-py"
    served.mkdir(parents=True)
    for f in ["ci.json", "ci.onnx"]:
        (served / f).write_bytes((PACKAGE / f).read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served"))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}/demucs-py"
    files = [
        {"url": f"{base}/{f}", "size": (served / f).stat().st_size,
         "sha256": hashlib.sha256((served / f).read_bytes()).hexdigest()}
        for f in ["ci.json", "ci.onnx"]
    ]
    doc = {"registry_version": 1, "models": [{"name": "demucs-py", "family": "demucs-hybrid",
           "stems": ["drums", "bass", "other", "vocals"], "license": "MIT", "files": files, "load": "ci.json"}]}
    reg = tmp_path / "registry.json"
    reg.write_text(json.dumps(doc))
    monkeypatch.setenv("SPLITSOUND_MODELS", str(tmp_path / "cache"))
    monkeypatch.setenv("SPLITSOUND_REGISTRY", str(reg))
    yield reg, base
    srv.shutdown()


def test_list_pull_separate_verify_remove(registry: tuple[Path, str], demo: Path) -> None:
    assert models.cache_dir().endswith("cache")
    rows = {m["name"]: m for m in models.list()}
    assert rows["demucs-py"]["installed"] is False
    assert "uvr-mdx-net-voc-ft" in rows  # the compiled-in registry
    with pytest.raises(splitsound.ModelNotInstalledError, match="splitsound model pull demucs-py") as e:
        splitsound.Separator("demucs-py")
    assert e.value.code == "model_not_installed"

    seen: list[tuple[int, int]] = []
    path = models.pull("demucs-py", progress=lambda done, total: seen.append((done, total)))
    assert Path(path).is_file() and seen[-1][0] == seen[-1][1] == rows["demucs-py"]["size"]
    assert [m["name"] for m in models.list(installed=True)] == ["demucs-py"]

    x, sr = splitsound.load(demo)
    by_name = splitsound.Separator("demucs-py")(x[:, : 3 * sr], sr)
    by_path = splitsound.Separator(str(PACKAGE / "ci.json"))(x[:, : 3 * sr], sr)
    assert by_name.keys() == by_path.keys()
    for k in by_name:
        np.testing.assert_array_equal(by_name[k], by_path[k])

    assert all(c["status"] == "ok" for c in models.verify("demucs-py")["demucs-py"])
    onnx = Path(path).parent / "ci.onnx"
    data = bytearray(onnx.read_bytes())
    data[4000] ^= 1
    onnx.write_bytes(bytes(data))
    assert models.verify()["demucs-py"][1]["status"] == "wrong_sha256"
    assert models.remove("demucs-py") is True
    assert models.remove("demucs-py") is False


def test_errors_are_typed(registry: tuple[Path, str]) -> None:
    reg, base = registry
    with pytest.raises(splitsound.InvalidArgumentError, match="unknown model"):
        models.pull("no-such-model")
    with pytest.raises(splitsound.InvalidArgumentError):
        models.pull("Not A Name")
    doc = json.loads(reg.read_text())
    doc["models"][0]["files"][1]["sha256"] = "0" * 64
    reg.write_text(json.dumps(doc))
    with pytest.raises(splitsound.DownloadError, match="nothing was installed") as e:
        models.pull("demucs-py")
    assert e.value.code == "checksum"
    assert models.list(installed=True) == []
    reg.write_text("{")
    with pytest.raises(splitsound.ModelError, match="registry"):
        models.list()


def test_an_exception_in_progress_cancels_the_pull(registry: tuple[Path, str]) -> None:
    def stop(done: int, total: int) -> None:
        if done > 100_000:
            raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        models.pull("demucs-py", progress=stop)
    assert models.list(installed=True) == []
    models.pull("demucs-py")
    assert [m["name"] for m in models.list(installed=True)] == ["demucs-py"]
