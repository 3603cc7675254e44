"""examples/python/separate_demo.ipynb runs end to end (nbclient, a real kernel) and plots."""

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples/python/separate_demo.ipynb"


def test_the_example_notebook_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SPLITSOUND_NOTEBOOK_OUT", str(tmp_path / "separated"))
    monkeypatch.setenv("SPLITSOUND_DEMO", str(NOTEBOOK.parents[1] / "data/demo"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2, "the waveform and spectrogram figures"
    assert sorted(p.name for p in (tmp_path / "separated" / "mixture").iterdir()) == ["no_vocals.wav", "vocals.wav"]
    assert os.path.getsize(tmp_path / "separated" / "mixture" / "vocals.wav") > 1000
